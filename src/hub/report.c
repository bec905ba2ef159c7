/* The fleet report: its data from the registry, the events, the time-series store and the
 * tasks (report_build), drawn as one HTML page with every text a host said escaped
 * (report_html), served, and mailed on a schedule kept in the store (record "report"
 * "schedule"), so a restart neither skips nor repeats a mailing. docs/reports.md. */
#include "hub_impl.h"
#include "report.h"
#include "audit.h"
#include "mail.h"
#include "tsdb.h"
#include "zk.h"
#include "core/buf.h"
#include "core/clk.h"
#include "core/conf.h"
#include "core/err.h"
#include "core/wire.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPORT_TOP 10
#define REPORT_MAX_ROWS 200  /* rows of a list (hosts down, changes, failures) */
#define REPORT_FILL_DAYS 7.0 /* file systems that fill within this are listed */

static const char *str_of(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* ---- data ---- */

/* The value of label name of a series, or NULL. */
static const char *series_label(const struct tsdb_series *s, const char *name)
{
	for (size_t i = 0; i < s->nlabels; i++)
		if (strcmp(s->labels[2 * i], name) == 0)
			return s->labels[2 * i + 1];
	return NULL;
}

struct walk {
	struct hub *h;
	int64_t from, now;
	json_t *cpu, *mem_used, *mem_total, *disk, *fill; /* objects by host, fill an array */
};

static int walk_cpu(void *arg, const struct tsdb_series *s)
{
	struct walk *w = arg;
	const char *mode = series_label(s, "mode");

	if (mode && strcmp(mode, "idle") == 0 && s->last_ms >= w->from)
		json_object_set_new(w->cpu, s->host, json_real(100.0 - s->last_value));
	return 0;
}

static int walk_mem(void *arg, const struct tsdb_series *s)
{
	struct walk *w = arg;
	const char *kind = series_label(s, "kind");

	if (!kind || s->last_ms < w->from)
		return 0;
	if (strcmp(kind, "used") == 0)
		json_object_set_new(w->mem_used, s->host, json_real(s->last_value));
	else if (strcmp(kind, "total") == 0)
		json_object_set_new(w->mem_total, s->host, json_real(s->last_value));
	return 0;
}

static int walk_disk(void *arg, const struct tsdb_series *s)
{
	struct walk *w = arg;
	const char *mount = series_label(s, "mount");
	json_t *cur = json_object_get(w->disk, s->host);

	if (s->last_ms < w->from)
		return 0;
	if (!cur || json_real_value(json_object_get(cur, "value")) < s->last_value)
		json_object_set_new(w->disk, s->host,
		                    json_pack("{s:s, s:s, s:f}", "host", s->host, "mount",
		                              mount ? mount : "", "value", s->last_value));
	return 0;
}

/* A file system's free space over the window: at its rate of the window (first to last
 * point), when does it reach 0? Listed when within REPORT_FILL_DAYS. */
static int walk_fill(void *arg, const struct tsdb_series *s)
{
	struct walk *w = arg;
	struct tsdb_point *pts = NULL;
	size_t n = 0;
	double slope, days;

	if (s->last_ms < w->from ||
	    tsdb_read(w->h->tsdb, s->id, TSDB_RAW, w->from, w->now + 1, &pts, &n) < 0 || n < 2)
		goto out;
	if (pts[n - 1].t <= pts[0].t)
		goto out;
	/* bytes a day: raw points carry one sample (sum = value) */
	slope = (pts[n - 1].sum - pts[0].sum) / (double)(pts[n - 1].t - pts[0].t) * 86400000.0;
	if (!(slope < 0))
		goto out;
	days = pts[n - 1].sum / -slope;
	if (days < REPORT_FILL_DAYS)
		json_array_append_new(
		    w->fill, json_pack("{s:s, s:s, s:f, s:f, s:f}", "host", s->host, "mount",
		                       series_label(s, "mount") ? series_label(s, "mount") : "",
		                       "available_bytes", pts[n - 1].sum, "bytes_per_day", slope,
		                       "days_left", days));
out:
	free(pts);
	return 0;
}

static int by_value_desc(const void *a, const void *b)
{
	double x = json_real_value(json_object_get(*(json_t *const *)a, "value"));
	double y = json_real_value(json_object_get(*(json_t *const *)b, "value"));
	return x < y ? 1 : x > y ? -1 : 0;
}

static int by_days(const void *a, const void *b)
{
	double x = json_real_value(json_object_get(*(json_t *const *)a, "days_left"));
	double y = json_real_value(json_object_get(*(json_t *const *)b, "days_left"));
	return x < y ? -1 : x > y ? 1 : 0;
}

/* The rows of arr sorted by cmp, the first max kept; hostname and labels added from hosts. */
static json_t *top_of(json_t *arr, int (*cmp)(const void *, const void *), size_t max,
                      const json_t *hosts)
{
	size_t n = json_array_size(arr), i;
	json_t **v = n ? calloc(n, sizeof(*v)) : NULL, *out = json_array();

	for (i = 0; v && i < n; i++)
		v[i] = json_array_get(arr, i);
	if (v)
		qsort(v, n, sizeof(*v), cmp);
	for (i = 0; v && out && i < n && i < max; i++) {
		const json_t *hrow = json_object_get(hosts, str_of(v[i], "host"));
		json_t *row = json_deep_copy(v[i]);
		json_object_set(row, "hostname", json_object_get(hrow, "hostname"));
		json_object_set(row, "labels", json_object_get(hrow, "labels"));
		json_array_append_new(out, row);
	}
	free(v);
	json_decref(arr);
	return out;
}

/* {host: value} as [{host, value}]. */
static json_t *rows_of(json_t *obj)
{
	json_t *arr = json_array(), *v;
	const char *k;

	json_object_foreach(obj, k, v) json_array_append_new(
	    arr, json_pack("{s:s, s:f}", "host", k, "value", json_real_value(v)));
	return arr;
}

static void report_metrics(struct hub *h, json_t *rep, int64_t from, int64_t now,
                           const json_t *hosts)
{
	struct walk w = {
	    h, from, now, json_object(), json_object(), json_object(), json_object(), json_array()};
	json_t *mem = json_array(), *v, *disk = json_array();
	const char *k;
	int64_t raw_keep = tsdb_keep_ms(h->tsdb, TSDB_RAW);

	if (raw_keep > 0 && now - w.from > raw_keep)
		w.from = now - raw_keep;
	tsdb_series_each(h->tsdb, "host_cpu_percent", walk_cpu, &w);
	tsdb_series_each(h->tsdb, "host_memory_bytes", walk_mem, &w);
	tsdb_series_each(h->tsdb, "host_filesystem_used_percent", walk_disk, &w);
	tsdb_series_each(h->tsdb, "host_filesystem_available_bytes", walk_fill, &w);
	json_object_foreach(w.mem_used, k, v)
	{
		double total = json_real_value(json_object_get(w.mem_total, k));
		if (total > 0)
			json_array_append_new(mem, json_pack("{s:s, s:f}", "host", k, "value",
			                                     100.0 * json_real_value(v) / total));
	}
	json_object_foreach(w.disk, k, v) json_array_append(disk, v);
	json_object_set_new(rep, "top_cpu",
	                    top_of(rows_of(w.cpu), by_value_desc, REPORT_TOP, hosts));
	json_object_set_new(rep, "top_memory", top_of(mem, by_value_desc, REPORT_TOP, hosts));
	json_object_set_new(rep, "top_disk", top_of(disk, by_value_desc, REPORT_TOP, hosts));
	json_object_set_new(rep, "filling", top_of(w.fill, by_days, REPORT_MAX_ROWS, hosts));
	json_decref(w.cpu);
	json_decref(w.mem_used);
	json_decref(w.mem_total);
	json_decref(w.disk);
}

static void report_hosts(struct hub *h, json_t *rep, int64_t from, json_t **by_id)
{
	json_t *hosts = NULL, *events = NULL, *row, *states = json_object(),
	       *versions = json_object();
	json_t *notup = json_array(), *changes = json_array(), *vlist = json_array(), *v;
	const char *k;
	size_t i;

	*by_id = json_object();
	if (h->store->ops->host_list(h->store, &hosts) == 0)
		json_array_foreach(hosts, i, row)
		{
			const char *st = str_of(row, "state"), *ver = str_of(row, "version");
			json_object_set(*by_id, str_of(row, "id"), row);
			json_object_set_new(
			    states, st,
			    json_integer(json_integer_value(json_object_get(states, st)) + 1));
			if (strcmp(st, HOST_UP) != 0 && strcmp(st, HOST_REVOKED) != 0 &&
			    strcmp(st, HOST_REJECTED) != 0 &&
			    json_array_size(notup) < REPORT_MAX_ROWS)
				json_array_append_new(
				    notup, json_pack("{s:O, s:O, s:O, s:O, s:O}", "id",
				                     json_object_get(row, "id"), "hostname",
				                     json_object_get(row, "hostname"), "state",
				                     json_object_get(row, "state"), "labels",
				                     json_object_get(row, "labels"), "last_seen_ms",
				                     json_object_get(row, "last_seen_ms")));
			if (strcmp(st, HOST_UP) == 0 || strcmp(st, HOST_DOWN) == 0) {
				ver = ver ? ver : "unknown";
				json_object_set_new(
				    versions, ver,
				    json_integer(
				        json_integer_value(json_object_get(versions, ver)) + 1));
			}
		}
	json_object_foreach(versions, k, v)
	    json_array_append_new(vlist, json_pack("{s:s, s:O}", "version", k, "hosts", v));
	{
		/* the hubs' own (enrolled, up, down, ...) and what hosts' plugins reported */
		struct store_events_query q = {.since_ms = from, .limit = REPORT_MAX_ROWS};
		if (h->store->ops->events_list(h->store, &q, &events) == 0)
			json_array_foreach(events, i, row) json_array_append(changes, row);
	}
	json_object_set_new(rep, "hosts",
	                    json_pack("{s:I, s:o}", "total", (json_int_t)json_array_size(hosts),
	                              "by_state", states));
	json_object_set_new(rep, "not_up", notup);
	json_object_set_new(rep, "changes", changes);
	json_object_set_new(rep, "versions", vlist);
	json_decref(versions);
	json_decref(hosts);
	json_decref(events);
}

static void report_tasks(struct hub *h, json_t *rep, int64_t from)
{
	static const char *const bad[] = {"failed", "timeout", "lost", "refused", "expired"};
	json_t *tasks = NULL, *t, *failures = json_array();
	int64_t run = 0, failed = 0;
	size_t i;

	if (h->store->ops->task_list(h->store, 10000, &tasks) == 0)
		json_array_foreach(tasks, i, t)
		{
			json_t *counts = json_object_get(t, "counts");
			int64_t nbad = 0;
			if (json_integer_value(json_object_get(t, "created_ms")) < from)
				continue;
			run++;
			for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++)
				nbad += json_integer_value(json_object_get(counts, bad[j]));
			if (!nbad)
				continue;
			failed++;
			if (json_array_size(failures) < REPORT_MAX_ROWS)
				json_array_append_new(
				    failures, json_pack("{s:O, s:O, s:O, s:O, s:I, s:O, s:O}", "id",
				                        json_object_get(t, "id"), "plugin",
				                        json_object_get(t, "plugin"), "op",
				                        json_object_get(t, "op"), "target",
				                        json_object_get(t, "target"),
				                        "hosts_failed", (json_int_t)nbad, "hosts",
				                        json_object_get(t, "total"), "created_by",
				                        json_object_get(t, "created_by")));
		}
	json_decref(tasks);
	json_object_set_new(rep, "tasks",
	                    json_pack("{s:I, s:I, s:o}", "run", (json_int_t)run, "with_failures",
	                              (json_int_t)failed, "failures", failures));
}

/* The alerts that fired in the window (the rules' history, rules.c): how many, and the latest
 * REPORT_MAX_ROWS of them. */
static void report_alerts(struct hub *h, json_t *rep, int64_t from)
{
	json_t *log = NULL, *fired = json_array(), *e;
	json_int_t n = 0;
	size_t i;

	if (h->store->ops->alert_log_list(h->store, NULL, 5000, &log) == 0)
		json_array_foreach(log, i, e)
		{
			if (json_integer_value(json_object_get(e, "at_ms")) < from)
				break; /* newest first */
			if (strcmp(str_of(e, "kind"), "firing") != 0)
				continue;
			if (n++ < REPORT_MAX_ROWS)
				json_array_append_new(
				    fired, json_pack("{s:O, s:O?, s:O}", "rule",
				                     json_object_get(e, "rule_id"), "host",
				                     json_object_get(e, "host_id"), "at_ms",
				                     json_object_get(e, "at_ms")));
		}
	json_decref(log);
	json_object_set_new(rep, "alerts", json_pack("{s:o, s:I}", "fired", fired, "count", n));
}

int report_build(struct hub *h, int hours, json_t **out)
{
	int64_t now = clk_real_ms(), from = now - (int64_t)hours * 3600000;
	json_t *rep =
	    json_pack("{s:I, s:I, s:i, s:s}", "generated_ms", (json_int_t)now, "from_ms",
	              (json_int_t)from, "window_hours", hours, "hub_version", OUTPOST_VERSION);
	json_t *hosts = NULL;

	*out = NULL;
	if (!rep)
		return OUTPOST_E_INTERNAL;
	report_hosts(h, rep, from, &hosts);
	report_metrics(h, rep, from, now, hosts);
	report_alerts(h, rep, from);
	report_tasks(h, rep, from);
	json_decref(hosts);
	*out = rep;
	return 0;
}

/* ---- HTML ---- */

static void esc(struct buf *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<':
			buf_puts(b, "&lt;");
			break;
		case '>':
			buf_puts(b, "&gt;");
			break;
		case '&':
			buf_puts(b, "&amp;");
			break;
		case '"':
			buf_puts(b, "&quot;");
			break;
		case '\'':
			buf_puts(b, "&#39;");
			break;
		default:
			buf_append(b, s, 1);
		}
	}
}

/* A value as escaped text: strings as they are, numbers short, objects key=value. */
static void esc_value(struct buf *b, const json_t *v)
{
	const char *k;
	json_t *x;
	int first = 1;

	if (json_is_string(v))
		esc(b, json_string_value(v));
	else if (json_is_integer(v))
		buf_printf(b, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		buf_printf(b, "%.1f", json_real_value(v));
	else if (json_is_object(v))
		json_object_foreach((json_t *)v, k, x)
		{
			if (!first)
				buf_puts(b, ", ");
			first = 0;
			esc(b, k);
			buf_puts(b, "=");
			esc_value(b, x);
		}
}

static void html_time(struct buf *b, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char s[40];

	if (ms <= 0) {
		buf_puts(b, "-");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), "%Y-%m-%d %H:%M:%S UTC", &tm);
	buf_puts(b, s);
}

/* A table of rows (objects) with the columns (keys) and their titles. */
static void html_table(struct buf *b, const json_t *rows, const char *const *keys,
                       const char *const *titles, size_t n, const char *empty)
{
	const json_t *row;
	size_t i;

	if (json_array_size(rows) == 0) {
		buf_printf(b, "<p class=\"none\">%s</p>\n", empty);
		return;
	}
	buf_puts(b, "<table><tr>");
	for (size_t c = 0; c < n; c++)
		buf_printf(b, "<th>%s</th>", titles[c]);
	buf_puts(b, "</tr>\n");
	json_array_foreach(rows, i, row)
	{
		buf_puts(b, "<tr>");
		for (size_t c = 0; c < n; c++) {
			buf_puts(b, "<td>");
			if (strstr(keys[c], "_ms"))
				html_time(b, json_integer_value(json_object_get(row, keys[c])));
			else
				esc_value(b, json_object_get(row, keys[c]));
			buf_puts(b, "</td>");
		}
		buf_puts(b, "</tr>\n");
	}
	buf_puts(b, "</table>\n");
}

int report_html(const json_t *rep, struct buf *b)
{
	const json_t *hosts = json_object_get(rep, "hosts"), *tasks = json_object_get(rep, "tasks");
	static const char *const notup_k[] = {"id", "hostname", "state", "labels", "last_seen_ms"};
	static const char *const notup_t[] = {"host", "hostname", "state", "labels", "last seen"};
	static const char *const chg_k[] = {"at_ms", "host_id", "kind", "detail"};
	static const char *const chg_t[] = {"when", "host", "change", "detail"};
	static const char *const ver_k[] = {"version", "hosts"};
	static const char *const top_k[] = {"host", "hostname", "labels", "value"};
	static const char *const top_t[] = {"host", "hostname", "labels", "%"};
	static const char *const disk_k[] = {"host", "hostname", "mount", "value"};
	static const char *const disk_t[] = {"host", "hostname", "mount", "used %"};
	static const char *const fill_k[] = {"host", "hostname", "mount", "available_bytes",
	                                     "days_left"};
	static const char *const fill_t[] = {"host", "hostname", "mount", "available bytes",
	                                     "days left"};
	static const char *const alert_k[] = {"rule", "host", "at_ms"};
	static const char *const alert_t[] = {"rule", "host", "fired"};
	static const char *const task_k[] = {"id",           "plugin", "op",        "target",
	                                     "hosts_failed", "hosts",  "created_by"};
	static const char *const task_t[] = {"task",         "plugin", "op", "target",
	                                     "hosts failed", "hosts",  "by"};
	const char *k;
	json_t *v;

	buf_puts(b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
	            "<title>Outpost fleet report</title><style>"
	            "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
	            "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
	            ".none{color:#666}</style></head><body>\n<h1>Outpost fleet report</h1>\n<p>");
	html_time(b, json_integer_value(json_object_get(rep, "from_ms")));
	buf_puts(b, " to ");
	html_time(b, json_integer_value(json_object_get(rep, "generated_ms")));
	buf_printf(b, " (%lld hours)</p>\n<h2>Hosts</h2>\n<p>%lld hosts:",
	           (long long)json_integer_value(json_object_get(rep, "window_hours")),
	           (long long)json_integer_value(json_object_get(hosts, "total")));
	json_object_foreach(json_object_get(hosts, "by_state"), k, v)
	{
		buf_printf(b, " %lld ", (long long)json_integer_value(v));
		esc(b, k);
	}
	buf_puts(b, "</p>\n<h3>Not up</h3>\n");
	html_table(b, json_object_get(rep, "not_up"), notup_k, notup_t, 5, "Every host is up.");
	buf_puts(b, "<h3>What changed</h3>\n");
	html_table(b, json_object_get(rep, "changes"), chg_k, chg_t, 4, "No change.");
	buf_puts(b, "<h2>Agent versions</h2>\n");
	html_table(b, json_object_get(rep, "versions"), ver_k, ver_k, 2, "No host.");
	buf_puts(b, "<h2>Top hosts by CPU</h2>\n");
	html_table(b, json_object_get(rep, "top_cpu"), top_k, top_t, 4, "No CPU metrics.");
	buf_puts(b, "<h2>Top hosts by memory</h2>\n");
	html_table(b, json_object_get(rep, "top_memory"), top_k, top_t, 4, "No memory metrics.");
	buf_puts(b, "<h2>Top hosts by disk</h2>\n");
	html_table(b, json_object_get(rep, "top_disk"), disk_k, disk_t, 4, "No disk metrics.");
	buf_puts(b, "<h2>File systems that fill within 7 days</h2>\n");
	html_table(b, json_object_get(rep, "filling"), fill_k, fill_t, 5,
	           "None at their current rate.");
	buf_printf(b, "<h2>Alerts fired</h2>\n<p>%lld alerts fired.</p>\n",
	           (long long)json_integer_value(
	               json_object_get(json_object_get(rep, "alerts"), "count")));
	html_table(b, json_object_get(json_object_get(rep, "alerts"), "fired"), alert_k, alert_t, 3,
	           "No alert.");
	buf_printf(b, "<h2>Tasks</h2>\n<p>%lld tasks run, %lld with failures.</p>\n",
	           (long long)json_integer_value(json_object_get(tasks, "run")),
	           (long long)json_integer_value(json_object_get(tasks, "with_failures")));
	html_table(b, json_object_get(tasks, "failures"), task_k, task_t, 7, "No failure.");
	return buf_puts(b, "</body></html>\n");
}

/* ---- routes, mail, schedule ---- */

static int report_hours(struct hub *h)
{
	return (int)h->conf->report.window_hours;
}

/* GET /api/v1/report?hours=N&format=html|json */
void report_api_get(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	static const char *const known[] = {"hours", "format", NULL};
	const char *hs = httpd_req_query(req, "hours"), *fmt = httpd_req_query(req, "format");
	const char *unknown = httpd_req_query_unknown(req, known);
	char *end = NULL;
	long hours = hs ? strtol(hs, &end, 10) : report_hours(h);
	struct buf b = BUF_INIT;
	json_t *rep = NULL;

	if (unknown) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS,
		                    "unknown parameter '%.64s' (hours, format)", unknown);
		return;
	}
	if ((hs && (end == hs || *end)) || hours < 1 || hours > 24 * 31) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "hours: 1 to 744");
		return;
	}
	if (fmt && strcmp(fmt, "html") && strcmp(fmt, "json")) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "format: html or json");
		return;
	}
	if (report_build(h, (int)hours, &rep) < 0) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "cannot build the report");
		return;
	}
	if (fmt && strcmp(fmt, "json") == 0) {
		httpd_respond_ok(req, rep);
		return;
	}
	if (report_html(rep, &b) < 0 || !b.data)
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
	else
		httpd_respond_text(req, 200, "text/html; charset=utf-8", b.data, b.len);
	buf_free(&b);
	json_decref(rep);
}

int report_mail(struct hub *h, const char *id, const char *origin, char *msg, size_t msglen)
{
	const struct conf_strv *to = &h->conf->report.mail_to;
	json_t *rep = NULL;
	struct buf html = BUF_INIT;
	char subject[200], text[600];
	int rc;

	if (to->n == 0) {
		snprintf(msg, msglen, "report.mail_to names no address");
		return OUTPOST_E_BAD_ARGS;
	}
	if ((rc = report_build(h, report_hours(h), &rep)) < 0 ||
	    (rc = report_html(rep, &html)) < 0) {
		snprintf(msg, msglen, "cannot build the report");
		goto out;
	}
	{
		const json_t *st = json_object_get(json_object_get(rep, "hosts"), "by_state");
		const json_t *tk = json_object_get(rep, "tasks");
		snprintf(subject, sizeof(subject), "Outpost fleet report: %lld up, %lld down",
		         (long long)json_integer_value(json_object_get(st, "up")),
		         (long long)json_integer_value(json_object_get(st, "down")));
		snprintf(
		    text, sizeof(text),
		    "Outpost fleet report, the last %d hours.\n\n%lld hosts up, %lld down, "
		    "%lld pending.\n%lld tasks run, %lld with failures.\n%zu file systems fill "
		    "within 7 days.\n\nThe whole report is attached (report.html).\n",
		    report_hours(h), (long long)json_integer_value(json_object_get(st, "up")),
		    (long long)json_integer_value(json_object_get(st, "down")),
		    (long long)json_integer_value(json_object_get(st, "pending")),
		    (long long)json_integer_value(json_object_get(tk, "run")),
		    (long long)json_integer_value(json_object_get(tk, "with_failures")),
		    json_array_size(json_object_get(rep, "filling")));
	}
	{
		struct mail_msg m = {.id = id,
		                     .to = to->v,
		                     .nto = to->n,
		                     .subject = subject,
		                     .text = text,
		                     .attach_name = "report.html",
		                     .attach_type = "text/html",
		                     .attach_data = html.data,
		                     .attach_len = html.len,
		                     .origin = origin};
		rc = mail_queue(h, &m, msg, msglen);
	}
out:
	buf_free(&html);
	json_decref(rep);
	return rc;
}

/* POST /api/v1/report/mail {"id"}: the report now, to report.mail_to. */
static const struct outpost_arg mail_fields[] = {
    {"id", OUTPOST_ARG_STRING, 0, "the caller's id: a repeat queues nothing more"},
    {NULL, 0, 0, NULL},
};

void report_api_mail(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	json_t *body = NULL, *to;
	char msg[300], idbuf[80];
	const char *id;
	int rc;

	if (httpd_req_fields(req, mail_fields, &body) < 0)
		return;
	id = str_of(body, "id");
	if (id && (!wire_id_ok(id) || strlen(id) > 60)) {
		httpd_respond_error(req, OUTPOST_E_BAD_ARGS, "id: 1 to 60 of A-Z a-z 0-9 . _ : -");
		goto out;
	}
	if (id)
		snprintf(idbuf, sizeof(idbuf), "rp-%s", id);
	rc = report_mail(h, id ? idbuf : NULL, audit_caller(req), msg, sizeof(msg));
	if (rc < 0) {
		httpd_respond_error(req, rc, "%s", msg);
		goto out;
	}
	audit_record(h, req, "report.mail", NULL, NULL);
	to = json_array();
	for (size_t i = 0; i < h->conf->report.mail_to.n; i++)
		json_array_append_new(to, json_string(h->conf->report.mail_to.v[i]));
	httpd_respond_ok(req, json_pack("{s:b, s:o}", "queued", 1, "to", to));
out:
	json_decref(body);
}

void report_tick(struct hub *h)
{
	int64_t now = clk_real_ms(), every = h->conf->report.every_s * 1000;
	json_t *sched = NULL;
	char msg[300], id[64];
	int64_t next;
	int rc;

	if (h->conf->report.mail_to.n == 0 || !mail_configured(h) || !zk_leads(h->zk))
		return;
	rc = h->store->ops->rec_get(h->store, "report", "schedule", &sched);
	if (rc == OUTPOST_E_NOT_FOUND) { /* the first start with a schedule: a period from now */
		sched =
		    json_pack("{s:s, s:I}", "id", "schedule", "next_ms", (json_int_t)(now + every));
		h->store->ops->rec_put(h->store, "report", "schedule", sched, 0, now, 0);
		json_decref(sched);
		return;
	}
	if (rc < 0)
		return;
	next = json_integer_value(json_object_get(sched, "next_ms"));
	/* A shorter period configured since: it counts from now. */
	if (next > now + every)
		next = now + every;
	if (next > now) {
		json_decref(sched);
		return;
	}
	/* The mail's id is the slot's, so a restart between queueing and recording the next
	 * slot queues it once. */
	snprintf(id, sizeof(id), "report-%lld", (long long)next);
	if (report_mail(h, id, "report.schedule", msg, sizeof(msg)) < 0)
		log_warn(h->log, "report", "scheduled report not queued: %s", msg);
	json_object_set_new(sched, "next_ms", json_integer(now + every));
	json_object_set_new(sched, "last_ms", json_integer(now));
	h->store->ops->rec_put(h->store, "report", "schedule", sched, 0, now, 0);
	json_decref(sched);
}
