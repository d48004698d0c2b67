#!/bin/bash
# Tamper detection: with the vault unmounted, backing files are modified
# (a flipped header byte, a flipped byte in a block's nonce / ciphertext /
# tag, two blocks swapped, a block copied from another file, another file's
# header copied over, the last partial block flipped); after remounting,
# reads of the affected range fail with EIO -- never wrong data -- while the
# untouched blocks still read correctly.
. "$(dirname "$0")/lib.sh"
standard_prereqs
# This script checks the format-1 layout (128-byte headers) byte by byte, so its
# vaults are format 1; t0610-crypto-format2.sh covers format 2 (the default).
VAULT_FILE_FORMAT=1
setup_vault

BS=4096
SLOT=$((BS + 28))
HDR=128
SIZE=$((5 * BS + 1000))        # 5 full blocks + a partial one: 6 blocks
NBLK=6

names="hdr0 hdr40 hdr127 nonce2 ct2 tag2 lastblk swap13 xblk2 xhdr src control"
seed=0
declare -A SEED
for n in $names; do
    seed=$((seed + 1))
    SEED[$n]=$seed
    "$PY" "$HELPERS_PY" write "$M/$n" 0 "$SIZE" "$seed" || bail "writing $n failed"
done
# one small file per header byte and per sampled block byte, for exhaustive flips
BLOCK_POS="0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 100 2000 4000 4106 4107 4108 4109 4110 4111 4112 4113 4114 4115 4116 4117 4118 4119 4120 4121 4122 4123"
LIB_DIR=$LIB_DIR "$PY" - "$M" $BLOCK_POS <<'PYEOF' || bail "writing the flip files failed"
import os, sys
sys.path.insert(0, os.environ["LIB_DIR"])
from helpers import pwrite_pattern
m = sys.argv[1]
os.mkdir(m + "/hflip")
os.mkdir(m + "/bflip")
for i in range(128):
    pwrite_pattern("%s/hflip/h%03d" % (m, i), 0, 6000, 1000 + i)
for pos in sys.argv[2:]:
    pwrite_pattern("%s/bflip/b%04d" % (m, int(pos)), 0, 6000, 2000 + int(pos))
PYEOF
unmount_vault "$M" || bail "unmount failed"
for n in $names; do
    [ "$(stat -c %s "$B/$n")" -eq "$(backing_size_for $SIZE)" ] || bail "unexpected backing size for $n"
done

# --- tamper, offline ------------------------------------------------------------------------
"$PY" - "$B" "$HDR" "$SLOT" <<'PYEOF' || bail "tampering failed"
import sys
B, HDR, SLOT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def flip(name, off):
    with open("%s/%s" % (B, name), "r+b") as f:
        f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x01]))
def blk(name, i):
    return HDR + i * SLOT
flip("hdr0", 0)
flip("hdr40", 40)
flip("hdr127", 127)
flip("nonce2", blk("nonce2", 2) + 5)
flip("ct2", blk("ct2", 2) + 12 + 1000)
flip("tag2", blk("tag2", 2) + SLOT - 1)
flip("lastblk", blk("lastblk", 5) + 12 + 500)        # the partial last block
with open(B + "/swap13", "r+b") as f:
    f.seek(blk("", 1)); b1 = f.read(SLOT)
    f.seek(blk("", 3)); b3 = f.read(SLOT)
    f.seek(blk("", 1)); f.write(b3)
    f.seek(blk("", 3)); f.write(b1)
with open(B + "/src", "rb") as f:
    src = f.read()
with open(B + "/xblk2", "r+b") as f:
    f.seek(blk("", 2)); f.write(src[blk("", 2):blk("", 2) + SLOT])
with open(B + "/xhdr", "r+b") as f:
    f.seek(0); f.write(src[:HDR])
PYEOF
"$PY" - "$B" $BLOCK_POS <<'PYEOF' || bail "tampering the flip files failed"
import sys
B = sys.argv[1]
def flip(path, off):
    with open(path, "r+b") as f:
        f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x80]))
for i in range(128):
    flip("%s/hflip/h%03d" % (B, i), i)
for pos in sys.argv[2:]:
    flip("%s/bflip/b%04d" % (B, int(pos)), 128 + int(pos))
PYEOF
mount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"

# block_errno FILE I: errno (or OK/MISMATCH) of reading block I alone
read_code='
p, i, seed, size = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
off = i * 4096
n = min(4096, size - off)
fd = os.open(p, os.O_RDONLY)
try:
    got = read_all(fd, n, off)
finally:
    os.close(fd)
if got != pattern(seed, off, n):
    raise Exception("WRONG DATA returned for block %d" % i)
'
whole_code='
p, seed, size = argv[0], int(argv[1]), int(argv[2])
with open(p, "rb") as f:
    got = f.read()
if got != pattern(seed, 0, size):
    raise Exception("WRONG DATA returned for the whole file (%d bytes)" % len(got))
'
# expect_blocks NAME BADLIST: blocks in BADLIST give EIO, the others read right
expect_blocks() {
    local name=$1 bad=" $2 " i want
    for i in $(seq 0 $((NBLK - 1))); do
        if [[ "$bad" == *" $i "* ]]; then
            expect_errno EIO "$name: reading tampered block $i fails with EIO" "$read_code" "$M/$name" "$i" "${SEED[$name]}" "$SIZE"
        else
            expect_errno OK "$name: untouched block $i still reads correctly" "$read_code" "$M/$name" "$i" "${SEED[$name]}" "$SIZE"
        fi
    done
    expect_errno EIO "$name: reading the whole file fails with EIO" "$whole_code" "$M/$name" "${SEED[$name]}" "$SIZE"
}

expect_errno OK "control: an untouched file reads back correctly" "$whole_code" "$M/control" "${SEED[control]}" "$SIZE"
expect_errno OK "src: the file blocks/header were copied from is untouched" "$whole_code" "$M/src" "${SEED[src]}" "$SIZE"

for n in hdr0 hdr40 hdr127; do
    for i in 0 2 5; do
        expect_errno EIO "$n (one header byte flipped): reading block $i fails with EIO" \
            "$read_code" "$M/$n" "$i" "${SEED[$n]}" "$SIZE"
    done
    expect_errno EIO "$n: reading the whole file fails with EIO" "$whole_code" "$M/$n" "${SEED[$n]}" "$SIZE"
done
expect_blocks nonce2 "2"
expect_blocks ct2 "2"
expect_blocks tag2 "2"
expect_blocks lastblk "5"
expect_blocks swap13 "1 3"
expect_blocks xblk2 "2"
for i in 0 3 5; do
    expect_errno EIO "xhdr (another file's header copied over): reading block $i fails with EIO" \
        "$read_code" "$M/xhdr" "$i" "${SEED[xhdr]}" "$SIZE"
done
expect_errno EIO "xhdr: reading the whole file fails with EIO" "$whole_code" "$M/xhdr" "${SEED[xhdr]}" "$SIZE"

expect_ok "each of the 128 header bytes, flipped (one file each), makes reads fail with EIO" '
bad = []
for i in range(128):
    p = "%s/hflip/h%03d" % (argv[0], i)
    for off in (0, 4096):
        try:
            got = pread_file(p, off, 100)
            bad.append("byte %d: read at %d returned %s data" % (i, off, "the right" if got == pattern(1000 + i, off, 100) else "WRONG"))
        except OSError as e:
            if e.errno != errno.EIO:
                bad.append("byte %d: read at %d failed with %s" % (i, off, errno.errorcode.get(e.errno)))
assert not bad, "%d problems: %s" % (len(bad), "; ".join(bad[:12]))
' "$M"
expect_ok "a flipped byte anywhere in block 0 (nonce, ciphertext, tag: $(echo $BLOCK_POS | wc -w) positions) gives EIO for it, block 1 intact" '
bad = []
for pos in argv[1:]:
    pos = int(pos)
    p = "%s/bflip/b%04d" % (argv[0], pos)
    try:
        got = pread_file(p, 0, 4096)
        bad.append("byte %d: block 0 returned %s data" % (pos, "the right" if got == pattern(2000 + pos, 0, 4096) else "WRONG"))
    except OSError as e:
        if e.errno != errno.EIO:
            bad.append("byte %d: block 0 failed with %s" % (pos, errno.errorcode.get(e.errno)))
    try:
        if pread_file(p, 4096, 6000 - 4096) != pattern(2000 + pos, 4096, 6000 - 4096):
            bad.append("byte %d: block 1 WRONG data" % pos)
    except OSError as e:
        bad.append("byte %d: block 1 failed with %s" % (pos, errno.errorcode.get(e.errno)))
assert not bad, "%d problems: %s" % (len(bad), "; ".join(bad[:12]))
' "$M" $BLOCK_POS

expect_errno EIO "a read spanning a good and a tampered block fails with EIO" '
fd = os.open(argv[0], os.O_RDONLY)
read_all(fd, 3 * 4096, 4096)
' "$M/ct2"
cat "$M/ct2" > /dev/null 2> "$SCRATCH/cat.err"; rc=$?
check_ne "cat of a tampered file exits non-zero" 0 "$rc"
check "  ... reporting an Input/output error" grep -q "Input/output error" "$SCRATCH/cat.err"
expect_errno "SIGBUS|EIO" "mmap of a tampered block: access faults instead of returning data" '
import mmap, signal, subprocess
code = "import mmap,os,sys\nf=open(sys.argv[1],\"rb\")\nm=mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ)\nsys.stdout.write(m[2*4096:2*4096+16].hex())\n"
r = subprocess.run([sys.executable, "-c", code, argv[0]], capture_output=True)
if r.returncode == -signal.SIGBUS:
    print("SIGBUS"); sys.exit(0)
if r.returncode != 0 and b"Input/output error" in r.stderr:
    raise OSError(errno.EIO, "mmap/open failed with EIO")
raise Exception("mapped read returned %r (rc %d)" % (r.stdout, r.returncode))
' "$M/tag2"

done_testing
