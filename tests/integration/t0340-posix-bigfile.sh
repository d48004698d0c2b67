#!/bin/bash
# A file over 4 GiB: a few bytes written at 5 GiB (+3, unaligned), data
# straddling the 4 GiB boundary; size, zeros before, tail data, backing size
# formula, all again after a remount.  The mount reads ahead 4 MiB in requests as large as
# max_write; a read-only handle reads such requests from the backing file with O_DIRECT
# (past the backing page cache): a cold sequential read returns every byte, the direct
# descriptor lives as long as the handle, a handle open for writing never has one, large
# reads at unaligned offsets and across the end are right, and a direct read sees data
# written a moment before and not yet on disk.  Small files, written at once, in two writes or
# in 512-byte appends, are each one extent of the backing disk.
. "$(dirname "$0")/lib.sh"
standard_prereqs
setup_vault

GIB=$((1024 * 1024 * 1024))
TAIL_OFF=$((5 * GIB + 3))
TAIL="tail-data-at-5GiB"
SIZE=$((TAIL_OFF + ${#TAIL}))

check_big() {  # LABEL
    local label=$1
    check_eq "$label: stat shows $SIZE bytes" "$SIZE" "$(stat -c %s "$M/big" 2>&1)"
    expect_ok "$label: tail data right, 4 GiB straddle right, sampled ranges before them are zeros" '
p, tail_off, tail = argv[0], int(argv[1]), argv[2].encode()
G = 1 << 30
check_bytes(pread_file(p, tail_off, 100), tail, "tail", tail_off)
check_bytes(pread_file(p, tail_off - 5, len(tail) + 5), bytes(5) + tail, "just before the tail", tail_off - 5)
verify_pattern(p, 4 * G - 5, 10, 7)
MB = 1 << 20
for off, n in ((0, MB), (4093, 8192), (G - 1, MB), (2 * G + 12345, MB), (4 * G - 4096 * 3, 4096 * 3 - 5),
               (4 * G + 5, 65536), (4 * G + 3 * MB + 7, MB), (5 * G - MB, MB)):
    verify_zeros(p, off, n)
verify_zeros(p, tail_off - 8192, 8192)
' "$M/big" "$TAIL_OFF" "$TAIL"
}

start=$(date +%s)
expect_ok "write a few bytes at offset 5 GiB + 3 in a new file" '
fd = os.open(argv[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
write_all(fd, argv[2].encode(), int(argv[1]))
os.close(fd)
' "$M/big" "$TAIL_OFF" "$TAIL"
expect_ok "write 10 bytes straddling the 4 GiB boundary" '
fd = os.open(argv[0], os.O_WRONLY)
write_all(fd, pattern(7, (4 << 30) - 5, 10), (4 << 30) - 5)
os.close(fd)
' "$M/big"
_lib_log "writing the big file took $(($(date +%s) - start))s"
check_big "big file"
unmount_vault "$M" || bail "unmount failed"
check_eq "backing size of the 5 GiB file matches $(header_size_of "$B") + N + 28*ceil(N/4096)" \
    "$(backing_size_for "$SIZE" "$B")" "$(stat -c %s "$B/big" 2>&1)"
mount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"
check_big "after remount"
rm -f "$M/big"
check "removing the big file frees it from the backing directory" test ! -e "$B/big"

DEV=$(mountpoint -d "$M")
check_eq "the mount reads ahead 4 MiB (bdi $DEV)" 4096 "$(cat "/sys/class/bdi/$DEV/read_ahead_kb" 2>&1)"
head -c $((96 * 1024 * 1024 + 12345)) /dev/urandom > "$SCRATCH/seq.src"
cp "$SCRATCH/seq.src" "$M/seq"
sync; echo 3 > /proc/sys/vm/drop_caches
check "a cold sequential read in read-ahead requests returns every byte" \
    cmp "$SCRATCH/seq.src" "$M/seq"

PID=$(daemon_pid_for "$M") || bail "no daemon for $M"
# direct_fds_of PATH: how many descriptors the daemon holds on backing PATH with O_DIRECT.
direct_fds_of() {
    local n=0 f flags
    for f in /proc/"$PID"/fd/*; do
        [ "$(readlink "$f" 2>/dev/null)" = "$1" ] || continue
        flags=$(awk '/^flags:/ {print $2}' "/proc/$PID/fdinfo/${f##*/}" 2>/dev/null)
        [ -n "$flags" ] && (( 8#$flags & 8#40000 )) && n=$((n + 1))
    done
    echo "$n"
}
sync; echo 3 > /proc/sys/vm/drop_caches
exec 7< "$M/seq"
head -c $((8 * 1024 * 1024)) <&7 > "$SCRATCH/seq.head"
check_eq "while a read-only handle reads sequentially, the daemon reads the backing file with O_DIRECT" \
    1 "$(direct_fds_of "$B/seq")"
check "what it read is right" cmp -n $((8 * 1024 * 1024)) "$SCRATCH/seq.src" "$SCRATCH/seq.head"
exec 7<&-
sleep 0.2
check_eq "the direct descriptor is closed with the handle" 0 "$(direct_fds_of "$B/seq")"
exec 7<> "$M/seq"
sync; echo 3 > /proc/sys/vm/drop_caches
head -c $((8 * 1024 * 1024)) <&7 > /dev/null
check_eq "a handle open for writing reads through the page cache (no O_DIRECT descriptor)" \
    0 "$(direct_fds_of "$B/seq")"
exec 7<&-
# Python's O_DIRECT open of the mount sends each read to the daemon as it is, whatever
# the page cache holds: large reads at unaligned offsets, across the end of the file, and of
# data written a moment before through another handle (still dirty in the backing page cache).
expect_ok "large reads at unaligned offsets, across the end, and just after a write, are right" '
src, p = argv[0], argv[1]
with open(src, "rb") as f:
    want = f.read()
size = len(want)
fd = os.open(p, os.O_RDONLY | os.O_DIRECT)
try:
    for off, n in ((0, 1 << 20), (12345, 1 << 20), (4096 * 7 + 40, 3 << 19), (size - 700000, 1 << 20),
                   (size - (1 << 20) - 1, 1 << 20), (size - 5, 1 << 20)):
        got = os.pread(fd, n, off)
        check_bytes(got, want[off:off + n], "direct read [%d,+%d)" % (off, n), off)
    new = pattern(11, 0, 3 << 20)
    w = os.open(p, os.O_WRONLY)
    try:
        write_all(w, new, 5 << 20)
    finally:
        os.close(w)
    for off, n in ((5 << 20, 1 << 20), ((5 << 20) + 99999, 2 << 20), ((4 << 20) + 1, 2 << 20)):
        got = os.pread(fd, n, off)
        exp = bytearray(want[off:off + n])
        lo, hi = max(off, 5 << 20), min(off + n, 8 << 20)
        exp[lo - off:hi - off] = new[lo - (5 << 20):hi - (5 << 20)]
        check_bytes(got, bytes(exp), "direct read after write [%d,+%d)" % (off, n), off)
finally:
    os.close(fd)
' "$SCRATCH/seq.src" "$M/seq"

# With -o max_idle_threads=1 libfuse ends worker threads as load falls and starts new ones as
# it rises: what a thread holds for its requests (the buffer a request's blocks are read
# into) must go with it.
remount_vault "$B" "$M" --keyfile "$KEY" -o max_idle_threads=1 ||
    bail "remount with -o max_idle_threads=1 failed: $(cat "$SCRATCH/mount.err")"
PID=$(daemon_pid_for "$M") || bail "no daemon for $M"
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$PID/status"; }
sync; echo 3 > /proc/sys/vm/drop_caches
cat "$M/seq" > /dev/null
before=$(rss_kib)
for _ in 1 2 3; do
    echo 3 > /proc/sys/vm/drop_caches
    cat "$M/seq" > /dev/null
done
after=$(rss_kib)
_lib_log "daemon resident memory: $before KiB before, $after KiB after three cold reads"
check "with threads ending and starting, three cold 96 MiB reads leave the daemon within 32 MiB of where it was" \
    test $((after - before)) -lt 32768

# A small file lies in one extent of the backing disk, header and all, however it was written:
# a cold read of it is one disk read.  (A growing file's new space is written, not reserved
# with fallocate, so the backing filesystem allocates all of it at once at writeback.)
mkdir "$M/small"
expect_ok "write 20 small files each in one write, in two (as tar does), and in 512-byte appends" '
d = argv[0]
for i in range(20):
    size = 5000 + 571 * i
    for kind, steps in (("one", [size]), ("two", [3000, size - 3000]), ("appends", [512] * (size // 512) + [size % 512])):
        fd = os.open("%s/%s-%02d" % (d, kind, i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        off = 0
        for n in steps:
            write_all(fd, pattern(i, off, n), off)
            off += n
        os.close(fd)
' "$M/small"
sync
check_eq "  ... each of the 60 backing files is one extent (filefrag)" "60 files, 60 extents" \
    "$(filefrag "$B"/small/* | awk '{n++; e += $2} END {print n " files, " e " extents"}')"
check "  ... and each reads back right" "$PY" -c '
import os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
from helpers import pattern
d = sys.argv[2]
for i in range(20):
    size = 5000 + 571 * i
    for kind in ("one", "two", "appends"):
        assert open("%s/%s-%02d" % (d, kind, i), "rb").read() == pattern(i, 0, size), (kind, i)
' "$HELPERS_PY" "$M/small"
unmount_vault "$M" || bail "unmount failed"

# ramfs has no O_DIRECT: a vault on it is read through the page cache, every byte right.
RAMFS=$SCRATCH/ramfs
mkdir -p "$RAMFS" && mount -t ramfs none "$RAMFS" || bail "cannot mount a ramfs on $RAMFS"
make_vault "$RAMFS/backing" "$KEY" || bail "custodyctl init on ramfs failed: $(cat "$SCRATCH/init.err")"
mount_vault "$RAMFS/backing" "$M" --keyfile "$KEY" || bail "mount failed: $(cat "$SCRATCH/mount.err")"
head -c $((24 * 1024 * 1024 + 777)) /dev/urandom > "$SCRATCH/ram.src"
cp "$SCRATCH/ram.src" "$M/r"
remount_vault "$RAMFS/backing" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"
PID=$(daemon_pid_for "$M") || bail "no daemon for $M"
exec 7< "$M/r"
cat <&7 > "$SCRATCH/ram.out"
check_eq "on a backing filesystem without O_DIRECT (ramfs) no direct descriptor is held" \
    0 "$(direct_fds_of "$RAMFS/backing/r")"
check "  ... and a sequential read returns every byte" cmp "$SCRATCH/ram.src" "$SCRATCH/ram.out"
exec 7<&-
unmount_vault "$M" || bail "unmount failed"
umount "$RAMFS"
done_testing
