/* Operator and enrollment tokens on PostgreSQL, stored hashed (store.h), with the SQLite
 * store's semantics. Part of the PostgreSQL store (store_pg_int.h). */
#include "store_pg_int.h"
#include "store_rules.h"

/* The token of row i (TOKEN_COLS); never its hash. max_uses 0: any number. */
static json_t *token_json(const PGresult *r, int i, int with_revoked)
{
	json_t *t =
	    json_pack("{s:s, s:s, s:s?, s:o, s:I, s:I, s:s?, s:I, s:I}", "id", pg_str(r, i, 0),
	              "kind", pg_str(r, i, 1), "role", pg_str(r, i, 2), "labels", pg_json(r, i, 3),
	              "created_ms", pg_int(r, i, 4), "expires_ms", pg_int(r, i, 5), "created_by",
	              pg_str(r, i, 6), "max_uses", pg_int(r, i, 8), "uses", pg_int(r, i, 9));

	if (t && with_revoked &&
	    json_object_set_new(t, "revoked",
	                        json_boolean(strcmp(PQgetvalue(r, i, 7), "t") == 0))) {
		json_decref(t);
		t = NULL;
	}
	return t;
}

int pg_token_add(struct store *base, json_t *tok)
{
	struct pg *p = pg_of(base);
	const char *id = json_string_value(json_object_get(tok, "id"));
	const char *hash = json_string_value(json_object_get(tok, "hash"));
	const char *kind = json_string_value(json_object_get(tok, "kind"));
	json_t *labels = json_object_get(tok, "labels");
	json_t *expires = json_object_get(tok, "expires_ms");
	json_t *uses = json_object_get(tok, "max_uses");
	char *ltext = NULL;
	PGresult *r;
	int rc, op;

	if (store_token_check(tok) < 0)
		return OUTPOST_E_BAD_ARGS;
	op = strcmp(kind, "operator") == 0;
	if (!(ltext = pg_text(json_is_object(labels) ? labels : NULL, JSON_SORT_KEYS, 1)))
		return OUTPOST_E_INTERNAL;
	if ((rc = pg_tx_begin(p)) < 0)
		goto out;
	/* The same id again: the first result if it is the same token, else a conflict. */
	if ((rc = pg_run(p, PS_TOKEN_BY_ID, &r, "s", id)) != 0) {
		if (rc > 0) {
			rc = strcmp(pg_str(r, 0, 0), hash) == 0 ? 0 : OUTPOST_E_CONFLICT;
			PQclear(r);
		}
		pg_tx_rollback(p);
		goto out;
	}
	PQclear(r);
	rc = pg_run(p, PS_TOKEN_ADD, NULL, "sssssIIsI", id, hash, kind,
	            op ? json_string_value(json_object_get(tok, "role")) : NULL, ltext,
	            (int64_t)json_integer_value(json_object_get(tok, "created_ms")),
	            (int64_t)(expires ? json_integer_value(expires) : 0),
	            json_string_value(json_object_get(tok, "created_by")),
	            (int64_t)(uses ? json_integer_value(uses) : 0));
	if (rc < 0) { /* CONFLICT: another token has this hash */
		pg_tx_rollback(p);
		goto out;
	}
	rc = pg_tx_commit(p);
out:
	free(ltext);
	return rc;
}

/* The lookup is by an index on the hash of a secret: its timing tells nothing of the secret. */
int pg_token_find(struct store *base, const char *hash, int64_t now_ms, json_t **tok)
{
	PGresult *r;
	int rc;

	*tok = NULL;
	if (!hash)
		return OUTPOST_E_BAD_ARGS;
	if ((rc = pg_run(pg_of(base), PS_TOKEN_FIND, &r, "sI", hash, now_ms)) <= 0) {
		PQclear(r);
		return rc < 0 ? rc : OUTPOST_E_NOT_FOUND;
	}
	rc = (*tok = token_json(r, 0, 0)) ? 0 : OUTPOST_E_INTERNAL;
	PQclear(r);
	return rc;
}

int pg_token_list(struct store *base, json_t **toks)
{
	PGresult *r;
	json_t *arr;
	int rc;

	*toks = NULL;
	if ((rc = pg_run(pg_of(base), PS_TOKEN_LIST, &r, "")) < 0)
		return rc;
	rc = (arr = json_array()) ? 0 : OUTPOST_E_INTERNAL;
	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		json_t *t = token_json(r, i, 1);
		rc = t && json_array_append_new(arr, t) == 0 ? 0 : OUTPOST_E_INTERNAL;
	}
	PQclear(r);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*toks = arr;
	return 0;
}

int pg_token_revoke(struct store *base, const char *id)
{
	int rc = pg_run(pg_of(base), PS_TOKEN_REVOKE, NULL, "s", id);

	if (rc < 0)
		return rc;
	return rc > 0 ? 0 : OUTPOST_E_NOT_FOUND;
}
