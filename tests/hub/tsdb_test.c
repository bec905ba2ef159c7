/* Tests for src/hub/tsdb.c and tsdb_key.c on a real store: series keys, appends and reads,
 * duplicates, restarts (log replay, checkpoints), sealing, rollups, retention, values that are
 * not finite. Built twice: on the SQLite store (hub/tsdb) and, with STORE_PG, on the
 * PostgreSQL one under tests/support/pg_run.sh (hub/tsdb_pg), so both metrics stores
 * (struct mstore) answer the same assertions; the PostgreSQL build adds two hubs on one
 * database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/store.h"
#include "hub/tsdb.h"
#include "core/log.h"
#include <outpost/plugin.h>
#ifdef STORE_PG
#include "hub/store_pg.h"
#include "support/pgtest.h"
#endif

#define MIN 60000LL
#define HOUR 3600000LL
#define DAY (24 * HOUR)
/* A fixed "now" on a 2-hour window boundary. */
#define T0 (1764000000000LL / (2 * HOUR) * (2 * HOUR))

struct fx {
	char dir[64];
	struct store *st;
	struct tsdb *db;
	struct logger log;
};

static int store_open(const char *dir, struct store **st, char *msg, size_t msglen)
{
#ifdef STORE_PG
	return store_pg_open(pgtest_dsn(), dir, st, msg, msglen);
#else
	return store_sqlite_open(dir, st, msg, msglen);
#endif
}

static void fx_open(struct fx *f)
{
	char msg[256];
	struct tsdb_config c = {NULL, &f->log, {2 * DAY, 30 * DAY, 365 * DAY}, 300000};

	if (store_open(f->dir, &f->st, msg, sizeof(msg)) != 0)
		fail_msg("store open: %s", msg);
	c.store = f->st;
	if (tsdb_open(&c, &f->db, msg, sizeof(msg)) != 0)
		fail_msg("tsdb_open: %s", msg);
}

static void fx_close(struct fx *f)
{
	tsdb_close(f->db);
	f->db = NULL;
	if (f->st)
		f->st->ops->close(f->st);
	f->st = NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->log.level = OUTPOST_LOG_ERROR;
	f->log.target = 0;
	f->log.level = -1; /* quiet */
	strcpy(f->dir, "/tmp/outpost-tsdb-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
#ifdef STORE_PG
	assert_int_equal(pgtest_fresh(), 0);
#endif
	fx_open(f);
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

	fx_close(f);
	nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static int append(struct fx *f, const char *host, const char *key, int64_t t, double v)
{
	char msg[256];
	struct tsdb_host *h = tsdb_host_get(f->db, host);

	assert_non_null(h);
	return tsdb_append(f->db, h, key, strlen(key), t, v, msg, sizeof(msg));
}

struct find {
	const char *host, *key;
	uint32_t id;
	int64_t last_ms;
	double last_value;
	size_t n;
};

static int find_cb(void *arg, const struct tsdb_series *s)
{
	struct find *x = arg;

	x->n++;
	if (strcmp(s->host, x->host) == 0 && strcmp(s->key, x->key) == 0) {
		x->id = s->id;
		x->last_ms = s->last_ms;
		x->last_value = s->last_value;
	}
	return 0;
}

static uint32_t series_id(struct fx *f, const char *host, const char *key)
{
	struct find x = {host, key, 0, 0, 0, 0};

	tsdb_series_each(f->db, NULL, find_cb, &x);
	return x.id;
}

static size_t read_n(struct fx *f, uint32_t id, int res, int64_t from, int64_t to,
                     struct tsdb_point **p)
{
	size_t n = 0;

	assert_int_equal(tsdb_read(f->db, id, res, from, to, p, &n), 0);
	return n;
}

/* ---- keys ---- */

static void test_key_canon_sorts_labels(void **state)
{
	char out[TSDB_KEY_MAX + 1], msg[128];
	size_t n;
	const char *k = "cpu{mode=\"user\",cpu=\"0\"}";

	(void)state;
	assert_int_equal(tsdb_key_canon(k, strlen(k), out, sizeof(out), &n, msg, sizeof(msg)), 0);
	assert_string_equal(out, "cpu{cpu=\"0\",mode=\"user\"}");
	assert_int_equal(n, strlen(out));
	k = "up";
	assert_int_equal(tsdb_key_canon(k, 2, out, sizeof(out), &n, msg, sizeof(msg)), 0);
	assert_string_equal(out, "up");
	k = "a_b:c{path=\"/x \\\"y\\\"\\\\z\\n\"}";
	assert_int_equal(tsdb_key_canon(k, strlen(k), out, sizeof(out), &n, msg, sizeof(msg)), 0);
	assert_string_equal(out, k);
}

static void test_key_canon_refuses_bad_keys(void **state)
{
	static const char *const bad[] = {
	    "",
	    "1abc",
	    "a-b",
	    "__x",
	    "x{",
	    "x{}}",
	    "x{a=\"1\"",
	    "x{a=1}",
	    "x{a=\"1\",}",
	    "x{a=\"1\"b=\"2\"}",
	    "x{host=\"h\"}",
	    "x{__a=\"1\"}",
	    "x{a=\"1\",a=\"2\"}",
	    "x{a=\"\\q\"}",
	    "x{a=\"line\nbreak\"}",
	    "x{9=\"1\"}",
	    "x y",
	};
	char out[TSDB_KEY_MAX + 1], msg[128], big[TSDB_KEY_MAX + 10];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msg[0] = '\0';
		if (tsdb_key_canon(bad[i], strlen(bad[i]), out, sizeof(out), &n, msg,
		                   sizeof(msg)) != OUTPOST_E_BAD_ARGS)
			fail_msg("key '%s' was accepted", bad[i]);
		assert_true(msg[0] != '\0');
	}
	memset(big, 'a', sizeof(big));
	assert_int_equal(tsdb_key_canon(big, sizeof(big), out, sizeof(out), &n, msg, sizeof(msg)),
	                 OUTPOST_E_BAD_ARGS);
}

/* ---- appends and reads ---- */

static void test_append_read_raw(void **state)
{
	struct fx *f = *state;
	struct tsdb_point *p = NULL;
	uint32_t id;
	size_t n;

	for (int i = 0; i < 100; i++)
		assert_int_equal(append(f, "h1", "load{x=\"1\"}", T0 + i * 10000, i * 0.5), 0);
	assert_int_equal(tsdb_pending(f->db), 100);
	assert_int_equal(tsdb_flush(f->db), 0);
	assert_int_equal(tsdb_pending(f->db), 0);
	id = series_id(f, "h1", "load{x=\"1\"}");
	assert_true(id > 0);
	n = read_n(f, id, TSDB_RAW, T0, T0 + 1000000, &p);
	assert_int_equal(n, 100);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(p[i].t, T0 + (int64_t)i * 10000);
		assert_true(p[i].sum == (double)i * 0.5 && p[i].count == 1);
	}
	free(p);
	/* A range in the middle, end exclusive. */
	n = read_n(f, id, TSDB_RAW, T0 + 20000, T0 + 50000, &p);
	assert_int_equal(n, 3);
	assert_int_equal(p[0].t, T0 + 20000);
	free(p);
	assert_int_equal(tsdb_read(f->db, 9999, TSDB_RAW, T0, T0 + 1, &p, &n), OUTPOST_E_NOT_FOUND);
}

static void test_same_series_any_label_order_and_hosts_apart(void **state)
{
	struct fx *f = *state;
	struct find x = {"h1", "m{a=\"1\",b=\"2\"}", 0, 0, 0, 0};

	assert_int_equal(append(f, "h1", "m{b=\"2\",a=\"1\"}", T0, 1), 0);
	assert_int_equal(append(f, "h1", "m{a=\"1\",b=\"2\"}", T0 + 1000, 2), 0);
	assert_int_equal(append(f, "h2", "m{a=\"1\",b=\"2\"}", T0, 3), 0);
	tsdb_series_each(f->db, "m", find_cb, &x);
	assert_int_equal(x.n, 2);
	assert_int_equal(x.last_ms, T0 + 1000);
	assert_true(x.last_value == 2);
}

static void test_replayed_samples_are_stored_once(void **state)
{
	struct fx *f = *state;
	struct tsdb_point *p = NULL;

	assert_int_equal(append(f, "h1", "m", T0, 1), 0);
	assert_int_equal(append(f, "h1", "m", T0 + 10000, 2), 0);
	assert_int_equal(append(f, "h1", "m", T0 + 10000, 2), 1);
	assert_int_equal(append(f, "h1", "m", T0, 1), 1);
	assert_int_equal(tsdb_flush(f->db), 0);
	assert_int_equal(read_n(f, series_id(f, "h1", "m"), TSDB_RAW, 0, T0 + DAY, &p), 2);
	free(p);
}

static void test_bad_key_and_host_label_refused(void **state)
{
	struct fx *f = *state;

	assert_int_equal(append(f, "h1", "bad key", T0, 1), OUTPOST_E_BAD_ARGS);
	assert_int_equal(append(f, "h1", "m{host=\"x\"}", T0, 1), OUTPOST_E_BAD_ARGS);
	assert_int_equal(series_id(f, "h1", "m"), 0);
}

static void test_non_finite_values_kept_bit_exact(void **state)
{
	struct fx *f = *state;
	struct tsdb_point *p = NULL;
	uint32_t id;

	assert_int_equal(append(f, "h1", "m", T0, NAN), 0);
	assert_int_equal(append(f, "h1", "m", T0 + 1000, INFINITY), 0);
	assert_int_equal(append(f, "h1", "m", T0 + 2000, -INFINITY), 0);
	assert_int_equal(append(f, "h1", "m", T0 + 3000, 5), 0);
	assert_int_equal(tsdb_flush(f->db), 0);
	fx_close(f);
	fx_open(f);
	id = series_id(f, "h1", "m");
	assert_int_equal(read_n(f, id, TSDB_RAW, T0, T0 + 4000, &p), 4);
	assert_true(isnan(p[0].sum));
	assert_true(isinf(p[1].sum) && p[1].sum > 0);
	assert_true(isinf(p[2].sum) && p[2].sum < 0);
	assert_true(p[3].sum == 5);
	free(p);
}

/* ---- restarts ---- */

static void test_restart_replays_the_log(void **state)
{
	struct fx *f = *state;
	struct tsdb_point *p = NULL;
	struct tsdb_host *h;
	const char *epoch;
	int64_t seq;

	for (int i = 0; i < 50; i++)
		assert_int_equal(append(f, "h1", "m", T0 + i * 1000, i), 0);
	h = tsdb_host_get(f->db, "h1");
	tsdb_host_mark(f->db, h, "0123456789abcdef", 7);
	assert_int_equal(tsdb_flush(f->db), 0);
	/* Not flushed: lost at restart (its sender was never answered). */
	assert_int_equal(append(f, "h1", "m", T0 + 50000, 50), 0);
	fx_close(f);
	fx_open(f);
	assert_int_equal(read_n(f, series_id(f, "h1", "m"), TSDB_RAW, T0, T0 + DAY, &p), 50);
	free(p);
	tsdb_host_seq(tsdb_host_get(f->db, "h1"), &epoch, &seq);
	assert_string_equal(epoch, "0123456789abcdef");
	assert_int_equal(seq, 7);
	/* The replayed head takes more samples, and survives another restart. */
	assert_int_equal(append(f, "h1", "m", T0 + 50000, 50), 0);
	assert_int_equal(tsdb_flush(f->db), 0);
	fx_close(f);
	fx_open(f);
	assert_int_equal(read_n(f, series_id(f, "h1", "m"), TSDB_RAW, T0, T0 + DAY, &p), 51);
	free(p);
}

static void test_checkpoint_trims_log_and_keeps_data(void **state)
{
	struct fx *f = *state;
	struct tsdb_point *p = NULL;
	json_t *st = NULL;
	struct mstore *m;

	for (int i = 0; i < 30; i++)
		assert_int_equal(append(f, "h1", "m", T0 + i * 1000, i), 0);
	assert_int_equal(tsdb_flush(f->db), 0);
	fx_close(f);
	/* checkpoint_ms 0: due at once. */
	{
		char msg[256];
		struct tsdb_config c = {NULL, &f->log, {2 * DAY, 30 * DAY, 365 * DAY}, 0};
		assert_int_equal(store_open(f->dir, &f->st, msg, sizeof(msg)), 0);
		c.store = f->st;
		assert_int_equal(tsdb_open(&c, &f->db, msg, sizeof(msg)), 0);
	}
	tsdb_compact(f->db, T0 + 30000, 1000, 1);
	m = f->st->ops->metrics(f->st);
	assert_int_equal(m->ops->stats(m, &st), 0);
	assert_int_equal(json_integer_value(json_object_get(st, "log_rows")), 0);
	json_decref(st);
	fx_close(f);
	fx_open(f);
	assert_int_equal(read_n(f, series_id(f, "h1", "m"), TSDB_RAW, T0, T0 + DAY, &p), 30);
	free(p);
}

/* ---- windows, rollups, retention ---- */

static void test_windows_seal_and_roll_up(void **state)
{
	struct fx *f = *state;
	struct tsdb_point *p = NULL, *q = NULL;
	uint32_t id;
	size_t n, nq;

	/* 5 hours at 10 s: values 0..1799. */
	for (int i = 0; i < 1800; i++)
		assert_int_equal(append(f, "h1", "m", T0 + i * 10000LL, i), 0);
	assert_int_equal(tsdb_flush(f->db), 0);
	id = series_id(f, "h1", "m");
	/* Before compaction, 1-minute points come from raw on the fly. */
	nq = read_n(f, id, TSDB_1M, T0, T0 + 5 * HOUR, &q);
	assert_int_equal(nq, 300);
	tsdb_compact(f->db, T0 + 5 * HOUR, 5000, 1);
	n = read_n(f, id, TSDB_1M, T0, T0 + 5 * HOUR, &p);
	assert_int_equal(n, 300);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(p[i].t, T0 + (int64_t)i * MIN);
		assert_true(p[i].count == 6);
		assert_true(p[i].min == (double)i * 6 && p[i].max == (double)i * 6 + 5);
		assert_true(p[i].sum == (double)(6 * (i * 6) + 15));
		assert_true(memcmp(&p[i], &q[i], sizeof(p[i])) == 0);
	}
	free(p);
	free(q);
	n = read_n(f, id, TSDB_1H, T0, T0 + 5 * HOUR, &p);
	assert_int_equal(n, 5);
	assert_true(p[0].count == 360 && p[0].min == 0 && p[0].max == 359);
	assert_true(p[4].count == 360 && p[4].min == 1440 && p[4].max == 1799);
	free(p);
	/* Raw reads cross the sealed windows and the head. */
	assert_int_equal(read_n(f, id, TSDB_RAW, T0, T0 + 5 * HOUR, &p), 1800);
	free(p);
	fx_close(f);
	fx_open(f);
	assert_int_equal(read_n(f, id, TSDB_RAW, T0, T0 + 5 * HOUR, &p), 1800);
	free(p);
	assert_int_equal(read_n(f, id, TSDB_1H, T0, T0 + 5 * HOUR, &p), 5);
	free(p);
}

static void test_timer_seal_then_late_sample_reopens(void **state)
{
	struct fx *f = *state;
	struct tsdb_point *p = NULL;
	uint32_t id;

	for (int i = 0; i < 10; i++)
		assert_int_equal(append(f, "h1", "m", T0 + i * 60000LL, 1), 0);
	/* Long after the window's end: sealed and rolled up without a later sample. */
	tsdb_compact(f->db, T0 + 3 * HOUR, 5000, 1);
	id = series_id(f, "h1", "m");
	assert_int_equal(read_n(f, id, TSDB_1H, T0, T0 + 2 * HOUR, &p), 1);
	assert_true(p[0].count == 10);
	free(p);
	/* A late sample of the same window (a spool replayed after a long outage). */
	assert_int_equal(append(f, "h1", "m", T0 + 90 * 60000LL, 3), 0);
	assert_int_equal(tsdb_flush(f->db), 0);
	assert_int_equal(read_n(f, id, TSDB_RAW, T0, T0 + 2 * HOUR, &p), 11);
	free(p);
	tsdb_compact(f->db, T0 + 3 * HOUR, 5000, 1);
	assert_int_equal(read_n(f, id, TSDB_1H, T0, T0 + 2 * HOUR, &p), 2);
	assert_true(p[0].count == 10 && p[1].count == 1 && p[1].max == 3);
	free(p);
}

static void test_retention_drops_old_raw_keeps_rollups(void **state)
{
	struct fx *f = *state;
	struct tsdb_point *p = NULL;
	uint32_t id;

	for (int i = 0; i < 20; i++)
		assert_int_equal(append(f, "h1", "m", T0 + i * 60000LL, i), 0);
	tsdb_compact(f->db, T0 + 3 * HOUR, 5000, 1);
	id = series_id(f, "h1", "m");
	/* Three days later: raw (2 days) is gone, the rollups stay. */
	tsdb_compact(f->db, T0 + 3 * DAY, 5000, 1);
	assert_int_equal(read_n(f, id, TSDB_RAW, T0, T0 + 2 * HOUR, &p), 0);
	assert_int_equal(read_n(f, id, TSDB_1M, T0, T0 + 2 * HOUR, &p), 20);
	free(p);
	/* 40 days later the 1-minute rollups are gone, the hourly ones stay. */
	tsdb_compact(f->db, T0 + 40 * DAY, 5000, 1);
	assert_int_equal(read_n(f, id, TSDB_1M, T0, T0 + 2 * HOUR, &p), 0);
	assert_int_equal(read_n(f, id, TSDB_1H, T0, T0 + 2 * HOUR, &p), 1);
	assert_true(p[0].count == 20);
	free(p);
}

static void test_store_is_compact_for_grid_series(void **state)
{
	struct fx *f = *state;
	struct mstore *m;
	json_t *st = NULL;
	double bytes, samples;

	/* A day of a slowly moving integer gauge and a constant, at 10 s. */
	for (int i = 0; i < 8640; i++) {
		assert_int_equal(append(f, "h1", "mem_used_bytes", T0 + i * 10000LL,
		                        1e9 + (double)((i * 7919) % 13) * 4096),
		                 0);
		assert_int_equal(append(f, "h1", "mem_total_bytes", T0 + i * 10000LL, 8e9), 0);
	}
	tsdb_compact(f->db, T0 + DAY + 3 * HOUR, 5000, 1); /* every window sealed */
	m = f->st->ops->metrics(f->st);
	assert_int_equal(m->ops->stats(m, &st), 0);
	bytes = (double)json_integer_value(json_array_get(json_object_get(st, "chunk_bytes"), 0));
	samples = (double)json_integer_value(json_array_get(json_object_get(st, "samples"), 0));
	print_message("raw chunks: %.0f samples in %.0f bytes: %.2f bytes/sample\n", samples, bytes,
	              bytes / samples);
	assert_int_equal(samples, 2 * 8640);
	assert_true(bytes / samples < 2.0);
	json_decref(st);
}

#ifdef STORE_PG
/* ---- two hubs on one database (docs/metrics.md, "Several hubs") ---- */

/* A second hub: its own state dir (its own hub.id), the same database. */
static struct fx *hub_b(struct fx *a)
{
	struct fx *b = calloc(1, sizeof(*b));

	assert_non_null(b);
	b->log = a->log;
	strcpy(b->dir, "/tmp/outpost-tsdb-XXXXXX");
	assert_non_null(mkdtemp(b->dir));
	fx_open(b);
	return b;
}

static void hub_b_close(struct fx *b)
{
	fx_close(b);
	nftw(b->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(b);
}

/* What hub A stored is read at hub B at once: its series, its latest value, its samples (in
 * A's open head and log only: no chunk row yet), and A's batch is a duplicate at B. */
static void test_two_hubs_see_each_others_samples_at_once(void **state)
{
	struct fx *a = *state, *b = hub_b(a);
	struct tsdb_point *p = NULL;
	struct tsdb_host *h;
	const char *epoch;
	int64_t seq;
	struct find x = {"h1", "m", 0, 0, 0, 0};

	for (int i = 0; i < 10; i++)
		assert_int_equal(append(a, "h1", "m", T0 + i * 1000, i), 0);
	tsdb_host_mark(a->db, tsdb_host_get(a->db, "h1"), "0123456789abcdef", 3);
	assert_int_equal(tsdb_flush(a->db), 0);
	tsdb_compact(b->db, T0 + 10000, 1000, 1); /* B follows the others every second */
	tsdb_series_each(b->db, NULL, find_cb, &x);
	assert_int_not_equal(x.id, 0);
	assert_int_equal(x.last_ms, T0 + 9000);
	assert_true(x.last_value == 9);
	assert_int_equal(read_n(b, x.id, TSDB_RAW, T0, T0 + DAY, &p), 10);
	assert_true(p[0].t == T0 && p[9].sum == 9);
	free(p);
	assert_int_equal(read_n(b, x.id, TSDB_1M, T0, T0 + DAY, &p), 1);
	assert_true(p[0].count == 10);
	free(p);
	/* the batch A stored is stored at B too, for B's ingest */
	h = tsdb_host_get(b->db, "h1");
	assert_int_equal(tsdb_host_sync(b->db, h), 0);
	tsdb_host_seq(h, &epoch, &seq);
	assert_string_equal(epoch, "0123456789abcdef");
	assert_int_equal(seq, 3);
	hub_b_close(b);
}

/* An agent moves from A to B and back, mid-window; both hubs write the window (checkpoints,
 * sealing, rollups): every sample is kept once, and both read the same. */
static void test_agent_moving_between_hubs_loses_nothing(void **state)
{
	struct fx *a = *state, *b = hub_b(a);
	struct tsdb_point *p = NULL;
	uint32_t id;

	for (int i = 0; i < 10; i++)
		assert_int_equal(append(a, "h1", "m", T0 + i * 60000LL, i), 0);
	assert_int_equal(tsdb_flush(a->db), 0);
	tsdb_compact(b->db, T0 + 10 * 60000LL, 1000, 1);
	for (int i = 10; i < 20; i++)
		assert_int_equal(append(b, "h1", "m", T0 + i * 60000LL, i), 0);
	assert_int_equal(tsdb_flush(b->db), 0);
	tsdb_compact(a->db, T0 + 20 * 60000LL, 1000, 1); /* A lets its head go, written */
	for (int i = 20; i < 30; i++)
		assert_int_equal(append(a, "h1", "m", T0 + i * 60000LL, i), 0);
	assert_int_equal(tsdb_flush(a->db), 0);
	id = series_id(a, "h1", "m");
	assert_int_equal(series_id(b, "h1", "m"), id);
	assert_int_equal(read_n(a, id, TSDB_RAW, T0, T0 + DAY, &p), 30);
	free(p);
	assert_int_equal(read_n(b, id, TSDB_RAW, T0, T0 + DAY, &p), 30);
	free(p);
	/* Long after the window: both seal what they hold, merged; the rollups count 30. */
	tsdb_compact(b->db, T0 + 3 * HOUR, 5000, 1);
	tsdb_compact(a->db, T0 + 3 * HOUR, 5000, 1);
	tsdb_compact(b->db, T0 + 3 * HOUR, 5000, 1);
	assert_int_equal(read_n(b, id, TSDB_1H, T0, T0 + 2 * HOUR, &p), 1);
	assert_true(p[0].count == 30 && p[0].min == 0 && p[0].max == 29);
	free(p);
	assert_int_equal(read_n(a, id, TSDB_RAW, T0, T0 + DAY, &p), 30);
	for (int i = 0; i < 30; i++)
		assert_true(p[i].t == T0 + i * 60000LL && p[i].sum == i);
	free(p);
	/* and a restart of both changes nothing */
	fx_close(a);
	fx_open(a);
	hub_b_close(b);
	assert_int_equal(read_n(a, id, TSDB_RAW, T0, T0 + DAY, &p), 30);
	free(p);
}

static long long tsdb_counter(struct fx *f, const char *what)
{
	json_t *st = tsdb_status(f->db);
	long long n = json_integer_value(json_object_get(st, what));

	json_decref(st);
	return n;
}

/* Rollups and retention are the leading hub's work (lead 1); another hub seals what it holds
 * but neither rolls up nor deletes, and reads the leader's rollups once it has read the
 * store's rollup marks (once a minute). */
static void test_only_the_leading_hub_rolls_up_and_expires(void **state)
{
	struct fx *a = *state, *b = hub_b(a);
	struct tsdb_point *p = NULL;
	uint32_t id;

	for (int i = 0; i < 20; i++)
		assert_int_equal(append(b, "h1", "m", T0 + i * 60000LL, i), 0);
	assert_int_equal(tsdb_flush(b->db), 0);
	tsdb_compact(b->db, T0 + 3 * HOUR, 5000, 0); /* B seals its window, no rollup */
	id = series_id(b, "h1", "m");
	assert_true(tsdb_counter(b, "chunks_sealed") > 0);
	assert_int_equal(tsdb_counter(b, "chunks_rolled"), 0);
	tsdb_compact(a->db, T0 + 3 * HOUR, 5000, 1); /* the leader rolls B's chunk up */
	assert_int_equal(tsdb_counter(a, "chunks_rolled"), 1);
	/* Three days on: the leader's retention deletes the raw chunk; B, which still had
	 * its old rollup mark, reads the marks again first and finds the rollups. */
	tsdb_compact(b->db, T0 + 3 * DAY, 5000, 0);
	assert_int_equal(tsdb_counter(b, "chunks_expired"), 0);
	tsdb_compact(a->db, T0 + 3 * DAY, 5000, 1);
	assert_int_equal(tsdb_counter(a, "chunks_expired"), 1);
	assert_int_equal(read_n(b, id, TSDB_RAW, T0, T0 + 2 * HOUR, &p), 0);
	assert_int_equal(read_n(b, id, TSDB_1M, T0, T0 + 2 * HOUR, &p), 20);
	free(p);
	assert_int_equal(tsdb_counter(b, "chunks_rolled"), 0);
	hub_b_close(b);
}

/* A batch both hubs take (an agent that gave up on A's answer and sent it to B): the second
 * flush fails (its sender retries), and then sees it as stored. */
static void test_two_hubs_racing_on_one_batch_store_it_once(void **state)
{
	struct fx *a = *state, *b = hub_b(a);
	struct tsdb_host *ha = tsdb_host_get(a->db, "h1"), *hb = tsdb_host_get(b->db, "h1");
	struct tsdb_point *p = NULL;
	const char *epoch;
	int64_t seq;
	uint64_t gen;

	/* The series is known to both: only the batch races. */
	assert_int_equal(append(a, "h1", "m", T0 - 1000, 0), 0);
	assert_int_equal(tsdb_flush(a->db), 0);
	tsdb_compact(b->db, T0, 1000, 1);
	assert_int_equal(series_id(b, "h1", "m"), series_id(a, "h1", "m"));
	assert_int_equal(tsdb_host_sync(a->db, ha), 0);
	assert_int_equal(tsdb_host_sync(b->db, hb), 0); /* both read "nothing stored" */
	assert_int_equal(append(a, "h1", "m", T0, 1), 0);
	tsdb_host_mark(a->db, ha, "0123456789abcdef", 1);
	assert_int_equal(append(b, "h1", "m", T0, 1), 0);
	tsdb_host_mark(b->db, hb, "0123456789abcdef", 1);
	assert_int_equal(tsdb_flush(a->db), 0);
	gen = tsdb_generation(b->db);
	assert_int_equal(tsdb_flush(b->db), OUTPOST_E_CONFLICT);
	assert_int_not_equal(tsdb_generation(b->db), gen);
	hb = tsdb_host_get(b->db, "h1");
	assert_int_equal(tsdb_host_sync(b->db, hb), 0);
	tsdb_host_seq(hb, &epoch, &seq);
	assert_int_equal(seq, 1);
	tsdb_compact(b->db, T0 + 1000, 1000, 1);
	assert_int_equal(read_n(b, series_id(b, "h1", "m"), TSDB_RAW, T0 - 1000, T0 + DAY, &p), 2);
	free(p);
	hub_b_close(b);
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_canon_sorts_labels),
	    cmocka_unit_test(test_key_canon_refuses_bad_keys),
	    cmocka_unit_test_setup_teardown(test_append_read_raw, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_same_series_any_label_order_and_hosts_apart, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_replayed_samples_are_stored_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_key_and_host_label_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_non_finite_values_kept_bit_exact, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restart_replays_the_log, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoint_trims_log_and_keeps_data, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_windows_seal_and_roll_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_timer_seal_then_late_sample_reopens, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_retention_drops_old_raw_keeps_rollups, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_store_is_compact_for_grid_series, setup, teardown),
#ifdef STORE_PG
	    cmocka_unit_test_setup_teardown(test_only_the_leading_hub_rolls_up_and_expires, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_two_hubs_see_each_others_samples_at_once, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_agent_moving_between_hubs_loses_nothing, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_two_hubs_racing_on_one_batch_store_it_once, setup,
	                                    teardown),
#endif
	};
#ifdef STORE_PG
	if (pgtest_skip())
		return 77;
#endif
	return cmocka_run_group_tests(tests, NULL, NULL);
}
