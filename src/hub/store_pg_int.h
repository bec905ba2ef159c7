/* What the parts of the PostgreSQL store share (store_pg.c: connection, schema, statements,
 * hosts, audit, stats, retention; store_pg_tasks.c: tasks; store_pg_tokens.c: tokens): the
 * handle, the statement table and small helpers over libpq. Internal to the PostgreSQL store. */
#ifndef OUTPOST_HUB_STORE_PG_INT_H
#define OUTPOST_HUB_STORE_PG_INT_H

#include "store.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <outpost/plugin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* As in the SQLite store: a row running this long past expiry + timeout is lost. */
#define PG_LOST_GRACE_MS 60000

/* The prepared statements (named "s<index>" on the connection), in store_pg.c's table. */
enum pst {
	PS_HOST_GET,
	PS_HOST_LIST,
	PS_HOST_PAGE,
	PS_HOST_AUTH,
	PS_HOST_AUTH_LOCK,
	PS_HOST_KEY,
	PS_HOST_INSERT,
	PS_HOST_REPLACE,
	PS_PENDING_COUNT,
	PS_PENDING_COUNT_ADDR,
	PS_TOKEN_USE,
	PS_HOST_TOUCH,
	PS_HOST_SET_STATE,
	PS_HOST_SET_LABELS,
	PS_HOST_DELETE,
	PS_HOST_SEEN,
	PS_HOST_SEEN_UP,
	PS_HOSTS_TOUCH,
	PS_HOST_FACTS,
	PS_HOST_STALE,
	PS_EVENT_ADD,
	PS_EVENTS_LIST,
	PS_EVENT_PUT,
	PS_TOKEN_BY_ID,
	PS_TOKEN_ADD,
	PS_TOKEN_FIND,
	PS_TOKEN_LIST,
	PS_TOKEN_REVOKE,
	PS_TASK_ADD,
	PS_TASK_ROW_ADD,
	PS_TASK_GET,
	PS_TASK_LIST,
	PS_TASK_COUNTS,
	PS_TASK_ROWS,
	PS_TASK_STATE,
	PS_TASK_SEQ_NEXT,
	PS_TASK_OPEN,
	PS_TASK_FINISH,
	PS_TASK_CANCEL,
	PS_TAKE,
	PS_TAKE_MARK,
	PS_RESUME,
	PS_ROW_STATE,
	PS_ROW_REPORT,
	PS_ROWS_CANCEL,
	PS_ROWS_CANCEL_QUEUED,
	PS_ROWS_EXPIRE,
	PS_ROWS_LOSE,
	PS_ROW_CANCEL_HOST,
	PS_HOST_OPEN_TASKS,
	PS_EXPIRE_TASKS,
	PS_ADVANCE_TASKS,
	PS_BATCH_OPEN,
	PS_TASK_FAILURES,
	PS_TASK_RELEASE,
	PS_BATCH_HOSTS,
	PS_WAITING_TASK,
	PS_WAITING_ALL,
	PS_AUDIT_ADD,
	PS_AUDIT_LIST,
	PS_STATS_HOSTS,
	PS_STATS_TASKS,
	PS_STATS_QUEUE,
	PS_PRUNE_EVENTS,
	PS_PRUNE_AUDIT,
	PS_PRUNE_PENDING,
	PS_PRUNE_TASK_OLDEST,
	PS_PRUNE_TASK_COPIES,
	PS_PRUNE_TASK_DELETE,
	PS_REC_ADD,
	PS_REC_PUT,
	PS_REC_GET,
	PS_REC_LIST,
	PS_REC_DUE,
	PS_REC_DEL,
	PS_REC_PRUNE,
	PS_ALOG_ADD,
	PS_ALOG_ALL,
	PS_ALOG_RULE,
	PS_ALOG_PRUNE,
	PS_COUNT
};

struct pg {
	struct store base; /* first: the handle store.h callers hold */
	PGconn *conn;
	char *dsn;
	int ready;              /* connected and every statement prepared */
	int in_tx;              /* inside tx_begin .. tx_commit/tx_rollback */
	int batch;              /* inside batch_begin .. batch_end (in_tx too) */
	int sub;                /* in a batch, inside a call's savepoint */
	struct mstore *metrics; /* store_pg_metrics.c: its own connection */
};

/* Per-host row states, in the order counts lists them; the first three are not final. */
static const char *const pg_row_states[] = {"queued",  "sent",    "running",   "ok",   "failed",
                                            "timeout", "expired", "cancelled", "lost", "refused"};
#define PG_ROW_NSTATES ((int)(sizeof(pg_row_states) / sizeof(pg_row_states[0])))
enum { PRS_QUEUED, PRS_SENT, PRS_RUNNING, PRS_FINAL };

static inline struct pg *pg_of(struct store *s)
{
	return (struct pg *)s;
}

static inline int pg_str_index(const char *s, const char *const *set, int n)
{
	for (int i = 0; s && i < n; i++)
		if (strcmp(s, set[i]) == 0)
			return i;
	return -1;
}

static inline int pg_nonempty(const char *s)
{
	return s && *s;
}

/* NULL, or an object whose values are all strings. */
static inline int pg_labels_ok(const json_t *labels)
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

/* Compact text of v (NULL is JSON null), or "{}" for NULL when empty_obj; caller frees. */
static inline char *pg_text(const json_t *v, size_t flags, int empty_obj)
{
	if (!v && empty_obj)
		return strdup("{}");
	return json_dumps(v ? v : json_null(), JSON_COMPACT | JSON_ENCODE_ANY | flags);
}

/* ---- Results: a text column, NULL for SQL NULL ---- */

static inline const char *pg_str(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static inline json_int_t pg_int(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* A JSON column parsed; NULL or unreadable text is JSON null. Never NULL. */
static inline json_t *pg_json(const PGresult *r, int row, int col)
{
	const char *t = pg_str(r, row, col);
	json_t *v = t ? json_loads(t, JSON_DECODE_ANY, NULL) : NULL;

	return v ? v : json_null();
}

static inline json_t *pg_ms(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? json_null() : json_integer(pg_int(r, row, col));
}

/* Runs prepared statement i. fmt names each parameter: 's' a string (NULL: SQL NULL), 'I' an
 * int64_t, 'M' an int64_t time (0 or less: NULL), 'i' an int. *res (may be NULL) gets the
 * result, which the caller PQclears. Returns the rows a query returned or a command touched,
 * or a negative OUTPOST_E_* (a unique violation: CONFLICT; the server gone: UNAVAILABLE, and
 * the next call reconnects). Outside a transaction it connects first if need be. */
int pg_run(struct pg *p, enum pst i, PGresult **res, const char *fmt, ...);

/* A write transaction. Every one takes the same transaction-scoped advisory lock first, so
 * writers queue as SQLite's BEGIN IMMEDIATE makes them (hubs sharing the database included)
 * and the read-then-write steps below need no retry loop. */
int pg_tx_begin(struct pg *p);
int pg_tx_commit(struct pg *p); /* rolls back on failure */
void pg_tx_rollback(struct pg *p);

/* Appends the text of every row's column 0 of r to arr. */
int pg_push_col(json_t *arr, const PGresult *r);

/* Shared between the parts. Inside a transaction. */
int pg_event_add(struct pg *p, const char *host_id, const char *kind, const char *detail,
                 int64_t now_ms);
int pg_seq_next(struct pg *p, const char *task_id, int64_t *seq);
int pg_rows_move(struct pg *p, enum pst which, const char *task_id, const char *host_id,
                 int64_t now_ms, int *moved);
int pg_task_settle(struct pg *p, const char *task_id, int64_t now_ms, int *finished);

/* Store ops of store_pg_recs.c (store.h's rec_*). */
int pg_rec_put(struct store *base, const char *kind, const char *id, const json_t *body,
               int64_t due_ms, int64_t now_ms, int only_new);
int pg_rec_get(struct store *base, const char *kind, const char *id, json_t **body);
int pg_rec_list(struct store *base, const char *kind, int limit, json_t **bodies);
int pg_rec_due(struct store *base, const char *kind, int64_t now_ms, int limit, json_t **bodies);
int pg_rec_del(struct store *base, const char *kind, const char *id);
int pg_rec_prune(struct store *base, const char *kind, int64_t before_ms, int limit, int64_t *n);
/* The alert history's statements (store_pg_alerts.c) and ops. */
extern const char *const pg_alerts_sql[PS_COUNT];
int pg_alert_log_add(struct store *base, json_t *entry, int64_t now_ms);
int pg_alert_log_list(struct store *base, const char *rule_id, int limit, json_t **entries);
int pg_alert_log_prune(struct store *base, int64_t before_ms, int limit, int64_t *n);

/* Store ops defined outside store_pg.c (its ops table names them). */
int pg_task_create(struct store *base, json_t *task, json_t *host_ids, json_t **existing);
int pg_task_get(struct store *base, const char *id, int with_hosts, int64_t since, json_t **task);
int pg_task_list(struct store *base, int limit, json_t **tasks);
int pg_task_take(struct store *base, const char *host_id, int64_t now_ms, int limit,
                 json_t **items);
int pg_task_resume(struct store *base, const char *host_id, int64_t now_ms, int limit,
                   json_t **items);
int pg_task_report(struct store *base, const char *task_id, const char *host_id, const char *state,
                   json_t *response, int64_t started_ms, int64_t finished_ms, int *task_done);
int pg_task_cancel(struct store *base, const char *id, int64_t now_ms);
int pg_tasks_expire(struct store *base, int64_t now_ms, json_t **task_ids);
int pg_tasks_advance(struct store *base, int64_t now_ms, json_t **host_ids);
int pg_task_hosts_waiting(struct store *base, const char *task_id, json_t **host_ids);
int pg_token_add(struct store *base, json_t *tok);
int pg_token_find(struct store *base, const char *hash, int64_t now_ms, json_t **tok);
int pg_token_list(struct store *base, json_t **toks);
int pg_token_revoke(struct store *base, const char *id);

#endif
