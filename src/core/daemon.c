/* The daemons' shared main(): see daemon.h. */
#include "daemon.h"
#include "conf.h"
#include "loop.h"
#include "manpage.h"
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAEMON_MAX_FLAGS 16

struct daemon_run {
	const struct daemon_ops *ops;
	struct loop *loop;
	void *obj;
	struct logger log;
	const char *config_path;
	json_t *overrides; /* from flags: win over the file */
	int sfd;
	int stopping;
	char *notify_socket; /* $NOTIFY_SOCKET, owned; NULL when no service manager listens */
	struct loop_timer *watchdog;
};

/* Tells the service manager; a failure is logged once per state, never fatal. */
static void daemon_notify(struct daemon_run *d, const char *state)
{
	if (notify_send(d->notify_socket, state) < 0)
		log_warn(&d->log, "main", "cannot notify the service manager (%s): %s", state,
		         strerror(errno));
}

/* A beat from the loop thread itself: a loop stuck in a handler stops it, and the service
 * manager restarts the daemon. */
static void daemon_on_watchdog(void *arg)
{
	struct daemon_run *d = arg;

	if (notify_send(d->notify_socket, "WATCHDOG=1") < 0)
		log_debug(&d->log, "main", "watchdog notify: %s", strerror(errno));
}

static int daemon_detach(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return 0;
}

/* SIGPIPE ignored; SIGTERM, SIGINT and SIGHUP blocked in this thread (so in every thread
 * started later) and read from a signalfd on the loop instead. */
static int daemon_signalfd(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int daemon_state_dir(const char *path, const char *lockname, int *lock_fd, char *msg, size_t msglen)
{
	char tmp[4096];
	size_t n = strlen(path);

	*lock_fd = -1;
	if (n == 0 || n >= sizeof(tmp) - 64) {
		snprintf(msg, msglen, "state directory path is empty or too long");
		return -1;
	}
	memcpy(tmp, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST) {
			snprintf(msg, msglen, "cannot create %s: %s", tmp, strerror(errno));
			return -1;
		}
		tmp[i] = i == n ? '\0' : '/';
	}
	snprintf(tmp, sizeof(tmp), "%s/%s", path, lockname);
	*lock_fd = open(tmp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (*lock_fd < 0) {
		snprintf(msg, msglen, "cannot open %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (flock(*lock_fd, LOCK_EX | LOCK_NB) < 0) {
		/* "agent.lock" -> "another agent is running ..." */
		snprintf(msg, msglen,
		         "another %.*s is running on state directory %s (lock %s is held)",
		         (int)strcspn(lockname, "."), lockname, path, tmp);
		close(*lock_fd);
		*lock_fd = -1;
		return -1;
	}
	if (ftruncate(*lock_fd, 0) == 0)
		dprintf(*lock_fd, "%ld\n", (long)getpid());
	return 0;
}

static void daemon_usage(const struct daemon_ops *ops, FILE *f)
{
	fprintf(f,
	        "usage: %s [options]\n"
	        "  --config FILE       config file (JSON with comments; default %s if it exists)\n"
	        "  --state-dir DIR     %s\n"
	        "  --listen HOST:PORT  %s\n",
	        ops->name, ops->default_config, ops->state_help, ops->listen_help);
	for (const struct daemon_flag *fl = ops->flags; fl && fl->name; fl++)
		fprintf(f, "%s\n", fl->usage);
	fprintf(f,
	        "  --foreground        stay in the foreground, log to stderr\n"
	        "  --check-config      print the effective configuration and exit (1 if invalid)\n"
	        "  --version           print the version and exit\n");
}

/* `--help-man`: section 8, its OPTIONS from the very text of --help. */
static void daemon_man(const struct daemon_ops *ops, FILE *f)
{
	char *usage = NULL, *para;
	size_t len = 0;
	FILE *mem = open_memstream(&usage, &len);

	if (mem) {
		daemon_usage(ops, mem);
		fclose(mem);
	}
	manpage_head(f, ops->name, "8", ops->summary);
	manpage_section(f, "SH", "SYNOPSIS");
	fprintf(f, ".B %s\n[\\fIoptions\\fR]\n", ops->name);
	manpage_section(f, "SH", "DESCRIPTION");
	for (const char *p = ops->description; p && *p;) {
		const char *end = strstr(p, "\n\n");
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if ((para = strndup(p, n))) {
			manpage_text(f, para);
			free(para);
		}
		p += n + (end ? 2 : 0);
	}
	manpage_section(f, "SH", "OPTIONS");
	if (usage && strchr(usage, '\n'))
		manpage_options(f, strchr(usage, '\n') + 1);
	manpage_section(f, "SH", "SIGNALS");
	manpage_options(f, "  SIGHUP  reload the configuration file; a file that does not pass "
	                   "the checks is refused and logged, the running configuration stays\n"
	                   "  SIGTERM, SIGINT  stop gracefully: finish what is in flight; a "
	                   "second signal stops at once\n");
	manpage_section(f, "SH", "ENVIRONMENT");
	manpage_options(f, "  NOTIFY_SOCKET, WATCHDOG_USEC  set by systemd for a Type=notify "
	                   "unit: READY=1 once serving, WATCHDOG=1 every half interval from the "
	                   "event loop, STOPPING=1 at a stop signal\n");
	manpage_section(f, "SH", "FILES");
	fprintf(f, ".TP\n.I %s\nthe configuration file (JSON with comments)\n",
	        ops->default_config);
	manpage_section(f, "SH", "SEE ALSO");
	fputs(".BR outpost (1),\n.BR outpost-agent (8),\n.BR outpost-hub (8),\n"
	      ".I /usr/share/doc/outpost/\n",
	      f);
	free(usage);
}

/* The log section, which every daemon's schema has (CONF_LOG_ROWS): read before the daemon
 * starts, so the log is set up first. */
struct daemon_log_conf {
	struct conf_head head;
	struct conf_log log;
};
static const struct conf_field daemon_log_schema[] = {
    CONF_LOG_ROWS(struct daemon_log_conf, "\"info\""),
    {NULL},
};

static int daemon_log_conf(const json_t *conf, struct daemon_log_conf *lc, char *msg, size_t msglen)
{
	json_t *only = json_object(), *log = json_object_get(conf, "log");
	int rc = OUTPOST_E_INTERNAL;

	if (only && (!log || json_object_set(only, "log", log) == 0))
		rc = conf_read(only, daemon_log_schema, lc, msg, msglen);
	json_decref(only);
	return rc;
}

/* defaults <- file <- flags, then the daemon's checks. */
static int daemon_load_conf(struct daemon_run *d, json_t **out, char *msg, size_t msglen)
{
	int rc = conf_layer(d->ops->defaults(), d->config_path, d->ops->default_config,
	                    d->overrides, out, msg, msglen);

	if (rc == 0 && (rc = d->ops->check(*out, msg, msglen)) < 0) {
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

static void daemon_on_stopped(void *arg)
{
	struct daemon_run *d = arg;
	loop_stop(d->loop);
}

static void daemon_on_signal(void *arg, uint32_t events)
{
	struct daemon_run *d = arg;
	struct signalfd_siginfo si;

	(void)events;
	while (read(d->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			json_t *conf = NULL;
			char msg[512] = "";
			if (daemon_load_conf(d, &conf, msg, sizeof(msg)) < 0 ||
			    d->ops->reload(d->obj, conf, msg, sizeof(msg)) < 0)
				log_error(&d->log, "main",
				          "reload refused, keeping the running configuration: %s",
				          msg);
			json_decref(conf);
		} else if (!d->stopping) {
			d->stopping = 1;
			daemon_notify(d, "STOPPING=1");
			log_info(&d->log, "main", "%s received", strsignal((int)si.ssi_signo));
			d->ops->shutdown(d->obj, daemon_on_stopped, d);
		} else {
			log_warn(&d->log, "main", "second signal: stopping now");
			loop_stop(d->loop);
		}
	}
}

int daemon_main(const struct daemon_ops *ops, int argc, char **argv)
{
	struct option opts[9 + DAEMON_MAX_FLAGS + 1] = {
	    {"config", required_argument, NULL, 'c'}, {"state-dir", required_argument, NULL, 's'},
	    {"listen", required_argument, NULL, 'l'}, {"foreground", no_argument, NULL, 'f'},
	    {"check-config", no_argument, NULL, 'C'}, {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},         {"help-man", no_argument, NULL, 'M'},
	};
	struct daemon_run d = {.ops = ops, .sfd = -1};
	struct loop_fd *sh = NULL;
	struct daemon_log_conf lc;
	int foreground = 0, check = 0, c, rc = 1, nflags = 0;
	json_t *conf = NULL;
	char msg[512] = "";

	for (const struct daemon_flag *fl = ops->flags; fl && fl->name && nflags < DAEMON_MAX_FLAGS;
	     fl++, nflags++)
		opts[8 + nflags] =
		    (struct option){fl->name, required_argument, NULL, 1000 + nflags};
	d.overrides = json_object();
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			d.config_path = optarg;
			break;
		case 's':
			json_object_set_new(d.overrides, "state_dir", json_string(optarg));
			break;
		case 'l':
			json_object_set_new(d.overrides, "listen", json_string(optarg));
			break;
		case 'f':
			foreground = 1;
			break;
		case 'C':
			check = 1;
			break;
		case 'V':
			printf("%s %s\n", ops->name, OUTPOST_VERSION);
			json_decref(d.overrides);
			return 0;
		case 'h':
			daemon_usage(ops, stdout);
			json_decref(d.overrides);
			return 0;
		case 'M':
			daemon_man(ops, stdout);
			json_decref(d.overrides);
			return 0;
		default:
			if (c >= 1000 && c < 1000 + nflags) {
				json_object_set_new(d.overrides, ops->flags[c - 1000].conf_key,
				                    json_string(optarg));
				break;
			}
			daemon_usage(ops, stderr);
			json_decref(d.overrides);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", ops->name, argv[optind]);
		daemon_usage(ops, stderr);
		json_decref(d.overrides);
		return 2;
	}
	if (daemon_load_conf(&d, &conf, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "%s: configuration error: %s\n", ops->name, msg);
		goto out;
	}
	if (check && ops->check_files && ops->check_files(conf, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "%s: configuration error: %s\n", ops->name, msg);
		goto out;
	}
	if (check) {
		char *text = json_dumps(conf, JSON_INDENT(2) | JSON_SORT_KEYS);
		printf("%s\n", text ? text : "");
		free(text);
		rc = 0;
		goto out;
	}
	if (daemon_log_conf(conf, &lc, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "%s: configuration error: %s\n", ops->name, msg);
		goto out;
	}
	log_init(&d.log, ops->name, log_level_parse(lc.log.level),
	         !foreground || strcmp(lc.log.target, "syslog") == 0 ? LOG_TO_SYSLOG
	                                                             : LOG_TO_STDERR);
	conf_release(&lc);
	if (!foreground && daemon_detach() < 0) {
		fprintf(stderr, "%s: cannot daemonize: %s\n", ops->name, strerror(errno));
		goto out;
	}
	d.sfd = daemon_signalfd();
	if (d.sfd < 0 || loop_new(&d.loop) < 0 ||
	    loop_fd_add(d.loop, d.sfd, 0x001 /* EPOLLIN */, daemon_on_signal, &d, &sh) < 0) {
		log_error(&d.log, "main", "cannot set up the event loop: %s", strerror(errno));
		goto out;
	}
	if (ops->start(d.loop, conf, &d.log, &d.obj, msg, sizeof(msg)) < 0) {
		log_error(&d.log, "main", "cannot start: %s", msg);
		goto out;
	}
	/* Type=notify: ready once listening and started. Read once and taken out of the
	 * environment so nothing the daemon starts speaks for it. */
	if (getenv("NOTIFY_SOCKET")) {
		int64_t wd =
		    notify_watchdog_ms(getenv("WATCHDOG_USEC"), getenv("WATCHDOG_PID"), getpid());
		d.notify_socket = strdup(getenv("NOTIFY_SOCKET"));
		unsetenv("NOTIFY_SOCKET");
		if (wd > 0 &&
		    loop_timer_add(d.loop, wd, wd, daemon_on_watchdog, &d, &d.watchdog) < 0)
			log_warn(&d.log, "main", "cannot arm the watchdog timer");
		daemon_notify(&d, "READY=1");
	}
	loop_run(d.loop);
	rc = 0;
	log_info(&d.log, "main", "stopped");
out:
	if (d.obj)
		ops->free(d.obj);
	if (d.loop) {
		loop_timer_del(d.loop, d.watchdog);
		loop_fd_del(d.loop, sh);
		loop_free(d.loop);
	}
	if (d.sfd >= 0)
		close(d.sfd);
	free(d.notify_socket);
	json_decref(conf);
	json_decref(d.overrides);
	return rc;
}
