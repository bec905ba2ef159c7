/* core/db.c: the database file's mode, and schema migrations that move forward one step per
 * transaction, stop whole at a failing step and refuse a database newer than the code. */
#include "core/db.h"
#include "support/tmpdir.h"

#include <outpost/plugin.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

struct fx {
	char dir[TMPDIR_LEN];
	char path[TMPDIR_LEN + 16];
	sqlite3 *db;
	char msg[256];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(tmpdir_make(f->dir, "db"), 0);
	snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	db_close(f->db);
	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static int version_of(sqlite3 *db, const char *component)
{
	sqlite3_stmt *st;
	int v = -1;

	assert_int_equal(
	    sqlite3_prepare_v2(db, "SELECT version FROM schema_version WHERE component = ?", -1,
	                       &st, NULL),
	    SQLITE_OK);
	sqlite3_bind_text(st, 1, component, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int count_rows(sqlite3 *db, const char *table)
{
	char sql[128];
	sqlite3_stmt *st;
	int n = -1;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}

static const char *const steps[] = {
    "CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1)",
    "CREATE TABLE b (y INTEGER)",
    "INSERT INTO a VALUES (2)",
};

static void test_open_makes_a_0600_file_whatever_the_umask(void **state)
{
	struct fx *f = *state;
	mode_t old = umask(0);
	struct stat st;

	assert_int_equal(db_open(f->path, &f->db, f->msg, sizeof(f->msg)), 0);
	umask(old);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_open_refuses_a_symlink(void **state)
{
	struct fx *f = *state;
	char target[TMPDIR_LEN + 16];

	snprintf(target, sizeof(target), "%s/elsewhere", f->dir);
	assert_int_equal(symlink(target, f->path), 0);
	assert_int_equal(db_open(f->path, &f->db, f->msg, sizeof(f->msg)), OUTPOST_E_INTERNAL);
	assert_null(f->db);
	assert_non_null(strstr(f->msg, "cannot open database"));
	assert_int_equal(access(target, F_OK), -1); /* nothing made through the link */
}

static void test_migrate_runs_each_step_once(void **state)
{
	struct fx *f = *state;

	assert_int_equal(db_open(f->path, &f->db, f->msg, sizeof(f->msg)), 0);
	assert_int_equal(db_migrate(f->db, "c", steps, 3, f->msg, sizeof(f->msg)), 0);
	assert_int_equal(version_of(f->db, "c"), 3);
	assert_int_equal(count_rows(f->db, "a"), 2);
	/* Again, and after a reopen: nothing runs twice. */
	assert_int_equal(db_migrate(f->db, "c", steps, 3, f->msg, sizeof(f->msg)), 0);
	db_close(f->db);
	assert_int_equal(db_open(f->path, &f->db, f->msg, sizeof(f->msg)), 0);
	assert_int_equal(db_migrate(f->db, "c", steps, 3, f->msg, sizeof(f->msg)), 0);
	assert_int_equal(count_rows(f->db, "a"), 2);
}

static void test_migrate_an_older_database_runs_only_the_new_steps(void **state)
{
	struct fx *f = *state;

	assert_int_equal(db_open(f->path, &f->db, f->msg, sizeof(f->msg)), 0);
	assert_int_equal(db_migrate(f->db, "c", steps, 1, f->msg, sizeof(f->msg)), 0);
	assert_int_equal(version_of(f->db, "c"), 1);
	assert_int_equal(count_rows(f->db, "a"), 1);
	assert_int_equal(db_migrate(f->db, "c", steps, 3, f->msg, sizeof(f->msg)), 0);
	assert_int_equal(version_of(f->db, "c"), 3);
	assert_int_equal(count_rows(f->db, "a"), 2); /* step 0's insert did not run again */
}

static void test_migrate_refuses_a_database_newer_than_the_code(void **state)
{
	struct fx *f = *state;

	assert_int_equal(db_open(f->path, &f->db, f->msg, sizeof(f->msg)), 0);
	assert_int_equal(db_migrate(f->db, "c", steps, 3, f->msg, sizeof(f->msg)), 0);
	assert_int_equal(db_migrate(f->db, "c", steps, 2, f->msg, sizeof(f->msg)),
	                 OUTPOST_E_CONFLICT);
	assert_non_null(strstr(f->msg, "version 3, newer than this program (2)"));
	assert_int_equal(version_of(f->db, "c"), 3);
}

static void test_migrate_a_failing_step_changes_nothing_of_it(void **state)
{
	struct fx *f = *state;
	static const char *const bad[] = {
	    "CREATE TABLE a (x INTEGER)",
	    /* The first statement succeeds, the second fails: the step is one transaction. */
	    "CREATE TABLE half (z INTEGER); INSERT INTO nowhere VALUES (1)",
	};

	assert_int_equal(db_open(f->path, &f->db, f->msg, sizeof(f->msg)), 0);
	assert_int_equal(db_migrate(f->db, "c", bad, 2, f->msg, sizeof(f->msg)),
	                 OUTPOST_E_INTERNAL);
	assert_non_null(strstr(f->msg, "nowhere"));
	assert_int_equal(version_of(f->db, "c"), 1); /* the good step stays */
	assert_int_equal(count_rows(f->db, "a"), 0);
	assert_int_equal(count_rows(f->db, "half"), -1); /* rolled back: no such table */
	/* The database is usable again: the fixed step runs. */
	assert_int_equal(db_migrate(f->db, "c", steps, 2, f->msg, sizeof(f->msg)), 0);
	assert_int_equal(version_of(f->db, "c"), 2);
}

static void test_migrate_keeps_components_apart(void **state)
{
	struct fx *f = *state;
	static const char *const other[] = {"CREATE TABLE o (v INTEGER)"};

	assert_int_equal(db_open(f->path, &f->db, f->msg, sizeof(f->msg)), 0);
	assert_int_equal(db_migrate(f->db, "c", steps, 3, f->msg, sizeof(f->msg)), 0);
	assert_int_equal(db_migrate(f->db, "other", other, 1, f->msg, sizeof(f->msg)), 0);
	assert_int_equal(version_of(f->db, "c"), 3);
	assert_int_equal(version_of(f->db, "other"), 1);
}

static void test_err_maps_sqlite_codes(void **state)
{
	(void)state;
	assert_int_equal(db_err(SQLITE_BUSY), OUTPOST_E_BUSY);
	assert_int_equal(db_err(SQLITE_LOCKED), OUTPOST_E_BUSY);
	assert_int_equal(db_err(SQLITE_CONSTRAINT_UNIQUE), OUTPOST_E_CONFLICT);
	assert_int_equal(db_err(SQLITE_FULL), OUTPOST_E_UNAVAILABLE);
	assert_int_equal(db_err(SQLITE_IOERR_WRITE), OUTPOST_E_INTERNAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_makes_a_0600_file_whatever_the_umask, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_open_refuses_a_symlink, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_runs_each_step_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_an_older_database_runs_only_the_new_steps,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_refuses_a_database_newer_than_the_code,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_a_failing_step_changes_nothing_of_it,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_keeps_components_apart, setup, teardown),
	    cmocka_unit_test(test_err_maps_sqlite_codes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
