"""remote_write: the samples a hub stores go on to a Prometheus-compatible receiver (here
Debian's prometheus with its remote-write receiver, on a private port and data dir), with the
metric name as __name__ and the host label; a receiver that is down never stalls ingest, and
what its bounded queue cannot hold is dropped and counted in /metrics."""
import os
import shutil
import subprocess
import sys
import time

import pytest
import requests

sys.path.insert(0, os.path.dirname(__file__))
pytest.importorskip("nacl.signing", reason="python3-nacl (sh scripts/deps.sh)")
from fakeagent import FakeAgent  # noqa: E402
from outpost_testlib import free_port, wait_for  # noqa: E402

EPOCH = "00112233445566aa"
PROMETHEUS = shutil.which("prometheus")


def enroll(hub, host_id):
    token = hub.cli("token", "create", "--enroll", "--ttl", "10m").stdout.strip()
    a = FakeAgent(hub.url, host_id, ca=hub.ca, token=token)
    a.enroll()
    return a


def hub_metric(hub, line_start):
    st, text = hub.api("GET", "/metrics")
    assert st == 200
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.split()[-1])
    raise AssertionError("no %s in /metrics" % line_start)


@pytest.fixture
def prometheus(tmp_path):
    if not PROMETHEUS:
        pytest.skip("no prometheus binary: sh scripts/deps.sh test installs Debian's prometheus")
    pdir = tmp_path / "prometheus"
    pdir.mkdir()
    (pdir / "prometheus.yml").write_text("global: {}\n")
    port = free_port()
    log = open(pdir / "prometheus.log", "wb")
    proc = subprocess.Popen([PROMETHEUS, "--config.file=%s" % (pdir / "prometheus.yml"),
                             "--storage.tsdb.path=%s" % (pdir / "data"),
                             "--web.listen-address=127.0.0.1:%d" % port,
                             "--web.enable-remote-write-receiver"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    base = "http://127.0.0.1:%d" % port

    def ready():
        try:
            return requests.get(base + "/-/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False
    try:
        wait_for(lambda: proc.poll() is None and ready(), timeout=60,
                 what=lambda: "prometheus ready; its log:\n" +
                 (pdir / "prometheus.log").read_text(errors="replace")[-3000:])
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def prom_query(base, query, t=None):
    params = {"query": query}
    if t is not None:
        params["time"] = "%.3f" % t
    r = requests.get(base + "/api/v1/query", params=params, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["data"]["result"]


def test_samples_reach_prometheus_with_name_and_host(hub, prometheus):
    h = hub({"remote_write": [{"url": prometheus + "/api/v1/write", "max_samples": 3}]})
    a = enroll(h, "web-1")
    t = int(time.time() * 1000) // 1000 * 1000 - 20000
    st, r = a.post_metrics(EPOCH, [
        {"seq": 1, "t": t, "samples": [["host_load1", 0.5], ['app_q{queue="mail \\"x\\""}', 3]]},
        {"seq": 2, "t": t + 10000, "samples": [["host_load1", 0.75],
                                               ['app_q{queue="mail \\"x\\""}', 4]]}])
    assert st == 200 and r["result"]["samples"] == 4, r
    # resent: the hub's dedupe keeps it from the receiver too
    st, r = a.post_metrics(EPOCH, [{"seq": 2, "t": t + 10000, "samples": [["host_load1", 9]]}])
    assert st == 200 and r["result"]["duplicates"] == 1, r

    got = wait_for(lambda: prom_query(prometheus, "host_load1[1m]", t / 1000 + 10) or None,
                   timeout=20, what="host_load1 at prometheus")
    assert got[0]["metric"] == {"__name__": "host_load1", "host": "web-1"}
    assert [(int(round(float(ts) * 1000)), float(v)) for ts, v in got[0]["values"]] == \
        [(t, 0.5), (t + 10000, 0.75)]
    got = wait_for(lambda: prom_query(prometheus, "app_q", t / 1000 + 10) or None,
                   timeout=20, what="app_q at prometheus")
    assert got[0]["metric"] == {"__name__": "app_q", "host": "web-1", "queue": 'mail "x"'}
    assert float(got[0]["value"][1]) == 4
    wait_for(lambda: hub_metric(h, 'outpost_hub_remote_write_samples_total{remote="0",'
                                   'outcome="sent"}') == 4, timeout=10, what="4 sent")
    assert hub_metric(h, 'outpost_hub_remote_write_samples_total{remote="0",'
                         'outcome="dropped"}') == 0
    a.close()


def test_receiver_refusing_is_not_retried(hub, prometheus):
    # A path the receiver does not serve: 404, never retried, counted as rejected.
    h = hub({"remote_write": [{"url": prometheus + "/api/v1/nowhere"}]})
    a = enroll(h, "web-2")
    t = int(time.time() * 1000) - 5000
    st, r = a.post_metrics(EPOCH, [{"seq": 1, "t": t, "samples": [["host_load1", 1]]}])
    assert st == 200, r
    wait_for(lambda: hub_metric(h, 'outpost_hub_remote_write_samples_total{remote="0",'
                                   'outcome="rejected"}') == 1, timeout=10, what="1 rejected")
    assert hub_metric(h, 'outpost_hub_remote_write_retries_total{remote="0"}') == 0
    a.close()


def test_unreachable_receiver_does_not_stall_ingest(hub):
    # A port nobody listens on: every send fails, the worker retries with backoff, the queue
    # (10 samples) fills, and the rest is dropped and counted; ingest answers as fast as ever.
    dead = free_port()
    h = hub({"remote_write": [{"url": "http://127.0.0.1:%d/api/v1/write" % dead,
                               "timeout_ms": 5000, "max_samples": 5, "queue_samples": 10}]})
    a = enroll(h, "web-3")
    t = int(time.time() * 1000) // 1000 * 1000 - 200000
    for seq in range(1, 21):
        t0 = time.monotonic()
        st, r = a.post_metrics(EPOCH, [{"seq": seq, "t": t + seq * 1000,
                                        "samples": [["host_load1", seq], ["host_load5", seq]]}])
        assert st == 200 and r["result"]["samples"] == 2, r
        assert time.monotonic() - t0 < 2, "ingest waited for the receiver"
    dropped = wait_for(lambda: hub_metric(h, 'outpost_hub_remote_write_samples_total{remote="0",'
                                             'outcome="dropped"}') or None,
                       timeout=10, what="dropped samples counted")
    queued = hub_metric(h, 'outpost_hub_remote_write_queue_samples{remote="0"}')
    assert queued <= 10 and dropped >= 40 - 10 - 5
    wait_for(lambda: hub_metric(h, 'outpost_hub_remote_write_retries_total{remote="0"}') >= 1,
             timeout=10, what="a retry")
    assert hub_metric(h, 'outpost_hub_remote_write_samples_total{remote="0",'
                         'outcome="sent"}') == 0
    # the hub's own store has every sample
    assert hub_metric(h, 'outpost_hub_metric_samples_total{outcome="stored"}') == 40
    a.close()
    h.stop()  # and stops promptly with a worker in its backoff
