/* remote_write: the hub's ingested samples sent on to Prometheus-compatible stores
 * (docs/metrics.md#remote-write). The loop thread hands batches to one worker thread per
 * target through a bounded queue; the worker encodes, compresses and POSTs them. */
#ifndef OUTPOST_HUB_RWRITE_H
#define OUTPOST_HUB_RWRITE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct rwrite;
struct hub_conf;
struct logger;
struct buf;

/* Checks the remote_write targets beyond the schema (url scheme, bounds). */
int rwrite_conf_check(const struct hub_conf *c, char *msg, size_t msglen);
/* Starts one worker per target of conf's remote_write; *out is NULL when there is none. */
int rwrite_start(const struct hub_conf *c, struct logger *log, struct rwrite **out, char *msg,
                 size_t msglen);
/* Loop thread: one stored sample of host's series key (canonical, tsdb_key.c). */
void rwrite_add(struct rwrite *rw, const char *host, const char *key, size_t keylen, int64_t t,
                double v);
/* Loop thread: hands what rwrite_add gathered to the workers (or drops it, queues full). */
void rwrite_flush(struct rwrite *rw);
/* Loop thread: forgets what rwrite_add gathered since the last flush (the store's write failed). */
void rwrite_discard(struct rwrite *rw);
void rwrite_stats(struct rwrite *rw, struct buf *b);
/* Stops the workers; samples still queued are lost. rwrite_stop(NULL) is a no-op. */
void rwrite_stop(struct rwrite *rw);

#endif
