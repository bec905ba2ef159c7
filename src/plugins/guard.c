/* The built-in `guard` plugin: keeps the agent and the processes an operator names out of the
 * OOM killer's way (oom_score_adj), re-applied on a timer rescan so a restarted process is
 * protected again within one interval, and holds the agent's cgroup (v2) to cpu.max and
 * memory.max so a runaway command cannot starve the host. docs/plugins/guard.md is the
 * operator's side. The systemd watchdog is not here: it beats from the daemon's own loop
 * (core/daemon.c), where a hang would stop it.
 *
 * Everything runs on the agent's loop: a rescan reads a few small files under /proc (and
 * every /proc/<pid>/exe link when a target is named by executable), which takes well under a
 * millisecond on a host of a few hundred processes. */
#include "plugins/builtin.h"
#include "plugins/cgroup.h"
#include "core/clk.h"
#include "core/err.h"
#include "core/wire.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GUARD_TARGETS_MAX 64
#define GUARD_PIDS_MAX 256 /* processes of one target (a unit's cgroup) */
#define GUARD_WHERE "plugins.guard"

enum gkind { G_PIDFILE = 1, G_UNIT, G_EXE };

struct gtarget {
	enum gkind kind;
	char *name; /* the pidfile, unit or executable path */
	char *exe;  /* pidfile entries: the pid must run this executable (pid reuse) */
	int adj;
};

struct gconf {
	char proc_root[256];
	char cgroup_root[256];
	char cgroup_path[1024]; /* "" : the agent's own */
	int64_t interval_ms;
	int has_self_adj;
	int self_adj;
	char memory_max[32]; /* "" : not set; else what memory.max must read */
	char cpu_max[48];
	struct gtarget t[GUARD_TARGETS_MAX];
	size_t nt;
};

struct guard {
	struct outpost_plugin_ctx *pc;
	pthread_mutex_t lock; /* guards status: the loop writes it, guard.status reads it */
	json_t *status;
	/* Events of the pass init makes, before the agent's link to the hub exists: handed over
	 * with the first timer pass's. */
	json_t *held;
	int started; /* init is over: events go out as they come */
	char conf_error[512];
	atomic_int publish_warned; /* a loop tick and guard.apply may both publish */
};

static void gconf_free(struct gconf *c)
{
	for (size_t i = 0; i < c->nt; i++) {
		free(c->t[i].name);
		free(c->t[i].exe);
	}
	c->nt = 0;
}

static int path_ok(const char *s)
{
	return s && s[0] == '/' && strlen(s) < PATH_MAX && !strstr(s, "/../") &&
	       !strstr(s, "/./") && !strstr(s, "//");
}

static int unit_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 255 || !strchr(s, '.'))
		return 0;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || strchr(":_.@-\\", *s)))
			return 0;
	return 1;
}

static int parse_adj(const json_t *v, int *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < -1000 || json_integer_value(v) > 1000)
		return -1;
	*out = (int)json_integer_value(v);
	return 0;
}

static int parse_target(const json_t *o, size_t i, struct gtarget *t, char *msg, size_t msglen)
{
	static const char *const kinds[] = {"pidfile", "unit", "exe"};
	const char *key;
	json_t *v;
	int n = 0;

	if (!json_is_object(o)) {
		snprintf(msg, msglen, GUARD_WHERE ".protect[%zu]: must be an object", i);
		return -1;
	}
	json_object_foreach((json_t *)o, key, v)
	{
		size_t k;
		for (k = 0; k < 3 && strcmp(kinds[k], key) != 0; k++)
			;
		if (k < 3) {
			const char *s = json_string_value(v);
			if (!(k == 1 ? unit_ok(s) : path_ok(s))) {
				snprintf(msg, msglen, GUARD_WHERE ".protect[%zu].%s: must be %s", i,
				         key,
				         k == 1 ? "a systemd unit name (\"ssh.service\")"
				                : "an absolute canonical path");
				return -1;
			}
			if (k == 2 && t->kind == G_PIDFILE) {
				t->exe = strdup(s);
				continue;
			}
			if (t->kind == G_EXE && k == 0) { /* pidfile after exe: exe is the check */
				t->exe = t->name;
				t->name = NULL;
			}
			free(t->name);
			t->name = strdup(s);
			t->kind = k == 0 ? G_PIDFILE : k == 1 ? G_UNIT : G_EXE;
			n++;
		} else if (strcmp(key, "oom_score_adj") == 0) {
			if (parse_adj(v, &t->adj) < 0) {
				snprintf(msg, msglen,
				         GUARD_WHERE
				         ".protect[%zu].oom_score_adj: must be an integer "
				         "from -1000 to 1000",
				         i);
				return -1;
			}
		} else {
			snprintf(msg, msglen,
			         GUARD_WHERE
			         ".protect[%zu]: unknown key '%.64s' (known: pidfile, unit, "
			         "exe, oom_score_adj)",
			         i, key);
			return -1;
		}
	}
	if (!t->name || (n > 1 && !(t->kind == G_PIDFILE && t->exe)) ||
	    !json_object_get(o, "oom_score_adj")) {
		snprintf(msg, msglen,
		         GUARD_WHERE ".protect[%zu]: needs one of pidfile, unit or exe (a pidfile "
		                     "may add exe to check it), and oom_score_adj",
		         i);
		return -1;
	}
	return 0;
}

static int gconf_load(const json_t *conf, struct gconf *c, char *msg, size_t msglen)
{
	const char *key;
	json_t *v, *t;
	size_t i;

	memset(c, 0, sizeof(*c));
	snprintf(c->proc_root, sizeof(c->proc_root), "/proc");
	snprintf(c->cgroup_root, sizeof(c->cgroup_root), "/sys/fs/cgroup");
	c->interval_ms = 10000;
	json_object_foreach((json_t *)conf, key, v)
	{
		const char *s = json_string_value(v);
		if (strcmp(key, "proc_root") == 0 || strcmp(key, "cgroup_root") == 0) {
			if (!path_ok(s) || strlen(s) > 255) {
				snprintf(msg, msglen,
				         GUARD_WHERE
				         ".%s: must be an absolute path of at most 255 bytes",
				         key);
				return -1;
			}
			snprintf(key[0] == 'p' ? c->proc_root : c->cgroup_root, 256, "%s", s);
		} else if (strcmp(key, "interval_s") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > 86400) {
				snprintf(msg, msglen,
				         GUARD_WHERE
				         ".interval_s: must be an integer from 1 to 86400");
				return -1;
			}
			c->interval_ms = json_integer_value(v) * 1000;
		} else if (strcmp(key, "oom_score_adj") == 0) {
			if (parse_adj(v, &c->self_adj) < 0) {
				snprintf(msg, msglen,
				         GUARD_WHERE
				         ".oom_score_adj: must be an integer from -1000 to "
				         "1000");
				return -1;
			}
			c->has_self_adj = 1;
		} else if (strcmp(key, "protect") == 0) {
			if (!json_is_array(v) || json_array_size(v) > GUARD_TARGETS_MAX) {
				snprintf(msg, msglen,
				         GUARD_WHERE
				         ".protect: must be an array of at most %d entries",
				         GUARD_TARGETS_MAX);
				return -1;
			}
			json_array_foreach(v, i, t)
			{
				c->nt = i + 1;
				if (parse_target(t, i, &c->t[i], msg, msglen) < 0)
					return -1;
			}
		} else if (strcmp(key, "cgroup") == 0) {
			const char *ck;
			json_t *cv;
			if (!json_is_object(v)) {
				snprintf(msg, msglen, GUARD_WHERE ".cgroup: must be an object");
				return -1;
			}
			json_object_foreach(v, ck, cv)
			{
				int bad;
				if (strcmp(ck, "memory_max") == 0)
					bad = cg_parse_memory(cv, c->memory_max,
					                      sizeof(c->memory_max));
				else if (strcmp(ck, "cpu_max") == 0)
					bad = cg_parse_cpu(cv, c->cpu_max, sizeof(c->cpu_max));
				else if (strcmp(ck, "path") == 0 &&
				         path_ok(json_string_value(cv)) &&
				         json_string_length(cv) < sizeof(c->cgroup_path)) {
					snprintf(c->cgroup_path, sizeof(c->cgroup_path), "%s",
					         json_string_value(cv));
					bad = 0;
				} else
					bad = -1;
				if (bad) {
					snprintf(
					    msg, msglen, GUARD_WHERE ".cgroup.%.64s: %s", ck,
					    strcmp(ck, "memory_max") == 0 ? CG_MEMORY_HELP
					    : strcmp(ck, "cpu_max") == 0  ? CG_CPU_HELP
					    : strcmp(ck, "path") == 0
					        ? "must be an absolute cgroup path"
					        : "unknown key (known: memory_max, cpu_max, path)");
					return -1;
				}
			}
		} else {
			snprintf(msg, msglen,
			         GUARD_WHERE
			         ": unknown key '%.64s' (known: oom_score_adj, protect, "
			         "cgroup, interval_s, proc_root, cgroup_root)",
			         key);
			return -1;
		}
	}
	return 0;
}

/* ---- Finding the processes of a target ---- */

struct pidset {
	pid_t v[GUARD_PIDS_MAX];
	size_t n;
};

static int exe_is(const struct gconf *c, pid_t pid, const char *exe)
{
	char link[64], got[PATH_MAX];
	char base[PATH_MAX + 32];
	ssize_t n;
	size_t el = strlen(exe);

	snprintf(base, sizeof(base), "%s", c->proc_root);
	snprintf(link, sizeof(link), "/%d/exe", (int)pid);
	strncat(base, link, sizeof(base) - strlen(base) - 1);
	n = readlink(base, got, sizeof(got) - 1);
	if (n < 0)
		return 0;
	got[n] = '\0';
	/* An executable replaced by an upgrade while it runs reads "PATH (deleted)". */
	return strcmp(got, exe) == 0 || ((size_t)n == el + 10 && strncmp(got, exe, el) == 0 &&
	                                 strcmp(got + el, " (deleted)") == 0);
}

static void pids_of(const struct gconf *c, const struct gtarget *t, struct pidset *ps)
{
	char buf[8192], dir[PATH_MAX + 300];

	ps->n = 0;
	if (t->kind == G_PIDFILE) {
		char *end;
		long pid;
		const char *slash = strrchr(t->name, '/');
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - t->name), t->name);
		if (cg_read_small(*dir ? dir : "/", slash + 1, buf, 64) < 0)
			return;
		pid = strtol(buf, &end, 10);
		if (pid <= 1 || *end || pid > INT32_MAX)
			return;
		snprintf(dir, sizeof(dir), "%s/%ld", c->proc_root, pid);
		if (access(dir, F_OK) < 0 || (t->exe && !exe_is(c, (pid_t)pid, t->exe)))
			return; /* stale pidfile, or its pid now runs something else */
		ps->v[ps->n++] = (pid_t)pid;
	} else if (t->kind == G_UNIT) {
		char *p, *save = NULL;
		snprintf(dir, sizeof(dir), "%s/system.slice/%s", c->cgroup_root, t->name);
		if (cg_read_small(dir, "cgroup.procs", buf, sizeof(buf)) < 0)
			return;
		for (p = strtok_r(buf, "\n", &save); p && ps->n < GUARD_PIDS_MAX;
		     p = strtok_r(NULL, "\n", &save))
			if (atoi(p) > 1)
				ps->v[ps->n++] = (pid_t)atoi(p);
	} else {
		DIR *d = opendir(c->proc_root);
		struct dirent *de;
		while (d && (de = readdir(d)) && ps->n < GUARD_PIDS_MAX) {
			char *end;
			long pid = strtol(de->d_name, &end, 10);
			if (*end || pid <= 1)
				continue;
			if (exe_is(c, (pid_t)pid, t->name))
				ps->v[ps->n++] = (pid_t)pid;
		}
		if (d)
			closedir(d);
	}
}

/* ---- Applying ---- */

static void guard_event(struct guard *g, json_t *events, const char *kind, const char *severity,
                        json_t *data, const char *msg)
{
	(void)g;
	json_array_append_new(
	    events, json_pack("{s:s, s:s, s:I, s:s, s:o}", "kind", kind, "severity", severity, "ts",
	                      (json_int_t)clk_real_ms(), "message", msg, "data", data));
}

/* Sets pid's oom_score_adj to adj when it differs; one status entry, an event on change. */
static json_t *adj_one(struct guard *g, const struct gconf *c, pid_t pid, int adj, const char *what,
                       json_t *events)
{
	char dir[PATH_MAX + 32], now[32], msg[512];
	int before;

	snprintf(dir, sizeof(dir), "%s/%d", c->proc_root, (int)pid);
	if (cg_read_small(dir, "oom_score_adj", now, sizeof(now)) < 0)
		return json_pack("{s:i, s:s}", "pid", (int)pid, "error", "gone");
	before = atoi(now);
	if (before == adj)
		return json_pack("{s:i, s:i}", "pid", (int)pid, "oom_score_adj", before);
	snprintf(now, sizeof(now), "%d", adj);
	if (cg_write_small(dir, "oom_score_adj", now) < 0) {
		snprintf(msg, sizeof(msg), "cannot set oom_score_adj %d on %s (pid %d): %s", adj,
		         what, (int)pid, strerror(errno));
		return json_pack("{s:i, s:i, s:s}", "pid", (int)pid, "oom_score_adj", before,
		                 "error", msg);
	}
	snprintf(msg, sizeof(msg), "oom_score_adj of %s (pid %d) set to %d (was %d)", what,
	         (int)pid, adj, before);
	outpost_log(g->pc, OUTPOST_LOG_INFO, "%s", msg);
	guard_event(g, events, "guard.oom_adjusted", "notice",
	            json_pack("{s:s, s:i, s:i, s:i}", "target", what, "pid", (int)pid, "before",
	                      before, "after", adj),
	            msg);
	return json_pack("{s:i, s:i}", "pid", (int)pid, "oom_score_adj", adj);
}

/* The cgroup the limits go on, or NULL with *why set. */
static int cgroup_dir(const struct gconf *c, char *out, size_t len, const char **why)
{
	char buf[4096], dir[PATH_MAX + 32], *line, *save = NULL;

	if (cg_v2_missing(c->cgroup_root)) {
		*why = "no cgroup v2 hierarchy at the cgroup root (a cgroup v1 or hybrid host): "
		       "no limits; boot with systemd.unified_cgroup_hierarchy=1, or set MemoryMax= "
		       "and CPUQuota= in the agent's unit";
		return -1;
	}
	if (c->cgroup_path[0]) {
		snprintf(out, len, "%s%s", c->cgroup_root, c->cgroup_path);
		return 0;
	}
	snprintf(dir, sizeof(dir), "%s/%d", c->proc_root, (int)getpid());
	if (cg_read_small(dir, "cgroup", buf, sizeof(buf)) < 0) {
		*why = "cannot read the agent's /proc/self/cgroup";
		return -1;
	}
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (strncmp(line, "0::", 3) == 0)
			break;
	if (!line || strcmp(line + 3, "/") == 0) {
		*why = "the agent runs in the root cgroup (not started by systemd, or in a "
		       "container without a cgroup of its own): no limits; run it as the "
		       "outpost-agent unit";
		return -1;
	}
	snprintf(out, len, "%s%.1024s", c->cgroup_root, line + 3);
	return 0;
}

static json_t *cgroup_apply(struct guard *g, const struct gconf *c, json_t *events)
{
	static const char *const file[2] = {"memory.max", "cpu.max"};
	const char *want[2] = {c->memory_max, c->cpu_max};
	char dir[PATH_MAX + 32], now[64], msg[PATH_MAX + 256];
	const char *why = NULL;
	json_t *out = json_object();

	if (!want[0][0] && !want[1][0])
		return out;
	if (cgroup_dir(c, dir, sizeof(dir), &why) < 0) {
		json_object_set_new(out, "skipped", json_string(why));
		return out;
	}
	json_object_set_new(out, "path", json_string(dir + strlen(c->cgroup_root)));
	for (int i = 0; i < 2; i++) {
		int rc;
		if (!want[i][0])
			continue;
		rc = cg_set(dir, file[i], want[i], now, sizeof(now), msg, sizeof(msg));
		if (rc <= 0) {
			json_object_set_new(out, file[i], json_string(rc < 0 ? msg : now));
			continue;
		}
		snprintf(msg, sizeof(msg), "%s of the agent's cgroup %s set to %s (was %s)",
		         file[i], dir + strlen(c->cgroup_root), want[i], now);
		outpost_log(g->pc, OUTPOST_LOG_INFO, "%s", msg);
		guard_event(
		    g, events, "guard.cgroup_set", "notice",
		    json_pack("{s:s, s:s, s:s}", "file", file[i], "before", now, "after", want[i]),
		    msg);
		json_object_set_new(out, file[i], json_string(want[i]));
	}
	return out;
}

static void guard_publish(struct guard *g, json_t *events)
{
	json_t *batch;
	int rc;

	pthread_mutex_lock(&g->lock);
	if (!g->started) {
		json_array_extend(g->held, events);
		pthread_mutex_unlock(&g->lock);
		return;
	}
	if (json_array_size(g->held)) {
		json_array_extend(g->held, events);
		json_array_clear(events);
		json_array_extend(events, g->held);
		json_array_clear(g->held);
	}
	pthread_mutex_unlock(&g->lock);
	if (!json_array_size(events))
		return;
	batch = json_pack("{s:O}", "events", events);
	rc = batch ? outpost_publish(g->pc, "events", batch) : OUTPOST_E_INTERNAL;
	json_decref(batch);
	if (rc < 0 && !atomic_fetch_add(&g->publish_warned, 1))
		outpost_log(g->pc,
		            rc == OUTPOST_E_UNAVAILABLE ? OUTPOST_LOG_INFO : OUTPOST_LOG_WARN,
		            "events not handed to the hub (%s); the log has what guard changed",
		            err_name(rc));
}

/* One pass over every target; on the loop thread (or a call's worker, under nothing: the
 * files written are the kernel's, and two passes at once write the same values). */
static int guard_pass(struct guard *g, const json_t *conf, char *msg, size_t msglen)
{
	static const char *const kind_name[] = {"", "pidfile", "unit", "exe"};
	struct gconf *c = malloc(sizeof(*c));
	json_t *events = json_array(), *targets = json_array(), *st;
	struct pidset ps;
	int rc = 0;

	if (!c || gconf_load(conf, c, msg, msglen) < 0) {
		rc = c ? OUTPOST_E_BAD_ARGS : OUTPOST_E_INTERNAL;
		goto out;
	}
	if (c->has_self_adj) {
		json_t *self = adj_one(g, c, getpid(), c->self_adj, "the agent", events);
		json_array_append_new(targets, json_pack("{s:s, s:i, s:[o]}", "target", "self",
		                                         "want", c->self_adj, "pids", self));
	}
	for (size_t i = 0; i < c->nt; i++) {
		const struct gtarget *t = &c->t[i];
		char what[PATH_MAX + 16];
		json_t *pids = json_array();
		snprintf(what, sizeof(what), "%s %s", kind_name[t->kind], t->name);
		pids_of(c, t, &ps);
		for (size_t j = 0; j < ps.n; j++)
			json_array_append_new(pids, adj_one(g, c, ps.v[j], t->adj, what, events));
		json_array_append_new(targets, json_pack("{s:s, s:i, s:o}", "target", what, "want",
		                                         t->adj, "pids", pids));
	}
	st = json_pack("{s:I, s:I, s:o, s:o}", "ts", (json_int_t)clk_real_ms(), "interval_s",
	               (json_int_t)(c->interval_ms / 1000), "targets", targets, "cgroup",
	               cgroup_apply(g, c, events));
	targets = NULL;
	pthread_mutex_lock(&g->lock);
	json_decref(g->status);
	g->status = st;
	pthread_mutex_unlock(&g->lock);
	guard_publish(g, events);
out:
	json_decref(targets);
	json_decref(events);
	if (c)
		gconf_free(c);
	free(c);
	return rc;
}

static void guard_tick(struct outpost_plugin_ctx *pc, void *arg)
{
	struct guard *g = arg;
	char msg[512] = "";

	if (guard_pass(g, outpost_plugin_config(pc), msg, sizeof(msg)) < 0) {
		if (strcmp(msg, g->conf_error) != 0)
			outpost_log(pc, OUTPOST_LOG_ERROR, "%s; fix the agent config", msg);
		snprintf(g->conf_error, sizeof(g->conf_error), "%s", msg);
	} else
		g->conf_error[0] = '\0';
}

/* ---- Ops ---- */

static int op_status(struct outpost_call *call, json_t *args, json_t **result)
{
	struct guard *g = outpost_call_state(call);

	pthread_mutex_lock(&g->lock);
	*result = g->status ? json_deep_copy(g->status) : json_object();
	pthread_mutex_unlock(&g->lock);
	return 0;
}

static int op_apply(struct outpost_call *call, json_t *args, json_t **result)
{
	struct guard *g = outpost_call_state(call);
	char msg[512] = "";

	if (guard_pass(g, outpost_call_config(call), msg, sizeof(msg)) < 0)
		return outpost_call_error(call, OUTPOST_E_UNAVAILABLE, "%s; fix the agent config",
		                          msg);
	return op_status(call, args, result);
}

static void guard_fini(void *state)
{
	struct guard *g = state;

	if (!g)
		return;
	json_decref(g->status);
	json_decref(g->held);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

static int guard_init(struct outpost_plugin_ctx *pc, void **state)
{
	struct guard *g = calloc(1, sizeof(*g));
	struct gconf c;
	char msg[512] = "";
	int id;

	if (!g)
		return OUTPOST_E_INTERNAL;
	g->pc = pc;
	pthread_mutex_init(&g->lock, NULL);
	g->held = json_array();
	if (gconf_load(outpost_plugin_config(pc), &c, msg, sizeof(msg)) < 0)
		c.interval_ms = 10000; /* the tick logs the error, and picks a fix up on reload */
	gconf_free(&c);
	guard_tick(pc, g); /* the agent protected from its first moment, not an interval later */
	pthread_mutex_lock(&g->lock);
	g->started = 1;
	pthread_mutex_unlock(&g->lock);
	id = outpost_timer_add(pc, c.interval_ms, guard_tick, g);
	if (id < 0) {
		outpost_log(pc, OUTPOST_LOG_ERROR, "cannot add the rescan timer (%d)", id);
		guard_fini(g);
		return id;
	}
	*state = g;
	return 0;
}

static const struct outpost_arg no_args[] = {{NULL, 0, 0, NULL}};

static const struct outpost_op guard_ops[] = {
    {"status", op_status, no_args, 0,
     "the last rescan: each target's processes and their oom_score_adj, the cgroup limits"},
    {"apply", op_apply, no_args, OUTPOST_OP_MUTATING,
     "rescans now (as the timer does every interval_s) and answers the status"},
    {NULL, NULL, NULL, 0, NULL},
};

const struct outpost_plugin outpost_plugin_guard = {
    OUTPOST_PLUGIN_ABI, "guard", "1.0", guard_init, guard_fini, guard_ops,
};
