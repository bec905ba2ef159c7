/* Tests for src/plugins/sys.c: ping, argument checks, facts from fixtures under
 * tests/plugins/fixtures/sys/ (through the `root` test config) and facts of the live machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plugtest.h"
#include "plugins/builtin.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static const char *const all_sections[] = {"agent",  "host",  "os",     "kernel", "cpu",
                                           "memory", "disks", "mounts", "nics",   "boot"};
#define NSECTIONS (sizeof(all_sections) / sizeof(all_sections[0]))

/* A plugtest whose facts read the fixture tree `name` under tests/plugins/fixtures/sys/. */
static struct plugtest *new_with_root(const char *dir)
{
	char conf[1024];
	int n = snprintf(conf, sizeof(conf), "{\"root\": \"%s\"}", dir);

	assert_true(n > 0 && (size_t)n < sizeof(conf));
	return plugtest_new(&outpost_plugin_sys, conf);
}

static struct plugtest *new_with_fixture(const char *name)
{
	const char *src = getenv("OUTPOST_SRC");
	char dir[900];

	assert_non_null(src);
	snprintf(dir, sizeof(dir), "%s/tests/plugins/fixtures/sys/%s", src, name);
	return new_with_root(dir);
}

static json_t *facts(struct plugtest *t, const char *args)
{
	json_t *r = NULL;
	const char *msg;
	int rc = plugtest_call(t, "facts", args, &r, &msg);

	if (rc != 0)
		fail_msg("facts failed: %d %s", rc, msg);
	assert_true(json_is_object(r));
	return r;
}

static const char *str_at(json_t *o, const char *sec, const char *key)
{
	return json_string_value(json_object_get(json_object_get(o, sec), key));
}

static json_int_t int_at(json_t *o, const char *sec, const char *key)
{
	json_t *v = json_object_get(json_object_get(o, sec), key);
	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

static void write_file(const char *dir, const char *rel, const char *data, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static void rm_tree(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* ---- ping ---- */

static void test_ping_returns_pong_and_now(void **state)
{
	struct plugtest *t = plugtest_new(&outpost_plugin_sys, NULL);
	json_t *r = NULL;
	const char *msg;
	struct timespec ts;
	json_int_t now, got;

	assert_int_equal(plugtest_call(t, "ping", "{}", &r, &msg), 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	assert_true(json_is_true(json_object_get(r, "pong")));
	got = json_integer_value(json_object_get(r, "time_ms"));
	assert_true(got <= now && got > now - 5000);
	assert_int_equal(json_object_size(r), 2);
	json_decref(r);
	plugtest_free(t);
}

static void test_ping_refuses_unknown_arg(void **state)
{
	struct plugtest *t = plugtest_new(&outpost_plugin_sys, NULL);
	json_t *r = NULL;
	const char *msg;

	assert_int_equal(plugtest_call(t, "ping", "{\"verbose\": true}", &r, &msg),
	                 OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "verbose"));
	assert_null(r);
	plugtest_free(t);
}

/* ---- arguments of facts ---- */

static void test_facts_refuses_unknown_arg(void **state)
{
	struct plugtest *t = plugtest_new(&outpost_plugin_sys, NULL);
	json_t *r = NULL;
	const char *msg;

	assert_int_equal(plugtest_call(t, "facts", "{\"sections\": [\"cpu\"]}", &r, &msg),
	                 OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "sections"));
	plugtest_free(t);
}

static void test_facts_only_unknown_section_names_valid_ones(void **state)
{
	struct plugtest *t = plugtest_new(&outpost_plugin_sys, NULL);
	json_t *r = NULL;
	const char *msg;

	assert_int_equal(plugtest_call(t, "facts", "{\"only\": [\"cpu\", \"gpu\"]}", &r, &msg),
	                 OUTPOST_E_BAD_ARGS);
	assert_null(r);
	assert_non_null(strstr(msg, "'gpu'"));
	for (size_t i = 0; i < NSECTIONS; i++)
		assert_non_null(strstr(msg, all_sections[i]));
	plugtest_free(t);
}

static void test_facts_only_refuses_non_strings_and_non_arrays(void **state)
{
	struct plugtest *t = plugtest_new(&outpost_plugin_sys, NULL);
	json_t *r = NULL;
	const char *msg;

	assert_int_equal(plugtest_call(t, "facts", "{\"only\": [\"cpu\", 3]}", &r, &msg),
	                 OUTPOST_E_BAD_ARGS);
	assert_int_equal(plugtest_call(t, "facts", "{\"only\": \"cpu\"}", &r, &msg),
	                 OUTPOST_E_BAD_ARGS);
	assert_int_equal(plugtest_call(t, "facts", "[]", &r, &msg), OUTPOST_E_BAD_ARGS);
	plugtest_free(t);
}

static void test_facts_only_returns_just_those_sections(void **state)
{
	struct plugtest *t = plugtest_new(&outpost_plugin_sys, NULL);
	json_t *r = facts(t, "{\"only\": [\"memory\", \"cpu\", \"cpu\"]}");

	assert_int_equal(json_object_size(r), 2);
	assert_non_null(json_object_get(r, "cpu"));
	assert_non_null(json_object_get(r, "memory"));
	json_decref(r);
	r = facts(t, "{\"only\": []}");
	assert_int_equal(json_object_size(r), 0);
	json_decref(r);
	r = facts(t, "{\"only\": null}");
	assert_int_equal(json_object_size(r), NSECTIONS);
	json_decref(r);
	plugtest_free(t);
}

static void test_facts_past_deadline_times_out(void **state)
{
	struct plugtest *t = plugtest_new(&outpost_plugin_sys, NULL);
	json_t *r = NULL;
	const char *msg;

	assert_int_equal(plugtest_call_deadline(t, "facts", "{}", -1000, &r, &msg),
	                 OUTPOST_E_TIMEOUT);
	assert_null(r);
	plugtest_free(t);
}

static void test_init_refuses_bad_config(void **state)
{
	static const char *const bad[] = {"{\"root\": \"relative/dir\"}", "{\"root\": 5}",
	                                  "{\"proc\": \"/x\"}"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct plugtest *t = plugtest_new_any(&outpost_plugin_sys, bad[i]);
		assert_int_not_equal(plugtest_init_rc(t), 0);
		plugtest_free(t);
	}
}

/* ---- facts from fixtures ---- */

static void test_facts_reads_os_release_with_shell_quoting(void **state)
{
	struct plugtest *t = new_with_fixture("root");
	json_t *r = facts(t, "{\"only\": [\"os\"]}");

	assert_string_equal(str_at(r, "os", "id"), "example");
	assert_string_equal(str_at(r, "os", "version_id"), "9.2");
	assert_string_equal(str_at(r, "os", "pretty_name"), "Example Linux 9.2 \"Blue\" \\o/");
	json_decref(r);
	plugtest_free(t);
}

static void test_facts_falls_back_to_usr_lib_os_release(void **state)
{
	struct plugtest *t = new_with_fixture("usrlib");
	json_t *r = facts(t, "{\"only\": [\"os\"]}");

	assert_string_equal(str_at(r, "os", "id"), "fallback");
	assert_string_equal(str_at(r, "os", "pretty_name"), "Fallback OS");
	assert_true(json_is_null(json_object_get(json_object_get(r, "os"), "version_id")));
	json_decref(r);
	plugtest_free(t);
}

static void test_facts_reads_cpu_model_and_memory(void **state)
{
	struct plugtest *t = new_with_fixture("root");
	json_t *r = facts(t, "{\"only\": [\"cpu\", \"memory\"]}");

	assert_string_equal(str_at(r, "cpu", "model"), "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz");
	assert_true(int_at(r, "cpu", "count") >= 1);
	assert_int_equal(int_at(r, "memory", "total_bytes"), 16318452LL * 1024);
	assert_int_equal(int_at(r, "memory", "swap_total_bytes"), 2097148LL * 1024);
	json_decref(r);
	plugtest_free(t);
}

static void test_facts_reads_host_names_without_dns(void **state)
{
	struct plugtest *t = new_with_fixture("root");
	json_t *r = facts(t, "{\"only\": [\"host\", \"agent\"]}");

	assert_string_equal(str_at(r, "host", "hostname"), "web1");
	assert_string_equal(str_at(r, "host", "fqdn"), "web1.example.com");
	assert_string_equal(str_at(r, "host", "machine_id"), "0123456789abcdef0123456789abcdef");
	assert_string_equal(str_at(r, "agent", "version"), OUTPOST_VERSION);
	json_decref(r);
	plugtest_free(t);
}

static void test_facts_reads_boot_time_and_uptime(void **state)
{
	struct plugtest *t = new_with_fixture("root");
	json_t *r = facts(t, "{\"only\": [\"boot\"]}");

	assert_int_equal(int_at(r, "boot", "time"), 1700000000);
	assert_string_equal(str_at(r, "boot", "time_iso"), "2023-11-14T22:13:20Z");
	assert_int_equal(int_at(r, "boot", "uptime_seconds"), 12345);
	json_decref(r);
	plugtest_free(t);
}

static void test_facts_lists_disks_sorted_without_empty_loops(void **state)
{
	struct plugtest *t = new_with_fixture("root");
	json_t *r = facts(t, "{\"only\": [\"disks\"]}");
	json_t *d = json_object_get(r, "disks"), *e;

	assert_int_equal(json_array_size(d), 3); /* loop0 and zram0 are empty */
	e = json_array_get(d, 0);
	assert_string_equal(json_string_value(json_object_get(e, "name")), "loop1");
	assert_int_equal(json_integer_value(json_object_get(e, "size_bytes")), 2048 * 512);
	assert_true(json_is_null(json_object_get(e, "model")));
	e = json_array_get(d, 1);
	assert_string_equal(json_string_value(json_object_get(e, "name")), "nvme0n1");
	assert_true(json_is_false(json_object_get(e, "rotational")));
	e = json_array_get(d, 2);
	assert_string_equal(json_string_value(json_object_get(e, "name")), "sda");
	assert_int_equal(json_integer_value(json_object_get(e, "size_bytes")), 937703088LL * 512);
	assert_true(json_is_true(json_object_get(e, "rotational")));
	assert_string_equal(json_string_value(json_object_get(e, "model")), "ST500DM002-1BD14");
	json_decref(r);
	plugtest_free(t);
}

static void test_facts_lists_real_mounts_only(void **state)
{
	struct plugtest *t = new_with_fixture("root");
	json_t *r = facts(t, "{\"only\": [\"mounts\"]}");
	json_t *m = json_object_get(r, "mounts"), *e;

	/* sysfs, proc, tmpfs, cgroup2 and squashfs are left out. */
	assert_int_equal(json_array_size(m), 4);
	e = json_array_get(m, 0);
	assert_string_equal(json_string_value(json_object_get(e, "device")), "/dev/sda1");
	assert_string_equal(json_string_value(json_object_get(e, "mount_point")), "/");
	assert_string_equal(json_string_value(json_object_get(e, "fstype")), "ext4");
	assert_true(json_is_false(json_object_get(e, "read_only")));
	/* "/" under the fixture root exists, so statvfs answered. */
	assert_true(json_integer_value(json_object_get(e, "total_bytes")) > 0);
	assert_true(json_is_integer(json_object_get(e, "free_bytes")));
	assert_true(json_is_integer(json_object_get(e, "avail_bytes")));
	e = json_array_get(m, 1);
	assert_string_equal(json_string_value(json_object_get(e, "mount_point")), "/mnt/my data");
	assert_true(json_is_true(json_object_get(e, "read_only")));
	assert_true(json_is_null(json_object_get(e, "total_bytes"))); /* not in the fixture */
	e = json_array_get(m, 2);
	assert_string_equal(json_string_value(json_object_get(e, "fstype")), "nfs4");
	assert_true(json_is_null(json_object_get(e, "total_bytes"))); /* network: never asked */
	e = json_array_get(m, 3);
	assert_string_equal(json_string_value(json_object_get(e, "fstype")), "fuse.sshfs");
	assert_true(json_is_null(json_object_get(e, "free_bytes")));
	json_decref(r);
	plugtest_free(t);
}

static void test_facts_bounds_strings_and_makes_them_utf8(void **state)
{
	char dir[] = "/tmp/outpost-sys-XXXXXX", sub[600], model[1200];
	struct plugtest *t;
	json_t *r;
	const char *s;
	size_t n;

	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/etc", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(sub, sizeof(sub), "%s/proc", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	/* Invalid bytes: a stray continuation, an overlong '/', a surrogate, a cut sequence. */
	static const char osrel[] = "PRETTY_NAME=\"A\x80"
	                            "B\xc0\xaf"
	                            "C\xed\xa0\x80"
	                            "D\xc3\"\nID=\xe2\x82\xac\n";
	write_file(dir, "etc/os-release", osrel, sizeof(osrel) - 1);
	/* A model name far past the bound, ending on a multi-byte character cut by the bound. */
	n = (size_t)snprintf(model, sizeof(model), "model name\t: ");
	memset(model + n, 'x', 255);
	n += 255;
	memcpy(model + n, "\xc3\xa9", 2); /* 'é' straddles byte 256 */
	n += 2;
	memset(model + n, 'y', 700);
	n += 700;
	model[n++] = '\n';
	write_file(dir, "proc/cpuinfo", model, n);

	t = new_with_root(dir);
	r = facts(t, "{\"only\": [\"os\", \"cpu\"]}");
	assert_string_equal(str_at(r, "os", "pretty_name"), "A\xef\xbf\xbd"
	                                                    "B\xef\xbf\xbd\xef\xbf\xbd"
	                                                    "C\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
	                                                    "D\xef\xbf\xbd");
	assert_string_equal(str_at(r, "os", "id"), "\xe2\x82\xac");
	s = str_at(r, "cpu", "model");
	assert_non_null(s);
	assert_int_equal(strlen(s), 255);
	assert_int_equal(strspn(s, "x"), 255);
	json_decref(r);
	plugtest_free(t);
	rm_tree(dir);
}

static void test_facts_missing_sources_are_null_not_errors(void **state)
{
	struct plugtest *t = new_with_root("/nonexistent/outpost-sys-root");
	json_t *r = facts(t, NULL);

	assert_int_equal(json_object_size(r), NSECTIONS);
	assert_true(json_is_null(json_object_get(r, "os")));
	assert_true(json_is_null(json_object_get(r, "memory")));
	assert_true(json_is_null(json_object_get(r, "disks")));
	assert_true(json_is_null(json_object_get(r, "mounts")));
	assert_true(json_is_null(json_object_get(json_object_get(r, "host"), "machine_id")));
	assert_true(json_is_null(json_object_get(json_object_get(r, "boot"), "time")));
	assert_true(json_is_null(json_object_get(json_object_get(r, "cpu"), "model")));
	/* What comes from syscalls is still there. */
	assert_non_null(str_at(r, "kernel", "release"));
	assert_true(int_at(r, "cpu", "count") >= 1);
	json_decref(r);
	plugtest_free(t);
}

/* ---- facts of the live machine ---- */

static void test_facts_live_machine_is_sane(void **state)
{
	struct plugtest *t = plugtest_new(&outpost_plugin_sys, NULL);
	json_t *r = facts(t, "{}"), *v;
	char rel[256] = "";
	FILE *p;
	size_t i;
	char *text;

	for (i = 0; i < NSECTIONS; i++)
		assert_non_null(json_object_get(r, all_sections[i]));
	assert_int_equal(json_object_size(r), NSECTIONS);
	assert_true(int_at(r, "cpu", "count") >= 1);
	assert_true(int_at(r, "memory", "total_bytes") > 0);
	assert_true(strlen(str_at(r, "host", "hostname")) > 0);
	p = popen("uname -r", "r");
	assert_non_null(p);
	assert_non_null(fgets(rel, sizeof(rel), p));
	pclose(p);
	rel[strcspn(rel, "\n")] = '\0';
	assert_string_equal(str_at(r, "kernel", "release"), rel);
	assert_string_equal(str_at(r, "agent", "version"), OUTPOST_VERSION);
	assert_true(int_at(r, "boot", "time") < (json_int_t)time(NULL));
	assert_true(int_at(r, "boot", "uptime_seconds") >= 0);
	assert_true(json_is_array(json_object_get(r, "disks")));
	json_array_foreach(json_object_get(r, "mounts"), i, v)
	{
		const char *fs = json_string_value(json_object_get(v, "fstype"));
		assert_true(strcmp(fs, "proc") && strcmp(fs, "sysfs") && strcmp(fs, "tmpfs") &&
		            strcmp(fs, "cgroup2"));
	}
	json_array_foreach(json_object_get(r, "nics"), i, v)
	{
		json_t *a;
		size_t j;
		if (strcmp(json_string_value(json_object_get(v, "name")), "lo") != 0)
			continue;
		assert_true(json_is_true(json_object_get(v, "up")));
		json_array_foreach(json_object_get(v, "addresses"), j, a)
		{
			if (strcmp(json_string_value(json_object_get(a, "address")), "127.0.0.1"))
				continue;
			assert_string_equal(json_string_value(json_object_get(a, "family")),
			                    "ipv4");
			assert_int_equal(json_integer_value(json_object_get(a, "prefix")), 8);
		}
	}
	text = json_dumps(r, 0);
	assert_non_null(text);
	free(text);
	json_decref(r);
	plugtest_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ping_returns_pong_and_now),
	    cmocka_unit_test(test_ping_refuses_unknown_arg),
	    cmocka_unit_test(test_facts_refuses_unknown_arg),
	    cmocka_unit_test(test_facts_only_unknown_section_names_valid_ones),
	    cmocka_unit_test(test_facts_only_refuses_non_strings_and_non_arrays),
	    cmocka_unit_test(test_facts_only_returns_just_those_sections),
	    cmocka_unit_test(test_facts_past_deadline_times_out),
	    cmocka_unit_test(test_init_refuses_bad_config),
	    cmocka_unit_test(test_facts_reads_os_release_with_shell_quoting),
	    cmocka_unit_test(test_facts_falls_back_to_usr_lib_os_release),
	    cmocka_unit_test(test_facts_reads_cpu_model_and_memory),
	    cmocka_unit_test(test_facts_reads_host_names_without_dns),
	    cmocka_unit_test(test_facts_reads_boot_time_and_uptime),
	    cmocka_unit_test(test_facts_lists_disks_sorted_without_empty_loops),
	    cmocka_unit_test(test_facts_lists_real_mounts_only),
	    cmocka_unit_test(test_facts_bounds_strings_and_makes_them_utf8),
	    cmocka_unit_test(test_facts_missing_sources_are_null_not_errors),
	    cmocka_unit_test(test_facts_live_machine_is_sane),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
