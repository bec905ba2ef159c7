/* The metric query routes: GET /api/v1/metrics/series, /latest, /query and GET /federate.
 * Parameters come from the query string, hosts= through the selector language against the
 * registry; the engine (query.c) writes the answer's text, which this file wraps in the one
 * envelope (or answers as Prometheus text for /federate).
 *
 * The loop is never held long by one query: each runs in slices of QAPI_SLICE_MS. One that
 * ends in its first slice is answered at once; one that does not waits, suspended, in a queue
 * whose timer runs one slice per turn of the loop (round robin), so that every other request
 * is served between two slices. At most metrics.query_max_running queries wait so (past it:
 * busy), and each is stopped at metrics.query_timeout_s (timeout). docs/metrics.md. */
#include "hub_impl.h"
#include "registry.h"
#include "query.h"
#include "core/clk.h"
#include "core/err.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/prom.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { QAPI_SERIES, QAPI_LATEST, QAPI_QUERY, QAPI_FEDERATE };

/* A slice of a query: short enough that a request arriving meanwhile waits little for it,
 * long enough that the turns of the loop between slices cost next to nothing. */
#define QAPI_SLICE_MS 10

static int qapi_ready(struct hub *h, struct httpd_req *req)
{
	if (!h->tsdb) {
		httpd_respond_error(req, OUTPOST_E_UNAVAILABLE,
		                    "the time-series store is not open: see the hub's log");
		return -1;
	}
	return 0;
}

/* The hosts a request may see. */
struct qapi_hosts {
	json_t *ids;    /* the selector's matches */
	const char **v; /* their ids, sorted */
	struct query_hosts qh;
};

static int qapi_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void qapi_hosts_free(struct qapi_hosts *hs)
{
	json_decref(hs->ids);
	free(hs->v);
}

/* hosts=SELECTOR (docs/selectors.md), any host state: a revoked host's history stays
 * readable. Absent or "*": every host, without reading the registry. 0, or negative after
 * answering. */
static int qapi_hosts(struct hub *h, struct httpd_req *req, struct qapi_hosts *hs)
{
	const char *sel = httpd_req_query(req, "hosts");
	char msg[400];
	size_t i, n;
	json_t *v;
	int rc;

	memset(hs, 0, sizeof(*hs));
	if (!sel || strcmp(sel, "*") == 0)
		return 0;
	rc = registry_select(h, sel, REGISTRY_ANY_CACHED, &hs->ids, msg, sizeof(msg));
	if (rc < 0) {
		httpd_respond_error(req, rc, "hosts: %s", msg);
		return rc;
	}
	n = json_array_size(hs->ids);
	if (!(hs->v = malloc((n ? n : 1) * sizeof(char *)))) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		return OUTPOST_E_INTERNAL;
	}
	json_array_foreach(hs->ids, i, v) hs->v[i] = json_string_value(v);
	qsort(hs->v, n, sizeof(char *), qapi_cmp_str);
	hs->qh.ids = hs->v; /* not NULL even when empty: no host at all */
	hs->qh.n = n;
	return 0;
}

/* A parameter the route does not take is refused, not ignored: `steps=5m` must not quietly
 * give the default step. 0, or -1 after answering. */
static int qapi_known(struct httpd_req *req, const char *const *known, const char *list)
{
	const char *bad = httpd_req_query_unknown(req, known);

	if (!bad)
		return 0;
	httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
	                    "unknown parameter '%.64s': this route takes %s", bad, list);
	return -1;
}

/* A query under way, with everything the engine borrows. */
struct qjob {
	struct hub *h;
	struct httpd_req *req;
	int kind;
	struct query *q; /* the engine (the hub's spare one when it was free) */
	struct query_params p;
	struct qapi_hosts hs;
	const char *match[QUERY_MAX_MATCHERS + 1];
	/* /federate's selectors: nsels parsed, each sel[i] = m[i] with nsel[i] matchers */
	struct query_matcher (*m)[QUERY_MAX_MATCHERS];
	struct query_matcher *sel[QUERY_FEDERATE_SELECTORS];
	size_t nsel[QUERY_FEDERATE_SELECTORS], nsels;
	struct buf out;
	int64_t deadline; /* monotonic ms */
	struct qjob *next;
};

static struct qjob *qjob_new(struct hub *h, struct httpd_req *req, int kind)
{
	struct qjob *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->h = h;
	j->req = req;
	j->kind = kind;
	if (h->query) {
		j->q = h->query;
		h->query = NULL;
	} else if (!(j->q = query_new())) {
		free(j);
		return NULL;
	}
	j->deadline = clk_mono_ms() + h->conf->metrics.query_timeout_s * 1000;
	return j;
}

static void qjob_free(struct qjob *j)
{
	if (!j)
		return;
	query_end(j->q);
	if (!j->h->query)
		j->h->query = j->q; /* kept for the next query: its arrays are warm */
	else
		query_free(j->q);
	for (size_t i = 0; i < j->nsels; i++)
		for (size_t k = 0; k < j->nsel[i]; k++)
			query_matcher_clear(&j->m[i][k]);
	free(j->m);
	buf_free(&j->out);
	qapi_hosts_free(&j->hs);
	query_params_clear(&j->p);
	free(j);
}

/* Answers j's request from what query_run returned, and frees j. */
static void qjob_answer(struct qjob *j, int rc, const char *msg)
{
	struct httpd_req *req = j->req;

	if (rc == 0 && j->kind == QAPI_FEDERATE) {
		prom_respond(req, j->out.data, j->out.len);
	} else if (rc == 0) {
		if (buf_append(&j->out, "}", 1) < 0)
			httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		else
			httpd_respond_text(req, 200, "application/json", j->out.data, j->out.len);
	} else if (j->kind == QAPI_FEDERATE && rc == OUTPOST_E_TOO_LARGE) {
		httpd_respond_error(
		    req, rc, "%s",
		    "the selectors' label regexes would take more of the hub's time "
		    "than one query may: give name= or exact matchers "
		    "(label=\"value\") to narrow the series first");
	} else {
		if (rc == OUTPOST_E_INTERNAL)
			log_error(j->h->log, "query", "%s: %s", httpd_req_path(req), msg);
		httpd_respond_error(req, rc, "%s", msg);
	}
	qjob_free(j);
}

/* One slice of j: QUERY_MORE, or the query's end (j answered and freed). */
static int qjob_slice(struct qjob *j)
{
	int64_t until = clk_mono_ms() + QAPI_SLICE_MS;
	char msg[600];
	int rc;

	if (until > j->deadline)
		until = j->deadline;
	rc = query_run(j->q, j->h->tsdb, until, &j->out, msg, sizeof(msg));
	if (rc == QUERY_MORE && clk_mono_ms() >= j->deadline) {
		j->h->st.queries_timeout++;
		rc = OUTPOST_E_TIMEOUT;
		snprintf(msg, sizeof(msg),
		         "the query ran past metrics.query_timeout_s (%lld s) and was stopped: "
		         "narrow it (name=, match=, hosts=), shorten the range or raise step",
		         (long long)j->h->conf->metrics.query_timeout_s);
	}
	if (rc == QUERY_MORE)
		return rc;
	qjob_answer(j, rc, msg);
	return 0;
}

/* The queue's timer: one slice of the first query, which then goes to the back. */
static void qjob_on_timer(void *arg)
{
	struct hub *h = arg;
	struct qjob *j = h->qjobs, **tail;

	if (!j) {
		loop_timer_del(h->loop, h->qtimer);
		h->qtimer = NULL;
		return;
	}
	h->qjobs = j->next;
	h->nqjobs--;
	j->next = NULL;
	if (qjob_slice(j) == QUERY_MORE) {
		for (tail = &h->qjobs; *tail; tail = &(*tail)->next)
			;
		*tail = j;
		h->nqjobs++;
	}
	if (!h->qjobs) {
		loop_timer_del(h->loop, h->qtimer);
		h->qtimer = NULL;
	}
}

/* Runs j's first slice; a query that needs more waits in the queue, if there is room. */
static void qjob_start(struct qjob *j)
{
	struct hub *h = j->h;
	struct qjob **tail;
	json_int_t max = h->conf->metrics.query_max_running;

	if (qjob_slice(j) != QUERY_MORE)
		return;
	if ((json_int_t)h->nqjobs >= max) {
		h->st.queries_busy++;
		httpd_respond_error(j->req, OUTPOST_E_BUSY,
		                    "%lld big metric queries are under way already "
		                    "(metrics.query_max_running): try again in a moment, or narrow "
		                    "this one (name=, match=, hosts=, a shorter range)",
		                    (long long)max);
		qjob_free(j);
		return;
	}
	if (!h->qtimer && loop_timer_add(h->loop, 1, 1, qjob_on_timer, h, &h->qtimer) < 0) {
		httpd_respond_error(j->req, OUTPOST_E_INTERNAL, "out of memory");
		qjob_free(j);
		return;
	}
	for (tail = &h->qjobs; *tail; tail = &(*tail)->next)
		;
	*tail = j;
	h->nqjobs++;
	h->st.queries_sliced++;
}

void query_api_release_all(struct hub *h)
{
	while (h->qjobs) {
		struct qjob *j = h->qjobs;
		h->qjobs = j->next;
		httpd_respond_error(j->req, OUTPOST_E_UNAVAILABLE,
		                    "the hub is stopping: run the query again on its next start");
		qjob_free(j);
	}
	h->nqjobs = 0;
	loop_timer_del(h->loop, h->qtimer);
	h->qtimer = NULL;
}

void query_api_stats(struct hub *h, struct buf *b)
{
	buf_printf(b,
	           "# HELP outpost_hub_queries_running Metric queries under way in slices now.\n"
	           "# TYPE outpost_hub_queries_running gauge\n"
	           "outpost_hub_queries_running %zu\n"
	           "# HELP outpost_hub_queries_total Metric queries that needed more than one "
	           "slice of the loop, by outcome (sliced: queued to run in slices; busy: refused "
	           "at metrics.query_max_running; timeout: stopped at metrics.query_timeout_s).\n"
	           "# TYPE outpost_hub_queries_total counter\n"
	           "outpost_hub_queries_total{outcome=\"sliced\"} %llu\n"
	           "outpost_hub_queries_total{outcome=\"busy\"} %llu\n"
	           "outpost_hub_queries_total{outcome=\"timeout\"} %llu\n",
	           h->nqjobs, h->st.queries_sliced, h->st.queries_busy, h->st.queries_timeout);
}

static void qapi_run(struct hub *h, struct httpd_req *req, int kind)
{
	static const char *const known_query[] = {"name", "match", "hosts", "from",
	                                          "to",   "step",  "agg",   NULL};
	static const char *const known_list[] = {"name", "match", "hosts", "limit", NULL};
	struct query_args a = {0};
	struct qjob *j;
	int64_t now = clk_real_ms();
	char msg[600];
	int rc;

	if (qapi_ready(h, req) < 0)
		return;
	if (kind == QAPI_QUERY
	        ? qapi_known(req, known_query, "name, match, hosts, from, to, step, agg")
	        : qapi_known(req, known_list, "name, match, hosts, limit"))
		return;
	if (!(j = qjob_new(h, req, kind))) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		return;
	}
	a.name = httpd_req_query(req, "name");
	a.nmatch = httpd_req_query_all(req, "match", j->match, QUERY_MAX_MATCHERS + 1);
	a.match = j->match;
	if (kind == QAPI_QUERY) {
		a.from = httpd_req_query(req, "from");
		a.to = httpd_req_query(req, "to");
		a.step = httpd_req_query(req, "step");
		a.agg = httpd_req_query(req, "agg");
	} else {
		a.limit = httpd_req_query(req, "limit");
	}
	rc = query_parse(&a, now, kind != QAPI_SERIES, &j->p, msg, sizeof(msg));
	if (rc < 0) {
		httpd_respond_error(req, rc, "%s", msg);
		goto fail;
	}
	if (qapi_hosts(h, req, &j->hs) < 0)
		goto fail;
	if (buf_puts(&j->out, "{\"ok\":true,\"result\":") < 0) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		goto fail;
	}
	if (kind == QAPI_SERIES)
		query_begin_series(j->q, h->tsdb, &j->p, &j->hs.qh);
	else if (kind == QAPI_LATEST)
		query_begin_latest(j->q, h->tsdb, &j->p, &j->hs.qh);
	else
		query_begin_range(j->q, h->tsdb, &j->p, &j->hs.qh, now);
	qjob_start(j);
	return;
fail:
	qjob_free(j);
}

void query_api_series(void *ctx, struct httpd_req *req)
{
	qapi_run(ctx, req, QAPI_SERIES);
}

void query_api_latest(void *ctx, struct httpd_req *req)
{
	qapi_run(ctx, req, QAPI_LATEST);
}

void query_api_query(void *ctx, struct httpd_req *req)
{
	qapi_run(ctx, req, QAPI_QUERY);
}

/* GET /federate?match[]=SELECTOR&name=NAME: what Prometheus's federation scrapes. */
void query_api_federate(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	const char *texts[QUERY_FEDERATE_SELECTORS + 1];
	struct query_args a = {0};
	struct qjob *j;
	size_t nsels;
	char msg[600];
	int rc;

	static const char *const known[] = {"match[]", "name", NULL};
	if (qapi_ready(h, req) < 0 || qapi_known(req, known, "match[] and name") < 0)
		return;
	nsels = httpd_req_query_all(req, "match[]", texts, QUERY_FEDERATE_SELECTORS + 1);
	if (nsels > QUERY_FEDERATE_SELECTORS) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "match[]: at most %d selectors",
		                    QUERY_FEDERATE_SELECTORS);
		return;
	}
	if (!(j = qjob_new(h, req, QAPI_FEDERATE))) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		return;
	}
	a.name = httpd_req_query(req, "name");
	if ((rc = query_parse(&a, clk_real_ms(), 0, &j->p, msg, sizeof(msg))) < 0) {
		httpd_respond_error(req, rc, "%s", msg);
		goto fail;
	}
	if (nsels && !(j->m = calloc(nsels, sizeof(*j->m)))) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		goto fail;
	}
	for (j->nsels = 0; j->nsels < nsels; j->nsels++) {
		size_t i = j->nsels;
		rc = query_selector_parse(texts[i], j->m[i], QUERY_MAX_MATCHERS, &j->nsel[i], msg,
		                          sizeof(msg));
		if (rc < 0) {
			httpd_respond_error(req, rc, "%s", msg);
			goto fail;
		}
		j->sel[i] = j->m[i];
	}
	query_begin_federate(j->q, h->tsdb, j->p.name, j->sel, j->nsel, j->nsels, clk_real_ms());
	qjob_start(j);
	return;
fail:
	qjob_free(j);
}
