#!/usr/bin/python3
"""A PyTorch-style data loader built from the standard library (plus numpy to
decode samples), for tests/integration/t1200-tools-python.sh.

  t1200_loader.py make DIR N MANIFEST      write N samples DIR/samples/KK/NNNNN.npy (about
                                           100 KiB each, sizes vary); the expected sha256 of
                                           every file (from the bytes generated in memory,
                                           never read back) goes to MANIFEST (JSON)
  t1200_loader.py run DIR MANIFEST WORKERS EPOCHS [read|mmap]
                                           a Dataset over those files; a multiprocessing
                                           Pool of WORKERS reads shuffled batches for EPOCHS
                                           epochs; each sample is read, checksummed and
                                           decoded with np.load in a worker (mmap: each
                                           sample opened with np.load(mmap_mode='r'))

`run` prints one JSON object: per epoch the number of samples, the number
that matched, seconds and samples/s; the list of mismatches (index, why).
Exit status 0 even on mismatches: the shell decides.
"""

import hashlib
import io
import json
import multiprocessing
import os
import random
import sys
import time

import numpy as np


def sample_path(root, i):
    return os.path.join(root, "samples", "%02d" % (i % 50), "%05d.npy" % i)


def sample_bytes(i):
    rng = np.random.default_rng(120000 + i)
    n = 80 * 1024 + int(rng.integers(0, 40 * 1024))
    arr = np.frombuffer(rng.bytes(n), dtype=np.uint8).copy()
    arr[0] = i % 10                     # the "label"
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def make(root, n, manifest):
    man = {}
    for k in range(50):
        os.makedirs(os.path.join(root, "samples", "%02d" % k), exist_ok=True)
    total = 0
    for i in range(n):
        b = sample_bytes(i)
        with open(sample_path(root, i), "wb") as f:
            f.write(b)
        man[i] = hashlib.sha256(b).hexdigest()
        total += len(b)
    with open(manifest, "w") as f:
        json.dump({"n": n, "sha": man}, f)
    print(json.dumps({"samples": n, "bytes": total}))


class Dataset:
    """The map-style Dataset protocol: __len__ and __getitem__."""

    def __init__(self, root, n, mode="read"):
        self.root, self.n, self.mode = root, n, mode

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.mode == "mmap":
            # np.load(mmap_mode='r'): pages come in through page faults
            arr = np.load(sample_path(self.root, i), mmap_mode="r")
            buf = io.BytesIO()
            np.save(buf, np.asarray(arr))       # the same bytes as the file
            raw = buf.getvalue()
            label = int(arr[0])
            del arr
        else:
            with open(sample_path(self.root, i), "rb") as f:
                raw = f.read()
            label = int(np.load(io.BytesIO(raw))[0])
        return i, hashlib.sha256(raw).hexdigest(), label, len(raw)


_DS = None


def _init_worker(root, n, mode):
    global _DS
    _DS = Dataset(root, n, mode)


def _load_batch(indices):
    out = []
    for i in indices:
        try:
            out.append(_DS[i])
        except Exception as e:  # noqa: BLE001 - report, do not kill the pool
            out.append((i, "ERROR %s: %s" % (type(e).__name__, e), -1, -1))
    return os.getpid(), out


def run(root, manifest, workers, epochs, mode="read", batch=16):
    with open(manifest) as f:
        man = json.load(f)
    n = man["n"]
    want = {int(k): v for k, v in man["sha"].items()}
    res = {"epochs": [], "mismatches": []}
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(root, n, mode)) as pool:
        for ep in range(epochs):
            order = list(range(n))
            random.Random(1000 + ep).shuffle(order)      # a seeded shuffling sampler
            batches = [order[k:k + batch] for k in range(0, n, batch)]
            seen = {}
            pids = set()
            t0 = time.monotonic()
            for pid, items in pool.imap_unordered(_load_batch, batches, chunksize=2):
                pids.add(pid)
                for i, digest, label, size in items:
                    seen[i] = seen.get(i, 0) + 1
                    if digest != want[i]:
                        res["mismatches"].append([ep, i, "sha256 %s expected %s" % (digest, want[i])])
                    elif label != i % 10:
                        res["mismatches"].append([ep, i, "label %d expected %d" % (label, i % 10)])
            secs = time.monotonic() - t0
            missing = [i for i in range(n) if seen.get(i) != 1]
            for i in missing[:20]:
                res["mismatches"].append([ep, i, "seen %d times in the epoch" % seen.get(i, 0)])
            res["epochs"].append({
                "epoch": ep, "samples": sum(seen.values()),
                "ok": sum(seen.values()) - sum(1 for m in res["mismatches"] if m[0] == ep),
                "workers_used": len(pids), "secs": round(secs, 3),
                "samples_per_s": round(sum(seen.values()) / secs, 1) if secs > 0 else None,
            })
    res["mismatch_count"] = len(res["mismatches"])
    res["mismatches"] = res["mismatches"][:20]
    print(json.dumps(res))


def main(argv):
    if argv[1] == "make":
        make(argv[2], int(argv[3]), argv[4])
    elif argv[1] == "run":
        run(argv[2], argv[3], int(argv[4]), int(argv[5]), argv[6] if len(argv) > 6 else "read")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
