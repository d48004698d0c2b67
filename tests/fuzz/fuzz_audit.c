/*
 * libFuzzer target: the audit record side (audit/record.c).
 *
 *   [0][text...]   audit_head_parse of arbitrary text (NUL-terminated copy of the bytes).
 *   [1][prev 32][record A][field][mutation...][record C]
 *                  audit_record_hash of records built from the bytes; B is A with exactly one
 *                  field changed (chosen by the fuzzer); C is a second independent record.
 *   [2][19 typed values]
 *                  a row of the `records` table stored with fuzzer-chosen SQL types and values
 *                  in an in-memory SQLite database (audit_schema_sql), decoded with
 *                  audit_row_to_record() as audit_verify() and audit_foreach() do.
 *
 * Invariants (abort on violation):
 *   head:    a parsed head formats (audit_head_format) to a line that parses to the same head;
 *            strict check "head-line": that line is the input itself (FORMAT.md 5.3: single
 *            spaces, lowercase hex, decimal numbers; the parser documents that it accepts
 *            trailing blanks, so trailing whitespace is ignored);
 *   records: the hash is deterministic and does not depend on where the strings live; it differs
 *            between A and B (one field differs: value, NULL vs empty string, AUDIT_NONE vs a
 *            number), and between prev hashes; A and C hash the same exactly when they are equal;
 *            A stored as the writer (audit/log.c insert_record) stores it reads back
 *            (audit_row_to_record) as the same record with the same hash;
 *   SQL row: decoding never crashes, op/result NULL only when stored NULL; strict check
 *            "sql-canonical": a stored row that decodes to record R is the row the writer stores
 *            for R (else two different rows in the database verify as the same record).
 *
 * Strict checks can be turned off with CUSTODYFS_FUZZ_RELAX=head-line,sql-canonical (to keep
 * fuzzing the rest while a known finding is open).
 *
 * audit_verify() itself opens a database by path (stat(), read-only open, -wal check), so it is
 * not reachable without files and is not fuzzed here.
 */
#include "tests/fuzz/fuzz_common.h"

#include "audit/record_int.h"
#include "crypto/secmem.h"

#include <ctype.h>
#include <sodium.h>
#include <sqlite3.h>

/* ---- fields of a record, in hash order ---- */

enum kind { K_INT, K_STR };

static const struct field {
    const char *name;
    enum kind kind;
    size_t off;
    int col;                  /* column in AUDIT_COLUMNS */
} fields[] = {
#define I(n, c) {#n, K_INT, offsetof(struct audit_record, n), c}
#define S(n, c) {#n, K_STR, offsetof(struct audit_record, n), c}
    I(seq, 0), I(time_ns, 1), I(uid, 2), S(user, 3), I(gid, 4), I(pid, 5), I(ppid, 6),
    I(pstart, 7), S(process, 8), S(exe, 9), S(op, 10), S(path, 11), S(path2, 12),
    S(file_id, 13), S(result, 14), I(bytes, 15), S(ranges, 16), S(detail, 17),
#undef I
#undef S
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))
#define NCOLS 19

static int64_t *fint(struct audit_record *r, size_t i)
{
    return (int64_t *)((char *)r + fields[i].off);
}

static const char **fstr(struct audit_record *r, size_t i)
{
    return (const char **)((char *)r + fields[i].off);
}

static int64_t cint(const struct audit_record *r, size_t i)
{
    return *(const int64_t *)((const char *)r + fields[i].off);
}

static const char *cstr(const struct audit_record *r, size_t i)
{
    return *(const char *const *)((const char *)r + fields[i].off);
}

/* Strings of the records built for one input; freed at the end of the input. */
#define MAX_STRS 64
static char *strs[MAX_STRS];
static size_t nstrs;

static char *keep(char *s)
{
    FUZZ_CHECK(s != NULL && nstrs < MAX_STRS, "out of string slots");
    strs[nstrs++] = s;
    return s;
}

static char *dup_bytes(const void *p, size_t n)
{
    char *s = malloc(n + 1);

    FUZZ_CHECK(s != NULL, "out of memory");
    memcpy(s, p, n);
    s[n] = '\0';
    return keep(s);
}

static void free_strs(void)
{
    for (size_t i = 0; i < nstrs; i++)
        free(strs[i]);
    nstrs = 0;
}

static int64_t read_int(struct fuzz_reader *r)
{
    static const int64_t special[] = {0, 1, -1, INT64_MAX, INT64_MIN + 1, AUDIT_NONE, 4096};
    uint8_t t = fr_u8(r);

    switch (t % 4) {
    case 0: return AUDIT_NONE;
    case 1: return (int8_t)fr_u8(r);
    case 2: return (int64_t)fr_u64(r);
    default: return special[(t / 4) % (sizeof(special) / sizeof(special[0]))];
    }
}

/* NULL, "", or up to 255 bytes (which may hold a NUL: the C string then ends there). */
static const char *read_str(struct fuzz_reader *r)
{
    uint8_t t = fr_u8(r);
    unsigned char b[256];
    size_t n;

    switch (t % 4) {
    case 0: return NULL;
    case 1: return dup_bytes("", 0);
    default:
        n = fr_u8(r);
        n = fr_bytes(r, b, n);
        return dup_bytes(b, n);
    }
}

static void read_record(struct fuzz_reader *r, struct audit_record *rec)
{
    memset(rec, 0, sizeof(*rec));
    for (size_t i = 0; i < NFIELDS; i++) {
        if (fields[i].kind == K_INT)
            *fint(rec, i) = read_int(r);
        else
            *fstr(rec, i) = read_str(r);
    }
}

static int str_eq(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

/* Equal as records: every field's value (strings as C strings; AUDIT_NONE is INT64_MIN). */
static int rec_eq(const struct audit_record *a, const struct audit_record *b, size_t *which)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        int same = fields[i].kind == K_INT ? cint(a, i) == cint(b, i)
                                           : str_eq(cstr(a, i), cstr(b, i));
        if (!same) {
            if (which != NULL)
                *which = i;
            return 0;
        }
    }
    return 1;
}

static void hash_of(const unsigned char *prev, const struct audit_record *r, unsigned char *out)
{
    audit_record_hash(prev, r, out);
}

static void describe(const struct audit_record *r, const char *label)
{
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < NFIELDS; i++) {
        if (fields[i].kind == K_INT) {
            if (cint(r, i) == AUDIT_NONE)
                fprintf(stderr, " %s=NONE", fields[i].name);
            else
                fprintf(stderr, " %s=%lld", fields[i].name, (long long)cint(r, i));
        } else if (cstr(r, i) == NULL)
            fprintf(stderr, " %s=NULL", fields[i].name);
        else
            fprintf(stderr, " %s[%zu]", fields[i].name, strlen(cstr(r, i)));
    }
    fprintf(stderr, "\n");
}

/* ---- the in-memory database ---- */

static sqlite3 *db;
static sqlite3_stmt *ins, *sel, *del;

static void db_init(void)
{
    char *msg = NULL;

    if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(db, audit_schema_sql, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT INTO records(" AUDIT_COLUMNS ") VALUES(?,?,?,?,?,?,?,?,?,?,"
                               "?,?,?,?,?,?,?,?,?)", -1, &ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT " AUDIT_COLUMNS " FROM records ORDER BY seq", -1, &sel,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "DELETE FROM records", -1, &del, NULL) != SQLITE_OK) {
        fprintf(stderr, "in-memory database: %s\n", msg ? msg : sqlite3_errmsg(db));
        abort();
    }
}

static void db_clear(void)
{
    sqlite3_reset(ins);
    sqlite3_clear_bindings(ins);
    sqlite3_reset(sel);
    FUZZ_CHECK(sqlite3_step(del) == SQLITE_DONE, "DELETE: %s", sqlite3_errmsg(db));
    sqlite3_reset(del);
}

/* Store rec as audit/log.c insert_record() does. */
static int db_insert_canonical(const struct audit_record *r)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        int col = fields[i].col + 1;
        if (fields[i].kind == K_INT) {
            if (i <= 1 || cint(r, i) != AUDIT_NONE) /* seq and time_ns: always bound as numbers */
                sqlite3_bind_int64(ins, col, cint(r, i));
            else
                sqlite3_bind_null(ins, col);
        } else if (cstr(r, i) == NULL)
            sqlite3_bind_null(ins, col);
        else
            sqlite3_bind_text(ins, col, cstr(r, i), -1, SQLITE_STATIC);
    }
    sqlite3_bind_blob(ins, NCOLS, r->hash, AUDIT_HASH_SIZE, SQLITE_STATIC);
    return sqlite3_step(ins);
}

/* ---- mode 0: head lines ---- */

static void fuzz_head(struct fuzz_reader *r)
{
    char *line = dup_bytes(r->p, r->n), out[AUDIT_HEAD_LINE_MAX];
    struct audit_head h, h2;
    int rc, n;
    size_t len;

    rc = audit_head_parse(line, &h);
    FUZZ_CHECK(rc == 0 || rc == -1, "audit_head_parse returned %d", rc);
    if (rc != 0)
        return;
    FUZZ_CHECK(h.seq >= 1, "a head line with seq %lld parsed", (long long)h.seq);
    n = audit_head_format(&h, out, sizeof(out));
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof(out) && strlen(out) == (size_t)n,
               "audit_head_format of a parsed head returned %d", n);
    rc = audit_head_parse(out, &h2);
    FUZZ_CHECK(rc == 0 && memcmp(&h, &h2, sizeof(h)) == 0,
               "the formatted head line does not parse back to the same head (rc %d): %s", rc,
               out);
    (void)audit_head_check_sig(&h);
    if (!fuzz_relaxed("head-line")) {
        len = strlen(line);
        while (len > 0 && isspace((unsigned char)line[len - 1]))
            len--;
        FUZZ_CHECK(len == (size_t)n && memcmp(line, out, len) == 0,
                   "[head-line] audit_head_parse accepted a line that is not the head's line:\n"
                   "  input:     '%.*s'\n  formatted: '%s'", (int)strlen(line), line, out);
    }
}

/* ---- mode 1: record hashes ---- */

/* B := A with field i changed, using the fuzzer's bytes. */
static void mutate(struct fuzz_reader *r, const struct audit_record *a, struct audit_record *b,
                   size_t i)
{
    uint8_t how = fr_u8(r);

    *b = *a;
    if (fields[i].kind == K_INT) {
        int64_t v = cint(a, i), w;
        if (v == AUDIT_NONE) {
            w = read_int(r);
            if (w == AUDIT_NONE)
                w = how;
        } else if (how % 3 == 0)
            w = AUDIT_NONE;
        else if (how % 3 == 1)
            w = (int64_t)((uint64_t)v ^ ((uint64_t)1 << (fr_u8(r) % 64)));
        else
            w = (int64_t)((uint64_t)v + 1 + fr_u8(r));
        if (w == v)
            w = AUDIT_NONE;
        *fint(b, i) = w;
    } else {
        const char *s = cstr(a, i);
        size_t n = s != NULL ? strlen(s) : 0;
        uint8_t x = fr_u8(r);
        char *t;
        if (s == NULL) {
            *fstr(b, i) = how & 1 ? dup_bytes("", 0) : dup_bytes(&(char){(char)(x | 1)}, 1);
        } else if (how % 5 == 0 || (n == 0 && how % 5 < 3)) {
            *fstr(b, i) = NULL;                                   /* string -> NULL */
        } else if (how % 5 == 1 && n > 0) {
            *fstr(b, i) = dup_bytes("", 0);                       /* -> empty */
        } else if (how % 5 == 2 && n > 0) {
            *fstr(b, i) = dup_bytes(s, n - 1);                    /* one byte shorter */
        } else if (how % 5 == 3 && n > 0) {
            t = dup_bytes(s, n);                                  /* one byte flipped */
            t[x % n] = (char)(t[x % n] ^ ((fr_u8(r) % 255) + 1));
            if (t[x % n] == '\0')
                t[x % n] = (char)0xff;
            if (strcmp(t, s) == 0)
                t[x % n] ^= 1;
            *fstr(b, i) = t;
        } else {
            t = malloc(n + 2);                                    /* one byte longer */
            FUZZ_CHECK(t != NULL, "out of memory");
            memcpy(t, s, n);
            t[n] = (char)(x ? x : 1);
            t[n + 1] = '\0';
            *fstr(b, i) = keep(t);
        }
    }
}

/* A deep copy whose strings live elsewhere. */
static void deep_copy(const struct audit_record *a, struct audit_record *b)
{
    *b = *a;
    for (size_t i = 0; i < NFIELDS; i++)
        if (fields[i].kind == K_STR && cstr(a, i) != NULL)
            *fstr(b, i) = dup_bytes(cstr(a, i), strlen(cstr(a, i)));
}

static void fuzz_records(struct fuzz_reader *r)
{
    unsigned char prev[AUDIT_HASH_SIZE], prev2[AUDIT_HASH_SIZE];
    unsigned char ha[AUDIT_HASH_SIZE], ha2[AUDIT_HASH_SIZE], hb[AUDIT_HASH_SIZE],
        hc[AUDIT_HASH_SIZE];
    struct audit_record a, a2, b, c, back;
    size_t which, fi;
    int rc;

    fr_bytes(r, prev, sizeof(prev));
    read_record(r, &a);
    fi = fr_u8(r) % NFIELDS;
    mutate(r, &a, &b, fi);
    read_record(r, &c);

    /* deterministic, and independent of where the strings are and of the hash field */
    hash_of(prev, &a, ha);
    deep_copy(&a, &a2);
    memset(a2.hash, 0x5a, sizeof(a2.hash));
    hash_of(prev, &a2, ha2);
    FUZZ_CHECK(memcmp(ha, ha2, sizeof(ha)) == 0, "the hash of a record is not deterministic");

    /* one field changed */
    FUZZ_CHECK(!rec_eq(&a, &b, &which) && which == fi, "harness: the mutation of %s did nothing",
               fields[fi].name);
    hash_of(prev, &b, hb);
    if (memcmp(ha, hb, sizeof(ha)) == 0) {
        describe(&a, "A");
        describe(&b, "B");
        FUZZ_CHECK(0, "records that differ only in '%s' have the same hash", fields[fi].name);
    }

    /* another prev */
    memcpy(prev2, prev, sizeof(prev));
    prev2[fr_u8(r) % AUDIT_HASH_SIZE] ^= (uint8_t)(1u << (fr_u8(r) % 8));
    hash_of(prev2, &a, hb);
    FUZZ_CHECK(memcmp(ha, hb, sizeof(ha)) != 0, "the hash does not depend on the previous hash");

    /* the genesis value: deterministic, bound to the vault ID (the first 16 bytes of prev) */
    {
        unsigned char g1[AUDIT_HASH_SIZE], g2[AUDIT_HASH_SIZE], id[AUDIT_ID_SIZE];
        memcpy(id, prev, sizeof(id));
        audit_genesis(id, g1);
        audit_genesis(id, g2);
        FUZZ_CHECK(memcmp(g1, g2, sizeof(g1)) == 0, "audit_genesis is not deterministic");
        id[prev[16] % AUDIT_ID_SIZE] ^= (uint8_t)(1u << (prev[17] % 8));
        audit_genesis(id, g2);
        FUZZ_CHECK(memcmp(g1, g2, sizeof(g1)) != 0, "audit_genesis ignores a vault ID bit");
    }
    /* errno names: "ok" for 0, else a non-empty name */
    {
        int e = (int)(int32_t)(uint32_t)cint(&a, 2);
        const char *n = audit_errno_name(e);
        FUZZ_CHECK(n != NULL && n[0] != '\0' && (e != 0 || strcmp(n, "ok") == 0) &&
                       (e == 0 || strcmp(n, "ok") != 0),
                   "audit_errno_name(%d) = '%s'", e, n ? n : "(null)");
    }

    /* an independent record: same hash exactly when equal */
    hash_of(prev, &c, hc);
    if ((memcmp(ha, hc, sizeof(ha)) == 0) != rec_eq(&a, &c, NULL)) {
        describe(&a, "A");
        describe(&c, "C");
        FUZZ_CHECK(0, "records %s but their hashes %s", rec_eq(&a, &c, NULL) ? "equal" : "differ",
                   rec_eq(&a, &c, NULL) ? "differ" : "are the same");
    }

    /* stored as the writer stores it, read back as the reader reads it */
    db_clear();
    memcpy(a.hash, ha, sizeof(ha));
    rc = db_insert_canonical(&a);
    if (a.op == NULL || a.result == NULL) {
        FUZZ_CHECK(rc == SQLITE_CONSTRAINT, "a record without op or result was stored (%d)", rc);
        return;
    }
    FUZZ_CHECK(rc == SQLITE_DONE, "insert: %s", sqlite3_errmsg(db));
    FUZZ_CHECK(sqlite3_step(sel) == SQLITE_ROW, "select: %s", sqlite3_errmsg(db));
    audit_row_to_record(sel, &back);
    if (!rec_eq(&a, &back, &which)) {
        describe(&a, "written");
        describe(&back, "read");
        FUZZ_CHECK(0, "field '%s' reads back differently from the database", fields[which].name);
    }
    FUZZ_CHECK(memcmp(back.hash, ha, sizeof(ha)) == 0, "the stored hash reads back differently");
    hash_of(prev, &back, hb);
    FUZZ_CHECK(memcmp(hb, ha, sizeof(ha)) == 0, "a record read back hashes differently");
    sqlite3_reset(sel);
}

/* ---- mode 2: typed SQL rows ---- */

enum { T_NULL, T_INT, T_REAL, T_TEXT, T_BLOB, NTYPES };
static const char *const tname[NTYPES] = {"NULL", "INTEGER", "REAL", "TEXT", "BLOB"};

struct colval {
    int type;
    int64_t i;
    double d;
    unsigned char b[64];
    size_t n;
};

static void read_colval(struct fuzz_reader *r, struct colval *v)
{
    uint8_t t = fr_u8(r);

    memset(v, 0, sizeof(*v));
    v->type = t % NTYPES;
    switch (v->type) {
    case T_INT: v->i = (t & 0x80) ? (int64_t)fr_u64(r) : (int8_t)fr_u8(r); break;
    case T_REAL: {
        uint64_t u = fr_u64(r);
        memcpy(&v->d, &u, sizeof(v->d));
        if (v->d != v->d)
            v->d = 0.5; /* SQLite stores NaN as NULL */
        break;
    }
    case T_TEXT:
    case T_BLOB:
        v->n = fr_bytes(r, v->b, fr_u8(r) % (sizeof(v->b) + 1));
        break;
    default: break;
    }
}

static void bind_colval(int col, const struct colval *v)
{
    switch (v->type) {
    case T_INT: sqlite3_bind_int64(ins, col, v->i); break;
    case T_REAL: sqlite3_bind_double(ins, col, v->d); break;
    case T_TEXT: sqlite3_bind_text(ins, col, (const char *)v->b, (int)v->n, SQLITE_TRANSIENT); break;
    case T_BLOB: sqlite3_bind_blob(ins, col, v->b, (int)v->n, SQLITE_TRANSIENT); break;
    default: sqlite3_bind_null(ins, col); break;
    }
}

/* Is column `col` of the current row of `sel` (SQL type `t`, captured before decoding: after a
 * conversion sqlite3_column_type() is undefined) what the writer stores for field i of rec? */
static const char *noncanonical(const struct audit_record *rec, size_t i, int t)
{
    int col = fields[i].col;

    if (fields[i].kind == K_INT) {
        int64_t v = cint(rec, i);
        if (v == AUDIT_NONE && i > 1)
            return t == SQLITE_NULL ? NULL : "a NULL integer stored as a non-NULL value";
        if (t != SQLITE_INTEGER)
            return "an integer stored as another SQL type";
        return sqlite3_column_int64(sel, col) == v ? NULL : "an integer stored as another value";
    }
    if (cstr(rec, i) == NULL)
        return t == SQLITE_NULL ? NULL : "a NULL string stored as a non-NULL value";
    if (t != SQLITE_TEXT)
        return "a string stored as another SQL type";
    if ((size_t)sqlite3_column_bytes(sel, col) != strlen(cstr(rec, i)))
        return "a string stored with bytes after a NUL";
    return NULL;
}

static int sql_type(int t)
{
    return t == SQLITE_INTEGER ? T_INT : t == SQLITE_FLOAT ? T_REAL : t == SQLITE_TEXT ? T_TEXT
         : t == SQLITE_BLOB ? T_BLOB : T_NULL;
}

static void fuzz_sqlrow(struct fuzz_reader *r)
{
    struct colval v[NCOLS];
    int types[NCOLS];
    struct audit_record rec, again;
    unsigned char h1[AUDIT_HASH_SIZE], h2[AUDIT_HASH_SIZE], prev[AUDIT_HASH_SIZE];
    int rc, canonical;

    db_clear();
    for (int c = 0; c < NCOLS; c++) {
        read_colval(r, &v[c]);
        bind_colval(c + 1, &v[c]);
    }
    rc = sqlite3_step(ins);
    if (rc != SQLITE_DONE)
        return; /* NOT NULL or the INTEGER PRIMARY KEY refused it */
    FUZZ_CHECK(sqlite3_step(sel) == SQLITE_ROW, "select: %s", sqlite3_errmsg(db));
    for (int c = 0; c < NCOLS; c++)
        types[c] = sqlite3_column_type(sel, c);
    canonical = audit_row_to_record(sel, &rec);
    FUZZ_CHECK(rec.op != NULL && rec.result != NULL, "op or result NULL for a NOT NULL column");
    memset(prev, 0x11, sizeof(prev));
    hash_of(prev, &rec, h1);
    /* the hash column: a 32-byte BLOB as stored, else all 0xff */
    {
        const void *hb = sqlite3_column_blob(sel, 18);
        int hn = sqlite3_column_bytes(sel, 18);
        if (hb != NULL && hn == AUDIT_HASH_SIZE && types[18] == SQLITE_BLOB)
            FUZZ_CHECK(memcmp(rec.hash, hb, AUDIT_HASH_SIZE) == 0, "hash column misread");
        else
            for (int k = 0; k < AUDIT_HASH_SIZE; k++)
                FUZZ_CHECK(rec.hash[k] == 0xff, "a malformed hash column was not marked bad");
    }
    if (!fuzz_relaxed("sql-canonical")) {
        const char *why = NULL;
        size_t i;
        int col = 18;
        for (i = 0; i < NFIELDS && why == NULL; i++) {
            why = noncanonical(&rec, i, types[fields[i].col]);
            col = fields[i].col;
        }
        if (why == NULL && types[18] != SQLITE_BLOB)
            why = "the hash stored as another SQL type", col = 18;
        if (why != NULL && canonical) {
            fprintf(stderr, "  column %d (%s) stored as %s (bound as %s)\n", col,
                    col == 18 ? "hash" : fields[i - 1].name, tname[sql_type(types[col])],
                    tname[v[col].type]);
            describe(&rec, "decoded");
            FUZZ_CHECK(0, "[sql-canonical] %s: the row differs from the one the writer stores "
                       "for the record it decodes to, yet the reader takes it as written", why);
        }
    }
    /* a canonical copy of the decoded record decodes to the same record and hash */
    deep_copy(&rec, &again);
    sqlite3_reset(sel);
    db_clear();
    rc = db_insert_canonical(&again);
    FUZZ_CHECK(rc == SQLITE_DONE, "canonical insert: %s", sqlite3_errmsg(db));
    FUZZ_CHECK(sqlite3_step(sel) == SQLITE_ROW, "select: %s", sqlite3_errmsg(db));
    FUZZ_CHECK(audit_row_to_record(sel, &rec), "the reader refuses a row stored as the writer "
                                               "stores it");
    hash_of(prev, &rec, h2);
    FUZZ_CHECK(rec_eq(&rec, &again, NULL) && memcmp(h1, h2, sizeof(h1)) == 0,
               "a canonical row of a decoded record decodes differently");
    sqlite3_reset(sel);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (secmem_init() != 0)
        abort();
    db_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_reader r = {data, size};

    if (size == 0)
        return 0;
    switch (fr_u8(&r) % FUZZ_AUDIT_MODES) {
    case FUZZ_AUDIT_HEAD: fuzz_head(&r); break;
    case FUZZ_AUDIT_RECORDS: fuzz_records(&r); break;
    default: fuzz_sqlrow(&r); break;
    }
    free_strs();
    return 0;
}
