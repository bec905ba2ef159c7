/* The agent's local API. Every route is one row of api_routes: method, path, handler, role,
 * body limit. Who may call what (the roles) is api_auth.c's. */
#include "agent_impl.h"
#include "hubtask.h"
#include "link.h"
#include "core/prom.h"
#include "core/buf.h"
#include "core/clk.h"
#include "core/conf.h"
#include "core/err.h"
#include "core/httpd.h"
#include "core/wire.h"

#include <malloc.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void api_on_done(void *arg, json_t *envelope, int replay)
{
	struct httpd_req *req = arg;
	json_t *err = json_object_get(envelope, "error");
	unsigned status = 200;

	if (err)
		status =
		    err_http_status(err_from_name(json_string_value(json_object_get(err, "code"))));
	if (replay)
		json_object_set_new(envelope, "replay", json_true());
	httpd_respond_json(req, status, envelope);
}

int api_body_check(const json_t *body, char *msg, size_t msglen)
{
	const char *key;
	json_t *v, *args, *id, *to;

	if (!json_is_object(body)) {
		snprintf(msg, msglen, "body must be a JSON object {\"args\": {...}}");
		return OUTPOST_E_BAD_JSON;
	}
	json_object_foreach((json_t *)body, key, v)
	{
		if (strcmp(key, "args") && strcmp(key, "id") && strcmp(key, "timeout_ms")) {
			snprintf(msg, msglen,
			         "unknown field '%.64s': the body has args, id and timeout_ms",
			         key);
			return OUTPOST_E_BAD_ARGS;
		}
	}
	args = json_object_get(body, "args");
	id = json_object_get(body, "id");
	to = json_object_get(body, "timeout_ms");
	if (args && !json_is_object(args)) {
		snprintf(msg, msglen, "args must be an object");
		return OUTPOST_E_BAD_ARGS;
	}
	if (id && !json_is_string(id)) {
		snprintf(msg, msglen, "id must be a string");
		return OUTPOST_E_BAD_ARGS;
	}
	if (to && (!json_is_integer(to) || json_integer_value(to) < 1)) {
		snprintf(msg, msglen, "timeout_ms must be a positive integer");
		return OUTPOST_E_BAD_ARGS;
	}
	return 0;
}

/* POST /v1/<plugin>/<op> with {"args": {...}, "id": "...", "timeout_ms": N}. */
static void api_call(void *ctx, struct httpd_req *req)
{
	struct agent *a = ctx;
	const char *tail = httpd_req_tail(req), *slash = strchr(tail, '/');
	char plugin[WIRE_NAME_MAX + 1], op[WIRE_NAME_MAX + 1], msg[256];
	json_t *body = NULL, *args, *id, *to;
	size_t len;
	int rc;

	if (!slash || !wire_name_okn(tail, (size_t)(slash - tail)) ||
	    !wire_name_okn(slash + 1, strlen(slash + 1))) {
		httpd_respond_error(
		    req, OUTPOST_E_NOT_FOUND,
		    "call path must be /v1/<plugin>/<op> (names of 1 to 32 lowercase "
		    "letters, digits and _, starting with a letter)");
		return;
	}
	memcpy(plugin, tail, (size_t)(slash - tail));
	plugin[slash - tail] = '\0';
	snprintf(op, sizeof(op), "%s", slash + 1);
	httpd_req_body(req, &len);
	if (len == 0)
		body = json_object();
	else if (httpd_req_json(req, &body) < 0)
		return;
	if ((rc = api_body_check(body, msg, sizeof(msg))) < 0) {
		httpd_respond_error(req, rc, "%s", msg);
		goto out;
	}
	args = json_object_get(body, "args");
	id = json_object_get(body, "id");
	to = json_object_get(body, "timeout_ms");
	if (!args)
		json_object_set_new(body, "args", json_object());
	if (dispatch_submit(a->dispatch, plugin, op, json_object_get(body, "args"),
	                    json_string_value(id), to ? json_integer_value(to) : 0, 0, api_on_done,
	                    req) < 0)
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
out:
	json_decref(body);
}

static void api_plugins(void *ctx, struct httpd_req *req)
{
	struct agent *a = ctx;
	httpd_respond_ok(req, plugins_describe(a->plugins));
}

static void api_health(void *ctx, struct httpd_req *req)
{
	struct agent *a = ctx;
	httpd_respond_ok(
	    req, json_pack("{s:s, s:I, s:b, s:o?}", "version", OUTPOST_VERSION, "uptime_s",
	                   (json_int_t)((clk_real_ms() - a->started_ms) / 1000), "stopping",
	                   a->stopping, "hub", a->link ? a->link->ops->status(a->link) : NULL));
}

static long api_rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * sysconf(_SC_PAGESIZE);
}

/* Where the process's heap goes, for the footprint bench and for operators: SQLite's share (page
 * caches, schemas, statements: what PRAGMA cache_size bounds) and malloc's totals over every
 * arena (glibc's: a sanitizer's allocator reports 0). Both are per process: agents sharing one
 * (outpost-sim) each show the same figures. */
static void api_metrics_heap(struct agent *a, struct buf *b)
{
	sqlite3_int64 sq = 0, sq_hi = 0;
	int cache = 0, cache_hi = 0;
	struct mallinfo2 mi = mallinfo2();

	sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &sq, &sq_hi, 0);
	if (a->db)
		sqlite3_db_status(a->db, SQLITE_DBSTATUS_CACHE_USED, &cache, &cache_hi, 0);
	buf_printf(b,
	           "# HELP outpost_agent_sqlite_memory_bytes Heap held by SQLite in this process "
	           "(page caches, schemas, statements).\n"
	           "# TYPE outpost_agent_sqlite_memory_bytes gauge\n"
	           "outpost_agent_sqlite_memory_bytes %lld\n"
	           "# HELP outpost_agent_sqlite_cache_bytes Page cache of the agent's database "
	           "(at most PRAGMA cache_size).\n"
	           "# TYPE outpost_agent_sqlite_cache_bytes gauge\n"
	           "outpost_agent_sqlite_cache_bytes %d\n"
	           "# HELP outpost_agent_heap_bytes malloc in this process, all arenas: in use, "
	           "free but kept, and mmapped blocks.\n"
	           "# TYPE outpost_agent_heap_bytes gauge\n"
	           "outpost_agent_heap_bytes{kind=\"in_use\"} %zu\n"
	           "outpost_agent_heap_bytes{kind=\"free\"} %zu\n"
	           "outpost_agent_heap_bytes{kind=\"mmapped\"} %zu\n",
	           (long long)sq, cache, mi.uordblks, mi.fordblks, mi.hblkhd);
}

/* What faults did to the link: a full disk, a skewed clock, samples the hub had newer ones for
 * (docs/agent-link.md). */
static void api_metrics_link_faults(json_t *st, struct buf *b)
{
	json_t *mem = json_object_get(st, "memory");

	buf_printf(b,
	           "# HELP outpost_agent_disk_full 1 while the agent's database refuses writes: "
	           "results and batches wait in memory.\n"
	           "# TYPE outpost_agent_disk_full gauge\n"
	           "outpost_agent_disk_full %d\n"
	           "# HELP outpost_agent_hub_memory_held Results and batches held in memory for "
	           "the hub while the disk refuses them.\n"
	           "# TYPE outpost_agent_hub_memory_held gauge\n"
	           "outpost_agent_hub_memory_held{kind=\"results\"} %lld\n"
	           "outpost_agent_hub_memory_held{kind=\"batches\"} %lld\n"
	           "# HELP outpost_agent_disk_write_errors_total Writes of results and batches the "
	           "agent's database refused.\n"
	           "# TYPE outpost_agent_disk_write_errors_total counter\n"
	           "outpost_agent_disk_write_errors_total %lld\n"
	           "# HELP outpost_agent_hub_clock_skew_ms The hub's clock minus this host's, "
	           "while the hub refuses the agent's time (0: it takes it).\n"
	           "# TYPE outpost_agent_hub_clock_skew_ms gauge\n"
	           "outpost_agent_hub_clock_skew_ms %lld\n"
	           "# HELP outpost_agent_hub_samples_stale_total Samples the hub did not store: "
	           "their series had a newer one (a clock set back).\n"
	           "# TYPE outpost_agent_hub_samples_stale_total counter\n"
	           "outpost_agent_hub_samples_stale_total %lld\n",
	           json_is_true(json_object_get(st, "disk_full")),
	           (long long)json_integer_value(json_object_get(mem, "results")),
	           (long long)json_integer_value(json_object_get(mem, "batches")),
	           (long long)json_integer_value(json_object_get(mem, "write_errors")),
	           (long long)json_integer_value(json_object_get(st, "clock_skew_ms")),
	           (long long)json_integer_value(json_object_get(st, "samples_stale")));
}

/* The link to the hub: its status, and what the hubtask made of the tasks it brought. */
static void api_metrics_link(struct agent *a, struct buf *b)
{
	json_t *st = a->link->ops->status(a->link);
	const struct hubtask_stats *hs = hubtask_stats(a->hubtask);

	buf_printf(b,
	           "# HELP outpost_agent_hub_connected 1 while the last exchange with the hub "
	           "worked.\n"
	           "# TYPE outpost_agent_hub_connected gauge\n"
	           "outpost_agent_hub_connected %d\n"
	           "# TYPE outpost_agent_hub_reconnects_total counter\n"
	           "outpost_agent_hub_reconnects_total %lld\n"
	           "# TYPE outpost_agent_hub_tasks_received_total counter\n"
	           "outpost_agent_hub_tasks_received_total %llu\n"
	           "# HELP outpost_agent_hub_tasks_refused_total Tasks refused or expired: nothing "
	           "ran.\n"
	           "# TYPE outpost_agent_hub_tasks_refused_total counter\n"
	           "outpost_agent_hub_tasks_refused_total %llu\n"
	           "# TYPE outpost_agent_hub_tasks_replayed_total counter\n"
	           "outpost_agent_hub_tasks_replayed_total %llu\n"
	           "# TYPE outpost_agent_hub_results_sent_total counter\n"
	           "outpost_agent_hub_results_sent_total %lld\n"
	           "# TYPE outpost_agent_hub_results_dropped_total counter\n"
	           "outpost_agent_hub_results_dropped_total %lld\n"
	           "# HELP outpost_agent_hub_outbox_depth Results waiting for the hub.\n"
	           "# TYPE outpost_agent_hub_outbox_depth gauge\n"
	           "outpost_agent_hub_outbox_depth %lld\n",
	           json_is_true(json_object_get(st, "connected")),
	           (long long)json_integer_value(json_object_get(st, "reconnects")),
	           (unsigned long long)hs->received, (unsigned long long)hs->refused,
	           (unsigned long long)hs->replayed,
	           (long long)json_integer_value(json_object_get(st, "results_sent")),
	           (long long)json_integer_value(json_object_get(st, "results_dropped")),
	           (long long)json_integer_value(json_object_get(st, "outbox_depth")));
	buf_printf(b,
	           "# HELP outpost_agent_hub_spool_depth Batches (metrics) waiting for the hub.\n"
	           "# TYPE outpost_agent_hub_spool_depth gauge\n"
	           "outpost_agent_hub_spool_depth %lld\n"
	           "# TYPE outpost_agent_hub_spool_bytes gauge\n"
	           "outpost_agent_hub_spool_bytes %lld\n"
	           "# HELP outpost_agent_hub_spool_dropped_total Batches dropped unsent: the spool "
	           "was full (hub.spool_max_bytes).\n"
	           "# TYPE outpost_agent_hub_spool_dropped_total counter\n"
	           "outpost_agent_hub_spool_dropped_total %lld\n"
	           "# HELP outpost_agent_hub_batches_sent_total Batches the hub acknowledged.\n"
	           "# TYPE outpost_agent_hub_batches_sent_total counter\n"
	           "outpost_agent_hub_batches_sent_total %lld\n"
	           "# HELP outpost_agent_hub_batches_rejected_total Batches the hub refused: never "
	           "sent again.\n"
	           "# TYPE outpost_agent_hub_batches_rejected_total counter\n"
	           "outpost_agent_hub_batches_rejected_total %lld\n"
	           "# HELP outpost_agent_hub_beats_sent_total Beats the hub answered (fewer while "
	           "other requests stand in for them).\n"
	           "# TYPE outpost_agent_hub_beats_sent_total counter\n"
	           "outpost_agent_hub_beats_sent_total %lld\n",
	           (long long)json_integer_value(json_object_get(st, "spool_depth")),
	           (long long)json_integer_value(json_object_get(st, "spool_bytes")),
	           (long long)json_integer_value(json_object_get(st, "spool_dropped")),
	           (long long)json_integer_value(json_object_get(st, "batches_sent")),
	           (long long)json_integer_value(json_object_get(st, "batches_rejected")),
	           (long long)json_integer_value(json_object_get(st, "beats_sent")));
	api_metrics_link_faults(st, b);
	json_decref(st);
	{
		static const char *const names[TP_N] = {"poll",  "verify",  "ledger",
		                                        "spawn", "command", "report"};
		phase_prom(b, "outpost_agent_task_phase",
		           "the hub's tasks in this agent (docs/metrics.md)", names, a->phases.p,
		           TP_N);
	}
}

static void api_metrics(void *ctx, struct httpd_req *req)
{
	struct agent *a = ctx;
	const struct dispatch_stats *st = dispatch_stats(a->dispatch);
	struct buf b = BUF_INIT;
	size_t enabled = 0, n = plugins_count(a->plugins);

	buf_printf(&b,
	           "# HELP outpost_agent_info Agent version.\n"
	           "# TYPE outpost_agent_info gauge\n"
	           "outpost_agent_info{version=\"%s\"} 1\n"
	           "# TYPE outpost_agent_uptime_seconds gauge\n"
	           "outpost_agent_uptime_seconds %lld\n"
	           "# TYPE outpost_agent_resident_memory_bytes gauge\n"
	           "outpost_agent_resident_memory_bytes %ld\n"
	           "# HELP outpost_agent_calls_total Calls accepted by the dispatcher.\n"
	           "# TYPE outpost_agent_calls_total counter\n"
	           "outpost_agent_calls_total %llu\n"
	           "# TYPE outpost_agent_calls_failed_total counter\n"
	           "outpost_agent_calls_failed_total %llu\n"
	           "# TYPE outpost_agent_calls_busy_total counter\n"
	           "outpost_agent_calls_busy_total %llu\n"
	           "# TYPE outpost_agent_calls_timeout_total counter\n"
	           "outpost_agent_calls_timeout_total %llu\n"
	           "# TYPE outpost_agent_calls_replayed_total counter\n"
	           "outpost_agent_calls_replayed_total %llu\n"
	           "# TYPE outpost_agent_calls_inflight gauge\n"
	           "outpost_agent_calls_inflight %d\n"
	           "# TYPE outpost_agent_ledger_rows gauge\n"
	           "outpost_agent_ledger_rows %lld\n"
	           "# TYPE outpost_agent_op_calls_total counter\n",
	           OUTPOST_VERSION, (long long)((clk_real_ms() - a->started_ms) / 1000),
	           api_rss_bytes(), (unsigned long long)atomic_load(&st->calls),
	           (unsigned long long)atomic_load(&st->errors),
	           (unsigned long long)atomic_load(&st->busy),
	           (unsigned long long)atomic_load(&st->timeouts),
	           (unsigned long long)atomic_load(&st->replays), atomic_load(&st->inflight),
	           (long long)ledger_count(a->ledger));
	for (size_t i = 0; i < n; i++) {
		struct outpost_plugin_ctx *pc = plugins_at(a->plugins, i);
		enabled += pc->enabled != 0;
		for (size_t j = 0; j < pc->nops; j++)
			buf_printf(&b,
			           "outpost_agent_op_calls_total{plugin=\"%s\",op=\"%s\"} %llu\n",
			           pc->plugin->name, pc->plugin->ops[j].name,
			           (unsigned long long)atomic_load(&pc->stats[j].calls));
	}
	buf_puts(&b, "# TYPE outpost_agent_op_errors_total counter\n");
	for (size_t i = 0; i < n; i++) {
		struct outpost_plugin_ctx *pc = plugins_at(a->plugins, i);
		for (size_t j = 0; j < pc->nops; j++)
			buf_printf(&b,
			           "outpost_agent_op_errors_total{plugin=\"%s\",op=\"%s\"} %llu\n",
			           pc->plugin->name, pc->plugin->ops[j].name,
			           (unsigned long long)atomic_load(&pc->stats[j].errors));
	}
	api_metrics_heap(a, &b);
	if (a->link)
		api_metrics_link(a, &b);
	buf_printf(&b,
	           "# TYPE outpost_agent_plugins gauge\n"
	           "outpost_agent_plugins{state=\"enabled\"} %zu\n"
	           "outpost_agent_plugins{state=\"disabled\"} %zu\n",
	           enabled, n - enabled);
	if (!b.data) {
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		return;
	}
	prom_respond(req, b.data, b.len);
	buf_free(&b);
}

/* The whole surface of the local API. body_limit of the call route is raised from config at
 * start (api.body_limit) in the agent's own copy; this table holds the defaults. */
static const struct httpd_route routes[] = {
    {"POST", "/v1/*/*", api_call, API_ROLE_CALL, 16 << 20},
    {"GET", "/v1/plugins", api_plugins, API_ROLE_READ, 0},
    {"GET", "/v1/health", api_health, API_ROLE_READ, 0},
    {"GET", "/metrics", api_metrics, API_ROLE_READ, 0},
};

const struct httpd_route *api_routes(size_t *n)
{
	*n = sizeof(routes) / sizeof(routes[0]);
	return routes;
}
