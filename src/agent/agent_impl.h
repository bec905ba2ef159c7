/* struct agent, shared by agent.c (life cycle) and api.c (the local API); private to src/agent. */
#ifndef OUTPOST_AGENT_IMPL_H
#define OUTPOST_AGENT_IMPL_H

#include "agent.h"
#include "dispatch.h"
#include "ledger.h"
#include "plugins.h"

#include <sqlite3.h>

struct httpd;
struct hubtask;
struct link;
struct watch;
struct loop_timer;

struct agent {
	struct loop *loop;
	struct logger *log;
	json_t *conf; /* effective config; owned */
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
	struct loop_timer *prune_timer;
	struct loop_timer *drain_timer;
	int64_t started_ms;  /* CLOCK_REALTIME */
	int64_t drain_until; /* CLOCK_MONOTONIC, while shutting down */
	void (*on_drained)(void *arg);
	void *on_drained_arg;
	int stopping;
};

/* api.c */
const struct httpd_route *api_routes(size_t *n);

#endif
