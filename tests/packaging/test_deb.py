"""The Debian packages `make deb` builds (packaging/mkdeb.sh): what each holds and where, that
lintian finds no error or warning, that systemd accepts the units, that the units keep the
promises docs/install.md makes (notify + watchdog, commands' daemons survive a restart, the hub
as its own user), that each sample config passes --check-config, and that the packaged hub runs
as an unprivileged user in its own state directory.

The packages are built once per run into $OUTPOST_DEB_BUILD (default build-deb in the source
tree): about 40 s the first time, seconds after that."""
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

from outpost_testlib import SRC_ROOT, free_port, wait_for

DEB_BUILD = os.environ.get("OUTPOST_DEB_BUILD", os.path.join(SRC_ROOT, "build-deb"))
BUILD_TIMEOUT_S = 240

PKGS = ("outpost-agent", "outpost-hub", "outpost")


def need(tool):
    if not shutil.which(tool):
        pytest.skip("%s not installed (sh scripts/deps.sh test)" % tool)


@pytest.fixture(scope="module")
def debs():
    need("dpkg-deb")
    t0 = time.monotonic()
    out = subprocess.run(["sh", os.path.join(SRC_ROOT, "packaging/mkdeb.sh"), DEB_BUILD],
                         capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert out.returncode == 0, out.stdout + out.stderr
    paths = out.stdout.split()
    print("packages built in %.1f s" % (time.monotonic() - t0))
    byname = {os.path.basename(p).split("_")[0]: p for p in paths}
    assert sorted(byname) == sorted(PKGS), paths
    return byname


@pytest.fixture(scope="module")
def root(debs, tmp_path_factory):
    """The three packages unpacked into one directory, as they would land on a host."""
    r = tmp_path_factory.mktemp("root")
    for p in debs.values():
        subprocess.run(["dpkg-deb", "-x", p, str(r)], check=True)
    return r


def contents(deb):
    """{path: (mode string, owner)} of a package, from dpkg-deb -c."""
    out = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True,
                         check=True).stdout
    files = {}
    for line in out.splitlines():
        f = line.split()
        files[f[5][1:].rstrip("/") or "/"] = (f[0], f[1])
    return files


def field(deb, name):
    return subprocess.run(["dpkg-deb", "-f", deb, name], capture_output=True, text=True,
                          check=True).stdout.strip()


def unit(root, name):
    """The unit's [Service] settings as {key: value}."""
    text = (root / "lib/systemd/system" / name).read_text()
    return dict(re.findall(r"^(\w+)=(.*)$", text, re.M))


def test_each_package_holds_its_files_in_the_right_places(debs):
    want = {
        "outpost-agent": {
            "/usr/sbin/outpost-agent": "-rwxr-xr-x",
            "/lib/systemd/system/outpost-agent.service": "-rw-r--r--",
            "/etc/outpost/agent.conf": "-rw-r--r--",
            "/usr/share/man/man8/outpost-agent.8.gz": "-rw-r--r--",
            "/usr/lib/outpost/plugins": "drwxr-xr-x",
            "/usr/share/doc/outpost-agent/copyright": "-rw-r--r--",
            # the one lintian override, with its reason (packaging/deb/)
            "/usr/share/lintian/overrides/outpost-agent": "-rw-r--r--",
        },
        "outpost-hub": {
            "/usr/sbin/outpost-hub": "-rwxr-xr-x",
            "/lib/systemd/system/outpost-hub.service": "-rw-r--r--",
            "/etc/outpost/hub.conf": "-rw-r--r--",
            "/usr/share/man/man8/outpost-hub.8.gz": "-rw-r--r--",
            "/usr/share/doc/outpost-hub/copyright": "-rw-r--r--",
        },
        "outpost": {
            "/usr/bin/outpost": "-rwxr-xr-x",
            "/usr/share/man/man1/outpost.1.gz": "-rw-r--r--",
            "/usr/share/bash-completion/completions/outpost": "-rw-r--r--",
            "/usr/share/doc/outpost/install.md": "-rw-r--r--",
            "/usr/share/doc/outpost/config.md": "-rw-r--r--",
        },
    }
    seen = {}
    for pkg, files in want.items():
        c = contents(debs[pkg])
        for path, mode in files.items():
            assert path in c, "%s lacks %s" % (pkg, path)
            assert c[path] == (mode, "root/root"), (pkg, path, c[path])
        for path, (mode, _) in c.items():
            assert not path.startswith("/usr/local"), (pkg, path)
            if not mode.startswith("d"):
                assert path not in seen, "%s is in %s and %s" % (path, seen.get(path), pkg)
                seen[path] = pkg
    # The configs are conffiles: an operator's edits survive upgrades.
    for pkg, conf in (("outpost-agent", "agent.conf"), ("outpost-hub", "hub.conf")):
        out = subprocess.run(["dpkg-deb", "--ctrl-tarfile", debs[pkg]], capture_output=True,
                             check=True).stdout
        listing = subprocess.run(["tar", "-xO", "./conffiles"], input=out,
                                 capture_output=True, check=True).stdout.decode()
        assert listing.split() == ["/etc/outpost/" + conf]


def test_control_fields(debs):
    version = subprocess.run(["meson", "introspect", "--projectinfo", DEB_BUILD],
                             capture_output=True, text=True, check=True).stdout
    for pkg, deb in debs.items():
        assert field(deb, "Package") == pkg
        assert '"version": "%s"' % field(deb, "Version") in version
        depends = field(deb, "Depends")
        assert "libc6" in depends and "libjansson4" in depends, depends
    assert "adduser" in field(debs["outpost-hub"], "Depends")
    assert "libcurl3-gnutls" in field(debs["outpost"], "Depends")
    # The agent is small on every host: no curl, no yajl.
    assert "curl" not in field(debs["outpost-agent"], "Depends")


def test_lintian_finds_no_error_or_warning(debs):
    need("lintian")
    r = subprocess.run(["lintian", "--fail-on", "error,warning", *debs.values()],
                       capture_output=True, text=True, timeout=120)
    tags = [l for l in r.stdout.splitlines() if re.match(r"^[EW]: ", l)]
    assert r.returncode == 0 and not tags, r.stdout + r.stderr


def test_systemd_accepts_the_units(root, tmp_path):
    need("systemd-analyze")
    # verify --root resolves everything inside the root: give it the host's own units
    # (sysinit.target, ...) and /bin/kill, the only command the units use besides ours.
    units = root / "lib/systemd/system"
    for f in os.listdir("/lib/systemd/system"):
        src = os.path.join("/lib/systemd/system", f)
        if not (units / f).exists() and os.path.isfile(src) and not os.path.islink(src):
            shutil.copy(src, units / f)
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy("/bin/kill", root / "bin/kill")
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", "--root=%s" % root,
                        "/lib/systemd/system/outpost-agent.service",
                        "/lib/systemd/system/outpost-hub.service"],
                       capture_output=True, text=True, timeout=60)
    # Unknown keys and bad values are only warnings to systemd: any output fails the test.
    assert r.returncode == 0 and r.stderr.strip() == "" and r.stdout.strip() == "", \
        r.stdout + r.stderr


def test_units_keep_what_the_install_page_promises(root):
    agent = unit(root, "outpost-agent.service")
    hub = unit(root, "outpost-hub.service")
    for u, binary in ((agent, "/usr/sbin/outpost-agent"), (hub, "/usr/sbin/outpost-hub")):
        assert u["Type"] == "notify" and int(u["WatchdogSec"]) > 0
        assert u["ExecStart"].split()[0] == binary and (root / binary[1:]).is_file()
        assert "--foreground" in u["ExecStart"]
    # Only the agent gets the stop signal: daemons started through exec.run outlive it.
    assert agent["KillMode"] == "process"
    assert int(agent["OOMScoreAdjust"]) < 0
    # Longer than the agent's own 30 s grace for commands in flight.
    assert int(agent["TimeoutStopSec"]) > 30
    assert "User" not in agent  # root: it runs commands as any user
    assert hub["User"] == "outpost-hub" and hub["Group"] == "outpost-hub"
    assert hub["StateDirectory"] == "outpost-hub"
    assert hub["ProtectSystem"] == "strict" and hub["NoNewPrivileges"] == "yes"


def test_sample_configs_pass_check_config(root):
    for daemon, conf in (("outpost-agent", "agent.conf"), ("outpost-hub", "hub.conf")):
        path = root / "etc/outpost" / conf
        text = path.read_text()
        assert "//" in text, "the sample config explains itself"
        r = subprocess.run([str(root / "usr/sbin" / daemon), "--check-config", "--config",
                            str(path)], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stdout + r.stderr
    hub = subprocess.run([str(root / "usr/sbin/outpost-hub"), "--check-config", "--config",
                          str(root / "etc/outpost/hub.conf")],
                         capture_output=True, text=True).stdout
    # Whoever runs it (the unit's user is not root), the state is where the unit may write.
    assert '"state_dir": "/var/lib/outpost-hub"' in hub


def test_packaged_hub_runs_as_an_unprivileged_user_in_its_state_dir(root, tmp_path, request):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    need("setpriv")
    # What the unit does, with nobody standing in for the package's outpost-hub user (made
    # by its postinst): a state directory of its own, 0700, and umask 077. pytest's own
    # directories are root's alone: this one is open to the user, as /usr/sbin and /etc are.
    top = tempfile.mkdtemp(prefix="outpost-hubuser-")
    request.addfinalizer(lambda: shutil.rmtree(top, ignore_errors=True))
    os.chmod(top, 0o755)
    binary = os.path.join(top, "outpost-hub")
    shutil.copy(root / "usr/sbin/outpost-hub", binary)
    state = tmp_path.__class__(top) / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    port = free_port()
    conf = (root / "etc/outpost/hub.conf").read_text() \
        .replace('"127.0.0.1:7443"', '"127.0.0.1:%d"' % port) \
        .replace('"/var/lib/outpost-hub"', '"%s"' % state)
    conf_path = os.path.join(top, "hub.conf")
    with open(conf_path, "w") as f:
        f.write(conf)
    os.chmod(conf_path, 0o644)
    log = open(tmp_path / "hub.log", "wb")
    p = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          "--inh-caps=-all", "sh", "-c", "umask 077; exec \"$0\" \"$@\"",
                          binary, "--foreground", "--config", conf_path],
                         stdout=log, stderr=log)
    try:
        wait_for(lambda: (state / "hub.crt").exists() and (state / "admin.token").exists(),
                 timeout=15, what="the hub's first start")
        assert os.stat(state / "admin.token").st_uid == 65534
        assert os.stat(state / "admin.token").st_mode & 0o777 == 0o600
        wait_for(lambda: requests.get("https://127.0.0.1:%d/api/v1/health" % port,
                                      verify=str(state / "hub.crt"), timeout=2).ok,
                 timeout=10, what="the hub's API")
        with open("/proc/%d/status" % p.pid) as f:
            assert re.search(r"^Uid:\s+65534\s", f.read(), re.M)
    finally:
        p.terminate()
        rc = p.wait(15)
        log.close()
    assert rc == 0, (tmp_path / "hub.log").read_text()


def test_maintainer_scripts_are_valid_sh(debs, tmp_path):
    for pkg in ("outpost-agent", "outpost-hub"):
        d = tmp_path / pkg
        subprocess.run(["dpkg-deb", "-e", debs[pkg], str(d)], check=True)
        for s in ("postinst", "prerm", "postrm"):
            assert os.access(d / s, os.X_OK), (pkg, s)
            subprocess.run(["sh", "-n", str(d / s)], check=True)
            text = (d / s).read_text()
            assert "@" not in re.sub(r"[\w.-]+@[\w.-]+", "", text), (pkg, s)  # all filled in
        post = (d / "postinst").read_text()
        # Not started on a first install (it needs its config); restarted on upgrade.
        assert "try-restart %s.service" % pkg in post
        assert "deb-systemd-invoke start" not in post
    assert "adduser --system" in (tmp_path / "outpost-hub/postinst").read_text()
