/* Tests for src/agent/ledger.c: an id runs once; a row a crash left running is lost and never
 * runs again; local callers' ids live in their own namespace; hub task ids are kept until they
 * could no longer be replayed. Each test names the invariant it holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "agent/ledger.h"
#include "core/clk.h"
#include "core/db.h"
#include "core/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fx {
	char dir[64], path[96];
	struct logger log;
	sqlite3 *db;
	struct ledger *l;
};

static void fx_open(struct fx *f, int *lost)
{
	char msg[256];

	assert_int_equal(db_open(f->path, &f->db, msg, sizeof(msg)), 0);
	assert_int_equal(ledger_open(f->db, &f->log, &f->l, lost), 0);
}

static void fx_close(struct fx *f)
{
	ledger_close(f->l);
	db_close(f->db);
	f->l = NULL;
	f->db = NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/outpost-ledger-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/agent.db", f->dir);
	log_init(&f->log, "test", OUTPOST_LOG_ERROR, LOG_TO_STDERR);
	fx_open(f, NULL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char p[128];

	fx_close(f);
	static const char *const sfx[] = {"", "-wal", "-shm"};

	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, sfx[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static json_t *ok_env(int n)
{
	return json_pack("{s:b, s:{s:i}}", "ok", 1, "result", "n", n);
}

static int begin(struct fx *f, const char *id, const char *args, json_t **prev)
{
	json_t *a = json_loads(args, 0, NULL);
	int rc = ledger_begin(f->l, id, "exec", "run", a, clk_mono_ms() + 2000, prev);

	json_decref(a);
	return rc;
}

static void test_an_id_runs_once_and_its_repeat_gets_the_first_answer(void **state)
{
	struct fx *f = *state;
	json_t *prev = NULL, *env = ok_env(1);

	assert_int_equal(begin(f, "task-1", "{\"cmd\":\"reboot\",\"user\":\"root\"}", &prev),
	                 LEDGER_NEW);
	assert_null(prev);
	assert_string_equal(ledger_state(f->l, "task-1", NULL), "running");
	assert_int_equal(ledger_finish(f->l, "task-1", env), 0);
	/* The same call again: not run, the stored answer instead. Args in another key order
	 * are the same args. */
	assert_int_equal(begin(f, "task-1", "{\"user\":\"root\",\"cmd\":\"reboot\"}", &prev),
	                 LEDGER_REPLAY);
	assert_true(json_equal(prev, env));
	json_decref(prev);
	/* A restart does not forget it. */
	fx_close(f);
	fx_open(f, NULL);
	assert_int_equal(begin(f, "task-1", "{\"user\":\"root\",\"cmd\":\"reboot\"}", &prev),
	                 LEDGER_REPLAY);
	assert_true(json_equal(prev, env));
	json_decref(prev);
	json_decref(env);
}

static void test_an_id_reused_for_another_call_is_a_conflict(void **state)
{
	struct fx *f = *state;
	json_t *prev = NULL, *env = ok_env(1), *a = json_pack("{s:s}", "cmd", "true");

	assert_int_equal(begin(f, "task-2", "{\"cmd\":\"true\"}", &prev), LEDGER_NEW);
	assert_int_equal(ledger_finish(f->l, "task-2", env), 0);
	assert_int_equal(begin(f, "task-2", "{\"cmd\":\"false\"}", &prev), OUTPOST_E_CONFLICT);
	assert_int_equal(
	    ledger_begin(f->l, "task-2", "exec", "kill", a, clk_mono_ms() + 1000, &prev),
	    OUTPOST_E_CONFLICT);
	assert_int_equal(
	    ledger_begin(f->l, "task-2", "file", "run", a, clk_mono_ms() + 1000, &prev),
	    OUTPOST_E_CONFLICT);
	assert_null(prev);
	json_decref(a);
	json_decref(env);
}

struct racer {
	struct fx *f;
	int rc;
	json_t *prev;
};

static void *race(void *arg)
{
	struct racer *r = arg;

	r->rc = begin(r->f, "task-3", "{}", &r->prev);
	return NULL;
}

/* Two calls with one id at once: the second waits for the first and gets its answer. */
static void test_a_concurrent_repeat_waits_and_does_not_run_twice(void **state)
{
	struct fx *f = *state;
	struct racer r = {f, 99, NULL};
	json_t *prev = NULL, *env = ok_env(3);
	pthread_t t;

	assert_int_equal(begin(f, "task-3", "{}", &prev), LEDGER_NEW);
	assert_int_equal(pthread_create(&t, NULL, race, &r), 0);
	usleep(100 * 1000);
	assert_int_equal(ledger_finish(f->l, "task-3", env), 0);
	pthread_join(t, NULL);
	assert_int_equal(r.rc, LEDGER_REPLAY);
	assert_true(json_equal(r.prev, env));
	json_decref(r.prev);
	json_decref(env);
	/* And one that cannot wait that long is told timeout, not run. */
	assert_int_equal(begin(f, "task-4", "{}", &prev), LEDGER_NEW);
	{
		json_t *a = json_object();
		assert_int_equal(
		    ledger_begin(f->l, "task-4", "exec", "run", a, clk_mono_ms() + 50, &prev),
		    OUTPOST_E_TIMEOUT);
		json_decref(a);
	}
}

/* The agent died while a call ran: after the restart the row is lost, counted, and the id
 * never runs again (its outcome is unknown: running it twice could do it twice). */
static void test_a_row_left_running_by_a_crash_is_lost_and_never_rerun(void **state)
{
	struct fx *f = *state;
	json_t *prev = NULL;
	int lost = -1;

	assert_int_equal(begin(f, "task-5", "{}", &prev), LEDGER_NEW);
	assert_int_equal(begin(f, LEDGER_LOCAL "call-5", "{}", &prev), LEDGER_NEW);
	fx_close(f); /* no ledger_finish: as a crash leaves it */
	fx_open(f, &lost);
	assert_int_equal(lost, 2);
	assert_string_equal(ledger_state(f->l, "task-5", NULL), "lost");
	assert_int_equal(begin(f, "task-5", "{}", &prev), OUTPOST_E_LOST);
	assert_int_equal(begin(f, LEDGER_LOCAL "call-5", "{}", &prev), OUTPOST_E_LOST);
	assert_null(prev);
	/* A second restart finds nothing more to mark, and still refuses it. */
	fx_close(f);
	fx_open(f, &lost);
	assert_int_equal(lost, 0);
	assert_int_equal(begin(f, "task-5", "{}", &prev), OUTPOST_E_LOST);
}

/* Local callers' ids carry LEDGER_LOCAL, whose '/' no id may hold: a local call and a hub task
 * of the same name are two rows, and neither can replay nor block the other. */
static void test_local_ids_live_in_their_own_namespace(void **state)
{
	struct fx *f = *state;
	json_t *prev = NULL, *e1 = ok_env(1), *e2 = ok_env(2);

	assert_false(ledger_id_ok(LEDGER_LOCAL "deploy"));
	assert_true(ledger_id_ok("deploy"));
	assert_int_equal(begin(f, "deploy", "{}", &prev), LEDGER_NEW);
	assert_int_equal(begin(f, LEDGER_LOCAL "deploy", "{\"other\":1}", &prev), LEDGER_NEW);
	assert_int_equal(ledger_finish(f->l, "deploy", e1), 0);
	assert_int_equal(ledger_finish(f->l, LEDGER_LOCAL "deploy", e2), 0);
	assert_int_equal(begin(f, "deploy", "{}", &prev), LEDGER_REPLAY);
	assert_true(json_equal(prev, e1));
	json_decref(prev);
	assert_int_equal(begin(f, LEDGER_LOCAL "deploy", "{\"other\":1}", &prev), LEDGER_REPLAY);
	assert_true(json_equal(prev, e2));
	json_decref(prev);
	json_decref(e1);
	json_decref(e2);
}

/* The row bound drops only local callers' oldest rows: a hub task id stays until it is older
 * than the age bound (past any expiry the agent accepts), so a replayed task is never run
 * again however many local calls came after it; a running row is never dropped. */
static void test_hub_ids_are_kept_until_expiry_whatever_the_row_bound(void **state)
{
	struct fx *f = *state;
	json_t *prev = NULL, *env = ok_env(0);
	char id[64];

	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "hub-task-%d", i);
		assert_int_equal(begin(f, id, "{}", &prev), LEDGER_NEW);
		assert_int_equal(ledger_finish(f->l, id, env), 0);
	}
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), LEDGER_LOCAL "c-%d", i);
		assert_int_equal(begin(f, id, "{}", &prev), LEDGER_NEW);
		assert_int_equal(ledger_finish(f->l, id, env), 0);
	}
	assert_int_equal(begin(f, "hub-running", "{}", &prev), LEDGER_NEW);
	assert_int_equal(ledger_count(f->l), 26);
	assert_int_equal(ledger_prune(f->l, 86400000, 3), 17);
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "hub-task-%d", i);
		assert_string_equal(ledger_state(f->l, id, NULL), "done");
		assert_int_equal(begin(f, id, "{}", &prev), LEDGER_REPLAY);
		json_decref(prev);
	}
	assert_int_equal(ledger_count(f->l), 9);
	/* Past the age bound every finished row goes, the running one stays. */
	usleep(5 * 1000);
	assert_int_equal(ledger_prune(f->l, 1, 1000), 8);
	assert_null(ledger_state(f->l, "hub-task-0", NULL));
	assert_string_equal(ledger_state(f->l, "hub-running", NULL), "running");
	json_decref(env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_an_id_runs_once_and_its_repeat_gets_the_first_answer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_an_id_reused_for_another_call_is_a_conflict, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_a_concurrent_repeat_waits_and_does_not_run_twice,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_a_row_left_running_by_a_crash_is_lost_and_never_rerun, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_local_ids_live_in_their_own_namespace, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_hub_ids_are_kept_until_expiry_whatever_the_row_bound, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
