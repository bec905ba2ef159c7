"""The hub on PostgreSQL (store.backend "postgresql", docs/config.md): a real hub whose store is
a private PostgreSQL server the test starts (tests/support/pg_run.sh), real agents enrolled
with it, tasks run through it by the real CLI. The rest of the integration suite runs on the
embedded SQLite store; these check that the same user-visible behaviour holds here, that the
state lives in PostgreSQL (a second hub on the same database sees it), and that a restart of
the database server costs no queued task."""
import os
import subprocess

from outpost_testlib import (HUB_BIN, HUB_CONF, Hub, WEB, deep_merge, cmd_line, marker_pids,
                             wait_for, write_config)


def pg_conf(pg):
    return {"store": {"backend": "postgresql", "dsn": pg.dsn}}


def test_hub_on_postgresql_enrolls_agents_and_runs_a_task(fleet, postgres):
    f = fleet(n=3, hub_conf=pg_conf(postgres))
    assert "store: postgresql" in f.hub.log()
    assert not (f.hub.state / "hub.db").exists()  # hosts and tasks are not in SQLite
    p = f.ok("run", "--id", "pg-run-1", "-t", "role=web", *cmd_line(f.marker))
    assert "3 hosts, 3 ok" in p.stdout, p.stdout
    assert sorted(marker_pids(f.marker)) == sorted(f.pid(h) for h in WEB)
    # The rows are in the database, where any hub can read them.
    assert postgres.sql("SELECT host_id, state FROM task_hosts WHERE task_id = 'pg-run-1' "
                        "ORDER BY host_id") == [[h, "ok"] for h in WEB]
    assert postgres.sql("SELECT id, state FROM hosts ORDER BY id") == [[h, "up"] for h in WEB]
    # The same id again: the first result, nothing run twice (idempotent, as on SQLite).
    p = f.ok("run", "--id", "pg-run-1", "-t", "role=web", *cmd_line(f.marker))
    assert len(marker_pids(f.marker)) == 3


def test_a_second_hub_on_the_same_database_sees_hosts_tasks_and_audit(fleet, postgres,
                                                                       tmp_path):
    f = fleet(n=2, hub_conf=pg_conf(postgres))
    f.ok("run", "--id", "pg-seen-1", "-t", "*", *cmd_line(f.marker))
    (tmp_path / "second").mkdir()
    h2 = Hub(tmp_path / "second", deep_merge(dict(HUB_CONF), pg_conf(postgres))).start()
    try:
        p = h2.cli("--json", "hosts", "ls")
        assert p.returncode == 0, p.stderr
        assert sorted((h["id"], h["state"]) for h in p.json) == [("web-1", "up"),
                                                                  ("web-2", "up")]
        p = h2.cli("--json", "tasks", "show", "pg-seen-1")
        assert p.returncode == 0, p.stderr
        assert {r["host_id"]: r["state"] for r in p.json["hosts"]} == {"web-1": "ok",
                                                                       "web-2": "ok"}
        # Each hub made its own admin token at first start; both are in the one token table.
        assert postgres.sql("SELECT count(*) FROM tokens WHERE created_by = "
                            "'hub-first-start'") == [["2"]]
    finally:
        h2.stop()


def test_database_restart_loses_no_queued_task(fleet, postgres):
    f = fleet(n=2, hub_conf=pg_conf(postgres))
    f.agents["web-2"].stop()  # off while its task is queued
    p = f.ok("run", "--no-wait", "--id", "pg-queued", "-t", "*", *cmd_line(f.marker))
    assert p.stdout.strip() == "pg-queued"
    wait_for(lambda: f.rows("pg-queued")["web-1"]["state"] == "ok", what="web-1's result")
    postgres.restart()  # every session of the hub ends here

    def hub_answers():
        return f.cli("hosts", "ls").returncode == 0
    wait_for(hub_answers, timeout=20, what="the hub to reconnect to PostgreSQL")
    assert f.rows("pg-queued")["web-2"]["state"] in ("queued", "sent")  # not run yet
    f.agents["web-2"].start()
    p = f.ok("tasks", "wait", "pg-queued", timeout=60)
    assert f.task("pg-queued")["counts"]["ok"] == 2
    pids = marker_pids(f.marker)
    assert len(pids) == 2 and f.pid("web-2") in pids  # each host ran it once
    assert f.hub.proc.poll() is None


def test_database_down_is_unavailable_in_the_envelope_then_recovers(fleet, postgres):
    f = fleet(n=1, hub_conf=pg_conf(postgres))
    postgres.pause()
    try:
        status, body = f.hub.api("GET", "/api/v1/hosts")
        assert status == 503, (status, body)
        assert body["ok"] is False and body["error"]["code"] == "unavailable", body
        p = f.cli("hosts", "ls")
        assert p.returncode != 0 and p.stdout == "", (p.returncode, p.stdout)
        assert f.hub.proc.poll() is None  # the hub waits for its database, it does not die
    finally:
        postgres.resume()
    wait_for(lambda: f.cli("hosts", "ls").returncode == 0, timeout=20,
             what="the hub to reconnect to PostgreSQL")
    p = f.ok("run", "-t", "web-1", *cmd_line(f.marker))
    assert "1 hosts, 1 ok" in p.stdout or "web-1: ok" in p.stdout, p.stdout


def test_hub_refuses_to_start_without_its_database(tmp_path):
    conf = {"listen": "127.0.0.1:1", "state_dir": str(tmp_path / "state"),
            "store": {"backend": "postgresql",
                      "dsn": "host=%s dbname=outpost connect_timeout=2" % (tmp_path / "no")}}
    path = tmp_path / "hub.conf"
    write_config(path, conf)
    p = subprocess.run([HUB_BIN, "--config", str(path), "--foreground"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode != 0
    assert "postgresql: cannot connect" in p.stderr, p.stderr
    assert not os.path.exists(tmp_path / "state" / "hub.db")
