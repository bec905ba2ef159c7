"""The security plugin with a real hub and agent (docs/plugins/security.md), on a fake /etc in
a temp dir (plugins.security.root): a changed passwd arrives at the hub once as an event, also
when the hub was down at the time; an agent restart makes no events; the firewall (nft in a
network namespace the test makes), a new listening socket and a new setuid file are seen;
root's logins in wtmp are seen; security.baseline re-accepts and says so; bad config gets
located errors; nftables' notifications bring a check at once; the kernel's audit records
name who made a change (where auditctl can turn auditing on)."""
import fcntl
import os
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

from outpost_testlib import wait_for

PASSWD = ("root:x:0:0:root:/root:/bin/bash\n"
          "alice:x:1000:1000:Alice:/home/alice:/bin/bash\n")
SHADOW = ("root:$6$salt$oldhasholdhash:19000:0:99999:7:::\n"
          "alice:$6$salt$alicehash:19000:0:99999:7:::\n")


def fake_root(tmp_path):
    r = tmp_path / "root"
    for d in ("etc/sudoers.d", "etc/ssh", "etc/cron.d", "etc/systemd/system",
              "root/.ssh", "home/alice/.ssh", "usr/local/bin", "var/log"):
        (r / d).mkdir(parents=True, exist_ok=True)
    (r / "etc/passwd").write_text(PASSWD)
    (r / "etc/shadow").write_text(SHADOW)
    os.chmod(r / "etc/shadow", 0o640)
    (r / "etc/group").write_text("root:x:0:\nalice:x:1000:\n")
    (r / "etc/sudoers").write_text("root ALL=(ALL) ALL\n")
    (r / "etc/ssh/sshd_config").write_text("PermitRootLogin no\n")
    (r / "home/alice/.ssh/authorized_keys").write_text("ssh-ed25519 AAAAC3Nza alice@laptop\n")
    with open(r / "var/log/wtmp", "wb") as f:
        f.write(utmp("root", "tty1", ""))  # an old login: no news
    return r


def utmp(user, line, host, kind=7):
    """One struct utmp of glibc on x86_64 (384 bytes; kind 7: USER_PROCESS)."""
    return struct.pack("<h2xi32s4s32s256shhiii4i20s", kind, 4242, line.encode(), b"",
                       user.encode(), host.encode(), 0, 0, 0, int(time.time()), 0,
                       0, 0, 0, 0, b"")


def replace(path, text):
    """As passwd(1) and vipw do: a new file renamed over the old."""
    tmp = str(path) + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def security_events(h, host="sec-1"):
    st, body = h.api("GET", "/api/v1/events?kind=security&limit=1000&host=" + host)
    assert st == 200, body
    return body["result"]


def kinds(evs):
    return sorted(e["kind"] for e in evs)


def start(hub, agent, tmp_path, **conf):
    h = hub()
    token = h.cli("token", "create", "--enroll", "--ttl", "10m").stdout.strip()
    root = fake_root(tmp_path)
    sec = {"enabled": True, "root": str(root), "interval_ms": 1000, "firewall": [],
           "sockets": False}
    sec.update(conf)
    a = agent({"hub": {"url": h.url, "ca": h.ca, "host_id": "sec-1", "token": token},
               "plugins": {"security": sec}})
    wait_checks(a, 1)
    return h, a, root


def wait_checks(a, n):
    """Until the agent's checker has made n full checks since it started."""
    return wait_for(lambda: (lambda r: r.ok and r.result["checks"] >= n and r.result)(
        a.call("security", "status")), timeout=20, what="%d security checks" % n)


def test_passwd_change_arrives_once_also_when_the_hub_was_down(hub, agent, tmp_path):
    h, a, root = start(hub, agent, tmp_path)
    st = a.call("security", "status").result
    assert st["enabled"] and st["files"] == 6 and st["baseline_ms"] > 0, st
    assert security_events(h) == []  # the first start is a baseline, not news

    replace(root / "etc/passwd", PASSWD + "eve:x:0:0::/root:/bin/bash\n")
    evs = wait_for(lambda: (lambda e: len(e) >= 2 and e)(security_events(h)), timeout=20,
                   what="the passwd events at the hub")
    assert kinds(evs) == ["security.passwd_changed", "security.uid0_added"], evs
    pw = [e for e in evs if e["kind"] == "security.passwd_changed"][0]
    assert pw["severity"] == "warning" and pw["source"] == "agent"
    assert pw["data"]["path"] == "/etc/passwd" and pw["data"]["users_added"] == ["eve"]
    assert pw["data"]["diff"]["added"] == ["eve:x:0:0::/root:/bin/bash"]
    assert pw["data"]["before"] != pw["data"]["after"]
    assert "user eve added" in pw["message"]
    assert [e for e in evs if e["kind"] == "security.uid0_added"][0]["severity"] == "critical"

    # The hub goes away; root's password changes meanwhile; the hub comes back.
    h.stop()
    before = a.call("security", "status").result["events"]
    replace(root / "etc/shadow", SHADOW.replace("oldhasholdhash", "newhashnewhash"))
    wait_for(lambda: a.call("security", "status").result["events"] > before, timeout=20,
             what="the agent to see the shadow change")
    time.sleep(1)
    h.start()
    evs = wait_for(lambda: (lambda e: len(e) >= 4 and e)(security_events(h)), timeout=30,
                   what="the shadow events after the hub came back")
    time.sleep(2)  # the agent's resends, if any, have come too
    evs = security_events(h)
    assert kinds(evs) == ["security.passwd_changed", "security.root_password_changed",
                          "security.shadow_changed", "security.uid0_added"], evs
    sh = [e for e in evs if e["kind"] == "security.shadow_changed"][0]
    assert sh["data"]["users_changed"] == ["root"], sh
    text = str(evs)
    assert "newhash" not in text and "oldhash" not in text and "alicehash" not in text

    # A restart with nothing changed is no news, however many checks follow.
    a.restart()
    wait_checks(a, 3)
    assert len(security_events(h)) == 4


def test_keys_sudoers_units_and_the_baseline_op(hub, agent, tmp_path):
    h, a, root = start(hub, agent, tmp_path, setuid_roots=["/usr/local/bin"])
    with open(root / "home/alice/.ssh/authorized_keys", "a") as f:
        f.write("ssh-rsa AAAAB3Nza mallory@evil\n")
    # Written aside and renamed into place with its final mode, as visudo does: a create, a
    # write and a chmod are three changes, and whether the plugin reads the file between them
    # depends on the load (it then rightly reports each).
    tmp = root / "90-eve.tmp"
    tmp.write_text("eve ALL=(ALL) NOPASSWD: ALL\n")
    os.chmod(tmp, 0o440)
    os.rename(tmp, root / "etc/sudoers.d/90-eve")
    (root / "etc/systemd/system/backdoor.service").write_text("[Service]\nExecStart=/bin/nc\n")
    with open(root / "var/log/wtmp", "ab") as f:
        f.write(utmp("alice", "pts/1", "10.0.0.7"))
        f.write(utmp("root", "pts/2", "203.0.113.9"))
    tool = root / "usr/local/bin/tool"
    tool.write_text("#!/bin/sh\n")
    os.chmod(tool, 0o4755)
    want = ["security.authorized_keys_changed", "security.root_login",
            "security.setuid_added", "security.sudoers_changed",
            "security.systemd_unit_changed"]
    evs = wait_for(lambda: (lambda e: kinds(e) == want and e)(security_events(h)),
                   timeout=20, what=lambda: "%s at the hub (got %s)" % (
                       want, kinds(security_events(h))))
    by = {e["kind"]: e for e in evs}
    keys = by["security.authorized_keys_changed"]["data"]
    assert keys["path"] == "/home/alice/.ssh/authorized_keys"
    # Keys are named by digest, never shown.
    assert len(keys["diff"]["added"]) == 1 and keys["diff"]["added"][0].startswith("sha256:")
    assert "mallory" not in str(evs) and "AAAAB3" not in str(evs)
    # sudoers is not readable by all: its digest changes, no diff.
    assert "diff" not in by["security.sudoers_changed"]["data"]
    assert by["security.sudoers_changed"]["message"] == "/etc/sudoers.d/90-eve created"
    assert by["security.systemd_unit_changed"]["data"]["diff"]["added"] == \
        ["[Service]", "ExecStart=/bin/nc"]
    assert by["security.setuid_added"]["data"]["path"] == "/usr/local/bin/tool"
    login = by["security.root_login"]
    assert login["data"]["from"] == "203.0.113.9" and login["data"]["line"] == "pts/2", login
    assert login["message"] == "root logged in on pts/2 from 203.0.113.9"

    r = a.call("security", "baseline", {"reason": "reviewed: eve is our new admin"},
               id="accept-1")
    assert r.ok and r.result["files"] == 8, r
    evs = wait_for(lambda: (lambda e: len(e) == 6 and e)(security_events(h)), timeout=20,
                   what="the baseline event")
    acc = [e for e in evs if e["kind"] == "security.baseline_accepted"][0]
    assert acc["data"]["reason"] == "reviewed: eve is our new admin"
    refused = a.call("security", "baseline", {"reason": "two\nlines"})
    assert refused.code == "bad_args", refused


def test_a_reload_keeps_the_plugin_watching(hub, agent, tmp_path):
    """The plugin reads its section at start and keeps its own copy: a SIGHUP reload that
    frees the old config (and changes the section) leaves it watching as it was."""
    h, a, root = start(hub, agent, tmp_path)
    a.reconfigure({"plugins": {"security": {"interval_ms": 86400000, "root": "/elsewhere"},
                               "file": {"roots": [str(tmp_path)]}}})
    a.signal(signal.SIGHUP)
    a.wait_log("reload", timeout=10)
    (root / "etc/sudoers").write_text("root ALL=(ALL) ALL\neve ALL=(ALL) ALL\n")
    wait_for(lambda: kinds(security_events(h)) == ["security.sudoers_changed"], timeout=20,
             what="the sudoers event after a reload")
    st = a.call("security", "status").result
    assert st["root"] == str(root) and st["interval_ms"] == 1000, st


def net_namespace(tmp_path):
    """A network namespace of the test's own, kept in a file; None when not allowed."""
    if not shutil.which("nft") or not shutil.which("unshare"):
        return None, "nft or unshare is missing (sh scripts/deps.sh test)"
    ns = tmp_path / "netns"
    ns.touch()
    p = subprocess.run(["unshare", "--net=%s" % ns, "true"], capture_output=True, text=True)
    if p.returncode != 0:
        return None, "unshare -n is not allowed here: " + p.stderr.strip()
    return ns, None


@pytest.fixture
def nft_ns(tmp_path):
    """A network namespace of the test's own with one table in it: (its path, the nft
    command that acts in it)."""
    ns, why = net_namespace(tmp_path)
    if ns is None:
        pytest.skip(why)
    try:
        nft = ["nsenter", "--net=%s" % ns, "nft"]
        subprocess.run(nft + ["add", "table", "inet", "base"], check=True)
        yield ns, nft
    finally:
        subprocess.run(["umount", str(ns)], capture_output=True)


def intruder_event(h, nft):
    """Adds a table; the one firewall event the hub then has."""
    subprocess.run(nft + ["add", "table", "inet", "intruder"], check=True)
    evs = wait_for(lambda: security_events(h), timeout=30, what="the firewall event")
    assert kinds(evs) == ["security.firewall_changed"], evs
    assert evs[0]["data"]["diff"]["added"] == ["table inet intruder {", "}"], evs
    return evs[0]


def test_firewall_change_in_a_namespace(hub, agent, tmp_path, nft_ns):
    ns, nft = nft_ns
    h, a, root = start(hub, agent, tmp_path, firewall=[nft + ["list", "ruleset"]])
    st = a.call("security", "status").result
    assert list(st["firewall"].values())[0].startswith("sha256:"), st
    assert intruder_event(h, nft)["data"]["command"].endswith("nft list ruleset")


def test_nftables_notification_brings_the_check_at_once(hub, agent, tmp_path, nft_ns):
    """The full check is a day away: only nftables' netlink notification (in the namespace the
    config names) can bring the listing that sees the new table."""
    ns, nft = nft_ns
    h, a, root = start(hub, agent, tmp_path, firewall=[nft + ["list", "ruleset"]],
                       firewall_netns=str(ns), interval_ms=86400000)
    st = a.call("security", "status").result
    assert st["firewall_notify"] == {"via": "netlink", "changes": 0}, st
    intruder_event(h, nft)
    st = a.call("security", "status").result
    assert st["checks"] == 1 and st["firewall_notify"]["changes"] >= 1, st
    # A second change is a second notification and a second event.
    subprocess.run(nft + ["add", "chain", "inet", "intruder", "input",
                          "{ type filter hook input priority 0 ; }"], check=True)
    evs = wait_for(lambda: (lambda e: len(e) == 2 and e)(security_events(h)),
                   timeout=30, what="the second firewall event")
    added = [" ".join(e["data"]["diff"]["added"]) for e in evs]
    assert any("chain input {" in x for x in added), evs


def audit_enabled():
    """The kernel's audit state (0, 1 or 2), or None with the reason it cannot be used here."""
    if not shutil.which("auditctl"):
        return None, "auditctl is missing (sh scripts/deps.sh test installs auditd)"
    p = subprocess.run(["auditctl", "-s"], capture_output=True, text=True)
    if p.returncode != 0:
        return None, "the kernel's audit is not reachable here (a container without " \
            "CAP_AUDIT_CONTROL, or a kernel without audit): " + p.stderr.strip()
    for line in p.stdout.splitlines():
        if line.startswith("enabled "):
            return int(line.split()[1]), None
    return None, "auditctl -s did not say whether audit is on: " + p.stdout


@pytest.fixture
def audit_on():
    """Auditing on for the test, as it was afterwards. Auditing is one switch for the whole
    machine: a lock keeps two such tests (pytest-xdist workers) from turning it off under
    each other."""
    was, why = audit_enabled()
    if was is None:
        pytest.skip(why)
    if was == 2:
        pytest.skip("the kernel's audit setup is locked (enabled 2): nothing can be changed")
    with open("/tmp/outpost-test-audit.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        was, _ = audit_enabled()
        try:
            subprocess.run(["auditctl", "-e", "1"], check=True, capture_output=True)
            yield
        finally:
            subprocess.run(["auditctl", "-e", str(was)], capture_output=True)


def test_audit_names_who_changed_passwd(hub, agent, tmp_path, audit_on):
    """With an audit rule on the fake /etc (as auditd's rules watch the real one), the event
    names the writer: its login uid, uid, pid, command and executable."""
    h, a, root = start(hub, agent, tmp_path, interval_ms=86400000)
    key = "outpost-test-%d" % os.getpid()
    etc = str(root / "etc")
    try:
        subprocess.run(["auditctl", "-w", etc, "-p", "wa", "-k", key], check=True,
                       capture_output=True)
        tmp = root / "etc/passwd.new"
        tmp.write_text(PASSWD + "mallory:x:1001:1001::/home/mallory:/bin/sh\n")
        # A writer with a login uid of its own, as a user's session has (pam_loginuid).
        child = subprocess.Popen(
            ["python3", "-c", "import os, sys; open('/proc/self/loginuid', 'w').write('4321');"
             " os.execvp('mv', ['mv', sys.argv[1], sys.argv[2]])", str(tmp),
             str(root / "etc/passwd")])
        assert child.wait() == 0
        evs = wait_for(lambda: security_events(h), timeout=30, what="the passwd event")
        assert kinds(evs) == ["security.passwd_changed"], evs
        who = evs[0]["data"].get("who")
        assert who is not None, (evs, a.call("security", "status").result)
        assert who["login_uid"] == 4321 and who["uid"] == 0, who
        assert who["pid"] == child.pid and who["comm"] == "mv", who
        assert who["exe"].endswith("/mv"), who
        st = a.call("security", "status").result
        assert st["audit"]["via"] == "netlink" and st["audit"]["records"] > 0, st
    finally:
        subprocess.run(["auditctl", "-W", etc, "-p", "wa", "-k", key], capture_output=True)


def test_audit_names_who_changed_the_firewall(hub, agent, tmp_path, nft_ns, audit_on):
    """nftables' own audit records (no rule needed, auditing on) name the command that
    changed the rule set."""
    ns, nft = nft_ns
    h, a, root = start(hub, agent, tmp_path, firewall=[nft + ["list", "ruleset"]],
                       firewall_netns=str(ns), interval_ms=86400000)
    child = subprocess.Popen(nft + ["add", "table", "inet", "intruder"])
    assert child.wait() == 0
    evs = wait_for(lambda: security_events(h), timeout=30, what="the firewall event")
    who = evs[0]["data"].get("who")
    assert who is not None, (evs, a.call("security", "status").result)
    assert who["comm"] == "nft" and who["pid"] == child.pid, who


def test_new_listening_socket_names_its_process(hub, agent, tmp_path):
    h, a, root = start(hub, agent, tmp_path, sockets=True)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        name = "tcp 127.0.0.1:%d" % port

        def mine():
            return [e for e in security_events(h) if e["data"].get("socket") == name]
        ev = wait_for(mine, timeout=20, what="the listen event of " + name)[0]
        assert ev["kind"] == "security.listen_opened" and ev["severity"] == "notice"
        assert ev["data"]["process"]["pid"] == os.getpid(), ev
    finally:
        s.close()


def test_bad_config_gets_located_errors(agent, tmp_path):
    for conf, text in [({"interval_ms": 5}, "plugins.security.interval_ms"),
                       ({"root": "etc"}, "plugins.security.root"),
                       ({"firewall": [["nft", 3]]}, "plugins.security.firewall[0][1]"),
                       ({"firewall": "nft"}, "plugins.security.firewall"),
                       ({"setuid_roots": ["bin"]}, "plugins.security.setuid_roots[0]"),
                       ({"firewall_netns": "netns"}, "plugins.security.firewall_netns"),
                       ({"audit": "yes"}, "plugins.security: field 'audit'"),
                       ({"firewall_netns": 7}, "plugins.security: field 'firewall_netns'"),
                       ({"colour": "red"}, "plugins.security: unknown field 'colour'")]:
        a = agent({"plugins": {"security": dict(conf, enabled=True)}})
        a.wait_log(text, timeout=10)
        r = a.call("security", "status")
        assert not r.ok and r.code == "unavailable", r
        a.stop()
