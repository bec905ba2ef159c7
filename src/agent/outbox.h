/* The outbox: task results waiting for the hub, kept in the agent's database until the hub has
 * acknowledged them, so a hub that is down, or an agent that restarts, loses none. Results
 * leave in the order they were put (seq). Whatever link carries them uses it. Loop thread
 * only: it shares the agent's connection, and never opens a transaction of its own. */
#ifndef OUTPOST_AGENT_OUTBOX_H
#define OUTPOST_AGENT_OUTBOX_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"

/* At most this many rows: past it the oldest are dropped (and logged), so a hub that never
 * comes back cannot fill the disk. */
#define OUTBOX_MAX_ROWS 100000
/* Results the database would not take (a full disk) wait in memory, up to this much JSON: past
 * it the oldest not on their way are dropped (counted). */
#define OUTBOX_MEM_MAX_BYTES (4u << 20)

struct outbox;

/* db and log are borrowed and outlive the outbox. */
int outbox_open(sqlite3 *db, const struct logger *log, struct outbox **out);
void outbox_close(struct outbox *o); /* NULL ok */

/* Appends a result {"task_id", "state", ...} (borrowed). A final state replaces a "running"
 * row of the same task that has not left yet: the hub only moves forward. A result the
 * database will not take (a full disk) is held in memory instead, and so is every result after
 * it until the hub has taken those held (then the disk is tried again). 0 or a negative
 * code (only when it could be held nowhere). */
int outbox_put(struct outbox *o, const json_t *result);
/* The oldest results, at most max_items and max_bytes of JSON (but always at least one):
 * *batch gets a new array (empty when the outbox is), *last_seq the seq of its last row; or,
 * once the rows on disk are gone, the results held in memory: then *last_seq is minus how
 * many of them the batch holds. outbox_ack takes either. */
int outbox_peek(struct outbox *o, size_t max_items, size_t max_bytes, json_t **batch,
                int64_t *last_seq);
/* Drops every row up to last_seq: the hub has them. Returns the number dropped or a negative
 * code. */
int outbox_ack(struct outbox *o, int64_t last_seq);
int64_t outbox_depth(const struct outbox *o); /* on disk and in memory */

struct outbox_mem_stats {
	int disk_full;         /* the last write to the database failed */
	size_t results, bytes; /* held in memory */
	uint64_t dropped;      /* dropped from memory: over OUTBOX_MEM_MAX_BYTES */
	uint64_t write_errors; /* writes the database refused */
};
void outbox_mem_stats(const struct outbox *o, struct outbox_mem_stats *st);

#endif
