"""Scale mode end to end (docs/scale.md): two real hubs on one private PostgreSQL and one private
ZooKeeper, sharing the signing key and the TLS certificate (as config.md#zookeeper says to),
and five real agents with hub.mode "zookeeper". The fleet is built once for the module (Java
and PostgreSQL take seconds to start); the tests run in order and leave it whole for the next.

Each command appends its agent's pid ($PPID of the shell) to a marker file of its task: the
lines say on which hosts it ran, and how often."""
import os
import shutil
import time

import pytest

from outpost_testlib import (AGENT_BIN, CLI_BIN, HUB_BIN, Agent, Hub, PostgreSQL, kazoo_client,
                             wait_for)

SECRET = "scale-test-hubs-shared-secret-0123"
TIMEOUT_MS = 4000  # the session timeout (the test ZooKeeper's tick is 1 s: 2-20 s allowed)
HOSTS = ["web-%d" % i for i in range(1, 6)]


class Scale:
    def __init__(self, tmp, zk, pg):
        self.tmp = tmp
        self.zk = zk
        self.pg = pg
        self.hubs = {}
        self.agents = {}
        self.pids = {}  # every pid an agent ever had -> its host id

    def hub_conf(self, hub_id):
        sec = self.tmp / "zk.secret"
        if not sec.exists():
            sec.write_text(SECRET + "\n")
            os.chmod(sec, 0o600)
        return {"store": {"backend": "postgresql", "dsn": self.pg.dsn},
                "agents": {"beat_ms": 500, "missed_beats": 4},
                "zk": {"connect": self.zk.connect + "/scale", "secret_file": str(sec),
                       "session_timeout_ms": TIMEOUT_MS, "hub_id": hub_id}}

    def add_hub(self, hub_id, like=None):
        d = self.tmp / hub_id
        d.mkdir()
        h = Hub(d, self.hub_conf(hub_id))
        if like is not None:
            # One fleet, one signing key and one certificate: copied before the first start.
            h.state.mkdir(mode=0o700)
            for f in ("hub.key", "hub.crt", "hub-tls.key"):
                shutil.copy(like.state / f, h.state / f)
                os.chmod(h.state / f, 0o600)
        self.hubs[hub_id] = h.start()
        return h

    def add_agent(self, host, token):
        a = Agent(self.tmp, host, {"hub": {"url": self.hubs["hub-a"].url,
                                           "ca": self.hubs["hub-a"].ca, "host_id": host,
                                           "token": token, "mode": "zookeeper"}})
        self.agents[host] = a
        return self.start(host)

    def start(self, host):
        a = self.agents[host].start()
        self.pids[a.proc.pid] = host
        return a

    def wait_zk(self, host):
        """Waits until the agent is on ZooKeeper with its alive node (its first connect
        waits a random 0-2 s)."""
        def get():
            z = self.agents[host].get("/v1/health").json["result"]["hub"]["zookeeper"]
            return z["connected"] and z["alive"]
        wait_for(get, 15, step=0.1, what="%s on ZooKeeper with its alive node" % host)

    def cli(self, hub_id, *args):
        p = self.hubs[hub_id].cli(*args)
        assert p.returncode == 0, "outpost %s at %s: exit %d\n%s%s" % (
            " ".join(args), hub_id, p.returncode, p.stdout, p.stderr)
        return p

    def states(self, hub_id):
        return {h["id"]: h["state"] for h in self.cli(hub_id, "--json", "hosts", "ls").json}

    def wait_states(self, want, timeout=20, hubs=("hub-a", "hub-b")):
        seen = {}

        def check():
            for x in hubs:
                seen[x] = {k: v for k, v in self.states(x).items() if k in want}
            return all(seen[x] == want for x in hubs)
        wait_for(check, timeout, step=0.2, what=lambda: "hosts %s at %s (seen %s)" %
                 (want, hubs, seen))

    def zk_status(self, hub_id):
        st, r = self.hubs[hub_id].api("GET", "/api/v1/health", token="")
        assert st == 200, r
        return r["result"]["zk"]

    def leader(self):
        def one():
            live = [x for x, h in self.hubs.items() if h.proc and h.proc.poll() is None]
            lead = [x for x in live if self.zk_status(x)["leader"]]
            return lead[0] if len(lead) == 1 else None
        return wait_for(one, 15, step=0.1, what="exactly one leading hub")

    def marker(self, task_id):
        return str(self.tmp / ("marker-" + task_id))

    def ran(self, task_id):
        """How often the task ran on each host, from its marker file."""
        counts = {}
        try:
            with open(self.marker(task_id)) as f:
                for pid in f.read().split():
                    host = self.pids.get(int(pid), "pid %s" % pid)
                    counts[host] = counts.get(host, 0) + 1
        except FileNotFoundError:
            pass
        return counts

    def submit(self, hub_id, task_id, target, *more, sleep_s=0):
        cmd = 'echo "$PPID" >> %s' % self.marker(task_id)
        if sleep_s:
            cmd += "; sleep %s" % sleep_s
        return self.cli(hub_id, "run", "--no-wait", "--id", task_id, "-t", target, *more,
                        "--", "sh", "-c", cmd)

    def rows(self, hub_id, task_id):
        t = self.cli(hub_id, "--json", "tasks", "show", task_id).json
        return {r["host_id"]: r["state"] for r in t["hosts"]}

    def wait_done(self, task_id, hosts, timeout=30, hubs=("hub-a", "hub-b")):
        want = {h: "ok" for h in hosts}
        seen = {}

        def check():
            for x in hubs:
                seen[x] = self.rows(x, task_id)
            return all(seen[x] == want for x in hubs)
        wait_for(check, timeout, step=0.2, what=lambda: "task %s ok on %s at %s (seen %s)" %
                 (task_id, hosts, hubs, seen))


@pytest.fixture(scope="module")
def scale(zookeeper, tmp_path_factory):
    for b in (AGENT_BIN, HUB_BIN, CLI_BIN):
        if not os.access(b, os.X_OK):
            pytest.skip("build the agent, the hub and the CLI first (make build)")
    kc = kazoo_client(zookeeper.connect)
    kc.ensure_path("/scale")  # the chroot must exist before the hubs start (config.md)
    kc.stop()
    pg = PostgreSQL().start()
    s = Scale(tmp_path_factory.mktemp("scale"), zookeeper, pg)
    ok = False
    try:
        a = s.add_hub("hub-a")
        s.add_hub("hub-b", like=a)
        tok = s.cli("hub-a", "token", "create", "--enroll", "--ttl", "10m").stdout.strip()
        for host in HOSTS:
            s.add_agent(host, tok)
        s.wait_states({h: "up" for h in HOSTS}, timeout=30)
        for host in HOSTS:
            s.wait_zk(host)
        ok = True
        yield s
    finally:
        bad = []
        for host, a in s.agents.items():
            if a.proc and a.proc.poll() is None:
                rc = a.stop()  # under ASan a leak or an error shows in the exit code
                if rc != 0:
                    bad.append("%s exited %r:\n%s" % (host, rc, a.log()[-5000:]))
        for x, h in s.hubs.items():
            if not ok or os.environ.get("OUTPOST_SCALE_LOGS"):
                print("---- log of %s ----\n%s" % (x, h.log()))
            if h.proc and h.proc.poll() is None:
                h.stop()
        pg.stop()
    assert not bad, "\n".join(bad)


@pytest.fixture(autouse=True)
def logs_on_failure(request, scale):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for x, h in scale.hubs.items():
            print("---- log of %s ----\n%s" % (x, h.log()[-15000:]))
        for host, a in scale.agents.items():
            print("---- log of %s ----\n%s" % (host, a.log()[-5000:]))


def test_hubs_share_key_and_certificate_and_one_leads(scale):
    a, b = scale.hubs["hub-a"], scale.hubs["hub-b"]
    ka = a.api("GET", "/api/v1/health", token="")[1]["result"]["hub_pubkey"]
    kb = b.api("GET", "/api/v1/health", token="")[1]["result"]["hub_pubkey"]
    assert ka == kb
    assert scale.leader() in ("hub-a", "hub-b")
    # Operator tokens live in the shared store: hub-a's admin token works at hub-b.
    p = b.cli("--json", "hosts", "ls", token=a.admin_token)
    assert p.returncode == 0 and sorted(x["id"] for x in p.json) == HOSTS, p.stderr
    hk = kazoo_client(scale.zk.connect + "/scale", "outpost-hub", SECRET)
    try:
        assert sorted(hk.get_children("/outpost/hubs")) == ["hub-a", "hub-b"]
    finally:
        hk.stop()
    # Every agent took up the zookeeper link (an alive node of its own session).
    for host in HOSTS:
        scale.wait_zk(host)


def test_a_task_from_each_hub_runs_once_on_every_host(scale):
    scale.submit("hub-a", "sc-from-a", "*")
    scale.submit("hub-b", "sc-from-b", "*")
    for t in ("sc-from-a", "sc-from-b"):
        scale.wait_done(t, HOSTS)
    time.sleep(1)  # a copy run twice would show by now
    for t in ("sc-from-a", "sc-from-b"):
        assert scale.ran(t) == {h: 1 for h in HOSTS}, t


def test_a_waiting_run_ends_as_soon_as_the_results_are_in_at_either_hub(scale):
    # Each agent sends its results to a hub of its choice: a `run` waiting at one hub learns
    # of the results the other stored (from the shared store), not only at its 30 s poll's end.
    for x in ("hub-a", "hub-b"):
        t0 = time.monotonic()
        p = scale.cli(x, "run", "-t", "*", "--", "true")
        took = time.monotonic() - t0
        assert "5 hosts, 5 ok" in p.stdout + p.stderr, p.stdout + p.stderr
        print("outpost run at %s took %.1f s; agents send to %s" % (x, took, sorted(
            a.get("/v1/health").json["result"]["hub"]["url"] for a in scale.agents.values())))
        assert took < 10, "outpost run at %s took %.1f s" % (x, took)


def test_a_killed_agent_is_down_at_both_hubs_within_the_session_timeout(scale):
    a = scale.agents["web-5"]
    a.proc.kill()  # SIGKILL: no goodbye, its session must time out
    a.proc.wait()
    t0 = time.monotonic()
    scale.wait_states({"web-5": "down"}, timeout=TIMEOUT_MS / 1000 + 2)
    print("web-5 down at both hubs %.2f s after SIGKILL" % (time.monotonic() - t0))
    scale.start("web-5")
    scale.wait_states({"web-5": "up"}, timeout=15)
    scale.wait_zk("web-5")


def test_a_task_queued_while_the_agent_was_stopped_runs_when_it_returns(scale):
    a = scale.agents["web-4"]
    assert a.stop() == 0
    scale.wait_states({"web-4": "down"}, timeout=10)
    scale.submit("hub-b", "sc-queued", "web-4")
    time.sleep(1)
    assert scale.ran("sc-queued") == {}
    # Written to its ZooKeeper queue, so "sent" (docs/scale.md), seen alike at the other hub.
    assert scale.rows("hub-a", "sc-queued") == {"web-4": "sent"}
    hk = kazoo_client(scale.zk.connect + "/scale", "outpost-hub", SECRET)
    try:
        assert len(hk.get_children("/outpost/tasks/web-4")) == 1
    finally:
        hk.stop()
    scale.start("web-4")
    scale.wait_zk("web-4")
    scale.wait_done("sc-queued", ["web-4"])
    assert scale.ran("sc-queued") == {"web-4": 1}


def test_the_leading_hub_killed_mid_fan_out(scale):
    lead = scale.leader()
    other = "hub-b" if lead == "hub-a" else "hub-a"
    # One host at a time, a second each: the fan-out is under way when the leader dies, and
    # the next batches are released by the hub that stays.
    scale.submit(lead, "sc-rolling", "*", "--batch", "1", sleep_s=1)
    wait_for(lambda: scale.ran("sc-rolling"), 15, step=0.05, what="the first host to run")
    h = scale.hubs[lead]
    h.proc.kill()
    h.proc.wait()
    t0 = time.monotonic()
    wait_for(lambda: scale.zk_status(other)["leader"], TIMEOUT_MS / 1000 + 3, step=0.1,
             what="%s to lead" % other)
    print("%s leads %.2f s after %s was killed" % (other, time.monotonic() - t0, lead))
    scale.wait_done("sc-rolling", HOSTS, timeout=40, hubs=(other,))
    time.sleep(1)
    assert scale.ran("sc-rolling") == {x: 1 for x in HOSTS}
    # The dead hub comes back: it reads the same store and sees the same result.
    h.start()
    scale.wait_done("sc-rolling", HOSTS, timeout=10)
    scale.wait_states({x: "up" for x in HOSTS}, timeout=15)


def test_copies_a_dead_hub_never_queued_are_queued_by_the_leader(scale):
    # A hub that dies between storing a task's copies and writing their queue entries leaves
    # copies with no entry (docs/scale.md). Made here by deleting the entry (as a hub may) for
    # a host that is away, then killing the hub that made the task: when its node goes, the
    # leader writes the entries of unfinished copies that have none, and the host runs the
    # task once when it returns.
    lead = scale.leader()
    other = "hub-b" if lead == "hub-a" else "hub-a"
    assert scale.agents["web-5"].stop() == 0
    scale.wait_states({"web-5": "down"}, timeout=10)
    scale.submit(other, "sc-unqueued", "web-5")
    hk = kazoo_client(scale.zk.connect + "/scale", "outpost-hub", SECRET)
    try:
        q = "/outpost/tasks/web-5"
        wait_for(lambda: hk.get_children(q), 10, step=0.1, what="the entry of sc-unqueued")
        for e in hk.get_children(q):
            hk.delete(q + "/" + e)
        assert scale.rows(lead, "sc-unqueued") == {"web-5": "sent"}
        h = scale.hubs[other]
        h.proc.kill()
        h.proc.wait()
        wait_for(lambda: hk.get_children(q), TIMEOUT_MS / 1000 + 10, step=0.2,
                 what="the leader to queue the copy again after %s went" % other)
        assert len(hk.get_children(q)) == 1
    finally:
        hk.stop()
    scale.start("web-5")
    scale.wait_zk("web-5")
    scale.wait_done("sc-unqueued", ["web-5"], hubs=(lead,))
    h.start()
    scale.wait_done("sc-unqueued", ["web-5"])
    time.sleep(1)
    assert scale.ran("sc-unqueued") == {"web-5": 1}
    scale.wait_states({x: "up" for x in HOSTS}, timeout=15)


def test_zookeeper_and_postgresql_restarts_lose_no_queued_task(scale):
    # A task made while ZooKeeper is down waits in the database; its queue entries are
    # written when ZooKeeper is back (whatever became of the sessions meanwhile).
    scale.zk.stop()
    scale.submit("hub-a", "sc-zk-down", "*")
    time.sleep(1)
    scale.zk.start()
    for host in HOSTS:
        scale.wait_zk(host)
    scale.wait_done("sc-zk-down", HOSTS, timeout=40)
    # The database restarts (every hub loses its connection) with a task queued for a host
    # that is away: it is still there, and runs once, when the host returns.
    assert scale.agents["web-2"].stop() == 0
    scale.submit("hub-b", "sc-pg-restart", "web-2")
    scale.pg.restart()
    scale.start("web-2")
    scale.wait_zk("web-2")
    scale.wait_done("sc-pg-restart", ["web-2"], timeout=30)
    scale.submit("hub-a", "sc-after-pg", "*")
    scale.wait_done("sc-after-pg", HOSTS, timeout=30)
    time.sleep(1)
    assert scale.ran("sc-zk-down") == {h: 1 for h in HOSTS}
    assert scale.ran("sc-pg-restart") == {"web-2": 1}
    assert scale.ran("sc-after-pg") == {h: 1 for h in HOSTS}
