/* Tests for src/core/conf.c: comments, exact error positions, schema checks, merging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/conf.h"
#include <outpost/plugin.h>

/* one field a line, as in the daemons' schemas */
/* clang-format off */
static const struct conf_field schema[] = {
    {"listen", CONF_STRING, 0, 0, NULL},
    {"log", CONF_OBJECT, 0, 0, NULL},
    {"log.level", CONF_STRING, 0, 0, NULL},
    {"workers", CONF_INT, 1, 64, NULL},
    {"roots", CONF_STRING_ARRAY, 0, 0, NULL},
    {"plugins", CONF_OBJECT_FREE, 0, 0, NULL},
    {"sinks", CONF_OBJECT_ARRAY, 0, 0, NULL},
    {"sinks.url", CONF_STRING, 0, 0, NULL},
    {"sinks.timeout", CONF_INT, 1, 10, NULL},
    {NULL, 0, 0, 0, NULL},
};
/* clang-format on */

static void test_comments_of_three_kinds_are_ignored(void **state)
{
	const char *text = "# a comment\n{\n  // another\n  \"listen\": \"127.0.0.1:1\", /* block\n"
	                   " still block */ \"workers\": 2 # tail\n}\n";
	json_t *c;
	char msg[256];

	assert_int_equal(conf_parse(text, strlen(text), "t.conf", &c, msg, sizeof(msg)), 0);
	assert_string_equal(json_string_value(json_object_get(c, "listen")), "127.0.0.1:1");
	assert_int_equal(json_integer_value(json_object_get(c, "workers")), 2);
	json_decref(c);
}

static void test_comment_markers_inside_strings_are_kept(void **state)
{
	const char *text = "{\"listen\": \"a//b#c/*d*/\"}";
	json_t *c;
	char msg[256];

	assert_int_equal(conf_parse(text, strlen(text), "t", &c, msg, sizeof(msg)), 0);
	assert_string_equal(json_string_value(json_object_get(c, "listen")), "a//b#c/*d*/");
	json_decref(c);
}

static void test_errors_name_file_line_and_column(void **state)
{
	const char *text = "{\n  // fine\n  \"listen\": \"x\",\n  \"workers\": 2,,\n}\n";
	const char *open_comment = "{ /* never closed\n";
	json_t *c;
	char msg[256];

	assert_int_equal(conf_parse(text, strlen(text), "agent.conf", &c, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_JSON);
	assert_non_null(strstr(msg, "agent.conf:4:"));
	assert_int_equal(
	    conf_parse(open_comment, strlen(open_comment), "x.conf", &c, msg, sizeof(msg)),
	    OUTPOST_E_BAD_JSON);
	assert_non_null(strstr(msg, "x.conf:1:3: comment is never closed"));
	assert_int_equal(conf_parse("[1]", 3, "a", &c, msg, sizeof(msg)), OUTPOST_E_BAD_JSON);
	assert_non_null(strstr(msg, "top level"));
	assert_int_equal(conf_parse("{\"a\":1,\"a\":2}", 13, "a", &c, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_JSON);
}

static void test_schema_refuses_unknown_keys_types_and_ranges(void **state)
{
	char msg[256];
	json_t *c = json_pack("{s:{s:s}, s:i, s:{s:{s:i}}}", "log", "level", "info", "workers", 4,
	                      "plugins", "any", "thing", 1);

	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), 0);
	json_object_set_new(json_object_get(c, "log"), "levl", json_string("x"));
	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "unknown key 'log.levl'");
	json_object_del(json_object_get(c, "log"), "levl");
	json_object_set_new(c, "workers", json_integer(65));
	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "'workers' must be between 1 and 64");
	json_object_set_new(c, "workers", json_string("4"));
	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "'workers' must be an integer");
	json_object_set_new(c, "workers", json_integer(4));
	json_object_set_new(c, "roots", json_pack("[s,i]", "/a", 1));
	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "'roots' must be an array of strings");
	json_decref(c);
}

static void test_object_arrays_check_every_element(void **state)
{
	char msg[256];
	json_t *c =
	    json_pack("{s:[{s:s}, {s:s, s:i}]}", "sinks", "url", "a", "url", "b", "timeout", 5);

	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), 0);
	json_object_set_new(json_array_get(json_object_get(c, "sinks"), 1), "timeout",
	                    json_integer(11));
	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "'sinks.timeout' must be between 1 and 10");
	json_object_set_new(json_array_get(json_object_get(c, "sinks"), 1), "timeot",
	                    json_integer(1));
	json_object_del(json_array_get(json_object_get(c, "sinks"), 1), "timeout");
	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "unknown key 'sinks.timeot'");
	json_object_set_new(c, "sinks", json_pack("[{s:s}, s]", "url", "a", "b"));
	assert_int_equal(conf_check(c, schema, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_string_equal(msg, "'sinks' must be an array of objects [{ ... }]");
	json_decref(c);
}

static void test_merge_is_key_by_key(void **state)
{
	json_t *dst = json_pack("{s:{s:s, s:s}, s:i}", "log", "level", "info", "target", "stderr",
	                        "workers", 4);
	json_t *src = json_pack("{s:{s:s}, s:[s]}", "log", "level", "debug", "roots", "/srv");

	assert_int_equal(conf_merge(dst, src), 0);
	assert_string_equal(json_string_value(conf_get(dst, "log.level")), "debug");
	assert_string_equal(json_string_value(conf_get(dst, "log.target")), "stderr");
	assert_int_equal(json_integer_value(conf_get(dst, "workers")), 4);
	assert_int_equal(json_array_size(conf_get(dst, "roots")), 1);
	assert_int_equal(conf_set(dst, "a.b.c", json_integer(7)), 0);
	assert_int_equal(json_integer_value(conf_get(dst, "a.b.c")), 7);
	json_decref(dst);
	json_decref(src);
}

static void test_load_refuses_directories_and_missing_files(void **state)
{
	json_t *c;
	char msg[256];
	assert_int_equal(conf_load("/nonexistent.conf", &c, msg, sizeof(msg)), OUTPOST_E_NOT_FOUND);
	assert_int_equal(conf_load("/tmp", &c, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_comments_of_three_kinds_are_ignored),
	    cmocka_unit_test(test_comment_markers_inside_strings_are_kept),
	    cmocka_unit_test(test_errors_name_file_line_and_column),
	    cmocka_unit_test(test_schema_refuses_unknown_keys_types_and_ranges),
	    cmocka_unit_test(test_object_arrays_check_every_element),
	    cmocka_unit_test(test_merge_is_key_by_key),
	    cmocka_unit_test(test_load_refuses_directories_and_missing_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
