"""Every hub route that takes a body checks it against its table (docs/protocol.md, "Request
bodies"): an unknown field, a field of the wrong type and one out of range are refused with
bad_args in the one envelope, naming the field, and change nothing. One test per door."""
import base64
import os

import pytest

pytest.importorskip("nacl.signing", reason="python3-nacl (sh scripts/deps.sh)")
from fakeagent import FakeAgent  # noqa: E402

PUBKEY = base64.b64encode(bytes(32)).decode()


def refused(answer, field, what=None):
    """The answer is bad_args naming field (and saying what, when given)."""
    status, body = answer
    assert status == 400, body
    assert body["ok"] is False and body["error"]["code"] == "bad_args", body
    assert "'%s'" % field in body["error"]["message"] or \
        body["error"]["message"].startswith(field), body
    if what:
        assert what in body["error"]["message"], body
    return body["error"]["message"]


@pytest.fixture(scope="module")
def hub_with_host(tmp_path_factory):
    from outpost_testlib import Hub
    h = Hub(tmp_path_factory.mktemp("bodies"))
    h.start()
    token = h.cli("token", "create", "--enroll", "--ttl", "10m").stdout.strip()
    a = FakeAgent(h.url, "lab-1", ca=h.ca, token=token)
    a.enroll()
    yield h, a
    h.stop()


def test_enroll_refuses_unknown_and_mistyped_fields(hub_with_host):
    h, _ = hub_with_host
    good = {"host_id": "new-1", "pubkey": PUBKEY}
    assert "unknown field 'tokn'" in refused(
        h.api("POST", "/api/v1/enroll", dict(good, tokn="ope_x"), token=""), "tokn")
    refused(h.api("POST", "/api/v1/enroll", dict(good, host_id=7), token=""), "host_id",
            "must be string")
    refused(h.api("POST", "/api/v1/enroll", dict(good, facts=[1]), token=""), "facts",
            "must be object")
    refused(h.api("POST", "/api/v1/enroll", {"pubkey": PUBKEY}, token=""), "host_id",
            "missing required field")
    refused(h.api("POST", "/api/v1/enroll", dict(good, hostname="x" * 256), token=""),
            "hostname", "at most 255 bytes")
    # Nothing was recorded.
    assert h.api("GET", "/api/v1/hosts/new-1")[0] == 404


@pytest.mark.parametrize("verb", ["accept", "reject", "revoke", "remove"])
def test_host_state_changes_take_no_field(hub_with_host, verb):
    h, _ = hub_with_host
    path = "/api/v1/hosts/lab-1/%s" % verb
    refused(h.api("POST", path, {"force": True}), "force", "unknown field")
    refused(h.api("POST", path, raw="[]"), "expected a JSON object")
    assert h.api("GET", "/api/v1/hosts/lab-1")[1]["result"]["state"] in ("up", "down")


def test_host_state_change_takes_an_empty_body(hub_with_host):
    h, _ = hub_with_host
    # Accepting an accepted host is a conflict: the body was taken, the state decided.
    status, body = h.api("POST", "/api/v1/hosts/lab-1/accept", raw="")
    assert status == 409 and body["error"]["code"] == "conflict", body


def test_labels_refuse_unknown_and_mistyped_fields(hub_with_host):
    h, _ = hub_with_host
    path = "/api/v1/hosts/lab-1/labels"
    refused(h.api("POST", path, {"set": {"role": "web"}, "add": {"x": "y"}}), "add",
            "unknown field")
    refused(h.api("POST", path, {"set": [["role", "web"]]}), "set", "must be object")
    refused(h.api("POST", path, {"remove": "role"}), "remove", "must be array")
    refused(h.api("POST", path, {"set": {"role": "x" * 256}}), "label 'role'")
    assert h.api("GET", "/api/v1/hosts/lab-1")[1]["result"]["labels"] == {}


def test_task_creation_refuses_unknown_mistyped_and_out_of_range_fields(hub_with_host):
    h, _ = hub_with_host
    good = {"target": "lab-1", "plugin": "sys", "op": "ping"}
    refused(h.api("POST", "/api/v1/tasks", dict(good, retries=3)), "retries", "unknown field")
    refused(h.api("POST", "/api/v1/tasks", dict(good, timeout_ms="5000")), "timeout_ms",
            "must be integer")
    refused(h.api("POST", "/api/v1/tasks", dict(good, args=["-l"])), "args", "must be object")
    refused(h.api("POST", "/api/v1/tasks", dict(good, timeout_ms=0)), "timeout_ms")
    refused(h.api("POST", "/api/v1/tasks", dict(good, expires_in_ms=10)), "expires_in_ms")
    refused(h.api("POST", "/api/v1/tasks", dict(good, max_failures=-1)), "max_failures")
    refused(h.api("POST", "/api/v1/tasks", dict(good, batch="ten")), "batch")
    # The one name rule: an op an executable plugin could not declare is refused here too.
    refused(h.api("POST", "/api/v1/tasks", dict(good, op="_ping")), "plugin and op")
    assert h.api("GET", "/api/v1/tasks")[1]["result"] == []


def test_task_cancel_takes_no_field(hub_with_host):
    h, _ = hub_with_host
    refused(h.api("POST", "/api/v1/tasks/t-1/cancel", {"why": "test"}), "why",
            "unknown field")


def test_token_creation_refuses_unknown_mistyped_and_out_of_range_fields(hub_with_host):
    h, _ = hub_with_host
    before = len(h.api("GET", "/api/v1/tokens")[1]["result"])
    refused(h.api("POST", "/api/v1/tokens", {"kind": "enroll", "label": {"a": "b"}}), "label",
            "unknown field")
    refused(h.api("POST", "/api/v1/tokens", {"kind": "enroll", "uses": "3"}), "uses",
            "must be integer")
    refused(h.api("POST", "/api/v1/tokens", {"kind": "enroll", "ttl_s": 1.5}), "ttl_s",
            "must be integer")
    refused(h.api("POST", "/api/v1/tokens", {"kind": "enroll", "uses": -1}), "uses")
    refused(h.api("POST", "/api/v1/tokens", {"kind": ["enroll"]}), "kind", "must be string")
    assert len(h.api("GET", "/api/v1/tokens")[1]["result"]) == before


def test_token_revoke_takes_no_field(hub_with_host):
    h, _ = hub_with_host
    refused(h.api("POST", "/api/v1/tokens/abc/revoke", {"now": True}), "now",
            "unknown field")


def test_agent_beat_refuses_unknown_and_mistyped_fields(hub_with_host):
    _, a = hub_with_host
    path = "/api/v1/agents/lab-1/beat"
    refused(a.request("POST", path, {"version": "1", "uptime": 5}), "uptime", "unknown field")
    refused(a.request("POST", path, {"version": 1}), "version", "must be string")
    refused(a.request("POST", path, {"facts": "linux"}), "facts", "must be object")
    status, body = a.request("POST", path, {"version": "1"})
    assert status == 200 and body["ok"], body


def test_agent_results_refuse_unknown_and_mistyped_fields(hub_with_host):
    _, a = hub_with_host
    path = "/api/v1/agents/lab-1/results"
    refused(a.request("POST", path, {"results": [], "more": 1}), "more", "unknown field")
    refused(a.request("POST", path, {"results": {}}), "results", "must be array")
    msg = refused(a.request("POST", path, {"results": [
        {"task_id": "t-1", "state": "ok", "exit": 0}]}), "exit", "unknown field")
    assert msg.startswith("result 0: "), msg
    refused(a.request("POST", path, {"results": [
        {"task_id": "t-1", "state": "ok", "started_ms": "now"}]}), "started_ms",
        "must be integer")
    status, body = a.request("POST", path, {"results": []})
    assert status == 200 and body["result"]["accepted"] == 0, body
