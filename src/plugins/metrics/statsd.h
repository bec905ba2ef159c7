/* The StatsD line protocol, parsed into the metrics table: name:value|type[|@rate][|#tags],
 * several lines per packet. docs/metrics.md describes what each type becomes. */
#ifndef OUTPOST_STATSD_H
#define OUTPOST_STATSD_H

#include "mtab.h"

#include <stddef.h>
#include <stdint.h>

struct statsd_stats {
	uint64_t packets;
	uint64_t bad_lines; /* malformed, or naming a series of another type */
	uint64_t refused;   /* new series over max_series */
};

/* A line longer than this is a bad line. */
#define STATSD_LINE_MAX 8192

/* Applies every line of one packet (buf, len: not NUL-terminated) to t at wall-clock time
 * now_ms. Bad lines are counted and skipped; the packet's other lines still count. */
void statsd_packet(struct mtab *t, size_t max_series, const char *buf, size_t len, int64_t now_ms,
                   struct statsd_stats *st);

/* Maps a StatsD name (or tag name, colon 0) to Prometheus rules into out (cap bytes): dots
 * become underscores, other characters outside [a-zA-Z0-9_:] are dropped, a leading digit gets
 * an underscore before it. Returns the length, 0 when nothing valid is left or it is too long. */
size_t statsd_name(const char *in, size_t len, char *out, size_t cap, int colon);

#endif
