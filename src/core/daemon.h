/* What the daemons share: the whole of main() (flags, layered config, --check-config,
 * detaching, signals on the loop, reload on SIGHUP, a graceful stop on SIGTERM), driven by a
 * table of the daemon's own functions. */
#ifndef OUTPOST_DAEMON_H
#define OUTPOST_DAEMON_H

#include <jansson.h>
#include <stddef.h>

#include "log.h"

struct loop;

/* A flag that sets one config key (beyond --state-dir and --listen, which every daemon has). */
struct daemon_flag {
	const char *name;     /* "hub" for --hub */
	const char *conf_key; /* "hub.url" */
	const char *usage;    /* "  --hub URL          enroll with ..." */
};

struct daemon_ops {
	const char *name;                /* "outpost-agent" */
	const char *summary;             /* one line, for the man page's NAME */
	const char *description;         /* paragraphs for its DESCRIPTION ("\n\n" between) */
	const char *default_config;      /* read when it exists and --config is not given */
	const char *state_help;          /* what --state-dir holds */
	const char *listen_help;         /* what --listen serves */
	const struct daemon_flag *flags; /* NULL-terminated, may be NULL */
	json_t *(*defaults)(void);
	int (*check)(const json_t *conf, char *msg, size_t msglen);
	/* --check-config only, after check (may be NULL): the files the config names and the
	 * daemon reads at start (the hub's rules file), checked as start would; msg says where. */
	int (*check_files)(const json_t *conf, char *msg, size_t msglen);
	/* Starts the daemon on loop; *obj is handed to the others. log outlives it. */
	int (*start)(struct loop *loop, json_t *conf, struct logger *log, void **obj, char *msg,
	             size_t msglen);
	int (*reload)(void *obj, json_t *conf, char *msg, size_t msglen);
	/* Stops taking work; calls done(arg) on the loop when it may exit. */
	void (*shutdown)(void *obj, void (*done)(void *arg), void *arg);
	void (*free)(void *obj);
};

/* The daemon's main(): returns the process exit status. */
int daemon_main(const struct daemon_ops *ops, int argc, char **argv);

/* Creates path (and its parents) mode 0700, and takes an exclusive lock on path/lockname so a
 * second daemon cannot share the directory. 0 and *lock_fd, or -1 with msg. */
int daemon_state_dir(const char *path, const char *lockname, int *lock_fd, char *msg,
                     size_t msglen);

#endif
