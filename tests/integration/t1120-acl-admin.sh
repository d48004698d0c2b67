#!/bin/bash
# The administrator's access-control commands: `custodyctl grant` / `revoke` (without a mount and
# while mounted, --recursive, --default and what new files inherit), `custodyctl access` (which
# entry decides, for several users and paths), `custodyctl review` (table, json and csv: the
# exact rows of a dataset with an owner, an owning group, named groups with members, a named user
# and other), the grant/revoke records in the audit log (op setxattr, process custodyctl, old and
# new ACL text and the command), `custodyctl verify` afterwards, and the errors: unknown group
# (exit 1, one line), bad permission string (exit 2), a path outside the vault, through a symlink,
# under .custody or the vault root (exit 1), each leaving ACLs and the log untouched.
#
# Accounts (created here, removed at exit):
#   acla-owner 3021 (primary acla-users 3120)   owner of the datasets
#   acla-alice 3022 (acla-users, + acla-ml)     role acla-ml
#   acla-bob   3023 (acla-users, + acla-audit)  role acla-audit
#   acla-carol 3024 (primary acla-ml)           role acla-ml through its primary group
#   acla-dave  3025 (primary 100)               no role; a named user entry on /fin
#   admin group acla-admin 3123 (no members)
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools setpriv setfacl getfacl useradd userdel groupadd groupdel getent
T_START=$(date +%s)

ACCT_MARK="custodyfs-it t1120"
GROUPS_PLAN=(acla-users:3120 acla-ml:3121 acla-audit:3122 acla-admin:3123)
USERS_PLAN=(   # name:uid:primary gid:supplementary groups
    acla-owner:3021:3120:
    acla-alice:3022:3120:acla-ml
    acla-bob:3023:3120:acla-audit
    acla-carol:3024:3121:
    acla-dave:3025:100:
)
. "$(dirname "$0")/accounts.sh"
acct_create
# reads_as USER FILE: OK or the errno name of reading FILE as USER
reads_as() {
    as_user "$1" "$PY" -c '
import errno, sys
try:
    open(sys.argv[1], "rb").read(); print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])' "$2" 2>&1
}
ctl() { timeout "$CMD_TIMEOUT" "$CUSTODYCTL" "$@" < /dev/null; }
# ctl_ok DESC ARGS...: custodyctl exits 0; its stdout is left in $CTL_OUT.
ctl_ok() {
    local desc=$1; shift
    CTL_OUT=$(ctl "$@" 2> "$SCRATCH/ctl.err"); local rc=$?
    if [ "$rc" -eq 0 ]; then
        pass "$desc"
    else
        fail "$desc" "custodyctl $* exited $rc" "$(cat "$SCRATCH/ctl.err")"
    fi
}
acl_of() { getfacl -cp "$1" 2>&1; }

KEY=$SCRATCH/key
B=$SCRATCH/backing
M=$SCRATCH/mnt
OUTSIDE=$SCRATCH/outside
new_keyfile "$KEY"
ctl init "$B" --keyfile "$KEY" --admin-group acla-admin > "$SCRATCH/init.out" 2> "$SCRATCH/init.err" \
    || bail "custodyctl init failed: $(cat "$SCRATCH/init.err")"
mkdir -p "$OUTSIDE/dir" && echo "outside the vault" > "$OUTSIDE/file" && echo x > "$OUTSIDE/dir/f"
OUTSIDE_ACL=$(getfacl -Rcp "$OUTSIDE" 2>&1)

mount_vault "$B" "$M" --keyfile "$KEY" || bail "mount failed: $(cat "$SCRATCH/mount.err")"
chmod 0755 "$M" || bail "chmod of the mount root failed"
"$PY" - "$M" "$OUTSIDE" <<'PYEOF' || bail "creating the fixtures failed"
import os, sys
M, OUTSIDE = sys.argv[1], sys.argv[2]
os.umask(0)
made = []
def d(rel, mode):
    os.mkdir(M + rel, mode); made.append(M + rel)
def f(rel, mode, data=b"row,1\n"):
    with open(os.open(M + rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as fh:
        fh.write(data)
    made.append(M + rel)
d("/ml", 0o750); f("/ml/data.csv", 0o600); f("/ml/masked.csv", 0o600)
d("/ml/sub", 0o750); f("/ml/sub/deep.csv", 0o600)
d("/fin", 0o700); f("/fin/x", 0o600)
d("/ops", 0o700); f("/ops/f", 0o600)
f("/readme.txt", 0o644)
os.symlink(OUTSIDE, M + "/ml/escape"); made.append(M + "/ml/escape")
for p in made:
    os.lchown(p, 3021, 3120)
PYEOF
# the owner's own ACL entries, through the mount
as_user acla-owner setfacl -m u:acla-dave:rx "$M/fin" || bail "setfacl on /fin failed"
as_user acla-owner setfacl -m u:acla-dave:r "$M/fin/x" || bail "setfacl on /fin/x failed"
unmount_vault "$M" || bail "unmount failed"

# ---------------------------------------------------------------------------------------------
# grant without a mount: --recursive --default, a plain grant, a non-recursive grant
# ---------------------------------------------------------------------------------------------
ctl_ok "grant ml acla-ml r --recursive --default (unmounted)" grant "$B" ml acla-ml r --recursive --default --keyfile "$KEY"
check_eq "  it says what it did (7 ACLs: 2 directories with access and default ACL, 3 files)" \
    "custodyctl grant acla-ml r: 7 ACLs changed" "$CTL_OUT"
ctl_ok "grant ml acla-audit r (the dataset directory only)" grant "$B" ml acla-audit r --keyfile "$KEY"
check_eq "  1 ACL changed" "custodyctl grant acla-audit r: 1 ACL changed" "$CTL_OUT"
ctl_ok "grant /fin/ acla-ml r (leading and trailing slashes)" grant "$B" /fin/ acla-ml r --keyfile "$KEY"
ctl_ok "grant ops acla-ml rwx --recursive --default" grant "$B" ops acla-ml rwx --recursive --default --keyfile "$KEY"
ctl_ok "granting the same again changes nothing" grant "$B" ml acla-ml r --recursive --default --keyfile "$KEY"
check_eq "  0 ACLs changed" "custodyctl grant acla-ml r: 0 ACLs changed" "$CTL_OUT"
check_eq "the outside directory (reached by the symlink ml/escape) is untouched by --recursive" \
    "$OUTSIDE_ACL" "$(getfacl -Rcp "$OUTSIDE" 2>&1)"

mount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"
as_user acla-owner setfacl -m g:acla-audit:rw,m::r "$M/ml/masked.csv" || bail "setfacl on masked.csv failed"

check_eq "getfacl /ml: access and default ACL" \
"user::rwx
group::r-x
group:acla-ml:r-x
group:acla-audit:r-x
mask::r-x
other::---
default:user::rwx
default:group::r-x
default:group:acla-ml:r-x
default:mask::r-x
default:other::---" "$(acl_of "$M/ml")"
check_eq "getfacl /ml/data.csv: r on a file (no x)" \
"user::rw-
group::---
group:acla-ml:r--
mask::r--
other::---" "$(acl_of "$M/ml/data.csv")"
check_eq "getfacl /ml/sub/deep.csv: --recursive reached two levels down" \
"user::rw-
group::---
group:acla-ml:r--
mask::r--
other::---" "$(acl_of "$M/ml/sub/deep.csv")"
check_match "getfacl /ml/sub: a default ACL too" "default:group:acla-ml:r-x" "$(acl_of "$M/ml/sub")"
check_match "getfacl /fin: the non-recursive grant" "group:acla-ml:r-x" "$(acl_of "$M/fin")"
check_eq "  ... did not reach /fin/x (no --recursive), and gave /fin no default ACL" "0 0" \
    "$(acl_of "$M/fin/x" | grep -c acla-ml) $(acl_of "$M/fin" | grep -c '^default:')"

check_eq "acla-alice (acla-ml) reads /ml/data.csv" OK "$(reads_as acla-alice "$M/ml/data.csv")"
check_eq "acla-carol (acla-ml as primary group) reads /ml/sub/deep.csv" OK "$(reads_as acla-carol "$M/ml/sub/deep.csv")"
check_eq "acla-bob (acla-audit: the directory only) cannot read /ml/data.csv" EACCES "$(reads_as acla-bob "$M/ml/data.csv")"
check_eq "acla-dave (no role) cannot read /ml/data.csv" EACCES "$(reads_as acla-dave "$M/ml/data.csv")"
check_eq "acla-bob reads /ml/masked.csv (rw- under mask r--)" OK "$(reads_as acla-bob "$M/ml/masked.csv")"

# --default: what a member creates inherits the role's entry
as_user acla-alice bash -c 'umask 027; echo "alice,2" > "$1"' _ "$M/ml/sub/new.csv" 2>/dev/null
check_eq "acla-alice (r-x on /ml/sub) cannot create there" "absent" "$([ -e "$M/ml/sub/new.csv" ] && echo present || echo absent)"
as_user acla-owner bash -c 'umask 027; echo "owner,2" > "$1"; mkdir "$2"' _ "$M/ml/sub/new.csv" "$M/ml/sub/newdir" \
    || fail "the owner could not create in /ml/sub"
check_eq "--default: a file the owner creates in /ml/sub inherits the acla-ml entry" \
"user::rw-
group::r-x	#effective:r--
group:acla-ml:r-x	#effective:r--
mask::r--
other::---" "$(acl_of "$M/ml/sub/new.csv")"
check_match "--default: a new directory inherits it as access and default ACL" \
    "group:acla-ml:r-x.*default:group:acla-ml:r-x" "$(acl_of "$M/ml/sub/newdir" | tr '\n' ' ')"
check_eq "acla-carol reads the new file" OK "$(reads_as acla-carol "$M/ml/sub/new.csv")"

# ---------------------------------------------------------------------------------------------
# grant and revoke while mounted: in force at once, and shown through the mount
# ---------------------------------------------------------------------------------------------
check_eq "before: acla-bob cannot read /ml/data.csv" EACCES "$(reads_as acla-bob "$M/ml/data.csv")"
ctl_ok "grant ml/data.csv acla-audit r while mounted" grant "$B" ml/data.csv acla-audit r --keyfile "$KEY"
check_eq "after: acla-bob reads /ml/data.csv" OK "$(reads_as acla-bob "$M/ml/data.csv")"
check_match "getfacl through the mount shows the new entry at once" "group:acla-audit:r--" "$(acl_of "$M/ml/data.csv")"
check "before: acla-alice writes /ops/f" as_user acla-alice bash -c 'echo alice >> "$1"' _ "$M/ops/f"
ctl_ok "revoke ops acla-ml --recursive while mounted" revoke "$B" ops acla-ml --recursive --keyfile "$KEY"
check_eq "  it says what it did (access and default ACL of /ops, the access ACL of /ops/f)" \
    "custodyctl revoke acla-ml: 3 ACLs changed" "$CTL_OUT"
check_eq "after: acla-alice cannot read /ops/f" EACCES "$(reads_as acla-alice "$M/ops/f")"
got=$(as_user acla-alice bash -c 'echo again >> "$1"' _ "$M/ops/f" 2>&1)
check_match "after: acla-alice cannot write /ops/f" "Permission denied" "$got"
got=$(as_user acla-alice ls "$M/ops" 2>&1)
check_match "after: acla-alice cannot list /ops" "Permission denied" "$got"
check_eq "getfacl through the mount: no acla-ml entry left on /ops (access or default) or /ops/f" "0" \
    "$( (acl_of "$M/ops"; acl_of "$M/ops/f") | grep -c acla-ml)"

# ---------------------------------------------------------------------------------------------
# custodyctl access (no key needed; works while mounted)
# ---------------------------------------------------------------------------------------------
access_is() {  # DESC EXPECTED USER PATH
    local out rc
    out=$(ctl access "$B" "$3" "$4" 2>&1); rc=$?
    check_eq "$1" "$2" "$out" || printf '#   exit status %d\n' "$rc"
}
access_is "access: the owner of /ml/masked.csv (decided by owner)" \
"acla-owner (uid 3021) on /ml/masked.csv:
  read     allowed  (decided by owner)
  write    allowed  (decided by owner)
  execute  denied   (decided by owner)" acla-owner ml/masked.csv
access_is "access: acla-alice on /ml/masked.csv (a named group decides)" \
"acla-alice (uid 3022) on /ml/masked.csv:
  read     allowed  (decided by group:3121)
  write    denied   (decided by group)
  execute  denied   (decided by group)" acla-alice ml/masked.csv
access_is "access: acla-bob on /ml/masked.csv (the mask takes write away)" \
"acla-bob (uid 3023) on /ml/masked.csv:
  read     allowed  (decided by group:3122)
  write    denied   (decided by mask)
  execute  denied   (decided by group)" acla-bob ml/masked.csv
access_is "access: by uid, acla-carol (primary group acla-ml) on /ml/sub/deep.csv" \
"acla-carol (uid 3024) on /ml/sub/deep.csv:
  read     allowed  (decided by group:3121)
  write    denied   (decided by group)
  execute  denied   (decided by group)" 3024 /ml/sub/deep.csv
access_is "access: acla-alice on the directory /ml (the owning group decides first)" \
"acla-alice (uid 3022) on /ml:
  read     allowed  (decided by group:3120)
  write    denied   (decided by group)
  execute  allowed  (decided by group:3120)" acla-alice ml
access_is "access: acla-dave cannot reach /ml/data.csv" \
"acla-dave (uid 3025) on /ml/data.csv:
  cannot reach it: Permission denied (search permission on a directory on the way)" acla-dave ml/data.csv
access_is "access: acla-dave on /fin/x (a named user entry)" \
"acla-dave (uid 3025) on /fin/x:
  read     allowed  (decided by user:3025)
  write    denied   (decided by user:3025)
  execute  denied   (decided by user:3025)" acla-dave fin/x
access_is "access: acla-dave on the vault root (other)" \
"acla-dave (uid 3025) on /:
  read     allowed  (decided by other)
  write    denied   (decided by other)
  execute  allowed  (decided by other)" acla-dave /
access_is "access: root on /ml/data.csv" \
"root (uid 0) on /ml/data.csv:
  read     allowed  (decided by root)
  write    allowed  (decided by root)
  execute  denied   (decided by root)" root ml/data.csv
access_is "access: acla-alice on /ops/f after the revoke" \
"acla-alice (uid 3022) on /ops/f:
  cannot reach it: Permission denied (search permission on a directory on the way)" acla-alice ops/f
access_is "access: acla-bob on /ml/data.csv after the grant while mounted" \
"acla-bob (uid 3023) on /ml/data.csv:
  read     allowed  (decided by group:3122)
  write    denied   (decided by group)
  execute  denied   (decided by group)" acla-bob ml/data.csv
out=$(ctl access "$B" no-such-user-t1120 ml 2>&1); rc=$?
check_eq "access: an unknown user: exit 1, one line" "1 1" "$rc $(printf '%s\n' "$out" | wc -l)"
out=$(ctl access "$B" acla-alice ml/no-such-file 2>&1); rc=$?
check_eq "access: a missing path: exit 1" 1 "$rc"

# ---------------------------------------------------------------------------------------------
# custodyctl review
# ---------------------------------------------------------------------------------------------
EXPECT_ML="/ml,group,acla-audit,r-x,named group
/ml,group,acla-ml,r-x,named group
/ml,group,acla-users,r-x,owning group
/ml,other,everyone else,---,other
/ml,user,acla-alice,r-x,group acla-ml
/ml,user,acla-alice,r-x,group acla-users
/ml,user,acla-bob,r-x,group acla-audit
/ml,user,acla-bob,r-x,group acla-users
/ml,user,acla-carol,r-x,group acla-ml
/ml,user,acla-owner,r-x,group acla-users
/ml,user,acla-owner,rwx,owner"
EXPECT_FIN="/fin,group,acla-ml,r-x,named group
/fin,group,acla-users,---,owning group
/fin,other,everyone else,---,other
/fin,user,acla-alice,---,group acla-users
/fin,user,acla-alice,r-x,group acla-ml
/fin,user,acla-bob,---,group acla-users
/fin,user,acla-carol,r-x,group acla-ml
/fin,user,acla-dave,r-x,named user
/fin,user,acla-owner,---,group acla-users
/fin,user,acla-owner,rwx,owner"

ctl_ok "review --format csv" review "$B" --format csv
printf '%s\n' "$CTL_OUT" > "$SCRATCH/review.csv"
ctl_ok "review --format json" review "$B" --format json
printf '%s\n' "$CTL_OUT" > "$SCRATCH/review.jsonl"
ctl_ok "review (table)" review "$B"
printf '%s\n' "$CTL_OUT" > "$SCRATCH/review.txt"
ctl_ok "review --format table" review "$B" --format table
check_eq "  --format table is the default" "$(cat "$SCRATCH/review.txt")" "$CTL_OUT"
rows=$("$PY" - "$SCRATCH/review.csv" "$SCRATCH/review.jsonl" <<'PYEOF'
import csv, json, sys
with open(sys.argv[1], newline="") as f:
    r = list(csv.reader(f))
assert r[0] == ["dataset", "kind", "name", "permissions", "via"], r[0]
c = sorted(tuple(x) for x in r[1:] if x)
j = []
for line in open(sys.argv[2]):
    if line.strip():
        o = json.loads(line)
        assert sorted(o) == ["dataset", "kind", "name", "permissions", "via"], sorted(o)
        j.append((o["dataset"], o["kind"], o["name"], o["permissions"], o["via"]))
j.sort()
assert c == j, "csv and json differ: %r vs %r" % (c, j)
for x in c:
    print(",".join(x))
PYEOF
) 2>&1
check_eq "review: csv and json parse and hold the same rows" 0 "$?" || printf '#   %s\n' "$rows"
check_eq "review: the exact rows of /ml (owner, owning group, two named groups, their members, other)" \
    "$EXPECT_ML" "$(printf '%s\n' "$rows" | grep '^/ml,' | LC_ALL=C sort)"
check_eq "review: the exact rows of /fin (with a named user, permissions under the mask)" \
    "$EXPECT_FIN" "$(printf '%s\n' "$rows" | grep '^/fin,' | LC_ALL=C sort)"
check_eq "review: only the top-level dataset directories (no file, no .custody)" "/fin /ml /ops" \
    "$(printf '%s\n' "$rows" | cut -d, -f1 | LC_ALL=C sort -u | tr '\n' ' ' | sed 's/ $//')"
check_match "review table: a header, then the rows" "^DATASET +KIND +NAME +PERM +VIA" "$(head -1 "$SCRATCH/review.txt")"
check_match "review table: the named group row of /ml" "^/ml +group +acla-ml +r-x +named group$" \
    "$(grep -E '^/ml +group +acla-ml ' "$SCRATCH/review.txt")"
check_eq "review table: as many rows as csv" "$(($(wc -l < "$SCRATCH/review.csv")))" "$(($(wc -l < "$SCRATCH/review.txt")))"
out=$(ctl review "$B" --format xml 2>&1); rc=$?
check_eq "review --format xml: usage error (exit 2)" 2 "$rc"

# ---------------------------------------------------------------------------------------------
# Errors: exit status, one line, nothing changed
# ---------------------------------------------------------------------------------------------
unmount_vault "$M" || bail "unmount failed"
STATE_BEFORE=$( (cd "$B" && getfacl -Rcp ml fin ops 2>&1); getfacl -Rcp "$OUTSIDE" 2>&1; ctl log "$B" --format csv | wc -l)
err_is() {  # DESC STATUS ARGS...: custodyctl ARGS exits STATUS with one line on stderr, no stdout
    local desc=$1 want=$2; shift 2
    local out err rc
    out=$(ctl "$@" 2> "$SCRATCH/err.txt"); rc=$?
    err=$(cat "$SCRATCH/err.txt")
    if [ "$rc" -eq "$want" ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && [ -n "$err" ] && [ -z "$out" ]; then
        pass "$desc"
    else
        fail "$desc" "custodyctl $*" "exit $rc (want $want)" "stderr: $err" "stdout: $out"
    fi
}
err_is "grant to an unknown group: exit 1, one line" 1 grant "$B" ml no-such-group-t1120 r --keyfile "$KEY"
err_is "revoke of an unknown group: exit 1, one line" 1 revoke "$B" ml no-such-group-t1120 --keyfile "$KEY"
for p in rwz "" rr R w- "r w" rwxr; do
    err_is "grant with the permission string '$p': exit 2" 2 grant "$B" ml acla-ml "$p" --keyfile "$KEY"
done
err_is "grant without the permission argument: exit 2" 2 grant "$B" ml acla-ml --keyfile "$KEY"
err_is "grant with an unknown option: exit 2" 2 grant "$B" ml acla-ml r --everything --keyfile "$KEY"
for p in ../outside ml/../../outside "$B/ml" ml/escape/file ml/escape ml/escape/dir no-such-dataset; do
    err_is "grant on '$p' (outside the vault, through a symlink, or missing): exit 1" 1 grant "$B" "$p" acla-ml r --keyfile "$KEY"
done
err_is "grant --recursive through the symlink ml/escape/dir: exit 1" 1 grant "$B" ml/escape/dir acla-ml r --recursive --keyfile "$KEY"
for p in .custody .custody/config /.custody/audit.db ml/../.custody; do
    err_is "grant on '$p' (under .custody): exit 1" 1 grant "$B" "$p" acla-ml r --keyfile "$KEY"
done
for p in / . "" // ml/..; do
    err_is "grant on the vault root '$p': exit 1" 1 grant "$B" "$p" acla-ml r --keyfile "$KEY"
done
err_is "revoke on the vault root: exit 1" 1 revoke "$B" / acla-ml --keyfile "$KEY"
err_is "grant with a wrong key file: exit 1" 1 grant "$B" ml acla-ml r --keyfile "$SCRATCH/init.out"
err_is "grant on a directory that is not a vault: exit 1" 1 grant "$OUTSIDE" dir acla-ml r --keyfile "$KEY"
check_eq "after all the errors: the backing directory still has no ACL entry" "" \
    "$(getfacl -cp "$B" 2>&1 | grep -E '^(default:)?(group|user):[^:]')"
check_eq "after all the errors: BACKING/.custody has no ACL entry" "" \
    "$(getfacl -cp "$B/.custody" 2>&1 | grep -E '^(default:)?(group|user):[^:]')"
got=$(as_user acla-alice ls "$B" 2>&1)
check_match "after all the errors: acla-alice (acla-ml) still cannot list the backing directory" \
    "Permission denied" "$got"
got=$(as_user acla-alice ls "$B/.custody" 2>&1)
check_match "after all the errors: acla-alice cannot list BACKING/.custody" "Permission denied" "$got"
check_eq "after all the errors: no ACL changed (vault and outside) and the log did not grow" \
    "$STATE_BEFORE" "$( (cd "$B" && getfacl -Rcp ml fin ops 2>&1); getfacl -Rcp "$OUTSIDE" 2>&1; ctl log "$B" --format csv | wc -l)"

# revoke without a mount, last
ctl_ok "revoke fin acla-ml (unmounted)" revoke "$B" fin acla-ml --keyfile "$KEY"
check_eq "  /fin has no acla-ml entry now" 0 "$(getfacl -cp "$B/fin" 2>/dev/null | grep -c acla-ml)"
ctl_ok "revoking it again changes nothing" revoke "$B" fin acla-ml --keyfile "$KEY"
check_eq "  0 ACLs changed" "custodyctl revoke acla-ml: 0 ACLs changed" "$CTL_OUT"

# ---------------------------------------------------------------------------------------------
# The audit log: the grants and revokes with old and new ACL text
# ---------------------------------------------------------------------------------------------
ctl log "$B" --format json > "$SCRATCH/log.jsonl" 2> "$SCRATCH/log.err" || fail "custodyctl log failed" "$(cat "$SCRATCH/log.err")"
report() {
    local kind desc detail n=0
    while IFS=$'\t' read -r kind desc detail; do
        case $kind in
            PASS) pass "$desc"; n=$((n + 1)) ;;
            FAIL) fail "$desc" "$detail"; n=$((n + 1)) ;;
            *) printf '# %s %s %s\n' "$kind" "$desc" "$detail" ;;
        esac
    done
    [ "$n" -gt 0 ] || fail "the checker reported nothing"
}
report < <("$PY" - "$SCRATCH/log.jsonl" "$CUSTODYCTL" <<'PYEOF' 2>&1 | awk -F'\t' '/^(PASS|FAIL)\t/ { print; next } { print "FAIL\tlog checker: " $0 }'
import json, os, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
ctl = os.path.realpath(sys.argv[2])

def say(ok, desc, detail=""):
    print("%s\t%s\t%s" % ("PASS" if ok else "FAIL", desc, detail.replace("\t", " ").replace("\n", " | ")))

say([r["seq"] for r in recs] == list(range(1, len(recs) + 1)), "log: seq runs 1..N without gaps")
mine = [r for r in recs if r["process"] == "custodyctl"]
say(mine and all(r["op"] == "setxattr" and r["uid"] == 0 and r["user"] == "root" and r["result"] == "ok"
                 and r["exe"] == ctl and r["pid"] > 0 for r in mine),
    "log: every custodyctl record is a setxattr by root, ok, with its pid and exe",
    repr([(r["op"], r["uid"], r["exe"]) for r in mine][:5]))

def want(path, detail, desc):
    hits = [r for r in mine if r["path"] == path and r["detail"] == detail]
    near = [r["detail"] for r in mine if r["path"] == path]
    say(len(hits) == 1, desc, "want %r; records for %s: %r" % (detail, path, near))

G = "(custodyctl grant acla-ml r)"
want("/ml", "name=system.posix_acl_access old=u::rwx,g::r-x,o::--- "
     "new=u::rwx,g::r-x,g:acla-ml:r-x,m::r-x,o::--- " + G,
     "log: grant --recursive --default: /ml access ACL, old and new")
want("/ml", "name=system.posix_acl_default old=- new=u::rwx,g::r-x,g:acla-ml:r-x,m::r-x,o::--- " + G,
     "log: grant --default: /ml default ACL (old '-')")
want("/ml/data.csv", "name=system.posix_acl_access old=u::rw-,g::---,o::--- "
     "new=u::rw-,g::---,g:acla-ml:r--,m::r--,o::--- " + G, "log: grant --recursive: /ml/data.csv")
want("/ml/sub/deep.csv", "name=system.posix_acl_access old=u::rw-,g::---,o::--- "
     "new=u::rw-,g::---,g:acla-ml:r--,m::r--,o::--- " + G, "log: grant --recursive: /ml/sub/deep.csv")
want("/ml/data.csv", "name=system.posix_acl_access old=u::rw-,g::---,g:acla-ml:r--,m::r--,o::--- "
     "new=u::rw-,g::---,g:acla-ml:r--,g:acla-audit:r--,m::r--,o::--- (custodyctl grant acla-audit r)",
     "log: the grant while mounted")
want("/fin", "name=system.posix_acl_access old=u::rwx,u:acla-dave:r-x,g::---,m::r-x,o::--- "
     "new=u::rwx,u:acla-dave:r-x,g::---,g:acla-ml:r-x,m::r-x,o::--- " + G,
     "log: grant on /fin/ (normalised to /fin)")
want("/fin", "name=system.posix_acl_access old=u::rwx,u:acla-dave:r-x,g::---,g:acla-ml:r-x,m::r-x,o::--- "
     "new=u::rwx,u:acla-dave:r-x,g::---,m::r-x,o::--- (custodyctl revoke acla-ml)",
     "log: the revoke without a mount")
rv = [r for r in mine if r["detail"].endswith("(custodyctl revoke acla-ml)") and r["path"].startswith("/ops")]
say(sorted((r["path"], r["detail"].split()[0]) for r in rv) ==
    [("/ops", "name=system.posix_acl_access"), ("/ops", "name=system.posix_acl_default"),
     ("/ops/f", "name=system.posix_acl_access")]
    and all("g:acla-ml:rwx" in r["detail"].split(" new=")[0] and "acla-ml" not in r["detail"].split(" new=")[1].replace("(custodyctl revoke acla-ml)", "")
            for r in rv),
    "log: the revoke --recursive while mounted: 3 records, acla-ml in old, not in new",
    repr([(r["path"], r["detail"]) for r in rv]))
bad = [(r["path"], r["detail"]) for r in mine if "escape" in (r["path"] or "")
       or ".custody" in (r["path"] or "") or ".." in (r["path"] or "")
       or r["path"] in ("/", "", "/.")]
say(not bad, "log: no ACL change recorded for any of the refused paths", repr(bad))
PYEOF
)
out=$(ctl verify "$B" 2>&1)
check_eq "custodyctl verify passes after grants and revokes with and without a mount" 0 "$?" || printf '#   %s\n' "$out"
printf '# run time: %ds\n' "$(( $(date +%s) - T_START ))"
done_testing
