#!/bin/bash
# Audit log tampering, with the sqlite3 command-line tool, on COPIES of a real log written by two
# mount sessions: one field of one record changed (several columns), a record deleted, one
# inserted, two swapped, the tail cut off (records and heads after N), the database replaced by an
# older copy (caught with --head), a head's signature forged, the heads deleted.  `custodyctl
# verify` must exit 1 and name the record; it exits 0 on the untouched log and 2 on usage errors.
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools sqlite3
T_START=$(date +%s)
setup_vault

# session_ops TAG: a small workload through the mount
session_ops() {
    "$PY" - "$M" "$1" <<'PYEOF'
import os, sys
m, tag = sys.argv[1], sys.argv[2]
os.makedirs("%s/%s" % (m, tag))
for i in range(12):
    p = "%s/%s/f%02d" % (m, tag, i)
    with open(p, "wb") as f:
        f.write(os.urandom(1000 + i))
    with open(p, "rb") as f:
        f.read()
    os.chmod(p, 0o640)
os.rename("%s/%s/f00" % (m, tag), "%s/%s/g00" % (m, tag))
os.unlink("%s/%s/f01" % (m, tag))
PYEOF
}

session_ops one || bail "workload 1 failed"
unmount_vault "$M" || bail "unmount 1 failed"
DB=$B/.custody/audit.db
[ -s "$DB" ] || bail "no audit log at $DB"

# cp_db FROM TO: copy a database with its WAL (when one is left)
cp_db() {
    rm -f "$2" "$2-wal" "$2-shm"
    cp "$1" "$2" || return 1
    if [ -e "$1-wal" ]; then cp "$1-wal" "$2-wal" || return 1; fi
}
cp_db "$DB" "$SCRATCH/old.db" || bail "copying the log failed"
S1=$(sqlite3 "$SCRATCH/old.db" 'SELECT max(seq) FROM records')

mount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"
session_ops two || bail "workload 2 failed"
unmount_vault "$M" || bail "unmount 2 failed"
"$CUSTODYCTL" head "$B" > "$SCRATCH/head.txt" || bail "custodyctl head failed"
MASTER=$SCRATCH/master.db
cp_db "$DB" "$MASTER" || bail "copying the log failed"
ORIG_SHA=$(cat "$DB" "$DB-wal" 2>/dev/null | sha256sum)
N=$(sqlite3 "$MASTER" 'SELECT max(seq) FROM records')
HEADS=$(sqlite3 "$MASTER" 'SELECT group_concat(seq, " ") FROM (SELECT seq FROM heads ORDER BY seq)')
printf '# %d records; session 1 ends at %d; heads at %s\n' "$N" "$S1" "$HEADS"
if [ "$N" -le $((S1 + 20)) ] || [ "$S1" -le 20 ]; then
    bail "the log is too short to tamper with ($S1, $N)"
fi
check_eq "the head line names the last record" "$N" "$(awk '{ print $4 }' "$SCRATCH/head.txt")"
check "a head signs the end of session 1" grep -qw "$S1" <<< "$HEADS"
# a head strictly inside session 2 (its first commit), to forge
H2=$(sqlite3 "$MASTER" "SELECT min(seq) FROM heads WHERE seq > $S1")

CASE=$SCRATCH/case.db
fresh() { cp_db "$MASTER" "$CASE"; }
tamper() { sqlite3 "$CASE" "$1" 2>&1; }

# verify_case DESC WANT_EXIT [RECORD] [--head FILE]: run verify on the copy
verify_case() {
    local desc=$1 want=$2 rec=${3:-}; shift 3 2>/dev/null || shift $#
    local out rc
    out=$("$CUSTODYCTL" verify "$B" --audit-db "$CASE" "$@" 2>&1); rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "$desc: verify exits $want" "exit status: $rc" "$out"
        return 1
    fi
    if [ -n "$rec" ] && ! grep -q "FAILS verification at record $rec: " <<< "$out"; then
        fail "$desc: verify exits $want and names record $rec" "$out"
        return 1
    fi
    pass "$desc: verify exits $want${rec:+ naming record $rec}"
}

# --- untouched
fresh
verify_case "untouched copy" 0 ""
verify_case "untouched copy, --head" 0 "" --head "$SCRATCH/head.txt"
check "verify of the original log exits 0" "$CUSTODYCTL" verify "$B"

# --- one field of one record changed
R=5
for col in time_ns uid user gid pid ppid pstart process exe op path path2 file_id result bytes ranges detail; do
    fresh
    case $col in
        time_ns|uid|gid|pid|ppid|pstart|bytes)
            tamper "UPDATE records SET $col = CASE WHEN $col IS NULL THEN 7 ELSE $col + 1 END WHERE seq = $R" ;;
        *)
            tamper "UPDATE records SET $col = CASE WHEN $col IS NULL THEN 'x' ELSE $col || 'x' END WHERE seq = $R" ;;
    esac
    verify_case "record $R: $col changed" 1 "$R"
done
fresh
tamper "UPDATE records SET hash = randomblob(32) WHERE seq = 9"
verify_case "record 9: hash replaced" 1 9
fresh
tamper "UPDATE records SET result = 'EACCES' WHERE seq = $S1"
verify_case "record $S1 (signed by a head): result changed" 1 "$S1"
fresh
tamper "UPDATE records SET path = '/innocent' WHERE seq = $N"
verify_case "the last record: path changed" 1 "$N" --head "$SCRATCH/head.txt"

# --- a record deleted
fresh
tamper "DELETE FROM records WHERE seq = 7"
verify_case "record 7 deleted" 1 7
fresh
tamper "DELETE FROM records WHERE seq = 7; UPDATE records SET seq = seq - 1 WHERE seq > 7"
verify_case "record 7 deleted, the later ones renumbered" 1 7

# --- a record inserted
fresh
tamper "UPDATE records SET seq = seq + 100000 WHERE seq >= 10;
        UPDATE records SET seq = seq - 99999 WHERE seq >= 100010;
        INSERT INTO records SELECT 10, time_ns, uid, user, gid, pid, ppid, pstart, process, exe,
            'unlink', '/evidence', NULL, NULL, 'ok', NULL, NULL, NULL, hash FROM records WHERE seq = 9"
verify_case "a record inserted at 10" 1 10
fresh
tamper "INSERT INTO records SELECT $((N + 1)), time_ns, uid, user, gid, pid, ppid, pstart, process,
            exe, 'unlink', '/x', NULL, NULL, 'ok', NULL, NULL, NULL, randomblob(32)
        FROM records WHERE seq = $N"
verify_case "a record appended after the end" 1 "$((N + 1))"

# --- two records swapped
fresh
tamper "CREATE TABLE t AS SELECT * FROM records WHERE seq IN (6, 11);
        UPDATE records SET (time_ns, uid, user, gid, pid, ppid, pstart, process, exe, op, path, path2,
            file_id, result, bytes, ranges, detail, hash) = (SELECT time_ns, uid, user, gid, pid,
            ppid, pstart, process, exe, op, path, path2, file_id, result, bytes, ranges, detail,
            hash FROM t WHERE t.seq = 17 - records.seq) WHERE seq IN (6, 11); DROP TABLE t"
verify_case "records 6 and 11 swapped" 1 6

# --- the tail cut off
fresh
tamper "DELETE FROM records WHERE seq > $S1; DELETE FROM heads WHERE seq > $S1"
verify_case "records and heads after $S1 cut off, with the kept head" 1 "$N" --head "$SCRATCH/head.txt"
out=$("$CUSTODYCTL" verify "$B" --audit-db "$CASE" 2>&1)
printf '# note: without --head the cut at a head is not detectable: %s\n' "$out"
K=$(((S1 + N) / 2))
fresh
tamper "DELETE FROM records WHERE seq > $K; DELETE FROM heads WHERE seq > $K"
verify_case "records and heads after $K cut off, with the kept head" 1 "$N" --head "$SCRATCH/head.txt"
fresh
tamper "DELETE FROM records WHERE seq > $K"
verify_case "records after $K cut off, heads kept" 1 "$(sqlite3 "$MASTER" "SELECT min(seq) FROM heads WHERE seq > $K")"

# --- replaced by an older copy
cp_db "$SCRATCH/old.db" "$CASE"
verify_case "the log replaced by the copy taken after session 1, with the kept head" 1 "$N" \
    --head "$SCRATCH/head.txt"
out=$("$CUSTODYCTL" verify "$B" --audit-db "$CASE" 2>&1)
printf '# note: without --head an older copy is a consistent log: %s\n' "$out"

# --- a head's signature forged (one byte flipped), a head edited, heads deleted
for h in "$S1" "$H2" "$N"; do
    fresh
    hex=$(sqlite3 "$CASE" "SELECT hex(signature) FROM heads WHERE seq = $h")
    first=${hex:0:1}
    flipped=$(printf '%X' $(((0x$first) ^ 1)))${hex:1}
    tamper "UPDATE heads SET signature = X'$flipped' WHERE seq = $h"
    check_eq "  (the signature of head $h is still 64 bytes, one bit changed)" 64 \
        "$(sqlite3 "$CASE" "SELECT length(signature) FROM heads WHERE seq = $h")"
    verify_case "signature of head $h forged" 1 "$h"
done
fresh
tamper "UPDATE heads SET time_ns = time_ns + 1 WHERE seq = $S1"
verify_case "time of head $S1 changed" 1 "$S1"
fresh
tamper "DELETE FROM heads"
verify_case "every head deleted" 1 1
fresh
tamper "DELETE FROM heads WHERE seq = $N"
verify_case "the last head (after the unmount) deleted" 1 "$((H2 + 1))"
fresh
tamper "UPDATE meta SET value = '00000000000000000000000000000000' WHERE key = 'vault_id'"
verify_case "the log claims another vault" 1 0

# --- the original is untouched by all this
check_eq "the original log is unchanged" "$ORIG_SHA" "$(cat "$DB" "$DB-wal" 2>/dev/null | sha256sum)"
check "verify of the original log still exits 0" "$CUSTODYCTL" verify "$B" --head "$SCRATCH/head.txt"

# --- usage errors: exit 2
usage_case() {
    local desc=$1 out rc; shift
    out=$("$CUSTODYCTL" "$@" 2>&1); rc=$?
    check_eq "usage error: $desc: exit 2" 2 "$rc" || printf '#   %s\n' "$out"
}
echo "not a head line" > "$SCRATCH/garbage"
usage_case "verify without BACKING" verify
usage_case "verify with two BACKINGs" verify "$B" "$B"
usage_case "verify with an unknown option" verify "$B" --bogus
usage_case "verify --format (not an option of verify)" verify "$B" --format json
usage_case "verify --head of a missing file" verify "$B" --head "$SCRATCH/no-such-file"
usage_case "verify --head of a file that holds no head line" verify "$B" --head "$SCRATCH/garbage"
usage_case "verify --head without its argument" verify "$B" --head

printf '# run time: %d s\n' $(($(date +%s) - T_START))
done_testing
