/* Tests for the metrics plugin (src/plugins/metrics/metrics.c, mtab.c, statsd.c): the sample
 * timer on the grid, metrics.now, metrics.push validation and semantics, and StatsD over a real
 * UDP socket on 127.0.0.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plugtest.h"
#include "plugins/builtin.h"
#include "plugins/metrics/batch.h"
#include "plugins/metrics/mtab.h"
#include "plugins/metrics/statsd.h"
#include "core/buf.h"
#include "core/clk.h"
#include "core/loop.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const no_statsd = "{\"statsd_listen\": \"\", \"interval_ms\": 1000}";

static json_t *now(struct plugtest *t, const char *match)
{
	char args[256];
	json_t *r = NULL;
	const char *msg = NULL;

	if (match)
		snprintf(args, sizeof(args), "{\"match\": \"%s\"}", match);
	else
		snprintf(args, sizeof(args), "{}");
	assert_int_equal(plugtest_call(t, "now", args, &r, &msg), 0);
	assert_non_null(r);
	return r;
}

/* The value of the series name with label lk=lv (lk NULL: no labels), or NaN when absent. */
static double value_of(json_t *r, const char *name, const char *lk, const char *lv)
{
	size_t i;
	json_t *s;

	json_array_foreach(json_object_get(r, "series"), i, s)
	{
		json_t *l = json_object_get(s, "labels");
		if (strcmp(json_string_value(json_object_get(s, "name")), name) != 0)
			continue;
		if (!lk && json_object_size(l) > 0)
			continue;
		if (lk && (!json_is_string(json_object_get(l, lk)) ||
		           strcmp(json_string_value(json_object_get(l, lk)), lv) != 0))
			continue;
		return json_number_value(json_object_get(s, "value"));
	}
	return NAN;
}

static double now_value(struct plugtest *t, const char *name, const char *lk, const char *lv)
{
	json_t *r = now(t, name);
	double v = value_of(r, name, lk, lv);
	json_decref(r);
	return v;
}

static int64_t now_time(struct plugtest *t)
{
	json_t *r = now(t, "none_");
	int64_t v = json_is_integer(json_object_get(r, "time_ms"))
	                ? json_integer_value(json_object_get(r, "time_ms"))
	                : 0;
	json_decref(r);
	return v;
}

/* Turns the loop until the sample time moves past prev; returns the new one. */
static int64_t wait_tick(struct plugtest *t, int64_t prev)
{
	int64_t deadline = clk_mono_ms() + 4000, tm;

	while ((tm = now_time(t)) <= prev) {
		assert_true(clk_mono_ms() < deadline);
		loop_run_once(plugtest_loop(t), 100);
	}
	return tm;
}

static int push(struct plugtest *t, const char *args, const char **msg)
{
	json_t *r = NULL;
	int rc = plugtest_call(t, "push", args, &r, msg);
	json_decref(r);
	return rc;
}

/* ---- the timer and now ---- */

static void test_timer_samples_host_series_on_the_grid(void **st)
{
	struct plugtest *t = plugtest_new(&outpost_plugin_metrics, no_statsd);
	json_t *r;
	int64_t t1, t2;

	(void)st;
	r = now(t, NULL);
	assert_true(json_is_null(json_object_get(r, "time_ms")));
	assert_int_equal(json_integer_value(json_object_get(r, "interval_ms")), 1000);
	json_decref(r);

	t1 = wait_tick(t, 0);
	assert_int_equal(t1 % 1000, 0);
	assert_true(llabs(clk_real_ms() - t1) < 1500);
	t2 = wait_tick(t, t1);
	assert_int_equal(t2 % 1000, 0);
	assert_int_equal(t2 - t1, 1000);

	r = now(t, NULL);
	assert_true(value_of(r, "host_memory_bytes", "kind", "total") > 0);
	assert_true(value_of(r, "host_cpu_count", NULL, NULL) >= 1);
	/* The sample taken at init gives the first grid sample its rates. */
	assert_false(isnan(value_of(r, "host_cpu_percent", "mode", "idle")));
	assert_true(value_of(r, "host_tcp_connections", "state", "listen") >= 0);
	json_decref(r);
	plugtest_free(t);
}

static void test_now_filters_by_name_prefix(void **st)
{
	struct plugtest *t = plugtest_new(&outpost_plugin_metrics, no_statsd);
	const char *msg;
	json_t *r, *s;
	size_t i;

	(void)st;
	assert_int_equal(push(t,
	                      "{\"metrics\": [{\"name\": \"app_a\", \"value\": 1}, {\"name\": "
	                      "\"app_b\", \"labels\": {\"x\": \"y\"}, \"value\": 2}, {\"name\": "
	                      "\"other\", \"value\": 3}]}",
	                      &msg),
	                 0);
	wait_tick(t, 0);
	r = now(t, "app_");
	assert_int_equal(json_array_size(json_object_get(r, "series")), 2);
	assert_true(value_of(r, "app_b", "x", "y") == 2);
	json_decref(r);
	r = now(t, "host_memory");
	assert_true(json_array_size(json_object_get(r, "series")) >= 4);
	json_array_foreach(json_object_get(r, "series"), i, s) assert_int_equal(
	    strncmp(json_string_value(json_object_get(s, "name")), "host_memory", 11), 0);
	json_decref(r);
	r = now(t, NULL);
	assert_true(value_of(r, "other", NULL, NULL) == 3);
	assert_true(value_of(r, "statsd_bad_lines_total", NULL, NULL) == 0);
	json_decref(r);
	plugtest_free(t);
}

/* ---- push ---- */

static void test_push_counter_adds_gauge_replaces(void **st)
{
	struct plugtest *t = plugtest_new(&outpost_plugin_metrics, no_statsd);
	const char *msg;

	(void)st;
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    push(t,
		         "{\"metrics\": [{\"name\": \"jobs_total\", \"type\": \"counter\", "
		         "\"value\": "
		         "2.5, \"labels\": {\"q\": \"a\", \"b\": \"c\"}}, {\"name\": \"temp\", "
		         "\"value\": 40}, {\"name\": \"temp\", \"value\": 41}]}",
		         &msg),
		    0);
	assert_true(now_value(t, "jobs_total", "q", "a") == 7.5);
	assert_true(now_value(t, "temp", NULL, NULL) == 41);
	/* Label order does not make another series. */
	assert_int_equal(push(t,
	                      "{\"metrics\": [{\"name\": \"jobs_total\", \"type\": \"counter\", "
	                      "\"value\": 1, \"labels\": {\"b\": \"c\", \"q\": \"a\"}}]}",
	                      &msg),
	                 0);
	assert_true(now_value(t, "jobs_total", "q", "a") == 8.5);
	/* A series keeps its type. */
	assert_int_equal(
	    push(t, "{\"metrics\": [{\"name\": \"temp\", \"type\": \"counter\", \"value\": 1}]}",
	         &msg),
	    OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "metrics[0]"));
	assert_int_equal(push(t,
	                      "{\"metrics\": [{\"name\": \"n1\", \"value\": 1}, {\"name\": \"n1\", "
	                      "\"type\": \"counter\", \"value\": 1}]}",
	                      &msg),
	                 OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "metrics[1]"));
	assert_true(isnan(now_value(t, "n1", NULL, NULL)));
	assert_true(now_value(t, "temp", NULL, NULL) == 41);
	plugtest_free(t);
}

static void test_push_rejects_each_bad_item_and_applies_nothing(void **st)
{
	struct plugtest *t = plugtest_new(&outpost_plugin_metrics, no_statsd);
	char long_value[300], args[2048];
	const char *msg;
	struct buf many = BUF_INIT;
	const char *const bad[] = {
	    "{\"name\": \"1abc\", \"value\": 1}",
	    "{\"name\": \"a-b\", \"value\": 1}",
	    "{\"name\": \"__x\", \"value\": 1}",
	    "{\"name\": \"\", \"value\": 1}",
	    "{\"name\": \"host_fake\", \"value\": 1}",
	    "{\"name\": \"x\", \"labels\": {\"a-b\": \"v\"}, \"value\": 1}",
	    "{\"name\": \"x\", \"labels\": {\"__l\": \"v\"}, \"value\": 1}",
	    "{\"name\": \"x\", \"labels\": {\"l\": 5}, \"value\": 1}",
	    "{\"name\": \"x\", \"labels\": [], \"value\": 1}",
	    "{\"name\": \"x\", \"value\": \"NaN\"}",
	    "{\"name\": \"x\", \"value\": \"Infinity\"}",
	    "{\"name\": \"x\"}",
	    "{\"name\": \"x\", \"value\": 1, \"type\": \"histogram\"}",
	    "{\"name\": \"x\", \"value\": -1, \"type\": \"counter\"}",
	    "{\"name\": \"x\", \"value\": 1, \"unit\": \"s\"}",
	    "\"x\"",
	};

	(void)st;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(args, sizeof(args),
		         "{\"metrics\": [{\"name\": \"good\", \"value\": 1}, %s]}", bad[i]);
		assert_int_equal(push(t, args, &msg), OUTPOST_E_BAD_ARGS);
		assert_non_null(strstr(msg, "metrics[1]"));
	}
	memset(long_value, 'v', 257);
	long_value[257] = '\0';
	snprintf(args, sizeof(args),
	         "{\"metrics\": [{\"name\": \"good\", \"value\": 1}, {\"name\": \"x\", \"labels\": "
	         "{\"l\": \"%s\"}, \"value\": 1}]}",
	         long_value);
	assert_int_equal(push(t, args, &msg), OUTPOST_E_BAD_ARGS);
	buf_puts(&many, "{\"metrics\": [{\"name\": \"good\", \"value\": 1}, {\"name\": \"x\", "
	                "\"value\": 1, \"labels\": {");
	for (int i = 0; i < 17; i++)
		buf_printf(&many, "%s\"l%d\": \"v\"", i ? ", " : "", i);
	buf_puts(&many, "}}]}");
	assert_int_equal(push(t, many.data, &msg), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "labels"));

	buf_reset(&many);
	buf_puts(&many, "{\"metrics\": [");
	for (int i = 0; i < 1001; i++)
		buf_printf(&many, "%s{\"name\": \"good\", \"value\": %d}", i ? ", " : "", i);
	buf_puts(&many, "]}");
	assert_int_equal(push(t, many.data, &msg), OUTPOST_E_TOO_LARGE);
	buf_free(&many);

	assert_true(isnan(now_value(t, "good", NULL, NULL)));
	assert_true(isnan(now_value(t, "x", NULL, NULL)));
	assert_int_equal(push(t, "{\"metrics\": []}", &msg), 0);
	plugtest_free(t);
}

static void test_push_over_max_series_is_too_large_and_counted(void **st)
{
	struct plugtest *t =
	    plugtest_new(&outpost_plugin_metrics, "{\"statsd_listen\": \"\", \"max_series\": 3}");
	const char *msg;

	(void)st;
	assert_int_equal(push(t,
	                      "{\"metrics\": [{\"name\": \"a\", \"value\": 1}, {\"name\": \"b\", "
	                      "\"value\": 1}, {\"name\": \"b\", \"value\": 2}]}",
	                      &msg),
	                 0);
	assert_int_equal(push(t,
	                      "{\"metrics\": [{\"name\": \"a\", \"value\": 5}, {\"name\": \"c\", "
	                      "\"value\": 1}, {\"name\": \"d\", \"value\": 1}]}",
	                      &msg),
	                 OUTPOST_E_TOO_LARGE);
	assert_non_null(strstr(msg, "max_series"));
	assert_true(now_value(t, "a", NULL, NULL) == 1);
	assert_true(isnan(now_value(t, "c", NULL, NULL)));
	assert_true(now_value(t, "metrics_series_refused_total", NULL, NULL) == 2);
	/* Updates of existing series and one more new one still fit. */
	assert_int_equal(push(t,
	                      "{\"metrics\": [{\"name\": \"a\", \"value\": 5}, {\"name\": \"c\", "
	                      "\"value\": 1}]}",
	                      &msg),
	                 0);
	assert_true(now_value(t, "a", NULL, NULL) == 5);
	plugtest_free(t);
}

static void test_init_refuses_bad_config(void **st)
{
	const char *const bad[] = {
	    "{\"intervall_ms\": 1000}",
	    "{\"interval_ms\": 999}",
	    "{\"max_series\": \"many\"}",
	    "{\"statsd_listen\": \"nowhere\"}",
	    "{\"statsd_listen\": \"localhost:8125\"}",
	    "{\"proc_root\": \"/nonexistent-proc\"}",
	};

	(void)st;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct plugtest *t = plugtest_new_any(&outpost_plugin_metrics, bad[i]);
		assert_int_not_equal(plugtest_init_rc(t), 0);
		plugtest_free(t);
	}
}

/* ---- StatsD ---- */

struct statsd_env {
	struct plugtest *t;
	int fd; /* the sender */
	struct sockaddr_in to;
	int sent;
};

static void statsd_start(struct statsd_env *e)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	char conf[128];
	int probe = socket(AF_INET, SOCK_DGRAM, 0);

	/* A free port: bound by the kernel, then released for the plugin. */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(probe, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(probe, (struct sockaddr *)&a, &alen), 0);
	close(probe);
	snprintf(conf, sizeof(conf), "{\"statsd_listen\": \"127.0.0.1:%d\", \"interval_ms\": 1000}",
	         ntohs(a.sin_port));
	e->t = plugtest_new(&outpost_plugin_metrics, conf);
	e->to = a;
	e->fd = socket(AF_INET, SOCK_DGRAM, 0);
	e->sent = 0;
	assert_true(e->fd >= 0);
}

static void statsd_stop(struct statsd_env *e)
{
	close(e->fd);
	plugtest_free(e->t);
}

/* Sends one packet and turns the loop until the plugin has read every packet sent so far. */
static void statsd_send(struct statsd_env *e, const char *p, size_t len)
{
	int64_t deadline = clk_mono_ms() + 3000;

	assert_int_equal(sendto(e->fd, p, len, 0, (struct sockaddr *)&e->to, sizeof(e->to)),
	                 (ssize_t)len);
	e->sent++;
	while (now_value(e->t, "statsd_packets_total", NULL, NULL) < e->sent) {
		assert_true(clk_mono_ms() < deadline);
		loop_run_once(plugtest_loop(e->t), 50);
	}
}

static void statsd_sends(struct statsd_env *e, const char *p)
{
	statsd_send(e, p, strlen(p));
}

static void test_statsd_counters_with_sample_rates(void **st)
{
	struct statsd_env e;

	(void)st;
	statsd_start(&e);
	statsd_sends(&e, "web.requests:1|c\nweb.requests:2|c");
	statsd_sends(&e, "web.requests:1|c|@0.5\n");
	statsd_sends(&e, "web.requests:1|c|@0.1|#code:200\r\n");
	assert_true(now_value(e.t, "web_requests", NULL, NULL) == 5);
	assert_true(fabs(now_value(e.t, "web_requests", "code", "200") - 10) < 1e-9);
	assert_true(now_value(e.t, "statsd_bad_lines_total", NULL, NULL) == 0);
	statsd_stop(&e);
}

static void test_statsd_gauges_with_deltas(void **st)
{
	struct statsd_env e;

	(void)st;
	statsd_start(&e);
	statsd_sends(&e, "queue.depth:10|g\nqueue.depth:+5|g\nqueue.depth:-3|g");
	assert_true(now_value(e.t, "queue_depth", NULL, NULL) == 12);
	statsd_sends(&e, "queue.depth:4|g");
	assert_true(now_value(e.t, "queue_depth", NULL, NULL) == 4);
	statsd_stop(&e);
}

static void test_statsd_timers_and_sets_are_summarized_per_interval(void **st)
{
	struct statsd_env e;
	struct buf b = BUF_INIT;
	int64_t tm;
	json_t *r;

	(void)st;
	statsd_start(&e);
	tm = wait_tick(e.t, 0);
	for (int i = 100; i >= 1; i--)
		buf_printf(&b, "db.query:%d|ms\n", i);
	statsd_sends(&e, b.data);
	statsd_sends(&e, "users:alice|s\nusers:bob|s\nusers:alice|s\nsize:3|h");
	/* Nothing is shown before the interval closes. */
	assert_true(isnan(now_value(e.t, "db_query", "stat", "count")));
	tm = wait_tick(e.t, tm);
	r = now(e.t, NULL);
	assert_true(value_of(r, "db_query", "stat", "count") == 100);
	assert_true(value_of(r, "db_query", "stat", "sum") == 5050);
	assert_true(value_of(r, "db_query", "stat", "min") == 1);
	assert_true(value_of(r, "db_query", "stat", "max") == 100);
	assert_true(value_of(r, "db_query", "stat", "p50") == 50);
	assert_true(value_of(r, "db_query", "stat", "p90") == 90);
	assert_true(value_of(r, "db_query", "stat", "p99") == 99);
	assert_true(value_of(r, "size", "stat", "p99") == 3);
	assert_true(value_of(r, "users", NULL, NULL) == 2);
	json_decref(r);
	/* An idle interval: count 0, no percentiles; the set counts nothing. */
	wait_tick(e.t, tm);
	r = now(e.t, NULL);
	assert_true(value_of(r, "db_query", "stat", "count") == 0);
	assert_true(isnan(value_of(r, "db_query", "stat", "p50")));
	assert_true(value_of(r, "users", NULL, NULL) == 0);
	json_decref(r);
	buf_free(&b);
	statsd_stop(&e);
}

static void test_statsd_bad_lines_are_counted_and_skipped(void **st)
{
	struct statsd_env e;
	char big[STATSD_LINE_MAX + 100];
	static const char nul[] = "a\0b:1|c\nafter.nul:1|g";

	(void)st;
	statsd_start(&e);
	statsd_sends(&e, "nocolon\n"
	                 "x:1|zz\n"
	                 "x:abc|c\n"
	                 "x:1|c|@2\n"
	                 "x:1|c|@0\n"
	                 "-+-:1|c\n"
	                 "x:-1|c\n"
	                 "x:1\n"
	                 "x:1|c|junk\n"
	                 "__x:1|g\n"
	                 "host.cpu:1|g\n"
	                 "x:1e999|g\n"
	                 "x:1|c|#a-b:1,a-b:2\n"
	                 "ok.line:7|g\n"
	                 "ok.line:1|c\n" /* a gauge already */
	                 "\n");
	/* 13 malformed lines, and a counter line for a series that is a gauge. */
	assert_true(now_value(e.t, "statsd_bad_lines_total", NULL, NULL) == 14);
	assert_true(now_value(e.t, "ok_line", NULL, NULL) == 7);
	/* A NUL byte and a line longer than any name can be. */
	statsd_send(&e, nul, sizeof(nul) - 1);
	memset(big, 'a', sizeof(big));
	memcpy(big + sizeof(big) - 5, ":1|g", 4);
	statsd_send(&e, big, sizeof(big) - 1);
	assert_true(now_value(e.t, "statsd_bad_lines_total", NULL, NULL) == 16);
	assert_true(now_value(e.t, "after_nul", NULL, NULL) == 1);
	statsd_stop(&e);
}

static void test_statsd_huge_packets(void **st)
{
	struct statsd_env e;
	struct buf b = BUF_INIT;
	int n = 0;

	(void)st;
	statsd_start(&e);
	while (b.len < 65000) {
		buf_printf(&b, "bulk.%d:1|c\n", n % 500);
		n++;
	}
	statsd_send(&e, b.data, b.len);
	assert_true(now_value(e.t, "bulk_0", NULL, NULL) == (n + 499) / 500);
	assert_true(now_value(e.t, "statsd_bad_lines_total", NULL, NULL) == 0);
	/* Largest datagram there is, one line: bad, and the listener goes on. */
	buf_reset(&b);
	while (b.len < 65507)
		buf_puts(&b, "z");
	statsd_send(&e, b.data, 65507);
	statsd_sends(&e, "still.alive:1|g");
	assert_true(now_value(e.t, "still_alive", NULL, NULL) == 1);
	assert_true(now_value(e.t, "statsd_bad_lines_total", NULL, NULL) == 1);
	buf_free(&b);
	statsd_stop(&e);
}

static void test_statsd_respects_max_series(void **st)
{
	struct statsd_env e;
	struct buf b = BUF_INIT;

	(void)st;
	statsd_start(&e);
	for (int i = 0; i < 10001; i++)
		buf_printf(&b, "s%d:1|g\n", i);
	/* Several packets: a datagram holds at most 64 KiB. */
	for (size_t off = 0; off < b.len;) {
		size_t n = b.len - off > 60000 ? 60000 : b.len - off;
		while (off + n < b.len && b.data[off + n - 1] != '\n')
			n--;
		statsd_send(&e, b.data + off, n);
		off += n;
	}
	assert_true(now_value(e.t, "metrics_series_refused_total", NULL, NULL) == 1);
	assert_true(now_value(e.t, "s9999", NULL, NULL) == 1);
	assert_true(isnan(now_value(e.t, "s10000", NULL, NULL)));
	buf_free(&b);
	statsd_stop(&e);
}

/* ---- the table ---- */

static void test_table_memory_per_series_is_small(void **st)
{
	struct mtab *tab;
	char key[256], name[32];
	const char *labels[] = {"instance", "web-01"};
	int created;
	size_t len, before;

	(void)st;
	assert_int_equal(mtab_new(&tab), 0);
	before = mtab_bytes(tab);
	for (int i = 0; i < 10000; i++) {
		snprintf(name, sizeof(name), "app_requests_%d", i);
		len = mtab_key(key, sizeof(key), name, labels, 1);
		assert_non_null(mtab_get(tab, key, len, MTAB_GAUGE, &created));
		assert_true(created);
	}
	/* About 40 bytes of entry, the key, and a slot of 8 bytes at a load of 3/8 to 3/4. */
	assert_true((mtab_bytes(tab) - before) / 10000 < 120);
	assert_int_equal(mtab_output_count(tab), 10000);
	/* Expiry removes them all and the table stays consistent. */
	mtab_roll(tab, 1);
	assert_int_equal(mtab_output_count(tab), 0);
	len = mtab_key(key, sizeof(key), "app_requests_1", labels, 1);
	assert_null(mtab_find(tab, key, len));
	mtab_free(tab);
}

/* ---- the batch for the hub ---- */

static char *key_of(const char *name, const char *const *labels, size_t n, const char *xk,
                    const char *xv)
{
	char packed[2048];
	size_t len = mtab_key(packed, sizeof(packed), name, labels, n);
	struct buf b = BUF_INIT;

	assert_true(len > 0);
	assert_int_equal(batch_key(&b, packed, len, xk, xv), 0);
	assert_int_equal(batch_key_len(packed, len, xk, xv), b.len);
	return buf_steal(&b);
}

static void test_batch_keys_are_the_prometheus_exposition_form(void **st)
{
	const char *const one[] = {"mode", "user"};
	const char *const unsorted[] = {"z", "1", "b", "2", "m", "3"};
	const char *const nasty[] = {"path", "C:\\dir \"x\"\nnext"};
	char *k;

	(void)st;
	k = key_of("host_load1", NULL, 0, NULL, NULL);
	assert_string_equal(k, "host_load1");
	free(k);
	k = key_of("host_cpu_percent", one, 1, NULL, NULL);
	assert_string_equal(k, "host_cpu_percent{mode=\"user\"}");
	free(k);
	/* Labels sorted by name, whatever order they came in. */
	k = key_of("app_x", unsorted, 3, NULL, NULL);
	assert_string_equal(k, "app_x{b=\"2\",m=\"3\",z=\"1\"}");
	free(k);
	/* A timer's stat label takes its sorted place: first, middle, last, or alone. */
	k = key_of("app_x", unsorted, 3, "a", "p50");
	assert_string_equal(k, "app_x{a=\"p50\",b=\"2\",m=\"3\",z=\"1\"}");
	free(k);
	k = key_of("app_x", unsorted, 3, "stat", "count");
	assert_string_equal(k, "app_x{b=\"2\",m=\"3\",stat=\"count\",z=\"1\"}");
	free(k);
	k = key_of("app_x", unsorted, 3, "zz", "max");
	assert_string_equal(k, "app_x{b=\"2\",m=\"3\",z=\"1\",zz=\"max\"}");
	free(k);
	k = key_of("app_lat", NULL, 0, "stat", "p99");
	assert_string_equal(k, "app_lat{stat=\"p99\"}");
	free(k);
	/* Backslash, double quote and newline escaped as the text format says. */
	k = key_of("host_fs", nasty, 1, NULL, NULL);
	assert_string_equal(k, "host_fs{path=\"C:\\\\dir \\\"x\\\"\\nnext\"}");
	free(k);
}

/* One value as the batch writes it, read back by jansson. */
static json_t *wire_value_of(double v, char *text, size_t n)
{
	struct buf b = BUF_INIT;
	json_t *j;

	assert_int_equal(batch_value(&b, v), 0);
	snprintf(text, n, "%s", b.data);
	j = json_loads(b.data, JSON_DECODE_ANY, NULL);
	assert_non_null(j);
	buf_free(&b);
	return j;
}

static void test_batch_values_are_numbers_or_the_three_strings(void **st)
{
	char text[64];
	json_t *v;

	(void)st;
	v = wire_value_of(NAN, text, sizeof(text));
	assert_string_equal(json_string_value(v), "NaN");
	json_decref(v);
	v = wire_value_of(INFINITY, text, sizeof(text));
	assert_string_equal(json_string_value(v), "+Inf");
	json_decref(v);
	v = wire_value_of(-INFINITY, text, sizeof(text));
	assert_string_equal(json_string_value(v), "-Inf");
	json_decref(v);
	/* Integral values are integers: exact, and shorter than 25165824000.0. */
	v = wire_value_of(25165824000.0, text, sizeof(text));
	assert_true(json_is_integer(v));
	assert_int_equal(json_integer_value(v), 25165824000LL);
	assert_string_equal(text, "25165824000");
	json_decref(v);
	v = wire_value_of(-0.0, text, sizeof(text));
	assert_true(json_is_integer(v) && json_integer_value(v) == 0);
	json_decref(v);
	v = wire_value_of(3.25, text, sizeof(text));
	assert_true(json_is_real(v) && json_real_value(v) == 3.25);
	assert_string_equal(text, "3.25");
	json_decref(v);
	/* Past 2^53 a double is no longer every integer: it stays a real, exactly. */
	v = wire_value_of(1e300, text, sizeof(text));
	assert_true(json_is_real(v) && json_real_value(v) == 1e300);
	json_decref(v);
	v = wire_value_of(9007199254740992.0, text, sizeof(text));
	assert_true(json_is_real(v) && json_real_value(v) == 9007199254740992.0);
	json_decref(v);
	v = wire_value_of(0.1 + 0.2, text, sizeof(text));
	assert_true(json_is_real(v) && json_real_value(v) == 0.1 + 0.2);
	json_decref(v);
}

static void test_batch_leaves_out_keys_the_hub_would_refuse(void **st)
{
	char packed[4096], value[1100];
	const char *labels[] = {"mount", value};
	const char bad_utf8[] = {'/', 'm', 'n', 't', (char)0xff, 0};
	const char *bad[] = {"mount", bad_utf8};
	struct buf out = BUF_INIT, scratch = BUF_INIT;
	json_t *b, *samples;
	size_t len;

	(void)st;
	memset(value, 'v', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	assert_int_equal(batch_begin(&out, 1764094800000LL), 0);
	len = mtab_key(packed, sizeof(packed), "host_fs", labels, 1);
	assert_int_equal(batch_add(&out, &scratch, packed, len, NULL, NULL, 1), 1);
	len = mtab_key(packed, sizeof(packed), "host_fs", bad, 1);
	assert_int_equal(batch_add(&out, &scratch, packed, len, NULL, NULL, 1), 1);
	value[1000] = '\0'; /* host_fs{mount="v...v"} is 1017 bytes: kept */
	len = mtab_key(packed, sizeof(packed), "host_fs", labels, 1);
	assert_int_equal(batch_add(&out, &scratch, packed, len, NULL, NULL, NAN), 0);
	assert_int_equal(batch_end(&out), 0);
	b = json_loadb(out.data, out.len, JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(b);
	assert_int_equal(json_integer_value(json_object_get(b, "t")), 1764094800000LL);
	samples = json_object_get(b, "samples");
	assert_int_equal(json_array_size(samples), 1);
	assert_int_equal(json_string_length(json_array_get(json_array_get(samples, 0), 0)), 1017);
	assert_string_equal(json_string_value(json_array_get(json_array_get(samples, 0), 1)),
	                    "NaN");
	json_decref(b);
	/* An empty batch is still an object with its array. */
	assert_int_equal(batch_begin(&out, 5), 0);
	assert_int_equal(batch_end(&out), 0);
	assert_string_equal(out.data, "{\"t\":5,\"samples\":[]}");
	buf_free(&out);
	buf_free(&scratch);
}

/* Label values may hold any UTF-8 and control characters: the batch is JSON whose keys read
 * back as exactly the exposition form, byte for byte what a jansson tree would have written. */
static void test_batch_text_is_what_jansson_writes(void **st)
{
	const char *nasty[] = {"a", "q\"u\\o\nte\ttab\x01\x1f\x7f \xc3\xa9\xe2\x82\xac/", "b",
	                       "plain"};
	struct buf out = BUF_INIT, scratch = BUF_INIT, key = BUF_INIT;
	char packed[512], *dump;
	json_t *tree, *samples, *back;
	size_t len;

	(void)st;
	len = mtab_key(packed, sizeof(packed), "app_x", nasty, 2);
	assert_int_equal(batch_begin(&out, 42), 0);
	assert_int_equal(batch_add(&out, &scratch, packed, len, NULL, NULL, 1.5), 0);
	assert_int_equal(batch_add(&out, &scratch, packed, len, "stat", "p99", 7), 0);
	assert_int_equal(batch_add(&out, &scratch, "up", 3, NULL, NULL, -INFINITY), 0);
	assert_int_equal(batch_end(&out), 0);

	samples = json_array();
	assert_int_equal(batch_key(&key, packed, len, NULL, NULL), 0);
	json_array_append_new(samples, json_pack("[s#f]", key.data, (int)key.len, 1.5));
	buf_reset(&key);
	assert_int_equal(batch_key(&key, packed, len, "stat", "p99"), 0);
	json_array_append_new(samples, json_pack("[s#I]", key.data, (int)key.len, (json_int_t)7));
	json_array_append_new(samples, json_pack("[ss]", "up", "-Inf"));
	tree = json_pack("{s:I, s:o}", "t", (json_int_t)42, "samples", samples);
	dump = json_dumps(tree, JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_string_equal(out.data, dump);
	back = json_loadb(out.data, out.len, JSON_REJECT_DUPLICATES, NULL);
	assert_true(json_equal(back, tree));
	free(dump);
	json_decref(back);
	json_decref(tree);
	buf_free(&key);
	buf_free(&out);
	buf_free(&scratch);
}

/* The key a series of metrics.now has in a batch. */
static char *now_key(json_t *series)
{
	const char *labels[2 * 17], *k;
	json_t *v;
	size_t n = 0;

	json_object_foreach(json_object_get(series, "labels"), k, v)
	{
		labels[2 * n] = k;
		labels[2 * n + 1] = json_string_value(v);
		n++;
	}
	return key_of(json_string_value(json_object_get(series, "name")), labels, n, NULL, NULL);
}

static void test_each_sample_publishes_one_batch_of_what_now_shows(void **st)
{
	struct statsd_env e;
	json_t *pub, *r, *b, *samples, *s;
	const char *msg;
	int64_t t1, t2;
	size_t i;

	(void)st;
	statsd_start(&e);
	pub = plugtest_published(e.t);
	assert_int_equal(
	    push(e.t,
	         "{\"metrics\": [{\"name\": \"app_jobs_total\", \"type\": \"counter\", "
	         "\"value\": 2, \"labels\": {\"queue\": \"mail\", \"dc\": \"x\\\"y\"}},"
	         " {\"name\": \"app_temp\", \"value\": 41.5}]}",
	         &msg),
	    0);
	statsd_sends(&e, "web.req:12|ms|#route:/a\nweb.req:20|ms|#route:/a\n");
	t1 = wait_tick(e.t, 0);
	assert_int_equal(json_array_size(pub), 1);
	t2 = wait_tick(e.t, t1);
	assert_int_equal(json_array_size(pub), 2);
	b = json_array_get(pub, 1);
	assert_int_equal(json_integer_value(json_object_get(b, "t")), t2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(pub, 0), "t")), t1);
	assert_null(json_object_get(b, "seq")); /* the core adds it */
	samples = json_object_get(b, "samples");

	/* The same series as metrics.now, in the same order, with the same values. */
	r = now(e.t, NULL);
	assert_int_equal(json_array_size(samples), json_array_size(json_object_get(r, "series")));
	json_array_foreach(json_object_get(r, "series"), i, s)
	{
		json_t *pair = json_array_get(samples, i);
		char *key = now_key(s);
		assert_string_equal(json_string_value(json_array_get(pair, 0)), key);
		assert_true(json_number_value(json_array_get(pair, 1)) ==
		            json_number_value(json_object_get(s, "value")));
		free(key);
	}
	json_decref(r);

	/* What each kind looks like on the wire (the timer's interval closed at t1). */
	{
		int seen = 0;
		json_array_foreach(json_object_get(json_array_get(pub, 0), "samples"), i, s)
		{
			const char *k = json_string_value(json_array_get(s, 0));
			json_t *v = json_array_get(s, 1);
			if (strcmp(k, "app_jobs_total{dc=\"x\\\"y\",queue=\"mail\"}") == 0)
				seen |= 1, assert_true(json_integer_value(v) == 2);
			else if (strcmp(k, "app_temp") == 0)
				seen |= 2, assert_true(json_real_value(v) == 41.5);
			else if (strcmp(k, "web_req{route=\"/a\",stat=\"max\"}") == 0)
				seen |= 4, assert_true(json_integer_value(v) == 20);
			else if (strcmp(k, "statsd_packets_total") == 0)
				seen |= 8, assert_true(json_integer_value(v) == 1);
			else if (strncmp(k, "host_memory_bytes{kind=\"total\"}", 31) == 0)
				seen |= 16, assert_true(json_integer_value(v) > 0);
		}
		assert_int_equal(seen, 31);
	}
	statsd_stop(&e);
}

static void test_push_and_statsd_refuse_a_host_label(void **st)
{
	struct statsd_env e;
	const char *msg;
	char args[2048], value[256];

	(void)st;
	statsd_start(&e);
	assert_int_equal(push(e.t,
	                      "{\"metrics\": [{\"name\": \"app_ok\", \"value\": 1}, {\"name\": "
	                      "\"app_x\", \"value\": 1, \"labels\": {\"host\": \"web-01\"}}]}",
	                      &msg),
	                 OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "metrics[1] (app_x): the label 'host' is reserved"));
	assert_true(isnan(now_value(e.t, "app_ok", NULL, NULL)));
	/* A series too long for the hub (over 1024 bytes as name{...}) is refused too. */
	memset(value, 'v', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	snprintf(args, sizeof(args),
	         "{\"metrics\": [{\"name\": \"app_x\", \"value\": 1, \"labels\": {\"a\": \"%s\", "
	         "\"b\": \"%s\", \"c\": \"%s\", \"d\": \"%s\"}}]}",
	         value, value, value, value);
	assert_int_equal(push(e.t, args, &msg), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "at most 1024"));
	/* StatsD: a host tag, and a timer tagged stat (its summaries' label), are bad lines. */
	statsd_sends(&e, "app.a:1|g|#host:web-01\napp.b:1|ms|#stat:x\napp.c:1|g|#stat:x\n");
	assert_true(now_value(e.t, "statsd_bad_lines_total", NULL, NULL) == 2);
	assert_true(isnan(now_value(e.t, "app_a", NULL, NULL)));
	assert_true(now_value(e.t, "app_c", "stat", "x") == 1);
	statsd_stop(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timer_samples_host_series_on_the_grid),
	    cmocka_unit_test(test_now_filters_by_name_prefix),
	    cmocka_unit_test(test_push_counter_adds_gauge_replaces),
	    cmocka_unit_test(test_push_rejects_each_bad_item_and_applies_nothing),
	    cmocka_unit_test(test_push_over_max_series_is_too_large_and_counted),
	    cmocka_unit_test(test_init_refuses_bad_config),
	    cmocka_unit_test(test_statsd_counters_with_sample_rates),
	    cmocka_unit_test(test_statsd_gauges_with_deltas),
	    cmocka_unit_test(test_statsd_timers_and_sets_are_summarized_per_interval),
	    cmocka_unit_test(test_statsd_bad_lines_are_counted_and_skipped),
	    cmocka_unit_test(test_statsd_huge_packets),
	    cmocka_unit_test(test_statsd_respects_max_series),
	    cmocka_unit_test(test_table_memory_per_series_is_small),
	    cmocka_unit_test(test_batch_keys_are_the_prometheus_exposition_form),
	    cmocka_unit_test(test_batch_values_are_numbers_or_the_three_strings),
	    cmocka_unit_test(test_batch_leaves_out_keys_the_hub_would_refuse),
	    cmocka_unit_test(test_batch_text_is_what_jansson_writes),
	    cmocka_unit_test(test_each_sample_publishes_one_batch_of_what_now_shows),
	    cmocka_unit_test(test_push_and_statsd_refuse_a_host_label),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
