/* outpost tasks ls | show | wait | cancel, and following a task as its hosts report
 * (long-poll GET /api/v1/tasks/ID?wait=S&since=SEQ), shared with run, cp and call. */
#include "cli.h"
#include "output.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tasks_done(const json_t *task, const struct out_counts *n)
{
	const char *state = json_string_value(json_object_get(task, "state"));

	if (n->total == 0 || (state && strcmp(state, "done") == 0))
		return 1;
	/* A cancelled task may still have hosts running what they had started. */
	return n->pending == 0 && n->done >= n->total;
}

/* Remembers what a task runs; the first page that says it wins. */
struct tasks_follow {
	char *plugin, *op;
	json_t *shown; /* host id -> true: outcome printed */
	json_t *bad;   /* host ids not ok, in the order they landed */
	json_t *rows;  /* with --group: final rows, shown grouped at the end */
	int64_t since;
};

/* Prints the final outcomes of task.hosts not printed before, and advances since. */
static int tasks_page(struct cli *c, struct tasks_follow *f, const json_t *task, struct buf *b)
{
	const json_t *hosts = json_object_get(task, "hosts");
	int64_t max_seq = -1;
	size_t i;
	json_t *h;

	if (!f->plugin && json_is_string(json_object_get(task, "plugin")))
		f->plugin = strdup(json_string_value(json_object_get(task, "plugin")));
	if (!f->op && json_is_string(json_object_get(task, "op")))
		f->op = strdup(json_string_value(json_object_get(task, "op")));
	json_array_foreach(hosts, i, h)
	{
		const char *id = json_string_value(json_object_get(h, "host_id"));
		const char *state = json_string_value(json_object_get(h, "state"));
		int64_t seq = json_integer_value(json_object_get(h, "seq"));

		if (seq > max_seq)
			max_seq = seq;
		if (!id || !out_state_final(state) || json_object_get(f->shown, id))
			continue;
		if (json_object_set_new(f->shown, id, json_true()) < 0)
			return -1;
		if (out_state_bad(state) && json_array_append_new(f->bad, json_string(id)) < 0)
			return -1;
		if (!c->json && c->group && json_array_append(f->rows, h) < 0)
			return -1;
		if (!c->json && !c->group && out_host(b, f->plugin, f->op, h) < 0)
			return -1;
	}
	/* Rows are what moved: resume after the newest row seen. Without rows, the task's seq. */
	if (max_seq < 0)
		max_seq = json_integer_value(json_object_get(task, "seq"));
	if (max_seq > f->since)
		f->since = max_seq;
	return 0;
}

static void tasks_resume_hint(struct cli *c, const char *id, int interrupted)
{
	cli_progress(c, NULL);
	fprintf(stderr,
	        "outpost: %s; task %s goes on on the hub. Follow it with: outpost tasks "
	        "wait %s\n",
	        interrupted ? "interrupted" : "stopped following", id, id);
}

int tasks_follow(struct cli *c, const char *id, json_t *first)
{
	struct tasks_follow f = {.shown = json_object(), .bad = json_array(), .rows = json_array()};
	struct buf path = BUF_INIT, b = BUF_INIT, line = BUF_INIT;
	int64_t start = cli_now_ms();
	json_t *task = first ? json_incref(first) : NULL;
	struct out_counts n;
	int rc;

	if (!f.shown || !f.bad || !f.rows) {
		rc = CLI_EXIT_HUB;
		goto out;
	}
	if (!task) {
		buf_printf(&path, "/api/v1/tasks/%s", id);
		if ((rc = cli_call(c, "GET", path.data, NULL, 0, CLI_RETRY_S, &task)) != 0) {
			if (rc == CLI_EXIT_INTERRUPTED)
				tasks_resume_hint(c, id, 1);
			goto out;
		}
	}
	for (;;) {
		if (tasks_page(c, &f, task, &b) < 0) {
			rc = CLI_EXIT_HUB;
			goto out;
		}
		if (cli_write(c, &b) < 0) {
			/* stdout is gone (| head): nobody is reading any more. */
			rc = CLI_EXIT_FAILED;
			goto out;
		}
		out_counts(task, &n);
		if (tasks_done(task, &n))
			break;
		buf_reset(&line);
		out_progress(&line, &n);
		cli_progress(c, line.data);
		json_decref(task);
		task = NULL;
		buf_reset(&path);
		buf_printf(&path, "/api/v1/tasks/%s?wait=%d&since=%" PRId64, id, CLI_POLL_WAIT_S,
		           f.since);
		rc =
		    cli_call(c, "GET", path.data, NULL, CLI_POLL_WAIT_S, CLI_FOLLOW_RETRY_S, &task);
		if (rc != 0) {
			tasks_resume_hint(c, id, rc == CLI_EXIT_INTERRUPTED);
			goto out;
		}
	}
	cli_progress(c, NULL);
	if (c->json) {
		/* The final task, whole: the pages above held only what changed. */
		json_decref(task);
		task = NULL;
		buf_reset(&path);
		buf_printf(&path, "/api/v1/tasks/%s", id);
		if ((rc = cli_call(c, "GET", path.data, NULL, 0, CLI_FOLLOW_RETRY_S, &task)) != 0) {
			if (rc == CLI_EXIT_INTERRUPTED)
				tasks_resume_hint(c, id, 1);
			goto out;
		}
		if (cli_print_json(c, task) < 0) {
			rc = CLI_EXIT_FAILED;
			goto out;
		}
		out_counts(task, &n);
	} else if ((c->group && out_groups(&b, f.plugin, f.op, f.rows) < 0) ||
	           out_summary(&b, task, f.bad, first ? cli_now_ms() - start : -1) < 0 ||
	           cli_write(c, &b) < 0) {
		rc = CLI_EXIT_FAILED;
		goto out;
	}
	rc = n.bad > 0 || n.pending > 0 || n.total == 0 ? CLI_EXIT_FAILED : CLI_EXIT_OK;
out:
	json_decref(task);
	json_decref(f.shown);
	json_decref(f.bad);
	json_decref(f.rows);
	free(f.plugin);
	free(f.op);
	buf_free(&path);
	buf_free(&b);
	buf_free(&line);
	return rc;
}

int tasks_wait(struct cli *c, int argc, char **argv)
{
	const char *id;
	int rc = cli_one_id(c, argc, argv, "task", &id);

	return id ? tasks_follow(c, id, NULL) : rc;
}

int tasks_show(struct cli *c, int argc, char **argv)
{
	struct buf path = BUF_INIT, b = BUF_INIT;
	json_t *task = NULL, *h;
	const char *id, *plugin, *op;
	size_t i;
	int rc = cli_one_id(c, argc, argv, "task", &id);

	if (!id)
		return rc;
	buf_printf(&path, "/api/v1/tasks/%s", id);
	if ((rc = cli_request(c, "GET", path.data, NULL, CLI_RETRY_S, &task)) != 0 || !task)
		goto out;
	plugin = json_string_value(json_object_get(task, "plugin"));
	op = json_string_value(json_object_get(task, "op"));
	rc = CLI_EXIT_HUB;
	if (out_task_head(&b, task) < 0)
		goto out;
	if (json_array_size(json_object_get(task, "hosts")) && buf_puts(&b, "\n") < 0)
		goto out;
	json_array_foreach(json_object_get(task, "hosts"), i,
	                   h) if (out_host(&b, plugin, op, h) < 0) goto out;
	rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
out:
	json_decref(task);
	buf_free(&path);
	buf_free(&b);
	return rc;
}

static int tasks_row(const json_t *task, const void *arg, struct buf *scratch, const char **cells)
{
	struct out_counts n;

	out_counts(task, &n);
	if (buf_printf(&scratch[0], "%s.%s", json_string_value(json_object_get(task, "plugin")),
	               json_string_value(json_object_get(task, "op"))) < 0 ||
	    buf_printf(&scratch[1], "%" PRId64 "/%" PRId64, n.done, n.total) < 0 ||
	    buf_printf(&scratch[2], "%" PRId64, n.bad) < 0 ||
	    out_time(&scratch[3], json_integer_value(json_object_get(task, "created_ms"))) < 0)
		return -1;
	cells[0] = json_string_value(json_object_get(task, "id"));
	cells[1] = json_string_value(json_object_get(task, "state"));
	cells[2] = scratch[0].data;
	cells[3] = json_string_value(json_object_get(task, "target"));
	cells[4] = scratch[1].data;
	cells[5] = scratch[2].data;
	cells[6] = scratch[3].data;
	return 0;
}

int tasks_ls(struct cli *c, int argc, char **argv)
{
	static const char *const head[] = {"ID",    "STATE",  "OP",     "TARGET",
	                                   "HOSTS", "NOT OK", "CREATED"};

	return cli_list_limit(c, argc, argv, "/api/v1/tasks", 7, head, tasks_row);
}

int tasks_cancel(struct cli *c, int argc, char **argv)
{
	struct buf path = BUF_INIT, b = BUF_INIT;
	json_t *body = json_object(), *task = NULL;
	struct out_counts n;
	const char *id;
	int rc = cli_one_id(c, argc, argv, "task", &id);

	if (!id)
		goto out;
	buf_printf(&path, "/api/v1/tasks/%s/cancel", id);
	if ((rc = cli_request(c, "POST", path.data, body, CLI_RETRY_S, &task)) != 0 || !task)
		goto out;
	out_counts(task, &n);
	out_text(&b, id);
	buf_puts(&b, ": ");
	out_text(&b, json_string_value(json_object_get(task, "state")));
	buf_printf(&b,
	           " (%" PRId64 " hosts cancelled, %" PRId64 " still running what they started)\n",
	           (int64_t)json_integer_value(
	               json_object_get(json_object_get(task, "counts"), "cancelled")),
	           n.pending);
	rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
out:
	json_decref(body);
	json_decref(task);
	buf_free(&path);
	buf_free(&b);
	return rc;
}
