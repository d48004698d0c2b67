#!/bin/bash
# POSIX fcntl record locks and flock locks seen across processes, and shared
# writable mmap (write through the map, msync, read back with read(), after a
# remount too); private mappings do not write through.
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools flock
setup_vault

"$PY" "$HELPERS_PY" write "$M/lockme" 0 10000 91

# --- fcntl (POSIX) locks ----------------------------------------------------------------
# lockf(fd, cmd, len, start) uses F_SETLK; a conflict is EAGAIN or EACCES.
expect_ok "fcntl: a write lock held by one process blocks another (F_GETLK shows the owner)" '
import fcntl, struct
p = argv[0]
fd = os.open(p, os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 100, 0)      # bytes [0,100)
def child(ch):
    cfd = os.open(p, os.O_RDWR)
    res = [errname(fcntl.lockf, cfd, fcntl.LOCK_EX | fcntl.LOCK_NB, 100, 0),
           errname(fcntl.lockf, cfd, fcntl.LOCK_SH | fcntl.LOCK_NB, 10, 50)]
    fmt = "hhqqi"                        # struct flock: type, whence, start, len, pid
    t, _, _, _, holder = struct.unpack(fmt, fcntl.fcntl(cfd, fcntl.F_GETLK, struct.pack(fmt, fcntl.F_WRLCK, 0, 0, 100, 0)))
    res.append("WRLCK" if t == fcntl.F_WRLCK else "type%d" % t)
    res.append("holder-is-parent" if holder == os.getppid() else "holder=%d" % holder)
    res.append(errname(fcntl.lockf, cfd, fcntl.LOCK_EX | fcntl.LOCK_NB, 100, 200))   # [200,300) is free
    ch.send(" ".join(res))
    ch.recv()                            # the parent has unlocked
    ch.send(errname(fcntl.lockf, cfd, fcntl.LOCK_EX | fcntl.LOCK_NB, 100, 0))
peer = fork_child(child)
got = peer.recv().replace("EACCES", "EAGAIN")
assert got == "EAGAIN EAGAIN WRLCK holder-is-parent OK", "second process saw: " + got
fcntl.lockf(fd, fcntl.LOCK_UN, 100, 0)
peer.send("unlocked")
got = peer.recv()
assert got == "OK", "after the holder unlocked, the lock attempt gave " + got
assert peer.wait() == 0
' "$M/lockme"

expect_ok "fcntl: read locks are shared between processes, a write lock then conflicts" '
import fcntl
p = argv[0]
fd = os.open(p, os.O_RDONLY)
fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 0, 0)
def child(ch):
    cfd = os.open(p, os.O_RDWR)
    a = errname(fcntl.lockf, cfd, fcntl.LOCK_SH | fcntl.LOCK_NB, 0, 0)
    fcntl.lockf(cfd, fcntl.LOCK_UN, 0, 0)
    b = errname(fcntl.lockf, cfd, fcntl.LOCK_EX | fcntl.LOCK_NB, 0, 0)
    ch.send(a + " " + b)
peer = fork_child(child)
got = peer.recv().replace("EACCES", "EAGAIN")
assert got == "OK EAGAIN", "read lock / write lock attempts gave: " + got
assert peer.wait() == 0
' "$M/lockme"

expect_ok "fcntl: a blocking F_SETLKW waits until the holder releases" '
import fcntl, time
p = argv[0]
fd = os.open(p, os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 0, 0)
def child(ch):
    cfd = os.open(p, os.O_RDWR)
    ch.send("start")
    t = time.time()
    fcntl.lockf(cfd, fcntl.LOCK_EX, 0, 0)
    ch.send("%.2f" % (time.time() - t))
peer = fork_child(child)
peer.recv()
time.sleep(1.0)
fcntl.lockf(fd, fcntl.LOCK_UN, 0, 0)
waited = float(peer.recv())
assert waited >= 0.8, "F_SETLKW returned after %.2fs while the lock was held" % waited
assert peer.wait() == 0
' "$M/lockme"

# --- flock -----------------------------------------------------------------------------------
expect_ok "flock: an exclusive lock blocks LOCK_EX and LOCK_SH of another process until released" '
import fcntl
p = argv[0]
fd = os.open(p, os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
def child(ch):
    cfd = os.open(p, os.O_RDONLY)
    ch.send(errname(fcntl.flock, cfd, fcntl.LOCK_EX | fcntl.LOCK_NB) + " " +
            errname(fcntl.flock, cfd, fcntl.LOCK_SH | fcntl.LOCK_NB))
    ch.recv()
    ch.send(errname(fcntl.flock, cfd, fcntl.LOCK_EX | fcntl.LOCK_NB))
peer = fork_child(child)
got = peer.recv()
assert got == "EAGAIN EAGAIN", "while held exclusively, another process got: " + got
fcntl.flock(fd, fcntl.LOCK_UN)
peer.send("released")
got = peer.recv()
assert got == "OK", "after release, LOCK_EX gave " + got
assert peer.wait() == 0
' "$M/lockme"
expect_ok "flock: shared locks are shared between processes" '
import fcntl
p = argv[0]
fd = os.open(p, os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
def child(ch):
    cfd = os.open(p, os.O_RDONLY)
    a = errname(fcntl.flock, cfd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    fcntl.flock(cfd, fcntl.LOCK_UN)
    b = errname(fcntl.flock, cfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    ch.send(a + " " + b)
peer = fork_child(child)
got = peer.recv()
assert got == "OK EAGAIN", "LOCK_SH / LOCK_EX next to a shared lock gave: " + got
assert peer.wait() == 0
' "$M/lockme"

# the flock(1) tool in another process sees a lock held by this shell
exec 7< "$M/lockme"
flock -x 7
flock -n -x "$M/lockme" true; rc=$?
check_eq "flock(1) -n in another process fails while this shell holds the lock" 1 "$rc"
flock -u 7
flock -n -x "$M/lockme" true; rc=$?
check_eq "flock(1) -n succeeds once the lock is released" 0 "$rc"
exec 7<&-

# --- mmap ----------------------------------------------------------------------------------------
expect_ok "mmap MAP_SHARED writable: writes through the map + msync are seen by read()" '
import mmap
p = argv[0]
size = 3 * 4096 + 100
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
write_all(fd, pattern(101, 0, size), 0)
m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
check_bytes(m[0:size], pattern(101, 0, size), "initial content through the map")
ref = bytearray(pattern(101, 0, size))
for off, n in ((10, 5), (4090, 12), (7000, 5000), (size - 7, 7)):
    data = pattern(102, off, n)
    m[off:off + n] = data
    ref[off:off + n] = data
m.flush()
other = os.open(p, os.O_RDONLY)
check_bytes(read_all(other, size, 0), bytes(ref), "read() after msync")
os.close(other)
m.close()
os.close(fd)
assert os.stat(p).st_size == size
with open(argv[1], "wb") as f:
    f.write(ref)
' "$M/mapped" "$SCRATCH/mapped.ref"

expect_ok "mmap MAP_PRIVATE writes do not reach the file" '
import mmap
p = argv[0]
fd = os.open(p, os.O_RDWR)
m = mmap.mmap(fd, 4096, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
m[0:10] = b"PRIVATE!!!"
m.close()
os.close(fd)
check_bytes(pread_file(p, 0, 4096), open(argv[1], "rb").read()[:4096], "after private write")
' "$M/mapped" "$SCRATCH/mapped.ref"

expect_ok "mmap read-only of a file written with write()" '
import mmap
p = argv[0]
with open(p, "rb") as f:
    m = mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED, mmap.PROT_READ)
    check_bytes(m[:], pattern(91, 0, 10000), "mapped content")
    m.close()
' "$M/lockme"

remount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"
check "after remount: the mmap-written file holds the mapped writes" cmp "$M/mapped" "$SCRATCH/mapped.ref"

done_testing
