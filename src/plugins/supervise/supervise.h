/* The supervise plugin's parts (docs/plugins/supervise.md): supervise.c keeps the agents
 * running (the loop's tick) and answers the ops; sv_proc.c measures them and tails their
 * logs; sv_upgrade.c replaces one with a new binary and rolls back. */
#ifndef OUTPOST_PLUGINS_SUPERVISE_H
#define OUTPOST_PLUGINS_SUPERVISE_H

#include "sv_conf.h"

#include <outpost/plugin.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

enum sv_state {
	SV_STOPPED = 0, /* not started yet, or stopped on purpose (stop, upgrade) */
	SV_RUNNING,
	SV_STOPPING, /* SIGTERM sent; SIGKILL at kill_at */
	SV_WAITING,  /* ended; started again at next_start (the backoff) */
	SV_EXITED,   /* ended; its restart policy says not to start it again */
};

struct sv_agent {
	char name[40];
	const struct sv_agent_conf *c; /* in sv->conf; NULL once removed from the config */
	char *conf_text;               /* its section as text: a reload restarts it on a change */
	enum sv_state state;
	int want_run;    /* 0 after supervise.stop, until supervise.start */
	int restart_req; /* supervise.restart or a config change: stop, then start at once */
	int hold;        /* an upgrade owns it: no start or restart by the tick */
	char stop_why[16];
	pid_t pid; /* the leader, which leads its process group */
	int64_t started_mono, started_real, kill_at, next_start, backoff, stop_timeout_ms;
	uint64_t starts, restarts, crashes, unhealthy, mem_kills;
	int last_code, last_signal;
	int64_t last_exit_real;
	char last_reason[200];
	/* the health check */
	pid_t hc_pid;
	int64_t hc_started, hc_next;
	int hc_fails, healthy; /* healthy: -1 not checked since the start */
	char hc_last[160];
	/* measured by sv_proc.c */
	uint64_t rss, cpu_ticks;
	int64_t cpu_at;
	double cpu_pct;
	int nprocs;
	/* the cgroup (cg_dir "" : none) and what holds the limits */
	char cg_dir[PATH_MAX];
	char limits_note[400];
	int mem_by_cgroup;
	uint64_t mem_limit; /* bytes; 0: none */
	uint64_t oom_kills_seen;
	/* the log */
	int64_t log_off;
	ino_t log_ino;
	uint64_t log_lines_matched;
	/* the version command's answer for start number version_start */
	char version[128];
	uint64_t version_start;
};

struct sv {
	struct outpost_plugin_ctx *pc;
	pthread_mutex_t lock; /* guards everything below: the tick (loop thread) and the ops */
	struct sv_conf *conf;
	char *conf_text;
	char conf_error[512];
	struct sv_agent *ag[2 * SV_AGENTS_MAX]; /* the configured, then removed ones stopping */
	size_t n;
	int timer;
	int64_t timer_ms, metrics_next;
	json_t *events;            /* made under the lock, published outside it */
	atomic_int publish_warned; /* the tick and the ops publish */
};

/* sv_proc.c */
/* Measures every running agent's processes (its cgroup's, else its process group's): RSS,
 * CPU share since the last measure, count. Under sv->lock. */
void sv_proc_sample(struct sv *sv, int64_t now_mono);
/* New lines of a's log that hold one of its log_match words: an event each (a few a call).
 * The first look starts at the end of the file. Under sv->lock. */
void sv_proc_tail(struct sv *sv, struct sv_agent *a);
/* Appends one event to sv->events. Under sv->lock. */
void sv_event(struct sv *sv, const struct sv_agent *a, const char *kind, const char *severity,
              json_t *data, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* supervise.c, for sv_upgrade.c: the agent called name, under sv->lock, or NULL. */
struct sv_agent *sv_find(struct sv *sv, const char *name);
/* Hands sv->events to the hub (not under the lock). */
void sv_publish(struct sv *sv);
/* Waits (polling, not under the lock) until a's state is one of mask's bits (1 << SV_*) or
 * until until_mono; 0 or -1. */
int sv_wait_state(struct sv *sv, const char *name, unsigned mask, int64_t until_mono);

/* An argv copied out of the config (a reload may free it while a command runs); NULL-ended,
 * freed by sv_argv_free (NULL ok). */
char **sv_argv_dup(const struct conf_strv *v);
void sv_argv_free(char **v);
/* Runs argv as user (NULL: the agent's) for at most ms; 0 when it exited 0. out (NULL: not
 * wanted) gets the first line of its output. Not under the lock. */
int sv_run(char **argv, const char *user, int64_t ms, char *out, size_t outlen);

/* sv_upgrade.c: the op. */
int sv_op_upgrade(struct outpost_call *call, json_t *args, json_t **result);

#endif
