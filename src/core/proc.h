/* Child processes for exec.run and executable plugins: clean environment, closed fds, own
 * process group, a deadline after which the whole group is killed, capped output.
 *
 * The process group is the unit: when the command's first process (the leader) exits, or the
 * deadline passes, every process still in its group gets SIGKILL. A command that means to
 * leave something running must start it outside the group (systemd-run, setsid); such a
 * process keeps the agent's pipes only PROC_DRAIN_MS after the leader exits.
 *
 * The child starts with umask 022, what an operator's login shell gives, whatever the umask
 * of the daemon (the agent's unit narrows its own to 077), and oom_score_adj 0 whatever the
 * daemon's (the agent's unit protects the agent): a command behaves as typed in a shell. */
#ifndef OUTPOST_PROC_H
#define OUTPOST_PROC_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The file mode creation mask every child starts with. */
#define PROC_UMASK 022

/* After the leader exits, how long output is still read from pipes held open by a process
 * that left its group. */
#define PROC_DRAIN_MS 200

struct proc_spec {
	char *const *argv;      /* argv[0]: a path, or a name looked up in the child's PATH */
	char *const *envp;      /* NULL: a clean default (PATH, LANG=C.UTF-8, HOME, USER,
	                         * LOGNAME; HOME and USER those of the user it runs as) */
	char *const *env_add;   /* NULL-terminated "NAME=value" added to the default, replacing
	                         * an entry of the same name; ignored when envp is set */
	const char *cwd;        /* NULL: "/" */
	const char *user;       /* NULL: the agent's own user; else a name or numeric uid */
	const char *stdin_data; /* may be NULL */
	size_t stdin_len;
	size_t max_stdout; /* bytes kept; the rest is read and dropped (truncated flag) */
	size_t max_stderr;
	int64_t deadline_ms; /* CLOCK_MONOTONIC ms; the group is killed when it passes */
	/* May be NULL. Asked about once a second while the command runs: nonzero ends it now,
	 * as a deadline would (the agent is stopping and will not wait for it any longer). */
	int (*abandoned)(void *arg);
	void *abandoned_arg;
	/* May be NULL. Called once, in the calling thread, when the child runs (its exec
	 * succeeded): callers that time starting a child apart from running it (the agent's task
	 * phases) mark the moment here. */
	void (*started)(void *arg);
	void *started_arg;
	/* May be NULL. A cgroup v2 cgroup.procs file the child moves itself into before exec,
	 * so the cgroup's limits hold from its first instruction (it cannot: UNAVAILABLE). */
	const char *cgroup_procs;
};

struct proc_result {
	int exit_code;       /* -1 when killed by a signal (or never started: timed out) */
	int signal;          /* 0, or the signal that ended it */
	int timed_out;       /* the deadline passed and the group was killed */
	int abandoned;       /* spec->abandoned said so and the group was killed */
	struct buf out, err; /* owned; freed by proc_result_free */
	int out_truncated, err_truncated;
	int64_t duration_ms;
	int64_t cpu_ns; /* the leader's user + system CPU time, with what it reaped (wait4) */
};

/* Runs the process to its end or its deadline. Returns 0 when it ran, whatever its exit
 * status; a negative OUTPOST_E_* code with msg set when it could not start (no such program:
 * NOT_FOUND; unknown user, bad cwd or not an executable: BAD_ARGS; not allowed to switch user
 * or to run the file: FORBIDDEN; arguments over the kernel's limit: TOO_LARGE).
 * When it returns, the leader is reaped, every process left in its group has been sent
 * SIGKILL, and no fd of it is open. Safe to call from several threads at once. SIGPIPE is
 * blocked in the calling thread while it runs (a pending one it caused is consumed), so a
 * child that closes its stdin early cannot take the caller down; the daemons also ignore
 * SIGPIPE at start. */
int proc_run(const struct proc_spec *spec, struct proc_result *res, char *msg, size_t msglen);
void proc_result_free(struct proc_result *res);

/* How long proc_spawn waits for the exec when spec->deadline_ms is 0. */
#define PROC_SPAWN_EXEC_MS 5000

/* Starts a long-running child and returns once its exec succeeded: the same clean start as
 * proc_run (environment, user, closed fds, its own process group led by *pid, umask,
 * oom_score_adj 0, spec->cgroup_procs), with stdin on /dev/null and stdout and stderr appended
 * to out_path (created 0640; NULL: /dev/null). spec->deadline_ms bounds the wait for the exec
 * only (0: PROC_SPAWN_EXEC_MS); stdin_data, max_* and the callbacks are not used. The caller
 * owns the child from then on: it signals the group (kill(-pid, ...)) and reaps the leader
 * (waitpid). 0 with *pid, or proc_run's codes with msg (TIMEOUT: no exec within the deadline,
 * the child killed and reaped), nothing left running. Any thread. */
int proc_spawn(const struct proc_spec *spec, const char *out_path, pid_t *pid, char *msg,
               size_t msglen);

#endif
