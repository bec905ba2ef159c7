"""The one error envelope, as the attack suite checks it on every refusal."""


def refused(status, body, code=None, statuses=None):
    """Asserts {"ok": false, "error": {"code", "message"}} with a message a user can act on;
    returns the message. body: parsed JSON (or None)."""
    assert isinstance(body, dict), "not the JSON envelope: %r" % (body,)
    assert body.get("ok") is False and set(body) == {"ok", "error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    if statuses is not None:
        assert status in statuses, (status, body)
    msg = body["error"]["message"]
    assert isinstance(msg, str) and len(msg) > 10, body
    return msg
