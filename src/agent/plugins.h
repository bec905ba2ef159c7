/* The agent's plugin registry: built-in, shared-object and executable plugins behind one
 * table, each with the context (struct outpost_plugin_ctx) that the contract promises. */
#ifndef OUTPOST_AGENT_PLUGINS_H
#define OUTPOST_AGENT_PLUGINS_H

#include <outpost/plugin.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "core/log.h"

struct loop;
struct watch;

/* Services the agent lends to its plugins; owned by the agent (or a test), outlives them. */
struct plugin_host {
	const struct logger *log;
	struct loop *loop;   /* NULL: timers and watches answer unavailable */
	struct watch *watch; /* NULL: watches answer unavailable */
	sqlite3 *db;         /* NULL: persistent state answers unavailable */
	const char *state_dir;
	/* Where outpost_publish sends a batch, on the caller's thread: its compact JSON text
	 * (len bytes, borrowed: copied by the callee if it keeps it past the call). NULL: the
	 * agent has no hub. */
	int (*publish)(void *arg, const char *stream, const char *batch, size_t len);
	void *publish_arg;
};

struct plugin_resident; /* a timer or a watch of one plugin */

struct op_stats {
	atomic_ullong calls;
	atomic_ullong errors;
};

struct outpost_plugin_ctx {
	const struct outpost_plugin *plugin;
	const struct plugin_host *host;
	void *state;
	int enabled;
	const char *kind;             /* "builtin", "shared", "exec" */
	pthread_mutex_t conf_lock;    /* guards config */
	json_t *config;               /* the plugin's section; owned; swapped on reload */
	void *dl;                     /* dlopen handle of a shared-object plugin */
	struct outpost_plugin *owned; /* the table of an executable plugin, freed with us */
	struct plugin_resident *resident;
	int next_resident_id;
	struct op_stats *stats; /* one per op */
	size_t nops;
};

struct plugins;

int plugins_new(const struct plugin_host *host, struct plugins **out);
/* Adds a plugin (not yet initialised). config: its section (borrowed; NULL is {}).
 * A second plugin of the same name is refused (OUTPOST_E_CONFLICT). */
int plugins_add(struct plugins *ps, const struct outpost_plugin *p, const char *kind,
                json_t *config, struct outpost_plugin_ctx **out);
/* Loads every *.so (ABI checked) and every executable file of dir; refuses a directory or file
 * that others than root or the agent's user may write. Bad ones are logged and skipped.
 * conf: the "plugins" config object (sections by plugin name). */
int plugins_load_dir(struct plugins *ps, const char *dir, json_t *conf);
/* Calls init of every plugin in order; a failing one is logged and disabled. */
void plugins_init_all(struct plugins *ps);
struct outpost_plugin_ctx *plugins_find(struct plugins *ps, const char *name);
const struct outpost_op *plugins_find_op(struct outpost_plugin_ctx *pc, const char *op,
                                         size_t *index);
size_t plugins_count(const struct plugins *ps);
struct outpost_plugin_ctx *plugins_at(struct plugins *ps, size_t i);
/* Swaps every plugin's config section for the one in conf (the "plugins" object). */
void plugins_reconfigure(struct plugins *ps, json_t *conf);
/* The description served by GET /v1/plugins. New reference. */
json_t *plugins_describe(struct plugins *ps);
/* fini in reverse order, timers and watches removed, shared objects closed. NULL ok. */
void plugins_free(struct plugins *ps);

/* The executable-plugin kind (execplug.c): builds a plugin table from `path --describe`. */
int execplug_load(const struct logger *log, const char *path, struct outpost_plugin **out);
void execplug_free(struct outpost_plugin *p);

#endif
