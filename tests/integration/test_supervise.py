"""The supervise plugin on a real agent (docs/plugins/supervise.md), with small scripts standing
in for the foreign agents: one that crashes (restarted with a doubling backoff, each crash an
event that reaches the hub once), one that leaks memory past its limit (killed by the cgroup
where cgroup v2 has the memory controller, else by the agent's RSS check, which says so), one
whose health check hangs (restarted after the health timeout), an upgrade that works and one
that fails its health check and rolls back; bad config located, bad calls refused."""
import hashlib
import os
import signal
import time

from outpost_testlib import wait_for

FAST = {"interval_ms": 100, "metrics_s": 1}


def script(path, text):
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(0o755)
    return str(path)


def status(a, name=None):
    r = a.call("supervise", "status", {"name": name} if name else {})
    assert r.ok, r
    return {x["name"]: x for x in r.result["agents"]}


def one(a, name):
    return status(a, name)[name]


def with_hub(hub, agent, host, sup):
    h = hub()
    token = h.cli("token", "create", "--enroll", "--ttl", "10m").stdout.strip()
    a = agent({"hub": {"url": h.url, "ca": h.ca, "host_id": host, "token": token},
               "plugins": {"supervise": sup}})
    return h, a


def hub_events(h, host, kind):
    st, body = h.api("GET", "/api/v1/events?kind=%s&limit=1000&host=%s" % (kind, host))
    assert st == 200, body
    return [e for e in body["result"] if e["kind"] == kind]


def test_crashing_agent_restarts_with_backoff_and_each_crash_reaches_the_hub_once(
        hub, agent, tmp_path):
    runs = tmp_path / "runs"
    # Crashes on its first four runs, then stays up.
    crasher = script(tmp_path / "crasher", """
echo "$(date +%%s.%%N)" >> %s
n=$(wc -l < %s)
if [ "$n" -le 4 ]; then echo "fatal: lost my config" >&2; exit 3; fi
exec sleep 300
""" % (runs, runs))
    h, a = with_hub(hub, agent, "sup-1", dict(FAST, agents=[{
        "name": "crasher", "command": [crasher], "backoff_ms": 300, "backoff_max_ms": 1200,
        "log": str(tmp_path / "crasher.log")}]))
    wait_for(lambda: one(a, "crasher")["state"] == "running" and
             one(a, "crasher")["starts"] == 5, timeout=20, what="the fifth, lasting run")
    st = one(a, "crasher")
    assert st["crashes"] == 4 and st["restarts"] == 4, st
    assert st["last_exit"]["code"] == 3, st

    # The waits double (300, 600, 1200) and stop at backoff_max_ms (1200, not 2400); each
    # run started at least its wait after the one before (plus the script's own run time).
    t = wait_for(lambda: (lambda t: len(t) == 5 and t)(
        [float(x) for x in runs.read_text().split()]), what="the fifth run's line")
    gaps = [b - a for a, b in zip(t, t[1:])]
    assert all(g >= w for g, w in zip(gaps, [0.3, 0.6, 1.2, 1.2])), gaps

    # Each crash once at the hub, with what the operator needs.
    evs = wait_for(lambda: (lambda e: len(e) >= 4 and e)(
        hub_events(h, "sup-1", "supervise.crashed")), timeout=20, what="4 crash events")
    time.sleep(1.5)  # a duplicate would come with the next batches
    evs = hub_events(h, "sup-1", "supervise.crashed")
    assert len(evs) == 4, evs
    assert all(e["data"]["agent"] == "crasher" and e["data"]["exit_code"] == 3 for e in evs)
    assert sorted(e["data"]["restart_in_ms"] for e in evs) == [300, 600, 1200, 1200], evs
    assert "crasher exited with code 3" in evs[0]["message"]
    # Its log was tailed: the "fatal" lines are events too.
    logs = hub_events(h, "sup-1", "supervise.log_error")
    assert logs and "fatal: lost my config" in logs[0]["message"], logs

    # Its state, restarts, memory and CPU reach the hub as metrics.
    def series():
        st, body = h.api("GET", "/api/v1/metrics/latest?hosts=sup-1&name=supervise_restarts_total")
        return st == 200 and [s for s in body["result"]["samples"] if s["value"] == 4]
    got = wait_for(series, timeout=20, what="supervise metrics at the hub")
    assert got[0]["labels"] == {"agent": "crasher"}, got


def test_leaking_agent_is_killed_at_its_memory_limit(agent, tmp_path):
    leaker = script(tmp_path / "leaker", """
exec python3 -c '
import time
keep = []
while True:
    keep.append(bytearray(8 << 20))
    time.sleep(0.05)
'
""")
    a = agent({"plugins": {"supervise": dict(FAST, agents=[{
        "name": "leaker", "command": [leaker], "memory_max": "64M", "backoff_ms": 5000}])}})
    st = wait_for(lambda: (lambda s: s["memory_kills"] >= 1 and "last_exit" in s and s)(
        one(a, "leaker")),
                  timeout=20, what="the leaker killed")
    lim = st["limits"]
    assert lim["memory_max"] == "64M"
    if lim["memory_held_by"] == "rss_check":
        # No cgroup v2 memory controller here: the agent says why, and its own check killed it.
        assert "RSS check" in lim["note"], lim
        assert "over memory_max" in st["last_exit"]["reason"], st
        a.wait_log("leaker used")
    else:
        assert lim["memory_held_by"] == "cgroup" and lim["cgroup"].endswith("/leaker"), lim
        assert "memory.max" in st["last_exit"]["reason"], st
    assert st["state"] in ("waiting", "stopping", "running"), st


def test_hung_health_check_restarts_the_agent(agent, tmp_path):
    sleeper = script(tmp_path / "sleeper", "exec sleep 300\n")
    hang = script(tmp_path / "hang", "exec sleep 300\n")
    a = agent({"plugins": {"supervise": dict(FAST, agents=[{
        "name": "hung", "command": [sleeper], "health": [hang], "health_interval_ms": 400,
        "health_timeout_ms": 300, "health_retries": 2, "backoff_ms": 100}])}})
    first = wait_for(lambda: one(a, "hung").get("pid"), what="it runs")
    st = wait_for(lambda: (lambda s: s["unhealthy"] >= 1 and s["state"] == "running" and
                           s.get("pid") != first and s)(one(a, "hung")),
                  timeout=15, what="a restart after the health check hung")
    assert "timed out after 300 ms" in st["last_exit"]["reason"] or \
        "timed out after 300 ms" in st["health"]["last"], st
    assert not os.path.exists("/proc/%d" % first)
    a.wait_log("failed its health check 2 times in a row")


def make_version(path, version, healthy):
    return script(path, """
case "$1" in
--version) echo "%s" ;;
--health) exit %d ;;
*) exec sleep 300 ;;
esac
""" % (version, 0 if healthy else 1))


def test_upgrade_swaps_and_a_failing_one_rolls_back(agent, tmp_path):
    binary = make_version(tmp_path / "secagent", "1.0", True)
    good = make_version(tmp_path / "secagent-2", "2.0", True)
    bad = make_version(tmp_path / "secagent-3", "3.0", False)
    a = agent({"plugins": {"supervise": dict(FAST, agents=[{
        "name": "sec", "command": [binary, "run"], "health": [binary, "--health"],
        "version": [binary, "--version"], "health_interval_ms": 500,
        "health_timeout_ms": 400, "stop_timeout_ms": 1000}])}})
    wait_for(lambda: one(a, "sec").get("version") == "1.0", what="version 1.0 runs")

    # A file other than the one named by sha256 is refused, and nothing changes.
    r = a.call("supervise", "upgrade", {"name": "sec", "source": good, "sha256": "0" * 64})
    assert r.code == "bad_args" and "sha256" in r.json["error"]["message"], r
    wait_for(lambda: one(a, "sec").get("version") == "1.0", what="1.0 runs again")

    digest = hashlib.sha256(open(good, "rb").read()).hexdigest()
    r = a.call("supervise", "upgrade", {"name": "sec", "source": good, "sha256": digest},
               id="up-2")
    assert r.ok, r
    assert r.result["from"] == "1.0" and r.result["to"] == "2.0", r.result
    assert not r.result["rolled_back"]
    assert open(binary).read() == open(good).read()
    assert open(binary + ".outpost-prev").read().count('"1.0"') == 1
    wait_for(lambda: one(a, "sec").get("version") == "2.0", what="version 2.0 runs")
    # The same call id again: the first answer, nothing done twice.
    again = a.call("supervise", "upgrade", {"name": "sec", "source": good, "sha256": digest},
                   id="up-2")
    assert again.result == r.result

    r = a.call("supervise", "upgrade", {"name": "sec", "source": bad,
                                        "health_timeout_ms": 1500})
    assert r.code == "unavailable", r
    msg = r.json["error"]["message"]
    assert "rolled back" in msg and "healthy" in msg, msg
    assert open(binary).read() == open(good).read()  # 2.0 is back in place
    st = wait_for(lambda: (lambda s: s.get("version") == "2.0" and s)(one(a, "sec")),
                  what="2.0 runs again")
    assert st["state"] == "running" and "upgrading" not in st
    a.wait_log("rolled back")


def test_restart_stop_start_and_bad_calls(agent, tmp_path):
    sleeper = script(tmp_path / "sleeper", "exec sleep 300\n")
    a = agent({"plugins": {"supervise": dict(FAST, agents=[{
        "name": "app", "command": [sleeper], "stop_timeout_ms": 500}])}})
    pid = wait_for(lambda: one(a, "app").get("pid"), what="it runs")
    r = a.call("supervise", "restart", {"name": "app"})
    assert r.ok and r.result["state"] == "running" and r.result["pid"] != pid, r
    r = a.call("supervise", "stop", {"name": "app"})
    assert r.ok and r.result["state"] == "stopped", r
    time.sleep(0.5)
    assert one(a, "app")["state"] == "stopped"  # not restarted behind the operator's back
    r = a.call("supervise", "start", {"name": "app"})
    assert r.ok and r.result["state"] == "running", r

    assert a.call("supervise", "restart", {"name": "nope"}).code == "not_found"
    assert a.call("supervise", "status", {"name": "nope"}).code == "not_found"
    assert a.call("supervise", "restart", {}).code == "bad_args"
    assert a.call("supervise", "restart", {"name": "app", "now": True}).code == "bad_args"
    r = a.call("supervise", "upgrade", {"name": "app", "source": "relative/file"})
    assert r.code == "bad_args", r
    r = a.call("supervise", "upgrade", {"name": "app", "source": str(tmp_path / "absent")})
    assert r.code == "not_found", r
    assert one(a, "app")["state"] == "running"  # the failed upgrade left it running
    r = a.call("supervise", "upgrade", {"name": "app", "source": sleeper, "sha256": "xyz"})
    assert r.code == "bad_args", r


def test_bad_config_is_located_and_keeps_nothing_half_applied(agent, tmp_path):
    sleeper = script(tmp_path / "sleeper", "exec sleep 300\n")
    good = {"name": "app", "command": [sleeper]}
    cases = [
        ([good, {"name": "b", "command": [sleeper], "memory_max": "lots"}],
         "plugins.supervise.agents[1].memory_max: must be bytes"),
        ([dict(good, colour="red")], "plugins.supervise: unknown key 'agents[0].colour'"),
        ([{"name": "app"}], "plugins.supervise.agents[0].command: required"),
        ([good, good], "plugins.supervise.agents[1].name: 'app' is also agents[0]'s name"),
        ([dict(good, restart="sometimes")], "plugins.supervise.agents[0].restart: always,"),
        ([dict(good, backoff_ms=0)], "'agents[0].backoff_ms' must be between 10 and"),
        ([dict(good, cpu_max="fast")], "plugins.supervise.agents[0].cpu_max: must be a share"),
    ]
    a = agent({"plugins": {"supervise": {"agents": cases[0][0]}}})
    for agents, want in cases:
        a.reconfigure({"plugins": {"supervise": dict(FAST, agents=agents)}})
        a.signal(signal.SIGHUP)
        wait_for(lambda: want in (a.call("supervise", "status").result.get("config_error") or ""),
                 timeout=10, what=want)
        assert want in a.log()
    # Nothing ran from a bad section; a good one then starts its agent.
    assert status(a) == {}
    a.reconfigure({"plugins": {"supervise": dict(FAST, agents=[good])}})
    a.signal(signal.SIGHUP)
    wait_for(lambda: status(a).get("app", {}).get("state") == "running",
             what="the fixed config applied")
    assert "config_error" not in a.call("supervise", "status").result


def test_reload_starts_stops_and_restarts_what_changed(agent, tmp_path):
    sleeper = script(tmp_path / "sleeper", "exec sleep 300\n")
    keep = {"name": "keep", "command": [sleeper]}
    change = {"name": "change", "command": [sleeper]}
    gone = {"name": "gone", "command": [sleeper]}
    a = agent({"plugins": {"supervise": dict(FAST, agents=[keep, change, gone])}})
    pids = wait_for(lambda: (lambda s: len(s) == 3 and all(x.get("pid") for x in s.values())
                             and {n: x["pid"] for n, x in s.items()})(status(a)),
                    what="three agents running")
    a.reconfigure({"plugins": {"supervise": dict(FAST, agents=[
        keep, dict(change, env=["MODE=new"]), {"name": "new", "command": [sleeper]}])}})
    a.signal(signal.SIGHUP)
    st = wait_for(lambda: (lambda s: set(s) == {"keep", "change", "new"} and
                           all(x["state"] == "running" for x in s.values()) and
                           s["change"]["pid"] != pids["change"] and s)(status(a)),
                  timeout=15, what="the new section applied")
    assert st["keep"]["pid"] == pids["keep"] and st["keep"]["starts"] == 1, st
    wait_for(lambda: not os.path.exists("/proc/%d" % pids["gone"]) or
             open("/proc/%d/stat" % pids["gone"]).read().split()[2] == "Z",
             what="the removed agent stopped")
    with open("/proc/%d/environ" % st["change"]["pid"], "rb") as f:
        assert b"MODE=new" in f.read().split(b"\0")


def test_limits_go_into_the_agents_cgroup(agent, tmp_path):
    """The cgroup v2 path, on a fake cgroup tree (this machine's own may have no memory
    controller): the agent's cgroup gets memory.max and cpu.max, the child joins it
    (writes 0 to its cgroup.procs) before it runs, and status says the cgroup holds it."""
    root = tmp_path / "cgroup"
    cg = root / "outpost-supervise" / "app"
    cg.mkdir(parents=True)
    for d in (root, root / "outpost-supervise", cg):
        (d / "cgroup.controllers").write_text("cpu memory pids\n")
        (d / "cgroup.subtree_control").write_text("")
    for f in ("memory.max", "cpu.max", "cgroup.procs"):
        (cg / f).write_text("max\n" if f != "cgroup.procs" else "")
    sleeper = script(tmp_path / "sleeper", "exec sleep 300\n")
    a = agent({"plugins": {"supervise": dict(FAST, cgroup_root=str(root), agents=[{
        "name": "app", "command": [sleeper], "memory_max": "64M", "cpu_max": "50%"}])}})
    st = wait_for(lambda: (lambda s: s.get("pid") and s)(one(a, "app")), what="it runs")
    assert st["limits"]["memory_held_by"] == "cgroup", st
    assert st["limits"]["cgroup"] == str(cg), st
    assert "note" not in st["limits"], st
    assert (cg / "memory.max").read_text() == "67108864"
    assert (cg / "cpu.max").read_text() == "50000 100000"
    assert (cg / "cgroup.procs").read_text() == "0"  # the child moved itself in
    # A parent without the controllers: skipped with the reason, the RSS check holds memory.
    (root / "outpost-supervise" / "app" / "cgroup.controllers").write_text("pids\n")
    assert a.call("supervise", "restart", {"name": "app"}).ok
    lim = one(a, "app")["limits"]
    assert lim["memory_held_by"] == "rss_check", lim
    assert "memory controller is not enabled" in lim["note"], lim
