#!/bin/bash
# Archive and copy tools on the mount, each also run on plain disk and the
# resulting trees compared (content, type, mode, owner, mtime in ns, symlink
# targets, hard-link groups, user.* xattrs, POSIX ACLs):
#   - tar (GNU, pax format, --xattrs --acls): extract into the mount, create an
#     archive from the mount (tar --compare against the source), mount to mount
#     through a pipe, a .tar.gz written to and read from the mount;
#   - rsync -aHXA into and out of the mount; a second run transfers nothing
#     (--itemize-changes / --stats, also with --checksum); delta updates (temp
#     file + rename, and --inplace); --delete;
#   - tar and rsync again as an ordinary user (uid 65534);
#   - cp --sparse=always of a file with a 100 MiB hole, into and out of the mount.
# The tree source and manifests come from tools/t1220_tree.py.
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools tar rsync cp setfacl getfacl gzip cmp setpriv
setup_vault

TREE=$LIB_DIR/tools/t1220_tree.py
P=$SCRATCH/plain
SRC=$SCRATCH/src
OUT=$SCRATCH/out
mkdir -p "$P" "$OUT"
"$PY" "$TREE" mksrc "$SRC" || bail "could not build the source tree"

now() { date +%s.%N; }
secs_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
manifest() { "$PY" "$TREE" manifest "$@" 2>&1; }

# same_tree DESC REFDIR DIR [MANIFEST OPTIONS...]
same_tree() {
    local desc=$1 ref=$2 dir=$3; shift 3
    manifest "$ref" "$@" > "$OUT/ref.man"
    manifest "$dir" "$@" > "$OUT/got.man"
    local d
    d=$(diff -U0 "$OUT/ref.man" "$OUT/got.man" | grep -v '^@@')
    if [ -z "$d" ]; then
        pass "$desc"
    else
        fail "$desc" "manifest diff (- $ref, + $dir):" "$(printf '%s\n' "$d" | sed -n '3,$p' | head -40)"
    fi
}

# run_tool DESC DIR CMD...: CMD must exit 0; output in $OUT/last.out.
run_tool() {
    local desc=$1; shift
    local t0 rc
    t0=$(now)
    timeout -k 5 "$PY_TIMEOUT" "$@" > "$OUT/last.out" 2>&1
    rc=$?
    _lib_log "timing: $(secs_since "$t0")s for: ${*:1:12}"
    if [ "$rc" -eq 0 ]; then
        pass "$desc"
        return 0
    fi
    fail "$desc" "command: $*" "exit status: $rc" "$(head -c 2000 "$OUT/last.out")"
    return 1
}

TAR_C=(tar --format=posix --xattrs --xattrs-include='*' --acls --sort=name)
TAR_X=(tar --xattrs --xattrs-include='*' --acls --same-permissions --same-owner)

# =========================================================================== tar
run_tool "tar: create an archive of the source tree (plain disk)" \
    "${TAR_C[@]}" -C "$SRC" -cf "$SCRATCH/src.tar" .
mkdir -p "$P/tar-x" "$M/tar-x"
run_tool "tar: extract into plain disk (reference)" "${TAR_X[@]}" -C "$P/tar-x" -xf "$SCRATCH/src.tar"
run_tool "tar: extract into the mount" "${TAR_X[@]}" -C "$M/tar-x" -xf "$SCRATCH/src.tar"
same_tree "tar: tree extracted into the mount equals the one extracted on plain disk" "$P/tar-x" "$M/tar-x"
same_tree "tar: tree extracted into the mount equals the source (content, modes, owners, ns mtimes, links, xattrs, ACLs)" \
    "$SRC" "$M/tar-x"

run_tool "tar: create an archive from the mount" "${TAR_C[@]}" -C "$M/tar-x" -cf "$SCRATCH/from-m.tar" .
run_tool "tar: create an archive from plain disk (reference)" "${TAR_C[@]}" -C "$P/tar-x" -cf "$SCRATCH/from-p.tar" .
check_eq "tar: listing (tar -tv --full-time) of the archive made from the mount equals the one from plain disk" \
    "$(tar --full-time -tvf "$SCRATCH/from-p.tar" 2>&1)" "$(tar --full-time -tvf "$SCRATCH/from-m.tar" 2>&1)"
run_tool "tar: tar --compare of the archive made from the mount against the source finds no difference" \
    "${TAR_X[@]}" -C "$SRC" --compare -f "$SCRATCH/from-m.tar"
mkdir -p "$SCRATCH/from-m-x"
run_tool "tar: the archive made from the mount extracts on plain disk" "${TAR_X[@]}" -C "$SCRATCH/from-m-x" -xf "$SCRATCH/from-m.tar"
same_tree "tar: what the archive made from the mount extracts to equals the source" "$SRC" "$SCRATCH/from-m-x"

# mount to mount through a pipe (reading and writing the mount at the same time)
mkdir -p "$M/tar-y" "$P/tar-y"
run_tool "tar: pipe from the mount into the mount (tar c | tar x)" bash -c \
    'set -o pipefail; "$@"' _ sh -c "$(printf '%q ' "${TAR_C[@]}") -C '$M/tar-x' -cf - . | $(printf '%q ' "${TAR_X[@]}") -C '$M/tar-y' -xf -"
run_tool "tar: pipe on plain disk (reference)" bash -c \
    'set -o pipefail; "$@"' _ sh -c "$(printf '%q ' "${TAR_C[@]}") -C '$P/tar-x' -cf - . | $(printf '%q ' "${TAR_X[@]}") -C '$P/tar-y' -xf -"
same_tree "tar: mount-to-mount copy equals the plain-disk copy" "$P/tar-y" "$M/tar-y"

# a compressed archive written to, listed from and extracted from the mount
run_tool "tar: create a .tar.gz on the mount" "${TAR_C[@]}" -C "$SRC" -czf "$M/src.tar.gz" .
run_tool "tar: gzip -t of the .tar.gz on the mount" gzip -t "$M/src.tar.gz"
check_eq "tar: the .tar.gz on the mount lists the same members as the plain-disk archive" \
    "$(tar -tf "$SCRATCH/src.tar" 2>&1)" "$(tar -tzf "$M/src.tar.gz" 2>&1)"
mkdir -p "$M/tar-z"
run_tool "tar: extract the .tar.gz from the mount into the mount" "${TAR_X[@]}" -C "$M/tar-z" -xzf "$M/src.tar.gz"
same_tree "tar: the tree from the .tar.gz on the mount equals the source" "$SRC" "$M/tar-z"

# =========================================================================== rsync
RS=(rsync -aHXA)
# itemized NAME: the itemized-change lines (those that start with a change
# code) of $OUT/last.out, and the count of transferred regular files.
itemized() { grep -E '^[<>ch.*][fdLDS]' "$OUT/last.out" | grep -v '^\.d\.\.\.\.\.\.\.\.\. \./$' ; }
transferred() { sed -n 's/^Number of regular files transferred: *//p' "$OUT/last.out" | tr -d ,; }

run_tool "rsync -aHXA from plain disk into plain disk (reference)" "${RS[@]}" "$SRC/" "$P/rs/"
run_tool "rsync -aHXA from plain disk into the mount" "${RS[@]}" "$SRC/" "$M/rs/"
same_tree "rsync: tree in the mount equals the tree rsync made on plain disk" "$P/rs" "$M/rs"
same_tree "rsync: tree in the mount equals the source (content, modes, owners, ns mtimes, links, hard links, xattrs, ACLs)" \
    "$SRC" "$M/rs"

run_tool "rsync: second run into the mount succeeds" "${RS[@]}" --itemize-changes --stats "$SRC/" "$M/rs/"
check_eq "rsync: second run into the mount transfers nothing (--itemize-changes / --stats)" \
    "items=[] files=0" "items=[$(itemized | head -20)] files=$(transferred)"
run_tool "rsync: second run with --checksum succeeds" "${RS[@]}" -c --itemize-changes --stats "$SRC/" "$M/rs/"
check_eq "rsync: second run with --checksum transfers nothing (content on the mount matches)" \
    "items=[] files=0" "items=[$(itemized | head -20)] files=$(transferred)"

run_tool "rsync -aHXA out of the mount onto plain disk" "${RS[@]}" "$M/rs/" "$SCRATCH/rs-out/"
same_tree "rsync: tree copied out of the mount equals the source" "$SRC" "$SCRATCH/rs-out"
run_tool "rsync: second run out of the mount succeeds" "${RS[@]}" --itemize-changes --stats "$M/rs/" "$SCRATCH/rs-out/"
check_eq "rsync: second run out of the mount transfers nothing" \
    "items=[] files=0" "items=[$(itemized | head -20)] files=$(transferred)"
run_tool "rsync: mount to mount" "${RS[@]}" "$M/rs/" "$M/rs2/"
same_tree "rsync: mount-to-mount copy equals the source" "$SRC" "$M/rs2"

# delta updates: change 16 bytes in the middle of a 1 MiB file
big=data/train/part-0000.bin
"$PY" - "$SRC/$big" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, b"CHANGED-IN-PLACE", 500000)
os.close(fd)
os.utime(sys.argv[1], ns=(1_700_000_000_111_111_111, 1_700_000_000_111_111_111))
EOF
run_tool "rsync: delta update on plain disk (reference)" "${RS[@]}" --no-whole-file "$SRC/" "$P/rs/"
run_tool "rsync: delta update into the mount (--no-whole-file: basis read from the mount, temp file + rename)" \
    "${RS[@]}" --no-whole-file --itemize-changes --stats "$SRC/" "$M/rs/"
check_eq "rsync: the delta update itemizes only the changed file" \
    ">f..t...... $big files=1" "$(itemized | tr '\n' ' ')files=$(transferred)"
_lib_log "rsync delta: $(grep -E '^(Matched|Literal) data' "$OUT/last.out" | tr '\n' ' ')"
same_tree "rsync: after the delta update the mount equals plain disk" "$P/rs" "$M/rs"
same_tree "rsync: after the delta update the mount equals the source" "$SRC" "$M/rs"
"$PY" - "$SRC/$big" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, b"SECOND-CHANGE", 4090)           # straddles a 4 KiB block boundary
os.pwrite(fd, b"END", os.fstat(fd).st_size)      # and grows the file
os.close(fd)
os.utime(sys.argv[1], ns=(1_700_000_100_222_222_222, 1_700_000_100_222_222_222))
EOF
run_tool "rsync --inplace delta update on plain disk (reference)" "${RS[@]}" --inplace --no-whole-file "$SRC/" "$P/rs/"
run_tool "rsync --inplace delta update into the mount (rewrites blocks of the existing file)" \
    "${RS[@]}" --inplace --no-whole-file --itemize-changes --stats "$SRC/" "$M/rs/"
check_eq "rsync --inplace: itemizes only the changed file" \
    ">f.st...... $big files=1" "$(itemized | tr '\n' ' ')files=$(transferred)"
same_tree "rsync --inplace: the mount equals plain disk" "$P/rs" "$M/rs"
same_tree "rsync --inplace: the mount equals the source" "$SRC" "$M/rs"
rm -f "$SRC/many/f007.csv" "$SRC/names/-dash"
# old directory times: rsync compares times to the second, so a directory
# time that differs only in its nanoseconds would never be corrected
touch -h -d '@1650000001.123456789' "$SRC/many" "$SRC/names"
run_tool "rsync --delete on plain disk (reference)" "${RS[@]}" --delete "$SRC/" "$P/rs/"
run_tool "rsync --delete into the mount" "${RS[@]}" --delete --itemize-changes "$SRC/" "$M/rs/"
check_eq "rsync --delete: itemizes the two deletions" "*deleting   many/f007.csv *deleting   names/-dash " \
    "$(grep '^\*deleting' "$OUT/last.out" | LC_ALL=C sort | tr '\n' ' ')"
same_tree "rsync --delete: the mount equals plain disk" "$P/rs" "$M/rs"
same_tree "rsync --delete: the mount equals the source" "$SRC" "$M/rs"
run_tool "rsync: one more run after --delete" "${RS[@]}" --itemize-changes --stats "$SRC/" "$M/rs/"
check_eq "rsync: the run after --delete transfers nothing" \
    "items=[] files=0" "items=[$(itemized | head -20)] files=$(transferred)"

# =========================================================================== as an ordinary user
# uid 65534 extracts and copies into directories it owns: custodyfs checks
# every access itself (read-only files created and written, modes, ACLs and
# xattrs set by the owner, hard links, renames of rsync's temp files).
USER_UID=65534
USER_GID=65534
AS_USER=(setpriv --reuid="$USER_UID" --regid="$USER_GID" --clear-groups)
check "chmod 0755 of the mount root (to let other users in, as the README says)" chmod 0755 "$M"
chmod 0644 "$SCRATCH/src.tar"
for d in "$M" "$P"; do
    mkdir -p "$d/user/tar" "$d/user/rs" "$d/user/tar2"
    chown -R "$USER_UID:$USER_GID" "$d/user"
done
# (a user's tar keeps no foreign owners: --no-same-owner is its default.  No
# --xattrs/--acls: with them GNU tar 1.34 run by a user first mknod()s a
# read-only (0444) file to set its attributes, then cannot open it for the
# content: "Cannot open: Permission denied", on plain disk too.)
UTAR_X=(tar --same-permissions)
run_tool "as uid $USER_UID: tar extract on plain disk (reference)" "${AS_USER[@]}" "${UTAR_X[@]}" -C "$P/user/tar" -xf "$SCRATCH/src.tar"
run_tool "as uid $USER_UID: tar extract into the mount" "${AS_USER[@]}" "${UTAR_X[@]}" -C "$M/user/tar" -xf "$SCRATCH/src.tar"
same_tree "as uid $USER_UID: tar: the tree on the mount equals plain disk's" "$P/user/tar" "$M/user/tar"
run_tool "as uid $USER_UID: rsync -aHXA out of the user's tree into the mount" \
    "${AS_USER[@]}" "${RS[@]}" "$P/user/tar/" "$M/user/rs/"
same_tree "as uid $USER_UID: rsync: the tree on the mount equals its source" "$P/user/tar" "$M/user/rs"
run_tool "as uid $USER_UID: second rsync run succeeds" "${AS_USER[@]}" "${RS[@]}" --itemize-changes --stats "$P/user/tar/" "$M/user/rs/"
check_eq "as uid $USER_UID: second rsync run transfers nothing" \
    "items=[] files=0" "items=[$(itemized | head -20)] files=$(transferred)"
run_tool "as uid $USER_UID: tar from the mount into the mount through a pipe" "${AS_USER[@]}" bash -c \
    'set -o pipefail; tar --format=posix -C "$1" -cf - . | tar --same-permissions -C "$2" -xf -' _ "$M/user/rs" "$M/user/tar2"
same_tree "as uid $USER_UID: mount-to-mount tar copy equals its source (ACLs and xattrs aside)" \
    "$M/user/rs" "$M/user/tar2" --no-acl --no-xattr

# =========================================================================== cp --sparse
HOLE=$((100 * 1024 * 1024))
SP=$SCRATCH/sparse.src
"$PY" - "$SP" "$HOLE" <<'EOF'
import os, sys
p, hole = sys.argv[1], int(sys.argv[2])
fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.pwrite(fd, bytes(range(256)) * 32, 0)                    # 8 KiB of data
os.pwrite(fd, b"tail-data-" * 7000, 8192 + hole)           # 70,000 bytes after the hole
os.close(fd)
EOF
apparent=$(stat -c %s "$SP")
run_tool "cp --sparse=always of a file with a 100 MiB hole into the mount" cp --sparse=always "$SP" "$M/sparse"
check "cp --sparse: content through the mount equals the source" cmp "$SP" "$M/sparse"
check_eq "cp --sparse: apparent size on the mount" "$apparent" "$(stat -c %s "$M/sparse" 2>&1)"
_lib_log "cp --sparse: apparent size $apparent bytes;" \
    "allocated: source $(( $(stat -c %b "$SP") * 512 )) bytes, on the mount $(( $(stat -c %b "$M/sparse") * 512 )) bytes (st_blocks), backing file $(( $(stat -c %b "$B/sparse" 2>/dev/null || echo 0) * 512 )) bytes"
"$PY" - "$M/sparse" <<'EOF' | sed -e 's/^/# cp --sparse: /'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    print("SEEK_DATA(0)=%d SEEK_HOLE(0)=%d on the mount" % (os.lseek(fd, 0, os.SEEK_DATA), os.lseek(fd, 0, os.SEEK_HOLE)))
except OSError as e:
    print("SEEK_DATA/SEEK_HOLE on the mount: %s" % e)
EOF
run_tool "cp --sparse=always out of the mount onto plain disk" cp --sparse=always "$M/sparse" "$SCRATCH/sparse.back"
check "cp --sparse: content copied out of the mount equals the source" cmp "$SP" "$SCRATCH/sparse.back"
alloc=$(( $(stat -c %b "$SCRATCH/sparse.back") * 512 ))
if [ "$alloc" -lt $((4 * 1024 * 1024)) ]; then
    pass "cp --sparse: the copy out of the mount is sparse again ($alloc bytes allocated)"
else
    fail "cp --sparse: the copy out of the mount is sparse again" "allocated $alloc bytes for $apparent apparent"
fi

# --- everything still reads the same after a remount ---------------------------------------
if remount_vault "$B" "$M" --keyfile "$KEY"; then
    pass "remount"
else
    bail "remount failed: $(cat "$SCRATCH/mount.err")"
fi
same_tree "after a remount: the tar-extracted tree equals plain disk's" "$P/tar-x" "$M/tar-x"
same_tree "after a remount: the rsync'ed tree equals the source" "$SRC" "$M/rs"
check "after a remount: the sparse file equals the source" cmp "$SP" "$M/sparse"

unmount_vault "$M" || fail "unmount at the end" "$(fusermount3 -u "$M" 2>&1)"
check "audit log verifies after the archive workload (custodyctl verify)" \
    timeout "$CMD_TIMEOUT" "$CUSTODYCTL" verify "$B"

done_testing
