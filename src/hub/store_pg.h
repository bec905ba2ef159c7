/* The hub's store on PostgreSQL (store.backend "postgresql"): several hubs may share one
 * database. Metrics stay in <state_dir>/metrics.db (SQLite, per hub) until the metrics store
 * has its PostgreSQL implementation. */
#ifndef OUTPOST_HUB_STORE_PG_H
#define OUTPOST_HUB_STORE_PG_H

#include "store.h"

#include <stddef.h>

/* Connects with dsn (libpq's "key=value" or URI), migrates the schema and prepares the
 * statements. OUTPOST_E_UNAVAILABLE when the server cannot be reached; msg says why. */
int store_pg_open(const char *dsn, const char *state_dir, struct store **out, char *msg,
                  size_t msglen);

#endif
