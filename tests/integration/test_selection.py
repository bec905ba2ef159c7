"""Host selection has one path in the hub (registry_match): what `outpost hosts ls -t X`
lists in state up or down is exactly what `outpost run -t X` reaches, over ids, node-set
ranges, globs, labels, facts, negations and and/or (docs/selectors.md); a selector that lists
no such host makes run refuse. Hosts are scripted agents (fakeagent.py) enrolled with tokens
that carry labels and with facts of their own; one waits pending, one is revoked."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
pytest.importorskip("nacl.signing", reason="python3-nacl (sh scripts/deps.sh)")
from fakeagent import FakeAgent  # noqa: E402

def facts(os_id, cpus=None):
    """Facts in the sys plugin's shape, which the hub flattens to os=, cpus= (selectors.md)."""
    f = {"os": {"id": os_id}}
    if cpus is not None:
        f["cpu"] = {"count": cpus}
    return f


HOSTS = {  # id: (token labels or None for no token, facts, claimed hostname)
    "web01": ("role=web", facts("debian", 4), None),
    "web02": ("role=web,dc=sh", facts("debian", 8), None),
    "web03": ("role=web,dc=bj", facts("ubuntu", 8), None),
    "db01": ("role=db,dc=sh", facts("centos", 16), None),
    "lab-9": ("role=lab", facts("debian", 2), "web-01"),
    "gone-1": ("role=web", facts("debian"), None),
    "pend-1": (None, facts("debian", 8), None),
}

SELECTORS = {  # selector: the accepted hosts it must reach (None: just agree)
    "*": {"web01", "web02", "web03", "db01", "lab-9"},
    "web01": {"web01"},
    "web0[1-2]": {"web01", "web02"},
    "web[01-03]": {"web01", "web02", "web03"},
    "web*": {"web01", "web02", "web03"},
    "web0[!1]": {"web02", "web03"},
    "role=web": {"web01", "web02", "web03"},
    "role!=web": {"db01", "lab-9"},
    "os=debian* and cpus=8": {"web02"},
    "dc!=sh": {"web01", "web03", "lab-9"},
    "dc=sh and role=web": {"web02"},
    "role=web and dc!=sh or db01": {"web01", "web03", "db01"},
    "state!=pending and role!=db": {"web01", "web02", "web03", "lab-9"},
    "hostname=web-01": {"lab-9"},
    "web-01": set(),  # a bare word is the accepted id, never a claimed hostname
    "gone-1": set(),  # revoked: listed, never reached
    "pend-1 or web03": {"web03"},
    "id=db01 or cpus=2": {"db01", "lab-9"},
    "nosuch-*": set(),
}


def test_hosts_ls_and_run_pick_the_same_hosts(hub):
    h = hub()
    for host_id, (labels, host_facts, hostname) in HOSTS.items():
        token = None
        if labels:
            token = h.cli("token", "create", "--enroll", "--ttl", "10m", "--labels",
                          labels).stdout.strip()
        a = FakeAgent(h.url, host_id, ca=h.ca, token=token)
        body = a.enroll(hostname=hostname, facts=host_facts)
        assert body["result"]["state"] == ("up" if labels else "pending"), body
        a.close()
    st, body = h.api("POST", "/api/v1/hosts/gone-1/revoke", {})
    assert st == 200, body

    for n, (sel, want) in enumerate(SELECTORS.items()):
        p = h.cli("--json", "hosts", "ls", "-t", sel)
        assert p.returncode == 0, (sel, p.stderr)
        listed = {x["id"]: x["state"] for x in p.json}
        reachable = {i for i, state in listed.items() if state in ("up", "down")}
        assert reachable == want, (sel, listed)
        p = h.cli("--json", "run", "-t", sel, "--no-wait", "--id", "sel-%d" % n, "--", "true")
        if not reachable:
            assert p.returncode == 1 and "matches no accepted host" in p.stderr, (sel, p)
            continue
        assert p.returncode == 0, (sel, p.stdout, p.stderr)
        p = h.cli("--json", "tasks", "show", "sel-%d" % n)
        assert p.returncode == 0, (sel, p.stderr)
        reached = {x["host_id"] for x in p.json["hosts"]}
        assert reached == reachable, (sel, reached, listed)
    # Pending and revoked hosts are listed by the selectors that name them.
    p = h.cli("--json", "hosts", "ls", "-t", "pend-1 or gone-1")
    assert {x["id"]: x["state"] for x in p.json} == {"pend-1": "pending", "gone-1": "revoked"}
    # A selector that does not parse is refused alike by both.
    for args in (("hosts", "ls", "-t", "role=web and"),
                 ("run", "-t", "role=web and", "--no-wait", "--", "true")):
        p = h.cli(*args)
        assert p.returncode != 0 and "expected a term after 'and'" in p.stderr, (args, p)
