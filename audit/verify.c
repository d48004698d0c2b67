/*
 * Reading the audit log: verification, the latest head, iteration.  Opens the database
 * read-only; never needs a key.
 */
#include "audit/record_int.h"
#include "audit/spool_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TAIL_SLACK_NS (2LL * 1000000000)

/* A URI for path with the characters URIs reserve percent-encoded. */
static int file_uri(const char *path, char *uri, size_t len)
{
    size_t j = (size_t)snprintf(uri, len, "file:");

    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if (j + 4 >= len)
            return -1;
        if (*p == '%' || *p == '?' || *p == '#' || *p < 0x21 || *p >= 0x7f)
            j += (size_t)snprintf(uri + j, len - j, "%%%02X", *p);
        else
            uri[j++] = (char)*p;
    }
    return snprintf(uri + j, len - j, "?immutable=1") < (int)(len - j) ? 0 : -1;
}

static sqlite3 *open_immutable(const char *db_path, char *err, size_t errlen)
{
    char uri[3 * 4096 + 32], wal[4096 + 8];
    struct stat st;
    sqlite3 *db = NULL;

    snprintf(wal, sizeof(wal), "%s-wal", db_path);
    if (stat(wal, &st) == 0 && st.st_size > 0) {
        snprintf(err, errlen, "the audit log %s has records in its write-ahead log and sits "
                              "where it cannot be opened for writing: copy the log with its -wal "
                              "file to a writable place and read it there", db_path);
        return NULL;
    }
    if (file_uri(db_path, uri, sizeof(uri)) != 0 ||
        sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open the audit log %s: %s", db_path,
                 db != NULL ? sqlite3_errmsg(db) : "path too long");
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static sqlite3 *open_ro(const char *db_path, char *err, size_t errlen)
{
    struct stat st;
    sqlite3 *db = NULL;

    if (stat(db_path, &st) != 0) {
        snprintf(err, errlen, "no audit log at %s", db_path);
        return NULL;
    }
    /* one thread uses the connection: no SQLite mutex on every call */
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        snprintf(err, errlen, "cannot open the audit log %s: %s", db_path,
                 db != NULL ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_exec(db, "SELECT count(*) FROM meta", NULL, NULL, NULL) == SQLITE_CANTOPEN) {
        /* A WAL database needs its -shm file, which a read-only place cannot hold.  A log
         * that was closed cleanly has no WAL content and reads as an immutable file. */
        sqlite3_close(db);
        db = open_immutable(db_path, err, errlen);
    }
    return db;
}

int audit_foreach(const char *db_path, audit_record_fn fn, void *arg, char *err, size_t errlen)
{
    sqlite3 *db = open_ro(db_path, err, errlen);
    sqlite3_stmt *st = NULL;
    struct audit_record r;
    int rc;

    if (db == NULL)
        return -1;
    rc = sqlite3_prepare_v2(db, "SELECT " AUDIT_COLUMNS " FROM records ORDER BY seq", -1, &st,
                            NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        audit_row_to_record(st, &r);
        rc = fn(&r, arg) == 0 ? SQLITE_OK : SQLITE_DONE;
    }
    if (rc != SQLITE_DONE)
        snprintf(err, errlen, "cannot read the audit log: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Heads, oldest first. */
struct heads {
    struct audit_head *v;
    size_t n;
};

static int load_heads(sqlite3 *db, const unsigned char *vault_id, const unsigned char *pk,
                      struct heads *hs)
{
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    int rc = sqlite3_prepare_v2(db, "SELECT seq, hash, time_ns, signature FROM heads ORDER BY seq",
                                -1, &st, NULL);

    hs->v = NULL;
    hs->n = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct audit_head *h;
        rc = SQLITE_OK;
        if (hs->n == cap) {
            cap = cap ? 2 * cap : 64;
            h = realloc(hs->v, cap * sizeof(*h));
            if (h == NULL) {
                rc = SQLITE_NOMEM;
                break;
            }
            hs->v = h;
        }
        h = &hs->v[hs->n++];
        memset(h, 0, sizeof(*h));
        memcpy(h->vault_id, vault_id, AUDIT_ID_SIZE);
        memcpy(h->pk, pk, AUDIT_PK_SIZE);
        h->seq = sqlite3_column_int64(st, 0);
        h->time_ns = sqlite3_column_int64(st, 2);
        if (sqlite3_column_bytes(st, 1) == AUDIT_HASH_SIZE)
            memcpy(h->hash, sqlite3_column_blob(st, 1), AUDIT_HASH_SIZE);
        if (sqlite3_column_bytes(st, 3) == AUDIT_SIG_SIZE)
            memcpy(h->sig, sqlite3_column_blob(st, 3), AUDIT_SIG_SIZE);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int audit_settle(const char *db_path, int timeout_ms)
{
    int64_t want = spool_last_written(db_path), have = 0;
    sqlite3_stmt *st = NULL;
    sqlite3 *db;
    char err[256];
    int waited = 0;

    if (want <= 0)
        return 0;
    db = open_ro(db_path, err, sizeof(err));
    if (db == NULL)
        return 0; /* the query itself will say what is wrong */
    if (sqlite3_prepare_v2(db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key='spool_seq'",
                           -1, &st, NULL) == SQLITE_OK) {
        for (;;) {
            have = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
            sqlite3_reset(st);
            if (have >= want || waited >= timeout_ms)
                break;
            usleep(2000);
            waited += 2;
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return have >= want ? 0 : -ETIMEDOUT;
}

int audit_latest_head(const char *db_path, const unsigned char pk[AUDIT_PK_SIZE],
                      struct audit_head *h, char *err, size_t errlen)
{
    sqlite3 *db = open_ro(db_path, err, errlen);
    sqlite3_stmt *st = NULL;
    unsigned char id[AUDIT_ID_SIZE];
    size_t n;
    int rc, found = 0;

    if (db == NULL)
        return -1;
    rc = sqlite3_prepare_v2(db, "SELECT (SELECT value FROM meta WHERE key='vault_id'), seq, hash,"
                                " time_ns, signature FROM heads ORDER BY seq DESC LIMIT 1",
                            -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *hex = (const char *)sqlite3_column_text(st, 0);
        memset(h, 0, sizeof(*h));
        if (hex != NULL && sodium_hex2bin(id, sizeof(id), hex, strlen(hex), NULL, &n, NULL) == 0 &&
            n == sizeof(id) && sqlite3_column_bytes(st, 2) == AUDIT_HASH_SIZE &&
            sqlite3_column_bytes(st, 4) == AUDIT_SIG_SIZE) {
            memcpy(h->vault_id, id, AUDIT_ID_SIZE);
            h->seq = sqlite3_column_int64(st, 1);
            memcpy(h->hash, sqlite3_column_blob(st, 2), AUDIT_HASH_SIZE);
            h->time_ns = sqlite3_column_int64(st, 3);
            memcpy(h->sig, sqlite3_column_blob(st, 4), AUDIT_SIG_SIZE);
            memcpy(h->pk, pk, AUDIT_PK_SIZE);
            found = 1;
        }
        rc = SQLITE_DONE;
    }
    if (rc != SQLITE_DONE)
        snprintf(err, errlen, "cannot read the audit log: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc != SQLITE_DONE ? -1 : found;
}

struct walk {
    const unsigned char *vault_id;
    struct heads hs;
    size_t hi;                         /* next head to match */
    const struct audit_head *anchor;
    int anchor_seen;
    unsigned char prev[AUDIT_HASH_SIZE];
    int64_t expect;
    int64_t tail_first_time, last_time;
    int tail_has_unmount;
    struct audit_verify_result *res;
};

static int bad(struct walk *w, int64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(struct walk *w, int64_t seq, const char *fmt, ...)
{
    va_list ap;

    w->res->bad_seq = seq;
    va_start(ap, fmt);
    vsnprintf(w->res->why, sizeof(w->res->why), fmt, ap);
    va_end(ap);
    return 1;
}

/* Check one record against the chain and the heads that name it. */
static int check_record(struct walk *w, const struct audit_record *r)
{
    unsigned char h[AUDIT_HASH_SIZE];

    if (r->seq != w->expect)
        return r->seq > w->expect
                   ? bad(w, w->expect, "record %" PRId64 " is missing (the sequence jumps from %"
                                       PRId64 " to %" PRId64 ")", w->expect, w->expect - 1, r->seq)
                   : bad(w, r->seq, "record %" PRId64 " is out of order", r->seq);
    audit_record_hash(w->prev, r, h);
    if (memcmp(h, r->hash, AUDIT_HASH_SIZE) != 0)
        return bad(w, r->seq, "record %" PRId64 " does not match its hash: it was edited, or a "
                              "record before it was inserted, removed or moved", r->seq);
    for (; w->hi < w->hs.n && w->hs.v[w->hi].seq == r->seq; w->hi++) {
        if (memcmp(w->hs.v[w->hi].hash, h, AUDIT_HASH_SIZE) != 0)
            return bad(w, r->seq, "the signed head at record %" PRId64 " does not match the "
                                  "record: the log was rewritten", r->seq);
        if (!audit_head_check_sig(&w->hs.v[w->hi]))
            return bad(w, r->seq, "the signature of the head at record %" PRId64 " is invalid",
                       r->seq);
        w->res->heads++;
        w->tail_first_time = 0;
        w->tail_has_unmount = 0;
    }
    if (w->hi < w->hs.n && w->hs.v[w->hi].seq < r->seq)
        return bad(w, w->hs.v[w->hi].seq, "a signed head names record %" PRId64 ", which is "
                                          "missing", w->hs.v[w->hi].seq);
    if (w->anchor != NULL && w->anchor->seq == r->seq) {
        if (memcmp(w->anchor->hash, h, AUDIT_HASH_SIZE) != 0)
            return bad(w, r->seq, "record %" PRId64 " differs from the head kept elsewhere: the "
                                  "log was replaced or rewritten", r->seq);
        w->anchor_seen = 1;
    }
    memcpy(w->prev, h, AUDIT_HASH_SIZE);
    w->expect++;
    return 0;
}

/* Track the records no head signs (yet). */
static void track_tail(struct walk *w, const struct audit_record *r)
{
    int signed_now = w->hi > 0 && w->hs.v[w->hi - 1].seq == r->seq;

    if (signed_now)
        return;
    if (w->tail_first_time == 0)
        w->tail_first_time = r->time_ns;
    w->last_time = r->time_ns;
    if (strcmp(r->op, "unmount") == 0)
        w->tail_has_unmount = 1;
}

/* After the last record: heads or the anchor beyond it, and the unsigned tail. */
static int check_end(struct walk *w)
{
    int64_t last = w->expect - 1, signed_upto = w->hs.n ? w->hs.v[w->hs.n - 1].seq : 0;

    if (w->hi < w->hs.n)
        return bad(w, w->hs.v[w->hi].seq, "the log ends at record %" PRId64 " but a signed head "
                                          "names record %" PRId64 ": records were cut off", last,
                   w->hs.v[w->hi].seq);
    if (w->anchor != NULL && !w->anchor_seen)
        return bad(w, w->anchor->seq, "the log ends at record %" PRId64 " but the head kept "
                                      "elsewhere names record %" PRId64 ": the log was cut off "
                                      "or replaced by an older copy", last, w->anchor->seq);
    if (w->hs.n == 0 && last > 0)
        return bad(w, 1, "the log holds %" PRId64 " records but no signed head (the writer signs "
                         "its first commit): the heads were removed", last);
    w->res->unsigned_tail = last - signed_upto;
    if (w->res->unsigned_tail > 0 &&
        (w->res->unsigned_tail >= AUDIT_HEAD_EVERY || w->tail_has_unmount ||
         w->last_time - w->tail_first_time > AUDIT_HEAD_SECONDS * 1000000000LL + TAIL_SLACK_NS))
        return bad(w, signed_upto + 1, "records %" PRId64 " to %" PRId64 " are not covered by a "
                                       "signed head, more than a running or stopped daemon "
                                       "leaves: the end of the log was rewritten",
                   signed_upto + 1, last);
    return 0;
}

static int check_vault(sqlite3 *db, const unsigned char *vault_id, struct walk *w)
{
    char id[2 * AUDIT_ID_SIZE + 1];
    sqlite3_stmt *st = NULL;
    int rc, ok = 0;

    sodium_bin2hex(id, sizeof(id), vault_id, AUDIT_ID_SIZE);
    rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='vault_id'", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL &&
        strcmp((const char *)sqlite3_column_text(st, 0), id) == 0)
        ok = 1;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        snprintf(w->res->why, sizeof(w->res->why), "cannot read the audit log: %s",
                 sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return ok ? 0 : bad(w, 0, "the audit log does not belong to this vault");
}

/* Progress over every part of a verification. */
struct progress {
    pthread_mutex_t mu;
    int64_t done, total;
    audit_progress_fn fn;
    void *arg;
};

static void progress_add(struct progress *p, int64_t n)
{
    if (p->fn == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->done += n;
    p->fn(p->done, p->total, p->arg);
    pthread_mutex_unlock(&p->mu);
}

/* Walk the records lo..hi (inclusive) in order. */
static int walk_records(sqlite3 *db, struct walk *w, int64_t lo, int64_t hi,
                        struct progress *prog)
{
    sqlite3_stmt *st = NULL;
    struct audit_record r;
    int64_t reported = 0;
    int rc = sqlite3_prepare_v2(db, "SELECT " AUDIT_COLUMNS " FROM records WHERE seq >= ? AND "
                                    "seq <= ? ORDER BY seq", -1, &st, NULL), verdict = 0;

    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, lo);
        sqlite3_bind_int64(st, 2, hi);
    }
    while (rc == SQLITE_OK && verdict == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        if (!audit_row_to_record(st, &r)) {
            verdict = bad(w, r.seq, "record %" PRId64 " is stored with altered column types or "
                                    "bytes: it was rewritten", r.seq);
            break;
        }
        if (r.op == NULL || r.result == NULL) {
            verdict = bad(w, r.seq, "record %" PRId64 " lacks its operation or result", r.seq);
            break;
        }
        verdict = check_record(w, &r);
        track_tail(w, &r);
        w->res->records++;
        if ((w->res->records & 0xffff) == 0) {
            progress_add(prog, w->res->records - reported);
            reported = w->res->records;
        }
    }
    if (rc != SQLITE_OK && rc != SQLITE_DONE && verdict == 0) {
        snprintf(w->res->why, sizeof(w->res->why), "cannot read the audit log: %s",
                 sqlite3_errmsg(db));
        verdict = -1;
    }
    sqlite3_finalize(st);
    progress_add(prog, w->res->records - reported);
    return verdict;
}

/*
 * Every record is checked against the stored hash of the one before it, so the log splits into
 * parts checked at once, on their own connections: part 2 starts from the stored hash of the
 * last record of part 1, which part 1 checks.  Worth a thread from this many records on.
 */
int64_t audit_verify_split_from = 100000;

struct part {
    const char *db_path;
    struct walk w;
    struct audit_verify_result res;
    int64_t lo, hi;
    unsigned char start_prev[AUDIT_HASH_SIZE];   /* stored hash of record lo - 1 */
    int have_start;
    struct progress *prog;
    int verdict;
};

/* The first head at or after seq. */
static size_t head_from(const struct heads *hs, int64_t seq)
{
    size_t i = 0;

    while (i < hs->n && hs->v[i].seq < seq)
        i++;
    return i;
}

/* Part 2 and later: read the stored hash of record lo - 1 in this snapshot, then walk. */
static void *part_main(void *arg)
{
    struct part *p = arg;
    struct audit_record r;
    sqlite3_stmt *st = NULL;
    sqlite3 *db = open_ro(p->db_path, p->res.why, sizeof(p->res.why));

    p->verdict = -1;
    if (db == NULL)
        return NULL;
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT " AUDIT_COLUMNS " FROM records WHERE seq = ?", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, p->lo - 1);
        if (sqlite3_step(st) == SQLITE_ROW && audit_row_to_record(st, &r)) {
            memcpy(p->w.prev, r.hash, AUDIT_HASH_SIZE);
            memcpy(p->start_prev, r.hash, AUDIT_HASH_SIZE);
            p->have_start = 1;
        }
        sqlite3_finalize(st);
        p->verdict = walk_records(db, &p->w, p->lo, p->hi, p->prog);
    } else {
        snprintf(p->res.why, sizeof(p->res.why), "cannot read the audit log: %s",
                 sqlite3_errmsg(db));
    }
    sqlite3_close(db);
    return NULL;
}

/*
 * Walk the whole log: in two parts when it is long (part 1 on this connection, part 2 on a
 * thread), then join them into w.  Returns the verdict.
 */
static int walk_all(sqlite3 *db, const char *db_path, struct walk *w, audit_progress_fn fn,
                    void *arg)
{
    struct progress prog = {.mu = PTHREAD_MUTEX_INITIALIZER, .fn = fn, .arg = arg};
    int64_t last = 0, split;
    struct part p2;
    pthread_t th;
    int verdict;

    {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, "SELECT max(seq) FROM records", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            last = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    prog.total = last; /* for the progress bar: the log's own count is what is being checked */
    if (last < audit_verify_split_from || last < 2)
        return walk_records(db, w, INT64_MIN, INT64_MAX, &prog);

    split = last / 2;
    memset(&p2, 0, sizeof(p2));
    p2.db_path = db_path;
    p2.w = *w;                        /* same heads, anchor and vault */
    p2.w.res = &p2.res;
    p2.w.expect = split + 1;
    p2.w.hi = head_from(&w->hs, split + 1);
    p2.lo = split + 1;
    p2.hi = last;
    p2.prog = &prog;
    if (pthread_create(&th, NULL, part_main, &p2) != 0)
        return walk_records(db, w, INT64_MIN, INT64_MAX, &prog);
    verdict = walk_records(db, w, INT64_MIN, split, &prog); /* a seq below 1 is out of order */
    pthread_join(th, NULL);

    /* Part 1 must have ended at split, with every head up to it matched. */
    if (verdict == 0 && w->expect != split + 1)
        verdict = bad(w, w->expect, "record %" PRId64 " is missing", w->expect);
    if (verdict == 0 && w->hi < w->hs.n && w->hs.v[w->hi].seq <= split)
        verdict = bad(w, w->hs.v[w->hi].seq, "a signed head names record %" PRId64 ", which is "
                                             "missing", w->hs.v[w->hi].seq);
    /* Part 2 started from the hash part 1 computed for the record before it. */
    if (verdict == 0 && p2.verdict >= 0 &&
        (!p2.have_start || memcmp(p2.start_prev, w->prev, AUDIT_HASH_SIZE) != 0))
        verdict = bad(w, split, "record %" PRId64 " changed while the log was read, or does "
                                "not match its hash", split);
    if (verdict != 0) {
        w->res->records += p2.res.records;
        w->res->heads += p2.res.heads;
        return verdict;
    }
    if (p2.verdict != 0) {
        p2.res.records += w->res->records;
        p2.res.heads += w->res->heads;
        *w->res = p2.res;
        return p2.verdict;
    }
    /* Join: part 2's position; the unsigned tail may have begun in part 1. */
    p2.res.records += w->res->records;
    p2.res.heads += w->res->heads;
    *w->res = p2.res;
    if (p2.w.hi == head_from(&w->hs, split + 1)) {     /* no head in part 2 */
        if (w->tail_first_time != 0)
            p2.w.tail_first_time = w->tail_first_time;
        p2.w.tail_has_unmount |= w->tail_has_unmount;
    }
    p2.w.res = w->res;
    p2.w.anchor_seen |= w->anchor_seen;
    *w = p2.w;
    return 0;
}

int audit_verify(const char *db_path, const unsigned char vault_id[AUDIT_ID_SIZE],
                 const unsigned char pk[AUDIT_PK_SIZE], const struct audit_head *anchor,
                 audit_progress_fn progress, void *arg, struct audit_verify_result *res)
{
    struct walk w = {.vault_id = vault_id, .anchor = anchor, .expect = 1, .res = res};
    sqlite3 *db;
    int verdict;

    memset(res, 0, sizeof(*res));
    db = open_ro(db_path, res->why, sizeof(res->why));
    if (db == NULL)
        return -1;
    audit_genesis(vault_id, w.prev);
    if (anchor != NULL && (memcmp(anchor->vault_id, vault_id, AUDIT_ID_SIZE) != 0 ||
                           memcmp(anchor->pk, pk, AUDIT_PK_SIZE) != 0 ||
                           !audit_head_check_sig(anchor)))
        verdict = bad(&w, 0, "the head kept elsewhere is not a valid signed head of this vault");
    else if ((verdict = check_vault(db, vault_id, &w)) == 0) {
        if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
            load_heads(db, vault_id, pk, &w.hs) != 0) {
            snprintf(res->why, sizeof(res->why), "cannot read the audit log: %s",
                     sqlite3_errmsg(db));
            verdict = -1;
        } else {
            verdict = walk_all(db, db_path, &w, progress, arg);
            if (verdict == 0)
                verdict = check_end(&w);
        }
    }
    if (verdict == 0)
        snprintf(res->why, sizeof(res->why), "%" PRId64 " records, %" PRId64 " signed heads: "
                                             "the chain holds", res->records, res->heads);
    free(w.hs.v);
    sqlite3_close(db);
    return verdict;
}
