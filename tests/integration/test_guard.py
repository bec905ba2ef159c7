"""The guard plugin on a real agent (docs/plugins/guard.md): a process it was told to protect
by pidfile gets its oom_score_adj, and again after it restarts; the agent's own too; cgroup v2
limits where the machine has them, and a stated reason where it does not."""
import os
import subprocess

import pytest

from outpost_testlib import wait_for


def oom_adj(pid):
    with open("/proc/%d/oom_score_adj" % pid) as f:
        return int(f.read())


def can_lower():
    """Some sandboxes refuse a negative oom_score_adj even to root (it needs
    CAP_SYS_RESOURCE, and the LSM's consent): then the tests protect with a positive value,
    the same mechanism."""
    p = subprocess.Popen(["sleep", "5"])
    try:
        with open("/proc/%d/oom_score_adj" % p.pid, "w") as f:
            f.write("-100")
        return True
    except OSError:
        return False
    finally:
        p.kill()
        p.wait()


def sleeper(pidfile):
    p = subprocess.Popen(["sleep", "300"])
    pidfile.write_text("%d\n" % p.pid)
    return p


def test_protected_process_gets_its_oom_score_adj_again_after_restart(agent, tmp_path):
    want = -700 if can_lower() else 300
    pidfile = tmp_path / "app.pid"
    p = sleeper(pidfile)
    try:
        a = agent({"plugins": {"guard": {"interval_s": 1, "oom_score_adj": want,
                                         "protect": [{"pidfile": str(pidfile),
                                                      "exe": os.path.realpath("/bin/sleep"),
                                                      "oom_score_adj": want}]}}})
        wait_for(lambda: oom_adj(p.pid) == want, timeout=5, what="the sleeper protected")
        assert oom_adj(a.proc.pid) == want
        st = a.call("guard", "status").result
        (target,) = [t for t in st["targets"] if t["target"].startswith("pidfile")]
        assert target["pids"] == [{"pid": p.pid, "oom_score_adj": want}], st
        a.wait_log("oom_score_adj of pidfile %s (pid %d) set to %d" % (pidfile, p.pid, want))

        # It restarts: a new pid in the pidfile, protected at the next rescan (1 s).
        p.kill()
        p.wait()
        p = sleeper(pidfile)
        assert oom_adj(p.pid) == 0
        wait_for(lambda: oom_adj(p.pid) == want, timeout=5, what="the restarted sleeper")

        # A command the agent runs is not protected with it (exec resets it to 0).
        r = a.call("exec", "run", {"argv": ["cat", "/proc/self/oom_score_adj"]})
        assert r.result["stdout"].strip() == "0"
    finally:
        p.kill()
        p.wait()


def test_stale_pidfile_protects_nothing(agent, tmp_path):
    pidfile = tmp_path / "gone.pid"
    other = subprocess.Popen(["sleep", "300"])
    try:
        # The pidfile names a pid that runs something else than the exe it must run.
        pidfile.write_text("%d\n" % other.pid)
        a = agent({"plugins": {"guard": {"protect": [
            {"pidfile": str(pidfile), "exe": "/usr/sbin/not-this", "oom_score_adj": 500}]}}})
        st = a.call("guard", "apply").result
        assert st["targets"][0]["pids"] == []
        assert oom_adj(other.pid) == 0
    finally:
        other.kill()
        other.wait()


def test_bad_guard_config_names_its_key(agent):
    a = agent({"plugins": {"guard": {"protect": [{"unit": "../etc", "oom_score_adj": 1}]}}})
    a.wait_log("plugins.guard.protect[0].unit: must be a systemd unit name")
    r = a.call("guard", "apply")
    assert r.status == 503 and r.code == "unavailable"
    assert r.json["error"]["message"].startswith("plugins.guard.protect[0].unit:")


def test_cgroup_limits_or_a_stated_reason(agent):
    a = agent({"plugins": {"guard": {"cgroup": {"memory_max": "2G"}}}})
    cg = a.call("guard", "status").result["cgroup"]
    if "skipped" in cg:
        # This machine cannot: the reason is what an operator reads in guard.status.
        assert len(cg["skipped"]) > 20
        pytest.skip("cgroup limits not possible here: " + cg["skipped"])
    if cg["memory.max"].startswith("skipped"):
        pytest.skip("memory controller: " + cg["memory.max"])
    with open("/sys/fs/cgroup%s/memory.max" % cg["path"]) as f:
        assert f.read().strip() == str(2 << 30)


def test_a_protection_is_an_event_at_the_hub(fleet, tmp_path):
    want = -700 if can_lower() else 300
    pidfile = tmp_path / "app.pid"
    p = sleeper(pidfile)
    try:
        f = fleet(n=0)
        a = f.add("web-1", f.token(), conf={"plugins": {"guard": {
            "interval_s": 1, "protect": [{"pidfile": str(pidfile), "oom_score_adj": want}]}}})
        f.wait_state("web-1", "up")
        wait_for(lambda: oom_adj(p.pid) == want, timeout=5, what="the sleeper protected")
        def events():
            status, body = f.hub.api("GET", "/api/v1/events?host=web-1&kind=guard&limit=100")
            assert status == 200, body
            res = body["result"]
            return [e for e in (res["events"] if isinstance(res, dict) else res)
                    if e.get("kind") == "guard.oom_adjusted"]
        (e,) = wait_for(events, what="guard.oom_adjusted at the hub")
        assert "events not handed to the hub" not in a.log()
        assert e["severity"] == "notice"
        assert e["data"]["pid"] == p.pid and e["data"]["after"] == want
        assert e["data"]["before"] == 0
    finally:
        p.kill()
        p.wait()
