#!/bin/bash
# The build: `make` produces build/custodyfs and build/custodyctl, and the
# tools every other script relies on are present (missing ones fail loudly).
. "$(dirname "$0")/lib.sh"

require_root
require_fuse
require_python
require_tools make setpriv setfattr getfattr mount umount fusermount3 \
    truncate fallocate sha256sum xxd df stat find grep awk timeout

"$PY" -c 'import numpy, mmap, fcntl' 2>/dev/null \
    && pass "Debian python3 has numpy, mmap and fcntl" \
    || fail "Debian python3 lacks numpy/mmap/fcntl"

out=$(make -C "$REPO_ROOT" 2>&1); rc=$?
if [ "$rc" -eq 0 ]; then
    pass "make succeeds at the repo root"
else
    fail "make succeeds at the repo root" "exit status $rc" "$(printf '%s\n' "$out" | tail -30)"
fi
check "build/custodyfs exists and is executable" test -x "$REPO_ROOT/build/custodyfs"
check "build/custodyctl exists and is executable" test -x "$REPO_ROOT/build/custodyctl"

out=$(make -C "$REPO_ROOT" 2>&1); rc=$?
check_eq "a second make succeeds too" 0 "$rc"

done_testing
