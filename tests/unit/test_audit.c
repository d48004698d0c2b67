/*
 * Unit tests for audit/: the hash-chained, signed, fail-closed audit log.
 *
 * Everything runs against real SQLite databases in a fresh mktemp directory per test (no mocks).
 * The record hash and the head signature are recomputed here, independently of audit/, from
 * the encoding documented in audit/record.c, so that a change of the on-disk format is noticed.
 * Tampering is done with the sqlite3 C API on the database file after the log was closed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit/audit.h"
#include "audit/record_int.h"
#include "audit/spool_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_error("check failed: %s\n", #cond);                                              \
            print_error(__VA_ARGS__);                                                              \
            print_error("\n");                                                                     \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* ---------------------------------------------------------------------------------------------
 * Fixture: a scratch directory, a vault id and an Ed25519 key pair.
 * ------------------------------------------------------------------------------------------- */

/*
 * When set, every generated record is stamped "now" by the log, as the daemon's are; else odd
 * records carry a fixed time of their own (which verify's rule on how long an unsigned tail
 * may span would read as a rewritten end).
 */
static int g_real_time;

struct fx {
    char dir[64];
    char db[256];
    unsigned char id[AUDIT_ID_SIZE];
    unsigned char pk[AUDIT_PK_SIZE];
    unsigned char sk[AUDIT_SK_SIZE];
};

struct rec_list;
static void rec_list_free(struct rec_list *l);

/*
 * What a failing test leaves open (a failed assertion jumps out of the test): lists read back
 * and logs opened; teardown releases them, so that valgrind sees no leak from a failed test.
 */
#define MAX_LIVE 8
static struct rec_list *g_lists[MAX_LIVE];
static struct audit_log *g_logs[MAX_LIVE];

static void live_add(void **slots, void *p)
{
    for (int k = 0; k < MAX_LIVE; k++)
        if (slots[k] == NULL) {
            slots[k] = p;
            return;
        }
    fail_msg("too many live objects");
}

static void live_del(void **slots, void *p)
{
    for (int k = 0; k < MAX_LIVE; k++)
        if (slots[k] == p)
            slots[k] = NULL;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    chmod(path, 0700); /* directories made read-only by a test */
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_audit.XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof(f->db), "%s/%s", f->dir, AUDIT_DB_NAME);
    randombytes_buf(f->id, sizeof(f->id));
    crypto_sign_keypair(f->pk, f->sk);
    g_real_time = 0;
    *state = f;
    return 0;
}

static void release_live(void);

static int teardown(void **state)
{
    struct fx *f = *state;

    release_live();
    if (f != NULL) {
        nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        sodium_memzero(f->sk, sizeof(f->sk));
        free(f);
    }
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

static struct audit_config config(const struct fx *f, const char *db)
{
    struct audit_config c;

    memset(&c, 0, sizeof(c));
    c.db_path = db != NULL ? db : f->db;
    memcpy(c.vault_id, f->id, AUDIT_ID_SIZE);
    c.sign_sk = f->sk;
    return c;
}

static struct audit_log *open_log(const struct fx *f, const char *db)
{
    struct audit_config c = config(f, db);
    struct audit_log *log = NULL;
    char err[512] = "";
    int rc = audit_open(&c, &log, err, sizeof(err));

    CHECK(rc == 0, "audit_open(%s) failed: %s", c.db_path, err);
    assert_non_null(log);
    live_add((void **)g_logs, log);
    return log;
}

static int close_log(struct audit_log *log, int grace)
{
    live_del((void **)g_logs, log);
    return audit_close(log, grace);
}

/* ---------------------------------------------------------------------------------------------
 * Records: generated from their index, so that what was written can be regenerated.
 * ------------------------------------------------------------------------------------------- */

struct rbuf {
    char user[32], process[32], exe[64], op[32], path[64], path2[64], file_id[33], result[16];
    char ranges[96], detail[256];
    char *big;   /* a large detail, for some records */
};

static const char *const OPS[] = {
    "open",  "create", "read",    "write",    "truncate", "rename",   "unlink",
    "link",  "symlink", "mkdir",  "rmdir",    "chmod",    "chown",    "utimens",
    "setxattr", "removexattr", "mknod", "fallocate", "integrity-failure",
};
#define NOPS ((int)(sizeof(OPS) / sizeof(OPS[0])))
#define BIG_EVERY 17
#define BIG_SIZE 70000
#define FIXED_TIME 1700000000123456789LL


/*
 * Record number i (1-based).  `op` overrides the generated operation (e.g. "mount").  Fields
 * are NULL / AUDIT_NONE in varying patterns; one string field is "" (not NULL) now and then.
 */
static void gen_record(int64_t i, const char *op, struct audit_record *r, struct rbuf *b)
{
    const char *o = op != NULL ? op : OPS[i % NOPS];
    int io = strcmp(o, "read") == 0 || strcmp(o, "write") == 0;
    int two = strcmp(o, "rename") == 0 || strcmp(o, "link") == 0 || strcmp(o, "symlink") == 0;

    memset(r, 0, sizeof(*r));
    b->big = NULL;
    r->time_ns = i % 2 && !g_real_time ? FIXED_TIME + i * 1000 : 0; /* 0: the log: "now" */
    r->uid = i % 5 == 0 ? AUDIT_NONE : 1000 + i;
    r->gid = i % 7 == 0 ? AUDIT_NONE : -i; /* negative: two's complement encoding */
    r->pid = 40000 + i;
    r->ppid = i % 3 == 0 ? AUDIT_NONE : 1;
    r->pstart = i % 4 == 0 ? AUDIT_NONE : i * 1000003;
    snprintf(b->user, sizeof(b->user), "user-%" PRId64, i);
    r->user = i % 6 == 0 ? NULL : b->user;
    snprintf(b->process, sizeof(b->process), "proc %" PRId64, i);
    r->process = b->process;
    snprintf(b->exe, sizeof(b->exe), "/usr/bin/tool-%" PRId64, i);
    r->exe = i % 2 == 0 ? b->exe : NULL;
    snprintf(b->op, sizeof(b->op), "%s", o);
    r->op = b->op;
    snprintf(b->path, sizeof(b->path), "/dir %" PRId64 "/file,\"%" PRId64 "\"", i % 4, i);
    r->path = i % 9 == 0 ? NULL : i % 11 == 0 ? "" : b->path;
    snprintf(b->path2, sizeof(b->path2), "/target-%" PRId64, i);
    r->path2 = two ? b->path2 : i % 13 == 0 ? "" : NULL;
    snprintf(b->file_id, sizeof(b->file_id), "%016" PRIx64 "%016" PRIx64, (uint64_t)i * 7919,
             (uint64_t)i);
    r->file_id = i % 3 == 1 ? NULL : b->file_id;
    snprintf(b->result, sizeof(b->result), "%s", i % 8 == 0 ? "ENOENT" : "ok");
    r->result = b->result;
    r->bytes = io ? (i == 3 ? INT64_MAX : i * 100) : i % 10 == 0 ? 0 : AUDIT_NONE;
    snprintf(b->ranges, sizeof(b->ranges), "0-%" PRId64 ",%" PRId64 "-%" PRId64, i * 50,
             i * 1000, i * 1000 + i * 50);
    r->ranges = io ? b->ranges : NULL;
    snprintf(b->detail, sizeof(b->detail),
             "detail %" PRId64 ": quote \" backslash \\ comma , newline\n tab\t utf-8 \xc3\xa9", i);
    r->detail = i % 5 == 1 ? NULL : b->detail;
    if (i % BIG_EVERY == 0) {
        b->big = malloc(BIG_SIZE + 1);
        assert_non_null(b->big);
        for (int k = 0; k < BIG_SIZE; k++)
            b->big[k] = (char)('a' + (k + i) % 26);
        b->big[BIG_SIZE] = '\0';
        r->detail = b->big;
    }
}

static void rbuf_free(struct rbuf *b)
{
    free(b->big);
    b->big = NULL;
}

/* Append (wait) or submit (no wait) generated record i. */
static void put_record(struct audit_log *log, int64_t i, const char *op, int submit)
{
    struct audit_record r;
    struct rbuf b;

    gen_record(i, op, &r, &b);
    if (submit)
        assert_int_equal(audit_submit(log, &r), 0);
    else
        assert_int_equal(audit_append(log, &r), 0);
    rbuf_free(&b);
}

/* ---- owned copies of records read back ---- */

struct rec_list {
    struct audit_record *v;
    size_t n, cap;
    size_t stop_after; /* 0: read all */
};

static char *dup_or_null(const char *s)
{
    char *d;

    if (s == NULL)
        return NULL;
    d = strdup(s);
    assert_non_null(d);
    return d;
}

static int collect(const struct audit_record *r, void *arg)
{
    struct rec_list *l = arg;
    struct audit_record *c;

    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
        assert_non_null(l->v);
    }
    c = &l->v[l->n++];
    *c = *r;
    c->user = dup_or_null(r->user);
    c->process = dup_or_null(r->process);
    c->exe = dup_or_null(r->exe);
    c->op = dup_or_null(r->op);
    c->path = dup_or_null(r->path);
    c->path2 = dup_or_null(r->path2);
    c->file_id = dup_or_null(r->file_id);
    c->result = dup_or_null(r->result);
    c->ranges = dup_or_null(r->ranges);
    c->detail = dup_or_null(r->detail);
    return l->stop_after != 0 && l->n >= l->stop_after ? 1 : 0;
}

/* Count records (for children, outside cmocka). */
static int collect_plain(const struct audit_record *r, void *arg)
{
    (void)r;
    ((struct rec_list *)arg)->n++;
    return 0;
}

static void rec_list_free(struct rec_list *l)
{
    if (l == NULL)
        return;
    live_del((void **)g_lists, l);
    for (size_t i = 0; i < l->n; i++) {
        struct audit_record *c = &l->v[i];
        free((char *)c->user);
        free((char *)c->process);
        free((char *)c->exe);
        free((char *)c->op);
        free((char *)c->path);
        free((char *)c->path2);
        free((char *)c->file_id);
        free((char *)c->result);
        free((char *)c->ranges);
        free((char *)c->detail);
    }
    free(l->v);
    free(l);
}

static void release_live(void)
{
    for (int k = 0; k < MAX_LIVE; k++) {
        if (g_logs[k] != NULL)
            audit_close(g_logs[k], 0);
        g_logs[k] = NULL;
    }
    for (int k = 0; k < MAX_LIVE; k++)
        rec_list_free(g_lists[k]);
}

static struct rec_list *new_list(size_t stop_after)
{
    struct rec_list *l = calloc(1, sizeof(*l));

    assert_non_null(l);
    l->stop_after = stop_after;
    live_add((void **)g_lists, l);
    return l;
}

static struct rec_list *read_all(const char *db)
{
    struct rec_list *l = new_list(0);
    char err[512] = "";
    int rc;

    rc = audit_foreach(db, collect, l, err, sizeof(err));
    CHECK(rc == 0, "audit_foreach(%s): %s", db, err);
    return l;
}

static int str_same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

#define SHOW(s) ((s) != NULL ? (s) : "(null)")

/* The record read back equals generated record `want` (time: given, or within [t0, t1]). */
static void expect_record(const struct audit_record *got, const struct audit_record *want,
                          int64_t t0, int64_t t1)
{
    int64_t s = got->seq;

    if (want->time_ns != 0)
        CHECK(got->time_ns == want->time_ns, "record %" PRId64 ": time_ns %" PRId64 ", want %"
              PRId64, s, got->time_ns, want->time_ns);
    else
        CHECK(got->time_ns >= t0 && got->time_ns <= t1, "record %" PRId64 ": time_ns %" PRId64
              " is not the time of writing [%" PRId64 ", %" PRId64 "]", s, got->time_ns, t0, t1);
#define INT_FIELD(f) CHECK(got->f == want->f, "record %" PRId64 ": " #f " %" PRId64 ", want %" \
                           PRId64, s, got->f, want->f)
#define STR_FIELD(f) CHECK(str_same(got->f, want->f), "record %" PRId64 ": " #f " '%.80s', " \
                           "want '%.80s'", s, SHOW(got->f), SHOW(want->f))
    INT_FIELD(uid);
    INT_FIELD(gid);
    INT_FIELD(pid);
    INT_FIELD(ppid);
    INT_FIELD(pstart);
    INT_FIELD(bytes);
    STR_FIELD(user);
    STR_FIELD(process);
    STR_FIELD(exe);
    STR_FIELD(op);
    STR_FIELD(path);
    STR_FIELD(path2);
    STR_FIELD(file_id);
    STR_FIELD(result);
    STR_FIELD(ranges);
    STR_FIELD(detail);
#undef INT_FIELD
#undef STR_FIELD
}

/* ---------------------------------------------------------------------------------------------
 * The chain, recomputed independently from the documented encoding.
 * ------------------------------------------------------------------------------------------- */

static void my_genesis(const unsigned char *id, unsigned char out[AUDIT_HASH_SIZE])
{
    static const char dom[] = "custodyfs-audit-genesis-v1";
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, AUDIT_HASH_SIZE);
    crypto_generichash_update(&st, (const unsigned char *)dom, sizeof(dom)); /* with its NUL */
    crypto_generichash_update(&st, id, AUDIT_ID_SIZE);
    crypto_generichash_final(&st, out, AUDIT_HASH_SIZE);
}

static void enc_int(crypto_generichash_state *st, int64_t v)
{
    unsigned char b[9] = {0};
    uint64_t u = v == AUDIT_NONE ? 0 : (uint64_t)v;

    b[0] = v != AUDIT_NONE;
    for (int k = 0; k < 8; k++)
        b[1 + k] = (unsigned char)(u >> (8 * k));
    crypto_generichash_update(st, b, sizeof(b));
}

static void enc_str(crypto_generichash_state *st, const char *s)
{
    unsigned char b[5] = {0};
    size_t n = s != NULL ? strlen(s) : 0;

    b[0] = s != NULL;
    for (int k = 0; k < 4; k++)
        b[1 + k] = (unsigned char)(n >> (8 * k));
    crypto_generichash_update(st, b, sizeof(b));
    if (n > 0)
        crypto_generichash_update(st, (const unsigned char *)s, n);
}

static void my_hash(const unsigned char prev[AUDIT_HASH_SIZE], const struct audit_record *r,
                    unsigned char out[AUDIT_HASH_SIZE])
{
    static const char dom[] = "custodyfs-audit-record-v1";
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, AUDIT_HASH_SIZE);
    crypto_generichash_update(&st, (const unsigned char *)dom, sizeof(dom));
    crypto_generichash_update(&st, prev, AUDIT_HASH_SIZE);
    enc_int(&st, r->seq);
    enc_int(&st, r->time_ns);
    enc_int(&st, r->uid);
    enc_str(&st, r->user);
    enc_int(&st, r->gid);
    enc_int(&st, r->pid);
    enc_int(&st, r->ppid);
    enc_int(&st, r->pstart);
    enc_str(&st, r->process);
    enc_str(&st, r->exe);
    enc_str(&st, r->op);
    enc_str(&st, r->path);
    enc_str(&st, r->path2);
    enc_str(&st, r->file_id);
    enc_str(&st, r->result);
    enc_int(&st, r->bytes);
    enc_str(&st, r->ranges);
    enc_str(&st, r->detail);
    crypto_generichash_final(&st, out, AUDIT_HASH_SIZE);
}

/* Every record's stored hash is the documented hash of its fields and its predecessor. */
static void expect_chain(const struct fx *f, const struct rec_list *l)
{
    unsigned char prev[AUDIT_HASH_SIZE], h[AUDIT_HASH_SIZE];

    my_genesis(f->id, prev);
    for (size_t i = 0; i < l->n; i++) {
        CHECK(l->v[i].seq == (int64_t)i + 1, "record %zu has seq %" PRId64 " (not gapless)", i + 1,
              l->v[i].seq);
        my_hash(prev, &l->v[i], h);
        CHECK(memcmp(h, l->v[i].hash, AUDIT_HASH_SIZE) == 0,
              "record %" PRId64 ": stored hash differs from BLAKE2b-256 of the documented encoding",
              l->v[i].seq);
        memcpy(prev, h, AUDIT_HASH_SIZE);
    }
}

/* The documented head message, signed with Ed25519. */
static int my_head_sig_ok(const unsigned char *id, const unsigned char *pk, int64_t seq,
                          const unsigned char *hash, int64_t time_ns, const unsigned char *sig)
{
    static const char dom[] = "custodyfs-head-v1";
    unsigned char msg[sizeof(dom) + AUDIT_ID_SIZE + 8 + AUDIT_HASH_SIZE + 8], *p = msg;

    memcpy(p, dom, sizeof(dom));
    p += sizeof(dom);
    memcpy(p, id, AUDIT_ID_SIZE);
    p += AUDIT_ID_SIZE;
    for (int k = 0; k < 8; k++)
        *p++ = (unsigned char)((uint64_t)seq >> (8 * k));
    memcpy(p, hash, AUDIT_HASH_SIZE);
    p += AUDIT_HASH_SIZE;
    for (int k = 0; k < 8; k++)
        *p++ = (unsigned char)((uint64_t)time_ns >> (8 * k));
    return crypto_sign_verify_detached(sig, msg, sizeof(msg), pk) == 0;
}

/* ---------------------------------------------------------------------------------------------
 * Direct SQLite access (tampering, inspection).
 * ------------------------------------------------------------------------------------------- */

static void sql(const char *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sql(const char *db, const char *fmt, ...)
{
    sqlite3 *h = NULL;
    char *q, *msg = NULL;
    va_list ap;
    int rc;

    va_start(ap, fmt);
    q = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    assert_non_null(q);
    rc = sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL);
    CHECK(rc == SQLITE_OK, "open %s: %s", db, sqlite3_errstr(rc));
    rc = sqlite3_exec(h, q, NULL, NULL, &msg);
    CHECK(rc == SQLITE_OK, "%s: %s", q, msg != NULL ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    sqlite3_free(q);
    sqlite3_close(h);
}

static int64_t sql_int(const char *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int64_t sql_int(const char *db, const char *fmt, ...)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    char *q;
    va_list ap;
    int rc;

    va_start(ap, fmt);
    q = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    rc = sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL);
    CHECK(rc == SQLITE_OK, "open %s: %s", db, sqlite3_errstr(rc));
    rc = sqlite3_prepare_v2(h, q, -1, &st, NULL);
    CHECK(rc == SQLITE_OK, "%s: %s", q, sqlite3_errmsg(h));
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_free(q);
    sqlite3_close(h);
    return v;
}

/* The heads table, oldest first. */
struct head_row {
    int64_t seq, time_ns;
    unsigned char hash[AUDIT_HASH_SIZE], sig[AUDIT_SIG_SIZE];
    int hash_len, sig_len;
};

static size_t read_heads(const char *db, struct head_row *v, size_t max)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    size_t n = 0;

    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT seq, hash, time_ns, signature FROM heads "
                                           "ORDER BY seq", -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW && n < max) {
        struct head_row *r = &v[n++];
        memset(r, 0, sizeof(*r));
        r->seq = sqlite3_column_int64(st, 0);
        r->time_ns = sqlite3_column_int64(st, 2);
        r->hash_len = sqlite3_column_bytes(st, 1);
        r->sig_len = sqlite3_column_bytes(st, 3);
        if (r->hash_len == AUDIT_HASH_SIZE)
            memcpy(r->hash, sqlite3_column_blob(st, 1), AUDIT_HASH_SIZE);
        if (r->sig_len == AUDIT_SIG_SIZE)
            memcpy(r->sig, sqlite3_column_blob(st, 3), AUDIT_SIG_SIZE);
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

/* Flip one bit of byte `at` of the signature of the head at seq. */
static void flip_sig_byte(const char *db, int64_t seq, int at)
{
    unsigned char sig[AUDIT_SIG_SIZE];
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;

    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT signature FROM heads WHERE seq = ?", -1, &st,
                                        NULL), SQLITE_OK);
    sqlite3_bind_int64(st, 1, seq);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_bytes(st, 0), AUDIT_SIG_SIZE);
    memcpy(sig, sqlite3_column_blob(st, 0), AUDIT_SIG_SIZE);
    sqlite3_finalize(st);
    sig[at] ^= 0x01;
    assert_int_equal(sqlite3_prepare_v2(h, "UPDATE heads SET signature = ? WHERE seq = ?", -1, &st,
                                        NULL), SQLITE_OK);
    sqlite3_bind_blob(st, 1, sig, AUDIT_SIG_SIZE, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, seq);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_close(h), SQLITE_OK);
}

static void copy_file(const char *from, const char *to)
{
    char buf[65536];
    ssize_t n;
    int in = open(from, O_RDONLY | O_CLOEXEC), out;

    CHECK(in >= 0, "open %s: %s", from, strerror(errno));
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(out >= 0, "create %s: %s", to, strerror(errno));
    while ((n = read(in, buf, sizeof(buf))) > 0)
        assert_int_equal(write(out, buf, (size_t)n), n);
    assert_int_equal(n, 0);
    close(in);
    assert_int_equal(close(out), 0);
}

/* Copy a database (and its WAL, when one is left) over another. */
static void copy_db(const char *from, const char *to)
{
    char a[300], b[300];

    snprintf(b, sizeof(b), "%s-wal", to);
    unlink(b);
    snprintf(b, sizeof(b), "%s-shm", to);
    unlink(b);
    copy_file(from, to);
    snprintf(a, sizeof(a), "%s-wal", from);
    snprintf(b, sizeof(b), "%s-wal", to);
    if (access(a, F_OK) == 0)
        copy_file(a, b);
}

/* ---- verification helpers ---- */

static int run_verify(const struct fx *f, const char *db, const struct audit_head *anchor,
                      struct audit_verify_result *res)
{
    return audit_verify(db != NULL ? db : f->db, f->id, f->pk, anchor, NULL, NULL, res);
}

static void expect_verifies(const struct fx *f, const char *db, int64_t records)
{
    struct audit_verify_result res;
    int rc = run_verify(f, db, NULL, &res);

    CHECK(rc == 0, "verify of %s: %d (bad record %" PRId64 "): %s", db != NULL ? db : f->db, rc,
          res.bad_seq, res.why);
    assert_int_equal(res.bad_seq, 0);
    if (records >= 0)
        CHECK(res.records == records, "verify checked %" PRId64 " records, want %" PRId64,
              res.records, records);
}

static void expect_bad(const struct fx *f, const char *db, const struct audit_head *anchor,
                       int64_t bad_seq, const char *what)
{
    struct audit_verify_result res;
    int rc = run_verify(f, db, anchor, &res);

    CHECK(rc == 1, "%s: verify returned %d, want 1 (why: %s)", what, rc, res.why);
    CHECK(res.bad_seq == bad_seq, "%s: verify names record %" PRId64 ", want %" PRId64 " (%s)",
          what, res.bad_seq, bad_seq, res.why);
    CHECK(res.why[0] != '\0', "%s: no reason given", what);
}

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---------------------------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------------------------- */

static void test_errno_name(void **state)
{
    (void)state;
    assert_string_equal(audit_errno_name(0), "ok");
    assert_string_equal(audit_errno_name(ENOENT), "ENOENT");
    assert_string_equal(audit_errno_name(EACCES), "EACCES");
    assert_string_equal(audit_errno_name(EPERM), "EPERM");
    assert_string_equal(audit_errno_name(EIO), "EIO");
    assert_string_equal(audit_errno_name(ENOTEMPTY), "ENOTEMPTY");
    assert_string_equal(audit_errno_name(EEXIST), "EEXIST");
    assert_string_equal(audit_errno_name(ENOSPC), "ENOSPC");
    assert_string_equal(audit_errno_name(EOPNOTSUPP), "EOPNOTSUPP");
    assert_string_equal(audit_errno_name(EROFS), "EROFS");
    assert_string_equal(audit_errno_name(4000), "E4000");
    assert_string_equal(audit_errno_name(ENOENT), "ENOENT"); /* after an unknown one */
}

static void test_now_and_null_close(void **state)
{
    int64_t a = now_ns(), b = audit_now_ns(), c = now_ns();

    (void)state;
    assert_true(a <= b && b <= c);
    assert_int_equal(audit_close(NULL, 0), 0);
}

#define RT_RECORDS 60

/* Append and submit records, sync, close: everything reads back as written and verifies. */
static void test_roundtrip(void **state)
{
    struct fx *f = *state;
    struct audit_log *log = open_log(f, NULL);
    struct audit_verify_result res;
    struct rec_list *l;
    struct head_row heads[16];
    int64_t t0, t1;
    size_t nh;

    assert_true(audit_healthy(log));
    t0 = now_ns();
    for (int64_t i = 1; i <= RT_RECORDS; i++)
        put_record(log, i, NULL, i % 3 == 0 /* every third one submitted */);
    assert_int_equal(audit_sync(log), 0);
    t1 = now_ns();
    assert_true(audit_healthy(log));
    assert_int_equal(close_log(log, 5), 0);

    l = read_all(f->db);
    assert_int_equal(l->n, RT_RECORDS);
    for (size_t k = 0; k < l->n; k++) {
        struct audit_record want;
        struct rbuf b;
        gen_record((int64_t)k + 1, NULL, &want, &b);
        CHECK(l->v[k].seq == (int64_t)k + 1, "seq %" PRId64 " at position %zu", l->v[k].seq, k + 1);
        expect_record(&l->v[k], &want, t0, t1);
        rbuf_free(&b);
    }
    expect_chain(f, l);

    /* signed heads: at least at close, the last record (the first commit: its own test) */
    nh = read_heads(f->db, heads, 16);
    assert_true(nh >= 1);
    CHECK(heads[nh - 1].seq == RT_RECORDS, "close did not sign the last record: last head at %"
          PRId64, heads[nh - 1].seq);
    for (size_t k = 0; k < nh; k++) {
        const struct audit_record *r = &l->v[heads[k].seq - 1];
        assert_int_equal(heads[k].hash_len, AUDIT_HASH_SIZE);
        assert_int_equal(heads[k].sig_len, AUDIT_SIG_SIZE);
        assert_memory_equal(heads[k].hash, r->hash, AUDIT_HASH_SIZE);
        CHECK(my_head_sig_ok(f->id, f->pk, heads[k].seq, heads[k].hash, heads[k].time_ns,
                             heads[k].sig),
              "head %" PRId64 ": not an Ed25519 signature of the documented message",
              heads[k].seq);
        CHECK(heads[k].time_ns >= t0 && heads[k].time_ns <= now_ns(),
              "head %" PRId64 ": time %" PRId64 " is not the signing time", heads[k].seq,
              heads[k].time_ns);
    }
    rec_list_free(l);

    assert_int_equal(run_verify(f, NULL, NULL, &res), 0);
    assert_int_equal(res.records, RT_RECORDS);
    assert_int_equal(res.heads, (int64_t)nh);
    assert_int_equal(res.unsigned_tail, 0);
    assert_int_equal(res.bad_seq, 0);
    assert_true(strlen(res.why) > 0);

    /* audit_foreach stops when the callback says so */
    l = new_list(7);
    {
        char err[256] = "";
        assert_int_equal(audit_foreach(f->db, collect, l, err, sizeof(err)), 0);
    }
    assert_int_equal(l->n, 7);
    rec_list_free(l);
}

/* Reopening continues the same chain: seq goes on, verify passes. */
static void test_reopen_continues(void **state)
{
    struct fx *f = *state;
    struct audit_log *log;
    struct rec_list *l;
    struct head_row heads[32];
    size_t nh;

    for (int session = 0; session < 3; session++) {
        log = open_log(f, NULL);
        for (int64_t i = 1; i <= 10; i++)
            put_record(log, session * 10 + i, i == 1 ? "mount" : i == 10 ? "unmount" : NULL,
                       i % 2);
        assert_int_equal(close_log(log, 5), 0);
        expect_verifies(f, NULL, (session + 1) * 10);
    }
    l = read_all(f->db);
    assert_int_equal(l->n, 30);
    expect_chain(f, l);
    assert_string_equal(l->v[10].op, "mount");
    assert_string_equal(l->v[29].op, "unmount");
    rec_list_free(l);
    /* each session signs its end (its first commit: test_first_commit_signed) */
    nh = read_heads(f->db, heads, 32);
    {
        size_t found = 0;
        for (size_t k = 0; k < nh; k++)
            found += heads[k].seq == 10 || heads[k].seq == 20 || heads[k].seq == 30;
        CHECK(found == 3, "heads at 10, 20, 30 expected; %zu heads, %zu of them there", nh,
              found);
    }
}

/*
 * "The writer signs with its first commit": as soon as the first record of a session is
 * committed, a signed head covers it (a daemon killed right after mounting leaves a log that
 * verifies).
 */
static void test_first_commit_signed(void **state)
{
    struct fx *f = *state;
    struct audit_verify_result res;
    struct audit_head h;
    struct audit_log *log;
    char err[256] = "";
    int rc;

    for (int64_t session = 1; session <= 2; session++) {
        log = open_log(f, NULL);
        put_record(log, session, "mount", 0);
        rc = audit_latest_head(f->db, f->pk, &h, err, sizeof(err));
        CHECK(rc == 1 && h.seq == session, "session %" PRId64 ": after the first commit the "
              "latest head is %s%" PRId64 " (want a head at %" PRId64 ")", session,
              rc == 1 ? "at " : "missing; ", rc == 1 ? h.seq : 0, session);
        rc = run_verify(f, NULL, NULL, &res);
        CHECK(rc == 0, "session %" PRId64 ": a log right after its first commit does not "
              "verify: %s", session, res.why);
        assert_int_equal(close_log(log, 5), 0);
    }
}

/* A log whose only record is signed (a session of one record) must reopen. */
static void test_reopen_after_one_record(void **state)
{
    struct fx *f = *state;
    struct audit_config c = config(f, NULL);
    struct audit_log *log = open_log(f, NULL);
    char err[512] = "";
    int rc;

    put_record(log, 1, "mount", 0);
    assert_int_equal(close_log(log, 5), 0);
    expect_verifies(f, NULL, 1);
    log = NULL;
    rc = audit_open(&c, &log, err, sizeof(err));
    CHECK(rc == 0, "reopening a log of one signed record fails: %s", err);
    if (rc == 0) {
        put_record(log, 2, NULL, 0);
        assert_int_equal(close_log(log, 5), 0);
        expect_verifies(f, NULL, 2);
    }
}

/* An empty log (opened and closed without records) reopens and verifies. */
static void test_empty_log(void **state)
{
    struct fx *f = *state;
    struct audit_log *log = open_log(f, NULL);
    struct audit_head h;
    char err[256] = "";

    assert_int_equal(close_log(log, 5), 0);
    expect_verifies(f, NULL, 0);
    assert_int_equal(audit_latest_head(f->db, f->pk, &h, err, sizeof(err)), 0);
    log = open_log(f, NULL);
    put_record(log, 1, NULL, 0);
    assert_int_equal(close_log(log, 5), 0);
    expect_verifies(f, NULL, 1);
}

/* audit_latest_head, audit_head_format, audit_head_parse, audit_head_check_sig. */
static void test_head_line(void **state)
{
    struct fx *f = *state;
    struct audit_log *log = open_log(f, NULL);
    struct audit_head h, p, bad;
    struct rec_list *l;
    char line[AUDIT_HEAD_LINE_MAX], small[64], err[256] = "", idhex[2 * AUDIT_ID_SIZE + 1];
    int n;

    for (int64_t i = 1; i <= 12; i++)
        put_record(log, i, NULL, 0);
    assert_int_equal(close_log(log, 5), 0);
    l = read_all(f->db);

    assert_int_equal(audit_latest_head(f->db, f->pk, &h, err, sizeof(err)), 1);
    assert_int_equal(h.seq, 12);
    assert_memory_equal(h.hash, l->v[11].hash, AUDIT_HASH_SIZE);
    assert_memory_equal(h.vault_id, f->id, AUDIT_ID_SIZE);
    assert_memory_equal(h.pk, f->pk, AUDIT_PK_SIZE);
    assert_int_equal(audit_head_check_sig(&h), 1);
    assert_true(my_head_sig_ok(f->id, f->pk, h.seq, h.hash, h.time_ns, h.sig));
    rec_list_free(l);

    n = audit_head_format(&h, line, sizeof(line));
    assert_true(n > 0 && (size_t)n == strlen(line) && n < AUDIT_HEAD_LINE_MAX);
    assert_null(strchr(line, '\n'));
    sodium_bin2hex(idhex, sizeof(idhex), f->id, AUDIT_ID_SIZE);
    {
        char want[128];
        snprintf(want, sizeof(want), "custodyfs-head 1 %s 12 ", idhex);
        CHECK(strncmp(line, want, strlen(want)) == 0, "head line '%s' does not start with '%s'",
              line, want);
    }
    assert_int_equal(audit_head_parse(line, &p), 0);
    assert_memory_equal(&p.vault_id, &h.vault_id, AUDIT_ID_SIZE);
    assert_int_equal(p.seq, h.seq);
    assert_memory_equal(p.hash, h.hash, AUDIT_HASH_SIZE);
    assert_int_equal(p.time_ns, h.time_ns);
    assert_memory_equal(p.pk, h.pk, AUDIT_PK_SIZE);
    assert_memory_equal(p.sig, h.sig, AUDIT_SIG_SIZE);
    assert_int_equal(audit_head_check_sig(&p), 1);
    /* a trailing newline, as read from a file, is accepted by custodyctl after stripping;
     * the parser itself accepts trailing blanks */
    assert_int_equal(audit_head_format(&h, small, sizeof(small)), -1);

    /* every signed field counts */
    bad = h;
    bad.seq++;
    assert_int_equal(audit_head_check_sig(&bad), 0);
    bad = h;
    bad.time_ns++;
    assert_int_equal(audit_head_check_sig(&bad), 0);
    bad = h;
    bad.hash[5] ^= 1;
    assert_int_equal(audit_head_check_sig(&bad), 0);
    bad = h;
    bad.vault_id[0] ^= 1;
    assert_int_equal(audit_head_check_sig(&bad), 0);
    bad = h;
    bad.sig[63] ^= 0x80;
    assert_int_equal(audit_head_check_sig(&bad), 0);
    bad = h;
    {
        unsigned char sk2[AUDIT_SK_SIZE];
        crypto_sign_keypair(bad.pk, sk2);
    }
    assert_int_equal(audit_head_check_sig(&bad), 0);

    /* not head lines */
    {
        char mod[AUDIT_HEAD_LINE_MAX + 16];
        const char *tail = strchr(line + strlen("custodyfs-head 1 "), ' ');
        assert_int_equal(audit_head_parse("", &p), -1);
        assert_int_equal(audit_head_parse("custodyfs-head 1", &p), -1);
        snprintf(mod, sizeof(mod), "custodyfs-hed %s", line + strlen("custodyfs-head "));
        assert_int_equal(audit_head_parse(mod, &p), -1);
        snprintf(mod, sizeof(mod), "custodyfs-head 2 %s", line + strlen("custodyfs-head 1 "));
        assert_int_equal(audit_head_parse(mod, &p), -1);
        snprintf(mod, sizeof(mod), "%s extra", line);
        assert_int_equal(audit_head_parse(mod, &p), -1);
        snprintf(mod, sizeof(mod), "custodyfs-head 1 %s 0%s", idhex,
                 strchr(tail + 1, ' ')); /* seq 0 */
        assert_int_equal(audit_head_parse(mod, &p), -1);
        snprintf(mod, sizeof(mod), "%s", line);
        mod[strlen("custodyfs-head 1 ") + 3] = 'g'; /* not hex */
        assert_int_equal(audit_head_parse(mod, &p), -1);
        snprintf(mod, sizeof(mod), "%s", line);
        mod[strlen(mod) - 2] = '\0'; /* signature one byte short */
        assert_int_equal(audit_head_parse(mod, &p), -1);
        snprintf(mod, sizeof(mod), "custodyfs-head 1 %.30s%s", idhex, tail); /* short id */
        assert_int_equal(audit_head_parse(mod, &p), -1);
    }
    /* no log there */
    {
        char missing[300];
        snprintf(missing, sizeof(missing), "%s/missing.db", f->dir);
        err[0] = '\0';
        assert_int_equal(audit_latest_head(missing, f->pk, &h, err, sizeof(err)), -1);
        assert_true(err[0] != '\0');
    }
}

/* ---- tampering ---- */

/*
 * The base log for tampering: three sessions of 10 records, each starting with "mount" and
 * ending with "unmount" (heads at least at 10, 20, 30, and near the start of each session).
 * Saved as dir/base.db; *last gets the latest head; base_heads[] the seqs of all heads.
 */
static int64_t base_heads[64];
static size_t base_nh;

/* The first head of the base log after record s. */
static int64_t head_after(int64_t s)
{
    for (size_t k = 0; k < base_nh; k++)
        if (base_heads[k] > s)
            return base_heads[k];
    fail_msg("no head after record %" PRId64, s);
    return -1;
}

static void make_base(struct fx *f, char *base, size_t len, struct audit_head *last)
{
    struct head_row rows[64];
    char err[256] = "";

    g_real_time = 1;

    for (int session = 0; session < 3; session++) {
        struct audit_log *log = open_log(f, NULL);
        for (int64_t i = 1; i <= 10; i++)
            put_record(log, session * 10 + i, i == 1 ? "mount" : i == 10 ? "unmount" : NULL, 0);
        assert_int_equal(close_log(log, 5), 0);
    }
    expect_verifies(f, NULL, 30);
    assert_int_equal(audit_latest_head(f->db, f->pk, last, err, sizeof(err)), 1);
    assert_int_equal(last->seq, 30);
    base_nh = read_heads(f->db, rows, 64);
    for (size_t k = 0; k < base_nh; k++)
        base_heads[k] = rows[k].seq;
    assert_int_equal(head_after(9), 10);
    assert_int_equal(head_after(19), 20);
    assert_int_equal(head_after(29), 30);
    assert_true(head_after(20) < 25); /* the third session's first commit is signed early */
    snprintf(base, len, "%s/base.db", f->dir);
    copy_db(f->db, base);
}

/* A fresh copy of the base log to tamper with. */
static const char *fresh(struct fx *f, const char *base)
{
    static char path[300];

    snprintf(path, sizeof(path), "%s/case.db", f->dir);
    copy_db(base, path);
    return path;
}

static const char *const COLUMNS[] = {
    "time_ns", "uid", "user", "gid", "pid", "ppid", "pstart", "process", "exe", "op",
    "path", "path2", "file_id", "result", "bytes", "ranges", "detail", "hash",
};
#define NCOLUMNS ((int)(sizeof(COLUMNS) / sizeof(COLUMNS[0])))

static int is_int_column(const char *c)
{
    return strcmp(c, "time_ns") == 0 || strcmp(c, "uid") == 0 || strcmp(c, "gid") == 0 ||
           strcmp(c, "pid") == 0 || strcmp(c, "ppid") == 0 || strcmp(c, "pstart") == 0 ||
           strcmp(c, "bytes") == 0;
}

static void test_tamper_edit_each_field(void **state)
{
    struct fx *f = *state;
    struct audit_head last;
    char base[300], what[128];
    static const int64_t seqs[] = {1, 7, 10, 11, 15, 16, 25, 30}; /* first, inner, signed,
                                                                   either side of the split, last */

    make_base(f, base, sizeof(base), &last);
    for (size_t s = 0; s < sizeof(seqs) / sizeof(seqs[0]); s++) {
        int64_t q = seqs[s];
        for (int c = 0; c < NCOLUMNS; c++) {
            const char *col = COLUMNS[c], *db = fresh(f, base);
            if (strcmp(col, "hash") == 0)
                sql(db, "UPDATE records SET hash = randomblob(32) WHERE seq = %lld",
                    (long long)q);
            else if (is_int_column(col))
                sql(db, "UPDATE records SET %s = CASE WHEN %s IS NULL THEN 0 ELSE %s + 1 END "
                        "WHERE seq = %lld", col, col, col, (long long)q);
            else
                sql(db, "UPDATE records SET %s = CASE WHEN %s IS NULL THEN 'x' ELSE %s || 'x' "
                        "END WHERE seq = %lld", col, col, col, (long long)q);
            snprintf(what, sizeof(what), "record %lld: %s edited", (long long)q, col);
            expect_bad(f, db, NULL, q, what);
            expect_bad(f, db, &last, q, what);
        }
        /* NULL and "" differ; a value and NULL differ */
        for (int c = 0; c < NCOLUMNS; c++) {
            const char *col = COLUMNS[c], *db;
            if (is_int_column(col) || strcmp(col, "hash") == 0 || strcmp(col, "op") == 0 ||
                strcmp(col, "result") == 0)
                continue;
            db = fresh(f, base);
            sql(db, "UPDATE records SET %s = CASE WHEN %s IS NULL THEN '' ELSE NULL END "
                    "WHERE seq = %lld", col, col, (long long)q);
            snprintf(what, sizeof(what), "record %lld: %s NULL <-> ''", (long long)q, col);
            expect_bad(f, db, NULL, q, what);
        }
        for (int c = 0; c < NCOLUMNS; c++) {
            const char *col = COLUMNS[c], *db;
            if (!is_int_column(col) || strcmp(col, "time_ns") == 0)
                continue;
            db = fresh(f, base);
            sql(db, "UPDATE records SET %s = CASE WHEN %s IS NULL THEN 0 ELSE NULL END "
                    "WHERE seq = %lld", col, col, (long long)q);
            snprintf(what, sizeof(what), "record %lld: %s value <-> NULL", (long long)q, col);
            expect_bad(f, db, NULL, q, what);
        }
    }
    /* and the untouched copy still verifies */
    expect_verifies(f, fresh(f, base), 30);
}

/* Rewrite the stored hashes from record `from` on, as someone without the key could. */
static void rechain(struct fx *f, const char *db, int64_t from)
{
    struct rec_list *l;
    unsigned char prev[AUDIT_HASH_SIZE], h[AUDIT_HASH_SIZE];
    char hex[2 * AUDIT_HASH_SIZE + 1];

    l = read_all(db);
    my_genesis(f->id, prev);
    for (size_t i = 0; i < l->n; i++) {
        my_hash(prev, &l->v[i], h);
        if (l->v[i].seq >= from) {
            sodium_bin2hex(hex, sizeof(hex), h, AUDIT_HASH_SIZE);
            sql(db, "UPDATE records SET hash = x'%s' WHERE seq = %lld", hex,
                (long long)l->v[i].seq);
        }
        memcpy(prev, h, AUDIT_HASH_SIZE);
    }
    rec_list_free(l);
}

static void test_tamper_rewrite_chain(void **state)
{
    struct fx *f = *state;
    struct audit_head last;
    char base[300];
    const char *db;
    int64_t h3;

    make_base(f, base, sizeof(base), &last);
    /* rechaining an untouched log changes nothing (this test's hash is the log's hash) */
    db = fresh(f, base);
    rechain(f, db, 1);
    expect_verifies(f, db, 30);

    /* edit 15 and rewrite every hash after it: the signed head at 20 no longer matches */
    db = fresh(f, base);
    sql(db, "UPDATE records SET path = '/elsewhere' WHERE seq = 15");
    rechain(f, db, 15);
    expect_bad(f, db, NULL, 20, "record 15 edited, chain rewritten");

    /* edit 25, rewrite, and drop the heads that would tell: the unsigned tail holds an
     * unmount, which a writer always signs */
    h3 = head_after(20);
    db = fresh(f, base);
    sql(db, "UPDATE records SET result = 'ok', path = '/elsewhere' WHERE seq = 25");
    rechain(f, db, 25);
    sql(db, "DELETE FROM heads WHERE seq > %lld", (long long)h3);
    expect_bad(f, db, NULL, h3 + 1, "record 25 edited, chain and heads rewritten");
    /* the head kept elsewhere catches it too */
    expect_bad(f, db, &last, 30, "record 25 edited, chain rewritten (with the kept head)");

    /* same, but the tail also spans more time than a writer leaves unsigned */
    db = fresh(f, base);
    sql(db, "UPDATE records SET op = 'chmod', time_ns = %lld WHERE seq = 30",
        (long long)(now_ns() + 60LL * 1000000000));
    sql(db, "UPDATE records SET time_ns = %lld WHERE seq = 24", (long long)now_ns());
    rechain(f, db, 24);
    sql(db, "DELETE FROM heads WHERE seq > %lld", (long long)h3);
    expect_bad(f, db, NULL, h3 + 1, "tail rewritten with a long unsigned span");
}

static void test_tamper_delete_insert_swap(void **state)
{
    struct fx *f = *state;
    struct audit_head last;
    char base[300];
    const char *db;

    make_base(f, base, sizeof(base), &last);

    db = fresh(f, base);
    sql(db, "DELETE FROM records WHERE seq = 7");
    expect_bad(f, db, NULL, 7, "record 7 deleted");
    db = fresh(f, base);
    sql(db, "DELETE FROM records WHERE seq = 1");
    expect_bad(f, db, NULL, 1, "record 1 deleted");
    db = fresh(f, base);
    sql(db, "DELETE FROM records WHERE seq = 20");
    expect_bad(f, db, NULL, 20, "record 20 (signed) deleted");
    db = fresh(f, base);
    sql(db, "DELETE FROM records WHERE seq = 30");
    expect_bad(f, db, NULL, 30, "the last record deleted");
    /* deleted and the later ones renumbered to close the gap */
    db = fresh(f, base);
    sql(db, "DELETE FROM records WHERE seq = 7; UPDATE records SET seq = seq - 1 WHERE seq > 7");
    expect_bad(f, db, NULL, 7, "record 7 deleted, the rest renumbered");

    /* inserted in the middle (the later ones renumbered to make room) */
    db = fresh(f, base);
    sql(db, "UPDATE records SET seq = seq + 1000 WHERE seq >= 7;"
            "UPDATE records SET seq = seq - 999 WHERE seq >= 1007;"
            "INSERT INTO records SELECT 7, time_ns, uid, user, gid, pid, ppid, pstart, process,"
            " exe, op, '/inserted', path2, file_id, result, bytes, ranges, detail, hash"
            " FROM records WHERE seq = 9");
    expect_bad(f, db, NULL, 7, "a record inserted at 7");
    /* inserted before the first, with a sequence number below 1 */
    db = fresh(f, base);
    sql(db, "INSERT INTO records SELECT -5, time_ns, uid, user, gid, pid, ppid, pstart, process,"
            " exe, op, '/before', path2, file_id, result, bytes, ranges, detail, hash"
            " FROM records WHERE seq = 1");
    expect_bad(f, db, NULL, -5, "a record inserted before the first");
    /* inserted after the end, with a made-up hash */
    db = fresh(f, base);
    sql(db, "INSERT INTO records SELECT 31, time_ns, uid, user, gid, pid, ppid, pstart, process,"
            " exe, 'unlink', '/x', NULL, NULL, 'ok', NULL, NULL, NULL, randomblob(32)"
            " FROM records WHERE seq = 30");
    expect_bad(f, db, NULL, 31, "a record appended with a wrong hash");
    /* appended with a correct hash, but an unmount that no head signs */
    db = fresh(f, base);
    sql(db, "INSERT INTO records SELECT 31, time_ns + 1000, uid, user, gid, pid, ppid, pstart,"
            " process, exe, 'unmount', NULL, NULL, NULL, 'ok', NULL, NULL, NULL, hash"
            " FROM records WHERE seq = 30");
    rechain(f, db, 31);
    expect_bad(f, db, NULL, 31, "a forged unmount appended");
    /* appended with a correct hash, spanning more time than a writer leaves unsigned */
    db = fresh(f, base);
    sql(db, "INSERT INTO records SELECT 31, time_ns, uid, user, gid, pid, ppid, pstart,"
            " process, exe, 'unlink', '/a', NULL, NULL, 'ok', NULL, NULL, NULL, hash"
            " FROM records WHERE seq = 30;"
            "INSERT INTO records SELECT 32, time_ns + 60000000000, uid, user, gid, pid, ppid,"
            " pstart, process, exe, 'unlink', '/b', NULL, NULL, 'ok', NULL, NULL, NULL, hash"
            " FROM records WHERE seq = 31");
    rechain(f, db, 31);
    expect_bad(f, db, NULL, 31, "forged records appended over a minute");

    /* two records' contents swapped */
    db = fresh(f, base);
    sql(db, "CREATE TABLE t AS SELECT * FROM records WHERE seq IN (5, 8);"
            "UPDATE records SET (time_ns, uid, user, gid, pid, ppid, pstart, process, exe, op,"
            " path, path2, file_id, result, bytes, ranges, detail, hash) ="
            " (SELECT time_ns, uid, user, gid, pid, ppid, pstart, process, exe, op, path, path2,"
            " file_id, result, bytes, ranges, detail, hash FROM t WHERE t.seq = 13 - records.seq)"
            " WHERE seq IN (5, 8); DROP TABLE t");
    expect_bad(f, db, NULL, 5, "records 5 and 8 swapped");
    /* swapped with their seq numbers (reordered rows) */
    db = fresh(f, base);
    sql(db, "UPDATE records SET seq = -1 WHERE seq = 12; UPDATE records SET seq = 12 WHERE "
            "seq = 18; UPDATE records SET seq = 18 WHERE seq = -1");
    expect_bad(f, db, NULL, 12, "records 12 and 18 renumbered into each other's place");
    /* a record duplicated over the next one */
    db = fresh(f, base);
    sql(db, "DELETE FROM records WHERE seq = 4;"
            "INSERT INTO records SELECT 4, time_ns, uid, user, gid, pid, ppid, pstart, process,"
            " exe, op, path, path2, file_id, result, bytes, ranges, detail, hash"
            " FROM records WHERE seq = 3");
    expect_bad(f, db, NULL, 4, "record 3 copied over record 4");
}

static void test_tamper_tail_and_heads(void **state)
{
    struct fx *f = *state;
    struct audit_head last, anchor20;
    struct audit_verify_result res;
    char base[300], old[300], err[256] = "";
    const char *db;

    make_base(f, base, sizeof(base), &last);

    /* cut off the tail: records and heads after 20 */
    db = fresh(f, base);
    sql(db, "DELETE FROM records WHERE seq > 20; DELETE FROM heads WHERE seq > 20");
    expect_verifies(f, db, 20); /* a shorter log is a log: only the kept head tells */
    assert_int_equal(audit_latest_head(db, f->pk, &anchor20, err, sizeof(err)), 1);
    assert_int_equal(anchor20.seq, 20);
    expect_bad(f, db, &last, 30, "tail after 20 cut off, with the newer head");
    assert_int_equal(run_verify(f, db, &anchor20, &res), 0); /* an older head is still there */
    /* cut inside a session: records and heads after 15 */
    db = fresh(f, base);
    sql(db, "DELETE FROM records WHERE seq > 15; DELETE FROM heads WHERE seq > 15");
    expect_bad(f, db, &last, 30, "tail after 15 cut off, with the newer head");
    /* records cut, heads kept */
    db = fresh(f, base);
    sql(db, "DELETE FROM records WHERE seq > 15");
    expect_bad(f, db, NULL, 20, "records after 15 cut off, heads kept");

    /* forged signatures: one byte of a head's signature flipped */
    for (size_t k = 0; k < base_nh; k++) {
        char what[64];
        int64_t hs = base_heads[k];
        db = fresh(f, base);
        flip_sig_byte(db, hs, (int)(k * 7 % AUDIT_SIG_SIZE));
        assert_int_equal(sql_int(db, "SELECT length(signature) FROM heads WHERE seq = %lld",
                                 (long long)hs), AUDIT_SIG_SIZE);
        snprintf(what, sizeof(what), "signature of head %lld forged", (long long)hs);
        expect_bad(f, db, NULL, hs, what);
    }
    db = fresh(f, base);
    sql(db, "UPDATE heads SET signature = randomblob(64) WHERE seq = 20");
    expect_bad(f, db, NULL, 20, "signature of head 20 replaced");
    db = fresh(f, base);
    sql(db, "UPDATE heads SET signature = substr(signature, 1, 63) WHERE seq = 20");
    expect_bad(f, db, NULL, 20, "signature of head 20 truncated");
    db = fresh(f, base);
    sql(db, "UPDATE heads SET time_ns = time_ns + 1 WHERE seq = %lld", (long long)head_after(10));
    expect_bad(f, db, NULL, head_after(10), "time of the second session's first head edited");
    db = fresh(f, base);
    sql(db, "UPDATE heads SET hash = (SELECT hash FROM records WHERE seq = 9) WHERE seq = 10");
    expect_bad(f, db, NULL, 10, "hash of head 10 edited");
    /* a head moved to another record */
    db = fresh(f, base);
    sql(db, "UPDATE heads SET seq = 15 WHERE seq = 20");
    expect_bad(f, db, NULL, 15, "head 20 renumbered to 15");

    /* heads removed */
    db = fresh(f, base);
    sql(db, "DELETE FROM heads");
    expect_bad(f, db, NULL, 1, "every head deleted");
    db = fresh(f, base);
    sql(db, "DELETE FROM heads WHERE seq = 30");
    expect_bad(f, db, NULL, head_after(20) + 1, "the last head (after an unmount) deleted");

    /* replaced by an older copy */
    snprintf(old, sizeof(old), "%s/old.db", f->dir);
    copy_db(base, old);
    {
        struct audit_log *log;
        struct audit_head newer;
        db = fresh(f, base);
        copy_db(db, f->db);
        log = open_log(f, NULL);
        for (int64_t i = 31; i <= 40; i++)
            put_record(log, i, NULL, 0);
        assert_int_equal(close_log(log, 5), 0);
        expect_verifies(f, NULL, 40);
        assert_int_equal(audit_latest_head(f->db, f->pk, &newer, err, sizeof(err)), 1);
        assert_int_equal(newer.seq, 40);
        copy_db(old, f->db); /* restore the older copy */
        expect_verifies(f, NULL, 30);
        expect_bad(f, NULL, &newer, 40, "log replaced by an older copy");
    }
    /* an anchor that is not a signed head of this vault */
    {
        struct audit_head forged = last;
        forged.sig[0] ^= 1;
        db = fresh(f, base);
        assert_int_equal(run_verify(f, db, &forged, &res), 1);
    }
}

/* audit_open refuses a log whose end does not verify. */
static void test_open_refuses_tampered(void **state)
{
    struct fx *f = *state;
    struct audit_config c = config(f, NULL);
    struct audit_log *log = NULL;
    struct audit_head last;
    char base[300], err[512];

    make_base(f, base, sizeof(base), &last);
    copy_db(base, f->db);
    sql(f->db, "UPDATE records SET path = '/x' WHERE seq = 30");
    err[0] = '\0';
    assert_int_equal(audit_open(&c, &log, err, sizeof(err)), -1);
    assert_null(log);
    CHECK(strstr(err, "30") != NULL, "message does not name record 30: %s", err);

    copy_db(base, f->db);
    sql(f->db, "UPDATE heads SET signature = randomblob(64) WHERE seq = 30");
    err[0] = '\0';
    assert_int_equal(audit_open(&c, &log, err, sizeof(err)), -1);
    assert_true(err[0] != '\0');

    copy_db(base, f->db);
    sql(f->db, "DELETE FROM records WHERE seq > 28");
    err[0] = '\0';
    assert_int_equal(audit_open(&c, &log, err, sizeof(err)), -1);
    assert_true(err[0] != '\0');

    copy_db(base, f->db);
    log = open_log(f, NULL);
    assert_int_equal(close_log(log, 5), 0);
}

/* A log belongs to one vault. */
static void test_other_vault(void **state)
{
    struct fx *f = *state;
    struct audit_log *log = open_log(f, NULL);
    struct audit_config c;
    struct audit_verify_result res;
    unsigned char other[AUDIT_ID_SIZE];
    char err[512] = "";

    put_record(log, 1, NULL, 0);
    assert_int_equal(close_log(log, 5), 0);
    memcpy(other, f->id, AUDIT_ID_SIZE);
    other[3] ^= 0x10;
    c = config(f, NULL);
    memcpy(c.vault_id, other, AUDIT_ID_SIZE);
    log = NULL;
    assert_int_equal(audit_open(&c, &log, err, sizeof(err)), -1);
    assert_null(log);
    CHECK(strstr(err, "another vault") != NULL, "message: %s", err);
    assert_int_equal(audit_verify(f->db, other, f->pk, NULL, NULL, NULL, &res), 1);
    assert_int_equal(res.bad_seq, 0);
    assert_true(res.why[0] != '\0');
    /* another key: the heads do not verify */
    {
        unsigned char pk2[AUDIT_PK_SIZE], sk2[AUDIT_SK_SIZE];
        crypto_sign_keypair(pk2, sk2);
        assert_int_equal(audit_verify(f->db, f->id, pk2, NULL, NULL, NULL, &res), 1);
        assert_int_equal(res.bad_seq, 1);
    }
    /* the vault id edited in the database */
    {
        char hex[2 * AUDIT_ID_SIZE + 1];
        sodium_bin2hex(hex, sizeof(hex), other, AUDIT_ID_SIZE);
        sql(f->db, "UPDATE meta SET value = '%s' WHERE key = 'vault_id'", hex);
        assert_int_equal(run_verify(f, NULL, NULL, &res), 1);
        assert_int_equal(res.bad_seq, 0);
        err[0] = '\0';
        c = config(f, NULL);
        assert_int_equal(audit_open(&c, &log, err, sizeof(err)), -1);
    }
    /* still usable with its own vault id, and verify of a missing log is an error */
    {
        char missing[300];
        snprintf(missing, sizeof(missing), "%s/none.db", f->dir);
        assert_int_equal(run_verify(f, missing, NULL, &res), -1);
        assert_true(res.why[0] != '\0');
        memset(err, 0, sizeof(err));
        assert_int_equal(audit_foreach(missing, collect, NULL, err, sizeof(err)), -1);
        assert_true(err[0] != '\0');
        assert_int_equal(access(missing, F_OK), -1); /* reading never creates a log */
    }
}

/*
 * Children (a writer that dies, an unprivileged user) run as a fresh exec of this program, so
 * that they start with no state of the parent's (and valgrind, which follows no exec here, does
 * not count the writer's deliberately unclosed log as a leak of this test).
 */
static char g_self[4096];

static int run_child(const struct fx *f, const char *mode, const char *db, const char *a1,
                     const char *a2, const char *a3)
{
    char id[2 * AUDIT_ID_SIZE + 1], sk[2 * AUDIT_SK_SIZE + 1];
    char *argv[10];
    int status, n = 0;
    pid_t pid;

    sodium_bin2hex(id, sizeof(id), f->id, AUDIT_ID_SIZE);
    sodium_bin2hex(sk, sizeof(sk), f->sk, AUDIT_SK_SIZE);
    argv[n++] = g_self;
    argv[n++] = (char *)"--child";
    argv[n++] = (char *)mode;
    argv[n++] = (char *)db;
    argv[n++] = id;
    argv[n++] = sk;
    if (a1 != NULL)
        argv[n++] = (char *)a1;
    if (a2 != NULL)
        argv[n++] = (char *)a2;
    if (a3 != NULL)
        argv[n++] = (char *)a3;
    argv[n] = NULL;
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execv(g_self, argv);
        perror("exec");
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- read-only ---- */

static int try_open_fails(const struct fx *f, const char *db, const char *what)
{
    struct audit_config c = config(f, db);
    struct audit_log *log = NULL;
    char err[512] = "";

    if (audit_open(&c, &log, err, sizeof(err)) == 0) {
        fprintf(stderr, "%s: audit_open succeeded\n", what);
        audit_close(log, 0);
        return 1;
    }
    if (err[0] == '\0' || strchr(err, '\n') != NULL) {
        fprintf(stderr, "%s: no one-line message: '%s'\n", what, err);
        return 1;
    }
    fprintf(stderr, "# %s: refused: %s\n", what, err);
    return 0;
}

static void test_readonly(void **state)
{
    struct fx *f = *state;
    char rodir[300], rofile[400], newdb[400], sub[300], subdb[300];
    struct audit_log *log;

    /* an existing log in a directory others may write, the file read-only */
    snprintf(rodir, sizeof(rodir), "%s/open", f->dir);
    assert_int_equal(mkdir(rodir, 0777), 0);
    assert_int_equal(chmod(rodir, 0777), 0);
    snprintf(rofile, sizeof(rofile), "%s/ro.db", rodir);
    log = open_log(f, rofile);
    put_record(log, 1, NULL, 0);
    assert_int_equal(close_log(log, 5), 0);
    assert_int_equal(chmod(rofile, 0444), 0);
    /* a directory nobody may write: a new log cannot be created there */
    snprintf(sub, sizeof(sub), "%s/closed", f->dir);
    assert_int_equal(mkdir(sub, 0555), 0);
    snprintf(newdb, sizeof(newdb), "%s/new.db", sub);
    /* an existing, writable log in a read-only directory (its WAL cannot be created) */
    snprintf(subdb, sizeof(subdb), "%s/closed2", f->dir);
    assert_int_equal(mkdir(subdb, 0755), 0);
    {
        char p[400];
        snprintf(p, sizeof(p), "%s/w.db", subdb);
        log = open_log(f, p);
        put_record(log, 1, NULL, 0);
        assert_int_equal(close_log(log, 5), 0);
        assert_int_equal(chmod(p, 0666), 0);
        assert_int_equal(chmod(subdb, 0555), 0);
    }
    assert_int_equal(chmod(f->dir, 0755), 0);

    /* root may write anything: check as an unprivileged user, in a child */
    {
        char p[400];
        int rc;
        snprintf(p, sizeof(p), "%s/w.db", subdb);
        rc = run_child(f, "readonly", rofile, newdb, p, NULL);
        CHECK(rc == 0, "the unprivileged child: status %d", rc);
    }
    assert_int_equal(access(newdb, F_OK), -1);

    /* as root: an immutable file (chattr +i), where the file system supports it */
    if (geteuid() == 0) {
        char imm[300];
        int fd, flags = 0, set = 0;
        snprintf(imm, sizeof(imm), "%s/imm.db", f->dir);
        log = open_log(f, imm);
        put_record(log, 1, NULL, 0);
        assert_int_equal(close_log(log, 5), 0);
        fd = open(imm, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
            flags |= FS_IMMUTABLE_FL;
            set = ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
        }
        if (set) {
            assert_int_equal(try_open_fails(f, imm, "immutable log file"), 0);
            flags &= ~FS_IMMUTABLE_FL;
            assert_int_equal(ioctl(fd, FS_IOC_SETFLAGS, &flags), 0);
            expect_verifies(f, imm, 1);
        } else {
            fprintf(stderr, "# immutable files not supported here: skipped that case\n");
        }
        close(fd);
    }
    /* a log path whose directory does not exist */
    {
        char p[400];
        snprintf(p, sizeof(p), "%s/no/such/dir/a.db", f->dir);
        assert_int_equal(try_open_fails(f, p, "missing directory"), 0);
    }
}

/*
 * Reading needs no write access: a closed log in a directory the reader cannot write (a log
 * archived on read-only media, or read by an auditor without root) still verifies and lists.
 * Checked as an unprivileged user, in a child.
 */
static void test_verify_unwritable_location(void **state)
{
    struct fx *f = *state;
    struct audit_log *log;
    char dir[300], db[400];
    int rc;

    snprintf(dir, sizeof(dir), "%s/archive", f->dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(db, sizeof(db), "%s/audit.db", dir);
    log = open_log(f, db);
    for (int64_t i = 1; i <= 5; i++)
        put_record(log, i, NULL, 0);
    assert_int_equal(close_log(log, 5), 0);
    expect_verifies(f, db, 5);
    assert_int_equal(chmod(db, 0644), 0);
    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(chmod(f->dir, 0755), 0);
    rc = run_child(f, "verify-as-nobody", db, "5", NULL, NULL);
    CHECK(rc == 0, "verify/foreach as a user who cannot write the log's directory: status %d "
          "(see above)", rc);
}

/* ---- heads over time and count ---- */

#define MANY 2600

static void test_many_records_many_heads(void **state)
{
    struct fx *f = *state;
    struct audit_log *log = open_log(f, NULL);
    struct audit_verify_result res;
    static struct head_row heads[64];
    size_t nh;

    for (int64_t i = 1; i <= MANY; i++)
        put_record(log, i % BIG_EVERY == 0 ? i + 1 : i, NULL, 1); /* no big details here */
    assert_int_equal(audit_sync(log), 0);
    assert_int_equal(close_log(log, 5), 0);
    nh = read_heads(f->db, heads, 64);
    CHECK(nh >= 3, "%zu heads for %d records", nh, MANY);
    assert_int_equal(heads[nh - 1].seq, MANY);
    for (size_t k = 0; k < nh; k++) {
        int64_t prev = k > 0 ? heads[k - 1].seq : 0;
        CHECK(heads[k].seq - prev <= AUDIT_HEAD_EVERY, "heads at %" PRId64 " and %" PRId64
              ": more than %d records apart", prev, heads[k].seq, AUDIT_HEAD_EVERY);
        assert_true(my_head_sig_ok(f->id, f->pk, heads[k].seq, heads[k].hash, heads[k].time_ns,
                                   heads[k].sig));
    }
    assert_int_equal(run_verify(f, NULL, NULL, &res), 0);
    assert_int_equal(res.records, MANY);
    assert_int_equal(res.heads, (int64_t)nh);
    assert_int_equal(res.unsigned_tail, 0);
}

/* The first commit is signed at once; later heads come every AUDIT_HEAD_SECONDS. */
static void test_heads_over_time(void **state)
{
    struct fx *f = *state;
    struct audit_log *log = open_log(f, NULL);
    struct audit_verify_result res;
    struct audit_head h;
    char err[256] = "";
    int64_t start, seen = 0, i = 1;
    int rc;

    g_real_time = 1;

    put_record(log, i++, "mount", 0);
    for (int k = 0; k < 20 && audit_latest_head(f->db, f->pk, &h, err, sizeof(err)) != 1; k++)
        sleep_ms(50); /* the first head: see test_first_commit_signed */
    assert_int_equal(audit_latest_head(f->db, f->pk, &h, err, sizeof(err)), 1);
    assert_int_equal(h.seq, 1);
    start = now_ns();
    while (now_ns() - start < (AUDIT_HEAD_SECONDS + 2) * 1000000000LL) {
        put_record(log, i++, NULL, 0);
        assert_int_equal(audit_latest_head(f->db, f->pk, &h, err, sizeof(err)), 1);
        if (h.seq > 1 && seen == 0)
            seen = now_ns() - start;
        /* verify works on a live log, with its unsigned tail */
        rc = run_verify(f, NULL, NULL, &res);
        CHECK(rc == 0, "verify of the live log after %" PRId64 " records: %d, record %" PRId64
              ": %s", i - 1, rc, res.bad_seq, res.why);
        sleep_ms(250);
    }
    CHECK(seen > 0, "no new head within %d s while records kept arriving",
          AUDIT_HEAD_SECONDS + 2);
    CHECK(seen <= (AUDIT_HEAD_SECONDS + 1) * 1000000000LL, "the next head came after %.1f s",
          (double)seen / 1e9);
    assert_int_equal(close_log(log, 5), 0);
    expect_verifies(f, NULL, i - 1);
}

/* ---- concurrency ---- */

#define THREADS 8
#define PER_THREAD 250

struct worker {
    struct audit_log *log;
    pthread_barrier_t *bar;
    int id, failures;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char detail[64], path[64];

    pthread_barrier_wait(w->bar);
    for (int n = 0; n < PER_THREAD; n++) {
        struct audit_record r = {
            .uid = 1000 + w->id, .gid = 1000, .pid = 100 + w->id, .ppid = 1,
            .pstart = AUDIT_NONE, .bytes = n, .op = "write", .result = "ok",
            .detail = detail, .path = path, .process = "worker",
        };
        snprintf(detail, sizeof(detail), "thread %d n %d", w->id, n);
        snprintf(path, sizeof(path), "/t%d/%d", w->id, n);
        if ((n % 5 == 4 ? audit_submit(w->log, &r) : audit_append(w->log, &r)) != 0)
            w->failures++;
    }
    return NULL;
}

static void test_concurrent_append(void **state)
{
    struct fx *f = *state;
    struct audit_log *log = open_log(f, NULL);
    pthread_t th[THREADS];
    struct worker w[THREADS];
    pthread_barrier_t bar;
    struct rec_list *l;
    int next[THREADS] = {0};

    pthread_barrier_init(&bar, NULL, THREADS);
    for (int t = 0; t < THREADS; t++) {
        w[t] = (struct worker){.log = log, .bar = &bar, .id = t};
        assert_int_equal(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(w[t].failures, 0);
    }
    pthread_barrier_destroy(&bar);
    assert_int_equal(close_log(log, 5), 0);
    expect_verifies(f, NULL, THREADS * PER_THREAD);
    l = read_all(f->db);
    assert_int_equal(l->n, THREADS * PER_THREAD);
    expect_chain(f, l);
    /* each thread's records in its own order, none lost or doubled */
    for (size_t k = 0; k < l->n; k++) {
        int t, n;
        assert_int_equal(sscanf(l->v[k].detail, "thread %d n %d", &t, &n), 2);
        assert_true(t >= 0 && t < THREADS);
        CHECK(n == next[t], "thread %d: record n %d where %d was due", t, n, next[t]);
        next[t]++;
        assert_int_equal(l->v[k].uid, 1000 + t);
        assert_int_equal(l->v[k].bytes, n);
    }
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(next[t], PER_THREAD);
    rec_list_free(l);
}

/* ---- a writer killed without closing ---- */

/* Child: open, write `n` records, and die without closing (as kill -9 would). */
static int child_killed_writer(const struct fx *f, int64_t n, int pause_ms)
{
    struct audit_config c = config(f, NULL);
    struct audit_log *log = NULL;
    char err[512];

    if (audit_open(&c, &log, err, sizeof(err)) != 0) {
        fprintf(stderr, "child: %s\n", err);
        return 1;
    }
    for (int64_t i = 1; i <= n; i++) {
        struct audit_record r;
        struct rbuf b;
        gen_record(i, i == 1 ? "mount" : NULL, &r, &b);
        if ((i % 2 ? audit_submit(log, &r) : audit_append(log, &r)) != 0)
            return 2;
        rbuf_free(&b);
        if (i == 1 && pause_ms > 0) { /* idle for a moment after mounting */
            if (audit_sync(log) != 0)
                return 3;
            sleep_ms(pause_ms);
        }
    }
    if (audit_sync(log) != 0)
        return 3;
    _exit(0); /* no audit_close: the writer dies with its log open */
}

static void killed_writer(const struct fx *f, int64_t n, int pause_ms)
{
    char a1[32], a2[32];
    int rc;

    snprintf(a1, sizeof(a1), "%" PRId64, n);
    snprintf(a2, sizeof(a2), "%d", pause_ms);
    rc = run_child(f, "killed-writer", f->db, a1, a2, NULL);
    CHECK(rc == 0, "writer child: status %d", rc);
}

static void reopen_after_kill(struct fx *f, int64_t n)
{
    struct audit_config c = config(f, NULL);
    struct audit_log *log = NULL;
    struct audit_verify_result res;
    struct audit_head h;
    struct rec_list *l;
    char err[512] = "";
    int rc;

    rc = run_verify(f, NULL, NULL, &res);
    CHECK(rc == 0, "verify of the log a killed writer left: %d, record %" PRId64 ": %s", rc,
          res.bad_seq, res.why);
    assert_int_equal(res.records, n);
    CHECK(res.unsigned_tail > 0, "the killed writer left no unsigned tail (%" PRId64 " records)",
          n);
    rc = audit_open(&c, &log, err, sizeof(err));
    CHECK(rc == 0, "reopening the log of a killed writer (%" PRId64 " records, unsigned tail %"
          PRId64 "): %s", n, res.unsigned_tail, err);
    /* the unsigned tail is signed at once */
    assert_int_equal(audit_latest_head(f->db, f->pk, &h, err, sizeof(err)), 1);
    assert_int_equal(h.seq, n);
    put_record(log, n + 1, "mount", 0);
    assert_int_equal(close_log(log, 5), 0);
    assert_int_equal(run_verify(f, NULL, NULL, &res), 0);
    assert_int_equal(res.records, n + 1);
    assert_int_equal(res.unsigned_tail, 0);
    l = read_all(f->db);
    assert_int_equal(l->n, n + 1);
    expect_chain(f, l);
    assert_string_equal(l->v[n].op, "mount");
    rec_list_free(l);
}

static void test_killed_writer_long(void **state)
{
    struct fx *f = *state;

    g_real_time = 1;
    killed_writer(f, 1500, 0); /* a head at 1000 records or so, then an unsigned tail */
    reopen_after_kill(f, 1500);
}

static void test_killed_writer_early(void **state)
{
    struct fx *f = *state;

    g_real_time = 1;
    /* killed within seconds of mounting: only the first commit (the mount) is signed */
    killed_writer(f, 6, 400);
    reopen_after_kill(f, 6);
}

/* ---- fail-closed: commits fail while another connection holds the write lock ---- */

static sqlite3 *lock_db(const char *db)
{
    sqlite3 *h = NULL;

    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    return h;
}

static void unlock_db(sqlite3 *h)
{
    assert_int_equal(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
}

static void test_fail_closed_and_gap(void **state)
{
    struct fx *f = *state;
    struct audit_log *log = open_log(f, NULL);
    struct rec_list *l;
    sqlite3 *h;
    int64_t t0, t_fail, t_ok;
    int waited = 0;

    put_record(log, 1, "mount", 0);
    t0 = now_ns();
    h = lock_db(f->db);
    CHECK(audit_append(log, &(struct audit_record){.op = "unlink", .path = "/during",
                                                    .result = "ok", .uid = 0, .gid = 0,
                                                    .pid = 1, .ppid = AUDIT_NONE,
                                                    .pstart = AUDIT_NONE,
                                                    .bytes = AUDIT_NONE}) == -EIO,
          "an append that cannot commit must fail with EIO");
    t_fail = now_ns();
    assert_false(audit_healthy(log));
    audit_refused(log);
    audit_refused(log);
    audit_refused(log);
    assert_int_equal(audit_submit(log, &(struct audit_record){.op = "rmdir", .path = "/queued",
                                                              .result = "ENOTEMPTY", .uid = 0,
                                                              .gid = 0, .pid = 1,
                                                              .ppid = AUDIT_NONE,
                                                              .pstart = AUDIT_NONE,
                                                              .bytes = AUDIT_NONE}), 0);
    sleep_ms(500);
    assert_false(audit_healthy(log));
    unlock_db(h);
    while (!audit_healthy(log) && waited < 10000) {
        sleep_ms(50);
        waited += 50;
    }
    t_ok = now_ns();
    CHECK(audit_healthy(log), "the log did not recover within 10 s after the lock was released");
    assert_int_equal(audit_sync(log), 0);
    put_record(log, 5, NULL, 0);
    assert_int_equal(close_log(log, 5), 0);

    expect_verifies(f, NULL, 5);
    l = read_all(f->db);
    assert_int_equal(l->n, 5);
    expect_chain(f, l);
    assert_string_equal(l->v[0].op, "mount");
    assert_string_equal(l->v[1].op, "audit-gap");
    assert_string_equal(l->v[1].result, "ok");
    CHECK(l->v[1].detail != NULL && strstr(l->v[1].detail, "3 operations were refused") != NULL,
          "audit-gap detail: %s", SHOW(l->v[1].detail));
    {
        double secs = -1;
        const char *p = l->v[1].detail != NULL ? strstr(l->v[1].detail, "for ") : NULL;
        CHECK(p != NULL && sscanf(p, "for %lf s", &secs) == 1 && secs >= 0.4 &&
              secs <= (double)(t_ok - t0) / 1e9 + 1, "audit-gap duration: %s",
              SHOW(l->v[1].detail));
    }
    /* the refused-to-commit record and the queued one follow, once each */
    assert_string_equal(l->v[2].op, "unlink");
    assert_string_equal(l->v[2].path, "/during");
    CHECK(l->v[2].time_ns >= t0 && l->v[2].time_ns <= t_fail, "time of the delayed record");
    assert_string_equal(l->v[3].op, "rmdir");
    assert_string_equal(l->v[3].result, "ENOTEMPTY");
    {
        int64_t gap_time = l->v[1].time_ns;
        rec_list_free(l);
        CHECK(gap_time >= t_fail && gap_time <= t_ok + 1000000000LL,
              "audit-gap record time %" PRId64 " is not the time of recovery [%" PRId64 ", %"
              PRId64 "]", gap_time, t_fail, t_ok);
    }
}

/* Closing while commits fail: gives up after the grace period and says so. */
static void test_close_while_unhealthy(void **state)
{
    struct fx *f = *state;
    struct audit_log *log = open_log(f, NULL);
    struct timespec a, b;
    sqlite3 *h;
    int rc;

    put_record(log, 1, "mount", 0);
    sleep_ms(300); /* let the first head be signed (see test_first_commit_signed) */
    h = lock_db(f->db);
    assert_int_equal(audit_append(log, &(struct audit_record){.op = "unlink", .path = "/lost",
                                                              .result = "ok",
                                                              .uid = AUDIT_NONE,
                                                              .gid = AUDIT_NONE,
                                                              .pid = AUDIT_NONE,
                                                              .ppid = AUDIT_NONE,
                                                              .pstart = AUDIT_NONE,
                                                              .bytes = AUDIT_NONE}), -EIO);
    clock_gettime(CLOCK_MONOTONIC, &a);
    rc = close_log(log, 1);
    clock_gettime(CLOCK_MONOTONIC, &b);
    unlock_db(h);
    assert_int_equal(rc, -1);
    CHECK(b.tv_sec - a.tv_sec <= 5, "audit_close took %ld s with a grace of 1 s",
          (long)(b.tv_sec - a.tv_sec));
    expect_verifies(f, NULL, 1);
}

/* ---- the spool: records acknowledged once spooled, committed later ---- */

#define SPOOL_N 40
#define SPOOL_TORN 30            /* the entry altered by test_spool_torn_entry (1-based) */
#define SP_MAGIC 0x31505343u     /* "CSP1" */
#define SP_HDR 16
#define SP_TAG 16
#define SP_MAX 256

static struct audit_log *open_spooled(const struct fx *f, const char *db)
{
    struct audit_config c = config(f, db);
    struct audit_log *log = NULL;
    char err[512] = "";
    int rc;

    c.spool = 1;
    rc = audit_open(&c, &log, err, sizeof(err));
    CHECK(rc == 0, "audit_open(%s) with the spool failed: %s", c.db_path, err);
    assert_non_null(log);
    live_add((void **)g_logs, log);
    return log;
}

static void spool_path(const struct fx *f, char *out, size_t len)
{
    snprintf(out, len, "%s-spool", f->db);
}

/* The key of the entries' tags: BLAKE2b-256 of the context string, keyed with the signing key. */
static void sp_key(const unsigned char *sk, unsigned char key[crypto_generichash_KEYBYTES])
{
    static const char context[] = "custodyfs audit spool v1";

    crypto_generichash(key, crypto_generichash_KEYBYTES, (const unsigned char *)context,
                       sizeof(context) - 1, sk, AUDIT_SK_SIZE);
}

/* The spool's entries from offset 0, as the format at the top of audit/spool.c describes them. */
struct sp_walk {
    size_t n;                   /* entries in sequence whose tags chain on */
    int bad_tag;                /* the walk ended at an entry in sequence whose tag fails */
    uint64_t end;               /* offset after the last good entry */
    uint64_t off[SP_MAX];       /* where entry k starts */
    uint32_t len[SP_MAX];       /* its payload length */
    int64_t sseq[SP_MAX];       /* its spool sequence number */
};

static void sp_walk(const char *path, const unsigned char *sk, struct sp_walk *w)
{
    unsigned char key[crypto_generichash_KEYBYTES], prev[SP_TAG] = {0}, hdr[SP_HDR];
    unsigned char tag[SP_TAG], want[SP_TAG], *payload;
    uint64_t pos = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    memset(w, 0, sizeof(*w));
    sp_key(sk, key);
    payload = malloc(1 << 20);
    assert_non_null(payload);
    while (w->n < SP_MAX && pread(fd, hdr, SP_HDR, (off_t)pos) == SP_HDR) {
        crypto_generichash_state st;
        uint32_t magic, len;
        int64_t sseq;

        memcpy(&magic, hdr, 4);
        memcpy(&len, hdr + 4, 4);
        memcpy(&sseq, hdr + 8, 8);
        if (magic != SP_MAGIC || len > (1u << 20) - SP_HDR - SP_TAG || sseq <= 0 ||
            (w->n > 0 && sseq != w->sseq[w->n - 1] + 1))
            break;
        if (pread(fd, payload, len, (off_t)(pos + SP_HDR)) != (ssize_t)len ||
            pread(fd, tag, SP_TAG, (off_t)(pos + SP_HDR + len)) != SP_TAG)
            break;
        crypto_generichash_init(&st, key, sizeof(key), SP_TAG);
        crypto_generichash_update(&st, prev, SP_TAG);
        crypto_generichash_update(&st, hdr, SP_HDR);
        crypto_generichash_update(&st, payload, len);
        crypto_generichash_final(&st, want, SP_TAG);
        if (memcmp(tag, want, SP_TAG) != 0) {
            w->bad_tag = 1;
            break;
        }
        w->off[w->n] = pos;
        w->len[w->n] = len;
        w->sseq[w->n] = sseq;
        w->n++;
        memcpy(prev, tag, SP_TAG);
        pos += (SP_HDR + len + SP_TAG + 7) & ~(uint64_t)7;
        w->end = pos;
    }
    free(payload);
    close(fd);
    sodium_memzero(key, sizeof(key));
}

/* How many of the walked entries hold `s` in their payload. */
static size_t sp_holding(const char *path, const struct sp_walk *w, const char *s)
{
    size_t found = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf = malloc(1 << 20);

    CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    assert_non_null(buf);
    for (size_t k = 0; k < w->n; k++) {
        assert_int_equal(pread(fd, buf, w->len[k], (off_t)(w->off[k] + SP_HDR)),
                         (ssize_t)w->len[k]);
        found += memmem(buf, w->len[k], s, strlen(s)) != NULL;
    }
    free(buf);
    close(fd);
    return found;
}

/* The detail of the last record (a static buffer). */
static const char *last_detail(const struct fx *f)
{
    static char buf[512];
    struct rec_list *l = read_all(f->db);

    snprintf(buf, sizeof(buf), "%s", l->n > 0 ? SHOW(l->v[l->n - 1].detail) : "(no record)");
    rec_list_free(l);
    return buf;
}

/* Records of the log whose op is `op`. */
static int64_t count_op(const struct fx *f, const char *op)
{
    return sql_int(f->db, "SELECT count(*) FROM records WHERE op = '%s'", op);
}

static int64_t meta_spool_seq(const struct fx *f)
{
    return sql_int(f->db, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'spool_seq'");
}

/*
 * Child: open the log with the spool, take the database's write lock on a second connection so
 * that no commit succeeds, append records 1..n (each acknowledged once spooled), and die without
 * closing.  With `saved`: copy the spool there, release the lock, wait until everything is
 * committed (audit_sync), and only then die.
 */
static int child_spool_writer(const struct fx *f, int64_t n, const char *saved)
{
    struct audit_config c = config(f, NULL);
    struct audit_log *log = NULL;
    sqlite3 *h = NULL;
    char err[512], path[300];

    c.spool = 1;
    if (audit_open(&c, &log, err, sizeof(err)) != 0) {
        fprintf(stderr, "child: %s\n", err);
        return 1;
    }
    if (sqlite3_open_v2(f->db, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(h, 2000) != SQLITE_OK ||
        sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "child: cannot lock %s\n", f->db);
        return 2;
    }
    for (int64_t i = 1; i <= n; i++) {
        struct audit_record r;
        struct rbuf b;
        int rc;
        gen_record(i, NULL, &r, &b);
        rc = audit_append(log, &r);
        rbuf_free(&b);
        if (rc != 0) {
            fprintf(stderr, "child: append %" PRId64 " returned %d\n", i, rc);
            return 3;
        }
    }
    if (!audit_healthy(log)) { /* a commit failed meanwhile: not all of them went to the spool */
        fprintf(stderr, "child: the log turned unhealthy during the appends\n");
        return 4;
    }
    if (saved == NULL)
        _exit(0); /* no audit_close, nothing committed: the records live in the spool only */
    {
        static char buf[1 << 16];
        int in, out;
        ssize_t k;
        spool_path(f, path, sizeof(path));
        in = open(path, O_RDONLY | O_CLOEXEC);
        out = open(saved, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (in < 0 || out < 0)
            return 5;
        while ((k = read(in, buf, sizeof(buf))) > 0)
            if (write(out, buf, (size_t)k) != k)
                return 5;
        if (k != 0 || close(out) != 0)
            return 5;
        close(in);
    }
    if (sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return 6;
    sqlite3_close(h);
    if (audit_sync(log) != 0 || !audit_healthy(log)) {
        fprintf(stderr, "child: the records were not committed\n");
        return 7;
    }
    _exit(0); /* everything committed, the log left open */
}

/* Run the spool writer child; *t0, *t1 bracket it (the records' times). */
static void spool_writer(const struct fx *f, int64_t n, const char *saved, int64_t *t0,
                         int64_t *t1)
{
    char a1[32];
    int rc;

    snprintf(a1, sizeof(a1), "%" PRId64, n);
    *t0 = now_ns();
    rc = run_child(f, "spool-writer", f->db, a1, saved, NULL);
    *t1 = now_ns();
    CHECK(rc == 0, "spool writer child: status %d", rc);
}

/* Records [from, to] of the log are generated records 1.. in order, written within [t0, t1]. */
static void expect_generated(const struct rec_list *l, size_t from, size_t to, int64_t t0,
                             int64_t t1)
{
    int saved = g_real_time;

    g_real_time = 1; /* the child's records are stamped by its log */
    for (size_t k = from; k <= to; k++) {
        struct audit_record want;
        struct rbuf b;
        gen_record((int64_t)(k - from + 1), NULL, &want, &b);
        expect_record(&l->v[k], &want, t0, t1);
        rbuf_free(&b);
    }
    g_real_time = saved;
}

/* The spool a killed writer left: n entries numbered 1..n, chained by their tags. */
static void expect_spool_entries(const struct fx *f, size_t n, struct sp_walk *w)
{
    char path[300];

    spool_path(f, path, sizeof(path));
    sp_walk(path, f->sk, w);
    CHECK(w->n == n && !w->bad_tag, "the spool holds %zu valid entries (bad tag: %d), want %zu",
          w->n, w->bad_tag, n);
    for (size_t k = 0; k < w->n; k++)
        CHECK(w->sseq[k] == (int64_t)k + 1, "spool entry %zu has number %" PRId64, k + 1,
              w->sseq[k]);
}

/* The one audit-recovery record is the last of l, and says what it must. */
static void expect_recovery(const struct rec_list *l, int n, int damaged)
{
    const struct audit_record *r = &l->v[l->n - 1];
    char want[64];

    assert_string_equal(r->op, "audit-recovery");
    assert_string_equal(r->result, "ok");
    assert_string_equal(SHOW(r->process), "custodyfs");
    assert_int_equal(r->pid, (int64_t)getpid());
    assert_int_equal(r->uid, (int64_t)getuid());
    snprintf(want, sizeof(want), "%d records acknowledged", n);
    CHECK(r->detail != NULL && strncmp(r->detail, want, strlen(want)) == 0,
          "audit-recovery detail '%s' does not start with '%s'", SHOW(r->detail), want);
    if (damaged)
        CHECK(strstr(r->detail, "torn or altered entry") != NULL,
              "audit-recovery detail does not mention the torn entry: %s", r->detail);
    else
        CHECK(strstr(r->detail, "torn") == NULL, "audit-recovery detail reports a torn entry "
              "where there is none: %s", r->detail);
    for (size_t k = 0; k + 1 < l->n; k++)
        CHECK(strcmp(l->v[k].op, "audit-recovery") != 0, "a second audit-recovery record at %"
              PRId64, l->v[k].seq);
}

/*
 * A writer killed while its commits could not happen: every record it acknowledged was in the
 * spool, and the next open commits them all, once, in order, with one audit-recovery record.
 */
static void test_spool_recovers_killed_writer(void **state)
{
    struct fx *f = *state;
    struct audit_log *log;
    struct audit_head h;
    struct sp_walk *w = calloc(1, sizeof(*w));
    struct rec_list *l;
    char err[256] = "";
    int64_t t0, t1;

    assert_non_null(w);
    spool_writer(f, SPOOL_N, NULL, &t0, &t1);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM records"), 0);
    expect_spool_entries(f, SPOOL_N, w);
    free(w);
    /* a reader does not wait long for a writer that is gone */
    assert_int_equal(audit_settle(f->db, 50), -ETIMEDOUT);

    log = open_spooled(f, NULL);
    /* committed at open, with the head signed at once */
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM records"), SPOOL_N + 1);
    assert_int_equal(audit_latest_head(f->db, f->pk, &h, err, sizeof(err)), 1);
    assert_int_equal(h.seq, SPOOL_N + 1);
    assert_int_equal(meta_spool_seq(f), SPOOL_N);
    assert_int_equal(close_log(log, 5), 0);

    l = read_all(f->db);
    assert_int_equal(l->n, SPOOL_N + 1);
    expect_generated(l, 0, SPOOL_N - 1, t0, t1);
    expect_recovery(l, SPOOL_N, 0);
    CHECK(l->v[SPOOL_N].time_ns >= t1, "the recovery record predates the recovery");
    expect_chain(f, l);
    rec_list_free(l);
    expect_verifies(f, NULL, SPOOL_N + 1);

    /* nothing is recovered twice */
    for (int k = 0; k < 2; k++) {
        log = open_spooled(f, NULL);
        assert_int_equal(close_log(log, 5), 0);
    }
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM records"), SPOOL_N + 1);
    assert_int_equal(count_op(f, "audit-recovery"), 1);
    expect_verifies(f, NULL, SPOOL_N + 1);
}

/*
 * A writer killed after its records were committed: nothing to recover, even from a spool that
 * still holds the entries (the database's spool_seq says they are committed).
 */
static void test_spool_no_duplicates_after_commit(void **state)
{
    struct fx *f = *state;
    struct audit_log *log;
    struct sp_walk *w = calloc(1, sizeof(*w));
    struct rec_list *l;
    char saved[300], path[300];
    int64_t t0, t1;

    assert_non_null(w);
    snprintf(saved, sizeof(saved), "%s/spool.saved", f->dir);
    spool_path(f, path, sizeof(path));
    spool_writer(f, SPOOL_N, saved, &t0, &t1);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM records"), SPOOL_N);
    assert_int_equal(meta_spool_seq(f), SPOOL_N);
    sp_walk(saved, f->sk, w);
    CHECK(w->n == SPOOL_N, "the spool held %zu entries before the commit, want %d", w->n,
          SPOOL_N);
    sp_walk(path, f->sk, w);
    CHECK(w->n == 0, "the spool still starts with %zu entries after everything was committed",
          w->n);

    log = open_spooled(f, NULL);
    assert_int_equal(close_log(log, 5), 0);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM records"), SPOOL_N);
    assert_int_equal(count_op(f, "audit-recovery"), 0);

    /* the entries back in the spool, as if its rewind had not reached the disk */
    copy_file(saved, path);
    sp_walk(path, f->sk, w);
    assert_int_equal(w->n, SPOOL_N);
    free(w);
    log = open_spooled(f, NULL);
    put_record(log, SPOOL_N + 1, NULL, 0);
    assert_int_equal(audit_sync(log), 0);
    assert_int_equal(close_log(log, 5), 0);
    /* spool numbers go on after the highest seen, so a crash would not skip the new entry */
    assert_int_equal(meta_spool_seq(f), SPOOL_N + 1);

    l = read_all(f->db);
    assert_int_equal(l->n, SPOOL_N + 1);
    expect_generated(l, 0, SPOOL_N - 1, t0, t1);
    for (size_t k = 0; k < l->n; k++)
        CHECK(strcmp(l->v[k].op, "audit-recovery") != 0, "audit-recovery record at %" PRId64
              " though nothing was left uncommitted", l->v[k].seq);
    expect_chain(f, l);
    rec_list_free(l);
    expect_verifies(f, NULL, SPOOL_N + 1);
}

/* Flip one byte in the middle of the payload of spool entry k (1-based). */
static void alter_spool_entry(const struct fx *f, size_t k)
{
    struct sp_walk *w = calloc(1, sizeof(*w));
    char path[300];
    unsigned char c;
    off_t at;
    int fd;

    assert_non_null(w);
    expect_spool_entries(f, SPOOL_N, w);
    at = (off_t)(w->off[k - 1] + SP_HDR + w->len[k - 1] / 2);
    spool_path(f, path, sizeof(path));
    fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, at), 1);
    c ^= 0x20;
    assert_int_equal(pwrite(fd, &c, 1, at), 1);
    assert_int_equal(close(fd), 0);
    sp_walk(path, f->sk, w);
    CHECK(w->n == k - 1 && w->bad_tag, "after the change the spool has %zu valid entries (bad tag "
          "%d), want %zu and a bad tag", w->n, w->bad_tag, k - 1);
    free(w);
}

/*
 * A spool entry altered (or torn): the entries before it are recovered, the ones from it on are
 * not, and the audit-recovery record says that the spool ended at a torn or altered entry.
 */
static void test_spool_torn_entry(void **state)
{
    struct fx *f = *state;
    struct audit_log *log;
    struct rec_list *l;
    int64_t t0, t1;

    spool_writer(f, SPOOL_N, NULL, &t0, &t1);
    alter_spool_entry(f, SPOOL_TORN);
    log = open_spooled(f, NULL);
    assert_int_equal(meta_spool_seq(f), SPOOL_TORN - 1);
    assert_int_equal(close_log(log, 5), 0);

    l = read_all(f->db);
    assert_int_equal(l->n, SPOOL_TORN);
    expect_generated(l, 0, SPOOL_TORN - 2, t0, t1);
    expect_recovery(l, SPOOL_TORN - 1, 1);
    expect_chain(f, l);
    rec_list_free(l);
    expect_verifies(f, NULL, SPOOL_TORN);
}

/*
 * The torn entry is reported by the open that recovers the spool, not again by every later
 * open of the log.
 */
static void test_spool_torn_entry_reported_once(void **state)
{
    struct fx *f = *state;
    struct audit_log *log;
    int64_t t0, t1;

    spool_writer(f, SPOOL_N, NULL, &t0, &t1);
    alter_spool_entry(f, SPOOL_TORN);
    log = open_spooled(f, NULL);
    assert_int_equal(close_log(log, 5), 0);
    assert_int_equal(count_op(f, "audit-recovery"), 1);
    log = open_spooled(f, NULL);
    assert_int_equal(close_log(log, 5), 0);
    CHECK(count_op(f, "audit-recovery") == 1, "reopening the recovered log, with no record "
          "written since, left %" PRId64 " audit-recovery records; the last says: %s",
          count_op(f, "audit-recovery"), last_detail(f));
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM records"), SPOOL_TORN);
    expect_verifies(f, NULL, SPOOL_TORN);
}

/*
 * Two writers on one log in one process: the first holds the spool, the second commits each
 * record before acknowledging it (and so cannot acknowledge while the database is locked, when
 * the first still can).  Every record of both is in the log once, in each writer's order.
 */
static void test_spool_second_writer(void **state)
{
    struct fx *f = *state;
    struct audit_log *a = open_spooled(f, NULL), *b = open_spooled(f, NULL);
    struct sp_walk *w = calloc(1, sizeof(*w));
    struct rec_list *l;
    char path[300], detail[64];
    int next[2] = {0, 0}, gaps = 0;

    assert_non_null(w);
    spool_path(f, path, sizeof(path));
    for (int i = 0; i < 40; i++) {
        struct audit_log *log = i % 2 ? b : a;
        struct audit_record r = {
            .uid = 1000 + i % 2, .gid = 1000, .pid = 100 + i % 2, .ppid = 1,
            .pstart = AUDIT_NONE, .bytes = AUDIT_NONE, .op = "create", .result = "ok",
            .path = "/shared", .process = i % 2 ? "second" : "first", .detail = detail,
        };
        snprintf(detail, sizeof(detail), "writer %d n %d", i % 2, i / 2);
        assert_int_equal(audit_append(log, &r), 0);
        if (i % 2) /* no spool: committed when acknowledged */
            CHECK(sql_int(f->db, "SELECT count(*) FROM records WHERE detail = '%s'", detail) == 1,
                  "the second writer acknowledged '%s' before committing it", detail);
    }
    assert_int_equal(audit_sync(a), 0); /* both writers idle from here */
    assert_int_equal(audit_sync(b), 0);
    assert_true(audit_healthy(a));
    assert_true(audit_healthy(b));
    /* the spool has only ever held the first writer's records */
    sp_walk(path, f->sk, w);
    assert_int_equal(sp_holding(path, w, "writer 1 "), 0);
    free(w);

    /* while nothing can commit, the first writer still acknowledges (spooled), the second
     * cannot */
    {
        struct audit_record r = {
            .uid = 1000, .gid = 1000, .pid = 100, .ppid = 1, .pstart = AUDIT_NONE,
            .bytes = AUDIT_NONE, .op = "create", .result = "ok", .path = "/shared",
            .process = "first", .detail = "writer 0 n 20",
        };
        sqlite3 *h = lock_db(f->db);
        int64_t t = now_ns(), waited = 0;
        assert_int_equal(audit_append(a, &r), 0);
        CHECK(now_ns() - t < 300000000LL, "the spooled append waited %.3f s",
              (double)(now_ns() - t) / 1e9);
        r.uid = 1001;
        r.pid = 101;
        r.process = "second";
        r.detail = "writer 1 n 20";
        assert_int_equal(audit_append(b, &r), -EIO);
        assert_false(audit_healthy(b));
        while (audit_healthy(a) && waited < 5000) { /* its writer's commit fails too */
            sleep_ms(20);
            waited += 20;
        }
        assert_false(audit_healthy(a));
        unlock_db(h);
        waited = 0;
        while ((!audit_healthy(a) || !audit_healthy(b)) && waited < 10000) {
            sleep_ms(50);
            waited += 50;
        }
        CHECK(audit_healthy(a) && audit_healthy(b), "the writers did not recover within 10 s");
    }
    assert_int_equal(close_log(b, 5), 0);
    assert_int_equal(close_log(a, 5), 0);

    l = read_all(f->db);
    assert_int_equal(l->n, 44); /* 42 and an audit-gap record of each writer */
    for (size_t k = 0; k < l->n; k++) {
        int t, n;
        if (strcmp(l->v[k].op, "audit-gap") == 0) {
            gaps++;
            continue;
        }
        assert_int_equal(sscanf(SHOW(l->v[k].detail), "writer %d n %d", &t, &n), 2);
        assert_true(t == 0 || t == 1);
        CHECK(n == next[t], "writer %d: record n %d where %d was due", t, n, next[t]);
        assert_string_equal(l->v[k].process, t ? "second" : "first");
        next[t]++;
    }
    assert_int_equal(next[0], 21);
    assert_int_equal(next[1], 21);
    assert_int_equal(gaps, 2);
    expect_chain(f, l);
    rec_list_free(l);
    expect_verifies(f, NULL, 44);

    a = open_spooled(f, NULL);
    assert_int_equal(close_log(a, 5), 0);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM records"), 44);
    assert_int_equal(count_op(f, "audit-recovery"), 0);
}

static int spooled_append(struct audit_log *log, const char *op, const char *detail)
{
    struct audit_record r = {
        .uid = 0, .gid = 0, .pid = 1, .ppid = AUDIT_NONE, .pstart = AUDIT_NONE,
        .bytes = AUDIT_NONE, .op = op, .path = "/outage", .result = "ok", .detail = detail,
    };

    return audit_append(log, &r);
}

/*
 * Fail-closed with the spool: until the writer finds that it cannot commit, appends are spooled
 * and acknowledged at once; from then on nothing is spooled and appends fail with EIO.  After
 * the outage the audit-gap record comes first, then every record queued, each once.
 */
static void test_spool_fail_closed(void **state)
{
    struct fx *f = *state;
    struct audit_log *log = open_spooled(f, NULL);
    struct sp_walk *w = calloc(1, sizeof(*w));
    struct rec_list *l;
    char path[300], detail[64];
    sqlite3 *h;
    int ok = 0, rc, waited = 0;

    assert_non_null(w);
    spool_path(f, path, sizeof(path));
    put_record(log, 1, "mount", 0);
    assert_int_equal(audit_sync(log), 0);
    h = lock_db(f->db);
    for (;;) {
        int64_t a = now_ns(), took;
        snprintf(detail, sizeof(detail), "spooled #%03d#", ok + 1);
        rc = spooled_append(log, "write", detail);
        took = now_ns() - a;
        if (rc != 0)
            break;
        CHECK(took < 300000000LL, "append %d was acknowledged after %.3f s, not once spooled",
              ok + 1, (double)took / 1e9);
        ok++;
        CHECK(ok < 200, "appends still succeed 10 s after the database was locked");
        sleep_ms(50);
    }
    assert_int_equal(rc, -EIO);
    CHECK(ok >= 5, "only %d appends were acknowledged before the writer's commit failed", ok);
    assert_false(audit_healthy(log));
    audit_refused(log);
    assert_int_equal(audit_submit(log, &(struct audit_record){.op = "rmdir", .path = "/queued",
                                                              .result = "ENOTEMPTY", .uid = 0,
                                                              .gid = 0, .pid = 1,
                                                              .ppid = AUDIT_NONE,
                                                              .pstart = AUDIT_NONE,
                                                              .bytes = AUDIT_NONE,
                                                              .detail = "submitted"}), 0);
    /* in the spool: exactly the acknowledged ones */
    sp_walk(path, f->sk, w);
    CHECK(w->n == (size_t)ok, "the spool holds %zu entries, %d appends were acknowledged", w->n,
          ok);
    assert_int_equal(sp_holding(path, w, "spooled #"), (size_t)ok);
    for (int k = 1; k <= ok; k++) {
        snprintf(detail, sizeof(detail), "spooled #%03d#", k);
        assert_int_equal(sp_holding(path, w, detail), 1);
    }
    assert_int_equal(w->sseq[0], 2); /* after the mount's entry, committed and rewound over */
    snprintf(detail, sizeof(detail), "spooled #%03d#", ok + 1); /* the one refused with EIO */
    assert_int_equal(sp_holding(path, w, detail), 0);
    assert_int_equal(sp_holding(path, w, "submitted"), 0);
    free(w);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM records"), 1);

    unlock_db(h);
    while (!audit_healthy(log) && waited < 10000) {
        sleep_ms(50);
        waited += 50;
    }
    CHECK(audit_healthy(log), "the log did not recover within 10 s after the lock was released");
    assert_int_equal(close_log(log, 5), 0);

    l = read_all(f->db);
    assert_int_equal(l->n, (size_t)ok + 4);
    assert_string_equal(l->v[0].op, "mount");
    assert_string_equal(l->v[1].op, "audit-gap");
    CHECK(strstr(SHOW(l->v[1].detail), "1 operations were refused") != NULL,
          "audit-gap detail: %s", SHOW(l->v[1].detail));
    /* the acknowledged ones, then the first one refused with EIO: it stayed queued */
    for (int k = 0; k <= ok; k++) {
        snprintf(detail, sizeof(detail), "spooled #%03d#", k + 1);
        assert_string_equal(SHOW(l->v[2 + k].detail), detail);
        assert_string_equal(l->v[2 + k].op, "write");
    }
    assert_string_equal(l->v[ok + 3].op, "rmdir");
    assert_string_equal(SHOW(l->v[ok + 3].detail), "submitted");
    expect_chain(f, l);
    rec_list_free(l);
    expect_verifies(f, NULL, ok + 4);
    /* the mount and the acknowledged ones went through the spool, numbered 1.. */
    assert_int_equal(meta_spool_seq(f), ok + 1);

    log = open_spooled(f, NULL);
    assert_int_equal(close_log(log, 5), 0);
    assert_int_equal(count_op(f, "audit-recovery"), 0);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM records"), ok + 4);
}

/*
 * Closing while commits fail: the records acknowledged from the spool are not lost with the
 * process; the next open commits them.
 */
static void test_spool_close_while_unhealthy(void **state)
{
    struct fx *f = *state;
    struct audit_log *log = open_spooled(f, NULL);
    struct rec_list *l;
    char detail[64];
    sqlite3 *h;
    int rc;

    put_record(log, 1, "mount", 0);
    assert_int_equal(audit_sync(log), 0);
    h = lock_db(f->db);
    for (int k = 1; k <= 3; k++) {
        snprintf(detail, sizeof(detail), "kept #%d#", k);
        assert_int_equal(spooled_append(log, "write", detail), 0);
    }
    rc = close_log(log, 0);
    unlock_db(h);
    assert_int_equal(rc, -1); /* not committed */
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM records"), 1);

    log = open_spooled(f, NULL);
    assert_int_equal(close_log(log, 5), 0);
    l = read_all(f->db);
    assert_int_equal(l->n, 5);
    assert_string_equal(l->v[0].op, "mount");
    for (int k = 1; k <= 3; k++) {
        snprintf(detail, sizeof(detail), "kept #%d#", k);
        assert_string_equal(SHOW(l->v[k].detail), detail);
    }
    expect_recovery(l, 3, 0);
    expect_chain(f, l);
    rec_list_free(l);
    expect_verifies(f, NULL, 5);
}

/* The spool is the writer's alone: created 0600 whatever the umask, never through a symlink. */
static void test_spool_file(void **state)
{
    struct fx *f = *state;
    struct audit_log *log;
    char path[300], other[300], link[320], target[300];
    struct stat st;
    mode_t old = umask(0); /* as the daemon runs */

    log = open_spooled(f, NULL);
    umask(old);
    spool_path(f, path, sizeof(path));
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    CHECK((st.st_mode & 07777) == 0600, "the spool has mode %04o", (unsigned)(st.st_mode & 07777));
    assert_int_equal(st.st_uid, geteuid());
    assert_int_equal(st.st_size, SPOOL_SIZE);
    put_record(log, 1, NULL, 0);
    assert_int_equal(close_log(log, 5), 0);
    expect_verifies(f, NULL, 1);

    /* a symlink where the spool goes: not followed; the log commits every record instead */
    snprintf(other, sizeof(other), "%s/other.db", f->dir);
    snprintf(link, sizeof(link), "%s-spool", other);
    snprintf(target, sizeof(target), "%s/elsewhere", f->dir);
    assert_int_equal(symlink(target, link), 0);
    log = open_spooled(f, other);
    assert_int_equal(spooled_append(log, "write", "through a link?"), 0);
    assert_int_equal(sql_int(other, "SELECT count(*) FROM records"), 1);
    assert_int_equal(close_log(log, 5), 0);
    assert_int_equal(access(target, F_OK), -1);
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    expect_verifies(f, other, 1);
}

/*
 * Spooled records that arrive one at a time share transactions: the writer lets them gather for
 * a moment instead of committing each.  They still reach the database by themselves, without a
 * sync, within that moment; a sync commits at once; a reader calling audit_settle() first sees
 * them all.  Without a spool every append is committed when it returns.
 */
static void test_spool_records_share_commits(void **state)
{
    struct fx *f = *state;
    struct audit_log *log = open_spooled(f, NULL);
    uint64_t before = audit_log_commits(log), used;
    int waited = 0;

    for (int i = 1; i <= SPOOL_N; i++) {
        put_record(log, i, NULL, 0);
        usleep(250);
    }
    while (sql_int(f->db, "SELECT count(*) FROM records") < SPOOL_N && waited < 5000) {
        usleep(10000);
        waited += 10;
    }
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM records"), SPOOL_N);
    used = audit_log_commits(log) - before;
    CHECK(used >= 1 && used <= SPOOL_N / 4,
          "%d records appended 250 us apart took %" PRIu64 " transactions", SPOOL_N, used);

    /* a reader that settles first sees every record acknowledged before it started */
    for (int i = 1; i <= 5; i++)
        put_record(log, SPOOL_N + i, NULL, 0);
    assert_int_equal(audit_settle(f->db, 5000), 0);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM records"), SPOOL_N + 5);
    assert_int_equal(audit_settle(f->db, 5000), 0);

    before = audit_log_commits(log);
    put_record(log, SPOOL_N + 6, NULL, 0);
    assert_int_equal(audit_sync(log), 0);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM records"), SPOOL_N + 6);
    assert_int_equal(audit_log_commits(log) - before, 1);
    assert_int_equal(close_log(log, 5), 0);
    expect_verifies(f, NULL, SPOOL_N + 6);

    log = open_log(f, NULL);
    for (int i = 1; i <= 5; i++) {
        put_record(log, SPOOL_N + 6 + i, NULL, 0);
        assert_int_equal(sql_int(f->db, "SELECT count(*) FROM records"), SPOOL_N + 6 + i);
    }
    assert_int_equal(close_log(log, 5), 0);
    expect_verifies(f, NULL, SPOOL_N + 11);
}

/*
 * audit_sync once the log has recovered from an outage: everything queued is committed, so it
 * makes the log durable and succeeds, also when the last record queued was refused with EIO.
 */
static void test_sync_after_outage(void **state)
{
    struct fx *f = *state;
    struct audit_log *log = open_log(f, NULL);
    sqlite3 *h;
    int waited = 0, rc;

    put_record(log, 1, "mount", 0);
    h = lock_db(f->db);
    assert_int_equal(audit_append(log, &(struct audit_record){.op = "unlink", .path = "/during",
                                                              .result = "ok", .uid = 0,
                                                              .gid = 0, .pid = 1,
                                                              .ppid = AUDIT_NONE,
                                                              .pstart = AUDIT_NONE,
                                                              .bytes = AUDIT_NONE}), -EIO);
    unlock_db(h);
    while (!audit_healthy(log) && waited < 10000) {
        sleep_ms(50);
        waited += 50;
    }
    CHECK(audit_healthy(log), "the log did not recover within 10 s after the lock was released");
    /* mount, audit-gap, unlink: all committed */
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM records"), 3);
    rc = audit_sync(log);
    CHECK(rc == 0, "audit_sync on a healthy log with every record committed returned %d", rc);
    assert_int_equal(close_log(log, 5), 0);
    expect_verifies(f, NULL, 3);
}

/* "--child MODE DB VAULTID-HEX SK-HEX ARGS...": see run_child. */
static int child_main(int argc, char **argv)
{
    struct fx f;
    size_t n;

    memset(&f, 0, sizeof(f));
    if (argc < 6 || sodium_init() < 0 ||
        sodium_hex2bin(f.id, sizeof(f.id), argv[4], strlen(argv[4]), NULL, &n, NULL) != 0 ||
        n != sizeof(f.id) ||
        sodium_hex2bin(f.sk, sizeof(f.sk), argv[5], strlen(argv[5]), NULL, &n, NULL) != 0 ||
        n != sizeof(f.sk))
        return 100;
    crypto_sign_ed25519_sk_to_pk(f.pk, f.sk);
    snprintf(f.db, sizeof(f.db), "%s", argv[3]);
    g_real_time = 1;
    if (strcmp(argv[2], "killed-writer") == 0 && argc == 8)
        return child_killed_writer(&f, strtoll(argv[6], NULL, 10), atoi(argv[7]));
    if (strcmp(argv[2], "spool-writer") == 0 && (argc == 7 || argc == 8))
        return child_spool_writer(&f, strtoll(argv[6], NULL, 10), argc == 8 ? argv[7] : NULL);
    if (strcmp(argv[2], "verify-as-nobody") == 0 && argc == 7) {
        struct audit_verify_result res;
        struct rec_list l = {0};
        char err[512] = "";
        int rc, bad = 0;
        if (geteuid() == 0 &&
            (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)) {
            perror("dropping privileges");
            return 99;
        }
        rc = audit_verify(argv[3], f.id, f.pk, NULL, NULL, NULL, &res);
        if (rc != 0 || res.records != strtoll(argv[6], NULL, 10)) {
            fprintf(stderr, "verify of a log in a directory it cannot write: %d, %" PRId64
                    " records, record %" PRId64 ": %s\n", rc, res.records, res.bad_seq, res.why);
            bad++;
        }
        rc = audit_foreach(argv[3], collect_plain, &l, err, sizeof(err));
        if (rc != 0 || l.n != (size_t)strtoll(argv[6], NULL, 10)) {
            fprintf(stderr, "audit_foreach of a log in a directory it cannot write: %d, %zu "
                    "records: %s\n", rc, l.n, err);
            bad++;
        }
        return bad;
    }
    if (strcmp(argv[2], "readonly") == 0 && argc == 8) {
        int bad = 0;
        if (geteuid() == 0 &&
            (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)) {
            perror("dropping privileges");
            return 99;
        }
        bad += try_open_fails(&f, argv[3], "read-only log file");
        bad += try_open_fails(&f, argv[6], "new log in a read-only directory");
        bad += try_open_fails(&f, argv[7], "log in a read-only directory");
        return bad;
    }
    return 101;
}

/*
 * The same tamper cases with the log checked in two parts (records 1-15 and 16-30 at once), as
 * audit_verify() does for long logs.
 */
#define SPLIT(name)                                                                          \
    static void name##_split(void **state)                                                  \
    {                                                                                        \
        int64_t saved = audit_verify_split_from;                                             \
        audit_verify_split_from = 2;                                                         \
        name(state);                                                                         \
        audit_verify_split_from = saved;                                                     \
    }
SPLIT(test_tamper_edit_each_field)
SPLIT(test_tamper_rewrite_chain)
SPLIT(test_tamper_delete_insert_swap)
SPLIT(test_tamper_tail_and_heads)
SPLIT(test_many_records_many_heads)

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errno_name),
        cmocka_unit_test(test_now_and_null_close),
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_continues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_commit_signed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_after_one_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_edit_each_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_rewrite_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_delete_insert_swap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_tail_and_heads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_edit_each_field_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_rewrite_chain_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_delete_insert_swap_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_tail_and_heads_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_records_many_heads_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refuses_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_vault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_unwritable_location, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_records_many_heads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heads_over_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_writer_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_writer_early, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_closed_and_gap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_while_unhealthy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_after_outage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_recovers_killed_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_no_duplicates_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_torn_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_torn_entry_reported_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_second_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_fail_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_close_while_unhealthy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_records_share_commits, setup, teardown),
    };

    if (argc > 1 && strcmp(argv[1], "--child") == 0)
        return child_main(argc, argv);
    if (strchr(argv[0], '/') != NULL ? realpath(argv[0], g_self) == NULL
                                     : readlink("/proc/self/exe", g_self, sizeof(g_self) - 1) < 0) {
        perror("cannot find this program");
        return 1;
    }
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
