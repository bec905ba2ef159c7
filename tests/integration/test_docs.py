"""Docs that parse: every config block in README.md and docs/ goes through the real daemon's
--check-config, so a documented example cannot drift from what the parser takes.

A block fenced as ```jsonc agent or ```jsonc hub is a whole config file of that daemon. A
block that looks like a config file (a JSON-with-comments object whose top-level keys are all
config sections) but is not tagged so fails too: it would go unchecked."""
import json
import pathlib
import re
import subprocess

import pytest

from outpost_testlib import AGENT_BIN, HUB_BIN, SRC_ROOT

ROOT = pathlib.Path(SRC_ROOT)
DOCS = sorted([ROOT / "README.md", *ROOT.glob("docs/**/*.md")])
FENCE = re.compile(r"^(\s*)```(.*)$")
# Every top-level key either daemon's config has (docs/config.md).
CONFIG_KEYS = {"listen", "socket", "state_dir", "plugin_dir", "log", "api", "dispatch", "ledger",
               "plugins", "hub", "tls", "tls_names", "agents", "tasks", "events", "audit",
               "auth", "metrics", "enroll", "tokens"}
SECTIONS = {"plugins", "listen", "dispatch", "ledger", "agents", "api", "socket", "state_dir"}


def blocks():
    """(file, line, info, text) of every fenced block."""
    out = []
    for path in DOCS:
        lines = path.read_text().split("\n")
        i = 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m:
                i += 1
                continue
            indent, info, start = len(m.group(1)), m.group(2).strip(), i + 1
            j = start
            while j < len(lines) and not re.match(r"^\s*```\s*$", lines[j]):
                j += 1
            body = "\n".join(line[indent:] for line in lines[start:j])
            out.append((path.relative_to(ROOT), start, info, body))
            i = j + 1
    return out


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(re.sub(r'(^|\s)(//|#).*$', "", line) for line in text.split("\n"))


def looks_like_config(text):
    try:
        obj = json.loads(strip_comments(text))
    except ValueError:
        return bool(re.search(r"^\s*plugins\s*\{", text, re.M))  # the old UCL-style examples
    return isinstance(obj, dict) and obj and set(obj) <= CONFIG_KEYS and bool(set(obj) & SECTIONS)


CONFIG_BLOCKS = [b for b in blocks() if b[2] in ("jsonc agent", "jsonc hub")]


def test_docs_have_config_examples_of_both_daemons():
    kinds = {b[2] for b in CONFIG_BLOCKS}
    assert kinds == {"jsonc agent", "jsonc hub"}, kinds
    assert len(CONFIG_BLOCKS) >= 5


@pytest.mark.parametrize("block", CONFIG_BLOCKS, ids=lambda b: "%s:%d" % (b[0], b[1]))
def test_documented_config_passes_check_config(block, tmp_path):
    path, line, info, text = block
    binary = AGENT_BIN if info == "jsonc agent" else HUB_BIN
    conf = tmp_path / "example.conf"
    conf.write_text(text + "\n")
    p = subprocess.run([binary, "--check-config", "--config", str(conf), "--state-dir",
                        str(tmp_path / "state")], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, "%s:%d: the documented config is refused:\n%s%s" % (
        path, line, p.stdout, p.stderr)


def test_every_config_looking_block_is_tagged_so_it_is_checked():
    untagged = ["%s:%d (```%s)" % (b[0], b[1], b[2]) for b in blocks()
                if b[2] not in ("jsonc agent", "jsonc hub") and looks_like_config(b[3])]
    assert not untagged, "config examples not tagged ```jsonc agent / hub: %s" % untagged
