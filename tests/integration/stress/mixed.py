"""Mixed-load stress for custodyfs (used by t1320-stress-mixed.sh; Debian's python3).

  mixed.py worker  MNT K SECONDS LEDGER RESULT
  mixed.py verify  MNT WORKERS SECONDS LEDGER_PREFIX RESULT

Workers share the directories MNT/s/d0..d3.  Each worker owns two kinds of files:

  - private files p<K>_<n>: random creates, writes at random offsets and of random sizes (also
    past the end), appends, truncates up and down, reads of random ranges, renames (to new names
    and over its own files), unlinks, reads through a descriptor whose name was unlinked, fsync
    and listings.  The worker keeps each file's exact content in memory and checks every read
    and a full read-back of everything at the end.
  - published files pub<K>_<j>: a new version is written to a temporary name, fsynced and
    renamed over the published name (an atomic replacement), or the name is deleted; after each
    rename or unlink returned, "pub NAME VERSION" / "del NAME VERSION" is appended to the
    worker's ledger.  Versions only grow.  The content is self-describing: a 64-byte header
    "K J VERSION SIZE" and SIZE bytes of the pattern of (K, J, VERSION).

The verifier reads the ledgers and the published files at random: each read must be a whole,
valid version no older than the one the ledger showed before the read started; a missing file is
only allowed when the ledger shows it deleted (or deleted soon after, a race).  Results are
written as JSON to RESULT.
"""

import errno
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from helpers import pattern  # noqa: E402

DIRS = ["d0", "d1", "d2", "d3"]
NPUB = 6
HDR = 64


def en(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def pub_seed(k, j, v):
    return k * 1000000007 + j * 1000003 + v


def pub_content(k, j, v):
    size = random.Random(pub_seed(k, j, v)).choice([0, 1, 4095, 4096, 5000, 40000, 150000, 262144])
    hdr = ("%d %d %d %d" % (k, j, v, size)).encode().ljust(HDR, b" ")
    return hdr + pattern(pub_seed(k, j, v), 0, size)


def pub_path(m, k, j):
    return "%s/s/%s/pub%d_%d" % (m, DIRS[j % len(DIRS)], k, j)


def check_pub(data):
    """(k, j, v) of a whole, valid published file, or raise ValueError."""
    if len(data) < HDR:
        raise ValueError("only %d bytes" % len(data))
    try:
        k, j, v, size = (int(x) for x in data[:HDR].split())
    except ValueError:
        raise ValueError("bad header %r" % data[:HDR])
    if len(data) != HDR + size:
        raise ValueError("v%d: %d bytes, header says %d" % (v, len(data), HDR + size))
    if data[HDR:] != pattern(pub_seed(k, j, v), 0, size):
        raise ValueError("v%d: content differs from its version" % v)
    return k, j, v


class Worker:
    def __init__(self, m, k, seconds, ledger, result):
        self.m, self.k, self.deadline = m, k, time.time() + seconds
        self.rng = random.Random(os.getpid() ^ int(time.time() * 1000))
        self.ledger = os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.result = result
        self.files = {}          # path -> bytearray (exact content)
        self.n = 0
        self.pubver = {j: 0 for j in range(NPUB)}
        self.ops = {}
        self.errors = []
        self.mismatches = []

    def path(self):
        self.n += 1
        return "%s/s/%s/p%d_%d" % (self.m, self.rng.choice(DIRS), self.k, self.n)

    def err(self, op, path, e):
        self.errors.append("%s %s: %s" % (op, path[len(self.m):], e))

    def mismatch(self, op, path, got, want, off=0):
        i = next((x for x in range(min(len(got), len(want))) if got[x] != want[x]),
                 min(len(got), len(want)))
        self.mismatches.append("%s %s: %d bytes, expected %d, first difference at offset %d"
                               % (op, path[len(self.m):], len(got), len(want), off + i))

    def size(self):
        r = self.rng.random()
        if r < 0.3:
            return self.rng.randint(1, 300)
        if r < 0.5:
            return self.rng.choice([4095, 4096, 4097, 8192, 12288])
        if r < 0.9:
            return self.rng.randint(1, 70000)
        return self.rng.randint(100000, 300000)

    def pick(self):
        return self.rng.choice(sorted(self.files)) if self.files else None

    # ---- private files ----
    def op_create(self):
        if len(self.files) >= 14:
            return self.op_unlink()
        p = self.path()
        data = self.rng.randbytes(self.rng.choice([0, self.size()]))
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            self.files[p] = bytearray()
            if data:
                os.write(fd, data)
            self.files[p] = bytearray(data)
        finally:
            os.close(fd)

    def op_write(self):
        p = self.pick()
        if p is None:
            return self.op_create()
        model = self.files[p]
        if self.rng.random() < 0.8 or not model:
            off = self.rng.randint(0, len(model) + 20000)
        else:
            off = self.rng.choice([0, len(model), len(model) // 4096 * 4096])
        if len(model) + 300000 > 2 << 20:
            off = self.rng.randint(0, len(model))
        data = self.rng.randbytes(self.size())
        fd = os.open(p, os.O_RDWR)
        try:
            n = os.pwrite(fd, data, off)
            if n != len(data):
                self.errors.append("short write %d of %d" % (n, len(data)))
                data = data[:n]
            if off > len(model):
                model.extend(bytes(off - len(model)))
            model[off:off + len(data)] = data
            if self.rng.random() < 0.1:
                os.fsync(fd)
        finally:
            os.close(fd)

    def op_append(self):
        p = self.pick()
        if p is None:
            return self.op_create()
        if len(self.files[p]) > 1500000:
            return self.op_truncate()
        data = self.rng.randbytes(self.size())
        fd = os.open(p, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data)
            self.files[p].extend(data)
        finally:
            os.close(fd)

    def op_read(self):
        p = self.pick()
        if p is None:
            return self.op_create()
        model = self.files[p]
        off = self.rng.randint(0, len(model) + 10)
        n = self.rng.choice([1, 100, 4096, 10000, 200000])
        fd = os.open(p, os.O_RDONLY)
        try:
            got = os.pread(fd, n, off)
            want = bytes(model[off:off + n])
            if got != want:
                self.mismatch("read", p, got, want, off)
            if os.fstat(fd).st_size != len(model):
                self.mismatches.append("fstat %s: size %d, expected %d"
                                       % (p[len(self.m):], os.fstat(fd).st_size, len(model)))
        finally:
            os.close(fd)

    def read_whole(self, p):
        fd = os.open(p, os.O_RDONLY)
        try:
            chunks, off = [], 0
            while True:
                b = os.pread(fd, 1 << 20, off)
                if not b:
                    return b"".join(chunks)
                chunks.append(b)
                off += len(b)
        finally:
            os.close(fd)

    def op_readall(self):
        p = self.pick()
        if p is None:
            return self.op_create()
        got = self.read_whole(p)
        if got != self.files[p]:
            self.mismatch("read-all", p, got, self.files[p])

    def op_truncate(self):
        p = self.pick()
        if p is None:
            return self.op_create()
        model = self.files[p]
        new = self.rng.choice([0, self.rng.randint(0, len(model) + 1),
                               self.rng.randint(0, len(model) + 100000),
                               len(model) // 4096 * 4096])
        if self.rng.random() < 0.5:
            os.truncate(p, new)
        else:
            fd = os.open(p, os.O_WRONLY)
            try:
                os.ftruncate(fd, new)
            finally:
                os.close(fd)
        if new < len(model):
            del model[new:]
        else:
            model.extend(bytes(new - len(model)))

    def op_rename(self):
        p = self.pick()
        if p is None:
            return self.op_create()
        if self.rng.random() < 0.5 or len(self.files) < 2:
            q = self.path()
        else:
            q = self.rng.choice([x for x in self.files if x != p])
        os.rename(p, q)
        self.files[q] = self.files.pop(p)

    def op_unlink(self):
        p = self.pick()
        if p is None:
            return self.op_create()
        os.unlink(p)
        del self.files[p]

    def op_unlinked_read(self):
        p = self.pick()
        if p is None:
            return self.op_create()
        fd = os.open(p, os.O_RDWR)
        try:
            os.unlink(p)
            model = self.files.pop(p)
            got = os.pread(fd, len(model) + 10, 0)
            if got != model:
                self.mismatch("read-after-unlink", p, got, model)
            os.pwrite(fd, b"tail", len(model))
            if os.pread(fd, 4, len(model)) != b"tail":
                self.mismatches.append("write-after-unlink %s" % p[len(self.m):])
        finally:
            os.close(fd)

    def op_list(self):
        d = self.rng.choice(DIRS)
        names = set(os.listdir("%s/s/%s" % (self.m, d)))
        mine = {os.path.basename(p) for p in self.files if p.split("/")[-2] == d}
        if not mine <= names:
            self.mismatches.append("listing of %s lacks %s" % (d, sorted(mine - names)[:5]))
        hidden = [n for n in names if n.startswith(".fuse_hidden")]
        if hidden:
            self.mismatches.append("listing of %s shows %s" % (d, hidden[:3]))

    # ---- published files ----
    def op_publish(self):
        j = self.rng.randrange(NPUB)
        self.pubver[j] += 1
        v = self.pubver[j]
        dst = pub_path(self.m, self.k, j)
        tmp = "%s/s/%s/.tmp%d_%d" % (self.m, self.rng.choice(DIRS), self.k, j)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, pub_content(self.k, j, v))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, dst)
        os.write(self.ledger, ("pub %s %d\n" % (dst[len(self.m):], v)).encode())

    def op_unpublish(self):
        j = self.rng.randrange(NPUB)
        dst = pub_path(self.m, self.k, j)
        try:
            os.unlink(dst)
        except FileNotFoundError:
            return                          # not published at the moment: fine
        os.write(self.ledger, ("del %s %d\n" % (dst[len(self.m):], self.pubver[j])).encode())

    def run(self):
        ops = [(self.op_create, 8), (self.op_write, 20), (self.op_append, 6), (self.op_read, 20),
               (self.op_readall, 5), (self.op_truncate, 6), (self.op_rename, 8),
               (self.op_unlink, 4), (self.op_unlinked_read, 2), (self.op_list, 4),
               (self.op_publish, 12), (self.op_unpublish, 2)]
        fns = [f for f, w in ops for _ in range(w)]
        while time.time() < self.deadline:
            fn = self.rng.choice(fns)
            name = fn.__name__[3:]
            self.ops[name] = self.ops.get(name, 0) + 1
            try:
                fn()
            except OSError as e:
                self.err(name, getattr(e, "filename", "") or "", en(e))
                if len(self.errors) > 200:
                    break
        # final check of every private file
        for p, model in sorted(self.files.items()):
            try:
                got = self.read_whole(p)
                if got != model:
                    self.mismatch("final", p, got, model)
            except OSError as e:
                self.err("final", p, en(e))
        json.dump({"worker": self.k, "ops": self.ops, "nops": sum(self.ops.values()),
                   "files": len(self.files), "errors": self.errors[:30],
                   "nerrors": len(self.errors), "mismatches": self.mismatches[:30],
                   "nmismatches": len(self.mismatches),
                   "published": self.pubver}, open(self.result, "w"))


class Ledger:
    def __init__(self, prefix, workers):
        self.files = ["%s.%d" % (prefix, k) for k in range(workers)]
        self.pos = [0] * workers
        self.buf = [b""] * workers
        self.state = {}        # name -> (op, version, seq)
        self.seq = 0

    def refresh(self):
        for i, f in enumerate(self.files):
            try:
                with open(f, "rb") as fh:
                    fh.seek(self.pos[i])
                    data = fh.read()
            except FileNotFoundError:
                continue
            self.pos[i] += len(data)
            data = self.buf[i] + data
            lines = data.split(b"\n")
            self.buf[i] = lines.pop()
            for line in lines:
                op, name, v = line.decode().split()
                self.seq += 1
                self.state[name] = (op, int(v), self.seq)


def verify(m, workers, seconds, prefix, result):
    led = Ledger(prefix, workers)
    deadline = time.time() + seconds
    rng = random.Random(os.getpid())
    stats = {"reads": 0, "absent-ok": 0, "absent-race": 0, "listings": 0}
    bad = []
    names = ["/s/%s/pub%d_%d" % (DIRS[j % len(DIRS)], k, j) for k in range(workers)
             for j in range(NPUB)]

    class StaleError(OSError):
        pass

    def open_read(path):
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            if e.errno == errno.ESTALE:
                raise StaleError(e.errno, e.strerror) from e
            raise

    def check_one(name, final=False):
        led.refresh()
        before = led.state.get(name)
        try:
            data = open_read(m + name)
        except (FileNotFoundError, StaleError) as e:
            # ESTALE: the name was replaced under an open twice in a row, beyond the kernel's one
            # retry (custodyfs on libfuse's path API); allowed only as a race, like ENOENT
            if isinstance(e, FileNotFoundError) and (before is None or before[0] == "del"):
                stats["absent-ok"] += 1
                return
            # allowed only if the owner deleted it after our look at the ledger
            for _ in range(50):
                led.refresh()
                now = led.state.get(name)
                if now[2] != before[2]:
                    stats["absent-race"] += 1
                    return
                time.sleep(0.1)
            bad.append("%s: missing, but the ledger says published v%d and nothing since"
                       % (name, before[1]))
            return
        except OSError as e:
            bad.append("%s: read fails with %s" % (name, en(e)))
            return
        stats["reads"] += 1
        try:
            k, j, v = check_pub(data)
        except ValueError as e:
            bad.append("%s: not a whole version: %s" % (name, e))
            return
        if pub_path("", k, j) != name:
            bad.append("%s: holds the content of pub%d_%d" % (name, k, j))
        if before is not None and (v < before[1] or (before[0] == "del" and v == before[1])):
            bad.append("%s: v%d read after the ledger showed %s v%d: stale" %
                       (name, v, before[0], before[1]))
        if final and before is not None and (before[0] != "pub" or v != before[1]):
            bad.append("%s: at the end holds v%d, the ledger's last entry is %s v%d"
                       % (name, v, before[0], before[1]))

    while time.time() < deadline:
        if rng.random() < 0.05:
            for d in DIRS:
                try:
                    os.listdir("%s/s/%s" % (m, d))
                    stats["listings"] += 1
                except OSError as e:
                    bad.append("listing %s fails with %s" % (d, en(e)))
            continue
        check_one(rng.choice(names))
        if len(bad) > 100:
            break
    json.dump({"stats": stats, "bad": bad[:30], "nbad": len(bad)}, open(result, "w"))


def final(m, workers, prefix, result):
    """After the workers stopped: every published name holds exactly its last ledger entry."""
    led = Ledger(prefix, workers)
    led.refresh()
    bad, n = [], 0
    for k in range(workers):
        for j in range(NPUB):
            name = pub_path("", k, j)
            st = led.state.get(name)
            n += 1
            try:
                with open(m + name, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                if st is not None and st[0] == "pub":
                    bad.append("%s: missing, the ledger ends with pub v%d" % (name, st[1]))
                continue
            try:
                kk, jj, v = check_pub(data)
            except ValueError as e:
                bad.append("%s: %s" % (name, e))
                continue
            if st is None or st[0] != "pub" or st[1] != v:
                bad.append("%s: holds v%d, the ledger ends with %s" % (name, v, st))
    json.dump({"names": n, "bad": bad[:30], "nbad": len(bad)}, open(result, "w"))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "worker":
        Worker(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]).run()
    elif cmd == "verify":
        verify(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6])
    elif cmd == "final":
        final(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        sys.exit("usage: mixed.py worker|verify|final ...")
