#!/bin/bash
# custodyfs refuses to mount, with exit status 1, exactly one stderr line,
# nothing mounted and nothing in the backing directory changed, for: a wrong
# key file, a wrong passphrase, a corrupt / truncated / deleted config, a
# directory that is no vault, a missing mountpoint, and a backing directory
# already mounted by another custodyfs.
. "$(dirname "$0")/lib.sh"
standard_prereqs

O=$SCRATCH/out E=$SCRATCH/err
KEY=$SCRATCH/key
new_keyfile "$KEY"
PW=$SCRATCH/pw
printf 'the right passphrase\n' > "$PW"

# Pristine vaults with a little content, copied for every corruption case.
KV=$SCRATCH/kv
PV=$SCRATCH/pv
make_vault "$KV" "$KEY" || bail "init key-file vault: $(cat "$SCRATCH/init.err")"
timeout "$CMD_TIMEOUT" "$CUSTODYCTL" init "$PV" --passphrase-file "$PW" > "$O" 2> "$E" < /dev/null \
    || bail "init passphrase vault: $(cat "$E")"
for v in "$KV:--keyfile:$KEY" "$PV:--passphrase-file:$PW"; do
    IFS=: read -r dir opt cred <<< "$v"
    mount_vault "$dir" "$SCRATCH/mprep" "$opt" "$cred" || bail "mount $dir: $(cat "$SCRATCH/mount.err")"
    echo "some content" > "$SCRATCH/mprep/a.txt"
    mkdir "$SCRATCH/mprep/d"
    head -c 10000 /dev/urandom > "$SCRATCH/mprep/d/b.bin"
    unmount_vault "$SCRATCH/mprep" || bail "unmount $SCRATCH/mprep"
done

N=0
# refused DESC BACKING MNT ARGS...: the mount attempt must be refused cleanly.
refused() {
    local desc=$1 backing=$2 mnt=$3; shift 3
    local before after rc leftover
    before=$(snapshot "$backing")
    timeout "$CMD_TIMEOUT" "$CUSTODYFS" "$backing" "$mnt" "$@" > "$O" 2> "$E" < /dev/null; rc=$?
    if mountinfo_has "$mnt"; then
        MOUNTED+=("$mnt")
        _remember_daemon "$mnt"
        fail "$desc: nothing is mounted" "$mnt was mounted; unmounting it"
        unmount_vault "$mnt"
    else
        pass "$desc: nothing is mounted"
    fi
    check_eq "$desc: exit status 1" 1 "$rc"
    if [ "$(line_count "$E")" -eq 1 ]; then
        pass "$desc: exactly one line on stderr"
    else
        fail "$desc: exactly one line on stderr" "stderr was:" "$(cat "$E")"
    fi
    after=$(snapshot "$backing")
    if [ "$before" == "$after" ]; then
        pass "$desc: backing directory unchanged"
    else
        fail "$desc: backing directory unchanged" "$(diff <(echo "$before") <(echo "$after") | head -20)"
    fi
    leftover=$(pids_with_arg "$mnt")
    check_eq "$desc: no daemon left running" "" "$leftover"
    for p in $leftover; do _kill_pid "$p"; done
}

fresh_copy() {  # SRC: sets $c to the path of a new copy of the vault SRC
    N=$((N + 1))
    c=$SCRATCH/copy$N
    [ ! -e "$c" ] || bail "copy target $c exists"
    cp -a "$1" "$c" || bail "cp -a $1 $c failed"
    [ -f "$c/.custody/config" ] || [ ! -f "$1/.custody/config" ] || bail "copy $c has no config"
}

flip_byte() {  # FILE OFFSET
    "$PY" - "$1" "$2" <<'PYEOF'
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0xFF]))
PYEOF
}

MNT=$SCRATCH/mnt
mkdir -p "$MNT"

# --- wrong credentials -----------------------------------------------------------
new_keyfile "$SCRATCH/wrongkey"
refused "wrong key file" "$KV" "$MNT" --keyfile "$SCRATCH/wrongkey"
head -c 31 "$KEY" > "$SCRATCH/shortkey"
refused "key file of 31 bytes (the right key minus its last byte)" "$KV" "$MNT" --keyfile "$SCRATCH/shortkey"
refused "wrong key file given as -o keyfile=" "$KV" "$MNT" -o "keyfile=$SCRATCH/wrongkey"
printf 'the wrong passphrase\n' > "$SCRATCH/wrongpw"
refused "wrong passphrase" "$PV" "$MNT" --passphrase-file "$SCRATCH/wrongpw"
printf 'the right passphras\n' > "$SCRATCH/wrongpw2"
refused "passphrase missing its last character" "$PV" "$MNT" --passphrase-file "$SCRATCH/wrongpw2"
refused "key file for a passphrase vault" "$PV" "$MNT" --keyfile "$KEY"

# --- corrupt config ----------------------------------------------------------------
for v in "kv:$KV:--keyfile:$KEY" "pv:$PV:--passphrase-file:$PW"; do
    IFS=: read -r tag dir opt cred <<< "$v"
    size=$(stat -c %s "$dir/.custody/config")
    for off in 0 $((size / 3)) $((size / 2)) $((size - 1)); do
        fresh_copy "$dir"
        flip_byte "$c/.custody/config" "$off" || bail "flip_byte failed"
        refused "$tag: config with byte $off of $size flipped" "$c" "$MNT" "$opt" "$cred"
    done
    fresh_copy "$dir"
    truncate -s $((size / 2)) "$c/.custody/config"
    refused "$tag: config truncated to half" "$c" "$MNT" "$opt" "$cred"
    fresh_copy "$dir"
    truncate -s 0 "$c/.custody/config"
    refused "$tag: config truncated to 0 bytes" "$c" "$MNT" "$opt" "$cred"
    fresh_copy "$dir"
    rm -f "$c/.custody/config"
    refused "$tag: config deleted" "$c" "$MNT" "$opt" "$cred"
done
fresh_copy "$KV"
rm -rf "$c/.custody"
refused "a directory without .custody (no vault)" "$c" "$MNT" --keyfile "$KEY"
mkdir "$SCRATCH/emptydir"
refused "an empty directory (no vault)" "$SCRATCH/emptydir" "$MNT" --keyfile "$KEY"

# --- missing mountpoint ----------------------------------------------------------------
refused "mountpoint that does not exist" "$KV" "$SCRATCH/no-such-mountpoint" --keyfile "$KEY"
check "  ... and it was not created" test ! -e "$SCRATCH/no-such-mountpoint"

# --- the untouched vaults still mount with the right credentials ------------------------
if mount_vault "$KV" "$MNT" --keyfile "$KEY"; then
    pass "key-file vault mounts with the right key after all refusals"
    check_eq "  ... content intact" "some content" "$(cat "$MNT/a.txt" 2>&1)"
else
    fail "key-file vault mounts with the right key after all refusals" "$(cat "$SCRATCH/mount.err")"
fi

# --- double mount of the same backing directory ------------------------------------------
M2=$SCRATCH/mnt2
mkdir -p "$M2"
if mountinfo_has "$MNT"; then
    # the mounted daemon commits its records in batches: let it commit before the snapshot, so
    # that any change to the backing directory is the refused daemon's
    "$PY" -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.close(fd)' "$MNT/a.txt"
    sleep 0.1
    "$PY" -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.close(fd)' "$MNT/a.txt"
    refused "second custodyfs on an already mounted backing dir" "$KV" "$M2" --keyfile "$KEY"
    ln -s "$KV" "$SCRATCH/kv-link"
    refused "second custodyfs on the same backing dir through a symlink" "$SCRATCH/kv-link" "$M2" --keyfile "$KEY"
    check_eq "the first mount still works after the refused second one" "some content" "$(cat "$MNT/a.txt" 2>&1)"
    echo "written after" > "$MNT/after.txt"
    check_eq "  ... and still writes" "written after" "$(cat "$MNT/after.txt" 2>&1)"
    unmount_vault "$MNT" || fail "unmount $MNT"
else
    fail "double-mount case needs the first mount" "see above"
fi

if mount_vault "$PV" "$MNT" --passphrase-file "$PW"; then
    pass "passphrase vault mounts with the right passphrase after all refusals"
    check_eq "  ... content intact" "some content" "$(cat "$MNT/a.txt" 2>&1)"
    unmount_vault "$MNT" || fail "unmount $MNT"
else
    fail "passphrase vault mounts with the right passphrase after all refusals" "$(cat "$SCRATCH/mount.err")"
fi

done_testing
