/* Tests for src/agent/link_http.c against a fake hub served by our own httpd (TLS with a test
 * certificate) on the same loop: first-use pinning, enrollment (pending, then accepted),
 * signed requests, the long-poll, beats, results through the outbox, backoff, re-enrollment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "agent/link.h"
#include "core/clk.h"
#include "core/db.h"
#include "core/httpd.h"
#include "core/loop.h"
#include "core/sec.h"
#include "core/wire.h"

#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOST "web-01"

/* ---- the fake hub ---- */

struct hub {
	struct loop *loop;
	struct httpd *httpd;
	struct logger *log;
	uint8_t pk[SEC_PK_BYTES], sk[SEC_SK_BYTES];
	uint8_t agent_pk[SEC_PK_BYTES];
	int have_agent;
	const char *enroll_state; /* "up" or "pending" */
	int enroll_code;          /* while set, enrollment is refused with this code... */
	const char *enroll_msg;   /* ...and this message */
	int enrolls, polls, resumes, beats, bad_sigs, health;
	int unauthorized;      /* answer polls 401 while set */
	int beat_unauthorized; /* answer beats 401 while set */
	int fail_results;      /* answer results 503 this many times */
	int fail_polls;        /* answer polls and beats 503 this many times */
	int count_requests;    /* beat answers say every request counts as a beat */
	int hold_polls;        /* keep long-polls unanswered (no sign of life but beats) */
	json_t *queue;         /* signed tasks to hand out */
	json_t *results;       /* what arrived */
	json_t *beat_facts;    /* the last facts a beat carried */
	struct httpd_req *waiting;
	struct loop_timer *wait_timer;
};

static void hub_error(struct httpd_req *req, int code, const char *msg)
{
	httpd_respond_error(req, code, "%s", msg);
}

static int hub_verify(struct hub *h, struct httpd_req *req)
{
	const char *t = httpd_req_header(req, "X-Outpost-Time");
	const char *sig = httpd_req_header(req, "X-Outpost-Signature");
	const char *host = httpd_req_header(req, "X-Outpost-Host");
	size_t len;
	const char *body = httpd_req_body(req, &len);
	char hex[65], msg[1024];

	if (!t || !sig || !host || strcmp(host, HOST) || !h->have_agent)
		goto bad;
	sec_sha256_hex(body, len, hex);
	snprintf(msg, sizeof(msg), "%s\n%s\n%s\n%s", httpd_req_method(req), httpd_req_uri(req), t,
	         hex);
	if (sec_verify_b64(h->agent_pk, msg, strlen(msg), sig) == 0)
		return 0;
bad:
	h->bad_sigs++;
	hub_error(req, OUTPOST_E_UNAUTHORIZED, "bad signature");
	return -1;
}

static void hub_answer_tasks(struct hub *h, struct httpd_req *req)
{
	httpd_respond_ok(req, json_pack("{s:O}", "tasks", h->queue));
	json_array_clear(h->queue);
}

static void hub_on_wait_end(void *arg)
{
	struct hub *h = arg;

	h->wait_timer = NULL;
	if (h->waiting)
		hub_answer_tasks(h, h->waiting);
	h->waiting = NULL;
}

static void hub_health(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	h->health++;
	httpd_respond_ok(req, json_pack("{s:s}", "version", "test"));
}

static void hub_enroll(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *b = NULL;
	char *key;

	if (httpd_req_json(req, &b) < 0)
		return;
	h->enrolls++;
	if (sec_unb64(json_string_value(json_object_get(b, "pubkey")), h->agent_pk, SEC_PK_BYTES) <
	        0 ||
	    strcmp(json_string_value(json_object_get(b, "host_id")), HOST) ||
	    !json_is_object(json_object_get(b, "facts"))) {
		hub_error(req, OUTPOST_E_BAD_ARGS, "bad enrollment");
		json_decref(b);
		return;
	}
	if (h->enroll_code) {
		hub_error(req, h->enroll_code, h->enroll_msg);
		json_decref(b);
		return;
	}
	h->have_agent = 1;
	h->unauthorized = 0;
	h->beat_unauthorized = 0;
	key = sec_b64(h->pk, SEC_PK_BYTES);
	httpd_respond_ok(req, json_pack("{s:s, s:s, s:s}", "host_id", HOST, "state",
	                                h->enroll_state, "hub_pubkey", key));
	free(key);
	json_decref(b);
}

static void hub_agent_get(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;

	if (hub_verify(h, req) < 0)
		return;
	h->polls++;
	if (h->unauthorized) {
		hub_error(req, OUTPOST_E_UNAUTHORIZED, "unknown host");
		return;
	}
	if (h->fail_polls > 0) {
		h->fail_polls--;
		hub_error(req, OUTPOST_E_UNAVAILABLE, "restarting");
		return;
	}
	if (strstr(httpd_req_uri(req), "&resume=1"))
		h->resumes++;
	if (json_array_size(h->queue) > 0) {
		hub_answer_tasks(h, req);
		return;
	}
	/* A short long-poll: the test must not wait 30 s. */
	h->waiting = req;
	if (!h->hold_polls)
		loop_timer_add(h->loop, 300, 0, hub_on_wait_end, h, &h->wait_timer);
}

static void hub_agent_post(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	const char *tail = httpd_req_tail(req);
	json_t *b = NULL, *r;
	size_t i;

	if (hub_verify(h, req) < 0 || httpd_req_json(req, &b) < 0)
		return;
	if (strcmp(tail, HOST "/beat") == 0 && h->beat_unauthorized) {
		hub_error(req, OUTPOST_E_UNAUTHORIZED, "this host was revoked");
	} else if (strcmp(tail, HOST "/beat") == 0 && h->fail_polls > 0) {
		h->fail_polls--;
		hub_error(req, OUTPOST_E_UNAVAILABLE, "restarting");
	} else if (strcmp(tail, HOST "/beat") == 0) {
		h->beats++;
		if (json_object_get(b, "facts")) {
			json_decref(h->beat_facts);
			h->beat_facts = json_incref(json_object_get(b, "facts"));
		}
		httpd_respond_ok(req, json_pack("{s:i, s:b}", "interval_ms", 1000,
		                                "requests_count_as_beats", h->count_requests));
	} else if (strcmp(tail, HOST "/results") == 0) {
		if (h->fail_results > 0) {
			h->fail_results--;
			hub_error(req, OUTPOST_E_UNAVAILABLE, "store busy");
		} else {
			json_array_foreach(json_object_get(b, "results"), i, r)
			    json_array_append(h->results, r);
			httpd_respond_ok(req, json_pack("{s:I}", "accepted",
			                                (json_int_t)json_array_size(
			                                    json_object_get(b, "results"))));
		}
	} else {
		hub_error(req, OUTPOST_E_NOT_FOUND, "no such route");
	}
	json_decref(b);
}

static const struct httpd_route hub_routes[] = {
    {"GET", "/api/v1/health", hub_health, 0, 0},
    {"POST", "/api/v1/enroll", hub_enroll, 0, 1 << 20},
    {"GET", "/api/v1/agents/*/*", hub_agent_get, 0, 0},
    {"POST", "/api/v1/agents/*/*", hub_agent_post, 0, 8 << 20},
};

static char *read_text(const char *name)
{
	char path[512], *text = NULL;
	const char *src = getenv("OUTPOST_SRC");
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/tests/agent/fixtures/%s", src ? src : ".", name);
	f = fopen(path, "re");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = calloc(1, (size_t)n + 1);
	assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return text;
}

/* ---- fixture ---- */

struct fx {
	char dir[64];
	char url[64];
	struct logger log;
	struct loop *loop;
	sqlite3 *db;
	struct hub hub;
	char *cert, *key;
	struct link *link;
	json_t *tasks; /* what the link handed in */
	const char *token, *fingerprint, *ca;
	int64_t refused_retry_ms;
};

static void on_task(void *arg, const json_t *t)
{
	struct fx *f = arg;
	json_array_append(f->tasks, (json_t *)t);
}

static void hub_start(struct fx *f, int tls)
{
	struct httpd_config hc = {.listen = "127.0.0.1:0",
	                          .routes = hub_routes,
	                          .nroutes = sizeof(hub_routes) / sizeof(hub_routes[0]),
	                          .ctx = &f->hub,
	                          .log = &f->log};
	char msg[256];

	if (tls) {
		hc.tls_cert_pem = f->cert;
		hc.tls_key_pem = f->key;
	}
	assert_int_equal(httpd_start(f->loop, &hc, &f->hub.httpd, msg, sizeof(msg)), 0);
	snprintf(f->url, sizeof(f->url), "%s://127.0.0.1:%u", tls ? "https" : "http",
	         httpd_port(f->hub.httpd));
}

static void link_start(struct fx *f)
{
	struct link_config lc = {.loop = f->loop,
	                         .log = &f->log,
	                         .db = f->db,
	                         .state_dir = f->dir,
	                         .url = f->url,
	                         .token = f->token,
	                         .ca = f->ca,
	                         .fingerprint = f->fingerprint,
	                         .host_id = HOST,
	                         .refused_retry_ms = f->refused_retry_ms,
	                         .on_task = on_task,
	                         .arg = f};
	char msg[256] = "";

	assert_int_equal(link_http_new(&lc, &f->link, msg, sizeof(msg)), 0);
	assert_int_equal(f->link->ops->start(f->link, msg, sizeof(msg)), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char path[128], msg[256];

	assert_int_equal(sec_init(), 0);
	strcpy(f->dir, "/tmp/outpost-link-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	log_init(&f->log, "test", OUTPOST_LOG_ERROR, LOG_TO_STDERR);
	assert_int_equal(loop_new(&f->loop), 0);
	snprintf(path, sizeof(path), "%s/agent.db", f->dir);
	assert_int_equal(db_open(path, &f->db, msg, sizeof(msg)), 0);
	f->cert = read_text("hub-test.crt");
	f->key = read_text("hub-test.key");
	f->hub.loop = f->loop;
	f->hub.enroll_state = "up";
	f->hub.queue = json_array();
	f->hub.results = json_array();
	crypto_sign_keypair(f->hub.pk, f->hub.sk);
	f->tasks = json_array();
	f->token = "enroll-secret";
	*state = f;
	return 0;
}

static int rm_one(const char *p, const struct stat *s, int fl, struct FTW *w)
{
	(void)s, (void)fl, (void)w;
	return remove(p);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	link_free(f->link);
	loop_timer_del(f->loop, f->hub.wait_timer);
	httpd_stop(f->hub.httpd);
	loop_run_once(f->loop, 0);
	db_close(f->db);
	loop_free(f->loop);
	json_decref(f->hub.queue);
	json_decref(f->hub.results);
	json_decref(f->hub.beat_facts);
	json_decref(f->tasks);
	free(f->cert);
	free(f->key);
	nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Turns the loop until *v >= want or ms pass; returns *v. */
static int run_until(struct fx *f, const int *v, int want, int64_t ms)
{
	int64_t end = clk_mono_ms() + ms;

	while (*v < want && clk_mono_ms() < end)
		loop_run_once(f->loop, 20);
	return *v;
}

static int nresults(struct fx *f);
static int ntasks(struct fx *f);

/* Turns the loop until get(f) >= want or ms pass; returns get(f). */
static int wait_for(struct fx *f, int (*get)(struct fx *), int want, int64_t ms)
{
	int64_t end = clk_mono_ms() + ms;

	while (get(f) < want && clk_mono_ms() < end)
		loop_run_once(f->loop, 20);
	return get(f);
}

static void run_for(struct fx *f, int64_t ms)
{
	int64_t end = clk_mono_ms() + ms;

	while (clk_mono_ms() < end)
		loop_run_once(f->loop, 20);
}

static int nresults(struct fx *f)
{
	return (int)json_array_size(f->hub.results);
}

static int ntasks(struct fx *f)
{
	return (int)json_array_size(f->tasks);
}

static int64_t status_int(struct fx *f, const char *key);

static int connected(struct fx *f)
{
	return (int)status_int(f, "connected");
}

static json_t *status(struct fx *f)
{
	return f->link->ops->status(f->link);
}

static int64_t status_int(struct fx *f, const char *key)
{
	json_t *s = status(f), *j = json_object_get(s, key);
	int64_t v = json_is_boolean(j) ? json_is_true(j) : json_integer_value(j);
	json_decref(s);
	return v;
}

static void report(struct fx *f, const char *id, const char *state)
{
	json_t *r = json_pack("{s:s, s:s, s:n, s:i, s:i}", "task_id", id, "state", state,
	                      "response", "started_ms", 1, "finished_ms", 2);
	assert_int_equal(f->link->ops->report(f->link, r), 0);
	json_decref(r);
}

static void file_mode_is_0600(const char *dir, const char *name)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

/* ---- tests ---- */

static void test_first_use_pins_the_certificate_then_enrolls_and_runs(void **state)
{
	struct fx *f = *state;
	uint8_t pk[SEC_PK_BYTES];
	char path[256], *pinned;
	json_t *t;

	hub_start(f, 1);
	link_start(f);
	assert_int_equal(run_until(f, &f->hub.polls, 1, 5000), 1);
	assert_int_equal(f->hub.health, 1); /* the probe, without credentials */
	assert_int_equal(f->hub.enrolls, 1);
	assert_int_equal(f->hub.resumes, 1);
	assert_int_equal(f->hub.bad_sigs, 0);
	/* The pinned certificate is the hub's, byte for byte. */
	snprintf(path, sizeof(path), "%s/hub.crt", f->dir);
	pinned = NULL;
	{
		FILE *fp = fopen(path, "re");
		char buf[4096] = "";
		assert_non_null(fp);
		assert_true(fread(buf, 1, sizeof(buf) - 1, fp) > 0);
		fclose(fp);
		pinned = strdup(buf);
	}
	assert_string_equal(pinned, f->cert);
	free(pinned);
	file_mode_is_0600(f->dir, "hub.crt");
	file_mode_is_0600(f->dir, "hub.json");
	file_mode_is_0600(f->dir, "agent.key");
	assert_int_equal(f->link->ops->hub_key(f->link, pk), 0);
	assert_memory_equal(pk, f->hub.pk, SEC_PK_BYTES);

	/* A task handed out reaches the callback as the hub sent it. */
	t = json_pack("{s:{s:s}, s:s}", "task", "task_id", "t-1", "sig", "x");
	json_array_append_new(f->hub.queue, t);
	assert_int_equal(wait_for(f, ntasks, 1, 3000), 1);
	assert_string_equal(json_string_value(json_object_get(
	                        json_object_get(json_array_get(f->tasks, 0), "task"), "task_id")),
	                    "t-1");

	/* Results go out signed and leave the outbox once acknowledged. */
	report(f, "t-1", "running");
	report(f, "t-1", "ok");
	wait_for(f, nresults, 1, 3000);
	run_for(f, 200);
	assert_int_equal(status_int(f, "outbox_depth"), 0);
	assert_string_equal(json_string_value(json_object_get(
	                        json_array_get(f->hub.results, nresults(f) - 1), "state")),
	                    "ok");
	/* Beats come; facts ride along when they changed. */
	{
		json_t *facts = json_pack("{s:{s:s}}", "host", "hostname", "web-01");
		int64_t end = clk_mono_ms() + 3000;
		int beats;
		f->link->ops->facts(f->link, facts);
		/* (A beat already on its way when the facts changed carries none.) */
		while (!f->hub.beat_facts && clk_mono_ms() < end)
			loop_run_once(f->loop, 20);
		assert_true(json_equal(f->hub.beat_facts, facts));
		json_decref(f->hub.beat_facts);
		f->hub.beat_facts = NULL;
		beats = f->hub.beats;
		assert_true(run_until(f, &f->hub.beats, beats + 1, 3000) > beats);
		assert_null(f->hub.beat_facts);
		json_decref(facts);
	}
	assert_int_equal(f->hub.bad_sigs, 0);
	{
		json_t *s = status(f);
		assert_true(json_is_true(json_object_get(s, "connected")));
		assert_string_equal(json_string_value(json_object_get(s, "state")), "up");
		json_decref(s);
	}
}

static void test_fingerprint_that_does_not_match_is_not_pinned(void **state)
{
	struct fx *f = *state;
	char path[256];

	f->fingerprint = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
	hub_start(f, 1);
	link_start(f);
	run_until(f, &f->hub.health, 1, 3000);
	run_for(f, 300);
	snprintf(path, sizeof(path), "%s/hub.crt", f->dir);
	assert_int_not_equal(access(path, F_OK), 0);
	assert_int_equal(f->hub.enrolls, 0);
}

static void test_matching_fingerprint_is_pinned(void **state)
{
	struct fx *f = *state;
	/* The form openssl prints (colons, capitals) is accepted as well as the hub's. */
	f->fingerprint = "SHA256:14:59:02:41:96:32:F3:43:99:3E:A3:E0:40:B0:FD:8E:10:2A:E0:43:3D:"
	                 "C1:BE:E6:9D:18:EB:16:B1:74:59:13";
	hub_start(f, 1);
	link_start(f);
	assert_int_equal(run_until(f, &f->hub.polls, 1, 5000), 1);
}

static void test_a_hub_with_another_certificate_is_refused(void **state)
{
	struct fx *f = *state;
	char path[256], *other = read_text("hub-other.crt");
	json_t *s;
	FILE *fp;

	/* Pinned earlier: a different certificate. */
	snprintf(path, sizeof(path), "%s/hub.crt", f->dir);
	fp = fopen(path, "we");
	fputs(other, fp);
	fclose(fp);
	free(other);
	hub_start(f, 1);
	link_start(f);
	run_for(f, 1500);
	assert_int_equal(f->hub.enrolls, 0);
	assert_int_equal(f->hub.health, 0);
	s = status(f);
	assert_non_null(strstr(json_string_value(json_object_get(s, "last_error")), "pinned"));
	json_decref(s);
}

static void test_configured_ca_verifies_the_hub(void **state)
{
	struct fx *f = *state;
	char path[512];

	snprintf(path, sizeof(path), "%s/tests/agent/fixtures/hub-test.crt",
	         getenv("OUTPOST_SRC") ? getenv("OUTPOST_SRC") : ".");
	f->ca = path;
	hub_start(f, 1);
	link_start(f);
	assert_int_equal(run_until(f, &f->hub.polls, 1, 5000), 1);
	assert_int_equal(f->hub.health, 0); /* no probe: the CA decides */
}

static void test_pending_host_retries_until_accepted(void **state)
{
	struct fx *f = *state;
	uint8_t pk[SEC_PK_BYTES];

	f->token = NULL;
	f->hub.enroll_state = "pending";
	hub_start(f, 0);
	link_start(f);
	assert_true(run_until(f, &f->hub.enrolls, 2, 5000) >= 2);
	assert_int_equal(f->hub.polls, 0);
	/* Pending already pins the hub's key: tasks can be verified once accepted. */
	assert_int_equal(f->link->ops->hub_key(f->link, pk), 0);
	f->hub.enroll_state = "up";
	assert_int_equal(run_until(f, &f->hub.polls, 1, 8000), 1);
}

static void test_results_wait_in_order_while_the_hub_refuses_them(void **state)
{
	struct fx *f = *state;

	hub_start(f, 0);
	f->hub.fail_results = 2;
	link_start(f);
	run_until(f, &f->hub.polls, 1, 5000);
	report(f, "a", "ok");
	report(f, "b", "failed");
	report(f, "c", "timeout");
	assert_int_equal(wait_for(f, nresults, 3, 8000), 3);
	assert_int_equal(f->hub.fail_results, 0);
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(f->hub.results, 0), "task_id")), "a");
	assert_string_equal(
	    json_string_value(json_object_get(json_array_get(f->hub.results, 2), "task_id")), "c");
	run_for(f, 100);
	assert_int_equal(status_int(f, "outbox_depth"), 0);
}

static void test_results_survive_a_restart_of_the_agent(void **state)
{
	struct fx *f = *state;

	hub_start(f, 0);
	f->hub.fail_results = 1000000;
	link_start(f);
	run_until(f, &f->hub.polls, 1, 5000);
	report(f, "r-1", "ok");
	run_for(f, 300);
	assert_int_equal(nresults(f), 0);
	link_free(f->link);
	f->link = NULL;

	/* A new life: enrolled already (hub.json), the outbox still holds the result. */
	f->hub.fail_results = 0;
	f->hub.polls = 0;
	link_start(f);
	assert_int_equal(status_int(f, "outbox_depth"), 1);
	assert_int_equal(wait_for(f, nresults, 1, 5000), 1);
	assert_int_equal(f->hub.enrolls, 1); /* not enrolled twice */
	/* Each life starts with resume. */
	assert_int_equal(run_until(f, &f->hub.resumes, 2, 5000), 2);
}

static void test_hub_trouble_backs_off_and_reconnects(void **state)
{
	struct fx *f = *state;
	int polls;

	hub_start(f, 0);
	link_start(f);
	run_until(f, &f->hub.polls, 1, 5000);
	run_for(f, 400); /* the first long-poll ends: connected */
	f->hub.fail_polls = 1000000;
	polls = f->hub.polls;
	run_for(f, 2000);
	/* Without backoff this would be hundreds; with it (0.5 s doubling, full jitter) a
	 * handful. */
	assert_true(f->hub.polls - polls >= 2);
	assert_true(f->hub.polls - polls <= 10);
	assert_int_equal(status_int(f, "connected"), 0);
	f->hub.fail_polls = 0;
	polls = f->hub.resumes;
	assert_int_equal(wait_for(f, connected, 1, 30000), 1);
	/* At least once: a long-poll the hub took before the trouble may answer in between. */
	assert_true(status_int(f, "reconnects") >= 1);
	/* After trouble, the next poll asks for tasks an answer lost on the way may have held. */
	assert_true(run_until(f, &f->hub.resumes, polls + 1, 30000) > polls);
}

static void test_unknown_to_the_hub_enrolls_again(void **state)
{
	struct fx *f = *state;

	hub_start(f, 0);
	link_start(f);
	run_until(f, &f->hub.polls, 1, 5000);
	f->hub.unauthorized = 1;
	assert_int_equal(run_until(f, &f->hub.enrolls, 2, 5000), 2);
	assert_true(run_until(f, &f->hub.polls, 3, 5000) >= 3);
}

static void test_any_signed_request_refused_sends_back_to_enrollment(void **state)
{
	struct fx *f = *state;
	int64_t t0;

	hub_start(f, 0);
	link_start(f);
	run_until(f, &f->hub.beats, 1, 5000);
	/* Only beats are refused: the agent must not wait for its long-poll to learn it. */
	f->hub.beat_unauthorized = 1;
	t0 = clk_mono_ms();
	assert_int_equal(run_until(f, &f->hub.enrolls, 2, 5000), 2);
	assert_true(clk_mono_ms() - t0 < 3000);
}

static char *status_str(struct fx *f, const char *key)
{
	json_t *s = status(f);
	const char *v = json_string_value(json_object_get(s, key));
	char *copy = strdup(v ? v : "");
	json_decref(s);
	return copy;
}

static void assert_status_str(struct fx *f, const char *key, const char *want)
{
	char *got = status_str(f, key);
	assert_string_equal(got, want);
	free(got);
}

/* A rejected host: its status says so, and it asks again only every refused_retry_ms, not
 * with the backoff of a hub in trouble; once an operator accepts it, it starts by itself. */
static void test_rejected_host_says_so_and_asks_again_rarely(void **state)
{
	struct fx *f = *state;
	char *err;

	f->token = NULL;
	f->refused_retry_ms = 1500;
	f->hub.enroll_code = OUTPOST_E_FORBIDDEN;
	f->hub.enroll_msg = "host id " HOST " was rejected by an operator";
	hub_start(f, 0);
	link_start(f);
	assert_int_equal(run_until(f, &f->hub.enrolls, 1, 5000), 1);
	run_for(f, 1300); /* the backoff of a failure would have asked 2 or 3 times by now */
	assert_int_equal(f->hub.enrolls, 1);
	assert_status_str(f, "state", "rejected");
	assert_status_str(f, "phase", "enrolling");
	err = status_str(f, "last_error");
	assert_non_null(strstr(err, "'outpost hosts accept web-01' undoes it"));
	free(err);
	assert_int_equal(run_until(f, &f->hub.enrolls, 2, 2000), 2);
	assert_status_str(f, "state", "rejected");

	/* An operator accepts it: picked up at the next attempt. */
	f->hub.enroll_code = 0;
	assert_true(run_until(f, &f->hub.polls, 1, 5000) >= 1);
	assert_status_str(f, "state", "up");
	assert_int_equal(f->hub.enrolls, 3);
}

/* Revoked, or another key under this id: the same, with the default of 10 minutes. */
static void test_revoked_host_waits_ten_minutes_between_attempts(void **state)
{
	static const struct {
		int code;
		const char *msg, *state;
	} cases[] = {
	    {OUTPOST_E_FORBIDDEN, "host id " HOST " was revoked", "revoked"},
	    {OUTPOST_E_CONFLICT, "host id " HOST " is enrolled with another key", "refused"},
	};
	struct fx *f = *state;

	hub_start(f, 0);
	for (int i = 0; i < 2; i++) {
		f->hub.enroll_code = cases[i].code;
		f->hub.enroll_msg = cases[i].msg;
		link_start(f);
		assert_int_equal(run_until(f, &f->hub.enrolls, i + 1, 5000), i + 1);
		run_for(f, 1500);
		assert_int_equal(f->hub.enrolls, i + 1);
		assert_status_str(f, "state", cases[i].state);
		link_free(f->link);
		f->link = NULL;
	}
}

/* A hub that counts every request as a sign of life: while other requests get through (here
 * long-polls, answered every 300 ms), no separate beat goes out; changed facts still do at
 * once, and beats come back as soon as nothing else reaches the hub. An older hub (that does
 * not say so) gets a beat every interval whatever else it gets. */
static void test_requests_stand_in_for_beats_when_the_hub_counts_them(void **state)
{
	struct fx *f = *state;
	json_t *facts = json_pack("{s:{s:s}}", "host", "hostname", "web-02");
	int beats;

	hub_start(f, 0);
	link_start(f);
	run_until(f, &f->hub.beats, 1, 5000);
	/* The older hub: a beat every 1.0-1.2 s, polls or not. */
	beats = f->hub.beats;
	run_for(f, 2600);
	assert_true(f->hub.beats - beats >= 2);
	/* The hub now counts requests: from its next beat answer on, polls stand in. */
	f->hub.count_requests = 1;
	run_until(f, &f->hub.beats, f->hub.beats + 1, 3000);
	beats = f->hub.beats;
	run_for(f, 3000);
	assert_int_equal(f->hub.beats - beats, 0);
	assert_int_equal(status_int(f, "beats_sent"), beats);
	/* New facts go at once, in a beat of their own. */
	json_decref(f->hub.beat_facts);
	f->hub.beat_facts = NULL;
	f->link->ops->facts(f->link, facts);
	assert_int_equal(run_until(f, &f->hub.beats, beats + 1, 500), beats + 1);
	assert_true(json_equal(f->hub.beat_facts, facts));
	/* Nothing else reaches the hub: beats again, an interval after the last poll. */
	f->hub.hold_polls = 1;
	beats = f->hub.beats;
	run_for(f, 3000);
	assert_true(f->hub.beats - beats >= 2);
	assert_int_equal(f->hub.bad_sigs, 0);
	json_decref(facts);
}

static void test_bad_urls_are_refused(void **state)
{
	char msg[256];

	(void)state;
	assert_int_equal(link_http_check_url("https://hub.example:8443", msg, sizeof(msg)), 0);
	assert_int_equal(link_http_check_url("https://hub.example/", msg, sizeof(msg)), 0);
	assert_int_equal(link_http_check_url("http://127.0.0.1:8080", msg, sizeof(msg)), 0);
	assert_int_equal(link_http_check_url("http://[::1]:8080", msg, sizeof(msg)), 0);
	assert_int_equal(link_http_check_url("http://localhost:8080", msg, sizeof(msg)), 0);
	assert_int_equal(link_http_check_url("http://hub.example:8080", msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "this host"));
	assert_int_equal(link_http_check_url("http://10.0.0.1", msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_int_equal(link_http_check_url("ftp://hub.example", msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_int_equal(link_http_check_url("https://hub.example/api", msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_int_equal(link_http_check_url("https://u:p@hub.example", msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_int_equal(link_http_check_url("https://hub.example?x=1", msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_int_equal(link_http_check_url("not a url", msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_first_use_pins_the_certificate_then_enrolls_and_runs),
	    T(test_fingerprint_that_does_not_match_is_not_pinned),
	    T(test_matching_fingerprint_is_pinned),
	    T(test_a_hub_with_another_certificate_is_refused),
	    T(test_configured_ca_verifies_the_hub),
	    T(test_pending_host_retries_until_accepted),
	    T(test_results_wait_in_order_while_the_hub_refuses_them),
	    T(test_results_survive_a_restart_of_the_agent),
	    T(test_hub_trouble_backs_off_and_reconnects),
	    T(test_unknown_to_the_hub_enrolls_again),
	    T(test_any_signed_request_refused_sends_back_to_enrollment),
	    T(test_rejected_host_says_so_and_asks_again_rarely),
	    T(test_revoked_host_waits_ten_minutes_between_attempts),
	    T(test_requests_stand_in_for_beats_when_the_hub_counts_them),
	    cmocka_unit_test(test_bad_urls_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
