/* Executable plugins: a program in any language that speaks JSON on stdin/stdout. At load the
 * agent runs `PROGRAM --describe` and builds a plugin table from its answer; each call runs
 * `PROGRAM` with {"op","args","config","timeout_ms"} on stdin and reads the one response
 * envelope from stdout, under the op's deadline. See docs/plugins.md. */
#include "plugins.h"
#include "call.h"
#include "core/clk.h"
#include "core/err.h"
#include "core/proc.h"
#include "core/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXECPLUG_DESCRIBE_MS 5000
#define EXECPLUG_MAX_OUTPUT (4u << 20)
#define EXECPLUG_MAX_OPS 64
#define EXECPLUG_MAX_ARGS 32

struct execplug {
	struct outpost_plugin p; /* first: the registry hands &p around */
	char *path;
	json_t *desc; /* owns every string the tables point into */
	struct outpost_op *ops;
	struct outpost_arg *args; /* all ops' args, each run terminated by a NULL name */
};

static int type_parse(const char *s)
{
	static const char *const names[] = {"string", "integer", "boolean",
	                                    "array",  "object",  "number"};
	for (int i = 0; s && i < 6; i++)
		if (strcmp(s, names[i]) == 0)
			return i + 1;
	return -1;
}

static int execplug_init(struct outpost_plugin_ctx *pc, void **state)
{
	*state = (void *)pc->plugin; /* the struct execplug */
	return 0;
}

static int execplug_call(struct outpost_call *call, json_t *args, json_t **result)
{
	struct execplug *xp = outpost_call_state(call);
	json_t *cfg = outpost_call_config(call), *in, *resp = NULL, *ok, *err;
	int64_t left = outpost_call_deadline(call) - clk_mono_ms();
	char *const argv[] = {xp->path, NULL};
	struct proc_result res;
	struct proc_spec spec = {0};
	char msg[256];
	char *text;
	int rc;

	in = json_pack("{s:s, s:O, s:O, s:I}", "op", call_op_name(call), "args", args, "config",
	               cfg, "timeout_ms", (json_int_t)(left > 0 ? left : 0));
	text = in ? wire_dump(in) : NULL;
	json_decref(in);
	if (!text)
		return outpost_call_error(call, OUTPOST_E_INTERNAL, "out of memory");
	spec.argv = argv;
	spec.stdin_data = text;
	spec.stdin_len = strlen(text);
	spec.max_stdout = EXECPLUG_MAX_OUTPUT;
	spec.max_stderr = 4096;
	spec.deadline_ms = outpost_call_deadline(call);
	rc = proc_run(&spec, &res, msg, sizeof(msg));
	free(text);
	if (rc < 0)
		return outpost_call_error(call, OUTPOST_E_UNAVAILABLE, "plugin program: %s", msg);
	if (res.timed_out) {
		rc = outpost_call_error(call, OUTPOST_E_TIMEOUT,
		                        "plugin program passed its deadline");
		goto out;
	}
	if (res.out_truncated) {
		rc = outpost_call_error(call, OUTPOST_E_TOO_LARGE,
		                        "plugin program wrote more than %u bytes",
		                        EXECPLUG_MAX_OUTPUT);
		goto out;
	}
	if (wire_parse(res.out.data ? res.out.data : "", res.out.len, WIRE_MAX_DEPTH_DEFAULT, &resp,
	               msg, sizeof(msg)) < 0 ||
	    !json_is_object(resp) || !json_is_boolean(ok = json_object_get(resp, "ok"))) {
		rc = outpost_call_error(
		    call, OUTPOST_E_INTERNAL,
		    "plugin program exited %d without a response envelope%s%.200s", res.exit_code,
		    res.err.len ? ": " : "", res.err.data ? res.err.data : "");
		goto out;
	}
	if (json_is_true(ok)) {
		*result = json_incref(json_object_get(resp, "result"));
		rc = 0;
		goto out;
	}
	err = json_object_get(resp, "error");
	rc = err_from_name(json_string_value(json_object_get(err, "code")));
	outpost_call_error(call, rc, "%s",
	                   json_string_value(json_object_get(err, "message"))
	                       ? json_string_value(json_object_get(err, "message"))
	                       : "plugin program failed");
out:
	json_decref(resp);
	proc_result_free(&res);
	return rc;
}

static int execplug_build(const struct logger *log, struct execplug *xp, json_t *d)
{
	json_t *ops = json_object_get(d, "ops"), *op;
	size_t nargs = 0, ai = 0, i;
	const char *name = json_string_value(json_object_get(d, "name"));

	if (!json_is_object(d) || !wire_name_ok(name) || !json_is_array(ops) ||
	    json_array_size(ops) == 0 || json_array_size(ops) > EXECPLUG_MAX_OPS) {
		log_error(
		    log, "plugins",
		    "%s refused: --describe must print {\"name\": lowercase name, \"version\","
		    " \"ops\": [1..%d ops]}",
		    xp->path, EXECPLUG_MAX_OPS);
		return -1;
	}
	json_array_foreach(ops, i, op)
	{
		json_t *args = json_object_get(op, "args");
		if (!wire_name_ok(json_string_value(json_object_get(op, "name"))) ||
		    (args && !json_is_array(args)) || json_array_size(args) > EXECPLUG_MAX_ARGS) {
			log_error(log, "plugins", "%s refused: op %zu has a bad name or args",
			          xp->path, i);
			return -1;
		}
		nargs += json_array_size(args) + 1;
	}
	xp->ops = calloc(json_array_size(ops) + 1, sizeof(*xp->ops));
	xp->args = calloc(nargs, sizeof(*xp->args));
	if (!xp->ops || !xp->args)
		return -1;
	json_array_foreach(ops, i, op)
	{
		json_t *args = json_object_get(op, "args"), *a;
		size_t j;
		xp->ops[i].name = json_string_value(json_object_get(op, "name"));
		xp->ops[i].fn = execplug_call;
		xp->ops[i].help = json_string_value(json_object_get(op, "help"));
		xp->ops[i].flags =
		    json_is_true(json_object_get(op, "mutating")) ? OUTPOST_OP_MUTATING : 0;
		xp->ops[i].args = &xp->args[ai];
		json_array_foreach(args, j, a)
		{
			int t = type_parse(json_string_value(json_object_get(a, "type")));
			if (!wire_name_ok(json_string_value(json_object_get(a, "name"))) || t < 0) {
				log_error(
				    log, "plugins",
				    "%s refused: op %s argument %zu needs a lowercase name and a "
				    "type (string, integer, boolean, array, object, number)",
				    xp->path, xp->ops[i].name, j);
				return -1;
			}
			xp->args[ai].name = json_string_value(json_object_get(a, "name"));
			xp->args[ai].type = (enum outpost_arg_type)t;
			xp->args[ai].required = json_is_true(json_object_get(a, "required"));
			xp->args[ai].help = json_string_value(json_object_get(a, "help"));
			ai++;
		}
		ai++; /* the NULL terminator */
	}
	xp->p.abi = OUTPOST_PLUGIN_ABI;
	xp->p.name = name;
	xp->p.version = json_string_value(json_object_get(d, "version"))
	                    ? json_string_value(json_object_get(d, "version"))
	                    : "0";
	xp->p.init = execplug_init;
	xp->p.ops = xp->ops;
	return 0;
}

int execplug_load(const struct logger *log, const char *path, struct outpost_plugin **out)
{
	char *const argv[] = {(char *)path, "--describe", NULL};
	struct proc_spec spec = {0};
	struct proc_result res;
	struct execplug *xp;
	json_t *d = NULL;
	char msg[256];

	*out = NULL;
	spec.argv = argv;
	spec.max_stdout = 256 * 1024;
	spec.max_stderr = 4096;
	spec.deadline_ms = clk_mono_ms() + EXECPLUG_DESCRIBE_MS;
	if (proc_run(&spec, &res, msg, sizeof(msg)) < 0) {
		log_error(log, "plugins", "%s refused: %s", path, msg);
		return OUTPOST_E_UNAVAILABLE;
	}
	if (res.timed_out || res.exit_code != 0 || res.out_truncated ||
	    wire_parse(res.out.data ? res.out.data : "", res.out.len, WIRE_MAX_DEPTH_DEFAULT, &d,
	               msg, sizeof(msg)) < 0) {
		log_error(log, "plugins", "%s refused: '--describe' %s", path,
		          res.timed_out        ? "did not answer in time"
		          : res.exit_code != 0 ? "exited non-zero"
		                               : "did not print one JSON object");
		proc_result_free(&res);
		json_decref(d);
		return OUTPOST_E_UNAVAILABLE;
	}
	proc_result_free(&res);
	xp = calloc(1, sizeof(*xp));
	if (!xp || !(xp->path = strdup(path))) {
		free(xp);
		json_decref(d);
		return OUTPOST_E_INTERNAL;
	}
	xp->desc = d;
	if (execplug_build(log, xp, d) < 0) {
		execplug_free(&xp->p);
		return OUTPOST_E_BAD_ARGS;
	}
	*out = &xp->p;
	return 0;
}

void execplug_free(struct outpost_plugin *p)
{
	struct execplug *xp = (struct execplug *)p;

	if (!xp)
		return;
	free(xp->ops);
	free(xp->args);
	json_decref(xp->desc);
	free(xp->path);
	free(xp);
}
