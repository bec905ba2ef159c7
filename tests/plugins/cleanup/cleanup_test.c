/* Tests for the cleanup plugin's ops (src/plugins/cleanup/cleanup.c) through the plugin harness,
 * on a fake root (a temp dir standing for /: var/log, proc/sys, var/lib/dpkg/status), and
 * for the events an apply records (run.c, drift.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plugtest.h"
#include "tmpdir.h"
#include "plugins/builtin.h"
#include "plugins/cleanup/run.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct fx {
	struct plugtest *t;
	char root[TMPDIR_LEN];
	char path[512];
};

static const char *P(struct fx *f, const char *rel)
{
	snprintf(f->path, sizeof(f->path), "%s/%s", f->root, rel);
	return f->path;
}

static void put(struct fx *f, const char *rel, const char *text, int64_t age_s)
{
	struct timespec ts[2] = {{time(NULL) - age_s, 0}, {time(NULL) - age_s, 0}};
	int fd = open(P(f, rel), O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
}

static char *slurp(struct fx *f, const char *rel)
{
	static char buf[256];
	int fd = open(P(f, rel), O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static const char *const dirs[] = {"var",         "var/log", "var/log/app",  "proc", "proc/sys",
                                   "proc/sys/vm", "var/lib", "var/lib/dpkg", "etc",  "outside"};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char conf[2048];

	assert_int_equal(tmpdir_make(f->root, "cleanup-root"), 0);
	assert_int_equal(chmod(f->root, 0755), 0);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		assert_int_equal(mkdir(P(f, dirs[i]), 0755), 0);
	put(f, "var/log/app/old.log", "0123456789", 10 * 86400);
	put(f, "var/log/app/new.log", "01234", 0);
	put(f, "outside/old.log", "keep me", 10 * 86400);
	put(f, "proc/sys/vm/swappiness", "60\n", 0);
	put(f, "var/lib/dpkg/status",
	    "Package: bash\nStatus: install ok installed\n\nPackage: gone\nStatus: deinstall ok "
	    "config-files\n",
	    0);
	snprintf(conf, sizeof(conf),
	         "{\"root\": \"%s\", \"policies\": [{\"name\": \"logs\", \"paths\": [{\"dir\": "
	         "\"/var/log/app\", \"max_age\": \"7d\"}], \"sysctl\": {\"vm.swappiness\": "
	         "{\"value\": 10, \"enforce\": true}}, \"required\": [{\"path\": \"/etc/app\", "
	         "\"type\": \"dir\", \"mode\": \"0750\", \"enforce\": true}], \"packages\": "
	         "[\"bash\", \"gone\"]}]}",
	         f->root);
	f->t = plugtest_new(&outpost_plugin_cleanup, conf);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	plugtest_free(f->t);
	tmpdir_remove(f->root);
	free(f);
	return 0;
}

static void test_plan_changes_nothing_and_apply_does_what_it_said(void **state)
{
	struct fx *f = *state;
	json_t *plan, *applied;
	const char *err;
	struct stat st;

	assert_int_equal(plugtest_call(f->t, "plan", "{}", &plan, &err), 0);
	assert_true(json_is_true(json_object_get(plan, "dry_run")));
	assert_int_equal(json_integer_value(json_object_get(plan, "files_deleted")), 1);
	assert_int_equal(json_integer_value(json_object_get(plan, "bytes_freed")), 10);
	assert_int_equal(json_array_size(json_object_get(plan, "missing_packages")), 1);
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_array_get(json_object_get(plan, "missing_packages"), 0), "package")),
	    "gone");
	assert_int_equal(stat(P(f, "var/log/app/old.log"), &st), 0);
	assert_string_equal(slurp(f, "proc/sys/vm/swappiness"), "60\n");
	assert_int_equal(stat(P(f, "etc/app"), &st), -1);

	assert_int_equal(plugtest_call(f->t, "apply", "{}", &applied, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(applied, "bytes_freed")),
	                 json_integer_value(json_object_get(plan, "bytes_freed")));
	assert_int_equal(json_integer_value(json_object_get(applied, "fixed")), 2);
	assert_int_equal(stat(P(f, "var/log/app/old.log"), &st), -1);
	assert_int_equal(stat(P(f, "var/log/app/new.log"), &st), 0);
	assert_int_equal(stat(P(f, "outside/old.log"), &st), 0);
	assert_string_equal(slurp(f, "proc/sys/vm/swappiness"), "10");
	assert_int_equal(stat(P(f, "etc/app"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	json_decref(plan);
	json_decref(applied);

	/* A second plan finds nothing left to do. */
	assert_int_equal(plugtest_call(f->t, "plan", "{}", &plan, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(plan, "files_deleted")), 0);
	assert_int_equal(json_array_size(json_object_get(plan, "changes")), 0);
	json_decref(plan);
}

static void test_pushed_policies_replace_the_configured_ones(void **state)
{
	struct fx *f = *state;
	json_t *r;
	const char *err;

	assert_int_equal(plugtest_call(f->t, "plan",
	                               "{\"policies\": [{\"name\": \"p\", \"paths\": [{\"dir\": "
	                               "\"/var/log/app\", \"keep\": 0}]}]}",
	                               &r, &err),
	                 0);
	assert_int_equal(json_integer_value(json_object_get(r, "files_deleted")), 2);
	assert_int_equal(json_array_size(json_object_get(r, "drift")), 0);
	json_decref(r);
	assert_int_equal(plugtest_call(f->t, "plan",
	                               "{\"policies\": [{\"name\": \"p\", \"paths\": [{\"dir\": "
	                               "\"/var/log/app\", \"keep\": \"two\"}]}]}",
	                               &r, &err),
	                 OUTPOST_E_BAD_ARGS);
	assert_string_equal(err, "policies[0].paths[0].keep: must be an integer from 0 to 1000000");
	assert_int_equal(plugtest_call(f->t, "plan", "{\"policy\": \"nope\"}", &r, &err),
	                 OUTPOST_E_NOT_FOUND);
}

static void test_bad_config_answers_its_location(void **state)
{
	struct plugtest *t = plugtest_new(
	    &outpost_plugin_cleanup,
	    "{\"policies\": [{\"name\": \"a\", \"sysctl\": {\"vm.swappiness\": {\"valu\": 1}}}]}");
	json_t *r;
	const char *err;

	(void)state;
	assert_int_equal(plugtest_call(t, "plan", "{}", &r, &err), OUTPOST_E_UNAVAILABLE);
	assert_non_null(strstr(err, "plugins.cleanup.policies[0].sysctl.vm.swappiness: unknown key "
	                            "'valu'"));
	plugtest_free(t);
}

static void test_apply_records_an_event_per_change(void **state)
{
	struct fx *f = *state;
	struct cl_run r;
	struct cl_set s;
	char msg[256];
	json_t *pol = json_pack("[{s:s, s:[{s:s, s:s}], s:{s:{s:i, s:b}}}]", "name", "logs",
	                        "paths", "dir", "/var/log/app", "max_age", "7d", "sysctl",
	                        "vm.swappiness", "value", 10, "enforce", 1);
	int rootfd = open(f->root, O_RDONLY | O_DIRECTORY);
	json_t *e;
	size_t i;
	int deleted = 0, set = 0, summary = 0;

	assert_int_equal(cl_policy_parse(pol, "policies", &s, msg, sizeof(msg)), 0);
	assert_int_equal(cl_run_init(&r, rootfd, 1, (int64_t)time(NULL) * 1000), 0);
	assert_int_equal(cl_run_policies(&r, &s, NULL), 0);
	json_array_foreach(r.events, i, e)
	{
		const char *kind = json_string_value(json_object_get(e, "kind"));
		const char *sev = json_string_value(json_object_get(e, "severity"));
		const char *text = json_string_value(json_object_get(e, "message"));
		/* What the hub takes (docs/protocol.md, Events): a one-line message of 1 to 1024
		 * bytes, one of four severities, a time in ms, data an object. */
		assert_true(json_integer_value(json_object_get(e, "ts")) > 1600000000000LL);
		assert_non_null(text);
		assert_true(strlen(text) >= 1 && strlen(text) <= 1024 && !strchr(text, '\n'));
		assert_non_null(sev);
		assert_true(strcmp(sev, "info") == 0 || strcmp(sev, "notice") == 0 ||
		            strcmp(sev, "warning") == 0 || strcmp(sev, "critical") == 0);
		assert_true(json_is_object(json_object_get(e, "data")));
		assert_int_equal(strncmp(kind, "cleanup.", 8), 0);
		if (strcmp(kind, "cleanup.deleted") == 0) {
			deleted++;
			assert_string_equal(
			    json_string_value(json_object_get(json_object_get(e, "data"), "path")),
			    "/var/log/app/old.log");
		} else if (strcmp(kind, "cleanup.sysctl_set") == 0) {
			set++;
			assert_string_equal(json_string_value(json_object_get(e, "severity")),
			                    "notice");
		} else if (strcmp(kind, "cleanup.applied") == 0)
			summary++;
	}
	assert_int_equal(deleted, 1);
	assert_int_equal(set, 1);
	assert_int_equal(summary, 1);
	cl_run_free(&r);
	cl_set_free(&s);
	json_decref(pol);
	close(rootfd);
}

static void test_names_not_utf8_or_with_newlines_are_cleaned_and_shown(void **state)
{
	struct fx *f = *state;
	json_t *r, *c;
	const char *err;
	struct stat st;

	put(f, "var/log/app/bad\xff.log", "0123", 10 * 86400);
	put(f, "var/log/app/two\nlines.log", "0123", 10 * 86400);
	assert_int_equal(plugtest_call(f->t, "apply", "{\"policy\": \"logs\"}", &r, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(r, "files_deleted")), 3);
	assert_int_equal(stat(P(f, "var/log/app/bad\xff.log"), &st), -1);
	c = json_object_get(r, "changes");
	assert_int_equal(json_array_size(c) >= 2, 1);
	int seen = 0;
	for (size_t i = 0; i < json_array_size(c); i++) {
		const char *p = json_string_value(json_object_get(json_array_get(c, i), "path"));
		seen += p && (strcmp(p, "/var/log/app/bad?.log") == 0 ||
		              strcmp(p, "/var/log/app/two?lines.log") == 0);
	}
	assert_int_equal(seen, 2);
	json_decref(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_plan_changes_nothing_and_apply_does_what_it_said,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pushed_policies_replace_the_configured_ones, setup,
	                                    teardown),
	    cmocka_unit_test(test_bad_config_answers_its_location),
	    cmocka_unit_test_setup_teardown(
	        test_names_not_utf8_or_with_newlines_are_cleaned_and_shown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_apply_records_an_event_per_change, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
