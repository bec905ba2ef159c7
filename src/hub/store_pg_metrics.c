/* The metrics side of the PostgreSQL store (store.h, struct mstore): series, dedupe marks, the
 * ingest log and the chunks of each resolution, shared by every hub on the database. The SQLite
 * store's semantics op for op (tests/hub/tsdb_test.c runs on both); what it adds is for hubs
 * that share: series ids in blocks from a sequence, the log as one row per sample that every
 * hub reads (log_since, log_range), dedupe marks read and swapped under the metrics lock.
 * A connection of its own (ingest's transactions never wait behind the registry's, nor the
 * other way round), statements prepared once, binary parameters and results, the log written
 * with COPY (binary). Every write transaction takes the metrics advisory lock, so that
 * positions (series.rid, ingest_log.rid) are handed out in commit order: a reader that has
 * seen position n has seen everything before it. */
#include "store_pg.h"

#include <endian.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <outpost/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* The advisory lock of metrics writes: "metrics" in ASCII; not the registry's. */
#define PM_LOCK "30792091758654579"
/* Series ids come in blocks this large (the sequence's increment). */
#define PM_ID_BLOCK 1024

/* One migration step per version (component "metrics"); never edit a shipped step.
 * - series.rid / ingest_log.rid: positions in commit order (writers hold the lock), what
 *   series_since and log_since page by.
 * - ingest_log: one row per sample, hub = the writer (hub.id in its state dir); id = the
 *   entry (log_add's result), from a sequence; (series, t) indexed for log_range.
 * - chunks keyed (series, start_ms) as in SQLite; the unrolled partial index is the queue. */
static const char *const pm_schema[] = {
    "CREATE SEQUENCE series_ids INCREMENT BY 1024;"
    "CREATE TABLE series ("
    " id BIGINT PRIMARY KEY,"
    " host TEXT NOT NULL,"
    " key TEXT NOT NULL,"
    " first_ms BIGINT NOT NULL,"
    " rolled_ms BIGINT NOT NULL DEFAULT 0,"
    " rid BIGSERIAL,"
    " UNIQUE (host, key));"
    "CREATE INDEX series_rid ON series(rid);"
    "CREATE TABLE ingest_seq ("
    " host TEXT PRIMARY KEY,"
    " epoch TEXT NOT NULL,"
    " seq BIGINT NOT NULL);"
    "CREATE SEQUENCE ingest_log_ids;"
    "CREATE TABLE ingest_log ("
    " rid BIGSERIAL PRIMARY KEY,"
    " id BIGINT NOT NULL,"
    " hub TEXT NOT NULL,"
    " series BIGINT NOT NULL,"
    " t BIGINT NOT NULL,"
    " v DOUBLE PRECISION NOT NULL);"
    "CREATE INDEX ingest_log_hub ON ingest_log(hub, id);"
    "CREATE INDEX ingest_log_series ON ingest_log(series, t);"
    "CREATE TABLE chunks_raw ("
    " series BIGINT NOT NULL,"
    " start_ms BIGINT NOT NULL,"
    " end_ms BIGINT NOT NULL,"
    " count BIGINT NOT NULL,"
    " sealed INTEGER NOT NULL,"
    " rolled INTEGER NOT NULL DEFAULT 0,"
    " data BYTEA NOT NULL,"
    " PRIMARY KEY (series, start_ms));"
    "CREATE INDEX chunks_raw_end ON chunks_raw(end_ms);"
    "CREATE INDEX chunks_raw_unrolled ON chunks_raw(start_ms) WHERE sealed = 1 AND rolled = 0;"
    "CREATE TABLE chunks_1m ("
    " series BIGINT NOT NULL,"
    " start_ms BIGINT NOT NULL,"
    " end_ms BIGINT NOT NULL,"
    " count BIGINT NOT NULL,"
    " data BYTEA NOT NULL,"
    " PRIMARY KEY (series, start_ms));"
    "CREATE INDEX chunks_1m_end ON chunks_1m(end_ms);"
    "CREATE TABLE chunks_1h ("
    " series BIGINT NOT NULL,"
    " start_ms BIGINT NOT NULL,"
    " end_ms BIGINT NOT NULL,"
    " count BIGINT NOT NULL,"
    " data BYTEA NOT NULL,"
    " PRIMARY KEY (series, start_ms));"
    "CREATE INDEX chunks_1h_end ON chunks_1h(end_ms);",
};
#define PM_SCHEMA_VERSION ((int)(sizeof(pm_schema) / sizeof(pm_schema[0])))

#define NRES 3
static const char *const res_table[NRES] = {"chunks_raw", "chunks_1m", "chunks_1h"};

enum pms {
	Q_SERIES_EACH,
	Q_SERIES_ADD,
	Q_SERIES_ROLLED,
	Q_SERIES_BLOCK,
	Q_SERIES_SINCE,
	Q_SEQ_EACH,
	Q_SEQ_PUT,
	Q_SEQ_GET,
	Q_SEQ_SWAP,
	Q_SEQ_SWAP_NEW,
	Q_LOG_ID,
	Q_LOG_EACH,
	Q_LOG_TRIM,
	Q_LOG_SINCE,
	Q_LOG_RANGE,
	Q_LATEST,
	Q_UNROLLED,
	Q_MARK_ROLLED,
	Q_PUT_RAW,
	Q_PUT,             /* + res - 1 */
	Q_GET = Q_PUT + 2, /* + res */
	Q_RANGE = Q_GET + NRES,
	Q_EXPIRE = Q_RANGE + NRES,
	Q_COUNT = Q_EXPIRE + NRES,
};

#define CHUNK_COLS "series, start_ms, end_ms, count, data"

static const char *const fixed_sql[Q_PUT] = {
    [Q_SERIES_EACH] = "SELECT id, host, key, first_ms, rolled_ms FROM series ORDER BY id",
    [Q_SERIES_ADD] = "INSERT INTO series (id, host, key, first_ms) VALUES ($1, $2, $3, $4)",
    [Q_SERIES_ROLLED] = "UPDATE series SET rolled_ms = greatest(rolled_ms, $1) WHERE id = $2",
    [Q_SERIES_BLOCK] = "SELECT nextval('series_ids')",
    [Q_SERIES_SINCE] = "SELECT id, host, key, first_ms, rolled_ms, rid FROM series "
                       "WHERE rid > $1 ORDER BY rid",
    [Q_SEQ_EACH] = "SELECT host, epoch, seq FROM ingest_seq",
    [Q_SEQ_PUT] = "INSERT INTO ingest_seq (host, epoch, seq) VALUES ($1, $2, $3) "
                  "ON CONFLICT (host) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq",
    [Q_SEQ_GET] = "SELECT epoch, seq FROM ingest_seq WHERE host = $1",
    [Q_SEQ_SWAP] = "UPDATE ingest_seq SET epoch = $4, seq = $5 WHERE host = $1 AND "
                   "epoch = $2 AND seq = $3",
    [Q_SEQ_SWAP_NEW] = "INSERT INTO ingest_seq (host, epoch, seq) VALUES ($1, $2, $3) "
                       "ON CONFLICT (host) DO NOTHING",
    [Q_LOG_ID] = "SELECT nextval('ingest_log_ids')",
    [Q_LOG_EACH] = "SELECT id, series, t, v FROM ingest_log WHERE hub = $1 AND id > $2 "
                   "ORDER BY id, rid",
    [Q_LOG_TRIM] = "DELETE FROM ingest_log WHERE hub = $1 AND id <= $2",
    [Q_LOG_SINCE] = "SELECT rid, series, t, v, hub = $1 FROM ingest_log WHERE rid > $2 "
                    "ORDER BY rid LIMIT 100000",
    [Q_LOG_RANGE] = "SELECT series, t, v, false FROM ingest_log WHERE series = $2 AND "
                    "t >= $3 AND t < $4 AND hub <> $1 ORDER BY t, rid",
    [Q_LATEST] = "SELECT DISTINCT ON (series) " CHUNK_COLS ", sealed FROM chunks_raw "
                 "ORDER BY series, start_ms DESC",
    [Q_UNROLLED] = "SELECT " CHUNK_COLS ", sealed FROM chunks_raw WHERE sealed = 1 AND "
                   "rolled = 0 ORDER BY start_ms LIMIT $1",
    [Q_MARK_ROLLED] = "UPDATE chunks_raw SET rolled = 1 WHERE series = $1 AND start_ms = $2",
    [Q_PUT_RAW] =
        "INSERT INTO chunks_raw (series, start_ms, end_ms, count, data, sealed) "
        "VALUES ($1, $2, $3, $4, $5, $6::bigint) ON CONFLICT (series, start_ms) DO UPDATE "
        "SET end_ms = excluded.end_ms, count = excluded.count, data = excluded.data, "
        "sealed = excluded.sealed, rolled = 0",
};

struct pgm {
	struct mstore base; /* first */
	PGconn *conn;
	char *dsn;
	char hub[33]; /* this hub's name in the log (hub.id in its state dir) */
	int ready, in_tx;
};

static struct pgm *pgm_of(struct mstore *m)
{
	return (struct pgm *)m;
}

/* ---- Parameters and results, binary ---- */

struct params {
	const char *v[8];
	int len[8], fmt[8];
	uint64_t num[8];
	int n;
};

static void p_i64(struct params *p, int64_t x)
{
	p->num[p->n] = htobe64((uint64_t)x);
	p->v[p->n] = (const char *)&p->num[p->n];
	p->len[p->n] = 8;
	p->fmt[p->n++] = 1;
}

static void p_str(struct params *p, const char *s)
{
	p->v[p->n] = s;
	p->len[p->n] = 0;
	p->fmt[p->n++] = 0;
}

static void p_bytes(struct params *p, const uint8_t *b, size_t len)
{
	p->v[p->n] = len ? (const char *)b : "";
	p->len[p->n] = (int)len;
	p->fmt[p->n++] = 1;
}

static int64_t r_i64(const PGresult *r, int row, int col)
{
	uint64_t v;
	const char *p = PQgetvalue(r, row, col);

	if (PQgetisnull(r, row, col))
		return 0;
	if (PQgetlength(r, row, col) == 4) {
		uint32_t w;
		memcpy(&w, p, 4);
		return (int32_t)be32toh(w);
	}
	memcpy(&v, p, 8);
	return (int64_t)be64toh(v);
}

static double r_f64(const PGresult *r, int row, int col)
{
	uint64_t v;
	double d;

	memcpy(&v, PQgetvalue(r, row, col), 8);
	v = be64toh(v);
	memcpy(&d, &v, 8);
	return d;
}

static int r_bool(const PGresult *r, int row, int col)
{
	return PQgetvalue(r, row, col)[0] != 0;
}

/* ---- Connection ---- */

static int pm_err(struct pgm *g, const PGresult *r)
{
	const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(g->conn) != CONNECTION_OK) {
		g->ready = 0;
		return OUTPOST_E_UNAVAILABLE;
	}
	if (code && strcmp(code, "23505") == 0)
		return OUTPOST_E_CONFLICT;
	if (code && (strncmp(code, "08", 2) == 0 || strncmp(code, "57P", 3) == 0)) {
		g->ready = 0;
		return OUTPOST_E_UNAVAILABLE;
	}
	if (code && (strcmp(code, "40001") == 0 || strcmp(code, "40P01") == 0))
		return OUTPOST_E_BUSY;
	return OUTPOST_E_INTERNAL;
}

static int pm_exec(struct pgm *g, const char *sql, char *msg, size_t msglen)
{
	PGresult *r = PQexec(g->conn, sql);
	ExecStatusType st = PQresultStatus(r);
	int rc = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		if (msglen)
			snprintf(msg, msglen, "postgresql (metrics): %s", PQerrorMessage(g->conn));
		rc = pm_err(g, r);
	}
	PQclear(r);
	return rc;
}

static int pm_migrate(struct pgm *g, char *msg, size_t msglen)
{
	char sql[160];
	PGresult *r;
	int rc, have;

	if ((rc = pm_exec(g,
	                  "CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, "
	                  "version INTEGER NOT NULL)",
	                  msg, msglen)) < 0)
		return rc;
	for (;;) {
		if ((rc = pm_exec(g, "BEGIN; SELECT pg_advisory_xact_lock(" PM_LOCK ")", msg,
		                  msglen)) < 0)
			return rc;
		r = PQexec(g->conn,
		           "SELECT version FROM schema_version WHERE component = 'metrics'");
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			snprintf(msg, msglen, "postgresql (metrics): %s", PQerrorMessage(g->conn));
			rc = pm_err(g, r);
			PQclear(r);
			goto fail;
		}
		have = PQntuples(r) ? atoi(PQgetvalue(r, 0, 0)) : 0;
		PQclear(r);
		if (have > PM_SCHEMA_VERSION) {
			snprintf(
			    msg, msglen,
			    "postgresql: the metrics schema is version %d, newer than this hub "
			    "knows (%d): run a newer outpost-hub",
			    have, PM_SCHEMA_VERSION);
			rc = OUTPOST_E_CONFLICT;
			goto fail;
		}
		if (have == PM_SCHEMA_VERSION)
			return pm_exec(g, "COMMIT", msg, msglen);
		snprintf(
		    sql, sizeof(sql),
		    "INSERT INTO schema_version VALUES ('metrics', %d) ON CONFLICT (component) "
		    "DO UPDATE SET version = excluded.version",
		    have + 1);
		if ((rc = pm_exec(g, pm_schema[have], msg, msglen)) < 0 ||
		    (rc = pm_exec(g, sql, msg, msglen)) < 0 ||
		    (rc = pm_exec(g, "COMMIT", msg, msglen)) < 0)
			goto fail;
	}
fail:
	pm_exec(g, "ROLLBACK", NULL, 0);
	return rc;
}

static void pm_notice(void *arg, const char *message)
{
	(void)arg, (void)message;
}

static int pm_prepare(struct pgm *g, char *msg, size_t msglen)
{
	char sql[512], name[16];

	for (int i = 0; i < Q_COUNT; i++) {
		const char *q = i < Q_PUT ? fixed_sql[i] : sql;
		PGresult *r;
		if (i >= Q_PUT && i < Q_GET)
			snprintf(sql, sizeof(sql),
			         "INSERT INTO %s (" CHUNK_COLS ") VALUES ($1, $2, $3, $4, $5) "
			         "ON CONFLICT (series, start_ms) DO UPDATE SET end_ms = "
			         "excluded.end_ms, count = excluded.count, data = excluded.data",
			         res_table[i - Q_PUT + 1]);
		else if (i >= Q_GET && i < Q_RANGE)
			snprintf(sql, sizeof(sql),
			         "SELECT " CHUNK_COLS ", %s FROM %s WHERE series = $1 AND "
			         "start_ms = $2",
			         i == Q_GET ? "sealed" : "0", res_table[i - Q_GET]);
		else if (i >= Q_RANGE && i < Q_EXPIRE)
			/* Windows are at most a month long (see the SQLite store). */
			snprintf(sql, sizeof(sql),
			         "SELECT " CHUNK_COLS ", %s FROM %s WHERE series = $1 AND "
			         "start_ms > $2 - 2678400000 AND end_ms > $2 AND start_ms < $3 "
			         "ORDER BY start_ms",
			         i == Q_RANGE ? "sealed" : "0", res_table[i - Q_RANGE]);
		else if (i >= Q_EXPIRE)
			snprintf(sql, sizeof(sql),
			         "DELETE FROM %1$s WHERE (series, start_ms) IN (SELECT series, "
			         "start_ms FROM %1$s WHERE end_ms < $1 %2$s LIMIT $2)",
			         res_table[i - Q_EXPIRE], i == Q_EXPIRE ? "AND rolled = 1" : "");
		snprintf(name, sizeof(name), "m%d", i);
		r = PQprepare(g->conn, name, q, 0, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			int rc;
			snprintf(msg, msglen, "postgresql (metrics): preparing statement %d: %s", i,
			         PQerrorMessage(g->conn));
			rc = pm_err(g, r);
			PQclear(r);
			return rc;
		}
		PQclear(r);
	}
	return 0;
}

static int pm_connect(struct pgm *g, char *msg, size_t msglen)
{
	const char *const keys[] = {"connect_timeout", "dbname", NULL};
	const char *vals[] = {"5", g->dsn, NULL};
	int rc;

	if (g->ready && PQstatus(g->conn) == CONNECTION_OK)
		return 0;
	g->ready = 0;
	if (g->conn)
		PQfinish(g->conn);
	g->conn = PQconnectdbParams(keys, vals, 1);
	if (!g->conn || PQstatus(g->conn) != CONNECTION_OK) {
		snprintf(msg, msglen, "postgresql (metrics): cannot connect: %s",
		         g->conn ? PQerrorMessage(g->conn) : "out of memory");
		return OUTPOST_E_UNAVAILABLE;
	}
	PQsetNoticeProcessor(g->conn, pm_notice, NULL);
	if ((rc = pm_exec(g, "SET client_min_messages = warning; SET statement_timeout = '60s'",
	                  msg, msglen)) < 0 ||
	    (rc = pm_migrate(g, msg, msglen)) < 0 || (rc = pm_prepare(g, msg, msglen)) < 0)
		return rc;
	g->ready = 1;
	return 0;
}

/* Runs statement i with p; *res gets a binary result the caller clears (NULL: none kept).
 * Returns rows returned or touched, or OUTPOST_E_*. */
static int pm_run(struct pgm *g, enum pms i, struct params *p, PGresult **res)
{
	char name[16], msg[256];
	ExecStatusType st;
	PGresult *r;
	int rc;

	if (res)
		*res = NULL;
	if (!g->in_tx && (rc = pm_connect(g, msg, sizeof(msg))) < 0)
		return rc;
	if (!g->ready)
		return OUTPOST_E_UNAVAILABLE;
	snprintf(name, sizeof(name), "m%d", (int)i);
	r = PQexecPrepared(g->conn, name, p ? p->n : 0, p ? p->v : NULL, p ? p->len : NULL,
	                   p ? p->fmt : NULL, 1);
	st = PQresultStatus(r);
	if (st == PGRES_TUPLES_OK)
		rc = PQntuples(r);
	else if (st == PGRES_COMMAND_OK)
		rc = atoi(PQcmdTuples(r));
	else {
		rc = pm_err(g, r);
		PQclear(r);
		return rc;
	}
	if (res)
		*res = r;
	else
		PQclear(r);
	return rc;
}

/* ---- Transactions ---- */

static int m_begin(struct mstore *m)
{
	struct pgm *g = pgm_of(m);
	char msg[256];
	int rc;

	if ((rc = pm_connect(g, msg, sizeof(msg))) < 0)
		return rc;
	if ((rc = pm_exec(g, "BEGIN; SELECT pg_advisory_xact_lock(" PM_LOCK ")", NULL, 0)) < 0) {
		pm_exec(g, "ROLLBACK", NULL, 0);
		return rc;
	}
	g->in_tx = 1;
	return 0;
}

static void m_rollback(struct mstore *m)
{
	struct pgm *g = pgm_of(m);

	if (g->in_tx && PQstatus(g->conn) == CONNECTION_OK)
		pm_exec(g, "ROLLBACK", NULL, 0);
	g->in_tx = 0;
}

static int m_commit(struct mstore *m)
{
	struct pgm *g = pgm_of(m);
	int rc = pm_exec(g, "COMMIT", NULL, 0);

	if (rc < 0)
		m_rollback(m);
	g->in_tx = 0;
	return rc;
}

/* ---- Series and dedupe marks ---- */

static int each_series(PGresult *r, mstore_series_fn fn, void *arg, int64_t *last)
{
	int rc = 0;

	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		rc = fn(arg, (uint32_t)r_i64(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
		        r_i64(r, i, 3), r_i64(r, i, 4));
		if (last)
			*last = r_i64(r, i, 5);
	}
	PQclear(r);
	return rc;
}

static int m_series_each(struct mstore *m, mstore_series_fn fn, void *arg)
{
	PGresult *r;
	int rc = pm_run(pgm_of(m), Q_SERIES_EACH, NULL, &r);

	return rc < 0 ? rc : each_series(r, fn, arg, NULL);
}

static int m_series_since(struct mstore *m, int64_t after, mstore_series_fn fn, void *arg,
                          int64_t *last)
{
	struct params p = {0};
	PGresult *r;
	int rc;

	p_i64(&p, after);
	if ((rc = pm_run(pgm_of(m), Q_SERIES_SINCE, &p, &r)) < 0)
		return rc;
	return each_series(r, fn, arg, last);
}

static int m_series_add(struct mstore *m, uint32_t id, const char *host, const char *key,
                        int64_t first_ms)
{
	struct params p = {0};
	int rc;

	p_i64(&p, id);
	p_str(&p, host);
	p_str(&p, key);
	p_i64(&p, first_ms);
	rc = pm_run(pgm_of(m), Q_SERIES_ADD, &p, NULL);
	return rc < 0 ? rc : 0;
}

static int m_series_rolled(struct mstore *m, uint32_t id, int64_t rolled_ms)
{
	struct params p = {0};
	int rc;

	p_i64(&p, rolled_ms);
	p_i64(&p, id);
	rc = pm_run(pgm_of(m), Q_SERIES_ROLLED, &p, NULL);
	return rc < 0 ? rc : 0;
}

static int m_series_block(struct mstore *m, uint32_t *first, uint32_t *n)
{
	PGresult *r;
	int64_t v;
	int rc = pm_run(pgm_of(m), Q_SERIES_BLOCK, NULL, &r);

	if (rc < 0)
		return rc;
	v = r_i64(r, 0, 0);
	PQclear(r);
	if (v < 1 || v > (int64_t)UINT32_MAX - PM_ID_BLOCK)
		return OUTPOST_E_TOO_LARGE;
	*first = (uint32_t)v;
	*n = PM_ID_BLOCK;
	return 0;
}

static int m_seq_each(struct mstore *m, mstore_seq_fn fn, void *arg)
{
	PGresult *r;
	int rc = pm_run(pgm_of(m), Q_SEQ_EACH, NULL, &r);

	if (rc < 0)
		return rc;
	rc = 0;
	for (int i = 0; rc == 0 && i < PQntuples(r); i++)
		rc = fn(arg, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), r_i64(r, i, 2));
	PQclear(r);
	return rc;
}

static int m_seq_put(struct mstore *m, const char *host, const char *epoch, int64_t seq)
{
	struct params p = {0};
	int rc;

	p_str(&p, host);
	p_str(&p, epoch);
	p_i64(&p, seq);
	rc = pm_run(pgm_of(m), Q_SEQ_PUT, &p, NULL);
	return rc < 0 ? rc : 0;
}

static int m_seq_get(struct mstore *m, const char *host, char *epoch, size_t cap, int64_t *seq)
{
	struct params p = {0};
	PGresult *r;
	int rc;

	p_str(&p, host);
	if ((rc = pm_run(pgm_of(m), Q_SEQ_GET, &p, &r)) <= 0) {
		PQclear(r);
		return rc < 0 ? rc : OUTPOST_E_NOT_FOUND;
	}
	snprintf(epoch, cap, "%s", PQgetvalue(r, 0, 0));
	*seq = r_i64(r, 0, 1);
	PQclear(r);
	return 0;
}

static int m_seq_swap(struct mstore *m, const char *host, const char *old_epoch, int64_t old_seq,
                      const char *epoch, int64_t seq)
{
	struct params p = {0};
	int rc;

	p_str(&p, host);
	if (!old_epoch[0] && old_seq == 0) {
		/* None before: only if none is there now either. */
		p_str(&p, epoch);
		p_i64(&p, seq);
		rc = pm_run(pgm_of(m), Q_SEQ_SWAP_NEW, &p, NULL);
	} else {
		p_str(&p, old_epoch);
		p_i64(&p, old_seq);
		p_str(&p, epoch);
		p_i64(&p, seq);
		rc = pm_run(pgm_of(m), Q_SEQ_SWAP, &p, NULL);
	}
	if (rc < 0)
		return rc;
	return rc == 1 ? 0 : OUTPOST_E_CONFLICT;
}

/* ---- The log: one row per sample, written with COPY (binary) ---- */

struct cbuf {
	uint8_t *p;
	size_t n, cap;
};

static int cb_put(struct cbuf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 65536;
		uint8_t *x;
		while (cap < b->n + n)
			cap *= 2;
		if (!(x = realloc(b->p, cap)))
			return -1;
		b->p = x;
		b->cap = cap;
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
	return 0;
}

static int cb_i16(struct cbuf *b, int16_t v)
{
	uint16_t x = htobe16((uint16_t)v);
	return cb_put(b, &x, 2);
}

static int cb_i32(struct cbuf *b, int32_t v)
{
	uint32_t x = htobe32((uint32_t)v);
	return cb_put(b, &x, 4);
}

static int cb_i64(struct cbuf *b, uint64_t v)
{
	uint64_t x = htobe64(v);
	return cb_put(b, &x, 8);
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int m_log_add(struct mstore *m, const uint8_t *p, size_t len, int64_t *id)
{
	static const uint8_t sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};
	struct pgm *g = pgm_of(m);
	struct cbuf b = {0};
	size_t hublen = strlen(g->hub);
	PGresult *r;
	int64_t lid;
	int rc, bad = 0;

	if ((rc = pm_run(g, Q_LOG_ID, NULL, &r)) < 0)
		return rc;
	lid = r_i64(r, 0, 0);
	PQclear(r);
	/* The whole entry in one buffer: header, a tuple per record, trailer. */
	bad |= cb_put(&b, sig, sizeof(sig)) | cb_i32(&b, 0) | cb_i32(&b, 0);
	for (size_t i = 0; !bad && i + MSTORE_LOG_REC <= len; i += MSTORE_LOG_REC) {
		bad |= cb_i16(&b, 5);
		bad |= cb_i32(&b, 8) | cb_i64(&b, (uint64_t)lid);
		bad |= cb_i32(&b, (int32_t)hublen) | cb_put(&b, g->hub, hublen);
		bad |= cb_i32(&b, 8) | cb_i64(&b, le32(p + i));
		bad |= cb_i32(&b, 8) | cb_i64(&b, le64(p + i + 4));
		bad |= cb_i32(&b, 8) | cb_i64(&b, le64(p + i + 12)); /* the double's bits */
	}
	bad |= cb_i16(&b, -1);
	if (bad) {
		free(b.p);
		return OUTPOST_E_INTERNAL;
	}
	r = PQexec(g->conn, "COPY ingest_log (id, hub, series, t, v) FROM STDIN (FORMAT binary)");
	if (PQresultStatus(r) != PGRES_COPY_IN) {
		rc = pm_err(g, r);
		PQclear(r);
		free(b.p);
		return rc;
	}
	PQclear(r);
	rc = PQputCopyData(g->conn, (const char *)b.p, (int)b.n) == 1 &&
	             PQputCopyEnd(g->conn, NULL) == 1
	         ? 0
	         : OUTPOST_E_UNAVAILABLE;
	free(b.p);
	while ((r = PQgetResult(g->conn))) {
		if (rc == 0 && PQresultStatus(r) != PGRES_COMMAND_OK)
			rc = pm_err(g, r);
		PQclear(r);
	}
	if (rc == 0 && id)
		*id = lid;
	return rc;
}

static int m_log_each(struct mstore *m, int64_t after_id, mstore_log_fn fn, void *arg)
{
	struct pgm *g = pgm_of(m);
	struct params p = {0};
	struct cbuf b = {0};
	PGresult *r;
	int rc, n;

	p_str(&p, g->hub);
	p_i64(&p, after_id);
	if ((n = pm_run(g, Q_LOG_EACH, &p, &r)) < 0)
		return n;
	rc = 0;
	/* Rows back into entries: the records of one id, in the order they were written. */
	for (int i = 0; rc == 0 && i < n; i++) {
		int64_t id = r_i64(r, i, 0);
		uint8_t rec[MSTORE_LOG_REC];
		uint64_t t = (uint64_t)r_i64(r, i, 2), v;
		uint32_t s = (uint32_t)r_i64(r, i, 1);
		double d = r_f64(r, i, 3);
		memcpy(&v, &d, 8);
		for (int k = 0; k < 4; k++)
			rec[k] = (uint8_t)(s >> (8 * k));
		for (int k = 0; k < 8; k++) {
			rec[4 + k] = (uint8_t)(t >> (8 * k));
			rec[12 + k] = (uint8_t)(v >> (8 * k));
		}
		if (cb_put(&b, rec, sizeof(rec)) < 0) {
			rc = OUTPOST_E_INTERNAL;
			break;
		}
		if (i + 1 == n || r_i64(r, i + 1, 0) != id) {
			rc = fn(arg, id, b.p, b.n);
			b.n = 0;
		}
	}
	PQclear(r);
	free(b.p);
	return rc;
}

static int m_log_trim(struct mstore *m, int64_t upto_id)
{
	struct pgm *g = pgm_of(m);
	struct params p = {0};
	int rc;

	p_str(&p, g->hub);
	p_i64(&p, upto_id);
	rc = pm_run(g, Q_LOG_TRIM, &p, NULL);
	return rc < 0 ? rc : 0;
}

static int m_log_since(struct mstore *m, int64_t after, mstore_sample_fn fn, void *arg,
                       int64_t *last)
{
	struct pgm *g = pgm_of(m);
	struct params p = {0};
	PGresult *r;
	int rc, n;

	p_str(&p, g->hub);
	p_i64(&p, after);
	if ((n = pm_run(g, Q_LOG_SINCE, &p, &r)) < 0)
		return n;
	rc = 0;
	for (int i = 0; rc == 0 && i < n; i++) {
		rc = fn(arg, (uint32_t)r_i64(r, i, 1), r_i64(r, i, 2), r_f64(r, i, 3),
		        r_bool(r, i, 4));
		if (rc == 0 && last)
			*last = r_i64(r, i, 0);
	}
	PQclear(r);
	return rc;
}

static int m_log_range(struct mstore *m, uint32_t series, int64_t from, int64_t to,
                       mstore_sample_fn fn, void *arg)
{
	struct pgm *g = pgm_of(m);
	struct params p = {0};
	PGresult *r;
	int rc, n;

	p_str(&p, g->hub);
	p_i64(&p, series);
	p_i64(&p, from);
	p_i64(&p, to);
	if ((n = pm_run(g, Q_LOG_RANGE, &p, &r)) < 0)
		return n;
	rc = 0;
	for (int i = 0; rc == 0 && i < n; i++)
		rc = fn(arg, (uint32_t)r_i64(r, i, 0), r_i64(r, i, 1), r_f64(r, i, 2),
		        r_bool(r, i, 3));
	PQclear(r);
	return rc;
}

/* ---- Chunks ---- */

static int res_ok(int res)
{
	return res >= 0 && res < NRES;
}

static int m_chunk_put(struct mstore *m, int res, const struct mstore_chunk *c)
{
	struct params p = {0};
	int rc;

	if (!res_ok(res))
		return OUTPOST_E_BAD_ARGS;
	p_i64(&p, c->series);
	p_i64(&p, c->start_ms);
	p_i64(&p, c->end_ms);
	p_i64(&p, c->count);
	p_bytes(&p, c->data, c->len);
	if (res == 0)
		p_i64(&p, c->sealed ? 1 : 0);
	rc = pm_run(pgm_of(m), res == 0 ? Q_PUT_RAW : Q_PUT + res - 1, &p, NULL);
	return rc < 0 ? rc : 0;
}

/* Rows are (series, start_ms, end_ms, count, data, sealed). */
static int each_chunk(PGresult *r, mstore_chunk_fn fn, void *arg)
{
	int rc = 0;

	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		struct mstore_chunk c = {
		    .series = (uint32_t)r_i64(r, i, 0),
		    .start_ms = r_i64(r, i, 1),
		    .end_ms = r_i64(r, i, 2),
		    .count = (uint32_t)r_i64(r, i, 3),
		    .data = (const uint8_t *)PQgetvalue(r, i, 4),
		    .len = (size_t)PQgetlength(r, i, 4),
		    .sealed = (int)r_i64(r, i, 5),
		};
		rc = fn(arg, &c);
	}
	PQclear(r);
	return rc;
}

static int m_chunk_get(struct mstore *m, int res, uint32_t series, int64_t start_ms,
                       mstore_chunk_fn fn, void *arg)
{
	struct params p = {0};
	PGresult *r;
	int rc;

	if (!res_ok(res))
		return OUTPOST_E_BAD_ARGS;
	p_i64(&p, series);
	p_i64(&p, start_ms);
	if ((rc = pm_run(pgm_of(m), Q_GET + res, &p, &r)) <= 0) {
		PQclear(r);
		return rc < 0 ? rc : OUTPOST_E_NOT_FOUND;
	}
	return each_chunk(r, fn, arg);
}

static int m_chunk_range(struct mstore *m, int res, uint32_t series, int64_t from, int64_t to,
                         mstore_chunk_fn fn, void *arg)
{
	struct params p = {0};
	PGresult *r;
	int rc;

	if (!res_ok(res))
		return OUTPOST_E_BAD_ARGS;
	p_i64(&p, series);
	p_i64(&p, from);
	p_i64(&p, to);
	if ((rc = pm_run(pgm_of(m), Q_RANGE + res, &p, &r)) < 0)
		return rc;
	return each_chunk(r, fn, arg);
}

static int m_chunk_latest(struct mstore *m, mstore_chunk_fn fn, void *arg)
{
	PGresult *r;
	int rc = pm_run(pgm_of(m), Q_LATEST, NULL, &r);

	return rc < 0 ? rc : each_chunk(r, fn, arg);
}

static int m_chunk_unrolled(struct mstore *m, int limit, mstore_chunk_fn fn, void *arg)
{
	struct params p = {0};
	PGresult *r;
	int rc;

	p_i64(&p, limit);
	if ((rc = pm_run(pgm_of(m), Q_UNROLLED, &p, &r)) < 0)
		return rc;
	return each_chunk(r, fn, arg);
}

static int m_chunk_mark_rolled(struct mstore *m, uint32_t series, int64_t start_ms)
{
	struct params p = {0};
	int rc;

	p_i64(&p, series);
	p_i64(&p, start_ms);
	rc = pm_run(pgm_of(m), Q_MARK_ROLLED, &p, NULL);
	return rc < 0 ? rc : 0;
}

static int m_chunk_expire(struct mstore *m, int res, int64_t before_ms, int limit, int64_t *n)
{
	struct params p = {0};
	int rc;

	if (n)
		*n = 0;
	if (!res_ok(res))
		return OUTPOST_E_BAD_ARGS;
	p_i64(&p, before_ms);
	p_i64(&p, limit);
	if ((rc = pm_run(pgm_of(m), Q_EXPIRE + res, &p, NULL)) < 0)
		return rc;
	if (n)
		*n = rc;
	return 0;
}

/* One integer from a query made on the spot (stats only: not on a hot path). */
static int64_t scalar(struct pgm *g, const char *sql)
{
	PGresult *r = PQexec(g->conn, sql);
	int64_t v = -1;

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

static int m_stats(struct mstore *m, json_t **out)
{
	struct pgm *g = pgm_of(m);
	json_t *o, *chunks, *bytes, *samples;
	char sql[200], logsql[160], msg[256];
	int rc;

	if ((rc = pm_connect(g, msg, sizeof(msg))) < 0)
		return rc;
	chunks = json_array();
	bytes = json_array();
	samples = json_array();
	for (int r = 0; r < NRES; r++) {
		snprintf(sql, sizeof(sql),
		         "SELECT count(*), coalesce(sum(length(data)), 0), coalesce(sum(count), 0) "
		         "FROM %s",
		         res_table[r]);
		PGresult *x = PQexec(g->conn, sql);
		int ok = PQresultStatus(x) == PGRES_TUPLES_OK;
		json_array_append_new(chunks, json_integer(ok ? atoll(PQgetvalue(x, 0, 0)) : -1));
		json_array_append_new(bytes, json_integer(ok ? atoll(PQgetvalue(x, 0, 1)) : -1));
		json_array_append_new(samples, json_integer(ok ? atoll(PQgetvalue(x, 0, 2)) : -1));
		PQclear(x);
	}
	/* The hub id is hex: safe in the text. */
	snprintf(logsql, sizeof(logsql),
	         "SELECT count(DISTINCT id) FROM ingest_log WHERE hub = '%s'", g->hub);
	/* file_bytes: the metrics tables with their indexes; free space is PostgreSQL's. */
	o = json_pack(
	    "{s:I, s:I, s:o, s:o, s:o, s:I, s:I}", "file_bytes",
	    (json_int_t)scalar(g, "SELECT sum(pg_total_relation_size(c)) FROM unnest(ARRAY["
	                          "'series', 'ingest_seq', 'ingest_log', 'chunks_raw', "
	                          "'chunks_1m', 'chunks_1h']::regclass[]) AS c"),
	    "free_bytes", (json_int_t)0, "chunks", chunks, "chunk_bytes", bytes, "samples", samples,
	    "series", (json_int_t)scalar(g, "SELECT count(*) FROM series"), "log_rows",
	    (json_int_t)scalar(g, logsql));
	if (!o)
		return OUTPOST_E_INTERNAL;
	*out = o;
	return 0;
}

static const struct mstore_ops pgm_ops = {
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
    .series_block = m_series_block,
    .series_since = m_series_since,
    .log_since = m_log_since,
    .log_range = m_log_range,
    .seq_get = m_seq_get,
    .seq_swap = m_seq_swap,
};

/* This hub's name in the shared log: <state_dir>/hub.id, 32 hex digits made at the first
 * start and kept (a hub that restarts finds its own log entries again). */
static int hub_id(const char *state_dir, char out[33], char *msg, size_t msglen)
{
	char path[4096];
	uint8_t rnd[16];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/hub.id", state_dir);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
		n = read(fd, out, 32);
		close(fd);
		out[n > 0 ? n : 0] = '\0';
		if (n == 32 && strspn(out, "0123456789abcdef") == 32)
			return 0;
		snprintf(msg, msglen, "%s: not a hub id (32 hex digits): remove it to make one",
		         path);
		return OUTPOST_E_INTERNAL;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		snprintf(msg, msglen, "no random bytes for the hub id");
		return OUTPOST_E_INTERNAL;
	}
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", rnd[i]);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0 ||
	    write(fd, out, 32) != 32 || fsync(fd) < 0) {
		snprintf(msg, msglen, "%s: cannot write the hub id", path);
		if (fd >= 0)
			close(fd);
		return OUTPOST_E_INTERNAL;
	}
	close(fd);
	return 0;
}

void pgm_close(struct mstore *m)
{
	struct pgm *g = pgm_of(m);

	if (!g)
		return;
	if (g->conn)
		PQfinish(g->conn);
	free(g->dsn);
	free(g);
}

int pgm_open(const char *dsn, const char *state_dir, struct mstore **out, char *msg, size_t msglen)
{
	struct pgm *g = calloc(1, sizeof(*g));
	int rc;

	*out = NULL;
	if (!g || !(g->dsn = strdup(dsn))) {
		free(g);
		snprintf(msg, msglen, "out of memory");
		return OUTPOST_E_INTERNAL;
	}
	g->base.ops = &pgm_ops;
	if ((rc = hub_id(state_dir, g->hub, msg, msglen)) < 0 ||
	    (rc = pm_connect(g, msg, msglen)) < 0) {
		pgm_close(&g->base);
		return rc;
	}
	*out = &g->base;
	return 0;
}
