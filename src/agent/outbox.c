/* The outbox: see outbox.h. seq is AUTOINCREMENT, never reused, so an acknowledgement for a
 * batch that left earlier can never drop a row put after it. */
#include "outbox.h"
#include "core/clk.h"
#include "core/db.h"
#include "core/wire.h"

#include <outpost/plugin.h>
#include <stdlib.h>
#include <string.h>

struct outbox {
	sqlite3 *db;
	const struct logger *log;
	int64_t depth;
	struct db_kept kept; /* loop thread only */
};

static const char *const outbox_schema[] = {
    "CREATE TABLE outbox ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " task_id TEXT NOT NULL, state TEXT NOT NULL, body TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL);"
    "CREATE INDEX outbox_task ON outbox(task_id);",
};

static int outbox_fail(struct outbox *o, sqlite3_stmt *st)
{
	log_error(o->log, "outbox", "sqlite: %s", sqlite3_errmsg(o->db));
	sqlite3_reset(st);
	return OUTPOST_E_INTERNAL;
}

/* Runs a DELETE ... RETURNING and counts the rows: sqlite3_changes() would race with the
 * ledger's workers on the shared connection. Resets st. */
static int outbox_delete(struct outbox *o, sqlite3_stmt *st)
{
	int rc, n = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		n++;
	if (rc != SQLITE_DONE)
		return outbox_fail(o, st);
	sqlite3_reset(st);
	o->depth -= n;
	return n;
}

static int64_t outbox_count(struct outbox *o)
{
	sqlite3_stmt *st = NULL;
	int64_t n = -1;

	if (sqlite3_prepare_v2(o->db, "SELECT count(*) FROM outbox", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

int outbox_open(sqlite3 *db, const struct logger *log, struct outbox **out)
{
	struct outbox *o;
	char msg[256];
	int rc;

	*out = NULL;
	rc = db_migrate(db, "outbox", outbox_schema, 1, msg, sizeof(msg));
	if (rc < 0) {
		log_error(log, "outbox", "%s", msg);
		return rc;
	}
	o = calloc(1, sizeof(*o));
	if (!o)
		return OUTPOST_E_INTERNAL;
	o->db = db;
	o->log = log;
	o->depth = outbox_count(o);
	if (o->depth < 0) {
		free(o);
		return OUTPOST_E_INTERNAL;
	}
	*out = o;
	return 0;
}

void outbox_close(struct outbox *o)
{
	if (o)
		db_kept_free(&o->kept);
	free(o);
}

static int outbox_trim(struct outbox *o)
{
	sqlite3_stmt *st = NULL;
	int n;

	if (o->depth < OUTBOX_MAX_ROWS)
		return 0;
	if (db_kept(&o->kept, o->db,
	            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq "
	            "LIMIT ?) RETURNING seq",
	            &st) != SQLITE_OK)
		return outbox_fail(o, st);
	sqlite3_bind_int64(st, 1, o->depth - OUTBOX_MAX_ROWS + 1);
	n = outbox_delete(o, st);
	if (n < 0)
		return n;
	log_warn(o->log, "outbox",
	         "%d result(s) dropped unsent: the outbox holds at most %d while the hub is away",
	         n, OUTBOX_MAX_ROWS);
	return 0;
}

int outbox_put(struct outbox *o, const json_t *result)
{
	const char *task_id = json_string_value(json_object_get(result, "task_id"));
	const char *state = json_string_value(json_object_get(result, "state"));
	sqlite3_stmt *st = NULL;
	char *body;
	int rc;

	if (!task_id || !state)
		return OUTPOST_E_BAD_ARGS;
	if (strcmp(state, "running") != 0) {
		if (db_kept(&o->kept, o->db,
		            "DELETE FROM outbox WHERE task_id = ? AND state = 'running' "
		            "RETURNING seq",
		            &st) != SQLITE_OK)
			return outbox_fail(o, st);
		sqlite3_bind_text(st, 1, task_id, -1, SQLITE_STATIC);
		rc = outbox_delete(o, st);
		if (rc < 0)
			return rc;
		st = NULL;
	}
	rc = outbox_trim(o);
	if (rc < 0)
		return rc;
	body = wire_dump(result);
	if (!body)
		return OUTPOST_E_INTERNAL;
	if (db_kept(&o->kept, o->db,
	            "INSERT INTO outbox(task_id, state, body, created_ms) "
	            "VALUES(?, ?, ?, ?)",
	            &st) != SQLITE_OK) {
		free(body);
		return outbox_fail(o, st);
	}
	sqlite3_bind_text(st, 1, task_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, body, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, clk_real_ms());
	rc = sqlite3_step(st);
	free(body);
	if (rc != SQLITE_DONE)
		return outbox_fail(o, st);
	sqlite3_reset(st);
	o->depth++;
	return 0;
}

int outbox_peek(struct outbox *o, size_t max_items, size_t max_bytes, json_t **batch,
                int64_t *last_seq)
{
	sqlite3_stmt *st = NULL;
	json_t *arr = json_array();
	size_t bytes = 0;
	int rc;

	*batch = NULL;
	*last_seq = 0;
	if (!arr)
		return OUTPOST_E_INTERNAL;
	if (db_kept(&o->kept, o->db, "SELECT seq, body FROM outbox ORDER BY seq LIMIT ?", &st) !=
	    SQLITE_OK) {
		json_decref(arr);
		return outbox_fail(o, st);
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)max_items);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *body = (const char *)sqlite3_column_text(st, 1);
		size_t n = (size_t)sqlite3_column_bytes(st, 1);
		json_t *v;

		if (json_array_size(arr) > 0 && bytes + n > max_bytes)
			break;
		v = body ? json_loadb(body, n, 0, NULL) : NULL;
		if (!v) {
			/* Our own writing: only a damaged database gets here. Skip the row. */
			log_error(o->log, "outbox", "result %lld is unreadable: dropped",
			          (long long)sqlite3_column_int64(st, 0));
		} else if (json_array_append_new(arr, v) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
		bytes += n;
		*last_seq = sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		json_decref(arr);
		return outbox_fail(o, st);
	}
	sqlite3_reset(st);
	*batch = arr;
	return 0;
}

int outbox_ack(struct outbox *o, int64_t last_seq)
{
	sqlite3_stmt *st = NULL;

	if (db_kept(&o->kept, o->db, "DELETE FROM outbox WHERE seq <= ? RETURNING seq", &st) !=
	    SQLITE_OK)
		return outbox_fail(o, st);
	sqlite3_bind_int64(st, 1, last_seq);
	return outbox_delete(o, st);
}

int64_t outbox_depth(const struct outbox *o)
{
	return o->depth;
}
