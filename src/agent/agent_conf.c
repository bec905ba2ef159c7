/* The agent's config: defaults, schema and checks. Keys are documented in docs/config.md. */
#include "agent.h"
#include "agent_conf.h"
#include "agent_impl.h"
#include "hubtask.h"
#include "link.h"
#include "core/conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A(m, t, lo, hi, d, fl, h) CONF_KEY(struct agent_conf, m, t, lo, hi, d, fl, h)
#define A_ROOT(m, d, droot, h) CONF_KEY_ROOT(struct agent_conf, m, CONF_STRING, d, droot, 0, h)
#define RELOAD CONF_RELOAD

/* One row a key: its type, range, default (JSON text) and whether SIGHUP applies it. As root
 * the agent keeps to system paths and has no TCP listener: the unix socket tells who calls
 * (docs/security.md). */
/* clang-format off */
static const struct conf_field agent_schema[] = {
    A_ROOT(listen, "\"127.0.0.1:7070\"", "\"\"", "HOST:PORT of the local API; \"\" for none"),
    A_ROOT(socket, "\"\"", "\"/run/outpost-agent.sock\"",
           "unix socket path of the local API; \"\" for none"),
    A_ROOT(state_dir, "\"outpost-state/agent\"", "\"/var/lib/outpost-agent\"",
           "database, lock, plugin state"),
    A_ROOT(plugin_dir, "\"outpost-state/agent/plugins\"", "\"/usr/lib/outpost/plugins\"",
           "shared-object and executable plugins"),
    CONF_LOG_ROWS(struct agent_conf, "\"info\""),
    CONF_SECTION("api"),
    A(api.body_limit, CONF_INT, 1024, 1 << 30, "16777216", 0, "bytes of a request body"),
    A(api.max_depth, CONF_INT, 1, 256, "32", 0, "JSON nesting of a request body"),
    A(api.conn_limit, CONF_INT, 1, 100000, "256", 0, "connections at once"),
    A(api.conn_timeout_s, CONF_INT, 1, 3600, "30", 0, "idle connection timeout"),
    A(api.group, CONF_STRING, 0, 0, "\"" API_DEFAULT_GROUP "\"", 0,
      "group whose members may call api.group_ops on the socket"),
    A(api.group_ops, CONF_STRING_ARRAY, 0, 0, "[\"metrics.push\", \"sys.ping\", \"sys.facts\"]",
      RELOAD, "ops the group may call: plugin.op, plugin.*"),
    CONF_SECTION("dispatch"),
    A(dispatch.workers, CONF_INT, 1, 64, "4", 0, "worker threads"),
    A(dispatch.max_inflight, CONF_INT, 1, 100000, "64", 0, "calls queued or running"),
    A(dispatch.default_timeout_ms, CONF_INT, 1, 86400000, "30000", RELOAD, "deadline of an op"),
    A(dispatch.timeouts, CONF_OBJECT_FREE, 0, 0, "{\"exec.run\": 3600000}", RELOAD,
      "{\"plugin.op\": ms}"),
    CONF_SECTION("ledger"),
    A(ledger.keep_days, CONF_INT, 1, 3650, "7", RELOAD, "how long finished ids are remembered"),
    A(ledger.max_rows, CONF_INT, 100, 100000000, "100000", RELOAD, "at most this many ids"),
    A(plugins, CONF_OBJECT_FREE, 0, 0, "{\"file\": {\"roots\": []}}", RELOAD,
      "one section per plugin"),
    CONF_SECTION("hub"),
    AGENT_HUB_LINK_ROWS(struct agent_conf),
    A(hub.host_id, CONF_STRING, 0, 0, NULL, 0, "this host's id at the hub (default: the hostname)"),
    A(hub.spool_max_bytes, CONF_INT, 1 << 20, 1LL << 40, "67108864", 0,
      "batches for the hub kept while it is away, bytes; past it the oldest are dropped"),
    A(hub.refused_retry_s, CONF_INT, 1, 86400, "600", 0,
      "while the hub refuses this host (rejected, revoked), ask again this often"),
    A(hub.mode, CONF_STRING, 0, 0, "\"http\"", 0,
      "http (long-poll the hub) or zookeeper (scale mode: liveness and tasks in ZooKeeper)"),
    CONF_SECTION("zk"),
    A(zk.connect, CONF_STRING, 0, 0, NULL, 0,
      "hub.mode zookeeper: HOST:PORT[,HOST:PORT...][/CHROOT]; none: the hub's"),
    A(zk.session_timeout_ms, CONF_INT, 2000, 120000, NULL, 0,
      "ZooKeeper session timeout (the server bounds it); none: the hub's"),
    {NULL},
};
/* clang-format on */

json_t *agent_conf_defaults(void)
{
	return conf_defaults(agent_schema);
}

static int agent_conf_set(const char *s)
{
	return s && *s;
}

/* An agent needs a local API (listen or socket), a hub (hub.url), or both. */
static int agent_conf_local_api(const struct agent_conf *c)
{
	return agent_conf_set(c->listen) || agent_conf_set(c->socket);
}

/* The checks beyond types and ranges. */
static int agent_conf_check_values(const void *conf, char *msg, size_t msglen)
{
	const struct agent_conf *c = conf;
	const char *key, *s;
	json_t *v;
	int rc;

	if ((rc = conf_check_log(&c->log, msg, msglen)) < 0)
		return rc;
	json_object_foreach((json_t *)c->dispatch.timeouts, key, v)
	{
		if (!strchr(key, '.') || !json_is_integer(v) || json_integer_value(v) < 1) {
			snprintf(
			    msg, msglen,
			    "'dispatch.timeouts.%.64s': keys are plugin.op, values milliseconds "
			    "(a positive integer)",
			    key);
			return OUTPOST_E_BAD_ARGS;
		}
	}
	json_object_foreach((json_t *)c->plugins, key, v)
	{
		if (!json_is_object(v)) {
			snprintf(msg, msglen, "'plugins.%.64s' must be an object { ... }", key);
			return OUTPOST_E_BAD_ARGS;
		}
	}
	s = c->hub.link.url;
	if (s && *s && link_http_check_url(s, msg, msglen) < 0)
		return OUTPOST_E_BAD_ARGS;
	s = c->hub.mode;
	if (s && strcmp(s, "http") != 0 && strcmp(s, "zookeeper") != 0) {
		snprintf(msg, msglen, "'hub.mode' must be \"http\" or \"zookeeper\" (it is %.64s)",
		         s);
		return OUTPOST_E_BAD_ARGS;
	}
	if (s && strcmp(s, "zookeeper") == 0) {
		if (!agent_conf_set(c->hub.link.url)) {
			snprintf(
			    msg, msglen,
			    "hub.mode \"zookeeper\" needs 'hub.url': the hub the agent enrolls "
			    "with (and falls back to while /outpost/hubs lists none)");
			return OUTPOST_E_BAD_ARGS;
		}
	}
	s = c->zk.connect;
	if (s && *s && link_zk_check_connect(s, msg, msglen) < 0)
		return OUTPOST_E_BAD_ARGS;
	s = c->hub.host_id;
	if (s && *s && !hubtask_host_id_ok(s)) {
		snprintf(msg, msglen,
		         "'hub.host_id' must be 1 to 64 of A-Z a-z 0-9 . _ - and not start with . "
		         "or -");
		return OUTPOST_E_BAD_ARGS;
	}
	if (!agent_conf_local_api(c) && !agent_conf_set(c->hub.link.url)) {
		snprintf(msg, msglen,
		         "no local API and no hub: set 'listen' or 'socket' for a local API, or "
		         "'hub.url' for an agent that works through its hub only");
		return OUTPOST_E_BAD_ARGS;
	}
	if ((rc = api_auth_check_conf(c, msg, msglen)) < 0)
		return rc;
	if (!agent_conf_set(c->state_dir)) {
		snprintf(msg, msglen, "'state_dir' must not be empty");
		return OUTPOST_E_BAD_ARGS;
	}
	return 0;
}

const struct conf_kind agent_conf_kind = {agent_schema, sizeof(struct agent_conf),
                                          agent_conf_check_values};

int agent_conf_check(const json_t *conf, char *msg, size_t msglen)
{
	return conf_check_kind(&agent_conf_kind, conf, msg, msglen);
}
