"""The outpost CLI against a real hub, no agents: how it trusts the hub (docs/cli.md,
"Trusting the hub"). The right --ca or --pin works; another hub's certificate, a wrong pin or
a CA file that is not there gets the CLI's one clear error and the token is never sent; and
told whom to trust, the CLI trusts exactly that, without reading the system's CA store."""
import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess

import pytest

from outpost_testlib import CLI_BIN, HUB_BIN, Hub

SYSTEM_STORE = "/etc/ssl/certs"


@pytest.fixture
def hubs(hub, tmp_path):
    """(the hub the CLI talks to, another hub's certificate file)."""
    if not os.access(CLI_BIN, os.X_OK) or not os.access(HUB_BIN, os.X_OK):
        pytest.skip("build the hub and the CLI first (ninja -C build)")
    h = hub()
    # A second hub makes a certificate of its own for the same names (127.0.0.1, localhost):
    # what a CLI pointed at the wrong hub.crt has.
    (tmp_path / "other").mkdir()
    other = Hub(tmp_path / "other").start()
    other.stop()
    return h, other.ca


def pin_of(crt):
    with open(crt) as f:
        return "sha256:" + hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def cli(h, *args, ca=None, pin=None, argv0=(), hub=True):
    """Runs the CLI with exactly the trust given (OUTPOST_CA, OUTPOST_PIN), nothing else;
    argv0: a command that runs it (strace)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env.update(OUTPOST_TOKEN=h.admin_token, HOME=str(h.dir))
    if hub:
        env["OUTPOST_HUB"] = h.url
    env.pop("XDG_CONFIG_HOME", None)
    if argv0:
        # LeakSanitizer cannot work under ptrace (an ASan build under strace).
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"),
                                                     "detect_leaks=0"]))
    if ca:
        env["OUTPOST_CA"] = ca
    if pin:
        env["OUTPOST_PIN"] = pin
    return subprocess.run([*argv0, CLI_BIN, *args], env=env, capture_output=True, text=True,
                          timeout=60)


def audit_actions(h):
    status, body = h.api("GET", "/api/v1/audit")
    assert status == 200, body
    return [e["action"] for e in body["result"]]


def test_right_ca_works_and_another_hubs_is_refused_clearly(hubs):
    h, other_crt = hubs
    p = cli(h, "hosts", "ls", ca=h.ca)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[:2] == ["ID", "HOSTNAME"], p.stdout

    before = audit_actions(h)
    for args in (("--ca", other_crt, "token", "create", "--operator", "--role", "admin"),
                 ("hosts", "ls")):
        # Another hub's certificate, by flag (over the right one in the environment) or as
        # the only one.
        p = cli(h, *args, ca=h.ca if args[0] == "--ca" else other_crt)
        assert p.returncode == 3, (args, p.returncode, p.stdout, p.stderr)
        assert p.stdout == ""
        assert p.stderr.startswith("outpost: the hub at %s is not trusted: " % h.url), p.stderr
        assert "Pass --ca with the hub's certificate" in p.stderr, p.stderr
    # Nothing reached the hub's API: no token was made.
    assert audit_actions(h) == before


def test_a_ca_file_that_cannot_be_read_is_a_usage_error(hubs, tmp_path):
    h, _ = hubs
    missing = str(tmp_path / "no-such.crt")
    p = cli(h, "hosts", "ls", ca=missing)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.startswith("outpost: cannot read the CA file %s: No such file or "
                               "directory\n" % missing), p.stderr
    assert p.stdout == ""


def test_pin_alone_is_trusted_and_both_must_hold_with_a_ca(hubs):
    h, other_crt = hubs
    p = cli(h, "--json", "hosts", "ls", pin=pin_of(h.ca))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"

    p = cli(h, "hosts", "ls", pin=pin_of(other_crt))
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert re.match(r"outpost: the hub at %s has certificate sha256:[0-9a-f]{64}, not the "
                    r"pinned %s: refusing to send it the token" % (re.escape(h.url),
                                                                   pin_of(other_crt)),
                    p.stderr), p.stderr

    # The right pin does not make a wrong CA file right.
    p = cli(h, "hosts", "ls", ca=other_crt, pin=pin_of(h.ca))
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "is not trusted" in p.stderr, p.stderr


def test_told_whom_to_trust_it_does_not_read_the_system_store(hubs, tmp_path):
    """What made every command ~50 ms slower (docs/BENCHMARKS.md, CLI latency)."""
    h, _ = hubs
    if not shutil.which("strace") or not os.listdir(SYSTEM_STORE):
        pytest.skip("needs strace and a system CA store in " + SYSTEM_STORE)
    trace = str(tmp_path / "openat")

    def store_files_opened(**trust):
        p = cli(h, "hosts", "ls", argv0=("strace", "-f", "-qq", "-e", "trace=openat", "-o",
                                         trace), **trust)
        with open(trace) as f:
            opened = [line for line in f
                      if '"%s/' % SYSTEM_STORE in line and "= -1" not in line]
        return p, opened

    p, opened = store_files_opened()
    if p.returncode == 2 and "ptrace" in p.stderr:
        pytest.skip("strace may not trace here: " + p.stderr)
    # The control: with neither --ca nor --pin the system's store is what it trusts (and it
    # does not hold the hub's self-signed certificate).
    assert p.returncode == 3 and "is not trusted" in p.stderr, p.stderr
    assert opened, "strace saw no file of %s opened" % SYSTEM_STORE
    for trust in ({"ca": h.ca}, {"pin": pin_of(h.ca)}):
        p, opened = store_files_opened(**trust)
        assert p.returncode == 0, (trust, p.stderr)
        assert opened == [], (trust, opened[:3])


def test_several_hubs_the_next_is_tried_when_one_cannot_be_reached(hub, tmp_path):
    """--hub (or OUTPOST_HUB, or "hub" in the config) with several URLs: a hub that cannot be
    reached is passed over for the next, said on stderr; the answer is the live hub's."""
    h = hub()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))  # a port nobody listens on (bound, never listening)
    dead = "https://127.0.0.1:%d" % s.getsockname()[1]
    try:
        p = cli(h, "--hub", "%s,%s" % (dead, h.url), "hosts", "ls", ca=h.ca)
        assert p.returncode == 0, p.stderr
        assert p.stdout.split()[:2] == ["ID", "HOSTNAME"], p.stdout
        assert p.stderr.startswith("outpost: warning: %s: " % dead), p.stderr
        assert "trying %s" % h.url in p.stderr
        # The same from the config file, the live hub first: no warning.
        conf = tmp_path / "cli.conf"
        conf.write_text('{"hub": "%s, %s"}' % (h.url, dead))
        p = cli(h, "--config", str(conf), "hosts", "ls", ca=h.ca, hub=None)
        assert p.returncode == 0 and p.stderr == "", p.stderr
        # All of them down: the usual failure, naming the last one tried.
        p = cli(h, "--hub", "%s,%s" % (dead, dead), "hosts", "ls", ca=h.ca)
        assert p.returncode == 3, (p.returncode, p.stderr)
    finally:
        s.close()
    for bad in ("%s,,%s" % (h.url, h.url), "%s," % h.url, ",", ",".join([h.url] * 17)):
        p = cli(h, "--hub", bad, "hosts", "ls", ca=h.ca)
        assert p.returncode == 2, (bad, p.returncode, p.stderr)
        assert p.stderr.startswith("outpost: --hub: "), p.stderr
