#!/bin/bash
# Audit log, end to end: a real workload through a mounted vault performs every recorded
# operation (open, create, read, write, truncate, rename, unlink, link, symlink, mkdir, rmdir,
# chmod, chown, utimens, setxattr, removexattr, mknod, fallocate), some of them failing (ENOTEMPTY,
# EPERM for a device node, EOPNOTSUPP, ENODATA, ENOENT), one as uid 1000, plus a tampered block
# (integrity-failure).  After unmounting, `custodyctl log --format json` must hold each operation
# with the right op, path, path2, result, identity (uid, user, gid, pid, ppid, pstart, process,
# exe), file_id, bytes and merged ranges; mount and unmount records; gapless seq.  Then: verify,
# head + verify --head, the csv and table listings, and --audit-db elsewhere for the daemon and
# custodyctl (with names that need escaping).
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools setpriv sqlite3
T_START=$(date +%s%N)

VERSION=$("$CUSTODYFS" --version | awk '{ print $2 }')
U1000=$(getent passwd 1000 | cut -d: -f1)
[ -n "$U1000" ] || U1000=1000

KEY=$SCRATCH/key
B=$SCRATCH/backing
M=$SCRATCH/mnt
new_keyfile "$KEY"
make_vault "$B" "$KEY" || bail "custodyctl init failed: $(cat "$SCRATCH/init.err")"
mount_vault "$B" "$M" --keyfile "$KEY" -o noatime || bail "mount failed: $(cat "$SCRATCH/mount.err")"

EXPECT=$SCRATCH/expect.jsonl
: > "$EXPECT"

# report: turn "PASS<TAB>desc" / "FAIL<TAB>desc<TAB>detail" / "NOTE<TAB>text" lines into TAP.
report() {
    local kind desc detail n=0
    while IFS=$'\t' read -r kind desc detail; do
        case $kind in
            PASS) pass "$desc"; n=$((n + 1)) ;;
            FAIL) fail "$desc" "$detail"; n=$((n + 1)) ;;
            NOTE) printf '# note: %s\n' "$desc" ;;
            *) printf '# %s %s %s\n' "$kind" "$desc" "$detail" ;;
        esac
    done
    [ "$n" -gt 0 ] || fail "the checker reported nothing"
}

# ---- the workload, as a Python program: it performs the operations and writes what the log
# ---- must then hold, one JSON object per line, to standard output.
cat > "$SCRATCH/workload.py" <<'PYEOF'
import ctypes, errno, json, os, pwd, stat, subprocess, sys, time

mode, M, B = sys.argv[1], sys.argv[2], sys.argv[3]
CTL = os.environ.get("CUSTODYCTL", "")


def me():
    st = open("/proc/self/stat").read()
    rest = st[st.rindex(")") + 2:].split()
    return dict(pid=os.getpid(), ppid=os.getppid(), pstart=int(rest[19]), uid=os.getuid(),
                gid=os.getgid(), user=pwd.getpwuid(os.getuid()).pw_name,
                process=st[st.index("(") + 1:st.rindex(")")],
                exe=os.path.realpath("/proc/self/exe"))


ME = me()


def expect(op, path, path2=None, result="ok", **kw):
    d = dict(op=op, path=path, path2=path2, result=result)
    d.update(ME)
    d.update(kw)
    print(json.dumps(d), flush=True)


def check(desc, ok, info=""):
    print(json.dumps(dict(check=desc, ok=bool(ok), info=info)), flush=True)


def errname(fn, *a):
    try:
        fn(*a)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def p(name):
    return M + name


def live_log():
    out = subprocess.run([CTL, "log", B, "--format", "json"], capture_output=True, text=True,
                         check=True).stdout
    return [json.loads(l) for l in out.splitlines()]


if mode == "user":
    # as uid 1000, in a directory it owns
    fd = os.open(p("/u/mine.txt"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b"u" * 100)
    os.close(fd)
    expect("create", "/u/mine.txt", file_id=True, detail_has="create")
    expect("write", "/u/mine.txt", bytes=100, ranges=[[0, 100]], file_id="/u/mine.txt")
    os.rename(p("/u/mine.txt"), p("/u/ours.txt"))
    expect("rename", "/u/mine.txt", "/u/ours.txt")
    sys.exit(0)

# --- the root of the mount: open to others (uid 1000 works below)
os.chmod(M, 0o755)
expect("chmod", "/", detail_has="0755")

# --- files: create, write in two ranges through one handle
fd = os.open(p("/data.bin"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
os.pwrite(fd, b"a" * 10000, 0)
os.pwrite(fd, b"b" * 5000, 20000)
os.close(fd)
expect("create", "/data.bin", file_id=True, detail_has="create")
expect("write", "/data.bin", bytes=15000, ranges=[[0, 10000], [20000, 25000]],
       file_id="/data.bin")

# --- reads through one handle (O_DIRECT: exactly the program's reads reach the daemon)
fd = os.open(p("/data.bin"), os.O_RDONLY | os.O_DIRECT)
assert len(os.pread(fd, 1000, 5000)) == 1000
assert len(os.pread(fd, 2000, 12000)) == 2000
os.close(fd)
expect("open", "/data.bin", detail="read", file_id="/data.bin")
expect("read", "/data.bin", bytes=3000, ranges=[[5000, 6000], [12000, 14000]],
       file_id="/data.bin")

# --- open modes
os.close(os.open(p("/data.bin"), os.O_RDWR))
expect("open", "/data.bin", detail="read-write", file_id="/data.bin")
os.close(os.open(p("/data.bin"), os.O_WRONLY | os.O_APPEND))
expect("open", "/data.bin", detail="write,append", file_id="/data.bin")
fd = os.open(p("/trunc.txt"), os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"x" * 50)
os.close(fd)
expect("create", "/trunc.txt", file_id=True, detail_has="create")
expect("write", "/trunc.txt", bytes=50, ranges=[[0, 50]], file_id="/trunc.txt")
os.close(os.open(p("/trunc.txt"), os.O_RDWR | os.O_TRUNC))
expect("open", "/trunc.txt", detail="read-write,truncate", file_id="/trunc.txt")

# --- fsync commits the handle's writes at once
fd = os.open(p("/data.bin"), os.O_WRONLY)
os.pwrite(fd, b"c" * 100, 0)
os.fsync(fd)
recs = [r for r in live_log() if r["op"] == "write" and r["path"] == "/data.bin"
        and r["pid"] == ME["pid"] and r["ranges"] == [[0, 100]]]
check("fsync: the handle's write record is in the log when fsync returns", len(recs) == 1,
      "write records for [0,100): %d" % len(recs))
os.close(fd)
expect("open", "/data.bin", detail="write", file_id="/data.bin")
expect("write", "/data.bin", bytes=100, ranges=[[0, 100]], file_id="/data.bin")

# --- a handle kept open: its writes are committed at least once a second, then at close
fd = os.open(p("/slow.bin"), os.O_WRONLY | os.O_CREAT, 0o644)
os.pwrite(fd, b"s" * 4096, 0)
time.sleep(2.5)
recs = [r for r in live_log() if r["op"] == "write" and r["path"] == "/slow.bin"]
check("a handle kept open: its write is in the log within 2.5 s, before close",
      len(recs) == 1 and recs[0]["ranges"] == [[0, 4096]],
      "write records: %r" % [(r["bytes"], r["ranges"]) for r in recs])
os.pwrite(fd, b"t" * 4096, 8192)
os.close(fd)
expect("create", "/slow.bin", file_id=True, detail_has="create")
expect("write", "/slow.bin", bytes=4096, ranges=[[0, 4096]], file_id="/slow.bin")
expect("write", "/slow.bin", bytes=4096, ranges=[[8192, 12288]], file_id="/slow.bin")

# --- truncate: through a handle and by path
fd = os.open(p("/data.bin"), os.O_WRONLY)
os.ftruncate(fd, 30000)
os.close(fd)
expect("open", "/data.bin", detail="write", file_id="/data.bin")
expect("truncate", "/data.bin", detail_has="30000", file_id="/data.bin")
os.truncate(p("/data.bin"), 26000)
expect("truncate", "/data.bin", detail_has="26000", file_id="/data.bin")

# --- fallocate: allowed, and a mode custodyfs does not support
fd = os.open(p("/data.bin"), os.O_RDWR)
os.posix_fallocate(fd, 0, 40000)
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
rc = libc.fallocate(fd, 3, 0, 4096)            # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE
e = ctypes.get_errno()
os.close(fd)
check("fallocate(PUNCH_HOLE) fails with EOPNOTSUPP", rc == -1 and e == errno.EOPNOTSUPP,
      "rc %d errno %s" % (rc, errno.errorcode.get(e)))
expect("open", "/data.bin", detail="read-write", file_id="/data.bin")
expect("fallocate", "/data.bin", detail_has="mode=0 offset=0 length=40000", file_id="/data.bin")
expect("fallocate", "/data.bin", result="EOPNOTSUPP", detail_has="mode=3 offset=0 length=4096",
       file_id="/data.bin")

# --- attributes
os.chmod(p("/data.bin"), 0o600)
expect("chmod", "/data.bin", detail_has="0600")
os.chown(p("/data.bin"), 1000, 1000)
expect("chown", "/data.bin", detail_has="1000:1000")
os.chown(p("/data.bin"), -1, 0)
expect("chown", "/data.bin", detail_any=["-1:0", "1000:0"])
os.utime(p("/data.bin"), ns=(1600000000000000000, 1600000000000000000))
expect("utimens", "/data.bin")
os.setxattr(p("/data.bin"), "user.label", b"train")
expect("setxattr", "/data.bin", detail_has="user.label")
os.removexattr(p("/data.bin"), "user.label")
expect("removexattr", "/data.bin", detail_has="user.label")
r = errname(os.removexattr, p("/data.bin"), "user.label")
check("removexattr of a missing attribute fails with ENODATA", r == "ENODATA", r)
expect("removexattr", "/data.bin", result="ENODATA", detail_has="user.label")
r = errname(os.setxattr, p("/data.bin"), "trusted.x", b"1")
check("setxattr trusted.x fails with EOPNOTSUPP", r in ("EOPNOTSUPP", "ENOTSUP"), r)
expect("setxattr", "/data.bin", result="EOPNOTSUPP", detail_has="trusted.x")

# --- directories
os.mkdir(p("/dir"), 0o750)
expect("mkdir", "/dir", detail_has="0750")
os.close(os.open(p("/dir/inner"), os.O_WRONLY | os.O_CREAT, 0o644))
expect("create", "/dir/inner", file_id=True, detail_has="create")
r = errname(os.rmdir, p("/dir"))
check("rmdir of a non-empty directory fails with ENOTEMPTY", r == "ENOTEMPTY", r)
expect("rmdir", "/dir", result="ENOTEMPTY")
os.unlink(p("/dir/inner"))
expect("unlink", "/dir/inner")
os.rmdir(p("/dir"))
expect("rmdir", "/dir")
os.mkdir(p("/u"), 0o755)
expect("mkdir", "/u", detail_has="0755")
os.chown(p("/u"), 1000, 1000)
expect("chown", "/u", detail_has="1000:1000")

# --- special files
r = errname(os.mknod, p("/null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
check("mknod of a character device fails with EPERM", r == "EPERM", r)
expect("mknod", "/null", result="EPERM", detail_has="char-device")
os.mkfifo(p("/fifo"), 0o640)
expect("mknod", "/fifo", detail_has="fifo")

# --- names
os.link(p("/data.bin"), p("/hard"))
expect("link", "/data.bin", "/hard")
os.symlink("data.bin", p("/soft"))
expect("symlink", "/soft", "data.bin")
os.rename(p("/hard"), p("/hard2"))
expect("rename", "/hard", "/hard2")
os.unlink(p("/hard2"))
expect("unlink", "/hard2")
os.unlink(p("/soft"))
expect("unlink", "/soft")
# a rename that reaches the daemon and fails there: the source vanished from the backing
# directory while the kernel still had its name cached
fd = os.open(p("/vanish"), os.O_WRONLY | os.O_CREAT, 0o644)
os.close(fd)
expect("create", "/vanish", file_id=True, detail_has="create")
os.stat(p("/vanish"))
os.unlink(B + "/vanish")
r = errname(os.rename, p("/vanish"), p("/vanished"))
check("rename of a file gone from the backing directory fails with ENOENT", r == "ENOENT", r)
expect("rename", "/vanish", "/vanished", result="ENOENT")
# a rename of a name that does not exist: the kernel answers ENOENT at lookup
r = errname(os.rename, p("/missing"), p("/elsewhere"))
check("rename of a missing name fails with ENOENT", r == "ENOENT", r)
print(json.dumps(dict(kernel_enoent=dict(op="rename", path="/missing", path2="/elsewhere",
                                         pid=ME["pid"]))), flush=True)
PYEOF
chmod 0644 "$SCRATCH/workload.py"

CUSTODYCTL=$CUSTODYCTL timeout 120 "$PY" "$SCRATCH/workload.py" root "$M" "$B" >> "$EXPECT" \
    2> "$SCRATCH/workload.err"
check_eq "the workload as root ran through" 0 "$?" || sed -e 's/^/# /' "$SCRATCH/workload.err"
timeout 60 setpriv --reuid=1000 --regid=1000 --clear-groups \
    "$PY" "$SCRATCH/workload.py" user "$M" "$B" >> "$EXPECT" 2> "$SCRATCH/workload-user.err"
check_eq "the workload as uid 1000 ran through" 0 "$?" || sed -e 's/^/# /' "$SCRATCH/workload-user.err"

# --- an integrity failure: a block altered in the backing file, then read
"$PY" "$HELPERS_PY" write "$M/tamper.bin" 0 12288 7 || bail "writing tamper.bin failed"
unmount_vault "$M" || bail "unmount failed"
"$PY" - "$B/tamper.bin" "$(header_size_of "$B")" <<'PYEOF' || bail "tampering failed"
import sys
hdr = int(sys.argv[2])                       # 40 (format 2) or 128 (format 1)
off = hdr + (4096 + 28) + 12 + 100          # header, block 0, then inside block 1's ciphertext
with open(sys.argv[1], "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x01]))
PYEOF
mount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"
expect_errno EIO "reading a tampered block fails with EIO" '
fd = os.open(argv[0], os.O_RDONLY | os.O_DIRECT)
try:
    os.pread(fd, 4096, 4096)
finally:
    os.close(fd)
' "$M/tamper.bin"
unmount_vault "$M" || bail "unmount failed"
T_END=$(date +%s%N)

# ---- the log
"$CUSTODYCTL" log "$B" --format json > "$SCRATCH/log.json" 2> "$SCRATCH/log.err"
check_eq "custodyctl log --format json exits 0" 0 "$?" || cat "$SCRATCH/log.err"

report < <("$PY" - "$SCRATCH/log.json" "$EXPECT" "$VERSION" "$B" "$M" "$(realpath "$CUSTODYFS")" \
              "$T_START" "$T_END" "$U1000" <<'PYEOF'
import json, re, sys

logf, expf, version, B, M, daemon_exe, t0, t1, u1000 = sys.argv[1:]
t0, t1 = int(t0), int(t1)
out = []


def PASS(d, info=None):
    print("PASS\t%s" % d)


def FAIL(d, info):
    print("FAIL\t%s\t%s" % (d, str(info).replace("\t", " ").replace("\n", " ")[:1500]))


def NOTE(d):
    print("NOTE\t%s" % d)


KEYS = ["seq", "time", "uid", "user", "gid", "pid", "ppid", "pstart", "process", "exe", "op",
        "path", "path2", "file_id", "result", "bytes", "ranges", "detail", "hash"]
recs, bad = [], []
for n, line in enumerate(open(logf, "rb"), 1):
    try:
        recs.append(json.loads(line.decode("utf-8")))
    except Exception as e:  # noqa: BLE001
        bad.append("line %d: %s" % (n, e))
(FAIL if bad else PASS)("every line of the JSON listing is a JSON object", "; ".join(bad[:5]))
keys_bad = [r.get("seq") for r in recs if list(r.keys()) != KEYS]
(FAIL if keys_bad else PASS)("every JSON record has exactly the keys %s, in order" % ",".join(KEYS),
                             "records with other keys: %s" % keys_bad[:10])
seqs = [r["seq"] for r in recs]
(PASS if seqs == list(range(1, len(recs) + 1)) else FAIL)(
    "seq runs 1..%d without gaps" % len(recs), "seqs: %s" % seqs[:50])
tre = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


def tns(s):
    import calendar, time
    base = calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))
    return base * 10**9 + int(s[20:29])


badt = [(r["seq"], r["op"], r["time"]) for r in recs
        if not tre.match(r["time"]) or not (t0 - 2 * 10**9 <= tns(r["time"]) <= t1 + 2 * 10**9)]
(FAIL if badt else PASS)("every time is RFC 3339 UTC with ns, within the test's run", badt[:5])
badh = [r["seq"] for r in recs if not re.match(r"^[0-9a-f]{64}$", r["hash"] or "")]
(FAIL if badh else PASS)("every hash is 64 hex digits", badh[:10])
badr = [r["seq"] for r in recs if r["result"] != "ok" and not re.match(r"^E[A-Z0-9]+$", r["result"])]
(FAIL if badr else PASS)("every result is ok or an errno name", badr[:10])

# mount / unmount
mounts = [r for r in recs if r["op"] == "mount"]
unmounts = [r for r in recs if r["op"] == "unmount"]
(PASS if recs and recs[0]["op"] == "mount" else FAIL)("the first record is a mount",
                                                      recs[0] if recs else "no records")
(PASS if recs and recs[-1]["op"] == "unmount" else FAIL)("the last record is an unmount",
                                                         recs[-1] if recs else "no records")
(PASS if len(mounts) == 2 and len(unmounts) == 2 else FAIL)(
    "two mounts, two unmounts", "%d mount, %d unmount" % (len(mounts), len(unmounts)))
order = [r["op"] for r in recs if r["op"] in ("mount", "unmount")]
(PASS if order == ["mount", "unmount", "mount", "unmount"] else FAIL)(
    "mount and unmount records alternate", order)
for r in mounts[:1] + unmounts[:1]:
    d = r["detail"] or ""
    probs = []
    if "custodyfs %s" % version not in d:
        probs.append("no version %s" % version)
    if "mountpoint %s" % M not in d or "backing %s" % B not in d:
        probs.append("no mountpoint/backing")
    if "options" not in d or "noatime" not in d or "allow_other" not in d:
        probs.append("options missing (noatime, allow_other)")
    if r["uid"] != 0 or r["user"] != "root" or r["process"] != "custodyfs" \
            or r["exe"] != daemon_exe or not isinstance(r["pid"], int) or r["pid"] <= 0:
        probs.append("starter identity %r" % {k: r[k] for k in ("uid", "user", "pid", "process", "exe")})
    if r["path"] is not None or r["result"] != "ok":
        probs.append("path %r result %r" % (r["path"], r["result"]))
    (FAIL if probs else PASS)("%s record (seq %d): who started the daemon, version, options"
                              % (r["op"], r["seq"]), "; ".join(probs) + " -- detail: " + d)

# file ids: one per file, 32 hex
ids = {}
for r in recs:
    if r["file_id"] is not None and r["path"]:
        ids.setdefault(r["path"], set()).add(r["file_id"])
badid = {p: sorted(v) for p, v in ids.items() if len(v) != 1 or not re.match(r"^[0-9a-f]{32}$", next(iter(v)))}
(FAIL if badid else PASS)("each file has one file_id of 32 hex digits in all its records", badid)
allids = [next(iter(v)) for v in ids.values()]
(PASS if len(set(allids)) == len(allids) else FAIL)("different files have different file_ids", ids)
need = [r for r in recs if r["op"] in ("open", "create", "read", "write", "truncate")
        and r["result"] == "ok" and (r["file_id"] is None or not re.match(r"^[0-9a-f]{32}$", r["file_id"]))]
(FAIL if need else PASS)("file_id present on every successful open/create/read/write/truncate",
                         [(r["seq"], r["op"], r["path"]) for r in need][:10])
nonio = [r for r in recs if r["op"] not in ("read", "write") and (r["bytes"] is not None or r["ranges"] is not None)]
(FAIL if nonio else PASS)("bytes and ranges only on read and write records",
                          [(r["seq"], r["op"]) for r in nonio][:10])

# expectations
used = set()
IDENT = ("uid", "gid", "user", "pid", "ppid", "pstart", "process", "exe")
kernel_enoent = []
for line in open(expf):
    e = json.loads(line)
    if "check" in e:
        (PASS if e["ok"] else FAIL)(e["check"], e.get("info", ""))
        continue
    if "kernel_enoent" in e:
        kernel_enoent.append(e["kernel_enoent"])
        continue
    what = "%s %s%s -> %s" % (e["op"], e["path"], " " + e["path2"] if e["path2"] else "", e["result"])
    if e["uid"] != 0:
        what += " (uid %d)" % e["uid"]
    if "bytes" in e:
        what += " %d bytes" % e["bytes"]
    cands = [r for r in recs if r["seq"] not in used and r["op"] == e["op"] and r["pid"] == e["pid"]
             and r["result"] == e["result"]]

    def diffs(r):
        d = []
        for k in ("path", "path2") + IDENT:
            if r[k] != e[k]:
                d.append("%s=%r (want %r)" % (k, r[k], e[k]))
        for k in ("bytes", "ranges", "detail"):
            if k in e and r[k] != e[k]:
                d.append("%s=%r (want %r)" % (k, r[k], e[k]))
        if "detail_has" in e and e["detail_has"] not in (r["detail"] or ""):
            d.append("detail=%r (want it to name %r)" % (r["detail"], e["detail_has"]))
        if "detail_any" in e and not any(x in (r["detail"] or "") for x in e["detail_any"]):
            d.append("detail=%r (want it to name one of %r)" % (r["detail"], e["detail_any"]))
        fid = e.get("file_id")
        if fid is True and not r["file_id"]:
            d.append("no file_id")
        elif isinstance(fid, str):
            want = ids.get(fid)
            if r["file_id"] is None or (want and r["file_id"] not in want):
                d.append("file_id=%r (want the one of %s: %r)" % (r["file_id"], fid, want))
        return d

    scored = sorted(cands, key=lambda r: (len(diffs(r)), r["seq"]))
    if scored and not diffs(scored[0]):
        used.add(scored[0]["seq"])
        PASS("recorded: " + what)
    elif scored:
        used.add(scored[0]["seq"])
        FAIL("recorded: " + what, "closest record seq %d: %s" % (scored[0]["seq"], "; ".join(diffs(scored[0]))))
    else:
        near = [(r["seq"], r["op"], r["path"], r["path2"], r["result"], r["pid"]) for r in recs
                if r["op"] == e["op"]][:6]
        FAIL("recorded: " + what, "no %s record with result %s from pid %d; %s records: %s"
             % (e["op"], e["result"], e["pid"], e["op"], near))

# the uid-1000 records name the user
u = [r for r in recs if r["uid"] == 1000]
(PASS if u and all(r["user"] == u1000 and r["gid"] == 1000 for r in u) else FAIL)(
    "records of uid 1000 name user %s, gid 1000" % u1000, [(r["seq"], r["user"], r["gid"]) for r in u])

# the integrity failure
ifail = [r for r in recs if r["op"] == "integrity-failure"]
ok = [r for r in ifail if r["path"] == "/tamper.bin" and r["result"] == "EIO" and r["detail"] == "block 1"
      and r["file_id"] is not None and r["file_id"] in ids.get("/tamper.bin", set())
      and r["process"] == "python3"]
(PASS if ok else FAIL)("integrity-failure record: /tamper.bin, EIO, block 1, its file_id, the reader",
                       ifail[:3])

# the kernel refuses a rename of a missing name at lookup: no record can exist
for k in kernel_enoent:
    found = [r for r in recs if r["op"] == k["op"] and r["path"] == k["path"]]
    NOTE("rename of a missing name (ENOENT from the kernel's lookup): %s" %
         ("recorded" if found else "not recorded (never reaches the daemon)"))
PYEOF
)

# ---- verify, head, verify --head
out=$("$CUSTODYCTL" verify "$B" 2>&1); rc=$?
check_eq "custodyctl verify exits 0 on the untouched log" 0 "$rc" || echo "# $out"
check_match "  ... and says so" "^audit log verified: [0-9]+ records" "$out"
"$CUSTODYCTL" head "$B" > "$SCRATCH/head" 2> "$SCRATCH/head.err"
check_eq "custodyctl head exits 0" 0 "$?"
check_match "  ... printing one head line" "^custodyfs-head 1 [0-9a-f]{32} [0-9]+ [0-9a-f]{64} [0-9]+ [0-9a-f]{64} [0-9a-f]{128}$" "$(cat "$SCRATCH/head")"
check_eq "  ... on one line" 1 "$(line_count "$SCRATCH/head")"
NREC=$(line_count "$SCRATCH/log.json")
check_eq "  ... naming the last record" "$NREC" "$(awk '{ print $4 }' "$SCRATCH/head")"
check "custodyctl verify --head exits 0" "$CUSTODYCTL" verify "$B" --head "$SCRATCH/head"
check "custodyctl verify --head - (standard input) exits 0" \
    bash -c '"$1" verify "$2" --head - < "$3"' _ "$CUSTODYCTL" "$B" "$SCRATCH/head"

# ---- csv and table listings
"$CUSTODYCTL" log "$B" --format csv > "$SCRATCH/log.csv"
check_eq "custodyctl log --format csv exits 0" 0 "$?"
report < <("$PY" - "$SCRATCH/log.csv" "$SCRATCH/log.json" <<'PYEOF'
import csv, json, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
js = [json.loads(l) for l in open(sys.argv[2])]
hdr = "seq,time,uid,user,gid,pid,ppid,pstart,process,exe,op,path,path2,file_id,result,bytes,ranges,detail,hash".split(",")
print(("PASS" if rows and rows[0] == hdr else "FAIL") + "\tcsv: the header names the fields\t%s" % (rows[:1],))
print(("PASS" if len(rows) == len(js) + 1 else "FAIL") + "\tcsv: one row per record\t%d rows for %d records" % (len(rows) - 1, len(js)))
bad = []
for row, j in zip(rows[1:], js):
    want = ["" if j[k] is None else
            (",".join("%d-%d" % tuple(x) for x in j[k]) if k == "ranges" else str(j[k])) for k in hdr]
    if row != want:
        bad.append((j["seq"], [(h, a, b) for h, a, b in zip(hdr, row, want) if a != b][:3]))
print(("FAIL" if bad else "PASS") + "\tcsv: every row holds the same values as the JSON record\t%s" % bad[:3])
PYEOF
)
"$CUSTODYCTL" log "$B" > "$SCRATCH/log.table"
check_eq "custodyctl log (table) exits 0" 0 "$?"
check_match "table: a header line" "^SEQ +TIME" "$(head -n 1 "$SCRATCH/log.table")"
check_eq "table: one line per record" "$((NREC + 1))" "$(line_count "$SCRATCH/log.table")"
check_eq "table: the records in seq order" "$(seq 1 "$NREC" | tr '\n' ' ')" \
    "$(tail -n +2 "$SCRATCH/log.table" | awk '{ printf "%s ", $1 }')"
"$CUSTODYCTL" log "$B" --format table > "$SCRATCH/log.table2"
check "--format table is the default" cmp -s "$SCRATCH/log.table" "$SCRATCH/log.table2"
out=$("$CUSTODYCTL" log "$B" --format xml 2>&1); rc=$?
check_eq "log --format xml: usage error (exit 2)" 2 "$rc"

# ---- --audit-db elsewhere, for the daemon and for custodyctl; names that need escaping
B2=$SCRATCH/backing2
M2=$SCRATCH/mnt2
ELSE=$SCRATCH/elsewhere
mkdir -p "$ELSE"
make_vault "$B2" "$KEY" || bail "custodyctl init (second vault) failed"
mount_vault "$B2" "$M2" --keyfile "$KEY" --audit-db "$ELSE/log.db" \
    || bail "mount with --audit-db failed: $(cat "$SCRATCH/mount.err")"
expect_ok "create files with names that need escaping, one not UTF-8" '
for name in ["/quote\"back\\\\slash\ttab", "/new\nline", "/caf\u00e9"]:
    with open(argv[0] + name, "w") as f:
        f.write("x")
with open(argv[0].encode() + b"/raw\xffbyte", "w") as f:
    f.write("y")
with open(argv[0] + "/raw\\xffbyte", "w") as f:    # a real backslash, then "xff"
    f.write("z")
' "$M2"
unmount_vault "$M2" || bail "unmount of the second vault failed"
check "the daemon wrote the log at --audit-db" test -s "$ELSE/log.db"
check "  ... and not at BACKING/.custody/audit.db" test ! -e "$B2/.custody/audit.db"
check "custodyctl verify --audit-db exits 0" "$CUSTODYCTL" verify "$B2" --audit-db "$ELSE/log.db"
check "custodyctl verify --audit-db=PATH exits 0" "$CUSTODYCTL" verify "$B2" --audit-db="$ELSE/log.db"
"$CUSTODYCTL" head "$B2" --audit-db "$ELSE/log.db" > "$SCRATCH/head2" 2>&1
check_eq "custodyctl head --audit-db exits 0" 0 "$?"
check "custodyctl verify --audit-db --head exits 0" \
    "$CUSTODYCTL" verify "$B2" --audit-db "$ELSE/log.db" --head "$SCRATCH/head2"
expect_fail "custodyctl verify without --audit-db finds no log" "$CUSTODYCTL" verify "$B2"
"$CUSTODYCTL" log "$B2" --audit-db "$ELSE/log.db" --format json > "$SCRATCH/log2.json" 2>&1
check_eq "custodyctl log --audit-db exits 0" 0 "$?"
report < <("$PY" - "$SCRATCH/log2.json" <<'PYEOF'
import json, sys
raw = open(sys.argv[1], "rb").read()
recs, bad = [], []
for n, line in enumerate(raw.splitlines(), 1):
    try:
        recs.append(json.loads(line.decode("utf-8")))
    except Exception as e:  # noqa: BLE001
        bad.append("line %d: %s: %r" % (n, e, line[:160]))
print(("FAIL" if bad else "PASS") + "\tlog --audit-db --format json: every line is valid JSON (UTF-8), also for a name that is not UTF-8\t%s" % "; ".join(bad[:3]))
paths = {r["path"] for r in recs if r["op"] == "create"}
for want in ["/quote\"back\\\\slash\ttab", "/new\nline", "/caf\u00e9"]:
    print(("PASS" if want in paths else "FAIL") + "\tcreate of %r is listed with its exact name\t%s" % (want, sorted(map(repr, paths))))
raw = [r["path"] for r in recs if r["op"] == "create" and (r["path"] or "").startswith("/raw")]
print(("PASS" if len(raw) == 2 and raw[0] != raw[1] else "FAIL") + "\tthe JSON names of \"/raw<0xff>byte\" and \"/raw\\xffbyte\" (a real backslash) differ\t%r" % raw)
ops = [r["op"] for r in recs]
print(("PASS" if ops[:1] == ["mount"] and ops[-1:] == ["unmount"] else "FAIL") + "\tthe log at --audit-db holds the mount and the unmount\t%s" % ops)
PYEOF
)
T_DONE=$(date +%s%N)
printf '# run time: %d s\n' $(((T_DONE - T_START) / 1000000000))
done_testing
