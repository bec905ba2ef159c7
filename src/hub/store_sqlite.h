/* What the two halves of the SQLite store share: store_sqlite.c (registry, tasks, audit in
 * hub.db) opens store_sqlite_metrics.c (metrics.db) and hands it out as store->metrics. */
#ifndef OUTPOST_HUB_STORE_SQLITE_H
#define OUTPOST_HUB_STORE_SQLITE_H

#include "store.h"

#include <stddef.h>

int sqm_open(const char *state_dir, struct mstore **out, char *msg, size_t msglen);
void sqm_close(struct mstore *m); /* NULL ok */

#endif
