"""Held attack: every route of the hub with every kind of credential answers the right status.
The routes come from the hub's own route table (src/hub/api.c, one row per route: method,
path, role), so a route added there is tried here without anyone remembering to; the roles
are those of docs/security.md: none < agent (a signed, accepted host) and viewer < operator <
admin (operator tokens). A credential that is missing, wrong, expired, of the wrong kind or of
a role below the route's gets 401 or 403 in the one envelope; one that is good enough never
does (the handler may still refuse the request itself, e.g. 404 for a host that is not there).
"""
import base64
import hashlib
import json
import os
import re
import time

import pytest
import requests

from conftest import HUB_CONF, SRC_ROOT, deep_merge

ROLES = {"ROLE_NONE": 0, "ROLE_AGENT": 1, "ROLE_VIEWER": 2, "ROLE_OPERATOR": 3, "ROLE_ADMIN": 4}
ROW = re.compile(r'\{\s*"(GET|POST|PUT|DELETE|PATCH)",\s*"([^"]+)",\s*\w+,\s*(ROLE_\w+),')
AGENT_ID = "cred-1"


def hub_routes():
    """(method, path pattern, role) of every row of the hub's route table."""
    src = open(os.path.join(SRC_ROOT, "src/hub/api.c")).read()
    table = src[src.index("routes[] = {"):]
    table = table[:table.index("};")]
    rows = [(m, p, ROLES[r]) for m, p, r in ROW.findall(table)]
    assert len(rows) >= 15, rows  # the table's shape changed: fix ROW
    return rows


def documented_routes():
    """(method, path) of the operator table of docs/protocol.md, each '<id>' as '*'."""
    doc = open(os.path.join(SRC_ROOT, "docs/protocol.md")).read()
    rows = re.findall(r"^\| (GET|POST|PUT|DELETE|PATCH) \| (/\S+) \|", doc, re.M)
    return {(m, re.sub(r"<[a-z_]+>", "*", p)) for m, p in rows}


def test_every_operator_route_is_documented():
    """docs/protocol.md's route table is what operators and reviewers read: a route the hub
    serves to tokens and the table does not list is a door nobody looks at."""
    doc = documented_routes()
    missing = ["%s %s" % (m, p) for m, p, role in hub_routes()
               if role >= ROLES["ROLE_VIEWER"] and (m, p) not in doc]
    assert not missing, "routes of src/hub/api.c missing from docs/protocol.md: %s" % missing


def concrete(method, pattern):
    """A request path for a route pattern: each '*' segment filled with what the route
    expects."""
    fill = {"agents": AGENT_ID, "hosts": "nohost", "tasks": "notask", "tokens": "notoken"}
    parts = pattern.split("/")
    for i, p in enumerate(parts):
        if p == "*":
            parts[i] = fill.get(parts[i - 1], "x")
    path = "/".join(parts)
    return path + "?wait=0" if path.endswith("/tasks") and "/agents/" in path else path


class Caller:
    """One credential: how it decorates a request, and the role it stands for (-1: none)."""

    def __init__(self, name, role, token=None, key=None):
        self.name, self.role, self.token, self.key = name, role, token, key

    def headers(self, method, path, body):
        if self.key is not None:
            t = str(int(time.time() * 1000))
            msg = "%s\n%s\n%s\n%s" % (method, path, t, hashlib.sha256(body).hexdigest())
            sig = base64.b64encode(self.key.sign(msg.encode()).signature).decode()
            return {"X-Outpost-Host": AGENT_ID, "X-Outpost-Time": t, "X-Outpost-Signature": sig}
        return {"Authorization": "Bearer " + self.token} if self.token else {}


def expected(route_role, caller):
    """None when the caller may pass auth, else (status, code)."""
    if route_role == 0:
        return None
    if route_role == ROLES["ROLE_AGENT"]:
        return None if caller.role == ROLES["ROLE_AGENT"] else (401, "unauthorized")
    if caller.role < ROLES["ROLE_VIEWER"]:
        return (401, "unauthorized")  # no operator token at all (an agent's signature is not)
    return None if caller.role >= route_role else (403, "forbidden")


def test_every_route_with_every_credential(hub):
    import nacl.signing
    # Failures here are the point (hundreds a minute from one address, unknown credentials
    # among them): raise the limits so that the good credentials are not refused, nor the
    # last routes' bad ones answered busy, for the earlier ones' sake.
    h = hub(deep_merge({"auth": {"max_failures_per_min": 100000,
                                 "max_unknown_per_min": 100000}}, HUB_CONF))
    tokens = {}
    for role in ("viewer", "operator", "admin"):
        status, body = h.api("POST", "/api/v1/tokens", {"kind": "operator", "role": role})
        assert status == 200, body
        tokens[role] = body["result"]["token"]
    status, body = h.api("POST", "/api/v1/tokens", {"kind": "operator", "role": "admin",
                                                    "ttl_s": 1})
    assert status == 200, body
    expired, expired_at = body["result"]["token"], time.time() + 1
    status, body = h.api("POST", "/api/v1/tokens", {"kind": "enroll"})
    assert status == 200, body
    enroll_token = body["result"]["token"]
    # A real host's key, enrolled (and accepted) with the enrollment token.
    key = nacl.signing.SigningKey.generate()
    status, body = h.api("POST", "/api/v1/enroll", {
        "host_id": AGENT_ID, "pubkey": base64.b64encode(key.verify_key.encode()).decode(),
        "token": enroll_token, "hostname": AGENT_ID, "version": "0.1.0", "facts": {}}, token="")
    assert status == 200 and body["result"]["state"] == "up", body
    other = nacl.signing.SigningKey.generate()

    callers = [Caller("no credential", -1), Caller("unknown token", -1, token="opo_" + "x" * 43),
               Caller("enrollment token", -1, token=enroll_token),
               Caller("expired admin token", -1, token=expired),
               Caller("viewer", ROLES["ROLE_VIEWER"], token=tokens["viewer"]),
               Caller("operator", ROLES["ROLE_OPERATOR"], token=tokens["operator"]),
               Caller("admin", ROLES["ROLE_ADMIN"], token=tokens["admin"]),
               Caller("agent signature", ROLES["ROLE_AGENT"], key=key),
               Caller("agent signature, wrong key", -1, key=other)]
    time.sleep(max(0, expired_at - time.time()) + 0.1)

    wrong = []
    tried = 0
    for method, pattern, role in hub_routes():
        path = concrete(method, pattern)
        for c in callers:
            body = b"{}" if method == "POST" else b""
            hdrs = c.headers(method, path, body)
            if body:
                hdrs["Content-Type"] = "application/json"
            r = requests.request(method, h.url + path, data=body or None, headers=hdrs,
                                 verify=h.ca, timeout=30)
            tried += 1
            want = expected(role, c)
            try:
                code = r.json()["error"]["code"] if r.status_code >= 400 else None
            except (ValueError, KeyError, TypeError):
                code = "(not the envelope)"
            if want is None and r.status_code in (401, 403):
                wrong.append("%s %s as %s: %d %s, should pass" % (method, path, c.name,
                                                                  r.status_code, code))
            elif want is not None and (r.status_code, code) != want:
                wrong.append("%s %s as %s: %d %s, want %d %s" % (
                    method, path, c.name, r.status_code, code, want[0], want[1]))
    assert not wrong, "\n".join(wrong)
    assert tried >= 15 * len(callers)
    # The hub is still whole: the admin reads the audit log.
    assert h.api("GET", "/api/v1/audit")[0] == 200


@pytest.mark.parametrize("path", ["/api/v1/agents/%s/tasks?wait=0" % AGENT_ID,
                                  "/api/v1/agents/other-1/tasks?wait=0"])
def test_agent_signature_is_bound_to_its_path_and_time(hub, path):
    """A valid signature replayed on another path, another host's path, or with a time far
    off the hub's clock: 401/403, never the other host's tasks."""
    import nacl.signing
    h = hub(HUB_CONF)
    status, body = h.api("POST", "/api/v1/tokens", {"kind": "enroll"})
    key = nacl.signing.SigningKey.generate()
    status, body = h.api("POST", "/api/v1/enroll", {
        "host_id": AGENT_ID, "pubkey": base64.b64encode(key.verify_key.encode()).decode(),
        "token": body["result"]["token"], "hostname": AGENT_ID, "facts": {}}, token="")
    assert status == 200, body
    me = Caller("agent", ROLES["ROLE_AGENT"], key=key)
    # Signed for the health path, sent to path.
    hdrs = me.headers("GET", "/api/v1/health", b"")
    r = requests.get(h.url + path, headers=hdrs, verify=h.ca, timeout=30)
    assert r.status_code in (401, 403), r.text
    # Signed for path, but 10 minutes old.
    hdrs = me.headers("GET", path, b"")
    t = str(int(time.time() * 1000) - 600000)
    msg = "GET\n%s\n%s\n%s" % (path, t, hashlib.sha256(b"").hexdigest())
    hdrs.update({"X-Outpost-Time": t,
                 "X-Outpost-Signature": base64.b64encode(key.sign(msg.encode()).signature)})
    r = requests.get(h.url + path, headers=hdrs, verify=h.ca, timeout=30)
    assert r.status_code in (401, 403), r.text
    assert json.loads(r.text)["ok"] is False
