/* outpost-hub: the hub library behind the daemons' shared main(). */
#include "hub.h"
#include "rules.h"
#include "core/daemon.h"

static int hub_start(struct loop *loop, json_t *conf, struct logger *log, void **obj, char *msg,
                     size_t msglen)
{
	return hub_new(loop, conf, log, (struct hub **)obj, msg, msglen);
}

static int hub_reload_obj(void *obj, json_t *conf, char *msg, size_t msglen)
{
	return hub_reload(obj, conf, msg, msglen);
}

static void hub_stop(void *obj, void (*done)(void *arg), void *arg)
{
	hub_shutdown(obj, done, arg);
}

static void hub_free_obj(void *obj)
{
	hub_free(obj);
}

/* --check-config reads the rules file as a start would (its names are checked against the
 * store's rules only at start: --check-config opens no store). */
static int hub_check_files(const json_t *conf, char *msg, size_t msglen)
{
	const char *file =
	    json_string_value(json_object_get(json_object_get(conf, "rules"), "file"));

	return rules_file_check(file, msg, msglen);
}

static const struct daemon_ops hub_daemon = {
    .name = "outpost-hub",
    .summary = "the Outpost hub: registry, task engine and metrics of a fleet",
    .description =
        "outpost-hub keeps the registry of hosts, signs and fans out tasks to their agents, "
        "stores their results and metrics, and serves the operator CLI (outpost), the REST "
        "API under /api/v1/, its own metrics at /metrics and the hosts' at /federate, over "
        "HTTPS.\n\n"
        "Its first start makes its TLS certificate (state directory, hub.crt) and signing "
        "key, and writes an admin operator token to admin.token (mode 0600). Set listen and "
        "tls_names in the configuration before that first start. Installed from the "
        "outpost-hub package it runs as the system user outpost-hub under systemd "
        "(outpost-hub.service), with /var/lib/outpost-hub as its state directory.",
    .default_config = "/etc/outpost/hub.conf",
    .state_help = "state directory (database, keys, certificate, admin token)",
    .listen_help = "address for agents, the CLI and the console",
    .flags = NULL,
    .defaults = hub_conf_defaults,
    .check = hub_conf_check,
    .check_files = hub_check_files,
    .start = hub_start,
    .reload = hub_reload_obj,
    .shutdown = hub_stop,
    .free = hub_free_obj,
};

int main(int argc, char **argv)
{
	return daemon_main(&hub_daemon, argc, argv);
}
