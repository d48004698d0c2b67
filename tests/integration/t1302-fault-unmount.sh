#!/bin/bash
# Unmounting under load, a second daemon, and a stale mount after kill -9.
#
#   1. Files open (and a working directory inside the mount): fusermount3 -u fails ("busy"), the
#      mount keeps working; fusermount3 -u -z detaches it; the open descriptors keep working
#      (read and verify, write and fsync); once they are closed the daemon exits by itself, its
#      last audit record is the unmount, the log verifies with every head signed, and what was
#      written after the lazy unmount is on disk.
#   2. fusermount3 -u, retried, while a process reads and verifies a 32 MiB file in a loop:
#      each attempt either fails "busy" with the mount intact or unmounts cleanly; the reader
#      never sees a wrong byte and only ENOENT once the mount is gone; the daemon exits and the
#      log verifies.
#   3. A second daemon on the same backing directory (same or other mountpoint, or the backing
#      directory named through a symbolic link): exit status 1, one line naming the first
#      daemon's pid, nothing mounted, no audit record, the lock still names the first daemon,
#      and the first mount keeps working.
#   4. kill -9: the mountpoint answers ENOTCONN; fusermount3 -u -z removes the stale mount; the
#      vault mounts again, the data is there, the log verifies.
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools sqlite3
T_START=$(date +%s)
setup_vault
export LIB_DIR

# the daemon serving $M (from the vault lock, checked against our scratch dir)
daemon_pid() {
    local pid
    pid=$(tr -dc '0-9' < "$B/.custody/lock" 2>/dev/null)
    [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -F "$SCRATCH" \
        || pid=$(daemon_pid_for "$M")
    echo "$pid"
}

wait_gone() { # PID SECONDS
    for _ in $(seq 1 $(($2 * 10))); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

last_op() {
    sqlite3 "$B/.custody/audit.db" 'SELECT op FROM records ORDER BY seq DESC LIMIT 1' 2>&1
}

nrecords() {
    sqlite3 "$B/.custody/audit.db" 'SELECT count(*) FROM records' 2>&1
}

verify_signed() { # LABEL
    local out rc
    out=$(timeout "$CMD_TIMEOUT" "$CUSTODYCTL" verify "$B" 2>&1); rc=$?
    check_eq "$1: custodyctl verify exits 0" 0 "$rc" || printf '#   %s\n' "$out"
    check_match "$1: every record is under a signed head" "the chain holds$" "$out"
}

py "write_all(os.open(sys.argv[1], os.O_WRONLY|os.O_CREAT, 0o644), pattern(11, 0, 1<<20), 0)" "$M/f1" \
    || bail "cannot write $M/f1"
py "write_all(os.open(sys.argv[1], os.O_WRONLY|os.O_CREAT, 0o644), pattern(12, 0, 5000), 0)" "$M/f2" \
    || bail "cannot write $M/f2"
mkdir "$M/dir" || bail "mkdir failed"

# ---------------------------------------------------------------------------------------------
# 1. open files, lazy unmount
cat > "$SCRATCH/holder.py" <<'PYEOF'
import os, sys, time
sys.path.insert(0, os.environ["LIB_DIR"])
from helpers import pattern, read_all, write_all
m, scratch = sys.argv[1], sys.argv[2]
os.chdir(m + "/dir")
r = os.open(m + "/f1", os.O_RDONLY)
w = os.open(m + "/f2", os.O_WRONLY)
open(scratch + "/holder.ready", "w").close()
while not os.path.exists(scratch + "/holder.go"):
    time.sleep(0.05)
res = []
try:
    got = read_all(r, 1 << 20, 0)
    res.append("read " + ("OK" if got == pattern(11, 0, 1 << 20) else "WRONG %d bytes" % len(got)))
except OSError as e:
    res.append("read %s" % e)
try:
    write_all(w, pattern(13, 0, 9000), 0)
    os.fsync(w)
    res.append("write OK")
except OSError as e:
    res.append("write %s" % e)
try:
    os.close(r)
    os.close(w)
    res.append("close OK")
except OSError as e:
    res.append("close %s" % e)
os.chdir("/")
open(scratch + "/holder.result", "w").write(" ".join(res))
PYEOF
dpid=$(daemon_pid)
[ -n "$dpid" ] || bail "cannot find the daemon's pid"
"$PY" "$SCRATCH/holder.py" "$M" "$SCRATCH" 2> "$SCRATCH/holder.err" &
holder=$!
for _ in $(seq 1 100); do [ -e "$SCRATCH/holder.ready" ] && break; sleep 0.1; done
[ -e "$SCRATCH/holder.ready" ] || bail "the holder did not open its files: $(cat "$SCRATCH/holder.err")"

out=$(fusermount3 -u "$M" 2>&1); rc=$?
check_ne "1: fusermount3 -u with open files fails" 0 "$rc"
check_match "1: ... saying the mount is busy" "[Bb]usy" "$out"
if mountinfo_has "$M" && cmp -s <(py "sys.stdout.buffer.write(pattern(11, 0, 1<<20))") "$M/f1"; then
    pass "1: after the refused unmount the mount still serves files"
else
    fail "1: after the refused unmount the mount still serves files" "$(ls -la "$M" 2>&1)"
fi
out=$(fusermount3 -u -z "$M" 2>&1); rc=$?
check_eq "1: fusermount3 -u -z exits 0" 0 "$rc" || printf '#   %s\n' "$out"
if mountinfo_has "$M"; then fail "1: the lazy unmount detaches the mountpoint"; else
    pass "1: the lazy unmount detaches the mountpoint"; fi
sleep 1
if kill -0 "$dpid" 2>/dev/null; then
    pass "1: the daemon keeps running while files are open"
else
    fail "1: the daemon keeps running while files are open" "pid $dpid is gone"
fi
touch "$SCRATCH/holder.go"
wait "$holder"
check_eq "1: the open descriptors still work after the lazy unmount (read, write+fsync, close)" \
    "read OK write OK close OK" "$(cat "$SCRATCH/holder.result" 2>&1)"
if wait_gone "$dpid" 15; then
    pass "1: the daemon exits once the files are closed"
else
    fail "1: the daemon exits once the files are closed" "pid $dpid still runs 15 s later"
fi
check_eq "1: the last audit record is the unmount" "unmount" "$(last_op)"
verify_signed "1"
mount_vault "$B" "$M" --keyfile "$KEY" || bail "1: mounting again failed: $(cat "$SCRATCH/mount.err")"
expect_ok "1: what was written after the lazy unmount is on disk" \
    'verify_pattern(argv[0], 0, 9000, 13); assert os.stat(argv[0]).st_size == 9000' "$M/f2"

# ---------------------------------------------------------------------------------------------
# 2. fusermount3 -u while a reader loops over a large file
py "write_all(os.open(sys.argv[1], os.O_WRONLY|os.O_CREAT, 0o644), pattern(21, 0, 32<<20), 0)" "$M/big" \
    || bail "cannot write $M/big"
cat > "$SCRATCH/reader.py" <<'PYEOF'
import errno, os, sys, time
sys.path.insert(0, os.environ["LIB_DIR"])
from helpers import pattern
m, scratch = sys.argv[1], sys.argv[2]
SIZE = 32 << 20
want = [pattern(21, off, 1 << 20) for off in range(0, SIZE, 1 << 20)]
passes, wrong, errs = 0, [], {}
t_end = time.time() + 60
while time.time() < t_end:
    try:
        fd = os.open(m + "/big", os.O_RDONLY)
    except OSError as e:
        n = errno.errorcode.get(e.errno, str(e.errno))
        errs[n] = errs.get(n, 0) + 1
        if e.errno == errno.ENOENT:
            break
        time.sleep(0.01)
        continue
    try:
        for _ in range(2):              # two passes per open, from the daemon (no page cache)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            for i, off in enumerate(range(0, SIZE, 1 << 18)):
                b = os.pread(fd, 1 << 18, off)
                if b != want[off >> 20][off & ((1 << 20) - 1):][:1 << 18]:
                    wrong.append("pass %d offset %d: %d bytes" % (passes, off, len(b)))
            passes += 1
            if passes == 1:
                open(scratch + "/reader.ready", "w").close()
    except OSError as e:
        n = errno.errorcode.get(e.errno, str(e.errno))
        errs[n] = errs.get(n, 0) + 1
    finally:
        os.close(fd)
    time.sleep(0.005)
open(scratch + "/reader.result", "w").write("%d|%s|%s" % (passes, wrong[:5], errs))
PYEOF
dpid=$(daemon_pid)
"$PY" "$SCRATCH/reader.py" "$M" "$SCRATCH" 2> "$SCRATCH/reader.err" &
reader=$!
for _ in $(seq 1 200); do [ -e "$SCRATCH/reader.ready" ] && break; sleep 0.1; done
[ -e "$SCRATCH/reader.ready" ] || bail "the reader did not start: $(cat "$SCRATCH/reader.err")"
sleep 3     # let it read for a while
busy=0
other=""
unmounted=0
for _ in $(seq 1 400); do
    out=$(fusermount3 -u "$M" 2>&1)
    if [ $? -eq 0 ]; then
        unmounted=1
        break
    fi
    if [[ "$out" =~ [Bb]usy ]]; then
        busy=$((busy + 1))
        # the refused unmount must leave the mount working
        mountinfo_has "$M" || { other="mount gone after a refused unmount"; break; }
    else
        other="$out"
        break
    fi
    sleep 0.00$((RANDOM % 10))
done
printf '# 2: fusermount3 -u refused %d times as busy before it succeeded (succeeded: %d)\n' "$busy" "$unmounted"
check_eq "2: fusermount3 -u under a reading loop fails only with busy, then succeeds" "1 " "$unmounted $other"
wait "$reader"
IFS='|' read -r passes wrong errs < "$SCRATCH/reader.result"
printf '# 2: the reader verified %s passes over 32 MiB; errors %s\n' "$passes" "$errs"
check_eq "2: the reader never saw a wrong byte" "[]" "$wrong"
check_match "2: the reader saw no error but ENOENT once the mount was gone" "^\{('ENOENT': 1)?\}$" "$errs"
if wait_gone "$dpid" 15; then
    pass "2: the daemon exits after the unmount"
else
    fail "2: the daemon exits after the unmount" "pid $dpid still runs"
fi
check_eq "2: the last audit record is the unmount" "unmount" "$(last_op)"
verify_signed "2"

# ---------------------------------------------------------------------------------------------
# 3. a second daemon on the same vault
mount_vault "$B" "$M" --keyfile "$KEY" || bail "3: mount failed: $(cat "$SCRATCH/mount.err")"
dpid=$(daemon_pid)
sleep 6    # let the first daemon sign its head, so the record count is stable
records_before=$(nrecords)
lock_before=$(cat "$B/.custody/lock")
ln -s "$B" "$SCRATCH/backing-link"
mkdir -p "$SCRATCH/mnt2" "$SCRATCH/mnt3"
for variant in "same mountpoint:$B:$M" "another mountpoint:$B:$SCRATCH/mnt2" \
               "through a symbolic link:$SCRATCH/backing-link:$SCRATCH/mnt3" \
               "with a trailing slash:$B/:$SCRATCH/mnt3"; do
    IFS=: read -r label bdir mdir <<< "$variant"
    timeout "$CMD_TIMEOUT" "$CUSTODYFS" "$bdir" "$mdir" --keyfile "$KEY" \
        > "$SCRATCH/second.out" 2> "$SCRATCH/second.err" < /dev/null
    rc=$?
    check_eq "3: a second daemon ($label) exits with status 1" 1 "$rc"
    check_eq "3: ... with exactly one line on standard error" 1 "$(line_count "$SCRATCH/second.err")"
    check_match "3: ... naming the running daemon's pid" \
        "already mounted by another custodyfs \\(pid $dpid\\).*fusermount3 -u" "$(cat "$SCRATCH/second.err")"
    check_eq "3: ... and nothing on standard output" "" "$(cat "$SCRATCH/second.out")"
    if [ "$mdir" != "$M" ] && mountinfo_has "$mdir"; then
        fail "3: ... and nothing mounted on $mdir"
        fusermount3 -u "$mdir"
    fi
done
check_eq "3: only one fuse mount of the vault exists" 1 \
    "$(awk -v b="$B" '$0 ~ /fuse.custodyfs/ && index($0, " " b " ") { n++ } END { print n + 0 }' /proc/self/mountinfo)"
check_eq "3: the lock still names the first daemon" "$lock_before" "$(cat "$B/.custody/lock")"
check_eq "3: the refused daemons added no audit record" "$records_before" "$(nrecords)"
if kill -0 "$dpid" 2>/dev/null; then pass "3: the first daemon still runs"; else
    fail "3: the first daemon still runs"; fi
expect_ok "3: the first mount still reads its files" 'verify_pattern(argv[0], 0, 1 << 20, 11)' "$M/f1"
expect_ok "3: the first mount still writes" \
    'pwrite_pattern(argv[0], 0, 7777, 31); verify_pattern(argv[0], 0, 7777, 31)' "$M/after-second"

# ---------------------------------------------------------------------------------------------
# 4. a stale mount after kill -9
kill -KILL "$dpid" || bail "4: kill -9 $dpid failed"
wait_gone "$dpid" 10 || bail "4: the daemon survives kill -9"
out=$(stat "$M/." 2>&1); rc=$?
check_ne "4: stat of the stale mountpoint fails" 0 "$rc"
check_match "4: ... with ENOTCONN" "Transport endpoint is not connected" "$out"
check_match "4: a listing fails with ENOTCONN too" "Transport endpoint is not connected" "$(ls "$M" 2>&1)"
out=$(fusermount3 -u -z "$M" 2>&1); rc=$?
check_eq "4: fusermount3 -u -z removes the stale mount" 0 "$rc" || printf '#   %s\n' "$out"
if mountinfo_has "$M"; then fail "4: ... the mountpoint is free"; else pass "4: ... the mountpoint is free"; fi
mount_vault "$B" "$M" --keyfile "$KEY" || bail "4: mounting after kill -9 failed: $(cat "$SCRATCH/mount.err")"
pass "4: the vault mounts again on the same mountpoint"
expect_ok "4: the data is there after kill -9 and a remount" \
    'verify_pattern(argv[0], 0, 1 << 20, 11); verify_pattern(argv[1], 0, 7777, 31); verify_pattern(argv[2], 0, 32 << 20, 21)' \
    "$M/f1" "$M/after-second" "$M/big"
out=$(timeout "$CMD_TIMEOUT" "$CUSTODYCTL" verify "$B" 2>&1); rc=$?
check_eq "4: custodyctl verify exits 0 (mounted again)" 0 "$rc" || printf '#   %s\n' "$out"
unmount_vault "$M" || fail "4: final unmount"
verify_signed "4: after the final unmount"
printf '# run time: %d s\n' $(($(date +%s) - T_START))
done_testing
