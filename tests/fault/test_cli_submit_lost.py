"""Fault: the CLI's submit leaves, and its answer never comes (docs/cli.md, Exit status). A
fake hub reads the whole request and drops the connection, as a hub killed mid-request does:
the CLI retries with the same id (the hub would return the first task), then prints that id
and how to follow it, and exits 4 (outcome unknown). A hub that nobody reached is exit 3
without that hint: nothing left."""
import json
import os
import re
import socket
import struct
import subprocess
import threading

import pytest

from outpost_testlib import BUILD, free_port

CLI_BIN = os.path.join(BUILD, "src/cli/outpost")


class DroppingHub:
    """Reads each request in full, records its body, then resets the connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.bodies = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                n = int(m.group(1)) if m else 0
                while len(body) < n:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                if head:
                    self.bodies.append(body)
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def close(self):
        self.sock.close()


def cli(url, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTPOST_")}
    env.update(OUTPOST_HUB=url, OUTPOST_TOKEN="op_test", HOME="/nonexistent")
    return subprocess.run([CLI_BIN, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def dropping_hub():
    if not os.access(CLI_BIN, os.X_OK):
        pytest.skip("build the CLI first")
    h = DroppingHub()
    yield h
    h.close()


@pytest.mark.parametrize("given_id", [None, "lost-answer-1"])
def test_submit_without_answer_prints_its_id_and_exits_unknown(dropping_hub, given_id):
    args = ["run", "-t", "role=web"] + (["--id", given_id] if given_id else []) + \
        ["--", "touch", "/tmp/x"]
    p = cli(dropping_hub.url, *args)
    assert p.returncode == 4, (p.returncode, p.stderr)
    ids = {json.loads(b)["id"] for b in dropping_hub.bodies}
    assert len(dropping_hub.bodies) >= 1 and len(ids) == 1, dropping_hub.bodies
    task_id = ids.pop()
    if given_id:
        assert task_id == given_id
    assert "task %s may have been created" % task_id in p.stderr, p.stderr
    assert "outpost tasks show %s" % task_id in p.stderr, p.stderr
    assert "--id %s" % task_id in p.stderr, p.stderr


def test_submit_that_never_left_is_a_plain_failure():
    if not os.access(CLI_BIN, os.X_OK):
        pytest.skip("build the CLI first")
    p = cli("http://127.0.0.1:%d" % free_port(), "run", "-t", "role=web", "--", "true")
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert "may have been created" not in p.stderr, p.stderr
