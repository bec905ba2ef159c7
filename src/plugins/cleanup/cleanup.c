/* The built-in `cleanup` plugin: keeps a host as its policies say. Ops plan (dry run), apply
 * and status; a scheduled apply every `interval` on a thread of its own (never on the loop:
 * a large tree takes seconds); every change an event for the hub. docs/plugins/cleanup.md is
 * the operator's side; policy.c checks policies, run.c and drift.c run them, walk.c touches
 * the files. */
#include "plugins/builtin.h"
#include "core/clk.h"
#include "core/err.h"
#include "policy.h"
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CLEANUP_EVENTS_PER_BATCH 200
#define CLEANUP_WHERE "plugins.cleanup"

struct cleanup {
	struct outpost_plugin_ctx *pc;
	/* One run at a time, scheduled or asked for: two applies racing over one tree would
	 * each see the other's half-done work. */
	pthread_mutex_t run_lock;
	pthread_mutex_t lock; /* guards what follows */
	pthread_t thread;
	int thread_joinable; /* a scheduled run was started and not yet joined */
	atomic_int thread_done;
	atomic_int stopping;
	json_t *last;     /* the last scheduled run's summary, or NULL */
	char *drift_seen; /* the drift events last published, as text: not repeated each run */
	int publish_warned;
	int64_t interval_ms;
	int timer_id;
	char conf_error[768]; /* the last config error the timer logged: logged once */
};

/* A run's inputs, checked: the root prefix and the policies. */
struct cleanup_conf {
	char root[PATH_MAX];
	int64_t interval_ms;
	struct cl_set set;
	int has_policies;
};

static int conf_load(const json_t *conf, struct cleanup_conf *c, char *msg, size_t msglen)
{
	const char *key;
	json_t *v;

	memset(c, 0, sizeof(*c));
	snprintf(c->root, sizeof(c->root), "/");
	json_object_foreach((json_t *)conf, key, v)
	{
		if (strcmp(key, "root") == 0) {
			if (!json_is_string(v) || !cl_path_ok(json_string_value(v))) {
				snprintf(msg, msglen,
				         CLEANUP_WHERE ".root: must be an absolute canonical path");
				return OUTPOST_E_BAD_ARGS;
			}
			snprintf(c->root, sizeof(c->root), "%s", json_string_value(v));
		} else if (strcmp(key, "interval") == 0) {
			int64_t s = cl_duration(v);
			if (s < 0 || s > 366 * 86400) {
				snprintf(msg, msglen,
				         CLEANUP_WHERE ".interval: must be 0 (on demand only) or a "
				                       "duration up to 366d (\"1h\")");
				return OUTPOST_E_BAD_ARGS;
			}
			c->interval_ms = s * 1000;
		} else if (strcmp(key, "policies") == 0) {
			int rc =
			    cl_policy_parse(v, CLEANUP_WHERE ".policies", &c->set, msg, msglen);
			if (rc < 0)
				return rc;
			c->has_policies = 1;
		} else {
			snprintf(msg, msglen,
			         CLEANUP_WHERE
			         ": unknown key '%.64s' (known: root, interval, policies)",
			         key);
			return OUTPOST_E_BAD_ARGS;
		}
	}
	return 0;
}

static void conf_free(struct cleanup_conf *c)
{
	cl_set_free(&c->set);
}

/* Events that say how the host is rather than what a run changed: the same every run until
 * someone acts. */
static int repeats(const char *kind)
{
	return strcmp(kind, "cleanup.drift") == 0 || strcmp(kind, "cleanup.error") == 0;
}

/* Hands the run's events to the core for the hub, in batches. Scheduled runs drop the drift
 * and errors already published by the run before (a drifted sysctl is news once, not every
 * hour) and their summary when nothing happened. */
static void publish_events(struct cleanup *cl, struct cl_run *r, int scheduled)
{
	json_t *drift = json_array(), *batch = NULL;
	char *text;
	size_t i;
	json_t *e;
	int rc = 0;

	json_array_foreach(r->events, i, e)
	{
		if (repeats(json_string_value(json_object_get(e, "kind"))))
			json_array_append(drift, json_object_get(e, "message"));
	}
	text = json_dumps(drift, JSON_COMPACT);
	pthread_mutex_lock(&cl->lock);
	int drift_old = scheduled && text && cl->drift_seen && strcmp(text, cl->drift_seen) == 0;
	free(cl->drift_seen);
	cl->drift_seen = text;
	pthread_mutex_unlock(&cl->lock);
	json_decref(drift);
	for (i = 0; i < json_array_size(r->events);) {
		const char *kind =
		    json_string_value(json_object_get(json_array_get(r->events, i), "kind"));
		if ((drift_old && repeats(kind)) ||
		    (scheduled && strcmp(kind, "cleanup.applied") == 0 && !r->nchanges &&
		     !json_array_size(r->errors)))
			json_array_remove(r->events, i);
		else
			i++;
	}
	for (i = 0; i < json_array_size(r->events) && rc == 0; i += CLEANUP_EVENTS_PER_BATCH) {
		json_t *part = json_array();
		for (size_t j = i;
		     j < i + CLEANUP_EVENTS_PER_BATCH && j < json_array_size(r->events); j++)
			json_array_append(part, json_array_get(r->events, j));
		batch = json_pack("{s:o}", "events", part);
		rc = batch ? outpost_publish(cl->pc, "events", batch) : OUTPOST_E_INTERNAL;
		json_decref(batch);
	}
	if (rc < 0) {
		pthread_mutex_lock(&cl->lock);
		int warned = cl->publish_warned++;
		pthread_mutex_unlock(&cl->lock);
		/* No hub (unavailable) is normal for a local-only agent: said once, at info. */
		outpost_log(
		    cl->pc,
		    warned                        ? OUTPOST_LOG_DEBUG
		    : rc == OUTPOST_E_UNAVAILABLE ? OUTPOST_LOG_INFO
		                                  : OUTPOST_LOG_WARN,
		    "%zu events not handed to the hub (%s); an apply's answer lists what it "
		    "changed",
		    json_array_size(r->events), err_name(rc));
	}
}

static int run_locked(struct cleanup *cl, const struct cleanup_conf *c, int apply, const char *only,
                      int (*stop)(void *), void *stop_arg, int scheduled, json_t **result,
                      char *msg, size_t msglen)
{
	struct cl_run r;
	int rootfd, rc;

	rootfd = open(c->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		snprintf(msg, msglen, CLEANUP_WHERE ".root: cannot open %.300s: %s", c->root,
		         strerror(errno));
		return OUTPOST_E_UNAVAILABLE;
	}
	rc = cl_run_init(&r, rootfd, apply, clk_real_ms());
	if (rc < 0) {
		close(rootfd);
		return rc;
	}
	r.stop = stop;
	r.stop_arg = stop_arg;
	rc = cl_run_policies(&r, &c->set, only);
	if (rc == OUTPOST_E_NOT_FOUND)
		snprintf(msg, msglen, "no policy named '%.64s'", only);
	else if (rc == 0 || rc == OUTPOST_E_TIMEOUT) {
		*result = cl_run_result(&r);
		if (apply && r.deleted + r.compressed + r.fixed > 0)
			outpost_log(cl->pc, OUTPOST_LOG_INFO,
			            "%s: %zu files deleted (%lld bytes), %zu compressed, %zu fixed",
			            scheduled ? "scheduled apply" : "apply", r.deleted,
			            (long long)r.bytes_freed, r.compressed, r.fixed);
		if (apply)
			publish_events(cl, &r, scheduled);
		rc = 0;
	}
	cl_run_free(&r);
	close(rootfd);
	return rc;
}

/* ---- Ops ---- */

static int call_stop(void *arg)
{
	struct outpost_call *call = arg;

	return clk_mono_ms() > outpost_call_deadline(call) || outpost_call_abandoned(call);
}

static int cleanup_op(struct outpost_call *call, json_t *args, json_t **result, int apply)
{
	struct cleanup *cl = outpost_call_state(call);
	json_t *pushed = json_object_get(args, "policies");
	const char *only = json_string_value(json_object_get(args, "policy"));
	struct cleanup_conf c;
	char msg[768];
	int rc;

	rc = conf_load(outpost_call_config(call), &c, msg, sizeof(msg));
	if (rc < 0) {
		rc = outpost_call_error(call, OUTPOST_E_UNAVAILABLE, "%s; fix the agent config",
		                        msg);
		goto out;
	}
	if (pushed) {
		/* Policies pushed with the call (a hub task) replace the configured ones for this
		 * call only: nothing is stored, the task itself is the record. */
		cl_set_free(&c.set);
		if ((rc = cl_policy_parse(pushed, "policies", &c.set, msg, sizeof(msg))) < 0) {
			outpost_call_error(call, rc, "%s", msg);
			goto out;
		}
	} else if (!c.has_policies) {
		rc = outpost_call_error(call, OUTPOST_E_NOT_FOUND,
		                        "no policies: none in the agent config (" CLEANUP_WHERE
		                        ".policies) and none given (policies)");
		goto out;
	}
	pthread_mutex_lock(&cl->run_lock);
	rc = run_locked(cl, &c, apply, only, call_stop, call, 0, result, msg, sizeof(msg));
	pthread_mutex_unlock(&cl->run_lock);
	if (rc < 0)
		outpost_call_error(call, rc, "%s", msg);
out:
	conf_free(&c);
	return rc;
}

static int op_plan(struct outpost_call *call, json_t *args, json_t **result)
{
	return cleanup_op(call, args, result, 0);
}

static int op_apply(struct outpost_call *call, json_t *args, json_t **result)
{
	return cleanup_op(call, args, result, 1);
}

static int op_status(struct outpost_call *call, json_t *args, json_t **result)
{
	struct cleanup *cl = outpost_call_state(call);
	struct cleanup_conf c;
	char msg[768];
	json_t *names = json_array();
	int rc = conf_load(outpost_call_config(call), &c, msg, sizeof(msg));

	for (size_t i = 0; rc == 0 && i < c.set.n; i++)
		json_array_append_new(names, json_string(c.set.v[i].name));
	pthread_mutex_lock(&cl->lock);
	*result = json_pack("{s:s, s:I, s:o, s:O*, s:s*}", "root", c.root, "interval_s",
	                    (json_int_t)(cl->interval_ms / 1000), "policies", names, "last_run",
	                    cl->last, "config_error", rc < 0 ? msg : NULL);
	pthread_mutex_unlock(&cl->lock);
	conf_free(&c);
	return *result ? 0 : outpost_call_error(call, OUTPOST_E_INTERNAL, "out of memory");
}

/* ---- Scheduled runs ---- */

struct sched {
	struct cleanup *cl;
	struct cleanup_conf c;
};

static int sched_stop(void *arg)
{
	struct cleanup *cl = arg;

	return atomic_load(&cl->stopping);
}

static void *sched_main(void *arg)
{
	struct sched *s = arg;
	struct cleanup *cl = s->cl;
	json_t *result = NULL;
	char msg[768];
	int rc;

	pthread_mutex_lock(&cl->run_lock);
	rc = run_locked(cl, &s->c, 1, NULL, sched_stop, cl, 1, &result, msg, sizeof(msg));
	pthread_mutex_unlock(&cl->run_lock);
	if (rc < 0)
		outpost_log(cl->pc, OUTPOST_LOG_WARN, "scheduled apply: %s", msg);
	if (result) {
		json_object_set_new(result, "ts", json_integer(clk_real_ms()));
		json_object_del(result, "changes"); /* the events and the log have them */
	}
	pthread_mutex_lock(&cl->lock);
	json_decref(cl->last);
	cl->last = result;
	pthread_mutex_unlock(&cl->lock);
	conf_free(&s->c);
	free(s);
	malloc_trim(0); /* the scans' vectors and JSON: their pages back to the kernel */
	atomic_store(&cl->thread_done, 1);
	return NULL;
}

/* On the loop thread: the config is read here (a reload swaps it on this thread too), the
 * run itself goes to a thread of the plugin's own. */
static void cleanup_tick(struct outpost_plugin_ctx *pc, void *arg)
{
	struct cleanup *cl = arg;
	struct sched *s;
	char msg[768];

	if (cl->thread_joinable) {
		if (!atomic_load(&cl->thread_done)) {
			outpost_log(pc, OUTPOST_LOG_INFO,
			            "scheduled apply skipped: the last one runs");
			return;
		}
		pthread_join(cl->thread, NULL);
		cl->thread_joinable = 0;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return;
	s->cl = cl;
	msg[0] = '\0';
	if (conf_load(outpost_plugin_config(pc), &s->c, msg, sizeof(msg)) < 0 ||
	    !s->c.has_policies) {
		if (msg[0] && strcmp(msg, cl->conf_error) != 0)
			outpost_log(pc, OUTPOST_LOG_ERROR, "scheduled apply skipped: %s", msg);
		snprintf(cl->conf_error, sizeof(cl->conf_error), "%s", msg);
		conf_free(&s->c);
		free(s);
		return;
	}
	cl->conf_error[0] = '\0';
	atomic_store(&cl->thread_done, 0);
	if (pthread_create(&cl->thread, NULL, sched_main, s) != 0) {
		outpost_log(pc, OUTPOST_LOG_ERROR, "scheduled apply: cannot start a thread");
		conf_free(&s->c);
		free(s);
		return;
	}
	cl->thread_joinable = 1;
}

static void cleanup_fini(void *state)
{
	struct cleanup *cl = state;

	if (!cl)
		return;
	atomic_store(&cl->stopping, 1);
	if (cl->thread_joinable)
		pthread_join(cl->thread, NULL);
	json_decref(cl->last);
	free(cl->drift_seen);
	pthread_mutex_destroy(&cl->lock);
	pthread_mutex_destroy(&cl->run_lock);
	free(cl);
}

static int cleanup_init(struct outpost_plugin_ctx *pc, void **state)
{
	struct cleanup *cl = calloc(1, sizeof(*cl));
	struct cleanup_conf c;
	char msg[768];

	if (!cl)
		return OUTPOST_E_INTERNAL;
	cl->pc = pc;
	pthread_mutex_init(&cl->run_lock, NULL);
	pthread_mutex_init(&cl->lock, NULL);
	/* A bad config leaves the plugin loaded: every op answers the located error, and a
	 * reload with the fix needs no restart (the interval excepted). */
	if (conf_load(outpost_plugin_config(pc), &c, msg, sizeof(msg)) < 0)
		outpost_log(pc, OUTPOST_LOG_ERROR, "%s; fix the agent config", msg);
	cl->interval_ms = c.interval_ms;
	conf_free(&c);
	if (cl->interval_ms > 0) {
		int id = outpost_timer_add(pc, cl->interval_ms, cleanup_tick, cl);
		if (id < 0) {
			outpost_log(pc, OUTPOST_LOG_ERROR, "cannot add the schedule timer (%d)",
			            id);
			cleanup_fini(cl);
			return id;
		}
		cl->timer_id = id;
	}
	*state = cl;
	return 0;
}

static const struct outpost_arg run_args[] = {
    {"policies", OUTPOST_ARG_ARRAY, 0,
     "policies to run instead of the configured ones (same form; this call only)"},
    {"policy", OUTPOST_ARG_STRING, 0, "run only the policy of this name"},
    {NULL, 0, 0, NULL},
};
static const struct outpost_arg no_args[] = {{NULL, 0, 0, NULL}};

static const struct outpost_op cleanup_ops[] = {
    {"plan", op_plan, run_args, 0,
     "dry run: what apply would delete, compress and fix, and the bytes it would free"},
    {"apply", op_apply, run_args, OUTPOST_OP_MUTATING,
     "deletes, compresses and fixes what the policies say; every change is an event"},
    {"status", op_status, no_args, 0, "root, schedule, policies and the last scheduled run"},
    {NULL, NULL, NULL, 0, NULL},
};

const struct outpost_plugin outpost_plugin_cleanup = {
    OUTPOST_PLUGIN_ABI, "cleanup", "1.0", cleanup_init, cleanup_fini, cleanup_ops,
};
