/* What the parts of the SQLite store share: store_sqlite.c (registry, tasks, audit in hub.db)
 * opens store_sqlite_metrics.c (metrics.db) and hands it out as store->metrics, and
 * store_sqlite_prune.c (retention's deletes on hub.db) whose calls back its *_prune ops. */
#ifndef OUTPOST_HUB_STORE_SQLITE_H
#define OUTPOST_HUB_STORE_SQLITE_H

#include "store.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

int sqm_open(const char *state_dir, struct mstore **out, char *msg, size_t msglen);
void sqm_close(struct mstore *m); /* NULL ok */

/* Retention on hub.db (store.h's events_prune, audit_prune, tasks_prune): db is borrowed and
 * must outlive the handle; each call is one transaction. */
struct sqp;
int sqp_open(sqlite3 *db, struct sqp **out, char *msg, size_t msglen);
void sqp_close(struct sqp *p); /* NULL ok */
int sqp_events(struct sqp *p, int64_t before_ms, int limit, int64_t *n);
int sqp_audit(struct sqp *p, int64_t before_ms, int limit, int64_t *n);
int sqp_pending(struct sqp *p, int64_t before_ms, int limit, int64_t *n);
int sqp_tasks(struct sqp *p, int64_t before_ms, int limit, int64_t *tasks, int64_t *copies);

#endif
