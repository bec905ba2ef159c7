/* Automation's records in hub.db (store.h's rec_*): small JSON documents by kind and id, with a
 * time the hub's tick looks at them. Part of the SQLite store (store_sqlite_int.h). */
#include "store_sqlite_int.h"

const char *const sq_recs_sql[ST_COUNT] = {
    [ST_REC_ADD] = "INSERT INTO records(kind, id, body, due_ms, updated_ms) "
                   "VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_REC_PUT] = "INSERT INTO records(kind, id, body, due_ms, updated_ms) "
                   "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(kind, id) DO UPDATE SET "
                   "body = excluded.body, due_ms = excluded.due_ms, "
                   "updated_ms = excluded.updated_ms",
    [ST_REC_GET] = "SELECT body FROM records WHERE kind = ?1 AND id = ?2",
    [ST_REC_LIST] = "SELECT body FROM records WHERE kind = ?1 "
                    "ORDER BY updated_ms DESC, rowid DESC LIMIT ?2",
    [ST_REC_DUE] = "SELECT body FROM records WHERE kind = ?1 AND due_ms > 0 AND "
                   "due_ms <= ?2 ORDER BY due_ms, rowid LIMIT ?3",
    [ST_REC_DEL] = "DELETE FROM records WHERE kind = ?1 AND id = ?2",
    [ST_REC_PRUNE] = "DELETE FROM records WHERE rowid IN (SELECT rowid FROM records WHERE "
                     "kind = ?1 AND due_ms = 0 AND updated_ms < ?2 ORDER BY updated_ms LIMIT ?3)",
};

int sq_rec_put(struct store *base, const char *kind, const char *id, const json_t *body,
               int64_t due_ms, int64_t now_ms, int only_new)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	char *text;
	int rc;

	if (!nonempty(kind) || !nonempty(id) || !json_is_object(body))
		return OUTPOST_E_BAD_ARGS;
	if (!(text = text_of(body, JSON_SORT_KEYS)))
		return OUTPOST_E_INTERNAL;
	st = stmt(s, only_new ? ST_REC_ADD : ST_REC_PUT);
	bind_str(st, 1, kind);
	bind_str(st, 2, id);
	bind_str(st, 3, text);
	sqlite3_bind_int64(st, 4, due_ms > 0 ? due_ms : 0);
	sqlite3_bind_int64(st, 5, now_ms);
	rc = db_run(st); /* the primary key taken: OUTPOST_E_CONFLICT */
	free(text);
	return rc < 0 ? rc : 0;
}

/* Every row's body (column 0) of a statement bound and ready, into a new array. */
static int rec_rows(sqlite3_stmt *st, json_t **bodies)
{
	json_t *arr = json_array();
	int rc = arr ? 0 : OUTPOST_E_INTERNAL;

	while (rc == 0 && (rc = db_step(st)) == 1)
		rc = json_array_append_new(arr, col_json(st, 0)) ? OUTPOST_E_INTERNAL : 0;
	sqlite3_reset(st);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*bodies = arr;
	return 0;
}

int sq_rec_get(struct store *base, const char *kind, const char *id, json_t **body)
{
	sqlite3_stmt *st = stmt(sq_of(base), ST_REC_GET);
	json_t *arr = NULL;
	int rc;

	*body = NULL;
	bind_str(st, 1, kind);
	bind_str(st, 2, id);
	if ((rc = rec_rows(st, &arr)) < 0)
		return rc;
	if (json_array_size(arr) == 0) {
		json_decref(arr);
		return OUTPOST_E_NOT_FOUND;
	}
	*body = json_incref(json_array_get(arr, 0));
	json_decref(arr);
	return 0;
}

int sq_rec_list(struct store *base, const char *kind, int limit, json_t **bodies)
{
	sqlite3_stmt *st = stmt(sq_of(base), ST_REC_LIST);

	*bodies = NULL;
	bind_str(st, 1, kind);
	sqlite3_bind_int(st, 2, limit);
	return rec_rows(st, bodies);
}

int sq_rec_due(struct store *base, const char *kind, int64_t now_ms, int limit, json_t **bodies)
{
	sqlite3_stmt *st = stmt(sq_of(base), ST_REC_DUE);

	*bodies = NULL;
	bind_str(st, 1, kind);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int(st, 3, limit);
	return rec_rows(st, bodies);
}

int sq_rec_del(struct store *base, const char *kind, const char *id)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st = stmt(s, ST_REC_DEL);
	int rc;

	bind_str(st, 1, kind);
	bind_str(st, 2, id);
	rc = db_run(st);
	if (rc < 0)
		return rc;
	return sqlite3_changes(s->db) > 0 ? 0 : OUTPOST_E_NOT_FOUND;
}

int sq_rec_prune(struct store *base, const char *kind, int64_t before_ms, int limit, int64_t *n)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st = stmt(s, ST_REC_PRUNE);
	int rc;

	*n = 0;
	bind_str(st, 1, kind);
	sqlite3_bind_int64(st, 2, before_ms);
	sqlite3_bind_int(st, 3, limit);
	if ((rc = db_run(st)) < 0)
		return rc;
	*n = sqlite3_changes(s->db);
	return 0;
}
