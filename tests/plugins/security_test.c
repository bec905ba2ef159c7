/* Tests for src/plugins/security/: its config refused with the key at fault, and on a fake
 * root, a first look that is a baseline (no events), then a changed passwd seen through
 * inotify as events with a diff, and shadow never leaking a hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/loop.h"
#include "plugins/builtin.h"
#include "support/plugtest.h"

static void write_file(const char *dir, const char *rel, const char *text)
{
	char path[512], tmp[520];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	assert_non_null(f = fopen(tmp, "w"));
	fputs(text, f);
	fclose(f);
	assert_int_equal(rename(tmp, path), 0);
}

static void mkdirs(const char *dir, const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	for (char *p = path + strlen(dir) + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(path, 0755);
			*p = '/';
		}
	mkdir(path, 0755);
}

static void test_config_is_refused_by_key(void **state)
{
	static const char *const bad[] = {
	    "{\"enabled\": true, \"interval_ms\": 10}",
	    "{\"enabled\": true, \"root\": \"relative\"}",
	    "{\"enabled\": true, \"root\": \"/a/../b\"}",
	    "{\"enabled\": true, \"firewall\": [[]]}",
	    "{\"enabled\": \"yes\"}",
	    "{\"enabled\": true, \"setuid_roots\": [\"usr\"]}",
	    "{\"surprise\": 1}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct plugtest *t = plugtest_new_any(&outpost_plugin_security, bad[i]);
		assert_true(plugtest_init_rc(t) < 0);
		plugtest_free(t);
	}
}

static void test_disabled_plugin_answers_and_watches_nothing(void **state)
{
	struct plugtest *t = plugtest_new(&outpost_plugin_security, NULL);
	const char *msg;
	json_t *r = NULL;

	assert_int_equal(plugtest_call(t, "status", "{}", &r, &msg), 0);
	assert_false(json_is_true(json_object_get(r, "enabled")));
	json_decref(r);
	assert_int_equal(plugtest_call(t, "baseline", "{}", &r, &msg), OUTPOST_E_UNAVAILABLE);
	assert_non_null(strstr(msg, "plugins.security.enabled"));
	plugtest_free(t);
}

/* Runs the loop until status says at least n events were handed over (or fails). */
static json_t *wait_events(struct plugtest *t, long long n)
{
	const char *msg;
	json_t *r = NULL;

	for (int i = 0; i < 200; i++) {
		loop_run_once(plugtest_loop(t), 50);
		assert_int_equal(plugtest_call(t, "status", "{}", &r, &msg), 0);
		if (json_integer_value(json_object_get(r, "events")) >= n &&
		    json_integer_value(json_object_get(r, "checks")) >= 1)
			return r;
		json_decref(r);
	}
	assert_int_equal(plugtest_call(t, "status", "{}", &r, &msg), 0);
	fail_msg("no %lld events: %s", n, json_dumps(r, 0));
	return NULL;
}

static void test_passwd_change_is_seen_with_a_diff_and_shadow_stays_secret(void **state)
{
	char root[] = "/tmp/outpost-sec-XXXXXX", conf[600];
	struct plugtest *t;
	json_t *pub, *r, *evs, *ev;
	char *text;

	assert_non_null(mkdtemp(root));
	mkdirs(root, "etc/ssh");
	write_file(root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
	write_file(root, "etc/shadow", "root:$6$s$secrethash:1:0:99999:7:::\n");
	snprintf(conf, sizeof(conf),
	         "{\"enabled\": true, \"root\": \"%s\", \"firewall\": [], \"sockets\": false}",
	         root);
	t = plugtest_new(&outpost_plugin_security, conf);
	pub = plugtest_published(t);
	r = wait_events(t, 0);
	assert_int_equal(json_integer_value(json_object_get(r, "files")), 2);
	json_decref(r);
	assert_int_equal(json_array_size(pub), 0); /* the baseline is no news */

	write_file(root, "etc/passwd",
	           "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\n");
	json_decref(wait_events(t, 2));
	assert_int_equal(json_array_size(pub), 1);
	evs = json_object_get(json_array_get(pub, 0), "events");
	assert_int_equal(json_array_size(evs), 2);
	ev = json_array_get(evs, 0);
	assert_string_equal(json_string_value(json_object_get(ev, "kind")),
	                    "security.passwd_changed");
	assert_string_equal(
	    json_string_value(json_array_get(
	        json_object_get(json_object_get(json_object_get(ev, "data"), "diff"), "added"), 0)),
	    "toor:x:0:0::/root:/bin/sh");
	assert_string_equal(json_string_value(json_object_get(json_array_get(evs, 1), "kind")),
	                    "security.uid0_added");

	write_file(root, "etc/shadow", "root:$6$s$otherhash:2:0:99999:7:::\n");
	json_decref(wait_events(t, 4));
	text = json_dumps(pub, 0);
	assert_null(strstr(text, "secrethash"));
	assert_null(strstr(text, "otherhash"));
	assert_non_null(strstr(text, "security.root_password_changed"));
	free(text);
	plugtest_free(t);
	{
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
		assert_int_equal(system(cmd), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_is_refused_by_key),
	    cmocka_unit_test(test_disabled_plugin_answers_and_watches_nothing),
	    cmocka_unit_test(test_passwd_change_is_seen_with_a_diff_and_shadow_stays_secret),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
