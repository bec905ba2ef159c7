/* The hub's end of the agents' link (embedded mode): their task long-polls, one per host,
 * each a suspended request and not a thread, answered with signed per-host copies. */
#ifndef OUTPOST_HUB_AGENTS_H
#define OUTPOST_HUB_AGENTS_H

#include <jansson.h>
#include <stddef.h>

struct hub;
struct httpd_req;
struct agents;
struct hub_conf;

int agents_new(struct hub *h, struct agents **out);
void agents_free(struct agents *a); /* answers what is held first; NULL ok */
/* Takes the keepalive settings a held poll's connection gets from conf (agents.beat_ms,
 * agents.missed_beats): at start and on reload. */
void agents_configure(struct agents *a, const struct hub_conf *c);

/* Task copies handed out at once (a poll; a ZooKeeper queue's write, zk.c). */
#define AGENTS_TAKE_MAX 64
/* Turns store items [{"task": {...}}] into signed copies in place (the one signing of task
 * copies, whatever carries them). */
int agents_sign(struct hub *h, json_t *items);

/* GET /api/v1/agents/<id>/tasks (ctx is the struct hub). */
void agents_poll(void *ctx, struct httpd_req *req);

/* Answers the poll of each host in ids (an array) that has something queued. */
void agents_wake_hosts(struct agents *a, json_t *ids);
/* Ends the held poll of a host that was just revoked or removed with `unauthorized` and why,
 * as its next request would be answered: an idle agent, which beats no more while its poll is
 * held, learns it at once, not at the end of the poll. (registry_hooks.cut_off) */
void agents_cut_off(void *a, const char *host, const char *why);
/* Whether host's poll is held on a connection whose kernel answers keepalive probes: a sign of
 * life the down sweep honours. (registry_hooks.keeps_up) */
int agents_keeps_up(void *a, const char *host);
/* Answers every held poll with no tasks (shutdown). */
void agents_release_all(struct agents *a);
/* Polls held now (/metrics: outpost_hub_agents_connected). */
size_t agents_connected(const struct agents *a);

#endif
