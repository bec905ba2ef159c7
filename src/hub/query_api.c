/* The metric query routes: GET /api/v1/metrics/series, /latest, /query and GET /federate.
 * Parameters come from the query string, hosts= through the selector language against the
 * registry; the engine (query.c) writes the answer's text, which this file wraps in the one
 * envelope (or answers as Prometheus text for /federate). */
#include "hub_impl.h"
#include "registry.h"
#include "query.h"
#include "core/prom.h"
#include "core/clk.h"
#include "core/err.h"

#include <stdlib.h>
#include <string.h>

enum { QAPI_SERIES, QAPI_LATEST, QAPI_QUERY };

static int qapi_ready(struct hub *h, struct httpd_req *req)
{
	if (!h->tsdb) {
		httpd_respond_error(req, OUTPOST_E_UNAVAILABLE,
		                    "the time-series store is not open: see the hub's log");
		return -1;
	}
	if (!h->query && !(h->query = query_new())) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
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

static void qapi_run(struct hub *h, struct httpd_req *req, int kind)
{
	static const char *const known_query[] = {"name", "match", "hosts", "from",
	                                          "to",   "step",  "agg",   NULL};
	static const char *const known_list[] = {"name", "match", "hosts", "limit", NULL};
	const char *match[QUERY_MAX_MATCHERS + 1];
	struct query_args a = {0};
	struct query_params p;
	struct qapi_hosts hs = {0};
	struct buf out = BUF_INIT;
	int64_t now = clk_real_ms();
	char msg[600];
	int rc;

	if (qapi_ready(h, req) < 0)
		return;
	if (kind == QAPI_QUERY
	        ? qapi_known(req, known_query, "name, match, hosts, from, to, step, agg")
	        : qapi_known(req, known_list, "name, match, hosts, limit"))
		return;
	a.name = httpd_req_query(req, "name");
	a.nmatch = httpd_req_query_all(req, "match", match, QUERY_MAX_MATCHERS + 1);
	a.match = match;
	if (kind == QAPI_QUERY) {
		a.from = httpd_req_query(req, "from");
		a.to = httpd_req_query(req, "to");
		a.step = httpd_req_query(req, "step");
		a.agg = httpd_req_query(req, "agg");
	} else {
		a.limit = httpd_req_query(req, "limit");
	}
	rc = query_parse(&a, now, kind != QAPI_SERIES, &p, msg, sizeof(msg));
	if (rc < 0) {
		httpd_respond_error(req, rc, "%s", msg);
		return;
	}
	if (qapi_hosts(h, req, &hs) < 0)
		goto out;
	if (buf_puts(&out, "{\"ok\":true,\"result\":") < 0) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		goto out;
	}
	if (kind == QAPI_SERIES)
		rc = query_series(h->query, h->tsdb, &p, &hs.qh, &out, msg, sizeof(msg));
	else if (kind == QAPI_LATEST)
		rc = query_latest(h->query, h->tsdb, &p, &hs.qh, &out, msg, sizeof(msg));
	else
		rc = query_range(h->query, h->tsdb, &p, &hs.qh, now, &out, msg, sizeof(msg));
	if (rc < 0) {
		if (rc == OUTPOST_E_INTERNAL)
			log_error(h->log, "query", "%s: %s", httpd_req_path(req), msg);
		httpd_respond_error(req, rc, "%s", msg);
		goto out;
	}
	if (buf_append(&out, "}", 1) < 0) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		goto out;
	}
	httpd_respond_text(req, 200, "application/json", out.data, out.len);
out:
	buf_free(&out);
	qapi_hosts_free(&hs);
	query_params_clear(&p);
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
	struct query_matcher(*m)[QUERY_MAX_MATCHERS] = NULL;
	struct query_matcher *sel[QUERY_FEDERATE_SELECTORS];
	size_t nsel[QUERY_FEDERATE_SELECTORS] = {0}, nsels, done = 0;
	struct query_args a = {0};
	struct query_params p = {0};
	struct buf out = BUF_INIT;
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
	a.name = httpd_req_query(req, "name");
	if ((rc = query_parse(&a, clk_real_ms(), 0, &p, msg, sizeof(msg))) < 0) {
		httpd_respond_error(req, rc, "%s", msg);
		return;
	}
	if (nsels && !(m = calloc(nsels, sizeof(*m)))) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		goto out;
	}
	for (done = 0; done < nsels; done++) {
		rc = query_selector_parse(texts[done], m[done], QUERY_MAX_MATCHERS, &nsel[done],
		                          msg, sizeof(msg));
		if (rc < 0) {
			httpd_respond_error(req, rc, "%s", msg);
			goto out;
		}
		sel[done] = m[done];
	}
	rc = query_federate(h->query, h->tsdb, p.name, sel, nsel, nsels, clk_real_ms(), &out);
	if (rc < 0) {
		httpd_respond_error(req, rc, "%s",
		                    rc == OUTPOST_E_TOO_LARGE
		                        ? "the selectors' label regexes would take more of the "
		                          "hub's time than one query may: give name= or exact "
		                          "matchers (label=\"value\") to narrow the series first"
		                        : "out of memory");
		goto out;
	}
	prom_respond(req, out.data, out.len);
out:
	for (size_t i = 0; i < done; i++)
		for (size_t k = 0; k < nsel[i]; k++)
			query_matcher_clear(&m[i][k]);
	free(m);
	buf_free(&out);
	query_params_clear(&p);
}
