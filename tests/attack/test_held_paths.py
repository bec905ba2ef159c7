"""Held attack: path escapes through the agent's file plugin (docs/plugins/file.md). Every
op, every way out of the root a path can try ('..', '.', symlinks to a directory or a file,
absolute paths elsewhere, a sibling whose name starts like the root, empty components, NUL,
over-long paths and components): refused in the one envelope, and nothing outside the root
is read, written or removed."""
import os

import pytest

from envelope import refused

OPS = ("get", "put", "stat", "remove")


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    sibling = tmp_path / "root-evil"
    for d in (root, outside, sibling):
        d.mkdir()
    (outside / "secret").write_text("secret\n")
    (sibling / "secret").write_text("sibling\n")
    (root / "dirlink").symlink_to(outside)
    (root / "filelink").symlink_to(outside / "secret")
    (root / "sub").mkdir()
    (root / "sub" / "uplink").symlink_to("../../outside")
    return root, outside, sibling


def args_for(op, path):
    a = {"path": path}
    if op == "put":
        a["content"] = "pwned\n"
    return a


def call(a, op, path):
    r = a.call("file", op, args_for(op, path), id="esc-%s-%d" % (op, abs(hash(path)))
               if op in ("put", "remove") else None)
    return r.status, r.json


def escapes(root, outside, sibling):
    """(path, the codes it may be refused with)."""
    bad, forbidden = ("bad_args", "bad_json"), ("forbidden",)
    return [
        (str(outside / "secret"), forbidden),
        ("/etc/passwd", forbidden),
        ("/", forbidden),
        (str(sibling / "secret"), forbidden),
        (str(root) + "/../outside/secret", bad),
        (str(root) + "/sub/../../outside/secret", bad),
        (str(root) + "/./sub", bad),
        (str(root) + "/..", bad),
        (str(root) + "//sub", bad),
        (str(root) + "/sub/", bad),
        ("root/sub", bad),
        ("", bad),
        (str(root) + "/a\x00/../../outside/secret", bad),
        (str(root) + "/" + "a" * 300, bad),
        (str(root) + ("/" + "b" * 200) * 21, bad),
        (str(root / "dirlink" / "secret"), forbidden),
        (str(root / "sub" / "uplink" / "secret"), forbidden),
    ]


def test_every_op_refuses_every_escape(agent, tree):
    root, outside, sibling = tree
    a = agent({"plugins": {"file": {"roots": [str(root)]}}})
    wrong = []
    for op in OPS:
        for path, codes in escapes(root, outside, sibling):
            status, body = call(a, op, path)
            try:
                refused(status, body)
                code = body["error"]["code"]
            except AssertionError as e:
                wrong.append("%s %r: %s" % (op, path[:80], e))
                continue
            if code not in codes:
                wrong.append("%s %r: %d %s, want %s" % (op, path[:80], status, code, codes))
    assert not wrong, "\n".join(wrong)
    assert (outside / "secret").read_text() == "secret\n"
    assert (sibling / "secret").read_text() == "sibling\n"
    assert sorted(os.listdir(outside)) == ["secret"]
    assert "root:" not in a.log()


def test_symlink_as_the_final_name_is_never_followed(agent, tree):
    root, outside, _ = tree
    a = agent({"plugins": {"file": {"roots": [str(root)]}}})
    for op in ("get", "put"):
        status, body = call(a, op, str(root / "filelink"))
        assert "symlink" in refused(status, body, "forbidden", (403,))
    # stat describes the link itself; remove deletes the link, not what it points to.
    status, body = call(a, "stat", str(root / "filelink"))
    assert status == 200 and body["result"]["type"] == "symlink", body
    assert "secret" not in str(body["result"].get("sha256", ""))
    status, body = call(a, "remove", str(root / "filelink"))
    assert status == 200, body
    assert not (root / "filelink").is_symlink()
    assert (outside / "secret").read_text() == "secret\n"


def test_escaped_names_are_names_not_escapes(agent, tree):
    """Percent-encoding and backslashes mean nothing to the plugin: such a component is a
    plain name beneath the root (that does not exist), never a way out."""
    root, outside, _ = tree
    a = agent({"plugins": {"file": {"roots": [str(root)]}}})
    for name in ("%2e%2e/outside/secret", "..%2fsecret", "..\\outside\\secret", "%00"):
        status, body = call(a, "get", str(root) + "/" + name)
        refused(status, body, statuses=(400, 404))
    assert (outside / "secret").read_text() == "secret\n"
