/* The task ledger: every mutating call that carries an id is journaled here (SQLite, WAL)
 * before it runs, and its response after. A repeated id gets the first response back, marked
 * as a replay; two concurrent calls with one id run it once; a call interrupted by the agent's
 * death is "lost" after restart (outcome unknown) and never runs again. Thread-safe. */
#ifndef OUTPOST_AGENT_LEDGER_H
#define OUTPOST_AGENT_LEDGER_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#include "core/log.h"

#define LEDGER_ID_MAX 128
/* The prefix of local callers' ids in the ledger: '/' is no id's character, so these never meet
 * a task id from the hub. */
#define LEDGER_LOCAL "local/"

enum { LEDGER_NEW = 0, LEDGER_REPLAY = 1 };

struct ledger;

/* db is borrowed and outlives the ledger. Rows left "running" by a previous life of the agent
 * become "lost"; *lost (may be NULL) gets their number. */
int ledger_open(sqlite3 *db, const struct logger *log, struct ledger **out, int *lost);
void ledger_close(struct ledger *l); /* NULL ok */

/* 1 if id is a valid ledger id: 1..128 of [A-Za-z0-9._:-]. */
int ledger_id_ok(const char *id);

/* Claims id for plugin.op with args. Returns LEDGER_NEW (journaled as running; the caller runs
 * it and must call ledger_finish), LEDGER_REPLAY (*prev: the stored response, new ref), or a
 * negative code: OUTPOST_E_CONFLICT (id used for another call), OUTPOST_E_LOST, OUTPOST_E_TIMEOUT
 * (a concurrent run with the id did not finish by deadline_ms), OUTPOST_E_INTERNAL. */
int ledger_begin(struct ledger *l, const char *id, const char *plugin, const char *op,
                 const json_t *args, int64_t deadline_ms, json_t **prev);
/* Stores the response envelope of a run begun with LEDGER_NEW and wakes waiters. */
int ledger_finish(struct ledger *l, const char *id, const json_t *response);
/* Drops finished rows older than max_age_ms, then the oldest local callers' rows past max_rows.
 * Task ids from the hub go by age only: the agent accepts no task that expires later than
 * max_age_ms from now, so an id is never forgotten while its task could still be replayed.
 * Returns the number dropped or a negative code. */
int ledger_prune(struct ledger *l, int64_t max_age_ms, int64_t max_rows);
/* Rows, for /metrics. */
int64_t ledger_count(struct ledger *l);
/* The state of an id: "running", "done", "lost", or NULL when unknown. *response gets the
 * stored envelope for done ids (new ref). For reports after restart. */
const char *ledger_state(struct ledger *l, const char *id, json_t **response);

#endif
