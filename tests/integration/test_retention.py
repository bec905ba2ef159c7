"""Retention on a real outpost-hub: events, audit entries and ended tasks past their keep_days
are deleted by the hub's background work, recent ones and running tasks stay, and the CLI then
finds a pruned task no more than one that never was.

Rows are made old by writing them into the hub's database while it is stopped (the hub has no
way to date a row in the past, and needs none)."""
import sqlite3
import time

DAY = 86400000


def now_ms():
    return int(time.time() * 1000)


def add_task(db, task_id, hosts, created_ms, expires_ms, state, ended_ms, row_state):
    db.execute("INSERT INTO tasks(id, target, plugin, op, args, timeout_ms, created_ms, "
               "expires_ms, created_by, batch_size, max_failures, last_batch, state, ended_ms) "
               "VALUES(?, '*', 'sys', 'ping', '{}', 60000, ?, ?, 'token:test', 0, -1, 0, ?, ?)",
               (task_id, created_ms, expires_ms, state, ended_ms))
    for h in hosts:
        final = row_state not in ("queued", "sent", "running")
        db.execute("INSERT INTO task_hosts(task_id, host_id, batch, state, response, finished_ms, "
                   "seq) VALUES(?, ?, 0, ?, ?, ?, 1)",
                   (task_id, h, row_state, '{"ok":true}' if final else None,
                    ended_ms if final else None))


def metric(h, name):
    status, text = h.api("GET", "/metrics")
    assert status == 200
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError("no %s in /metrics" % name)


def test_old_rows_are_pruned_and_recent_ones_and_running_tasks_stay(hub):
    h = hub()
    # Something recent through the API: a token, and the audit entry it leaves.
    status, body = h.api("POST", "/api/v1/tokens", {"kind": "enroll"})
    assert status == 200, body
    h.stop()

    t = now_ms()
    db = sqlite3.connect(h.state / "hub.db")
    db.executemany("INSERT INTO events(host_id, kind, detail, at_ms) VALUES(?, ?, '', ?)", [
        ("web-1", "enrolled", t - 40 * DAY),
        ("web-1", "down", t - 31 * DAY),
        ("web-1", "up", t - 29 * DAY),
        ("web-2", "enrolled", t - DAY),
    ])
    db.executemany("INSERT INTO audit(at_ms, actor, action, target) VALUES(?, 'token:x', ?, ?)",
                   [(t - 400 * DAY, "token.create", "very-old"),
                    (t - 366 * DAY, "task.create", "old"),
                    (t - 300 * DAY, "host.revoke", "kept")])
    add_task(db, "old-done", ["web-1", "web-2"], t - 45 * DAY, t - 44 * DAY, "done",
             t - 40 * DAY, "ok")
    add_task(db, "old-cancelled", ["web-1"], t - 45 * DAY, t - 44 * DAY, "cancelled",
             t - 44 * DAY, "cancelled")
    # Created as long ago, but it ended yesterday: kept 30 days from its end.
    add_task(db, "ended-lately", ["web-2"], t - 45 * DAY, t + DAY, "done", t - DAY, "ok")
    # Created as long ago and still running (an expiry ahead): never pruned.
    add_task(db, "old-running", ["web-1", "web-2"], t - 45 * DAY, t + DAY, "running", None,
             "queued")
    db.commit()
    db.close()

    h.start()
    deadline = time.time() + 20
    while h.api("GET", "/api/v1/tasks/old-done")[0] != 404:
        assert time.time() < deadline, "old-done was not pruned:\n" + h.log()
        time.sleep(0.2)
    # One pass deletes everything due: wait for its log line, then look.
    deadline = time.time() + 20
    while "retention: deleted" not in h.log():
        assert time.time() < deadline, h.log()
        time.sleep(0.2)
    assert "deleted 2 events, 2 audit entries, 2 tasks (3 per-host copies)" in h.log()

    status, events = h.api("GET", "/api/v1/events?limit=100")
    assert status == 200
    assert [(e["host_id"], e["kind"]) for e in events["result"]] == [
        ("web-2", "enrolled"), ("web-1", "up")]

    status, audit = h.api("GET", "/api/v1/audit?limit=100")
    targets = [e["target"] for e in audit["result"]]
    assert "very-old" not in targets and "old" not in targets
    assert "kept" in targets and body["result"]["id"] in targets

    status, tasks = h.api("GET", "/api/v1/tasks?limit=100")
    assert sorted(x["id"] for x in tasks["result"]) == ["ended-lately", "old-running"]
    status, running = h.api("GET", "/api/v1/tasks/old-running")
    assert status == 200 and running["result"]["state"] == "running"
    assert running["result"]["total"] == 2
    status, gone = h.api("GET", "/api/v1/tasks/old-cancelled")
    assert status == 404 and gone["error"]["code"] == "not_found"

    # The CLI finds a pruned task no more than one that never was: the same error and exit.
    pruned, never = h.cli("tasks", "show", "old-done"), h.cli("tasks", "show", "no-such-task")
    assert pruned.returncode == never.returncode == 3, (pruned.stderr, never.stderr)
    assert pruned.stderr.replace("old-done", "ID") == never.stderr.replace("no-such-task", "ID")
    assert pruned.stderr.startswith("outpost: not_found")
    p = h.cli("--json", "tasks", "ls")
    assert p.returncode == 0 and sorted(x["id"] for x in p.json) == ["ended-lately",
                                                                      "old-running"]

    assert metric(h, 'outpost_hub_pruned_rows_total{what="events"}') == 2
    assert metric(h, 'outpost_hub_pruned_rows_total{what="audit"}') == 2
    assert metric(h, 'outpost_hub_pruned_rows_total{what="tasks"}') == 2
    assert metric(h, 'outpost_hub_pruned_rows_total{what="task_copies"}') == 3
    assert metric(h, "outpost_hub_prune_failures_total") == 0

    # Every row of the pruned tasks went with them.
    h.stop()
    db = sqlite3.connect(h.state / "hub.db")
    assert db.execute("SELECT task_id, count(*) FROM task_hosts GROUP BY task_id "
                      "ORDER BY task_id").fetchall() == [("ended-lately", 1), ("old-running", 2)]
    db.close()


def test_keep_days_comes_from_the_config(hub):
    """A shorter keep in the config prunes what the default (30 days) would keep."""
    h = hub({"tasks": {"keep_days": 7}})
    h.stop()
    t = now_ms()
    db = sqlite3.connect(h.state / "hub.db")
    add_task(db, "ten-days", ["web-1"], t - 11 * DAY, t - 10 * DAY, "done", t - 10 * DAY, "ok")
    add_task(db, "five-days", ["web-1"], t - 6 * DAY, t - 5 * DAY, "done", t - 5 * DAY, "ok")
    db.commit()
    db.close()
    h.start()
    deadline = time.time() + 20
    while h.api("GET", "/api/v1/tasks/ten-days")[0] != 404:
        assert time.time() < deadline, h.log()
        time.sleep(0.2)
    assert h.api("GET", "/api/v1/tasks/five-days")[0] == 200
