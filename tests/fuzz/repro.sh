#!/bin/bash
# tests/fuzz/repro.sh CRASH.txt: rebuild the input kept (as hex) in a tests/fuzz/crashes/*.txt
# file and run it through its target (build the targets first with tests/fuzz/run.sh).
set -eu
cd "$(dirname "$0")/../.."
[ $# -eq 1 ] || { echo "usage: tests/fuzz/repro.sh tests/fuzz/crashes/NAME.txt" >&2; exit 2; }
target=$(sed -n 's/^target: *//p' "$1" | head -1)
[ -x "build-fuzz/$target" ] || { echo "repro.sh: build-fuzz/$target missing: run tests/fuzz/run.sh 1 first" >&2; exit 2; }
mkdir -p build-fuzz/repro
bin=build-fuzz/repro/$(basename "$1" .txt)
hex=$(sed -n '/^-- hex --$/,/^-- end --$/p' "$1" | sed '1d;$d' | tr -cd '0-9a-fA-F')
printf '%b' "$(printf '%s' "$hex" | sed 's/../\\x&/g')" >"$bin"
echo "input: $bin ($(wc -c <"$bin") bytes)"
exec "build-fuzz/$target" "$bin"
