/* The dispatcher: see dispatch.h. A job is shared by the loop thread (its caller and deadline
 * timer) and one worker; the worker hands it back with loop_post and the loop frees it, so no
 * job memory is ever touched by two threads at once without the queue lock. */
#include "dispatch.h"
#include "call.h"
#include "ledger.h"
#include "plugins.h"
#include "taskphase.h"
#include "core/clk.h"
#include "core/err.h"
#include "core/loop.h"
#include "core/wire.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct job {
	struct dispatch *d;
	struct outpost_plugin_ctx *pc;
	struct ledger *ledger; /* the caller's, or the dispatcher's */
	const struct outpost_op *op;
	size_t op_index;
	json_t *args;
	char *id;      /* the ledger's key: the task id, or LEDGER_LOCAL + a local caller's id */
	size_t id_off; /* where the caller's own id starts in it, for messages */
	int64_t deadline_ms;
	dispatch_done_fn done;
	void *arg;
	unsigned flags;
	struct loop_timer *timer; /* the deadline; loop thread only */
	int answered;             /* loop thread only */
	json_t *envelope;         /* set by the worker */
	int replay;
	struct job *next;
};

struct dispatch {
	struct loop *loop;
	struct plugins *ps;
	struct ledger *ledger;
	const struct logger *log;
	int max_inflight;
	pthread_t *threads;
	int nthreads;
	pthread_mutex_t lock; /* guards queue, stopping, timeouts */
	pthread_cond_t wake;
	struct job *head, *tail;
	int stopping;
	atomic_int abandoned; /* dispatch_abandon */
	json_t *timeouts;
	int64_t default_timeout_ms;
	struct taskphases *phases;
	struct dispatch_stats st;
};

static void job_free(struct job *j)
{
	json_decref(j->args);
	json_decref(j->envelope);
	free(j->id);
	free(j);
}

static void job_answer(struct job *j, json_t *envelope, int replay)
{
	j->answered = 1;
	j->done(j->arg, envelope, replay);
}

/* Loop thread: the worker is done with j. */
static void job_on_finished(void *arg)
{
	struct job *j = arg;
	struct dispatch *d = j->d;

	atomic_fetch_sub(&d->st.inflight, 1);
	if (!j->answered) {
		loop_timer_del(d->loop, j->timer);
		j->timer = NULL;
		if (j->replay)
			atomic_fetch_add(&d->st.replays, 1);
		if (!json_is_true(json_object_get(j->envelope, "ok")))
			atomic_fetch_add(&d->st.errors, 1);
		job_answer(j, j->envelope, j->replay);
		j->envelope = NULL;
	}
	job_free(j);
}

/* Loop thread: the deadline passed before the worker finished. */
static void job_on_deadline(void *arg)
{
	struct job *j = arg;

	j->timer = NULL; /* one-shot: freed by the loop */
	if (j->answered)
		return;
	atomic_fetch_add(&j->d->st.timeouts, 1);
	{
		char msg[160];
		snprintf(msg, sizeof(msg), "%s.%s did not finish within its deadline",
		         j->pc->plugin->name, j->op->name);
		job_answer(j, wire_error(OUTPOST_E_TIMEOUT, msg), 0);
	}
}

static json_t *job_error(int code, const char *msg)
{
	return wire_error(code, msg);
}

/* The handler's time, from begun to end: until its child ran (spawn) and from then on
 * (command), or all of it command when it ran no child. */
static void job_time_call(struct taskphases *tp, const struct outpost_call *call,
                          const struct phase_mark *begun, const struct phase_mark *end)
{
	if (call->child_set) {
		phase_add_span(taskphase(tp, TP_SPAWN), begun, &call->child, 1);
		phase_add_span(taskphase(tp, TP_COMMAND), &call->child, end, 1);
		phase_add_cpu(taskphase(tp, TP_COMMAND), call->child_cpu_ns);
	} else {
		phase_add_span(taskphase(tp, TP_COMMAND), begun, end, 1);
	}
}

static void job_run(struct dispatch *d, struct job *j)
{
	struct outpost_call call;
	json_t *result = NULL, *prev = NULL;
	int rc, journaled = 0;
	/* Hub tasks are timed by phase, local calls not. One mark ends a phase and begins the
	 * next: a thread's CPU clock is a system call. */
	struct taskphases *tp = j->flags & DISPATCH_JOURNAL ? d->phases : NULL;
	struct phase_mark m[2];

	if (clk_mono_ms() >= j->deadline_ms) {
		/* Its caller was already told "timeout": do not start it now. */
		j->envelope = job_error(OUTPOST_E_TIMEOUT, "deadline passed before it started");
		return;
	}
	if (j->id && ((j->op->flags & OUTPOST_OP_MUTATING) || (j->flags & DISPATCH_JOURNAL)) &&
	    j->ledger) {
		if (tp)
			phase_start(&m[0]);
		rc = ledger_begin(j->ledger, j->id, j->pc->plugin->name, j->op->name, j->args,
		                  j->deadline_ms, &prev);
		if (tp) {
			phase_start(&m[1]);
			phase_add_span(taskphase(tp, TP_LEDGER), &m[0], &m[1], 1);
			m[0] = m[1];
		}
		if (rc == LEDGER_REPLAY) {
			j->envelope = prev;
			j->replay = 1;
			return;
		}
		if (rc < 0) {
			char msg[256];
			snprintf(
			    msg, sizeof(msg),
			    rc == OUTPOST_E_CONFLICT ? "id '%s' was already used for another call"
			    : rc == OUTPOST_E_LOST
			        ? "id '%s' was running when the agent stopped: its outcome is "
			          "unknown and it will not run again"
			    : rc == OUTPOST_E_TIMEOUT ? "id '%s' is still running in another call"
			                              : "cannot journal id '%s'",
			    j->id + j->id_off);
			j->envelope = job_error(rc, msg);
			return;
		}
		journaled = 1;
	}
	call_init(&call, j->pc, j->op, j->op_index, j->deadline_ms);
	call.abandoned = &d->abandoned;
	if (tp && !journaled)
		phase_start(&m[0]);
	rc = call_invoke(&call, j->args, &result);
	j->envelope = rc < 0 ? job_error(rc, call.errmsg) : wire_ok(result);
	call_release(&call);
	if (tp) {
		phase_start(&m[1]);
		job_time_call(tp, &call, &m[0], &m[1]);
	}
	if (journaled && j->envelope) {
		ledger_finish(j->ledger, j->id, j->envelope);
		phase_end(taskphase(tp, TP_LEDGER), &m[1], 0);
	}
}

static void *worker_main(void *arg)
{
	struct dispatch *d = arg;

	for (;;) {
		struct job *j;
		pthread_mutex_lock(&d->lock);
		while (!d->head && !d->stopping)
			pthread_cond_wait(&d->wake, &d->lock);
		if (!d->head) {
			pthread_mutex_unlock(&d->lock);
			return NULL;
		}
		j = d->head;
		d->head = j->next;
		if (!d->head)
			d->tail = NULL;
		pthread_mutex_unlock(&d->lock);
		job_run(d, j);
		if (!j->envelope)
			j->envelope = job_error(OUTPOST_E_INTERNAL, "out of memory");
		if (loop_post(d->loop, job_on_finished, j) < 0)
			log_error(d->log, "dispatch", "cannot hand a result back: out of memory");
	}
}

int dispatch_new(struct loop *loop, struct plugins *ps, struct ledger *ledger,
                 const struct logger *log, const struct dispatch_config *cfg, struct dispatch **out)
{
	struct dispatch *d = calloc(1, sizeof(*d));
	pthread_attr_t attr;

	*out = NULL;
	if (!d)
		return OUTPOST_E_INTERNAL;
	d->loop = loop;
	d->ps = ps;
	d->ledger = ledger;
	d->log = log;
	d->max_inflight = cfg->max_inflight > 0 ? cfg->max_inflight : 64;
	d->nthreads = cfg->workers > 0 ? cfg->workers : 4;
	d->timeouts = json_incref(cfg->timeouts);
	d->default_timeout_ms = cfg->default_timeout_ms > 0 ? cfg->default_timeout_ms : 30000;
	d->phases = cfg->phases;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->wake, NULL);
	d->threads = calloc((size_t)d->nthreads, sizeof(*d->threads));
	if (!d->threads)
		goto fail;
	/* Small stacks: handlers keep big data on the heap. 256 KiB is far above what they use
	 * and keeps the agent's address space small on every server. */
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (int i = 0; i < d->nthreads; i++)
		if (pthread_create(&d->threads[i], &attr, worker_main, d) != 0) {
			d->nthreads = i;
			pthread_attr_destroy(&attr);
			goto fail;
		}
	pthread_attr_destroy(&attr);
	*out = d;
	return 0;
fail:
	dispatch_free(d);
	return OUTPOST_E_INTERNAL;
}

void dispatch_abandon(struct dispatch *d)
{
	atomic_store(&d->abandoned, 1);
}

void dispatch_free(struct dispatch *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->stopping = 1;
	pthread_cond_broadcast(&d->wake);
	pthread_mutex_unlock(&d->lock);
	for (int i = 0; i < d->nthreads; i++)
		pthread_join(d->threads[i], NULL);
	/* The workers posted what they finished last to the loop: hand it over now, while d is
	 * still there for job_on_finished (the caller keeps the answers' receivers alive). */
	if (atomic_load(&d->st.inflight) > 0)
		loop_run_once(d->loop, 0);
	free(d->threads);
	json_decref(d->timeouts);
	pthread_cond_destroy(&d->wake);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

struct refusal {
	dispatch_done_fn done;
	void *arg;
	json_t *envelope;
};

static void refusal_deliver(void *arg)
{
	struct refusal *r = arg;
	r->done(r->arg, r->envelope, 0);
	free(r);
}

static int dispatch_refuse(struct dispatch *d, int code, const char *msg, dispatch_done_fn done,
                           void *arg)
{
	struct refusal *r = malloc(sizeof(*r));

	if (!r)
		return -1;
	r->done = done;
	r->arg = arg;
	r->envelope = wire_error(code, msg);
	atomic_fetch_add(&d->st.errors, 1);
	if (loop_post(d->loop, refusal_deliver, r) < 0) {
		json_decref(r->envelope);
		free(r);
		return -1;
	}
	return 0;
}

static int64_t dispatch_op_timeout(struct dispatch *d, const char *plugin, const char *op)
{
	char key[80];
	json_t *v;
	int64_t ms;

	snprintf(key, sizeof(key), "%s.%s", plugin, op);
	pthread_mutex_lock(&d->lock);
	v = json_object_get(d->timeouts, key);
	ms = json_is_number(v) ? (int64_t)json_number_value(v) : d->default_timeout_ms;
	pthread_mutex_unlock(&d->lock);
	return ms > 0 ? ms : d->default_timeout_ms;
}

/* A cheap op runs here, on the loop thread, and answers before dispatch_submit returns. */
static int dispatch_inline(struct dispatch *d, struct outpost_plugin_ctx *pc,
                           const struct outpost_op *o, size_t idx, json_t *args,
                           dispatch_done_fn done, void *arg)
{
	struct outpost_call call;
	json_t *result = NULL, *env;
	int rc;

	call_init(&call, pc, o, idx, clk_mono_ms() + d->default_timeout_ms);
	rc = call_invoke(&call, args, &result);
	env = rc < 0 ? wire_error(rc, call.errmsg) : wire_ok(result);
	call_release(&call);
	if (!env)
		return -1;
	if (rc < 0)
		atomic_fetch_add(&d->st.errors, 1);
	done(arg, env, 0);
	return 0;
}

int dispatch_submit(struct dispatch *d, const char *plugin, const char *op, json_t *args,
                    const char *id, int64_t timeout_ms, unsigned flags, dispatch_done_fn done,
                    void *arg)
{
	return dispatch_submit_ledger(d, d->ledger, plugin, op, args, id, timeout_ms, flags, done,
	                              arg);
}

int dispatch_submit_ledger(struct dispatch *d, struct ledger *ledger, const char *plugin,
                           const char *op, json_t *args, const char *id, int64_t timeout_ms,
                           unsigned flags, dispatch_done_fn done, void *arg)
{
	struct outpost_plugin_ctx *pc = plugins_find(d->ps, plugin);
	const struct outpost_op *o;
	struct job *j;
	char msg[160];
	size_t idx;
	int64_t limit;

	atomic_fetch_add(&d->st.calls, 1);
	if (!pc) {
		snprintf(msg, sizeof(msg), "no plugin '%.40s' (GET /v1/plugins lists them)",
		         plugin);
		return dispatch_refuse(d, OUTPOST_E_UNKNOWN_PLUGIN, msg, done, arg);
	}
	if (!pc->enabled) {
		snprintf(msg, sizeof(msg), "plugin '%s' is disabled: its init failed, see the log",
		         plugin);
		return dispatch_refuse(d, OUTPOST_E_UNAVAILABLE, msg, done, arg);
	}
	o = plugins_find_op(pc, op, &idx);
	if (!o) {
		snprintf(msg, sizeof(msg), "plugin '%s' has no op '%.40s'", plugin, op);
		return dispatch_refuse(d, OUTPOST_E_UNKNOWN_OP, msg, done, arg);
	}
	if (id && !ledger_id_ok(id))
		return dispatch_refuse(d, OUTPOST_E_BAD_ARGS,
		                       "id must be 1 to 128 of A-Z a-z 0-9 . _ : -", done, arg);
	if (atomic_load(&d->st.inflight) >= d->max_inflight) {
		atomic_fetch_add(&d->st.busy, 1);
		snprintf(msg, sizeof(msg), "%d calls in flight, the limit: retry later",
		         d->max_inflight);
		return dispatch_refuse(d, OUTPOST_E_BUSY, msg, done, arg);
	}
	if ((o->flags & OUTPOST_OP_INLINE) && !(o->flags & OUTPOST_OP_MUTATING) &&
	    !(flags & DISPATCH_JOURNAL))
		return dispatch_inline(d, pc, o, idx, args, done, arg);
	j = calloc(1, sizeof(*j));
	if (!j)
		return -1;
	/* Local callers' ids live in a namespace of their own: no local call can claim, replay
	 * or (by filling the ledger) make the agent forget the id of a task from the hub. */
	j->id_off = id && !(flags & DISPATCH_JOURNAL) ? strlen(LEDGER_LOCAL) : 0;
	if (id && !(j->id = malloc(j->id_off + strlen(id) + 1))) {
		free(j);
		return -1;
	}
	if (id) {
		memcpy(j->id, LEDGER_LOCAL, j->id_off);
		strcpy(j->id + j->id_off, id);
	}
	limit = dispatch_op_timeout(d, plugin, op);
	if (timeout_ms <= 0 || timeout_ms > limit)
		timeout_ms = limit;
	j->d = d;
	j->ledger = ledger;
	j->pc = pc;
	j->op = o;
	j->op_index = idx;
	j->args = json_incref(args);
	j->deadline_ms = clk_mono_ms() + timeout_ms;
	j->flags = flags;
	j->done = done;
	j->arg = arg;
	if (loop_timer_add(d->loop, timeout_ms, 0, job_on_deadline, j, &j->timer) < 0) {
		job_free(j);
		return -1;
	}
	atomic_fetch_add(&d->st.inflight, 1);
	pthread_mutex_lock(&d->lock);
	if (d->tail)
		d->tail->next = j;
	else
		d->head = j;
	d->tail = j;
	pthread_cond_signal(&d->wake);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

int dispatch_inflight(const struct dispatch *d)
{
	return atomic_load(&d->st.inflight);
}

const struct dispatch_stats *dispatch_stats(const struct dispatch *d)
{
	return &d->st;
}

void dispatch_set_timeouts(struct dispatch *d, json_t *timeouts, int64_t default_ms)
{
	json_t *old;

	pthread_mutex_lock(&d->lock);
	old = d->timeouts;
	d->timeouts = json_incref(timeouts);
	if (default_ms > 0)
		d->default_timeout_ms = default_ms;
	pthread_mutex_unlock(&d->lock);
	json_decref(old);
}
