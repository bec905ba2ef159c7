/* Tests for src/hub/retention.c: how passes are paced over the real SQLite store (a backlog in
 * slices, a pass at most once a minute, each kind by its own keep), and the /metrics text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "hub/retention.h"
#include "hub/store.h"
#include "support/tmpdir.h"
#include <outpost/plugin.h>

#define T0 1700000000000LL
#define DAY 86400000LL

struct fx {
	char dir[TMPDIR_LEN];
	struct store *st;
	struct logger log;
	struct retention *r;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char msg[256];

	assert_non_null(f);
	assert_int_equal(tmpdir_make(f->dir, "retention"), 0);
	assert_int_equal(store_sqlite_open(f->dir, &f->st, msg, sizeof(msg)), 0);
	log_init(&f->log, "retention-test", OUTPOST_LOG_ERROR, LOG_TO_STDERR);
	assert_int_equal(retention_new(f->st, &f->log, &f->r), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	retention_free(f->r);
	f->st->ops->close(f->st);
	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static void audit_at(struct fx *f, int64_t at_ms, int n)
{
	for (int i = 0; i < n; i++)
		assert_int_equal(
		    f->st->ops->audit_add(f->st, "token:t", "token.create", "x", NULL, at_ms + i),
		    0);
}

static size_t audit_count(struct fx *f)
{
	json_t *list;
	size_t n;

	assert_int_equal(f->st->ops->audit_list(f->st, 100000, &list), 0);
	n = json_array_size(list);
	json_decref(list);
	return n;
}

/* The /metrics text has this line. */
static void assert_stat(struct fx *f, const char *line)
{
	struct buf b = {0};

	retention_stats(f->r, &b);
	assert_non_null(b.data);
	if (!strstr(b.data, line)) {
		print_error("no \"%s\" in:\n%s", line, b.data);
		buf_free(&b);
		fail();
	}
	buf_free(&b);
}

static const int64_t keep[RETENTION_NKINDS] = {30 * DAY, 365 * DAY, 30 * DAY};

static void test_a_backlog_goes_a_slice_a_call_and_a_pass_starts_once_a_minute(void **state)
{
	struct fx *f = *state;

	audit_at(f, T0 - 400 * DAY, 2500);
	audit_at(f, T0 - DAY, 3);
	/* A budget of 0 is one slice a call: events (none), then audit 1000, 1000, 500. */
	assert_int_equal(retention_step(f->r, keep, T0, 0), 1);
	assert_int_equal(audit_count(f), 2503);
	assert_int_equal(retention_step(f->r, keep, T0 + 1000, 0), 1);
	assert_int_equal(audit_count(f), 1503);
	assert_stat(f, "outpost_hub_pruned_rows_total{what=\"audit\"} 1000\n");
	assert_int_equal(retention_step(f->r, keep, T0 + 2000, 0), 1);
	assert_int_equal(retention_step(f->r, keep, T0 + 3000, 0), 1);
	assert_int_equal(audit_count(f), 3);
	/* Tasks (none): the pass is over. The cutoff was the pass's start. */
	assert_int_equal(retention_step(f->r, keep, T0 + 4000, 0), 0);
	assert_stat(f, "outpost_hub_pruned_rows_total{what=\"audit\"} 2500\n");
	assert_stat(f, "outpost_hub_pruned_rows_total{what=\"events\"} 0\n");

	/* No new pass within the minute, even with something old again. */
	audit_at(f, T0 - 400 * DAY, 2);
	assert_int_equal(retention_step(f->r, keep, T0 + 59000, 1000), 0);
	assert_int_equal(audit_count(f), 5);
	assert_int_equal(retention_step(f->r, keep, T0 + 60000, 1000), 0);
	assert_int_equal(audit_count(f), 3);
	assert_stat(f, "outpost_hub_pruned_rows_total{what=\"audit\"} 2502\n");
	assert_stat(f, "outpost_hub_prune_failures_total 0\n");
}

static void test_each_kind_by_its_own_keep_and_a_keep_of_0_is_forever(void **state)
{
	struct fx *f = *state;
	const struct store_ops *op = f->st->ops;
	struct store_enroll e = {
	    .host_id = "h", .pubkey = "k", .accept = 1, .now_ms = T0 - 40 * DAY};
	int64_t forever_audit[RETENTION_NKINDS] = {30 * DAY, 0, 30 * DAY};
	json_t *host, *t, *ids, *ev;

	assert_int_equal(op->host_enroll(f->st, &e, &host), 0);
	json_decref(host);
	audit_at(f, T0 - 40 * DAY, 1);
	t = json_pack("{s:s, s:s, s:s, s:s, s:{}, s:i, s:I, s:I, s:i, s:i}", "id", "t1", "target",
	              "*", "plugin", "sys", "op", "ping", "args", "timeout_ms", 1000, "created_ms",
	              (json_int_t)(T0 - 40 * DAY), "expires_ms", (json_int_t)(T0 - 39 * DAY),
	              "batch_size", 0, "max_failures", -1);
	ids = json_pack("[s]", "h");
	assert_int_equal(op->task_create(f->st, t, ids, &host), 0);
	json_decref(t);
	json_decref(ids);
	assert_int_equal(op->tasks_expire(f->st, T0 - 39 * DAY, &ids), 0);
	json_decref(ids);

	assert_int_equal(retention_step(f->r, forever_audit, T0, 1000), 0);
	assert_int_equal(
	    op->events_list(f->st, &(struct store_events_query){.host_id = NULL, .limit = 10}, &ev),
	    0);
	assert_int_equal(json_array_size(ev), 0);
	json_decref(ev);
	assert_int_equal(op->task_get(f->st, "t1", 0, 0, &t), OUTPOST_E_NOT_FOUND);
	assert_int_equal(audit_count(f), 1);
	assert_stat(f, "outpost_hub_pruned_rows_total{what=\"events\"} 1\n");
	assert_stat(f, "outpost_hub_pruned_rows_total{what=\"tasks\"} 1\n");
	assert_stat(f, "outpost_hub_pruned_rows_total{what=\"task_copies\"} 1\n");
	assert_stat(f, "outpost_hub_pruned_rows_total{what=\"audit\"} 0\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_a_backlog_goes_a_slice_a_call_and_a_pass_starts_once_a_minute, setup,
	        teardown),
	    cmocka_unit_test_setup_teardown(
	        test_each_kind_by_its_own_keep_and_a_keep_of_0_is_forever, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
