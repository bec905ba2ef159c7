"""Fleet habits of the outpost CLI (docs/cli.md): `run --group` shows identical outcomes once
with their hosts in node-set notation, as `clush -b` does; the man page and the bash completion
are generated from the command table `outpost help` prints, so every command there has a man
page section and a completion entry (checked on the files meson builds into the package, and
by completing in a real bash)."""
import os
import re
import subprocess

import pytest

from outpost_testlib import BUILD, CLI_BIN


def test_run_group_folds_identical_outputs_with_their_hosts(fleet):
    f = fleet(3)
    # The agents share this machine; a command tells which one runs it by its parent, the
    # agent. web-1 and web-3 say the same; web-2 differs and fails.
    p = f.cli("run", "-t", "role=web", "--group", "--", "sh", "-c",
              'echo "version 1.2"; [ $PPID = %d ] && { echo "no config" >&2; exit 3; }; exit 0'
              % f.pid("web-2"))
    assert p.returncode == 1, p.stdout + p.stderr
    out = p.stdout
    # Two outcomes: two hosts alike first, then the odd one; no per-host lines.
    assert ("web-[1,3] (2 hosts): ok, exit 0\n    version 1.2\n"
            "web-2 (1 host): failed, exit 3\n    version 1.2\n  ! no config\n") in out, out
    assert re.search(r"^task \S+: 3 hosts, 2 ok, 1 failed", out, re.M), out
    for h in f.agents:
        assert not re.search(r"^%s: " % h, out, re.M), out


def test_run_group_of_one_outcome_names_a_range(fleet):
    f = fleet(3)
    p = f.ok("run", "-t", "role=web", "-b", "--", "echo", "same")
    assert p.stdout.startswith("web-[1-3] (3 hosts): ok, exit 0\n    same\n"), p.stdout


def test_run_group_with_json_prints_the_task_unchanged(fleet):
    f = fleet(2)
    p = f.ok("--json", "run", "-t", "role=web", "--group", "--", "true")
    assert sorted(h["host_id"] for h in p.json["hosts"]) == ["web-1", "web-2"]


# ---- man page and completion: one source with --help ----

def help_commands():
    """Every command `outpost --help` lists: ["hosts ls", ..., "run", ...]."""
    out = subprocess.run([CLI_BIN, "--help"], capture_output=True, text=True, check=True).stdout
    block = out.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    cmds = [re.split(r"\s{2,}", line.strip())[0] for line in block.splitlines()]
    assert "run" in cmds and "hosts ls" in cmds and len(cmds) > 15, cmds
    return cmds


def command_options(cmd):
    """The options `outpost help CMD` shows for cmd."""
    out = subprocess.run([CLI_BIN, "help", *cmd.split()], capture_output=True, text=True,
                         check=True).stdout
    opts = out.split("Options:\n", 1)[1].split("\n\n", 1)[0] if "Options:\n" in out else ""
    return set(re.findall(r"^  (?:[^ ].*?)?(--[a-z][a-z-]*)", opts, re.M)) | \
        set(re.findall(r", (--[a-z][a-z-]*)", opts))


def built(path):
    p = os.path.join(BUILD, path)
    if not os.path.exists(p):
        pytest.skip("%s not built (ninja -C build)" % p)
    return p


def test_every_command_has_a_man_page_section():
    page = open(built("packaging/outpost.1")).read()
    for cmd in help_commands():
        assert '.SS "outpost %s"' % cmd.replace("-", "\\-") in page, cmd
        for opt in command_options(cmd):
            assert "\\fB" in page and opt.replace("-", "\\-") in page, (cmd, opt)
    # It renders, without a warning from groff.
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", built("packaging/outpost.1")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_daemons_man_pages_list_their_help_options():
    for name, binary in (("outpost-agent", "src/agent/outpost-agent"),
                         ("outpost-hub", "src/hub/outpost-hub")):
        page = open(built("packaging/%s.8" % name)).read()
        helptext = subprocess.run([os.path.join(BUILD, binary), "--help"], capture_output=True,
                                  text=True, check=True).stdout
        for opt in re.findall(r"^  (--[a-z-]+)", helptext, re.M):
            assert "\\fB" + opt.replace("-", "\\-") in page, (name, opt)
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", built("packaging/%s.8" %
                                                                           name)],
                           capture_output=True, text=True)
        assert r.returncode == 0 and r.stderr == "", r.stderr


def complete(*words):
    """What the completion offers for the command line `outpost WORDS...` (last: the word
    being typed), in a real bash."""
    script = ('. %s\nCOMP_WORDS=(outpost %s)\nCOMP_CWORD=%d\n_outpost\n'
              'printf "%%s\\n" "${COMPREPLY[@]}"\n'
              % (built("packaging/completion/outpost"),
                 " ".join("'%s'" % w for w in words), len(words)))
    r = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True,
                       check=True)
    return set(r.stdout.split())


def test_every_command_has_a_completion_entry():
    cmds = help_commands()
    top = complete("")
    for cmd in cmds:
        words = cmd.split()
        assert words[0] in top, (cmd, top)
        if len(words) == 2:
            assert words[1] in complete(words[0], ""), cmd
        offered = complete(*words, "--")
        for opt in command_options(cmd):
            assert opt in offered, (cmd, opt, offered)


def test_completion_completes_prefixes_and_stops_at_the_remote_command():
    assert complete("ho") == {"hosts"}
    assert complete("--json", "tasks", "wa") == {"wait"}
    assert "--group" in complete("run", "--gr")
    assert complete("token", "create", "--role", "") == {"viewer", "operator", "admin"}
    # After --, the words are the remote command's: bash's default completion, not ours.
    assert complete("run", "-t", "web", "--", "--t") == set()
