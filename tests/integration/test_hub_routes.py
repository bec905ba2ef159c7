"""Every route of the hub is a row of its table with its own role and body limit (docs/
protocol.md): the verbs under /api/v1/agents/<id>/, /hosts/<id>/, /tasks/<id>/ and
/tokens/<id>/ each have one, a '*' in a route stands for exactly one path segment, and a body
over a verb's own limit is refused as it arrives, before the handler reads it."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
pytest.importorskip("nacl.signing", reason="python3-nacl (sh scripts/deps.sh)")
from test_ingest import enroll as enrolled  # noqa: E402

MiB = 1 << 20


def too_large(st, body, limit):
    """Refused by the route's own limit as the body arrived (httpd's message names it)."""
    return (st == 413 and body["ok"] is False and body["error"]["code"] == "too_large"
            and "limit of %d" % limit in body["error"]["message"])


def test_agent_verbs_have_their_own_body_limits(hub):
    h = hub()
    a = enrolled(h)
    path = "/api/v1/agents/web-1/"
    # A metrics post is refused at its own 4 MiB, not read up to the 16 MiB results take.
    st, body = a.request("POST", path + "metrics", b'{"epoch": "' + b" " * (5 * MiB) + b'"}')
    assert too_large(st, body, 4 * MiB), body
    st, body = a.request("POST", path + "beat", b'{"facts": {"x": "' + b"y" * (2 * MiB) + b'"}}')
    assert too_large(st, body, 1 * MiB), body
    # The same 5 MiB under results' own 16 MiB limit reaches its handler.
    # (Padded with whitespace: an unknown field would be refused, test_bodies.py.)
    big = b'{"results": []' + b" " * (5 * MiB) + b'}'
    st, body = a.request("POST", path + "results", big)
    assert st == 200 and body["result"]["accepted"] == 0, body
    # The bad request counter still counts the oversized metrics post.
    st, text = h.api("GET", "/metrics")
    line = [ln for ln in text.splitlines()
            if ln.startswith("outpost_hub_metric_requests_bad_total")]
    assert line and float(line[0].split()[-1]) == 1, line


def test_host_verbs_have_their_own_rows(hub):
    h = hub()
    enrolled(h)
    pad = {"pad": "x" * (8 << 10)}
    for verb in ("accept", "reject", "revoke", "remove"):
        st, body = h.api("POST", "/api/v1/hosts/web-1/" + verb, pad)
        assert too_large(st, body, 4 << 10), (verb, body)
    # labels takes 64 KiB: the same body reaches the handler.
    st, body = h.api("POST", "/api/v1/hosts/web-1/labels",
                     raw='{"set": {"rack": "r1"}}' + " " * (8 << 10))
    assert st == 200 and body["result"]["labels"]["rack"] == "r1", body
    st, body = h.api("POST", "/api/v1/tasks/notask/cancel", pad)
    assert too_large(st, body, 4 << 10), body
    st, body = h.api("POST", "/api/v1/tokens/notoken/revoke", pad)
    assert too_large(st, body, 4 << 10), body


def test_a_star_is_one_path_segment(hub):
    h = hub()
    a = enrolled(h)
    cases = [("POST", "/api/v1/hosts/web-1/bogus"), ("POST", "/api/v1/hosts/web-1/accept/x"),
             ("GET", "/api/v1/hosts/web-1/x"), ("POST", "/api/v1/hosts//accept"),
             ("POST", "/api/v1/tasks/t1/cancel/now"), ("POST", "/api/v1/tokens/x/y/revoke")]
    for method, path in cases:
        st, body = h.api(method, path, {})
        assert st == 404 and body["error"]["code"] == "not_found", (path, body)
        assert "no such endpoint" in body["error"]["message"], (path, body)
    # A path whose segments match but whose method has no row.
    st, body = h.api("GET", "/api/v1/hosts/web-1/accept")
    assert st == 404 and "not allowed" in body["error"]["message"], body
    for method, path in (("POST", "/api/v1/agents/web-1/bogus"),
                         ("GET", "/api/v1/agents/web-1/results"),
                         ("GET", "/api/v1/agents/web-1/tasks/more")):
        st, body = a.request(method, path, b"{}" if method == "POST" else b"")
        assert st == 404 and body["error"]["code"] == "not_found", (path, body)
    # The verbs that exist still work, one row each.
    st, body = a.request("GET", "/api/v1/agents/web-1/tasks?wait=0")
    assert st == 200 and body["result"]["tasks"] == [], body
    st, body = a.request("POST", "/api/v1/agents/web-1/beat", {"version": "fake"})
    assert st == 200 and body["result"]["requests_count_as_beats"] is True, body
    st, body = h.api("POST", "/api/v1/hosts/web-1/revoke", {})
    assert st == 200 and body["result"]["state"] == "revoked", body


def test_facts_doors_follow_facts_max_bytes(hub):
    """An operator who raises enroll.facts_max_bytes past the 1 MiB rows of enrollment and
    beats gets what config.md promises: those two rows take the facts and room for the rest."""
    h = hub({"enroll": {"facts_max_bytes": 2 * MiB}})
    a = enrolled(h)
    facts = {"x": "y" * (3 * MiB // 2)}
    st, body = a.request("POST", "/api/v1/agents/web-1/beat", {"version": "x", "facts": facts})
    assert st == 200, body
    st, body = a.request("POST", "/api/v1/agents/web-1/beat",
                         {"facts": {"x": "y" * (3 * MiB)}})
    assert too_large(st, body, 2 * MiB + (64 << 10)), body
    # Other agent rows keep their own limits.
    st, body = a.request("POST", "/api/v1/agents/web-1/metrics", b" " * (5 * MiB))
    assert too_large(st, body, 4 * MiB), body
