#!/bin/bash
# CLI basics of both binaries: --help, --version, unknown options.
. "$(dirname "$0")/lib.sh"
standard_prereqs

O=$SCRATCH/out E=$SCRATCH/err

for bin in custodyfs custodyctl; do
    exe=$BUILD_DIR/$bin

    timeout 20 "$exe" --help > "$O" 2> "$E" < /dev/null; rc=$?
    check_eq "$bin --help exits 0" 0 "$rc"
    check "$bin --help prints usage on stdout" test -s "$O"
    check "$bin --help usage names the program" grep -q "$bin" "$O"

    timeout 20 "$exe" --version > "$O" 2> "$E" < /dev/null; rc=$?
    check_eq "$bin --version exits 0" 0 "$rc"
    check_eq "$bin --version prints exactly one line" 1 "$(line_count "$O")"
    check_match "$bin --version line holds a version number" '[0-9]+(\.[0-9]+)*' "$(head -n1 "$O")"
done

# Unknown options: custodyctl exits 2, custodyfs exits 1, message on stderr.
timeout 20 "$CUSTODYCTL" --no-such-option > "$O" 2> "$E" < /dev/null; rc=$?
check_eq "custodyctl --no-such-option exits 2" 2 "$rc"
check "custodyctl --no-such-option explains on stderr" test -s "$E"

target=$SCRATCH/never-created
timeout 20 "$CUSTODYCTL" init "$target" --no-such-option > "$O" 2> "$E" < /dev/null; rc=$?
check_eq "custodyctl init DIR --no-such-option exits 2" 2 "$rc"
check "custodyctl init DIR --no-such-option explains on stderr" test -s "$E"
expect_fail "custodyctl init with an unknown option creates nothing" test -e "$target"

timeout 20 "$CUSTODYFS" --no-such-option > "$O" 2> "$E" < /dev/null; rc=$?
check_eq "custodyfs --no-such-option exits 1" 1 "$rc"
check "custodyfs --no-such-option explains on stderr" test -s "$E"

# An unknown option next to an otherwise valid mount: refused, nothing mounted.
new_keyfile "$SCRATCH/key"
make_vault "$SCRATCH/backing" "$SCRATCH/key" || bail "custodyctl init failed: $(cat "$SCRATCH/init.err")"
mkdir -p "$SCRATCH/mnt"
timeout 30 "$CUSTODYFS" "$SCRATCH/backing" "$SCRATCH/mnt" --keyfile "$SCRATCH/key" --no-such-option \
    > "$O" 2> "$E" < /dev/null; rc=$?
mountinfo_has "$SCRATCH/mnt" && MOUNTED+=("$SCRATCH/mnt")
check_eq "custodyfs BACKING MNT --keyfile K --no-such-option exits 1" 1 "$rc"
check "  ... with a message on stderr" test -s "$E"
expect_fail "  ... and nothing is mounted" mountinfo_has "$SCRATCH/mnt"

done_testing
