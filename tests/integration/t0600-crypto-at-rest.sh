#!/bin/bash
# Encryption at rest: a canary written through the mount (small and large
# files, unaligned offsets straddling blocks, many copies, sparse files)
# never appears in any backing file, nor its hex/base64; identical plaintext
# blocks never give identical ciphertext; an overwritten block gets a new
# nonce; the config holds neither the passphrase nor the key; data (a real
# multi-MiB binary and a whole directory tree) round-trips bit for bit across
# unmount + remount.
. "$(dirname "$0")/lib.sh"
standard_prereqs
# This script checks the format-1 layout (128-byte headers) byte by byte, so its
# vaults are format 1; t0610-crypto-format2.sh covers format 2 (the default).
VAULT_FILE_FORMAT=1
setup_vault

CANARY="CANARY-$(head -c 12 /dev/urandom | xxd -p)-custody"
HEX=$(printf '%s' "$CANARY" | xxd -p | tr -d '\n')
HEXU=$(echo "$HEX" | tr a-f A-F)
B64=$(printf '%s' "$CANARY" | base64 -w0 | cut -c1-32)

# --- write the canary in many shapes ------------------------------------------------------
printf '%s' "$CANARY" > "$M/tiny"
printf '%s\n' "$CANARY" > "$M/line.txt"
expect_ok "write the canary into files of many shapes" '
c = argv[0].encode()
d = argv[1]
# a large file with the canary at unaligned offsets, several straddling block boundaries
fd = os.open(os.path.join(d, "large.bin"), os.O_RDWR | os.O_CREAT, 0o644)
write_all(fd, pattern(1, 0, 4 << 20), 0)
for off in (0, 100, 4096 - 5, 4096 * 7 - len(c) + 1, 123457, 999999, (4 << 20) - len(c), 3 * 4096 + 4090):
    write_all(fd, c, off)
os.close(fd)
# many copies back to back
with open(os.path.join(d, "many.txt"), "wb") as f:
    f.write((c + b"\n") * 50000)
# copies in a sparse file, far apart
fd = os.open(os.path.join(d, "sparse.bin"), os.O_RDWR | os.O_CREAT, 0o644)
for off in (5, 40000, 1 << 20, (8 << 20) + 3):
    write_all(fd, c, off)
os.close(fd)
# appended in small writes
fd = os.open(os.path.join(d, "appended.txt"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
for i in range(500):
    os.write(fd, c[: 1 + i % (len(c) - 1)])   # a strict prefix
    os.write(fd, c)
os.close(fd)
os.makedirs(os.path.join(d, "sub", "deeper"))
with open(os.path.join(d, "sub", "deeper", "nested.txt"), "wb") as f:
    f.write(b"prefix " + c + b" suffix")
' "$CANARY" "$M"
n=$(cat "$M/tiny" "$M/line.txt" "$M/large.bin" "$M/many.txt" "$M/sparse.bin" "$M/appended.txt" "$M/sub/deeper/nested.txt" | grep -a -o -F "$CANARY" | wc -l)
check_eq "the canary reads back through the mount (all copies)" $((1 + 1 + 8 + 50000 + 4 + 500 + 1)) "$n"

backing_hits() {  # [DIR]: prints the files under DIR (default $B) holding any canary encoding
    grep -r -l -a -F -e "$CANARY" -e "$HEX" -e "$HEXU" -e "$B64" "${1:-$B}" 2>&1
}
# control: the same search does find each encoding in plain files
mkdir "$SCRATCH/control"
for form in "$CANARY" "$HEX" "$HEXU" "$B64"; do
    { head -c 5000 /dev/urandom; printf '%s' "$form"; head -c 5000 /dev/urandom; } > "$SCRATCH/control/$RANDOM$RANDOM"
done
check_eq "control: the search finds each canary encoding in plain files" 4 "$(backing_hits "$SCRATCH/control" | wc -l)"
sync
check_eq "while mounted: no backing file contains the canary, its hex or base64" "" "$(backing_hits)"
unmount_vault "$M" || bail "unmount failed"
check_eq "after unmount: no backing file contains the canary, its hex or base64" "" "$(backing_hits)"
check_eq "  ... (the backing files are there: tiny is 128 + N + 28 bytes)" \
    "$(backing_size_for ${#CANARY})" "$(stat -c %s "$B/tiny")"
mount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"

# --- ciphertext structure --------------------------------------------------------------------
expect_ok "256 identical plaintext blocks give 256 distinct ciphertext blocks and nonces" '
p, bp = argv
block = os.urandom(4096)
with open(p, "wb") as f:
    f.write(block * 256)
    f.flush()
    os.fsync(f.fileno())
raw = open(bp, "rb").read()
assert len(raw) == 128 + 256 * (4096 + 28), len(raw)
blocks = [raw[128 + i * 4124: 128 + (i + 1) * 4124] for i in range(256)]
assert len(set(b[12:] for b in blocks)) == 256, "repeated ciphertext blocks"
assert len(set(b[:12] for b in blocks)) == 256, "repeated nonces"
assert block not in raw
' "$M/repeat.bin" "$B/repeat.bin"
expect_ok "two files with identical content have different ciphertext" '
a, b, ba, bb = argv
data = os.urandom(3 * 4096 + 10)
for p in (a, b):
    with open(p, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
ra, rb = open(ba, "rb").read(), open(bb, "rb").read()
assert len(ra) == len(rb) == 128 + len(data) + 4 * 28
for i in range(4):
    x = ra[128 + i * 4124: 128 + (i + 1) * 4124]
    y = rb[128 + i * 4124: 128 + (i + 1) * 4124]
    assert x[12:] != y[12:], "block %d: same ciphertext in both files" % i
    assert x[:12] != y[:12], "block %d: same nonce in both files" % i
' "$M/same1" "$M/same2" "$B/same1" "$B/same2"
expect_ok "rewriting a block (different or same data) stores it with a new nonce" '
p, bp = argv
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
write_all(fd, pattern(3, 0, 8192), 0)
os.fsync(fd)
seen = set()
def nonce0():
    with open(bp, "rb") as f:
        f.seek(128)
        return f.read(12)
seen.add(nonce0())
for i in range(5):
    write_all(fd, pattern(10 + i, 100, 50), 100)      # partial rewrite of block 0
    os.fsync(fd)
    n = nonce0()
    assert n not in seen, "nonce reused after rewrite %d" % i
    seen.add(n)
write_all(fd, read_all(fd, 4096, 0), 0)                # same data again
os.fsync(fd)
assert nonce0() not in seen, "nonce reused when the same data was rewritten"
os.close(fd)
' "$M/rewrite.bin" "$B/rewrite.bin"

# --- the config holds no secrets -------------------------------------------------------------------
PW=$SCRATCH/pw
PHRASE="passphrase-$(head -c 8 /dev/urandom | xxd -p)"
printf '%s\n' "$PHRASE" > "$PW"
timeout "$CMD_TIMEOUT" "$CUSTODYCTL" init "$SCRATCH/pv" --passphrase-file "$PW" > /dev/null 2>&1 < /dev/null
check_eq "passphrase vault created" 0 "$?"
check_eq "the config does not contain the passphrase (plain or hex)" "" \
    "$(grep -r -l -a -F -e "$PHRASE" -e "$(printf '%s' "$PHRASE" | xxd -p | tr -d '\n')" "$SCRATCH/pv" 2>&1)"
expect_ok "the config does not contain the raw key, its hex or base64" '
import base64
key = open(argv[0], "rb").read()
assert len(key) == 32
for root, dirs, files in os.walk(argv[1]):
    for name in files:
        raw = open(os.path.join(root, name), "rb").read()
        for form in (key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key)[:40]):
            assert form not in raw, "key found in %s" % name
' "$KEY" "$B/.custody"

# --- round trips ---------------------------------------------------------------------------------------
REAL=$(readlink -f "$PY")
check "a real multi-MiB file exists to copy ($REAL)" test "$(stat -c %s "$REAL")" -gt 2000000
cp "$REAL" "$M/real.bin"
check "a copy of $REAL through the mount is bit-identical" cmp "$REAL" "$M/real.bin"
TREE=$("$PY" -c 'import numpy, os; print(os.path.join(os.path.dirname(numpy.__file__), "core"))')
cp -a "$TREE" "$M/tree"
check "a whole directory tree ($TREE) copied in compares equal (diff -r)" diff -r "$TREE" "$M/tree"
(cd "$M" && find . -type f ! -name '.*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) > "$SCRATCH/sums.before"
check "checksums of all files taken" test -s "$SCRATCH/sums.before"
unmount_vault "$M" || bail "unmount failed"
check_eq "after unmount: the canary still appears nowhere in the backing dir" "" "$(backing_hits)"
mount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"
(cd "$M" && find . -type f ! -name '.*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) > "$SCRATCH/sums.after"
if cmp -s "$SCRATCH/sums.before" "$SCRATCH/sums.after"; then
    pass "after unmount + remount every file has the same sha256 ($(wc -l < "$SCRATCH/sums.after") files)"
else
    fail "after unmount + remount every file has the same sha256" "$(diff "$SCRATCH/sums.before" "$SCRATCH/sums.after" | head -20)"
fi
check "after remount: the real binary is bit-identical" cmp "$REAL" "$M/real.bin"
check "after remount: the tree compares equal" diff -r "$TREE" "$M/tree"
n=$(grep -a -o -F "$CANARY" "$M/many.txt" | wc -l)
check_eq "after remount: all 50000 canary copies read back" 50000 "$n"

done_testing
