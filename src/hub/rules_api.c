/* The automation routes (docs/api.md#rules-and-alerts): rules (list, show, add, edit, remove,
 * test), alerts (list, acknowledge, history) and silences. Every change is audited. */
#include "rules_int.h"
#include "hub_impl.h"
#include "audit.h"
#include "selector.h"
#include "core/clk.h"
#include "core/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct rules *api_rules(struct hub *h, struct httpd_req *req)
{
	if (!h->rules)
		httpd_respond_error(req, OUTPOST_E_UNAVAILABLE,
		                    "rules are not running on this hub");
	return h->rules;
}

static int api_limit_of(struct httpd_req *req, int def)
{
	const char *s = httpd_req_query(req, "limit");
	long n = s ? strtol(s, NULL, 10) : def;
	return n < 1 ? 1 : n > 10000 ? 10000 : (int)n;
}

/* A rule as the API shows it: its document, with its alerts' counts. */
static json_t *rule_view(const struct rule *r)
{
	json_t *v = json_deep_copy(r->doc);
	size_t firing = 0;
	const char *host;
	json_t *a;

	json_object_foreach(r->alerts, host, a) firing +=
	    strcmp(json_string_value(json_object_get(a, "state")), "firing") == 0;
	if (!json_object_get(v, "source"))
		json_object_set_new(v, "source", json_string("api"));
	json_object_set_new(v, "alerts",
	                    json_pack("{s:I, s:I}", "firing", (json_int_t)firing, "pending",
	                              (json_int_t)(json_object_size(r->alerts) - firing)));
	return v;
}

void rules_api_list(void *ctx, struct httpd_req *req)
{
	struct rules *rs = api_rules(ctx, req);
	json_t *arr;

	if (!rs)
		return;
	arr = json_array();
	for (size_t i = 0; i < rs->n; i++)
		json_array_append_new(arr, rule_view(rs->v[i]));
	httpd_respond_ok(req, arr);
}

void rules_api_get(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct rules *rs = api_rules(h, req);
	struct rule *r;
	json_t *v, *hist = NULL;
	const char *host;
	json_t *a;

	if (!rs)
		return;
	if (!(r = rules_find(rs, httpd_req_arg(req, 0)))) {
		httpd_respond_error(req, OUTPOST_E_NOT_FOUND,
		                    "no such rule: see `outpost rules ls`");
		return;
	}
	v = rule_view(r);
	json_object_set_new(v, "active", json_array());
	json_object_foreach(r->alerts, host, a) json_array_append(json_object_get(v, "active"), a);
	h->store->ops->alert_log_list(h->store, r->name, 20, &hist);
	json_object_set_new(v, "history", hist ? hist : json_array());
	httpd_respond_ok(req, v);
}

/* The body of add, edit and test: a rule. 0 and *out, or negative after answering. */
static int rule_from_body(struct httpd_req *req, const char *name, struct rule **out)
{
	const char *field;
	json_t *body;
	char msg[700];
	int col, rc;

	*out = NULL;
	if (httpd_req_json(req, &body) < 0)
		return -1;
	if (name && json_is_object(body) && !json_object_get(body, "name"))
		json_object_set_new(body, "name", json_string(name));
	if (json_is_object(body))
		json_object_del(body, "source");
	rc = rule_build(body, out, &field, &col, msg, sizeof(msg));
	json_decref(body);
	if (rc < 0) {
		httpd_respond_error(req, rc, "%s", msg);
		return rc;
	}
	if (name && strcmp((*out)->name, name) != 0) {
		httpd_respond_error(
		    req, OUTPOST_E_BAD_ARGS,
		    "name '%s' is not the rule's in the path ('%s'): a rule keeps its "
		    "name (remove it and add one)",
		    (*out)->name, name);
		rule_free(*out);
		*out = NULL;
		return OUTPOST_E_BAD_ARGS;
	}
	return 0;
}

/* Stores r (its document) and puts it in force; answers. */
static void rule_save(struct hub *h, struct httpd_req *req, struct rule *r, const char *action)
{
	struct rules *rs = h->rules;
	int rc;

	json_object_set_new(r->doc, "source", json_string("api"));
	rc = rules_doc_put(h, "rule", r->name, r->doc);
	if (rc < 0) {
		httpd_respond_error(req, rc, "rule: store error (%s)", err_name(rc));
		rule_free(r);
		return;
	}
	audit_record(h, req, action, r->name, json_deep_copy(r->doc));
	rules_install(rs, r);
	httpd_respond_ok(req, rule_view(r));
}

static int rule_not_file(struct httpd_req *req, const struct rule *old)
{
	if (old && old->from_file) {
		httpd_respond_error(req, OUTPOST_E_CONFLICT,
		                    "rule '%s' comes from the rules file: change it there and send "
		                    "the hub SIGHUP",
		                    old->name);
		return -1;
	}
	return 0;
}

void rules_api_add(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct rules *rs = api_rules(h, req);
	struct rule *r, *old;

	if (!rs || rule_from_body(req, NULL, &r) < 0)
		return;
	old = rules_find(rs, r->name);
	if (rule_not_file(req, old) < 0) {
		rule_free(r);
		return;
	}
	if (old) {
		json_t *a = json_deep_copy(old->doc), *b = json_deep_copy(r->doc);
		int same;
		json_object_del(a, "source");
		json_object_del(b, "source");
		same = json_equal(a, b);
		json_decref(a);
		json_decref(b);
		if (same) /* a repeat: the rule as it is */
			httpd_respond_ok(req, rule_view(old));
		else
			httpd_respond_error(
			    req, OUTPOST_E_CONFLICT,
			    "a rule named '%s' exists: change it with `outpost rules edit`",
			    r->name);
		rule_free(r);
		return;
	}
	if (rs->n >= RULES_MAX) {
		httpd_respond_error(req, OUTPOST_E_TOO_LARGE, "at most %d rules", RULES_MAX);
		rule_free(r);
		return;
	}
	rule_save(h, req, r, "rule.add");
}

void rules_api_edit(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct rules *rs = api_rules(h, req);
	const char *name = httpd_req_arg(req, 0);
	struct rule *r, *old;

	if (!rs)
		return;
	if (!(old = rules_find(rs, name))) {
		httpd_respond_error(req, OUTPOST_E_NOT_FOUND,
		                    "no such rule: see `outpost rules ls`");
		return;
	}
	if (rule_not_file(req, old) < 0 || rule_from_body(req, name, &r) < 0)
		return;
	rule_save(h, req, r, "rule.edit");
}

void rules_api_remove(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct rules *rs = api_rules(h, req);
	const char *name = httpd_req_arg(req, 0);
	struct rule *old;
	int rc;

	if (!rs)
		return;
	if (!(old = rules_find(rs, name))) {
		/* A repeat of a removal finds nothing left: that is its first result. */
		httpd_respond_ok(req, json_pack("{s:s, s:b}", "name", name, "removed", 0));
		return;
	}
	if (rule_not_file(req, old) < 0)
		return;
	rc = rules_doc_del(h, "rule", name);
	if (rc < 0 && rc != OUTPOST_E_NOT_FOUND) {
		httpd_respond_error(req, rc, "rule: store error (%s)", err_name(rc));
		return;
	}
	audit_record(h, req, "rule.remove", name, NULL);
	rules_uninstall(rs, name);
	httpd_respond_ok(req, json_pack("{s:s, s:b}", "name", name, "removed", 1));
}

/* POST /api/v1/rules/test: a rule (or {"name"} of one in force) evaluated now; nothing is
 * fired, stored or run. */
void rules_api_test(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct rules *rs = api_rules(h, req);
	struct rule *r = NULL, *own = NULL;
	json_t *matched = NULL, *body = NULL;
	char msg[300];
	int rc;

	if (!rs)
		return;
	{
		size_t len;
		const char *text = httpd_req_body(req, &len);
		json_t *peek = text ? json_loadb(text, len, 0, NULL) : NULL;
		if (json_is_object(peek) && json_object_size(peek) == 1 &&
		    json_object_get(peek, "name")) {
			r = rules_find(rs, json_string_value(json_object_get(peek, "name")));
			json_decref(peek);
			if (!r) {
				httpd_respond_error(req, OUTPOST_E_NOT_FOUND,
				                    "no such rule: see `outpost rules ls`");
				return;
			}
		} else {
			json_decref(peek);
			if (rule_from_body(req, NULL, &own) < 0)
				return;
			r = own;
		}
	}
	rc = rules_eval_now(rs, r, &matched, msg, sizeof(msg));
	if (rc < 0) {
		httpd_respond_error(req, rc, "%s", msg);
	} else {
		body = json_pack("{s:s, s:I, s:o, s:I}", "name", r->name, "for_ms",
		                 (json_int_t)r->expr->for_ms, "matched", matched, "hosts",
		                 (json_int_t)json_object_size(matched));
		httpd_respond_ok(req, body);
	}
	rule_free(own);
}

/* ---- Alerts ---- */

void alerts_api_list(void *ctx, struct httpd_req *req)
{
	struct rules *rs = api_rules(ctx, req);
	const char *only = httpd_req_query(req, "state");
	json_t *arr;

	if (!rs)
		return;
	arr = json_array();
	for (size_t i = 0; i < rs->n; i++) {
		const char *host;
		json_t *a;
		json_object_foreach(rs->v[i]->alerts, host, a)
		{
			const json_t *sil;
			json_t *v;
			if (only &&
			    strcmp(only, json_string_value(json_object_get(a, "state"))) != 0)
				continue;
			v = json_deep_copy(a);
			sil = rules_silenced(rs, rs->v[i], host, NULL, clk_real_ms());
			json_object_set_new(v, "silenced",
			                    sil ? json_deep_copy(json_object_get(sil, "id"))
			                        : json_null());
			json_array_append_new(arr, v);
		}
	}
	httpd_respond_ok(req, arr);
}

void alerts_api_history(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *v = NULL;
	int rc = h->store->ops->alert_log_list(h->store, httpd_req_query(req, "rule"),
	                                       api_limit_of(req, 100), &v);

	hub_respond_store(req, rc, v, "alert history");
}

static const struct outpost_arg ack_fields[] = {
    {"rule", OUTPOST_ARG_STRING, 1, "the rule's name"},
    {"host", OUTPOST_ARG_STRING, 1, "the host's id"},
    {"comment", OUTPOST_ARG_STRING, 0, "why, for the others (at most 1024 bytes)"},
    {NULL, 0, 0, NULL},
};

/* POST /api/v1/alerts/ack {rule, host, comment}: the alert is acknowledged (its repeats stop);
 * again: the first acknowledgement stands. */
void alerts_api_ack(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct rules *rs = api_rules(h, req);
	json_t *body = NULL, *a;
	struct rule *r;
	const char *host, *comment;
	char key[200];

	if (!rs || httpd_req_fields(req, ack_fields, &body) < 0)
		return;
	host = json_string_value(json_object_get(body, "host"));
	comment = json_string_value(json_object_get(body, "comment"));
	r = rules_find(rs, json_string_value(json_object_get(body, "rule")));
	if (!r || !(a = json_object_get(r->alerts, host))) {
		httpd_respond_error(req, OUTPOST_E_NOT_FOUND,
		                    "no alert of that rule on that host: see `outpost alerts ls`");
		goto out;
	}
	if (comment && strlen(comment) > 1024) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "comment: at most 1024 bytes");
		goto out;
	}
	if (!json_object_get(a, "acked_by")) {
		json_object_set_new(a, "acked_by", json_string(audit_caller(req)));
		json_object_set_new(a, "acked_ms", json_integer(clk_real_ms()));
		if (comment)
			json_object_set_new(a, "ack_comment", json_string(comment));
		rules_alert_key(r->name, host, key, sizeof(key));
		rules_doc_put(h, "alert", key, a);
		rules_log(rs, r->name, host, "ack",
		          json_pack("{s:s, s:s?}", "by", audit_caller(req), "comment", comment));
		audit_record(h, req, "alert.ack", key, NULL);
	}
	httpd_respond_ok(req, json_deep_copy(a));
out:
	json_decref(body);
}

/* ---- Silences ---- */

static const struct outpost_arg silence_fields[] = {
    {"id", OUTPOST_ARG_STRING, 0, "the caller's id: a repeat returns the first silence"},
    {"rule", OUTPOST_ARG_STRING, 0, "only this rule's alerts"},
    {"host", OUTPOST_ARG_STRING, 0, "only this host's alerts"},
    {"selector", OUTPOST_ARG_STRING, 0, "only the alerts of hosts it matches"},
    {"ends_ms", OUTPOST_ARG_INT, 0, "when it ends (ms since 1970)"},
    {"duration_s", OUTPOST_ARG_INT, 0, "or how long from now (1 s to 90 days)"},
    {"comment", OUTPOST_ARG_STRING, 0, "why (at most 1024 bytes)"},
    {NULL, 0, 0, NULL},
};

static int silence_id_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
		            s[i]))
			return 0;
	return 1;
}

void alerts_api_silence(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct rules *rs = api_rules(h, req);
	json_t *body = NULL, *sil = NULL, *v;
	const char *id, *sel, *comment;
	int64_t now = clk_real_ms(), ends;
	char genid[40], msg[300];
	size_t i;
	int rc;

	if (!rs || httpd_req_fields(req, silence_fields, &body) < 0)
		return;
	id = json_string_value(json_object_get(body, "id"));
	sel = json_string_value(json_object_get(body, "selector"));
	comment = json_string_value(json_object_get(body, "comment"));
	if (id && !silence_id_ok(id)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "id: 1 to 64 of A-Z a-z 0-9 . _ -");
		goto out;
	}
	json_array_foreach(rs->silences, i,
	                   v) if (id &&
	                          strcmp(json_string_value(json_object_get(v, "id")), id) == 0)
	{
		httpd_respond_ok(req, json_deep_copy(v));
		goto out;
	}
	if (!json_object_get(body, "rule") && !json_object_get(body, "host") && !sel) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "a silence names a rule, a host or a selector (or several)");
		goto out;
	}
	if (sel) {
		struct selector *ps = NULL;
		if (selector_parse(sel, NULL, NULL, &ps, msg, sizeof(msg)) < 0) {
			httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "selector: %s", msg);
			goto out;
		}
		selector_free(ps);
	}
	if (json_object_get(body, "ends_ms"))
		ends = json_integer_value(json_object_get(body, "ends_ms"));
	else if (json_object_get(body, "duration_s"))
		ends = now + json_integer_value(json_object_get(body, "duration_s")) * 1000;
	else
		ends = 0;
	if (ends <= now || ends > now + 90LL * 86400000) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "give ends_ms (in the future) or duration_s: up to 90 days");
		goto out;
	}
	if ((comment && strlen(comment) > 1024) ||
	    (json_object_get(body, "rule") &&
	     strlen(json_string_value(json_object_get(body, "rule"))) > RULES_NAME_MAX) ||
	    (json_object_get(body, "host") &&
	     strlen(json_string_value(json_object_get(body, "host"))) > 64)) {
		httpd_respond_error(
		    req, OUTPOST_E_BAD_ARGS,
		    "rule: at most 64, host: at most 64, comment: at most 1024 bytes");
		goto out;
	}
	if (!id) {
		char *r = sec_token("");
		snprintf(genid, sizeof(genid), "s-%.16s", r ? r : "0");
		for (char *p = genid; *p; p++)
			if (!silence_id_ok((char[]){*p, 0}))
				*p = '.';
		free(r);
		id = genid;
	}
	sil = json_pack("{s:s, s:O?, s:O?, s:s?, s:I, s:s?, s:s, s:I}", "id", id, "rule",
	                json_object_get(body, "rule"), "host", json_object_get(body, "host"),
	                "selector", sel, "ends_ms", (json_int_t)ends, "comment", comment,
	                "created_by", audit_caller(req), "created_ms", (json_int_t)now);
	if (!sil) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		goto out;
	}
	if ((rc = rules_doc_put(h, "silence", id, sil)) < 0) {
		httpd_respond_error(req, rc, "silence: store error (%s)", err_name(rc));
		goto out;
	}
	json_array_append(rs->silences, sil);
	audit_record(h, req, "silence.add", id, json_deep_copy(sil));
	httpd_respond_ok(req, json_incref(sil));
out:
	json_decref(sil);
	json_decref(body);
}

void alerts_api_silences(void *ctx, struct httpd_req *req)
{
	struct rules *rs = api_rules(ctx, req);

	if (rs)
		httpd_respond_ok(req, json_deep_copy(rs->silences));
}

void alerts_api_unsilence(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct rules *rs = api_rules(h, req);
	const char *id = httpd_req_arg(req, 0);
	size_t i;
	json_t *v;

	if (!rs)
		return;
	json_array_foreach(rs->silences, i, v)
	{
		if (strcmp(json_string_value(json_object_get(v, "id")), id) != 0)
			continue;
		rules_doc_del(h, "silence", id);
		json_array_remove(rs->silences, i);
		audit_record(h, req, "silence.remove", id, NULL);
		httpd_respond_ok(req, json_pack("{s:s, s:b}", "id", id, "removed", 1));
		return;
	}
	httpd_respond_ok(req, json_pack("{s:s, s:b}", "id", id, "removed", 0));
}
