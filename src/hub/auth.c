/* Who may call what: operator tokens (Bearer, stored hashed), agents' signed requests (with
 * their clock and replay checks), and the limits on failed attempts (auth_limit.h). The
 * route table names the role each route needs; this file is the only place that decides. */
#include "hub_impl.h"
#include "core/buf.h"
#include "core/clk.h"
#include "core/wire.h"
#include "core/err.h"
#include "auth_limit.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int hub_host_id_ok(const char *id)
{
	return wire_host_id_ok(id);
}

static void auth_key(char *key, size_t keylen, const char *kind, const char *what)
{
	snprintf(key, keylen, "%s:%s", kind, what);
}

/* Limits never refuse a valid credential: a request is always checked, and they only decide
 * how a failure is answered (busy, not logged one by one) once a budget it spends is gone.
 * Whose budget: always the address's; the credential's when it names a known one (a token
 * id, a host id); else the one budget all unknown credentials share, whatever their
 * address, so rotating addresses does not escape it. */
static int auth_count(struct hub *h, struct httpd_req *req, const char *cred, char *why,
                      size_t whylen)
{
	int64_t now = clk_mono_ms(), max = h->conf->auth.max_failures_per_min;
	int64_t max_unknown = h->conf->auth.max_unknown_per_min;
	int64_t na, nc, nu = 0;
	char key[80];

	h->st.refused_auth++;
	auth_key(key, sizeof(key), "addr", httpd_req_peer(req));
	na = auth_limit_fail(h->limit, key, now);
	nc = cred ? auth_limit_fail(h->limit, cred, now) : 0;
	if (!cred)
		nu = auth_limit_fail_unknown(h->limit, now);
	if (na > max)
		snprintf(why, whylen, "too many failed attempts from %s: wait %lld s",
		         httpd_req_peer(req),
		         (long long)(auth_limit_wait_ms(h->limit, key, now) + 999) / 1000);
	else if (nc > max)
		snprintf(why, whylen, "too many failed attempts for %s: wait %lld s", cred,
		         (long long)(auth_limit_wait_ms(h->limit, cred, now) + 999) / 1000);
	else if (nu > max_unknown)
		snprintf(why, whylen,
		         "too many failed attempts with unknown credentials: wait a minute");
	else
		return 0;
	h->st.refused_busy++;
	/* Said once, when a budget runs out: what follows in its window is only counted. */
	if (na == max + 1 || nc == max + 1 || nu == max_unknown + 1)
		log_warn(h->log, "auth",
		         "%s (from %s): further failures are answered busy and not logged until "
		         "the minute is over",
		         why, httpd_req_peer(req));
	return 1;
}

int auth_fail(struct hub *h, struct httpd_req *req)
{
	char why[200];

	return auth_count(h, req, NULL, why, sizeof(why));
}

int auth_limited(struct hub *h, struct httpd_req *req)
{
	int64_t now = clk_mono_ms();
	char key[80];

	auth_key(key, sizeof(key), "addr", httpd_req_peer(req));
	return auth_limit_count(h->limit, key, now) >= h->conf->auth.max_failures_per_min ||
	       auth_limit_count_unknown(h->limit, now) >= h->conf->auth.max_unknown_per_min;
}

/* A failed attempt, counted (cred: "token:<id>" or "host:<id>" when the credential is known,
 * NULL when not) and answered: with code and msg while its budgets last, else busy and not
 * logged (a flood of failures must not become a flood of log lines). */
static int auth_refuse(struct hub *h, struct httpd_req *req, int code, const char *cred,
                       const char *msg)
{
	char why[200];

	if (auth_count(h, req, cred, why, sizeof(why))) {
		httpd_respond_error(req, OUTPOST_E_BUSY, "%s", why);
		return OUTPOST_E_BUSY;
	}
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
		return auth_refuse(h, req, OUTPOST_E_UNAUTHORIZED, NULL,
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
	if (have < 0)
		return auth_refuse(h, req, OUTPOST_E_UNAUTHORIZED, NULL,
		                   "unknown or expired token");
	if (!json_is_string(json_object_get(tok, "kind")) ||
	    strcmp(json_string_value(json_object_get(tok, "kind")), "operator") != 0) {
		/* A real token of another kind (enrollment): its own budget, not the unknown. */
		char cred[80];
		auth_key(cred, sizeof(cred), "token",
		         json_string_value(json_object_get(tok, "id")) ?: "?");
		json_decref(tok);
		return auth_refuse(h, req, OUTPOST_E_UNAUTHORIZED, cred,
		                   "unknown or expired token");
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

/* The clock of a correctly signed request is off: not a failed credential (the key is
 * right), but refused, with the hub's time so the agent can say by how much
 * (docs/protocol.md, "Clock skew"). */
static int auth_skewed(struct hub *h, struct httpd_req *req, const char *id, int64_t t, int64_t now)
{
	char hub_time[32];
	int64_t off = t - now;

	h->st.refused_skew++;
	snprintf(hub_time, sizeof(hub_time), "%lld", (long long)now);
	httpd_req_add_header(req, "X-Outpost-Hub-Time", hub_time);
	httpd_respond_error(req, OUTPOST_E_UNAUTHORIZED,
	                    "clock skew: the request's time is %lld ms %s the hub's clock (at "
	                    "most %d s allowed): fix the host's time (NTP)",
	                    (long long)(off < 0 ? -off : off), off < 0 ? "behind" : "ahead of",
	                    AUTH_CLOCK_SKEW_MS / 1000);
	log_debug(h->log, "auth", "host %s from %s: clock skew of %lld ms", id, httpd_req_peer(req),
	          (long long)off);
	return OUTPOST_E_UNAUTHORIZED;
}

/* Agents sign METHOD \n PATH \n TIME \n hex(sha256(body)) with their key (docs/protocol.md).
 * The signature is checked before the time: only a request the host's key signed can be
 * told "clock skew" (and be spared the failure count), and only one it signed is remembered
 * against replay. */
static int auth_agent(struct hub *h, struct httpd_req *req, struct hub_caller *c)
{
	const char *id = httpd_req_header(req, "X-Outpost-Host");
	const char *ts = httpd_req_header(req, "X-Outpost-Time");
	const char *sig = httpd_req_header(req, "X-Outpost-Signature");
	const char *tail = httpd_req_tail(req), *state, *body;
	uint8_t pk[SEC_PK_BYTES], digest[32];
	struct store_host_key host;
	char *msg, cred[80];
	size_t idlen, blen;
	int64_t t, now;
	uint64_t d;
	int rc;

	if (!id || !ts || !sig || !hub_host_id_ok(id))
		return auth_refuse(h, req, OUTPOST_E_UNAUTHORIZED, NULL,
		                   "agent requests must be signed (X-Outpost-Host, X-Outpost-Time, "
		                   "X-Outpost-Signature)");
	/* The path is /api/v1/agents/<id>/...: the id in it must be the signer's. */
	idlen = strlen(id);
	if (strncmp(tail, id, idlen) != 0 || tail[idlen] != '/')
		return auth_refuse(h, req, OUTPOST_E_FORBIDDEN, NULL,
		                   "an agent may only use its own /api/v1/agents/<id>/ paths");
	if (sec_parse_time_ms(ts, &t) < 0)
		return auth_refuse(h, req, OUTPOST_E_UNAUTHORIZED, NULL,
		                   "X-Outpost-Time must be the unix time in ms (1 to 15 digits)");
	rc = h->store->ops->host_key(h->store, id, &host);
	if (rc == OUTPOST_E_NOT_FOUND)
		return auth_refuse(h, req, OUTPOST_E_UNAUTHORIZED, NULL,
		                   "unknown host: enroll first");
	if (rc < 0) {
		httpd_respond_error(req, rc, "cannot read the host's key");
		return rc;
	}
	auth_key(cred, sizeof(cred), "host", id);
	state = host.state;
	if (sec_unb64(host.pubkey, pk, sizeof(pk)) < 0) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "stored key of the host is damaged");
		return OUTPOST_E_INTERNAL;
	}
	body = httpd_req_body(req, &blen);
	msg = sec_request_text(httpd_req_method(req), httpd_req_uri(req), ts, body, blen);
	rc = msg && sec_verify_b64(pk, msg, strlen(msg), sig) == 0;
	if (rc) {
		/* What identifies the request for replay: the text signed, whatever the
		 * signature's encoding. */
		crypto_hash_sha256(digest, (const unsigned char *)msg, strlen(msg));
		memcpy(&d, digest, sizeof(d));
	}
	free(msg);
	if (!rc)
		return auth_refuse(h, req, OUTPOST_E_UNAUTHORIZED, cred, "bad signature");
	if (strcmp(state, HOST_REVOKED) == 0)
		return auth_refuse(h, req, OUTPOST_E_UNAUTHORIZED, cred, "this host was revoked");
	if (strcmp(state, HOST_REJECTED) == 0)
		return auth_refuse(h, req, OUTPOST_E_UNAUTHORIZED, cred, "this host was rejected");
	now = clk_real_ms();
	if (!auth_time_ok(t, now))
		return auth_skewed(h, req, id, t, now);
	rc = auth_replay_check(h->limit, id, t, d);
	if (rc != AUTH_REPLAY_OK) {
		h->st.refused_replay++;
		return auth_refuse(h, req, OUTPOST_E_CONFLICT, cred,
		                   rc == AUTH_REPLAY_SEEN
		                       ? "replayed request: this signed request was accepted "
		                         "already; sign each request anew"
		                       : "replayed request: its time is older than this host's "
		                         "recent requests; sign each request anew");
	}
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
	/* Admission first: a busy answer costs no signature check and no store read. */
	if (admit_request(ctx, req) < 0)
		return OUTPOST_E_BUSY;
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
	c = calloc(1, sizeof(*c));
	if (!c) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		return OUTPOST_E_INTERNAL;
	}
	if (role == ROLE_AGENT) {
		struct phase_mark m;
		phase_start(&m);
		rc = auth_agent(h, req, c);
		phase_end(&h->st.phases[HP_AUTH], &m, 1);
	} else {
		rc = auth_bearer(h, req, role, c);
	}
	if (rc < 0) {
		free(c);
		return rc;
	}
	httpd_req_set_data(req, c, free);
	return 0;
}

void auth_stats(struct hub *h, struct buf *b)
{
	buf_printf(b,
	           "# HELP outpost_hub_auth_refused_busy_total Failed attempts answered busy: "
	           "the budget of their address, credential or of unknown credentials was used "
	           "up.\n# TYPE outpost_hub_auth_refused_busy_total counter\n"
	           "outpost_hub_auth_refused_busy_total %llu\n"
	           "# HELP outpost_hub_auth_refused_skew_total Correctly signed agent requests "
	           "refused for clock skew (not counted as failures).\n"
	           "# TYPE outpost_hub_auth_refused_skew_total counter\n"
	           "outpost_hub_auth_refused_skew_total %llu\n"
	           "# HELP outpost_hub_auth_refused_replay_total Signed agent requests refused as "
	           "replays.\n# TYPE outpost_hub_auth_refused_replay_total counter\n"
	           "outpost_hub_auth_refused_replay_total %llu\n",
	           h->st.refused_busy, h->st.refused_skew, h->st.refused_replay);
	if (h->httpd) {
		size_t open;
		unsigned long long refused;
		struct httpd_backlog bl;
		httpd_conn_stats(h->httpd, &open, &refused);
		httpd_backlog(h->httpd, &bl);
		buf_printf(b,
		           "# HELP outpost_hub_admit_busy_total First requests of new agent "
		           "connections answered busy with a Retry-After (api.admit_rate).\n"
		           "# TYPE outpost_hub_admit_busy_total counter\n"
		           "outpost_hub_admit_busy_total %llu\n"
		           "# HELP outpost_hub_admit_closed_total Connections closed as they were "
		           "accepted: api.admit_unread were accepted and not yet read.\n"
		           "# TYPE outpost_hub_admit_closed_total counter\n"
		           "outpost_hub_admit_closed_total %llu\n"
		           "# HELP outpost_hub_connections_unread Connections accepted whose first "
		           "request has not begun (TLS handshakes, headers on their way).\n"
		           "# TYPE outpost_hub_connections_unread gauge\n"
		           "outpost_hub_connections_unread %zu\n"
		           "# HELP outpost_hub_accept_queue Connections waiting in the kernel's "
		           "accept queue.\n# TYPE outpost_hub_accept_queue gauge\n"
		           "outpost_hub_accept_queue %zu\n"
		           "# HELP outpost_hub_loop_lag_seconds How late the hub's loop ran its "
		           "once-a-second tick, the worst of the last 8.\n"
		           "# TYPE outpost_hub_loop_lag_seconds gauge\n"
		           "outpost_hub_loop_lag_seconds %.3f\n"
		           "# HELP outpost_hub_admit_reads_per_second First requests of new agent "
		           "connections the hub read a second lately (admitted or not).\n"
		           "# TYPE outpost_hub_admit_reads_per_second gauge\n"
		           "outpost_hub_admit_reads_per_second %.1f\n"
		           "# HELP outpost_hub_admit_behind 1 while the hub is behind (its loop "
		           "late, connections waiting to be accepted or read).\n"
		           "# TYPE outpost_hub_admit_behind gauge\n"
		           "outpost_hub_admit_behind %d\n",
		           h->admit.busy, bl.admit_refused, bl.unread, bl.accept_queue,
		           (double)admit_lag_ms(&h->admit) / 1000.0, h->admit.measured,
		           h->admit.behind);
		buf_printf(
		    b,
		    "# HELP outpost_hub_connections Connections open.\n"
		    "# TYPE outpost_hub_connections gauge\noutpost_hub_connections %zu\n"
		    "# HELP outpost_hub_connections_refused_total Connections refused: their "
		    "address held api.unauth_per_ip_limit unauthenticated ones.\n"
		    "# TYPE outpost_hub_connections_refused_total counter\n"
		    "outpost_hub_connections_refused_total %llu\n",
		    open, refused);
	}
}
