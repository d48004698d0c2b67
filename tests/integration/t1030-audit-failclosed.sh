#!/bin/bash
# Fail-closed audit log.  The log is kept (--audit-db) on a 2 MiB tmpfs; with the vault mounted,
# the tmpfs is filled (the database left alone) until operations through the mount fail with EIO:
# reads of an existing file return no data, creates fail, and no file is created without a
# record.  When the space is freed, the mount recovers by itself within a few seconds and the log
# holds an audit-gap record with the number of refused operations; verify exits 0 after
# unmounting.  A mount whose audit database cannot be written (read-only tmpfs, a database on a
# file system remounted read-only, an immutable database file) is refused at start: exit 1, one
# line, nothing mounted, no daemon left.
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools chattr
T_START=$(date +%s)

KEY=$SCRATCH/key
B=$SCRATCH/backing
M=$SCRATCH/mnt
new_keyfile "$KEY"
make_vault "$B" "$KEY" || bail "custodyctl init failed: $(cat "$SCRATCH/init.err")"

declare -a TMPFS=()
# tmpfs_mount DIR OPTIONS: a tmpfs this script mounts (and unmounts at the end)
tmpfs_mount() {
    mkdir -p "$1" && mount -t tmpfs -o "$2" tmpfs "$1" || return 1
    TMPFS+=("$1")
}
tmpfs_unmount_all() {
    local d
    for d in "${TMPFS[@]}"; do
        mountinfo_has "$d" && umount "$d"
    done
    TMPFS=()
}

AUD=$SCRATCH/auditfs
tmpfs_mount "$AUD" size=2m,mode=0700 || bail "cannot mount a tmpfs on $AUD"
DB=$AUD/audit.db
mount_vault "$B" "$M" --keyfile "$KEY" --audit-db "$DB" || bail "mount failed: $(cat "$SCRATCH/mount.err")"
"$PY" "$HELPERS_PY" write "$M/existing.bin" 0 65536 3 || bail "writing existing.bin failed"
mkdir "$M/during" "$M/after" || bail "mkdir failed"

T_OUT0=$(date +%s%N)
"$PY" - "$M" "$AUD" "$B" > "$SCRATCH/outage.json" 2> "$SCRATCH/outage.err" <<'PYEOF'
import errno, json, os, sys, time
M, AUD, B = sys.argv[1:4]
res = {}
# a descriptor opened before the outage
pre = os.open(M + "/existing.bin", os.O_RDONLY)

# fill the tmpfs (the database itself is left alone)
fill = os.open(AUD + "/fill", os.O_WRONLY | os.O_CREAT, 0o600)
chunk = bytes(65536)
try:
    while True:
        os.write(fill, chunk)
except OSError as e:
    res["fill"] = errno.errorcode.get(e.errno)
try:                                     # the last few bytes too
    while True:
        os.write(fill, chunk[:512])
except OSError:
    pass
os.close(fill)

# operations until they fail with EIO
created, failed, first_eio = [], [], None
t0 = time.time()
n = 0
while time.time() - t0 < 40 and n < 20000:
    name = "/during/f%05d" % n
    n += 1
    try:
        fd = os.open(M + name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as e:
        failed.append((name, errno.errorcode.get(e.errno)))
        if e.errno == errno.EIO:
            first_eio = name
            break
        continue
    created.append(name)
    try:
        os.write(fd, b"d" * 4096)
        os.close(fd)
    except OSError as e:
        failed.append((name + " (write/close)", errno.errorcode.get(e.errno)))
        if e.errno == errno.EIO:
            first_eio = name
            break
res["attempts_before_eio"] = n
res["first_eio"] = first_eio
res["created"] = created
res["failed"] = failed[-5:]
res["t_first_eio"] = time.time_ns()

# during the outage
eio = 0
def attempt(key, fn):
    global eio
    try:
        r = fn()
        res[key] = "OK" if r is None else ("OK:%d bytes" % len(r) if isinstance(r, bytes) else "OK")
    except OSError as e:
        res[key] = errno.errorcode.get(e.errno)
        if e.errno == errno.EIO:
            eio += 1

time.sleep(0.3)
attempt("open_existing", lambda: os.close(os.open(M + "/existing.bin", os.O_RDONLY)))
def read_pre():
    os.posix_fadvise(pre, 0, 0, os.POSIX_FADV_DONTNEED)
    return os.pread(pre, 4096, 8192)
attempt("read_preopened", read_pre)
attempt("create_new", lambda: os.close(os.open(M + "/during/new", os.O_WRONLY | os.O_CREAT, 0o644)))
res["create_new_in_backing"] = os.path.exists(B + "/during/new")
attempt("mkdir", lambda: os.mkdir(M + "/during/dir"))
attempt("unlink", lambda: os.unlink(M + "/existing.bin"))
attempt("rename", lambda: os.rename(M + "/existing.bin", M + "/moved.bin"))
attempt("chmod", lambda: os.chmod(M + "/existing.bin", 0o600))
for i in range(5):
    attempt("create_%d" % i, lambda: os.close(os.open(M + "/during/x%d" % i, os.O_WRONLY | os.O_CREAT, 0o644)))
res["existing_still_there"] = os.path.exists(B + "/existing.bin")
res["eio_during"] = eio
res["created_during_in_backing"] = sorted(n for n in os.listdir(B + "/during")
                                          if not n.startswith("f"))

# free the space: the mount must recover by itself
time.sleep(1.0)
os.unlink(AUD + "/fill")
t_free = time.time()
res["t_free"] = time.time_ns()
ok_after = None
k = 0
while time.time() - t_free < 15:
    try:
        fd = os.open(M + "/after/a%03d" % k, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"a")
        os.close(fd)
        ok_after = time.time() - t_free
        break
    except OSError as e:
        k += 1
        time.sleep(0.1)
res["recovered_after_s"] = ok_after
try:
    os.posix_fadvise(pre, 0, 0, os.POSIX_FADV_DONTNEED)
    res["read_after"] = len(os.pread(pre, 4096, 8192))
except OSError as e:
    res["read_after"] = errno.errorcode.get(e.errno)
os.close(pre)
print(json.dumps(res))
PYEOF
rc=$?
T_OUT1=$(date +%s%N)
check_eq "the outage workload ran through" 0 "$rc" || sed -e 's/^/# /' "$SCRATCH/outage.err"
J=$(cat "$SCRATCH/outage.json")
jq_() { "$PY" -c 'import json,sys; v=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$J" "$1"; }
printf '# outage: %s\n' "$(jq_ '{k: v for k, v in v.items() if k != "created"}')"
check_eq "filling the tmpfs ends with ENOSPC" ENOSPC "$(jq_ 'v.get("fill")')"
check_ne "creates through the mount start failing with EIO once the log cannot be written" None "$(jq_ 'v["first_eio"]')"
check_eq "during the outage: opening an existing file fails with EIO" EIO "$(jq_ 'v["open_existing"]')"
check_eq "during the outage: reading through a descriptor opened before returns no data (EIO)" EIO "$(jq_ 'v["read_preopened"]')"
check_eq "during the outage: creating a file fails with EIO" EIO "$(jq_ 'v["create_new"]')"
check_eq "  ... and the file was not created" False "$(jq_ 'v["create_new_in_backing"]')"
check_eq "during the outage: mkdir fails with EIO" EIO "$(jq_ 'v["mkdir"]')"
check_eq "during the outage: unlink fails with EIO" EIO "$(jq_ 'v["unlink"]')"
check_eq "during the outage: rename fails with EIO" EIO "$(jq_ 'v["rename"]')"
check_eq "during the outage: chmod fails with EIO" EIO "$(jq_ 'v["chmod"]')"
check_eq "  ... and the file that unlink and rename were refused on is still there" True "$(jq_ 'v["existing_still_there"]')"
check_eq "  ... and nothing was created in the backing directory during the outage" "[]" "$(jq_ 'v["created_during_in_backing"]')"
REC=$(jq_ 'v["recovered_after_s"]')
check_match "after the space is freed, operations work again within 5 s (took ${REC} s)" '^[0-4]\.[0-9]+$|^0$' "$REC"
check_eq "  ... and reads return data again" 4096 "$(jq_ 'v["read_after"]')"

unmount_vault "$M" || bail "unmount failed"
out=$("$CUSTODYCTL" verify "$B" --audit-db "$DB" 2>&1); rc=$?
check_eq "after unmounting, verify exits 0" 0 "$rc" || printf '#   %s\n' "$out"
"$CUSTODYCTL" log "$B" --audit-db "$DB" --format json > "$SCRATCH/log.json" 2>&1 \
    || fail "custodyctl log failed" "$(head -c 500 "$SCRATCH/log.json")"
ls "$B/during" > "$SCRATCH/during.ls"
while IFS=$'\t' read -r kind desc detail; do
    case $kind in
        PASS) pass "$desc" ;;
        FAIL) fail "$desc" "$detail" ;;
        *) printf '# %s %s\n' "$kind" "$desc" ;;
    esac
done < <("$PY" - "$SCRATCH/log.json" "$SCRATCH/outage.json" "$SCRATCH/during.ls" "$T_OUT0" "$T_OUT1" <<'PYEOF'
import json, re, sys, calendar, time
logf, outf, lsf, t0, t1 = sys.argv[1:]
t0, t1 = int(t0), int(t1)
recs = [json.loads(l) for l in open(logf)]
o = json.loads(open(outf).read())
files = [l.strip() for l in open(lsf) if l.strip()]


def out(ok, desc, info=""):
    print("%s\t%s\t%s" % ("PASS" if ok else "FAIL", desc, str(info)[:1500]))


def tns(s):
    return calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) * 10**9 + int(s[20:29])


out([r["seq"] for r in recs] == list(range(1, len(recs) + 1)), "seq is gapless")
gaps = [r for r in recs if r["op"] == "audit-gap"]
out(len(gaps) == 1, "one audit-gap record", [(r["seq"], r["detail"]) for r in gaps])
if gaps:
    g = gaps[0]
    m = re.search(r"could not be written for ([0-9.]+) s \((.*)\); ([0-9]+) operations were refused", g["detail"] or "")
    out(m is not None, "the audit-gap detail says how long and how many operations were refused", g["detail"])
    if m:
        secs, refused = float(m.group(1)), int(m.group(3))
        outage = (o["t_free"] - o["t_first_eio"]) / 1e9
        out(outage - 0.5 <= secs <= outage + 20, "the outage lasted %.1f s by the record, about %.1f s by the test" % (secs, outage))
        out(refused >= o["eio_during"], "refused operations counted: %d (the test saw %d refused during the outage)" % (refused, o["eio_during"]))
    out(g["result"] == "ok" and g["process"] == "custodyfs", "the audit-gap record: result ok, process custodyfs", g)
    out(t0 <= tns(g["time"]) <= t1, "the audit-gap record's time is the time of recovery", g["time"])
    before = [r for r in recs if r["seq"] < g["seq"]]
    after = [r for r in recs if r["seq"] > g["seq"]]
    out(any(r["op"] == "create" and r["path"] == "/after/a000" for r in after)
        or any(r["op"] == "create" and (r["path"] or "").startswith("/after/") for r in after),
        "the first create after recovery is recorded after the audit-gap record")
creates = {r["path"] for r in recs if r["op"] == "create"}
missing = ["/during/" + f for f in files if "/during/" + f not in creates]
out(not missing, "no file was created without a record (%d files in /during)" % len(files), missing[:10])
created = o["created"]
miss2 = [p for p in created if p not in creates]
out(not miss2, "every create that returned success (%d) is recorded" % len(created), miss2[:10])
PYEOF
)

# ---- refused at start when the log cannot be written
# refused NAME DB: custodyfs must exit 1 with one line on stderr and leave nothing mounted
refused() {
    local name=$1 db=$2 mnt=$SCRATCH/mnt-refused out rc pid
    mkdir -p "$mnt"
    timeout "$CMD_TIMEOUT" "$CUSTODYFS" "$B" "$mnt" --keyfile "$KEY" --audit-db "$db" \
        > "$SCRATCH/refused.out" 2> "$SCRATCH/refused.err" < /dev/null
    rc=$?
    if mountinfo_has "$mnt"; then
        _remember_mount "$mnt"
        _remember_daemon "$mnt"
        fail "$name: nothing mounted" "custodyfs exited $rc but $mnt is mounted"
        unmount_vault "$mnt"
        return 1
    fi
    check_eq "$name: custodyfs exits 1" 1 "$rc"
    check_eq "$name: one line on standard error" 1 "$(line_count "$SCRATCH/refused.err")" \
        || printf '#   %s\n' "$(cat "$SCRATCH/refused.err")"
    check_match "$name: the line says why" "^custodyfs: .*audit" "$(cat "$SCRATCH/refused.err")"
    pid=$(pids_with_arg "$mnt")
    check_eq "$name: no daemon left running" "" "$pid"
}

# a read-only tmpfs: the database cannot be created
RO=$SCRATCH/rofs
tmpfs_mount "$RO" ro,size=1m || bail "cannot mount a read-only tmpfs"
refused "log on a read-only file system" "$RO/audit.db"

# an existing log, its file system then remounted read-only
RO2=$SCRATCH/rofs2
tmpfs_mount "$RO2" size=4m,mode=0700 || bail "cannot mount a tmpfs on $RO2"
mount_vault "$B" "$M" --keyfile "$KEY" --audit-db "$RO2/audit.db" || bail "mount on $RO2 failed"
echo hello > "$M/hello"
unmount_vault "$M" || bail "unmount failed"
mount -o remount,ro "$RO2" || bail "cannot remount $RO2 read-only"
refused "log on a file system remounted read-only" "$RO2/audit.db"
out=$("$CUSTODYCTL" verify "$B" --audit-db "$RO2/audit.db" 2>&1); rc=$?
check_eq "custodyctl verify reads a log on a read-only file system" 0 "$rc" || printf '#   %s\n' "$out"
out=$("$CUSTODYCTL" log "$B" --audit-db "$RO2/audit.db" 2>&1); rc=$?
check_eq "custodyctl log reads a log on a read-only file system" 0 "$rc" || printf '#   %s\n' "${out:0:300}"
mount -o remount,rw "$RO2"

# an immutable database file (chattr +i)
if chattr +i "$RO2/audit.db" 2>/dev/null; then
    refused "immutable log file" "$RO2/audit.db"
    chattr -i "$RO2/audit.db"
else
    printf '# chattr +i is not supported on tmpfs here: case skipped\n'
fi

tmpfs_unmount_all
check "every tmpfs this script mounted is unmounted" bash -c '! grep -q -F "$1" /proc/self/mountinfo' _ "$AUD"
printf '# run time: %d s\n' $(($(date +%s) - T_START))
done_testing
