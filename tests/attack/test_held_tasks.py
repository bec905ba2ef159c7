"""Held attacks on task delivery: a hostile hub (outpost_testlib.FakeHub, speaking
docs/protocol.md with a key the agent pinned at enrollment) hands a real agent tasks that are
forged, tampered, re-targeted, re-encoded, expired, too long-lived and replayed. Whatever
carried them, the agent must run only what the pinned key signed for this host, once, before
it expires (docs/security.md). Each attack also proves nothing ran: every task appends to a
marker file of its own."""
import json
import os
import time

from conftest import b64, canonical, wait_for

REFUSED_SIG = "the signature does not verify with the pinned hub key"


def enrolled(fake_hub, agent, host_id):
    a = agent({"hub": {"url": fake_hub.url, "host_id": host_id}})
    wait_for(lambda: fake_hub.polls > 0, 10, what="the agent's first long-poll")
    a.wait_log("pinned the hub's signing key ed25519:%s" % b64(fake_hub.key.verify_key.encode()))
    return a


def test_hostile_hub_cannot_make_the_agent_run_what_it_did_not_sign(fake_hub, agent, tmp_path):
    import nacl.signing
    fh = fake_hub
    a = enrolled(fh, agent, "victim-1")
    mark = {k: tmp_path / ("ran-" + k) for k in "abcdefg"}

    def script(k):
        return "echo ran >> %s" % mark[k]

    # (a) Control: signed with the key the agent pinned, for this host: it runs, once.
    control = fh.sign(fh.task("t-control", "victim-1", script("a")))
    fh.hand(control)
    r = fh.final("t-control")
    assert r["state"] == "ok", r
    assert mark["a"].read_text() == "ran\n"
    first_response = r["response"]

    # (b) Forged: signed by another key.
    other = nacl.signing.SigningKey.generate()
    fh.hand(fh.sign(fh.task("t-forged", "victim-1", script("b")), key=other))
    # (b') Tampered: a valid signature, then the arguments changed.
    tampered = fh.sign(fh.task("t-tampered", "victim-1", "true"))
    tampered["task"]["args"]["script"] = script("f")
    fh.hand(tampered)
    # (c) Re-targeted: validly signed, for another host.
    fh.hand(fh.sign(fh.task("t-retarget", "victim-2", script("c"))))
    # (d) Expired a second ago.
    fh.hand(fh.sign(fh.task("t-expired", "victim-1", script("d"), expires_in_ms=-1000)))
    want = {"t-forged": ("refused", REFUSED_SIG),
            "t-tampered": ("refused", REFUSED_SIG),
            "t-retarget": ("refused", "the task is for host 'victim-2', this is 'victim-1'"),
            "t-expired": ("expired", "it expired at")}
    for tid, (state, why) in want.items():
        r = fh.final(tid)
        assert r["state"] == state, (tid, r)
        assert r["response"]["ok"] is False and why in r["response"]["error"]["message"], r
        a.wait_log("%s task %s: %s" % (state, tid, why))

    # (e) Replay of the control task: its stored result, not a second run.
    fh.hand(control)
    r = fh.final("t-control", count=2)
    assert r["state"] == "ok" and r["response"] == first_response, r
    a.wait_log("task t-control (exec.run) ok (its stored result, not run again)")

    # A forged task cannot burn the id of a real one: the real one still runs.
    fh.hand(fh.sign(fh.task("t-later", "victim-1", "true"), key=other))
    assert fh.final("t-later")["state"] == "refused"
    fh.hand(fh.sign(fh.task("t-later", "victim-1", script("g"))))
    assert fh.final("t-later", count=2)["state"] == "ok"

    assert mark["a"].read_text() == "ran\n"
    assert mark["g"].read_text() == "ran\n"
    for k in "bcdf":
        assert not mark[k].exists(), k
    assert a.metric("outpost_agent_hub_tasks_refused_total") == 5
    assert a.metric("outpost_agent_hub_tasks_replayed_total") == 1
    # Every request the agent made was signed as docs/protocol.md says.
    assert fh.problems == []

    # A hub that sends the agent back to enrollment to slip it another signing key: refused.
    fh.enroll_key = other
    fh.refuse_polls = True
    a.wait_log("the hub's signing key is now ed25519:%s, not the one pinned" %
               b64(other.verify_key.encode()))
    assert json.load(open(os.path.join(a.state_dir, "hub.json")))["hub_pubkey"] == \
        b64(fh.key.verify_key.encode())


def test_re_encoded_tasks_are_judged_by_what_was_signed(fake_hub, agent, tmp_path):
    """The signature covers the canonical text of the task (docs/protocol.md), so a carrier
    that re-encodes a task can only change its meaning by breaking the signature."""
    fh = fake_hub
    a = enrolled(fh, agent, "victim-3")
    mark = {k: tmp_path / ("ran-" + k) for k in "abcde"}

    def script(k):
        return "echo ran >> %s" % mark[k]

    # (a) A number written another way: expires_ms as a real. Its canonical text differs.
    t = fh.task("t-real", "victim-3", script("a"))
    signed = fh.sign(t)
    body = json.dumps({"ok": True, "result": {"tasks": [signed]}})
    body = body.replace('"expires_ms": %d' % t["expires_ms"], '"expires_ms": %d.0' % t["expires_ms"])
    assert ".0" in body
    fh.hand_raw(body.encode())
    r = fh.final("t-real")
    assert r["state"] == "refused" and REFUSED_SIG in r["response"]["error"]["message"], r

    # (b) The same text with escapes and other spacing: the same task once decoded, so the
    # signature holds and it runs (once), as signed.
    t = fh.task("t-escaped", "victim-3", script("b"))
    text = json.dumps({"ok": True, "result": {"tasks": [fh.sign(t)]}}, indent=3)
    text = text.replace('"victim-3"', '"\\u0076ictim-3"')
    fh.hand_raw(text.encode())
    assert fh.final("t-escaped")["state"] == "ok"

    # (c) Duplicate keys: a second host_id after the signed one. The agent refuses the whole
    # answer (nothing in it runs, not even the valid task beside it).
    t = fh.task("t-dup", "victim-3", script("c"))
    good = fh.sign(fh.task("t-beside", "victim-3", script("d")))
    raw = canonical({"ok": True, "result": {"tasks": [fh.sign(t), good]}})
    raw = raw.replace('"host_id":"victim-3"', '"host_id":"victim-3","host_id":"victim-3"', 1)
    polls = fh.polls
    fh.hand_raw(raw.encode())
    wait_for(lambda: fh.polls >= polls + 3, 10, what="the agent to poll again")
    assert "t-dup" not in fh.results and "t-beside" not in fh.results
    a.wait_log("with HTTP 200 and no JSON envelope")

    # (d) A signed task wrapped in a non-object, or without its signature: refused.
    t = fh.task("t-nosig", "victim-3", script("e"))
    fh.hand({"task": t})
    r = fh.final("t-nosig")
    assert r["state"] == "refused" and "malformed" in r["response"]["error"]["message"], r

    for k in "acde":
        assert not mark[k].exists(), k
    assert mark["b"].read_text() == "ran\n"
    assert fh.problems == []


def test_replayed_and_long_lived_tasks_after_a_restart(fake_hub, agent, tmp_path):
    """A captured task replayed after the agent restarted is answered from the ledger; a task
    valid for longer than the ledger keeps ids is refused outright."""
    fh = fake_hub
    a = enrolled(fh, agent, "victim-4")
    mark = tmp_path / "ran"
    task = fh.sign(fh.task("t-once", "victim-4", "echo ran >> %s" % mark))
    fh.hand(task)
    assert fh.final("t-once")["state"] == "ok"
    polls = fh.polls
    a.restart()
    # Two polls of the new process: the fake holds each 1 s, so no handler of the old
    # process's poll is left to take the task and answer a dead connection.
    wait_for(lambda: fh.polls >= polls + 2, 10, what="long-polls after the restart")
    fh.hand(task)
    r = fh.final("t-once", count=2)
    assert r["state"] == "ok", r
    assert mark.read_text() == "ran\n"

    eight_days = 8 * 86400 * 1000
    fh.hand(fh.sign(fh.task("t-forever", "victim-4", "echo ran >> %s" % mark,
                            expires_in_ms=eight_days)))
    r = fh.final("t-forever")
    assert r["state"] == "refused" and "ledger remembers" in r["response"]["error"]["message"]
    # A task issued in the past that expired long ago, whatever its timeout.
    t = fh.task("t-old", "victim-4", "echo ran >> %s" % mark, expires_in_ms=-86400000)
    t["issued_ms"] -= 2 * 86400000
    fh.hand(fh.sign(t))
    assert fh.final("t-old")["state"] == "expired"
    time.sleep(0.2)
    assert mark.read_text() == "ran\n"
