/* Child processes: see proc.h. The child is made with clone(CLONE_VM | CLONE_VFORK), as
 * posix_spawn does, and only async-signal-safe calls happen before exec: everything that needs
 * memory or files (user lookup, group list, environment) is prepared in the parent first.
 * Not fork(): copying the agent's page tables, the copy-on-write faults of its other threads
 * afterwards (each one a TLB shootdown) and tearing the copy down again at exec cost more than
 * the command itself where page faults are expensive (a VM with shadow paging). */
#include "proc.h"
#include "clk.h"

#include <outpost/plugin.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROC_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define PROC_MAX_GROUPS 256
#define PROC_ENV_DEFAULTS 5
/* Where the child parks its four pipe ends before putting them on 0..3. */
#define PROC_FD_PARK 10
/* The child's stack until exec: child_exec's PATH_MAX buffer and a few frames. */
#define PROC_CHILD_STACK 32768

enum { STAGE_SETUP = 1, STAGE_USER, STAGE_CHDIR, STAGE_EXEC, STAGE_CGROUP };

struct proc_user {
	int sw; /* switch ids in the child */
	uid_t uid;
	gid_t gid;
	gid_t groups[PROC_MAX_GROUPS];
	int ngroups;
	char name[64];
	char home[256];
};

/* Fills pu for user (NULL: the agent's own effective user, for HOME and USER only). */
static int proc_lookup_user(const char *user, struct proc_user *pu, char *msg, size_t msglen)
{
	struct passwd pw, *res = NULL;
	char *end, buf[4096];
	long id;

	memset(pu, 0, sizeof(*pu));
	if (!user) {
		getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res);
		if (res) {
			snprintf(pu->name, sizeof(pu->name), "%s", pw.pw_name);
			snprintf(pu->home, sizeof(pu->home), "%s", pw.pw_dir);
		} else {
			snprintf(pu->name, sizeof(pu->name), "%u", (unsigned)geteuid());
			snprintf(pu->home, sizeof(pu->home), "/");
		}
		return 0;
	}
	errno = 0;
	id = strtol(user, &end, 10);
	if (*user && !*end && errno == 0 && id >= 0 && id < INT_MAX)
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
	/* Not root and asked for itself: nothing to switch (setgroups would fail). */
	pu->sw = geteuid() == 0;
	pu->uid = pw.pw_uid;
	pu->gid = pw.pw_gid;
	pu->ngroups = PROC_MAX_GROUPS;
	if (getgrouplist(pw.pw_name, pw.pw_gid, pu->groups, &pu->ngroups) < 0)
		pu->ngroups = 1, pu->groups[0] = pw.pw_gid;
	snprintf(pu->name, sizeof(pu->name), "%s", pw.pw_name);
	snprintf(pu->home, sizeof(pu->home), "%s", pw.pw_dir);
	return 0;
}

static char *env_entry(const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	char *e = malloc(nl + 1 + vl + 1);

	if (e) {
		memcpy(e, name, nl);
		e[nl] = '=';
		memcpy(e + nl + 1, value, vl + 1);
	}
	return e;
}

/* Whether list (NULL-terminated "NAME=value") has an entry for the name of entry e. */
static int env_has(char *const *list, const char *e)
{
	size_t nl = strcspn(e, "=");

	for (; list && *list; list++)
		if (strncmp(*list, e, nl) == 0 && (*list)[nl] == '=')
			return 1;
	return 0;
}

/* The default environment plus spec->env_add. *out: caller frees with env_free(*out, *nown);
 * the first *nown entries are owned, the added ones borrowed from spec. */
static int proc_env_build(const struct proc_spec *spec, const struct proc_user *pu, char ***out,
                          size_t *nown)
{
	const char *defs[PROC_ENV_DEFAULTS][2] = {
	    {"PATH", PROC_DEFAULT_PATH}, {"LANG", "C.UTF-8"},   {"HOME", pu->home},
	    {"USER", pu->name},          {"LOGNAME", pu->name},
	};
	size_t nadd = 0, n = 0;
	char **v;

	for (char *const *e = spec->env_add; e && *e; e++)
		nadd++;
	v = calloc(PROC_ENV_DEFAULTS + nadd + 1, sizeof(*v));
	if (!v)
		return -1;
	for (size_t i = 0; i < PROC_ENV_DEFAULTS; i++) {
		char *e = env_entry(defs[i][0], defs[i][1]);
		if (!e) {
			for (size_t j = 0; j < n; j++)
				free(v[j]);
			free(v);
			return -1;
		}
		if (env_has(spec->env_add, e)) {
			free(e);
			continue;
		}
		v[n++] = e;
	}
	*nown = n;
	for (char *const *e = spec->env_add; e && *e; e++)
		v[n++] = *e;
	*out = v;
	return 0;
}

static void env_free(char **v, size_t nown)
{
	for (size_t i = 0; v && i < nown; i++)
		free(v[i]);
	free(v);
}

/* The PATH the child searches: the first PATH= of its environment, as getenv would find. */
static const char *proc_env_path(char *const *envp)
{
	for (char *const *e = envp; e && *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			return *e + 5;
	return PROC_DEFAULT_PATH;
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

/* In the child. Entered with every signal blocked (the parent blocked them around clone), so
 * no handler of the agent runs here; they are reset before the mask is lifted. fds: stdin
 * read end, stdout and stderr write ends, report write end. */
static void child_run(const struct proc_spec *spec, const struct proc_user *pu, char *const *envp,
                      const char *path, const int fds[4], long maxfd)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigset_t none;
	int tmp[4];

	for (int s = 1; s < NSIG; s++)
		sigaction(s, &dfl, NULL);
	setpgid(0, 0);
	/* Park the four ends above 3 first: one could sit where another must go, and dup2 onto
	 * itself would keep its close-on-exec flag. */
	for (int i = 0; i < 4; i++)
		if ((tmp[i] = fcntl(fds[i], F_DUPFD, PROC_FD_PARK)) < 0)
			child_fail(fds[3], STAGE_SETUP);
	for (int i = 0; i < 4; i++)
		if (dup2(tmp[i], i) < 0)
			child_fail(tmp[3], STAGE_SETUP);
	if (fcntl(3, F_SETFD, FD_CLOEXEC) < 0)
		child_fail(3, STAGE_SETUP);
	if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0)
		for (long fd = 4; fd < maxfd; fd++)
			close((int)fd);
	/* A command is an ordinary process to the OOM killer, whatever protection the agent has
	 * (its unit's OOMScoreAdjust). Raising the score needs no privilege; a failure (no /proc)
	 * leaves the inherited one. */
	if ((tmp[0] = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC)) >= 0) {
		ssize_t w = write(tmp[0], "0", 1);
		(void)w;
		close(tmp[0]);
	}
	/* Into its cgroup before anything of the command runs, so its limits hold from its
	 * first instruction ("0": the writer itself). */
	if (spec->cgroup_procs) {
		if ((tmp[0] = open(spec->cgroup_procs, O_WRONLY | O_CLOEXEC)) < 0 ||
		    write(tmp[0], "0", 1) != 1)
			child_fail(3, STAGE_CGROUP);
		close(tmp[0]);
	}
	/* Raw system calls: only this thread exists here, and glibc's wrappers would try to
	 * bring the agent's other (absent) threads along. */
	if (pu->sw && (syscall(SYS_setgroups, (size_t)pu->ngroups, pu->groups) < 0 ||
	               syscall(SYS_setresgid, pu->gid, pu->gid, pu->gid) < 0 ||
	               syscall(SYS_setresuid, pu->uid, pu->uid, pu->uid) < 0))
		child_fail(3, STAGE_USER);
	if (chdir(spec->cwd ? spec->cwd : "/") < 0)
		child_fail(3, STAGE_CHDIR);
	umask(PROC_UMASK);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	child_exec(spec->argv, envp, path);
	child_fail(3, STAGE_EXEC);
}

struct child_args {
	const struct proc_spec *spec;
	const struct proc_user *pu;
	char *const *envp;
	const char *path;
	const int *fds;
	long maxfd;
};

/* clone's entry: shares the parent's memory (the parent's thread waits until exec or _exit),
 * so it writes nothing but its own stack; it has its own fds and signal handlers. */
static int child_main(void *arg)
{
	const struct child_args *c = arg;

	child_run(c->spec, c->pu, c->envp, c->path, c->fds, c->maxfd);
	return 127; /* not reached: child_run execs or _exits */
}

/* The message and code for a child that reported it could not start. */
static int proc_start_error(const struct proc_spec *spec, const int report[2], char *msg,
                            size_t msglen)
{
	const char *cmd = spec->argv[0];
	int e = report[1];

	if (report[0] == STAGE_CHDIR) {
		snprintf(msg, msglen, "cannot change to directory '%.200s': %s",
		         spec->cwd ? spec->cwd : "/", strerror(e));
		return OUTPOST_E_BAD_ARGS;
	}
	if (report[0] == STAGE_USER) {
		snprintf(msg, msglen, "cannot switch to user '%.64s': %s", spec->user, strerror(e));
		return OUTPOST_E_INTERNAL;
	}
	if (report[0] == STAGE_CGROUP) {
		snprintf(msg, msglen, "cannot join the cgroup (%.200s): %s", spec->cgroup_procs,
		         strerror(e));
		return OUTPOST_E_UNAVAILABLE;
	}
	if (report[0] != STAGE_EXEC) {
		snprintf(msg, msglen, "cannot start '%.200s': %s", cmd, strerror(e));
		return OUTPOST_E_INTERNAL;
	}
	switch (e) {
	case ENOENT:
	case ENOTDIR:
		snprintf(msg, msglen, "command not found: '%.200s'", cmd);
		return OUTPOST_E_NOT_FOUND;
	case EACCES:
	case EPERM:
		snprintf(msg, msglen, "permission denied: '%.200s' is not executable by this user",
		         cmd);
		return OUTPOST_E_FORBIDDEN;
	case ENOEXEC:
		snprintf(msg, msglen,
		         "'%.200s' is not an executable format (a script needs a #! line)", cmd);
		return OUTPOST_E_BAD_ARGS;
	case E2BIG:
		snprintf(msg, msglen,
		         "arguments and environment of '%.200s' are over the kernel's limit", cmd);
		return OUTPOST_E_TOO_LARGE;
	default:
		snprintf(msg, msglen, "cannot start '%.200s': %s", cmd, strerror(e));
		return OUTPOST_E_INTERNAL;
	}
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

/* Whether the leader has ended, without reaping it: while it is an unreaped zombie its pid,
 * and so its group id, cannot be given to another process. */
static int proc_leader_exited(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno == ECHILD; /* reaped behind our back (SIGCHLD ignored) */
	return si.si_pid == pid;
}

/* Kills the group and the leader (which may have left it), then reaps the leader, adding its
 * CPU time to *cpu_ns. */
static void proc_end(pid_t pid, int *status, int64_t *cpu_ns)
{
	struct rusage ru;

	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	memset(&ru, 0, sizeof(ru));
	while (wait4(pid, status, 0, &ru) < 0 && errno == EINTR)
		;
	*cpu_ns += ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
	           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

/* Starts spec's command with fds[0..2] as its stdin, stdout and stderr (the caller's, still
 * open when it returns: the caller closes its copies). Returns 0 with *pid once the exec
 * succeeded; 1 with *pid when spec's deadline passed first (the child is still there: the
 * caller ends it); or a negative code with msg, nothing left running. */
static int proc_start(const struct proc_spec *spec, const int fds3[3], pid_t *pid, char *msg,
                      size_t msglen)
{
	int rep[2] = {-1, -1}, rc = 0, report[2];
	struct proc_user pu;
	char **defenv = NULL;
	char *const *envp = spec->envp;
	size_t nown = 0;
	long maxfd = sysconf(_SC_OPEN_MAX);
	sigset_t all, held;
	ssize_t n;

	*pid = -1;
	if (!spec->argv || !spec->argv[0] || !spec->argv[0][0]) {
		snprintf(msg, msglen, "empty command");
		return OUTPOST_E_BAD_ARGS;
	}
	if ((rc = proc_lookup_user(spec->user, &pu, msg, msglen)) < 0)
		return rc;
	if (!envp) {
		if (proc_env_build(spec, &pu, &defenv, &nown) < 0) {
			snprintf(msg, msglen, "out of memory");
			return OUTPOST_E_INTERNAL;
		}
		envp = defenv;
	}
	if (maxfd < 0)
		maxfd = 65536;
	if (pipe2(rep, O_CLOEXEC) < 0) {
		snprintf(msg, msglen, "pipe: %s", strerror(errno));
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &held);
	{
		const int fds[4] = {fds3[0], fds3[1], fds3[2], rep[1]};
		struct child_args ca = {spec, &pu, envp, proc_env_path(envp), fds, maxfd};
		/* On this thread's stack: the thread is suspended until the child execs. */
		_Alignas(16) char stack[PROC_CHILD_STACK];
		*pid =
		    clone(child_main, stack + sizeof(stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &ca);
	}
	pthread_sigmask(SIG_SETMASK, &held, NULL);
	if (*pid < 0) {
		snprintf(msg, msglen, "clone: %s", strerror(errno));
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	/* Also from the parent, so a kill of the group cannot race the child's own setpgid. */
	setpgid(*pid, *pid);
	close(rep[1]), rep[1] = -1;

	/* Until exec succeeds (EOF: the fd is close-on-exec), the child reports why not, or the
	 * deadline passes (a cwd on a hung network mount). */
	for (;;) {
		struct pollfd p = {.fd = rep[0], .events = POLLIN};
		int64_t left = spec->deadline_ms - clk_mono_ms();
		if (left <= 0) {
			rc = 1;
			goto out;
		}
		if (poll(&p, 1, left > 1000 ? 1000 : (int)left) > 0)
			break;
	}
	do
		n = read(rep[0], report, sizeof(report));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(report)) {
		int status;
		while (waitpid(*pid, &status, 0) < 0 && errno == EINTR)
			;
		*pid = -1;
		rc = proc_start_error(spec, report, msg, msglen);
	}
out:
	for (int i = 0; i < 2; i++)
		if (rep[i] >= 0)
			close(rep[i]);
	env_free(defenv, nown);
	return rc;
}

int proc_run(const struct proc_spec *spec, struct proc_result *res, char *msg, size_t msglen)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
	int64_t start = clk_mono_ms(), drain_until = 0;
	size_t in_off = 0;
	int pidfd = -1, status = -1, ended = 0, rc = 0, epipe = 0, pipe_pending;
	sigset_t old, pipeset, pending;
	pid_t pid = -1;
	ssize_t n;

	memset(res, 0, sizeof(*res));
	/* SIGPIPE stays blocked in this thread while we write the child's stdin. */
	sigemptyset(&pipeset);
	sigaddset(&pipeset, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipeset, &old);
	sigpending(&pending);
	pipe_pending = sigismember(&pending, SIGPIPE);

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		snprintf(msg, msglen, "pipe: %s", strerror(errno));
		rc = OUTPOST_E_INTERNAL;
		goto out;
	}
	{
		const int fds[3] = {in[0], out[1], err[1]};
		rc = proc_start(spec, fds, &pid, msg, msglen);
	}
	close(in[0]), in[0] = -1;
	close(out[1]), out[1] = -1;
	close(err[1]), err[1] = -1;
	if (rc < 0)
		goto out;
	if (rc == 1) {
		rc = 0;
		res->timed_out = 1;
		proc_end(pid, &status, &res->cpu_ns);
		ended = 1;
		goto finish;
	}

	if (spec->started)
		spec->started(spec->started_arg);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	if (!spec->stdin_data || spec->stdin_len == 0)
		close(in[1]), in[1] = -1;

	for (;;) {
		struct pollfd pfd[4];
		int np = 0, wait;
		int64_t now = clk_mono_ms(), until;

		if (!ended && proc_leader_exited(pid)) {
			/* What the command left running in its group goes with it. */
			proc_end(pid, &status, &res->cpu_ns);
			ended = 1;
			drain_until = now + PROC_DRAIN_MS;
		} else if (!ended && now >= spec->deadline_ms) {
			res->timed_out = 1;
			proc_end(pid, &status, &res->cpu_ns);
			ended = 1;
			drain_until = now + PROC_DRAIN_MS;
		} else if (!ended && spec->abandoned && spec->abandoned(spec->abandoned_arg)) {
			res->abandoned = 1;
			proc_end(pid, &status, &res->cpu_ns);
			ended = 1;
			drain_until = now + PROC_DRAIN_MS;
		}
		if (ended && ((out[0] < 0 && err[0] < 0) || now >= drain_until))
			break;
		until = ended ? drain_until : spec->deadline_ms;
		wait = until - now > 1000 ? 1000 : (int)(until - now);
		if (!ended && pidfd < 0 && wait > 50)
			wait = 50; /* no pidfd: poll for the exit */
		if (out[0] >= 0)
			pfd[np++] = (struct pollfd){.fd = out[0], .events = POLLIN};
		if (err[0] >= 0)
			pfd[np++] = (struct pollfd){.fd = err[0], .events = POLLIN};
		if (in[1] >= 0)
			pfd[np++] = (struct pollfd){.fd = in[1], .events = POLLOUT};
		if (pidfd >= 0 && !ended)
			pfd[np++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
		if (poll(pfd, (nfds_t)np, wait) < 0 && errno != EINTR) {
			snprintf(msg, msglen, "poll: %s", strerror(errno));
			rc = OUTPOST_E_INTERNAL;
			goto out;
		}
		for (int i = 0; i < np; i++) {
			char chunk[16384];
			if (!pfd[i].revents || pfd[i].fd == pidfd)
				continue; /* the leader's end is seen at the top of the loop */
			if (pfd[i].fd == in[1]) {
				n = write(in[1], spec->stdin_data + in_off,
				          spec->stdin_len - in_off);
				if (n > 0)
					in_off += (size_t)n;
				else if (n < 0 && errno == EPIPE)
					epipe = 1;
				if ((n < 0 && errno != EAGAIN && errno != EINTR) ||
				    in_off == spec->stdin_len)
					close(in[1]), in[1] = -1;
			} else {
				int is_out = pfd[i].fd == out[0];
				int *fdp = is_out ? &out[0] : &err[0];
				n = read(*fdp, chunk, sizeof(chunk));
				if (n > 0 && is_out)
					proc_take(&res->out, spec->max_stdout, &res->out_truncated,
					          chunk, (size_t)n);
				else if (n > 0)
					proc_take(&res->err, spec->max_stderr, &res->err_truncated,
					          chunk, (size_t)n);
				else if (n == 0 || (errno != EAGAIN && errno != EINTR))
					close(*fdp), *fdp = -1;
			}
		}
	}
finish:
	if (WIFEXITED(status)) {
		res->exit_code = WEXITSTATUS(status);
	} else if (WIFSIGNALED(status)) {
		res->exit_code = -1;
		res->signal = WTERMSIG(status);
	} else {
		res->exit_code = -1; /* reaped by someone else: status unknown */
	}
	res->duration_ms = clk_mono_ms() - start;
out:
	if (pid > 0 && !ended)
		proc_end(pid, &status, &res->cpu_ns);
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
		if (err[i] >= 0)
			close(err[i]);
	}
	if (pidfd >= 0)
		close(pidfd);
	if (epipe && !pipe_pending) {
		struct timespec zero = {0, 0};
		while (sigtimedwait(&pipeset, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0)
		proc_result_free(res);
	return rc;
}

void proc_result_free(struct proc_result *res)
{
	buf_free(&res->out);
	buf_free(&res->err);
}

int proc_spawn(const struct proc_spec *spec, const char *out_path, pid_t *pid, char *msg,
               size_t msglen)
{
	struct proc_spec sp = *spec;
	int fds[3] = {-1, -1, -1}, rc, status;

	*pid = -1;
	if (!sp.deadline_ms)
		sp.deadline_ms = clk_mono_ms() + PROC_SPAWN_EXEC_MS;
	fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fds[1] = out_path
	             ? open(out_path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640)
	             : open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fds[0] < 0 || fds[1] < 0) {
		snprintf(msg, msglen, "cannot open %.200s: %s",
		         fds[1] < 0 && out_path ? out_path : "/dev/null", strerror(errno));
		rc = fds[1] < 0 && out_path ? OUTPOST_E_BAD_ARGS : OUTPOST_E_INTERNAL;
		goto out;
	}
	fds[2] = fds[1];
	rc = proc_start(&sp, fds, pid, msg, msglen);
	if (rc == 1) {
		kill(-*pid, SIGKILL);
		kill(*pid, SIGKILL);
		while (waitpid(*pid, &status, 0) < 0 && errno == EINTR)
			;
		*pid = -1;
		snprintf(msg, msglen, "'%.200s' did not start within its deadline", sp.argv[0]);
		rc = OUTPOST_E_TIMEOUT;
	}
out:
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	return rc;
}
