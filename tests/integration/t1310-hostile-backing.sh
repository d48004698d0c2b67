#!/bin/bash
# Hostile content planted in the backing directory by someone who can write to it, while the
# vault is unmounted and while it is mounted (including the moment right after the kernel cached
# the old entry, so that requests reach the daemon for an entry that changed under it):
#
#   1. truncated headers (every length 1..127, and 129..156), wrong magic, version, cipher, block
#      shift, flags, epoch, file ID, tag, an all-zero header, plain text: every open for reading
#      or writing fails with EIO, the backing bytes stay as planted, each failure is audited;
#      an empty (0-byte) backing file is an empty file;
#   2. a file copied from another vault: EIO, backing unchanged;
#   3. symbolic links: absolute (to a file outside, to /etc/shadow), relative ones that climb out
#      of the backing directory, a link loop, a dangling link, and a backing directory replaced
#      by a link to an outside directory: the mount shows links with their target strings;
#      O_NOFOLLOW opens fail with ELOOP; following resolves relative to the mount's place (a decoy
#      next to the mount), never to the backing directory's place; and through a stale kernel
#      cache (entry replaced right after it was looked up) no request of root or of another user
#      (open, truncate, chmod, chown, utimes, xattrs, create, unlink, rename, mkdir, link,
#      listing) reaches the outside file or directory;
#   4. FIFOs and device nodes (also a block device: a loop device over a scratch file): opening
#      them through the mount fails or behaves as a FIFO, nothing hangs, no device data is
#      returned, and nothing is ever written to a device;
#   5. file names with newlines, control bytes, invalid UTF-8, 255 bytes, shell and format
#      metacharacters: created, listed, read, renamed and removed through the mount, planted in
#      the backing directory, and recorded in the audit log (custodyctl log --format json gives
#      valid JSON that names them exactly);
#   6. names with libfuse's ".fuse_hidden" prefix (planted or created through the mount) are
#      not a way around the permission checks and the audit log;
# After every case the daemon (same pid) still serves a known file.  At the end: an inotify
# watcher on the outside directory saw no event, the outside file and /etc/shadow are unchanged
# (content, size, mode, owner, times), the loop device is detached, and the audit log verifies.
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools setpriv losetup mknod mkfifo sha256sum
T_START=$(date +%s)
export LIB_DIR
# This script plants format-1 headers (128 bytes) byte by byte, so both its vaults (the
# second one supplies a foreign header) are format 1; t0610-crypto-format2.sh covers
# format 2 (the default).
VAULT_FILE_FORMAT=1

KEY=$SCRATCH/key
B=$SCRATCH/backing
M=$SCRATCH/deep/mnt
OUT=$SCRATCH/outside          # what must never be reached
DECOY=$SCRATCH/deep/outside   # where a relative link resolves from the mount's place
LOOPIMG=$SCRATCH/loopdisk
LOOPDEV=
NOBODY=65534

_hostile_cleanup() {
    local rc=$?
    set +e
    [ -n "${WATCHER:-}" ] && kill "$WATCHER" 2>/dev/null
    if mountinfo_has "$M"; then
        unmount_vault "$M" >/dev/null 2>&1 || fusermount3 -u -z "$M" 2>/dev/null
    fi
    if [ -n "$LOOPDEV" ] && losetup "$LOOPDEV" 2>/dev/null | grep -q -F "$LOOPIMG"; then
        losetup -d "$LOOPDEV" 2>/dev/null
    fi
    ( exit "$rc" )
    _cleanup
}
trap _hostile_cleanup EXIT

new_keyfile "$KEY"
make_vault "$B" "$KEY" || bail "custodyctl init failed: $(cat "$SCRATCH/init.err")"
mount_vault "$B" "$M" --keyfile "$KEY" || bail "mount failed: $(cat "$SCRATCH/mount.err")"
py 'pwrite_pattern(sys.argv[1], 0, 10000, 1); pwrite_pattern(sys.argv[2], 0, 5000, 2)' "$M/health" "$M/ref" \
    || bail "cannot write the reference files"
unmount_vault "$M" || bail "unmount failed"

# a second vault, for a header that belongs elsewhere
make_vault "$SCRATCH/backing2" "$SCRATCH/key2" || bail "init of the second vault failed"
mount_vault "$SCRATCH/backing2" "$SCRATCH/mnt2" --keyfile "$SCRATCH/key2" || bail "mount 2 failed"
py 'pwrite_pattern(sys.argv[1], 0, 5000, 2)' "$SCRATCH/mnt2/foreign" || bail "write in vault 2 failed"
unmount_vault "$SCRATCH/mnt2" || bail "unmount 2 failed"

# the outside world: a secret next to the backing directory, a decoy next to the mount
mkdir -p "$OUT" "$DECOY"
for i in $(seq 1 200); do echo "OUTSIDE SECRET line $i"; done > "$OUT/secret"
echo "outside only" > "$OUT/only-outside"
chmod 0644 "$OUT/secret"
write_decoy() {
    echo "DECOY: resolved from the mount's place" > "$DECOY/secret"
    echo "decoy only" > "$DECOY/only-decoy"
}
write_decoy
OUTSIDE_SHA=$(sha256sum "$OUT"/* 2>&1)
SHADOW_SHA=$(sha256sum /etc/shadow 2>&1)
touch -m -d '2020-02-02 02:02:02' "$OUT/secret" "$OUT/only-outside"
touch -a -d '2001-01-01 01:01:01' "$OUT" "$OUT/secret" "$OUT/only-outside"   # older than mtime: relatime updates it on any read
# stat only (reading the files would change their atime); the content is compared at the end
outside_state() {
    stat -c '%n %s %a %u %g %X %Y %Z %h %i' "$OUT" "$OUT"/* 2>&1
    stat -c '%n %s %a %u %g %Y %Z %h %i' /etc/shadow 2>&1
}
OUTSIDE_BEFORE=$(outside_state)

# an inotify watcher on the outside directory (it and everything in it)
cat > "$SCRATCH/watch.py" <<'PYEOF'
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(0)
ALL = 0x00000fff          # access, modify, attrib, close, open, moves, create, delete, self
for p in sys.argv[2:]:
    if libc.inotify_add_watch(fd, p.encode(), ALL) < 0:
        sys.exit("inotify_add_watch %s failed" % p)
log = open(sys.argv[1], "a", buffering=1)
log.write("READY\n")
while True:
    buf = os.read(fd, 65536)
    i = 0
    while i < len(buf):
        wd, mask, cookie, ln = struct.unpack_from("iIII", buf, i)
        log.write("event mask=%#x name=%r\n" % (mask, buf[i + 16:i + 16 + ln].rstrip(b"\0")))
        i += 16 + ln
PYEOF
"$PY" "$SCRATCH/watch.py" "$SCRATCH/inotify.log" "$OUT" "$OUT/secret" 2> "$SCRATCH/watch.err" &
WATCHER=$!
for _ in $(seq 1 50); do grep -q READY "$SCRATCH/inotify.log" 2>/dev/null && break; sleep 0.1; done
grep -q READY "$SCRATCH/inotify.log" 2>/dev/null || bail "the inotify watcher did not start: $(cat "$SCRATCH/watch.err")"

cat > "$SCRATCH/hostile.py" <<'PYEOF'
import errno, json, os, signal, stat, sys
sys.path.insert(0, os.environ["LIB_DIR"])
from helpers import pattern

cmd = sys.argv[1]
m, b = os.environ["M"], os.environ["B"]
OUT, DECOY = os.environ["OUT"], os.environ["DECOY"]


def out(kind, desc, detail=""):
    print("%s\t%s\t%s" % (kind, desc, str(detail).replace("\t", " ").replace("\n", " | ")[:3000]),
          flush=True)


def check(ok, desc, detail=""):
    out("PASS" if ok else "FAIL", desc, detail)


def en(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def attempt(fn, *a, **kw):
    """'OK' / 'OK:<value>' or the errno name."""
    try:
        r = fn(*a, **kw)
        return "OK" if r is None else ("OK:%r" % (r,))[:200]
    except OSError as e:
        return en(e)


def open_read(path, flags=os.O_RDONLY, n=1 << 20):
    fd = os.open(path, flags)
    try:
        return os.read(fd, n)
    finally:
        os.close(fd)


def open_only(path, flags):
    os.close(os.open(path, flags))


def open_write(path, flags, data=b"X"):
    fd = os.open(path, flags)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def open_pwrite(path, flags, data, off):
    fd = os.open(path, flags)
    try:
        return os.pwrite(fd, data, off)
    finally:
        os.close(fd)


def backing_bytes(p):
    with open(p, "rb") as f:
        return f.read()


# ------------------------------------------------------------------------------------------
if cmd == "plant-headers":
    # plant-headers DIR: files with broken headers in B/DIR (B/ref is a valid 5000-byte file)
    d = os.path.join(b, sys.argv[2])
    os.mkdir(d)
    ref = backing_bytes(os.path.join(b, "ref"))
    planted = {}

    def plant(name, data, kind="bad"):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        planted[name] = kind

    for n in range(1, 128):
        plant("trunc%03d" % n, ref[:n])
    for n in (129, 140, 155, 156):           # a header and a "last block" with no plaintext
        plant("trunc%03d" % n, ref[:n])
    plant("block-cut", ref[:128 + 4096], "cutblock")  # a valid header and size, a cut block

    def mutate(name, off, val=None, xor=None):
        x = bytearray(ref)
        x[off] = val if val is not None else x[off] ^ xor
        plant(name, bytes(x))

    mutate("magic", 0, val=ord("X"))
    mutate("version", 8, val=2)
    mutate("cipher", 10, val=(2 if ref[10] == 1 else 1))
    mutate("shift", 11, val=13)
    mutate("flags", 12, val=2)
    mutate("fileid", 16, xor=1)
    mutate("plainsize", 40, val=7)
    mutate("epoch", 48, val=9)
    mutate("nonce", 60, xor=0x80)
    mutate("wrapped", 90, xor=1)
    mutate("tag", 127, xor=1)
    plant("zeros", bytes(128) + ref[128:])
    plant("random", os.urandom(len(ref)))
    plant("plain-short", b"hello world\n")
    plant("plain-long", (b"plain text that was never encrypted\n" * 200)[:5000])
    plant("empty", b"", "empty")
    json.dump(planted, open(os.environ["SCRATCH"] + "/planted-" + sys.argv[2] + ".json", "w"))

elif cmd == "headers":
    # headers DIR LABEL: every planted file fails with EIO; backing unchanged
    dname, label = sys.argv[2], sys.argv[3]
    planted = json.load(open(os.environ["SCRATCH"] + "/planted-" + dname + ".json"))
    bad, tested = [], 0
    for name, kind in sorted(planted.items()):
        p = "%s/%s/%s" % (m, dname, name)
        bp = "%s/%s/%s" % (b, dname, name)
        before = backing_bytes(bp)
        res = {
            "lstat": attempt(lambda: stat.S_ISREG(os.lstat(p).st_mode) or "not a regular file"),
            "read": attempt(open_read, p),
            "rdwr": attempt(open_only, p, os.O_RDWR),
            "append": attempt(open_write, p, os.O_WRONLY | os.O_APPEND),
            "write": attempt(open_pwrite, p, os.O_WRONLY, b"Y", 4000),
        }
        tested += 1
        if kind == "empty":
            want = {"lstat": "OK:True", "read": "OK:b''", "rdwr": "OK", "append": "OK:1",
                    "write": "OK:1"}
            if res != want:
                bad.append("%s (empty): %s, expected %s" % (name, res, want))
            continue
        want = {"lstat": "OK:True", "read": "EIO", "rdwr": "EIO", "append": "EIO", "write": "EIO"}
        if kind == "cutblock":      # the header opens; the block fails
            want["rdwr"] = "OK"
        if res != want:
            bad.append("%s: %s" % (name, {k: v for k, v in res.items() if v != want[k]}))
        if backing_bytes(bp) != before:
            bad.append("%s: the daemon changed the planted backing file (%d -> %d bytes)"
                       % (name, len(before), len(backing_bytes(bp))))
    check(not bad, "%s: %d planted files with broken headers fail with EIO for read, read-write, "
          "append and write, and stay as planted; an empty backing file is an empty file"
          % (label, tested), bad[:12])
    # O_TRUNC on a broken file: EIO (documented), or a clean empty file
    res = {}
    for name in ("trunc050", "magic", "plain-long"):
        p = "%s/%s/%s" % (m, dname, name)
        r = attempt(open_only, p, os.O_WRONLY | os.O_TRUNC)
        if r == "OK":
            r = "OK then " + attempt(open_read, p)
        res[name] = r
    check(all(v in ("EIO", "OK then OK:b''") for v in res.values()),
          "%s: O_TRUNC of a broken file fails with EIO or leaves a clean empty file" % label, res)
    out("INFO", "%s: O_TRUNC of broken files: %s" % (label, res))

elif cmd == "audit-eio":
    # audit-eio LOG DIR: integrity failures of planted files are in the log
    recs = [json.loads(l) for l in open(sys.argv[2])]
    dname = sys.argv[3]
    planted = json.load(open(os.environ["SCRATCH"] + "/planted-" + dname + ".json"))
    missing = []
    for name, kind in planted.items():
        if kind == "empty":
            continue
        path = "/%s/%s" % (dname, name)
        if not any(r["path"] == path and r["op"] == "integrity-failure" for r in recs):
            missing.append(path)
    check(not missing, "the refused opens of planted files in /%s are audited as "
          "integrity-failure records" % dname, missing[:10])

elif cmd == "foreign":
    name = sys.argv[2]
    p, bp = m + "/" + name, b + "/" + name
    before = backing_bytes(bp)
    res = {"read": attempt(open_read, p), "rdwr": attempt(open_only, p, os.O_RDWR),
           "append": attempt(open_write, p, os.O_WRONLY | os.O_APPEND)}
    check(res == {"read": "EIO", "rdwr": "EIO", "append": "EIO"} and backing_bytes(bp) == before,
          "a file copied from another vault (%s) fails with EIO and stays unchanged" % name, res)

# ------------------------------------------------------------------------------------------
elif cmd == "symlinks":
    # symlinks LABEL NAME=TARGET...: static links planted in the backing root
    label = sys.argv[2]
    bad = []
    for spec in sys.argv[3:]:
        name, target = spec.split("=", 1)
        p = m + "/" + name
        try:
            st = os.lstat(p)
            if not stat.S_ISLNK(st.st_mode):
                bad.append("%s: lstat says mode %o, not a link" % (name, st.st_mode))
            if os.readlink(p) != target:
                bad.append("%s: readlink gives %r, planted %r" % (name, os.readlink(p), target))
        except OSError as e:
            bad.append("%s: lstat/readlink fail with %s" % (name, en(e)))
        for fl, what in ((os.O_RDONLY, "read"), (os.O_WRONLY | os.O_TRUNC, "write+trunc"),
                         (os.O_RDWR | os.O_CREAT, "rdwr+creat")):
            r = attempt(open_only, p, fl | os.O_NOFOLLOW)
            if r != "ELOOP":
                bad.append("%s: O_NOFOLLOW open for %s gives %s, expected ELOOP" % (name, what, r))
        r = attempt(os.getxattr, p, "user.x", follow_symlinks=False)
        if r not in ("ENODATA", "EPERM", "EOPNOTSUPP"):
            bad.append("%s: getxattr of the link gives %s" % (name, r))
        r = attempt(os.setxattr, p, "user.x", b"1", follow_symlinks=False)
        if r not in ("EPERM", "EOPNOTSUPP"):
            bad.append("%s: setxattr of the link gives %s" % (name, r))
        r = attempt(os.utime, p, (1, 1), follow_symlinks=False)
        if r != "OK":
            bad.append("%s: utime of the link itself gives %s" % (name, r))
        r = attempt(os.chown, p, 4242, 4242, follow_symlinks=False)
        if r != "OK":
            bad.append("%s: lchown of the link itself gives %s" % (name, r))
    check(not bad, "%s: planted links show as links with their target strings; O_NOFOLLOW opens "
          "fail with ELOOP; their own attributes change, not the target's" % label, bad[:12])

elif cmd == "follow-relative":
    # follow-relative LABEL LINK DIRLINK: following relative links resolves from the mount
    label, link, dirlink = sys.argv[2:5]
    decoy = open(DECOY + "/secret", "rb").read()
    res = {
        "read link": attempt(open_read, m + "/" + link),
        "read dir/secret": attempt(open_read, "%s/%s/secret" % (m, dirlink)),
        "list dir": attempt(lambda: sorted(os.listdir(m + "/" + dirlink))),
        "read dir/only-outside": attempt(open_read, "%s/%s/only-outside" % (m, dirlink)),
    }
    want = {"read link": "OK:%r" % decoy, "read dir/secret": "OK:%r" % decoy,
            "list dir": "OK:%r" % (sorted(os.listdir(DECOY)),),
            "read dir/only-outside": "ENOENT"}
    want = {k: v[:200] for k, v in want.items()}
    check(res == want, "%s: following relative links from the mount reaches the decoy next to "
          "the mount, never the backing directory's neighbours" % label,
          {k: (res[k], want[k]) for k in res if res[k] != want[k]})

# ------------------------------------------------------------------------------------------
elif cmd == "race":
    # race KIND NAME AS_UID: create NAME through the mount, let the kernel cache it, replace the
    # backing entry, and at once run requests as AS_UID against the stale entry.
    kind, name, as_uid = sys.argv[2], sys.argv[3], int(sys.argv[4])
    dev = sys.argv[5] if len(sys.argv) > 5 else None
    p, bp = m + "/" + name, b + "/" + name
    with open(m + "/victim-" + name, "w") as f:
        f.write("victim\n")
    os.chmod(m + "/victim-" + name, 0o666)
    if kind == "dir-rel":
        os.mkdir(p, 0o777)
        os.chmod(p, 0o777)
        with open(p + "/file", "w") as f:
            f.write("inside\n")
        os.chmod(p + "/file", 0o666)
    else:
        with open(p, "w") as f:
            f.write("inside\n")
        os.chmod(p, 0o666)

    def ops(chan):
        if as_uid != 0:
            os.setgroups([])
            os.setresgid(as_uid, as_uid, as_uid)
            os.setresuid(as_uid, as_uid, as_uid)
        signal.alarm(30)
        os.stat(p)                                  # cache the entry
        if kind == "dir-rel":
            os.stat(p + "/file")
        chan.send("ready")
        chan.recv()
        r = {}
        if kind == "symlink-abs":                 # never follow an absolute link ourselves
            r["read"] = attempt(open_read, p, os.O_RDONLY | os.O_NOFOLLOW)
            r["write"] = attempt(open_write, p, os.O_WRONLY | os.O_NOFOLLOW)
            r["trunc-open"] = attempt(open_only, p, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
            r["rdwr"] = attempt(open_write, p, os.O_RDWR | os.O_NOFOLLOW)
        elif kind == "symlink-rel":
            r["read"] = attempt(open_read, p)
            r["write"] = attempt(open_write, p, os.O_WRONLY | os.O_APPEND)
            r["trunc-open"] = attempt(open_only, p, os.O_WRONLY | os.O_TRUNC)
            r["truncate"] = attempt(os.truncate, p, 3)
            r["chmod"] = attempt(os.chmod, p, 0o600)
            if as_uid == 0:
                r["chown"] = attempt(os.chown, p, 4242, 4242)
            r["utime"] = attempt(os.utime, p, (5, 5))
            r["setxattr"] = attempt(os.setxattr, p, "user.evil", b"1")
            r["getxattr"] = attempt(os.getxattr, p, "user.evil")
        elif kind == "dir-rel":
            r["read secret"] = attempt(open_read, p + "/secret")
            r["read only-outside"] = attempt(open_read, p + "/only-outside")
            r["read file"] = attempt(open_read, p + "/file")
            r["write secret"] = attempt(open_write, p + "/secret", os.O_WRONLY | os.O_APPEND)
            r["create"] = attempt(open_write, p + "/created", os.O_WRONLY | os.O_CREAT)
            r["mkdir"] = attempt(os.mkdir, p + "/newdir")
            r["symlink"] = attempt(os.symlink, "x", p + "/newlink")
            r["mknod fifo"] = attempt(os.mkfifo, p + "/newfifo")
            r["link"] = attempt(os.link, p + "/only-outside", m + "/hardlinked-" + name)
            r["rename out"] = attempt(os.rename, p + "/only-outside", m + "/stolen-" + name)
            r["rename in"] = attempt(os.rename, m + "/victim-" + name, p + "/moved-in")
            r["unlink"] = attempt(os.unlink, p + "/only-outside")
            r["chmod"] = attempt(os.chmod, p + "/only-outside", 0o600)
            r["utime"] = attempt(os.utime, p + "/only-outside", (5, 5))
            r["setxattr"] = attempt(os.setxattr, p + "/only-outside", "user.evil", b"1")
            r["truncate"] = attempt(os.truncate, p + "/only-outside", 0)
            r["list"] = attempt(lambda: sorted(os.listdir(p)))
            r["rmdir"] = attempt(os.rmdir, p)
        elif kind in ("fifo", "chardev", "blockdev"):
            r["read"] = attempt(open_read, p, os.O_RDONLY | os.O_NONBLOCK, 64)
            r["write"] = attempt(open_write, p, os.O_WRONLY | os.O_NONBLOCK)
            r["rdwr"] = attempt(open_write, p, os.O_RDWR | os.O_NONBLOCK)
            r["truncate"] = attempt(os.truncate, p, 100)
            r["trunc-open"] = attempt(open_only, p, os.O_WRONLY | os.O_TRUNC | os.O_NONBLOCK)
            r["setxattr"] = attempt(os.setxattr, p, "user.evil", b"1")
            r["chmod"] = attempt(os.chmod, p, 0o600)
        chan.send(json.dumps(r))

    from helpers import fork_child
    chan = fork_child(ops)
    chan.recv(30)
    # replace the backing entry under the kernel's cache
    if kind == "dir-rel":
        os.rename(bp, bp + ".real")
        os.symlink("../outside", bp)
    else:
        os.unlink(bp)
        if kind == "symlink-abs":
            os.symlink(OUT + "/secret", bp)
        elif kind == "symlink-rel":
            os.symlink("../outside/secret", bp)
        elif kind == "fifo":
            os.mkfifo(bp, 0o666)
        elif kind == "chardev":
            os.mknod(bp, 0o666 | stat.S_IFCHR, os.makedev(1, 5))        # /dev/zero
        elif kind == "blockdev":
            st = os.stat(dev)
            os.mknod(bp, 0o666 | stat.S_IFBLK, st.st_rdev)
        if kind in ("fifo", "chardev", "blockdev"):
            os.chmod(bp, 0o666)        # so that the permission checks let the caller write
    chan.send("go")
    try:
        r = json.loads(chan.recv(45))
    except AssertionError as e:
        check(False, "race %s as uid %d: the requests finish (no hang)" % (kind, as_uid), e)
        sys.exit(0)
    chan.wait(10)
    who = "root" if as_uid == 0 else "uid %d" % as_uid
    leaked = {k: v for k, v in r.items() if "OUTSIDE SECRET" in v or "outside only" in v
              or "only-outside" in v}
    check(not leaked, "race %s as %s: no request returns anything from outside"
          % (kind, who), leaked)
    out("INFO", "race %s as %s: %s" % (kind, who, r))
    if kind == "symlink-abs":
        okset = ("ELOOP",)
        badr = {k: v for k, v in r.items() if v not in okset}
        check(not badr, "race %s as %s: every O_NOFOLLOW open of the replaced entry fails "
              "with ELOOP" % (kind, who), badr)
    elif kind == "symlink-rel":
        # each request either is refused or reaches the decoy (the kernel followed the link)
        badr = {k: v for k, v in r.items()
                if k == "read" and not (v in ("ELOOP", "ENOENT") or v.startswith("OK:b'DECOY"))}
        check(not badr, "race %s as %s: reading the replaced entry fails or reads the decoy"
              % (kind, who), badr)
    elif kind == "dir-rel":
        badr = {}
        for k in ("read only-outside", "rename out", "unlink", "link"):
            if r[k].startswith("OK"):
                badr[k] = r[k]
        if r["list"].startswith("OK") and "only-outside" in r["list"]:
            badr["list"] = r["list"]
        check(not badr, "race %s as %s: nothing in the outside directory is read, listed, "
              "linked, moved or removed through the replaced directory" % (kind, who), badr)
        # (no listing of OUT here: the inotify watcher would see it)
        made = [n for n in ("created", "newdir", "newlink", "newfifo", "moved-in")
                if os.path.lexists(OUT + "/" + n)]
        check(not made, "race %s as %s: nothing was created in the outside directory"
              % (kind, who), made)
    elif kind in ("fifo", "chardev", "blockdev"):
        badr = {k: v for k, v in r.items() if k in ("read", "write", "rdwr") and
                v.startswith("OK") and not (kind == "fifo" and v in ("OK:b''", "OK"))}
        check(not badr, "race %s as %s: no data moves to or from the %s through a stale "
              "entry" % (kind, who, kind), badr)
    if kind == "blockdev":
        fd = os.open(dev, os.O_RDWR)
        head = os.pread(fd, 4096, 0)
        check(head == b"A" * 4096, "race blockdev as %s: nothing was written to the block device "
              "(a loop device over a scratch file) planted in the backing directory" % who,
              "its first bytes are now %r" % head[:48])
        os.pwrite(fd, b"A" * 4096, 0)          # as it was, for the next case
        os.fsync(fd)
        os.close(fd)

elif cmd == "fifo-dev":
    # fifo-dev LABEL NAMES...: planted FIFOs (fifo*) and device nodes (dev*)
    label = sys.argv[2]
    bad, seen = [], {}
    for name in sys.argv[3:]:
        p = m + "/" + name
        st = os.lstat(p)
        if name.startswith("fifo"):
            if not stat.S_ISFIFO(st.st_mode):
                bad.append("%s: not shown as a FIFO (mode %o)" % (name, st.st_mode))
            r = {"read-nonblock": attempt(open_read, p, os.O_RDONLY | os.O_NONBLOCK, 64),
                 "write-nonblock": attempt(open_write, p, os.O_WRONLY | os.O_NONBLOCK)}
            if r != {"read-nonblock": "OK:b''", "write-nonblock": "ENXIO"}:
                bad.append("%s: %s" % (name, r))
        else:
            if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
                bad.append("%s: not shown as a device (mode %o)" % (name, st.st_mode))
            r = {"read": attempt(open_read, p, os.O_RDONLY | os.O_NONBLOCK, 64),
                 "write": attempt(open_write, p, os.O_WRONLY | os.O_NONBLOCK)}
            if any(v.startswith("OK") for v in r.values()):
                bad.append("%s: a planted device opens through the mount: %s" % (name, r))
        seen[name] = r
    check(not bad, "%s: planted FIFOs behave as FIFOs (no hang), planted device nodes cannot "
          "be opened through the mount" % label, bad)
    out("INFO", "%s: %s" % (label, seen))

# ------------------------------------------------------------------------------------------
elif cmd in ("odd-names", "odd-plant", "odd-planted", "odd-audit"):
    NAMES = [b"new\nline", b"trailing-newline\n", b"\nleading-newline", b"tab\there",
             b"cr\rret", b"back\\slash", b"\x01\x02ctrl", b"del\x7f", b"\xff\xfe\xfd",
             b"half\xc3", b"caf\xc3\xa9", "名前.csv".encode(), b"-dash", b" lead space",
             b"trail space ", b"quote\"'`", b"$(touch pwned)", b"%s%n%x", b"a" * 255,
             "é".encode() * 127, b"...", b"*?[glob]", b"semi;colon|pipe&amp",
             b"\x1b[31mred", b"json\",\"op\":\"x", b"nul-free\xc0\x80"]
    if cmd == "odd-names":
        d = os.fsencode(m) + b"/odd"
        os.mkdir(d)
        bad = []
        for i, n in enumerate(NAMES):
            with open(d + b"/" + n, "wb") as f:
                f.write(pattern(100 + i, 0, 100 + 37 * i))
        listed = sorted(os.listdir(d))
        if listed != sorted(NAMES):
            bad.append("listing: extra %r missing %r" % (sorted(set(listed) - set(NAMES))[:5],
                                                         sorted(set(NAMES) - set(listed))[:5]))
        backing = sorted(os.listdir(os.fsencode(b) + b"/odd"))
        if backing != sorted(NAMES):
            bad.append("backing names differ: %r" % (sorted(set(backing) ^ set(NAMES))[:5],))
        for i, n in enumerate(NAMES):
            p = d + b"/" + n
            try:
                if open(p, "rb").read() != pattern(100 + i, 0, 100 + 37 * i):
                    bad.append("%r: wrong content" % n)
                if len(n) < 255:
                    os.rename(p, p + b"~")
                    os.rename(p + b"~", p)
                os.stat(p)
            except OSError as e:
                bad.append("%r: %s" % (n, e))
        for n in NAMES[::2]:
            try:
                os.unlink(d + b"/" + n)
            except OSError as e:
                bad.append("unlink %r: %s" % (n, e))
        left = sorted(os.listdir(d))
        if left != sorted(NAMES[1::2]):
            bad.append("after removing half: %r" % (sorted(set(left) ^ set(NAMES[1::2]))[:5],))
        check(not bad, "%d odd names are created, listed, read, renamed and removed through the "
              "mount exactly" % len(NAMES), bad[:10])
    elif cmd == "odd-plant":
        d = os.fsencode(b) + b"/oddp"
        os.mkdir(d)
        for n in NAMES:
            open(d + b"/" + n, "wb").close()                                   # empty: valid
            if len(n) < 250:
                open(d + b"/P" + n, "wb").write(b"plain text, not encrypted\n")  # broken
    elif cmd == "odd-planted":
        d = os.fsencode(m) + b"/oddp"
        bad = []
        want = sorted(NAMES + [b"P" + n for n in NAMES if len(n) < 250])
        listed = sorted(os.listdir(d))
        if listed != want:
            bad.append("listing differs: %r" % (sorted(set(listed) ^ set(want))[:5],))
        for n in NAMES:
            r = attempt(open_read, d + b"/" + n)
            if r != "OK:b''":
                bad.append("%r (empty): %s" % (n, r))
            if len(n) < 250:
                r = attempt(open_read, d + b"/P" + n)
                if r != "EIO":
                    bad.append("%r (plain text): %s" % (b"P" + n, r))
        check(not bad, "odd names planted in the backing directory are listed exactly; empty "
              "ones read as empty, plain-text ones fail with EIO", bad[:10])
    elif cmd == "odd-audit":
        lines = open(sys.argv[2], "rb").read().split(b"\n")
        bad, recs = [], []
        for i, l in enumerate(lines):
            if not l:
                continue
            try:
                recs.append(json.loads(l.decode("utf-8")))
            except (ValueError, UnicodeDecodeError) as e:
                bad.append("line %d is not valid JSON: %s: %r" % (i + 1, e, l[:120]))
        paths = set()
        for r in recs:
            if r.get("path") is not None:
                paths.add(r["path"].encode("utf-8", "surrogateescape"))
        for n in NAMES:
            if b"/odd/" + n not in paths:
                bad.append("no record names /odd/%r exactly" % n)
        check(not bad, "custodyctl log --format json: every line is valid JSON and the records "
              "name each odd path exactly (%d records)" % len(recs), bad[:10])
PYEOF

export M B OUT DECOY SCRATCH
run_py() {
    local kind desc detail
    while IFS=$'\t' read -r kind desc detail; do
        case $kind in
            PASS) pass "$desc" ;;
            FAIL) fail "$desc" "$detail" ;;
            EXIT) [ "$desc" = 0 ] || fail "hostile.py $1 exits 0" "exit status $desc" ;;
            *) printf '# %s\n' "$desc" ;;
        esac
    done < <(timeout -k 5 120 "$PY" "$SCRATCH/hostile.py" "$@" 2> "$SCRATCH/hostile.err"; \
             echo "EXIT	$?")
    if [ -s "$SCRATCH/hostile.err" ]; then
        fail "hostile.py $1 ran without errors" "$(head -c 2000 "$SCRATCH/hostile.err")"
    fi
}

DPID=
health() { # LABEL
    local got
    got=$(timeout 20 "$PY" -c "import sys; sys.path.insert(0, '$LIB_DIR'); from helpers import *
verify_pattern(sys.argv[1], 0, 10000, 1); print('ok')" "$M/health" 2>&1)
    if [ "$got" = ok ] && [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null \
       && [ "$(daemon_pid_for "$M")" = "$DPID" ]; then
        pass "after $1: the same daemon still serves a known file"
    else
        fail "after $1: the same daemon still serves a known file" "read: $got" \
            "daemon $DPID alive: $(kill -0 "$DPID" 2>&1 && echo yes)"
    fi
}

# ---------------------------------------------------------------------------------------------
# planted while unmounted
run_py plant-headers hdr
cp "$SCRATCH/backing2/foreign" "$B/foreign"
ln -s "$OUT/secret" "$B/abs-secret"
ln -s /etc/shadow "$B/shadow"
ln -s ../outside/secret "$B/rel-secret"
ln -s ../../../../../../../../../../etc/shadow "$B/deep-shadow"
ln -s self "$B/self"
ln -s /nonexistent/x "$B/dangling"
ln -s .. "$B/dotdot"
mkdir "$B/a.real" && echo inside > "$B/a.real/file" && ln -s ../outside "$B/a"
mkfifo "$B/fifo1"
mknod "$B/dev-null" c 1 3
mknod "$B/dev-zero" c 1 5
run_py odd-plant
mkdir -m 0755 "$B/pub"
: > "$B/pub/.fuse_hidden0000002a00000001"

mount_vault "$B" "$M" --keyfile "$KEY" || bail "mount failed: $(cat "$SCRATCH/mount.err")"
DPID=$(daemon_pid_for "$M")
pass "the vault mounts with hostile content in its backing directory"
health "mounting over hostile content"

run_py headers hdr "planted while unmounted"
health "broken headers"
run_py foreign foreign
health "a foreign header"
run_py symlinks "planted while unmounted" "abs-secret=$OUT/secret" "shadow=/etc/shadow" \
    "rel-secret=../outside/secret" "deep-shadow=../../../../../../../../../../etc/shadow" \
    "self=self" "dangling=/nonexistent/x" "dotdot=.." "a=../outside"
run_py follow-relative "planted while unmounted" rel-secret a
expect_errno "ELOOP" "a link loop planted in the backing directory gives ELOOP" \
    'open(argv[0]).read()' "$M/self"
health "planted links"
run_py fifo-dev "planted while unmounted" fifo1 dev-null dev-zero
# a blocking open of the planted FIFO blocks (FIFO semantics) without holding up the daemon
timeout 3 cat "$M/fifo1" > /dev/null 2>&1 &
blocker=$!
sleep 0.5
health "a blocking open of a planted FIFO (still waiting)"
wait "$blocker"
health "FIFOs and device nodes"
run_py odd-planted
health "odd names planted in the backing directory"

# ---------------------------------------------------------------------------------------------
# planted while mounted
run_py plant-headers hdr2
cp "$SCRATCH/backing2/foreign" "$B/foreign2"
ln -s "$OUT/secret" "$B/abs-secret2"
ln -s ../outside/secret "$B/rel-secret2"
mkdir "$B/b.real" && echo inside > "$B/b.real/file" && ln -s ../outside "$B/b"
mkfifo "$B/fifo2"
mknod "$B/dev-zero2" c 1 5
run_py headers hdr2 "planted while mounted"
run_py foreign foreign2
run_py symlinks "planted while mounted" "abs-secret2=$OUT/secret" "rel-secret2=../outside/secret" \
    "b=../outside"
run_py follow-relative "planted while mounted" rel-secret2 b
run_py fifo-dev "planted while mounted" fifo2 dev-zero2
health "content planted while mounted"

# ---------------------------------------------------------------------------------------------
# replaced right after the kernel cached the entry: the requests reach the daemon
chmod 0755 "$M" || fail "chmod 0755 of the mount root"
head -c 1048576 /dev/zero | tr '\0' 'A' > "$LOOPIMG"
LOOPDEV=$(losetup --find --show "$LOOPIMG" 2>&1) || { LOOPDEV=; bail "losetup failed"; }
n=0
for who in 0 "$NOBODY"; do
    for kind in symlink-abs symlink-rel dir-rel fifo chardev blockdev; do
        n=$((n + 1))
        run_py race "$kind" "race$n" "$who" "$LOOPDEV"
        write_decoy
        health "race $kind as uid $who"
    done
done
losetup -d "$LOOPDEV" && LOOPDEV= && pass "the loop device is detached"

# ---------------------------------------------------------------------------------------------
# odd names through the mount and in the audit log
run_py odd-names
health "odd names"

# ---------------------------------------------------------------------------------------------
# .fuse_hidden names: not a way around the permission checks or the audit log
mkdir -m 0755 "$M/pub2" && echo x > "$M/pub2/.fuse_hiddenCAFE000100000002" && echo y > "$M/pub2/normal" \
    || fail "cannot prepare /pub2"
as_nobody() { setpriv --reuid="$NOBODY" --regid="$NOBODY" --clear-groups "$@"; }
out=$(as_nobody rm -f "$M/pub2/normal" 2>&1); rc=$?
check_ne "uid $NOBODY cannot remove a file from a directory it may not write (sanity)" 0 "$rc"
for f in pub2/.fuse_hiddenCAFE000100000002 pub/.fuse_hidden0000002a00000001; do
    out=$(as_nobody rm -f "$M/$f" 2>&1); rc=$?
    check_ne "uid $NOBODY cannot remove /$f (a .fuse_hidden name) from a directory it may not write" 0 "$rc"
    if [ -e "$B/$f" ]; then pass "... /$f is still there"; else fail "... /$f is still there" "gone from $B"; fi
done
"$CUSTODYCTL" log "$B" --format json > "$SCRATCH/log.json" 2> "$SCRATCH/log.err" \
    || fail "custodyctl log --format json" "$(cat "$SCRATCH/log.err")"
check "the refused removal of /pub2/.fuse_hiddenCAFE000100000002 is audited" \
    grep -q "\"uid\":$NOBODY,.*\"op\":\"unlink\",\"path\":\"/pub2/.fuse_hiddenCAFE000100000002\"" "$SCRATCH/log.json"
health ".fuse_hidden names"

# ---------------------------------------------------------------------------------------------
# the audit log
run_py odd-audit "$SCRATCH/log.json"
run_py audit-eio "$SCRATCH/log.json" hdr
run_py audit-eio "$SCRATCH/log.json" hdr2

if [ "$(daemon_pid_for "$M")" = "$DPID" ] && kill -0 "$DPID"; then
    pass "one daemon (pid $DPID) served the whole test without a crash"
else
    fail "one daemon (pid $DPID) served the whole test without a crash" "now: $(daemon_pid_for "$M")"
fi
unmount_vault "$M" || fail "unmount at the end"
out=$(timeout "$CMD_TIMEOUT" "$CUSTODYCTL" verify "$B" 2>&1); rc=$?
check_eq "custodyctl verify exits 0" 0 "$rc" || printf '#   %s\n' "$out"

kill "$WATCHER" 2>/dev/null; wait "$WATCHER" 2>/dev/null; WATCHER=
check_eq "the inotify watcher on the outside directory saw no access at all" "READY" \
    "$(head -c 3000 "$SCRATCH/inotify.log")"
OUTSIDE_AFTER=$(outside_state)
check_eq "the outside files and /etc/shadow are unchanged (size, mode, owner, times, inode)" \
    "$OUTSIDE_BEFORE" "$OUTSIDE_AFTER"
check_eq "the outside files and /etc/shadow hold what they held" "$OUTSIDE_SHA
$SHADOW_SHA" "$(sha256sum "$OUT"/* 2>&1; sha256sum /etc/shadow 2>&1)"
printf '# run time: %d s\n' $(($(date +%s) - T_START))
done_testing
