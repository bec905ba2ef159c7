"""Liveness without beats while an agent's long-poll is held (docs/agent-link.md, Beats): a real
outpost-hub and real outpost-agents on loopback. The hub turns TCP keepalive on for the
connection of each held poll and counts the poll as a sign of life while the connection is
healthy; it says so in its beat answer, and the agent then beats only once a minute. An idle
agent stays up on its held poll alone; a killed agent (its kernel closes the connection) is down
within about missed_beats x beat_ms; a stopped one (its kernel still answers the probes) when
its poll ends unrenewed, missed_beats x beat_ms after the poll wait. A hub that does not say so
(an older one) still gets a beat every interval.

A host that stops answering the probes (powered off, network cut) cannot be made on loopback
without privileges; tests/core/tcpalive_test.c checks that judgement on real sockets."""
import re
import signal
import threading
import time
import urllib.parse

import pytest

from outpost_testlib import FakeHub, wait_for

BEAT_MS = 1000
MISSED = 3
METRICS_OFF = {"interval_ms": 365 * 86400 * 1000, "statsd_listen": ""}


def start(hub, agent, poll_wait_s, host="idle-1"):
    h = hub({"agents": {"beat_ms": BEAT_MS, "missed_beats": MISSED, "poll_wait_s": poll_wait_s}})
    token = h.cli("token", "create", "--enroll", "--ttl", "10m").stdout.strip()
    a = agent({"hub": {"url": h.url, "ca": h.ca, "token": token, "host_id": host},
               "plugins": {"metrics": METRICS_OFF}})
    wait_for(lambda: link(a)["beats_sent"] >= 1 and state(h, host) == "up", 30,
             what="the agent up at the hub")
    # The facts sys.facts gathers at start may go out with a beat of their own.
    time.sleep(2)
    return h, a


def link(a):
    return a.get("/v1/health").result["hub"]


def state(h, host):
    st, body = h.api("GET", "/api/v1/hosts/" + host)
    return body["result"]["state"] if st == 200 else None


def hub_metric(h, name):
    st, text = h.api("GET", "/metrics")
    return int(re.search(r"^%s (\d+)$" % name, text, re.M).group(1))


def test_idle_agent_stays_up_on_its_held_poll_without_beats(hub, agent):
    """Over 8 beat intervals (and a poll renewal) the agent sends no beat and is up all along;
    before, it beat every 1-1.2 s."""
    h, a = start(hub, agent, poll_wait_s=4)
    before, hub_before = link(a)["beats_sent"], hub_metric(h, "outpost_hub_agent_beats_total")
    seen = set()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 8 * BEAT_MS / 1000:
        seen.add(state(h, "idle-1"))
        time.sleep(0.2)
    assert seen == {"up"}, seen
    assert hub_metric(h, "outpost_hub_agents_connected") == 1
    # The forced beat comes a minute after the last one: none in this window.
    after = link(a)
    assert after["beats_sent"] == before, (before, after)
    assert hub_metric(h, "outpost_hub_agent_beats_total") == hub_before
    assert after["connected"] is True


def test_killed_agent_is_down_within_missed_beats(hub, agent):
    """SIGKILL: the agent's kernel closes the poll's connection; the hub sees it at its next
    sweep. Well before the poll wait (20 s) would have ended the poll."""
    h, a = start(hub, agent, poll_wait_s=20)
    time.sleep(2 * BEAT_MS / 1000)  # idle: no beat, the poll held
    assert state(h, "idle-1") == "up"
    a.kill()
    t0 = time.monotonic()
    wait_for(lambda: state(h, "idle-1") == "down", 20, what="the killed host down")
    took = time.monotonic() - t0
    # missed_beats x beat_ms, the once-a-second sweep, and room for a loaded machine.
    assert took <= MISSED * BEAT_MS / 1000 + 1 + 4, took
    assert "host idle-1 is down: no sign of life" in h.log()


def test_stopped_agent_is_down_when_its_poll_ends_unrenewed(hub, agent):
    """SIGSTOP: the kernel still answers the probes, so the held poll counts until the hub
    answers it at the poll wait (10 s); nobody asks again, and the host is down missed_beats x
    beat_ms later. SIGCONT: up again."""
    poll_wait = 10
    h, a = start(hub, agent, poll_wait_s=poll_wait)
    # Stop it just after a poll renewal: the agent's last contact moves when a poll answers
    # (it sends no beat and no metrics), and it asks again at once.
    last = link(a)["last_contact_ms"]
    wait_for(lambda: link(a)["last_contact_ms"] != last, poll_wait + 10, step=0.02,
             what="a poll renewal")
    time.sleep(0.5)
    assert hub_metric(h, "outpost_hub_agents_connected") == 1
    a.signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        wait_for(lambda: state(h, "idle-1") == "down", poll_wait + 25,
                 what="the stopped host down")
        took = time.monotonic() - t0
        assert took >= poll_wait - 1.5, took  # up while its poll was held
        assert took <= poll_wait + MISSED * BEAT_MS / 1000 + 1 + 8, took
    finally:
        a.signal(signal.SIGCONT)
    wait_for(lambda: state(h, "idle-1") == "up", 15, what="the host up again")


class OlderHub(FakeHub):
    """A hub from before held polls counted: its beat answer says only
    requests_count_as_beats, and it holds each long-poll for 5 s."""

    def __init__(self):
        super().__init__()
        self.beats = 0

    def handle(self, rq, method):
        parts = urllib.parse.urlsplit(rq.path).path.split("/")
        if len(parts) == 6 and parts[5] in ("beat", "tasks"):
            n = int(rq.headers.get("Content-Length") or 0)
            body = rq.rfile.read(n) if n else b""
            if not self.check_signature(rq, method, parts[4], body):
                return self.reply(rq, 401, code="unauthorized", message="bad signature")
            if parts[5] == "beat":
                with self.cond:
                    self.beats += 1
                return self.reply(rq, 200, {"interval_ms": 1000,
                                            "requests_count_as_beats": True})
            threading.Event().wait(5)
            return self.reply(rq, 200, {"tasks": []})
        return super().handle(rq, method)


def test_hub_that_does_not_count_held_polls_gets_a_beat_every_interval(agent):
    pytest.importorskip("nacl.signing", reason="python3-nacl (sh scripts/deps.sh)")
    fh = OlderHub()
    try:
        a = agent({"hub": {"url": fh.url, "host_id": "old-hub-1"},
                   "plugins": {"metrics": METRICS_OFF}})
        wait_for(lambda: fh.beats >= 2, 15, what="the first beats")
        before = fh.beats
        time.sleep(5)
        # One every 1-1.2 s: 4 or 5 in 5 s, however long the polls are held.
        assert fh.beats - before >= 3, (before, fh.beats)
        assert link(a)["connected"] is True
    finally:
        fh.close()
