/* remote_write export (docs/metrics.md#remote-write): every sample the hub stores (after the
 * dedupe) goes on to each configured Prometheus-compatible receiver, as remote-write 1.0
 * (protobuf, snappy, POST). The loop thread only copies samples into a batch and hands full
 * batches to a worker thread per target; when a target's queue is over its bound the batch
 * is dropped and counted, so a slow or dead receiver never holds up ingest. */
#include "hpost.h"
#include "rwrite.h"
#include "remote.pb-c.h"
#include "core/buf.h"
#include "hub_conf.h"
#include "core/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <outpost/plugin.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RW_BACKOFF_MIN_MS 100
#define RW_BACKOFF_MAX_MS 10000
#define RW_LABELS_MAX 40 /* a key's labels (tsdb.h: 32) + __name__ + host */

/* One sample: "host\0key\0" in text, parsed in place by the worker. */
struct rw_sample {
	char *text;
	int64_t t;
	double v;
};

struct rw_batch {
	struct rw_sample *s;
	size_t n, cap;
	struct rw_batch *next;
};

struct rw_target {
	struct rwrite *rw;
	size_t idx;
	char *url;
	char *auth; /* "Authorization: Bearer ..." or NULL */
	long timeout_ms;
	size_t max_samples, queue_max;
	struct rw_batch *cur; /* loop thread only */
	pthread_t thread;
	int started;
	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t cond;
	struct rw_batch *head, **tail;
	size_t queued;
	int stop;
	unsigned long long sent, rejected, dropped, retries;
};

struct rwrite {
	struct logger *log;
	struct rw_target *t;
	size_t n;
};

int rwrite_conf_check(const struct hub_conf *c, char *msg, size_t msglen)
{
	const struct hub_conf_rwrite *list = c->remote_write.v;

	for (size_t i = 0; i < c->remote_write.n; i++) {
		const char *url = list[i].url, *tok = list[i].bearer_token_file;
		int64_t max = list[i].max_samples, queue = list[i].queue_samples;

		if (!url) {
			snprintf(msg, msglen,
			         "'remote_write[%zu]' needs a 'url' (e.g. "
			         "\"http://prometheus:9090/api/v1/write\")",
			         i);
			return OUTPOST_E_BAD_ARGS;
		}
		if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
			snprintf(msg, msglen,
			         "'remote_write[%zu].url' must be an http:// or https:// URL (e.g. "
			         "\"http://prometheus:9090/api/v1/write\")",
			         i);
			return OUTPOST_E_BAD_ARGS;
		}
		if (tok && !*tok) {
			snprintf(msg, msglen,
			         "'remote_write[%zu].bearer_token_file' must not be empty", i);
			return OUTPOST_E_BAD_ARGS;
		}
		if (queue < max) {
			snprintf(msg, msglen,
			         "'remote_write[%zu].queue_samples' (%lld) must be at least "
			         "'max_samples' (%lld)",
			         i, (long long)queue, (long long)max);
			return OUTPOST_E_BAD_ARGS;
		}
	}
	return 0;
}

static void rw_batch_free(struct rw_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		free(b->s[i].text);
	free(b->s);
	free(b);
}

/* ---- the worker: encode, compress, send ---- */

/* Undoes the exposition escapes (\\, \", \n) of the value at p in place; returns the byte
 * after its closing quote, or NULL. */
static char *rw_unescape(char *p)
{
	char *w = p;

	while (*p && *p != '"') {
		if (*p == '\\' && p[1]) {
			p++;
			*w++ = *p == 'n' ? '\n' : *p;
			p++;
		} else
			*w++ = *p++;
	}
	if (*p != '"')
		return NULL;
	*w = '\0';
	return p + 1;
}

static int rw_label_cmp(const void *a, const void *b)
{
	return strcmp((*(Outpost__Prompb__Label *const *)a)->name,
	              (*(Outpost__Prompb__Label *const *)b)->name);
}

/* Fills ts (labels in lab[], pointers in ptr[]) from one sample's text. */
static int rw_series(struct rw_sample *s, Outpost__Prompb__TimeSeries *ts,
                     Outpost__Prompb__Label *lab, Outpost__Prompb__Label **ptr,
                     Outpost__Prompb__Sample *smp, Outpost__Prompb__Sample **sptr)
{
	char *host = s->text, *key = host + strlen(host) + 1, *p;
	size_t n = 0;

	outpost__prompb__time_series__init(ts);
	outpost__prompb__sample__init(smp);
	smp->value = s->v;
	smp->timestamp = s->t;
	*sptr = smp;
	ts->samples = sptr;
	ts->n_samples = 1;
	for (size_t i = 0; i < RW_LABELS_MAX; i++) {
		outpost__prompb__label__init(&lab[i]);
		ptr[i] = &lab[i];
	}
	lab[n].name = "__name__";
	lab[n++].value = key;
	lab[n].name = "host";
	lab[n++].value = host;
	if ((p = strchr(key, '{'))) {
		*p++ = '\0';
		while (*p && *p != '}') {
			char *eq = strchr(p, '=');
			if (!eq || eq[1] != '"' || n == RW_LABELS_MAX)
				return -1;
			*eq = '\0';
			lab[n].name = p;
			lab[n].value = eq + 2;
			if (!(p = rw_unescape(eq + 2)))
				return -1;
			n++;
			if (*p == ',')
				p++;
		}
	}
	qsort(ptr, n, sizeof(*ptr), rw_label_cmp); /* receivers want labels sorted by name */
	ts->labels = ptr;
	ts->n_labels = n;
	return 0;
}

/* The snappy-compressed WriteRequest of b in *out (caller frees). */
static int rw_encode(struct rw_batch *b, char **out, size_t *outlen)
{
	Outpost__Prompb__WriteRequest wr = OUTPOST__PROMPB__WRITE_REQUEST__INIT;
	Outpost__Prompb__TimeSeries *ts = calloc(b->n, sizeof(*ts));
	Outpost__Prompb__TimeSeries **tsp = calloc(b->n, sizeof(*tsp));
	Outpost__Prompb__Label *lab = calloc(b->n * RW_LABELS_MAX, sizeof(*lab));
	Outpost__Prompb__Label **labp = calloc(b->n * RW_LABELS_MAX, sizeof(*labp));
	Outpost__Prompb__Sample *smp = calloc(b->n, sizeof(*smp));
	Outpost__Prompb__Sample **smpp = calloc(b->n, sizeof(*smpp));
	uint8_t *raw = NULL;
	char *z = NULL;
	size_t nts = 0, rawlen, zlen;
	int rc = OUTPOST_E_INTERNAL;

	if (!ts || !tsp || !lab || !labp || !smp || !smpp)
		goto out;
	for (size_t i = 0; i < b->n; i++) {
		/* A key the store accepted always parses; one that does not is left out. */
		if (rw_series(&b->s[i], &ts[nts], lab + nts * RW_LABELS_MAX,
		              labp + nts * RW_LABELS_MAX, &smp[nts], &smpp[nts]) < 0)
			continue;
		tsp[nts] = &ts[nts];
		nts++;
	}
	wr.timeseries = tsp;
	wr.n_timeseries = nts;
	rawlen = outpost__prompb__write_request__get_packed_size(&wr);
	zlen = snappy_max_compressed_length(rawlen);
	if (!(raw = malloc(rawlen ? rawlen : 1)) || !(z = malloc(zlen)))
		goto out;
	outpost__prompb__write_request__pack(&wr, raw);
	if (snappy_compress((const char *)raw, rawlen, z, &zlen) != SNAPPY_OK)
		goto out;
	*out = z;
	*outlen = zlen;
	z = NULL;
	rc = 0;
out:
	free(z);
	free(raw);
	free(smpp);
	free(smp);
	free(labp);
	free(lab);
	free(tsp);
	free(ts);
	return rc;
}

/* One POST: the HTTP status, or 0 on a network error (err says which). */
static long rw_post(struct rw_target *t, CURL *c, const char *body, size_t len, char *err)
{
	struct curl_slist *h = NULL;
	long status = 0;

	h = curl_slist_append(h, "Content-Encoding: snappy");
	h = curl_slist_append(h, "Content-Type: application/x-protobuf");
	h = curl_slist_append(h, "X-Prometheus-Remote-Write-Version: 0.1.0");
	h = curl_slist_append(h, "User-Agent: outpost-hub");
	if (t->auth)
		h = curl_slist_append(h, t->auth);
	status = hpost(c, t->url, h, body, len, t->timeout_ms, err);
	curl_slist_free_all(h);
	return status;
}

static void *rw_worker(void *arg)
{
	struct rw_target *t = arg;
	struct logger *log = t->rw->log;
	CURL *c = curl_easy_init();
	char err[CURL_ERROR_SIZE];

	pthread_mutex_lock(&t->lock);
	while (!t->stop) {
		struct rw_batch *b = t->head;
		char *body = NULL;
		size_t len = 0;
		long backoff = RW_BACKOFF_MIN_MS, status = 0;
		int logged = 0;

		if (!b) {
			pthread_cond_wait(&t->cond, &t->lock);
			continue;
		}
		pthread_mutex_unlock(&t->lock);
		if (!c || rw_encode(b, &body, &len) < 0) {
			log_warn(log, "remote_write", "%s: out of memory: %zu samples lost", t->url,
			         b->n);
			status = -1;
		}
		/* Retries while the receiver is down or failing; the queue bound drops what
		 * comes meanwhile. 4xx (but 429) means the receiver will never take it. */
		while (status == 0 || status >= 500 || status == 429) {
			status = rw_post(t, c, body, len, err);
			if (status >= 200 && status < 500 && status != 429)
				break;
			if (!logged++ && status)
				log_warn(log, "remote_write", "%s: HTTP status %ld; retrying",
				         t->url, status);
			else if (logged == 1)
				log_warn(log, "remote_write", "%s: %s; retrying", t->url, err);
			pthread_mutex_lock(&t->lock);
			t->retries++;
			hpost_wait(&t->cond, &t->lock, &t->stop, backoff);
			if (t->stop) {
				pthread_mutex_unlock(&t->lock);
				break;
			}
			pthread_mutex_unlock(&t->lock);
			backoff = backoff * 2 > RW_BACKOFF_MAX_MS ? RW_BACKOFF_MAX_MS : backoff * 2;
		}
		if (status >= 400 && status < 500 && status != 429)
			log_warn(log, "remote_write", "%s: HTTP status %ld: %zu samples refused",
			         t->url, status, b->n);
		else if (logged && status >= 200 && status < 300)
			log_info(log, "remote_write", "%s: sending again", t->url);
		free(body);
		pthread_mutex_lock(&t->lock);
		if (status >= 200 && status < 300)
			t->sent += b->n;
		else if (status > 0 && status < 500 && status != 429)
			t->rejected += b->n;
		else
			t->dropped += b->n; /* stopped meanwhile, or out of memory */
		t->head = b->next;
		if (!t->head)
			t->tail = &t->head;
		t->queued -= b->n;
		pthread_mutex_unlock(&t->lock);
		rw_batch_free(b);
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
	curl_easy_cleanup(c);
	return NULL;
}

/* ---- the loop thread's side ---- */

static char *rw_read_token(const char *path, char *msg, size_t msglen)
{
	FILE *f = fopen(path, "re");
	char tok[4096];
	struct buf b = BUF_INIT;
	size_t n;

	if (!f) {
		snprintf(msg, msglen, "remote_write: cannot read bearer_token_file %s: %s", path,
		         strerror(errno));
		return NULL;
	}
	n = fread(tok, 1, sizeof(tok) - 1, f);
	fclose(f);
	tok[n] = '\0';
	tok[strcspn(tok, "\r\n")] = '\0';
	if (!tok[0] || buf_printf(&b, "Authorization: Bearer %s", tok) < 0) {
		snprintf(msg, msglen, "remote_write: bearer_token_file %s is empty", path);
		buf_free(&b);
		return NULL;
	}
	return b.data;
}

int rwrite_start(const struct hub_conf *c, struct logger *log, struct rwrite **out, char *msg,
                 size_t msglen)
{
	const struct hub_conf_rwrite *list = c->remote_write.v;
	struct rwrite *rw;

	*out = NULL;
	if (!c->remote_write.n)
		return 0;
	if (!(rw = calloc(1, sizeof(*rw))) ||
	    !(rw->t = calloc(c->remote_write.n, sizeof(*rw->t)))) {
		free(rw);
		return OUTPOST_E_INTERNAL;
	}
	rw->log = log;
	/* Before any thread: curl's global init is not thread-safe. */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (size_t i = 0; i < c->remote_write.n; i++) {
		struct rw_target *t = &rw->t[i];
		const char *tok = list[i].bearer_token_file;

		t->rw = rw;
		t->idx = i;
		t->tail = &t->head;
		pthread_mutex_init(&t->lock, NULL);
		pthread_cond_init(&t->cond, NULL);
		rw->n++;
		t->url = strdup(list[i].url);
		t->timeout_ms = (long)list[i].timeout_ms;
		t->max_samples = (size_t)list[i].max_samples;
		t->queue_max = (size_t)list[i].queue_samples;
		if (!t->url || (tok && !(t->auth = rw_read_token(tok, msg, msglen))))
			goto fail;
		if (pthread_create(&t->thread, NULL, rw_worker, t) != 0) {
			snprintf(msg, msglen, "remote_write: cannot start a thread");
			goto fail;
		}
		t->started = 1;
		log_info(log, "remote_write", "sending samples to %s", t->url);
	}
	*out = rw;
	return 0;
fail:
	if (!msg[0])
		snprintf(msg, msglen, "out of memory");
	rwrite_stop(rw);
	return OUTPOST_E_INTERNAL;
}

static void rw_target_flush(struct rw_target *t)
{
	struct rw_batch *b = t->cur;
	int drop;

	if (!b || !b->n)
		return;
	t->cur = NULL;
	pthread_mutex_lock(&t->lock);
	drop = t->queued + b->n > t->queue_max;
	if (drop) {
		t->dropped += b->n;
	} else {
		*t->tail = b;
		t->tail = &b->next;
		t->queued += b->n;
		pthread_cond_signal(&t->cond);
	}
	pthread_mutex_unlock(&t->lock);
	if (drop)
		rw_batch_free(b);
}

void rwrite_add(struct rwrite *rw, const char *host, const char *key, size_t keylen, int64_t t,
                double v)
{
	size_t hl = strlen(host);

	if (!rw)
		return;
	for (size_t i = 0; i < rw->n; i++) {
		struct rw_target *tg = &rw->t[i];
		struct rw_batch *b = tg->cur;
		struct rw_sample *s;

		if (!b && !(b = tg->cur = calloc(1, sizeof(*b))))
			goto lost;
		if (b->n == b->cap) {
			size_t cap = b->cap ? b->cap * 2 : 64;
			if (cap > tg->max_samples)
				cap = tg->max_samples;
			if (!(s = realloc(b->s, cap * sizeof(*s))))
				goto lost;
			b->s = s;
			b->cap = cap;
		}
		s = &b->s[b->n];
		if (!(s->text = malloc(hl + keylen + 2)))
			goto lost;
		memcpy(s->text, host, hl + 1);
		memcpy(s->text + hl + 1, key, keylen);
		s->text[hl + 1 + keylen] = '\0';
		s->t = t;
		s->v = v;
		if (++b->n == tg->max_samples)
			rw_target_flush(tg);
		continue;
	lost:
		pthread_mutex_lock(&tg->lock);
		tg->dropped++;
		pthread_mutex_unlock(&tg->lock);
	}
}

void rwrite_flush(struct rwrite *rw)
{
	for (size_t i = 0; rw && i < rw->n; i++)
		rw_target_flush(&rw->t[i]);
}

void rwrite_discard(struct rwrite *rw)
{
	for (size_t i = 0; rw && i < rw->n; i++) {
		rw_batch_free(rw->t[i].cur);
		rw->t[i].cur = NULL;
	}
}

void rwrite_stats(struct rwrite *rw, struct buf *b)
{
	if (!rw)
		return;
	buf_printf(b, "# HELP outpost_hub_remote_write_samples_total Samples for remote_write "
	              "targets, by outcome.\n"
	              "# TYPE outpost_hub_remote_write_samples_total counter\n");
	for (size_t i = 0; i < rw->n; i++) {
		struct rw_target *t = &rw->t[i];
		pthread_mutex_lock(&t->lock);
		buf_printf(
		    b,
		    "outpost_hub_remote_write_samples_total{remote=\"%zu\",outcome=\"sent\"} "
		    "%llu\n"
		    "outpost_hub_remote_write_samples_total{remote=\"%zu\",outcome="
		    "\"rejected\"} %llu\n"
		    "outpost_hub_remote_write_samples_total{remote=\"%zu\",outcome="
		    "\"dropped\"} %llu\n",
		    i, t->sent, i, t->rejected, i, t->dropped);
		pthread_mutex_unlock(&t->lock);
	}
	buf_printf(b, "# HELP outpost_hub_remote_write_retries_total Failed sends tried again.\n"
	              "# TYPE outpost_hub_remote_write_retries_total counter\n");
	for (size_t i = 0; i < rw->n; i++) {
		pthread_mutex_lock(&rw->t[i].lock);
		buf_printf(b, "outpost_hub_remote_write_retries_total{remote=\"%zu\"} %llu\n", i,
		           rw->t[i].retries);
		pthread_mutex_unlock(&rw->t[i].lock);
	}
	buf_printf(b, "# HELP outpost_hub_remote_write_queue_samples Samples waiting to be sent.\n"
	              "# TYPE outpost_hub_remote_write_queue_samples gauge\n");
	for (size_t i = 0; i < rw->n; i++) {
		pthread_mutex_lock(&rw->t[i].lock);
		buf_printf(b, "outpost_hub_remote_write_queue_samples{remote=\"%zu\"} %zu\n", i,
		           rw->t[i].queued);
		pthread_mutex_unlock(&rw->t[i].lock);
	}
}

void rwrite_stop(struct rwrite *rw)
{
	if (!rw)
		return;
	for (size_t i = 0; i < rw->n; i++) {
		struct rw_target *t = &rw->t[i];
		pthread_mutex_lock(&t->lock);
		t->stop = 1;
		pthread_cond_signal(&t->cond);
		pthread_mutex_unlock(&t->lock);
	}
	for (size_t i = 0; i < rw->n; i++) {
		struct rw_target *t = &rw->t[i];
		struct rw_batch *b, *next;
		if (t->started)
			pthread_join(t->thread, NULL);
		for (b = t->head; b; b = next) {
			next = b->next;
			rw_batch_free(b);
		}
		rw_batch_free(t->cur);
		pthread_mutex_destroy(&t->lock);
		pthread_cond_destroy(&t->cond);
		free(t->url);
		free(t->auth);
	}
	free(rw->t);
	free(rw);
	curl_global_cleanup();
}
