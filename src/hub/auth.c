/* Who may call what: operator tokens (Bearer, stored hashed), agents' signed requests, and a
 * limit on failed attempts per client address. The route table names the role each route
 * needs; this file is the only place that decides. */
#include "hub_impl.h"
#include "core/buf.h"
#include "core/clk.h"
#include "core/wire.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_CLOCK_SKEW_MS (300 * 1000)

int hub_host_id_ok(const char *id)
{
	return wire_host_id_ok(id);
}

static struct hub_fail *auth_slot(struct hub *h, const char *peer, int create)
{
	struct hub_fail *oldest = &h->fails[0];

	for (size_t i = 0; i < sizeof(h->fails) / sizeof(h->fails[0]); i++) {
		if (strcmp(h->fails[i].peer, peer) == 0)
			return &h->fails[i];
		if (h->fails[i].window_start < oldest->window_start)
			oldest = &h->fails[i];
	}
	if (!create)
		return NULL;
	memset(oldest, 0, sizeof(*oldest));
	snprintf(oldest->peer, sizeof(oldest->peer), "%s", peer);
	return oldest;
}

int auth_limited(struct hub *h, struct httpd_req *req)
{
	struct hub_fail *f = auth_slot(h, httpd_req_peer(req), 0);
	int64_t max = json_integer_value(
	    json_object_get(json_object_get(h->conf, "auth"), "max_failures_per_min"));

	return f && clk_mono_ms() - f->window_start < 60000 && f->count >= max;
}

int auth_fail(struct hub *h, struct httpd_req *req)
{
	struct hub_fail *f = auth_slot(h, httpd_req_peer(req), 1);
	int64_t now = clk_mono_ms();

	h->st.refused_auth++;
	if (now - f->window_start >= 60000) {
		f->window_start = now;
		f->count = 0;
	}
	f->count++;
	return auth_limited(h, req);
}

static int auth_refuse(struct hub *h, struct httpd_req *req, int code, const char *msg)
{
	auth_fail(h, req);
	log_info(h->log, "auth", "refused %s %s from %s: %s", httpd_req_method(req),
	         httpd_req_path(req), httpd_req_peer(req), msg);
	httpd_respond_error(req, code, "%s", msg);
	return code;
}

static int auth_bearer(struct hub *h, struct httpd_req *req, int role, struct hub_caller *c)
{
	const char *hdr = httpd_req_header(req, "Authorization");
	json_t *tok = NULL;
	char hash[65];
	const char *trole;
	int have;

	if (!hdr || strncmp(hdr, "Bearer ", 7) != 0 || !hdr[7])
		return auth_refuse(h, req, OUTPOST_E_UNAUTHORIZED,
		                   "this endpoint needs an operator token: Authorization: Bearer "
		                   "<token> (outpost --token or OUTPOST_TOKEN)");
	/* Looked up by its sha256: the store never sees the secret, and finding a digest by an
	 * index leaks nothing usable about the secret's bytes through timing. */
	sec_sha256_hex(hdr + 7, strlen(hdr + 7), hash);
	have = h->store->ops->token_find(h->store, hash, clk_real_ms(), &tok);
	if (have < 0 && have != OUTPOST_E_NOT_FOUND) {
		/* The store could not look (a database that is down): not the caller's fault. */
		httpd_respond_error(req, have, "cannot check the token now: try again");
		return have;
	}
	if (have < 0 || !json_is_string(json_object_get(tok, "kind")) ||
	    strcmp(json_string_value(json_object_get(tok, "kind")), "operator") != 0) {
		json_decref(tok);
		return auth_refuse(h, req, OUTPOST_E_UNAUTHORIZED, "unknown or expired token");
	}
	trole = json_string_value(json_object_get(tok, "role"));
	have = !trole                           ? ROLE_NONE
	       : strcmp(trole, "admin") == 0    ? ROLE_ADMIN
	       : strcmp(trole, "operator") == 0 ? ROLE_OPERATOR
	                                        : ROLE_VIEWER;
	c->role = have;
	snprintf(c->name, sizeof(c->name), "token:%s",
	         json_string_value(json_object_get(tok, "id")));
	if (have < role)
		/* Answered while tok (which owns trole) is still alive. */
		httpd_respond_error(req, OUTPOST_E_FORBIDDEN,
		                    "this token's role (%s) may not do this: it needs %s",
		                    trole ? trole : "none",
		                    role == ROLE_ADMIN      ? "admin"
		                    : role == ROLE_OPERATOR ? "operator"
		                                            : "viewer");
	json_decref(tok);
	return have < role ? OUTPOST_E_FORBIDDEN : 0;
}

/* Agents sign METHOD \n PATH \n TIME \n hex(sha256(body)) with their key (docs/protocol.md). */
static int auth_agent(struct hub *h, struct httpd_req *req, struct hub_caller *c)
{
	const char *id = httpd_req_header(req, "X-Outpost-Host");
	const char *ts = httpd_req_header(req, "X-Outpost-Time");
	const char *sig = httpd_req_header(req, "X-Outpost-Signature");
	const char *tail = httpd_req_tail(req), *state, *body;
	uint8_t pk[SEC_PK_BYTES];
	struct store_host_key host;
	struct buf msg = BUF_INIT;
	char hash[65];
	size_t idlen, blen;
	int64_t t;
	int rc;

	if (!id || !ts || !sig || !hub_host_id_ok(id))
		return auth_refuse(h, req, OUTPOST_E_UNAUTHORIZED,
		                   "agent requests must be signed (X-Outpost-Host, X-Outpost-Time, "
		                   "X-Outpost-Signature)");
	/* The path is /api/v1/agents/<id>/...: the id in it must be the signer's. */
	idlen = strlen(id);
	if (strncmp(tail, id, idlen) != 0 || tail[idlen] != '/')
		return auth_refuse(h, req, OUTPOST_E_FORBIDDEN,
		                   "an agent may only use its own /api/v1/agents/<id>/ paths");
	t = strtoll(ts, NULL, 10);
	if (llabs(t - clk_real_ms()) > AUTH_CLOCK_SKEW_MS)
		return auth_refuse(h, req, OUTPOST_E_UNAUTHORIZED,
		                   "request time is more than 300 s off the hub's clock: check "
		                   "the host's time (NTP)");
	rc = h->store->ops->host_key(h->store, id, &host);
	if (rc == OUTPOST_E_NOT_FOUND)
		return auth_refuse(h, req, OUTPOST_E_UNAUTHORIZED, "unknown host: enroll first");
	if (rc < 0) {
		httpd_respond_error(req, rc, "cannot read the host's key");
		return rc;
	}
	state = host.state;
	if (sec_unb64(host.pubkey, pk, sizeof(pk)) < 0)
		return auth_refuse(h, req, OUTPOST_E_INTERNAL, "stored key of the host is damaged");
	body = httpd_req_body(req, &blen);
	sec_sha256_hex(body, blen, hash);
	buf_printf(&msg, "%s\n%s\n%s\n%s", httpd_req_method(req), httpd_req_uri(req), ts, hash);
	rc = msg.data && sec_verify_b64(pk, msg.data, msg.len, sig) == 0;
	buf_free(&msg);
	if (!rc)
		return auth_refuse(h, req, OUTPOST_E_UNAUTHORIZED, "bad signature");
	if (strcmp(state, HOST_REVOKED) == 0)
		return auth_refuse(h, req, OUTPOST_E_UNAUTHORIZED, "this host was revoked");
	if (strcmp(state, HOST_REJECTED) == 0)
		return auth_refuse(h, req, OUTPOST_E_UNAUTHORIZED, "this host was rejected");
	if (strcmp(state, HOST_PENDING) == 0) {
		httpd_respond_error(req, OUTPOST_E_UNAVAILABLE, "pending acceptance");
		return OUTPOST_E_UNAVAILABLE;
	}
	c->role = ROLE_AGENT;
	c->up = strcmp(state, HOST_UP) == 0;
	c->last_seen_ms = host.last_seen_ms;
	snprintf(c->host_id, sizeof(c->host_id), "%s", id);
	snprintf(c->name, sizeof(c->name), "host:%s", id);
	return 0;
}

/* Operators' tokens are checked as soon as the headers arrive; agents' signatures cover the
 * body, so they wait for it (their routes have their own body limits). */
int auth_headers(void *ctx, struct httpd_req *req, int role)
{
	if (role == ROLE_NONE || role == ROLE_AGENT)
		return 0;
	return auth_check(ctx, req, role);
}

int auth_check(void *ctx, struct httpd_req *req, int role)
{
	struct hub *h = ctx;
	struct hub_caller *c;
	int rc;

	if (httpd_req_data(req))
		return 0; /* already checked when the headers arrived */
	h->st.requests++;
	if (role == ROLE_NONE)
		return 0;
	if (auth_limited(h, req)) {
		httpd_respond_error(req, OUTPOST_E_BUSY,
		                    "too many failed attempts from %s: wait a minute",
		                    httpd_req_peer(req));
		return OUTPOST_E_BUSY;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		return OUTPOST_E_INTERNAL;
	}
	rc = role == ROLE_AGENT ? auth_agent(h, req, c) : auth_bearer(h, req, role, c);
	if (rc < 0) {
		free(c);
		return rc;
	}
	httpd_req_set_data(req, c, free);
	return 0;
}
