"""make demo-scale (scripts/demo-scale.sh) runs through: ZooKeeper, PostgreSQL, two hubs and
three zookeeper-link agents on loopback, the demo's commands through either hub, everything
stopped at the end."""
import os
import shutil
import socket
import subprocess
import time

import pytest

from outpost_testlib import BUILD, SRC_ROOT, ZK_JAR


def free_base(span=24):
    """A port P with P .. P+span-1 all free on 127.0.0.1 (the demo's ports)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + span > 65535:
            continue
        try:
            for p in range(base, base + span):
                with socket.socket() as t:
                    t.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
    pytest.skip("no %d free ports in a row" % span)


def test_demo_scale_runs_and_stops_everything(tmp_path):
    if not os.path.exists(ZK_JAR) or not shutil.which("java"):
        pytest.skip("no ZooKeeper server (sh scripts/deps.sh test)")
    if not os.access(os.path.join(BUILD, "src/hub/outpost-hub"), os.X_OK):
        pytest.skip("build first (make build)")
    state = tmp_path / "demo"
    env = dict(os.environ, OUTPOST_DEMO_PORT=str(free_base()), OUTPOST_DEMO_STATE=str(state))
    env = {k: v for k, v in env.items() if k not in ("OUTPOST_HUB", "OUTPOST_TOKEN",
                                                     "OUTPOST_CA")}
    t0 = time.monotonic()
    p = subprocess.run(["sh", os.path.join(SRC_ROOT, "scripts/demo-scale.sh"), BUILD], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t0
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    # Not a timed test: the bound only catches a demo that waits out its own timeouts.
    assert took < 110, "the demo took %.0f s" % took
    for want in ("3 hosts, 3 ok", "2 hosts, 2 ok", "web-3: ok", "web-1: ok, changed",
                 "matches no accepted host"):
        assert want in out, (want, out)
    assert out.count("(leader)") == 1, out
    # Both hubs signed with one key: the second loaded the first's.
    assert "new signing key" in out and "loaded signing key" in out, out
    # Nothing left running: no process has the demo's state dir on its command line.
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", str(state)], capture_output=True, text=True).stdout
    assert not left.strip(), "still running: " + left
