/* The hub's HTTP surface. Every route is one row of the table at the bottom: method, path,
 * handler, the role it needs, body limit; a reviewer sees the whole surface on one screen.
 * This file holds the handlers of tokens, audit, health and /metrics; events.c events'; registry.c
 * holds enrollment's and the hosts', agents.c the agents' polls, tasks.c the task engine's,
 * ingest.c the metric posts', query_api.c the metric queries', flows.c the flows', mail.c
 * the mail queue's, report.c the fleet report's. */
#include "hub_impl.h"
#include "ingest.h"
#include "events.h"
#include "tasks.h"
#include "flows.h"
#include "mail.h"
#include "report.h"
#include "agents.h"
#include "audit.h"
#include "console.h"
#include "rwrite.h"
#include "registry.h"
#include "retention.h"
#include "rules.h"
#include "tsdb.h"
#include "zk.h"
#include "core/prom.h"
#include "core/buf.h"
#include "core/clk.h"
#include "core/conf.h"
#include "core/err.h"
#include "core/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KB 1024
#define MB (1024 * 1024)

static void api_health(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *ans = json_pack("{s:s, s:I, s:s, s:s}", "version", OUTPOST_VERSION, "uptime_s",
	                        (json_int_t)((clk_real_ms() - h->started_ms) / 1000), "hub_pubkey",
	                        h->pk_b64, "fingerprint", h->fingerprint);

	if (ans && h->zk)
		json_object_set_new(ans, "zk", zk_status(h->zk));
	httpd_respond_ok(req, ans);
}

/* Enrollments refused, by reason (/metrics: outpost_hub_enroll_refused_total{reason}). */
static const char *const enroll_refused_names[] = {"pending_max", "pending_per_addr", "facts",
                                                   "token_used_up"};

static int64_t api_duration(const json_t *v)
{
	return json_is_integer(v) ? json_integer_value(v) : -1;
}

#define OPERATOR_TTL_DEFAULT_S (90L * 86400) /* an operator token made without ttl_s */
#define TOKEN_USES_MAX 1000000

/* POST /api/v1/tokens {"kind", "role", "ttl_s", "labels", "uses"}. ttl_s 0: never expires;
 * absent: never for an enrollment token, 90 days for an operator token. uses (enrollment
 * tokens): hosts it may enroll, 0 or absent for any number. */
static const struct outpost_arg token_fields[] = {
    {"kind", OUTPOST_ARG_STRING, 1, "enroll or operator"},
    {"role", OUTPOST_ARG_STRING, 0, "viewer, operator or admin (operator tokens)"},
    {"ttl_s", OUTPOST_ARG_INT, 0, "seconds, 0 (never expires) to 10 years"},
    {"labels", OUTPOST_ARG_OBJECT, 0, "labels given to the hosts it enrolls"},
    {"uses", OUTPOST_ARG_INT, 0, "hosts it may enroll, 0 for any number"},
    {NULL, 0, 0, NULL},
};

static void api_token_create(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *body = NULL, *labels, *tok;
	const char *kind = NULL, *role = NULL, *k;
	char *secret = NULL, *id = NULL, hash[65];
	int64_t ttl, uses, now = clk_real_ms();
	json_t *v;

	if (httpd_req_fields(req, token_fields, &body) < 0)
		return;
	kind = json_string_value(json_object_get(body, "kind"));
	role = json_string_value(json_object_get(body, "role"));
	if (strcmp(kind, "enroll") && strcmp(kind, "operator")) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "kind must be \"enroll\" or \"operator\"");
		goto out;
	}
	if (strcmp(kind, "operator") == 0 &&
	    (!role ||
	     (strcmp(role, "viewer") && strcmp(role, "operator") && strcmp(role, "admin")))) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "an operator token needs role viewer, operator or admin");
		goto out;
	}
	v = json_object_get(body, "uses");
	uses = v && !json_is_null(v) ? api_duration(v) : 0;
	if (uses < 0 || uses > TOKEN_USES_MAX || (uses && strcmp(kind, "enroll"))) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "uses: hosts an enrollment token may enroll, 0 (any number) to "
		                    "%d; only for kind enroll",
		                    TOKEN_USES_MAX);
		goto out;
	}
	v = json_object_get(body, "ttl_s");
	ttl = v && !json_is_null(v)           ? api_duration(v)
	      : strcmp(kind, "operator") == 0 ? OPERATOR_TTL_DEFAULT_S
	                                      : 0;
	if (ttl < 0 || ttl > 10L * 365 * 86400) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "ttl_s: seconds, 0 (never expires) to 10 years");
		goto out;
	}
	labels = json_is_object(json_object_get(body, "labels")) ? json_object_get(body, "labels")
	                                                         : NULL;
	json_object_foreach(labels, k, v)
	{
		if (!json_is_string(v) || !hub_host_id_ok(k)) {
			httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
			                    "label '%.64s': keys A-Z a-z 0-9 . _ -, string values",
			                    k);
			goto out;
		}
	}
	secret = sec_token(strcmp(kind, "enroll") == 0 ? "ope_" : "opo_");
	id = sec_token("");
	if (!secret || !id) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		goto out;
	}
	id[12] = '\0'; /* a short public id; the secret is the whole token */
	sec_sha256_hex(secret, strlen(secret), hash);
	tok = json_pack("{s:s, s:s, s:s, s:s?, s:O?, s:I, s:I, s:s, s:I}", "id", id, "hash", hash,
	                "kind", kind, "role", role, "labels", labels, "created_ms", (json_int_t)now,
	                "expires_ms", (json_int_t)(ttl ? now + ttl * 1000 : 0), "created_by",
	                audit_caller(req), "max_uses", (json_int_t)uses);
	if (!tok || h->store->ops->token_add(h->store, tok) < 0) {
		json_decref(tok);
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "cannot store the token");
		goto out;
	}
	json_decref(tok);
	audit_record(h, req, "token.create", id,
	             json_pack("{s:s, s:s?, s:I, s:I}", "kind", kind, "role", role, "ttl_s",
	                       (json_int_t)ttl, "max_uses", (json_int_t)uses));
	httpd_respond_ok(req, json_pack("{s:s, s:s, s:s, s:s?, s:I, s:I}", "id", id, "token",
	                                secret, "kind", kind, "role", role, "expires_ms",
	                                (json_int_t)(ttl ? now + ttl * 1000 : 0), "max_uses",
	                                (json_int_t)uses));
out:
	free(secret);
	free(id);
	json_decref(body);
}

static void api_tokens_list(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *toks = NULL;
	int rc = h->store->ops->token_list(h->store, &toks);
	hub_respond_store(req, rc, toks, "tokens");
}

/* POST /api/v1/tokens/<id>/revoke: refused at once, for good (auth looks a token up on every
 * request; nothing caches it). Revoking a revoked token again answers ok. No field: {} or an
 * empty body. */
static const struct outpost_arg token_revoke_fields[] = {{NULL, 0, 0, NULL}};

static void api_token_revoke(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *body = NULL;
	const char *id = httpd_req_arg(req, 0);
	int rc;

	if (!hub_host_id_ok(id)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "token id: A-Z a-z 0-9 . _ -");
		return;
	}
	if (httpd_req_fields(req, token_revoke_fields, &body) < 0)
		return;
	json_decref(body);
	rc = h->store->ops->token_revoke(h->store, id);
	if (rc < 0) {
		hub_respond_store(req, rc, NULL, "token");
		return;
	}
	audit_record(h, req, "token.revoke", id, NULL);
	log_info(h->log, "token", "token %s revoked by %s", id, audit_caller(req));
	httpd_respond_ok(req, json_pack("{s:s, s:b}", "id", id, "revoked", 1));
}

/* GET /api/v1/whoami: the caller's token id and role, so that a client (the web console) offers
 * only what the role may do; the routes check the role anyway. */
static void api_whoami(void *ctx, struct httpd_req *req)
{
	static const char *const roles[] = {"none", "agent", "viewer", "operator", "admin"};
	struct hub_caller *c = httpd_req_data(req);
	(void)ctx;
	httpd_respond_ok(req, json_pack("{s:s, s:s}", "caller", c ? c->name : "anonymous", "role",
	                                c ? roles[c->role] : "none"));
}

static int api_limit(struct httpd_req *req, int def)
{
	const char *s = httpd_req_query(req, "limit");
	long n = s ? strtol(s, NULL, 10) : def;
	return n < 1 ? 1 : n > 10000 ? 10000 : (int)n;
}

static void api_audit_list(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *v = NULL;
	int rc = h->store->ops->audit_list(h->store, api_limit(req, 100), &v);
	hub_respond_store(req, rc, v, "audit");
}

static void api_metrics(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	static const char *const le[] = {"0.001", "0.005", "0.01", "0.05",
	                                 "0.1",   "0.5",   "1",    "+Inf"};
	json_t *st = NULL, *hs, *v;
	struct buf b = BUF_INIT;
	unsigned long long cum = 0;
	const char *k;

	h->store->ops->stats(h->store, &st);
	hs = json_object_get(st, "hosts");
	buf_printf(&b,
	           "# TYPE outpost_hub_info gauge\noutpost_hub_info{version=\"%s\"} 1\n"
	           "# HELP outpost_hub_hosts Hosts by state.\n# TYPE outpost_hub_hosts gauge\n",
	           OUTPOST_VERSION);
	json_object_foreach(hs, k, v) buf_printf(&b, "outpost_hub_hosts{state=\"%s\"} %lld\n", k,
	                                         (long long)json_integer_value(v));
	buf_printf(&b,
	           "# HELP outpost_hub_agents_connected Agents holding a task long-poll now.\n"
	           "# TYPE outpost_hub_agents_connected gauge\noutpost_hub_agents_connected %zu\n"
	           "# TYPE outpost_hub_tasks_running gauge\noutpost_hub_tasks_running %lld\n"
	           "# HELP outpost_hub_queue_depth Per-host task copies not yet finished.\n"
	           "# TYPE outpost_hub_queue_depth gauge\noutpost_hub_queue_depth %lld\n"
	           "# TYPE outpost_hub_tasks_created_total counter\n"
	           "outpost_hub_tasks_created_total %llu\n"
	           "# TYPE outpost_hub_task_copies_signed_total counter\n"
	           "outpost_hub_task_copies_signed_total %llu\n"
	           "# TYPE outpost_hub_results_total counter\noutpost_hub_results_total %llu\n"
	           "# TYPE outpost_hub_enrollments_total counter\n"
	           "outpost_hub_enrollments_total %llu\n"
	           "# HELP outpost_hub_agent_beats_total Beats agents sent.\n"
	           "# TYPE outpost_hub_agent_beats_total counter\n"
	           "outpost_hub_agent_beats_total %llu\n"
	           "# HELP outpost_hub_host_seen_writes_total Writes of a host's last contact "
	           "(beats, and other agent requests at most every half beat interval).\n"
	           "# TYPE outpost_hub_host_seen_writes_total counter\n"
	           "outpost_hub_host_seen_writes_total %llu\n"
	           "# TYPE outpost_hub_auth_refused_total counter\n"
	           "outpost_hub_auth_refused_total %llu\n"
	           "# TYPE outpost_hub_requests_total counter\noutpost_hub_requests_total %llu\n"
	           "# HELP outpost_hub_request_seconds Time to answer a request (long-polls "
	           "excluded).\n# TYPE outpost_hub_request_seconds histogram\n",
	           agents_connected(h->agents),
	           (long long)json_integer_value(json_object_get(st, "tasks_running")),
	           (long long)json_integer_value(json_object_get(st, "queue_depth")),
	           h->st.tasks_created, h->st.signed_tasks, h->st.results, h->st.enrollments,
	           h->st.beats, h->st.seen_writes, h->st.refused_auth, h->st.requests);
	for (int i = 0; i < 8; i++) {
		cum += h->st.latency_buckets[i];
		buf_printf(&b, "outpost_hub_request_seconds_bucket{le=\"%s\"} %llu\n", le[i], cum);
	}
	buf_printf(&b,
	           "outpost_hub_request_seconds_sum %.6f\noutpost_hub_request_seconds_count %llu\n",
	           h->st.latency_sum, cum);
	buf_printf(
	    &b,
	    "# HELP outpost_hub_maintenance_leader 1 when this hub does the fleet's periodic "
	    "maintenance (task expiry, rolling batches, retention, rollups): always one "
	    "hub alone, the leader in scale mode.\n"
	    "# TYPE outpost_hub_maintenance_leader gauge\n"
	    "outpost_hub_maintenance_leader %d\n"
	    "# HELP outpost_hub_maintenance_seconds_total Seconds this hub did it.\n"
	    "# TYPE outpost_hub_maintenance_seconds_total counter\n"
	    "outpost_hub_maintenance_seconds_total %llu\n"
	    "# HELP outpost_hub_tasks_expired_total Tasks this hub ended at their expiry.\n"
	    "# TYPE outpost_hub_tasks_expired_total counter\n"
	    "outpost_hub_tasks_expired_total %llu\n",
	    hub_maintains(h), h->st.maintenance_ticks, h->st.tasks_expired);
	buf_printf(&b, "# HELP outpost_hub_enroll_refused_total Enrollments refused, by reason "
	               "(enroll.* in docs/config.md).\n"
	               "# TYPE outpost_hub_enroll_refused_total counter\n");
	for (int i = 0; i < 4; i++)
		buf_printf(&b, "outpost_hub_enroll_refused_total{reason=\"%s\"} %llu\n",
		           enroll_refused_names[i], h->st.enroll_refused[i]);
	buf_printf(&b,
	           "# HELP outpost_hub_enroll_replaced_total Pending hosts whose id a valid "
	           "enrollment token took over.\n"
	           "# TYPE outpost_hub_enroll_replaced_total counter\n"
	           "outpost_hub_enroll_replaced_total %llu\n",
	           h->st.enroll_replaced);
	json_decref(st);
	{
		static const char *const names[HP_N] = {"agent_auth", "create",      "take",
		                                        "sign",       "poll_answer", "results"};
		phase_prom(&b, "outpost_hub_task_phase",
		           "the hub's part of tasks (docs/metrics.md)", names, h->st.phases, HP_N);
	}
	ingest_stats(h->ingest, &b);
	events_stats(h, &b);
	query_api_stats(h, &b);
	rwrite_stats(h->rwrite, &b);
	auth_stats(h, &b);
	retention_stats(h->retention, &b);
	rules_stats(h, &b);
	if (h->tsdb) {
		json_t *ts = tsdb_status(h->tsdb);
		const char *k2;
		json_t *v2;
		buf_printf(&b,
		           "# HELP outpost_hub_tsdb The time-series store's counters and sizes.\n"
		           "# TYPE outpost_hub_tsdb gauge\n");
		json_object_foreach(ts, k2, v2)
		    buf_printf(&b, "outpost_hub_tsdb{what=\"%s\"} %lld\n", k2,
		               (long long)json_integer_value(v2));
		json_decref(ts);
	}
	if (!b.data) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		return;
	}
	prom_respond(req, b.data, b.len);
	buf_free(&b);
}

static const struct httpd_route routes[] = {
    /* method  path                         handler              role           body */
    {"GET", "/api/v1/health", api_health, ROLE_NONE, 0},
    {"GET", "/api/v1/whoami", api_whoami, ROLE_VIEWER, 0},
    {"POST", "/api/v1/enroll", registry_enroll, ROLE_NONE, 1 * MB},
    {"GET", "/api/v1/agents/*/tasks", agents_poll, ROLE_AGENT, 0},
    {"GET", "/api/v1/agents/*/zk", zk_agent_credentials, ROLE_AGENT, 0},
    {"POST", "/api/v1/agents/*/beat", registry_beat, ROLE_AGENT, 1 * MB},
    {"POST", "/api/v1/agents/*/results", tasks_agent_results, ROLE_AGENT, 16 * MB},
    {"POST", "/api/v1/agents/*/metrics", ingest_agent_metrics, ROLE_AGENT, 4 * MB},
    {"GET", "/metrics", api_metrics, ROLE_VIEWER, 0},
    {"GET", "/api/v1/hosts", registry_hosts_list, ROLE_VIEWER, 0},
    {"GET", "/api/v1/hosts/*", registry_host_get, ROLE_VIEWER, 0},
    {"POST", "/api/v1/hosts/*/accept", registry_host_accept, ROLE_ADMIN, 4 * KB},
    {"POST", "/api/v1/hosts/*/reject", registry_host_reject, ROLE_ADMIN, 4 * KB},
    {"POST", "/api/v1/hosts/*/revoke", registry_host_revoke, ROLE_ADMIN, 4 * KB},
    {"POST", "/api/v1/hosts/*/remove", registry_host_remove, ROLE_ADMIN, 4 * KB},
    {"POST", "/api/v1/hosts/*/labels", registry_host_labels, ROLE_ADMIN, 64 * KB},
    {"GET", "/api/v1/events", events_api_list, ROLE_VIEWER, 0},
    {"POST", "/api/v1/events", events_api_post, ROLE_OPERATOR, 64 * KB},
    {"GET", "/api/v1/metrics/series", query_api_series, ROLE_VIEWER, 0},
    {"GET", "/api/v1/metrics/latest", query_api_latest, ROLE_VIEWER, 0},
    {"GET", "/api/v1/metrics/query", query_api_query, ROLE_VIEWER, 0},
    {"GET", "/federate", query_api_federate, ROLE_VIEWER, 0},
    {"POST", "/api/v1/tasks", tasks_api_create, ROLE_OPERATOR, 64 * MB},
    {"GET", "/api/v1/tasks", tasks_api_list, ROLE_VIEWER, 0},
    {"GET", "/api/v1/tasks/*", tasks_api_get, ROLE_VIEWER, 0},
    {"POST", "/api/v1/tasks/*/cancel", tasks_api_cancel, ROLE_OPERATOR, 4 * KB},
    {"POST", "/api/v1/tokens", api_token_create, ROLE_ADMIN, 64 * KB},
    {"GET", "/api/v1/tokens", api_tokens_list, ROLE_ADMIN, 0},
    {"POST", "/api/v1/tokens/*/revoke", api_token_revoke, ROLE_ADMIN, 4 * KB},
    {"GET", "/api/v1/audit", api_audit_list, ROLE_ADMIN, 0},
    {"GET", "/api/v1/flows", flows_api_list, ROLE_VIEWER, 0},
    {"POST", "/api/v1/flows", flows_api_put, ROLE_OPERATOR, 1 * MB},
    {"GET", "/api/v1/flows/*", flows_api_get, ROLE_VIEWER, 0},
    {"POST", "/api/v1/flows/*/run", flows_api_run, ROLE_OPERATOR, 256 * KB},
    {"POST", "/api/v1/flows/*/remove", flows_api_remove, ROLE_OPERATOR, 4 * KB},
    {"GET", "/api/v1/flow-runs", flows_api_runs, ROLE_VIEWER, 0},
    {"GET", "/api/v1/flow-runs/*", flows_api_run_get, ROLE_VIEWER, 0},
    {"POST", "/api/v1/flow-runs/*/cancel", flows_api_run_cancel, ROLE_OPERATOR, 4 * KB},
    {"GET", "/api/v1/mail", mail_api_list, ROLE_ADMIN, 0},
    {"GET", "/api/v1/report", report_api_get, ROLE_VIEWER, 0},
    {"POST", "/api/v1/report/mail", report_api_mail, ROLE_OPERATOR, 4 * KB},
    /* the web console's page and files (no data: it calls the routes above) */
    {"GET", "/", console_page, ROLE_NONE, 0},
    {"GET", "/console", console_page, ROLE_NONE, 0},
    {"GET", "/console/*", console_file, ROLE_NONE, 0},
    {"GET", "/api/v1/rules", rules_api_list, ROLE_VIEWER, 0},
    {"POST", "/api/v1/rules", rules_api_add, ROLE_OPERATOR, 64 * KB},
    {"POST", "/api/v1/rules/test", rules_api_test, ROLE_OPERATOR, 64 * KB},
    {"GET", "/api/v1/rules/*", rules_api_get, ROLE_VIEWER, 0},
    {"POST", "/api/v1/rules/*/edit", rules_api_edit, ROLE_OPERATOR, 64 * KB},
    {"POST", "/api/v1/rules/*/remove", rules_api_remove, ROLE_OPERATOR, 4 * KB},
    {"GET", "/api/v1/alerts", alerts_api_list, ROLE_VIEWER, 0},
    {"GET", "/api/v1/alerts/history", alerts_api_history, ROLE_VIEWER, 0},
    {"POST", "/api/v1/alerts/ack", alerts_api_ack, ROLE_OPERATOR, 4 * KB},
    {"GET", "/api/v1/silences", alerts_api_silences, ROLE_VIEWER, 0},
    {"POST", "/api/v1/silences", alerts_api_silence, ROLE_OPERATOR, 8 * KB},
    {"POST", "/api/v1/silences/*/remove", alerts_api_unsilence, ROLE_OPERATOR, 4 * KB},
};

const struct httpd_route *api_routes(size_t *n)
{
	*n = sizeof(routes) / sizeof(routes[0]);
	return routes;
}
