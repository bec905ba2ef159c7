/* outpost-sim's config: defaults, schema and checks (docs/sim.md). */
#include "sim.h"
#include "agent/link.h"
#include "core/conf.h"
#include "core/err.h"
#include "core/httpd.h"

#include <stdio.h>
#include <string.h>

static const struct conf_field sim_schema[] = {
    {"listen", CONF_STRING, 0, 0, "HOST:PORT of the control API, on loopback"},
    {"state_dir", CONF_STRING, 0, 0, "one directory per virtual agent, the control token"},
    {"log", CONF_OBJECT, 0, 0, NULL},
    {"log.level", CONF_STRING, 0, 0, "error, warn, info, debug"},
    {"log.target", CONF_STRING, 0, 0, "stderr or syslog"},
    {"hub", CONF_OBJECT, 0, 0, NULL},
    {"hub.url", CONF_STRING, 0, 0, "the hub, https://HOST:PORT"},
    {"hub.token", CONF_STRING, 0, 0, "enrollment token for every virtual agent"},
    {"hub.ca", CONF_STRING, 0, 0, "CA file for the hub's TLS; none: pin on first use"},
    {"hub.fingerprint", CONF_STRING, 0, 0, "sha256:HEX the first-use certificate must have"},
    {"agents", CONF_INT, 1, 1000000, "virtual agents"},
    {"host_prefix", CONF_STRING, 0, 0, "host ids: the prefix and 5 digits"},
    {"sources", CONF_INT, 0, 64262, "loopback source addresses 127.0.x.y; 0: as needed"},
    {"ramp_per_s", CONF_INT, 1, 1000000, "virtual agents started per second"},
    {"metrics", CONF_OBJECT, 0, 0, NULL},
    {"metrics.interval_ms", CONF_INT, 0, 86400000, "sample grid; 0: no metrics"},
    {"metrics.series", CONF_INT, 1, 10000, "synthetic series per agent"},
    {"exec", CONF_OBJECT, 0, 0, NULL},
    {"exec.mode", CONF_STRING, 0, 0, "fake (answer at once) or real (fork the command)"},
    {"dispatch", CONF_OBJECT, 0, 0, NULL},
    {"dispatch.workers", CONF_INT, 1, 64, "worker threads shared by every virtual agent"},
    {NULL, 0, 0, 0, NULL},
};

json_t *sim_conf_defaults(void)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s}, s:{}, s:i, s:s, s:i, s:i, s:{s:i, s:i},"
	                 " s:{s:s}, s:{s:i}}",
	                 "listen", "127.0.0.1:7090", "state_dir", "outpost-state/sim", "log",
	                 "level", "warn", "target", "stderr", "hub", "agents", 100, "host_prefix",
	                 "sim-", "sources", 0, "ramp_per_s", 500, "metrics", "interval_ms", 10000,
	                 "series", 20, "exec", "mode", "fake", "dispatch", "workers", 2);
}

int sim_conf_check(const json_t *conf, char *msg, size_t msglen)
{
	const char *url = json_string_value(conf_get(conf, "hub.url"));
	const char *listen = json_string_value(conf_get(conf, "listen"));
	const char *mode = json_string_value(conf_get(conf, "exec.mode"));
	const char *prefix = json_string_value(conf_get(conf, "host_prefix"));
	int64_t iv = json_integer_value(conf_get(conf, "metrics.interval_ms"));
	int rc = conf_check(conf, sim_schema, msg, msglen);

	if (rc < 0)
		return rc;
	rc = conf_check_log(conf, msg, msglen);
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
