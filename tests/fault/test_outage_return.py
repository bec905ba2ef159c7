"""Fault: the hub is away for a while, then back (docs/agent-link.md, Backoff). Every agent of
a small fleet is back, and runs a task, within a few seconds of the hub's return: contact ends
every backoff, and the beat keeps its own rate while no hub answers. (Results and batches that
wait out a restart: tests/integration/test_link.py and test_metrics_ship.py.)"""
import time

from outpost_testlib import wait_for  # noqa: F401

OUTAGE_S = 12  # long enough that a task-poll backoff alone would reach 16-32 s


def test_fleet_is_back_within_seconds_of_the_hub(fleet):
    f = fleet(n=3)
    f.hub.stop()
    time.sleep(OUTAGE_S)
    f.hub.start()
    back = time.monotonic()
    # A task on every host needs each one's long-poll back, not only its beat.
    p = f.cli("run", "-t", "role=web", "--id", "after-outage", "--", "true", timeout=60)
    took = time.monotonic() - back
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert took < 6, "the fleet took %.1f s to run a task after the hub came back" % took
    f.wait_states({"web-1": "up", "web-2": "up", "web-3": "up"}, timeout=5)
