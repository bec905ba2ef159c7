"""The agent's link to a real outpost-hub (docs/agent-link.md): enrollment with and without a
token, first-use pinning, a task end to end, results that wait out a hub restart, and a task
reported lost after the agent died running it."""
import base64
import hashlib
import re
import time

from outpost_testlib import HUB_BIN  # noqa: F401  (the hub fixture needs it built)


def wait(fn, timeout=20, step=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out waiting for %s" % what)


def enroll_token(h):
    status, body = h.api("POST", "/api/v1/tokens", {"kind": "enroll", "ttl_s": 600,
                                                    "labels": {"role": "web"}})
    assert status == 200, body
    return body["result"]["token"]


def host_state(h, host_id):
    status, body = h.api("GET", "/api/v1/hosts/" + host_id)
    return body["result"]["state"] if status == 200 else None


def run_task(h, host_id, task_id, args, timeout_ms=20000):
    status, body = h.api("POST", "/api/v1/tasks", {"id": task_id, "target": host_id,
                                                   "plugin": "exec", "op": "run",
                                                   "args": args, "timeout_ms": timeout_ms})
    assert status == 200, body


def task_host(h, task_id, final=True, timeout=20):
    def get():
        _, body = h.api("GET", "/api/v1/tasks/" + task_id)
        row = body["result"]["hosts"][0] if body["result"].get("hosts") else None
        if row and (not final or row["state"] not in ("queued", "sent", "running")):
            return row
        return None
    return wait(get, timeout, what="task %s" % task_id)


def linked_agent(agent, h, host_id, token=None):
    conf = {"hub": {"url": h.url, "host_id": host_id}}
    if token:
        conf["hub"]["token"] = token
    return agent(conf)


def test_agent_enrolls_pins_and_runs_a_task(hub, agent):
    h = hub()
    a = linked_agent(agent, h, "it-01", enroll_token(h))
    wait(lambda: host_state(h, "it-01") == "up", what="host up")
    # Pinned on first use: the certificate the hub serves, and its fingerprint in the log.
    pinned = open(a.state_dir + "/hub.crt").read()
    assert pinned == (h.state / "hub.crt").read_text()
    _, health = h.api("GET", "/api/v1/health", token="")
    fp = health["result"]["fingerprint"]
    assert "pinned the hub's TLS certificate %s" % fp in a.log()
    der = re.sub(r"-----[A-Z ]+-----|\s", "", pinned)
    assert "sha256:" + hashlib.sha256(base64.b64decode(der)).hexdigest() == fp

    run_task(h, "it-01", "it-task-1", {"script": "echo hello"})
    row = task_host(h, "it-task-1")
    assert row["state"] == "ok", row
    assert row["response"]["result"]["stdout"] == "hello\n"
    run_task(h, "it-01", "it-task-2", {"script": "exit 3"})
    assert task_host(h, "it-task-2")["state"] == "failed"

    # Facts: a few from uname at enrollment, then sys.facts with the first beats.
    def facts():
        _, body = h.api("GET", "/api/v1/hosts/it-01")
        return (body["result"].get("facts") or {}).get("cpu")
    wait(facts, what="sys.facts at the hub")

    hubinfo = a.get("/v1/health").result["hub"]
    assert hubinfo["connected"] is True and hubinfo["state"] == "up"
    assert a.metric("outpost_agent_hub_connected") == 1
    assert a.metric("outpost_agent_hub_tasks_received_total") >= 2
    wait(lambda: a.metric("outpost_agent_hub_outbox_depth") == 0, what="empty outbox")


def test_pending_host_starts_once_accepted(hub, agent):
    h = hub()
    a = linked_agent(agent, h, "it-02")
    wait(lambda: host_state(h, "it-02") == "pending", what="host pending")
    a.wait_log("waiting for an operator to run 'outpost hosts accept it-02'")
    status, _ = h.api("POST", "/api/v1/hosts/it-02/accept", {})
    assert status == 200
    a.wait_log("enrolled with %s as it-02" % h.url, timeout=70)
    run_task(h, "it-02", "it-task-3", {"script": "true"})
    assert task_host(h, "it-task-3", timeout=30)["state"] == "ok"


def test_result_waits_out_a_hub_restart(hub, agent):
    h = hub()
    a = linked_agent(agent, h, "it-03", enroll_token(h))
    wait(lambda: host_state(h, "it-03") == "up", what="host up")
    run_task(h, "it-03", "it-task-4", {"script": "sleep 2; echo late"})
    task_host(h, "it-task-4", final=False)
    h.stop()
    # Finished while the hub is away: kept in the outbox.
    wait(lambda: a.metric("outpost_agent_hub_outbox_depth") >= 1, timeout=10,
         what="result in the outbox")
    h.start()
    row = task_host(h, "it-task-4", timeout=90)
    assert row["state"] == "ok" and row["response"]["result"]["stdout"] == "late\n"
    wait(lambda: a.metric("outpost_agent_hub_outbox_depth") == 0, what="empty outbox")


def test_task_running_when_the_agent_died_is_reported_lost(hub, agent):
    h = hub()
    a = linked_agent(agent, h, "it-04", enroll_token(h))
    wait(lambda: host_state(h, "it-04") == "up", what="host up")
    run_task(h, "it-04", "it-task-5", {"script": "sleep 30"}, timeout_ms=60000)
    wait(lambda: task_host(h, "it-task-5", final=False)["state"] == "running",
         what="task running")
    a.kill()
    a.start()
    row = task_host(h, "it-task-5", timeout=30)
    assert row["state"] == "lost", row
    assert row["response"]["error"]["code"] == "lost"
