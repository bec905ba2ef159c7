/* SQLite helpers: see db.h. */
#include "db.h"

#include <outpost/plugin.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int db_err(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return OUTPOST_E_BUSY;
	case SQLITE_CONSTRAINT:
		return OUTPOST_E_CONFLICT;
	case SQLITE_FULL:
		return OUTPOST_E_UNAVAILABLE;
	default:
		return OUTPOST_E_INTERNAL;
	}
}

sqlite3_stmt *db_stmt(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

int db_step(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : db_err(rc);
}

int db_run(sqlite3_stmt *st)
{
	int rc = db_step(st);

	sqlite3_reset(st);
	return rc < 0 ? rc : 0;
}

int db_kept(struct db_kept *k, sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	int i, rc;

	*st = NULL;
	for (i = 0; i < DB_KEPT_MAX && k->sql[i]; i++)
		if (k->sql[i] == sql) {
			*st = db_stmt(k->st[i]);
			return SQLITE_OK;
		}
	if (i == DB_KEPT_MAX)
		return SQLITE_NOMEM; /* a programming error: raise DB_KEPT_MAX */
	rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &k->st[i], NULL);
	if (rc != SQLITE_OK)
		return rc;
	k->sql[i] = sql;
	*st = k->st[i];
	return SQLITE_OK;
}

void db_kept_free(struct db_kept *k)
{
	for (int i = 0; i < DB_KEPT_MAX; i++) {
		sqlite3_finalize(k->st[i]);
		k->st[i] = NULL;
		k->sql[i] = NULL;
	}
}

int db_exec(sqlite3 *db, const char *sql, char *msg, size_t msglen)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		snprintf(msg, msglen, "sqlite: %s", err ? err : sqlite3_errmsg(db));
		sqlite3_free(err);
		return OUTPOST_E_INTERNAL;
	}
	return 0;
}

int db_open(const char *path, sqlite3 **out, char *msg, size_t msglen)
{
	sqlite3 *db = NULL;
	int fd;

	*out = NULL;
	/* Create the file ourselves so it is 0600 whatever the umask. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(msg, msglen, "cannot open database %s: %m", path);
		return OUTPOST_E_INTERNAL;
	}
	close(fd);
	if (sqlite3_open_v2(path, &db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
	                    NULL) != SQLITE_OK) {
		snprintf(msg, msglen, "cannot open database %s: %s", path,
		         db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return OUTPOST_E_INTERNAL;
	}
	sqlite3_busy_timeout(db, 5000);
	/* WAL with synchronous=NORMAL: a commit survives a crash of the process (the ledger's
	 * promise); only a power cut may lose the last commits. */
	if (db_exec(db,
	            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
	            "PRAGMA cache_size=-256; PRAGMA temp_store=MEMORY;",
	            msg, msglen) < 0) {
		sqlite3_close(db);
		return OUTPOST_E_INTERNAL;
	}
	*out = db;
	return 0;
}

void db_close(sqlite3 *db)
{
	if (db)
		sqlite3_close(db);
}

static int db_version(sqlite3 *db, const char *component, int *version)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*version = 0;
	rc = sqlite3_prepare_v2(db, "SELECT version FROM schema_version WHERE component = ?", -1,
	                        &st, NULL);
	if (rc != SQLITE_OK)
		return OUTPOST_E_INTERNAL;
	sqlite3_bind_text(st, 1, component, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : OUTPOST_E_INTERNAL;
}

int db_migrate(sqlite3 *db, const char *component, const char *const *steps, int n, char *msg,
               size_t msglen)
{
	sqlite3_stmt *st = NULL;
	int version;

	if (db_exec(db,
	            "CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, "
	            "version INTEGER NOT NULL)",
	            msg, msglen) < 0)
		return OUTPOST_E_INTERNAL;
	if (db_version(db, component, &version) < 0) {
		snprintf(msg, msglen, "sqlite: %s", sqlite3_errmsg(db));
		return OUTPOST_E_INTERNAL;
	}
	if (version > n) {
		snprintf(msg, msglen,
		         "database schema of %s is version %d, newer than this program (%d): "
		         "upgrade the program or restore an older state directory",
		         component, version, n);
		return OUTPOST_E_CONFLICT;
	}
	for (; version < n; version++) {
		if (db_exec(db, "BEGIN IMMEDIATE", msg, msglen) < 0)
			return OUTPOST_E_INTERNAL;
		if (db_exec(db, steps[version], msg, msglen) < 0)
			goto fail;
		if (sqlite3_prepare_v2(
		        db,
		        "INSERT INTO schema_version(component, version) VALUES(?, ?) "
		        "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
		        -1, &st, NULL) != SQLITE_OK)
			goto fail_sql;
		sqlite3_bind_text(st, 1, component, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, version + 1);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto fail_sql;
		sqlite3_finalize(st);
		st = NULL;
		if (db_exec(db, "COMMIT", msg, msglen) < 0)
			goto fail;
	}
	return 0;
fail_sql:
	snprintf(msg, msglen, "sqlite: %s", sqlite3_errmsg(db));
fail:
	sqlite3_finalize(st);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return OUTPOST_E_INTERNAL;
}
