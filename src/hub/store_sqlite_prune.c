/* Retention on hub.db: deletes the oldest events, audit entries and ended tasks in bounded
 * slices (store.h's events_prune, audit_prune, tasks_prune), so that a hub with millions of old
 * rows never holds its loop or the database for long. Each delete walks an index from the
 * oldest row (events_at, audit_at, tasks_ended and task_hosts' primary key): no table scan. */
#include "store_sqlite.h"
#include "core/db.h"

#include <outpost/plugin.h>
#include <stdio.h>
#include <stdlib.h>

enum sqp_st {
	SP_BEGIN,
	SP_COMMIT,
	SP_ROLLBACK,
	SP_EVENTS,
	SP_AUDIT,
	SP_PENDING,
	SP_TASK_OLDEST,
	SP_TASK_COPIES,
	SP_TASK_DELETE,
	SP_COUNT
};

/* SQLite has no DELETE ... LIMIT unless built for it: the rows go by id from a bounded select.
 * ended_ms < ?1 uses the partial index tasks_ended (ended_ms IS NOT NULL); a running task has
 * no ended_ms, and the state term holds that line even so. */
static const char *const sqp_sql[SP_COUNT] = {
    [SP_BEGIN] = "BEGIN IMMEDIATE",
    [SP_COMMIT] = "COMMIT",
    [SP_ROLLBACK] = "ROLLBACK",
    [SP_EVENTS] = "DELETE FROM events WHERE id IN "
                  "(SELECT id FROM events WHERE at_ms < ?1 ORDER BY at_ms LIMIT ?2)",
    [SP_AUDIT] = "DELETE FROM audit WHERE id IN "
                 "(SELECT id FROM audit WHERE at_ms < ?1 ORDER BY at_ms LIMIT ?2)",
    /* hosts_state_seen walks the pending ones from the oldest */
    [SP_PENDING] = "DELETE FROM hosts WHERE id IN (SELECT id FROM hosts WHERE state = 'pending' "
                   "AND last_seen_ms < ?1 ORDER BY last_seen_ms LIMIT ?2)",
    [SP_TASK_OLDEST] = "SELECT id FROM tasks WHERE ended_ms < ?1 AND state != 'running' "
                       "ORDER BY ended_ms LIMIT 1",
    [SP_TASK_COPIES] = "DELETE FROM task_hosts WHERE rowid IN "
                       "(SELECT rowid FROM task_hosts WHERE task_id = ?1 LIMIT ?2)",
    [SP_TASK_DELETE] = "DELETE FROM tasks WHERE id = ?1 AND state != 'running'",
};

struct sqp {
	sqlite3 *db; /* borrowed from store_sqlite.c */
	sqlite3_stmt *st[SP_COUNT];
};

int sqp_open(sqlite3 *db, struct sqp **out, char *msg, size_t msglen)
{
	struct sqp *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p) {
		snprintf(msg, msglen, "out of memory");
		return OUTPOST_E_INTERNAL;
	}
	p->db = db;
	for (int i = 0; i < SP_COUNT; i++) {
		if (sqlite3_prepare_v3(db, sqp_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &p->st[i],
		                       NULL) != SQLITE_OK) {
			snprintf(msg, msglen, "sqlite: preparing retention statement %d: %s", i,
			         sqlite3_errmsg(db));
			sqp_close(p);
			return OUTPOST_E_INTERNAL;
		}
	}
	*out = p;
	return 0;
}

void sqp_close(struct sqp *p)
{
	if (!p)
		return;
	for (int i = 0; i < SP_COUNT; i++)
		sqlite3_finalize(p->st[i]);
	free(p);
}

static sqlite3_stmt *sqp_stmt(struct sqp *p, enum sqp_st i)
{
	return db_stmt(p->st[i]);
}

static void sqp_rollback(struct sqp *p)
{
	for (int i = 0; i < SP_COUNT; i++)
		sqlite3_reset(p->st[i]);
	if (!sqlite3_get_autocommit(p->db))
		db_run(sqp_stmt(p, SP_ROLLBACK));
}

/* One bounded delete of the rows older than before_ms (events or audit). */
static int sqp_oldest(struct sqp *p, enum sqp_st which, int64_t before_ms, int limit, int64_t *n)
{
	sqlite3_stmt *st;
	int rc;

	*n = 0;
	if (limit < 1)
		return OUTPOST_E_BAD_ARGS;
	st = sqp_stmt(p, which);
	sqlite3_bind_int64(st, 1, before_ms);
	sqlite3_bind_int(st, 2, limit);
	if ((rc = db_run(st)) < 0)
		return rc;
	*n = sqlite3_changes64(p->db);
	return 0;
}

int sqp_events(struct sqp *p, int64_t before_ms, int limit, int64_t *n)
{
	return sqp_oldest(p, SP_EVENTS, before_ms, limit, n);
}

int sqp_audit(struct sqp *p, int64_t before_ms, int limit, int64_t *n)
{
	return sqp_oldest(p, SP_AUDIT, before_ms, limit, n);
}

int sqp_pending(struct sqp *p, int64_t before_ms, int limit, int64_t *n)
{
	return sqp_oldest(p, SP_PENDING, before_ms, limit, n);
}

/* The id of the task that ended first before before_ms into id (size idlen), or "" for none.
 */
static int sqp_task_oldest(struct sqp *p, int64_t before_ms, char *id, size_t idlen)
{
	sqlite3_stmt *st = sqp_stmt(p, SP_TASK_OLDEST);
	int rc;

	id[0] = '\0';
	sqlite3_bind_int64(st, 1, before_ms);
	rc = db_step(st);
	if (rc == 1) {
		const char *v = (const char *)sqlite3_column_text(st, 0);
		rc = v && snprintf(id, idlen, "%s", v) < (int)idlen ? 0 : OUTPOST_E_INTERNAL;
	}
	sqlite3_reset(st);
	return rc < 0 ? rc : 0;
}

/* A task of 10,000 hosts has 10,000 rows: they go limit at a time, across calls if need be,
 * and the task row goes once none is left, so a slice never outgrows its limit. */
int sqp_tasks(struct sqp *p, int64_t before_ms, int limit, int64_t *tasks, int64_t *copies)
{
	char id[256];
	int64_t left = limit, n;
	sqlite3_stmt *st;
	int rc;

	*tasks = *copies = 0;
	if (limit < 1)
		return OUTPOST_E_BAD_ARGS;
	if ((rc = db_run(sqp_stmt(p, SP_BEGIN))) < 0)
		return rc;
	while (left > 0) {
		if ((rc = sqp_task_oldest(p, before_ms, id, sizeof(id))) < 0)
			goto fail;
		if (!id[0])
			break;
		st = sqp_stmt(p, SP_TASK_COPIES);
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, left);
		if ((rc = db_run(st)) < 0)
			goto fail;
		n = sqlite3_changes64(p->db);
		*copies += n;
		left -= n;
		if (left == 0) /* the next call finds what is left of this task first */
			break;
		st = sqp_stmt(p, SP_TASK_DELETE);
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		if ((rc = db_run(st)) < 0)
			goto fail;
		if (sqlite3_changes64(p->db) != 1) { /* it would come back as the oldest forever */
			rc = OUTPOST_E_INTERNAL;
			goto fail;
		}
		*tasks += 1;
		left--;
	}
	if ((rc = db_run(sqp_stmt(p, SP_COMMIT))) == 0)
		return 0;
fail:
	sqp_rollback(p);
	*tasks = *copies = 0;
	return rc;
}
