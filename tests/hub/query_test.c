/* The query engine (src/hub/query.c) against a small fake of the tsdb's read functions:
 * parameters, matchers, resolution choice, bucketing, every aggregation, NaN and infinities,
 * limits, /federate's text, the time one 24-hour query takes, and queries run in slices. */
#include "hub/query.h"
#include "hub/re.h"
#include "hub/tsdb.h"
#include "core/clk.h"
#include "core/err.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NOW 1764000000000LL /* a whole hour, day and minute */
#define MIN 60000LL
#define HOUR 3600000LL
#define DAY 86400000LL

/* The budget of a day's query: 10 ms, as built for use; sanitizers and -O0 slow it down. */
#if defined(__SANITIZE_ADDRESS__) || !defined(__OPTIMIZE__)
#define QUERY_TEST_BUDGET_MS 200
#else
#define QUERY_TEST_BUDGET_MS 10
#endif

/* ---- the fake tsdb ---- */

struct fser {
	struct tsdb_series s;
	const char *labels[8];
	struct tsdb_point *pts[TSDB_NRES];
	size_t n[TSDB_NRES], cap[TSDB_NRES];
};

struct tsdb {
	struct fser ser[64];
	size_t n;
	size_t virtual_n;  /* extra series made up on the fly (limits) */
	char (*vhost)[16]; /* their hosts */
	int64_t keep[TSDB_NRES];
	int reads[TSDB_NRES];
	int clobber; /* a read rebuilds the series' strings, as a failed flush does */
	uint64_t gen;
};

/* Positions: the real series, then the virtual ones. */
int tsdb_series_each_at(struct tsdb *db, const char *name, size_t *pos, tsdb_each_fn fn, void *arg)
{
	static const char *const none[1] = {NULL};
	size_t i;

	for (i = *pos; i < db->n; i++)
		if ((!name || strcmp(name, db->ser[i].s.name) == 0) && fn(arg, &db->ser[i].s)) {
			*pos = i;
			return 0;
		}
	if (db->virtual_n && !db->vhost)
		db->vhost = calloc(db->virtual_n, sizeof(*db->vhost));
	for (i = *pos > db->n ? *pos - db->n : 0; i < db->virtual_n; i++) {
		struct tsdb_series s = {.id = (uint32_t)(1000 + i),
		                        .host = db->vhost[i],
		                        .name = "v",
		                        .key = "v",
		                        .labels = none,
		                        .last_ms = NOW,
		                        .first_ms = NOW};
		snprintf(db->vhost[i], sizeof(db->vhost[i]), "h%06u", (unsigned)(i % 1000000));
		if ((!name || strcmp(name, "v") == 0) && fn(arg, &s)) {
			*pos = db->n + i;
			return 0;
		}
	}
	*pos = db->n + db->virtual_n;
	return 0;
}

uint64_t tsdb_generation(const struct tsdb *db)
{
	return db->gen;
}

int tsdb_read(struct tsdb *db, uint32_t id, int res, int64_t from, int64_t to,
              struct tsdb_point **pts, size_t *n)
{
	struct fser *f = NULL;
	size_t k = 0;

	for (size_t i = 0; i < db->n; i++)
		if (db->ser[i].s.id == id)
			f = &db->ser[i];
	*pts = NULL;
	*n = 0;
	if (db->clobber)
		for (size_t i = 0; i < db->n; i++) {
			free((char *)db->ser[i].s.key);
			db->ser[i].s.key = strdup("clobbered");
			if (db->ser[i].s.nlabels)
				db->ser[i].labels[1] = "clobbered";
		}
	if (!f)
		return OUTPOST_E_NOT_FOUND;
	db->reads[res]++;
	if (!f->n[res])
		return 0;
	*pts = malloc(f->n[res] * sizeof(struct tsdb_point));
	for (size_t i = 0; i < f->n[res]; i++)
		if (f->pts[res][i].t >= from && f->pts[res][i].t < to)
			(*pts)[k++] = f->pts[res][i];
	*n = k;
	return 0;
}

int64_t tsdb_keep_ms(const struct tsdb *db, int res)
{
	return db->keep[res];
}

int64_t tsdb_interval_ms(int res)
{
	return res == TSDB_RAW ? 0 : res == TSDB_1M ? MIN : HOUR;
}

const char *tsdb_res_name(int res)
{
	return res == TSDB_RAW ? "raw" : res == TSDB_1M ? "1m" : "1h";
}

static struct tsdb *fake_new(void)
{
	struct tsdb *db = calloc(1, sizeof(*db));
	db->keep[TSDB_RAW] = 2 * DAY;
	db->keep[TSDB_1M] = 30 * DAY;
	db->keep[TSDB_1H] = 365 * DAY;
	return db;
}

static void fake_free(struct tsdb *db)
{
	for (size_t i = 0; i < db->n; i++)
		for (int r = 0; r < TSDB_NRES; r++)
			free(db->ser[i].pts[r]);
	for (size_t i = 0; i < db->n; i++)
		free((char *)db->ser[i].s.key);
	free(db->vhost);
	free(db);
}

/* A series: host, name, then up to 3 label pairs, NULL-terminated. Returns its index. */
static size_t fake_series(struct tsdb *db, const char *host, const char *name, ...)
{
	struct fser *f = &db->ser[db->n];
	char key[512];
	size_t len;
	va_list ap;
	const char *k;

	f->s.id = (uint32_t)(db->n + 1);
	f->s.host = host;
	f->s.name = name;
	len = (size_t)snprintf(key, sizeof(key), "%s", name);
	va_start(ap, name);
	while ((k = va_arg(ap, const char *))) {
		const char *v = va_arg(ap, const char *);
		f->labels[2 * f->s.nlabels] = k;
		f->labels[2 * f->s.nlabels + 1] = v;
		len += (size_t)snprintf(key + len, sizeof(key) - len, "%s%s=\"%s\"",
		                        f->s.nlabels ? "," : "{", k, v);
		f->s.nlabels++;
	}
	va_end(ap);
	if (f->s.nlabels)
		snprintf(key + len, sizeof(key) - len, "}");
	f->s.key = strdup(key);
	f->s.labels = f->labels;
	return db->n++;
}

static void fake_point(struct tsdb *db, size_t i, int res, int64_t t, double sum, double count)
{
	struct fser *f = &db->ser[i];
	struct tsdb_point *p;

	if (f->n[res] == f->cap[res]) {
		f->cap[res] = f->cap[res] ? f->cap[res] * 2 : 16;
		f->pts[res] = realloc(f->pts[res], f->cap[res] * sizeof(struct tsdb_point));
	}
	p = &f->pts[res][f->n[res]++];
	p->t = t;
	p->sum = sum;
	p->count = count;
	p->min = p->max = count ? sum / count : sum;
	if (res == TSDB_RAW) {
		if (!f->s.first_ms)
			f->s.first_ms = t;
		f->s.last_ms = t;
		f->s.last_value = sum;
	}
}

/* ---- helpers ---- */

struct run {
	struct query_params p;
	struct buf out;
	json_t *result;
	char msg[512];
	int rc;
};

/* Parses args and runs kind ("series", "latest", "query"); the result parsed into r->result. */
static int run_query(struct tsdb *db, struct query *q, const char *kind, const struct query_args *a,
                     const struct query_hosts *hosts, struct run *r)
{
	memset(r, 0, sizeof(*r));
	r->rc = query_parse(a, NOW, strcmp(kind, "series") != 0, &r->p, r->msg, sizeof(r->msg));
	if (r->rc < 0)
		return r->rc;
	if (strcmp(kind, "series") == 0)
		r->rc = query_series(q, db, &r->p, hosts, &r->out, r->msg, sizeof(r->msg));
	else if (strcmp(kind, "latest") == 0)
		r->rc = query_latest(q, db, &r->p, hosts, &r->out, r->msg, sizeof(r->msg));
	else
		r->rc = query_range(q, db, &r->p, hosts, NOW, &r->out, r->msg, sizeof(r->msg));
	if (r->rc == 0) {
		json_error_t e;
		r->result = json_loads(r->out.data, 0, &e);
		if (!r->result)
			fail_msg("not JSON (%s): %s", e.text, r->out.data);
	}
	return r->rc;
}

static void run_done(struct run *r)
{
	query_params_clear(&r->p);
	buf_free(&r->out);
	json_decref(r->result);
}

/* The value of points[i] of series s (a number, or NaN/Inf from their strings). */
static double point_value(json_t *series, size_t s, size_t i)
{
	json_t *pt = json_array_get(json_object_get(json_array_get(series, s), "points"), i);
	json_t *v = json_array_get(pt, 1);
	if (json_is_string(v)) {
		const char *t = json_string_value(v);
		return strcmp(t, "NaN") == 0 ? NAN : strcmp(t, "+Inf") == 0 ? INFINITY : -INFINITY;
	}
	assert_true(json_is_number(v));
	return json_number_value(v);
}

static int64_t point_time(json_t *series, size_t s, size_t i)
{
	json_t *pt = json_array_get(json_object_get(json_array_get(series, s), "points"), i);
	return json_integer_value(json_array_get(pt, 0));
}

static size_t npoints(json_t *series, size_t s)
{
	return json_array_size(json_object_get(json_array_get(series, s), "points"));
}

/* ---- parameters ---- */

static void test_parse_defaults(void **state)
{
	struct query_args a = {.name = "host_load1"};
	struct query_params p;
	char msg[256];

	(void)state;
	assert_int_equal(query_parse(&a, NOW, 1, &p, msg, sizeof(msg)), 0);
	assert_string_equal(p.name, "host_load1");
	assert_int_equal(p.to, NOW);
	assert_int_equal(p.from, NOW - HOUR);
	assert_int_equal(p.step, 0);
	assert_int_equal(p.agg, QUERY_AGG_NONE);
	assert_string_equal(p.agg_name, "none");
	assert_int_equal(p.limit, QUERY_LIMIT_DEFAULT);
	query_params_clear(&p);
}

static void test_parse_times_relative_and_absolute(void **state)
{
	int64_t t;

	(void)state;
	assert_int_equal(query_parse_time("now", NOW, &t), 0);
	assert_int_equal(t, NOW);
	assert_int_equal(query_parse_time("-24h", NOW, &t), 0);
	assert_int_equal(t, NOW - DAY);
	assert_int_equal(query_parse_time("-90m", NOW, &t), 0);
	assert_int_equal(t, NOW - 90 * MIN);
	assert_int_equal(query_parse_time("-1h30m", NOW, &t), 0);
	assert_int_equal(t, NOW - 90 * MIN);
	assert_int_equal(query_parse_time("now-2d", NOW, &t), 0);
	assert_int_equal(t, NOW - 2 * DAY);
	assert_int_equal(query_parse_time("-500ms", NOW, &t), 0);
	assert_int_equal(t, NOW - 500);
	assert_int_equal(query_parse_time("1764000000000", NOW, &t), 0);
	assert_int_equal(t, 1764000000000LL);
	assert_int_equal(query_parse_time("-1x", NOW, &t), -1);
	assert_int_equal(query_parse_time("yesterday", NOW, &t), -1);
	assert_int_equal(query_parse_time("", NOW, &t), -1);
	assert_int_equal(query_parse_time("-", NOW, &t), -1);
	assert_int_equal(query_parse_time("-h", NOW, &t), -1);
	assert_int_equal(query_parse_time("12.5", NOW, &t), -1);
	assert_int_equal(query_parse_time("99999999999999999999", NOW, &t), -1);
}

static void test_parse_steps(void **state)
{
	int64_t s;

	(void)state;
	assert_int_equal(query_parse_step("30s", &s), 0);
	assert_int_equal(s, 30000);
	assert_int_equal(query_parse_step("5m", &s), 0);
	assert_int_equal(s, 5 * MIN);
	assert_int_equal(query_parse_step("1h", &s), 0);
	assert_int_equal(s, HOUR);
	assert_int_equal(query_parse_step("15000", &s), 0);
	assert_int_equal(s, 15000);
	assert_int_equal(query_parse_step("0", &s), -1);
	assert_int_equal(query_parse_step("0s", &s), -1);
	assert_int_equal(query_parse_step("-5m", &s), -1);
	assert_int_equal(query_parse_step("5x", &s), -1);
	assert_int_equal(query_parse_step("", &s), -1);
}

static void expect_bad(const struct query_args *a, int need_name, const char *part)
{
	struct query_params p;
	char msg[512];

	assert_int_equal(query_parse(a, NOW, need_name, &p, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	if (!strstr(msg, part))
		fail_msg("message '%s' lacks '%s'", msg, part);
	assert_null(p.name);
	assert_int_equal(p.nm, 0);
}

static void test_parse_refuses_bad_parameters_with_what_to_write(void **state)
{
	const char *bad_re[] = {"mode=~(user"};
	const char *bad_m[] = {"mode"};
	const char *bad_l[] = {"1mode=user"};
	const char *ok_then_bad[] = {"mode=user", "x=~[z-a]"};
	struct query_args a;

	(void)state;
	a = (struct query_args){0};
	expect_bad(&a, 1, "name: a metric name is required");
	a = (struct query_args){.name = "host load"};
	expect_bad(&a, 0, "is not a metric name");
	a = (struct query_args){.name = "x", .from = "yesterday"};
	expect_bad(&a, 1, "from: 'yesterday' is not a time");
	a = (struct query_args){.name = "x", .to = "-1q"};
	expect_bad(&a, 1, "to: '-1q' is not a time");
	a = (struct query_args){.name = "x", .from = "-1h", .to = "-2h"};
	expect_bad(&a, 1, "must be before to");
	a = (struct query_args){.name = "x", .step = "0"};
	expect_bad(&a, 1, "step: '0' is not a step");
	a = (struct query_args){.name = "x", .agg = "median"};
	expect_bad(&a, 1, "agg: 'median' is not an aggregation");
	a = (struct query_args){.name = "x", .agg = "p101"};
	expect_bad(&a, 1, "p0..p100");
	a = (struct query_args){.name = "x", .agg = "pxx"};
	expect_bad(&a, 1, "not an aggregation");
	a = (struct query_args){.name = "x", .limit = "0"};
	expect_bad(&a, 1, "limit: '0' is not a count");
	a = (struct query_args){.name = "x", .match = bad_re, .nmatch = 1};
	expect_bad(&a, 1, "not a regular expression in RE2 syntax");
	a = (struct query_args){.name = "x", .match = bad_m, .nmatch = 1};
	expect_bad(&a, 1, "write label=value");
	a = (struct query_args){.name = "x", .match = bad_l, .nmatch = 1};
	expect_bad(&a, 1, "label name must match");
	a = (struct query_args){.name = "x", .match = ok_then_bad, .nmatch = 2};
	expect_bad(&a, 1, "match:");
}

static void test_parse_aggregations_and_percentiles(void **state)
{
	static const char *const aggs[] = {"none", "avg", "min", "max", "sum", "count"};
	struct query_params p;
	char msg[256];

	(void)state;
	for (int i = 0; i < 6; i++) {
		struct query_args a = {.name = "x", .agg = aggs[i]};
		assert_int_equal(query_parse(&a, NOW, 1, &p, msg, sizeof(msg)), 0);
		assert_int_equal(p.agg, i);
		query_params_clear(&p);
	}
	{
		struct query_args a = {.name = "x", .agg = "p99.9"};
		assert_int_equal(query_parse(&a, NOW, 1, &p, msg, sizeof(msg)), 0);
		assert_int_equal(p.agg, QUERY_AGG_PCT);
		assert_true(fabs(p.pct - 0.999) < 1e-12);
		assert_string_equal(p.agg_name, "p99.9");
		query_params_clear(&p);
	}
}

static void test_matcher_ops_and_anchored_regex(void **state)
{
	struct query_matcher m;
	char msg[256];

	(void)state;
	assert_int_equal(query_matcher_parse("mode=user", &m, msg, sizeof(msg)), 0);
	assert_int_equal(m.op, QUERY_EQ);
	assert_string_equal(m.label, "mode");
	assert_string_equal(m.value, "user");
	query_matcher_clear(&m);
	assert_int_equal(query_matcher_parse("mode!=user", &m, msg, sizeof(msg)), 0);
	assert_int_equal(m.op, QUERY_NE);
	query_matcher_clear(&m);
	assert_int_equal(query_matcher_parse("mode!~us.*", &m, msg, sizeof(msg)), 0);
	assert_int_equal(m.op, QUERY_NRE);
	assert_string_equal(m.value, "us.*");
	query_matcher_clear(&m);
	assert_int_equal(query_matcher_parse("x=a=b", &m, msg, sizeof(msg)), 0);
	assert_string_equal(m.value, "a=b"); /* the first operator splits */
	query_matcher_clear(&m);
	assert_int_equal(query_matcher_parse("mode=~us", &m, msg, sizeof(msg)), 0);
	assert_int_equal(m.op, QUERY_RE);
	assert_true(re_match(m.re, "us"));
	assert_false(re_match(m.re, "user")); /* anchored */
	assert_false(re_match(m.re, "xus"));
	query_matcher_clear(&m);
	assert_int_equal(query_matcher_parse("mode=~user|system", &m, msg, sizeof(msg)), 0);
	assert_true(re_match(m.re, "system")); /* the whole alternation */
	assert_false(re_match(m.re, "usersystem"));
	query_matcher_clear(&m);
	assert_int_equal(query_matcher_parse("=x", &m, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
}

/* A viewer's regex cannot stall the hub: back-references are refused (RE2 has none), and the
 * classic catastrophic pattern matches a long subject in linear time. */
static void test_regex_refuses_backrefs_and_is_linear(void **state)
{
	struct query_matcher m;
	char msg[256], subject[4097];
	struct timespec t0, t1;
	double ms;

	(void)state;
	assert_int_equal(query_matcher_parse("x=~(a*)\\1", &m, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "RE2 syntax"));
	assert_int_equal(query_matcher_parse("x=~(a+)+$", &m, msg, sizeof(msg)), 0);
	memset(subject, 'a', sizeof(subject) - 2);
	subject[sizeof(subject) - 2] = '!';
	subject[sizeof(subject) - 1] = '\0';
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 100; i++)
		assert_false(re_match(m.re, subject));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_true(ms < 500); /* 100 x 4 KiB; a backtracking engine takes forever */
	query_matcher_clear(&m);
	/* A pattern whose program would be huge is refused, not built. */
	assert_int_equal(
	    query_matcher_parse("x=~((((a{100}){100}){100}){100})", &m, msg, sizeof(msg)),
	    OUTPOST_E_BAD_ARGS);
}

/* Series of the fixture used by most tests: four hosts, two modes each for host_cpu_percent,
 * and host_load1 without labels; one host has a dc label. */
static struct tsdb *fixture(void)
{
	struct tsdb *db = fake_new();
	static const char *const hosts[] = {"web-01", "web-02", "web-03", "db-01"};

	for (int h = 0; h < 4; h++) {
		size_t u = fake_series(db, hosts[h], "host_cpu_percent", "mode", "user", NULL);
		size_t s = fake_series(db, hosts[h], "host_cpu_percent", "mode", "system", NULL);
		size_t l = h == 3 ? fake_series(db, hosts[h], "host_load1", "dc", "sh", NULL)
		                  : fake_series(db, hosts[h], "host_load1", NULL);
		for (int64_t t = NOW - 10 * MIN; t < NOW; t += 10000) {
			fake_point(db, u, TSDB_RAW, t, 10.0 * (h + 1), 1);
			fake_point(db, s, TSDB_RAW, t, 1.0 * (h + 1), 1);
			fake_point(db, l, TSDB_RAW, t, 0.5 * (h + 1), 1);
		}
	}
	return db;
}

static void test_matchers_filter_series_absent_label_is_empty(void **state)
{
	struct tsdb *db = fixture();
	struct query *q = query_new();
	const char *ne[] = {"dc!=sh"}, *eq_empty[] = {"dc="}, *host[] = {"host=~web-0[12]"};
	struct query_args a = {.name = "host_load1", .match = ne, .nmatch = 1};
	struct run r;

	(void)state;
	assert_int_equal(run_query(db, q, "latest", &a, NULL, &r), 0);
	assert_int_equal(json_array_size(json_object_get(r.result, "samples")), 3);
	run_done(&r);
	a.match = eq_empty;
	assert_int_equal(run_query(db, q, "latest", &a, NULL, &r), 0);
	assert_int_equal(json_array_size(json_object_get(r.result, "samples")), 3);
	run_done(&r);
	a.match = host;
	assert_int_equal(run_query(db, q, "latest", &a, NULL, &r), 0);
	assert_int_equal(json_array_size(json_object_get(r.result, "samples")), 2);
	run_done(&r);
	query_free(q);
	fake_free(db);
}

static void test_hosts_filter_and_series_listing(void **state)
{
	struct tsdb *db = fixture();
	struct query *q = query_new();
	const char *ids[] = {"db-01", "web-02"}; /* sorted */
	struct query_hosts hosts = {ids, 2};
	struct query_args a = {0};
	json_t *s0;
	struct run r;

	(void)state;
	assert_int_equal(run_query(db, q, "series", &a, &hosts, &r), 0);
	assert_int_equal(json_array_size(json_object_get(r.result, "series")), 6);
	assert_false(json_is_true(json_object_get(r.result, "truncated")));
	s0 = json_array_get(json_object_get(r.result, "series"), 0);
	/* sorted by host, then key */
	assert_string_equal(json_string_value(json_object_get(s0, "host")), "db-01");
	assert_string_equal(json_string_value(json_object_get(s0, "name")), "host_cpu_percent");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(s0, "labels"), "mode")), "system");
	assert_int_equal(json_integer_value(json_object_get(s0, "first_ms")), NOW - 10 * MIN);
	assert_int_equal(json_integer_value(json_object_get(s0, "last_ms")), NOW - 10000);
	run_done(&r);
	a.limit = "2";
	assert_int_equal(run_query(db, q, "series", &a, NULL, &r), 0);
	assert_int_equal(json_array_size(json_object_get(r.result, "series")), 2);
	assert_true(json_is_true(json_object_get(r.result, "truncated")));
	run_done(&r);
	query_free(q);
	fake_free(db);
}

static void test_latest_sample_shape(void **state)
{
	struct tsdb *db = fixture();
	struct query *q = query_new();
	struct query_args a = {.name = "host_load1"};
	json_t *s;
	struct run r;

	(void)state;
	assert_int_equal(run_query(db, q, "latest", &a, NULL, &r), 0);
	s = json_array_get(json_object_get(r.result, "samples"), 0);
	assert_string_equal(json_string_value(json_object_get(s, "host")), "db-01");
	assert_string_equal(json_string_value(json_object_get(s, "name")), "host_load1");
	assert_string_equal(json_string_value(json_object_get(json_object_get(s, "labels"), "dc")),
	                    "sh");
	assert_int_equal(json_integer_value(json_object_get(s, "t")), NOW - 10000);
	assert_true(json_number_value(json_object_get(s, "value")) == 2.0);
	run_done(&r);
	query_free(q);
	fake_free(db);
}

/* ---- resolution and step ---- */

static void test_pick_resolution_and_step(void **state)
{
	int64_t keep[3] = {2 * DAY, 30 * DAY, 365 * DAY}, iv[3] = {0, MIN, HOUR}, step;
	int res;

	(void)state;
	/* 1 hour, default step: 15 s on raw data */
	query_pick(keep, iv, 3, NOW, NOW - HOUR, NOW, 0, &res, &step);
	assert_int_equal(res, TSDB_RAW);
	assert_int_equal(step, 15000);
	/* 24 hours: raw still covers it; 6 minutes a step */
	query_pick(keep, iv, 3, NOW, NOW - DAY, NOW, 0, &res, &step);
	assert_int_equal(res, TSDB_RAW);
	assert_int_equal(step, 6 * MIN);
	/* an odd range: whole seconds */
	query_pick(keep, iv, 3, NOW, NOW - 1000001, NOW, 0, &res, &step);
	assert_int_equal(step, 5000);
	/* 7 days: raw is gone that far back; 1m rollups, step rounded to whole minutes */
	query_pick(keep, iv, 3, NOW, NOW - 7 * DAY, NOW, 0, &res, &step);
	assert_int_equal(res, TSDB_1M);
	assert_int_equal(step, 42 * MIN);
	/* 7 days asked at 90 s: 1m data, step rounded up to 2 minutes */
	query_pick(keep, iv, 3, NOW, NOW - 7 * DAY, NOW, 90000, &res, &step);
	assert_int_equal(res, TSDB_1M);
	assert_int_equal(step, 2 * MIN);
	/* 7 days at 10 s: no resolution that covers it is that fine: 1m, step raised */
	query_pick(keep, iv, 3, NOW, NOW - 7 * DAY, NOW, 10000, &res, &step);
	assert_int_equal(res, TSDB_1M);
	assert_int_equal(step, MIN);
	/* 90 days: hourly rollups */
	query_pick(keep, iv, 3, NOW, NOW - 90 * DAY, NOW, 0, &res, &step);
	assert_int_equal(res, TSDB_1H);
	assert_int_equal(step, 9 * HOUR);
	/* older than every retention: the coarsest */
	query_pick(keep, iv, 3, NOW, NOW - 800 * DAY, NOW, 0, &res, &step);
	assert_int_equal(res, TSDB_1H);
	/* a step given in ms on raw data is kept */
	query_pick(keep, iv, 3, NOW, NOW - HOUR, NOW, 1500, &res, &step);
	assert_int_equal(res, TSDB_RAW);
	assert_int_equal(step, 1500);
}

static void test_query_reads_the_chosen_resolution(void **state)
{
	struct tsdb *db = fake_new();
	struct query *q = query_new();
	size_t i = fake_series(db, "a", "m", NULL);
	struct query_args a = {.name = "m", .from = "-7d", .step = "1h"};
	struct run r;

	(void)state;
	/* 1m rollups: sum/count per minute; a step's value is sum of sums / sum of counts */
	fake_point(db, i, TSDB_1M, NOW - 3 * HOUR, 60, 6);       /* avg 10 over 6 samples */
	fake_point(db, i, TSDB_1M, NOW - 3 * HOUR + MIN, 40, 2); /* avg 20 over 2 */
	fake_point(db, i, TSDB_1M, NOW - 2 * HOUR, 5, 1);
	assert_int_equal(run_query(db, q, "query", &a, NULL, &r), 0);
	assert_string_equal(json_string_value(json_object_get(r.result, "resolution")), "1m");
	assert_int_equal(json_integer_value(json_object_get(r.result, "step_ms")), HOUR);
	assert_int_equal(db->reads[TSDB_1M], 1);
	assert_int_equal(db->reads[TSDB_RAW], 0);
	{
		json_t *series = json_object_get(r.result, "series");
		assert_int_equal(npoints(series, 0), 2);
		assert_int_equal(point_time(series, 0, 0), NOW - 3 * HOUR);
		assert_true(point_value(series, 0, 0) == 12.5); /* 100 / 8, not (10 + 20) / 2 */
		assert_true(point_value(series, 0, 1) == 5);
	}
	run_done(&r);
	query_free(q);
	fake_free(db);
}

static void test_bucketing_averages_samples_per_step(void **state)
{
	struct tsdb *db = fake_new();
	struct query *q = query_new();
	size_t i = fake_series(db, "a", "m", NULL);
	struct query_args a = {.name = "m", .from = "-2m", .step = "30s"};
	json_t *series;
	struct run r;

	(void)state;
	/* 10 s samples: 1 2 3 | 4 5 6 | (gap) | 10 */
	for (int k = 0; k < 6; k++)
		fake_point(db, i, TSDB_RAW, NOW - 2 * MIN + k * 10000, k + 1, 1);
	fake_point(db, i, TSDB_RAW, NOW - 30000 + 20000, 10, 1);
	fake_point(db, i, TSDB_RAW, NOW, 99, 1); /* at `to`: outside [from, to) */
	assert_int_equal(run_query(db, q, "query", &a, NULL, &r), 0);
	assert_string_equal(json_string_value(json_object_get(r.result, "resolution")), "raw");
	assert_int_equal(json_integer_value(json_object_get(r.result, "from")), NOW - 2 * MIN);
	assert_int_equal(json_integer_value(json_object_get(r.result, "to")), NOW);
	assert_int_equal(json_integer_value(json_object_get(r.result, "step_ms")), 30000);
	assert_string_equal(json_string_value(json_object_get(r.result, "agg")), "none");
	series = json_object_get(r.result, "series");
	assert_int_equal(json_array_size(series), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(series, 0), "host")),
	                    "a");
	assert_int_equal(npoints(series, 0), 3); /* the empty step is left out */
	assert_int_equal(point_time(series, 0, 0), NOW - 2 * MIN);
	assert_true(point_value(series, 0, 0) == 2);
	assert_int_equal(point_time(series, 0, 1), NOW - 90000);
	assert_true(point_value(series, 0, 1) == 5);
	assert_int_equal(point_time(series, 0, 2), NOW - 30000);
	assert_true(point_value(series, 0, 2) == 10);
	run_done(&r);
	query_free(q);
	fake_free(db);
}

static void test_buckets_align_to_multiples_of_step(void **state)
{
	struct tsdb *db = fake_new();
	struct query *q = query_new();
	size_t i = fake_series(db, "a", "m", NULL);
	struct query_args a = {
	    .name = "m", .from = "1764000007000", .to = "1764000100000", .step = "30s"};
	struct run r;

	(void)state;
	fake_point(db, i, TSDB_RAW, NOW + 10000, 1, 1);
	assert_int_equal(run_query(db, q, "query", &a, NULL, &r), 0);
	assert_int_equal(json_integer_value(json_object_get(r.result, "from")), NOW);
	assert_int_equal(point_time(json_object_get(r.result, "series"), 0, 0), NOW);
	run_done(&r);
	query_free(q);
	fake_free(db);
}

static void test_step_too_small_is_refused_with_the_step_to_use(void **state)
{
	struct tsdb *db = fixture();
	struct query *q = query_new();
	struct query_args a = {.name = "host_load1", .from = "-2d", .step = "10s"};
	struct run r;

	(void)state;
	assert_int_equal(run_query(db, q, "query", &a, NULL, &r), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(r.msg, "step 10s is too small for a range of 2d"));
	assert_non_null(strstr(r.msg, "17280 points per series, at most 11000"));
	assert_non_null(strstr(r.msg, "use step=16s or more"));
	run_done(&r);
	/* the step it proposes works */
	a.step = "16s";
	assert_int_equal(run_query(db, q, "query", &a, NULL, &r), 0);
	run_done(&r);
	query_free(q);
	fake_free(db);
}

static void test_too_many_series_refused_with_how_to_narrow(void **state)
{
	struct tsdb *db = fake_new();
	struct query *q = query_new();
	struct query_args a = {.name = "v"};
	struct run r;

	(void)state;
	db->virtual_n = QUERY_MAX_SERIES + 1;
	assert_int_equal(run_query(db, q, "query", &a, NULL, &r), OUTPOST_E_TOO_LARGE);
	assert_non_null(strstr(r.msg, "10001 series of v match, at most 10000 per query"));
	assert_non_null(strstr(r.msg, "hosts="));
	run_done(&r);
	/* series and latest truncate instead */
	a.limit = "100000";
	assert_int_equal(run_query(db, q, "series", &a, NULL, &r), 0);
	assert_int_equal(json_array_size(json_object_get(r.result, "series")), 10001);
	run_done(&r);
	a.limit = NULL;
	assert_int_equal(run_query(db, q, "latest", &a, NULL, &r), 0);
	assert_int_equal(json_array_size(json_object_get(r.result, "samples")),
	                 QUERY_LIMIT_DEFAULT);
	assert_true(json_is_true(json_object_get(r.result, "truncated")));
	run_done(&r);
	query_free(q);
	fake_free(db);
}

static void test_range_keeps_its_own_copy_of_the_series(void **state)
{
	struct tsdb *db = fixture();
	struct query *q = query_new();
	struct query_args a = {.name = "host_cpu_percent", .from = "-10m", .step = "5m"};
	struct run r;

	(void)state;
	db->clobber = 1;
	assert_int_equal(run_query(db, q, "query", &a, NULL, &r), 0);
	assert_null(strstr(r.out.data, "clobbered"));
	assert_int_equal(json_array_size(json_object_get(r.result, "series")), 8);
	run_done(&r);
	fake_free(db);
	db = fixture();
	db->clobber = 1;
	a.agg = "sum";
	assert_int_equal(run_query(db, q, "query", &a, NULL, &r), 0);
	assert_null(strstr(r.out.data, "clobbered"));
	assert_int_equal(json_array_size(json_object_get(r.result, "series")), 2);
	run_done(&r);
	query_free(q);
	fake_free(db);
}

/* ---- aggregation ---- */

/* Four hosts with values 1, 2, 3, 10 for label mode=a and 5 on one host for mode=b. */
static struct tsdb *agg_fixture(void)
{
	struct tsdb *db = fake_new();
	static const char *const hosts[] = {"h1", "h2", "h3", "h4"};
	static const double vals[] = {1, 2, 3, 10};

	for (int h = 0; h < 4; h++) {
		size_t i = fake_series(db, hosts[h], "m", "mode", "a", NULL);
		fake_point(db, i, TSDB_RAW, NOW - 60000, vals[h], 1);
		fake_point(db, i, TSDB_RAW, NOW - 50000, vals[h] * 3, 1); /* same step: avg 2x */
	}
	fake_point(db, fake_series(db, "h1", "m", "mode", "b", NULL), TSDB_RAW, NOW - 60000, 5, 1);
	return db;
}

static double agg_value(const char *agg, const char *mode)
{
	struct tsdb *db = agg_fixture();
	struct query *q = query_new();
	struct query_args a = {.name = "m", .from = "-2m", .step = "1m", .agg = agg};
	json_t *series;
	double v = -12345;
	struct run r;

	assert_int_equal(run_query(db, q, "query", &a, NULL, &r), 0);
	series = json_object_get(r.result, "series");
	assert_int_equal(json_array_size(series), 2); /* mode=a and mode=b */
	for (size_t s = 0; s < 2; s++) {
		json_t *one = json_array_get(series, s);
		assert_null(json_object_get(one, "host"));
		if (strcmp(
		        json_string_value(json_object_get(json_object_get(one, "labels"), "mode")),
		        mode) == 0) {
			assert_int_equal(npoints(series, s), 1);
			assert_int_equal(point_time(series, s, 0), NOW - MIN);
			v = point_value(series, s, 0);
		}
	}
	assert_string_equal(json_string_value(json_object_get(r.result, "agg")), agg);
	run_done(&r);
	query_free(q);
	fake_free(db);
	return v;
}

static void test_every_aggregation_across_hosts(void **state)
{
	(void)state;
	/* per host, the step's average is 2x its value: 2, 4, 6, 20 */
	assert_true(agg_value("avg", "a") == 8);
	assert_true(agg_value("min", "a") == 2);
	assert_true(agg_value("max", "a") == 20);
	assert_true(agg_value("sum", "a") == 32);
	assert_true(agg_value("count", "a") == 4);
	assert_true(agg_value("p0", "a") == 2);
	assert_true(agg_value("p100", "a") == 20);
	assert_true(agg_value("p50", "a") == 5);                 /* between 4 and 6 */
	assert_true(fabs(agg_value("p90", "a") - 15.8) < 1e-9);  /* 6 + 0.7 x 14 */
	assert_true(fabs(agg_value("p99", "a") - 19.58) < 1e-9); /* 6 + 0.97 x 14 */
	assert_true(agg_value("avg", "b") == 5);                 /* a group of one */
	assert_true(agg_value("count", "b") == 1);
	assert_true(agg_value("p99", "b") == 5);
}

static void test_quantile_interpolates_and_skips_nan(void **state)
{
	double v[] = {3, 1, NAN, 2, 4};
	double n[] = {NAN, NAN};
	double one[] = {7};

	(void)state;
	assert_true(query_quantile(v, 5, 0.5) == 2.5);
	assert_true(query_quantile(v, 4, 0.25) == 1.75);
	assert_true(isnan(query_quantile(n, 2, 0.5)));
	assert_true(query_quantile(one, 1, 0.99) == 7);
}

static void test_nan_and_infinities_are_strings(void **state)
{
	struct tsdb *db = fake_new();
	struct query *q = query_new();
	size_t x = fake_series(db, "a", "m", "k", "nan", NULL);
	size_t y = fake_series(db, "a", "m", "k", "inf", NULL);
	size_t z = fake_series(db, "a", "m", "k", "ninf", NULL);
	struct query_args a = {.name = "m", .from = "-2m", .step = "1m"};
	struct run r;

	(void)state;
	fake_point(db, x, TSDB_RAW, NOW - MIN, NAN, 1);
	fake_point(db, y, TSDB_RAW, NOW - MIN, INFINITY, 1);
	fake_point(db, z, TSDB_RAW, NOW - MIN, -INFINITY, 1);
	assert_int_equal(run_query(db, q, "query", &a, NULL, &r), 0);
	/* sorted by key: k="inf", k="nan", k="ninf" */
	assert_non_null(strstr(r.out.data, "[[1763999940000,\"+Inf\"]]"));
	assert_non_null(strstr(r.out.data, "[[1763999940000,\"NaN\"]]"));
	assert_non_null(strstr(r.out.data, "[[1763999940000,\"-Inf\"]]"));
	run_done(&r);
	assert_int_equal(run_query(db, q, "latest", &a, NULL, &r), 0);
	assert_non_null(strstr(r.out.data, "\"value\":\"NaN\""));
	assert_non_null(strstr(r.out.data, "\"value\":\"+Inf\""));
	assert_non_null(strstr(r.out.data, "\"value\":\"-Inf\""));
	run_done(&r);
	query_free(q);
	fake_free(db);
}

static void test_aggregates_of_nan_and_inf(void **state)
{
	struct tsdb *db = fake_new();
	struct query *q = query_new();
	static const double vals[] = {1, NAN, 3, INFINITY};
	static const char *const hosts[] = {"h1", "h2", "h3", "h4"};
	struct query_args a = {.name = "m", .from = "-2m", .step = "1m"};
	struct run r;

	(void)state;
	for (int h = 0; h < 4; h++)
		fake_point(db, fake_series(db, hosts[h], "m", NULL), TSDB_RAW, NOW - MIN, vals[h],
		           1);
	/* min, max and percentiles leave NaN out; sum and avg follow IEEE (NaN wins); count
	 * counts every host with a value */
	a.agg = "min";
	assert_int_equal(run_query(db, q, "query", &a, NULL, &r), 0);
	assert_true(point_value(json_object_get(r.result, "series"), 0, 0) == 1);
	run_done(&r);
	a.agg = "max";
	assert_int_equal(run_query(db, q, "query", &a, NULL, &r), 0);
	assert_true(isinf(point_value(json_object_get(r.result, "series"), 0, 0)));
	run_done(&r);
	a.agg = "p50";
	assert_int_equal(run_query(db, q, "query", &a, NULL, &r), 0);
	assert_true(point_value(json_object_get(r.result, "series"), 0, 0) == 3);
	run_done(&r);
	a.agg = "sum";
	assert_int_equal(run_query(db, q, "query", &a, NULL, &r), 0);
	assert_true(isnan(point_value(json_object_get(r.result, "series"), 0, 0)));
	run_done(&r);
	a.agg = "count";
	assert_int_equal(run_query(db, q, "query", &a, NULL, &r), 0);
	assert_true(point_value(json_object_get(r.result, "series"), 0, 0) == 4);
	run_done(&r);
	query_free(q);
	fake_free(db);
}

/* ---- text ---- */

static void expect_number(double v, int prom, const char *text)
{
	struct buf b = BUF_INIT;
	assert_int_equal(query_put_number(&b, v, prom), 0);
	assert_string_equal(b.data, text);
	buf_free(&b);
}

static void test_numbers_shortest_text_that_reads_back(void **state)
{
	(void)state;
	expect_number(0, 0, "0");
	expect_number(3, 0, "3");
	expect_number(-17, 0, "-17");
	expect_number(0.1, 0, "0.1");
	expect_number(3.2, 0, "3.2");
	expect_number(1.0 / 3, 0, "0.3333333333333333");
	expect_number(0.1 + 0.2, 0, "0.30000000000000004");
	expect_number(1e300, 0, "1e+300");
	expect_number(25165824000.0, 0, "25165824000");
	expect_number(NAN, 0, "\"NaN\"");
	expect_number(INFINITY, 0, "\"+Inf\"");
	expect_number(-INFINITY, 0, "\"-Inf\"");
	expect_number(NAN, 1, "NaN");
	expect_number(INFINITY, 1, "+Inf");
	expect_number(-INFINITY, 1, "-Inf");
}

static void test_json_strings_escaped_and_valid_utf8(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(query_put_json_string(&b, "a\"b\\c\n\x01 é \xff!"), 0);
	assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001 é \xEF\xBF\xBD!\"");
	buf_free(&b);
}

/* ---- /federate ---- */

static void test_selector_parse(void **state)
{
	struct query_matcher m[8];
	char msg[400];
	size_t n;

	(void)state;
	assert_int_equal(query_selector_parse("host_load1", m, 8, &n, msg, sizeof(msg)), 0);
	assert_int_equal(n, 1);
	assert_string_equal(m[0].label, "__name__");
	assert_string_equal(m[0].value, "host_load1");
	query_matcher_clear(&m[0]);
	assert_int_equal(
	    query_selector_parse("host_cpu_percent{mode=\"us\\\"er\", host=~\"web-.*\"}", m, 8, &n,
	                         msg, sizeof(msg)),
	    0);
	assert_int_equal(n, 3);
	assert_string_equal(m[1].label, "mode");
	assert_string_equal(m[1].value, "us\"er");
	assert_int_equal(m[2].op, QUERY_RE);
	for (size_t i = 0; i < n; i++)
		query_matcher_clear(&m[i]);
	assert_int_equal(
	    query_selector_parse("{__name__=~\"host_.*\",}", m, 8, &n, msg, sizeof(msg)), 0);
	assert_int_equal(n, 1);
	query_matcher_clear(&m[0]);
	static const char *const bad[] = {"",          "{}",  "x{",         "x{a=b}",
	                                  "x{a=\"b\"", "x y", "{a=~\"(\"}", "x{a==\"b\"}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(query_selector_parse(bad[i], m, 8, &n, msg, sizeof(msg)),
		                 OUTPOST_E_BAD_ARGS);
		assert_int_equal(n, 0);
		assert_non_null(strstr(msg, "match[]"));
	}
}

static void test_federate_text_format(void **state)
{
	struct tsdb *db = fake_new();
	struct query *q = query_new();
	struct buf b = BUF_INIT;
	size_t i;

	(void)state;
	i = fake_series(db, "web-01", "host_load1", NULL);
	fake_point(db, i, TSDB_RAW, NOW - 10000, 0.25, 1);
	i = fake_series(db, "web-01", "host_cpu_percent", "mode", "user", NULL);
	fake_point(db, i, TSDB_RAW, NOW - 10000, 3.5, 1);
	i = fake_series(db, "db-01", "host_load1", NULL);
	fake_point(db, i, TSDB_RAW, NOW - 20000, NAN, 1);
	i = fake_series(db, "web-01", "app_x", "a", "q\"\\\nz", "zone", "b", NULL);
	fake_point(db, i, TSDB_RAW, NOW - 10000, INFINITY, 1);
	i = fake_series(db, "old-01", "host_load1", NULL); /* older than 5 minutes: left out */
	fake_point(db, i, TSDB_RAW, NOW - 6 * MIN, 1, 1);
	fake_series(db, "new-01", "host_load1", NULL); /* no sample yet */

	assert_int_equal(query_federate(q, db, NULL, NULL, NULL, 0, NOW, &b), 0);
	assert_string_equal(b.data, "app_x{a=\"q\\\"\\\\\\nz\",host=\"web-01\",zone=\"b\"} +Inf "
	                            "1763999990000\n"
	                            "host_cpu_percent{host=\"web-01\",mode=\"user\"} 3.5 "
	                            "1763999990000\n"
	                            "host_load1{host=\"db-01\"} NaN 1763999980000\n"
	                            "host_load1{host=\"web-01\"} 0.25 1763999990000\n");
	buf_reset(&b);
	{
		struct query_matcher m1[4], m2[4];
		struct query_matcher *sel[2] = {m1, m2};
		size_t n[2];
		char msg[256];
		assert_int_equal(
		    query_selector_parse("{host=\"db-01\"}", m1, 4, &n[0], msg, sizeof(msg)), 0);
		assert_int_equal(query_selector_parse("{__name__=~\"host_cpu.*\"}", m2, 4, &n[1],
		                                      msg, sizeof(msg)),
		                 0);
		assert_int_equal(query_federate(q, db, NULL, sel, n, 2, NOW, &b), 0);
		assert_string_equal(b.data, "host_cpu_percent{host=\"web-01\",mode=\"user\"} 3.5 "
		                            "1763999990000\n"
		                            "host_load1{host=\"db-01\"} NaN 1763999980000\n");
		buf_reset(&b);
		assert_int_equal(query_federate(q, db, "host_load1", sel, n, 1, NOW, &b), 0);
		assert_string_equal(b.data, "host_load1{host=\"db-01\"} NaN 1763999980000\n");
		query_matcher_clear(&m1[0]);
		query_matcher_clear(&m2[0]);
	}
	buf_free(&b);
	query_free(q);
	fake_free(db);
}

/* ---- latency ---- */

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void test_day_of_one_series_is_fast(void **state)
{
	struct tsdb *db = fake_new();
	struct query *q = query_new();
	size_t i = fake_series(db, "web-01", "host_load1", NULL);
	struct query_args def = {.name = "host_load1", .from = "-24h"};
	struct query_args full = {.name = "host_load1", .from = "-24h", .step = "10s"};
	double best_def = 1e9, best_full = 1e9;

	(void)state;
	for (int64_t t = NOW - DAY; t < NOW; t += 10000)
		fake_point(db, i, TSDB_RAW, t, (double)(t % 977) / 100.0, 1);
	for (int k = 0; k < 20; k++) {
		struct timespec t0;
		struct query_params p;
		struct buf b = BUF_INIT;
		char msg[256];
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(query_parse(&def, NOW, 1, &p, msg, sizeof(msg)), 0);
		assert_int_equal(query_range(q, db, &p, NULL, NOW, &b, msg, sizeof(msg)), 0);
		best_def = fmin(best_def, ms_since(&t0));
		query_params_clear(&p);
		buf_free(&b);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(query_parse(&full, NOW, 1, &p, msg, sizeof(msg)), 0);
		assert_int_equal(query_range(q, db, &p, NULL, NOW, &b, msg, sizeof(msg)), 0);
		best_full = fmin(best_full, ms_since(&t0));
		query_params_clear(&p);
		buf_free(&b);
	}
	{
		struct run r;
		assert_int_equal(run_query(db, q, "query", &def, NULL, &r), 0);
		assert_int_equal(npoints(json_object_get(r.result, "series"), 0), 240);
		run_done(&r);
		assert_int_equal(run_query(db, q, "query", &full, NULL, &r), 0);
		assert_int_equal(npoints(json_object_get(r.result, "series"), 0), 8640);
		run_done(&r);
	}
	/* the engine (the fake's read is a copy of the points); the integration test times the
	 * real store */
	print_message("24 h of one series (8640 raw samples): default step %.3f ms, "
	              "10 s step %.3f ms (best of 20)\n",
	              best_def, best_full);
	assert_true(best_def < QUERY_TEST_BUDGET_MS);
	assert_true(best_full < QUERY_TEST_BUDGET_MS);
	query_free(q);
	fake_free(db);
}

static void test_federate_of_100k_series(void **state)
{
	struct tsdb *db = fake_new();
	struct query *q = query_new();
	struct buf b = BUF_INIT;
	struct timespec t0;
	double ms;

	(void)state;
	db->virtual_n = 100000;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(query_federate(q, db, NULL, NULL, NULL, 0, NOW, &b), 0);
	ms = ms_since(&t0);
	assert_non_null(strstr(b.data, "v{host=\"h099999\"} 0 1764000000000\n"));
	print_message("/federate of 100000 series: %.1f ms, %zu bytes\n", ms, b.len);
	assert_true(ms < 20 * QUERY_TEST_BUDGET_MS * 10);
	buf_free(&b);
	query_free(q);
	fake_free(db);
}

/* ---- slices ---- */

/* Runs the query begun on q to its end in slices that each end at once (until 1 ms of the
 * monotonic clock: every check of the clock after a slice's first step ends it). */
static int run_sliced(struct query *q, struct tsdb *db, struct buf *out, char *msg, size_t msglen,
                      int *slices)
{
	int rc;

	*slices = 0;
	do {
		rc = query_run(q, db, 1, out, msg, msglen);
		(*slices)++;
	} while (rc == QUERY_MORE);
	return rc;
}

static void test_slices_give_the_same_answer(void **state)
{
	struct tsdb *db = fixture();
	struct query *q = query_new();
	static const struct query_args args[] = {
	    {.name = "host_cpu_percent", .from = "-10m", .step = "30s"},
	    {.name = "host_cpu_percent", .from = "-10m", .step = "1m", .agg = "avg"},
	    {.name = "host_cpu_percent", .from = "-10m", .step = "1m", .agg = "p90"},
	    {.name = "host_load1", .from = "-10m", .agg = "max"},
	    {.name = "v", .from = "-10m"}, /* 3000 series: the merge sort's runs and merges */
	    {.name = NULL, .limit = "5000"},
	};
	static const char *const kinds[] = {"query", "query", "query", "query", "query", "series"};
	char msg[512];
	int slices;

	(void)state;
	db->virtual_n = 3000;
	for (size_t k = 0; k < sizeof(args) / sizeof(args[0]); k++) {
		struct run whole;
		struct buf b = BUF_INIT;
		assert_int_equal(run_query(db, q, kinds[k], &args[k], NULL, &whole), 0);
		if (strcmp(kinds[k], "query") == 0)
			query_begin_range(q, db, &whole.p, NULL, NOW);
		else
			query_begin_series(q, db, &whole.p, NULL);
		assert_int_equal(run_sliced(q, db, &b, msg, sizeof(msg), &slices), 0);
		assert_true(slices > 3);
		assert_string_equal(b.data, whole.out.data);
		if (strcmp(kinds[k], "series") == 0) { /* latest, from the same parameters */
			buf_reset(&b);
			buf_reset(&whole.out);
			assert_int_equal(
			    query_latest(q, db, &whole.p, NULL, &whole.out, msg, sizeof(msg)), 0);
			query_begin_latest(q, db, &whole.p, NULL);
			assert_int_equal(run_sliced(q, db, &b, msg, sizeof(msg), &slices), 0);
			assert_true(slices > 3);
			assert_string_equal(b.data, whole.out.data);
		}
		buf_free(&b);
		run_done(&whole);
	}
	{ /* /federate */
		struct buf whole = BUF_INIT, b = BUF_INIT;
		assert_int_equal(query_federate(q, db, NULL, NULL, NULL, 0, NOW, &whole), 0);
		query_begin_federate(q, db, NULL, NULL, NULL, 0, NOW);
		assert_int_equal(run_sliced(q, db, &b, msg, sizeof(msg), &slices), 0);
		assert_true(slices > 3);
		assert_string_equal(b.data, whole.data);
		buf_free(&whole);
		buf_free(&b);
	}
	query_free(q);
	fake_free(db);
}

/* The longest slice of a /federate of 100,000 series in slices of 10 ms (ms of CPU, not wall
 * time: on a shared test machine a slice may wait for a CPU). */
static double federate_worst_slice(struct tsdb *db, struct query *q, int *slices, double *all)
{
	struct buf b = BUF_INIT;
	double worst = 0;
	char msg[256];
	int rc;

	*slices = 0;
	*all = 0;
	query_begin_federate(q, db, NULL, NULL, NULL, 0, NOW);
	do {
		struct timespec t0, t1;
		double ms;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
		rc = query_run(q, db, clk_mono_ms() + 10, &b, msg, sizeof(msg));
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
		ms =
		    (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		worst = fmax(worst, ms);
		*all += ms;
		(*slices)++;
	} while (rc == QUERY_MORE);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(b.data, "v{host=\"h099999\"} 0 1764000000000\n"));
	buf_free(&b);
	return worst;
}

#define SLICE_BOUND_MS (10 + 6 * QUERY_TEST_BUDGET_MS)

static void test_slices_end_by_their_deadline(void **state)
{
	struct tsdb *db = fake_new();
	struct query *q = query_new();
	double worst = 1e9, all = 0;
	int slices = 0;

	(void)state;
	db->virtual_n = 100000;
	/* Best of five: page reclaim or a neighbour's cache misses (meson runs suites side by
	 * side) may lengthen a slice now and then; a step that cannot be cut would lengthen
	 * every run's. The hub's goal is 50 ms; the bound leaves a shared machine some room. */
	for (int k = 0; k < 5 && worst >= SLICE_BOUND_MS; k++)
		worst = fmin(worst, federate_worst_slice(db, q, &slices, &all));
	print_message("/federate of 100000 series in %d slices of 10 ms: %.1f ms of CPU in all, "
	              "the longest slice %.1f ms\n",
	              slices, all, worst);
	assert_true(slices > 1);
	assert_true(worst < SLICE_BOUND_MS);
	query_free(q);
	fake_free(db);
}

static void test_a_reloaded_tsdb_ends_the_query(void **state)
{
	struct tsdb *db = fixture();
	struct query *q = query_new();
	struct query_args a = {.name = "host_cpu_percent", .from = "-10m"};
	struct buf b = BUF_INIT;
	struct run r;
	char msg[256];

	(void)state;
	db->virtual_n = 2000;
	assert_int_equal(run_query(db, q, "series", &a, NULL, &r), 0);
	query_begin_range(q, db, &r.p, NULL, NOW);
	assert_int_equal(query_run(q, db, 1, &b, msg, sizeof(msg)), QUERY_MORE);
	db->gen++; /* a failed flush rebuilt the tsdb between two slices: ids may name others */
	assert_int_equal(query_run(q, db, 1, &b, msg, sizeof(msg)), OUTPOST_E_UNAVAILABLE);
	assert_non_null(strstr(msg, "run the query again"));
	run_done(&r);
	assert_int_equal(run_query(db, q, "series", &a, NULL, &r), 0); /* the engine goes on */
	assert_int_equal(json_array_size(json_object_get(r.result, "series")), 8);
	run_done(&r);
	buf_free(&b);
	query_free(q);
	fake_free(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_defaults),
	    cmocka_unit_test(test_parse_times_relative_and_absolute),
	    cmocka_unit_test(test_parse_steps),
	    cmocka_unit_test(test_parse_refuses_bad_parameters_with_what_to_write),
	    cmocka_unit_test(test_parse_aggregations_and_percentiles),
	    cmocka_unit_test(test_matcher_ops_and_anchored_regex),
	    cmocka_unit_test(test_regex_refuses_backrefs_and_is_linear),
	    cmocka_unit_test(test_matchers_filter_series_absent_label_is_empty),
	    cmocka_unit_test(test_hosts_filter_and_series_listing),
	    cmocka_unit_test(test_latest_sample_shape),
	    cmocka_unit_test(test_pick_resolution_and_step),
	    cmocka_unit_test(test_query_reads_the_chosen_resolution),
	    cmocka_unit_test(test_bucketing_averages_samples_per_step),
	    cmocka_unit_test(test_buckets_align_to_multiples_of_step),
	    cmocka_unit_test(test_step_too_small_is_refused_with_the_step_to_use),
	    cmocka_unit_test(test_too_many_series_refused_with_how_to_narrow),
	    cmocka_unit_test(test_range_keeps_its_own_copy_of_the_series),
	    cmocka_unit_test(test_every_aggregation_across_hosts),
	    cmocka_unit_test(test_quantile_interpolates_and_skips_nan),
	    cmocka_unit_test(test_nan_and_infinities_are_strings),
	    cmocka_unit_test(test_aggregates_of_nan_and_inf),
	    cmocka_unit_test(test_numbers_shortest_text_that_reads_back),
	    cmocka_unit_test(test_json_strings_escaped_and_valid_utf8),
	    cmocka_unit_test(test_selector_parse),
	    cmocka_unit_test(test_federate_text_format),
	    cmocka_unit_test(test_day_of_one_series_is_fast),
	    cmocka_unit_test(test_federate_of_100k_series),
	    cmocka_unit_test(test_slices_give_the_same_answer),
	    cmocka_unit_test(test_slices_end_by_their_deadline),
	    cmocka_unit_test(test_a_reloaded_tsdb_ends_the_query),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
