/* The batch the metrics plugin publishes for the hub after each grid sample (docs/metrics.md,
 * "Shipping to the hub"): {"t": ms, "samples": [[key, value], ...]}. A key is the series in
 * Prometheus exposition form: the name, then {...} only when there are labels, labels sorted
 * by name, values escaped (\\ \" \n). Values are JSON numbers; the non-finite ones the strings
 * "NaN", "+Inf", "-Inf". */
#ifndef OUTPOST_METRICS_BATCH_H
#define OUTPOST_METRICS_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* The hub refuses longer keys (counted as rejected samples): the plugin never makes them. */
#define BATCH_KEY_MAX 1024

/* The length of the exposition form of a packed key (mtab_key format: name '\0' (label '\0'
 * value '\0')*, labels sorted) with one more label xk=xv in its sorted place (xk NULL: none). */
size_t batch_key_len(const char *key, size_t keylen, const char *xk, const char *xv);
/* Appends that form to out. 0, or -1 when memory ran out. */
int batch_key(struct buf *out, const char *key, size_t keylen, const char *xk, const char *xv);
/* The batch is built as text in one buffer, kept from sample to sample: no tree, no copy.
 * batch_begin resets out and opens {"t":t,"samples":[, batch_add appends one [key, value],
 * batch_end closes it. Each returns 0, or -1 when memory ran out. */
int batch_begin(struct buf *out, int64_t t);
int batch_end(struct buf *out);
/* Appends a sample's value: an integer when v is integral (|v| < 2^53: exact and short), a
 * real otherwise (17 significant digits, as jansson writes it), "NaN" / "+Inf" / "-Inf" when
 * not finite. */
int batch_value(struct buf *out, double v);
/* Appends [key, value] to the batch in out, the key made in scratch (reset here) and written
 * as a JSON string (escaped as jansson does). 0; 1 when the sample is left out: a key over
 * BATCH_KEY_MAX or not valid UTF-8 (a mount point's raw bytes); -1 when memory ran out (out
 * is then as before the call). */
int batch_add(struct buf *out, struct buf *scratch, const char *key, size_t keylen, const char *xk,
              const char *xv, double v);

#endif
