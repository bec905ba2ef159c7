/* Tests for src/core/proc.c: the child-process runner behind exec.run and executable plugins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "core/clk.h"
#include "core/proc.h"
#include <outpost/plugin.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SH(script) ((char *const[]){"/bin/sh", "-c", (script), NULL})

static int run(char *const *argv, int64_t timeout_ms, struct proc_result *res)
{
	struct proc_spec spec = {0};
	char msg[256];

	spec.argv = argv;
	spec.max_stdout = 1 << 20;
	spec.max_stderr = 1 << 20;
	spec.deadline_ms = clk_mono_ms() + timeout_ms;
	return proc_run(&spec, res, msg, sizeof(msg));
}

/* The spec's error and message, for runs that must not start. */
static int run_fail(struct proc_spec *spec, char *msg, size_t msglen)
{
	struct proc_result res;
	int rc;

	spec->max_stdout = spec->max_stderr = 4096;
	spec->deadline_ms = clk_mono_ms() + 5000;
	msg[0] = '\0';
	rc = proc_run(spec, &res, msg, msglen);
	if (rc == 0)
		proc_result_free(&res);
	return rc;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the one opendir holds */
}

/* Dead: gone, or a zombie waiting for its new parent (init) to reap it. Waits up to 2 s for
 * SIGKILL to take effect. */
static int pid_dead(pid_t pid)
{
	for (int i = 0; i < 200; i++) {
		char path[64], buf[256];
		FILE *f;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		f = fopen(path, "r");
		if (!f)
			return 1;
		if (fgets(buf, sizeof(buf), f)) {
			char *p = strrchr(buf, ')');
			if (p && (p[2] == 'Z' || p[2] == 'X')) {
				fclose(f);
				return 1;
			}
		}
		fclose(f);
		usleep(10000);
	}
	return 0;
}

static void test_echo_captures_stdout_and_stderr(void **state)
{
	struct proc_result res;

	assert_int_equal(run(SH("echo out; echo err >&2"), 5000, &res), 0);
	assert_int_equal(res.exit_code, 0);
	assert_int_equal(res.signal, 0);
	assert_false(res.timed_out);
	assert_string_equal(res.out.data, "out\n");
	assert_string_equal(res.err.data, "err\n");
	assert_false(res.out_truncated);
	assert_false(res.err_truncated);
	assert_true(res.duration_ms >= 0 && res.duration_ms < 5000);
	proc_result_free(&res);
}

static void test_exit_code_passed_through(void **state)
{
	struct proc_result res;

	assert_int_equal(run(SH("exit 3"), 5000, &res), 0);
	assert_int_equal(res.exit_code, 3);
	assert_int_equal(res.signal, 0);
	assert_null(res.out.data);
	proc_result_free(&res);
}

static void test_signal_death_reported(void **state)
{
	struct proc_result res;

	assert_int_equal(run(SH("kill -TERM $$"), 5000, &res), 0);
	assert_int_equal(res.exit_code, -1);
	assert_int_equal(res.signal, SIGTERM);
	assert_false(res.timed_out);
	proc_result_free(&res);
}

static void note_started(void *arg)
{
	int *n = arg;
	(*n)++;
}

/* The agent times starting a command apart from running it: started runs once when the
 * child runs, never for a command that could not start; the child's CPU is counted. */
static void test_started_once_and_child_cpu_counted(void **state)
{
	struct proc_result res;
	struct proc_spec spec = {0};
	char *const busy[] = {"/bin/sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done",
	                      NULL};
	char *const missing[] = {"/nonexistent/outpost-test", NULL};
	char msg[256];
	int started = 0;

	(void)state;
	spec.argv = busy;
	spec.max_stdout = spec.max_stderr = 1024;
	spec.deadline_ms = clk_mono_ms() + 10000;
	spec.started = note_started;
	spec.started_arg = &started;
	assert_int_equal(proc_run(&spec, &res, msg, sizeof(msg)), 0);
	assert_int_equal(res.exit_code, 0);
	assert_int_equal(started, 1);
	/* 20,000 turns of a shell loop: milliseconds of CPU, all the child's. */
	assert_true(res.cpu_ns > 1000000);
	proc_result_free(&res);

	started = 0;
	spec.argv = missing;
	assert_int_equal(proc_run(&spec, &res, msg, sizeof(msg)), OUTPOST_E_NOT_FOUND);
	assert_int_equal(started, 0);
}

static void test_stdin_round_trip_larger_than_a_pipe(void **state)
{
	struct proc_spec spec = {0};
	struct proc_result res;
	size_t n = 300000;
	char *data = malloc(n), msg[256];

	assert_non_null(data);
	for (size_t i = 0; i < n; i++)
		data[i] = (char)('a' + i % 26);
	spec.argv = (char *const[]){"cat", NULL};
	spec.stdin_data = data;
	spec.stdin_len = n;
	spec.max_stdout = n;
	spec.max_stderr = 4096;
	spec.deadline_ms = clk_mono_ms() + 10000;
	assert_int_equal(proc_run(&spec, &res, msg, sizeof(msg)), 0);
	assert_int_equal(res.exit_code, 0);
	assert_int_equal(res.out.len, n);
	assert_memory_equal(res.out.data, data, n);
	assert_false(res.out_truncated);
	proc_result_free(&res);
	free(data);
}

/* The runner blocks SIGPIPE itself: even with the default action (which kills), a child that
 * never reads its stdin must not take the caller down, and no SIGPIPE is left pending. */
static void test_stdin_closed_early_does_not_kill_caller(void **state)
{
	struct proc_spec spec = {0};
	struct proc_result res;
	size_t n = 4 << 20;
	char *data = calloc(1, n), msg[256];
	sigset_t mask, pending;

	assert_non_null(data);
	signal(SIGPIPE, SIG_DFL);
	spec.argv = SH("exec 0<&-; echo closed");
	spec.stdin_data = data;
	spec.stdin_len = n;
	spec.max_stdout = spec.max_stderr = 4096;
	spec.deadline_ms = clk_mono_ms() + 10000;
	assert_int_equal(proc_run(&spec, &res, msg, sizeof(msg)), 0);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(res.out.data, "closed\n");
	proc_result_free(&res);
	sigpending(&pending);
	assert_false(sigismember(&pending, SIGPIPE));
	pthread_sigmask(SIG_SETMASK, NULL, &mask);
	assert_false(sigismember(&mask, SIGPIPE));
	signal(SIGPIPE, SIG_IGN);
	free(data);
}

static void test_large_output_truncated_with_flag(void **state)
{
	struct proc_spec spec = {0};
	struct proc_result res;
	char msg[256];

	spec.argv = SH("head -c 3000000 /dev/zero; echo done >&2");
	spec.max_stdout = 1000;
	spec.max_stderr = 4096;
	spec.deadline_ms = clk_mono_ms() + 10000;
	assert_int_equal(proc_run(&spec, &res, msg, sizeof(msg)), 0);
	/* The rest was read and dropped, so the command was not blocked on a full pipe. */
	assert_int_equal(res.exit_code, 0);
	assert_int_equal(res.out.len, 1000);
	assert_true(res.out_truncated);
	assert_string_equal(res.err.data, "done\n");
	assert_false(res.err_truncated);
	proc_result_free(&res);
}

static void test_timeout_kills_the_whole_group(void **state)
{
	struct proc_result res;
	int64_t t0 = clk_mono_ms();
	pid_t grandchild;

	assert_int_equal(run(SH("sleep 100 & echo $!; sleep 100"), 300, &res), 0);
	assert_true(res.timed_out);
	assert_int_equal(res.signal, SIGKILL);
	assert_int_equal(res.exit_code, -1);
	assert_true(clk_mono_ms() - t0 < 3000);
	assert_non_null(res.out.data);
	grandchild = (pid_t)atoi(res.out.data);
	assert_true(grandchild > 1);
	assert_true(pid_dead(grandchild));
	proc_result_free(&res);
}

/* What the command leaves in its group goes when it ends, and holding the stdout pipe does not
 * keep the call waiting. */
static void test_leader_exit_kills_what_it_left(void **state)
{
	struct proc_result res;
	int64_t t0 = clk_mono_ms();
	pid_t grandchild;

	assert_int_equal(run(SH("sleep 100 & echo $!"), 10000, &res), 0);
	assert_false(res.timed_out);
	assert_int_equal(res.exit_code, 0);
	assert_true(clk_mono_ms() - t0 < 3000);
	grandchild = (pid_t)atoi(res.out.data);
	assert_true(grandchild > 1);
	assert_true(pid_dead(grandchild));
	proc_result_free(&res);
}

/* A process that left the group (setsid) survives, as documented, and its hold on the pipes
 * delays the call only by the drain time. */
static void test_escaped_process_delays_only_by_drain(void **state)
{
	struct proc_result res;
	int64_t t0 = clk_mono_ms();
	pid_t daemon;

	assert_int_equal(run(SH("setsid sh -c 'echo $$; exec sleep 100' & sleep 0.2"), 10000, &res),
	                 0);
	assert_false(res.timed_out);
	assert_true(clk_mono_ms() - t0 < PROC_DRAIN_MS + 2000);
	daemon = (pid_t)atoi(res.out.data);
	assert_true(daemon > 1);
	assert_int_equal(kill(daemon, 0), 0); /* still there: it escaped */
	kill(daemon, SIGKILL);
	assert_true(pid_dead(daemon));
	proc_result_free(&res);
}

/* A command gets the umask of an operator's shell, not the caller's narrower one. */
static void test_child_umask_is_022_whatever_the_callers(void **state)
{
	struct proc_result res;
	mode_t old = umask(077);

	assert_int_equal(run(SH("umask"), 5000, &res), 0);
	umask(old);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(res.out.data, "0022\n");
	proc_result_free(&res);
}

/* The daemon's OOM score adjustment is not passed on: a command is an ordinary process. Moved
 * up here (raising needs no privilege; the agent's unit moves it down, which the child resets
 * the same way). */
static void test_child_oom_score_adj_is_reset(void **state)
{
	struct proc_result res;
	FILE *f = fopen("/proc/self/oom_score_adj", "r+");
	int old = 0;

	if (!f)
		skip();
	assert_int_equal(fscanf(f, "%d", &old), 1);
	assert_int_equal(fseek(f, 0, SEEK_SET), 0);
	assert_true(fprintf(f, "%d", old + 300) > 0);
	assert_int_equal(fflush(f), 0);
	assert_int_equal(run(SH("cat /proc/self/oom_score_adj"), 5000, &res), 0);
	fseek(f, 0, SEEK_SET);
	fprintf(f, "%d", old);
	fclose(f);
	assert_string_equal(res.out.data, "0\n");
	proc_result_free(&res);
}

static int abandon_after_300ms(void *arg)
{
	return clk_mono_ms() >= *(const int64_t *)arg;
}

/* An abandoned run ends like a timeout, within about a second, its whole group with it, and
 * says why. */
static void test_abandoned_run_kills_the_group_and_says_so(void **state)
{
	struct proc_spec spec = {0};
	struct proc_result res;
	int64_t t0 = clk_mono_ms(), when = t0 + 300;
	pid_t grandchild;
	char msg[256];

	spec.argv = SH("sleep 100 & echo $!; sleep 100");
	spec.max_stdout = spec.max_stderr = 4096;
	spec.deadline_ms = t0 + 60000;
	spec.abandoned = abandon_after_300ms;
	spec.abandoned_arg = &when;
	assert_int_equal(proc_run(&spec, &res, msg, sizeof(msg)), 0);
	assert_true(res.abandoned);
	assert_false(res.timed_out);
	assert_int_equal(res.signal, SIGKILL);
	assert_true(clk_mono_ms() - t0 < 2500);
	grandchild = (pid_t)atoi(res.out.data);
	assert_true(grandchild > 1);
	assert_true(pid_dead(grandchild));
	proc_result_free(&res);
}

static void test_no_fd_leak(void **state)
{
	struct proc_spec spec = {0};
	struct proc_result res;
	char msg[256];
	int before = count_fds();

	for (int i = 0; i < 5; i++) {
		assert_int_equal(run(SH("echo x; echo y >&2"), 5000, &res), 0);
		proc_result_free(&res);
		assert_int_equal(run(SH("sleep 10"), 50, &res), 0);
		assert_true(res.timed_out);
		proc_result_free(&res);
		spec.argv = (char *const[]){"no-such-command-outpost", NULL};
		assert_int_equal(run_fail(&spec, msg, sizeof(msg)), OUTPOST_E_NOT_FOUND);
		spec.argv = (char *const[]){"true", NULL};
		spec.cwd = "/no/such/dir";
		assert_int_equal(run_fail(&spec, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
		spec.cwd = NULL;
	}
	assert_int_equal(count_fds(), before);
}

static void test_no_zombie_left(void **state)
{
	struct proc_spec spec = {0};
	struct proc_result res;
	char msg[256];

	assert_int_equal(run(SH("true"), 5000, &res), 0);
	proc_result_free(&res);
	assert_int_equal(run(SH("sleep 10 & sleep 10"), 50, &res), 0);
	proc_result_free(&res);
	spec.argv = (char *const[]){"/no/such/program", NULL};
	assert_int_equal(run_fail(&spec, msg, sizeof(msg)), OUTPOST_E_NOT_FOUND);
	/* Every child of ours was reaped. */
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

/* An fd the caller opened without O_CLOEXEC, and the runner's own report pipe, stay out of
 * the child. */
static void test_child_gets_only_stdio(void **state)
{
	struct proc_result res;
	char script[160];
	int fd = open("/dev/null", O_RDONLY), high = fcntl(fd, F_DUPFD, 20);

	assert_true(fd >= 3);
	assert_true(high >= 20);
	snprintf(script, sizeof(script),
	         "for f in 3 %d %d; do test -e /proc/$$/fd/$f && echo open $f; done; echo end", fd,
	         high);
	assert_int_equal(run(SH(script), 5000, &res), 0);
	assert_string_equal(res.out.data, "end\n");
	proc_result_free(&res);
	close(high);
	close(fd);
}

/* A daemon may run with 0, 1 and 2 closed; the pipes then land on them and must still reach
 * the child's stdio (dup2 onto itself keeps close-on-exec). */
static void test_caller_with_stdio_closed(void **state)
{
	struct proc_spec spec = {0};
	struct proc_result res;
	char msg[256];
	int saved[3], rc;

	for (int i = 0; i < 3; i++)
		saved[i] = fcntl(i, F_DUPFD_CLOEXEC, 10);
	for (int i = 0; i < 3; i++)
		close(i);
	spec.argv = SH("cat; echo err >&2");
	spec.stdin_data = "in";
	spec.stdin_len = 2;
	spec.max_stdout = spec.max_stderr = 4096;
	spec.deadline_ms = clk_mono_ms() + 5000;
	rc = proc_run(&spec, &res, msg, sizeof(msg));
	for (int i = 0; i < 3; i++) {
		dup2(saved[i], i);
		close(saved[i]);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(res.out.data, "in");
	assert_string_equal(res.err.data, "err\n");
	proc_result_free(&res);
}

static void test_default_env_is_clean(void **state)
{
	struct proc_result res;

	setenv("OUTPOST_TEST_SECRET", "leak", 1);
	assert_int_equal(run((char *const[]){"env", NULL}, 5000, &res), 0);
	assert_null(strstr(res.out.data, "OUTPOST_TEST_SECRET"));
	assert_non_null(strstr(res.out.data, "PATH=/usr/local/sbin:"));
	assert_non_null(strstr(res.out.data, "LANG=C.UTF-8\n"));
	assert_non_null(strstr(res.out.data, "HOME="));
	assert_non_null(strstr(res.out.data, "USER="));
	assert_non_null(strstr(res.out.data, "LOGNAME="));
	proc_result_free(&res);
	unsetenv("OUTPOST_TEST_SECRET");
}

static void test_env_add_extends_and_replaces(void **state)
{
	struct proc_spec spec = {0};
	struct proc_result res;
	char msg[256];

	spec.argv = (char *const[]){"env", NULL};
	spec.env_add = (char *const[]){"FOO=bar baz", "LANG=C", NULL};
	spec.max_stdout = spec.max_stderr = 4096;
	spec.deadline_ms = clk_mono_ms() + 5000;
	assert_int_equal(proc_run(&spec, &res, msg, sizeof(msg)), 0);
	assert_non_null(strstr(res.out.data, "FOO=bar baz\n"));
	assert_non_null(strstr(res.out.data, "LANG=C\n"));
	assert_null(strstr(res.out.data, "LANG=C.UTF-8"));
	proc_result_free(&res);
}

static void test_cwd_applied(void **state)
{
	struct proc_spec spec = {0};
	struct proc_result res;
	char msg[256];

	spec.argv = (char *const[]){"pwd", NULL};
	spec.cwd = "/tmp";
	spec.max_stdout = spec.max_stderr = 4096;
	spec.deadline_ms = clk_mono_ms() + 5000;
	assert_int_equal(proc_run(&spec, &res, msg, sizeof(msg)), 0);
	assert_string_equal(res.out.data, "/tmp\n");
	proc_result_free(&res);
	spec.cwd = NULL;
	assert_int_equal(proc_run(&spec, &res, msg, sizeof(msg)), 0);
	assert_string_equal(res.out.data, "/\n");
	proc_result_free(&res);
}

static void test_start_errors_have_codes_and_messages(void **state)
{
	struct proc_spec spec = {0};
	char msg[256], path[] = "/tmp/outpost-proc-XXXXXX";
	int fd;

	spec.argv = (char *const[]){"no-such-command-outpost", NULL};
	assert_int_equal(run_fail(&spec, msg, sizeof(msg)), OUTPOST_E_NOT_FOUND);
	assert_non_null(strstr(msg, "command not found: 'no-such-command-outpost'"));

	spec.argv = (char *const[]){"true", NULL};
	spec.cwd = "/no/such/dir";
	assert_int_equal(run_fail(&spec, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "cannot change to directory '/no/such/dir'"));
	spec.cwd = NULL;

	spec.user = "no-such-user-outpost";
	assert_int_equal(run_fail(&spec, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "unknown user 'no-such-user-outpost'"));
	spec.user = NULL;

	spec.argv = (char *const[]){"", NULL};
	assert_int_equal(run_fail(&spec, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "empty command"));

	/* A file without execute bits: refused even to root. */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "#!/bin/sh\n", 10), 10);
	close(fd);
	chmod(path, 0644);
	spec.argv = (char *const[]){path, NULL};
	assert_int_equal(run_fail(&spec, msg, sizeof(msg)), OUTPOST_E_FORBIDDEN);
	assert_non_null(strstr(msg, "permission denied"));

	/* Executable but no #! line and not a binary. */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "echo hi\n", 8), 8);
	close(fd);
	chmod(path, 0755);
	assert_int_equal(run_fail(&spec, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "not an executable format"));
	unlink(path);
}

static void test_runs_as_another_user_when_root(void **state)
{
	struct proc_spec spec = {0};
	struct proc_result res;
	char msg[256];

	if (geteuid() != 0)
		skip();
	spec.argv = SH("id -u; id -G; echo $HOME $USER");
	spec.user = "nobody";
	spec.max_stdout = spec.max_stderr = 4096;
	spec.deadline_ms = clk_mono_ms() + 5000;
	assert_int_equal(proc_run(&spec, &res, msg, sizeof(msg)), 0);
	assert_int_equal(res.exit_code, 0);
	assert_string_equal(res.out.data, "65534\n65534\n/nonexistent nobody\n");
	proc_result_free(&res);
	spec.user = "65534"; /* a numeric uid works too */
	assert_int_equal(proc_run(&spec, &res, msg, sizeof(msg)), 0);
	assert_string_equal(res.out.data, "65534\n65534\n/nonexistent nobody\n");
	proc_result_free(&res);
}

struct thread_arg {
	int id;
	int failures;
};

static void *run_many(void *p)
{
	struct thread_arg *a = p;
	char script[64], want[32];

	snprintf(script, sizeof(script), "echo %d", a->id);
	snprintf(want, sizeof(want), "%d\n", a->id);
	for (int i = 0; i < 20; i++) {
		struct proc_result res;
		if (run(SH(script), 10000, &res) != 0 || res.exit_code != 0 || !res.out.data ||
		    strcmp(res.out.data, want) != 0)
			a->failures++;
		proc_result_free(&res);
	}
	return NULL;
}

static void test_concurrent_runs_from_threads(void **state)
{
	pthread_t th[8];
	struct thread_arg args[8];
	int before = count_fds();

	for (int i = 0; i < 8; i++) {
		args[i] = (struct thread_arg){.id = i};
		assert_int_equal(pthread_create(&th[i], NULL, run_many, &args[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].failures, 0);
	}
	assert_int_equal(count_fds(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_echo_captures_stdout_and_stderr),
	    cmocka_unit_test(test_exit_code_passed_through),
	    cmocka_unit_test(test_signal_death_reported),
	    cmocka_unit_test(test_started_once_and_child_cpu_counted),
	    cmocka_unit_test(test_stdin_round_trip_larger_than_a_pipe),
	    cmocka_unit_test(test_stdin_closed_early_does_not_kill_caller),
	    cmocka_unit_test(test_large_output_truncated_with_flag),
	    cmocka_unit_test(test_timeout_kills_the_whole_group),
	    cmocka_unit_test(test_leader_exit_kills_what_it_left),
	    cmocka_unit_test(test_escaped_process_delays_only_by_drain),
	    cmocka_unit_test(test_child_umask_is_022_whatever_the_callers),
	    cmocka_unit_test(test_child_oom_score_adj_is_reset),
	    cmocka_unit_test(test_abandoned_run_kills_the_group_and_says_so),
	    cmocka_unit_test(test_no_fd_leak),
	    cmocka_unit_test(test_no_zombie_left),
	    cmocka_unit_test(test_child_gets_only_stdio),
	    cmocka_unit_test(test_caller_with_stdio_closed),
	    cmocka_unit_test(test_default_env_is_clean),
	    cmocka_unit_test(test_env_add_extends_and_replaces),
	    cmocka_unit_test(test_cwd_applied),
	    cmocka_unit_test(test_start_errors_have_codes_and_messages),
	    cmocka_unit_test(test_runs_as_another_user_when_root),
	    cmocka_unit_test(test_concurrent_runs_from_threads),
	};

	/* The daemons ignore SIGPIPE at start (proc.h); so do we, but for the test that checks the
	 * runner does not need it. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
