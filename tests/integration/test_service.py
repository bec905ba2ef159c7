"""The daemons as services: what the unit and the agent's own shutdown do to commands, and
the readiness and watchdog protocol a Type=notify unit relies on (packaging/*.service).

- A command gets umask 022 whatever the agent's own (the unit narrows the agent's to 077).
- A daemon started through exec.run outside the command's process group (setsid) survives an
  agent restart; a command still running when the agent stops is ended by the agent and its
  outcome is recorded, not lost (docs/plugins/exec.md#when-the-agent-stops).
- READY=1 once the daemon serves, WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 on SIGTERM,
  to the datagram socket named by NOTIFY_SOCKET, as systemd would read them.
"""
import os
import signal
import socket
import threading
import time

from outpost_testlib import wait_for


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_commands_get_umask_022_whatever_the_agents(agent, tmp_path):
    old = os.umask(0o077)
    try:
        a = agent()
    finally:
        os.umask(old)
    with open("/proc/%d/status" % a.proc.pid) as f:
        assert "Umask:\t0077" in f.read()
    target = tmp_path / "made-by-command"
    r = a.call("exec", "run", {"script": "umask; touch %s" % target})
    assert r.ok, r
    assert r.result["stdout"] == "0022\n"
    assert oct(os.stat(target).st_mode & 0o777) == "0o644"


def test_a_daemon_started_with_setsid_survives_an_agent_restart(agent, tmp_path):
    a = agent()
    pidfile = tmp_path / "daemon.pid"
    # The script waits for the pid as a start script does: the command's end ends its process
    # group, and a child not yet in its own session (setsid -f forks, then calls setsid) would
    # go with it on a loaded machine.
    r = a.call("exec", "run", {"script": "setsid -f sh -c 'echo $$ > %s; exec sleep 300' "
                                         ">/dev/null 2>&1 </dev/null; "
                                         "while [ ! -s %s ]; do sleep 0.05; done"
                                         % (pidfile, pidfile)},
               id="start-daemon-1")
    assert r.ok and r.result["exit_code"] == 0, r
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the daemon's pid")
    pid = int(pidfile.read_text())
    try:
        a.restart()
        assert pid_alive(pid), "the daemon died with the agent"
    finally:
        os.kill(pid, signal.SIGKILL)


def test_a_command_running_at_stop_is_ended_and_its_outcome_kept(agent, tmp_path):
    a = agent()
    pidfile = tmp_path / "cmd.pid"
    answers = []
    args = {"script": "echo started; echo $$ > %s; sleep 300" % pidfile}

    def long_call():
        answers.append(a.call("exec", "run", args, id="long-1", timeout=30))

    t = threading.Thread(target=long_call, daemon=True)
    t.start()
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the command")
    pid = int(pidfile.read_text())
    # The first SIGTERM waits out the grace period for calls in flight; a second one means
    # "now". Either way the agent ends the command rather than leave it without a deadline.
    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    a.wait_log("stopping: waiting for 1 call(s) in flight")
    a.signal(signal.SIGTERM)
    assert a.proc.wait(10) == 0
    assert time.monotonic() - t0 < 5
    assert not pid_alive(pid), "the command outlived the agent that ran it"
    t.join(5)
    # Its outcome is in the ledger: the same id after a restart answers it, and does not run
    # the command again.
    a.start()
    pidfile.unlink()
    r = a.call("exec", "run", args, id="long-1")
    assert r.ok, r
    assert r.result["agent_stopped"] is True
    assert r.result["signal"] == "SIGKILL" and r.result["timed_out"] is False
    assert r.result["stdout"] == "started\n"
    assert not pidfile.exists(), "the command ran a second time"


def test_agent_notifies_ready_watchdog_and_stopping(agent, tmp_path):
    sock_path = os.path.join(tmp_path, "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(sock_path)
    s.settimeout(5)
    try:
        a = agent(env={"NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "400000"})
        assert s.recv(256) == b"READY=1"
        t0 = time.monotonic()
        assert s.recv(256) == b"WATCHDOG=1"
        assert s.recv(256) == b"WATCHDOG=1"
        assert time.monotonic() - t0 < 1.5  # every 200 ms, half the interval
        a.signal(signal.SIGTERM)
        while True:
            msg = s.recv(256)
            if msg != b"WATCHDOG=1":
                break
        assert msg == b"STOPPING=1"
        assert a.proc.wait(10) == 0
    finally:
        s.close()


def test_hub_notifies_ready_and_stopping(hub, tmp_path):
    sock_path = "@outpost-test-notify-%d" % os.getpid()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + sock_path[1:])
    s.settimeout(10)
    old = os.environ.get("NOTIFY_SOCKET")
    os.environ["NOTIFY_SOCKET"] = sock_path
    try:
        h = hub()
    finally:
        if old is None:
            del os.environ["NOTIFY_SOCKET"]
        else:
            os.environ["NOTIFY_SOCKET"] = old
    try:
        assert s.recv(256) == b"READY=1"
        # Ready means serving: the API answers at once.
        status, _ = h.api("GET", "/api/v1/health")
        assert status == 200
        h.proc.send_signal(signal.SIGTERM)
        assert s.recv(256) == b"STOPPING=1"
        assert h.proc.wait(10) == 0
    finally:
        s.close()
