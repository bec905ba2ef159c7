/* Tasks from the hub: see hubtask.h. A task is judged before anything runs; what is refused
 * never reaches the ledger, so a forged task cannot burn the id of a real one. */
#include "hubtask.h"
#include "dispatch.h"
#include "ledger.h"
#include "link.h"
#include "taskphase.h"
#include "core/clk.h"
#include "core/loop.h"
#include "core/sec.h"
#include "core/wire.h"

#include <outpost/plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HT_DAY_MS (86400LL * 1000)
#define HT_MAX_TIMEOUT_MS (7 * HT_DAY_MS)
#define HT_BUSY_RETRY_MS 1000
/* Tasks issued further in the future than this are refused: the hub's own skew bound. */
#define HT_MAX_SKEW_MS (300LL * 1000)
/* A task still running after this long is reported `running`; one that ends sooner sends only
 * its final state: one request to the hub per short task instead of two. */
#define HT_RUNNING_REPORT_MS 1000

/* One task handed to the dispatcher. */
struct ht_run {
	struct hubtask *h; /* NULL once detached by hubtask_free */
	char task_id[LEDGER_ID_MAX + 1];
	char plugin[WIRE_NAME_MAX + 1], op[WIRE_NAME_MAX + 1];
	json_t *args;
	int64_t timeout_ms, expires_ms, started_ms;
	struct loop_timer *retry;   /* waiting for a free dispatcher slot */
	struct loop_timer *running; /* until the `running` report is due */
	struct ht_run *next;
};

struct ht_facts_call {
	struct hubtask *h; /* NULL once detached */
	json_t *facts;     /* sys.facts' answer, with the plugins' added as they come */
	size_t next;       /* the fact plugin asked next */
};

struct hubtask {
	struct loop *loop;
	const struct logger *log;
	struct dispatch *dispatch;
	struct ledger *ledger;
	char host_id[HUBTASK_HOST_ID_MAX + 1];
	int64_t max_ttl_ms, facts_interval_ms;
	struct link *link;
	struct ht_run *runs;
	struct loop_timer *facts_timer;
	struct ht_facts_call *facts_call;
	struct hubtask_stats st;
	struct taskphases *phases; /* borrowed, may be NULL */
	char **fact_plugins;       /* NULL-terminated; owned */
};

int hubtask_host_id_ok(const char *id)
{
	return wire_host_id_ok(id);
}

int hubtask_host_id(const char *conf_id, char out[HUBTASK_HOST_ID_MAX + 1], char *msg,
                    size_t msglen)
{
	char name[256] = "";

	if (conf_id && *conf_id) {
		if (!hubtask_host_id_ok(conf_id)) {
			snprintf(msg, msglen,
			         "'hub.host_id' must be 1 to 64 of A-Z a-z 0-9 . _ - and not start "
			         "with . or -");
			return OUTPOST_E_BAD_ARGS;
		}
		memcpy(out, conf_id, strlen(conf_id) + 1); /* ok: at most 64 */
		return 0;
	}
	if (gethostname(name, sizeof(name) - 1) < 0 || !hubtask_host_id_ok(name)) {
		snprintf(
		    msg, msglen,
		    "the hostname '%.64s' is not a valid host id (1 to 64 of A-Z a-z 0-9 . _ -): "
		    "set 'hub.host_id'",
		    name);
		return OUTPOST_E_BAD_ARGS;
	}
	memcpy(out, name, strlen(name) + 1);
	return 0;
}

/* Sends one state of one task through the link. response: stolen (NULL: JSON null). */
static void ht_report(struct hubtask *h, const char *task_id, const char *state, json_t *response,
                      int64_t started_ms, int64_t finished_ms)
{
	struct phase_mark m;
	json_t *r;

	if (h->phases) /* a thread's CPU clock is a system call: only when counted */
		phase_start(&m);
	r = json_pack("{s:s, s:s, s:o, s:I, s:I}", "task_id", task_id, "state", state, "response",
	              response ? response : json_null(), "started_ms", (json_int_t)started_ms,
	              "finished_ms", (json_int_t)finished_ms);
	if (!r || !h->link || h->link->ops->report(h->link, r) < 0)
		log_error(h->log, "hubtask",
		          "cannot queue the %s result of task %s for the hub: it will be reported "
		          "from the ledger when the hub asks again",
		          state, task_id);
	json_decref(r);
	phase_end(taskphase(h->phases, TP_REPORT), &m, 1);
}

/* Refuses a task: nothing runs, the ledger is not touched. id: the task's id when it has a
 * valid one (else the refusal is only logged). */
static void ht_refuse(struct hubtask *h, const char *id, const char *state, int code,
                      const char *why)
{
	int64_t now = clk_real_ms();

	h->st.refused++;
	log_warn(h->log, "hubtask", "%s task %s: %s",
	         strcmp(state, "expired") ? "refused" : "expired",
	         id ? id : "(without a valid task_id)", why);
	if (id)
		ht_report(h, id, state, wire_error(code, why), now, now);
}

static struct ht_run *ht_find(struct hubtask *h, const char *id)
{
	for (struct ht_run *r = h->runs; r; r = r->next)
		if (strcmp(r->task_id, id) == 0)
			return r;
	return NULL;
}

static void ht_unlink(struct hubtask *h, struct ht_run *run)
{
	for (struct ht_run **pp = &h->runs; *pp; pp = &(*pp)->next)
		if (*pp == run) {
			*pp = run->next;
			h->st.running--;
			return;
		}
}

static void ht_run_free(struct ht_run *run)
{
	if (run->running && run->h)
		loop_timer_del(run->h->loop, run->running);
	json_decref(run->args);
	free(run);
}

static const char *ht_error_code(const json_t *env)
{
	return json_string_value(json_object_get(json_object_get(env, "error"), "code"));
}

/* The final state a response means (docs/protocol.md): ok is ok:true, and for exec.run an
 * exit status of 0 without a timeout. */
static const char *ht_final_state(const struct ht_run *run, const json_t *env)
{
	const char *code;

	if (json_is_true(json_object_get(env, "ok"))) {
		if (strcmp(run->plugin, "exec") == 0 && strcmp(run->op, "run") == 0) {
			json_t *res = json_object_get(env, "result");
			json_t *ec = json_object_get(res, "exit_code");
			if (json_is_true(json_object_get(res, "timed_out")))
				return "timeout";
			if (!json_is_integer(ec) || json_integer_value(ec) != 0)
				return "failed";
		}
		return "ok";
	}
	code = ht_error_code(env);
	if (code && strcmp(code, "timeout") == 0)
		return "timeout";
	if (code && strcmp(code, "lost") == 0)
		return "lost";
	return "failed";
}

static void ht_submit(struct ht_run *run);

static void ht_on_running(void *arg)
{
	struct ht_run *run = arg;

	run->running = NULL; /* one-shot: freed by the loop */
	ht_report(run->h, run->task_id, "running", NULL, run->started_ms, 0);
}

static void ht_on_retry(void *arg)
{
	struct ht_run *run = arg;

	run->retry = NULL; /* one-shot: freed by the loop */
	ht_submit(run);
}

static void ht_on_done(void *arg, json_t *env, int replay)
{
	struct ht_run *run = arg;
	struct hubtask *h = run->h;
	const char *code = ht_error_code(env), *state;
	int64_t now = clk_real_ms();

	if (!h) {
		json_decref(env);
		ht_run_free(run);
		return;
	}
	/* busy: refused before the ledger saw it, so nothing ran; try again until it expires. */
	if (!replay && code && strcmp(code, "busy") == 0 && now < run->expires_ms &&
	    loop_timer_add(h->loop, HT_BUSY_RETRY_MS, 0, ht_on_retry, run, &run->retry) == 0) {
		json_decref(env);
		return;
	}
	ht_unlink(h, run);
	state = ht_final_state(run, env);
	if (replay)
		h->st.replayed++;
	log_msg(h->log, strcmp(state, "lost") == 0 ? OUTPOST_LOG_WARN : OUTPOST_LOG_INFO, "hubtask",
	        "task %s (%s.%s) %s%s after %lld ms", run->task_id, run->plugin, run->op, state,
	        replay ? " (its stored result, not run again)" : "",
	        (long long)(now - run->started_ms));
	ht_report(h, run->task_id, state, env, run->started_ms, now);
	ht_run_free(run);
}

static void ht_submit(struct ht_run *run)
{
	struct hubtask *h = run->h;

	/* Journaled in this host's ledger: one dispatcher may serve several hosts (outpost-sim). */
	if (dispatch_submit_ledger(h->dispatch, h->ledger, run->plugin, run->op, run->args,
	                           run->task_id, run->timeout_ms, DISPATCH_JOURNAL, ht_on_done,
	                           run) < 0) {
		ht_unlink(h, run);
		ht_report(h, run->task_id, "failed",
		          wire_error(OUTPOST_E_INTERNAL, "out of memory"), run->started_ms,
		          clk_real_ms());
		ht_run_free(run);
	}
}

/* Checks the fields of a task whose signature verified. 0, or -1 with why. */
static int ht_check_fields(const json_t *task, char *why, size_t whylen)
{
	json_t *v;

	if (!ledger_id_ok(json_string_value(json_object_get(task, "task_id")))) {
		snprintf(why, whylen, "task_id must be 1 to 128 of A-Z a-z 0-9 . _ : -");
		return -1;
	}
	if (!wire_name_ok(json_string_value(json_object_get(task, "plugin"))) ||
	    !wire_name_ok(json_string_value(json_object_get(task, "op")))) {
		snprintf(why, whylen,
		         "plugin and op must be 1 to 32 of a-z 0-9 _, starting with a letter");
		return -1;
	}
	v = json_object_get(task, "args");
	if (v && !json_is_object(v)) {
		snprintf(why, whylen, "args must be an object");
		return -1;
	}
	v = json_object_get(task, "timeout_ms");
	if (v && (!json_is_integer(v) || json_integer_value(v) < 1 ||
	          json_integer_value(v) > HT_MAX_TIMEOUT_MS)) {
		snprintf(why, whylen, "timeout_ms must be an integer from 1 to %lld",
		         (long long)HT_MAX_TIMEOUT_MS);
		return -1;
	}
	v = json_object_get(task, "issued_ms");
	if (v && !json_is_integer(v)) {
		snprintf(why, whylen, "issued_ms must be an integer");
		return -1;
	}
	return 0;
}

int hubtask_verify(const json_t *signed_task, const uint8_t *pk, const char *host_id, int64_t now,
                   int64_t max_ttl_ms, struct hubtask_verdict *v)
{
	const json_t *task = json_object_get(signed_task, "task");
	const char *sig = json_string_value(json_object_get(signed_task, "sig"));
	const char *host;
	json_t *exp;
	int64_t issued;
	char *canon;
	int bad;

	v->id = json_string_value(json_object_get(task, "task_id"));
	v->state = "refused";
	v->code = OUTPOST_E_BAD_ARGS;
	v->why[0] = '\0';
	if (!ledger_id_ok(v->id))
		v->id = NULL;
	if (!json_is_object(task) || !sig) {
		snprintf(v->why, sizeof(v->why),
		         "malformed: a signed task is {\"task\": {...}, \"sig\": \"...\"}");
		return -1;
	}
	/* 1. The signature, with the key pinned at enrollment, over the canonical text. */
	v->code = OUTPOST_E_FORBIDDEN;
	if (!pk) {
		snprintf(v->why, sizeof(v->why), "no pinned hub key yet (not enrolled)");
		return -1;
	}
	canon = sec_canonical(task);
	bad = !canon || sec_verify_b64(pk, canon, strlen(canon), sig) < 0;
	free(canon);
	if (bad) {
		snprintf(v->why, sizeof(v->why),
		         "the signature does not verify with the pinned hub key");
		return -1;
	}
	/* 2. Bound to this host. */
	host = json_string_value(json_object_get(task, "host_id"));
	if (!host || strcmp(host, host_id) != 0) {
		snprintf(v->why, sizeof(v->why), "the task is for host '%.64s', this is '%s'",
		         host ? host : "(none)", host_id);
		return -1;
	}
	/* 3. Not expired, and not valid for longer than the ledger remembers ids. */
	exp = json_object_get(task, "expires_ms");
	if (!json_is_integer(exp)) {
		v->code = OUTPOST_E_BAD_ARGS;
		snprintf(v->why, sizeof(v->why), "expires_ms must be an integer");
		return -1;
	}
	if (json_integer_value(exp) <= now) {
		v->state = "expired";
		v->code = OUTPOST_E_TIMEOUT;
		snprintf(v->why, sizeof(v->why),
		         "it expired at %lld, the agent's clock says %lld (if this repeats, check "
		         "the clocks of the agent and the hub)",
		         (long long)json_integer_value(exp), (long long)now);
		return -1;
	}
	if (json_integer_value(exp) - now > max_ttl_ms) {
		snprintf(v->why, sizeof(v->why),
		         "it expires in %lld s, beyond the %lld s the ledger remembers task ids "
		         "(ledger.keep_days)",
		         (long long)(json_integer_value(exp) - now) / 1000,
		         (long long)max_ttl_ms / 1000);
		return -1;
	}
	/* 4. Well-formed, and not from the future: a task issued later than this agent's clock
	 * allows (the hub's own skew bound) says one of the two clocks is wrong. */
	v->code = OUTPOST_E_BAD_ARGS;
	if (ht_check_fields(task, v->why, sizeof(v->why)) < 0)
		return -1;
	issued = json_integer_value(json_object_get(task, "issued_ms"));
	if (issued > now && issued - now > HT_MAX_SKEW_MS) {
		v->code = OUTPOST_E_FORBIDDEN;
		snprintf(
		    v->why, sizeof(v->why),
		    "it was issued at %lld, %lld s ahead of the agent's clock (%lld): check the "
		    "clocks of the agent and the hub (NTP)",
		    (long long)issued, (long long)(issued - now) / 1000, (long long)now);
		return -1;
	}
	v->code = 0;
	v->state = NULL;
	return 0;
}

void hubtask_receive(void *arg, const json_t *signed_task)
{
	struct hubtask *h = arg;
	const json_t *task = json_object_get(signed_task, "task");
	const char *id, *prior;
	uint8_t pk[SEC_PK_BYTES];
	struct hubtask_verdict v;
	struct phase_mark m;
	struct ht_run *run;
	json_t *exp;
	int64_t now = clk_real_ms();
	int keyed, rc;

	h->st.received++;
	if (h->phases)
		phase_start(&m);
	keyed = h->link && h->link->ops->hub_key(h->link, pk) == 0;
	rc = hubtask_verify(signed_task, keyed ? pk : NULL, h->host_id, now, h->max_ttl_ms, &v);
	phase_end(taskphase(h->phases, TP_VERIFY), &m, 1);
	if (rc < 0) {
		ht_refuse(h, v.id, v.state, v.code, v.why);
		return;
	}
	id = v.id;
	exp = json_object_get(task, "expires_ms");
	/* 5. Run once: a second delivery while it runs is dropped (the run reports); an id the
	 * ledger knows is answered from it by the dispatcher (a replay, or lost). */
	if (ht_find(h, id)) {
		log_debug(h->log, "hubtask", "task %s delivered again while it runs: ignored", id);
		return;
	}
	run = calloc(1, sizeof(*run));
	if (!run) {
		log_error(h->log, "hubtask", "task %s: out of memory", id);
		return;
	}
	run->h = h;
	snprintf(run->task_id, sizeof(run->task_id), "%s", id);
	snprintf(run->plugin, sizeof(run->plugin), "%s",
	         json_string_value(json_object_get(task, "plugin")));
	snprintf(run->op, sizeof(run->op), "%s", json_string_value(json_object_get(task, "op")));
	run->args = json_object_get(task, "args") ? json_deep_copy(json_object_get(task, "args"))
	                                          : json_object();
	run->timeout_ms = json_integer_value(json_object_get(task, "timeout_ms"));
	run->expires_ms = json_integer_value(exp);
	run->started_ms = now;
	if (!run->args) {
		free(run);
		log_error(h->log, "hubtask", "task %s: out of memory", id);
		return;
	}
	run->next = h->runs;
	h->runs = run;
	h->st.running++;
	h->st.started++;
	if (h->phases)
		phase_start(&m);
	prior = ledger_state(h->ledger, id, NULL);
	phase_end(taskphase(h->phases, TP_LEDGER), &m, 0);
	if (!prior) {
		log_info(h->log, "hubtask", "task %s: running %s.%s", id, run->plugin, run->op);
		if (loop_timer_add(h->loop, HT_RUNNING_REPORT_MS, 0, ht_on_running, run,
		                   &run->running) < 0)
			ht_report(h, id, "running", NULL, now, 0);
	}
	ht_submit(run);
}

/* ---- facts for the hub ---- */

/* Asks the next plugin's `facts`, or hands the whole to the link. */
static void ht_facts_next(struct ht_facts_call *call);

static void ht_on_facts(void *arg, json_t *env, int replay)
{
	struct ht_facts_call *call = arg;
	struct hubtask *h = call->h;
	json_t *res = json_object_get(env, "result");
	int ok = json_is_true(json_object_get(env, "ok"));

	(void)replay;
	if (!h) {
		json_decref(call->facts);
		free(call);
	} else if (!call->facts && !ok) {
		log_debug(h->log, "hubtask", "no facts from sys.facts: %s",
		          ht_error_code(env) ? ht_error_code(env) : "?");
		h->facts_call = NULL;
		free(call);
	} else {
		if (!call->facts)
			call->facts = json_is_object(res) ? json_incref(res) : json_object();
		else if (ok && res)
			json_object_set(call->facts, h->fact_plugins[call->next - 1], res);
		ht_facts_next(call);
	}
	json_decref(env);
}

static void ht_facts_next(struct ht_facts_call *call)
{
	struct hubtask *h = call->h;
	json_t *args;

	while (h->fact_plugins && h->fact_plugins[call->next]) {
		const char *name = h->fact_plugins[call->next++];
		args = json_object();
		if (args && dispatch_submit(h->dispatch, name, "facts", args, NULL, 10000, 0,
		                            ht_on_facts, call) == 0) {
			json_decref(args);
			return;
		}
		json_decref(args);
	}
	h->facts_call = NULL;
	if (h->link)
		h->link->ops->facts(h->link, call->facts);
	json_decref(call->facts);
	free(call);
}

static void ht_on_facts_timer(void *arg)
{
	struct hubtask *h = arg;
	struct ht_facts_call *call;
	json_t *args;

	if (h->facts_call)
		return;
	call = calloc(1, sizeof(*call));
	args = json_object();
	if (call && args) {
		call->h = h;
		/* Set first: an inline op answers before dispatch_submit returns. */
		h->facts_call = call;
		if (dispatch_submit(h->dispatch, "sys", "facts", args, NULL, 10000, 0, ht_on_facts,
		                    call) < 0) {
			h->facts_call = NULL;
			free(call);
		}
	} else {
		free(call);
	}
	json_decref(args);
}

/* ---- life cycle ---- */

int hubtask_new(const struct hubtask_config *cfg, struct hubtask **out)
{
	struct hubtask *h;

	*out = NULL;
	if (!hubtask_host_id_ok(cfg->host_id))
		return OUTPOST_E_BAD_ARGS;
	h = calloc(1, sizeof(*h));
	if (!h)
		return OUTPOST_E_INTERNAL;
	h->loop = cfg->loop;
	h->log = cfg->log;
	h->dispatch = cfg->dispatch;
	h->ledger = cfg->ledger;
	h->phases = cfg->phases;
	snprintf(h->host_id, sizeof(h->host_id), "%s", cfg->host_id);
	h->max_ttl_ms = cfg->max_ttl_ms > 0 ? cfg->max_ttl_ms : 7 * HT_DAY_MS;
	h->facts_interval_ms = cfg->facts_interval_ms ? cfg->facts_interval_ms : 15 * 60 * 1000;
	if (cfg->fact_plugins) {
		size_t n = 0;
		while (cfg->fact_plugins[n])
			n++;
		if (!(h->fact_plugins = calloc(n + 1, sizeof(char *)))) {
			free(h);
			return OUTPOST_E_INTERNAL;
		}
		for (size_t i = 0; i < n; i++)
			if (!(h->fact_plugins[i] = strdup(cfg->fact_plugins[i]))) {
				hubtask_free(h);
				return OUTPOST_E_INTERNAL;
			}
	}
	*out = h;
	return 0;
}

void hubtask_set_link(struct hubtask *h, struct link *link)
{
	h->link = link;
	if (h->facts_interval_ms > 0 && !h->facts_timer)
		loop_timer_add(h->loop, 0, h->facts_interval_ms, ht_on_facts_timer, h,
		               &h->facts_timer);
}

const struct hubtask_stats *hubtask_stats(const struct hubtask *h)
{
	return &h->st;
}

void hubtask_free(struct hubtask *h)
{
	if (!h)
		return;
	loop_timer_del(h->loop, h->facts_timer);
	if (h->facts_call)
		h->facts_call->h = NULL;
	while (h->runs) {
		struct ht_run *run = h->runs;
		h->runs = run->next;
		loop_timer_del(h->loop, run->running);
		run->running = NULL;
		if (run->retry) {
			/* Waiting for a slot: the dispatcher does not know it. */
			loop_timer_del(h->loop, run->retry);
			ht_run_free(run);
		} else {
			run->h = NULL; /* the dispatcher's answer frees it */
		}
	}
	for (size_t i = 0; h->fact_plugins && h->fact_plugins[i]; i++)
		free(h->fact_plugins[i]);
	free(h->fact_plugins);
	free(h);
}
