"""Helpers for the custodyfs integration tests (run with Debian's /usr/bin/python3).

Importable (lib.sh's `py` puts this directory on sys.path) and usable as a CLI:

  helpers.py errno CODE [ARGS...]     exec CODE (ARGS in `argv`); print OK or the
                                      errno name of the OSError it raised
  helpers.py write PATH OFF LEN SEED  pwrite the deterministic pattern
  helpers.py verify PATH OFF LEN SEED check PATH holds the pattern there
  helpers.py zeros PATH OFF LEN       check PATH holds zeros there
"""

import errno
import os
import sys

import numpy as np

BLOCK = 4096
_M64 = (1 << 64) - 1


def pattern(seed, off, n):
    """n bytes of a position-addressed pseudo-random pattern: byte at absolute
    file offset p depends only on (seed, p), so any range can be regenerated."""
    if n <= 0:
        return b""
    s = np.uint64((int(seed) * 0xD1B54A32D192ED03 + 0x632BE59BD9B4E019) & _M64)
    x = np.arange(off, off + n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x * np.uint64(0x9E3779B97F4A7C15) + s
        x ^= x >> np.uint64(31)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(29)
    return (x & np.uint64(0xFF)).astype(np.uint8).tobytes()


def write_all(fd, data, off):
    view = memoryview(data)
    done = 0
    while done < len(data):
        n = os.pwrite(fd, view[done:], off + done)
        if n <= 0:
            raise OSError(errno.EIO, "short pwrite")
        done += n


def read_all(fd, n, off):
    """pread until n bytes or EOF."""
    chunks = []
    got = 0
    while got < n:
        b = os.pread(fd, n - got, off + got)
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def pwrite_pattern(path, off, n, seed, flags=os.O_WRONLY | os.O_CREAT):
    fd = os.open(path, flags, 0o644)
    try:
        write_all(fd, pattern(seed, off, n), off)
    finally:
        os.close(fd)


def first_diff(a, b):
    m = min(len(a), len(b))
    if m:
        aa = np.frombuffer(a[:m], dtype=np.uint8)
        bb = np.frombuffer(b[:m], dtype=np.uint8)
        idx = np.nonzero(aa != bb)[0]
        if len(idx):
            return int(idx[0])
    if len(a) != len(b):
        return m
    return -1


def check_bytes(got, want, what, base=0):
    if got == want:
        return
    d = first_diff(got, want)
    raise AssertionError(
        "%s: mismatch at offset %d (got %d bytes, expected %d); got %r expected %r"
        % (what, base + d, len(got), len(want), got[d:d + 16], want[d:d + 16]))


def verify_pattern(path, off, n, seed):
    fd = os.open(path, os.O_RDONLY)
    try:
        got = read_all(fd, n, off)
    finally:
        os.close(fd)
    check_bytes(got, pattern(seed, off, n), "%s [%d,+%d)" % (path, off, n), off)


def verify_zeros(path, off, n):
    fd = os.open(path, os.O_RDONLY)
    try:
        got = read_all(fd, n, off)
    finally:
        os.close(fd)
    check_bytes(got, bytes(n), "%s zeros [%d,+%d)" % (path, off, n), off)


def pread_file(path, off, n):
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_all(fd, n, off)
    finally:
        os.close(fd)


def vault_config(backing):
    """The bytes of the vault configuration BACKING/.custody/config."""
    with open(os.path.join(backing, ".custody", "config"), "rb") as f:
        return f.read()


def header_size_of(backing):
    """Bytes of a file header in the vault BACKING: 40 in a format-2 vault
    (its config has a "file-key " line), 128 in a format-1 vault."""
    lines = vault_config(backing).split(b"\n")
    return 40 if any(l.startswith(b"file-key ") for l in lines) else 128


def block_overhead_of(backing):
    """Nonce + tag bytes of each stored block in the vault BACKING: 28
    (AES-256-GCM) or 40 (XChaCha20-Poly1305)."""
    lines = vault_config(backing).split(b"\n")
    return 40 if b"cipher xchacha20poly1305" in lines else 28


def backing_size_for(n, backing):
    """Backing size of a file with n plaintext bytes (created through the
    mount) in the vault BACKING."""
    return header_size_of(backing) + n + block_overhead_of(backing) * ((n + BLOCK - 1) // BLOCK)


def errname(fn, *args):
    """Call fn(*args); return "OK" or the errno name of the OSError it raised."""
    try:
        fn(*args)
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


class Chan:
    """One end of a line-based channel between a test and a forked helper."""

    def __init__(self, rfd, wfd, pid=None):
        self.rfd, self.wfd, self.pid = rfd, wfd, pid

    def send(self, msg):
        os.write(self.wfd, (str(msg) + "\n").encode())

    def recv(self, timeout=60):
        import select
        line = b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([self.rfd], [], [], timeout)
            if not ready:
                raise AssertionError("no message from the other process within %ds" % timeout)
            b = os.read(self.rfd, 1)
            if not b:
                raise AssertionError("the other process ended without answering (got %r)" % line)
            line += b
        msg = line[:-1].decode()
        if msg.startswith("CHILD-EXCEPTION "):
            raise AssertionError("helper process failed: " + msg[16:])
        return msg

    def wait(self, timeout=60):
        import time
        end = time.time() + timeout
        while time.time() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.02)
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        raise AssertionError("helper process did not exit within %ds" % timeout)


def fork_child(fn):
    """Run fn(chan) in a forked process (a separate process for locks etc.);
    returns the parent's Chan.  Exceptions in the child are sent back and
    raised by the parent's next recv()."""
    c2p_r, c2p_w = os.pipe()
    p2c_r, p2c_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(c2p_r)
        os.close(p2c_w)
        code = 0
        try:
            fn(Chan(p2c_r, c2p_w))
        except BaseException as e:  # noqa: BLE001 - report everything to the parent
            try:
                os.write(c2p_w, ("CHILD-EXCEPTION %r\n" % (e,)).encode())
            except OSError:
                pass
            code = 1
        os._exit(code)
    os.close(c2p_w)
    os.close(p2c_r)
    return Chan(c2p_r, p2c_w, pid)


def _where(exc):
    """Tell on stderr where in the test code an exception came from."""
    import traceback
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<test code>"]
    if frames:
        sys.stderr.write("raised at line %d of the test code: %s\n" % (frames[-1].lineno, exc))
    else:
        sys.stderr.write("raised: %s\n" % exc)


def run_errno(code, args):
    ns = {"os": os, "sys": sys, "errno": errno, "np": np, "argv": list(args)}
    ns.update({k: v for k, v in globals().items() if not k.startswith("_")})
    try:
        exec(compile(code, "<test code>", "exec"), ns)
    except OSError as e:
        if e.errno is None:
            print("OSError-without-errno: %s" % e)
        else:
            print(errno.errorcode.get(e.errno, str(e.errno)))
        _where(e)
        return 0
    except Exception as e:  # noqa: BLE001 - report anything else verbatim
        print("EXCEPTION %s: %s" % (type(e).__name__, e))
        _where(e)
        return 0
    print("OK")
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    try:
        if cmd == "errno":
            return run_errno(argv[2], argv[3:])
        if cmd == "write":
            pwrite_pattern(argv[2], int(argv[3]), int(argv[4]), int(argv[5]))
            return 0
        if cmd == "verify":
            verify_pattern(argv[2], int(argv[3]), int(argv[4]), int(argv[5]))
            return 0
        if cmd == "zeros":
            verify_zeros(argv[2], int(argv[3]), int(argv[4]))
            return 0
    except (OSError, AssertionError) as e:
        print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    print("unknown command %s" % cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
