/* Retention: see retention.h. The deletes themselves are the store's (store.h's *_prune);
 * this file paces them and counts what went. */
#include "retention.h"
#include "store.h"
#include "core/buf.h"
#include "core/clk.h"
#include "core/err.h"
#include "core/log.h"

#include <outpost/plugin.h>
#include <stdlib.h>

/* Counted kinds of rows: the three retention kinds, then the tasks' per-host copies. */
enum { COUNT_COPIES = RETENTION_NKINDS, COUNT_N };
static const char *const count_names[COUNT_N] = {"events", "audit", "tasks", "pending_hosts",
                                                 "task_copies"};

struct retention {
	struct store *store;
	struct logger *log;
	int64_t pass_ms; /* when the last pass started (real time); 0: never */
	int kind;        /* the kind the pass works on; RETENTION_NKINDS: no pass under way */
	int64_t before_ms[RETENTION_NKINDS];
	unsigned long long pass[COUNT_N];  /* deleted in this pass (its log line) */
	unsigned long long total[COUNT_N]; /* deleted since start (/metrics) */
	unsigned long long failures;
};

int retention_new(struct store *store, struct logger *log, struct retention **out)
{
	struct retention *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r)
		return OUTPOST_E_INTERNAL;
	r->store = store;
	r->log = log;
	r->kind = RETENTION_NKINDS;
	*out = r;
	return 0;
}

void retention_free(struct retention *r)
{
	free(r);
}

static void retention_start(struct retention *r, const int64_t keep_ms[RETENTION_NKINDS],
                            int64_t now_ms)
{
	r->pass_ms = now_ms;
	r->kind = 0;
	for (int k = 0; k < RETENTION_NKINDS; k++)
		r->before_ms[k] = keep_ms[k] > 0 ? now_ms - keep_ms[k] : INT64_MIN;
	for (int c = 0; c < COUNT_N; c++)
		r->pass[c] = 0;
}

/* One slice of the current kind: 1 when that kind has more to delete. */
static int retention_slice(struct retention *r)
{
	const struct store_ops *op = r->store->ops;
	int64_t before = r->before_ms[r->kind], n = 0, copies = 0;
	int rc;

	if (before == INT64_MIN) /* kept forever */
		return 0;
	switch (r->kind) {
	case RETENTION_EVENTS:
		rc = op->events_prune(r->store, before, RETENTION_SLICE_ROWS, &n);
		break;
	case RETENTION_AUDIT:
		rc = op->audit_prune(r->store, before, RETENTION_SLICE_ROWS, &n);
		break;
	case RETENTION_PENDING:
		rc = op->pending_prune(r->store, before, RETENTION_SLICE_ROWS, &n);
		break;
	default:
		rc = op->tasks_prune(r->store, before, RETENTION_SLICE_ROWS, &n, &copies);
		break;
	}
	if (rc < 0) {
		r->failures++;
		log_error(r->log, "retention",
		          "deleting old %s failed (%s); trying again in a minute",
		          count_names[r->kind], err_name(rc));
		return 0;
	}
	r->pass[r->kind] += (unsigned long long)n;
	r->total[r->kind] += (unsigned long long)n;
	r->pass[COUNT_COPIES] += (unsigned long long)copies;
	r->total[COUNT_COPIES] += (unsigned long long)copies;
	return n + copies >= RETENTION_SLICE_ROWS;
}

int retention_step(struct retention *r, const int64_t keep_ms[RETENTION_NKINDS], int64_t now_ms,
                   int64_t budget_ms)
{
	int64_t t0 = clk_mono_ms();

	if (r->kind == RETENTION_NKINDS) {
		/* A clock set back does not hold retention off until it catches up again. */
		if (r->pass_ms && now_ms - r->pass_ms < RETENTION_EVERY_MS && now_ms >= r->pass_ms)
			return 0;
		retention_start(r, keep_ms, now_ms);
	}
	do {
		if (!retention_slice(r))
			r->kind++;
		while (r->kind < RETENTION_NKINDS && r->before_ms[r->kind] == INT64_MIN)
			r->kind++; /* kept forever: no slice to spend */
	} while (r->kind < RETENTION_NKINDS && clk_mono_ms() - t0 < budget_ms);
	if (r->kind < RETENTION_NKINDS)
		return 1;
	if (r->pass[RETENTION_EVENTS] || r->pass[RETENTION_AUDIT] || r->pass[RETENTION_TASKS] ||
	    r->pass[RETENTION_PENDING] || r->pass[COUNT_COPIES])
		log_info(r->log, "retention",
		         "deleted %llu events, %llu audit entries, %llu tasks (%llu per-host "
		         "copies), %llu pending hosts past their keep_days",
		         r->pass[RETENTION_EVENTS], r->pass[RETENTION_AUDIT],
		         r->pass[RETENTION_TASKS], r->pass[COUNT_COPIES],
		         r->pass[RETENTION_PENDING]);
	return 0;
}

void retention_stats(const struct retention *r, struct buf *b)
{
	if (!r)
		return;
	buf_printf(b, "# HELP outpost_hub_pruned_rows_total Rows deleted by retention "
	              "(events, audit and tasks .keep_days, enroll.pending_keep_days).\n"
	              "# TYPE outpost_hub_pruned_rows_total counter\n");
	for (int c = 0; c < COUNT_N; c++)
		buf_printf(b, "outpost_hub_pruned_rows_total{what=\"%s\"} %llu\n", count_names[c],
		           r->total[c]);
	buf_printf(b,
	           "# TYPE outpost_hub_prune_failures_total counter\n"
	           "outpost_hub_prune_failures_total %llu\n",
	           r->failures);
}
