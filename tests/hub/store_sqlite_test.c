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
	/* Back to the table of version 1, as step 3 found it (step 4's columns undone too). */
	assert_int_equal(
	    sqlite3_exec(db,
	                 "BEGIN;"
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

/* ---- enrollment bounds (issue 10): SQLite only for now; they hold for the PostgreSQL store's
 * contract too and may move to store_cases.h ---- */

static int enroll_as(struct fx *f, struct store_enroll *e, const char *id, const char *key,
                     const char *token_id, const char *source, int64_t now_ms)
{
	json_t *h = NULL;
	int rc;

	e->host_id = id;
	e->pubkey = key;
	e->hostname = id;
	e->accept = token_id != NULL;
	e->token_id = token_id;
	e->addr = source;
	e->now_ms = now_ms;
	rc = f->op->host_enroll(f->st, e, &h);
	json_decref(h);
	return rc;
}

static void test_enroll_token_uses_are_counted_once_per_host(void **state)
{
	struct fx *f = *state;
	struct store_enroll e = {0};
	json_t *t = token("tk", HASH_A, "enroll", 0), *list;

	json_object_set_new(t, "max_uses", json_integer(2));
	assert_int_equal(f->op->token_add(f->st, t), 0);
	assert_int_equal(enroll_as(f, &e, "a", "KA", "tk", "1.1.1.1", T0), 0);
	assert_int_equal(enroll_as(f, &e, "a", "KA", "tk", "1.1.1.1", T0), 0); /* a repeat */
	assert_int_equal(enroll_as(f, &e, "b", "KB", "tk", "1.1.1.1", T0), 0);
	assert_int_equal(enroll_as(f, &e, "c", "KC", "tk", "1.1.1.1", T0), OUTPOST_E_UNAUTHORIZED);
	assert_int_equal(f->op->host_get(f->st, "c", &list), OUTPOST_E_NOT_FOUND);
	assert_int_equal(f->op->token_list(f->st, &list), 0);
	assert_int_equal(ival(json_array_get(list, 0), "uses"), 2);
	assert_int_equal(ival(json_array_get(list, 0), "max_uses"), 2);
	json_decref(list);
	/* revoked: no use left either */
	json_decref(t);
	t = token("tk2", HASH_B, "enroll", 0);
	assert_int_equal(f->op->token_add(f->st, t), 0);
	assert_int_equal(f->op->token_revoke(f->st, "tk2"), 0);
	assert_int_equal(enroll_as(f, &e, "d", "KD", "tk2", NULL, T0), OUTPOST_E_UNAUTHORIZED);
	assert_int_equal(f->op->token_revoke(f->st, "nope"), OUTPOST_E_NOT_FOUND);
	json_decref(t);
}

static void test_enroll_caps_pending_hosts_per_source_and_overall(void **state)
{
	struct fx *f = *state;
	int refused = 0;
	struct store_enroll e = {.pending_max = 2, .pending_per_addr = 1, .refused = &refused};
	json_t *t = token("tk", HASH_A, "enroll", 0);

	assert_int_equal(f->op->token_add(f->st, t), 0);
	assert_int_equal(enroll_as(f, &e, "p1", "K1", NULL, "1.1.1.1", T0), 0);
	assert_int_equal(enroll_as(f, &e, "p1", "K1", NULL, "1.1.1.1", T0), 0); /* a repeat */
	assert_int_equal(enroll_as(f, &e, "p2", "K2", NULL, "1.1.1.1", T0), OUTPOST_E_BUSY);
	assert_int_equal(refused, ENROLL_CAP_ADDR);
	assert_int_equal(enroll_as(f, &e, "p2", "K2", NULL, "2.2.2.2", T0), 0);
	assert_int_equal(enroll_as(f, &e, "p3", "K3", NULL, "3.3.3.3", T0), OUTPOST_E_BUSY);
	assert_int_equal(refused, ENROLL_CAP_TOTAL);
	/* a token is never capped */
	assert_int_equal(enroll_as(f, &e, "t1", "KT", "tk", "1.1.1.1", T0), 0);
	json_decref(t);
}

static void test_enroll_token_replaces_a_pending_squatter(void **state)
{
	struct fx *f = *state;
	int replaced = 0;
	struct store_enroll e = {.replaced = &replaced};
	json_t *t = token("tk", HASH_A, "enroll", 0), *h, *ev;

	assert_int_equal(f->op->token_add(f->st, t), 0);
	assert_int_equal(enroll_as(f, &e, "db-7", "SQUAT", NULL, "6.6.6.6", T0), 0);
	assert_int_equal(replaced, 0);
	assert_int_equal(enroll_as(f, &e, "db-7", "REAL", "tk", "1.1.1.1", T0 + 1), 0);
	assert_int_equal(replaced, 1);
	h = host(f, "db-7");
	assert_string_equal(sval(h, "pubkey"), "REAL");
	assert_string_equal(sval(h, "state"), "up");
	json_decref(h);
	assert_int_equal(f->op->events_list(f->st, "db-7", 10, &ev), 0);
	assert_string_equal(sval(json_array_get(ev, 0), "kind"), "replaced");
	json_decref(ev);
	/* an accepted host is never replaced */
	assert_int_equal(enroll_as(f, &e, "db-7", "OTHER", "tk", "1.1.1.1", T0 + 2),
	                 OUTPOST_E_CONFLICT);
	/* nor a pending one without a token */
	assert_int_equal(enroll_as(f, &e, "p", "K1", NULL, NULL, T0), 0);
	assert_int_equal(enroll_as(f, &e, "p", "K2", NULL, NULL, T0), OUTPOST_E_CONFLICT);
	json_decref(t);
}

static void test_pending_prune_forgets_pending_hosts_that_stopped_asking(void **state)
{
	struct fx *f = *state;
	struct store_enroll e = {0};
	json_t *t = token("tk", HASH_A, "enroll", 0), *h;
	int64_t n;

	assert_int_equal(f->op->token_add(f->st, t), 0);
	assert_int_equal(enroll_as(f, &e, "old", "K1", NULL, NULL, T0), 0);
	assert_int_equal(enroll_as(f, &e, "asks", "K2", NULL, NULL, T0), 0);
	assert_int_equal(enroll_as(f, &e, "up", "K3", "tk", NULL, T0), 0);
	assert_int_equal(enroll_as(f, &e, "asks", "K2", NULL, NULL, T0 + 10 * 24 * HOUR), 0);
	assert_int_equal(f->op->pending_prune(f->st, T0 + 5 * 24 * HOUR, 1000, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(f->op->host_get(f->st, "old", &h), OUTPOST_E_NOT_FOUND);
	json_decref(host(f, "asks"));
	json_decref(host(f, "up"));
	json_decref(t);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	    STORE_CASES(T)
	    T(test_open_migrates_hosts_to_allow_rejected),
	    T(test_enroll_token_uses_are_counted_once_per_host),
	    T(test_enroll_caps_pending_hosts_per_source_and_overall),
	    T(test_enroll_token_replaces_a_pending_squatter),
	    T(test_pending_prune_forgets_pending_hosts_that_stopped_asking),
#undef T
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
