/* The registry of hosts (registry.h): enrollment, the host routes, beats and signs of life,
 * the down sweep, and host selection with the snapshot cache that metric queries share. What it
 * needs of the agents' link (held polls) comes through the hooks hub.c hands it. */
#include "registry.h"
#include "audit.h"
#include "hub_impl.h"
#include "selector.h"
#include "core/clk.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct registry {
	struct registry_hooks hooks;
	/* The down sweep's view of the hub's own backlog (registry_unread_ms), monotonic ms. */
	int64_t behind_since_ms, last_tick_ms;
	unsigned long long closed_seen;
	json_t *sel_hosts, *sel_keys; /* the registry as queries' selectors saw it */
	int64_t sel_at_ms;
};

static const char *const fact_keys[] = {"id",         "hostname", "state", "version", "os",
                                        "os_version", "kernel",   "arch",  "cpus",    NULL};

int registry_new(const struct registry_hooks *hooks, struct registry **out)
{
	struct registry *r = calloc(1, sizeof(*r));

	*out = r;
	if (!r)
		return OUTPOST_E_INTERNAL;
	r->hooks = *hooks;
	return 0;
}

void registry_free(struct registry *r)
{
	if (!r)
		return;
	json_decref(r->sel_hosts);
	json_decref(r->sel_keys);
	free(r);
}

/* The id in /api/v1/hosts/<id>[/verb], or NULL when it is not a host id. */
static const char *registry_host_id(struct httpd_req *req)
{
	const char *id = httpd_req_arg(req, 0);

	return hub_host_id_ok(id) ? id : NULL;
}

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

static int registry_facts_ok(struct hub *h, struct httpd_req *req, const json_t *facts,
                             int enrolling)
{
	json_int_t max = h->conf->enroll.facts_max_bytes;
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
static const struct outpost_arg enroll_fields[] = {
    {"host_id", OUTPOST_ARG_STRING, 1, "1..64 of A-Z a-z 0-9 . _ -"},
    {"pubkey", OUTPOST_ARG_STRING, 1, "base64 of the host's Ed25519 public key"},
    {"hostname", OUTPOST_ARG_STRING, 0, "at most 255 bytes"},
    {"version", OUTPOST_ARG_STRING, 0, "the agent's, at most 64 bytes"},
    {"facts", OUTPOST_ARG_OBJECT, 0, "bounded by enroll.facts_max_bytes"},
    {"token", OUTPOST_ARG_STRING, 0, "an enrollment token"},
    {NULL, 0, 0, NULL},
};

void registry_enroll(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct store_enroll e = {0};
	json_t *body = NULL, *tok = NULL, *host = NULL;
	const char *token;
	uint8_t pk[SEC_PK_BYTES];
	int rc, refused = 0, replaced = 0;

	if (httpd_req_fields(req, enroll_fields, &body) < 0)
		return;
	e.host_id = json_string_value(json_object_get(body, "host_id"));
	e.pubkey = json_string_value(json_object_get(body, "pubkey"));
	e.hostname = json_string_value(json_object_get(body, "hostname"));
	e.version = json_string_value(json_object_get(body, "version"));
	e.facts =
	    json_is_object(json_object_get(body, "facts")) ? json_object_get(body, "facts") : NULL;
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
	if (e.hostname && strlen(e.hostname) > 255) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "hostname: at most 255 bytes");
		goto out;
	}
	if (e.version && strlen(e.version) > 64) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "version: at most 64 bytes");
		goto out;
	}
	if (!registry_facts_ok(h, req, e.facts, 1))
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
	e.pending_max = h->conf->enroll.pending_max;
	e.pending_per_addr = h->conf->enroll.pending_per_addr;
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
	registry_changed(h);
	if (replaced) {
		/* Audited as the token's act: a squatter lost the id to its rightful holder. */
		h->st.enroll_replaced++;
		log_warn(h->log, "enroll",
		         "host %s from %s: a pending host of that id with another key was "
		         "replaced (enrollment token %s)",
		         e.host_id, httpd_req_peer(req), e.token_id);
		audit_record(
		    h, req, "host.replace", e.host_id,
		    json_pack("{s:s, s:s, s:s}", "token", e.token_id, "from", httpd_req_peer(req),
		              "why",
		              "a pending host of another key replaced by a valid enrollment "
		              "token"));
	}
	log_info(h->log, "enroll", "host %s from %s: %s", e.host_id, httpd_req_peer(req),
	         json_string_value(json_object_get(host, "state")));
	{
		json_t *ans = json_pack("{s:s, s:O, s:s}", "host_id", e.host_id, "state",
		                        json_object_get(host, "state"), "hub_pubkey", h->pk_b64);
		if (e.accept && h->registry->hooks.accepted)
			h->registry->hooks.accepted(h->registry->hooks.arg, e.host_id, e.pubkey,
			                            ans);
		httpd_respond_ok(req, ans);
	}
out:
	json_decref(tok);
	json_decref(host);
	json_decref(body);
}

void registry_host_get(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *host = NULL;
	const char *id = registry_host_id(req);

	if (!id) {
		httpd_respond_error(req, OUTPOST_E_NOT_FOUND, "no such host path");
		return;
	}
	int rc = h->store->ops->host_get(h->store, id, &host);
	hub_respond_store(req, rc, host, "host");
}

/* What POST /api/v1/hosts/<id>/<verb> does: each verb is a row of the route table. The four
 * state changes take no field ({} or an empty body); labels takes set and remove. */
enum host_verb { HOST_ACCEPT, HOST_REJECT, HOST_REVOKE, HOST_REMOVE, HOST_LABELS };
static const struct outpost_arg host_state_fields[] = {{NULL, 0, 0, NULL}};
static const struct outpost_arg host_labels_fields[] = {
    {"set", OUTPOST_ARG_OBJECT, 0, "labels to set: {key: value}"},
    {"remove", OUTPOST_ARG_ARRAY, 0, "label keys to remove"},
    {NULL, 0, 0, NULL},
};
static const char *const host_actions[] = {"host.accept", "host.reject", "host.revoke",
                                           "host.remove", "host.labels"};

static void host_change(struct hub *h, struct httpd_req *req, enum host_verb verb)
{
	json_t *host = NULL, *body = NULL;
	const char *state;
	const char *id = registry_host_id(req);
	int rc;

	if (!id) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "bad host id in the path");
		return;
	}
	if (httpd_req_fields(req, verb == HOST_LABELS ? host_labels_fields : host_state_fields,
	                     &body) < 0)
		return;
	if (verb != HOST_LABELS) {
		json_decref(body); /* audited as before: only labels carry a detail */
		body = NULL;
	}
	rc = h->store->ops->host_get(h->store, id, &host);
	if (rc < 0) {
		hub_respond_store(req, rc, NULL, "host");
		goto out; /* the labels' body too */
	}
	state = json_string_value(json_object_get(host, "state"));
	if (verb == HOST_ACCEPT) {
		/* Accepting a rejected host undoes the rejection, with the key it enrolled with. */
		if (strcmp(state, HOST_PENDING) != 0 && strcmp(state, HOST_REJECTED) != 0) {
			httpd_respond_error(req, OUTPOST_E_CONFLICT,
			                    "host %s is %s, not pending or rejected", id, state);
			goto out;
		}
		rc =
		    h->store->ops->host_set_state(h->store, id, HOST_UP, "accepted", clk_real_ms());
	} else if (verb == HOST_REJECT) {
		if (strcmp(state, HOST_PENDING) != 0 && strcmp(state, HOST_REJECTED) != 0) {
			httpd_respond_error(req, OUTPOST_E_CONFLICT,
			                    "host %s is %s: only a pending host can be rejected "
			                    "(revoke cuts off an accepted one)",
			                    id, state);
			goto out;
		}
		rc = h->store->ops->host_set_state(h->store, id, HOST_REJECTED, "rejected",
		                                   clk_real_ms());
	} else if (verb == HOST_REVOKE) {
		rc = h->store->ops->host_set_state(h->store, id, HOST_REVOKED, "revoked",
		                                   clk_real_ms());
	} else if (verb == HOST_REMOVE) {
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
	} else {
		json_t *set, *rm;
		const char *k;
		json_t *v;
		size_t i;
		set = json_is_object(json_object_get(body, "set")) ? json_object_get(body, "set")
		                                                   : NULL;
		rm = json_is_array(json_object_get(body, "remove"))
		         ? json_object_get(body, "remove")
		         : NULL;
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
	}
	if (rc < 0) {
		hub_respond_store(req, rc, NULL, "host");
		goto out;
	}
	audit_record(h, req, host_actions[verb], id, body ? json_incref(body) : NULL);
	registry_changed(h);
	if (verb == HOST_REVOKE)
		h->registry->hooks.cut_off(h->registry->hooks.arg, id, "this host was revoked");
	else if (verb == HOST_REMOVE)
		h->registry->hooks.cut_off(h->registry->hooks.arg, id,
		                           "unknown host: enroll first");
	else if (verb == HOST_ACCEPT && h->registry->hooks.accepted)
		h->registry->hooks.accepted(h->registry->hooks.arg, id,
		                            json_string_value(json_object_get(host, "pubkey")),
		                            NULL);
	json_decref(host);
	host = NULL;
	if (verb == HOST_REMOVE)
		httpd_respond_ok(req, json_pack("{s:s, s:s}", "id", id, "state", "removed"));
	else if ((rc = h->store->ops->host_get(h->store, id, &host)) == 0)
		httpd_respond_ok(req, json_incref(host));
	else
		hub_respond_store(req, rc, NULL, "host");
out:
	json_decref(host);
	json_decref(body);
}

void registry_host_accept(void *ctx, struct httpd_req *req)
{
	host_change(ctx, req, HOST_ACCEPT);
}

void registry_host_reject(void *ctx, struct httpd_req *req)
{
	host_change(ctx, req, HOST_REJECT);
}

void registry_host_revoke(void *ctx, struct httpd_req *req)
{
	host_change(ctx, req, HOST_REVOKE);
}

void registry_host_remove(void *ctx, struct httpd_req *req)
{
	host_change(ctx, req, HOST_REMOVE);
}

void registry_host_labels(void *ctx, struct httpd_req *req)
{
	host_change(ctx, req, HOST_LABELS);
}

/* POST /api/v1/agents/<id>/beat */
static const struct outpost_arg beat_fields[] = {
    {"version", OUTPOST_ARG_STRING, 0, "the agent's, at most 64 bytes"},
    {"facts", OUTPOST_ARG_OBJECT, 0, "bounded as at enrollment"},
    {NULL, 0, 0, NULL},
};

void registry_beat(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct hub_caller *c = httpd_req_data(req);
	json_t *body = NULL, *facts;
	const char *version = NULL;
	int was_down = 0;

	if (httpd_req_fields(req, beat_fields, &body) < 0)
		return;
	facts =
	    json_is_object(json_object_get(body, "facts")) ? json_object_get(body, "facts") : NULL;
	version = json_string_value(json_object_get(body, "version"));
	if (version && strlen(version) > 64) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "version: at most 64 bytes");
		goto out;
	}
	/* An accepted host is bounded as an enrolling one: a beat must not grow hub.db either. */
	if (!registry_facts_ok(h, req, facts, 0))
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
	 * connection (agents.c). An older hub says neither, and its agents beat every
	 * interval. */
	httpd_respond_ok(req,
	                 json_pack("{s:I, s:b, s:b}", "interval_ms", h->conf->agents.beat_ms,
	                           "requests_count_as_beats", 1, "held_poll_counts_as_beats", 1));
out:
	json_decref(body);
}

/* Marks the host seen, unless it is up and was seen less than half a beat interval ago: a
 * burst of requests (a spool's backlog, posted request after request) costs hub.db one write,
 * and down detection, which waits missed_beats intervals, is off by half an interval at most. */
void registry_alive(struct hub *h, struct hub_caller *c)
{
	int64_t now = clk_real_ms();
	int64_t beat = h->conf->agents.beat_ms;
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

/* A connection accepted this long ago whose request has not begun: the hub is behind. */
#define REGISTRY_UNREAD_MS 1000
#define REGISTRY_LAG_MAX_MS 60000

/* How long agents' requests may have waited unread at the hub: since the hub fell behind
 * (connections in the kernel's accept queue, accepted ones not read for a second, connections
 * closed or requests answered busy by admission control with their agents still away, the
 * loop itself late), or 0 when it is not. A host is not judged by time its request spent
 * waiting for the hub. */
static int64_t registry_unread_ms(struct hub *h)
{
	struct registry *r = h->registry;
	int64_t now = clk_mono_ms(), beat = h->conf->agents.beat_ms;
	struct httpd_backlog b;
	int behind;

	httpd_backlog(h->httpd, &b);
	behind = b.accept_queue > 0 || b.oldest_unread_ms > REGISTRY_UNREAD_MS ||
	         b.admit_refused != r->closed_seen ||
	         (b.admit_refused_ms && now - b.admit_refused_ms < beat) ||
	         now < admit_away_until_ms(&h->admit) ||
	         (r->last_tick_ms && now - r->last_tick_ms > 2 * REGISTRY_UNREAD_MS);
	r->closed_seen = b.admit_refused;
	if (!behind)
		r->behind_since_ms = 0;
	else if (!r->behind_since_ms)
		r->behind_since_ms = r->last_tick_ms && r->last_tick_ms < now - b.oldest_unread_ms
		                         ? r->last_tick_ms
		                         : now - b.oldest_unread_ms;
	r->last_tick_ms = now;
	return r->behind_since_ms ? now - r->behind_since_ms : 0;
}

void registry_tick(struct hub *h)
{
	int64_t now = clk_real_ms();
	int64_t beat = h->conf->agents.beat_ms;
	int64_t missed = h->conf->agents.missed_beats;
	struct registry *r = h->registry;
	json_t *ids = NULL, *v;
	size_t i;
	/* Behind: each host gets that much more, up to a minute (or missed_beats intervals if
	 * longer): what a restarted hub takes to admit its fleet, while a flood of connections
	 * cannot switch down detection off, only delay it by that much. */
	int64_t lag = registry_unread_ms(h);

	if (lag > (beat * missed > REGISTRY_LAG_MAX_MS ? beat * missed : REGISTRY_LAG_MAX_MS))
		lag = beat * missed > REGISTRY_LAG_MAX_MS ? beat * missed : REGISTRY_LAG_MAX_MS;
	/* A hub that just started has heard nobody yet: a host last seen when its poll was
	 * renewed, up to a poll wait before the restart, gets missed_beats intervals to come
	 * back before it is called down. */
	/* A hub on its way down has stopped reading: nobody is judged by that either. */
	if (!h->stopping && now - h->started_ms >= beat * missed + lag &&
	    (!r->hooks.sweeps || r->hooks.sweeps(r->hooks.arg)) &&
	    h->store->ops->hosts_mark_down(h->store, now - beat * missed - lag, now,
	                                   r->hooks.keeps_up, r->hooks.arg, &ids) == 0)
		json_array_foreach(ids, i, v)
		    log_warn(h->log, "registry", "host %s is down: no sign of life for %lld ms",
		             json_string_value(v), (long long)(beat * missed));
	json_decref(ids);
}

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
 * version merged) and the set of every key in use. Queries reuse it for REGISTRY_SELECT_CACHE_MS
 * (reading and preparing 10,000 hosts costs tens of ms, and a dashboard asks every few
 * seconds; a host enrolled a moment ago showing up a moment later in a chart is fine); tasks
 * always read it afresh, so a task sees a host the moment it is accepted. */
#define REGISTRY_SELECT_CACHE_MS 2000

void registry_changed(struct hub *h)
{
	h->registry->sel_at_ms = INT64_MIN / 2; /* the next cached selection reads afresh */
}

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

int registry_match(struct hub *h, const char *target, int any_state, json_t **hosts, char *msg,
                   size_t msglen)
{
	struct keyset ks = {NULL};
	struct selector *sel = NULL;
	json_t *all = NULL, *host;
	int64_t now = clk_mono_ms();
	size_t i;
	int rc;

	*hosts = NULL;
	if (any_state == REGISTRY_ANY_CACHED && h->registry->sel_hosts &&
	    now - h->registry->sel_at_ms < REGISTRY_SELECT_CACHE_MS) {
		all = json_incref(h->registry->sel_hosts);
		ks.keys = json_incref(h->registry->sel_keys);
	} else if ((rc = hosts_snapshot(h, &all, &ks.keys)) < 0) {
		snprintf(msg, msglen, "cannot read the registry");
		goto out;
	} else if (any_state == REGISTRY_ANY_CACHED) {
		json_decref(h->registry->sel_hosts);
		json_decref(h->registry->sel_keys);
		h->registry->sel_hosts = json_incref(all);
		h->registry->sel_keys = json_incref(ks.keys);
		h->registry->sel_at_ms = now;
	}
	if (target && (rc = selector_parse(target, key_known, &ks, &sel, msg, msglen)) < 0)
		goto out;
	*hosts = json_array();
	json_array_foreach(all, i, host)
	{
		const char *state = json_string_value(json_object_get(host, "state"));
		if (!any_state && (!state || (strcmp(state, HOST_UP) && strcmp(state, HOST_DOWN))))
			continue; /* pending and revoked hosts get no tasks */
		if (!sel || selector_match(sel, json_string_value(json_object_get(host, "id")),
		                           json_object_get(host, "attrs")))
			json_array_append(*hosts, host);
	}
	rc = 0;
out:
	selector_free(sel);
	json_decref(all);
	json_decref(ks.keys);
	return rc;
}

int registry_select(struct hub *h, const char *target, int any_state, json_t **ids, char *msg,
                    size_t msglen)
{
	json_t *hosts = NULL, *host;
	size_t i;
	int rc = registry_match(h, target, any_state, &hosts, msg, msglen);

	*ids = NULL;
	if (rc < 0)
		return rc;
	*ids = json_array();
	json_array_foreach(hosts, i, host) json_array_append(*ids, json_object_get(host, "id"));
	json_decref(hosts);
	return 0;
}
