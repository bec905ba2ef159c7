/* outpost-agent: flags, config, signals; everything else is the agent library. */
#include "agent.h"
#include "core/conf.h"
#include "core/daemon.h"
#include "core/loop.h"
#include "plugins/builtin.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define AGENT_DEFAULT_CONFIG "/etc/outpost/agent.conf"
#define AGENT_GRACE_MS 30000

struct main_ctx {
	struct loop *loop;
	struct agent *agent;
	struct logger log;
	const char *config_path;
	json_t *overrides; /* from flags: win over the file */
	int sfd;
	int stopping;
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: outpost-agent [options]\n"
	        "  --config FILE      config file (JSON with comments; default %s if it exists)\n"
	        "  --state-dir DIR    state directory (database, lock, plugin state)\n"
	        "  --listen HOST:PORT local API address (\"\" for none)\n"
	        "  --hub URL          enroll with and connect to this hub (hub.url)\n"
	        "  --token TOKEN      enrollment token for the first start (hub.token)\n"
	        "  --foreground       stay in the foreground, log to stderr\n"
	        "  --check-config     print the effective configuration and exit (1 if invalid)\n"
	        "  --version          print the version and exit\n",
	        AGENT_DEFAULT_CONFIG);
}

/* defaults <- file <- flags. */
static int main_load_conf(struct main_ctx *m, json_t **out, char *msg, size_t msglen)
{
	int rc = conf_layer(agent_conf_defaults(), m->config_path, AGENT_DEFAULT_CONFIG,
	                    m->overrides, out, msg, msglen);

	if (rc == 0 && (rc = agent_conf_check(*out, msg, msglen)) < 0) {
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

static void main_on_drained(void *arg)
{
	struct main_ctx *m = arg;
	loop_stop(m->loop);
}

static void main_on_signal(void *arg, uint32_t events)
{
	struct main_ctx *m = arg;
	struct signalfd_siginfo si;

	(void)events;
	while (read(m->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			json_t *conf = NULL;
			char msg[512] = "";
			if (main_load_conf(m, &conf, msg, sizeof(msg)) < 0 ||
			    agent_reload(m->agent, conf, msg, sizeof(msg)) < 0)
				log_error(&m->log, "agent",
				          "reload refused, keeping the running "
				          "configuration: %s",
				          msg);
			json_decref(conf);
		} else if (!m->stopping) {
			m->stopping = 1;
			log_info(&m->log, "agent", "%s received", strsignal((int)si.ssi_signo));
			agent_shutdown(m->agent, AGENT_GRACE_MS, main_on_drained, m);
		} else {
			log_warn(&m->log, "agent", "second signal: stopping now");
			loop_stop(m->loop);
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'}, {"state-dir", required_argument, NULL, 's'},
	    {"listen", required_argument, NULL, 'l'}, {"hub", required_argument, NULL, 'H'},
	    {"token", required_argument, NULL, 'T'},  {"foreground", no_argument, NULL, 'f'},
	    {"check-config", no_argument, NULL, 'C'}, {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	struct main_ctx m = {.sfd = -1};
	struct loop_fd *sh = NULL;
	int foreground = 0, check = 0, c, rc = 1;
	json_t *conf = NULL;
	char msg[512] = "";

	m.overrides = json_object();
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			m.config_path = optarg;
			break;
		case 's':
			json_object_set_new(m.overrides, "state_dir", json_string(optarg));
			break;
		case 'l':
			json_object_set_new(m.overrides, "listen", json_string(optarg));
			break;
		case 'H':
			json_object_set_new(m.overrides, "hub.url", json_string(optarg));
			break;
		case 'T':
			json_object_set_new(m.overrides, "hub.token", json_string(optarg));
			break;
		case 'f':
			foreground = 1;
			break;
		case 'C':
			check = 1;
			break;
		case 'V':
			printf("outpost-agent %s\n", OUTPOST_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "outpost-agent: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (main_load_conf(&m, &conf, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "outpost-agent: configuration error: %s\n", msg);
		goto out;
	}
	if (check) {
		char *text = json_dumps(conf, JSON_INDENT(2) | JSON_SORT_KEYS);
		printf("%s\n", text ? text : "");
		free(text);
		rc = 0;
		goto out;
	}
	log_init(&m.log, "outpost-agent",
	         log_level_parse(json_string_value(conf_get(conf, "log.level"))),
	         !foreground ||
	                 strcmp(json_string_value(conf_get(conf, "log.target")), "syslog") == 0
	             ? LOG_TO_SYSLOG
	             : LOG_TO_STDERR);
	if (!foreground && daemon_detach() < 0) {
		fprintf(stderr, "outpost-agent: cannot daemonize: %s\n", strerror(errno));
		goto out;
	}
	/* Signals arrive through a signalfd on the loop; every thread starts with them blocked. */
	m.sfd = daemon_signalfd();
	if (m.sfd < 0 || loop_new(&m.loop) < 0 ||
	    loop_fd_add(m.loop, m.sfd, 0x001 /* EPOLLIN */, main_on_signal, &m, &sh) < 0) {
		log_error(&m.log, "agent", "cannot set up the event loop: %s", strerror(errno));
		goto out;
	}
	if (agent_new(m.loop, builtin_plugins, conf, &m.log, &m.agent, msg, sizeof(msg)) < 0) {
		log_error(&m.log, "agent", "cannot start: %s", msg);
		goto out;
	}
	loop_run(m.loop);
	rc = 0;
	log_info(&m.log, "agent", "stopped");
out:
	agent_free(m.agent);
	if (m.loop) {
		loop_fd_del(m.loop, sh);
		loop_free(m.loop);
	}
	if (m.sfd >= 0)
		close(m.sfd);
	json_decref(conf);
	json_decref(m.overrides);
	return rc;
}
