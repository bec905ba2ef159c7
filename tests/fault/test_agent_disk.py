"""Fault: the agent's disk fills up (docs/agent-link.md, A full disk). A small tmpfs holds the
agent's state directory and is filled to the last byte while the hub is up: tasks still end
and report, samples taken meanwhile still reach the hub (held in memory, bounded), the full
disk shows in /v1/health and /metrics, and when space returns the agent writes to disk again
without a restart. Skipped, with the reason, where the machine allows no mount."""
import os
import re
import time

import pytest

from outpost_testlib import fill, mount_tmpfs, wait_for

HOST = "full-01"
INTERVAL_MS = 1000


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "agentfs"
    umount = mount_tmpfs(mnt, "8m")
    yield mnt
    umount()


def hub_status(a):
    return a.get("/v1/health").result["hub"]


def task_row(h, task_id):
    _, body = h.api("GET", "/api/v1/tasks/" + task_id)
    hosts = body["result"].get("hosts") or []
    return hosts[0] if hosts else None


def final_row(h, task_id, timeout=20):
    return wait_for(lambda: (lambda r: r if r and r["state"] not in
                             ("queued", "sent", "running") else None)(task_row(h, task_id)),
                    timeout, what=lambda: "task %s to end: %s" % (task_id, task_row(h, task_id)))


def run_task(h, task_id, script):
    st, body = h.api("POST", "/api/v1/tasks", {"id": task_id, "target": HOST, "plugin": "exec",
                                               "op": "run", "args": {"script": script},
                                               "timeout_ms": 10000})
    assert st == 200, body


def query_points(h, t0, t1):
    st, body = h.api("GET", "/api/v1/metrics/query?name=host_load1&hosts=%s&from=%d&to=%d"
                     "&step=1000" % (HOST, t0, t1))
    assert st == 200, body
    series = [s for s in body["result"]["series"] if s.get("host", HOST) == HOST]
    return [p[0] for p in series[0]["points"]] if series else []


def sampled(a):
    return sorted(int(t) for t in re.findall(r"sampled \d+ host series at (\d+) in", a.log()))


def test_agent_with_a_full_disk_still_reports_and_ships(hub, agent, small_fs):
    h = hub()
    token = h.cli("token", "create", "--enroll", "--ttl", "10m").stdout.strip()
    a = agent({"log": {"level": "debug"},
               "hub": {"url": h.url, "ca": h.ca, "token": token, "host_id": HOST},
               "plugins": {"metrics": {"interval_ms": INTERVAL_MS, "statsd_listen": ""}}},
              state_dir=small_fs / "state")
    wait_for(lambda: hub_status(a)["batches_sent"] >= 2, 30, what="batches at the hub")
    run_task(h, "full-before", "echo before")
    assert final_row(h, "full-before")["state"] == "ok"

    filler = small_fs / "filler"
    fill(filler)
    t_full = int(time.time() * 1000)
    # A task while the disk is full ends and reaches the hub (whatever the ledger made of it):
    # never left 'sent'.
    run_task(h, "full-during", "echo during")
    row = final_row(h, "full-during", timeout=20)
    assert row["state"] in ("ok", "failed", "refused"), row
    st = wait_for(lambda: (lambda s: s if s["disk_full"] else None)(hub_status(a)), 15,
                  what=lambda: "disk_full in /v1/health: %s" % hub_status(a))
    assert a.metric("outpost_agent_disk_full") == 1
    time.sleep(4)  # samples taken while full
    st = hub_status(a)
    assert st["disk_full"] and st["memory"]["write_errors"] >= 1, st

    os.unlink(filler)
    t_back = int(time.time() * 1000)
    run_task(h, "full-after", "echo after")
    row = final_row(h, "full-after")
    assert row["state"] == "ok", row
    wait_for(lambda: not hub_status(a)["disk_full"], 15,
             what=lambda: "disk_full to clear: %s" % hub_status(a))
    wait_for(lambda: hub_status(a)["spool_depth"] == 0, 15, what="the spool to drain")
    assert a.metric("outpost_agent_disk_full") == 0
    # Every grid point sampled while the disk was full is at the hub, once.
    ts = [t for t in sampled(a) if t_full <= t < t_back]
    assert len(ts) >= 3, ts
    wait_for(lambda: set(ts) <= set(query_points(h, ts[0], ts[-1] + 1)), 20,
             what=lambda: "the hub to hold the samples taken while full; missing %s" %
             sorted(set(ts) - set(query_points(h, ts[0], ts[-1] + 1))))
    assert hub_status(a)["spool_dropped"] == 0
    assert a.proc.poll() is None
