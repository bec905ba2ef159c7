/* The hub's time-series store: a dictionary of series (host + Prometheus key), one open chunk
 * per series in memory (its head), sealed chunks, 1-minute and 1-hour rollups and retention,
 * all persisted through the store interface. Ingest appends to heads and logs each group of
 * samples durably before the agents are answered (ingest.c); queries read chunks and heads
 * (query.c). Loop thread only. docs/metrics.md is the operator's page. */
#ifndef OUTPOST_HUB_TSDB_H
#define OUTPOST_HUB_TSDB_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct logger;

enum tsdb_res {
	TSDB_RAW = 0,
	TSDB_1M,
	TSDB_1H,
	TSDB_NRES,
};

struct tsdb_config {
	struct store *store;        /* borrowed; outlives the tsdb */
	const struct logger *log;   /* borrowed */
	int64_t keep_ms[TSDB_NRES]; /* retention per resolution */
	int64_t checkpoint_ms;      /* how often open heads are written (log truncated) */
};

/* One series, as queries see it. Borrowed from the tsdb: valid until the next call that
 * writes (ingest, compaction), so a caller copies what it keeps across turns of the loop. */
struct tsdb_series {
	uint32_t id;
	const char *host;
	const char *name;
	const char *key; /* canonical: name{a="x",b="y"} (labels sorted) */
	size_t nlabels;
	const char *const *labels; /* nlabels pairs: name, value (unescaped), sorted by name */
	int64_t first_ms;          /* first sample kept; 0 when none */
	int64_t last_ms;           /* latest sample; 0 when none */
	double last_value;
};

/* A point of a read: raw samples have min = max = sum = value and count = 1; rollups carry
 * the aggregates of their interval (t = its start). */
struct tsdb_point {
	int64_t t;
	double min, max, sum, count;
};

struct tsdb;

/* Loads the dictionary and the heads, replays the ingest log. msg says what went wrong. */
int tsdb_open(const struct tsdb_config *cfg, struct tsdb **out, char *msg, size_t msglen);
void tsdb_close(struct tsdb *db); /* NULL ok */

/* Calls fn for each series named name (NULL: every series), in id order; fn returns nonzero
 * to stop. Returns 0. */
typedef int (*tsdb_each_fn)(void *arg, const struct tsdb_series *s);
int tsdb_series_each(struct tsdb *db, const char *name, tsdb_each_fn fn, void *arg);
/* The same from position *pos (0: the first series), for a walk in slices: when fn stops it,
 * *pos is the series fn stopped at (it is offered again when the walk resumes); at the end,
 * past the last. Positions stay valid while tsdb_generation is unchanged (new series come
 * after the end). Returns 0. */
int tsdb_series_each_at(struct tsdb *db, const char *name, size_t *pos, tsdb_each_fn fn, void *arg);

/* The points of series id with from <= t < to at a resolution, oldest first. *pts: new
 * array the caller frees (NULL when *n is 0). OUTPOST_E_NOT_FOUND for an unknown id. */
int tsdb_read(struct tsdb *db, uint32_t id, int res, int64_t from, int64_t to,
              struct tsdb_point **pts, size_t *n);

/* ---- Ingest (ingest.c) ---- */

/* Limits on what one agent may create. */
#define TSDB_KEY_MAX 1024
#define TSDB_LABELS_MAX 32

/* A host as ingest sees it: its series and its dedupe mark. Owned by the tsdb. */
struct tsdb_host;

/* The host's entry, made on first use; NULL when memory runs out. */
struct tsdb_host *tsdb_host_get(struct tsdb *db, const char *host);
/* The last batch stored for the host: its agent database's epoch ("" before any) and seq. */
void tsdb_host_seq(const struct tsdb_host *h, const char **epoch, int64_t *seq);
/* Several hubs on one store: reads the host's mark as the store holds it now (another hub
 * may have stored batches since); 0 at once with a store of one hub. */
int tsdb_host_sync(struct tsdb *db, struct tsdb_host *h);
/* Records that batch seq of epoch is stored; written with the next flush. */
void tsdb_host_mark(struct tsdb *db, struct tsdb_host *h, const char *epoch, int64_t seq);

/* Appends one sample of series key (Prometheus exposition form, any label order) of host h.
 * 0 stored; 1 not stored because the series already has a sample at or after t (a replay);
 * OUTPOST_E_BAD_ARGS for a key that does not parse or has a host label (msg says why);
 * OUTPOST_E_TOO_LARGE when the host or the hub is at its series limit; OUTPOST_E_INTERNAL
 * when memory runs out. The sample is durable only after the next successful tsdb_flush. */
int tsdb_append(struct tsdb *db, struct tsdb_host *h, const char *key, size_t keylen, int64_t t,
                double v, char *msg, size_t msglen);

/* Writes everything appended since the last flush (ingest log, new series, dedupe marks,
 * sealed chunks) in one transaction. On failure the in-memory state is rebuilt from disk and
 * the generation changes: whatever was appended and not flushed is gone, and its senders
 * must be told so (they retry). */
int tsdb_flush(struct tsdb *db);
uint64_t tsdb_generation(const struct tsdb *db);
/* Samples appended and not flushed yet. */
size_t tsdb_pending(const struct tsdb *db);

/* Background work in slices of about budget_ms: seals heads whose window ended long ago,
 * writes rollups of sealed chunks, checkpoints the heads (and trims the log), applies
 * retention. The hub calls it from a timer. lead 0 (a hub of several that does not do the
 * fleet's maintenance now): no rollups and no retention deletes, which the leading hub does
 * for every series; a shared store's rollup marks are read from it once a minute instead. */
void tsdb_compact(struct tsdb *db, int64_t now_ms, int64_t budget_ms, int lead);

/* Counters for /metrics: {"series", "hosts", "samples_appended", "samples_replayed",
 * "chunks_sealed", "chunks_rolled", "chunks_expired", "checkpoints", "flushes",
 * "flush_failures", "head_bytes"}. New reference. */
json_t *tsdb_status(struct tsdb *db);

/* Parses a series key into out (cap bytes) in canonical form: labels sorted by name, values
 * escaped. 0 with *outlen; OUTPOST_E_BAD_ARGS with msg for a bad key. A host label, a label
 * twice, names beginning with "__", control characters: refused. */
int tsdb_key_canon(const char *key, size_t len, char *out, size_t cap, size_t *outlen, char *msg,
                   size_t msglen);

/* Retention and interval of a resolution (ms); interval 0 for raw. */
int64_t tsdb_keep_ms(const struct tsdb *db, int res);
int64_t tsdb_interval_ms(int res);
const char *tsdb_res_name(int res); /* "raw", "1m", "1h" */

#endif
