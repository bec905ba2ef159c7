/* The hub's config: defaults, schema and checks (docs/config.md). */
#include "hub.h"
#include "hub_conf.h"
#include "zk.h"
#include "rwrite.h"
#include "core/conf.h"

#include <libpq-fe.h>
#include <outpost/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H(m, t, lo, hi, d, fl, h) CONF_KEY(struct hub_conf, m, t, lo, hi, d, fl, h)
#define RW(m, t, lo, hi, d, h)                                                                     \
	CONF_KEY_AT(struct hub_conf_rwrite, "remote_write." #m, m, t, lo, hi, d, 0, h)
#define RELOAD CONF_RELOAD

/* One row a key: its type, range, default (JSON text) and whether SIGHUP applies it. */
/* clang-format off */
static const struct conf_field hub_schema[] = {
    H(listen, CONF_STRING, 0, 0, "\"127.0.0.1:7443\"", 0,
      "HOST:PORT for agents, the CLI and the console"),
    CONF_KEY_ROOT(struct hub_conf, state_dir, CONF_STRING, "\"outpost-state/hub\"",
                  "\"/var/lib/outpost-hub\"", 0, "database, keys, certificate, admin token"),
    H(tls, CONF_BOOL, 0, 0, "true", 0, "HTTPS; false is allowed only on a loopback address"),
    H(tls_names, CONF_STRING_ARRAY, 0, 0, "[]", 0, "extra names/addresses in the certificate"),
    CONF_LOG_ROWS(struct hub_conf, "\"info\""),
    CONF_SECTION("api"),
    H(api.body_limit, CONF_INT, 1024, 1 << 30, "67108864", 0, "bytes of a request body"),
    H(api.conn_limit, CONF_INT, 16, 1000000, "20000", 0,
      "connections at once (agents hold one each)"),
    H(api.per_ip_limit, CONF_INT, 0, 1000000, "0", 0, "connections per client address (0: none)"),
    H(api.conn_timeout_s, CONF_INT, 1, 3600, "120", 0, "idle connection timeout"),
    H(api.unauth_per_ip_limit, CONF_INT, 0, 1000000, "64", 0,
      "connections not yet authenticated per client address (0: none)"),
    H(api.unauth_timeout_s, CONF_INT, 1, 3600, "10", 0,
      "idle timeout of a connection not yet authenticated"),
    H(api.admit_rate, CONF_INT, 0, 1000000, "1000", RELOAD,
      "new agent connections served a second; past it: busy with Retry-After (0: no bound)"),
    H(api.admit_unread, CONF_INT, 0, 1000000, "512", 0,
      "connections accepted and not yet read at once; past it new ones are closed (0: none)"),
    CONF_SECTION("agents"),
    H(agents.beat_ms, CONF_INT, 500, 3600000, "5000", RELOAD, "how often agents beat"),
    H(agents.missed_beats, CONF_INT, 1, 100, "3", RELOAD, "a host is down after this many"),
    H(agents.poll_wait_s, CONF_INT, 1, 60, "30", RELOAD, "longest long-poll"),
    CONF_SECTION("tasks"),
    H(tasks.default_timeout_ms, CONF_INT, 1, 86400000, "600000", RELOAD,
      "op deadline on the host"),
    H(tasks.default_expiry_ms, CONF_INT, 1000, 30L * 86400000, "3600000", RELOAD,
      "how long a task waits"),
    H(tasks.keep_days, CONF_INT, 1, 36600, "30", RELOAD,
      "an ended task and its results are kept this long"),
    CONF_SECTION("events"),
    H(events.keep_days, CONF_INT, 1, 36600, "30", RELOAD, "hosts' events are kept this long"),
    CONF_SECTION("audit"),
    H(audit.keep_days, CONF_INT, 1, 36600, "365", RELOAD, "audit entries are kept this long"),
    CONF_SECTION("metrics"),
    H(metrics.raw_hours, CONF_INT, 1, 24 * 366, "48", 0, "raw samples are kept this long"),
    H(metrics.rollup_1m_days, CONF_INT, 1, 3660, "30", 0, "1-minute rollups are kept this long"),
    H(metrics.rollup_1h_days, CONF_INT, 1, 36600, "365", 0, "1-hour rollups are kept this long"),
    H(metrics.checkpoint_s, CONF_INT, 10, 86400, "300", 0, "open chunks are written this often"),
    H(metrics.query_max_running, CONF_INT, 1, 1000, "4", RELOAD,
      "metric queries under way in slices at once (past it: busy)"),
    H(metrics.query_timeout_s, CONF_INT, 1, 3600, "60", RELOAD,
      "a metric query is stopped after this"),
    CONF_SECTION("store"),
    H(store.backend, CONF_STRING, 0, 0, NULL, 0, "sqlite (default: one hub) or postgresql (shared)"),
    H(store.dsn, CONF_STRING, 0, 0, NULL, 0, "libpq connection string for postgresql"),
    CONF_SECTION("enroll"),
    H(enroll.pending_max, CONF_INT, 0, 10000000, "1000", RELOAD,
      "pending hosts at once (0: no bound)"),
    H(enroll.pending_per_addr, CONF_INT, 0, 10000000, "50", RELOAD,
      "pending hosts from one address (0: no bound)"),
    H(enroll.pending_keep_days, CONF_INT, 1, 36600, "7", RELOAD,
      "a host left pending is deleted after"),
    H(enroll.facts_max_bytes, CONF_INT, 1024, 16 << 20, "262144", 0,
      "bytes of facts at enrollment and in beats"),
    CONF_SECTION("auth"),
    H(auth.max_failures_per_min, CONF_INT, 1, 100000, "20", RELOAD,
      "failed attempts per address and per credential"),
    H(auth.max_unknown_per_min, CONF_INT, 1, 1000000, "200", RELOAD,
      "failed attempts with unknown credentials, all addresses together"),
    CONF_SECTION("zk"),
    H(zk.connect, CONF_STRING, 0, 0, NULL, 0,
      "scale mode: ZooKeeper servers HOST:PORT,...[/chroot] (absent: embedded mode)"),
    H(zk.secret_file, CONF_STRING, 0, 0, NULL, 0, "the hubs' shared ZooKeeper secret (mode 0600)"),
    H(zk.session_timeout_ms, CONF_INT, 2000, 120000, "15000", 0,
      "ZooKeeper session timeout (the server bounds it to 2-20 ticks)"),
    H(zk.hub_id, CONF_STRING, 0, 0, NULL, 0, "this hub's name under /outpost/hubs (default HOST-PORT)"),
    H(zk.hub_url, CONF_STRING, 0, 0, NULL, 0, "the URL agents reach this hub at (default from listen)"),
    H(zk.single_hub, CONF_BOOL, 0, 0, NULL, 0, "scale mode with the SQLite store: one hub only"),
    CONF_SECTION("rules"),
    H(rules.file, CONF_STRING, 0, 0, "\"/etc/outpost/rules.conf\"", 0,
      "the rules file (docs/rules.md), read at start and on SIGHUP; \"\": none"),
    H(rules.interval_s, CONF_INT, 1, 3600, "15", RELOAD, "how often the rules are evaluated"),
    H(rules.webhook_secret_file, CONF_STRING, 0, 0, NULL, 0,
      "the key webhooks are signed with (default <state_dir>/webhook.secret, made once)"),
    CONF_SECTION("alerts"),
    H(alerts.keep_days, CONF_INT, 1, 36600, "90", RELOAD, "the alert history is kept this long"),
    CONF_LIST(struct hub_conf, remote_write, struct hub_conf_rwrite, 0,
              "Prometheus remote-write receivers"),
    RW(url, CONF_STRING, 0, 0, NULL, "receiver URL: http://HOST:9090/api/v1/write"),
    RW(bearer_token_file, CONF_STRING, 0, 0, NULL, "a file holding a bearer token"),
    RW(timeout_ms, CONF_INT, 100, 600000, "10000", "deadline of one POST"),
    RW(max_samples, CONF_INT, 1, 100000, "2000", "samples in one POST at most"),
    RW(queue_samples, CONF_INT, 1, 100000000, "100000", "samples waiting at most; more are dropped"),
    CONF_SECTION("mail"),
    H(mail.smtp_url, CONF_STRING, 0, 0, NULL, RELOAD,
      "smtp://HOST:PORT (STARTTLS per mail.starttls) or smtps://HOST:PORT (absent: no mail)"),
    H(mail.from, CONF_STRING, 0, 0, NULL, RELOAD, "the sender address"),
    H(mail.starttls, CONF_STRING, 0, 0, "\"always\"", RELOAD, "always, try or never (smtp:// only)"),
    H(mail.username, CONF_STRING, 0, 0, NULL, RELOAD, "SMTP AUTH user"),
    H(mail.password_file, CONF_STRING, 0, 0, NULL, RELOAD, "a file holding the SMTP AUTH password"),
    H(mail.ca_file, CONF_STRING, 0, 0, NULL, RELOAD, "CA certificates for the server (default: system's)"),
    H(mail.timeout_s, CONF_INT, 1, 600, "30", RELOAD, "deadline of one delivery"),
    H(mail.retry_s, CONF_INT, 1, 86400, "60", RELOAD, "first wait after a failed delivery (then doubles)"),
    H(mail.retry_max_s, CONF_INT, 1, 7 * 86400, "3600", RELOAD, "longest wait between attempts"),
    H(mail.max_attempts, CONF_INT, 1, 10000, "48", RELOAD, "a message is given up after this many"),
    CONF_SECTION("report"),
    H(report.mail_to, CONF_STRING_ARRAY, 0, 0, "[]", RELOAD, "addresses the fleet report is mailed to"),
    H(report.every_s, CONF_INT, 5, 31 * 86400, "86400", RELOAD, "how often it is mailed (default daily)"),
    H(report.window_hours, CONF_INT, 1, 24 * 31, "24", RELOAD, "the period a report covers"),
    {NULL},
};
/* clang-format on */

json_t *hub_conf_defaults(void)
{
	return conf_defaults(hub_schema);
}

static int hub_listen_is_loopback(const char *listen)
{
	return strncmp(listen, "127.", 4) == 0 || strncmp(listen, "[::1]:", 6) == 0 ||
	       strncmp(listen, "localhost:", 10) == 0;
}

/* store.backend and store.dsn (absent: SQLite in state_dir). The DSN is parsed, not used:
 * --check-config needs no server. */
static int hub_conf_check_store(const struct hub_conf *c, char *msg, size_t msglen)
{
	const char *backend = c->store.backend;
	const char *dsn = c->store.dsn;
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

/* mail.* and report.mail_to: a server URL with a sender, known TLS choices, addresses. */
static int hub_conf_check_mail(const struct hub_conf *c, char *msg, size_t msglen)
{
	const char *url = c->mail.smtp_url, *from = c->mail.from, *tls = c->mail.starttls;

	if (url && strncmp(url, "smtp://", 7) && strncmp(url, "smtps://", 8)) {
		snprintf(msg, msglen,
		         "'mail.smtp_url' must be smtp://HOST:PORT or smtps://HOST:PORT");
		return OUTPOST_E_BAD_ARGS;
	}
	if (url && (!from || !strchr(from, '@') || strpbrk(from, "<>\r\n "))) {
		snprintf(msg, msglen,
		         "'mail.smtp_url' needs 'mail.from', a sender address (local@domain)");
		return OUTPOST_E_BAD_ARGS;
	}
	if (tls && strcmp(tls, "always") && strcmp(tls, "try") && strcmp(tls, "never")) {
		snprintf(msg, msglen, "'mail.starttls' must be always, try or never, not '%s'",
		         tls);
		return OUTPOST_E_BAD_ARGS;
	}
	if (c->mail.password_file && !c->mail.username) {
		snprintf(msg, msglen, "'mail.password_file' goes with 'mail.username'");
		return OUTPOST_E_BAD_ARGS;
	}
	for (size_t i = 0; i < c->report.mail_to.n; i++) {
		const char *a = c->report.mail_to.v[i];
		if (!url) {
			snprintf(msg, msglen, "'report.mail_to' needs 'mail.smtp_url'");
			return OUTPOST_E_BAD_ARGS;
		}
		if (!a || !strchr(a, '@') || strpbrk(a, "<>\r\n ,")) {
			snprintf(msg, msglen, "'report.mail_to': '%.80s' is not an address",
			         a ? a : "");
			return OUTPOST_E_BAD_ARGS;
		}
	}
	return 0;
}

/* The checks beyond types and ranges. */
static int hub_conf_check_values(const void *conf, char *msg, size_t msglen)
{
	const struct hub_conf *c = conf;
	const char *s;
	int rc;

	if ((rc = conf_check_log(&c->log, msg, msglen)) < 0)
		return rc;
	s = c->listen;
	if (!s || !*s) {
		snprintf(msg, msglen, "'listen' must be HOST:PORT");
		return OUTPOST_E_BAD_ARGS;
	}
	if (c->tls == 0 && !hub_listen_is_loopback(s)) {
		snprintf(msg, msglen,
		         "'tls' is false but 'listen' (%s) is not a loopback address: plain HTTP "
		         "is only for loopback demos",
		         s);
		return OUTPOST_E_BAD_ARGS;
	}
	if (!c->state_dir || !*c->state_dir) {
		snprintf(msg, msglen, "'state_dir' must not be empty");
		return OUTPOST_E_BAD_ARGS;
	}
	if ((rc = hub_conf_check_store(c, msg, msglen)) < 0)
		return rc;
	if ((rc = rwrite_conf_check(c, msg, msglen)) < 0)
		return rc;
	if ((rc = hub_conf_check_mail(c, msg, msglen)) < 0)
		return rc;
	return zk_conf_check(c, msg, msglen);
}

const struct conf_kind hub_conf_kind = {hub_schema, sizeof(struct hub_conf), hub_conf_check_values};

int hub_conf_check(const json_t *conf, char *msg, size_t msglen)
{
	return conf_check_kind(&hub_conf_kind, conf, msg, msglen);
}
