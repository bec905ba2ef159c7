/* Tests for src/hub/store_sqlite.c: the store's contract (store_cases.h, shared with the
 * PostgreSQL store) on SQLite, plus what only the SQLite store has (hub.db's migrations). */
#include "store_cases.h"

#include <sqlite3.h>

static const char *fx_name = "sqlite";

static int fx_open(struct fx *f, char *msg, size_t msglen)
{
	return store_sqlite_open(f->dir, &f->st, msg, msglen);
}

static int fx_fresh(struct fx *f)
{
	(void)f; /* a new temp dir is a new database */
	return 0;
}

/* A hub database from before state "rejected" (schema version 1: hosts' CHECK without it)
 * is migrated at open: its hosts kept, and a host can be rejected. */
static void test_open_migrates_hosts_to_allow_rejected(void **state)
{
	struct fx *f = *state;
	char path[128], msg[256], *err = NULL;
	sqlite3 *db;
	json_t *h;

	assert_int_equal(enroll_full(f, "db-01", "K", 0, NULL, NULL, &h), 0);
	json_decref(h);
	f->op->close(f->st);
	f->st = NULL;
	snprintf(path, sizeof(path), "%s/hub.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	/* Back to the table of version 1, as step 3 found it (steps 4 and 5 undone too). */
	assert_int_equal(
	    sqlite3_exec(db,
	                 "BEGIN;"
	                 "DROP INDEX events_dedupe; ALTER TABLE events DROP COLUMN severity;"
	                 "ALTER TABLE events DROP COLUMN message;"
	                 "ALTER TABLE events DROP COLUMN data;"
	                 "ALTER TABLE events DROP COLUMN source;"
	                 "ALTER TABLE events DROP COLUMN dedupe;"
	                 "CREATE TABLE hosts_v1 ("
	                 " id TEXT PRIMARY KEY, hostname TEXT, pubkey TEXT NOT NULL,"
	                 " state TEXT NOT NULL CHECK (state IN ('up', 'down', 'pending',"
	                 " 'revoked')), labels TEXT NOT NULL DEFAULT '{}',"
	                 " facts TEXT NOT NULL DEFAULT '{}', attrs TEXT NOT NULL DEFAULT '{}',"
	                 " version TEXT, first_seen_ms INTEGER NOT NULL,"
	                 " last_seen_ms INTEGER NOT NULL);"
	                 "INSERT INTO hosts_v1 SELECT id, hostname, pubkey, state, labels, facts,"
	                 " attrs, version, first_seen_ms, last_seen_ms FROM hosts;"
	                 "ALTER TABLE tokens DROP COLUMN max_uses;"
	                 "ALTER TABLE tokens DROP COLUMN uses;"
	                 "DROP TABLE records;"
	                 "DROP TABLE alert_log;"
	                 "DROP TABLE hosts;"
	                 "ALTER TABLE hosts_v1 RENAME TO hosts;"
	                 "CREATE INDEX hosts_state_seen ON hosts(state, last_seen_ms);"
	                 "UPDATE schema_version SET version = 2 WHERE component = 'hub';"
	                 "COMMIT;",
	                 NULL, NULL, &err),
	    SQLITE_OK);
	assert_int_not_equal(
	    sqlite3_exec(db, "UPDATE hosts SET state = 'rejected'", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(store_sqlite_open(f->dir, &f->st, msg, sizeof(msg)), 0);
	h = host(f, "db-01");
	assert_string_equal(sval(h, "state"), "pending");
	assert_string_equal(sval(h, "pubkey"), "K");
	json_decref(h);
	assert_int_equal(f->op->host_set_state(f->st, "db-01", HOST_REJECTED, "", T0), 0);
	h = host(f, "db-01");
	assert_string_equal(sval(h, "state"), "rejected");
	json_decref(h);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	    STORE_CASES(T)
	    T(test_open_migrates_hosts_to_allow_rejected),
#undef T
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
