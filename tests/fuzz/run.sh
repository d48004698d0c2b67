#!/bin/bash
# tests/fuzz/run.sh SECONDS [TARGET...]
#
# Builds the libFuzzer targets of tests/fuzz/ into build-fuzz/ (crypto/*.c and audit/*.c compiled
# directly with clang, -fsanitize=fuzzer,address,undefined), generates the seed corpora with
# gen_corpus into tests/fuzz/corpus/TARGET/, runs each TARGET (default: all) for SECONDS, and
# prints one summary line per target.  New inputs go to build-fuzz/out/TARGET/corpus/, crashes to
# build-fuzz/out/TARGET/crashes/, the fuzzer's output to build-fuzz/out/TARGET/log.
# Exits 1 when a target crashed (its crash file and how to reproduce it are printed), 2 on a
# usage or build error.
#
# Environment:
#   CC                clang (default: clang, else clang-14)
#   FUZZ_JOBS         targets run at the same time (default 1)
#   FUZZ_ARGS         extra libFuzzer options, e.g. "-use_value_profile=1"
#   CUSTODYFS_FUZZ_RELAX  strict checks to turn off, e.g. "head-line,sql-canonical" (fuzz_audit.c)
set -u
cd "$(dirname "$0")/../.."

ALL_TARGETS="fuzz_content fuzz_vaultcfg fuzz_audit"

usage() {
    echo "usage: tests/fuzz/run.sh SECONDS [TARGET...]   (targets: $ALL_TARGETS)" >&2
    exit 2
}

[ $# -ge 1 ] || usage
seconds=$1
shift
case $seconds in '' | *[!0-9]*) usage ;; esac
[ "$seconds" -ge 1 ] || usage
targets=${*:-$ALL_TARGETS}
for t in $targets; do
    case " $ALL_TARGETS " in *" $t "*) ;; *) echo "run.sh: unknown target '$t'" >&2; usage ;; esac
done

CC=${CC:-}
if [ -z "$CC" ] || ! "$CC" --version 2>/dev/null | grep -q clang; then
    CC=$(command -v clang || command -v clang-14 || true)
fi
[ -n "$CC" ] || { echo "run.sh: clang is needed (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }

B=build-fuzz
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-std=c17 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -D_GNU_SOURCE \
-D_FILE_OFFSET_BITS=64 -DCUSTODY_VERSION=\"0.1.0-fuzz\" -I. \
$(pkg-config --cflags libsodium sqlite3 2>/dev/null)"
LIBS="-lsodium -lsqlite3 -lpthread"

# ---- build ----
build() {
    local objs=() src obj
    mkdir -p "$B/obj" "$B/out" "$B/tmp" || return 1
    for src in crypto/*.c audit/*.c; do
        obj=$B/obj/$(echo "${src%.c}" | tr / _).o
        objs+=("$obj")
        # shellcheck disable=SC2086
        $CC $CFLAGS $SAN -fsanitize=fuzzer-no-link -c "$src" -o "$obj" || return 1
    done
    for t in fuzz_content fuzz_vaultcfg fuzz_audit; do
        # shellcheck disable=SC2086
        $CC $CFLAGS -Werror $SAN -fsanitize=fuzzer "tests/fuzz/$t.c" "${objs[@]}" \
            -o "$B/$t" $LIBS || return 1
    done
    # shellcheck disable=SC2086
    $CC $CFLAGS -Werror $SAN -fsanitize=fuzzer-no-link tests/fuzz/gen_corpus.c "${objs[@]}" \
        -o "$B/gen_corpus" $LIBS || return 1
}

echo "=== building fuzz targets into $B/ with $CC"
build || { echo "run.sh: build failed" >&2; exit 2; }

echo "=== generating seed corpora into tests/fuzz/corpus/"
rm -rf tests/fuzz/corpus
ASAN_OPTIONS=detect_leaks=0 "$B/gen_corpus" tests/fuzz/corpus "$B/tmp" ||
    { echo "run.sh: gen_corpus failed" >&2; exit 2; }
# Inputs of past findings (tests/fuzz/crashes/*.txt, kept as hex) join their target's seeds, so
# that a fixed bug that comes back is found at once.
for txt in tests/fuzz/crashes/*.txt; do
    [ -f "$txt" ] || continue
    t=$(sed -n 's/^target: *//p' "$txt" | head -1)
    [ -d "tests/fuzz/corpus/$t" ] || continue
    hex=$(sed -n '/^-- hex --$/,/^-- end --$/p' "$txt" | sed '1d;$d' | tr -cd '0-9a-fA-F')
    printf '%b' "$(printf '%s' "$hex" | sed 's/../\\x&/g')" \
        >"tests/fuzz/corpus/$t/regress-$(basename "$txt" .txt)"
done

# ---- run ----
max_len() {
    case $1 in
        fuzz_content) echo 4200 ;;     # blocks of every length up to past the largest sealed block
        fuzz_vaultcfg) echo 17000 ;;   # past VAULTCFG_MAX_TEXT
        *) echo 4096 ;;
    esac
}

dict() {
    [ -f "tests/fuzz/$1.dict" ] && echo "-dict=tests/fuzz/$1.dict"
}

run_one() {
    local t=$1 out=$B/out/$1
    rm -rf "$out/crashes"
    mkdir -p "$out/corpus" "$out/crashes"
    # shellcheck disable=SC2046,SC2086
    "$B/$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=25 -rss_limit_mb=2048 \
        -max_len="$(max_len "$t")" $(dict "$t") -artifact_prefix="$out/crashes/" ${FUZZ_ARGS:-} \
        "$out/corpus" "tests/fuzz/corpus/$t" >"$out/log" 2>&1
    echo $? >"$out/rc"
}

jobs_max=${FUZZ_JOBS:-1}
echo "=== fuzzing for $seconds s each: $targets (${jobs_max} at a time; logs in $B/out/TARGET/log)"
running=0
for t in $targets; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs_max" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

# ---- summary ----
status=0
printf '%-14s %12s %9s %8s %8s %10s %8s\n' target executions exec/s cov ft corpus crashes
for t in $targets; do
    out=$B/out/$t
    log=$out/log
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p')
    crashes=$(find "$out/crashes" -type f | wc -l)
    rc=$(cat "$out/rc" 2>/dev/null || echo 1)
    printf '%-14s %12s %9s %8s %8s %10s %8s\n' "$t" "${execs:-?}" "${eps:-?}" "${cov:-?}" \
        "${ft:-?}" "${corp:-?}" "$crashes"
    if [ "$crashes" -gt 0 ] || [ "$rc" != 0 ]; then
        status=1
        echo "  $t FAILED (exit $rc); the fuzzer's report is in $log:"
        grep -E 'INVARIANT VIOLATED|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY' \
            "$log" | head -5 | sed 's/^/    /'
        for f in "$out"/crashes/*; do
            [ -f "$f" ] || continue
            echo "  crash file: $f"
            echo "  reproduce:  $B/$t $f"
            echo "  minimize:   $B/$t -minimize_crash=1 -runs=100000 -exact_artifact_path=$f.min $f"
        done
    fi
done
exit $status
