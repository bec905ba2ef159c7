/* The supervise plugin's section (plugins.supervise) as a typed struct, read by the daemons'
 * one table-driven reader (core/conf.h) and checked whole: a reload builds a new one, and a
 * section that does not pass keeps the agents as they run. docs/plugins/supervise.md lists
 * the keys. Every member is 8 bytes or a multiple (conf.h). */
#ifndef OUTPOST_PLUGINS_SV_CONF_H
#define OUTPOST_PLUGINS_SV_CONF_H

#include "core/conf.h"

#define SV_WHERE "plugins.supervise"
#define SV_AGENTS_MAX 32

/* One foreign agent. */
struct sv_agent_conf {
	const char *name;
	struct conf_strv command, env, health, version, log_match;
	const char *user, *cwd, *restart, *memory_max, *cpu_max, *log, *binary;
	int64_t backoff_ms, backoff_max_ms, stable_s, stop_timeout_ms;
	int64_t health_interval_ms, health_timeout_ms, health_retries;
};

struct sv_conf {
	struct conf_head head;
	int64_t interval_ms, metrics_s;
	const char *cgroup_root, *cgroup_parent;
	struct conf_list agents; /* struct sv_agent_conf */
};

extern const struct conf_kind sv_conf_kind;

/* The section (borrowed JSON) as a struct: 0 and *out (conf_free), or OUTPOST_E_BAD_ARGS with
 * msg naming the key ("plugins.supervise.agents[1].memory_max: ..."). */
int sv_conf_new(const json_t *section, struct sv_conf **out, char *msg, size_t msglen);
/* What memory.max and cpu.max must read for a's limits ("" : none). */
void sv_conf_limits(const struct sv_agent_conf *a, char mem[32], char cpu[48]);
/* The file an upgrade replaces: binary, else command[0]. */
const char *sv_conf_binary(const struct sv_agent_conf *a);

#endif
