/* For C tests on PostgreSQL: the server tests/support/pg_run.sh started around the test binary
 * (its DSN in OUTPOST_TEST_PG_DSN). Include after cmocka.h. */
#ifndef OUTPOST_TESTS_PGTEST_H
#define OUTPOST_TESTS_PGTEST_H

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

static inline const char *pgtest_dsn(void)
{
	return getenv("OUTPOST_TEST_PG_DSN");
}

/* Runs sql on a connection of its own; 0 when it worked. */
static inline int pgtest_sql(const char *sql)
{
	PGconn *c = PQconnectdb(pgtest_dsn() ? pgtest_dsn() : "");
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;

	if (!ok)
		print_error("%s: %s\n", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

/* An empty database: the store's open makes its schema again. */
static inline int pgtest_fresh(void)
{
	return pgtest_sql("SET client_min_messages = warning; DROP SCHEMA public CASCADE; "
	                  "CREATE SCHEMA public");
}

/* 1 (after saying why on stdout) when there is no server: main then returns 77, meson's
 * "skipped". */
static inline int pgtest_skip(void)
{
	const char *why = getenv("OUTPOST_TEST_PG_SKIP");

	if (pgtest_dsn())
		return 0;
	printf("SKIP: no PostgreSQL for this test: %s\n",
	       why ? why : "OUTPOST_TEST_PG_DSN is not set (run it under tests/support/pg_run.sh)");
	return 1;
}

#endif
