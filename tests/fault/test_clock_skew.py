"""Fault: the agent's clock is off the hub's (docs/agent-link.md, A skewed clock). The hub
answers a correctly signed request made at the wrong time with `unauthorized`, a message
starting `clock skew:` and X-Outpost-Hub-Time (docs/protocol.md); the FakeHub of the harness
answers that way, so the agent's side is tested here without moving the machine's clock. The
agent says so once, with the offset, shows clock_skew_ms in /v1/health and /metrics, backs off
(no tight loop, no re-enrollment loop), and recovers by itself when the clocks agree."""
import time

from outpost_testlib import wait_for

SKEW_MS = 360000  # the fault review's agent: 360 s off


def hub_status(a):
    return a.get("/v1/health").result["hub"]


def test_skewed_agent_says_so_once_backs_off_and_recovers(fake_hub, agent):
    fh = fake_hub
    fh.clock_offset_ms = SKEW_MS
    a = agent({"hub": {"url": fh.url, "host_id": "skew-1"}})
    st = wait_for(lambda: (lambda s: s if s.get("clock_skew_ms") else None)(hub_status(a)), 10,
                  what=lambda: "clock_skew_ms in /v1/health: %s" % hub_status(a))
    assert abs(st["clock_skew_ms"] - SKEW_MS) < 5000, st
    assert not st["connected"] and "clock" in st["last_error"], st
    assert abs(a.metric("outpost_agent_hub_clock_skew_ms") - SKEW_MS) < 5000
    signed0 = fh.signed
    time.sleep(8)
    # Backed off: each kind of request (poll, beat, results, metrics) at most every 5 s or so,
    # not a tight loop; and never back to enrollment.
    assert fh.signed - signed0 <= 12, fh.signed - signed0
    assert fh.enrolls == 1, fh.enrolls
    assert a.log().count("the hub refuses this agent's clock") == 1, a.log()
    assert "enrolling again" not in a.log()
    assert fh.polls == 0

    # The clock is right again: the agent is back by itself, says so, and runs tasks.
    fh.clock_offset_ms = 0
    wait_for(lambda: fh.polls > 0, 30, what="a long-poll after the clocks agree")
    wait_for(lambda: hub_status(a)["clock_skew_ms"] == 0, 10, what="clock_skew_ms back to 0")
    a.wait_log("the hub takes this agent's clock again")
    fh.hand(fh.sign(fh.task("t-after-skew", "skew-1", "echo back")))
    r = fh.final("t-after-skew")
    assert r["state"] == "ok", r
    assert not fh.problems, fh.problems
