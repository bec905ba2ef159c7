/* Tasks on PostgreSQL: creation and fan-out rows, handing copies to hosts, results, cancel,
 * expiry and rolling batches (store.h), with the SQLite store's semantics. Part of the
 * PostgreSQL store (store_pg_int.h). */
#include "store_pg_int.h"
#include "core/clk.h"

#include <stdio.h>

int pg_seq_next(struct pg *p, const char *task_id, int64_t *seq)
{
	PGresult *r;
	int rc = pg_run(p, PS_TASK_SEQ_NEXT, &r, "s", task_id);

	*seq = 1;
	if (rc < 0)
		return rc;
	*seq = pg_int(r, 0, 0);
	PQclear(r);
	return 0;
}

/* Moves rows of one task that statement `which` selects ($1 task, $2 seq, $3 now, $4 host)
 * to its state, all with one new seq; *moved counts them. Inside a transaction. */
int pg_rows_move(struct pg *p, enum pst which, const char *task_id, const char *host_id,
                 int64_t now_ms, int *moved)
{
	int64_t seq;
	int rc;

	*moved = 0;
	if ((rc = pg_seq_next(p, task_id, &seq)) < 0)
		return rc;
	rc = host_id ? pg_run(p, which, NULL, "sIIs", task_id, seq, now_ms, host_id)
	             : pg_run(p, which, NULL, "sII", task_id, seq, now_ms);
	if (rc < 0)
		return rc;
	*moved = rc;
	return 0;
}

/* Ends a running task whose rows are all final. Inside a transaction. */
int pg_task_settle(struct pg *p, const char *task_id, int64_t now_ms, int *finished)
{
	int rc;

	if (finished)
		*finished = 0;
	if ((rc = pg_run(p, PS_TASK_OPEN, NULL, "s", task_id)) != 0)
		return rc < 0 ? rc : 0;
	if ((rc = pg_run(p, PS_TASK_FINISH, NULL, "sI", task_id, now_ms)) < 0)
		return rc;
	if (finished)
		*finished = rc > 0;
	return 0;
}

/* ---- Tasks ---- */

/* The task of row i of r (TASK_COLS) with counts and total, and the per-host rows changed
 * after since when with_hosts. */
static int task_json(struct pg *p, const PGresult *row, int i, int with_hosts, int64_t since,
                     json_t **out)
{
	json_t *t, *counts = json_object(), *hosts = NULL;
	const char *id = pg_str(row, i, 0);
	json_int_t total = 0;
	PGresult *r;
	int rc = 0;

	*out = NULL;
	t = json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:s?, s:I, s:I, s:I, s:I, s:s, "
	              "s:I}",
	              "id", id, "target", pg_str(row, i, 1), "plugin", pg_str(row, i, 2), "op",
	              pg_str(row, i, 3), "args", pg_json(row, i, 4), "timeout_ms",
	              pg_int(row, i, 5), "created_ms", pg_int(row, i, 6), "expires_ms",
	              pg_int(row, i, 7), "created_by", pg_str(row, i, 8), "batch_size",
	              pg_int(row, i, 9), "max_failures", pg_int(row, i, 10), "released_batch",
	              pg_int(row, i, 11), "last_batch", pg_int(row, i, 12), "state",
	              pg_str(row, i, 13), "seq", pg_int(row, i, 14));
	if (!t || !counts)
		goto oom;
	for (int k = 0; k < PG_ROW_NSTATES; k++)
		if (json_object_set_new(counts, pg_row_states[k], json_integer(0)))
			goto oom;
	if ((rc = pg_run(p, PS_TASK_COUNTS, &r, "s", id)) < 0)
		goto fail;
	rc = 0;
	for (int k = 0; k < PQntuples(r); k++) {
		json_int_t n = pg_int(r, k, 1);
		total += n;
		if (json_object_set_new(counts, pg_str(r, k, 0), json_integer(n)))
			rc = OUTPOST_E_INTERNAL;
	}
	PQclear(r);
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
		if ((rc = pg_run(p, PS_TASK_ROWS, &r, "sI", id, since)) < 0)
			goto fail;
		rc = 0;
		for (int k = 0; rc == 0 && k < PQntuples(r); k++) {
			json_t *h = json_pack("{s:s, s:s, s:o, s:o, s:o, s:I, s:I}", "host_id",
			                      pg_str(r, k, 0), "state", pg_str(r, k, 1), "response",
			                      pg_json(r, k, 2), "started_ms", pg_ms(r, k, 3),
			                      "finished_ms", pg_ms(r, k, 4), "seq", pg_int(r, k, 5),
			                      "batch", pg_int(r, k, 6));
			if (!h || json_array_append_new(hosts, h))
				rc = OUTPOST_E_INTERNAL;
		}
		PQclear(r);
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

static int task_fetch(struct pg *p, const char *id, int with_hosts, int64_t since, json_t **out)
{
	PGresult *r;
	int rc = pg_run(p, PS_TASK_GET, &r, "s", id);

	*out = NULL;
	if (rc < 0)
		return rc;
	rc = rc == 0 ? OUTPOST_E_NOT_FOUND : task_json(p, r, 0, with_hosts, since, out);
	PQclear(r);
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

int pg_task_create(struct store *base, json_t *task, json_t *host_ids, json_t **existing)
{
	struct pg *p = pg_of(base);
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
	if (!pg_nonempty(id) || !target || !pg_nonempty(plugin) || !pg_nonempty(op) ||
	    (by && !json_is_null(by) && !json_is_string(by)) || !json_is_array(host_ids) ||
	    get_int(task, "timeout_ms", 1, 0, 1, &timeout) ||
	    get_int(task, "created_ms", 1, 0, 0, &created) ||
	    get_int(task, "expires_ms", 1, 0, 1, &expires) ||
	    get_int(task, "batch_size", 0, 0, 0, &bsize) ||
	    get_int(task, "max_failures", 0, -1, -1, &maxf))
		return OUTPOST_E_BAD_ARGS;
	json_array_foreach(host_ids, i, v)
	{
		if (!pg_nonempty(json_string_value(v)))
			return OUTPOST_E_BAD_ARGS;
	}
	n = (json_int_t)json_array_size(host_ids);
	if (!(atext = pg_text(args, 0, 1)) || !(htext = pg_text(host_ids, 0, 0))) {
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	if ((rc = pg_tx_begin(p)) < 0)
		goto out;
	if ((rc = pg_run(p, PS_TASK_STATE, NULL, "s", id)) != 0) {
		pg_tx_rollback(p);
		if (rc > 0) {
			rc = OUTPOST_E_CONFLICT;
			if (existing && task_fetch(p, id, 1, 0, existing) < 0)
				rc = OUTPOST_E_INTERNAL;
		}
		goto out;
	}
	if ((rc = pg_run(p, PS_TASK_ADD, NULL, "sssssIIIsIIIs", id, target, plugin, op, atext,
	                 (int64_t)timeout, (int64_t)created, (int64_t)expires,
	                 json_string_value(by), (int64_t)bsize, (int64_t)maxf,
	                 (int64_t)(n > 0 && bsize > 0 ? (n - 1) / bsize : 0),
	                 n > 0 ? "running" : "done")) < 0)
		goto fail;
	if ((rc = pg_run(p, PS_TASK_ROW_ADD, NULL, "sIs", id, (int64_t)bsize, htext)) < 0) {
		if (rc == OUTPOST_E_CONFLICT) /* the same host twice */
			rc = OUTPOST_E_BAD_ARGS;
		goto fail;
	}
	rc = pg_tx_commit(p);
	goto out;
fail:
	pg_tx_rollback(p);
out:
	free(atext);
	free(htext);
	return rc;
}

int pg_task_get(struct store *base, const char *id, int with_hosts, int64_t since, json_t **task)
{
	return task_fetch(pg_of(base), id, with_hosts, since, task);
}

int pg_task_list(struct store *base, int limit, json_t **tasks)
{
	struct pg *p = pg_of(base);
	PGresult *r;
	json_t *arr;
	int rc;

	*tasks = NULL;
	if (limit < 1)
		return OUTPOST_E_BAD_ARGS;
	if ((rc = pg_run(p, PS_TASK_LIST, &r, "i", limit)) < 0)
		return rc;
	rc = (arr = json_array()) ? 0 : OUTPOST_E_INTERNAL;
	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		json_t *t;
		if ((rc = task_json(p, r, i, 0, 0, &t)) == 0 && json_array_append_new(arr, t))
			rc = OUTPOST_E_INTERNAL;
	}
	PQclear(r);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*tasks = arr;
	return 0;
}

/* The rows of PS_TAKE or PS_RESUME ($1 host, $2 now, $3 limit) as unsigned task items. */
static int rows_to_items(struct pg *p, enum pst which, const char *host_id, int64_t now_ms,
                         int limit, json_t *arr)
{
	PGresult *r;
	int rc = pg_run(p, which, &r, "sIi", host_id, now_ms, limit);

	if (rc < 0)
		return rc;
	rc = 0;
	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		json_t *t = json_pack("{s:{s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I}}", "task",
		                      "task_id", pg_str(r, i, 0), "host_id", host_id, "plugin",
		                      pg_str(r, i, 1), "op", pg_str(r, i, 2), "args",
		                      pg_json(r, i, 3), "timeout_ms", pg_int(r, i, 4), "issued_ms",
		                      (json_int_t)now_ms, "expires_ms", pg_int(r, i, 5));
		rc = t && json_array_append_new(arr, t) == 0 ? 0 : OUTPOST_E_INTERNAL;
	}
	PQclear(r);
	return rc;
}

int pg_task_take(struct store *base, const char *host_id, int64_t now_ms, int limit, json_t **items)
{
	struct pg *p = pg_of(base);
	json_t *arr, *v;
	size_t i;
	int rc;

	*items = NULL;
	if (!host_id || limit < 1)
		return OUTPOST_E_BAD_ARGS;
	if (!(arr = json_array()))
		return OUTPOST_E_INTERNAL;
	/* Read first: most polls find nothing and need no write transaction. */
	rc = rows_to_items(p, PS_TAKE, host_id, now_ms, limit, arr);
	if (rc < 0 || json_array_size(arr) == 0)
		goto out;
	if ((rc = pg_tx_begin(p)) < 0)
		goto out;
	for (i = 0; i < json_array_size(arr);) {
		const char *tid;
		int64_t seq;
		v = json_object_get(json_array_get(arr, i), "task");
		tid = json_string_value(json_object_get(v, "task_id"));
		if ((rc = pg_seq_next(p, tid, &seq)) < 0 ||
		    (rc = pg_run(p, PS_TAKE_MARK, NULL, "ssI", tid, host_id, seq)) < 0)
			goto fail;
		if (rc == 0) /* taken since the read (another hub): not ours to hand out */
			json_array_remove(arr, i);
		else
			i++;
	}
	rc = pg_tx_commit(p);
	goto out;
fail:
	pg_tx_rollback(p);
out:
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*items = arr;
	return 0;
}

int pg_task_resume(struct store *base, const char *host_id, int64_t now_ms, int limit,
                   json_t **items)
{
	json_t *arr;
	int rc;

	*items = NULL;
	if (!host_id || limit < 1)
		return OUTPOST_E_BAD_ARGS;
	if (!(arr = json_array()))
		return OUTPOST_E_INTERNAL;
	if ((rc = rows_to_items(pg_of(base), PS_RESUME, host_id, now_ms, limit, arr)) < 0) {
		json_decref(arr);
		return rc;
	}
	*items = arr;
	return 0;
}

int pg_task_report(struct store *base, const char *task_id, const char *host_id, const char *state,
                   json_t *response, int64_t started_ms, int64_t finished_ms, int *task_done)
{
	struct pg *p = pg_of(base);
	char *rtext = NULL;
	PGresult *r;
	int64_t seq;
	int rc, to, cur = -1, fin = 0;

	if (task_done)
		*task_done = 0;
	to = pg_str_index(state, pg_row_states, PG_ROW_NSTATES);
	/* What an agent may report: running or a final state of its own (not cancelled). */
	if (!task_id || !host_id || to < PRS_RUNNING || strcmp(state, "cancelled") == 0)
		return OUTPOST_E_BAD_ARGS;
	if (to >= PRS_FINAL && !(rtext = pg_text(response, 0, 0)))
		return OUTPOST_E_INTERNAL;
	if ((rc = pg_tx_begin(p)) < 0)
		goto out;
	if ((rc = pg_run(p, PS_ROW_STATE, &r, "ss", task_id, host_id)) < 0)
		goto fail;
	if (rc > 0)
		cur = pg_str_index(pg_str(r, 0, 0), pg_row_states, PG_ROW_NSTATES);
	PQclear(r);
	if (cur < PRS_SENT) { /* no such row, or never sent */
		rc = OUTPOST_E_NOT_FOUND;
		goto fail;
	}
	/* Forward only: a final state stays; running after running changes nothing. */
	if (cur >= PRS_FINAL || (cur == PRS_RUNNING && to == PRS_RUNNING)) {
		rc = pg_tx_commit(p);
		goto out;
	}
	if ((rc = pg_seq_next(p, task_id, &seq)) < 0 ||
	    (rc = pg_run(p, PS_ROW_REPORT, NULL, "ssssMMI", task_id, host_id, pg_row_states[to],
	                 rtext, started_ms, to >= PRS_FINAL ? finished_ms : (int64_t)0, seq)) < 0)
		goto fail;
	/* The agent's finished_ms is its own clock's: the task's end is the hub's. */
	if (to >= PRS_FINAL && (rc = pg_task_settle(p, task_id, clk_real_ms(), &fin)) < 0)
		goto fail;
	if ((rc = pg_tx_commit(p)) == 0 && task_done)
		*task_done = fin;
	goto out;
fail:
	pg_tx_rollback(p);
out:
	free(rtext);
	return rc;
}

int pg_task_cancel(struct store *base, const char *id, int64_t now_ms)
{
	struct pg *p = pg_of(base);
	PGresult *r;
	int rc, moved, running;

	if (!id)
		return OUTPOST_E_BAD_ARGS;
	if ((rc = pg_tx_begin(p)) < 0)
		return rc;
	if ((rc = pg_run(p, PS_TASK_STATE, &r, "s", id)) < 0)
		goto fail;
	if (rc == 0) {
		PQclear(r);
		rc = OUTPOST_E_NOT_FOUND;
		goto fail;
	}
	running = strcmp(pg_str(r, 0, 0), "running") == 0;
	PQclear(r);
	if (!running) /* a finished task stays as it ended */
		return pg_tx_commit(p);
	if ((rc = pg_run(p, PS_TASK_CANCEL, NULL, "sI", id, now_ms)) < 0 ||
	    (rc = pg_rows_move(p, PS_ROWS_CANCEL, id, NULL, now_ms, &moved)) < 0 ||
	    (rc = pg_task_settle(p, id, now_ms, NULL)) < 0)
		goto fail;
	return pg_tx_commit(p);
fail:
	pg_tx_rollback(p);
	return rc;
}

/* Also ends rows still running long after expiry (PG_LOST_GRACE_MS): lost. */
int pg_tasks_expire(struct store *base, int64_t now_ms, json_t **task_ids)
{
	struct pg *p = pg_of(base);
	json_t *arr = json_array();
	PGresult *r = NULL;
	int rc;

	*task_ids = NULL;
	if (!arr)
		return OUTPOST_E_INTERNAL;
	if ((rc = pg_tx_begin(p)) < 0)
		goto out;
	if ((rc = pg_run(p, PS_EXPIRE_TASKS, &r, "I", now_ms)) < 0)
		goto fail;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *id = pg_str(r, i, 0);
		int64_t lost_at = pg_int(r, i, 1) + pg_int(r, i, 2) + PG_LOST_GRACE_MS;
		int expired, lost = 0;
		if ((rc = pg_rows_move(p, PS_ROWS_EXPIRE, id, NULL, now_ms, &expired)) < 0 ||
		    (now_ms >= lost_at &&
		     (rc = pg_rows_move(p, PS_ROWS_LOSE, id, NULL, now_ms, &lost)) < 0))
			goto fail;
		if (!expired && !lost)
			continue;
		if ((rc = pg_task_settle(p, id, now_ms, NULL)) < 0)
			goto fail;
		if (json_array_append_new(arr, json_string(id))) {
			rc = OUTPOST_E_INTERNAL;
			goto fail;
		}
	}
	if ((rc = pg_tx_commit(p)) < 0)
		goto out;
	*task_ids = arr;
	arr = NULL;
	goto out;
fail:
	pg_tx_rollback(p);
out:
	PQclear(r);
	json_decref(arr);
	return rc < 0 ? rc : 0;
}

/* Releases the batches of one task that may go: *woken collects the hosts of new rows. */
static int task_advance(struct pg *p, const char *id, json_int_t maxf, json_int_t released,
                        json_int_t last, int64_t now_ms, json_t *woken)
{
	PGresult *r;
	int rc, moved;

	while (released < last) {
		if ((rc = pg_run(p, PS_BATCH_OPEN, NULL, "sI", id, (int64_t)released)) != 0)
			return rc < 0 ? rc : 0; /* the released batches still run */
		if (maxf >= 0) {
			json_int_t failed;
			if ((rc = pg_run(p, PS_TASK_FAILURES, &r, "s", id)) < 0)
				return rc;
			failed = pg_int(r, 0, 0);
			PQclear(r);
			if (failed > maxf) {
				if ((rc = pg_rows_move(p, PS_ROWS_CANCEL_QUEUED, id, NULL, now_ms,
				                       &moved)) < 0)
					return rc;
				return pg_task_settle(p, id, now_ms, NULL);
			}
		}
		released++;
		if ((rc = pg_run(p, PS_TASK_RELEASE, NULL, "sI", id, (int64_t)released)) < 0 ||
		    (rc = pg_run(p, PS_BATCH_HOSTS, &r, "sI", id, (int64_t)released)) < 0)
			return rc;
		rc = 0;
		for (int i = 0; rc == 0 && i < PQntuples(r); i++)
			if (json_object_set_new(woken, pg_str(r, i, 0), json_true()))
				rc = OUTPOST_E_INTERNAL;
		PQclear(r);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int pg_tasks_advance(struct store *base, int64_t now_ms, json_t **host_ids)
{
	struct pg *p = pg_of(base);
	json_t *woken = json_object(), *arr = json_array(), *v;
	PGresult *r = NULL;
	const char *h;
	int rc;

	*host_ids = NULL;
	if (!woken || !arr) {
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	if ((rc = pg_tx_begin(p)) < 0)
		goto out;
	if ((rc = pg_run(p, PS_ADVANCE_TASKS, &r, "")) < 0)
		goto fail;
	for (int i = 0; i < PQntuples(r); i++)
		if ((rc = task_advance(p, pg_str(r, i, 0), pg_int(r, i, 1), pg_int(r, i, 2),
		                       pg_int(r, i, 3), now_ms, woken)) < 0)
			goto fail;
	if ((rc = pg_tx_commit(p)) < 0)
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
	pg_tx_rollback(p);
out:
	PQclear(r);
	json_decref(woken);
	json_decref(arr);
	return rc < 0 ? rc : 0;
}

/* task_id NULL: every running task (the wake-up after a restart). */
int pg_task_hosts_waiting(struct store *base, const char *task_id, json_t **host_ids)
{
	struct pg *p = pg_of(base);
	PGresult *r;
	json_t *arr;
	int rc;

	*host_ids = NULL;
	if (task_id && (rc = pg_run(p, PS_TASK_STATE, NULL, "s", task_id)) <= 0)
		return rc < 0 ? rc : OUTPOST_E_NOT_FOUND;
	rc = task_id ? pg_run(p, PS_WAITING_TASK, &r, "s", task_id)
	             : pg_run(p, PS_WAITING_ALL, &r, "");
	if (rc < 0)
		return rc;
	if (!(arr = json_array()) || pg_push_col(arr, r) < 0) {
		PQclear(r);
		json_decref(arr);
		return OUTPOST_E_INTERNAL;
	}
	PQclear(r);
	*host_ids = arr;
	return 0;
}
