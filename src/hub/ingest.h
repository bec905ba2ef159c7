/* Agents' metric batches (ingest.c): checked, deduplicated, group-committed to the
 * time-series store. Loop thread only. */
#ifndef OUTPOST_HUB_INGEST_H
#define OUTPOST_HUB_INGEST_H

struct hub;
struct httpd_req;
struct ingest;
struct buf;

int ingest_new(struct hub *h, struct ingest **out);
void ingest_free(struct ingest *in); /* answers what waits; NULL ok */
/* POST /api/v1/agents/<id>/metrics (ctx is the struct hub). */
void ingest_agent_metrics(void *ctx, struct httpd_req *req);
/* A metric post its route refused as too large on arrival: counted as a bad request. */
void ingest_refused_large(struct ingest *in);
/* Writes the pending samples and answers the agents waiting for them. */
void ingest_commit(struct ingest *in);
void ingest_stats(const struct ingest *in, struct buf *b);

#endif
