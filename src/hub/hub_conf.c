/* The hub's config: defaults, schema and checks (docs/config.md). */
#include "hub.h"
#include "zk.h"
#include "rwrite.h"
#include "core/conf.h"

#include <libpq-fe.h>
#include <outpost/plugin.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const struct conf_field hub_schema[] = {
    {"listen", CONF_STRING, 0, 0, "HOST:PORT for agents, the CLI and the console"},
    {"state_dir", CONF_STRING, 0, 0, "database, keys, certificate, admin token"},
    {"tls", CONF_BOOL, 0, 0, "HTTPS; false is allowed only on a loopback address"},
    {"tls_names", CONF_STRING_ARRAY, 0, 0, "extra names/addresses in the certificate"},
    {"log", CONF_OBJECT, 0, 0, NULL},
    {"log.level", CONF_STRING, 0, 0, "error, warn, info, debug"},
    {"log.target", CONF_STRING, 0, 0, "stderr or syslog"},
    {"api", CONF_OBJECT, 0, 0, NULL},
    {"api.body_limit", CONF_INT, 1024, 1 << 30, "bytes of a request body"},
    {"api.conn_limit", CONF_INT, 16, 1000000, "connections at once (agents hold one each)"},
    {"api.per_ip_limit", CONF_INT, 0, 1000000, "connections per client address (0: none)"},
    {"api.conn_timeout_s", CONF_INT, 1, 3600, "idle connection timeout"},
    {"api.unauth_per_ip_limit", CONF_INT, 0, 1000000,
     "connections not yet authenticated per client address (0: none)"},
    {"api.unauth_timeout_s", CONF_INT, 1, 3600,
     "idle timeout of a connection not yet authenticated"},
    {"agents", CONF_OBJECT, 0, 0, NULL},
    {"agents.beat_ms", CONF_INT, 500, 3600000, "how often agents beat"},
    {"agents.missed_beats", CONF_INT, 1, 100, "a host is down after this many"},
    {"agents.poll_wait_s", CONF_INT, 1, 60, "longest long-poll"},
    {"tasks", CONF_OBJECT, 0, 0, NULL},
    {"tasks.default_timeout_ms", CONF_INT, 1, 86400000, "op deadline on the host"},
    {"tasks.default_expiry_ms", CONF_INT, 1000, 30L * 86400000, "how long a task waits"},
    {"tasks.keep_days", CONF_INT, 1, 36600, "an ended task and its results are kept this long"},
    {"events", CONF_OBJECT, 0, 0, NULL},
    {"events.keep_days", CONF_INT, 1, 36600, "hosts' events are kept this long"},
    {"audit", CONF_OBJECT, 0, 0, NULL},
    {"audit.keep_days", CONF_INT, 1, 36600, "audit entries are kept this long"},
    {"metrics", CONF_OBJECT, 0, 0, NULL},
    {"metrics.raw_hours", CONF_INT, 1, 24 * 366, "raw samples are kept this long"},
    {"metrics.rollup_1m_days", CONF_INT, 1, 3660, "1-minute rollups are kept this long"},
    {"metrics.rollup_1h_days", CONF_INT, 1, 36600, "1-hour rollups are kept this long"},
    {"metrics.checkpoint_s", CONF_INT, 10, 86400, "open chunks are written this often"},
    {"metrics.query_max_running", CONF_INT, 1, 1000,
     "metric queries under way in slices at once (past it: busy)"},
    {"metrics.query_timeout_s", CONF_INT, 1, 3600, "a metric query is stopped after this"},
    {"store", CONF_OBJECT, 0, 0, NULL},
    {"store.backend", CONF_STRING, 0, 0, "sqlite (default: one hub) or postgresql (shared)"},
    {"store.dsn", CONF_STRING, 0, 0, "libpq connection string for postgresql"},
    {"enroll", CONF_OBJECT, 0, 0, NULL},
    {"enroll.pending_max", CONF_INT, 0, 10000000, "pending hosts at once (0: no bound)"},
    {"enroll.pending_per_addr", CONF_INT, 0, 10000000,
     "pending hosts from one address (0: no bound)"},
    {"enroll.pending_keep_days", CONF_INT, 1, 36600, "a host left pending is deleted after"},
    {"enroll.facts_max_bytes", CONF_INT, 1024, 16 << 20,
     "bytes of facts at enrollment and in beats"},
    {"auth", CONF_OBJECT, 0, 0, NULL},
    {"auth.max_failures_per_min", CONF_INT, 1, 100000,
     "failed attempts per address and per credential"},
    {"auth.max_unknown_per_min", CONF_INT, 1, 1000000,
     "failed attempts with unknown credentials, all addresses together"},
    {"zk", CONF_OBJECT, 0, 0, NULL},
    {"zk.connect", CONF_STRING, 0, 0,
     "scale mode: ZooKeeper servers HOST:PORT,...[/chroot] (absent: embedded mode)"},
    {"zk.secret_file", CONF_STRING, 0, 0, "the hubs' shared ZooKeeper secret (mode 0600)"},
    {"zk.session_timeout_ms", CONF_INT, 2000, 120000,
     "ZooKeeper session timeout (the server bounds it to 2-20 ticks)"},
    {"zk.hub_id", CONF_STRING, 0, 0, "this hub's name under /outpost/hubs (default HOST-PORT)"},
    {"zk.hub_url", CONF_STRING, 0, 0, "the URL agents reach this hub at (default from listen)"},
    {"zk.single_hub", CONF_BOOL, 0, 0, "scale mode with the SQLite store: one hub only"},
    {"remote_write", CONF_OBJECT_ARRAY, 0, 0, "Prometheus remote-write receivers"},
    {"remote_write.url", CONF_STRING, 0, 0, "receiver URL: http://HOST:9090/api/v1/write"},
    {"remote_write.bearer_token_file", CONF_STRING, 0, 0, "a file holding a bearer token"},
    {"remote_write.timeout_ms", CONF_INT, 100, 600000, "deadline of one POST"},
    {"remote_write.max_samples", CONF_INT, 1, 100000, "samples in one POST at most"},
    {"remote_write.queue_samples", CONF_INT, 1, 100000000,
     "samples waiting at most; more are dropped"},
    {NULL, 0, 0, 0, NULL},
};

json_t *hub_conf_defaults(void)
{
	int root = geteuid() == 0;

	return json_pack(
	    "{s:s, s:s, s:b, s:[], s:{s:s, s:s}, s:{s:i, s:i, s:i, s:i, s:i, s:i},"
	    " s:{s:i, s:i, s:i}, s:{s:i, s:I, s:i}, s:{s:i}, s:{s:i}, s:{s:i, s:i},"
	    " s:{s:i, s:i, s:i, s:i, s:i, s:i}, s:{s:i, s:i, s:i, s:i}, s:{s:i}}",
	    "listen", "127.0.0.1:7443", "state_dir",
	    root ? "/var/lib/outpost-hub" : "outpost-state/hub", "tls", 1, "tls_names", "log",
	    "level", "info", "target", "stderr", "api", "body_limit", 64 << 20, "conn_limit", 20000,
	    "per_ip_limit", 0, "conn_timeout_s", 120, "unauth_per_ip_limit", 64, "unauth_timeout_s",
	    10, "agents", "beat_ms", 5000, "missed_beats", 3, "poll_wait_s", 30, "tasks",
	    "default_timeout_ms", 600000, "default_expiry_ms", (json_int_t)3600000, "keep_days", 30,
	    "events", "keep_days", 30, "audit", "keep_days", 365, "auth", "max_failures_per_min",
	    20, "max_unknown_per_min", 200, "metrics", "raw_hours", 48, "rollup_1m_days", 30,
	    "rollup_1h_days", 365, "checkpoint_s", 300, "query_max_running", 4, "query_timeout_s",
	    60, "enroll", "pending_max", 1000, "pending_per_addr", 50, "pending_keep_days", 7,
	    "facts_max_bytes", 256 << 10, "zk", "session_timeout_ms", 15000);
}

static int hub_listen_is_loopback(const char *listen)
{
	return strncmp(listen, "127.", 4) == 0 || strncmp(listen, "[::1]:", 6) == 0 ||
	       strncmp(listen, "localhost:", 10) == 0;
}

/* store.backend and store.dsn (absent: SQLite in state_dir). The DSN is parsed, not used:
 * --check-config needs no server. */
static int hub_conf_check_store(const json_t *conf, char *msg, size_t msglen)
{
	const char *backend = json_string_value(conf_get(conf, "store.backend"));
	const char *dsn = json_string_value(conf_get(conf, "store.dsn"));
	PQconninfoOption *opts;
	char *err = NULL;

	if (!backend || strcmp(backend, "sqlite") == 0) {
		if (dsn) {
			snprintf(msg, msglen, "'store.dsn' is only for 'store.backend' postgresql");
			return OUTPOST_E_BAD_ARGS;
		}
		return 0;
	}
	if (strcmp(backend, "postgresql") != 0) {
		snprintf(msg, msglen, "'store.backend' must be sqlite or postgresql, not '%s'",
		         backend);
		return OUTPOST_E_BAD_ARGS;
	}
	if (!dsn || !*dsn) {
		snprintf(msg, msglen,
		         "'store.backend' postgresql needs 'store.dsn' (a libpq connection string, "
		         "e.g. \"host=db1 dbname=outpost user=outpost\")");
		return OUTPOST_E_BAD_ARGS;
	}
	if (!(opts = PQconninfoParse(dsn, &err))) {
		size_t n = err ? strcspn(err, "\n") : 0; /* libpq ends its messages with one */
		snprintf(msg, msglen, "'store.dsn' is not a libpq connection string: %.*s", (int)n,
		         err ? err : "");
		PQfreemem(err);
		return OUTPOST_E_BAD_ARGS;
	}
	PQconninfoFree(opts);
	return 0;
}

int hub_conf_check(const json_t *conf, char *msg, size_t msglen)
{
	const char *s;
	int rc = conf_check(conf, hub_schema, msg, msglen);

	if (rc < 0)
		return rc;
	if ((rc = conf_check_log(conf, msg, msglen)) < 0)
		return rc;
	s = json_string_value(conf_get(conf, "listen"));
	if (!s || !*s) {
		snprintf(msg, msglen, "'listen' must be HOST:PORT");
		return OUTPOST_E_BAD_ARGS;
	}
	if (json_is_false(conf_get(conf, "tls")) && !hub_listen_is_loopback(s)) {
		snprintf(msg, msglen,
		         "'tls' is false but 'listen' (%s) is not a loopback address: plain HTTP "
		         "is only for loopback demos",
		         s);
		return OUTPOST_E_BAD_ARGS;
	}
	s = json_string_value(conf_get(conf, "state_dir"));
	if (!s || !*s) {
		snprintf(msg, msglen, "'state_dir' must not be empty");
		return OUTPOST_E_BAD_ARGS;
	}
	if ((rc = hub_conf_check_store(conf, msg, msglen)) < 0)
		return rc;
	if ((rc = rwrite_conf_check(conf, msg, msglen)) < 0)
		return rc;
	return zk_conf_check(conf, msg, msglen);
}
