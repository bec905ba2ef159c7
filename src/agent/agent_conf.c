/* The agent's config: defaults, schema and checks. Keys are documented in docs/config.md. */
#include "agent.h"
#include "agent_impl.h"
#include "hubtask.h"
#include "link.h"
#include "core/conf.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const struct conf_field agent_schema[] = {
    {"listen", CONF_STRING, 0, 0, "HOST:PORT of the local API; \"\" for none"},
    {"socket", CONF_STRING, 0, 0, "unix socket path of the local API; \"\" for none"},
    {"state_dir", CONF_STRING, 0, 0, "database, lock, plugin state"},
    {"plugin_dir", CONF_STRING, 0, 0, "shared-object and executable plugins"},
    {"log", CONF_OBJECT, 0, 0, NULL},
    {"log.level", CONF_STRING, 0, 0, "error, warn, info, debug"},
    {"log.target", CONF_STRING, 0, 0, "stderr or syslog"},
    {"api", CONF_OBJECT, 0, 0, NULL},
    {"api.body_limit", CONF_INT, 1024, 1 << 30, "bytes of a request body"},
    {"api.max_depth", CONF_INT, 1, 256, "JSON nesting of a request body"},
    {"api.conn_limit", CONF_INT, 1, 100000, "connections at once"},
    {"api.conn_timeout_s", CONF_INT, 1, 3600, "idle connection timeout"},
    {"api.group", CONF_STRING, 0, 0, "group whose members may call api.group_ops on the socket"},
    {"api.group_ops", CONF_STRING_ARRAY, 0, 0, "ops the group may call: plugin.op, plugin.*"},
    {"dispatch", CONF_OBJECT, 0, 0, NULL},
    {"dispatch.workers", CONF_INT, 1, 64, "worker threads"},
    {"dispatch.max_inflight", CONF_INT, 1, 100000, "calls queued or running"},
    {"dispatch.default_timeout_ms", CONF_INT, 1, 86400000, "deadline of an op"},
    {"dispatch.timeouts", CONF_OBJECT_FREE, 0, 0, "{\"plugin.op\": ms}"},
    {"ledger", CONF_OBJECT, 0, 0, NULL},
    {"ledger.keep_days", CONF_INT, 1, 3650, "how long finished ids are remembered"},
    {"ledger.max_rows", CONF_INT, 100, 100000000, "at most this many ids"},
    {"plugins", CONF_OBJECT_FREE, 0, 0, "one section per plugin"},
    {"hub", CONF_OBJECT, 0, 0, NULL},
    {"hub.url", CONF_STRING, 0, 0, "the hub, https://HOST:PORT; none: local only"},
    {"hub.token", CONF_STRING, 0, 0, "enrollment token (outpost token create --enroll)"},
    {"hub.ca", CONF_STRING, 0, 0, "CA file for the hub's TLS; none: pin on first use"},
    {"hub.fingerprint", CONF_STRING, 0, 0, "sha256:HEX the first-use certificate must have"},
    {"hub.host_id", CONF_STRING, 0, 0, "this host's id at the hub (default: the hostname)"},
    {"hub.spool_max_bytes", CONF_INT, 1 << 20, 1LL << 40,
     "batches for the hub kept while it is away, bytes; past it the oldest are dropped"},
    {"hub.refused_retry_s", CONF_INT, 1, 86400,
     "while the hub refuses this host (rejected, revoked), ask again this often"},
    {"hub.mode", CONF_STRING, 0, 0,
     "http (long-poll the hub) or zookeeper (scale mode: liveness and tasks in ZooKeeper)"},
    {"zk", CONF_OBJECT, 0, 0, NULL},
    {"zk.connect", CONF_STRING, 0, 0,
     "hub.mode zookeeper: HOST:PORT[,HOST:PORT...][/CHROOT]; none: the hub's"},
    {"zk.session_timeout_ms", CONF_INT, 2000, 120000,
     "ZooKeeper session timeout (the server bounds it); none: the hub's"},
    {NULL, 0, 0, 0, NULL},
};

json_t *agent_conf_defaults(void)
{
	int root = geteuid() == 0;
	const char *state = root ? "/var/lib/outpost-agent" : "outpost-state/agent";

	/* As root, no TCP by default: the unix socket tells who calls (docs/security.md). */
	return json_pack(
	    "{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:{s:i, s:i, s:i, s:i, s:s, s:[sss]},"
	    " s:{s:i, s:i, s:i, s:{s:i}}, s:{s:i, s:i}, s:{s:I, s:i, s:s}, s:{s:{s:[]}}}",
	    "listen", root ? "" : "127.0.0.1:7070", "socket", root ? "/run/outpost-agent.sock" : "",
	    "state_dir", state, "plugin_dir",
	    root ? "/usr/lib/outpost/plugins" : "outpost-state/agent/plugins", "log", "level",
	    "info", "target", "stderr", "api", "body_limit", 16 << 20, "max_depth", 32,
	    "conn_limit", 256, "conn_timeout_s", 30, "group", API_DEFAULT_GROUP, "group_ops",
	    "metrics.push", "sys.ping", "sys.facts", "dispatch", "workers", 4, "max_inflight", 64,
	    "default_timeout_ms", 30000, "timeouts", "exec.run", 3600000, "ledger", "keep_days", 7,
	    "max_rows", 100000, "hub", "spool_max_bytes", (json_int_t)(64 << 20), "refused_retry_s",
	    LINK_REFUSED_RETRY_MS / 1000, "mode", "http", "plugins", "file", "roots");
}

static int agent_conf_set(const json_t *conf, const char *key)
{
	const char *s = json_string_value(conf_get(conf, key));

	return s && *s;
}

int agent_conf_local_api(const json_t *conf)
{
	return agent_conf_set(conf, "listen") || agent_conf_set(conf, "socket");
}

int agent_conf_hub(const json_t *conf)
{
	return agent_conf_set(conf, "hub.url");
}

int agent_conf_check(const json_t *conf, char *msg, size_t msglen)
{
	const char *key, *s;
	json_t *v;
	int rc = conf_check(conf, agent_schema, msg, msglen);

	if (rc < 0)
		return rc;
	if ((rc = conf_check_log(conf, msg, msglen)) < 0)
		return rc;
	json_object_foreach(conf_get(conf, "dispatch.timeouts"), key, v)
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
	json_object_foreach(conf_get(conf, "plugins"), key, v)
	{
		if (!json_is_object(v)) {
			snprintf(msg, msglen, "'plugins.%.64s' must be an object { ... }", key);
			return OUTPOST_E_BAD_ARGS;
		}
	}
	s = json_string_value(conf_get(conf, "hub.url"));
	if (s && *s && link_http_check_url(s, msg, msglen) < 0)
		return OUTPOST_E_BAD_ARGS;
	s = json_string_value(conf_get(conf, "hub.mode"));
	if (s && strcmp(s, "http") != 0 && strcmp(s, "zookeeper") != 0) {
		snprintf(msg, msglen, "'hub.mode' must be \"http\" or \"zookeeper\" (it is %.64s)",
		         s);
		return OUTPOST_E_BAD_ARGS;
	}
	if (s && strcmp(s, "zookeeper") == 0) {
		if (!agent_conf_hub(conf)) {
			snprintf(
			    msg, msglen,
			    "hub.mode \"zookeeper\" needs 'hub.url': the hub the agent enrolls "
			    "with (and falls back to while /outpost/hubs lists none)");
			return OUTPOST_E_BAD_ARGS;
		}
	}
	s = json_string_value(conf_get(conf, "zk.connect"));
	if (s && *s && link_zk_check_connect(s, msg, msglen) < 0)
		return OUTPOST_E_BAD_ARGS;
	s = json_string_value(conf_get(conf, "hub.host_id"));
	if (s && *s && !hubtask_host_id_ok(s)) {
		snprintf(msg, msglen,
		         "'hub.host_id' must be 1 to 64 of A-Z a-z 0-9 . _ - and not start with . "
		         "or -");
		return OUTPOST_E_BAD_ARGS;
	}
	if (!agent_conf_local_api(conf) && !agent_conf_hub(conf)) {
		snprintf(msg, msglen,
		         "no local API and no hub: set 'listen' or 'socket' for a local API, or "
		         "'hub.url' for an agent that works through its hub only");
		return OUTPOST_E_BAD_ARGS;
	}
	if ((rc = api_auth_check_conf(conf, msg, msglen)) < 0)
		return rc;
	s = json_string_value(conf_get(conf, "state_dir"));
	if (!s || !*s) {
		snprintf(msg, msglen, "'state_dir' must not be empty");
		return OUTPOST_E_BAD_ARGS;
	}
	return 0;
}
