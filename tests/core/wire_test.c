/* Tests for src/core/wire.c: limits on JSON, the envelope, argument checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/wire.h"

static void test_parse_rejects_deep_nesting(void **state)
{
	char deep[200];
	json_t *v;
	char msg[128];
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	assert_int_equal(wire_parse(deep, sizeof(deep), 32, &v, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_JSON);
	assert_null(v);
	assert_non_null(strstr(msg, "deep"));
	assert_int_equal(wire_parse(deep + 70, 60, 32, &v, msg, sizeof(msg)), 0);
	json_decref(v);
}

static void test_parse_rejects_garbage_and_duplicates(void **state)
{
	json_t *v;
	char msg[128];
	assert_int_equal(wire_parse("{\"a\":", 5, 32, &v, msg, sizeof(msg)), OUTPOST_E_BAD_JSON);
	assert_int_equal(wire_parse("", 0, 32, &v, msg, sizeof(msg)), OUTPOST_E_BAD_JSON);
	assert_int_equal(wire_parse("{\"a\":1,\"a\":2}", 13, 32, &v, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_JSON);
	assert_int_equal(wire_parse("\"\xff\xfe\"", 4, 32, &v, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_JSON);
}

static void test_depth_ignores_brackets_in_strings(void **state)
{
	const char *s = "{\"a\":\"[[[[{{{{\\\"\"}";
	assert_int_equal(wire_depth(s, strlen(s)), 1);
	assert_int_equal(wire_depth("[[]", 3), -1);
}

static void test_envelope_shapes(void **state)
{
	json_t *e = wire_error(OUTPOST_E_BUSY, "too many");
	char *s = wire_dump(e);
	assert_string_equal(
	    s, "{\"ok\":false,\"error\":{\"code\":\"busy\",\"message\":\"too many\"}}");
	free(s);
	json_decref(e);
	e = wire_ok(json_integer(3));
	s = wire_dump(e);
	assert_string_equal(s, "{\"ok\":true,\"result\":3}");
	free(s);
	json_decref(e);
}

static void test_check_args(void **state)
{
	static const struct outpost_arg spec[] = {
	    {"path", OUTPOST_ARG_STRING, 1, "a path"},
	    {"mode", OUTPOST_ARG_INT, 0, "mode"},
	    {NULL, 0, 0, NULL},
	};
	char msg[128];
	json_t *a = json_pack("{s:s, s:i}", "path", "/x", "mode", 420);
	assert_int_equal(wire_check_args(spec, a, msg, sizeof(msg)), 0);
	json_object_set_new(a, "mode", json_string("0644"));
	assert_int_equal(wire_check_args(spec, a, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "mode"));
	json_object_del(a, "mode");
	json_object_set_new(a, "bogus", json_true());
	assert_int_equal(wire_check_args(spec, a, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "bogus"));
	json_object_clear(a);
	assert_int_equal(wire_check_args(spec, a, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "path"));
	json_decref(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_rejects_deep_nesting),
	    cmocka_unit_test(test_parse_rejects_garbage_and_duplicates),
	    cmocka_unit_test(test_depth_ignores_brackets_in_strings),
	    cmocka_unit_test(test_envelope_shapes),
	    cmocka_unit_test(test_check_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
