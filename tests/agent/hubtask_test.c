/* Tests for src/agent/hubtask.c: a task signed with the pinned key runs once; anything forged,
 * for another host, expired, malformed or too long-lived is refused and runs nothing; a task id
 * seen before is answered from the ledger. A fake link records what would go to the hub. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "agent/dispatch.h"
#include "agent/hubtask.h"
#include "agent/ledger.h"
#include "agent/link.h"
#include "agent/plugins.h"
#include "core/clk.h"
#include "core/db.h"
#include "core/loop.h"
#include "core/sec.h"

#include <ftw.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HOST "web-01"

static atomic_int runs;

/* t.count: counts its runs (the proof that nothing ran). */
static int op_count(struct outpost_call *c, json_t *a, json_t **r)
{
	(void)c;
	usleep((useconds_t)json_integer_value(json_object_get(a, "ms")) * 1000);
	*r = json_integer(atomic_fetch_add(&runs, 1) + 1);
	return 0;
}

static int op_fail(struct outpost_call *c, json_t *a, json_t **r)
{
	(void)a, (void)r;
	atomic_fetch_add(&runs, 1);
	return outpost_call_error(c, OUTPOST_E_FORBIDDEN, "no");
}

/* A stand-in for exec.run: answers the exit status it is told to. */
static int op_run(struct outpost_call *c, json_t *a, json_t **r)
{
	(void)c;
	atomic_fetch_add(&runs, 1);
	*r = json_pack("{s:O, s:n, s:b}", "exit_code", json_object_get(a, "code"), "signal",
	               "timed_out", json_is_true(json_object_get(a, "timed_out")));
	return 0;
}

static const struct outpost_arg count_args[] = {
    {"ms", OUTPOST_ARG_INT, 0, "ms"}, {"tag", OUTPOST_ARG_STRING, 0, "tag"}, {NULL, 0, 0, NULL}};
static const struct outpost_arg no_args[] = {{NULL, 0, 0, NULL}};
static const struct outpost_arg run_args[] = {{"code", OUTPOST_ARG_INT, 1, "code"},
                                              {"timed_out", OUTPOST_ARG_BOOL, 0, "t"},
                                              {NULL, 0, 0, NULL}};
static const struct outpost_op t_ops[] = {
    {"count", op_count, count_args, 0, "count"},
    {"fail", op_fail, no_args, 0, "fail"},
    {NULL, NULL, NULL, 0, NULL},
};
static const struct outpost_op exec_ops[] = {
    {"run", op_run, run_args, OUTPOST_OP_MUTATING, "run"},
    {NULL, NULL, NULL, 0, NULL},
};
static const struct outpost_plugin t_plugin = {OUTPOST_PLUGIN_ABI, "t", "1", NULL, NULL, t_ops};
static const struct outpost_plugin exec_plugin = {
    OUTPOST_PLUGIN_ABI, "exec", "1", NULL, NULL, exec_ops};

/* ---- a fake link: records reports, lends the pinned key ---- */

struct fake_link {
	struct link base;
	json_t *reports;
	uint8_t pk[SEC_PK_BYTES];
	int enrolled;
};

static int fl_start(struct link *l, char *msg, size_t msglen)
{
	(void)l, (void)msg, (void)msglen;
	return 0;
}

static void fl_stop(struct link *l)
{
	(void)l;
}

static int fl_report(struct link *l, const json_t *r)
{
	struct fake_link *fl = (struct fake_link *)l;
	return json_array_append_new(fl->reports, json_deep_copy(r));
}

static void fl_facts(struct link *l, const json_t *facts)
{
	(void)l, (void)facts;
}

static int fl_hub_key(struct link *l, uint8_t pk[SEC_PK_BYTES])
{
	struct fake_link *fl = (struct fake_link *)l;
	if (!fl->enrolled)
		return -1;
	memcpy(pk, fl->pk, SEC_PK_BYTES);
	return 0;
}

static json_t *fl_status(struct link *l)
{
	(void)l;
	return json_object();
}

static void fl_free(struct link *l)
{
	(void)l;
}

static const struct link_ops fake_ops = {.name = "fake",
                                         .start = fl_start,
                                         .stop = fl_stop,
                                         .report = fl_report,
                                         .facts = fl_facts,
                                         .hub_key = fl_hub_key,
                                         .status = fl_status,
                                         .free = fl_free};

/* ---- fixture ---- */

struct fx {
	char dir[64];
	struct logger log;
	struct loop *loop;
	sqlite3 *db;
	struct ledger *ledger;
	struct plugin_host host;
	struct plugins *ps;
	struct dispatch *d;
	struct hubtask *ht;
	struct fake_link link;
	uint8_t hub_sk[SEC_SK_BYTES];
};

static void fx_dispatch(struct fx *f, int max_inflight)
{
	struct dispatch_config dc = {
	    .workers = 2, .max_inflight = max_inflight, .default_timeout_ms = 5000};
	struct hubtask_config hc = {.loop = f->loop,
	                            .log = &f->log,
	                            .ledger = f->ledger,
	                            .host_id = HOST,
	                            .max_ttl_ms = 86400 * 1000,
	                            .facts_interval_ms = -1};

	assert_int_equal(dispatch_new(f->loop, f->ps, f->ledger, &f->log, &dc, &f->d), 0);
	hc.dispatch = f->d;
	assert_int_equal(hubtask_new(&hc, &f->ht), 0);
	hubtask_set_link(f->ht, &f->link.base);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char path[128], msg[256];

	assert_int_equal(sec_init(), 0);
	strcpy(f->dir, "/tmp/outpost-hubtask-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	log_init(&f->log, "test", OUTPOST_LOG_ERROR, LOG_TO_STDERR);
	assert_int_equal(loop_new(&f->loop), 0);
	snprintf(path, sizeof(path), "%s/agent.db", f->dir);
	assert_int_equal(db_open(path, &f->db, msg, sizeof(msg)), 0);
	assert_int_equal(ledger_open(f->db, &f->log, &f->ledger, NULL), 0);
	f->host.log = &f->log;
	f->host.loop = f->loop;
	f->host.db = f->db;
	f->host.state_dir = f->dir;
	assert_int_equal(plugins_new(&f->host, &f->ps), 0);
	assert_int_equal(plugins_add(f->ps, &t_plugin, "builtin", NULL, NULL), 0);
	assert_int_equal(plugins_add(f->ps, &exec_plugin, "builtin", NULL, NULL), 0);
	plugins_init_all(f->ps);
	f->link.base.ops = &fake_ops;
	f->link.reports = json_array();
	f->link.enrolled = 1;
	crypto_sign_keypair(f->link.pk, f->hub_sk);
	atomic_store(&runs, 0);
	fx_dispatch(f, 8);
	*state = f;
	return 0;
}

static int rm_one(const char *p, const struct stat *s, int fl, struct FTW *w)
{
	(void)s, (void)fl, (void)w;
	return remove(p);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	dispatch_free(f->d);
	loop_run_once(f->loop, 0);
	hubtask_free(f->ht);
	plugins_free(f->ps);
	ledger_close(f->ledger);
	db_close(f->db);
	loop_free(f->loop);
	json_decref(f->link.reports);
	nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static json_t *task_new(const char *id, const char *host, const char *plugin, const char *op,
                        const char *args, int64_t expires_in_ms)
{
	int64_t now = clk_real_ms();
	json_t *t = json_pack("{s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I}", "task_id", id, "host_id",
	                      host, "plugin", plugin, "op", op, "args", json_loads(args, 0, NULL),
	                      "timeout_ms", (json_int_t)5000, "issued_ms", (json_int_t)now,
	                      "expires_ms", (json_int_t)(now + expires_in_ms));
	assert_non_null(t);
	return t;
}

/* {"task": task, "sig": ...}; steals task. */
static json_t *sign_with(json_t *task, const uint8_t sk[SEC_SK_BYTES])
{
	char *canon = sec_canonical(task), *sig = sec_sign_b64(sk, canon, strlen(canon));
	json_t *st = json_pack("{s:o, s:s}", "task", task, "sig", sig);

	free(canon);
	free(sig);
	return st;
}

static json_t *sign(struct fx *f, json_t *task)
{
	return sign_with(task, f->hub_sk);
}

/* Hands st (stolen) to the hubtask, then turns the loop until the reports of task id reach a
 * final state or 5 s pass. */
static void deliver(struct fx *f, json_t *st)
{
	hubtask_receive(f->ht, st);
	json_decref(st);
}

static json_t *report_at(struct fx *f, size_t i)
{
	return json_array_get(f->link.reports, i);
}

static const char *state_at(struct fx *f, size_t i)
{
	return json_string_value(json_object_get(report_at(f, i), "state"));
}

static void wait_reports(struct fx *f, size_t n)
{
	int64_t end = clk_mono_ms() + 5000;

	while (json_array_size(f->link.reports) < n && clk_mono_ms() < end)
		loop_run_once(f->loop, 20);
	assert_int_equal(json_array_size(f->link.reports), n);
}

/* The final report of task id (the first whose state is not running), waiting up to 5 s. */
static json_t *wait_final(struct fx *f, const char *id)
{
	int64_t end = clk_mono_ms() + 5000;

	for (;;) {
		for (size_t i = 0; i < json_array_size(f->link.reports); i++) {
			json_t *r = report_at(f, i);
			if (strcmp(json_string_value(json_object_get(r, "task_id")), id) == 0 &&
			    strcmp(state_at(f, i), "running") != 0)
				return r;
		}
		assert_true(clk_mono_ms() < end);
		loop_run_once(f->loop, 20);
	}
}

/* A refusal is reported at once and leaves no trace in the ledger. */
static void assert_refused(struct fx *f, const char *id, const char *state, const char *code)
{
	json_t *r = report_at(f, json_array_size(f->link.reports) - 1);
	json_t *err = json_object_get(json_object_get(r, "response"), "error");

	assert_string_equal(json_string_value(json_object_get(r, "task_id")), id);
	assert_string_equal(json_string_value(json_object_get(r, "state")), state);
	assert_string_equal(json_string_value(json_object_get(err, "code")), code);
	assert_null(ledger_state(f->ledger, id, NULL));
	for (int i = 0; i < 5; i++)
		loop_run_once(f->loop, 10);
	assert_int_equal(atomic_load(&runs), 0);
}

/* ---- tests ---- */

/* A task that ends within a second reports only its final state (one request to the hub). */
static void test_signed_task_runs_and_reports_ok(void **state)
{
	struct fx *f = *state;
	json_t *resp;

	deliver(f, sign(f, task_new("t-1", HOST, "t", "count", "{\"tag\":\"a\"}", 60000)));
	wait_reports(f, 1);
	assert_string_equal(state_at(f, 0), "ok");
	resp = json_object_get(report_at(f, 0), "response");
	assert_true(json_is_true(json_object_get(resp, "ok")));
	assert_int_equal(json_integer_value(json_object_get(resp, "result")), 1);
	assert_true(json_integer_value(json_object_get(report_at(f, 0), "finished_ms")) >=
	            json_integer_value(json_object_get(report_at(f, 0), "started_ms")));
	for (int i = 0; i < 60; i++) /* past the second: no late running report */
		loop_run_once(f->loop, 20);
	assert_int_equal(json_array_size(f->link.reports), 1);
	assert_string_equal(ledger_state(f->ledger, "t-1", NULL), "done");
	assert_int_equal(atomic_load(&runs), 1);
	assert_int_equal(hubtask_stats(f->ht)->started, 1);
}

static void test_forged_signature_is_refused(void **state)
{
	struct fx *f = *state;
	uint8_t pk[SEC_PK_BYTES], sk[SEC_SK_BYTES];

	crypto_sign_keypair(pk, sk);
	deliver(f, sign_with(task_new("t-forged", HOST, "t", "count", "{}", 60000), sk));
	wait_reports(f, 1);
	assert_refused(f, "t-forged", "refused", "forbidden");
	assert_int_equal(hubtask_stats(f->ht)->refused, 1);
}

static void test_task_changed_after_signing_is_refused(void **state)
{
	struct fx *f = *state;
	json_t *st = sign(f, task_new("t-changed", HOST, "t", "count", "{\"tag\":\"a\"}", 60000));

	json_object_set_new(json_object_get(json_object_get(st, "task"), "args"), "tag",
	                    json_string("b"));
	deliver(f, st);
	wait_reports(f, 1);
	assert_refused(f, "t-changed", "refused", "forbidden");
}

static void test_task_for_another_host_is_refused(void **state)
{
	struct fx *f = *state;

	deliver(f, sign(f, task_new("t-other", "web-02", "t", "count", "{}", 60000)));
	wait_reports(f, 1);
	assert_refused(f, "t-other", "refused", "forbidden");
}

static void test_expired_task_is_reported_expired(void **state)
{
	struct fx *f = *state;

	deliver(f, sign(f, task_new("t-old", HOST, "t", "count", "{}", -1)));
	wait_reports(f, 1);
	assert_refused(f, "t-old", "expired", "timeout");
	assert_int_equal(hubtask_stats(f->ht)->refused, 1);
}

static void test_task_issued_in_the_agents_future_is_refused(void **state)
{
	struct fx *f = *state;
	json_t *t = task_new("t-future", HOST, "t", "count", "{}", 3600 * 1000), *r;
	const char *msg;

	/* Issued ten minutes ahead of this host's clock: one of the clocks is wrong. */
	json_object_set_new(t, "issued_ms", json_integer(clk_real_ms() + 600 * 1000));
	deliver(f, sign(f, t));
	wait_reports(f, 1);
	assert_refused(f, "t-future", "refused", "forbidden");
	r = report_at(f, 0);
	msg = json_string_value(
	    json_object_get(json_object_get(json_object_get(r, "response"), "error"), "message"));
	assert_non_null(strstr(msg, "check the clocks"));
	/* A few seconds ahead is within the skew the hub allows too: it runs. */
	t = task_new("t-near", HOST, "t", "count", "{}", 3600 * 1000);
	json_object_set_new(t, "issued_ms", json_integer(clk_real_ms() + 5000));
	deliver(f, sign(f, t));
	assert_string_equal(json_string_value(json_object_get(wait_final(f, "t-near"), "state")),
	                    "ok");
}

static void test_expiry_beyond_ledger_memory_is_refused(void **state)
{
	struct fx *f = *state;

	/* The fixture's ledger remembers ids for a day. */
	deliver(f, sign(f, task_new("t-far", HOST, "t", "count", "{}", 2 * 86400 * 1000LL)));
	wait_reports(f, 1);
	assert_refused(f, "t-far", "refused", "forbidden");
}

/* The attack of issue 10 (item 6): a captured task, then 105 filler tasks and as many local
 * calls, the agent's own prune at the smallest max_rows, a restart, and the captured task
 * replayed: answered from the ledger, it runs nothing. (The ledger once kept only its newest
 * max_rows ids, hub tasks within their expiry included.) */
static void test_captured_task_never_runs_twice_after_fillers_and_restart(void **state)
{
	struct fx *f = *state;
	json_t *captured = sign(f, task_new("t-captured", HOST, "t", "count", "{}", 3600000));
	json_t *args = json_object(), *prev, *env = json_pack("{s:b}", "ok", 1);
	char id[32];
	int lost;

	deliver(f, json_deep_copy(captured));
	wait_final(f, "t-captured");
	for (int i = 0; i < 105; i++) {
		snprintf(id, sizeof(id), "filler-%d", i);
		deliver(f, sign(f, task_new(id, HOST, "t", "count", "{}", 60000)));
		wait_final(f, id);
		snprintf(id, sizeof(id), LEDGER_LOCAL "call-%d", i);
		assert_int_equal(
		    ledger_begin(f->ledger, id, "t", "count", args, clk_mono_ms() + 1000, &prev),
		    LEDGER_NEW);
		assert_int_equal(ledger_finish(f->ledger, id, env), 0);
	}
	assert_int_equal(atomic_load(&runs), 106);
	assert_true(ledger_prune(f->ledger, 86400 * 1000LL, 100) > 0);
	dispatch_free(f->d);
	f->d = NULL;
	hubtask_free(f->ht);
	ledger_close(f->ledger);
	assert_int_equal(ledger_open(f->db, &f->log, &f->ledger, &lost), 0);
	fx_dispatch(f, 8);
	json_array_clear(f->link.reports);
	atomic_store(&runs, 0);
	deliver(f, captured);
	wait_reports(f, 1);
	assert_string_equal(state_at(f, 0), "ok");
	assert_int_equal(atomic_load(&runs), 0);
	assert_int_equal(hubtask_stats(f->ht)->replayed, 1);
	json_decref(args);
	json_decref(env);
}

static void test_malformed_tasks_are_refused(void **state)
{
	struct fx *f = *state;
	json_t *t, *st;
	size_t n = 0;

	/* No signature at all. */
	st = json_pack("{s:o}", "task", task_new("m-1", HOST, "t", "count", "{}", 60000));
	deliver(f, st);
	wait_reports(f, ++n);
	assert_refused(f, "m-1", "refused", "bad_args");

	/* Signed, but args is not an object. */
	t = task_new("m-2", HOST, "t", "count", "{}", 60000);
	json_object_set_new(t, "args", json_pack("[i]", 1));
	deliver(f, sign(f, t));
	wait_reports(f, ++n);
	assert_refused(f, "m-2", "refused", "bad_args");

	/* Signed, plugin name out of its alphabet. */
	deliver(f, sign(f, task_new("m-3", HOST, "../t", "count", "{}", 60000)));
	wait_reports(f, ++n);
	assert_refused(f, "m-3", "refused", "bad_args");

	/* Signed, timeout_ms negative. */
	t = task_new("m-4", HOST, "t", "count", "{}", 60000);
	json_object_set_new(t, "timeout_ms", json_integer(-5));
	deliver(f, sign(f, t));
	wait_reports(f, ++n);
	assert_refused(f, "m-4", "refused", "bad_args");

	/* Signed, expires_ms is not a number. */
	t = task_new("m-5", HOST, "t", "count", "{}", 60000);
	json_object_set_new(t, "expires_ms", json_string("tomorrow"));
	deliver(f, sign(f, t));
	wait_reports(f, ++n);
	assert_refused(f, "m-5", "refused", "bad_args");

	/* No valid task id: nothing to report to, only refused and counted. */
	deliver(f, sign(f, task_new("bad id", HOST, "t", "count", "{}", 60000)));
	deliver(f, json_pack("{s:s, s:s}", "task", "x", "sig", "y"));
	for (int i = 0; i < 5; i++)
		loop_run_once(f->loop, 10);
	assert_int_equal(json_array_size(f->link.reports), n);
	assert_int_equal(hubtask_stats(f->ht)->refused, n + 2);
	assert_int_equal(atomic_load(&runs), 0);
}

static void test_not_enrolled_refuses_everything(void **state)
{
	struct fx *f = *state;

	f->link.enrolled = 0;
	deliver(f, sign(f, task_new("t-early", HOST, "t", "count", "{}", 60000)));
	wait_reports(f, 1);
	assert_refused(f, "t-early", "refused", "forbidden");
}

static void test_replayed_task_id_reports_stored_result_and_runs_nothing(void **state)
{
	struct fx *f = *state;
	json_t *task = task_new("t-again", HOST, "t", "count", "{}", 60000);
	json_t *first;

	deliver(f, sign(f, json_deep_copy(task)));
	wait_reports(f, 1);
	first = json_object_get(report_at(f, 0), "response");
	/* The same signed task again (a replay, or the hub's resume after a restart). */
	deliver(f, sign(f, task));
	wait_reports(f, 2);
	assert_string_equal(state_at(f, 1), "ok");
	assert_true(json_equal(json_object_get(report_at(f, 1), "response"), first));
	assert_int_equal(atomic_load(&runs), 1);
	assert_int_equal(hubtask_stats(f->ht)->replayed, 1);
}

/* A task still running after a second is reported running, then its final state; a second
 * delivery meanwhile changes nothing. */
static void test_second_delivery_while_running_is_ignored(void **state)
{
	struct fx *f = *state;
	json_t *task = task_new("t-slow", HOST, "t", "count", "{\"ms\":1500}", 60000);

	deliver(f, sign(f, json_deep_copy(task)));
	deliver(f, sign(f, task));
	wait_reports(f, 2);
	for (int i = 0; i < 10; i++)
		loop_run_once(f->loop, 20);
	assert_int_equal(json_array_size(f->link.reports), 2);
	assert_string_equal(state_at(f, 0), "running");
	assert_string_equal(state_at(f, 1), "ok");
	assert_int_equal(atomic_load(&runs), 1);
}

static void test_task_running_when_the_agent_died_is_lost(void **state)
{
	struct fx *f = *state;
	json_t *args = json_object(), *prev = NULL;
	int lost = 0;

	/* A previous life began the task and died: the ledger says running, then lost. */
	assert_int_equal(
	    ledger_begin(f->ledger, "t-died", "t", "count", args, clk_mono_ms() + 1000, &prev),
	    LEDGER_NEW);
	json_decref(args);
	dispatch_free(f->d);
	f->d = NULL;
	hubtask_free(f->ht);
	ledger_close(f->ledger);
	assert_int_equal(ledger_open(f->db, &f->log, &f->ledger, &lost), 0);
	assert_int_equal(lost, 1);
	fx_dispatch(f, 8);

	deliver(f, sign(f, task_new("t-died", HOST, "t", "count", "{}", 60000)));
	wait_reports(f, 1);
	assert_string_equal(state_at(f, 0), "lost");
	assert_int_equal(atomic_load(&runs), 0);
}

static void test_exec_run_exit_status_decides_the_state(void **state)
{
	struct fx *f = *state;

	deliver(f, sign(f, task_new("e-0", HOST, "exec", "run", "{\"code\":0}", 60000)));
	wait_reports(f, 1);
	deliver(f, sign(f, task_new("e-3", HOST, "exec", "run", "{\"code\":3}", 60000)));
	wait_reports(f, 2);
	deliver(f, sign(f, task_new("e-t", HOST, "exec", "run", "{\"code\":0,\"timed_out\":true}",
	                            60000)));
	wait_reports(f, 3);
	assert_string_equal(state_at(f, 0), "ok");
	assert_string_equal(state_at(f, 1), "failed");
	assert_string_equal(state_at(f, 2), "timeout");
}

static void test_failures_and_unknown_ops_are_failed(void **state)
{
	struct fx *f = *state;

	deliver(f, sign(f, task_new("f-1", HOST, "t", "fail", "{}", 60000)));
	wait_reports(f, 1);
	deliver(f, sign(f, task_new("f-2", HOST, "nope", "x", "{}", 60000)));
	wait_reports(f, 2);
	assert_string_equal(state_at(f, 0), "failed");
	assert_string_equal(state_at(f, 1), "failed");
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_object_get(json_object_get(report_at(f, 1), "response"), "error"), "code")),
	    "unknown_plugin");
}

static void test_busy_dispatcher_runs_the_task_later(void **state)
{
	struct fx *f = *state;

	dispatch_free(f->d);
	hubtask_free(f->ht);
	fx_dispatch(f, 1);
	deliver(f, sign(f, task_new("b-1", HOST, "t", "count", "{\"ms\":300}", 60000)));
	deliver(f, sign(f, task_new("b-2", HOST, "t", "count", "{}", 60000)));
	/* b-2 waits a second for the slot, so it may be reported running before its end. */
	assert_string_equal(json_string_value(json_object_get(wait_final(f, "b-1"), "state")),
	                    "ok");
	assert_string_equal(json_string_value(json_object_get(wait_final(f, "b-2"), "state")),
	                    "ok");
	assert_int_equal(atomic_load(&runs), 2);
}

static void test_host_id_rules(void **state)
{
	char id[HUBTASK_HOST_ID_MAX + 1], msg[200];

	(void)state;
	assert_true(hubtask_host_id_ok("web-01.example_1"));
	assert_false(hubtask_host_id_ok(""));
	assert_false(hubtask_host_id_ok(".hidden"));
	assert_false(hubtask_host_id_ok("-x"));
	assert_false(hubtask_host_id_ok(".."));
	assert_false(hubtask_host_id_ok("a/b"));
	assert_false(
	    hubtask_host_id_ok("0123456789012345678901234567890123456789012345678901234567890"
	                       "12345"));
	assert_int_equal(hubtask_host_id("db-7", id, msg, sizeof(msg)), 0);
	assert_string_equal(id, "db-7");
	assert_int_equal(hubtask_host_id("bad id", id, msg, sizeof(msg)), OUTPOST_E_BAD_ARGS);
	assert_non_null(strstr(msg, "hub.host_id"));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_signed_task_runs_and_reports_ok),
	    T(test_forged_signature_is_refused),
	    T(test_task_changed_after_signing_is_refused),
	    T(test_task_for_another_host_is_refused),
	    T(test_expired_task_is_reported_expired),
	    T(test_task_issued_in_the_agents_future_is_refused),
	    T(test_expiry_beyond_ledger_memory_is_refused),
	    T(test_captured_task_never_runs_twice_after_fillers_and_restart),
	    T(test_malformed_tasks_are_refused),
	    T(test_not_enrolled_refuses_everything),
	    T(test_replayed_task_id_reports_stored_result_and_runs_nothing),
	    T(test_second_delivery_while_running_is_ignored),
	    T(test_task_running_when_the_agent_died_is_lost),
	    T(test_exec_run_exit_status_decides_the_state),
	    T(test_failures_and_unknown_ops_are_failed),
	    T(test_busy_dispatcher_runs_the_task_later),
	    cmocka_unit_test(test_host_id_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
