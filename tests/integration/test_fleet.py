"""A fleet on loopback: a real outpost-hub, three or more real outpost-agents linked to it, and
the real outpost CLI driving them the way an operator would (docs/cli.md): enrollment and
acceptance, run / cp / call across hosts, hosts that stop and come back, repeated task ids,
revocation, rolling batches, cancel, bad input. Last, a fake hub (outpost_testlib.FakeHub,
speaking docs/protocol.md) checks how a real agent reports short and long tasks; the hostile
uses of that fake (forged, re-targeted, expired, replayed tasks) are in
tests/attack/test_held_tasks.py.

Commands run on the hosts append "$PPID" to a marker file: the parent of the command is the
agent that ran it, so the marker says which host ran it, and how often."""
import base64
import hashlib
import os
import re
import socket
import stat
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from outpost_testlib import (CLI_BIN, HUB_BIN, HUB_CONF, WEB, canonical, cmd_line, deep_merge,
                             marker_pids, table, wait_for)

# ---- 1. enrollment ----


def test_enroll_token_makes_hosts_up_with_its_labels(fleet):
    f = fleet()
    rows = {r[0]: r for r in table(f.ok("hosts", "ls").stdout)}
    assert sorted(rows) == list(WEB)
    for h in WEB:
        assert rows[h][2] == "up" and rows[h][-1] == "role=web", rows[h]
    # The selector a user would type finds them by the token's label.
    p = f.ok("--json", "hosts", "ls", "-t", "role=web")
    assert sorted(h["id"] for h in p.json) == list(WEB)
    assert all(h["labels"] == {"role": "web"} for h in p.json)
    # The token: the secret alone on stdout, what it is on stderr.
    p = f.ok("token", "create", "--enroll", "--labels", "role=db,dc=sh")
    assert re.fullmatch(r"ope_[A-Za-z0-9_-]+\n", p.stdout), p.stdout
    assert "shown only this once" in p.stderr


def test_enroll_without_token_waits_for_accept(fleet):
    f = fleet()
    db1 = f.add("db-1")
    f.wait_state("db-1", "pending")
    db1.wait_log("waiting for an operator to run 'outpost hosts accept db-1'")
    # Pending hosts get no tasks: not through '*', not by name.
    p = f.cli("run", "-t", "*", *cmd_line(f.marker))
    assert p.returncode == 0, p.stderr
    assert "3 hosts, 3 ok" in p.stdout and "db-" not in p.stdout
    p = f.cli("run", "-t", "db-1", *cmd_line(f.marker))
    assert p.returncode == 1, (p.returncode, p.stderr)  # docs/cli.md: matched no host
    assert "target 'db-1' matches no accepted host" in p.stderr
    assert db1.proc.pid not in marker_pids(f.marker)

    p = f.ok("hosts", "accept", "db-1")
    assert p.stdout == "db-1: up\n"
    db1.wait_log("enrolled with %s as db-1" % f.hub.url, timeout=20)
    f.wait_state("db-1", "up")
    p = f.ok("run", "-t", "db-1", *cmd_line(f.marker))
    assert p.stdout.startswith("db-1: ok, exit 0")
    assert marker_pids(f.marker).count(db1.proc.pid) == 1
    # An accepted host cannot be rejected (revoke cuts it off).
    p = f.cli("hosts", "reject", "db-1")
    assert p.returncode != 0 and "only a pending host can be rejected" in p.stderr, p.stderr


def hub_refusals(f, host_id, start=0):
    """How often the hub refused host_id's enrollment because it was rejected (its log)."""
    return f.hub.log()[start:].count("enroll: host %s from 127.0.0.1: refused, it was rejected"
                                     % host_id)


def test_rejected_host_stays_rejected_until_accepted(fleet):
    # The agent asks again every second here (10 minutes by default), so that the test sees
    # several refusals; each counts as a failed attempt of 127.0.0.1, hence the hub's limit.
    f = fleet(1, hub_conf={"auth": {"max_failures_per_min": 10000}})
    db = f.add("db-9", conf={"hub": {"refused_retry_s": 1}})
    f.wait_state("db-9", "pending")
    db.wait_log("waiting for an operator to run 'outpost hosts accept db-9'")
    key = f.ok("--json", "hosts", "show", "db-9").json["pubkey"]

    p = f.ok("hosts", "reject", "db-9")
    assert p.stdout == "db-9: rejected\n"
    p = f.ok("hosts", "reject", "db-9")  # again: the same answer, nothing more
    assert p.stdout == "db-9: rejected\n"
    # The agent's next attempt (it was pending: within its backoff of at most a minute) is
    # refused; it says so once, and its link status says rejected.
    db.wait_log("the hub rejected host db-9: an operator ran 'outpost hosts reject db-9'; "
                "'outpost hosts accept db-9' undoes it", timeout=70)
    hub = db.get("/v1/health").result["hub"]
    assert hub["state"] == "rejected" and hub["phase"] == "enrolling", hub
    assert "HTTP 403 forbidden: host id db-9 was rejected by an operator" in hub["last_error"]

    # It keeps asking (rarely), and stays rejected: never pending again, not even across a
    # restart of the hub.
    wait_for(lambda: hub_refusals(f, "db-9") >= 3, timeout=30, what="3 refusals")
    assert f.state("db-9") == "rejected"
    mark = len(f.hub.log())
    f.hub.stop()
    f.hub.start()
    wait_for(lambda: hub_refusals(f, "db-9", mark) >= 2, timeout=90,
             what="2 refusals after the hub's restart")
    rows = {r[0]: r for r in table(f.ok("hosts", "ls").stdout)}
    assert rows["db-9"][2] == "rejected", rows
    h = f.ok("--json", "hosts", "show", "db-9").json
    assert h["state"] == "rejected" and h["pubkey"] == key
    assert db.get("/v1/health").result["hub"]["state"] == "rejected"
    assert db.log().count("the hub rejected host db-9") == 1, db.log()
    assert "enrolled with" not in db.log()
    # Events and audit: one enrollment, one rejection.
    status, ev = f.hub.api("GET", "/api/v1/events?host=db-9")
    assert status == 200, ev
    assert [e["kind"] for e in ev["result"]] == ["rejected", "enrolled"], ev
    audit = f.ok("--json", "audit").json
    assert [a["action"] for a in audit if a["target"] == "db-9"] == ["host.reject"] * 2
    # It gets no tasks.
    p = f.ok("run", "-t", "*", *cmd_line(f.marker))
    assert "1 host, 1 ok" in p.stdout and "db-9" not in p.stdout
    p = f.cli("run", "-t", "db-9", *cmd_line(f.marker))
    assert p.returncode == 1 and "matches no accepted host" in p.stderr, p.stderr

    # Undo: accepting the rejected host takes the key it enrolled with; the agent picks
    # that up at its next attempt and works.
    p = f.ok("hosts", "accept", "db-9")
    assert p.stdout == "db-9: up\n"
    db.wait_log("enrolled with %s as db-9" % f.hub.url, timeout=20)
    f.wait_state("db-9", "up")
    assert db.get("/v1/health").result["hub"]["state"] == "up"
    p = f.ok("run", "-t", "db-9", *cmd_line(f.marker))
    assert p.stdout.startswith("db-9: ok, exit 0")
    assert marker_pids(f.marker).count(db.proc.pid) == 1
    # Accepted with a last contact of long ago, it was down until the agent came back.
    status, ev = f.hub.api("GET", "/api/v1/events?host=db-9")
    kinds = [e["kind"] for e in reversed(ev["result"]) if e["kind"] not in ("down", "up")]
    assert kinds == ["enrolled", "rejected", "accepted"], ev


def test_link_only_agent_has_no_local_api_and_runs_tasks(fleet):
    f = fleet(0)
    a = f.add("edge-1", link_only=True)
    assert "no local API (listen and socket are empty): working through the hub only" in a.log()
    # Nothing listens: not the port the test picked for it, not a unix socket.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", a.port), timeout=1).close()
    assert not os.path.exists(a.sock)

    f.wait_state("edge-1", "pending")
    f.ok("hosts", "accept", "edge-1")
    a.wait_log("enrolled with %s as edge-1" % f.hub.url, timeout=70)
    f.wait_state("edge-1", "up")
    p = f.ok("run", "-t", "edge-1", *cmd_line(f.marker))
    assert p.stdout.startswith("edge-1: ok, exit 0"), p.stdout
    assert marker_pids(f.marker) == [a.proc.pid]
    p = f.ok("--json", "call", "-t", "edge-1", "sys.facts")
    assert p.json["hosts"][0]["state"] == "ok", p.json
    # It stops like any agent (the fixture wants exit 0 on SIGTERM).
    assert a.stop() == 0, a.log()


# ---- 2. run, cp, call ----


def test_run_everywhere_shows_every_host(fleet):
    f = fleet()
    name = socket.gethostname()
    p = f.ok("run", "-t", "*", "--", "uname", "-n")
    for h in WEB:
        assert "%s: ok, exit 0" % h in p.stdout
    assert p.stdout.count("\n    %s\n" % name) == 3, p.stdout
    assert re.search(r"^task cli-[0-9a-f]{32}: 3 hosts, 3 ok in ", p.stdout, re.M), p.stdout

    p = f.ok("run", "-t", "*", "--json", "--", "uname", "-n")
    task = p.json
    assert task["state"] == "done" and task["total"] == 3
    assert task["counts"]["ok"] == 3 and task["args"] == {"argv": ["uname", "-n"]}
    assert sorted(r["host_id"] for r in task["hosts"]) == list(WEB)
    for r in task["hosts"]:
        assert r["state"] == "ok"
        res = r["response"]["result"]
        assert res["exit_code"] == 0 and res["stdout"] == name + "\n", r


def test_run_failing_on_one_host_exits_1_and_names_it(fleet):
    f = fleet()
    # Fails only where the parent (the agent) is web-2.
    p = f.cli("run", "-t", "*", "--", "sh", "-c", '[ "$PPID" != %d ]' % f.pid("web-2"))
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "web-2: failed, exit 1" in p.stdout
    assert "web-1: ok, exit 0" in p.stdout and "web-3: ok, exit 0" in p.stdout
    assert "3 hosts, 2 ok, 1 failed" in p.stdout
    assert p.stdout.rstrip().endswith("not ok: web-2")


def test_cp_puts_the_file_on_the_targeted_hosts(fleet):
    f = fleet()
    db_files = f.tmp / "db-files"
    db_files.mkdir()
    f.add("db-1", f.token("role=db"), roots=[db_files])
    f.wait_state("db-1", "up")
    local = f.tmp / "app.ini"
    content = b"[app]\nworkers = 4\n# \xc3\xa9t\xc3\xa9\n"
    local.write_bytes(content)
    remote = f.files / "conf" / "app.ini"

    p = f.ok("cp", "-t", "role=web", "--mode", "0640", "--make-dirs", "--id", "cp-1",
             str(local), str(f.files / "conf") + "/")
    for h in WEB:
        assert re.search(r"^%s: ok, (changed|unchanged) \(%d bytes, mode 0640" %
                         (h, len(content)), p.stdout, re.M), p.stdout
    assert "db-1" not in p.stdout
    assert remote.read_bytes() == content
    assert stat.S_IMODE(os.stat(remote).st_mode) == 0o640
    assert not any(db_files.iterdir())
    sha = hashlib.sha256(content).hexdigest()
    rows = f.rows("cp-1")
    assert sorted(rows) == list(WEB)
    for r in rows.values():
        res = r["response"]["result"]
        assert res["sha256"] == sha and res["mode"] == "0640" and res["size"] == len(content)
    # Again: every host finds the file already right.
    p = f.ok("cp", "-t", "role=web", str(local), str(remote))
    assert p.stdout.count(": ok, unchanged") == 3, p.stdout


def test_call_sys_facts_on_one_host(fleet):
    f = fleet()
    p = f.ok("call", "-t", "web-1", "sys.facts")
    assert p.stdout.startswith("web-1: ok")
    assert '"release": "%s"' % os.uname().release in p.stdout
    assert "1 host, 1 ok" in p.stdout
    p = f.ok("--json", "call", "-t", "web-1", "sys.facts")
    (row,) = p.json["hosts"]
    assert row["host_id"] == "web-1" and p.json["plugin"] == "sys" and p.json["op"] == "facts"
    assert row["response"]["result"]["kernel"]["release"] == os.uname().release
    assert row["response"]["result"]["host"]["hostname"] == socket.gethostname()


# ---- 3. hosts that stop and come back ----


def test_stopped_host_gets_the_task_when_it_is_back(fleet):
    f = fleet()
    old = f.pid("web-2")
    assert f.agents["web-2"].stop() == 0
    p = f.ok("run", "-t", "*", "--id", "while-down", "--no-wait", *cmd_line(f.marker))
    assert p.stdout == "while-down\n"
    # The running hosts finish; the stopped one's share waits for it.
    def others_done():
        rows = f.rows("while-down")
        return rows if rows["web-1"]["state"] == rows["web-3"]["state"] == "ok" else None
    rows = wait_for(others_done, what="web-1 and web-3 ok")
    assert rows["web-2"]["state"] in ("queued", "sent"), rows["web-2"]
    assert f.task("while-down")["state"] == "running"
    assert sorted(marker_pids(f.marker)) == sorted([f.pid("web-1"), f.pid("web-3")])

    f.agents["web-2"].start()
    p = f.cli("tasks", "wait", "while-down", timeout=30)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "3 hosts, 3 ok" in p.stdout and "web-2: ok, exit 0" in p.stdout
    pids = marker_pids(f.marker)
    assert len(pids) == 3 and f.pid("web-2") in pids and old not in pids


def test_task_expires_for_a_host_that_stays_down(fleet):
    f = fleet()
    down = f.agents["web-3"]
    old = down.proc.pid
    assert down.stop() == 0
    p = f.cli("run", "-t", "*", "--expires", "2s", "--id", "short-lived", *cmd_line(f.marker),
              timeout=30)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "web-3: expired" in p.stdout
    assert "3 hosts, 2 ok, 1 expired" in p.stdout and p.stdout.rstrip().endswith("not ok: web-3")
    assert f.rows("short-lived")["web-3"]["state"] == "expired"
    # Back later, the host does not run it (the hub does not hand it out; the agent would
    # refuse it as expired anyway).
    down.start()
    f.ok("run", "-t", "web-3", "--", "true")
    assert sorted(marker_pids(f.marker)) == sorted([f.pid("web-1"), f.pid("web-2")])
    assert old not in marker_pids(f.marker) and down.proc.pid not in marker_pids(f.marker)


# ---- 4. ids ----


def test_repeated_task_id_does_not_run_twice(fleet):
    f = fleet()
    first = f.ok("run", "-t", "*", "--id", "deploy-42", *cmd_line(f.marker))
    assert "3 hosts, 3 ok" in first.stdout
    again = f.ok("run", "-t", "*", "--id", "deploy-42", *cmd_line(f.marker))
    assert "task deploy-42: 3 hosts, 3 ok" in again.stdout
    # Even another command under the same id follows the first task.
    other = f.ok("--json", "run", "-t", "*", "--id", "deploy-42", "--", "sh", "-c",
                 "echo other >> %s" % f.marker)
    assert other.json["args"] == {"argv": cmd_line(f.marker)[1:]}
    assert sorted(marker_pids(f.marker)) == sorted(f.pid(h) for h in WEB)
    ids = [t["id"] for t in f.ok("--json", "tasks", "ls").json]
    assert ids.count("deploy-42") == 1


# ---- 5. revocation ----


def test_revoked_host_is_refused_and_its_id_not_reenrolled(fleet):
    f = fleet()
    web2 = f.agents["web-2"]
    p = f.ok("hosts", "revoke", "web-2")
    assert p.stdout == "web-2: revoked\n"
    assert f.state("web-2") == "revoked"
    # Its next signed request (a beat, within a second) is refused; it goes back to
    # enrollment, which is refused too, and its log says why.
    web2.wait_log("HTTP 401 unauthorized: this host was revoked", timeout=5)
    web2.wait_log("the hub refuses host web-2: it was revoked", timeout=5)
    assert web2.get("/v1/health").result["hub"]["state"] == "revoked"
    p = f.ok("run", "-t", "*", *cmd_line(f.marker))
    assert "2 hosts, 2 ok" in p.stdout and "web-2" not in p.stdout
    p = f.cli("run", "-t", "web-2", *cmd_line(f.marker))
    assert p.returncode == 1 and "matches no accepted host" in p.stderr, (p.returncode, p.stderr)
    assert web2.proc.pid not in marker_pids(f.marker)

    # A new agent (new key) under the revoked id, even with a valid token: refused.
    key = re.search(r"created this agent's key \S+: ed25519:(\S+)", web2.log()).group(1)
    assert f.ok("--json", "hosts", "show", "web-2").json["pubkey"] == key
    impostor = f.add("web-2", f.token(), name="web-2-new-key")
    impostor.wait_log("the hub refuses host web-2: it was revoked", timeout=10)
    impostor.wait_log("host id web-2 was revoked")
    assert "enrolled with" not in impostor.log()
    after = f.ok("--json", "hosts", "show", "web-2").json
    assert after["state"] == "revoked"
    assert after["pubkey"] == key
    p = f.ok("run", "-t", "*", *cmd_line(f.marker))
    assert "2 hosts, 2 ok" in p.stdout
    assert impostor.proc.pid not in marker_pids(f.marker)

    # A host in service cannot be removed; a revoked one can, and its id enrolls afresh: the
    # reinstalled server (new key) is then up and runs tasks.
    p = f.cli("hosts", "remove", "web-1")
    assert p.returncode != 0 and "host web-1 is up: revoke it first" in p.stderr, p.stderr
    assert f.state("web-1") == "up"
    p = f.ok("hosts", "remove", "web-2")
    assert p.stdout == "web-2: removed\n"
    assert "web-2" not in f.hosts()
    p = f.cli("hosts", "show", "web-2")
    assert p.returncode != 0 and "not_found" in p.stderr + p.stdout or "no host" in p.stderr, \
        (p.returncode, p.stdout, p.stderr)
    impostor.stop()
    impostor.start(wait=False)
    impostor.wait_log("enrolled with", timeout=15)
    wait_for(lambda: f.state("web-2") == "up", what="web-2 up with its new key")
    assert f.ok("--json", "hosts", "show", "web-2").json["pubkey"] != key
    p = f.ok("run", "-t", "*", *cmd_line(f.marker))
    assert "3 hosts, 3 ok" in p.stdout
    assert impostor.proc.pid in marker_pids(f.marker)
    events = f.ok("--json", "audit").json
    assert any(e.get("action") == "host.remove" and e.get("target") == "web-2" for e in events), \
        events[:5]


# ---- 6. rolling batches ----


def test_rolling_batch_stops_at_the_first_failure(fleet):
    f = fleet()
    p = f.cli("run", "-t", "*", "--batch", "1", "--max-failures", "0", "--id", "roll-bad",
              "--", "sh", "-c", 'echo "$PPID" >> %s; exit 1' % f.marker)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "3 hosts, 0 ok, 1 failed, 2 cancelled" in p.stdout
    assert len(re.findall(r"^web-\d: failed, exit 1", p.stdout, re.M)) == 1, p.stdout
    assert len(re.findall(r"^web-\d: cancelled", p.stdout, re.M)) == 2, p.stdout
    rows = f.rows("roll-bad")
    (failed,) = [h for h, r in rows.items() if r["state"] == "failed"]
    assert marker_pids(f.marker) == [f.pid(failed)]


def test_rolling_batch_runs_everywhere_one_at_a_time(fleet):
    f = fleet()
    p = f.ok("run", "-t", "*", "--batch", "1", "--max-failures", "0", "--id", "roll-ok",
             *cmd_line(f.marker))
    assert "3 hosts, 3 ok" in p.stdout
    rows = sorted(f.rows("roll-ok").values(), key=lambda r: r["started_ms"])
    assert [r["state"] for r in rows] == ["ok"] * 3
    for prev, nxt in zip(rows, rows[1:]):
        assert nxt["started_ms"] >= prev["finished_ms"], rows
    assert sorted(marker_pids(f.marker)) == sorted(f.pid(h) for h in WEB)


# ---- 7. cancel ----


def test_cancel_a_task_queued_for_a_down_host(fleet):
    f = fleet()
    web3 = f.agents["web-3"]
    old = web3.proc.pid
    assert web3.stop() == 0
    f.wait_state("web-3", "down")
    f.ok("run", "-t", "web-3", "--id", "never", "--no-wait", *cmd_line(f.marker))
    p = f.ok("tasks", "cancel", "never")
    assert p.stdout.startswith("never: ") and "1 hosts cancelled" in p.stdout, p.stdout
    assert f.rows("never")["web-3"]["state"] == "cancelled"
    p = f.cli("tasks", "wait", "never")
    assert p.returncode == 1 and "web-3: cancelled" in p.stdout, (p.stdout, p.stderr)
    # Back, it does not run the cancelled task; it does run the next one.
    web3.start()
    f.ok("run", "-t", "web-3", "--", "true")
    assert marker_pids(f.marker) == []
    assert old != web3.proc.pid


# ---- 8. bad input ----


def test_bad_selectors_and_arguments_say_what_is_wrong(fleet):
    f = fleet()
    before = len(f.ok("--json", "tasks", "ls").json)
    cases = [
        (("run", "-t", "role=web and", *cmd_line(f.marker)), 3, "bad_args: at column 13"),
        (("run", "-t", "role=web and (dc=sh", *cmd_line(f.marker)), 3, "at column"),
        (("run", "-t", "colour=red", *cmd_line(f.marker)), 3, "unknown key 'colour'"),
        (("hosts", "ls", "-t", "role=="), 3, "bad_args: target: at column 6"),
        (("run", "-t", "*", "--timeout", "2d", *cmd_line(f.marker)), 3,
         "bad_args: timeout_ms must be"),
        (("run", "-t", "*", "--expires", "60d", *cmd_line(f.marker)), 3,
         "bad_args: expires_in_ms must be"),
        (("run", "-t", "*", "--timeout", "5x", *cmd_line(f.marker)), 2, "--timeout: '5x'"),
        (("run", "-t", "*", "--batch", "0", *cmd_line(f.marker)), 2, "--batch: '0'"),
        (("run", "-t", "*", "--id", "../x", *cmd_line(f.marker)), 2, "--id: '../x'"),
        (("call", "-t", "*", "sys"), 2, "PLUGIN.OP"),
        (("call", "-t", "*", "sys.facts", "n:=nope"), 2, "argument 'n': invalid JSON"),
        (("call", "-t", "*", "sys.facts", "a=1", "a=2"), 2, "argument 'a' is given twice"),
        (("hosts", "accept", "nosuch"), 3, "not_found"),
        (("tasks", "show", "nosuch"), 3, "not_found"),
    ]
    for args, code, text in cases:
        p = f.cli(*args)
        assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
        assert text in p.stderr, (args, p.stderr)
        assert p.stderr.startswith("outpost: "), (args, p.stderr)
    assert marker_pids(f.marker) == []
    assert len(f.ok("--json", "tasks", "ls").json) == before
    # An argument the op refuses reaches the host, which names it.
    p = f.cli("call", "-t", "web-1", "file.stat", "path:=5")
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert re.search(r"^web-1: failed: bad_args: .*path", p.stdout, re.M), p.stdout


# ---- 9. a fake hub (forged, re-targeted, expired and replayed tasks: tests/attack) ----


def test_short_task_sends_only_its_final_state_long_one_reports_running(fake_hub, agent):
    # One request per short task: `running` goes only for a task still running after ~1 s
    # (docs/agent-link.md), so the hub sees it for long tasks and is spared it for short ones.
    fh = fake_hub
    agent({"hub": {"url": fh.url, "host_id": "short-1"}})
    wait_for(lambda: fh.polls > 0, 10, what="the agent's first long-poll")
    fh.hand(fh.sign(fh.task("t-short", "short-1", "true")))
    assert fh.final("t-short")["state"] == "ok"
    fh.hand(fh.sign(fh.task("t-long", "short-1", "sleep 3")))
    r = fh.final("t-long")
    assert r["state"] == "ok", r
    with fh.cond:
        short = [x["state"] for x in fh.results["t-short"]]
        long_ = [x["state"] for x in fh.results["t-long"]]
        running = [x for x in fh.results["t-long"] if x["state"] == "running"]
    assert short == ["ok"], short
    assert long_ == ["running", "ok"], long_
    # The running report says when the task started, the final one when it ended, 3 s later.
    assert running[0]["started_ms"] == r["started_ms"]
    assert r["finished_ms"] - r["started_ms"] >= 2900
