/* The task engine: targeting and fan-out, signed per-host copies, agents' long-polls, results,
 * operators' waits on progress, and the once-a-second tick (liveness, expiry, rolling batches).
 * Everything runs on the hub's loop thread. */
#include "hub_impl.h"
#include "selector.h"
#include "core/clk.h"
#include "core/conf.h"
#include "core/err.h"
#include "core/loop.h"
#include "core/tcpalive.h"
#include "core/wire.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TASKS_TAKE_MAX 64

static const char *const fact_keys[] = {"id",         "hostname", "state", "version", "os",
                                        "os_version", "kernel",   "arch",  "cpus",    NULL};

static int task_id_ok(const char *id)
{
	return wire_id_ok(id);
}

static int name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 32)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

static unsigned wait_hash(const char *s)
{
	unsigned h = 2166136261u;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % HUB_WAIT_BUCKETS;
}

/* ---- signing ---- */

/* Turns store items [{"task": {...}}] into signed copies in place. */
static int tasks_sign(struct hub *h, json_t *items)
{
	json_t *it;
	size_t i;

	json_array_foreach(items, i, it)
	{
		char *text = sec_canonical(json_object_get(it, "task"));
		char *sig = text ? sec_sign_b64(h->sk, text, strlen(text)) : NULL;
		free(text);
		if (!sig)
			return OUTPOST_E_INTERNAL;
		json_object_set_new(it, "sig", json_string(sig));
		free(sig);
		h->st.signed_tasks++;
	}
	return 0;
}

/* ---- agents' long-polls ---- */

/* A held poll is a sign of life while the host's kernel answers keepalive probes on its
 * connection: a dead host or a cut network is found within about missed_beats x beat_ms, as
 * when beats stop (docs/agent-link.md, Beats). */
static struct tcpalive poll_keepalive(struct hub *h)
{
	return tcpalive_for_beats(
	    json_integer_value(conf_get(h->conf, "agents.beat_ms")),
	    (int)json_integer_value(conf_get(h->conf, "agents.missed_beats")));
}

static int poll_healthy(struct hub *h, const struct hub_wait *w)
{
	struct tcpalive ka = poll_keepalive(h);

	return w->fd >= 0 && tcpalive_healthy(w->fd, &ka);
}

static void poll_unlink(struct hub *h, struct hub_wait *w)
{
	struct hub_wait **pp = &h->polls[wait_hash(w->key)];

	for (; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			h->npolls--;
			return;
		}
}

/* Out of the table and its timer gone: the caller answers w->req and frees w. */
static void poll_detach(struct hub *h, struct hub_wait *w)
{
	poll_unlink(h, w);
	if (w->timer)
		loop_timer_del(h->loop, w->timer);
}

static void poll_answer(struct hub *h, struct hub_wait *w, json_t *items)
{
	poll_detach(h, w);
	/* Held until now on a healthy connection: seen now, so the host has missed_beats
	 * intervals to ask again (a hung agent whose kernel answers is down that much later). */
	if (!h->stopping && poll_healthy(h, w))
		tasks_host_alive(h, httpd_req_data(w->req));
	httpd_respond_ok(w->req, json_pack("{s:o}", "tasks", items ? items : json_array()));
	free(w);
}

static void poll_on_timeout(void *arg)
{
	struct hub_wait *w = arg;
	w->timer = NULL; /* one-shot: the loop frees it */
	poll_answer(w->h, w, NULL);
}

static struct hub_wait *poll_find(struct hub *h, const char *host)
{
	for (struct hub_wait *w = h->polls[wait_hash(host)]; w; w = w->next)
		if (strcmp(w->key, host) == 0)
			return w;
	return NULL;
}

/* The down sweep's exception: a host whose long-poll is held on a healthy connection. The
 * keepalive settings are read once per sweep, not once per stale host. */
struct poll_sweep {
	struct hub *h;
	struct tcpalive ka;
};

static int poll_keeps_up(void *arg, const char *host)
{
	struct poll_sweep *sw = arg;
	struct hub_wait *w = poll_find(sw->h, host);

	return w && w->fd >= 0 && tcpalive_healthy(w->fd, &sw->ka);
}

void tasks_cut_off(struct hub *h, const char *host, const char *why)
{
	struct hub_wait *w = poll_find(h, host);

	if (!w)
		return;
	poll_detach(h, w);
	httpd_respond_error(w->req, OUTPOST_E_UNAUTHORIZED, "%s", why);
	free(w);
}

/* Hands what is queued for host to its waiting poll, if it has one and something is queued. */
static void tasks_wake_host(struct hub *h, const char *host)
{
	struct hub_wait *w = poll_find(h, host);
	json_t *items = NULL;

	if (!w)
		return;
	if (h->store->ops->task_take(h->store, host, clk_real_ms(), TASKS_TAKE_MAX, &items) < 0 ||
	    json_array_size(items) == 0 || tasks_sign(h, items) < 0) {
		json_decref(items);
		return;
	}
	poll_answer(h, w, items);
}

void tasks_wake_hosts(struct hub *h, json_t *ids)
{
	json_t *v;
	size_t i;

	json_array_foreach(ids, i, v) tasks_wake_host(h, json_string_value(v));
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
static void tasks_audit_create(struct hub *h, struct httpd_req *req, const json_t *task,
                               const json_t *ids)
{
	char *text = sec_canonical(task), hex[65] = "";
	json_t *ran = json_deep_copy(task);

	if (text)
		sec_sha256_hex(text, strlen(text), hex);
	free(text);
	if (ran)
		args_redact(json_object_get(ran, "args"));
	api_audit(h, req, "task.create", json_string_value(json_object_get(task, "id")),
	          json_pack("{s:O, s:O, s:O, s:I, s:s, s:o?}", "target",
	                    json_object_get(task, "target"), "plugin",
	                    json_object_get(task, "plugin"), "op", json_object_get(task, "op"),
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

void tasks_release_all(struct hub *h)
{
	while (h->watches)
		watch_answer(h, h->watches);
	for (size_t b = 0; b < HUB_WAIT_BUCKETS; b++)
		while (h->polls[b])
			poll_answer(h, h->polls[b], NULL);
}

/* ---- operator routes ---- */

struct keyset {
	json_t *keys;
};

static int key_known(void *arg, const char *key)
{
	struct keyset *ks = arg;
	for (size_t i = 0; fact_keys[i]; i++)
		if (strcmp(fact_keys[i], key) == 0)
			return 1;
	return json_object_get(ks->keys, key) != NULL;
}

/* The registry as selectors see it: each host with its attrs (facts, labels, id, state,
 * version merged) and the set of every key in use. Queries reuse it for HUB_SELECT_CACHE_MS
 * (reading and preparing 10,000 hosts costs tens of ms, and a dashboard asks every few
 * seconds; a host enrolled a moment ago showing up a moment later in a chart is fine); tasks
 * always read it afresh, so a task sees a host the moment it is accepted. */
#define HUB_SELECT_CACHE_MS 2000

static int hosts_snapshot(struct hub *h, json_t **hosts, json_t **keys)
{
	json_t *host;
	size_t i;

	*keys = NULL;
	if (h->store->ops->host_list(h->store, hosts) < 0)
		return OUTPOST_E_INTERNAL;
	if (!(*keys = json_object())) {
		json_decref(*hosts);
		return OUTPOST_E_INTERNAL;
	}
	json_array_foreach(*hosts, i, host)
	{
		json_t *attrs = json_object_get(host, "attrs"), *v;
		const char *k;
		if (!attrs) {
			attrs = json_object();
			json_object_set_new(host, "attrs", attrs);
		}
		json_object_foreach(attrs, k, v) json_object_set(*keys, k, json_true());
		json_object_foreach(json_object_get(host, "labels"), k, v)
		    json_object_set(*keys, k, json_true());
		/* Labels first, so none can shadow what the hub itself knows. */
		json_object_update(attrs, json_object_get(host, "labels"));
		json_object_set(attrs, "state", json_object_get(host, "state"));
		json_object_set(attrs, "id", json_object_get(host, "id"));
		if (json_object_get(host, "version"))
			json_object_set(attrs, "version", json_object_get(host, "version"));
	}
	return 0;
}

int hub_select_hosts(struct hub *h, const char *target, int any_state, json_t **ids, char *msg,
                     size_t msglen)
{
	struct keyset ks = {NULL};
	struct selector *sel = NULL;
	json_t *hosts = NULL, *host;
	int64_t now = clk_mono_ms();
	size_t i;
	int rc;

	*ids = NULL;
	if (any_state == HUB_SELECT_ANY_CACHED && h->sel_hosts &&
	    now - h->sel_at_ms < HUB_SELECT_CACHE_MS) {
		hosts = json_incref(h->sel_hosts);
		ks.keys = json_incref(h->sel_keys);
	} else if ((rc = hosts_snapshot(h, &hosts, &ks.keys)) < 0) {
		snprintf(msg, msglen, "cannot read the registry");
		goto out;
	} else if (any_state == HUB_SELECT_ANY_CACHED) {
		json_decref(h->sel_hosts);
		json_decref(h->sel_keys);
		h->sel_hosts = json_incref(hosts);
		h->sel_keys = json_incref(ks.keys);
		h->sel_at_ms = now;
	}
	rc = selector_parse(target, key_known, &ks, &sel, msg, msglen);
	if (rc < 0)
		goto out;
	*ids = json_array();
	json_array_foreach(hosts, i, host)
	{
		const char *state = json_string_value(json_object_get(host, "state"));
		if (!any_state && (!state || (strcmp(state, HOST_UP) && strcmp(state, HOST_DOWN))))
			continue; /* pending and revoked hosts get no tasks */
		if (selector_match(sel, json_string_value(json_object_get(host, "id")),
		                   json_object_get(host, "attrs")))
			json_array_append(*ids, json_object_get(host, "id"));
	}
out:
	if (rc < 0) {
		json_decref(*ids);
		*ids = NULL;
	}
	selector_free(sel);
	json_decref(hosts);
	json_decref(ks.keys);
	return rc;
}

/* Matches target against accepted hosts; *ids gets the array of matched ids. */
static int tasks_target(struct hub *h, const char *target, json_t **ids, char *msg, size_t msglen)
{
	int rc = hub_select_hosts(h, target, 0, ids, msg, msglen);

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

void tasks_api_create(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *body = NULL, *ids = NULL, *task = NULL, *existing = NULL, *waiting = NULL;
	const char *id = NULL, *target = NULL, *plugin = NULL, *op = NULL, *key;
	json_t *args = NULL, *v;
	int64_t now = clk_real_ms(), timeout, expires_in, batch, maxfail = -1;
	char msg[512], genid[40];
	int rc;

	if (httpd_req_json(req, &body) < 0)
		return;
	json_object_foreach(body, key, v)
	{
		static const char *const known[] = {
		    "id",         "target", "plugin",        "op",           "args",
		    "timeout_ms", "batch",  "expires_in_ms", "max_failures", NULL};
		size_t k = 0;
		while (known[k] && strcmp(known[k], key))
			k++;
		if (!known[k]) {
			httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "unknown field '%.64s'", key);
			goto out;
		}
	}
	if (json_unpack(body, "{s?s, s:s, s:s, s:s, s?o}", "id", &id, "target", &target, "plugin",
	                &plugin, "op", &op, "args", &args) < 0) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "a task needs target, plugin and op (strings), optional id and "
		                    "args (object)");
		goto out;
	}
	if (id && !task_id_ok(id)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "id must be 1 to 128 of A-Z a-z 0-9 . _ : -");
		goto out;
	}
	if (!name_ok(plugin) || !name_ok(op)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "plugin and op are lowercase names (a-z 0-9 _)");
		goto out;
	}
	if (args && !json_is_object(args)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "args must be an object");
		goto out;
	}
	v = json_object_get(body, "timeout_ms");
	timeout = v ? (json_is_integer(v) ? json_integer_value(v) : -1)
	            : json_integer_value(conf_get(h->conf, "tasks.default_timeout_ms"));
	v = json_object_get(body, "expires_in_ms");
	expires_in = v ? (json_is_integer(v) ? json_integer_value(v) : -1)
	               : json_integer_value(conf_get(h->conf, "tasks.default_expiry_ms"));
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
	if (v && (!json_is_integer(v) || json_integer_value(v) < 0)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "max_failures must be a non-negative integer");
		goto out;
	}
	if (v)
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
		char *r = sec_token("");
		if (!r) {
			httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
			goto out;
		}
		snprintf(genid, sizeof(genid), "t-%.16s", r);
		for (char *p = genid; *p; p++)
			if (*p == '_')
				*p = '.';
		free(r);
		id = genid;
	}
	task =
	    json_pack("{s:s, s:s, s:s, s:s, s:O, s:I, s:I, s:I, s:s, s:I, s:I}", "id", id, "target",
	              target, "plugin", plugin, "op", op, "args", args ? args : json_object(),
	              "timeout_ms", (json_int_t)timeout, "created_ms", (json_int_t)now,
	              "expires_ms", (json_int_t)(now + expires_in), "created_by",
	              ((struct hub_caller *)httpd_req_data(req))
	                  ? ((struct hub_caller *)httpd_req_data(req))->name
	                  : "?",
	              "batch_size", (json_int_t)batch, "max_failures", (json_int_t)maxfail);
	if (!task) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		goto out;
	}
	rc = h->store->ops->task_create(h->store, task, ids, &existing);
	if (rc == OUTPOST_E_CONFLICT) {
		/* A repeated id: the first task, unchanged. */
		httpd_respond_ok(req, json_incref(existing));
		goto out;
	}
	if (rc < 0) {
		httpd_respond_error(req, rc, "cannot store the task");
		goto out;
	}
	h->st.tasks_created++;
	tasks_audit_create(h, req, task, ids);
	log_info(h->log, "tasks", "task %s: %s.%s on %zu host(s) (%s)", id, plugin, op,
	         json_array_size(ids), target);
	if (h->store->ops->task_hosts_waiting(h->store, id, &waiting) == 0)
		tasks_wake_hosts(h, waiting);
	json_decref(existing);
	existing = NULL;
	rc = h->store->ops->task_get(h->store, id, 0, 0, &existing);
	if (rc < 0)
		httpd_respond_error(req, rc, "task stored but cannot be read back");
	else
		httpd_respond_ok(req, json_incref(existing));
out:
	json_decref(waiting);
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
	const char *id = httpd_req_tail(req);
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

/* POST /api/v1/tasks/<id>/cancel */
void tasks_api_cancel(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	const char *tail = httpd_req_tail(req), *slash = strchr(tail, '/');
	json_t *task = NULL;
	char id[129];
	int rc;

	if (!slash || strcmp(slash, "/cancel") != 0 || (size_t)(slash - tail) >= sizeof(id)) {
		httpd_respond_error(req, OUTPOST_E_NOT_FOUND, "POST /api/v1/tasks/<id>/cancel");
		return;
	}
	memcpy(id, tail, (size_t)(slash - tail));
	id[slash - tail] = '\0';
	if (!task_id_ok(id)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "bad task id");
		return;
	}
	rc = h->store->ops->task_cancel(h->store, id, clk_real_ms());
	if (rc < 0) {
		httpd_respond_error(req, rc,
		                    rc == OUTPOST_E_NOT_FOUND ? "no such task" : "cannot cancel");
		return;
	}
	api_audit(h, req, "task.cancel", id, NULL);
	tasks_wake_task(h, id);
	rc = h->store->ops->task_get(h->store, id, 0, 0, &task);
	if (rc < 0)
		httpd_respond_error(req, rc, "cannot read the task");
	else
		httpd_respond_ok(req, task);
}

/* ---- agent routes: /api/v1/agents/<id>/<verb> (auth checked the id is the signer's) ---- */

static const char *agent_verb(struct httpd_req *req)
{
	const char *slash = strchr(httpd_req_tail(req), '/');
	return slash ? slash + 1 : "";
}

void tasks_agent_poll(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct hub_caller *c = httpd_req_data(req);
	const char *ws = httpd_req_query(req, "wait");
	long wait = ws ? strtol(ws, NULL, 10) : 30;
	long maxw = (long)json_integer_value(conf_get(h->conf, "agents.poll_wait_s"));
	json_t *items = NULL;
	struct hub_wait *w;

	if (strcmp(agent_verb(req), "tasks") != 0) {
		httpd_respond_error(req, OUTPOST_E_NOT_FOUND, "GET /api/v1/agents/<id>/tasks");
		return;
	}
	if (wait < 0)
		wait = 0;
	if (wait > maxw)
		wait = maxw;
	/* Polling is a sign of life too. */
	tasks_host_alive(h, c);
	if (h->store->ops->task_take(h->store, c->host_id, clk_real_ms(), TASKS_TAKE_MAX, &items) <
	    0) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "cannot read the task queue");
		return;
	}
	if (httpd_req_query(req, "resume") && strcmp(httpd_req_query(req, "resume"), "1") == 0) {
		/* The agent restarted: what it was sent and never finished, again. */
		json_t *again = NULL;
		if (h->store->ops->task_resume(h->store, c->host_id, clk_real_ms(), TASKS_TAKE_MAX,
		                               &again) == 0)
			json_array_extend(items, again);
		json_decref(again);
	}
	if (tasks_sign(h, items) < 0) {
		json_decref(items);
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "cannot read the task queue");
		return;
	}
	if (json_array_size(items) || wait == 0 || h->stopping) {
		httpd_respond_ok(req, json_pack("{s:o}", "tasks", items));
		return;
	}
	json_decref(items);
	/* One poll per host: a newer one replaces the old. */
	if ((w = poll_find(h, c->host_id)))
		poll_answer(h, w, NULL);
	w = calloc(1, sizeof(*w));
	if (!w || loop_timer_add(h->loop, wait * 1000, 0, poll_on_timeout, w, &w->timer) < 0) {
		free(w);
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		return;
	}
	w->h = h;
	w->req = req;
	snprintf(w->key, sizeof(w->key), "%s", c->host_id);
	{
		struct tcpalive ka = poll_keepalive(h);
		w->fd = httpd_req_fd(req);
		if (w->fd >= 0 && tcpalive_arm(w->fd, &ka) < 0)
			w->fd =
			    -1; /* not TCP (a unix socket): the poll counts only when it arrives */
	}
	w->next = h->polls[wait_hash(w->key)];
	h->polls[wait_hash(w->key)] = w;
	h->npolls++;
}

static int state_ok(const char *s)
{
	static const char *const states[] = {"running", "ok",      "failed",  "timeout",
	                                     "lost",    "refused", "expired", NULL};
	for (size_t i = 0; s && states[i]; i++)
		if (strcmp(states[i], s) == 0)
			return 1;
	return 0;
}

static void agent_results(struct hub *h, struct httpd_req *req, struct hub_caller *c)
{
	json_t *body = NULL, *results, *r, *touched = json_object(), *hosts = NULL;
	int accepted = 0, any_done = 0;
	const char *tid;
	json_t *v;
	size_t i;

	if (httpd_req_json(req, &body) < 0)
		goto out;
	tasks_host_alive(h, c);
	results = json_object_get(body, "results");
	if (!json_is_array(results) || json_array_size(results) > 10000) {
		httpd_respond_error(
		    req, OUTPOST_E_BAD_ARGS,
		    "results: an array of at most 10000 {task_id, state, response}");
		goto out;
	}
	json_array_foreach(results, i, r)
	{
		const char *state = json_string_value(json_object_get(r, "state"));
		json_t *resp = json_object_get(r, "response");
		int done = 0;
		tid = json_string_value(json_object_get(r, "task_id"));
		if (!task_id_ok(tid) || !state_ok(state) ||
		    (resp && !json_is_object(resp) && !json_is_null(resp))) {
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
out:
	json_decref(hosts);
	json_decref(touched);
	json_decref(body);
}

static void agent_beat(struct hub *h, struct httpd_req *req, struct hub_caller *c)
{
	json_t *body = NULL, *facts;
	const char *version = NULL;
	int was_down = 0;

	if (httpd_req_json(req, &body) < 0)
		return;
	facts = json_object_get(body, "facts");
	version = json_string_value(json_object_get(body, "version"));
	if ((facts && !json_is_object(facts)) || (version && strlen(version) > 64)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "beat: {version, facts (object)}");
		goto out;
	}
	/* An accepted host is bounded as an enrolling one: a beat must not grow hub.db either. */
	if (!api_facts_ok(h, req, facts, 0))
		goto out;
	if (h->store->ops->host_seen(h->store, c->host_id, clk_real_ms(), version, facts,
	                             &was_down) < 0) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "cannot record the beat");
		goto out;
	}
	h->st.beats++;
	h->st.seen_writes++;
	if (was_down)
		log_info(h->log, "registry", "host %s is up again", c->host_id);
	/* requests_count_as_beats: every signed request marks the host seen here (polls, results,
	 * metric posts), so an agent whose other requests get through may skip its beats;
	 * held_poll_counts_as_beats: so does its long-poll while it is held on a healthy
	 * connection (tasks_tick). An older hub says neither, and its agents beat every
	 * interval. */
	httpd_respond_ok(req,
	                 json_pack("{s:I, s:b, s:b}", "interval_ms",
	                           json_integer_value(conf_get(h->conf, "agents.beat_ms")),
	                           "requests_count_as_beats", 1, "held_poll_counts_as_beats", 1));
out:
	json_decref(body);
}

void tasks_agent_results(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct hub_caller *c = httpd_req_data(req);
	const char *verb = agent_verb(req);

	if (strcmp(verb, "results") == 0)
		agent_results(h, req, c);
	else if (strcmp(verb, "beat") == 0)
		agent_beat(h, req, c);
	else if (strcmp(verb, "metrics") == 0)
		ingest_agent_metrics(h, req, c);
	else
		httpd_respond_error(req, OUTPOST_E_NOT_FOUND,
		                    "POST /api/v1/agents/<id>/results, /beat or /metrics");
}

/* Marks the host seen, unless it is up and was seen less than half a beat interval ago: a
 * burst of requests (a spool's backlog, posted request after request) costs hub.db one write,
 * and down detection, which waits missed_beats intervals, is off by half an interval at most. */
void tasks_host_alive(struct hub *h, struct hub_caller *c)
{
	int64_t now = clk_real_ms();
	int64_t beat = json_integer_value(conf_get(h->conf, "agents.beat_ms"));
	int was_down = 0;

	if (c->up && now - c->last_seen_ms < beat / 2)
		return;
	if (h->store->ops->host_seen(h->store, c->host_id, now, NULL, NULL, &was_down) < 0)
		return; /* the next request or beat tries again */
	h->st.seen_writes++;
	c->up = 1;
	c->last_seen_ms = now;
	if (was_down)
		log_info(h->log, "registry", "host %s is up again", c->host_id);
}

/* ---- once a second ---- */

void tasks_tick(struct hub *h)
{
	int64_t now = clk_real_ms();
	int64_t beat = json_integer_value(conf_get(h->conf, "agents.beat_ms"));
	int64_t missed = json_integer_value(conf_get(h->conf, "agents.missed_beats"));
	struct poll_sweep sw = {h, poll_keepalive(h)};
	json_t *ids = NULL, *v;
	size_t i;

	/* A hub that just started has heard nobody yet: a host last seen when its poll was
	 * renewed, up to a poll wait before the restart, gets missed_beats intervals to come
	 * back before it is called down. */
	if (now - h->started_ms >= beat * missed &&
	    h->store->ops->hosts_mark_down(h->store, now - beat * missed, now, poll_keeps_up, &sw,
	                                   &ids) == 0)
		json_array_foreach(ids, i, v)
		    log_warn(h->log, "registry", "host %s is down: no sign of life for %lld ms",
		             json_string_value(v), (long long)(beat * missed));
	json_decref(ids);
	ids = NULL;
	if (h->store->ops->tasks_expire(h->store, now, &ids) == 0)
		json_array_foreach(ids, i, v) tasks_wake_task(h, json_string_value(v));
	json_decref(ids);
	ids = NULL;
	if (h->store->ops->tasks_advance(h->store, now, &ids) == 0)
		tasks_wake_hosts(h, ids);
	json_decref(ids);
}
