"""The cleanup plugin with a real hub and agent (docs/plugins/cleanup.md): a policy pushed
through the hub frees what its dry run said and nothing outside its directory (symlinks
planted in the tree lead out of it and are not followed), sysctl drift under a fake root is
enforced, bad policies get errors that name their key, and a scheduled apply runs by itself."""
import json
import os
import signal
import time

from outpost_testlib import wait_for

DAY = 86400


def put(path, size, age_days):
    path.write_bytes(b"x" * size)
    t = time.time() - age_days * DAY
    os.utime(path, (t, t))


def make_root(tmp_path):
    """A fake / for the agent: var/log/app with rotations of several ages, a directory beside
    the root with old matching files that symlinks in the tree point at, proc/sys and a dpkg
    status file."""
    root = tmp_path / "root"
    log = root / "var/log/app"
    log.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    put(log / "app.log", 500, 0)
    put(log / "app.log.1", 1000, 1)
    put(log / "app.log.2", 2000, 9)
    put(log / "app.log.3", 3000, 20)
    (log / "old").mkdir()
    put(log / "old" / "app.log.8", 700, 40)
    put(outside / "app.log.9", 4000, 30)
    os.symlink(outside, log / "sub")                      # a directory leading out
    os.symlink(outside / "app.log.9", log / "app.log.7")  # a file leading out
    (root / "proc/sys/vm").mkdir(parents=True)
    (root / "proc/sys/vm/swappiness").write_text("60\n")
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(
        "Package: bash\nStatus: install ok installed\n\n"
        "Package: ghost\nStatus: deinstall ok config-files\n")
    return root, log, outside


POLICY = {"name": "logs",
          "paths": [{"dir": "/var/log/app", "match": "app.log*", "max_age": "7d",
                     "recurse": True}],
          "sysctl": {"vm.swappiness": {"value": 10, "enforce": True}},
          "packages": ["bash", "ghost"]}


def host_result(f, *args):
    p = f.ok("--json", "call", "-t", "web-1", *args)
    (row,) = p.json["hosts"]
    assert row["state"] == "ok", row
    return row["response"]["result"]


def test_pushed_policy_frees_what_its_plan_said_and_nothing_outside(fleet, tmp_path):
    root, log, outside = make_root(tmp_path)
    f = fleet(n=0)
    f.add("web-1", f.token(), conf={"plugins": {"cleanup": {"root": str(root)}}})
    f.wait_state("web-1", "up")
    before = sorted(os.listdir(log))
    arg = "policies:=" + json.dumps([POLICY])

    plan = host_result(f, "cleanup.plan", arg)
    assert plan["dry_run"] is True
    deleted = sorted(c["path"] for c in plan["changes"] if c["action"] == "delete")
    assert deleted == ["/var/log/app/app.log.2", "/var/log/app/app.log.3",
                       "/var/log/app/old/app.log.8"], plan
    assert plan["bytes_freed"] == 2000 + 3000 + 700
    assert plan["symlinks_skipped"] == 2
    assert [d["key"] for d in plan["drift"]] == ["vm.swappiness"]
    assert [m["package"] for m in plan["missing_packages"]] == ["ghost"]
    # A dry run changes nothing.
    assert sorted(os.listdir(log)) == before
    assert (root / "proc/sys/vm/swappiness").read_text() == "60\n"

    applied = host_result(f, "cleanup.apply", arg)
    assert applied["dry_run"] is False
    assert applied["bytes_freed"] == plan["bytes_freed"]
    assert applied["files_deleted"] == 3 and applied["errors"] == [], applied
    assert sorted(os.listdir(log)) == ["app.log", "app.log.1", "app.log.7", "old", "sub"]
    assert os.listdir(log / "old") == []
    assert os.path.islink(log / "sub") and os.path.islink(log / "app.log.7")
    # Beyond the root, what the symlinks point at is untouched.
    assert (outside / "app.log.9").stat().st_size == 4000
    assert (root / "proc/sys/vm/swappiness").read_text() == "10"
    assert applied["drift"][0]["fixed"] is True

    again = host_result(f, "cleanup.plan", arg)
    assert again["files_deleted"] == 0 and again["drift"] == [], again


def test_bad_policies_get_errors_that_name_their_key(agent, tmp_path):
    root, _, _ = make_root(tmp_path)
    a = agent({"plugins": {"cleanup": {"root": str(root)}}})
    cases = [
        ([{"name": "x", "paths": [{"dir": "/var/log", "max_age": "soon"}]}],
         "policies[0].paths[0].max_age: must be a positive duration"),
        ([POLICY, {"name": "y", "paths": [{"dir": "var/log", "keep": 1}]}],
         "policies[1].paths[0].dir: 'var/log' must be an absolute path"),
        ([{"name": "x", "sysctl": {"vm.swappiness": {"value": 1, "enforc": True}}}],
         "policies[0].sysctl.vm.swappiness: unknown key 'enforc'"),
        ([{"name": "x", "required": [{"path": "/etc/x", "owner": "nobody-at-all"}]}],
         "policies[0].required[0].owner: no user 'nobody-at-all' on this host"),
        ([{"name": "x", "packages": ["Not A Package"]}],
         "policies[0].packages[0]: must be a Debian package name"),
    ]
    for policies, want in cases:
        for op in ("plan", "apply"):
            r = a.call("cleanup", op, {"policies": policies})
            assert r.status == 400 and r.code == "bad_args", (policies, r)
            assert r.json["error"]["message"].startswith(want), (r.json, want)
    # The core's own checks: a wrong type, an unknown argument.
    r = a.call("cleanup", "plan", {"policies": "all"})
    assert r.code == "bad_args" and "policies" in r.json["error"]["message"]
    r = a.call("cleanup", "plan", {"polices": []})
    assert r.code == "bad_args"
    r = a.call("cleanup", "plan", {"policy": "nope", "policies": [POLICY]})
    assert r.status == 404 and r.code == "not_found"
    # Nothing was touched by any of them.
    assert (root / "var/log/app/app.log.3").exists()


def test_bad_config_is_named_in_the_log_and_every_answer(agent, tmp_path):
    root, _, _ = make_root(tmp_path)
    a = agent({"plugins": {"cleanup": {"root": str(root), "policies": [
        {"name": "logs", "paths": [{"dir": "/var/log/app", "keep": "three"}]}]}}})
    a.wait_log("plugins.cleanup.policies[0].paths[0].keep: must be an integer")
    r = a.call("cleanup", "plan")
    assert r.status == 503 and r.code == "unavailable", r
    assert r.json["error"]["message"].startswith(
        "plugins.cleanup.policies[0].paths[0].keep: must be an integer"), r.json
    # A reload with the fix needs no restart.
    a.reconfigure({"plugins": {"cleanup": {"policies": [
        {"name": "logs", "paths": [{"dir": "/var/log/app", "keep": 3}]}]}}})
    a.signal(signal.SIGHUP)
    wait_for(lambda: a.call("cleanup", "plan").ok, what="the fixed config in use")
    assert a.call("cleanup", "plan").result["files_deleted"] == 1  # app.log.3 of 4 in app/


def test_scheduled_apply_runs_by_itself(agent, tmp_path):
    root, log, outside = make_root(tmp_path)
    a = agent({"plugins": {"cleanup": {"root": str(root), "interval": "1s",
                                       "policies": [POLICY]}}})
    wait_for(lambda: not (log / "app.log.3").exists(), timeout=10,
             what="the scheduled apply to delete app.log.3")
    st = wait_for(lambda: a.call("cleanup", "status").result.get("last_run"), timeout=10,
                  what="a last run in cleanup.status")
    assert a.call("cleanup", "status").result["interval_s"] == 1
    assert st["dry_run"] is False
    assert (outside / "app.log.9").exists()
    assert (log / "app.log.1").exists()
    a.wait_log("scheduled apply: 3 files deleted (5700 bytes)")


def hub_events(f, host, kind):
    """The events the hub lists for host whose kind is under kind, oldest first."""
    status, body = f.hub.api("GET", "/api/v1/events?host=%s&kind=%s&limit=1000" % (host, kind))
    assert status == 200, body
    res = body["result"]
    evs = res["events"] if isinstance(res, dict) else res
    return sorted((e for e in evs if e.get("kind", "").startswith(kind + ".")),
                  key=lambda e: e["id"])


def test_every_change_arrives_at_the_hub_once_also_when_it_was_down(fleet, tmp_path):
    root, log, outside = make_root(tmp_path)
    f = fleet(n=0)
    a = f.add("web-1", f.token(), conf={"plugins": {"cleanup": {"root": str(root)}}})
    f.wait_state("web-1", "up")
    host_result(f, "cleanup.apply", "policies:=" + json.dumps([POLICY]))
    assert "events not handed to the hub" not in a.log()
    evs = wait_for(lambda: (lambda e: e if any(x["kind"] == "cleanup.applied" for x in e)
                            else None)(hub_events(f, "web-1", "cleanup")),
                   what="the apply's events at the hub")
    kinds = [e["kind"] for e in evs]
    deleted = sorted(e["data"]["path"] for e in evs if e["kind"] == "cleanup.deleted")
    assert deleted == ["/var/log/app/app.log.2", "/var/log/app/app.log.3",
                       "/var/log/app/old/app.log.8"], evs
    assert kinds.count("cleanup.sysctl_set") == 1 and kinds.count("cleanup.applied") == 1
    (drift,) = [e for e in evs if e["kind"] == "cleanup.drift"]
    assert drift["severity"] == "warning" and drift["data"]["package"] == "ghost"
    (summary,) = [e for e in evs if e["kind"] == "cleanup.applied"]
    assert summary["data"]["bytes_freed"] == 5700

    # The hub is away while a second apply deletes what aged since: its events wait in the
    # agent's spool and arrive once the hub is back, once.
    f.hub.stop()
    put(log / "app.log.4", 900, 10)
    r = a.call("cleanup", "apply", {"policies": [POLICY]})
    assert r.result["files_deleted"] == 1
    f.hub.start()
    wait_for(lambda: len([e for e in hub_events(f, "web-1", "cleanup")
                          if e["kind"] == "cleanup.applied"]) == 2, timeout=30,
             what="the second apply's events after the hub restart")
    time.sleep(1)
    evs = hub_events(f, "web-1", "cleanup")
    late = [e for e in evs if e["kind"] == "cleanup.deleted"
            and e["data"]["path"] == "/var/log/app/app.log.4"]
    assert len(late) == 1, evs
