/* The metrics side of the SQLite store (store.h, struct mstore): series dictionary, ingest
 * dedupe marks, the ingest log and the chunks of each resolution, in <state>/metrics.db, a
 * database of its own so that ingest never waits on the registry's writes or the other way
 * round. One connection, statements prepared once. */
#include "store_sqlite.h"
#include "core/db.h"

#include <outpost/plugin.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One migration step per schema version; never edit a step that has shipped.
 * - chunks are rowid tables with a unique (series, start_ms) index, not WITHOUT ROWID tables
 *   keyed that way: a sealed raw chunk is 1-2 KB, more than an index page keeps in place, so
 *   a WITHOUT ROWID row spilled onto mostly empty overflow pages, and inserts in key order
 *   (every series' new window) split pages all over the tree. Rowid order is write order:
 *   pages fill up. end_ms has an index for retention.
 * - chunks_raw.rolled: 0 until the sealed chunk's rollups are written; the partial index is
 *   compaction's queue, and survives restarts. */
static const char *const metrics_schema[] = {
    "CREATE TABLE series ("
    " id INTEGER PRIMARY KEY,"
    " host TEXT NOT NULL,"
    " key TEXT NOT NULL,"
    " first_ms INTEGER NOT NULL,"
    " rolled_ms INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (host, key));"
    "CREATE TABLE ingest_seq ("
    " host TEXT PRIMARY KEY,"
    " epoch TEXT NOT NULL,"
    " seq INTEGER NOT NULL);"
    "CREATE TABLE ingest_log ("
    " id INTEGER PRIMARY KEY,"
    " data BLOB NOT NULL);"
    "CREATE TABLE chunks_raw ("
    " id INTEGER PRIMARY KEY,"
    " series INTEGER NOT NULL,"
    " start_ms INTEGER NOT NULL,"
    " end_ms INTEGER NOT NULL,"
    " count INTEGER NOT NULL,"
    " sealed INTEGER NOT NULL,"
    " rolled INTEGER NOT NULL DEFAULT 0,"
    " data BLOB NOT NULL);"
    "CREATE UNIQUE INDEX chunks_raw_key ON chunks_raw(series, start_ms);"
    "CREATE INDEX chunks_raw_end ON chunks_raw(end_ms);"
    "CREATE INDEX chunks_raw_unrolled ON chunks_raw(start_ms) WHERE sealed = 1 AND rolled = 0;"
    "CREATE TABLE chunks_1m ("
    " id INTEGER PRIMARY KEY,"
    " series INTEGER NOT NULL,"
    " start_ms INTEGER NOT NULL,"
    " end_ms INTEGER NOT NULL,"
    " count INTEGER NOT NULL,"
    " data BLOB NOT NULL);"
    "CREATE UNIQUE INDEX chunks_1m_key ON chunks_1m(series, start_ms);"
    "CREATE INDEX chunks_1m_end ON chunks_1m(end_ms);"
    "CREATE TABLE chunks_1h ("
    " id INTEGER PRIMARY KEY,"
    " series INTEGER NOT NULL,"
    " start_ms INTEGER NOT NULL,"
    " end_ms INTEGER NOT NULL,"
    " count INTEGER NOT NULL,"
    " data BLOB NOT NULL);"
    "CREATE UNIQUE INDEX chunks_1h_key ON chunks_1h(series, start_ms);"
    "CREATE INDEX chunks_1h_end ON chunks_1h(end_ms);",
};

#define NRES 3
static const char *const res_table[NRES] = {"chunks_raw", "chunks_1m", "chunks_1h"};

enum mst {
	M_BEGIN,
	M_COMMIT,
	M_ROLLBACK,
	M_SERIES_EACH,
	M_SERIES_ADD,
	M_SERIES_ROLLED,
	M_SEQ_EACH,
	M_SEQ_PUT,
	M_LOG_ADD,
	M_LOG_EACH,
	M_LOG_TRIM,
	M_LATEST,
	M_UNROLLED,
	M_MARK_ROLLED,
	M_PUT_RAW,
	M_PUT,             /* + res - 1: M_PUT, M_PUT + 1 for 1m, 1h */
	M_GET = M_PUT + 2, /* + res */
	M_RANGE = M_GET + NRES,
	M_EXPIRE = M_RANGE + NRES,
	M_COUNT = M_EXPIRE + NRES,
};

struct sqm {
	struct mstore base; /* first */
	sqlite3 *db;
	sqlite3_stmt *st[M_COUNT];
};

static struct sqm *sqm_of(struct mstore *m)
{
	return (struct sqm *)m;
}

static sqlite3_stmt *stmt(struct sqm *s, int i)
{
	return db_stmt(s->st[i]);
}

static int m_begin(struct mstore *m)
{
	return db_run(stmt(sqm_of(m), M_BEGIN));
}

static void m_rollback(struct mstore *m)
{
	struct sqm *s = sqm_of(m);

	for (int i = 0; i < M_COUNT; i++)
		sqlite3_reset(s->st[i]);
	if (!sqlite3_get_autocommit(s->db))
		db_run(stmt(s, M_ROLLBACK));
}

static int m_commit(struct mstore *m)
{
	int rc = db_run(stmt(sqm_of(m), M_COMMIT));

	if (rc < 0)
		m_rollback(m);
	return rc;
}

static int m_series_each(struct mstore *m, mstore_series_fn fn, void *arg)
{
	sqlite3_stmt *st = stmt(sqm_of(m), M_SERIES_EACH);
	int rc;

	while ((rc = db_step(st)) == 1) {
		rc = fn(arg, (uint32_t)sqlite3_column_int64(st, 0),
		        (const char *)sqlite3_column_text(st, 1),
		        (const char *)sqlite3_column_text(st, 2), sqlite3_column_int64(st, 3),
		        sqlite3_column_int64(st, 4));
		if (rc)
			break;
	}
	sqlite3_reset(st);
	return rc;
}

static int m_series_add(struct mstore *m, uint32_t id, const char *host, const char *key,
                        int64_t first_ms)
{
	sqlite3_stmt *st = stmt(sqm_of(m), M_SERIES_ADD);

	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, first_ms);
	return db_run(st);
}

static int m_series_rolled(struct mstore *m, uint32_t id, int64_t rolled_ms)
{
	sqlite3_stmt *st = stmt(sqm_of(m), M_SERIES_ROLLED);

	sqlite3_bind_int64(st, 1, rolled_ms);
	sqlite3_bind_int64(st, 2, id);
	return db_run(st);
}

static int m_seq_each(struct mstore *m, mstore_seq_fn fn, void *arg)
{
	sqlite3_stmt *st = stmt(sqm_of(m), M_SEQ_EACH);
	int rc;

	while ((rc = db_step(st)) == 1) {
		rc = fn(arg, (const char *)sqlite3_column_text(st, 0),
		        (const char *)sqlite3_column_text(st, 1), sqlite3_column_int64(st, 2));
		if (rc)
			break;
	}
	sqlite3_reset(st);
	return rc;
}

static int m_seq_put(struct mstore *m, const char *host, const char *epoch, int64_t seq)
{
	sqlite3_stmt *st = stmt(sqm_of(m), M_SEQ_PUT);

	sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, epoch, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, seq);
	return db_run(st);
}

static int m_log_add(struct mstore *m, const uint8_t *p, size_t len, int64_t *id)
{
	struct sqm *s = sqm_of(m);
	sqlite3_stmt *st = stmt(s, M_LOG_ADD);
	int rc;

	sqlite3_bind_blob64(st, 1, p, len, SQLITE_STATIC);
	rc = db_run(st);
	if (rc == 0 && id)
		*id = sqlite3_last_insert_rowid(s->db);
	return rc;
}

static int m_log_each(struct mstore *m, int64_t after_id, mstore_log_fn fn, void *arg)
{
	sqlite3_stmt *st = stmt(sqm_of(m), M_LOG_EACH);
	int rc;

	sqlite3_bind_int64(st, 1, after_id);
	while ((rc = db_step(st)) == 1) {
		rc = fn(arg, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
		        (size_t)sqlite3_column_bytes(st, 1));
		if (rc)
			break;
	}
	sqlite3_reset(st);
	return rc;
}

static int m_log_trim(struct mstore *m, int64_t upto_id)
{
	sqlite3_stmt *st = stmt(sqm_of(m), M_LOG_TRIM);

	sqlite3_bind_int64(st, 1, upto_id);
	return db_run(st);
}

static int res_ok(int res)
{
	return res >= 0 && res < NRES;
}

static int m_chunk_put(struct mstore *m, int res, const struct mstore_chunk *c)
{
	sqlite3_stmt *st;

	if (!res_ok(res))
		return OUTPOST_E_BAD_ARGS;
	st = stmt(sqm_of(m), res == 0 ? M_PUT_RAW : M_PUT + res - 1);
	sqlite3_bind_int64(st, 1, c->series);
	sqlite3_bind_int64(st, 2, c->start_ms);
	sqlite3_bind_int64(st, 3, c->end_ms);
	sqlite3_bind_int64(st, 4, c->count);
	sqlite3_bind_blob64(st, 5, c->data, c->len, SQLITE_STATIC);
	if (res == 0)
		sqlite3_bind_int(st, 6, c->sealed ? 1 : 0);
	return db_run(st);
}

/* Rows are (series, start_ms, end_ms, count, data, sealed). */
static int each_chunk(sqlite3_stmt *st, mstore_chunk_fn fn, void *arg, int *found)
{
	int rc;

	while ((rc = db_step(st)) == 1) {
		struct mstore_chunk c = {
		    .series = (uint32_t)sqlite3_column_int64(st, 0),
		    .start_ms = sqlite3_column_int64(st, 1),
		    .end_ms = sqlite3_column_int64(st, 2),
		    .count = (uint32_t)sqlite3_column_int64(st, 3),
		    .data = sqlite3_column_blob(st, 4),
		    .len = (size_t)sqlite3_column_bytes(st, 4),
		    .sealed = sqlite3_column_int(st, 5),
		};
		if (found)
			*found = 1;
		if ((rc = fn(arg, &c)))
			break;
	}
	sqlite3_reset(st);
	return rc;
}

static int m_chunk_get(struct mstore *m, int res, uint32_t series, int64_t start_ms,
                       mstore_chunk_fn fn, void *arg)
{
	sqlite3_stmt *st;
	int found = 0, rc;

	if (!res_ok(res))
		return OUTPOST_E_BAD_ARGS;
	st = stmt(sqm_of(m), M_GET + res);
	sqlite3_bind_int64(st, 1, series);
	sqlite3_bind_int64(st, 2, start_ms);
	rc = each_chunk(st, fn, arg, &found);
	return rc ? rc : found ? 0 : OUTPOST_E_NOT_FOUND;
}

static int m_chunk_range(struct mstore *m, int res, uint32_t series, int64_t from, int64_t to,
                         mstore_chunk_fn fn, void *arg)
{
	sqlite3_stmt *st;

	if (!res_ok(res))
		return OUTPOST_E_BAD_ARGS;
	st = stmt(sqm_of(m), M_RANGE + res);
	sqlite3_bind_int64(st, 1, series);
	sqlite3_bind_int64(st, 2, from);
	sqlite3_bind_int64(st, 3, to);
	return each_chunk(st, fn, arg, NULL);
}

static int m_chunk_latest(struct mstore *m, mstore_chunk_fn fn, void *arg)
{
	return each_chunk(stmt(sqm_of(m), M_LATEST), fn, arg, NULL);
}

static int m_chunk_unrolled(struct mstore *m, int limit, mstore_chunk_fn fn, void *arg)
{
	sqlite3_stmt *st = stmt(sqm_of(m), M_UNROLLED);

	sqlite3_bind_int(st, 1, limit);
	return each_chunk(st, fn, arg, NULL);
}

static int m_chunk_mark_rolled(struct mstore *m, uint32_t series, int64_t start_ms)
{
	sqlite3_stmt *st = stmt(sqm_of(m), M_MARK_ROLLED);

	sqlite3_bind_int64(st, 1, series);
	sqlite3_bind_int64(st, 2, start_ms);
	return db_run(st);
}

static int m_chunk_expire(struct mstore *m, int res, int64_t before_ms, int limit, int64_t *n)
{
	struct sqm *s = sqm_of(m);
	sqlite3_stmt *st;
	int rc;

	if (!res_ok(res))
		return OUTPOST_E_BAD_ARGS;
	st = stmt(s, M_EXPIRE + res);
	sqlite3_bind_int64(st, 1, before_ms);
	sqlite3_bind_int(st, 2, limit);
	rc = db_run(st);
	if (n)
		*n = rc == 0 ? sqlite3_changes64(s->db) : 0;
	return rc;
}

/* One integer from a statement made on the spot (stats only: not on a hot path). */
static int64_t scalar(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int m_stats(struct mstore *m, json_t **out)
{
	struct sqm *s = sqm_of(m);
	int64_t page = scalar(s->db, "PRAGMA page_size");
	json_t *o, *chunks = json_array(), *bytes = json_array(), *samples = json_array();
	char sql[160];

	for (int r = 0; r < NRES; r++) {
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", res_table[r]);
		json_array_append_new(chunks, json_integer(scalar(s->db, sql)));
		snprintf(sql, sizeof(sql), "SELECT coalesce(sum(length(data)), 0) FROM %s",
		         res_table[r]);
		json_array_append_new(bytes, json_integer(scalar(s->db, sql)));
		snprintf(sql, sizeof(sql), "SELECT coalesce(sum(count), 0) FROM %s", res_table[r]);
		json_array_append_new(samples, json_integer(scalar(s->db, sql)));
	}
	o = json_pack("{s:I, s:I, s:o, s:o, s:o, s:I, s:I}", "file_bytes",
	              (json_int_t)(scalar(s->db, "PRAGMA page_count") * page), "free_bytes",
	              (json_int_t)(scalar(s->db, "PRAGMA freelist_count") * page), "chunks", chunks,
	              "chunk_bytes", bytes, "samples", samples, "series",
	              (json_int_t)scalar(s->db, "SELECT count(*) FROM series"), "log_rows",
	              (json_int_t)scalar(s->db, "SELECT count(*) FROM ingest_log"));
	if (!o)
		return OUTPOST_E_INTERNAL;
	*out = o;
	return 0;
}

static const struct mstore_ops sqm_ops = {
    .begin = m_begin,
    .commit = m_commit,
    .rollback = m_rollback,
    .series_each = m_series_each,
    .series_add = m_series_add,
    .series_rolled = m_series_rolled,
    .seq_each = m_seq_each,
    .seq_put = m_seq_put,
    .log_add = m_log_add,
    .log_each = m_log_each,
    .log_trim = m_log_trim,
    .chunk_put = m_chunk_put,
    .chunk_get = m_chunk_get,
    .chunk_range = m_chunk_range,
    .chunk_latest = m_chunk_latest,
    .chunk_unrolled = m_chunk_unrolled,
    .chunk_mark_rolled = m_chunk_mark_rolled,
    .chunk_expire = m_chunk_expire,
    .stats = m_stats,
};

/* The statements, made at open: fixed ones, then one per resolution where the table varies. */
static int sqm_prepare(struct sqm *s, char *msg, size_t msglen)
{
	static const char *const fixed[M_PUT_RAW + 1] = {
	    [M_BEGIN] = "BEGIN IMMEDIATE",
	    [M_COMMIT] = "COMMIT",
	    [M_ROLLBACK] = "ROLLBACK",
	    [M_SERIES_EACH] = "SELECT id, host, key, first_ms, rolled_ms FROM series ORDER BY id",
	    [M_SERIES_ADD] = "INSERT INTO series (id, host, key, first_ms) VALUES (?, ?, ?, ?)",
	    [M_SERIES_ROLLED] = "UPDATE series SET rolled_ms = max(rolled_ms, ?) WHERE id = ?",
	    [M_SEQ_EACH] = "SELECT host, epoch, seq FROM ingest_seq",
	    [M_SEQ_PUT] =
	        "INSERT INTO ingest_seq (host, epoch, seq) VALUES (?, ?, ?) "
	        "ON CONFLICT (host) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq",
	    [M_LOG_ADD] = "INSERT INTO ingest_log (data) VALUES (?)",
	    [M_LOG_EACH] = "SELECT id, data FROM ingest_log WHERE id > ? ORDER BY id",
	    [M_LOG_TRIM] = "DELETE FROM ingest_log WHERE id <= ?",
	    /* The newest chunk per series: SQLite's bare-column rule for max() returns the other
	     * columns of the row that holds the maximum. */
	    [M_LATEST] =
	        "SELECT series, max(start_ms), end_ms, count, data, sealed FROM chunks_raw "
	        "GROUP BY series",
	    [M_UNROLLED] = "SELECT series, start_ms, end_ms, count, data, sealed FROM chunks_raw "
	                   "WHERE sealed = 1 AND rolled = 0 ORDER BY start_ms LIMIT ?",
	    [M_MARK_ROLLED] = "UPDATE chunks_raw SET rolled = 1 WHERE series = ? AND start_ms = ?",
	    [M_PUT_RAW] = "INSERT INTO chunks_raw (series, start_ms, end_ms, count, data, sealed) "
	                  "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (series, start_ms) DO UPDATE SET "
	                  "end_ms = excluded.end_ms, count = excluded.count, data = excluded.data, "
	                  "sealed = excluded.sealed, rolled = 0",
	};
	char sql[512];

	for (int i = 0; i < M_COUNT; i++) {
		const char *q = i <= M_PUT_RAW ? fixed[i] : sql;
		if (i >= M_PUT && i < M_GET) {
			snprintf(
			    sql, sizeof(sql),
			    "INSERT OR REPLACE INTO %s (series, start_ms, end_ms, count, data) "
			    "VALUES (?, ?, ?, ?, ?)",
			    res_table[i - M_PUT + 1]);
		} else if (i >= M_GET && i < M_RANGE) {
			snprintf(sql, sizeof(sql),
			         "SELECT series, start_ms, end_ms, count, data, %s FROM %s "
			         "WHERE series = ? AND start_ms = ?",
			         i == M_GET ? "sealed" : "0", res_table[i - M_GET]);
		} else if (i >= M_RANGE && i < M_EXPIRE) {
			/* Windows are at most a month long: start_ms > from - 31 days keeps the
			 * scan on the primary key instead of every chunk of the series. */
			snprintf(sql, sizeof(sql),
			         "SELECT series, start_ms, end_ms, count, data, %s FROM %s "
			         "WHERE series = ?1 AND start_ms > ?2 - 2678400000 AND end_ms > ?2 "
			         "AND start_ms < ?3 ORDER BY start_ms",
			         i == M_RANGE ? "sealed" : "0", res_table[i - M_RANGE]);
		} else if (i >= M_EXPIRE) {
			snprintf(
			    sql, sizeof(sql),
			    "DELETE FROM %1$s WHERE (series, start_ms) IN (SELECT series, start_ms "
			    "FROM %1$s WHERE end_ms < ? %2$s LIMIT ?)",
			    res_table[i - M_EXPIRE], i == M_EXPIRE ? "AND rolled = 1" : "");
		}
		if (sqlite3_prepare_v3(s->db, q, -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) !=
		    SQLITE_OK) {
			snprintf(msg, msglen, "sqlite (metrics.db): preparing statement %d: %s", i,
			         sqlite3_errmsg(s->db));
			return OUTPOST_E_INTERNAL;
		}
	}
	return 0;
}

void sqm_close(struct mstore *m)
{
	struct sqm *s = sqm_of(m);

	if (!s)
		return;
	for (int i = 0; i < M_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	db_close(s->db);
	free(s);
}

int sqm_open(const char *state_dir, struct mstore **out, char *msg, size_t msglen)
{
	struct sqm *s = calloc(1, sizeof(*s));
	char *path = NULL;
	size_t n = strlen(state_dir) + sizeof("/metrics.db");
	int rc = OUTPOST_E_INTERNAL;

	*out = NULL;
	if (!s || !(path = malloc(n))) {
		snprintf(msg, msglen, "out of memory");
		goto fail;
	}
	snprintf(path, n, "%s/metrics.db", state_dir);
	s->base.ops = &sqm_ops;
	if ((rc = db_open(path, &s->db, msg, msglen)) < 0)
		goto fail;
	/* Chunk pages are written once and read by queries; 16 MB of cache holds the indexes and
	 * the recent chunks of a large fleet. */
	if ((rc = db_exec(s->db, "PRAGMA cache_size=-16384", msg, msglen)) < 0 ||
	    (rc = db_migrate(s->db, "metrics", metrics_schema,
	                     (int)(sizeof(metrics_schema) / sizeof(metrics_schema[0])), msg,
	                     msglen)) < 0 ||
	    (rc = sqm_prepare(s, msg, msglen)) < 0)
		goto fail;
	free(path);
	*out = &s->base;
	return 0;
fail:
	free(path);
	if (s)
		sqm_close(&s->base);
	return rc;
}
