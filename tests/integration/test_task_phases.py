"""Where a task's time goes (docs/metrics.md#task-phases): the agent's and the hub's per-phase
counters at /metrics, which bench/fanout sums over a fleet. A real hub, a real agent, the real
CLI: after one command each phase of the agent has counted it once and spent time in it, a task
that starts no process has no spawn phase, and the hub's phases counted the fan-out."""
import re

import requests

from outpost_testlib import wait_for

AGENT_PHASES = ("poll", "verify", "ledger", "spawn", "command", "report")
HUB_PHASES = ("agent_auth", "create", "take", "sign", "poll_answer", "results")


def phases(text, family):
    """{phase: (count, wall seconds, cpu seconds)} of family in a Prometheus text."""
    got = {}
    for line in text.splitlines():
        m = re.match(r'^%s_(seconds_sum|seconds_count|cpu_seconds_total)\{phase="([a-z_]+)"\} '
                     r'(\S+)$' % family, line)
        if m:
            got.setdefault(m.group(2), {})[m.group(1)] = float(m.group(3))
    return {p: (v.get("seconds_count"), v.get("seconds_sum"), v.get("cpu_seconds_total"))
            for p, v in got.items()}


def agent_phases(a):
    return phases(a.get("/metrics").text, "outpost_agent_task_phase")


def hub_phases(hub):
    r = requests.get(hub.url + "/metrics", verify=hub.ca, timeout=10,
                     headers={"Authorization": "Bearer " + hub.admin_token})
    assert r.status_code == 200, r.text
    return phases(r.text, "outpost_hub_task_phase")


def after_result(a, sent):
    """Waits until the agent's results POST was answered (the last piece of its report)."""
    wait_for(lambda: a.metric("outpost_agent_hub_results_sent_total") >= sent, 10,
             what="the hub acknowledging the agent's result")


def delta(after, before):
    return {p: tuple(x - y for x, y in zip(after[p], before[p])) for p in after}


def test_one_command_passes_each_agent_phase_once_and_takes_time(fleet):
    f = fleet(n=1)
    a = f.agents["web-1"]
    before, hub_before = agent_phases(a), hub_phases(f.hub)
    assert set(before) == set(AGENT_PHASES), before
    assert all(c == 0 for c, _, _ in before.values()), before  # nothing from the hub yet
    f.ok("run", "-t", "web-1", "--", "true")
    after_result(a, 1)
    d = delta(agent_phases(a), before)
    for p in AGENT_PHASES:
        count, wall, cpu = d[p]
        assert count == 1, (p, d)
        assert wall > 0 and cpu > 0, (p, d)
        assert wall < 10, (p, d)
    # The child's own CPU (exec, the dynamic loader, `true`) is counted in the command.
    assert d["command"][2] > 0.0001, d

    # The hub: the task stored once, one copy taken, signed and handed to the waiting poll,
    # one results request, and every agent request authenticated.
    h = delta(hub_phases(f.hub), hub_before)
    assert set(h) == set(HUB_PHASES), h
    for p in ("create", "take", "sign", "poll_answer", "results"):
        assert h[p][0] == 1, (p, h)
        assert h[p][1] > 0 and h[p][2] > 0, (p, h)
    assert h["agent_auth"][0] >= 1 and h["agent_auth"][1] > 0, h


def test_task_without_a_child_has_no_spawn_phase(fleet):
    f = fleet(n=1)
    a = f.agents["web-1"]
    before = agent_phases(a)
    f.ok("call", "-t", "web-1", "sys.ping")
    after_result(a, 1)
    d = delta(agent_phases(a), before)
    assert d["spawn"] == (0, 0, 0), d
    for p in ("poll", "verify", "ledger", "command", "report"):
        assert d[p][0] == 1 and d[p][1] > 0, (p, d)


def test_refused_task_is_verified_and_reported_but_never_run(fake_hub, agent):
    """A task signed by another key (docs/protocol.md): verify counts it, the refusal is
    reported, and no ledger, spawn or command time is spent on it."""
    import nacl.signing
    fh = fake_hub
    a = agent({"hub": {"url": fh.url, "host_id": "web-1"}})
    wait_for(lambda: fh.polls > 0, 10, what="the agent's first long-poll")
    before = agent_phases(a)
    forged = fh.sign(fh.task("t-forged", "web-1", "true"), key=nacl.signing.SigningKey.generate())
    fh.hand(forged)
    assert fh.final("t-forged")["state"] == "refused"
    wait_for(lambda: agent_phases(a)["report"][0] - before["report"][0] == 1, 10,
             what="the refusal's report")
    d = delta(agent_phases(a), before)
    assert d["poll"][0] == 1 and d["verify"][0] == 1 and d["report"][0] == 1, d
    for p in ("ledger", "spawn", "command"):
        assert d[p] == (0, 0, 0), (p, d)
