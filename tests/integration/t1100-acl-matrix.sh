#!/bin/bash
# Access-control matrix: roles are POSIX groups, permissions are POSIX ACL entries granted with
# `custodyctl grant`, and custodyfs (allow_other, no default_permissions) decides every request
# itself.  Six throwaway accounts (created here with useradd/groupadd, removed at exit):
#
#   own  aclm-own  3001  owner of the dataset and of every fixture (also in aclm-audit)
#   rd   aclm-rd   3002  role aclm-read  (r on the dataset, recursive + default)
#   wr   aclm-wr   3003  role aclm-write (rw on the dataset, recursive + default)
#   aud  aclm-aud  3004  role aclm-audit (r on the dataset directory only; rw on masked.csv
#                        under a mask of r--)
#   adm  aclm-adm  3005  role aclm-admin: the vault's --admin-group (r on the dataset dir only)
#   out  aclm-out  3006  nobody: primary group 100, no role
#
# For each user and each operation (open read/write, O_TRUNC, truncate, create, unlink, rename,
# link, symlink, mkdir, rmdir, readdir, chmod, chown, chgrp, utimens now / explicit (and
# touch(1), touch -d), setxattr/getxattr user.*, the ACL xattrs, setfacl(1)/getfacl(1), the mask,
# sticky removal) the result must be what POSIX.1e says (OK, EACCES or EPERM), with the effect
# (or no effect) checked as root afterwards.  Also: default-ACL inheritance (getfacl of what a
# role member creates), the '+' of ls -l, ACLs refused on the mount root, the backing directory
# staying 0700.  After unmounting, every denial must be in the audit log with its op, path,
# path2, uid and result, and the admin's chmod/chown/ACL changes must carry old and new values.
#
# To reach the daemon's own checks (and not be refused at lookup, which leaves no record), root
# looks up each path just before a user's request, so that the kernel has the dentries cached;
# a separate check covers a denial at a cold lookup.
. "$(dirname "$0")/lib.sh"
standard_prereqs
require_tools setpriv setfacl getfacl useradd userdel groupadd groupdel getent touch
T_START=$(date +%s)

# ---------------------------------------------------------------------------------------------
# Accounts (only these are created, and only the ones created are removed)
# ---------------------------------------------------------------------------------------------
ACCT_MARK="custodyfs-it t1100"
GROUPS_PLAN=(aclm-users:3100 aclm-read:3101 aclm-write:3102 aclm-audit:3103 aclm-admin:3104)
# key:name:uid:primary gid:supplementary groups
USERS_PLAN=(
    own:aclm-own:3001:3100:aclm-audit
    rd:aclm-rd:3002:3100:aclm-read
    wr:aclm-wr:3003:3100:aclm-write
    aud:aclm-aud:3004:3100:aclm-audit
    adm:aclm-adm:3005:3100:aclm-admin
    out:aclm-out:3006:100:
)
ACCT_KEYED=1
. "$(dirname "$0")/accounts.sh"
acct_create

# ---------------------------------------------------------------------------------------------
# Vault with an admin group, the dataset created as root, then the grants (without a mount)
# ---------------------------------------------------------------------------------------------
KEY=$SCRATCH/key
B=$SCRATCH/backing
M=$SCRATCH/mnt
new_keyfile "$KEY"
timeout "$CMD_TIMEOUT" "$CUSTODYCTL" init "$B" --keyfile "$KEY" --admin-group aclm-admin \
    > "$SCRATCH/init.out" 2> "$SCRATCH/init.err" < /dev/null \
    || bail "custodyctl init --admin-group failed: $(cat "$SCRATCH/init.err")"
check_match "custodyctl info shows the admin group 3104" "admin-group +3104" "$("$CUSTODYCTL" info "$B" 2>&1)"
mount_vault "$B" "$M" --keyfile "$KEY" || bail "mount failed: $(cat "$SCRATCH/mount.err")"

check "chmod 0755 of the mount root (as root)" chmod 0755 "$M"
check_eq "the mount root shows 0755 root:root" "755 0:0" "$(stat -c '%a %u:%g' "$M")"
check_eq "the backing directory stays 0700 root:root" "700 0:0" "$(stat -c '%a %u:%g' "$B")"

USERS_JSON=$("$PY" - "${USERS_PLAN[@]}" <<'PYEOF'
import grp, json, os, sys
out = {}
for spec in sys.argv[1:]:
    key, name, uid, pg, sup = spec.split(":")
    out[key] = dict(name=name, uid=int(uid), gid=int(pg),
                    groups=sorted(os.getgrouplist(name, int(pg))))
print(json.dumps(out))
PYEOF
) || bail "cannot read the accounts back"

# The fixtures: everything owned by aclm-own:aclm-users, files 0600, directories 0700.
cat > "$SCRATCH/setup.py" <<'PYEOF'
import json, os, sys
M, users = sys.argv[1], json.loads(sys.argv[2])
os.umask(0)
D = M + "/ds"
OWN = users["own"]["uid"]
made = []
def mkfile(rel, data=b"fixture\n"):
    p = D + "/" + rel
    with open(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(data)
    made.append(p)
def mkdir(rel):
    os.mkdir(D + "/" + rel, 0o700)
    made.append(D + "/" + rel)
os.mkdir(D, 0o700)
made.append(D)
mkfile("data.csv", os.urandom(10000))
mkfile("masked.csv", b"masked,data\n" * 100)
mkfile("cold.csv", b"never looked up before the check\n")
mkdir("ownonly")
mkdir("sticky")
for k in users:
    for pre in ("t", "u", "r", "m", "o", "g", "g2", "tm", "td", "tmc", "tdc", "x", "a", "ac"):
        mkfile("%s-%s" % (pre, k))
    mkdir("rd-" + k)
    with open(os.open("%s/sticky/f-%s" % (D, k), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
        f.write(b"sticky\n")
    made.append("%s/sticky/f-%s" % (D, k))
os.setxattr(D + "/data.csv", "user.label", b"training-data")
for p in made:
    os.chown(p, OWN, 3100)
print(len(made))
PYEOF
n=$("$PY" "$SCRATCH/setup.py" "$M" "$USERS_JSON" 2>&1) || bail "creating the fixtures failed: $n"
DATA_SHA=$(sha "$M/ds/data.csv")
MASKED_SHA=$(sha "$M/ds/masked.csv")
unmount_vault "$M" || bail "unmount failed"

grant() {
    local out rc
    out=$(timeout "$CMD_TIMEOUT" "$CUSTODYCTL" grant "$B" "$@" --keyfile "$KEY" 2>&1 < /dev/null); rc=$?
    check_eq "custodyctl grant $*: exit 0" 0 "$rc" || printf '#   %s\n' "$out"
}
grant ds aclm-read r --recursive --default
grant ds aclm-write rw --recursive --default
grant ds aclm-audit r
grant ds aclm-admin r

mount_vault "$B" "$M" --keyfile "$KEY" || bail "remount failed: $(cat "$SCRATCH/mount.err")"

# ---------------------------------------------------------------------------------------------
# A denial at a cold lookup: nothing has looked up /ds/cold.csv in this mount yet
# ---------------------------------------------------------------------------------------------
cold=$(as_user aclm-out "$PY" -c '
import errno, os, sys
try:
    open(sys.argv[1], "rb").read(); print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])' "$M/ds/cold.csv" 2>&1)
check_eq "cold cache: aclm-out (no search on /ds) cannot open /ds/cold.csv (EACCES)" EACCES "$cold"

# ---------------------------------------------------------------------------------------------
# The rest of the set-up, through the mount: as root and as the owner
# ---------------------------------------------------------------------------------------------
check "root: setfacl -b on /ds/ownonly (removexattr of both ACLs)" setfacl -b "$M/ds/ownonly"
check "root: chmod 0711 /ds/ownonly" chmod 0711 "$M/ds/ownonly"
check_eq "/ds/ownonly: no ACL left, 0711" "drwx--x--x" "$(stat -c %A "$M/ds/ownonly")"
check "root: chmod 1770 /ds/sticky" chmod 1770 "$M/ds/sticky"
check "the owner sets a named entry under a mask on /ds/masked.csv (setfacl -m g:aclm-audit:rw,m::r)" \
    as_user aclm-own setfacl -m g:aclm-audit:rw,m::r "$M/ds/masked.csv"

acl_of() { getfacl -cp "$1" 2>&1; }
check_eq "getfacl /ds (as root): the grants, access and default" \
"user::rwx
group::---
group:aclm-read:r-x
group:aclm-write:rwx
group:aclm-audit:r-x
group:aclm-admin:r-x
mask::rwx
other::---
default:user::rwx
default:group::---
default:group:aclm-read:r-x
default:group:aclm-write:rwx
default:mask::rwx
default:other::---" "$(acl_of "$M/ds")"
check_eq "getfacl /ds/data.csv: the recursive grants on a file (r on a file has no x)" \
"user::rw-
group::---
group:aclm-read:r--
group:aclm-write:rw-
mask::rw-
other::---" "$(acl_of "$M/ds/data.csv")"
check_eq "getfacl /ds/masked.csv: the named group limited by the mask" \
"user::rw-
group::---
group:aclm-read:r--
group:aclm-write:rw-	#effective:r--
group:aclm-audit:rw-	#effective:r--
mask::r--
other::---" "$(acl_of "$M/ds/masked.csv")"
check_match "ls -l shows '+' on a file with an ACL" '^-rw-rw----\+ ' "$(ls -l "$M/ds/data.csv" 2>&1)"
check_match "ls -ld shows '+' on a directory with an ACL" '^drwxrwx---\+ ' "$(ls -ld "$M/ds" 2>&1)"
check_match "ls -ld shows no '+' once the ACL is removed" '^drwx--x--x ' "$(ls -ld "$M/ds/ownonly" 2>&1)"
check_eq "the backing file carries the same ACL (libacl on the backing directory)" \
    "$(acl_of "$M/ds/data.csv")" "$(acl_of "$B/ds/data.csv")"

got=$(setfacl -m g:aclm-read:rx "$M" 2>&1); rc=$?
check_match "setfacl on the mount root is refused (EOPNOTSUPP)" "Operation not supported" "rc=$rc $got"
got=$("$PY" -c 'import os,sys,struct
b = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, 0xFFFFFFFF) for t, p in ((1, 7), (4, 5), (32, 5)))
try:
    os.setxattr(sys.argv[1], "system.posix_acl_default", b); print("OK")
except OSError as e:
    import errno; print("EOPNOTSUPP" if e.errno == errno.EOPNOTSUPP else errno.errorcode[e.errno])' "$M" 2>&1)
check_eq "a default ACL on the mount root is refused too (EOPNOTSUPP)" EOPNOTSUPP "$got"
check_eq "the backing directory is still 0700 root:root with no ACL" "700 0:0 none" \
    "$(stat -c '%a %u:%g' "$B") $(getfacl -cp "$B" 2>/dev/null | grep -q '^group:[^:]' && echo acl || echo none)"

# ---------------------------------------------------------------------------------------------
# The matrix
# ---------------------------------------------------------------------------------------------
report() {
    local kind desc detail n=0
    while IFS=$'\t' read -r kind desc detail; do
        case $kind in
            PASS) pass "$desc"; n=$((n + 1)) ;;
            FAIL) fail "$desc" "$detail"; n=$((n + 1)) ;;
            NOTE) printf '# note: %s\n' "$desc" ;;
            *) printf '# %s %s %s\n' "$kind" "$desc" "$detail" ;;
        esac
    done
    [ "$n" -gt 0 ] || fail "the checker reported nothing"
}

cat > "$SCRATCH/matrix.py" <<'PYEOF'
import errno, json, os, stat, struct, subprocess, sys, time

M, users, DENIALS = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
ORDER = ["own", "rd", "wr", "aud", "adm", "out"]
D = "/ds"
G = dict(users=3100, read=3101, write=3102, audit=3103, admin=3104)

def say(kind, desc, detail=""):
    print("%s\t%s\t%s" % (kind, desc, detail.replace("\t", " ").replace("\n", " | ")), flush=True)

def ename(e):
    if e.errno == errno.EOPNOTSUPP:
        return "EOPNOTSUPP"
    return errno.errorcode.get(e.errno, str(e.errno))

def run_as(key, fn, umask=0o007):
    """fn() as user `key` (its uid, gid and groups) in a forked child: OK, an errno name,
    or what a command's failure said."""
    u = users[key]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups(u["groups"])
            os.setresgid(u["gid"], u["gid"], u["gid"])
            os.setresuid(u["uid"], u["uid"], u["uid"])
            os.umask(umask)
            res = fn()
            out = str(res) if isinstance(res, CmdErr) else "OK"
        except OSError as e:
            out = ename(e)
        except BaseException as e:
            out = "EXCEPTION %r" % (e,)
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        b = os.read(r, 4096)
        if not b:
            break
        data += b
    os.close(r)
    os.waitpid(pid, 0)
    return data.decode()

class CmdErr(str):
    """What a failing command said, as an errno name where its message is clear."""

def cmd(*argv):
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    if r.returncode == 0:
        return None
    for word, name in (("Permission denied", "EACCES"), ("Operation not permitted", "EPERM"),
                       ("Operation not supported", "EOPNOTSUPP"), ("No such file", "ENOENT")):
        if word in r.stderr:
            return CmdErr(name)
    return CmdErr("FAILED(rc=%d: %s)" % (r.returncode, r.stderr.strip()))

TAG = dict(u=0x01, U=0x02, g=0x04, G=0x08, m=0x10, o=0x20)
def acl_blob(entries):
    """The system.posix_acl_* xattr value for entries (tag, id or None, perm bits)."""
    entries = sorted(entries, key=lambda e: (TAG[e[0]], -1 if e[1] is None else e[1]))
    return struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", TAG[t], p, 0xFFFFFFFF if q is None else q) for t, q, p in entries)

def acl_parse(blob):
    out = []
    for i in range(4, len(blob), 8):
        t, p, q = struct.unpack("<HHI", blob[i:i + 8])
        out.append((t, q, p))
    return out

NEW_ACL = acl_blob([("u", None, 6), ("g", None, 0), ("G", G["read"], 4), ("G", G["write"], 6),
                    ("G", G["audit"], 4), ("m", None, 6), ("o", None, 0)])

def p(rel):
    return M + rel

def newdir(k):
    """Where user k makes new names: the dataset, or (for the outsider, who cannot search the
    dataset: its lookup of a new name there would fail before any request) the mount root."""
    return "" if k == "out" else D

def own_group_not_member(k):
    return {"own": G["read"], "rd": G["write"], "wr": G["read"], "aud": G["read"],
            "adm": G["read"], "out": G["read"]}[k]

def chgrp_target(k):
    return {"own": G["audit"], "rd": G["read"], "wr": G["write"], "aud": G["audit"],
            "adm": G["admin"], "out": 100}[k]

def read_open(path):
    def f():
        with open(path, "rb") as fh:
            fh.read(4096)
    return f

def open_flags(path, flags):
    def f():
        os.close(os.open(path, flags))
    return f

def create(path):
    def f():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o660))
    return f

# (name, description, fn(k), expected "own rd wr aud adm out", audit(k) -> (ops, path, path2))
# O = OK, A = EACCES, P = EPERM, F = fails (a command's message is not precise)
OPS = [
    ("read", "open O_RDONLY + read /ds/data.csv",
     lambda k: read_open(p(D + "/data.csv")), "O O O A A A",
     lambda k: (["open"], D + "/data.csv", None)),
    ("write", "open O_WRONLY /ds/data.csv",
     lambda k: open_flags(p(D + "/data.csv"), os.O_WRONLY), "O A O A A A",
     lambda k: (["open"], D + "/data.csv", None)),
    ("o_trunc", "open O_WRONLY|O_TRUNC /ds/t-USER",
     lambda k: open_flags(p(D + "/t-" + k), os.O_WRONLY | os.O_TRUNC), "O A O A A A",
     lambda k: (["open", "truncate"], D + "/t-" + k, None)),
    ("rdonly_trunc", "open O_RDONLY|O_TRUNC /ds/data.csv (O_TRUNC needs write)",
     lambda k: open_flags(p(D + "/data.csv"), os.O_RDONLY | os.O_TRUNC), "- A - A A A",
     lambda k: (["open", "truncate"], D + "/data.csv", None)),
    ("truncate", "truncate(2) /ds/t-USER to 3 bytes",
     lambda k: (lambda: os.truncate(p(D + "/t-" + k), 3)), "O A O A A A",
     lambda k: (["truncate"], D + "/t-" + k, None)),
    ("create", "create (O_CREAT|O_EXCL, 0660) DIR/new-USER",
     lambda k: create(p(newdir(k) + "/new-" + k)), "O A O A A A",
     lambda k: (["create"], newdir(k) + "/new-" + k, None)),
    ("unlink", "unlink /ds/u-USER",
     lambda k: (lambda: os.unlink(p(D + "/u-" + k))), "O A O A A A",
     lambda k: (["unlink"], D + "/u-" + k, None)),
    ("rename", "rename /ds/r-USER -> DIR/r-USER.moved",
     lambda k: (lambda: os.rename(p(D + "/r-" + k), p(newdir(k) + "/r-%s.moved" % k))),
     "O A O A A A", lambda k: (["rename"], D + "/r-" + k, newdir(k) + "/r-%s.moved" % k)),
    ("link", "link /ds/data.csv -> DIR/l-USER",
     lambda k: (lambda: os.link(p(D + "/data.csv"), p(newdir(k) + "/l-" + k))), "O A O A A A",
     lambda k: (["link"], D + "/data.csv", newdir(k) + "/l-" + k)),
    ("symlink", "symlink DIR/s-USER -> data.csv",
     lambda k: (lambda: os.symlink("data.csv", p(newdir(k) + "/s-" + k))), "O A O A A A",
     lambda k: (["symlink"], newdir(k) + "/s-" + k, "data.csv")),
    ("mkdir", "mkdir DIR/d-USER",
     lambda k: (lambda: os.mkdir(p(newdir(k) + "/d-" + k), 0o770)), "O A O A A A",
     lambda k: (["mkdir"], newdir(k) + "/d-" + k, None)),
    ("rmdir", "rmdir /ds/rd-USER",
     lambda k: (lambda: os.rmdir(p(D + "/rd-" + k))), "O A O A A A",
     lambda k: (["rmdir"], D + "/rd-" + k, None)),
    ("readdir", "readdir /ds",
     lambda k: (lambda: os.listdir(p(D))), "O O O O O A",
     lambda k: (["readdir"], D, None)),
    ("readdir_0711", "readdir /ds/ownonly (0711, no ACL)",
     lambda k: (lambda: os.listdir(p(D + "/ownonly"))), "O A A A A A",
     lambda k: (["readdir"], D + "/ownonly", None)),
    ("chmod", "chmod 0640 /ds/m-USER (owned by aclm-own)",
     lambda k: (lambda: os.chmod(p(D + "/m-" + k), 0o640)), "O P P P O A",
     lambda k: (["chmod"], D + "/m-" + k, None)),
    ("chown", "chown /ds/o-USER to aclm-rd (3002)",
     lambda k: (lambda: os.chown(p(D + "/o-" + k), 3002, -1)), "P P P P O A",
     lambda k: (["chown", "lookup"], D + "/o-" + k, None)),
    ("chgrp", "chgrp /ds/g-USER to a group of the caller's",
     lambda k: (lambda: os.chown(p(D + "/g-" + k), -1, chgrp_target(k))), "O P P P O A",
     lambda k: (["chown", "lookup"], D + "/g-" + k, None)),
    ("chgrp_other", "chgrp /ds/g2-USER to a group the caller is not in",
     lambda k: (lambda: os.chown(p(D + "/g2-" + k), -1, own_group_not_member(k))), "P P P P O A",
     lambda k: (["chown", "lookup"], D + "/g2-" + k, None)),
    ("utime_now", "utimensat(NULL) /ds/tm-USER (both times now: owner or write access)",
     lambda k: (lambda: os.utime(p(D + "/tm-" + k), None)), "O A O A O A",
     lambda k: (["utimens"], D + "/tm-" + k, None)),
    ("utime_set", "utimensat(explicit times) /ds/td-USER (owner only)",
     lambda k: (lambda: os.utime(p(D + "/td-" + k), (1000000000, 1000000000))), "O P P P O A",
     lambda k: (["utimens"], D + "/td-" + k, None)),
    ("touch", "touch(1) /ds/tmc-USER",
     lambda k: (lambda: cmd("touch", p(D + "/tmc-" + k))), "O F O F O F",
     lambda k: (["utimens"], D + "/tmc-" + k, None)),
    ("touch_d", "touch -d @1000000000 /ds/tdc-USER",
     lambda k: (lambda: cmd("touch", "-d", "@1000000000", p(D + "/tdc-" + k))), "O F F F O F",
     lambda k: (["utimens"], D + "/tdc-" + k, None)),
    ("setxattr", "setxattr user.tag /ds/x-USER (write access)",
     lambda k: (lambda: os.setxattr(p(D + "/x-" + k), "user.tag", b"v")), "O A O A A A",
     lambda k: (["setxattr"], D + "/x-" + k, None)),
    ("getxattr", "getxattr user.label /ds/data.csv (read access)",
     lambda k: (lambda: os.getxattr(p(D + "/data.csv"), "user.label")), "O O O A A A",
     lambda k: (["getxattr"], D + "/data.csv", None)),
    ("set_acl", "setxattr system.posix_acl_access /ds/a-USER (owner or admin)",
     lambda k: (lambda: os.setxattr(p(D + "/a-" + k), "system.posix_acl_access", NEW_ACL)),
     "O K K K K F", lambda k: (["setxattr"], D + "/a-" + k, None)),
    ("get_acl", "getxattr system.posix_acl_access /ds/data.csv (search on the path only)",
     lambda k: (lambda: os.getxattr(p(D + "/data.csv"), "system.posix_acl_access")), "O O O O O A",
     lambda k: (["getxattr"], D + "/data.csv", None)),
    ("setfacl", "setfacl -m g:aclm-audit:r /ds/ac-USER",
     lambda k: (lambda: cmd("setfacl", "-m", "g:aclm-audit:r", p(D + "/ac-" + k))), "O K K K K F",
     lambda k: (["setxattr", "getxattr"], D + "/ac-" + k, None)),
    ("getfacl", "getfacl /ds/data.csv",
     lambda k: (lambda: cmd("getfacl", p(D + "/data.csv"))), "O O O O O A",
     lambda k: (["getxattr"], D + "/data.csv", None)),
    ("read_masked", "read /ds/masked.csv (named group rw- under mask r--)",
     lambda k: read_open(p(D + "/masked.csv")), "O O O O A A",
     lambda k: (["open"], D + "/masked.csv", None)),
    ("write_masked", "open O_WRONLY /ds/masked.csv (the mask takes w away)",
     lambda k: open_flags(p(D + "/masked.csv"), os.O_WRONLY), "O A A A A A",
     lambda k: (["open"], D + "/masked.csv", None)),
    ("sticky_unlink", "unlink /ds/sticky/f-USER (sticky 1770 dir of aclm-own)",
     lambda k: (lambda: os.unlink(p(D + "/sticky/f-" + k))), "O A P A A A",
     lambda k: (["unlink"], D + "/sticky/f-" + k, None)),
]
# K: EPERM from the kernel itself, before the request reaches custodyfs (Linux lets only a file's
# owner, or a process with CAP_FOWNER, write its ACL): not in the audit log.  Admins change other
# users' ACLs with custodyctl grant/revoke, which t1120 covers.
CODE = dict(O="OK", A="EACCES", P="EPERM", K="EPERM")

def prime(k, path, path2):
    """As root, look up the paths a request names, so that the user's request reaches the
    daemon instead of a lookup refused for lack of search permission."""
    for q in (path, path2):
        if q and q.startswith("/"):
            try:
                os.lstat(p(q))
            except OSError:
                pass

denials = []
results = {}
for name, desc, mk, expect, audit in OPS:
    exp = dict(zip(ORDER, expect.split()))
    for k in ORDER:
        if exp[k] == "-":
            continue
        ops, path, path2 = audit(k)
        prime(k, path, path2)
        got = run_as(k, mk(k))
        results[(name, k)] = got
        want = exp[k]
        who = "%s (uid %d)" % (users[k]["name"], users[k]["uid"])
        if want == "F":
            ok = got != "OK"
            wdesc = "fails"
        else:
            ok = got == CODE[want]
            wdesc = CODE[want]
        desc_k = "%s: %s -> %s" % (who, desc.replace("USER", k).replace(
            "DIR", newdir(k) or "(root)"), wdesc)
        say("PASS" if ok else "FAIL", desc_k, "got %s" % got)
        if want in ("A", "P") and name not in ("touch", "touch_d"):
            denials.append(dict(test=name, user=k, uid=users[k]["uid"], ops=ops, path=path,
                                path2=path2, result=CODE[want],
                                desc=desc_k))

# ---- effects, checked as root: what was allowed happened, what was denied did not
def exists(rel):
    return os.path.lexists(p(rel))

def allowed(name, k):
    return results.get((name, k)) == "OK"


def eff(desc, ok, detail=""):
    say("PASS" if ok else "FAIL", "effect: " + desc, detail)

for k in ORDER:
    who = users[k]["name"]
    a = lambda n: allowed(n, k)
    eff("%s: /ds/t-%s has 3 bytes iff truncate was allowed, else its 8" % (who, k),
        os.stat(p(D + "/t-" + k)).st_size == (3 if a("truncate") else 0 if a("o_trunc") else 8),
        "size %d" % os.stat(p(D + "/t-" + k)).st_size)
    eff("%s: new-%s exists iff create was allowed" % (who, k),
        exists(newdir(k) + "/new-" + k) == a("create"))
    eff("%s: /ds/u-%s is gone iff unlink was allowed" % (who, k), exists(D + "/u-" + k) != a("unlink"))
    eff("%s: /ds/r-%s moved iff rename was allowed" % (who, k),
        exists(D + "/r-" + k) != a("rename") and exists(newdir(k) + "/r-%s.moved" % k) == a("rename"))
    eff("%s: l-%s exists iff link was allowed" % (who, k), exists(newdir(k) + "/l-" + k) == a("link"))
    eff("%s: s-%s exists iff symlink was allowed" % (who, k), exists(newdir(k) + "/s-" + k) == a("symlink"))
    eff("%s: d-%s exists iff mkdir was allowed" % (who, k), exists(newdir(k) + "/d-" + k) == a("mkdir"))
    eff("%s: /ds/rd-%s is gone iff rmdir was allowed" % (who, k), exists(D + "/rd-" + k) != a("rmdir"))
    mode = stat.S_IMODE(os.stat(p(D + "/m-" + k)).st_mode)
    eff("%s: /ds/m-%s is 0640 iff chmod was allowed, else 0660" % (who, k),
        mode == (0o640 if a("chmod") else 0o660), "mode %04o" % mode)
    st = os.stat(p(D + "/o-" + k))
    eff("%s: /ds/o-%s belongs to 3002 iff chown was allowed" % (who, k),
        (st.st_uid == 3002) == a("chown") and st.st_gid == 3100, "%d:%d" % (st.st_uid, st.st_gid))
    st = os.stat(p(D + "/g-" + k))
    eff("%s: /ds/g-%s has the new group iff chgrp was allowed" % (who, k),
        (st.st_gid == chgrp_target(k)) == a("chgrp") and st.st_uid == users["own"]["uid"],
        "%d:%d" % (st.st_uid, st.st_gid))
    st = os.stat(p(D + "/g2-" + k))
    eff("%s: /ds/g2-%s changed group iff allowed" % (who, k),
        (st.st_gid == own_group_not_member(k)) == a("chgrp_other"), "%d:%d" % (st.st_uid, st.st_gid))
    for f, n in (("td", "utime_set"), ("tdc", "touch_d")):
        st = os.stat(p(D + "/%s-%s" % (f, k)))
        eff("%s: /ds/%s-%s has mtime 1000000000 iff %s was allowed" % (who, f, k, n),
            (int(st.st_mtime) == 1000000000) == a(n), "mtime %d" % st.st_mtime)
    has = "user.tag" in os.listxattr(p(D + "/x-" + k))
    eff("%s: /ds/x-%s has user.tag iff setxattr was allowed" % (who, k), has == a("setxattr"))
    ents = acl_parse(os.getxattr(p(D + "/a-" + k), "system.posix_acl_access"))
    eff("%s: /ds/a-%s has an aclm-audit entry iff the ACL write was allowed" % (who, k),
        any(t == 0x08 and q == G["audit"] for t, q, _ in ents) == a("set_acl"), repr(ents))
    ents = acl_parse(os.getxattr(p(D + "/ac-" + k), "system.posix_acl_access"))
    eff("%s: /ds/ac-%s has an aclm-audit entry iff setfacl was allowed" % (who, k),
        any(t == 0x08 and q == G["audit"] for t, q, _ in ents) == a("setfacl"), repr(ents))
    eff("%s: /ds/sticky/f-%s is gone iff unlink was allowed" % (who, k),
        exists(D + "/sticky/f-" + k) != a("sticky_unlink"))

with open(DENIALS, "w") as f:
    for d in denials:
        f.write(json.dumps(d) + "\n")
say("NOTE", "%d denials expected in the audit log" % len(denials))
PYEOF
"$PY" "$SCRATCH/matrix.py" "$M" "$USERS_JSON" "$SCRATCH/denials.jsonl" > "$SCRATCH/matrix.out" 2>&1
rc=$?
report < <(grep -P '^(PASS|FAIL|NOTE)\t' "$SCRATCH/matrix.out")
check_eq "the matrix driver ran to its end" 0 "$rc" || sed -e 's/^/#   /' "$SCRATCH/matrix.out" | grep -vP '^#   (PASS|FAIL|NOTE)\t' | head -30

check_eq "nobody changed /ds/data.csv" "$DATA_SHA" "$(sha "$M/ds/data.csv")"
check_eq "nobody changed /ds/masked.csv" "$MASKED_SHA" "$(sha "$M/ds/masked.csv")"

# ---------------------------------------------------------------------------------------------
# Default ACL inheritance: what a role member creates in the dataset
# ---------------------------------------------------------------------------------------------
check_eq "aclm-wr's new file (0660) belongs to aclm-wr:aclm-users" "3003:3100 660" \
    "$(stat -c '%u:%g %a' "$M/ds/new-wr" 2>&1)"
check_eq "it inherited the dataset's default ACL (getfacl)" \
"user::rw-
group::---
group:aclm-read:r-x	#effective:r--
group:aclm-write:rwx	#effective:rw-
mask::rw-
other::---" "$(acl_of "$M/ds/new-wr")"
check_eq "aclm-wr's new directory inherited the default ACL as its access and default ACL" \
"user::rwx
group::---
group:aclm-read:r-x
group:aclm-write:rwx
mask::rwx
other::---
default:user::rwx
default:group::---
default:group:aclm-read:r-x
default:group:aclm-write:rwx
default:mask::rwx
default:other::---" "$(acl_of "$M/ds/d-wr")"
check "aclm-rd reads the file aclm-wr created" as_user aclm-rd cat "$M/ds/new-wr"
got=$(as_user aclm-aud cat "$M/ds/new-wr" 2>&1)
check_match "aclm-aud (no entry inherited) cannot read it" "Permission denied" "$got"
check "aclm-wr creates a file in its new directory" as_user aclm-wr bash -c 'umask 007; echo deep > "$1"' _ "$M/ds/d-wr/deep.txt"
check_eq "  ... which aclm-rd reads through the inherited entries" "deep" "$(as_user aclm-rd cat "$M/ds/d-wr/deep.txt" 2>&1)"
# POSIX.1e: with a default ACL the umask is not applied; the create mode's bits limit the ACL
as_user aclm-wr bash -c 'umask 022; exec 3>"$1"' _ "$M/ds/new-umask" 2>/dev/null
check_eq "umask 022, mode 0666 in a directory with a default ACL: the umask is ignored (mask rw-)" \
"user::rw-
group::---
group:aclm-read:r-x	#effective:r--
group:aclm-write:rwx	#effective:rw-
mask::rw-
other::---" "$(acl_of "$M/ds/new-umask")"

# ---------------------------------------------------------------------------------------------
# The audit log
# ---------------------------------------------------------------------------------------------
unmount_vault "$M" || bail "unmount failed"
"$CUSTODYCTL" log "$B" --format json > "$SCRATCH/log.jsonl" 2> "$SCRATCH/log.err"
check_eq "custodyctl log --format json: exit 0" 0 "$?" || cat "$SCRATCH/log.err"

cat > "$SCRATCH/auditcheck.py" <<'PYEOF'
import json, sys

recs = [json.loads(l) for l in open(sys.argv[1])]
denials = [json.loads(l) for l in open(sys.argv[2])]
users = json.loads(sys.argv[3])

def say(kind, desc, detail=""):
    print("%s\t%s\t%s" % (kind, desc, detail.replace("\t", " ").replace("\n", " | ")), flush=True)

KEYS = ["seq", "time", "uid", "user", "gid", "pid", "ppid", "process", "exe", "op", "path",
        "path2", "file_id", "result", "bytes", "ranges", "detail", "hash"]
missing = [k for k in KEYS if recs and k not in recs[0]]
say("PASS" if recs and not missing else "FAIL", "log records have the keys %s" % ",".join(KEYS),
    "missing: %s" % missing)

for d in denials:
    hits = [r for r in recs if r["uid"] == d["uid"] and r["op"] in d["ops"]
            and r["path"] == d["path"] and r["result"] == d["result"]
            and (d["path2"] is None or r["path2"] == d["path2"])]
    near = [(r["op"], r["path"], r["path2"], r["result"]) for r in recs
            if r["uid"] == d["uid"] and r["path"] == d["path"]]
    say("PASS" if hits else "FAIL",
        "audit: %s is recorded (op %s, uid %d, path %s%s, %s)" % (
            d["desc"], "|".join(d["ops"]), d["uid"], d["path"],
            " -> " + d["path2"] if d["path2"] else "", d["result"]),
        "records of this uid and path: %r" % (near,))
    if hits:
        r = hits[0]
        ok = r["user"] == users[d["user"]]["name"] and r["gid"] == users[d["user"]]["gid"]
        say("PASS" if ok else "FAIL", "  ... with user name %s and gid %d" % (
            users[d["user"]]["name"], users[d["user"]]["gid"]), "got %r %r" % (r["user"], r["gid"]))

def find(op, path, uid, result="ok"):
    return [r for r in recs if r["op"] == op and r["path"] == path and r["uid"] == uid
            and r["result"] == result]

adm, own = users["adm"]["uid"], users["own"]["uid"]
r = find("chmod", "/ds/m-adm", adm)
say("PASS" if r and r[0]["detail"] == "old=0660 new=0640" else "FAIL",
    "audit: the admin's chmod of aclm-own's file: detail old=0660 new=0640",
    repr([x["detail"] for x in r]))
r = find("chown", "/ds/o-adm", adm)
say("PASS" if r and r[0]["detail"] == "old=3001:3100 new=3002:3100" else "FAIL",
    "audit: the admin's chown: detail old=3001:3100 new=3002:3100", repr([x["detail"] for x in r]))
r = find("chown", "/ds/g-adm", adm)
say("PASS" if r and r[0]["detail"] == "old=3001:3100 new=3001:3104" else "FAIL",
    "audit: the admin's chgrp: detail old=3001:3100 new=3001:3104", repr([x["detail"] for x in r]))
r = find("setxattr", "/ds/masked.csv", own)
want = ("name=system.posix_acl_access old=u::rw-,g::---,g:aclm-read:r--,g:aclm-write:rw-,m::rw-,o::--- "
        "new=u::rw-,g::---,g:aclm-read:r--,g:aclm-write:rw-,g:aclm-audit:rw-,m::r--,o::---")
say("PASS" if r and r[0]["detail"] == want else "FAIL",
    "audit: the owner's setfacl (named group + mask): old and new ACL text",
    "want %r got %r" % (want, [x["detail"] for x in r]))
r = [x["detail"] for x in recs if x["op"] in ("setxattr", "removexattr") and x["path"] == "/ds/ownonly"
     and x["uid"] == 0 and x["result"] == "ok" and x["process"] == "setfacl"]
want = ["name=system.posix_acl_access old=u::rwx,g::---,g:aclm-read:r-x,g:aclm-write:rwx,m::rwx,o::--- "
        "new=u::rwx,g::---,o::---",
        "name=system.posix_acl_default old=u::rwx,g::---,g:aclm-read:r-x,g:aclm-write:rwx,m::rwx,o::--- "
        "new=-"]
say("PASS" if r == want else "FAIL",
    "audit: setfacl -b by root: both ACL changes with old and new text", "want %r got %r" % (want, r))
r = [x for x in recs if x["path"] == "/ds/cold.csv" and x["uid"] == users["out"]["uid"]
     and x["result"] == "EACCES"]
say("PASS" if r else "FAIL",
    "audit: the denial at a cold lookup (aclm-out, /ds/cold.csv, EACCES) is recorded",
    "no record with path /ds/cold.csv: a lookup refused for lack of search permission "
    "leaves no trace")
r = [x for x in recs if x["op"] == "setxattr" and x["path"] == "/" and x["uid"] == 0
     and x["result"] == "EOPNOTSUPP"]
say("PASS" if r else "FAIL", "audit: the refused ACL on the mount root is recorded (EOPNOTSUPP)")
PYEOF
report < <("$PY" "$SCRATCH/auditcheck.py" "$SCRATCH/log.jsonl" "$SCRATCH/denials.jsonl" "$USERS_JSON" 2>&1 \
    | awk -F'\t' '/^(PASS|FAIL|NOTE)\t/ { print; next } { print "FAIL\tauditcheck.py: " $0 }')

out=$("$CUSTODYCTL" verify "$B" 2>&1)
check_eq "custodyctl verify passes after all of it" 0 "$?" || printf '#   %s\n' "$out"
printf '# run time: %ds\n' "$(( $(date +%s) - T_START ))"
done_testing
