"""The agent's local API asks who is knocking (docs/security.md#the-agents-local-api).

An unprivileged user on the host, a member of the metrics group, a web page in a browser and
a client without the token each try the agent's doors; only what the policy grants gets
through, and a refused call runs nothing. The agent under test runs as root (as in
production), so "another user" is a real other uid: the client runs under setpriv."""
import grp
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import uuid

import pytest

CLIENT = textwrap.dedent("""
    import http.client, json, socket, sys
    via, target, path, body, hdrs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
    class U(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(target)
    try:
        c = U("localhost", timeout=10) if via == "unix" else http.client.HTTPConnection("127.0.0.1", int(target), timeout=10)
        h = {"Content-Type": "application/json"}
        h.update(hdrs)
        c.request("POST" if body else "GET", path, body=body or None, headers=h)
        r = c.getresponse()
        print(json.dumps({"status": r.status, "body": r.read().decode()}))
    except OSError as e:
        print(json.dumps({"status": 0, "body": str(e)}))
""")


def as_user(agent, via, path, body="", headers=None, user="nobody", groups=None):
    """Runs one request as another user (setpriv): returns (status, parsed body or text)."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to call as another user")
    target = agent.sock if via == "unix" else str(agent.port)
    cmd = ["setpriv", "--reuid=" + user, "--regid=" + (groups[0] if groups else "nogroup")]
    cmd += ["--groups=" + ",".join(groups)] if groups else ["--clear-groups"]
    cmd += [sys.executable, "-c", CLIENT, via, target, path, body, json.dumps(headers or {})]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    try:
        return out["status"], json.loads(out["body"])
    except ValueError:
        return out["status"], out["body"]


def code(answer):
    return answer.get("error", {}).get("code") if isinstance(answer, dict) else answer


@pytest.fixture
def temp_group():
    """A group made for the test (the metrics group of api.group), removed after it."""
    name = "opt%s" % uuid.uuid4().hex[:8]
    subprocess.run(["groupadd", name], check=True)
    yield name
    subprocess.run(["groupdel", name], check=False)


def sock_dir_open(a):
    # The harness keeps the socket in a private 0700 directory: let other users reach it, as
    # /run is for the real socket, so that the socket's own mode is what is tested.
    os.chmod(a.sockdir, 0o755)


def test_other_users_cannot_run_commands_through_the_socket_or_tcp(agent, tmp_path):
    marker = tmp_path / "ran"
    a = agent({"api": {"group": ""}})
    sock_dir_open(a)
    run = json.dumps({"args": {"argv": ["sh", "-c", "touch %s" % marker]}})
    # The socket is 0600 root's without a group: another user cannot even connect.
    assert stat.S_IMODE(os.stat(a.sock).st_mode) == 0o600
    st, ans = as_user(a, "unix", "/v1/exec/run", run)
    assert st == 0 and "ermission denied" in ans
    # Over TCP, without the token.
    st, ans = as_user(a, "tcp", "/v1/exec/run", run)
    assert st == 401 and code(ans) == "unauthorized", ans
    st, ans = as_user(a, "tcp", "/v1/file/put", json.dumps(
        {"args": {"path": str(tmp_path / "x"), "content": "x"}}))
    assert st == 401 and code(ans) == "unauthorized", ans
    # Nor can it read the token (0600, root's).
    tok = os.path.join(a.state_dir, "api.token")
    assert stat.S_IMODE(os.stat(tok).st_mode) == 0o600
    p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        "cat", tok], capture_output=True, text=True)
    assert p.returncode != 0
    # Reads stay open: health answers anyone who reaches the port.
    st, ans = as_user(a, "tcp", "/v1/health")
    assert st == 200 and ans["ok"]
    assert not marker.exists()
    assert "exec: ran" not in a.log()


def test_a_socket_peer_that_is_not_root_nor_in_the_group_is_refused(agent, tmp_path, temp_group):
    a = agent({"api": {"group": temp_group}})
    sock_dir_open(a)
    # 0660 root:group: nobody outside the group cannot connect at all...
    st = os.stat(a.sock)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == grp.getgrnam(temp_group).gr_gid
    status, ans = as_user(a, "unix", "/v1/sys/ping", "{}")
    assert status == 0 and "ermission denied" in ans
    # ...and a process that got hold of a connection is still checked by its credentials: a
    # member whose op is not in the policy gets forbidden.
    status, ans = as_user(a, "unix", "/v1/exec/run", json.dumps({"args": {"argv": ["true"]}}),
                          groups=[temp_group])
    assert status == 403 and code(ans) == "forbidden", ans
    assert "api.group_ops" in ans["error"]["message"]
    assert "exec: ran" not in a.log()


def test_the_metrics_group_may_push_metrics_and_ping_but_not_run(agent, temp_group):
    a = agent({"api": {"group": temp_group}, "plugins": {"metrics": {"statsd_listen": ""}}})
    sock_dir_open(a)
    g = [temp_group]
    st, ans = as_user(a, "unix", "/v1/sys/ping", "{}", groups=g)
    assert st == 200 and ans["ok"], ans
    st, ans = as_user(a, "unix", "/v1/sys/facts", '{"args": {"only": ["os"]}}', groups=g)
    assert st == 200 and ans["ok"], ans
    push = {"args": {"metrics": [{"name": "app_queue_depth", "value": 3}]}}
    st, ans = as_user(a, "unix", "/v1/metrics/push", json.dumps(push), groups=g)
    assert st == 200 and ans["ok"], ans
    for path, body in (("/v1/exec/run", {"args": {"argv": ["id"]}}),
                       ("/v1/file/get", {"args": {"path": "/etc/shadow"}})):
        st, ans = as_user(a, "unix", path, json.dumps(body), groups=g)
        assert st == 403 and code(ans) == "forbidden", (path, ans)
    assert "exec: ran" not in a.log()


@pytest.mark.parametrize("headers,want", [
    ({"Origin": "http://evil.example"}, "forbidden"),
    ({"Origin": "null"}, "forbidden"),
    ({"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, "forbidden"),
    ({"Host": "evil.example:7070"}, "forbidden"),            # DNS rebinding
    ({"Host": "127.0.0.1.evil.example"}, "forbidden"),
    ({"Content-Type": "text/plain"}, "bad_args"),            # a form or fetch() without preflight
    ({"Content-Type": "application/x-www-form-urlencoded"}, "bad_args"),
])
def test_browser_requests_are_refused_even_with_the_token(agent, tmp_path, headers, want):
    marker = tmp_path / "ran"
    a = agent()
    r = a.call("exec", "run", {"argv": ["sh", "-c", "touch %s" % marker]}, headers=headers)
    assert r.code == want, r
    assert not marker.exists()


def test_tcp_needs_the_right_token(agent):
    a = agent()
    assert a.call("sys", "ping", auth=False).code == "unauthorized"
    assert a.call("sys", "ping", headers={"Authorization": "Bearer opa_wrong"}).code == \
        "unauthorized"
    assert a.call("sys", "ping", headers={"Authorization": "Basic " + a.token}).code == \
        "unauthorized"
    r = a.call("sys", "ping")
    assert r.ok, r
    # The message says where the token is, never what it is.
    msg = a.call("sys", "ping", auth=False).json["error"]["message"]
    assert "api.token" in msg and a.token not in msg
    # Loopback names of any spelling are fine.
    for host in ("localhost:%d" % a.port, "127.0.0.1", "[::1]:1"):
        assert a.call("sys", "ping", headers={"Host": host}).ok, host


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_socket_mode_does_not_depend_on_the_umask(agent, temp_group, umask):
    old = os.umask(umask)
    try:
        a = agent({"api": {"group": temp_group}})
        b = agent({"api": {"group": ""}})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(a.sock).st_mode) == 0o660
    assert stat.S_IMODE(os.stat(b.sock).st_mode) == 0o600


def test_check_config_refuses_a_tcp_listen_beyond_loopback(tmp_path):
    from outpost_testlib import AGENT_BIN
    for listen, ok in (("0.0.0.0:7070", False), ("10.1.2.3:7070", False), ("[::]:7070", False),
                       ("127.0.0.1:7070", True), ("[::1]:7070", True), ("localhost:7070", True)):
        conf = tmp_path / "a.conf"
        conf.write_text(json.dumps({"listen": listen, "api": {"group": ""}}))
        p = subprocess.run([AGENT_BIN, "--check-config", "--config", str(conf), "--state-dir",
                            str(tmp_path / "s")], capture_output=True, text=True, timeout=10)
        assert (p.returncode == 0) == ok, (listen, p.stdout, p.stderr)
        if not ok:
            assert "not a loopback address" in p.stderr


def test_check_config_refuses_bad_group_ops_and_unknown_groups(tmp_path):
    from outpost_testlib import AGENT_BIN
    for api, msg in (({"group_ops": ["exec"]}, "plugin.op"),
                     ({"group_ops": [".run"]}, "plugin.op"),
                     ({"group": "no-such-group-here"}, "no group named")):
        conf = tmp_path / "a.conf"
        conf.write_text(json.dumps({"api": api}))
        p = subprocess.run([AGENT_BIN, "--check-config", "--config", str(conf), "--state-dir",
                            str(tmp_path / "s")], capture_output=True, text=True, timeout=10)
        assert p.returncode == 1 and msg in p.stderr, (api, p.stderr)
