"""The real outpost-hub over HTTPS: first start, credentials and roles, tokens, bad input.

Tests that need enrolled agents are in test_fleet.py."""
import copy
import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest
import requests

from outpost_testlib import HUB_BIN, check_config_golden, deep_merge, wait_for, write_config


def test_first_start_writes_admin_token_key_and_certificate_private(hub):
    h = hub()
    for name in ("admin.token", "hub.key", "hub-tls.key"):
        mode = stat.S_IMODE(os.stat(h.state / name).st_mode)
        assert mode == 0o600, "%s is %o" % (name, mode)
    assert stat.S_IMODE(os.stat(h.state / "hub.crt").st_mode) == 0o644
    log = h.log()
    assert "admin token written to %s" % (h.state / "admin.token") in log
    assert "ed25519:" in log and "sha256:" in log
    # The certificate it prints is the one it serves (the CLI and agents pin it).
    status, body = h.api("GET", "/api/v1/health", token="")
    assert status == 200 and body["ok"]
    assert body["result"]["fingerprint"] in log


def test_restart_keeps_identity_and_does_not_rewrite_the_token(hub):
    h = hub()
    token, crt = h.admin_token, (h.state / "hub.crt").read_text()
    _, before = h.api("GET", "/api/v1/health", token="")
    h.stop()
    h.start()
    _, after = h.api("GET", "/api/v1/health", token="")
    assert h.admin_token == token and (h.state / "hub.crt").read_text() == crt
    assert after["result"]["hub_pubkey"] == before["result"]["hub_pubkey"]
    assert h.api("GET", "/api/v1/hosts")[0] == 200


def test_refuses_secret_files_others_can_read(hub):
    h = hub()
    h.stop()
    os.chmod(h.state / "hub.key", 0o644)
    p = subprocess.run([HUB_BIN, "--config", str(h.conf_path), "--foreground"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode != 0
    assert "must be mode 0600" in p.stderr


def test_plain_http_refused_off_loopback(tmp_path):
    conf = tmp_path / "hub.conf"
    conf.write_text('{"listen": "0.0.0.0:7443", "tls": false, "state_dir": "%s"}' % tmp_path)
    p = subprocess.run([HUB_BIN, "--config", str(conf), "--check-config"], capture_output=True,
                       text=True)
    assert p.returncode == 1
    assert "plain HTTP is only for loopback" in p.stderr


def test_without_credentials_only_health_and_enroll_answer(hub):
    h = hub()
    for method, path in (("GET", "/api/v1/hosts"), ("GET", "/metrics"), ("GET", "/api/v1/tasks"),
                         ("POST", "/api/v1/tasks"), ("POST", "/api/v1/tokens"),
                         ("GET", "/api/v1/audit"), ("GET", "/api/v1/agents/x/tasks")):
        status, body = h.api(method, path, body={} if method == "POST" else None, token="")
        assert status == 401, (method, path, status, body)
        assert body["error"]["code"] == "unauthorized"
    assert h.api("GET", "/api/v1/health", token="")[0] == 200
    status, body = h.api("GET", "/api/v1/nowhere", token="")
    assert status == 404 and body["error"]["code"] == "not_found"


def test_roles_viewer_operator_admin(hub):
    h = hub()
    tokens = {}
    for role in ("viewer", "operator", "admin"):
        status, body = h.api("POST", "/api/v1/tokens", {"kind": "operator", "role": role})
        assert status == 200, body
        assert body["result"]["token"].startswith("opo_")
        tokens[role] = body["result"]["token"]
    task = {"target": "*", "plugin": "sys", "op": "ping"}
    # A viewer reads but may not run tasks or make tokens.
    assert h.api("GET", "/api/v1/hosts", token=tokens["viewer"])[0] == 200
    status, body = h.api("POST", "/api/v1/tasks", task, token=tokens["viewer"])
    assert status == 403 and "needs operator" in body["error"]["message"]
    # An operator may run tasks (none match: no hosts yet) but not make tokens.
    status, body = h.api("POST", "/api/v1/tasks", task, token=tokens["operator"])
    assert status == 404 and "matches no accepted host" in body["error"]["message"]
    status, body = h.api("POST", "/api/v1/tokens", {"kind": "enroll"}, token=tokens["operator"])
    assert status == 403
    assert h.api("GET", "/api/v1/audit", token=tokens["admin"])[0] == 200


def test_failed_credentials_are_rate_limited(hub):
    h = hub({"auth": {"max_failures_per_min": 5}})
    codes = [h.api("GET", "/api/v1/hosts", token="opo_wrong")[0] for _ in range(7)]
    assert codes[:5] == [401] * 5
    assert codes[5:] == [503, 503]
    # The right token is never refused for others' failures (docs/security.md).
    status, body = h.api("GET", "/api/v1/hosts")
    assert status == 200 and body["ok"], body


def test_sighup_applies_reloadable_keys_and_names_the_others(hub):
    """auth.max_failures_per_min takes effect on SIGHUP; api.conn_limit needs a restart, and
    the log says so; a file that fails its checks changes nothing."""
    h = hub({"auth": {"max_failures_per_min": 100}})

    def reload(change, outcome):
        """Writes the hub's config with change, sends SIGHUP; its log from then on."""
        write_config(h.conf_path, deep_merge(copy.deepcopy(h.conf), change))
        mark = len(h.log())
        h.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: outcome in h.log()[mark:], 5, what=outcome)
        return h.log()[mark:], [h.api("GET", "/api/v1/hosts", token="opo_wrong")[0]
                                for _ in range(3)]

    log, codes = reload({"auth": {"max_failures_per_min": 2}, "agents": {"beat_ms": 1}},
                        "reload refused")
    assert "'agents.beat_ms' must be between 500 and 3600000" in log
    assert codes == [401, 401, 401]  # the whole file was refused, max_failures too
    log, codes = reload({"auth": {"max_failures_per_min": 2}, "api": {"conn_limit": 100}},
                        "configuration reloaded")
    assert "reload: api.conn_limit change only at a restart" in log
    assert codes == [503, 503, 503]  # 3 failures already this minute: past the new 2


def test_token_changes_are_audited_and_secrets_never_stored(hub):
    h = hub()
    status, body = h.api("POST", "/api/v1/tokens",
                         {"kind": "enroll", "ttl_s": 3600, "labels": {"role": "web"}})
    assert status == 200
    secret = body["result"]["token"]
    status, audit = h.api("GET", "/api/v1/audit")
    assert audit["result"][0]["action"] == "token.create"
    assert audit["result"][0]["target"] == body["result"]["id"]
    db = (h.state / "hub.db").read_bytes() + (h.state / "hub.db-wal").read_bytes()
    assert secret.encode() not in db
    assert h.admin_token.encode() not in db


def test_bad_input_gets_one_envelope(hub):
    h = hub()
    cases = [
        ("POST", "/api/v1/tasks", "{not json", 400, "bad_json"),
        ("POST", "/api/v1/tasks", "[" * 100 + "]" * 100, 400, "bad_json"),
        ("POST", "/api/v1/tasks", json.dumps({"target": "*", "plugin": "Exec", "op": "run"}),
         400, "bad_args"),
        ("POST", "/api/v1/tasks", json.dumps({"target": "*", "plugin": "exec", "op": "run",
                                              "bogus": 1}), 400, "bad_args"),
        ("POST", "/api/v1/tasks", json.dumps({"target": "role=", "plugin": "exec", "op": "run"}),
         400, "bad_args"),
        ("POST", "/api/v1/tasks", json.dumps({"target": "*", "plugin": "exec", "op": "run",
                                              "timeout_ms": -5}), 400, "bad_args"),
        ("POST", "/api/v1/tokens", json.dumps({"kind": "root"}), 400, "bad_args"),
        ("POST", "/api/v1/tokens", json.dumps({"kind": "operator", "role": "god"}), 400,
         "bad_args"),
        ("POST", "/api/v1/enroll", json.dumps({"host_id": "../etc", "pubkey": "x"}), 400,
         "bad_args"),
        ("POST", "/api/v1/enroll", json.dumps({"host_id": "ok", "pubkey": "AAAA"}), 400,
         "bad_args"),
        ("GET", "/api/v1/hosts/..%2F..%2Fetc", None, 400, None),
        ("GET", "/api/v1/tasks/no such", None, 400, None),
    ]
    for method, path, raw, status, code in cases:
        s, body = h.api(method, path, raw=raw)
        assert s in (status, 404), (path, raw, s, body)
        assert isinstance(body, dict) and body["ok"] is False, (path, raw, body)
        if code:
            assert body["error"]["code"] == code, (path, raw, body)
    # A selector error says where.
    s, body = h.api("POST", "/api/v1/tasks", {"target": "id=x and and", "plugin": "sys",
                                              "op": "ping"})
    assert s == 400 and "column" in body["error"]["message"]
    # Oversized bodies are refused as they arrive.
    s, body = h.api("POST", "/api/v1/tokens", raw="x" * (200 * 1024))
    assert s == 413 and body["error"]["code"] == "too_large"


def test_metrics_for_prometheus(hub):
    h = hub()
    r = requests.get(h.url + "/metrics", headers={"Authorization": "Bearer " + h.admin_token},
                     verify=h.ca, timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    for name in ("outpost_hub_hosts{state=\"up\"}", "outpost_hub_agents_connected",
                 "outpost_hub_queue_depth", "outpost_hub_request_seconds_bucket"):
        assert name in r.text


# ---------------------------------------------------------------------------------------------
# Config golden tests, as the agent's (test_agent.py): --check-config on good and bad files in
# tests/conf/hub. With --state-dir given, the effective config is the same for root and others.

HUB_CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "hub"
HUB_CONF_FILES = sorted(p.name for p in HUB_CONF_DIR.glob("*.conf"))


@pytest.mark.parametrize("name", HUB_CONF_FILES)
def test_check_config_golden(name):
    check_config_golden(HUB_BIN, HUB_CONF_DIR, name, "/var/lib/outpost-hub-test")
