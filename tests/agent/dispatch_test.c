/* Tests for src/agent/dispatch.c: workers, the in-flight bound, deadlines, and idempotency
 * through the ledger, with a test plugin whose ops sleep, echo and count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "agent/dispatch.h"
#include "agent/ledger.h"
#include "agent/plugins.h"
#include "core/clk.h"
#include "core/db.h"
#include "core/loop.h"

#include <ftw.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_int counter;

static int op_echo(struct outpost_call *c, json_t *a, json_t **r)
{
	(void)c;
	*r = json_incref(a);
	return 0;
}

/* Sleeps ms without looking at its deadline: a badly behaved handler. */
static int op_sleep(struct outpost_call *c, json_t *a, json_t **r)
{
	(void)c;
	usleep((useconds_t)json_integer_value(json_object_get(a, "ms")) * 1000);
	*r = json_true();
	return 0;
}

static int op_count(struct outpost_call *c, json_t *a, json_t **r)
{
	(void)c;
	usleep((useconds_t)json_integer_value(json_object_get(a, "ms")) * 1000);
	*r = json_integer(atomic_fetch_add(&counter, 1) + 1);
	return 0;
}

static const struct outpost_arg sleep_args[] = {{"ms", OUTPOST_ARG_INT, 1, "ms"},
                                                {NULL, 0, 0, NULL}};
static const struct outpost_arg count_args[] = {
    {"ms", OUTPOST_ARG_INT, 0, "ms"}, {"tag", OUTPOST_ARG_STRING, 0, "tag"}, {NULL, 0, 0, NULL}};
static const struct outpost_arg echo_args[] = {{"v", OUTPOST_ARG_STRING, 0, "v"},
                                               {NULL, 0, 0, NULL}};
static const struct outpost_op t_ops[] = {
    {"echo", op_echo, echo_args, 0, "echo"},
    {"fast", op_echo, echo_args, OUTPOST_OP_INLINE, "echo, inline on the loop"},
    {"sleep", op_sleep, sleep_args, 0, "sleep"},
    {"count", op_count, count_args, OUTPOST_OP_MUTATING, "count"},
    {NULL, NULL, NULL, 0, NULL},
};
static const struct outpost_plugin t_plugin = {OUTPOST_PLUGIN_ABI, "t", "1", NULL, NULL, t_ops};

struct fx {
	char dir[64];
	struct logger log;
	struct loop *loop;
	sqlite3 *db;
	struct ledger *ledger;
	struct plugin_host host;
	struct plugins *ps;
	struct dispatch *d;
};

struct answer {
	int got;
	json_t *env;
	int replay;
	int64_t at;
};

static void on_done(void *arg, json_t *env, int replay)
{
	struct answer *a = arg;
	a->got++;
	a->env = env;
	a->replay = replay;
	a->at = clk_mono_ms();
}

static void run_until(struct fx *f, struct answer *a, int n)
{
	int64_t end = clk_mono_ms() + 10000;
	for (;;) {
		int done = 1;
		for (int i = 0; i < n; i++)
			done &= a[i].got > 0;
		if (done || clk_mono_ms() > end)
			break;
		loop_run_once(f->loop, 50);
	}
}

static const char *code_of(const json_t *env)
{
	return json_string_value(json_object_get(json_object_get(env, "error"), "code"));
}

static void fx_start(struct fx *f, int workers, int max_inflight)
{
	struct dispatch_config dc = {
	    .workers = workers, .max_inflight = max_inflight, .default_timeout_ms = 5000};
	assert_int_equal(dispatch_new(f->loop, f->ps, f->ledger, &f->log, &dc, &f->d), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char path[128], msg[256];

	strcpy(f->dir, "/tmp/outpost-dispatch-XXXXXX");
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
	plugins_init_all(f->ps);
	atomic_store(&counter, 0);
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
	plugins_free(f->ps);
	ledger_close(f->ledger);
	db_close(f->db);
	loop_free(f->loop);
	nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void test_echo_round_trip(void **state)
{
	struct fx *f = *state;
	struct answer a = {0};
	json_t *args = json_pack("{s:s}", "v", "x");

	fx_start(f, 2, 8);
	assert_int_equal(dispatch_submit(f->d, "t", "echo", args, NULL, 0, 0, on_done, &a), 0);
	json_decref(args);
	run_until(f, &a, 1);
	assert_int_equal(a.got, 1);
	assert_true(json_is_true(json_object_get(a.env, "ok")));
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(a.env, "result"), "v")), "x");
	json_decref(a.env);
}

static void test_inline_op_answers_before_submit_returns(void **state)
{
	struct fx *f = *state;
	struct answer a = {0}, b = {0};
	json_t *args = json_pack("{s:s}", "v", "x"), *bad = json_pack("{s:i}", "v", 1);

	fx_start(f, 1, 1);
	assert_int_equal(dispatch_submit(f->d, "t", "fast", args, NULL, 0, 0, on_done, &a), 0);
	assert_int_equal(a.got, 1); /* no worker, no loop turn */
	assert_true(json_is_true(json_object_get(a.env, "ok")));
	assert_int_equal(dispatch_inflight(f->d), 0);
	/* Its arguments are still checked. */
	assert_int_equal(dispatch_submit(f->d, "t", "fast", bad, NULL, 0, 0, on_done, &b), 0);
	assert_string_equal(code_of(b.env), "bad_args");
	json_decref(a.env);
	json_decref(b.env);
	json_decref(args);
	json_decref(bad);
}

static void test_unknown_plugin_op_and_bad_args(void **state)
{
	struct fx *f = *state;
	struct answer a[4] = {{0}};
	json_t *args = json_object(), *bad = json_pack("{s:i}", "v", 3);

	fx_start(f, 1, 8);
	dispatch_submit(f->d, "nope", "echo", args, NULL, 0, 0, on_done, &a[0]);
	dispatch_submit(f->d, "t", "nope", args, NULL, 0, 0, on_done, &a[1]);
	dispatch_submit(f->d, "t", "echo", bad, NULL, 0, 0, on_done, &a[2]);
	dispatch_submit(f->d, "t", "count", args, "bad id with spaces", 0, 0, on_done, &a[3]);
	run_until(f, a, 4);
	assert_string_equal(code_of(a[0].env), "unknown_plugin");
	assert_string_equal(code_of(a[1].env), "unknown_op");
	assert_string_equal(code_of(a[2].env), "bad_args");
	assert_string_equal(code_of(a[3].env), "bad_args");
	assert_int_equal(atomic_load(&counter), 0);
	for (int i = 0; i < 4; i++)
		json_decref(a[i].env);
	json_decref(args);
	json_decref(bad);
}

static void test_over_inflight_limit_is_busy(void **state)
{
	struct fx *f = *state;
	struct answer a[3] = {{0}};
	json_t *args = json_pack("{s:i}", "ms", 300);

	fx_start(f, 2, 2);
	for (int i = 0; i < 3; i++)
		dispatch_submit(f->d, "t", "sleep", args, NULL, 0, 0, on_done, &a[i]);
	run_until(f, a, 3);
	assert_string_equal(code_of(a[2].env), "busy");
	assert_true(json_is_true(json_object_get(a[0].env, "ok")));
	assert_true(json_is_true(json_object_get(a[1].env, "ok")));
	assert_int_equal(dispatch_stats(f->d)->busy, 1);
	for (int i = 0; i < 3; i++)
		json_decref(a[i].env);
	json_decref(args);
}

static void test_handler_past_deadline_answers_timeout_and_agent_goes_on(void **state)
{
	struct fx *f = *state;
	struct answer a = {0}, b = {0};
	json_t *args = json_pack("{s:i}", "ms", 800), *e = json_object();
	int64_t start = clk_mono_ms();

	fx_start(f, 2, 8);
	dispatch_submit(f->d, "t", "sleep", args, NULL, 100, 0, on_done, &a);
	run_until(f, &a, 1);
	assert_string_equal(code_of(a.env), "timeout");
	assert_true(a.at - start < 600); /* answered at its deadline, not when the handler ended */
	dispatch_submit(f->d, "t", "echo", e, NULL, 0, 0, on_done, &b);
	run_until(f, &b, 1);
	assert_true(json_is_true(json_object_get(b.env, "ok")));
	/* The late handler's result is dropped, not delivered twice. */
	while (dispatch_inflight(f->d) > 0)
		loop_run_once(f->loop, 50);
	assert_int_equal(a.got, 1);
	json_decref(a.env);
	json_decref(b.env);
	json_decref(args);
	json_decref(e);
}

static void test_repeated_id_runs_once_and_replays(void **state)
{
	struct fx *f = *state;
	struct answer a = {0}, b = {0};
	json_t *args = json_object();

	fx_start(f, 2, 8);
	dispatch_submit(f->d, "t", "count", args, "task-1", 0, 0, on_done, &a);
	run_until(f, &a, 1);
	dispatch_submit(f->d, "t", "count", args, "task-1", 0, 0, on_done, &b);
	run_until(f, &b, 1);
	assert_int_equal(atomic_load(&counter), 1);
	assert_false(a.replay);
	assert_true(b.replay);
	assert_true(json_equal(a.env, b.env));
	json_decref(a.env);
	json_decref(b.env);
	json_decref(args);
}

static void test_concurrent_calls_with_one_id_run_once(void **state)
{
	struct fx *f = *state;
	struct answer a = {0}, b = {0};
	json_t *args = json_pack("{s:i}", "ms", 300);

	fx_start(f, 4, 8);
	dispatch_submit(f->d, "t", "count", args, "task-2", 0, 0, on_done, &a);
	dispatch_submit(f->d, "t", "count", args, "task-2", 0, 0, on_done, &b);
	run_until(f, &a, 1);
	run_until(f, &b, 1);
	assert_int_equal(atomic_load(&counter), 1);
	assert_true(json_is_true(json_object_get(a.env, "ok")));
	assert_true(json_equal(json_object_get(a.env, "result"), json_object_get(b.env, "result")));
	assert_int_equal(a.replay + b.replay, 1);
	json_decref(a.env);
	json_decref(b.env);
	json_decref(args);
}

static void test_same_id_other_args_is_conflict(void **state)
{
	struct fx *f = *state;
	struct answer a = {0}, b = {0};
	json_t *x = json_pack("{s:s}", "tag", "x"), *y = json_pack("{s:s}", "tag", "y");

	fx_start(f, 2, 8);
	dispatch_submit(f->d, "t", "count", x, "task-3", 0, 0, on_done, &a);
	run_until(f, &a, 1);
	dispatch_submit(f->d, "t", "count", y, "task-3", 0, 0, on_done, &b);
	run_until(f, &b, 1);
	assert_string_equal(code_of(b.env), "conflict");
	assert_int_equal(atomic_load(&counter), 1);
	json_decref(a.env);
	json_decref(b.env);
	json_decref(x);
	json_decref(y);
}

static void test_interrupted_id_is_lost_after_restart(void **state)
{
	struct fx *f = *state;
	struct answer a = {0};
	json_t *prev = NULL, *args = json_object();
	int lost = 0;

	/* A call journaled as running whose agent died before it finished. */
	assert_int_equal(ledger_begin(f->ledger, LEDGER_LOCAL "task-4", "t", "count", args,
	                              clk_mono_ms() + 1000, &prev),
	                 LEDGER_NEW);
	ledger_close(f->ledger);
	assert_int_equal(ledger_open(f->db, &f->log, &f->ledger, &lost), 0);
	assert_int_equal(lost, 1);
	assert_string_equal(ledger_state(f->ledger, LEDGER_LOCAL "task-4", NULL), "lost");
	fx_start(f, 1, 8);
	dispatch_submit(f->d, "t", "count", args, "task-4", 0, 0, on_done, &a);
	run_until(f, &a, 1);
	assert_string_equal(code_of(a.env), "lost");
	assert_int_equal(atomic_load(&counter), 0);
	json_decref(a.env);
	json_decref(args);
}

static void journal(struct fx *f, const char *id, json_t *args, json_t *env)
{
	json_t *prev;

	assert_int_equal(
	    ledger_begin(f->ledger, id, "t", "count", args, clk_mono_ms() + 1000, &prev),
	    LEDGER_NEW);
	assert_int_equal(ledger_finish(f->ledger, id, env), 0);
}

/* max_rows sheds local callers' ids, oldest first; a hub task's id stays until keep_days (the
 * longest a task the agent accepts can live), however many local calls came after it. */
static void test_ledger_prune_bounds_local_rows_and_keeps_task_ids(void **state)
{
	struct fx *f = *state;
	json_t *env = json_pack("{s:b}", "ok", 1), *args = json_object();
	char id[32];

	journal(f, "hub-task-1", args, env);
	for (int i = 0; i < 120; i++) {
		if (i == 115)
			usleep(
			    5 *
			    1000); /* the newest five are newer by the clock, not only by order */
		snprintf(id, sizeof(id), LEDGER_LOCAL "p-%d", i);
		journal(f, id, args, env);
	}
	assert_int_equal(ledger_count(f->ledger), 121);
	assert_int_equal(ledger_prune(f->ledger, 86400000, 5), 115);
	assert_int_equal(ledger_count(f->ledger), 6);
	assert_string_equal(ledger_state(f->ledger, LEDGER_LOCAL "p-119", NULL), "done");
	assert_null(ledger_state(f->ledger, LEDGER_LOCAL "p-0", NULL));
	assert_string_equal(ledger_state(f->ledger, "hub-task-1", NULL), "done");
	/* Only age forgets a task id. */
	usleep(20 * 1000);
	assert_int_equal(ledger_prune(f->ledger, 10, 5), 6);
	assert_null(ledger_state(f->ledger, "hub-task-1", NULL));
	json_decref(env);
	json_decref(args);
}

/* outpost-sim's shape: one dispatcher, each caller journaling in its own ledger. One id runs
 * once per ledger (each host runs the fan-out's task once), and each ledger replays its own. */
static void test_one_dispatcher_journals_in_each_callers_ledger(void **state)
{
	struct fx *f = *state;
	struct answer a = {0}, b = {0}, c = {0};
	json_t *args = json_object();
	struct ledger *other;
	sqlite3 *db2;
	json_t *stored = NULL;

	assert_int_equal(sqlite3_open(":memory:", &db2), SQLITE_OK);
	assert_int_equal(ledger_open(db2, &f->log, &other, NULL), 0);
	fx_start(f, 2, 8);
	dispatch_submit_ledger(f->d, f->ledger, "t", "count", args, "task-7", 0, DISPATCH_JOURNAL,
	                       on_done, &a);
	run_until(f, &a, 1);
	dispatch_submit_ledger(f->d, other, "t", "count", args, "task-7", 0, DISPATCH_JOURNAL,
	                       on_done, &b);
	run_until(f, &b, 1);
	dispatch_submit_ledger(f->d, other, "t", "count", args, "task-7", 0, DISPATCH_JOURNAL,
	                       on_done, &c);
	run_until(f, &c, 1);
	assert_int_equal(atomic_load(&counter), 2);
	assert_false(a.replay);
	assert_false(b.replay);
	assert_true(c.replay);
	assert_string_equal(ledger_state(other, "task-7", &stored), "done");
	assert_true(json_equal(stored, b.env));
	assert_string_equal(ledger_state(f->ledger, "task-7", NULL), "done");
	json_decref(stored);
	json_decref(a.env);
	json_decref(b.env);
	json_decref(c.env);
	json_decref(args);
	dispatch_free(f->d);
	f->d = NULL;
	ledger_close(other);
	sqlite3_close(db2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	    T(test_echo_round_trip),
	    T(test_inline_op_answers_before_submit_returns),
	    T(test_unknown_plugin_op_and_bad_args),
	    T(test_over_inflight_limit_is_busy),
	    T(test_handler_past_deadline_answers_timeout_and_agent_goes_on),
	    T(test_repeated_id_runs_once_and_replays),
	    T(test_concurrent_calls_with_one_id_run_once),
	    T(test_same_id_other_args_is_conflict),
	    T(test_interrupted_id_is_lost_after_restart),
	    T(test_ledger_prune_bounds_local_rows_and_keeps_task_ids),
	    T(test_one_dispatcher_journals_in_each_callers_ledger),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
