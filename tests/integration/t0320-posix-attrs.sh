#!/bin/bash
# Metadata and misc syscalls: chmod, chown, utimens (touch -d, ns precision),
# mtime updates on write, statfs (df / stat -f / statvfs), fsync/fdatasync
# (the backing file is complete afterwards), user.* extended attributes
# (setfattr/getfattr, flags, removal), fallocate mode 0; after a remount too.
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools setfattr getfattr fallocate df
setup_vault

# --- chmod ------------------------------------------------------------------------------
echo data > "$M/f"
chmod 0640 "$M/f"
check_eq "chmod 0640: stat shows 640" 640 "$(stat -c %a "$M/f")"
chmod 0755 "$M/f"
check_eq "chmod 0755: stat shows 755" 755 "$(stat -c %a "$M/f")"
chmod 0000 "$M/f"
check_eq "chmod 0000: stat shows 0" 0 "$(stat -c %a "$M/f")"
check_eq "  ... root still reads it (default_permissions, root)" data "$(cat "$M/f" 2>&1)"
chmod 0644 "$M/f"
mkdir "$M/d"
chmod 1777 "$M/d"
check_eq "chmod 1777 on a directory (sticky bit kept)" 1777 "$(stat -c %a "$M/d")"
chmod 2750 "$M/d"
check_eq "chmod 2750 on a directory (setgid bit kept)" 2750 "$(stat -c %a "$M/d")"
check_eq "file type unchanged by chmod" "regular file|directory" "$(stat -c %F "$M/f")|$(stat -c %F "$M/d")"

# --- chown ---------------------------------------------------------------------------------
chown 1000:1000 "$M/f"
check_eq "chown 1000:1000: stat shows it" "1000:1000" "$(stat -c %u:%g "$M/f")"
chown 4321:8765 "$M/d"
check_eq "chown 4321:8765 on a directory" "4321:8765" "$(stat -c %u:%g "$M/d")"
chown :1234 "$M/f"
check_eq "chgrp only changes the group" "1000:1234" "$(stat -c %u:%g "$M/f")"
ln -s f "$M/sl"
chown -h 777:778 "$M/sl"
check_eq "chown -h on a symlink changes the link, not the target" "777:778|1000:1234" \
    "$(stat -c %u:%g "$M/sl")|$(stat -c %u:%g "$M/f")"

# --- utimens -------------------------------------------------------------------------------
touch -d '2001-02-03 04:05:06 UTC' "$M/f"
check_eq "touch -d sets mtime (stat %Y)" "$(date -d '2001-02-03 04:05:06 UTC' +%s)" "$(stat -c %Y "$M/f")"
touch -a -d '1999-12-31 23:59:59 UTC' "$M/f"
check_eq "touch -a -d sets atime (stat %X)" "$(date -d '1999-12-31 23:59:59 UTC' +%s)" "$(stat -c %X "$M/f")"
check_eq "  ... and leaves mtime alone" "$(date -d '2001-02-03 04:05:06 UTC' +%s)" "$(stat -c %Y "$M/f")"
expect_ok "utime with nanoseconds: stat returns them exactly" '
p = argv[0]
os.utime(p, ns=(1234567890123456789, 1300000000987654321))
st = os.stat(p)
assert st.st_atime_ns == 1234567890123456789, st.st_atime_ns
assert st.st_mtime_ns == 1300000000987654321, st.st_mtime_ns
' "$M/f"
touch -d '2005-05-05 05:05:05 UTC' "$M/d"
check_eq "touch -d on a directory" "$(date -d '2005-05-05 05:05:05 UTC' +%s)" "$(stat -c %Y "$M/d")"
touch -h -d '2006-06-06 06:06:06 UTC' "$M/sl"
check_eq "touch -h -d on a symlink sets the link's mtime" "$(date -d '2006-06-06 06:06:06 UTC' +%s)" "$(stat -c %Y "$M/sl")"
before=$(stat -c %Y "$M/f")
echo more >> "$M/f"
after=$(stat -c %Y "$M/f")
check "a write updates mtime (was $before, now $after)" test "$after" -gt "$before" -a "$after" -ge $(($(date +%s) - 60))

# --- statfs --------------------------------------------------------------------------------
out=$(df -P "$M" 2>&1); rc=$?
check_eq "df on the mount exits 0" 0 "$rc"
check_match "df reports the mountpoint" "$M" "$out"
check_match "df reports a non-zero size" "^[^ ]+ +[1-9][0-9]* " "$(echo "$out" | tail -n1)"
expect_ok "statvfs: blocks, free blocks, name length" '
s = os.statvfs(argv[0])
assert s.f_bsize > 0 and s.f_blocks > 0, s
assert 0 < s.f_bavail <= s.f_blocks, s
assert s.f_namemax >= 255, s.f_namemax
' "$M"
check "stat -f on the mount" stat -f "$M"

# --- fsync ---------------------------------------------------------------------------------
expect_ok "fsync/fdatasync succeed and the backing file is complete after fsync" '
p, bp, vault = argv
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
write_all(fd, pattern(71, 0, 10001), 0)
os.fsync(fd)
want = backing_size_for(10001, vault)    # header + 10001 + 28 * 3
assert os.stat(bp).st_size == want, ("backing size after fsync", os.stat(bp).st_size, want)
write_all(fd, pattern(71, 10001, 5000), 10001)
os.fdatasync(fd)
want = backing_size_for(15001, vault)    # header + 15001 + 28 * 4
assert os.stat(bp).st_size == want, ("backing size after fdatasync", os.stat(bp).st_size, want)
os.close(fd)
verify_pattern(p, 0, 15001, 71)
dfd = os.open(os.path.dirname(p), os.O_RDONLY | os.O_DIRECTORY)
os.fsync(dfd)
os.close(dfd)
' "$M/synced" "$B/synced" "$B"

# --- extended attributes ------------------------------------------------------------------------
setfattr -n user.color -v blue "$M/f"; rc=$?
check_eq "setfattr -n user.color -v blue exits 0" 0 "$rc"
check_eq "getfattr returns the value" blue "$(getfattr --absolute-names --only-values -n user.color "$M/f" 2>&1)"
setfattr -n user.bin -v 0x00ff10 "$M/f"
check_eq "binary value (with a NUL) round-trips" "00ff10" "$(getfattr --absolute-names --only-values -n user.bin "$M/f" | xxd -p)"
big=$(head -c 3000 /dev/urandom | xxd -p | tr -d '\n')
setfattr -n user.big -v "0x$big" "$M/f"
check_eq "a 3000-byte value round-trips" "$big" "$(getfattr --absolute-names --only-values -n user.big "$M/f" | xxd -p | tr -d '\n')"
check_eq "listxattr lists the user.* names" "user.big user.bin user.color" \
    "$(getfattr -d -m '^user\.' --absolute-names "$M/f" | sed -n 's/^\(user\.[a-z]*\)=.*/\1/p' | sort | tr '\n' ' ' | sed 's/ $//')"
setfattr -n user.color -v red "$M/f"
check_eq "setting again replaces the value" red "$(getfattr --absolute-names --only-values -n user.color "$M/f" 2>&1)"
expect_errno EEXIST "XATTR_CREATE on an existing attribute fails with EEXIST" \
    'os.setxattr(argv[0], "user.color", b"x", os.XATTR_CREATE)' "$M/f"
expect_errno ENODATA "XATTR_REPLACE on a missing attribute fails with ENODATA" \
    'os.setxattr(argv[0], "user.nothere", b"x", os.XATTR_REPLACE)' "$M/f"
setfattr -x user.bin "$M/f"
expect_errno ENODATA "after setfattr -x, getxattr fails with ENODATA" 'os.getxattr(argv[0], "user.bin")' "$M/f"
expect_ok "after removal, listxattr no longer has it" '
names = sorted(n for n in os.listxattr(argv[0]) if n.startswith("user."))
assert names == ["user.big", "user.color"], names
' "$M/f"
expect_errno ENODATA "removing a missing attribute fails with ENODATA" 'os.removexattr(argv[0], "user.never")' "$M/f"
setfattr -n user.dirattr -v onadir "$M/d"
check_eq "xattr on a directory" onadir "$(getfattr --absolute-names --only-values -n user.dirattr "$M/d" 2>&1)"

# --- fallocate mode 0 ----------------------------------------------------------------------------
: > "$M/fa"
fallocate -l 100000 "$M/fa"; rc=$?
check_eq "fallocate -l 100000 (mode 0) on an empty file exits 0" 0 "$rc"
check_eq "  ... size grows to 100000" 100000 "$(stat -c %s "$M/fa")"
check "  ... content is zeros" "$PY" "$HELPERS_PY" zeros "$M/fa" 0 100000
"$PY" "$HELPERS_PY" write "$M/fa2" 0 10000 81
fallocate -o 5000 -l 45000 "$M/fa2"; rc=$?
check_eq "fallocate -o 5000 -l 45000 on a 10000-byte file exits 0" 0 "$rc"
check_eq "  ... size 50000" 50000 "$(stat -c %s "$M/fa2")"
check "  ... old data intact" "$PY" "$HELPERS_PY" verify "$M/fa2" 0 10000 81
check "  ... new range zeros" "$PY" "$HELPERS_PY" zeros "$M/fa2" 10000 40000
fallocate -o 100 -l 200 "$M/fa2"
check_eq "fallocate inside the file keeps the size" 50000 "$(stat -c %s "$M/fa2")"
check "  ... and the data" "$PY" "$HELPERS_PY" verify "$M/fa2" 0 10000 81
expect_ok "fallocate(2) mode 0 via ctypes, then write into the allocated range" '
import ctypes, ctypes.util
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
fd = os.open(argv[0], os.O_RDWR | os.O_CREAT, 0o644)
if libc.fallocate(fd, 0, 0, 65536) != 0:
    e = ctypes.get_errno()
    raise OSError(e, os.strerror(e))
assert os.fstat(fd).st_size == 65536
write_all(fd, pattern(82, 30000, 100), 30000)
os.close(fd)
verify_zeros(argv[0], 0, 30000)
verify_pattern(argv[0], 30000, 100, 82)
verify_zeros(argv[0], 30100, 65536 - 30100)
' "$M/fa3"

# --- after a remount ----------------------------------------------------------------------------
unmount_vault "$M" || bail "unmount failed"
for f in fa:100000 fa2:50000 fa3:65536 synced:15001; do
    check_eq "backing size of ${f%%:*} after fallocate/fsync matches the formula" \
        "$(backing_size_for "${f#*:}" "$B")" "$(stat -c %s "$B/${f%%:*}")"
done
mount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"
check_eq "after remount: mode, owner" "644 1000:1234" "$(stat -c '%a %u:%g' "$M/f")"
check_eq "after remount: directory mode and owner" "2750 4321:8765" "$(stat -c '%a %u:%g' "$M/d")"
check_eq "after remount: directory mtime" "$(date -d '2005-05-05 05:05:05 UTC' +%s)" "$(stat -c %Y "$M/d")"
check_eq "after remount: xattr" red "$(getfattr --absolute-names --only-values -n user.color "$M/f" 2>&1)"
check "after remount: fallocated file zeros" "$PY" "$HELPERS_PY" zeros "$M/fa2" 10000 40000
check "after remount: fsynced data" "$PY" "$HELPERS_PY" verify "$M/synced" 0 15001 71

done_testing
