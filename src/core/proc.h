/* Child processes for exec.run and executable plugins: clean environment, closed fds, own
 * process group, a deadline after which the whole group is killed, capped output. */
#ifndef OUTPOST_PROC_H
#define OUTPOST_PROC_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

struct proc_spec {
	char *const *argv;       /* argv[0]: a path, or a name looked up in the child's PATH */
	char *const *envp;       /* NULL: a clean default (PATH, LANG=C.UTF-8, HOME, USER) */
	const char *cwd;         /* NULL: "/" */
	const char *user;        /* NULL: the agent's own user; else a name or numeric uid */
	const char *stdin_data;  /* may be NULL */
	size_t stdin_len;
	size_t max_stdout;       /* bytes kept; the rest is read and dropped (truncated flag) */
	size_t max_stderr;
	int64_t deadline_ms;     /* CLOCK_MONOTONIC ms; the group is killed when it passes */
};

struct proc_result {
	int exit_code;           /* -1 when killed by a signal */
	int signal;              /* 0, or the signal that ended it */
	int timed_out;           /* the deadline passed and the group was killed */
	struct buf out, err;     /* owned; freed by proc_result_free */
	int out_truncated, err_truncated;
	int64_t duration_ms;
};

/* The calling process must ignore SIGPIPE (the daemons do at start): a child that closes its
 * stdin early must not take the agent down. */
/* Runs the process to its end or its deadline. Returns 0 when it ran, whatever its exit
 * status; a negative OUTPOST_E_* code with msg set when it could not start (no such program:
 * NOT_FOUND; unknown user or bad cwd: BAD_ARGS; not allowed to switch user: FORBIDDEN).
 * When it returns, no process of the group is left and no fd of it is open. */
int proc_run(const struct proc_spec *spec, struct proc_result *res, char *msg, size_t msglen);
void proc_result_free(struct proc_result *res);

#endif
