/* Tests for src/agent/plugins.c and execplug.c: the three kinds of plugin behind one table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "agent/call.h"
#include "agent/plugins.h"
#include "agent/watch.h"
#include "core/clk.h"
#include "core/db.h"
#include "core/loop.h"

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
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

/* ---- what init and resident work may ask of the agent: state, timers, watches ---- */

static const struct outpost_plugin p_a = {OUTPOST_PLUGIN_ABI, "aaa", "1", NULL, NULL, one_op};
static const struct outpost_plugin p_b = {OUTPOST_PLUGIN_ABI, "bbb", "1", NULL, NULL, one_op};

/* A registry over a real database in f->dir (the agent's, in the agent). */
static sqlite3 *open_state(struct fx *f)
{
	char path[128], msg[256];
	sqlite3 *db;

	snprintf(path, sizeof(path), "%s/agent.db", f->dir);
	assert_int_equal(db_open(path, &db, msg, sizeof(msg)), 0);
	plugins_free(f->ps);
	f->host.db = db;
	assert_int_equal(plugins_new(&f->host, &f->ps), 0);
	assert_int_equal(plugins_add(f->ps, &p_a, "builtin", NULL, NULL), 0);
	assert_int_equal(plugins_add(f->ps, &p_b, "builtin", NULL, NULL), 0);
	plugins_init_all(f->ps);
	return db;
}

static void close_state(struct fx *f, sqlite3 *db)
{
	plugins_free(f->ps);
	db_close(db);
	f->host.db = NULL;
	assert_int_equal(plugins_new(&f->host, &f->ps), 0);
}

static void test_state_is_private_to_a_plugin_and_survives_a_restart(void **state)
{
	struct fx *f = *state;
	sqlite3 *db = open_state(f);
	struct outpost_plugin_ctx *a = plugins_find(f->ps, "aaa"), *b = plugins_find(f->ps, "bbb");
	json_t *v = json_pack("{s:i,s:[s]}", "n", 7, "files", "/etc/passwd"), *got;

	assert_int_equal(outpost_state_put(a, "baseline", v), 0);
	assert_int_equal(outpost_state_get(b, "baseline", &got), OUTPOST_E_NOT_FOUND);
	assert_null(got);
	json_decref(v);
	v = json_string("b's"); /* put borrows the value */
	assert_int_equal(outpost_state_put(b, "baseline", v), 0);
	json_decref(v);
	close_state(f, db);

	db = open_state(f);
	a = plugins_find(f->ps, "aaa");
	b = plugins_find(f->ps, "bbb");
	assert_int_equal(outpost_state_get(a, "baseline", &got), 0);
	assert_int_equal(json_integer_value(json_object_get(got, "n")), 7);
	json_decref(got);
	/* put replaces; del forgets one key of one plugin. */
	v = json_integer(8);
	assert_int_equal(outpost_state_put(a, "baseline", v), 0);
	json_decref(v);
	assert_int_equal(outpost_state_get(a, "baseline", &got), 0);
	assert_int_equal(json_integer_value(got), 8);
	json_decref(got);
	assert_int_equal(outpost_state_del(a, "baseline"), 0);
	assert_int_equal(outpost_state_get(a, "baseline", &got), OUTPOST_E_NOT_FOUND);
	assert_int_equal(outpost_state_get(b, "baseline", &got), 0);
	assert_string_equal(json_string_value(got), "b's");
	json_decref(got);
	close_state(f, db);
}

static void test_state_without_a_database_is_unavailable(void **state)
{
	struct fx *f = *state;
	struct outpost_plugin_ctx *pc;
	json_t *got;

	assert_int_equal(plugins_add(f->ps, &p_a, "builtin", NULL, &pc), 0);
	assert_int_equal(outpost_state_put(pc, "k", json_true()), OUTPOST_E_UNAVAILABLE);
	assert_int_equal(outpost_state_get(pc, "k", &got), OUTPOST_E_UNAVAILABLE);
	assert_int_equal(outpost_state_del(pc, "k"), OUTPOST_E_UNAVAILABLE);
	/* Nor timers and watches without a loop. */
	assert_int_equal(outpost_timer_add(pc, 10, NULL, NULL), OUTPOST_E_UNAVAILABLE);
	assert_int_equal(outpost_watch_add(pc, f->dir, IN_CREATE, NULL, NULL),
	                 OUTPOST_E_UNAVAILABLE);
}

struct seen {
	int ticks;
	int events;
	char name[64];
	uint32_t mask;
};

static void on_tick(struct outpost_plugin_ctx *pc, void *arg)
{
	(void)pc;
	((struct seen *)arg)->ticks++;
}

static void on_file(struct outpost_plugin_ctx *pc, void *arg, const char *path, uint32_t mask,
                    const char *name)
{
	struct seen *s = arg;
	(void)pc, (void)path;
	s->events++;
	s->mask = mask;
	snprintf(s->name, sizeof(s->name), "%s", name ? name : "");
}

static void run_loop_until(struct loop *l, const int *counter, int want, int max_ms)
{
	int64_t end = clk_mono_ms() + max_ms;

	while (*counter < want && clk_mono_ms() < end)
		loop_run_once(l, 20);
}

static void test_timers_and_watches_run_on_the_loop_until_removed(void **state)
{
	struct fx *f = *state;
	struct loop *l;
	struct watch *w;
	struct outpost_plugin_ctx *pc;
	struct seen s = {0};
	char path[128];
	int tid, wid, fd, ticks;

	assert_int_equal(loop_new(&l), 0);
	assert_int_equal(watch_new(l, &w), 0);
	plugins_free(f->ps);
	f->host.loop = l;
	f->host.watch = w;
	assert_int_equal(plugins_new(&f->host, &f->ps), 0);
	assert_int_equal(plugins_add(f->ps, &p_a, "builtin", NULL, &pc), 0);
	plugins_init_all(f->ps);

	assert_int_equal(outpost_timer_add(pc, 0, on_tick, &s), OUTPOST_E_BAD_ARGS);
	tid = outpost_timer_add(pc, 10, on_tick, &s);
	assert_true(tid > 0);
	run_loop_until(l, &s.ticks, 3, 2000);
	assert_true(s.ticks >= 3);
	outpost_timer_del(pc, tid);
	ticks = s.ticks;
	loop_run_once(l, 50);
	assert_int_equal(s.ticks, ticks);

	wid = outpost_watch_add(pc, f->dir, IN_CREATE | IN_MOVED_TO, on_file, &s);
	assert_true(wid > 0);
	assert_int_not_equal(wid, tid);
	snprintf(path, sizeof(path), "%s/new-file", f->dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	run_loop_until(l, &s.events, 1, 2000);
	assert_int_equal(s.events, 1);
	assert_string_equal(s.name, "new-file");
	assert_true(s.mask & IN_CREATE);
	outpost_watch_del(pc, wid);
	snprintf(path, sizeof(path), "%s/second", f->dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	close(fd);
	loop_run_once(l, 50);
	assert_int_equal(s.events, 1);
	/* A path that is not there is an error, not a crash. */
	assert_true(outpost_watch_add(pc, "/nonexistent/outpost", IN_CREATE, on_file, &s) < 0);

	/* A timer left armed is removed with the plugin. */
	assert_true(outpost_timer_add(pc, 10, on_tick, &s) > 0);
	plugins_free(f->ps);
	f->ps = NULL;
	ticks = s.ticks;
	loop_run_once(l, 50);
	assert_int_equal(s.ticks, ticks);
	watch_free(w);
	loop_free(l);
	f->host.loop = NULL;
	f->host.watch = NULL;
	assert_int_equal(plugins_new(&f->host, &f->ps), 0);
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
	    cmocka_unit_test_setup_teardown(
	        test_state_is_private_to_a_plugin_and_survives_a_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_state_without_a_database_is_unavailable, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_timers_and_watches_run_on_the_loop_until_removed,
	                                    setup, teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
