/* Tests for src/core/hresp.c: the HTTP client's answer parser, fed as recv would hand bytes
 * over (all at once and a byte at a time), and the hostile answers it refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/hresp.h"

#include <outpost/plugin.h>
#include <string.h>

/* Feeds text in pieces of step bytes, keeping unread bytes as hclient does. Returns what the
 * last hresp_feed said (1 complete, 0 more needed, <0 refused); *extra: bytes past the end. */
static int feed(struct hresp *a, const char *text, size_t step, size_t *extra, char *msg,
                size_t msglen)
{
	char buf[8192];
	size_t have = 0, off = 0, n = strlen(text), used;
	int rc = 0;

	memset(a, 0, sizeof(*a));
	a->max_body = 64;
	hresp_reset(a);
	while (off < n && rc == 0) {
		size_t k = n - off < step ? n - off : step;
		memcpy(buf + have, text + off, k);
		have += k;
		off += k;
		rc = hresp_feed(a, buf, have, &used, msg, msglen);
		memmove(buf, buf + used, have - used);
		have -= used;
	}
	if (rc == 0 && hresp_eof(a))
		rc = 1;
	*extra = have + (n - off);
	return rc;
}

static void test_chunked_answer_whole_and_byte_by_byte(void **state)
{
	const char *text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A:  b \r\n\r\n"
	                   "3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n";
	char msg[200];
	size_t extra;
	struct hresp a;

	(void)state;
	for (size_t step = 1; step <= strlen(text); step += strlen(text) - 1) {
		assert_int_equal(feed(&a, text, step, &extra, msg, sizeof(msg)), 1);
		assert_int_equal(extra, 0);
		assert_int_equal(a.status, 200);
		assert_int_equal(a.body.len, 5);
		assert_memory_equal(a.body.data, "abcde", 5);
		assert_int_equal(a.nheaders, 2);
		assert_string_equal(a.headers.data + strlen("Transfer-Encoding") + 1, "chunked");
		hresp_free(&a);
	}
}

static void test_interim_answer_then_the_real_one(void **state)
{
	char msg[200];
	size_t extra;
	struct hresp a;

	(void)state;
	assert_int_equal(feed(&a, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nuntil close",
	                      7, &extra, msg, sizeof(msg)),
	                 1);
	assert_int_equal(a.status, 200);
	assert_true(a.close);
	assert_int_equal(a.body.len, strlen("until close"));
	hresp_free(&a);
}

static void test_hostile_answers_are_refused_with_a_reason(void **state)
{
	static const struct {
		const char *text;
		int rc;
		const char *why;
	} cases[] = {
	    {"HTTP/2 200\r\n\r\n", OUTPOST_E_UNAVAILABLE, "status line"},
	    {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
	     OUTPOST_E_UNAVAILABLE, "Content-Length"},
	    {"HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n", OUTPOST_E_TOO_LARGE, "over"},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n", OUTPOST_E_TOO_LARGE,
	     "over"},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", OUTPOST_E_UNAVAILABLE,
	     "Transfer-Encoding"},
	    {"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", OUTPOST_E_UNAVAILABLE, "folded"},
	    {"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", OUTPOST_E_UNAVAILABLE, "CR"},
	    {"HTTP/1.1 101 Switching Protocols\r\n\r\n", OUTPOST_E_UNAVAILABLE, "101"},
	    {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
	     OUTPOST_E_UNAVAILABLE, "longer than its size"},
	};
	char msg[200];
	size_t extra;
	struct hresp a;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		msg[0] = '\0';
		assert_int_equal(feed(&a, cases[i].text, 5, &extra, msg, sizeof(msg)), cases[i].rc);
		if (!strstr(msg, cases[i].why))
			fail_msg("case %zu: '%s' does not say '%s'", i, msg, cases[i].why);
		hresp_free(&a);
	}
}

static void test_bytes_past_the_answer_are_left(void **state)
{
	char msg[200];
	size_t extra;
	struct hresp a;

	(void)state;
	assert_int_equal(
	    feed(&a, "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1", 100, &extra, msg, sizeof(msg)), 1);
	assert_int_equal(extra, strlen("HTTP/1.1"));
	hresp_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_chunked_answer_whole_and_byte_by_byte),
	    cmocka_unit_test(test_interim_answer_then_the_real_one),
	    cmocka_unit_test(test_hostile_answers_are_refused_with_a_reason),
	    cmocka_unit_test(test_bytes_past_the_answer_are_left),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
