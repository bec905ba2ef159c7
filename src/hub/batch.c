/* An agent's metrics post read as events (batch.h). One walker serves both passes: a stack of
 * what each open container is, the field the next value belongs to, and a mode that says
 * whether samples are wanted. Anything unexpected inside a batch spoils that batch (or that
 * sample), never the request; what makes the request unreadable is said once in msg. */
#include "batch.h"

#include <outpost/plugin.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

enum ctx {
	C_TOP,     /* the post object */
	C_BATCHES, /* the batches array */
	C_BATCH,   /* one batch object */
	C_SAMPLES, /* a batch's samples array */
	C_SAMPLE,  /* one [key, value] */
	C_SKIP,    /* something we do not read */
};

enum field {
	F_NONE,
	F_EPOCH,
	F_BATCHES,
	F_SEQ,
	F_T,
	F_SAMPLES,
	F_EVENTS,
	F_OTHER,
};

#define STACK_MAX 8

struct walk {
	struct batch_post *post;
	int pass; /* 1: scan, 2: samples */
	const uint8_t *want;
	batch_sample_fn fn;
	void *arg;
	int64_t *bad;
	int stop; /* fn's nonzero */

	enum ctx st[STACK_MAX];
	int depth; /* entries in st; containers deeper than STACK_MAX count in skip */
	long skip; /* open containers inside a C_SKIP */
	enum field field;
	int have_epoch, have_batches, have_seq, have_t, have_samples, have_events;
	size_t cur; /* the batch being read */
	/* The sample being read. */
	int spos, sbad;
	const char *key;
	size_t keylen;
	double value;
	char msg[160];
};

static void fail(struct walk *w, const char *m)
{
	if (!w->msg[0])
		snprintf(w->msg, sizeof(w->msg), "%s", m);
}

static enum ctx top(const struct walk *w)
{
	return w->depth ? w->st[w->depth - 1] : C_SKIP;
}

/* Enters a container: read (on the stack) or skipped (counted). Always 1. */
static int push(struct walk *w, enum ctx c)
{
	if (c == C_SKIP || w->depth == STACK_MAX)
		w->skip++;
	else
		w->st[w->depth++] = c;
	return 1;
}

static void batch_bad(struct walk *w, const char *why)
{
	if (w->pass == 1 && w->cur < w->post->n && !w->post->b[w->cur].bad)
		w->post->b[w->cur].bad = why;
}

static int wanted(const struct walk *w)
{
	return w->pass == 2 && w->cur < w->post->n && w->want[w->cur];
}

/* A scalar value (or a container's start: is_container) arriving where the stack says. Returns
 * 0 when the request is unreadable (msg set). kind: 's' string, 'i' integer, 'd' other number,
 * 'o' anything else (null, boolean), '[' or '{' a container. */
static int value(struct walk *w, int kind, const char *s, size_t len)
{
	enum field f = w->field;

	w->field = F_NONE;
	if (w->skip)
		return kind == '[' || kind == '{' ? (w->skip++, 1) : 1;
	switch (top(w)) {
	case C_SKIP:
		if (w->depth == 0) { /* the document itself */
			if (kind != '{') {
				fail(w, "a metrics post is a JSON object");
				return 0;
			}
			w->depth = 0;
			w->st[w->depth++] = C_TOP;
			return 1;
		}
		return kind == '[' || kind == '{' ? push(w, C_SKIP) : 1;
	case C_TOP:
		if (f == F_EPOCH) {
			size_t i;
			if (kind != 's' || len != 16) {
				fail(w, "epoch must be 16 lowercase hex digits");
				return 0;
			}
			for (i = 0; i < 16; i++)
				if (!((s[i] >= '0' && s[i] <= '9') ||
				      (s[i] >= 'a' && s[i] <= 'f'))) {
					fail(w, "epoch must be 16 lowercase hex digits");
					return 0;
				}
			memcpy(w->post->epoch, s, 16);
			w->post->epoch[16] = '\0';
			w->have_epoch = 1;
			return 1;
		}
		if (f == F_BATCHES) {
			if (kind != '[' || w->have_batches) {
				fail(w, "batches must be one array of batches");
				return 0;
			}
			w->have_batches = 1;
			return push(w, C_BATCHES);
		}
		return kind == '[' || kind == '{' ? push(w, C_SKIP) : 1;
	case C_BATCHES:
		if (kind != '{') {
			fail(w, "each batch must be an object {\"seq\", \"t\", \"samples\"}");
			return 0;
		}
		if (w->pass == 1 && w->post->n == BATCH_MAX) {
			fail(w, "at most 256 batches in one post");
			return 0;
		}
		w->cur = w->pass == 1 ? w->post->n++ : w->cur + 1;
		if (w->pass == 1)
			w->post->b[w->cur] = (struct batch_info){0, 0, NULL, 0};
		w->have_seq = w->have_t = w->have_samples = w->have_events = 0;
		return push(w, C_BATCH);
	case C_BATCH:
		if (f == F_SEQ) {
			long long v;
			char num[24], *end;
			if (kind != 'i' || len >= sizeof(num)) {
				fail(w, "seq must be a positive integer");
				return 0;
			}
			memcpy(num, s, len);
			num[len] = '\0';
			errno = 0;
			v = strtoll(num, &end, 10);
			if (v <= 0 || *end || errno == ERANGE) {
				fail(w, "seq must be a positive integer");
				return 0;
			}
			if (w->pass == 1)
				w->post->b[w->cur].seq = v;
			w->have_seq = 1;
			return 1;
		}
		if (f == F_T) {
			char num[24], *end;
			if (kind != 'i' || len >= sizeof(num)) {
				batch_bad(w, "t must be an integer (ms since the epoch)");
				return kind == '[' || kind == '{' ? push(w, C_SKIP) : 1;
			}
			memcpy(num, s, len);
			num[len] = '\0';
			w->have_t = 1;
			if (w->pass == 1) {
				errno = 0;
				w->post->b[w->cur].t = strtoll(num, &end, 10);
				if (*end || errno == ERANGE)
					batch_bad(w, "t must be an integer (ms since the epoch)");
			}
			return 1;
		}
		if (f == F_SAMPLES) {
			if (kind != '[') {
				batch_bad(w, "samples must be an array of [key, value]");
				return kind == '{' ? push(w, C_SKIP) : 1;
			}
			w->have_samples = 1;
			return push(w, C_SAMPLES);
		}
		if (f == F_EVENTS) {
			/* Read by ingest as a tree (events.c): only noted here. */
			if (kind != '[')
				batch_bad(w, "events must be an array of events");
			w->have_events = 1;
			return kind == '[' || kind == '{' ? push(w, C_SKIP) : 1;
		}
		return kind == '[' || kind == '{' ? push(w, C_SKIP) : 1;
	case C_SAMPLES:
		if (kind != '[') {
			if (wanted(w))
				(*w->bad)++;
			return kind == '{' ? push(w, C_SKIP) : 1;
		}
		w->spos = 0;
		w->sbad = 0;
		return push(w, C_SAMPLE);
	case C_SAMPLE:
		if (w->spos == 0) {
			if (kind == 's') {
				w->key = s;
				w->keylen = len;
			} else {
				w->sbad = 1;
			}
		} else if (w->spos == 1 && w->pass == 2) {
			if (kind == 'i' || kind == 'd') {
				char num[64];
				if (len >= sizeof(num)) {
					w->sbad = 1;
				} else {
					memcpy(num, s, len);
					num[len] = '\0';
					w->value = strtod(num, NULL);
				}
			} else if (kind == 's' && len == 3 && memcmp(s, "NaN", 3) == 0) {
				w->value = NAN;
			} else if (kind == 's' && len == 4 && memcmp(s, "+Inf", 4) == 0) {
				w->value = INFINITY;
			} else if (kind == 's' && len == 4 && memcmp(s, "-Inf", 4) == 0) {
				w->value = -INFINITY;
			} else {
				w->sbad = 1;
			}
		}
		w->spos++;
		return kind == '[' || kind == '{' ? (w->sbad = 1, push(w, C_SKIP)) : 1;
	}
	return 1;
}

/* The key pointer of a sample must outlive the value that follows it: yajl hands strings from
 * its input buffer when they have no escapes, and from a scratch buffer otherwise, which the
 * next string overwrites. The key is copied here for that case. */
struct walk_key {
	struct walk w;
	char key[1025];
};

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
	struct walk *w = ctx;

	if (!w->skip && top(w) == C_SAMPLE && w->spos == 0 && w->field == F_NONE) {
		struct walk_key *wk = (struct walk_key *)w;
		if (len >= sizeof(wk->key)) {
			w->sbad = 1;
			w->spos++;
			return 1;
		}
		memcpy(wk->key, s, len);
		wk->key[len] = '\0';
		return value(w, 's', wk->key, len);
	}
	return value(w, 's', (const char *)s, len);
}

static int cb_number(void *ctx, const char *s, size_t len)
{
	int is_int = len > 0;

	for (size_t i = 0; i < len; i++)
		if (s[i] == '.' || s[i] == 'e' || s[i] == 'E')
			is_int = 0;
	return value(ctx, is_int ? 'i' : 'd', s, len);
}

static int cb_null(void *ctx)
{
	return value(ctx, 'o', NULL, 0);
}

static int cb_bool(void *ctx, int b)
{
	(void)b;
	return value(ctx, 'o', NULL, 0);
}

static int cb_start_map(void *ctx)
{
	return value(ctx, '{', NULL, 0);
}

static int cb_start_array(void *ctx)
{
	return value(ctx, '[', NULL, 0);
}

static int cb_key(void *ctx, const unsigned char *k, size_t len)
{
	struct walk *w = ctx;
	enum ctx c = w->skip ? C_SKIP : top(w);

	w->field = F_OTHER;
#define IS(s) (len == sizeof(s) - 1 && memcmp(k, s, len) == 0)
	if (c == C_TOP && IS("epoch"))
		w->field = F_EPOCH;
	else if (c == C_TOP && IS("batches"))
		w->field = F_BATCHES;
	else if (c == C_BATCH && IS("seq"))
		w->field = F_SEQ;
	else if (c == C_BATCH && IS("t"))
		w->field = F_T;
	else if (c == C_BATCH && IS("samples"))
		w->field = F_SAMPLES;
	else if (c == C_BATCH && IS("events"))
		w->field = F_EVENTS;
#undef IS
	return 1;
}

/* A container closes. */
static int cb_end(void *ctx)
{
	struct walk *w = ctx;
	enum ctx c;

	if (w->skip) {
		w->skip--;
		return 1;
	}
	c = w->depth ? w->st[--w->depth] : C_SKIP;
	w->field = F_NONE;
	switch (c) {
	case C_BATCH:
		if (!w->have_seq) {
			fail(w, "every batch needs a seq");
			return 0;
		}
		if (w->pass == 1) {
			struct batch_info *b = &w->post->b[w->cur];
			if (w->cur > 0 && b->seq <= w->post->b[w->cur - 1].seq) {
				fail(w, "batches must come in ascending seq");
				return 0;
			}
			b->events = w->have_events;
			if (!b->bad && w->have_events && w->have_samples)
				b->bad = "a batch holds samples or events, not both";
			if (!b->bad && !w->have_events && (!w->have_t || !w->have_samples))
				b->bad = "a batch needs t and samples";
		}
		break;
	case C_SAMPLE:
		if (wanted(w)) {
			if (w->sbad || w->spos != 2) {
				(*w->bad)++;
			} else if ((w->stop = w->fn(w->arg, w->cur, w->key, w->keylen, w->value))) {
				return 0;
			}
		}
		break;
	default:
		break;
	}
	return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = cb_null,
    .yajl_boolean = cb_bool,
    .yajl_number = cb_number,
    .yajl_string = cb_string,
    .yajl_start_map = cb_start_map,
    .yajl_map_key = cb_key,
    .yajl_end_map = cb_end,
    .yajl_start_array = cb_start_array,
    .yajl_end_array = cb_end,
};

/* Runs the walker over the body. 0, OUTPOST_E_BAD_JSON, or OUTPOST_E_BAD_ARGS (w->msg). */
static int walk_run(struct walk *w, const char *body, size_t len, char *msg, size_t msglen)
{
	yajl_handle y = yajl_alloc(&callbacks, NULL, w);
	yajl_status s;
	int rc = 0;

	if (!y)
		return OUTPOST_E_INTERNAL;
	s = yajl_parse(y, (const unsigned char *)body, len);
	if (s == yajl_status_ok)
		s = yajl_complete_parse(y);
	if (s == yajl_status_client_canceled) {
		rc = w->stop ? w->stop : OUTPOST_E_BAD_ARGS;
		if (msglen)
			snprintf(msg, msglen, "%s", w->msg);
	} else if (s != yajl_status_ok) {
		unsigned char *e = yajl_get_error(y, 0, (const unsigned char *)body, len);
		if (msglen)
			snprintf(msg, msglen, "the body is not valid JSON: %s",
			         e ? (const char *)e : "parse error");
		if (e)
			yajl_free_error(y, e);
		rc = OUTPOST_E_BAD_JSON;
	}
	yajl_free(y);
	return rc;
}

int batch_scan(const char *body, size_t len, struct batch_post *post, char *msg, size_t msglen)
{
	struct walk_key *wk = calloc(1, sizeof(*wk));
	int rc;

	if (!wk)
		return OUTPOST_E_INTERNAL;
	memset(post, 0, sizeof(*post));
	wk->w.post = post;
	wk->w.pass = 1;
	rc = walk_run(&wk->w, body, len, msg, msglen);
	if (rc == 0 && (!wk->w.have_epoch || !wk->w.have_batches || post->n == 0)) {
		snprintf(msg, msglen,
		         "expected {\"epoch\": 16 hex digits, \"batches\": [1 to %d batches]}",
		         BATCH_MAX);
		rc = OUTPOST_E_BAD_ARGS;
	}
	free(wk);
	return rc;
}

int batch_samples(const char *body, size_t len, const uint8_t *want, batch_sample_fn fn, void *arg,
                  int64_t *bad)
{
	struct batch_post scratch; /* pass 2 only reads n */
	struct walk_key *wk = calloc(1, sizeof(*wk));
	int rc;

	if (!wk)
		return OUTPOST_E_INTERNAL;
	scratch.n = BATCH_MAX;
	wk->w.post = &scratch;
	wk->w.pass = 2;
	wk->w.want = want;
	wk->w.fn = fn;
	wk->w.arg = arg;
	wk->w.bad = bad;
	wk->w.cur = (size_t)-1;
	rc = walk_run(&wk->w, body, len, NULL, 0);
	free(wk);
	return rc;
}
