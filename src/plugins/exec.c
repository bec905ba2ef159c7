/* The built-in `exec` plugin: runs one command (argv, no shell) or one shell script on the host
 * through proc_run, with a timeout, capped output, a user, a cwd and extra environment.
 * docs/plugins/exec.md is the operator's side.
 *
 * A command that ran is a result, whatever its end: exit code, signal or timeout are fields of
 * the result, not errors, so a caller always sees the output of what ran. Output is always
 * valid JSON text: invalid UTF-8 (and NUL) is replaced with U+FFFD, and the exact bytes then
 * come along in base64 too, since a mutating op cannot be asked again. */
#include "plugins/builtin.h"
#include "core/buf.h"
#include "core/clk.h"
#include "core/proc.h"

#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The kernel refuses one argument of this many bytes or more, NUL included (MAX_ARG_STRLEN). */
#define EXEC_MAX_ONE_ARG 131072
#define EXEC_MAX_USER 256
/* Kept between the command's deadline and the call's, so the result still reaches the caller. */
#define EXEC_MARGIN_MS 250

struct exec_limits {
	int64_t default_timeout_ms;
	int64_t max_timeout_ms;
	int64_t max_output;
	int64_t max_args;
	int64_t max_arg_bytes;
};

static const struct {
	const char *key;
	size_t off;
	int64_t def;
	int64_t min;
} exec_limit_keys[] = {
    {"default_timeout_ms", offsetof(struct exec_limits, default_timeout_ms), 60000, 1},
    {"max_timeout_ms", offsetof(struct exec_limits, max_timeout_ms), 3600000, 1},
    {"max_output", offsetof(struct exec_limits, max_output), 1048576, 0},
    {"max_args", offsetof(struct exec_limits, max_args), 4096, 1},
    {"max_arg_bytes", offsetof(struct exec_limits, max_arg_bytes), 1048576, 1},
};

#define EXEC_NLIMITS (sizeof(exec_limit_keys) / sizeof(exec_limit_keys[0]))

/* Reads the config section into l. Unknown keys are refused too: a mistyped limit silently
 * left at its default is worse than a plugin that says what to fix. */
static int exec_limits_load(json_t *conf, struct exec_limits *l, char *msg, size_t msglen)
{
	const char *key;
	json_t *v;

	for (size_t i = 0; i < EXEC_NLIMITS; i++)
		*(int64_t *)((char *)l + exec_limit_keys[i].off) = exec_limit_keys[i].def;
	if (!conf)
		return 0;
	if (!json_is_object(conf)) {
		snprintf(msg, msglen,
		         "the exec config section must be an object; fix the agent config");
		return OUTPOST_E_UNAVAILABLE;
	}
	json_object_foreach(conf, key, v)
	{
		size_t i = 0;
		while (i < EXEC_NLIMITS && strcmp(exec_limit_keys[i].key, key) != 0)
			i++;
		if (i == EXEC_NLIMITS) {
			snprintf(
			    msg, msglen,
			    "unknown exec config key '%.64s' (known: default_timeout_ms, "
			    "max_timeout_ms, max_output, max_args, max_arg_bytes); fix the agent "
			    "config",
			    key);
			return OUTPOST_E_UNAVAILABLE;
		}
		if (!json_is_integer(v) || json_integer_value(v) < exec_limit_keys[i].min) {
			snprintf(
			    msg, msglen,
			    "exec.%s must be an integer of at least %lld; fix the agent config",
			    key, (long long)exec_limit_keys[i].min);
			return OUTPOST_E_UNAVAILABLE;
		}
		*(int64_t *)((char *)l + exec_limit_keys[i].off) = (int64_t)json_integer_value(v);
	}
	if (l->default_timeout_ms > l->max_timeout_ms) {
		snprintf(
		    msg, msglen,
		    "exec.default_timeout_ms (%lld) is over exec.max_timeout_ms (%lld); fix the "
		    "agent config",
		    (long long)l->default_timeout_ms, (long long)l->max_timeout_ms);
		return OUTPOST_E_UNAVAILABLE;
	}
	return 0;
}

/* ---- Arguments ---- */

/* A present, non-null argument, or NULL. */
static json_t *arg_get(json_t *args, const char *name)
{
	json_t *v = json_object_get(args, name);
	return json_is_null(v) ? NULL : v;
}

/* Whether a JSON string holds a NUL byte (possible only from callers that allow it). */
static int has_nul(json_t *s)
{
	return strlen(json_string_value(s)) != json_string_length(s);
}

static int env_name_ok(const char *s, size_t n)
{
	if (n == 0 || strlen(s) != n || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return 0;
	}
	return 1;
}

/* What one run needs, built from the args; the strings are borrowed from them. */
struct exec_req {
	const char **argv; /* NULL-terminated; owned array */
	char **env;        /* "NAME=value", NULL-terminated; owned */
	size_t nenv;
	const char *script;
	const char *stdin_data;
	size_t stdin_len;
	const char *cwd;
	const char *user;
	int64_t timeout_ms;
	size_t max_output;
};

static void exec_req_free(struct exec_req *r)
{
	free(r->argv);
	for (size_t i = 0; r->env && i < r->nenv; i++)
		free(r->env[i]);
	free(r->env);
}

static int exec_parse_argv(struct outpost_call *call, const struct exec_limits *l, json_t *jargv,
                           struct exec_req *r, int64_t *bytes)
{
	json_t *a;
	size_t i, n = json_array_size(jargv);

	if (n == 0)
		return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
		                          "'argv' is empty: give the command and its arguments, "
		                          "e.g. [\"uname\", \"-r\"]");
	if ((int64_t)n > l->max_args)
		return outpost_call_error(
		    call, OUTPOST_E_TOO_LARGE,
		    "'argv' has %zu elements; the limit is exec.max_args = %lld", n,
		    (long long)l->max_args);
	r->argv = calloc(n + 1, sizeof(*r->argv));
	if (!r->argv)
		return outpost_call_error(call, OUTPOST_E_INTERNAL, "out of memory");
	json_array_foreach(jargv, i, a)
	{
		if (!json_is_string(a))
			return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
			                          "argv[%zu] must be a string", i);
		if (has_nul(a))
			return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
			                          "argv[%zu] contains a NUL byte", i);
		if (json_string_length(a) >= EXEC_MAX_ONE_ARG)
			return outpost_call_error(
			    call, OUTPOST_E_TOO_LARGE,
			    "argv[%zu] is %zu bytes; the kernel takes at most %d bytes in one "
			    "argument: put the data in a file (file.put) or pass it on 'stdin'",
			    i, json_string_length(a), EXEC_MAX_ONE_ARG - 1);
		*bytes += (int64_t)json_string_length(a) + 1;
		r->argv[i] = json_string_value(a);
	}
	if (!r->argv[0][0])
		return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
		                          "argv[0] is empty: it names the command to run");
	return 0;
}

static int exec_parse_env(struct outpost_call *call, const struct exec_limits *l, json_t *jenv,
                          struct exec_req *r, int64_t *bytes)
{
	const char *key;
	size_t klen, n = json_object_size(jenv);
	json_t *v;

	if ((int64_t)n > l->max_args)
		return outpost_call_error(
		    call, OUTPOST_E_TOO_LARGE,
		    "'env' has %zu entries; the limit is exec.max_args = %lld", n,
		    (long long)l->max_args);
	r->env = calloc(n + 1, sizeof(*r->env));
	if (!r->env)
		return outpost_call_error(call, OUTPOST_E_INTERNAL, "out of memory");
	json_object_keylen_foreach(jenv, key, klen, v)
	{
		size_t vlen;
		char *e;
		if (!env_name_ok(key, klen))
			return outpost_call_error(
			    call, OUTPOST_E_BAD_ARGS,
			    "env name '%.64s' is not valid: use letters, digits and '_', not "
			    "starting with a digit (no '=', no NUL)",
			    key);
		if (!json_is_string(v))
			return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
			                          "env '%s' must be a string", key);
		if (has_nul(v))
			return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
			                          "env '%s' value contains a NUL byte", key);
		vlen = json_string_length(v);
		if (klen + 1 + vlen >= EXEC_MAX_ONE_ARG)
			return outpost_call_error(
			    call, OUTPOST_E_TOO_LARGE,
			    "env '%s' is %zu bytes; the kernel takes at most %d "
			    "bytes in one variable",
			    key, klen + 1 + vlen, EXEC_MAX_ONE_ARG - 1);
		e = malloc(klen + 1 + vlen + 1);
		if (!e)
			return outpost_call_error(call, OUTPOST_E_INTERNAL, "out of memory");
		memcpy(e, key, klen);
		e[klen] = '=';
		memcpy(e + klen + 1, json_string_value(v), vlen + 1);
		r->env[r->nenv++] = e;
		*bytes += (int64_t)(klen + 1 + vlen + 1);
	}
	return 0;
}

/* Checks every argument against the limits and fills r. Returns 0 or the error, reported. */
static int exec_parse(struct outpost_call *call, const struct exec_limits *l, json_t *args,
                      struct exec_req *r)
{
	json_t *jargv = arg_get(args, "argv"), *script = arg_get(args, "script");
	json_t *in = arg_get(args, "stdin"), *cwd = arg_get(args, "cwd"),
	       *env = arg_get(args, "env");
	json_t *user = arg_get(args, "user"), *timeout = arg_get(args, "timeout_ms");
	json_t *maxout = arg_get(args, "max_output");
	int64_t bytes = 0;
	int rc;

	if (jargv && script)
		return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
		                          "give either 'argv' (a command, no shell) or 'script' "
		                          "(run by /bin/sh -c), not both");
	if (!jargv && !script)
		return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
		                          "missing 'argv' (array of strings: the command and its "
		                          "arguments) or 'script' (string: shell script text)");
	if (jargv && (rc = exec_parse_argv(call, l, jargv, r, &bytes)) < 0)
		return rc;
	if (script) {
		size_t n = json_string_length(script);
		if (n == 0)
			return outpost_call_error(call, OUTPOST_E_BAD_ARGS, "'script' is empty");
		if (has_nul(script))
			return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
			                          "'script' contains a NUL byte");
		if (n >= EXEC_MAX_ONE_ARG)
			return outpost_call_error(
			    call, OUTPOST_E_TOO_LARGE,
			    "'script' is %zu bytes; /bin/sh -c takes at most %d: put the script "
			    "in a file (file.put) and run it with 'argv'",
			    n, EXEC_MAX_ONE_ARG - 1);
		r->script = json_string_value(script);
		bytes += (int64_t)n + 1;
	}
	if (env && (rc = exec_parse_env(call, l, env, r, &bytes)) < 0)
		return rc;
	if (bytes > l->max_arg_bytes)
		return outpost_call_error(call, OUTPOST_E_TOO_LARGE,
		                          "argv, script and env come to %lld bytes; the limit is "
		                          "exec.max_arg_bytes = %lld",
		                          (long long)bytes, (long long)l->max_arg_bytes);
	if (in) {
		r->stdin_data = json_string_value(in);
		r->stdin_len = json_string_length(in);
	}
	if (cwd) {
		r->cwd = json_string_value(cwd);
		if (r->cwd[0] != '/' || has_nul(cwd) || json_string_length(cwd) >= PATH_MAX)
			return outpost_call_error(
			    call, OUTPOST_E_BAD_ARGS,
			    "'cwd' must be an absolute path (starting with '/'), "
			    "got '%.200s'",
			    r->cwd);
	}
	if (user) {
		r->user = json_string_value(user);
		if (!r->user[0] || has_nul(user) || json_string_length(user) >= EXEC_MAX_USER)
			return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
			                          "'user' must be a user name or a numeric uid");
	}
	r->timeout_ms = l->default_timeout_ms;
	if (timeout) {
		json_int_t t = json_integer_value(timeout);
		if (t < 1)
			return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
			                          "'timeout_ms' must be at least 1 (milliseconds)");
		if (t > l->max_timeout_ms)
			return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
			                          "'timeout_ms' %lld is over the limit "
			                          "exec.max_timeout_ms = %lld",
			                          (long long)t, (long long)l->max_timeout_ms);
		r->timeout_ms = (int64_t)t;
	}
	r->max_output = (size_t)l->max_output;
	if (maxout) {
		json_int_t m = json_integer_value(maxout);
		if (m < 0)
			return outpost_call_error(call, OUTPOST_E_BAD_ARGS,
			                          "'max_output' must be at least 0 (bytes)");
		if (m > l->max_output)
			return outpost_call_error(call, OUTPOST_E_TOO_LARGE,
			                          "'max_output' %lld is over the limit "
			                          "exec.max_output = %lld",
			                          (long long)m, (long long)l->max_output);
		r->max_output = (size_t)m;
	}
	return 0;
}

/* ---- Output ---- */

/* Copies s[0..n) into text as valid UTF-8 without NUL: each NUL and each maximal ill-formed
 * subsequence becomes U+FFFD (Unicode's "best practice"). A sequence cut by truncation at the
 * very end is dropped, not replaced. Returns 1 when text holds the bytes exactly, 0 when
 * something was replaced, -1 on OOM. */
static int exec_text(const unsigned char *s, size_t n, int truncated, struct buf *text)
{
	static const char fffd[] = "\xef\xbf\xbd";
	int exact = 1;
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i], lo = 0x80, hi = 0xbf;
		size_t need, j, k;

		if (c > 0 && c < 0x80) {
			j = i + 1;
			while (j < n && s[j] > 0 && s[j] < 0x80)
				j++;
			if (buf_append(text, s + i, j - i) < 0)
				return -1;
			i = j;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
		else
			need = 0; /* NUL, a continuation byte, C0, C1, F5..FF */
		for (j = i + 1, k = 0; need && k < need && j < n; j++, k++) {
			if (s[j] < (k ? 0x80 : lo) || s[j] > (k ? 0xbf : hi))
				break;
		}
		if (need && k == need) {
			if (buf_append(text, s + i, j - i) < 0)
				return -1;
		} else if (need && j == n && truncated) {
			/* cut by the output cap: the rest of the character was dropped */
		} else {
			if (buf_append(text, fffd, 3) < 0)
				return -1;
			exact = 0;
			if (!need)
				j = i + 1;
		}
		i = j;
	}
	if (!text->data && buf_append(text, "", 0) < 0)
		return -1;
	return exact;
}

/* Sets name (and name_base64 when the bytes are not exact text) in obj. */
static int exec_put_output(json_t *obj, const char *name, const struct buf *b, int truncated)
{
	struct buf text = BUF_INIT;
	char key[32];
	int exact = exec_text((const unsigned char *)b->data, b->len, truncated, &text);
	int rc = -1;

	if (exact < 0)
		goto out;
	if (json_object_set_new(obj, name, json_stringn(text.data, text.len)) < 0)
		goto out;
	if (!exact) {
		size_t cap = sodium_base64_ENCODED_LEN(b->len, sodium_base64_VARIANT_ORIGINAL);
		char *b64 = malloc(cap);
		if (!b64)
			goto out;
		sodium_bin2base64(b64, cap, (const unsigned char *)b->data, b->len,
		                  sodium_base64_VARIANT_ORIGINAL);
		snprintf(key, sizeof(key), "%s_base64", name);
		rc = json_object_set_new(obj, key, json_string(b64));
		free(b64);
		if (rc < 0)
			goto out;
	}
	rc = 0;
out:
	buf_free(&text);
	return rc;
}

static json_t *exec_signal_name(int sig)
{
	const char *abbrev;
	char name[32];

	if (!sig)
		return json_null();
	abbrev = sigabbrev_np(sig);
	if (abbrev)
		snprintf(name, sizeof(name), "SIG%s", abbrev);
	else
		snprintf(name, sizeof(name), "SIG%d", sig);
	return json_string(name);
}

/* Keys in the order an operator reads them: how it ended, what it said, the details. */
static json_t *exec_result(const struct proc_result *res)
{
	int exited = !res->signal && res->exit_code >= 0;
	json_t *r = json_pack("{s:o, s:o, s:b}", "exit_code",
	                      exited ? json_integer(res->exit_code) : json_null(), "signal",
	                      exec_signal_name(res->signal), "timed_out", res->timed_out);

	if (!r || exec_put_output(r, "stdout", &res->out, res->out_truncated) < 0 ||
	    exec_put_output(r, "stderr", &res->err, res->err_truncated) < 0 ||
	    json_object_set_new(r, "stdout_truncated", json_boolean(res->out_truncated)) < 0 ||
	    json_object_set_new(r, "stderr_truncated", json_boolean(res->err_truncated)) < 0 ||
	    json_object_set_new(r, "duration_ms", json_integer(res->duration_ms)) < 0 ||
	    (res->abandoned && json_object_set_new(r, "agent_stopped", json_true()) < 0)) {
		json_decref(r);
		return NULL;
	}
	return r;
}

/* ---- The op ---- */

static int exec_abandoned(void *call)
{
	return outpost_call_abandoned(call);
}

static void exec_started(void *call)
{
	outpost_call_child_started(call);
}

static int op_run(struct outpost_call *call, json_t *args, json_t **result)
{
	struct exec_limits l;
	struct exec_req r = {0};
	struct proc_spec spec = {0};
	struct proc_result res;
	const char *sh_argv[] = {"/bin/sh", "-c", NULL, NULL};
	int64_t now, call_dl = outpost_call_deadline(call), margin;
	char msg[512];
	int rc;

	rc = exec_limits_load(outpost_call_config(call), &l, msg, sizeof(msg));
	if (rc < 0)
		return outpost_call_error(call, rc, "%s", msg);
	if ((rc = exec_parse(call, &l, args, &r)) < 0)
		goto out;
	if (r.script)
		sh_argv[2] = r.script;
	spec.argv = (char *const *)(r.script ? sh_argv : r.argv);
	spec.env_add = r.env;
	spec.cwd = r.cwd;
	spec.user = r.user;
	spec.stdin_data = r.stdin_data;
	spec.stdin_len = r.stdin_len;
	spec.max_stdout = r.max_output;
	spec.max_stderr = r.max_output;
	spec.abandoned = exec_abandoned;
	spec.abandoned_arg = call;
	spec.started = exec_started;
	spec.started_arg = call;
	/* The call's deadline caps the command's, less a margin to send the result back. */
	now = clk_mono_ms();
	margin = (call_dl - now) / 10 < EXEC_MARGIN_MS ? (call_dl - now) / 10 : EXEC_MARGIN_MS;
	spec.deadline_ms =
	    r.timeout_ms < call_dl - margin - now ? now + r.timeout_ms : call_dl - margin;
	if (spec.deadline_ms <= now) {
		rc = outpost_call_error(call, OUTPOST_E_TIMEOUT,
		                        "the call's deadline passed before the command started");
		goto out;
	}
	rc = proc_run(&spec, &res, msg, sizeof(msg));
	if (rc < 0) {
		outpost_call_error(call, rc, "%s", msg);
		goto out;
	}
	outpost_call_child_cpu(call, res.cpu_ns);
	outpost_call_log(call, OUTPOST_LOG_INFO, "ran %s%.100s%s%s%.64s: %s %d%s in %lld ms",
	                 r.script ? "a script" : "'", r.script ? "" : r.argv[0],
	                 r.script ? "" : "'", r.user ? " as " : "", r.user ? r.user : "",
	                 res.signal ? "signal" : "exit", res.signal ? res.signal : res.exit_code,
	                 res.timed_out   ? " (timed out)"
	                 : res.abandoned ? " (ended: the agent is stopping)"
	                                 : "",
	                 (long long)res.duration_ms);
	*result = exec_result(&res);
	proc_result_free(&res);
	if (!*result)
		rc = outpost_call_error(call, OUTPOST_E_INTERNAL, "out of memory");
out:
	exec_req_free(&r);
	return rc;
}

static int exec_init(struct outpost_plugin_ctx *pc, void **state)
{
	struct exec_limits l;
	char msg[512];
	int rc;

	*state = NULL;
	if (sodium_init() < 0) {
		outpost_log(pc, OUTPOST_LOG_ERROR, "libsodium failed to initialise");
		return OUTPOST_E_INTERNAL;
	}
	rc = exec_limits_load(outpost_plugin_config(pc), &l, msg, sizeof(msg));
	if (rc < 0)
		outpost_log(pc, OUTPOST_LOG_ERROR, "%s", msg);
	return rc;
}

static const struct outpost_arg run_args_spec[] = {
    {"argv", OUTPOST_ARG_ARRAY, 0,
     "the command and its arguments, run without a shell; argv[0] a path or a name in PATH"},
    {"script", OUTPOST_ARG_STRING, 0, "shell script text, run by /bin/sh -c (instead of argv)"},
    {"stdin", OUTPOST_ARG_STRING, 0, "text written to the command's standard input"},
    {"cwd", OUTPOST_ARG_STRING, 0, "absolute directory to run in (default /)"},
    {"env", OUTPOST_ARG_OBJECT, 0, "NAME: value strings added to the clean default environment"},
    {"user", OUTPOST_ARG_STRING, 0, "user name or numeric uid to run as (default the agent's)"},
    {"timeout_ms", OUTPOST_ARG_INT, 0,
     "kill the whole process group after this many ms (default exec.default_timeout_ms)"},
    {"max_output", OUTPOST_ARG_INT, 0,
     "bytes kept of each of stdout and stderr (default and limit exec.max_output)"},
    {NULL, 0, 0, NULL},
};

static const struct outpost_op exec_ops[] = {
    {"run", op_run, run_args_spec, OUTPOST_OP_MUTATING,
     "run a command or a shell script with timeout, output caps, user, cwd and env"},
    {NULL, NULL, NULL, 0, NULL},
};

const struct outpost_plugin outpost_plugin_exec = {
    .abi = OUTPOST_PLUGIN_ABI,
    .name = "exec",
    .version = "1.0.0",
    .init = exec_init,
    .fini = NULL,
    .ops = exec_ops,
};
