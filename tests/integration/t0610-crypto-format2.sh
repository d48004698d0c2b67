#!/bin/bash
# File format 2, the default of `custodyctl init` (t0600 / t0700 / t1310 pin format 1):
#
#   - the config of a default vault has one "file-key <144 hex>" line; --file-format 1 makes a
#     config without it, --file-format 2 one with it, any other value fails (non-zero, one line
#     on stderr, no vault);
#   - backing sizes: an empty file created through the mount is 40 bytes, N bytes take
#     40 + N + ceil(N/4096) * overhead; the header: magic "CST2", the vault's cipher byte,
#     flags 0 (bit 0 once the file has a hole), reserved 0, a distinct random file ID per file;
#   - the plaintext never shows in the backing files; rewriting the same data gives new nonces
#     and ciphertext; identical blocks / identical files give different ciphertext; O_TRUNC keeps
#     the header; a file written at 1 MiB gets the sparse flag and reads zeros in the hole;
#   - offline tampering (unmounted, then remounted): each of the 40 header bytes flipped (one
#     file each, two masks), the cipher or flag byte changed, truncation to 1..39 and 41..68
#     bytes, a header from a second vault (same key file, and another key), a whole file from
#     another vault, a format-1 file planted in the format-2 vault (and the reverse): reading
#     and opening for read-write / append / write fail with EIO and the backing bytes stay as
#     planted; 0- and 40-byte backing files are empty files; another file's header copied over:
#     every block reads EIO; a cut block opens for read-write but reads EIO; a flipped nonce /
#     ciphertext / tag byte, two swapped blocks, a block copied from another file: that block
#     EIO, the others read right; a file renamed or moved in the backing directory reads fine
#     (the header does not bind the path);
#   - the vault still mounts afterwards and untouched files read right; a format-1 vault
#     (VAULT_FILE_FORMAT=1), mounted next to it, stores N bytes in 128 + N + blocks * overhead.
. "$(dirname "$0")/lib.sh"
standard_prereqs
T_START=$(date +%s)
# This script tests the default file format: a VAULT_FILE_FORMAT from the environment would
# change what make_vault / setup_vault create.
unset VAULT_FILE_FORMAT
setup_vault
CFG=$B/.custody/config

# --- the configuration; custodyctl init --file-format ----------------------------------------------------
check_eq "a default vault's config has exactly one 'file-key ' line" 1 "$(grep -c '^file-key ' "$CFG")"
check_match "  ... 'file-key' followed by 144 hex digits" '^file-key [0-9a-fA-F]{144}$' \
    "$(grep '^file-key ' "$CFG")"
check_eq "  ... so lib.sh's header_size_of gives 40" 40 "$(header_size_of "$B")"
check "the config names the cipher" grep -q -E '^cipher (aes256gcm|xchacha20poly1305)$' "$CFG"
if grep -q '^cipher xchacha20poly1305$' "$CFG"; then
    CIPHER=2 NONCE=24
else
    CIPHER=1 NONCE=12
fi
HDR=40
OVH=$((NONCE + 16))                 # 28 with AES-256-GCM
SLOT=$((4096 + OVH))
_lib_log "cipher byte $CIPHER, nonce $NONCE bytes, block overhead $OVH bytes"

ctl() { timeout "$CMD_TIMEOUT" "$CUSTODYCTL" "$@" > "$SCRATCH/ctl.out" 2> "$SCRATCH/ctl.err" < /dev/null; }
ctl init "$SCRATCH/ff1" --keyfile "$KEY" --file-format 1; rc=$?
check_eq "custodyctl init --file-format 1 exits 0" 0 "$rc" || printf '#   %s\n' "$(cat "$SCRATCH/ctl.err")"
check "  ... and writes a config" test -s "$SCRATCH/ff1/.custody/config"
check_eq "  ... without a 'file-key ' line" 0 "$(grep -c '^file-key ' "$SCRATCH/ff1/.custody/config" 2>/dev/null)"
ctl init "$SCRATCH/ff2" --keyfile "$KEY" --file-format 2; rc=$?
check_eq "custodyctl init --file-format 2 exits 0" 0 "$rc" || printf '#   %s\n' "$(cat "$SCRATCH/ctl.err")"
check_eq "  ... and its config has one 'file-key ' line" 1 "$(grep -c '^file-key ' "$SCRATCH/ff2/.custody/config" 2>/dev/null)"
n=0
for v in 3 0 22 two 1x; do
    n=$((n + 1))
    d=$SCRATCH/ffbad$n
    ctl init "$d" --keyfile "$KEY" --file-format "$v"; rc=$?
    check_ne "custodyctl init --file-format $v fails" 0 "$rc"
    check_eq "  ... with exactly one line on stderr" 1 "$(line_count "$SCRATCH/ctl.err")" \
        || printf '#   stderr: %s\n' "$(head -c 600 "$SCRATCH/ctl.err")"
    check "  ... and makes no vault" test ! -e "$d/.custody/config"
done

# --- files written through the mount --------------------------------------------------------------------
SIZES="1 4095 4096 4097 100000"
SIZE=$((2 * 4096 + 1000))           # the tamper files: 2 full blocks and a partial one
CANARY="CANARY-$(head -c 12 /dev/urandom | xxd -p)-custody"
HEX=$(printf '%s' "$CANARY" | xxd -p | tr -d '\n')
HEXU=$(echo "$HEX" | tr a-f A-F)
B64=$(printf '%s' "$CANARY" | base64 -w0 | cut -c1-32)
TRMAX=$((HDR + OVH))                 # truncations 0..68 (with AES-256-GCM)
TP_NAMES="nonce1 ct1 tag1 last2 swap01 xblk1 xhdr src control foreign-same foreign-other
          cutblk cutlast moved moved2 cipher-other flagbit1"
declare -A SEED
seed=100
for t in $TP_NAMES; do seed=$((seed + 1)); SEED[$t]=$seed; done

write_files='
m, sizes, size, canary, trmax = argv[0], [int(x) for x in argv[1].split()], int(argv[2]), argv[3].encode(), int(argv[4])
tp = [(n, int(s)) for n, s in (x.split(":") for x in argv[5:])]
for d in ("sz", "tp", "hf", "tr", "sub", "canary", "nonce"):
    os.mkdir(os.path.join(m, d))
os.close(os.open(m + "/sz/empty", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
for n in sizes:
    pwrite_pattern(m + "/sz/n%d" % n, 0, n, n)
for name, seed in tp:
    pwrite_pattern(m + "/tp/" + name, 0, size, seed)
for i in range(40):
    pwrite_pattern(m + "/hf/a%02d" % i, 0, 6000, 1000 + i)
    pwrite_pattern(m + "/hf/b%02d" % i, 0, 6000, 2000 + i)
for n in range(trmax + 1):
    pwrite_pattern(m + "/tr/t%03d" % n, 0, 5000, 3000 + n)
# sparse: 100 bytes at 1 MiB in new files (the hole is longer than 64 blocks)
for name in ("sparse", "sparse-cleared"):
    pwrite_pattern(m + "/" + name, 1 << 20, 100, 77)
with open(m + "/canary/tiny", "wb") as f:
    f.write(canary)
fd = os.open(m + "/canary/spread", os.O_RDWR | os.O_CREAT, 0o644)
write_all(fd, pattern(5, 0, 20000), 0)
for off in (0, 100, 4096 - 5, 8192 - len(canary) + 1, 12000, 20000 - len(canary)):
    write_all(fd, canary, off)
os.close(fd)
with open(m + "/canary/many", "wb") as f:
    f.write((canary + b"\n") * 400)
'
tp_args=()
for t in $TP_NAMES; do tp_args+=("$t:${SEED[$t]}"); done
expect_ok "write the test files (sizes, tamper sets, $((80 + TRMAX + 1)) small files, sparse, canary)" \
    "$write_files" "$M" "$SIZES" "$SIZE" "$CANARY" "$TRMAX" "${tp_args[@]}" \
    || bail "cannot write the test files"
expect_ok "the files read back through the mount" '
m, sizes = argv[0], [int(x) for x in argv[1].split()]
assert open(m + "/sz/empty", "rb").read() == b""
for n in sizes:
    verify_pattern(m + "/sz/n%d" % n, 0, n, n)
    assert os.stat(m + "/sz/n%d" % n).st_size == n
assert open(m + "/canary/tiny", "rb").read() == argv[2].encode()
' "$M" "$SIZES" "$CANARY"
expect_ok "a file written at 1 MiB reads zeros in the hole, then the data; stat shows 1 MiB + 100" '
p = argv[0]
assert os.stat(p).st_size == (1 << 20) + 100, os.stat(p).st_size
verify_zeros(p, 0, 1 << 20)
verify_pattern(p, 1 << 20, 100, 77)
' "$M/sparse"

# --- nonces and ciphertext (mounted; the backing file is read after fsync) ---------------------------------
expect_ok "rewriting the same data (3 times) gives new nonces and new ciphertext for every block, same header" '
p, bp, hdr, ovh, nonce = argv[0], argv[1], int(argv[2]), int(argv[3]), int(argv[4])
slot = 4096 + ovh
data = pattern(9, 0, 2 * 4096 + 100)
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
snaps = []
for i in range(4):
    write_all(fd, data, 0)
    os.fsync(fd)
    raw = open(bp, "rb").read()
    assert len(raw) == hdr + len(data) + 3 * ovh, (len(raw), hdr + len(data) + 3 * ovh)
    snaps.append(raw)
os.close(fd)
verify_pattern(p, 0, len(data), 9)
for s in snaps[1:]:
    assert s[:hdr] == snaps[0][:hdr], "the header changed when the data was rewritten"
for b in range(3):
    st = [s[hdr + b * slot: hdr + (b + 1) * slot] for s in snaps]
    nonces = set(x[:nonce] for x in st)
    bodies = set(x[nonce:] for x in st)
    assert len(nonces) == 4, "block %d: a nonce was reused (%d distinct of 4)" % (b, len(nonces))
    assert len(bodies) == 4, "block %d: the same ciphertext was stored again (%d distinct of 4)" % (b, len(bodies))
' "$M/nonce/rewrite" "$B/nonce/rewrite" "$HDR" "$OVH" "$NONCE"
expect_ok "16 identical plaintext blocks give 16 distinct ciphertext blocks and nonces" '
p, bp, hdr, ovh, nonce = argv[0], argv[1], int(argv[2]), int(argv[3]), int(argv[4])
slot = 4096 + ovh
block = os.urandom(4096)
with open(p, "wb") as f:
    f.write(block * 16)
    f.flush()
    os.fsync(f.fileno())
raw = open(bp, "rb").read()
assert len(raw) == hdr + 16 * slot, len(raw)
blocks = [raw[hdr + i * slot: hdr + (i + 1) * slot] for i in range(16)]
assert len(set(b[nonce:] for b in blocks)) == 16, "repeated ciphertext blocks"
assert len(set(b[:nonce] for b in blocks)) == 16, "repeated nonces"
assert block not in raw
' "$M/nonce/repeat" "$B/nonce/repeat" "$HDR" "$OVH" "$NONCE"
expect_ok "two files with identical content: different file IDs, nonces and ciphertext" '
a, b, ba, bb, hdr, ovh, nonce = argv[0], argv[1], argv[2], argv[3], int(argv[4]), int(argv[5]), int(argv[6])
slot = 4096 + ovh
data = os.urandom(3 * 4096 + 10)
for p in (a, b):
    with open(p, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
ra, rb = open(ba, "rb").read(), open(bb, "rb").read()
assert len(ra) == len(rb) == hdr + len(data) + 4 * ovh, (len(ra), len(rb))
assert ra[8:24] != rb[8:24], "the same file ID"
for i in range(4):
    x, y = ra[hdr + i * slot: hdr + (i + 1) * slot], rb[hdr + i * slot: hdr + (i + 1) * slot]
    assert x[nonce:] != y[nonce:], "block %d: same ciphertext in both files" % i
    assert x[:nonce] != y[:nonce], "block %d: same nonce in both files" % i
' "$M/nonce/same1" "$M/nonce/same2" "$B/nonce/same1" "$B/nonce/same2" "$HDR" "$OVH" "$NONCE"
expect_ok "O_TRUNC keeps the 40-byte header (same file ID); the file then reads empty and takes new data" '
p, bp, hdr = argv[0], argv[1], int(argv[2])
pwrite_pattern(p, 0, 10000, 11)
h0 = open(bp, "rb").read()[:hdr]
fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
os.fsync(fd)
os.close(fd)
raw = open(bp, "rb").read()
assert len(raw) == hdr, "backing size after O_TRUNC: %d" % len(raw)
assert raw == h0, "the header changed"
assert open(p, "rb").read() == b""
pwrite_pattern(p, 0, 300, 12)
verify_pattern(p, 0, 300, 12)
' "$M/nonce/otrunc" "$B/nonce/otrunc" "$HDR"

# --- a second and third format-2 vault (same key file / another key), for foreign headers --------------
B2=$SCRATCH/backing2 M2=$SCRATCH/mnt2
B3=$SCRATCH/backing3 M3=$SCRATCH/mnt3
make_vault "$B2" "$KEY" || bail "init of the second vault failed: $(cat "$SCRATCH/init.err")"
make_vault "$B3" "$SCRATCH/key3" || bail "init of the third vault failed: $(cat "$SCRATCH/init.err")"
check_eq "a second and a third default vault are format 2 too" "40 40" "$(header_size_of "$B2") $(header_size_of "$B3")"
for v in "$B2:$M2:$KEY" "$B3:$M3:$SCRATCH/key3"; do
    IFS=: read -r vb vm vk <<< "$v"
    mount_vault "$vb" "$vm" --keyfile "$vk" || bail "mount of $vb failed: $(cat "$SCRATCH/mount.err")"
    "$PY" "$HELPERS_PY" write "$vm/foreign" 0 "$SIZE" 500 || bail "writing $vm/foreign failed"
    unmount_vault "$vm" || bail "unmount of $vm failed"
done

# --- a format-1 vault next to it ---------------------------------------------------------------------------
B1=$SCRATCH/backing-f1 M1=$SCRATCH/mnt-f1
VAULT_FILE_FORMAT=1 make_vault "$B1" "$KEY" || bail "init of the format-1 vault failed: $(cat "$SCRATCH/init.err")"
check_eq "VAULT_FILE_FORMAT=1 make_vault: a config without 'file-key ', header size 128" "0 128" \
    "$(grep -c '^file-key ' "$B1/.custody/config") $(header_size_of "$B1")"
mount_vault "$B1" "$M1" --keyfile "$KEY" || bail "mount of the format-1 vault failed: $(cat "$SCRATCH/mount.err")"
check "the format-1 vault is mounted next to the format-2 one" mountinfo_has "$M"
expect_ok "format-1 vault: write files of $SIZES bytes (and an empty one), read them back" '
m, sizes, size = argv[0], [int(x) for x in argv[1].split()], int(argv[2])
os.mkdir(m + "/sz")
os.close(os.open(m + "/sz/empty", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
for n in sizes:
    pwrite_pattern(m + "/sz/n%d" % n, 0, n, n)
pwrite_pattern(m + "/f1file", 0, size, 600)
for n in sizes:
    verify_pattern(m + "/sz/n%d" % n, 0, n, n)
verify_pattern(m + "/f1file", 0, size, 600)
' "$M1" "$SIZES" "$SIZE"
unmount_vault "$M1" || bail "unmount of the format-1 vault failed"

# --- offline: sizes, headers, no plaintext -------------------------------------------------------------------
unmount_vault "$M" || bail "unmount failed"
for n in 0 $SIZES; do
    name=n$n; [ "$n" -eq 0 ] && name=empty
    blocks=$(((n + 4095) / 4096))
    check_eq "format 2: $n plaintext bytes take 40 + $n + $blocks*$OVH bytes" \
        $((40 + n + blocks * OVH)) "$(stat -c %s "$B/sz/$name" 2>&1)"
    check_eq "format 1: $n plaintext bytes take 128 + $n + $blocks*$OVH bytes" \
        $((128 + n + blocks * OVH)) "$(stat -c %s "$B1/sz/$name" 2>&1)"
done
check_eq "lib.sh's backing_size_for 4097 gives the format-2 and format-1 sizes" \
    "$((40 + 4097 + 2 * OVH)) $((128 + 4097 + 2 * OVH))" "$(backing_size_for 4097 "$B") $(backing_size_for 4097 "$B1")"
check_eq "the sparse file (1 MiB + 100 bytes) takes 40 + N + 257*$OVH bytes" \
    $((40 + 1048676 + 257 * OVH)) "$(stat -c %s "$B/sparse" 2>&1)"
check_eq "a format-1 file starts with the format-1 magic CUSTDYF\\0" "43555354445946000100" \
    "$(head -c 10 "$B1/f1file" | xxd -p)"

expect_ok "every backing file starts with a format-2 header: magic CST2, cipher byte $CIPHER, reserved bytes 0" '
b, cipher = argv[0], int(argv[1])
bad, n = [], 0
for root, dirs, files in os.walk(b):
    if root == b:
        dirs.remove(".custody")
    for name in files:
        p = os.path.join(root, name)
        h = open(p, "rb").read(40)
        n += 1
        if len(h) < 40 or h[:4] != b"CST2" or h[4] != cipher or h[6:8] != bytes(2):
            bad.append("%s: %s" % (p[len(b):], h[:8].hex()))
assert n > 150, "only %d files" % n
assert not bad, "%d of %d files: %s" % (len(bad), n, "; ".join(bad[:10]))
print("# %d files checked" % n, file=sys.stderr)
' "$B" "$CIPHER"
expect_ok "flags byte: 0 in every file without holes, 1 (sparse) in the files written at 1 MiB" '
b = argv[0]
bad, n = [], 0
for root, dirs, files in os.walk(b):
    if root == b:
        dirs.remove(".custody")
    for name in files:
        p = os.path.join(root, name)
        want = 1 if p[len(b):] in ("/sparse", "/sparse-cleared") else 0
        n += 1
        got = open(p, "rb").read(6)[5]
        if got != want:
            bad.append("%s: flags %#x, expected %#x" % (p[len(b):], got, want))
assert not bad, "%d of %d files: %s" % (len(bad), n, "; ".join(bad[:10]))
' "$B"
expect_ok "every file has its own random file ID (bytes 8..23) and header tag (bytes 24..39)" '
b = argv[0]
ids, tags = {}, {}
for root, dirs, files in os.walk(b):
    if root == b:
        dirs.remove(".custody")
    for name in files:
        p = os.path.join(root, name)
        h = open(p, "rb").read(40)
        ids.setdefault(h[8:24], []).append(p[len(b):])
        tags.setdefault(h[24:40], []).append(p[len(b):])
dup = [v for v in ids.values() if len(v) > 1]
assert not dup, "files sharing a file ID: %s" % dup[:5]
dup = [v for v in tags.values() if len(v) > 1]
assert not dup, "files sharing a header tag: %s" % dup[:5]
assert bytes(16) not in ids, "an all-zero file ID"
' "$B"
id1=$(head -c 24 "$B/sz/n1" | tail -c 16 | xxd -p)
id2=$(head -c 24 "$B/sz/n4095" | tail -c 16 | xxd -p)
check_match "sz/n1 has a 16-byte file ID ($id1)" '^[0-9a-f]{32}$' "$id1"
check_ne "  ... different from that of sz/n4095 ($id2)" "$id1" "$id2"

backing_hits() {  # [DIR]: the files under DIR (default $B) holding any canary encoding
    grep -r -l -a -F -e "$CANARY" -e "$HEX" -e "$HEXU" -e "$B64" "${1:-$B}" 2>&1
}
mkdir "$SCRATCH/control"
{ head -c 3000 /dev/urandom; printf '%s' "$CANARY"; head -c 3000 /dev/urandom; } > "$SCRATCH/control/c"
check_eq "control: the search finds the canary in a plain file" "$SCRATCH/control/c" "$(backing_hits "$SCRATCH/control")"
check_eq "no backing file contains the canary, its hex or base64" "" "$(backing_hits)"
expect_ok "no 32-byte piece of any 4 KiB block of the plaintext shows in the backing files" '
b, sizes = argv[0], [int(x) for x in argv[1].split()]
for n in sizes:
    raw = open(b + "/sz/n%d" % n, "rb").read()
    for off in range(0, n, 4096):
        piece = pattern(n, off, min(32, n - off))
        if len(piece) >= 16:
            assert piece not in raw, "n%d: plaintext at %d found in the backing file" % (n, off)
raw = open(b + "/sparse", "rb").read()
assert pattern(77, 1 << 20, 100) not in raw, "sparse: the data shows"
' "$B" "$SIZES"

# --- tamper, offline ----------------------------------------------------------------------------------------------
"$PY" - "$B" "$HDR" "$SLOT" "$NONCE" "$TRMAX" "$B2" "$B3" <<'PYEOF' || bail "tampering failed"
import os, sys
B, HDR, SLOT, NONCE, TRMAX, B2, B3 = sys.argv[1], *map(int, sys.argv[2:6]), sys.argv[6], sys.argv[7]
def rb(p):
    with open(p, "rb") as f:
        return f.read()
def put(p, off, data):
    with open(p, "r+b") as f:
        f.seek(off)
        f.write(data)
def flip(p, off, mask=0x01):
    put(p, off, bytes([rb(p)[off] ^ mask]))
def blk(i):
    return HDR + i * SLOT
tp = B + "/tp/"
for i in range(40):
    flip(B + "/hf/a%02d" % i, i, 0x01)
    flip(B + "/hf/b%02d" % i, i, 0x80)
for n in range(TRMAX + 1):
    os.truncate(B + "/tr/t%03d" % n, n)
flip(tp + "nonce1", blk(1) + 5)
flip(tp + "ct1", blk(1) + NONCE + 1000)
flip(tp + "tag1", blk(2) - 1)                       # the last tag byte of block 1
flip(tp + "last2", blk(2) + NONCE + 500)            # inside the partial last block
raw = rb(tp + "swap01")
put(tp + "swap01", blk(0), raw[blk(1):blk(2)] + raw[blk(0):blk(1)])
src = rb(tp + "src")
put(tp + "xblk1", blk(1), src[blk(1):blk(2)])       # same index, another file
put(tp + "xhdr", 0, src[:HDR])                      # another file's header
put(tp + "foreign-same", 0, rb(B2 + "/foreign")[:HDR])   # vault 2: same key file
put(tp + "foreign-other", 0, rb(B3 + "/foreign")[:HDR])  # vault 3: another key
os.truncate(tp + "cutblk", HDR + 4096)              # block 0 (the only one) cut short
os.truncate(tp + "cutlast", HDR + SLOT + 500)       # block 1 (the last) cut short
c = rb(tp + "cipher-other")[4]
put(tp + "cipher-other", 4, bytes([3 - c]))         # the other cipher: 1 <-> 2
put(tp + "flagbit1", 5, bytes([0x02]))              # an unknown flag
put(B + "/sparse-cleared", 5, bytes([0x00]))        # sparse flag cleared
PYEOF
cp "$B2/foreign" "$B/tp/foreign-whole"
cp "$B1/f1file" "$B/tp/format1-file"
cp "$B/tp/control" "$B1/format2-file"
mv "$B/tp/moved" "$B/sub/moved-elsewhere"
mv "$B/tp/moved2" "$B/tp/moved2-renamed"
mount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"
pass "the vault mounts with the tampered files in it"

# hdr_code MNT BACKING NAMES...: each file fails with EIO for read, read-write, append and write
# opens; its backing bytes stay as they are
hdr_code='
m, b = argv[0], argv[1]
def attempt(fn):
    try:
        r = fn()
        return "OK" if r is None else "OK:%r" % (r[:16] if isinstance(r, bytes) else r,)
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def rd(p):
    with open(p, "rb") as f:
        return f.read()
def op(p, flags, data=None):
    fd = os.open(p, flags)
    try:
        if data is not None:
            return os.write(fd, data)
    finally:
        os.close(fd)
want = {"read": "EIO", "rdwr": "EIO", "append": "EIO", "write": "EIO"}
bad = []
for name in argv[2:]:
    p, bp = m + "/" + name, b + "/" + name
    before = rd(bp)
    got = {"read": attempt(lambda: rd(p)), "rdwr": attempt(lambda: op(p, os.O_RDWR)),
           "append": attempt(lambda: op(p, os.O_WRONLY | os.O_APPEND, b"X")),
           "write": attempt(lambda: op(p, os.O_WRONLY, b"Y"))}
    if got != want:
        bad.append("%s: %s" % (name, {k: v for k, v in got.items() if v != want[k]}))
    after = rd(bp)
    if after != before:
        bad.append("%s: the backing file changed (%d -> %d bytes)" % (name, len(before), len(after)))
assert not bad, "%d problems in %d files: %s" % (len(bad), len(argv) - 2, "; ".join(bad[:10]))
'
names=(); for i in $(seq -w 0 39); do names+=("hf/a$i"); done
expect_ok "each of the 40 header bytes XOR 0x01 (one file each): read / read-write / append / write opens fail with EIO, backing unchanged" \
    "$hdr_code" "$M" "$B" "${names[@]}"
names=(); for i in $(seq -w 0 39); do names+=("hf/b$i"); done
expect_ok "each of the 40 header bytes XOR 0x80 (one file each): read / read-write / append / write opens fail with EIO, backing unchanged" \
    "$hdr_code" "$M" "$B" "${names[@]}"
names=(); for i in $(seq 1 39); do names+=("tr/t$(printf %03d "$i")"); done
expect_ok "backing files truncated to 1..39 bytes (a cut header): every open fails with EIO, backing unchanged" \
    "$hdr_code" "$M" "$B" "${names[@]}"
names=(); for i in $(seq 41 "$TRMAX"); do names+=("tr/t$(printf %03d "$i")"); done
expect_ok "backing files truncated to 41..$TRMAX bytes (a header and a last block without plaintext): every open fails with EIO" \
    "$hdr_code" "$M" "$B" "${names[@]}"
expect_ok "the cipher byte set to the other cipher: EIO" "$hdr_code" "$M" "$B" tp/cipher-other
expect_ok "an unknown flag bit (0x02) set: EIO" "$hdr_code" "$M" "$B" tp/flagbit1
expect_ok "the sparse flag cleared in a sparse file: EIO" "$hdr_code" "$M" "$B" sparse-cleared
expect_ok "a header from another format-2 vault with the same key file: EIO" "$hdr_code" "$M" "$B" tp/foreign-same
expect_ok "a header from another format-2 vault with another key: EIO" "$hdr_code" "$M" "$B" tp/foreign-other
expect_ok "a whole file copied from another format-2 vault: EIO" "$hdr_code" "$M" "$B" tp/foreign-whole
expect_ok "a format-1 file planted in the format-2 vault: EIO" "$hdr_code" "$M" "$B" tp/format1-file
expect_ok "backing files truncated to 0 bytes (no header) and to 40 bytes (a header only) are empty files" '
for n in (0, 40):
    p = "%s/tr/t%03d" % (argv[0], n)
    assert os.stat(p).st_size == 0, (n, os.stat(p).st_size)
    assert open(p, "rb").read() == b"", n
    os.close(os.open(p, os.O_RDWR))
' "$M"

# blk_code PATH SEED SIZE BAD: blocks listed in BAD (comma-separated) fail with EIO, the others
# read right; a whole-file read fails with EIO when BAD is not empty
blk_code='
p, seed, size = argv[0], int(argv[1]), int(argv[2])
badb = [int(x) for x in argv[3].split(",") if x]
res, want = {}, {}
for i in range((size + 4095) // 4096):
    off, n = i * 4096, min(4096, size - i * 4096)
    want[i] = "EIO" if i in badb else "OK"
    try:
        res[i] = "OK" if pread_file(p, off, n) == pattern(seed, off, n) else "WRONG DATA"
    except OSError as e:
        res[i] = errno.errorcode.get(e.errno, str(e.errno))
want["whole"] = "EIO" if badb else "OK"
try:
    got = open(p, "rb").read()
    res["whole"] = "OK" if got == pattern(seed, 0, size) else "WRONG DATA (%d bytes)" % len(got)
except OSError as e:
    res["whole"] = errno.errorcode.get(e.errno, str(e.errno))
assert res == want, "got %s, expected %s" % (res, want)
'
expect_ok "control: an untouched file reads right" "$blk_code" "$M/tp/control" "${SEED[control]}" "$SIZE" ""
expect_ok "src (blocks and header were copied from it): reads right" "$blk_code" "$M/tp/src" "${SEED[src]}" "$SIZE" ""
expect_ok "a flipped byte in block 1's nonce: block 1 EIO, blocks 0 and 2 read right" \
    "$blk_code" "$M/tp/nonce1" "${SEED[nonce1]}" "$SIZE" 1
expect_ok "a flipped byte in block 1's ciphertext: block 1 EIO, blocks 0 and 2 read right" \
    "$blk_code" "$M/tp/ct1" "${SEED[ct1]}" "$SIZE" 1
expect_ok "a flipped byte in block 1's tag: block 1 EIO, blocks 0 and 2 read right" \
    "$blk_code" "$M/tp/tag1" "${SEED[tag1]}" "$SIZE" 1
expect_ok "a flipped byte in the partial last block: block 2 EIO, blocks 0 and 1 read right" \
    "$blk_code" "$M/tp/last2" "${SEED[last2]}" "$SIZE" 2
expect_ok "blocks 0 and 1 swapped: both EIO, block 2 reads right" \
    "$blk_code" "$M/tp/swap01" "${SEED[swap01]}" "$SIZE" 0,1
expect_ok "block 1 copied from another file (same index): block 1 EIO, the others read right" \
    "$blk_code" "$M/tp/xblk1" "${SEED[xblk1]}" "$SIZE" 1
# (another file's header is a valid header of this vault, so -- as in format 1 -- the file still
# opens for read-write; its blocks belong to the other file ID and fail)
expect_ok "another file's header copied over: every block and the whole file read EIO" \
    "$blk_code" "$M/tp/xhdr" "${SEED[xhdr]}" "$SIZE" 0,1,2
expect_ok "a file renamed in the backing directory reads right" \
    "$blk_code" "$M/tp/moved2-renamed" "${SEED[moved2]}" "$SIZE" ""
expect_ok "a file moved to another directory in the backing directory reads right" \
    "$blk_code" "$M/sub/moved-elsewhere" "${SEED[moved]}" "$SIZE" ""
expect_ok "a valid header and a cut block 0: stat shows $((4096 - OVH)) bytes, the read-write open succeeds, block 0 EIO" '
p, bp, n = argv[0], argv[1], int(argv[2])
before = open(bp, "rb").read()
assert os.stat(p).st_size == n, os.stat(p).st_size
os.close(os.open(p, os.O_RDWR))
try:
    pread_file(p, 0, 4096)
except OSError as e:
    if e.errno != errno.EIO:
        raise
else:
    raise Exception("the cut block read without an error")
assert open(bp, "rb").read() == before, "the backing file changed"
' "$M/tp/cutblk" "$B/tp/cutblk" $((4096 - OVH))
expect_ok "a valid header and a cut last block: the read-write open succeeds, block 0 reads right, block 1 EIO" '
p, seed = argv[0], int(argv[1])
os.close(os.open(p, os.O_RDWR))
verify_pattern(p, 0, 4096, seed)
try:
    pread_file(p, 4096, 4096)
except OSError as e:
    if e.errno != errno.EIO:
        raise
else:
    raise Exception("the cut block read without an error")
' "$M/tp/cutlast" "${SEED[cutlast]}"

# the format-1 vault: its own files, and a format-2 file planted in it
mount_vault "$B1" "$M1" --keyfile "$KEY" || bail "remount of the format-1 vault failed: $(cat "$SCRATCH/mount.err")"
expect_ok "format-1 vault after a remount: its files read right" '
m, sizes, size = argv[0], [int(x) for x in argv[1].split()], int(argv[2])
assert open(m + "/sz/empty", "rb").read() == b""
for n in sizes:
    verify_pattern(m + "/sz/n%d" % n, 0, n, n)
verify_pattern(m + "/f1file", 0, size, 600)
' "$M1" "$SIZES" "$SIZE"
expect_ok "a format-2 file planted in the format-1 vault: EIO" "$hdr_code" "$M1" "$B1" format2-file
unmount_vault "$M1" || fail "unmount of the format-1 vault"

# --- after all that: the vault mounts again, untouched files read right ---------------------------------------
unmount_vault "$M" || bail "unmount failed"
mount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"
expect_ok "after another remount: untouched files read right (sizes, empty, sparse, nonce tests, moved)" '
m, sizes, size = argv[0], [int(x) for x in argv[1].split()], int(argv[2])
seeds = dict(x.split(":") for x in argv[3:])
assert open(m + "/sz/empty", "rb").read() == b""
for n in sizes:
    verify_pattern(m + "/sz/n%d" % n, 0, n, n)
verify_zeros(m + "/sparse", 0, 1 << 20)
verify_pattern(m + "/sparse", 1 << 20, 100, 77)
verify_pattern(m + "/nonce/rewrite", 0, 2 * 4096 + 100, 9)
verify_pattern(m + "/nonce/otrunc", 0, 300, 12)
for name in ("control", "src"):
    verify_pattern(m + "/tp/" + name, 0, size, int(seeds[name]))
verify_pattern(m + "/sub/moved-elsewhere", 0, size, int(seeds["moved"]))
verify_pattern(m + "/tp/moved2-renamed", 0, size, int(seeds["moved2"]))
' "$M" "$SIZES" "$SIZE" "${tp_args[@]}"
expect_errno EIO "after another remount: a tampered header still fails with EIO" \
    'open(argv[0], "rb").read()' "$M/hf/a10"
expect_ok "after another remount: a new file still gets a 40-byte header and reads back" '
fd = os.open(argv[0], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
write_all(fd, pattern(42, 0, 5000), 0)
os.fsync(fd)
os.close(fd)
verify_pattern(argv[0], 0, 5000, 42)
with open(argv[1], "rb") as f:
    raw = f.read()
assert raw[:4] == b"CST2" and len(raw) == 40 + 5000 + 2 * int(argv[2]), (raw[:4], len(raw))
' "$M/new-after" "$B/new-after" "$OVH"
unmount_vault "$M" || fail "unmount at the end"

printf '# run time: %d s\n' $(($(date +%s) - T_START))
done_testing
