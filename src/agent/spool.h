/* The spool: batches plugins published (outpost_publish) waiting for the hub, kept in the
 * agent's database until the hub has acknowledged them, so a hub that is down, a network cut or
 * an agent restart loses none. Batches leave in the order they were put, by seq: 1, 2, 3 ...
 * per database, never reused (dropped rows included). The epoch (16 lowercase hex, random)
 * is made once with the table: the hub tells a recreated database from a replay by it. Bounded
 * by max_bytes of batch text: past it the oldest batches are dropped and counted. Loop thread
 * only: it shares the agent's connection with the ledger's workers, so it never opens a
 * transaction of its own (their statements would land in it). */
#ifndef OUTPOST_AGENT_SPOOL_H
#define OUTPOST_AGENT_SPOOL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/log.h"

#define SPOOL_MAX_BYTES_DEFAULT (64LL << 20)
#define SPOOL_MAX_BYTES_MIN (1LL << 20)
/* One batch at most: a request holding it alone stays under the hub's 4 MiB body limit. */
#define SPOOL_BATCH_MAX (3u << 20)
#define SPOOL_EPOCH_LEN 16
/* Batches the database will not take (a full disk) wait in memory up to this much text. */
#define SPOOL_MEM_MAX_BYTES (4LL << 20)

struct spool;

/* db and log are borrowed and outlive the spool. max_bytes: the bound (at least
 * SPOOL_MAX_BYTES_MIN; 0 means the default). A spool over a bound lowered since the last run is
 * trimmed at once (counted as dropped). */
int spool_open(sqlite3 *db, const struct logger *log, int64_t max_bytes, struct spool **out);
void spool_close(struct spool *s); /* NULL ok */

/* Appends one batch: the compact JSON text of an object without "seq" (borrowed, len bytes;
 * the caller checked it), then drops the oldest batches while the spool holds more than its
 * bound. A batch the database will not take (a full disk) is held in memory instead, under an
 * epoch of its own, and so is every batch after it until the hub has taken those held (then
 * the disk is tried again); past SPOOL_MEM_MAX_BYTES the oldest held go first (counted as
 * dropped). 0; OUTPOST_E_TOO_LARGE for a batch over SPOOL_BATCH_MAX or the bound (nothing
 * stored); OUTPOST_E_INTERNAL. */
int spool_put(struct spool *s, const char *batch, size_t len);

/* Appends to out the body of the next request: {"epoch":"...","batches":[{"seq":N,...},...]}
 * with the oldest batches, at most max_items and max_bytes of batch text (but always one when
 * the spool has any). A row that is not a JSON object without "seq" (a damaged database) is
 * deleted, logged and counted as dropped. *n: batches in the body (0: nothing to send; out is
 * then unchanged), *last_seq: the seq of the last one. Once the disk holds none, the batches
 * held in memory, under their epoch, and *last_seq is then minus the last one's seq; spool_ack
 * takes either. 0 or a negative code. */
int spool_peek(struct spool *s, size_t max_items, size_t max_bytes, struct buf *out, size_t *n,
               int64_t *last_seq);
/* Drops every batch up to last_seq: the hub has it (or refused it for good). Returns the
 * number dropped or a negative code. */
int spool_ack(struct spool *s, int64_t last_seq);

const char *spool_epoch(const struct spool *s); /* 16 lowercase hex */
int64_t spool_depth(const struct spool *s);     /* batches waiting */
int64_t spool_bytes(const struct spool *s);     /* their text, bytes */
uint64_t spool_dropped(const struct spool *s);  /* dropped unsent since open: bound, damage */

struct spool_mem_stats {
	int disk_full;         /* the last write to the database failed */
	size_t batches;        /* held in memory */
	int64_t bytes;         /* their text */
	uint64_t write_errors; /* writes the database refused */
};
void spool_mem_stats(const struct spool *s, struct spool_mem_stats *st);

#endif
