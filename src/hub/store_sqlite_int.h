/* What the parts of hub.db's store share (store_sqlite.c: schema, statements, hosts, audit;
 * store_sqlite_tasks.c: tasks; store_sqlite_tokens.c: tokens): the handle, the statement
 * table, and small helpers over it. Internal to the SQLite store. */
#ifndef OUTPOST_HUB_STORE_SQLITE_INT_H
#define OUTPOST_HUB_STORE_SQLITE_INT_H

#include "store_sqlite.h"
#include "core/db.h"

#include <jansson.h>
#include <outpost/plugin.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

/* A row still running this long after its task's expiry plus its timeout has no agent left to
 * report it (the agent refuses a task past expires_ms and ends one at timeout_ms): lost. */
#define STORE_LOST_GRACE_MS 60000

/* The statements, prepared once at open. Row states that are not final: queued, sent,
 * running. Rows move in bulk only from queued/sent (the agent has not started them). */
enum st {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_HOST_GET,
	ST_HOST_LIST,
	ST_HOST_PAGE,
	ST_HOST_AUTH,
	ST_HOST_KEY,
	ST_HOST_INSERT,
	ST_HOST_REPLACE,
	ST_HOST_TOUCH,
	ST_PENDING_COUNT,
	ST_PENDING_COUNT_ADDR,
	ST_HOST_SET_STATE,
	ST_HOST_SET_LABELS,
	ST_HOST_DELETE,
	ST_HOST_SEEN,
	ST_HOST_SEEN_UP,
	ST_HOSTS_TOUCH,
	ST_HOST_FACTS,
	ST_HOST_STALE,
	ST_EVENT_ADD,
	ST_EVENTS_LIST,
	ST_EVENT_PUT,
	ST_TOKEN_BY_ID,
	ST_TOKEN_ADD,
	ST_TOKEN_FIND,
	ST_TOKEN_LIST,
	ST_TOKEN_REVOKE,
	ST_TOKEN_USE,
	ST_TASK_ADD,
	ST_TASK_ROW_ADD,
	ST_TASK_GET,
	ST_TASK_LIST,
	ST_TASK_COUNTS,
	ST_TASK_ROWS,
	ST_TASK_STATE,
	ST_TASK_SEQ_NEXT,
	ST_TASK_OPEN,
	ST_TASK_FINISH,
	ST_TASK_CANCEL,
	ST_TAKE,
	ST_TAKE_MARK,
	ST_RESUME,
	ST_ROW_STATE,
	ST_ROW_REPORT,
	ST_ROWS_CANCEL,
	ST_ROWS_CANCEL_QUEUED,
	ST_ROWS_EXPIRE,
	ST_ROWS_LOSE,
	ST_ROW_CANCEL_HOST,
	ST_HOST_OPEN_TASKS,
	ST_EXPIRE_TASKS,
	ST_ADVANCE_TASKS,
	ST_BATCH_OPEN,
	ST_TASK_FAILURES,
	ST_TASK_RELEASE,
	ST_BATCH_HOSTS,
	ST_WAITING_TASK,
	ST_WAITING_ALL,
	ST_AUDIT_ADD,
	ST_AUDIT_LIST,
	ST_STATS_HOSTS,
	ST_STATS_TASKS,
	ST_STATS_QUEUE,
	ST_REC_ADD,
	ST_REC_PUT,
	ST_REC_GET,
	ST_REC_LIST,
	ST_REC_DUE,
	ST_REC_DEL,
	ST_REC_PRUNE,
	ST_ALOG_ADD,
	ST_ALOG_ALL,
	ST_ALOG_RULE,
	ST_ALOG_PRUNE,
	ST_COUNT
};

/* Each statement's SQL, by slot, in the file whose code runs it: store_sqlite_tasks.c and
 * store_sqlite_tokens.c fill theirs (the rest NULL); store_sqlite.c the others, and prepares
 * every slot once at open (an SQL error is found at start, not at first use). */
extern const char *const sq_tasks_sql[ST_COUNT];
extern const char *const sq_tokens_sql[ST_COUNT];
extern const char *const sq_recs_sql[ST_COUNT];
extern const char *const sq_alerts_sql[ST_COUNT];

/* The WHERE terms of the partial indexes task_hosts_wait and task_hosts_open; p: "" or "th.". */
#define WAIT(p) p "state IN ('queued', 'sent')"
#define OPEN(p) p "state IN ('queued', 'sent', 'running')"
/* Rows ?1 of task, moved in bulk: ?2 the new seq, ?3 now. */
#define ROWS_MOVE(to) "UPDATE task_hosts SET state = '" to "', finished_ms = ?3, seq = ?2 "

struct sq {
	struct store base; /* first: the handle store.h callers hold */
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	struct mstore *metrics; /* metrics.db */
	struct sqp *prune;      /* retention's statements (store_sqlite_prune.c) */
	int batch;              /* inside batch_begin .. batch_end: calls are savepoints */
};

/* Per-host row states, in the order counts lists them; the first three are not final. */
static const char *const row_states[] = {"queued",  "sent",    "running",   "ok",   "failed",
                                         "timeout", "expired", "cancelled", "lost", "refused"};
#define ROW_NSTATES ((int)(sizeof(row_states) / sizeof(row_states[0])))
enum { RS_QUEUED, RS_SENT, RS_RUNNING, RS_FINAL };

static const char *const host_states[] = {HOST_UP, HOST_DOWN, HOST_PENDING, HOST_REVOKED,
                                          HOST_REJECTED};
#define HOST_NSTATES ((int)(sizeof(host_states) / sizeof(host_states[0])))

/* ---- Small helpers ---- */

static inline struct sq *sq_of(struct store *s)
{
	return (struct sq *)s;
}

static inline int str_index(const char *s, const char *const *set, int n)
{
	for (int i = 0; s && i < n; i++)
		if (strcmp(s, set[i]) == 0)
			return i;
	return -1;
}

static inline int nonempty(const char *s)
{
	return s && *s;
}

/* NULL, or an object whose values are all strings. */
static inline int labels_ok(const json_t *labels)
{
	const char *k;
	json_t *v;

	if (!labels)
		return 1;
	if (!json_is_object(labels))
		return 0;
	json_object_foreach((json_t *)labels, k, v)
	{
		if (!json_is_string(v))
			return 0;
	}
	return 1;
}

/* Compact text of v (NULL is JSON null); caller frees. */
static inline char *text_of(const json_t *v, size_t flags)
{
	return json_dumps(v ? v : json_null(), JSON_COMPACT | JSON_ENCODE_ANY | flags);
}

/* Compact text of v, or "{}" when v is NULL; caller frees. */
static inline char *text_or_empty(const json_t *v, size_t flags)
{
	return v ? text_of(v, flags) : strdup("{}");
}

/* A statement ready to bind. Callers reset it again when done with it, so that no statement
 * keeps a read transaction open between calls. */
static inline sqlite3_stmt *stmt(struct sq *s, enum st i)
{
	return db_stmt(s->st[i]);
}

static inline void bind_str(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* A time, with 0 (unknown) stored as NULL. */
static inline void bind_ms(sqlite3_stmt *st, int i, int64_t v)
{
	if (v > 0)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

static inline const char *col_str(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

/* A JSON column parsed; NULL or unreadable text is JSON null. Never NULL. */
static inline json_t *col_json(sqlite3_stmt *st, int i)
{
	const char *t = col_str(st, i);
	json_t *v = t ? json_loads(t, JSON_DECODE_ANY, NULL) : NULL;

	return v ? v : json_null();
}

static inline json_t *col_ms(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	return json_integer(sqlite3_column_int64(st, i));
}

static inline json_int_t col_int(sqlite3_stmt *st, int i)
{
	return (json_int_t)sqlite3_column_int64(st, i);
}

/* A call's transaction: BEGIN IMMEDIATE, or inside a batch (store.h's batch_begin) a
 * savepoint of the batch's transaction, so that the call stays all or nothing in it. */
static inline int tx_begin(struct sq *s)
{
	return db_run(stmt(s, s->batch ? ST_SAVEPOINT : ST_BEGIN));
}

/* Abandons the transaction, if one is open (some errors end it themselves), and resets every
 * statement a failure may have left in the middle of its rows. In a batch only the call's
 * savepoint is undone; a batch whose transaction SQLite ended itself is over (batch_end
 * reports it). */
static inline void tx_rollback(struct sq *s)
{
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_reset(s->st[i]);
	if (sqlite3_get_autocommit(s->db))
		return;
	if (!s->batch) {
		db_run(stmt(s, ST_ROLLBACK));
	} else if (db_run(stmt(s, ST_ROLLBACK_TO)) == 0) {
		db_run(stmt(s, ST_RELEASE));
	}
}

static inline int tx_commit(struct sq *s)
{
	int rc = db_run(stmt(s, s->batch ? ST_RELEASE : ST_COMMIT));

	if (rc < 0)
		tx_rollback(s);
	return rc;
}

/* Appends a copy of a text column to arr. */
static inline int push_col(json_t *arr, sqlite3_stmt *st, int i)
{
	const char *v = col_str(st, i);

	return v && json_array_append_new(arr, json_string(v)) == 0 ? 0 : OUTPOST_E_INTERNAL;
}

/* Shared between the parts (store_sqlite.c, store_sqlite_tasks.c). */
int sq_event_add(struct sq *s, const char *host_id, const char *kind, const char *detail,
                 int64_t now_ms);
int sq_seq_next(struct sq *s, const char *task_id, int64_t *seq);
int sq_rows_move(struct sq *s, enum st which, const char *task_id, const char *host_id,
                 int64_t now_ms, int *moved);
int sq_task_settle(struct sq *s, const char *task_id, int64_t now_ms, int *finished);

/* Store ops defined outside store_sqlite.c (its ops table names them). */
int sq_task_create(struct store *base, json_t *task, json_t *host_ids, json_t **existing);
int sq_task_get(struct store *base, const char *id, int with_hosts, int64_t since, json_t **task);
int sq_task_list(struct store *base, int limit, json_t **tasks);
int sq_task_take(struct store *base, const char *host_id, int64_t now_ms, int limit,
                 json_t **items);
int sq_task_resume(struct store *base, const char *host_id, int64_t now_ms, int limit,
                   json_t **items);
int sq_task_report(struct store *base, const char *task_id, const char *host_id, const char *state,
                   json_t *response, int64_t started_ms, int64_t finished_ms, int *task_done);
int sq_task_cancel(struct store *base, const char *id, int64_t now_ms);
int sq_tasks_expire(struct store *base, int64_t now_ms, json_t **task_ids);
int sq_tasks_advance(struct store *base, int64_t now_ms, json_t **host_ids);
int sq_task_hosts_waiting(struct store *base, const char *task_id, json_t **host_ids);
int sq_token_add(struct store *base, json_t *tok);
int sq_token_find(struct store *base, const char *hash, int64_t now_ms, json_t **tok);
int sq_token_list(struct store *base, json_t **toks);
int sq_token_revoke(struct store *base, const char *id);
int sq_rec_put(struct store *base, const char *kind, const char *id, const json_t *body,
               int64_t due_ms, int64_t now_ms, int only_new);
int sq_rec_get(struct store *base, const char *kind, const char *id, json_t **body);
int sq_rec_list(struct store *base, const char *kind, int limit, json_t **bodies);
int sq_rec_due(struct store *base, const char *kind, int64_t now_ms, int limit, json_t **bodies);
int sq_rec_del(struct store *base, const char *kind, const char *id);
int sq_rec_prune(struct store *base, const char *kind, int64_t before_ms, int limit, int64_t *n);
int sq_alert_log_add(struct store *base, json_t *entry, int64_t now_ms);
int sq_alert_log_list(struct store *base, const char *rule_id, int limit, json_t **entries);
int sq_alert_log_prune(struct store *base, int64_t before_ms, int limit, int64_t *n);

#endif
