"""Scale mode, the hub's side (docs/scale.md): a real outpost-hub against a private ZooKeeper
(one per module). kazoo plays the other parties: a hub (the outpost-hub digest) and agents
(each with the digest the hub hands it), and FakeAgent does the agent's signed HTTPS.
Every test works under a chroot of its own, so that the tests of one server do not meet."""
import base64
import hashlib
import json
import os
import time

import pytest

from fakeagent import FakeAgent
from outpost_testlib import Hub, canonical, kazoo_client, wait_for, zk_digest

SECRET = "hubs-shared-secret-for-tests-0123"
TIMEOUT_MS = 4000  # the server's tickTime is 1000: 2-20 s allowed


def shard(host):
    return hashlib.sha256(host.encode()).hexdigest()[:2]


@pytest.fixture
def zkconf(zookeeper, tmp_path, request):
    """The zk section of a hub's config, under a chroot of this test's own."""
    chroot = "/" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:60]
    c = kazoo_client(zookeeper.connect)
    c.ensure_path(chroot)
    c.stop()
    sec = tmp_path / "zk.secret"
    sec.write_text(SECRET + "\n")
    os.chmod(sec, 0o600)
    return {"connect": zookeeper.connect + chroot, "secret_file": str(sec),
            "session_timeout_ms": TIMEOUT_MS}


@pytest.fixture
def hubs(tmp_path, request):
    """make(conf, name) starts a hub in tmp_path/name; all stopped (or killed) afterwards."""
    made = []

    def make(conf, name="a"):
        d = tmp_path / name
        d.mkdir()
        h = Hub(d, conf)
        made.append(h)
        return h.start()

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for h in made:
        if failed:
            print("---- hub log %s ----\n%s" % (h.dir, h.log()))
        if h.proc and h.proc.poll() is None:
            h.stop()


def single(zkconf, **more):
    zk = dict(zkconf, single_hub=True, hub_id="hub-a")
    return deep({"agents": {"beat_ms": 500, "missed_beats": 4}, "zk": zk}, more)


def deep(a, b):
    for k, v in b.items():
        a[k] = deep(a.get(k, {}), v) if isinstance(v, dict) else v
    return a


def zk_status(h):
    st, r = h.api("GET", "/api/v1/health", token="")
    assert st == 200, r
    return r["result"].get("zk")


def enroll(h, host):
    tok = h.cli("token", "create", "--enroll", "--ttl", "10m").stdout.strip()
    a = FakeAgent(h.url, host, ca=h.ca, token=tok)
    return a, a.enroll()["result"]


def credentials(a):
    st, r = a.request("GET", "/api/v1/agents/%s/zk" % a.host_id)
    assert st == 200, r
    return r["result"]


def host_state(h, host):
    st, r = h.api("GET", "/api/v1/hosts/" + host)
    assert st == 200, r
    return r["result"]["state"]


def test_hub_registers_makes_the_tree_and_leads(zkconf, hubs):
    h = hubs(single(zkconf))
    wait_for(lambda: (zk_status(h) or {}).get("leader"), what="the only hub to lead")
    hk = kazoo_client(zkconf["connect"], "outpost-hub", SECRET)
    try:
        assert sorted(hk.get_children("/outpost")) == ["agents", "hubs", "leader", "tasks"]
        assert len(hk.get_children("/outpost/agents")) == 256
        data, stat = hk.get("/outpost/hubs/hub-a")
        assert json.loads(data) == {"id": "hub-a", "url": h.url}
        assert stat.ephemeralOwner != 0
        assert len(hk.get_children("/outpost/leader")) == 1
        # Anyone reads the folders and the hub list; only the hubs' digest writes.
        acl = {(a.id.scheme, a.id.id, a.perms) for a in hk.get_acls("/outpost/hubs")[0]}
        assert acl == {("digest", zk_digest("outpost-hub", SECRET), 31),
                       ("world", "anyone", 1)}
    finally:
        hk.stop()
    # Another start finds the tree there (idempotent) and registers again.
    h.stop()
    h.start()
    wait_for(lambda: (zk_status(h) or {}).get("leader"), what="the hub to lead again")


def test_agent_credentials_open_only_its_own_nodes(zkconf, hubs):
    from kazoo.exceptions import NoAuthError
    from kazoo.security import make_digest_acl
    h = hubs(single(zkconf))
    a, ans = enroll(h, "web-1")
    b, _ = enroll(h, "web-2")
    # The enrollment answer says where ZooKeeper is, never a secret (it is not signed).
    assert ans["zk"] == {"connect": zkconf["connect"], "session_timeout_ms": TIMEOUT_MS}
    ca, cb = credentials(a), credentials(b)
    assert ca["user"] == "web-1" and len(ca["secret"]) == 64 and ca["secret"] != cb["secret"]
    assert ca["connect"] == zkconf["connect"]
    assert ca["hub_acl"] == zk_digest("outpost-hub", SECRET)
    assert credentials(a) == ca  # asking again: the same (derived, not drawn anew)
    hk = kazoo_client(zkconf["connect"], "outpost-hub", SECRET)
    ka = kazoo_client(zkconf["connect"], "web-1", ca["secret"])
    try:
        wait_for(lambda: marked(hk, "web-2"), what="web-2's nodes")
        acl = {(x.id.scheme, x.id.id, x.perms) for x in hk.get_acls("/outpost/tasks/web-1")[0]}
        assert acl == {("digest", zk_digest("outpost-hub", SECRET), 31),
                       ("digest", zk_digest("web-1", ca["secret"]), 1)}
        mine = "/outpost/agents/%s/web-1" % shard("web-1")
        theirs = "/outpost/agents/%s/web-2" % shard("web-2")
        own_acl = [make_digest_acl("web-1", ca["secret"], all=True)]
        # Its own: the alive node, reading its queue.
        ka.create(mine + "/alive", b'{"version":"t"}', acl=own_acl, ephemeral=True)
        assert ka.get_children("/outpost/tasks/web-1") == []
        # Nobody else's queue, heartbeat or name; nothing of the hubs'.
        for what, call in [
            ("read web-2's queue", lambda: ka.get_children("/outpost/tasks/web-2")),
            ("write web-2's queue", lambda: ka.create("/outpost/tasks/web-2/t-", b"{}",
                                                      sequence=True)),
            ("write its own queue", lambda: ka.create("/outpost/tasks/web-1/t-", b"{}",
                                                      sequence=True)),
            ("fake web-2's heartbeat", lambda: ka.create(theirs + "/alive", b"{}",
                                                         acl=own_acl, ephemeral=True)),
            ("squat a name in a shard", lambda: ka.create(
                "/outpost/agents/%s/web-3" % shard("web-3"), b"")),
            ("make a queue", lambda: ka.create("/outpost/tasks/web-3", b"")),
            ("register as a hub", lambda: ka.create("/outpost/hubs/evil", b"{}",
                                                    ephemeral=True)),
            ("remove a hub", lambda: ka.delete("/outpost/hubs/hub-a")),
            ("stand for leader", lambda: ka.create("/outpost/leader/n_", b"{}",
                                                   ephemeral=True, sequence=True)),
        ]:
            with pytest.raises(NoAuthError):
                call()
                pytest.fail("web-1's credentials could " + what)
        # web-1's secret under web-2's name opens nothing of web-2's.
        kx = kazoo_client(zkconf["connect"], "web-2", ca["secret"])
        try:
            with pytest.raises(NoAuthError):
                kx.get_children("/outpost/tasks/web-2")
        finally:
            kx.stop()
        # Revoked: its nodes go, so its credentials open nothing any more.
        st, r = h.api("POST", "/api/v1/hosts/web-2/revoke", {})
        assert st == 200, r
        wait_for(lambda: not hk.exists("/outpost/tasks/web-2") and not hk.exists(theirs),
                 what="the revoked host's nodes to go")
    finally:
        ka.stop()
        hk.stop()


def test_zk_credentials_refused_unsigned_and_outside_scale_mode(hub, zkconf, hubs):
    h = hubs(single(zkconf))
    a, _ = enroll(h, "web-1")
    st, r = a.request("GET", "/api/v1/agents/web-1/zk", signed=False)
    assert st == 401 and r["ok"] is False and r["error"]["code"] == "unauthorized"
    other = FakeAgent(h.url, "web-1", ca=h.ca)  # another key, web-1's name
    st, r = other.request("GET", "/api/v1/agents/web-1/zk")
    assert st == 401 and r["error"]["code"] == "unauthorized"
    st, r = a.request("GET", "/api/v1/agents/web-2/zk")  # another host's
    assert st in (401, 403) and r["ok"] is False
    # An embedded hub has no ZooKeeper: a clear not_found, and its enrollment answer is as
    # it always was.
    e = hub()
    a2, ans = enroll(e, "web-9")
    assert set(ans) == {"host_id", "state", "hub_pubkey"}
    st, r = a2.request("GET", "/api/v1/agents/web-9/zk")
    assert st == 404 and r["error"]["code"] == "not_found"
    assert "not in scale mode" in r["error"]["message"]
    assert "zk" not in e.api("GET", "/api/v1/health", token="")[1]["result"]


def marked(hk, host):
    """Whether host's queue folder is there and marked as of the zookeeper link."""
    return hk.exists("/outpost/tasks/" + host) and b"zookeeper" in (hk.get(
        "/outpost/tasks/" + host)[0] or b"")


def entries(hk, host):
    """[(name, parsed data)] of host's queue (an entry deleted meanwhile is left out)."""
    from kazoo.exceptions import NoNodeError
    out = []
    for name in sorted(hk.get_children("/outpost/tasks/" + host)):
        try:
            out.append((name, json.loads(hk.get("/outpost/tasks/%s/%s" % (host, name))[0])))
        except NoNodeError:
            pass
    return out


def test_task_becomes_one_signed_entry_per_zookeeper_host(zkconf, hubs):
    import nacl.signing
    h = hubs(single(zkconf))
    agents = {}
    for host in ("web-1", "web-2", "web-3"):
        agents[host], _ = enroll(h, host)
    for host in ("web-1", "web-2"):  # web-3 stays on the HTTPS link
        credentials(agents[host])
    hk = kazoo_client(zkconf["connect"], "outpost-hub", SECRET)
    try:
        wait_for(lambda: all(marked(hk, x) for x in ("web-1", "web-2")),
                 what="the queues marked")
        st, r = h.api("POST", "/api/v1/tasks", {"target": "web-[1-3]", "plugin": "sys",
                                                "op": "ping", "args": {}})
        assert st == 200, r
        tid = r["result"]["id"]
        wait_for(lambda: all(entries(hk, x) for x in ("web-1", "web-2")),
                 what="a queue entry for each zookeeper host")
        pk = nacl.signing.VerifyKey(base64.b64decode(h.api("GET", "/api/v1/health",
                                                           token="")[1]["result"]["hub_pubkey"]))
        for host in ("web-1", "web-2"):
            (name, e), = entries(hk, host)
            assert name.startswith("t-")
            assert e["task"]["task_id"] == tid and e["task"]["host_id"] == host
            assert (e["task"]["plugin"], e["task"]["op"]) == ("sys", "ping")
            pk.verify(canonical(e["task"]).encode(), base64.b64decode(e["sig"]))
        assert entries(hk, "web-3") == []
        # The HTTPS long-poll still serves a host of the HTTPS link, the same signed copy.
        st, r = agents["web-3"].request("GET", "/api/v1/agents/web-3/tasks?wait=0")
        assert st == 200 and [t["task"]["task_id"] for t in r["result"]["tasks"]] == [tid]
        # A host's result stored: its entry goes, the others' stay.
        st, r = agents["web-1"].request("POST", "/api/v1/agents/web-1/results", {
            "results": [{"task_id": tid, "state": "ok", "response": {"ok": True,
                                                                      "result": {}}}]})
        assert st == 200 and r["result"]["accepted"] == 1, r
        wait_for(lambda: entries(hk, "web-1") == [], what="web-1's entry to go")
        assert len(entries(hk, "web-2")) == 1
        # A task cancelled: its entries go.
        st, r = h.api("POST", "/api/v1/tasks", {"target": "web-1", "plugin": "sys",
                                                "op": "ping", "args": {}})
        t2 = r["result"]["id"]
        wait_for(lambda: entries(hk, "web-1"), what="the second task's entry")
        st, r = h.api("POST", "/api/v1/tasks/%s/cancel" % t2, {})
        assert st == 200 and "hosts" not in r["result"], r
        wait_for(lambda: entries(hk, "web-1") == [], what="the cancelled task's entry to go")
        # What was queued before a host took up the zookeeper link reaches its queue then.
        st, r = h.api("POST", "/api/v1/tasks", {"target": "web-3", "plugin": "sys",
                                                "op": "ping", "args": {}})
        t3 = r["result"]["id"]
        credentials(agents["web-3"])
        wait_for(lambda: [e["task"]["task_id"] for _, e in entries(hk, "web-3")] == [t3],
                 what="web-3's waiting task in its new queue")
    finally:
        hk.stop()


def last_seen(h, host):
    st, r = h.api("GET", "/api/v1/hosts/" + host)
    assert st == 200, r
    return r["result"]["last_seen_ms"]


def test_alive_node_makes_a_host_up_and_its_session_end_down(zkconf, hubs):
    h = hubs(single(zkconf))
    a, _ = enroll(h, "web-1")
    cred = credentials(a)
    # No beats: the hub calls it down after 4 x 500 ms.
    wait_for(lambda: host_state(h, "web-1") == "down", what="web-1 down without beats")
    wait_for(lambda: (zk_status(h) or {}).get("leader"), what="the hub to lead")
    from kazoo.security import make_digest_acl
    ka = kazoo_client(zkconf["connect"], "web-1", cred["secret"])
    path = "/outpost/agents/%s/web-1/alive" % shard("web-1")
    wait_for(lambda: ka.exists(os.path.dirname(path)), what="web-1's folder")
    ka.create(path, b'{"version":"t","facts":"x"}', ephemeral=True,
              acl=[make_digest_acl("web-1", cred["secret"], all=True)])
    wait_for(lambda: host_state(h, "web-1") == "up", timeout=5, what="web-1 up by its node")
    seen0 = last_seen(h, "web-1")
    time.sleep(3)  # longer than 4 beats: the node, not beats, keeps it up
    assert host_state(h, "web-1") == "up"
    # ... and its last contact: the leader writes it for the hosts it sees alive, in batches
    # a beat interval apart, so `hosts ls` shows a host's true last-seen.
    assert last_seen(h, "web-1") - seen0 >= 1000
    assert zk_status(h)["last_seen_written"] >= 2
    t0 = time.monotonic()
    ka.stop()
    ka.close()
    wait_for(lambda: host_state(h, "web-1") == "down", timeout=TIMEOUT_MS / 1000 + 2,
             what="web-1 down once its session ended")
    print("down %.2f s after the session closed" % (time.monotonic() - t0))
    st, r = h.api("GET", "/api/v1/events?host=web-1")
    kinds = [e["kind"] for e in r["result"]]
    assert kinds[:3] == ["down", "up", "down"], kinds


def test_leadership_moves_when_the_leader_dies(zkconf, hubs, postgres):
    conf = {"store": {"backend": "postgresql", "dsn": postgres.dsn}}
    a = hubs(deep(dict(conf), {"zk": dict(zkconf, hub_id="hub-a")}), "a")
    b = hubs(deep(dict(conf), {"zk": dict(zkconf, hub_id="hub-b")}), "b")
    both = (a, b)
    wait_for(lambda: all((zk_status(x) or {}).get("registered") for x in both) and
             sum(bool(zk_status(x).get("leader")) for x in both) == 1, what="one leader")
    leader = a if zk_status(a)["leader"] else b
    other = b if leader is a else a
    hk = kazoo_client(zkconf["connect"], "outpost-hub", SECRET)
    try:
        assert sorted(hk.get_children("/outpost/hubs")) == ["hub-a", "hub-b"]
        leader.proc.kill()  # no goodbye: its session must time out
        leader.proc.wait()
        t0 = time.monotonic()
        wait_for(lambda: zk_status(other)["leader"], timeout=TIMEOUT_MS / 1000 + 3,
                 what="the other hub to lead")
        took = time.monotonic() - t0
        print("leadership moved in %.2f s (session timeout %.1f s)" % (took, TIMEOUT_MS / 1000))
        assert took < TIMEOUT_MS / 1000 + 2
        assert hk.get_children("/outpost/hubs") == [other.conf["zk"]["hub_id"]]
    finally:
        hk.stop()


def test_hub_reconnects_and_stays_registered_after_a_zookeeper_restart(zookeeper, zkconf,
                                                                       hubs):
    h = hubs(single(zkconf))
    wait_for(lambda: (zk_status(h) or {}).get("leader"), what="the hub to lead")
    zookeeper.restart(down_s=1)
    wait_for(lambda: zk_status(h)["connected"] and zk_status(h)["leader"], timeout=15,
             what="the hub back on ZooKeeper, leading")
    hk = kazoo_client(zkconf["connect"], "outpost-hub", SECRET)
    try:
        assert hk.get_children("/outpost/hubs") == ["hub-a"]
        assert len(hk.get_children("/outpost/leader")) == 1
    finally:
        hk.stop()
    assert "connected to ZooKeeper" in h.log()
    assert h.log().count("connected to ZooKeeper") >= 2


def test_hub_whose_session_expired_registers_and_stands_again(zkconf, hubs):
    """A hub frozen longer than its session timeout (a long GC-like pause) finds its session
    expired when it wakes: a new session, its node and its place in the election again."""
    import signal
    h = hubs(single(zkconf))
    wait_for(lambda: (zk_status(h) or {}).get("leader"), what="the hub to lead")
    hk = kazoo_client(zkconf["connect"], "outpost-hub", SECRET)
    try:
        old = hk.exists("/outpost/hubs/hub-a").ephemeralOwner
        h.proc.send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: not hk.exists("/outpost/hubs/hub-a"),
                     timeout=TIMEOUT_MS / 1000 + 5, what="the frozen hub's node to go")
            assert hk.get_children("/outpost/leader") == []
        finally:
            h.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: hk.exists("/outpost/hubs/hub-a"), timeout=10,
                 what="the hub to register again")
        assert hk.exists("/outpost/hubs/hub-a").ephemeralOwner != old
        wait_for(lambda: zk_status(h)["leader"] and len(hk.get_children("/outpost/leader")) == 1,
                 what="the hub to lead again")
    finally:
        hk.stop()
    assert "session expired" in h.log()


def test_leader_removes_the_entries_of_expired_tasks(zkconf, hubs):
    """A task that expires before its host takes it: the leader's sweep (every 10 s) removes
    its entry, so an agent coming back later finds nothing stale to read."""
    h = hubs(single(zkconf))
    a, _ = enroll(h, "web-1")
    credentials(a)
    hk = kazoo_client(zkconf["connect"], "outpost-hub", SECRET)
    try:
        wait_for(lambda: marked(hk, "web-1"), what="web-1's queue")
        st, r = h.api("POST", "/api/v1/tasks", {"target": "web-1", "plugin": "sys",
                                                "op": "ping", "args": {},
                                                "expires_in_ms": 1000})
        assert st == 200, r
        wait_for(lambda: entries(hk, "web-1"), what="the entry")
        wait_for(lambda: entries(hk, "web-1") == [], timeout=16,
                 what="the expired task's entry to go")
    finally:
        hk.stop()


def hub_metric(h, name):
    import requests
    r = requests.get(h.url + "/metrics", headers={"Authorization": "Bearer " + h.admin_token},
                     verify=h.ca, timeout=10)
    for line in r.text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == name:
            return float(parts[1])
    raise AssertionError("no metric %s" % name)


def expiring_task(h, host):
    st, r = h.api("POST", "/api/v1/tasks", {"target": host, "plugin": "sys", "op": "ping",
                                            "args": {}, "expires_in_ms": 1000})
    assert st == 200, r
    return r["result"]["id"]


def task_state(h, tid):
    st, r = h.api("GET", "/api/v1/tasks/" + tid)
    assert st == 200, r
    return r["result"]["state"]


def test_only_the_leader_maintains_and_the_work_moves_with_it(zkconf, hubs, postgres):
    """Task expiry, rolling batches, retention and rollups run on the leading hub alone; the
    other does none of it, and takes it up when the leader dies."""
    conf = {"store": {"backend": "postgresql", "dsn": postgres.dsn}}
    a = hubs(deep(dict(conf), {"zk": dict(zkconf, hub_id="hub-a")}), "a")
    b = hubs(deep(dict(conf), {"zk": dict(zkconf, hub_id="hub-b")}), "b")
    both = (a, b)
    wait_for(lambda: sum(bool((zk_status(x) or {}).get("maintains")) for x in both) == 1,
             what="one hub maintaining")
    leader = a if zk_status(a)["maintains"] else b
    other = b if leader is a else a
    assert hub_metric(leader, "outpost_hub_maintenance_leader") == 1
    assert hub_metric(other, "outpost_hub_maintenance_leader") == 0
    enroll(leader, "web-1")  # accepted, never polls: its copies wait until they expire
    # A task made at the other hub expires by the leader's hand.
    t1 = expiring_task(other, "web-1")
    wait_for(lambda: task_state(other, t1) != "running", timeout=30, what="t1 to expire")
    expired = [hub_metric(x, "outpost_hub_tasks_expired_total") for x in (leader, other)]
    assert sum(expired) == 1, expired  # once between them
    # Unless the leadership moved meanwhile (a session lost on a saturated machine), the
    # other hub did no maintenance at all.
    if hub_metric(other, "outpost_hub_maintenance_seconds_total") == 0:
        assert expired == [1, 0]
    leader.proc.kill()  # its session times out; the other takes the lead and the work
    leader.proc.wait()
    wait_for(lambda: zk_status(other)["maintains"], timeout=TIMEOUT_MS / 1000 + 15,
             what="the other hub to maintain")
    before = hub_metric(other, "outpost_hub_tasks_expired_total")
    t2 = expiring_task(other, "web-1")
    wait_for(lambda: task_state(other, t2) != "running", timeout=30, what="t2 to expire")
    assert hub_metric(other, "outpost_hub_tasks_expired_total") == before + 1
    assert hub_metric(other, "outpost_hub_maintenance_seconds_total") > 0


def alerts_of(h):
    st, r = h.api("GET", "/api/v1/alerts")
    assert st == 200, r
    return [(a["rule"], a["host"], a["state"]) for a in r["result"]]


def test_rules_and_flows_run_on_the_leader_and_move_with_it(zkconf, hubs, postgres):
    """Two hubs on one database: rules run on the leading hub only. When the leader dies the
    other takes them over: an alert firing there is neither lost nor fired again, and a flow
    run under way goes on from its step."""
    conf = {"store": {"backend": "postgresql", "dsn": postgres.dsn},
            "rules": {"interval_s": 1}, "tasks": {"default_expiry_ms": 3000}}
    a = hubs(deep(json.loads(json.dumps(conf)), {"zk": dict(zkconf, hub_id="hub-a")}), "a")
    b = hubs(deep(json.loads(json.dumps(conf)), {"zk": dict(zkconf, hub_id="hub-b")}), "b")
    both = (a, b)
    wait_for(lambda: sum(bool((zk_status(x) or {}).get("maintains")) for x in both) == 1,
             what="one hub leading")
    leader = a if zk_status(a)["maintains"] else b
    other = b if leader is a else a
    # A host left pending: the rule holds for it at once.
    st, r = leader.api("POST", "/api/v1/enroll", {"host_id": "lone-1", "pubkey": "A" * 43 + "=",
                                                   "hostname": "lone-1"}, token="")
    assert st in (200, 202), r
    st, r = leader.api("POST", "/api/v1/rules", {"name": "pend", "condition": "pending",
                                                 "actions": [{"kind": "log"}]})
    assert st == 200, r
    wait_for(lambda: alerts_of(leader) == [("pend", "lone-1", "firing")], 20,
             what="the alert firing on the leader")
    # A flow whose steps wait on a host that never takes them: each copy expires in 3 s.
    enroll(leader, "web-1")
    st, r = leader.api("POST", "/api/v1/flows", {
        "name": "drain", "target": "web-1",
        "steps": [{"name": "s1", "command": ["true"], "on_failure": "continue"},
                  {"name": "s2", "command": ["true"], "on_failure": "continue"}]})
    assert st == 200, r
    st, r = leader.api("POST", "/api/v1/flows/drain/run", {"id": "run-1"})
    assert st == 200, r

    def run():
        st, r = other.api("GET", "/api/v1/flow-runs/run-1")
        assert st == 200, r
        return r["result"]

    wait_for(lambda: run()["task_id"] == "run-1:1", 20, what="step s1 under way")
    time.sleep(1.5)  # a slice or two more: the other hub must not have evaluated anything
    assert "rule pend firing" not in other.log()
    leader.proc.kill()  # no goodbye: its session times out and the other takes the lead
    leader.proc.wait()
    wait_for(lambda: zk_status(other)["maintains"], timeout=TIMEOUT_MS / 1000 + 15,
             what="the other hub to lead")
    wait_for(lambda: "rules: leading:" in other.log(), 10, what="the rules taken over")
    # The flow goes on from s1 (its copy expires by the new leader's hand) to s2, once each.
    done = wait_for(lambda: run() if run()["state"] != "running" else None, 40,
                    what="the run to end on the new leader")
    assert [s["step"] for s in done["history"]] == ["s1", "s2"], done
    assert done["executed"] == 2, done
    # The alert goes on firing there: not lost, not fired again.
    time.sleep(2.5)  # two cycles of the new leader
    assert alerts_of(other) == [("pend", "lone-1", "firing")]
    st, r = other.api("GET", "/api/v1/alerts/history?rule=pend")
    assert [e["kind"] for e in r["result"]].count("firing") == 1, r
    logs = leader.log() + other.log()
    assert logs.count("rules: rule pend firing on lone-1\n") == 1, logs
