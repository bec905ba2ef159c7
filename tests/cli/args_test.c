/* Tests for src/cli/args.c: durations, counts, batches, ids, labels, call arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"

static void test_duration_units_and_compounds(void **state)
{
	int64_t ms;

	assert_int_equal(args_duration("60s", &ms), 0);
	assert_int_equal(ms, 60000);
	assert_int_equal(args_duration("5m", &ms), 0);
	assert_int_equal(ms, 300000);
	assert_int_equal(args_duration("2h", &ms), 0);
	assert_int_equal(ms, 7200000);
	assert_int_equal(args_duration("1d", &ms), 0);
	assert_int_equal(ms, 86400000);
	assert_int_equal(args_duration("500ms", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(args_duration("1h30m", &ms), 0);
	assert_int_equal(ms, 5400000);
}

static void test_duration_bare_number_is_seconds(void **state)
{
	int64_t ms;

	assert_int_equal(args_duration("90", &ms), 0);
	assert_int_equal(ms, 90000);
	/* Only as the whole value: "1h30" is a typo, not 1h + 30s. */
	assert_int_equal(args_duration("1h30", &ms), -1);
}

static void test_duration_refuses_bad_values(void **state)
{
	static const char *const bad[] = {"",    "s",    "5x", "-5s", "1.5h", " 5s",
	                                  "5s ", "0s",   "0",  "5 s", "5S",   "99999999d",
	                                  "1y",  "5sec", "m5", NULL};
	int64_t ms = 42;

	for (size_t i = 0; bad[i]; i++) {
		assert_int_equal(args_duration(bad[i], &ms), -1);
		assert_int_equal(ms, 42);
	}
	assert_int_equal(args_duration(NULL, &ms), -1);
}

static void test_duration_caps_at_a_year(void **state)
{
	int64_t ms;

	assert_int_equal(args_duration("366d", &ms), 0);
	assert_int_equal(args_duration("367d", &ms), -1);
	assert_int_equal(args_duration("366d1s", &ms), -1);
	assert_int_equal(args_duration("99999999999999999999s", &ms), -1);
}

static void test_int_is_strict(void **state)
{
	long long v;

	assert_int_equal(args_int("0", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(args_int("10", 0, 10, &v), 0);
	assert_int_equal(args_int("11", 0, 10, &v), -1);
	assert_int_equal(args_int("-1", 0, 10, &v), -1);
	assert_int_equal(args_int("3x", 0, 10, &v), -1);
	assert_int_equal(args_int(" 3", 0, 10, &v), -1);
	assert_int_equal(args_int("+3", 0, 10, &v), -1);
	assert_int_equal(args_int("", 0, 10, &v), -1);
}

static void test_batch_count_or_percentage(void **state)
{
	json_t *b;

	assert_int_equal(args_batch("10", &b), 0);
	assert_true(json_is_integer(b));
	assert_int_equal(json_integer_value(b), 10);
	json_decref(b);
	assert_int_equal(args_batch("25%", &b), 0);
	assert_string_equal(json_string_value(b), "25%");
	json_decref(b);
	assert_int_equal(args_batch("100%", &b), 0);
	json_decref(b);
	assert_int_equal(args_batch("0", &b), -1);
	assert_int_equal(args_batch("0%", &b), -1);
	assert_int_equal(args_batch("101%", &b), -1);
	assert_int_equal(args_batch("%", &b), -1);
	assert_int_equal(args_batch("10%%", &b), -1);
	assert_int_equal(args_batch("ten", &b), -1);
	assert_null(b);
}

static void test_ids_follow_the_host_id_rule(void **state)
{
	assert_true(args_id_ok("web-01"));
	assert_true(args_id_ok("cli-0123abcd"));
	assert_true(args_id_ok("a.b_c-d"));
	assert_false(args_id_ok(""));
	assert_false(args_id_ok(".hidden"));
	assert_false(args_id_ok("-x"));
	assert_false(args_id_ok("a/b"));
	assert_false(args_id_ok("a b"));
	assert_false(args_id_ok("../etc"));
	assert_false(args_id_ok("x?wait=1"));
	assert_true(args_id_ok("0123456789012345678901234567890123456789012345678901234567890123"));
	assert_false(
	    args_id_ok("01234567890123456789012345678901234567890123456789012345678901234"));
}

static void test_label_set_values_are_strings(void **state)
{
	json_t *set = json_object();
	char msg[256];

	assert_int_equal(args_label_set(set, NULL, "role=web", msg, sizeof(msg)), 0);
	assert_int_equal(args_label_set(set, NULL, "n=5", msg, sizeof(msg)), 0);
	assert_int_equal(args_label_set(set, NULL, "empty=", msg, sizeof(msg)), 0);
	assert_int_equal(args_label_set(set, NULL, "url=a=b", msg, sizeof(msg)), 0);
	assert_string_equal(json_string_value(json_object_get(set, "role")), "web");
	assert_string_equal(json_string_value(json_object_get(set, "n")), "5");
	assert_string_equal(json_string_value(json_object_get(set, "empty")), "");
	assert_string_equal(json_string_value(json_object_get(set, "url")), "a=b");
	json_decref(set);
}

static void test_label_set_refuses_bad_keys_and_repeats(void **state)
{
	json_t *set = json_object(), *remove = json_pack("[s]", "dc");
	char msg[256];

	assert_int_equal(args_label_set(set, remove, "role", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "not key=value"));
	assert_int_equal(args_label_set(set, remove, "=x", msg, sizeof(msg)), -1);
	assert_int_equal(args_label_set(set, remove, "1x=y", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "not a label key"));
	assert_int_equal(args_label_set(set, remove, "a b=y", msg, sizeof(msg)), -1);
	assert_int_equal(args_label_set(set, remove, "dc=sh", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "'dc' is given twice"));
	assert_int_equal(args_label_set(set, remove, "os.family=x", msg, sizeof(msg)), 0);
	assert_int_equal(args_label_set(set, remove, "os.family=y", msg, sizeof(msg)), -1);
	assert_int_equal(json_object_size(set), 1);
	json_decref(set);
	json_decref(remove);
}

static void test_label_key_length_limit(void **state)
{
	char key[80];

	memset(key, 'k', 63);
	key[63] = '\0';
	assert_true(args_label_key_ok(key));
	key[63] = 'k';
	key[64] = '\0';
	assert_false(args_label_key_ok(key));
	assert_false(args_label_key_ok("-role"));
	assert_true(args_label_key_ok("role-"));
	assert_true(args_label_key_ok("_x.y-z"));
}

static void test_label_list_splits_on_commas(void **state)
{
	json_t *set = json_object();
	char msg[256];

	assert_int_equal(args_label_list(set, "dc=sh,role=web", msg, sizeof(msg)), 0);
	assert_int_equal(json_object_size(set), 2);
	assert_string_equal(json_string_value(json_object_get(set, "dc")), "sh");
	assert_int_equal(args_label_list(set, "x=1,broken", msg, sizeof(msg)), -1);
	assert_int_equal(args_label_list(set, "", msg, sizeof(msg)), -1);
	json_decref(set);
}

static void test_call_arg_equals_is_always_a_string(void **state)
{
	json_t *a = json_object();
	char msg[256];

	assert_int_equal(args_call_arg(a, "n=5", msg, sizeof(msg)), 0);
	assert_int_equal(args_call_arg(a, "on=true", msg, sizeof(msg)), 0);
	assert_int_equal(args_call_arg(a, "v=1.10", msg, sizeof(msg)), 0);
	assert_int_equal(args_call_arg(a, "q={\"x\":1}", msg, sizeof(msg)), 0);
	assert_int_equal(args_call_arg(a, "e=", msg, sizeof(msg)), 0);
	assert_string_equal(json_string_value(json_object_get(a, "n")), "5");
	assert_string_equal(json_string_value(json_object_get(a, "on")), "true");
	assert_string_equal(json_string_value(json_object_get(a, "v")), "1.10");
	assert_string_equal(json_string_value(json_object_get(a, "q")), "{\"x\":1}");
	assert_string_equal(json_string_value(json_object_get(a, "e")), "");
	json_decref(a);
}

static void test_call_arg_colon_equals_is_json(void **state)
{
	json_t *a = json_object();
	char msg[256];

	assert_int_equal(args_call_arg(a, "n:=5", msg, sizeof(msg)), 0);
	assert_int_equal(args_call_arg(a, "on:=true", msg, sizeof(msg)), 0);
	assert_int_equal(args_call_arg(a, "argv:=[\"ls\",\"-l\"]", msg, sizeof(msg)), 0);
	assert_int_equal(args_call_arg(a, "env:={\"A\":\"b\"}", msg, sizeof(msg)), 0);
	assert_int_equal(args_call_arg(a, "s:=\"text\"", msg, sizeof(msg)), 0);
	assert_int_equal(args_call_arg(a, "z:=null", msg, sizeof(msg)), 0);
	assert_int_equal(json_integer_value(json_object_get(a, "n")), 5);
	assert_true(json_is_true(json_object_get(a, "on")));
	assert_int_equal(json_array_size(json_object_get(a, "argv")), 2);
	assert_string_equal(json_string_value(json_object_get(json_object_get(a, "env"), "A")),
	                    "b");
	assert_string_equal(json_string_value(json_object_get(a, "s")), "text");
	assert_true(json_is_null(json_object_get(a, "z")));
	json_decref(a);
}

static void test_call_arg_refusals_say_why(void **state)
{
	json_t *a = json_object();
	char msg[256];

	assert_int_equal(args_call_arg(a, "n:=five", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "argument 'n'"));
	assert_non_null(strstr(msg, "n=TEXT"));
	assert_int_equal(args_call_arg(a, "n:=", msg, sizeof(msg)), -1);
	assert_int_equal(args_call_arg(a, "n:={\"a\":1,\"a\":2}", msg, sizeof(msg)), -1);
	assert_int_equal(args_call_arg(a, "novalue", msg, sizeof(msg)), -1);
	assert_int_equal(args_call_arg(a, "=x", msg, sizeof(msg)), -1);
	assert_int_equal(args_call_arg(a, ":=1", msg, sizeof(msg)), -1);
	assert_int_equal(args_call_arg(a, "a:b=1", msg, sizeof(msg)), -1);
	assert_int_equal(args_call_arg(a, "k=1", msg, sizeof(msg)), 0);
	assert_int_equal(args_call_arg(a, "k:=2", msg, sizeof(msg)), -1);
	assert_non_null(strstr(msg, "given twice"));
	assert_int_equal(args_call_arg(a, "bad=\xff", msg, sizeof(msg)), -1);
	assert_int_equal(json_object_size(a), 1);
	json_decref(a);
}

static void test_plugin_op_splits_at_the_dot(void **state)
{
	char *p, *o;

	assert_int_equal(args_plugin_op("sys.facts", &p, &o), 0);
	assert_string_equal(p, "sys");
	assert_string_equal(o, "facts");
	free(p);
	free(o);
	assert_int_equal(args_plugin_op("sys", &p, &o), -1);
	assert_int_equal(args_plugin_op(".facts", &p, &o), -1);
	assert_int_equal(args_plugin_op("sys.", &p, &o), -1);
	assert_int_equal(args_plugin_op("Sys.facts", &p, &o), -1);
	assert_int_equal(args_plugin_op("sys.a.b", &p, &o), -1);
	assert_null(p);
}

static void test_env_names(void **state)
{
	json_t *env = json_object();
	char msg[256];

	assert_int_equal(args_env(env, "APP_ENV=prod", msg, sizeof(msg)), 0);
	assert_int_equal(args_env(env, "_X=a=b", msg, sizeof(msg)), 0);
	assert_string_equal(json_string_value(json_object_get(env, "_X")), "a=b");
	assert_int_equal(args_env(env, "1X=a", msg, sizeof(msg)), -1);
	assert_int_equal(args_env(env, "A-B=a", msg, sizeof(msg)), -1);
	assert_int_equal(args_env(env, "NOVALUE", msg, sizeof(msg)), -1);
	assert_int_equal(args_env(env, "=x", msg, sizeof(msg)), -1);
	assert_int_equal(args_env(env, "APP_ENV=dev", msg, sizeof(msg)), -1);
	json_decref(env);
}

static void test_mode_and_role(void **state)
{
	assert_true(args_mode_ok("644"));
	assert_true(args_mode_ok("0640"));
	assert_false(args_mode_ok("64"));
	assert_false(args_mode_ok("0648"));
	assert_false(args_mode_ok("u+x"));
	assert_false(args_mode_ok("00644"));
	assert_true(args_role_ok("viewer"));
	assert_true(args_role_ok("operator"));
	assert_true(args_role_ok("admin"));
	assert_false(args_role_ok("root"));
	assert_false(args_role_ok(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_duration_units_and_compounds),
	    cmocka_unit_test(test_duration_bare_number_is_seconds),
	    cmocka_unit_test(test_duration_refuses_bad_values),
	    cmocka_unit_test(test_duration_caps_at_a_year),
	    cmocka_unit_test(test_int_is_strict),
	    cmocka_unit_test(test_batch_count_or_percentage),
	    cmocka_unit_test(test_ids_follow_the_host_id_rule),
	    cmocka_unit_test(test_label_set_values_are_strings),
	    cmocka_unit_test(test_label_set_refuses_bad_keys_and_repeats),
	    cmocka_unit_test(test_label_key_length_limit),
	    cmocka_unit_test(test_label_list_splits_on_commas),
	    cmocka_unit_test(test_call_arg_equals_is_always_a_string),
	    cmocka_unit_test(test_call_arg_colon_equals_is_json),
	    cmocka_unit_test(test_call_arg_refusals_say_why),
	    cmocka_unit_test(test_plugin_op_splits_at_the_dot),
	    cmocka_unit_test(test_env_names),
	    cmocka_unit_test(test_mode_and_role),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
