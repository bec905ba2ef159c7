/* outpost flows ls | get | add | rm | run | runs | show | cancel, and outpost report: flow
 * definitions and runs on the hub (docs/flows.md), and the fleet report in the terminal
 * (docs/reports.md). */
#include "args.h"
#include "cli.h"
#include "output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { FLOWS_OPT_VAR = 0x100, FLOWS_OPT_ID, FLOWS_OPT_NO_WAIT, FLOWS_OPT_HOURS };

static const char *str_of(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int flows_def_row(const json_t *f, const void *arg, struct buf *scratch, const char **cells)
{
	(void)arg;
	if (buf_printf(&scratch[0], "%zu", json_array_size(json_object_get(f, "steps"))) < 0)
		return -1;
	cells[0] = str_of(f, "name");
	cells[1] = scratch[0].data;
	cells[2] = str_of(f, "target") ? str_of(f, "target") : "-";
	cells[3] = str_of(f, "description") ? str_of(f, "description") : "";
	return 0;
}

int flows_ls(struct cli *c, int argc, char **argv)
{
	static const char *const head[] = {"NAME", "STEPS", "TARGET", "DESCRIPTION"};
	return cli_list_limit(c, argc, argv, "/api/v1/flows", 4, head, flows_def_row);
}

static int flows_run_row(const json_t *r, const void *arg, struct buf *scratch, const char **cells)
{
	(void)arg;
	if (out_time(&scratch[0], json_integer_value(json_object_get(r, "created_ms"))) < 0 ||
	    buf_printf(&scratch[1], "%lld",
	               (long long)json_integer_value(json_object_get(r, "step")) + 1) < 0)
		return -1;
	cells[0] = str_of(r, "id");
	cells[1] = str_of(r, "flow");
	cells[2] = str_of(r, "state");
	cells[3] = scratch[1].data;
	cells[4] = scratch[0].data;
	cells[5] = str_of(r, "origin");
	return 0;
}

int flows_runs(struct cli *c, int argc, char **argv)
{
	static const char *const head[] = {"RUN", "FLOW", "STATE", "STEP", "STARTED", "ORIGIN"};
	return cli_list_limit(c, argc, argv, "/api/v1/flow-runs", 6, head, flows_run_row);
}

/* GET path of one id and print it as JSON (get) */
int flows_get(struct cli *c, int argc, char **argv)
{
	struct buf path = BUF_INIT;
	json_t *v = NULL;
	const char *name;
	int rc = cli_one_id(c, argc, argv, "flow", &name);

	if (!name)
		return rc;
	buf_printf(&path, "/api/v1/flows/%s", name);
	if ((rc = cli_request(c, "GET", path.data, NULL, CLI_RETRY_S, &v)) == 0 && v)
		rc = cli_print_json(c, v) < 0 ? CLI_EXIT_FAILED : 0;
	json_decref(v);
	buf_free(&path);
	return rc;
}

/* outpost flows add FILE: a definition in JSON; a file that does not parse is refused with
 * FILE:LINE:COLUMN, one the hub refuses with where in it. */
int flows_add(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	json_t *def = NULL, *v = NULL;
	json_error_t err;
	struct buf b = BUF_INIT;
	const char *file;
	int ch, rc;

	if ((ch = cli_getopt(c, argc, argv, "", opts)) != -1)
		return cli_getopt_exit(ch);
	if (optind + 1 != argc)
		return cli_usage(c, "give one file (or - for stdin)");
	file = argv[optind];
	def = strcmp(file, "-") == 0 ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &err)
	                             : json_load_file(file, JSON_REJECT_DUPLICATES, &err);
	if (!def) {
		fprintf(stderr, "outpost: %s:%d:%d: %s\n", strcmp(file, "-") ? file : "<stdin>",
		        err.line, err.column, err.text);
		return CLI_EXIT_USAGE;
	}
	if ((rc = cli_request(c, "POST", "/api/v1/flows", def, CLI_RETRY_S, &v)) == 0 && v) {
		buf_puts(&b, "flow ");
		out_text(&b, str_of(v, "name"));
		buf_printf(&b, ": %zu steps stored\n",
		           json_array_size(json_object_get(v, "steps")));
		rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
	}
	json_decref(def);
	json_decref(v);
	buf_free(&b);
	return rc;
}

/* One POST to /api/v1/<what>/<id>/<verb> with {}, printing "ID: done". */
static int flows_post(struct cli *c, int argc, char **argv, const char *what, const char *kind,
                      const char *verb, const char *done)
{
	struct buf path = BUF_INIT, b = BUF_INIT;
	json_t *body = json_object(), *v = NULL;
	const char *id;
	int rc = cli_one_id(c, argc, argv, kind, &id);

	if (!id)
		goto out;
	buf_printf(&path, "/api/v1/%s/%s/%s", what, id, verb);
	if ((rc = cli_request(c, "POST", path.data, body, CLI_RETRY_S, &v)) != 0 || !v)
		goto out;
	out_text(&b, id);
	buf_printf(&b, ": %s\n", str_of(v, "state") ? str_of(v, "state") : done);
	rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
out:
	json_decref(body);
	json_decref(v);
	buf_free(&path);
	buf_free(&b);
	return rc;
}

int flows_rm(struct cli *c, int argc, char **argv)
{
	return flows_post(c, argc, argv, "flows", "flow", "remove", "removed");
}

int flows_cancel(struct cli *c, int argc, char **argv)
{
	return flows_post(c, argc, argv, "flow-runs", "run", "cancel", "cancelled");
}

/* A run as the terminal shows it: its state, then a line per step run. */
static int flows_print_run(struct cli *c, const json_t *r)
{
	struct buf b = BUF_INIT;
	const json_t *e;
	size_t i;
	int rc;

	buf_puts(&b, "run ");
	out_text(&b, str_of(r, "id"));
	buf_puts(&b, " of flow ");
	out_text(&b, str_of(r, "flow"));
	buf_puts(&b, ": ");
	out_text(&b, str_of(r, "state"));
	buf_puts(&b, " (started by ");
	out_text(&b, str_of(r, "origin"));
	buf_puts(&b, ")\n");
	json_array_foreach(json_object_get(r, "history"), i, e)
	{
		buf_puts(&b, "  ");
		out_text(&b, str_of(e, "step"));
		buf_puts(&b, ": ");
		out_text(&b, str_of(e, "outcome"));
		if (str_of(e, "task_id")) {
			buf_printf(
			    &b, " (%lld ok, %lld failed; task ",
			    (long long)json_integer_value(json_object_get(e, "hosts_ok")),
			    (long long)json_integer_value(json_object_get(e, "hosts_failed")));
			out_text(&b, str_of(e, "task_id"));
			buf_puts(&b, ")");
		}
		if (str_of(e, "error")) {
			buf_puts(&b, ": ");
			out_text(&b, str_of(e, "error"));
		}
		buf_puts(&b, "\n");
	}
	if (str_of(r, "error")) {
		buf_puts(&b, "  ");
		out_text(&b, str_of(r, "error"));
		buf_puts(&b, "\n");
	}
	rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
	buf_free(&b);
	return rc;
}

/* Exit status of a run that ended: 0 ok, 1 failed or cancelled. */
static int flows_run_status(const json_t *r)
{
	return strcmp(str_of(r, "state"), "ok") == 0 ? 0 : CLI_EXIT_FAILED;
}

int flows_show(struct cli *c, int argc, char **argv)
{
	struct buf path = BUF_INIT;
	json_t *v = NULL;
	const char *id;
	int rc = cli_one_id(c, argc, argv, "run", &id);

	if (!id)
		return rc;
	buf_printf(&path, "/api/v1/flow-runs/%s", id);
	if ((rc = cli_request(c, "GET", path.data, NULL, CLI_RETRY_S, &v)) == 0 && v)
		rc = flows_print_run(c, v);
	json_decref(v);
	buf_free(&path);
	return rc;
}

int flows_run(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"var", required_argument, NULL, FLOWS_OPT_VAR},
	    {"id", required_argument, NULL, FLOWS_OPT_ID},
	    {"no-wait", no_argument, NULL, FLOWS_OPT_NO_WAIT},
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	json_t *vars = json_object(), *body = NULL, *r = NULL;
	struct buf path = BUF_INIT, b = BUF_INIT;
	const char *id = NULL, *name;
	char msg[256];
	int ch, rc = 0, no_wait = 0;

	while ((ch = cli_getopt(c, argc, argv, "", opts)) != -1) {
		switch (ch) {
		case FLOWS_OPT_VAR:
			if (args_env(vars, optarg, msg, sizeof(msg)) < 0) {
				rc = cli_usage(c, "--var: %s", msg);
				goto out;
			}
			break;
		case FLOWS_OPT_ID:
			if (!args_id_ok(optarg)) {
				rc = cli_usage(c, "--id: 1 to 64 of A-Z a-z 0-9 . _ : -");
				goto out;
			}
			id = optarg;
			break;
		case FLOWS_OPT_NO_WAIT:
			no_wait = 1;
			break;
		default:
			rc = cli_getopt_exit(ch);
			goto out;
		}
	}
	if (optind + 1 != argc) {
		rc = cli_usage(c, "give the flow's name");
		goto out;
	}
	name = argv[optind];
	body = json_pack("{s:O}", "vars", vars);
	if (id)
		json_object_set_new(body, "id", json_string(id));
	buf_printf(&path, "/api/v1/flows/%s/run", name);
	/* Retried freely only with an id: a repeat finds the first run. */
	if ((rc = cli_call(c, "POST", path.data, body, 0, id ? CLI_RETRY_S : 0, &r)) != 0)
		goto out;
	if (no_wait || c->json) {
		if (c->json)
			rc = cli_print_json(c, r) < 0 ? CLI_EXIT_FAILED : 0;
		else {
			out_text(&b, str_of(r, "id"));
			buf_puts(&b, "\n");
			rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
		}
		goto out;
	}
	buf_reset(&path);
	buf_printf(&path, "/api/v1/flow-runs/%s", str_of(r, "id"));
	while (strcmp(str_of(r, "state"), "running") == 0) {
		if (c->interrupted && *c->interrupted) {
			rc = CLI_EXIT_INTERRUPTED;
			goto out;
		}
		sleep(1);
		json_decref(r);
		r = NULL;
		if ((rc = cli_call(c, "GET", path.data, NULL, 0, CLI_FOLLOW_RETRY_S, &r)) != 0)
			goto out;
	}
	if ((rc = flows_print_run(c, r)) == 0)
		rc = flows_run_status(r);
out:
	json_decref(vars);
	json_decref(body);
	json_decref(r);
	buf_free(&path);
	buf_free(&b);
	return rc;
}

/* ---- outpost report ---- */

static void report_rows(struct buf *b, const char *title, const json_t *rows, const char *unit)
{
	const json_t *r;
	size_t i;

	buf_printf(b, "\n%s\n", title);
	if (json_array_size(rows) == 0)
		buf_puts(b, "  (none)\n");
	json_array_foreach(rows, i, r)
	{
		buf_puts(b, "  ");
		out_text(b, str_of(r, "host"));
		if (str_of(r, "mount")) {
			buf_puts(b, " ");
			out_text(b, str_of(r, "mount"));
		}
		if (json_object_get(r, "days_left"))
			buf_printf(b, "  %.1f days left (%.0f bytes free)\n",
			           json_real_value(json_object_get(r, "days_left")),
			           json_real_value(json_object_get(r, "available_bytes")));
		else
			buf_printf(b, "  %.1f%s\n", json_real_value(json_object_get(r, "value")),
			           unit);
	}
}

int report_show(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"hours", required_argument, NULL, FLOWS_OPT_HOURS},
	    CLI_GLOBAL_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct buf path = BUF_INIT, b = BUF_INIT;
	long long hours = 0;
	int ch, rc = 0;
	json_t *r = NULL, *v, *e;
	const char *k;
	size_t i;

	while ((ch = cli_getopt(c, argc, argv, "", opts)) != -1) {
		if (ch != FLOWS_OPT_HOURS)
			return cli_getopt_exit(ch);
		if (args_int(optarg, 1, 744, &hours) < 0)
			return cli_usage(c, "--hours: 1 to 744");
	}
	if ((rc = cli_no_operands(c, argc, argv)) != 0)
		return rc;
	buf_puts(&path, "/api/v1/report?format=json");
	if (hours)
		buf_printf(&path, "&hours=%lld", hours);
	if ((rc = cli_request(c, "GET", path.data, NULL, CLI_RETRY_S, &r)) != 0 || !r)
		goto out;
	buf_printf(
	    &b, "Outpost fleet report, the last %lld hours\n\nHosts: %lld",
	    (long long)json_integer_value(json_object_get(r, "window_hours")),
	    (long long)json_integer_value(json_object_get(json_object_get(r, "hosts"), "total")));
	json_object_foreach(json_object_get(json_object_get(r, "hosts"), "by_state"), k, v)
	    buf_printf(&b, ", %lld %s", (long long)json_integer_value(v), k);
	buf_puts(&b, "\n");
	json_array_foreach(json_object_get(r, "not_up"), i, e)
	{
		buf_puts(&b, "  ");
		out_text(&b, str_of(e, "id"));
		buf_puts(&b, " ");
		out_text(&b, str_of(e, "state"));
		buf_puts(&b, " since ");
		out_time(&b, json_integer_value(json_object_get(e, "last_seen_ms")));
		buf_puts(&b, "\n");
	}
	buf_printf(&b, "\nChanges: %zu\n", json_array_size(json_object_get(r, "changes")));
	json_array_foreach(json_object_get(r, "changes"), i, e)
	{
		if (i >= 20) {
			buf_puts(&b, "  ...\n");
			break;
		}
		buf_puts(&b, "  ");
		out_time(&b, json_integer_value(json_object_get(e, "at_ms")));
		buf_puts(&b, " ");
		out_text(&b, str_of(e, "host_id"));
		buf_puts(&b, " ");
		out_text(&b, str_of(e, "kind"));
		buf_puts(&b, "\n");
	}
	buf_puts(&b, "\nAgent versions\n");
	json_array_foreach(json_object_get(r, "versions"), i, e)
	{
		buf_puts(&b, "  ");
		out_text(&b, str_of(e, "version"));
		buf_printf(&b, "  %lld hosts\n",
		           (long long)json_integer_value(json_object_get(e, "hosts")));
	}
	report_rows(&b, "Top hosts by CPU", json_object_get(r, "top_cpu"), "%");
	report_rows(&b, "Top hosts by memory", json_object_get(r, "top_memory"), "%");
	report_rows(&b, "Top hosts by disk", json_object_get(r, "top_disk"), "% used");
	report_rows(&b, "File systems that fill within 7 days", json_object_get(r, "filling"), "");
	buf_puts(&b, "\nAlerts fired\n  ");
	out_text(&b, str_of(json_object_get(r, "alerts"), "note"));
	v = json_object_get(r, "tasks");
	buf_printf(&b, "\n\nTasks: %lld run, %lld with failures\n",
	           (long long)json_integer_value(json_object_get(v, "run")),
	           (long long)json_integer_value(json_object_get(v, "with_failures")));
	json_array_foreach(json_object_get(v, "failures"), i, e)
	{
		buf_puts(&b, "  ");
		out_text(&b, str_of(e, "id"));
		buf_printf(&b, " %s.%s: %lld of %lld hosts failed\n", str_of(e, "plugin"),
		           str_of(e, "op"),
		           (long long)json_integer_value(json_object_get(e, "hosts_failed")),
		           (long long)json_integer_value(json_object_get(e, "hosts")));
	}
	rc = cli_write(c, &b) < 0 ? CLI_EXIT_FAILED : 0;
out:
	json_decref(r);
	buf_free(&path);
	buf_free(&b);
	return rc;
}
