"""What Prometheus users get (docs/metrics.md#prometheus): every family at the hub's /federate
and at both daemons' /metrics has one # HELP and one # TYPE (counter, gauge, histogram), checked
with Prometheus's own parser and linter (`promtool check metrics`, Debian's prometheus)."""
import re
import shutil
import subprocess

import pytest
import requests

from test_metrics_hub import Metrics

PROMTOOL = shutil.which("promtool")


def families(text):
    """{family: {"help": str, "type": str, "samples": n}} of a text exposition; fails on a
    second HELP or TYPE for a family, or one after its samples."""
    fams = {}
    for line in text.splitlines():
        m = re.match(r"^# (HELP|TYPE) (\S+) ?(.*)$", line)
        if m:
            f = fams.setdefault(m.group(2), {"samples": 0})
            key = m.group(1).lower()
            assert key not in f, "second %s for %s" % (m.group(1), m.group(2))
            assert f["samples"] == 0, "%s after the samples of %s" % (m.group(1), m.group(2))
            f[key] = m.group(3)
            continue
        if not line or line.startswith("#"):
            continue
        name = re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
        fam = name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[:-len(suffix)]
            if name.endswith(suffix) and fams.get(base, {}).get("type") in ("histogram",
                                                                             "summary"):
                fam = base
        assert fam in fams, "sample of %s before its HELP and TYPE" % fam
        fams[fam]["samples"] += 1
    return fams


def check_typed(text, what):
    fams = families(text)
    assert fams, what
    for name, f in fams.items():
        assert f.get("help"), "%s: %s has no HELP" % (what, name)
        assert f.get("type") in ("counter", "gauge", "histogram", "summary"), \
            "%s: %s is %s" % (what, name, f.get("type"))
        if f["type"] == "counter":
            assert name.endswith("_total"), (what, name)
    if PROMTOOL:
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, "%s: promtool: %s%s" % (what, r.stdout, r.stderr)
    return fams


def test_agent_metrics_are_typed(agent):
    a = agent()
    a.call("sys", "ping")
    r = requests.get(a.base + "/metrics", timeout=10)
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    fams = check_typed(r.text, "agent /metrics")
    assert fams["outpost_agent_calls_total"]["type"] == "counter"
    assert fams["outpost_agent_calls_inflight"]["type"] == "gauge"
    assert fams["outpost_agent_uptime_seconds"]["help"]


def test_hub_metrics_are_typed(hub):
    h = hub()
    r = requests.get(h.url + "/metrics", verify=h.ca, timeout=10,
                     headers={"Authorization": "Bearer " + h.admin_token})
    assert r.status_code == 200
    fams = check_typed(r.text, "hub /metrics")
    assert fams["outpost_hub_request_seconds"]["type"] == "histogram"
    assert fams["outpost_hub_requests_total"]["type"] == "counter"


def test_federate_is_typed(hub):
    m = Metrics(hub())
    r = m.get("/federate")
    assert r.status_code == 200
    fams = check_typed(r.text, "/federate")
    assert fams["host_load1"]["type"] == "gauge" and fams["host_load1"]["samples"] == 3
    assert fams["host_cpu_percent"]["type"] == "gauge"
    assert fams["app_note"]["type"] == "gauge"
    assert "docs/metrics.md" in fams["host_load1"]["help"]


@pytest.mark.skipif(not PROMTOOL, reason="no promtool: sh scripts/deps.sh test installs "
                    "Debian's prometheus")
def test_promtool_would_catch_an_untyped_family():
    # The check above can fail: promtool refuses a family with no HELP.
    r = subprocess.run([PROMTOOL, "check", "metrics"], input="x_total 1\n",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
