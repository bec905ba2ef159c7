"""Held attack: oversized, deeply nested and wide JSON bodies to both daemons. Each is refused
in the one envelope (too_large, bad_json, bad_args) without running anything, and the daemon
answers the next request at once: nothing is parsed past its limits, nothing is lost."""
import json
import time

import requests

from conftest import HUB_CONF
from envelope import refused

DEEP = 100000  # far past any limit (32 by default), cheap to send: 200 KB


def deep(n, inner="1"):
    return "[" * n + inner + "]" * n


def test_agent_refuses_oversized_deep_and_wide_bodies(agent, tmp_path):
    a = agent({"api": {"body_limit": 1 << 20}})
    mark = tmp_path / "ran"
    run = {"argv": ["sh", "-c", "echo ran >> %s" % mark]}

    # Over the body limit, by Content-Length: refused before it is read.
    big = json.dumps({"args": dict(run, pad="x" * (2 << 20))})
    r = a.request("POST", "/v1/exec/run", big)
    refused(r.status, r.json, "too_large", (413,))
    # Nested past max_depth, in args and around the whole body.
    for body in ('{"args": {"argv": %s}}' % deep(DEEP), deep(DEEP, "{}"),
                 '{"args": {"argv": ["true"], "env": %s}}' % deep(33)):
        r = a.request("POST", "/v1/exec/run", body)
        assert "deep" in refused(r.status, r.json, "bad_json", (400,))
    # Wide: 50,000 unknown arguments under the limit.
    wide = json.dumps({"args": dict(run, **{"k%d" % i: i for i in range(50000)})})
    assert len(wide) < 1 << 20
    r = a.request("POST", "/v1/exec/run", wide)
    refused(r.status, r.json, "bad_args", (400,))
    # Not JSON at all, and JSON with a raw NUL (tests/fuzz found jansson taking one).
    for body in (b"\xff\xfe{", b'{"args": {"argv": ["true"], "n": 5\x00 }}'):
        r = a.request("POST", "/v1/exec/run", body)
        refused(r.status, r.json, "bad_json", (400,))
    # Still whole, at once, and nothing ran.
    t0 = time.monotonic()
    assert a.call("sys", "ping").ok
    assert time.monotonic() - t0 < 2
    assert not mark.exists()
    assert "exec: ran" not in a.log()


def test_hub_refuses_oversized_deep_and_wide_bodies(hub):
    h = hub(HUB_CONF)
    # Enrollment takes bodies from anyone: 1 MiB at most.
    status, body = h.api("POST", "/api/v1/enroll", raw="x" * (2 << 20), token="")
    refused(status, body, "too_large", (413,))
    status, body = h.api("POST", "/api/v1/enroll", raw=deep(DEEP, "{}"), token="")
    assert "deep" in refused(status, body, "bad_json", (400,))
    facts = json.loads(deep(40, "{}"))
    status, body = h.api("POST", "/api/v1/enroll", {"host_id": "deep-1", "pubkey": "A" * 44,
                                                   "facts": facts}, token="")
    refused(status, body, statuses=(400,))
    # An operator's task with deep or wide args: refused, no task made.
    # (The hub does not know ops' arguments: wide args go to the hosts, here none: 404.)
    for args, statuses in (('{"argv": %s}' % deep(DEEP), (400,)),
                           (json.dumps({"k%d" % i: i for i in range(50000)}), (400, 404))):
        raw = '{"target": "*", "plugin": "exec", "op": "run", "args": %s}' % args
        status, body = h.api("POST", "/api/v1/tasks", raw=raw)
        refused(status, body, statuses=statuses)
    assert h.api("GET", "/api/v1/tasks")[1]["result"] == []
    # A signed-agent route over its limit from someone who is not an agent: refused first.
    r = requests.post(h.url + "/api/v1/agents/x/results", data=b"[" * (1 << 20), verify=h.ca,
                      timeout=30)
    assert r.status_code in (401, 413), r.text
    t0 = time.monotonic()
    assert h.api("GET", "/api/v1/health", token="")[0] == 200
    assert time.monotonic() - t0 < 2
