#!/bin/bash
# Who the log names, and whose groups decide, when the daemon caches what /proc says about a
# process (fs/identity.h): an exec in the same pid is recorded under the new program at once; a
# reused pid is a new process (its own groups decide, not those of the process that had the pid
# before); a process that drops a supplementary group loses what the group gave within
# IDENTITY_REFRESH_MS; a process renamed with prctl is recorded under its new name after it.
. "$(dirname "$0")/lib.sh"
standard_prereqs

setup_vault

ROLE=5555        # a role (group) that may read "secret"; no account needs to exist
echo "for the role" > "$M/secret"
chown 0:$ROLE "$M/secret" && chmod 0640 "$M/secret" || bail "cannot set up $M/secret"
for f in a b c d; do echo "$f" > "$M/$f"; done
chmod 0755 "$M"

# The workload prints "KEY<TAB>VALUE" lines the checks below read.
cat > "$SCRATCH/work.py" <<'PYEOF'
import ctypes, errno, os, sys, time
M = sys.argv[1]
ROLE = int(sys.argv[2])
libc = ctypes.CDLL(None, use_errno=True)


def try_open(path):
    try:
        os.close(os.open(path, os.O_RDONLY))
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]


def as_user(groups):
    """In a child: become uid/gid 1000 with these supplementary groups."""
    os.setgroups(groups)
    os.setresgid(1000, 1000, 1000)
    os.setresuid(1000, 1000, 1000)


# 1. exec: the same pid opens "a" as python, then "b" as cat.
pid = os.fork()
if pid == 0:
    try_open(M + "/a")
    os.execv("/usr/bin/cat", ["cat", M + "/b"])
_, st = os.waitpid(pid, 0)
print("exec_pid\t%d" % pid)

# 2. pid reuse: a process with the role reads "secret" and exits; the next process to get the
#    same pid has no role and must be refused.  ns_last_pid hands the pid out again.
reused = None
for attempt in range(20):
    r, w = os.pipe()
    first = os.fork()
    if first == 0:
        as_user([ROLE])
        os.write(w, try_open(M + "/secret").encode())
        os._exit(0)
    os.close(w)
    first_result = os.read(r, 64).decode()
    os.close(r)
    os.waitpid(first, 0)
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(first - 1))
    r, w = os.pipe()
    second = os.fork()
    if second == 0:
        as_user([])
        os.write(w, try_open(M + "/secret").encode())
        os._exit(0)
    os.close(w)
    second_result = os.read(r, 64).decode()
    os.close(r)
    os.waitpid(second, 0)
    if second == first:
        reused = (first, first_result, second_result)
        break
if reused is None:
    print("reuse\tnone")
else:
    print("reuse\t%d %s %s" % reused)

# 3. a dropped group: fsuid 1000 keeps CAP_SETGID, so the process can change its groups.
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.setgroups([ROLE])
    libc.setfsgid(1000)
    libc.setfsuid(1000)
    before = try_open(M + "/secret")
    os.setgroups([])
    time.sleep(1.5)             # past IDENTITY_REFRESH_MS
    after = try_open(M + "/secret")
    os.write(w, ("%s %s" % (before, after)).encode())
    os._exit(0)
os.close(w)
print("dropped\t%s" % os.read(r, 64).decode())
os.waitpid(pid, 0)

# 4. a rename: prctl(PR_SET_NAME), then past the refresh, open "c".
pid = os.fork()
if pid == 0:
    try_open(M + "/d")
    libc.prctl(15, b"renamed-proc", 0, 0, 0)
    time.sleep(1.5)
    try_open(M + "/c")
    os._exit(0)
os.waitpid(pid, 0)
print("renamed_pid\t%d" % pid)
PYEOF

OUT=$("$PY" "$SCRATCH/work.py" "$M" "$ROLE" 2>&1)
check_eq "the workload ran" 0 "$?"
val() { printf '%s\n' "$OUT" | awk -F'\t' -v k="$1" '$1 == k { print $2 }'; }

unmount_vault "$M"
"$CUSTODYCTL" log "$B" --format json > "$SCRATCH/log.json" 2> "$SCRATCH/log.err"
check_eq "custodyctl log exits 0" 0 "$?"
rec() { # rec OP PATH [PID]: "process exe result" of the first matching record
    "$PY" - "$SCRATCH/log.json" "$@" <<'PYEOF'
import json, sys
op, path = sys.argv[2], sys.argv[3]
pid = int(sys.argv[4]) if len(sys.argv) > 4 else None
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["op"] == op and r["path"] == path and (pid is None or r["pid"] == pid):
        print(r["process"], r["exe"], r["result"], r["uid"])
        break
PYEOF
}

EXEC_PID=$(val exec_pid)
check_match "before the exec, the open is python's" '^python3[^ ]* /usr/bin/python3[^ ]* ok' \
    "$(rec open /a "$EXEC_PID")"
check_match "after the exec in the same pid, the open is cat's" '^cat /usr/bin/cat ok' \
    "$(rec open /b "$EXEC_PID")"

REUSE=$(val reuse)
if [ "$REUSE" = none ]; then
    fail "a pid was handed out again within 20 attempts" "$OUT"
else
    read -r RPID FIRST SECOND <<< "$REUSE"
    check_eq "the process with the role reads the file" ok "$FIRST"
    check_eq "the next process with the same pid ($RPID) and no role is refused" EACCES "$SECOND"
    check_match "the refusal is on record for that pid" 'EACCES 1000$' \
        "$("$PY" - "$SCRATCH/log.json" "$RPID" <<'PYEOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["op"] == "open" and r["path"] == "/secret" and r["pid"] == int(sys.argv[2]) \
            and r["result"] != "ok":
        print(r["process"], r["exe"], r["result"], r["uid"])
PYEOF
)"
fi

read -r BEFORE AFTER <<< "$(val dropped)"
check_eq "with the role in its groups, the process reads the file" ok "$BEFORE"
check_eq "after dropping the role, the same process is refused" EACCES "$AFTER"

RPID=$(val renamed_pid)
check_match "before the rename, the process is python" '^python3' "$(rec open /d "$RPID")"
check_match "after the rename, the process is recorded under its new name" '^renamed-proc ' \
    "$(rec open /c "$RPID")"

check "the log verifies" "$CUSTODYCTL" verify "$B"
done_testing
