/* Tests for src/plugins/exec.c: exec.run through the plugin harness (the dispatcher's path). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plugtest.h"
#include "agent/call.h"
#include "agent/plugins.h"
#include "core/clk.h"
#include "core/wire.h"
#include "plugins/builtin.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int setup(void **state)
{
	*state = plugtest_new(&outpost_plugin_exec, NULL);
	return 0;
}

static int teardown(void **state)
{
	plugtest_free(*state);
	return 0;
}

/* Runs exec.run; the call must succeed. */
static json_t *run_ok(struct plugtest *t, const char *args)
{
	const char *err;
	json_t *res;
	int rc = plugtest_call(t, "run", args, &res, &err);

	if (rc != 0)
		fail_msg("exec.run %s failed (%d): %s", args, rc, err);
	assert_true(json_is_object(res));
	return res;
}

/* Runs exec.run; the call must fail with code and a message holding want. */
static void run_err(struct plugtest *t, const char *args, int code, const char *want)
{
	const char *err;
	json_t *res;
	int rc = plugtest_call(t, "run", args, &res, &err);

	if (rc != code || !strstr(err, want))
		fail_msg("exec.run %s: got %d '%s', want %d '%s'", args, rc, err, code, want);
	assert_null(res);
}

static const char *str(json_t *res, const char *key)
{
	const char *s = json_string_value(json_object_get(res, key));
	assert_non_null(s);
	return s;
}

static int flag(json_t *res, const char *key)
{
	json_t *v = json_object_get(res, key);
	assert_true(json_is_boolean(v));
	return json_is_true(v);
}

/* Dead: gone, or a zombie left to init. Waits up to 2 s for SIGKILL to take effect. */
static int pid_dead(pid_t pid)
{
	for (int i = 0; i < 200; i++) {
		char path[64], buf[256];
		FILE *f;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		if (!(f = fopen(path, "r")))
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
	return n - 1;
}

static void test_run_echo_returns_the_full_result(void **state)
{
	json_t *res = run_ok(*state, "{\"argv\": [\"echo\", \"hello\", \"world\"]}");

	assert_int_equal(json_integer_value(json_object_get(res, "exit_code")), 0);
	assert_true(json_is_integer(json_object_get(res, "exit_code")));
	assert_true(json_is_null(json_object_get(res, "signal")));
	assert_false(flag(res, "timed_out"));
	assert_string_equal(str(res, "stdout"), "hello world\n");
	assert_string_equal(str(res, "stderr"), "");
	assert_false(flag(res, "stdout_truncated"));
	assert_false(flag(res, "stderr_truncated"));
	assert_true(json_is_integer(json_object_get(res, "duration_ms")));
	assert_null(json_object_get(res, "stdout_base64"));
	assert_int_equal(json_object_size(res), 8);
	json_decref(res);
}

static void test_run_script_with_stdin_and_exit_code(void **state)
{
	json_t *res = run_ok(*state, "{\"script\": \"read x; echo \\\"got $x\\\"; echo oops >&2; "
	                             "exit 4\", \"stdin\": \"abc\\n\"}");

	assert_int_equal(json_integer_value(json_object_get(res, "exit_code")), 4);
	assert_string_equal(str(res, "stdout"), "got abc\n");
	assert_string_equal(str(res, "stderr"), "oops\n");
	json_decref(res);
}

static void test_run_reports_nonzero_exit(void **state)
{
	json_t *res = run_ok(*state, "{\"argv\": [\"false\"]}");

	assert_int_equal(json_integer_value(json_object_get(res, "exit_code")), 1);
	assert_true(json_is_null(json_object_get(res, "signal")));
	json_decref(res);
}

static void test_run_reports_signal_death(void **state)
{
	json_t *res = run_ok(*state, "{\"script\": \"kill -TERM $$\"}");

	assert_true(json_is_null(json_object_get(res, "exit_code")));
	assert_string_equal(str(res, "signal"), "SIGTERM");
	assert_false(flag(res, "timed_out"));
	json_decref(res);
}

static void test_run_truncates_output_with_flag(void **state)
{
	json_t *res = run_ok(*state, "{\"script\": \"head -c 100000 /dev/zero | tr '\\\\0' a\","
	                             " \"max_output\": 1000}");

	assert_int_equal(json_integer_value(json_object_get(res, "exit_code")), 0);
	assert_int_equal(strlen(str(res, "stdout")), 1000);
	assert_true(flag(res, "stdout_truncated"));
	assert_false(flag(res, "stderr_truncated"));
	assert_null(json_object_get(res, "stdout_base64"));
	json_decref(res);
}

/* The command ran: a timeout is a result (timed_out, SIGKILL, partial output), not an error,
 * and the whole process group is gone. */
static void test_run_timeout_is_a_result_and_kills_the_group(void **state)
{
	int64_t t0 = clk_mono_ms();
	json_t *res = run_ok(*state, "{\"script\": \"sleep 100 & echo $!; sleep 100\", "
	                             "\"timeout_ms\": 300}");
	pid_t grandchild = (pid_t)atoi(str(res, "stdout"));

	assert_true(flag(res, "timed_out"));
	assert_true(json_is_null(json_object_get(res, "exit_code")));
	assert_string_equal(str(res, "signal"), "SIGKILL");
	assert_true(clk_mono_ms() - t0 < 3000);
	assert_true(json_integer_value(json_object_get(res, "duration_ms")) >= 300);
	assert_true(grandchild > 1);
	assert_true(pid_dead(grandchild));
	json_decref(res);
}

static void test_run_call_deadline_caps_the_timeout(void **state)
{
	const char *err;
	json_t *res;
	int64_t t0 = clk_mono_ms();

	assert_int_equal(plugtest_call_deadline(*state, "run", "{\"argv\": [\"sleep\", \"30\"]}",
	                                        1000, &res, &err),
	                 0);
	assert_true(flag(res, "timed_out"));
	assert_true(clk_mono_ms() - t0 < 1000); /* killed before the call's own deadline */
	json_decref(res);
}

static void test_run_applies_env_and_cwd(void **state)
{
	char args[512];
	json_t *res;
	char want[300];

	snprintf(args, sizeof(args),
	         "{\"argv\": [\"sh\", \"-c\", \"echo \\\"$FOO|$_X1\\\"; pwd\"], "
	         "\"env\": {\"FOO\": \"bar baz\", \"_X1\": \"=x=\"}, \"cwd\": \"%s\"}",
	         plugtest_dir(*state));
	res = run_ok(*state, args);
	snprintf(want, sizeof(want), "bar baz|=x=\n%s\n", plugtest_dir(*state));
	assert_string_equal(str(res, "stdout"), want);
	json_decref(res);
}

/* Nothing of the agent's environment reaches the command: only the clean default. */
static void test_run_env_is_clean(void **state)
{
	json_t *res;
	const char *out;

	setenv("OUTPOST_AGENT_SECRET", "leak", 1);
	res = run_ok(*state, "{\"argv\": [\"env\"]}");
	out = str(res, "stdout");
	assert_null(strstr(out, "OUTPOST_AGENT_SECRET"));
	assert_non_null(strstr(out, "LANG=C.UTF-8\n"));
	assert_non_null(strstr(out, "PATH=/usr/local/sbin:"));
	json_decref(res);
	unsetenv("OUTPOST_AGENT_SECRET");
}

static void test_run_refuses_missing_command(void **state)
{
	run_err(*state, "{}", OUTPOST_E_BAD_ARGS, "missing 'argv'");
	run_err(*state, "{\"argv\": null, \"script\": null}", OUTPOST_E_BAD_ARGS, "or 'script'");
}

static void test_run_refuses_empty_argv(void **state)
{
	run_err(*state, "{\"argv\": []}", OUTPOST_E_BAD_ARGS, "'argv' is empty");
	run_err(*state, "{\"argv\": [\"\"]}", OUTPOST_E_BAD_ARGS, "argv[0] is empty");
}

static void test_run_refuses_argv_and_script_together(void **state)
{
	run_err(*state, "{\"argv\": [\"true\"], \"script\": \"true\"}", OUTPOST_E_BAD_ARGS,
	        "either 'argv'");
}

static void test_run_refuses_mistyped_args(void **state)
{
	run_err(*state, "{\"argv\": \"echo hi\"}", OUTPOST_E_BAD_ARGS, "'argv' must be");
	run_err(*state, "{\"argv\": [\"echo\", 1]}", OUTPOST_E_BAD_ARGS,
	        "argv[1] must be a string");
	run_err(*state, "{\"argv\": [\"true\"], \"env\": {\"A\": 1}}", OUTPOST_E_BAD_ARGS,
	        "env 'A' must be a string");
	run_err(*state, "{\"argv\": [\"true\"], \"timeout_ms\": \"5\"}", OUTPOST_E_BAD_ARGS,
	        "'timeout_ms' must be");
	run_err(*state, "{\"argv\": [\"true\"], \"bogus\": 1}", OUTPOST_E_BAD_ARGS,
	        "unknown argument 'bogus'");
	run_err(*state, "{\"script\": \"\"}", OUTPOST_E_BAD_ARGS, "'script' is empty");
	run_err(*state, "{\"argv\": [\"true\"], \"user\": \"\"}", OUTPOST_E_BAD_ARGS,
	        "'user' must be");
}

static void test_run_refuses_bad_env_names(void **state)
{
	run_err(*state, "{\"argv\": [\"true\"], \"env\": {\"A=B\": \"x\"}}", OUTPOST_E_BAD_ARGS,
	        "env name 'A=B' is not valid");
	run_err(*state, "{\"argv\": [\"true\"], \"env\": {\"1A\": \"x\"}}", OUTPOST_E_BAD_ARGS,
	        "env name '1A' is not valid");
	run_err(*state, "{\"argv\": [\"true\"], \"env\": {\"\": \"x\"}}", OUTPOST_E_BAD_ARGS,
	        "env name '' is not valid");
	run_err(*state, "{\"argv\": [\"true\"], \"env\": {\"A-B\": \"x\"}}", OUTPOST_E_BAD_ARGS,
	        "env name 'A-B' is not valid");
}

/* The wire refuses \u0000, but a handler must not trust that: build the args in C and call
 * the op the way the dispatcher does. */
static int call_direct(struct plugtest *t, json_t *args, char *msg, size_t msglen)
{
	struct outpost_call c;
	const struct outpost_op *op;
	json_t *res = NULL;
	size_t idx;
	int rc;

	op = plugins_find_op(plugtest_ctx(t), "run", &idx);
	assert_non_null(op);
	call_init(&c, plugtest_ctx(t), op, idx, clk_mono_ms() + 10000);
	rc = call_invoke(&c, args, &res);
	snprintf(msg, msglen, "%s", c.errmsg);
	json_decref(res);
	call_release(&c);
	json_decref(args);
	return rc;
}

static void test_run_refuses_nul_bytes(void **state)
{
	char msg[512];
	json_t *a;

	a = json_pack("{s:[s], s:{s:o}}", "argv", "true", "env", "A", json_stringn("x\0y", 3));
	assert_int_equal(call_direct(*state, a, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "env 'A' value contains a NUL byte"));

	a = json_pack("{s:[s], s:{}}", "argv", "true", "env");
	json_object_setn_new(json_object_get(a, "env"), "A\0B", 3, json_string("x"));
	assert_int_equal(call_direct(*state, a, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "env name 'A' is not valid"));

	a = json_pack("{s:[s,o]}", "argv", "echo", json_stringn("a\0b", 3));
	assert_int_equal(call_direct(*state, a, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "argv[1] contains a NUL byte"));

	a = json_pack("{s:o}", "script", json_stringn("echo\0rm", 7));
	assert_int_equal(call_direct(*state, a, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "'script' contains a NUL byte"));

	a = json_pack("{s:[s], s:o}", "argv", "true", "cwd", json_stringn("/tmp\0/x", 7));
	assert_int_equal(call_direct(*state, a, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "'cwd' must be an absolute path"));
}

static void test_run_refuses_relative_cwd(void **state)
{
	run_err(*state, "{\"argv\": [\"true\"], \"cwd\": \"tmp\"}", OUTPOST_E_BAD_ARGS,
	        "'cwd' must be an absolute path");
}

static void test_run_refuses_missing_cwd(void **state)
{
	run_err(*state, "{\"argv\": [\"true\"], \"cwd\": \"/no/such/dir\"}", OUTPOST_E_BAD_ARGS,
	        "cannot change to directory '/no/such/dir'");
}

static void test_run_refuses_timeout_out_of_range(void **state)
{
	run_err(*state, "{\"argv\": [\"true\"], \"timeout_ms\": 3600001}", OUTPOST_E_BAD_ARGS,
	        "exec.max_timeout_ms = 3600000");
	run_err(*state, "{\"argv\": [\"true\"], \"timeout_ms\": 0}", OUTPOST_E_BAD_ARGS,
	        "'timeout_ms' must be at least 1");
}

static void test_run_refuses_max_output_over_limit(void **state)
{
	run_err(*state, "{\"argv\": [\"true\"], \"max_output\": 1048577}", OUTPOST_E_TOO_LARGE,
	        "exec.max_output = 1048576");
	run_err(*state, "{\"argv\": [\"true\"], \"max_output\": -1}", OUTPOST_E_BAD_ARGS,
	        "'max_output' must be at least 0");
}

static void test_run_refuses_unknown_user(void **state)
{
	run_err(*state, "{\"argv\": [\"true\"], \"user\": \"no-such-user-outpost\"}",
	        OUTPOST_E_BAD_ARGS, "unknown user 'no-such-user-outpost'");
}

static void test_run_refuses_missing_command_as_not_found(void **state)
{
	run_err(*state, "{\"argv\": [\"no-such-command-outpost\", \"x\"]}", OUTPOST_E_NOT_FOUND,
	        "command not found: 'no-such-command-outpost'");
	run_err(*state, "{\"argv\": [\"/no/such/program\"]}", OUTPOST_E_NOT_FOUND,
	        "command not found: '/no/such/program'");
}

static void test_run_refuses_script_over_the_kernel_limit(void **state)
{
	size_t n = 140000;
	char *args = malloc(n + 64);

	assert_non_null(args);
	strcpy(args, "{\"script\": \"");
	memset(args + strlen(args), '#', n);
	strcpy(args + 12 + n, "\"}");
	run_err(*state, args, OUTPOST_E_TOO_LARGE, "'script' is 140000 bytes");
	free(args);
}

static void test_run_limits_come_from_config(void **state)
{
	struct plugtest *t = plugtest_new(
	    &outpost_plugin_exec, "{\"max_args\": 3, \"max_arg_bytes\": 40, \"max_output\": "
	                          "10, \"max_timeout_ms\": 2000, \"default_timeout_ms\": 200}");
	int64_t t0 = clk_mono_ms();
	json_t *res;

	run_err(t, "{\"argv\": [\"echo\", \"a\", \"b\", \"c\"]}", OUTPOST_E_TOO_LARGE,
	        "'argv' has 4 elements; the limit is exec.max_args = 3");
	run_err(t, "{\"argv\": [\"echo\", \"0123456789012345678901234567890123456789\"]}",
	        OUTPOST_E_TOO_LARGE,
	        "argv, script and env come to 46 bytes; the limit is exec.max_arg_bytes = 40");
	run_err(t,
	        "{\"argv\": [\"true\"], \"env\": {\"LONG\": "
	        "\"0123456789012345678901234567890123456789\"}}",
	        OUTPOST_E_TOO_LARGE, "exec.max_arg_bytes = 40");
	run_err(t, "{\"argv\": [\"true\"], \"timeout_ms\": 2001}", OUTPOST_E_BAD_ARGS,
	        "exec.max_timeout_ms = 2000");
	run_err(t, "{\"argv\": [\"true\"], \"max_output\": 11}", OUTPOST_E_TOO_LARGE,
	        "exec.max_output = 10");
	res = run_ok(t, "{\"script\": \"echo 0123456789abcdef; exec sleep 5\"}");
	assert_true(flag(res, "timed_out")); /* default_timeout_ms */
	assert_true(clk_mono_ms() - t0 < 2000);
	assert_string_equal(str(res, "stdout"), "0123456789");
	assert_true(flag(res, "stdout_truncated"));
	json_decref(res);
	plugtest_free(t);
}

static void test_init_refuses_bad_config(void **state)
{
	static const char *const bad[] = {
	    "{\"max_output\": -1}",
	    "{\"max_timeout_ms\": \"1h\"}",
	    "{\"max_timout_ms\": 1000}",
	    "{\"default_timeout_ms\": 5000, \"max_timeout_ms\": 1000}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct plugtest *t = plugtest_new_any(&outpost_plugin_exec, bad[i]);
		assert_int_not_equal(plugtest_init_rc(t), 0);
		plugtest_free(t);
	}
}

/* Output that is not UTF-8 (or holds NUL) still makes valid JSON that our own parser takes:
 * U+FFFD in the text, the exact bytes in *_base64. */
static void test_run_non_utf8_output_is_valid_json(void **state)
{
	json_t *res =
	    run_ok(*state, "{\"script\": \"printf 'ok\\\\377abc\\\\000d\\\\355\\\\240\\\\200"
	                   "e\\\\342\\\\202'; printf 'caf\\\\303\\\\251' >&2\"}");
	static const unsigned char raw[] = "ok\377abc\000d\355\240\200e\342\202";
	unsigned char bin[64];
	size_t binlen;
	char *text, msg[128];
	json_t *back;

	assert_string_equal(str(res, "stdout"), "ok\xef\xbf\xbd"
	                                        "abc\xef\xbf\xbd"
	                                        "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
	                                        "e\xef\xbf\xbd");
	assert_int_equal(sodium_base642bin(bin, sizeof(bin), str(res, "stdout_base64"),
	                                   strlen(str(res, "stdout_base64")), NULL, &binlen, NULL,
	                                   sodium_base64_VARIANT_ORIGINAL),
	                 0);
	assert_int_equal(binlen, sizeof(raw) - 1);
	assert_memory_equal(bin, raw, binlen);
	/* Valid UTF-8 stays as it is, without base64. */
	assert_string_equal(str(res, "stderr"), "caf\xc3\xa9");
	assert_null(json_object_get(res, "stderr_base64"));
	text = wire_dump(res);
	assert_non_null(text);
	assert_int_equal(wire_parse(text, strlen(text), 8, &back, msg, sizeof(msg)), 0);
	json_decref(back);
	free(text);
	json_decref(res);
}

/* The output cap may cut a character in two: that is truncation, not bad output. */
static void test_run_truncation_inside_a_character_is_not_an_error(void **state)
{
	json_t *res = run_ok(*state, "{\"script\": \"printf '\\\\303\\\\251\\\\303\\\\251'\", "
	                             "\"max_output\": 3}");

	assert_string_equal(str(res, "stdout"), "\xc3\xa9");
	assert_true(flag(res, "stdout_truncated"));
	assert_null(json_object_get(res, "stdout_base64"));
	json_decref(res);
}

static void test_run_as_nobody_when_root(void **state)
{
	json_t *res;

	if (geteuid() != 0)
		skip();
	res = run_ok(*state, "{\"script\": \"id -u; echo $HOME\", \"user\": \"nobody\"}");
	assert_string_equal(str(res, "stdout"), "65534\n/nonexistent\n");
	json_decref(res);
}

static void test_run_leaks_no_fd_and_no_zombie(void **state)
{
	int before = count_fds();
	json_t *res;

	for (int i = 0; i < 3; i++) {
		res = run_ok(*state, "{\"script\": \"echo x; sleep 5 & echo y >&2\"}");
		json_decref(res);
		res = run_ok(*state, "{\"argv\": [\"sleep\", \"5\"], \"timeout_ms\": 50}");
		json_decref(res);
		run_err(*state, "{\"argv\": [\"no-such-command-outpost\"]}", OUTPOST_E_NOT_FOUND,
		        "command not found");
	}
	assert_int_equal(count_fds(), before);
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_run_echo_returns_the_full_result, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_script_with_stdin_and_exit_code, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_run_reports_nonzero_exit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_reports_signal_death, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_truncates_output_with_flag, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_timeout_is_a_result_and_kills_the_group, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_run_call_deadline_caps_the_timeout, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_run_applies_env_and_cwd, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_env_is_clean, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_refuses_missing_command, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_refuses_empty_argv, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_refuses_argv_and_script_together, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_run_refuses_mistyped_args, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_refuses_bad_env_names, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_refuses_nul_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_refuses_relative_cwd, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_refuses_missing_cwd, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_refuses_timeout_out_of_range, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_refuses_max_output_over_limit, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_run_refuses_unknown_user, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_refuses_missing_command_as_not_found, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_run_refuses_script_over_the_kernel_limit, setup,
	                                    teardown),
	    cmocka_unit_test(test_run_limits_come_from_config),
	    cmocka_unit_test(test_init_refuses_bad_config),
	    cmocka_unit_test_setup_teardown(test_run_non_utf8_output_is_valid_json, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_run_truncation_inside_a_character_is_not_an_error,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_as_nobody_when_root, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run_leaks_no_fd_and_no_zombie, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN); /* as the agent does at start */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
