#!/bin/bash
# Runs the custodyfs integration tests.
#
#   tests/integration/run.sh                 every tNNNN-*.sh script, in order
#   tests/integration/run.sh t0300 t0700-... only the named scripts (a name may
#                                            be a path, a file name, or a prefix)
#
# Prints each script's result (the full TAP output of failing scripts) and
# ends with the line "N passed, N failed" (counting scripts).  Exit status 0
# only when every script passed.  Works from any cwd; must run as root.
#
# Environment: CUSTODYFS_TEST_TIMEOUT (seconds per script, default 300),
# CUSTODYFS_TEST_VERBOSE=1 (print the output of passing scripts too),
# CUSTODYFS_TEST_LOGDIR (where the per-script logs go; default a new dir
# under /tmp).

set -u

DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PER_SCRIPT_TIMEOUT=${CUSTODYFS_TEST_TIMEOUT:-300}
VERBOSE=${CUSTODYFS_TEST_VERBOSE:-0}
LOGDIR=${CUSTODYFS_TEST_LOGDIR:-$(mktemp -d /tmp/custodyfs-it-logs.XXXXXX)}
mkdir -p "$LOGDIR"

scripts=()
unknown=0
if [ "$#" -eq 0 ]; then
    while IFS= read -r s; do
        scripts+=("$s")
    done < <(find "$DIR" -maxdepth 1 -type f -name 't[0-9][0-9][0-9][0-9]-*.sh' | LC_ALL=C sort)
else
    for arg in "$@"; do
        found=()
        if [ -f "$arg" ]; then
            found=("$(cd "$(dirname "$arg")" && pwd)/$(basename "$arg")")
        elif [ -f "$DIR/$arg" ]; then
            found=("$DIR/$arg")
        elif [ -f "$DIR/$arg.sh" ]; then
            found=("$DIR/$arg.sh")
        else
            while IFS= read -r s; do
                found+=("$s")
            done < <(find "$DIR" -maxdepth 1 -type f -name "${arg##*/}*.sh" -name 't[0-9]*' | LC_ALL=C sort)
        fi
        if [ "${#found[@]}" -eq 0 ]; then
            echo "run.sh: no test script matches '$arg'" >&2
            unknown=$((unknown + 1))
        fi
        scripts+=("${found[@]}")
    done
fi

if [ "${#scripts[@]}" -eq 0 ]; then
    echo "run.sh: no test scripts to run" >&2
    echo "0 passed, $((unknown > 0 ? unknown : 1)) failed"
    exit 1
fi

passed=0
failed=$unknown
failed_names=()
suite_start=$(date +%s)

for s in "${scripts[@]}"; do
    name=$(basename "$s" .sh)
    log=$LOGDIR/$name.log
    start=$(date +%s.%N)
    timeout --kill-after=20 "$PER_SCRIPT_TIMEOUT" bash "$s" > "$log" 2>&1 < /dev/null
    rc=$?
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    nok=$(grep -c '^ok ' "$log")
    nnok=$(grep -c '^not ok ' "$log")
    if [ "$rc" -eq 0 ] && [ "$nnok" -eq 0 ] && [ "$nok" -gt 0 ]; then
        passed=$((passed + 1))
        printf 'PASS %-40s %4d checks  %6ss\n' "$name" "$nok" "$secs"
        if [ "$VERBOSE" = 1 ]; then
            sed -e 's/^/    /' "$log"
        fi
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        why="exit $rc"
        [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && why="timed out after ${PER_SCRIPT_TIMEOUT}s"
        printf 'FAIL %-40s %4d ok, %d not ok, %s  %6ss\n' "$name" "$nok" "$nnok" "$why" "$secs"
        sed -e 's/^/    /' "$log"
    fi
done

total=$(($(date +%s) - suite_start))
echo "# logs: $LOGDIR"
echo "# total time: ${total}s"
if [ "${#failed_names[@]}" -gt 0 ]; then
    echo "# failed: ${failed_names[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
