#!/usr/bin/python3
"""Directory trees for tests/integration/t1220-tools-archive.sh (Debian's
/usr/bin/python3).

  t1220_tree.py mksrc DIR        build a tree with files of many sizes (0, 1, 4095,
                                 4096, 4097, ~1 MiB, ...), nested and empty
                                 directories, odd names, modes, a file owned by
                                 nobody, relative/absolute/dangling symlinks,
                                 hard links, a FIFO, user.* xattrs, POSIX ACLs
                                 (access and default), and nanosecond mtimes on
                                 everything (set last)
  t1220_tree.py manifest DIR [--no-acl] [--no-xattr] [--no-owner] [--no-dir-mtime]
                             [--no-link-mtime] [--mtime-sec] [--no-hardlinks]
                             [--content-only] [--skip-git]
                                 one sorted line per entry: path, type, mode,
                                 owner, size, mtime (ns), sha256 or link target,
                                 hard-link group, user.* xattrs, ACLs;
                                 --content-only: path, type, mode, size, sha256,
                                 link target only; --skip-git: leave out .git/

Paths are relative to DIR, so manifests of two trees can be diffed.
"""

import hashlib
import os
import stat
import struct
import subprocess
import sys

ACL_TAGS = {0x01: "user::", 0x02: "user:", 0x04: "group::", 0x08: "group:", 0x10: "mask::", 0x20: "other::"}


def det_bytes(seed, n):
    out = bytearray()
    k = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d:%d" % (seed, k)).digest()
        k += 1
    return bytes(out[:n])


def mksrc(root):
    os.makedirs(root, exist_ok=True)
    files = {
        "empty": 0, "one": 1, "b4095": 4095, "b4096": 4096, "b4097": 4097,
        "data/train/part-0000.bin": 1024 * 1024 + 3,
        "data/train/part-0001.bin": 200 * 1024,
        "data/val/part-0000.bin": 65536,
        "data/deep/a/b/c/d/leaf.txt": 33,
        "names/with space.txt": 10,
        "names/caf\u00e9-\u6570\u636e.txt": 11,
        "names/-dash": 12,
        "names/.hidden": 13,
        "names/" + "L" * 200: 14,
    }
    for i, (rel, n) in enumerate(sorted(files.items())):
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(det_bytes(i, n))
    for k in range(40):                 # many small files
        p = os.path.join(root, "many", "f%03d.csv" % k)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write("".join("%d,%d,%s\n" % (k, j, "x" * (j % 7)) for j in range(k * 3)))
    os.makedirs(os.path.join(root, "emptydir"))
    os.makedirs(os.path.join(root, "private"))
    # modes
    os.chmod(os.path.join(root, "one"), 0o600)
    os.chmod(os.path.join(root, "b4095"), 0o755)
    os.chmod(os.path.join(root, "b4096"), 0o444)
    os.chmod(os.path.join(root, "b4097"), 0o640)
    os.chmod(os.path.join(root, "private"), 0o750)
    os.chmod(os.path.join(root, "emptydir"), 0o711)
    p = os.path.join(root, "private", "owned-by-nobody")
    with open(p, "w") as f:
        f.write("nobody's\n")
    os.chown(p, 65534, 65534)
    os.chmod(p, 0o640)
    # links
    os.symlink("b4096", os.path.join(root, "link-rel"))
    os.symlink("../data/train", os.path.join(root, "names", "link-dir"))
    os.symlink("/nonexistent/target", os.path.join(root, "link-dangling"))
    os.symlink("/etc/hostname", os.path.join(root, "link-abs"))
    os.link(os.path.join(root, "data/train/part-0001.bin"), os.path.join(root, "hard-a"))
    os.link(os.path.join(root, "data/train/part-0001.bin"), os.path.join(root, "data/val/hard-b"))
    os.link(os.path.join(root, "b4097"), os.path.join(root, "many", "hard-c"))
    os.mkfifo(os.path.join(root, "fifo"))
    os.chmod(os.path.join(root, "fifo"), 0o620)
    # xattrs and ACLs
    os.setxattr(os.path.join(root, "b4097"), "user.label", b"train")
    os.setxattr(os.path.join(root, "b4097"), "user.empty", b"")
    os.setxattr(os.path.join(root, "data/train/part-0000.bin"), "user.sha", det_bytes(99, 64))
    os.setxattr(os.path.join(root, "data"), "user.dataset", b"customers-2024")
    subprocess.run(["setfacl", "-m", "u:nobody:r,g:nogroup:r", os.path.join(root, "b4096")], check=True)
    subprocess.run(["setfacl", "-m", "g:nogroup:rx", "-m", "d:g:nogroup:rx", os.path.join(root, "data/val")], check=True)
    # mtimes last, deepest first, with nanoseconds
    k = 0
    for dirpath, dirnames, filenames in sorted(os.walk(root, topdown=False), key=lambda t: -t[0].count("/")):
        for nm in sorted(filenames + dirnames):
            p = os.path.join(dirpath, nm)
            k += 1
            ns = 1_600_000_000_000_000_000 + k * 86_400_123_456_789 + 123_456_789 % (k + 1)
            try:
                os.utime(p, ns=(ns, ns), follow_symlinks=False)
            except OSError:
                pass
    ns = 1_650_000_000_987_654_321
    os.utime(root, ns=(ns, ns))


def parse_acl(raw):
    if len(raw) < 4:
        return "short"
    ver = struct.unpack_from("<I", raw)[0]
    ents = []
    for off in range(4, len(raw), 8):
        tag, perm, uid = struct.unpack_from("<HHI", raw, off)
        t = ACL_TAGS.get(tag, "tag%d:" % tag)
        who = "" if tag in (0x01, 0x04, 0x10, 0x20) else str(uid)
        ents.append("%s%s%s" % (t, who, "".join(c if perm & b else "-" for c, b in (("r", 4), ("w", 2), ("x", 1)))))
    return "v%d[%s]" % (ver, ",".join(ents))


def get_acl(p, name):
    try:
        return parse_acl(os.getxattr(p, name, follow_symlinks=False))
    except OSError:
        return None


def manifest(root, opts):
    if "--content-only" in opts:
        opts = opts | {"--no-acl", "--no-xattr", "--no-owner", "--no-mtime", "--no-hardlinks"}
    lines = []
    groups = {}
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        if "--skip-git" in opts and ".git" in dirnames:
            dirnames.remove(".git")
        dirnames.sort()
        for nm in sorted(dirnames + filenames):
            entries.append(os.path.join(dirpath, nm))
    entries.append(root)
    for p in sorted(entries):
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            groups.setdefault((st.st_dev, st.st_ino), []).append(os.path.relpath(p, root))
    for p in sorted(entries):
        rel = os.path.relpath(p, root)
        st = os.lstat(p)
        m = st.st_mode
        kind = "d" if stat.S_ISDIR(m) else "f" if stat.S_ISREG(m) else "l" if stat.S_ISLNK(m) \
            else "p" if stat.S_ISFIFO(m) else "s" if stat.S_ISSOCK(m) else "?"
        f = [rel, kind, "mode=%04o" % stat.S_IMODE(m)]
        if "--no-owner" not in opts:
            f.append("owner=%d:%d" % (st.st_uid, st.st_gid))
        mt = st.st_mtime_ns
        if "--mtime-sec" in opts:
            mt = mt // 10**9 * 10**9
        if "--no-mtime" in opts:
            pass
        elif not ((kind == "d" and "--no-dir-mtime" in opts) or (kind == "l" and "--no-link-mtime" in opts)):
            f.append("mtime=%d" % mt)
        if kind == "f":
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                while True:
                    b = fh.read(1 << 20)
                    if not b:
                        break
                    h.update(b)
            f.append("size=%d" % st.st_size)
            f.append("sha=%s" % h.hexdigest()[:32])
            if st.st_nlink > 1 and "--no-hardlinks" not in opts:
                g = groups[(st.st_dev, st.st_ino)]
                f.append("hardlinks=%s" % "|".join(sorted(g)))
        elif kind == "l":
            f.append("-> %s" % os.readlink(p))
        if kind in "fd" and "--no-xattr" not in opts:
            xs = []
            for x in sorted(os.listxattr(p, follow_symlinks=False)):
                if x.startswith("user."):
                    xs.append("%s=%s" % (x, os.getxattr(p, x, follow_symlinks=False).hex()))
            if xs:
                f.append("xattr{%s}" % ",".join(xs))
        if kind in "fd" and "--no-acl" not in opts:
            a = get_acl(p, "system.posix_acl_access")
            if a:
                f.append("acl=%s" % a)
            if kind == "d":
                a = get_acl(p, "system.posix_acl_default")
                if a:
                    f.append("default_acl=%s" % a)
        lines.append(" ".join(f))
    return "\n".join(lines)


def main(argv):
    if argv[1] == "mksrc":
        mksrc(argv[2])
    elif argv[1] == "manifest":
        print(manifest(argv[2].rstrip("/") or "/", set(argv[3:])))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
