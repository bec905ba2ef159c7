/* The registry of hosts: enrollment, the host routes, beats and signs of life, the down sweep,
 * and host selection (the one rule by which tasks, `hosts ls -t` and metric queries pick
 * hosts). Loop thread only. */
#ifndef OUTPOST_HUB_REGISTRY_H
#define OUTPOST_HUB_REGISTRY_H

#include <jansson.h>
#include <stddef.h>

struct hub;
struct hub_caller;
struct httpd_req;
struct registry;

/* What the registry asks of the agents' link without knowing it (agents.c provides them). */
struct registry_hooks {
	/* Whether host's long-poll is held on a healthy connection: the down sweep spares it. */
	int (*keeps_up)(void *arg, const char *host);
	/* A host was just revoked or removed: its held poll ends now with why (and, in scale
	 * mode, its ZooKeeper nodes go). */
	void (*cut_off)(void *arg, const char *host, const char *why);
	/* A host was accepted (enrolled with a token, or by an operator), with the key it
	 * enrolled with; answer: the enrollment answer to add to, or NULL. May be NULL. */
	void (*accepted)(void *arg, const char *host, const char *pubkey, json_t *answer);
	/* Whether this hub does the down sweep now (scale mode: the leader only). NULL: always. */
	int (*sweeps)(void *arg);
	void *arg;
};

int registry_new(const struct registry_hooks *hooks, struct registry **out);
void registry_free(struct registry *r); /* NULL ok */

/* Routes (ctx is the struct hub). */
void registry_enroll(void *ctx, struct httpd_req *req);
void registry_hosts_list(void *ctx, struct httpd_req *req);
void registry_host_get(void *ctx, struct httpd_req *req);
void registry_host_accept(void *ctx, struct httpd_req *req);
void registry_host_reject(void *ctx, struct httpd_req *req);
void registry_host_revoke(void *ctx, struct httpd_req *req);
void registry_host_remove(void *ctx, struct httpd_req *req);
void registry_host_labels(void *ctx, struct httpd_req *req);
void registry_beat(void *ctx, struct httpd_req *req);

/* A signed agent request that got through is a sign of life, as a beat is (without facts). */
void registry_alive(struct hub *h, struct hub_caller *c);
/* Every second: hosts without a sign of life for missed_beats intervals are marked down. */
void registry_tick(struct hub *h);

/* The ids (a new array) of the hosts a selector matches: accepted ones (up, down), or with
 * any_state also pending and revoked ones (REGISTRY_ANY_CACHED: from a registry snapshot up to
 * 2 s old, for dashboards; REGISTRY_ANY: read afresh). 0 (the array may be empty), or BAD_ARGS
 * with msg for a selector that does not parse or names an unknown key. */
#define REGISTRY_ANY_CACHED 1
#define REGISTRY_ANY 2
int registry_select(struct hub *h, const char *target, int any_state, json_t **ids, char *msg,
                    size_t msglen);
/* The one path of host selection, under registry_select and `hosts ls`: the hosts themselves
 * (a new array of borrowed-and-shared objects from one registry snapshot, each with the
 * "attrs" selectors see; copy before changing one). target NULL: every host. */
int registry_match(struct hub *h, const char *target, int any_state, json_t **hosts, char *msg,
                   size_t msglen);
/* A host enrolled, changed state or labels: the next REGISTRY_ANY_CACHED selection reads the
 * registry afresh (a console's list shows an accepted host at once). */
void registry_changed(struct hub *h);

#endif
