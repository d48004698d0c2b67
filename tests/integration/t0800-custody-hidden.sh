#!/bin/bash
# BACKING/.custody is invisible and unreachable through the mount: not
# listed, ENOENT on stat/open/listdir, nothing named .custody can be created
# at the root (file, directory, symlink, hard link, rename target), and the
# real config is untouched by all of it.
. "$(dirname "$0")/lib.sh"
standard_prereqs
setup_vault

cfg_before=$(sha "$B/.custody/config")
echo x > "$M/somefile"
mkdir "$M/somedir"

check "the backing directory does hold .custody/config" test -f "$B/.custody/config"
listing=$(ls -a "$M")
check_eq "ls -a of the mount root does not list .custody" "" "$(printf '%s\n' "$listing" | grep -x '.custody')"
check_match "  ... but lists the other entries" "somefile" "$listing"
expect_ok "readdir (os.listdir / scandir) of the root has no .custody" '
assert ".custody" not in os.listdir(argv[0]), os.listdir(argv[0])
with os.scandir(argv[0]) as it:
    assert ".custody" not in [e.name for e in it]
' "$M"
check_eq "find over the mount never reaches .custody" "" "$(find "$M" -name '.custody*' 2>&1)"
expect_errno ENOENT "stat MNT/.custody fails with ENOENT" 'os.stat(argv[0])' "$M/.custody"
expect_errno ENOENT "lstat MNT/.custody fails with ENOENT" 'os.lstat(argv[0])' "$M/.custody"
expect_errno ENOENT "stat MNT/.custody/config fails with ENOENT" 'os.stat(argv[0])' "$M/.custody/config"
expect_errno ENOENT "open MNT/.custody/config fails with ENOENT" 'os.open(argv[0], os.O_RDONLY)' "$M/.custody/config"
expect_errno ENOENT "listdir MNT/.custody fails with ENOENT" 'os.listdir(argv[0])' "$M/.custody"
expect_errno ENOENT "getxattr on MNT/.custody fails with ENOENT" 'os.getxattr(argv[0], "user.x")' "$M/.custody"
expect_errno ENOENT "chmod MNT/.custody fails with ENOENT" 'os.chmod(argv[0], 0o777)' "$M/.custody"
expect_errno ENOENT "rename MNT/.custody away fails with ENOENT" 'os.rename(argv[0], argv[1])' "$M/.custody" "$M/stolen"
expect_errno ENOENT "unlink MNT/.custody/config fails with ENOENT" 'os.unlink(argv[0])' "$M/.custody/config"
expect_errno ENOENT "rmdir MNT/.custody fails with ENOENT" 'os.rmdir(argv[0])' "$M/.custody"
expect_errno ENOENT "a path through a symlink to .custody does not reach it" \
    'os.symlink(".custody", argv[0] + "/lnk-tmp"); os.stat(argv[0] + "/lnk-tmp/config")' "$M"
rm -f "$M/lnk-tmp"
check_ne "cat MNT/.custody/config fails" 0 "$(cat "$M/.custody/config" > /dev/null 2>&1; echo $?)"

# creating it, in every way, fails
expect_fail "mkdir MNT/.custody fails" mkdir "$M/.custody"
expect_fail "creating the file MNT/.custody fails" "$PY" -c 'import os,sys; os.close(os.open(sys.argv[1], os.O_CREAT|os.O_WRONLY, 0o644))' "$M/.custody"
expect_fail "O_CREAT of MNT/.custody/config fails" "$PY" -c 'import os,sys; os.close(os.open(sys.argv[1], os.O_CREAT|os.O_WRONLY|os.O_TRUNC, 0o644))' "$M/.custody/config"
expect_fail "symlink named MNT/.custody fails" ln -s somefile "$M/.custody"
expect_fail "hard link named MNT/.custody fails" ln "$M/somefile" "$M/.custody"
expect_fail "rename of a file to MNT/.custody fails" mv -T "$M/somefile" "$M/.custody"
expect_fail "rename of a directory to MNT/.custody fails" mv -T "$M/somedir" "$M/.custody"
expect_fail "mknod MNT/.custody (fifo) fails" mkfifo "$M/.custody"
check "the file and directory used for the rename attempts are still there" test -f "$M/somefile" -a -d "$M/somedir"
expect_errno ENOENT "after all attempts, stat MNT/.custody still fails with ENOENT" 'os.stat(argv[0])' "$M/.custody"

# (the daemon may keep its own files in .custody while mounted; what must not
# change through the mount is the config, nor may anything land beside it)
check "BACKING/.custody is still a directory" test -d "$B/.custody" -a ! -L "$B/.custody"
check_eq "BACKING/.custody/config is byte-identical after all of this" "$cfg_before" "$(sha "$B/.custody/config")"
check "no entry named by the attempts appeared in the backing root" \
    test ! -e "$B/stolen" -a ! -e "$B/lnk-tmp"
remount_vault "$B" "$M" --keyfile "$KEY" || bail "remount after all attempts failed: $(cat "$SCRATCH/mount.err")"
check_eq "the vault still mounts and reads afterwards" x "$(cat "$M/somefile" 2>&1)"

done_testing
