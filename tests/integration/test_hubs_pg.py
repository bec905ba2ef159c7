"""Two real hubs on one private PostgreSQL (tests/support/pg_run.sh through the postgres
fixture; no ZooKeeper): what an operator sees when any hub answers any call. A task submitted
at hub B runs on the agents of hub A and is answered at both; hosts, tokens, audit and events
are the same from both; metric batches shipped to one hub are queryable at the other within
15 s, and a batch sent to both is stored once (docs/metrics.md, "Several hubs")."""
import os
import sys
import time
import urllib.parse

import pytest

from outpost_testlib import HUB_CONF, Hub, cmd_line, deep_merge, marker_pids, wait_for

sys.path.insert(0, os.path.dirname(__file__))
pytest.importorskip("nacl.signing", reason="python3-nacl (sh scripts/deps.sh)")
from fakeagent import FakeAgent  # noqa: E402

EPOCH = "00112233445566aa"


def pg_conf(pg):
    return {"store": {"backend": "postgresql", "dsn": pg.dsn}}


@pytest.fixture
def second_hub(postgres, tmp_path):
    hubs = []

    def make():
        d = tmp_path / ("hub%d" % (len(hubs) + 2))
        d.mkdir()
        h = Hub(d, deep_merge(dict(HUB_CONF), pg_conf(postgres))).start()
        hubs.append(h)
        return h
    yield make
    for h in hubs:
        h.stop()


def ok(hub, *args, **kw):
    p = hub.cli(*args, **kw)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p


def test_a_task_submitted_at_either_hub_runs_once_and_shows_at_both(fleet, postgres,
                                                                    second_hub):
    f = fleet(n=3, hub_conf=pg_conf(postgres))
    a, b = f.hub, second_hub()
    # At B, for agents that talk to A only: A hands the copies out (signed with its key).
    p = ok(b, "--json", "run", "--id", "at-b", "-t", "role=web", *cmd_line(f.marker),
           timeout=90)
    assert len(marker_pids(f.marker)) == 3
    for hub in (a, b):
        p = ok(hub, "--json", "tasks", "show", "at-b")
        assert {r["host_id"]: r["state"] for r in p.json["hosts"]} == {
            "web-1": "ok", "web-2": "ok", "web-3": "ok"}
    # At A, answered at B.
    ok(a, "run", "--no-wait", "--id", "at-a", "-t", "web-2", *cmd_line(f.marker))
    ok(b, "tasks", "wait", "at-a", timeout=60)
    assert len(marker_pids(f.marker)) == 4
    # Audit: both runs from both hubs; a token made at B is listed (and usable) at A.
    for hub in (a, b):
        p = ok(hub, "--json", "audit")
        runs = {e["target"] for e in p.json if e["action"].startswith("task")}
        assert {"at-a", "at-b"} <= runs, p.json
    tok = ok(b, "token", "create", "--operator", "--role", "viewer", "--ttl", "1h").stdout.strip()
    assert ok(a, "--json", "hosts", "ls", token=tok).json
    # Events: a host's state changed at A is seen, with its event, at B.
    ok(a, "hosts", "label", "web-3", "rack=r9")
    ok(a, "hosts", "revoke", "web-3")
    p = ok(b, "--json", "hosts", "show", "web-3")
    assert p.json["state"] == "revoked" and p.json["labels"]["rack"] == "r9"
    status, body = b.api("GET", "/api/v1/events?host=web-3")
    assert status == 200, body
    assert "revoked" in [e["kind"] for e in body["result"]], body


def grid_now():
    return int(time.time()) // 10 * 10 * 1000


def latest(hub, name, host):
    status, body = hub.api("GET", "/api/v1/metrics/latest?" + urllib.parse.urlencode(
        {"name": name, "hosts": host}))
    assert status == 200, body
    return {(s["host"], s["t"]): s["value"] for s in body["result"]["samples"]}


def raw_points(hub, name, host, t0, t1):
    status, body = hub.api("GET", "/api/v1/metrics/query?" + urllib.parse.urlencode(
        {"name": name, "hosts": host, "from": str(t0), "to": str(t1), "step": "10s"}))
    assert status == 200, body
    return [p for s in body["result"]["series"] for p in s["points"]]


def test_metrics_shipped_to_one_hub_are_read_at_the_other_and_stored_once(hub, postgres,
                                                                         second_hub):
    a = hub(conf=pg_conf(postgres))
    b = second_hub()
    tok = ok(a, "token", "create", "--enroll", "--ttl", "10m").stdout.strip()
    ag = FakeAgent(a.url, "m-1", ca=a.ca, token=tok)
    ag.enroll()
    t0 = grid_now() - 120000
    batches = [{"seq": i + 1, "t": t0 + i * 10000, "samples": [["host_load1", float(i)]]}
               for i in range(6)]
    st, r = ag.post_metrics(EPOCH, batches[:3])
    assert st == 200 and r["result"]["stored"] == 3, r
    # Read at B: its series and its latest value, within 15 s of A's answer.
    wait_for(lambda: latest(b, "host_load1", "m-1") == {("m-1", t0 + 20000): 2},
             timeout=15, what="hub B to see the samples shipped to A")
    assert [v for _, v in raw_points(b, "host_load1", "m-1", t0, t0 + 60000)] == [0, 1, 2]
    # The agent moves to B and sends the same batches again, then new ones: stored once.
    bg = FakeAgent(b.url, "m-1", ca=b.ca)
    bg.key = ag.key  # the same agent, the same key
    st, r = bg.post_metrics(EPOCH, batches[:3])
    assert st == 200, r
    assert r["result"]["stored"] == 0 and r["result"]["duplicates"] == 3, r
    st, r = bg.post_metrics(EPOCH, batches[2:])
    assert st == 200, r
    assert r["result"]["stored"] == 3 and r["result"]["duplicates"] == 1, r
    # Both hubs read each sample once, whoever stored it.
    for h in (b, a):
        wait_for(lambda: [v for _, v in raw_points(h, "host_load1", "m-1", t0, t0 + 60000)]
                 == [0, 1, 2, 3, 4, 5], timeout=15, what="six samples at every hub")
    wait_for(lambda: latest(a, "host_load1", "m-1") == {("m-1", t0 + 50000): 5}, timeout=15,
             what="hub A to see the latest sample shipped to B")
    # And back to A: what B stored is a duplicate there too.
    st, r = ag.post_metrics(EPOCH, batches[3:])
    assert st == 200 and r["result"]["duplicates"] == 3, r
    ag.close()
    bg.close()


def test_metrics_post_while_the_database_is_down_is_unavailable_then_stored(hub, postgres):
    h = hub(conf=pg_conf(postgres))
    tok = ok(h, "token", "create", "--enroll", "--ttl", "10m").stdout.strip()
    ag = FakeAgent(h.url, "m-2", ca=h.ca, token=tok)
    ag.enroll()
    t0 = grid_now() - 60000
    batches = [{"seq": 1, "t": t0, "samples": [["host_load1", 1.5]]}]
    postgres.pause()
    try:
        st, r = ag.post_metrics(EPOCH, batches)
        assert st == 503, (st, r)
        assert r["ok"] is False and r["error"]["code"] == "unavailable", r
        assert h.proc.poll() is None
    finally:
        postgres.resume()
    # The agent keeps the batch and sends it again: stored once the database is back.
    wait_for(lambda: ag.post_metrics(EPOCH, batches)[0] == 200, timeout=20,
             what="the hub to take the batch again")
    st, r = ag.post_metrics(EPOCH, batches)
    assert st == 200 and r["result"]["duplicates"] == 1, r
    wait_for(lambda: latest(h, "host_load1", "m-2") == {("m-2", t0): 1.5}, timeout=15,
             what="the sample")
    ag.close()
