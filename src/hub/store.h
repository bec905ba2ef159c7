/* The hub's persistence, behind one interface with two implementations: SQLite (embedded,
 * store_sqlite.c) and PostgreSQL (scale mode, later). SQL lives only behind it. Rows travel as
 * JSON objects in the shapes of docs/protocol.md, so the API layer hands them on unchanged.
 * Every function returns 0 or a negative OUTPOST_E_* code; results come back as new
 * references the caller releases. All functions are safe to call from any one thread at a
 * time per handle (the hub calls them from its loop thread). */
#ifndef OUTPOST_HUB_STORE_H
#define OUTPOST_HUB_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* Host states. */
#define HOST_UP "up"
#define HOST_DOWN "down"
#define HOST_PENDING "pending"
#define HOST_REVOKED "revoked"
#define HOST_REJECTED "rejected" /* a pending host an operator refused; kept so it stays so */

/* What checking an agent's signature needs (host_key): no facts, no labels. */
struct store_host_key {
	char pubkey[64]; /* base64 of the 32-byte Ed25519 public key */
	char state[16];  /* HOST_* */
	int64_t last_seen_ms;
};

struct store_enroll {
	const char *host_id;
	const char *pubkey; /* base64 of the 32-byte Ed25519 public key */
	const char *hostname;
	const char *version;
	json_t *facts;  /* borrowed; may be NULL */
	json_t *labels; /* borrowed; from the enrollment token; may be NULL */
	int accept;     /* 1: state up at once (valid token); 0: pending */
	int64_t now_ms;
	/* With accept: the token's id, whose use is counted in the same transaction (refused
	 * with OUTPOST_E_UNAUTHORIZED when none is left). NULL: no use counted. */
	const char *token_id;
	/* Without accept, a new host is refused with OUTPOST_E_BUSY when there are already
	 * pending_max pending hosts (*refused = ENROLL_CAP_TOTAL), or pending_per_addr from
	 * addr (ENROLL_CAP_ADDR); 0: no bound. */
	const char *addr;
	int64_t pending_max, pending_per_addr;
	int *refused;  /* out, may be NULL */
	int *replaced; /* out, may be NULL: 1 when a pending host of another key was replaced */
};

enum { ENROLL_CAP_TOTAL = 1, ENROLL_CAP_ADDR = 2 };

/* A filter of events_list: NULL and 0 filter nothing. */
struct store_events_query {
	const char *host_id;    /* one host */
	const json_t *host_ids; /* an array of host ids (a selector's matches; empty: none) */
	const char *kind;       /* that kind, or the kinds under it: "security" takes security.* */
	int64_t since_ms;       /* at_ms >= since_ms */
	int64_t until_ms;       /* at_ms < until_ms */
	int64_t before_id;      /* paging: ids below it */
	int limit;
};

struct store_ops {
	const char *name; /* "sqlite", "postgresql" */
	void (*close)(struct store *s);

	/* ---- hosts ---- */
	/* New host, or the existing one when id and key match (idempotent; *host is the current
	 * row). Another key: OUTPOST_E_CONFLICT, except that a valid token (accept) replaces a
	 * pending host's key (*replaced, event "replaced"). A revoked or rejected id, whatever the
	 * key: OUTPOST_E_FORBIDDEN. An event "enrolled" is recorded for a new host. */
	int (*host_enroll)(struct store *s, const struct store_enroll *e, json_t **host);
	/* One host with its facts and pubkey; OUTPOST_E_NOT_FOUND. */
	int (*host_get)(struct store *s, const char *id, json_t **host);
	/* One host's key, state and last contact, for every agent request: no JSON built.
	 * OUTPOST_E_NOT_FOUND. */
	int (*host_key)(struct store *s, const char *id, struct store_host_key *out);
	/* All hosts, without facts but with a flattened "attrs" object of facts (for selectors):
	 * an array sorted by id. */
	int (*host_list)(struct store *s, json_t **hosts);
	/* host_list's hosts whose id sorts after after_id ("": from the first), at most limit: a
	 * walk over every host a page at a time (the rules' snapshot, in slices). */
	int (*host_page)(struct store *s, const char *after_id, int limit, json_t **hosts);
	/* Sets the state (accept: pending or rejected->up; reject: pending->rejected; revoke:
	 * any->revoked), records an event with reason; the same state again changes nothing. A
	 * change not allowed (out of revoked, rejecting an accepted host): OUTPOST_E_CONFLICT.
	 * Revoked and rejected hosts' queued and sent rows are cancelled. */
	int (*host_set_state)(struct store *s, const char *id, const char *state,
	                      const char *reason, int64_t now_ms);
	int (*host_remove)(struct store *s, const char *id);
	/* set: {k: v} to add or change, remove: [k] to drop. */
	int (*host_labels)(struct store *s, const char *id, json_t *set, json_t *remove);
	/* A beat: last_seen = now, version, facts when not NULL; a down host becomes up (event).
	 * *was_down tells whether it was down. */
	int (*host_seen)(struct store *s, const char *id, int64_t now_ms, const char *version,
	                 json_t *facts, int *was_down);
	/* Signs of life of many hosts at once (hosts a ZooKeeper session keeps up): last_seen =
	 * now for those of ids (an array of host ids) that are up; one statement. *n: rows
	 * changed (may be NULL). */
	int (*hosts_touch)(struct store *s, json_t *ids, int64_t now_ms, int *n);
	/* Hosts up whose last_seen is older than before_ms become down (an event each), except
	 * those keep (may be NULL) says are alive by other means (a held long-poll); keep only
	 * looks, it must not call the store. *ids gets the array of ids changed. */
	int (*hosts_mark_down)(struct store *s, int64_t before_ms, int64_t now_ms,
	                       int (*keep)(void *arg, const char *id), void *keep_arg,
	                       json_t **ids);
	/* Newest first: [{id, host_id, kind, severity, message?, data?, detail, at_ms, source}]
	 * matching q (struct store_events_query); OUTPOST_E_BAD_ARGS for a limit below 1. */
	int (*events_list)(struct store *s, const struct store_events_query *q, json_t **events);
	/* Stores events of host_id from source ("agent", "api:<caller>"): evs is an array of
	 * checked events (core/event.h) each with an optional "key": an event whose key is
	 * stored already is skipped (the dedupe of replays and repeated posts). at_ms is the
	 * event's ts. One transaction; *stored gets how many were new. */
	int (*events_add)(struct store *s, const char *host_id, const char *source, json_t *evs,
	                  int *stored);

	/* ---- tokens (stored as sha256 hex of the secret; the secret never reaches the store) ----
	 */
	/* tok: {"id", "hash", "kind": "enroll|operator", "role", "labels", "created_ms",
	 * "expires_ms" (0: never), "created_by"}. */
	int (*token_add)(struct store *s, json_t *tok);
	/* By hash; expired or revoked tokens are NOT_FOUND. */
	int (*token_find)(struct store *s, const char *hash, int64_t now_ms, json_t **tok);
	int (*token_list)(struct store *s, json_t **toks); /* without hashes */
	int (*token_revoke)(struct store *s, const char *id);

	/* ---- tasks ---- */
	/* task: {"id", "target", "plugin", "op", "args", "timeout_ms", "created_ms", "expires_ms",
	 * "created_by", "batch_size" (0: all at once), "max_failures" (-1: no limit)}; host_ids:
	 * array of the matched ids in batch order. Per-host rows start queued; batch b of host i
	 * is i / batch_size. A task id that exists: OUTPOST_E_CONFLICT and *existing gets it. */
	int (*task_create)(struct store *s, json_t *task, json_t *host_ids, json_t **existing);
	/* The task with counts, total, seq, state, and (with_hosts) the per-host rows with
	 * seq > since. */
	int (*task_get)(struct store *s, const char *id, int with_hosts, int64_t since,
	                json_t **task);
	int (*task_list)(struct store *s, int limit, json_t **tasks); /* newest first, summaries */
	/* Queued rows of a host whose batch is released, not expired, up to limit, oldest first,
	 * marked sent; *items: [{"task": {task_id, host_id, plugin, op, args, timeout_ms,
	 * issued_ms, expires_ms}}] (the hub signs them). */
	int (*task_take)(struct store *s, const char *host_id, int64_t now_ms, int limit,
	                 json_t **items);
	/* After an agent restart: the rows already handed to host_id that have no final state
	 * (sent, running) of running tasks, in the shape of task_take, unchanged (the agent's
	 * ledger answers them: a replayed result, or lost). */
	int (*task_resume)(struct store *s, const char *host_id, int64_t now_ms, int limit,
	                   json_t **items);
	/* A host's report. Only moves forward (a final state is never overwritten; running after
	 * ok is ignored); a host the task was not sent to: OUTPOST_E_NOT_FOUND. *task_id_done:
	 * set to 1 when this made the whole task finish. */
	int (*task_report)(struct store *s, const char *task_id, const char *host_id,
	                   const char *state, json_t *response, int64_t started_ms,
	                   int64_t finished_ms, int *task_done);
	/* Queued and sent rows become cancelled (sent ones the agent has not started). */
	int (*task_cancel)(struct store *s, const char *id, int64_t now_ms);
	/* Rows queued/sent past expires_ms become expired; *task_ids: tasks touched. */
	int (*tasks_expire)(struct store *s, int64_t now_ms, json_t **task_ids);
	/* Rolling batches: for each running task whose released batch has finished, release the
	 * next one, or cancel the rest when failures > max_failures. *host_ids: hosts that got
	 * newly released rows (to wake their long-polls). */
	int (*tasks_advance)(struct store *s, int64_t now_ms, json_t **host_ids);
	/* Host ids with queued, released rows (to wake long-polls after a restart). */
	int (*task_hosts_waiting)(struct store *s, const char *task_id, json_t **host_ids);

	/* ---- audit ---- */
	int (*audit_add)(struct store *s, const char *actor, const char *action, const char *target,
	                 json_t *detail, int64_t now_ms);
	int (*audit_list)(struct store *s, int limit, json_t **entries); /* newest first */

	/* ---- retention (the hub's background work prunes in slices of limit rows) ---- */
	/* Deletes at most limit of the oldest events / audit entries recorded before before_ms;
	 * *n gets how many (fewer than limit: none older are left). */
	int (*events_prune)(struct store *s, int64_t before_ms, int limit, int64_t *n);
	int (*audit_prune)(struct store *s, int64_t before_ms, int limit, int64_t *n);
	/* Pending hosts not seen since before_ms (enroll.pending_keep_days). */
	int (*pending_prune)(struct store *s, int64_t before_ms, int limit, int64_t *n);
	/* Tasks that ended (done or cancelled; never a running one) before before_ms, oldest end
	 * first, with their per-host rows: at most limit rows in all, a task's rows first and the
	 * task once none is left. *tasks and *copies get how many of each were deleted; fewer
	 * than limit in all: none older is left. */
	int (*tasks_prune)(struct store *s, int64_t before_ms, int limit, int64_t *tasks,
	                   int64_t *copies);

	/* ---- records: automation's small JSON documents by kind and id (flow definitions
	 * "flow", flow runs "flow_run", queued mail "mail", the report's schedule "report", rules
	 * "rule", current alerts "alert", silences "silence"; see flows.c, mail.c, report.c,
	 * rules.c). due_ms > 0: the hub's tick looks at it from then on. ---- */
	/* Writes body (an object) under (kind, id). only_new: an id that exists is
	 * OUTPOST_E_CONFLICT and changes nothing; else it is replaced. */
	int (*rec_put)(struct store *s, const char *kind, const char *id, const json_t *body,
	               int64_t due_ms, int64_t now_ms, int only_new);
	/* The body; OUTPOST_E_NOT_FOUND. */
	int (*rec_get)(struct store *s, const char *kind, const char *id, json_t **body);
	/* Bodies of kind, the latest written first, at most limit. */
	int (*rec_list)(struct store *s, const char *kind, int limit, json_t **bodies);
	/* Bodies of kind with 0 < due_ms <= now_ms, the earliest due first, at most limit. */
	int (*rec_due)(struct store *s, const char *kind, int64_t now_ms, int limit,
	               json_t **bodies);
	/* OUTPOST_E_NOT_FOUND when there is none. */
	int (*rec_del)(struct store *s, const char *kind, const char *id);
	/* Deletes at most limit records of kind that are not due (due_ms 0: ended) and were last
	 * written before before_ms, the oldest first; *n gets how many. */
	int (*rec_prune)(struct store *s, const char *kind, int64_t before_ms, int limit,
	                 int64_t *n);

	/* ---- automation (rules.c): rules, current alerts and silences are records of kinds
	 * "rule", "alert" and "silence" (above); here the alert history ---- */
	/* One history entry: {"rule_id", "host_id" (may be absent), "kind", "detail"}. */
	int (*alert_log_add)(struct store *s, json_t *entry, int64_t now_ms);
	/* Newest first: [{id, at_ms, rule_id, host_id, kind, detail}]; rule_id NULL: all rules. */
	int (*alert_log_list)(struct store *s, const char *rule_id, int limit, json_t **entries);
	/* As events_prune, for the alert history. */
	int (*alert_log_prune)(struct store *s, int64_t before_ms, int limit, int64_t *n);

	/* ---- batches: the writes of one slice of background work as one transaction ----
	 * Between batch_begin and batch_end every call joins one transaction, each call still
	 * all or nothing inside it (a savepoint): a slice that stores hundreds of small documents
	 * commits once instead of hundreds of times. batch_end commits; when that fails the
	 * whole batch is undone and its error returned. A batch is opened and ended within one
	 * turn of the loop, is not nested (OUTPOST_E_CONFLICT), and holds the write lock as a
	 * call does (other writers, other hubs' too, wait for its end). What lets anything leave
	 * the hub (a task agents will run) is written after batch_end, on its own. */
	int (*batch_begin)(struct store *s);
	int (*batch_end)(struct store *s); /* no batch open: 0 */

	/* ---- counts for /metrics ---- */
	/* {"hosts": {"up":N,...}, "tasks_running": N, "queue_depth": N} */
	int (*stats)(struct store *s, json_t **stats);

	/* The metrics side of this store (above); borrowed, lives as long as the store. */
	struct mstore *(*metrics)(struct store *s);
};

struct store {
	const struct store_ops *ops;
};

/* ---- metrics: the time-series store's persistence (tsdb.c is its only caller) ----
 * Kept apart from the registry (SQLite: its own database file, metrics.db) so that ingest's
 * write rate never holds up hosts and tasks. Chunks are rows keyed by (series, window start)
 * per resolution; a raw chunk is sealed when its window is complete, and rolled once its
 * rollups have been written. The log holds samples appended since the last checkpoint of the
 * open heads, so that a restart loses nothing the hub has acknowledged. */
struct mstore;

struct mstore_chunk {
	uint32_t series;
	int64_t start_ms; /* the window's start (its key) */
	int64_t end_ms;   /* the window's end (exclusive) */
	uint32_t count;   /* samples or points */
	int sealed;       /* raw only */
	const uint8_t *data;
	size_t len; /* borrowed for the callback */
};

typedef int (*mstore_chunk_fn)(void *arg, const struct mstore_chunk *c);
typedef int (*mstore_series_fn)(void *arg, uint32_t id, const char *host, const char *key,
                                int64_t first_ms, int64_t rolled_ms);
typedef int (*mstore_seq_fn)(void *arg, const char *host, const char *epoch, int64_t seq);
typedef int (*mstore_log_fn)(void *arg, int64_t id, const uint8_t *p, size_t len);
/* One logged sample; mine: this hub wrote it (shared stores). */
typedef int (*mstore_sample_fn)(void *arg, uint32_t series, int64_t t, double v, int mine);

/* A log entry (log_add's p) is a run of MSTORE_LOG_REC-byte records: u32 series, i64 t, f64 v,
 * little-endian. The SQLite store keeps it as one blob; the PostgreSQL store as one row per
 * sample, which the other hubs sharing the database read (log_since, log_range). */
#define MSTORE_LOG_REC 20

/* Callbacks return 0 to go on, nonzero to stop (which the call then returns). */
struct mstore_ops {
	int (*begin)(struct mstore *m);
	int (*commit)(struct mstore *m); /* rolls back on failure */
	void (*rollback)(struct mstore *m);

	int (*series_each)(struct mstore *m, mstore_series_fn fn, void *arg);
	int (*series_add)(struct mstore *m, uint32_t id, const char *host, const char *key,
	                  int64_t first_ms);
	/* Rollups exist up to rolled_ms (exclusive) for this series. */
	int (*series_rolled)(struct mstore *m, uint32_t id, int64_t rolled_ms);

	/* Ingest dedupe: each host's agent database (epoch) and the last batch stored. */
	int (*seq_each)(struct mstore *m, mstore_seq_fn fn, void *arg);
	int (*seq_put)(struct mstore *m, const char *host, const char *epoch, int64_t seq);

	int (*log_add)(struct mstore *m, const uint8_t *p, size_t len, int64_t *id);
	int (*log_each)(struct mstore *m, int64_t after_id, mstore_log_fn fn, void *arg);
	int (*log_trim)(struct mstore *m, int64_t upto_id); /* drops ids <= upto_id */

	/* Insert or replace by (res, series, start_ms). */
	int (*chunk_put)(struct mstore *m, int res, const struct mstore_chunk *c);
	/* The chunk at (res, series, start_ms): fn once, or OUTPOST_E_NOT_FOUND. */
	int (*chunk_get)(struct mstore *m, int res, uint32_t series, int64_t start_ms,
	                 mstore_chunk_fn fn, void *arg);
	/* Chunks of a series overlapping [from, to), oldest first. */
	int (*chunk_range)(struct mstore *m, int res, uint32_t series, int64_t from, int64_t to,
	                   mstore_chunk_fn fn, void *arg);
	/* The newest raw chunk of every series (to rebuild the heads). */
	int (*chunk_latest)(struct mstore *m, mstore_chunk_fn fn, void *arg);
	/* Sealed raw chunks whose rollups are not written yet, oldest first, at most limit. */
	int (*chunk_unrolled)(struct mstore *m, int limit, mstore_chunk_fn fn, void *arg);
	int (*chunk_mark_rolled)(struct mstore *m, uint32_t series, int64_t start_ms);
	/* Deletes at most limit chunks of res that end before before_ms (raw: rolled ones only);
	 * *n gets how many. */
	int (*chunk_expire)(struct mstore *m, int res, int64_t before_ms, int limit, int64_t *n);
	/* {"file_bytes", "free_bytes", "chunks": [raw, 1m, 1h], "chunk_bytes": [...],
	 * "samples": [...], "series", "log_rows"}: for /metrics and the benches. */
	int (*stats)(struct mstore *m, json_t **out);

	/* ---- Shared stores only (several hubs on one database); NULL on a store of one hub.
	 * The log is every hub's: log_add writes this hub's entries, log_each and log_trim see
	 * only this hub's. ---- */
	/* A block of series ids that no other hub gets: [*first, *first + *n). */
	int (*series_block)(struct mstore *m, uint32_t *first, uint32_t *n);
	/* Series added (by any hub) after position after, in the order they were added; *last
	 * gets the position to ask from next time (unchanged when none). */
	int (*series_since)(struct mstore *m, int64_t after, mstore_series_fn fn, void *arg,
	                    int64_t *last);
	/* Every hub's logged samples after position after, in the order they were committed. */
	int (*log_since)(struct mstore *m, int64_t after, mstore_sample_fn fn, void *arg,
	                 int64_t *last);
	/* The other hubs' logged samples of one series with from <= t < to, by t (this hub's
	 * own are always in its open chunks or in the rows: it trims them only once written). */
	int (*log_range)(struct mstore *m, uint32_t series, int64_t from, int64_t to,
	                 mstore_sample_fn fn, void *arg);
	/* One host's dedupe mark as stored (epoch: cap >= 17 bytes); OUTPOST_E_NOT_FOUND. */
	int (*seq_get)(struct mstore *m, const char *host, char *epoch, size_t cap, int64_t *seq);
	/* seq_put, only while the stored mark is still (old_epoch, old_seq) ("" and 0: none):
	 * OUTPOST_E_CONFLICT when another hub moved it meanwhile. */
	int (*seq_swap)(struct mstore *m, const char *host, const char *old_epoch, int64_t old_seq,
	                const char *epoch, int64_t seq);
};

struct mstore {
	const struct mstore_ops *ops;
};

/* The SQLite store in <state_dir>/hub.db (WAL, versioned migrations). */
int store_sqlite_open(const char *state_dir, struct store **out, char *msg, size_t msglen);

#endif
