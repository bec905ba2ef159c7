/* The hub's store on PostgreSQL (several hubs share one database): the contract is store.h's,
 * the semantics are the SQLite store's, op for op (tests/hub/store_cases.h runs the same
 * assertions on both). One libpq connection per hub; every statement is prepared once per
 * connection (the table below); every call that writes is one transaction under one advisory
 * lock (pg_tx_begin). A lost connection answers OUTPOST_E_UNAVAILABLE and is reopened by the
 * next call. This file: connection, schema, statements, hosts and events, audit, stats and
 * retention; tasks, tokens and records are in store_pg_tasks.c, store_pg_tokens.c and
 * store_pg_recs.c. */
#include "store_pg_int.h"
#include "store_pg.h"
#include "store_rules.h"
#include "core/clk.h"

#include <stdarg.h>
#include <stdio.h>

/* The advisory lock key every write transaction takes: "outpost" in ASCII. */
#define PG_WRITE_LOCK "7993212335010676"

/* One migration step per schema version, recorded in schema_version (component "hub"); never
 * edit a step that has shipped: add one. The schema is the SQLite store's (see the notes in
 * store_sqlite.c) with PostgreSQL's types; what SQLite's rowid gave is explicit: tasks.rid
 * and tokens.rid (insertion order), task_hosts.ord (the host's place in the task's list). */
static const char *const pg_schema[] = {
    "CREATE TABLE hosts ("
    " id TEXT PRIMARY KEY,"
    " hostname TEXT,"
    " pubkey TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('up', 'down', 'pending', 'revoked', 'rejected')),"
    " labels TEXT NOT NULL DEFAULT '{}',"
    " facts TEXT NOT NULL DEFAULT '{}',"
    " attrs TEXT NOT NULL DEFAULT '{}',"
    " version TEXT,"
    " first_seen_ms BIGINT NOT NULL,"
    " last_seen_ms BIGINT NOT NULL);"
    "CREATE INDEX hosts_state_seen ON hosts(state, last_seen_ms);"
    "CREATE TABLE events ("
    " id BIGSERIAL PRIMARY KEY,"
    " host_id TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " detail TEXT NOT NULL DEFAULT '',"
    " at_ms BIGINT NOT NULL);"
    "CREATE INDEX events_host ON events(host_id, id);"
    "CREATE INDEX events_at ON events(at_ms);"
    "CREATE TABLE tokens ("
    " id TEXT PRIMARY KEY,"
    " rid BIGSERIAL,"
    " hash TEXT NOT NULL UNIQUE,"
    " kind TEXT NOT NULL CHECK (kind IN ('enroll', 'operator')),"
    " role TEXT,"
    " labels TEXT NOT NULL DEFAULT '{}',"
    " created_ms BIGINT NOT NULL,"
    " expires_ms BIGINT NOT NULL DEFAULT 0,"
    " revoked BOOLEAN NOT NULL DEFAULT false,"
    " created_by TEXT);"
    "CREATE TABLE tasks ("
    " id TEXT PRIMARY KEY,"
    " rid BIGSERIAL,"
    " target TEXT NOT NULL,"
    " plugin TEXT NOT NULL,"
    " op TEXT NOT NULL,"
    " args TEXT NOT NULL,"
    " timeout_ms BIGINT NOT NULL,"
    " created_ms BIGINT NOT NULL,"
    " expires_ms BIGINT NOT NULL,"
    " created_by TEXT,"
    " batch_size BIGINT NOT NULL,"
    " max_failures BIGINT NOT NULL,"
    " last_batch BIGINT NOT NULL,"
    " released_batch BIGINT NOT NULL DEFAULT 0,"
    " state TEXT NOT NULL CHECK (state IN ('running', 'done', 'cancelled')),"
    " cancelled_ms BIGINT,"
    " ended_ms BIGINT);"
    "CREATE INDEX tasks_created ON tasks(created_ms, rid);"
    "CREATE INDEX tasks_running ON tasks(expires_ms) WHERE state = 'running';"
    "CREATE INDEX tasks_ended ON tasks(ended_ms) WHERE ended_ms IS NOT NULL;"
    "CREATE TABLE task_hosts ("
    " task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
    " host_id TEXT NOT NULL,"
    " ord BIGINT NOT NULL,"
    " batch BIGINT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'running', 'ok', 'failed',"
    "  'timeout', 'lost', 'refused', 'expired', 'cancelled')),"
    " response TEXT,"
    " started_ms BIGINT,"
    " finished_ms BIGINT,"
    " seq BIGINT NOT NULL,"
    " PRIMARY KEY (task_id, host_id));"
    "CREATE INDEX task_hosts_wait ON task_hosts(host_id) WHERE state IN ('queued', 'sent');"
    "CREATE INDEX task_hosts_open ON task_hosts(task_id, batch)"
    " WHERE state IN ('queued', 'sent', 'running');"
    "CREATE INDEX task_hosts_seq ON task_hosts(task_id, seq);"
    "CREATE INDEX task_hosts_ord ON task_hosts(task_id, ord);"
    "CREATE TABLE audit ("
    " id BIGSERIAL PRIMARY KEY,"
    " at_ms BIGINT NOT NULL,"
    " actor TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " target TEXT,"
    " detail TEXT);"
    "CREATE INDEX audit_at ON audit(at_ms);",
    /* 2: the address a host enrolled from (pending caps per address), token uses (as the
     * SQLite store's version 4). */
    "ALTER TABLE hosts ADD COLUMN enroll_addr TEXT;"
    "CREATE INDEX hosts_pending_addr ON hosts(enroll_addr) WHERE state = 'pending';"
    "ALTER TABLE tokens ADD COLUMN max_uses BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE tokens ADD COLUMN uses BIGINT NOT NULL DEFAULT 0;",
    /* 3: events from agents and the API (as the SQLite store's version 5). */
    "ALTER TABLE events ADD COLUMN severity TEXT NOT NULL DEFAULT 'info';"
    "ALTER TABLE events ADD COLUMN message TEXT;"
    "ALTER TABLE events ADD COLUMN data TEXT;"
    "ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT 'hub';"
    "ALTER TABLE events ADD COLUMN dedupe TEXT;"
    "CREATE UNIQUE INDEX events_dedupe ON events(dedupe) WHERE dedupe IS NOT NULL;",
    /* 4: automation's records (as the SQLite store's version 6). */
    "CREATE TABLE records ("
    " kind TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " body TEXT NOT NULL,"
    " due_ms BIGINT NOT NULL DEFAULT 0,"
    " updated_ms BIGINT NOT NULL,"
    " rid BIGSERIAL,"
    " PRIMARY KEY (kind, id));"
    "CREATE INDEX records_due ON records(kind, due_ms) WHERE due_ms > 0;"
    "CREATE INDEX records_updated ON records(kind, updated_ms);",
    /* 5: automation's documents and the alert history (store_pg_alerts.c; SQLite's 7). */
    "CREATE TABLE auto_docs ("
    " kind TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " doc TEXT NOT NULL,"
    " updated_ms BIGINT NOT NULL,"
    " PRIMARY KEY (kind, id));"
    "CREATE TABLE alert_log ("
    " id BIGSERIAL PRIMARY KEY,"
    " at_ms BIGINT NOT NULL,"
    " rule_id TEXT NOT NULL,"
    " host_id TEXT,"
    " kind TEXT NOT NULL,"
    " detail TEXT);"
    "CREATE INDEX alert_log_at ON alert_log(at_ms);"
    "CREATE INDEX alert_log_rule ON alert_log(rule_id, id);",
    /* 6: auto_docs folded into records (SQLite's 8): automation's documents are records. */
    "INSERT INTO records(kind, id, body, due_ms, updated_ms)"
    " SELECT kind, id, doc, 0, updated_ms FROM auto_docs ORDER BY kind, id"
    " ON CONFLICT (kind, id) DO NOTHING;"
    "DROP TABLE auto_docs;",
};
#define PG_SCHEMA_VERSION ((int)(sizeof(pg_schema) / sizeof(pg_schema[0])))

#define HOST_COLS "id, hostname, state, labels, version, first_seen_ms, last_seen_ms"
#define TOKEN_COLS                                                                                 \
	"id, kind, role, labels, created_ms, expires_ms, created_by, revoked, max_uses, uses"
#define TASK_COLS                                                                                  \
	"id, target, plugin, op, args, timeout_ms, created_ms, expires_ms, created_by, "           \
	"batch_size, max_failures, released_batch, last_batch, state, "                            \
	"(SELECT coalesce(max(seq), 0) FROM task_hosts WHERE task_id = tasks.id)"
#define WAIT(p) p "state IN ('queued', 'sent')"
#define OPEN(p) p "state IN ('queued', 'sent', 'running')"
/* Rows $1 of task, moved in bulk: $2 the new seq, $3 now ($4, when used, the host). */
#define ROWS_MOVE(to) "UPDATE task_hosts SET state = '" to "', finished_ms = $3, seq = $2 "

static const char *const ps_sql[PS_COUNT] = {
    [PS_HOST_GET] = "SELECT " HOST_COLS ", pubkey, facts FROM hosts WHERE id = $1",
    [PS_HOST_LIST] = "SELECT " HOST_COLS ", attrs FROM hosts ORDER BY id",
    [PS_HOST_PAGE] = "SELECT " HOST_COLS ", attrs FROM hosts WHERE id > $1 ORDER BY id "
                     "LIMIT $2",
    [PS_HOST_AUTH] = "SELECT pubkey, state, labels FROM hosts WHERE id = $1",
    [PS_HOST_AUTH_LOCK] = "SELECT pubkey, state, labels FROM hosts WHERE id = $1 FOR UPDATE",
    [PS_HOST_KEY] = "SELECT pubkey, state, last_seen_ms FROM hosts WHERE id = $1",
    [PS_HOST_INSERT] = "INSERT INTO hosts(id, hostname, pubkey, state, labels, facts, attrs, "
                       "version, first_seen_ms, last_seen_ms, enroll_addr) "
                       "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
    [PS_HOST_REPLACE] = "UPDATE hosts SET hostname = $2, pubkey = $3, state = $4, labels = $5, "
                        "facts = $6, attrs = $7, version = $8, first_seen_ms = $9, "
                        "last_seen_ms = $9, enroll_addr = $10 WHERE id = $1 AND "
                        "state = 'pending'",
    [PS_PENDING_COUNT] = "SELECT count(*) FROM hosts WHERE state = 'pending'",
    [PS_PENDING_COUNT_ADDR] = "SELECT count(*) FROM hosts WHERE enroll_addr = $1 AND "
                              "state = 'pending'",
    [PS_TOKEN_USE] = "UPDATE tokens SET uses = uses + 1 WHERE id = $1 AND NOT revoked AND "
                     "(max_uses = 0 OR uses < max_uses)",
    /* A pending host asking again is seen: enroll.pending_keep_days counts from here. */
    [PS_HOST_TOUCH] = "UPDATE hosts SET last_seen_ms = greatest(last_seen_ms, $2) WHERE id = $1",
    [PS_HOST_SET_STATE] = "UPDATE hosts SET state = $2 WHERE id = $1",
    [PS_HOST_SET_LABELS] = "UPDATE hosts SET labels = $2 WHERE id = $1",
    [PS_HOST_DELETE] = "DELETE FROM hosts WHERE id = $1",
    [PS_HOST_SEEN] = "UPDATE hosts SET last_seen_ms = greatest(last_seen_ms, $2), "
                     "version = coalesce($3, version) WHERE id = $1 AND state IN ('up', 'down')",
    [PS_HOST_SEEN_UP] = "UPDATE hosts SET state = 'up' WHERE id = $1 AND state = 'down'",
    [PS_HOSTS_TOUCH] = "UPDATE hosts SET last_seen_ms = greatest(last_seen_ms, $2) WHERE "
                       "state = 'up' AND id IN (SELECT jsonb_array_elements_text($1::jsonb))",
    [PS_HOST_FACTS] = "UPDATE hosts SET facts = $2, attrs = $3 WHERE id = $1",
    [PS_HOST_STALE] = "SELECT id, last_seen_ms FROM hosts WHERE state = 'up' AND "
                      "last_seen_ms < $1 ORDER BY id",
    [PS_EVENT_ADD] = "INSERT INTO events(host_id, kind, detail, at_ms) VALUES($1, $2, $3, $4)",
    /* As the SQLite store's ST_EVENTS_LIST. */
    [PS_EVENTS_LIST] = "SELECT id, host_id, kind, severity, message, data, detail, at_ms, "
                       "source FROM events WHERE ($1::text IS NULL OR host_id = $1) AND "
                       "($2::jsonb IS NULL OR host_id IN "
                       "(SELECT jsonb_array_elements_text($2::jsonb))) AND "
                       "($3::text IS NULL OR kind = $3 OR left(kind, length($3) + 1) = $3 || '.') "
                       "AND ($4::bigint IS NULL OR at_ms >= $4) AND "
                       "($5::bigint IS NULL OR at_ms < $5) AND ($6::bigint IS NULL OR id < $6) "
                       "ORDER BY id DESC LIMIT $7",
    [PS_EVENT_PUT] = "INSERT INTO events(host_id, kind, severity, message, data, at_ms, source, "
                     "dedupe) VALUES($1, $2, $3, $4, $5, $6, $7, $8) "
                     "ON CONFLICT (dedupe) WHERE dedupe IS NOT NULL DO NOTHING",
    [PS_TOKEN_BY_ID] = "SELECT hash FROM tokens WHERE id = $1",
    [PS_TOKEN_ADD] = "INSERT INTO tokens(id, hash, kind, role, labels, created_ms, expires_ms, "
                     "created_by, max_uses) VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    [PS_TOKEN_FIND] = "SELECT " TOKEN_COLS " FROM tokens WHERE hash = $1 AND NOT revoked AND "
                      "(expires_ms = 0 OR expires_ms > $2) AND (max_uses = 0 OR uses < max_uses)",
    [PS_TOKEN_LIST] = "SELECT " TOKEN_COLS " FROM tokens ORDER BY created_ms DESC, rid DESC",
    [PS_TOKEN_REVOKE] = "UPDATE tokens SET revoked = true WHERE id = $1",
    [PS_TASK_ADD] = "INSERT INTO tasks(id, target, plugin, op, args, timeout_ms, created_ms, "
                    "expires_ms, created_by, batch_size, max_failures, last_batch, state) "
                    "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    /* Every row in one statement from the JSON array of ids ($3), batch = index / size. */
    [PS_TASK_ROW_ADD] = "INSERT INTO task_hosts(task_id, host_id, ord, batch, state, seq) "
                        "SELECT $1, x.v, x.n - 1, CASE WHEN $2::bigint > 0 THEN (x.n - 1) / "
                        "$2::bigint ELSE 0 END, 'queued', 1 "
                        "FROM jsonb_array_elements_text($3::jsonb) WITH ORDINALITY AS x(v, n)",
    [PS_TASK_GET] = "SELECT " TASK_COLS " FROM tasks WHERE id = $1",
    [PS_TASK_LIST] = "SELECT " TASK_COLS " FROM tasks ORDER BY created_ms DESC, rid DESC "
                     "LIMIT $1",
    [PS_TASK_COUNTS] = "SELECT state, count(*) FROM task_hosts WHERE task_id = $1 "
                       "GROUP BY state",
    [PS_TASK_ROWS] = "SELECT host_id, state, response, started_ms, finished_ms, seq, batch "
                     "FROM task_hosts WHERE task_id = $1 AND seq > $2 ORDER BY ord",
    [PS_TASK_STATE] = "SELECT state FROM tasks WHERE id = $1",
    [PS_TASK_SEQ_NEXT] = "SELECT coalesce(max(seq), 0) + 1 FROM task_hosts WHERE task_id = $1",
    [PS_TASK_OPEN] = "SELECT 1 FROM task_hosts WHERE task_id = $1 AND " OPEN("") " LIMIT 1",
    [PS_TASK_FINISH] = "UPDATE tasks SET state = CASE WHEN cancelled_ms IS NULL THEN 'done' "
                       "ELSE 'cancelled' END, ended_ms = $2 WHERE id = $1 AND state = 'running'",
    [PS_TASK_CANCEL] = "UPDATE tasks SET cancelled_ms = coalesce(cancelled_ms, $2) "
                       "WHERE id = $1",
    [PS_TAKE] = "SELECT th.task_id, t.plugin, t.op, t.args, t.timeout_ms, t.expires_ms "
                "FROM task_hosts th JOIN tasks t ON t.id = th.task_id "
                "WHERE th.host_id = $1 AND th.state = 'queued' "
                "AND th.batch <= t.released_batch AND t.state = 'running' "
                "AND t.expires_ms > $2 ORDER BY t.created_ms, t.rid LIMIT $3",
    [PS_RESUME] = "SELECT th.task_id, t.plugin, t.op, t.args, t.timeout_ms, t.expires_ms "
                  "FROM task_hosts th JOIN tasks t ON t.id = th.task_id "
                  "WHERE th.host_id = $1 AND th.state IN ('sent', 'running') "
                  "AND t.state = 'running' AND $2::bigint IS NOT NULL "
                  "ORDER BY t.created_ms, t.rid LIMIT $3",
    [PS_TAKE_MARK] = "UPDATE task_hosts SET state = 'sent', seq = $3 "
                     "WHERE task_id = $1 AND host_id = $2 AND state = 'queued'",
    [PS_ROW_STATE] = "SELECT state FROM task_hosts WHERE task_id = $1 AND host_id = $2",
    [PS_ROW_REPORT] = "UPDATE task_hosts SET state = $3, response = $4, "
                      "started_ms = coalesce($5, started_ms), finished_ms = $6, seq = $7 "
                      "WHERE task_id = $1 AND host_id = $2",
    [PS_ROWS_CANCEL] = ROWS_MOVE("cancelled") "WHERE task_id = $1 AND " WAIT(""),
    [PS_ROWS_CANCEL_QUEUED] = ROWS_MOVE("cancelled") "WHERE task_id = $1 AND state = 'queued'",
    [PS_ROWS_EXPIRE] = ROWS_MOVE("expired") "WHERE task_id = $1 AND " WAIT(""),
    [PS_ROWS_LOSE] = ROWS_MOVE("lost") "WHERE task_id = $1 AND state = 'running'",
    [PS_ROW_CANCEL_HOST] =
        ROWS_MOVE("cancelled") "WHERE task_id = $1 AND host_id = $4 AND " WAIT(""),
    [PS_HOST_OPEN_TASKS] =
        "SELECT task_id FROM task_hosts WHERE host_id = $1 AND " WAIT("") " ORDER BY task_id",
    [PS_EXPIRE_TASKS] = "SELECT id, expires_ms, timeout_ms FROM tasks "
                        "WHERE state = 'running' AND expires_ms <= $1 ORDER BY expires_ms, id",
    [PS_ADVANCE_TASKS] = "SELECT id, max_failures, released_batch, last_batch FROM tasks "
                         "WHERE state = 'running' AND released_batch < last_batch",
    [PS_BATCH_OPEN] =
        "SELECT 1 FROM task_hosts WHERE task_id = $1 AND " OPEN("") " AND batch <= $2 LIMIT 1",
    [PS_TASK_FAILURES] = "SELECT count(*) FROM task_hosts WHERE task_id = $1 AND "
                         "state IN ('failed', 'timeout', 'lost', 'refused')",
    [PS_TASK_RELEASE] = "UPDATE tasks SET released_batch = $2 WHERE id = $1",
    [PS_BATCH_HOSTS] = "SELECT host_id FROM task_hosts WHERE task_id = $1 AND batch = $2 AND "
                       "state = 'queued' ORDER BY ord",
    [PS_WAITING_TASK] = "SELECT th.host_id FROM task_hosts th JOIN tasks t ON t.id = "
                        "th.task_id WHERE th.task_id = $1 AND th.state = 'queued' "
                        "AND th.batch <= t.released_batch AND t.state = 'running' "
                        "ORDER BY th.ord",
    [PS_WAITING_ALL] = "SELECT DISTINCT th.host_id FROM tasks t JOIN task_hosts th ON "
                       "th.task_id = t.id AND th.state = 'queued' AND "
                       "th.batch <= t.released_batch WHERE t.state = 'running' "
                       "ORDER BY th.host_id",
    [PS_AUDIT_ADD] = "INSERT INTO audit(at_ms, actor, action, target, detail) "
                     "VALUES($1, $2, $3, $4, $5)",
    [PS_AUDIT_LIST] = "SELECT id, at_ms, actor, action, target, detail FROM audit "
                      "ORDER BY id DESC LIMIT $1",
    [PS_STATS_HOSTS] = "SELECT state, count(*) FROM hosts GROUP BY state",
    [PS_STATS_TASKS] = "SELECT count(*) FROM tasks WHERE state = 'running'",
    [PS_STATS_QUEUE] = "SELECT count(*) FROM tasks t JOIN task_hosts th ON th.task_id = t.id "
                       "AND th.state = 'queued' AND th.batch <= t.released_batch "
                       "WHERE t.state = 'running'",
    [PS_PRUNE_EVENTS] = "DELETE FROM events WHERE id IN "
                        "(SELECT id FROM events WHERE at_ms < $1 ORDER BY at_ms LIMIT $2)",
    [PS_PRUNE_AUDIT] = "DELETE FROM audit WHERE id IN "
                       "(SELECT id FROM audit WHERE at_ms < $1 ORDER BY at_ms LIMIT $2)",
    [PS_PRUNE_PENDING] = "DELETE FROM hosts WHERE id IN (SELECT id FROM hosts WHERE "
                         "state = 'pending' AND last_seen_ms < $1 ORDER BY last_seen_ms "
                         "LIMIT $2)",
    [PS_PRUNE_TASK_OLDEST] = "SELECT id FROM tasks WHERE ended_ms < $1 AND state != 'running' "
                             "ORDER BY ended_ms LIMIT 1",
    [PS_PRUNE_TASK_COPIES] = "DELETE FROM task_hosts WHERE (task_id, host_id) IN "
                             "(SELECT task_id, host_id FROM task_hosts WHERE task_id = $1 "
                             "LIMIT $2)",
    [PS_PRUNE_TASK_DELETE] = "DELETE FROM tasks WHERE id = $1 AND state != 'running'",
    [PS_REC_ADD] = "INSERT INTO records(kind, id, body, due_ms, updated_ms) "
                   "VALUES($1, $2, $3, $4, $5)",
    [PS_REC_PUT] = "INSERT INTO records(kind, id, body, due_ms, updated_ms) "
                   "VALUES($1, $2, $3, $4, $5) ON CONFLICT (kind, id) DO UPDATE SET "
                   "body = excluded.body, due_ms = excluded.due_ms, "
                   "updated_ms = excluded.updated_ms",
    [PS_REC_GET] = "SELECT body FROM records WHERE kind = $1 AND id = $2",
    [PS_REC_LIST] = "SELECT body FROM records WHERE kind = $1 "
                    "ORDER BY updated_ms DESC, rid DESC LIMIT $2",
    [PS_REC_DUE] = "SELECT body FROM records WHERE kind = $1 AND due_ms > 0 AND "
                   "due_ms <= $2 ORDER BY due_ms, rid LIMIT $3",
    [PS_REC_DEL] = "DELETE FROM records WHERE kind = $1 AND id = $2",
    [PS_REC_PRUNE] = "DELETE FROM records WHERE rid IN (SELECT rid FROM records WHERE "
                     "kind = $1 AND due_ms = 0 AND updated_ms < $2 ORDER BY updated_ms LIMIT $3)",
};

/* Statement i's SQL, wherever its table is. */
static const char *pg_sql_of(enum pst i)
{
	return ps_sql[i] ? ps_sql[i] : pg_alerts_sql[i];
}

static const char *const host_states[] = {HOST_UP, HOST_DOWN, HOST_PENDING, HOST_REVOKED,
                                          HOST_REJECTED};
#define HOST_NSTATES ((int)(sizeof(host_states) / sizeof(host_states[0])))

/* ---- Connection, statements, errors ---- */

/* An error result's OUTPOST_E_* code. */
static int pg_err(struct pg *p, const PGresult *r)
{
	const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(p->conn) != CONNECTION_OK) {
		p->ready = 0;
		return OUTPOST_E_UNAVAILABLE;
	}
	if (!code)
		return OUTPOST_E_INTERNAL;
	if (strcmp(code, "23505") == 0) /* unique_violation */
		return OUTPOST_E_CONFLICT;
	/* connection exceptions, shutdown, too many connections: the server is not there */
	if (strncmp(code, "08", 2) == 0 || strncmp(code, "57P", 3) == 0 ||
	    strcmp(code, "53300") == 0) {
		p->ready = 0;
		return OUTPOST_E_UNAVAILABLE;
	}
	if (strcmp(code, "40001") == 0 || strcmp(code, "40P01") == 0) /* retry later */
		return OUTPOST_E_BUSY;
	return OUTPOST_E_INTERNAL;
}

/* One statement by the simple protocol (schema, transactions): 0 or OUTPOST_E_*. */
static int pg_exec(struct pg *p, const char *sql, char *msg, size_t msglen)
{
	PGresult *r = PQexec(p->conn, sql);
	ExecStatusType st = PQresultStatus(r);
	int rc = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		rc = pg_err(p, r);
		if (msglen)
			snprintf(msg, msglen, "postgresql: %s", PQerrorMessage(p->conn));
	}
	PQclear(r);
	return rc;
}

/* The schema up to PG_SCHEMA_VERSION, one step per transaction, under the write lock (hubs
 * that start together migrate once). A newer schema than this build knows is refused. */
static int pg_migrate(struct pg *p, char *msg, size_t msglen)
{
	PGresult *r;
	int rc, have;
	char sql[128];

	if ((rc = pg_exec(p,
	                  "CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, "
	                  "version INTEGER NOT NULL)",
	                  msg, msglen)) < 0)
		return rc;
	for (;;) {
		if ((rc = pg_exec(p, "BEGIN; SELECT pg_advisory_xact_lock(" PG_WRITE_LOCK ")", msg,
		                  msglen)) < 0)
			return rc;
		r = PQexec(p->conn, "SELECT version FROM schema_version WHERE component = 'hub'");
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			snprintf(msg, msglen, "postgresql: %s", PQerrorMessage(p->conn));
			rc = pg_err(p, r);
			PQclear(r);
			goto fail;
		}
		have = PQntuples(r) ? (int)pg_int(r, 0, 0) : 0;
		PQclear(r);
		if (have > PG_SCHEMA_VERSION) {
			snprintf(
			    msg, msglen,
			    "postgresql: the hub schema is version %d, newer than this hub knows "
			    "(%d): run a newer outpost-hub",
			    have, PG_SCHEMA_VERSION);
			rc = OUTPOST_E_CONFLICT;
			goto fail;
		}
		if (have == PG_SCHEMA_VERSION)
			return pg_exec(p, "COMMIT", msg, msglen);
		if ((rc = pg_exec(p, pg_schema[have], msg, msglen)) < 0)
			goto fail;
		snprintf(sql, sizeof(sql),
		         "INSERT INTO schema_version VALUES ('hub', %d) ON CONFLICT (component) "
		         "DO UPDATE SET version = excluded.version",
		         have + 1);
		if ((rc = pg_exec(p, sql, msg, msglen)) < 0 ||
		    (rc = pg_exec(p, "COMMIT", msg, msglen)) < 0)
			goto fail;
	}
fail:
	pg_exec(p, "ROLLBACK", NULL, 0);
	return rc;
}

/* libpq prints the server's notices on stderr by default; the store's callers report what
 * matters through return codes (a shutdown notice is followed by UNAVAILABLE). */
static void pg_notice(void *arg, const char *message)
{
	(void)arg, (void)message;
}

/* Connected, migrated and prepared; reconnects after a loss. */
static int pg_connect(struct pg *p, char *msg, size_t msglen)
{
	char name[16];
	int rc;

	if (p->ready && PQstatus(p->conn) == CONNECTION_OK)
		return 0;
	p->ready = 0;
	if (p->conn)
		PQfinish(p->conn);
	{
		/* The store is called on the hub's loop: a server that does not answer must not
		 * hold it for the kernel's TCP timeout. The DSN's own connect_timeout wins. */
		const char *const keys[] = {"connect_timeout", "dbname", NULL};
		const char *const vals[] = {"5", p->dsn, NULL};
		p->conn = PQconnectdbParams(keys, vals, 1);
	}
	if (!p->conn || PQstatus(p->conn) != CONNECTION_OK) {
		snprintf(msg, msglen, "postgresql: cannot connect: %s",
		         p->conn ? PQerrorMessage(p->conn) : "out of memory");
		return OUTPOST_E_UNAVAILABLE;
	}
	PQsetNoticeProcessor(p->conn, pg_notice, NULL);
	/* Quiet notices (CREATE ... IF NOT EXISTS) and a bound on a statement stuck on a lock. */
	if ((rc = pg_exec(p, "SET client_min_messages = warning; SET statement_timeout = '60s'",
	                  msg, msglen)) < 0 ||
	    (rc = pg_migrate(p, msg, msglen)) < 0)
		return rc;
	for (int i = 0; i < PS_COUNT; i++) {
		PGresult *r;
		snprintf(name, sizeof(name), "s%d", i);
		r = PQprepare(p->conn, name, pg_sql_of((enum pst)i), 0, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			snprintf(msg, msglen, "postgresql: preparing statement %d: %s", i,
			         PQerrorMessage(p->conn));
			rc = pg_err(p, r);
			PQclear(r);
			return rc;
		}
		PQclear(r);
	}
	p->ready = 1;
	return 0;
}

int pg_run(struct pg *p, enum pst i, PGresult **res, const char *fmt, ...)
{
	char num[16][24], name[16], msg[256];
	const char *vals[16];
	int n = 0, rc, sub;
	ExecStatusType st;
	PGresult *r;
	va_list ap;

	if (res)
		*res = NULL;
	if (!p->in_tx && (rc = pg_connect(p, msg, sizeof(msg))) < 0)
		return rc;
	if (!p->ready)
		return OUTPOST_E_UNAVAILABLE;
	/* In a batch, a write outside a call's own transaction gets a savepoint: an error (an
	 * expected conflict) must not abort the batch's whole transaction. */
	sub = p->batch && !p->sub && strncmp(pg_sql_of(i), "SELECT", 6) != 0;
	if (sub && (rc = pg_exec(p, "SAVEPOINT call", NULL, 0)) < 0)
		return rc;
	va_start(ap, fmt);
	for (; fmt[n] && n < 16; n++) {
		int64_t v;
		switch (fmt[n]) {
		case 's':
			vals[n] = va_arg(ap, const char *);
			continue;
		case 'i':
			v = va_arg(ap, int);
			break;
		case 'M':
			v = va_arg(ap, int64_t);
			if (v <= 0) {
				vals[n] = NULL;
				continue;
			}
			break;
		default:
			v = va_arg(ap, int64_t);
			break;
		}
		snprintf(num[n], sizeof(num[n]), "%lld", (long long)v);
		vals[n] = num[n];
	}
	va_end(ap);
	snprintf(name, sizeof(name), "s%d", (int)i);
	r = PQexecPrepared(p->conn, name, n, vals, NULL, NULL, 0);
	st = PQresultStatus(r);
	if (st == PGRES_TUPLES_OK) {
		rc = PQntuples(r);
	} else if (st == PGRES_COMMAND_OK) {
		rc = atoi(PQcmdTuples(r));
	} else {
		rc = pg_err(p, r);
		PQclear(r);
		if (sub && p->ready)
			pg_exec(p, "ROLLBACK TO SAVEPOINT call; RELEASE SAVEPOINT call", NULL, 0);
		return rc;
	}
	if (sub && (sub = pg_exec(p, "RELEASE SAVEPOINT call", NULL, 0)) < 0) {
		PQclear(r);
		return sub;
	}
	if (res)
		*res = r;
	else
		PQclear(r);
	return rc;
}

int pg_tx_begin(struct pg *p)
{
	char msg[256];
	int rc;

	if (p->batch) { /* a savepoint of the batch's transaction, which holds the lock */
		if ((rc = pg_exec(p, "SAVEPOINT call", NULL, 0)) < 0)
			return rc;
		p->sub = 1;
		return 0;
	}
	if ((rc = pg_connect(p, msg, sizeof(msg))) < 0)
		return rc;
	if ((rc = pg_exec(p, "BEGIN; SELECT pg_advisory_xact_lock(" PG_WRITE_LOCK ")", NULL, 0)) <
	    0) {
		pg_exec(p, "ROLLBACK", NULL, 0);
		return rc;
	}
	p->in_tx = 1;
	return 0;
}

void pg_tx_rollback(struct pg *p)
{
	if (p->batch) {
		if (p->sub && PQstatus(p->conn) == CONNECTION_OK)
			pg_exec(p, "ROLLBACK TO SAVEPOINT call; RELEASE SAVEPOINT call", NULL, 0);
		p->sub = 0;
		return;
	}
	if (p->in_tx && PQstatus(p->conn) == CONNECTION_OK)
		pg_exec(p, "ROLLBACK", NULL, 0);
	p->in_tx = 0;
}

int pg_tx_commit(struct pg *p)
{
	int rc = pg_exec(p, p->batch ? "RELEASE SAVEPOINT call" : "COMMIT", NULL, 0);

	if (rc < 0)
		pg_tx_rollback(p);
	if (p->batch)
		p->sub = 0;
	else
		p->in_tx = 0;
	return rc;
}

/* A batch (store.h): one transaction under the write lock; the calls inside are savepoints. */
static int pg_batch_begin(struct store *base)
{
	struct pg *p = pg_of(base);
	int rc;

	if (p->batch)
		return OUTPOST_E_CONFLICT;
	if ((rc = pg_tx_begin(p)) < 0)
		return rc;
	p->batch = 1;
	return 0;
}

static int pg_batch_end(struct store *base)
{
	struct pg *p = pg_of(base);

	if (!p->batch)
		return 0;
	p->batch = 0;
	p->sub = 0;
	return pg_tx_commit(p);
}

int pg_push_col(json_t *arr, const PGresult *r)
{
	for (int i = 0; i < PQntuples(r); i++)
		if (!pg_str(r, i, 0) || json_array_append_new(arr, json_string(pg_str(r, i, 0))))
			return OUTPOST_E_INTERNAL;
	return 0;
}

/* ---- Hosts ---- */

int pg_event_add(struct pg *p, const char *host_id, const char *kind, const char *detail,
                 int64_t now_ms)
{
	int rc = pg_run(p, PS_EVENT_ADD, NULL, "sssI", host_id, kind, detail ? detail : "", now_ms);

	return rc < 0 ? rc : 0;
}

/* The host of row i of PS_HOST_GET or PS_HOST_LIST (columns HOST_COLS). */
static json_t *host_json(const PGresult *r, int i)
{
	return json_pack("{s:s, s:s?, s:s, s:o, s:s?, s:I, s:I}", "id", pg_str(r, i, 0), "hostname",
	                 pg_str(r, i, 1), "state", pg_str(r, i, 2), "labels", pg_json(r, i, 3),
	                 "version", pg_str(r, i, 4), "first_seen_ms", pg_int(r, i, 5),
	                 "last_seen_ms", pg_int(r, i, 6));
}

static int host_fetch(struct pg *p, const char *id, int full, json_t **out)
{
	PGresult *r;
	json_t *h = NULL;
	int rc;

	*out = NULL;
	rc = pg_run(p, PS_HOST_GET, &r, "s", id);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		PQclear(r);
		return OUTPOST_E_NOT_FOUND;
	}
	h = host_json(r, 0);
	if (h && full &&
	    (json_object_set_new(h, "pubkey", json_string(pg_str(r, 0, 7))) ||
	     json_object_set_new(h, "facts", pg_json(r, 0, 8)))) {
		json_decref(h);
		h = NULL;
	}
	PQclear(r);
	*out = h;
	return h ? 0 : OUTPOST_E_INTERNAL;
}

/* The row of PS_HOST_AUTH_LOCK (pubkey, state, labels), locked: *r is NULL when absent. */
static int host_auth(struct pg *p, const char *id, PGresult **r)
{
	int rc = pg_run(p, PS_HOST_AUTH_LOCK, r, "s", id);

	if (rc == 0) {
		PQclear(*r);
		*r = NULL;
	}
	return rc < 0 ? rc : 0;
}

/* Why a beat or a change is refused for a host that is not up or down. */
static int host_absent(struct pg *p, const char *id)
{
	PGresult *r;
	int rc = host_auth(p, id, &r);

	if (rc < 0)
		return rc;
	if (!r)
		return OUTPOST_E_NOT_FOUND;
	rc = strcmp(pg_str(r, 0, 1), HOST_PENDING) == 0 ? OUTPOST_E_UNAVAILABLE
	                                                : OUTPOST_E_FORBIDDEN;
	PQclear(r);
	return rc;
}

/* A host that leaves will take nothing more: its queued and sent rows are cancelled. */
static int host_cancel_rows(struct pg *p, const char *host_id, int64_t now_ms)
{
	PGresult *r;
	int rc, moved;

	if ((rc = pg_run(p, PS_HOST_OPEN_TASKS, &r, "s", host_id)) < 0)
		return rc;
	for (int i = 0; rc >= 0 && i < PQntuples(r); i++) {
		rc = pg_rows_move(p, PS_ROW_CANCEL_HOST, pg_str(r, i, 0), host_id, now_ms, &moved);
		if (rc == 0)
			rc = pg_task_settle(p, pg_str(r, i, 0), now_ms, NULL);
	}
	PQclear(r);
	return rc < 0 ? rc : 0;
}

/* Counts one use of the enrollment token that accepts this host, in the enrollment's
 * transaction: two hosts racing for the last use cannot both have it. */
static int enroll_use_token(struct pg *p, const struct store_enroll *e)
{
	int rc;

	if (!e->token_id)
		return 0;
	if ((rc = pg_run(p, PS_TOKEN_USE, NULL, "s", e->token_id)) < 0)
		return rc;
	return rc > 0 ? 0 : OUTPOST_E_UNAUTHORIZED;
}

/* A single count(*), with the parameters of fmt (one string at most). */
static int count_of(struct pg *p, enum pst which, const char *arg, json_int_t *n)
{
	PGresult *r;
	int rc = arg ? pg_run(p, which, &r, "s", arg) : pg_run(p, which, &r, "");

	*n = 0;
	if (rc < 0)
		return rc;
	*n = pg_int(r, 0, 0);
	PQclear(r);
	return 0;
}

/* Room for one more pending host, overall and from e->addr; BUSY when there is none. */
static int enroll_pending_room(struct pg *p, const struct store_enroll *e)
{
	json_int_t n;
	int rc;

	if (e->pending_max > 0) {
		if ((rc = count_of(p, PS_PENDING_COUNT, NULL, &n)) < 0)
			return rc;
		if (n >= e->pending_max) {
			if (e->refused)
				*e->refused = ENROLL_CAP_TOTAL;
			return OUTPOST_E_BUSY;
		}
	}
	if (e->pending_per_addr > 0 && e->addr) {
		if ((rc = count_of(p, PS_PENDING_COUNT_ADDR, e->addr, &n)) < 0)
			return rc;
		if (n >= e->pending_per_addr) {
			if (e->refused)
				*e->refused = ENROLL_CAP_ADDR;
			return OUTPOST_E_BUSY;
		}
	}
	return 0;
}

/* Writes the whole host row from e (PS_HOST_INSERT or PS_HOST_REPLACE, same parameters). */
static int enroll_write(struct pg *p, const struct store_enroll *e, enum pst which)
{
	char *labels = pg_text(e->labels, JSON_SORT_KEYS, 1), *facts = pg_text(e->facts, 0, 1);
	char *attrs = store_attrs_text(e->facts);
	int rc = OUTPOST_E_INTERNAL;

	if (labels && facts && attrs)
		rc = pg_run(p, which, NULL, "ssssssssIs", e->host_id, e->hostname, e->pubkey,
		            e->accept ? HOST_UP : HOST_PENDING, labels, facts, attrs, e->version,
		            e->now_ms, e->addr);
	free(labels);
	free(facts);
	free(attrs);
	return rc < 0 ? rc : 0;
}

static int pg_host_enroll(struct store *base, const struct store_enroll *e, json_t **host)
{
	struct pg *p = pg_of(base);
	char *labels = NULL;
	json_t *lab = NULL;
	PGresult *r = NULL;
	int rc, replace = 0, touch = 0;

	*host = NULL;
	if (!e || !pg_nonempty(e->host_id) || !pg_nonempty(e->pubkey) ||
	    (e->facts && !json_is_object(e->facts)) || !pg_labels_ok(e->labels))
		return OUTPOST_E_BAD_ARGS;
	if ((rc = pg_tx_begin(p)) < 0)
		return rc;
	if ((rc = host_auth(p, e->host_id, &r)) < 0)
		goto fail;
	if (r) {
		const char *state = pg_str(r, 0, 1);
		int pending = strcmp(state, HOST_PENDING) == 0;
		if (strcmp(state, HOST_REVOKED) == 0 || strcmp(state, HOST_REJECTED) == 0)
			rc = OUTPOST_E_FORBIDDEN;
		/* Another key: a valid token wins over a pending squatter; nothing else does. */
		else if (strcmp(pg_str(r, 0, 0), e->pubkey) != 0)
			rc = e->accept && pending ? (replace = 1) : OUTPOST_E_CONFLICT;
		else if (e->accept && pending)
			lab = pg_json(r, 0, 2); /* a pending host comes back with a valid token */
		else if (pending)
			touch = 1; /* still waiting, still asking */
		if (rc < 0)
			goto fail;
		rc = 0;
		if (replace) {
			if ((rc = enroll_write(p, e, PS_HOST_REPLACE)) < 0 ||
			    (rc = pg_event_add(
			         p, e->host_id, "replaced",
			         "a pending host's key replaced by an enrollment token",
			         e->now_ms)) < 0 ||
			    (rc = enroll_use_token(p, e)) < 0)
				goto fail;
		} else if (touch) {
			if ((rc = pg_run(p, PS_HOST_TOUCH, NULL, "sI", e->host_id, e->now_ms)) < 0)
				goto fail;
		} else if (lab) {
			/* Labels an operator set while it waited win over the token's. */
			rc = OUTPOST_E_INTERNAL;
			if (e->labels && json_object_update_missing(lab, e->labels))
				goto fail;
			if (!(labels = pg_text(lab, JSON_SORT_KEYS, 0)))
				goto fail;
			if ((rc = pg_run(p, PS_HOST_SET_LABELS, NULL, "ss", e->host_id, labels)) <
			        0 ||
			    (rc = pg_run(p, PS_HOST_SET_STATE, NULL, "ss", e->host_id, HOST_UP)) <
			        0 ||
			    (rc = pg_event_add(p, e->host_id, "accepted", "enrollment token",
			                       e->now_ms)) < 0 ||
			    (rc = enroll_use_token(p, e)) < 0)
				goto fail;
		}
	} else if ((!e->accept && (rc = enroll_pending_room(p, e)) < 0) ||
	           (rc = enroll_write(p, e, PS_HOST_INSERT)) < 0 ||
	           (rc = pg_event_add(p, e->host_id, "enrolled",
	                              e->accept ? "accepted by enrollment token"
	                                        : "pending acceptance",
	                              e->now_ms)) < 0 ||
	           (e->accept && (rc = enroll_use_token(p, e)) < 0)) {
		goto fail;
	}
	if ((rc = pg_tx_commit(p)) < 0)
		goto out;
	if (e->replaced)
		*e->replaced = replace;
	rc = host_fetch(p, e->host_id, 0, host);
	goto out;
fail:
	pg_tx_rollback(p);
out:
	PQclear(r);
	json_decref(lab);
	free(labels);
	return rc;
}

static int pg_host_get(struct store *base, const char *id, json_t **host)
{
	return host_fetch(pg_of(base), id, 1, host);
}

static int pg_host_key(struct store *base, const char *id, struct store_host_key *out)
{
	PGresult *r;
	const char *pk, *state;
	int rc = pg_run(pg_of(base), PS_HOST_KEY, &r, "s", id);

	if (rc <= 0) {
		PQclear(r);
		return rc < 0 ? rc : OUTPOST_E_NOT_FOUND;
	}
	pk = pg_str(r, 0, 0);
	state = pg_str(r, 0, 1);
	rc = pk && state && strlen(pk) < sizeof(out->pubkey) && strlen(state) < sizeof(out->state)
	         ? 0
	         : OUTPOST_E_INTERNAL;
	if (rc == 0) {
		memcpy(out->pubkey, pk, strlen(pk) + 1);
		memcpy(out->state, state, strlen(state) + 1);
		out->last_seen_ms = pg_int(r, 0, 2);
	}
	PQclear(r);
	return rc;
}

/* The hosts of r's rows (PS_HOST_LIST, PS_HOST_PAGE) with their attrs; rc: pg_run's. */
static int host_rows(PGresult *r, int rc, json_t **hosts)
{
	json_t *arr;

	*hosts = NULL;
	if (rc < 0)
		return rc;
	if (!(arr = json_array())) {
		PQclear(r);
		return OUTPOST_E_INTERNAL;
	}
	rc = 0;
	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		json_t *h = host_json(r, i);
		/* set_new and append_new take their value even when they fail. */
		if (!h || json_object_set_new(h, "attrs",
		                              store_host_attrs(pg_json(r, i, 7), pg_str(r, i, 1),
		                                               pg_str(r, i, 4),
		                                               json_object_get(h, "labels")))) {
			json_decref(h);
			rc = OUTPOST_E_INTERNAL;
		} else if (json_array_append_new(arr, h)) {
			rc = OUTPOST_E_INTERNAL;
		}
	}
	PQclear(r);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*hosts = arr;
	return 0;
}

static int pg_host_list(struct store *base, json_t **hosts)
{
	PGresult *r;
	int rc = pg_run(pg_of(base), PS_HOST_LIST, &r, "");

	return host_rows(r, rc, hosts);
}

static int pg_host_page(struct store *base, const char *after_id, int limit, json_t **hosts)
{
	PGresult *r;
	int rc = pg_run(pg_of(base), PS_HOST_PAGE, &r, "si", after_id, limit);

	return host_rows(r, rc, hosts);
}

static int pg_host_set_state(struct store *base, const char *id, const char *state,
                             const char *reason, int64_t now_ms)
{
	struct pg *p = pg_of(base);
	const char *kind = NULL;
	PGresult *r;
	int rc, same = 0;

	if (!id || pg_str_index(state, host_states, HOST_NSTATES) < 0)
		return OUTPOST_E_BAD_ARGS;
	if ((rc = pg_tx_begin(p)) < 0)
		return rc;
	if ((rc = host_auth(p, id, &r)) < 0)
		goto fail;
	if (!r) {
		rc = OUTPOST_E_NOT_FOUND;
		goto fail;
	}
	same = strcmp(pg_str(r, 0, 1), state) == 0;
	kind = same ? NULL : store_host_transition(pg_str(r, 0, 1), state);
	PQclear(r);
	if (!same && !kind) {
		rc = OUTPOST_E_CONFLICT;
		goto fail;
	}
	if (!same) {
		if ((rc = pg_run(p, PS_HOST_SET_STATE, NULL, "ss", id, state)) < 0 ||
		    (rc = pg_event_add(p, id, kind, reason, now_ms)) < 0)
			goto fail;
		if ((strcmp(state, HOST_REVOKED) == 0 || strcmp(state, HOST_REJECTED) == 0) &&
		    (rc = host_cancel_rows(p, id, now_ms)) < 0)
			goto fail;
	}
	return pg_tx_commit(p);
fail:
	pg_tx_rollback(p);
	return rc;
}

static int pg_host_remove(struct store *base, const char *id)
{
	struct pg *p = pg_of(base);
	int64_t now_ms;
	int rc;

	if (!id)
		return OUTPOST_E_BAD_ARGS;
	now_ms = clk_real_ms();
	if ((rc = pg_tx_begin(p)) < 0)
		return rc;
	if ((rc = pg_run(p, PS_HOST_DELETE, NULL, "s", id)) <= 0) {
		rc = rc < 0 ? rc : OUTPOST_E_NOT_FOUND;
		goto fail;
	}
	if ((rc = host_cancel_rows(p, id, now_ms)) < 0 ||
	    (rc = pg_event_add(p, id, "removed", "", now_ms)) < 0)
		goto fail;
	return pg_tx_commit(p);
fail:
	pg_tx_rollback(p);
	return rc;
}

static int pg_host_labels(struct store *base, const char *id, json_t *set, json_t *remove)
{
	struct pg *p = pg_of(base);
	json_t *lab = NULL, *v;
	PGresult *r;
	const char *k;
	char *text = NULL;
	size_t i;
	int rc;

	if (!id || !pg_labels_ok(set) || (remove && !json_is_array(remove)))
		return OUTPOST_E_BAD_ARGS;
	json_object_foreach(set, k, v)
	{
		if (store_attr_reserved(k))
			return OUTPOST_E_BAD_ARGS;
	}
	json_array_foreach(remove, i, v)
	{
		if (!json_is_string(v))
			return OUTPOST_E_BAD_ARGS;
	}
	if ((rc = pg_tx_begin(p)) < 0)
		return rc;
	if ((rc = host_auth(p, id, &r)) < 0)
		goto fail;
	if (!r) {
		rc = OUTPOST_E_NOT_FOUND;
		goto fail;
	}
	lab = pg_json(r, 0, 2);
	PQclear(r);
	rc = OUTPOST_E_INTERNAL;
	if (!json_is_object(lab) || (set && json_object_update(lab, set)))
		goto fail;
	json_array_foreach(remove, i, v)
	{
		json_object_del(lab, json_string_value(v));
	}
	if (!(text = pg_text(lab, JSON_SORT_KEYS, 0)))
		goto fail;
	if ((rc = pg_run(p, PS_HOST_SET_LABELS, NULL, "ss", id, text)) < 0)
		goto fail;
	rc = pg_tx_commit(p);
	goto out;
fail:
	pg_tx_rollback(p);
out:
	json_decref(lab);
	free(text);
	return rc;
}

static int pg_host_seen(struct store *base, const char *id, int64_t now_ms, const char *version,
                        json_t *facts, int *was_down)
{
	struct pg *p = pg_of(base);
	char *ftext = NULL, *atext = NULL;
	int rc, down = 0;

	if (was_down)
		*was_down = 0;
	if (!id || (facts && !json_is_object(facts)))
		return OUTPOST_E_BAD_ARGS;
	if (facts && (!(ftext = pg_text(facts, 0, 0)) || !(atext = store_attrs_text(facts)))) {
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	if ((rc = pg_tx_begin(p)) < 0)
		goto out;
	if ((rc = pg_run(p, PS_HOST_SEEN, NULL, "sIs", id, now_ms, version)) < 0)
		goto fail;
	if (rc == 0) {
		rc = host_absent(p, id);
		goto fail;
	}
	if ((rc = pg_run(p, PS_HOST_SEEN_UP, NULL, "s", id)) < 0)
		goto fail;
	down = rc > 0;
	if (down && (rc = pg_event_add(p, id, "up", "beat", now_ms)) < 0)
		goto fail;
	if (ftext && (rc = pg_run(p, PS_HOST_FACTS, NULL, "sss", id, ftext, atext)) < 0)
		goto fail;
	if ((rc = pg_tx_commit(p)) == 0 && was_down)
		*was_down = down;
	goto out;
fail:
	pg_tx_rollback(p);
out:
	free(ftext);
	free(atext);
	return rc;
}

static int pg_hosts_touch(struct store *base, json_t *ids, int64_t now_ms, int *n)
{
	struct pg *p = pg_of(base);
	char *text;
	int rc;

	if (n)
		*n = 0;
	if (!json_is_array(ids))
		return OUTPOST_E_BAD_ARGS;
	if (!json_array_size(ids))
		return 0;
	if (!(text = json_dumps(ids, JSON_COMPACT)))
		return OUTPOST_E_INTERNAL;
	rc = pg_run(p, PS_HOSTS_TOUCH, NULL, "sI", text, now_ms);
	free(text);
	if (rc >= 0 && n)
		*n = rc;
	return rc < 0 ? rc : 0;
}

static int pg_hosts_mark_down(struct store *base, int64_t before_ms, int64_t now_ms,
                              int (*keep)(void *arg, const char *id), void *keep_arg, json_t **ids)
{
	struct pg *p = pg_of(base);
	json_t *arr = json_array();
	PGresult *r = NULL;
	int rc;

	*ids = NULL;
	if (!arr)
		return OUTPOST_E_INTERNAL;
	if ((rc = pg_tx_begin(p)) < 0)
		goto out;
	if ((rc = pg_run(p, PS_HOST_STALE, &r, "I", before_ms)) < 0)
		goto fail;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *id = pg_str(r, i, 0);
		char detail[64];
		if (keep && keep(keep_arg, id))
			continue;
		snprintf(detail, sizeof(detail), "no beat for %lld ms",
		         (long long)(now_ms - pg_int(r, i, 1)));
		if (json_array_append_new(arr, json_string(id))) {
			rc = OUTPOST_E_INTERNAL;
			goto fail;
		}
		if ((rc = pg_run(p, PS_HOST_SET_STATE, NULL, "ss", id, HOST_DOWN)) < 0 ||
		    (rc = pg_event_add(p, id, "down", detail, now_ms)) < 0)
			goto fail;
	}
	if ((rc = pg_tx_commit(p)) < 0)
		goto out;
	*ids = arr;
	arr = NULL;
	goto out;
fail:
	pg_tx_rollback(p);
out:
	PQclear(r);
	json_decref(arr);
	return rc < 0 ? rc : 0;
}

static int pg_events_list(struct store *base, const struct store_events_query *q, json_t **events)
{
	PGresult *r;
	char *ids = NULL;
	json_t *arr;
	int rc;

	*events = NULL;
	if (q->limit < 1)
		return OUTPOST_E_BAD_ARGS;
	if (q->host_ids && !(ids = pg_text(q->host_ids, 0, 0)))
		return OUTPOST_E_INTERNAL;
	rc = pg_run(pg_of(base), PS_EVENTS_LIST, &r, "sssMMMi", q->host_id, ids, q->kind,
	            q->since_ms, q->until_ms, q->before_id, q->limit);
	free(ids);
	if (rc < 0)
		return rc;
	if (!(arr = json_array()))
		rc = OUTPOST_E_INTERNAL;
	for (int i = 0; arr && rc >= 0 && i < PQntuples(r); i++) {
		json_t *ev = json_pack(
		    "{s:I, s:s, s:s, s:s, s:s?, s:o, s:s, s:I, s:s}", "id", pg_int(r, i, 0),
		    "host_id", pg_str(r, i, 1), "kind", pg_str(r, i, 2), "severity",
		    pg_str(r, i, 3), "message", pg_str(r, i, 4), "data", pg_json(r, i, 5), "detail",
		    pg_str(r, i, 6), "at_ms", pg_int(r, i, 7), "source", pg_str(r, i, 8));
		rc = ev && json_array_append_new(arr, ev) == 0 ? 0 : OUTPOST_E_INTERNAL;
	}
	PQclear(r);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*events = arr;
	return 0;
}

static int pg_events_add(struct store *base, const char *host_id, const char *source, json_t *evs,
                         int *stored)
{
	struct pg *p = pg_of(base);
	json_t *ev;
	size_t i;
	int rc;

	*stored = 0;
	if (!host_id || !pg_nonempty(source) || !json_is_array(evs))
		return OUTPOST_E_BAD_ARGS;
	if ((rc = pg_tx_begin(p)) < 0)
		return rc;
	json_array_foreach(evs, i, ev)
	{
		json_t *data = json_object_get(ev, "data");
		char *dtext = data && !json_is_null(data) ? pg_text(data, 0, 0) : NULL;

		if (data && !json_is_null(data) && !dtext) {
			rc = OUTPOST_E_INTERNAL;
			break;
		}
		rc = pg_run(p, PS_EVENT_PUT, NULL, "sssssIss", host_id,
		            json_string_value(json_object_get(ev, "kind")),
		            json_string_value(json_object_get(ev, "severity")),
		            json_string_value(json_object_get(ev, "message")), dtext,
		            (int64_t)json_integer_value(json_object_get(ev, "ts")), source,
		            json_string_value(json_object_get(ev, "key")));
		free(dtext);
		if (rc < 0)
			break;
		*stored += rc;
	}
	if (rc < 0) {
		pg_tx_rollback(p);
		*stored = 0;
		return rc;
	}
	if ((rc = pg_tx_commit(p)) < 0)
		*stored = 0;
	return rc < 0 ? rc : 0;
}

/* ---- Audit and stats ---- */

static int pg_audit_add(struct store *base, const char *actor, const char *action,
                        const char *target, json_t *detail, int64_t now_ms)
{
	char *dtext = NULL;
	int rc;

	if (!pg_nonempty(actor) || !pg_nonempty(action))
		return OUTPOST_E_BAD_ARGS;
	if (detail && !(dtext = pg_text(detail, 0, 0)))
		return OUTPOST_E_INTERNAL;
	rc = pg_run(pg_of(base), PS_AUDIT_ADD, NULL, "Issss", now_ms, actor, action, target, dtext);
	free(dtext);
	return rc < 0 ? rc : 0;
}

static int pg_audit_list(struct store *base, int limit, json_t **entries)
{
	PGresult *r;
	json_t *arr;
	int rc;

	*entries = NULL;
	if (limit < 1)
		return OUTPOST_E_BAD_ARGS;
	if ((rc = pg_run(pg_of(base), PS_AUDIT_LIST, &r, "i", limit)) < 0)
		return rc;
	if (!(arr = json_array()))
		rc = OUTPOST_E_INTERNAL;
	for (int i = 0; arr && rc >= 0 && i < PQntuples(r); i++) {
		json_t *e =
		    json_pack("{s:I, s:I, s:s, s:s, s:s?, s:o}", "id", pg_int(r, i, 0), "at_ms",
		              pg_int(r, i, 1), "actor", pg_str(r, i, 2), "action", pg_str(r, i, 3),
		              "target", pg_str(r, i, 4), "detail", pg_json(r, i, 5));
		rc = e && json_array_append_new(arr, e) == 0 ? 0 : OUTPOST_E_INTERNAL;
	}
	PQclear(r);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*entries = arr;
	return 0;
}

static int pg_stats(struct store *base, json_t **stats)
{
	struct pg *p = pg_of(base);
	json_t *hosts = json_object(), *out = NULL;
	json_int_t running, queued;
	PGresult *r;
	int rc = hosts ? 0 : OUTPOST_E_INTERNAL;

	*stats = NULL;
	for (int i = 0; rc == 0 && i < HOST_NSTATES; i++)
		if (json_object_set_new(hosts, host_states[i], json_integer(0)))
			rc = OUTPOST_E_INTERNAL;
	if (rc == 0 && (rc = pg_run(p, PS_STATS_HOSTS, &r, "")) >= 0) {
		rc = 0;
		for (int i = 0; rc == 0 && i < PQntuples(r); i++)
			rc = json_object_set_new(hosts, pg_str(r, i, 0),
			                         json_integer(pg_int(r, i, 1)))
			         ? OUTPOST_E_INTERNAL
			         : 0;
		PQclear(r);
	}
	if (rc < 0 || (rc = count_of(p, PS_STATS_TASKS, NULL, &running)) < 0 ||
	    (rc = count_of(p, PS_STATS_QUEUE, NULL, &queued)) < 0) {
		json_decref(hosts);
		return rc;
	}
	out = json_pack("{s:o, s:I, s:I}", "hosts", hosts, "tasks_running", running, "queue_depth",
	                queued);
	if (!out)
		return OUTPOST_E_INTERNAL;
	*stats = out;
	return 0;
}

/* ---- Retention: bounded slices, as store_sqlite_prune.c does them ---- */

static int prune_oldest(struct store *base, enum pst which, int64_t before_ms, int limit,
                        int64_t *n)
{
	int rc;

	*n = 0;
	if (limit < 1)
		return OUTPOST_E_BAD_ARGS;
	if ((rc = pg_run(pg_of(base), which, NULL, "Ii", before_ms, limit)) < 0)
		return rc;
	*n = rc;
	return 0;
}

static int pg_events_prune(struct store *base, int64_t before_ms, int limit, int64_t *n)
{
	return prune_oldest(base, PS_PRUNE_EVENTS, before_ms, limit, n);
}

static int pg_audit_prune(struct store *base, int64_t before_ms, int limit, int64_t *n)
{
	return prune_oldest(base, PS_PRUNE_AUDIT, before_ms, limit, n);
}

static int pg_pending_prune(struct store *base, int64_t before_ms, int limit, int64_t *n)
{
	return prune_oldest(base, PS_PRUNE_PENDING, before_ms, limit, n);
}

/* A task's rows go limit at a time, across calls if need be; the task once none is left. */
static int pg_tasks_prune(struct store *base, int64_t before_ms, int limit, int64_t *tasks,
                          int64_t *copies)
{
	struct pg *p = pg_of(base);
	int64_t left = limit;
	PGresult *r;
	char *id;
	int rc;

	*tasks = *copies = 0;
	if (limit < 1)
		return OUTPOST_E_BAD_ARGS;
	if ((rc = pg_tx_begin(p)) < 0)
		return rc;
	while (left > 0) {
		if ((rc = pg_run(p, PS_PRUNE_TASK_OLDEST, &r, "I", before_ms)) < 0)
			goto fail;
		id = rc > 0 ? strdup(pg_str(r, 0, 0)) : NULL;
		PQclear(r);
		if (rc == 0)
			break;
		if (!id) {
			rc = OUTPOST_E_INTERNAL;
			goto fail;
		}
		rc = pg_run(p, PS_PRUNE_TASK_COPIES, NULL, "sI", id, left);
		if (rc >= 0) {
			*copies += rc;
			left -= rc;
		}
		/* left 0: the next call finds what is left of this task first. The task row
		 * counts against the limit too; one not deleted would come back forever. */
		if (rc >= 0 && left > 0) {
			rc = pg_run(p, PS_PRUNE_TASK_DELETE, NULL, "s", id);
			if (rc == 1) {
				*tasks += 1;
				left--;
			} else if (rc >= 0) {
				rc = OUTPOST_E_INTERNAL;
			}
		}
		free(id);
		if (rc < 0)
			goto fail;
	}
	if ((rc = pg_tx_commit(p)) < 0)
		*tasks = *copies = 0;
	return rc;
fail:
	pg_tx_rollback(p);
	*tasks = *copies = 0;
	return rc;
}

/* ---- Open and close ---- */

static void pg_close(struct store *base)
{
	struct pg *p = pg_of(base);

	if (!p)
		return;
	if (p->conn)
		PQfinish(p->conn);
	pgm_close(p->metrics);
	free(p->dsn);
	free(p);
}

static struct mstore *pg_metrics(struct store *base)
{
	return pg_of(base)->metrics;
}

static const struct store_ops pg_ops = {
    .name = "postgresql",
    .close = pg_close,
    .host_enroll = pg_host_enroll,
    .host_get = pg_host_get,
    .host_key = pg_host_key,
    .host_list = pg_host_list,
    .host_page = pg_host_page,
    .host_set_state = pg_host_set_state,
    .host_remove = pg_host_remove,
    .host_labels = pg_host_labels,
    .host_seen = pg_host_seen,
    .hosts_touch = pg_hosts_touch,
    .hosts_mark_down = pg_hosts_mark_down,
    .events_list = pg_events_list,
    .events_add = pg_events_add,
    .token_add = pg_token_add,
    .token_find = pg_token_find,
    .token_list = pg_token_list,
    .token_revoke = pg_token_revoke,
    .task_create = pg_task_create,
    .task_get = pg_task_get,
    .task_list = pg_task_list,
    .task_take = pg_task_take,
    .task_resume = pg_task_resume,
    .task_report = pg_task_report,
    .task_cancel = pg_task_cancel,
    .tasks_expire = pg_tasks_expire,
    .tasks_advance = pg_tasks_advance,
    .task_hosts_waiting = pg_task_hosts_waiting,
    .audit_add = pg_audit_add,
    .audit_list = pg_audit_list,
    .events_prune = pg_events_prune,
    .audit_prune = pg_audit_prune,
    .pending_prune = pg_pending_prune,
    .tasks_prune = pg_tasks_prune,
    .rec_put = pg_rec_put,
    .rec_get = pg_rec_get,
    .rec_list = pg_rec_list,
    .rec_due = pg_rec_due,
    .rec_del = pg_rec_del,
    .rec_prune = pg_rec_prune,
    .batch_begin = pg_batch_begin,
    .batch_end = pg_batch_end,
    .alert_log_add = pg_alert_log_add,
    .alert_log_list = pg_alert_log_list,
    .alert_log_prune = pg_alert_log_prune,
    .stats = pg_stats,
    .metrics = pg_metrics,
};

int store_pg_open(const char *dsn, const char *state_dir, struct store **out, char *msg,
                  size_t msglen)
{
	struct pg *p;
	int rc;

	*out = NULL;
	if (msglen)
		msg[0] = '\0';
	if (!dsn || !state_dir) {
		snprintf(msg, msglen, "postgresql: no DSN");
		return OUTPOST_E_BAD_ARGS;
	}
	if (!(p = calloc(1, sizeof(*p))) || !(p->dsn = strdup(dsn))) {
		free(p);
		snprintf(msg, msglen, "out of memory");
		return OUTPOST_E_INTERNAL;
	}
	p->base.ops = &pg_ops;
	if ((rc = pg_connect(p, msg, msglen)) < 0 ||
	    (rc = pgm_open(p->dsn, state_dir, &p->metrics, msg, msglen)) < 0) {
		pg_close(&p->base);
		return rc;
	}
	*out = &p->base;
	return 0;
}
