"""Shipping metric batches to the hub without loss (docs/metrics.md, "Shipping to the hub" and
"Spool"): a real outpost-agent, its metrics plugin sampling every second, and a small fake hub
written here that speaks the signed protocol of docs/protocol.md (the one of test_fleet.py,
plus POST /api/v1/agents/<id>/metrics with the hub's dedupe by epoch and seq). The fake can go
down (connections dropped unanswered), lose an answer after storing, refuse a whole request
(400) or single batches. What it stored must be every batch, in order, once.

Last, the real hub stopped for a minute while the agent samples (marked slow: about 100 s):
every grid point the agent sampled is in the hub's store once, without a gap."""
import json
import os
import re
import socket
import sqlite3
import threading
import time
import urllib.parse

import pytest

from outpost_testlib import FakeHub, wait_for

INTERVAL_MS = 1000


class MetricsHub(FakeHub):
    """FakeHub with the metrics ingest route."""

    def __init__(self):
        super().__init__()
        self.down = False        # drop every connection unanswered (a hub away, a cut)
        self.stored = []         # batches stored, in the order they were stored, once each
        self.requests = []       # every metrics request as received
        self.duplicates = 0      # batches received again after they were stored
        self.high = {}           # (host, epoch) -> highest seq seen
        self.refuse_next = 0     # answer this many requests 400 (a poison request)
        self.lose_next = 0       # store, then drop the connection: the agent sends again
        self.reject_seqs = set()  # batches refused one by one ("rejected" in a 200)

    def handle(self, rq, method):
        if self.down:
            self.drop(rq)
            return
        parts = urllib.parse.urlsplit(rq.path).path.split("/")
        if method == "POST" and len(parts) == 6 and parts[5] == "metrics":
            return self.metrics(rq, parts[4])
        return super().handle(rq, method)

    @staticmethod
    def drop(rq):
        rq.close_connection = True
        try:
            rq.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def metrics(self, rq, host_id):
        n = int(rq.headers.get("Content-Length") or 0)
        body = rq.rfile.read(n) if n else b""
        if not self.check_signature(rq, "POST", host_id, body):
            return self.reply(rq, 401, code="unauthorized", message="bad signature")
        req = json.loads(body)
        with self.cond:
            self.requests.append(req)
            if self.refuse_next:
                self.refuse_next -= 1
                self.cond.notify_all()
                return self.reply(rq, 400, code="bad_json", message="poison")
            key = (host_id, req["epoch"])
            high = self.high.get(key, 0)
            stored = dups = 0
            rejected = []
            for b in req["batches"]:
                if b["seq"] <= high:
                    dups += 1
                    continue
                high = b["seq"]
                if b["seq"] in self.reject_seqs:
                    rejected.append({"seq": b["seq"], "reason": "t is too old"})
                    continue
                self.stored.append(b)
                stored += 1
            self.high[key] = high
            self.duplicates += dups
            self.cond.notify_all()
            if self.lose_next:
                self.lose_next -= 1
                self.drop(rq)
                return
        return self.reply(rq, 200, {
            "stored": stored, "duplicates": dups, "rejected": rejected,
            "samples": sum(len(b["samples"]) for b in req["batches"]), "samples_rejected": 0,
            "last_seq": req["batches"][-1]["seq"]})

    def seqs(self):
        with self.cond:
            return [b["seq"] for b in self.stored]


@pytest.fixture
def mhub():
    pytest.importorskip("nacl.signing", reason="python3-nacl (sh scripts/deps.sh)")
    h = MetricsHub()
    yield h
    h.close()


def shipping_agent(agent, mhub, hub_conf=None, name=None):
    hub = {"url": mhub.url, "host_id": "ship-1"}
    hub.update(hub_conf or {})
    return agent({"hub": hub, "plugins": {"metrics": {"interval_ms": INTERVAL_MS,
                                                      "statsd_listen": ""}}}, name=name)


def hub_status(a):
    return a.get("/v1/health").result["hub"]


def assert_in_order(mhub):
    """Every request: 1..256 batches, ascending seq, one epoch, nothing else in the body."""
    with mhub.cond:
        reqs = list(mhub.requests)
    epochs = {r["epoch"] for r in reqs}
    assert len(epochs) == 1 and len(epochs.pop()) == 16, reqs[:1]
    for r in reqs:
        assert set(r) == {"epoch", "batches"}
        seqs = [b["seq"] for b in r["batches"]]
        assert 1 <= len(seqs) <= 256 and seqs == sorted(set(seqs)), seqs


def test_batches_arrive_in_order_with_seq_t_and_samples(mhub, agent):
    a = shipping_agent(agent, mhub)
    wait_for(lambda: len(mhub.stored) >= 4, 20, what="4 batches at the hub")
    assert_in_order(mhub)
    stored = list(mhub.stored)
    assert [b["seq"] for b in stored] == list(range(1, len(stored) + 1))
    ts = [b["t"] for b in stored]
    assert all(t % INTERVAL_MS == 0 for t in ts)
    assert ts == list(range(ts[0], ts[0] + INTERVAL_MS * len(ts), INTERVAL_MS)), ts
    assert abs(ts[-1] - time.time() * 1000) < 10000
    b = stored[-1]
    assert set(b) == {"seq", "t", "samples"}
    keys = dict((k, v) for k, v in b["samples"])
    assert keys["host_load1"] >= 0
    assert keys['host_memory_bytes{kind="total"}'] > 0
    assert "metrics_series_refused_total" in keys
    # Every request was signed as docs/protocol.md says.
    assert mhub.problems == []
    st = wait_for(lambda: (lambda s: s if s["spool_depth"] == 0 else None)(hub_status(a)), 10,
                  what="an empty spool")
    assert st["batches_sent"] >= 4 and st["batches_rejected"] == 0 and st["spool_dropped"] == 0
    assert a.metric("outpost_agent_hub_batches_sent_total") >= 4
    assert a.metric("outpost_agent_hub_spool_depth") >= 0


def test_hub_away_batches_wait_and_are_replayed_in_order_once(mhub, agent):
    a = shipping_agent(agent, mhub)
    wait_for(lambda: len(mhub.stored) >= 2, 20, what="2 batches at the hub")
    # The hub goes away: the agent keeps sampling into its spool.
    mhub.down = True
    depth = wait_for(lambda: (lambda d: d if d >= 4 else None)(hub_status(a)["spool_depth"]),
                     20, what="4 batches in the spool")
    # The agent restarts while the hub is away: the spool and its seq survive.
    a.restart()
    wait_for(lambda: hub_status(a)["spool_depth"] >= depth + 2, 20,
             what="more batches in the spool after the restart")
    # The hub comes back and once stores a request whose answer is lost on the way: the
    # agent sends it again, the hub's dedupe by seq keeps one copy.
    with mhub.cond:
        mhub.lose_next = 1
        mhub.down = False
    wait_for(lambda: hub_status(a)["spool_depth"] == 0 and mhub.duplicates > 0, 90,
             what=lambda: "the spool to drain (%s, %d duplicates)" %
             (hub_status(a), mhub.duplicates))
    assert_in_order(mhub)
    seqs = mhub.seqs()
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # no gap, no duplicate
    ts = [b["t"] for b in mhub.stored]
    assert ts == sorted(set(ts)), ts
    st = hub_status(a)
    assert st["spool_dropped"] == 0 and st["batches_rejected"] == 0
    assert "lost the hub" in a.log()
    assert mhub.problems == []


def test_spool_bound_drops_the_oldest_and_counts_them(mhub, agent):
    a = shipping_agent(agent, mhub, {"spool_max_bytes": 1 << 20})
    wait_for(lambda: len(mhub.stored) >= 1, 20, what="a first batch at the hub")
    mhub.down = True
    # About 3000 series of ~140 bytes: batches of ~420 KB, two fit in the 1 MiB spool.
    for k in range(3):
        r = a.call("metrics", "push", {"metrics": [
            {"name": "app_padding_series", "value": i,
             "labels": {"instance": "pad-%d-%d" % (k, i), "filler": "x" * 80}}
            for i in range(1000)]})
        assert r.ok, r
    wait_for(lambda: hub_status(a)["spool_dropped"] >= 3, 30, what="3 batches dropped")
    st = hub_status(a)
    assert st["spool_bytes"] <= 1 << 20 and st["spool_depth"] <= 3, st
    a.wait_log("batch(es) dropped unsent: the spool holds at most 1048576 bytes")
    mhub.down = False
    wait_for(lambda: hub_status(a)["spool_depth"] == 0, 60, what="the spool to drain")
    # Counted before the hub goes down again: batches of ~420 KB made while it is down fill
    # the spool within a few intervals, and drops after the last stored seq are no gap.
    dropped = hub_status(a)["spool_dropped"]
    metric_dropped = a.metric("outpost_agent_hub_spool_dropped_total")
    mhub.down = True  # nothing new while the counts are compared
    time.sleep(0.2)
    assert_in_order(mhub)
    seqs = mhub.seqs()
    # The oldest went: one gap of exactly the dropped batches, then every later one.
    assert sorted(seqs) == seqs and len(seqs) == len(set(seqs))
    gaps = [(x, y) for x, y in zip(seqs, seqs[1:]) if y != x + 1]
    assert sum(y - x - 1 for x, y in gaps) == dropped, (seqs, dropped)
    assert metric_dropped == dropped
    # Requests stay within 1 MiB of batches (one bigger batch goes alone).
    with mhub.cond:
        for r in mhub.requests:
            size = sum(len(json.dumps(b)) for b in r["batches"])
            assert len(r["batches"]) == 1 or size <= (1 << 20) + 4096 * len(r["batches"])


def test_a_refused_request_or_batch_does_not_block_the_spool(mhub, agent):
    mhub.refuse_next = 1
    a = shipping_agent(agent, mhub)
    # The first request is refused whole (400): its batches are dropped, the next go on.
    wait_for(lambda: len(mhub.stored) >= 2, 30, what="batches after the refused request")
    with mhub.cond:
        refused = [b["seq"] for b in mhub.requests[0]["batches"]]
        mhub.reject_seqs = {mhub.stored[-1]["seq"] + 2}
    a.wait_log("metric batch(es) dropped", timeout=10)
    assert "the hub refused metrics: HTTP 400 bad_json: poison" in a.log()
    wait_for(lambda: len(mhub.stored) >= 5, 30, what="batches after a rejected one")
    a.wait_log("the hub rejected 1 metric batch(es) (e.g. seq", timeout=10)
    seqs = mhub.seqs()
    assert not set(refused) & set(seqs)
    rejected = mhub.reject_seqs.pop()
    assert rejected not in seqs
    # Nothing lost but what was refused: the seqs stored are everything else, in order.
    want = [s for s in range(1, seqs[-1] + 1) if s not in refused and s != rejected]
    assert seqs == want, (seqs, refused, rejected)
    st = hub_status(a)
    assert st["batches_rejected"] == len(refused) + 1, st
    assert a.metric("outpost_agent_hub_batches_rejected_total") == len(refused) + 1


def test_without_a_hub_nothing_is_spooled(agent):
    a = agent({"plugins": {"metrics": {"interval_ms": INTERVAL_MS, "statsd_listen": ""}}})
    a.wait_log("the agent has no hub: samples stay local (metrics.now)", timeout=5)
    assert a.call("metrics", "now", {"match": "host_load1"}).result["series"]
    db = sqlite3.connect(os.path.join(a.state_dir, "agent.db"))
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    finally:
        db.close()
    assert "spool" not in tables


# ---- the real hub ----

HOST = "ship-real"


def query_points(h, t0, t1):
    """The hub's stored host_load1 of HOST in [t0, t1), one point per 1 s step."""
    st, body = h.api("GET", "/api/v1/metrics/query?name=host_load1&hosts=%s&from=%d&to=%d"
                     "&step=1000" % (HOST, t0, t1))
    assert st == 200, body
    res = body["result"]
    assert res["resolution"] == "raw" and res["step_ms"] == 1000, res
    series = [s for s in res["series"] if s.get("host", HOST) == HOST]
    return [p[0] for p in series[0]["points"]] if series else []


def sampled(a):
    """The grid times the agent sampled (and published), from its debug log."""
    return sorted(int(t) for t in re.findall(r"sampled \d+ host series at (\d+) in", a.log()))


@pytest.mark.slow
def test_real_hub_stopped_for_a_minute_gets_every_grid_point_once(hub, agent):
    """About 100 s: the hub is stopped for 60 s while the agent keeps sampling every second,
    then restarted; the agent's spool replays what it missed."""
    h = hub()
    token = h.cli("token", "create", "--enroll", "--ttl", "10m").stdout.strip()
    a = agent({"log": {"level": "debug"},
               "hub": {"url": h.url, "ca": h.ca, "token": token, "host_id": HOST},
               "plugins": {"metrics": {"interval_ms": INTERVAL_MS, "statsd_listen": ""}}})
    wait_for(lambda: hub_status(a)["batches_sent"] >= 3, 30, what="3 batches at the hub")
    h.stop()
    time.sleep(60)
    st = hub_status(a)
    assert st["spool_depth"] >= 50 and not st["connected"], st
    h.start()
    wait_for(lambda: hub_status(a)["spool_depth"] == 0, 150,
             what=lambda: "the spool to drain: %s" % hub_status(a))
    ts = sampled(a)
    t0, t1 = ts[0], ts[-1] + INTERVAL_MS
    # The agent sampled every grid point (the test's premise, not the spool's doing) ...
    assert ts == list(range(t0, t1, INTERVAL_MS)), ts
    # ... and the hub has each of them once: one point per step, none missing.
    wait_for(lambda: query_points(h, t0, t1) == ts, 20,
             what=lambda: "the hub to hold every sample; missing %s, extra %s" % (
                 sorted(set(ts) - set(query_points(h, t0, t1))),
                 sorted(set(query_points(h, t0, t1)) - set(ts))))
    st = hub_status(a)
    assert st["spool_dropped"] == 0 and st["batches_rejected"] == 0, st
    assert st["batches_sent"] >= len(ts), (st, len(ts))
    st, text = h.api("GET", "/metrics")
    rej = re.search(r'outpost_hub_metric_batches_total\{outcome="rejected"\} (\d+)', text)
    assert rej and rej.group(1) == "0", text


def test_real_hub_parses_every_key_the_agent_makes(hub, agent):
    """The agent's keys (escaped label values, a timer's stat label, NaN-free integers and
    reals) as the real hub reads them: nothing rejected, labels back as they were pushed."""
    h = hub()
    token = h.cli("token", "create", "--enroll", "--ttl", "10m").stdout.strip()
    a = agent({"hub": {"url": h.url, "ca": h.ca, "token": token, "host_id": HOST},
               "plugins": {"metrics": {"interval_ms": INTERVAL_MS, "statsd_listen": ""}}})
    nasty = 'C:\\dir "quoted"\nline2 ünï'
    r = a.call("metrics", "push", {"metrics": [
        {"name": "app_nasty", "value": 2.5, "labels": {"path": nasty, "b": "x"}},
        {"name": "app_jobs_total", "type": "counter", "value": 3}]})
    assert r.ok, r

    def latest():
        st, body = h.api("GET", "/api/v1/metrics/latest?name=app_nasty&hosts=%s" % HOST)
        return body["result"]["samples"] if st == 200 and body["result"]["samples"] else None
    s = wait_for(latest, 30, what="app_nasty at the hub")
    assert s[0]["labels"] == {"path": nasty, "b": "x"} and s[0]["value"] == 2.5, s
    wait_for(lambda: hub_status(a)["batches_sent"] >= 3, 30, what="3 batches at the hub")
    st, text = h.api("GET", "/metrics")
    for outcome in ("rejected",):
        m = re.search(r'outpost_hub_metric_samples_total\{outcome="%s"\} (\d+)' % outcome, text)
        assert m and m.group(1) == "0", text
    m = re.search(r'outpost_hub_metric_samples_total\{outcome="stored"\} (\d+)', text)
    assert m and int(m.group(1)) > 100, text


def test_real_hub_metric_posts_stand_in_for_beats_and_a_silent_agent_goes_down(hub, agent):
    """An agent posting a batch every second to a hub that wants a sign of life every 2 s
    sends no beats of its own past the first few (before, one every 2-2.4 s): the hub keeps
    it up on its posts (and its held poll) alone, and still marks it down once it falls
    silent: its poll, which the hub counts while held, ends at the poll wait unrenewed."""
    import signal
    h = hub({"agents": {"beat_ms": 2000, "missed_beats": 3, "poll_wait_s": 4}})
    token = h.cli("token", "create", "--enroll", "--ttl", "10m").stdout.strip()
    a = agent({"log": {"level": "debug"}, "hub": {"url": h.url, "ca": h.ca, "token": token, "host_id": HOST},
               "plugins": {"metrics": {"interval_ms": INTERVAL_MS, "statsd_listen": ""}}})
    wait_for(lambda: hub_status(a)["batches_sent"] >= 3 and hub_status(a)["beats_sent"] >= 1,
             30, what="3 batches and a beat at the hub")

    def host_state():
        st, body = h.api("GET", "/api/v1/hosts/" + HOST)
        return body["result"]["state"] if st == 200 else None

    def hub_beats():
        st, text = h.api("GET", "/metrics")
        return int(re.search(r"^outpost_hub_agent_beats_total (\d+)$", text, re.M).group(1))

    time.sleep(2)  # the facts sys.facts gathers at start go out with a beat of their own
    before, hub_before, sent = hub_status(a)["beats_sent"], hub_beats(), hub_status(a)
    time.sleep(9)
    st = hub_status(a)
    assert st["beats_sent"] == before and hub_beats() == hub_before, (before, st)
    assert st["batches_sent"] >= sent["batches_sent"] + 7, (sent, st)
    assert host_state() == "up"
    # Silent (stopped, its connections open, its kernel answering): down missed_beats x
    # beat_ms (6 s) after its last request, or after its held poll ends (4 s at most).
    a.signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        wait_for(lambda: host_state() == "down", 25, what="the hub to mark the host down")
        assert time.monotonic() - t0 >= 3
    finally:
        a.signal(signal.SIGCONT)
    wait_for(lambda: host_state() == "up", 15, what="the host up again")
