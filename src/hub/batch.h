/* Reading an agent's metrics post ({"epoch", "batches": [{"seq", "t", "samples": [[key, value],
 * ...]}]}, docs/protocol.md) without building a JSON tree: it is the hub's hottest input, and a
 * tree of three allocations per sample cost more than everything else ingest does. Two passes
 * over the bytes with libyajl's event parser: batch_scan checks the shape and reads the
 * batches' seq and t (and changes nothing); batch_samples then hands over the samples of the
 * batches the caller wants. An events batch ({"seq", "events": [...]}, the same spool's other
 * stream) is only marked here: ingest reads its events as a tree. */
#ifndef OUTPOST_HUB_BATCH_H
#define OUTPOST_HUB_BATCH_H

#include <stddef.h>
#include <stdint.h>

#define BATCH_MAX 256

struct batch_info {
	int64_t seq;
	int64_t t;
	const char *bad; /* why the batch is refused (static text), or NULL */
	int events;      /* an events batch ({"seq", "events": [...]}): no samples, t not needed */
};

struct batch_post {
	char epoch[17];
	size_t n;
	struct batch_info b[BATCH_MAX];
};

/* 0 with post filled; OUTPOST_E_BAD_JSON for bytes that are not JSON, OUTPOST_E_BAD_ARGS for a
 * post of the wrong shape (no epoch, no batches, seq missing or not ascending, ...); msg says
 * what. A batch whose own fields are wrong (t, samples) is not an error here: its bad is set. */
int batch_scan(const char *body, size_t len, struct batch_post *post, char *msg, size_t msglen);

/* A sample of batch i. value is the number, or NaN/+Inf/-Inf for those strings. Returns 0 to
 * go on, nonzero to stop (batch_samples then returns it). */
typedef int (*batch_sample_fn)(void *arg, size_t i, const char *key, size_t keylen, double value);

/* Calls fn for every well-formed sample of the batches with want[i] set, in order; samples
 * that are not [string, number or "NaN"/"+Inf"/"-Inf"] are counted in *bad (for wanted
 * batches only). 0, fn's nonzero, or OUTPOST_E_BAD_JSON. */
int batch_samples(const char *body, size_t len, const uint8_t *want, batch_sample_fn fn, void *arg,
                  int64_t *bad);

#endif
