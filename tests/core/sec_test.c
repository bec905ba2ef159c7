/* Tests for src/core/sec.c: the parts a request's headers reach, what an agent signs, tokens
 * and the canonical text of a task. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/sec.h"

static void test_parse_time_ms_takes_plain_digits(void **state)
{
	int64_t t = -1;

	(void)state;
	assert_int_equal(sec_parse_time_ms("1700000000123", &t), 0);
	assert_int_equal(t, 1700000000123LL);
	assert_int_equal(sec_parse_time_ms("0", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(sec_parse_time_ms("999999999999999", &t), 0); /* 15 digits */
	assert_int_equal(t, 999999999999999LL);
}

/* X-Outpost-Time once went to strtoll and llabs: INT64_MIN overflowed (UB). Everything that
 * is not 1..15 plain digits is refused, the out value untouched. */
static void test_parse_time_ms_refuses_what_could_overflow_or_is_not_a_time(void **state)
{
	static const char *const bad[] = {
	    "-9223372036854775808",
	    "9223372036854775807",
	    "9223372036854775808",
	    "1000000000000000",
	    "-1",
	    "+1",
	    "",
	    " 1",
	    "1 ",
	    "1e12",
	    "0x10",
	    "12a",
	    "１２",
	};
	int64_t t = 42;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sec_parse_time_ms(bad[i], &t), -1);
		assert_int_equal(t, 42);
	}
	assert_int_equal(sec_parse_time_ms(NULL, &t), -1);
}

/* ---- what an agent signs (sec_request_text) ---- */

static void test_request_text_is_method_target_time_and_body_digest(void **state)
{
	char hex[65], want[256], *t;

	(void)state;
	assert_int_equal(sec_init(), 0);
	sec_sha256_hex("{\"a\":1}", 7, hex);
	snprintf(want, sizeof(want), "POST\n/api/v1/agents/web-1/beat?x=1\n1700000000123\n%s", hex);
	t = sec_request_text("POST", "/api/v1/agents/web-1/beat?x=1", "1700000000123", "{\"a\":1}",
	                     7);
	assert_string_equal(t, want);
	free(t);
	/* No body: the digest of nothing, so a GET is bound to its target and time alone. */
	t = sec_request_text("GET", "/api/v1/agents/web-1/tasks?wait=30", "5", NULL, 0);
	assert_string_equal(t, "GET\n/api/v1/agents/web-1/tasks?wait=30\n5\n"
	                       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	free(t);
}

/* A signature over one request verifies for it alone: changing the method, the target (its
 * query too), the time or one byte of the body makes it fail. */
static void test_request_signature_covers_every_part(void **state)
{
	static const char *const other[][4] = {
	    {"GET", "/api/v1/agents/h/results", "1000", "{\"results\":[]}"},
	    {"POST", "/api/v1/agents/g/results", "1000", "{\"results\":[]}"},
	    {"POST", "/api/v1/agents/h/results?x", "1000", "{\"results\":[]}"},
	    {"POST", "/api/v1/agents/h/results", "1001", "{\"results\":[]}"},
	    {"POST", "/api/v1/agents/h/results", "01000", "{\"results\":[]}"},
	    {"POST", "/api/v1/agents/h/results", "1000", "{\"results\":[1]}"},
	    {"POST", "/api/v1/agents/h/results", "1000", ""},
	};
	uint8_t pk[SEC_PK_BYTES], sk[SEC_SK_BYTES], pk2[SEC_PK_BYTES], sk2[SEC_SK_BYTES];
	char path[] = "/tmp/sec_test_XXXXXX", key[64], key2[64], msg[128];
	char *t, *sig;
	int created;

	(void)state;
	assert_int_equal(sec_init(), 0);
	assert_non_null(mkdtemp(path));
	snprintf(key, sizeof(key), "%s/a.key", path);
	snprintf(key2, sizeof(key2), "%s/b.key", path);
	assert_int_equal(sec_keyfile(key, pk, sk, &created, msg, sizeof(msg)), 0);
	assert_int_equal(sec_keyfile(key2, pk2, sk2, &created, msg, sizeof(msg)), 0);
	t = sec_request_text("POST", "/api/v1/agents/h/results", "1000", "{\"results\":[]}", 14);
	sig = sec_sign_b64(sk, t, strlen(t));
	assert_non_null(sig);
	assert_int_equal(sec_verify_b64(pk, t, strlen(t), sig), 0);
	assert_int_equal(sec_verify_b64(pk2, t, strlen(t), sig), -1); /* another host's key */
	free(t);
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		t = sec_request_text(other[i][0], other[i][1], other[i][2], other[i][3],
		                     strlen(other[i][3]));
		assert_int_equal(sec_verify_b64(pk, t, strlen(t), sig), -1);
		free(t);
	}
	free(sig);
	unlink(key);
	unlink(key2);
	rmdir(path);
}

/* Tokens and keys are compared in constant time; the answer is still plain equality. */
static void test_streq_is_equality_of_whole_strings(void **state)
{
	(void)state;
	assert_true(sec_streq("opo_abc", "opo_abc"));
	assert_true(sec_streq("", ""));
	assert_false(sec_streq("opo_abc", "opo_abd"));
	assert_false(sec_streq("opo_abc", "opo_ab"));
	assert_false(sec_streq("opo_ab", "opo_abc"));
	assert_false(sec_streq("", "x"));
}

static void test_token_is_prefixed_random_and_url_safe(void **state)
{
	char *a, *b;

	(void)state;
	assert_int_equal(sec_init(), 0);
	a = sec_token("ope_");
	b = sec_token("ope_");
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(strlen(a), 4 + 43);
	assert_memory_equal(a, "ope_", 4);
	assert_string_not_equal(a, b);
	for (const char *p = a + 4; *p; p++)
		assert_true(
		    strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
		           *p) != NULL);
	free(a);
	free(b);
}

/* A task is signed over its canonical text: key order and spacing do not change it. */
static void test_canonical_text_sorts_keys_and_is_compact(void **state)
{
	json_t *a = json_loads("{\"op\": \"run\", \"args\": {\"z\": 1, \"a\": [1, 2]}}", 0, NULL);
	json_t *b = json_loads("{\"args\":{\"a\":[1,2],\"z\":1},\"op\":\"run\"}", 0, NULL);
	char *ta = sec_canonical(a), *tb = sec_canonical(b);

	(void)state;
	assert_string_equal(ta, "{\"args\":{\"a\":[1,2],\"z\":1},\"op\":\"run\"}");
	assert_string_equal(ta, tb);
	free(ta);
	free(tb);
	json_decref(a);
	json_decref(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_time_ms_takes_plain_digits),
	    cmocka_unit_test(test_parse_time_ms_refuses_what_could_overflow_or_is_not_a_time),
	    cmocka_unit_test(test_request_text_is_method_target_time_and_body_digest),
	    cmocka_unit_test(test_request_signature_covers_every_part),
	    cmocka_unit_test(test_streq_is_equality_of_whole_strings),
	    cmocka_unit_test(test_token_is_prefixed_random_and_url_safe),
	    cmocka_unit_test(test_canonical_text_sorts_keys_and_is_compact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
