/* outpost-sim: N virtual agents in one process, on the real agent code (docs/sim.md). Each
 * virtual agent is the real link (struct link_ops, with its own key and state directory), the
 * real task verification (hubtask.c), its own ledger, outbox and spool on a database of its
 * own; what would cost per agent what thousands cannot pay is shared: one loop, one dispatcher
 * (one pool of workers serving every agent's ledger), one set of plugins that answer like the
 * real ones without touching the host, one metrics timer for the whole fleet. */
#ifndef OUTPOST_SIM_SIM_H
#define OUTPOST_SIM_SIM_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#include "agent/agent_conf.h"
#include "agent/plugins.h"
#include "core/buf.h"
#include "core/log.h"

struct loop;
struct loop_timer;
struct dispatch;
struct ledger;
struct hubtask;
struct link;
struct httpd;
struct sim;

/* What a virtual agent is doing: the process of a real agent and its network. */
enum vagent_state {
	VAGENT_OFF = 0, /* not started yet, or killed: no process (its disk, the database, stays) */
	VAGENT_STARTING, /* its start is scheduled (ramp, restart) */
	VAGENT_RUNNING,
	VAGENT_PAUSED, /* alive but cut off the network: it samples into its spool, sends nothing */
};

struct vagent {
	struct sim *sim;
	unsigned index;
	char host_id[72];
	char source[20];   /* the 127.0.x.y its connections leave from */
	char *dir;         /* state directory: agent.key, hub.json, hub.crt */
	struct logger log; /* ident: the host id */
	enum vagent_state state;
	sqlite3 *db; /* the host's disk: ledger, outbox, spool; outlives kills */
	struct ledger *ledger;
	struct hubtask *hubtask;
	struct link *link;
	struct loop_timer *start_timer;
	json_t *facts;
	uint64_t samples, batches; /* published into the spool (kept across kills) */
	uint64_t lives;            /* starts */
};

/* outpost-sim's configuration, read once (sim_conf.c) and swapped whole on reload; the hub
 * section is the agent's own (agent_conf.h). To add a key: a member here, one row in
 * sim_schema, a line in docs/sim.md; tests/sim/sim_conf_test.c fails when they disagree. */
struct sim_conf {
	struct conf_head head;
	const char *listen, *state_dir;
	struct conf_log log;
	struct {
		struct agent_hub_link link;
		const char *mode; /* "http" or "zookeeper": the link every virtual agent runs */
	} hub;
	struct {
		const char *connect;        /* NULL: the hub's */
		int64_t session_timeout_ms; /* 0: the hub's */
	} zk;
	int64_t agents;
	const char *host_prefix; /* host ids: prefix + 5 digits */
	int64_t sources;         /* source addresses; 0: as many as the port space needs */
	int64_t ramp_per_s;      /* agents started per second at start */
	struct {
		int64_t interval_ms; /* 0: none */
		int64_t series;      /* per agent */
	} metrics;
	struct {
		const char *mode; /* "real": exec.run forks the real command */
	} exec;
	struct {
		int64_t workers; /* the shared dispatcher's threads */
	} dispatch;
};
/* The kind for conf_new, conf_reload, conf_free (core/conf.h): its rows, its struct, its
 * checks beyond types and ranges. */
extern const struct conf_kind sim_conf_kind;

/* The plugins every virtual agent shares: the real tables (names, argument checks, flags)
 * with handlers that answer at once and touch nothing of this host. */
struct sim_plugin_set {
	struct outpost_op sys_ops[3], exec_ops[2];
	struct outpost_plugin sys, exec;
	const struct outpost_plugin *table[3]; /* NULL-terminated */
};

struct sim {
	struct loop *loop;
	struct sim_plugin_set pset;
	struct sim_conf *conf; /* what runs; owned, swapped whole on reload */
	struct logger *log;
	char *state_dir;  /* conf's, kept for the plugin host */
	unsigned sources; /* source addresses in use (sources, or as many as needed) */
	int zk_mode;      /* hub.mode "zookeeper": each virtual agent runs link_zk.c */
	struct plugin_host host;
	struct plugins *plugins;
	struct dispatch *dispatch;
	struct vagent *v;
	unsigned n;
	struct loop_timer *metrics_timer, *prune_timer;
	int64_t last_t; /* the grid time last sampled */
	struct buf batch, scratch;
	uint64_t publish_errors;
	int sampling; /* the metrics timer samples (POST /v1/metrics turns it off and on) */
	struct httpd *api;
	char *api_token;
	int lock_fd;
};

/* conf: the effective config (borrowed), checked and read here. */
int sim_new(struct loop *loop, const json_t *conf, struct logger *log, struct sim **out, char *msg,
            size_t msglen);
void sim_free(struct sim *s); /* NULL ok */

/* Actions on one virtual agent; each is a no-op when it is already in the target state.
 * 1 when the state changed, 0 when not. */
int vagent_start(struct vagent *v, int64_t delay_ms); /* OFF -> STARTING -> RUNNING */
int vagent_kill(struct vagent *v);                    /* -> OFF */
int vagent_pause(struct vagent *v);                   /* RUNNING -> PAUSED */
int vagent_resume(struct vagent *v);                  /* PAUSED -> RUNNING */
/* The first half of a kill, for a group: a running agent's link stops (its requests dropped;
 * a ZooKeeper session starts closing on its own thread). NULL ok. vagent_kill follows. */
void sim_cut_link(struct vagent *v);
const char *vagent_state_name(enum vagent_state st);
/* {host_id, state, source, samples, batches, lives, link: the link's status or null}. */
json_t *vagent_status(const struct vagent *v);
/* Counts by state and the links' sums. */
json_t *sim_status(struct sim *s);

/* sim_plugins.c: fills set from the real sys and exec plugins; exec_real keeps the real
 * exec.run (it forks). */
void sim_plugins_make(struct sim_plugin_set *set, int exec_real);
/* Made-up facts of host index i (stable per index), the shape sys.facts has. New ref. */
json_t *sim_facts(const char *host_id, unsigned index);

/* sim_api.c: the control API on loopback (docs/sim.md). */
int sim_api_start(struct sim *s, const char *listen, char *msg, size_t msglen);
void sim_api_stop(struct sim *s);

/* sim_conf.c */
json_t *sim_conf_defaults(void);
int sim_conf_check(const json_t *conf, char *msg, size_t msglen);
/* Applies a reloaded config (only log.level takes effect without a restart). */
int sim_reload(struct sim *s, const json_t *conf, char *msg, size_t msglen);

#endif
