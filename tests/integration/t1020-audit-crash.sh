#!/bin/bash
# Audit log durability across kill -9, three times in a row: several writer processes create and
# write files through the mount and note each file whose create and close returned success; the
# daemon is killed with SIGKILL under that load, the stale mount is removed (fusermount3 -u -z),
# and the vault is mounted again.  Then every noted file must have its create and write records
# (all its bytes), `custodyctl verify` must exit 0, the new mount must continue the same chain
# (its seq follows the last record without a gap, the unsigned tail was signed first), and no
# unmount record was invented for the killed daemon.
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools sqlite3
T_START=$(date +%s)
setup_vault
WRITERS=4
ROUNDS=3
FILE_SIZE=65536

cat > "$SCRATCH/writer.py" <<'PYEOF'
import os, sys
m, it, k, okf = sys.argv[1:5]
size = int(sys.argv[5])
data = os.urandom(size)
okfd = os.open(okf, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
n = 0
while True:
    name = "/r%s/w%s_%05d" % (it, k, n)
    try:
        fd = os.open(m + name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        for off in range(0, size, 16384):
            os.pwrite(fd, data[off:off + 16384], off)
        os.close(fd)
    except OSError as e:
        sys.stderr.write("writer %s stops at %s: %s\n" % (k, name, e))
        break
    os.write(okfd, (name + "\n").encode())    # create, writes and close returned success
    n += 1
PYEOF

# the daemon serving $M, from the vault lock (which holds its pid), checked against lib.sh
daemon_pid() {
    local pid
    pid=$(tr -dc '0-9' < "$B/.custody/lock")
    [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -F "$SCRATCH" \
        || pid=$(daemon_pid_for "$M")
    echo "$pid"
}

for round in $(seq 1 "$ROUNDS"); do
    mkdir "$M/r$round" || bail "round $round: mkdir failed"
    pids=()
    for k in $(seq 1 "$WRITERS"); do
        "$PY" "$SCRATCH/writer.py" "$M" "$round" "$k" "$SCRATCH/ok.$round.$k" "$FILE_SIZE" \
            2> "$SCRATCH/writer.$round.$k.err" &
        pids+=("$!")
    done
    sleep $((1 + round))           # 2, 3, 4 s of load
    dpid=$(daemon_pid)
    [ -n "$dpid" ] || bail "round $round: cannot find the daemon's pid"
    kill -KILL "$dpid" || bail "round $round: kill -9 $dpid failed"
    for _ in $(seq 1 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
    # the writers stop on their own (the connection is gone); do not wait forever
    for p in "${pids[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    fusermount3 -u -z "$M" 2>/dev/null || umount -l "$M" 2>/dev/null
    for _ in $(seq 1 50); do mountinfo_has "$M" || break; sleep 0.1; done
    if mountinfo_has "$M"; then
        fail "round $round: the stale mount is gone" "$M is still in /proc/self/mountinfo"
    else
        pass "round $round: the stale mount is gone"
    fi
    noted=$(cat "$SCRATCH"/ok."$round".* 2>/dev/null | wc -l)
    printf '# round %d: daemon %d killed; %d files noted as written\n' "$round" "$dpid" "$noted"
    [ "$noted" -gt 0 ] || fail "round $round: the writers wrote nothing before the kill" \
        "$(cat "$SCRATCH"/writer."$round".*.err)"

    mount_vault "$B" "$M" --keyfile "$KEY" \
        || { fail "round $round: mounting again after kill -9" "$(cat "$SCRATCH/mount.err")"; break; }
    pass "round $round: the vault mounts again after kill -9"
    out=$("$CUSTODYCTL" verify "$B" 2>&1); rc=$?
    check_eq "round $round: custodyctl verify exits 0 (mounted again)" 0 "$rc" || printf '#   %s\n' "$out"
    "$CUSTODYCTL" log "$B" --format json > "$SCRATCH/log.$round.json" 2>&1 \
        || fail "round $round: custodyctl log failed" "$(head -c 500 "$SCRATCH/log.$round.json")"
    sqlite3 "$B/.custody/audit.db" 'SELECT seq FROM heads' > "$SCRATCH/heads.$round" 2>&1
    cat "$SCRATCH"/ok."$round".* > "$SCRATCH/noted.$round" 2>/dev/null
    while IFS=$'\t' read -r kind desc detail; do
        case $kind in
            PASS) pass "$desc" ;;
            FAIL) fail "$desc" "$detail" ;;
            *) printf '# %s %s\n' "$kind" "$desc" ;;
        esac
    done < <("$PY" - "$SCRATCH/log.$round.json" "$SCRATCH/noted.$round" "$SCRATCH/heads.$round" \
                 "$round" "$FILE_SIZE" <<'PYEOF'
import json, sys
logf, notedf, headsf, rnd, size = sys.argv[1:]
rnd, size = int(rnd), int(size)
recs = [json.loads(l) for l in open(logf)]
noted = [l.strip() for l in open(notedf) if l.strip()]
heads = {int(l) for l in open(headsf) if l.strip().isdigit()}


def out(ok, desc, info=""):
    print("%s\tround %d: %s\t%s" % ("PASS" if ok else "FAIL", rnd, desc, str(info)[:1500]))


seqs = [r["seq"] for r in recs]
out(seqs == list(range(1, len(recs) + 1)), "seq is gapless over the whole log (1..%d)" % len(recs),
    [s for i, s in enumerate(seqs, 1) if s != i][:5])
mounts = [r for r in recs if r["op"] == "mount"]
out(len(mounts) == rnd + 1, "one mount record per mount (%d)" % (rnd + 1), len(mounts))
out(not any(r["op"] == "unmount" for r in recs), "no unmount record for the killed daemons",
    [r["seq"] for r in recs if r["op"] == "unmount"])
new = mounts[-1] if mounts else None
if new:
    before = [r for r in recs if r["seq"] < new["seq"]]
    out(new["seq"] == len(before) + 1 and all(r["seq"] < new["seq"] for r in before)
        and recs[-1]["seq"] >= new["seq"],
        "the new mount record (seq %d) continues the chain after the last record of the killed "
        "daemon (%d)" % (new["seq"], before[-1]["seq"] if before else 0))
    out(new["seq"] - 1 in heads, "the next mount signed the unsigned tail first (a head at %d)"
        % (new["seq"] - 1), sorted(heads)[-5:])
creates = {}
writes = {}
for r in recs:
    if r["op"] == "create" and r["result"] == "ok":
        creates[r["path"]] = r
    if r["op"] == "write" and r["result"] == "ok":
        w = writes.setdefault(r["path"], [0, []])
        w[0] += r["bytes"] or 0
        w[1].extend(r["ranges"] or [])


def covered(ranges):
    end = 0
    for s, e in sorted(ranges):
        if s > end:
            return False
        end = max(end, e)
    return end >= size


no_create = [p for p in noted if p not in creates]
out(not no_create, "every file whose create and close returned success (%d) has its create "
    "record" % len(noted), "%d without: %s" % (len(no_create), no_create[:8]))
no_write = [p for p in noted if p not in writes or writes[p][0] < size or not covered(writes[p][1])]
out(not no_write, "every such file has write records for all its %d bytes" % size,
    "%d without: %s" % (len(no_write), [(p, writes.get(p)) for p in no_write[:8]]))
PYEOF
)
done

# The narrowest case of the same promise: the daemon is killed right after a close() returned.
dpid=$(daemon_pid)
[ -n "$dpid" ] || bail "cannot find the daemon's pid"
"$PY" - "$M" "$dpid" <<'PYEOF'
import os, signal, sys
m, pid = sys.argv[1], int(sys.argv[2])
fd = os.open(m + "/last.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.pwrite(fd, b"z" * 5000, 0)
os.close(fd)                      # returned success: the write is done
os.kill(pid, signal.SIGKILL)
PYEOF
for _ in $(seq 1 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
fusermount3 -u -z "$M" 2>/dev/null || umount -l "$M" 2>/dev/null
mount_vault "$B" "$M" --keyfile "$KEY" || bail "mounting after the last kill failed: $(cat "$SCRATCH/mount.err")"
"$CUSTODYCTL" log "$B" --format json > "$SCRATCH/log.last.json"
check "killed right after close() returned: the create record is there" \
    grep -q '"op":"create","path":"/last.bin"' "$SCRATCH/log.last.json"
check "killed right after close() returned: the write record (5000 bytes) is there" \
    grep -q '"op":"write","path":"/last.bin".*"bytes":5000,' "$SCRATCH/log.last.json"

unmount_vault "$M" || bail "final unmount failed"
out=$("$CUSTODYCTL" verify "$B" 2>&1); rc=$?
check_eq "after the final unmount, custodyctl verify exits 0" 0 "$rc" || printf '#   %s\n' "$out"
check_match "  ... with no unsigned tail" "the chain holds$" "$out"
printf '# run time: %d s\n' $(($(date +%s) - T_START))
done_testing
