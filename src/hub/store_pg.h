/* The hub's store on PostgreSQL (store.backend "postgresql"): several hubs may share one
 * database, metrics included (store_pg_metrics.c). */
#ifndef OUTPOST_HUB_STORE_PG_H
#define OUTPOST_HUB_STORE_PG_H

#include "store.h"

#include <stddef.h>

/* Connects with dsn (libpq's "key=value" or URI), migrates the schema and prepares the
 * statements. OUTPOST_E_UNAVAILABLE when the server cannot be reached; msg says why. */
int store_pg_open(const char *dsn, const char *state_dir, struct store **out, char *msg,
                  size_t msglen);

/* The metrics side (store_pg_metrics.c), on a connection of its own; state_dir holds hub.id,
 * this hub's name in the shared ingest log. */
int pgm_open(const char *dsn, const char *state_dir, struct mstore **out, char *msg, size_t msglen);
void pgm_close(struct mstore *m); /* NULL ok */

#endif
