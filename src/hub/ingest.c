/* Metric batches from agents: POST /api/v1/agents/<id>/metrics (docs/protocol.md), and the
 * events batches of the same spool (events.c stores those). Each batch
 * is checked, deduplicated by (host, epoch, seq) and appended to the time-series store; the
 * agent is answered only once a group commit has written it (tsdb_flush), so an answered
 * batch is on disk and the agent may drop it from its spool. Delivery is at least once,
 * storage exactly once. Loop thread only. */
#include "hub_impl.h"
#include "ingest.h"
#include "events.h"
#include "registry.h"
#include "batch.h"
#include "tsdb.h"
#include "rwrite.h"
#include "core/buf.h"
#include "core/clk.h"
#include "core/conf.h"
#include "core/loop.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INGEST_FUTURE_MS (5 * 60 * 1000LL)
/* A group commit waits at most this long for more requests to share it... */
#define INGEST_COMMIT_MS 50
/* ... or until this many samples wait. */
#define INGEST_COMMIT_SAMPLES 100000

struct ingest_wait {
	struct httpd_req *req;
	json_t *result; /* the answer once flushed */
	uint64_t gen;
	struct ingest_wait *next;
};

struct ingest {
	struct hub *h;
	struct ingest_wait *head, **tail;
	struct loop_timer *timer;
	int armed;
	unsigned long long batches, duplicates, rejected, samples, samples_rejected, requests_bad;
	unsigned long long samples_stale;
	int64_t stale_logged_ms; /* stale samples are logged at most once a minute */
};

int ingest_new(struct hub *h, struct ingest **out)
{
	struct ingest *in = calloc(1, sizeof(*in));

	if (!in)
		return OUTPOST_E_INTERNAL;
	in->h = h;
	in->tail = &in->head;
	*out = in;
	return 0;
}

/* Writes what waits and answers everyone waiting: ok when their samples are on disk, an error
 * to retry when the write failed (or an earlier failure lost what they sent). */
void ingest_commit(struct ingest *in)
{
	struct ingest_wait *w, *next, *list;
	uint64_t gen;
	int rc;

	if (!in)
		return;
	in->armed = 0;
	if (in->timer) {
		loop_timer_del(in->h->loop, in->timer);
		in->timer = NULL;
	}
	rc = in->h->tsdb ? tsdb_flush(in->h->tsdb) : 0;
	/* A failed write rolls the store back and the agents send again: so must remote_write
	 * (batches it already queued, full ones, may reach the receiver twice: same samples). */
	if (rc == 0)
		rwrite_flush(in->h->rwrite);
	else
		rwrite_discard(in->h->rwrite);
	gen = in->h->tsdb ? tsdb_generation(in->h->tsdb) : 0;
	/* Answering resumes connections, and the HTTP server may run a new request (and this
	 * function) before it returns: detach the list first. */
	list = in->head;
	in->head = NULL;
	in->tail = &in->head;
	for (w = list; w; w = next) {
		next = w->next;
		if (rc == 0 && gen == w->gen)
			httpd_respond_ok(w->req, w->result);
		else {
			json_decref(w->result);
			httpd_respond_error(w->req, OUTPOST_E_UNAVAILABLE,
			                    "the hub could not store the batch; send it again");
		}
		free(w);
	}
}

static void ingest_on_timer(void *arg)
{
	struct ingest *in = arg;

	in->timer = NULL; /* a one-shot timer is freed once it has fired */
	ingest_commit(in);
}

void ingest_free(struct ingest *in)
{
	if (!in)
		return;
	ingest_commit(in); /* and drops the timer */
	free(in);
}

/* Waits for the next group commit. Takes result. */
static void ingest_wait(struct ingest *in, struct httpd_req *req, json_t *result)
{
	struct ingest_wait *w = calloc(1, sizeof(*w));

	if (!w) {
		json_decref(result);
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		return;
	}
	w->req = req;
	w->result = result;
	w->gen = tsdb_generation(in->h->tsdb);
	*in->tail = w;
	in->tail = &w->next;
	if (tsdb_pending(in->h->tsdb) >= INGEST_COMMIT_SAMPLES) {
		ingest_commit(in);
		return;
	}
	if (in->armed)
		return;
	if (loop_timer_add(in->h->loop, INGEST_COMMIT_MS, 0, ingest_on_timer, in, &in->timer) < 0) {
		ingest_commit(in);
		return;
	}
	in->armed = 1;
}

/* What one post's samples go to: the host's series, counting as they are stored. */
struct ingest_run {
	struct tsdb *db;
	struct tsdb_host *th;
	const struct batch_post *post;
	struct rwrite *rw;
	const char *host;
	int64_t stored, bad, stale;
	char msg[256];
};

static int ingest_sample(void *arg, size_t i, const char *key, size_t keylen, double v)
{
	struct ingest_run *r = arg;
	int rc = tsdb_append(r->db, r->th, key, keylen, r->post->b[i].t, v, r->msg, sizeof(r->msg));

	if (rc == 0) {
		r->stored++;
		rwrite_add(r->rw, r->host, key, keylen, r->post->b[i].t, v);
	} else if (rc < 0) {
		r->bad++;
	} else {
		r->stale++; /* the series has a sample at or after t: a clock set back, a replay */
	}
	return 0;
}

/* POST /api/v1/agents/<id>/metrics: its route's body limit (4 MiB) refused a larger post as
 * it arrived (ingest_refused_large counts it). */
void ingest_agent_metrics(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct hub_caller *c = httpd_req_data(req);
	struct ingest *in = h->ingest;
	struct batch_post *post = NULL;
	struct ingest_run run = {h->tsdb, NULL, NULL, h->rwrite, c->host_id, 0, 0, 0, ""};
	uint8_t want[BATCH_MAX] = {0}, want_events[BATCH_MAX] = {0};
	json_t *rejected = NULL, *result;
	const char *body, *cur_epoch;
	int64_t cur_seq, now = clk_real_ms();
	size_t len, nstored = 0, ndup = 0, nevents = 0, nev_ok = 0;
	char msg[256];
	int rc;

	body = httpd_req_body(req, &len);
	if (!(post = malloc(sizeof(*post))) || !(rejected = json_array())) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		goto out;
	}
	/* A signed post is a sign of life, readable or not: an agent that ships every interval
	 * needs few beats of its own. */
	registry_alive(h, c);
	if ((rc = batch_scan(body, len, post, msg, sizeof(msg))) < 0) {
		in->requests_bad++;
		httpd_respond_error(req, rc, "%s", msg);
		goto out;
	}
	if (!(run.th = tsdb_host_get(h->tsdb, c->host_id))) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		goto out;
	}
	/* Hubs sharing a store: the host may have shipped to another hub since. */
	if (tsdb_host_sync(h->tsdb, run.th) < 0) {
		httpd_respond_error(req, OUTPOST_E_UNAVAILABLE,
		                    "the hub cannot reach its metrics store; send the batch again");
		goto out;
	}
	run.post = post;
	tsdb_host_seq(run.th, &cur_epoch, &cur_seq);
	if (strcmp(cur_epoch, post->epoch) != 0)
		cur_seq = 0; /* the agent's database is new: its numbering starts again */
	for (size_t i = 0; i < post->n; i++) {
		struct batch_info *b = &post->b[i];
		if (b->seq <= cur_seq) {
			ndup++;
			continue;
		}
		if (b->events) {
			/* The same spool's other stream: stored by events.c below, deduplicated
			 * there too (a replay after a failed commit finds its keys). */
			if (b->bad)
				json_array_append_new(rejected, json_pack("{s:I, s:s}", "seq",
				                                          (json_int_t)b->seq,
				                                          "reason", b->bad));
			else
				want_events[i] = 1, nevents++;
			continue;
		}
		if (!b->bad && b->t > now + INGEST_FUTURE_MS)
			b->bad = "t is more than 5 minutes ahead of the hub's clock";
		if (!b->bad && b->t < now - tsdb_keep_ms(h->tsdb, TSDB_RAW))
			b->bad = "t is older than the raw retention";
		if (b->bad) {
			json_array_append_new(
			    rejected,
			    json_pack("{s:I, s:s}", "seq", (json_int_t)b->seq, "reason", b->bad));
			log_warn(h->log, "metrics", "host %s: batch %lld rejected: %s", c->host_id,
			         (long long)b->seq, b->bad);
		} else {
			want[i] = 1;
			nstored++;
		}
	}
	/* Events first: a store that fails here leaves the seq unmarked, and the agent sends
	 * the whole post again. */
	if (nevents && (rc = events_from_agent(h, c->host_id, body, len, post, want_events)) < 0) {
		httpd_respond_error(req, OUTPOST_E_UNAVAILABLE,
		                    "the hub could not store the events; send the batch again");
		goto out;
	}
	for (size_t i = 0; i < post->n; i++) {
		if (!want_events[i])
			continue;
		if (post->b[i].bad)
			json_array_append_new(rejected, json_pack("{s:I, s:s}", "seq",
			                                          (json_int_t)post->b[i].seq,
			                                          "reason", post->b[i].bad));
		else
			nev_ok++;
	}
	if (nstored && (rc = batch_samples(body, len, want, ingest_sample, &run, &run.bad)) < 0) {
		/* The first pass read these very bytes: only memory can fail here. */
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "reading the samples failed");
		goto out;
	}
	if (post->b[post->n - 1].seq > cur_seq)
		tsdb_host_mark(h->tsdb, run.th, post->epoch, post->b[post->n - 1].seq);
	if (run.bad && run.msg[0])
		log_warn(h->log, "metrics", "host %s: %lld samples refused, e.g.: %s", c->host_id,
		         (long long)run.bad, run.msg);
	nstored += nev_ok;
	in->batches += nstored;
	in->duplicates += ndup;
	in->rejected += json_array_size(rejected);
	in->samples += (unsigned long long)run.stored;
	in->samples_rejected += (unsigned long long)run.bad;
	in->samples_stale += (unsigned long long)run.stale;
	if (run.stale && clk_mono_ms() - in->stale_logged_ms >= 60000) {
		in->stale_logged_ms = clk_mono_ms();
		log_info(
		    h->log, "metrics",
		    "host %s: %lld sample(s) not stored: their series has a newer one (a clock "
		    "set back?)",
		    c->host_id, (long long)run.stale);
	}
	result = json_pack("{s:I, s:I, s:O, s:I, s:I, s:I, s:I}", "stored", (json_int_t)nstored,
	                   "duplicates", (json_int_t)ndup, "rejected", rejected, "samples",
	                   (json_int_t)run.stored, "samples_rejected", (json_int_t)run.bad,
	                   "samples_stale", (json_int_t)run.stale, "last_seq",
	                   (json_int_t)post->b[post->n - 1].seq);
	if (!result) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		goto out;
	}
	/* Duplicates wait too: the first copy may still be in this very commit. */
	ingest_wait(in, req, result);
out:
	json_decref(rejected);
	free(post);
}

void ingest_refused_large(struct ingest *in)
{
	if (in)
		in->requests_bad++;
}

void ingest_stats(const struct ingest *in, struct buf *b)
{
	if (!in)
		return;
	buf_printf(
	    b,
	    "# HELP outpost_hub_metric_batches_total Metric batches from agents, by outcome.\n"
	    "# TYPE outpost_hub_metric_batches_total counter\n"
	    "outpost_hub_metric_batches_total{outcome=\"stored\"} %llu\n"
	    "outpost_hub_metric_batches_total{outcome=\"duplicate\"} %llu\n"
	    "outpost_hub_metric_batches_total{outcome=\"rejected\"} %llu\n"
	    "# TYPE outpost_hub_metric_requests_bad_total counter\n"
	    "outpost_hub_metric_requests_bad_total %llu\n"
	    "# HELP outpost_hub_metric_samples_total Samples from agents, by outcome.\n"
	    "# TYPE outpost_hub_metric_samples_total counter\n"
	    "outpost_hub_metric_samples_total{outcome=\"stored\"} %llu\n"
	    "outpost_hub_metric_samples_total{outcome=\"rejected\"} %llu\n"
	    "outpost_hub_metric_samples_total{outcome=\"stale\"} %llu\n",
	    in->batches, in->duplicates, in->rejected, in->requests_bad, in->samples,
	    in->samples_rejected, in->samples_stale);
}
