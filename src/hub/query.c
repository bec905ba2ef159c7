/* Metric queries: resolution and step, bucketing, aggregation across hosts, and the answers
 * written straight into a text buffer (no JSON tree, no allocation per point); the engine keeps
 * its arrays from one query to the next. A query runs in slices that each end by a deadline
 * (query_run): every phase (the walk of the series, the sort, the reads and the text) keeps
 * its place in struct query and goes on from there at the next slice. Parameters are parsed in
 * query_params.c. */
#include "query.h"
#include "re.h"
#include "tsdb.h"
#include "core/clk.h"
#include "core/err.h"
#include "core/wire.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUERY_MAX_PCT_CELLS 4000000 /* hosts x steps of one group held for a percentile */
#define QUERY_KEEP_CELLS 262144     /* arrays larger than this are freed after a query */
#define QUERY_E_STORE (-1000)       /* internal: the tsdb failed a read (not out of memory) */

/* A series that matched, as it was when it matched: its strings copied into the engine's
 * arena (see collect_fix), its latest sample with them. */
struct qser {
	uint32_t id;
	const char *host, *name, *key;
	size_t nlabels;
	const char *const *labels;
	int64_t first_ms, last_ms;
	double last_value;
	size_t o_host, o_name, o_key, o_lab; /* offsets while copying */
};

struct collect {
	struct query *q;
	const struct query_matcher *m; /* one selector (API) ... */
	size_t nm;
	struct query_matcher *const *sel; /* ... or any of several (/federate) */
	const size_t *nsel;
	size_t nsels;
	const struct query_hosts *hosts;
	int64_t min_last; /* > 0: only series with a sample at or after it */
	size_t max;       /* keep at most this many; count the rest */
	size_t total;
	size_t re_work; /* regex matches so far, weighted by length */
	int oom, over, yield;
};

enum { QK_SERIES, QK_LATEST, QK_RANGE, QK_FEDERATE };
enum { QP_IDLE, QP_COLLECT, QP_SORT, QP_WRITE };

struct query {
	struct qser *ser;
	size_t nser, capser;
	struct qser *tmp; /* the merge sort's other half */
	size_t captmp;
	/* Per step, capnb long: one series' sum and count; one group's accumulators. */
	double *sum, *cnt, *asum, *an, *amin, *amax;
	uint32_t *vn;
	size_t capnb;
	double *vals; /* percentiles: the hosts' values, step after step */
	size_t capvals;
	/* Copies of the series' strings: the query runs in slices and ingest writes to the tsdb
	 * between them (and tsdb_read may flush, and a failed flush rebuilds the tsdb's memory),
	 * so its strings do not outlive a turn of the loop. */
	struct buf arena;
	size_t *laboff;      /* label strings: offsets into arena */
	const char **labptr; /* ... and then pointers */
	size_t nlab, caplab;

	/* The query under way, from query_begin_* to the end of query_run: where it is, so
	 * that the next slice goes on from there. */
	int kind, phase;
	struct collect c;
	const struct query_params *p; /* borrowed until the query ends */
	const char *name;             /* the series' name; NULL: any */
	int64_t now;
	uint64_t gen; /* the tsdb's generation at the start */
	size_t pos;   /* collect: the tsdb's position; write: the next series */
	size_t nw;    /* latest: samples written */
	int (*cmp)(const void *, const void *);
	size_t sw, slo, si, sj, sk; /* merge sort: width, pair, left, right, out */
	int res;                    /* range: resolution, step, first bucket, buckets */
	int64_t step, start;
	size_t nb;
	size_t gj, gk, ng; /* range with agg: the group [pos, gj), its next member, groups done */
	int64_t until;     /* this slice ends at this monotonic ms; 0: no end */
	unsigned ticks;
};

void query_pick(const int64_t *keep_ms, const int64_t *interval_ms, int nres, int64_t now,
                int64_t from, int64_t to, int64_t step_asked, int *res, int64_t *step)
{
	int64_t want = step_asked, iv;
	int pick = -1, covering = -1;

	if (want <= 0) {
		want = (to - from + QUERY_DEFAULT_POINTS - 1) / QUERY_DEFAULT_POINTS;
		want = (want + 999) / 1000 * 1000; /* whole seconds read better */
	}
	for (int r = 0; r < nres; r++) {
		int covers = keep_ms[r] <= 0 || now - keep_ms[r] <= from;
		if (covers && covering < 0)
			covering = r;
		if (covers && interval_ms[r] <= want) {
			pick = r;
			break;
		}
	}
	if (pick < 0)
		pick = covering >= 0 ? covering : nres - 1;
	iv = interval_ms[pick];
	if (iv > 0)
		want = (want + iv - 1) / iv * iv;
	*res = pick;
	*step = want;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double query_quantile(double *v, size_t n, double q)
{
	size_t k = 0, lo;
	double rank, w;

	for (size_t i = 0; i < n; i++)
		if (!isnan(v[i]))
			v[k++] = v[i];
	if (k == 0)
		return n ? NAN : NAN;
	qsort(v, k, sizeof(double), cmp_double);
	if (q <= 0)
		return v[0];
	if (q >= 1)
		return v[k - 1];
	rank = q * (double)(k - 1);
	lo = (size_t)floor(rank);
	if (lo + 1 >= k)
		return v[k - 1];
	w = rank - (double)lo;
	if (w == 0)
		return v[lo];
	return v[lo] + (v[lo + 1] - v[lo]) * w;
}

/* ---- text ---- */

/* Decimal digits of u, written backwards from end; returns the start. */
static char *put_digits(char *end, uint64_t u)
{
	do {
		*--end = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	return end;
}

static int put_i64(struct buf *b, int64_t v)
{
	char s[24], *end = s + sizeof(s), *p;

	p = put_digits(end, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);
	if (v < 0)
		*--p = '-';
	return buf_append(b, p, (size_t)(end - p));
}

/* v with at most 6 decimals written by hand (the common case: 3.2, 0.25, 41.5), checked to
 * read back the same; 0 when v is not such a number. */
static size_t fmt_short(char *out, double v)
{
	static const double pow10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6};
	char s[40], *end = s + sizeof(s), *p;
	uint64_t u;
	int k;

	if (!(fabs(v) < 1e12))
		return 0;
	for (k = 0; k <= 6; k++) {
		double m = fabs(v) * pow10[k];
		if (m == floor(m))
			break;
	}
	if (k > 6)
		return 0;
	u = (uint64_t)(fabs(v) * pow10[k]);
	p = end;
	for (int i = 0; i < k; i++) {
		*--p = (char)('0' + u % 10);
		u /= 10;
	}
	if (k)
		*--p = '.';
	p = put_digits(p, u);
	if (v < 0)
		*--p = '-';
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	if (k && strtod(out, NULL) != v)
		return 0;
	return (size_t)(end - p);
}

int query_put_number(struct buf *b, double v, int prom)
{
	char s[40];
	size_t n;

	if (isnan(v))
		return buf_puts(b, prom ? "NaN" : "\"NaN\"");
	if (isinf(v))
		return buf_puts(b, v > 0 ? (prom ? "+Inf" : "\"+Inf\"")
		                         : (prom ? "-Inf" : "\"-Inf\""));
	if (v == 0)
		return buf_append(b, "0", 1);
	if ((n = fmt_short(s, v)))
		return buf_append(b, s, n);
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(s, sizeof(s), "%.*g", prec, v);
		if (prec == 17 || strtod(s, NULL) == v)
			break;
	}
	return buf_puts(b, s);
}

int query_put_json_string(struct buf *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	const unsigned char *run = s;
	int rc = buf_append(b, "\"", 1);

	while (rc == 0 && *s) {
		size_t n = wire_utf8_len((const char *)s, 4); /* stops at the NUL */
		const char *esc = NULL;
		char u[8];
		if (n && *s >= 0x20 && *s != '"' && *s != '\\') {
			s += n;
			continue;
		}
		rc = buf_append(b, run, (size_t)(s - run));
		if (!n)
			esc = "\xEF\xBF\xBD";
		else if (*s == '"')
			esc = "\\\"";
		else if (*s == '\\')
			esc = "\\\\";
		else if (*s == '\n')
			esc = "\\n";
		else if (*s == '\t')
			esc = "\\t";
		else {
			snprintf(u, sizeof(u), "\\u%04x", *s);
			esc = u;
		}
		if (rc == 0)
			rc = buf_puts(b, esc);
		s++;
		run = s;
	}
	if (rc == 0)
		rc = buf_append(b, run, (size_t)(s - run));
	return rc == 0 ? buf_append(b, "\"", 1) : rc;
}

static int put_labels(struct buf *b, const struct qser *s)
{
	int rc = buf_append(b, "{", 1);

	for (size_t i = 0; rc == 0 && i < s->nlabels; i++) {
		if (i)
			rc = buf_append(b, ",", 1);
		rc = rc ? rc : query_put_json_string(b, s->labels[2 * i]);
		rc = rc ? rc : buf_append(b, ":", 1);
		rc = rc ? rc : query_put_json_string(b, s->labels[2 * i + 1]);
	}
	return rc ? rc : buf_append(b, "}", 1);
}

/* ---- engine ---- */

struct query *query_new(void)
{
	return calloc(1, sizeof(struct query));
}

static void query_trim(struct query *q)
{
	if (q->capnb > QUERY_KEEP_CELLS) {
		free(q->sum), free(q->cnt), free(q->asum), free(q->an), free(q->amin),
		    free(q->amax), free(q->vn);
		q->sum = q->cnt = q->asum = q->an = q->amin = q->amax = NULL;
		q->vn = NULL;
		q->capnb = 0;
	}
	if (q->capvals > QUERY_KEEP_CELLS) {
		free(q->vals);
		q->vals = NULL;
		q->capvals = 0;
	}
	if (q->capser > QUERY_KEEP_CELLS / 8) {
		free(q->ser);
		q->ser = NULL;
		q->capser = 0;
	}
	if (q->captmp > QUERY_KEEP_CELLS / 8) {
		free(q->tmp);
		q->tmp = NULL;
		q->captmp = 0;
	}
	if (q->arena.cap > QUERY_KEEP_CELLS * 8)
		buf_free(&q->arena);
	if (q->caplab > QUERY_KEEP_CELLS) {
		free(q->laboff);
		free(q->labptr);
		q->laboff = NULL;
		q->labptr = NULL;
		q->caplab = 0;
	}
	buf_reset(&q->arena);
	q->nlab = 0;
	q->nser = 0;
	q->phase = QP_IDLE;
}

void query_free(struct query *q)
{
	if (!q)
		return;
	free(q->ser);
	free(q->tmp);
	free(q->sum), free(q->cnt), free(q->asum), free(q->an), free(q->amin), free(q->amax);
	free(q->vn);
	free(q->vals);
	buf_free(&q->arena);
	free(q->laboff);
	free(q->labptr);
	free(q);
}

static int grow(void **p, size_t n, size_t size)
{
	void *np = realloc(*p, n * size);
	if (!np)
		return -1;
	*p = np;
	return 0;
}

static int query_reserve_steps(struct query *q, size_t nb)
{
	if (nb <= q->capnb)
		return 0;
	if (grow((void **)&q->sum, nb, sizeof(double)) < 0 ||
	    grow((void **)&q->cnt, nb, sizeof(double)) < 0 ||
	    grow((void **)&q->asum, nb, sizeof(double)) < 0 ||
	    grow((void **)&q->an, nb, sizeof(double)) < 0 ||
	    grow((void **)&q->amin, nb, sizeof(double)) < 0 ||
	    grow((void **)&q->amax, nb, sizeof(double)) < 0 ||
	    grow((void **)&q->vn, nb, sizeof(uint32_t)) < 0)
		return -1;
	q->capnb = nb;
	return 0;
}

static const char *label_value(const struct tsdb_series *s, const char *label)
{
	if (strcmp(label, "host") == 0)
		return s->host;
	if (strcmp(label, "__name__") == 0)
		return s->name;
	for (size_t i = 0; i < s->nlabels; i++)
		if (strcmp(s->labels[2 * i], label) == 0)
			return s->labels[2 * i + 1];
	return "";
}

static int matcher_hit(const struct query_matcher *m, const char *v, size_t *re_work)
{
	switch (m->op) {
	case QUERY_EQ:
		return strcmp(v, m->value) == 0;
	case QUERY_NE:
		return strcmp(v, m->value) != 0;
	default:
		*re_work += 1 + strlen(v) / 256;
		return re_match(m->re, v) == (m->op == QUERY_RE);
	}
}

/* The exact matchers first: they are cheap and usually decide. Every regex match adds to
 * *re_work (see QUERY_MAX_RE_WORK). */
static int matchers_ok(const struct query_matcher *m, size_t nm, const struct tsdb_series *s,
                       size_t *re_work)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < nm; i++) {
			int is_re = m[i].op == QUERY_RE || m[i].op == QUERY_NRE;
			if (is_re != pass)
				continue;
			if (!matcher_hit(&m[i], label_value(s, m[i].label), re_work))
				return 0;
		}
	}
	return 1;
}

int query_series_match(const struct query_matcher *m, size_t nm, const struct tsdb_series *s,
                       size_t *re_work)
{
	return matchers_ok(m, nm, s, re_work);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int host_ok(const struct query_hosts *h, const char *host)
{
	if (!h || !h->ids)
		return 1;
	return bsearch(&host, h->ids, h->n, sizeof(char *), cmp_str) != NULL;
}

/* Appends s and its NUL to the arena; its offset in *off. */
static int arena_put(struct query *q, const char *s, size_t *off)
{
	*off = q->arena.len;
	return buf_append(&q->arena, s, strlen(s) + 1);
}

static int collect_copy(struct query *q, struct qser *e, const struct tsdb_series *s)
{
	if (arena_put(q, s->host, &e->o_host) < 0 || arena_put(q, s->name, &e->o_name) < 0 ||
	    arena_put(q, s->key, &e->o_key) < 0)
		return -1;
	if (q->nlab + 2 * s->nlabels > q->caplab) {
		size_t n = q->caplab ? q->caplab : 256;
		while (n < q->nlab + 2 * s->nlabels)
			n *= 2;
		if (grow((void **)&q->laboff, n, sizeof(size_t)) < 0 ||
		    grow((void **)&q->labptr, n, sizeof(char *)) < 0)
			return -1;
		q->caplab = n;
	}
	e->o_lab = q->nlab;
	for (size_t i = 0; i < 2 * s->nlabels; i++)
		if (arena_put(q, s->labels[i], &q->laboff[q->nlab++]) < 0)
			return -1;
	return 0;
}

/* Points the copied series at their strings, once the arena has stopped moving. */
static void collect_fix(struct query *q)
{
	for (size_t i = 0; i < q->nlab; i++)
		q->labptr[i] = q->arena.data + q->laboff[i];
	for (size_t i = 0; i < q->nser; i++) {
		struct qser *e = &q->ser[i];
		e->host = q->arena.data + e->o_host;
		e->name = q->arena.data + e->o_name;
		e->key = q->arena.data + e->o_key;
		e->labels = e->nlabels ? q->labptr + e->o_lab : NULL;
	}
}

/* Whether the slice is over: the clock is read every `every` calls, never at the first call of
 * a slice, so each slice makes progress. */
static int query_yield(struct query *q, unsigned every)
{
	if (q->until <= 0 || ++q->ticks < 2 || q->ticks % every)
		return 0;
	return clk_mono_ms() >= q->until;
}

static int collect_one(void *arg, const struct tsdb_series *s)
{
	struct collect *c = arg;
	struct query *q = c->q;
	struct qser *e;

	if (query_yield(q, 256)) {
		c->yield = 1;
		return 1;
	}
	if (c->min_last > 0 && (s->last_ms <= 0 || s->last_ms < c->min_last))
		return 0;
	if (c->re_work > QUERY_MAX_RE_WORK) {
		c->over = 1;
		return 1;
	}
	if (!host_ok(c->hosts, s->host) || !matchers_ok(c->m, c->nm, s, &c->re_work))
		return 0;
	if (c->nsels) {
		size_t i;
		for (i = 0; i < c->nsels; i++)
			if (matchers_ok(c->sel[i], c->nsel[i], s, &c->re_work))
				break;
		if (i == c->nsels)
			return 0;
	}
	c->total++;
	if (q->nser >= c->max)
		return 0;
	if (q->nser == q->capser) {
		size_t n = q->capser ? q->capser * 2 : 256;
		if (grow((void **)&q->ser, n, sizeof(struct qser)) < 0) {
			c->oom = 1;
			return 1;
		}
		q->capser = n;
	}
	e = &q->ser[q->nser++];
	e->id = s->id;
	e->nlabels = s->nlabels;
	e->first_ms = s->first_ms;
	e->last_ms = s->last_ms;
	e->last_value = s->last_value;
	if (collect_copy(q, e, s) < 0) {
		c->oom = 1;
		return 1;
	}
	return 0;
}

static int cmp_host_key(const void *a, const void *b)
{
	const struct qser *x = a, *y = b;
	int c = strcmp(x->host, y->host);
	return c ? c : strcmp(x->key, y->key);
}

static int cmp_key_host(const void *a, const void *b)
{
	const struct qser *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	return c ? c : strcmp(x->host, y->host);
}

static int cmp_name_key_host(const void *a, const void *b)
{
	const struct qser *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : cmp_key_host(a, b);
}

static int collect_over(char *msg, size_t msglen)
{
	snprintf(msg, msglen,
	         "the label regexes of this query would take more of the hub's time than one "
	         "query may (%d regex matches): give name=, an exact matcher (label=value) or "
	         "hosts= to narrow the series first",
	         QUERY_MAX_RE_WORK);
	return OUTPOST_E_TOO_LARGE;
}

static int put_series_head(struct buf *b, const struct qser *s, int with_name)
{
	int rc = buf_puts(b, "{\"host\":");
	rc = rc ? rc : query_put_json_string(b, s->host);
	if (with_name) {
		rc = rc ? rc : buf_puts(b, ",\"name\":");
		rc = rc ? rc : query_put_json_string(b, s->name);
	}
	rc = rc ? rc : buf_puts(b, ",\"labels\":");
	return rc ? rc : put_labels(b, s);
}

/* "90s", "1h30m": a step or range for messages. */
static void fmt_span(char *s, size_t n, int64_t ms)
{
	if (ms % 86400000 == 0)
		snprintf(s, n, "%" PRId64 "d", ms / 86400000);
	else if (ms % 3600000 == 0)
		snprintf(s, n, "%" PRId64 "h", ms / 3600000);
	else if (ms % 60000 == 0)
		snprintf(s, n, "%" PRId64 "m", ms / 60000);
	else if (ms % 1000 == 0)
		snprintf(s, n, "%" PRId64 "s", ms / 1000);
	else
		snprintf(s, n, "%" PRId64 "ms", ms);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t d = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? d - 1 : d;
}

/* One series' points folded into q->sum / q->cnt per step. */
static int fold(struct query *q, struct tsdb *db, uint32_t id, int res, int64_t start, int64_t to,
                int64_t step, size_t nb)
{
	struct tsdb_point *pts = NULL;
	size_t n = 0;
	int rc;

	memset(q->sum, 0, nb * sizeof(double));
	memset(q->cnt, 0, nb * sizeof(double));
	rc = tsdb_read(db, id, res, start, to, &pts, &n);
	if (rc == OUTPOST_E_NOT_FOUND)
		return 0; /* gone since it was listed (retention): no points */
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		const struct tsdb_point *pt = &pts[i];
		size_t b;
		if (pt->t < start || pt->t >= to || !(pt->count > 0))
			continue;
		b = (size_t)((pt->t - start) / step);
		q->sum[b] += pt->sum;
		q->cnt[b] += pt->count;
	}
	free(pts);
	return 0;
}

static int put_point(struct buf *b, int *first, int64_t t, double v)
{
	int rc = buf_append(b, *first ? "[" : ",[", *first ? 1 : 2);

	*first = 0;
	rc = rc ? rc : put_i64(b, t);
	rc = rc ? rc : buf_append(b, ",", 1);
	rc = rc ? rc : query_put_number(b, v, 0);
	return rc ? rc : buf_append(b, "]", 1);
}

/* ---- the phases: each returns 0 when done, 1 when its slice is over, or an error ---- */

#define SORT_RUN 1024 /* the merge sort's first runs, each sorted by qsort */

/* q->ser sorted by q->cmp: qsort of runs, then bottom-up merges into q->tmp and back, each
 * resumable at any element. The orders are total (host and key name one series), so the
 * result is the one qsort gives. */
static int phase_sort(struct query *q)
{
	size_t n = q->nser;

	if (n <= SORT_RUN) {
		if (n > 1) /* never qsort a NULL base: undefined even for 0 */
			qsort(q->ser, n, sizeof(struct qser), q->cmp);
		return 0;
	}
	if (q->sw == 0) {
		for (; q->slo < n; q->slo += SORT_RUN) {
			if (query_yield(q, 1))
				return 1;
			qsort(q->ser + q->slo, n - q->slo < SORT_RUN ? n - q->slo : SORT_RUN,
			      sizeof(struct qser), q->cmp);
		}
		if (q->captmp < n) {
			if (grow((void **)&q->tmp, n, sizeof(struct qser)) < 0)
				return OUTPOST_E_INTERNAL;
			q->captmp = n;
		}
		q->sw = SORT_RUN;
		q->slo = 0;
		q->sk = SIZE_MAX;
	}
	while (q->sw < n) {
		for (; q->slo < n; q->slo += 2 * q->sw, q->sk = SIZE_MAX) {
			size_t mid = n - q->slo < q->sw ? n : q->slo + q->sw;
			size_t hi = n - q->slo < 2 * q->sw ? n : q->slo + 2 * q->sw;
			if (q->sk == SIZE_MAX) {
				q->si = q->slo;
				q->sj = mid;
				q->sk = q->slo;
			}
			while (q->sk < hi) {
				if (query_yield(q, 1024))
					return 1;
				if (q->si < mid &&
				    (q->sj >= hi || q->cmp(&q->ser[q->si], &q->ser[q->sj]) <= 0))
					q->tmp[q->sk++] = q->ser[q->si++];
				else
					q->tmp[q->sk++] = q->ser[q->sj++];
			}
		}
		{
			struct qser *t = q->ser;
			size_t c = q->capser;
			q->ser = q->tmp;
			q->capser = q->captmp;
			q->tmp = t;
			q->captmp = c;
		}
		q->sw *= 2;
		q->slo = 0;
		q->sk = SIZE_MAX;
	}
	return 0;
}

static int phase_collect(struct query *q, struct tsdb *db, char *msg, size_t msglen)
{
	struct collect *c = &q->c;

	c->yield = 0;
	tsdb_series_each_at(db, q->name, &q->pos, collect_one, c);
	if (c->yield)
		return 1;
	if (c->over)
		return collect_over(msg, msglen);
	if (c->oom) {
		snprintf(msg, msglen, "out of memory");
		return OUTPOST_E_INTERNAL;
	}
	collect_fix(q);
	return 0;
}

/* Range queries, once the series are known: resolution, step, the bounds on the work. */
static int range_prep(struct query *q, struct tsdb *db, char *msg, size_t msglen)
{
	const struct query_params *p = q->p;
	int64_t keep[TSDB_NRES], iv[TSDB_NRES];
	char a[32], b[32], c[32];

	if (q->c.total > QUERY_MAX_SERIES) {
		snprintf(msg, msglen,
		         "%zu series of %s match, at most %d per query: narrow the hosts "
		         "(hosts=SELECTOR) or the labels (match=label=value)",
		         q->c.total, p->name ? p->name : "any name", QUERY_MAX_SERIES);
		return OUTPOST_E_TOO_LARGE;
	}
	for (int r = 0; r < TSDB_NRES; r++) {
		keep[r] = tsdb_keep_ms(db, r);
		iv[r] = tsdb_interval_ms(r);
	}
	query_pick(keep, iv, TSDB_NRES, q->now, p->from, p->to, p->step, &q->res, &q->step);
	q->start = floor_div(p->from, q->step) * q->step;
	q->nb = (size_t)((p->to - q->start + q->step - 1) / q->step);
	if (q->nb > QUERY_MAX_POINTS) {
		int64_t need = (p->to - p->from + QUERY_MAX_POINTS - 1) / QUERY_MAX_POINTS;
		need = (need + 999) / 1000 * 1000;
		fmt_span(a, sizeof(a), q->step);
		fmt_span(b, sizeof(b), p->to - p->from);
		fmt_span(c, sizeof(c), need);
		snprintf(msg, msglen,
		         "step %s is too small for a range of %s: %zu points per series, at most "
		         "%d; use step=%s or more",
		         a, b, q->nb, QUERY_MAX_POINTS, c);
		return OUTPOST_E_BAD_ARGS;
	}
	if (q->nser * q->nb > QUERY_MAX_CELLS) {
		snprintf(msg, msglen,
		         "%zu series x %zu steps is too much for one query (at most %d): raise "
		         "step, shorten the range, or narrow hosts= or match=",
		         q->nser, q->nb, QUERY_MAX_CELLS);
		return OUTPOST_E_TOO_LARGE;
	}
	if (query_reserve_steps(q, q->nb) < 0) {
		snprintf(msg, msglen, "out of memory");
		return OUTPOST_E_INTERNAL;
	}
	q->cmp = p->agg == QUERY_AGG_NONE ? cmp_host_key : cmp_key_host;
	return 0;
}

/* Range queries, once sorted: the bound on percentiles' groups, and the answer's head. */
static int range_head(struct query *q, struct buf *out, char *msg, size_t msglen)
{
	const struct query_params *p = q->p;
	size_t biggest = 0;

	if (p->agg != QUERY_AGG_NONE) {
		for (size_t i = 0, j; i < q->nser; i = j) {
			for (j = i + 1; j < q->nser && strcmp(q->ser[j].key, q->ser[i].key) == 0;
			     j++)
				;
			if (j - i > biggest)
				biggest = j - i;
		}
		if (p->agg == QUERY_AGG_PCT && biggest * q->nb > QUERY_MAX_PCT_CELLS) {
			snprintf(msg, msglen,
			         "%s across %zu hosts x %zu steps is too much (at most %d): raise "
			         "step, shorten the range, or narrow hosts=",
			         p->agg_name, biggest, q->nb, QUERY_MAX_PCT_CELLS);
			return OUTPOST_E_TOO_LARGE;
		}
	}
	if (buf_printf(out,
	               "{\"resolution\":\"%s\",\"from\":%" PRId64 ",\"to\":%" PRId64
	               ",\"step_ms\":%" PRId64 ",\"agg\":\"%s\",\"series\":[",
	               tsdb_res_name(q->res), q->start, p->to, q->step, p->agg_name) < 0) {
		snprintf(msg, msglen, "out of memory");
		return OUTPOST_E_INTERNAL;
	}
	return 0;
}

/* Groups of series with the same labels (sorted by key), aggregated across their hosts: the
 * group [pos, gj), folded member by member (gk the next), then written. */
static int range_agg(struct query *q, struct tsdb *db, struct buf *out)
{
	const struct query_params *p = q->p;
	size_t nb = q->nb;
	int rc = 0;

	while (rc == 0 && q->pos < q->nser) {
		size_t i = q->pos, gsize;
		int first = 1;
		if (q->gk == i) { /* a new group */
			for (q->gj = i + 1;
			     q->gj < q->nser && strcmp(q->ser[q->gj].key, q->ser[i].key) == 0;
			     q->gj++)
				;
			for (size_t b = 0; b < nb; b++) {
				q->asum[b] = 0;
				q->an[b] = 0;
				q->amin[b] = NAN;
				q->amax[b] = NAN;
				q->vn[b] = 0;
			}
		}
		gsize = q->gj - i;
		if (p->agg == QUERY_AGG_PCT && gsize * nb > q->capvals) {
			if (grow((void **)&q->vals, gsize * nb, sizeof(double)) < 0)
				return OUTPOST_E_INTERNAL;
			q->capvals = gsize * nb;
		}
		for (; q->gk < q->gj; q->gk++) {
			if (query_yield(q, 1))
				return 1;
			if (fold(q, db, q->ser[q->gk].id, q->res, q->start, p->to, q->step, nb) < 0)
				return QUERY_E_STORE;
			for (size_t b = 0; b < nb; b++) {
				double v;
				if (q->cnt[b] <= 0)
					continue;
				v = q->sum[b] / q->cnt[b];
				q->asum[b] += v;
				q->an[b] += 1;
				q->amin[b] = fmin(q->amin[b], v);
				q->amax[b] = fmax(q->amax[b], v);
				if (p->agg == QUERY_AGG_PCT)
					q->vals[b * gsize + q->vn[b]++] = v;
			}
		}
		rc = buf_puts(out, q->ng++ ? ",{\"labels\":" : "{\"labels\":");
		rc = rc ? rc : put_labels(out, &q->ser[i]);
		rc = rc ? rc : buf_puts(out, ",\"points\":[");
		for (size_t b = 0; rc == 0 && b < nb; b++) {
			double v;
			if (q->an[b] == 0)
				continue;
			switch (p->agg) {
			case QUERY_AGG_AVG:
				v = q->asum[b] / q->an[b];
				break;
			case QUERY_AGG_MIN:
				v = q->amin[b];
				break;
			case QUERY_AGG_MAX:
				v = q->amax[b];
				break;
			case QUERY_AGG_SUM:
				v = q->asum[b];
				break;
			case QUERY_AGG_COUNT:
				v = q->an[b];
				break;
			default:
				v = query_quantile(&q->vals[b * gsize], q->vn[b], p->pct);
				break;
			}
			rc = put_point(out, &first, q->start + (int64_t)b * q->step, v);
		}
		rc = rc ? rc : buf_puts(out, "]}");
		q->pos = q->gj; /* == gk: the next group is new */
	}
	return rc < 0 ? OUTPOST_E_INTERNAL : 0;
}

/* One series per host: each folded and written in turn. */
static int range_each(struct query *q, struct tsdb *db, struct buf *out)
{
	int rc = 0;

	for (; rc == 0 && q->pos < q->nser; q->pos++) {
		const struct qser *s = &q->ser[q->pos];
		int first = 1;
		if (query_yield(q, 1))
			return 1;
		if (fold(q, db, s->id, q->res, q->start, q->p->to, q->step, q->nb) < 0)
			return QUERY_E_STORE;
		rc = buf_puts(out, q->pos ? "," : "");
		rc = rc ? rc : put_series_head(out, s, 0);
		rc = rc ? rc : buf_puts(out, ",\"points\":[");
		for (size_t k = 0; rc == 0 && k < q->nb; k++)
			if (q->cnt[k] > 0)
				rc = put_point(out, &first, q->start + (int64_t)k * q->step,
				               q->sum[k] / q->cnt[k]);
		rc = rc ? rc : buf_puts(out, "]}");
	}
	return rc < 0 ? OUTPOST_E_INTERNAL : 0;
}

/* series and latest: the matched series (latest: those with a sample), and whether the limit
 * cut the list. */
static int list_write(struct query *q, struct buf *out)
{
	int rc = 0;

	if (q->pos == 0 && q->nw == 0)
		rc = buf_puts(out, q->kind == QK_SERIES ? "{\"series\":[" : "{\"samples\":[");
	for (; rc == 0 && q->pos < q->nser; q->pos++) {
		const struct qser *s = &q->ser[q->pos];
		if (query_yield(q, 64))
			return 1;
		if (q->kind == QK_SERIES) {
			if (q->pos)
				rc = buf_append(out, ",", 1);
			rc = rc ? rc : put_series_head(out, s, 1);
			rc = rc ? rc
			        : buf_printf(out,
			                     ",\"first_ms\":%" PRId64 ",\"last_ms\":%" PRId64 "}",
			                     s->first_ms, s->last_ms);
			continue;
		}
		if (s->last_ms <= 0)
			continue;
		if (q->nw++)
			rc = buf_append(out, ",", 1);
		rc = rc ? rc : put_series_head(out, s, 1);
		rc = rc ? rc : buf_printf(out, ",\"t\":%" PRId64 ",\"value\":", s->last_ms);
		rc = rc ? rc : query_put_number(out, s->last_value, 0);
		rc = rc ? rc : buf_append(out, "}", 1);
	}
	rc = rc ? rc
	        : buf_printf(out, "],\"truncated\":%s}", q->c.total > q->nser ? "true" : "false");
	return rc < 0 ? OUTPOST_E_INTERNAL : 0;
}

static int put_prom_label(struct buf *b, int *first, const char *name, const char *value)
{
	int rc = *first ? 0 : buf_append(b, ",", 1);

	*first = 0;
	rc = rc ? rc : buf_puts(b, name);
	rc = rc ? rc : buf_append(b, "=\"", 2);
	rc = rc ? rc : buf_put_label_value(b, value);
	return rc ? rc : buf_append(b, "\"", 1);
}

/* /federate: one line per series, grouped by name. */
static int federate_write(struct query *q, struct buf *out)
{
	int rc = 0;

	for (; rc == 0 && q->pos < q->nser; q->pos++) {
		const struct qser *s = &q->ser[q->pos];
		int first = 1, host_done = 0;
		if (query_yield(q, 64))
			return 1;
		/* # HELP and # TYPE come from prom_respond, as for every daemon's metrics. */
		rc = buf_puts(out, s->name);
		rc = rc ? rc : buf_append(out, "{", 1);
		/* host among the others, so the labels stay sorted by name */
		for (size_t k = 0; rc == 0 && k < s->nlabels; k++) {
			if (!host_done && strcmp(s->labels[2 * k], "host") > 0) {
				rc = put_prom_label(out, &first, "host", s->host);
				host_done = 1;
			}
			rc = rc ? rc
			        : put_prom_label(out, &first, s->labels[2 * k],
			                         s->labels[2 * k + 1]);
		}
		if (rc == 0 && !host_done)
			rc = put_prom_label(out, &first, "host", s->host);
		rc = rc ? rc : buf_append(out, "} ", 2);
		rc = rc ? rc : query_put_number(out, s->last_value, 1);
		rc = rc ? rc : buf_append(out, " ", 1);
		rc = rc ? rc : put_i64(out, s->last_ms);
		rc = rc ? rc : buf_append(out, "\n", 1);
	}
	return rc < 0 ? OUTPOST_E_INTERNAL : 0;
}

/* ---- a query, begun and then run in slices ---- */

static void query_begin(struct query *q, struct tsdb *db, int kind, const char *name)
{
	query_trim(q);
	q->kind = kind;
	q->phase = QP_COLLECT;
	q->name = name;
	q->gen = tsdb_generation(db);
	q->pos = q->nw = 0;
	q->sw = q->slo = 0;
	q->gj = q->gk = q->ng = 0;
	memset(&q->c, 0, sizeof(q->c));
	q->c.q = q;
}

static void query_begin_api(struct query *q, struct tsdb *db, int kind,
                            const struct query_params *p, const struct query_hosts *hosts,
                            size_t max, int64_t now)
{
	query_begin(q, db, kind, p->name);
	q->p = p;
	q->now = now;
	q->c.m = p->m;
	q->c.nm = p->nm;
	q->c.hosts = hosts;
	q->c.max = max;
	q->c.min_last = kind == QK_LATEST ? 1 : 0;
	q->cmp = cmp_host_key;
}

void query_begin_series(struct query *q, struct tsdb *db, const struct query_params *p,
                        const struct query_hosts *hosts)
{
	query_begin_api(q, db, QK_SERIES, p, hosts, p->limit, 0);
}

void query_begin_latest(struct query *q, struct tsdb *db, const struct query_params *p,
                        const struct query_hosts *hosts)
{
	query_begin_api(q, db, QK_LATEST, p, hosts, p->limit, 0);
}

void query_begin_range(struct query *q, struct tsdb *db, const struct query_params *p,
                       const struct query_hosts *hosts, int64_t now)
{
	query_begin_api(q, db, QK_RANGE, p, hosts, QUERY_MAX_SERIES, now);
}

void query_begin_federate(struct query *q, struct tsdb *db, const char *name,
                          struct query_matcher *const *sel, const size_t *nsel, size_t nsels,
                          int64_t now)
{
	query_begin(q, db, QK_FEDERATE, name);
	q->p = NULL;
	q->now = now;
	q->c.sel = sel;
	q->c.nsel = nsel;
	q->c.nsels = nsels;
	q->c.min_last = now - QUERY_FEDERATE_MS;
	q->c.max = (size_t)-1;
	q->cmp = cmp_name_key_host;
}

void query_end(struct query *q)
{
	if (q)
		query_trim(q);
}

int query_run(struct query *q, struct tsdb *db, int64_t until_ms, struct buf *out, char *msg,
              size_t msglen)
{
	int rc = 0;

	if (msglen)
		msg[0] = '\0';
	q->until = until_ms;
	q->ticks = 0;
	if (q->phase == QP_IDLE) {
		snprintf(msg, msglen, "no query under way");
		return OUTPOST_E_INTERNAL;
	}
	if (tsdb_generation(db) != q->gen) {
		snprintf(msg, msglen,
		         "the time-series store was reloaded while the query ran (a write to "
		         "metrics.db failed, see the hub's log): run the query again");
		rc = OUTPOST_E_UNAVAILABLE;
		goto end;
	}
	if (q->phase == QP_COLLECT) {
		if ((rc = phase_collect(q, db, msg, msglen)) != 0)
			goto end;
		if (q->kind == QK_RANGE && (rc = range_prep(q, db, msg, msglen)) < 0)
			goto end;
		q->phase = QP_SORT;
		q->pos = 0;
	}
	if (q->phase == QP_SORT) {
		if ((rc = phase_sort(q)) != 0)
			goto end;
		if (q->kind == QK_RANGE && (rc = range_head(q, out, msg, msglen)) < 0)
			goto end;
		q->phase = QP_WRITE;
	}
	switch (q->kind) {
	case QK_RANGE:
		rc = q->p->agg != QUERY_AGG_NONE ? range_agg(q, db, out) : range_each(q, db, out);
		if (rc == 0)
			rc = buf_puts(out, "]}") < 0 ? OUTPOST_E_INTERNAL : 0;
		break;
	case QK_FEDERATE:
		rc = federate_write(q, out);
		break;
	default:
		rc = list_write(q, out);
		break;
	}
	if (rc == QUERY_E_STORE) {
		snprintf(msg, msglen, "reading the time-series store failed: see the hub's log");
		rc = OUTPOST_E_INTERNAL;
	} else if (rc == OUTPOST_E_INTERNAL) {
		snprintf(msg, msglen, "out of memory");
	}
end:
	if (rc == 1)
		return QUERY_MORE;
	if (rc == OUTPOST_E_INTERNAL && !msg[0])
		snprintf(msg, msglen, "out of memory");
	query_trim(q);
	return rc;
}

/* ---- the same at once ---- */

static int query_all(struct query *q, struct tsdb *db, struct buf *out, char *msg, size_t msglen)
{
	return query_run(q, db, 0, out, msg, msglen);
}

int query_series(struct query *q, struct tsdb *db, const struct query_params *p,
                 const struct query_hosts *hosts, struct buf *out, char *msg, size_t msglen)
{
	query_begin_series(q, db, p, hosts);
	return query_all(q, db, out, msg, msglen);
}

int query_latest(struct query *q, struct tsdb *db, const struct query_params *p,
                 const struct query_hosts *hosts, struct buf *out, char *msg, size_t msglen)
{
	query_begin_latest(q, db, p, hosts);
	return query_all(q, db, out, msg, msglen);
}

int query_range(struct query *q, struct tsdb *db, const struct query_params *p,
                const struct query_hosts *hosts, int64_t now, struct buf *out, char *msg,
                size_t msglen)
{
	query_begin_range(q, db, p, hosts, now);
	return query_all(q, db, out, msg, msglen);
}

int query_federate(struct query *q, struct tsdb *db, const char *name,
                   struct query_matcher *const *sel, const size_t *nsel, size_t nsels, int64_t now,
                   struct buf *out)
{
	char msg[400];

	query_begin_federate(q, db, name, sel, nsel, nsels, now);
	return query_all(q, db, out, msg, sizeof(msg));
}
