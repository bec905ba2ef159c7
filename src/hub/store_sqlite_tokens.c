/* Operator and enrollment tokens in hub.db, stored hashed (store.h). Part of the SQLite store
 * (store_sqlite_int.h). */
#include "store_sqlite_int.h"
#include "store_rules.h"
#include "core/clk.h"

#include <stdio.h>

#define TOKEN_COLS                                                                                 \
	"id, kind, role, labels, created_ms, expires_ms, created_by, revoked, max_uses, uses"

/* The tokens' statements (slots of store_sqlite_int.h), prepared at open. */
const char *const sq_tokens_sql[ST_COUNT] = {
    [ST_TOKEN_BY_ID] = "SELECT hash FROM tokens WHERE id = ?1",
    [ST_TOKEN_ADD] = "INSERT INTO tokens(id, hash, kind, role, labels, created_ms, expires_ms, "
                     "created_by, max_uses) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [ST_TOKEN_FIND] = "SELECT " TOKEN_COLS " FROM tokens WHERE hash = ?1 AND revoked = 0 AND "
                      "(expires_ms = 0 OR expires_ms > ?2) AND (max_uses = 0 OR uses < max_uses)",
    [ST_TOKEN_LIST] = "SELECT " TOKEN_COLS " FROM tokens ORDER BY created_ms DESC, rowid DESC",
    [ST_TOKEN_REVOKE] = "UPDATE tokens SET revoked = 1 WHERE id = ?1",
};

/* ---- Tokens ---- */

/* The token of the current row (TOKEN_COLS); never its hash. max_uses 0: any number. */
static json_t *token_json(sqlite3_stmt *st, int with_revoked)
{
	json_t *t =
	    json_pack("{s:s, s:s, s:s?, s:o, s:I, s:I, s:s?, s:I, s:I}", "id", col_str(st, 0),
	              "kind", col_str(st, 1), "role", col_str(st, 2), "labels", col_json(st, 3),
	              "created_ms", col_int(st, 4), "expires_ms", col_int(st, 5), "created_by",
	              col_str(st, 6), "max_uses", col_int(st, 8), "uses", col_int(st, 9));

	if (t && with_revoked &&
	    json_object_set_new(t, "revoked", json_boolean(sqlite3_column_int(st, 7)))) {
		json_decref(t);
		t = NULL;
	}
	return t;
}

int sq_token_add(struct store *base, json_t *tok)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	const char *id = json_string_value(json_object_get(tok, "id"));
	const char *hash = json_string_value(json_object_get(tok, "hash"));
	const char *kind = json_string_value(json_object_get(tok, "kind"));
	json_t *role = json_object_get(tok, "role");
	json_t *labels = json_object_get(tok, "labels");
	json_t *created = json_object_get(tok, "created_ms");
	json_t *expires = json_object_get(tok, "expires_ms");
	json_t *by = json_object_get(tok, "created_by");
	json_t *uses = json_object_get(tok, "max_uses");
	char *ltext = NULL;
	int rc, op;

	if (store_token_check(tok) < 0)
		return OUTPOST_E_BAD_ARGS;
	op = strcmp(kind, "operator") == 0;
	if (!(ltext = text_or_empty(json_is_object(labels) ? labels : NULL, JSON_SORT_KEYS)))
		return OUTPOST_E_INTERNAL;
	if ((rc = tx_begin(s)) < 0)
		goto out;
	/* The same id again: the first result if it is the same token, else a conflict. */
	st = stmt(s, ST_TOKEN_BY_ID);
	bind_str(st, 1, id);
	rc = db_step(st);
	if (rc == 1)
		rc = strcmp(col_str(st, 0), hash) == 0 ? 1 : OUTPOST_E_CONFLICT;
	sqlite3_reset(st);
	if (rc != 0) {
		tx_rollback(s);
		rc = rc < 0 ? rc : 0;
		goto out;
	}
	st = stmt(s, ST_TOKEN_ADD);
	bind_str(st, 1, id);
	bind_str(st, 2, hash);
	bind_str(st, 3, kind);
	bind_str(st, 4, op ? json_string_value(role) : NULL);
	bind_str(st, 5, ltext);
	sqlite3_bind_int64(st, 6, json_integer_value(created));
	sqlite3_bind_int64(st, 7, expires ? json_integer_value(expires) : 0);
	bind_str(st, 8, json_string_value(by));
	sqlite3_bind_int64(st, 9, uses ? json_integer_value(uses) : 0);
	if ((rc = db_run(st)) < 0) { /* CONFLICT: another token has this hash */
		tx_rollback(s);
		goto out;
	}
	rc = tx_commit(s);
out:
	free(ltext);
	return rc;
}

/* The lookup is by an index on the hash of a secret: its timing tells nothing of the secret. */
int sq_token_find(struct store *base, const char *hash, int64_t now_ms, json_t **tok)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st = stmt(s, ST_TOKEN_FIND);
	int rc;

	*tok = NULL;
	if (!hash)
		return OUTPOST_E_BAD_ARGS;
	bind_str(st, 1, hash);
	sqlite3_bind_int64(st, 2, now_ms);
	rc = db_step(st);
	if (rc == 1)
		rc = (*tok = token_json(st, 0)) ? 0 : OUTPOST_E_INTERNAL;
	else if (rc == 0)
		rc = OUTPOST_E_NOT_FOUND;
	sqlite3_reset(st);
	return rc;
}

int sq_token_list(struct store *base, json_t **toks)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st = stmt(s, ST_TOKEN_LIST);
	json_t *arr = json_array();
	int rc = arr ? 0 : OUTPOST_E_INTERNAL;

	*toks = NULL;
	while (rc == 0 && (rc = db_step(st)) == 1) {
		json_t *t = token_json(st, 1);
		rc = t && json_array_append_new(arr, t) == 0 ? 0 : OUTPOST_E_INTERNAL;
	}
	sqlite3_reset(st);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*toks = arr;
	return 0;
}

int sq_token_revoke(struct store *base, const char *id)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st = stmt(s, ST_TOKEN_REVOKE);
	int rc;

	bind_str(st, 1, id);
	if ((rc = db_run(st)) < 0)
		return rc;
	return sqlite3_changes(s->db) > 0 ? 0 : OUTPOST_E_NOT_FOUND;
}
