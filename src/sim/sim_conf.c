/* outpost-sim's config: defaults, schema and checks (docs/sim.md). */
#include "sim.h"
#include "agent/link.h"
#include "core/conf.h"
#include "core/err.h"
#include "core/httpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(m, t, lo, hi, d, fl, h) CONF_KEY(struct sim_conf, m, t, lo, hi, d, fl, h)

/* One row a key: its type, range, default (JSON text) and whether SIGHUP applies it. The hub
 * section is the agent's rows (agent_conf.h): the virtual agents reach their hub as an agent
 * does. */
/* clang-format off */
static const struct conf_field sim_schema[] = {
    S(listen, CONF_STRING, 0, 0, "\"127.0.0.1:7090\"", 0, "HOST:PORT of the control API, on loopback"),
    S(state_dir, CONF_STRING, 0, 0, "\"outpost-state/sim\"", 0,
      "one directory per virtual agent, the control token"),
    CONF_LOG_ROWS(struct sim_conf, "\"warn\""),
    {.path = "hub", .type = CONF_OBJECT, .def = "{}"},
    AGENT_HUB_LINK_ROWS(struct sim_conf),
    S(hub.mode, CONF_STRING, 0, 0, "\"http\"", 0,
      "http (long-poll the hub) or zookeeper (scale mode: a ZooKeeper session per agent)"),
    CONF_SECTION("zk"),
    S(zk.connect, CONF_STRING, 0, 0, NULL, 0,
      "hub.mode zookeeper: HOST:PORT[,HOST:PORT...][/CHROOT]; none: the hub's"),
    S(zk.session_timeout_ms, CONF_INT, 2000, 120000, NULL, 0,
      "ZooKeeper session timeout of every virtual agent; none: the hub's"),
    S(agents, CONF_INT, 1, 1000000, "100", 0, "virtual agents"),
    S(host_prefix, CONF_STRING, 0, 0, "\"sim-\"", 0, "host ids: the prefix and 5 digits"),
    S(sources, CONF_INT, 0, 64262, "0", 0, "loopback source addresses 127.0.x.y; 0: as needed"),
    S(ramp_per_s, CONF_INT, 1, 1000000, "500", 0, "virtual agents started per second"),
    CONF_SECTION("metrics"),
    S(metrics.interval_ms, CONF_INT, 0, 86400000, "10000", 0, "sample grid; 0: no metrics"),
    S(metrics.series, CONF_INT, 1, 10000, "20", 0, "synthetic series per agent"),
    CONF_SECTION("exec"),
    S(exec.mode, CONF_STRING, 0, 0, "\"fake\"", 0,
      "fake (answer at once) or real (fork the command)"),
    CONF_SECTION("dispatch"),
    S(dispatch.workers, CONF_INT, 1, 64, "2", 0, "worker threads shared by every virtual agent"),
    {NULL},
};
/* clang-format on */

json_t *sim_conf_defaults(void)
{
	return conf_defaults(sim_schema);
}

/* The checks beyond types and ranges. */
static int sim_conf_check_values(const void *conf, char *msg, size_t msglen)
{
	const struct sim_conf *c = conf;
	const char *url = c->hub.link.url, *listen = c->listen, *mode = c->exec.mode;
	const char *prefix = c->host_prefix;
	int64_t iv = c->metrics.interval_ms;
	int rc = conf_check_log(&c->log, msg, msglen);

	if (rc < 0)
		return rc;
	if (!url || !*url) {
		snprintf(msg, msglen,
		         "'hub.url' is required: the hub the virtual agents enroll with");
		return OUTPOST_E_BAD_ARGS;
	}
	rc = link_http_check_url(url, msg, msglen);
	if (rc < 0)
		return rc;
	/* The control API can stop the whole fleet: loopback only, and a token (docs/sim.md). */
	if (!listen || !*listen || !httpd_host_is_loopback(listen)) {
		snprintf(msg, msglen,
		         "'listen' must be a loopback HOST:PORT (127.0.0.1:7090): the control API "
		         "is not for other hosts (it is %.100s)",
		         listen ? listen : "(none)");
		return OUTPOST_E_BAD_ARGS;
	}
	if (!c->hub.mode ||
	    (strcmp(c->hub.mode, "http") != 0 && strcmp(c->hub.mode, "zookeeper") != 0)) {
		snprintf(msg, msglen, "'hub.mode' must be \"http\" or \"zookeeper\" (it is %.64s)",
		         c->hub.mode ? c->hub.mode : "(none)");
		return OUTPOST_E_BAD_ARGS;
	}
	if (c->zk.connect && *c->zk.connect &&
	    link_zk_check_connect(c->zk.connect, msg, msglen) < 0)
		return OUTPOST_E_BAD_ARGS;
	if (!mode || (strcmp(mode, "fake") != 0 && strcmp(mode, "real") != 0)) {
		snprintf(msg, msglen, "'exec.mode' must be \"fake\" or \"real\"");
		return OUTPOST_E_BAD_ARGS;
	}
	if (!prefix || !*prefix || strlen(prefix) > 40 ||
	    strspn(prefix, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
	        strlen(prefix) ||
	    prefix[0] == '.' || prefix[0] == '-') {
		snprintf(msg, msglen,
		         "'host_prefix' must be 1 to 40 of A-Z a-z 0-9 . _ -, not starting with . "
		         "or - (host ids are the prefix and a number)");
		return OUTPOST_E_BAD_ARGS;
	}
	if (iv > 0 && iv < 1000) {
		snprintf(msg, msglen,
		         "'metrics.interval_ms' is 0 (no metrics) or at least 1000, "
		         "as the metrics plugin's");
		return OUTPOST_E_BAD_ARGS;
	}
	return 0;
}

const struct conf_kind sim_conf_kind = {sim_schema, sizeof(struct sim_conf), sim_conf_check_values};

int sim_conf_check(const json_t *conf, char *msg, size_t msglen)
{
	return conf_check_kind(&sim_conf_kind, conf, msg, msglen);
}
