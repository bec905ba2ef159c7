/* Alerts and actions (docs/rules.md): a rule's matched hosts move its alerts through pending,
 * firing and resolved; firing and resolution notify the rule's actions unless a silence
 * covers the alert, the host is in its cooldown, or the rule's hourly cap is used up. The
 * action kinds are one table: task, webhook, log, flow (flows.c's flow_start) and email
 * (mail.c's queue). */
#include "rules_int.h"
#include "hub_impl.h"
#include "registry.h"
#include "selector.h"
#include "tasks.h"
#include "flows.h"
#include "mail.h"
#include "core/clk.h"
#include "core/log.h"
#include "core/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rules_alert_key(const char *rule, const char *host, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", rule, host);
}

int rules_doc_put(struct hub *h, const char *kind, const char *id, const json_t *doc)
{
	return h->store->ops->rec_put(h->store, kind, id, doc, 0, clk_real_ms(), 0);
}

int rules_doc_del(struct hub *h, const char *kind, const char *id)
{
	return h->store->ops->rec_del(h->store, kind, id);
}

void rules_log(struct rules *rs, const char *rule, const char *host, const char *kind,
               json_t *detail)
{
	struct store *s = rs->h->store;
	json_t *e = json_pack("{s:s, s:s?, s:s, s:o?}", "rule_id", rule, "host_id", host, "kind",
	                      kind, "detail", detail);

	if (e && s->ops->alert_log_add(s, e, clk_real_ms()) < 0)
		log_warn(rs->h->log, "rules", "rule %s: history entry %s not stored", rule, kind);
	json_decref(e);
}

/* ---- The action kinds ---- */

struct act_ctx {
	struct rules *rs;
	struct rule *r;
	json_t *alert;
	const char *event; /* "firing" or "resolved" */
	size_t index;
};

typedef void (*act_run_fn)(struct act_ctx *x, const json_t *a);

struct act_kind {
	const char *kind;
	const char *const *keys; /* the keys it takes besides "kind" */
	int on_resolved;         /* notified on resolution too (tasks run on firing only) */
	act_run_fn run;
};

static const char *const task_keys[] = {"plugin", "op", "args", "target", "timeout_ms", NULL};
static const char *const webhook_keys[] = {"url", NULL};
static const char *const log_keys[] = {NULL};
static const char *const flow_keys[] = {"flow", "args", NULL};
static const char *const email_keys[] = {"to", "subject", NULL};

static void act_task(struct act_ctx *x, const json_t *a);
static void act_webhook(struct act_ctx *x, const json_t *a);
static void act_log(struct act_ctx *x, const json_t *a);
static void act_flow(struct act_ctx *x, const json_t *a);
static void act_email(struct act_ctx *x, const json_t *a);

static const struct act_kind act_kinds[] = {
    {"task", task_keys, 0, act_task},    {"webhook", webhook_keys, 1, act_webhook},
    {"log", log_keys, 1, act_log},       {"flow", flow_keys, 0, act_flow},
    {"email", email_keys, 1, act_email},
};
#define ACT_NKINDS (sizeof(act_kinds) / sizeof(act_kinds[0]))

static const struct act_kind *act_kind_of(const json_t *a)
{
	const char *k = json_string_value(json_object_get(a, "kind"));

	for (size_t i = 0; k && i < ACT_NKINDS; i++)
		if (strcmp(act_kinds[i].kind, k) == 0)
			return &act_kinds[i];
	return NULL;
}

int rules_action_check(const json_t *a, char *msg, size_t msglen)
{
	const struct act_kind *ak = act_kind_of(a);
	const char *k, *s;
	json_t *v;

	if (!json_is_object(a) || !ak) {
		snprintf(msg, msglen,
		         "an action is an object with kind task, webhook, log, flow or email");
		return OUTPOST_E_BAD_ARGS;
	}
	json_object_foreach((json_t *)a, k, v)
	{
		size_t i = 0;
		if (strcmp(k, "kind") == 0)
			continue;
		while (ak->keys[i] && strcmp(ak->keys[i], k) != 0)
			i++;
		if (!ak->keys[i]) {
			snprintf(msg, msglen, "a %s action has no key '%.64s'", ak->kind, k);
			return OUTPOST_E_BAD_ARGS;
		}
	}
	if (ak->run == act_task) {
		if (!wire_name_ok(json_string_value(json_object_get(a, "plugin"))) ||
		    !wire_name_ok(json_string_value(json_object_get(a, "op")))) {
			snprintf(msg, msglen,
			         "a task action needs plugin and op (names of a-z 0-9 _)");
			return OUTPOST_E_BAD_ARGS;
		}
		v = json_object_get(a, "args");
		if (v && !json_is_object(v)) {
			snprintf(msg, msglen, "args must be an object");
			return OUTPOST_E_BAD_ARGS;
		}
		v = json_object_get(a, "timeout_ms");
		if (v && (!json_is_integer(v) || json_integer_value(v) < 1 ||
		          json_integer_value(v) > 86400000)) {
			snprintf(msg, msglen, "timeout_ms must be an integer from 1 to 86400000");
			return OUTPOST_E_BAD_ARGS;
		}
		v = json_object_get(a, "target");
		if (v) {
			struct selector *sel = NULL;
			char why[300];
			if (!json_is_string(v) || selector_parse(json_string_value(v), NULL, NULL,
			                                         &sel, why, sizeof(why)) < 0) {
				snprintf(msg, msglen, "target must be a selector%s%s",
				         json_is_string(v) ? ": " : "",
				         json_is_string(v) ? why : "");
				return OUTPOST_E_BAD_ARGS;
			}
			selector_free(sel);
		}
	}
	if (ak->run == act_flow) {
		if (!wire_name_ok(json_string_value(json_object_get(a, "flow")))) {
			snprintf(msg, msglen, "a flow action needs flow, a flow's name");
			return OUTPOST_E_BAD_ARGS;
		}
		v = json_object_get(a, "args");
		if (v && !json_is_object(v)) {
			snprintf(msg, msglen, "args must be an object of variables");
			return OUTPOST_E_BAD_ARGS;
		}
	}
	if (ak->run == act_email) {
		size_t i, n = 0;
		v = json_object_get(a, "to");
		if (json_is_string(v))
			n = 1;
		else if (json_is_array(v) && json_array_size(v) >= 1 && json_array_size(v) <= 50) {
			json_t *e;
			n = json_array_size(v);
			json_array_foreach(v, i, e) if (!json_is_string(e)) n = 0;
		}
		if (!n) {
			snprintf(msg, msglen,
			         "an email action needs to: an address or a list of 1 to 50");
			return OUTPOST_E_BAD_ARGS;
		}
		v = json_object_get(a, "subject");
		if (v && (!json_is_string(v) || json_string_length(v) > 900 ||
		          strpbrk(json_string_value(v), "\r\n"))) {
			snprintf(msg, msglen, "subject must be one line of at most 900 bytes");
			return OUTPOST_E_BAD_ARGS;
		}
	}
	if (ak->run == act_webhook) {
		s = json_string_value(json_object_get(a, "url"));
		if (!s || strlen(s) > 2048 ||
		    (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0)) {
			snprintf(msg, msglen,
			         "a webhook action needs url, http:// or https:// (at most "
			         "2048 bytes)");
			return OUTPOST_E_BAD_ARGS;
		}
	}
	return 0;
}

/* The environment a rule's exec task gets: the rule, the host, the values. */
static json_t *act_env(struct act_ctx *x, const json_t *given)
{
	json_t *env = given ? json_deep_copy(given) : json_object();
	json_t *vals = json_object_get(x->alert, "values"), *v;
	const char *k;
	char num[64] = "";
	char *text = json_dumps(vals, JSON_COMPACT);

	json_object_foreach(vals, k, v)
	{
		snprintf(num, sizeof(num), "%.15g", json_number_value(v));
		break;
	}
	json_object_set_new(env, "OUTPOST_RULE", json_string(x->r->name));
	json_object_set_new(env, "OUTPOST_HOST",
	                    json_string(json_string_value(json_object_get(x->alert, "host"))));
	json_object_set_new(env, "OUTPOST_ALERT_STATE", json_string(x->event));
	json_object_set_new(env, "OUTPOST_VALUE", json_string(num));
	json_object_set_new(env, "OUTPOST_VALUES", json_string(text ? text : "{}"));
	free(text);
	return env;
}

static void act_task(struct act_ctx *x, const json_t *a)
{
	struct hub *h = x->rs->h;
	const char *host = json_string_value(json_object_get(x->alert, "host"));
	const char *target = json_string_value(json_object_get(a, "target"));
	const char *plugin = json_string_value(json_object_get(a, "plugin"));
	json_t *args =
	    json_deep_copy(json_object_get(a, "args") ? json_object_get(a, "args") : json_object());
	json_t *ids = NULL;
	char id[160], seed[400], hash[65], by[80], msg[300] = "";
	int rc;

	snprintf(seed, sizeof(seed), "%s/%s/%lld/%zu", x->r->name, host,
	         (long long)json_integer_value(json_object_get(x->alert, "fired_ms")), x->index);
	sec_sha256_hex(seed, strlen(seed), hash);
	snprintf(id, sizeof(id), "rule.%.32s.%.24s", x->r->name, hash);
	snprintf(by, sizeof(by), "rule:%s", x->r->name);
	if (strcmp(plugin, "exec") == 0)
		json_object_set_new(args, "env", act_env(x, json_object_get(args, "env")));
	if (target) {
		rc = registry_select(h, target, 0, &ids, msg, sizeof(msg));
		if (rc == 0 && json_array_size(ids) == 0) {
			snprintf(msg, sizeof(msg), "target '%.200s' matches no accepted host",
			         target);
			rc = OUTPOST_E_NOT_FOUND;
		}
	} else {
		ids = json_pack("[s]", host);
		target = host;
		rc = ids ? 0 : OUTPOST_E_INTERNAL;
	}
	if (rc == 0)
		rc = tasks_start(h, id, target, ids, plugin,
		                 json_string_value(json_object_get(a, "op")), args,
		                 json_integer_value(json_object_get(a, "timeout_ms")), by);
	if (rc == 0)
		x->rs->actions++;
	rules_log(x->rs, x->r->name, host, "action",
	          json_pack("{s:s, s:s, s:s, s:s, s:s?}", "action", "task", "task_id", id, "target",
	                    target, "outcome", rc == 0 ? "started" : err_name(rc), "error",
	                    rc == 0 ? NULL : msg));
	json_decref(ids);
	json_decref(args);
}

/* The webhook's body (docs/rules.md#webhooks): caller frees. */
static char *act_webhook_body(struct act_ctx *x)
{
	json_t *a = x->alert;
	json_t *b = json_pack(
	    "{s:i, s:s, s:s, s:s, s:s?, s:s, s:O, s:I, s:I, s:I, s:b}", "version", 1, "rule",
	    x->r->name, "host", json_string_value(json_object_get(a, "host")), "state", x->event,
	    "severity",
	    json_string_value(json_object_get(json_object_get(x->r->doc, "options"), "severity")),
	    "condition", json_string_value(json_object_get(x->r->doc, "condition")), "values",
	    json_object_get(a, "values"), "since_ms",
	    json_integer_value(json_object_get(a, "since_ms")), "fired_ms",
	    json_integer_value(json_object_get(a, "fired_ms")), "at_ms", (json_int_t)clk_real_ms(),
	    "dry_run", 0);
	char *text = b ? json_dumps(b, JSON_COMPACT) : NULL;

	json_decref(b);
	return text;
}

static void act_webhook(struct act_ctx *x, const json_t *a)
{
	char *body = act_webhook_body(x);

	if (!body)
		return;
	x->rs->actions++;
	rules_hook_send(x->rs->hook, json_string_value(json_object_get(a, "url")), x->r->name,
	                json_string_value(json_object_get(x->alert, "host")), body);
}

static void act_log(struct act_ctx *x, const json_t *a)
{
	char *vals = json_dumps(json_object_get(x->alert, "values"), JSON_COMPACT);

	(void)a;
	log_info(x->rs->h->log, "rules", "rule %s %s on %s: %s", x->r->name, x->event,
	         json_string_value(json_object_get(x->alert, "host")), vals ? vals : "{}");
	free(vals);
}

/* A flow run (flows.c) with the rule, host, state and values as its variables, beside the
 * action's own args. */
static void act_flow(struct act_ctx *x, const json_t *a)
{
	const char *host = json_string_value(json_object_get(x->alert, "host"));
	const char *flow = json_string_value(json_object_get(a, "flow"));
	json_t *vars = act_env(x, json_object_get(a, "args"));
	char origin[80], run[64] = "", msg[300] = "";
	int rc;

	snprintf(origin, sizeof(origin), "rule:%s", x->r->name);
	rc = flow_start(x->rs->h, flow, vars, origin, run, sizeof(run), msg, sizeof(msg));
	if (rc == 0)
		x->rs->actions++;
	rules_log(x->rs, x->r->name, host, "action",
	          json_pack("{s:s, s:s, s:s, s:s, s:s?}", "action", "flow", "flow", flow, "run",
	                    run, "outcome", rc == 0 ? "started" : err_name(rc), "error",
	                    rc == 0 ? NULL : msg));
	json_decref(vars);
}

/* A mail through the hub's queue (mail.c): one per alert, event and action (its id), so a
 * repeated evaluation queues nothing more. */
static void act_email(struct act_ctx *x, const json_t *a)
{
	const char *host = json_string_value(json_object_get(x->alert, "host"));
	const json_t *to = json_object_get(a, "to");
	const char *addrs[50];
	char id[80], seed[400], hash[65], subject[400], origin[80], msg[300] = "";
	char *vals = json_dumps(json_object_get(x->alert, "values"), JSON_COMPACT);
	char *text = NULL;
	struct mail_msg m = {0};
	size_t i, n = 0;
	int rc;

	if (json_is_string(to))
		addrs[n++] = json_string_value(to);
	for (i = 0; json_is_array(to) && i < json_array_size(to) && n < 50; i++)
		addrs[n++] = json_string_value(json_array_get(to, i));
	snprintf(seed, sizeof(seed), "%s/%s/%lld/%s/%zu", x->r->name, host,
	         (long long)json_integer_value(json_object_get(x->alert, "fired_ms")), x->event,
	         x->index);
	sec_sha256_hex(seed, strlen(seed), hash);
	snprintf(id, sizeof(id), "rule.%.40s", hash);
	snprintf(origin, sizeof(origin), "rule:%s", x->r->name);
	if (json_is_string(json_object_get(a, "subject")))
		snprintf(subject, sizeof(subject), "%s",
		         json_string_value(json_object_get(a, "subject")));
	else
		snprintf(subject, sizeof(subject), "[outpost] %.64s %s on %.200s", x->r->name,
		         x->event, host ? host : "-");
	if (asprintf(&text, "rule: %s\nhost: %s\nstate: %s\ncondition: %s\nvalues: %s\n",
	             x->r->name, host ? host : "-", x->event,
	             json_string_value(json_object_get(x->r->doc, "condition")),
	             vals ? vals : "{}") < 0)
		text = NULL;
	m.id = id;
	m.to = addrs;
	m.nto = n;
	m.subject = subject;
	m.text = text;
	m.origin = origin;
	rc = text ? mail_queue(x->rs->h, &m, msg, sizeof(msg)) : OUTPOST_E_INTERNAL;
	if (rc == 0)
		x->rs->actions++;
	rules_log(x->rs, x->r->name, host, "action",
	          json_pack("{s:s, s:s, s:s, s:s?}", "action", "email", "mail_id", id, "outcome",
	                    rc == 0 ? "queued" : err_name(rc), "error", rc == 0 ? NULL : msg));
	free(text);
	free(vals);
}

/* ---- Silences, cooldown, cap ---- */

const json_t *rules_silenced(struct rules *rs, const struct rule *r, const char *host,
                             const json_t *attrs, int64_t now)
{
	size_t i;
	json_t *s;

	json_array_foreach(rs->silences, i, s)
	{
		const char *rule = json_string_value(json_object_get(s, "rule"));
		const char *h = json_string_value(json_object_get(s, "host"));
		const char *sel = json_string_value(json_object_get(s, "selector"));
		struct selector *ps = NULL;
		char why[200];
		int hit;
		if (json_integer_value(json_object_get(s, "ends_ms")) <= now ||
		    (rule && strcmp(rule, r->name) != 0) || (h && strcmp(h, host) != 0))
			continue;
		if (!sel)
			return s;
		hit = selector_parse(sel, NULL, NULL, &ps, why, sizeof(why)) == 0 &&
		      selector_match(ps, host, attrs);
		selector_free(ps);
		if (hit)
			return s;
	}
	return NULL;
}

/* Whether the rule may act once more this hour; counts it when it may. */
static int cap_take(struct rule *r, int64_t now)
{
	size_t live = 0;

	for (size_t i = 0; i < r->nacts; i++)
		live += r->acts[i] > now - 3600000;
	if (live >= (size_t)r->cap)
		return 0;
	r->acts[r->actpos] = now;
	r->actpos = (r->actpos + 1) % RULES_CAP_MAX;
	if (r->nacts < RULES_CAP_MAX)
		r->nacts++;
	return 1;
}

static void suppress(struct rules *rs, struct rule *r, const char *host, const char *event,
                     const char *reason, json_t *more)
{
	json_t *d = json_pack("{s:s, s:s}", "event", event, "reason", reason);

	if (more)
		json_object_update(d, more);
	json_decref(more);
	rs->suppressed++;
	rules_log(rs, r->name, host, "suppressed", d);
}

/* An alert's firing or resolution reaches the rule's actions, unless something holds it. */
static void notify(struct rules *rs, struct rule *r, json_t *a, const char *event,
                   const json_t *attrs, int64_t now)
{
	const char *host = json_string_value(json_object_get(a, "host"));
	int firing = strcmp(event, "firing") == 0;
	const json_t *sil;
	size_t i;
	json_t *act;

	if (json_array_size(r->actions) == 0)
		return;
	if (!firing && !json_is_true(json_object_get(a, "notified")))
		return; /* nothing was told of its firing: nothing to tell of its end */
	if (firing && (sil = rules_silenced(rs, r, host, attrs, now))) {
		suppress(rs, r, host, event, "silenced",
		         json_pack("{s:O}", "silence", json_object_get(sil, "id")));
		return;
	}
	if (firing) {
		json_t *last = json_object_get(r->last_act, host);
		if (last && now - json_integer_value(last) < r->cooldown_ms) {
			suppress(
			    rs, r, host, event, "cooldown",
			    json_pack("{s:I}", "until_ms",
			              (json_int_t)(json_integer_value(last) + r->cooldown_ms)));
			return;
		}
		if (!cap_take(r, now)) {
			suppress(rs, r, host, event, "cap",
			         json_pack("{s:i}", "max_actions_per_hour", r->cap));
			return;
		}
		json_object_set_new(r->last_act, host, json_integer(now));
		json_object_set_new(a, "notified", json_true());
		json_object_set_new(a, "last_action_ms", json_integer(now));
	}
	json_array_foreach(r->actions, i, act)
	{
		const struct act_kind *ak = act_kind_of(act);
		struct act_ctx x = {rs, r, a, event, i};
		if (!ak || !ak->run || (!firing && !ak->on_resolved))
			continue;
		if (r->dry_run) {
			rules_log(rs, r->name, host, "dry_run",
			          json_pack("{s:s, s:O}", "event", event, "action", act));
			continue;
		}
		ak->run(&x, act);
	}
}

static void alert_store(struct rules *rs, struct rule *r, const char *host, json_t *a)
{
	char key[200];

	rules_alert_key(r->name, host, key, sizeof(key));
	if (rules_doc_put(rs->h, "alert", key, a) < 0)
		log_warn(rs->h->log, "rules", "alert %s not stored", key);
}

static void alert_fire(struct rules *rs, struct rule *r, const char *host, json_t *a,
                       const json_t *attrs, int64_t now)
{
	json_object_set_new(a, "state", json_string("firing"));
	json_object_set_new(a, "fired_ms", json_integer(now));
	rules_log(
	    rs, r->name, host, "firing",
	    json_pack("{s:O, s:b}", "values", json_object_get(a, "values"), "dry_run", r->dry_run));
	log_info(rs->h->log, "rules", "rule %s firing on %s", r->name, host);
	/* Stored firing before any action: a task an action starts commits what the slice wrote
	 * so far, so a leader that dies after it leaves this alert firing to the next one (which
	 * does not fire it again; a repeat would make the same task id: fired_ms is in it). */
	alert_store(rs, r, host, a);
	notify(rs, r, a, "firing", attrs, now);
	alert_store(rs, r, host, a);
}

/* One matched host of r: a new alert, or one that goes on (fires after its for, repeats). */
static void settle_matched(struct rules *rs, struct rule *r, const char *host, json_t *vals,
                           const json_t *hosts, int64_t now)
{
	const json_t *attrs = json_object_get(json_object_get(hosts, host), "attrs");
	json_t *a = json_object_get(r->alerts, host);

	if (!a) {
		a = json_pack("{s:s, s:s, s:s, s:I, s:O}", "rule", r->name, "host", host, "state",
		              "pending", "since_ms", (json_int_t)now, "values", vals);
		if (!a || json_object_set_new(r->alerts, host, a) < 0)
			return;
		if (r->expr->for_ms == 0)
			alert_fire(rs, r, host, a, attrs, now);
		else
			alert_store(rs, r, host, a);
		return;
	}
	json_object_set(a, "values", vals);
	if (strcmp(json_string_value(json_object_get(a, "state")), "pending") == 0) {
		if (now - json_integer_value(json_object_get(a, "since_ms")) >= r->expr->for_ms)
			alert_fire(rs, r, host, a, attrs, now);
	} else if (r->repeat_ms && !json_object_get(a, "acked_by") &&
	           now - json_integer_value(json_object_get(a, "last_action_ms")) >= r->repeat_ms) {
		json_object_del(r->last_act, host); /* a repeat is not held by the cooldown */
		notify(rs, r, a, "firing", attrs, now);
		alert_store(rs, r, host, a);
	}
}

/* An alert of r whose host no longer matches: resolved if it fired, dropped if pending. */
static void settle_gone(struct rules *rs, struct rule *r, const char *host, const json_t *hosts,
                        int64_t now)
{
	json_t *a = json_object_get(r->alerts, host);
	char key[200];

	if (!a)
		return;
	if (strcmp(json_string_value(json_object_get(a, "state")), "firing") == 0) {
		rules_log(rs, r->name, host, "resolved",
		          json_pack("{s:I}", "fired_ms",
		                    json_integer_value(json_object_get(a, "fired_ms"))));
		log_info(rs->h->log, "rules", "rule %s resolved on %s", r->name, host);
		notify(rs, r, a, "resolved", json_object_get(json_object_get(hosts, host), "attrs"),
		       now);
	}
	rules_alert_key(r->name, host, key, sizeof(key));
	rules_doc_del(rs->h, "alert", key);
	json_object_del(r->alerts, host);
}

int rules_settle(struct rules *rs, struct rule *r, struct rules_settle *st, const json_t *hosts,
                 int64_t now, int64_t until)
{
	const char *host;
	json_t *a;
	unsigned n = 0;

	/* Phase 1: the matched hosts, in the matched object's order (it does not change). */
	if (!st->gone) {
		if (!st->it)
			st->it = json_object_iter(st->matched);
		for (; st->it; st->it = json_object_iter_next(st->matched, st->it)) {
			if (until && (++n & 7) == 0 && clk_mono_ms() >= until)
				return 1;
			settle_matched(rs, r, json_object_iter_key(st->it),
			               json_object_iter_value(st->it), hosts, now);
		}
		/* Phase 2's list: the alerts whose hosts did not match, taken now. */
		if (!(st->gone = json_array()))
			return 0;
		json_object_foreach(r->alerts, host, a) if (!json_object_get(st->matched, host))
		    json_array_append_new(st->gone, json_string(host));
		st->pos = 0;
	}
	for (; st->pos < json_array_size(st->gone); st->pos++) {
		if (until && (++n & 7) == 0 && clk_mono_ms() >= until)
			return 1;
		settle_gone(rs, r, json_string_value(json_array_get(st->gone, st->pos)), hosts,
		            now);
	}
	return 0;
}
