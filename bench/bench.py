#!/usr/bin/python3
"""custodyfs benchmark driver (make bench).

Runs the workloads of the benchmark on the raw backing disk, libfuse's passthrough_ll,
gocryptfs, custodyfs and custodyfs with auditing compiled out, prints a table of medians with
their spread and ratios, a table of daemon CPU time and peak memory, and whether each target
holds, and writes the raw figures to bench/results/.

Called by scripts/bench after the binaries and helpers are built; see scripts/bench --help.
"""
import argparse
import datetime
import io
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"
LOADER = os.path.join(ROOT, "bench", "loader.py")
RESULTS = os.path.join(ROOT, "bench", "results")

MiB = 1 << 20
GiB = 1 << 30

SYSTEMS = ["raw", "passthrough_ll", "gocryptfs", "custodyfs", "custodyfs-noaudit"]
SHORT = {"raw": "raw", "passthrough_ll": "pt_ll", "gocryptfs": "gcfs", "custodyfs": "cfs",
         "custodyfs-noaudit": "cfs-noaudit"}
FUSE_SYSTEMS = SYSTEMS[1:]
# custodyfs-noaudit only runs workloads 1-5 (to price the audit).  To keep a full run under 30
# minutes on a 2-core machine, the two longest parts run only where a target needs them: the
# 15 s random reads (4 x 15 s x 3 runs per system) on raw, gocryptfs and custodyfs (reads are
# audited per open, not per read, so custodyfs-noaudit adds nothing there), and the
# 300,000-file scale tree (gocryptfs alone takes 10 minutes on it) on raw and custodyfs, with an
# attempt on passthrough_ll.  `--all-systems` runs both on every system.
RAND_SYSTEMS = ["raw", "gocryptfs", "custodyfs"]
SCALE_SYSTEMS = ["raw", "passthrough_ll", "custodyfs"]

# Metrics: key -> (label, unit, higher_is_better, workload number)
METRICS = [
    ("seq_write", "1 seq write (1 MiB + fsync)", "MB/s", True, 1),
    ("seq_read_cold", "2 seq read, cold", "MB/s", True, 2),
    ("seq_read_warm", "2 seq read, warm", "MB/s", True, 2),
    ("rand_cold_1", "3 rand 4K read, cold, 1 proc", "IOPS", True, 3),
    ("rand_cold_2", "3 rand 4K read, cold, 2 procs", "IOPS", True, 3),
    ("rand_warm_1", "3 rand 4K read, warm, 1 proc", "IOPS", True, 3),
    ("rand_warm_2", "3 rand 4K read, warm, 2 procs", "IOPS", True, 3),
    ("write512", "4 512-byte writes + fsync", "MB/s", True, 4),
    ("tree_extract", "5 small files: extract", "s", False, 5),
    ("tree_walk", "5 small files: stat walk", "s", False, 5),
    ("tree_read", "5 small files: read all", "s", False, 5),
    ("tree_delete", "5 small files: delete", "s", False, 5),
    ("loader_epoch1", "6 loader: epoch 1", "samples/s", True, 6),
    ("loader_later", "6 loader: epochs 2-3", "samples/s", True, 6),
    ("space_apparent", "8 space: apparent size", "bytes", False, 8),
    ("space_blocks", "8 space: disk blocks", "bytes", False, 8),
    ("scale_extract", "9 scale tree: extract", "s", False, 9),
    ("scale_walk", "9 scale tree: stat walk", "s", False, 9),
    ("scale_read", "9 scale tree: read all", "s", False, 9),
    ("scale_delete", "9 scale tree: delete", "s", False, 9),
]
METRIC = {m[0]: m for m in METRICS}

# What --quick runs smaller (one run of each, in under 5 minutes).
QUICK = {"randread_seconds": 2, "scale_files": 5000, "write512_bytes": 16 * MiB,
         "loader_samples": 2000}

# Daemon-measurement steps, in table order.
STEPS = [
    ("seq_write", "1 seq write"), ("seq_read", "2 seq read"), ("randread", "3 random reads"),
    ("write512", "4 512-byte writes"), ("tree_extract", "5 tree extract"),
    ("tree_walk", "5 tree walk"), ("tree_read", "5 tree read"), ("tree_delete", "5 tree delete"),
    ("loader_write", "6 loader: write dataset"), ("loader_read", "6 loader: epochs"),
    ("scale", "9 scale tree (all phases)"),
]


class BenchError(Exception):
    pass


class Interrupted(BaseException):
    pass


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# ---------------------------------------------------------------------------------------------
# Processes: every child is tracked so that cleanup can end it (and only it).

CHILDREN = set()


def run(cmd, timeout, stdout=subprocess.PIPE, cwd=None, what=None, check=True):
    """Run cmd in its own session; kill its process group on timeout.  Returns (rc, out, err)."""
    p = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, cwd=cwd,
                         start_new_session=True)
    CHILDREN.add(p)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(p)
        out, err = p.communicate()
        raise BenchError("%s: timed out after %d s" % (what or cmd[0], timeout))
    except BaseException:
        kill_group(p)
        raise
    finally:
        CHILDREN.discard(p)
    out = out.decode(errors="replace") if isinstance(out, bytes) else (out or "")
    err = err.decode(errors="replace") if isinstance(err, bytes) else (err or "")
    if check and p.returncode != 0:
        raise BenchError("%s: exit %d: %s" % (what or " ".join(cmd), p.returncode,
                                               tail(err)))
    return p.returncode, out, err


def timed(cmd, timeout, what, stdout=subprocess.DEVNULL, cwd=None):
    t0 = time.monotonic()
    run(cmd, timeout, stdout=stdout, cwd=cwd, what=what)
    return time.monotonic() - t0


def kill_group(p):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            pass


def tail(text, n=3):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return " | ".join(lines[-n:])[:400]


def drop_caches():
    try:
        run(["sync"], timeout=300, what="sync")
    except BenchError as e:
        log("warning: %s" % e)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def preread(path):
    """Bring a file into the page cache (tar sources are read warm by every system)."""
    with open(path, "rb", buffering=0) as f:
        while f.read(8 * MiB):
            pass


def mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == path:
                return True
    return False


# ---------------------------------------------------------------------------------------------
# Daemon accounting: CPU seconds and peak resident memory.

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def hwm_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


def reset_hwm(pid):
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5\n")


# ---------------------------------------------------------------------------------------------
# Systems.

class System:
    """One system under test, for one run: a fresh backing directory and (for FUSE) a daemon."""

    def __init__(self, name, bench, base):
        self.name = name
        self.bench = bench
        self.base = base
        self.proc = None
        self.logfile = os.path.join(base, "daemon.log")
        self.mnt = os.path.join(base, "mnt")
        self.backing = os.path.join(base, "backing")
        os.makedirs(base)

    @property
    def fuse(self):
        return self.name != "raw"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def prepare(self):
        b = self.bench
        if self.name == "raw":
            os.makedirs(self.backing)
            self.mnt = self.backing
        elif self.name == "passthrough_ll":
            os.makedirs(self.backing)
        elif self.name == "gocryptfs":
            os.makedirs(self.backing)
            run(["gocryptfs", "-init", "-q", "-scryptn", "10", "-extpass", "cat " + b.pwfile,
                 self.backing], timeout=60, what="gocryptfs -init")
        else:
            run([b.bin("custodyctl"), "init", self.backing, "--keyfile", b.keyfile],
                timeout=60, what="custodyctl init")
        if self.fuse:
            os.makedirs(self.mnt)

    def command(self):
        b = self.bench
        if self.name == "passthrough_ll":
            return [b.helper("passthrough_ll"), "-f", "-o",
                    "source=%s,allow_other" % self.backing, self.mnt]
        if self.name == "gocryptfs":
            return ["gocryptfs", "-fg", "-extpass", "cat " + b.pwfile, "-o", "allow_other",
                    self.backing, self.mnt]
        exe = b.bin("custodyfs" if self.name == "custodyfs" else "custodyfs-noaudit")
        return [exe, self.backing, self.mnt, "--keyfile", b.keyfile, "-f"]

    def mount(self, timeout=30):
        if not self.fuse:
            return
        logf = open(self.logfile, "ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        self.bench.daemons.add(self)
        deadline = time.monotonic() + timeout
        while not mounted(self.mnt):
            if self.proc.poll() is not None:
                raise BenchError("%s did not mount (exit %d): %s" % (
                    self.name, self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                self.unmount()
                raise BenchError("%s did not mount within %d s" % (self.name, timeout))
            time.sleep(0.05)

    def log_tail(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return tail(f.read())
        except OSError:
            return ""

    def unmount(self, timeout=120):
        """Unmount and wait for the daemon to exit; escalate if it does not."""
        if not self.fuse or self.proc is None:
            return
        problems = []
        if mounted(self.mnt):
            try:
                run(["fusermount3", "-u", self.mnt], timeout=60, what="fusermount3 -u")
            except BenchError as e:
                problems.append(str(e))
                subprocess.run(["fusermount3", "-u", "-z", self.mnt], stderr=subprocess.DEVNULL)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            problems.append("daemon did not exit within %d s of unmount" % timeout)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    self.proc.send_signal(sig)
                    self.proc.wait(timeout=10)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", "-z", self.mnt], stderr=subprocess.DEVNULL)
        rc = self.proc.returncode
        self.bench.daemons.discard(self)
        self.proc = None
        if rc not in (0, None) and not problems:
            problems.append("daemon exited with status %s: %s" % (rc, self.log_tail()))
        if problems:
            raise BenchError("%s unmount: %s" % (self.name, "; ".join(problems)))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def tree_backing(self, before):
        """The backing directory that holds the mount's `tree`, given the backing's entries
        before it was made (gocryptfs encrypts the name)."""
        if self.name in ("raw", "passthrough_ll", "custodyfs", "custodyfs-noaudit"):
            return os.path.join(self.backing, "tree")
        new = sorted(set(os.listdir(self.backing)) - before)
        if len(new) != 1:
            raise BenchError("cannot tell the tree's cipher directory: %r" % new)
        return os.path.join(self.backing, new[0])

    def remove(self):
        shutil.rmtree(self.base, ignore_errors=True)


def du(path):
    """(apparent bytes, bytes in allocated blocks) of a tree."""
    _, a, _ = run(["du", "-s", "--apparent-size", "-B1", path], timeout=600, what="du")
    _, b, _ = run(["du", "-s", "-B1", path], timeout=600, what="du")
    return int(a.split()[0]), int(b.split()[0])


def count_files(path):
    n = 0
    for _, _, files in os.walk(path):
        n += len(files)
    return n


# ---------------------------------------------------------------------------------------------
# Test data: tars made once, on the raw disk, from a seed.

def make_tree_tar(path, nfiles, ndirs, minsz, maxsz, seed):
    rng = random.Random(seed)
    pool = rng.randbytes(2 * MiB)
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
        top = tarfile.TarInfo("tree")
        top.type, top.mode, top.mtime = tarfile.DIRTYPE, 0o755, 1700000000
        tf.addfile(top)
        for d in range(ndirs):
            ti = tarfile.TarInfo("tree/d%04d" % d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1700000000
            tf.addfile(ti)
        for i in range(nfiles):
            size = rng.randint(minsz, maxsz)
            off = rng.randrange(0, len(pool) - size)
            data = i.to_bytes(8, "little") + pool[off + 8:off + size]
            ti = tarfile.TarInfo("tree/d%04d/f%06d.bin" % (i % ndirs, i))
            ti.size, ti.mode, ti.mtime = size, 0o644, 1700000000
            tf.addfile(ti, io.BytesIO(data))


# ---------------------------------------------------------------------------------------------
# Statistics and formatting.

def summarize(values):
    v = sorted(values)
    return {"median": statistics.median(v), "min": v[0], "max": v[-1], "n": len(v)}


def fmt_plain(x, unit):
    """A figure with two or three significant digits, without its unit."""
    if unit == "bytes":
        return "%.1f" % (x / MiB)
    if unit == "s":
        return "%.2f" % x if x < 10 else "%.1f" % x if x < 100 else "%.0f" % x
    if x >= 100000:
        return "%.0fk" % (x / 1000)
    if x >= 10000:
        return "%.1fk" % (x / 1000)
    if x >= 100:
        return "%.0f" % x
    return "%.1f" % x


def fmt_num(x, unit):
    if x is None:
        return "?"
    return "%s %s" % (fmt_plain(x, unit), "MiB" if unit == "bytes" else unit)


def fmt_ratio(r):
    return "%.0fx" % r if r >= 10 else "%.1fx" % r if r >= 1 else "%.2fx" % r


def spread(s, unit):
    """The spread of the runs: [min-max], and the largest distance from the median."""
    if s["n"] < 2:
        return ""
    m = s["median"]
    pct = 100.0 * max(m - s["min"], s["max"] - m) / m if m else 0.0
    return "[%s-%s ±%.0f%%]" % (fmt_plain(s["min"], unit), fmt_plain(s["max"], unit), pct)


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        q = self.quick
        self.runs = args.runs or (1 if q else 3)
        self.rand_secs = args.randread_seconds or (QUICK["randread_seconds"] if q else 15)
        self.scale_files = args.scale_files or (QUICK["scale_files"] if q else 300000)
        self.scale_runs = 1
        # What --quick makes smaller than the workloads, to fit in 5 minutes.
        self.reduced = []
        if q:
            if self.rand_secs < 15:
                self.reduced.append("random reads %d s each (not 15)" % self.rand_secs)
            if self.scale_files < 300000:
                self.reduced.append("scale tree %d files (not 300,000)" % self.scale_files)
            self.reduced.append("512-byte writes of %d MiB (not 64)" % (
                QUICK["write512_bytes"] // MiB))
            self.reduced.append("loader of %d samples (not 10,000)" % QUICK["loader_samples"])
            self.reduced.append("no passthrough_ll scale attempt (a tree this small stays "
                                "under its open-file limit)")
        self.systems = args.systems.split(",") if args.systems else list(SYSTEMS)
        self.all_systems = args.all_systems
        for s in self.systems:
            if s not in SYSTEMS:
                raise SystemExit("bench: unknown system %s" % s)
        self.workloads = set(int(w) for w in args.workloads.split(",")) if args.workloads \
            else set(range(1, 10))
        self.params = {
            "runs": self.runs,
            "big_file_bytes": GiB, "big_chunk": MiB,
            "randread_seconds": self.rand_secs, "randread_block": 4096,
            "write512_bytes": QUICK["write512_bytes"] if q else 64 * MiB,
            "write512_chunk": 512,
            "tree_files": 18000, "tree_dirs": 200, "tree_min": 1024, "tree_max": 16384,
            "loader_samples": QUICK["loader_samples"] if q else 10000, "loader_shards": 100,
            "loader_epochs": 3, "loader_workers": 2, "loader_sample_bytes": "96-104 KiB",
            "audit_append": 100000, "audit_submit": 1000000, "audit_threads": 2,
            "audit_runs": self.runs,
            "scale_files": self.scale_files, "scale_dirs": 1000, "scale_min": 1024,
            "scale_max": 4096, "scale_runs": self.scale_runs,
            "passthrough_scale_timeout": 120,
            "nofile_limit": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
            "reduced": self.reduced,
        }
        self.daemons = set()
        self.values = {}       # system -> metric -> [values]
        self.errors = {}       # system -> metric/step -> message
        self.daemon = {}       # system -> step -> {"cpu_s": [], "peak_rss_mib": []}
        self.extra = {}        # system -> metric -> [values] (informational)
        self.audit = {"runs": [], "errors": []}
        self.timing = {}       # section -> seconds
        self.timing_by_system = {}
        self.scratch = None

    # ---- paths ----
    def bin(self, name):
        return os.path.join(self.scratch, "bin", name)

    def helper(self, name):
        return os.path.join(ROOT, "build-bench", name)

    # ---- recording ----
    def record(self, system, metric, value):
        self.values.setdefault(system, {}).setdefault(metric, []).append(value)

    def record_extra(self, system, metric, value):
        self.extra.setdefault(system, {}).setdefault(metric, []).append(value)

    def error(self, system, what, msg):
        msg = str(msg)
        self.errors.setdefault(system, {})
        if what not in self.errors[system]:
            self.errors[system][what] = msg
        log("ERROR %s %s: %s" % (system, what, msg))

    def add_time(self, section, seconds, system=None):
        self.timing[section] = self.timing.get(section, 0.0) + seconds
        if system is not None:
            d = self.timing_by_system.setdefault(system, {})
            d[section] = d.get(section, 0.0) + seconds

    def step(self, sysobj, step, fn):
        """Run one measured step, with the daemon's CPU time and peak memory around it."""
        pid = sysobj.pid
        if pid is not None:
            if not sysobj.alive():
                raise BenchError("daemon is gone: %s" % sysobj.log_tail())
            reset_hwm(pid)
            c0 = cpu_seconds(pid)
        result = fn()
        if pid is not None:
            if not sysobj.alive():
                raise BenchError("daemon died during %s: %s" % (step, sysobj.log_tail()))
            d = self.daemon.setdefault(sysobj.name, {}).setdefault(
                step, {"cpu_s": [], "peak_rss_mib": []})
            d["cpu_s"].append(cpu_seconds(pid) - c0)
            d["peak_rss_mib"].append(hwm_mib(pid))
        return result

    # ---- setup ----
    def setup(self):
        base = self.args.scratch or "/var/tmp"
        self.scratch = tempfile.mkdtemp(prefix="custodyfs-bench.", dir=base)
        fstype = subprocess.run(["stat", "-f", "-c", "%T", self.scratch],
                                capture_output=True, text=True).stdout.strip()
        if fstype == "tmpfs":
            raise SystemExit("bench: %s is on tmpfs; give a disk directory with --scratch"
                             % self.scratch)
        log("scratch directory %s (%s)" % (self.scratch, fstype))
        os.makedirs(os.path.join(self.scratch, "bin"))
        # Private copies: the tree may be rebuilt while the bench runs.
        for src, dst in (("build/custodyfs", "custodyfs"), ("build/custodyctl", "custodyctl"),
                         ("build-noaudit/custodyfs", "custodyfs-noaudit"),
                         ("build-bench/audit_bench", "audit_bench")):
            shutil.copy2(os.path.join(ROOT, src), self.bin(dst))
        self.keyfile = os.path.join(self.scratch, "vault.key")
        with open(self.keyfile, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(self.keyfile, 0o600)
        self.pwfile = os.path.join(self.scratch, "gocryptfs.pw")
        with open(self.pwfile, "w") as f:
            f.write("benchmark-password\n")
        os.chmod(self.pwfile, 0o600)
        t0 = time.monotonic()
        self.tree_tar = os.path.join(self.scratch, "tree.tar")
        p = self.params
        if self.workloads & {5, 8}:
            make_tree_tar(self.tree_tar, p["tree_files"], p["tree_dirs"], p["tree_min"],
                          p["tree_max"], seed=5)
        self.scale_tar = os.path.join(self.scratch, "scale.tar")
        if 9 in self.workloads:
            make_tree_tar(self.scale_tar, p["scale_files"], p["scale_dirs"], p["scale_min"],
                          p["scale_max"], seed=9)
        self.add_time("setup (test data)", time.monotonic() - t0)

    def machine(self):
        info = {"hostname": socket.gethostname(), "kernel": platform.release(),
                "cores": os.cpu_count()}
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["ram_mib"] = int(line.split()[1]) // 1024
        info["aes_ni"] = "aes" in open("/proc/cpuinfo").read().split()
        fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE,OPTIONS", "--target",
                             self.scratch], capture_output=True, text=True).stdout.split()
        info["disk"] = {"fstype": fs[0] if fs else "?", "source": fs[1] if len(fs) > 1 else "?",
                        "options": fs[2] if len(fs) > 2 else "?"}

        def out(cmd):
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
                return (r.stdout + r.stderr).strip().splitlines()[0]
            except (OSError, IndexError, subprocess.TimeoutExpired):
                return None
        info["versions"] = {
            "gocryptfs": out(["gocryptfs", "-version"]),
            "libfuse": out(["pkg-config", "--modversion", "fuse3"]),
            "custodyfs": out([self.bin("custodyfs"), "--version"]),
            "sqlite": out(["pkg-config", "--modversion", "sqlite3"]),
            "libsodium": out(["pkg-config", "--modversion", "libsodium"]),
            "python": platform.python_version(),
        }
        info["commit"] = git_head()
        info["loadavg_at_start"] = loadavg()
        return info

    # ---- workloads on one mounted system ----
    def w_tree(self, s):
        tar = self.tree_tar
        before = set(os.listdir(s.backing))
        preread(tar)
        t = self.step(s, "tree_extract", lambda: timed(
            ["tar", "xf", tar, "-C", s.mnt], 900, "tar x"))
        self.record(s.name, "tree_extract", t)
        run(["sync"], timeout=300, what="sync")
        n = count_files(os.path.join(s.mnt, "tree"))
        if n != self.params["tree_files"]:
            raise BenchError("tree has %d files after extract, not %d" % (
                n, self.params["tree_files"]))
        # Workload 8: what the tree takes in the backing directory.
        backing_tree = s.tree_backing(before)
        app, blk = du(backing_tree)
        self.record(s.name, "space_apparent", app)
        self.record(s.name, "space_blocks", blk)
        if s.name.startswith("custodyfs"):
            capp, cblk = du(os.path.join(s.backing, ".custody"))
            self.record_extra(s.name, "custody_dir_apparent", capp)
            self.record_extra(s.name, "custody_dir_blocks", cblk)
        tree = os.path.join(s.mnt, "tree")
        drop_caches()
        t = self.step(s, "tree_walk", lambda: timed(
            ["find", tree, "-ls"], 900, "find -ls"))
        self.record(s.name, "tree_walk", t)
        drop_caches()
        t = self.step(s, "tree_read", lambda: timed(
            ["find", tree, "-type", "f", "-exec", "cat", "{}", "+"], 900, "find -exec cat"))
        self.record(s.name, "tree_read", t)
        t = self.step(s, "tree_delete", lambda: timed(["rm", "-rf", tree], 900, "rm -rf"))
        self.record(s.name, "tree_delete", t)
        if os.path.exists(backing_tree):
            raise BenchError("the tree is still in the backing directory after rm -rf")

    def iob(self, args, timeout, what):
        _, out, _ = run([self.helper("iobench")] + args, timeout, what=what)
        return json.loads(out)

    def w_seq(self, s):
        big = os.path.join(s.mnt, "big.bin")
        r = self.step(s, "seq_write", lambda: self.iob(
            ["write", big, str(GiB), str(MiB)], 600, "sequential write"))
        self.record(s.name, "seq_write", r["bytes"] / r["seconds"] / 1e6)

        def reads():
            drop_caches()
            cold = self.iob(["read", big, str(MiB)], 600, "cold sequential read")
            warm = self.iob(["read", big, str(MiB)], 600, "warm sequential read")
            return cold, warm
        cold, warm = self.step(s, "seq_read", reads)
        if cold["bytes"] != GiB or warm["bytes"] != GiB:
            raise BenchError("sequential read returned %d/%d bytes" % (cold["bytes"],
                                                                         warm["bytes"]))
        self.record(s.name, "seq_read_cold", cold["bytes"] / cold["seconds"] / 1e6)
        self.record(s.name, "seq_read_warm", warm["bytes"] / warm["seconds"] / 1e6)

    def w_rand(self, s):
        big = os.path.join(s.mnt, "big.bin")
        secs = str(self.rand_secs)
        limit = self.rand_secs + 120

        def reads():
            out = {}
            drop_caches()
            out["rand_cold_1"] = self.iob(["randread", big, secs, "1"], limit, "random read")
            drop_caches()
            out["rand_cold_2"] = self.iob(["randread", big, secs, "2"], limit, "random read")
            self.iob(["read", big, str(MiB)], 600, "warming read")
            out["rand_warm_1"] = self.iob(["randread", big, secs, "1"], limit, "random read")
            out["rand_warm_2"] = self.iob(["randread", big, secs, "2"], limit, "random read")
            return out
        for k, r in self.step(s, "randread", reads).items():
            self.record(s.name, k, r["total"] / r["seconds"])

    def w_write512(self, s):
        path = os.path.join(s.mnt, "small-writes.bin")
        r = self.step(s, "write512", lambda: self.iob(
            ["write", path, str(self.params["write512_bytes"]), "512"], 900, "512-byte writes"))
        self.record(s.name, "write512", r["bytes"] / r["seconds"] / 1e6)

    def w_loader(self, s):
        p = self.params
        data = os.path.join(s.mnt, "dataset")
        common = ["--samples", str(p["loader_samples"]), "--shards", str(p["loader_shards"])]

        def write():
            _, out, _ = run([PYTHON, LOADER, "write", data] + common, 900, what="loader write")
            run(["sync"], timeout=300, what="sync")
            return json.loads(out)
        w = self.step(s, "loader_write", write)
        self.record_extra(s.name, "loader_write_MBps", w["bytes"] / w["seconds"] / 1e6)

        def read():
            _, out, _ = run([PYTHON, LOADER, "read", data, "--epochs", str(p["loader_epochs"]),
                             "--workers", str(p["loader_workers"]), "--drop-caches"] + common,
                            1800, what="loader")
            return json.loads(out)
        r = self.step(s, "loader_read", read)
        ep = [e["samples_per_s"] for e in r["epochs"]]
        self.record(s.name, "loader_epoch1", ep[0])
        self.record(s.name, "loader_later", statistics.mean(ep[1:]))

    def mount_fresh(self, s, what):
        """Prepare and mount system s; on failure record it under `what` and clean up."""
        try:
            s.prepare()
            s.mount()
            return True
        except BenchError as e:
            self.error(s.name, what, e)
            s.remove()
            return False

    def tear_down(self, s):
        """Unmount system s (recording a failure) and remove its scratch directory."""
        try:
            s.unmount()
        except BenchError as e:
            self.error(s.name, "unmount", e)
        s.remove()

    def one_system_run(self, name, run_no):
        base = os.path.join(self.scratch, "run%d" % run_no, name)
        s = System(name, self, base)
        t0 = time.monotonic()
        workloads = [(5, "tree", self.w_tree), (1, "seq", self.w_seq), (3, "rand", self.w_rand),
                     (4, "write512", self.w_write512), (6, "loader", self.w_loader)]
        if name == "custodyfs-noaudit":
            workloads = [w for w in workloads if w[0] <= 5]
        if name not in RAND_SYSTEMS and not self.all_systems:
            workloads = [w for w in workloads if w[0] != 3]
        wanted = set(self.workloads)
        if 8 in wanted:
            wanted.add(5)          # the space is measured on the tree of workload 5
        if wanted & {2, 3}:
            wanted.add(1)          # reads need the file that workload 1 writes
        workloads = [w for w in workloads if w[0] in wanted]
        if not self.mount_fresh(s, "mount"):
            return
        try:
            for num, label, fn in workloads:
                if num == 3 and not os.path.exists(os.path.join(s.mnt, "big.bin")):
                    self.error(name, "rand", "no 1 GiB file (sequential write failed)")
                    continue
                w0 = time.monotonic()
                try:
                    fn(s)
                except BenchError as e:
                    self.error(name, label, e)
                    if not s.alive() and s.fuse:
                        break
                finally:
                    self.add_time("workload %d (%s)" % (num, label), time.monotonic() - w0,
                                  name)
        finally:
            self.tear_down(s)
        log("  %s run %d: %.0f s" % (name, run_no + 1, time.monotonic() - t0))

    # ---- workload 7: the audit module ----
    def w_audit(self):
        p = self.params
        for r in range(p["audit_runs"]):
            base = os.path.join(self.scratch, "audit%d" % r)
            try:
                run([self.bin("custodyctl"), "init", base, "--keyfile", self.keyfile],
                    timeout=60, what="custodyctl init")
                _, out, _ = run([self.bin("audit_bench"), "--vault", base, "--keyfile",
                                 self.keyfile, "--threads", str(p["audit_threads"]),
                                 "--append", str(p["audit_append"]),
                                 "--submit", str(p["audit_submit"]), "--verify"],
                                timeout=900, what="audit_bench")
                res = json.loads(out)
                t0 = time.monotonic()
                _, vout, verr = run([self.bin("custodyctl"), "verify", base], timeout=900,
                                    what="custodyctl verify")
                t = time.monotonic() - t0
                m = re.search(r"verified: (\d+) records", vout + verr)
                if not m:
                    raise BenchError("custodyctl verify said: %s" % tail(vout + verr))
                nrec = int(m.group(1))
                res["custodyctl_verify"] = {"records": nrec, "seconds": t, "rps": nrec / t}
                res["db_bytes"] = sum(os.path.getsize(os.path.join(base, ".custody", f))
                                      for f in os.listdir(os.path.join(base, ".custody"))
                                      if f.startswith("audit.db"))
                self.audit["runs"].append(res)
                log("  audit run %d: append %.0f/s, submit %.0f/s, audit_verify %.0f/s, "
                    "custodyctl verify %.0f/s (%d records)" % (
                        r + 1, res["append"]["rps"], res["submit"]["rps"],
                        res["verify"]["rps"], nrec / t, nrec))
            except (BenchError, ValueError, KeyError) as e:
                self.audit["errors"].append(str(e))
                log("ERROR audit: %s" % e)
            finally:
                shutil.rmtree(base, ignore_errors=True)

    # ---- workload 9: the scale tree ----
    def w_scale(self, name):
        base = os.path.join(self.scratch, "scale", name)
        s = System(name, self, base)
        p = self.params
        if not self.mount_fresh(s, "scale"):
            return
        tree = os.path.join(s.mnt, "tree")
        phases = {}
        c0 = None
        try:
            preread(self.scale_tar)
            if s.pid:
                reset_hwm(s.pid)
                c0 = cpu_seconds(s.pid)
            if name == "passthrough_ll":
                phases["scale_extract"] = self.extract_until_error(
                    s, p["passthrough_scale_timeout"])
            else:
                phases["scale_extract"] = timed(["tar", "xf", self.scale_tar, "-C", s.mnt],
                                                3600, "tar x")
            run(["sync"], timeout=600, what="sync")
            n = count_files(tree)
            if n != p["scale_files"]:
                raise BenchError("tree has %d files after extract, not %d" % (
                    n, p["scale_files"]))
            drop_caches()
            phases["scale_walk"] = timed(["find", tree, "-ls"], 3600, "find -ls")
            drop_caches()
            phases["scale_read"] = timed(["find", tree, "-type", "f", "-exec", "cat", "{}", "+"],
                                         3600, "find -exec cat")
            phases["scale_delete"] = timed(["rm", "-rf", tree], 3600, "rm -rf")
            if s.pid:
                if not s.alive():
                    raise BenchError("daemon died: %s" % s.log_tail())
                d = self.daemon.setdefault(name, {}).setdefault(
                    "scale", {"cpu_s": [], "peak_rss_mib": []})
                d["cpu_s"].append(cpu_seconds(s.pid) - c0)
                d["peak_rss_mib"].append(hwm_mib(s.pid))
            for k, v in phases.items():
                self.record(name, k, v)
            log("  scale %s: %s" % (name, ", ".join("%s %.1f s" % (k[6:], v)
                                                     for k, v in phases.items())))
        except BenchError as e:
            self.error(name, "scale", e)
            if s.pid and s.alive() and c0 is not None:
                d = self.daemon.setdefault(name, {}).setdefault(
                    "scale", {"cpu_s": [], "peak_rss_mib": []})
                d["peak_rss_mib"].append(hwm_mib(s.pid))
                d["cpu_s"].append(cpu_seconds(s.pid) - c0)
        finally:
            self.tear_down(s)

    def extract_until_error(self, s, timeout):
        """tar x, stopped at its first error (passthrough_ll runs out of descriptors)."""
        t0 = time.monotonic()
        p = subprocess.Popen(["tar", "xf", self.scale_tar, "-C", s.mnt],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
        CHILDREN.add(p)
        first = None
        try:
            os.set_blocking(p.stderr.fileno(), False)
            buf = b""
            while p.poll() is None:
                if time.monotonic() - t0 > timeout:
                    kill_group(p)
                    raise BenchError("tar x did not finish within %d s" % timeout)
                chunk = p.stderr.read() or b""
                buf += chunk
                if buf.strip():
                    first = buf.decode(errors="replace").strip().splitlines()[0]
                    kill_group(p)
                    break
                time.sleep(0.2)
            rest = p.stderr.read() or b""
            buf += rest
            p.wait()
            if first is None and buf.strip():
                first = buf.decode(errors="replace").strip().splitlines()[0]
            if first is not None or p.returncode != 0:
                done = count_files(os.path.join(s.backing, "tree"))
                raise BenchError("tar x failed after %.0f s, %d files in: %s" % (
                    time.monotonic() - t0, done, first or "exit %d" % p.returncode))
        except BaseException:
            kill_group(p)
            raise
        finally:
            CHILDREN.discard(p)
        return time.monotonic() - t0

    # ---- the whole bench ----
    def execute(self):
        t_start = time.monotonic()
        log("runs: %d; random reads %d s each; scale tree %d files (%d run)" % (
            self.runs, self.rand_secs, self.scale_files, self.scale_runs))
        if self.workloads & {1, 2, 3, 4, 5, 6, 8}:
            for r in range(self.runs):
                log("run %d of %d" % (r + 1, self.runs))
                for name in self.systems:
                    self.one_system_run(name, r)
        if 7 in self.workloads:
            log("audit module (workload 7)")
            t0 = time.monotonic()
            self.w_audit()
            self.add_time("workload 7 (audit)", time.monotonic() - t0)
        if 9 in self.workloads:
            log("scale tree of %d files (workload 9)" % self.scale_files)
            scale_systems = SYSTEMS if self.all_systems else SCALE_SYSTEMS
            for name in [n for n in scale_systems if n in self.systems and
                         n != "custodyfs-noaudit"]:
                if name == "passthrough_ll" and self.quick:
                    continue
                t0 = time.monotonic()
                self.w_scale(name)
                self.add_time("workload 9 (scale) %s" % name, time.monotonic() - t0)
        self.wall = time.monotonic() - t_start

    def cleanup(self):
        for p in list(CHILDREN):
            kill_group(p)
        for s in list(self.daemons):
            try:
                s.unmount(timeout=30)
            except BenchError as e:
                log("cleanup: %s" % e)
            except Exception as e:  # keep cleaning the others
                log("cleanup: %s: %s" % (s.name, e))
        if self.scratch and not self.args.keep:
            left = [l.split()[4] for l in open("/proc/self/mountinfo")
                    if l.split()[4].startswith(self.scratch)]
            if left:
                log("cleanup: still mounted, scratch kept: %s" % ", ".join(left))
            else:
                shutil.rmtree(self.scratch, ignore_errors=True)

    # ---- report ----
    def summary(self):
        out = {}
        for sname, metrics in self.values.items():
            for m, vals in metrics.items():
                out.setdefault(sname, {})[m] = summarize(vals)
        return out

    def med(self, system, metric):
        s = self.summ.get(system, {}).get(metric)
        return s["median"] if s else None

    def cell(self, system, metric):
        label, unit, higher = METRIC[metric][1:4]
        if system in self.errors and metric_error(self.errors[system], metric):
            return "ERROR"
        s = self.summ.get(system, {}).get(metric)
        if s is None:
            return "-"
        text = fmt_num(s["median"], unit)
        refs = []
        for ref, tag in (("raw", "raw"), ("gocryptfs", "gcfs")):
            if system in ("raw", ref):
                continue
            r = self.med(ref, metric)
            if r:
                refs.append("%s %s" % (fmt_ratio(s["median"] / r), tag))
        if refs:
            text += " (%s)" % ", ".join(refs)
        sp = spread(s, unit)
        return text + (" " + sp if sp else "")

    def tables(self):
        self.summ = self.summary()
        cols = [s for s in SYSTEMS if s in self.systems]
        rows = []
        for key, label, unit, higher, w in METRICS:
            if not any(key in self.values.get(s, {}) for s in cols) and \
                    not any(metric_error(self.errors.get(s, {}), key) for s in cols):
                continue
            rows.append([label] + [self.cell(s, key) for s in cols])
        main = (["metric"] + cols, rows)
        drows = []
        for step, label in STEPS:
            present = [s for s in cols if step in self.daemon.get(s, {})]
            if not present:
                continue
            row = [label]
            for s in cols:
                d = self.daemon.get(s, {}).get(step)
                if s == "raw":
                    row.append("n/a")
                elif d is None:
                    row.append("-")
                else:
                    cpu = statistics.median(d["cpu_s"])
                    rss = [x for x in d["peak_rss_mib"] if x is not None]
                    row.append("%.1f s CPU, %.0f MiB" % (cpu, max(rss)) if rss else
                               "%.1f s CPU" % cpu)
            drows.append(row)
        daemon = (["daemon: CPU s (median), peak RSS (max)"] + cols, drows)
        return main, daemon

    def audit_summary(self):
        runs = self.audit["runs"]
        if not runs:
            return {}
        out = {}
        for key, path in (("append_rps", ("append", "rps")), ("submit_rps", ("submit", "rps")),
                          ("audit_verify_rps", ("verify", "rps")),
                          ("custodyctl_verify_rps", ("custodyctl_verify", "rps")),
                          ("log_records", ("verify", "records"))):
            out[key] = summarize([r[path[0]][path[1]] for r in runs])
        out["db_bytes"] = summarize([r["db_bytes"] for r in runs])
        return out

    def targets(self):
        T = []
        m = self.med

        def ratio(a, b):
            return a / b if a is not None and b else None

        def add(name, ok, text):
            T.append({"target": name, "status": "PASS" if ok else
                      ("MISS" if ok is not None else "n/a"), "detail": text})

        def fx(v):
            return "%.2fx" % v if v is not None else "?"

        def both(name, metric, ref, factor, cmp="ge", unit=""):
            a, b = m("custodyfs", metric), m(ref, metric)
            r = ratio(a, b)
            if r is None:
                add(name, None, "no figure for %s" % (
                    "custodyfs" if a is None else SHORT[ref]))
                return
            ok = r >= factor if cmp == "ge" else r <= factor
            add(name, ok, "%s vs %s %s: %s (need %s %.2fx)" % (
                fmt_num(a, METRIC[metric][2]), SHORT[ref], fmt_num(b, METRIC[metric][2]),
                fx(r), ">=" if cmp == "ge" else "<=", factor))

        both("seq write >= 1.3x gocryptfs", "seq_write", "gocryptfs", 1.3)
        both("seq write >= 0.9x passthrough_ll", "seq_write", "passthrough_ll", 0.9)
        both("cold seq read >= passthrough_ll", "seq_read_cold", "passthrough_ll", 1.0)
        both("cold seq read >= 1.6x gocryptfs", "seq_read_cold", "gocryptfs", 1.6)
        both("warm seq read >= 0.5x raw", "seq_read_warm", "raw", 0.5)
        both("random reads cold, 1 proc >= gocryptfs", "rand_cold_1", "gocryptfs", 1.0)
        both("random reads cold, 2 procs >= gocryptfs", "rand_cold_2", "gocryptfs", 1.0)
        both("random reads warm, 1 proc >= 10x gocryptfs", "rand_warm_1", "gocryptfs", 10.0)
        both("random reads warm, 2 procs >= 10x gocryptfs", "rand_warm_2", "gocryptfs", 10.0)
        for mode in ("cold", "warm"):
            a, b = m("custodyfs", "rand_%s_2" % mode), m("custodyfs", "rand_%s_1" % mode)
            r = ratio(a, b)
            add("random reads %s: 2 readers >= 1.6x 1 reader" % mode,
                None if r is None else r >= 1.6,
                "%s vs %s: %s" % (fmt_num(a, "IOPS"), fmt_num(b, "IOPS"), fx(r))
                if r is not None else "no figure")
        both("512-byte writes >= 3x gocryptfs", "write512", "gocryptfs", 3.0)
        both("small files: extract <= 0.7x gocryptfs time", "tree_extract", "gocryptfs", 0.7, "le")
        both("small files: stat walk <= gocryptfs time", "tree_walk", "gocryptfs", 1.0, "le")
        both("small files: read all <= 0.8x gocryptfs time", "tree_read", "gocryptfs", 0.8, "le")
        both("small files: delete <= 0.8x gocryptfs time", "tree_delete", "gocryptfs", 0.8, "le")
        both("loader epochs 2-3 >= 0.5x raw", "loader_later", "raw", 0.5)
        # Scale.
        n = self.params["scale_files"]
        err = self.errors.get("custodyfs", {}).get("scale")
        have = all(m("custodyfs", k) is not None for k in
                   ("scale_extract", "scale_walk", "scale_read", "scale_delete"))
        note = "" if n >= 300000 else " (this run: %d files)" % n
        add("scale: 300,000-file tree with no error%s" % note,
            (have and err is None) if (have or err) else None,
            err or ("extract %.0f s, walk %.1f s, read %.0f s, delete %.0f s" % tuple(
                m("custodyfs", k) for k in ("scale_extract", "scale_walk", "scale_read",
                                            "scale_delete")) if have else "not run"))
        d = self.daemon.get("custodyfs", {})
        sc = [x for x in d.get("scale", {}).get("peak_rss_mib", []) if x is not None]
        add("scale: daemon peak RSS <= 128 MiB", (max(sc) <= 128) if sc else None,
            "%.0f MiB" % max(sc) if sc else "no figure")
        other = [(x, st) for st, v in d.items() if st != "scale"
                 for x in v["peak_rss_mib"] if x is not None]
        if other:
            worst = max(other)
            add("other workloads: daemon peak RSS <= 64 MiB", worst[0] <= 64,
                "max %.0f MiB (%s)" % worst)
        else:
            add("other workloads: daemon peak RSS <= 64 MiB", None, "no figure")
        a = self.audit_summary()
        if a:
            add("audit writer >= 300,000 records/s sustained",
                a["submit_rps"]["median"] >= 300000,
                "audit_submit from 2 threads: %.0f records/s (audit_append, waiting for each "
                "commit: %.0f records/s)" % (a["submit_rps"]["median"],
                                              a["append_rps"]["median"]))
            add("custodyctl verify >= 1,000,000 records/s",
                a["custodyctl_verify_rps"]["median"] >= 1e6,
                "%.0f records/s over %d records (audit_verify in-process: %.0f records/s)" % (
                    a["custodyctl_verify_rps"]["median"], a["log_records"]["median"],
                    a["audit_verify_rps"]["median"]))
        else:
            add("audit writer >= 300,000 records/s sustained", None,
                "; ".join(self.audit["errors"]) or "not run")
            add("custodyctl verify >= 1,000,000 records/s", None, "not run")
        costs = []
        for key, label, unit, higher, w in METRICS:
            if w > 5:
                continue
            a_, b_ = m("custodyfs", key), m("custodyfs-noaudit", key)
            if a_ is None or b_ is None or a_ <= 0 or b_ <= 0:
                continue
            cost = (b_ / a_ - 1) if higher else (a_ / b_ - 1)
            costs.append((cost, key))
        if costs:
            worst = max(costs)
            add("audit cost <= 10% on workloads 1-5", worst[0] <= 0.10,
                "worst %s: %+.1f%%; all: %s" % (worst[1], 100 * worst[0], ", ".join(
                    "%s %+.0f%%" % (k, 100 * c) for c, k in costs)))
        else:
            add("audit cost <= 10% on workloads 1-5", None, "no figures")
        for kind in ("apparent", "blocks"):
            a_, b_ = m("custodyfs", "space_" + kind), m("raw", "space_" + kind)
            r = ratio(a_, b_)
            add("space overhead <= 1.5%% over raw (%s)" % kind,
                None if r is None else r - 1 <= 0.015,
                "%s vs %s: %+.2f%%" % (fmt_num(a_, "bytes"), fmt_num(b_, "bytes"),
                                       100 * (r - 1)) if r else "no figure")
        return T

    def report(self):
        main, daemon = self.tables()
        targets = self.targets()
        asum = self.audit_summary()
        lines = []
        lines.append("")
        lines.append("custodyfs benchmark%s: median of %d run(s) [min-max of the runs, largest "
                     "distance from the median]" % (" (QUICK)" if self.quick else "", self.runs))
        lines.append("ratios are of the figures themselves (for times in s, above 1x is "
                     "slower); random reads %d s each; scale tree of %d files, one run" % (
                         self.rand_secs, self.scale_files))
        if self.reduced:
            lines.append("quick run, reduced: " + "; ".join(self.reduced))
        lines.append("")
        lines += text_table(*main)
        lines.append("")
        lines += text_table(*daemon)
        lines.append("")
        if asum:
            lines.append("audit module (workload 7), %d run(s), log of %d records:" % (
                asum["submit_rps"]["n"], asum["log_records"]["median"]))
            for key, label in (("append_rps", "audit_append, 2 threads (waits for commit)"),
                               ("submit_rps", "audit_submit, 2 threads, then audit_sync"),
                               ("audit_verify_rps", "audit_verify (in-process)"),
                               ("custodyctl_verify_rps", "custodyctl verify")):
                s = asum[key]
                lines.append("  %-45s %10.0f records/s %s" % (label, s["median"],
                                                                 spread(s, "records/s")))
            lines.append("")
        extra = []
        for sname in SYSTEMS:
            e = self.extra.get(sname, {})
            if "custody_dir_apparent" in e:
                extra.append("  %s: .custody/ after the tree extract (audit db and config): "
                             "%.1f MiB apparent, %.1f MiB in blocks" % (
                                 sname, statistics.median(e["custody_dir_apparent"]) / MiB,
                                 statistics.median(e["custody_dir_blocks"]) / MiB))
        if extra:
            lines.append("space outside the tree (not counted above):")
            lines += extra
            lines.append("")
        if self.errors:
            lines.append("errors:")
            for sname, errs in self.errors.items():
                for what, msg in errs.items():
                    lines.append("  %s %s: %s" % (sname, what, msg))
            lines.append("")
        lines.append("targets (custodyfs):")
        for t in targets:
            lines.append("  %-4s %-55s %s" % (t["status"], t["target"], t["detail"]))
        lines.append("")
        lines.append("wall time %.0f s (%s)" % (self.wall, "; ".join(
            "%s %.0f s" % kv for kv in sorted(self.timing.items()))))
        print("\n".join(lines), flush=True)
        return main, daemon, targets, asum

    def save(self, main, daemon, targets, asum, machine, started):
        os.makedirs(RESULTS, exist_ok=True)
        data = {
            "started": started, "quick": self.quick, "wall_seconds": round(self.wall, 1),
            "section_seconds": {k: round(v, 1) for k, v in self.timing.items()},
            "section_seconds_by_system": {s: {k: round(v, 1) for k, v in d.items()}
                                          for s, d in self.timing_by_system.items()},
            "machine": machine, "params": self.params, "systems": self.systems,
            "values": self.values, "summary": self.summ, "errors": self.errors,
            "daemon": self.daemon, "extra": self.extra, "audit": self.audit,
            "audit_summary": asum, "targets": targets,
        }
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        suffix = "-quick" if self.quick else ""
        name = "%s-%s%s.json" % (stamp, machine["hostname"], suffix)
        text = json.dumps(tidy(data), indent=1, sort_keys=True) + "\n"
        write_atomic(os.path.join(RESULTS, name), text)
        latest = "latest-quick" if self.quick else "latest"
        write_atomic(os.path.join(RESULTS, latest + ".json"), text)
        md = self.markdown(main, daemon, targets, asum, machine, started)
        write_atomic(os.path.join(RESULTS, latest + ".md"), md)
        log("results: bench/results/%s, bench/results/%s.json, bench/results/%s.md" % (
            name, latest, latest))

    def markdown(self, main, daemon, targets, asum, machine, started):
        v = machine["versions"]
        out = ["## Benchmark%s" % (" (quick run)" if self.quick else ""), "",
               "%s, %s cores, %d GiB RAM, Linux %s, %s on %s; gocryptfs %s, libfuse %s. "
               "Median of %d run(s) [min-max of the runs, largest distance from the median]; "
               "ratios are of the figures themselves (for times, above 1x is slower). "
               "Random reads run %d s each%s; the scale tree (%d files) is one run%s. "
               "%sStarted %s." % (
                   machine.get("cpu", "?"), machine["cores"], round(machine["ram_mib"] / 1024),
                   machine["kernel"], machine["disk"]["fstype"], machine["disk"]["source"],
                   (v["gocryptfs"] or "?").split(";")[0].replace("gocryptfs ", ""),
                   v["libfuse"], self.runs, self.rand_secs,
                   "" if self.all_systems else " (on %s)" % ", ".join(RAND_SYSTEMS),
                   self.scale_files,
                   "" if self.all_systems else " (on %s)" % ", ".join(SCALE_SYSTEMS),
                   "Quick run, reduced: %s. " % "; ".join(self.reduced) if self.reduced else "",
                   started), ""]
        out += md_table(*main)
        out.append("")
        out += md_table(*daemon)
        out.append("")
        if asum:
            out.append("Audit module, log of %d records: audit_append %.0f records/s, "
                       "audit_submit %.0f records/s, audit_verify %.0f records/s, "
                       "custodyctl verify %.0f records/s." % (
                           asum["log_records"]["median"], asum["append_rps"]["median"],
                           asum["submit_rps"]["median"], asum["audit_verify_rps"]["median"],
                           asum["custodyctl_verify_rps"]["median"]))
            out.append("")
        out += md_table(["target", "status", "figures"],
                        [[t["target"], t["status"], t["detail"]] for t in targets])
        if self.errors:
            out.append("")
            out.append("Errors: " + "; ".join("%s %s: %s" % (s, w, msg)
                                              for s, e in self.errors.items()
                                              for w, msg in e.items()))
        return "\n".join(out) + "\n"


def metric_error(errs, metric):
    """Is `metric` missing because of a recorded error?"""
    group = {"tree": ("tree_", "space_"), "seq": ("seq_",), "rand": ("rand_",),
             "write512": ("write512",), "loader": ("loader_",), "scale": ("scale_",),
             "mount": ("",)}
    return any(metric.startswith(p) for w in errs for p in group.get(w, ()))


def text_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    fmt = "  ".join("%%-%ds" % w for w in widths)
    out = [fmt % tuple(header), "  ".join("-" * w for w in widths)]
    out += [fmt % tuple(r) for r in rows]
    return out


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
    return out


def tidy(obj):
    """Floats to 5 significant digits, to keep the result files small and readable."""
    if isinstance(obj, float):
        return float("%.5g" % obj)
    if isinstance(obj, dict):
        return {k: tidy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [tidy(v) for v in obj]
    return obj


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def git_head():
    """The checked-out commit, read from .git without running git."""
    try:
        gitdir = os.path.join(ROOT, ".git")
        head = open(os.path.join(gitdir, "HEAD")).read().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        p = os.path.join(gitdir, ref)
        if os.path.exists(p):
            return open(p).read().strip()
        for line in open(os.path.join(gitdir, "packed-refs")):
            if line.strip().endswith(" " + ref):
                return line.split()[0]
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser(description="custodyfs benchmark driver (use scripts/bench)")
    ap.add_argument("--quick", action="store_true", help="one run of each, shorter parts")
    ap.add_argument("--runs", type=int, help="runs per figure (default 3, quick 1)")
    ap.add_argument("--randread-seconds", type=int, help="seconds per random-read figure")
    ap.add_argument("--scale-files", type=int, help="files in the scale tree")
    ap.add_argument("--systems", help="comma-separated subset of: " + ",".join(SYSTEMS))
    ap.add_argument("--all-systems", action="store_true",
                    help="random reads and the scale tree on every system (a longer run)")
    ap.add_argument("--workloads", help="comma-separated subset of 1-9")
    ap.add_argument("--scratch", help="directory for the scratch tree (default /var/tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: must run as root (drop_caches, allow_other, custodyfs)")

    def on_signal(signum, frame):
        raise Interrupted("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    b = Bench(args)
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    status = 0
    try:
        b.setup()
        machine = b.machine()
        if machine["loadavg_at_start"][0] > 0.7:
            log("warning: the machine is busy (load average %.2f): other work on it skews the "
                "figures" % machine["loadavg_at_start"][0])
        b.execute()
        machine["loadavg_at_end"] = loadavg()
        report = b.report()
        if not args.no_save:
            b.save(*report, machine, started)
    except Interrupted as e:
        log("interrupted (%s): cleaning up" % e)
        status = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        b.cleanup()
    return status


if __name__ == "__main__":
    sys.exit(main())
