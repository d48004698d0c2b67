#!/bin/bash
# Mount modes: without -f custodyfs returns only once the mount is usable
# (used at once, no retry); with -f it stays in the foreground as the daemon
# and exits 0 after fusermount3 -u; -f with a wrong key still fails at once;
# -o FUSE options pass through (-o ro makes the mount read-only).
. "$(dirname "$0")/lib.sh"
standard_prereqs
KEY=$SCRATCH/key
B=$SCRATCH/backing
M=$SCRATCH/mnt
new_keyfile "$KEY"
make_vault "$B" "$KEY" || bail "init failed: $(cat "$SCRATCH/init.err")"
mkdir -p "$M"

# --- background mode: usable as soon as custodyfs returns ----------------------------------
for i in 1 2 3; do
    timeout "$CMD_TIMEOUT" "$CUSTODYFS" "$B" "$M" --keyfile "$KEY" > "$SCRATCH/o" 2> "$SCRATCH/e" < /dev/null
    rc=$?
    # no polling: everything below runs the instant custodyfs has returned
    inmi=no; mountinfo_has "$M" && inmi=yes
    wrote=$(echo "round $i" > "$M/r$i" 2>&1 && cat "$M/r$i" 2>&1)
    listed=$(ls "$M" 2>&1 | tr '\n' ' ')
    [ "$inmi" = yes ] && { _remember_mount "$M"; _remember_daemon "$M"; }
    check_eq "round $i: custodyfs (no -f) exits 0" 0 "$rc"
    check_eq "round $i: the mount is in mountinfo the moment it returns" yes "$inmi"
    check_eq "round $i: a file can be written and read back at once" "round $i" "$wrote"
    check_match "round $i: readdir works at once" "r$i" "$listed"
    pid=$(daemon_pid_for "$M")
    check "round $i: a daemon process serves the mount" test -n "$pid"
    check "round $i: custodyfs went to the background (its parent is not this shell)" \
        test "$(ps -o ppid= -p "${pid:-1}" | tr -d ' ')" != "$$"
    unmount_vault "$M" || fail "round $i: unmount"
    check "round $i: after fusermount3 -u the daemon has exited" bash -c "! kill -0 ${pid:-999999} 2>/dev/null"
done

# --- foreground mode -------------------------------------------------------------------------
"$CUSTODYFS" "$B" "$M" --keyfile "$KEY" -f > "$SCRATCH/fg.out" 2> "$SCRATCH/fg.err" < /dev/null &
FGPID=$!
DAEMON_PIDS+=("$FGPID")
MOUNTED+=("$M")
for i in $(seq 1 100); do
    mountinfo_has "$M" && break
    kill -0 "$FGPID" 2>/dev/null || break
    sleep 0.1
done
check "custodyfs -f mounts (within 10s)" mountinfo_has "$M"
check "custodyfs -f stays running in the foreground" kill -0 "$FGPID"
check_eq "the -f process itself is the daemon serving the mount" "$FGPID" "$(daemon_pid_for "$M")"
check_eq "files written before are there in -f mode" "round 3" "$(cat "$M/r3" 2>&1)"
head -c 200000 /dev/urandom > "$SCRATCH/fg.data"
cp "$SCRATCH/fg.data" "$M/fg.data"
check "writing in -f mode" cmp "$SCRATCH/fg.data" "$M/fg.data"
fusermount3 -u "$M"
st=timeout
for i in $(seq 1 100); do
    if ! kill -0 "$FGPID" 2>/dev/null; then wait "$FGPID"; st=$?; break; fi
    sleep 0.1
done
check_eq "after fusermount3 -u the -f process exits with status 0" 0 "$st"
expect_fail "  ... and nothing is mounted" mountinfo_has "$M"
check_eq "  ... and stderr holds only the mount and unmount lines (no library warnings)" \
    "custodyfs: mounted $B on $M|custodyfs: unmounted $M" "$(paste -sd'|' "$SCRATCH/fg.err")"

new_keyfile "$SCRATCH/wrong"
timeout 30 "$CUSTODYFS" "$B" "$M" --keyfile "$SCRATCH/wrong" -f > "$SCRATCH/o" 2> "$SCRATCH/e" < /dev/null
rc=$?
mountinfo_has "$M" && MOUNTED+=("$M")
check_eq "custodyfs -f with a wrong key exits 1 at once" 1 "$rc"
check_eq "  ... with one line on stderr" 1 "$(line_count "$SCRATCH/e")"
expect_fail "  ... and mounts nothing" mountinfo_has "$M"

# --- -o FUSE options pass through ----------------------------------------------------------------
if mount_vault "$B" "$M" --keyfile "$KEY" -o ro; then
    pass "custodyfs ... -o ro mounts"
    check_match "  ... mountinfo shows it read-only" "^ro" "$(awk -v m="$M" '$5 == m { print $6 }' /proc/self/mountinfo)"
    check "  ... files read" cmp "$SCRATCH/fg.data" "$M/fg.data"
    expect_errno EROFS "  ... creating a file fails with EROFS" 'open(argv[0], "wb")' "$M/new"
    expect_errno EROFS "  ... writing a file fails with EROFS" 'os.open(argv[0], os.O_WRONLY)' "$M/fg.data"
    unmount_vault "$M" || fail "unmount of the ro mount"
else
    fail "custodyfs ... -o ro mounts" "$(cat "$SCRATCH/mount.err")"
fi
mount_vault "$B" "$M" --keyfile "$KEY" || bail "read-write remount failed: $(cat "$SCRATCH/mount.err")"
check "after the read-only mount, the data is unchanged" cmp "$SCRATCH/fg.data" "$M/fg.data"
check "  ... and no file was created" test ! -e "$M/new"
unmount_vault "$M" || fail "final unmount"

done_testing
