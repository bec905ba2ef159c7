/* The hub's store on SQLite (embedded mode): see store.h for the contract and docs/protocol.md
 * for the shapes. One connection; every statement is prepared once at open (the table below)
 * and reused; every call that writes is one transaction. This file: schema, statements, open
 * and close, hosts and events, audit and stats; tasks, tokens and records are in
 * store_sqlite_tasks.c, store_sqlite_tokens.c and store_sqlite_recs.c (what they share:
 * store_sqlite_int.h). */
#include "store_sqlite_int.h"
#include "store_rules.h"
#include "core/clk.h"
#include "core/db.h"

#include <outpost/plugin.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One migration step per schema version (db_migrate, component "hub"). Never edit a step that
 * has shipped: add one.
 * - hosts.attrs is derived: the selector attributes of fact_attrs below, recomputed whenever
 *   facts are written, so host_list (run for every task's targeting) never parses full facts.
 *   A change to fact_attrs needs a step that recomputes it.
 * - events and task_hosts name hosts without a foreign key: history outlives a removed host.
 * - seq: task_hosts.seq is the value at a row's last change; a task's seq is the largest of
 *   its rows' (an index lookup), and a change takes that plus one. Deriving it keeps a report
 *   from rewriting the tasks row. task_create counts as the first change (since=0 returns
 *   every row); a statement that moves many rows at once (cancel, expire, advance) gives
 *   them one new value.
 * - The indexes of task_hosts are partial where they can be, so that a row's trip to a final
 *   state touches few pages: task_hosts_wait (a host's queued and sent rows: task_take,
 *   revoke) and task_hosts_open (a task's unfinished rows by batch: is the task or the batch
 *   done, the queue). SQLite uses a partial index only when the query repeats its WHERE term
 *   word for word, hence the IN (...) terms repeated below.
 * - tasks.last_batch is fixed at creation: the batch of the last host. Batches up to
 *   released_batch may be taken.
 * - Version 2, retention (store_sqlite_prune.c): tasks.ended_ms is the hub's time when a task
 *   left running (NULL while it runs); tasks that ended before it existed take their last
 *   row's end. The indexes let the prunes walk from the oldest row without a table scan.
 * - Version 3: hosts.state 'rejected' (a pending host an operator refused, kept so that its
 *   agent cannot come back pending). SQLite cannot change a CHECK in place: hosts is rebuilt.
 * - Version 4: hosts.enroll_addr (pending hosts are bounded per address), tokens.max_uses and
 *   tokens.uses (0: any number), counted in the enrollment's transaction.
 * - Version 5: events from agents and the API (see the step).
 * - Version 6: records (store.h's rec_*): flow definitions and runs, queued mail.
 * - Version 7: automation's documents and the alert history (store_sqlite_alerts.c).
 * - Version 8: automation's documents (rules, alerts, silences) are records like flows' (one
 *   table, one set of ops): auto_docs moved into records and dropped. */
static const char *const hub_schema[] = {
    "CREATE TABLE hosts ("
    " id TEXT PRIMARY KEY,"
    " hostname TEXT,"
    " pubkey TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('up', 'down', 'pending', 'revoked')),"
    " labels TEXT NOT NULL DEFAULT '{}',"
    " facts TEXT NOT NULL DEFAULT '{}',"
    " attrs TEXT NOT NULL DEFAULT '{}',"
    " version TEXT,"
    " first_seen_ms INTEGER NOT NULL,"
    " last_seen_ms INTEGER NOT NULL);"
    "CREATE INDEX hosts_state_seen ON hosts(state, last_seen_ms);"
    "CREATE TABLE events ("
    " id INTEGER PRIMARY KEY,"
    " host_id TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " detail TEXT NOT NULL DEFAULT '',"
    " at_ms INTEGER NOT NULL);"
    "CREATE INDEX events_host ON events(host_id, id);"
    "CREATE TABLE tokens ("
    " id TEXT PRIMARY KEY,"
    " hash TEXT NOT NULL UNIQUE,"
    " kind TEXT NOT NULL CHECK (kind IN ('enroll', 'operator')),"
    " role TEXT,"
    " labels TEXT NOT NULL DEFAULT '{}',"
    " created_ms INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL DEFAULT 0,"
    " revoked INTEGER NOT NULL DEFAULT 0,"
    " created_by TEXT);"
    "CREATE TABLE tasks ("
    " id TEXT PRIMARY KEY,"
    " target TEXT NOT NULL,"
    " plugin TEXT NOT NULL,"
    " op TEXT NOT NULL,"
    " args TEXT NOT NULL,"
    " timeout_ms INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL,"
    " created_by TEXT,"
    " batch_size INTEGER NOT NULL,"
    " max_failures INTEGER NOT NULL,"
    " last_batch INTEGER NOT NULL,"
    " released_batch INTEGER NOT NULL DEFAULT 0,"
    " state TEXT NOT NULL CHECK (state IN ('running', 'done', 'cancelled')),"
    " cancelled_ms INTEGER);"
    "CREATE INDEX tasks_created ON tasks(created_ms);"
    "CREATE INDEX tasks_running ON tasks(expires_ms) WHERE state = 'running';"
    "CREATE TABLE task_hosts ("
    " task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
    " host_id TEXT NOT NULL,"
    " batch INTEGER NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'running', 'ok', 'failed',"
    "  'timeout', 'lost', 'refused', 'expired', 'cancelled')),"
    " response TEXT,"
    " started_ms INTEGER,"
    " finished_ms INTEGER,"
    " seq INTEGER NOT NULL,"
    " PRIMARY KEY (task_id, host_id));"
    "CREATE INDEX task_hosts_wait ON task_hosts(host_id) WHERE state IN ('queued', 'sent');"
    "CREATE INDEX task_hosts_open ON task_hosts(task_id, batch)"
    " WHERE state IN ('queued', 'sent', 'running');"
    "CREATE INDEX task_hosts_seq ON task_hosts(task_id, seq);"
    "CREATE TABLE audit ("
    " id INTEGER PRIMARY KEY,"
    " at_ms INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " target TEXT,"
    " detail TEXT);",
    "ALTER TABLE tasks ADD COLUMN ended_ms INTEGER;"
    "UPDATE tasks SET ended_ms = coalesce((SELECT max(finished_ms) FROM task_hosts"
    " WHERE task_id = tasks.id), cancelled_ms, created_ms) WHERE state != 'running';"
    "CREATE INDEX tasks_ended ON tasks(ended_ms) WHERE ended_ms IS NOT NULL;"
    "CREATE INDEX events_at ON events(at_ms);"
    "CREATE INDEX audit_at ON audit(at_ms);",
    /* 3: state 'rejected' (see above). */
    "CREATE TABLE hosts_v2 ("
    " id TEXT PRIMARY KEY,"
    " hostname TEXT,"
    " pubkey TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('up', 'down', 'pending', 'revoked', 'rejected')),"
    " labels TEXT NOT NULL DEFAULT '{}',"
    " facts TEXT NOT NULL DEFAULT '{}',"
    " attrs TEXT NOT NULL DEFAULT '{}',"
    " version TEXT,"
    " first_seen_ms INTEGER NOT NULL,"
    " last_seen_ms INTEGER NOT NULL);"
    "INSERT INTO hosts_v2 SELECT id, hostname, pubkey, state, labels, facts, attrs, version,"
    " first_seen_ms, last_seen_ms FROM hosts;"
    "DROP TABLE hosts;"
    "ALTER TABLE hosts_v2 RENAME TO hosts;"
    "CREATE INDEX hosts_state_seen ON hosts(state, last_seen_ms);",
    /* 4: the address a host enrolled from (pending caps per address), token uses. */
    "ALTER TABLE hosts ADD COLUMN enroll_addr TEXT;"
    "CREATE INDEX hosts_pending_addr ON hosts(enroll_addr) WHERE state = 'pending';"
    "ALTER TABLE tokens ADD COLUMN max_uses INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE tokens ADD COLUMN uses INTEGER NOT NULL DEFAULT 0;",
    /* 5: events from agents and the API beside the hub's own (docs/protocol.md, "Events"):
     * severity, message, data (JSON), source ('hub', 'agent', 'api:<caller>') and dedupe, the
     * key that makes a replayed batch or a repeated post store nothing twice (NULL for the
     * hub's own events). */
    "ALTER TABLE events ADD COLUMN severity TEXT NOT NULL DEFAULT 'info';"
    "ALTER TABLE events ADD COLUMN message TEXT;"
    "ALTER TABLE events ADD COLUMN data TEXT;"
    "ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT 'hub';"
    "ALTER TABLE events ADD COLUMN dedupe TEXT;"
    "CREATE UNIQUE INDEX events_dedupe ON events(dedupe) WHERE dedupe IS NOT NULL;",
    /* 6: automation's records (store_sqlite_recs.c). */
    "CREATE TABLE records ("
    " kind TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " body TEXT NOT NULL,"
    " due_ms INTEGER NOT NULL DEFAULT 0,"
    " updated_ms INTEGER NOT NULL,"
    " PRIMARY KEY (kind, id));"
    "CREATE INDEX records_due ON records(kind, due_ms) WHERE due_ms > 0;"
    "CREATE INDEX records_updated ON records(kind, updated_ms);",
    /* 7: automation (store_sqlite_alerts.c): rules, alerts and silences as documents; the
     * alert history, pruned by age as events are. */
    "CREATE TABLE auto_docs ("
    " kind TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " doc TEXT NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " PRIMARY KEY (kind, id));"
    "CREATE TABLE alert_log ("
    " id INTEGER PRIMARY KEY,"
    " at_ms INTEGER NOT NULL,"
    " rule_id TEXT NOT NULL,"
    " host_id TEXT,"
    " kind TEXT NOT NULL,"
    " detail TEXT);"
    "CREATE INDEX alert_log_at ON alert_log(at_ms);"
    "CREATE INDEX alert_log_rule ON alert_log(rule_id, id);",
    /* 8: auto_docs folded into records (kinds rule, alert, silence: none of records' own) */
    "INSERT OR IGNORE INTO records(kind, id, body, due_ms, updated_ms)"
    " SELECT kind, id, doc, 0, updated_ms FROM auto_docs WHERE json_valid(doc);"
    "DROP TABLE auto_docs;",
};
#define HUB_SCHEMA_VERSION ((int)(sizeof(hub_schema) / sizeof(hub_schema[0])))

#define HOST_COLS "id, hostname, state, labels, version, first_seen_ms, last_seen_ms"

/* The statements of hosts, events, audit and stats; tasks' and tokens' are in their files
 * (sq_tasks_sql, sq_tokens_sql), next to the code that runs them. */
static const char *const st_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT call",
    [ST_RELEASE] = "RELEASE call",
    [ST_ROLLBACK_TO] = "ROLLBACK TO call", /* the savepoint stays: a RELEASE ends it */
    [ST_HOST_GET] = "SELECT " HOST_COLS ", pubkey, facts FROM hosts WHERE id = ?1",
    [ST_HOST_LIST] = "SELECT " HOST_COLS ", attrs FROM hosts ORDER BY id",
    [ST_HOST_PAGE] = "SELECT " HOST_COLS ", attrs FROM hosts WHERE id > ?1 ORDER BY id LIMIT ?2",
    [ST_HOST_AUTH] = "SELECT pubkey, state, labels FROM hosts WHERE id = ?1",
    [ST_HOST_KEY] = "SELECT pubkey, state, last_seen_ms FROM hosts WHERE id = ?1",
    [ST_HOST_INSERT] = "INSERT INTO hosts(id, hostname, pubkey, state, labels, facts, attrs, "
                       "version, first_seen_ms, last_seen_ms, enroll_addr) "
                       "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10)",
    [ST_HOST_REPLACE] = "UPDATE hosts SET hostname = ?2, pubkey = ?3, state = ?4, labels = ?5, "
                        "facts = ?6, attrs = ?7, version = ?8, first_seen_ms = ?9, "
                        "last_seen_ms = ?9, enroll_addr = ?10 WHERE id = ?1 AND "
                        "state = 'pending'",
    [ST_PENDING_COUNT] = "SELECT count(*) FROM hosts WHERE state = 'pending'",
    [ST_PENDING_COUNT_ADDR] = "SELECT count(*) FROM hosts WHERE enroll_addr = ?1 AND "
                              "state = 'pending'",
    [ST_TOKEN_USE] = "UPDATE tokens SET uses = uses + 1 WHERE id = ?1 AND revoked = 0 AND "
                     "(max_uses = 0 OR uses < max_uses)",
    [ST_HOST_SET_STATE] = "UPDATE hosts SET state = ?2 WHERE id = ?1",
    [ST_HOST_SET_LABELS] = "UPDATE hosts SET labels = ?2 WHERE id = ?1",
    [ST_HOST_DELETE] = "DELETE FROM hosts WHERE id = ?1",
    [ST_HOST_SEEN] = "UPDATE hosts SET last_seen_ms = max(last_seen_ms, ?2), "
                     "version = coalesce(?3, version) WHERE id = ?1 AND state IN ('up', 'down')",
    [ST_HOST_SEEN_UP] = "UPDATE hosts SET state = 'up' WHERE id = ?1 AND state = 'down'",
    [ST_HOSTS_TOUCH] = "UPDATE hosts SET last_seen_ms = max(last_seen_ms, ?2) WHERE "
                       "state = 'up' AND id IN (SELECT value FROM json_each(?1))",
    [ST_HOST_FACTS] = "UPDATE hosts SET facts = ?2, attrs = ?3 WHERE id = ?1",
    /* A pending host asking again is seen: enroll.pending_keep_days counts from here. */
    [ST_HOST_TOUCH] = "UPDATE hosts SET last_seen_ms = max(last_seen_ms, ?2) WHERE id = ?1",
    [ST_HOST_STALE] = "SELECT id, last_seen_ms FROM hosts WHERE state = 'up' AND "
                      "last_seen_ms < ?1 ORDER BY id",
    [ST_EVENT_ADD] = "INSERT INTO events(host_id, kind, detail, at_ms) VALUES(?1, ?2, ?3, ?4)",
    /* ?3 NULL: every kind; else that kind and the ones under it (?3 "security" takes
     * "security.passwd_changed"). Newest first, paged by id. */
    [ST_EVENTS_LIST] = "SELECT id, host_id, kind, severity, message, data, detail, at_ms, "
                       "source FROM events WHERE (?1 IS NULL OR host_id = ?1) AND "
                       "(?2 IS NULL OR host_id IN (SELECT value FROM json_each(?2))) AND "
                       "(?3 IS NULL OR kind = ?3 OR substr(kind, 1, length(?3) + 1) = ?3 || '.') "
                       "AND (?4 IS NULL OR at_ms >= ?4) AND (?5 IS NULL OR at_ms < ?5) AND "
                       "(?6 IS NULL OR id < ?6) ORDER BY id DESC LIMIT ?7",
    [ST_EVENT_PUT] = "INSERT OR IGNORE INTO events(host_id, kind, severity, message, data, "
                     "at_ms, source, dedupe) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_ROW_CANCEL_HOST] =
        ROWS_MOVE("cancelled") "WHERE task_id = ?1 AND host_id = ?4 AND " WAIT(""),
    [ST_HOST_OPEN_TASKS] =
        "SELECT task_id FROM task_hosts WHERE host_id = ?1 AND " WAIT("") " ORDER BY task_id",
    [ST_AUDIT_ADD] = "INSERT INTO audit(at_ms, actor, action, target, detail) "
                     "VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_AUDIT_LIST] = "SELECT id, at_ms, actor, action, target, detail FROM audit "
                      "ORDER BY id DESC LIMIT ?1",
    [ST_STATS_HOSTS] = "SELECT state, count(*) FROM hosts GROUP BY state",
    [ST_STATS_TASKS] = "SELECT count(*) FROM tasks WHERE state = 'running'",
    [ST_STATS_QUEUE] = "SELECT count(*) FROM tasks t JOIN task_hosts th ON th.task_id = t.id "
                       "AND " OPEN("th.") " AND th.state = 'queued' AND "
                                          "th.batch <= t.released_batch "
                                          "WHERE t.state = 'running'",
};

/* ---- Hosts ---- */

int sq_event_add(struct sq *s, const char *host_id, const char *kind, const char *detail,
                 int64_t now_ms)
{
	sqlite3_stmt *st = stmt(s, ST_EVENT_ADD);

	bind_str(st, 1, host_id);
	bind_str(st, 2, kind);
	bind_str(st, 3, detail ? detail : "");
	sqlite3_bind_int64(st, 4, now_ms);
	return db_run(st);
}

/* The host of the current row of ST_HOST_GET or ST_HOST_LIST (columns HOST_COLS). */
static json_t *host_json(sqlite3_stmt *st)
{
	return json_pack("{s:s, s:s?, s:s, s:o, s:s?, s:I, s:I}", "id", col_str(st, 0), "hostname",
	                 col_str(st, 1), "state", col_str(st, 2), "labels", col_json(st, 3),
	                 "version", col_str(st, 4), "first_seen_ms", col_int(st, 5), "last_seen_ms",
	                 col_int(st, 6));
}

/* One host; with facts and pubkey when full. */
static int host_fetch(struct sq *s, const char *id, int full, json_t **out)
{
	sqlite3_stmt *st = stmt(s, ST_HOST_GET);
	json_t *h = NULL;
	int rc;

	*out = NULL;
	bind_str(st, 1, id);
	rc = db_step(st);
	if (rc == 1) {
		h = host_json(st);
		if (h && full &&
		    (json_object_set_new(h, "pubkey", json_string(col_str(st, 7))) ||
		     json_object_set_new(h, "facts", col_json(st, 8)))) {
			json_decref(h);
			h = NULL;
		}
		rc = h ? 0 : OUTPOST_E_INTERNAL;
	} else if (rc == 0) {
		rc = OUTPOST_E_NOT_FOUND;
	}
	sqlite3_reset(st);
	*out = h;
	return rc;
}

/* Why a beat or a change is refused for a host that is not up or down. */
static int host_absent(struct sq *s, const char *id)
{
	sqlite3_stmt *st = stmt(s, ST_HOST_AUTH);
	int rc;

	bind_str(st, 1, id);
	rc = db_step(st);
	if (rc == 1)
		rc = strcmp(col_str(st, 1), HOST_PENDING) == 0 ? OUTPOST_E_UNAVAILABLE
		                                               : OUTPOST_E_FORBIDDEN;
	else if (rc == 0)
		rc = OUTPOST_E_NOT_FOUND;
	sqlite3_reset(st);
	return rc;
}

/* A host that leaves (revoked, removed) will take nothing more: its queued and sent rows are
 * cancelled, so their tasks can finish. Inside a transaction. */
static int host_cancel_rows(struct sq *s, const char *host_id, int64_t now_ms)
{
	sqlite3_stmt *st = stmt(s, ST_HOST_OPEN_TASKS);
	json_t *tasks = json_array(), *v;
	size_t i;
	int rc, moved;

	if (!tasks)
		return OUTPOST_E_INTERNAL;
	bind_str(st, 1, host_id);
	while ((rc = db_step(st)) == 1)
		if ((rc = push_col(tasks, st, 0)) < 0)
			break;
	sqlite3_reset(st);
	json_array_foreach(tasks, i, v)
	{
		if (rc < 0)
			break;
		rc = sq_rows_move(s, ST_ROW_CANCEL_HOST, json_string_value(v), host_id, now_ms,
		                  &moved);
		if (rc == 0)
			rc = sq_task_settle(s, json_string_value(v), now_ms, NULL);
	}
	json_decref(tasks);
	return rc < 0 ? rc : 0;
}

static int count_of(struct sq *s, enum st which, json_int_t *n);

/* Counts one use of the enrollment token that accepts this host, in the enrollment's
 * transaction: two hosts racing for the last use cannot both have it. */
static int enroll_use_token(struct sq *s, const struct store_enroll *e)
{
	sqlite3_stmt *st;
	int rc;

	if (!e->token_id)
		return 0;
	st = stmt(s, ST_TOKEN_USE);
	bind_str(st, 1, e->token_id);
	if ((rc = db_run(st)) < 0)
		return rc;
	return sqlite3_changes(s->db) > 0 ? 0 : OUTPOST_E_UNAUTHORIZED;
}

/* Room for one more pending host, overall and from e->addr; BUSY when there is none. */
static int enroll_pending_room(struct sq *s, const struct store_enroll *e)
{
	sqlite3_stmt *st;
	json_int_t n;
	int rc;

	if (e->pending_max > 0) {
		if ((rc = count_of(s, ST_PENDING_COUNT, &n)) < 0)
			return rc;
		if (n >= e->pending_max) {
			if (e->refused)
				*e->refused = ENROLL_CAP_TOTAL;
			return OUTPOST_E_BUSY;
		}
	}
	if (e->pending_per_addr > 0 && e->addr) {
		st = stmt(s, ST_PENDING_COUNT_ADDR);
		bind_str(st, 1, e->addr);
		rc = db_step(st);
		n = col_int(st, 0);
		sqlite3_reset(st);
		if (rc < 0)
			return rc;
		if (n >= e->pending_per_addr) {
			if (e->refused)
				*e->refused = ENROLL_CAP_ADDR;
			return OUTPOST_E_BUSY;
		}
	}
	return 0;
}

/* Writes the whole host row from e (ST_HOST_INSERT or ST_HOST_REPLACE, same parameters). */
static int enroll_write(struct sq *s, const struct store_enroll *e, enum st which)
{
	char *labels = text_or_empty(e->labels, JSON_SORT_KEYS),
	     *facts = text_or_empty(e->facts, 0);
	char *attrs = store_attrs_text(e->facts);
	sqlite3_stmt *st;
	int rc = OUTPOST_E_INTERNAL;

	if (labels && facts && attrs) {
		st = stmt(s, which);
		bind_str(st, 1, e->host_id);
		bind_str(st, 2, e->hostname);
		bind_str(st, 3, e->pubkey);
		bind_str(st, 4, e->accept ? HOST_UP : HOST_PENDING);
		bind_str(st, 5, labels);
		bind_str(st, 6, facts);
		bind_str(st, 7, attrs);
		bind_str(st, 8, e->version);
		sqlite3_bind_int64(st, 9, e->now_ms);
		bind_str(st, 10, e->addr);
		rc = db_run(st);
	}
	free(labels);
	free(facts);
	free(attrs);
	return rc;
}

static int sq_host_enroll(struct store *base, const struct store_enroll *e, json_t **host)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	char *labels = NULL;
	json_t *lab = NULL;
	int rc, replace = 0, touch = 0;

	*host = NULL;
	if (!e || !nonempty(e->host_id) || !nonempty(e->pubkey) ||
	    (e->facts && !json_is_object(e->facts)) || !labels_ok(e->labels))
		return OUTPOST_E_BAD_ARGS;
	if ((rc = tx_begin(s)) < 0)
		return rc;
	st = stmt(s, ST_HOST_AUTH);
	bind_str(st, 1, e->host_id);
	rc = db_step(st);
	if (rc == 1) {
		const char *state = col_str(st, 1);
		if (strcmp(state, HOST_REVOKED) == 0 || strcmp(state, HOST_REJECTED) == 0)
			rc = OUTPOST_E_FORBIDDEN;
		/* Another key: a valid token wins over a pending squatter; nothing else does. */
		else if (strcmp(col_str(st, 0), e->pubkey) != 0)
			rc = e->accept && strcmp(state, HOST_PENDING) == 0 ? (replace = 1)
			                                                   : OUTPOST_E_CONFLICT;
		else if (e->accept && strcmp(state, HOST_PENDING) == 0)
			lab = col_json(st, 2); /* a pending host comes back with a valid token */
		else if (strcmp(state, HOST_PENDING) == 0)
			touch = 1; /* still waiting, still asking */
		sqlite3_reset(st);
		if (rc < 0)
			goto fail;
		rc = 0;
		if (replace) {
			if ((rc = enroll_write(s, e, ST_HOST_REPLACE)) < 0 ||
			    (rc = sq_event_add(
			         s, e->host_id, "replaced",
			         "a pending host's key replaced by an enrollment token",
			         e->now_ms)) < 0 ||
			    (rc = enroll_use_token(s, e)) < 0)
				goto fail;
		} else if (touch) {
			st = stmt(s, ST_HOST_TOUCH);
			bind_str(st, 1, e->host_id);
			sqlite3_bind_int64(st, 2, e->now_ms);
			if ((rc = db_run(st)) < 0)
				goto fail;
		} else if (lab) {
			/* Labels an operator set while it waited win over the token's. */
			rc = OUTPOST_E_INTERNAL;
			if (e->labels && json_object_update_missing(lab, e->labels))
				goto fail;
			if (!(labels = text_of(lab, JSON_SORT_KEYS)))
				goto fail;
			st = stmt(s, ST_HOST_SET_LABELS);
			bind_str(st, 1, e->host_id);
			bind_str(st, 2, labels);
			if ((rc = db_run(st)) < 0)
				goto fail;
			st = stmt(s, ST_HOST_SET_STATE);
			bind_str(st, 1, e->host_id);
			bind_str(st, 2, HOST_UP);
			if ((rc = db_run(st)) < 0 ||
			    (rc = sq_event_add(s, e->host_id, "accepted", "enrollment token",
			                       e->now_ms)) < 0 ||
			    (rc = enroll_use_token(s, e)) < 0)
				goto fail;
		}
	} else if (rc == 0) {
		sqlite3_reset(st);
		if ((!e->accept && (rc = enroll_pending_room(s, e)) < 0) ||
		    (rc = enroll_write(s, e, ST_HOST_INSERT)) < 0 ||
		    (rc = sq_event_add(s, e->host_id, "enrolled",
		                       e->accept ? "accepted by enrollment token"
		                                 : "pending acceptance",
		                       e->now_ms)) < 0 ||
		    (e->accept && (rc = enroll_use_token(s, e)) < 0))
			goto fail;
	} else {
		goto fail;
	}
	if ((rc = tx_commit(s)) < 0)
		goto out;
	if (e->replaced)
		*e->replaced = replace;
	rc = host_fetch(s, e->host_id, 0, host);
	goto out;
fail:
	tx_rollback(s);
out:
	json_decref(lab);
	free(labels);
	return rc;
}

static int sq_host_get(struct store *base, const char *id, json_t **host)
{
	return host_fetch(sq_of(base), id, 1, host);
}

static int sq_host_key(struct store *base, const char *id, struct store_host_key *out)
{
	sqlite3_stmt *st = stmt(sq_of(base), ST_HOST_KEY);
	const char *pk, *state;
	int rc;

	bind_str(st, 1, id);
	rc = db_step(st);
	if (rc == 1) {
		pk = col_str(st, 0);
		state = col_str(st, 1);
		rc = pk && state && strlen(pk) < sizeof(out->pubkey) &&
		             strlen(state) < sizeof(out->state)
		         ? 0
		         : OUTPOST_E_INTERNAL;
		if (rc == 0) {
			memcpy(out->pubkey, pk, strlen(pk) + 1);
			memcpy(out->state, state, strlen(state) + 1);
			out->last_seen_ms = sqlite3_column_int64(st, 2);
		}
	} else if (rc == 0) {
		rc = OUTPOST_E_NOT_FOUND;
	}
	sqlite3_reset(st);
	return rc;
}

/* The hosts of st's rows (ST_HOST_LIST, ST_HOST_PAGE) with their attrs. */
static int host_rows(sqlite3_stmt *st, json_t **hosts)
{
	json_t *arr = json_array();
	int rc = arr ? 0 : OUTPOST_E_INTERNAL;

	*hosts = NULL;
	while (rc == 0 && (rc = db_step(st)) == 1) {
		json_t *h = host_json(st);
		rc = 0;
		/* set_new and append_new take their value even when they fail. */
		if (!h || json_object_set_new(h, "attrs",
		                              store_host_attrs(col_json(st, 7), col_str(st, 1),
		                                               col_str(st, 4),
		                                               json_object_get(h, "labels")))) {
			json_decref(h);
			rc = OUTPOST_E_INTERNAL;
		} else if (json_array_append_new(arr, h)) {
			rc = OUTPOST_E_INTERNAL;
		}
	}
	sqlite3_reset(st);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*hosts = arr;
	return 0;
}

static int sq_host_list(struct store *base, json_t **hosts)
{
	return host_rows(stmt(sq_of(base), ST_HOST_LIST), hosts);
}

static int sq_host_page(struct store *base, const char *after_id, int limit, json_t **hosts)
{
	sqlite3_stmt *st = stmt(sq_of(base), ST_HOST_PAGE);

	bind_str(st, 1, after_id);
	sqlite3_bind_int(st, 2, limit);
	return host_rows(st, hosts);
}

static int sq_host_set_state(struct store *base, const char *id, const char *state,
                             const char *reason, int64_t now_ms)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	const char *kind = NULL;
	int rc, same = 0;

	if (!id || str_index(state, host_states, HOST_NSTATES) < 0)
		return OUTPOST_E_BAD_ARGS;
	if ((rc = tx_begin(s)) < 0)
		return rc;
	st = stmt(s, ST_HOST_AUTH);
	bind_str(st, 1, id);
	rc = db_step(st);
	if (rc == 1) {
		same = strcmp(col_str(st, 1), state) == 0;
		kind = same ? NULL : store_host_transition(col_str(st, 1), state);
		rc = same || kind ? 0 : OUTPOST_E_CONFLICT;
	} else if (rc == 0) {
		rc = OUTPOST_E_NOT_FOUND;
	}
	sqlite3_reset(st);
	if (rc < 0)
		goto fail;
	if (!same) {
		st = stmt(s, ST_HOST_SET_STATE);
		bind_str(st, 1, id);
		bind_str(st, 2, state);
		if ((rc = db_run(st)) < 0 || (rc = sq_event_add(s, id, kind, reason, now_ms)) < 0)
			goto fail;
		if ((strcmp(state, HOST_REVOKED) == 0 || strcmp(state, HOST_REJECTED) == 0) &&
		    (rc = host_cancel_rows(s, id, now_ms)) < 0)
			goto fail;
	}
	return tx_commit(s);
fail:
	tx_rollback(s);
	return rc;
}

static int sq_host_remove(struct store *base, const char *id)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	int64_t now_ms;
	int rc;

	if (!id)
		return OUTPOST_E_BAD_ARGS;
	/* The only call without a caller's time: the event and the cancelled rows take ours. */
	now_ms = clk_real_ms();
	if ((rc = tx_begin(s)) < 0)
		return rc;
	st = stmt(s, ST_HOST_DELETE);
	bind_str(st, 1, id);
	if ((rc = db_run(st)) < 0)
		goto fail;
	if (sqlite3_changes(s->db) == 0) {
		rc = OUTPOST_E_NOT_FOUND;
		goto fail;
	}
	if ((rc = host_cancel_rows(s, id, now_ms)) < 0 ||
	    (rc = sq_event_add(s, id, "removed", "", now_ms)) < 0)
		goto fail;
	return tx_commit(s);
fail:
	tx_rollback(s);
	return rc;
}

static int sq_host_labels(struct store *base, const char *id, json_t *set, json_t *remove)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	json_t *lab = NULL, *v;
	const char *k;
	char *text = NULL;
	size_t i;
	int rc;

	if (!id || !labels_ok(set) || (remove && !json_is_array(remove)))
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
	if ((rc = tx_begin(s)) < 0)
		return rc;
	st = stmt(s, ST_HOST_AUTH);
	bind_str(st, 1, id);
	rc = db_step(st);
	if (rc == 1)
		lab = col_json(st, 2);
	sqlite3_reset(st);
	if (rc <= 0) {
		rc = rc < 0 ? rc : OUTPOST_E_NOT_FOUND;
		goto fail;
	}
	rc = OUTPOST_E_INTERNAL;
	if (!json_is_object(lab) || (set && json_object_update(lab, set)))
		goto fail;
	json_array_foreach(remove, i, v)
	{
		json_object_del(lab, json_string_value(v));
	}
	if (!(text = text_of(lab, JSON_SORT_KEYS)))
		goto fail;
	st = stmt(s, ST_HOST_SET_LABELS);
	bind_str(st, 1, id);
	bind_str(st, 2, text);
	if ((rc = db_run(st)) < 0)
		goto fail;
	rc = tx_commit(s);
	goto out;
fail:
	tx_rollback(s);
out:
	json_decref(lab);
	free(text);
	return rc;
}

static int sq_hosts_touch(struct store *base, json_t *ids, int64_t now_ms, int *n)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
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
	st = stmt(s, ST_HOSTS_TOUCH);
	bind_str(st, 1, text);
	sqlite3_bind_int64(st, 2, now_ms);
	rc = db_run(st);
	free(text);
	if (rc >= 0 && n)
		*n = sqlite3_changes(s->db);
	return rc < 0 ? rc : 0;
}

static int sq_host_seen(struct store *base, const char *id, int64_t now_ms, const char *version,
                        json_t *facts, int *was_down)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	char *ftext = NULL, *atext = NULL;
	int rc, down = 0;

	if (was_down)
		*was_down = 0;
	if (!id || (facts && !json_is_object(facts)))
		return OUTPOST_E_BAD_ARGS;
	if (facts && (!(ftext = text_of(facts, 0)) || !(atext = store_attrs_text(facts)))) {
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	if ((rc = tx_begin(s)) < 0)
		goto out;
	st = stmt(s, ST_HOST_SEEN);
	bind_str(st, 1, id);
	sqlite3_bind_int64(st, 2, now_ms);
	bind_str(st, 3, version);
	if ((rc = db_run(st)) < 0)
		goto fail;
	if (sqlite3_changes(s->db) == 0) {
		rc = host_absent(s, id);
		goto fail;
	}
	st = stmt(s, ST_HOST_SEEN_UP);
	bind_str(st, 1, id);
	if ((rc = db_run(st)) < 0)
		goto fail;
	down = sqlite3_changes(s->db) > 0;
	if (down && (rc = sq_event_add(s, id, "up", "beat", now_ms)) < 0)
		goto fail;
	if (ftext) {
		st = stmt(s, ST_HOST_FACTS);
		bind_str(st, 1, id);
		bind_str(st, 2, ftext);
		bind_str(st, 3, atext);
		if ((rc = db_run(st)) < 0)
			goto fail;
	}
	if ((rc = tx_commit(s)) == 0 && was_down)
		*was_down = down;
	goto out;
fail:
	tx_rollback(s);
out:
	free(ftext);
	free(atext);
	return rc;
}

static int sq_hosts_mark_down(struct store *base, int64_t before_ms, int64_t now_ms,
                              int (*keep)(void *arg, const char *id), void *keep_arg, json_t **ids)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	json_t *arr = json_array(), *last = json_array(), *v;
	size_t i;
	int rc;

	*ids = NULL;
	if (!arr || !last) {
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	if ((rc = tx_begin(s)) < 0)
		goto out;
	st = stmt(s, ST_HOST_STALE);
	sqlite3_bind_int64(st, 1, before_ms);
	while ((rc = db_step(st)) == 1) {
		if (keep && keep(keep_arg, (const char *)sqlite3_column_text(st, 0)))
			continue;
		if ((rc = push_col(arr, st, 0)) < 0 ||
		    json_array_append_new(last, json_integer(col_int(st, 1)))) {
			rc = OUTPOST_E_INTERNAL;
			break;
		}
	}
	sqlite3_reset(st);
	if (rc < 0)
		goto fail;
	json_array_foreach(arr, i, v)
	{
		const char *id = json_string_value(v);
		char detail[64];
		snprintf(detail, sizeof(detail), "no beat for %" JSON_INTEGER_FORMAT " ms",
		         (json_int_t)now_ms - json_integer_value(json_array_get(last, i)));
		st = stmt(s, ST_HOST_SET_STATE);
		bind_str(st, 1, id);
		bind_str(st, 2, HOST_DOWN);
		if ((rc = db_run(st)) < 0 || (rc = sq_event_add(s, id, "down", detail, now_ms)) < 0)
			goto fail;
	}
	if ((rc = tx_commit(s)) < 0)
		goto out;
	*ids = arr;
	arr = NULL;
	goto out;
fail:
	tx_rollback(s);
out:
	json_decref(arr);
	json_decref(last);
	return rc;
}

static int sq_events_list(struct store *base, const struct store_events_query *q, json_t **events)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	char *ids = NULL;
	json_t *arr;
	int rc = 0;

	*events = NULL;
	if (q->limit < 1)
		return OUTPOST_E_BAD_ARGS;
	if (q->host_ids && !(ids = text_of((json_t *)q->host_ids, 0)))
		return OUTPOST_E_INTERNAL;
	if (!(arr = json_array())) {
		free(ids);
		return OUTPOST_E_INTERNAL;
	}
	st = stmt(s, ST_EVENTS_LIST);
	bind_str(st, 1, q->host_id);
	bind_str(st, 2, ids);
	bind_str(st, 3, q->kind);
	bind_ms(st, 4, q->since_ms);
	bind_ms(st, 5, q->until_ms);
	bind_ms(st, 6, q->before_id);
	sqlite3_bind_int(st, 7, q->limit);
	while (rc == 0 && (rc = db_step(st)) == 1) {
		json_t *ev = json_pack(
		    "{s:I, s:s, s:s, s:s, s:s?, s:o, s:s, s:I, s:s}", "id", col_int(st, 0),
		    "host_id", col_str(st, 1), "kind", col_str(st, 2), "severity", col_str(st, 3),
		    "message", col_str(st, 4), "data", col_json(st, 5), "detail", col_str(st, 6),
		    "at_ms", col_int(st, 7), "source", col_str(st, 8));
		rc = ev && json_array_append_new(arr, ev) == 0 ? 0 : OUTPOST_E_INTERNAL;
	}
	sqlite3_reset(st);
	free(ids);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*events = arr;
	return 0;
}

static int sq_events_add(struct store *base, const char *host_id, const char *source, json_t *evs,
                         int *stored)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	json_t *ev;
	size_t i;
	int rc;

	*stored = 0;
	if (!host_id || !nonempty(source) || !json_is_array(evs))
		return OUTPOST_E_BAD_ARGS;
	if ((rc = tx_begin(s)) < 0)
		return rc;
	json_array_foreach(evs, i, ev)
	{
		json_t *data = json_object_get(ev, "data");
		char *dtext = data && !json_is_null(data) ? text_of(data, 0) : NULL;

		if (data && !json_is_null(data) && !dtext) {
			rc = OUTPOST_E_INTERNAL;
			break;
		}
		st = stmt(s, ST_EVENT_PUT);
		bind_str(st, 1, host_id);
		bind_str(st, 2, json_string_value(json_object_get(ev, "kind")));
		bind_str(st, 3, json_string_value(json_object_get(ev, "severity")));
		bind_str(st, 4, json_string_value(json_object_get(ev, "message")));
		bind_str(st, 5, dtext);
		sqlite3_bind_int64(st, 6, json_integer_value(json_object_get(ev, "ts")));
		bind_str(st, 7, source);
		bind_str(st, 8, json_string_value(json_object_get(ev, "key")));
		rc = db_run(st);
		free(dtext);
		if (rc < 0)
			break;
		*stored += sqlite3_changes(s->db);
	}
	if (rc < 0) {
		tx_rollback(s);
		*stored = 0;
		return rc;
	}
	if ((rc = tx_commit(s)) < 0)
		*stored = 0;
	return rc;
}

static int sq_audit_add(struct store *base, const char *actor, const char *action,
                        const char *target, json_t *detail, int64_t now_ms)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	char *dtext = NULL;
	int rc;

	if (!nonempty(actor) || !nonempty(action))
		return OUTPOST_E_BAD_ARGS;
	if (detail && !(dtext = text_of(detail, 0)))
		return OUTPOST_E_INTERNAL;
	st = stmt(s, ST_AUDIT_ADD);
	sqlite3_bind_int64(st, 1, now_ms);
	bind_str(st, 2, actor);
	bind_str(st, 3, action);
	bind_str(st, 4, target);
	bind_str(st, 5, dtext);
	rc = db_run(st);
	free(dtext);
	return rc;
}

static int sq_audit_list(struct store *base, int limit, json_t **entries)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	json_t *arr;
	int rc = 0;

	*entries = NULL;
	if (limit < 1)
		return OUTPOST_E_BAD_ARGS;
	if (!(arr = json_array()))
		return OUTPOST_E_INTERNAL;
	st = stmt(s, ST_AUDIT_LIST);
	sqlite3_bind_int(st, 1, limit);
	while (rc == 0 && (rc = db_step(st)) == 1) {
		json_t *e =
		    json_pack("{s:I, s:I, s:s, s:s, s:s?, s:o}", "id", col_int(st, 0), "at_ms",
		              col_int(st, 1), "actor", col_str(st, 2), "action", col_str(st, 3),
		              "target", col_str(st, 4), "detail", col_json(st, 5));
		rc = e && json_array_append_new(arr, e) == 0 ? 0 : OUTPOST_E_INTERNAL;
	}
	sqlite3_reset(st);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*entries = arr;
	return 0;
}

/* A single count(*). */
static int count_of(struct sq *s, enum st which, json_int_t *n)
{
	sqlite3_stmt *st = stmt(s, which);
	int rc = db_step(st);

	*n = col_int(st, 0);
	sqlite3_reset(st);
	return rc < 0 ? rc : 0;
}

static int sq_stats(struct store *base, json_t **stats)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	json_t *hosts = json_object(), *out = NULL;
	json_int_t running, queued;
	int rc = hosts ? 0 : OUTPOST_E_INTERNAL;

	*stats = NULL;
	for (int i = 0; rc == 0 && i < HOST_NSTATES; i++)
		if (json_object_set_new(hosts, host_states[i], json_integer(0)))
			rc = OUTPOST_E_INTERNAL;
	st = stmt(s, ST_STATS_HOSTS);
	while (rc == 0 && (rc = db_step(st)) == 1)
		rc = json_object_set_new(hosts, col_str(st, 0), json_integer(col_int(st, 1)))
		         ? OUTPOST_E_INTERNAL
		         : 0;
	sqlite3_reset(st);
	if (rc < 0 || (rc = count_of(s, ST_STATS_TASKS, &running)) < 0 ||
	    (rc = count_of(s, ST_STATS_QUEUE, &queued)) < 0) {
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

/* ---- Retention: the statements live in store_sqlite_prune.c ---- */

static int sq_events_prune(struct store *base, int64_t before_ms, int limit, int64_t *n)
{
	return sqp_events(sq_of(base)->prune, before_ms, limit, n);
}

static int sq_pending_prune(struct store *base, int64_t before_ms, int limit, int64_t *n)
{
	return sqp_pending(sq_of(base)->prune, before_ms, limit, n);
}

static int sq_audit_prune(struct store *base, int64_t before_ms, int limit, int64_t *n)
{
	return sqp_audit(sq_of(base)->prune, before_ms, limit, n);
}

static int sq_tasks_prune(struct store *base, int64_t before_ms, int limit, int64_t *tasks,
                          int64_t *copies)
{
	return sqp_tasks(sq_of(base)->prune, before_ms, limit, tasks, copies);
}

/* ---- Open and close ---- */

static void sq_close(struct store *base)
{
	struct sq *s = sq_of(base);

	if (!s)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqp_close(s->prune);
	db_close(s->db);
	sqm_close(s->metrics);
	free(s);
}

static struct mstore *sq_metrics(struct store *base)
{
	return sq_of(base)->metrics;
}

/* A batch (store.h): one BEGIN IMMEDIATE; the calls inside are savepoints (tx_begin). */
static int sq_batch_begin(struct store *base)
{
	struct sq *s = sq_of(base);
	int rc;

	if (s->batch)
		return OUTPOST_E_CONFLICT;
	if ((rc = db_run(stmt(s, ST_BEGIN))) < 0)
		return rc;
	s->batch = 1;
	return 0;
}

static int sq_batch_end(struct store *base)
{
	struct sq *s = sq_of(base);
	int rc;

	if (!s->batch)
		return 0;
	s->batch = 0;
	if (sqlite3_get_autocommit(s->db))
		return OUTPOST_E_INTERNAL; /* SQLite ended it after an error: what it held is lost
		                            */
	if ((rc = db_run(stmt(s, ST_COMMIT))) < 0)
		tx_rollback(s);
	return rc;
}

static const struct store_ops sq_ops = {
    .name = "sqlite",
    .close = sq_close,
    .host_enroll = sq_host_enroll,
    .host_get = sq_host_get,
    .host_key = sq_host_key,
    .host_list = sq_host_list,
    .host_page = sq_host_page,
    .host_set_state = sq_host_set_state,
    .host_remove = sq_host_remove,
    .host_labels = sq_host_labels,
    .host_seen = sq_host_seen,
    .hosts_touch = sq_hosts_touch,
    .hosts_mark_down = sq_hosts_mark_down,
    .events_list = sq_events_list,
    .events_add = sq_events_add,
    .token_add = sq_token_add,
    .token_find = sq_token_find,
    .token_list = sq_token_list,
    .token_revoke = sq_token_revoke,
    .task_create = sq_task_create,
    .task_get = sq_task_get,
    .task_list = sq_task_list,
    .task_take = sq_task_take,
    .task_resume = sq_task_resume,
    .task_report = sq_task_report,
    .task_cancel = sq_task_cancel,
    .tasks_expire = sq_tasks_expire,
    .tasks_advance = sq_tasks_advance,
    .task_hosts_waiting = sq_task_hosts_waiting,
    .audit_add = sq_audit_add,
    .audit_list = sq_audit_list,
    .events_prune = sq_events_prune,
    .audit_prune = sq_audit_prune,
    .pending_prune = sq_pending_prune,
    .tasks_prune = sq_tasks_prune,
    .rec_put = sq_rec_put,
    .rec_get = sq_rec_get,
    .rec_list = sq_rec_list,
    .rec_due = sq_rec_due,
    .rec_del = sq_rec_del,
    .rec_prune = sq_rec_prune,
    .batch_begin = sq_batch_begin,
    .batch_end = sq_batch_end,
    .alert_log_add = sq_alert_log_add,
    .alert_log_list = sq_alert_log_list,
    .alert_log_prune = sq_alert_log_prune,
    .stats = sq_stats,
    .metrics = sq_metrics,
};

int store_sqlite_open(const char *state_dir, struct store **out, char *msg, size_t msglen)
{
	struct sq *s = NULL;
	char *path = NULL;
	size_t n;
	int rc = OUTPOST_E_INTERNAL;

	*out = NULL;
	if (msglen)
		msg[0] = '\0';
	n = strlen(state_dir) + sizeof("/hub.db");
	if (!(path = malloc(n)) || !(s = calloc(1, sizeof(*s)))) {
		snprintf(msg, msglen, "out of memory");
		goto fail;
	}
	snprintf(path, n, "%s/hub.db", state_dir);
	s->base.ops = &sq_ops;
	if ((rc = db_open(path, &s->db, msg, msglen)) < 0)
		goto fail;
	/* The agent's small page cache is too small for the hub's working set (hosts and the
	 * running tasks' rows); 16 MB keeps them in memory at fleet scale. */
	if ((rc = db_exec(s->db, "PRAGMA cache_size=-16384", msg, msglen)) < 0 ||
	    (rc = db_migrate(s->db, "hub", hub_schema, HUB_SCHEMA_VERSION, msg, msglen)) < 0)
		goto fail;
	for (int i = 0; i < ST_COUNT; i++) {
		const char *sql = st_sql[i]          ? st_sql[i]
		                  : sq_tasks_sql[i]  ? sq_tasks_sql[i]
		                  : sq_tokens_sql[i] ? sq_tokens_sql[i]
		                  : sq_recs_sql[i]   ? sq_recs_sql[i]
		                                     : sq_alerts_sql[i];
		if (!sql || sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
		                               NULL) != SQLITE_OK) {
			snprintf(msg, msglen, "sqlite: preparing statement %d: %s", i,
			         sqlite3_errmsg(s->db));
			rc = OUTPOST_E_INTERNAL;
			goto fail;
		}
	}
	if ((rc = sqp_open(s->db, &s->prune, msg, msglen)) < 0 ||
	    (rc = sqm_open(state_dir, &s->metrics, msg, msglen)) < 0)
		goto fail;
	free(path);
	*out = &s->base;
	return 0;
fail:
	free(path);
	if (s)
		sq_close(&s->base);
	return rc;
}
