/* The metrics plugin's table of application series (pushed through metrics.push or sent over
 * StatsD): one compact entry per series in an open-addressing hash table, keyed by the name
 * and the labels sorted by name, packed into one string. Not thread-safe: the plugin holds its
 * table lock around every call. */
#ifndef OUTPOST_MTAB_H
#define OUTPOST_MTAB_H

#include <stddef.h>
#include <stdint.h>

enum mtab_type {
	MTAB_GAUGE = 1,
	MTAB_COUNTER,
	MTAB_TIMER, /* StatsD |ms and |h: summarized per interval into MTAB_NSTATS series */
	MTAB_SET,   /* StatsD |s: unique values per interval */
};

/* The summary series of a timer, in output order (label stat="count", ...). */
#define MTAB_NSTATS 7
extern const char *const mtab_stat_names[MTAB_NSTATS];

/* Limits on names and labels (Prometheus rules plus sizes). */
#define MTAB_NAME_MAX 200
#define MTAB_LABELS_MAX 16
#define MTAB_LABEL_VALUE_MAX 256
/* A timer keeps at most this many samples per interval for its percentiles (a uniform
 * reservoir beyond it); count, sum, min and max stay exact. */
#define MTAB_TIMER_SAMPLES 512
/* A set counts at most this many distinct values per interval. */
#define MTAB_SET_MAX 16384

/* One series. The key is name '\0' (label '\0' value '\0')*, labels sorted by name. */
struct mtab_series {
	uint32_t hash;
	uint16_t keylen; /* bytes of key, every NUL included */
	uint8_t type;    /* enum mtab_type */
	uint8_t nlabels;
	int64_t updated_ms; /* wall clock of the last update, for expiry */
	double value;       /* gauge, counter, set's last count; NaN: nothing yet */
	void *acc;          /* the timer's or set's accumulator, NULL otherwise */
	char key[];
};

struct mtab;

int mtab_new(struct mtab **out); /* 0 or OUTPOST_E_INTERNAL */
void mtab_free(struct mtab *t);  /* NULL ok */

/* Prometheus rules: names [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*, neither
 * beginning with "__", at most MTAB_NAME_MAX bytes. Return 1 when valid. */
int mtab_name_ok(const char *s, size_t len);
int mtab_label_name_ok(const char *s, size_t len);

/* Names that applications may not use: the host_ prefix of the collectors and the plugin's own
 * series (MTAB_SELF_*). */
#define MTAB_SELF_BAD_LINES "statsd_bad_lines_total"
#define MTAB_SELF_PACKETS "statsd_packets_total"
#define MTAB_SELF_REFUSED "metrics_series_refused_total"
int mtab_name_reserved(const char *name);

/* Packs a key into buf (cap bytes). labels: nlabels pairs (name, value) in any order, already
 * validated. Returns the key length, or 0 when it does not fit. */
size_t mtab_key(char *buf, size_t cap, const char *name, const char *const *labels, size_t nlabels);

/* The series with this key, or NULL. */
struct mtab_series *mtab_find(struct mtab *t, const char *key, size_t keylen);
/* Finds or adds the series; a new one has type `type` and no value. Returns NULL when memory
 * runs out. *created says whether it was added. The caller checks limits first
 * (mtab_output_count). */
struct mtab_series *mtab_get(struct mtab *t, const char *key, size_t keylen, int type,
                             int *created);

/* The series each type shows in metrics.now: MTAB_NSTATS for a timer, 1 for the others. */
size_t mtab_type_width(int type);
/* Total series shown (the sum of the widths): what max_series bounds. */
size_t mtab_output_count(const struct mtab *t);

/* Accumulate into a timer or a set of the current interval. 0, or -1 when memory ran out. */
int mtab_timer_add(struct mtab *t, struct mtab_series *s, double v);
int mtab_set_add(struct mtab_series *s, uint64_t hash);

/* Closes the interval: each timer publishes count, sum, min, max, p50, p90, p99 of its samples
 * (count and sum 0, the rest absent, when it had none) and each set its unique count, then they
 * start afresh. Series not updated since expire_before (wall clock; 0 never) are removed. */
void mtab_roll(struct mtab *t, int64_t expire_before);

/* The published stats of a timer (MTAB_NSTATS values, NaN for absent). */
const double *mtab_timer_stats(const struct mtab_series *s);

/* Iteration in table order: *pos starts at 0; returns NULL at the end. */
struct mtab_series *mtab_next(struct mtab *t, size_t *pos);

/* Bytes held by the table (entries, slots, accumulators), for the docs and tests. */
size_t mtab_bytes(const struct mtab *t);

#endif
