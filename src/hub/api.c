/* The hub's HTTP surface. Every route is one row of the table at the bottom: method, path,
 * handler, the role it needs, body limit; a reviewer sees the whole surface on one screen.
 * This file holds the registry handlers (enroll, hosts, tokens, audit, health, metrics);
 * tasks.c holds the task engine's, query_api.c the metric queries'. */
#include "hub_impl.h"
#include "retention.h"
#include "tsdb.h"
#include "selector.h"
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

static const char *caller_name(struct httpd_req *req)
{
	struct hub_caller *c = httpd_req_data(req);
	return c ? c->name : "anonymous";
}

void api_audit(struct hub *h, struct httpd_req *req, const char *action, const char *target,
               json_t *detail)
{
	if (h->store->ops->audit_add(h->store, caller_name(req), action, target, detail,
	                             clk_real_ms()) < 0)
		log_error(h->log, "audit", "cannot record %s %s", action, target);
	json_decref(detail);
}

/* The id in /api/v1/hosts/<id>[/verb]: copies it and returns the verb ("" if none). */
static const char *api_host_path(struct httpd_req *req, char id[65])
{
	const char *tail = httpd_req_tail(req), *slash = strchr(tail, '/');
	size_t n = slash ? (size_t)(slash - tail) : strlen(tail);

	if (n == 0 || n > 64)
		return NULL;
	memcpy(id, tail, n);
	id[n] = '\0';
	if (!hub_host_id_ok(id))
		return NULL;
	return slash ? slash + 1 : "";
}

static void respond_store(struct httpd_req *req, int rc, json_t *v, const char *what)
{
	if (rc == 0)
		httpd_respond_ok(req, v);
	else if (rc == OUTPOST_E_NOT_FOUND)
		httpd_respond_error(req, rc, "no such %s", what);
	else
		httpd_respond_error(req, rc, "%s: store error (%s)", what, err_name(rc));
}

static void api_health(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	httpd_respond_ok(req,
	                 json_pack("{s:s, s:I, s:s, s:s}", "version", OUTPOST_VERSION, "uptime_s",
	                           (json_int_t)((clk_real_ms() - h->started_ms) / 1000),
	                           "hub_pubkey", h->pk_b64, "fingerprint", h->fingerprint));
}

/* Enrollments refused, by reason (/metrics: outpost_hub_enroll_refused_total{reason}). */
enum { ENROLL_REFUSED_PENDING, ENROLL_REFUSED_ADDR, ENROLL_REFUSED_FACTS, ENROLL_REFUSED_USES };
static const char *const enroll_refused_names[] = {"pending_max", "pending_per_addr", "facts",
                                                   "token_used_up"};

#define FACTS_MAX_DEPTH 8 /* objects and arrays nested in facts */

/* Depth of nested objects and arrays in v (a scalar is 0), stopping past limit. */
static int json_depth(const json_t *v, int limit)
{
	const char *k;
	json_t *x;
	size_t i;
	int d = 0, c;

	if (limit < 0)
		return 1;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, x) if ((c = json_depth(x, limit - 1)) > d) d =
		    c;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x) if ((c = json_depth(x, limit - 1)) > d) d = c;
	} else {
		return 0;
	}
	return d + 1;
}

int api_facts_ok(struct hub *h, struct httpd_req *req, const json_t *facts, int enrolling)
{
	json_int_t max = json_integer_value(conf_get(h->conf, "enroll.facts_max_bytes"));
	char *text;
	size_t len;

	if (!facts)
		return 1;
	if (json_depth(facts, FACTS_MAX_DEPTH) > FACTS_MAX_DEPTH) {
		if (enrolling)
			h->st.enroll_refused[ENROLL_REFUSED_FACTS]++;
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "facts nest deeper than %d levels of objects and arrays",
		                    FACTS_MAX_DEPTH);
		return 0;
	}
	text = json_dumps(facts, JSON_COMPACT);
	len = text ? strlen(text) : 0;
	free(text);
	if (!text || (json_int_t)len > max) {
		if (enrolling)
			h->st.enroll_refused[ENROLL_REFUSED_FACTS]++;
		httpd_respond_error(req, OUTPOST_E_TOO_LARGE,
		                    "facts are %zu bytes, the hub takes at most %lld "
		                    "(enroll.facts_max_bytes)",
		                    len, (long long)max);
		return 0;
	}
	return 1;
}

/* POST /api/v1/enroll: the only write without credentials, so every field is checked,
 * failures count against the caller's address, and pending hosts are bounded. */
static void api_enroll(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct store_enroll e = {0};
	json_t *body = NULL, *tok = NULL, *host = NULL;
	const char *token;
	uint8_t pk[SEC_PK_BYTES];
	int rc, refused = 0, replaced = 0;

	if (httpd_req_json(req, &body) < 0)
		return;
	if (json_unpack(body, "{s:s, s:s, s?s, s?s, s?o}", "host_id", &e.host_id, "pubkey",
	                &e.pubkey, "hostname", &e.hostname, "version", &e.version, "facts",
	                &e.facts) < 0 ||
	    (e.facts && !json_is_object(e.facts))) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "enroll needs host_id and pubkey (strings), optional hostname, "
		                    "version, token and a facts object");
		goto out;
	}
	if (!hub_host_id_ok(e.host_id)) {
		httpd_respond_error(
		    req, OUTPOST_E_BAD_ARGS,
		    "host_id must be 1 to 64 of A-Z a-z 0-9 . _ - (not starting with "
		    ". or -, no ..)");
		goto out;
	}
	if (sec_unb64(e.pubkey, pk, sizeof(pk)) < 0) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "pubkey must be base64 of a 32-byte Ed25519 public key");
		goto out;
	}
	if ((e.hostname && strlen(e.hostname) > 255) || (e.version && strlen(e.version) > 64)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "hostname or version too long");
		goto out;
	}
	if (!api_facts_ok(h, req, e.facts, 1))
		goto out;
	token = json_string_value(json_object_get(body, "token"));
	if (token && *token) {
		char hash[65];
		sec_sha256_hex(token, strlen(token), hash);
		if (h->store->ops->token_find(h->store, hash, clk_real_ms(), &tok) == 0 &&
		    json_is_string(json_object_get(tok, "kind")) &&
		    strcmp(json_string_value(json_object_get(tok, "kind")), "enroll") == 0) {
			e.accept = 1;
			e.labels = json_object_get(tok, "labels");
			e.token_id = json_string_value(json_object_get(tok, "id"));
		} else if (auth_fail(h, req)) {
			httpd_respond_error(req, OUTPOST_E_BUSY,
			                    "too many failed attempts: wait a minute");
			goto out;
		} else {
			log_warn(
			    h->log, "enroll",
			    "host %s from %s presented an unknown or expired enrollment token: "
			    "recorded as pending",
			    e.host_id, httpd_req_peer(req));
		}
	}
	/* A valid enrollment token is never refused for others' failures (security.md). */
	if (!e.accept && auth_limited(h, req)) {
		httpd_respond_error(req, OUTPOST_E_BUSY, "too many failed attempts: wait a minute");
		goto out;
	}
	e.now_ms = clk_real_ms();
	e.addr = httpd_req_peer(req);
	e.pending_max = json_integer_value(conf_get(h->conf, "enroll.pending_max"));
	e.pending_per_addr = json_integer_value(conf_get(h->conf, "enroll.pending_per_addr"));
	e.refused = &refused;
	e.replaced = &replaced;
	rc = h->store->ops->host_enroll(h->store, &e, &host);
	if (rc == OUTPOST_E_BUSY && refused) {
		int total = refused == ENROLL_CAP_TOTAL;
		h->st.enroll_refused[total ? ENROLL_REFUSED_PENDING : ENROLL_REFUSED_ADDR]++;
		log_warn(h->log, "enroll", "host %s from %s refused: %s", e.host_id,
		         httpd_req_peer(req),
		         total ? "too many pending hosts" : "too many pending hosts from there");
		httpd_respond_error(
		    req, rc,
		    total ? "too many hosts wait for acceptance (enroll.pending_max): an operator "
		            "must accept or reject some, or enroll with a token"
		          : "too many hosts from this address wait for acceptance "
		            "(enroll.pending_per_addr): enroll with a token, or have an operator "
		            "accept or reject them");
		goto out;
	}
	if (rc == OUTPOST_E_UNAUTHORIZED) { /* its last use went to another host meanwhile */
		h->st.enroll_refused[ENROLL_REFUSED_USES]++;
		auth_fail(h, req);
		httpd_respond_error(req, rc, "the enrollment token has no uses left");
		goto out;
	}
	if (rc == OUTPOST_E_CONFLICT) {
		auth_fail(h, req);
		httpd_respond_error(req, rc,
		                    "host id %s is enrolled with another key: an operator must "
		                    "revoke and remove it first (outpost hosts revoke %s; outpost "
		                    "hosts remove %s)",
		                    e.host_id, e.host_id, e.host_id);
		goto out;
	}
	if (rc == OUTPOST_E_FORBIDDEN) {
		/* The agent shows which of the two it was: the message says "was rejected" or
		 * "was revoked" (docs/protocol.md). */
		int rejected =
		    h->store->ops->host_get(h->store, e.host_id, &host) == 0 &&
		    strcmp(json_string_value(json_object_get(host, "state")), HOST_REJECTED) == 0;
		auth_fail(h, req);
		log_info(h->log, "enroll", "host %s from %s: refused, it was %s", e.host_id,
		         httpd_req_peer(req), rejected ? "rejected" : "revoked");
		if (rejected)
			httpd_respond_error(req, rc,
			                    "host id %s was rejected by an operator: it stays "
			                    "refused until one runs 'outpost hosts accept %s'",
			                    e.host_id, e.host_id);
		else
			httpd_respond_error(req, rc, "host id %s was revoked", e.host_id);
		goto out;
	}
	if (rc < 0) {
		httpd_respond_error(req, rc, "cannot record the host");
		goto out;
	}
	h->st.enrollments++;
	if (replaced) {
		/* Audited as the token's act: a squatter lost the id to its rightful holder. */
		h->st.enroll_replaced++;
		log_warn(h->log, "enroll",
		         "host %s from %s: a pending host of that id with another key was "
		         "replaced (enrollment token %s)",
		         e.host_id, httpd_req_peer(req), e.token_id);
		api_audit(h, req, "host.replace", e.host_id,
		          json_pack("{s:s, s:s, s:s}", "token", e.token_id, "from",
		                    httpd_req_peer(req), "why",
		                    "a pending host of another key replaced by a valid enrollment "
		                    "token"));
	}
	log_info(h->log, "enroll", "host %s from %s: %s", e.host_id, httpd_req_peer(req),
	         json_string_value(json_object_get(host, "state")));
	httpd_respond_ok(req, json_pack("{s:s, s:O, s:s}", "host_id", e.host_id, "state",
	                                json_object_get(host, "state"), "hub_pubkey", h->pk_b64));
out:
	json_decref(tok);
	json_decref(host);
	json_decref(body);
}

/* GET /hosts?target=SEL: the same rule as a task's targeting (hub_select_hosts), in any state,
 * so what `hosts ls -t X` lists is what `run -t X` would reach (pending and revoked aside). */
static void api_hosts_list(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	const char *target = httpd_req_query(req, "target");
	json_t *hosts = NULL, *ids = NULL, *want = NULL, *out, *host, *id;
	char msg[256];
	size_t i;
	int rc;

	if (target && hub_select_hosts(h, target, HUB_SELECT_ANY, &ids, msg, sizeof(msg)) < 0) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "target: %s", msg);
		return;
	}
	rc = h->store->ops->host_list(h->store, &hosts);
	if (rc < 0) {
		json_decref(ids);
		respond_store(req, rc, NULL, "hosts");
		return;
	}
	if (ids) {
		want = json_object();
		json_array_foreach(ids, i, id)
		    json_object_set(want, json_string_value(id), json_true());
	}
	out = json_array();
	json_array_foreach(hosts, i, host)
	{
		const char *hid = json_string_value(json_object_get(host, "id"));
		if (want && (!hid || !json_object_get(want, hid)))
			continue;
		json_object_del(host, "attrs");
		json_array_append(out, host);
	}
	json_decref(want);
	json_decref(ids);
	json_decref(hosts);
	httpd_respond_ok(req, out);
}

static void api_host_get(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *host = NULL;
	char id[65];
	const char *verb = api_host_path(req, id);

	if (!verb || *verb) {
		httpd_respond_error(req, OUTPOST_E_NOT_FOUND, "no such host path");
		return;
	}
	int rc = h->store->ops->host_get(h->store, id, &host);
	respond_store(req, rc, host, "host");
}

/* POST /api/v1/hosts/<id>/accept|reject|revoke|remove|labels */
static void api_host_change(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *host = NULL, *body = NULL;
	const char *state;
	char id[65];
	const char *verb = api_host_path(req, id);
	int rc;

	if (!verb) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "bad host id in the path");
		return;
	}
	rc = h->store->ops->host_get(h->store, id, &host);
	if (rc < 0) {
		respond_store(req, rc, NULL, "host");
		return;
	}
	state = json_string_value(json_object_get(host, "state"));
	if (strcmp(verb, "accept") == 0) {
		/* Accepting a rejected host undoes the rejection, with the key it enrolled with. */
		if (strcmp(state, HOST_PENDING) != 0 && strcmp(state, HOST_REJECTED) != 0) {
			httpd_respond_error(req, OUTPOST_E_CONFLICT,
			                    "host %s is %s, not pending or rejected", id, state);
			goto out;
		}
		rc =
		    h->store->ops->host_set_state(h->store, id, HOST_UP, "accepted", clk_real_ms());
	} else if (strcmp(verb, "reject") == 0) {
		if (strcmp(state, HOST_PENDING) != 0 && strcmp(state, HOST_REJECTED) != 0) {
			httpd_respond_error(req, OUTPOST_E_CONFLICT,
			                    "host %s is %s: only a pending host can be rejected "
			                    "(revoke cuts off an accepted one)",
			                    id, state);
			goto out;
		}
		rc = h->store->ops->host_set_state(h->store, id, HOST_REJECTED, "rejected",
		                                   clk_real_ms());
	} else if (strcmp(verb, "revoke") == 0) {
		rc = h->store->ops->host_set_state(h->store, id, HOST_REVOKED, "revoked",
		                                   clk_real_ms());
	} else if (strcmp(verb, "remove") == 0) {
		/* Forgets the host and its key, so that its id may enroll again (a reinstalled
		 * server, a new key): only once it is cut off, never a host that is in service. */
		if (strcmp(state, HOST_REVOKED) != 0 && strcmp(state, HOST_REJECTED) != 0 &&
		    strcmp(state, HOST_PENDING) != 0) {
			httpd_respond_error(
			    req, OUTPOST_E_CONFLICT,
			    "host %s is %s: revoke it first (only a revoked, rejected "
			    "or pending host can be removed)",
			    id, state);
			goto out;
		}
		rc = h->store->ops->host_remove(h->store, id);
	} else if (strcmp(verb, "labels") == 0) {
		json_t *set, *rm;
		const char *k;
		json_t *v;
		size_t i;
		if (httpd_req_json(req, &body) < 0)
			goto out;
		set = json_object_get(body, "set");
		rm = json_object_get(body, "remove");
		if ((set && !json_is_object(set)) || (rm && !json_is_array(rm))) {
			httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
			                    "labels body: {\"set\": {k: v}, \"remove\": [k]}");
			goto out;
		}
		json_object_foreach(set, k, v)
		{
			if (!json_is_string(v) || !hub_host_id_ok(k) || strlen(k) > 63 ||
			    strlen(json_string_value(v)) > 255) {
				httpd_respond_error(
				    req, OUTPOST_E_BAD_ARGS,
				    "label '%.64s': keys are 1..63 of A-Z a-z 0-9 . _ "
				    "-, values strings of at most 255 bytes",
				    k);
				goto out;
			}
		}
		json_array_foreach(rm, i, v)
		{
			if (!json_is_string(v)) {
				httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
				                    "remove: an array of label keys");
				goto out;
			}
		}
		rc = h->store->ops->host_labels(h->store, id, set, rm);
	} else {
		httpd_respond_error(req, OUTPOST_E_NOT_FOUND, "no such host action '%.32s'", verb);
		goto out;
	}
	if (rc < 0) {
		respond_store(req, rc, NULL, "host");
		goto out;
	}
	{
		char action[32];
		snprintf(action, sizeof(action), "host.%s", verb);
		api_audit(h, req, action, id, body ? json_incref(body) : NULL);
	}
	if (strcmp(verb, "revoke") == 0)
		tasks_cut_off(h, id, "this host was revoked");
	else if (strcmp(verb, "remove") == 0)
		tasks_cut_off(h, id, "unknown host: enroll first");
	json_decref(host);
	host = NULL;
	if (strcmp(verb, "remove") == 0)
		httpd_respond_ok(req, json_pack("{s:s, s:s}", "id", id, "state", "removed"));
	else if ((rc = h->store->ops->host_get(h->store, id, &host)) == 0)
		httpd_respond_ok(req, json_incref(host));
	else
		respond_store(req, rc, NULL, "host");
out:
	json_decref(host);
	json_decref(body);
}

static int64_t api_duration(const json_t *v)
{
	return json_is_integer(v) ? json_integer_value(v) : -1;
}

#define OPERATOR_TTL_DEFAULT_S (90L * 86400) /* an operator token made without ttl_s */
#define TOKEN_USES_MAX 1000000

/* POST /api/v1/tokens {"kind", "role", "ttl_s", "labels", "uses"}. ttl_s 0: never expires;
 * absent: never for an enrollment token, 90 days for an operator token. uses (enrollment
 * tokens): hosts it may enroll, 0 or absent for any number. */
static void api_token_create(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *body = NULL, *labels, *tok;
	const char *kind = NULL, *role = NULL, *k;
	char *secret = NULL, *id = NULL, hash[65];
	int64_t ttl, uses, now = clk_real_ms();
	json_t *v;

	if (httpd_req_json(req, &body) < 0)
		return;
	if (json_unpack(body, "{s:s, s?s}", "kind", &kind, "role", &role) < 0 ||
	    (strcmp(kind, "enroll") && strcmp(kind, "operator"))) {
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
	uses = v ? api_duration(v) : 0;
	if (uses < 0 || uses > TOKEN_USES_MAX || (uses && strcmp(kind, "enroll"))) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "uses: hosts an enrollment token may enroll, 0 (any number) to "
		                    "%d; only for kind enroll",
		                    TOKEN_USES_MAX);
		goto out;
	}
	ttl = json_object_get(body, "ttl_s")  ? api_duration(json_object_get(body, "ttl_s"))
	      : strcmp(kind, "operator") == 0 ? OPERATOR_TTL_DEFAULT_S
	                                      : 0;
	if (ttl < 0 || ttl > 10L * 365 * 86400) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "ttl_s: seconds, 0 (never expires) to 10 years");
		goto out;
	}
	labels = json_object_get(body, "labels");
	if (labels && !json_is_object(labels)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "labels must be an object");
		goto out;
	}
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
	                caller_name(req), "max_uses", (json_int_t)uses);
	if (!tok || h->store->ops->token_add(h->store, tok) < 0) {
		json_decref(tok);
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "cannot store the token");
		goto out;
	}
	json_decref(tok);
	api_audit(h, req, "token.create", id,
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
	respond_store(req, rc, toks, "tokens");
}

/* POST /api/v1/tokens/<id>/revoke: refused at once, for good (auth looks a token up on every
 * request; nothing caches it). Revoking a revoked token again answers ok. */
static void api_token_revoke(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	const char *tail = httpd_req_tail(req), *slash = strchr(tail, '/');
	char id[65];
	size_t n = slash ? (size_t)(slash - tail) : strlen(tail);
	int rc;

	if (!slash || strcmp(slash, "/revoke") != 0 || n == 0 || n >= sizeof(id)) {
		httpd_respond_error(req, OUTPOST_E_NOT_FOUND,
		                    "no such route: POST /api/v1/tokens/<id>/revoke");
		return;
	}
	memcpy(id, tail, n);
	id[n] = '\0';
	if (!hub_host_id_ok(id)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "token id: A-Z a-z 0-9 . _ -");
		return;
	}
	rc = h->store->ops->token_revoke(h->store, id);
	if (rc < 0) {
		respond_store(req, rc, NULL, "token");
		return;
	}
	api_audit(h, req, "token.revoke", id, NULL);
	log_info(h->log, "token", "token %s revoked by %s", id, caller_name(req));
	httpd_respond_ok(req, json_pack("{s:s, s:b}", "id", id, "revoked", 1));
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
	respond_store(req, rc, v, "audit");
}

static void api_events(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *v = NULL;
	int rc = h->store->ops->events_list(h->store, httpd_req_query(req, "host"),
	                                    api_limit(req, 100), &v);
	respond_store(req, rc, v, "events");
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
	           h->npolls, (long long)json_integer_value(json_object_get(st, "tasks_running")),
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
	ingest_stats(h->ingest, &b);
	auth_stats(h, &b);
	retention_stats(h->retention, &b);
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
    {"POST", "/api/v1/enroll", api_enroll, ROLE_NONE, 1 * MB},
    {"GET", "/api/v1/agents/*", tasks_agent_poll, ROLE_AGENT, 0},
    {"POST", "/api/v1/agents/*", tasks_agent_results, ROLE_AGENT, 16 * MB},
    {"GET", "/metrics", api_metrics, ROLE_VIEWER, 0},
    {"GET", "/api/v1/hosts", api_hosts_list, ROLE_VIEWER, 0},
    {"GET", "/api/v1/hosts/*", api_host_get, ROLE_VIEWER, 0},
    {"POST", "/api/v1/hosts/*", api_host_change, ROLE_ADMIN, 64 * KB},
    {"GET", "/api/v1/events", api_events, ROLE_VIEWER, 0},
    {"GET", "/api/v1/metrics/series", query_api_series, ROLE_VIEWER, 0},
    {"GET", "/api/v1/metrics/latest", query_api_latest, ROLE_VIEWER, 0},
    {"GET", "/api/v1/metrics/query", query_api_query, ROLE_VIEWER, 0},
    {"GET", "/federate", query_api_federate, ROLE_VIEWER, 0},
    {"POST", "/api/v1/tasks", tasks_api_create, ROLE_OPERATOR, 64 * MB},
    {"GET", "/api/v1/tasks", tasks_api_list, ROLE_VIEWER, 0},
    {"GET", "/api/v1/tasks/*", tasks_api_get, ROLE_VIEWER, 0},
    {"POST", "/api/v1/tasks/*", tasks_api_cancel, ROLE_OPERATOR, 4 * KB},
    {"POST", "/api/v1/tokens", api_token_create, ROLE_ADMIN, 64 * KB},
    {"GET", "/api/v1/tokens", api_tokens_list, ROLE_ADMIN, 0},
    {"POST", "/api/v1/tokens/*", api_token_revoke, ROLE_ADMIN, 4 * KB},
    {"GET", "/api/v1/audit", api_audit_list, ROLE_ADMIN, 0},
};

const struct httpd_route *api_routes(size_t *n)
{
	*n = sizeof(routes) / sizeof(routes[0]);
	return routes;
}
