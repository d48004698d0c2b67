#!/bin/bash
# SQLite databases living on the mount, in WAL and in rollback-journal
# (DELETE) mode, and in WAL mode with memory-mapped I/O (PRAGMA mmap_size),
# each run the same way on plain disk and compared:
#   - create, 10,000 rows inserted in transactions of 500 by one writer while
#     3 reader processes read snapshots (each snapshot must be consistent, every
#     row read must hold its content); no reader or writer errors;
#   - 3 writer processes committing at the same time (locking between them);
#   - PRAGMA integrity_check "ok", the same rows (digest) as on plain disk, the
#     same .dump from the sqlite3 CLI; no journal/WAL files left behind;
#   - sqlite3 .backup into the mount; DELETE + VACUUM; all again after a remount;
#   - WAL and DELETE again as an ordinary user (uid 65534).
# The helper is tools/t1210_sqlite.py.
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools sqlite3 setpriv
setup_vault

SQ=$LIB_DIR/tools/t1210_sqlite.py
P=$SCRATCH/plain
OUT=$SCRATCH/out
mkdir -p "$P/sqlite" "$M/sqlite" "$OUT"
ROWS=10000
BATCH=500
READERS=3
WRITERS=3
TXNS=40

# RUNAS: the command prefix for the helper (empty: root)
RUNAS=()
USER_UID=65534
USER_GID=65534

now() { date +%s.%N; }
secs_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# field FILE EXPR: a value from a helper's JSON output (EXPR on r, Python).
field() {
    "$PY" -c 'import json, sys; r = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>&1
}

# sq NAME WHERE(m|p) ARGS...: run the helper; output in $OUT/NAME.WHERE.json.
sq() {
    local name=$1 where=$2; shift 2
    timeout -k 5 "$PY_TIMEOUT" "${RUNAS[@]}" "$PY" "$SQ" "$@" > "$OUT/$name.$where.json" 2> "$OUT/$name.$where.err"
}

# both NAME CMD REL ARGS...: run CMD on $P/REL and $M/REL; check the mount run
# succeeded, its integrity_check is ok and its digest equals plain disk's.
both() {
    local name=$1 cmd=$2 rel=$3; shift 3
    local t0 tp tm rcp rcm
    t0=$(now); sq "$name" p "$cmd" "$P/$rel" "$@"; rcp=$?; tp=$(secs_since "$t0")
    t0=$(now); sq "$name" m "$cmd" "$M/$rel" "$@"; rcm=$?; tm=$(secs_since "$t0")
    _lib_log "timing $name: mount ${tm}s, plain disk ${tp}s"
    [ "$rcp" -eq 0 ] || { fail "$name on plain disk (reference)" "exit $rcp" "$(tail -5 "$OUT/$name.p.err")"; return 1; }
    if [ "$rcm" -ne 0 ]; then
        fail "$name: runs on the mount" "command: $PY $SQ $cmd $M/$rel $*" "exit status $rcm" \
            "$(tail -6 "$OUT/$name.m.err")"
        return 1
    fi
    check_eq "$name: PRAGMA integrity_check on the mount" "['ok']" "$(field "$OUT/$name.m.json" 'r["digest"]["integrity"]')"
    check_eq "$name: every row holds its content on the mount" "[]" "$(field "$OUT/$name.m.json" 'r["digest"]["bad_rows"]')"
    check_eq "$name: same rows, sums and index results as on plain disk" \
        "$(field "$OUT/$name.p.json" 'json.dumps(r["digest"], sort_keys=True)')" \
        "$(field "$OUT/$name.m.json" 'json.dumps(r["digest"], sort_keys=True)')"
}

# leftovers DESC: the database directories hold the same files on both sides
leftovers() {
    check_eq "$1" "$(cd "$P/sqlite" && ls -A | LC_ALL=C sort | tr '\n' ' ')" \
        "$(cd "$M/sqlite" && ls -A | LC_ALL=C sort | tr '\n' ' ')"
}

cli_checks() {   # cli_checks MODE TAG
    local mode=$1 tag=$2 dm dp
    dm=$(timeout "$CMD_TIMEOUT" sqlite3 "$M/sqlite/$mode.db" 'PRAGMA integrity_check;' 2>&1)
    check_eq "$mode $tag: sqlite3 CLI integrity_check on the mount" "ok" "$dm"
    dp=$(timeout "$CMD_TIMEOUT" sqlite3 "$P/sqlite/$mode.db" .dump 2>&1 | sha256sum)
    dm=$(timeout "$CMD_TIMEOUT" sqlite3 "$M/sqlite/$mode.db" .dump 2>&1 | sha256sum)
    check_eq "$mode $tag: sqlite3 .dump of the mount's database equals plain disk's" "$dp" "$dm"
}

# variants: WAL, rollback journal (DELETE), and WAL with memory-mapped I/O
for mode in wal delete wal-mmap; do
    rel=sqlite/$mode.db
    jmode=${mode%-mmap}
    if [ "$mode" != "$jmode" ]; then export T1210_MMAP=1; else unset T1210_MMAP; fi
    both "$mode-build" build "$rel" "$jmode" "$ROWS" "$BATCH" "$READERS"
    j=$OUT/$mode-build.m.json
    if [ -s "$j" ]; then
        check_eq "$mode: journal_mode is $jmode on the mount" "$jmode" "$(field "$j" 'r["stats"]["journal_mode_set"]')"
        check_eq "$mode: the writer committed all $((ROWS / BATCH)) transactions without error" "[]" \
            "$(field "$j" 'r["stats"]["writer_errors"]')"
        check_eq "$mode: $READERS concurrent readers: no errors, no inconsistent snapshot, each read at least once" \
            "errors=0 inconsistent=0 readers_reading=$READERS exit=[0, 0, 0]" \
            "$(field "$j" '"errors=%d inconsistent=%d readers_reading=%d exit=%s%s" % (sum(x["errors"] for x in r["stats"]["readers"]), sum(x["inconsistent"] for x in r["stats"]["readers"]), sum(1 for x in r["stats"]["readers"] if x["reads"] > 0), r["stats"]["reader_exitcodes"], "".join(" | " + p for x in r["stats"]["readers"] for p in x["problems"]))')"
        for w in p m; do
            _lib_log "$mode readers ($w): $(field "$OUT/$mode-build.$w.json" '"; ".join("%d snapshots, %d distinct row counts seen" % (x["reads"], x["distinct_counts"]) for x in r["stats"]["readers"])')"
        done
    fi
    leftovers "$mode: after the last connection closed, the same files remain on the mount as on plain disk (no stale -wal/-shm/-journal)"

    both "$mode-contend" contend "$rel" "$WRITERS" "$TXNS"
    j=$OUT/$mode-contend.m.json
    [ -s "$j" ] && check_eq "$mode: $WRITERS concurrent writers committed every transaction" \
        "added=$((WRITERS * TXNS * 5)) errors=[]" "$(field "$j" '"added=%d errors=%s" % (r["stats"]["added"], r["stats"]["writer_errors"])')"

    cli_checks "$mode" "after the inserts"
    rm -f "$P/sqlite/$mode-backup.db"
    check "$mode: sqlite3 .backup of the database into the mount" \
        timeout "$CMD_TIMEOUT" sqlite3 "$M/sqlite/$mode.db" ".backup '$M/sqlite/$mode-backup.db'"
    check "$mode: sqlite3 .backup of the plain-disk database (reference)" \
        timeout "$CMD_TIMEOUT" sqlite3 "$P/sqlite/$mode.db" ".backup '$P/sqlite/$mode-backup.db'"
    check_eq "$mode: the backup on the mount checks ok and has the same .dump" \
        "ok $(sqlite3 "$P/sqlite/$mode-backup.db" .dump | sha256sum)" \
        "$(sqlite3 "$M/sqlite/$mode-backup.db" 'PRAGMA integrity_check;' 2>&1) $(sqlite3 "$M/sqlite/$mode-backup.db" .dump 2>&1 | sha256sum)"

    both "$mode-vacuum" vacuum "$rel"
    leftovers "$mode: after VACUUM, the same files on the mount as on plain disk"
done
unset T1210_MMAP

# --- as an ordinary user (uid 65534): custodyfs checks every access itself ---------------
check "chmod 0755 of the mount root (to let other users in, as the README says)" chmod 0755 "$M"
for d in "$M" "$P"; do
    mkdir -p "$d/user"
    chown "$USER_UID:$USER_GID" "$d/user"
done
RUNAS=(setpriv --reuid="$USER_UID" --regid="$USER_GID" --clear-groups)
for mode in wal delete; do
    both "user-$mode-build" build "user/$mode.db" "$mode" "$ROWS" "$BATCH" "$READERS"
    j=$OUT/user-$mode-build.m.json
    [ -s "$j" ] && check_eq "user $mode: writer and $READERS readers without error or inconsistency" \
        "writer=[] errors=0 inconsistent=0" \
        "$(field "$j" '"writer=%s errors=%d inconsistent=%d%s" % (r["stats"]["writer_errors"], sum(x["errors"] for x in r["stats"]["readers"]), sum(x["inconsistent"] for x in r["stats"]["readers"]), "".join(" | " + p for x in r["stats"]["readers"] for p in x["problems"]))')"
done
RUNAS=()
check_eq "as uid $USER_UID: the same files remain on the mount as on plain disk" \
    "$(cd "$P/user" && ls -A | LC_ALL=C sort | tr '\n' ' ')" "$(cd "$M/user" && ls -A | LC_ALL=C sort | tr '\n' ' ')"
check_eq "as uid $USER_UID: the database files on the mount belong to that user" "" "$(find "$M/user" ! -user "$USER_UID" 2>&1)"

if remount_vault "$B" "$M" --keyfile "$KEY"; then
    pass "remount"
else
    bail "remount failed: $(cat "$SCRATCH/mount.err")"
fi
for mode in wal delete wal-mmap; do
    both "$mode-after-remount" check "sqlite/$mode.db"
    cli_checks "$mode" "after a remount"
done
leftovers "after the remount and the read-only checks, the same files on the mount as on plain disk"

unmount_vault "$M" || fail "unmount at the end" "$(fusermount3 -u "$M" 2>&1)"
check "audit log verifies after the SQLite workload (custodyctl verify)" \
    timeout "$CMD_TIMEOUT" "$CUSTODYCTL" verify "$B"

done_testing
