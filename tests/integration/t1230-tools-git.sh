#!/bin/bash
# git on the mount, every step also done on plain disk and compared:
#   - git init on the mount, 5 commits of ~300 files (text, 1-2 MiB binaries,
#     an executable, a symlink, renames, deletions), fixed author/committer
#     dates so that commit ids must be identical to plain disk's;
#   - git fsck --full --strict, git status clean, the same core.* settings
#     probed by git init (filemode, symlinks, ignorecase);
#   - git gc --prune=now (packs, mmap of packs, lock files, renames), fsck again;
#   - clones: out of the mount, into the mount, mount to mount (local, with
#     hard links), mount to mount --no-local (upload-pack/index-pack); each one
#     fsck'ed, same log, clean status, same work tree as a plain-disk clone;
#   - checkout of an old tag and back, a commit and a push into the repository
#     on the mount (receive-pack);
#   - init, commits, gc and a clone again as an ordinary user (uid 65534);
#   - everything fsck'ed again after a remount.
# The repositories live in the test's scratch directory only.
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools git setpriv
setup_vault

TREE=$LIB_DIR/tools/t1220_tree.py
P=$SCRATCH/plain
OUT=$SCRATCH/out
mkdir -p "$P" "$OUT" "$SCRATCH/home"

# a private, deterministic git environment
export HOME=$SCRATCH/home
export GIT_CONFIG_NOSYSTEM=1
export GIT_CONFIG_GLOBAL=$HOME/.gitconfig
export GIT_CEILING_DIRECTORIES=$SCRATCH
export GIT_AUTHOR_NAME="Data Team" GIT_AUTHOR_EMAIL="data@example.com"
export GIT_COMMITTER_NAME="Data Team" GIT_COMMITTER_EMAIL="data@example.com"
export GIT_TERMINAL_PROMPT=0
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY
git config --global init.defaultBranch main
git config --global gc.auto 0
git config --global advice.detachedHead false
git config --global pack.threads 1        # deterministic packs
git config --global --add safe.directory '*'   # root inspects the user's repositories too

now() { date +%s.%N; }
secs_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# g DIR ARGS...: git -C DIR ARGS, output in $OUT/g.out; returns git's status
g() {
    local d=$1; shift
    timeout -k 5 "$PY_TIMEOUT" git -C "$d" "$@" > "$OUT/g.out" 2>&1
}

# gok DESC DIR ARGS...: a git command that must succeed
gok() {
    local desc=$1 d=$2; shift 2
    if g "$d" "$@"; then
        pass "$desc"
        return 0
    fi
    fail "$desc" "command: git -C $d $*" "$(head -c 2000 "$OUT/g.out")"
    return 1
}

# gen DIR STEP: the work-tree changes of commit STEP (deterministic)
gen() {
    "$PY" - "$1" "$2" <<'EOF'
import hashlib, os, shutil, sys
d, step = sys.argv[1], int(sys.argv[2])
def blob(seed, n):
    out = bytearray()
    k = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d/%d" % (seed, k)).digest()
        k += 1
    return bytes(out[:n])
def write(rel, data, mode=None):
    p = os.path.join(d, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    if mode is not None:
        os.chmod(p, mode)
if step == 1:
    for i in range(300):
        write("src/mod%d/file%03d.py" % (i // 30, i),
              "".join("def f%d_%d():\n    return %d\n" % (i, j, i * j) for j in range(i % 40 + 1)).encode())
    write("README.md", b"# dataset tools\n")
    write("data/blob.bin", blob(1, 1024 * 1024 + 17))
    write("script.sh", b"#!/bin/sh\necho hi\n", 0o755)
    os.symlink("README.md", os.path.join(d, "link-to-readme"))
elif step == 2:
    for i in range(0, 300, 5):
        p = os.path.join(d, "src/mod%d/file%03d.py" % (i // 30, i))
        with open(p, "ab") as f:
            f.write(b"# step 2\n")
    with open(os.path.join(d, "README.md"), "ab") as f:
        f.write(b"more text\n")
elif step == 3:
    os.rename(os.path.join(d, "src/mod3"), os.path.join(d, "src/moved3"))
    for i in range(130, 140):
        os.unlink(os.path.join(d, "src/mod%d/file%03d.py" % (i // 30, i)))
    os.chmod(os.path.join(d, "script.sh"), 0o644)
    write("tool.sh", b"#!/bin/sh\nexit 0\n", 0o755)
elif step == 4:
    p = os.path.join(d, "data/blob.bin")
    fd = os.open(p, os.O_WRONLY)
    os.pwrite(fd, b"x" * 100, 500000)
    os.close(fd)
    write("data/blob2.bin", blob(2, 2 * 1024 * 1024))
elif step == 5:
    for i in range(1, 300, 3):
        for sub in ("mod%d" % (i // 30), "moved3"):
            p = os.path.join(d, "src/%s/file%03d.py" % (sub, i))
            if os.path.exists(p):
                with open(p, "ab") as f:
                    f.write(b"# step 5\n")
    write(".gitignore", b"*.tmp\n")
    write("scratch.tmp", b"ignored\n")
EOF
}

# mkrepo DIR: init and the 5 commits; tag v1 at commit 3
mkrepo() {
    local d=$1 k
    git init -q "$d" || return 1
    for k in 1 2 3 4 5; do
        gen "$d" "$k" || return 1
        git -C "$d" add -A || return 1
        GIT_AUTHOR_DATE="@$((1700000000 + k * 3600)) +0000" GIT_COMMITTER_DATE="@$((1700000000 + k * 3600)) +0000" \
            git -C "$d" commit -q -m "step $k" || return 1
        if [ "$k" = 3 ]; then
            GIT_COMMITTER_DATE="@1700020000 +0000" git -C "$d" tag -a v1 -m "version 1" || return 1
        fi
    done
}

gitlog() { git -C "$1" log --all --format='%H %T %P %s' 2>&1; }
fsck() { timeout -k 5 "$PY_TIMEOUT" git -C "$1" fsck --full --strict --no-progress 2>&1; }
worktree() { "$PY" "$TREE" manifest "$1" --content-only --skip-git 2>&1; }

# checkrepo LABEL DIR REFDIR: fsck passes, same log, clean status, same work tree
checkrepo() {
    local label=$1 d=$2 ref=$3 out rc
    out=$(fsck "$d"); rc=$?
    if [ "$rc" -eq 0 ] && ! grep -qiE 'error|missing|corrupt|broken' <<< "$out"; then
        pass "$label: git fsck --full --strict passes"
    else
        fail "$label: git fsck --full --strict passes" "git -C $d fsck: exit $rc" "${out:0:2000}"
    fi
    check_eq "$label: git log (all refs, commit and tree ids) equals plain disk's" "$(gitlog "$ref")" "$(gitlog "$d")"
    check_eq "$label: git status is clean" "" "$(git -C "$d" status --porcelain 2>&1)"
    check_eq "$label: the work tree equals plain disk's (content, modes, symlinks)" "$(worktree "$ref")" "$(worktree "$d")"
}

# --- create ------------------------------------------------------------------------------
t0=$(now); mkrepo "$P/repo" > "$OUT/mkrepo.p" 2>&1 || bail "git on plain disk failed: $(tail -5 "$OUT/mkrepo.p")"
tp=$(secs_since "$t0"); t0=$(now)
if mkrepo "$M/repo" > "$OUT/mkrepo.m" 2>&1; then
    pass "git init and 5 commits of ~300 files on the mount"
else
    fail "git init and 5 commits of ~300 files on the mount" "$(tail -10 "$OUT/mkrepo.m")"
fi
_lib_log "timing git init + 5 commits: mount $(secs_since "$t0")s, plain disk ${tp}s"
check_eq "git init probed the same core.* settings on the mount as on plain disk (filemode, symlinks, ignorecase)" \
    "$(git -C "$P/repo" config --local --get-regexp '^core\.' 2>&1)" "$(git -C "$M/repo" config --local --get-regexp '^core\.' 2>&1)"
checkrepo "repo on the mount" "$M/repo" "$P/repo"
check_eq "repo on the mount: git ls-files -s (modes and blob ids) equals plain disk's" \
    "$(git -C "$P/repo" ls-files -s 2>&1 | sha256sum)" "$(git -C "$M/repo" ls-files -s 2>&1 | sha256sum)"

# --- gc ----------------------------------------------------------------------------------
g "$P/repo" gc --prune=now -q || bail "git gc on plain disk failed: $(cat "$OUT/g.out")"
t0=$(now)
gok "git gc --prune=now on the mount" "$M/repo" gc --prune=now -q
_lib_log "timing git gc on the mount: $(secs_since "$t0")s"
countobj() { git -C "$1" count-objects -v 2>&1 | grep -E '^(count|in-pack|packs|garbage):' | tr '\n' ' '; }
check_eq "after gc: the same loose/packed object counts as plain disk" "$(countobj "$P/repo")" "$(countobj "$M/repo")"
checkrepo "repo on the mount after gc" "$M/repo" "$P/repo"

# --- clones ------------------------------------------------------------------------------
git clone -q "$P/repo" "$P/clone-ref" > "$OUT/clone-ref" 2>&1 || bail "git clone on plain disk failed: $(cat "$OUT/clone-ref")"
clone() {   # clone LABEL SRC DST [OPTIONS...]
    local label=$1 src=$2 dst=$3; shift 3
    local t0 out rc
    t0=$(now)
    out=$(timeout -k 5 "$PY_TIMEOUT" git clone -q "$@" "$src" "$dst" 2>&1); rc=$?
    _lib_log "timing $label: $(secs_since "$t0")s"
    if [ "$rc" -eq 0 ]; then
        pass "$label"
        checkrepo "$label" "$dst" "$P/clone-ref"
    else
        fail "$label" "command: git clone -q $* $src $dst" "exit $rc" "${out:0:2000}"
    fi
}
clone "git clone out of the mount" "$M/repo" "$P/clone-from-m"
clone "git clone into the mount" "$P/repo" "$M/clone-into-m"
clone "git clone mount to mount (local, hard-linked objects)" "$M/repo" "$M/clone-m2m"
_lib_log "clone mount to mount: $(find "$M/clone-m2m/.git/objects" -type f -links +1 2>/dev/null | wc -l) object files hard-linked with the source repository"
clone "git clone mount to mount --no-local (upload-pack / index-pack)" "$M/repo" "$M/clone-pack" --no-local

# --- checkout of an old tag and back; commit and push into the mount ---------------------
for d in "$P/clone-ref" "$M/clone-into-m"; do
    git -C "$d" checkout -q v1 > "$OUT/co" 2>&1 || echo "checkout v1 in $d: $(cat "$OUT/co")" >> "$OUT/co-errors"
done
check_eq "git checkout v1 on the mount: no error" "" "$(cat "$OUT/co-errors" 2>/dev/null)"
check_eq "git checkout v1 on the mount: the work tree equals plain disk's" "$(worktree "$P/clone-ref")" "$(worktree "$M/clone-into-m")"
check_eq "git checkout v1 on the mount: status clean" "" "$(git -C "$M/clone-into-m" status --porcelain 2>&1)"
for d in "$P/clone-ref" "$M/clone-into-m"; do
    git -C "$d" checkout -q main > "$OUT/co" 2>&1 || echo "checkout main in $d: $(cat "$OUT/co")" >> "$OUT/co-errors"
    git -C "$d" checkout -q -b feature > "$OUT/co" 2>&1 || echo "branch in $d: $(cat "$OUT/co")" >> "$OUT/co-errors"
    printf 'feature work\n' >> "$d/README.md"
    rm -f "$d/src/mod0/file000.py"
    git -C "$d" add -A > "$OUT/co" 2>&1 || echo "add in $d: $(cat "$OUT/co")" >> "$OUT/co-errors"
    GIT_AUTHOR_DATE="@1700100000 +0000" GIT_COMMITTER_DATE="@1700100000 +0000" \
        git -C "$d" commit -q -m "feature" > "$OUT/co" 2>&1 || echo "commit in $d: $(cat "$OUT/co")" >> "$OUT/co-errors"
done
check_eq "back to main, a branch and a commit in the clone on the mount: no error" "" "$(cat "$OUT/co-errors" 2>/dev/null)"
check_eq "the commit made on the mount has the same id as on plain disk" \
    "$(git -C "$P/clone-ref" rev-parse HEAD 2>&1)" "$(git -C "$M/clone-into-m" rev-parse HEAD 2>&1)"
# push: plain-disk clone -> plain-disk repo (reference); mount clone -> mount repo
git -C "$P/clone-ref" push -q "$P/repo" feature > "$OUT/push" 2>&1 || bail "git push on plain disk failed: $(cat "$OUT/push")"
git -C "$M/clone-into-m" remote set-url origin "$M/repo"
gok "git push from a clone on the mount into the repository on the mount (receive-pack)" "$M/clone-into-m" push -q origin feature
checkrepo "repo on the mount after the push" "$M/repo" "$P/repo"

# --- as an ordinary user (uid 65534): custodyfs checks every access itself -----------------
# (git writes its objects read-only, 0444, renames lock files over refs, ...)
USER_UID=65534
USER_GID=65534
AS_USER=(setpriv --reuid="$USER_UID" --regid="$USER_GID" --clear-groups)
check "chmod 0755 of the mount root (to let other users in, as the README says)" chmod 0755 "$M"
for d in "$M" "$P"; do
    mkdir -p "$d/user"
    chown "$USER_UID:$USER_GID" "$d/user"
done
# user_sh CODE ARGS...: run shell code (with gen/mkrepo defined) as the user
user_sh() {
    timeout -k 5 "$PY_TIMEOUT" "${AS_USER[@]}" env PY="$PY" bash -c "$(declare -f gen mkrepo); $1" _ "${@:2}" > "$OUT/user.out" 2>&1
}
user_sh 'mkrepo "$1" && git -C "$1" gc --prune=now -q && git clone -q "$1" "$2"' "$P/user/repo" "$P/user/clone" \
    || bail "git as uid $USER_UID on plain disk failed: $(tail -5 "$OUT/user.out")"
if user_sh 'mkrepo "$1"' "$M/user/repo"; then
    pass "as uid $USER_UID: git init and 5 commits on the mount"
else
    fail "as uid $USER_UID: git init and 5 commits on the mount" "$(tail -10 "$OUT/user.out")"
fi
if user_sh 'git -C "$1" gc --prune=now -q' "$M/user/repo"; then
    pass "as uid $USER_UID: git gc on the mount"
else
    fail "as uid $USER_UID: git gc on the mount" "$(tail -10 "$OUT/user.out")"
fi
if user_sh 'git clone -q "$1" "$2"' "$M/user/repo" "$M/user/clone"; then
    pass "as uid $USER_UID: git clone mount to mount"
else
    fail "as uid $USER_UID: git clone mount to mount" "$(tail -10 "$OUT/user.out")"
fi
for r in repo clone; do
    if user_sh 'git -C "$1" fsck --full --strict --no-progress' "$M/user/$r"; then
        pass "as uid $USER_UID: git fsck of the $r on the mount"
    else
        fail "as uid $USER_UID: git fsck of the $r on the mount" "$(tail -10 "$OUT/user.out")"
    fi
    check_eq "as uid $USER_UID: git log of the $r on the mount equals plain disk's" \
        "$(gitlog "$P/user/$r")" "$(gitlog "$M/user/$r")"
    check_eq "as uid $USER_UID: the work tree of the $r on the mount equals plain disk's" \
        "$(worktree "$P/user/$r")" "$(worktree "$M/user/$r")"
done
check_eq "as uid $USER_UID: everything git created on the mount belongs to that user" "" "$(find "$M/user" ! -user "$USER_UID" 2>&1)"

# --- after a remount -----------------------------------------------------------------------
if remount_vault "$B" "$M" --keyfile "$KEY"; then
    pass "remount"
else
    bail "remount failed: $(cat "$SCRATCH/mount.err")"
fi
checkrepo "repo on the mount after a remount" "$M/repo" "$P/repo"
for c in clone-m2m clone-pack; do
    out=$(fsck "$M/$c"); rc=$?
    if [ "$rc" -eq 0 ]; then pass "$c after a remount: git fsck passes"; else fail "$c after a remount: git fsck passes" "exit $rc" "${out:0:2000}"; fi
done

unmount_vault "$M" || fail "unmount at the end" "$(fusermount3 -u "$M" 2>&1)"
check "audit log verifies after the git workload (custodyctl verify)" \
    timeout "$CMD_TIMEOUT" "$CUSTODYCTL" verify "$B"

done_testing
