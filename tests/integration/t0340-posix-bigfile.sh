#!/bin/bash
# A file over 4 GiB: a few bytes written at 5 GiB (+3, unaligned), data
# straddling the 4 GiB boundary; size, zeros before, tail data, backing size
# formula, all again after a remount.  The mount reads ahead 1 MiB (requests as large as
# max_write), and a large sequential read through it returns every byte.
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
check_eq "the mount reads ahead 1 MiB (bdi $DEV)" 1024 "$(cat "/sys/class/bdi/$DEV/read_ahead_kb" 2>&1)"
head -c $((96 * 1024 * 1024 + 12345)) /dev/urandom > "$SCRATCH/seq.src"
cp "$SCRATCH/seq.src" "$M/seq"
sync; echo 3 > /proc/sys/vm/drop_caches
check "a cold sequential read in 1 MiB read-ahead requests returns every byte" \
    cmp "$SCRATCH/seq.src" "$M/seq"
done_testing
