#!/bin/bash
# Mixed load for STRESS_SECONDS (default 90): STRESS_WORKERS (default 6) processes create, write
# at random offsets and sizes, append, truncate, read, rename, unlink and list in the same four
# directories, each checking its own files against an exact in-memory copy, and publish
# self-describing versions of shared names with write-temporary/fsync/rename; a verifier process
# reads the published names against the ledger the workers keep (a whole, valid version, never
# older than the ledger showed before the read; missing only when deleted).  Meanwhile the
# daemon's VmRSS is sampled every few seconds: the maximum of the last third of the run must stay
# within 20 % + 8 MiB of the maximum of the first third.  At the end: no error, no mismatch,
# every published name holds its last version, the same daemon still runs, it unmounts cleanly
# and the audit log verifies.  The program is stress/mixed.py.
. "$(dirname "$0")/lib.sh"
standard_prereqs
T_START=$(date +%s)
SECONDS_RUN=${STRESS_SECONDS:-90}
WORKERS=${STRESS_WORKERS:-6}
SAMPLE_EVERY=$(( SECONDS_RUN >= 60 ? 3 : 1 ))
MIXED=$LIB_DIR/stress/mixed.py
[ -f "$MIXED" ] || bail "missing $MIXED"
# on an early exit: stop the load processes this script started (by pid), then lib.sh's cleanup
declare -a LOAD_PIDS=()
_load_cleanup() {
    local rc=$? p
    for p in "${LOAD_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    ( exit "$rc" )
    _cleanup
}
trap _load_cleanup EXIT
setup_vault
chmod 0755 "$M"
mkdir -p "$M/s/d0" "$M/s/d1" "$M/s/d2" "$M/s/d3" || bail "mkdir failed"
DPID=$(daemon_pid_for "$M")
[ -n "$DPID" ] || bail "cannot find the daemon's pid"

rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$DPID/status" 2>/dev/null
}

printf '# %d workers and a verifier for %d s; daemon pid %d, VmRSS at start %s kB\n' \
    "$WORKERS" "$SECONDS_RUN" "$DPID" "$(rss_kb)"
pids=()
for k in $(seq 0 $((WORKERS - 1))); do
    "$PY" "$MIXED" worker "$M" "$k" "$SECONDS_RUN" "$SCRATCH/ledger.$k" "$SCRATCH/worker.$k.json" \
        2> "$SCRATCH/worker.$k.err" &
    pids+=("$!"); LOAD_PIDS+=("$!")
done
"$PY" "$MIXED" verify "$M" "$WORKERS" "$SECONDS_RUN" "$SCRATCH/ledger" "$SCRATCH/verify.json" \
    2> "$SCRATCH/verify.err" &
vpid=$!; LOAD_PIDS+=("$vpid")

# sample the daemon's RSS until the load ends
samples=()
t0=$(date +%s)
while :; do
    r=$(rss_kb)
    [ -n "$r" ] && samples+=("$r")
    now=$(date +%s)
    [ $((now - t0)) -ge "$SECONDS_RUN" ] && break
    alive=0
    for p in "${pids[@]}" "$vpid"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 1 ] || break
    sleep "$SAMPLE_EVERY"
done
# the workers finish their final checks; do not wait forever
deadline=$(( $(date +%s) + 120 ))
for p in "${pids[@]}" "$vpid"; do
    while kill -0 "$p" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.5; done
    if kill -0 "$p" 2>/dev/null; then
        fail "process $p finishes within 120 s after the load" "killing it"
        kill -KILL "$p"
    fi
    wait "$p" 2>/dev/null
done
r=$(rss_kb); [ -n "$r" ] && samples+=("$r")

# results of the workers
total_ops=0
for k in $(seq 0 $((WORKERS - 1))); do
    if [ -s "$SCRATCH/worker.$k.err" ]; then
        fail "worker $k ran without a Python error" "$(head -c 2000 "$SCRATCH/worker.$k.err")"
    fi
    if [ ! -s "$SCRATCH/worker.$k.json" ]; then
        fail "worker $k reported its results"
        continue
    fi
    IFS=$'\t' read -r nops nerr nmis files errs mis ops < <("$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("\t".join(str(x) for x in (r["nops"], r["nerrors"], r["nmismatches"], r["files"],
      r["errors"][:8], r["mismatches"][:8], r["ops"])))' "$SCRATCH/worker.$k.json")
    total_ops=$((total_ops + nops))
    printf '# worker %d: %d operations, %d private files at the end: %s\n' "$k" "$nops" "$files" "$ops"
    check_eq "worker $k: no operation failed ($nops operations)" 0 "$nerr" || printf '#   %s\n' "$errs"
    check_eq "worker $k: every read matched the worker's exact copy" 0 "$nmis" || printf '#   %s\n' "$mis"
done
[ "$total_ops" -gt $((SECONDS_RUN * 10)) ] && pass "the workers did real work ($total_ops operations)" \
    || fail "the workers did real work ($total_ops operations)"

if [ -s "$SCRATCH/verify.err" ]; then
    fail "the verifier ran without a Python error" "$(head -c 2000 "$SCRATCH/verify.err")"
fi
IFS=$'\t' read -r nbad vstats vbad < <("$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("\t".join(str(x) for x in (r["nbad"], r["stats"], r["bad"][:8])))' "$SCRATCH/verify.json" 2>&1)
printf '# verifier: %s\n' "$vstats"
check_eq "verifier: every published file read was a whole version no older than the ledger's" 0 "$nbad" \
    || printf '#   %s\n' "$vbad"
check_match "verifier: it read published files" "'reads': [1-9]" "$vstats"

"$PY" "$MIXED" final "$M" "$WORKERS" "$SCRATCH/ledger" "$SCRATCH/final.json" 2> "$SCRATCH/final.err"
IFS=$'\t' read -r nbad names fbad < <("$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("\t".join(str(x) for x in (r["nbad"], r["names"], r["bad"][:8])))' "$SCRATCH/final.json" 2>&1)
check_eq "at the end every published name ($names) holds exactly its last ledger entry" 0 "$nbad" \
    || printf '#   %s\n' "$fbad" "$(head -c 1000 "$SCRATCH/final.err")"

# memory
n=${#samples[@]}
printf '# daemon VmRSS samples (kB, every %d s): %s\n' "$SAMPLE_EVERY" "${samples[*]}"
if [ "$n" -lt 6 ]; then
    fail "enough RSS samples to judge (got $n)"
else
    third=$((n / 3))
    first_max=$(printf '%s\n' "${samples[@]:0:$third}" | sort -n | tail -1)
    last_max=$(printf '%s\n' "${samples[@]:$((n - third))}" | sort -n | tail -1)
    limit=$((first_max * 120 / 100 + 8192))
    printf '# VmRSS: max of the first third %d kB, max of the last third %d kB, limit %d kB\n' \
        "$first_max" "$last_max" "$limit"
    if [ "$last_max" -le "$limit" ]; then
        pass "the daemon's RSS stays flat (last third max $last_max kB <= $limit kB)"
    else
        fail "the daemon's RSS stays flat (last third max $last_max kB <= $limit kB)" \
            "first third max $first_max kB; samples: ${samples[*]}"
    fi
fi

if [ "$(daemon_pid_for "$M")" = "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
    pass "the same daemon (pid $DPID) still serves the mount"
else
    fail "the same daemon (pid $DPID) still serves the mount"
fi
printf '# daemon threads at the end: %s; open descriptors: %s\n' \
    "$(awk '/^Threads:/ { print $2 }' "/proc/$DPID/status")" "$(ls "/proc/$DPID/fd" 2>/dev/null | wc -l)"
unmount_vault "$M" || fail "the vault unmounts after the load"
t_verify=$(date +%s)
out=$(timeout 300 "$CUSTODYCTL" verify "$B" 2>&1); rc=$?
check_eq "custodyctl verify exits 0 after the load" 0 "$rc" || printf '#   %s\n' "$out"
printf '# %s (verify took %d s)\n' "$out" $(($(date +%s) - t_verify))
printf '# run time: %d s\n' $(($(date +%s) - T_START))
done_testing
