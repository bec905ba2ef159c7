/* The SQLite store's alert history (store.h, "automation"), in hub.db; rules, current alerts
 * and silences are records (store_sqlite_recs.c). */
#include "store_sqlite_int.h"

const char *const sq_alerts_sql[ST_COUNT] = {
    [ST_ALOG_ADD] = "INSERT INTO alert_log(at_ms, rule_id, host_id, kind, detail) "
                    "VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_ALOG_ALL] = "SELECT id, at_ms, rule_id, host_id, kind, detail FROM alert_log "
                    "ORDER BY id DESC LIMIT ?1",
    [ST_ALOG_RULE] = "SELECT id, at_ms, rule_id, host_id, kind, detail FROM alert_log "
                     "WHERE rule_id = ?2 ORDER BY id DESC LIMIT ?1",
    [ST_ALOG_PRUNE] = "DELETE FROM alert_log WHERE id IN "
                      "(SELECT id FROM alert_log WHERE at_ms < ?1 ORDER BY at_ms LIMIT ?2)",
};

int sq_alert_log_add(struct store *base, json_t *entry, int64_t now_ms)
{
	struct sq *s = sq_of(base);
	const char *rule = json_string_value(json_object_get(entry, "rule_id"));
	const char *kind = json_string_value(json_object_get(entry, "kind"));
	json_t *detail = json_object_get(entry, "detail");
	sqlite3_stmt *st;
	char *dtext = NULL;
	int rc;

	if (!nonempty(rule) || !nonempty(kind))
		return OUTPOST_E_BAD_ARGS;
	if (detail && !(dtext = text_of(detail, 0)))
		return OUTPOST_E_INTERNAL;
	st = stmt(s, ST_ALOG_ADD);
	sqlite3_bind_int64(st, 1, now_ms);
	bind_str(st, 2, rule);
	bind_str(st, 3, json_string_value(json_object_get(entry, "host_id")));
	bind_str(st, 4, kind);
	bind_str(st, 5, dtext);
	rc = db_run(st);
	free(dtext);
	return rc;
}

int sq_alert_log_list(struct store *base, const char *rule_id, int limit, json_t **entries)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	json_t *arr;
	int rc = 0;

	*entries = NULL;
	if (limit < 1)
		return OUTPOST_E_BAD_ARGS;
	if (!(arr = json_array()))
		return OUTPOST_E_INTERNAL;
	st = stmt(s, rule_id ? ST_ALOG_RULE : ST_ALOG_ALL);
	sqlite3_bind_int(st, 1, limit);
	if (rule_id)
		bind_str(st, 2, rule_id);
	while (rc == 0 && (rc = db_step(st)) == 1) {
		json_t *e =
		    json_pack("{s:I, s:I, s:s, s:s?, s:s, s:o}", "id", col_int(st, 0), "at_ms",
		              col_int(st, 1), "rule_id", col_str(st, 2), "host_id", col_str(st, 3),
		              "kind", col_str(st, 4), "detail", col_json(st, 5));
		rc = e && json_array_append_new(arr, e) == 0 ? 0 : OUTPOST_E_INTERNAL;
	}
	sqlite3_reset(st);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*entries = arr;
	return 0;
}

int sq_alert_log_prune(struct store *base, int64_t before_ms, int limit, int64_t *n)
{
	struct sq *s = sq_of(base);
	sqlite3_stmt *st;
	int rc;

	*n = 0;
	if (limit < 1)
		return OUTPOST_E_BAD_ARGS;
	st = stmt(s, ST_ALOG_PRUNE);
	sqlite3_bind_int64(st, 1, before_ms);
	sqlite3_bind_int(st, 2, limit);
	if ((rc = db_run(st)) < 0)
		return rc;
	*n = sqlite3_changes(s->db);
	return 0;
}
