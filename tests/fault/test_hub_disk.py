"""Fault: the hub's disk fills up while agents ship samples and tasks run. The hub keeps
answering (clear errors, no crash), the agents keep what the hub could not store (nothing
acknowledged that was not stored), and once space returns every sample taken meanwhile is
stored once. A tmpfs holds the hub's state; skipped, with the reason, where no mount is
allowed."""
import os
import re
import time

import pytest

from outpost_testlib import fill, mount_tmpfs, wait_for

HOST = "hubfull-1"


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "hubfs"
    umount = mount_tmpfs(mnt, "24m")
    yield mnt
    umount()


def sampled(a):
    return sorted(int(t) for t in re.findall(r"sampled \d+ host series at (\d+) in", a.log()))


def query_points(h, t0, t1):
    st, body = h.api("GET", "/api/v1/metrics/query?name=host_load1&hosts=%s&from=%d&to=%d"
                     "&step=1000" % (HOST, t0, t1))
    assert st == 200, body
    series = [s for s in body["result"]["series"] if s.get("host", HOST) == HOST]
    return [p[0] for p in series[0]["points"]] if series else []


def test_hub_with_a_full_disk_loses_no_sample(hub, agent, small_fs):
    h = hub({"state_dir": str(small_fs / "state")}, start=False)
    h.state = small_fs / "state"
    h.start()
    token = h.cli("token", "create", "--enroll", "--ttl", "10m").stdout.strip()
    a = agent({"log": {"level": "debug"},
               "hub": {"url": h.url, "ca": h.ca, "token": token, "host_id": HOST},
               "plugins": {"metrics": {"interval_ms": 1000, "statsd_listen": ""}}})
    wait_for(lambda: a.get("/v1/health").result["hub"]["batches_sent"] >= 2, 30,
             what="batches at the hub")
    filler = small_fs / "filler"
    fill(filler)
    t_full = int(time.time() * 1000)
    time.sleep(4)
    # The hub still answers, with the envelope, and is still running.
    st, body = h.api("GET", "/api/v1/health", token="")
    assert st == 200, body
    st, body = h.api("POST", "/api/v1/tasks", {"id": "hubfull-t", "target": HOST,
                                               "plugin": "exec", "op": "run",
                                               "args": {"script": "true"}})
    assert (st == 200) or (isinstance(body, dict) and body.get("ok") is False), (st, body)
    assert h.proc.poll() is None, h.log()
    os.unlink(filler)
    t_back = int(time.time() * 1000)
    wait_for(lambda: a.get("/v1/health").result["hub"]["spool_depth"] == 0, 60,
             what="the agent's spool to drain")
    ts = [t for t in sampled(a) if t_full <= t < t_back]
    assert len(ts) >= 3, ts
    wait_for(lambda: set(ts) <= set(query_points(h, ts[0], ts[-1] + 1)), 30,
             what=lambda: "the samples taken while the hub's disk was full; missing %s" %
             sorted(set(ts) - set(query_points(h, ts[0], ts[-1] + 1))))
    st = a.get("/v1/health").result["hub"]
    assert st["spool_dropped"] == 0 and st["batches_rejected"] == 0, st
