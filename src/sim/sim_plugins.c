/* The plugins of outpost-sim's virtual agents: the real plugins' tables (op names, argument
 * checks, flags: a task that the real agent refuses is refused here too) with handlers that
 * cost almost nothing. sys.facts answers made-up facts, exec.run answers at once without
 * forking (echo prints its arguments; anything else exits 0 with no output), unless the sim
 * runs with exec.mode "real". */
#include "sim.h"
#include "plugins/builtin.h"

#include <stdio.h>
#include <string.h>

json_t *sim_facts(const char *host_id, unsigned index)
{
	/* Stable per index: a fleet of a few hardware kinds, as real fleets are. */
	static const int cpus[] = {8, 16, 32, 64};
	static const long long mem_gib[] = {32, 64, 128, 256};
	unsigned kind = index % 4;

	return json_pack("{s:{s:s, s:b}, s:{s:s}, s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s},"
	                 " s:{s:i, s:s}, s:{s:I}}",
	                 "agent", "version", OUTPOST_VERSION, "simulated", 1, "host", "hostname",
	                 host_id, "os", "id", "debian", "version_id", "12", "pretty_name",
	                 "Debian GNU/Linux 12 (bookworm)", "kernel", "sysname", "Linux", "release",
	                 "6.1.0-sim", "machine", "x86_64", "cpu", "count", cpus[kind], "model",
	                 "Simulated CPU", "memory", "total_bytes",
	                 (json_int_t)(mem_gib[kind] << 30));
}

static int fake_facts(struct outpost_call *call, json_t *args, json_t **result)
{
	*result = sim_facts("sim", 0);
	return *result ? 0 : outpost_call_error(call, OUTPOST_E_INTERNAL, "out of memory");
}

/* The result the real exec.run gives (docs/plugins/exec.md), for a command that exited 0 at
 * once. */
static int fake_run(struct outpost_call *call, json_t *args, json_t **result)
{
	json_t *argv = json_object_get(args, "argv"), *v;
	char out[4096];
	size_t len = 0, i;

	out[0] = '\0';
	if (json_is_array(argv) && json_array_size(argv) > 0 &&
	    json_is_string(json_array_get(argv, 0)) &&
	    strcmp(json_string_value(json_array_get(argv, 0)), "echo") == 0) {
		json_array_foreach(argv, i, v)
		{
			if (i == 0 || !json_is_string(v))
				continue;
			len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s",
			                        i > 1 ? " " : "", json_string_value(v));
			if (len >= sizeof(out) - 2) {
				len = sizeof(out) - 2;
				break;
			}
		}
		out[len++] = '\n';
		out[len] = '\0';
	}
	*result = json_pack("{s:i, s:n, s:b, s:s, s:s, s:b, s:b, s:i}", "exit_code", 0, "signal",
	                    "timed_out", 0, "stdout", out, "stderr", "", "stdout_truncated", 0,
	                    "stderr_truncated", 0, "duration_ms", 0);
	return *result ? 0 : outpost_call_error(call, OUTPOST_E_INTERNAL, "out of memory");
}

static const struct outpost_op *real_op(const struct outpost_plugin *p, const char *name)
{
	for (const struct outpost_op *o = p->ops; o->name; o++)
		if (strcmp(o->name, name) == 0)
			return o;
	return NULL;
}

/* The real op's row with another handler (NULL: the real handler). */
static struct outpost_op fake_op(const struct outpost_plugin *p, const char *name, outpost_op_fn fn)
{
	const struct outpost_op *o = real_op(p, name);
	struct outpost_op f = {0};

	if (!o)
		return f; /* the real plugin lost the op: the table ends here (a test fails) */
	f = *o;
	if (fn)
		f.fn = fn;
	return f;
}

void sim_plugins_make(struct sim_plugin_set *set, int exec_real)
{
	memset(set, 0, sizeof(*set));
	/* ping is the real one: it reads only the clock. */
	set->sys_ops[0] = fake_op(&outpost_plugin_sys, "ping", NULL);
	set->sys_ops[1] = fake_op(&outpost_plugin_sys, "facts", fake_facts);
	set->sys = outpost_plugin_sys;
	set->sys.init = NULL;
	set->sys.fini = NULL;
	set->sys.ops = set->sys_ops;
	set->exec_ops[0] = fake_op(&outpost_plugin_exec, "run", exec_real ? NULL : fake_run);
	set->exec = outpost_plugin_exec;
	set->exec.ops = set->exec_ops;
	if (!exec_real) {
		set->exec.init = NULL;
		set->exec.fini = NULL;
	}
	set->table[0] = &set->sys;
	set->table[1] = &set->exec;
	set->table[2] = NULL;
}
