#!/bin/bash
# custodyctl init: key file / passphrase file / passphrase on stdin, new or
# empty directories; refusal of non-empty directories and existing vaults
# (exit 1, one stderr line, nothing changed); mounting passphrase vaults.
. "$(dirname "$0")/lib.sh"
standard_prereqs

O=$SCRATCH/out E=$SCRATCH/err
KEY=$SCRATCH/key
new_keyfile "$KEY"

ctl() { timeout "$CMD_TIMEOUT" "$CUSTODYCTL" "$@" > "$O" 2> "$E"; }

# --- init a directory that does not exist yet -------------------------------
V1=$SCRATCH/v1
ctl init "$V1" --keyfile "$KEY" < /dev/null; rc=$?
check_eq "init of a missing directory with --keyfile exits 0" 0 "$rc"
check "  ... creates the directory" test -d "$V1"
check_eq "  ... with mode 0700" 700 "$(stat -c %a "$V1" 2>&1)"
check "  ... and BACKING/.custody/config" test -s "$V1/.custody/config"

# --- init an existing empty directory ----------------------------------------
V2=$SCRATCH/v2
mkdir "$V2"
ctl init "$V2" --keyfile "$KEY" < /dev/null; rc=$?
check_eq "init of an existing empty directory exits 0" 0 "$rc"
check "  ... and writes .custody/config" test -s "$V2/.custody/config"

# --- refuse a directory holding files -----------------------------------------
refuse_case() {  # DESC DIR ARGS...
    local desc=$1 dir=$2; shift 2
    local before after rc
    before=$(snapshot "$dir")
    ctl init "$dir" "$@" < /dev/null; rc=$?
    after=$(snapshot "$dir")
    check_eq "$desc: exit status 1" 1 "$rc"
    check_eq "$desc: exactly one line on stderr" 1 "$(line_count "$E")"
    if [ "$before" == "$after" ]; then
        pass "$desc: nothing changed in the directory"
    else
        fail "$desc: nothing changed in the directory" "$(diff <(echo "$before") <(echo "$after") | head -20)"
    fi
}

NE=$SCRATCH/nonempty
mkdir "$NE"
echo "precious data" > "$NE/notes.txt"
mkdir "$NE/sub"
echo "more" > "$NE/sub/x"
refuse_case "init of a directory holding files (--keyfile)" "$NE" --keyfile "$KEY"
check "  ... no .custody was created in it" test ! -e "$NE/.custody"
check_eq "  ... its file is untouched" "precious data" "$(cat "$NE/notes.txt")"

NE2=$SCRATCH/nonempty2
mkdir "$NE2"
echo "hidden" > "$NE2/.hidden"
printf 'pw-for-refusal\n' > "$SCRATCH/pwfile-refuse"
refuse_case "init of a directory holding only a dotfile (--passphrase-file)" "$NE2" \
    --passphrase-file "$SCRATCH/pwfile-refuse"
check "  ... no .custody was created in it" test ! -e "$NE2/.custody"

# --- refuse an existing vault ---------------------------------------------------
cfg_before=$(sha "$V1/.custody/config")
refuse_case "init of an existing vault with the same key" "$V1" --keyfile "$KEY"
new_keyfile "$SCRATCH/key-other"
refuse_case "init of an existing vault with another key" "$V1" --keyfile "$SCRATCH/key-other"
refuse_case "init of an existing vault with a passphrase" "$V1" --passphrase-file "$SCRATCH/pwfile-refuse"
check_eq "  ... the vault's config is byte-identical" "$cfg_before" "$(sha "$V1/.custody/config")"

# the refused vault still mounts with its original key and holds data
M1=$SCRATCH/m1
if mount_vault "$V1" "$M1" --keyfile "$KEY"; then
    pass "the vault still mounts with its original key after the refusals"
    echo "keyfile vault data" > "$M1/f.txt"
    check_eq "  ... and files written through it read back" "keyfile vault data" "$(cat "$M1/f.txt" 2>&1)"
    unmount_vault "$M1" || fail "unmount $M1"
    if mount_vault "$V1" "$M1" --keyfile "$KEY"; then
        check_eq "  ... and after a remount" "keyfile vault data" "$(cat "$M1/f.txt" 2>&1)"
        unmount_vault "$M1"
    else
        fail "remount of the key-file vault" "$(cat "$SCRATCH/mount.err")"
    fi
else
    fail "the vault still mounts with its original key after the refusals" "$(cat "$SCRATCH/mount.err")"
fi

# --- passphrase from a file -------------------------------------------------------
PW=$SCRATCH/pw1
printf 'correct horse battery staple\n' > "$PW"
VP=$SCRATCH/vp
ctl init "$VP" --passphrase-file "$PW" < /dev/null; rc=$?
check_eq "init --passphrase-file FILE exits 0" 0 "$rc"
check "  ... creates .custody/config" test -s "$VP/.custody/config"
MP=$SCRATCH/mp
if mount_vault "$VP" "$MP" --passphrase-file "$PW"; then
    pass "mount with --passphrase-file FILE"
    head -c 100000 /dev/urandom > "$SCRATCH/rand1"
    cp "$SCRATCH/rand1" "$MP/rand1"
    check "  ... a file copied in reads back identical" cmp "$SCRATCH/rand1" "$MP/rand1"
    unmount_vault "$MP" || fail "unmount $MP"
    if mount_vault "$VP" "$MP" --passphrase-file "$PW"; then
        check "  ... and identical after a remount with the passphrase" cmp "$SCRATCH/rand1" "$MP/rand1"
        unmount_vault "$MP"
    else
        fail "remount with --passphrase-file" "$(cat "$SCRATCH/mount.err")"
    fi
else
    fail "mount with --passphrase-file FILE" "$(cat "$SCRATCH/mount.err")"
fi

# --- passphrase from stdin ('-'); only the first line counts ----------------------
VS=$SCRATCH/vs
printf 'stdin pass phrase 42\n' | ctl init "$VS" --passphrase-file -; rc=$?
check_eq "init --passphrase-file - (passphrase on stdin) exits 0" 0 "$rc"
check "  ... creates .custody/config" test -s "$VS/.custody/config"
printf 'stdin pass phrase 42\nthis second line is not part of it\n' > "$SCRATCH/pw-2lines"
MS=$SCRATCH/ms
if mount_vault "$VS" "$MS" --passphrase-file "$SCRATCH/pw-2lines"; then
    pass "mount with a passphrase file whose first line is the stdin passphrase"
    echo "via stdin vault" > "$MS/hello"
    check_eq "  ... read/write works" "via stdin vault" "$(cat "$MS/hello" 2>&1)"
    unmount_vault "$MS" || fail "unmount $MS"
else
    fail "mount with a passphrase file whose first line is the stdin passphrase" "$(cat "$SCRATCH/mount.err")"
fi
printf 'stdin pass phrase 42' > "$SCRATCH/pw-nonl"
if mount_vault "$VS" "$MS" --passphrase-file "$SCRATCH/pw-nonl"; then
    pass "mount with the same passphrase in a file without a trailing newline"
    check_eq "  ... sees the file written before" "via stdin vault" "$(cat "$MS/hello" 2>&1)"
    unmount_vault "$MS" || fail "unmount $MS"
else
    fail "mount with the same passphrase in a file without a trailing newline" "$(cat "$SCRATCH/mount.err")"
fi

done_testing
