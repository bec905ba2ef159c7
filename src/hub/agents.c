/* The agents' task long-polls (agents.h): one per host in a hash table, answered when tasks
 * are queued for the host, when its wait ends, or when it is cut off. The copies handed out
 * are signed here, for that host only. Everything runs on the hub's loop thread. */
#include "agents.h"
#include "hub_impl.h"
#include "registry.h"
#include "core/clk.h"
#include "core/err.h"
#include "core/loop.h"
#include "core/tcpalive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AGENTS_BUCKETS 4096

/* A held poll: the request waits, suspended, until it is answered. */
struct agents_poll {
	struct agents *a;
	struct httpd_req *req;
	struct loop_timer *timer;
	char host[65];
	int fd; /* the connection's socket with keepalive on, or -1 (borrowed) */
	struct agents_poll *next;
};

struct agents {
	struct hub *h;
	struct agents_poll *polls[AGENTS_BUCKETS]; /* by host id */
	size_t npolls;
	/* A held poll is a sign of life while the host's kernel answers keepalive probes on its
	 * connection: a dead host or a cut network is found within about missed_beats x beat_ms,
	 * as when beats stop (docs/agent-link.md, Beats). */
	struct tcpalive ka;
};

static unsigned poll_hash(const char *s)
{
	unsigned h = 2166136261u;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % AGENTS_BUCKETS;
}

int agents_new(struct hub *h, struct agents **out)
{
	struct agents *a = calloc(1, sizeof(*a));

	*out = a;
	if (!a)
		return OUTPOST_E_INTERNAL;
	a->h = h;
	agents_configure(a, h->conf);
	return 0;
}

void agents_configure(struct agents *a, const struct hub_conf *c)
{
	a->ka = tcpalive_for_beats(c->agents.beat_ms, (int)c->agents.missed_beats);
}

size_t agents_connected(const struct agents *a)
{
	return a ? a->npolls : 0;
}

/* Turns store items [{"task": {...}}] into signed copies in place. */
int agents_sign(struct hub *h, json_t *items)
{
	json_t *it;
	size_t i;

	json_array_foreach(items, i, it)
	{
		struct phase_mark m;
		char *text, *sig;

		phase_start(&m);
		text = sec_canonical(json_object_get(it, "task"));
		sig = text ? sec_sign_b64(h->sk, text, strlen(text)) : NULL;
		free(text);
		if (!sig)
			return OUTPOST_E_INTERNAL;
		json_object_set_new(it, "sig", json_string(sig));
		free(sig);
		h->st.signed_tasks++;
		phase_end(&h->st.phases[HP_SIGN], &m, 1);
	}
	return 0;
}

static int poll_healthy(const struct agents *a, const struct agents_poll *w)
{
	return w->fd >= 0 && tcpalive_healthy(w->fd, &a->ka);
}

static void poll_unlink(struct agents *a, struct agents_poll *w)
{
	struct agents_poll **pp = &a->polls[poll_hash(w->host)];

	for (; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			a->npolls--;
			return;
		}
}

/* Out of the table and its timer gone: the caller answers w->req and frees w. */
static void poll_detach(struct agents *a, struct agents_poll *w)
{
	poll_unlink(a, w);
	if (w->timer)
		loop_timer_del(a->h->loop, w->timer);
}

/* A poll's answer: the tasks, and the beat interval (the held poll stands in for beats, so
 * its answer brings what a beat's would). Steals items. */
static json_t *poll_result(struct hub *h, json_t *items)
{
	return json_pack("{s:o, s:I}", "tasks", items ? items : json_array(), "interval_ms",
	                 h->conf->agents.beat_ms);
}

static void poll_answer(struct agents *a, struct agents_poll *w, json_t *items)
{
	struct hub *h = a->h;
	struct phase_mark m;
	int with_tasks = json_array_size(items) > 0;

	phase_start(&m);
	poll_detach(a, w);
	/* Held until now on a healthy connection: seen now, so the host has missed_beats
	 * intervals to ask again (a hung agent whose kernel answers is down that much later). */
	if (!a->h->stopping && poll_healthy(a, w))
		registry_alive(a->h, httpd_req_data(w->req));
	httpd_respond_ok(w->req, poll_result(h, items));
	free(w);
	if (with_tasks)
		phase_end(&h->st.phases[HP_ANSWER], &m, 1);
}

static void poll_on_timeout(void *arg)
{
	struct agents_poll *w = arg;
	w->timer = NULL; /* one-shot: the loop frees it */
	poll_answer(w->a, w, NULL);
}

/* Held polls end on a grid of this many ms (a wait is up to that much longer than asked), so
 * that the polls ending in one slot are answered in one turn of the loop and one run of the
 * HTTP server, which walks every suspended connection each time it resumes any: 10,000 agents
 * renew their polls 333 times a second, and a walk per answer cost the hub's loop most of its
 * time (docs/BENCHMARKS.md). */
#define AGENTS_POLL_GRID_MS 250

static int64_t poll_delay_ms(long wait_s)
{
	int64_t now = clk_mono_ms(), due = now + (int64_t)wait_s * 1000;

	return due + (AGENTS_POLL_GRID_MS - due % AGENTS_POLL_GRID_MS) - now;
}

static struct agents_poll *poll_find(struct agents *a, const char *host)
{
	for (struct agents_poll *w = a->polls[poll_hash(host)]; w; w = w->next)
		if (strcmp(w->host, host) == 0)
			return w;
	return NULL;
}

int agents_keeps_up(void *arg, const char *host)
{
	struct agents *a = arg;
	struct agents_poll *w = poll_find(a, host);

	return w && poll_healthy(a, w);
}

void agents_cut_off(void *arg, const char *host, const char *why)
{
	struct agents *a = arg;
	struct agents_poll *w = poll_find(a, host);

	if (!w)
		return;
	poll_detach(a, w);
	httpd_respond_error(w->req, OUTPOST_E_UNAUTHORIZED, "%s", why);
	free(w);
}

/* Hands what is queued for host to its waiting poll, if it has one and something is queued. */
static void agents_wake_host(struct agents *a, const char *host)
{
	struct agents_poll *w = poll_find(a, host);
	struct hub *h = a->h;
	struct phase_mark m;
	json_t *items = NULL;
	int rc;

	if (!w)
		return;
	phase_start(&m);
	rc = h->store->ops->task_take(h->store, host, clk_real_ms(), AGENTS_TAKE_MAX, &items);
	if (rc == 0 && json_array_size(items) > 0)
		phase_end(&h->st.phases[HP_TAKE], &m, 1);
	if (rc < 0 || json_array_size(items) == 0 || agents_sign(h, items) < 0) {
		json_decref(items);
		return;
	}
	poll_answer(a, w, items);
}

void agents_wake_hosts(struct agents *a, json_t *ids)
{
	json_t *v;
	size_t i;

	json_array_foreach(ids, i, v) agents_wake_host(a, json_string_value(v));
}

void agents_release_all(struct agents *a)
{
	if (!a)
		return;
	for (size_t b = 0; b < AGENTS_BUCKETS; b++)
		while (a->polls[b])
			poll_answer(a, a->polls[b], NULL);
}

void agents_free(struct agents *a)
{
	agents_release_all(a);
	free(a);
}

/* GET /api/v1/agents/<id>/tasks?wait=S[&resume=1] (auth checked the id is the signer's). */
void agents_poll(void *ctx, struct httpd_req *req)
{
	struct hub *h = ctx;
	struct agents *a = h->agents;
	struct hub_caller *c = httpd_req_data(req);
	const char *ws = httpd_req_query(req, "wait");
	long wait = ws ? strtol(ws, NULL, 10) : 30;
	long maxw = (long)h->conf->agents.poll_wait_s;
	json_t *items = NULL, *again = NULL;
	const char *resume = httpd_req_query(req, "resume");
	int resumed = resume && strcmp(resume, "1") == 0;
	struct agents_poll *w;
	struct phase_mark m;

	if (wait < 0)
		wait = 0;
	if (wait > maxw)
		wait = maxw;
	if (h->stopping) {
		/* Answered at once, a poll would come straight back: the agent backs off instead,
		 * and finds the hub again after its restart. */
		httpd_respond_error(req, OUTPOST_E_UNAVAILABLE, "the hub is stopping");
		return;
	}
	/* Polling is a sign of life too. */
	registry_alive(h, c);
	if (resumed) {
		/* The agent restarted, or lost an answer: what it was sent and never finished,
		 * again; asked before the queue is taken, so what this poll takes is not in it
		 * twice. */
		if (h->store->ops->task_resume(h->store, c->host_id, clk_real_ms(), AGENTS_TAKE_MAX,
		                               &again) < 0)
			again = NULL;
	}
	phase_start(&m);
	if (h->store->ops->task_take(h->store, c->host_id, clk_real_ms(), AGENTS_TAKE_MAX, &items) <
	    0) {
		json_decref(again);
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "cannot read the task queue");
		return;
	}
	if (json_array_size(items) > 0) /* a poll that finds nothing is not a task's */
		phase_end(&h->st.phases[HP_TAKE], &m, 1);
	if (again)
		json_array_extend(items, again);
	json_decref(again);
	if (agents_sign(h, items) < 0) {
		json_decref(items);
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "cannot read the task queue");
		return;
	}
	/* A poll with resume comes after a restart or a failed poll: answered at once, even
	 * empty, so the agent knows it reached the hub again (its beats wait while its poll is
	 * held) and asks again, held this time, on the same connection. */
	if (json_array_size(items) || wait == 0 || resumed) {
		int with_tasks = json_array_size(items) > 0;
		phase_start(&m);
		httpd_respond_ok(req, poll_result(h, items));
		if (with_tasks)
			phase_end(&h->st.phases[HP_ANSWER], &m, 1);
		return;
	}
	json_decref(items);
	/* One poll per host: a newer one replaces the old. */
	if ((w = poll_find(a, c->host_id)))
		poll_answer(a, w, NULL);
	w = calloc(1, sizeof(*w));
	if (!w ||
	    loop_timer_add(h->loop, poll_delay_ms(wait), 0, poll_on_timeout, w, &w->timer) < 0) {
		free(w);
		httpd_respond_error(req, OUTPOST_E_INTERNAL, "out of memory");
		return;
	}
	w->a = a;
	w->req = req;
	snprintf(w->host, sizeof(w->host), "%s", c->host_id);
	w->fd = httpd_req_fd(req);
	if (w->fd >= 0 && tcpalive_arm(w->fd, &a->ka) < 0)
		w->fd = -1; /* not TCP (a unix socket): the poll counts only when it arrives */
	w->next = a->polls[poll_hash(w->host)];
	a->polls[poll_hash(w->host)] = w;
	a->npolls++;
}
