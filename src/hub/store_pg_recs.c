/* Automation's records on PostgreSQL (store.h's rec_*), as the SQLite store keeps them. Part
 * of the PostgreSQL store (store_pg_int.h). */
#include "store_pg_int.h"

int pg_rec_put(struct store *base, const char *kind, const char *id, const json_t *body,
               int64_t due_ms, int64_t now_ms, int only_new)
{
	char *text;
	int rc;

	if (!pg_nonempty(kind) || !pg_nonempty(id) || !json_is_object(body))
		return OUTPOST_E_BAD_ARGS;
	if (!(text = pg_text(body, JSON_SORT_KEYS, 0)))
		return OUTPOST_E_INTERNAL;
	rc = pg_run(pg_of(base), only_new ? PS_REC_ADD : PS_REC_PUT, NULL, "sssII", kind, id, text,
	            due_ms > 0 ? due_ms : (int64_t)0, now_ms);
	free(text);
	return rc < 0 ? rc : 0;
}

/* Every row's body (column 0) of r, into a new array; clears r. */
static int rec_rows(PGresult *r, json_t **bodies)
{
	json_t *arr = json_array();
	int rc = arr ? 0 : OUTPOST_E_INTERNAL;

	for (int i = 0; rc == 0 && i < PQntuples(r); i++)
		rc = json_array_append_new(arr, pg_json(r, i, 0)) ? OUTPOST_E_INTERNAL : 0;
	PQclear(r);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*bodies = arr;
	return 0;
}

int pg_rec_get(struct store *base, const char *kind, const char *id, json_t **body)
{
	PGresult *r;
	json_t *arr = NULL;
	int rc;

	*body = NULL;
	if ((rc = pg_run(pg_of(base), PS_REC_GET, &r, "ss", kind, id)) < 0 ||
	    (rc = rec_rows(r, &arr)) < 0)
		return rc;
	if (json_array_size(arr) == 0) {
		json_decref(arr);
		return OUTPOST_E_NOT_FOUND;
	}
	*body = json_incref(json_array_get(arr, 0));
	json_decref(arr);
	return 0;
}

int pg_rec_list(struct store *base, const char *kind, int limit, json_t **bodies)
{
	PGresult *r;
	int rc;

	*bodies = NULL;
	if ((rc = pg_run(pg_of(base), PS_REC_LIST, &r, "si", kind, limit)) < 0)
		return rc;
	return rec_rows(r, bodies);
}

int pg_rec_due(struct store *base, const char *kind, int64_t now_ms, int limit, json_t **bodies)
{
	PGresult *r;
	int rc;

	*bodies = NULL;
	if ((rc = pg_run(pg_of(base), PS_REC_DUE, &r, "sIi", kind, now_ms, limit)) < 0)
		return rc;
	return rec_rows(r, bodies);
}

int pg_rec_del(struct store *base, const char *kind, const char *id)
{
	int rc = pg_run(pg_of(base), PS_REC_DEL, NULL, "ss", kind, id);

	if (rc < 0)
		return rc;
	return rc > 0 ? 0 : OUTPOST_E_NOT_FOUND;
}

int pg_rec_prune(struct store *base, const char *kind, int64_t before_ms, int limit, int64_t *n)
{
	int rc = pg_run(pg_of(base), PS_REC_PRUNE, NULL, "sIi", kind, before_ms, limit);

	*n = rc > 0 ? rc : 0;
	return rc < 0 ? rc : 0;
}
