/*
 * gen_corpus CORPUS_DIR SCRATCH_DIR: write seed inputs for the fuzz targets, made by the
 * project's own code, into CORPUS_DIR/fuzz_content, CORPUS_DIR/fuzz_vaultcfg and
 * CORPUS_DIR/fuzz_audit (created if missing; existing seeds are overwritten).  SCRATCH_DIR holds
 * a throw-away audit log (a real one, written by audit_open/audit_append/audit_close, whose
 * signed head becomes the head-line seeds).
 *
 *   fuzz_content:  headers from content_header_new (and resealed with the sparse flag) under
 *                  FUZZ_MASTER_KEY, and format-2 headers under FUZZ_FILE_ROOT; blocks from content_block_seal under FUZZ_FILE_KEY/ID, of
 *                  several lengths and block numbers, both ciphers; a few size pairs.
 *   fuzz_vaultcfg: configurations from vaultcfg_create/vaultcfg_add_slot/vaultcfg_format, both
 *                  ciphers, key-file and (cheap) passphrase slots, up to 8 slots, admin group,
 *                  file formats 1 and 2 (those with an admin group have a file-key line).
 *   fuzz_audit:    the head line of a real signed head; records like those the daemon writes;
 *                  those records as typed SQL rows.
 *
 * The input layouts are described in fuzz_common.h.
 */
#include "tests/fuzz/fuzz_common.h"

#include "audit/audit.h"
#include "crypto/content.h"
#include "crypto/secmem.h"
#include "crypto/vaultcfg.h"

#include <errno.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *root;
static unsigned counts[3];
static const char *const targets[3] = {"fuzz_content", "fuzz_vaultcfg", "fuzz_audit"};

static void die(const char *what)
{
    fprintf(stderr, "gen_corpus: %s\n", what);
    exit(1);
}

static void seed(int target, const char *name, const void *data, size_t len)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s/seed-%s", root, targets[target], name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    counts[target]++;
}

/* ---- fuzz_content ---- */

static void content_seeds(void)
{
    struct master_key mk = {secmem_alloc(CONTENT_KEY_SIZE), FUZZ_MASTER_EPOCH,
                            secmem_alloc(CONTENT_KEY_SIZE)};
    static const size_t lens[] = {1, 2, 15, 16, 100, 1000, 4095, 4096};
    static const uint64_t blocknos[] = {0, 1, 2, 255, 1u << 20, UINT64_MAX};
    unsigned char in[1 + 1 + CONTENT_HEADER_SIZE];
    unsigned char blk[FUZZ_BLOCK_PREFIX + CONTENT_MAX_SEALED_BLOCK];
    unsigned char plain[CONTENT_BLOCK_SIZE];
    char name[64];

    if (mk.bytes == NULL || mk.file_root == NULL)
        die("out of guarded memory");
    memcpy(mk.bytes, FUZZ_MASTER_KEY, CONTENT_KEY_SIZE);
    memcpy(mk.file_root, FUZZ_FILE_ROOT, CONTENT_KEY_SIZE);
    for (unsigned c = CIPHER_AES256GCM; c <= CIPHER_XCHACHA20POLY1305; c++) {
        struct content_file *f;
        if (c == CIPHER_AES256GCM && !content_cipher_aes_available())
            continue;
        /* headers */
        for (int variant = 0; variant < 3; variant++) {
            in[0] = FUZZ_CONTENT_HEADER;
            in[1] = (unsigned char)c;
            if (content_header_new(&mk, c, in + 2, &f) != 0)
                die("content_header_new failed");
            if (variant == 1) { /* sparse flag set, resealed */
                content_file_set_flags(f, CONTENT_FLAG_SPARSE);
                if (content_header_reseal(&mk, f, in + 2) != 0)
                    die("content_header_reseal failed");
            }
            if (variant == 2) /* asked for the other cipher */
                in[1] = (unsigned char)(c ^ 3u);
            content_file_free(f);
            snprintf(name, sizeof(name), "header-%s-%d", content_cipher_name(c), variant);
            seed(0, name, in, sizeof(in));
        }
        /* format-2 headers: as made, and with the sparse flag */
        for (int variant = 0; variant < 2; variant++) {
            unsigned char h2[2 + CONTENT_HEADER_SIZE];
            h2[0] = FUZZ_CONTENT_HEADER2;
            h2[1] = (unsigned char)c;
            if (content_header_new(&mk, c | CONTENT_FORMAT2, h2 + 2, &f) != 0)
                die("content_header_new (format 2) failed");
            if (variant == 1) {
                content_file_set_flags(f, CONTENT_FLAG_SPARSE);
                if (content_header_reseal(&mk, f, h2 + 2) != 0)
                    die("content_header_reseal (format 2) failed");
            }
            content_file_free(f);
            snprintf(name, sizeof(name), "header2-%s-%d", content_cipher_name(c), variant);
            seed(0, name, h2, 2 + CONTENT_HEADER_V2_SIZE);
        }
        /* blocks */
        if (content_file_new_with_key(c, FUZZ_FILE_ID, FUZZ_FILE_KEY, &f) != 0)
            die("content_file_new_with_key failed");
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            uint64_t b = blocknos[i % (sizeof(blocknos) / sizeof(blocknos[0]))];
            size_t over = content_block_overhead(c);
            for (size_t k = 0; k < lens[i]; k++)
                plain[k] = (unsigned char)(i % 3 == 0 ? 0 : (k * 7 + i));
            blk[0] = FUZZ_CONTENT_BLOCK;
            blk[1] = c == CIPHER_AES256GCM ? 1 : 0;
            put_le64(blk + 2, b);
            if (content_block_seal(f, b, plain, lens[i], blk + FUZZ_BLOCK_PREFIX) != 0)
                die("content_block_seal failed");
            snprintf(name, sizeof(name), "block-%s-%zu-%llu", content_cipher_name(c), lens[i],
                     (unsigned long long)b);
            seed(0, name, blk, FUZZ_BLOCK_PREFIX + lens[i] + over);
        }
        content_file_free(f);
    }
    /* sizes */
    {
        static const uint64_t sizes[][2] = {
            {0, 0}, {1, 1}, {127, 4096}, {128, 4095}, {128 + 28 + 4096, 8192},
            {128 + 40 + 4096 + 41, 4097}, {128 + 28, 1u << 30}, {UINT64_MAX, INT64_MAX},
        };
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            unsigned char s[18];
            s[0] = FUZZ_CONTENT_SIZES;
            s[1] = (unsigned char)(i % 2 ? CIPHER_AES256GCM : CIPHER_XCHACHA20POLY1305);
            put_le64(s + 2, sizes[i][0]);
            put_le64(s + 10, sizes[i][1]);
            snprintf(name, sizeof(name), "sizes-%zu", i);
            seed(0, name, s, sizeof(s));
        }
    }
    secmem_free(mk.bytes);
    secmem_free(mk.file_root);
}

/* ---- fuzz_vaultcfg ---- */

static struct vault_config make_config(unsigned cipher, int keyfiles, int passphrases,
                                       int64_t admin, unsigned char *sign_sk)
{
    static const unsigned char keyfile[VAULTCFG_KEYFILE_SIZE] = "fuzz key file: 32 bytes exactly";
    struct vault_config cfg;
    struct master_key *mk;

    if (vaultcfg_create(&cfg, cipher, &mk) != 0)
        die("vaultcfg_create failed");
    if (admin >= 0 && vaultcfg_use_file_key(&cfg, mk) != 0) /* file format 2 in some seeds */
        die("vaultcfg_use_file_key failed");
    for (int i = 0; i < keyfiles; i++)
        if (vaultcfg_add_slot(&cfg, mk, SLOT_KEYFILE, keyfile, sizeof(keyfile), 0, 0) != 0)
            die("vaultcfg_add_slot (key file) failed");
    for (int i = 0; i < passphrases; i++)
        if (vaultcfg_add_slot(&cfg, mk, SLOT_PASSPHRASE, (const unsigned char *)"fuzz", 4,
                              crypto_pwhash_OPSLIMIT_MIN + (unsigned)i,
                              crypto_pwhash_MEMLIMIT_MIN << (i % 3)) != 0)
            die("vaultcfg_add_slot (passphrase) failed");
    cfg.admin_gid = admin;
    if (sign_sk != NULL && vaultcfg_signing_key(&cfg, mk, sign_sk) != 0)
        die("vaultcfg_signing_key failed");
    master_key_free(mk);
    return cfg;
}

static void vaultcfg_seeds(void)
{
    static const struct { int keyfiles, passphrases; int64_t admin; } shapes[] = {
        {1, 0, -1}, {0, 1, -1}, {1, 1, 1001}, {2, 2, 0}, {8, 0, 4294967294LL}, {1, 7, 27},
    };
    static char buf[VAULTCFG_MAX_TEXT], buf2[VAULTCFG_MAX_TEXT];
    char name[64];

    for (unsigned c = CIPHER_AES256GCM; c <= CIPHER_XCHACHA20POLY1305; c++) {
        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
            struct vault_config cfg = make_config(c, shapes[i].keyfiles, shapes[i].passphrases,
                                                  shapes[i].admin, NULL);
            int n = vaultcfg_format(&cfg, buf, sizeof(buf));
            if (n < 0)
                die("vaultcfg_format failed");
            snprintf(name, sizeof(name), "config-%s-%zu", content_cipher_name(c), i);
            seed(1, name, buf, (size_t)n);
        }
    }
    /* a comment inside the body, with a checksum that covers it */
    {
        struct vault_config cfg = make_config(CIPHER_XCHACHA20POLY1305, 1, 0, -1, NULL);
        int n = vaultcfg_format(&cfg, buf, sizeof(buf)), m;
        const char *sum = strstr(buf, "\nchecksum ");
        unsigned char h[32];
        char hex[65];
        if (n < 0 || sum == NULL)
            die("vaultcfg_format failed");
        m = snprintf(buf2, sizeof(buf2), "%.*s# a comment the checksum covers\n",
                     (int)(sum + 1 - buf), buf);
        crypto_generichash(h, sizeof(h), (const unsigned char *)buf2, (size_t)m, NULL, 0);
        sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
        m += snprintf(buf2 + m, sizeof(buf2) - (size_t)m, "checksum %s\n", hex);
        seed(1, "config-comment", buf2, (size_t)m);
        /* and one past VAULTCFG_MAX_TEXT: comment lines before the checksum */
        m = (int)(sum + 1 - buf);
        memcpy(buf2, buf, (size_t)m);
        while (m < VAULTCFG_MAX_TEXT - 200)
            m += snprintf(buf2 + m, sizeof(buf2) - (size_t)m, "# %075d\n", m);
        crypto_generichash(h, sizeof(h), (const unsigned char *)buf2, (size_t)m, NULL, 0);
        sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
        m += snprintf(buf2 + m, sizeof(buf2) - (size_t)m, "checksum %s\n", hex);
        {
            static char big[VAULTCFG_MAX_TEXT + 512];
            int k = snprintf(big, sizeof(big), "%s# %0300d\n", buf2, 0);
            seed(1, "config-near-limit", buf2, (size_t)m);
            seed(1, "config-over-limit", big, (size_t)k);
        }
    }
}

/* ---- fuzz_audit ---- */

/* Records like the daemon's (fs/trail.c). */
static const struct audit_record sample_records[] = {
    {.seq = 1, .time_ns = 1795944629345226345, .uid = 0, .gid = 0, .pid = 4242, .ppid = 1,
     .pstart = 123456, .user = "root", .process = "custodyfs", .exe = "/usr/local/bin/custodyfs",
     .op = "mount", .result = "ok", .bytes = AUDIT_NONE,
     .detail = "custodyfs 0.1.0; backing /srv/vault; mountpoint /mnt/data; options "
               "-oallow_other,subtype=custodyfs -o fsname=/srv/vault"},
    {.seq = 2, .time_ns = 1795944629400000000, .uid = 1000, .gid = 1000, .pid = 5000,
     .ppid = 4999, .pstart = 99, .user = "alice", .process = "python3", .exe = "/usr/bin/python3.11",
     .op = "open", .path = "/datasets/customers.csv",
     .file_id = "31640db0d92e4d7932f11f04722033c1", .result = "ok", .bytes = AUDIT_NONE,
     .detail = "read"},
    {.seq = 3, .time_ns = 1795944630400000000, .uid = 1000, .gid = 1000, .pid = 5000,
     .ppid = 4999, .pstart = 99, .user = "alice", .process = "python3", .exe = "/usr/bin/python3.11",
     .op = "read", .path = "/datasets/customers.csv",
     .file_id = "31640db0d92e4d7932f11f04722033c1", .result = "ok", .bytes = 655360,
     .ranges = "0-131072,524288-655360"},
    {.seq = 4, .time_ns = 1795944631000000000, .uid = 1001, .gid = 1001, .pid = 6000,
     .ppid = AUDIT_NONE, .pstart = AUDIT_NONE, .user = "bob", .process = "(exited)",
     .op = "rename", .path = "/a b/\xc3\xa9t\xc3\xa9.npy", .path2 = "/x\ty\x01", .result = "EACCES",
     .bytes = AUDIT_NONE, .detail = ""},
    {.seq = 5, .time_ns = 0, .uid = 0, .gid = 0, .pid = 4242, .ppid = AUDIT_NONE,
     .pstart = AUDIT_NONE, .process = "custodyfs", .op = "audit-gap", .result = "ok",
     .bytes = AUDIT_NONE,
     .detail = "the audit database could not be written for 12.345 s (database or disk is full); "
               "17 operations were refused"},
};
#define NSAMPLES (sizeof(sample_records) / sizeof(sample_records[0]))

/* Encoders for fuzz_audit's readers (read_int / read_str / read_colval). */
struct out {
    unsigned char b[8192];
    size_t n;
};

static void o_u8(struct out *o, unsigned v)
{
    if (o->n < sizeof(o->b))
        o->b[o->n++] = (unsigned char)v;
}

static void o_u64(struct out *o, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        o_u8(o, (unsigned)(v >> (8 * i)) & 0xff);
}

static void o_int(struct out *o, int64_t v)
{
    if (v == AUDIT_NONE) {
        o_u8(o, 0);
    } else if (v >= -128 && v <= 127) {
        o_u8(o, 1);
        o_u8(o, (unsigned)(uint8_t)(int8_t)v);
    } else {
        o_u8(o, 2);
        o_u64(o, (uint64_t)v);
    }
}

static void o_str(struct out *o, const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (s == NULL) {
        o_u8(o, 0);
    } else if (n == 0) {
        o_u8(o, 1);
    } else {
        n = n > 255 ? 255 : n;
        o_u8(o, 2);
        o_u8(o, (unsigned)n);
        for (size_t i = 0; i < n; i++)
            o_u8(o, (unsigned char)s[i]);
    }
}

static void o_record(struct out *o, const struct audit_record *r)
{
    o_int(o, r->seq);
    o_int(o, r->time_ns);
    o_int(o, r->uid);
    o_str(o, r->user);
    o_int(o, r->gid);
    o_int(o, r->pid);
    o_int(o, r->ppid);
    o_int(o, r->pstart);
    o_str(o, r->process);
    o_str(o, r->exe);
    o_str(o, r->op);
    o_str(o, r->path);
    o_str(o, r->path2);
    o_str(o, r->file_id);
    o_str(o, r->result);
    o_int(o, r->bytes);
    o_str(o, r->ranges);
    o_str(o, r->detail);
}

/* Typed SQL values (fuzz_audit.c read_colval: type = byte % 5: NULL, INTEGER, REAL, TEXT, BLOB). */
static void o_col_int(struct out *o, int64_t v, int real)
{
    if (v == AUDIT_NONE) {
        o_u8(o, 0);
    } else if (real) {
        double d = (double)v;
        uint64_t u;
        memcpy(&u, &d, sizeof(u));
        o_u8(o, 2);
        o_u64(o, u);
    } else {
        o_u8(o, 0x83);          /* 131 % 5 == 1 (INTEGER), bit 7 set: all 8 bytes follow */
        o_u64(o, (uint64_t)v);
    }
}

static void o_col_bytes(struct out *o, int type, const void *p, size_t n)
{
    if (p == NULL) {
        o_u8(o, 0);
        return;
    }
    n = n > 64 ? 64 : n;
    o_u8(o, (unsigned)type);
    o_u8(o, (unsigned)n);
    for (size_t i = 0; i < n; i++)
        o_u8(o, ((const unsigned char *)p)[i]);
}

static void o_row(struct out *o, const struct audit_record *r, const unsigned char *hash,
                  int variant)
{
    const char *s[] = {r->user, r->process, r->exe, r->op, r->path, r->path2, r->file_id,
                       r->result, r->ranges, r->detail};
    int text = variant == 1 ? 4 : 3; /* variant 1: strings as BLOBs */
    int si = 0;

    o_col_int(o, r->seq, 0);
    o_col_int(o, r->time_ns, 0);
    for (int col = 2; col < 18; col++) {
        /* integer columns: uid(2) gid(4) pid(5) ppid(6) pstart(7) bytes(15) */
        if (col == 2 || (col >= 4 && col <= 7) || col == 15) {
            int64_t v = col == 2 ? r->uid : col == 4 ? r->gid : col == 5 ? r->pid
                      : col == 6 ? r->ppid : col == 7 ? r->pstart : r->bytes;
            o_col_int(o, v, variant == 2);
        } else {
            const char *p = s[si++];
            o_col_bytes(o, text, p, p ? strlen(p) : 0);
        }
    }
    o_col_bytes(o, 4, hash, AUDIT_HASH_SIZE);
}

static void audit_seeds(const char *scratch)
{
    unsigned char *sk = secmem_alloc(AUDIT_SK_SIZE);
    struct audit_config acfg = {0};
    struct audit_log *log;
    struct audit_head h;
    struct vault_config cfg;
    char db[4096], err[512], line[AUDIT_HEAD_LINE_MAX + 8], name[64];
    struct out o;
    int rc;

    if (sk == NULL)
        die("out of guarded memory");
    cfg = make_config(CIPHER_XCHACHA20POLY1305, 1, 0, -1, sk);

    /* a real log with a real signed head */
    snprintf(db, sizeof(db), "%s/seed-audit.db", scratch);
    for (const char *sfx = ""; ; sfx = sfx[0] == '\0' ? "-wal" : "-shm") {
        char p[4200];
        snprintf(p, sizeof(p), "%s%s", db, sfx);
        unlink(p);
        if (strcmp(sfx, "-shm") == 0)
            break;
    }
    memcpy(acfg.vault_id, cfg.vault_id, AUDIT_ID_SIZE);
    acfg.db_path = db;
    acfg.sign_sk = sk;
    if (audit_open(&acfg, &log, err, sizeof(err)) != 0) {
        fprintf(stderr, "gen_corpus: audit_open %s: %s\n", db, err);
        exit(1);
    }
    for (size_t i = 0; i < NSAMPLES; i++)
        if (audit_append(log, &sample_records[i]) != 0)
            die("audit_append failed");
    if (audit_close(log, 5) != 0)
        die("audit_close failed");
    rc = audit_latest_head(db, cfg.sign_pk, &h, err, sizeof(err));
    if (rc != 1) {
        fprintf(stderr, "gen_corpus: audit_latest_head: %d %s\n", rc, err);
        exit(1);
    }
    if (!audit_head_check_sig(&h))
        die("the log's head does not verify");
    line[0] = FUZZ_AUDIT_HEAD;
    rc = audit_head_format(&h, line + 1, sizeof(line) - 1);
    if (rc < 0)
        die("audit_head_format failed");
    seed(2, "head-real", line, 1 + (size_t)rc);
    /* the same head with the big numbers custodyctl can print */
    h.seq = INT64_MAX;
    h.time_ns = -1;
    rc = audit_head_format(&h, line + 1, sizeof(line) - 1);
    seed(2, "head-extremes", line, 1 + (size_t)rc);

    /* records: A, a field to change, the mutation bytes, then C */
    for (size_t i = 0; i < NSAMPLES; i++) {
        unsigned char prev[AUDIT_HASH_SIZE];
        o.n = 0;
        o_u8(&o, FUZZ_AUDIT_RECORDS);
        randombytes_buf(prev, sizeof(prev));
        for (size_t k = 0; k < sizeof(prev); k++)
            o_u8(&o, prev[k]);
        o_record(&o, &sample_records[i]);
        o_u8(&o, (unsigned)(i * 5 + 3)); /* field */
        o_u8(&o, (unsigned)i);           /* how */
        o_u8(&o, 7);
        o_u8(&o, 9);
        o_record(&o, &sample_records[(i + 1) % NSAMPLES]);
        o_u8(&o, 3);
        o_u8(&o, 5);
        snprintf(name, sizeof(name), "records-%zu", i);
        seed(2, name, o.b, o.n);
    }

    /* typed rows: as the writer stores them, strings as BLOBs, integers as REALs */
    for (size_t i = 0; i < NSAMPLES; i++) {
        for (int variant = 0; variant < 3; variant++) {
            unsigned char hash[AUDIT_HASH_SIZE];
            randombytes_buf(hash, sizeof(hash));
            o.n = 0;
            o_u8(&o, FUZZ_AUDIT_SQLROW);
            o_row(&o, &sample_records[i], hash, variant);
            snprintf(name, sizeof(name), "sqlrow-%zu-%d", i, variant);
            seed(2, name, o.b, o.n);
        }
    }
    secmem_free(sk);
}

int main(int argc, char **argv)
{
    char dir[4096];

    if (argc != 3) {
        fprintf(stderr, "usage: gen_corpus CORPUS_DIR SCRATCH_DIR\n");
        return 2;
    }
    root = argv[1];
    if (secmem_init() != 0)
        die("libsodium cannot initialise");
    mkdir(root, 0755);
    for (int t = 0; t < 3; t++) {
        snprintf(dir, sizeof(dir), "%s/%s", root, targets[t]);
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            perror(dir);
            return 1;
        }
    }
    if (mkdir(argv[2], 0755) != 0 && errno != EEXIST) {
        perror(argv[2]);
        return 1;
    }
    content_seeds();
    vaultcfg_seeds();
    audit_seeds(argv[2]);
    for (int t = 0; t < 3; t++)
        printf("gen_corpus: %u seeds in %s/%s\n", counts[t], root, targets[t]);
    return 0;
}
