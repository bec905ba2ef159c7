/* Tests for the guard plugin (src/plugins/guard.c) through the plugin harness: a fake /proc
 * and a fake cgroup v2 tree in a temp dir, so targets found by pidfile, unit and executable get
 * their oom_score_adj and the agent's cgroup its limits, whatever the machine allows; and the
 * config errors name their key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plugtest.h"
#include "tmpdir.h"
#include "plugins/builtin.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fx {
	char dir[TMPDIR_LEN];
	char path[512];
};

static const char *P(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *P(struct fx *f, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(f->path, sizeof(f->path), "%s/", f->dir);

	va_start(ap, fmt);
	vsnprintf(f->path + n, sizeof(f->path) - (size_t)n, fmt, ap);
	va_end(ap);
	return f->path;
}

static void put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static char *get(const char *path)
{
	static char buf[128];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* A fake process: proc/<pid>/oom_score_adj 0, exe -> exe. */
static void fake_proc(struct fx *f, int pid, const char *exe)
{
	assert_int_equal(mkdir(P(f, "proc/%d", pid), 0755), 0);
	put(P(f, "proc/%d/oom_score_adj", pid), "0\n");
	assert_int_equal(symlink(exe, P(f, "proc/%d/exe", pid)), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_int_equal(tmpdir_make(f->dir, "guard"), 0);
	assert_int_equal(mkdir(P(f, "proc"), 0755), 0);
	assert_int_equal(mkdir(P(f, "cg"), 0755), 0);
	assert_int_equal(mkdir(P(f, "cg/system.slice"), 0755), 0);
	assert_int_equal(mkdir(P(f, "cg/system.slice/ssh.service"), 0755), 0);
	assert_int_equal(mkdir(P(f, "cg/system.slice/outpost-agent.service"), 0755), 0);
	put(P(f, "cg/cgroup.controllers"), "cpu memory pids\n");
	put(P(f, "cg/system.slice/outpost-agent.service/cgroup.controllers"), "memory pids\n");
	put(P(f, "cg/system.slice/outpost-agent.service/memory.max"), "max\n");
	put(P(f, "cg/system.slice/outpost-agent.service/cpu.max"), "max 100000\n");
	put(P(f, "cg/system.slice/ssh.service/cgroup.procs"), "301\n302\n");
	fake_proc(f, 201, "/usr/sbin/app");
	fake_proc(f, 301, "/usr/sbin/sshd");
	fake_proc(f, 302, "/usr/sbin/sshd");
	fake_proc(f, 401, "/usr/bin/sleep");
	put(P(f, "app.pid"), "201\n");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static void test_targets_get_their_oom_score_adj_again_after_a_restart(void **state)
{
	struct fx *f = *state;
	char conf[2048];
	struct plugtest *t;
	json_t *r;
	const char *err;

	snprintf(
	    conf, sizeof(conf),
	    "{\"proc_root\": \"%s/proc\", \"cgroup_root\": \"%s/cg\", \"protect\": ["
	    "{\"pidfile\": \"%s/app.pid\", \"exe\": \"/usr/sbin/app\", \"oom_score_adj\": -500},"
	    "{\"unit\": \"ssh.service\", \"oom_score_adj\": -800},"
	    "{\"exe\": \"/usr/bin/sleep\", \"oom_score_adj\": 300}]}",
	    f->dir, f->dir, f->dir);
	t = plugtest_new(&outpost_plugin_guard, conf); /* init makes the first pass */
	assert_string_equal(get(P(f, "proc/201/oom_score_adj")), "-500");
	assert_string_equal(get(P(f, "proc/301/oom_score_adj")), "-800");
	assert_string_equal(get(P(f, "proc/302/oom_score_adj")), "-800");
	assert_string_equal(get(P(f, "proc/401/oom_score_adj")), "300");

	/* The app restarts as pid 202: the pidfile says so, the next pass protects it. */
	fake_proc(f, 202, "/usr/sbin/app");
	put(P(f, "app.pid"), "202\n");
	assert_int_equal(plugtest_call(t, "apply", "{}", &r, &err), 0);
	assert_string_equal(get(P(f, "proc/202/oom_score_adj")), "-500");
	json_decref(r);

	/* A pidfile whose pid now runs another program is not trusted. */
	put(P(f, "app.pid"), "401\n");
	put(P(f, "proc/401/oom_score_adj"), "0\n");
	assert_int_equal(plugtest_call(t, "apply", "{}", &r, &err), 0);
	assert_string_equal(get(P(f, "proc/401/oom_score_adj")), "300"); /* its own target's */
	json_decref(r);
	plugtest_free(t);
}

static void test_cgroup_limits_where_the_controller_is_enabled(void **state)
{
	struct fx *f = *state;
	char conf[1024];
	struct plugtest *t;
	json_t *r, *cg;
	const char *err;

	snprintf(conf, sizeof(conf),
	         "{\"proc_root\": \"%s/proc\", \"cgroup_root\": \"%s/cg\", \"cgroup\": {\"path\": "
	         "\"/system.slice/outpost-agent.service\", \"memory_max\": \"256M\", \"cpu_max\": "
	         "\"50%%\"}}",
	         f->dir, f->dir);
	t = plugtest_new(&outpost_plugin_guard, conf);
	assert_string_equal(get(P(f, "cg/system.slice/outpost-agent.service/memory.max")),
	                    "268435456");
	assert_int_equal(plugtest_call(t, "status", "{}", &r, &err), 0);
	cg = json_object_get(r, "cgroup");
	assert_string_equal(json_string_value(json_object_get(cg, "memory.max")), "268435456");
	/* cpu is not in this cgroup's cgroup.controllers: skipped, with the reason. */
	assert_non_null(strstr(json_string_value(json_object_get(cg, "cpu.max")),
	                       "the cpu controller is not enabled"));
	assert_string_equal(get(P(f, "cg/system.slice/outpost-agent.service/cpu.max")),
	                    "max 100000\n");
	json_decref(r);
	plugtest_free(t);
}

static void test_no_cgroup_v2_is_skipped_with_a_reason(void **state)
{
	struct fx *f = *state;
	char conf[1024];
	struct plugtest *t;
	json_t *r;
	const char *err;

	snprintf(conf, sizeof(conf),
	         "{\"cgroup_root\": \"%s/proc\", \"cgroup\": {\"memory_max\": \"1G\"}}", f->dir);
	t = plugtest_new(&outpost_plugin_guard, conf);
	assert_int_equal(plugtest_call(t, "status", "{}", &r, &err), 0);
	assert_non_null(
	    strstr(json_string_value(json_object_get(json_object_get(r, "cgroup"), "skipped")),
	           "no cgroup v2 hierarchy"));
	json_decref(r);
	plugtest_free(t);
}

static void test_bad_config_names_its_key(void **state)
{
	static const char *const cases[][2] = {
	    {"{\"protect\": [{\"pidfile\": \"run/x.pid\", \"oom_score_adj\": 1}]}",
	     "plugins.guard.protect[0].pidfile: must be an absolute canonical path"},
	    {"{\"protect\": [{\"unit\": \"ssh.service\"}]}",
	     "plugins.guard.protect[0]: needs one of pidfile, unit or exe"},
	    {"{\"protect\": [{\"exe\": \"/bin/x\", \"oom_score_adj\": -2000}]}",
	     "plugins.guard.protect[0].oom_score_adj: must be an integer from -1000 to 1000"},
	    {"{\"cgroup\": {\"cpu_max\": \"lots\"}}", "plugins.guard.cgroup.cpu_max: must be"},
	    {"{\"oom_scor_adj\": 1}", "plugins.guard: unknown key 'oom_scor_adj'"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct plugtest *t = plugtest_new(&outpost_plugin_guard, cases[i][0]);
		json_t *r;
		const char *err;
		assert_int_equal(plugtest_call(t, "apply", "{}", &r, &err), OUTPOST_E_UNAVAILABLE);
		if (strncmp(err, cases[i][1], strlen(cases[i][1])) != 0)
			fail_msg("case %zu: got '%s', want '%s'", i, err, cases[i][1]);
		plugtest_free(t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_targets_get_their_oom_score_adj_again_after_a_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cgroup_limits_where_the_controller_is_enabled,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_cgroup_v2_is_skipped_with_a_reason, setup,
	                                    teardown),
	    cmocka_unit_test(test_bad_config_names_its_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
