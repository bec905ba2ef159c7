"""The agent in scale mode (hub.mode "zookeeper", docs/scale.md) against a real ZooKeeper started
by the test, with kazoo playing the hub's part in ZooKeeper (the tree, the per-host nodes and
their ACLs, the queue entries) and FakeHub the hub's HTTPS part (enrollment with the ZooKeeper
secret, results, the hub's signing key)."""
import hashlib
import json
import os
import signal
import stat
import time

import pytest

from outpost_testlib import FakeHub, kazoo_client, wait_for, zk_digest, zookeeper  # noqa: F401

kazoo_exc = pytest.importorskip("kazoo.exceptions", reason="python3-kazoo (sh scripts/deps.sh)")
kazoo_sec = pytest.importorskip("kazoo.security")
pytest.importorskip("nacl.signing", reason="python3-nacl (sh scripts/deps.sh)")

HUB_SECRET = "hub-secret-of-the-tests"
TIMEOUT_MS = 4000  # the agents' session timeout (the test ZooKeeper's tick is 1 s)


def shard(host_id):
    return hashlib.sha256(host_id.encode()).hexdigest()[:2]


def host_secret(host_id):
    return "secret-of-%s-0123456789abcdef" % host_id


def hub_all():
    return kazoo_sec.make_digest_acl("outpost-hub", HUB_SECRET, all=True)


@pytest.fixture
def zkhub(zookeeper):
    kz = kazoo_client(zookeeper.connect, "outpost-hub", HUB_SECRET)
    yield kz
    kz.stop()
    kz.close()


@pytest.fixture
def fh():
    f = FakeHub()
    yield f
    f.close()


def accept(kz, host_id):
    """What a hub does when it accepts a host (docs/scale.md, The tree)."""
    world = kazoo_sec.make_acl("world", "anyone", read=True)
    for p in ["/outpost", "/outpost/agents", "/outpost/agents/" + shard(host_id),
              "/outpost/tasks", "/outpost/hubs", "/outpost/leader"]:
        try:
            kz.create(p, acl=[hub_all(), world])
        except kazoo_exc.NodeExistsError:
            pass
    secret = host_secret(host_id)
    kz.create("/outpost/agents/%s/%s" % (shard(host_id), host_id),
              acl=[hub_all(), kazoo_sec.make_digest_acl(host_id, secret, read=True,
                                                        create=True, delete=True)])
    kz.create("/outpost/tasks/" + host_id,
              acl=[hub_all(), kazoo_sec.make_digest_acl(host_id, secret, read=True)])
    return secret


def queue(kz, host_id, signed):
    data = signed if isinstance(signed, bytes) else json.dumps(signed).encode()
    return kz.create("/outpost/tasks/%s/t-" % host_id, data, sequence=True,
                     acl=[hub_all(), kazoo_sec.make_digest_acl(host_id, host_secret(host_id),
                                                               read=True)])


def alive_path(host_id):
    return "/outpost/agents/%s/%s/alive" % (shard(host_id), host_id)


def scale_hub(fh, zookeeper):
    """The fake hub in scale mode: it hands out credentials with the ensemble's address."""
    fh.zk_connect = zookeeper.connect
    fh.zk_timeout_ms = TIMEOUT_MS
    fh.zk_hub_acl = zk_digest("outpost-hub", HUB_SECRET)


def zk_agent(agent, fh, zookeeper, host_id, start=True):
    """An agent in scale mode; ZooKeeper's address and the session timeout from the hub."""
    scale_hub(fh, zookeeper)
    fh.zk_secrets[host_id] = host_secret(host_id)
    return agent({"hub": {"url": fh.url, "host_id": host_id, "mode": "zookeeper"}},
                 start=start)


def zk_status(a):
    return a.get("/v1/health").json["result"]["hub"]["zookeeper"]


def counting_task(fh, a, host_id, task_id, **kw):
    """A task that appends a line to a file of its own: the lines say how often it ran."""
    path = os.path.join(str(a.dir), "ran-" + task_id)
    return fh.sign(fh.task(task_id, host_id, "echo ran >> %s" % path, **kw)), path


def runs(path):
    try:
        with open(path) as f:
            return len(f.read().splitlines())
    except FileNotFoundError:
        return 0


def alive_owner(kz, host_id):
    try:
        st = kz.exists(alive_path(host_id))
    except (kazoo_exc.SessionExpiredError, kazoo_exc.ConnectionLoss):
        return None  # the test's own client, after a ZooKeeper restart: it reconnects
    return st.ephemeralOwner if st else None


def wait_alive(kz, a, host_id):
    """The alive node of the agent's current session: that session's id."""
    def get():
        s = zk_status(a)
        owner = alive_owner(kz, host_id)
        return owner if s["alive"] and owner and "0x%x" % owner == s["session"] else None
    return wait_for(get, 20, what="the alive node of %s's session" % host_id)


def test_alive_node_has_version_facts_and_the_acl_of_docs(zkhub, fh, zookeeper, agent):
    accept(zkhub, "zk-alive")
    a = zk_agent(agent, fh, zookeeper, "zk-alive")
    wait_alive(zkhub, a, "zk-alive")
    data, st = zkhub.get(alive_path("zk-alive"))
    body = json.loads(data)
    assert set(body) == {"version", "facts"} and body["version"]
    assert st.ephemeralOwner != 0
    # The facts digest follows sys.facts (the first facts come at start).
    wait_for(lambda: len(json.loads(zkhub.get(alive_path("zk-alive"))[0])["facts"]) == 64,
             10, what="a facts digest")
    # Read with the host's credentials: ZooKeeper shows digest ids only to those with ADMIN.
    me = kazoo_client(zookeeper.connect, "zk-alive", host_secret("zk-alive"))
    try:
        acl, _ = me.get_acls(alive_path("zk-alive"))
    finally:
        me.stop()
        me.close()
    got = {(x.id.scheme, x.id.id, x.perms) for x in acl}
    assert got == {("digest", zk_digest("outpost-hub", HUB_SECRET), 31),
                   ("digest", zk_digest("zk-alive", host_secret("zk-alive")), 31)}
    # The credentials came by the signed GET /api/v1/agents/<id>/zk and are kept 0600.
    zj = os.path.join(a.state_dir, "zk.json")
    assert stat.S_IMODE(os.stat(zj).st_mode) == 0o600
    assert json.load(open(zj))["secret"] == host_secret("zk-alive")
    assert zk_status(a)["connect"] == zookeeper.connect and fh.zk_asks >= 1
    assert not fh.problems
    # The agent stops: its session closes and the heartbeat goes at once.
    assert a.stop() == 0
    assert zkhub.exists(alive_path("zk-alive")) is None


def test_entry_runs_once_its_result_reaches_the_hub_over_https(zkhub, fh, zookeeper, agent):
    accept(zkhub, "zk-run")
    a = zk_agent(agent, fh, zookeeper, "zk-run")
    wait_alive(zkhub, a, "zk-run")
    t1, p1 = counting_task(fh, a, "zk-run", "zk-run-1")
    queue(zkhub, "zk-run", t1)
    assert fh.final("zk-run-1")["state"] == "ok"
    # The entry stays until a hub deletes it; more entries (each a watch event) and a
    # reconnect re-read the whole queue: the first is not run again.
    t2, p2 = counting_task(fh, a, "zk-run", "zk-run-2")
    queue(zkhub, "zk-run", t2)
    assert fh.final("zk-run-2")["state"] == "ok"
    assert runs(p1) == 1 and runs(p2) == 1
    time.sleep(0.5)
    assert len([r for r in fh.results["zk-run-1"] if r["state"] != "running"]) == 1
    assert zk_status(a)["queue_entries"] == 2
    # The hub deletes an entry once it has the result; the agent forgets it.
    for name in zkhub.get_children("/outpost/tasks/zk-run"):
        zkhub.delete("/outpost/tasks/zk-run/" + name)
    wait_for(lambda: zk_status(a)["queue_entries"] == 0, 10, what="the queue forgotten")


def test_agent_before_its_nodes_reads_its_queue_when_the_hub_makes_them(zkhub, fh, zookeeper,
                                                                        agent):
    """An agent on ZooKeeper before the hub made its per-host nodes (a fleet starting with its
    hubs): its first reads fail, and the queue folder's making wakes it; it does not wait for
    its retry timer (the first task after a fleet started took 7-14 s)."""
    accept(zkhub, "zk-late-tree")  # the tree, without zk-late's nodes
    a = zk_agent(agent, fh, zookeeper, "zk-late")
    wait_for(lambda: "cannot read the task queue /outpost/tasks/zk-late: no node" in a.log(),
             20, what="the agent's first queue read to fail")
    assert "made by the hub: reading it" not in a.log()
    accept(zkhub, "zk-late")
    t1, p1 = counting_task(fh, a, "zk-late", "zk-late-1")
    queue(zkhub, "zk-late", t1)
    assert fh.final("zk-late-1")["state"] == "ok"
    assert "task queue /outpost/tasks/zk-late made by the hub: reading it" in a.log()
    wait_alive(zkhub, a, "zk-late")
    assert runs(p1) == 1


def test_entry_queued_while_the_agent_is_stopped_runs_when_it_returns(zkhub, fh, zookeeper,
                                                                      agent):
    accept(zkhub, "zk-off")
    a = zk_agent(agent, fh, zookeeper, "zk-off")
    wait_alive(zkhub, a, "zk-off")
    t1, p1 = counting_task(fh, a, "zk-off", "zk-off-1")
    queue(zkhub, "zk-off", t1)
    fh.final("zk-off-1")
    assert a.stop() == 0
    t2, p2 = counting_task(fh, a, "zk-off", "zk-off-2")
    queue(zkhub, "zk-off", t2)
    time.sleep(0.5)
    assert runs(p2) == 0
    a.start()
    assert fh.final("zk-off-2")["state"] == "ok"
    # The first entry is still queued (no hub deleted it): the ledger answers it, it does
    # not run again.
    assert fh.final("zk-off-1", count=2)["state"] == "ok"
    assert runs(p1) == 1 and runs(p2) == 1


def test_zookeeper_restart_keeps_the_session_and_nothing_runs_twice(zkhub, fh, zookeeper,
                                                                    agent):
    accept(zkhub, "zk-rs")
    a = zk_agent(agent, fh, zookeeper, "zk-rs")
    session = wait_alive(zkhub, a, "zk-rs")
    t1, p1 = counting_task(fh, a, "zk-rs", "zk-rs-1")
    queue(zkhub, "zk-rs", t1)
    fh.final("zk-rs-1")
    zookeeper.restart(down_s=1)
    # kazoo reconnects by itself; the agent's session survives a restart shorter than its
    # timeout, and it reads the queue again in full.
    wait_for(lambda: zk_status(a)["reconnects"] >= 1 and zk_status(a)["connected"], 20,
             what="the agent connected again")
    assert wait_alive(zkhub, a, "zk-rs") == session
    t2, p2 = counting_task(fh, a, "zk-rs", "zk-rs-2")
    queue(zkhub, "zk-rs", t2)
    assert fh.final("zk-rs-2")["state"] == "ok"
    assert runs(p1) == 1 and runs(p2) == 1
    assert zk_status(a)["expiries"] == 0


def test_session_expiry_new_session_new_heartbeat_nothing_run_twice(zkhub, fh, zookeeper,
                                                                    agent):
    accept(zkhub, "zk-ex")
    a = zk_agent(agent, fh, zookeeper, "zk-ex")
    old = wait_alive(zkhub, a, "zk-ex")
    t1, p1 = counting_task(fh, a, "zk-ex", "zk-ex-1")
    queue(zkhub, "zk-ex", t1)
    fh.final("zk-ex-1")
    # A pause longer than the session timeout (a frozen VM, a swap storm): the server
    # expires the session and deletes its heartbeat; a task queued meanwhile waits.
    a.signal(signal.SIGSTOP)
    try:
        wait_for(lambda: zkhub.exists(alive_path("zk-ex")) is None, TIMEOUT_MS / 1000 + 10,
                 what="the session expired")
        t2, p2 = counting_task(fh, a, "zk-ex", "zk-ex-2")
        queue(zkhub, "zk-ex", t2)
    finally:
        a.signal(signal.SIGCONT)
    new = wait_alive(zkhub, a, "zk-ex")
    assert new != old
    assert fh.final("zk-ex-2")["state"] == "ok"
    assert zk_status(a)["expiries"] == 1
    assert "expired: a new session" in a.log()
    time.sleep(0.5)
    assert runs(p1) == 1 and runs(p2) == 1


def test_an_older_sessions_heartbeat_is_replaced(zkhub, fh, zookeeper, agent):
    # The agent died and came back within the session timeout: its old session's alive
    # node is still there; the new session deletes it and makes its own.
    accept(zkhub, "zk-old")
    a = zk_agent(agent, fh, zookeeper, "zk-old")
    old = wait_alive(zkhub, a, "zk-old")
    a.kill()
    a.start()
    new = wait_alive(zkhub, a, "zk-old")
    assert new != old
    assert "an older session's" in a.log()


def test_forged_retargeted_and_garbage_entries_are_refused(zkhub, fh, zookeeper, agent):
    accept(zkhub, "zk-bad")
    accept(zkhub, "zk-other")
    a = zk_agent(agent, fh, zookeeper, "zk-bad")
    wait_alive(zkhub, a, "zk-bad")
    # Signed by another key: a writable ZooKeeper is not a root shell.
    import nacl.signing
    forger = nacl.signing.SigningKey.generate()
    path = os.path.join(str(a.dir), "forged")
    queue(zkhub, "zk-bad", fh.sign(fh.task("zk-forged", "zk-bad", "touch " + path),
                                   key=forger))
    # Signed by the hub, for another host, copied into this host's queue.
    path2 = os.path.join(str(a.dir), "retargeted")
    queue(zkhub, "zk-bad", fh.sign(fh.task("zk-retarget", "zk-other", "touch " + path2)))
    # Not JSON at all, and an expired task.
    queue(zkhub, "zk-bad", b"\xff not json")
    queue(zkhub, "zk-bad", fh.sign(fh.task("zk-expired", "zk-bad", "true",
                                           expires_in_ms=-1000)))
    assert fh.final("zk-forged")["state"] == "refused"
    assert fh.final("zk-retarget")["state"] == "refused"
    assert fh.final("zk-expired")["state"] == "expired"
    wait_for(lambda: zk_status(a)["entries_bad"] == 1, 10, what="the garbage entry counted")
    assert not os.path.exists(path) and not os.path.exists(path2)
    assert "is not a signed task" in a.log()
    # Still working.
    t, p = counting_task(fh, a, "zk-bad", "zk-bad-ok")
    queue(zkhub, "zk-bad", t)
    assert fh.final("zk-bad-ok")["state"] == "ok"


def test_a_hosts_credentials_open_nothing_but_its_own_nodes(zkhub, zookeeper):
    accept(zkhub, "zk-me")
    accept(zkhub, "zk-you")
    queue(zkhub, "zk-you", b'{"task": {}, "sig": ""}')
    me = kazoo_client(zookeeper.connect, "zk-me", host_secret("zk-me"))
    try:
        assert me.get_children("/outpost/tasks/zk-me") == []
        with pytest.raises(kazoo_exc.NoAuthError):
            me.get_children("/outpost/tasks/zk-you")
        with pytest.raises(kazoo_exc.NoAuthError):
            name = zkhub.get_children("/outpost/tasks/zk-you")[0]
            me.get("/outpost/tasks/zk-you/" + name)
        with pytest.raises(kazoo_exc.NoAuthError):
            me.create(alive_path("zk-you"), b"{}", ephemeral=True)
        with pytest.raises(kazoo_exc.NoAuthError):
            me.create("/outpost/agents/%s/zk-squat" % shard("zk-you"), b"", ephemeral=True)
        with pytest.raises(kazoo_exc.NoAuthError):
            me.create("/outpost/hubs/fake", b'{"url": "http://127.0.0.1:1"}', ephemeral=True)
        with pytest.raises(kazoo_exc.NoAuthError):
            me.create("/outpost/tasks/zk-me/t-", b"{}", sequence=True)
        # Its own heartbeat it may make.
        me.create(alive_path("zk-me"), b"{}", ephemeral=True)
    finally:
        me.stop()
        me.close()


def test_results_go_to_a_live_hub_from_hubs_and_move_when_it_goes(zkhub, fh, zookeeper,
                                                                  agent):
    accept(zkhub, "zk-hubs")
    other = FakeHub()
    try:
        # A second hub of the same fleet: same signing key, same hosts.
        other.key = other.enroll_key = fh.key
        other.agent_keys = fh.agent_keys
        a = zk_agent(agent, fh, zookeeper, "zk-hubs")
        wait_alive(zkhub, a, "zk-hubs")
        zkhub.create("/outpost/hubs/hub-b", json.dumps({"id": "hub-b", "url": other.url})
                     .encode(), ephemeral=True,
                     acl=[hub_all(), kazoo_sec.make_acl("world", "anyone", read=True)])
        wait_for(lambda: a.get("/v1/health").json["result"]["hub"]["url"] == other.url, 10,
                 what="the agent on hub-b")
        t, _ = counting_task(fh, a, "zk-hubs", "zk-hubs-1")
        queue(zkhub, "zk-hubs", t)
        assert other.final("zk-hubs-1")["state"] == "ok"
        assert "zk-hubs-1" not in fh.results
        # hub-b goes: back to hub.url, the only hub left.
        zkhub.delete("/outpost/hubs/hub-b")
        wait_for(lambda: a.get("/v1/health").json["result"]["hub"]["url"] == fh.url, 10,
                 what="the agent back on hub.url")
        t, _ = counting_task(fh, a, "zk-hubs", "zk-hubs-2")
        queue(zkhub, "zk-hubs", t)
        assert fh.final("zk-hubs-2")["state"] == "ok"
        assert not fh.problems and not other.problems
    finally:
        other.close()


def test_credentials_from_a_hub_not_in_scale_mode_are_asked_again(zkhub, fh, zookeeper, agent):
    # The hub answers not_found (not in scale mode), then something unusable: the agent says
    # so, keeps asking, and has no ZooKeeper session meanwhile.
    a = agent({"hub": {"url": fh.url, "host_id": "zk-nosecret", "mode": "zookeeper"}})
    wait_for(lambda: fh.zk_asks >= 1, 20, what="credentials asked for")
    wait_for(lambda: "in the same mode as this agent" in a.log(), 10, what="the log line")
    fh.zk_secrets["zk-nosecret"] = "short:"  # not a secret it takes
    scale_hub(fh, zookeeper)
    wait_for(lambda: "the hub's ZooKeeper credentials: no valid secret" in a.log(), 30,
             what="the bad answer refused")
    h = a.get("/v1/health").json["result"]["hub"]
    assert h["zookeeper"]["credentials"] is False and h["zookeeper"]["alive"] is False
    assert not os.path.exists(os.path.join(a.state_dir, "zk.json"))


def hub_knows_scale_mode(tmp_path):
    """The real hub of this build has scale mode (zk.*) when --check-config takes a zk key."""
    from outpost_testlib import HUB_BIN
    conf = tmp_path / "probe.conf"
    conf.write_text('{"zk": {"connect": "127.0.0.1:1", "secret_file": "/nonexistent"}}')
    import subprocess
    p = subprocess.run([HUB_BIN, "--check-config", "--config", str(conf), "--state-dir",
                        str(tmp_path / "probe-state")], capture_output=True, text=True,
                       timeout=10)
    return "unknown key" not in p.stdout + p.stderr


def test_with_a_real_hub_in_scale_mode_a_task_runs_through_the_queue(zookeeper, hub, agent,
                                                                     tmp_path):
    if not hub_knows_scale_mode(tmp_path):
        pytest.skip("this build's outpost-hub has no scale mode (zk.*)")
    chroot = "/real_hub"
    kc = kazoo_client(zookeeper.connect)
    kc.ensure_path(chroot)
    kc.stop()
    sec = tmp_path / "zk.secret"
    sec.write_text(HUB_SECRET + "\n")
    os.chmod(sec, 0o600)
    h = hub({"zk": {"connect": zookeeper.connect + chroot, "secret_file": str(sec),
                    "session_timeout_ms": TIMEOUT_MS, "single_hub": True, "hub_id": "hub-a"}})
    _, body = h.api("POST", "/api/v1/tokens", {"kind": "enroll", "ttl_s": 600})
    a = agent({"hub": {"url": h.url, "host_id": "zk-real", "mode": "zookeeper",
                       "token": body["result"]["token"]}})
    kz = kazoo_client(zookeeper.connect + chroot, "outpost-hub", HUB_SECRET)
    try:
        wait_alive(kz, a, "zk-real")
        assert zk_status(a)["connect"] == zookeeper.connect + chroot
        path = os.path.join(str(a.dir), "ran-real")
        st, r = h.api("POST", "/api/v1/tasks", {"id": "zk-real-1", "target": "zk-real",
                                                "plugin": "exec", "op": "run",
                                                "args": {"script": "echo ran >> " + path},
                                                "timeout_ms": 20000})
        assert st == 200, r

        def final():
            _, b = h.api("GET", "/api/v1/tasks/zk-real-1")
            rows = b["result"].get("hosts") or []
            return rows[0] if rows and rows[0]["state"] not in ("queued", "sent",
                                                                 "running") else None
        assert wait_for(final, 30, what="the task's result at the hub")["state"] == "ok"
        assert a.get("/v1/health").json["result"]["hub"]["tasks_received"] == 1
        # The hub that stored the result deletes the entry; the agent forgets it.
        wait_for(lambda: kz.get_children("/outpost/tasks/zk-real") == [], 20,
                 what="the entry deleted by the hub")
        wait_for(lambda: zk_status(a)["queue_entries"] == 0, 10, what="the queue forgotten")
        assert runs(path) == 1
    finally:
        kz.stop()
        kz.close()


@pytest.mark.parametrize("mode,text,expect", [
    (0o644, '{"user": "zk-file", "secret": "0123456789abcdef0123"}', "must be mode 0600"),
    (0o600, "[not an object", "is damaged"),
])
def test_a_loose_or_damaged_zk_json_stops_the_agent_with_a_message(fh, zookeeper, agent,
                                                                   mode, text, expect):
    a = zk_agent(agent, fh, zookeeper, "zk-file", start=False)
    os.makedirs(a.state_dir, mode=0o700, exist_ok=True)
    path = os.path.join(a.state_dir, "zk.json")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    a.start(wait=False)
    assert a.proc.wait(15) != 0
    a.expect_dead = True
    assert expect in a.log() and "zk.json" in a.log()
