/* Tests for src/hub/store_sqlite_prune.c: the store's retention deletes (events_prune,
 * audit_prune, tasks_prune) through the store interface, with rows made old by the times the
 * store is given; the migration that brings a version-1 database along; and one timing
 * (printed, not asserted) of slices over a large backlog. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hub/store.h"
#include "support/tmpdir.h"
#include <outpost/plugin.h>

#define T0 1700000000000LL /* a fixed "now" */
#define HOUR 3600000LL
#define DAY (24 * HOUR)

struct fx {
	char dir[TMPDIR_LEN];
	struct store *st;
	const struct store_ops *op;
};

/* Compiled twice: as is, on SQLite; with STORE_PG (tests/meson.build), the same cases but the
 * SQLite-only ones on the PostgreSQL store, each on an empty database. */
#ifdef STORE_PG
#include "hub/store_pg.h"
#include "support/pgtest.h"
#endif

static void fx_open(struct fx *f)
{
	char msg[256];

#ifdef STORE_PG
	assert_int_equal(store_pg_open(pgtest_dsn(), f->dir, &f->st, msg, sizeof(msg)), 0);
#else
	assert_int_equal(store_sqlite_open(f->dir, &f->st, msg, sizeof(msg)), 0);
#endif
	f->op = f->st->ops;
}

/* fx_close and us_now: for the SQLite-only cases. */
__attribute__((unused)) static void fx_close(struct fx *f)
{
	f->op->close(f->st);
	f->st = NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(tmpdir_make(f->dir, "prune"), 0);
#ifdef STORE_PG
	assert_int_equal(pgtest_fresh(), 0);
#endif
	fx_open(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->st)
		f->op->close(f->st);
	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static void enroll_at(struct fx *f, const char *id, int64_t now_ms)
{
	char key[96];
	json_t *h;
	struct store_enroll e = {
	    .host_id = id, .pubkey = key, .hostname = id, .accept = 1, .now_ms = now_ms};

	snprintf(key, sizeof(key), "key-%s", id);
	assert_int_equal(f->op->host_enroll(f->st, &e, &h), 0);
	json_decref(h);
}

/* A task over hosts (a JSON array text), created at created_ms, waiting until expires_ms. */
static void task_at(struct fx *f, const char *id, const char *hosts_json, int64_t created_ms,
                    int64_t expires_ms)
{
	json_t *t =
	    json_pack("{s:s, s:s, s:s, s:s, s:{}, s:i, s:I, s:I, s:s, s:i, s:i}", "id", id,
	              "target", "*", "plugin", "sys", "op", "ping", "args", "timeout_ms", 60000,
	              "created_ms", (json_int_t)created_ms, "expires_ms", (json_int_t)expires_ms,
	              "created_by", "admin", "batch_size", 0, "max_failures", -1);
	json_t *hosts = json_loads(hosts_json, 0, NULL), *existing = NULL;

	assert_non_null(t);
	assert_non_null(hosts);
	assert_int_equal(f->op->task_create(f->st, t, hosts, &existing), 0);
	json_decref(t);
	json_decref(hosts);
}

/* The task's state and how many per-host rows it has; "" when it is gone. */
static const char *task_rows(struct fx *f, const char *id, size_t *rows)
{
	static char state[32];
	json_t *t;
	int rc = f->op->task_get(f->st, id, 1, 0, &t);

	*rows = 0;
	state[0] = '\0';
	if (rc == OUTPOST_E_NOT_FOUND)
		return state;
	assert_int_equal(rc, 0);
	snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(t, "state")));
	*rows = json_array_size(json_object_get(t, "hosts"));
	json_decref(t);
	return state;
}

/* The events of all hosts, oldest first, as "host:kind" joined by spaces. */
static void assert_events(struct fx *f, const char *want)
{
	json_t *ev, *e;
	char got[512] = "";
	size_t i, len = 0;

	assert_int_equal(
	    f->op->events_list(f->st, &(struct store_events_query){.host_id = NULL, .limit = 1000},
	                       &ev),
	    0);
	for (i = json_array_size(ev); i-- > 0;) {
		e = json_array_get(ev, i);
		len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%s:%s", len ? " " : "",
		                        json_string_value(json_object_get(e, "host_id")),
		                        json_string_value(json_object_get(e, "kind")));
	}
	json_decref(ev);
	if (strcmp(got, want) != 0) {
		print_error("got  %s\nwant %s\n", got, want);
		fail();
	}
}

/* The host takes the task and reports it ok, finished at finished_ms by its clock; returns
 * whether that ended the task. */
static int report_ok(struct fx *f, const char *task_id, const char *host_id, int64_t finished_ms)
{
	json_t *items, *resp = json_pack("{s:b}", "ok", 1);
	int done = 0;

	assert_int_equal(f->op->task_take(f->st, host_id, finished_ms, 10, &items), 0);
	json_decref(items);
	assert_int_equal(f->op->task_report(f->st, task_id, host_id, "ok", resp, finished_ms,
	                                    finished_ms, &done),
	                 0);
	json_decref(resp);
	return done;
}

/* One tasks_prune call deletes exactly this many tasks and per-host copies. */
static void assert_tasks_prune(struct fx *f, int64_t before_ms, int limit, int64_t want_tasks,
                               int64_t want_copies)
{
	int64_t tasks = -1, copies = -1;

	assert_int_equal(f->op->tasks_prune(f->st, before_ms, limit, &tasks, &copies), 0);
	if (tasks != want_tasks || copies != want_copies) {
		print_error("deleted %lld tasks, %lld copies; want %lld, %lld\n", (long long)tasks,
		            (long long)copies, (long long)want_tasks, (long long)want_copies);
		fail();
	}
}

__attribute__((unused)) static int64_t us_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#ifndef STORE_PG
/* A second connection to hub.db, for what the store interface cannot do: shape old data. */
static void sql(struct fx *f, const char *text)
{
	char path[128];
	sqlite3 *db;
	char *err = NULL;

	snprintf(path, sizeof(path), "%s/hub.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, text, NULL, NULL, &err) != SQLITE_OK) {
		print_error("sql: %s\n", err);
		sqlite3_free(err);
		sqlite3_close(db);
		fail();
	}
	sqlite3_close(db);
}
#endif

/* ---- events ---- */

static void test_events_prune_deletes_only_events_before_the_cutoff(void **state)
{
	struct fx *f = *state;
	int64_t n = -1;

	enroll_at(f, "old", T0 - 40 * DAY);
	enroll_at(f, "gone", T0 - 35 * DAY);
	assert_int_equal(f->op->host_set_state(f->st, "old", HOST_REVOKED, "stolen", T0 - DAY), 0);
	enroll_at(f, "new", T0);
	assert_events(f, "old:enrolled gone:enrolled old:revoked new:enrolled");

	assert_int_equal(f->op->events_prune(f->st, T0 - 30 * DAY, 100, &n), 0);
	assert_int_equal(n, 2);
	/* The old host's recent event and the other hosts' stay; hosts themselves are not
	 * events: both old ones are still registered. */
	assert_events(f, "old:revoked new:enrolled");
	assert_int_equal(f->op->events_prune(f->st, T0 - 30 * DAY, 100, &n), 0);
	assert_int_equal(n, 0);
	json_t *h;
	assert_int_equal(f->op->host_get(f->st, "gone", &h), 0);
	json_decref(h);
}

static void test_events_prune_deletes_at_most_limit_rows_a_call(void **state)
{
	struct fx *f = *state;
	const char *ids[] = {"a", "b", "c", "d", "e"};
	int64_t n;

	for (int i = 0; i < 5; i++)
		enroll_at(f, ids[i], T0 - 40 * DAY + i);
	enroll_at(f, "young", T0);
	assert_int_equal(f->op->events_prune(f->st, T0 - 30 * DAY, 2, &n), 0);
	assert_int_equal(n, 2);
	/* Oldest first. */
	assert_events(f, "c:enrolled d:enrolled e:enrolled young:enrolled");
	assert_int_equal(f->op->events_prune(f->st, T0 - 30 * DAY, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(f->op->events_prune(f->st, T0 - 30 * DAY, 2, &n), 0);
	assert_int_equal(n, 1);
	assert_events(f, "young:enrolled");
	assert_int_equal(f->op->events_prune(f->st, T0, 0, &n), OUTPOST_E_BAD_ARGS);
}

/* ---- audit ---- */

static void test_audit_prune_deletes_only_entries_before_the_cutoff(void **state)
{
	struct fx *f = *state;
	json_t *list;
	int64_t n;

	assert_int_equal(
	    f->op->audit_add(f->st, "token:a", "token.create", "t1", NULL, T0 - 400 * DAY), 0);
	assert_int_equal(
	    f->op->audit_add(f->st, "token:a", "task.create", "x", NULL, T0 - 366 * DAY), 0);
	assert_int_equal(
	    f->op->audit_add(f->st, "token:b", "host.revoke", "h", NULL, T0 - 364 * DAY), 0);
	assert_int_equal(f->op->audit_add(f->st, "token:b", "task.cancel", "y", NULL, T0), 0);

	assert_int_equal(f->op->audit_prune(f->st, T0 - 365 * DAY, 1000, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(f->op->audit_list(f->st, 100, &list), 0);
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "action")),
	                    "task.cancel");
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "action")),
	                    "host.revoke");
	json_decref(list);
}

/* ---- tasks ---- */

static void test_tasks_prune_deletes_ended_tasks_with_their_rows_only(void **state)
{
	struct fx *f = *state;
	json_t *ids;
	size_t rows;

	enroll_at(f, "a", T0 - 50 * DAY);
	enroll_at(f, "b", T0 - 50 * DAY);
	enroll_at(f, "c", T0 - 50 * DAY);
	/* Cancelled 40 days ago. */
	task_at(f, "old-cancelled", "[\"a\", \"b\", \"c\"]", T0 - 40 * DAY, T0 - 39 * DAY);
	assert_int_equal(f->op->task_cancel(f->st, "old-cancelled", T0 - 40 * DAY), 0);
	/* Expired for every host 39 days ago: done. */
	task_at(f, "old-expired", "[\"a\", \"b\"]", T0 - 40 * DAY, T0 - 39 * DAY);
	assert_int_equal(f->op->tasks_expire(f->st, T0 - 39 * DAY, &ids), 0);
	json_decref(ids);
	/* Created just as long ago but still running (an expiry far ahead): never pruned. */
	task_at(f, "old-running", "[\"a\", \"b\", \"c\"]", T0 - 40 * DAY, T0 + DAY);
	/* Created long ago, ended yesterday: retention counts from the end. */
	task_at(f, "ended-lately", "[\"c\"]", T0 - 40 * DAY, T0 + DAY);
	assert_int_equal(f->op->task_cancel(f->st, "ended-lately", T0 - DAY), 0);
	assert_string_equal(task_rows(f, "old-cancelled", &rows), "cancelled");
	assert_string_equal(task_rows(f, "old-expired", &rows), "done");

	assert_tasks_prune(f, T0 - 30 * DAY, 1000, 2, 5);
	assert_string_equal(task_rows(f, "old-cancelled", &rows), "");
	assert_string_equal(task_rows(f, "old-expired", &rows), "");
	assert_string_equal(task_rows(f, "old-running", &rows), "running");
	assert_int_equal(rows, 3);
	assert_string_equal(task_rows(f, "ended-lately", &rows), "cancelled");
	assert_int_equal(rows, 1);
	/* The running task still goes to its hosts. */
	assert_int_equal(f->op->task_take(f->st, "a", T0, 10, &ids), 0);
	assert_int_equal(json_array_size(ids), 1);
	json_decref(ids);

	/* Even with every end in the past, a running task stays. */
	assert_tasks_prune(f, INT64_MAX, 1000, 1, 1);
	assert_string_equal(task_rows(f, "old-running", &rows), "running");
	assert_int_equal(rows, 3);
	assert_int_equal(f->op->task_list(f->st, 100, &ids), 0);
	assert_int_equal(json_array_size(ids), 1);
	json_decref(ids);
}

static void test_tasks_prune_takes_a_big_task_limit_rows_at_a_time(void **state)
{
	struct fx *f = *state;
	size_t rows;

	task_at(f, "big", "[\"h1\", \"h2\", \"h3\", \"h4\", \"h5\"]", T0 - 40 * DAY, T0);
	task_at(f, "small", "[\"h1\"]", T0 - 40 * DAY, T0);
	assert_int_equal(f->op->task_cancel(f->st, "big", T0 - 40 * DAY), 0);
	assert_int_equal(f->op->task_cancel(f->st, "small", T0 - 39 * DAY), 0);

	assert_tasks_prune(f, T0, 2, 0, 2);
	assert_tasks_prune(f, T0, 2, 0, 2);
	assert_string_equal(task_rows(f, "big", &rows), "cancelled");
	assert_int_equal(rows, 1);
	/* The last row and the task, then the next task's row: the limit counts both kinds. */
	assert_tasks_prune(f, T0, 3, 1, 2);
	assert_string_equal(task_rows(f, "big", &rows), "");
	assert_string_equal(task_rows(f, "small", &rows), "cancelled");
	assert_int_equal(rows, 0);
	assert_tasks_prune(f, T0, 3, 1, 0);
	assert_tasks_prune(f, T0, 3, 0, 0);
}

/* An agent's clock may be anywhere: a task a host finished counts from the hub's time. */
static void test_task_ended_by_a_report_counts_from_the_hubs_clock(void **state)
{
	struct fx *f = *state;
	size_t rows;

	enroll_at(f, "a", T0 - 50 * DAY);
	task_at(f, "reported", "[\"a\"]", T0 - 40 * DAY, real_ms() + DAY);
	/* The agent says it finished 40 days ago. */
	assert_int_equal(report_ok(f, "reported", "a", T0 - 40 * DAY), 1);
	assert_tasks_prune(f, real_ms() - HOUR, 1000, 0, 0);
	assert_string_equal(task_rows(f, "reported", &rows), "done");
	assert_tasks_prune(f, real_ms() + HOUR, 1000, 1, 1);
}

#ifndef STORE_PG
/* A hub.db of schema version 1 (before retention): tasks that had ended take their last row's
 * end; running ones stay without an end. */
static void test_migration_gives_tasks_that_ended_before_it_an_end(void **state)
{
	struct fx *f = *state;
	size_t rows;

	enroll_at(f, "a", T0 - 50 * DAY);
	task_at(f, "finished", "[\"a\"]", T0 - 40 * DAY, real_ms() + DAY);
	assert_int_equal(report_ok(f, "finished", "a", T0 - 40 * DAY), 1);
	task_at(f, "cancelled", "[\"b\"]", T0 - 20 * DAY, T0);
	assert_int_equal(f->op->task_cancel(f->st, "cancelled", T0 - 20 * DAY), 0);
	task_at(f, "running", "[\"a\"]", T0 - 40 * DAY, T0 + DAY);
	fx_close(f);
	/* Back to version 1 as it shipped: no ended_ms, none of the new indexes. */
	sql(f, "DROP TABLE records; DROP TABLE alert_log;"
	       "DROP INDEX events_dedupe; ALTER TABLE events DROP COLUMN severity;"
	       "ALTER TABLE events DROP COLUMN message; ALTER TABLE events DROP COLUMN data;"
	       "ALTER TABLE events DROP COLUMN source; ALTER TABLE events DROP COLUMN dedupe;"
	       "DROP INDEX hosts_pending_addr; ALTER TABLE hosts DROP COLUMN enroll_addr;"
	       "ALTER TABLE tokens DROP COLUMN max_uses; ALTER TABLE tokens DROP COLUMN uses;"
	       "DROP INDEX tasks_ended; DROP INDEX events_at; DROP INDEX audit_at;"
	       "ALTER TABLE tasks DROP COLUMN ended_ms;"
	       "UPDATE schema_version SET version = 1 WHERE component = 'hub';");
	fx_open(f);

	/* "finished" ends with its row (the agent's time is all version 1 had), "cancelled" at
	 * its cancel. */
	assert_tasks_prune(f, T0 - 30 * DAY, 1000, 1, 1);
	assert_string_equal(task_rows(f, "finished", &rows), "");
	assert_string_equal(task_rows(f, "cancelled", &rows), "cancelled");
	assert_tasks_prune(f, INT64_MAX, 1000, 1, 1);
	assert_string_equal(task_rows(f, "running", &rows), "running");
	assert_int_equal(rows, 1);
}

/* The figure for docs: slices of 1000 over 200,000 old audit entries among 200,000 recent ones.
 * Printed, not asserted (the machine is shared). */
static void test_prune_slices_over_a_large_backlog(void **state)
{
	struct fx *f = *state;
	int64_t n, total = 0, worst = 0, t0 = us_now(), slices = 0;
	json_t *list;

	fx_close(f);
	sql(f, "WITH RECURSIVE i(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM i WHERE x < 400000) "
	       "INSERT INTO audit(at_ms, actor, action, target, detail) SELECT "
	       "iif(x % 2, 1700000000000 - 400 * 86400000 + x, 1700000000000 + x), 'token:abc', "
	       "'task.create', 'task-' || x, '{\"target\":\"role=web\"}' FROM i;");
	fx_open(f);
	do {
		int64_t t = us_now();
		assert_int_equal(f->op->audit_prune(f->st, T0 - 365 * DAY, 1000, &n), 0);
		t = us_now() - t;
		worst = t > worst ? t : worst;
		total += n;
		slices++;
	} while (n == 1000);
	assert_int_equal(total, 200000);
	assert_int_equal(f->op->audit_list(f->st, 1, &list), 0);
	assert_int_equal(json_array_size(list), 1);
	json_decref(list);
	printf("audit_prune: 200000 of 400000 rows in %lld slices of 1000, %.1f ms in all, "
	       "%.2f ms a slice on average, %.2f ms the slowest\n",
	       (long long)slices, (double)(us_now() - t0) / 1000.0,
	       (double)(us_now() - t0) / 1000.0 / (double)slices, (double)worst / 1000.0);
}

#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_events_prune_deletes_only_events_before_the_cutoff,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_events_prune_deletes_at_most_limit_rows_a_call,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_audit_prune_deletes_only_entries_before_the_cutoff,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_tasks_prune_deletes_ended_tasks_with_their_rows_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tasks_prune_takes_a_big_task_limit_rows_at_a_time,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_task_ended_by_a_report_counts_from_the_hubs_clock,
	                                    setup, teardown),
#ifndef STORE_PG
	    cmocka_unit_test_setup_teardown(test_migration_gives_tasks_that_ended_before_it_an_end,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prune_slices_over_a_large_backlog, setup,
	                                    teardown),
#endif
	};
#ifdef STORE_PG
	if (pgtest_skip())
		return 77;
#endif
	return cmocka_run_group_tests(tests, NULL, NULL);
}
