#!/bin/bash
# Namespace semantics: rename (plain, over an existing file, of directories,
# error cases), unlink of an open file, hard links, symlinks, mkdir/rmdir
# (EEXIST, ENOTEMPTY, ENOTDIR), odd file names, readdir of a 5000-entry
# directory; everything re-checked after a remount.
. "$(dirname "$0")/lib.sh"
standard_prereqs
setup_vault

# --- rename -------------------------------------------------------------------------
"$PY" "$HELPERS_PY" write "$M/r1" 0 10000 11
mv "$M/r1" "$M/r1-renamed"
check "rename: the new name has the content" "$PY" "$HELPERS_PY" verify "$M/r1-renamed" 0 10000 11
expect_errno ENOENT "rename: the old name is gone" 'os.stat(argv[0])' "$M/r1"
check "rename: the backing file got the (plaintext) new name" test -f "$B/r1-renamed"
check "rename: the backing file's old name is gone" test ! -e "$B/r1"

"$PY" "$HELPERS_PY" write "$M/src" 0 7000 21
"$PY" "$HELPERS_PY" write "$M/dst" 0 30000 22
expect_ok "rename over an existing file: target replaced; an fd open on the old target still reads it" '
src, dst = argv
old = os.open(dst, os.O_RDONLY)
os.rename(src, dst)
check_bytes(read_all(old, 30000, 0), pattern(22, 0, 30000), "old target through its open fd")
os.close(old)
assert not os.path.exists(src)
assert os.stat(dst).st_size == 7000, os.stat(dst).st_size
verify_pattern(dst, 0, 7000, 21)
' "$M/src" "$M/dst"

mkdir -p "$M/d1/sub"
"$PY" "$HELPERS_PY" write "$M/d1/f" 0 5000 31
"$PY" "$HELPERS_PY" write "$M/d1/sub/g" 0 9000 32
mv "$M/d1" "$M/d2"
check "rename of a directory: files inside readable under the new name" \
    "$PY" "$HELPERS_PY" verify "$M/d2/sub/g" 0 9000 32
expect_errno ENOENT "rename of a directory: old path gone" 'os.stat(argv[0])' "$M/d1/f"
mkdir "$M/other"
mv "$M/d2" "$M/other/d3"
check "rename of a directory into another directory" "$PY" "$HELPERS_PY" verify "$M/other/d3/f" 0 5000 31
mkdir "$M/emptydir"
expect_ok "rename of a directory over an empty directory" 'os.rename(argv[0], argv[1])' "$M/other/d3" "$M/emptydir"
check "  ... content there" "$PY" "$HELPERS_PY" verify "$M/emptydir/sub/g" 0 9000 32
mkdir -p "$M/full/x" "$M/dd"
expect_errno "ENOTEMPTY|EEXIST" "rename of a directory over a non-empty directory fails" \
    'os.rename(argv[0], argv[1])' "$M/dd" "$M/full"
echo f > "$M/plainfile"
expect_errno EISDIR "rename of a file over a directory fails with EISDIR" 'os.rename(argv[0], argv[1])' "$M/plainfile" "$M/dd"
expect_errno ENOTDIR "rename of a directory over a file fails with ENOTDIR" 'os.rename(argv[0], argv[1])' "$M/dd" "$M/plainfile"
expect_errno ENOENT "rename of a missing file fails with ENOENT" 'os.rename(argv[0], argv[1])' "$M/missing" "$M/x"
expect_errno EINVAL "rename of a directory into itself fails with EINVAL" 'os.rename(argv[0], argv[1])' "$M/full" "$M/full/x/y"

expect_ok "rename of an open file: the fd keeps reading and writing, the new name sees it" '
a, b, d = argv
fd = os.open(a, os.O_RDWR | os.O_CREAT, 0o644)
write_all(fd, pattern(35, 0, 9000), 0)
os.rename(a, b)
write_all(fd, pattern(35, 9000, 7000), 9000)
check_bytes(read_all(fd, 16000, 0), pattern(35, 0, 16000), "through the fd after rename")
os.close(fd)
verify_pattern(b, 0, 16000, 35)
os.mkdir(d)
fd = os.open(b, os.O_RDWR)
os.rename(b, os.path.join(d, "moved"))              # into another directory, while open
write_all(fd, pattern(36, 100, 50), 100)
os.close(fd)
verify_pattern(os.path.join(d, "moved"), 100, 50, 36)
verify_pattern(os.path.join(d, "moved"), 150, 15850, 35)
assert os.stat(os.path.join(d, "moved")).st_size == 16000
' "$M/open-a" "$M/open-b" "$M/open-dir"
mkdir -p "$M/busy/inner"
"$PY" "$HELPERS_PY" write "$M/busy/inner/f" 0 5000 37
expect_ok "rename of a directory holding an open file: the fd still works" '
old, new = argv
fd = os.open(os.path.join(old, "inner", "f"), os.O_RDWR)
os.rename(old, new)
write_all(fd, pattern(38, 4000, 2000), 4000)
os.close(fd)
verify_pattern(os.path.join(new, "inner", "f"), 0, 4000, 37)
verify_pattern(os.path.join(new, "inner", "f"), 4000, 2000, 38)
' "$M/busy" "$M/busy2"

# --- unlink of an open file ------------------------------------------------------------
mkdir "$M/ul"
expect_ok "unlink of an open file: the fd still reads and writes it; the name is gone" '
p, d = argv
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
write_all(fd, pattern(41, 0, 20000), 0)
os.unlink(p)
try:
    os.stat(p)
    raise AssertionError("name still there after unlink")
except FileNotFoundError:
    pass
assert os.path.basename(p) not in os.listdir(d), os.listdir(d)
check_bytes(read_all(fd, 20000, 0), pattern(41, 0, 20000), "read after unlink")
write_all(fd, pattern(42, 15000, 10000), 15000)
check_bytes(read_all(fd, 15000, 0), pattern(41, 0, 15000), "old part after unlink+write")
check_bytes(read_all(fd, 10000, 15000), pattern(42, 15000, 10000), "new part after unlink+write", 15000)
assert read_all(fd, 100, 25000) == b"", "data past the written end"
os.close(fd)
' "$M/ul/victim" "$M/ul"
expect_ok "unlink of an open file: ftruncate on the fd still works" '
fd = os.open(argv[0], os.O_RDWR | os.O_CREAT, 0o644)
write_all(fd, pattern(43, 0, 9000), 0)
os.unlink(argv[0])
write_all(fd, pattern(43, 9000, 1000), 9000)
os.ftruncate(fd, 5000)
check_bytes(read_all(fd, 9000, 0), pattern(43, 0, 5000), "after ftruncate of the unlinked file")
os.close(fd)
' "$M/ul/victim2"
expect_ok "unlink of an open file: fstat on the fd still works and shows the size" '
fd = os.open(argv[0], os.O_RDWR | os.O_CREAT, 0o644)
write_all(fd, pattern(44, 0, 7000), 0)
os.unlink(argv[0])
write_all(fd, pattern(44, 7000, 3000), 7000)
st = os.fstat(fd)
assert st.st_size == 10000, st.st_size
os.close(fd)
' "$M/ul/victim3"
sleep 0.2
check "after close, the unlinked files are gone from the backing directory too" test ! -e "$B/ul/victim" -a ! -e "$B/ul/victim2" -a ! -e "$B/ul/victim3"
check "after close, the directory of the unlinked file can be removed" rmdir "$M/ul"

# --- hard links --------------------------------------------------------------------------
"$PY" "$HELPERS_PY" write "$M/h1" 0 12000 51
ln "$M/h1" "$M/h2"
check_eq "hard link: link count 2 on both names" "2 2" "$(stat -c %h "$M/h1") $(stat -c %h "$M/h2")"
check_eq "hard link: same inode number" "$(stat -c %i "$M/h1")" "$(stat -c %i "$M/h2")"
check "hard link: content shared" cmp "$M/h1" "$M/h2"
"$PY" "$HELPERS_PY" write "$M/h2" 5000 3000 52
check "hard link: a write through one name is seen through the other" "$PY" "$HELPERS_PY" verify "$M/h1" 5000 3000 52
expect_ok "hard link: with one name's data cached, a write through the other is seen" '
a, b = argv
fa = os.open(a, os.O_RDONLY)
check_bytes(read_all(fa, 12000, 0), pattern(51, 0, 5000) + pattern(52, 5000, 3000) + pattern(51, 8000, 4000), "before")
fb = os.open(b, os.O_WRONLY)
write_all(fb, pattern(54, 100, 6000), 100)
os.close(fb)
os.close(fa)
fa = os.open(a, os.O_RDONLY)
check_bytes(read_all(fa, 6000, 100), pattern(54, 100, 6000), "through the first name after the write", 100)
os.close(fa)
write_all_fd = os.open(b, os.O_WRONLY)
write_all(write_all_fd, pattern(51, 100, 4900) + pattern(52, 5000, 1100), 100)   # restore
os.close(write_all_fd)
' "$M/h1" "$M/h2"
mkdir "$M/hl"
ln "$M/h1" "$M/hl/h3"
check_eq "hard link in another directory: link count 3" 3 "$(stat -c %h "$M/h1")"
rm "$M/h1"
check_eq "after unlinking one name: link count 2" 2 "$(stat -c %h "$M/h2")"
check "  ... the other names still read the data" "$PY" "$HELPERS_PY" verify "$M/hl/h3" 0 5000 51
expect_errno EPERM "hard link to a directory fails with EPERM" 'os.link(argv[0], argv[1])' "$M/hl" "$M/hl-link"

# --- symlinks ----------------------------------------------------------------------------
echo "symlink target content" > "$M/target.txt"
ln -s target.txt "$M/link1"
ln -s "../target.txt" "$M/other/link2"
ln -s "other" "$M/dirlink"
ln -s "does-not-exist" "$M/dangling"
long_target=$(printf 'x%.0s' $(seq 1 1000))
ln -s "$long_target" "$M/longlink"
check_eq "readlink returns the exact target" "target.txt" "$(readlink "$M/link1")"
check_eq "readlink of a relative ../ target" "../target.txt" "$(readlink "$M/other/link2")"
check_eq "readlink of a 1000-byte target" "$long_target" "$(readlink "$M/longlink")"
check_eq "reading through a symlink follows it" "symlink target content" "$(cat "$M/link1" 2>&1)"
check_eq "reading through a ../ symlink" "symlink target content" "$(cat "$M/other/link2" 2>&1)"
check "a symlink to a directory is followed" test -L "$M/dirlink" -a -d "$M/dirlink" -a -L "$M/dirlink/link2"
check_eq "lstat type of a symlink" "symbolic link" "$(stat -c %F "$M/link1")"
expect_errno ENOENT "a dangling symlink: open fails with ENOENT" 'os.open(argv[0], os.O_RDONLY)' "$M/dangling"
echo "via link" > "$M/link1"
check_eq "writing through a symlink writes the target" "via link" "$(cat "$M/target.txt")"
expect_errno EEXIST "symlink over an existing name fails with EEXIST" 'os.symlink("x", argv[0])' "$M/link1"

# --- mkdir / rmdir --------------------------------------------------------------------------
mkdir "$M/md"
check "mkdir creates a directory" test -d "$M/md"
expect_errno EEXIST "mkdir of an existing directory fails with EEXIST" 'os.mkdir(argv[0])' "$M/md"
expect_errno EEXIST "mkdir over an existing file fails with EEXIST" 'os.mkdir(argv[0])' "$M/plainfile"
expect_errno ENOENT "mkdir in a missing parent fails with ENOENT" 'os.mkdir(argv[0])' "$M/nope/md"
echo x > "$M/md/file"
expect_errno ENOTEMPTY "rmdir of a non-empty directory fails with ENOTEMPTY" 'os.rmdir(argv[0])' "$M/md"
expect_errno ENOTDIR "rmdir of a file fails with ENOTDIR" 'os.rmdir(argv[0])' "$M/md/file"
expect_errno EISDIR "unlink of a directory fails with EISDIR" 'os.unlink(argv[0])' "$M/md"
rm "$M/md/file"
check "rmdir of the emptied directory" rmdir "$M/md"
check "  ... it is gone" test ! -e "$M/md"
check "  ... also from the backing directory" test ! -e "$B/md"
check_eq "a new directory has link count 2" 2 "$(mkdir "$M/nl" && stat -c %h "$M/nl")"

# --- odd names --------------------------------------------------------------------------------
expect_ok "names with spaces, UTF-8, newline, leading dash and 255 bytes" '
d = argv[0]
os.mkdir(d)
names = ["with space", "ünïcödé-名前", "new\nline", "-dash", "a" * 255, "..dots", "trailing."]
for i, n in enumerate(names):
    with open(os.path.join(d, n), "wb") as f:
        f.write(pattern(60 + i, 0, 100 + i))
assert sorted(os.listdir(d)) == sorted(names), os.listdir(d)
for i, n in enumerate(names):
    verify_pattern(os.path.join(d, n), 0, 100 + i, 60 + i)
' "$M/odd"
expect_errno ENAMETOOLONG "a 256-byte name fails with ENAMETOOLONG" \
    'open(os.path.join(argv[0], "b" * 256), "wb")' "$M/odd"

# --- readdir of a large directory --------------------------------------------------------------
expect_ok "readdir of a 5000-entry directory lists every entry exactly once" '
d = argv[0]
os.mkdir(d)
want = ["entry-%05d-%s" % (i, "x" * (i % 40)) for i in range(5000)]
for n in want:
    os.close(os.open(os.path.join(d, n), os.O_WRONLY | os.O_CREAT, 0o644))
got = os.listdir(d)
assert len(got) == len(set(got)), "duplicates: %d listed, %d distinct" % (len(got), len(set(got)))
missing = set(want) - set(got)
extra = set(got) - set(want)
assert not missing and not extra, ("missing", sorted(missing)[:5], "extra", sorted(extra)[:5])
with os.scandir(d) as it:
    n = sum(1 for e in it if e.is_file(follow_symlinks=False))
assert n == 5000, n
for n in want[::2]:
    os.unlink(os.path.join(d, n))
got = os.listdir(d)
assert sorted(got) == sorted(want[1::2]), "after deleting half: %d listed" % len(got)
' "$M/big"
check_eq "ls -f of the big directory shows 2500 entries plus . and .." 2502 "$(ls -f "$M/big" | wc -l)"

# --- after a remount -----------------------------------------------------------------------------
remount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"
check "after remount: renamed file intact" "$PY" "$HELPERS_PY" verify "$M/r1-renamed" 0 10000 11
check "after remount: file renamed over another intact" "$PY" "$HELPERS_PY" verify "$M/dst" 0 7000 21
check "after remount: renamed directory tree intact" "$PY" "$HELPERS_PY" verify "$M/emptydir/sub/g" 0 9000 32
check "after remount: file renamed while open intact" "$PY" "$HELPERS_PY" verify "$M/open-dir/moved" 150 15850 35
check "after remount: file written after its directory was renamed" "$PY" "$HELPERS_PY" verify "$M/busy2/inner/f" 4000 2000 38
check_eq "after remount: hard link count" 2 "$(stat -c %h "$M/h2")"
"$PY" "$HELPERS_PY" write "$M/h2" 0 100 53
check "after remount: hard links still share data" "$PY" "$HELPERS_PY" verify "$M/hl/h3" 0 100 53
check_eq "after remount: symlink" "target.txt|via link" "$(readlink "$M/link1")|$(cat "$M/link1" 2>&1)"
check_eq "after remount: big directory has 2500 entries" 2500 "$(ls -A "$M/big" | wc -l)"
# A listing hands the kernel each entry's attributes (readdirplus): they must be what a lookup
# gives, the plaintext size among them, for files, links and directories alike.
mkdir -p "$M/sizes/sub" && ln -sf ../target.txt "$M/sizes/link"
for n in 0 1 4095 4096 4097 100000; do head -c "$n" /dev/urandom > "$M/sizes/f$n"; done
sync; echo 3 > /proc/sys/vm/drop_caches
check "a listing gives each entry the attributes a lookup gives" "$PY" -c '
import os, sys
d = sys.argv[1]
listed = {e.name: e.stat(follow_symlinks=False) for e in os.scandir(d)}
import time; time.sleep(1.2)            # past the attribute timeout: lookups again
for name, a in listed.items():
    b = os.lstat(os.path.join(d, name))
    for f in ("st_mode", "st_ino", "st_size", "st_nlink", "st_uid", "st_gid", "st_mtime_ns"):
        assert getattr(a, f) == getattr(b, f), (name, f, getattr(a, f), getattr(b, f))
for n in (0, 1, 4095, 4096, 4097, 100000):
    assert listed["f%d" % n].st_size == n, (n, listed["f%d" % n].st_size)
' "$M/sizes"

# Unlinking hands the last close of a file to a background thread (the backing filesystem frees
# its blocks there), but statfs through the mount waits for it: space freed shows at once.
mkdir "$M/space"
for i in $(seq 1 40); do head -c $((1 << 20)) /dev/urandom > "$M/space/f$i"; done
sync
expect_ok "unlinked files: statfs through the mount shows their space free at once" '
import os
d = argv[0]
sv = os.statvfs(d)
before = sv.f_bavail * sv.f_frsize
for i in range(1, 41):
    os.unlink(os.path.join(d, "f%d" % i))
sv = os.statvfs(d)
after = sv.f_bavail * sv.f_frsize
assert after - before >= 38 << 20, (before, after, after - before)
' "$M/space"
check_eq "unlinked files: no backing file left" 0 "$(find "$B/space" -type f | wc -l)"

done_testing
