/* Metric batches from agents: POST /api/v1/agents/<id>/metrics (docs/protocol.md). Each batch
 * is checked, deduplicated by (host, epoch, seq) and appended to the time-series store; the
 * agent is answered only once a group commit has written it (tsdb_flush), so an answered
 * batch is on disk and the agent may drop it from its spool. Delivery is at least once,
 * storage exactly once. Loop thread only. */
#include "hub_impl.h"
#include "tsdb.h"
#include "core/buf.h"
#include "core/clk.h"
#include "core/conf.h"
#include "core/loop.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INGEST_BODY_MAX (4 << 20)
#define INGEST_BATCHES_MAX 256
#define INGEST_SAMPLES_MAX 20000
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
	struct ingest_wait *w, *next;
	int rc;

	if (!in)
		return;
	in->armed = 0;
	if (in->timer) {
		loop_timer_del(in->h->loop, in->timer);
		in->timer = NULL;
	}
	rc = in->h->tsdb ? tsdb_flush(in->h->tsdb) : 0;
	for (w = in->head; w; w = next) {
		next = w->next;
		if (rc == 0 && (!in->h->tsdb || tsdb_generation(in->h->tsdb) == w->gen))
			httpd_respond_ok(w->req, w->result);
		else {
			json_decref(w->result);
			httpd_respond_error(w->req, OUTPOST_E_UNAVAILABLE,
			                    "the hub could not store the batch; send it again");
		}
		free(w);
	}
	in->head = NULL;
	in->tail = &in->head;
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

/* A sample's value: a number, or "NaN", "+Inf", "-Inf". 0 or -1. */
static int sample_value(const json_t *v, double *out)
{
	const char *s;

	if (json_is_number(v)) {
		*out = json_number_value(v);
		return 0;
	}
	if (!(s = json_string_value(v)))
		return -1;
	if (strcmp(s, "NaN") == 0)
		*out = NAN;
	else if (strcmp(s, "+Inf") == 0)
		*out = INFINITY;
	else if (strcmp(s, "-Inf") == 0)
		*out = -INFINITY;
	else
		return -1;
	return 0;
}

static int epoch_ok(const char *e)
{
	size_t n = 0;

	if (!e)
		return 0;
	for (; e[n]; n++)
		if (!((e[n] >= '0' && e[n] <= '9') || (e[n] >= 'a' && e[n] <= 'f')))
			return 0;
	return n == 16;
}

/* One batch: appends its samples. NULL when stored, else why it was rejected (reason, the
 * whole batch). *stored and *bad count samples. */
static const char *ingest_batch(struct ingest *in, struct tsdb_host *th, const json_t *b,
                                int64_t now, int64_t *stored, int64_t *bad, char *msg,
                                size_t msglen)
{
	struct tsdb *db = in->h->tsdb;
	json_t *t = json_object_get(b, "t"), *samples = json_object_get(b, "samples"), *s;
	int64_t ts;
	size_t i;

	if (!json_is_integer(t) || !json_is_array(samples))
		return "a batch is {\"seq\", \"t\", \"samples\": [[key, value], ...]}";
	if (json_array_size(samples) > INGEST_SAMPLES_MAX)
		return "too many samples in one batch (at most 20000)";
	ts = json_integer_value(t);
	if (ts > now + INGEST_FUTURE_MS)
		return "t is more than 5 minutes ahead of the hub's clock";
	if (ts < now - tsdb_keep_ms(db, TSDB_RAW))
		return "t is older than the raw retention";
	json_array_foreach(samples, i, s)
	{
		const char *key = json_string_value(json_array_get(s, 0));
		double v;
		int rc;
		if (!json_is_array(s) || json_array_size(s) != 2 || !key ||
		    sample_value(json_array_get(s, 1), &v) < 0) {
			(*bad)++;
			continue;
		}
		rc = tsdb_append(db, th, key, json_string_length(json_array_get(s, 0)), ts, v, msg,
		                 msglen);
		if (rc == 0)
			(*stored)++;
		else if (rc < 0)
			(*bad)++;
		/* rc 1: the series already has this time (a replay): neither */
	}
	return NULL;
}

void ingest_agent_metrics(struct hub *h, struct httpd_req *req, struct hub_caller *c)
{
	struct ingest *in = h->ingest;
	json_t *body = NULL, *batches, *b, *rejected = NULL, *result;
	const char *epoch, *cur_epoch;
	struct tsdb_host *th;
	int64_t cur_seq, prev = 0, last = 0, now = clk_real_ms(), stored = 0, bad = 0;
	size_t len, i, nstored = 0, ndup = 0;
	char msg[256] = "";

	httpd_req_body(req, &len);
	if (len > INGEST_BODY_MAX) {
		in->requests_bad++;
		httpd_respond_error(req, OUTPOST_E_TOO_LARGE,
		                    "a metrics post is at most 4 MiB: send fewer batches at once");
		return;
	}
	if (httpd_req_json(req, &body) < 0) {
		in->requests_bad++;
		return;
	}
	epoch = json_string_value(json_object_get(body, "epoch"));
	batches = json_object_get(body, "batches");
	if (!epoch_ok(epoch) || !json_is_array(batches) || json_array_size(batches) == 0 ||
	    json_array_size(batches) > INGEST_BATCHES_MAX) {
		in->requests_bad++;
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "expected {\"epoch\": 16 hex digits, \"batches\": [1 to %d "
		                    "batches]}",
		                    INGEST_BATCHES_MAX);
		goto out;
	}
	json_array_foreach(batches, i, b)
	{
		json_t *seq = json_object_get(b, "seq");
		if (!json_is_integer(seq) || json_integer_value(seq) <= prev) {
			in->requests_bad++;
			httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
			                    "batch %zu: seq must be a positive integer, ascending",
			                    i);
			goto out;
		}
		prev = json_integer_value(seq);
	}
	if (!(th = tsdb_host_get(h->tsdb, c->host_id)) || !(rejected = json_array())) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		goto out;
	}
	tsdb_host_seq(th, &cur_epoch, &cur_seq);
	if (strcmp(cur_epoch, epoch) != 0)
		cur_seq = 0; /* the agent's database is new: its numbering starts again */
	json_array_foreach(batches, i, b)
	{
		int64_t seq = json_integer_value(json_object_get(b, "seq"));
		const char *why;
		last = seq;
		if (seq <= cur_seq) {
			ndup++;
			continue;
		}
		why = ingest_batch(in, th, b, now, &stored, &bad, msg, sizeof(msg));
		if (why) {
			json_array_append_new(rejected, json_pack("{s:I, s:s}", "seq",
			                                          (json_int_t)seq, "reason", why));
			log_warn(h->log, "metrics", "host %s: batch %lld rejected: %s", c->host_id,
			         (long long)seq, why);
		} else {
			nstored++;
		}
		tsdb_host_mark(h->tsdb, th, epoch, seq);
		cur_seq = seq;
	}
	if (bad && msg[0])
		log_warn(h->log, "metrics", "host %s: %lld samples refused, e.g.: %s", c->host_id,
		         (long long)bad, msg);
	in->batches += nstored;
	in->duplicates += ndup;
	in->rejected += json_array_size(rejected);
	in->samples += (unsigned long long)stored;
	in->samples_rejected += (unsigned long long)bad;
	result =
	    json_pack("{s:I, s:I, s:O, s:I, s:I, s:I}", "stored", (json_int_t)nstored, "duplicates",
	              (json_int_t)ndup, "rejected", rejected, "samples", (json_int_t)stored,
	              "samples_rejected", (json_int_t)bad, "last_seq", (json_int_t)last);
	if (!result) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		goto out;
	}
	/* Duplicates wait too: the first copy may still be in this very commit. */
	ingest_wait(in, req, result);
out:
	json_decref(rejected);
	json_decref(body);
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
	    "outpost_hub_metric_samples_total{outcome=\"rejected\"} %llu\n",
	    in->batches, in->duplicates, in->rejected, in->requests_bad, in->samples,
	    in->samples_rejected);
}
