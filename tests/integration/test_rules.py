"""Rules and alerts (docs/rules.md) on a real hub and real agents: a disk rule fed through the
real metrics path fires, runs its task on that host only and resolves; a host-down rule fires
after its duration and resolves when the agent comes back; cooldown holds under a flapping
value; a webhook reaches a local listener, signed; bad rules are refused with where; every
new route refuses the roles below it."""
import hashlib
import hmac
import http.server
import json
import os
import signal
import threading

import pytest

from outpost_testlib import HUB_CONF, deep_merge, wait_for, write_config

METRICS = {"plugins": {"metrics": {"interval_ms": 1000, "statsd_listen": ""}}}
RULES = {"rules": {"interval_s": 1}}


def metrics_fleet(fleet, n):
    """web-1..web-n enrolled (role=web), their metrics shipped every second."""
    f = fleet(0, RULES)
    tok = f.token()
    for i in range(1, n + 1):
        f.add("web-%d" % i, tok, conf=METRICS)
    f.wait_states({"web-%d" % i: "up" for i in range(1, n + 1)})
    return f


def push(agent, value, name="app_disk_used_percent", mount="/data"):
    r = agent.call("metrics", "push", {"metrics": [
        {"name": name, "value": value, "labels": {"mount": mount}}]})
    assert r.ok, r


def alerts(f, rule=None):
    p = f.ok("--json", "alerts", "ls")
    return {(a["rule"], a["host"]): a for a in p.json if rule is None or a["rule"] == rule}


def history(f, rule):
    p = f.ok("--json", "alerts", "ls", "--history", "--rule", rule, "--limit", "500")
    return p.json


def add_rule(f, tmp_path, rule):
    path = tmp_path / ("%s.json" % rule["name"])
    path.write_text(json.dumps(rule))
    return f.ok("rules", "add", str(path))


def test_disk_rule_fires_runs_its_task_on_that_host_only_and_resolves(fleet, tmp_path):
    f = metrics_fleet(fleet, 2)
    a1, a2 = f.agents["web-1"], f.agents["web-2"]
    marker = tmp_path / "cleaned"
    add_rule(f, tmp_path, {
        "name": "disk-full", "scope": "role=web",
        "condition": 'last(app_disk_used_percent{mount="/data"}[1m]) > 90',
        "actions": [{"kind": "task", "plugin": "exec", "op": "run",
                     "args": {"script": 'echo "$OUTPOST_RULE $OUTPOST_HOST $OUTPOST_VALUE" '
                                        '>> %s' % marker}}],
        "options": {"cooldown_s": 0}})
    push(a1, 95)
    push(a2, 40)
    fired = wait_for(lambda: alerts(f, "disk-full").get(("disk-full", "web-1")), 30,
                     what="disk-full firing on web-1")
    assert fired["state"] == "firing", fired
    assert fired["values"] == {'last(app_disk_used_percent{mount="/data"}[1m]) > 90': 95}, fired
    wait_for(lambda: marker.exists() and marker.read_text().strip(), 30,
             what="the rule's task to run")
    # The task ran on web-1 only, with the rule's id and value in its environment.
    assert marker.read_text().split("\n")[0] == "disk-full web-1 95", marker.read_text()
    assert ("disk-full", "web-2") not in alerts(f)
    tasks = f.ok("--json", "tasks", "ls").json
    mine = [t for t in tasks if t["id"].startswith("rule.disk-full.")]
    assert len(mine) == 1 and mine[0]["total"] == 1, mine
    assert f.rows(mine[0]["id"]).keys() == {"web-1"}
    push(a1, 50)
    wait_for(lambda: ("disk-full", "web-1") not in alerts(f), 30, what="the alert resolved")
    kinds = [e["kind"] for e in history(f, "disk-full")]
    assert "firing" in kinds and "resolved" in kinds and "action" in kinds, kinds
    shown = f.ok("--json", "rules", "show", "disk-full").json
    assert shown["source"] == "api" and shown["alerts"] == {"firing": 0, "pending": 0}


def test_host_down_rule_fires_after_its_duration_and_resolves_when_the_agent_returns(fleet,
                                                                                      tmp_path):
    f = fleet(2, RULES)
    add_rule(f, tmp_path, {"name": "host-down", "condition": "down for 3s",
                           "actions": [{"kind": "log"}]})
    f.agents["web-2"].kill()
    f.wait_state("web-2", "down", timeout=20)
    # Down, but not yet for 3 s since its last sign of life: at most pending-free quiet.
    a = wait_for(lambda: alerts(f, "host-down").get(("host-down", "web-2")), 20,
                 what="host-down firing")
    assert a["state"] == "firing"
    assert a["values"]["down for 3s"] >= 3, a
    assert ("host-down", "web-1") not in alerts(f)
    assert "rule host-down firing on web-2" in f.hub.log()
    f.agents["web-2"].start()
    f.wait_state("web-2", "up", timeout=20)
    wait_for(lambda: ("host-down", "web-2") not in alerts(f), 20, what="host-down resolved")
    assert "rule host-down resolved on web-2" in f.hub.log()


def test_task_failed_is_a_stored_event_that_a_rule_sees_after_a_hub_restart(fleet, tmp_path):
    f = fleet(1, RULES)
    # A copy that ends failed: an op the agent does not have.
    p = f.cli("--json", "call", "-t", "web-1", "nosuch.op")
    assert p.returncode != 0, p.stdout
    ev = wait_for(lambda: [e for e in f.ok("--json", "events", "ls").json
                           if e["kind"] == "task_failed"], 20, what="the task_failed event")
    assert ev[0]["host_id"] == "web-1" and ev[0]["source"] == "hub", ev
    assert ev[0]["data"]["state"] != "ok", ev
    # The hub restarts before any rule looks: the failure is in the store, not in its memory.
    f.hub.stop()
    f.hub.start()
    add_rule(f, tmp_path, {"name": "failing", "condition": "event(task_failed[10m])",
                           "actions": [{"kind": "log"}]})
    a = wait_for(lambda: alerts(f, "failing").get(("failing", "web-1")), 20,
                 what="the rule on task_failed firing")
    assert a["values"] == {"event(task_failed[10m])": 1}, a
    # One failed copy, one event (its key: kind, task and host).
    assert len([e for e in f.ok("--json", "events", "ls").json
                if e["kind"] == "task_failed"]) == 1


def test_cooldown_holds_under_a_flapping_value(fleet, tmp_path):
    f = metrics_fleet(fleet, 1)
    a = f.agents["web-1"]
    add_rule(f, tmp_path, {"name": "flappy",
                           "condition": "last(app_disk_used_percent[1m]) > 90",
                           "actions": [{"kind": "log"}],
                           "options": {"cooldown_s": 3600, "max_actions_per_hour": 5}})
    for _ in range(3):
        push(a, 99)
        wait_for(lambda: alerts(f, "flappy").get(("flappy", "web-1")), 20, what="firing")
        push(a, 10)
        wait_for(lambda: ("flappy", "web-1") not in alerts(f), 20, what="resolved")
    h = history(f, "flappy")
    firings = [e for e in h if e["kind"] == "firing"]
    held = [e for e in h if e["kind"] == "suppressed"]
    assert len(firings) == 3, h
    assert len(held) == 2 and all(e["detail"]["reason"] == "cooldown" for e in held), h
    # One notification of firing and its resolution reached the log action; no more.
    assert f.hub.log().count("rule flappy firing on web-1:") == 1, f.hub.log()


class Receiver:
    """A local HTTP listener (Python's http.server) that keeps what it is sent."""

    def __init__(self, fail_first=0):
        self.got = []
        self.fails = fail_first
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if rec.fails > 0:
                    rec.fails -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                rec.got.append((dict(self.headers), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass
        self.srv = http.server.HTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/hook" % self.srv.server_port
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()


def test_webhook_reaches_a_listener_with_the_documented_body_and_a_valid_signature(fleet,
                                                                                  tmp_path):
    rec = Receiver(fail_first=1)  # the first attempt fails: the hub retries
    try:
        f = metrics_fleet(fleet, 1)
        a = f.agents["web-1"]
        add_rule(f, tmp_path, {"name": "hooked",
                               "condition": "max(app_disk_used_percent[3s]) >= 80",
                               "actions": [{"kind": "webhook", "url": rec.url}],
                               "options": {"severity": "critical", "cooldown_s": 0}})
        push(a, 85)
        wait_for(lambda: rec.got, 30, what="the webhook")
        headers, body = rec.got[0]
        secret = (f.hub.state / "webhook.secret").read_text().strip().encode()
        ts = headers["X-Outpost-Timestamp"]
        want = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        assert headers["X-Outpost-Signature"] == "sha256=" + want
        assert headers["Content-Type"] == "application/json"
        doc = json.loads(body)
        assert doc["version"] == 1 and doc["rule"] == "hooked" and doc["host"] == "web-1"
        assert doc["state"] == "firing" and doc["severity"] == "critical"
        assert doc["values"] == {"max(app_disk_used_percent[3s]) >= 80": 85}
        assert doc["condition"] == "max(app_disk_used_percent[3s]) >= 80"
        assert set(doc) == {"version", "rule", "host", "state", "severity", "condition",
                            "values", "since_ms", "fired_ms", "at_ms", "dry_run"}
        wait_for(lambda: any(e["kind"] == "action" and e["detail"].get("outcome") == "delivered"
                             and e["detail"]["attempts"] == 2 for e in history(f, "hooked")),
                 20, what="the delivery in the history, on its second attempt")
        # The resolution is notified too; a tampered body would not verify.
        push(a, 10)
        wait_for(lambda: len(rec.got) >= 2, 30, what="the resolution's webhook")
        doc2 = json.loads(rec.got[1][1])
        assert doc2["state"] == "resolved"
        assert rec.got[1][0]["X-Outpost-Delivery"] != headers["X-Outpost-Delivery"]
        bad = hmac.new(secret, ts.encode() + b"." + body + b" ", hashlib.sha256).hexdigest()
        assert bad != want
    finally:
        rec.close()


def test_dry_run_and_silence_record_without_acting(fleet, tmp_path):
    f = metrics_fleet(fleet, 1)
    a = f.agents["web-1"]
    marker = tmp_path / "never"
    add_rule(f, tmp_path, {"name": "dry", "condition": "last(app_disk_used_percent[1m]) > 1",
                           "actions": [{"kind": "task", "plugin": "exec", "op": "run",
                                        "args": {"script": "touch %s" % marker}}],
                           "options": {"dry_run": True}})
    f.ok("alerts", "silence", "--rule", "other", "--for", "1h")
    push(a, 50)
    wait_for(lambda: any(e["kind"] == "dry_run" for e in history(f, "dry")), 30,
             what="the dry run recorded")
    assert not marker.exists()
    assert not [t for t in f.ok("--json", "tasks", "ls").json if t["id"].startswith("rule.")]
    # A silence on a rule holds its actions; acknowledging is recorded once.
    f.ok("alerts", "silence", "--rule", "quiet", "--for", "1h", "--id", "s1")
    again = f.ok("--json", "alerts", "silence", "--rule", "quiet", "--for", "2h", "--id", "s1")
    assert again.returncode == 0
    add_rule(f, tmp_path, {"name": "quiet", "condition": "last(app_disk_used_percent[1m]) > 1",
                           "actions": [{"kind": "log"}]})
    wait_for(lambda: any(e["kind"] == "suppressed" and e["detail"]["reason"] == "silenced"
                         for e in history(f, "quiet")), 30, what="the silenced firing")
    assert "rule quiet firing on web-1:" not in f.hub.log()
    f.ok("alerts", "ack", "quiet", "web-1", "--comment", "looking")
    acked = alerts(f, "quiet")[("quiet", "web-1")]
    assert acked["acked_by"].startswith("token:") and acked["silenced"] == "s1"
    sil = f.ok("--json", "alerts", "ls", "--silences").json
    assert {s["id"] for s in sil} >= {"s1"}


BAD = [
    ({"name": "x", "condition": "avg(host_load1[5m] > 3"}, "bad_args", "condition at column 20"),
    ({"name": "x", "condition": "avg(host_load1[5m]) >"}, "bad_args", "expected a number"),
    ({"name": "x", "condition": "average(host_load1[5m]) > 1"}, "bad_args", "column 1"),
    ({"name": "x", "condition": 'avg(host_load1{a=~"("}[5m]) > 1'}, "bad_args", "column 5"),
    ({"name": "x", "condition": "down for forever"}, "bad_args", "column 10"),
    ({"name": "x", "condition": "avg(host_load1[5m]) > 1 and"}, "bad_args", "column 28"),
    ({"name": "x", "condition": "pending", "scope": "role=("}, "bad_args", "scope"),
    ({"name": "../x", "condition": "pending"}, "bad_args", "name must be"),
    ({"name": "x", "condition": "pending", "extra": 1}, "bad_args", "unknown key 'extra'"),
    ({"name": "x", "condition": "pending", "actions": [{"kind": "shell"}]}, "bad_args",
     "kind task, webhook, log"),
    ({"name": "x", "condition": "pending", "actions": [{"kind": "webhook", "url": "file:///"}]},
     "bad_args", "http://"),
    ({"name": "x", "condition": "pending", "actions": [{"kind": "flow"}]},
     "bad_args", "a flow action needs flow"),
    ({"name": "x", "condition": "pending", "actions": [{"kind": "email", "to": []}]},
     "bad_args", "an email action needs to"),
    ({"name": "x", "condition": "pending", "options": {"cooldown_s": -1}}, "bad_args",
     "options.cooldown_s"),
]


@pytest.mark.parametrize("rule,code,where", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_rules_get_located_errors(hub, rule, code, where):
    h = hub(RULES)
    st, body = h.api("POST", "/api/v1/rules", rule)
    assert st in (400, 503) and body["error"]["code"] == code, body
    assert where in body["error"]["message"], body
    st, body = h.api("GET", "/api/v1/rules")
    assert body["result"] == []


def test_rules_file_is_loaded_refused_with_file_line_column_and_reloaded_on_sighup(hub,
                                                                                   tmp_path):
    rules = tmp_path / "rules.conf"
    rules.write_text('{\n  // fleet rules\n  "rules": [\n    {"name": "load",\n'
                     '     "condition": "avg(host_load1[5m]) > 1000"}\n  ]\n}\n')
    h = hub(deep_merge({"rules": {"file": str(rules), "interval_s": 1}}, {}))
    st, body = h.api("GET", "/api/v1/rules")
    assert [r["name"] for r in body["result"]] == ["load"]
    assert body["result"][0]["source"] == "file"
    # The API cannot change a file's rule.
    st, body = h.api("POST", "/api/v1/rules/load/remove", {})
    assert st == 409 and "rules file" in body["error"]["message"]
    # A bad file is refused with where; the rules in force stay.
    rules.write_text('{\n  "rules": [\n    {"name": "load",\n'
                     '     "condition": "avg(host_load1[5m]) >> 1000"}\n  ]\n}\n')
    h.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "rules file refused" in h.log(), 10, what="the refusal")
    assert "%s:4:41: rule 1: condition at column 22" % rules in h.log(), h.log()
    st, body = h.api("GET", "/api/v1/rules")
    assert [r["condition"] for r in body["result"]] == ["avg(host_load1[5m]) > 1000"]
    rules.write_text('{"rules": [{"name": "pend", "condition": "pending"}]}')
    h.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: [r["name"] for r in h.api("GET", "/api/v1/rules")[1]["result"]] == ["pend"],
             10, what="the new file in force")
    # Syntax errors carry the line and column too.
    rules.write_text('{"rules": [\n  {"name": "a",, }]}')
    h.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: h.log().count("rules file refused") >= 2, 10, what="the second refusal")
    assert "%s:2:16" % rules in h.log(), h.log()


def test_rules_crud_and_test_through_the_cli(fleet, tmp_path):
    f = fleet(1, RULES)
    rule = {"name": "pend", "condition": "down or pending", "actions": [{"kind": "log"}]}
    add_rule(f, tmp_path, rule)
    add_rule(f, tmp_path, rule)  # the same again: nothing changes
    changed = dict(rule, condition="down for 1m")
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(changed))
    p = f.cli("rules", "add", str(path))
    assert p.returncode == 3 and "conflict" in p.stderr and "rules edit" in p.stderr
    f.ok("rules", "edit", "pend", str(path))
    p = f.ok("rules", "ls")
    assert "down for 1m" in p.stdout
    p = f.ok("rules", "test", "pend")
    assert "0 host(s) match now" in p.stderr
    t = tmp_path / "t.json"
    t.write_text(json.dumps({"name": "up", "condition": "last(host_load1[5m]) >= 0"}))
    p = f.ok("--json", "rules", "test", str(t))
    f.ok("rules", "rm", "pend")
    f.ok("rules", "rm", "pend")  # a repeat finds nothing left, and says so quietly
    assert f.ok("--json", "rules", "ls").json == []


ROUTES = [
    ("GET", "/api/v1/rules", None, "viewer"),
    ("GET", "/api/v1/rules/x", None, "viewer"),
    ("POST", "/api/v1/rules", {"name": "r", "condition": "pending"}, "operator"),
    ("POST", "/api/v1/rules/test", {"name": "r", "condition": "pending"}, "operator"),
    ("POST", "/api/v1/rules/r/edit", {"condition": "pending"}, "operator"),
    ("POST", "/api/v1/rules/r/remove", {}, "operator"),
    ("GET", "/api/v1/alerts", None, "viewer"),
    ("GET", "/api/v1/alerts/history", None, "viewer"),
    ("POST", "/api/v1/alerts/ack", {"rule": "r", "host": "h"}, "operator"),
    ("GET", "/api/v1/silences", None, "viewer"),
    ("POST", "/api/v1/silences", {"rule": "r", "duration_s": 60}, "operator"),
    ("POST", "/api/v1/silences/s/remove", {}, "operator"),
]


def test_every_new_route_refuses_the_roles_below_it(hub):
    h = hub(RULES)
    tokens = {}
    for role in ("viewer", "operator"):
        p = h.cli("token", "create", "--operator", "--role", role)
        assert p.returncode == 0, p.stderr
        tokens[role] = p.stdout.strip()
    below = {"viewer": [None], "operator": [None, "viewer"]}
    for method, path, body, need in ROUTES:
        for role in below[need]:
            st, ans = h.api(method, path, body, token=tokens.get(role, ""))
            want = 401 if role is None else 403
            assert st == want, (method, path, role, st, ans)
            assert ans["ok"] is False and ans["error"]["code"] in ("unauthorized", "forbidden")
        st, ans = h.api(method, path, body, token=tokens[need])
        assert st not in (401, 403), (method, path, need, st, ans)
