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

/* jansson took a raw NUL right after a number; wire_scan_object (the agent's spool check)
 * did not. Found by tests/fuzz/body_fuzz.c (corpus/body/nul-after-number). */
static void test_parse_rejects_raw_nul(void **state)
{
	static const char body[] = "{\"args\":{\"n\":5000\0   },\"id\":\"c\"}";
	json_t *v = NULL;
	char msg[128];

	assert_int_equal(wire_parse(body, sizeof(body) - 1, 32, &v, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_JSON);
	assert_null(v);
	assert_non_null(strstr(msg, "NUL"));
	assert_int_equal(wire_scan_object(body, sizeof(body) - 1, 32, NULL), -1);
	assert_int_equal(wire_parse("{\"a\":\"\\u0000\"}", 14, 32, &v, msg, sizeof(msg)),
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

/* The scan takes what jansson takes as an object (duplicate keys aside), and nothing else. */
static void test_scan_object_agrees_with_jansson(void **state)
{
	static const char *const texts[] = {
	    "{}",
	    " {\"t\":7} ",
	    "{\"a\":[1,-2.5e+3,0,true,false,null,{\"b\":\"\\u00e9\\n\"}]}",
	    "{\"k\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}",
	    "{\"s\":\"\\ud83d\\ude00\"}",
	    "{\"q\":\"a\\\"b\\\\c\\/\"}",
	    "{\"x\":1}{",
	    "[1,2]",
	    "42",
	    "",
	    "not json",
	    "{\"a\":1,}",
	    "{\"a\" 1}",
	    "{\"a\":01}",
	    "{\"a\":1.}",
	    "{\"a\":-}",
	    "{\"a\":.5}",
	    "{\"a\":1e}",
	    "{\"a\":tru}",
	    "{\"a\":\"\\u0000\"}",
	    "{\"a\":\"\\ud800\"}",
	    "{\"a\":\"\\udc00\"}",
	    "{\"a\":\"\\x\"}",
	    "{\"a\":\"\t\"}",
	    "{\"a\":\"\xff\"}",
	    "{\"a\":\"\xc0\xaf\"}",
	    "{\"a\":\"\xed\xa0\x80\"}",
	    "{\"a\":\"\xf4\x90\x80\x80\"}",
	    "{\"a\":\"\xe2\x82\"}",
	    "{\"a\":[}",
	    "{\"a\":{\"b\":1]}",
	    "{'a':1}",
	    "{\"a\":1",
	    "{\"a\":\"x",
	};
	char msg[128];

	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		json_t *v = NULL;
		int ok = wire_parse(texts[i], strlen(texts[i]), 32, &v, msg, sizeof(msg)) == 0 &&
		         json_is_object(v);
		json_decref(v);
		if ((wire_scan_object(texts[i], strlen(texts[i]), 32, NULL) == 0) != ok)
			fail_msg("text %zu (%s): jansson %s it, the scan does not", i, texts[i],
			         ok ? "takes" : "refuses");
	}
	/* A NUL byte inside the text, and the depth limit. */
	assert_int_equal(wire_scan_object("{\"a\":\"\0\"}", 9, 32, NULL), -1);
	assert_int_equal(wire_scan_object("{\"a\":[[1]]}", 11, 3, NULL), 0);
	assert_int_equal(wire_scan_object("{\"a\":[[1]]}", 11, 2, NULL), -1);
}

static void test_scan_object_finds_a_top_level_key(void **state)
{
	(void)state;
	assert_int_equal(wire_scan_object("{\"t\":1,\"seq\":2}", 15, 32, "seq"), 1);
	assert_int_equal(wire_scan_object("{\"t\":{\"seq\":2}}", 15, 32, "seq"), 0);
	assert_int_equal(wire_scan_object("{\"seqs\":1,\"se\":2}", 17, 32, "seq"), 0);
	assert_int_equal(wire_scan_object("{\"x\":\"seq\"}", 11, 32, "seq"), 0);
	/* Written with an escape: counted as the key, to be safe. */
	assert_int_equal(wire_scan_object("{\"se\\u0071\":1}", 14, 32, "seq"), 1);
	assert_int_equal(wire_scan_object("{\"seq\":1", 8, 32, "seq"), -1);
}

/* ---- the one UTF-8 rule (wire_utf8_len) ---- */

#define U8LEN(lit) wire_utf8_len(lit, sizeof(lit) - 1)

static void test_utf8_len_takes_each_valid_length(void **state)
{
	(void)state;
	assert_int_equal(U8LEN("a"), 1);
	assert_int_equal(U8LEN("\x7f"), 1);
	assert_int_equal(U8LEN("\xc2\x80"), 2);         /* U+0080, the first of two bytes */
	assert_int_equal(U8LEN("\xdf\xbf"), 2);         /* U+07FF */
	assert_int_equal(U8LEN("\xe0\xa0\x80"), 3);     /* U+0800, the first of three */
	assert_int_equal(U8LEN("\xed\x9f\xbf"), 3);     /* U+D7FF, just below the surrogates */
	assert_int_equal(U8LEN("\xee\x80\x80"), 3);     /* U+E000, just above them */
	assert_int_equal(U8LEN("\xef\xbf\xbf"), 3);     /* U+FFFF */
	assert_int_equal(U8LEN("\xf0\x90\x80\x80"), 4); /* U+10000, the first of four */
	assert_int_equal(U8LEN("\xf4\x8f\xbf\xbf"), 4); /* U+10FFFF, the last code point */
	/* Only the sequence at s counts: what follows is the next one's business. */
	assert_int_equal(U8LEN("\xc3\xa9xyz"), 2);
}

static void test_utf8_len_refuses_overlong_forms(void **state)
{
	(void)state;
	assert_int_equal(U8LEN("\xc0\xaf"), 0);         /* '/' in two bytes */
	assert_int_equal(U8LEN("\xc1\xbf"), 0);         /* U+007F in two bytes */
	assert_int_equal(U8LEN("\xc0\x80"), 0);         /* NUL in two bytes (modified UTF-8) */
	assert_int_equal(U8LEN("\xe0\x80\xaf"), 0);     /* '/' in three */
	assert_int_equal(U8LEN("\xe0\x9f\xbf"), 0);     /* U+07FF in three */
	assert_int_equal(U8LEN("\xf0\x80\x80\xaf"), 0); /* '/' in four */
	assert_int_equal(U8LEN("\xf0\x8f\xbf\xbf"), 0); /* U+FFFF in four */
}

static void test_utf8_len_refuses_surrogates_and_past_the_last_code_point(void **state)
{
	(void)state;
	assert_int_equal(U8LEN("\xed\xa0\x80"), 0); /* U+D800, the first high surrogate */
	assert_int_equal(U8LEN("\xed\xbf\xbf"), 0); /* U+DFFF, the last low one */
	assert_int_equal(U8LEN("\xed\xa0\xbd\xed\xb8\x80"), 0); /* a pair in CESU-8 */
	assert_int_equal(U8LEN("\xf4\x90\x80\x80"), 0);         /* U+110000 */
	assert_int_equal(U8LEN("\xf5\x80\x80\x80"), 0);
	assert_int_equal(U8LEN("\xff"), 0);
	assert_int_equal(U8LEN("\xfe"), 0);
}

static void test_utf8_len_refuses_truncated_and_broken_sequences(void **state)
{
	(void)state;
	assert_int_equal(U8LEN("\xc3"), 0); /* cut by the end */
	assert_int_equal(U8LEN("\xe2\x82"), 0);
	assert_int_equal(U8LEN("\xf0\x9f\x98"), 0);
	assert_int_equal(wire_utf8_len("\xf0\x9f\x98\x80", 3), 0); /* cut by n, not by a NUL */
	assert_int_equal(wire_utf8_len("\xc3\xa9", 1), 0);
	assert_int_equal(wire_utf8_len("a", 0), 0);
	assert_int_equal(U8LEN("\xe2\x28\xa1"), 0); /* a byte that does not continue it */
	assert_int_equal(U8LEN("\xf0\x9f\x98\x28"), 0);
	assert_int_equal(U8LEN("\x80"), 0); /* a stray continuation byte */
	assert_int_equal(U8LEN("\xbf"), 0);
	assert_int_equal(wire_utf8_len("\0", 1), 0); /* NUL is no character of a name */
	/* A NUL-terminated string cut inside a sequence: refused without reading past the NUL
	 * (ASan would see it: the buffer ends there). */
	{
		char *s = strdup("\xe2");
		assert_int_equal(wire_utf8_len(s, 4), 0);
		free(s);
	}
}

static void test_utf8_ok_is_the_same_rule_over_a_whole_text(void **state)
{
	(void)state;
	assert_true(wire_utf8_ok("plain", 5));
	assert_true(wire_utf8_ok("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
	assert_true(wire_utf8_ok("", 0));
	assert_false(wire_utf8_ok("ab\0cd", 5));
	assert_false(wire_utf8_ok("ok\xc0\xaf", 4));
	assert_false(wire_utf8_ok("ok\xed\xa0\x80", 5));
	assert_false(wire_utf8_ok("ok\xe2\x82", 4));
	/* The validating scan of JSON text takes and refuses what the rule does. */
	assert_int_equal(wire_scan_object("{\"a\":\"\xc3\xa9\"}", 10, 32, NULL), 0);
	assert_int_equal(wire_scan_object("{\"a\":\"\xc0\xaf\"}", 10, 32, NULL), -1);
	assert_int_equal(wire_scan_object("{\"a\":\"\xed\xa0\x80\"}", 11, 32, NULL), -1);
	assert_int_equal(wire_scan_object("{\"a\":\"\xe2\x82\"}", 10, 32, NULL), -1);
}

/* ---- the one name rule of plugins and ops (wire_name_ok) ---- */

static void test_name_rule_takes_lowercase_names_starting_with_a_letter(void **state)
{
	(void)state;
	assert_true(wire_name_ok("sys"));
	assert_true(wire_name_ok("facts"));
	assert_true(wire_name_ok("put_file2"));
	assert_true(wire_name_ok("a"));
	assert_true(wire_name_ok("abcdefghijklmnopqrstuvwxyz012345")); /* 32, the limit */
	assert_true(wire_name_okn("sys.facts", 3));
}

static void test_name_rule_refuses_what_an_executable_plugin_cannot_declare(void **state)
{
	(void)state;
	/* The hub once took these while an executable plugin could not declare them. */
	assert_false(wire_name_ok("_private"));
	assert_false(wire_name_ok("2fa"));
	assert_false(wire_name_ok("0"));
	assert_false(wire_name_ok("abcdefghijklmnopqrstuvwxyz0123456")); /* 33 */
	assert_false(wire_name_ok(""));
	assert_false(wire_name_ok(NULL));
	assert_false(wire_name_ok("Sys"));
	assert_false(wire_name_ok("file-get"));
	assert_false(wire_name_ok("sys.facts"));
	assert_false(wire_name_ok("sys/facts"));
	assert_false(wire_name_ok("caf\xc3\xa9"));
	assert_false(wire_name_okn("sys", 0));
	assert_false(wire_name_okn("s\0s", 3));
}

static int64_t scaled(json_t *v, const struct wire_unit *units, int64_t limit)
{
	int64_t n = wire_scaled(v, units, limit);

	json_decref(v);
	return n;
}

static void test_scaled_takes_a_number_and_one_known_unit(void **state)
{
	(void)state;
	assert_int_equal(scaled(json_string("90"), wire_units_duration, INT64_MAX), 90);
	assert_int_equal(scaled(json_string("15m"), wire_units_duration, INT64_MAX), 900);
	assert_int_equal(scaled(json_string("2d"), wire_units_duration, INT64_MAX), 172800);
	assert_int_equal(scaled(json_integer(7), wire_units_duration, INT64_MAX), 7);
	assert_int_equal(scaled(json_string("512K"), wire_units_bytes, INT64_MAX), 512 * 1024);
	assert_int_equal(scaled(json_string("2G"), wire_units_bytes, INT64_MAX), 2LL << 30);
}

static void test_scaled_refuses_other_units_signs_and_overflow(void **state)
{
	(void)state;
	assert_int_equal(scaled(json_string("1dd"), wire_units_duration, INT64_MAX), -1);
	assert_int_equal(scaled(json_string("1K"), wire_units_duration, INT64_MAX), -1);
	assert_int_equal(scaled(json_string("-1d"), wire_units_duration, INT64_MAX), -1);
	assert_int_equal(scaled(json_string(" 1"), wire_units_duration, INT64_MAX), -1);
	assert_int_equal(scaled(json_integer(-1), wire_units_bytes, INT64_MAX), -1);
	assert_int_equal(scaled(json_real(1.5), wire_units_bytes, INT64_MAX), -1);
	assert_int_equal(scaled(json_string("99999999999999999999T"), wire_units_bytes, INT64_MAX),
	                 -1);
	assert_int_equal(scaled(json_string("9000000T"), wire_units_bytes, INT64_MAX), -1);
	/* The limit holds for plain integers too. */
	assert_int_equal(scaled(json_integer(1001), wire_units_bytes, 1000), -1);
	assert_int_equal(scaled(json_string("2h"), wire_units_duration, 7199), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_rejects_deep_nesting),
	    cmocka_unit_test(test_parse_rejects_garbage_and_duplicates),
	    cmocka_unit_test(test_parse_rejects_raw_nul),
	    cmocka_unit_test(test_depth_ignores_brackets_in_strings),
	    cmocka_unit_test(test_envelope_shapes),
	    cmocka_unit_test(test_check_args),
	    cmocka_unit_test(test_scan_object_agrees_with_jansson),
	    cmocka_unit_test(test_scan_object_finds_a_top_level_key),
	    cmocka_unit_test(test_utf8_len_takes_each_valid_length),
	    cmocka_unit_test(test_utf8_len_refuses_overlong_forms),
	    cmocka_unit_test(test_utf8_len_refuses_surrogates_and_past_the_last_code_point),
	    cmocka_unit_test(test_utf8_len_refuses_truncated_and_broken_sequences),
	    cmocka_unit_test(test_utf8_ok_is_the_same_rule_over_a_whole_text),
	    cmocka_unit_test(test_name_rule_takes_lowercase_names_starting_with_a_letter),
	    cmocka_unit_test(test_name_rule_refuses_what_an_executable_plugin_cannot_declare),
	    cmocka_unit_test(test_scaled_takes_a_number_and_one_known_unit),
	    cmocka_unit_test(test_scaled_refuses_other_units_signs_and_overflow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
