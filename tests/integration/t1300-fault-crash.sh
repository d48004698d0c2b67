#!/bin/bash
# kill -9 of the daemon in the middle of heavy writing, CRASH_ROUNDS times (default 6).
#
# Writers create files through the mount (random sizes, written in random-sized chunks), fsync
# and close them, and note every file whose fsync and close returned success ("acked"); each
# file's content is a position-addressed pattern derived from its name, so any byte of any file
# can be checked.  One "replacer" per round also updates a fixed set of names with the
# write-temporary / fsync / rename pattern, noting each version whose rename returned, and one
# "appender" grows one file per round with O_APPEND writes of odd sizes, fsyncing each and noting
# the acked length (every appended file is checked again in every later round).
# After every kill: the stale mount is removed with fusermount3 -u -z, the vault is mounted again,
# and
#   - every acked file decrypts and holds exactly its acked content (size and bytes);
#   - every file whose write was in flight either fails with EIO or is short, but every byte it
#     does return is the byte that was written there (checked block by block);
#   - every replaced name holds exactly one whole version: the last acked one or a later one
#     that was in flight;
#   - every appended file holds at least its acked length, all of it the bytes written;
#   - nothing else appeared in the round's directory;
#   - custodyctl verify exits 0.
# At the end every acked file of every round is checked again, the vault is unmounted cleanly,
# and the log verifies.
. "$(dirname "$0")/lib.sh"
standard_prereqs
T_START=$(date +%s)
ROUNDS=${CRASH_ROUNDS:-6}
WRITERS=4
STABLE_NAMES=6
# on an early exit: stop the load processes this script started (by pid), then lib.sh's cleanup
declare -a LOAD_PIDS=()
_load_cleanup() {
    local rc=$? p
    for p in "${LOAD_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    ( exit "$rc" )
    _cleanup
}
trap _load_cleanup EXIT
setup_vault

cat > "$SCRATCH/writer.py" <<'PYEOF'
import os, random, sys, zlib
sys.path.insert(0, os.environ["LIB_DIR"])
from helpers import pattern, write_all

m, rnd, k, ackf = sys.argv[1:5]
rng = random.Random(os.getpid())
ack = os.open(ackf, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def note(line):
    os.write(ack, (line + "\n").encode())


def size_of(name):
    r = random.Random(zlib.crc32(name.encode()))
    c = r.random()
    if c < 0.1:
        return r.randint(0, 200)
    if c < 0.3:
        return r.choice([4095, 4096, 4097, 8192, 65536, 131072, 131073])
    if c < 0.95:
        return r.randint(1, 160000)
    return r.randint(500000, 1200000)


n = 0
while True:
    name = "/r%s/w%s_%05d" % (rnd, k, n)
    size = size_of(name)
    seed = zlib.crc32(name.encode())
    data = pattern(seed, 0, size)
    note("try %s %d %d" % (name, size, seed))
    try:
        fd = os.open(m + name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        off = 0
        while off < size:
            step = min(size - off, rng.choice([1, 100, 4096, 5000, 65536, 131072, 1 << 20]))
            write_all(fd, data[off:off + step], off)
            off += step
        os.fsync(fd)
        os.close(fd)
    except OSError as e:
        sys.stderr.write("writer %s stops at %s: %s\n" % (k, name, e))
        break
    note("ack %s %d %d" % (name, size, seed))
    n += 1
PYEOF

cat > "$SCRATCH/replacer.py" <<'PYEOF'
import os, random, sys, zlib
sys.path.insert(0, os.environ["LIB_DIR"])
from helpers import pattern, write_all

m, nnames, ackf, start_ver = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
ack = os.open(ackf, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
rng = random.Random(os.getpid())


def note(line):
    os.write(ack, (line + "\n").encode())


def version_data(name, v):
    seed = (zlib.crc32(name.encode()) << 20) + v
    size = random.Random(seed).randint(1, 70000)
    return seed, size


v = start_ver
while True:
    i = rng.randrange(nnames)
    name = "/stable/s%d" % i
    tmp = "/stable/.tmp%d" % i
    v += 1
    seed, size = version_data(name, v)
    note("try %s %d %d %d" % (name, v, size, seed))
    try:
        fd = os.open(m + tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        write_all(fd, pattern(seed, 0, size), 0)
        os.fsync(fd)
        os.close(fd)
        os.rename(m + tmp, m + name)
    except OSError as e:
        sys.stderr.write("replacer stops at %s v%d: %s\n" % (name, v, e))
        break
    note("ack %s %d %d %d" % (name, v, size, seed))
PYEOF

cat > "$SCRATCH/appender.py" <<'PYEOF'
import os, random, sys
sys.path.insert(0, os.environ["LIB_DIR"])
from helpers import pattern, write_all

m, ackf, name = sys.argv[1], sys.argv[2], sys.argv[3]
SEED = 4242
ack = os.open(ackf, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
rng = random.Random(os.getpid())
try:
    fd = os.open(m + name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    size = os.fstat(fd).st_size
    while size < (48 << 20):
        n = rng.choice([1, 17, 1000, 4096, 5000, 70000, 300000])
        os.write(ack, ("try %s %d\n" % (name, size + n)).encode())
        write_all(fd, pattern(SEED, size, n), size)  # O_APPEND: lands at the end
        os.fsync(fd)
        size += n
        os.write(ack, ("ack %s %d\n" % (name, size)).encode())
except OSError as e:
    sys.stderr.write("appender stops: %s\n" % e)
PYEOF

# check.py MNT ROUND ACKDIR: checks after a remount; prints PASS/FAIL/INFO lines (tab-separated).
cat > "$SCRATCH/check.py" <<'PYEOF'
import errno, glob, os, sys
sys.path.insert(0, os.environ["LIB_DIR"])
from helpers import pattern, first_diff

m, rnd, ackdir, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
BS = 4096


def out(kind, desc, info=""):
    print("%s\t%s\t%s" % (kind, desc, str(info).replace("\t", " ").replace("\n", " | ")[:2500]))


def read_whole(path):
    """(bytes, None) or (None, errno name)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return None, errno.errorcode.get(e.errno, str(e.errno))
    try:
        chunks = []
        off = 0
        while True:
            b = os.pread(fd, 1 << 20, off)
            if not b:
                break
            chunks.append(b)
            off += len(b)
        return b"".join(chunks), None
    except OSError as e:
        return None, errno.errorcode.get(e.errno, str(e.errno))
    finally:
        os.close(fd)


def readable_blocks(path, limit):
    """Check a file that may be damaged block by block: list of problems with wrong bytes."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return None, "open: %s" % errno.errorcode.get(e.errno, e.errno)
    res = []
    try:
        size = os.fstat(fd).st_size
        for off in range(0, max(size, 0), BS):
            try:
                b = os.pread(fd, BS, off)
            except OSError as e:
                res.append((off, errno.errorcode.get(e.errno, str(e.errno)), None))
                continue
            res.append((off, "OK", b))
        return (size, res), None
    finally:
        os.close(fd)


def records(pattern_glob):
    tries, acks = {}, {}
    for f in sorted(glob.glob(pattern_glob)):
        for line in open(f):
            p = line.split()
            if len(p) < 4:
                continue
            d = tries if p[0] == "try" else acks if p[0] == "ack" else None
            if d is not None:
                d[p[1]] = p[2:]
    return tries, acks


if mode == "round" or mode == "final":
    globpat = os.path.join(ackdir, "ack.%s.*" % (rnd if mode == "round" else "*"))
    tries, acks = records(globpat)
    bad, checked, nbytes = [], 0, 0
    for name, (size, seed) in sorted(acks.items()):
        size, seed = int(size), int(seed)
        got, err = read_whole(m + name)
        checked += 1
        if err is not None:
            bad.append("%s: read fails with %s (acked %d bytes)" % (name, err, size))
            continue
        nbytes += len(got)
        want = pattern(seed, 0, size)
        if got != want:
            bad.append("%s: %d bytes, acked %d, first difference at %d" %
                       (name, len(got), size, first_diff(got, want)))
    label = "round %s" % rnd if mode == "round" else "final check of all rounds"
    out("PASS" if not bad else "FAIL",
        "%s: every fsync-acked file (%d) decrypts and has exactly its acked content"
        % (label, checked), "%d bad: %s" % (len(bad), bad[:10]))
    out("INFO", "%s: %d acked files, %d bytes read back" % (label, checked, nbytes))
    if mode == "final":
        sys.exit(0)

    # files in flight: never wrong bytes
    inflight = [n for n in tries if n not in acks]
    wrong, states = [], {}
    for name in inflight:
        size, seed = int(tries[name][0]), int(tries[name][1])
        if not os.path.lexists(m + name):
            states["absent"] = states.get("absent", 0) + 1
            continue
        got, err = read_whole(m + name)
        if err is None:
            want = pattern(seed, 0, size)
            if len(got) > size or got != want[:len(got)]:
                wrong.append("%s: %d bytes readable (intended %d), first difference at %d"
                             % (name, len(got), size, first_diff(got, want[:len(got)])))
            st = "short" if len(got) < size else "complete"
            states[st] = states.get(st, 0) + 1
            continue
        states["whole-read " + err] = states.get("whole-read " + err, 0) + 1
        r, oerr = readable_blocks(m + name, size)
        if r is None:
            if oerr not in ("open: EIO",):
                wrong.append("%s: open fails with %s (only EIO is expected)" % (name, oerr))
            continue
        fsize, blocks = r
        if fsize > size:
            wrong.append("%s: size %d is larger than anything written (%d)" % (name, fsize, size))
        for off, e, b in blocks:
            if e == "OK":
                want = pattern(seed, off, len(b))
                if b != want:
                    wrong.append("%s: block at %d returns wrong bytes (diff at +%d)"
                                 % (name, off, first_diff(b, want)))
            elif e != "EIO":
                wrong.append("%s: block at %d fails with %s (only EIO is expected)"
                             % (name, off, e))
    out("PASS" if not wrong else "FAIL",
        "round %s: files whose writes were in flight (%d) return no wrong bytes (EIO or short "
        "at most)" % (rnd, len(inflight)), "%s" % wrong[:10])
    out("INFO", "round %s: in-flight files: %s" % (rnd, states))

    # nothing unexpected in the round's directory
    try:
        names = sorted("/r%s/%s" % (rnd, e) for e in os.listdir(m + "/r" + rnd))
    except OSError as e:
        names = ["listing fails: %s" % e]
    extra = [n for n in names if n not in tries]
    out("PASS" if not extra else "FAIL",
        "round %s: the directory holds only files the writers created (%d entries)"
        % (rnd, len(names)), extra[:10])

if mode in ("round", "stable"):
    # the appended files: their acked length is there and intact; the rest is the pattern
    acked, tried = {}, {}
    for line in open(os.path.join(ackdir, "append.log")):
        p = line.split()
        if len(p) == 3 and p[0] in ("ack", "try"):
            d = acked if p[0] == "ack" else tried
            d[p[1]] = max(d.get(p[1], 0), int(p[2]))
    bad, total = [], 0
    for name in sorted(tried):
        got, err = read_whole(m + name)
        if err is not None:
            bad.append("%s: reading fails with %s (acked %d, in flight up to %d)"
                       % (name, err, acked.get(name, 0), tried[name]))
            continue
        total += len(got)
        want = pattern(4242, 0, len(got))
        if not (acked.get(name, 0) <= len(got) <= tried[name] and got == want):
            bad.append("%s: size %d, acked %d, tried up to %d, first difference at %d"
                       % (name, len(got), acked.get(name, 0), tried[name], first_diff(got, want)))
    out("PASS" if not bad else "FAIL",
        "round %s: files appended to with fsync (%d, %d bytes) keep their acked length and "
        "bytes" % (rnd, len(tried), total), bad[:5])

    # replaced names: exactly one whole version, the last acked one or a later one in flight
    tries, acks = {}, {}
    for line in open(os.path.join(ackdir, "stable.log")):
        p = line.split()
        if len(p) != 5:
            continue
        name, v, size, seed = p[1], int(p[2]), int(p[3]), int(p[4])
        (tries if p[0] == "try" else acks).setdefault(name, {})[v] = (size, seed)
    bad, ok = [], 0
    for name in sorted(set(tries) | set(acks)):
        last_ack = max(acks.get(name, {0: None}))
        allowed = {v: t for v, t in tries.get(name, {}).items() if v >= last_ack}
        allowed.update({v: t for v, t in acks.get(name, {}).items() if v >= last_ack})
        got, err = read_whole(m + name)
        if err == "ENOENT" and last_ack == 0:
            ok += 1
            continue
        if err is not None:
            bad.append("%s: read fails with %s (last acked version %d)" % (name, err, last_ack))
            continue
        match = [v for v, (size, seed) in allowed.items() if got == pattern(seed, 0, size)]
        if match:
            ok += 1
        else:
            older = [v for v, (size, seed) in acks.get(name, {}).items()
                     if got == pattern(seed, 0, size)]
            bad.append("%s: %d bytes match no allowed version (last acked %d, allowed %s%s)"
                       % (name, len(got), last_ack, sorted(allowed),
                          ", it is OLDER acked version %s" % older if older else ""))
    out("PASS" if not bad else "FAIL",
        "round %s: every name replaced by write-temp/fsync/rename holds one whole version, "
        "the last acked or a later one (%d names)" % (rnd, ok + len(bad)), bad[:10])
PYEOF
export LIB_DIR

# the daemon serving $M, from the vault lock (which holds its pid), checked against lib.sh
daemon_pid() {
    local pid
    pid=$(tr -dc '0-9' < "$B/.custody/lock" 2>/dev/null)
    [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -F "$SCRATCH" \
        || pid=$(daemon_pid_for "$M")
    echo "$pid"
}

run_check() {
    local kind desc detail
    while IFS=$'\t' read -r kind desc detail; do
        case $kind in
            PASS) pass "$desc" ;;
            FAIL) fail "$desc" "$detail" ;;
            EXIT) [ "$desc" = 0 ] || fail "check.py $* exits 0" "exit status $desc" ;;
            *) printf '# %s\n' "$desc" ;;
        esac
    done < <(timeout -k 5 "$PY_TIMEOUT" "$PY" "$SCRATCH/check.py" "$M" "$@" 2> "$SCRATCH/check.err"; \
             echo "EXIT	$?")
    if [ -s "$SCRATCH/check.err" ]; then
        fail "check.py $* ran without errors" "$(head -c 2000 "$SCRATCH/check.err")"
    fi
}

mkdir "$M/stable" "$M/append" || bail "mkdir $M/stable $M/append failed"
: > "$SCRATCH/stable.log"
: > "$SCRATCH/append.log"
ver=0
for round in $(seq 1 "$ROUNDS"); do
    mkdir "$M/r$round" || bail "round $round: mkdir failed"
    pids=()
    for k in $(seq 1 "$WRITERS"); do
        "$PY" "$SCRATCH/writer.py" "$M" "$round" "$k" "$SCRATCH/ack.$round.$k" \
            2> "$SCRATCH/writer.$round.$k.err" &
        pids+=("$!"); LOAD_PIDS+=("$!")
    done
    ver=$((round * 1000000))
    "$PY" "$SCRATCH/replacer.py" "$M" "$STABLE_NAMES" "$SCRATCH/stable.log" "$ver" \
        2> "$SCRATCH/replacer.$round.err" &
    pids+=("$!"); LOAD_PIDS+=("$!")
    "$PY" "$SCRATCH/appender.py" "$M" "$SCRATCH/append.log" "/append/log$round" \
        2> "$SCRATCH/appender.$round.err" &
    pids+=("$!"); LOAD_PIDS+=("$!")
    # 1.5 .. 3.5 s of load
    sleep "$((1 + RANDOM % 3)).$((RANDOM % 10))"
    dpid=$(daemon_pid)
    [ -n "$dpid" ] || bail "round $round: cannot find the daemon's pid"
    kill -KILL "$dpid" || bail "round $round: kill -9 $dpid failed"
    for _ in $(seq 1 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$dpid" 2>/dev/null && fail "round $round: the daemon $dpid is gone after kill -9"
    # the writers stop on their own (ENOTCONN); do not wait forever
    for p in "${pids[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$p" 2>/dev/null && { printf '# writer %d hangs after the kill; killing it\n' "$p"; kill -KILL "$p"; }
        wait "$p" 2>/dev/null
    done
    # the stale mount answers ENOTCONN
    err=$(stat "$M/." 2>&1 >/dev/null)
    check_match "round $round: the stale mount answers ENOTCONN" "Transport endpoint is not connected" "$err"
    fusermount3 -u -z "$M" 2>/dev/null || umount -l "$M" 2>/dev/null
    for _ in $(seq 1 50); do mountinfo_has "$M" || break; sleep 0.1; done
    if mountinfo_has "$M"; then
        bail "round $round: the stale mount is still there after fusermount3 -u -z"
    fi
    acked=$(cat "$SCRATCH"/ack."$round".* 2>/dev/null | grep -c '^ack ')
    tried=$(cat "$SCRATCH"/ack."$round".* 2>/dev/null | grep -c '^try ')
    printf '# round %d: daemon %d killed; %d files started, %d fsync-acked; stable log: %d lines\n' \
        "$round" "$dpid" "$tried" "$acked" "$(wc -l < "$SCRATCH/stable.log")"
    [ "$acked" -gt 0 ] || fail "round $round: the writers wrote something before the kill" \
        "$(cat "$SCRATCH"/writer."$round".*.err)"

    mount_vault "$B" "$M" --keyfile "$KEY" \
        || bail "round $round: mounting again after kill -9 failed: $(cat "$SCRATCH/mount.err")"
    pass "round $round: the vault mounts again after kill -9"
    run_check "$round" "$SCRATCH" round
    out=$("$CUSTODYCTL" verify "$B" 2>&1); rc=$?
    check_eq "round $round: custodyctl verify exits 0 after the remount" 0 "$rc" \
        || printf '#   %s\n' "$out"
done

run_check all "$SCRATCH" final
unmount_vault "$M" || bail "final unmount failed"
pass "the vault unmounts cleanly after $ROUNDS kills"
out=$("$CUSTODYCTL" verify "$B" 2>&1); rc=$?
check_eq "after the final unmount, custodyctl verify exits 0" 0 "$rc" || printf '#   %s\n' "$out"
printf '# %s\n' "$out"
mount_vault "$B" "$M" --keyfile "$KEY" || bail "mounting for the last check failed"
run_check final "$SCRATCH" stable
unmount_vault "$M" || fail "last unmount"
printf '# run time: %d s\n' $(($(date +%s) - T_START))
done_testing
