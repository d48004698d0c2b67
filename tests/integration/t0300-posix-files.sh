#!/bin/bash
# File data semantics: create/open/read/write at any offset and size
# (unaligned, across 4096-byte block boundaries), random operations checked
# against a reference file, sparse files and holes, truncate up and down (no
# stale bytes come back), O_APPEND, O_TRUNC, reads at and past EOF, stat
# shows the plaintext size and the backing file has HDR + N + 28*ceil(N/4096)
# bytes (HDR = the vault's header size: 40 in format 2, 128 in format 1), also
# after a remount.
. "$(dirname "$0")/lib.sh"
standard_prereqs
setup_vault

# --- create / write / read small --------------------------------------------------
: > "$M/empty"
check_eq "an empty created file has size 0" 0 "$(stat -c %s "$M/empty" 2>&1)"
check_eq "  ... and reads as nothing" "" "$(cat "$M/empty" 2>&1)"
printf 'hello, world\n' > "$M/small.txt"
check_eq "small write reads back" "hello, world" "$(cat "$M/small.txt" 2>&1)"
check_eq "stat shows the plaintext size (13)" 13 "$(stat -c %s "$M/small.txt" 2>&1)"
mkdir -p "$M/a/b/c"
printf 'deep\n' > "$M/a/b/c/deep.txt"
check_eq "files in nested directories" "deep" "$(cat "$M/a/b/c/deep.txt" 2>&1)"
expect_errno EEXIST "O_CREAT|O_EXCL on an existing file fails with EEXIST" \
    'os.open(argv[0], os.O_CREAT|os.O_EXCL|os.O_WRONLY, 0o644)' "$M/small.txt"
expect_errno ENOENT "open of a missing file fails with ENOENT" 'os.open(argv[0], os.O_RDONLY)' "$M/nope"

# --- writes straddling block boundaries, read back at every alignment ---------------
expect_ok "pwrite/pread at unaligned offsets across block boundaries" '
p = argv[0]
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
ref = bytearray()
def w(off, data):
    global ref
    write_all(fd, data, off)
    if len(ref) < off + len(data):
        ref.extend(bytes(off + len(data) - len(ref)))
    ref[off:off + len(data)] = data
cases = [(0, 1), (4095, 2), (4094, 4), (8191, 1), (8192, 1), (4096 * 3 - 7, 4096 + 14),
         (1, 4095), (4097, 8191), (20000, 12345), (4096 * 10, 4096 * 3), (33, 100000)]
for i, (off, n) in enumerate(cases):
    w(off, pattern(100 + i, off, n))
    assert os.fstat(fd).st_size == len(ref), ("size", os.fstat(fd).st_size, len(ref))
    for roff, rn in [(off, n), (max(0, off - 3), n + 6), (off // 4096 * 4096, 8192), (0, len(ref))]:
        got = read_all(fd, rn, roff)
        check_bytes(got, bytes(ref[roff:roff + rn]), "case %d read [%d,+%d)" % (i, roff, rn), roff)
os.close(fd)
got = open(p, "rb").read()
check_bytes(got, bytes(ref), "whole file after reopen")
' "$M/straddle.bin"

# --- random operations compared with a reference file ------------------------------
mkdir -p "$SCRATCH/ref"
expect_ok "600 random pwrite/pread/truncate/reopen operations match a reference file" '
import random
mnt, ref = argv[0], argv[1]
rng = random.Random(20240607)
sizes = [1, 2, 3, 511, 4095, 4096, 4097, 8191, 8192, 8193, 12288, 65536, 70001]
names = ["r%d.bin" % i for i in range(3)]
fds = {}
for n in names:
    fds[n] = (os.open(os.path.join(mnt, n), os.O_RDWR | os.O_CREAT, 0o644),
              os.open(os.path.join(ref, n), os.O_RDWR | os.O_CREAT, 0o644))
for step in range(600):
    n = rng.choice(names)
    a, b = fds[n]
    op = rng.random()
    cur = os.fstat(b).st_size
    if op < 0.5:
        off = rng.choice([rng.randrange(0, 300000), rng.randrange(0, 80) * 4096 + rng.choice([-1, 0, 1, 7, 4095]), cur])
        off = max(0, off)
        ln = rng.choice(sizes) if rng.random() < 0.7 else rng.randrange(1, 50000)
        data = os.urandom(ln)
        write_all(a, data, off)
        write_all(b, data, off)
    elif op < 0.62:
        t = rng.choice([0, rng.randrange(0, 300000), cur + rng.randrange(1, 9000), max(0, cur - rng.randrange(1, 9000))])
        os.ftruncate(a, t)
        os.ftruncate(b, t)
    elif op < 0.67:
        os.close(a)
        a = os.open(os.path.join(mnt, n), os.O_RDWR)
        fds[n] = (a, b)
    else:
        off = rng.randrange(0, cur + 5000)
        ln = rng.choice(sizes + [rng.randrange(1, 100000)])
        check_bytes(read_all(a, ln, off), read_all(b, ln, off), "step %d %s read [%d,+%d)" % (step, n, off, ln), off)
    sa, sb = os.fstat(a).st_size, os.fstat(b).st_size
    assert sa == sb, "step %d %s: size %d, reference %d" % (step, n, sa, sb)
for n in names:
    a, b = fds[n]
    os.close(a)
    os.close(b)
    check_bytes(open(os.path.join(mnt, n), "rb").read(), open(os.path.join(ref, n), "rb").read(), n)
' "$M" "$SCRATCH/ref"

# --- sparse files and holes --------------------------------------------------------
expect_ok "a byte written at 1 MiB+5 in a new file: size, hole reads zeros" '
p = argv[0]
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
os.pwrite(fd, b"Z", 1048581)
os.close(fd)
assert os.stat(p).st_size == 1048582, os.stat(p).st_size
verify_zeros(p, 0, 1048581)
assert pread_file(p, 1048581, 10) == b"Z"
assert pread_file(p, 4090, 20) == bytes(20)
' "$M/sparse1"
expect_ok "holes between written blocks read as zeros" '
p = argv[0]
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
write_all(fd, pattern(1, 0, 100), 0)
write_all(fd, pattern(1, 40000, 5000), 40000)
write_all(fd, pattern(1, 200003, 3), 200003)
os.close(fd)
assert os.stat(p).st_size == 200006
verify_pattern(p, 0, 100, 1)
verify_zeros(p, 100, 40000 - 100)
verify_pattern(p, 40000, 5000, 1)
verify_zeros(p, 45000, 200003 - 45000)
verify_pattern(p, 200003, 3, 1)
' "$M/sparse2"
truncate -s 3000000 "$M/sparse3"
check_eq "truncate -s 3000000 on a new file: stat size" 3000000 "$(stat -c %s "$M/sparse3" 2>&1)"
check "  ... reads as 3000000 zeros" cmp "$M/sparse3" <(head -c 3000000 /dev/zero)

# --- truncate up and down --------------------------------------------------------------
"$PY" "$HELPERS_PY" write "$M/trunc" 0 20000 7
truncate -s 30000 "$M/trunc"
check_eq "truncate -s up: size" 30000 "$(stat -c %s "$M/trunc")"
check "  ... old bytes intact" "$PY" "$HELPERS_PY" verify "$M/trunc" 0 20000 7
check "  ... new bytes are zeros" "$PY" "$HELPERS_PY" zeros "$M/trunc" 20000 10000
truncate -s 5000 "$M/trunc"
check_eq "truncate -s down (mid-block): size" 5000 "$(stat -c %s "$M/trunc")"
check "  ... remaining bytes intact" "$PY" "$HELPERS_PY" verify "$M/trunc" 0 5000 7
truncate -s 12000 "$M/trunc"
check "truncate down then up again: no stale bytes come back (zeros after 5000)" \
    "$PY" "$HELPERS_PY" zeros "$M/trunc" 5000 7000
check "  ... first 5000 bytes still intact" "$PY" "$HELPERS_PY" verify "$M/trunc" 0 5000 7
"$PY" "$HELPERS_PY" write "$M/trunc2" 0 8192 9
truncate -s 4100 "$M/trunc2"
printf 'X' | dd of="$M/trunc2" bs=1 seek=7000 conv=notrunc status=none
check_eq "truncate down, then write past EOF in the same block: size" 7001 "$(stat -c %s "$M/trunc2")"
check "  ... the gap reads as zeros, not old data" "$PY" "$HELPERS_PY" zeros "$M/trunc2" 4100 2900
check "  ... kept bytes intact" "$PY" "$HELPERS_PY" verify "$M/trunc2" 0 4100 9
truncate -s 0 "$M/trunc2"
check_eq "truncate -s 0: size 0" 0 "$(stat -c %s "$M/trunc2")"
check_eq "  ... reads nothing" 0 "$(wc -c < "$M/trunc2")"

# --- O_APPEND, O_TRUNC -----------------------------------------------------------------
expect_ok "O_APPEND writes always go to the end, also through two descriptors" '
p = argv[0]
with open(p, "wb") as f:
    f.write(b"start-")
a = os.open(p, os.O_WRONLY | os.O_APPEND)
b = os.open(p, os.O_WRONLY | os.O_APPEND)
os.lseek(a, 0, os.SEEK_SET)
os.write(a, b"A1-")
os.write(b, b"B1-")
os.write(a, b"A2" * 3000)
os.write(b, b"-B2")
os.close(a); os.close(b)
want = b"start-A1-B1-" + b"A2" * 3000 + b"-B2"
check_bytes(open(p, "rb").read(), want, "append result")
' "$M/append"
printf 'line1\n' > "$M/append2"
printf 'line2\n' >> "$M/append2"
printf 'line3\n' >> "$M/append2"
check_eq "shell >> appends" "line1 line2 line3" "$(tr '\n' ' ' < "$M/append2" | sed 's/ $//')"
"$PY" "$HELPERS_PY" write "$M/otrunc" 0 50000 3
expect_ok "O_TRUNC empties the file; new shorter content reads back exactly" '
p = argv[0]
fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
assert os.fstat(fd).st_size == 0, os.fstat(fd).st_size
os.write(fd, b"short")
os.close(fd)
assert os.stat(p).st_size == 5, os.stat(p).st_size
assert open(p, "rb").read() == b"short"
' "$M/otrunc"
echo "replaced" > "$M/small.txt"
check_eq "shell > replaces a file's content" "replaced" "$(cat "$M/small.txt")"

# --- reads at and past EOF ---------------------------------------------------------------
expect_ok "reads at EOF return nothing, reads across EOF are short" '
p = argv[0]
write_all_fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
write_all(write_all_fd, pattern(5, 0, 6000), 0)
assert os.pread(write_all_fd, 100, 6000) == b""
assert os.pread(write_all_fd, 100, 999999) == b""
got = os.pread(write_all_fd, 4096, 5000)
check_bytes(got, pattern(5, 5000, 1000), "across EOF", 5000)
os.close(write_all_fd)
' "$M/eof"

expect_ok "300 files open at once, written interleaved, all intact after closing" '
d = argv[0]
os.mkdir(d)
fds = [os.open(os.path.join(d, "f%03d" % i), os.O_RDWR | os.O_CREAT, 0o644) for i in range(300)]
for rnd in range(3):
    for i, fd in enumerate(fds):
        write_all(fd, pattern(i, rnd * 3000, 3000), rnd * 3000)
for fd in fds:
    os.close(fd)
for i in range(300):
    verify_pattern(os.path.join(d, "f%03d" % i), 0, 9000, i)
' "$M/manyopen"

# --- copies inside the mount ---------------------------------------------------------------
head -c 3000000 /dev/urandom > "$SCRATCH/src.bin"
cp "$SCRATCH/src.bin" "$M/copy1.bin"
cp "$M/copy1.bin" "$M/a/copy2.bin"
check "cp into the mount and within it: content identical" cmp "$SCRATCH/src.bin" "$M/a/copy2.bin"

# --- backing file sizes (after unmount, so nothing is pending) ----------------------------
SIZES="0 1 100 4095 4096 4097 8191 8192 8193 100000 1048579"
for n in $SIZES; do
    head -c "$n" /dev/urandom > "$M/size-$n"
done
declare -A WANT=(
    [size-0]=0 [size-1]=1 [size-100]=100 [size-4095]=4095 [size-4096]=4096
    [size-4097]=4097 [size-8191]=8191 [size-8192]=8192 [size-8193]=8193
    [size-100000]=100000 [size-1048579]=1048579 [empty]=0 [trunc]=12000
    [trunc2]=0 [sparse1]=1048582 [sparse2]=200006 [sparse3]=3000000
    [append2]=18 [otrunc]=5 [copy1.bin]=3000000 [straddle.bin]=""
)
WANT[straddle.bin]=$(stat -c %s "$M/straddle.bin")
for f in "${!WANT[@]}"; do
    check_eq "stat through the mount: $f has ${WANT[$f]} bytes" "${WANT[$f]}" "$(stat -c %s "$M/$f" 2>&1)"
done
unmount_vault "$M" || bail "unmount failed"
for f in $(printf '%s\n' "${!WANT[@]}" | sort); do
    n=${WANT[$f]}
    check_eq "backing size of $f ($n plaintext bytes) = $(header_size_of "$B") + N + 28*ceil(N/4096)" \
        "$(backing_size_for "$n" "$B")" "$(stat -c %s "$B/$f" 2>&1)"
done
mount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"
for f in "${!WANT[@]}"; do
    check_eq "after remount: stat of $f shows ${WANT[$f]} bytes" "${WANT[$f]}" "$(stat -c %s "$M/$f" 2>&1)"
done
check "after remount: random-ops files still match the reference" \
    bash -c 'for i in 0 1 2; do cmp "$1/r$i.bin" "$2/r$i.bin" || exit 1; done' _ "$M" "$SCRATCH/ref"
check "after remount: hole file reads zeros + data" "$PY" "$HELPERS_PY" verify "$M/sparse2" 40000 5000 1
check "after remount: copied file intact" cmp "$SCRATCH/src.bin" "$M/copy1.bin"
check "after remount: truncated file's zeros intact" "$PY" "$HELPERS_PY" zeros "$M/trunc" 5000 7000

# ioctls never reach the backing file: a file is not a terminal, cannot be cloned, and a copy
# that would clone falls back to reading it.
check_eq "a file through the mount is not a terminal" False \
    "$("$PY" -c 'import sys; print(open(sys.argv[1], "rb").isatty())' "$M/copy1.bin" 2>&1)"
expect_fail "cp --reflink=always cannot clone through the mount" cp --reflink=always "$M/copy1.bin" "$M/clone.bin"
check "cp --reflink=auto copies instead" cp --reflink=auto "$M/copy1.bin" "$M/clone2.bin"
check "  ... and the copy is intact" cmp "$SCRATCH/src.bin" "$M/clone2.bin"

done_testing
