/* Tests for src/agent/plugins.c and execplug.c: the three kinds of plugin behind one table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "agent/call.h"
#include "agent/plugins.h"
#include "core/clk.h"

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fx {
	char dir[64];
	struct logger log;
	struct plugin_host host;
	struct plugins *ps;
};

static void copy_file(const char *from, const char *dir, const char *name, mode_t mode)
{
	char path[256], buf[65536];
	int in = open(from, O_RDONLY), out;
	ssize_t n;

	assert_true(in >= 0);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
	assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/outpost-plugins-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	chmod(f->dir, 0755);
	log_init(&f->log, "test", OUTPOST_LOG_ERROR, LOG_TO_STDERR);
	f->host.log = &f->log;
	f->host.state_dir = f->dir;
	assert_int_equal(plugins_new(&f->host, &f->ps), 0);
	*state = f;
	return 0;
}

static int rm_one(const char *p, const struct stat *s, int fl, struct FTW *w)
{
	(void)s, (void)fl, (void)w;
	return remove(p);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	plugins_free(f->ps);
	nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static int call_op(struct plugins *ps, const char *plugin, const char *op, const char *args,
                   json_t **result, char *errmsg)
{
	struct outpost_plugin_ctx *pc = plugins_find(ps, plugin);
	const struct outpost_op *o;
	struct outpost_call c;
	json_t *a = json_loads(args, 0, NULL);
	size_t idx;
	int rc;

	assert_non_null(pc);
	o = plugins_find_op(pc, op, &idx);
	assert_non_null(o);
	call_init(&c, pc, o, idx, clk_mono_ms() + 10000);
	rc = call_invoke(&c, a, result);
	strcpy(errmsg, c.errmsg);
	call_release(&c);
	json_decref(a);
	return rc;
}

static void test_loads_shared_object_and_executable_plugins(void **state)
{
	struct fx *f = *state;
	json_t *conf = json_pack("{s:{s:s}}", "pyhello", "greeting", "hi"), *r;
	char msg[512];

	copy_file(getenv("OUTPOST_TEST_HELLO_SO"), f->dir, "hello.so", 0644);
	copy_file(getenv("OUTPOST_TEST_PYHELLO"), f->dir, "pyhello", 0755);
	assert_int_equal(plugins_load_dir(f->ps, f->dir, conf), 0);
	plugins_init_all(f->ps);
	assert_int_equal(plugins_count(f->ps), 2);
	assert_string_equal(plugins_find(f->ps, "hello")->kind, "shared");
	assert_string_equal(plugins_find(f->ps, "pyhello")->kind, "exec");

	assert_int_equal(call_op(f->ps, "hello", "greet", "{\"who\":\"ops\"}", &r, msg), 0);
	assert_string_equal(json_string_value(json_object_get(r, "greeting")), "hello, ops");
	json_decref(r);
	assert_int_equal(call_op(f->ps, "pyhello", "greet", "{\"who\":\"ops\"}", &r, msg), 0);
	assert_string_equal(json_string_value(json_object_get(r, "greeting")), "hi, ops");
	json_decref(r);
	/* The executable's own error comes back with its code and message. */
	assert_int_equal(call_op(f->ps, "pyhello", "fail", "{}", &r, msg), OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "fail was called");
	/* Arguments are checked against the described table before the program runs. */
	assert_int_equal(call_op(f->ps, "pyhello", "greet", "{}", &r, msg), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "who"));
	json_decref(conf);
}

static void test_refuses_wrong_abi_and_untrusted_files(void **state)
{
	struct fx *f = *state;
	char path[256];
	int fd;

	copy_file(getenv("OUTPOST_TEST_BADABI_SO"), f->dir, "badabi.so", 0644);
	copy_file(getenv("OUTPOST_TEST_HELLO_SO"), f->dir, "writable.so", 0666);
	copy_file(getenv("OUTPOST_TEST_PYHELLO"), f->dir, "notexec", 0644);
	/* An executable that prints garbage for --describe. */
	snprintf(path, sizeof(path), "%s/garbage", f->dir);
	fd = open(path, O_WRONLY | O_CREAT, 0755);
	assert_true(fd >= 0);
	assert_true(write(fd, "#!/bin/sh\necho '{not json'\n", 27) == 27);
	close(fd);
	assert_int_equal(plugins_load_dir(f->ps, f->dir, NULL), 0);
	assert_int_equal(plugins_count(f->ps), 0);
}

static void test_refuses_world_writable_directory(void **state)
{
	struct fx *f = *state;

	copy_file(getenv("OUTPOST_TEST_HELLO_SO"), f->dir, "hello.so", 0644);
	chmod(f->dir, 0777);
	assert_int_equal(plugins_load_dir(f->ps, f->dir, NULL), OUTPOST_E_FORBIDDEN);
	assert_int_equal(plugins_count(f->ps), 0);
	chmod(f->dir, 0755);
}

static void test_missing_directory_means_builtins_only(void **state)
{
	struct fx *f = *state;
	assert_int_equal(plugins_load_dir(f->ps, "/nonexistent/outpost/plugins", NULL), 0);
	assert_int_equal(plugins_count(f->ps), 0);
}

static int failing_init(struct outpost_plugin_ctx *pc, void **st)
{
	(void)st;
	outpost_log(pc, OUTPOST_LOG_ERROR, "init fails on purpose");
	return OUTPOST_E_UNAVAILABLE;
}

static int ok_op(struct outpost_call *c, json_t *a, json_t **r)
{
	(void)c, (void)a;
	*r = json_true();
	return 0;
}

static const struct outpost_op one_op[] = {{"x", ok_op, NULL, 0, "x"}, {NULL, NULL, NULL, 0, NULL}};
static const struct outpost_plugin p_fail = {OUTPOST_PLUGIN_ABI, "failing", "1",
                                             failing_init,       NULL,      one_op};
static const struct outpost_plugin p_ok = {OUTPOST_PLUGIN_ABI, "fine", "1", NULL, NULL, one_op};

static void test_failing_init_disables_only_that_plugin(void **state)
{
	struct fx *f = *state;
	json_t *d;

	assert_int_equal(plugins_add(f->ps, &p_fail, "builtin", NULL, NULL), 0);
	assert_int_equal(plugins_add(f->ps, &p_ok, "builtin", NULL, NULL), 0);
	assert_int_equal(plugins_add(f->ps, &p_ok, "builtin", NULL, NULL), OUTPOST_E_CONFLICT);
	plugins_init_all(f->ps);
	assert_false(plugins_find(f->ps, "failing")->enabled);
	assert_true(plugins_find(f->ps, "fine")->enabled);
	d = plugins_describe(f->ps);
	assert_int_equal(json_array_size(d), 2);
	assert_false(json_is_true(json_object_get(json_array_get(d, 0), "enabled")));
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_array_get(json_object_get(json_array_get(d, 1), "ops"), 0), "name")),
	    "x");
	json_decref(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_loads_shared_object_and_executable_plugins, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_refuses_wrong_abi_and_untrusted_files, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_refuses_world_writable_directory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_directory_means_builtins_only, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_failing_init_disables_only_that_plugin, setup,
	                                    teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
