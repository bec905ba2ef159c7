/* SQLite helpers shared by the agent and the hub's SQLite store: open with the pragmas we
 * rely on, and per-component schema migrations. */
#ifndef OUTPOST_DB_H
#define OUTPOST_DB_H

#include <sqlite3.h>
#include <stddef.h>

/* Opens (creating, mode 0600) a database in WAL mode with a busy timeout and foreign keys.
 * Returns 0, or a negative OUTPOST_E_* code with a message in msg. */
int db_open(const char *path, sqlite3 **out, char *msg, size_t msglen);
void db_close(sqlite3 *db); /* NULL ok */

/* Brings one component's schema up to n steps: steps[i] is the SQL that moves version i to
 * i+1. Versions are kept per component in table schema_version. Each step is one transaction.
 * A database newer than the code is refused. */
int db_migrate(sqlite3 *db, const char *component, const char *const *steps, int n, char *msg,
               size_t msglen);

/* Statement helpers for stores that prepare their statements once and reuse them. */

/* An SQLite result code as an OUTPOST_E_* code: BUSY/LOCKED busy, CONSTRAINT conflict, FULL
 * unavailable (the disk), anything else internal. */
int db_err(int rc);
/* Resets a prepared statement and clears its bindings: ready to bind. Returns it. */
sqlite3_stmt *db_stmt(sqlite3_stmt *st);
/* Steps once: 1 a row, 0 done, or a negative OUTPOST_E_* code. */
int db_step(sqlite3_stmt *st);
/* Steps to the first row or the end, then resets the statement (so that no statement keeps a
 * read transaction open between calls): 0 or a negative code. */
int db_run(sqlite3_stmt *st);

/* A handle's statements, prepared on first use and kept (the agent's ledger and outbox run a
 * few on every task: preparing them each time was ~15 % of its instructions per task). The
 * owner guards it with the lock that guards its use of the connection. Zeroed: empty. */
#define DB_KEPT_MAX 12
struct db_kept {
	const char *sql[DB_KEPT_MAX];
	sqlite3_stmt *st[DB_KEPT_MAX];
};
/* The kept statement for sql, a string constant (found again by its address), reset with its
 * bindings cleared: SQLITE_OK, or SQLite's error code with *st NULL. Give it back with
 * sqlite3_reset, never sqlite3_finalize: a statement left stepping holds a read transaction. */
int db_kept(struct db_kept *k, sqlite3 *db, const char *sql, sqlite3_stmt **st);
/* Finalizes every kept statement; before the connection closes. */
void db_kept_free(struct db_kept *k);

/* Runs SQL with no results. */
int db_exec(sqlite3 *db, const char *sql, char *msg, size_t msglen);

#endif
