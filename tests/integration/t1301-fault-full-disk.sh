#!/bin/bash
# The backing directory on a full filesystem: a 32 MiB ext4 image, loop-mounted under the scratch
# directory (the audit log is kept elsewhere, with --audit-db).
#
#   - files of many sizes are written and fsynced; then one file is written in 1 MiB, 64 KiB,
#     4 KiB, 100 and 1-byte steps until the filesystem is full: every failing write fails with
#     ENOSPC (never EIO, never a short count that lies), and small files are created until that
#     fails too (ENOSPC at create or at write);
#   - on the full filesystem: an append to a file whose size is not a multiple of 4096, a
#     truncate up, fallocate and an overwrite in place either succeed or fail with ENOSPC, and in
#     both cases the file holds what was acknowledged (its old content, or the new one);
#   - the daemon keeps serving; after a remount (cold page cache) every file decrypts and holds
#     exactly what was acknowledged, and no file reads EIO;
#   - deleting a file through the mount frees space and writing works again (new files, the
#     append and the truncate that failed before);
#   - the audit log (kept on the big filesystem) verifies; everything is unmounted and the loop
#     device detached at the end.
# With T1301_OVERLAY=1 (t1303) the vault lies on an overlayfs whose upper layer is that image:
# a filesystem custodyfs does not know to report a full disk at write time, so it reserves a
# growing file's new space with fallocate before writing it, and the same checks hold.
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools mkfs.ext4 losetup mount umount
T_START=$(date +%s)

IMG=$SCRATCH/small.img
SMALL=$SCRATCH/small
LOOPDEV=
KEY=$SCRATCH/key
B=$SMALL/vault
M=$SCRATCH/mnt
AUDIT=$SCRATCH/audit.db
STATE=$SCRATCH/state.json
OVERLAY=${T1301_OVERLAY:-0}
IMGMNT=$SCRATCH/image        # where the image is mounted when $SMALL is an overlay on it

# Our own cleanup first (FUSE mount, then the ext4 mount, then the loop device), then lib.sh's.
_full_cleanup() {
    local rc=$?
    set +e
    if mountinfo_has "$M"; then
        unmount_vault "$M" >/dev/null 2>&1 || fusermount3 -u -z "$M" 2>/dev/null
    fi
    if mountinfo_has "$SMALL"; then
        umount "$SMALL" 2>/dev/null || umount -l "$SMALL" 2>/dev/null
    fi
    if mountinfo_has "$IMGMNT"; then
        umount "$IMGMNT" 2>/dev/null || umount -l "$IMGMNT" 2>/dev/null
    fi
    if [ -n "$LOOPDEV" ] && losetup "$LOOPDEV" 2>/dev/null | grep -q -F "$IMG"; then
        losetup -d "$LOOPDEV" 2>/dev/null
    fi
    ( exit "$rc" )
    _cleanup
}
trap _full_cleanup EXIT

truncate -s 32M "$IMG" || bail "cannot create $IMG"
mkfs.ext4 -q -F -b 4096 -m 0 -L custodyfull "$IMG" > "$SCRATCH/mkfs.out" 2>&1 \
    || bail "mkfs.ext4 failed: $(cat "$SCRATCH/mkfs.out")"
LOOPDEV=$(losetup --find --show "$IMG" 2>&1) || bail "losetup failed: $LOOPDEV"
mkdir -p "$SMALL"
if [ "$OVERLAY" = 1 ]; then
    mkdir -p "$IMGMNT" "$SCRATCH/lower"
    mount -t ext4 "$LOOPDEV" "$IMGMNT" || bail "cannot mount $LOOPDEV on $IMGMNT"
    mkdir -p "$IMGMNT/upper" "$IMGMNT/work"
    mount -t overlay overlay \
        -o "lowerdir=$SCRATCH/lower,upperdir=$IMGMNT/upper,workdir=$IMGMNT/work" "$SMALL" \
        || bail "cannot mount an overlayfs on $SMALL"
    FSDESC="an overlayfs on a 32 MiB ext4 filesystem"
else
    mount -t ext4 "$LOOPDEV" "$SMALL" || bail "cannot mount $LOOPDEV on $SMALL"
    FSDESC="a 32 MiB ext4 filesystem"
fi
new_keyfile "$KEY"
make_vault "$B" "$KEY" || bail "custodyctl init on the small filesystem failed: $(cat "$SCRATCH/init.err")"
mount_vault "$B" "$M" --keyfile "$KEY" --audit-db "$AUDIT" \
    || bail "mount failed: $(cat "$SCRATCH/mount.err")"
pass "a vault on $FSDESC mounts (audit log elsewhere)"

# Which way a growing file's new space is secured: reserved with fallocate first on a filesystem
# not known to report a full disk at write time (the overlay), only written first on ext4.
require_tools strace
daemon=$(daemon_pid_for "$M")
strace -f -qq -e trace=fallocate,pwrite64 -o "$SCRATCH/strace.out" -p "$daemon" &
tracer=$!
for _ in $(seq 1 50); do grep -q TracerPid:.[1-9] "/proc/$daemon/status" && break; sleep 0.1; done
head -c 20000 /dev/urandom > "$M/probe"
sleep 0.3
kill "$tracer" 2>/dev/null
wait "$tracer" 2>/dev/null
check "the trace saw the daemon write the file (pwrite64)" grep -q "pwrite64(" "$SCRATCH/strace.out"
if [ "$OVERLAY" = 1 ]; then
    check "on the overlay, a growing write reserves its new space with fallocate" \
        grep -q "fallocate(.*FALLOC_FL_KEEP_SIZE" "$SCRATCH/strace.out"
else
    check_eq "on ext4, a growing write calls no fallocate" "" "$(grep fallocate "$SCRATCH/strace.out")"
fi
rm -f "$M/probe"

cat > "$SCRATCH/full.py" <<'PYEOF'
import errno, json, os, sys
sys.path.insert(0, os.environ["LIB_DIR"])
from helpers import pattern, first_diff

m, statef, phase = sys.argv[1], sys.argv[2], sys.argv[3]
state = json.load(open(statef)) if os.path.exists(statef) else {"files": {}, "info": {}}
files = state["files"]          # path -> list of alternatives; alternative = list of segments
info = state["info"]


def out(kind, desc, detail=""):
    print("%s\t%s\t%s" % (kind, desc, str(detail).replace("\t", " ").replace("\n", " | ")[:2500]))


def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def content(alt):
    """Bytes of an alternative: segments ["p", seed, off, len] (pattern at file offset off) or
    ["z", len] (zeros)."""
    parts = []
    for s in alt:
        parts.append(pattern(s[1], s[2], s[3]) if s[0] == "p" else bytes(s[1]))
    return b"".join(parts)


def read_whole(path):
    fd = os.open(path, os.O_RDONLY)
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


def write_new(name, seed, size, fsync=True):
    fd = os.open(m + name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        data = pattern(seed, 0, size)
        off = 0
        while off < size:
            off += os.pwrite(fd, data[off:off + (1 << 20)], off)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    files[name] = [[["p", seed, 0, size]]]


def save():
    json.dump(state, open(statef + ".new", "w"))
    os.replace(statef + ".new", statef)


def bavail():
    sv = os.statvfs(m)
    return sv.f_bavail * sv.f_frsize


if phase == "setup":
    os.mkdir(m + "/keep")
    sizes = [1, 100, 4095, 4096, 4097, 10000, 65536 + 77, 300000, 1 << 20, 3 * (1 << 20) + 5]
    for i, size in enumerate(sizes):
        write_new("/keep/k%d" % i, 1000 + i, size)
    write_new("/grow", 77, 6000)          # size not a multiple of 4096: its last block is partial
    write_new("/trunc", 78, 6000)
    write_new("/mid", 79, 3 * 4096 + 500)
    write_new("/alloc", 80, 9000)
    out("PASS", "files of %d sizes written and fsynced before the filesystem fills" % len(sizes))
    save()

elif phase == "fill":
    name = "/filler"
    fd = os.open(m + name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    size, errs, shorts, tails = 0, {}, [], {}

    def tail_ok():
        """Do the last acknowledged bytes of the filler still read back?"""
        rfd = os.open(m + name, os.O_RDONLY)
        try:
            os.posix_fadvise(rfd, 0, 0, os.POSIX_FADV_DONTNEED)   # from the daemon, not the cache
            off = max(0, size - 6000)
            got = b""
            while len(got) < size - off:       # a read may stop short before a failing block
                chunk = os.pread(rfd, size - off - len(got), off + len(got))
                if not chunk:
                    break
                got += chunk
            return "OK" if got == pattern(99, off, size - off) else "WRONG (%d bytes)" % len(got)
        except OSError as e:
            return ename(e)
        finally:
            os.close(rfd)

    for step in (1 << 20, 65536, 4096, 100, 1):
        while True:
            try:
                n = os.pwrite(fd, pattern(99, size, step), size)
            except OSError as e:
                errs[step] = ename(e)
                tails[step] = tail_ok()
                break
            if n != step:
                shorts.append((step, n))
            size += n
            if n == 0:
                errs[step] = "returned 0"
                break
    try:
        os.fsync(fd)
        fsync_res = "OK"
    except OSError as e:
        fsync_res = ename(e)
    os.close(fd)
    files[name] = [[["p", 99, 0, size]]]
    info["filler"] = size
    info["fill_errors"] = errs
    out("INFO", "the filler file took %d bytes before ENOSPC; errors per write size %s; short "
        "writes %s; statfs free after: %d bytes" % (size, errs, shorts, bavail()))
    out("INFO", "after each failed write (by size of the write), the last 6000 acknowledged "
        "bytes of the filler read back: %s" % tails)
    out("PASS" if all(v == "OK" for v in tails.values()) else "FAIL",
        "after every failed write the acknowledged end of the file still reads back", tails)
    bad = {k: v for k, v in errs.items() if v != "ENOSPC"}
    out("PASS" if not bad and len(errs) == 5 else "FAIL",
        "writes to a full filesystem fail with ENOSPC (1 MiB, 64 KiB, 4 KiB, 100 B, 1 B)", errs)
    out("PASS" if size > 10 << 20 else "FAIL",
        "the filler took most of the filesystem (%d bytes)" % size)
    out("PASS" if fsync_res == "OK" else "FAIL", "fsync of the filler on the full filesystem "
        "returns success", fsync_res)
    # small files until that fails too
    created, failures = 0, {}
    for i in range(300):
        nm = "/small%03d" % i
        seed = 5000 + i
        try:
            fd = os.open(m + nm, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as e:
            failures["create " + ename(e)] = failures.get("create " + ename(e), 0) + 1
            if os.path.lexists(m + nm):
                files[nm] = [[]]            # left behind by the failed create: must be empty
                out("INFO", "the create of %s failed with %s but left an empty file %s behind"
                    % (nm, ename(e), nm))
            break
        # from here on the file exists: empty, or a prefix of its pattern
        files[nm] = [[["p", seed, 0, k]] for k in (0, 3000)]
        try:
            n = os.pwrite(fd, pattern(seed, 0, 3000), 0)
            if n != 3000:
                files[nm] = [[["p", seed, 0, n]]]
                failures["short %d" % n] = failures.get("short %d" % n, 0) + 1
                os.close(fd)
                break
            os.close(fd)
            files[nm] = [[["p", seed, 0, 3000]]]
            created += 1
        except OSError as e:
            failures["write " + ename(e)] = failures.get("write " + ename(e), 0) + 1
            files[nm] = [[["p", seed, 0, 0]]]
            try:
                os.close(fd)
            except OSError as e2:
                failures["close " + ename(e2)] = 1
            break
    info["smallfiles"] = created
    out("INFO", "%d small files of 3000 bytes fitted; then %s" % (created, failures))
    badf = [k for k in failures if not k.endswith("ENOSPC")]
    out("PASS" if failures and not badf else "FAIL",
        "creating files on the full filesystem fails with ENOSPC (at create or at write)",
        failures)
    save()

elif phase == "fullops":
    res = {}
    # append to a file whose last block is partial
    try:
        fd = os.open(m + "/grow", os.O_WRONLY | os.O_APPEND)
        try:
            n = os.write(fd, pattern(77, 6000, 200000))
            res["append"] = "wrote %d" % n
            files["/grow"] = [[["p", 77, 0, 6000 + n]]]
        finally:
            os.close(fd)
    except OSError as e:
        res["append"] = ename(e)
    # truncate up by 50000 bytes (a partial last block, then sealed zeros)
    try:
        os.truncate(m + "/trunc", 56000)
        res["truncate-up"] = "OK"
        files["/trunc"] = [[["p", 78, 0, 6000], ["z", 50000]]]
    except OSError as e:
        res["truncate-up"] = ename(e)
    # fallocate far beyond the free space
    try:
        fd = os.open(m + "/alloc", os.O_WRONLY)
        try:
            os.posix_fallocate(fd, 0, 64 << 20)
            res["fallocate"] = "OK"
            files["/alloc"] = [[["p", 80, 0, 9000], ["z", (64 << 20) - 9000]]]
        finally:
            os.close(fd)
    except OSError as e:
        res["fallocate"] = ename(e)
    # overwrite the first two whole blocks in place: no new space needed in the backing file
    try:
        fd = os.open(m + "/mid", os.O_WRONLY)
        try:
            n = os.pwrite(fd, pattern(81, 0, 8192), 0)
            res["overwrite"] = "wrote %d" % n
            if n == 8192:
                files["/mid"] = [[["p", 81, 0, 8192], ["p", 79, 8192, 3 * 4096 + 500 - 8192]]]
        finally:
            os.close(fd)
    except OSError as e:
        res["overwrite"] = ename(e)
    info["fullops"] = res
    out("INFO", "on the full filesystem: %s" % res)
    for op in ("append", "truncate-up", "fallocate"):
        out("PASS" if res[op] in ("ENOSPC", "OK") or res[op].startswith("wrote") else "FAIL",
            "on the full filesystem, %s succeeds or fails with ENOSPC (got %s)" % (op, res[op]))
    out("PASS" if res["overwrite"] in ("ENOSPC", "wrote 8192") else "FAIL",
        "on the full filesystem, an overwrite in place succeeds or fails with ENOSPC (got %s)"
        % res["overwrite"])
    save()

elif phase == "verify":
    label = sys.argv[4]
    bad, nbytes = [], 0
    for path, alts in sorted(files.items()):
        try:
            got = read_whole(m + path)
        except OSError as e:
            bad.append("%s: read fails with %s" % (path, ename(e)))
            continue
        nbytes += len(got)
        wants = [content(a) for a in alts]
        if not any(got == w for w in wants):
            w = wants[-1]
            bad.append("%s: %d bytes match none of %d acknowledged versions (sizes %s); first "
                       "difference from the last at %d" % (path, len(got), len(wants),
                                                            [len(x) for x in wants],
                                                            first_diff(got, w)))
    out("PASS" if not bad else "FAIL",
        "%s: every file (%d, %d bytes) holds exactly what was acknowledged" %
        (label, len(files), nbytes), bad[:12])
    # every file in the mount reads without EIO
    eio = []
    for root, dirs, fnames in os.walk(m):
        for f in fnames:
            p = os.path.join(root, f)
            try:
                read_whole(p)
            except OSError as e:
                eio.append("%s: %s" % (p[len(m):], ename(e)))
    out("PASS" if not eio else "FAIL", "%s: no file in the mount fails to read" % label, eio[:12])

elif phase == "free":
    before = bavail()
    os.unlink(m + "/filler")
    del files["/filler"]
    after = bavail()
    out("PASS" if after - before > 10 << 20 else "FAIL",
        "deleting the filler through the mount frees its space (statfs free %d -> %d)"
        % (before, after))
    res = {}
    try:
        write_new("/after", 123, 2 << 20)
        res["new file"] = "OK"
    except OSError as e:
        res["new file"] = ename(e)
    try:
        fd = os.open(m + "/grow", os.O_WRONLY | os.O_APPEND)
        size = os.fstat(fd).st_size
        n = os.write(fd, pattern(77, size, 20000))
        os.fsync(fd)
        os.close(fd)
        files["/grow"] = [[["p", 77, 0, size + n]]]
        res["append"] = "OK" if n == 20000 else "short %d" % n
    except OSError as e:
        res["append"] = ename(e)
    try:
        size = os.stat(m + "/trunc").st_size
        os.truncate(m + "/trunc", size + 50000)
        files["/trunc"] = [alt + [["z", 50000]] for alt in files["/trunc"]]
        res["truncate-up"] = "OK"
    except OSError as e:
        res["truncate-up"] = ename(e)
    try:
        for i in range(20):
            write_new("/again%02d" % i, 7000 + i, 30000 + i)
        res["small files"] = "OK"
    except OSError as e:
        res["small files"] = ename(e)
    out("PASS" if all(v == "OK" for v in res.values()) else "FAIL",
        "after freeing space, writing works again (new file, append, truncate up, small files)",
        res)
    save()
PYEOF
export LIB_DIR

run_full() {
    local kind desc detail
    while IFS=$'\t' read -r kind desc detail; do
        case $kind in
            PASS) pass "$desc" ;;
            FAIL) fail "$desc" "$detail" ;;
            EXIT) [ "$desc" = 0 ] || fail "full.py $* exits 0" "exit status $desc" ;;
            *) printf '# %s\n' "$desc" ;;
        esac
    done < <(timeout -k 5 "$PY_TIMEOUT" "$PY" "$SCRATCH/full.py" "$M" "$STATE" "$@" \
                 2> "$SCRATCH/full.err"; echo "EXIT	$?")
    if [ -s "$SCRATCH/full.err" ]; then
        fail "full.py $* ran without errors" "$(head -c 2000 "$SCRATCH/full.err")"
    fi
}

daemon=$(daemon_pid_for "$M")
run_full setup
run_full fill
printf '# backing filesystem after filling: %s\n' "$(df -B1 --output=avail,used "$SMALL" | tail -1)"
for f in grow trunc alloc mid; do
    printf '# before: backing %s is %s bytes\n' "$f" "$(stat -c %s "$B/$f")"
done
run_full fullops
for f in grow trunc alloc mid; do
    printf '# after: backing %s is %s bytes\n' "$f" "$(stat -c %s "$B/$f")"
done
run_full verify "full filesystem, still mounted"
if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
    pass "the daemon is still running on the full filesystem"
else
    fail "the daemon is still running on the full filesystem" "pid $daemon is gone"
fi
# health: a stat and a directory listing
check "the mount still answers (ls)" ls "$M/keep"

unmount_vault "$M" || bail "unmount on the full filesystem failed"
pass "the vault unmounts while its filesystem is full"
mount_vault "$B" "$M" --keyfile "$KEY" --audit-db "$AUDIT" \
    || bail "mounting again on the full filesystem failed: $(cat "$SCRATCH/mount.err")"
pass "the vault mounts again while its filesystem is full"
run_full verify "full filesystem, after a remount (cold cache)"
run_full free
run_full verify "after freeing space"
unmount_vault "$M" || bail "unmount after freeing space failed"
mount_vault "$B" "$M" --keyfile "$KEY" --audit-db "$AUDIT" || bail "last mount failed"
run_full verify "after freeing space and a remount"
unmount_vault "$M" || bail "final unmount failed"

out=$(timeout "$CMD_TIMEOUT" "$CUSTODYCTL" verify "$B" --audit-db "$AUDIT" 2>&1); rc=$?
check_eq "custodyctl verify --audit-db exits 0" 0 "$rc" || printf '#   %s\n' "$out"
printf '# %s\n' "$out"

# tear down the small filesystem ourselves and check that nothing is left
if [ "$OVERLAY" = 1 ]; then
    umount "$SMALL" && pass "the overlay unmounts" || fail "the overlay unmounts"
    umount "$IMGMNT" && pass "the ext4 image unmounts" || fail "the ext4 image unmounts"
else
    umount "$SMALL" && pass "the ext4 image unmounts" || fail "the ext4 image unmounts"
fi
losetup -d "$LOOPDEV" && pass "the loop device is detached" || fail "the loop device is detached"
for _ in $(seq 1 20); do losetup -j "$IMG" | grep -q . || break; sleep 0.2; done
check_eq "no loop device is left on the image" "" "$(losetup -j "$IMG")"
LOOPDEV=
printf '# run time: %d s\n' $(($(date +%s) - T_START))
done_testing
