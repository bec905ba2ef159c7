"""outpost-sim in zookeeper mode (docs/sim.md, "ZooKeeper mode"): virtual agents on the real
ZooKeeper link (link_zk.c), one ZooKeeper session each, against two real hubs on one private
PostgreSQL and one private ZooKeeper (sharing the signing key and certificate, as
docs/scale.md says). What test_sim.py asserts in HTTPS mode, asserted here: every host enrolls
with its own key and holds its own session (its own ephemeral alive node), a fan-out submitted
at either hub runs once per host with every result in, a killed group goes down at both hubs
and comes back, and metrics reach the hubs with no sample lost or stored twice."""
import hashlib
import json
import os
import shutil
import time
import urllib.parse

import pytest

from outpost_testlib import SIM_BIN, Hub, PostgreSQL, Sim, kazoo_client, wait_for

SECRET = "sim-zk-test-hubs-shared-secret-0123"
TIMEOUT_MS = 4000  # the session timeout (the test ZooKeeper's tick is 1 s: 2-20 s allowed)
INTERVAL_MS = 1000
SERIES = 3
PREFIX = "zsim-"
CHROOT = "/simzk"


def sanitized():
    """ASan binaries do TLS and signatures many times slower: a smaller fleet then."""
    try:
        with open(SIM_BIN, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


N = 30 if sanitized() else 120


def ids(first, count):
    return ["%s%05d" % (PREFIX, i) for i in range(first + 1, first + count + 1)]


def shard(host):
    return hashlib.sha256(host.encode()).hexdigest()[:2]


class Two:
    """Two hubs, one ZooKeeper, one PostgreSQL, one sim."""

    def __init__(self, tmp, zk, pg):
        self.tmp, self.zk, self.pg = tmp, zk, pg
        self.hubs = {}
        self.sim = None
        self.kz = None

    def hub_conf(self, hub_id):
        sec = self.tmp / "zk.secret"
        if not sec.exists():
            sec.write_text(SECRET + "\n")
            os.chmod(sec, 0o600)
        return {"store": {"backend": "postgresql", "dsn": self.pg.dsn},
                "agents": {"beat_ms": 500, "missed_beats": 4},
                "zk": {"connect": self.zk.connect + CHROOT, "secret_file": str(sec),
                       "session_timeout_ms": TIMEOUT_MS, "hub_id": hub_id}}

    def add_hub(self, hub_id, like=None):
        d = self.tmp / hub_id
        d.mkdir()
        h = Hub(d, self.hub_conf(hub_id))
        if like is not None:
            h.state.mkdir(mode=0o700)
            for f in ("hub.key", "hub.crt", "hub-tls.key"):
                shutil.copy(like.state / f, h.state / f)
                os.chmod(h.state / f, 0o600)
        self.hubs[hub_id] = h.start()
        return h

    def cli(self, hub_id, *args, **kw):
        p = self.hubs[hub_id].cli(*args, **kw)
        assert p.returncode == 0, "outpost %s at %s: exit %d\n%s%s" % (
            " ".join(args), hub_id, p.returncode, p.stdout[-3000:], p.stderr)
        return p

    def states(self, hub_id):
        return {h["id"]: h["state"] for h in self.cli(hub_id, "--json", "hosts", "ls").json}

    def wait_states(self, want, timeout=40):
        seen = {}

        def check():
            for x in self.hubs:
                st = self.states(x)
                seen[x] = {h: st.get(h) for h in want if st.get(h) != want[h]}
            return not any(seen.values())
        wait_for(check, timeout, step=0.3, what=lambda: "hosts not in their state: %s" % {
            x: list(v.items())[:5] for x, v in seen.items()})

    def alive_owners(self, hosts):
        """host -> the session that owns its ephemeral alive node (None: no node)."""
        calls = {h: self.kz.exists_async("/outpost/agents/%s/%s/alive" % (shard(h), h))
                 for h in hosts}
        out = {}
        for h, c in calls.items():
            st = c.get(timeout=10)
            out[h] = st.ephemeralOwner if st else None
        return out


@pytest.fixture(scope="module")
def two(zookeeper, tmp_path_factory):
    if not os.access(SIM_BIN, os.X_OK):
        pytest.skip("build outpost-sim first (ninja -C build)")
    tmp = tmp_path_factory.mktemp("simzk")
    c = kazoo_client(zookeeper.connect)
    c.ensure_path(CHROOT)
    c.stop()
    pg = PostgreSQL().start()
    t = Two(tmp, zookeeper, pg)
    try:
        a = t.add_hub("hub-a")
        t.add_hub("hub-b", like=a)
        tok = t.cli("hub-a", "token", "create", "--enroll", "--ttl", "10m").stdout.strip()
        t.sim = Sim(tmp, a, tok, {
            "agents": N, "ramp_per_s": 200, "host_prefix": PREFIX,
            "hub": {"mode": "zookeeper"}, "zk": {"session_timeout_ms": TIMEOUT_MS},
            "metrics": {"interval_ms": INTERVAL_MS, "series": SERIES}}).start()
        t.kz = kazoo_client(zookeeper.connect + CHROOT, "outpost-hub", SECRET)
        yield t
    finally:
        try:
            if t.kz:
                t.kz.stop()
            if t.sim:
                t.sim.stop()
        finally:
            for h in t.hubs.values():
                h.stop()
            pg.stop()


def all_up(t):
    t.wait_states({h: "up" for h in ids(0, N)}, timeout=60)
    wait_for(lambda: all(t.alive_owners(ids(0, N)).values()), 30, step=0.3,
             what="every virtual agent's alive node")


def test_every_virtual_agent_enrolls_and_holds_its_own_session(two):
    t = two
    all_up(t)
    st = t.sim.status()
    assert st["states"]["running"] == N and st["links"]["enrolled_up"] == N
    agents = t.sim.agents()
    assert {a["link"]["mode"] for a in agents.values()} == {"zookeeper"}
    assert all(a["link"]["zookeeper"]["connected"] and a["link"]["zookeeper"]["alive"]
               for a in agents.values())
    # One real session per virtual agent: N alive nodes, N distinct owners, and each the
    # session its agent says it holds.
    owners = t.alive_owners(ids(0, N))
    assert len(set(owners.values())) == N
    for h, a in agents.items():
        assert int(a["link"]["zookeeper"]["session"], 16) == owners[h], h
    # Each with its own key and its own ZooKeeper credentials (zk.json, 0600).
    keys = {(t.sim.state / "agents" / h / "agent.key").read_bytes() for h in ids(0, N)}
    assert len(keys) == N
    creds = set()
    for h in ids(0, N):
        p = t.sim.state / "agents" / h / "zk.json"
        assert oct(p.stat().st_mode & 0o777) == "0o600"
        creds.add(json.loads(p.read_text())["secret"])
    assert len(creds) == N
    # One agent's digest cannot write another's queue (the ACLs the real agent gets).
    from kazoo.exceptions import NoAuthError
    me, other = ids(0, 2)
    secret = json.loads((t.sim.state / "agents" / me / "zk.json").read_text())["secret"]
    kc = kazoo_client(t.zk.connect + CHROOT, me, secret)
    try:
        with pytest.raises(NoAuthError):
            kc.create("/outpost/tasks/%s/forged" % other, b"{}")
    finally:
        kc.stop()


def test_fanout_at_either_hub_runs_once_per_host(two):
    t = two
    all_up(t)
    before = {h: a["link"]["tasks_received"] for h, a in t.sim.agents().items()}
    t0 = time.monotonic()
    p = t.cli("hub-b", "--json", "run", "-t", PREFIX + "*", "--id", "zsim-fanout-1", "--",
              "echo", "hello", timeout=120)
    took = time.monotonic() - t0
    rows = {r["host_id"]: r for r in p.json["hosts"]}
    assert sorted(rows) == ids(0, N)
    for r in rows.values():
        assert r["state"] == "ok" and r["response"]["result"]["stdout"] == "hello\n", r
    after = t.sim.agents()
    assert all(after[h]["link"]["tasks_received"] - before[h] == 1 for h in rows)
    # Seen complete at the other hub too; the queue entries are gone once the results are in.
    a = t.cli("hub-a", "--json", "tasks", "show", "zsim-fanout-1").json
    assert {r["host_id"]: r["state"] for r in a["hosts"]} == {h: "ok" for h in ids(0, N)}

    def queues_empty():
        calls = [t.kz.get_children_async("/outpost/tasks/" + h) for h in ids(0, N)]
        return all(not c.get(timeout=10) for c in calls)
    wait_for(queues_empty, 20, step=0.3, what="every queue entry deleted")
    # The same id again at hub A is the same task: nothing runs twice.
    t.cli("hub-a", "--json", "run", "-t", PREFIX + "*", "--id", "zsim-fanout-1", "--", "echo",
          "hello", timeout=120)
    again = t.sim.agents()
    assert all(again[h]["link"]["tasks_received"] == after[h]["link"]["tasks_received"]
               for h in rows)
    print("fan-out to %d virtual agents through ZooKeeper: %.2f s" % (N, took))


def test_group_kill_goes_down_at_both_hubs_and_restart_comes_back(two):
    t = two
    all_up(t)
    k = N // 10
    old = t.alive_owners(ids(0, k))
    r = t.sim.ok("POST", "/v1/agents/kill", {"percent": 10})
    assert r["changed"] == ids(0, k)
    assert t.sim.ok("POST", "/v1/agents/kill", {"percent": 10})["changed"] == []
    # A killed agent's session is gone, and with it its alive node: down at both hubs.
    want = {h: "down" for h in ids(0, k)}
    want.update({h: "up" for h in ids(k, N - k)})
    t.wait_states(want, timeout=TIMEOUT_MS / 1000 + 15)
    assert set(t.alive_owners(ids(0, k)).values()) == {None}
    r = t.sim.ok("POST", "/v1/agents/start", {"percent": 10})
    assert r["changed"] == ids(0, k)
    all_up(t)
    new = t.alive_owners(ids(0, k))
    assert all(new[h] != old[h] for h in new), "a restarted agent opens a new session"
    lives = t.sim.agents()
    assert all(lives[h]["lives"] == 2 for h in ids(0, k))
    # A task after the restart still runs once on every host, the restarted ones included.
    p = t.cli("hub-a", "--json", "run", "-t", PREFIX + "*", "--id", "zsim-after-kill", "--",
              "echo", "again", timeout=120)
    assert sorted(r["host_id"] for r in p.json["hosts"] if r["state"] == "ok") == ids(0, N)


def hub_batches(hub):
    """The hub's metric batches by outcome (stored, duplicate, rejected), and its failed
    group commits (flush_failures)."""
    st, text = hub.api("GET", "/metrics", raw=None)
    assert not isinstance(text, dict), text
    out = {}
    for ln in text.splitlines():
        if ln.startswith('outpost_hub_metric_batches_total{outcome="') or \
                ln.startswith('outpost_hub_tsdb{what="flush_failures"}'):
            out[ln.split('"')[1]] = int(float(ln.split()[-1]))
    return out


def test_metrics_reach_the_hubs_without_loss_or_duplicate(two):
    t = two
    all_up(t)
    # Cut 10% off the network (their sessions close, they spool), kill and restart another
    # 10% (what was on its way is sent again: no hub may store it twice).
    cut, killed = ids(N // 10, N // 10), ids(2 * (N // 10), N // 10)
    assert t.sim.ok("POST", "/v1/agents/pause", {"hosts": cut})["changed"] == cut
    time.sleep(2.5 * INTERVAL_MS / 1000)
    assert t.sim.ok("POST", "/v1/agents/kill", {"hosts": killed})["changed"] == killed
    assert all(a["link"]["spool_depth"] >= 2 for a in t.sim.agents("paused").values())
    assert t.sim.ok("POST", "/v1/agents/start",
                    {"hosts": cut + killed})["changed"] == cut + killed
    time.sleep(1.5 * INTERVAL_MS / 1000)
    assert t.sim.ok("POST", "/v1/metrics", {"sampling": False}) == {"sampling": False}

    def drained():
        st = t.sim.status()
        return st["states"]["running"] == N and st["links"]["spool_depth"] == 0
    wait_for(drained, 40, step=0.3, what=lambda: "spools to drain: %s" % t.sim.status())
    published = {h: a["batches"] for h, a in t.sim.agents().items()}
    assert all(published[h] >= 3 for h in ids(0, N))
    q = urllib.parse.urlencode({"name": "sim_batch_seq", "from": "-10m", "to": "now",
                                "step": "%dms" % INTERVAL_MS})
    for hub in t.hubs.values():
        # Whichever hub an agent shipped to, each hub reads every host's 1, 2, ... its last
        # batch (the open chunks of the other hub reach the database within 15 s).
        seen = {}

        def complete():
            st, j = hub.api("GET", "/api/v1/metrics/query?" + q)
            assert st == 200, j
            seen.clear()
            seen.update({s["host"]: [p[1] for p in s["points"]]
                         for s in j["result"]["series"]})
            return all(seen.get(h) == list(range(1, published[h] + 1)) for h in ids(0, N))
        wait_for(complete, 30, step=0.5, what=lambda: "every batch once at %s: %s" % (
            hub.dir, [(h, seen.get(h), published[h]) for h in ids(0, N)
                      if seen.get(h) != list(range(1, published[h] + 1))][:5]))
    # The hubs' own counts: every batch stored at one hub or the other. A group commit that
    # loses the race for a host's seq mark to the other hub (an agent that moved between
    # them) fails whole: its batches were counted, are answered 503 and come again
    # (docs/sim.md, "ZooKeeper mode"). Without such a failure, each batch is counted once.
    counts = {x: hub_batches(h) for x, h in t.hubs.items()}
    stored = sum(c["stored"] for c in counts.values())
    failed = sum(c["flush_failures"] for c in counts.values())
    assert stored >= sum(published.values()), (counts, sum(published.values()))
    if failed == 0:
        assert stored == sum(published.values()), (counts, sum(published.values()))
    print("batches published %d, counted stored %d, group commits failed %d" % (
        sum(published.values()), stored, failed))
    assert t.sim.ok("POST", "/v1/metrics", {"sampling": True}) == {"sampling": True}
