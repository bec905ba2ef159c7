/* The task ledger: see ledger.h. One lock guards the statements and the set of ids running in
 * this process; waiters for a concurrent run of the same id sleep on one condition variable. */
#include "ledger.h"
#include "core/clk.h"
#include "core/db.h"
#include "core/wire.h"

#include <errno.h>
#include <outpost/plugin.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ledger_active {
	char id[LEDGER_ID_MAX + 1];
	struct ledger_active *next;
};

struct ledger {
	sqlite3 *db;
	const struct logger *log;
	pthread_mutex_t lock; /* guards active and every use of db by the ledger */
	pthread_cond_t done;  /* signalled by ledger_finish */
	struct ledger_active *active;
	struct db_kept kept; /* guarded by lock */
};

static const char *const ledger_schema[] = {
    "CREATE TABLE ledger ("
    " id TEXT PRIMARY KEY,"
    " plugin TEXT NOT NULL, op TEXT NOT NULL, args_hash TEXT NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('running', 'done', 'lost')),"
    " response TEXT,"
    " started_ms INTEGER NOT NULL, finished_ms INTEGER) WITHOUT ROWID;"
    "CREATE INDEX ledger_started ON ledger(started_ms);",
};

int ledger_id_ok(const char *id)
{
	return wire_id_ok(id);
}

int ledger_open(sqlite3 *db, const struct logger *log, struct ledger **out, int *lost)
{
	struct ledger *l;
	pthread_condattr_t ca;
	char msg[256];
	int rc;

	*out = NULL;
	rc = db_migrate(db, "ledger", ledger_schema, 1, msg, sizeof(msg));
	if (rc < 0) {
		log_error(log, "ledger", "%s", msg);
		return rc;
	}
	if (db_exec(db, "UPDATE ledger SET state = 'lost' WHERE state = 'running'", msg,
	            sizeof(msg)) < 0) {
		log_error(log, "ledger", "%s", msg);
		return OUTPOST_E_INTERNAL;
	}
	if (lost)
		*lost = sqlite3_changes(db);
	l = calloc(1, sizeof(*l));
	if (!l)
		return OUTPOST_E_INTERNAL;
	l->db = db;
	l->log = log;
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->done, &ca);
	pthread_condattr_destroy(&ca);
	*out = l;
	return 0;
}

void ledger_close(struct ledger *l)
{
	if (!l)
		return;
	while (l->active) {
		struct ledger_active *a = l->active;
		l->active = a->next;
		free(a);
	}
	db_kept_free(&l->kept);
	pthread_cond_destroy(&l->done);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

static int ledger_is_active(const struct ledger *l, const char *id)
{
	for (const struct ledger_active *a = l->active; a; a = a->next)
		if (strcmp(a->id, id) == 0)
			return 1;
	return 0;
}

/* Hex sha256 of the canonical (sorted-key, compact) text of args. */
static int ledger_hash(const json_t *args, char hex[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char *text =
	    json_dumps(args ? args : json_null(), JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

	if (!text)
		return -1;
	crypto_hash_sha256(h, (const unsigned char *)text, strlen(text));
	sodium_bin2hex(hex, 65, h, sizeof(h));
	free(text);
	return 0;
}

int ledger_begin(struct ledger *l, const char *id, const char *plugin, const char *op,
                 const json_t *args, int64_t deadline_ms, json_t **prev)
{
	sqlite3_stmt *st = NULL;
	char hash[65];
	int rc;

	*prev = NULL;
	if (ledger_hash(args, hash) < 0)
		return OUTPOST_E_INTERNAL;
	pthread_mutex_lock(&l->lock);
	for (;;) {
		const char *state, *p, *o, *ah;
		if (db_kept(&l->kept, l->db,
		            "SELECT state, plugin, op, args_hash, response FROM ledger "
		            "WHERE id = ?",
		            &st) != SQLITE_OK)
			goto internal;
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW)
			goto internal;
		state = (const char *)sqlite3_column_text(st, 0);
		p = (const char *)sqlite3_column_text(st, 1);
		o = (const char *)sqlite3_column_text(st, 2);
		ah = (const char *)sqlite3_column_text(st, 3);
		if (!state || !p || !o || !ah)
			goto internal;
		if (strcmp(p, plugin) || strcmp(o, op) || strcmp(ah, hash)) {
			rc = OUTPOST_E_CONFLICT;
			goto out;
		}
		if (strcmp(state, "done") == 0) {
			const char *resp = (const char *)sqlite3_column_text(st, 4);
			*prev = resp ? json_loads(resp, 0, NULL) : NULL;
			rc = *prev ? LEDGER_REPLAY : OUTPOST_E_INTERNAL;
			goto out;
		}
		if (strcmp(state, "lost") == 0 || !ledger_is_active(l, id)) {
			rc = OUTPOST_E_LOST;
			goto out;
		}
		/* Running here and now: wait for it, then answer as a replay. */
		sqlite3_reset(st);
		st = NULL;
		{
			struct timespec ts = {.tv_sec = deadline_ms / 1000,
			                      .tv_nsec = (deadline_ms % 1000) * 1000000};
			if (pthread_cond_timedwait(&l->done, &l->lock, &ts) == ETIMEDOUT &&
			    ledger_is_active(l, id)) {
				rc = OUTPOST_E_TIMEOUT;
				goto out;
			}
		}
	}
	sqlite3_reset(st);
	st = NULL;
	{
		struct ledger_active *a = calloc(1, sizeof(*a));
		if (!a)
			goto internal;
		if (db_kept(&l->kept, l->db,
		            "INSERT INTO ledger(id, plugin, op, args_hash, state, "
		            "started_ms) VALUES(?, ?, ?, ?, 'running', ?)",
		            &st) != SQLITE_OK) {
			free(a);
			goto internal;
		}
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, plugin, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, op, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, hash, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, clk_real_ms());
		if (sqlite3_step(st) != SQLITE_DONE) {
			free(a);
			goto internal;
		}
		snprintf(a->id, sizeof(a->id), "%s", id);
		a->next = l->active;
		l->active = a;
		rc = LEDGER_NEW;
	}
out:
	sqlite3_reset(st);
	pthread_mutex_unlock(&l->lock);
	return rc;
internal:
	log_error(l->log, "ledger", "sqlite: %s", sqlite3_errmsg(l->db));
	rc = OUTPOST_E_INTERNAL;
	goto out;
}

int ledger_finish(struct ledger *l, const char *id, const json_t *response)
{
	sqlite3_stmt *st = NULL;
	char *text = wire_dump(response);
	int rc = OUTPOST_E_INTERNAL;

	pthread_mutex_lock(&l->lock);
	if (text && db_kept(&l->kept, l->db,
	                    "UPDATE ledger SET state = 'done', response = ?, "
	                    "finished_ms = ? WHERE id = ? AND state = 'running'",
	                    &st) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, clk_real_ms());
		sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_DONE)
			rc = 0;
		else
			log_error(l->log, "ledger", "sqlite: %s", sqlite3_errmsg(l->db));
	}
	sqlite3_reset(st);
	for (struct ledger_active **pp = &l->active; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->id, id) == 0) {
			struct ledger_active *a = *pp;
			*pp = a->next;
			free(a);
			break;
		}
	pthread_cond_broadcast(&l->done);
	pthread_mutex_unlock(&l->lock);
	free(text);
	return rc;
}

int ledger_prune(struct ledger *l, int64_t max_age_ms, int64_t max_rows)
{
	sqlite3_stmt *st = NULL;
	int dropped = 0;

	pthread_mutex_lock(&l->lock);
	if (db_kept(&l->kept, l->db,
	            "DELETE FROM ledger WHERE state != 'running' AND started_ms < ?",
	            &st) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, clk_real_ms() - max_age_ms);
		if (sqlite3_step(st) == SQLITE_DONE)
			dropped += sqlite3_changes(l->db);
	}
	sqlite3_reset(st);
	st = NULL;
	if (db_kept(&l->kept, l->db,
	            "DELETE FROM ledger WHERE state != 'running' AND id IN (SELECT id "
	            "FROM ledger WHERE id >= '" LEDGER_LOCAL "' AND id < 'local0' "
	            "ORDER BY started_ms DESC LIMIT -1 OFFSET ?)",
	            &st) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, max_rows);
		if (sqlite3_step(st) == SQLITE_DONE)
			dropped += sqlite3_changes(l->db);
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&l->lock);
	return dropped;
}

int64_t ledger_count(struct ledger *l)
{
	sqlite3_stmt *st = NULL;
	int64_t n = -1;

	pthread_mutex_lock(&l->lock);
	if (db_kept(&l->kept, l->db, "SELECT count(*) FROM ledger", &st) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	pthread_mutex_unlock(&l->lock);
	return n;
}

const char *ledger_state(struct ledger *l, const char *id, json_t **response)
{
	sqlite3_stmt *st = NULL;
	const char *state = NULL;

	if (response)
		*response = NULL;
	pthread_mutex_lock(&l->lock);
	if (db_kept(&l->kept, l->db, "SELECT state, response FROM ledger WHERE id = ?", &st) ==
	    SQLITE_OK) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			const char *s = (const char *)sqlite3_column_text(st, 0);
			const char *r = (const char *)sqlite3_column_text(st, 1);
			state = !s                          ? NULL
			        : strcmp(s, "done") == 0    ? "done"
			        : strcmp(s, "running") == 0 ? "running"
			                                    : "lost";
			if (response && r)
				*response = json_loads(r, 0, NULL);
		}
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&l->lock);
	return state;
}
