/* Flows: definitions (records "flow", by name) and runs (records "flow_run", by id), the
 * routes that manage them, and the state machine the leading hub's tick drives. A run's
 * record holds the definition as it was at the start, the step it is at and the task that
 * step runs; a step's task id is the run's id and the count of steps it has run, so a hub that
 * stops between storing the task and the run finds that task again (tasks_submit returns
 * it). docs/flows.md. */
#include "hub_impl.h"
#include "flows.h"
#include "audit.h"
#include "tasks.h"
#include "zk.h"
#include "core/clk.h"
#include "core/err.h"
#include "core/wire.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLOW_MAX_STEPS 100      /* steps in a definition */
#define FLOW_MAX_RUNS_STEPS 200 /* steps one run may run in all (goto loops end here) */
#define FLOW_MAX_VARS 64
#define FLOW_VAR_MAX 4096 /* bytes of a var's value */
#define FLOW_POLL_MS 1000 /* a running step's task is looked at this often */
#define FLOW_TICK_RUNS 64 /* runs advanced per tick at most */

/* ---- definitions ---- */

static const struct outpost_arg flow_fields[] = {
    {"name", OUTPOST_ARG_STRING, 1, "the flow's name: 1 to 64 of A-Z a-z 0-9 . _ -"},
    {"description", OUTPOST_ARG_STRING, 0, "what it is for"},
    {"target", OUTPOST_ARG_STRING, 0, "the selector of steps that name none"},
    {"steps", OUTPOST_ARG_ARRAY, 1, "1 to 100 steps"},
    {NULL, 0, 0, NULL},
};

static const struct outpost_arg step_fields[] = {
    {"name", OUTPOST_ARG_STRING, 1, "the step's name, unique in the flow"},
    {"target", OUTPOST_ARG_STRING, 0, "a selector (default: the flow's target)"},
    {"command", OUTPOST_ARG_ARRAY, 0, "argv run without a shell (exec.run)"},
    {"script", OUTPOST_ARG_STRING, 0, "shell script text (exec.run)"},
    {"plugin", OUTPOST_ARG_STRING, 0, "a plugin (with op and args)"},
    {"op", OUTPOST_ARG_STRING, 0, "an op of plugin"},
    {"args", OUTPOST_ARG_OBJECT, 0, "the op's arguments"},
    {"env", OUTPOST_ARG_OBJECT, 0, "environment of command and script steps"},
    {"timeout_ms", OUTPOST_ARG_INT, 0, "1 ms to 1 day"},
    {"on_failure", OUTPOST_ARG_STRING, 0, "stop (default), continue or goto STEP"},
    {NULL, 0, 0, NULL},
};

/* A flow's or a step's name: the host id rule (1..64 of A-Z a-z 0-9 . _ -). */
static int flow_name_ok(const char *s)
{
	return s && hub_host_id_ok(s);
}

/* An environment variable name: [A-Za-z_][A-Za-z0-9_]*, at most 128 bytes. */
static int env_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 128 || isdigit((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return 0;
	return 1;
}

/* The index of the step named name, or -1. */
static int step_index(const json_t *steps, const char *name)
{
	size_t i;
	json_t *st;

	json_array_foreach(steps, i, st)
	{
		const char *n = json_string_value(json_object_get(st, "name"));
		if (n && name && strcmp(n, name) == 0)
			return (int)i;
	}
	return -1;
}

/* env of a step or a run's vars: {NAME: text}; what is "a step's env" or "vars". */
static int env_check(const json_t *env, const char *what, char *msg, size_t msglen)
{
	const char *k;
	json_t *v;

	if (json_object_size(env) > FLOW_MAX_VARS) {
		snprintf(msg, msglen, "%s: at most %d variables", what, FLOW_MAX_VARS);
		return OUTPOST_E_BAD_ARGS;
	}
	json_object_foreach((json_t *)env, k, v)
	{
		if (!env_name_ok(k)) {
			snprintf(msg, msglen,
			         "%s: '%.64s' is not a variable name ([A-Za-z_][A-Za-z0-9_]*)",
			         what, k);
			return OUTPOST_E_BAD_ARGS;
		}
		if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v)) {
			snprintf(msg, msglen, "%s: %s must be a string, a number or a boolean",
			         what, k);
			return OUTPOST_E_BAD_ARGS;
		}
		if (json_is_string(v) &&
		    (json_string_length(v) > FLOW_VAR_MAX ||
		     memchr(json_string_value(v), '\0', json_string_length(v)))) {
			snprintf(msg, msglen, "%s: %s: at most %d bytes, no NUL", what, k,
			         FLOW_VAR_MAX);
			return OUTPOST_E_BAD_ARGS;
		}
	}
	return 0;
}

static int step_check(const json_t *steps, size_t i, const json_t *st, int flow_target, char *msg,
                      size_t msglen)
{
	const char *name = json_string_value(json_object_get(st, "name"));
	const char *onf = json_string_value(json_object_get(st, "on_failure"));
	json_t *cmd = json_object_get(st, "command"), *v;
	int kinds = !!cmd + !!json_object_get(st, "script") + !!json_object_get(st, "plugin");
	char where[160], inner[300];
	size_t j;

	snprintf(where, sizeof(where), "steps[%zu]", i);
	if (wire_check_named(step_fields, st, "field", inner, sizeof(inner)) < 0)
		goto bad;
	snprintf(where, sizeof(where), "steps[%zu] (%.64s)", i, name);
	if (!flow_name_ok(name)) {
		snprintf(inner, sizeof(inner), "name: 1 to 64 of A-Z a-z 0-9 . _ -");
		goto bad;
	}
	if (step_index(steps, name) != (int)i) {
		snprintf(inner, sizeof(inner), "name: another step before it has this name");
		goto bad;
	}
	if (kinds != 1) {
		snprintf(inner, sizeof(inner), "give exactly one of command, script and plugin");
		goto bad;
	}
	json_array_foreach(cmd, j, v) if (!json_is_string(v))
	{
		snprintf(inner, sizeof(inner), "command: an array of strings (argv)");
		goto bad;
	}
	if (cmd && json_array_size(cmd) == 0) {
		snprintf(inner, sizeof(inner), "command: an array of strings (argv), not empty");
		goto bad;
	}
	if (json_object_get(st, "plugin") &&
	    (!wire_name_ok(json_string_value(json_object_get(st, "plugin"))) ||
	     !wire_name_ok(json_string_value(json_object_get(st, "op"))))) {
		snprintf(inner, sizeof(inner),
		         "plugin and op: names of 1 to 32 of a-z 0-9 _, starting with a letter");
		goto bad;
	}
	if (!json_object_get(st, "plugin") &&
	    (json_object_get(st, "op") || json_object_get(st, "args"))) {
		snprintf(inner, sizeof(inner), "op and args go with plugin");
		goto bad;
	}
	if (json_object_get(st, "env") && !cmd && !json_object_get(st, "script")) {
		snprintf(inner, sizeof(inner), "env goes with command or script");
		goto bad;
	}
	if (env_check(json_object_get(st, "env"), "env", inner, sizeof(inner)) < 0)
		goto bad;
	v = json_object_get(st, "target");
	if (!flow_target && (!json_string_value(v) || !*json_string_value(v))) {
		snprintf(inner, sizeof(inner), "target: a selector (the flow has no target)");
		goto bad;
	}
	v = json_object_get(st, "timeout_ms");
	if (v && (json_integer_value(v) < 1 || json_integer_value(v) > 86400000L)) {
		snprintf(inner, sizeof(inner), "timeout_ms: 1 (1 ms) to 86400000 (1 day)");
		goto bad;
	}
	if (onf && strcmp(onf, "stop") && strcmp(onf, "continue")) {
		if (strncmp(onf, "goto ", 5) != 0) {
			snprintf(inner, sizeof(inner),
			         "on_failure: stop, continue or goto STEP, not \"%.64s\"", onf);
			goto bad;
		}
		if (step_index(steps, onf + 5) < 0) {
			snprintf(inner, sizeof(inner),
			         "on_failure: \"%.64s\" names no step of this flow", onf);
			goto bad;
		}
	}
	return 0;
bad:
	snprintf(msg, msglen, "%s: %s", where, inner);
	return OUTPOST_E_BAD_ARGS;
}

int flows_check(const json_t *def, char *msg, size_t msglen)
{
	const char *name = json_string_value(json_object_get(def, "name"));
	const char *target = json_string_value(json_object_get(def, "target"));
	json_t *steps = json_object_get(def, "steps"), *st;
	size_t i;

	if (wire_check_named(flow_fields, def, "field", msg, msglen) < 0)
		return OUTPOST_E_BAD_ARGS;
	if (!flow_name_ok(name)) {
		snprintf(msg, msglen, "name: 1 to 64 of A-Z a-z 0-9 . _ -");
		return OUTPOST_E_BAD_ARGS;
	}
	if (json_array_size(steps) < 1 || json_array_size(steps) > FLOW_MAX_STEPS) {
		snprintf(msg, msglen, "steps: 1 to %d steps", FLOW_MAX_STEPS);
		return OUTPOST_E_BAD_ARGS;
	}
	json_array_foreach(steps, i, st)
	{
		if (!json_is_object(st)) {
			snprintf(msg, msglen, "steps[%zu]: a step is an object", i);
			return OUTPOST_E_BAD_ARGS;
		}
		if (step_check(steps, i, st, target && *target, msg, msglen) < 0)
			return OUTPOST_E_BAD_ARGS;
	}
	return 0;
}

/* ---- runs ---- */

static int64_t int_of(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static const char *str_of(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int run_save(struct hub *h, json_t *run, int64_t due_ms)
{
	int64_t now = clk_real_ms();
	int rc;

	json_object_set_new(run, "updated_ms", json_integer(now));
	rc = h->store->ops->rec_put(h->store, "flow_run", str_of(run, "id"), run, due_ms, now, 0);
	if (rc < 0)
		log_error(h->log, "flows", "run %s: cannot store its state (%s)", str_of(run, "id"),
		          err_name(rc));
	return rc;
}

static void run_finish(struct hub *h, json_t *run, const char *state, const char *error)
{
	json_object_set_new(run, "state", json_string(state));
	json_object_set_new(run, "ended_ms", json_integer(clk_real_ms()));
	json_object_set_new(run, "task_id", json_null());
	if (error)
		json_object_set_new(run, "error", json_string(error));
	log_info(h->log, "flows", "run %s of flow %s: %s%s%s", str_of(run, "id"),
	         str_of(run, "flow"), state, error ? ": " : "", error ? error : "");
	audit_record_as(h, str_of(run, "origin"), "flow.end", str_of(run, "id"),
	                json_pack("{s:s, s:s, s:s?}", "flow", str_of(run, "flow"), "state", state,
	                          "error", error));
}

/* A variable's value as environment text. */
static json_t *env_text(const json_t *v)
{
	char num[64];

	if (json_is_string(v))
		return json_incref((json_t *)v);
	if (json_is_integer(v))
		snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(num, sizeof(num), "%.17g", json_real_value(v));
	else
		snprintf(num, sizeof(num), "%s", json_is_true(v) ? "true" : "false");
	return json_string(num);
}

/* The op's arguments of step st: a command or script gets the run's vars and its own env. */
static json_t *step_args(const json_t *run, const json_t *st)
{
	json_t *args, *env, *v;
	const char *k;

	if (json_object_get(st, "plugin"))
		return json_object_get(st, "args") ? json_deep_copy(json_object_get(st, "args"))
		                                   : json_object();
	env = json_object();
	json_object_foreach(json_object_get(run, "vars"), k, v)
	    json_object_set_new(env, k, env_text(v));
	json_object_foreach(json_object_get(st, "env"), k, v)
	    json_object_set_new(env, k, env_text(v));
	json_object_set_new(env, "OUTPOST_FLOW", json_string(str_of(run, "flow")));
	json_object_set_new(env, "OUTPOST_FLOW_RUN", json_string(str_of(run, "id")));
	json_object_set_new(env, "OUTPOST_FLOW_STEP", json_string(str_of(st, "name")));
	json_object_set_new(env, "OUTPOST_FLOW_ORIGIN", json_string(str_of(run, "origin")));
	args = json_pack("{s:o}", "env", env);
	if (json_object_get(st, "command"))
		json_object_set(args, "argv", json_object_get(st, "command"));
	else
		json_object_set(args, "script", json_object_get(st, "script"));
	return args;
}

/* Whether one host's copy succeeded: the op answered ok and, for a command, exited 0. */
static int row_ok(const json_t *row)
{
	const json_t *resp = json_object_get(row, "response");
	const json_t *res = json_object_get(resp, "result"), *code;
	const char *state = str_of(row, "state");

	if (!state || strcmp(state, "ok") != 0 || !json_is_true(json_object_get(resp, "ok")))
		return 0;
	code = json_object_get(res, "exit_code");
	if (json_object_get(res, "timed_out") && json_is_true(json_object_get(res, "timed_out")))
		return 0;
	return !code || (json_is_integer(code) && json_integer_value(code) == 0);
}

/* Records the step's outcome in the history and moves the run on: the next step, or on a
 * failure what on_failure says. */
static void run_step_done(struct hub *h, json_t *run, const json_t *st, int ok, json_t *detail)
{
	json_t *steps = json_object_get(json_object_get(run, "definition"), "steps");
	const char *onf = str_of(st, "on_failure");
	int i = (int)int_of(run, "step");

	json_object_set_new(detail, "step", json_string(str_of(st, "name")));
	json_object_set_new(detail, "outcome", json_string(ok ? "ok" : "failed"));
	json_object_set_new(detail, "at_ms", json_integer(clk_real_ms()));
	json_array_append_new(json_object_get(run, "history"), detail);
	json_object_set_new(run, "task_id", json_null());
	if (!ok) {
		json_object_set_new(run, "failures", json_integer(int_of(run, "failures") + 1));
		if (!onf || strcmp(onf, "stop") == 0) {
			char why[200];
			snprintf(why, sizeof(why), "step %s failed", str_of(st, "name"));
			run_finish(h, run, "failed", why);
			return;
		}
		if (strncmp(onf, "goto ", 5) == 0)
			i = step_index(steps, onf + 5) - 1;
	}
	json_object_set_new(run, "step", json_integer(i + 1));
	if ((size_t)(i + 1) >= json_array_size(steps))
		run_finish(h, run, "ok", NULL);
}

/* Starts the current step's task. 1: started (or the step ended at once), <0: store error. */
static void run_step_start(struct hub *h, json_t *run)
{
	json_t *steps = json_object_get(json_object_get(run, "definition"), "steps");
	json_t *st = json_array_get(steps, (size_t)int_of(run, "step")), *args, *task = NULL;
	const char *target = str_of(st, "target");
	int64_t n = int_of(run, "executed") + 1;
	char tid[160], actor[96], msg[512];
	struct task_spec sp = {0};
	int rc;

	if (n > FLOW_MAX_RUNS_STEPS) {
		run_finish(h, run, "failed", "too many steps run (a goto loop?)");
		return;
	}
	json_object_set_new(run, "executed", json_integer(n));
	snprintf(tid, sizeof(tid), "%s:%lld", str_of(run, "id"), (long long)n);
	snprintf(actor, sizeof(actor), "flow:%s", str_of(run, "id"));
	args = step_args(run, st);
	sp.id = tid;
	sp.target = target ? target : str_of(json_object_get(run, "definition"), "target");
	sp.plugin = json_object_get(st, "plugin") ? str_of(st, "plugin") : "exec";
	sp.op = json_object_get(st, "plugin") ? str_of(st, "op") : "run";
	sp.args = args;
	sp.timeout_ms = int_of(st, "timeout_ms");
	sp.created_by = actor;
	rc = tasks_submit(h, &sp, &task, msg, sizeof(msg));
	json_decref(args);
	if (rc < 0) {
		log_warn(h->log, "flows", "run %s step %s: %s", str_of(run, "id"),
		         str_of(st, "name"), msg);
		run_step_done(h, run, st, 0, json_pack("{s:s}", "error", msg));
		return;
	}
	json_object_set_new(run, "task_id", json_string(tid));
	json_decref(task);
}

/* The current step's task ended or not: 1 when the run moved. */
static int run_step_check(struct hub *h, json_t *run)
{
	json_t *steps = json_object_get(json_object_get(run, "definition"), "steps");
	json_t *st = json_array_get(steps, (size_t)int_of(run, "step")), *task = NULL, *row;
	const char *tid = str_of(run, "task_id");
	int64_t nok = 0, nfail = 0;
	size_t i;
	int rc = h->store->ops->task_get(h->store, tid, 1, 0, &task);

	if (rc == OUTPOST_E_NOT_FOUND) {
		run_step_done(h, run, st, 0,
		              json_pack("{s:s, s:s}", "task_id", tid, "error", "the task is gone"));
		return 1;
	}
	if (rc < 0)
		return 0;
	if (strcmp(str_of(task, "state"), "running") == 0) {
		json_decref(task);
		return 0;
	}
	json_array_foreach(json_object_get(task, "hosts"), i, row)
	{
		if (row_ok(row))
			nok++;
		else
			nfail++;
	}
	json_decref(task);
	run_step_done(h, run, st, nfail == 0 && nok > 0,
	              json_pack("{s:s, s:I, s:I}", "task_id", tid, "hosts_ok", (json_int_t)nok,
	                        "hosts_failed", (json_int_t)nfail));
	return 1;
}

/* Moves one run as far as it goes now, and stores it. */
static void run_advance(struct hub *h, json_t *run)
{
	int64_t now = clk_real_ms();

	for (int moves = 0; moves < 8 && strcmp(str_of(run, "state"), "running") == 0; moves++) {
		if (json_is_string(json_object_get(run, "task_id"))) {
			if (!run_step_check(h, run))
				break;
		} else {
			run_step_start(h, run);
		}
	}
	run_save(h, run, strcmp(str_of(run, "state"), "running") == 0 ? now + FLOW_POLL_MS : 0);
}

void flows_tick(struct hub *h)
{
	json_t *due = NULL, *run;
	size_t i;

	if (!zk_leads(h->zk))
		return;
	if (h->store->ops->rec_due(h->store, "flow_run", clk_real_ms(), FLOW_TICK_RUNS, &due) < 0)
		return;
	/* The runs' states and audit entries of this tick in one commit (a step's task is
	 * committed on its own: tasks_submit). */
	hub_batch_begin(h);
	json_array_foreach(due, i, run) run_advance(h, run);
	hub_batch_end(h, "flows");
	json_decref(due);
}

/* A new run of def, stored due now. id: the caller's (a repeat finds the first run) or
 * NULL. *out (may be NULL): the run. */
static int run_create(struct hub *h, const json_t *def, const char *id, const json_t *vars,
                      const char *origin, json_t **out, char *msg, size_t msglen)
{
	int64_t now = clk_real_ms();
	char genid[40];
	json_t *run;
	int rc;

	if (out)
		*out = NULL;
	if (vars && !json_is_object(vars)) {
		snprintf(msg, msglen, "vars: an object of {NAME: value}");
		return OUTPOST_E_BAD_ARGS;
	}
	if ((rc = env_check(vars, "vars", msg, msglen)) < 0)
		return rc;
	if (!id) {
		if (tasks_new_id("r-", genid, sizeof(genid)) < 0)
			return OUTPOST_E_INTERNAL;
		id = genid;
	}
	run = json_pack("{s:s, s:s, s:s, s:o, s:O, s:s, s:i, s:n, s:i, s:i, s:I, s:I, s:[]}", "id",
	                id, "flow", str_of(def, "name"), "origin", origin ? origin : "hub", "vars",
	                vars ? json_incref((json_t *)vars) : json_object(), "definition", def,
	                "state", "running", "step", 0, "task_id", "executed", 0, "failures", 0,
	                "created_ms", (json_int_t)now, "updated_ms", (json_int_t)now, "history");
	if (!run)
		return OUTPOST_E_INTERNAL;
	rc = h->store->ops->rec_put(h->store, "flow_run", id, run, now, now, 1);
	if (rc == OUTPOST_E_CONFLICT) { /* a repeat: the first run */
		json_decref(run);
		run = NULL;
		rc = h->store->ops->rec_get(h->store, "flow_run", id, &run);
	} else if (rc == 0) {
		audit_record_as(h, origin ? origin : "hub", "flow.start", id,
		                json_pack("{s:s}", "flow", str_of(def, "name")));
		log_info(h->log, "flows", "run %s of flow %s started by %s", id,
		         str_of(def, "name"), origin ? origin : "hub");
	}
	if (rc < 0) {
		snprintf(msg, msglen, "cannot store the run (%s)", err_name(rc));
		json_decref(run);
		return rc;
	}
	if (out)
		*out = run;
	else
		json_decref(run);
	return 0;
}

int flow_start(struct hub *h, const char *flow_name, const json_t *vars, const char *origin,
               char *id_out, size_t id_len, char *msg, size_t msglen)
{
	json_t *def = NULL, *run = NULL;
	int rc;

	if (!flow_name_ok(flow_name) ||
	    (rc = h->store->ops->rec_get(h->store, "flow", flow_name, &def)) ==
	        OUTPOST_E_NOT_FOUND) {
		snprintf(msg, msglen, "no flow named '%.64s'", flow_name ? flow_name : "");
		return OUTPOST_E_NOT_FOUND;
	}
	if (rc < 0) {
		snprintf(msg, msglen, "cannot read flow %s (%s)", flow_name, err_name(rc));
		return rc;
	}
	rc = run_create(h, def, NULL, vars, origin, &run, msg, msglen);
	if (rc == 0 && id_out)
		snprintf(id_out, id_len, "%s", str_of(run, "id"));
	json_decref(run);
	json_decref(def);
	return rc;
}

/* ---- routes ---- */

static int api_limit(struct httpd_req *req)
{
	const char *s = httpd_req_query(req, "limit");
	long n = s ? strtol(s, NULL, 10) : 100;
	return n < 1 ? 1 : n > 1000 ? 1000 : (int)n;
}

void flows_api_list(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *v = NULL;
	int rc = h->store->ops->rec_list(h->store, "flow", api_limit(req), &v);

	hub_respond_store(req, rc, v, "flows");
}

/* POST /api/v1/flows: a definition, new or replacing the one of that name. */
void flows_api_put(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *body = NULL;
	char msg[512];
	int rc;

	if (httpd_req_json(req, &body) < 0)
		return;
	if (flows_check(body, msg, sizeof(msg)) < 0) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "%s", msg);
		goto out;
	}
	rc = h->store->ops->rec_put(h->store, "flow", str_of(body, "name"), body, 0, clk_real_ms(),
	                            0);
	if (rc < 0) {
		hub_respond_store(req, rc, NULL, "flow");
		goto out;
	}
	audit_record(h, req, "flow.define", str_of(body, "name"),
	             json_pack("{s:I}", "steps",
	                       (json_int_t)json_array_size(json_object_get(body, "steps"))));
	httpd_respond_ok(req, json_incref(body));
out:
	json_decref(body);
}

void flows_api_get(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	const char *name = httpd_req_arg(req, 0);
	json_t *v = NULL;
	int rc;

	if (!flow_name_ok(name)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "flow name: 1 to 64 of A-Z a-z 0-9 . _ -");
		return;
	}
	rc = h->store->ops->rec_get(h->store, "flow", name, &v);
	hub_respond_store(req, rc, v, "flow");
}

static const struct outpost_arg no_fields[] = {{NULL, 0, 0, NULL}};

void flows_api_remove(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	const char *name = httpd_req_arg(req, 0);
	json_t *body = NULL;
	int rc;

	if (!flow_name_ok(name)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "flow name: 1 to 64 of A-Z a-z 0-9 . _ -");
		return;
	}
	if (httpd_req_fields(req, no_fields, &body) < 0)
		return;
	json_decref(body);
	rc = h->store->ops->rec_del(h->store, "flow", name);
	if (rc < 0) {
		hub_respond_store(req, rc, NULL, "flow");
		return;
	}
	audit_record(h, req, "flow.remove", name, NULL);
	httpd_respond_ok(req, json_pack("{s:s, s:b}", "name", name, "removed", 1));
}

/* POST /api/v1/flows/<name>/run {"id", "vars"} */
static const struct outpost_arg run_fields[] = {
    {"id", OUTPOST_ARG_STRING, 0, "the caller's id: a repeat returns the first run"},
    {"vars", OUTPOST_ARG_OBJECT, 0, "{NAME: value}: environment of command and script steps"},
    {NULL, 0, 0, NULL},
};

void flows_api_run(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	const char *name = httpd_req_arg(req, 0), *id;
	json_t *body = NULL, *def = NULL, *run = NULL;
	char msg[512];
	int rc;

	if (!flow_name_ok(name)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "flow name: 1 to 64 of A-Z a-z 0-9 . _ -");
		return;
	}
	if (httpd_req_fields(req, run_fields, &body) < 0)
		return;
	id = str_of(body, "id");
	if (id && (!wire_id_ok(id) || strlen(id) > 64)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "id: 1 to 64 of A-Z a-z 0-9 . _ : -");
		goto out;
	}
	rc = h->store->ops->rec_get(h->store, "flow", name, &def);
	if (rc < 0) {
		hub_respond_store(req, rc, NULL, "flow");
		goto out;
	}
	rc = run_create(h, def, id, json_object_get(body, "vars"), audit_caller(req), &run, msg,
	                sizeof(msg));
	if (rc < 0)
		httpd_respond_error(req, rc, "%s", msg);
	else
		httpd_respond_ok(req, run);
out:
	json_decref(def);
	json_decref(body);
}

/* A run as listed: without its copy of the definition. */
void flows_api_runs(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *v = NULL, *run;
	size_t i;
	int rc = h->store->ops->rec_list(h->store, "flow_run", api_limit(req), &v);

	json_array_foreach(v, i, run) json_object_del(run, "definition");
	hub_respond_store(req, rc, v, "flow runs");
}

void flows_api_run_get(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	const char *id = httpd_req_arg(req, 0);
	json_t *v = NULL;
	int rc;

	if (!wire_id_ok(id)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "bad run id");
		return;
	}
	rc = h->store->ops->rec_get(h->store, "flow_run", id, &v);
	hub_respond_store(req, rc, v, "flow run");
}

/* POST /api/v1/flow-runs/<id>/cancel: the run ends, its step's task is cancelled. A run that
 * ended already is answered as it is. */
void flows_api_run_cancel(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	const char *id = httpd_req_arg(req, 0), *tid;
	json_t *body = NULL, *run = NULL;
	int rc;

	if (!wire_id_ok(id)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "bad run id");
		return;
	}
	if (httpd_req_fields(req, no_fields, &body) < 0)
		return;
	json_decref(body);
	rc = h->store->ops->rec_get(h->store, "flow_run", id, &run);
	if (rc < 0) {
		hub_respond_store(req, rc, NULL, "flow run");
		return;
	}
	if (strcmp(str_of(run, "state"), "running") == 0) {
		tid = str_of(run, "task_id");
		if (tid && h->store->ops->task_cancel(h->store, tid, clk_real_ms()) == 0)
			tasks_wake_task(h, tid);
		run_finish(h, run, "cancelled", NULL);
		if ((rc = run_save(h, run, 0)) < 0) {
			json_decref(run);
			hub_respond_store(req, rc, NULL, "flow run");
			return;
		}
		audit_record(h, req, "flow.cancel", id, NULL);
	}
	httpd_respond_ok(req, run);
}
