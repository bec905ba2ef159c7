/* Tests for src/hub/store_pg*.c: the store's contract (store_cases.h, the same assertions as
 * the SQLite store's) on a private PostgreSQL that tests/support/pg_run.sh starts and names in
 * OUTPOST_TEST_PG_DSN; plus what only this store has (a lost connection, the schema version).
 * Without a server the suite skips, saying why. */
#include "store_cases.h"
#include "hub/store_pg.h"

#include "support/pgtest.h"

#include <pthread.h>

static const char *fx_name = "postgresql";

static int fx_open(struct fx *f, char *msg, size_t msglen)
{
	return store_pg_open(pgtest_dsn(), f->dir, &f->st, msg, msglen);
}

/* Every case starts on an empty database: the schema is made again by the open. */
static int fx_fresh(struct fx *f)
{
	(void)f;
	return pgtest_fresh();
}

/* Ends every other session on the test database, as a server restart would. */
static void end_sessions(void)
{
	assert_int_equal(
	    pgtest_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
	               "WHERE datname = current_database() AND pid != pg_backend_pid()"),
	    0);
}

/* The server ends the hub's session (a restart, a failover): the call that finds it gone
 * answers UNAVAILABLE, the next one reconnects, and nothing stored is lost. */
static void test_lost_connection_is_unavailable_then_reconnects(void **state)
{
	struct fx *f = *state;
	json_t *h = NULL;
	int rc;

	enroll(f, "web-01");
	end_sessions();
	rc = f->op->host_get(f->st, "web-01", &h);
	json_decref(h);
	assert_int_equal(rc, OUTPOST_E_UNAVAILABLE);
	h = host(f, "web-01");
	assert_string_equal(sval(h, "state"), "up");
	json_decref(h);
	/* a write after the loss goes through as well */
	end_sessions();
	assert_int_equal(f->op->host_labels(f->st, "web-01", NULL, NULL), OUTPOST_E_UNAVAILABLE);
	enroll(f, "web-02");
}

/* Two hubs on one database: each takes every host's copy and reports it, at the same time.
 * Each copy goes out once (to one hub), and the task ends once. */
#define RACE_HOSTS 120

struct racer {
	struct store *st;
	int taken, finished, errors;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	json_t *items, *resp = json_pack("{s:b}", "ok", 1);
	char id[32];
	int done;

	for (int i = 0; i < RACE_HOSTS; i++) {
		snprintf(id, sizeof(id), "h%03d", i);
		if (r->st->ops->task_take(r->st, id, T0, 4, &items) < 0) {
			r->errors++;
			continue;
		}
		if (json_array_size(items) == 1) {
			r->taken++;
			done = 0;
			if (r->st->ops->task_report(r->st, "race", id, "ok", resp, T0, T0, &done) <
			    0)
				r->errors++;
			r->finished += done;
		}
		json_decref(items);
	}
	json_decref(resp);
	return NULL;
}

static void test_two_hubs_hand_each_copy_out_once(void **state)
{
	struct fx *f = *state;
	struct racer a = {f->st, 0, 0, 0}, b = {NULL, 0, 0, 0};
	json_t *hosts = json_array(), *t;
	pthread_t ta, tb;
	char msg[256], id[32];

	for (int i = 0; i < RACE_HOSTS; i++) {
		snprintf(id, sizeof(id), "h%03d", i);
		json_array_append_new(hosts, json_string(id));
	}
	t = json_pack("{s:s, s:s, s:s, s:s, s:{}, s:i, s:I, s:I}", "id", "race", "target", "*",
	              "plugin", "sys", "op", "ping", "args", "timeout_ms", 60000, "created_ms",
	              (json_int_t)T0, "expires_ms", (json_int_t)(T0 + HOUR));
	assert_int_equal(f->op->task_create(f->st, t, hosts, NULL), 0);
	json_decref(t);
	assert_int_equal(store_pg_open(pgtest_dsn(), f->dir, &b.st, msg, sizeof(msg)), 0);
	assert_int_equal(pthread_create(&ta, NULL, race, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, race, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	b.st->ops->close(b.st);
	assert_int_equal(a.errors + b.errors, 0);
	assert_int_equal(a.taken + b.taken, RACE_HOSTS);
	assert_int_equal(a.finished + b.finished, 1);
	print_message("two hubs: %d and %d of %d copies\n", a.taken, b.taken, RACE_HOSTS);
	t = task(f, "race", 0);
	assert_string_equal(sval(t, "state"), "done");
	assert_int_equal(ival(json_object_get(t, "counts"), "ok"), RACE_HOSTS);
	json_decref(t);
	json_decref(hosts);
}

/* A database a newer hub migrated is refused with a message that says what to do. */
static void test_open_refuses_a_newer_schema(void **state)
{
	struct fx *f = *state;
	struct store *st2 = NULL;
	char msg[256];

	assert_int_equal(pgtest_sql("UPDATE schema_version SET version = version + 1 "
	                            "WHERE component = 'hub'"),
	                 0);
	assert_int_equal(store_pg_open(pgtest_dsn(), f->dir, &st2, msg, sizeof(msg)),
	                 OUTPOST_E_CONFLICT);
	assert_null(st2);
	assert_non_null(strstr(msg, "newer"));
}

/* A server that is not there: UNAVAILABLE at open, with libpq's reason. */
static void test_open_without_a_server_is_unavailable(void **state)
{
	struct fx *f = *state;
	struct store *st2 = NULL;
	char msg[256];

	assert_int_equal(store_pg_open("host=/nonexistent-outpost dbname=x connect_timeout=2",
	                               f->dir, &st2, msg, sizeof(msg)),
	                 OUTPOST_E_UNAVAILABLE);
	assert_null(st2);
	assert_non_null(strstr(msg, "cannot connect"));
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	    STORE_CASES(T)
	    T(test_lost_connection_is_unavailable_then_reconnects),
	    T(test_open_refuses_a_newer_schema),
	    T(test_two_hubs_hand_each_copy_out_once),
	    T(test_open_without_a_server_is_unavailable),
#undef T
	};
	/* clang-format on */
	if (pgtest_skip())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
