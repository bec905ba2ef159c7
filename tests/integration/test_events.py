"""Events at the hub (docs/protocol.md, "Events"): an agent's events batches ride its metrics
posts (one spool, one seq) and are stored once whatever is resent; other systems post theirs
with POST /api/v1/events (operator role, an id that makes a repeat store nothing); GET
/api/v1/events and `outpost events ls` list them with filters. Bad input and refusals for both
doors. The real agent's events (the security plugin) are in test_security.py."""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
pytest.importorskip("nacl.signing", reason="python3-nacl (sh scripts/deps.sh)")
from test_ingest import EPOCH, enroll  # noqa: E402  (a scripted agent that signs)


def event(kind="security.passwd_changed", ts=None, **kw):
    e = {"kind": kind, "severity": "warning", "ts": ts or int(time.time() * 1000),
         "message": "/etc/passwd changed", "data": {"path": "/etc/passwd"}}
    e.update(kw)
    return e


def listed(h, query="", token=None):
    st, body = h.api("GET", "/api/v1/events" + query, token=token)
    assert st == 200, body
    return body["result"]


def agent_events(h, host):
    return [e for e in listed(h, "?host=" + host) if e["source"] == "agent"]


def refused(answer, status, code, text=None):
    st, body = answer
    assert st == status, body
    assert body["ok"] is False and body["error"]["code"] == code, body
    if text:
        assert text in body["error"]["message"], body
    return body["error"]["message"]


def test_agent_events_are_stored_once_across_resends(hub):
    h = hub()
    a = enroll(h)
    t = int(time.time() * 1000)
    metrics = {"seq": 1, "t": t // 10000 * 10000, "samples": [["host_load1", 0.5]]}
    evs = {"seq": 2, "events": [event(ts=t), event("security.uid0_added", ts=t + 1)]}
    st, r = a.post_metrics(EPOCH, [metrics, evs])
    assert st == 200 and r["result"]["stored"] == 2 and r["result"]["rejected"] == [], r
    # The agent did not hear the answer and sends it all again, then more: once each.
    st, r = a.post_metrics(EPOCH, [metrics, evs, {"seq": 3, "events": [event("x.y", ts=t)]}])
    assert st == 200 and r["result"]["duplicates"] == 2, r
    got = agent_events(h, "web-1")
    assert [e["kind"] for e in got] == ["x.y", "security.uid0_added", "security.passwd_changed"]
    assert got[2]["severity"] == "warning" and got[2]["at_ms"] == t
    assert got[2]["data"] == {"path": "/etc/passwd"} and got[2]["host_id"] == "web-1"
    # The hub restarts (its dedupe memory with it): the store still knows the keys.
    h.stop()
    h.start()
    st, r = a.post_metrics(EPOCH, [evs])
    assert st == 200, r
    assert len(agent_events(h, "web-1")) == 3


def test_a_bad_events_batch_is_refused_alone(hub):
    h = hub()
    a = enroll(h)
    t = int(time.time() * 1000)
    st, r = a.post_metrics(EPOCH, [
        {"seq": 1, "events": [event(ts=t), event(severity="loud", ts=t)]},
        {"seq": 2, "events": "nope"},
        {"seq": 3, "events": [event(ts=t)], "samples": []},
        {"seq": 4, "events": [event("ok.kind", ts=t)]}])
    assert st == 200, r
    assert sorted(x["seq"] for x in r["result"]["rejected"]) == [1, 2, 3], r
    assert [e["kind"] for e in agent_events(h, "web-1")] == ["ok.kind"]
    assert "severity" in h.log()  # the particulars are in the hub's log


def test_post_lists_and_filters(hub):
    h = hub()
    enroll(h, "web-1")
    enroll(h, "db-1")
    now = int(time.time() * 1000)
    posts = [("d1", "web-1", "deploy.started", now - 3600000),
             ("d2", "web-1", "deploy.finished", now - 1800000),
             ("d3", "db-1", "deploy.started", now - 60000),
             ("b1", None, "backup.done", now - 1000)]
    for pid, host, kind, ts in posts:
        body = {"id": pid, "kind": kind, "severity": "notice", "message": kind, "ts": ts}
        if host:
            body["host"] = host
        st, r = h.api("POST", "/api/v1/events", body)
        assert st == 200 and r["result"] == {"id": pid, "duplicate": False}, r
    # The same id again: the first result, nothing stored twice.
    st, r = h.api("POST", "/api/v1/events", {"id": "d1", "kind": "deploy.started",
                                             "severity": "notice", "message": "again"})
    assert st == 200 and r["result"]["duplicate"] is True, r
    api = [e for e in listed(h, "?limit=1000") if e["source"].startswith("api:")]
    assert [e["message"] for e in api] == ["backup.done", "deploy.started", "deploy.finished",
                                           "deploy.started"]
    assert api[0]["host_id"] == "" and api[0]["source"].startswith("api:token:")
    assert [e["kind"] for e in listed(h, "?kind=deploy")] == \
        ["deploy.started", "deploy.finished", "deploy.started"]
    assert [e["kind"] for e in listed(h, "?kind=deploy.started&hosts=web-*")] == \
        ["deploy.started"]
    assert [e["message"] for e in listed(h, "?kind=deploy&since=-45m")] == \
        ["deploy.started", "deploy.finished"]
    assert [e["message"] for e in listed(h, "?kind=deploy&until=-45m")] == ["deploy.started"]
    # Paged: before= the last id of a page gives the next one.
    p1 = listed(h, "?kind=deploy&limit=2")
    p2 = listed(h, "?kind=deploy&limit=2&before=%d" % p1[-1]["id"])
    assert len(p1) == 2 and [e["id"] for e in p2] == [api[3]["id"]]
    assert listed(h, "?hosts=nosuch-*") == []
    # The CLI: a table, and --json.
    p = h.cli("events", "ls", "-t", "web-*", "--kind", "deploy", "--since", "-2h")
    assert p.returncode == 0, p.stderr
    assert "deploy.finished" in p.stdout and "web-1" in p.stdout and "db-1" not in p.stdout
    p = h.cli("--json", "events", "ls", "--kind", "backup")
    assert p.returncode == 0 and [e["kind"] for e in p.json] == ["backup.done"], p.stdout
    p = h.cli("events", "ls", "--since", "yesterday")
    assert p.returncode == 3 and "since" in p.stderr, (p.stdout, p.stderr)


def test_post_refuses_bad_bodies(hub):
    h = hub()
    enroll(h, "web-1")
    ok = {"id": "x1", "kind": "a.b", "severity": "info", "message": "m"}
    for change, text in [({"colour": "red"}, "unknown field 'colour'"),
                         ({"kind": 5}, "field 'kind' must be string"),
                         ({"kind": "A.B"}, "kind:"),
                         ({"kind": "a..b"}, "kind:"),
                         ({"severity": "loud"}, "severity:"),
                         ({"message": "two\nlines"}, "message:"),
                         ({"message": ""}, "message:"),
                         ({"ts": -1}, "ts:"),
                         ({"id": "has space"}, "id:"),
                         ({"id": None}, "missing required field 'id'"),
                         ({"host": "nosuch"}, "no host 'nosuch'"),
                         ({"data": {"blob": "x" * 17000}}, "data:")]:
        body = dict(ok)
        body.update(change)
        body = {k: v for k, v in body.items() if v is not None}
        refused(h.api("POST", "/api/v1/events", body), 400, "bad_args", text)
    refused(h.api("POST", "/api/v1/events", raw="{"), 400, "bad_json")
    refused(h.api("POST", "/api/v1/events", raw='{"id":"' + "x" * 70000 + '"}'), 413,
            "too_large")
    assert [e for e in listed(h) if e["source"] != "hub"] == []
    st, text = h.api("GET", "/metrics")
    assert 'outpost_hub_events_total{outcome="rejected"} 13' in text, text


def test_list_refuses_bad_parameters(hub):
    h = hub()
    for query, text in [("?colour=red", "unknown parameter 'colour'"),
                        ("?kind=Security", "kind:"),
                        ("?since=yesterday", "since:"),
                        ("?until=soon", "until:"),
                        ("?limit=0", "limit:"),
                        ("?limit=1001", "limit:"),
                        ("?before=x", "before:"),
                        ("?host=../x", "host:"),
                        ("?hosts=a=(", "hosts:")]:
        refused(h.api("GET", "/api/v1/events" + query), 400, "bad_args", text)


def test_roles(hub):
    h = hub()
    viewer = h.cli("token", "create", "--operator", "--role", "viewer").stdout.strip()
    operator = h.cli("token", "create", "--operator", "--role", "operator").stdout.strip()
    body = {"id": "r1", "kind": "a.b", "severity": "info", "message": "m"}
    refused(h.api("POST", "/api/v1/events", body, token=viewer), 403, "forbidden")
    refused(h.api("POST", "/api/v1/events", body, token=""), 401, "unauthorized")
    refused(h.api("GET", "/api/v1/events", token=""), 401, "unauthorized")
    st, r = h.api("POST", "/api/v1/events", body, token=operator)
    assert st == 200, r
    assert listed(h, "?kind=a", token=viewer)[0]["source"].startswith("api:token:")
