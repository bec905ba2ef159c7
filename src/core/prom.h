/* Prometheus text exposition, typed: every family a daemon serves (the agent's and the hub's
 * /metrics, the hub's /federate) gets one # HELP and one # TYPE line before its first sample.
 * The handlers write their samples (with the HELP and TYPE they know); prom_respond fills in
 * what they left out, from one catalog (prom.c) and one naming rule, so a series added
 * anywhere is never served untyped. */
#ifndef OUTPOST_PROM_H
#define OUTPOST_PROM_H

#include "buf.h"

#include <stddef.h>

struct httpd_req;

/* The type of a family no handler declared: the catalog's, else by Prometheus's naming
 * conventions, which the agent enforces on what it ships (docs/metrics.md): "_total" is a
 * counter, everything else a gauge. */
const char *prom_type(const char *family);

/* text (len bytes, lines of the text format) with the missing # HELP and # TYPE lines added,
 * appended to out. A family is the metric name, or for a family declared a histogram or
 * summary the name less _bucket, _sum or _count. 0 or -1 (out of memory). */
int prom_complete(const char *text, size_t len, struct buf *out);

/* Answers 200 with text completed by prom_complete, as text/plain; version=0.0.4. */
void prom_respond(struct httpd_req *req, const char *text, size_t len);

#endif
