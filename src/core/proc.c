/* Child processes: see proc.h. The child is made with fork() and only async-signal-safe calls
 * happen between fork and exec: everything that needs memory or files (user lookup, group
 * list, environment) is prepared in the parent first. */
#include "proc.h"
#include "clk.h"

#include <outpost/plugin.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROC_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define PROC_MAX_GROUPS 256
/* After the leader exits, how long we still read pipes held open by what it left behind. */
#define PROC_DRAIN_MS 200

enum { STAGE_SETUP = 1, STAGE_CHDIR, STAGE_EXEC };

struct proc_user {
	int set;
	uid_t uid;
	gid_t gid;
	gid_t groups[PROC_MAX_GROUPS];
	int ngroups;
	char name[64];
	char home[256];
};

static int proc_lookup_user(const char *user, struct proc_user *pu, char *msg, size_t msglen)
{
	struct passwd pw, *res = NULL;
	char *end, buf[4096];
	long id;

	memset(pu, 0, sizeof(*pu));
	errno = 0;
	id = strtol(user, &end, 10);
	if (*user && !*end && id >= 0 && id < INT_MAX)
		getpwuid_r((uid_t)id, &pw, buf, sizeof(buf), &res);
	else
		getpwnam_r(user, &pw, buf, sizeof(buf), &res);
	if (!res) {
		snprintf(msg, msglen, "unknown user '%.64s'", user);
		return OUTPOST_E_BAD_ARGS;
	}
	if (geteuid() != 0 && pw.pw_uid != geteuid()) {
		snprintf(msg, msglen, "cannot run as '%.64s': the agent is not root", user);
		return OUTPOST_E_FORBIDDEN;
	}
	pu->set = 1;
	pu->uid = pw.pw_uid;
	pu->gid = pw.pw_gid;
	pu->ngroups = PROC_MAX_GROUPS;
	if (getgrouplist(pw.pw_name, pw.pw_gid, pu->groups, &pu->ngroups) < 0)
		pu->ngroups = 1, pu->groups[0] = pw.pw_gid;
	snprintf(pu->name, sizeof(pu->name), "%s", pw.pw_name);
	snprintf(pu->home, sizeof(pu->home), "%s", pw.pw_dir);
	return 0;
}

static void child_fail(int fd, int stage)
{
	int rep[2] = {stage, errno};
	ssize_t n = write(fd, rep, sizeof(rep));
	(void)n;
	_exit(127);
}

/* Async-signal-safe PATH search and exec. */
static void child_exec(char *const *argv, char *const *envp, const char *path)
{
	const char *p = path;
	char full[PATH_MAX];
	int saved = ENOENT;

	if (strchr(argv[0], '/')) {
		execve(argv[0], argv, envp);
		return;
	}
	while (*p) {
		const char *colon = strchr(p, ':');
		size_t dl = colon ? (size_t)(colon - p) : strlen(p);
		size_t fl = strlen(argv[0]);
		if (dl + 1 + fl + 1 <= sizeof(full)) {
			memcpy(full, p, dl);
			full[dl] = '/';
			memcpy(full + dl + 1, argv[0], fl + 1);
			execve(full, argv, envp);
			if (errno != ENOENT && errno != ENOTDIR)
				saved = errno;
		}
		if (!colon)
			break;
		p = colon + 1;
	}
	errno = saved;
}

static void child_run(const struct proc_spec *spec, const struct proc_user *pu, char *const *envp,
		      const char *path, int in, int out, int err, int rep)
{
	sigset_t none;

	setpgid(0, 0);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0 || dup2(rep, 3) < 0)
		child_fail(rep, STAGE_SETUP);
	if (fcntl(3, F_SETFD, FD_CLOEXEC) < 0)
		child_fail(3, STAGE_SETUP);
	syscall(SYS_close_range, 4U, ~0U, 0U);
	if (pu->set) {
		if (setgroups((size_t)pu->ngroups, pu->groups) < 0 || setgid(pu->gid) < 0 ||
		    setuid(pu->uid) < 0)
			child_fail(3, STAGE_SETUP);
	}
	if (chdir(spec->cwd ? spec->cwd : "/") < 0)
		child_fail(3, STAGE_CHDIR);
	child_exec(spec->argv, envp, path);
	child_fail(3, STAGE_EXEC);
}

static int proc_env_path(char *const *envp, const char **path)
{
	*path = PROC_DEFAULT_PATH;
	for (char *const *e = envp; e && *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			*path = *e + 5;
	return 0;
}

static void proc_take(struct buf *b, size_t cap, int *truncated, const char *data, size_t n)
{
	size_t room = b->len < cap ? cap - b->len : 0;

	if (n > room) {
		*truncated = 1;
		n = room;
	}
	if (n && buf_append(b, data, n) < 0)
		*truncated = 1;
}

int proc_run(const struct proc_spec *spec, struct proc_result *res, char *msg, size_t msglen)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, rep[2] = {-1, -1};
	struct proc_user pu = {0};
	char *defenv[6] = {NULL};
	char envbuf[4][300];
	char *const *envp = spec->envp;
	const char *path;
	int64_t start = clk_mono_ms(), drain_until = -1;
	size_t in_off = 0;
	int pidfd = -1, status = 0, exited = 0, rc = 0, report[2];
	pid_t pid;
	ssize_t n;

	memset(res, 0, sizeof(*res));
	if (!spec->argv || !spec->argv[0] || !spec->argv[0][0]) {
		snprintf(msg, msglen, "empty command");
		return OUTPOST_E_BAD_ARGS;
	}
	if (spec->user && (rc = proc_lookup_user(spec->user, &pu, msg, msglen)) < 0)
		return rc;
	if (!envp) {
		snprintf(envbuf[0], sizeof(envbuf[0]), "PATH=%s", PROC_DEFAULT_PATH);
		snprintf(envbuf[1], sizeof(envbuf[1]), "LANG=C.UTF-8");
		if (pu.set) {
			snprintf(envbuf[2], sizeof(envbuf[2]), "HOME=%s", pu.home);
			snprintf(envbuf[3], sizeof(envbuf[3]), "USER=%s", pu.name);
		} else {
			snprintf(envbuf[2], sizeof(envbuf[2]), "HOME=/");
			snprintf(envbuf[3], sizeof(envbuf[3]), "USER=%s",
				 geteuid() == 0 ? "root" : "outpost");
		}
		for (int i = 0; i < 4; i++)
			defenv[i] = envbuf[i];
		envp = defenv;
	}
	proc_env_path(envp, &path);

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
	    pipe2(rep, O_CLOEXEC) < 0) {
		snprintf(msg, msglen, "pipe: %s", strerror(errno));
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(msg, msglen, "fork: %s", strerror(errno));
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	if (pid == 0)
		child_run(spec, &pu, envp, path, in[0], out[1], err[1], rep[1]);
	/* Also from the parent, so a kill of the group cannot race the child's own setpgid. */
	setpgid(pid, pid);
	close(in[0]), in[0] = -1;
	close(out[1]), out[1] = -1;
	close(err[1]), err[1] = -1;
	close(rep[1]), rep[1] = -1;

	/* Blocks until exec succeeds (EOF: the fd is close-on-exec) or the child reports why not. */
	do
		n = read(rep[0], report, sizeof(report));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(report)) {
		waitpid(pid, NULL, 0);
		if (report[0] == STAGE_CHDIR) {
			snprintf(msg, msglen, "cannot change to directory '%.200s': %s",
				 spec->cwd ? spec->cwd : "/", strerror(report[1]));
			rc = OUTPOST_E_BAD_ARGS;
		} else if (report[0] == STAGE_EXEC && (report[1] == ENOENT || report[1] == ENOTDIR)) {
			snprintf(msg, msglen, "command not found: '%.200s'", spec->argv[0]);
			rc = OUTPOST_E_NOT_FOUND;
		} else if (report[0] == STAGE_EXEC && report[1] == EACCES) {
			snprintf(msg, msglen, "permission denied: '%.200s'", spec->argv[0]);
			rc = OUTPOST_E_FORBIDDEN;
		} else {
			snprintf(msg, msglen, "cannot start '%.200s': %s", spec->argv[0],
				 strerror(report[1]));
			rc = OUTPOST_E_INTERNAL;
		}
		goto out;
	}

	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	if (!spec->stdin_data || spec->stdin_len == 0)
		close(in[1]), in[1] = -1;

	while (out[0] >= 0 || err[0] >= 0 || !exited) {
		struct pollfd pfd[4];
		int np = 0, wait;
		int64_t now = clk_mono_ms(), until = spec->deadline_ms;

		if (!exited && now >= spec->deadline_ms) {
			kill(-pid, SIGKILL);
			res->timed_out = 1;
			waitpid(pid, &status, 0);
			exited = 1;
			drain_until = now + PROC_DRAIN_MS;
			continue;
		}
		if (exited && now >= drain_until)
			break;
		if (exited)
			until = drain_until;
		wait = until - now > 1000 ? 1000 : (int)(until - now);
		if (!exited && pidfd < 0 && wait > 50)
			wait = 50; /* no pidfd: poll for the exit */
		if (out[0] >= 0)
			pfd[np++] = (struct pollfd){.fd = out[0], .events = POLLIN};
		if (err[0] >= 0)
			pfd[np++] = (struct pollfd){.fd = err[0], .events = POLLIN};
		if (in[1] >= 0)
			pfd[np++] = (struct pollfd){.fd = in[1], .events = POLLOUT};
		if (pidfd >= 0 && !exited)
			pfd[np++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
		if (poll(pfd, (nfds_t)np, wait) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < np; i++) {
			char chunk[16384];
			if (!pfd[i].revents)
				continue;
			if (pfd[i].fd == in[1]) {
				n = write(in[1], spec->stdin_data + in_off, spec->stdin_len - in_off);
				if (n > 0)
					in_off += (size_t)n;
				if ((n < 0 && errno != EAGAIN) || in_off == spec->stdin_len)
					close(in[1]), in[1] = -1;
			} else if (pfd[i].fd == pidfd) {
				/* handled below by waitpid */
			} else {
				int *fdp = pfd[i].fd == out[0] ? &out[0] : &err[0];
				n = read(*fdp, chunk, sizeof(chunk));
				if (n > 0) {
					if (fdp == &out[0])
						proc_take(&res->out, spec->max_stdout,
							  &res->out_truncated, chunk, (size_t)n);
					else
						proc_take(&res->err, spec->max_stderr,
							  &res->err_truncated, chunk, (size_t)n);
				} else if (n == 0 || errno != EAGAIN) {
					close(*fdp), *fdp = -1;
				}
			}
		}
		if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
			exited = 1;
			/* What the command left running in its group goes with it. */
			kill(-pid, SIGKILL);
			drain_until = clk_mono_ms() + PROC_DRAIN_MS;
		}
	}
	if (WIFEXITED(status)) {
		res->exit_code = WEXITSTATUS(status);
	} else if (WIFSIGNALED(status)) {
		res->exit_code = -1;
		res->signal = WTERMSIG(status);
	}
	res->duration_ms = clk_mono_ms() - start;
out:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
		if (rep[i] >= 0)
			close(rep[i]);
	}
	if (pidfd >= 0)
		close(pidfd);
	if (rc < 0)
		proc_result_free(res);
	return rc;
}

void proc_result_free(struct proc_result *res)
{
	buf_free(&res->out);
	buf_free(&res->err);
}
