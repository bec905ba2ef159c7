"""Integration tests of outpost-agent: the real binary on loopback, checked the way a user
would check it (curl, ps, the files it touched, its log, its exit code)."""
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from outpost_testlib import AGENT_BIN, HELLO_SO, PYHELLO, SRC_ROOT, check_config_golden, write_config

IS_ROOT = os.geteuid() == 0


def assert_error(r, code, status):
    """The one error envelope, exactly: {"ok": false, "error": {"code", "message"}}."""
    assert r.status == status, r
    assert r.headers.get("content-type") == "application/json", r.headers
    assert r.json is not None, "not JSON: %r" % r.text
    assert set(r.json) == {"ok", "error"}, r.json
    assert r.json["ok"] is False
    assert set(r.json["error"]) == {"code", "message"}, r.json
    assert r.json["error"]["code"] == code, r
    msg = r.json["error"]["message"]
    assert isinstance(msg, str) and len(msg) > 10, r
    return msg


def run_in_thread(fn, *args, **kwargs):
    """Starts fn in a thread; returns a function that joins it and returns (value, exc)."""
    box = {}

    def target():
        try:
            box["value"] = fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - handed to the test
            box["exc"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()

    def join(timeout=15):
        t.join(timeout)
        assert not t.is_alive(), "call still running after %ss" % timeout
        return box.get("value"), box.get("exc")

    return join


def wait_for(pred, timeout=5, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


def pid_alive(pid):
    """True while pid runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def killpg_quietly(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------------------------------
# The basics: ping, facts, plugins, metrics, over TCP and the unix socket


@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_ping_and_facts(agent, via):
    a = agent()
    before = time.time() * 1000
    r = a.call("sys", "ping", via=via)
    assert r.status == 200 and r.headers["content-type"] == "application/json"
    assert r.result["pong"] is True
    assert before - 5000 <= r.result["time_ms"] <= time.time() * 1000 + 5000

    r = a.call("sys", "facts", via=via)
    facts = r.result
    for section in ("agent", "host", "os", "kernel", "cpu", "memory", "disks", "mounts",
                    "nics", "boot"):
        assert section in facts, section
    assert facts["kernel"]["release"] == os.uname().release
    assert facts["host"]["hostname"] == os.uname().nodename
    assert facts["cpu"]["count"] == os.cpu_count()
    assert any(n["name"] == "lo" for n in facts["nics"])

    r = a.call("sys", "facts", {"only": ["kernel", "cpu"]}, via=via)
    assert set(r.result) == {"kernel", "cpu"}


def test_unix_socket_is_private(agent):
    a = agent()
    st = os.stat(a.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert st.st_mode & 0o007 == 0, "socket mode %o lets others in" % st.st_mode


def test_plugins_lists_builtins_with_ops_and_args(agent):
    a = agent()
    r = a.get("/v1/plugins")
    plugins = {p["name"]: p for p in r.result}
    assert {"sys", "exec", "file"} <= set(plugins)
    for p in plugins.values():
        assert p["enabled"] is True and p["kind"] == "builtin" and p["version"]

    def ops(name):
        return {o["name"]: o for o in plugins[name]["ops"]}

    def args(plugin, op):
        return {x["name"]: x for x in ops(plugin)[op]["args"]}

    assert set(ops("sys")) == {"ping", "facts"}
    assert args("sys", "facts")["only"]["type"] == "array"
    assert set(ops("exec")) == {"run"}
    assert ops("exec")["run"]["mutating"] is True
    assert set(args("exec", "run")) == {"argv", "script", "stdin", "cwd", "env", "user",
                                        "timeout_ms", "max_output"}
    assert args("exec", "run")["env"]["type"] == "object"
    assert set(ops("file")) == {"put", "get", "stat", "remove"}
    assert ops("file")["put"]["mutating"] and not ops("file")["get"]["mutating"]
    put = args("file", "put")
    assert put["path"]["required"] and put["content"]["required"]
    assert put["make_dirs"]["type"] == "boolean"
    for o in ops("file").values():
        assert o["help"]
        for x in o["args"]:
            assert x["help"] and x["type"] in ("string", "integer", "boolean", "array",
                                               "object", "number")


PROM_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? '
                         r'-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$')


def test_metrics_is_prometheus_text_and_counts_calls(agent):
    a = agent()
    r = a.get("/metrics")
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    typed = set()
    for line in r.text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
        elif line.startswith("#"):
            continue
        else:
            assert PROM_SAMPLE.match(line), "not a Prometheus sample: %r" % line
            assert re.split(r"[{ ]", line)[0] in typed, "sample before its TYPE: %r" % line
    assert "outpost_agent_calls_total" in typed

    calls = a.metric("outpost_agent_calls_total")
    for _ in range(3):
        a.call("sys", "ping")
    a.call("nosuch", "op")
    assert a.metric("outpost_agent_calls_total") == calls + 4
    assert a.metric("outpost_agent_calls_failed_total") >= 1
    assert 'outpost_agent_op_calls_total{plugin="sys",op="ping"} 3' in a.get("/metrics").text


def test_metrics_show_where_the_heap_goes(agent):
    a = agent()
    text = a.get("/metrics").text
    sqlite = a.metric("outpost_agent_sqlite_memory_bytes")
    heap = {k: float(re.search(r'^outpost_agent_heap_bytes\{kind="%s"\} (\d+)$' % k, text,
                               re.M).group(1)) for k in ("in_use", "free", "mmapped")}
    assert sqlite > 0, "the ledger's database is open: SQLite holds memory"
    cache = a.metric("outpost_agent_sqlite_cache_bytes")
    assert 0 < cache <= sqlite, "its page cache is part of SQLite's memory"
    assert cache <= 256 * 1024 + 64 * 1024, "PRAGMA cache_size=-256 bounds it (plus headers)"
    # A sanitizer's allocator replaces glibc's malloc, and its mallinfo2() says 0 throughout.
    if any(heap.values()):
        assert heap["in_use"] > 0
        assert sqlite <= heap["in_use"] + heap["mmapped"], "SQLite's memory comes from malloc"


# ---------------------------------------------------------------------------------------------
# Bad input: the one envelope, the right code and status, nothing done


BAD_REQUESTS = [
    # id, method, path, body, code, status
    ("malformed-json", "POST", "/v1/sys/ping", '{"args": {', "bad_json", 400),
    ("trailing-garbage", "POST", "/v1/sys/ping", '{"args": {}} x', "bad_json", 400),
    ("nested-100-deep", "POST", "/v1/sys/ping",
     '{"args": {"a": ' + "[" * 98 + "]" * 98 + "}}", "bad_json", 400),
    ("body-not-object", "POST", "/v1/sys/ping", "[1, 2]", "bad_json", 400),
    ("duplicate-key", "POST", "/v1/sys/ping", '{"args": {}, "args": {}}', "bad_json", 400),
    ("unknown-plugin", "POST", "/v1/nosuch/ping", "{}", "unknown_plugin", 404),
    ("unknown-op", "POST", "/v1/sys/nosuch", "{}", "unknown_op", 404),
    ("unknown-field", "POST", "/v1/sys/ping", '{"args": {}, "argz": {}}', "bad_args", 400),
    ("args-not-object", "POST", "/v1/sys/ping", '{"args": ["x"]}', "bad_args", 400),
    ("args-string", "POST", "/v1/sys/ping", '{"args": "x"}', "bad_args", 400),
    ("unknown-arg", "POST", "/v1/sys/ping", '{"args": {"x": 1}}', "bad_args", 400),
    ("facts-only-string", "POST", "/v1/sys/facts", '{"args": {"only": "cpu"}}', "bad_args",
     400),
    ("facts-only-unknown", "POST", "/v1/sys/facts", '{"args": {"only": ["gpu"]}}', "bad_args",
     400),
    ("exec-argv-string", "POST", "/v1/exec/run", '{"args": {"argv": "ls"}}', "bad_args", 400),
    ("exec-argv-numbers", "POST", "/v1/exec/run", '{"args": {"argv": [1, 2]}}', "bad_args",
     400),
    ("exec-timeout-string", "POST", "/v1/exec/run",
     '{"args": {"argv": ["true"], "timeout_ms": "5"}}', "bad_args", 400),
    ("exec-nothing", "POST", "/v1/exec/run", '{"args": {}}', "bad_args", 400),
    ("file-path-number", "POST", "/v1/file/stat", '{"args": {"path": 5}}', "bad_args", 400),
    ("file-path-missing", "POST", "/v1/file/get", '{"args": {}}', "bad_args", 400),
    ("id-not-string", "POST", "/v1/exec/run", '{"args": {"argv": ["true"]}, "id": 7}',
     "bad_args", 400),
    ("id-bad-chars", "POST", "/v1/exec/run", '{"args": {"argv": ["true"]}, "id": "a/../b"}',
     "bad_args", 400),
    ("timeout-negative", "POST", "/v1/sys/ping", '{"args": {}, "timeout_ms": -1}', "bad_args",
     400),
    ("get-on-post-route", "GET", "/v1/sys/ping", None, "not_found", 404),
    ("post-on-get-route", "POST", "/v1/plugins", "{}", "not_found", 404),
    ("no-such-endpoint", "GET", "/nope", None, "not_found", 404),
    ("traversal", "POST", "/v1/../x", "{}", "not_found", 404),
    ("traversal-into-op", "POST", "/v1/sys/../exec/run", '{"args": {"argv": ["true"]}}',
     "not_found", 404),
    ("traversal-escaped", "POST", "/v1/%2e%2e/exec/run", "{}", "not_found", 404),
    ("uppercase-plugin", "POST", "/v1/SYS/ping", "{}", "not_found", 404),
    ("extra-segment", "POST", "/v1/sys/ping/x", "{}", "not_found", 404),
]


@pytest.mark.parametrize("method,path,body,code,status",
                         [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_gets_the_envelope(agent, method, path, body, code, status):
    a = agent()
    r = a.request(method, path, body)
    msg = assert_error(r, code, status)
    if method == "GET" and path.startswith("/v1/sys"):
        assert "not allowed" in msg
    # Nothing ran: exec logs every command it runs.
    assert a.call("sys", "ping").ok
    assert "exec: ran" not in a.log()


def test_body_over_limit_is_too_large(agent):
    a = agent({"api": {"body_limit": 1024}})
    big = json.dumps({"args": {"argv": ["echo", "x" * 4000]}})
    assert_error(a.request("POST", "/v1/exec/run", big), "too_large", 413)
    # The same without a Content-Length (chunked): counted as it arrives.
    t0 = time.monotonic()
    r = requests.post(a.base + "/v1/exec/run", data=(big[i:i + 500].encode()
                                                     for i in range(0, len(big), 500)),
                      headers={"Content-Type": "application/json",
                               "Authorization": "Bearer " + a.token}, timeout=10)
    assert time.monotonic() - t0 < 5, "a chunked body over the limit was not answered"
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    # Under the limit is fine.
    assert a.call("sys", "ping").ok
    assert "exec: ran" not in a.log()


def test_file_outside_roots_and_symlinks_are_forbidden(agent, tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("secret\n")
    (root / "link").symlink_to(outside)
    (root / "filelink").symlink_to(outside / "secret")
    a = agent({"plugins": {"file": {"roots": [str(root)]}}})

    msg = assert_error(a.call("file", "get", {"path": str(outside / "secret")}), "forbidden",
                       403)
    assert "outside the allowed roots" in msg
    assert_error(a.call("file", "get", {"path": "/etc/passwd"}), "forbidden", 403)
    # A symlinked directory inside the root, for reading and for writing.
    assert_error(a.call("file", "get", {"path": str(root / "link" / "secret")}), "forbidden",
                 403)
    assert_error(a.call("file", "put", {"path": str(root / "link" / "new"), "content": "x"},
                        id="put-through-link"), "forbidden", 403)
    assert not (outside / "new").exists()
    # A symlink as the final component.
    msg = assert_error(a.call("file", "get", {"path": str(root / "filelink")}), "forbidden",
                       403)
    assert "symlink" in msg
    assert_error(a.call("file", "put", {"path": str(root / "filelink"), "content": "pwned"},
                        id="put-over-link"), "forbidden", 403)
    assert (outside / "secret").read_text() == "secret\n"
    # '..' is never interpreted.
    assert_error(a.call("file", "get", {"path": str(root) + "/../outside/secret"}),
                 "bad_args", 400)


def test_busy_when_max_inflight_reached(agent):
    a = agent({"dispatch": {"max_inflight": 1, "workers": 1}})
    join = run_in_thread(a.call, "exec", "run", {"argv": ["sleep", "1"]})
    a.wait_inflight(1)
    msg = assert_error(a.call("sys", "ping"), "busy", 503)
    assert "retry" in msg
    slow, exc = join()
    assert exc is None and slow.result["exit_code"] == 0
    assert a.call("sys", "ping").ok
    assert a.metric("outpost_agent_calls_busy_total") == 1


def test_timeout_of_exec_run(agent):
    """dispatch.timeouts caps exec.run: the command is killed at the deadline and its result
    (timed_out) still reaches the caller in time; a call that cannot even start by its deadline
    gets the timeout envelope (504)."""
    a = agent({"dispatch": {"timeouts": {"exec.run": 500}, "workers": 1}})
    t0 = time.monotonic()
    r = a.call("exec", "run", {"argv": ["sleep", "5"]})
    took = time.monotonic() - t0
    assert took < 1.2, "exec.run sleep 5 answered after %.2fs with a 500 ms timeout" % took
    assert r.status == 200, r
    assert r.result["timed_out"] is True and r.result["signal"] == "SIGKILL"
    assert r.result["exit_code"] is None
    assert a.call("sys", "ping").ok

    # The one worker is busy for ~450 ms: a facts call with a 100 ms deadline times out in the
    # queue. (ping would not: it runs inline on the loop, never waiting for a worker.)
    join = run_in_thread(a.call, "exec", "run", {"argv": ["sleep", "5"]})
    a.wait_inflight(1)
    t0 = time.monotonic()
    assert a.call("sys", "ping").ok
    msg = assert_error(a.call("sys", "facts", timeout_ms=100), "timeout", 504)
    assert time.monotonic() - t0 < 0.4
    assert "deadline" in msg
    slow, exc = join()
    assert exc is None and slow.result["timed_out"] is True
    assert a.call("sys", "ping").ok
    assert a.metric("outpost_agent_calls_timeout_total") >= 1


def test_timeout_of_a_slow_plugin_is_504(agent, tmp_path):
    """An op that ignores its deadline: the caller gets 504 at the deadline, and the agent
    goes on answering."""
    pdir = tmp_path / "plugins"
    pdir.mkdir(mode=0o755)
    slow = pdir / "slow"
    slow.write_text("#!/bin/sh\n"
                    "if [ \"$1\" = --describe ]; then\n"
                    "  echo '{\"name\": \"slow\", \"version\": \"1\", \"ops\": "
                    "[{\"name\": \"nap\", \"args\": []}]}'\n"
                    "  exit 0\nfi\n"
                    "sleep 5\necho '{\"ok\": true, \"result\": null}'\n")
    slow.chmod(0o755)
    a = agent({"plugin_dir": str(pdir), "dispatch": {"timeouts": {"slow.nap": 500}}})
    t0 = time.monotonic()
    assert_error(a.call("slow", "nap"), "timeout", 504)
    assert time.monotonic() - t0 < 1.5
    assert a.call("sys", "ping").ok


# ---------------------------------------------------------------------------------------------
# exec.run end to end


def test_exec_run_end_to_end(agent, tmp_path):
    a = agent(env={"OUTPOST_TEST_SECRET": "leak"})

    r = a.call("exec", "run", {"argv": ["echo", "hello", "world"]}).result
    assert r["exit_code"] == 0 and r["stdout"] == "hello world\n" and r["stderr"] == ""
    assert r["signal"] is None and r["timed_out"] is False
    assert isinstance(r["duration_ms"], int)

    # argv is not a shell: metacharacters are plain arguments.
    r = a.call("exec", "run", {"argv": ["echo", "$HOME;", "`id`"]}).result
    assert r["stdout"] == "$HOME; `id`\n"

    r = a.call("exec", "run", {"script": "echo out; echo err >&2; exit 3"}).result
    assert (r["exit_code"], r["stdout"], r["stderr"]) == (3, "out\n", "err\n")

    r = a.call("exec", "run", {"argv": ["cat"], "stdin": "line1\nline2\n"}).result
    assert r["stdout"] == "line1\nline2\n"

    # A clean environment plus what the caller adds; nothing of the agent's leaks.
    r = a.call("exec", "run", {"script": 'echo "$FOO|${OUTPOST_TEST_SECRET-unset}|$PATH"',
                               "env": {"FOO": "bar baz"}}).result
    foo, secret, path = r["stdout"].rstrip("\n").split("|")
    assert (foo, secret) == ("bar baz", "unset") and "/bin" in path

    r = a.call("exec", "run", {"argv": ["pwd"]}).result
    assert r["stdout"] == "/\n"
    r = a.call("exec", "run", {"argv": ["pwd"], "cwd": str(tmp_path)}).result
    assert r["stdout"] == str(tmp_path) + "\n"
    assert_error(a.call("exec", "run", {"argv": ["pwd"], "cwd": "relative"}), "bad_args", 400)

    r = a.call("exec", "run", {"script": "kill -TERM $$"}).result
    assert r["exit_code"] is None and r["signal"] == "SIGTERM"

    assert_error(a.call("exec", "run", {"argv": ["/no/such/program"]}), "not_found", 404)

    if IS_ROOT:
        r = a.call("exec", "run", {"argv": ["id", "-u"], "user": "nobody"}).result
        assert r["stdout"] == "65534\n"
        assert_error(a.call("exec", "run", {"argv": ["id"], "user": "no-such-user-x"}),
                     "bad_args", 400)


def test_exec_run_timeout_kills_the_process_group(agent, tmp_path):
    a = agent()
    pidfile = tmp_path / "bg.pid"
    t0 = time.monotonic()
    r = a.call("exec", "run", {"script": "sleep 30 & echo $! > %s; echo started; wait" % pidfile,
                               "timeout_ms": 300}).result
    assert time.monotonic() - t0 < 2
    assert r["timed_out"] is True and r["signal"] == "SIGKILL"
    assert r["stdout"] == "started\n", "output before the timeout is kept"
    bg = int(pidfile.read_text())
    try:
        wait_for(lambda: not pid_alive(bg), 2, "the background sleep to die")
        ps = subprocess.run(["ps", "-o", "stat=", "-p", str(bg)], capture_output=True,
                            text=True).stdout.strip()
        assert ps in ("",) or ps.startswith("Z"), "sleep %d still there: %s" % (bg, ps)
    finally:
        if pid_alive(bg):
            os.kill(bg, signal.SIGKILL)

    # A command that leaves a process behind in its group: it goes when the command ends.
    r = a.call("exec", "run", {"script": "sleep 30 & echo $! > %s" % pidfile}).result
    assert r["exit_code"] == 0 and not r["timed_out"]
    bg = int(pidfile.read_text())
    try:
        wait_for(lambda: not pid_alive(bg), 2, "the leftover sleep to die")
    finally:
        if pid_alive(bg):
            os.kill(bg, signal.SIGKILL)


def test_exec_run_output_truncation(agent):
    a = agent()
    r = a.call("exec", "run", {"script": "head -c 100000 /dev/zero | tr '\\0' a; "
                                         "head -c 5000 /dev/zero | tr '\\0' b >&2",
                               "max_output": 1000}).result
    assert r["exit_code"] == 0
    assert r["stdout"] == "a" * 1000 and r["stdout_truncated"] is True
    assert r["stderr"] == "b" * 1000 and r["stderr_truncated"] is True
    r = a.call("exec", "run", {"argv": ["echo", "short"], "max_output": 1000}).result
    assert r["stdout_truncated"] is False and r["stderr_truncated"] is False
    # Bytes that are not UTF-8 still come back as JSON text, and exactly in base64.
    r = a.call("exec", "run", {"script": "printf 'a\\377b'"}).result
    assert r["stdout"] == "a\ufffdb"
    assert base64.b64decode(r["stdout_base64"]) == b"a\xffb"


# ---------------------------------------------------------------------------------------------
# file put/get/stat/remove end to end


def test_file_put_get_stat_remove(agent, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    a = agent({"plugins": {"file": {"roots": [str(root)]}}})
    path = root / "conf" / "app.ini"
    content = "[main]\nport = 8080\n"
    sha = hashlib.sha256(content.encode()).hexdigest()

    # put into a missing directory needs make_dirs
    assert_error(a.call("file", "put", {"path": str(path), "content": content}, id="p0"),
                 "not_found", 404)
    r = a.call("file", "put", {"path": str(path), "content": content, "mode": "0640",
                               "make_dirs": True, "sha256": sha}, id="p1").result
    assert r == {"path": str(path), "size": len(content), "sha256": sha, "mode": "0640",
                 "changed": True}
    assert path.read_text() == content
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    ino = path.stat().st_ino

    # The same again: nothing written.
    r = a.call("file", "put", {"path": str(path), "content": content}, id="p2").result
    assert r["changed"] is False and path.stat().st_ino == ino

    # Atomic replace: a reader that had the old file open keeps reading the old content;
    # the new content is a new inode; no temp file is left behind; the mode is kept.
    with open(path) as old:
        new = "[main]\nport = 9090\n"
        r = a.call("file", "put", {"path": str(path), "content": new}, id="p3").result
        assert r["changed"] is True and r["mode"] == "0640"
        assert r["sha256"] == hashlib.sha256(new.encode()).hexdigest()
        assert old.read() == content
    assert path.read_text() == new and path.stat().st_ino != ino
    assert sorted(os.listdir(path.parent)) == ["app.ini"]

    # A damaged upload (sha256 mismatch) writes nothing.
    assert_error(a.call("file", "put", {"path": str(path), "content": "evil", "sha256": sha},
                        id="p4"), "bad_args", 400)
    assert path.read_text() == new
    # Compare-and-swap against a stale sha256.
    msg = assert_error(a.call("file", "put", {"path": str(path), "content": "x",
                                              "if_sha256": sha}, id="p5"), "conflict", 409)
    assert hashlib.sha256(new.encode()).hexdigest() in msg
    assert path.read_text() == new

    r = a.call("file", "get", {"path": str(path)}).result
    assert r["content"] == new and r["encoding"] == "utf8" and r["size"] == len(new)
    assert r["sha256"] == hashlib.sha256(new.encode()).hexdigest() and r["mode"] == "0640"
    assert r["uid"] == os.geteuid() and isinstance(r["mtime"], int)

    # Binary content in base64, both ways.
    blob = bytes(range(256))
    bpath = root / "blob.bin"
    r = a.call("file", "put", {"path": str(bpath), "encoding": "base64",
                               "content": base64.b64encode(blob).decode(),
                               "sha256": hashlib.sha256(blob).hexdigest()}, id="p6").result
    assert r["size"] == 256 and r["mode"] == "0644"
    assert bpath.read_bytes() == blob
    assert_error(a.call("file", "get", {"path": str(bpath)}), "bad_args", 400)
    r = a.call("file", "get", {"path": str(bpath), "encoding": "base64"}).result
    assert base64.b64decode(r["content"]) == blob

    r = a.call("file", "stat", {"path": str(path)}).result
    assert r["exists"] is True and r["size"] == len(new)
    assert r["sha256"] == hashlib.sha256(new.encode()).hexdigest()
    assert a.call("file", "stat", {"path": str(root / "nope")}).result["exists"] is False
    assert_error(a.call("file", "get", {"path": str(root / "nope")}), "not_found", 404)

    r = a.call("file", "remove", {"path": str(path)}, id="r1").result
    assert r == {"path": str(path), "removed": True}
    assert not path.exists()
    r = a.call("file", "remove", {"path": str(path)}, id="r2").result
    assert r["removed"] is False


# ---------------------------------------------------------------------------------------------
# Idempotency: the ledger


def test_idempotent_exec_replays_and_survives_restart(agent, tmp_path):
    a = agent()
    out = tmp_path / "out.txt"
    args = {"script": "echo line >> %s; echo done" % out}

    first = a.call("exec", "run", args, id="x1")
    assert first.ok and "replay" not in first.json
    second = a.call("exec", "run", args, id="x1")
    assert second.ok and second.json["replay"] is True
    assert second.result == first.result
    assert out.read_text() == "line\n"

    msg = assert_error(a.call("exec", "run", {"script": "echo other >> %s" % out}, id="x1"),
                       "conflict", 409)
    assert "x1" in msg
    assert_error(a.call("file", "remove", {"path": "/nonexistent"}, id="x1"), "conflict", 409)
    assert out.read_text() == "line\n"
    assert a.metric("outpost_agent_calls_replayed_total") == 1

    # Read-only ops take no part in the ledger: an id on sys.ping is not remembered.
    assert a.call("sys", "ping", id="x1").ok

    a.restart()
    third = a.call("exec", "run", args, id="x1")
    assert third.ok and third.json["replay"] is True
    assert third.result == first.result
    assert out.read_text() == "line\n"
    assert a.metric("outpost_agent_ledger_rows") >= 1


def test_same_id_twice_at_once_runs_once(agent, tmp_path):
    a = agent()
    out = tmp_path / "out.txt"
    args = {"script": "echo line >> %s; sleep 0.3; echo done" % out}
    joins = [run_in_thread(a.call, "exec", "run", args, id="twin") for _ in range(2)]
    answers = [j() for j in joins]
    assert all(exc is None for _, exc in answers), answers
    rs = [r for r, _ in answers]
    assert all(r.ok for r in rs), rs
    assert sorted(bool(r.json.get("replay")) for r in rs) == [False, True]
    assert rs[0].result == rs[1].result
    assert out.read_text() == "line\n"
    assert_error(a.call("exec", "run", args, id="x" * 129), "bad_args", 400)


def test_call_running_when_agent_died_is_lost(agent, tmp_path):
    a = agent()
    marker = tmp_path / "marker"
    pidfile = tmp_path / "sh.pid"
    args = {"script": "echo run >> %s; echo $$ > %s; sleep 30" % (marker, pidfile)}
    pgid = None
    try:
        join = run_in_thread(a.call, "exec", "run", args, id="slow1", timeout=30)
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 5,
                 "the command to start")
        pgid = int(pidfile.read_text())
        a.kill()
        _, exc = join()
        assert exc is not None, "the caller of a killed agent got no answer"

        a.start()
        assert "marked lost" in a.log()
        r = a.call("exec", "run", args, id="slow1")
        msg = assert_error(r, "lost", 409)
        assert "slow1" in msg and "will not run again" in msg
        time.sleep(0.1)
        assert marker.read_text() == "run\n", "the lost command ran again"
        # Still lost after another restart.
        a.restart()
        assert_error(a.call("exec", "run", args, id="slow1"), "lost", 409)
        assert marker.read_text() == "run\n"
    finally:
        if pgid:
            killpg_quietly(pgid)


def test_second_agent_on_same_state_dir_refuses(agent):
    a = agent()
    b = agent(state_dir=a.state_dir, start=False)
    b.start(wait=False)
    rc = b.proc.wait(5)
    assert rc != 0
    assert "another agent is running on state directory %s" % a.state_dir in b.log()
    # The first one is untouched, and its socket too.
    assert a.call("sys", "ping").ok
    assert a.call("sys", "ping", via="unix").ok


# ---------------------------------------------------------------------------------------------
# Signals


def test_sighup_reloads_and_refuses_a_broken_config(agent):
    a = agent({"dispatch": {"timeouts": {"exec.run": 10000}}})
    sleep5 = {"argv": ["sleep", "5"]}

    a.reconfigure({"log": {"level": "debug"}, "dispatch": {"timeouts": {"exec.run": 400}}})
    mark = len(a.log())
    a.signal(signal.SIGHUP)
    a.wait_log("configuration reloaded", start=mark)
    t0 = time.monotonic()
    r = a.call("exec", "run", sleep5)
    assert time.monotonic() - t0 < 1.2 and r.result["timed_out"] is True

    # A broken file: refused, said so in the log, the running config stays.
    with open(a.config_path, "a") as f:
        f.write("\n{ this is not json\n")
    mark = len(a.log())
    a.signal(signal.SIGHUP)
    a.wait_log("reload refused, keeping the running configuration", start=mark)
    assert re.search(r"agent\.conf:\d+:\d+: ", a.log()[mark:]), "no file:line:col in the log"
    assert a.call("sys", "ping").ok
    t0 = time.monotonic()
    assert a.call("exec", "run", sleep5).result["timed_out"] is True
    assert time.monotonic() - t0 < 1.2

    # A file that parses but has a bad value: refused too.
    a.reconfigure({"dispatch": {"workers": 0}})
    mark = len(a.log())
    a.signal(signal.SIGHUP)
    a.wait_log("reload refused", start=mark)
    assert "'dispatch.workers' must be between 1 and 64" in a.log()[mark:]

    # Fixed, quieter: warn level hides the per-command info lines.
    a.reconfigure({"dispatch": {"workers": 4}, "log": {"level": "warn"}})
    mark = len(a.log())
    a.signal(signal.SIGHUP)
    assert a.call("sys", "ping").ok  # the signal is handled by the time this answers
    wait_for(lambda: a.call("exec", "run", {"argv": ["true"]}).ok and
             "ran 'true'" not in a.log()[mark:], 3, "log.level warn")
    assert "reload refused" not in a.log()[mark:]


def test_sighup_keeps_restart_only_keys_and_names_them(agent):
    """A reload applies the keys that take effect at once and keeps the others at their
    running values, saying which (docs/config.md, the reload column)."""
    a = agent()
    a.reconfigure({"listen": "127.0.0.1:1", "api": {"conn_limit": 10},
                   "dispatch": {"timeouts": {"exec.run": 400}}})
    mark = len(a.log())
    a.signal(signal.SIGHUP)
    a.wait_log("configuration reloaded", start=mark)
    assert ("reload: listen, api.conn_limit change only at a restart: kept at their running "
            "values") in a.log()[mark:]
    assert "reload refused" not in a.log()[mark:]
    assert a.call("sys", "ping").ok  # still on the port it started with
    t0 = time.monotonic()
    assert a.call("exec", "run", {"argv": ["sleep", "5"]}).result["timed_out"] is True
    assert time.monotonic() - t0 < 1.2


def test_sigterm_waits_for_the_call_in_flight(agent):
    a = agent()
    join = run_in_thread(a.call, "exec", "run", {"script": "sleep 1; echo finished"})
    a.wait_inflight(1)
    a.signal(signal.SIGTERM)
    r, exc = join()
    assert exc is None, exc
    assert r.result["exit_code"] == 0 and r.result["stdout"] == "finished\n"
    assert a.proc.wait(10) == 0
    log = a.log()
    assert "stopping: waiting for 1 call(s) in flight" in log and "stopped" in log
    assert not os.path.exists(a.sock), "the unix socket was left behind"


# ---------------------------------------------------------------------------------------------
# Shared-object and executable plugins


def test_plugins_from_plugin_dir(agent, tmp_path):
    if not os.path.exists(HELLO_SO):
        pytest.skip("no %s: ninja -C build tests/hello.so" % HELLO_SO)
    pdir = tmp_path / "plugins"
    pdir.mkdir()
    pdir.chmod(0o755)
    shutil.copy(HELLO_SO, pdir / "hello.so")
    shutil.copy(PYHELLO, pdir / "pyhello")
    (pdir / "hello.so").chmod(0o755)
    (pdir / "pyhello").chmod(0o755)
    evil = pdir / "evil"
    evil.write_text("#!/bin/sh\necho '{\"name\": \"evil\", \"version\": \"1\", "
                    "\"ops\": [{\"name\": \"own\", \"args\": []}]}'\n")
    evil.chmod(0o777)
    a = agent({"plugin_dir": str(pdir),
               "plugins": {"hello": {"greeting": "hi"}, "pyhello": {"greeting": "hey"}}})

    listed = {p["name"]: p for p in a.get("/v1/plugins").result}
    assert listed["hello"]["kind"] == "shared" and listed["hello"]["enabled"]
    assert listed["pyhello"]["kind"] == "exec" and listed["pyhello"]["enabled"]
    assert [o["name"] for o in listed["pyhello"]["ops"]] == ["greet", "fail"]
    assert "evil" not in listed
    assert re.search(r"evil refused: writable by group or others \(mode 0777\)", a.log())

    assert a.call("hello", "greet", {"who": "ops"}).result == {"greeting": "hi, ops"}
    assert a.call("pyhello", "greet", {"who": "ops"}).result == {"greeting": "hey, ops"}
    assert a.call("pyhello", "greet", {"who": "ops"}, via="unix").ok
    assert_error(a.call("pyhello", "greet", {}), "bad_args", 400)
    assert_error(a.call("hello", "greet", {"who": 5}), "bad_args", 400)
    msg = assert_error(a.call("pyhello", "fail"), "bad_args", 400)
    assert msg == "fail was called"
    assert_error(a.call("evil", "own"), "unknown_plugin", 404)


def test_world_writable_plugin_dir_is_refused(agent, tmp_path):
    if not os.path.exists(HELLO_SO):
        pytest.skip("no %s" % HELLO_SO)
    pdir = tmp_path / "plugins"
    pdir.mkdir()
    shutil.copy(HELLO_SO, pdir / "hello.so")
    pdir.chmod(0o777)
    a = agent({"plugin_dir": str(pdir)})
    names = {p["name"] for p in a.get("/v1/plugins").result}
    # the built-ins only
    assert names == {"sys", "exec", "file", "metrics", "security", "cleanup", "guard", "vm",
                     "supervise"}
    assert "refused: writable by group or others" in a.log()


# ---------------------------------------------------------------------------------------------
# Config golden tests (conftest.check_config_golden) on tests/conf/agent. Good configs print
# the effective config, whose defaults differ for root: they run only as root.

CONF_DIR = Path(SRC_ROOT) / "tests" / "conf" / "agent"
CONF_FILES = sorted(p.name for p in CONF_DIR.glob("*.conf"))
CHECK_STATE_DIR = "/var/lib/outpost-agent-test"


@pytest.mark.parametrize("name", CONF_FILES)
def test_check_config_golden(name):
    if not os.access(AGENT_BIN, os.X_OK):
        pytest.skip("no agent binary")
    if name.startswith("good-") and not IS_ROOT:
        pytest.skip("the golden effective configs hold root's defaults")
    check_config_golden(AGENT_BIN, CONF_DIR, name, CHECK_STATE_DIR)


def test_check_config_missing_file(tmp_path):
    if not os.access(AGENT_BIN, os.X_OK):
        pytest.skip("no agent binary")
    p = subprocess.run([AGENT_BIN, "--check-config", "--config", str(tmp_path / "nope.conf")],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 1
    assert "nope.conf: No such file or directory" in p.stderr


def test_check_config_flags_override_the_file(tmp_path):
    if not os.access(AGENT_BIN, os.X_OK):
        pytest.skip("no agent binary")
    conf = tmp_path / "a.conf"
    write_config(conf, {"listen": "127.0.0.1:1", "state_dir": "/from/file"})
    p = subprocess.run([AGENT_BIN, "--check-config", "--config", str(conf), "--state-dir",
                        "/from/flag", "--listen", "127.0.0.1:2"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    eff = json.loads(p.stdout)
    assert eff["state_dir"] == "/from/flag" and eff["listen"] == "127.0.0.1:2"
