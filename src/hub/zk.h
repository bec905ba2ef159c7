/* The hub's side of scale mode (docs/scale.md): the ZooKeeper tree, per-host nodes and
 * credentials, queue entries, hub membership, leader election and hosts' liveness from their
 * `alive` nodes. ZooKeeper is reached only from a worker thread of this module; every
 * function here is for the hub's loop thread and never blocks on ZooKeeper. */
#ifndef OUTPOST_HUB_ZK_H
#define OUTPOST_HUB_ZK_H

#include <jansson.h>
#include <stddef.h>

struct hub;
struct hub_conf;
struct hub_zk;

/* The digest user hubs authenticate as. */
#define ZK_HUB_USER "outpost-hub"

/* Starts scale mode when zk.connect is set (h->zk stays NULL otherwise): reads
 * zk.secret_file and starts the worker thread, which connects in the background. */
int zk_start(struct hub *h, char *msg, size_t msglen);
/* Stops the worker (its session closes: the hub's ephemeral nodes go). NULL ok. */
void zk_stop(struct hub_zk *z);

/* A host was accepted (or asked for its credentials): its per-host nodes with ACLs for its
 * digest. mark: it uses the zookeeper link (its queue gets entries from now on). */
void zk_host_nodes(struct hub_zk *z, const char *host, const char *pubkey, int mark);
/* A host was revoked or removed: its per-host nodes go, so its credentials open nothing. */
void zk_host_gone(struct hub_zk *z, const char *host);
/* Tasks became ready for these hosts (an array of ids): entries for the zookeeper-link ones. */
void zk_push(struct hub_zk *z, json_t *ids);
/* A host's final result was stored: its entry of that task goes. */
void zk_result(struct hub_zk *z, const char *task_id, const char *host);
/* A task was cancelled: the entries of these hosts go. */
void zk_cancel(struct hub_zk *z, const char *task_id, json_t *hosts);

/* The host's ZooKeeper credentials for the signed GET /api/v1/agents/<id>/zk: a new object
 * {"connect", "user", "secret", "session_timeout_ms", "hub_acl"}, or NULL (OOM). */
json_t *zk_credentials(struct hub_zk *z, const char *host, const char *pubkey);
/* GET /api/v1/agents/<id>/zk (signed): the caller's credentials; asking makes its nodes
 * and marks it as of the zookeeper link. A hub not in scale mode (z NULL): not_found. */
struct httpd_req;
struct hub_caller;
void zk_agent_credentials(void *ctx, struct httpd_req *req);
/* Non-secret hints for the enrollment answer: {"connect", "session_timeout_ms"}. */
json_t *zk_hint(struct hub_zk *z);

/* Once a second (the leader): last_seen = now, in one statement per 5,000, of the hosts whose
 * alive node it sees, a pass every every_ms (agents.beat_ms: as fresh as a beat). NULL ok. */
void zk_tick(struct hub_zk *z, int64_t every_ms);
/* The down sweep's view: 1 when the host's alive node was seen (leader only). */
int zk_keeps_up(struct hub_zk *z, const char *host);
/* 1 when this hub does the once-per-fleet work now: no ZooKeeper, or the leader whose view of
 * the alive nodes is complete. */
int zk_leads(struct hub_zk *z);
/* For health: {"connected", "registered", "leader", "maintains", "hub_id", "alive",
 * "last_seen_written"}. */
json_t *zk_status(struct hub_zk *z);

/* Config: zk.* checked (hub_conf.c). */
int zk_conf_check(const struct hub_conf *c, char *msg, size_t msglen);

#endif
