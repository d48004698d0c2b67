/*
 * Record encoding for the hash chain (version 1).  Every field, in this order, as:
 *   integer: 1 byte presence (0 none, 1 value) then 8 bytes little-endian two's complement
 *   string:  1 byte presence (0 NULL, 1 value) then 4 bytes little-endian length, the bytes
 * seq, time_ns, uid, user, gid, pid, ppid, pstart, process, exe, op, path, path2, file_id,
 * result, bytes, ranges, detail.
 * The hash is BLAKE2b-256 over: "custodyfs-audit-record-v1\0", the previous record's hash (32),
 * the encoding.  The genesis value is BLAKE2b-256("custodyfs-audit-genesis-v1\0" || vault ID).
 *
 * A head signs: "custodyfs-head-v1\0" (18) || vault ID (16) || seq (8 LE) || hash (32) ||
 * time_ns (8 LE), with Ed25519.
 */
#include "audit/record_int.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECORD_DOMAIN "custodyfs-audit-record-v1"
#define GENESIS_DOMAIN "custodyfs-audit-genesis-v1"
#define HEAD_DOMAIN "custodyfs-head-v1"
#define HEAD_LINE_TAG "custodyfs-head"

_Static_assert(sizeof(HEAD_DOMAIN) == 18, "head domain size");
_Static_assert(AUDIT_PK_SIZE == crypto_sign_PUBLICKEYBYTES, "Ed25519 public key");
_Static_assert(AUDIT_SK_SIZE == crypto_sign_SECRETKEYBYTES, "Ed25519 secret key");
_Static_assert(AUDIT_SIG_SIZE == crypto_sign_BYTES, "Ed25519 signature");

const char audit_schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS records("
    " seq INTEGER PRIMARY KEY, time_ns INTEGER NOT NULL, uid INTEGER, user TEXT, gid INTEGER,"
    " pid INTEGER, ppid INTEGER, pstart INTEGER, process TEXT, exe TEXT, op TEXT NOT NULL,"
    " path TEXT, path2 TEXT, file_id TEXT, result TEXT NOT NULL, bytes INTEGER, ranges TEXT,"
    " detail TEXT, hash BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS heads("
    " seq INTEGER PRIMARY KEY, hash BLOB NOT NULL, time_ns INTEGER NOT NULL,"
    " signature BLOB NOT NULL);";

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void hash_int(crypto_generichash_state *st, int64_t v)
{
    unsigned char b[9];

    b[0] = v != AUDIT_NONE;
    put_le64(b + 1, (uint64_t)(b[0] ? v : 0));
    crypto_generichash_update(st, b, sizeof(b));
}

static void hash_str(crypto_generichash_state *st, const char *s)
{
    unsigned char b[5];
    size_t n = s != NULL ? strlen(s) : 0;

    b[0] = s != NULL;
    for (int i = 0; i < 4; i++)
        b[1 + i] = (unsigned char)(n >> (8 * i));
    crypto_generichash_update(st, b, sizeof(b));
    if (n > 0)
        crypto_generichash_update(st, (const unsigned char *)s, n);
}

void audit_genesis(const unsigned char vault_id[AUDIT_ID_SIZE], unsigned char out[AUDIT_HASH_SIZE])
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, AUDIT_HASH_SIZE);
    crypto_generichash_update(&st, (const unsigned char *)GENESIS_DOMAIN, sizeof(GENESIS_DOMAIN));
    crypto_generichash_update(&st, vault_id, AUDIT_ID_SIZE);
    crypto_generichash_final(&st, out, AUDIT_HASH_SIZE);
}

void audit_record_hash(const unsigned char prev[AUDIT_HASH_SIZE], const struct audit_record *r,
                       unsigned char out[AUDIT_HASH_SIZE])
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, AUDIT_HASH_SIZE);
    crypto_generichash_update(&st, (const unsigned char *)RECORD_DOMAIN, sizeof(RECORD_DOMAIN));
    crypto_generichash_update(&st, prev, AUDIT_HASH_SIZE);
    hash_int(&st, r->seq);
    hash_int(&st, r->time_ns);
    hash_int(&st, r->uid);
    hash_str(&st, r->user);
    hash_int(&st, r->gid);
    hash_int(&st, r->pid);
    hash_int(&st, r->ppid);
    hash_int(&st, r->pstart);
    hash_str(&st, r->process);
    hash_str(&st, r->exe);
    hash_str(&st, r->op);
    hash_str(&st, r->path);
    hash_str(&st, r->path2);
    hash_str(&st, r->file_id);
    hash_str(&st, r->result);
    hash_int(&st, r->bytes);
    hash_str(&st, r->ranges);
    hash_str(&st, r->detail);
    crypto_generichash_final(&st, out, AUDIT_HASH_SIZE);
}

static int64_t col_int(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? AUDIT_NONE : sqlite3_column_int64(st, i);
}

static const char *col_str(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i); /* NULL for SQL NULL */
}

/* Is column i stored as the writer stores it?  kind: 'i' integer, 's' text; nullable or not. */
static int col_canonical(sqlite3_stmt *st, int i, char kind, int nullable)
{
    int t = sqlite3_column_type(st, i);

    if (t == SQLITE_NULL)
        return nullable;
    if (kind == 'i')
        return t == SQLITE_INTEGER;
    if (t != SQLITE_TEXT)
        return 0;
    /* no NUL inside: the bytes stored are exactly the string hashed */
    return (size_t)sqlite3_column_bytes(st, i) == strlen((const char *)sqlite3_column_text(st, i));
}

int audit_row_to_record(sqlite3_stmt *st, struct audit_record *r)
{
    /* the columns of AUDIT_COLUMNS but the hash: seq, time_ns, uid, user, gid, pid, ppid,
     * pstart, process, exe, op, path, path2, file_id, result, bytes, ranges, detail */
    static const char kinds[] = "iiisiiiisssssssiss";
    static const char nullable[] = "001111111101110111";
    const void *h;
    int ok = 1;

    memset(r, 0, sizeof(*r));
    for (int i = 0; i < 18 && ok; i++)
        ok = col_canonical(st, i, kinds[i], nullable[i] == '1');
    r->seq = sqlite3_column_int64(st, 0);
    r->time_ns = sqlite3_column_int64(st, 1);
    r->uid = col_int(st, 2);
    r->user = col_str(st, 3);
    r->gid = col_int(st, 4);
    r->pid = col_int(st, 5);
    r->ppid = col_int(st, 6);
    r->pstart = col_int(st, 7);
    r->process = col_str(st, 8);
    r->exe = col_str(st, 9);
    r->op = col_str(st, 10);
    r->path = col_str(st, 11);
    r->path2 = col_str(st, 12);
    r->file_id = col_str(st, 13);
    r->result = col_str(st, 14);
    r->bytes = col_int(st, 15);
    r->ranges = col_str(st, 16);
    r->detail = col_str(st, 17);
    h = sqlite3_column_blob(st, 18);
    if (sqlite3_column_type(st, 18) == SQLITE_BLOB && h != NULL &&
        sqlite3_column_bytes(st, 18) == AUDIT_HASH_SIZE) {
        memcpy(r->hash, h, AUDIT_HASH_SIZE);
    } else {
        memset(r->hash, 0xff, AUDIT_HASH_SIZE); /* a malformed hash never matches */
        ok = 0;
    }
    return ok;
}

int64_t audit_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

const char *audit_errno_name(int err)
{
    static _Thread_local char buf[16];
    const char *n;

    if (err == 0)
        return "ok";
    n = strerrorname_np(err);
    if (n != NULL)
        return n;
    snprintf(buf, sizeof(buf), "E%d", err);
    return buf;
}

void audit_head_message(const struct audit_head *h, unsigned char msg[AUDIT_HEAD_MSG_SIZE])
{
    unsigned char *p = msg;

    memcpy(p, HEAD_DOMAIN, sizeof(HEAD_DOMAIN));
    p += sizeof(HEAD_DOMAIN);
    memcpy(p, h->vault_id, AUDIT_ID_SIZE);
    p += AUDIT_ID_SIZE;
    put_le64(p, (uint64_t)h->seq);
    p += 8;
    memcpy(p, h->hash, AUDIT_HASH_SIZE);
    p += AUDIT_HASH_SIZE;
    put_le64(p, (uint64_t)h->time_ns);
}

int audit_head_check_sig(const struct audit_head *h)
{
    unsigned char msg[AUDIT_HEAD_MSG_SIZE];

    audit_head_message(h, msg);
    return crypto_sign_verify_detached(h->sig, msg, sizeof(msg), h->pk) == 0;
}

int audit_head_format(const struct audit_head *h, char *buf, size_t len)
{
    char id[2 * AUDIT_ID_SIZE + 1], hash[2 * AUDIT_HASH_SIZE + 1];
    char pk[2 * AUDIT_PK_SIZE + 1], sig[2 * AUDIT_SIG_SIZE + 1];
    int n;

    sodium_bin2hex(id, sizeof(id), h->vault_id, AUDIT_ID_SIZE);
    sodium_bin2hex(hash, sizeof(hash), h->hash, AUDIT_HASH_SIZE);
    sodium_bin2hex(pk, sizeof(pk), h->pk, AUDIT_PK_SIZE);
    sodium_bin2hex(sig, sizeof(sig), h->sig, AUDIT_SIG_SIZE);
    n = snprintf(buf, len, HEAD_LINE_TAG " 1 %s %" PRId64 " %s %" PRId64 " %s %s", id, h->seq,
                 hash, h->time_ns, pk, sig);
    return n < 0 || (size_t)n >= len ? -1 : n;
}

static int hex_exact(const char *hex, unsigned char *out, size_t n)
{
    size_t got;

    return strlen(hex) == 2 * n &&
                   sodium_hex2bin(out, n, hex, 2 * n, NULL, &got, NULL) == 0 && got == n
               ? 0
               : -1;
}

/*
 * One head has one spelling: the line must be exactly what audit_head_format() writes (single
 * spaces, lower-case hex, plain decimals), trailing white space aside.  scanf alone would also
 * take signs, leading zeros, other blanks, missing separators and out-of-range numbers.
 */
static int canonical(const struct audit_head *h, const char *line)
{
    char again[AUDIT_HEAD_LINE_MAX];
    size_t n = strlen(line);

    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\n' ||
                     line[n - 1] == '\r'))
        n--;
    return audit_head_format(h, again, sizeof(again)) == (int)n && memcmp(again, line, n) == 0;
}

int audit_head_parse(const char *line, struct audit_head *h)
{
    char tag[16], id[40], hash[72], pk[72], sig[136];
    long long seq, t;
    int ver, end = 0;

    memset(h, 0, sizeof(*h));
    if (sscanf(line, "%15s %d %39s %lld %71s %lld %71s %135s %n", tag, &ver, id, &seq, hash, &t,
               pk, sig, &end) != 8 ||
        strcmp(tag, HEAD_LINE_TAG) != 0 || ver != 1 || line[end] != '\0' || seq < 1)
        return -1;
    h->seq = seq;
    h->time_ns = t;
    if (hex_exact(id, h->vault_id, AUDIT_ID_SIZE) != 0 ||
        hex_exact(hash, h->hash, AUDIT_HASH_SIZE) != 0 ||
        hex_exact(pk, h->pk, AUDIT_PK_SIZE) != 0 || hex_exact(sig, h->sig, AUDIT_SIG_SIZE) != 0)
        return -1;
    return canonical(h, line) ? 0 : -1;
}
