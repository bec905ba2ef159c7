/* The embedded link (docs/agent-link.md): HTTPS to one hub through our own HTTP client
 * (core/hclient.c: GnuTLS, which libmicrohttpd loads anyway) on the agent's own loop, at most two
 * kept-alive connections: the long-poll holds one, beats and results share the other. No thread
 * of ours, no blocking call, so thousands of links can share one loop (outpost-sim).
 *
 * Requests, one of each kind at most in flight: probe (first-use TLS pinning), enroll, poll
 * (the long-poll for tasks), beat, results, metrics (the spool's batches). Each kind that fails
 * waits with full jitter (a random delay in [0, min(60 s, 0.5 s * 2^failures)]; beats at least
 * their interval) so a hub that restarts is not met by its whole fleet at the same instant.
 * Beats that find no hub at all keep their own rate, and any answer ends every backoff: the
 * fleet is back within a beat interval of the hub. */
#include "link.h"
#include "outbox.h"
#include "spool.h"
#include "taskphase.h"
#include "core/buf.h"
#include "core/clk.h"
#include "core/hclient.h"
#include "core/loop.h"
#include "core/wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <outpost/plugin.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#define LH_MAX_RESPONSE (8u << 20) /* bytes of one answer; beyond it the transfer aborts */
#define LH_POLL_WAIT_S 30
#define LH_CONNECT_TIMEOUT_S 10
#define LH_TIMEOUT_S 30
#define LH_BACKOFF_BASE_MS 500
#define LH_BACKOFF_MAX_MS 60000
#define LH_BEAT_MS 5000
#define LH_BEAT_MIN_MS 1000
#define LH_BEAT_MAX_MS 300000
/* With a hub whose every request counts as a beat, the agent still beats this often: the
 * beat's answer carries the hub's interval, and the beat the agent's version. */
#define LH_BEAT_FORCE_MS 60000
#define LH_RESULTS_ITEMS 64
#define LH_RESULTS_BYTES (1u << 20)
#define LH_METRICS_ITEMS 256
#define LH_METRICS_BYTES (1u << 20)
/* A batch published while the link is idle leaves after a random delay up to this: the
 * metrics plugins of a whole fleet sample at the same grid instant, the hub should not get
 * all their requests in that same instant. */
#define LH_METRICS_SPREAD_MS 2000
#define LH_LOG_REPEAT_MS (10 * 60 * 1000) /* the same problem is logged again after this */
/* After an answer that brought tasks, the next poll waits for their results to be posted
 * (on the connection the answer came on: one connection per agent), at most this long. */
#define LH_POLL_AFTER_TASKS_MS 1000
#define LH_RETRY_AFTER_MAX_S 300 /* a hub's Retry-After is honoured up to this */

enum lh_kind {
	LH_PROBE,
	LH_ENROLL,
	LH_POLL,
	LH_BEAT,
	LH_RESULTS,
	LH_METRICS,
	LH_CREDS, /* scale mode: GET /api/v1/agents/<id>/<creds_route> */
	LH_NKINDS
};
static const char *const lh_kind_name[LH_NKINDS] = {"probe",   "enroll",  "poll",       "beat",
                                                    "results", "metrics", "credentials"};

enum lh_phase { LH_IDLE, LH_PROBING, LH_ENROLLING, LH_RUNNING, LH_STOPPED };

struct link_http;

/* One transfer. */
struct lh_req {
	struct link_http *lh;
	enum lh_kind kind;
	struct hclient_req *http; /* NULL once answered */
	char *headers[6];         /* NULL-terminated */
	size_t nheaders;
	char *body;
	int64_t sent_ms;  /* when it left (monotonic): what the hub counts as a sign of life */
	int64_t last_seq; /* results, metrics: the outbox or spool rows it carries, up to */
	size_t nresults;  /* results or batches it carries */
	json_t *facts;    /* beat: the facts it carries */
};

/* The argument of the timer of one kind of request. */
struct lh_slot {
	struct link_http *lh;
	enum lh_kind kind;
};

/* What a finished transfer brought back. */
struct lh_answer {
	int ok;        /* HTTP 2xx with {"ok": true} */
	int transport; /* no HTTP answer at all: connect, TLS, timeout, size */
	long status;
	json_t *env;      /* the parsed envelope, or NULL */
	json_t *result;   /* borrowed from env when ok */
	const char *code; /* the error code when not ok (borrowed), or NULL */
	int skew;         /* unauthorized for the time signed, not the key (docs/protocol.md) */
	int64_t hub_ms;   /* with skew: the hub's clock (X-Outpost-Hub-Time), or 0 */
	char text[400];   /* one line for the log */
};

struct link_http {
	struct link base;
	struct loop *loop;
	const struct logger *log;
	char *state_dir, *url, *token, *ca, *fingerprint, *host_id;
	char *hub_url; /* where requests go: url, or the hub scale mode moved to */
	char *pin_path, *json_path;
	char pin_hex[65];     /* the pinned certificate's sha256, once pinned */
	char source_addr[64]; /* link_config.source_addr, or empty */
	int https;
	link_task_fn on_task;
	void *arg;
	int tasks_elsewhere;
	char *creds_route;
	int (*on_creds)(void *arg, const json_t *result);
	void *creds_arg;
	struct hclient *http;
	struct outbox *outbox;
	struct spool *spool;
	uint8_t pk[SEC_PK_BYTES], sk[SEC_SK_BYTES];
	char *pk_b64;
	uint8_t hub_pk[SEC_PK_BYTES];
	int have_hub_pk;
	char state[16]; /* the host at the hub: unenrolled, pending, up, rejected, revoked,
	                 * refused (its id enrolled with another key) */
	int64_t refused_retry_ms;
	enum lh_phase phase;
	struct lh_req *req[LH_NKINDS];
	struct loop_timer *timer[LH_NKINDS]; /* the next attempt of each kind */
	struct lh_slot slot[LH_NKINDS];
	int failures[LH_NKINDS];
	int resume;
	int connected, ever_connected;
	int64_t down_since_ms, interval_ms, last_contact_ms;
	/* Beats: the hub said every request counts as one, and a held long-poll too (its beat
	 * answer); when the last request it counted left (a held poll: when it answered), and
	 * the last beat that got through (monotonic ms). */
	int requests_beat, poll_beat;
	int poll_after_beat; /* the first poll waits for the first beat's answer (lh_run) */
	int64_t alive_ms, beat_ok_ms;
	uint64_t beats_sent;
	/* The hub answered busy with a Retry-After: nothing is sent before this (monotonic ms,
	 * jitter included), and how many busy answers came. */
	int64_t busy_until_ms;
	uint64_t busy_answers;
	int poll_after_results;   /* the poll waits for the results of the tasks it brought */
	int64_t metrics_delay_ms; /* this agent's spread of its posts after a sample */
	json_t *facts, *facts_sent;
	uint64_t reconnects, tasks_received, results_sent, results_dropped;
	uint64_t batches_sent, batches_rejected;
	uint64_t rejected_unlogged; /* batches the hub rejected since the last log line on it */
	int64_t rejected_logged_ms;
	char last_error[400];
	char logged[400];
	int64_t logged_ms;
	/* The hub refuses the time this agent signs with: hub clock minus ours when it said so
	 * (0 once a signed request gets through again), and whether that was logged. */
	int64_t clock_skew_ms;
	int skew_logged;
	uint64_t samples_stale; /* samples the hub had newer ones for (a clock set back) */

	/* Where tasks spend their time here (borrowed, may be NULL), and whether the answer
	 * that brought the last ones is not yet followed by the next poll (part of theirs). */
	struct taskphases *phases;
	int poll_timed;
};

static void lh_send(struct link_http *lh, enum lh_kind kind);

/* ---- small helpers ---- */

static char *lh_path(const struct link_http *lh, const char *name)
{
	struct buf b = BUF_INIT;

	if (buf_printf(&b, "%s/%s", lh->state_dir, name) < 0)
		return NULL;
	return buf_steal(&b);
}

/* Logs a problem once, then again only when it changes or every LH_LOG_REPEAT_MS: a hub that
 * is away for a day must not fill the log. Always kept for /v1/health. */
static void lh_problem(struct link_http *lh, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void lh_problem(struct link_http *lh, int level, const char *fmt, ...)
{
	int64_t now = clk_mono_ms();
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(lh->last_error, sizeof(lh->last_error), fmt, ap);
	va_end(ap);
	if (strcmp(lh->logged, lh->last_error) == 0 && now - lh->logged_ms < LH_LOG_REPEAT_MS) {
		log_debug(lh->log, "link", "%s", lh->last_error);
		return;
	}
	snprintf(lh->logged, sizeof(lh->logged), "%s", lh->last_error);
	lh->logged_ms = now;
	log_msg(lh->log, level, "link", "%s", lh->last_error);
}

/* Full jitter: uniform in [0, min(max, base * 2^failures)]. */
static int64_t lh_backoff_ms(int failures)
{
	int64_t cap = LH_BACKOFF_BASE_MS;

	for (int i = 0; i < failures && cap < LH_BACKOFF_MAX_MS; i++)
		cap *= 2;
	if (cap > LH_BACKOFF_MAX_MS)
		cap = LH_BACKOFF_MAX_MS;
	return (int64_t)randombytes_uniform((uint32_t)cap + 1);
}

/* interval .. interval + 20 %: a fleet does not beat in step, and a beat drawn after any
 * request that reached the hub never comes before the next post of a shipping agent that posts
 * every other interval (docs/agent-link.md, Beats). */
static int64_t lh_jitter(int64_t interval_ms)
{
	return interval_ms + (int64_t)randombytes_uniform((uint32_t)(interval_ms / 5) + 1);
}

static void lh_on_timer(void *arg);

/* Sends kind after delay_ms (replacing an earlier schedule of the same kind). */
static void lh_schedule(struct link_http *lh, enum lh_kind kind, int64_t delay_ms)
{
	loop_timer_del(lh->loop, lh->timer[kind]);
	lh->timer[kind] = NULL;
	if (lh->phase == LH_STOPPED)
		return;
	if (loop_timer_add(lh->loop, delay_ms, 0, lh_on_timer, &lh->slot[kind], &lh->timer[kind]) <
	    0)
		log_error(lh->log, "link", "out of memory: cannot schedule the %s request",
		          lh_kind_name[kind]);
}

static void lh_retry(struct link_http *lh, enum lh_kind kind)
{
	int64_t ms = lh_backoff_ms(lh->failures[kind]);

	lh->failures[kind]++;
	log_debug(lh->log, "link", "%s: next attempt in %lld ms (failure %d in a row)",
	          lh_kind_name[kind], (long long)ms, lh->failures[kind]);
	lh_schedule(lh, kind, ms);
}

static void lh_on_timer(void *arg)
{
	struct lh_slot *slot = arg;

	slot->lh->timer[slot->kind] = NULL; /* one-shot: the loop frees it */
	lh_send(slot->lh, slot->kind);
}

/* ---- requests ---- */

static void lh_req_free(struct lh_req *r)
{
	if (!r)
		return;
	hclient_cancel(r->http);
	for (size_t i = 0; i < r->nheaders; i++)
		free(r->headers[i]);
	free(r->body);
	json_decref(r->facts);
	free(r);
}

static int lh_header(struct lh_req *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int lh_header(struct lh_req *r, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	int rc;

	if (r->nheaders + 1 >= sizeof(r->headers) / sizeof(r->headers[0]))
		return -1;
	va_start(ap, fmt);
	rc = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return -1;
	r->headers[r->nheaders++] = buf_steal(&b);
	return 0;
}

/* The three headers of docs/protocol.md: the signature covers METHOD, the request target as
 * sent, the time and the body's sha256. */
static int lh_sign(struct link_http *lh, struct lh_req *r, const char *method, const char *target)
{
	int64_t now = clk_real_ms();
	char ts[24], *m, *sig;
	int rc;

	snprintf(ts, sizeof(ts), "%lld", (long long)now);
	m = sec_request_text(method, target, ts, r->body, r->body ? strlen(r->body) : 0);
	sig = m ? sec_sign_b64(lh->sk, m, strlen(m)) : NULL;
	free(m);
	if (!sig)
		return -1;
	rc = lh_header(r, "X-Outpost-Host: %s", lh->host_id) < 0 ||
	     lh_header(r, "X-Outpost-Time: %s", ts) < 0 ||
	     lh_header(r, "X-Outpost-Signature: %s", sig) < 0;
	free(sig);
	return rc ? -1 : 0;
}

static void lh_on_done(void *arg, const struct hclient_response *resp);

/* Starts a transfer. body: JSON text, stolen (NULL: none). */
static int lh_request(struct link_http *lh, enum lh_kind kind, const char *method,
                      const char *target, char *body, int is_signed, struct lh_req **out)
{
	struct lh_req *r = calloc(1, sizeof(*r));
	struct hclient_request rq = {
	    .method = method,
	    .target = target,
	    .body = body,
	    .body_len = body ? strlen(body) : 0,
	    .timeout_ms = (kind == LH_POLL ? LH_POLL_WAIT_S + 15 : LH_TIMEOUT_S) * 1000LL,
	};

	*out = NULL;
	if (!r) {
		free(body);
		return -1;
	}
	r->lh = lh;
	r->kind = kind;
	r->body = body;
	r->sent_ms = clk_mono_ms();
	if (lh_header(r, "Accept: application/json") < 0 ||
	    (body && lh_header(r, "Content-Type: application/json") < 0) ||
	    (is_signed && lh_sign(lh, r, method, target) < 0))
		goto fail;
	rq.headers = (const char *const *)r->headers;
	/* First use: a connection of its own, to take the certificate and pin it; nothing
	 * secret goes on it. */
	if (kind == LH_PROBE)
		rq.flags = HCLIENT_PEER_CERT | HCLIENT_FRESH;
	if (hclient_request(lh->http, &rq, lh_on_done, r, &r->http) < 0)
		goto fail;
	*out = r;
	return 0;
fail:
	lh_req_free(r);
	return -1;
}

static int lh_code_is(const struct lh_answer *a, const char *code);

static void lh_answer_read(struct link_http *lh, struct lh_req *r,
                           const struct hclient_response *resp, struct lh_answer *a)
{
	char msg[200];
	json_t *err;

	memset(a, 0, sizeof(*a));
	a->status = (long)resp->status;
	if (resp->err) {
		a->transport = 1;
		if (resp->err == OUTPOST_E_TOO_LARGE)
			snprintf(a->text, sizeof(a->text),
			         "the hub's answer to %s is over %u MiB: dropped (%s)",
			         lh_kind_name[r->kind], LH_MAX_RESPONSE >> 20, resp->errmsg);
		else if (resp->err == OUTPOST_E_FORBIDDEN && !lh->ca)
			snprintf(
			    a->text, sizeof(a->text),
			    "the hub's TLS certificate is not the one pinned in %s: if the hub was "
			    "reinstalled on purpose, remove %s and %s and restart the agent (%s)",
			    lh->pin_path, lh->pin_path, lh->json_path, resp->errmsg);
		else if (resp->err == OUTPOST_E_FORBIDDEN)
			snprintf(a->text, sizeof(a->text),
			         "the hub's TLS certificate does not verify against hub.ca %s (%s)",
			         lh->ca, resp->errmsg);
		else
			snprintf(a->text, sizeof(a->text), "cannot reach the hub at %s: %s",
			         lh->hub_url, resp->errmsg);
		return;
	}
	if (wire_parse(resp->body, resp->body_len, 64, &a->env, msg, sizeof(msg)) < 0 ||
	    !json_is_object(a->env)) {
		snprintf(a->text, sizeof(a->text),
		         "the hub answered %s with HTTP %ld and no JSON envelope: is %s an Outpost "
		         "hub?",
		         lh_kind_name[r->kind], a->status, lh->hub_url);
		return;
	}
	if (json_is_true(json_object_get(a->env, "ok")) && a->status / 100 == 2) {
		a->ok = 1;
		a->result = json_object_get(a->env, "result");
		return;
	}
	err = json_object_get(a->env, "error");
	a->code = json_string_value(json_object_get(err, "code"));
	if (lh_code_is(a, "unauthorized") && json_string_value(json_object_get(err, "message")) &&
	    strncmp(json_string_value(json_object_get(err, "message")), "clock skew:", 11) == 0) {
		const char *ht = hclient_header(resp, "X-Outpost-Hub-Time");
		a->skew = 1;
		a->hub_ms = ht ? strtoll(ht, NULL, 10) : 0;
	}
	snprintf(a->text, sizeof(a->text), "the hub refused %s: HTTP %ld %s: %.200s",
	         lh_kind_name[r->kind], a->status, a->code ? a->code : "?",
	         json_string_value(json_object_get(err, "message"))
	             ? json_string_value(json_object_get(err, "message"))
	             : "");
}

static int lh_code_is(const struct lh_answer *a, const char *code)
{
	return a->code && strcmp(a->code, code) == 0;
}

/* ---- state on disk ---- */

/* sha256 of the certificate's DER, as the hub prints it at its first start. */
static int lh_pem_fingerprint(const char *pem, char hex[65])
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----";
	const char *b = strstr(pem, begin), *end;
	unsigned char *der;
	size_t n = 0;
	int rc = -1;

	if (!b)
		return -1;
	b += sizeof(begin) - 1;
	end = strstr(b, "-----END CERTIFICATE-----");
	if (!end || end == b)
		return -1;
	der = malloc((size_t)(end - b));
	if (der &&
	    sodium_base642bin(der, (size_t)(end - b), b, (size_t)(end - b), "\r\n\t ", &n, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) == 0 &&
	    n > 0) {
		sec_sha256_hex(der, n, hex);
		rc = 0;
	}
	free(der);
	return rc;
}

static void lh_save_state(struct link_http *lh)
{
	char *b64 = sec_b64(lh->hub_pk, SEC_PK_BYTES), *text = NULL, msg[300];
	json_t *j = b64 ? json_pack("{s:s, s:s, s:s, s:s, s:I}", "url", lh->url, "host_id",
	                            lh->host_id, "hub_pubkey", b64, "state", lh->state,
	                            "updated_ms", (json_int_t)clk_real_ms())
	                : NULL;

	text = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	if (!text || sec_write_secret(lh->json_path, text, strlen(text), msg, sizeof(msg)) < 0)
		log_error(lh->log, "link", "cannot save what was learned at enrollment: %s",
		          text ? msg : "out of memory");
	free(text);
	json_decref(j);
	free(b64);
}

/* Reads hub.json from an earlier enrollment. A file for another hub URL is set aside: the
 * operator pointed the agent at a new hub, which gets enrolled and pinned anew. */
static int lh_load_state(struct link_http *lh, char *msg, size_t msglen)
{
	json_t *j;
	const char *url, *host, *key, *state;
	int rc;

	if (access(lh->json_path, F_OK) < 0)
		return 0;
	rc = sec_check_secret_file(lh->json_path, msg, msglen);
	if (rc < 0)
		return rc;
	j = json_load_file(lh->json_path, JSON_REJECT_DUPLICATES, NULL);
	url = json_string_value(json_object_get(j, "url"));
	host = json_string_value(json_object_get(j, "host_id"));
	key = json_string_value(json_object_get(j, "hub_pubkey"));
	state = json_string_value(json_object_get(j, "state"));
	if (!url || !host || !key || !state || sec_unb64(key, lh->hub_pk, SEC_PK_BYTES) < 0) {
		snprintf(msg, msglen,
		         "%s is damaged: remove it to enroll again (the hub keeps this host's key, "
		         "so the same agent.key is accepted again)",
		         lh->json_path);
		json_decref(j);
		return OUTPOST_E_BAD_ARGS;
	}
	if (strcmp(url, lh->url) != 0) {
		log_warn(
		    lh->log, "link",
		    "the hub URL changed from %s to %s: enrolling with the new hub and pinning "
		    "its keys anew",
		    url, lh->url);
		if (!lh->ca && unlink(lh->pin_path) == 0)
			log_info(lh->log, "link", "removed the old hub's pinned certificate %s",
			         lh->pin_path);
		json_decref(j);
		return 0;
	}
	lh->have_hub_pk = 1;
	if (strcmp(host, lh->host_id) != 0)
		log_warn(lh->log, "link", "the host id changed from %s to %s: enrolling again",
		         host, lh->host_id);
	else
		snprintf(lh->state, sizeof(lh->state), "%s", state);
	json_decref(j);
	return 0;
}

/* Cheap facts for enrollment when sys.facts has not answered yet; the same shape, a subset. */
static json_t *lh_uname_facts(void)
{
	struct utsname u;

	if (uname(&u) < 0)
		return json_object();
	return json_pack("{s:{s:s}, s:{s:s}, s:{s:s, s:s, s:s, s:s}}", "agent", "version",
	                 OUTPOST_VERSION, "host", "hostname", u.nodename, "kernel", "sysname",
	                 u.sysname, "release", u.release, "version", u.version, "machine",
	                 u.machine);
}

/* ---- the conversation ---- */

static void lh_mark_up(struct link_http *lh)
{
	static const enum lh_kind waiting[] = {LH_POLL, LH_RESULTS, LH_METRICS};

	lh->last_contact_ms = clk_real_ms();
	if (lh->clock_skew_ms || lh->skew_logged)
		log_info(lh->log, "link", "the hub takes this agent's clock again");
	lh->clock_skew_ms = 0;
	lh->skew_logged = 0;
	if (lh->connected)
		return;
	lh->connected = 1;
	/* The hub answers again: whatever waits out a backoff from the outage goes now, not up
	 * to a minute later (the hub is up, one request of ours just got through). */
	for (size_t i = 0; i < sizeof(waiting) / sizeof(waiting[0]); i++) {
		enum lh_kind k = waiting[i];
		if (lh->failures[k] && lh->timer[k] && !lh->req[k]) {
			lh->failures[k] = 0;
			lh_schedule(lh, k, 0);
		}
	}
	lh->logged[0] = '\0';
	if (lh->ever_connected) {
		lh->reconnects++;
		log_info(lh->log, "link", "connected to the hub again after %lld s",
		         (long long)(clk_mono_ms() - lh->down_since_ms) / 1000);
	} else {
		log_info(lh->log, "link", "connected to the hub at %s as %s", lh->hub_url,
		         lh->host_id);
	}
	lh->ever_connected = 1;
	if (!lh->req[LH_RESULTS])
		lh_schedule(lh, LH_RESULTS, 0);
	if (!lh->req[LH_METRICS])
		lh_schedule(lh, LH_METRICS, 0);
}

static void lh_mark_down(struct link_http *lh, const struct lh_answer *a)
{
	if (lh->connected) {
		lh->connected = 0;
		lh->down_since_ms = clk_mono_ms();
		log_warn(lh->log, "link", "lost the hub: %s; reconnecting with backoff", a->text);
		snprintf(lh->logged, sizeof(lh->logged), "%s", a->text);
		lh->logged_ms = clk_mono_ms();
		snprintf(lh->last_error, sizeof(lh->last_error), "%s", a->text);
		return;
	}
	lh_problem(lh, OUTPOST_LOG_WARN, "%s", a->text);
}

/* A request the hub counts as a sign of life got through (it marked the host seen when the
 * request arrived). When the hub counts every request, the next beat is due an interval after
 * the last of them, or a minute after the last beat, whichever comes first: an agent that posts
 * metrics every other interval beats once between posts instead of twice. */
static void lh_alive(struct link_http *lh, const struct lh_req *r)
{
	int64_t now = clk_mono_ms(), due, force;
	/* A hub that counts a held poll counted this one until it answered. */
	int64_t at = r->kind == LH_POLL && lh->poll_beat ? now : r->sent_ms;

	if (at > lh->alive_ms)
		lh->alive_ms = at;
	if (r->kind == LH_BEAT)
		lh->beat_ok_ms = r->sent_ms;
	if (!lh->requests_beat || r->kind == LH_BEAT || lh->req[LH_BEAT] || lh->failures[LH_BEAT] ||
	    lh->phase != LH_RUNNING)
		return;
	due = lh->alive_ms + lh_jitter(lh->interval_ms);
	/* The once-a-minute beat brings the interval and the version; a hub that counts held
	 * polls sends the interval with each poll's answer, and needs no forced beat (it made
	 * the agent open a second connection for it every minute). */
	force = lh->beat_ok_ms + LH_BEAT_FORCE_MS;
	if (!lh->poll_beat && force < due)
		due = force;
	lh_schedule(lh, LH_BEAT, due > now ? due - now : 0);
}

static void lh_run(struct link_http *lh)
{
	lh->phase = LH_RUNNING;
	lh->resume = 1;
	lh->failures[LH_POLL] = 0;
	/* Until a beat's answer says that a held poll counts as beats, the first beat goes first
	 * and the poll after its answer, on the connection the beat used: a poll held first
	 * would make the beat open a second connection, and a fleet coming up would cost the
	 * hub two TLS handshakes an agent instead of one. */
	lh->poll_after_beat = !lh->tasks_elsewhere && !lh->poll_beat;
	if (!lh->tasks_elsewhere && lh->poll_beat)
		lh_schedule(lh, LH_POLL, 0);
	if (lh->creds_route)
		lh_schedule(lh, LH_CREDS, 0);
	/* The first beat soon, but not the whole fleet in the same millisecond; at once when
	 * the poll waits for it (the poll went at once before, the beat now goes in its place). */
	lh_schedule(lh, LH_BEAT, lh->poll_after_beat ? 0 : (int64_t)randombytes_uniform(1000));
	lh_schedule(lh, LH_RESULTS, 0);
	lh_schedule(lh, LH_METRICS, 0);
}

/* A signed request answered unauthorized: the hub no longer takes this host's signature
 * (revoked, or a hub that lost its database). Everything signed stops; enrollment, which needs
 * no signature, finds out which it is and says so. */
#define LH_SKEW_MIN_MS 5000 /* a skewed agent asks again at least this much later */

/* A signed request refused for its time, not its key: enrolling again would not help (and
 * made a loop of it). Said once, with the offset; this kind of request backs off until the
 * clock is right (lh_mark_up then says so). */
static void lh_skewed(struct link_http *lh, enum lh_kind kind, const struct lh_answer *a)
{
	int64_t wait = lh_backoff_ms(lh->failures[kind]++);

	if (a->hub_ms > 0)
		lh->clock_skew_ms = a->hub_ms - clk_real_ms();
	else if (!lh->clock_skew_ms)
		lh->clock_skew_ms = 1; /* refused for skew, the hub did not say how much */
	snprintf(lh->last_error, sizeof(lh->last_error),
	         "the hub refuses this agent's clock: it is %+.1f s off the hub's; fix the host's "
	         "time (NTP), the agent retries by itself (%.200s)",
	         (double)-lh->clock_skew_ms / 1000.0, a->text);
	if (!lh->skew_logged)
		log_error(lh->log, "link", "%s", lh->last_error);
	lh->skew_logged = 1;
	if (lh->connected)
		lh->down_since_ms = clk_mono_ms();
	lh->connected = 0;
	if (kind == LH_POLL)
		lh->resume = 1;
	lh_schedule(lh, kind, wait < LH_SKEW_MIN_MS ? LH_SKEW_MIN_MS + wait : wait);
}

static void lh_reenroll(struct link_http *lh, const struct lh_req *r, const struct lh_answer *a)
{
	static const enum lh_kind signed_kinds[] = {LH_POLL, LH_BEAT, LH_RESULTS, LH_METRICS,
	                                            LH_CREDS};

	if (a->skew) {
		lh_skewed(lh, r->kind, a);
		return;
	}
	lh_problem(lh, OUTPOST_LOG_ERROR, "%s: enrolling again", a->text);
	snprintf(lh->state, sizeof(lh->state), "unenrolled");
	if (lh->connected)
		lh->down_since_ms = clk_mono_ms();
	lh->connected = 0;
	lh->phase = LH_ENROLLING;
	for (size_t i = 0; i < sizeof(signed_kinds) / sizeof(signed_kinds[0]); i++) {
		enum lh_kind k = signed_kinds[i];
		loop_timer_del(lh->loop, lh->timer[k]);
		lh->timer[k] = NULL;
		lh_req_free(lh->req[k]);
		lh->req[k] = NULL;
		lh->failures[k] = 0;
	}
	if (!lh->req[LH_ENROLL] && !lh->timer[LH_ENROLL])
		lh_retry(lh, LH_ENROLL);
}

static void lh_on_probe(struct link_http *lh, const struct hclient_response *resp,
                        const struct lh_answer *a)
{
	char hex[65], want[65], msg[300];
	char *pem = !resp->err && resp->peer_cert_pem ? strdup(resp->peer_cert_pem) : NULL;

	if (!pem || lh_pem_fingerprint(pem, hex) < 0) {
		if (!resp->err)
			lh_problem(lh, OUTPOST_LOG_ERROR,
			           "the hub at %s showed no certificate this agent can read: set "
			           "hub.ca to the hub's certificate (its <state-dir>/hub.crt)",
			           lh->hub_url);
		else
			lh_problem(lh, OUTPOST_LOG_WARN, "%s", a->text);
		free(pem);
		lh_retry(lh, LH_PROBE);
		return;
	}
	if (lh->fingerprint) {
		hclient_pin_parse(lh->fingerprint, want);
		if (strcmp(hex, want) != 0) {
			lh_problem(
			    lh, OUTPOST_LOG_ERROR,
			    "the hub at %s shows certificate sha256:%s, not hub.fingerprint "
			    "sha256:%s: not trusting it (a wrong address, or someone in between)",
			    lh->hub_url, hex, want);
			free(pem);
			lh->failures[LH_PROBE] = 20; /* no hurry: this needs an operator */
			lh_retry(lh, LH_PROBE);
			return;
		}
	}
	if (sec_write_secret(lh->pin_path, pem, strlen(pem), msg, sizeof(msg)) < 0) {
		lh_problem(lh, OUTPOST_LOG_ERROR, "cannot pin the hub's certificate: %s", msg);
		free(pem);
		lh_retry(lh, LH_PROBE);
		return;
	}
	free(pem);
	/* From now on every connection must show exactly this certificate. */
	hclient_set_pin(lh->http, hex);
	memcpy(lh->pin_hex, hex, sizeof(lh->pin_hex));
	log_info(lh->log, "link",
	         "pinned the hub's TLS certificate sha256:%s in %s (%s); compare it with the "
	         "fingerprint the hub printed at its first start",
	         hex, lh->pin_path,
	         lh->fingerprint ? "it matches hub.fingerprint" : "trust on first use");
	lh->failures[LH_PROBE] = 0;
	lh->phase = LH_ENROLLING;
	lh_schedule(lh, LH_ENROLL, 0);
}

/* The hub refuses this host until an operator acts. Said once (at error) when it starts, kept
 * in the status, and asked again only every refused_retry_ms (plus up to a fifth): a refused
 * agent must not hammer the hub, yet picks up an operator's later accept by itself. */
static void lh_refused(struct link_http *lh, const char *state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void lh_refused(struct link_http *lh, const char *state, const char *fmt, ...)
{
	int again = strcmp(lh->state, state) == 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(lh->last_error, sizeof(lh->last_error), fmt, ap);
	va_end(ap);
	snprintf(lh->state, sizeof(lh->state), "%s", state);
	if (again)
		log_debug(lh->log, "link", "%s", lh->last_error);
	else
		log_error(lh->log, "link", "%s; asking the hub again every %lld s", lh->last_error,
		          (long long)(lh->refused_retry_ms / 1000));
	lh->failures[LH_ENROLL] = 0;
	lh_schedule(lh, LH_ENROLL, lh_jitter(lh->refused_retry_ms));
}

static void lh_on_enroll(struct link_http *lh, const struct lh_answer *a)
{
	const char *state, *key;
	uint8_t pk[SEC_PK_BYTES];

	if (lh_code_is(a, "conflict")) {
		lh_refused(lh, "refused",
		           "the hub knows host %s with another key: an operator must run "
		           "'outpost hosts revoke %s' then 'outpost hosts remove %s', or give "
		           "this agent another hub.host_id (%s)",
		           lh->host_id, lh->host_id, lh->host_id, a->text);
		return;
	}
	/* A forbidden id: the hub's message says which (docs/protocol.md, Enrollment). */
	if (lh_code_is(a, "forbidden") && strstr(a->text, "was rejected")) {
		lh_refused(lh, "rejected",
		           "the hub rejected host %s: an operator ran 'outpost hosts reject %s'; "
		           "'outpost hosts accept %s' undoes it (%s)",
		           lh->host_id, lh->host_id, lh->host_id, a->text);
		return;
	}
	if (lh_code_is(a, "forbidden")) {
		lh_refused(lh, "revoked", "the hub refuses host %s: it was revoked (%s)",
		           lh->host_id, a->text);
		return;
	}
	if (!a->ok) {
		lh_problem(lh, OUTPOST_LOG_WARN, "enrollment: %s", a->text);
		lh_retry(lh, LH_ENROLL);
		return;
	}
	state = json_string_value(json_object_get(a->result, "state"));
	key = json_string_value(json_object_get(a->result, "hub_pubkey"));
	if (!state || !key || sec_unb64(key, pk, SEC_PK_BYTES) < 0) {
		lh_problem(lh, OUTPOST_LOG_ERROR,
		           "the hub's enrollment answer has no state or no valid hub_pubkey");
		lh_retry(lh, LH_ENROLL);
		return;
	}
	if (lh->have_hub_pk && sodium_memcmp(pk, lh->hub_pk, SEC_PK_BYTES) != 0) {
		lh_problem(lh, OUTPOST_LOG_ERROR,
		           "the hub's signing key is now ed25519:%s, not the one pinned in %s: "
		           "refusing it. If the hub was reinstalled on purpose, remove %s and "
		           "restart the agent",
		           key, lh->json_path, lh->json_path);
		lh->failures[LH_ENROLL] = 20;
		lh_retry(lh, LH_ENROLL);
		return;
	}
	if (!lh->have_hub_pk)
		log_info(lh->log, "link", "pinned the hub's signing key ed25519:%s", key);
	memcpy(lh->hub_pk, pk, SEC_PK_BYTES);
	lh->have_hub_pk = 1;
	snprintf(lh->state, sizeof(lh->state), "%s",
	         strcmp(state, "up") == 0 || strcmp(state, "down") == 0 ? "up" : state);
	lh_save_state(lh);
	if (strcmp(lh->state, "up") == 0) {
		log_info(lh->log, "link", "enrolled with %s as %s", lh->hub_url, lh->host_id);
		lh->failures[LH_ENROLL] = 0;
		lh_run(lh);
		return;
	}
	lh_problem(lh, OUTPOST_LOG_WARN,
	           "enrolled as %s, state %s: waiting for an operator to run 'outpost hosts accept "
	           "%s' (or restart this agent with a valid --token)",
	           lh->host_id, state, lh->host_id);
	lh_retry(lh, LH_ENROLL);
}

/* The hub's beat interval, as beats' answers and polls' bring it. */
static void lh_hub_interval(struct link_http *lh, const json_t *result)
{
	json_t *iv = json_object_get(result, "interval_ms");
	int64_t ms;

	if (!json_is_integer(iv))
		return;
	ms = json_integer_value(iv);
	lh->interval_ms = ms < LH_BEAT_MIN_MS   ? LH_BEAT_MIN_MS
	                  : ms > LH_BEAT_MAX_MS ? LH_BEAT_MAX_MS
	                                        : ms;
}

/* The hub answered busy with a Retry-After (admission control, docs/agent-link.md): this kind
 * goes again after it plus up to a second of jitter, and every other kind waits as long, so
 * the agent takes one place in the hub's schedule, not one per kind. 1 if it was that. */
static int lh_on_busy(struct link_http *lh, struct lh_req *r, const struct hclient_response *resp,
                      const struct lh_answer *a)
{
	const char *ra = hclient_header(resp, "Retry-After");
	char *end = NULL;
	long s;
	int64_t until;

	if (a->transport || a->status != 503 || !lh_code_is(a, "busy") || !ra)
		return 0;
	s = strtol(ra, &end, 10);
	if (end == ra || s < 0)
		return 0;
	if (s > LH_RETRY_AFTER_MAX_S)
		s = LH_RETRY_AFTER_MAX_S;
	until = clk_mono_ms() + s * 1000 + (int64_t)randombytes_uniform(1001);
	if (until > lh->busy_until_ms)
		lh->busy_until_ms = until;
	lh->busy_answers++;
	lh_problem(lh, OUTPOST_LOG_INFO, "%s", a->text);
	if (r->kind == LH_POLL)
		lh->resume = 1;
	lh_schedule(lh, r->kind, lh->busy_until_ms - clk_mono_ms());
	return 1;
}

/* since: when the answer's first byte was read, for the poll phase of the tasks it brings. */
static void lh_on_poll(struct link_http *lh, struct lh_req *r, const struct lh_answer *a,
                       const struct phase_mark *since)
{
	json_t *tasks = json_object_get(a->result, "tasks"), *t;
	size_t i;

	if (a->ok && json_is_array(tasks)) {
		lh_mark_up(lh);
		lh_alive(lh, r);
		lh->resume = 0;
		lh->failures[LH_POLL] = 0;
		lh_hub_interval(lh, a->result);
		/* Ask again at once: the next long-poll must be waiting when the next task comes;
		 * after tasks, once their results are posted (lh_on_results) or a second later
		 * for tasks that take longer, so quick results go on the connection this answer
		 * freed rather than on a second one opened for them. */
		lh->poll_after_results = json_array_size(tasks) > 0;
		lh_schedule(lh, LH_POLL, lh->poll_after_results ? LH_POLL_AFTER_TASKS_MS : 0);
		if (json_array_size(tasks) > 0) {
			phase_end(taskphase(lh->phases, TP_POLL), since, 1);
			lh->poll_timed = 1;
		}
		json_array_foreach(tasks, i, t)
		{
			lh->tasks_received++;
			lh->on_task(lh->arg, t);
		}
		return;
	}
	if (lh_code_is(a, "unauthorized")) {
		lh_reenroll(lh, r, a);
		return;
	}
	lh_mark_down(lh, a);
	/* Tasks of an answer that was lost on the way are handed out again by resume. */
	lh->resume = 1;
	lh_retry(lh, LH_POLL);
	/* The poll stood in for the beats and is gone (a hub restart, a cut): beat within an
	 * interval, at a random point of it, so a fleet whose polls broke together does not
	 * beat together. */
	if (lh->poll_beat && !lh->req[LH_BEAT] && !lh->failures[LH_BEAT])
		lh_schedule(lh, LH_BEAT, (int64_t)randombytes_uniform((uint32_t)lh->interval_ms));
}

static void lh_on_beat(struct link_http *lh, struct lh_req *r, const struct lh_answer *a)
{
	int64_t next = lh_jitter(lh->interval_ms), wait;

	if (lh->poll_after_beat) {
		/* Whatever the answer: the poll goes now (lh_run). */
		lh->poll_after_beat = 0;
		if (lh->phase == LH_RUNNING && !lh->req[LH_POLL])
			lh_schedule(lh, LH_POLL, 0);
	}
	if (lh_code_is(a, "unauthorized")) {
		lh_reenroll(lh, r, a);
		return;
	}
	if (a->ok) {
		lh->failures[LH_BEAT] = 0;
		lh_mark_up(lh);
		lh_hub_interval(lh, a->result);
		if (r->facts) {
			json_decref(lh->facts_sent);
			lh->facts_sent = json_incref(r->facts);
		}
		lh->requests_beat =
		    json_is_true(json_object_get(a->result, "requests_count_as_beats"));
		lh->poll_beat =
		    json_is_true(json_object_get(a->result, "held_poll_counts_as_beats"));
		lh->beats_sent++;
		lh_alive(lh, r);
		next = lh_jitter(lh->interval_ms);
	} else if (a->transport) {
		/* No hub at all (a restart, a cut): the beat keeps knocking at its own rate,
		 * spread over half an interval either side, which costs the hub no more than a
		 * fleet that is up; the first answer ends every other backoff (lh_mark_up), so
		 * the fleet is back within an interval of the hub. */
		lh->failures[LH_BEAT]++;
		next =
		    lh->interval_ms / 2 + (int64_t)randombytes_uniform((uint32_t)lh->interval_ms);
		lh_mark_down(lh, a);
	} else {
		/* A hub that answers but fails (busy, 5xx): the interval, or the backoff once it
		 * is longer, so beats that failed together come back spread out, not in step. */
		wait = lh_backoff_ms(lh->failures[LH_BEAT]++);
		if (wait > next)
			next = wait;
		if (a->transport || a->status >= 500)
			lh_mark_down(lh, a);
		else
			lh_problem(lh, OUTPOST_LOG_WARN, "%s", a->text);
	}
	lh_schedule(lh, LH_BEAT, next);
}

static void lh_on_results(struct link_http *lh, struct lh_req *r, const struct lh_answer *a)
{
	if (lh_code_is(a, "unauthorized")) {
		lh_reenroll(lh, r, a); /* the batch stays in the outbox */
		return;
	}
	if (a->ok || (!a->transport && (lh_code_is(a, "bad_json") || lh_code_is(a, "bad_args") ||
	                                lh_code_is(a, "too_large")))) {
		if (!a->ok) {
			/* Sending it again would be refused again, and hold up every result
			 * behind it. */
			lh->results_dropped += r->nresults;
			log_error(lh->log, "link", "%s: %zu result(s) dropped", a->text,
			          r->nresults);
		} else {
			lh->results_sent += r->nresults;
			lh_mark_up(lh);
			lh_alive(lh, r);
		}
		outbox_ack(lh->outbox, r->last_seq);
		lh->failures[LH_RESULTS] = 0;
		lh_schedule(lh, LH_RESULTS, 0);
		if (lh->poll_after_results && outbox_depth(lh->outbox) <= 0 && !lh->req[LH_POLL]) {
			lh->poll_after_results = 0;
			lh_schedule(lh, LH_POLL, 0);
		}
		return;
	}
	if (a->transport)
		lh_mark_down(lh, a);
	else
		lh_problem(lh, OUTPOST_LOG_WARN, "%s", a->text);
	lh_retry(lh, LH_RESULTS);
}

/* Batches the hub refused one by one (too old, too new, malformed): never sent again. Logged
 * at most once a minute, with how many since the last time and the first reason. */
static void lh_metrics_rejected(struct link_http *lh, const json_t *rejected)
{
	const json_t *first = json_array_get(rejected, 0);
	const char *why = json_string_value(json_object_get(first, "reason"));
	int64_t now = clk_mono_ms();

	lh->rejected_unlogged += json_array_size(rejected);
	if (lh->rejected_logged_ms && now - lh->rejected_logged_ms < 60000)
		return;
	log_warn(lh->log, "link",
	         "the hub rejected %llu metric batch(es) (e.g. seq %lld: %.200s); they are not "
	         "sent again",
	         (unsigned long long)lh->rejected_unlogged,
	         (long long)json_integer_value(json_object_get(first, "seq")), why ? why : "?");
	lh->rejected_unlogged = 0;
	lh->rejected_logged_ms = now;
}

static void lh_on_metrics(struct link_http *lh, struct lh_req *r, const struct lh_answer *a)
{
	json_t *jl = json_object_get(a->result, "last_seq");
	json_t *rejected = json_object_get(a->result, "rejected");
	int64_t last, sent;
	int n;

	if (lh_code_is(a, "unauthorized")) {
		lh_reenroll(lh, r, a); /* the batches stay in the spool */
		return;
	}
	if (a->ok) {
		/* The hub has every batch up to last_seq on disk; never more than was sent. None
		 * acknowledged is fine when the spool dropped them meanwhile (it was full), a
		 * hub's bug otherwise: resending at once would loop. */
		/* Batches held in memory (a full disk) go with minus their last seq. */
		sent = r->last_seq < 0 ? -r->last_seq : r->last_seq;
		last = json_is_integer(jl) ? json_integer_value(jl) : 0;
		if (last > sent)
			last = sent;
		n = last > 0 ? spool_ack(lh->spool, r->last_seq < 0 ? -last : last) : 0;
		if (n < 0 || (n == 0 && last < sent)) {
			lh_problem(lh, OUTPOST_LOG_WARN,
			           "the hub's answer to metrics acknowledges none of the %zu "
			           "batch(es) sent (last_seq %lld, sent up to %lld): sending them "
			           "again",
			           r->nresults, (long long)json_integer_value(jl),
			           (long long)r->last_seq);
			lh_retry(lh, LH_METRICS);
			return;
		}
		if (json_array_size(rejected) > 0) {
			size_t k = json_array_size(rejected) < (size_t)n ? json_array_size(rejected)
			                                                 : (size_t)n;
			lh->batches_rejected += k;
			lh->batches_sent += (uint64_t)n - k;
			lh_metrics_rejected(lh, rejected);
		} else {
			lh->batches_sent += (uint64_t)n;
		}
		lh->samples_stale +=
		    (uint64_t)json_integer_value(json_object_get(a->result, "samples_stale"));
		lh->failures[LH_METRICS] = 0;
		lh_mark_up(lh);
		lh_alive(lh, r);
		if (spool_depth(lh->spool) > 0)
			lh_schedule(lh, LH_METRICS, 0); /* the rest of a backlog goes at once */
		return;
	}
	if (!a->transport && (a->status == 400 || a->status == 413)) {
		/* The whole request refused: sending it again would be refused again and hold up
		 * every batch behind it (a poison batch must not block the spool). */
		n = spool_ack(lh->spool, r->last_seq);
		lh->batches_rejected += n > 0 ? (uint64_t)n : 0;
		log_warn(lh->log, "link", "%s: %d metric batch(es) dropped", a->text,
		         n > 0 ? n : 0);
		lh->failures[LH_METRICS] = 0;
		lh_schedule(lh, LH_METRICS, 0);
		return;
	}
	if (a->transport)
		lh_mark_down(lh, a);
	else
		lh_problem(lh, OUTPOST_LOG_WARN, "%s%s", a->text,
		           a->status == 404 ? " (a hub older than this agent? the batches wait in "
		                              "the spool)"
		                            : "");
	lh_retry(lh, LH_METRICS);
}

/* Scale mode's credentials: the wrapper takes them (0) or wants them asked for again. */
static void lh_on_creds(struct link_http *lh, struct lh_req *r, const struct lh_answer *a)
{
	if (lh_code_is(a, "unauthorized")) {
		lh_reenroll(lh, r, a);
		return;
	}
	if (a->ok && lh->on_creds(lh->creds_arg, a->result) == 0) {
		lh->failures[LH_CREDS] = 0;
		lh_mark_up(lh);
		return;
	}
	if (a->ok)
		lh_problem(lh, OUTPOST_LOG_ERROR,
		           "the hub's answer to %s is not what this agent's hub.mode needs: asking "
		           "again",
		           lh_kind_name[r->kind]);
	else if (lh_code_is(a, "not_found"))
		lh_problem(lh, OUTPOST_LOG_ERROR,
		           "%s: is the hub at %s in the same mode as this agent (hub.mode)? asking "
		           "again",
		           a->text, lh->hub_url);
	else if (a->transport)
		lh_mark_down(lh, a);
	else
		lh_problem(lh, OUTPOST_LOG_WARN, "%s", a->text);
	if (!a->transport && lh->failures[LH_CREDS] < 4)
		lh->failures[LH_CREDS] = 4; /* needs the hub or an operator: no hurry */
	lh_retry(lh, LH_CREDS);
}

static void lh_on_done(void *arg, const struct hclient_response *resp)
{
	struct lh_req *r = arg;
	struct link_http *lh = r->lh;
	struct lh_answer a;
	struct phase_mark since;

	if (resp->rx_start)
		since = *resp->rx_start;
	else
		phase_start(&since);
	r->http = NULL; /* answered: the client let go of it */
	lh->req[r->kind] = NULL;
	lh_answer_read(lh, r, resp, &a);
	if (a.ok)
		log_debug(lh->log, "link", "%s: ok", lh_kind_name[r->kind]);
	if (lh_on_busy(lh, r, resp, &a))
		goto out;
	switch (r->kind) {
	case LH_PROBE:
		lh_on_probe(lh, resp, &a);
		break;
	case LH_ENROLL:
		lh_on_enroll(lh, &a);
		break;
	case LH_POLL:
		lh_on_poll(lh, r, &a, &since);
		break;
	case LH_BEAT:
		lh_on_beat(lh, r, &a);
		break;
	case LH_RESULTS:
		lh_on_results(lh, r, &a);
		phase_end(taskphase(lh->phases, TP_REPORT), &since, 0);
		break;
	case LH_METRICS:
		lh_on_metrics(lh, r, &a);
		break;
	case LH_CREDS:
		lh_on_creds(lh, r, &a);
		break;
	case LH_NKINDS:
		break;
	}
out:
	json_decref(a.env);
	lh_req_free(r);
}

static char *lh_enroll_body(struct link_http *lh)
{
	char hostname[256] = "";
	json_t *facts = lh->facts ? json_incref(lh->facts) : lh_uname_facts();
	json_t *b;
	char *text;

	gethostname(hostname, sizeof(hostname) - 1);
	b = json_pack("{s:s, s:s, s:s, s:s, s:o}", "host_id", lh->host_id, "pubkey", lh->pk_b64,
	              "hostname", hostname, "version", OUTPOST_VERSION, "facts",
	              facts ? facts : json_object());
	if (b && lh->token && *lh->token)
		json_object_set_new(b, "token", json_string(lh->token));
	text = b ? wire_dump(b) : NULL;
	json_decref(b);
	return text;
}

static void lh_send_kind(struct link_http *lh, enum lh_kind kind)
{
	struct buf target = BUF_INIT;
	struct lh_req *r = NULL;
	char *body = NULL;
	json_t *facts = NULL, *batch = NULL;
	int64_t last_seq = 0;
	size_t nbatches = 0;
	int rc = -1;

	if (lh->req[kind] || lh->phase == LH_STOPPED)
		return;
	if (clk_mono_ms() < lh->busy_until_ms) {
		/* The hub asked for a pause (lh_on_busy): this kind waits for its end too. */
		lh_schedule(lh, kind, lh->busy_until_ms - clk_mono_ms());
		return;
	}
	switch (kind) {
	case LH_PROBE:
		rc = lh_request(lh, kind, "GET", "/api/v1/health", NULL, 0, &r);
		break;
	case LH_ENROLL:
		body = lh_enroll_body(lh);
		if (body)
			rc = lh_request(lh, kind, "POST", "/api/v1/enroll", body, 0, &r);
		break;
	case LH_POLL:
		if (lh->phase != LH_RUNNING)
			return;
		if (buf_printf(&target, "/api/v1/agents/%s/tasks?wait=%d%s", lh->host_id,
		               LH_POLL_WAIT_S, lh->resume ? "&resume=1" : "") == 0)
			rc = lh_request(lh, kind, "GET", target.data, NULL, 1, &r);
		break;
	case LH_BEAT:
		if (lh->phase != LH_RUNNING)
			return;
		if (lh->facts && !json_equal(lh->facts, lh->facts_sent))
			facts = json_incref(lh->facts);
		/* Liveness goes another way: a beat only for the version at start and for facts. */
		if (!facts && lh->tasks_elsewhere && lh->beats_sent > 0)
			return;
		if (!facts && lh->requests_beat && !lh->failures[LH_BEAT] &&
		    (lh->req[LH_METRICS] || lh->req[LH_RESULTS])) {
			/* A post on its way will do, once answered (lh_alive then sets the next
			 * beat); if it fails, this beat goes a little later. */
			lh_schedule(lh, LH_BEAT, lh->interval_ms / 10);
			return;
		}
		if (!facts && lh->poll_beat && !lh->failures[LH_BEAT] &&
		    (lh->req[LH_POLL] || (lh->timer[LH_POLL] && !lh->failures[LH_POLL]))) {
			/* The poll held at the hub (or about to be asked again) stands in: the hub
			 * probes its connection, and its answer brings the hub's interval. No
			 * beat, so an idle agent needs one connection, not a second opened for a
			 * beat every minute. The poll's end sets the next beat (lh_alive, or at
			 * once if it failed). */
			return;
		}
		{
			json_t *b = json_pack("{s:s}", "version", OUTPOST_VERSION);
			if (b && facts)
				json_object_set(b, "facts", facts);
			body = b ? wire_dump(b) : NULL;
			json_decref(b);
		}
		if (body && buf_printf(&target, "/api/v1/agents/%s/beat", lh->host_id) == 0)
			rc = lh_request(lh, kind, "POST", target.data, body, 1, &r);
		else
			free(body);
		break;
	case LH_RESULTS:
		if (lh->phase != LH_RUNNING || outbox_depth(lh->outbox) <= 0 ||
		    lh->timer[LH_RESULTS])
			return;
		if (outbox_peek(lh->outbox, LH_RESULTS_ITEMS, LH_RESULTS_BYTES, &batch, &last_seq) <
		    0)
			break;
		if (json_array_size(batch) == 0) {
			/* Unreadable rows only: drop them. */
			outbox_ack(lh->outbox, last_seq);
			json_decref(batch);
			return;
		}
		{
			json_t *b = json_pack("{s:O}", "results", batch);
			body = b ? wire_dump(b) : NULL;
			json_decref(b);
		}
		if (body && buf_printf(&target, "/api/v1/agents/%s/results", lh->host_id) == 0)
			rc = lh_request(lh, kind, "POST", target.data, body, 1, &r);
		else
			free(body);
		break;
	case LH_METRICS:
		if (lh->phase != LH_RUNNING || spool_depth(lh->spool) <= 0 || lh->timer[LH_METRICS])
			return;
		{
			struct buf b = BUF_INIT;
			if (spool_peek(lh->spool, LH_METRICS_ITEMS, LH_METRICS_BYTES, &b, &nbatches,
			               &last_seq) < 0) {
				buf_free(&b);
				break;
			}
			if (nbatches == 0) {
				/* Damaged rows only (dropped now), or none left. */
				buf_free(&b);
				if (spool_depth(lh->spool) > 0)
					lh_retry(lh, kind);
				return;
			}
			body = buf_steal(&b);
		}
		if (body && buf_printf(&target, "/api/v1/agents/%s/metrics", lh->host_id) == 0)
			rc = lh_request(lh, kind, "POST", target.data, body, 1, &r);
		else
			free(body);
		break;
	case LH_CREDS:
		if (lh->phase != LH_RUNNING || !lh->creds_route)
			return;
		if (buf_printf(&target, "/api/v1/agents/%s/%s", lh->host_id, lh->creds_route) == 0)
			rc = lh_request(lh, kind, "GET", target.data, NULL, 1, &r);
		break;
	case LH_NKINDS:
		return;
	}
	buf_free(&target);
	if (rc < 0) {
		json_decref(facts);
		json_decref(batch);
		log_error(lh->log, "link", "cannot start the %s request: out of memory",
		          lh_kind_name[kind]);
		lh_retry(lh, kind);
		return;
	}
	r->facts = facts;
	if (kind == LH_METRICS) {
		r->nresults = nbatches;
		r->last_seq = last_seq;
	}
	if (batch) {
		r->nresults = json_array_size(batch);
		r->last_seq = last_seq;
		json_decref(batch);
	}
	lh->req[kind] = r;
}

/* Starts a request of kind, if one is due. The results' POST is part of the report phase of
 * the results it carries, the poll that follows an answer with tasks part of their poll. */
static void lh_send(struct link_http *lh, enum lh_kind kind)
{
	struct phase_mark m;
	enum taskphase tp = kind == LH_POLL ? TP_POLL : TP_REPORT;

	if (!lh->phases || !(kind == LH_RESULTS || (kind == LH_POLL && lh->poll_timed))) {
		lh_send_kind(lh, kind);
		return;
	}
	phase_start(&m);
	lh_send_kind(lh, kind);
	if (kind == LH_POLL)
		lh->poll_timed = 0;
	phase_end(taskphase(lh->phases, tp), &m, 0);
}

/* ---- the interface ---- */

/* Pins the certificate saved at first use: every connection must show exactly it (its DER's
 * sha256), whatever name reaches the hub. */
static int lh_load_pin(struct link_http *lh, char *msg, size_t msglen)
{
	char hex[65], *pem = NULL;
	size_t len = 0;
	FILE *f = fopen(lh->pin_path, "re");
	int rc = OUTPOST_E_BAD_ARGS;

	if (!f) {
		snprintf(msg, msglen, "cannot read the pinned hub certificate %s: %s", lh->pin_path,
		         strerror(errno));
		return rc;
	}
	pem = calloc(1, 65537);
	if (pem)
		len = fread(pem, 1, 65536, f);
	fclose(f);
	if (!pem)
		return OUTPOST_E_INTERNAL;
	pem[len] = '\0';
	if (lh_pem_fingerprint(pem, hex) < 0 || hclient_set_pin(lh->http, hex) < 0) {
		snprintf(msg, msglen,
		         "%s holds no certificate: remove it to pin the hub's certificate again "
		         "on the next contact",
		         lh->pin_path);
	} else {
		memcpy(lh->pin_hex, hex, sizeof(lh->pin_hex));
		rc = 0;
	}
	free(pem);
	return rc;
}

static int lh_start(struct link *l, char *msg, size_t msglen)
{
	struct link_http *lh = (struct link_http *)l;
	char *path = lh_path(lh, "agent.key");
	int created = 0, rc;

	if (!path)
		return OUTPOST_E_INTERNAL;
	rc = sec_keyfile(path, lh->pk, lh->sk, &created, msg, msglen);
	if (rc < 0) {
		free(path);
		return rc;
	}
	free(lh->pk_b64); /* started again after a stop */
	lh->pk_b64 = sec_b64(lh->pk, SEC_PK_BYTES);
	if (!lh->pk_b64) {
		free(path);
		return OUTPOST_E_INTERNAL;
	}
	if (created)
		log_info(lh->log, "link", "created this agent's key %s: ed25519:%s", path,
		         lh->pk_b64);
	free(path);
	rc = lh_load_state(lh, msg, msglen);
	if (rc < 0)
		return rc;
	if (lh->https && !lh->ca && access(lh->pin_path, F_OK) == 0) {
		rc = lh_load_pin(lh, msg, msglen);
		if (rc < 0)
			return rc;
	}
	if (lh->https && !lh->ca && access(lh->pin_path, F_OK) < 0) {
		lh->phase = LH_PROBING;
		log_info(lh->log, "link",
		         "first contact with the hub at %s: pinning its certificate", lh->url);
		lh_schedule(lh, LH_PROBE, 0);
	} else if (lh->have_hub_pk && strcmp(lh->state, "up") == 0) {
		log_info(lh->log, "link", "connecting to the hub at %s as %s", lh->url,
		         lh->host_id);
		lh_run(lh);
	} else {
		lh->phase = LH_ENROLLING;
		log_info(lh->log, "link", "enrolling with the hub at %s as %s%s", lh->url,
		         lh->host_id, lh->token && *lh->token ? " (with a token)" : "");
		lh_schedule(lh, LH_ENROLL, 0);
	}
	return 0;
}

static void lh_stop(struct link *l)
{
	struct link_http *lh = (struct link_http *)l;

	lh->phase = LH_STOPPED;
	for (int k = 0; k < LH_NKINDS; k++) {
		loop_timer_del(lh->loop, lh->timer[k]);
		lh->timer[k] = NULL;
		lh_req_free(lh->req[k]);
		lh->req[k] = NULL;
	}
	lh->connected = 0;
}

static int lh_report(struct link *l, const json_t *result)
{
	struct link_http *lh = (struct link_http *)l;
	int rc = outbox_put(lh->outbox, result);

	if (rc == 0 && lh->phase == LH_RUNNING && !lh->req[LH_RESULTS] && !lh->timer[LH_RESULTS])
		lh_schedule(lh, LH_RESULTS, 0);
	return rc;
}

static int lh_publish(struct link *l, const char *stream, const char *batch, size_t len)
{
	struct link_http *lh = (struct link_http *)l;
	int rc;

	/* One spool for both streams: one seq, one replay, one dedupe at the hub, which tells an
	 * events batch by its "events" (plugins.c checked the shapes). */
	if (!stream || (strcmp(stream, "metrics") != 0 && strcmp(stream, "events") != 0))
		return OUTPOST_E_BAD_ARGS;
	rc = spool_put(lh->spool, batch, len);
	if (rc == 0 && lh->phase == LH_RUNNING && !lh->req[LH_METRICS] && !lh->timer[LH_METRICS])
		lh_schedule(lh, LH_METRICS, lh->metrics_delay_ms);
	return rc;
}

static void lh_facts(struct link *l, const json_t *facts)
{
	struct link_http *lh = (struct link_http *)l;
	json_t *copy = json_deep_copy(facts);

	if (copy) {
		json_decref(lh->facts);
		lh->facts = copy;
		/* New facts go out with the next beat, which may be a minute away while other
		 * requests stand in for beats: now. */
		if (lh->phase == LH_RUNNING && (lh->requests_beat || lh->tasks_elsewhere) &&
		    !lh->req[LH_BEAT] && !json_equal(lh->facts, lh->facts_sent))
			lh_schedule(lh, LH_BEAT, 0);
	}
}

static int lh_hub_key(struct link *l, uint8_t pk[SEC_PK_BYTES])
{
	struct link_http *lh = (struct link_http *)l;

	if (!lh->have_hub_pk)
		return -1;
	memcpy(pk, lh->hub_pk, SEC_PK_BYTES);
	return 0;
}

/* What a full disk does to the link: results and batches held in memory instead. */
static void lh_status_disk(struct link_http *lh, json_t *st)
{
	struct outbox_mem_stats om;
	struct spool_mem_stats sm;

	outbox_mem_stats(lh->outbox, &om);
	spool_mem_stats(lh->spool, &sm);
	json_object_set_new(st, "disk_full", json_boolean(om.disk_full || sm.disk_full));
	json_object_set_new(st, "memory",
	                    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "results",
	                              (json_int_t)om.results, "results_bytes", (json_int_t)om.bytes,
	                              "results_dropped", (json_int_t)om.dropped, "batches",
	                              (json_int_t)sm.batches, "batches_bytes", (json_int_t)sm.bytes,
	                              "write_errors",
	                              (json_int_t)(om.write_errors + sm.write_errors)));
}

static json_t *lh_status(struct link *l)
{
	struct link_http *lh = (struct link_http *)l;
	static const char *const phases[] = {"idle", "pinning", "enrolling", "running", "stopped"};
	json_t *st = json_pack(
	    "{s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:s?}", "mode", "http",
	    "url", lh->hub_url, "host_id", lh->host_id, "state", lh->state, "phase",
	    phases[lh->phase], "connected", lh->connected, "reconnects", (json_int_t)lh->reconnects,
	    "tasks_received", (json_int_t)lh->tasks_received, "results_sent",
	    (json_int_t)lh->results_sent, "results_dropped", (json_int_t)lh->results_dropped,
	    "outbox_depth", (json_int_t)outbox_depth(lh->outbox), "last_contact_ms",
	    (json_int_t)lh->last_contact_ms, "last_error",
	    lh->last_error[0] && !lh->connected ? lh->last_error : NULL);

	if (st) {
		json_object_set_new(st, "spool_depth", json_integer(spool_depth(lh->spool)));
		json_object_set_new(st, "spool_bytes", json_integer(spool_bytes(lh->spool)));
		json_object_set_new(st, "spool_dropped",
		                    json_integer((json_int_t)spool_dropped(lh->spool)));
		json_object_set_new(st, "batches_sent", json_integer((json_int_t)lh->batches_sent));
		json_object_set_new(st, "batches_rejected",
		                    json_integer((json_int_t)lh->batches_rejected));
		json_object_set_new(st, "beats_sent", json_integer((json_int_t)lh->beats_sent));
		json_object_set_new(st, "busy_answers", json_integer((json_int_t)lh->busy_answers));
		json_object_set_new(st, "clock_skew_ms", json_integer(lh->clock_skew_ms));
		json_object_set_new(st, "samples_stale",
		                    json_integer((json_int_t)lh->samples_stale));
		lh_status_disk(lh, st);
	}
	return st;
}

static void lh_free(struct link *l)
{
	struct link_http *lh = (struct link_http *)l;

	if (!lh)
		return;
	lh_stop(l);
	hclient_free(lh->http);
	outbox_close(lh->outbox);
	spool_close(lh->spool);
	json_decref(lh->facts);
	json_decref(lh->facts_sent);
	sodium_memzero(lh->sk, sizeof(lh->sk));
	free(lh->pk_b64);
	free(lh->state_dir);
	free(lh->url);
	free(lh->hub_url);
	free(lh->creds_route);
	free(lh->token);
	free(lh->ca);
	free(lh->fingerprint);
	free(lh->host_id);
	free(lh->pin_path);
	free(lh->json_path);
	free(lh);
}

static const struct link_ops link_http_ops = {
    .name = "http",
    .start = lh_start,
    .stop = lh_stop,
    .report = lh_report,
    .publish = lh_publish,
    .facts = lh_facts,
    .hub_key = lh_hub_key,
    .status = lh_status,
    .free = lh_free,
};

static int lh_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

int link_http_check_url(const char *url, char *msg, size_t msglen)
{
	struct hclient_url u;
	const char *sep = strstr(url, "://");

	if (hclient_url_parse(url, &u) < 0) {
		if (sep && sep > url && strncasecmp(url, "http://", 7) != 0 &&
		    strncasecmp(url, "https://", 8) != 0 &&
		    strcspn(url, "/?#@") > (size_t)(sep - url))
			snprintf(msg, msglen, "'hub.url' must start with https:// (it is %.200s)",
			         url);
		else
			snprintf(msg, msglen,
			         "'hub.url' %.200s is not a URL: use https://HOST:PORT", url);
		return OUTPOST_E_BAD_ARGS;
	}
	if (u.userinfo || (u.rest[0] && strcmp(u.rest, "/") != 0)) {
		snprintf(
		    msg, msglen,
		    "'hub.url' is the hub's base URL, https://HOST[:PORT], without user, path, "
		    "query or fragment (it is %.200s)",
		    url);
		return OUTPOST_E_BAD_ARGS;
	}
	if (!u.https && !lh_loopback(u.host)) {
		snprintf(msg, msglen,
		         "'hub.url' %.200s: plain http:// is allowed only for a hub on this host "
		         "(127.0.0.1, ::1, localhost); use https://, the hub serves TLS",
		         url);
		return OUTPOST_E_BAD_ARGS;
	}
	return 0;
}

/* The HTTP client to hub_url. One connection holds the long-poll; beats and results share the
 * other. Only our anchor, never the system store: hub.ca, checked with the hub's name, or the
 * certificate pinned at first use (lh_start). */
static int lh_http_new(struct link_http *lh, char *msg, size_t msglen)
{
	struct hclient_config hc = {.loop = lh->loop,
	                            .url = lh->hub_url,
	                            .ca_file = lh->https ? lh->ca : NULL,
	                            .user_agent = "outpost-agent/" OUTPOST_VERSION,
	                            .max_conns = 2,
	                            .max_response = LH_MAX_RESPONSE,
	                            .connect_timeout_ms = LH_CONNECT_TIMEOUT_S * 1000LL,
	                            .source_addr = lh->source_addr[0] ? lh->source_addr : NULL};
	char why[300];
	int rc = hclient_new(&hc, &lh->http, why, sizeof(why));

	if (rc < 0) {
		snprintf(msg, msglen, "%s%s", rc == OUTPOST_E_INTERNAL ? "" : "'hub.ca': ", why);
		return rc;
	}
	if (lh->pin_hex[0] && hclient_set_pin(lh->http, lh->pin_hex) < 0) {
		snprintf(msg, msglen, "out of memory");
		return OUTPOST_E_INTERNAL;
	}
	return 0;
}

int link_http_set_url(struct link *l, const char *url, char *msg, size_t msglen)
{
	struct link_http *lh = (struct link_http *)l;
	struct hclient *old = lh->http;
	char *copy, *prev;
	int busy[LH_NKINDS] = {0}, rc;
	size_t n;

	rc = link_http_check_url(url, msg, msglen);
	if (rc < 0)
		return rc;
	copy = strdup(url);
	if (!copy)
		return OUTPOST_E_INTERNAL;
	n = strlen(copy);
	while (n > 0 && copy[n - 1] == '/')
		copy[--n] = '\0';
	if (strcmp(copy, lh->hub_url) == 0) {
		free(copy);
		return 0;
	}
	prev = lh->hub_url;
	lh->hub_url = copy;
	lh->http = NULL;
	rc = lh_http_new(lh, msg, msglen);
	if (rc < 0) {
		hclient_free(lh->http);
		lh->http = old;
		lh->hub_url = prev;
		free(copy);
		return rc;
	}
	/* What was on its way to the old hub goes to the new one (results and batches stay in
	 * the outbox and spool until a hub acknowledges them). */
	for (int k = 0; k < LH_NKINDS; k++) {
		busy[k] = lh->req[k] != NULL;
		lh_req_free(lh->req[k]);
		lh->req[k] = NULL;
	}
	hclient_free(old);
	log_info(lh->log, "link", "sending to the hub at %s from now on (was %s)", lh->hub_url,
	         prev);
	free(prev);
	lh->connected = 0;
	lh->down_since_ms = clk_mono_ms();
	for (int k = 0; k < LH_NKINDS; k++)
		if (busy[k] || (lh->failures[k] && lh->timer[k])) {
			lh->failures[k] = 0;
			lh_schedule(lh, (enum lh_kind)k, 0);
		}
	return 0;
}

void link_http_ask_creds(struct link *l)
{
	struct link_http *lh = (struct link_http *)l;

	if (lh->creds_route && lh->phase == LH_RUNNING && !lh->req[LH_CREDS] &&
	    !lh->timer[LH_CREDS])
		lh_schedule(lh, LH_CREDS, 0);
}

const char *link_http_url(const struct link *l)
{
	return ((const struct link_http *)l)->hub_url;
}

static char *lh_strdup(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

int link_http_new(const struct link_config *cfg, struct link **out, char *msg, size_t msglen)
{
	struct link_http *lh;
	char fp[65];
	size_t n;
	int rc;

	*out = NULL;
	rc = link_http_check_url(cfg->url, msg, msglen);
	if (rc < 0)
		return rc;
	if (cfg->fingerprint && *cfg->fingerprint && hclient_pin_parse(cfg->fingerprint, fp) < 0) {
		snprintf(msg, msglen,
		         "'hub.fingerprint' must be sha256:<64 hex digits> (as the hub prints it)");
		return OUTPOST_E_BAD_ARGS;
	}
	if (cfg->ca && *cfg->ca && access(cfg->ca, R_OK) < 0) {
		snprintf(msg, msglen, "'hub.ca' %s: %s", cfg->ca, strerror(errno));
		return OUTPOST_E_BAD_ARGS;
	}
	lh = calloc(1, sizeof(*lh));
	if (!lh)
		return OUTPOST_E_INTERNAL;
	lh->base.ops = &link_http_ops;
	lh->loop = cfg->loop;
	lh->log = cfg->log;
	lh->on_task = cfg->on_task;
	lh->arg = cfg->arg;
	lh->phases = cfg->phases;
	lh->interval_ms = LH_BEAT_MS;
	lh->refused_retry_ms =
	    cfg->refused_retry_ms > 0 ? cfg->refused_retry_ms : LINK_REFUSED_RETRY_MS;
	/* Drawn once: posts a whole interval apart, so a beat drawn after one (lh_alive) falls
	 * before the next, never just after it. */
	lh->metrics_delay_ms = (int64_t)randombytes_uniform(LH_METRICS_SPREAD_MS + 1);
	for (int k = 0; k < LH_NKINDS; k++)
		lh->slot[k] = (struct lh_slot){lh, (enum lh_kind)k};
	lh->https = strncasecmp(cfg->url, "https:", 6) == 0;
	snprintf(lh->state, sizeof(lh->state), "unenrolled");
	lh->state_dir = strdup(cfg->state_dir);
	lh->url = strdup(cfg->url);
	lh->tasks_elsewhere = cfg->tasks_elsewhere;
	if (cfg->source_addr)
		snprintf(lh->source_addr, sizeof(lh->source_addr), "%s", cfg->source_addr);
	lh->creds_route = cfg->creds_route ? strdup(cfg->creds_route) : NULL;
	lh->on_creds = cfg->on_creds;
	lh->creds_arg = cfg->creds_arg;
	lh->host_id = strdup(cfg->host_id);
	lh->token = lh_strdup(cfg->token);
	lh->ca = lh_strdup(cfg->ca);
	lh->fingerprint = lh_strdup(cfg->fingerprint);
	if (!lh->state_dir || !lh->url || !lh->host_id)
		goto oom;
	n = strlen(lh->url);
	while (n > 0 && lh->url[n - 1] == '/')
		lh->url[--n] = '\0';
	lh->hub_url = strdup(lh->url);
	if (!lh->hub_url)
		goto oom;
	lh->pin_path = lh_path(lh, "hub.crt");
	lh->json_path = lh_path(lh, "hub.json");
	if (!lh->pin_path || !lh->json_path)
		goto oom;
	if (outbox_open(cfg->db, cfg->log, &lh->outbox) < 0) {
		snprintf(msg, msglen, "cannot open the result outbox in the agent's database");
		lh_free(&lh->base);
		return OUTPOST_E_INTERNAL;
	}
	if (spool_open(cfg->db, cfg->log, cfg->spool_max_bytes, &lh->spool) < 0) {
		snprintf(msg, msglen, "cannot open the spool in the agent's database");
		lh_free(&lh->base);
		return OUTPOST_E_INTERNAL;
	}
	rc = lh_http_new(lh, msg, msglen);
	if (rc < 0) {
		lh_free(&lh->base);
		return rc;
	}
	*out = &lh->base;
	return 0;
oom:
	snprintf(msg, msglen, "out of memory");
	lh_free(&lh->base);
	return OUTPOST_E_INTERNAL;
}
