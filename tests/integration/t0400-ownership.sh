#!/bin/bash
# Ownership and permission checks through the allow_other/default_permissions
# mount: files and directories created by uid/gid 1000 with umask 027 belong
# to 1000:1000 with modes 0640/0750; other users get EACCES/EPERM where POSIX
# says so; group and world permissions are honoured.
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools setpriv
setup_vault

as() {  # UID GID CMD...   run as another user with no supplementary groups
    local u=$1 g=$2; shift 2
    setpriv --reuid="$u" --regid="$g" --clear-groups "$@"
}
as_errno() {  # UID GID CODE ARGS...: errno name (or OK) of CODE run as UID
    local u=$1 g=$2; shift 2
    as "$u" "$g" timeout 60 "$PY" "$USER_HELPERS" errno "$@" 2> "$SCRATCH/as_errno.err"
}
# a copy other users can surely read, wherever the repo is checked out
USER_HELPERS=$SCRATCH/helpers.py
cp "$HELPERS_PY" "$USER_HELPERS" && chmod 0644 "$USER_HELPERS"
expect_errno_as() {  # WANT DESC UID GID CODE ARGS...
    local want=$1 desc=$2 u=$3 g=$4; shift 4
    local got
    got=$(as_errno "$u" "$g" "$@")
    if [[ "$got" =~ ^($want)$ ]]; then
        pass "$desc"
    else
        fail "$desc" "expected $want, got: $got" "$(cat "$SCRATCH/as_errno.err")" "code: $1"
    fi
}

chmod 0755 "$M"
check_eq "the mount root can be chmod'ed to 0755" 755 "$(stat -c %a "$M")"
mkdir "$M/pub"
chmod 1777 "$M/pub"
check_eq "uid 1000 can traverse the mount" OK "$(as_errno 1000 1000 'os.listdir(argv[0])' "$M/pub")"

as 1000 1000 bash -c 'umask 027 && echo "user1000 data" > "$1/pub/u-file" && mkdir "$1/pub/u-dir"' _ "$M"; rc=$?
check_eq "uid 1000 (umask 027) creates a file and a directory" 0 "$rc"
check_eq "the file belongs to 1000:1000" "1000:1000" "$(stat -c %u:%g "$M/pub/u-file" 2>&1)"
check_eq "the file has mode 0640" 640 "$(stat -c %a "$M/pub/u-file" 2>&1)"
check_eq "the directory belongs to 1000:1000" "1000:1000" "$(stat -c %u:%g "$M/pub/u-dir" 2>&1)"
check_eq "the directory has mode 0750" 750 "$(stat -c %a "$M/pub/u-dir" 2>&1)"
as 1000 1000 bash -c 'umask 027 && echo sub > "$1/pub/u-dir/inner" && ln -s inner "$1/pub/u-dir/lnk"' _ "$M"
check_eq "a file created in its own directory belongs to 1000:1000, mode 0640" "1000:1000 640" \
    "$(stat -c '%u:%g %a' "$M/pub/u-dir/inner" 2>&1)"
check_eq "a symlink created by uid 1000 belongs to 1000:1000" "1000:1000" "$(stat -c %u:%g "$M/pub/u-dir/lnk" 2>&1)"
check_eq "uid 1000 reads its own file" "user1000 data" "$(as 1000 1000 cat "$M/pub/u-file" 2>&1)"

as 1000 1000 bash -c 'umask 077 && echo "secret of 1000" > "$1/pub/secret"' _ "$M"
check_eq "a 0600 file of uid 1000" "600 1000:1000" "$(stat -c '%a %u:%g' "$M/pub/secret" 2>&1)"
expect_errno_as EACCES "uid 1001 cannot read another user's 0600 file (EACCES)" 1001 1001 \
    'open(argv[0], "rb").read()' "$M/pub/secret"
expect_errno_as EACCES "uid 1001 cannot write another user's 0600 file (EACCES)" 1001 1001 \
    'os.open(argv[0], os.O_WRONLY)' "$M/pub/secret"
as 1001 1001 cat "$M/pub/secret" > /dev/null 2>&1; rc=$?
check_ne "cat as uid 1001 of that file fails" 0 "$rc"
check_eq "uid 1000 reads its 0600 file" "secret of 1000" "$(as 1000 1000 cat "$M/pub/secret" 2>&1)"
check_eq "root reads any file" "secret of 1000" "$(cat "$M/pub/secret" 2>&1)"

expect_errno_as EACCES "uid 1001 cannot read a 0640 file of 1000:1000" 1001 1001 \
    'open(argv[0], "rb").read()' "$M/pub/u-file"
got=$(setpriv --reuid=1001 --regid=1001 --groups=1000 cat "$M/pub/u-file" 2>&1)
check_eq "uid 1001 in group 1000 reads the 0640 file" "user1000 data" "$got"
expect_errno_as EACCES "uid 1001 cannot list a 0750 directory of 1000:1000" 1001 1001 \
    'os.listdir(argv[0])' "$M/pub/u-dir"
expect_errno_as EACCES "uid 1001 cannot create files in it" 1001 1001 \
    'open(argv[0], "wb")' "$M/pub/u-dir/intruder"
expect_errno_as EPERM "uid 1001 cannot chmod another user's file (EPERM)" 1001 1001 \
    'os.chmod(argv[0], 0o666)' "$M/pub/u-file"
expect_errno_as EPERM "uid 1001 cannot chown a file to itself (EPERM)" 1001 1001 \
    'os.chown(argv[0], 1001, 1001)' "$M/pub/u-file"
expect_errno_as EPERM "uid 1001 cannot unlink another user's file in a sticky directory (EPERM)" 1001 1001 \
    'os.unlink(argv[0])' "$M/pub/u-file"
expect_errno_as EPERM "uid 1001 cannot set times on another user's file (EPERM)" 1001 1001 \
    'os.utime(argv[0], (1, 1))' "$M/pub/u-file"
check "all of uid 1000's files are still there" test -f "$M/pub/u-file" -a -f "$M/pub/secret" -a ! -e "$M/pub/u-dir/intruder"

chmod 0644 "$M/pub/secret"
check_eq "after chmod 0644 by root, uid 1001 can read it" "secret of 1000" "$(as 1001 1001 cat "$M/pub/secret" 2>&1)"
expect_errno_as OK "uid 1000 can chmod its own file" 1000 1000 'os.chmod(argv[0], 0o600)' "$M/pub/secret"
expect_errno_as EACCES "  ... after which uid 1001 again gets EACCES" 1001 1001 'open(argv[0], "rb").read()' "$M/pub/secret"
expect_errno_as EACCES "uid 1000 cannot create files in the 0755 root-owned mount root" 1000 1000 \
    'open(argv[0], "wb")' "$M/not-allowed"

remount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"
check_eq "after remount: owner and modes kept" "1000:1000 640|1000:1000 750|1000:1000 600" \
    "$(stat -c '%u:%g %a' "$M/pub/u-file")|$(stat -c '%u:%g %a' "$M/pub/u-dir")|$(stat -c '%u:%g %a' "$M/pub/secret")"
expect_errno_as EACCES "after remount: uid 1001 still cannot read the 0600 file" 1001 1001 \
    'open(argv[0], "rb").read()' "$M/pub/secret"

done_testing
