/* struct agent, shared by agent.c (life cycle) and api.c (the local API); private to src/agent. */
#ifndef OUTPOST_AGENT_IMPL_H
#define OUTPOST_AGENT_IMPL_H

#include "agent.h"
#include "agent_conf.h"
#include "dispatch.h"
#include "ledger.h"
#include "plugins.h"
#include "taskphase.h"

#include <sqlite3.h>
#include <sys/types.h>

struct httpd;
struct httpd_req;
struct hubtask;
struct link;
struct watch;
struct loop_timer;

struct agent {
	struct loop *loop;
	struct logger *log;
	struct agent_conf *conf; /* what runs; owned, swapped whole on reload */
	char *state_dir;
	int lock_fd;
	sqlite3 *db;
	struct ledger *ledger;
	struct watch *watch;
	struct plugin_host host;
	struct plugins *plugins;
	struct dispatch *dispatch;
	struct httpd *httpd;        /* the local API; NULL for a link-only agent */
	struct httpd_route *routes; /* our copy of api_routes, limits from config */
	struct hubtask *hubtask;    /* tasks from the hub; NULL without hub.url */
	struct link *link;          /* to the hub; NULL without hub.url */
	struct taskphases phases;   /* where hub tasks spend their time (taskphase.h) */
	struct loop_timer *prune_timer;
	struct loop_timer *drain_timer;
	int64_t started_ms;  /* CLOCK_REALTIME */
	int64_t drain_until; /* CLOCK_MONOTONIC, while shutting down */
	void (*on_drained)(void *arg);
	void *on_drained_arg;
	int stopping;
	/* The local API's callers (api_auth.c). */
	char *api_token;   /* what TCP callers must show; NULL without TCP */
	int api_group_set; /* api.group names a group of this host */
	gid_t api_gid;
};

/* api.c */
const struct httpd_route *api_routes(size_t *n);
/* The checks of a call's body (parsed): an object of args (an object), id (a string) and
 * timeout_ms (a positive integer), nothing else. 0, or OUTPOST_E_BAD_JSON/BAD_ARGS with msg.
 * Exposed for tests/fuzz/body_fuzz.c. */
int api_body_check(const json_t *body, char *msg, size_t msglen);

/* api_auth.c: the local API's doors. Route roles: reads are open to whoever reaches a
 * listener, op calls are checked (docs/security.md). */
#define API_ROLE_READ 0
#define API_ROLE_CALL 1
#define API_DEFAULT_GROUP "outpost"
/* --check-config's part: listen on loopback only, api.group_ops well formed, api.group a
 * group of this host (the default may be absent). */
int api_auth_check_conf(const struct agent_conf *c, char *msg, size_t msglen);
/* At start: the group's id, and the TCP token (made 0600 on first start) when listen is set. */
int api_auth_open(struct agent *a, char *msg, size_t msglen);
void api_auth_close(struct agent *a);
/* httpd's auth_headers callback: 0, or negative after answering. */
int api_auth_headers(void *ctx, struct httpd_req *req, int role);

#endif
