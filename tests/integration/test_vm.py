"""Integration tests of the vm plugin: a real agent driving libvirt's in-process test driver
(test:///default, no hypervisor), through the agent's HTTP API as a user would."""
from test_agent import assert_error

TEST_DRIVER = {"plugins": {"vm": {"uri": "test:///default", "domain_type": "test"}}}
WEB = {"name": "web", "vcpus": 2, "memory_mib": 512, "disk": "/var/lib/images/web.qcow2",
       "network": "default"}


def vms(a):
    r = a.call("vm", "list")
    assert r.ok, r
    return {vm["name"]: vm for vm in r.result["vms"]}


def test_vm_life_cycle_through_the_api(agent):
    a = agent(TEST_DRIVER)
    assert "vm" in {p["name"] for p in a.get("/v1/plugins").result}
    assert vms(a)["test"]["state"] == "running"  # the test driver's own VM

    first = a.call("vm", "define", WEB, id="define-web-1")
    assert first.ok and first.result["changed"] is True, first
    # The same id: the ledger's first answer; another id: the same VM, unchanged.
    assert a.call("vm", "define", WEB, id="define-web-1").result == first.result
    again = a.call("vm", "define", WEB, id="define-web-2")
    assert again.ok and again.result["changed"] is False, again
    assert [n for n in vms(a) if n == "web"] == ["web"]
    assert vms(a)["web"]["state"] == "shutoff"

    r = a.call("vm", "start", {"name": "web"})
    assert r.result == {"name": "web", "changed": True, "state": "running"}, r
    assert a.call("vm", "start", {"name": "web"}).result["changed"] is False

    r = a.call("vm", "set", {"name": "web", "vcpus": 2, "memory_mib": 256})
    assert r.ok and r.result["changed"] is True, r
    assert vms(a)["web"]["memory_mib"] == 256

    assert a.call("vm", "snapshot_create", {"name": "web", "snapshot": "s1"}).result["changed"]
    assert vms(a)["web"]["snapshots"] == ["s1"]
    assert a.call("vm", "snapshot_revert", {"name": "web", "snapshot": "s1"}).ok

    assert_error(a.call("vm", "undefine", {"name": "web"}), "conflict", 409)
    r = a.call("vm", "shutdown", {"name": "web", "timeout_ms": 2000})
    assert r.ok and r.result["state"] == "shutoff" and r.result["forced"] is False, r
    assert a.call("vm", "destroy", {"name": "web"}).result["changed"] is False
    assert a.call("vm", "undefine", {"name": "web"}).result["changed"] is True
    assert "web" not in vms(a)
    assert a.call("vm", "undefine", {"name": "web"}).result["changed"] is False


def test_vm_bad_args_get_the_envelope(agent):
    a = agent(TEST_DRIVER)
    assert "name:" in assert_error(a.call("vm", "define", dict(WEB, name="a/b")), "bad_args", 400)
    assert "disk:" in assert_error(a.call("vm", "define", dict(WEB, disk="web.qcow2")),
                                   "bad_args", 400)
    assert_error(a.call("vm", "define", dict(WEB, vcpus="two")), "bad_args", 400)
    assert_error(a.call("vm", "start", {"name": "web", "force": True}), "bad_args", 400)
    assert "give vcpus" in assert_error(a.call("vm", "set", {"name": "test"}), "bad_args", 400)
    assert_error(a.call("vm", "start", {"name": "nosuch"}), "not_found", 404)
    assert "web" not in vms(a)


def test_vm_without_libvirt_answers_unavailable(agent, tmp_path):
    a = agent({"plugins": {"vm": {"uri": "test://%s/missing.xml" % tmp_path}}})
    msg = assert_error(a.call("vm", "list"), "unavailable", 503)
    assert "missing.xml" in msg
    assert_error(a.call("vm", "start", {"name": "web"}, id="start-1"), "unavailable", 503)
    # The agent is fine: other plugins answer.
    assert a.call("sys", "ping").ok


def test_vm_inventory_is_in_the_hosts_facts(fleet, tmp_path):
    """The vm plugin's `facts` op joins sys.facts under "vm" (docs/plugins.md, "Facts"): the
    operator sees the host's domains with their state, vCPUs and memory in `hosts show`."""
    from outpost_testlib import wait_for
    f = fleet(n=0)
    tok = f.token()
    a = f.add("kvm-1", tok, conf=TEST_DRIVER)
    f.wait_state("kvm-1", "up")

    def domains():
        facts = f.ok("--json", "hosts", "show", "kvm-1").json.get("facts") or {}
        return {d["name"]: d for d in (facts.get("vm") or {}).get("domains", [])}
    # libvirt's test driver starts with one VM, "test", running.
    got = wait_for(lambda: domains(), timeout=30, what="the VM inventory at the hub")
    assert got["test"]["state"] == "running" and got["test"]["vcpus"] == 2, got
    assert got["test"]["memory_mib"] > 0, got
    text = f.ok("hosts", "show", "kvm-1").stdout
    assert "vm.domains" in text and "running" in text, text
