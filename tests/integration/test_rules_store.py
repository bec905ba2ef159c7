"""Automation's documents in the store (docs/rules.md#where-rules-live): rules, alerts and
silences are store records beside flows' since SQLite schema 8 and PostgreSQL schema 6. A hub
started on a store of the version before (its documents in the old auto_docs table) moves
them over: the rules, their silences and the alerts are there after the upgrade, and the old
table is gone. Both stores, PostgreSQL through the testlib's fixture."""
import sqlite3

from outpost_testlib import wait_for

RULES = {"rules": {"interval_s": 1}}
KINDS = "('rule', 'alert', 'silence')"
# The table of SQLite's schema 7 and PostgreSQL's 5, as they shipped.
AUTO_DOCS = ("CREATE TABLE auto_docs (kind TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL,"
             " updated_ms %s NOT NULL, PRIMARY KEY (kind, id));")


def fill(h):
    """A rule that holds for the pending host the hub has, so it fires, and a silence."""
    st, body = h.api("POST", "/api/v1/rules", {"name": "keep", "condition": "pending",
                                               "actions": [{"kind": "log"}]})
    assert st == 200, body
    st, body = h.api("POST", "/api/v1/silences",
                     {"rule": "keep", "duration_s": 3600, "comment": "upgrade"})
    assert st == 200, body
    return body["result"]["id"]


def check(h, silence):
    st, body = h.api("GET", "/api/v1/rules")
    assert [(r["name"], r["condition"]) for r in body["result"]] == [("keep", "pending")], body
    st, body = h.api("GET", "/api/v1/silences")
    assert [(s["id"], s["comment"]) for s in body["result"]] == [(silence, "upgrade")], body


def enroll_pending(h):
    """A host left pending (no token): the rule's condition holds for it."""
    st, body = h.api("POST", "/api/v1/enroll", {"host_id": "lone-1", "pubkey": "A" * 43 + "=",
                                                 "hostname": "lone-1"}, token="")
    assert st in (200, 202), body


def alert_on(h):
    st, body = h.api("GET", "/api/v1/alerts")
    return [(a["rule"], a["host"], a["state"]) for a in body["result"]]


def test_sqlite_store_of_schema_7_moves_automation_documents_into_records(hub):
    h = hub(RULES)
    silence = fill(h)
    h.stop()
    db = sqlite3.connect(str(h.state / "hub.db"))
    db.executescript("BEGIN;" + AUTO_DOCS % "INTEGER" +
                     "INSERT INTO auto_docs SELECT kind, id, body, updated_ms FROM records"
                     " WHERE kind IN %s;"
                     "DELETE FROM records WHERE kind IN %s;"
                     "UPDATE schema_version SET version = 7 WHERE component = 'hub';"
                     "COMMIT;" % (KINDS, KINDS))
    assert db.execute("SELECT count(*) FROM auto_docs").fetchone()[0] == 2
    db.close()
    h.start()
    check(h, silence)
    db = sqlite3.connect(str(h.state / "hub.db"))
    assert db.execute("SELECT version FROM schema_version WHERE component = 'hub'"
                      ).fetchone()[0] == 8
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'auto_docs'"
                      ).fetchone()[0] == 0
    assert sorted(r[0] for r in db.execute("SELECT kind FROM records")) == ["rule", "silence"]
    db.close()


def test_postgresql_store_of_schema_5_moves_automation_documents_into_records(hub, postgres):
    h = hub(dict(RULES, store={"backend": "postgresql", "dsn": postgres.dsn}))
    silence = fill(h)
    # An alert too: a pending host makes the rule fire (its silence holds the action).
    enroll_pending(h)
    wait_for(lambda: alert_on(h) == [("keep", "lone-1", "firing")], 15, what="the alert")
    h.stop()
    postgres.sql("BEGIN;" + AUTO_DOCS % "BIGINT" +
                 "INSERT INTO auto_docs SELECT kind, id, body, updated_ms FROM records"
                 " WHERE kind IN %s;"
                 "DELETE FROM records WHERE kind IN %s;"
                 "UPDATE schema_version SET version = 5 WHERE component = 'hub';"
                 "COMMIT;" % (KINDS, KINDS))
    assert postgres.sql("SELECT count(*) FROM auto_docs") == [["3"]]
    h.start()
    check(h, silence)
    # The alert came over as it was: still firing, not fired again.
    assert alert_on(h) == [("keep", "lone-1", "firing")]
    st, body = h.api("GET", "/api/v1/alerts/history?rule=keep")
    assert [e["kind"] for e in body["result"]].count("firing") == 1, body
    assert postgres.sql("SELECT version FROM schema_version WHERE component = 'hub'") == [["6"]]
    assert postgres.sql("SELECT to_regclass('auto_docs') IS NULL") == [["t"]]
    assert sorted(r[0] for r in postgres.sql("SELECT kind FROM records")) == [
        "alert", "rule", "silence"]

