/* Tasks in hub.db: creation and fan-out rows, handing copies to hosts, results, cancel, expiry
 * and rolling batches (store.h). Part of the SQLite store (store_sqlite_int.h). */
#include "store_sqlite_int.h"
#include "core/clk.h"

#include <stdio.h>

#define TASK_COLS                                                                                  \
	"id, target, plugin, op, args, timeout_ms, created_ms, expires_ms, created_by, "           \
	"batch_size, max_failures, released_batch, last_batch, state, "                            \
	"(SELECT coalesce(max(seq), 0) FROM task_hosts WHERE task_id = tasks.id)"

/* The tasks' statements (slots of store_sqlite_int.h), prepared at open. */
const char *const sq_tasks_sql[ST_COUNT] = {
    [ST_TASK_ADD] = "INSERT INTO tasks(id, target, plugin, op, args, timeout_ms, created_ms, "
                    "expires_ms, created_by, batch_size, max_failures, last_batch, state) "
                    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    /* Every row in one statement from the JSON array of ids (?3), batch = index / size (?2):
     * half the time of a statement per row. Rows keep the array's order (rowid). */
    [ST_TASK_ROW_ADD] = "INSERT INTO task_hosts(task_id, host_id, batch, state, seq) "
                        "SELECT ?1, value, iif(?2 > 0, key / ?2, 0), 'queued', 1 "
                        "FROM json_each(?3)",
    [ST_TASK_GET] = "SELECT " TASK_COLS " FROM tasks WHERE id = ?1",
    [ST_TASK_LIST] = "SELECT " TASK_COLS " FROM tasks ORDER BY created_ms DESC, rowid DESC "
                     "LIMIT ?1",
    [ST_TASK_COUNTS] = "SELECT state, count(*) FROM task_hosts WHERE task_id = ?1 "
                       "GROUP BY state",
    [ST_TASK_ROWS] = "SELECT host_id, state, response, started_ms, finished_ms, seq, batch "
                     "FROM task_hosts WHERE task_id = ?1 AND seq > ?2 ORDER BY rowid",
    [ST_TASK_STATE] = "SELECT state FROM tasks WHERE id = ?1",
    [ST_TASK_SEQ_NEXT] = "SELECT coalesce(max(seq), 0) + 1 FROM task_hosts WHERE task_id = ?1",
    [ST_TASK_OPEN] = "SELECT 1 FROM task_hosts WHERE task_id = ?1 AND " OPEN("") " LIMIT 1",
    [ST_TASK_FINISH] = "UPDATE tasks SET state = iif(cancelled_ms IS NULL, 'done', "
                       "'cancelled'), ended_ms = ?2 WHERE id = ?1 AND state = 'running'",
    [ST_TASK_CANCEL] = "UPDATE tasks SET cancelled_ms = coalesce(cancelled_ms, ?2) "
                       "WHERE id = ?1",
    [ST_TAKE] =
        "SELECT th.task_id, t.plugin, t.op, t.args, t.timeout_ms, t.expires_ms "
        "FROM task_hosts th JOIN tasks t ON t.id = th.task_id "
        "WHERE th.host_id = ?1 AND " WAIT("th.") " AND th.state = 'queued' "
                                                 "AND th.batch <= t.released_batch "
                                                 "AND t.state = 'running' AND t.expires_ms > ?2 "
                                                 "ORDER BY t.created_ms, t.rowid LIMIT ?3",
    /* Only at an agent's start: no index on (host_id, state) for running rows is worth it. */
    [ST_RESUME] = "SELECT th.task_id, t.plugin, t.op, t.args, t.timeout_ms, t.expires_ms "
                  "FROM task_hosts th JOIN tasks t ON t.id = th.task_id "
                  "WHERE th.host_id = ?1 AND th.state IN ('sent', 'running') "
                  "AND t.state = 'running' ORDER BY t.created_ms, t.rowid LIMIT ?3",
    [ST_TAKE_MARK] = "UPDATE task_hosts SET state = 'sent', seq = ?3 "
                     "WHERE task_id = ?1 AND host_id = ?2 AND state = 'queued'",
    [ST_ROW_STATE] = "SELECT state FROM task_hosts WHERE task_id = ?1 AND host_id = ?2",
    [ST_ROW_REPORT] = "UPDATE task_hosts SET state = ?3, response = ?4, "
                      "started_ms = coalesce(?5, started_ms), finished_ms = ?6, seq = ?7 "
                      "WHERE task_id = ?1 AND host_id = ?2",
    [ST_ROWS_CANCEL] = ROWS_MOVE("cancelled") "WHERE task_id = ?1 AND " OPEN("") " AND " WAIT(""),
    [ST_ROWS_CANCEL_QUEUED] =
        ROWS_MOVE("cancelled") "WHERE task_id = ?1 AND " OPEN("") " AND "
                                                                  "state = 'queued'",
    [ST_ROWS_EXPIRE] = ROWS_MOVE("expired") "WHERE task_id = ?1 AND " OPEN("") " AND " WAIT(""),
    [ST_ROWS_LOSE] = ROWS_MOVE("lost") "WHERE task_id = ?1 AND " OPEN("") " AND "
                                                                          "state = 'running'",
    [ST_EXPIRE_TASKS] = "SELECT id, expires_ms, timeout_ms FROM tasks "
                        "WHERE state = 'running' AND expires_ms <= ?1 ORDER BY expires_ms, id",
    [ST_ADVANCE_TASKS] = "SELECT id, max_failures, released_batch, last_batch FROM tasks "
                         "WHERE state = 'running' AND released_batch < last_batch",
    [ST_BATCH_OPEN] =
        "SELECT 1 FROM task_hosts WHERE task_id = ?1 AND " OPEN("") " AND batch <= ?2 LIMIT 1",
    [ST_TASK_FAILURES] = "SELECT count(*) FROM task_hosts WHERE task_id = ?1 AND "
                         "state IN ('failed', 'timeout', 'lost', 'refused')",
    [ST_TASK_RELEASE] = "UPDATE tasks SET released_batch = ?2 WHERE id = ?1",
    [ST_BATCH_HOSTS] = "SELECT host_id FROM task_hosts WHERE task_id = ?1 AND batch = ?2 AND " OPEN(
        "") " AND state = 'queued' ORDER BY rowid",
    [ST_WAITING_TASK] =
        "SELECT th.host_id FROM task_hosts th JOIN tasks t ON t.id = "
        "th.task_id WHERE th.task_id = ?1 AND " OPEN(
            "th.") " AND th.state = "
                   "'queued' AND th.batch <= t.released_batch AND t.state = 'running' "
                   "ORDER BY th.rowid",
    [ST_WAITING_ALL] = "SELECT DISTINCT th.host_id FROM tasks t JOIN task_hosts th ON "
                       "th.task_id = t.id AND " OPEN(
                           "th.") " AND th.state = 'queued' AND "
                                  "th.batch <= t.released_batch WHERE t.state = 'running' "
                                  "ORDER BY th.host_id",
};

/* The seq for a task's next change (see the schema notes). */
int sq_seq_next(struct sq *s, const char *task_id, int64_t *seq)
{
	sqlite3_stmt *st = stmt(s, ST_TASK_SEQ_NEXT);
	int rc;

	bind_str(st, 1, task_id);
	rc = db_step(st);
	*seq = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc < 0 ? rc : 0;
}

/* Moves rows of one task that stmt `which` selects (?1 task, ?2 seq, ?3 now, ?4 host_id) to
 * its state, all with one new seq; *moved counts them. Inside a transaction. */
int sq_rows_move(struct sq *s, enum st which, const char *task_id, const char *host_id,
                 int64_t now_ms, int *moved)
{
	sqlite3_stmt *st;
	int64_t seq;
	int rc;

	*moved = 0;
	if ((rc = sq_seq_next(s, task_id, &seq)) < 0)
		return rc;
	st = stmt(s, which);
	bind_str(st, 1, task_id);
	sqlite3_bind_int64(st, 2, seq);
	sqlite3_bind_int64(st, 3, now_ms);
	if (host_id)
		bind_str(st, 4, host_id);
	if ((rc = db_run(st)) < 0)
		return rc;
	*moved = sqlite3_changes(s->db);
	return 0;
}

/* Ends a running task whose rows are all final: done, or cancelled after task_cancel; now_ms
 * is its end (retention counts from it). *finished (may be NULL) is 1 when this call ended
 * it. Inside a transaction. */
int sq_task_settle(struct sq *s, const char *task_id, int64_t now_ms, int *finished)
{
	sqlite3_stmt *st = stmt(s, ST_TASK_OPEN);
	int rc;

	if (finished)
		*finished = 0;
	bind_str(st, 1, task_id);
	rc = db_step(st);
	sqlite3_reset(st);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	st = stmt(s, ST_TASK_FINISH);
	bind_str(st, 1, task_id);
	sqlite3_bind_int64(st, 2, now_ms);
	if ((rc = db_run(st)) < 0)
		return rc;
	if (finished)
		*finished = sqlite3_changes(s->db) > 0;
	return 0;
}

/* ---- Tasks ---- */

/* The task of the current row (TASK_COLS) with counts and total, and with the per-host rows
 * changed after since when with_hosts. */
static int task_json(struct sq *s, sqlite3_stmt *row, int with_hosts, int64_t since, json_t **out)
{
	sqlite3_stmt *st;
	json_t *t, *counts = json_object(), *hosts = NULL;
	const char *id = col_str(row, 0);
	json_int_t total = 0;
	int rc = 0;

	*out = NULL;
	t = json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:s?, s:I, s:I, s:I, s:I, s:s, "
	              "s:I}",
	              "id", id, "target", col_str(row, 1), "plugin", col_str(row, 2), "op",
	              col_str(row, 3), "args", col_json(row, 4), "timeout_ms", col_int(row, 5),
	              "created_ms", col_int(row, 6), "expires_ms", col_int(row, 7), "created_by",
	              col_str(row, 8), "batch_size", col_int(row, 9), "max_failures",
	              col_int(row, 10), "released_batch", col_int(row, 11), "last_batch",
	              col_int(row, 12), "state", col_str(row, 13), "seq", col_int(row, 14));
	if (!t || !counts)
		goto oom;
	for (int i = 0; i < ROW_NSTATES; i++)
		if (json_object_set_new(counts, row_states[i], json_integer(0)))
			goto oom;
	st = stmt(s, ST_TASK_COUNTS);
	bind_str(st, 1, id);
	while ((rc = db_step(st)) == 1) {
		json_int_t n = col_int(st, 1);
		total += n;
		if (json_object_set_new(counts, col_str(st, 0), json_integer(n)))
			rc = OUTPOST_E_INTERNAL;
	}
	sqlite3_reset(st);
	if (rc < 0)
		goto fail;
	if (json_object_set_new(t, "counts", counts) ||
	    json_object_set_new(t, "total", json_integer(total))) {
		counts = NULL;
		goto oom;
	}
	counts = NULL;
	if (with_hosts) {
		if (!(hosts = json_array()) || json_object_set_new(t, "hosts", hosts))
			goto oom;
		st = stmt(s, ST_TASK_ROWS);
		bind_str(st, 1, id);
		sqlite3_bind_int64(st, 2, since);
		while ((rc = db_step(st)) == 1) {
			json_t *h = json_pack("{s:s, s:s, s:o, s:o, s:o, s:I, s:I}", "host_id",
			                      col_str(st, 0), "state", col_str(st, 1), "response",
			                      col_json(st, 2), "started_ms", col_ms(st, 3),
			                      "finished_ms", col_ms(st, 4), "seq", col_int(st, 5),
			                      "batch", col_int(st, 6));
			if (!h || json_array_append_new(hosts, h)) {
				rc = OUTPOST_E_INTERNAL;
				break;
			}
		}
		sqlite3_reset(st);
		if (rc < 0)
			goto fail;
	}
	*out = t;
	return 0;
oom:
	rc = OUTPOST_E_INTERNAL;
fail:
	json_decref(counts);
	json_decref(t);
	return rc;
}

static int task_fetch(struct sq *s, const char *id, int with_hosts, int64_t since, json_t **out)
{
	sqlite3_stmt *st = stmt(s, ST_TASK_GET);
	int rc;

	*out = NULL;
	bind_str(st, 1, id);
	rc = db_step(st);
	if (rc == 1)
		rc = task_json(s, st, with_hosts, since, out);
	else if (rc == 0)
		rc = OUTPOST_E_NOT_FOUND;
	sqlite3_reset(st);
	return rc;
}

/* An integer member: absent gives dflt (required: BAD_ARGS), else at least min. */
static int get_int(const json_t *o, const char *key, int required, json_int_t dflt, json_int_t min,
                   json_int_t *out)
{
	json_t *v = json_object_get(o, key);

	*out = dflt;
	if (!v)
		return required ? OUTPOST_E_BAD_ARGS : 0;
	if (!json_is_integer(v) || json_integer_value(v) < min)
		return OUTPOST_E_BAD_ARGS;
	*out = json_integer_value(v);
	return 0;
}

int sq_task_create(struct store *base, json_t *task, json_t *host_ids, json_t **existing)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	const char *id = json_string_value(json_object_get(task, "id"));
	const char *target = json_string_value(json_object_get(task, "target"));
	const char *plugin = json_string_value(json_object_get(task, "plugin"));
	const char *op = json_string_value(json_object_get(task, "op"));
	json_t *args = json_object_get(task, "args"), *by = json_object_get(task, "created_by"), *v;
	json_int_t timeout, created, expires, bsize, maxf, n;
	char *atext = NULL, *htext = NULL;
	size_t i;
	int rc;

	if (existing)
		*existing = NULL;
	if (!nonempty(id) || !target || !nonempty(plugin) || !nonempty(op) ||
	    (by && !json_is_null(by) && !json_is_string(by)) || !json_is_array(host_ids) ||
	    get_int(task, "timeout_ms", 1, 0, 1, &timeout) ||
	    get_int(task, "created_ms", 1, 0, 0, &created) ||
	    get_int(task, "expires_ms", 1, 0, 1, &expires) ||
	    get_int(task, "batch_size", 0, 0, 0, &bsize) ||
	    get_int(task, "max_failures", 0, -1, -1, &maxf))
		return OUTPOST_E_BAD_ARGS;
	json_array_foreach(host_ids, i, v)
	{
		if (!nonempty(json_string_value(v)))
			return OUTPOST_E_BAD_ARGS;
	}
	n = (json_int_t)json_array_size(host_ids);
	if (!(atext = text_or_empty(args, 0)) || !(htext = text_of(host_ids, 0))) {
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	if ((rc = tx_begin(s)) < 0)
		goto out;
	st = stmt(s, ST_TASK_STATE);
	bind_str(st, 1, id);
	rc = db_step(st);
	sqlite3_reset(st);
	if (rc != 0) {
		tx_rollback(s);
		if (rc == 1) {
			rc = OUTPOST_E_CONFLICT;
			if (existing && task_fetch(s, id, 1, 0, existing) < 0)
				rc = OUTPOST_E_INTERNAL;
		}
		goto out;
	}
	st = stmt(s, ST_TASK_ADD);
	bind_str(st, 1, id);
	bind_str(st, 2, target);
	bind_str(st, 3, plugin);
	bind_str(st, 4, op);
	bind_str(st, 5, atext);
	sqlite3_bind_int64(st, 6, timeout);
	sqlite3_bind_int64(st, 7, created);
	sqlite3_bind_int64(st, 8, expires);
	bind_str(st, 9, json_string_value(by));
	sqlite3_bind_int64(st, 10, bsize);
	sqlite3_bind_int64(st, 11, maxf);
	sqlite3_bind_int64(st, 12, n > 0 && bsize > 0 ? (n - 1) / bsize : 0);
	bind_str(st, 13, n > 0 ? "running" : "done");
	if ((rc = db_run(st)) < 0)
		goto fail;
	st = stmt(s, ST_TASK_ROW_ADD);
	bind_str(st, 1, id);
	sqlite3_bind_int64(st, 2, bsize);
	bind_str(st, 3, htext);
	if ((rc = db_run(st)) < 0) {
		if (rc == OUTPOST_E_CONFLICT) /* the same host twice */
			rc = OUTPOST_E_BAD_ARGS;
		goto fail;
	}
	rc = tx_commit(s);
	goto out;
fail:
	tx_rollback(s);
out:
	free(atext);
	free(htext);
	return rc;
}

int sq_task_get(struct store *base, const char *id, int with_hosts, int64_t since, json_t **task)
{
	return task_fetch(sq_of(base), id, with_hosts, since, task);
}

int sq_task_list(struct store *base, int limit, json_t **tasks)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	json_t *arr;
	int rc = 0;

	*tasks = NULL;
	if (limit < 1)
		return OUTPOST_E_BAD_ARGS;
	if (!(arr = json_array()))
		return OUTPOST_E_INTERNAL;
	st = stmt(s, ST_TASK_LIST);
	sqlite3_bind_int(st, 1, limit);
	while (rc == 0 && (rc = db_step(st)) == 1) {
		json_t *t;
		if ((rc = task_json(s, st, 0, 0, &t)) == 0 && json_array_append_new(arr, t))
			rc = OUTPOST_E_INTERNAL;
	}
	sqlite3_reset(st);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*tasks = arr;
	return 0;
}

/* The rows of ST_TAKE or ST_RESUME (?1 host, ?2 now, ?3 limit) as unsigned task items. */
static int rows_to_items(struct sq *s, enum st which, const char *host_id, int64_t now_ms,
                         int limit, json_t *arr)
{
	sqlite3_stmt *st = stmt(s, which);
	int rc = 0;

	bind_str(st, 1, host_id);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int(st, 3, limit);
	while (rc == 0 && (rc = db_step(st)) == 1) {
		json_t *t =
		    json_pack("{s:{s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I}}", "task", "task_id",
		              col_str(st, 0), "host_id", host_id, "plugin", col_str(st, 1), "op",
		              col_str(st, 2), "args", col_json(st, 3), "timeout_ms", col_int(st, 4),
		              "issued_ms", (json_int_t)now_ms, "expires_ms", col_int(st, 5));
		rc = t && json_array_append_new(arr, t) == 0 ? 0 : OUTPOST_E_INTERNAL;
	}
	sqlite3_reset(st);
	return rc;
}

int sq_task_take(struct store *base, const char *host_id, int64_t now_ms, int limit, json_t **items)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	json_t *arr, *v;
	size_t i;
	int rc = 0;

	*items = NULL;
	if (!host_id || limit < 1)
		return OUTPOST_E_BAD_ARGS;
	if (!(arr = json_array()))
		return OUTPOST_E_INTERNAL;
	/* Read first: most polls find nothing and need no write transaction. */
	rc = rows_to_items(s, ST_TAKE, host_id, now_ms, limit, arr);
	if (rc < 0 || json_array_size(arr) == 0)
		goto out;
	if ((rc = tx_begin(s)) < 0)
		goto out;
	for (i = 0; i < json_array_size(arr);) {
		const char *tid;
		int64_t seq;
		v = json_object_get(json_array_get(arr, i), "task");
		tid = json_string_value(json_object_get(v, "task_id"));
		if ((rc = sq_seq_next(s, tid, &seq)) < 0)
			goto fail;
		st = stmt(s, ST_TAKE_MARK);
		bind_str(st, 1, tid);
		bind_str(st, 2, host_id);
		sqlite3_bind_int64(st, 3, seq);
		if ((rc = db_run(st)) < 0)
			goto fail;
		if (sqlite3_changes(s->db) == 0) /* taken since the read: not ours to hand out */
			json_array_remove(arr, i);
		else
			i++;
	}
	rc = tx_commit(s);
	goto out;
fail:
	tx_rollback(s);
out:
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*items = arr;
	return 0;
}

int sq_task_resume(struct store *base, const char *host_id, int64_t now_ms, int limit,
                   json_t **items)
{
	struct sq *s = sq_of(base);
	json_t *arr;
	int rc = 0;

	*items = NULL;
	if (!host_id || limit < 1)
		return OUTPOST_E_BAD_ARGS;
	if (!(arr = json_array()))
		return OUTPOST_E_INTERNAL;
	rc = rows_to_items(s, ST_RESUME, host_id, now_ms, limit, arr);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*items = arr;
	return 0;
}

int sq_task_report(struct store *base, const char *task_id, const char *host_id, const char *state,
                   json_t *response, int64_t started_ms, int64_t finished_ms, int *task_done)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	char *rtext = NULL;
	int64_t seq;
	int rc, to, cur = -1, fin = 0;

	if (task_done)
		*task_done = 0;
	to = str_index(state, row_states, ROW_NSTATES);
	/* What an agent may report: running or a final state of its own (not cancelled). */
	if (!task_id || !host_id || to < RS_RUNNING || strcmp(state, "cancelled") == 0)
		return OUTPOST_E_BAD_ARGS;
	if (to >= RS_FINAL && !(rtext = text_of(response, 0)))
		return OUTPOST_E_INTERNAL;
	if ((rc = tx_begin(s)) < 0)
		goto out;
	st = stmt(s, ST_ROW_STATE);
	bind_str(st, 1, task_id);
	bind_str(st, 2, host_id);
	rc = db_step(st);
	if (rc == 1)
		cur = str_index(col_str(st, 0), row_states, ROW_NSTATES);
	sqlite3_reset(st);
	if (rc < 0)
		goto fail;
	if (cur < RS_SENT) { /* no such row, or never sent */
		rc = OUTPOST_E_NOT_FOUND;
		goto fail;
	}
	/* Forward only: a final state stays; running after running changes nothing. */
	if (cur >= RS_FINAL || (cur == RS_RUNNING && to == RS_RUNNING)) {
		rc = tx_commit(s);
		goto out;
	}
	if ((rc = sq_seq_next(s, task_id, &seq)) < 0)
		goto fail;
	st = stmt(s, ST_ROW_REPORT);
	bind_str(st, 1, task_id);
	bind_str(st, 2, host_id);
	bind_str(st, 3, row_states[to]);
	bind_str(st, 4, rtext);
	bind_ms(st, 5, started_ms);
	bind_ms(st, 6, to >= RS_FINAL ? finished_ms : 0);
	sqlite3_bind_int64(st, 7, seq);
	if ((rc = db_run(st)) < 0)
		goto fail;
	/* The agent's finished_ms is its own clock's: the task's end is the hub's. */
	if (to >= RS_FINAL && (rc = sq_task_settle(s, task_id, clk_real_ms(), &fin)) < 0)
		goto fail;
	if ((rc = tx_commit(s)) == 0 && task_done)
		*task_done = fin;
	goto out;
fail:
	tx_rollback(s);
out:
	free(rtext);
	return rc;
}

int sq_task_cancel(struct store *base, const char *id, int64_t now_ms)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	int rc, moved;

	if (!id)
		return OUTPOST_E_BAD_ARGS;
	if ((rc = tx_begin(s)) < 0)
		return rc;
	st = stmt(s, ST_TASK_STATE);
	bind_str(st, 1, id);
	rc = db_step(st);
	if (rc == 1)
		rc = strcmp(col_str(st, 0), "running") == 0 ? 1 : 0;
	else if (rc == 0)
		rc = OUTPOST_E_NOT_FOUND;
	sqlite3_reset(st);
	if (rc <= 0) { /* a finished task stays as it ended */
		if (rc == 0)
			return tx_commit(s);
		goto fail;
	}
	st = stmt(s, ST_TASK_CANCEL);
	bind_str(st, 1, id);
	sqlite3_bind_int64(st, 2, now_ms);
	if ((rc = db_run(st)) < 0 ||
	    (rc = sq_rows_move(s, ST_ROWS_CANCEL, id, NULL, now_ms, &moved)) < 0 ||
	    (rc = sq_task_settle(s, id, now_ms, NULL)) < 0)
		goto fail;
	return tx_commit(s);
fail:
	tx_rollback(s);
	return rc;
}

/* Also ends rows still running long after expiry (STORE_LOST_GRACE_MS): lost. */
int sq_tasks_expire(struct store *base, int64_t now_ms, json_t **task_ids)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	json_t *due = json_array(), *arr = json_array(), *v;
	size_t i;
	int rc;

	*task_ids = NULL;
	if (!due || !arr) {
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	if ((rc = tx_begin(s)) < 0)
		goto out;
	st = stmt(s, ST_EXPIRE_TASKS);
	sqlite3_bind_int64(st, 1, now_ms);
	while ((rc = db_step(st)) == 1) {
		json_t *t = json_pack("[s, I, I]", col_str(st, 0), col_int(st, 1), col_int(st, 2));
		if (!t || json_array_append_new(due, t)) {
			rc = OUTPOST_E_INTERNAL;
			break;
		}
	}
	sqlite3_reset(st);
	if (rc < 0)
		goto fail;
	json_array_foreach(due, i, v)
	{
		const char *id = json_string_value(json_array_get(v, 0));
		json_int_t lost_at = json_integer_value(json_array_get(v, 1)) +
		                     json_integer_value(json_array_get(v, 2)) + STORE_LOST_GRACE_MS;
		int expired, lost = 0;
		if ((rc = sq_rows_move(s, ST_ROWS_EXPIRE, id, NULL, now_ms, &expired)) < 0 ||
		    (now_ms >= lost_at &&
		     (rc = sq_rows_move(s, ST_ROWS_LOSE, id, NULL, now_ms, &lost)) < 0))
			goto fail;
		if (!expired && !lost)
			continue;
		if ((rc = sq_task_settle(s, id, now_ms, NULL)) < 0)
			goto fail;
		if (json_array_append_new(arr, json_string(id))) {
			rc = OUTPOST_E_INTERNAL;
			goto fail;
		}
	}
	if ((rc = tx_commit(s)) < 0)
		goto out;
	*task_ids = arr;
	arr = NULL;
	goto out;
fail:
	tx_rollback(s);
out:
	json_decref(due);
	json_decref(arr);
	return rc;
}

/* Releases the batches of one task that may go: *woken collects the hosts of new rows. */
static int task_advance(struct sq *s, const char *id, json_int_t maxf, json_int_t released,
                        json_int_t last, int64_t now_ms, json_t *woken)
{
	sqlite3_stmt *st;
	int rc, moved;

	while (released < last) {
		st = stmt(s, ST_BATCH_OPEN);
		bind_str(st, 1, id);
		sqlite3_bind_int64(st, 2, released);
		rc = db_step(st);
		sqlite3_reset(st);
		if (rc != 0) /* the released batches still run */
			return rc < 0 ? rc : 0;
		if (maxf >= 0) {
			st = stmt(s, ST_TASK_FAILURES);
			bind_str(st, 1, id);
			rc = db_step(st);
			json_int_t failed = col_int(st, 0);
			sqlite3_reset(st);
			if (rc < 0)
				return rc;
			if (failed > maxf) {
				if ((rc = sq_rows_move(s, ST_ROWS_CANCEL_QUEUED, id, NULL, now_ms,
				                       &moved)) < 0)
					return rc;
				return sq_task_settle(s, id, now_ms, NULL);
			}
		}
		released++;
		st = stmt(s, ST_TASK_RELEASE);
		bind_str(st, 1, id);
		sqlite3_bind_int64(st, 2, released);
		if ((rc = db_run(st)) < 0)
			return rc;
		st = stmt(s, ST_BATCH_HOSTS);
		bind_str(st, 1, id);
		sqlite3_bind_int64(st, 2, released);
		while ((rc = db_step(st)) == 1) {
			const char *h = col_str(st, 0);
			if (!h || json_object_set_new(woken, h, json_true()))
				rc = OUTPOST_E_INTERNAL;
			if (rc < 0)
				break;
		}
		sqlite3_reset(st);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int sq_tasks_advance(struct store *base, int64_t now_ms, json_t **host_ids)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	json_t *ready = json_array(), *woken = json_object(), *arr = json_array(), *v;
	const char *h;
	size_t i;
	int rc;

	*host_ids = NULL;
	if (!ready || !woken || !arr) {
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	if ((rc = tx_begin(s)) < 0)
		goto out;
	st = stmt(s, ST_ADVANCE_TASKS);
	while ((rc = db_step(st)) == 1) {
		json_t *t = json_pack("[s, I, I, I]", col_str(st, 0), col_int(st, 1),
		                      col_int(st, 2), col_int(st, 3));
		if (!t || json_array_append_new(ready, t)) {
			rc = OUTPOST_E_INTERNAL;
			break;
		}
	}
	sqlite3_reset(st);
	if (rc < 0)
		goto fail;
	json_array_foreach(ready, i, v)
	{
		rc = task_advance(s, json_string_value(json_array_get(v, 0)),
		                  json_integer_value(json_array_get(v, 1)),
		                  json_integer_value(json_array_get(v, 2)),
		                  json_integer_value(json_array_get(v, 3)), now_ms, woken);
		if (rc < 0)
			goto fail;
	}
	if ((rc = tx_commit(s)) < 0)
		goto out;
	json_object_foreach(woken, h, v)
	{
		if (json_array_append_new(arr, json_string(h))) {
			rc = OUTPOST_E_INTERNAL;
			goto out;
		}
	}
	*host_ids = arr;
	arr = NULL;
	goto out;
fail:
	tx_rollback(s);
out:
	json_decref(ready);
	json_decref(woken);
	json_decref(arr);
	return rc;
}

/* task_id NULL: every running task (the wake-up after a restart). */
int sq_task_hosts_waiting(struct store *base, const char *task_id, json_t **host_ids)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	json_t *arr;
	int rc = 0;

	*host_ids = NULL;
	if (task_id) {
		st = stmt(s, ST_TASK_STATE);
		bind_str(st, 1, task_id);
		rc = db_step(st);
		sqlite3_reset(st);
		if (rc <= 0)
			return rc < 0 ? rc : OUTPOST_E_NOT_FOUND;
		rc = 0;
	}
	if (!(arr = json_array()))
		return OUTPOST_E_INTERNAL;
	st = stmt(s, task_id ? ST_WAITING_TASK : ST_WAITING_ALL);
	if (task_id)
		bind_str(st, 1, task_id);
	while (rc == 0 && (rc = db_step(st)) == 1)
		rc = push_col(arr, st, 0);
	sqlite3_reset(st);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*host_ids = arr;
	return 0;
}
