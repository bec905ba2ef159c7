/* Tests for src/hub/rule_expr.c: the condition grammar of docs/rules.md, the tree it builds,
 * and errors that name their column. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/rule_expr.h"
#include <outpost/plugin.h>

static struct rule_expr *ok(const char *text)
{
	struct rule_expr *e = NULL;
	char msg[300] = "";
	int col = 0;

	if (rule_expr_parse(text, &e, &col, msg, sizeof(msg)) != 0)
		fail_msg("'%s' should parse: column %d: %s", text, col, msg);
	return e;
}

/* The column and message of a condition that must be refused. */
static int bad(const char *text, const char *want)
{
	struct rule_expr *e = NULL;
	char msg[300] = "";
	int col = 0;

	assert_int_equal(rule_expr_parse(text, &e, &col, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_null(e);
	if (!strstr(msg, want))
		fail_msg("'%s': message '%s' lacks '%s'", text, msg, want);
	return col;
}

static void test_window_term_uses_the_query_selector(void **state)
{
	struct rule_expr *e = ok("avg(host_fs_used_percent{mount=\"/\", dev=~\"sd.*\"}[5m]) > 90");
	const struct rx_leaf *lf = &e->leaves[0];

	(void)state;
	assert_int_equal(e->nleaves, 1);
	assert_int_equal(lf->kind, RX_METRIC);
	assert_int_equal(lf->fn, RX_AVG);
	assert_string_equal(lf->name, "host_fs_used_percent");
	assert_int_equal(lf->nm, 2); /* the name became the walk's, not a matcher */
	assert_int_equal(lf->window_ms, 300000);
	assert_int_equal(lf->op, RX_GT);
	assert_true(lf->value == 90);
	assert_string_equal(lf->key, "avg(host_fs_used_percent{mount=\"/\", dev=~\"sd.*\"}[5m])");
	assert_int_equal(e->for_ms, 0);
	rule_expr_free(e);
}

static void test_and_binds_tighter_than_or_and_for_ends_it(void **state)
{
	struct rule_expr *e = ok("max(a[1m]) > 1 or min(b[1m]) < 2 and last(c[30s]) >= 3 for 2m");

	(void)state;
	assert_int_equal(e->nleaves, 3);
	assert_int_equal(e->root->kind, RX_OR);
	assert_int_equal(e->root->r->kind, RX_AND);
	assert_int_equal(e->for_ms, 120000);
	rule_expr_free(e);
}

static void test_predict_state_and_event_terms(void **state)
{
	struct rule_expr *e =
	    ok("predict(host_fs_free_bytes{mount=\"/\"}[6h], 24h) < 0 or down for 3m or pending or "
	       "event(task_failed[10m]) or event(\"deploy.done\") or p99(x[5m]) > 1");

	(void)state;
	assert_int_equal(e->nleaves, 6);
	assert_int_equal(e->leaves[0].fn, RX_PREDICT);
	assert_int_equal(e->leaves[0].ahead_ms, 86400000);
	assert_int_equal(e->leaves[1].kind, RX_DOWN);
	assert_int_equal(e->leaves[1].for_ms, 180000);
	assert_string_equal(e->leaves[1].text, "down for 3m");
	assert_int_equal(e->leaves[2].kind, RX_PENDING);
	assert_string_equal(e->leaves[3].event, "task_failed");
	assert_int_equal(e->leaves[3].for_ms, 600000);
	assert_string_equal(e->leaves[4].event, "deploy.done");
	assert_int_equal(e->leaves[5].fn, RX_PCT);
	assert_true(e->leaves[5].pct > 0.989 && e->leaves[5].pct < 0.991);
	rule_expr_free(e);
}

static void test_errors_name_their_column(void **state)
{
	(void)state;
	assert_int_equal(bad("avg(x[5m] > 1", "expected ) after the window"), 11);
	assert_int_equal(bad("avg(x[5m]) >", "expected a number"), 13);
	assert_int_equal(bad("average(x[5m]) > 1", "expected a term"), 1);
	assert_int_equal(bad("avg(x[5q]) > 1", "duration"), 7);
	assert_int_equal(bad("avg(x) > 1", "expected [window]"), 6);
	assert_int_equal(bad("avg(x{a=~\"(\"}[1m]) > 1", "regular expression"), 5);
	assert_int_equal(bad("avg(x[5m]) > 1 and", "expected a term"), 19);
	assert_int_equal(bad("avg(x[5m]) > 1 garbage", "expected and, or"), 16);
	assert_int_equal(bad("avg(x[8d]) > 1", "1s to 7d"), 7);
	assert_int_equal(bad("predict(x[1h]) < 0", "how far ahead"), 14);
	assert_int_equal(bad("event()", "event kind"), 7);
	/* characters, not bytes: ü is one column */
	assert_int_equal(bad("avg(x{l=\"ü\"}[5m]) ? 1", "comparison"), 19);
}

static void test_limits(void **state)
{
	char big[RX_MAX_TEXT + 10];
	struct buf;
	char many[2000] = "";

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	bad(big, "at most");
	for (int i = 0; i < 17; i++)
		strcat(many, i ? " or pending" : "pending");
	bad(many, "more than 16 terms");
	bad("((((((((((((((((((((((((((((((((((pending))))))))))))))))))))))))))))))))))",
	    "nested too deep");
}

static void test_compare(void **state)
{
	(void)state;
	assert_true(rule_expr_compare(RX_GT, 2, 1));
	assert_false(rule_expr_compare(RX_GT, 1, 1));
	assert_true(rule_expr_compare(RX_GE, 1, 1));
	assert_true(rule_expr_compare(RX_LT, 0, 1));
	assert_true(rule_expr_compare(RX_LE, 1, 1));
	assert_true(rule_expr_compare(RX_EQ, 1, 1));
	assert_true(rule_expr_compare(RX_NE, 1, 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_window_term_uses_the_query_selector),
	    cmocka_unit_test(test_and_binds_tighter_than_or_and_for_ends_it),
	    cmocka_unit_test(test_predict_state_and_event_terms),
	    cmocka_unit_test(test_errors_name_their_column),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_compare),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
