/* Tests for cleanup policies checked into structs (src/plugins/cleanup/policy.c): what a good
 * policy becomes, and that every bad one is refused with the key path of what is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plugins/cleanup/policy.h"

#include <outpost/plugin.h>
#include <stdio.h>
#include <string.h>

static int parse(const char *text, struct cl_set *s, char *msg, size_t len)
{
	json_error_t je;
	json_t *v = json_loads(text, 0, &je);
	int rc;

	assert_non_null(v);
	rc = cl_policy_parse(v, "policies", s, msg, len);
	json_decref(v);
	return rc;
}

static void test_good_policy_is_read_whole(void **state)
{
	struct cl_set s;
	char msg[512];

	assert_int_equal(
	    parse("[{\"name\": \"logs\", \"paths\": [{\"dir\": \"/var/log/app\", \"match\": "
	          "\"*.log*\", \"max_age\": \"14d\", \"keep\": 5, \"max_total_size\": \"100M\", "
	          "\"compress_after\": \"1d\", \"recurse\": true}], \"sysctl\": "
	          "{\"vm.swappiness\": 10, \"net.core.somaxconn\": {\"value\": \"4096\", "
	          "\"enforce\": true}}, \"required\": [{\"path\": \"/etc/app\", \"type\": \"dir\", "
	          "\"mode\": \"0750\", \"owner\": \"root\", \"group\": 0, \"enforce\": true}], "
	          "\"packages\": [\"openssh-server\", \"libc6\"]}]",
	          &s, msg, sizeof(msg)),
	    0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.v[0].name, "logs");
	assert_int_equal(s.v[0].nrules, 1);
	assert_string_equal(s.v[0].rules[0].dir, "/var/log/app");
	assert_int_equal(s.v[0].rules[0].max_age_s, 14 * 86400);
	assert_int_equal(s.v[0].rules[0].keep, 5);
	assert_int_equal(s.v[0].rules[0].max_total_bytes, 100LL << 20);
	assert_int_equal(s.v[0].rules[0].compress_after_s, 86400);
	assert_true(s.v[0].rules[0].recurse);
	assert_int_equal(s.v[0].nsysctls, 2);
	assert_string_equal(s.v[0].sysctls[0].value, "10");
	assert_false(s.v[0].sysctls[0].enforce);
	assert_true(s.v[0].sysctls[1].enforce);
	assert_int_equal(s.v[0].nrequired, 1);
	assert_true(s.v[0].required[0].dir);
	assert_int_equal(s.v[0].required[0].mode, 0750);
	assert_int_equal(s.v[0].required[0].uid, 0);
	assert_int_equal(s.v[0].npackages, 2);
	cl_set_free(&s);
}

static void test_match_defaults_to_every_name(void **state)
{
	struct cl_set s;
	char msg[512];

	assert_int_equal(
	    parse("[{\"name\": \"t\", \"paths\": [{\"dir\": \"/tmp/x\", \"keep\": 0}]}]", &s, msg,
	          sizeof(msg)),
	    0);
	assert_string_equal(s.v[0].rules[0].match, "*");
	assert_int_equal(s.v[0].rules[0].keep, 0);
	assert_int_equal(s.v[0].rules[0].max_total_bytes, -1);
	cl_set_free(&s);
}

/* Each bad policy, and the start of the message it must get: the key path first. */
static void test_bad_policies_are_located(void **state)
{
	static const char *const cases[][2] = {
	    {"{}", "policies: must be an array"},
	    {"[{\"paths\": []}]", "policies[0].name: required"},
	    {"[{\"name\": \"a\", \"pathz\": []}]", "policies[0]: unknown key 'pathz'"},
	    {"[{\"name\": \"a\", \"paths\": [{\"dir\": \"/v\", \"max_age\": \"3x\"}]}]",
	     "policies[0].paths[0].max_age: must be a positive duration"},
	    {"[{\"name\": \"a\", \"paths\": [{\"dir\": \"/v\", \"keep\": 1}, {\"dir\": \"v\", "
	     "\"keep\": 1}]}]",
	     "policies[0].paths[1].dir: 'v' must be an absolute path"},
	    {"[{\"name\": \"a\", \"paths\": [{\"dir\": \"/v/../etc\", \"keep\": 1}]}]",
	     "policies[0].paths[0].dir:"},
	    {"[{\"name\": \"a\", \"paths\": [{\"dir\": \"/\", \"keep\": 1}]}]",
	     "policies[0].paths[0].dir: '/' is refused"},
	    {"[{\"name\": \"a\", \"paths\": [{\"dir\": \"/v\"}]}]",
	     "policies[0].paths[0]: has no rule"},
	    {"[{\"name\": \"a\", \"paths\": [{\"dir\": \"/v\", \"keep\": -1}]}]",
	     "policies[0].paths[0].keep: must be an integer"},
	    {"[{\"name\": \"a\", \"paths\": [{\"dir\": \"/v\", \"max_total_size\": \"1Q\"}]}]",
	     "policies[0].paths[0].max_total_size: must be bytes"},
	    {"[{\"name\": \"a\", \"paths\": [{\"dir\": \"/v\", \"match\": \"a/b\", \"keep\": 1}]}]",
	     "policies[0].paths[0].match: 'a/b' matches names"},
	    {"[{\"name\": \"a\", \"sysctl\": {\"vm/../x\": 1}}]",
	     "policies[0].sysctl: 'vm/../x' is not a sysctl name"},
	    {"[{\"name\": \"a\", \"sysctl\": {\"vm.swappiness\": {\"value\": [1]}}}]",
	     "policies[0].sysctl.vm.swappiness.value: must be"},
	    {"[{\"name\": \"a\", \"sysctl\": {\"vm.swappiness\": {\"enforce\": true}}}]",
	     "policies[0].sysctl.vm.swappiness.value: required"},
	    {"[{\"name\": \"a\", \"required\": [{\"path\": \"/x\", \"mode\": \"999\"}]}]",
	     "policies[0].required[0].mode: must be an octal string"},
	    {"[{\"name\": \"a\", \"required\": [{\"path\": \"/x\", \"owner\": "
	     "\"no-such-user-here\"}]}]",
	     "policies[0].required[0].owner: no user 'no-such-user-here'"},
	    {"[{\"name\": \"a\", \"required\": [{\"path\": \"/x\", \"type\": \"fifo\"}]}]",
	     "policies[0].required[0].type: must be \"file\" or \"dir\""},
	    {"[{\"name\": \"a\", \"packages\": [\"ok-name\", \"Bad Name\"]}]",
	     "policies[0].packages[1]: must be a Debian package name"},
	    {"[{\"name\": \"a\"}, {\"name\": \"a\"}]",
	     "policies[1].name: 'a' is also the name of policies[0]"},
	};
	char msg[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cl_set s;
		int rc = parse(cases[i][0], &s, msg, sizeof(msg));
		if (rc != OUTPOST_E_BAD_ARGS || strncmp(msg, cases[i][1], strlen(cases[i][1])) != 0)
			fail_msg("case %zu: %s\n  got %d '%s'\n  want '%s'", i, cases[i][0], rc,
			         msg, cases[i][1]);
		cl_set_free(&s);
	}
}

static void test_durations_and_sizes(void **state)
{
	json_t *v;

	assert_int_equal(cl_duration(v = json_string("90")), 90);
	json_decref(v);
	assert_int_equal(cl_duration(v = json_string("15m")), 900);
	json_decref(v);
	assert_int_equal(cl_duration(v = json_integer(7)), 7);
	json_decref(v);
	assert_int_equal(cl_duration(v = json_string("1dd")), -1);
	json_decref(v);
	assert_int_equal(cl_duration(v = json_string("-1d")), -1);
	json_decref(v);
	assert_int_equal(cl_bytes(v = json_string("2G")), 2LL << 30);
	json_decref(v);
	assert_int_equal(cl_bytes(v = json_string("99999999999999999999T")), -1);
	json_decref(v);
	assert_int_equal(cl_bytes(v = json_real(1.5)), -1);
	json_decref(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_policy_is_read_whole),
	    cmocka_unit_test(test_match_defaults_to_every_name),
	    cmocka_unit_test(test_bad_policies_are_located),
	    cmocka_unit_test(test_durations_and_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
