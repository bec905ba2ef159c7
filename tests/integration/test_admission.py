"""Admission control and the down sweep (docs/agent-link.md, "Admission"): past api.admit_rate
the hub answers an agent's new connection busy with a Retry-After, the agents honour it with
jitter, and a fleet held back that way, or by a hub restart, is never marked down for it.
The bound is set low here so that a hundred virtual agents meet it."""
import os
import re
import socket
import ssl
import subprocess
import time

import pytest
import requests

from outpost_testlib import HUB_BIN, SIM_BIN, Hub, Sim, wait_for

N = 100
PREFIX = "adm-"
RATE = 10  # new agent connections a second: N take ten seconds, well over missed x beat


def ids():
    return ["%s%05d" % (PREFIX, i) for i in range(1, N + 1)]


def states(hub):
    p = hub.cli("--json", "hosts", "ls")
    assert p.returncode == 0, p.stderr
    return {h["id"]: h["state"] for h in p.json}


def all_up(hub):
    st = states(hub)
    return all(st.get(h) == "up" for h in ids())


def busy_total(hub):
    st, text = hub.api("GET", "/metrics")
    assert st == 200
    m = re.search(r"^outpost_hub_admit_busy_total (\d+)$", text, re.M)
    assert m, text[:2000]
    return int(m.group(1))


def test_busy_answers_with_a_retry_time(tmp_path):
    hub = Hub(tmp_path, {"api": {"admit_rate": 1}}).start()
    try:
        url = hub.url + "/api/v1/enroll"
        # Each requests.post is a new connection: the first is admitted (and refused for its
        # body), the next ones in the same second are busy, each told a later second.
        first = requests.post(url, data="{}", verify=hub.ca, timeout=10)
        assert first.status_code == 400, first.text
        waits = []
        for _ in range(3):
            r = requests.post(url, data="{}", verify=hub.ca, timeout=10)
            assert r.status_code == 503, r.text
            env = r.json()
            assert env["ok"] is False and env["error"]["code"] == "busy", env
            assert "Retry-After" in env["error"]["message"]
            waits.append(int(r.headers["Retry-After"]))
        assert all(w >= 1 for w in waits) and waits == sorted(waits), waits
        assert waits[-1] > waits[0], waits
        # A connection answered busy stays so until one of its requests is admitted.
        with requests.Session() as s:
            for _ in range(2):
                r = s.post(url, data="{}", verify=hub.ca, timeout=10)
                assert r.status_code == 503 and r.json()["error"]["code"] == "busy"
        # Operators are not agents: their calls are not held back.
        p = hub.cli("--json", "hosts", "ls")
        assert p.returncode == 0, p.stderr
        assert busy_total(hub) >= 5
    finally:
        hub.stop()


def raw_enroll(sock):
    """One POST /api/v1/enroll on an open TLS socket: (status, Retry-After or None)."""
    sock.sendall(b"POST /api/v1/enroll HTTP/1.1\r\nHost: hub\r\nContent-Type: "
                 b"application/json\r\nContent-Length: 2\r\n\r\n{}")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "the hub closed the connection: %r" % data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    hdr = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    while len(rest) < int(hdr.get("content-length", 0)):
        rest += sock.recv(4096)
    return int(lines[0].split()[1]), hdr.get("retry-after")


def test_a_connection_told_to_wait_is_kept_for_its_retry(tmp_path):
    # Unauthenticated connections idle out after a second here; one answered busy is kept as
    # long as an agent's (api.conn_timeout_s), so that coming back on it after its Retry-After
    # costs no second TLS handshake.
    hub = Hub(tmp_path, {"api": {"admit_rate": 1, "unauth_timeout_s": 1}}).start()
    ctx = ssl.create_default_context(cafile=hub.ca)
    ctx.check_hostname = False
    try:
        with socket.create_connection(("127.0.0.1", hub.port), timeout=10) as a, \
                socket.create_connection(("127.0.0.1", hub.port), timeout=10) as b, \
                socket.create_connection(("127.0.0.1", hub.port), timeout=10) as c:
            a, b, c = (ctx.wrap_socket(x) for x in (a, b, c))
            assert raw_enroll(a)[0] == 400       # admitted, then refused for its body
            st, ra = raw_enroll(b)
            assert st == 503 and int(ra) >= 1, (st, ra)
            time.sleep(2.5)
            # The busy one is still open; a connection that was only let in idles out.
            st, _ = raw_enroll(b)
            assert st in (400, 503), st
            with pytest.raises((AssertionError, ConnectionError, ssl.SSLError)):
                raw_enroll(a)
            # A connection that never sent a request is closed at the unauthenticated bound.
            c.settimeout(5)
            try:
                assert c.recv(1) == b""
            except (ConnectionError, ssl.SSLError):
                pass
    finally:
        hub.stop()


def test_bad_admission_config_is_refused(tmp_path):
    for bad in ({"admit_rate": -1}, {"admit_unread": "many"}):
        hub = Hub(tmp_path, {"api": bad})
        p = subprocess.run([HUB_BIN, "--config", str(hub.conf_path), "--check-config"],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0
        assert "api." + list(bad)[0] in p.stdout + p.stderr


def test_fleet_over_the_bound_comes_up_and_survives_restarts(tmp_path):
    if not os.access(SIM_BIN, os.X_OK):
        pytest.skip("build outpost-sim first (ninja -C build)")
    hub = Hub(tmp_path, {"api": {"admit_rate": RATE},
                         "agents": {"beat_ms": 1000, "missed_beats": 3}}).start()
    sim = None
    try:
        tok = hub.cli("token", "create", "--enroll", "--ttl", "10m")
        assert tok.returncode == 0, tok.stderr
        sim = Sim(tmp_path, hub, tok.stdout.strip(),
                  {"agents": N, "ramp_per_s": 1000, "host_prefix": PREFIX,
                   "metrics": {"interval_ms": 0}}).start()
        wait_for(lambda: all_up(hub), 90, step=0.5, what="every virtual agent up")
        assert sim.status()["links"]["busy_answers"] > 0, sim.status()
        assert busy_total(hub) > 0
        for restart in (1, 2):
            # Every agent comes back at once and meets the bound: the ones told to wait are
            # not down for it, the first restart or the second.
            hub.stop()
            hub.start()
            wait_for(lambda: all_up(hub), 90, step=0.5,
                     what="every virtual agent up after restart %d" % restart)
        assert "is down" not in hub.log(), [l for l in hub.log().splitlines()
                                            if "is down" in l][:5]
        # Every task once per host, every result in, after all that.
        p = hub.cli("--json", "run", "-t", PREFIX + "*", "--", "echo", "back", timeout=120)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr
        rows = {r["host_id"]: r for r in p.json["hosts"]}
        assert sorted(rows) == ids()
        assert all(r["state"] == "ok" and r["response"]["result"]["stdout"] == "back\n"
                   for r in rows.values())
        got = {h: a["link"]["tasks_received"] for h, a in sim.agents().items()}
        assert all(v == 1 for v in got.values()), {h: v for h, v in got.items() if v != 1}
    finally:
        try:
            if sim:
                sim.stop()
        finally:
            hub.stop()
