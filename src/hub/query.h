/* Metric queries over the time-series store: parameters and label matchers, resolution choice,
 * bucketing by step, aggregation across hosts, and the answers' text (JSON for the API,
 * Prometheus exposition for /federate). Pure over tsdb.h: the HTTP handlers that call it are
 * in query_api.c, which runs them in slices. Loop thread only. docs/metrics.md, "Queries", is the
 * operator's page. */
#ifndef OUTPOST_HUB_QUERY_H
#define OUTPOST_HUB_QUERY_H

#include "core/buf.h"

#include <stddef.h>
#include <stdint.h>

struct tsdb;
struct re;

#define QUERY_MAX_MATCHERS 16
#define QUERY_MAX_POINTS 11000        /* steps per series, as Prometheus caps them */
#define QUERY_DEFAULT_POINTS 240      /* default step: the range in this many steps */
#define QUERY_MAX_SERIES 10000        /* series one range query may read */
#define QUERY_MAX_CELLS 20000000      /* series x steps one range query may compute */
#define QUERY_LIMIT_DEFAULT 1000      /* series and latest: default limit */
#define QUERY_LIMIT_MAX 100000        /* series and latest: largest limit */
#define QUERY_FEDERATE_MS (5 * 60000) /* /federate: samples at most this old */
#define QUERY_FEDERATE_SELECTORS 16   /* match[] parameters */
/* Label regex matches one query may make (a value of 256 bytes or more counts once more per
 * 256): RE2 makes each linear, this bounds their sum, so that a query's regexes hold the
 * hub's loop no more than ~40 ms (about 0.2 us a match, docs/metrics.md). Past it: TOO_LARGE. */
#define QUERY_MAX_RE_WORK 200000

enum query_op {
	QUERY_EQ,  /* label=value */
	QUERY_NE,  /* label!=value */
	QUERY_RE,  /* label=~regex (RE2 syntax, anchored at both ends: re.h) */
	QUERY_NRE, /* label!~regex */
};

/* A label matcher. A label a series does not have has the value "" (as in Prometheus), so
 * `dc!=sh` matches a series without dc. The labels "host" and "__name__" match the series'
 * host and name. */
struct query_matcher {
	char *label; /* owned */
	char *value; /* owned */
	int op;
	struct re *re; /* owned; for QUERY_RE and QUERY_NRE */
};

enum query_agg {
	QUERY_AGG_NONE = 0, /* one series per host */
	QUERY_AGG_AVG,
	QUERY_AGG_MIN,
	QUERY_AGG_MAX,
	QUERY_AGG_SUM,
	QUERY_AGG_COUNT,
	QUERY_AGG_PCT, /* pNN: the quantile pct of the hosts' values */
};

/* The request's parameters as text (borrowed), as they came in; NULL: absent. */
struct query_args {
	const char *name;
	const char *const *match;
	size_t nmatch;
	const char *from, *to, *step, *agg, *limit;
};

/* The parameters checked and parsed. */
struct query_params {
	char *name; /* owned; NULL: any name */
	struct query_matcher m[QUERY_MAX_MATCHERS];
	size_t nm;
	int64_t from, to; /* ms since epoch, from < to */
	int64_t step;     /* ms as asked; 0: default */
	int agg;
	double pct;        /* QUERY_AGG_PCT: 0..1 */
	char agg_name[16]; /* as it is reported: "none", "avg", "p99", "p99.9" */
	size_t limit;
};

/* Parses and checks a; now is the hub's clock (for relative times). need_name: name is
 * required (latest, query). 0, or OUTPOST_E_BAD_ARGS with msg saying which parameter is wrong
 * and how to write it (p is then cleared). */
int query_parse(const struct query_args *a, int64_t now, int need_name, struct query_params *p,
                char *msg, size_t msglen);
void query_params_clear(struct query_params *p); /* frees what p owns; p stays usable */

/* One matcher "label=value", "label!=value", "label=~re", "label!~re". 0 or BAD_ARGS. */
int query_matcher_parse(const char *text, struct query_matcher *m, char *msg, size_t msglen);
/* label, op and value given apart (Prometheus selectors). 0 or BAD_ARGS. */
int query_matcher_set(struct query_matcher *m, const char *label, int op, const char *value,
                      char *msg, size_t msglen);
void query_matcher_clear(struct query_matcher *m);
/* Whether series s matches every matcher (the rule over labels that queries use; rules.c
 * shares it). Regex matches add to *re_work. */
struct tsdb_series;
int query_series_match(const struct query_matcher *m, size_t nm, const struct tsdb_series *s,
                       size_t *re_work);

/* A time: ms since epoch, "now", or "-24h", "-90m", "-30s", "-2d", "-500ms" (before now),
 * also "now-1h". 0 or -1. */
int query_parse_time(const char *s, int64_t now, int64_t *out);
/* A step: "30s", "5m", "1h", "1d", "250ms", or a bare number of ms. 0 or -1 (also for 0). */
int query_parse_step(const char *s, int64_t *out);

/* Resolution and step for a range: the finest resolution whose retention covers from and
 * whose interval is <= the step (default step: the range / 240). The step is rounded up to a
 * multiple of the resolution's interval (whole seconds for raw data by default). keep_ms and
 * interval_ms per resolution; keep <= 0 keeps forever. */
void query_pick(const int64_t *keep_ms, const int64_t *interval_ms, int nres, int64_t now,
                int64_t from, int64_t to, int64_t step_asked, int *res, int64_t *step);

/* The value of quantile q (0..1) of v[0..n) by linear interpolation between the closest
 * ranks (Prometheus's quantile()); NaNs are left out unless all are NaN. Sorts v. */
double query_quantile(double *v, size_t n, double q);

/* Appends v as JSON: a number (shortest text that reads back the same), or "NaN", "+Inf",
 * "-Inf" as strings. prom: the exposition form (NaN, +Inf, -Inf bare). */
int query_put_number(struct buf *b, double v, int prom);
/* Appends s as a JSON string (quotes added); invalid UTF-8 becomes U+FFFD. */
int query_put_json_string(struct buf *b, const char *s);

/* The engine with its buffers, reused from one query to the next. */
struct query;
struct query *query_new(void);
void query_free(struct query *q); /* NULL ok */

/* Hosts a query may see: ids sorted by strcmp (borrowed); all NULL: every host. */
struct query_hosts {
	const char *const *ids;
	size_t n;
};

/* A query in slices, so that a big one never holds the hub's loop (docs/metrics.md): begin it,
 * then call query_run until it returns something other than QUERY_MORE. What begin is handed
 * (p, hosts, sel, nsel, name) is borrowed until then. Each query_run works until the monotonic
 * clock (clk_mono_ms) reaches until_ms (0: to the end) and returns QUERY_MORE, to be called
 * again on a later turn of the loop (ingest may write to the tsdb in between: the series were
 * copied when they matched, and a tsdb reloaded after a failed flush ends the query with
 * UNAVAILABLE); or 0 when out holds the whole answer; or a negative code with msg. Each slice
 * appends to out. One query per engine at a time; query_end drops one under way. */
#define QUERY_MORE 1
void query_begin_series(struct query *q, struct tsdb *db, const struct query_params *p,
                        const struct query_hosts *hosts);
void query_begin_latest(struct query *q, struct tsdb *db, const struct query_params *p,
                        const struct query_hosts *hosts);
void query_begin_range(struct query *q, struct tsdb *db, const struct query_params *p,
                       const struct query_hosts *hosts, int64_t now);
void query_begin_federate(struct query *q, struct tsdb *db, const char *name,
                          struct query_matcher *const *sel, const size_t *nsel, size_t nsels,
                          int64_t now);
int query_run(struct query *q, struct tsdb *db, int64_t until_ms, struct buf *out, char *msg,
              size_t msglen);
void query_end(struct query *q); /* NULL ok */

/* The same at once (begin, and run to the end). Each appends the result object's JSON text to
 * out (the caller wraps it in the envelope).
 * 0, or a negative code with msg for the caller's error envelope: BAD_ARGS (a step too
 * small, ...), TOO_LARGE (too many series: the message says how to narrow), INTERNAL. */
int query_series(struct query *q, struct tsdb *db, const struct query_params *p,
                 const struct query_hosts *hosts, struct buf *out, char *msg, size_t msglen);
int query_latest(struct query *q, struct tsdb *db, const struct query_params *p,
                 const struct query_hosts *hosts, struct buf *out, char *msg, size_t msglen);
int query_range(struct query *q, struct tsdb *db, const struct query_params *p,
                const struct query_hosts *hosts, int64_t now, struct buf *out, char *msg,
                size_t msglen);

/* /federate: a Prometheus series selector, `name`, `name{l="v",l2=~"re"}` or `{l="v"}`,
 * into matchers (the name as a __name__ matcher). 0 or BAD_ARGS; on failure the matchers
 * set so far are cleared. */
int query_selector_parse(const char *text, struct query_matcher *m, size_t max, size_t *n,
                         char *msg, size_t msglen);

/* /federate's body: the latest sample of every series (newer than now - 5 min) that matches
 * one of the selectors (sel[i] has nsel[i] matchers; nsels 0: every series), grouped by
 * name, each with host="<id>" among its labels and its timestamp in ms. name: only series
 * of that name (NULL: any). */
int query_federate(struct query *q, struct tsdb *db, const char *name,
                   struct query_matcher *const *sel, const size_t *nsel, size_t nsels, int64_t now,
                   struct buf *out);

#endif
