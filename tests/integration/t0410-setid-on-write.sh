#!/bin/bash
# A write or a truncation by a caller without CAP_FSETID clears set-user-ID, and set-group-ID
# when the group may execute the file, as on a local filesystem; the daemon does it (the kernel
# leaves it to the daemon, FUSE_HANDLE_KILLPRIV_V2) and records it as a chmod.  The write itself
# succeeds, and stat shows the new mode at once.  With the flag, the kernel sends one request per
# write(): no question about security.capability before each.
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools setpriv strace dd
setup_vault
chmod 0777 "$M"

as1000() { setpriv --reuid=1000 --regid=1000 --clear-groups "$@"; }
# mode_after MODE CMD...: set MODE on $M/f, run CMD, print the mode stat shows right after.
mode_after() {
    local mode=$1; shift
    chmod "$mode" "$M/f" || return 1
    "$@" 2> "$SCRATCH/cmd.err" || { echo "command failed: $(cat "$SCRATCH/cmd.err")"; return 1; }
    stat -c %a "$M/f"
}

printf 'start\n' > "$M/f"
check_eq "uid 1000 appends to a root-owned 6777 file: it succeeds and both bits go" 777 \
    "$(mode_after 6777 as1000 sh -c 'echo more >> "$1"' sh "$M/f")"
check_eq "  ... and the data is there" "start|more" "$(tr '\n' '|' < "$M/f" | sed 's/|$//')"
check_eq "uid 1000 truncates it (truncate -s): both bits go" 777 \
    "$(mode_after 6777 as1000 truncate -s 3 "$M/f")"
check_eq "uid 1000 opens it with O_TRUNC: both bits go" 777 \
    "$(mode_after 6777 as1000 sh -c ': > "$1"' sh "$M/f")"
check_eq "  ... and it is empty" 0 "$(stat -c %s "$M/f")"
check_eq "set-group-ID without group execute (a locking mark) stays on a write" 2767 \
    "$(mode_after 2767 as1000 sh -c 'echo x >> "$1"' sh "$M/f")"
check_eq "set-user-ID goes, set-group-ID without group execute stays" 2767 \
    "$(mode_after 6767 as1000 sh -c 'echo x >> "$1"' sh "$M/f")"
check_eq "root (CAP_FSETID) writes: both bits stay" 6777 \
    "$(mode_after 6777 sh -c 'echo root >> "$1"' sh "$M/f")"
check_eq "root without CAP_FSETID writes: both bits go" 777 \
    "$(mode_after 6777 setpriv --bounding-set=-fsetid --inh-caps=-fsetid \
        sh -c 'echo nocap >> "$1"' sh "$M/f")"
check_eq "a write into a plain 0777 file leaves its mode alone" 777 \
    "$(mode_after 0777 as1000 sh -c 'echo y >> "$1"' sh "$M/f")"
check_eq "the file's content after all this" "x|x|root|nocap|y" \
    "$(tr '\n' '|' < "$M/f" | sed 's/|$//')"

# The ownership change clears the bits too (the backing filesystem does, as for root anywhere).
chmod 6755 "$M/f"
chown 1000 "$M/f"
check_eq "chown clears set-user-ID and set-group-ID (group executable)" 755 "$(stat -c %a "$M/f")"

# One request per write: count the daemon's reads of /dev/fuse while 400 small writes go in.
daemon=$(daemon_pid_for "$M") || bail "no daemon for $M"
: > "$M/w"
strace -f -qq -e trace=read,writev -o "$SCRATCH/strace.out" -p "$daemon" &
tracer=$!
for _ in $(seq 50); do sleep 0.1; grep -q . "$SCRATCH/strace.out" 2>/dev/null && break; \
    stat "$M/w" > /dev/null; done
before=$(grep -c "^[0-9]* *read(" "$SCRATCH/strace.out")
dd if=/dev/zero of="$M/w" bs=512 count=400 conv=notrunc status=none
sleep 0.5
kill "$tracer"; wait "$tracer" 2> /dev/null
reads=$(( $(grep -c "^[0-9]* *read(" "$SCRATCH/strace.out") - before ))
check "the trace saw the 400 writes (at least 400 requests read)" test "$reads" -ge 400
check "the kernel sends one request per write: $reads requests for 400 writes (not 800)" \
    test "$reads" -lt 440
check_eq "  ... and the file holds the 400 blocks" 204800 "$(stat -c %s "$M/w")"

unmount_vault "$M"
"$CUSTODYCTL" log "$B" --format json > "$SCRATCH/log.json" 2> "$SCRATCH/log.err" ||
    bail "custodyctl log failed: $(cat "$SCRATCH/log.err")"
check "the log has each clearing as a chmod by uid 1000, with its cause" "$PY" - "$SCRATCH/log.json" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
got = [(r["uid"], r["detail"]) for r in rows if r["op"] == "chmod" and r["path"] == "/f"
       and "cause=" in (r["detail"] or "")]
want = [(1000, "old=6777 new=0777 cause=write"), (1000, "old=6777 new=0777 cause=truncate"),
        (1000, "old=6777 new=0777 cause=truncate"), (1000, "old=6767 new=2767 cause=write"),
        (0, "old=6777 new=0777 cause=write")]
sys.exit(0 if got == want else print(got) or 1)
EOF

done_testing
