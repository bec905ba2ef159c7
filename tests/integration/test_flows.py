"""Flows on a real hub with real agents (docs/flows.md): a run stops at a failing step,
`continue` goes on, `goto` jumps back (a retry), vars reach the steps' environment, a run
resumes where it was after a hub restart mid-step, bad definitions get errors that say where,
and every flow route refuses the roles below it.

Steps append to files under the test's tmp dir: the agents run as the test's user, on the same
machine, so a file says which steps ran and how often."""
import json
import time

import pytest

from outpost_testlib import wait_for


def define(f, flow):
    s, r = f.hub.api("POST", "/api/v1/flows", flow)
    assert s == 200 and r["ok"], r
    return r["result"]


def run(f, name, **body):
    s, r = f.hub.api("POST", "/api/v1/flows/%s/run" % name, body)
    assert s == 200 and r["ok"], r
    return r["result"]["id"]


def wait_run(f, run_id, timeout=30):
    def ended():
        s, r = f.hub.api("GET", "/api/v1/flow-runs/" + run_id)
        assert s == 200, r
        return r["result"] if r["result"]["state"] != "running" else None
    return wait_for(ended, timeout, step=0.2, what="run %s to end" % run_id)


def outcomes(run_rec):
    return [(h["step"], h["outcome"]) for h in run_rec["history"]]


def test_flow_stops_at_failing_step_and_continue_goes_on(fleet, tmp_path):
    f = fleet(n=2)
    log = tmp_path / "steps.log"
    define(f, {"name": "stopper", "target": "role=web", "steps": [
        {"name": "first", "script": "echo first-$(hostname) >> %s" % log},
        {"name": "breaks", "target": "web-1", "script": "exit 3"},
        {"name": "never", "script": "echo never >> %s" % log}]})
    # The CLI follows the run to its end: exit 1 for a failed run, each step's outcome shown.
    p = f.cli("flows", "run", "stopper")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "failed" in p.stdout and "breaks: failed (0 ok, 1 failed" in p.stdout, p.stdout
    text = log.read_text()
    assert text.count("first-") == 2 and "never" not in text, text
    rid = f.ok("--json", "flows", "runs").json[0]["id"]
    r = f.ok("--json", "flows", "show", rid).json
    assert r["state"] == "failed" and r["error"] == "step breaks failed"
    assert outcomes(r) == [("first", "ok"), ("breaks", "failed")]

    # continue: the failure is recorded and the next step runs; vars are in its environment.
    define(f, {"name": "goes-on", "target": "web-2", "steps": [
        {"name": "breaks", "script": "exit 1", "on_failure": "continue"},
        {"name": "after", "script": "echo \"$GREETING $OUTPOST_FLOW $OUTPOST_FLOW_STEP\" >> %s"
         % (tmp_path / "after.log")}]})
    p = f.cli("flows", "run", "goes-on", "--var", "GREETING=hello there")
    assert p.returncode == 0, p.stdout + p.stderr
    assert (tmp_path / "after.log").read_text() == "hello there goes-on after\n"
    r = f.ok("--json", "flows", "runs").json[0]
    assert r["flow"] == "goes-on" and r["state"] == "ok" and r["failures"] == 1
    assert r["origin"].startswith("token:")


def test_goto_retries_a_step(fleet, tmp_path):
    f = fleet(n=1)
    count = tmp_path / "count"
    define(f, {"name": "retry", "target": "web-1", "steps": [
        {"name": "attempt", "on_failure": "goto attempt",
         "script": "n=$(cat %s 2>/dev/null || echo 0); n=$((n+1)); echo $n > %s; [ $n -ge 3 ]"
         % (count, count)},
        {"name": "after", "command": ["touch", str(tmp_path / "done")]}]})
    r = wait_run(f, run(f, "retry"))
    assert r["state"] == "ok", r
    assert outcomes(r) == [("attempt", "failed"), ("attempt", "failed"), ("attempt", "ok"),
                           ("after", "ok")]
    assert count.read_text() == "3\n" and (tmp_path / "done").exists()
    # Each step ran as its own task, recorded in the audit log under the run.
    audit = f.ok("--json", "audit", "--limit", "200").json
    assert sum(1 for e in audit if e["action"] == "task.create" and
               e["actor"] == "flow:" + r["id"]) == 4


def test_run_resumes_after_hub_restart(fleet, tmp_path):
    f = fleet(n=1)
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    define(f, {"name": "slow", "target": "web-1", "steps": [
        {"name": "long", "script": "sleep 3; echo ran >> %s" % a, "timeout_ms": 30000},
        {"name": "next", "script": "echo ran >> %s" % b}]})
    rid = run(f, "slow", id="restart-1")
    # The first step's task is out on the host: stop the hub under it.
    wait_for(lambda: f.hub.api("GET", "/api/v1/flow-runs/" + rid)[1]["result"]["task_id"],
             10, step=0.1, what="the first step's task")
    f.hub.stop()
    time.sleep(1)
    f.hub.start()
    r = wait_run(f, rid, timeout=45)
    assert r["state"] == "ok", r
    assert outcomes(r) == [("long", "ok"), ("next", "ok")]
    # The step under way when the hub stopped ran once, not again after the restart.
    assert a.read_text() == "ran\n" and b.read_text() == "ran\n"
    # Starting it again with the same id is a repeat: the first run, nothing run twice.
    s, again = f.hub.api("POST", "/api/v1/flows/slow/run", {"id": "restart-1"})
    assert s == 200 and again["result"]["state"] == "ok"
    time.sleep(1.5)
    assert b.read_text() == "ran\n"


def test_cancel_ends_a_run(fleet, tmp_path):
    f = fleet(n=1)
    define(f, {"name": "sleepy", "target": "web-1", "steps": [
        {"name": "wait", "script": "sleep 3"},
        {"name": "never", "command": ["touch", str(tmp_path / "never")]}]})
    rid = run(f, "sleepy")
    wait_for(lambda: f.hub.api("GET", "/api/v1/flow-runs/" + rid)[1]["result"]["task_id"],
             10, step=0.1, what="the first step's task")
    p = f.ok("flows", "cancel", rid)
    assert "cancelled" in p.stdout
    # A task already running on a host runs to its end; no later step starts.
    time.sleep(5)
    r = f.ok("--json", "flows", "show", rid).json
    assert r["state"] == "cancelled" and not (tmp_path / "never").exists()


@pytest.mark.parametrize("flow,where", [
    ({"name": "x", "target": "all", "steps": [
        {"name": "a", "script": "true", "on_failure": "goto nowhere"}]},
     "steps[0] (a): on_failure: \"goto nowhere\" names no step of this flow"),
    ({"name": "x", "target": "all", "steps": [{"name": "a", "script": "true"},
                                                {"name": "b", "comand": ["true"]}]},
     "steps[1]: unknown field 'comand'"),
    ({"name": "x", "steps": [{"name": "a", "script": "true"}]},
     "steps[0] (a): target: a selector (the flow has no target)"),
    ({"name": "x", "target": "all", "steps": [{"name": "a", "script": "true",
                                                "command": ["true"]}]},
     "steps[0] (a): give exactly one of command, script and plugin"),
    ({"name": "x", "target": "all", "steps": [{"name": "a", "script": "true"},
                                                {"name": "a", "script": "true"}]},
     "steps[1] (a): name: another step before it has this name"),
    ({"name": "x", "target": "all", "steps": [{"name": "a", "script": "true",
                                                "on_failure": "retry"}]},
     "steps[0] (a): on_failure: stop, continue or goto STEP, not \"retry\""),
    ({"name": "x", "target": "all", "steps": [{"name": "a", "script": "true",
                                                "timeout_ms": 0}]},
     "steps[0] (a): timeout_ms: 1 (1 ms) to 86400000 (1 day)"),
    ({"name": "x", "target": "all", "steps": [{"name": "a", "script": "true",
                                                "env": {"1BAD": "v"}}]},
     "steps[0] (a): env: '1BAD' is not a variable name"),
    ({"name": "x/../y", "target": "all", "steps": [{"name": "a", "script": "true"}]},
     "name: 1 to 64 of A-Z a-z 0-9 . _ -"),
    ({"name": "x", "target": "all", "steps": []}, "steps: 1 to 100 steps"),
])
def test_bad_definitions_get_located_errors(hub, flow, where):
    h = hub()
    s, r = h.api("POST", "/api/v1/flows", flow)
    assert s == 400 and r["error"]["code"] == "bad_args", r
    assert where in r["error"]["message"], r
    assert h.api("GET", "/api/v1/flows")[1]["result"] == []


def test_bad_input_to_runs(fleet, tmp_path):
    f = fleet(n=1)
    define(f, {"name": "ok", "target": "web-1", "steps": [{"name": "a", "command": ["true"]}]})
    for body, code, text in [
            ({"vars": {"A-B": "x"}}, 400, "vars: 'A-B' is not a variable name"),
            ({"vars": {"A": {"x": 1}}}, 400, "vars: A must be a string, a number or a boolean"),
            ({"vars": "A=1"}, 400, "vars"),
            ({"id": "../x"}, 400, "id:"),
            ({"extra": 1}, 400, "unknown field 'extra'")]:
        s, r = f.hub.api("POST", "/api/v1/flows/ok/run", body)
        assert s == code and text in r["error"]["message"], (body, r)
    s, r = f.hub.api("POST", "/api/v1/flows/nope/run", {})
    assert s == 404 and r["error"]["code"] == "not_found"
    s, r = f.hub.api("GET", "/api/v1/flow-runs/nope")
    assert s == 404
    s, r = f.hub.api("POST", "/api/v1/flows", raw="{not json")
    assert s == 400 and r["error"]["code"] == "bad_json"
    # A step whose target matches no host fails like any step (on_failure applies).
    define(f, {"name": "nohost", "target": "role=none", "steps": [{"name": "a",
                                                                  "command": ["true"]}]})
    r = wait_run(f, run(f, "nohost"))
    assert r["state"] == "failed" and "matches no accepted host" in r["history"][0]["error"]
    # flows add: a file that is not JSON is refused with FILE:LINE:COLUMN.
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x",\n "steps": [\n  {"name": "a", }\n ]}\n')
    p = f.cli("flows", "add", str(bad))
    assert p.returncode == 2 and "%s:3:" % bad in p.stderr, p.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"name": "fromfile", "target": "web-1",
                                "steps": [{"name": "a", "command": ["true"]}]}))
    assert "fromfile: 1 steps stored" in f.ok("flows", "add", str(good)).stdout
    assert [x["name"] for x in f.ok("--json", "flows", "ls").json].count("fromfile") == 1
    f.ok("flows", "rm", "fromfile")
    p = f.cli("flows", "rm", "fromfile")
    assert p.returncode == 3 and "not_found" in p.stderr


def test_flow_routes_refuse_lower_roles(fleet):
    f = fleet(n=1)
    define(f, {"name": "r", "target": "web-1", "steps": [{"name": "a", "command": ["true"]}]})
    tok = {}
    for role in ("viewer", "operator"):
        tok[role] = f.ok("token", "create", "--operator", "--role", role).stdout.strip()
    writes = [("POST", "/api/v1/flows", {"name": "y", "target": "all",
                                         "steps": [{"name": "a", "command": ["true"]}]}),
              ("POST", "/api/v1/flows/r/run", {}),
              ("POST", "/api/v1/flows/r/remove", {}),
              ("POST", "/api/v1/flow-runs/x/cancel", {}),
              ("POST", "/api/v1/report/mail", {})]
    reads = [("GET", "/api/v1/flows", None), ("GET", "/api/v1/flows/r", None),
             ("GET", "/api/v1/flow-runs", None), ("GET", "/api/v1/report", None)]
    for method, path, body in writes + reads + [("GET", "/api/v1/mail", None)]:
        s, r = f.hub.api(method, path, body, token="")
        assert s == 401, (path, s, r)
    for method, path, body in writes + [("GET", "/api/v1/mail", None)]:
        s, r = f.hub.api(method, path, body, token=tok["viewer"])
        assert s == 403 and r["error"]["code"] == "forbidden", (path, s, r)
    for method, path, body in reads:
        s, r = f.hub.api(method, path, body, token=tok["viewer"])
        assert s == 200, (path, s, r)
    # The mail queue is the admin's: it names recipients.
    s, r = f.hub.api("GET", "/api/v1/mail", token=tok["operator"])
    assert s == 403
    s, r = f.hub.api("POST", "/api/v1/flows/r/run", {}, token=tok["operator"])
    assert s == 200 and r["result"]["origin"].startswith("token:")
    # Nothing the refused calls asked for happened.
    assert [x["name"] for x in f.hub.api("GET", "/api/v1/flows")[1]["result"]] == ["r"]
