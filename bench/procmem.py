"""Helpers the benches share: the processes a bench starts (and only those), memory from
/proc/PID/smaps and smaps_rollup (RSS, PSS, USS, "PSS alone", every mapping grouped by library,
heap, arenas, thread stacks), CPU seconds from /proc/PID/stat, a private outpost-hub with an
enrollment token, and the facts of the machine and of the build a report names.

Python's standard library and readelf only (requests for the hub's API, as the tests use it).
"""
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)

# ---- processes we start, and only those ----------------------------------------------------

class Procs:
    """Every process the bench starts runs in its own session; stop() signals that group by
    its id (the leader's pid), so nginx's workers go with their master."""

    def __init__(self):
        self.live = []

    def start(self, argv, logpath, env=None):
        with open(logpath, "ab") as out:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                 start_new_session=True, env=env)
        self.live.append(p)
        return p

    def stop(self, p, timeout=10):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        if p in self.live:
            self.live.remove(p)

    def stop_all(self):
        for p in list(self.live):
            self.stop(p, timeout=5)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(p, port, logpath, timeout=15):
    """A bare connect, no request: 'idle' means no request was ever served."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if p.poll() is not None:
            raise RuntimeError(f"{p.args[0]} exited with {p.returncode}; see {logpath}:\n"
                               + tail(logpath))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{p.args[0]} did not listen on 127.0.0.1:{port} within {timeout}s")


def tail(path, n=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        q = todo.pop()
        out.append(q)
        try:
            for t in os.listdir(f"/proc/{q}/task"):
                with open(f"/proc/{q}/task/{t}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


# ---- memory ----------------------------------------------------------------------------------

ROLLUP_KEYS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Dirty", "Private_Clean",
               "Private_Dirty", "Shared_Clean", "Shared_Dirty", "Swap")
MAP_RE = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ (\d+)\s*(.*)$")


def rollup(pid):
    r = dict.fromkeys(ROLLUP_KEYS, 0)
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in r:
                r[k] = int(v.split()[0])
    r["Uss"] = r["Private_Clean"] + r["Private_Dirty"]
    return r


def smaps(pid):
    maps, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = MAP_RE.match(line)
            if m:
                cur = {"start": int(m.group(1), 16), "end": int(m.group(2), 16),
                       "perms": m.group(3), "inode": int(m.group(4)),
                       "name": m.group(5).strip()}
                maps.append(cur)
                continue
            k, _, v = line.partition(":")
            v = v.split()
            if cur is not None and len(v) == 2 and v[1] == "kB":
                cur[k] = int(v[0])
    return maps


def thread_stack_pointers(pid):
    """Each thread's stack pointer while it sleeps in a syscall (/proc/.../syscall: the
    second-last field). A running thread has none; layout catches its stack instead."""
    sps = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/syscall") as f:
                fields = f.read().split()
            if len(fields) >= 3 and fields[0] not in ("running", "-1"):
                sps[int(t)] = int(fields[-2], 16)
        except (OSError, ValueError):
            pass
    return sps


def lib_key(path):
    base = os.path.basename(path)
    m = re.match(r"^(.*?\.so(?:\.\d+)?)", base)
    return m.group(1) if m else base


ARENA = 64 << 20  # glibc's per-thread malloc heap reservation on 64-bit


def classify(pid, exe):
    """Group every mapping of pid: the binary, each library (its .bss goes with it), the main
    heap, per-thread malloc arenas, thread stacks, other anonymous memory, mapped files."""
    maps = smaps(pid)
    sps = thread_stack_pointers(pid)
    main_tid = pid
    groups = []
    for i, m in enumerate(maps):
        name, prev = m["name"], maps[i - 1] if i else None
        nxt = maps[i + 1] if i + 1 < len(maps) else None
        if name == exe or (name.endswith(" (deleted)") and name[:-10] == exe):
            g = "binary: " + os.path.basename(exe)
        elif name.startswith("/") and ".so" in os.path.basename(name):
            g = "lib: " + lib_key(name)
        elif name == "[heap]":
            g = "heap: main malloc arena"
        elif name == "[stack]":
            g = "stack: main thread"
        elif name in ("[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]"):
            g = "kernel: vdso/vvar"
        elif name.startswith("/"):
            g = "file: " + os.path.basename(name)
        elif name:
            g = "other: " + name
        else:
            owner = [t for t, sp in sps.items() if m["start"] <= sp < m["end"]]
            if owner:
                g = "stack: main thread" if owner == [main_tid] else "stacks: other threads"
            elif (m["perms"].startswith("rw") and m["start"] % ARENA == 0 and nxt
                  and not nxt["name"] and nxt["perms"] == "---p" and nxt["start"] == m["end"]
                  and nxt["end"] - m["start"] == ARENA):
                g = "heap: thread malloc arenas"
            elif (m["perms"] == "---p" and prev and prev.get("group") ==
                  "heap: thread malloc arenas" and prev["end"] == m["start"]):
                g = "heap: thread malloc arenas"  # the arena's unused reservation
            elif (m["perms"] == "---p" and nxt and not nxt["name"] and
                  nxt["start"] == m["end"] and m["end"] - m["start"] <= 64 << 10):
                g = "stacks: other threads"  # a guard page below a stack
            elif (m["perms"].startswith("rw") and prev and prev["perms"] == "---p" and
                  prev["end"] == m["start"] and prev["end"] - prev["start"] <= 64 << 10 and
                  not prev["name"]):
                g = "stacks: other threads"  # a thread stack seen by layout (thread running)
            elif prev and prev["end"] == m["start"] and prev.get("group", "").startswith(
                    ("lib: ", "binary: ")):
                g = prev["group"]  # .bss right after its object's data
            else:
                g = "anon: other mmap"
        m["group"] = g
        groups.append(g)
    out = {}
    for m in maps:
        s = out.setdefault(m["group"], {"pss": 0, "pss_alone": 0, "rss": 0, "uss": 0,
                                        "dirty": 0, "anon": 0, "size": 0, "mappings": 0})
        s["pss"] += m.get("Pss", 0)
        own_file = m["name"].startswith("/") and lib_key(m["name"]) not in COMMON_LIBS
        s["pss_alone"] += m.get("Rss", 0) if own_file else m.get("Pss", 0)
        s["rss"] += m.get("Rss", 0)
        s["uss"] += m.get("Private_Clean", 0) + m.get("Private_Dirty", 0)
        s["dirty"] += m.get("Pss_Dirty", m.get("Private_Dirty", 0))
        s["anon"] += m.get("Anonymous", 0)
        s["size"] += (m["end"] - m["start"]) >> 10
        s["mappings"] += 1
    libpaths = sorted({m["name"] for m in maps
                       if m["name"].startswith("/") and ".so" in os.path.basename(m["name"])})
    return out, libpaths


def readelf_dyn(path):
    """(soname, [needed]) of an ELF file."""
    try:
        text = subprocess.run(["readelf", "-d", path], capture_output=True, text=True,
                              check=False).stdout
    except OSError:
        return None, []
    soname = re.findall(r"\(SONAME\).*\[(.+?)\]", text)
    return (soname[0] if soname else None), re.findall(r"\(NEEDED\).*\[(.+?)\]", text)


def pulled_in_by(exe, libpaths, groups):
    """For each library the binary names (DT_NEEDED), the libraries loaded only because of it,
    and their PSS together: 'what would leave if this dependency left'."""
    by_soname, needed = {}, {}
    for p in libpaths:
        so, need = readelf_dyn(p)
        so = so or lib_key(p)
        by_soname[so] = p
        needed[so] = need
    _, direct = readelf_dyn(exe)

    def closure(so):
        seen, todo = set(), [so]
        while todo:
            s = todo.pop()
            if s in seen:
                continue
            seen.add(s)
            todo.extend(n for n in needed.get(s, []) if n in by_soname)
        return seen

    clos = {d: closure(d) for d in direct if d in by_soname}
    out = {}
    for d, c in clos.items():
        others = set().union(*(clos[o] for o in clos if o != d)) | (set(direct) - {d})
        only = sorted(c - others)
        pss = sum(groups.get("lib: " + lib_key(by_soname[s]), {}).get("pss_alone", 0)
                  for s in only)
        uss = sum(groups.get("lib: " + lib_key(by_soname[s]), {}).get("uss", 0) for s in only)
        out[d] = {"libs": only, "pss_alone_kb": pss, "uss_kb": uss}
    return out


# Libraries nearly every process on a host maps: their pages are shared wherever the agent
# runs, so their measured PSS share stands. Any other library's pages are, on a server, the
# agent's alone (nothing else there uses libmicrohttpd or jansson, say).
COMMON_LIBS = ("libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2")


def file_sharers(pids):
    """Other processes (not in pids) that map a file the measured processes map, by path. On
    a shared build machine a concurrent test run using SQLite or GnuTLS lowers the agent's
    PSS: this says when that happened (the bench's own python maps libz, for instance)."""
    mine = set()
    for q in pids:
        try:
            with open(f"/proc/{q}/maps") as f:
                for line in f:
                    parts = line.split(None, 5)
                    if len(parts) == 6 and parts[5].startswith("/"):
                        mine.add(parts[5].strip())
        except OSError:
            pass
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in pids:
            continue
        try:
            with open(f"/proc/{d}/maps") as f:
                theirs = {l.split(None, 5)[5].strip() for l in f if len(l.split(None, 5)) == 6}
            with open(f"/proc/{d}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        for path in mine & theirs:
            if lib_key(path) not in COMMON_LIBS:
                out.setdefault(path, set()).add(f"{comm}[{d}]")
    return {k: sorted(v) for k, v in sorted(out.items())}


def pss_alone(pids, sharers):
    """PSS as it would be with no other process mapping the subject's own files: measured PSS
    for anonymous memory and COMMON_LIBS; for every other file, RSS (one process: exact), or
    for a process tree its PSS scaled by (mappers in the tree + outside) / mappers in the
    tree (an estimate: it assumes every mapper holds the same pages)."""
    per = {}
    for q in pids:
        try:
            per[q] = smaps(q)
        except OSError:  # a child that ended since the tree was read (a firewall listing)
            pass
    in_tree = {}
    for maps in per.values():
        for path in {m["name"] for m in maps if m["name"].startswith("/")}:
            in_tree[path] = in_tree.get(path, 0) + 1
    t = 0.0
    for maps in per.values():
        for m in maps:
            name = m["name"]
            if not name.startswith("/") or lib_key(name) in COMMON_LIBS:
                t += m.get("Pss", 0)
            elif len(pids) == 1:
                t += m.get("Rss", 0)
            else:
                n = in_tree[name]
                t += m.get("Pss", 0) * (n + len(sharers.get(name, []))) / n
    return round(t)


def sample_memory(root_pid, exe=None):
    """Rollup summed over the process and its children (PSS adds up across processes; RSS
    over-counts shared pages), and the breakdown of the root process."""
    pids = descendants(root_pid)
    tot = dict.fromkeys(ROLLUP_KEYS + ("Uss",), 0)
    threads = 0
    for q in pids:
        try:
            r = rollup(q)
            threads += len(os.listdir(f"/proc/{q}/task"))
        except OSError:
            continue
        for k in tot:
            tot[k] += r[k]
    res = {"processes": len(pids), "threads": threads, **{k.lower(): v for k, v in tot.items()}}
    # For one process the estimate is exact; a master and its workers share among themselves.
    res["files_shared_with_others"] = file_sharers(set(pids))
    res["pss_alone"] = pss_alone(pids, res["files_shared_with_others"])
    if exe:
        groups, libpaths = classify(root_pid, exe)
        res["breakdown"] = groups
        res["pulled_in_by"] = pulled_in_by(exe, libpaths, groups)
    return res


# ---- CPU ---------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root_pid):
    """User + system CPU of a process tree (all threads), in seconds."""
    t = 0
    for q in descendants(root_pid):
        try:
            with open(f"/proc/{q}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            t += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return t / CLK_TCK

def sched_seconds(root_pid):
    """Time on a CPU of every live thread of a process tree, in seconds, from
    /proc/PID/task/TID/schedstat (nanoseconds, exact; utime and stime are sampled at the tick
    and, for a process that runs a few ms every 10 s, are a count of the ticks it was caught
    in). Threads that exited are not counted; the subjects here keep theirs."""
    t = 0
    for q in descendants(root_pid):
        try:
            tids = os.listdir(f"/proc/{q}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{q}/task/{tid}/schedstat") as f:
                    t += int(f.read().split()[0])
            except (OSError, IndexError, ValueError):
                pass
    return t / 1e9


# ---- a private hub -----------------------------------------------------------------------------

def start_hub(procs, build, work):
    """A real outpost-hub over TLS, and an enrollment token from its API."""
    exe = os.path.join(build, "src", "hub", "outpost-hub")
    port = free_port()
    state = tempfile.mkdtemp(prefix="hub-state-", dir=work)
    logpath = os.path.join(work, "hub.log")
    p = procs.start([exe, "--state-dir", state, "--listen", f"127.0.0.1:{port}",
                     "--foreground"], logpath)
    wait_listening(p, port, logpath)
    url = f"https://127.0.0.1:{port}"
    ca = os.path.join(state, "hub.crt")
    admin = open(os.path.join(state, "admin.token")).read().strip()
    import requests
    r = requests.post(url + "/api/v1/tokens", json={"kind": "enroll", "ttl_s": 3600},
                      headers={"Authorization": "Bearer " + admin}, verify=ca, timeout=10)
    r.raise_for_status()
    return p, {"url": url, "ca": ca, "admin": admin, "token": r.json()["result"]["token"]}


def wait_host_up(hub, host_id, timeout=20):
    import requests
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = requests.get(hub["url"] + "/api/v1/hosts/" + host_id, verify=hub["ca"], timeout=5,
                         headers={"Authorization": "Bearer " + hub["admin"]})
        if r.status_code == 200 and r.json()["result"]["state"] == "up":
            return
        time.sleep(0.2)
    raise RuntimeError(f"host {host_id} never came up at the hub")


# ---- what a report names --------------------------------------------------------------------

def git(src, *a):
    r = subprocess.run(["git", "-C", src, *a], capture_output=True, text=True, check=False)
    return r.stdout.strip() if r.returncode == 0 else ""


def build_source(build):
    """The source tree a Meson build dir was configured from, and its commit if it is a git
    work tree ('+dirty' when tracked files differ from it)."""
    try:
        with open(os.path.join(build, "meson-info", "meson-info.json")) as f:
            src = json.load(f)["directories"]["source"]
    except (OSError, KeyError, ValueError):
        src = REPO
    commit = git(src, "rev-parse", "--short", "HEAD")
    if commit and git(src, "status", "--porcelain", "--untracked-files=no"):
        commit += "+dirty"
    return src, commit or "not a git tree"


def host_info():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1])
    with open("/proc/loadavg") as f:
        la = " ".join(f.read().split()[:3])
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem / 1048576),
            "kernel": os.uname().release, "loadavg_start": la}


def version_of(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return None
