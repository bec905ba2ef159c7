/* Retention of what the hub's store would otherwise keep forever: events, audit entries and
 * ended tasks with their per-host copies, hosts left pending (events.keep_days, audit.keep_days,
 * tasks.keep_days, enroll.pending_keep_days in docs/config.md). A pass starts at most once a minute
 * and runs in slices of a bounded number of rows within a time budget per call, so that a backlog
 * of millions of rows is worked off over many calls and never stalls the hub's loop. Loop thread
 * only. */
#ifndef OUTPOST_HUB_RETENTION_H
#define OUTPOST_HUB_RETENTION_H

#include <stdint.h>

struct store;
struct logger;
struct buf;

/* What is pruned, in the order a pass works. */
enum { RETENTION_EVENTS, RETENTION_AUDIT, RETENTION_TASKS, RETENTION_PENDING, RETENTION_NKINDS };

/* Rows one store call deletes at most: one short transaction. */
#define RETENTION_SLICE_ROWS 1000
/* A pass starts this long after the previous one started. */
#define RETENTION_EVERY_MS 60000

struct retention;

/* store and log are borrowed and must outlive it. */
int retention_new(struct store *store, struct logger *log, struct retention **out);
void retention_free(struct retention *r); /* NULL ok */
/* Starts a pass when one is due (keep_ms: how long each kind is kept, read anew for every pass
 * so a reload takes effect; <= 0 keeps that kind forever), then works on the pass for about
 * budget_ms (at least one slice). Returns 1 while a pass is under way, 0 when none is. */
int retention_step(struct retention *r, const int64_t keep_ms[RETENTION_NKINDS], int64_t now_ms,
                   int64_t budget_ms);
/* The counts of deleted rows, as Prometheus text for /metrics. */
void retention_stats(const struct retention *r, struct buf *b);

#endif
