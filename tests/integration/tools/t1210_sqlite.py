#!/usr/bin/python3
"""SQLite workloads on a database file (on a custodyfs mount or plain disk),
for tests/integration/t1210-tools-sqlite.sh.  Run with Debian's /usr/bin/python3.

  t1210_sqlite.py build DB MODE ROWS BATCH READERS
        create the database in journal mode MODE (wal, delete, truncate, persist),
        insert ROWS rows in transactions of BATCH rows from one writer process
        while READERS reader processes repeatedly read consistent snapshots
        (rows counted must match the per-transaction bookkeeping, every row
        read must hold the content derived from its id)
  t1210_sqlite.py contend DB WRITERS TXNS
        WRITERS processes each commit TXNS small transactions into the same
        database at the same time (busy_timeout), then the totals are checked
  t1210_sqlite.py vacuum DB
        delete a third of the rows, VACUUM, check
  t1210_sqlite.py check DB
        integrity_check and the digest only (read-only)

With T1210_MMAP=1 in the environment every connection uses PRAGMA mmap_size
(SQLite's memory-mapped I/O).

Every command prints one JSON object: "digest" (what the data is; equal on
the mount and on plain disk) and "stats" (reader counts etc., informative).
"""

import hashlib
import json
import multiprocessing
import os
import sqlite3
import sys
import time

BUSY_MS = 60000


def payload(i):
    n = 20 + (i * 7919) % 300
    return (hashlib.sha256(b"row%d" % i).digest() * 12)[:n]


def name(i):
    return "item-%06d-%s" % (i, "abcdefghij"[i % 10] * (i % 17))


def connect(db):
    c = sqlite3.connect(db, timeout=BUSY_MS / 1000, isolation_level=None)
    c.execute("PRAGMA busy_timeout=%d" % BUSY_MS)
    if os.environ.get("T1210_MMAP"):
        # memory-mapped I/O: SQLite reads the database through mmap
        c.execute("PRAGMA mmap_size=%d" % (256 << 20))
    return c


def digest(db):
    c = connect(db)
    try:
        c.execute("BEGIN")
        ic = [r[0] for r in c.execute("PRAGMA integrity_check")]
        fk = c.execute("PRAGMA foreign_key_check").fetchall()
        n, s = c.execute("SELECT count(*), coalesce(sum(v), 0) FROM items").fetchone()
        h = hashlib.sha256()
        bad = []
        for row in c.execute("SELECT id, batch, name, v, payload FROM items ORDER BY id"):
            h.update(repr(row).encode())
            i = row[0]
            if row[2] != name(i) or row[4] != payload(i) or row[3] != i * 3 - 7:
                bad.append(i)
        hb = hashlib.sha256()
        for row in c.execute("SELECT * FROM batches ORDER BY batch"):
            hb.update(repr(row).encode())
        bsum = c.execute("SELECT coalesce(sum(n), 0), coalesce(sum(total), 0) FROM batches").fetchone()
        idx = c.execute("SELECT count(*) FROM items INDEXED BY items_name WHERE name LIKE 'item-0001%'").fetchone()[0]
        jm = c.execute("PRAGMA journal_mode").fetchone()[0]
        c.execute("COMMIT")
    finally:
        c.close()
    return {"integrity": ic, "fk": fk, "rows": n, "sum": s, "rows_sha": h.hexdigest()[:24],
            "batches_sha": hb.hexdigest()[:24], "batches_sum": list(bsum), "bad_rows": bad[:10],
            "index_rows": idx, "journal_mode": jm}


def create(db, mode):
    c = connect(db)
    got = c.execute("PRAGMA journal_mode=%s" % mode).fetchone()[0]
    c.executescript("""
        CREATE TABLE items(id INTEGER PRIMARY KEY, batch INTEGER NOT NULL REFERENCES batches(batch),
                           name TEXT NOT NULL, v INTEGER NOT NULL, payload BLOB NOT NULL);
        CREATE INDEX items_name ON items(name);
        CREATE TABLE batches(batch INTEGER PRIMARY KEY, n INTEGER NOT NULL, total INTEGER NOT NULL);
    """)
    c.close()
    return got


def reader(db, stop, q, seed):
    """Read snapshots until told to stop; report counts and problems."""
    import random
    rnd = random.Random(seed)
    reads = errors = incons = 0
    counts = set()
    problems = []
    try:
        c = connect(db)
        while True:
            last = stop.is_set()
            try:
                c.execute("BEGIN")
                n, s = c.execute("SELECT count(*), coalesce(sum(v), 0) FROM items").fetchone()
                bn, bt = c.execute("SELECT coalesce(sum(n), 0), coalesce(sum(total), 0) FROM batches").fetchone()
                if n:
                    i = rnd.randrange(1, n + 1)
                    row = c.execute("SELECT name, v, payload FROM items WHERE id=?", (i,)).fetchone()
                    if row is None or row != (name(i), i * 3 - 7, payload(i)):
                        incons += 1
                        problems.append("row %d reads %r" % (i, None if row is None else row[:2]))
                c.execute("COMMIT")
                if (n, s) != (bn, bt):
                    incons += 1
                    problems.append("snapshot: items %d/%d, batches say %d/%d" % (n, s, bn, bt))
                reads += 1
                counts.add(n)
            except sqlite3.Error as e:
                errors += 1
                problems.append("%s: %s" % (type(e).__name__, e))
                try:
                    c.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                time.sleep(0.01)
            if last:
                break
        c.close()
    except Exception as e:  # noqa: BLE001
        errors += 1
        problems.append("%s: %s" % (type(e).__name__, e))
    q.put({"reads": reads, "errors": errors, "inconsistent": incons,
           "distinct_counts": len(counts), "problems": problems[:5]})


def build(db, mode, rows, batch, nreaders):
    jm = create(db, mode)
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    q = ctx.Queue()
    procs = [ctx.Process(target=reader, args=(db, stop, q, k)) for k in range(nreaders)]
    for p in procs:
        p.start()
    w_err = []
    t0 = time.monotonic()
    c = connect(db)
    i = 1
    b = 0
    while i <= rows:
        ids = range(i, min(rows, i + batch - 1) + 1)
        try:
            c.execute("BEGIN IMMEDIATE")
            c.execute("INSERT INTO batches VALUES(?, ?, ?)", (b, len(ids), sum(k * 3 - 7 for k in ids)))
            c.executemany("INSERT INTO items VALUES(?, ?, ?, ?, ?)",
                          [(k, b, name(k), k * 3 - 7, payload(k)) for k in ids])
            c.execute("COMMIT")
        except sqlite3.Error as e:
            w_err.append("batch %d: %s: %s" % (b, type(e).__name__, e))
            break
        i += len(ids)
        b += 1
        time.sleep(0.002)               # let the readers in between transactions
    c.close()
    wsecs = time.monotonic() - t0
    stop.set()
    stats = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    return {"digest": digest(db),
            "stats": {"journal_mode_set": jm, "writer_errors": w_err, "writer_secs": round(wsecs, 2),
                      "readers": stats, "reader_exitcodes": [p.exitcode for p in procs]}}


def contend_writer(db, wid, txns, q):
    errs = []
    try:
        c = connect(db)
        for t in range(txns):
            base = 1_000_000 * (wid + 1) + t * 5
            try:
                c.execute("BEGIN IMMEDIATE")
                c.execute("INSERT INTO batches VALUES(?, ?, ?)", (base, 5, sum(k * 3 - 7 for k in range(base, base + 5))))
                c.executemany("INSERT INTO items VALUES(?, ?, ?, ?, ?)",
                              [(k, base, name(k), k * 3 - 7, payload(k)) for k in range(base, base + 5)])
                c.execute("COMMIT")
            except sqlite3.Error as e:
                errs.append("txn %d: %s: %s" % (t, type(e).__name__, e))
                try:
                    c.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
        c.close()
    except Exception as e:  # noqa: BLE001
        errs.append("%s: %s" % (type(e).__name__, e))
    q.put(errs)


def contend(db, nwriters, txns):
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    before = digest(db)["rows"]
    procs = [ctx.Process(target=contend_writer, args=(db, k, txns, q)) for k in range(nwriters)]
    for p in procs:
        p.start()
    errs = []
    for _ in procs:
        errs += q.get(timeout=180)
    for p in procs:
        p.join(60)
    d = digest(db)
    return {"digest": d, "stats": {"writer_errors": errs[:10], "added": d["rows"] - before,
                                   "expected_added": nwriters * txns * 5}}


def vacuum(db):
    c = connect(db)
    c.execute("BEGIN IMMEDIATE")
    c.execute("DELETE FROM items WHERE id % 3 = 0")
    c.execute("UPDATE batches SET n = (SELECT count(*) FROM items WHERE items.batch = batches.batch),"
              " total = (SELECT coalesce(sum(v), 0) FROM items WHERE items.batch = batches.batch)")
    c.execute("COMMIT")
    size0 = os.path.getsize(db)
    c.execute("VACUUM")
    c.close()
    return {"digest": digest(db), "stats": {"size_before": size0, "size_after": os.path.getsize(db)}}


def main(argv):
    cmd, db = argv[1], argv[2]
    if cmd == "build":
        r = build(db, argv[3], int(argv[4]), int(argv[5]), int(argv[6]))
    elif cmd == "contend":
        r = contend(db, int(argv[3]), int(argv[4]))
    elif cmd == "vacuum":
        r = vacuum(db)
    elif cmd == "check":
        r = {"digest": digest(db), "stats": {}}
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(r, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
