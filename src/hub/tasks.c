/* The task engine: targeting and fan-out, the task routes, results from agents, operators'
 * waits on progress, and the once-a-second tick (expiry, rolling batches). Hosts come from the
 * registry (registry.h); the copies go out through the agents' polls (agents.h). Everything
 * runs on the hub's loop thread. */
#include "hub_impl.h"
#include "tasks.h"
#include "rules.h"
#include "agents.h"
#include "audit.h"
#include "registry.h"
#include "zk.h"
#include "core/clk.h"
#include "core/err.h"
#include "core/loop.h"
#include "core/wire.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int task_id_ok(const char *id)
{
	return wire_id_ok(id);
}

/* ---- what a viewer may see of a task ---- */

#define REDACTED "[redacted]"

/* Replaces, in args (an op's arguments), what may carry secrets: env values, stdin, file
 * content. In place; anything not an object is left alone. */
static void args_redact(json_t *args)
{
	json_t *env = json_object_get(args, "env"), *v;
	const char *k;

	if (!json_is_object(args))
		return;
	json_object_foreach(env, k, v) json_object_set_new(env, k, json_string(REDACTED));
	if (json_object_get(args, "stdin"))
		json_object_set_new(args, "stdin", json_string(REDACTED));
	if (json_object_get(args, "content"))
		json_object_set_new(args, "content", json_string(REDACTED));
}

/* A task (or a list of them) as a viewer sees it: args redacted, and file content in the
 * hosts' results (file.get). Operators and admins see all. In place; returns v. */
static json_t *task_for_caller(struct httpd_req *req, json_t *v)
{
	struct hub_caller *c = httpd_req_data(req);
	json_t *t, *row;
	size_t i, j;

	if (!v || (c && c->role >= ROLE_OPERATOR))
		return v;
	if (json_is_object(v) && !json_object_get(v, "args")) /* {"tasks": [...]} */
		return task_for_caller(req, json_object_get(v, "tasks")), v;
	if (!json_is_array(v)) {
		args_redact(json_object_get(v, "args"));
		json_array_foreach(json_object_get(v, "hosts"), j, row)
		    args_redact(json_object_get(json_object_get(row, "response"), "result"));
		return v;
	}
	json_array_foreach(v, i, t) task_for_caller(req, t);
	return v;
}

/* task.create in the audit log: what ran, after the task itself is pruned. sha256 is of the
 * task's canonical JSON (sec_canonical: the text the hub signs, less the per-host binding), so
 * a copy of the task kept elsewhere can be matched; "ran" is the task with its secrets
 * redacted as a viewer would see them. */
static void tasks_audit_create(struct hub *h, const char *actor, const json_t *task,
                               const json_t *ids)
{
	char *text = sec_canonical(task), hex[65] = "";
	json_t *ran = json_deep_copy(task);

	if (text)
		sec_sha256_hex(text, strlen(text), hex);
	free(text);
	if (ran)
		args_redact(json_object_get(ran, "args"));
	audit_record_as(
	    h, actor, "task.create", json_string_value(json_object_get(task, "id")),
	    json_pack("{s:O, s:O, s:O, s:I, s:s, s:o?}", "target", json_object_get(task, "target"),
	              "plugin", json_object_get(task, "plugin"), "op", json_object_get(task, "op"),
	              "hosts", (json_int_t)json_array_size(ids), "sha256", hex, "ran", ran));
}

/* ---- operators' waits on a task's progress ---- */

static void watch_answer(struct hub *h, struct hub_wait *w)
{
	json_t *task = NULL;
	int rc;

	for (struct hub_wait **pp = &h->watches; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	if (w->timer)
		loop_timer_del(h->loop, w->timer);
	rc = h->store->ops->task_get(h->store, w->key, 1, w->since, &task);
	if (rc < 0)
		httpd_respond_error(w->req, rc, "no such task");
	else
		httpd_respond_ok(w->req, task_for_caller(w->req, task));
	free(w);
}

static void watch_on_timeout(void *arg)
{
	struct hub_wait *w = arg;
	w->timer = NULL;
	watch_answer(w->h, w);
}

void tasks_wake_task(struct hub *h, const char *task_id)
{
	struct hub_wait *w = h->watches, *next;

	for (; w; w = next) {
		next = w->next;
		if (strcmp(w->key, task_id) == 0)
			watch_answer(h, w);
	}
}

/* In scale mode another hub may store the results a wait here is for: once a second each
 * held wait reads the shared store again and is answered when its task moved on. */
static void tasks_recheck_waits(struct hub *h)
{
	struct hub_wait *w = h->watches, *next;

	for (; w; w = next) {
		json_t *task = NULL;
		next = w->next;
		if (h->store->ops->task_get(h->store, w->key, 1, w->since, &task) == 0 &&
		    (json_integer_value(json_object_get(task, "seq")) > w->since ||
		     strcmp(json_string_value(json_object_get(task, "state")), "running") != 0))
			watch_answer(h, w);
		json_decref(task);
	}
}

void tasks_release_all(struct hub *h)
{
	while (h->watches)
		watch_answer(h, h->watches);
}

/* Matches target against accepted hosts; *ids gets the array of matched ids. */
static int tasks_target(struct hub *h, const char *target, json_t **ids, char *msg, size_t msglen)
{
	int rc = registry_select(h, target, 0, ids, msg, msglen);

	if (rc == 0 && json_array_size(*ids) == 0) {
		snprintf(msg, msglen, "target '%.200s' matches no accepted host", target);
		json_decref(*ids);
		*ids = NULL;
		rc = OUTPOST_E_NOT_FOUND;
	}
	return rc;
}

/* batch: a count or "N%" of total; 0 means all at once. -1 when malformed. */
static int64_t tasks_batch(const json_t *v, size_t total)
{
	const char *s;
	char *end;
	double pct;

	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v))
		return json_integer_value(v) >= 1 ? json_integer_value(v) : -1;
	s = json_string_value(v);
	if (!s)
		return -1;
	pct = strtod(s, &end);
	if (end == s || strcmp(end, "%") != 0 || !(pct > 0 && pct <= 100))
		return -1;
	return (int64_t)ceil(pct * (double)total / 100.0);
}

/* Copies became ready for these hosts: the held polls of the HTTPS link get them, and in
 * scale mode the zookeeper-link hosts' queues (zk.c picks which hosts those are). */
static void tasks_wake_hosts(struct hub *h, json_t *ids)
{
	agents_wake_hosts(h->agents, ids);
	zk_push(h->zk, ids);
}

int tasks_new_id(const char *prefix, char *out, size_t cap)
{
	char *r = sec_token("");

	if (!r)
		return OUTPOST_E_INTERNAL;
	snprintf(out, cap, "%s%.16s", prefix, r);
	for (char *p = out; *p; p++)
		if (*p == '_')
			*p = '.';
	free(r);
	return 0;
}

/* Stores a task checked whole (task's fields as task_create takes them, ids its hosts),
 * audits it as actor's and wakes the hosts' polls. *out: the task as stored (the first one
 * when the id was taken: a repeat). */
static int tasks_store(struct hub *h, json_t *task, json_t *ids, const char *actor, json_t **out,
                       char *msg, size_t msglen)
{
	const char *id = json_string_value(json_object_get(task, "id"));
	json_t *existing = NULL, *waiting = NULL;
	struct phase_mark m;
	int rc;

	*out = NULL;
	phase_start(&m);
	rc = h->store->ops->task_create(h->store, task, ids, &existing);
	phase_end(&h->st.phases[HP_CREATE], &m, rc == 0);
	if (rc == OUTPOST_E_CONFLICT) { /* a repeated id: the first task, unchanged */
		*out = existing;
		return 0;
	}
	json_decref(existing);
	if (rc < 0) {
		snprintf(msg, msglen, "cannot store the task (%s)", err_name(rc));
		return rc;
	}
	h->st.tasks_created++;
	tasks_audit_create(h, actor, task, ids);
	log_info(h->log, "tasks", "task %s: %s.%s on %zu host(s) (%s)", id,
	         json_string_value(json_object_get(task, "plugin")),
	         json_string_value(json_object_get(task, "op")), json_array_size(ids),
	         json_string_value(json_object_get(task, "target")));
	if (h->store->ops->task_hosts_waiting(h->store, id, &waiting) == 0)
		tasks_wake_hosts(h, waiting);
	json_decref(waiting);
	rc = h->store->ops->task_get(h->store, id, 0, 0, out);
	if (rc < 0)
		snprintf(msg, msglen, "task stored but cannot be read back");
	return rc;
}

/* tasks_store for the hub's own tasks (flows, rules), which may run inside a store batch: the
 * task is committed on its own before its hosts are woken, and the batch goes on after. */
static int tasks_put(struct hub *h, json_t *task, json_t *ids, const char *actor, json_t **out,
                     char *msg, size_t msglen)
{
	int batch = hub_batch_end(h, "tasks");
	int rc = tasks_store(h, task, ids, actor, out, msg, msglen);

	if (batch)
		hub_batch_begin(h);
	return rc;
}

int tasks_submit(struct hub *h, const struct task_spec *sp, json_t **out, char *msg, size_t msglen)
{
	int64_t now = clk_real_ms();
	int64_t timeout = sp->timeout_ms > 0 ? sp->timeout_ms : h->conf->tasks.default_timeout_ms;
	int64_t expires =
	    sp->expires_in_ms > 0 ? sp->expires_in_ms : h->conf->tasks.default_expiry_ms;
	json_t *ids = NULL, *task = NULL;
	int rc;

	*out = NULL;
	if (!task_id_ok(sp->id) || !wire_name_ok(sp->plugin) || !wire_name_ok(sp->op) ||
	    !sp->target || timeout > 86400000L) {
		snprintf(msg, msglen, "a task needs an id, a target, a plugin and an op");
		return OUTPOST_E_BAD_ARGS;
	}
	/* A repeat (a flow resumed after a restart) finds its task whatever the hosts are now. */
	if (h->store->ops->task_get(h->store, sp->id, 0, 0, out) == 0)
		return 0;
	if ((rc = tasks_target(h, sp->target, &ids, msg, msglen)) < 0)
		return rc;
	task = json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:s, s:I, s:I}", "id", sp->id,
	                 "target", sp->target, "plugin", sp->plugin, "op", sp->op, "args",
	                 sp->args ? json_incref((json_t *)sp->args) : json_object(), "timeout_ms",
	                 (json_int_t)timeout, "created_ms", (json_int_t)now, "expires_ms",
	                 (json_int_t)(now + expires), "created_by", sp->created_by, "batch_size",
	                 (json_int_t)0, "max_failures", (json_int_t)-1);
	if (!task) {
		snprintf(msg, msglen, "out of memory");
		rc = OUTPOST_E_INTERNAL;
	} else {
		rc = tasks_put(h, task, ids, sp->created_by, out, msg, msglen);
	}
	json_decref(task);
	json_decref(ids);
	return rc;
}

/* A task the rules start (rules_act.c): a repeated id is the first task, unchanged (0). */
int tasks_start(struct hub *h, const char *id, const char *target, json_t *ids, const char *plugin,
                const char *op, json_t *args, int64_t timeout_ms, const char *by)
{
	int64_t now = clk_real_ms();
	json_t *task, *out = NULL;
	char msg[256];
	int rc;

	if (!timeout_ms)
		timeout_ms = h->conf->tasks.default_timeout_ms;
	task = json_pack("{s:s, s:s, s:s, s:s, s:O, s:I, s:I, s:I, s:s, s:I, s:I}", "id", id,
	                 "target", target, "plugin", plugin, "op", op, "args", args, "timeout_ms",
	                 (json_int_t)timeout_ms, "created_ms", (json_int_t)now, "expires_ms",
	                 (json_int_t)(now + h->conf->tasks.default_expiry_ms), "created_by", by,
	                 "batch_size", (json_int_t)0, "max_failures", (json_int_t)-1);
	if (!task)
		return OUTPOST_E_INTERNAL;
	rc = tasks_put(h, task, ids, by, &out, msg, sizeof(msg));
	json_decref(out);
	json_decref(task);
	return rc;
}

/* POST /api/v1/tasks (docs/protocol.md); ranges are checked below, one message per field. */
static const struct outpost_arg task_fields[] = {
    {"id", OUTPOST_ARG_STRING, 0, "the caller's id: a repeat returns the first task"},
    {"target", OUTPOST_ARG_STRING, 1, "a selector"},
    {"plugin", OUTPOST_ARG_STRING, 1, "a plugin name"},
    {"op", OUTPOST_ARG_STRING, 1, "an op name"},
    {"args", OUTPOST_ARG_OBJECT, 0, "the op's arguments"},
    {"timeout_ms", OUTPOST_ARG_INT, 0, "1 ms to 1 day"},
    {"batch", WIRE_ARG_ANY, 0, "a count (10) or a percentage (\"10%\")"},
    {"expires_in_ms", OUTPOST_ARG_INT, 0, "1 s to 30 days"},
    {"max_failures", OUTPOST_ARG_INT, 0, ">= 0"},
    {NULL, 0, 0, NULL},
};

void tasks_api_create(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *body = NULL, *ids = NULL, *task = NULL, *existing = NULL;
	const char *id = NULL, *target = NULL, *plugin = NULL, *op = NULL;
	struct hub_caller *caller = httpd_req_data(req);
	const char *created_by = caller ? caller->name : "?";
	json_t *args = NULL, *v;
	int64_t now = clk_real_ms(), timeout, expires_in, batch, maxfail = -1;
	char msg[512], genid[40];
	int rc;

	if (httpd_req_fields(req, task_fields, &body) < 0)
		return;
	id = json_string_value(json_object_get(body, "id"));
	target = json_string_value(json_object_get(body, "target"));
	plugin = json_string_value(json_object_get(body, "plugin"));
	op = json_string_value(json_object_get(body, "op"));
	args = json_is_object(json_object_get(body, "args")) ? json_object_get(body, "args") : NULL;
	if (id && !task_id_ok(id)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "id must be 1 to 128 of A-Z a-z 0-9 . _ : -");
		goto out;
	}
	if (!wire_name_ok(plugin) || !wire_name_ok(op)) {
		httpd_respond_error(
		    req, OUTPOST_E_BAD_ARGS,
		    "plugin and op are names of 1 to 32 of a-z 0-9 _, starting with a letter");
		goto out;
	}
	v = json_object_get(body, "timeout_ms");
	timeout = json_is_integer(v) ? json_integer_value(v) : h->conf->tasks.default_timeout_ms;
	v = json_object_get(body, "expires_in_ms");
	expires_in = json_is_integer(v) ? json_integer_value(v) : h->conf->tasks.default_expiry_ms;
	/* One message per field: the caller learns which one to fix. */
	if (timeout < 1 || timeout > 86400000L) {
		httpd_respond_error(
		    req, OUTPOST_E_BAD_ARGS,
		    "timeout_ms must be an integer from 1 (1 ms) to 86400000 (1 day)");
		goto out;
	}
	if (expires_in < 1000 || expires_in > 30L * 86400000) {
		httpd_respond_error(
		    req, OUTPOST_E_BAD_ARGS,
		    "expires_in_ms must be an integer from 1000 (1 s) to 2592000000 (30 days)");
		goto out;
	}
	v = json_object_get(body, "max_failures");
	if (json_is_integer(v) && json_integer_value(v) < 0) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "max_failures must be a non-negative integer");
		goto out;
	}
	if (json_is_integer(v))
		maxfail = json_integer_value(v);
	rc = tasks_target(h, target, &ids, msg, sizeof(msg));
	if (rc < 0) {
		httpd_respond_error(req, rc, "%s", msg);
		goto out;
	}
	batch = tasks_batch(json_object_get(body, "batch"), json_array_size(ids));
	if (batch < 0) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "batch is a count (10) or a percentage (\"10%%\")");
		goto out;
	}
	if (!id) {
		if (tasks_new_id("t-", genid, sizeof(genid)) < 0) {
			httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
			goto out;
		}
		id = genid;
	}
	task = json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:s, s:I, s:I}", "id", id,
	                 "target", target, "plugin", plugin, "op", op, "args",
	                 args ? json_incref(args) : json_object(), "timeout_ms",
	                 (json_int_t)timeout, "created_ms", (json_int_t)now, "expires_ms",
	                 (json_int_t)(now + expires_in), "created_by", created_by, "batch_size",
	                 (json_int_t)batch, "max_failures", (json_int_t)maxfail);
	if (!task) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		goto out;
	}
	rc = tasks_put(h, task, ids, created_by, &existing, msg, sizeof(msg));
	if (rc < 0)
		httpd_respond_error(req, rc, "%s", msg);
	else
		httpd_respond_ok(req, json_incref(existing));
out:
	json_decref(existing);
	json_decref(task);
	json_decref(ids);
	json_decref(body);
}

void tasks_api_list(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	const char *s = httpd_req_query(req, "limit");
	long n = s ? strtol(s, NULL, 10) : 50;
	json_t *v = NULL;
	int rc = h->store->ops->task_list(h->store, n < 1 ? 1 : n > 1000 ? 1000 : (int)n, &v);

	if (rc < 0)
		httpd_respond_error(req, rc, "cannot list tasks");
	else
		httpd_respond_ok(req, task_for_caller(req, v));
}

/* GET /api/v1/tasks/<id>?wait=S&since=SEQ */
void tasks_api_get(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	const char *id = httpd_req_arg(req, 0);
	const char *ws = httpd_req_query(req, "wait"), *ss = httpd_req_query(req, "since");
	long wait = ws ? strtol(ws, NULL, 10) : 0;
	int64_t since = ss ? strtoll(ss, NULL, 10) : 0;
	json_t *task = NULL;
	struct hub_wait *w;
	int rc;

	if (!task_id_ok(id)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "bad task id");
		return;
	}
	if (wait < 0 || wait > 60 || since < 0) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "wait is 0..60 s, since >= 0");
		return;
	}
	rc = h->store->ops->task_get(h->store, id, 1, since, &task);
	if (rc < 0) {
		httpd_respond_error(
		    req, rc, rc == OUTPOST_E_NOT_FOUND ? "no such task %s" : "cannot read task %s",
		    id);
		return;
	}
	if (wait == 0 || json_integer_value(json_object_get(task, "seq")) > since ||
	    strcmp(json_string_value(json_object_get(task, "state")), "running") != 0 ||
	    h->stopping) {
		httpd_respond_ok(req, task_for_caller(req, task));
		return;
	}
	json_decref(task);
	w = calloc(1, sizeof(*w));
	if (!w) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		return;
	}
	w->h = h;
	w->req = req;
	w->since = since;
	snprintf(w->key, sizeof(w->key), "%s", id);
	if (loop_timer_add(h->loop, wait * 1000, 0, watch_on_timeout, w, &w->timer) < 0) {
		free(w);
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		return;
	}
	w->next = h->watches;
	h->watches = w;
}

/* POST /api/v1/tasks/<id>/cancel, no field: {} or an empty body. */
static const struct outpost_arg cancel_fields[] = {{NULL, 0, 0, NULL}};

void tasks_api_cancel(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	const char *id = httpd_req_arg(req, 0);
	json_t *task = NULL, *body = NULL;
	int rc;

	if (!task_id_ok(id)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "bad task id");
		return;
	}
	if (httpd_req_fields(req, cancel_fields, &body) < 0)
		return;
	json_decref(body);
	rc = h->store->ops->task_cancel(h->store, id, clk_real_ms());
	if (rc < 0) {
		httpd_respond_error(req, rc,
		                    rc == OUTPOST_E_NOT_FOUND ? "no such task" : "cannot cancel");
		return;
	}
	audit_record(h, req, "task.cancel", id, NULL);
	tasks_wake_task(h, id);
	rc = h->store->ops->task_get(h->store, id, h->zk != NULL, 0, &task);
	if (rc == 0 && h->zk) { /* the cancelled copies' queue entries go */
		json_t *hosts = json_array(), *row;
		size_t i;
		json_array_foreach(json_object_get(task, "hosts"), i, row)
		{
			const char *st = json_string_value(json_object_get(row, "state"));
			if (st && strcmp(st, "cancelled") == 0)
				json_array_append(hosts, json_object_get(row, "host_id"));
		}
		zk_cancel(h->zk, id, hosts);
		json_decref(hosts);
		json_object_del(task, "hosts");
	}
	if (rc < 0)
		httpd_respond_error(req, rc, "cannot read the task");
	else
		httpd_respond_ok(req, task);
}

/* ---- results from agents ---- */

static int state_ok(const char *s)
{
	static const char *const states[] = {"running", "ok",      "failed",  "timeout",
	                                     "lost",    "refused", "expired", NULL};
	for (size_t i = 0; s && states[i]; i++)
		if (strcmp(states[i], s) == 0)
			return 1;
	return 0;
}

/* POST /api/v1/agents/<id>/results (auth checked the id is the signer's): {"results":
 * [result]}, each result checked against its own table. */
static const struct outpost_arg results_fields[] = {
    {"results", OUTPOST_ARG_ARRAY, 1, "at most 10000 results"},
    {NULL, 0, 0, NULL},
};
static const struct outpost_arg result_fields[] = {
    {"task_id", OUTPOST_ARG_STRING, 1, "the task's id"},
    {"state", OUTPOST_ARG_STRING, 1, "running, ok, failed, timeout, lost, refused, expired"},
    {"response", OUTPOST_ARG_OBJECT, 0, "the op's envelope"},
    {"started_ms", OUTPOST_ARG_INT, 0, "ms since 1970"},
    {"finished_ms", OUTPOST_ARG_INT, 0, "ms since 1970"},
    {NULL, 0, 0, NULL},
};

void tasks_agent_results(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct hub_caller *c = httpd_req_data(req);
	json_t *body = NULL, *results, *r, *touched = json_object(), *hosts = NULL;
	int accepted = 0, any_done = 0;
	struct phase_mark m;
	const char *tid;
	json_t *v;
	size_t i;

	phase_start(&m);
	if (httpd_req_fields(req, results_fields, &body) < 0)
		goto out;
	registry_alive(h, c);
	results = json_object_get(body, "results");
	if (json_array_size(results) > 10000) {
		httpd_respond_error(
		    req, OUTPOST_E_BAD_ARGS,
		    "results: an array of at most 10000 {task_id, state, response}");
		goto out;
	}
	json_array_foreach(results, i, r)
	{
		const char *state = json_string_value(json_object_get(r, "state"));
		json_t *resp = json_object_get(r, "response");
		char msg[256];
		int done = 0;
		tid = json_string_value(json_object_get(r, "task_id"));
		if (wire_check_named(result_fields, r, "field", msg, sizeof(msg)) < 0) {
			httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "result %zu: %s", i, msg);
			goto out;
		}
		if (!task_id_ok(tid) || !state_ok(state)) {
			httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
			                    "result %zu: task_id, a known state and an envelope",
			                    i);
			goto out;
		}
		if (h->store->ops->task_report(
		        h->store, tid, c->host_id, state, json_is_object(resp) ? resp : NULL,
		        json_integer_value(json_object_get(r, "started_ms")),
		        json_integer_value(json_object_get(r, "finished_ms")), &done) == 0) {
			accepted++;
			json_object_set(touched, tid, json_true());
			if (strcmp(state, "running") != 0) /* its queue entry has done its work */
				zk_result(h->zk, tid, c->host_id);
			if (strcmp(state, "running") != 0 && strcmp(state, "ok") != 0)
				rules_note(h, c->host_id, "task_failed", tid, state);
			any_done |= done;
		}
	}
	h->st.results += (unsigned long long)accepted;
	json_object_foreach(touched, tid, v) tasks_wake_task(h, tid);
	/* A finished batch may release the next one. */
	if (h->store->ops->tasks_advance(h->store, clk_real_ms(), &hosts) == 0)
		tasks_wake_hosts(h, hosts);
	httpd_respond_ok(req, json_pack("{s:i}", "accepted", accepted));
	(void)any_done;
	phase_end(&h->st.phases[HP_RESULTS], &m, 1);
out:
	json_decref(hosts);
	json_decref(touched);
	json_decref(body);
}

/* ---- once a second ---- */

/* Tasks past their expiry end; a finished batch releases the next: on the hub that does the
 * fleet's maintenance (the leader in scale mode: the others' waits see it by tasks_recheck_waits).
 */
void tasks_tick(struct hub *h)
{
	int64_t now = clk_real_ms();
	json_t *ids = NULL, *v;
	size_t i;

	if (hub_maintains(h)) {
		if (h->store->ops->tasks_expire(h->store, now, &ids) == 0) {
			h->st.tasks_expired += json_array_size(ids);
			json_array_foreach(ids, i, v) tasks_wake_task(h, json_string_value(v));
		}
		json_decref(ids);
		ids = NULL;
		if (h->store->ops->tasks_advance(h->store, now, &ids) == 0)
			tasks_wake_hosts(h, ids);
		json_decref(ids);
	}
	if (h->zk)
		tasks_recheck_waits(h);
}
