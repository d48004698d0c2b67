/*
 * Configuration text, version 1 (FORMAT.md, "Configuration"):
 *
 *   # comment lines (ignored, allowed before the checksum)
 *   custodyfs-vault 1
 *   vault-id <32 hex>
 *   cipher aes256gcm|xchacha20poly1305
 *   block-size 4096
 *   key-epoch <n>
 *   slot passphrase argon2id13 <opslimit> <memlimit> <salt: 32 hex> <wrapped: 144 hex>
 *   slot keyfile blake2b 0 0 <salt: 32 hex> <wrapped: 144 hex>
 *   signing-key <Ed25519 public key: 64 hex> <wrapped secret key: 208 hex>
 *   admin-group <gid>                  (optional: the role that administers every file)
 *   file-key <wrapped file-key root: 144 hex>   (file format 2; absent: format 1)
 *   checksum <BLAKE2b-256 of every byte before this line: 64 hex>
 *
 * Slot wrapping: XChaCha20-Poly1305, key = KDF(secret, salt), nonce = first 24 bytes of
 * "wrapped", associated data = slot_ad() below.
 */
#include "vaultcfg.h"

#include "secmem.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC_LINE "custodyfs-vault"
#define AD_DOMAIN "custodyfs-vault-v1"
#define KEYFILE_DOMAIN "custodyfs keyfile v1"
#define SIGNING_DOMAIN "custodyfs-signing-v1"
#define FILEKEY_DOMAIN "custodyfs-filekey-v2"
#define CHECKSUM_SIZE 32
#define MAX_FIELDS 8
#define WRAP_NONCE_SIZE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES

_Static_assert(VAULTCFG_WRAPPED_SIZE ==
                   WRAP_NONCE_SIZE + CONTENT_KEY_SIZE + crypto_aead_xchacha20poly1305_ietf_ABYTES,
               "wrapped slot size");
_Static_assert(VAULTCFG_SALT_SIZE == crypto_pwhash_SALTBYTES, "Argon2 salt");

void master_key_free(struct master_key *mk)
{
    if (mk == NULL)
        return;
    secmem_free(mk->bytes);
    secmem_free(mk->file_root);
    free(mk);
}

static struct master_key *master_key_alloc(uint32_t epoch)
{
    struct master_key *mk = calloc(1, sizeof(*mk));

    if (mk == NULL)
        return NULL;
    mk->bytes = secmem_alloc(CONTENT_KEY_SIZE);
    if (mk->bytes == NULL) {
        free(mk);
        return NULL;
    }
    mk->epoch = epoch;
    return mk;
}

static const char *slot_kind_name(enum slot_kind k)
{
    return k == SLOT_PASSPHRASE ? "passphrase" : "keyfile";
}

static const char *slot_kdf_name(enum slot_kind k)
{
    return k == SLOT_PASSPHRASE ? "argon2id13" : "blake2b";
}

/* ---- parsing ---- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Decode exactly `n` bytes from a hex field of exactly 2n characters. */
static int hex_field(const char *s, unsigned char *out, size_t n)
{
    size_t bin_len;

    if (strlen(s) != 2 * n)
        return -1;
    if (sodium_hex2bin(out, n, s, 2 * n, NULL, &bin_len, NULL) != 0 || bin_len != n)
        return -1;
    return 0;
}

static int uint_field(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;

    if (s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1] != '\0'))
        return -1;
    errno = 0;
    *out = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || *out > max)
        return -1;
    return 0;
}

/* Split `line` (modified in place) on single spaces into at most MAX_FIELDS fields. */
static int split_fields(char *line, char *f[MAX_FIELDS])
{
    int n = 0;
    char *p = line;

    while (*p != '\0') {
        if (n == MAX_FIELDS)
            return -1;
        f[n++] = p;
        p = strchr(p, ' ');
        if (p == NULL)
            break;
        *p++ = '\0';
        if (*p == '\0' || *p == ' ')
            return -1;
    }
    return n;
}

static int parse_slot(char **f, int n, struct vault_config *cfg, char *err, size_t errlen)
{
    struct key_slot *s;
    unsigned long long ops, mem;

    if (n != 7) {
        set_err(err, errlen, "key slot line has %d fields, expected 7", n);
        return -1;
    }
    if (cfg->nslots == VAULTCFG_MAX_SLOTS) {
        set_err(err, errlen, "more than %d key slots", VAULTCFG_MAX_SLOTS);
        return -1;
    }
    s = &cfg->slots[cfg->nslots];
    if (strcmp(f[1], "passphrase") == 0 && strcmp(f[2], "argon2id13") == 0)
        s->kind = SLOT_PASSPHRASE;
    else if (strcmp(f[1], "keyfile") == 0 && strcmp(f[2], "blake2b") == 0)
        s->kind = SLOT_KEYFILE;
    else {
        set_err(err, errlen, "unknown key slot kind '%.32s %.32s'", f[1], f[2]);
        return -1;
    }
    if (uint_field(f[3], crypto_pwhash_OPSLIMIT_MAX, &ops) != 0 ||
        uint_field(f[4], SIZE_MAX, &mem) != 0 ||
        (s->kind == SLOT_PASSPHRASE &&
         (ops < crypto_pwhash_OPSLIMIT_MIN || mem < crypto_pwhash_MEMLIMIT_MIN ||
          mem > crypto_pwhash_MEMLIMIT_MAX)) ||
        (s->kind == SLOT_KEYFILE && (ops != 0 || mem != 0))) {
        set_err(err, errlen, "key slot %u has invalid KDF costs", cfg->nslots);
        return -1;
    }
    s->opslimit = ops;
    s->memlimit = (size_t)mem;
    if (hex_field(f[5], s->salt, sizeof(s->salt)) != 0 ||
        hex_field(f[6], s->wrapped, sizeof(s->wrapped)) != 0) {
        set_err(err, errlen, "key slot %u has a malformed salt or wrapped key", cfg->nslots);
        return -1;
    }
    cfg->nslots++;
    return 0;
}

/* Which of the single-valued lines have been seen. */
enum { SEEN_MAGIC = 1, SEEN_ID = 2, SEEN_CIPHER = 4, SEEN_BS = 8, SEEN_EPOCH = 16,
       SEEN_SIGNING = 32, SEEN_ALL = 63, SEEN_ADMIN = 64, SEEN_FILEKEY = 128 };

static int parse_signing(char **f, int n, struct vault_config *cfg, unsigned *seen, char *err,
                         size_t errlen)
{
    if (n != 3 || hex_field(f[1], cfg->sign_pk, sizeof(cfg->sign_pk)) != 0 ||
        hex_field(f[2], cfg->sign_wrapped, sizeof(cfg->sign_wrapped)) != 0) {
        set_err(err, errlen, "malformed signing-key line");
        return -1;
    }
    if (*seen & SEEN_SIGNING) {
        set_err(err, errlen, "setting 'signing-key' given twice");
        return -1;
    }
    *seen |= SEEN_SIGNING;
    return 0;
}

static int parse_line(char *line, struct vault_config *cfg, unsigned *seen, char *err,
                      size_t errlen)
{
    char *f[MAX_FIELDS];
    unsigned long long v;
    int n = split_fields(line, f);
    unsigned bit = 0;

    if (n <= 0) {
        set_err(err, errlen, "malformed line");
        return -1;
    }
    if (*seen == 0 && strcmp(f[0], MAGIC_LINE) != 0) {
        set_err(err, errlen, "not a custodyfs vault configuration");
        return -1;
    }
    if (strcmp(f[0], "slot") == 0)
        return parse_slot(f, n, cfg, err, errlen);
    if (strcmp(f[0], "signing-key") == 0)
        return parse_signing(f, n, cfg, seen, err, errlen);
    if (n != 2) {
        set_err(err, errlen, "line '%.32s' has %d fields, expected 2", f[0], n);
        return -1;
    }
    if (strcmp(f[0], MAGIC_LINE) == 0) {
        bit = SEEN_MAGIC;
        if (uint_field(f[1], 1000, &v) != 0 || v != VAULTCFG_FORMAT) {
            set_err(err, errlen, "unsupported configuration format '%.16s'", f[1]);
            return -1;
        }
        cfg->format = (unsigned)v;
    } else if (strcmp(f[0], "vault-id") == 0) {
        bit = SEEN_ID;
        if (hex_field(f[1], cfg->vault_id, sizeof(cfg->vault_id)) != 0) {
            set_err(err, errlen, "malformed vault-id");
            return -1;
        }
    } else if (strcmp(f[0], "cipher") == 0) {
        bit = SEEN_CIPHER;
        cfg->cipher = content_cipher_from_name(f[1]);
        if (cfg->cipher == 0) {
            set_err(err, errlen, "unknown cipher '%.32s'", f[1]);
            return -1;
        }
    } else if (strcmp(f[0], "block-size") == 0) {
        bit = SEEN_BS;
        if (uint_field(f[1], UINT32_MAX, &v) != 0 || v != CONTENT_BLOCK_SIZE) {
            set_err(err, errlen, "unsupported block-size '%.16s'", f[1]);
            return -1;
        }
        cfg->block_size = (unsigned)v;
    } else if (strcmp(f[0], "admin-group") == 0) {
        bit = SEEN_ADMIN;
        if (uint_field(f[1], UINT32_MAX - 1, &v) != 0) {
            set_err(err, errlen, "malformed admin-group");
            return -1;
        }
        cfg->admin_gid = (int64_t)v;
    } else if (strcmp(f[0], "file-key") == 0) {
        bit = SEEN_FILEKEY;
        if (hex_field(f[1], cfg->file_key_wrapped, sizeof(cfg->file_key_wrapped)) != 0) {
            set_err(err, errlen, "malformed file-key");
            return -1;
        }
        cfg->file_format = 2;
    } else if (strcmp(f[0], "key-epoch") == 0) {
        bit = SEEN_EPOCH;
        if (uint_field(f[1], UINT32_MAX, &v) != 0) {
            set_err(err, errlen, "malformed key-epoch");
            return -1;
        }
        cfg->key_epoch = (uint32_t)v;
    } else {
        set_err(err, errlen, "unknown setting '%.32s'", f[0]);
        return -1;
    }
    if (*seen & bit) {
        set_err(err, errlen, "setting '%.32s' given twice", f[0]);
        return -1;
    }
    *seen |= bit;
    return 0;
}

/* Check the final "checksum" line; OUT: *body_len, the bytes it covers. */
static int check_checksum(const char *text, size_t len, size_t *body_len, char *err,
                          size_t errlen)
{
    static const char prefix[] = "checksum ";
    const size_t line_len = sizeof(prefix) - 1 + 2 * CHECKSUM_SIZE + 1;
    unsigned char want[CHECKSUM_SIZE], have[CHECKSUM_SIZE];
    char hex[2 * CHECKSUM_SIZE + 1];

    if (len < line_len || text[len - 1] != '\n' ||
        (len > line_len && text[len - line_len - 1] != '\n') ||
        memcmp(text + len - line_len, prefix, sizeof(prefix) - 1) != 0) {
        set_err(err, errlen, "the checksum line is missing (file truncated?)");
        return -1;
    }
    memcpy(hex, text + len - line_len + sizeof(prefix) - 1, 2 * CHECKSUM_SIZE);
    hex[2 * CHECKSUM_SIZE] = '\0';
    *body_len = len - line_len;
    if (hex_field(hex, want, sizeof(want)) != 0) {
        set_err(err, errlen, "malformed checksum line");
        return -1;
    }
    crypto_generichash(have, sizeof(have), (const unsigned char *)text, *body_len, NULL, 0);
    if (sodium_memcmp(have, want, sizeof(have)) != 0) {
        set_err(err, errlen, "checksum mismatch: the file was altered or damaged");
        return -1;
    }
    return 0;
}

int vaultcfg_parse(const char *text, size_t len, struct vault_config *cfg, char *err,
                   size_t errlen)
{
    char line[512];
    size_t body_len, pos = 0;
    unsigned seen = 0;

    memset(cfg, 0, sizeof(*cfg));
    cfg->admin_gid = -1;
    cfg->file_format = 1;
    set_err(err, errlen, "no error");
    if (len > VAULTCFG_MAX_TEXT) {
        set_err(err, errlen, "configuration larger than %d bytes", VAULTCFG_MAX_TEXT);
        return -VAULTCFG_ECORRUPT;
    }
    if (memchr(text, '\0', len) != NULL) {
        set_err(err, errlen, "configuration holds NUL bytes");
        return -VAULTCFG_ECORRUPT;
    }
    if (check_checksum(text, len, &body_len, err, errlen) != 0)
        return -VAULTCFG_ECORRUPT;
    while (pos < body_len) {
        const char *nl = memchr(text + pos, '\n', body_len - pos);
        size_t n = (size_t)(nl - (text + pos)); /* body ends with '\n': nl is never NULL */

        if (n >= sizeof(line)) {
            set_err(err, errlen, "line too long");
            return -VAULTCFG_ECORRUPT;
        }
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos += n + 1;
        if (line[0] == '#')
            continue;
        if (parse_line(line, cfg, &seen, err, errlen) != 0)
            return -VAULTCFG_ECORRUPT;
    }
    if ((seen & SEEN_ALL) != SEEN_ALL) {
        set_err(err, errlen, "a required setting is missing");
        return -VAULTCFG_ECORRUPT;
    }
    if (cfg->nslots == 0) {
        set_err(err, errlen, "no key slots");
        return -VAULTCFG_ECORRUPT;
    }
    return 0;
}

/* ---- producing ---- */

static int appendf(char *buf, size_t buflen, size_t *pos, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf + *pos, buflen - *pos, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= buflen - *pos)
        return -1;
    *pos += (size_t)n;
    return 0;
}

int vaultcfg_format(const struct vault_config *cfg, char *buf, size_t buflen)
{
    char id[2 * VAULTCFG_ID_SIZE + 1], salt[2 * VAULTCFG_SALT_SIZE + 1];
    char wrapped[2 * VAULTCFG_WRAPPED_SIZE + 1], sum_hex[2 * CHECKSUM_SIZE + 1];
    char spk[2 * VAULTCFG_SIGN_PK_SIZE + 1], swrapped[2 * VAULTCFG_SIGN_WRAPPED_SIZE + 1];
    unsigned char sum[CHECKSUM_SIZE];
    size_t pos = 0;
    int bad;

    if (buflen == 0)
        return -VAULTCFG_ERANGE;
    sodium_bin2hex(id, sizeof(id), cfg->vault_id, sizeof(cfg->vault_id));
    bad = appendf(buf, buflen, &pos,
                  "# custodyfs vault configuration. Do not edit: a checksum and the key slots\n"
                  "# protect every line. Keep a copy of this file with your key backups.\n"
                  MAGIC_LINE " %u\nvault-id %s\ncipher %s\nblock-size %u\nkey-epoch %" PRIu32
                  "\n",
                  cfg->format, id, content_cipher_name(cfg->cipher), cfg->block_size,
                  cfg->key_epoch);
    for (unsigned i = 0; i < cfg->nslots && !bad; i++) {
        const struct key_slot *s = &cfg->slots[i];
        sodium_bin2hex(salt, sizeof(salt), s->salt, sizeof(s->salt));
        sodium_bin2hex(wrapped, sizeof(wrapped), s->wrapped, sizeof(s->wrapped));
        bad = appendf(buf, buflen, &pos, "slot %s %s %llu %zu %s %s\n", slot_kind_name(s->kind),
                      slot_kdf_name(s->kind), s->opslimit, s->memlimit, salt, wrapped);
    }
    sodium_bin2hex(spk, sizeof(spk), cfg->sign_pk, sizeof(cfg->sign_pk));
    sodium_bin2hex(swrapped, sizeof(swrapped), cfg->sign_wrapped, sizeof(cfg->sign_wrapped));
    if (!bad)
        bad = appendf(buf, buflen, &pos, "signing-key %s %s\n", spk, swrapped);
    if (!bad && cfg->admin_gid >= 0)
        bad = appendf(buf, buflen, &pos, "admin-group %lld\n", (long long)cfg->admin_gid);
    if (!bad && cfg->file_format == 2) {
        sodium_bin2hex(wrapped, sizeof(wrapped), cfg->file_key_wrapped,
                       sizeof(cfg->file_key_wrapped));
        bad = appendf(buf, buflen, &pos, "file-key %s\n", wrapped);
    }
    if (bad)
        return -VAULTCFG_ERANGE;
    crypto_generichash(sum, sizeof(sum), (const unsigned char *)buf, pos, NULL, 0);
    sodium_bin2hex(sum_hex, sizeof(sum_hex), sum, sizeof(sum));
    if (appendf(buf, buflen, &pos, "checksum %s\n", sum_hex) != 0)
        return -VAULTCFG_ERANGE;
    return (int)pos;
}

/* ---- key slots ---- */

#define SLOT_AD_SIZE (sizeof(AD_DOMAIN) + VAULTCFG_ID_SIZE + 1 + 4 + 4 + 1 + 8 + 8 + \
                      VAULTCFG_SALT_SIZE)

static void put_le(unsigned char *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void slot_ad(const struct vault_config *cfg, const struct key_slot *s,
                    unsigned char ad[SLOT_AD_SIZE])
{
    unsigned char *p = ad;

    memcpy(p, AD_DOMAIN, sizeof(AD_DOMAIN));
    p += sizeof(AD_DOMAIN);
    memcpy(p, cfg->vault_id, VAULTCFG_ID_SIZE);
    p += VAULTCFG_ID_SIZE;
    *p++ = (unsigned char)cfg->cipher;
    put_le(p, cfg->block_size, 4);
    p += 4;
    put_le(p, cfg->key_epoch, 4);
    p += 4;
    *p++ = (unsigned char)s->kind;
    put_le(p, s->opslimit, 8);
    p += 8;
    put_le(p, s->memlimit, 8);
    p += 8;
    memcpy(p, s->salt, VAULTCFG_SALT_SIZE);
}

/* Derive the slot's wrapping key into guarded `out`.  Returns 0 or -VAULTCFG_ENOMEM. */
static int slot_kdf(const struct key_slot *s, const unsigned char *secret, size_t secret_len,
                    unsigned char *out)
{
    crypto_generichash_state st;

    if (s->kind == SLOT_PASSPHRASE)
        return crypto_pwhash(out, CONTENT_KEY_SIZE, (const char *)secret, secret_len, s->salt,
                             s->opslimit, s->memlimit, crypto_pwhash_ALG_ARGON2ID13) == 0
                   ? 0
                   : -VAULTCFG_ENOMEM;
    crypto_generichash_init(&st, s->salt, VAULTCFG_SALT_SIZE, CONTENT_KEY_SIZE);
    crypto_generichash_update(&st, (const unsigned char *)KEYFILE_DOMAIN, sizeof(KEYFILE_DOMAIN));
    crypto_generichash_update(&st, secret, secret_len);
    crypto_generichash_final(&st, out, CONTENT_KEY_SIZE);
    sodium_memzero(&st, sizeof(st));
    return 0;
}

#define SIGN_AD_SIZE (sizeof(SIGNING_DOMAIN) + VAULTCFG_ID_SIZE + VAULTCFG_SIGN_PK_SIZE)

static void signing_ad(const struct vault_config *cfg, unsigned char ad[SIGN_AD_SIZE])
{
    memcpy(ad, SIGNING_DOMAIN, sizeof(SIGNING_DOMAIN));
    memcpy(ad + sizeof(SIGNING_DOMAIN), cfg->vault_id, VAULTCFG_ID_SIZE);
    memcpy(ad + sizeof(SIGNING_DOMAIN) + VAULTCFG_ID_SIZE, cfg->sign_pk, VAULTCFG_SIGN_PK_SIZE);
}

/* Make the audit signing key pair and wrap its secret half under mk. */
static int make_signing_key(struct vault_config *cfg, const struct master_key *mk)
{
    unsigned char ad[SIGN_AD_SIZE];
    unsigned char *sk = secmem_alloc(VAULTCFG_SIGN_SK_SIZE);

    if (sk == NULL)
        return -VAULTCFG_ENOMEM;
    crypto_sign_keypair(cfg->sign_pk, sk);
    signing_ad(cfg, ad);
    randombytes_buf(cfg->sign_wrapped, WRAP_NONCE_SIZE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(cfg->sign_wrapped + WRAP_NONCE_SIZE, NULL, sk,
                                               VAULTCFG_SIGN_SK_SIZE, ad, sizeof(ad), NULL,
                                               cfg->sign_wrapped, mk->bytes);
    secmem_free(sk);
    return 0;
}

int vaultcfg_signing_key(const struct vault_config *cfg, const struct master_key *mk,
                         unsigned char *sk)
{
    unsigned char ad[SIGN_AD_SIZE], pk[VAULTCFG_SIGN_PK_SIZE];

    signing_ad(cfg, ad);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            sk, NULL, NULL, cfg->sign_wrapped + WRAP_NONCE_SIZE,
            VAULTCFG_SIGN_WRAPPED_SIZE - WRAP_NONCE_SIZE, ad, sizeof(ad), cfg->sign_wrapped,
            mk->bytes) != 0)
        return -VAULTCFG_ECORRUPT;
    crypto_sign_ed25519_sk_to_pk(pk, sk);
    if (sodium_memcmp(pk, cfg->sign_pk, sizeof(pk)) != 0) {
        sodium_memzero(sk, VAULTCFG_SIGN_SK_SIZE);
        return -VAULTCFG_ECORRUPT;
    }
    return 0;
}

#define FILEKEY_AD_SIZE (sizeof(FILEKEY_DOMAIN) + VAULTCFG_ID_SIZE + 1)

static void filekey_ad(const struct vault_config *cfg, unsigned char ad[FILEKEY_AD_SIZE])
{
    memcpy(ad, FILEKEY_DOMAIN, sizeof(FILEKEY_DOMAIN));
    memcpy(ad + sizeof(FILEKEY_DOMAIN), cfg->vault_id, VAULTCFG_ID_SIZE);
    ad[sizeof(FILEKEY_DOMAIN) + VAULTCFG_ID_SIZE] = (unsigned char)cfg->cipher;
}

/* Give mk guarded room for a file-key root.  Returns 0 or -VAULTCFG_ENOMEM. */
static int file_root_room(struct master_key *mk)
{
    if (mk->file_root == NULL && (mk->file_root = secmem_alloc(CONTENT_KEY_SIZE)) == NULL)
        return -VAULTCFG_ENOMEM;
    return 0;
}

int vaultcfg_use_file_key(struct vault_config *cfg, struct master_key *mk)
{
    unsigned char ad[FILEKEY_AD_SIZE];

    if (file_root_room(mk) != 0)
        return -VAULTCFG_ENOMEM;
    randombytes_buf(mk->file_root, CONTENT_KEY_SIZE);
    filekey_ad(cfg, ad);
    randombytes_buf(cfg->file_key_wrapped, WRAP_NONCE_SIZE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(cfg->file_key_wrapped + WRAP_NONCE_SIZE, NULL,
                                               mk->file_root, CONTENT_KEY_SIZE, ad, sizeof(ad),
                                               NULL, cfg->file_key_wrapped, mk->bytes);
    cfg->file_format = 2;
    return 0;
}

int vaultcfg_open_file_key(const struct vault_config *cfg, struct master_key *mk)
{
    unsigned char ad[FILEKEY_AD_SIZE];

    if (cfg->file_format != 2)
        return 0;
    if (file_root_room(mk) != 0)
        return -VAULTCFG_ENOMEM;
    filekey_ad(cfg, ad);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            mk->file_root, NULL, NULL, cfg->file_key_wrapped + WRAP_NONCE_SIZE,
            VAULTCFG_WRAPPED_SIZE - WRAP_NONCE_SIZE, ad, sizeof(ad), cfg->file_key_wrapped,
            mk->bytes) != 0) {
        secmem_free(mk->file_root);
        mk->file_root = NULL;
        return -VAULTCFG_ECORRUPT;
    }
    return 0;
}

unsigned vaultcfg_layout(const struct vault_config *cfg)
{
    return cfg->cipher | (cfg->file_format == 2 ? CONTENT_FORMAT2 : 0);
}

int vaultcfg_create(struct vault_config *cfg, unsigned cipher, struct master_key **mk)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->admin_gid = -1;
    cfg->file_format = 1;
    cfg->format = VAULTCFG_FORMAT;
    cfg->cipher = cipher;
    cfg->block_size = CONTENT_BLOCK_SIZE;
    cfg->key_epoch = 1;
    randombytes_buf(cfg->vault_id, sizeof(cfg->vault_id));
    *mk = master_key_alloc(cfg->key_epoch);
    if (*mk == NULL)
        return -VAULTCFG_ENOMEM;
    randombytes_buf((*mk)->bytes, CONTENT_KEY_SIZE);
    if (make_signing_key(cfg, *mk) != 0) {
        master_key_free(*mk);
        *mk = NULL;
        return -VAULTCFG_ENOMEM;
    }
    return 0;
}

int vaultcfg_add_slot(struct vault_config *cfg, const struct master_key *mk, enum slot_kind kind,
                      const unsigned char *secret, size_t secret_len,
                      unsigned long long opslimit, size_t memlimit)
{
    unsigned char ad[SLOT_AD_SIZE];
    struct key_slot *s;
    unsigned char *wk;
    int rc;

    if (cfg->nslots == VAULTCFG_MAX_SLOTS)
        return -VAULTCFG_EFULL;
    s = &cfg->slots[cfg->nslots];
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    s->opslimit = kind == SLOT_PASSPHRASE ? opslimit : 0;
    s->memlimit = kind == SLOT_PASSPHRASE ? memlimit : 0;
    randombytes_buf(s->salt, sizeof(s->salt));
    wk = secmem_alloc(CONTENT_KEY_SIZE);
    if (wk == NULL)
        return -VAULTCFG_ENOMEM;
    rc = slot_kdf(s, secret, secret_len, wk);
    if (rc == 0) {
        slot_ad(cfg, s, ad);
        randombytes_buf(s->wrapped, WRAP_NONCE_SIZE);
        crypto_aead_xchacha20poly1305_ietf_encrypt(s->wrapped + WRAP_NONCE_SIZE, NULL,
                                                   mk->bytes, CONTENT_KEY_SIZE, ad, sizeof(ad),
                                                   NULL, s->wrapped, wk);
        cfg->nslots++;
    }
    secmem_free(wk);
    return rc;
}

int vaultcfg_unlock(const struct vault_config *cfg, enum slot_kind kind,
                    const unsigned char *secret, size_t secret_len, struct master_key **mk)
{
    unsigned char ad[SLOT_AD_SIZE];
    unsigned char *wk = secmem_alloc(CONTENT_KEY_SIZE);
    int rc = -VAULTCFG_EWRONGKEY;

    *mk = master_key_alloc(cfg->key_epoch);
    if (wk == NULL || *mk == NULL) {
        rc = -VAULTCFG_ENOMEM;
        goto out;
    }
    for (unsigned i = 0; i < cfg->nslots && rc == -VAULTCFG_EWRONGKEY; i++) {
        const struct key_slot *s = &cfg->slots[i];
        if (s->kind != kind)
            continue;
        if (slot_kdf(s, secret, secret_len, wk) != 0) {
            rc = -VAULTCFG_ENOMEM;
            break;
        }
        slot_ad(cfg, s, ad);
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(
                (*mk)->bytes, NULL, NULL, s->wrapped + WRAP_NONCE_SIZE,
                VAULTCFG_WRAPPED_SIZE - WRAP_NONCE_SIZE, ad, sizeof(ad), s->wrapped, wk) == 0)
            rc = 0;
    }
out:
    secmem_free(wk);
    if (rc != 0) {
        master_key_free(*mk);
        *mk = NULL;
    }
    return rc;
}
