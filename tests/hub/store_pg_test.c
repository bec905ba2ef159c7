/* Tests for src/hub/store_pg*.c: the store's contract (store_cases.h, the same assertions as
 * the SQLite store's) on a private PostgreSQL that tests/support/pg_run.sh starts and names in
 * OUTPOST_TEST_PG_DSN; plus what only this store has (a lost connection, the schema version).
 * Without a server the suite skips, saying why. */
#include "store_cases.h"
#include "hub/store_pg.h"

#include "support/pgtest.h"

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
	    T(test_open_without_a_server_is_unavailable),
#undef T
	};
	/* clang-format on */
	if (pgtest_skip())
		return 77;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
