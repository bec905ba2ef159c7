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
	/* Results the database would not take (a full disk): kept here, in order, until the hub
	 * has them. While any wait here, new results join them (the order stays whole); once the
	 * hub has taken them all, the next result tries the disk again. */
	json_t *mem;      /* array of results */
	size_t mem_bytes; /* their JSON text */
	size_t mem_sent;  /* the first of them the last peek handed out */
	uint64_t mem_dropped;
	int disk_full; /* the last write failed */
	uint64_t write_errors;
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
	if (!o)
		return;
	if (json_array_size(o->mem) > 0)
		log_warn(o->log, "outbox",
		         "%zu result(s) held in memory (the disk was full) are lost with this stop",
		         json_array_size(o->mem));
	json_decref(o->mem);
	db_kept_free(&o->kept);
	free(o);
}

/* Removes the held result i, counting its bytes out. */
static void outbox_mem_remove(struct outbox *o, size_t i)
{
	char *text = wire_dump(json_array_get(o->mem, i));
	size_t k = text ? strlen(text) : 0;

	free(text);
	json_array_remove(o->mem, i);
	o->mem_bytes = o->mem_bytes > k && json_array_size(o->mem) > 0 ? o->mem_bytes - k : 0;
}

/* Holds one result in memory. A final state replaces a "running" of the same task that has
 * not left; past OUTBOX_MEM_MAX_BYTES the oldest not on their way go first (counted). */
static int outbox_mem_put(struct outbox *o, const json_t *result, const char *task_id,
                          const char *state)
{
	char *text = wire_dump(result);
	size_t n = text ? strlen(text) : 0, i;
	json_t *v;

	free(text);
	if (!text || (!o->mem && !(o->mem = json_array())))
		return OUTPOST_E_INTERNAL;
	if (strcmp(state, "running") != 0)
		for (i = o->mem_sent; i < json_array_size(o->mem); i++) {
			v = json_array_get(o->mem, i);
			if (strcmp(json_string_value(json_object_get(v, "task_id")), task_id) ==
			        0 &&
			    strcmp(json_string_value(json_object_get(v, "state")), "running") ==
			        0) {
				outbox_mem_remove(o, i);
				break;
			}
		}
	while (o->mem_bytes + n > OUTBOX_MEM_MAX_BYTES && json_array_size(o->mem) > o->mem_sent) {
		outbox_mem_remove(o, o->mem_sent);
		o->mem_dropped++;
	}
	if (o->mem_bytes + n > OUTBOX_MEM_MAX_BYTES) {
		o->mem_dropped++;
		return OUTPOST_E_TOO_LARGE;
	}
	v = json_deep_copy(result);
	if (!v || json_array_append_new(o->mem, v) < 0)
		return OUTPOST_E_INTERNAL;
	o->mem_bytes += n;
	return 0;
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

static int outbox_put_disk(struct outbox *o, const json_t *result, const char *task_id,
                           const char *state);

int outbox_put(struct outbox *o, const json_t *result)
{
	const char *task_id = json_string_value(json_object_get(result, "task_id"));
	const char *state = json_string_value(json_object_get(result, "state"));
	int rc;

	if (!task_id || !state)
		return OUTPOST_E_BAD_ARGS;
	if (json_array_size(o->mem) == 0) {
		rc = outbox_put_disk(o, result, task_id, state);
		if (rc == 0) {
			if (o->disk_full)
				log_info(o->log, "outbox", "results are written to disk again");
			o->disk_full = 0;
			return 0;
		}
		o->write_errors++;
		if (!o->disk_full)
			log_warn(o->log, "outbox",
			         "cannot write a result to the agent's database (a full disk?): "
			         "results wait in memory (at most %u KiB) until the hub has them",
			         OUTBOX_MEM_MAX_BYTES >> 10);
		o->disk_full = 1;
	}
	return outbox_mem_put(o, result, task_id, state);
}

static int outbox_put_disk(struct outbox *o, const json_t *result, const char *task_id,
                           const char *state)
{
	sqlite3_stmt *st = NULL;
	char *body;
	int rc;

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
	o->mem_sent = 0;
	if (o->depth <= 0 && json_array_size(o->mem) > 0) {
		/* The disk's rows are older: memory only once they are gone. */
		size_t i;
		for (i = 0; i < json_array_size(o->mem) && i < max_items; i++) {
			json_t *v = json_array_get(o->mem, i);
			char *text = wire_dump(v);
			size_t n = text ? strlen(text) : 0;
			free(text);
			if (i > 0 && bytes + n > max_bytes)
				break;
			bytes += n;
			json_array_append(arr, v);
		}
		o->mem_sent = i;
		*last_seq = -(int64_t)i;
		*batch = arr;
		return 0;
	}
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

	if (last_seq < 0) {
		size_t n = (size_t)-last_seq;
		if (n > json_array_size(o->mem))
			n = json_array_size(o->mem);
		for (size_t i = 0; i < n; i++)
			outbox_mem_remove(o, 0);
		o->mem_sent = 0;
		return (int)n;
	}

	if (db_kept(&o->kept, o->db, "DELETE FROM outbox WHERE seq <= ? RETURNING seq", &st) !=
	    SQLITE_OK)
		return outbox_fail(o, st);
	sqlite3_bind_int64(st, 1, last_seq);
	return outbox_delete(o, st);
}

int64_t outbox_depth(const struct outbox *o)
{
	return o->depth + (int64_t)json_array_size(o->mem);
}

void outbox_mem_stats(const struct outbox *o, struct outbox_mem_stats *st)
{
	st->disk_full = o->disk_full;
	st->results = json_array_size(o->mem);
	st->bytes = o->mem_bytes;
	st->dropped = o->mem_dropped;
	st->write_errors = o->write_errors;
}
