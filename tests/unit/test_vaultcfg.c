/*
 * Unit tests for crypto/vaultcfg.c: configuration text round trips, key slots, authentication
 * of every vault-wide field, checksum, and robustness of the parser against any input.
 *
 * Passphrase slots use Argon2id's minimum costs to keep the tests fast.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto/content.h"
#include "crypto/secmem.h"
#include "crypto/vaultcfg.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPS crypto_pwhash_OPSLIMIT_MIN
#define MEM crypto_pwhash_MEMLIMIT_MIN
#define PASS "correct horse battery staple"
#define PASSLEN (sizeof(PASS) - 1)

/* ---- helpers ---- */

static int group_setup(void **state)
{
    (void)state;
    return secmem_init() == 0 ? 0 : -1;
}

/* A vault with a key-file slot and a passphrase slot.  OUT: cfg, mk, keyfile. */
static void make_vault(unsigned cipher, struct vault_config *cfg, struct master_key **mk,
                       unsigned char keyfile[VAULTCFG_KEYFILE_SIZE])
{
    assert_int_equal(vaultcfg_create(cfg, cipher, mk), 0);
    assert_non_null(*mk);
    randombytes_buf(keyfile, VAULTCFG_KEYFILE_SIZE);
    assert_int_equal(vaultcfg_add_slot(cfg, *mk, SLOT_KEYFILE, keyfile, VAULTCFG_KEYFILE_SIZE,
                                       0, 0),
                     0);
    assert_int_equal(vaultcfg_add_slot(cfg, *mk, SLOT_PASSPHRASE, (const unsigned char *)PASS,
                                       PASSLEN, OPS, MEM),
                     0);
    assert_int_equal(cfg->nslots, 2);
}

static int format_ok(const struct vault_config *cfg, char *buf)
{
    int n = vaultcfg_format(cfg, buf, VAULTCFG_MAX_TEXT);

    assert_true(n > 0);
    assert_int_equal(strlen(buf), (size_t)n);
    return n;
}

/* Parse from an exact-size heap copy, so that any read past `len` is caught by ASan/valgrind. */
static int parse_exact(const char *text, size_t len, struct vault_config *cfg, char *err,
                       size_t errlen)
{
    char *copy = malloc(len ? len : 1);
    int rc;

    assert_non_null(copy);
    if (len)
        memcpy(copy, text, len);
    rc = vaultcfg_parse(copy, len, cfg, err, errlen);
    free(copy);
    return rc;
}

/* Parsing must fail with a non-empty one-line reason. */
static void expect_corrupt(const char *text, size_t len)
{
    struct vault_config cfg;
    char err[256];

    memset(err, 0, sizeof(err));
    assert_int_equal(parse_exact(text, len, &cfg, err, sizeof(err)), -VAULTCFG_ECORRUPT);
    assert_true(err[0] != '\0');
    assert_true(strlen(err) < sizeof(err));
    assert_null(strchr(err, '\n'));
}

/* Body text (lines, each ending in '\n') followed by a valid checksum line. */
static char *with_checksum(const char *body, size_t body_len, size_t *out_len)
{
    unsigned char sum[32];
    char hex[65];
    char *t = malloc(body_len + 9 + 64 + 1 + 1);

    assert_non_null(t);
    crypto_generichash(sum, sizeof(sum), (const unsigned char *)body, body_len, NULL, 0);
    sodium_bin2hex(hex, sizeof(hex), sum, sizeof(sum));
    memcpy(t, body, body_len);
    memcpy(t + body_len, "checksum ", 9);
    memcpy(t + body_len + 9, hex, 64);
    t[body_len + 73] = '\n';
    t[body_len + 74] = '\0';
    *out_len = body_len + 74;
    return t;
}

static void expect_body_corrupt(const char *body)
{
    size_t len;
    char *t = with_checksum(body, strlen(body), &len);

    expect_corrupt(t, len);
    free(t);
}

static void expect_body_ok(const char *body)
{
    struct vault_config cfg;
    char err[256] = "";
    size_t len;
    char *t = with_checksum(body, strlen(body), &len);

    if (parse_exact(t, len, &cfg, err, sizeof(err)) != 0)
        print_error("rejected: %s\n%s", err, t);
    assert_int_equal(parse_exact(t, len, &cfg, err, sizeof(err)), 0);
    free(t);
}

static void assert_cfg_equal(const struct vault_config *a, const struct vault_config *b)
{
    assert_int_equal(a->format, b->format);
    assert_memory_equal(a->vault_id, b->vault_id, VAULTCFG_ID_SIZE);
    assert_int_equal(a->cipher, b->cipher);
    assert_int_equal(a->block_size, b->block_size);
    assert_int_equal(a->key_epoch, b->key_epoch);
    assert_int_equal(a->nslots, b->nslots);
    for (unsigned i = 0; i < a->nslots; i++) {
        assert_int_equal(a->slots[i].kind, b->slots[i].kind);
        assert_int_equal(a->slots[i].opslimit, b->slots[i].opslimit);
        assert_int_equal(a->slots[i].memlimit, b->slots[i].memlimit);
        assert_memory_equal(a->slots[i].salt, b->slots[i].salt, VAULTCFG_SALT_SIZE);
        assert_memory_equal(a->slots[i].wrapped, b->slots[i].wrapped, VAULTCFG_WRAPPED_SIZE);
    }
}

static void expect_unlock(const struct vault_config *cfg, enum slot_kind kind,
                          const void *secret, size_t len, const struct master_key *want)
{
    struct master_key *mk = NULL;

    assert_int_equal(vaultcfg_unlock(cfg, kind, secret, len, &mk), 0);
    assert_non_null(mk);
    assert_memory_equal(mk->bytes, want->bytes, CONTENT_KEY_SIZE);
    assert_int_equal(mk->epoch, cfg->key_epoch);
    master_key_free(mk);
}

static void expect_wrongkey(const struct vault_config *cfg, enum slot_kind kind,
                            const void *secret, size_t len)
{
    struct master_key *mk = (struct master_key *)1;

    assert_int_equal(vaultcfg_unlock(cfg, kind, secret, len, &mk), -VAULTCFG_EWRONGKEY);
    assert_null(mk);
}

/* Split text into a NULL-terminated array of lines (each with its '\n'); caller frees. */
static char **split_lines(const char *text, size_t *n)
{
    char **v = calloc(64, sizeof(*v));
    size_t k = 0;
    const char *p = text;

    assert_non_null(v);
    while (*p) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_true(k < 63);
        v[k] = strndup(p, (size_t)(nl - p + 1));
        assert_non_null(v[k]);
        k++;
        p = nl + 1;
    }
    *n = k;
    return v;
}

static void free_lines(char **v)
{
    for (size_t i = 0; v[i]; i++)
        free(v[i]);
    free(v);
}

/* Join lines, skipping index `skip` (or none), optionally inserting `extra` before `at`. */
static char *join(char **v, size_t n, size_t skip, const char *extra, size_t at)
{
    size_t cap = 1 + (extra ? strlen(extra) : 0);
    char *out;

    for (size_t i = 0; i < n; i++)
        cap += strlen(v[i]);
    out = malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    for (size_t i = 0; i <= n; i++) {
        if (extra && i == at)
            strcat(out, extra);
        if (i < n && i != skip)
            strcat(out, v[i]);
    }
    return out;
}

/* The body lines (no checksum line) of a formatted vault. */
static char **body_lines(const struct vault_config *cfg, size_t *n)
{
    char text[VAULTCFG_MAX_TEXT];
    char **v;

    format_ok(cfg, text);
    v = split_lines(text, n);
    assert_true(*n >= 2);
    assert_memory_equal(v[*n - 1], "checksum ", 9);
    free(v[*n - 1]);
    v[*n - 1] = NULL;
    (*n)--;
    return v;
}

/* ---- round trips ---- */

static void roundtrip(unsigned cipher)
{
    struct vault_config cfg, parsed;
    struct master_key *mk = NULL;
    unsigned char keyfile[VAULTCFG_KEYFILE_SIZE];
    char text[VAULTCFG_MAX_TEXT], text2[VAULTCFG_MAX_TEXT], err[128];
    int n;

    make_vault(cipher, &cfg, &mk, keyfile);
    assert_int_equal(cfg.format, VAULTCFG_FORMAT);
    assert_int_equal(cfg.cipher, cipher);
    assert_int_equal(cfg.block_size, CONTENT_BLOCK_SIZE);
    assert_int_equal(cfg.key_epoch, 1);
    assert_int_equal(mk->epoch, 1);
    assert_int_equal(cfg.slots[0].kind, SLOT_KEYFILE);
    assert_int_equal(cfg.slots[0].opslimit, 0);
    assert_int_equal(cfg.slots[0].memlimit, 0);
    assert_int_equal(cfg.slots[1].kind, SLOT_PASSPHRASE);
    assert_int_equal(cfg.slots[1].opslimit, OPS);
    assert_int_equal(cfg.slots[1].memlimit, MEM);

    n = format_ok(&cfg, text);
    assert_int_equal(text[n - 1], '\n');
    assert_non_null(strstr(text, cipher == CIPHER_AES256GCM ? "\ncipher aes256gcm\n"
                                                            : "\ncipher xchacha20poly1305\n"));
    assert_non_null(strstr(text, "\nblock-size 4096\n"));
    assert_non_null(strstr(text, "\nkey-epoch 1\n"));
    assert_non_null(strstr(text, "custodyfs-vault 1\n"));
    memset(&parsed, 0xAB, sizeof(parsed));
    assert_int_equal(parse_exact(text, (size_t)n, &parsed, err, sizeof(err)), 0);
    assert_cfg_equal(&cfg, &parsed);
    /* formatting the parsed configuration reproduces the text byte for byte */
    assert_int_equal(format_ok(&parsed, text2), n);
    assert_string_equal(text, text2);

    /* unlock, before and after the round trip, with either secret */
    expect_unlock(&cfg, SLOT_KEYFILE, keyfile, sizeof(keyfile), mk);
    expect_unlock(&parsed, SLOT_KEYFILE, keyfile, sizeof(keyfile), mk);
    expect_unlock(&cfg, SLOT_PASSPHRASE, PASS, PASSLEN, mk);
    expect_unlock(&parsed, SLOT_PASSPHRASE, PASS, PASSLEN, mk);
    master_key_free(mk);
}

static void test_roundtrip_aes(void **state)
{
    (void)state;
    roundtrip(CIPHER_AES256GCM);
}

static void test_roundtrip_xchacha(void **state)
{
    (void)state;
    roundtrip(CIPHER_XCHACHA20POLY1305);
}

static void test_create(void **state)
{
    struct vault_config a, b;
    struct master_key *ka = NULL, *kb = NULL;
    char text[VAULTCFG_MAX_TEXT];

    (void)state;
    assert_int_equal(vaultcfg_create(&a, CIPHER_XCHACHA20POLY1305, &ka), 0);
    assert_int_equal(vaultcfg_create(&b, CIPHER_XCHACHA20POLY1305, &kb), 0);
    assert_int_equal(a.nslots, 0);
    assert_memory_not_equal(a.vault_id, b.vault_id, VAULTCFG_ID_SIZE);
    assert_memory_not_equal(ka->bytes, kb->bytes, CONTENT_KEY_SIZE);
    /* a configuration without slots formats, but does not parse back */
    int n = format_ok(&a, text);
    expect_corrupt(text, (size_t)n);
    /* no slot opens nothing */
    expect_wrongkey(&a, SLOT_KEYFILE, ka->bytes, 32);
    expect_wrongkey(&a, SLOT_PASSPHRASE, PASS, PASSLEN);
    master_key_free(ka);
    master_key_free(kb);
    master_key_free(NULL); /* accepted */
}

/* A vault at another key epoch (after a re-key): the unlocked key carries that epoch. */
static void test_key_epoch(void **state)
{
    struct vault_config cfg, parsed;
    struct master_key *mk = NULL, *got = NULL;
    unsigned char kf[VAULTCFG_KEYFILE_SIZE];
    char text[VAULTCFG_MAX_TEXT], err[128];
    int n;

    (void)state;
    assert_int_equal(vaultcfg_create(&cfg, CIPHER_AES256GCM, &mk), 0);
    cfg.key_epoch = 7;
    mk->epoch = 7;
    randombytes_buf(kf, sizeof(kf));
    assert_int_equal(vaultcfg_add_slot(&cfg, mk, SLOT_KEYFILE, kf, sizeof(kf), 0, 0), 0);
    n = format_ok(&cfg, text);
    assert_non_null(strstr(text, "\nkey-epoch 7\n"));
    assert_int_equal(parse_exact(text, (size_t)n, &parsed, err, sizeof(err)), 0);
    assert_int_equal(parsed.key_epoch, 7);
    assert_int_equal(vaultcfg_unlock(&parsed, SLOT_KEYFILE, kf, sizeof(kf), &got), 0);
    assert_int_equal(got->epoch, 7);
    assert_memory_equal(got->bytes, mk->bytes, CONTENT_KEY_SIZE);
    master_key_free(got);
    master_key_free(mk);
}

/* ---- wrong secrets ---- */

static void test_wrong_secret(void **state)
{
    struct vault_config cfg;
    struct master_key *mk = NULL;
    unsigned char keyfile[VAULTCFG_KEYFILE_SIZE], other[VAULTCFG_KEYFILE_SIZE];

    (void)state;
    make_vault(CIPHER_XCHACHA20POLY1305, &cfg, &mk, keyfile);
    /* another key file, and the right one with any single bit flipped */
    randombytes_buf(other, sizeof(other));
    expect_wrongkey(&cfg, SLOT_KEYFILE, other, sizeof(other));
    for (int bit = 0; bit < 8 * VAULTCFG_KEYFILE_SIZE; bit++) {
        keyfile[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        expect_wrongkey(&cfg, SLOT_KEYFILE, keyfile, sizeof(keyfile));
        keyfile[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    /* a truncated key file */
    expect_wrongkey(&cfg, SLOT_KEYFILE, keyfile, sizeof(keyfile) - 1);
    /* wrong passphrases: another, a prefix, an extension, another case, empty */
    expect_wrongkey(&cfg, SLOT_PASSPHRASE, "correct horse battery stapler", PASSLEN + 1);
    expect_wrongkey(&cfg, SLOT_PASSPHRASE, PASS, PASSLEN - 1);
    expect_wrongkey(&cfg, SLOT_PASSPHRASE, "Correct horse battery staple", PASSLEN);
    expect_wrongkey(&cfg, SLOT_PASSPHRASE, "", 0);
    /* the right secret offered as the other kind */
    expect_wrongkey(&cfg, SLOT_KEYFILE, PASS, PASSLEN);
    expect_wrongkey(&cfg, SLOT_PASSPHRASE, keyfile, sizeof(keyfile));
    /* and the right ones still work */
    expect_unlock(&cfg, SLOT_KEYFILE, keyfile, sizeof(keyfile), mk);
    expect_unlock(&cfg, SLOT_PASSPHRASE, PASS, PASSLEN, mk);
    master_key_free(mk);
}

static void test_several_slots(void **state)
{
    struct vault_config cfg, parsed;
    struct master_key *mk = NULL;
    unsigned char kf[3][VAULTCFG_KEYFILE_SIZE];
    static const char *const pw[] = {"first passphrase", "zweites Passwort", "ü∀ unicode"};
    char text[VAULTCFG_MAX_TEXT], err[128];
    int n;

    (void)state;
    assert_int_equal(vaultcfg_create(&cfg, CIPHER_AES256GCM, &mk), 0);
    for (int i = 0; i < 3; i++) {
        randombytes_buf(kf[i], sizeof(kf[i]));
        assert_int_equal(vaultcfg_add_slot(&cfg, mk, SLOT_KEYFILE, kf[i], sizeof(kf[i]), 0, 0),
                         0);
        assert_int_equal(vaultcfg_add_slot(&cfg, mk, SLOT_PASSPHRASE,
                                           (const unsigned char *)pw[i], strlen(pw[i]), OPS,
                                           MEM + 1024u * (unsigned)i),
                         0);
    }
    assert_int_equal(cfg.nslots, 6);
    /* every slot has its own salt and wrapping */
    for (unsigned i = 0; i < cfg.nslots; i++)
        for (unsigned j = i + 1; j < cfg.nslots; j++) {
            assert_memory_not_equal(cfg.slots[i].salt, cfg.slots[j].salt, VAULTCFG_SALT_SIZE);
            assert_memory_not_equal(cfg.slots[i].wrapped, cfg.slots[j].wrapped, 24);
        }
    n = format_ok(&cfg, text);
    assert_int_equal(parse_exact(text, (size_t)n, &parsed, err, sizeof(err)), 0);
    assert_cfg_equal(&cfg, &parsed);
    for (int i = 0; i < 3; i++) {
        expect_unlock(&parsed, SLOT_KEYFILE, kf[i], sizeof(kf[i]), mk);
        expect_unlock(&parsed, SLOT_PASSPHRASE, pw[i], strlen(pw[i]), mk);
    }
    expect_wrongkey(&parsed, SLOT_PASSPHRASE, "fourth", 6);
    master_key_free(mk);
}

static void test_max_slots(void **state)
{
    struct vault_config cfg, parsed;
    struct master_key *mk = NULL, *other = NULL;
    unsigned char kf[VAULTCFG_MAX_SLOTS + 1][VAULTCFG_KEYFILE_SIZE];
    char text[VAULTCFG_MAX_TEXT], err[128];
    int n;

    (void)state;
    assert_int_equal(vaultcfg_create(&cfg, CIPHER_XCHACHA20POLY1305, &mk), 0);
    for (int i = 0; i <= VAULTCFG_MAX_SLOTS; i++)
        randombytes_buf(kf[i], sizeof(kf[i]));
    for (int i = 0; i < VAULTCFG_MAX_SLOTS; i++)
        assert_int_equal(vaultcfg_add_slot(&cfg, mk, SLOT_KEYFILE, kf[i], sizeof(kf[i]), 0, 0),
                         0);
    assert_int_equal(cfg.nslots, VAULTCFG_MAX_SLOTS);
    struct vault_config before = cfg;
    assert_int_equal(vaultcfg_add_slot(&cfg, mk, SLOT_KEYFILE, kf[VAULTCFG_MAX_SLOTS],
                                       sizeof(kf[0]), 0, 0),
                     -VAULTCFG_EFULL);
    assert_int_equal(vaultcfg_add_slot(&cfg, mk, SLOT_PASSPHRASE, (const unsigned char *)PASS,
                                       PASSLEN, OPS, MEM),
                     -VAULTCFG_EFULL);
    assert_int_equal(cfg.nslots, VAULTCFG_MAX_SLOTS);
    assert_memory_equal(&before, &cfg, sizeof(cfg));
    n = format_ok(&cfg, text);
    assert_int_equal(parse_exact(text, (size_t)n, &parsed, err, sizeof(err)), 0);
    assert_cfg_equal(&cfg, &parsed);
    for (int i = 0; i < VAULTCFG_MAX_SLOTS; i++)
        expect_unlock(&parsed, SLOT_KEYFILE, kf[i], sizeof(kf[i]), mk);
    expect_wrongkey(&parsed, SLOT_KEYFILE, kf[VAULTCFG_MAX_SLOTS], sizeof(kf[0]));

    /* nine slot lines are rejected by the parser */
    size_t nl;
    char **v = body_lines(&cfg, &nl);
    char *body = join(v, nl, (size_t)-1, v[nl - 1], nl); /* the last slot line twice */
    expect_body_corrupt(body);
    free(body);
    free_lines(v);

    /* eight passphrase slots fit in the text too, and open */
    master_key_free(mk);
    assert_int_equal(vaultcfg_create(&cfg, CIPHER_AES256GCM, &other), 0);
    for (int i = 0; i < VAULTCFG_MAX_SLOTS; i++) {
        char pw[24];
        snprintf(pw, sizeof(pw), "pass-%d", i % 10);
        assert_int_equal(vaultcfg_add_slot(&cfg, other, SLOT_PASSPHRASE, (unsigned char *)pw,
                                           strlen(pw), OPS, MEM),
                         0);
    }
    assert_int_equal(vaultcfg_add_slot(&cfg, other, SLOT_PASSPHRASE, (unsigned char *)"x", 1,
                                       OPS, MEM),
                     -VAULTCFG_EFULL);
    n = format_ok(&cfg, text);
    assert_int_equal(parse_exact(text, (size_t)n, &parsed, err, sizeof(err)), 0);
    expect_unlock(&parsed, SLOT_PASSPHRASE, "pass-7", 6, other);
    /* the longest text: every slot with the largest costs the parser accepts */
    for (int i = 0; i < VAULTCFG_MAX_SLOTS; i++) {
        cfg.slots[i].opslimit = crypto_pwhash_OPSLIMIT_MAX;
        cfg.slots[i].memlimit = crypto_pwhash_MEMLIMIT_MAX;
    }
    cfg.key_epoch = UINT32_MAX;
    n = format_ok(&cfg, text);
    assert_true(n < VAULTCFG_MAX_TEXT);
    assert_int_equal(parse_exact(text, (size_t)n, &parsed, err, sizeof(err)), 0);
    assert_cfg_equal(&cfg, &parsed);
    master_key_free(other);
}

/* ---- authenticated fields ---- */

/*
 * Format `cfg` (a fresh checksum), parse it, and expect the slots in `broken` (bit i: slot i;
 * slot 0 is the key file, slot 1 the passphrase) to fail, and the others still to open.
 */
#define BOTH_SLOTS 3u
static void expect_fields_reject(const struct vault_config *cfg, const unsigned char *keyfile,
                                 const struct master_key *mk, unsigned broken,
                                 int parse_may_fail)
{
    char text[VAULTCFG_MAX_TEXT], err[128];
    struct vault_config parsed;
    int n = format_ok(cfg, text);
    int rc = parse_exact(text, (size_t)n, &parsed, err, sizeof(err));

    if (parse_may_fail && rc != 0) {
        assert_int_equal(rc, -VAULTCFG_ECORRUPT);
        return;
    }
    assert_int_equal(rc, 0);
    assert_cfg_equal(cfg, &parsed);
    if (broken & 1u)
        expect_wrongkey(&parsed, SLOT_KEYFILE, keyfile, VAULTCFG_KEYFILE_SIZE);
    else
        expect_unlock(&parsed, SLOT_KEYFILE, keyfile, VAULTCFG_KEYFILE_SIZE, mk);
    if (broken & 2u)
        expect_wrongkey(&parsed, SLOT_PASSPHRASE, PASS, PASSLEN);
    else
        expect_unlock(&parsed, SLOT_PASSPHRASE, PASS, PASSLEN, mk);
}

static void test_fields_authenticated(void **state)
{
    struct vault_config cfg, m;
    struct master_key *mk = NULL;
    unsigned char keyfile[VAULTCFG_KEYFILE_SIZE];

    (void)state;
    make_vault(CIPHER_AES256GCM, &cfg, &mk, keyfile);
    /* sanity: unmodified, it opens after a format/parse round trip */
    {
        char text[VAULTCFG_MAX_TEXT], err[128];
        struct vault_config parsed;
        int n = format_ok(&cfg, text);
        assert_int_equal(parse_exact(text, (size_t)n, &parsed, err, sizeof(err)), 0);
        expect_unlock(&parsed, SLOT_KEYFILE, keyfile, sizeof(keyfile), mk);
        expect_unlock(&parsed, SLOT_PASSPHRASE, PASS, PASSLEN, mk);
    }

    /* cipher name */
    m = cfg;
    m.cipher = CIPHER_XCHACHA20POLY1305;
    expect_fields_reject(&m, keyfile, mk, BOTH_SLOTS, 0);
    /* vault-id: every byte */
    for (int i = 0; i < VAULTCFG_ID_SIZE; i++) {
        m = cfg;
        m.vault_id[i] ^= (unsigned char)(1u << (i % 8));
        expect_fields_reject(&m, keyfile, mk, BOTH_SLOTS, 0);
    }
    /* block-size: the parser accepts only 4096, so either parse or unlock must fail */
    static const unsigned sizes[] = {8192, 2048, 4097, 0};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        m = cfg;
        m.block_size = sizes[i];
        expect_fields_reject(&m, keyfile, mk, BOTH_SLOTS, 1);
    }
    /* key-epoch */
    static const uint32_t epochs[] = {0, 2, 0x101, UINT32_MAX};
    for (size_t i = 0; i < sizeof(epochs) / sizeof(epochs[0]); i++) {
        m = cfg;
        m.key_epoch = epochs[i];
        expect_fields_reject(&m, keyfile, mk, BOTH_SLOTS, 0);
    }
    /* format version: not accepted by the parser */
    m = cfg;
    m.format = 2;
    expect_fields_reject(&m, keyfile, mk, BOTH_SLOTS, 1);
    /* KDF costs of the passphrase slot */
    m = cfg;
    m.slots[1].opslimit = OPS + 1;
    expect_fields_reject(&m, keyfile, mk, 2u, 0);
    m = cfg;
    m.slots[1].memlimit = MEM + 1024;
    expect_fields_reject(&m, keyfile, mk, 2u, 0);
    m = cfg;
    m.slots[1].memlimit = MEM * 2;
    expect_fields_reject(&m, keyfile, mk, 2u, 0);
    m = cfg;
    m.slots[1].opslimit = OPS + 1;
    m.slots[1].memlimit = MEM * 2;
    expect_fields_reject(&m, keyfile, mk, 2u, 0);
    /* KDF costs on a key-file slot: not valid text */
    m = cfg;
    m.slots[0].opslimit = 1;
    expect_fields_reject(&m, keyfile, mk, BOTH_SLOTS, 1);
    m = cfg;
    m.slots[0].memlimit = 1;
    expect_fields_reject(&m, keyfile, mk, BOTH_SLOTS, 1);
    /* salts: every byte of either slot */
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < VAULTCFG_SALT_SIZE; i++) {
            m = cfg;
            m.slots[s].salt[i] ^= 0x40;
            expect_fields_reject(&m, keyfile, mk, 1u << s, 0);
        }
    /* wrapped key: every byte (nonce, ciphertext, tag) of either slot */
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < VAULTCFG_WRAPPED_SIZE; i++) {
            m = cfg;
            m.slots[s].wrapped[i] ^= (unsigned char)(1u << (i % 8));
            expect_fields_reject(&m, keyfile, mk, 1u << s, 0);
        }
    /* the two slots swapped: each still opens (slot order is not authenticated, and need
     * not be) */
    m = cfg;
    m.slots[0] = cfg.slots[1];
    m.slots[1] = cfg.slots[0];
    expect_fields_reject(&m, keyfile, mk, 0u, 0);
    /* slots swapped between two vaults with the same secrets: other vault-id in the AD */
    {
        struct vault_config other;
        struct master_key *mk2 = NULL;
        assert_int_equal(vaultcfg_create(&other, CIPHER_AES256GCM, &mk2), 0);
        other.slots[0] = cfg.slots[0];
        other.slots[1] = cfg.slots[1];
        other.nslots = 2;
        expect_fields_reject(&other, keyfile, mk, BOTH_SLOTS, 0);
        master_key_free(mk2);
    }
    master_key_free(mk);
}

/* ---- corruption ---- */

static void test_flip_every_byte(void **state)
{
    struct vault_config cfg, parsed, ref;
    struct master_key *mk = NULL;
    unsigned char keyfile[VAULTCFG_KEYFILE_SIZE];
    char text[VAULTCFG_MAX_TEXT], err[128];
    static const unsigned char masks[] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFF};
    size_t sum_start;
    int n, case_folds = 0;

    (void)state;
    make_vault(CIPHER_XCHACHA20POLY1305, &cfg, &mk, keyfile);
    n = format_ok(&cfg, text);
    assert_int_equal(parse_exact(text, (size_t)n, &ref, err, sizeof(err)), 0);
    sum_start = (size_t)n - 65; /* first hex digit of the checksum */
    assert_memory_equal(text + sum_start - 9, "checksum ", 9);
    for (size_t pos = 0; pos < (size_t)n; pos++)
        for (size_t k = 0; k < sizeof(masks); k++) {
            text[pos] ^= (char)masks[k];
            int rc = parse_exact(text, (size_t)n, &parsed, err, sizeof(err));
            if (rc == 0) {
                /* The only accepted change: a checksum hex letter in another case (the hex
                 * decoder accepts A-F), which does not change the checksum value. */
                char was = (char)(text[pos] ^ (char)masks[k]);
                assert_true(pos >= sum_start && pos < (size_t)n - 1);
                assert_int_equal(masks[k], 0x20);
                assert_true(was >= 'a' && was <= 'f');
                assert_cfg_equal(&ref, &parsed);
                case_folds++;
            } else {
                assert_int_equal(rc, -VAULTCFG_ECORRUPT);
                assert_true(err[0] != '\0');
            }
            text[pos] ^= (char)masks[k];
        }
    if (case_folds)
        print_message("note: %d single-bit flips of the checksum line were accepted "
                      "(lower/upper case of a hex digit a-f)\n",
                      case_folds);
    assert_int_equal(parse_exact(text, (size_t)n, &parsed, err, sizeof(err)), 0);
    master_key_free(mk);
}

static void test_truncate_every_length(void **state)
{
    struct vault_config cfg;
    struct master_key *mk = NULL;
    unsigned char keyfile[VAULTCFG_KEYFILE_SIZE];
    char text[VAULTCFG_MAX_TEXT];
    int n;

    (void)state;
    make_vault(CIPHER_AES256GCM, &cfg, &mk, keyfile);
    n = format_ok(&cfg, text);
    for (size_t len = 0; len < (size_t)n; len++)
        expect_corrupt(text, len);
    /* and with one or more bytes more */
    text[n] = '\n';
    expect_corrupt(text, (size_t)n + 1);
    text[n] = 'x';
    expect_corrupt(text, (size_t)n + 1);
    /* the body cut at every line, with a fresh checksum: a missing setting or no slot */
    size_t nl;
    char **v = body_lines(&cfg, &nl);
    for (size_t keep = 0; keep + 1 < nl; keep++) { /* the last line is the second slot */
        char *body = join(v, keep, (size_t)-1, NULL, 0);
        expect_body_corrupt(body);
        free(body);
    }
    free_lines(v);
    master_key_free(mk);
}

static void test_format_buffer_sizes(void **state)
{
    struct vault_config cfg;
    struct master_key *mk = NULL;
    unsigned char keyfile[VAULTCFG_KEYFILE_SIZE];
    char text[VAULTCFG_MAX_TEXT];
    int n;

    (void)state;
    make_vault(CIPHER_AES256GCM, &cfg, &mk, keyfile);
    n = format_ok(&cfg, text);
    /* every buffer too small is refused, and never written past its end */
    for (size_t len = 0; len <= (size_t)n; len++) {
        char *buf = malloc(len ? len : 1);
        assert_non_null(buf);
        assert_int_equal(vaultcfg_format(&cfg, buf, len), -VAULTCFG_ERANGE);
        free(buf);
    }
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(vaultcfg_format(&cfg, buf, (size_t)n + 1), n);
    assert_string_equal(buf, text);
    free(buf);
    master_key_free(mk);
}

/* Lines of a valid configuration, re-assembled in invalid ways (with a valid checksum). */
static void test_structure(void **state)
{
    struct vault_config cfg;
    struct master_key *mk = NULL;
    unsigned char keyfile[VAULTCFG_KEYFILE_SIZE];
    size_t n, first;
    char **v;
    char *body;

    (void)state;
    make_vault(CIPHER_AES256GCM, &cfg, &mk, keyfile);
    v = body_lines(&cfg, &n);
    /* find the first setting line (after the comments) */
    for (first = 0; first < n && v[first][0] == '#'; first++)
        ;
    assert_memory_equal(v[first], "custodyfs-vault ", 16);
    /* magic, id, cipher, block-size, epoch, 2 slots, signing-key */
    assert_int_equal(n - first, 8);
    assert_memory_equal(v[n - 1], "signing-key ", 12);

    /* as is: valid */
    body = join(v, n, (size_t)-1, NULL, 0);
    expect_body_ok(body);
    free(body);
    /* a comment line anywhere before the checksum is accepted */
    for (size_t at = 0; at <= n; at++) {
        body = join(v, n, (size_t)-1, "# a comment\n", at);
        expect_body_ok(body);
        free(body);
    }
    /* each line missing (comments are optional) */
    for (size_t i = first; i < n; i++) {
        body = join(v, n, i, NULL, 0);
        if (i == n - 2 || i == n - 3)
            expect_body_ok(body); /* one of the two slots is left */
        else
            expect_body_corrupt(body);
        free(body);
    }
    /* each single-valued line given twice, right after itself or at the end */
    for (size_t i = first; i < first + 5; i++) {
        body = join(v, n, (size_t)-1, v[i], i);
        expect_body_corrupt(body);
        free(body);
        body = join(v, n, (size_t)-1, v[i], n);
        expect_body_corrupt(body);
        free(body);
    }
    /* the signing key given twice */
    body = join(v, n, (size_t)-1, v[n - 1], n);
    expect_body_corrupt(body);
    free(body);
    /* a second value for a setting */
    static const char *const dup[] = {"cipher xchacha20poly1305\n", "key-epoch 2\n",
                                      "vault-id 000102030405060708090a0b0c0d0e0f\n",
                                      "custodyfs-vault 1\n", "block-size 4096\n"};
    for (size_t i = 0; i < sizeof(dup) / sizeof(dup[0]); i++) {
        body = join(v, n, (size_t)-1, dup[i], n);
        expect_body_corrupt(body);
        free(body);
    }
    /* unknown settings and malformed lines */
    static const char *const bad[] = {
        "color blue\n", "vault-name x\n", "slot\n", "slot keyfile\n",
        "slot keyfile blake2b 0 0\n", "slot password argon2id13 1 8192 00 00\n",
        "slot keyfile argon2id13 0 0 00000000000000000000000000000000 00\n", "\n", " \n",
        "cipher\n", "cipher  aes256gcm\n", "key-epoch 1 2\n", "# fine\ncolor\n", "\t\n",
        "key-epoch\t1\n", "custodyfs-vault\n", "CHECKSUM 00\n", "checksum\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        body = join(v, n, (size_t)-1, bad[i], n);
        expect_body_corrupt(body);
        free(body);
        body = join(v, n, (size_t)-1, bad[i], first + 1);
        expect_body_corrupt(body);
        free(body);
    }
    /* settings before the magic line */
    body = join(v, n, first, v[first], first + 2);
    expect_body_corrupt(body);
    free(body);
    /* wrong magic or format */
    static const char *const magic[] = {"custodyfs-vault 2\n", "custodyfs-vault 0\n",
                                        "custodyfs-vault 01\n", "custodyfs-vault -1\n",
                                        "custodyfs-vault 1 \n", "custodyfs-vault  1\n",
                                        "custodyfs-vault 1\r\n", "Custodyfs-vault 1\n",
                                        "custodyfs-vault 18446744073709551617\n"};
    for (size_t i = 0; i < sizeof(magic) / sizeof(magic[0]); i++) {
        free(v[first]);
        v[first] = strdup(magic[i]);
        body = join(v, n, (size_t)-1, NULL, 0);
        expect_body_corrupt(body);
        free(body);
    }
    free_lines(v);

    /* malformed values, each replacing a setting line of a valid vault */
    static const struct {
        const char *prefix;
        const char *line;
    } vals[] = {
        {"vault-id ", "vault-id 0001020304050607080910111213141\n"},
        {"vault-id ", "vault-id 000102030405060708091011121314151\n"},
        {"vault-id ", "vault-id 0001020304050607080910111213141g\n"},
        {"vault-id ", "vault-id \n"},
        {"cipher ", "cipher aes128gcm\n"},
        {"cipher ", "cipher AES256GCM\n"},
        {"cipher ", "cipher aes256gcm\r\n"},
        {"block-size ", "block-size 04096\n"},
        {"block-size ", "block-size 4096x\n"},
        {"block-size ", "block-size -4096\n"},
        {"block-size ", "block-size 1\n"},
        {"key-epoch ", "key-epoch 4294967296\n"},
        {"key-epoch ", "key-epoch 01\n"},
        {"key-epoch ", "key-epoch +1\n"},
        {"key-epoch ", "key-epoch 0x1\n"},
        {"key-epoch ", "key-epoch 99999999999999999999999\n"},
    };
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        v = body_lines(&cfg, &n);
        for (size_t j = 0; j < n; j++)
            if (strncmp(v[j], vals[i].prefix, strlen(vals[i].prefix)) == 0) {
                free(v[j]);
                v[j] = strdup(vals[i].line);
            }
        body = join(v, n, (size_t)-1, NULL, 0);
        expect_body_corrupt(body);
        free(body);
        free_lines(v);
    }

    /* malformed slot lines (field by field) */
    v = body_lines(&cfg, &n);
    char *slot = v[n - 2]; /* the passphrase slot (the signing key follows) */
    assert_memory_equal(slot, "slot passphrase argon2id13 ", 27);
    char salt[33], wrapped[145];
    assert_int_equal(sscanf(slot, "slot passphrase argon2id13 %*u %*u %32s %144s", salt, wrapped),
                     2);
    char line[600];
    const struct {
        const char *fmt;
    } slots[] = {
        {"slot passphrase argon2id13 0 8192 %s %s\n"},         /* ops below minimum */
        {"slot passphrase argon2id13 1 8191 %s %s\n"},         /* mem below minimum */
        {"slot passphrase argon2id13 1 0 %s %s\n"},
        {"slot passphrase argon2id13 4294967296 8192 %s %s\n"}, /* ops above maximum */
        {"slot passphrase argon2id13 1 99999999999999999999 %s %s\n"},
        {"slot passphrase argon2id13 1 4398046511105 %s %s\n"}, /* mem above maximum */
        {"slot passphrase argon2id13 01 8192 %s %s\n"},
        {"slot passphrase argon2id13 1 8192 %.30s %s\n"},       /* short salt */
        {"slot passphrase argon2id13 1 8192 %s00 %s\n"},        /* long salt */
        {"slot passphrase argon2id13 1 8192 %s %.142s\n"},      /* short wrapped */
        {"slot passphrase argon2id13 1 8192 %s %s00\n"},        /* long wrapped */
        {"slot passphrase argon2id13 1 8192 %s %s extra\n"},
        {"slot passphrase argon2id13 1 8192 %s\n"},
        {"slot passphrase blake2b 1 8192 %s %s\n"},
        {"slot keyfile argon2id13 0 0 %s %s\n"},
        {"slot keyfile blake2b 1 8192 %s %s\n"},
        {"slot keyfile blake2b 0 1 %s %s\n"},
        {"slot keyfile blake2b 00 0 %s %s\n"},
        {"slot  passphrase argon2id13 1 8192 %s %s\n"},
        {"slot passphrase argon2id13 1 8192 %s %s \n"},
        {"slot passphrase argon2id13 1 8192 x%.31s %s\n"},
        {"slot passphrase argon2id13 1 8192 %s z%.143s\n"},
    };
    for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
        char **w = body_lines(&cfg, &n);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        snprintf(line, sizeof(line), slots[i].fmt, salt, wrapped);
#pragma GCC diagnostic pop
        free(w[n - 1]);
        w[n - 1] = strdup(line);
        body = join(w, n, (size_t)-1, NULL, 0);
        expect_body_corrupt(body);
        free(body);
        free_lines(w);
    }
    /* the same fields, well formed, are accepted (guards the test itself) */
    snprintf(line, sizeof(line), "slot passphrase argon2id13 1 8192 %s %s\n", salt, wrapped);
    free(v[n - 2]);
    v[n - 2] = strdup(line);
    body = join(v, n, (size_t)-1, NULL, 0);
    expect_body_ok(body);
    free(body);
    free_lines(v);
    master_key_free(mk);
}

/*
 * The magic line comes first: a setting line before it is "not a custodyfs vault
 * configuration".  Key slot lines are settings too.
 */
static void test_magic_line_first(void **state)
{
    struct vault_config cfg, parsed;
    struct master_key *mk = NULL;
    unsigned char keyfile[VAULTCFG_KEYFILE_SIZE];
    size_t n, first, len;
    char **v;
    char *body, *t, err[128];
    int accepted = 0;

    (void)state;
    make_vault(CIPHER_AES256GCM, &cfg, &mk, keyfile);
    master_key_free(mk);
    v = body_lines(&cfg, &n);
    for (first = 0; first < n && v[first][0] == '#'; first++)
        ;
    /* each setting moved before the magic line (counted, so that nothing leaks on failure) */
    for (size_t i = first + 1; i <= n; i++) {
        if (i < n)
            body = join(v, n, i, v[i], first);
        else
            body = join(v + n - 2, 2, (size_t)-1, NULL, 0); /* nothing but slot lines */
        t = with_checksum(body, strlen(body), &len);
        memset(err, 0, sizeof(err));
        int rc = parse_exact(t, len, &parsed, err, sizeof(err));
        if (rc == 0) {
            print_error("accepted with this line before the magic line: %.40s...\n",
                        i < n ? v[i] : "(slot lines only)");
            accepted++;
        } else if (rc != -VAULTCFG_ECORRUPT || err[0] == '\0') {
            accepted++;
        }
        free(t);
        free(body);
    }
    free_lines(v);
    assert_int_equal(accepted, 0);
}

/* ---- garbage ---- */

static void test_garbage(void **state)
{
    struct vault_config cfg, good;
    struct master_key *mk = NULL;
    unsigned char keyfile[VAULTCFG_KEYFILE_SIZE];
    char text[VAULTCFG_MAX_TEXT], err[256];
    size_t len;
    char *t, *big;
    int n;

    (void)state;
    /* empty */
    expect_corrupt("", 0);
    /* NUL bytes: alone, many, and inside a valid configuration */
    expect_corrupt("\0", 1);
    big = calloc(4096, 1);
    assert_non_null(big);
    expect_corrupt(big, 4096);
    free(big);
    make_vault(CIPHER_AES256GCM, &good, &mk, keyfile);
    n = format_ok(&good, text);
    for (int pos = 0; pos < n; pos += 7) {
        char saved = text[pos];
        text[pos] = '\0';
        expect_corrupt(text, (size_t)n);
        text[pos] = saved;
    }
    /* a NUL byte in the body, with a checksum that covers it */
    {
        char body[] = "custodyfs-vault 1\nvault-id \0\n";
        t = with_checksum(body, sizeof(body) - 1, &len);
        expect_corrupt(t, len);
        free(t);
    }
    /* random bytes of many lengths */
    for (int i = 0; i < 400; i++) {
        size_t l = randombytes_uniform(i < 200 ? 200 : 3000);
        char *r = malloc(l ? l : 1);
        assert_non_null(r);
        randombytes_buf(r, l);
        expect_corrupt(r, l);
        /* and the same bytes under a valid checksum, to reach the line parser */
        for (size_t j = 0; j < l; j++)
            if (r[j] == '\0')
                r[j] = ' ';
        if (l)
            r[l - 1] = '\n';
        t = with_checksum(r, l, &len);
        expect_corrupt(t, len);
        free(t);
        free(r);
    }
    /* very long lines: in the body (checksum valid), and as the whole text */
    static const size_t longs[] = {510, 511, 512, 513, 4000, 16000};
    for (size_t i = 0; i < sizeof(longs) / sizeof(longs[0]); i++) {
        char *body = malloc(longs[i] + 32);
        assert_non_null(body);
        strcpy(body, "custodyfs-vault 1\n");
        memset(body + 18, 'a', longs[i]);
        body[18 + longs[i]] = '\n';
        t = with_checksum(body, 19 + longs[i], &len);
        expect_corrupt(t, len);
        free(t);
        memcpy(body, "# ", 2);
        memset(body + 2, 'c', longs[i] + 16);
        body[longs[i] + 18] = '\n';
        t = with_checksum(body, 19 + longs[i], &len);
        expect_corrupt(t, len); /* a long comment line, then nothing */
        free(t);
        free(body);
    }
    /* a long comment line in an otherwise valid configuration */
    {
        size_t nl;
        char **v = body_lines(&good, &nl);
        char *longc = malloc(2000);
        assert_non_null(longc);
        longc[0] = '#';
        memset(longc + 1, 'x', 1000);
        longc[1001] = '\n';
        longc[1002] = '\0';
        char *body = join(v, nl, (size_t)-1, longc, 0);
        expect_body_corrupt(body); /* longer than a line may be */
        free(body);
        free(longc);
        free_lines(v);
    }
    /* 100 KB files: random, a repeated valid configuration, and text with a valid checksum */
    big = malloc(100 * 1024);
    assert_non_null(big);
    randombytes_buf(big, 100 * 1024);
    expect_corrupt(big, 100 * 1024);
    for (size_t off = 0; off + (size_t)n <= 100 * 1024; off += (size_t)n)
        memcpy(big + off, text, (size_t)n);
    expect_corrupt(big, 100 * 1024);
    memset(big, '#', 100 * 1024);
    for (size_t off = 99; off < 100 * 1024; off += 100)
        big[off] = '\n';
    t = with_checksum(big, 100 * 1024, &len);
    expect_corrupt(t, len);
    free(t);
    expect_corrupt(big, VAULTCFG_MAX_TEXT + 1);
    free(big);

    /* random mutations of a valid body, under a fresh checksum: never a crash; rejected or
     * accepted with a sane result */
    for (int i = 0; i < 2000; i++) {
        char body[VAULTCFG_MAX_TEXT];
        size_t bl = (size_t)n - 74;
        memcpy(body, text, bl);
        int edits = 1 + (int)randombytes_uniform(4);
        for (int e = 0; e < edits && bl > 2; e++) {
            size_t p = randombytes_uniform((uint32_t)bl);
            switch (randombytes_uniform(5)) {
            case 0: /* replace a byte */
                body[p] = " \n#0123456789abcdefslot"[randombytes_uniform(23)];
                break;
            case 1: /* delete a byte */
                memmove(body + p, body + p + 1, bl - p - 1);
                bl--;
                break;
            case 2: /* insert a byte */
                if (bl + 1 < sizeof(body)) {
                    memmove(body + p + 1, body + p, bl - p);
                    body[p] = " \n0a"[randombytes_uniform(4)];
                    bl++;
                }
                break;
            case 3: /* random byte */
                body[p] = (char)(1 + randombytes_uniform(255));
                break;
            default: /* duplicate a chunk */
                if (bl * 2 < sizeof(body)) {
                    size_t l2 = randombytes_uniform((uint32_t)(bl - p));
                    memmove(body + p + l2, body + p, bl - p);
                    bl += l2;
                }
                break;
            }
        }
        if (bl == 0 || body[bl - 1] != '\n')
            body[bl++] = '\n';
        t = with_checksum(body, bl, &len);
        memset(err, 0, sizeof(err));
        int rc = parse_exact(t, len, &cfg, err, sizeof(err));
        if (rc == 0) {
            assert_true(cfg.nslots >= 1 && cfg.nslots <= VAULTCFG_MAX_SLOTS);
            assert_int_equal(cfg.block_size, CONTENT_BLOCK_SIZE);
            assert_true(cfg.cipher == CIPHER_AES256GCM ||
                        cfg.cipher == CIPHER_XCHACHA20POLY1305);
        } else {
            assert_int_equal(rc, -VAULTCFG_ECORRUPT);
            assert_true(err[0] != '\0');
            assert_null(strchr(err, '\n'));
        }
        free(t);
    }

    /* small or no error buffers */
    assert_int_equal(vaultcfg_parse("x", 1, &cfg, NULL, 0), -VAULTCFG_ECORRUPT);
    err[0] = 'Z';
    err[1] = 'Z';
    assert_int_equal(vaultcfg_parse("x", 1, &cfg, err, 1), -VAULTCFG_ECORRUPT);
    assert_int_equal(err[0], '\0');
    assert_int_equal(err[1], 'Z');
    assert_int_equal(vaultcfg_parse("x", 1, &cfg, err, 5), -VAULTCFG_ECORRUPT);
    assert_int_equal(strlen(err), 4);
    /* a good text still parses with a tiny error buffer */
    assert_int_equal(vaultcfg_parse(text, (size_t)n, &cfg, err, 1), 0);
    master_key_free(mk);
}

/*
 * File format 2: the file-key line.  A configuration made with it formats a "file-key" line,
 * parses back as format 2, and opens the same root under the master key from any slot; one
 * without it is format 1 and has no root.  The wrapped root is authenticated with the vault ID
 * and cipher: altered, moved to another vault, or under another master key, it does not open.
 * Given twice, or malformed: corrupt.
 */
static void test_file_key(void **state)
{
    struct vault_config cfg, parsed, other;
    struct master_key *mk = NULL, *got = NULL, *omk = NULL;
    unsigned char kf[VAULTCFG_KEYFILE_SIZE], root[CONTENT_KEY_SIZE];
    char text[VAULTCFG_MAX_TEXT], err[128], *body, *line, *t;
    size_t len;
    int n;

    (void)state;
    make_vault(CIPHER_AES256GCM, &cfg, &mk, kf);
    assert_int_equal(cfg.file_format, 1);
    assert_null(mk->file_root);
    assert_int_equal(vaultcfg_layout(&cfg), CIPHER_AES256GCM);
    n = format_ok(&cfg, text);
    assert_null(strstr(text, "file-key"));
    assert_int_equal(parse_exact(text, (size_t)n, &parsed, err, sizeof(err)), 0);
    assert_int_equal(parsed.file_format, 1);
    assert_int_equal(vaultcfg_open_file_key(&parsed, mk), 0);
    assert_null(mk->file_root);

    assert_int_equal(vaultcfg_use_file_key(&cfg, mk), 0);
    assert_non_null(mk->file_root);
    memcpy(root, mk->file_root, sizeof(root));
    assert_int_equal(vaultcfg_layout(&cfg), CIPHER_AES256GCM | CONTENT_FORMAT2);
    n = format_ok(&cfg, text);
    line = strstr(text, "\nfile-key ");
    assert_non_null(line);
    assert_int_equal(strcspn(line + 10, "\n"), 2 * VAULTCFG_WRAPPED_SIZE);
    assert_int_equal(parse_exact(text, (size_t)n, &parsed, err, sizeof(err)), 0);
    assert_int_equal(parsed.file_format, 2);
    assert_memory_equal(parsed.file_key_wrapped, cfg.file_key_wrapped, VAULTCFG_WRAPPED_SIZE);
    assert_int_equal(vaultcfg_unlock(&parsed, SLOT_KEYFILE, kf, sizeof(kf), &got), 0);
    assert_null(got->file_root);
    assert_int_equal(vaultcfg_open_file_key(&parsed, got), 0);
    assert_non_null(got->file_root);
    assert_memory_equal(got->file_root, root, sizeof(root));
    master_key_free(got);

    /* altered: each byte of the wrapped root */
    for (size_t i = 0; i < VAULTCFG_WRAPPED_SIZE; i++) {
        struct master_key *m = NULL;
        other = parsed;
        other.file_key_wrapped[i] ^= 0x01;
        assert_int_equal(vaultcfg_unlock(&other, SLOT_KEYFILE, kf, sizeof(kf), &m), 0);
        assert_int_equal(vaultcfg_open_file_key(&other, m), -VAULTCFG_ECORRUPT);
        assert_null(m->file_root);
        master_key_free(m);
    }
    /* bound to the vault ID and the cipher */
    other = parsed;
    other.vault_id[0] ^= 1;
    assert_int_equal(vaultcfg_open_file_key(&other, mk), -VAULTCFG_ECORRUPT);
    other = parsed;
    other.cipher = CIPHER_XCHACHA20POLY1305;
    assert_int_equal(vaultcfg_open_file_key(&other, mk), -VAULTCFG_ECORRUPT);
    /* another master key */
    make_vault(CIPHER_AES256GCM, &other, &omk, kf);
    assert_int_equal(vaultcfg_open_file_key(&parsed, omk), -VAULTCFG_ECORRUPT);
    master_key_free(omk);

    /* given twice, or malformed */
    body = strndup(text, (size_t)(strstr(text, "\nchecksum ") + 1 - text));
    assert_non_null(body);
    line = strstr(body, "file-key ");
    {
        size_t blen = strlen(body), llen = strcspn(line, "\n") + 1;
        char *twice = malloc(blen + llen + 1);
        assert_non_null(twice);
        memcpy(twice, body, blen);
        memcpy(twice + blen, line, llen);
        twice[blen + llen] = '\0';
        t = with_checksum(twice, strlen(twice), &len);
        expect_corrupt(t, len);
        free(t);
        free(twice);
    }
    line[9] = 'x';
    t = with_checksum(body, strlen(body), &len);
    expect_corrupt(t, len);
    free(t);
    free(body);
    master_key_free(mk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_aes),
        cmocka_unit_test(test_roundtrip_xchacha),
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_key_epoch),
        cmocka_unit_test(test_wrong_secret),
        cmocka_unit_test(test_several_slots),
        cmocka_unit_test(test_max_slots),
        cmocka_unit_test(test_fields_authenticated),
        cmocka_unit_test(test_flip_every_byte),
        cmocka_unit_test(test_truncate_every_length),
        cmocka_unit_test(test_format_buffer_sizes),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_magic_line_first),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_file_key),
    };

    return cmocka_run_group_tests_name("vaultcfg", tests, group_setup, NULL);
}
