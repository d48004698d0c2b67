#!/bin/bash
# Installation and mounting through mount(8): `make install PREFIX=DIR`,
# `custodyfs B M -o keyfile=K`, `mount -t fuse.custodyfs B M -o keyfile=K`
# and an fstab line used with `mount -T FSTAB M`.
#
# mount(8) runs its helpers (mount.fuse3 -> /bin/sh -c custodyfs ...) without
# PATH, so the shell looks custodyfs up in its default path.  To test the
# installed binaries the way `make install PREFIX=/usr/local` would be used,
# without touching the host, the script re-runs itself in a private mount
# namespace (unshare -m) and bind-mounts DIR/bin over /usr/local/sbin there.
if [ -z "${CUSTODYFS_T0210_PRIVATE_NS:-}" ] && command -v unshare > /dev/null 2>&1; then
    CUSTODYFS_T0210_PRIVATE_NS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools make mount umount unshare
[ "${CUSTODYFS_T0210_PRIVATE_NS:-}" = 1 ] || bail "could not enter a private mount namespace"

PREFIX=$SCRATCH/prefix
out=$(make -C "$REPO_ROOT" install PREFIX="$PREFIX" 2>&1); rc=$?
if [ "$rc" -eq 0 ]; then
    pass "make install PREFIX=DIR succeeds"
else
    fail "make install PREFIX=DIR succeeds" "exit $rc" "$(printf '%s\n' "$out" | tail -20)"
fi
check "custodyfs installed into DIR/bin" test -x "$PREFIX/bin/custodyfs"
check "custodyctl installed into DIR/bin" test -x "$PREFIX/bin/custodyctl"
[ -x "$PREFIX/bin/custodyfs" ] && [ -x "$PREFIX/bin/custodyctl" ] || bail "nothing installed"
check_eq "installed custodyctl --version matches the build" \
    "$("$CUSTODYCTL" --version 2>&1)" "$("$PREFIX/bin/custodyctl" --version 2>&1)"
export PATH=$PREFIX/bin:$PATH
check_eq "the installed custodyfs is first on PATH" "$PREFIX/bin/custodyfs" "$(command -v custodyfs)"
mount --bind "$PREFIX/bin" /usr/local/sbin || bail "bind mount of $PREFIX/bin over /usr/local/sbin failed"
check_eq "(private namespace) mount helpers find the installed custodyfs without PATH" \
    /usr/local/sbin/custodyfs "$(env -u PATH /bin/sh -c 'command -v custodyfs')"

KEY=$SCRATCH/key
new_keyfile "$KEY"
B=$SCRATCH/backing
M=$SCRATCH/mnt
mkdir -p "$M"
timeout "$CMD_TIMEOUT" custodyctl init "$B" --keyfile "$KEY" > "$SCRATCH/o" 2> "$SCRATCH/e" < /dev/null
check_eq "installed custodyctl init exits 0" 0 "$?"

# --- custodyfs B M -o keyfile=K -----------------------------------------------------
if mount_vault "$B" "$M" -o "keyfile=$KEY"; then
    pass "custodyfs BACKING MNT -o keyfile=FILE mounts"
    echo "via -o keyfile" > "$M/one.txt"
    check_eq "  ... and reads back what it wrote" "via -o keyfile" "$(cat "$M/one.txt" 2>&1)"
    unmount_vault "$M" && pass "  ... fusermount3 -u unmounts it" || fail "  ... fusermount3 -u unmounts it"
else
    fail "custodyfs BACKING MNT -o keyfile=FILE mounts" "$(cat "$SCRATCH/mount.err")"
fi

# --- mount -t fuse.custodyfs ------------------------------------------------------------
timeout "$CMD_TIMEOUT" mount -t fuse.custodyfs "$B" "$M" -o "keyfile=$KEY" > "$SCRATCH/o" 2> "$SCRATCH/e" < /dev/null; rc=$?
mountinfo_has "$M" && { MOUNTED+=("$M"); _remember_daemon "$M"; }
check_eq "mount -t fuse.custodyfs BACKING MNT -o keyfile=FILE exits 0" 0 "$rc" || cat "$SCRATCH/e" | sed 's/^/#   /'
if mountinfo_has "$M"; then
    pass "  ... MNT is mounted when mount returns"
    check_eq "  ... sees the file written before" "via -o keyfile" "$(cat "$M/one.txt" 2>&1)"
    echo "via mount -t" > "$M/two.txt"
    check_eq "  ... writes" "via mount -t" "$(cat "$M/two.txt" 2>&1)"
    check_eq "  ... stat shows the plaintext size" 13 "$(stat -c %s "$M/two.txt" 2>&1)"
    unmount_vault "$M" && pass "  ... unmounts" || fail "  ... unmounts"
else
    fail "  ... MNT is mounted when mount returns" "$(cat "$SCRATCH/e")"
fi

# --- fstab line + mount -T --------------------------------------------------------------
FSTAB=$SCRATCH/fstab
printf '# test fstab\n%s %s fuse.custodyfs keyfile=%s,noauto 0 0\n' "$B" "$M" "$KEY" > "$FSTAB"
timeout "$CMD_TIMEOUT" mount -T "$FSTAB" "$M" > "$SCRATCH/o" 2> "$SCRATCH/e" < /dev/null; rc=$?
mountinfo_has "$M" && { MOUNTED+=("$M"); _remember_daemon "$M"; }
check_eq "mount -T FSTAB MNT (fuse.custodyfs line with keyfile=) exits 0" 0 "$rc" || cat "$SCRATCH/e" | sed 's/^/#   /'
if mountinfo_has "$M"; then
    pass "  ... MNT is mounted"
    check_eq "  ... sees both files" "via -o keyfile|via mount -t" "$(cat "$M/one.txt" 2>&1)|$(cat "$M/two.txt" 2>&1)"
    unmount_vault "$M" && pass "  ... unmounts" || fail "  ... unmounts"
else
    fail "  ... MNT is mounted" "$(cat "$SCRATCH/e")"
fi

# --- a wrong key through mount -t fails and mounts nothing ------------------------------
new_keyfile "$SCRATCH/wrongkey"
timeout "$CMD_TIMEOUT" mount -t fuse.custodyfs "$B" "$M" -o "keyfile=$SCRATCH/wrongkey" > "$SCRATCH/o" 2> "$SCRATCH/e" < /dev/null; rc=$?
mountinfo_has "$M" && { MOUNTED+=("$M"); _remember_daemon "$M"; }
check_ne "mount -t fuse.custodyfs with a wrong key file fails" 0 "$rc"
expect_fail "  ... and mounts nothing" mountinfo_has "$M"

done_testing
