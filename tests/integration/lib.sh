# shellcheck shell=bash
# Shared helpers for the custodyfs integration tests.
#
# Every tNNNN-*.sh script sources this file first.  It provides:
#   - REPO_ROOT, CUSTODYFS, CUSTODYCTL, PY (Debian's /usr/bin/python3 + numpy)
#   - SCRATCH: a private directory under /tmp, removed at exit
#   - make_vault / mount_vault / unmount_vault / remount_vault / setup_vault
#     (VAULT_FILE_FORMAT=1 or 2, when set, picks the vaults' file format)
#   - header_size_of / block_overhead_of / backing_size_for: the vault's layout
#   - an EXIT trap that unmounts whatever the script mounted and kills only
#     the daemons the script started (by PID)
#   - TAP-like reporting: ok / not ok lines, check*, expect_* helpers,
#     done_testing (prints the plan and sets the exit status)
#
# The scripts are run as root (the daemon mounts with allow_other).

set -u
set -o pipefail

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$LIB_DIR/../.." && pwd)
BUILD_DIR=${CUSTODYFS_BUILD_DIR:-$REPO_ROOT/build}
CUSTODYFS=${CUSTODYFS:-$BUILD_DIR/custodyfs}
CUSTODYCTL=${CUSTODYCTL:-$BUILD_DIR/custodyctl}
# Debian's python3 (with numpy); the python3 first on PATH is another build.
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1   # keep the source tree clean
HELPERS_PY=$LIB_DIR/helpers.py
# Seconds a daemon / admin command may take before it counts as hung.
CMD_TIMEOUT=${CUSTODYFS_CMD_TIMEOUT:-60}
# Seconds one Python test snippet may take before it counts as hung.
PY_TIMEOUT=${CUSTODYFS_PY_TIMEOUT:-180}

TEST_NAME=$(basename "${0%.sh}")
TESTS_RUN=0
TESTS_FAILED=0
DONE_TESTING=0

declare -a MOUNTED=()        # mountpoints this script mounted
declare -a DAEMON_PIDS=()    # daemon pids this script started

_lib_log() { printf '# %s\n' "$@"; }

# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------

# pass DESC
pass() {
    TESTS_RUN=$((TESTS_RUN + 1))
    printf 'ok %d - %s\n' "$TESTS_RUN" "$1"
}

# fail DESC [DETAIL...]  (each detail line is printed as a '#' comment)
fail() {
    TESTS_RUN=$((TESTS_RUN + 1))
    TESTS_FAILED=$((TESTS_FAILED + 1))
    printf 'not ok %d - %s\n' "$TESTS_RUN" "$1"
    shift
    local d
    for d in "$@"; do
        [ -n "$d" ] || continue
        printf '%s\n' "$d" | sed -e 's/^/#   /'
    done
}

# bail REASON: stop the script now, counting as a failure.
bail() {
    fail "bail out: $*"
    printf 'Bail out! %s\n' "$*"
    printf '1..%d\n' "$TESTS_RUN"
    DONE_TESTING=1
    exit 1
}

# done_testing: print the plan; exit status 1 if anything failed.
done_testing() {
    DONE_TESTING=1
    printf '1..%d\n' "$TESTS_RUN"
    if [ "$TESTS_RUN" -eq 0 ]; then
        printf '# %s: no test ran\n' "$TEST_NAME"
        exit 1
    fi
    if [ "$TESTS_FAILED" -ne 0 ]; then
        printf '# %s: %d of %d checks failed\n' "$TEST_NAME" "$TESTS_FAILED" "$TESTS_RUN"
        exit 1
    fi
    printf '# %s: all %d checks passed\n' "$TEST_NAME" "$TESTS_RUN"
    exit 0
}

# check DESC CMD [ARGS...]: passes when CMD exits 0.
check() {
    local desc=$1; shift
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" -eq 0 ]; then
        pass "$desc"
        return 0
    fi
    fail "$desc" "command: $*" "exit status: $rc" "${out:0:3000}"
    return 1
}

# expect_fail DESC CMD [ARGS...]: passes when CMD exits non-zero.
expect_fail() {
    local desc=$1; shift
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" -ne 0 ]; then
        pass "$desc"
        return 0
    fi
    fail "$desc" "command unexpectedly succeeded: $*" "${out:0:3000}"
    return 1
}

# check_eq DESC EXPECTED ACTUAL
check_eq() {
    if [ "$2" == "$3" ]; then
        pass "$1"
        return 0
    fi
    fail "$1" "expected: $2" "actual:   $3"
    return 1
}

# check_ne DESC UNEXPECTED ACTUAL
check_ne() {
    if [ "$2" != "$3" ]; then
        pass "$1"
        return 0
    fi
    fail "$1" "value should differ from: $2"
    return 1
}

# check_match DESC EXTENDED_REGEX ACTUAL
check_match() {
    if [[ "$3" =~ $2 ]]; then
        pass "$1"
        return 0
    fi
    fail "$1" "expected to match: $2" "actual: ${3:0:2000}"
    return 1
}

# py CODE [ARGS...]: run Python code (Debian python3) with helpers imported;
# the extra arguments are in sys.argv[1:].
py() {
    local code=$1; shift
    "$PY" -c "import sys; sys.path.insert(0, '$LIB_DIR'); from helpers import *
$code" "$@"
}

# errno_of CODE [ARGS...]: run Python code; prints OK when it raises no
# OSError, else the errno name (EIO, ENOENT, ...).
errno_of() {
    local rc
    timeout -k 5 "$PY_TIMEOUT" "$PY" "$HELPERS_PY" errno "$@"
    rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "TIMEOUT"
        echo "the test code did not finish within ${PY_TIMEOUT}s" >&2
    elif [ "$rc" -ne 0 ]; then
        echo "PYTHON-EXIT-$rc"
    fi
}

# expect_errno ERRNO DESC CODE [ARGS...]: the Python CODE must fail with
# exactly ERRNO (or one of several given as "EAGAIN|EACCES").
expect_errno() {
    local want=$1 desc=$2; shift 2
    local got where
    got=$(errno_of "$@" 2> "$SCRATCH/.errno_of.err")
    where=$(head -c 2000 "$SCRATCH/.errno_of.err")
    if [[ "$got" =~ ^($want)$ ]]; then
        pass "$desc"
        return 0
    fi
    fail "$desc" "expected errno: $want" "got: ${got:0:2000}" "$where" "code: $1"
    return 1
}

# expect_ok DESC CODE [ARGS...]: the Python CODE must run without error.
expect_ok() {
    expect_errno OK "$@"
}

# --------------------------------------------------------------------------
# Prerequisites
# --------------------------------------------------------------------------

# require_tools TOOL...: fail loudly (bail) when a tool is missing.
require_tools() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || bail "required tool '$t' is not installed"
    done
}

require_root() {
    [ "$(id -u)" -eq 0 ] || bail "the integration tests must run as root"
}

require_binaries() {
    [ -x "$CUSTODYFS" ] || bail "daemon not built: $CUSTODYFS (run make in $REPO_ROOT)"
    [ -x "$CUSTODYCTL" ] || bail "admin tool not built: $CUSTODYCTL (run make in $REPO_ROOT)"
}

require_python() {
    [ -x "$PY" ] || bail "$PY (Debian's python3) is missing"
    "$PY" -c 'import numpy' 2>/dev/null || bail "$PY has no numpy (install python3-numpy)"
}

require_fuse() {
    [ -c /dev/fuse ] || bail "/dev/fuse is missing"
    require_tools fusermount3
}

# --------------------------------------------------------------------------
# Scratch directory and cleanup
# --------------------------------------------------------------------------

SCRATCH=$(mktemp -d "/tmp/custodyfs-it.${TEST_NAME}.XXXXXX") || {
    echo "Bail out! cannot create a scratch directory" >&2
    exit 1
}
# Other users (setpriv tests) must be able to traverse to the mountpoints.
chmod 0755 "$SCRATCH"

# mountinfo_has PATH: is PATH a mountpoint right now?
mountinfo_has() {
    awk -v m="$1" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo
}

# mounts_under DIR: mountpoints at or below DIR.
mounts_under() {
    awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo
}

# pids_with_arg ARG [sub]: pids of custodyfs / mount.fuse processes one of
# whose argv words is ARG (or, with "sub", contains ARG).  ARG is always a
# path inside this script's unique SCRATCH, so only processes this script
# started can match.
pids_with_arg() {
    local want=$1 mode=${2:-exact} p a
    local -a args
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [ "$p" = "$$" ] && continue
        [ "$p" = "$BASHPID" ] && continue
        args=()
        mapfile -d '' -t args < "/proc/$p/cmdline" 2>/dev/null || continue
        [ "${#args[@]}" -gt 0 ] || continue
        case "${args[0]##*/}" in
            custodyfs*|mount.fuse*) ;;
            *) continue ;;
        esac
        for a in "${args[@]}"; do
            if [ "$a" = "$want" ] || { [ "$mode" = sub ] && [[ "$a" == *"$want"* ]]; }; then
                echo "$p"
                break
            fi
        done
    done
}

# daemon_pid_for MOUNTPOINT: the custodyfs daemon serving MOUNTPOINT.
daemon_pid_for() {
    local p
    for p in $(pids_with_arg "$1"); do
        case "$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null)" in
            *custodyfs*) echo "$p"; return 0 ;;
        esac
    done
    return 1
}

_remember_daemon() {
    local mnt=$1 pid
    pid=$(daemon_pid_for "$mnt") || return 0
    local p
    for p in "${DAEMON_PIDS[@]}"; do [ "$p" = "$pid" ] && return 0; done
    DAEMON_PIDS+=("$pid")
}

_remember_mount() {
    local m
    for m in "${MOUNTED[@]}"; do [ "$m" = "$1" ] && return 0; done
    MOUNTED+=("$1")
}

# _kill_pid PID: TERM (then KILL) a daemon this script started.  The pid is
# only signalled while its command line still names this script's SCRATCH,
# so a recorded pid that exited and was reused is never touched.
_kill_pid() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -F "$SCRATCH" || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -F "$SCRATCH" && kill -KILL "$pid" 2>/dev/null
}

_cleanup() {
    local rc=$? m pid
    set +e
    trap - EXIT INT TERM HUP
    # Unmount everything we mounted, innermost first.
    local all=("${MOUNTED[@]}")
    while read -r m; do [ -n "$m" ] && all+=("$m"); done < <(mounts_under "$SCRATCH" | sort -r)
    for m in "${all[@]}"; do
        _remember_daemon "$m"
    done
    for m in $(printf '%s\n' "${all[@]}" | awk 'NF' | sort -ru); do
        if mountinfo_has "$m"; then
            fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null \
                || fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
        fi
    done
    # Kill the daemons we started (only those, by PID), plus any daemon
    # whose command line names our private scratch directory.
    for pid in "${DAEMON_PIDS[@]}" $(pids_with_arg "$SCRATCH" sub); do
        _kill_pid "$pid"
    done
    if [ -z "$(mounts_under "$SCRATCH")" ]; then
        if [ -z "${CUSTODYFS_KEEP_SCRATCH:-}" ]; then
            rm -rf --one-file-system "$SCRATCH"
        fi
    else
        echo "# WARNING: still mounted under $SCRATCH; not removing it" >&2
    fi
    if [ "$DONE_TESTING" -eq 0 ]; then
        TESTS_RUN=$((TESTS_RUN + 1))
        printf 'not ok %d - %s ended before done_testing (status %d)\n' "$TESTS_RUN" "$TEST_NAME" "$rc"
        printf '1..%d\n' "$TESTS_RUN"
        [ "$rc" -eq 0 ] && rc=1
    fi
    exit "$rc"
}
trap _cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --------------------------------------------------------------------------
# Vault helpers
# --------------------------------------------------------------------------

# new_keyfile PATH: 32 random bytes.
new_keyfile() {
    head -c 32 /dev/urandom > "$1" && chmod 0600 "$1"
}

# make_vault BACKING [KEYFILE]: init a vault with a key file (created when
# missing).  Output of custodyctl goes to $SCRATCH/init.out / init.err.
# When VAULT_FILE_FORMAT is set and non-empty, passes --file-format
# "$VAULT_FILE_FORMAT" (1 = 128-byte headers, 2 = 40-byte headers); otherwise
# the vault gets custodyctl's default file format (2).  Scripts that check the
# format-1 layout byte by byte set VAULT_FILE_FORMAT=1 before setup_vault.
make_vault() {
    local backing=$1 key=${2:-$SCRATCH/key}
    local -a fmt=()
    [ -n "${VAULT_FILE_FORMAT:-}" ] && fmt=(--file-format "$VAULT_FILE_FORMAT")
    [ -f "$key" ] || new_keyfile "$key"
    timeout "$CMD_TIMEOUT" "$CUSTODYCTL" init "$backing" --keyfile "$key" "${fmt[@]}" \
        > "$SCRATCH/init.out" 2> "$SCRATCH/init.err" < /dev/null
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        _lib_log "custodyctl init $backing failed with status $rc:" "$(cat "$SCRATCH/init.err")"
    fi
    return "$rc"
}

# mount_vault BACKING MNT [AUTH/OPTION ARGS...]: mount (daemonized). Without
# extra args uses --keyfile $SCRATCH/key.  Returns non-zero (and logs why)
# when custodyfs fails or the mount is not usable when it returns.
# Its stdout/stderr are left in $SCRATCH/mount.out / mount.err.
mount_vault() {
    local backing=$1 mnt=$2; shift 2
    local args=("$@")
    [ "${#args[@]}" -gt 0 ] || args=(--keyfile "$SCRATCH/key")
    mkdir -p "$mnt"
    timeout "$CMD_TIMEOUT" "$CUSTODYFS" "$backing" "$mnt" "${args[@]}" \
        > "$SCRATCH/mount.out" 2> "$SCRATCH/mount.err" < /dev/null
    local rc=$?
    if mountinfo_has "$mnt"; then
        _remember_mount "$mnt"
        _remember_daemon "$mnt"
    fi
    if [ "$rc" -ne 0 ]; then
        _lib_log "custodyfs $backing $mnt ${args[*]} failed with status $rc:" "$(cat "$SCRATCH/mount.err")"
        return "$rc"
    fi
    if ! mountinfo_has "$mnt"; then
        _lib_log "custodyfs returned 0 but $mnt is not in /proc/self/mountinfo"
        return 1
    fi
    if ! stat "$mnt/." > /dev/null 2>&1; then
        _lib_log "custodyfs returned but $mnt is not usable: $(stat "$mnt/." 2>&1)"
        return 1
    fi
    return 0
}

# unmount_vault MNT: fusermount3 -u, wait until MNT is gone from mountinfo
# and its daemon has exited.
unmount_vault() {
    local mnt=$1 pid out
    pid=$(daemon_pid_for "$mnt")
    for _ in $(seq 1 20); do
        out=$(fusermount3 -u "$mnt" 2>&1) && break
        mountinfo_has "$mnt" || break
        sleep 0.25
    done
    for _ in $(seq 1 100); do
        mountinfo_has "$mnt" || break
        sleep 0.1
    done
    if mountinfo_has "$mnt"; then
        _lib_log "could not unmount $mnt: $out"
        return 1
    fi
    if [ -n "$pid" ]; then
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            _lib_log "daemon $pid still running 10s after unmounting $mnt"
            return 1
        fi
    fi
    return 0
}

# remount_vault BACKING MNT [ARGS...]
remount_vault() {
    local backing=$1 mnt=$2; shift 2
    unmount_vault "$mnt" && mount_vault "$backing" "$mnt" "$@"
}

# setup_vault: key $KEY, vault $B, mounted at $M; bails on failure.
setup_vault() {
    KEY=$SCRATCH/key
    B=$SCRATCH/backing
    M=$SCRATCH/mnt
    new_keyfile "$KEY"
    make_vault "$B" "$KEY" || bail "custodyctl init failed: $(cat "$SCRATCH/init.err")"
    mount_vault "$B" "$M" --keyfile "$KEY" || bail "mount failed: $(cat "$SCRATCH/mount.err")"
}

# standard_prereqs: what (almost) every script needs.
standard_prereqs() {
    require_root
    require_fuse
    require_python
    require_binaries
}

# --------------------------------------------------------------------------
# Misc helpers
# --------------------------------------------------------------------------

# snapshot DIR: a listing of every entry under DIR with type, mode, size,
# content hash and (for files) mtime, to prove that nothing changed.
snapshot() {
    (
        cd "$1" || exit 1
        find . -printf '%p %y %m %s\n' | LC_ALL=C sort
        find . -type f -printf '%p %T@\n' | LC_ALL=C sort
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
    ) 2>&1
}

# line_count FILE: number of lines, counting an unterminated last line.
line_count() {
    awk 'END { print NR }' "$1"
}

# sha FILE: sha256 hex digest.
sha() {
    sha256sum "$1" | awk '{ print $1 }'
}

# header_size_of [BACKING]: bytes of a file header in the vault BACKING
# (default $B): 40 for a format-2 vault (its config has a "file-key " line),
# 128 for a format-1 vault.  Fails (no output) when there is no config.
header_size_of() {
    local cfg=${1:-${B:-}}/.custody/config
    if [ ! -r "$cfg" ]; then
        echo "header_size_of: no vault configuration at $cfg" >&2
        return 1
    fi
    if grep -q '^file-key ' "$cfg"; then echo 40; else echo 128; fi
}

# block_overhead_of [BACKING]: nonce + tag bytes of each stored block in the
# vault BACKING (default $B): 28 (AES-256-GCM) or 40 (XChaCha20-Poly1305).
block_overhead_of() {
    local cfg=${1:-${B:-}}/.custody/config
    if [ ! -r "$cfg" ]; then
        echo "block_overhead_of: no vault configuration at $cfg" >&2
        return 1
    fi
    if grep -q '^cipher xchacha20poly1305$' "$cfg"; then echo 40; else echo 28; fi
}

# backing_size_for N [BACKING]: expected backing file size for N plaintext
# bytes (a file created through the mount) in the vault BACKING (default $B):
# header + N + overhead * ceil(N / 4096).
backing_size_for() {
    local n=$1 backing=${2:-${B:-}} hdr ovh
    hdr=$(header_size_of "$backing") || return 1
    ovh=$(block_overhead_of "$backing") || return 1
    echo $((hdr + n + ovh * ((n + 4095) / 4096)))
}
