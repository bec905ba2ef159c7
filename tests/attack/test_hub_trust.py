"""What the hub trusts: selectors match only what the hub accepted (not what a host says of
itself), enrollment without a token is bounded, a token-holder wins over a squatter, tokens can
be revoked and used up. Real hub, real CLI, real agents and a scripted signing agent."""
import base64
import http.client
import json
import os
import ssl
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from fakeagent import FakeAgent  # noqa: E402
from outpost_testlib import table, wait_for  # noqa: E402


def metric(h, name):
    _, text = h.api("GET", "/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError("no %s in /metrics" % name)


def enroll_from(h, addr, host_id, facts=None):
    """An enrollment without a token, sent from source address addr (127.0.0.0/8)."""
    key = base64.b64encode(os.urandom(32)).decode()
    body = {"host_id": host_id, "pubkey": key, "hostname": host_id}
    if facts is not None:
        body["facts"] = facts
    ctx = ssl.create_default_context(cafile=h.ca)
    ctx.check_hostname = False
    c = http.client.HTTPSConnection("127.0.0.1", h.port, context=ctx, timeout=30,
                                    source_address=(addr, 0))
    try:
        c.request("POST", "/api/v1/enroll", body=json.dumps(body),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


# ---- selectors trust only the accepted id ----

def test_impostor_claiming_a_hostname_gets_nothing(fleet, hub):
    f = fleet(n=0)
    tok = f.token()
    f.add("web-01", tok)
    f.wait_state("web-01", "up")
    imp = FakeAgent(f.hub.url, "lab-9", ca=f.hub.ca, token=tok)
    imp.enroll(hostname="web-01", facts={"host": {"hostname": "web-01", "fqdn": "web-01"}})
    f.wait_state("lab-9", "up")

    # hosts ls and run use one rule: the bare word is the accepted id only
    assert [r[0] for r in table(f.ok("hosts", "ls", "-t", "web-01").stdout)] == ["web-01"]
    p = f.ok("--json", "run", "-t", "web-01", "--env", "SECRET=hunter2", "--", "true")
    task_id = p.json["id"] if isinstance(p.json, dict) and "id" in p.json else None
    tasks = f.ok("--json", "tasks", "ls").json
    task_id = task_id or tasks[0]["id"]
    assert set(f.rows(task_id)) == {"web-01"}
    # the impostor's own poll carries nothing, so the secret never reaches it
    st, body = imp.request("GET", "/api/v1/agents/lab-9/tasks?wait=0")
    assert st == 200, body
    assert "hunter2" not in json.dumps(body)
    # a glob on ids does not reach it either; naming the fact does
    assert [r[0] for r in table(f.ok("hosts", "ls", "-t", "web-*").stdout)] == ["web-01"]
    named = {r[0] for r in table(f.ok("hosts", "ls", "-t", "hostname=web-01").stdout)}
    assert "lab-9" in named


def test_node_set_range_selects_ids(fleet):
    f = fleet(n=0)
    tok = f.token()
    for i in (1, 2, 3, 7, 10):
        FakeAgent(f.hub.url, "web%02d" % i, ca=f.hub.ca, token=tok).enroll()
    got = {r[0] for r in table(f.ok("hosts", "ls", "-t", "web[01-03,10]").stdout)}
    assert got == {"web01", "web02", "web03", "web10"}
    p = f.cli("hosts", "ls", "-t", "web[10-1]")
    assert p.returncode == 3
    assert "at column 5: range 10-1 runs backwards" in p.stderr


# ---- enrollment without a token ----

def test_pending_flood_is_refused_per_address_and_overall(hub):
    h = hub({"enroll": {"pending_per_addr": 5, "pending_max": 8}})
    facts = {"pad": "x" * 100000}
    for i in range(5):
        st, body = enroll_from(h, "127.0.0.2", "flood-%d" % i, facts)
        assert st == 200 and body["result"]["state"] == "pending", body
    for i in range(5, 25):
        st, body = enroll_from(h, "127.0.0.2", "flood-%d" % i, facts)
        assert st == 503, body
        assert body["error"]["code"] == "busy"
        assert "enroll.pending_per_addr" in body["error"]["message"]
    # another address still gets in, up to the overall bound
    for i in range(3):
        st, body = enroll_from(h, "127.0.0.3", "other-%d" % i)
        assert st == 200, body
    st, body = enroll_from(h, "127.0.0.4", "one-too-many")
    assert st == 503 and "enroll.pending_max" in body["error"]["message"], body
    assert metric(h, 'outpost_hub_enroll_refused_total{reason="pending_per_addr"}') == 20
    assert metric(h, 'outpost_hub_enroll_refused_total{reason="pending_max"}') == 1
    _, hosts = h.api("GET", "/api/v1/hosts")
    assert len(hosts["result"]) == 8
    # the hub stayed small: 8 hosts' facts, not 25
    db = sum(os.path.getsize(h.state / n) for n in os.listdir(h.state) if n.startswith("hub.db"))
    assert db < 4 * 1024 * 1024, db
    # a token still enrolls: the caps are for pending hosts only
    _, tok = h.api("POST", "/api/v1/tokens", {"kind": "enroll"})
    a = FakeAgent(h.url, "real-1", ca=h.ca, token=tok["result"]["token"])
    assert a.enroll()["result"]["state"] == "up"


def test_facts_are_bounded_at_enrollment(hub):
    h = hub({"enroll": {"facts_max_bytes": 4096}})
    st, body = enroll_from(h, "127.0.0.5", "big", {"pad": "x" * 5000})
    assert st == 413 and body["error"]["code"] == "too_large", body
    assert "enroll.facts_max_bytes" in body["error"]["message"]
    deep = cur = {}
    for _ in range(20):
        cur["d"] = {}
        cur = cur["d"]
    st, body = enroll_from(h, "127.0.0.5", "deep", deep)
    assert st == 400 and "deeper than 8" in body["error"]["message"], body
    assert metric(h, 'outpost_hub_enroll_refused_total{reason="facts"}') == 2
    _, hosts = h.api("GET", "/api/v1/hosts")
    assert hosts["result"] == []


def test_facts_are_bounded_in_beats_too(hub):
    # An accepted host cannot grow hub.db through its beats either.
    h = hub({"enroll": {"facts_max_bytes": 4096}})
    tok = h.cli("token", "create", "--enroll", "--ttl", "10m").stdout.strip()
    a = FakeAgent(h.url, "b-1", ca=h.ca, token=tok)
    assert a.enroll()["result"]["state"] == "up"
    st, body = a.request("POST", "/api/v1/agents/b-1/beat", {"facts": {"pad": "x" * 5000}})
    assert st == 413 and "enroll.facts_max_bytes" in body["error"]["message"], body
    deep = cur = {}
    for _ in range(20):
        cur["d"] = {}
        cur = cur["d"]
    st, body = a.request("POST", "/api/v1/agents/b-1/beat", {"facts": deep})
    assert st == 400 and "deeper than 8" in body["error"]["message"], body
    st, body = a.request("POST", "/api/v1/agents/b-1/beat", {"facts": {"os": {"id": "debian"}}})
    assert st == 200, body
    _, host = h.api("GET", "/api/v1/hosts/b-1")
    assert host["result"]["facts"] == {"os": {"id": "debian"}}
    # not counted as enrollment refusals
    assert metric(h, 'outpost_hub_enroll_refused_total{reason="facts"}') == 0
    a.close()


def test_token_holder_replaces_a_pending_squatter(fleet):
    f = fleet(n=0)
    squatter = FakeAgent(f.hub.url, "web-9", ca=f.hub.ca)
    assert squatter.enroll()["result"]["state"] == "pending"
    tok = f.token()
    f.add("web-9", tok)
    f.wait_state("web-9", "up")
    audit = f.ok("--json", "audit").json
    entry = [e for e in audit if e["action"] == "host.replace"]
    assert entry and entry[0]["target"] == "web-9", audit
    # the squatter's key is no longer the host's: its signed requests are refused
    st, body = squatter.request("GET", "/api/v1/agents/web-9/tasks?wait=0")
    assert st == 401, body
    assert metric(f.hub, "outpost_hub_enroll_replaced_total") == 1
    # an accepted host is not replaced: another key is still a conflict
    thief = FakeAgent(f.hub.url, "web-9", ca=f.hub.ca, token=tok)
    st, body = thief.enroll(check=False)
    assert st == 409 and body["error"]["code"] == "conflict", body


# ---- tokens ----

def test_revoked_token_is_refused_at_once(hub):
    h = hub()
    p = h.cli("token", "create", "--operator", "--role", "viewer")
    assert p.returncode == 0, p.stderr
    secret = p.stdout.strip()
    assert h.cli("hosts", "ls", token=secret).returncode == 0
    tid = [t for t in h.cli("--json", "token", "ls").json if t["role"] == "viewer"][0]["id"]
    p = h.cli("token", "revoke", tid)
    assert p.returncode == 0 and "revoked" in p.stdout, p.stderr
    p = h.cli("hosts", "ls", token=secret)
    assert p.returncode == 3 and "unauthorized" in p.stderr
    assert any(e["action"] == "token.revoke" and e["target"] == tid
               for e in h.cli("--json", "audit").json)
    # bad input to the route
    assert h.cli("token", "revoke", "nosuchtoken").returncode == 3
    st, body = h.api("POST", "/api/v1/tokens/%s/other" % tid, {})
    assert st == 404 and body["error"]["code"] == "not_found"
    # a viewer may not revoke
    p = h.cli("token", "create", "--operator", "--role", "viewer")
    assert h.cli("token", "revoke", tid, token=p.stdout.strip()).returncode == 3


def test_enrollment_token_uses_are_counted(hub):
    h = hub()
    p = h.cli("token", "create", "--enroll", "--uses", "2")
    assert p.returncode == 0 and "at most 2 hosts" in p.stderr, p.stderr
    tok = p.stdout.strip()
    for name in ("u-1", "u-2"):
        assert FakeAgent(h.url, name, ca=h.ca, token=tok).enroll()["result"]["state"] == "up"
    assert FakeAgent(h.url, "u-3", ca=h.ca, token=tok).enroll()["result"]["state"] == "pending"
    enroll = [r for r in table(h.cli("token", "ls").stdout) if r[1] == "enroll"][0]
    assert "2/2" in enroll and "used" in enroll, enroll
    assert h.cli("token", "create", "--enroll", "--uses", "0").returncode == 2
    assert h.cli("token", "create", "--operator", "--role", "admin", "--uses", "2").returncode == 2


def test_operator_tokens_expire_in_90_days_unless_told(hub):
    h = hub()
    assert h.cli("token", "create", "--operator", "--role", "viewer").returncode == 0
    p = h.cli("token", "create", "--operator", "--role", "operator", "--ttl", "never")
    assert p.returncode == 0 and "(never)" in p.stderr
    toks = {t["role"]: t for t in h.cli("--json", "token", "ls").json if t["kind"] == "operator"}
    days = (toks["viewer"]["expires_ms"] - toks["viewer"]["created_ms"]) / 86400000
    assert 89.9 < days < 90.1
    assert toks["operator"]["expires_ms"] == 0
    st, body = h.api("POST", "/api/v1/tokens", {"kind": "operator", "role": "viewer"})
    assert st == 200 and body["result"]["expires_ms"] > 0


# ---- what a viewer sees of a task; what the audit log keeps ----

def test_viewer_sees_tasks_with_secrets_redacted(fleet):
    f = fleet(n=1)
    st, body = f.hub.api("POST", "/api/v1/tasks", {
        "target": "web-1", "plugin": "exec", "op": "run",
        "args": {"argv": ["true"], "stdin": "stdin-secret", "env": {"K": "hunter2"}}})
    assert st == 200, body
    tid = body["result"]["id"]
    f.ok("tasks", "wait", tid)
    p = f.ok("token", "create", "--operator", "--role", "viewer")
    viewer = p.stdout.strip()
    st, seen = f.hub.api("GET", "/api/v1/tasks/" + tid, token=viewer)
    assert st == 200
    text = json.dumps(seen)
    assert "hunter2" not in text and "stdin-secret" not in text
    assert seen["result"]["args"]["env"] == {"K": "[redacted]"}
    assert seen["result"]["args"]["stdin"] == "[redacted]"
    assert seen["result"]["args"]["argv"] == ["true"]
    _, lst = f.hub.api("GET", "/api/v1/tasks", token=viewer)
    assert "hunter2" not in json.dumps(lst)
    # an operator (here the admin) sees all
    _, full = f.hub.api("GET", "/api/v1/tasks/" + tid)
    assert full["result"]["args"]["env"] == {"K": "hunter2"}
    # the audit log says what ran, redacted, with the digest of the whole task
    entry = [e for e in f.ok("--json", "audit").json if e["action"] == "task.create"][0]
    d = entry["detail"]
    assert len(d["sha256"]) == 64 and "hunter2" not in json.dumps(entry)
    assert d["ran"]["args"]["argv"] == ["true"] and d["ran"]["args"]["env"] == {"K": "[redacted]"}
