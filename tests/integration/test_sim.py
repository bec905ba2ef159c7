"""outpost-sim (docs/sim.md): a few hundred virtual agents on the real agent code against a
real hub, asserting what the real agents' tests assert: every host enrolls with its own key,
a fan-out runs each task once per host with every result in, a killed group goes down and
comes back up, and metrics reach the hub with no sample lost or stored twice."""
import json
import os
import time
import urllib.parse

import pytest

from outpost_testlib import SIM_BIN, Hub, Sim, wait_for



def sanitized():
    """ASan/UBSan binaries do TLS and signatures many times slower: a smaller fleet then."""
    try:
        with open(SIM_BIN, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


N = 60 if sanitized() else 300
INTERVAL_MS = 1000
SERIES = 4
PREFIX = "sim-"


def ids(first, count):
    return ["%s%05d" % (PREFIX, i) for i in range(first + 1, first + count + 1)]


@pytest.fixture(scope="module")
def simfleet(tmp_path_factory):
    if not os.access(SIM_BIN, os.X_OK):
        pytest.skip("build outpost-sim first (ninja -C build)")
    tmp = tmp_path_factory.mktemp("simfleet")
    hub = Hub(tmp, {"agents": {"beat_ms": 1000, "missed_beats": 3}}).start()
    tok = hub.cli("token", "create", "--enroll", "--ttl", "10m", "--labels", "role=sim")
    assert tok.returncode == 0, tok.stderr
    sim = Sim(tmp, hub, tok.stdout.strip(),
              {"agents": N, "ramp_per_s": 1000, "host_prefix": PREFIX,
               "metrics": {"interval_ms": INTERVAL_MS, "series": SERIES}}).start()
    try:
        yield hub, sim
    finally:
        try:
            sim.stop()
        finally:
            hub.stop()


def hub_states(hub):
    p = hub.cli("--json", "hosts", "ls")
    assert p.returncode == 0, p.stderr
    return {h["id"]: h["state"] for h in p.json}


def wait_states(hub, want, timeout=30):
    seen = {}

    def check():
        st = hub_states(hub)
        seen.clear()
        seen.update({h: st.get(h) for h in want if st.get(h) != want[h]})
        return not seen
    wait_for(check, timeout, step=0.3,
             what=lambda: "%d hosts not in their state, e.g. %s" % (len(seen),
                                                                   list(seen.items())[:5]))


def test_every_virtual_agent_enrolls_with_its_own_key(simfleet):
    hub, sim = simfleet
    wait_states(hub, {h: "up" for h in ids(0, N)}, timeout=40)
    st = sim.status()
    assert st["states"]["running"] == N and st["links"]["enrolled_up"] == N
    keys = {(sim.state / "agents" / h / "agent.key").read_bytes() for h in ids(0, N)}
    assert len(keys) == N
    # Spread over loopback source addresses: one per agent here.
    assert len({a["source"] for a in sim.agents().values()}) == N
    # Made-up facts per host reached the registry.
    p = hub.cli("--json", "hosts", "show", PREFIX + "00007")
    assert p.returncode == 0, p.stderr
    assert "sim-00007" in json.dumps(p.json)


def test_fanout_runs_once_per_host_with_every_result(simfleet):
    hub, sim = simfleet
    wait_states(hub, {h: "up" for h in ids(0, N)}, timeout=40)
    before = {h: a["link"]["tasks_received"] for h, a in sim.agents().items()}
    t0 = time.monotonic()
    p = hub.cli("--json", "run", "-t", PREFIX + "*", "--id", "sim-fanout-1", "--", "echo",
                "hello", timeout=120)
    took = time.monotonic() - t0
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr
    rows = {r["host_id"]: r for r in p.json["hosts"]}
    assert sorted(rows) == ids(0, N)
    for h, r in rows.items():
        assert r["state"] == "ok", r
        assert r["response"]["result"]["stdout"] == "hello\n", r
    # Once per host: each agent took the task once and its ledger ran it once.
    after = sim.agents()
    assert all(after[h]["link"]["tasks_received"] - before[h] == 1 for h in rows)
    # The same id again is the same task: nothing runs twice.
    p2 = hub.cli("--json", "run", "-t", PREFIX + "*", "--id", "sim-fanout-1", "--", "echo",
                 "hello", timeout=120)
    assert p2.returncode == 0, p2.stderr
    again = sim.agents()
    assert all(again[h]["link"]["tasks_received"] == after[h]["link"]["tasks_received"]
               for h in rows)
    print("fan-out to %d virtual agents: %.2f s" % (N, took))


def test_group_kill_goes_down_and_restart_comes_back(simfleet):
    hub, sim = simfleet
    wait_states(hub, {h: "up" for h in ids(0, N)}, timeout=40)
    # "Stop 10% of them": the first 10% in host order, the same hosts on a repeat.
    r = sim.ok("POST", "/v1/agents/kill", {"percent": 10})
    assert r["changed"] == ids(0, N // 10)
    assert sim.ok("POST", "/v1/agents/kill", {"percent": 10})["changed"] == []
    want = {h: "down" for h in ids(0, N // 10)}
    want.update({h: "up" for h in ids(N // 10, N - N // 10)})
    wait_states(hub, want, timeout=20)
    assert sim.status()["states"]["off"] == N // 10
    r = sim.ok("POST", "/v1/agents/start", {"percent": 10})
    assert r["changed"] == ids(0, N // 10)
    wait_states(hub, {h: "up" for h in ids(0, N)}, timeout=20)
    lives = sim.agents()
    assert all(lives[h]["lives"] == 2 for h in ids(0, N // 10))


def test_metrics_reach_the_hub_without_loss_or_duplicate(simfleet):
    hub, sim = simfleet
    wait_states(hub, {h: "up" for h in ids(0, N)}, timeout=40)
    # Cut 10% off the network (they spool), and kill and restart another 10% (what was on
    # its way is sent again: the hub must not store it twice).
    cut, killed = ids(N // 10, N // 10), ids(2 * (N // 10), N // 10)
    assert sim.ok("POST", "/v1/agents/pause", {"hosts": cut})["changed"] == cut
    time.sleep(2.5 * INTERVAL_MS / 1000)
    assert sim.ok("POST", "/v1/agents/kill", {"hosts": killed})["changed"] == killed
    spooled = sim.agents("paused")
    assert all(a["link"]["spool_depth"] >= 2 for a in spooled.values())
    assert sim.ok("POST", "/v1/agents/start", {"hosts": cut + killed})["changed"] == cut + killed
    time.sleep(1.5 * INTERVAL_MS / 1000)
    assert sim.ok("POST", "/v1/metrics", {"sampling": False}) == {"sampling": False}

    def drained():
        st = sim.status()
        return (st["states"]["running"] == N and st["links"]["spool_depth"] == 0 and
                st["links"]["connected"] == N)
    wait_for(drained, 30, step=0.3, what=lambda: "spools to drain: %s" % sim.status())
    published = {h: a["batches"] for h, a in sim.agents().items()}
    assert all(published[h] >= 3 for h in ids(0, N))
    # Every host's sim_batch_seq holds 1, 2, ... its last batch: none lost, none twice.
    q = urllib.parse.urlencode({"name": "sim_batch_seq", "from": "-10m", "to": "now",
                                "step": "%dms" % INTERVAL_MS})
    st, j = hub.api("GET", "/api/v1/metrics/query?" + q)
    assert st == 200, j
    series = {s["host"]: [p[1] for p in s["points"]] for s in j["result"]["series"]}
    assert sorted(series) == ids(0, N)
    for h, vals in series.items():
        assert vals == list(range(1, published[h] + 1)), (h, vals, published[h])
    # And the hub's own count: every batch stored once (resends counted as duplicates).
    st, text = hub.api("GET", "/metrics", raw=None)
    if isinstance(text, dict):
        pytest.fail("hub /metrics answered JSON: %s" % text)
    stored = [ln for ln in text.splitlines()
              if ln.startswith('outpost_hub_metric_batches_total{outcome="stored"}')]
    assert stored and int(float(stored[0].split()[-1])) == sum(published.values())
    assert sim.ok("POST", "/v1/metrics", {"sampling": True}) == {"sampling": True}


def test_control_api_refuses_bad_input_and_strangers(simfleet):
    hub, sim = simfleet
    st, j = sim.api("GET", "/v1/status", token="")
    assert st == 401 and j["error"]["code"] == "unauthorized"
    st, j = sim.api("GET", "/v1/status", token="sim_wrong")
    assert st == 401 and j["error"]["code"] == "unauthorized"
    st, j = sim.api("GET", "/v1/health", headers={"Origin": "http://evil.example"})
    assert st == 403 and j["error"]["code"] == "forbidden"
    for body, code in [({}, "bad_args"), ({"percent": 0}, "bad_args"),
                       ({"percent": 101}, "bad_args"), ({"count": 0}, "bad_args"),
                       ({"count": "3"}, "bad_args"), ({"count": 1, "percent": 1}, "bad_args"),
                       ({"hosts": ["nope-1"]}, "not_found"),
                       ({"hosts": [PREFIX + "99999"]}, "not_found"),
                       ({"hosts": []}, "bad_args"), ({"count": 1, "offset": N}, "bad_args"),
                       ({"count": 1, "kill": True}, "bad_args"), ([], "bad_args")]:
        st, j = sim.api("POST", "/v1/agents/kill", body)
        assert st in (400, 404) and j["ok"] is False and j["error"]["code"] == code, (body, j)
    st, j = sim.api("POST", "/v1/agents/kill", raw="{not json")
    assert st == 400 and j["error"]["code"] == "bad_json"
    st, j = sim.api("POST", "/v1/metrics", {"sampling": "no"})
    assert st == 400 and j["error"]["code"] == "bad_args"
    st, j = sim.api("GET", "/v1/agents?state=sleepy")
    assert st == 400 and j["error"]["code"] == "bad_args"
    st, j = sim.api("GET", "/v1/nothing")
    assert st == 404 and j["ok"] is False
    # Nothing was killed by any of it.
    assert sim.status()["states"]["off"] == 0
    assert oct((sim.state / "control.token").stat().st_mode & 0o777) == "0o600"


def test_check_config_refuses_what_cannot_work(tmp_path):
    if not os.access(SIM_BIN, os.X_OK):
        pytest.skip("build outpost-sim first")
    import subprocess
    cases = [({"listen": "0.0.0.0:7090"}, "loopback"),
             ({"hub": {"url": "ftp://x"}}, "hub.url"),
             ({"hub": {}}, "hub.url"),
             ({"exec": {"mode": "maybe"}}, "exec.mode"),
             ({"metrics": {"interval_ms": 10}}, "interval_ms"),
             ({"host_prefix": "-x"}, "host_prefix"),
             ({"agents": 0}, "agents"),
             ({"hub": {"url": "https://127.0.0.1:1", "mode": "zk"}}, "hub.mode"),
             ({"zk": {"connect": "127.0.0.1:2181//x"}}, "zk.connect"),
             ({"zk": {"session_timeout_ms": 100}}, "session_timeout_ms")]
    for extra, word in cases:
        conf = {"hub": {"url": "https://127.0.0.1:1"}, "state_dir": str(tmp_path / "s")}
        for k, v in extra.items():
            if isinstance(v, dict) and isinstance(conf.get(k), dict) and v:
                conf[k].update(v)
            else:
                conf[k] = v
        path = tmp_path / "sim.conf"
        path.write_text(json.dumps(conf))
        p = subprocess.run([SIM_BIN, "--check-config", "--config", str(path)],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode != 0 and word in p.stdout + p.stderr, (extra, p.stdout, p.stderr)


def test_exec_real_mode_forks_the_command(tmp_path):
    """exec.mode "real": the real exec plugin runs what the task says, once per host."""
    if not os.access(SIM_BIN, os.X_OK):
        pytest.skip("build outpost-sim first")
    hub = Hub(tmp_path, {"agents": {"beat_ms": 1000, "missed_beats": 3}}).start()
    sim = None
    try:
        tok = hub.cli("token", "create", "--enroll", "--ttl", "10m").stdout.strip()
        sim = Sim(tmp_path, hub, tok, {"agents": 3, "host_prefix": "real-",
                                       "exec": {"mode": "real"},
                                       "metrics": {"interval_ms": 0}}).start()
        wait_states(hub, {h: "up" for h in ("real-00001", "real-00002", "real-00003")})
        p = hub.cli("--json", "run", "-t", "real-*", "--", "sh", "-c", "echo $$")
        assert p.returncode == 0, p.stderr
        pids = {r["host_id"]: r["response"]["result"]["stdout"].strip() for r in p.json["hosts"]}
        assert len(pids) == 3 and len(set(pids.values())) == 3
        assert all(v.isdigit() and int(v) != sim.proc.pid for v in pids.values())
    finally:
        if sim:
            sim.stop()
        hub.stop()
