/* What tsdb.c and tsdb_shared.c share: the series, hosts and pending lists of the time-series
 * store, and the few steps of tsdb.c the shared mode calls. Internal to the tsdb. */
#ifndef OUTPOST_HUB_TSDB_INT_H
#define OUTPOST_HUB_TSDB_INT_H

#include "tsdb.h"
#include "chunk.h"
#include "store.h"
#include "core/buf.h"

#include <stddef.h>
#include <stdint.h>

#define RAW_WINDOW_MS (2 * 3600 * 1000LL)
#define M1_WINDOW_MS (86400 * 1000LL)
#define H1_WINDOW_MS (30 * 86400 * 1000LL)
/* A head whose window ended this long ago is sealed even though no later sample came (a host
 * that went away): late enough for a short outage's spool to arrive first; a longer one
 * reopens the window. */
#define SEAL_GRACE_MS (15 * 60 * 1000LL)
#define LOG_REC MSTORE_LOG_REC /* u32 series, i64 t, f64 v, little-endian */
/* A checkpoint starts after this many log bytes even before checkpoint_ms. */
#define CKPT_LOG_BYTES (64 << 20)
#define SERIES_PER_HOST_MAX 20000
#define SERIES_MAX 5000000

struct ser {
	struct tsdb_series pub;
	struct tsdb_host *host;
	struct chunk_enc *head; /* the open window; NULL when none */
	int64_t head_w;         /* its start */
	int64_t rolled_ms;      /* rollups exist before this */
	int64_t foreign_ms;     /* shared: the newest sample another hub logged, as last synced */
	uint8_t dirty;          /* head changed since it was last written */
	uint8_t fresh;          /* not in the store yet (pending flush) */
	struct ser *next;       /* hash chain */
	char mem[];             /* key, name, label names and values */
};

struct tsdb_host {
	char *name;
	char epoch[17];
	int64_t seq;
	/* Shared mode: the mark as the store held it when last read or written here; a flush
	 * moves it only from this value (mstore seq_swap), so two hubs never both store a batch. */
	char base_epoch[17];
	int64_t base_seq;
	uint8_t seq_dirty;
	size_t nseries;
	uint32_t idx;
	struct tsdb_host *next;
};

struct sealed {
	uint32_t series;
	int64_t w;
	uint32_t count;
	uint8_t *data;
	size_t len;
};

struct tsdb {
	struct tsdb_config cfg;
	struct mstore *m;
	uint64_t gen;

	struct ser **by_id;     /* index id - 1 */
	size_t nseries, cap_id; /* nseries: the highest id (ids are sparse in shared mode) */
	size_t count;           /* series in the dictionary */

	/* Shared mode: ids from blocks, and how far this hub has read the others' work. */
	int shared;
	uint32_t id_next, id_end;
	int64_t series_pos, log_pos;
	int64_t raw_horizon_ms; /* raw retention's last cut: older log samples are not read */
	struct ser **tab;       /* hash of (host, key) */
	size_t tab_cap;
	struct tsdb_host **hosts; /* hash of host names */
	size_t hosts_cap, nhosts;

	/* Pending the next flush. */
	struct buf log;
	struct ser **fresh;
	size_t nfresh, cap_fresh;
	struct tsdb_host **marks;
	size_t nmarks, cap_marks;
	struct sealed *sealed;
	size_t nsealed, cap_sealed;

	/* Checkpoint in progress. */
	int ckpt_active;
	int64_t ckpt_log_id; /* the log rows it covers */
	size_t ckpt_pos;
	int64_t ckpt_last_ms;
	int64_t log_id;   /* newest log row */
	size_t log_bytes; /* written since the last checkpoint began */
	size_t seal_pos;  /* timer-seal sweep position */
	int64_t expire_last_ms;
	int64_t rolled_sync_ms; /* shared, not leading: rollup marks last read from the store */

	struct {
		unsigned long long appended, replayed, sealed, rolled, expired, checkpoints,
		    flushes, flush_failures;
	} st;
};

/* The points of a read being gathered (tsdb_read). */
struct pts {
	struct tsdb_point *p;
	size_t n, cap;
	int64_t from, to;
	int64_t skip_w; /* raw: the window the head holds (its row may be stale); -1 none */
};

int tsdb_pts_add(struct pts *x, int64_t t, double mn, double mx, double sum, double cnt);
struct ser *tsdb_by_id(struct tsdb *db, uint32_t id);
int64_t tsdb_floor(int64_t t, int64_t step);
/* Adds a series read from the store to the dictionary (load, or another hub's new one). */
int tsdb_load_series(void *arg, uint32_t id, const char *host, const char *key, int64_t first_ms,
                     int64_t rolled_ms);

/* ---- Shared mode (tsdb_shared.c): several hubs on one store (mstore's series_block set) ---- */
/* An id for a new series from this hub's block; 0 when none can be had. */
uint32_t tsdb_shared_id(struct tsdb *db);
/* At open, after the dictionary: the cursors, every hub's logged samples as last values, and
 * this hub's log entries written into chunk rows (no head is held across a restart). */
int tsdb_shared_load(struct tsdb *db, int64_t now_ms);
/* Writes raw chunk b, window w of series, merged with the row the store holds (rows only
 * grow); inside the caller's transaction. */
int tsdb_shared_put(struct tsdb *db, uint32_t series, int64_t w, const uint8_t *b, size_t len,
                    int sealed);
/* Adds the other hubs' logged samples of s in x's span to x, then sorts x's points from i0 on by
 * time and drops samples seen twice (a chunk row, a head and the log may each hold one). */
int tsdb_shared_read(struct tsdb *db, struct ser *s, struct pts *x, size_t i0);
/* New series and samples of the other hubs; heads another hub now writes are let go. */
int tsdb_shared_sync(struct tsdb *db);
/* How far the leading hub has rolled every series up (a hub that does not roll up reads
 * rollups up to there and raw after). */
int tsdb_shared_rolled(struct tsdb *db);

#endif
