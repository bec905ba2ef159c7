"""The integration harness: real outpost-agent, outpost-hub and outpost CLI on loopback.

Every agent gets a private state dir, a free TCP port, a private unix socket and a config
file written by the test (JSON with // comments, the agent's config syntax). The binary
comes from $OUTPOST_BUILD (the Makefile sets it), default /work/main/build.
"""
import base64
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

BUILD = os.environ.get("OUTPOST_BUILD", "/work/main/build")
AGENT_BIN = os.path.join(BUILD, "src/agent/outpost-agent")
HELLO_SO = os.path.join(BUILD, "tests/hello.so")
SRC_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYHELLO = os.path.join(SRC_ROOT, "examples/plugins/pyhello")

START_TIMEOUT_S = 10
STOP_TIMEOUT_S = 10


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: takes a minute or more (its docstring says how long); "
                   "-m 'not slow' leaves it out")


def free_port():
    """A TCP port nobody listens on now (the agent cannot report a port-0 bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path, conf, comment="written by tests/integration"):
    """Writes conf as the agent reads it: JSON, with comments."""
    text = "// %s\n/* the agent's config is JSON with comments */\n%s\n" % (
        comment, json.dumps(conf, indent=2))
    with open(path, "w") as f:
        f.write(text)


def check_config_golden(binary, conf_dir, name, state_dir):
    """Config golden test (OpenBSD style): `binary --check-config` on conf_dir/name, compared
    with the .ok beside it, which holds stdout, then stderr, then "exit N". A bad-* file must
    be refused, a good-* one print the effective config. OUTPOST_REGEN_GOLDEN=1 rewrites the
    .ok files (then read them)."""
    p = subprocess.run([binary, "--check-config", "--config", name, "--state-dir", state_dir],
                       cwd=conf_dir, capture_output=True, text=True, timeout=10)
    got = "%s%sexit %d\n" % (p.stdout, p.stderr, p.returncode)
    ok = conf_dir / (name[:-len(".conf")] + ".ok")
    if os.environ.get("OUTPOST_REGEN_GOLDEN"):
        ok.write_text(got)
    assert ok.exists(), "no %s: run with OUTPOST_REGEN_GOLDEN=1 once, then read it" % ok
    assert got == ok.read_text()
    if name.startswith("bad-"):
        assert got.endswith("exit 1\n") and "configuration error:" in got
    else:
        assert got.endswith("exit 0\n")
        json.loads(got[:-len("exit 0\n")])


def deep_merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            deep_merge(dst[k], v)
        else:
            dst[k] = v
    return dst


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Response:
    """What a call answered: HTTP status, headers, parsed JSON body (or None)."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.text = body.decode("utf-8", "replace")
        try:
            self.json = json.loads(body)
        except ValueError:
            self.json = None

    @property
    def ok(self):
        return self.json is not None and self.json.get("ok") is True

    @property
    def result(self):
        assert self.ok, "expected ok, got %s %s" % (self.status, self.text)
        return self.json["result"]

    @property
    def code(self):
        return (self.json or {}).get("error", {}).get("code")

    def __repr__(self):
        return "<Response %s %s>" % (self.status, self.text[:300])


class Agent:
    def __init__(self, tmp_path, name, conf, state_dir=None, env=None):
        self.dir = tmp_path / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = free_port()
        # sun_path is 108 bytes: keep the socket in a short private directory.
        self.sockdir = tempfile.mkdtemp(prefix="op-", dir="/tmp")
        self.sock = os.path.join(self.sockdir, "agent.sock")
        self.state_dir = str(state_dir or (self.dir / "state"))
        self.config_path = str(self.dir / "agent.conf")
        self.log_path = str(self.dir / "agent.log")
        self.conf = deep_merge({
            "listen": "127.0.0.1:%d" % self.port,
            "socket": self.sock,
            "state_dir": self.state_dir,
            "plugin_dir": "",
            "log": {"level": "info", "target": "stderr"},
        }, conf or {})
        self.env = env
        self.proc = None
        self.expect_dead = False
        self.base = "http://127.0.0.1:%d" % self.port
        write_config(self.config_path, self.conf)

    # ---- life cycle ----

    def start(self, wait=True, extra_args=()):
        logf = open(self.log_path, "ab")
        env = dict(os.environ)
        env.update(self.env or {})
        self.proc = subprocess.Popen(
            [AGENT_BIN, "--foreground", "--config", self.config_path, *extra_args],
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        logf.close()
        self.expect_dead = False
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError("agent exited %s while starting; log:\n%s" %
                                     (rc, self.log()))
            try:
                r = requests.get(self.base + "/v1/health", timeout=1)
                if r.status_code == 200 and r.json().get("ok"):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.02)
        raise AssertionError("agent did not answer /v1/health in %ss; log:\n%s" %
                             (START_TIMEOUT_S, self.log()))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM and wait: returns the exit code (None if it did not exit in time)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def kill(self):
        """SIGKILL: the crash case. The teardown will not expect exit code 0."""
        self.expect_dead = True
        self.proc.kill()
        self.proc.wait()

    def restart(self):
        rc = self.stop()
        assert rc == 0, "agent exit code %r on SIGTERM; log:\n%s" % (rc, self.log())
        return self.start()

    def reconfigure(self, conf):
        """Rewrites the config file with conf merged into the current one (no signal)."""
        self.conf = deep_merge(self.conf, conf)
        write_config(self.config_path, self.conf)

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, text, timeout=5, start=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log()[start:]:
                return
            time.sleep(0.02)
        raise AssertionError("%r not in the agent log after %ss:\n%s" % (text, timeout,
                                                                         self.log()))

    # ---- HTTP ----

    @property
    def token(self):
        """The local API's TCP token (<state_dir>/api.token, made at the first start)."""
        with open(os.path.join(self.state_dir, "api.token")) as f:
            return f.read().strip()

    def request(self, method, path, body=None, via="tcp", headers=None, timeout=15,
                auth=True):
        """Raw HTTP: the path is sent as is (no normalisation of '..'). Over TCP the
        request carries the agent's token (as root's tools would) unless auth is False or
        headers bring an Authorization of their own."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        if via == "unix":
            conn = UnixHTTPConnection(self.sock, timeout=timeout)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            hdrs = {"Content-Type": "application/json"} if body is not None else {}
            if via == "tcp" and auth and "Authorization" not in (headers or {}):
                hdrs["Authorization"] = "Bearer " + self.token
            hdrs.update(headers or {})
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def call(self, plugin, op, args=None, id=None, timeout_ms=None, via="tcp", timeout=15,
             auth=True, headers=None):
        body = {"args": args if args is not None else {}}
        if id is not None:
            body["id"] = id
        if timeout_ms is not None:
            body["timeout_ms"] = timeout_ms
        return self.request("POST", "/v1/%s/%s" % (plugin, op), body, via=via,
                            timeout=timeout, auth=auth, headers=headers)

    def get(self, path, via="tcp"):
        return self.request("GET", path, via=via)

    def metric(self, name):
        """The value of one unlabelled sample of /metrics."""
        for line in self.get("/metrics").text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == name:
                return float(parts[1])
        raise AssertionError("no metric %s" % name)

    def wait_inflight(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.metric("outpost_agent_calls_inflight") >= n:
                return
            time.sleep(0.01)
        raise AssertionError("never %d call(s) in flight" % n)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def agent(tmp_path, request):
    """A factory: agent(conf={...}, state_dir=None, start=True) -> Agent.

    On teardown every agent still running gets SIGTERM and must exit 0 within 10 s; when the
    test failed, every agent's log is printed."""
    if not os.access(AGENT_BIN, os.X_OK):
        pytest.skip("no agent binary at %s: build it (ninja -C build src/agent/outpost-agent)"
                    % AGENT_BIN)
    agents = []

    def make(conf=None, state_dir=None, start=True, name=None, env=None):
        a = Agent(tmp_path, name or "agent%d" % len(agents), conf, state_dir, env)
        agents.append(a)
        if start:
            a.start()
        return a

    yield make

    errors = []
    for a in agents:
        if a.proc is None:
            continue
        if a.proc.poll() is None:
            rc = a.stop()
            if rc != 0:
                errors.append("%s: exit code %r after SIGTERM (want 0 within %ss)" %
                              (a.name, rc, STOP_TIMEOUT_S))
    failed = getattr(request.node, "rep_call", None)
    if errors or (failed is not None and failed.failed):
        for a in agents:
            print("==== log of %s (%s) ====\n%s" % (a.name, a.log_path, a.log()))
    for a in agents:
        try:
            os.unlink(a.sock)
        except OSError:
            pass
        try:
            os.rmdir(a.sockdir)
        except OSError:
            pass
    assert not errors, "; ".join(errors)


HUB_BIN = os.path.join(BUILD, "src/hub/outpost-hub")
CLI_BIN = os.path.join(BUILD, "src/cli/outpost")


class Hub:
    """A real outpost-hub on loopback with a private state dir, over HTTPS with its own
    self-signed certificate (what a user gets on first start)."""

    def __init__(self, tmp_path, conf=None):
        self.dir = tmp_path / "hub"
        self.dir.mkdir(exist_ok=True)
        self.state = self.dir / "state"
        self.port = free_port()
        self.conf = deep_merge({"listen": "127.0.0.1:%d" % self.port,
                                "state_dir": str(self.state),
                                "agents": {"beat_ms": 1000, "missed_beats": 3}}, conf or {})
        if os.environ.get("OUTPOST_TEST_PG_DSN") and "store" not in self.conf:
            self.conf["store"] = {"backend": "postgresql", "dsn": pg_database()}
        self.conf_path = self.dir / "hub.conf"
        write_config(self.conf_path, self.conf)
        self.log_path = self.dir / "hub.log"
        self.proc = None
        self.url = "https://127.0.0.1:%d" % self.port

    def start(self):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([HUB_BIN, "--config", str(self.conf_path), "--foreground"],
                                     stdout=self.logf, stderr=self.logf)
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            assert self.proc.poll() is None, "hub exited at start:\n" + self.log()
            if (self.state / "hub.crt").exists():
                try:
                    r = requests.get(self.url + "/api/v1/health", verify=self.ca, timeout=2)
                    if r.status_code == 200:
                        return self
                except requests.RequestException:
                    pass
            time.sleep(0.05)
        raise AssertionError("hub did not answer:\n" + self.log())

    @property
    def ca(self):
        return str(self.state / "hub.crt")

    @property
    def admin_token(self):
        return (self.state / "admin.token").read_text().strip()

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, method, path, body=None, token=None, raw=None, headers=None, timeout=30):
        """Calls the hub; returns (status, parsed JSON or None)."""
        h = dict(headers or {})
        tok = self.admin_token if token is None else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        r = requests.request(method, self.url + path, data=data, headers=h, verify=self.ca,
                             timeout=timeout)
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, r.text

    def cli(self, *args, token=None, input=None, timeout=60):
        """Runs the real outpost CLI against this hub, as an operator would (OUTPOST_HUB,
        OUTPOST_TOKEN, OUTPOST_CA); returns the CompletedProcess (returncode, stdout, stderr).
        --json output is parsed into .json when it parses."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
        env.update(OUTPOST_HUB=self.url, OUTPOST_CA=self.ca,
                   OUTPOST_TOKEN=self.admin_token if token is None else token,
                   HOME=str(self.dir))  # no operator's ~/.config/outpost/cli.conf
        env.pop("XDG_CONFIG_HOME", None)
        p = subprocess.run([CLI_BIN, *args], env=env, input=input, capture_output=True,
                           text=True, timeout=timeout)
        try:
            p.json = json.loads(p.stdout)
        except ValueError:
            p.json = None
        return p

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("hub did not stop on SIGTERM:\n" + self.log())
            assert rc == 0, "hub exited %d:\n%s" % (rc, self.log())
        self.proc = None


@pytest.fixture
def hub(tmp_path, request):
    hubs = []

    def make(conf=None, start=True):
        h = Hub(tmp_path, conf)
        hubs.append(h)
        return h.start() if start else h

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for h in hubs:
        if failed:
            print("---- hub log ----\n" + h.log())
        h.stop()


PG_RUN = os.path.join(SRC_ROOT, "tests/support/pg_run.sh")


def pg_database():
    """A new empty database on the server of $OUTPOST_TEST_PG_DSN; its DSN. Under
    `tests/support/pg_run.sh pytest ...` every Hub gets one, so that any suite can be run with
    the hub on PostgreSQL (by default hubs use SQLite, and only test_store_pg.py uses it)."""
    base = os.environ["OUTPOST_TEST_PG_DSN"]
    name = "hub_%d_%d" % (os.getpid(), next(_pg_databases))
    subprocess.run(["psql", base, "-qAt", "-c", "CREATE DATABASE %s" % name], check=True,
                   capture_output=True, timeout=30)
    return base.replace("dbname=outpost", "dbname=" + name)


_pg_databases = iter(range(1, 1 << 30))


@pytest.fixture
def postgres():
    """A private PostgreSQL for this test (tests/support/pg_run.sh: initdb in a temp dir, a
    unix socket, no TCP): yields a PostgreSQL whose .dsn goes in a hub's "store":
    {"backend": "postgresql", "dsn": ...}; stopped and removed afterwards. Skips, saying why,
    when PostgreSQL cannot start here."""
    pg = PostgreSQL()
    try:
        yield pg.start()
    finally:
        pg.stop()


class PostgreSQL:
    """The server behind the postgres fixture; .restart() ends every client's session."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="outpost-pg-")  # short: the socket lives in it
        self.dsn = None

    def start(self):
        p = subprocess.run([PG_RUN, "start", self.dir], capture_output=True, text=True,
                           timeout=90)
        if p.returncode != 0:
            pytest.skip("PostgreSQL did not start: " + p.stderr.strip())
        self.dsn = p.stdout.strip()
        return self

    def restart(self):
        subprocess.run([PG_RUN, "restart", self.dir], check=True, timeout=90)

    def pause(self):
        """Stops the server, keeping its data: the database is down until resume()."""
        subprocess.run([PG_RUN, "pause", self.dir], check=True, timeout=90)

    def resume(self):
        subprocess.run([PG_RUN, "resume", self.dir], check=True, timeout=90)

    def sql(self, query):
        """One query by psql; its rows as lists of text cells."""
        p = subprocess.run(["psql", self.dsn, "-qAtF", "\t", "-c", query], check=True,
                           capture_output=True, text=True, timeout=30)
        return [line.split("\t") for line in p.stdout.splitlines()]

    def stop(self):
        subprocess.run([PG_RUN, "stop", self.dir], capture_output=True, timeout=60)


# ---- a fleet: a hub, its CLI, agents (test_fleet.py and the attack and fault suites) ----

# Fast liveness: a host is down 2 s after its last beat. The agent beats every 1 s +-20 %
# (the shortest interval it takes, whatever the hub asks), so an up host never looks down.
HUB_CONF = {"agents": {"beat_ms": 500, "missed_beats": 4}}
WEB = ("web-1", "web-2", "web-3")


def wait_for(fn, timeout=15, step=0.05, what="a condition"):
    """Polls fn until it returns something true; returns that, or fails after timeout s.
    what: text for the failure, or a function giving it then."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" %
                                 (timeout, what() if callable(what) else what))
        time.sleep(step)


def mount_tmpfs(path, size):
    """Mounts a private tmpfs of `size` at path (made here), or skips the test with the reason:
    the full-disk faults need one. Returns a function that unmounts it (lazily: the daemon
    fixtures stop their daemons after that teardown started)."""
    path.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs",
                        str(path)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (%s): the full-disk fault needs one" %
                    (p.stderr.strip() or "exit %d" % p.returncode))
    return lambda: subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path):
    """Writes path until the file system has no byte left (unbuffered: every byte counts)."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def cmd_line(marker):
    """argv for `outpost run`: appends the running agent's pid to marker."""
    return ["--", "sh", "-c", 'echo "$PPID" >> %s' % marker]


def marker_pids(path):
    try:
        with open(path) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


class Fleet:
    """A hub, its CLI, and agents by host id."""

    def __init__(self, hub, agent_factory, tmp_path):
        self.hub = hub
        self._agent = agent_factory
        self.tmp = tmp_path
        self.agents = {}
        # One directory the web hosts may write with file.put (docs/plugins/file.md).
        self.files = tmp_path / "files"
        self.files.mkdir(exist_ok=True)
        self.marker = str(tmp_path / "marker")

    def cli(self, *args, **kw):
        return self.hub.cli(*args, **kw)

    def ok(self, *args, **kw):
        p = self.cli(*args, **kw)
        assert p.returncode == 0, "outpost %s: exit %d\n%s%s" % (" ".join(args), p.returncode,
                                                                  p.stdout, p.stderr)
        return p

    def token(self, labels="role=web"):
        p = self.ok("token", "create", "--enroll", "--ttl", "10m", "--labels", labels)
        return p.stdout.strip()

    def add(self, host_id, token=None, name=None, roots=None, conf=None, link_only=False):
        """Starts an agent for host_id (enrolling with token, if any). name: another agent
        under the same id, with its own state dir (not kept in self.agents). conf: merged
        into its config. link_only: no local API at all (listen and socket ""), so it is
        ready when its log says so, not when /v1/health answers."""
        c = {"hub": {"url": self.hub.url, "ca": self.hub.ca, "host_id": host_id},
             "plugins": {"file": {"roots": [str(r) for r in roots or [self.files]]}}}
        if token:
            c["hub"]["token"] = token
        if link_only:
            c.update(listen="", socket="")
        deep_merge(c, conf or {})
        a = self._agent(c, name=name or host_id, start=not link_only)
        if link_only:
            a.start(wait=False)
            a.wait_log("ready:", timeout=10)
        if name is None:
            self.agents[host_id] = a
        return a

    def hosts(self):
        p = self.ok("--json", "hosts", "ls")
        return {h["id"]: h for h in p.json}

    def state(self, host_id):
        h = self.hosts().get(host_id)
        return h["state"] if h else None

    def wait_states(self, want, timeout=15):
        """Waits until every host of want ({id: state}) is in its state."""
        seen = {}

        def check():
            hosts = self.hosts()
            seen.update((h, hosts.get(h, {}).get("state")) for h in want)
            return seen == want
        wait_for(check, timeout, what=lambda: "hosts %s (they are %s)" % (want, seen))

    def wait_state(self, host_id, state, timeout=15):
        self.wait_states({host_id: state}, timeout)

    def task(self, task_id):
        return self.ok("--json", "tasks", "show", task_id).json

    def rows(self, task_id):
        return {r["host_id"]: r for r in self.task(task_id)["hosts"]}

    def pid(self, host_id):
        return self.agents[host_id].proc.pid


@pytest.fixture
def fleet(hub, agent, tmp_path):
    """fleet(n=3, hub_conf=None) -> Fleet with web-1..web-n enrolled with a role=web token,
    all up; hub_conf is merged into the hub's config."""
    if not os.access(CLI_BIN, os.X_OK) or not os.access(HUB_BIN, os.X_OK):
        pytest.skip("build the hub and the CLI first (ninja -C build)")

    def make(n=3, hub_conf=None):
        f = Fleet(hub(deep_merge(json.loads(json.dumps(HUB_CONF)), hub_conf or {})), agent,
                  tmp_path)
        tok = f.token()
        for i in range(1, n + 1):
            f.add("web-%d" % i, tok)
        f.wait_states({"web-%d" % i: "up" for i in range(1, n + 1)})
        return f

    return make


def table(text):
    """The rows of a CLI table as lists of cells, without the header row."""
    return [line.split() for line in text.splitlines()[1:] if line.strip()]


# ---- a hostile hub ----

def b64(raw):
    return base64.b64encode(raw).decode()


def canonical(task):
    """jansson's JSON_COMPACT | JSON_SORT_KEYS, for ASCII text (docs/protocol.md)."""
    return json.dumps(task, separators=(",", ":"), sort_keys=True)


class FakeHub:
    """Just enough of docs/protocol.md to enroll a real agent and hand it tasks: enroll (with
    this fake's own signing key), beat, the tasks long-poll and results, over plain HTTP on
    loopback. It checks every signed request of the agent the way the hub does, so what the
    test sees is what the real agent sends."""

    def __init__(self):
        import nacl.signing
        self.nacl = nacl
        self.key = nacl.signing.SigningKey.generate()
        self.cond = threading.Condition()
        self.queue = []
        self.results = {}     # task_id -> every result the agent sent, in order
        self.agent_keys = {}  # host_id -> the key it enrolled with
        self.problems = []    # requests that were not signed as the protocol says
        self.polls = 0
        self.enroll_key = self.key  # the hub_pubkey enrollment answers with
        self.refuse_polls = False   # answer long-polls 'unauthorized' (back to enrollment)
        self.raw_polls = []         # bodies (bytes) the next long-polls answer with, verbatim
        # The fake hub's clock minus the real one: a signed request more than 5 minutes off
        # it is answered as the hub does (docs/protocol.md): unauthorized, "clock skew: ...",
        # with X-Outpost-Hub-Time.
        self.clock_offset_ms = 0
        self.enrolls = 0
        # Scale mode (docs/scale.md): host_id -> the ZooKeeper secret the signed
        # GET /api/v1/agents/<id>/zk hands that host, with the ensemble, the session timeout
        # and the hubs' digest id below (a host not in zk_secrets: not_found, a hub not in
        # scale mode); zk_asks counts the requests.
        self.zk_secrets = {}
        self.zk_connect = None
        self.zk_timeout_ms = 15000
        self.zk_hub_acl = None
        self.zk_asks = 0
        self.signed = 0             # signed requests that reached the fake
        self.skewed = 0             # of them, answered "clock skew"
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.handle(self, "GET")

            def do_POST(self):
                fake.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        with self.cond:
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # -- the wire --

    def reply(self, rq, status, result=None, code=None, message=None, headers=None):
        env = {"ok": True, "result": result} if code is None else \
            {"ok": False, "error": {"code": code, "message": message}}
        self.reply_raw(rq, status, json.dumps(env).encode(), headers)

    def reply_raw(self, rq, status, body, headers=None):
        """Answers with body (bytes) as it is: for hostile encodings json.dumps would not make."""
        try:
            rq.send_response(status)
            for k, v in (headers or {}).items():
                rq.send_header(k, v)
            rq.send_header("Content-Type", "application/json")
            rq.send_header("Content-Length", str(len(body)))
            rq.end_headers()
            rq.wfile.write(body)
        except OSError:
            pass  # the agent went away (a long-poll at its shutdown)

    def check_signature(self, rq, method, host_id, body):
        key = self.agent_keys.get(host_id)
        hdr_host = rq.headers.get("X-Outpost-Host")
        t = rq.headers.get("X-Outpost-Time", "")
        sig = rq.headers.get("X-Outpost-Signature", "")
        msg = "%s\n%s\n%s\n%s" % (method, rq.path, t, hashlib.sha256(body).hexdigest())
        try:
            if key is None or hdr_host != host_id or \
                    abs(int(t) - time.time() * 1000 - self.clock_offset_ms) > 300000:
                raise ValueError("host %r time %r" % (hdr_host, t))
            key.verify(msg.encode(), base64.b64decode(sig))
            return True
        except (ValueError, self.nacl.exceptions.BadSignatureError) as e:
            self.problems.append("%s %s: %s" % (method, rq.path, e))
            return False

    def handle(self, rq, method):
        n = int(rq.headers.get("Content-Length") or 0)
        body = rq.rfile.read(n) if n else b""
        url = urllib.parse.urlsplit(rq.path)
        parts = url.path.split("/")
        if url.path == "/api/v1/health":
            return self.reply(rq, 200, {"version": "fake"})
        if method == "POST" and url.path == "/api/v1/enroll":
            self.enrolls += 1
            e = json.loads(body)
            self.agent_keys[e["host_id"]] = self.nacl.signing.VerifyKey(
                base64.b64decode(e["pubkey"]))
            return self.reply(rq, 200, {"host_id": e["host_id"], "state": "up",
                                        "hub_pubkey": b64(self.enroll_key.verify_key.encode())})
        if len(parts) != 6 or parts[:4] != ["", "api", "v1", "agents"]:
            return self.reply(rq, 404, code="not_found", message="no route")
        host_id, verb = parts[4], parts[5]
        self.signed += 1
        hub_ms = int(time.time() * 1000) + self.clock_offset_ms
        t = rq.headers.get("X-Outpost-Time", "")
        if t.isdigit() and abs(int(t) - hub_ms) > 300000:
            self.skewed += 1
            return self.reply(rq, 401, code="unauthorized",
                              message="clock skew: the request is signed at %s, the hub's "
                              "clock says %d" % (t, hub_ms),
                              headers={"X-Outpost-Hub-Time": str(hub_ms)})
        if not self.check_signature(rq, method, host_id, body):
            return self.reply(rq, 401, code="unauthorized", message="bad signature")
        if method == "GET" and verb == "tasks" and self.refuse_polls:
            return self.reply(rq, 401, code="unauthorized", message="who are you?")
        if method == "GET" and verb == "tasks" and self.raw_polls:
            with self.cond:
                self.polls += 1
                raw = self.raw_polls.pop(0)
                self.cond.notify_all()
            return self.reply_raw(rq, 200, raw)
        if method == "GET" and verb == "tasks":
            with self.cond:
                self.polls += 1
                self.cond.notify_all()
                # Hold the long-poll a little (the agent asks again at once).
                self.cond.wait_for(lambda: self.queue, timeout=1.0)
                tasks, self.queue = self.queue, []
            return self.reply(rq, 200, {"tasks": tasks})
        if method == "GET" and verb == "zk":
            self.zk_asks += 1
            if host_id not in self.zk_secrets:
                return self.reply(rq, 404, code="not_found", message="no route")
            return self.reply(rq, 200, {"connect": self.zk_connect, "user": host_id,
                                        "secret": self.zk_secrets[host_id],
                                        "session_timeout_ms": self.zk_timeout_ms,
                                        "hub_acl": self.zk_hub_acl})
        if method == "POST" and verb == "beat":
            return self.reply(rq, 200, {"interval_ms": 1000})
        if method == "POST" and verb == "results":
            results = json.loads(body)["results"]
            with self.cond:
                for r in results:
                    self.results.setdefault(r["task_id"], []).append(r)
                self.cond.notify_all()
            return self.reply(rq, 200, {"accepted": len(results)})
        return self.reply(rq, 404, code="not_found", message="no route")

    # -- tasks --

    def task(self, task_id, host_id, script, expires_in_ms=60000):
        now = int(time.time() * 1000)
        return {"task_id": task_id, "host_id": host_id, "plugin": "exec", "op": "run",
                "args": {"script": script}, "timeout_ms": 10000, "issued_ms": now,
                "expires_ms": now + expires_in_ms}

    def sign(self, task, key=None):
        sig = (key or self.key).sign(canonical(task).encode()).signature
        return {"task": task, "sig": b64(sig)}

    def hand(self, signed):
        with self.cond:
            self.queue.append(signed)
            self.cond.notify_all()

    def hand_raw(self, body):
        """The next long-poll answers with body (bytes), verbatim."""
        with self.cond:
            self.raw_polls.append(body)
            self.cond.notify_all()

    def final(self, task_id, count=1, timeout=10):
        """The count-th final result of task_id."""
        def get():
            with self.cond:
                done = [r for r in self.results.get(task_id, []) if r["state"] != "running"]
            return done[count - 1] if len(done) >= count else None
        return wait_for(get, timeout, what="a final result of %s" % task_id)


@pytest.fixture
def fake_hub():
    pytest.importorskip("nacl.signing", reason="python3-nacl (sh scripts/deps.sh)")
    f = FakeHub()
    yield f
    f.close()


# ---- ZooKeeper (scale mode, docs/scale.md) ----

ZK_JAR = "/usr/share/java/zookeeper.jar"


class ZooKeeper:
    """A private standalone ZooKeeper server (Debian's zookeeper package) on a free port of
    127.0.0.1, with its own conf and data dir: Java started directly with that conf (Debian's
    zkServer.sh reads /etc/zookeeper), its admin server off (it would take port 8080), the
    4-letter words ruok/srvr/stat/mntr/cons/srst allowed. .connect is the connection string.
    stop() keeps the data (start() again is a ZooKeeper restart: sessions survive one shorter
    than their timeout); close() removes everything."""

    def __init__(self, tick_ms=1000, heap_mb=128):
        self.heap_mb = heap_mb  # bench/scale gives 10,000 sessions more
        self.dir = tempfile.mkdtemp(prefix="outpost-zk-")
        self.data = os.path.join(self.dir, "data")
        os.mkdir(self.data)
        self.port = free_port()
        self.connect = "127.0.0.1:%d" % self.port
        self.cfg = os.path.join(self.dir, "zoo.cfg")
        # tickTime 1000: session timeouts of 2-20 s are allowed (tests use short ones).
        with open(self.cfg, "w") as f:
            f.write("tickTime=%d\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                    "maxClientCnxns=0\nadmin.enableServer=false\n"
                    "4lw.commands.whitelist=ruok,srvr,stat,mntr,cons,srst\n"
                    "minSessionTimeout=%d\n" % (tick_ms, self.data, self.port, 2 * tick_ms))
        self.log_path = os.path.join(self.dir, "zookeeper.log")
        self.proc = None

    def four(self, word, timeout=2):
        """Sends a 4-letter word; its answer (text), or None when nothing answers."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
                s.sendall(word.encode())
                chunks = []
                while True:
                    c = s.recv(4096)
                    if not c:
                        break
                    chunks.append(c)
                return b"".join(chunks).decode(errors="replace")
        except OSError:
            return None

    def start(self, timeout=60):
        logf = open(self.log_path, "ab")
        # A small heap: the test machine is shared; the test tree is tiny.
        self.proc = subprocess.Popen(
            ["java", "-Xmx%dm" % self.heap_mb, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "-Dzookeeper.log.dir=" + self.dir, "-cp", "%s:%s" % (self.dir, ZK_JAR),
             "org.apache.zookeeper.server.quorum.QuorumPeerMain", self.cfg],
            stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("zookeeper exited at start:\n" + self.log())
            if (self.four("ruok") or "") == "imok" and "Mode:" in (self.four("srvr") or ""):
                return self
            time.sleep(0.1)
        raise AssertionError("zookeeper did not answer ruok in %d s:\n%s" % (timeout, self.log()))

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-20000:]
        except FileNotFoundError:
            return ""

    def stop(self):
        """Kills the server (as a crash would), keeping its data."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self, down_s=0):
        self.stop()
        time.sleep(down_s)
        return self.start()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def zookeeper():
    """One private ZooKeeper per test module (Java takes seconds to start); skips when the
    zookeeper package is not installed (sh scripts/deps.sh test)."""
    if not os.path.exists(ZK_JAR) or not shutil.which("java"):
        pytest.skip("no ZooKeeper server (%s, java): sh scripts/deps.sh test" % ZK_JAR)
    zk = ZooKeeper()
    try:
        yield zk.start()
    finally:
        zk.close()


def kazoo_client(connect, user=None, secret=None, timeout_s=10):
    """A started kazoo client on connect, authenticated with the digest user:secret when
    given (a hub is "outpost-hub", an agent its host id: docs/scale.md); the caller stops it.
    Skips when python3-kazoo is absent."""
    kc = pytest.importorskip("kazoo.client", reason="python3-kazoo (sh scripts/deps.sh test)")
    auth = [("digest", "%s:%s" % (user, secret))] if user is not None else None
    c = kc.KazooClient(hosts=connect, auth_data=auth, timeout=timeout_s)
    c.start(timeout=timeout_s)
    return c


def zk_digest(user, secret):
    """ZooKeeper's digest id of user:secret (user:base64(sha1(user:secret))), as in an ACL."""
    raw = hashlib.sha1(("%s:%s" % (user, secret)).encode()).digest()
    return "%s:%s" % (user, base64.b64encode(raw).decode())


# ---- outpost-sim: many virtual agents in one process (docs/sim.md) ----

SIM_BIN = os.path.join(BUILD, "src/sim/outpost-sim")


class Sim:
    """A real outpost-sim against a hub: conf is merged into its config (agents, metrics...).
    api() calls its control API with the token it wrote."""

    def __init__(self, tmp_path, hub, token, conf=None):
        self.dir = tmp_path / "sim"
        self.dir.mkdir(exist_ok=True)
        self.state = self.dir / "state"
        self.port = free_port()
        self.conf = deep_merge({"listen": "127.0.0.1:%d" % self.port, "state_dir": str(self.state),
                                "hub": {"url": hub.url, "ca": hub.ca, "token": token},
                                "agents": 10, "ramp_per_s": 2000}, conf or {})
        self.conf_path = self.dir / "sim.conf"
        write_config(self.conf_path, self.conf)
        self.log_path = self.dir / "sim.log"
        self.proc = None
        self.url = "http://127.0.0.1:%d" % self.port

    def start(self):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([SIM_BIN, "--config", str(self.conf_path), "--foreground"],
                                     stdout=self.logf, stderr=self.logf)
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            assert self.proc.poll() is None, "outpost-sim exited at start:\n" + self.log()
            try:
                if requests.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise AssertionError("outpost-sim did not answer:\n" + self.log())

    @property
    def token(self):
        return (self.state / "control.token").read_text().strip()

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, method, path, body=None, token=None, raw=None, headers=None):
        h = dict(headers or {})
        tok = self.token if token is None else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        if body is not None or raw is not None:
            h.setdefault("Content-Type", "application/json")
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        r = requests.request(method, self.url + path, data=data, headers=h, timeout=60)
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, r.text

    def ok(self, method, path, body=None):
        st, j = self.api(method, path, body)
        assert st == 200 and j["ok"], "%s %s: %s %s" % (method, path, st, j)
        return j["result"]

    def status(self):
        return self.ok("GET", "/v1/status")

    def agents(self, state=None):
        return {a["host_id"]: a for a in self.ok("GET", "/v1/agents" + ("?state=" + state
                                                                         if state else ""))}

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("outpost-sim did not stop on SIGTERM:\n" + self.log())
            assert rc == 0, "outpost-sim exited %d:\n%s" % (rc, self.log())
        self.proc = None
