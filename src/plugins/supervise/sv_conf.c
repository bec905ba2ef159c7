/* The supervise plugin's config: rows for the table-driven reader and the checks beyond types
 * and ranges, each error naming its key. */
#include "sv_conf.h"
#include "plugins/cgroup.h"
#include "core/wire.h"

#include <outpost/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(m, t, lo, hi, d, h) CONF_KEY(struct sv_conf, m, t, lo, hi, d, CONF_RELOAD, h)
#define E(m, t, lo, hi, d, h)                                                                      \
	CONF_KEY_AT(struct sv_agent_conf, "agents." #m, m, t, lo, hi, d, CONF_RELOAD, h)

/* clang-format off */
static const struct conf_field sv_schema[] = {
    S(interval_ms, CONF_INT, 100, 60000, "1000", "how often exits, health deadlines, memory and logs are checked"),
    S(metrics_s, CONF_INT, 1, 3600, "30", "how often state, restarts, memory and CPU go to the hub"),
    S(cgroup_root, CONF_STRING, 0, 0, "\"/sys/fs/cgroup\"", "where the cgroup v2 hierarchy is mounted"),
    S(cgroup_parent, CONF_STRING, 0, 0, "\"/outpost-supervise\"", "the cgroup the agents' cgroups are made in"),
    CONF_LIST(struct sv_conf, agents, struct sv_agent_conf, CONF_RELOAD, "the foreign agents"),
    E(name, CONF_STRING, 0, 0, NULL, "1 to 32 of a-z 0-9 _, starting with a letter"),
    E(command, CONF_STRING_ARRAY, 0, 0, NULL, "argv of the agent, in the foreground"),
    E(env, CONF_STRING_ARRAY, 0, 0, "[]", "NAME=value added to the clean environment"),
    E(user, CONF_STRING, 0, 0, NULL, "the user it runs as (default: the agent's)"),
    E(cwd, CONF_STRING, 0, 0, "\"/\"", "its working directory"),
    E(restart, CONF_STRING, 0, 0, "\"always\"", "always, on-failure or never"),
    E(backoff_ms, CONF_INT, 10, 3600000, "1000", "the first wait before a restart"),
    E(backoff_max_ms, CONF_INT, 10, 3600000, "60000", "the wait doubles up to this"),
    E(stable_s, CONF_INT, 1, 86400, "60", "running this long resets the wait"),
    E(stop_timeout_ms, CONF_INT, 100, 600000, "10000", "SIGTERM, then SIGKILL after this"),
    E(memory_max, CONF_STRING, 0, 0, NULL, "memory.max: bytes with K/M/G/T, or max"),
    E(cpu_max, CONF_STRING, 0, 0, NULL, "cpu.max: \"50%\" of one CPU, or QUOTA PERIOD"),
    E(health, CONF_STRING_ARRAY, 0, 0, "[]", "argv of the health check: exit 0 is healthy"),
    E(health_interval_ms, CONF_INT, 100, 86400000, "10000", "how often it runs"),
    E(health_timeout_ms, CONF_INT, 100, 600000, "5000", "a check running longer failed"),
    E(health_retries, CONF_INT, 1, 100, "3", "failed checks in a row before a restart"),
    E(version, CONF_STRING_ARRAY, 0, 0, "[]", "argv that prints the version"),
    E(log, CONF_STRING, 0, 0, NULL, "its output is appended here, and tailed for errors"),
    E(log_match, CONF_STRING_ARRAY, 0, 0, "[\"error\", \"fatal\", \"panic\"]",
      "a log line holding one of these (any case) is an event"),
    E(binary, CONF_STRING, 0, 0, NULL, "the file supervise.upgrade replaces (default command[0])"),
    {NULL},
};
/* clang-format on */

static int path_ok(const char *s)
{
	return s && s[0] == '/' && strlen(s) < 1024 && !strstr(s, "/../") && !strstr(s, "/./") &&
	       !strstr(s, "//");
}

static int argv_ok(const struct conf_strv *v, int need)
{
	if (v->n == 0)
		return !need;
	if (v->n > 64)
		return 0;
	for (size_t i = 0; i < v->n; i++)
		if (strlen(v->v[i]) > 4096)
			return 0;
	return v->v[0][0] != '\0';
}

void sv_conf_limits(const struct sv_agent_conf *a, char mem[32], char cpu[48])
{
	json_t *v;

	mem[0] = cpu[0] = '\0';
	if (a->memory_max) {
		v = json_string(a->memory_max);
		if (cg_parse_memory(v, mem, 32) < 0)
			mem[0] = '\0';
		json_decref(v);
	}
	if (a->cpu_max) {
		v = json_string(a->cpu_max);
		if (cg_parse_cpu(v, cpu, 48) < 0)
			cpu[0] = '\0';
		json_decref(v);
	}
}

const char *sv_conf_binary(const struct sv_agent_conf *a)
{
	return a->binary ? a->binary : a->command.n ? a->command.v[0] : NULL;
}

/* An error at agents[i].KEY: fmt starts with the key. */
#define BAD(fmt, ...)                                                                              \
	do {                                                                                       \
		snprintf(msg, msglen, SV_WHERE ".agents[%zu]." fmt, i, ##__VA_ARGS__);             \
		return OUTPOST_E_BAD_ARGS;                                                         \
	} while (0)

static int sv_check_agent(const struct sv_agent_conf *agents, size_t i, char *msg, size_t msglen)
{
	const struct sv_agent_conf *a = &agents[i];
	char mem[32], cpu[48];
	json_t *v;
	int bad;

	if (!a->name || !wire_name_ok(a->name))
		BAD("name: required, 1 to 32 of a-z 0-9 _, starting with a letter");
	for (size_t j = 0; j < i; j++)
		if (strcmp(agents[j].name, a->name) == 0)
			BAD("name: '%s' is also agents[%zu]'s name", a->name, j);
	if (!argv_ok(&a->command, 1))
		BAD("command: required, the agent's argv: 1 to 64 strings, the first not empty "
		    "([\"/usr/sbin/secagent\", \"--foreground\"])");
	if (!argv_ok(&a->health, 0) || !argv_ok(&a->version, 0))
		BAD("%s: an argv of 1 to 64 strings, the first not empty, or []",
		    argv_ok(&a->health, 0) ? "version" : "health");
	for (size_t j = 0; j < a->env.n; j++)
		if (!strchr(a->env.v[j], '=') || a->env.v[j][0] == '=')
			BAD("env[%zu]: NAME=value", j);
	if (strcmp(a->restart, "always") && strcmp(a->restart, "on-failure") &&
	    strcmp(a->restart, "never"))
		BAD("restart: always, on-failure or never (it is '%.32s')", a->restart);
	if (a->backoff_max_ms < a->backoff_ms)
		BAD("backoff_max_ms: at least backoff_ms (%lld)", (long long)a->backoff_ms);
	if (a->memory_max) {
		v = json_string(a->memory_max);
		bad = cg_parse_memory(v, mem, sizeof(mem)) < 0;
		json_decref(v);
		if (bad)
			BAD("memory_max: %s", CG_MEMORY_HELP);
	}
	if (a->cpu_max) {
		v = json_string(a->cpu_max);
		bad = cg_parse_cpu(v, cpu, sizeof(cpu)) < 0;
		json_decref(v);
		if (bad)
			BAD("cpu_max: %s", CG_CPU_HELP);
	}
	if (a->log && !path_ok(a->log))
		BAD("log: an absolute canonical path");
	if (!path_ok(a->cwd))
		BAD("cwd: an absolute canonical path");
	if (a->binary && !path_ok(a->binary))
		BAD("binary: an absolute canonical path");
	for (size_t j = 0; j < a->log_match.n; j++)
		if (!a->log_match.v[j][0] || strlen(a->log_match.v[j]) > 128)
			BAD("log_match[%zu]: 1 to 128 bytes", j);
	if (a->health_timeout_ms > a->health_interval_ms)
		BAD("health_timeout_ms: at most health_interval_ms (%lld)",
		    (long long)a->health_interval_ms);
	return 0;
}

static int sv_check(const void *conf, char *msg, size_t msglen)
{
	const struct sv_conf *c = conf;
	const struct sv_agent_conf *agents = c->agents.v;
	int rc;

	if (!path_ok(c->cgroup_root)) {
		snprintf(msg, msglen, SV_WHERE ".cgroup_root: an absolute canonical path");
		return OUTPOST_E_BAD_ARGS;
	}
	if (!path_ok(c->cgroup_parent)) {
		snprintf(msg, msglen,
		         SV_WHERE
		         ".cgroup_parent: an absolute cgroup path (\"/outpost-supervise\")");
		return OUTPOST_E_BAD_ARGS;
	}
	if (c->agents.n > SV_AGENTS_MAX) {
		snprintf(msg, msglen, SV_WHERE ".agents: at most %d", SV_AGENTS_MAX);
		return OUTPOST_E_BAD_ARGS;
	}
	for (size_t i = 0; i < c->agents.n; i++)
		if ((rc = sv_check_agent(agents, i, msg, msglen)) < 0)
			return rc;
	return 0;
}

const struct conf_kind sv_conf_kind = {sv_schema, sizeof(struct sv_conf), sv_check};

int sv_conf_new(const json_t *section, struct sv_conf **out, char *msg, size_t msglen)
{
	char sub[400];
	void *c = NULL;
	int rc = conf_new(&sv_conf_kind, section, &c, sub, sizeof(sub));

	*out = c;
	if (rc < 0) {
		/* conf_new's own messages name the key inside the section; the checks name it
		 * whole. */
		if (strncmp(sub, SV_WHERE, strlen(SV_WHERE)) == 0)
			snprintf(msg, msglen, "%s", sub);
		else
			snprintf(msg, msglen, SV_WHERE ": %s", sub);
		return OUTPOST_E_BAD_ARGS;
	}
	return 0;
}
