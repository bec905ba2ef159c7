/* The PostgreSQL store's alert history (store.h, "automation"), as store_sqlite_alerts.c;
 * rules, current alerts and silences are records (store_pg_recs.c). Shared by the hubs of one
 * database; only the leading hub writes alerts. */
#include "store_pg_int.h"

#include <stdlib.h>

const char *const pg_alerts_sql[PS_COUNT] = {
    [PS_ALOG_ADD] = "INSERT INTO alert_log(at_ms, rule_id, host_id, kind, detail) "
                    "VALUES($1, $2, $3, $4, $5)",
    [PS_ALOG_ALL] = "SELECT id, at_ms, rule_id, host_id, kind, detail FROM alert_log "
                    "ORDER BY id DESC LIMIT $1",
    [PS_ALOG_RULE] = "SELECT id, at_ms, rule_id, host_id, kind, detail FROM alert_log "
                     "WHERE rule_id = $2 ORDER BY id DESC LIMIT $1",
    [PS_ALOG_PRUNE] = "DELETE FROM alert_log WHERE id IN "
                      "(SELECT id FROM alert_log WHERE at_ms < $1 ORDER BY at_ms LIMIT $2)",
};

int pg_alert_log_add(struct store *base, json_t *entry, int64_t now_ms)
{
	const char *rule = json_string_value(json_object_get(entry, "rule_id"));
	const char *kind = json_string_value(json_object_get(entry, "kind"));
	json_t *detail = json_object_get(entry, "detail");
	char *dtext = NULL;
	int rc;

	if (!pg_nonempty(rule) || !pg_nonempty(kind))
		return OUTPOST_E_BAD_ARGS;
	if (detail && !(dtext = pg_text(detail, 0, 0)))
		return OUTPOST_E_INTERNAL;
	rc = pg_run(pg_of(base), PS_ALOG_ADD, NULL, "Issss", now_ms, rule,
	            json_string_value(json_object_get(entry, "host_id")), kind, dtext);
	free(dtext);
	return rc < 0 ? rc : 0;
}

int pg_alert_log_list(struct store *base, const char *rule_id, int limit, json_t **entries)
{
	PGresult *r;
	json_t *arr;
	int rc;

	*entries = NULL;
	if (limit < 1)
		return OUTPOST_E_BAD_ARGS;
	rc = rule_id ? pg_run(pg_of(base), PS_ALOG_RULE, &r, "is", limit, rule_id)
	             : pg_run(pg_of(base), PS_ALOG_ALL, &r, "i", limit);
	if (rc < 0)
		return rc;
	if (!(arr = json_array()))
		rc = OUTPOST_E_INTERNAL;
	for (int i = 0; arr && rc >= 0 && i < PQntuples(r); i++) {
		json_t *e =
		    json_pack("{s:I, s:I, s:s, s:s?, s:s, s:o}", "id", pg_int(r, i, 0), "at_ms",
		              pg_int(r, i, 1), "rule_id", pg_str(r, i, 2), "host_id",
		              pg_str(r, i, 3), "kind", pg_str(r, i, 4), "detail", pg_json(r, i, 5));
		rc = e && json_array_append_new(arr, e) == 0 ? 0 : OUTPOST_E_INTERNAL;
	}
	PQclear(r);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*entries = arr;
	return 0;
}

int pg_alert_log_prune(struct store *base, int64_t before_ms, int limit, int64_t *n)
{
	int rc;

	*n = 0;
	if (limit < 1)
		return OUTPOST_E_BAD_ARGS;
	if ((rc = pg_run(pg_of(base), PS_ALOG_PRUNE, NULL, "Ii", before_ms, limit)) < 0)
		return rc;
	*n = rc;
	return 0;
}
