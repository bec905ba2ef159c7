/* outpost-sim: N virtual agents on the real agent code in one process (docs/sim.md), behind
 * the daemons' shared main(). */
#include "sim.h"
#include "core/daemon.h"

static int sim_start(struct loop *loop, json_t *conf, struct logger *log, void **obj, char *msg,
                     size_t msglen)
{
	return sim_new(loop, conf, log, (struct sim **)obj, msg, msglen);
}

static int sim_reload_obj(void *obj, json_t *conf, char *msg, size_t msglen)
{
	return sim_reload(obj, conf, msg, msglen);
}

/* Every agent stops at once, as a host losing power would: results not yet sent stay in the
 * agents' outboxes, which go with the process. */
static void sim_shutdown(void *obj, void (*done)(void *arg), void *arg)
{
	struct sim *s = obj;

	for (unsigned i = 0; i < s->n; i++)
		sim_cut_link(&s->v[i]); /* ZooKeeper sessions close side by side (sim_api.c) */
	for (unsigned i = 0; i < s->n; i++)
		vagent_kill(&s->v[i]);
	done(arg);
}

static void sim_free_obj(void *obj)
{
	sim_free(obj);
}

static const struct daemon_flag sim_flags[] = {
    {"hub", "hub.url", "  --hub URL           the hub every virtual agent enrolls with (hub.url)"},
    {"token", "hub.token", "  --token TOKEN       enrollment token for all of them (hub.token)"},
    {"ca", "hub.ca", "  --ca FILE           the hub's certificate or CA (hub.ca)"},
    {NULL, NULL, NULL},
};

static const struct daemon_ops sim_daemon = {
    .name = "outpost-sim",
    .summary = "runs N virtual Outpost agents in one process to load a hub",
    .description =
        "outpost-sim runs many virtual agents on the real agent code: each enrolls with its "
        "own key, holds its long-poll, beats, verifies and runs signed tasks once through its "
        "own ledger, reports results through its outbox and ships synthetic metrics through "
        "its spool. Plugins answer like the real ones without touching this host (exec.run "
        "does not fork unless exec.mode is \"real\"). A control API on loopback kills, "
        "pauses and restarts groups of them (docs/sim.md). It is a test and benchmark "
        "instrument, not a daemon for production hosts.",
    .default_config = "/etc/outpost/sim.conf",
    .state_help = "one directory per virtual agent (key, pinned hub), the control token",
    .listen_help = "control API address (loopback only)",
    .flags = sim_flags,
    .defaults = sim_conf_defaults,
    .check = sim_conf_check,
    .start = sim_start,
    .reload = sim_reload_obj,
    .shutdown = sim_shutdown,
    .free = sim_free_obj,
};

int main(int argc, char **argv)
{
	return daemon_main(&sim_daemon, argc, argv);
}
