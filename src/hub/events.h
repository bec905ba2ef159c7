/* Events (docs/protocol.md, "Events"): what agents' plugins publish on their "events" stream,
 * what other systems post, beside the hub's own host events (up, down, enrolled ...); one
 * table behind the store, one listing. Loop thread only. */
#ifndef OUTPOST_HUB_EVENTS_H
#define OUTPOST_HUB_EVENTS_H

#include <stddef.h>
#include <stdint.h>

struct hub;
struct httpd_req;
struct batch_post;
struct buf;

/* The events batches of an agent's post (post->b[i].events, after batch_scan) that want[i]
 * marks: each batch's events checked and stored under the keys that make a replay store
 * nothing twice (host, epoch, seq, place). A batch whose events are not all well-formed is
 * refused whole: its reason is set in post->b[i].bad and nothing of it is stored. 0, or a
 * negative code when the store failed (the agent sends again). */
int events_from_agent(struct hub *h, const char *host_id, const char *body, size_t len,
                      struct batch_post *post, const uint8_t *want);

/* GET /api/v1/events and POST /api/v1/events (ctx is the struct hub). */
void events_api_list(void *ctx, struct httpd_req *req);
void events_api_post(void *ctx, struct httpd_req *req);
void events_stats(const struct hub *h, struct buf *b);

#endif
