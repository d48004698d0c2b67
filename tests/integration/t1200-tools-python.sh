#!/bin/bash
# Data-science tools used unchanged on the mount, each run the same way on a
# custodyfs mount and on plain disk (a directory in the scratch dir), the
# results compared (file bytes, checksums, parsed values):
#   - numpy: np.save/np.load of small and 50 MiB arrays, np.load(mmap_mode='r')
#     random slices, np.memmap random reads, mmap_mode='r+' and np.memmap 'r+'
#     writes (flushed, and one mapping dropped without flush), re-read in a new
#     process and after a remount;
#   - pandas: to_csv/read_csv of 100k rows (chunked, skiprows, append, gzip),
#     to_pickle/read_pickle; to_parquet is skipped (no pyarrow/fastparquet);
#   - Pillow: PNG (pixels exact), JPEG, multi-page TIFF, thumbnail;
#   - h5py: chunked/compressed datasets, random hyperslab reads, r+ edits,
#     re-read after a remount; SWMR (one process appends, another follows);
#   - 4 worker processes filling one output (interleaved pwrite of 1000-byte
#     records, O_APPEND lines to a shared log, rows of a shared np.memmap), and
#     a checkpoint replaced 150 times (temp, fsync, os.replace) while 2 processes
#     keep loading it (every load must succeed: rename(2) is atomic);
#   - a PyTorch-style loader (stdlib multiprocessing.Pool) over 2,000 files of
#     ~100 KiB, 2 shuffled epochs with read() and 1 with np.load(mmap_mode='r'),
#     every sample's sha256 checked; samples/s is printed (informative only).
# numpy, h5py and the parallel writers are run again as an ordinary user
# (uid 65534), since custodyfs checks every access itself.
# The helpers are tools/t1200_datasci.py and tools/t1200_loader.py.
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools setpriv diff
"$PY" -c 'import pandas, PIL, h5py' 2>/dev/null \
    || bail "$PY lacks pandas, PIL or h5py (python3-pandas python3-pil python3-h5py)"
setup_vault

DS=$LIB_DIR/tools/t1200_datasci.py
LOADER=$LIB_DIR/tools/t1200_loader.py
P=$SCRATCH/plain
OUT=$SCRATCH/out
mkdir -p "$P" "$OUT"
for d in numpy pandas pillow h5py loader parallel; do
    mkdir -p "$M/$d" "$P/$d"
done

# RUNAS: the command prefix for the helpers (empty: root)
RUNAS=()
USER_UID=65534
USER_GID=65534
AS_USER=(setpriv --reuid="$USER_UID" --regid="$USER_GID" --clear-groups)

now() { date +%s.%N; }
secs_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# tool WHERE NAME CMD SUBDIR [PHASE]: run the data-science helper on
# $WHERE/SUBDIR; stdout to $OUT/NAME.{m,p}.json, stderr to .err; returns its status.
tool() {
    local where=$1 name=$2 cmd=$3 sub=$4; shift 4
    local tag=m; [ "$where" = "$P" ] && tag=p
    timeout -k 5 "$PY_TIMEOUT" "${RUNAS[@]}" "$PY" "$DS" "$cmd" "$where/$sub" "$@" \
        > "$OUT/$name.$tag.json" 2> "$OUT/$name.$tag.err"
}

# err_summary FILE: the exception line of a Python traceback (else the tail)
err_summary() {
    local last
    last=$(grep -E '^[A-Za-z_.]*(Error|Exception|Exit)\b' "$1" | tail -1)
    if [ -n "$last" ]; then
        grep -E '^  File ' "$1" | tail -2 | head -1
        printf '%s\n' "${last:0:2500}"
    else
        tail -6 "$1"
    fi
}

# both NAME CMD SUBDIR [PHASE]: run on the mount and on plain disk; the mount
# run must succeed (its own checks against the expected values), and print
# the same digest as the plain run.
both() {
    local name=$1 cmd=$2 sub=$3; shift 3
    local t0 tm tp rcm rcp
    t0=$(now); tool "$P" "$name" "$cmd" "$sub" "$@"; rcp=$?; tp=$(secs_since "$t0")
    t0=$(now); tool "$M" "$name" "$cmd" "$sub" "$@"; rcm=$?; tm=$(secs_since "$t0")
    _lib_log "timing $name: mount ${tm}s, plain disk ${tp}s"
    grep -h '^INFO ' "$OUT/$name.p.err" 2>/dev/null | sed -e "s/^INFO /# $name (plain disk): /"
    grep -h '^INFO ' "$OUT/$name.m.err" 2>/dev/null | sed -e "s/^INFO /# $name (mount): /"
    if [ "$rcp" -ne 0 ]; then
        fail "$name: runs on plain disk (reference)" "exit status $rcp" "$(err_summary "$OUT/$name.p.err")"
        return 1
    fi
    if [ "$rcm" -ne 0 ]; then
        fail "$name: runs on the mount and reads back what was written" \
            "command: ${RUNAS[*]} $PY $DS $cmd $M/$sub $*" "exit status $rcm" "$(err_summary "$OUT/$name.m.err")"
        return 1
    fi
    pass "$name: runs on the mount and reads back what was written"
    check_eq "$name: same results on the mount as on plain disk" \
        "$(cat "$OUT/$name.p.json")" "$(cat "$OUT/$name.m.json")"
}

# same_files DESC SUBDIR: every file under $M/SUBDIR has the same bytes as
# under $P/SUBDIR, and the same set of names.  Left out, and compared by value
# instead: swmr.h5 (written with libver='latest', its root group holds times
# in seconds, so two runs in different seconds differ) and metrics.log (the
# order in which parallel workers' lines interleave is not deterministic).
same_files() {
    local out
    out=$(diff -r --no-dereference -x swmr.h5 -x metrics.log "$P/$2" "$M/$2" 2>&1)
    if [ -z "$out" ]; then
        pass "$1"
    else
        fail "$1" "diff -r $P/$2 $M/$2:" "${out:0:2000}"
    fi
}

# --- numpy -------------------------------------------------------------------------------
both numpy-save np-write numpy
same_files "numpy: .npy/.npz/memmap files written on the mount are byte-identical to plain disk" numpy
both numpy-load np-read numpy 0
both numpy-mmap-rplus np-rplus numpy
# a new process sees the mmap writes (flushed and unflushed) before any remount
both numpy-load-after-rplus np-read numpy 1

# --- h5py --------------------------------------------------------------------------------
both h5py-create h5-write h5py
same_files "h5py: the HDF5 file on the mount is byte-identical to plain disk" h5py
both h5py-random-slices h5-read h5py 0
both h5py-modify-rplus h5-modify h5py
both h5py-swmr-writer-and-reader h5-swmr h5py

# --- pandas ------------------------------------------------------------------------------
both pandas-csv-pickle pd pandas
same_files "pandas: CSV and pickle files on the mount are byte-identical to plain disk" pandas
if grep -q '"parquet": "unavailable"' "$OUT/pandas-csv-pickle.m.json" 2>/dev/null; then
    pass "pandas: to_parquet # SKIP neither pyarrow nor fastparquet is installed for $PY"
else
    pass "pandas: to_parquet # SKIP not exercised by this test (a parquet engine is present)"
fi

# --- Pillow ------------------------------------------------------------------------------
both pillow-png-jpeg-tiff pil pillow
same_files "Pillow: PNG/JPEG/TIFF files on the mount are byte-identical to plain disk" pillow

# --- several worker processes writing one output; checkpoint replacement ---------------------
both parallel-writers parallel parallel
both checkpoint-replace ckpt parallel

# --- the same as an ordinary user (uid 65534): custodyfs then checks every access ---------
check "chmod 0755 of the mount root (to let other users in, as the README says)" chmod 0755 "$M"
for d in "$M" "$P"; do
    mkdir -p "$d/user/numpy" "$d/user/h5py" "$d/user/parallel"
    chown -R "$USER_UID:$USER_GID" "$d/user"
done
RUNAS=("${AS_USER[@]}")
both user-numpy-save np-write user/numpy
both user-numpy-load np-read user/numpy 0
both user-numpy-mmap-rplus np-rplus user/numpy
both user-numpy-load-after-rplus np-read user/numpy 1
both user-h5py-create h5-write user/h5py
both user-h5py-random-slices h5-read user/h5py 0
both user-parallel-writers parallel user/parallel
both user-checkpoint-replace ckpt user/parallel
RUNAS=()
same_files "as uid $USER_UID: the files on the mount are byte-identical to plain disk" user
check_eq "as uid $USER_UID: the files created on the mount belong to that user" "" \
    "$(find "$M/user" ! -user "$USER_UID" 2>&1)"

# --- after a remount: nothing comes from the page cache -----------------------------------
if remount_vault "$B" "$M" --keyfile "$KEY"; then
    pass "remount after the numpy/h5py/pandas/Pillow writes"
else
    bail "remount failed: $(cat "$SCRATCH/mount.err")"
fi
both numpy-load-after-remount np-read numpy 1
same_files "numpy: files after mmap r+ writes and a remount are byte-identical to plain disk" numpy
both h5py-random-slices-after-remount h5-read h5py 1
same_files "h5py: the edited HDF5 file after a remount is byte-identical to plain disk" h5py
both parallel-writers-after-remount parallel-check parallel
both user-numpy-load-after-remount np-read user/numpy 1
same_files "all files (pandas, Pillow, parallel writers ...) after a remount are byte-identical to plain disk" .

# --- PyTorch-style loader ----------------------------------------------------------------
NSAMPLES=2000
WORKERS=4
EPOCHS=2
t0=$(now)
timeout -k 5 "$PY_TIMEOUT" "$PY" "$LOADER" make "$P/loader" "$NSAMPLES" "$OUT/manifest.p.json" > "$OUT/make.p.out" 2>&1
rcp=$?
tp=$(secs_since "$t0"); t0=$(now)
timeout -k 5 "$PY_TIMEOUT" "$PY" "$LOADER" make "$M/loader" "$NSAMPLES" "$OUT/manifest.m.json" > "$OUT/make.m.out" 2>&1
rcm=$?
tm=$(secs_since "$t0")
_lib_log "timing loader dataset ($NSAMPLES files, $(cat "$OUT/make.m.out" 2>/dev/null)): mount ${tm}s, plain disk ${tp}s"
[ "$rcp" -eq 0 ] || bail "could not write the loader dataset on plain disk: $(tail -3 "$OUT/make.p.out")"
if [ "$rcm" -eq 0 ]; then
    pass "loader: $NSAMPLES sample files written through the mount"
else
    fail "loader: $NSAMPLES sample files written through the mount" "exit status $rcm" "$(tail -5 "$OUT/make.m.out")"
fi
check_eq "loader: the dataset written on the mount has the same manifest as on plain disk" \
    "$(sha "$OUT/manifest.p.json")" "$(sha "$OUT/manifest.m.json")"
remount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"

# run_loader TAG(p|m) EPOCHS MODE: output in $OUT/loader-MODE.TAG.*
run_loader() {
    local dir=$P/loader
    [ "$1" = m ] && dir=$M/loader
    timeout -k 5 "$PY_TIMEOUT" "$PY" "$LOADER" run "$dir" "$OUT/manifest.p.json" "$WORKERS" "$2" "$3" \
        > "$OUT/loader-$3.$1.json" 2> "$OUT/loader-$3.$1.err"
    echo $? > "$OUT/loader-$3.$1.rc"
}
run_loader p "$EPOCHS" read
run_loader m "$EPOCHS" read         # the first epoch right after a remount: cold
remount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"
run_loader p 1 mmap
run_loader m 1 mmap
# loader_summary JSON EPOCHS: "N/N epochs complete..." plus per-epoch samples/s
loader_summary() {
    "$PY" - "$1" "$NSAMPLES" "$2" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
n, ep = int(sys.argv[2]), int(sys.argv[3])
good = sum(1 for e in r["epochs"] if e["samples"] == n and e["ok"] == n)
print("%d/%d epochs complete and correct, %d mismatches" % (good, ep, r["mismatch_count"]))
for m in r["mismatches"][:10]:
    print("  epoch %d sample %d: %s" % tuple(m))
for e in r["epochs"]:
    print("  epoch %d: %d samples in %.2fs = %.0f samples/s (%d workers)"
          % (e["epoch"], e["samples"], e["secs"], e["samples_per_s"] or 0, e["workers_used"]))
EOF
}
# check_loader TAG EPOCHS MODE
check_loader() {
    local where=$1 ep=$2 mode=$3 label=mount summary desc
    [ "$where" = p ] && label="plain disk"
    desc="loader ($mode) on the $label: every sample of $ep shuffled epoch(s) ($WORKERS workers) has the expected sha256 and label"
    if [ "$(cat "$OUT/loader-$mode.$where.rc")" -ne 0 ]; then
        fail "$desc" "exit status $(cat "$OUT/loader-$mode.$where.rc")" "$(tail -5 "$OUT/loader-$mode.$where.err")"
        return
    fi
    summary=$(loader_summary "$OUT/loader-$mode.$where.json" "$ep" 2>&1)
    # informative only: never asserted
    printf '%s\n' "$summary" | grep 'samples/s' | sed -e "s/^ */# loader speed ($mode, $label): /"
    check_match "$desc" "^$ep/$ep epochs complete and correct, 0 mismatches" "$summary"
}
check_loader p "$EPOCHS" read
check_loader m "$EPOCHS" read
check_loader p 1 mmap
check_loader m 1 mmap

# --- the audit log still verifies after all this ------------------------------------------
unmount_vault "$M" || fail "unmount at the end" "$(fusermount3 -u "$M" 2>&1)"
check "audit log verifies after the tool workload (custodyctl verify)" \
    timeout "$CMD_TIMEOUT" "$CUSTODYCTL" verify "$B"

done_testing
