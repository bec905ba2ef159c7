/* Tests for src/hub/batch.c: the metrics post read as events, against good, odd and hostile
 * bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/batch.h"
#include <outpost/plugin.h>

#define EP "\"epoch\":\"0123456789abcdef\""

struct got {
	char keys[16][64];
	double v[16];
	size_t batch[16];
	size_t n;
};

static int collect(void *arg, size_t i, const char *key, size_t keylen, double value)
{
	struct got *g = arg;

	if (g->n < 16) {
		snprintf(g->keys[g->n], sizeof(g->keys[0]), "%.*s", (int)keylen, key);
		g->v[g->n] = value;
		g->batch[g->n++] = i;
	}
	return 0;
}

static int scan(const char *body, struct batch_post *p, char *msg)
{
	return batch_scan(body, strlen(body), p, msg, 200);
}

static void test_reads_batches_in_any_field_order(void **state)
{
	const char *body = "{\"batches\":[{\"samples\":[[\"a{x=\\\"\\\\\\\"q\\\"}\",1.5],"
	                   "[\"b\",\"NaN\"]],\"t\":1000,\"seq\":4,\"extra\":{\"z\":[1,[2]]}},"
	                   "{\"seq\":9,\"t\":2000,\"samples\":[[\"c\",-2e3],[\"d\",\"-Inf\"]]}],"
	                   "\"future\":[1,2,3]," EP "}";
	struct batch_post p;
	struct got g = {0};
	uint8_t want[BATCH_MAX] = {1, 1};
	int64_t bad = 0;
	char msg[200];

	(void)state;
	assert_int_equal(scan(body, &p, msg), 0);
	assert_string_equal(p.epoch, "0123456789abcdef");
	assert_int_equal(p.n, 2);
	assert_int_equal(p.b[0].seq, 4);
	assert_int_equal(p.b[0].t, 1000);
	assert_null(p.b[0].bad);
	assert_int_equal(p.b[1].seq, 9);
	assert_int_equal(batch_samples(body, strlen(body), want, collect, &g, &bad), 0);
	assert_int_equal(bad, 0);
	assert_int_equal(g.n, 4);
	assert_string_equal(g.keys[0], "a{x=\"\\\"q\"}");
	assert_true(g.v[0] == 1.5);
	assert_true(isnan(g.v[1]));
	assert_true(g.v[2] == -2000 && g.batch[2] == 1);
	assert_true(isinf(g.v[3]) && g.v[3] < 0);
}

static void test_only_wanted_batches_and_bad_samples_counted(void **state)
{
	const char *body = "{" EP ",\"batches\":[{\"seq\":1,\"t\":1,\"samples\":[[\"a\",1]]},"
	                   "{\"seq\":2,\"t\":2,\"samples\":[[\"b\",2],[\"c\"],[\"d\",\"1\"],"
	                   "[\"e\",{}],[1,2],\"x\",null,[\"f\",3,4],[\"g\",true],[\"h\",4]]}]}";
	struct batch_post p;
	struct got g = {0};
	uint8_t want[BATCH_MAX] = {0, 1};
	int64_t bad = 0;
	char msg[200];

	(void)state;
	assert_int_equal(scan(body, &p, msg), 0);
	assert_int_equal(batch_samples(body, strlen(body), want, collect, &g, &bad), 0);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.keys[0], "b");
	assert_string_equal(g.keys[1], "h");
	assert_int_equal(bad, 8);
}

static void test_bad_batches_marked_not_fatal(void **state)
{
	const char *body =
	    "{" EP ",\"batches\":[{\"seq\":1,\"t\":\"soon\",\"samples\":[]},"
	    "{\"seq\":2,\"samples\":[]},{\"seq\":3,\"t\":5},"
	    "{\"seq\":4,\"t\":1.5,\"samples\":[]},{\"seq\":5,\"t\":7,\"samples\":{}},"
	    "{\"seq\":6,\"t\":8,\"samples\":[]}]}";
	struct batch_post p;
	char msg[200];

	(void)state;
	assert_int_equal(scan(body, &p, msg), 0);
	assert_int_equal(p.n, 6);
	for (int i = 0; i < 5; i++)
		assert_non_null(p.b[i].bad);
	assert_null(p.b[5].bad);
}

static void test_unreadable_posts_refused(void **state)
{
	static const struct {
		const char *body;
		int rc;
	} cases[] = {
	    {"", OUTPOST_E_BAD_JSON},
	    {"{", OUTPOST_E_BAD_JSON},
	    {"{\"epoch\":\"0123456789abcdef\",\"batches\":[]} x", OUTPOST_E_BAD_JSON},
	    {"[]", OUTPOST_E_BAD_ARGS},
	    {"7", OUTPOST_E_BAD_ARGS},
	    {"{}", OUTPOST_E_BAD_ARGS},
	    {"{" EP "}", OUTPOST_E_BAD_ARGS},
	    {"{" EP ",\"batches\":[]}", OUTPOST_E_BAD_ARGS},
	    {"{" EP ",\"batches\":{}}", OUTPOST_E_BAD_ARGS},
	    {"{\"epoch\":\"0123456789ABCDEF\",\"batches\":[{\"seq\":1}]}", OUTPOST_E_BAD_ARGS},
	    {"{\"epoch\":5,\"batches\":[{\"seq\":1}]}", OUTPOST_E_BAD_ARGS},
	    {"{" EP ",\"batches\":[1]}", OUTPOST_E_BAD_ARGS},
	    {"{" EP ",\"batches\":[{\"t\":1,\"samples\":[]}]}", OUTPOST_E_BAD_ARGS},
	    {"{" EP ",\"batches\":[{\"seq\":0}]}", OUTPOST_E_BAD_ARGS},
	    {"{" EP ",\"batches\":[{\"seq\":1.0}]}", OUTPOST_E_BAD_ARGS},
	    {"{" EP ",\"batches\":[{\"seq\":99999999999999999999999}]}", OUTPOST_E_BAD_ARGS},
	    {"{" EP ",\"batches\":[{\"seq\":2},{\"seq\":2}]}", OUTPOST_E_BAD_ARGS},
	    {"{" EP ",\"batches\":[{\"seq\":1}],\"batches\":[{\"seq\":2}]}", OUTPOST_E_BAD_ARGS},
	    {"{\"epoch\":\"01234567\xff\x01\x02\x03\x04\x05\x06\x07\",\"batches\":[{\"seq\":1}]}",
	     OUTPOST_E_BAD_JSON},
	};
	struct batch_post p;
	char msg[200];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		msg[0] = '\0';
		int rc = scan(cases[i].body, &p, msg);
		if (rc != cases[i].rc)
			fail_msg("case %zu (%s): %d, want %d (%s)", i, cases[i].body, rc,
			         cases[i].rc, msg);
		assert_true(msg[0] != '\0');
	}
}

static void test_too_many_batches_and_deep_junk(void **state)
{
	char *body = malloc(1 << 20);
	size_t o = 0;
	struct batch_post p;
	char msg[200];

	(void)state;
	o += (size_t)sprintf(body + o, "{" EP ",\"batches\":[");
	for (int i = 1; i <= BATCH_MAX + 1; i++)
		o += (size_t)sprintf(body + o, "%s{\"seq\":%d,\"t\":1,\"samples\":[]}",
		                     i > 1 ? "," : "", i);
	sprintf(body + o, "]}");
	assert_int_equal(scan(body, &p, msg), OUTPOST_E_BAD_ARGS);
	/* Nesting far deeper than anything read: skipped without recursion of ours. */
	o = (size_t)sprintf(body, "{" EP ",\"junk\":");
	for (int i = 0; i < 100000; i++)
		body[o++] = '[';
	for (int i = 0; i < 100000; i++)
		body[o++] = ']';
	sprintf(body + o, ",\"batches\":[{\"seq\":1,\"t\":1,\"samples\":[]}]}");
	assert_int_equal(scan(body, &p, msg), 0);
	assert_int_equal(p.n, 1);
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reads_batches_in_any_field_order),
	    cmocka_unit_test(test_only_wanted_batches_and_bad_samples_counted),
	    cmocka_unit_test(test_bad_batches_marked_not_fatal),
	    cmocka_unit_test(test_unreadable_posts_refused),
	    cmocka_unit_test(test_too_many_batches_and_deep_junk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
