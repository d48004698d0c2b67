#!/usr/bin/python3
"""A training-style data loader (make bench, workload 6).

    loader.py write DIR [--samples N] [--shards S] [--seed X]
        write N samples of about 100 KiB as DIR/shard-SSSSS/sample-NNNNN.bin
    loader.py read DIR [--samples N] [--shards S] [--epochs E] [--workers W] [--drop-caches]
        read every sample once per epoch in a shuffled order with W worker processes

Each prints one JSON object.  The reader knows the layout (as a loader with an index does), so
no directory listing happens inside the timed epochs.  With --drop-caches it drops the kernel's
caches once, after the workers have started and before the first epoch.
"""
import argparse
import json
import multiprocessing
import os
import random
import subprocess
import sys
import time

SAMPLE_MIN = 96 * 1024
SAMPLE_MAX = 104 * 1024


def sample_path(root, i, shards):
    return os.path.join(root, "shard-%05d" % (i % shards), "sample-%05d.bin" % i)


def cmd_write(args):
    rng = random.Random(args.seed)
    pool = rng.randbytes(4 << 20)
    for s in range(args.shards):
        os.makedirs(os.path.join(args.dir, "shard-%05d" % s), exist_ok=True)
    total = 0
    t0 = time.monotonic()
    for i in range(args.samples):
        size = rng.randint(SAMPLE_MIN, SAMPLE_MAX)
        off = rng.randrange(0, len(pool) - size)
        data = i.to_bytes(8, "little") + pool[off + 8:off + size]
        with open(sample_path(args.dir, i, args.shards), "wb", buffering=0) as f:
            f.write(data)
        total += size
    t1 = time.monotonic()
    json.dump({"samples": args.samples, "bytes": total, "seconds": t1 - t0}, sys.stdout)
    print()


def read_sample(path):
    with open(path, "rb", buffering=0) as f:
        return len(f.read())


def drop_caches():
    subprocess.run(["sync"], check=True, timeout=300)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def cmd_read(args):
    paths = [sample_path(args.dir, i, args.shards) for i in range(args.samples)]
    epochs = []
    with multiprocessing.Pool(args.workers) as pool:
        # Start the workers (and import everything) before the clock runs.
        pool.map(abs, range(args.workers * 4))
        if args.drop_caches:
            drop_caches()
        for e in range(args.epochs):
            order = list(paths)
            random.Random(args.seed * 1000 + e).shuffle(order)
            t0 = time.monotonic()
            nbytes = 0
            n = 0
            for size in pool.imap_unordered(read_sample, order, chunksize=8):
                nbytes += size
                n += 1
            t1 = time.monotonic()
            if n != len(paths):
                raise SystemExit("loader: epoch %d read %d of %d samples" % (e + 1, n, len(paths)))
            epochs.append({"seconds": t1 - t0, "bytes": nbytes,
                           "samples_per_s": len(paths) / (t1 - t0)})
    json.dump({"samples": args.samples, "workers": args.workers, "epochs": epochs}, sys.stdout)
    print()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["write", "read"])
    p.add_argument("dir")
    p.add_argument("--samples", type=int, default=10000)
    p.add_argument("--shards", type=int, default=100)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--drop-caches", action="store_true")
    args = p.parse_args()
    if args.mode == "write":
        cmd_write(args)
    else:
        cmd_read(args)


if __name__ == "__main__":
    main()
