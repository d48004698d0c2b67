#!/usr/bin/python3
"""Data-science tools on a directory (a custodyfs mount or plain disk), for
tests/integration/t1200-tools-python.sh.  Run with Debian's /usr/bin/python3.

  t1200_datasci.py np-write  DIR          np.save small and large arrays, np.memmap w+
  t1200_datasci.py np-read   DIR PHASE    np.load (plain, mmap_mode='r'), np.memmap random
                                          reads; PHASE 0 = as written, 1 = after np-rplus
  t1200_datasci.py np-rplus  DIR          mmap_mode='r+' and np.memmap('r+') random writes
                                          (flushed, and one mapping dropped without flush)
  t1200_datasci.py pd        DIR          pandas to_csv/read_csv (100k rows), pickle
  t1200_datasci.py pil       DIR          Pillow PNG (exact), JPEG, TIFF
  t1200_datasci.py h5-write  DIR          h5py datasets with chunking and compression
  t1200_datasci.py h5-read   DIR PHASE    random slices; PHASE 1 = after h5-modify
  t1200_datasci.py h5-modify DIR          open r+, rewrite hyperslabs, add/delete datasets
  t1200_datasci.py h5-swmr   DIR          SWMR: one process appends, another follows
  t1200_datasci.py parallel  DIR          4 workers fill one output: interleaved pwrite(),
                                          O_APPEND log lines, rows of a shared memmap
  t1200_datasci.py parallel-check DIR     check those outputs again (after a remount)
  t1200_datasci.py ckpt      DIR          checkpoint replaced (temp + fsync + rename) 150
                                          times while 2 processes keep loading it

Every command checks what it reads against values regenerated from fixed seeds
(AssertionError on a mismatch, exit status 1) and prints one JSON object: a
digest of what it read, so that the shell can also compare the mount with plain
disk.  Nothing in the digest depends on where DIR is.
"""

import hashlib
import io
import json
import os
import sys
import time

import numpy as np

BIG_SHAPE = (6400, 1024)          # float64: 50 MiB
MM_LEN = 4 * 1024 * 1024          # int32 memmap: 16 MiB


def h(b):
    if isinstance(b, np.ndarray):
        b = np.ascontiguousarray(b).tobytes()
    return hashlib.sha256(b).hexdigest()[:24]


def fsha(path):
    d = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            d.update(b)
    return d.hexdigest()[:24]


def info(msg):
    """Informative output (not compared): the shell prints these lines."""
    sys.stderr.write("INFO %s\n" % msg)


def need(cond, msg):
    if not cond:
        raise AssertionError(msg)


def arrays_equal(a, b, what):
    need(a.dtype == b.dtype, "%s: dtype %s, expected %s" % (what, a.dtype, b.dtype))
    need(a.shape == b.shape, "%s: shape %s, expected %s" % (what, a.shape, b.shape))
    if a.dtype.kind == "f":
        same = np.array_equal(a, b, equal_nan=True)
    else:
        same = np.array_equal(a, b)
    if not same:
        if a.dtype.names is None and a.size:
            bad = np.argwhere(a != b)
            raise AssertionError("%s: %d elements differ, first at %s: got %r expected %r"
                                 % (what, len(bad), tuple(bad[0]), a[tuple(bad[0])], b[tuple(bad[0])]))
        raise AssertionError("%s: contents differ" % what)


# ---------------------------------------------------------------- numpy

def small_arrays():
    rng = np.random.default_rng(1200)
    st = np.dtype([("id", "<i4"), ("x", "<f8"), ("name", "S8")])
    s = np.zeros(50, dtype=st)
    s["id"] = np.arange(50)
    s["x"] = rng.standard_normal(50)
    s["name"] = [("n%d" % i).encode() for i in range(50)]
    return {
        "f32": rng.standard_normal((3, 4)).astype(np.float32),
        "i64": np.arange(1000, dtype=np.int64) * 7 - 3,
        "empty": np.zeros((0,), dtype=np.uint8),
        "scalar": np.array(3.5),
        "bool": rng.random(777) > 0.5,
        "fortran": np.asfortranarray(rng.integers(0, 1000, (17, 31))),
        "struct": s,
        "complex": (rng.standard_normal(99) + 1j * rng.standard_normal(99)).astype(np.complex128),
        "bigendian": np.arange(-500, 500, dtype=">i4"),
        "unicode": np.array(["alpha", "\u03b2eta", "\u03b3", ""]),
        # the .npy header is 128 bytes: these end exactly at / just past a 4 KiB block
        "block4096": rng.integers(0, 256, 4096 - 128, dtype=np.uint8),
        "block4097": rng.integers(0, 256, 4097 - 128, dtype=np.uint8),
        "nan": np.array([np.nan, np.inf, -np.inf, -0.0, 1e-310]),
    }


def big_array():
    return np.random.default_rng(1201).standard_normal(BIG_SHAPE)


def mm_array():
    a = np.arange(MM_LEN, dtype=np.int32) * 3
    rng = np.random.default_rng(1202)
    idx = rng.integers(0, MM_LEN, 3000)
    a[idx] = -idx.astype(np.int32)
    return a


def rplus_changes():
    """(rows, values) written into big.npy through mmap_mode='r+'; a region
    written into the memmap; and the rows of the un-flushed mapping."""
    rng = np.random.default_rng(1203)
    rows = np.unique(rng.integers(0, BIG_SHAPE[0], 300))
    idx = np.unique(rng.integers(0, MM_LEN, 5000))
    return rows, idx


def apply_rplus(big, mm):
    rows, idx = rplus_changes()
    big[rows, :] = rows[:, None] * 1000.0 + np.arange(BIG_SHAPE[1])[None, :] / 7.0
    # a range that straddles many 4 KiB blocks and does not start on one
    big.reshape(-1)[123457:123457 + 70000] = -1.25
    mm[idx] = 7_000_000 + idx.astype(np.int32)
    mm[MM_LEN - 1000:] = 42
    # what the un-flushed mapping writes (see np-rplus)
    big[BIG_SHAPE[0] - 1, :] = 99.5
    big[0, :5] = [1, 2, 3, 4, 5]


def np_write(d):
    out = {}
    for name, a in small_arrays().items():
        p = os.path.join(d, "small_%s.npy" % name)
        np.save(p, a)
        out[name] = fsha(p)
    np.savez(os.path.join(d, "bundle.npz"), **{k: v for k, v in small_arrays().items() if k != "struct"})
    np.savez_compressed(os.path.join(d, "bundle_c.npz"), a=np.arange(100000) % 97, b=small_arrays()["f32"])
    # np.save over an existing, larger file (O_TRUNC): no stale tail may remain
    ow = os.path.join(d, "overwrite.npy")
    np.save(ow, np.arange(300_000, dtype=np.float64))
    np.save(ow, np.arange(1000, dtype=np.int16))
    arrays_equal(np.load(ow), np.arange(1000, dtype=np.int16), "np.save over a larger file")
    need(os.path.getsize(ow) == 128 + 2000, "overwrite.npy has %d bytes" % os.path.getsize(ow))
    out["overwrite"] = fsha(ow)
    big = big_array()
    np.save(os.path.join(d, "big.npy"), big)
    out["big"] = fsha(os.path.join(d, "big.npy"))
    mm = np.memmap(os.path.join(d, "mm.i32"), dtype=np.int32, mode="w+", shape=(MM_LEN,))
    mm[:] = np.arange(MM_LEN, dtype=np.int32) * 3
    rng = np.random.default_rng(1202)
    idx = rng.integers(0, MM_LEN, 3000)
    for i in idx:                       # scattered single-element writes
        mm[i] = -i
    mm.flush()
    del mm
    out["mm"] = fsha(os.path.join(d, "mm.i32"))
    return out


def np_read(d, phase):
    out = {}
    for name, want in small_arrays().items():
        p = os.path.join(d, "small_%s.npy" % name)
        got = np.load(p)
        arrays_equal(got, want, "np.load " + p)
        if name == "fortran":
            need(got.flags.f_contiguous, "np.load lost Fortran order")
        if want.size:
            m = np.load(p, mmap_mode="r")
            arrays_equal(np.asarray(m), want, "np.load(mmap_mode='r') " + p)
            del m
        out["small_" + name] = h(got)
    with np.load(os.path.join(d, "bundle.npz")) as z:
        for k, v in small_arrays().items():
            if k != "struct":
                arrays_equal(z[k], v, "npz member " + k)
        out["npz"] = sorted(z.files)
    with np.load(os.path.join(d, "bundle_c.npz")) as z:
        arrays_equal(z["a"], np.arange(100000) % 97, "npz_compressed a")
        out["npzc"] = h(z["a"]) + h(z["b"])

    want_big = big_array()
    want_mm = mm_array()
    if phase == 1:
        apply_rplus(want_big, want_mm)
    bp = os.path.join(d, "big.npy")
    got = np.load(bp)
    arrays_equal(got, want_big, "np.load big.npy (phase %d)" % phase)
    out["big"] = h(got)
    del got

    # random access through a read-only mapping
    m = np.load(bp, mmap_mode="r")
    need(isinstance(m, np.memmap), "mmap_mode='r' did not give a memmap")
    rng = np.random.default_rng(77)
    acc = hashlib.sha256()
    for _ in range(400):
        r0 = int(rng.integers(0, BIG_SHAPE[0] - 8))
        c0 = int(rng.integers(0, BIG_SHAPE[1] - 40))
        r1 = r0 + int(rng.integers(1, 8))
        c1 = c0 + int(rng.integers(1, 40))
        sl = np.array(m[r0:r1, c0:c1])
        arrays_equal(sl, want_big[r0:r1, c0:c1], "mmap r slice [%d:%d,%d:%d]" % (r0, r1, c0, c1))
        acc.update(sl.tobytes())
    col = np.array(m[:, 517])           # strided: one element from every 8 KiB row
    arrays_equal(col, want_big[:, 517], "mmap r column 517")
    acc.update(col.tobytes())
    out["big_mmap_slices"] = acc.hexdigest()[:24]
    del m

    mm = np.memmap(os.path.join(d, "mm.i32"), dtype=np.int32, mode="r")
    need(mm.shape == (MM_LEN,), "memmap shape %s" % (mm.shape,))
    idx = np.random.default_rng(78).integers(0, MM_LEN, 20000)
    vals = np.array([mm[i] for i in idx[:2000]] + list(mm[idx[2000:]]), dtype=np.int32)
    arrays_equal(vals, want_mm[idx], "np.memmap random reads")
    arrays_equal(np.array(mm), want_mm, "np.memmap whole")
    out["mm"] = h(vals)
    del mm
    out["files"] = {n: fsha(os.path.join(d, n)) for n in ("big.npy", "mm.i32")}
    return out


def np_rplus(d):
    rows, idx = rplus_changes()
    bp = os.path.join(d, "big.npy")
    mp = os.path.join(d, "mm.i32")
    size0 = os.path.getsize(bp)
    old = 1_500_000_000_000_000_000     # set old mtimes: writes through a mapping must move them
    os.utime(bp, ns=(old, old))
    os.utime(mp, ns=(old, old))
    m = np.load(bp, mmap_mode="r+")
    m[rows, :] = rows[:, None] * 1000.0 + np.arange(BIG_SHAPE[1])[None, :] / 7.0
    m.reshape(-1)[123457:123457 + 70000] = -1.25
    m.flush()
    del m
    mm = np.memmap(os.path.join(d, "mm.i32"), dtype=np.int32, mode="r+")
    for i in idx[:500]:                 # scattered element writes
        mm[i] = 7_000_000 + i
    mm[idx[500:]] = 7_000_000 + idx[500:].astype(np.int32)
    mm[MM_LEN - 1000:] = 42
    mm.flush()
    del mm
    # read() in this process sees what was flushed through the mappings
    with open(bp, "rb") as f:
        f.seek(128 + int(rows[3]) * BIG_SHAPE[1] * 8)
        row = np.frombuffer(f.read(BIG_SHAPE[1] * 8), dtype="<f8")
    arrays_equal(row, rows[3] * 1000.0 + np.arange(BIG_SHAPE[1]) / 7.0, "read() of a row written through mmap")
    # a mapping that is dropped without flush(): the kernel must still write it back
    m = np.load(bp, mmap_mode="r+")
    m[BIG_SHAPE[0] - 1, :] = 99.5
    m[0, :5] = [1, 2, 3, 4, 5]
    del m                               # munmap without msync (numpy never flushes on its own)
    need(os.path.getsize(bp) == size0, "big.npy changed size: %d -> %d" % (size0, os.path.getsize(bp)))
    # tools such as rsync and make rely on the mtime moving
    moved = {n: os.stat(p).st_mtime_ns > old for n, p in (("big.npy", bp), ("mm.i32", mp))}
    need(all(moved.values()), "mtime not updated by writes through mmap (after flush/munmap): %s" % moved)
    return {"rows": len(rows), "idx": len(idx), "mtime_moved": moved}


# ---------------------------------------------------------------- pandas

def make_df():
    import pandas as pd
    n = 100_000
    rng = np.random.default_rng(1210)
    words = np.array(["alpha", "beta, gamma", 'say "hi"', "caf\u00e9", "\u6570\u636e", "x" * 40, "", "line"])
    f = rng.standard_normal(n) * 1e3
    f[rng.integers(0, n, 500)] = np.nan
    df = pd.DataFrame({
        "id": np.arange(n, dtype=np.int64),
        "value": f,
        "small": rng.random(n).astype(np.float32),
        "count": rng.integers(-10**12, 10**12, n),
        "word": words[rng.integers(0, len(words), n)],
        "flag": rng.random(n) > 0.3,
        "when": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 10**15, n), unit="ns"),
        "cat": pd.Categorical(rng.choice(["train", "val", "test"], n)),
    })
    df.loc[rng.integers(0, n, 100), "word"] = np.nan
    return df


def read_back_csv(path, **kw):
    import pandas as pd
    return pd.read_csv(path, float_precision="round_trip", keep_default_na=False,
                       na_values={"value": [""], "small": [""], "word": [""]},
                       dtype={"word": object, "cat": "category", "small": np.float32},
                       parse_dates=["when"], **kw)


def pd_cmd(d):
    import pandas as pd
    out = {}
    df = make_df()
    # CSV cannot tell an empty string from a missing one: compare with ""
    # turned into NaN
    want = df.copy()
    want.loc[want["word"] == "", "word"] = np.nan
    want["cat"] = want["cat"].cat.set_categories(sorted(want["cat"].cat.categories))
    p = os.path.join(d, "frame.csv")
    df.to_csv(p, index=False)
    out["csv_file"] = fsha(p)
    out["csv_size"] = os.path.getsize(p)
    got = read_back_csv(p)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    out["csv_hash"] = h(pd.util.hash_pandas_object(got, index=True).values)
    # streaming read in chunks, and a column subset
    total, rows = 0, 0
    for chunk in pd.read_csv(p, chunksize=7777, usecols=["id", "count"]):
        total += int(chunk["count"].sum())
        rows += len(chunk)
    need(rows == len(df) and total == int(df["count"].sum()), "chunked read_csv: %d rows, sum %d" % (rows, total))
    part = pd.read_csv(p, skiprows=range(1, 50001), nrows=1000, float_precision="round_trip")
    need(part["id"].tolist() == list(range(50000, 51000)), "skiprows/nrows read the wrong rows")
    np.testing.assert_array_equal(part["value"].to_numpy(), df["value"].to_numpy()[50000:51000])
    out["csv_chunks"] = [rows, total]
    # appending to an existing CSV (mode='a')
    pa = os.path.join(d, "append.csv")
    df.iloc[:30000].to_csv(pa, index=False)
    df.iloc[30000:].to_csv(pa, index=False, mode="a", header=False)
    need(fsha(pa) == out["csv_file"], "CSV written in two appends differs from the one-shot CSV")
    # gzip-compressed CSV
    pg = os.path.join(d, "frame.csv.gz")
    # (gzip stores a time stamp in its header: fix it so the bytes can be compared)
    df.iloc[:20000].to_csv(pg, index=False, compression={"method": "gzip", "mtime": 0})
    pd.testing.assert_frame_equal(read_back_csv(pg), want.iloc[:20000], check_exact=True)
    # pickle, plain and compressed
    pk = os.path.join(d, "frame.pkl")
    df.to_pickle(pk)
    got = pd.read_pickle(pk)
    pd.testing.assert_frame_equal(got, df, check_exact=True)
    out["pickle_file"] = fsha(pk)
    pkx = os.path.join(d, "frame.pkl.xz")
    df.iloc[:20000].to_pickle(pkx)
    pd.testing.assert_frame_equal(pd.read_pickle(pkx), df.iloc[:20000], check_exact=True)
    out["pickle_xz_file"] = fsha(pkx)
    # parquet needs pyarrow or fastparquet, which this Python does not have
    try:
        import pyarrow  # noqa: F401
        out["parquet"] = "pyarrow-available"
    except ImportError:
        try:
            import fastparquet  # noqa: F401
            out["parquet"] = "fastparquet-available"
        except ImportError:
            out["parquet"] = "unavailable"
    return out


# ---------------------------------------------------------------- Pillow

def pil_images():
    y, x = np.mgrid[0:480, 0:640]
    rng = np.random.default_rng(1220)
    rgb = np.stack([(x * 255 // 639), (y * 255 // 479), ((x + y) % 256)], axis=-1).astype(np.int16)
    rgb = np.clip(rgb + rng.integers(-20, 21, rgb.shape), 0, 255).astype(np.uint8)
    alpha = ((x ^ y) & 0xFF).astype(np.uint8)
    gray16 = (x * 97 + y * 13).astype(np.uint16)
    return rgb, np.dstack([rgb, alpha]), gray16


def pil_cmd(d):
    from PIL import Image
    out = {}
    rgb, rgba, g16 = pil_images()
    imgs = {
        "rgb.png": (Image.fromarray(rgb, "RGB"), rgb, {}),
        "rgba.png": (Image.fromarray(rgba, "RGBA"), rgba, {"compress_level": 9}),
        "gray.png": (Image.fromarray(rgb[:, :, 1], "L"), rgb[:, :, 1], {}),
        "gray16.png": (Image.fromarray(g16), g16, {}),
    }
    pal = Image.fromarray(rgb, "RGB").quantize(64)
    imgs["pal.png"] = (pal, np.array(pal), {})
    for name, (im, arr, kw) in imgs.items():
        p = os.path.join(d, name)
        im.save(p, **kw)
        with Image.open(p) as r:
            r.verify()
        with Image.open(p) as r:
            got = np.array(r)
            need(r.size == (640, 480), "%s: size %s" % (name, r.size))
        if got.dtype != arr.dtype:
            got = got.astype(arr.dtype)
        arrays_equal(got, arr, "PNG pixels " + name)
        out[name] = [fsha(p), h(got)]
    for name, kw in (("q90.jpg", {"quality": 90}),
                     ("prog.jpg", {"quality": 75, "progressive": True, "optimize": True}),
                     ("sub.jpg", {"quality": 95, "subsampling": 0})):
        p = os.path.join(d, name)
        Image.fromarray(rgb, "RGB").save(p, **kw)
        with Image.open(p) as r:
            need(r.format == "JPEG", "%s: format %s" % (name, r.format))
            got = np.array(r.convert("RGB"))
        mse = float(np.mean((got.astype(float) - rgb) ** 2))
        psnr = 10 * np.log10(255.0 ** 2 / mse) if mse else 99.0
        need(psnr > 20, "%s: PSNR %.1f dB against the source is too low" % (name, psnr))
        out[name] = [fsha(p), h(got), round(psnr, 3)]
        # a cropped region decoded on its own (draft / partial decode)
        with Image.open(p) as r:
            r.draft("RGB", (320, 240))
            out[name].append(h(np.array(r)))
    # multi-page TIFF with deflate: libtiff seeks and rewrites directories
    p = os.path.join(d, "stack.tif")
    pages = [Image.fromarray(np.roll(rgb, k * 10, axis=1), "RGB") for k in range(5)]
    pages[0].save(p, save_all=True, append_images=pages[1:], compression="tiff_deflate")
    with Image.open(p) as r:
        need(r.n_frames == 5, "TIFF has %d frames" % r.n_frames)
        for k in (3, 0, 4, 1, 2):
            r.seek(k)
            arrays_equal(np.array(r), np.roll(rgb, k * 10, axis=1), "TIFF frame %d" % k)
    out["stack.tif"] = fsha(p)
    # thumbnail of a file read from DIR, written back to DIR
    with Image.open(os.path.join(d, "rgb.png")) as r:
        r.thumbnail((128, 128))
        r.save(os.path.join(d, "thumb.png"))
    out["thumb.png"] = fsha(os.path.join(d, "thumb.png"))
    return out


# ---------------------------------------------------------------- h5py

def h5_data():
    rng = np.random.default_rng(1230)
    return {
        "raw/contig": rng.standard_normal((1000, 500)),
        "raw/chunk_gzip": rng.integers(-1000, 1000, (3000, 400)).astype(np.int32),
        "raw/chunk_lzf": (rng.random((2000, 300)) * 100).astype(np.float32),
        "labels": (np.arange(100000) % 10).astype(np.uint8),
        "grow": rng.standard_normal((20 * 500, 16)),
    }


def h5_modify_expect(data):
    rng = np.random.default_rng(1231)
    edits = []
    for _ in range(40):
        r0 = int(rng.integers(0, 2900))
        c0 = int(rng.integers(0, 350))
        edits.append((r0, r0 + int(rng.integers(1, 100)), c0, c0 + int(rng.integers(1, 50))))
    g = data["raw/chunk_gzip"]
    for k, (r0, r1, c0, c1) in enumerate(edits):
        g[r0:r1, c0:c1] = 5000 + k
    data["raw/contig"][::7, ::3] = 0.5
    del data["raw/chunk_lzf"]
    data["added"] = np.arange(50000, dtype=np.float64).reshape(500, 100) ** 0.5
    return edits


def h5_write(d):
    import h5py
    data = h5_data()
    p = os.path.join(d, "data.h5")
    with h5py.File(p, "w") as f:
        f.attrs["title"] = "custodyfs t1200"
        raw = f.create_group("raw")
        raw.attrs["count"] = 3
        raw.create_dataset("contig", data=data["raw/contig"], track_times=False)
        raw.create_dataset("chunk_gzip", data=data["raw/chunk_gzip"], chunks=(128, 64),
                           compression="gzip", compression_opts=4, shuffle=True, track_times=False)
        raw.create_dataset("chunk_lzf", data=data["raw/chunk_lzf"], chunks=(100, 100),
                           compression="lzf", track_times=False)
        f.create_dataset("labels", data=data["labels"], chunks=(4096,), compression="gzip",
                         fletcher32=True, track_times=False)
        g = f.create_dataset("grow", shape=(0, 16), maxshape=(None, 16), chunks=(256, 16),
                             dtype="f8", track_times=False)
        for k in range(20):             # appended in 20 steps, file growing each time
            g.resize(((k + 1) * 500, 16))
            g[k * 500:(k + 1) * 500] = data["grow"][k * 500:(k + 1) * 500]
            f.flush()
        dt = h5py.string_dtype()
        f.create_dataset("strings", data=np.array(["s%d-%s" % (i, "x" * (i % 13)) for i in range(1000)], dtype=object),
                         dtype=dt, track_times=False)
    return {"file": fsha(p), "size": os.path.getsize(p)}


def h5_read(d, phase):
    import h5py
    data = h5_data()
    if phase == 1:
        h5_modify_expect(data)
    p = os.path.join(d, "data.h5")
    out = {}
    rng = np.random.default_rng(1232)
    with h5py.File(p, "r") as f:
        need(f.attrs["title"] == "custodyfs t1200", "file attribute")
        names = []
        f.visit(names.append)
        out["names"] = sorted(names)
        for name, want in sorted(data.items()):
            ds = f[name]
            need(ds.shape == want.shape, "%s: shape %s, expected %s" % (name, ds.shape, want.shape))
            acc = hashlib.sha256()
            for _ in range(150):        # random hyperslabs: random chunk reads
                sl = tuple(slice(a, a + int(rng.integers(1, 60)))
                           for a in (int(rng.integers(0, n)) for n in want.shape))
                got = ds[sl]
                arrays_equal(got, want[sl], "%s%s" % (name, sl))
                acc.update(got.tobytes())
            pts = np.sort(np.unique(rng.integers(0, want.shape[0], 50)))
            arrays_equal(ds[pts], want[pts], "%s fancy rows" % name)   # point selection
            arrays_equal(ds[()], want, name + " whole")
            out[name] = acc.hexdigest()[:24]
        s = f["strings"].asstr()[()]
        need(list(s) == ["s%d-%s" % (i, "x" * (i % 13)) for i in range(1000)], "variable-length strings")
    out["file"] = fsha(p)
    return out


def h5_modify(d):
    import h5py
    data = h5_data()
    edits = h5_modify_expect(data)
    with h5py.File(os.path.join(d, "data.h5"), "r+") as f:
        g = f["raw/chunk_gzip"]
        for k, (r0, r1, c0, c1) in enumerate(edits):
            g[r0:r1, c0:c1] = 5000 + k
        f["raw/contig"][::7, ::3] = 0.5
        del f["raw/chunk_lzf"]
        f.create_dataset("added", data=data["added"], chunks=(50, 100), compression="gzip", track_times=False)
    return {"edits": len(edits)}


def h5_swmr(d):
    """A writer appends rows in SWMR mode while a reader process (a separate
    interpreter) follows the file; every row the reader sees must be complete."""
    import subprocess
    import h5py
    p = os.path.join(d, "swmr.h5")
    steps, rows, width = 40, 50, 64
    with h5py.File(p, "w", libver="latest") as f:
        ds = f.create_dataset("log", shape=(0, width), maxshape=(None, width), chunks=(rows, width),
                              dtype="f8", track_times=False)
        f.swmr_mode = True
        rd = subprocess.Popen([sys.executable, __file__, "h5-swmr-reader", d, str(steps * rows)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for k in range(steps):
            n = (k + 1) * rows
            ds.resize((n, width))
            ds[n - rows:n] = np.arange(n - rows, n, dtype="f8")[:, None] + np.arange(width) / 1000.0
            ds.flush()
            time.sleep(0.01)
        out, err = rd.communicate(timeout=120)
    need(rd.returncode == 0, "SWMR reader failed: %s" % err.strip()[-800:])
    r = json.loads(out)
    with h5py.File(p, "r") as f:
        got = f["log"][()]
    want = np.arange(steps * rows, dtype="f8")[:, None] + np.arange(width) / 1000.0
    arrays_equal(got, want, "SWMR log after the writer closed")
    info("SWMR reader: %d polls, %d distinct sizes seen while the writer appended" % (r["polls"], r["sizes"]))
    return {"final_rows": int(got.shape[0]), "reader_final_rows": r["last"], "reader_bad": r["bad"]}


def h5_swmr_reader(d, total):
    import h5py
    p = os.path.join(d, "swmr.h5")
    deadline = time.time() + 60
    polls, sizes, last, bad = 0, set(), 0, []
    while True:
        try:
            f = h5py.File(p, "r", libver="latest", swmr=True)
            break
        except (OSError, KeyError):
            if time.time() > deadline:
                raise
            time.sleep(0.01)
    with f:
        while "log" not in f:
            time.sleep(0.01)
        ds = f["log"]
        while time.time() < deadline:
            ds.refresh()
            n = ds.shape[0]
            polls += 1
            sizes.add(n)
            if n:
                got = ds[:n]
                want = np.arange(n, dtype="f8")[:, None] + np.arange(ds.shape[1]) / 1000.0
                if not np.array_equal(got, want):
                    bad.append(n)
            last = n
            if n >= total:
                break
            time.sleep(0.005)
    print(json.dumps({"polls": polls, "sizes": len(sizes), "last": last, "bad": bad[:5]}))


# ---------------------------------------------------------------- parallel writers

PAR_REC, PAR_N, PAR_W = 1000, 4000, 4
PAR_SHAPE = (3000, 333)                 # float32 rows of 1332 bytes: rows share 4 KiB blocks


def par_rec(i):
    return (hashlib.sha256(b"%d" % i).digest() * 32)[:PAR_REC]


def par_want():
    return (np.arange(PAR_SHAPE[0])[:, None] + np.arange(PAR_SHAPE[1])[None, :] / 1000).astype("f4")


def _par_pwrite(args):
    d, k = args
    fd = os.open(os.path.join(d, "records.bin"), os.O_WRONLY)
    for i in range(k, PAR_N, PAR_W):    # interleaved: neighbours belong to other workers
        os.pwrite(fd, par_rec(i), i * PAR_REC)
    os.close(fd)


def _par_append(args):
    d, k = args
    fd = os.open(os.path.join(d, "metrics.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for i in range(500):
        os.write(fd, ("worker %d step %04d loss %s\n" % (k, i, "0." + "9" * (i % 40 + 1))).encode())
    os.close(fd)


def _par_memmap(args):
    d, k = args
    a = np.load(os.path.join(d, "features.npy"), mmap_mode="r+")
    want = par_want()
    for i in range(k, PAR_SHAPE[0], PAR_W):
        a[i] = want[i]
    a.flush()
    del a


def par_check(d):
    data = open(os.path.join(d, "records.bin"), "rb").read()
    need(len(data) == PAR_N * PAR_REC, "records.bin has %d bytes, expected %d" % (len(data), PAR_N * PAR_REC))
    bad = [i for i in range(PAR_N) if data[i * PAR_REC:(i + 1) * PAR_REC] != par_rec(i)]
    need(not bad, "records.bin: %d of %d records written by parallel pwrite() are wrong, first %s"
         % (len(bad), PAR_N, bad[:8]))
    lines = open(os.path.join(d, "metrics.log")).read().split("\n")
    need(lines[-1] == "", "metrics.log does not end with a newline")
    lines = lines[:-1]
    want = sorted("worker %d step %04d loss %s" % (k, i, "0." + "9" * (i % 40 + 1)) for k in range(PAR_W) for i in range(500))
    need(sorted(lines) == want, "metrics.log: %d lines, %d expected; lost or torn O_APPEND writes (e.g. %r)"
         % (len(lines), len(want), sorted(set(lines) ^ set(want))[:3]))
    for k in range(PAR_W):              # each worker's lines stay in its order
        mine = [ln for ln in lines if ln.startswith("worker %d " % k)]
        need(mine == sorted(mine), "metrics.log: worker %d's lines out of order" % k)
    a = np.load(os.path.join(d, "features.npy"))
    badrows = np.nonzero((a != par_want()).any(axis=1))[0]
    need(len(badrows) == 0, "features.npy: %d rows filled by parallel np.memmap workers are wrong, first %s"
         % (len(badrows), badrows[:8].tolist()))
    return {"records": fsha(os.path.join(d, "records.bin")), "log_lines": len(lines),
            "features": fsha(os.path.join(d, "features.npy"))}


def parallel(d):
    """Worker processes writing one shared output: interleaved pwrite() of
    1000-byte records, O_APPEND lines to a shared log, and rows of a shared
    .npy opened with mmap_mode='r+' in every worker."""
    import multiprocessing
    fd = os.open(os.path.join(d, "records.bin"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.ftruncate(fd, PAR_N * PAR_REC)
    os.close(fd)
    np.lib.format.open_memmap(os.path.join(d, "features.npy"), mode="w+", dtype="f4", shape=PAR_SHAPE).flush()
    with multiprocessing.get_context("fork").Pool(PAR_W) as pool:
        pool.map(_par_pwrite, [(d, k) for k in range(PAR_W)])
        pool.map(_par_append, [(d, k) for k in range(PAR_W)])
        pool.map(_par_memmap, [(d, k) for k in range(PAR_W)])
    return par_check(d)


# ---------------------------------------------------------------- checkpoint replacement

CK_LEN = 50_000
CK_VERSIONS = 150


def _ck_reader(path, stop, q):
    n = bad = 0
    errs, seen = [], set()
    while True:
        last = stop.is_set()
        try:
            a = np.load(path)
            v = float(a[0])
            if a.shape != (CK_LEN,) or not (a == v).all():
                bad += 1
            seen.add(v)
            n += 1
        except Exception as e:  # noqa: BLE001 - a torn or missing checkpoint
            errs.append("%s: %s" % (type(e).__name__, e))
        if last:
            break
    q.put({"loads": n, "torn": bad, "versions": len(seen), "errors": errs[:3], "nerrors": len(errs)})


def ckpt(d):
    """Checkpoint replacement: write a temp file, fsync, os.replace over
    latest.npy, CK_VERSIONS times, while 2 processes keep loading latest.npy:
    every load must give one complete version, never an error."""
    import multiprocessing
    p = os.path.join(d, "latest.npy")
    np.save(p, np.zeros(CK_LEN))
    ctx = multiprocessing.get_context("fork")
    stop, q = ctx.Event(), ctx.Queue()
    rs = [ctx.Process(target=_ck_reader, args=(p, stop, q)) for _ in range(2)]
    for r in rs:
        r.start()
    for v in range(1, CK_VERSIONS + 1):
        tmp = p + ".tmp"
        with open(tmp, "wb") as f:
            np.save(f, np.full(CK_LEN, float(v)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        time.sleep(0.001)
    stop.set()
    res = [q.get(timeout=60) for _ in rs]
    for r in rs:
        r.join(30)
    info("checkpoint readers: " + "; ".join("%d loads, %d versions seen" % (r["loads"], r["versions"]) for r in res))
    need(all(r["torn"] == 0 and r["nerrors"] == 0 for r in res),
         "np.load('latest.npy') in a reader failed or saw a torn file while the writer replaced it "
         "with os.replace() (rename(2) over it, which is atomic: the name always exists); "
         "per reader: %s" % res)
    need(all(r["loads"] > 0 for r in res), "a reader never loaded the checkpoint")
    final = np.load(p)
    need(float(final[0]) == CK_VERSIONS and (final == CK_VERSIONS).all(), "the final checkpoint is not the last version")
    need(not os.path.exists(p + ".tmp"), "the temp file is still there")
    return {"final": fsha(p), "readers_ok": len(res)}


def main(argv):
    cmd, d = argv[1], argv[2]
    phase = int(argv[3]) if len(argv) > 3 else 0
    fn = {
        "np-write": lambda: np_write(d),
        "np-read": lambda: np_read(d, phase),
        "np-rplus": lambda: np_rplus(d),
        "pd": lambda: pd_cmd(d),
        "pil": lambda: pil_cmd(d),
        "h5-write": lambda: h5_write(d),
        "h5-read": lambda: h5_read(d, phase),
        "h5-modify": lambda: h5_modify(d),
        "h5-swmr": lambda: h5_swmr(d),
        "parallel": lambda: parallel(d),
        "parallel-check": lambda: par_check(d),
        "ckpt": lambda: ckpt(d),
        "h5-swmr-reader": lambda: h5_swmr_reader(d, phase),
    }[cmd]
    if cmd == "h5-swmr-reader":
        fn()
        return 0
    print(json.dumps(fn(), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
