#!/bin/bash
# Several processes on the same file at once: 4 writers writing their own
# 4096-aligned blocks and their own unaligned 1000-byte regions that share
# blocks with the other writers; a reader racing an O_APPEND writer sees only
# a prefix of the final data; a reader racing an overwriter sees only old or
# new bytes; many processes creating files in one directory.
. "$(dirname "$0")/lib.sh"
standard_prereqs
setup_vault

expect_ok "4 concurrent writers, aligned and unaligned regions sharing blocks: every region intact" '
import time
p = argv[0]
W, J = 4, 150
ZONE = 4 * J * 4096 + 12345            # unaligned zone start
REG = 1000
os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o644))
r, w = os.pipe()
pids = []
for k in range(W):
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(w)
            os.read(r, 1)                  # start together
            fd = os.open(p, os.O_WRONLY)
            for j in range(J):
                off = (j * W + k) * 4096
                write_all(fd, pattern(k + 1, off, 4096), off)
                off = ZONE + (j * W + k) * REG
                write_all(fd, pattern(k + 1, off, REG), off)
            os.close(fd)
        except BaseException as e:
            sys.stderr.write("writer %d: %r\n" % (k, e))
            code = 1
        os._exit(code)
    pids.append(pid)
os.close(r)
time.sleep(0.2)
os.write(w, b"gogo")
os.close(w)
for pid in pids:
    _, st = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(st) == 0, "a writer failed"
size = ZONE + J * W * REG
assert os.stat(p).st_size == size, (os.stat(p).st_size, size)
data = pread_file(p, 0, size)
for j in range(J):
    for k in range(W):
        off = (j * W + k) * 4096
        check_bytes(data[off:off + 4096], pattern(k + 1, off, 4096), "aligned block of writer %d" % k, off)
        off = ZONE + (j * W + k) * REG
        check_bytes(data[off:off + REG], pattern(k + 1, off, REG), "unaligned region of writer %d" % k, off)
check_bytes(data[4 * J * 4096:ZONE], bytes(ZONE - 4 * J * 4096), "gap stays zero", 4 * J * 4096)
' "$M/shared"

expect_ok "a reader racing an O_APPEND writer only ever sees a prefix of the final data" '
import random, time
p = argv[0]
TOTAL = 3 * 1024 * 1024
SEED = 77
os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
pid = os.fork()
if pid == 0:
    code = 0
    try:
        rng = random.Random(5)
        fd = os.open(p, os.O_WRONLY | os.O_APPEND)
        off = 0
        while off < TOTAL:
            n = min(rng.choice([1, 100, 4095, 4096, 4097, 9000, 30000]), TOTAL - off)
            assert os.write(fd, pattern(SEED, off, n)) == n
            off += n
        os.close(fd)
    except BaseException as e:
        sys.stderr.write("appender: %r\n" % e)
        code = 1
    os._exit(code)
reads = 0
last = 0
fd = os.open(p, os.O_RDONLY)
while True:
    done = os.waitpid(pid, os.WNOHANG)[0] != 0
    data = read_all(fd, TOTAL + 10, 0)
    assert len(data) >= last, "file shrank from %d to %d" % (last, len(data))
    last = len(data)
    check_bytes(data, pattern(SEED, 0, len(data)), "concurrent read #%d" % reads)
    reads += 1
    if done:
        break
os.close(fd)
assert last == TOTAL, (last, TOTAL)
assert reads >= 2, reads
' "$M/appended"

expect_ok "readers racing an overwriter see, byte for byte, only the old or the new data" '
import numpy as np
p = argv[0]
OFF, N = 5000, 200000                  # unaligned region over ~50 blocks
A = np.frombuffer(pattern(1, OFF, N), dtype=np.uint8)
B = np.frombuffer(pattern(2, OFF, N), dtype=np.uint8)
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
write_all(fd, A.tobytes(), OFF)
os.close(fd)
pid = os.fork()
if pid == 0:
    code = 0
    try:
        wfd = os.open(p, os.O_WRONLY)
        for i in range(40):
            src = B if i % 2 == 0 else A
            # rewrite in chunks of varied size so block updates interleave with reads
            pos = 0
            while pos < N:
                n = min(7777, N - pos)
                write_all(wfd, src[pos:pos + n].tobytes(), OFF + pos)
                pos += n
        os.close(wfd)
    except BaseException as e:
        sys.stderr.write("overwriter: %r\n" % e)
        code = 1
    os._exit(code)
rfd = os.open(p, os.O_RDONLY)
reads = 0
while True:
    done = os.waitpid(pid, os.WNOHANG)[0] != 0
    got = np.frombuffer(read_all(rfd, N, OFF), dtype=np.uint8)
    assert len(got) == N, len(got)
    bad = np.nonzero((got != A) & (got != B))[0]
    assert len(bad) == 0, "read #%d: byte %d is neither old nor new" % (reads, OFF + int(bad[0]))
    reads += 1
    if done:
        break
os.close(rfd)
final = np.frombuffer(pread_file(p, OFF, N), dtype=np.uint8)
assert (final == A).all(), "final content is not the last version written"
assert os.stat(p).st_size == OFF + N
' "$M/overwritten"

expect_ok "4 processes appending records with O_APPEND at once: every record lands whole" '
p = argv[0]
os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
REC = 613                                    # odd size: records straddle blocks
N = 300
def rec(k, i):
    head = ("P%d-%05d:" % (k, i)).encode()
    return head + pattern(k * 100000 + i, 0, REC - len(head) - 1).hex().encode()[:REC - len(head) - 1] + b"\n"
def appender(k):
    def run(ch):
        ch.recv()
        fd = os.open(p, os.O_WRONLY | os.O_APPEND)
        for i in range(N):
            r = rec(k, i)
            assert os.write(fd, r) == len(r)
        os.close(fd)
        ch.send("done")
    return run
peers = [fork_child(appender(k)) for k in range(4)]
for c in peers:
    c.send("go")
for c in peers:
    assert c.recv(timeout=120) == "done"
    assert c.wait() == 0
data = open(p, "rb").read()
assert len(data) == 4 * N * REC, (len(data), 4 * N * REC)
seen = set()
for j in range(4 * N):
    r = data[j * REC:(j + 1) * REC]
    k, i = int(r[1:2]), int(r[3:8])
    assert r == rec(k, i), "record %d is damaged: %r" % (j, r[:40])
    seen.add((k, i))
assert len(seen) == 4 * N, len(seen)
' "$M/appendlog"

expect_ok "8 processes creating 200 files each in one directory: all there, all intact" '
d = argv[0]
os.mkdir(d)
pids = []
for k in range(8):
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            for i in range(200):
                with open(os.path.join(d, "p%d-%d" % (k, i)), "wb") as f:
                    f.write(pattern(k * 1000 + i, 0, 100 + i))
        except BaseException as e:
            sys.stderr.write("creator %d: %r\n" % (k, e))
            code = 1
        os._exit(code)
    pids.append(pid)
for pid in pids:
    _, st = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(st) == 0
names = os.listdir(d)
assert len(names) == 1600 and len(set(names)) == 1600, len(names)
for k in range(8):
    for i in range(0, 200, 7):
        verify_pattern(os.path.join(d, "p%d-%d" % (k, i)), 0, 100 + i, k * 1000 + i)
' "$M/many"

remount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"
expect_ok "after remount: the concurrently written files are intact" '
p = argv[0]
W, J, REG = 4, 150, 1000
ZONE = 4 * J * 4096 + 12345
for j in range(0, J, 5):
    for k in range(W):
        verify_pattern(p, (j * W + k) * 4096, 4096, k + 1)
        verify_pattern(p, ZONE + (j * W + k) * REG, REG, k + 1)
verify_pattern(argv[1], 0, 3 * 1024 * 1024, 77)
verify_pattern(argv[2], 5000, 200000, 1)
' "$M/shared" "$M/appended" "$M/overwritten"

done_testing
