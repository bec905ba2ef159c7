/* outpost-agent: the agent library behind the daemons' shared main(). */
#include "agent.h"
#include "core/daemon.h"
#include "plugins/builtin.h"

#include <malloc.h>
#include <stdlib.h>

#define AGENT_GRACE_MS 30000

static int agent_start(struct loop *loop, json_t *conf, struct logger *log, void **obj, char *msg,
                       size_t msglen)
{
	return agent_new(loop, builtin_plugins, conf, log, (struct agent **)obj, msg, msglen);
}

static void agent_stop(void *obj, void (*done)(void *arg), void *arg)
{
	agent_shutdown(obj, AGENT_GRACE_MS, done, arg);
}

static int agent_reload_obj(void *obj, json_t *conf, char *msg, size_t msglen)
{
	return agent_reload(obj, conf, msg, msglen);
}

static void agent_free_obj(void *obj)
{
	agent_free(obj);
}

static const struct daemon_flag agent_flags[] = {
    {"hub", "hub.url", "  --hub URL           enroll with and connect to this hub (hub.url)"},
    {"token", "hub.token",
     "  --token TOKEN       enrollment token for the first start (hub.token)"},
    {NULL, NULL, NULL},
};

static const struct daemon_ops agent_daemon = {
    .name = "outpost-agent",
    .summary = "the Outpost agent: runs its hub's tasks and reports this host",
    .description =
        "outpost-agent runs on every server of a fleet, as root, in one process. It takes "
        "signed tasks from its hub (exec: commands and scripts; file: copies; sys: facts), "
        "reports their outcomes, ships the host's metrics, and answers a local API on "
        "loopback and a unix socket (POST /v1/PLUGIN/OP).\n\n"
        "Its first start with a hub (--hub, --token, or hub.url and hub.token in the "
        "configuration) makes its key pair and enrolls with the hub. Commands run with a "
        "clean environment, umask 022, their own process group and a deadline; what a "
        "command starts outside its group (setsid) survives agent restarts. Installed from "
        "the outpost-agent package it runs under systemd (outpost-agent.service).",
    .default_config = "/etc/outpost/agent.conf",
    .state_help = "state directory (database, lock, plugin state)",
    .listen_help = "local API address (\"\" for none)",
    .flags = agent_flags,
    .defaults = agent_conf_defaults,
    .check = agent_conf_check,
    .start = agent_start,
    .reload = agent_reload_obj,
    .shutdown = agent_stop,
    .free = agent_free_obj,
};

int main(int argc, char **argv)
{
	/* One malloc arena for every thread. glibc gives each new thread an arena of its own
	 * (up to 8 per core), and each keeps what its thread once touched: the dispatch workers'
	 * and the resident plugins' threads (security's checker, cleanup's runs) each held
	 * 80-170 kB that way, more than all their live data. The agent's threads rarely allocate
	 * at the same moment, so sharing one costs no measurable time (docs/BENCHMARKS.md, "Host
	 * duties"). MALLOC_ARENA_MAX in the environment still decides, for experiments. */
	if (!getenv("MALLOC_ARENA_MAX"))
		mallopt(M_ARENA_MAX, 1);
	return daemon_main(&agent_daemon, argc, argv);
}
