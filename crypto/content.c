/*
 * Header layout (all integers little-endian; see FORMAT.md):
 *
 *   off len  field
 *     0   8  magic "CUSTDYF\0"
 *     8   2  format version (1)
 *    10   1  cipher of the blocks (1 AES-256-GCM, 2 XChaCha20-Poly1305)
 *    11   1  log2 of the plaintext block size (12)
 *    12   4  flags (CONTENT_FLAG_*)
 *    16  16  file ID (random)
 *    32   8  generation counter (reserved: 0 in version 1)
 *    40   8  plaintext size (reserved: 0 in version 1)
 *    48   4  master key epoch that wraps the data key
 *    52   4  reserved (0)
 *    56  24  wrapping nonce (random)
 *    80  48  data key (32) sealed with XChaCha20-Poly1305 under the master key, tag (16);
 *            associated data: bytes 0..55
 *   128      end
 *
 * Format 2 (40 bytes):
 *
 *     0   4  magic "CST2"
 *     4   1  cipher of the blocks
 *     5   1  flags (CONTENT_FLAG_*)
 *     6   2  reserved (0)
 *     8  16  file ID (random)
 *    24  16  tag: BLAKE2b-128 over bytes 0..23, keyed with the file's MAC key
 *    40      end
 *
 *   data key (32) | MAC key (32) = BLAKE2b-512(key = file-key root, empty message,
 *                                              salt = file ID, personal = "custodyfs-file-2")
 *
 * Block associated data: file ID (16) | block index (8, little-endian).
 */
#include "content.h"

#include "secmem.h"

#include <assert.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>

#define HDR_MAGIC "CUSTDYF"          /* 7 chars + NUL = 8 bytes */
#define HDR_MAGIC_SIZE 8
#define HDR_OFF_VERSION 8
#define HDR_OFF_CIPHER 10
#define HDR_OFF_BSHIFT 11
#define HDR_OFF_FLAGS 12
#define HDR_OFF_FILE_ID 16
#define HDR_OFF_GENERATION 32
#define HDR_OFF_PLAIN_SIZE 40
#define HDR_OFF_EPOCH 48
#define HDR_OFF_RESERVED 52
#define HDR_AD_SIZE 56
#define HDR_OFF_NONCE HDR_AD_SIZE
#define HDR_WRAP_NONCE_SIZE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define HDR_OFF_WRAPPED (HDR_OFF_NONCE + HDR_WRAP_NONCE_SIZE)
#define HDR_WRAPPED_SIZE (CONTENT_KEY_SIZE + crypto_aead_xchacha20poly1305_ietf_ABYTES)
#define BLOCK_AD_SIZE (CONTENT_FILE_ID_SIZE + 8)

#define V2_MAGIC "CST2"
#define V2_MAGIC_SIZE 4
#define V2_OFF_CIPHER 4
#define V2_OFF_FLAGS 5
#define V2_OFF_RESERVED 6
#define V2_OFF_FILE_ID 8
#define V2_OFF_TAG 24
#define V2_TAG_SIZE 16
#define V2_PERSONAL "custodyfs-file-2"

_Static_assert(HDR_OFF_WRAPPED + HDR_WRAPPED_SIZE == CONTENT_HEADER_SIZE, "header layout");
_Static_assert(sizeof(HDR_MAGIC) == HDR_MAGIC_SIZE, "magic size");
_Static_assert(V2_OFF_TAG + V2_TAG_SIZE == CONTENT_HEADER_V2_SIZE, "format-2 header layout");
_Static_assert(sizeof(V2_PERSONAL) - 1 == crypto_generichash_blake2b_PERSONALBYTES, "personal");
_Static_assert(CONTENT_FILE_ID_SIZE == crypto_generichash_blake2b_SALTBYTES, "file ID as salt");
_Static_assert(CONTENT_TAG_SIZE == crypto_aead_aes256gcm_ABYTES, "GCM tag");
_Static_assert(CONTENT_TAG_SIZE == crypto_aead_xchacha20poly1305_ietf_ABYTES, "Poly1305 tag");
_Static_assert(CONTENT_MAX_NONCE_SIZE == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce");
_Static_assert(CONTENT_KEY_SIZE == crypto_aead_aes256gcm_KEYBYTES, "AES key");
_Static_assert(CONTENT_KEY_SIZE == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "XChaCha key");

/* Lives in one guarded slab slot.  The AES state must be 16-aligned: it comes first. */
struct content_file {
    crypto_aead_aes256gcm_state aes;          /* expanded key (AES-256-GCM only) */
    unsigned char key[CONTENT_KEY_SIZE];      /* raw data key */
    unsigned char id[CONTENT_FILE_ID_SIZE];
    uint64_t generation;
    uint32_t flags;
    uint32_t epoch;
    unsigned cipher;
    unsigned format;                          /* 1 or 2 */
};
_Static_assert(sizeof(struct content_file) <= SECMEM_SLOT_SIZE, "content_file fits a slot");

static void put_le(unsigned char *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

int content_cipher_aes_available(void)
{
    return crypto_aead_aes256gcm_is_available();
}

enum content_cipher content_cipher_default(void)
{
    return content_cipher_aes_available() ? CIPHER_AES256GCM : CIPHER_XCHACHA20POLY1305;
}

const char *content_cipher_name(unsigned cipher)
{
    switch (cipher) {
    case CIPHER_AES256GCM: return "aes256gcm";
    case CIPHER_XCHACHA20POLY1305: return "xchacha20poly1305";
    default: return NULL;
    }
}

unsigned content_cipher_from_name(const char *name)
{
    if (strcmp(name, "aes256gcm") == 0)
        return CIPHER_AES256GCM;
    if (strcmp(name, "xchacha20poly1305") == 0)
        return CIPHER_XCHACHA20POLY1305;
    return 0;
}

size_t content_nonce_size(unsigned cipher)
{
    switch (CONTENT_LAYOUT_CIPHER(cipher)) {
    case CIPHER_AES256GCM: return crypto_aead_aes256gcm_NPUBBYTES;
    case CIPHER_XCHACHA20POLY1305: return crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    default: return 0;
    }
}

size_t content_block_overhead(unsigned cipher)
{
    return content_nonce_size(cipher) + CONTENT_TAG_SIZE;
}

size_t content_header_size(unsigned layout)
{
    return (layout & CONTENT_FORMAT2) ? CONTENT_HEADER_V2_SIZE : CONTENT_HEADER_SIZE;
}

uint64_t content_block_offset(unsigned layout, uint64_t blockno)
{
    return content_header_size(layout) +
           blockno * (CONTENT_BLOCK_SIZE + content_block_overhead(layout));
}

uint64_t content_cipher_size(unsigned layout, uint64_t plain_size)
{
    uint64_t blocks = (plain_size + CONTENT_BLOCK_SIZE - 1) >> CONTENT_BLOCK_SHIFT;

    return content_header_size(layout) + plain_size + blocks * content_block_overhead(layout);
}

uint64_t content_plain_size(unsigned layout, uint64_t cipher_size, int *valid)
{
    uint64_t over = content_block_overhead(layout), stored = CONTENT_BLOCK_SIZE + over;
    uint64_t hsize = content_header_size(layout), payload, full, rest;

    *valid = 1;
    if (cipher_size == 0)
        return 0;
    if (cipher_size < hsize) {
        *valid = 0;
        return 0;
    }
    payload = cipher_size - hsize;
    full = payload / stored;
    rest = payload % stored;
    if (rest == 0)
        return full << CONTENT_BLOCK_SHIFT;
    if (rest <= over) {
        *valid = 0;
        return full << CONTENT_BLOCK_SHIFT;
    }
    return (full << CONTENT_BLOCK_SHIFT) + rest - over;
}

/* Allocate a zeroed content_file and expand `key` into it. */
static int file_alloc(unsigned layout, const unsigned char *key, struct content_file **out)
{
    unsigned cipher = CONTENT_LAYOUT_CIPHER(layout);
    struct content_file *f;

    *out = NULL;
    if (content_nonce_size(cipher) == 0 || (layout & ~(CONTENT_FORMAT2 | 0xffu)) != 0)
        return -CONTENT_EINVAL;
    f = secmem_slot_get();
    if (f == NULL)
        return -CONTENT_ENOMEM;
    f->cipher = cipher;
    f->format = (layout & CONTENT_FORMAT2) ? 2 : 1;
    memcpy(f->key, key, CONTENT_KEY_SIZE);
    if (cipher == CIPHER_AES256GCM)
        crypto_aead_aes256gcm_beforenm(&f->aes, f->key);
    *out = f;
    return 0;
}

void content_file_free(struct content_file *f)
{
    secmem_slot_put(f);
}

const unsigned char *content_file_id(const struct content_file *f)
{
    return f->id;
}

uint32_t content_file_flags(const struct content_file *f)
{
    return f->flags;
}

void content_file_set_flags(struct content_file *f, uint32_t flags)
{
    assert((flags & ~CONTENT_FLAGS_KNOWN) == 0);
    f->flags = flags;
}

unsigned content_file_cipher(const struct content_file *f)
{
    return f->cipher;
}

int content_file_new_with_key(unsigned cipher, const unsigned char id[CONTENT_FILE_ID_SIZE],
                              const unsigned char key[CONTENT_KEY_SIZE],
                              struct content_file **out)
{
    int rc = file_alloc(cipher, key, out);

    if (rc == 0)
        memcpy((*out)->id, id, CONTENT_FILE_ID_SIZE);
    return rc;
}

/* Encode the clear part (bytes 0..55) of f's header. */
static void header_encode_clear(const struct content_file *f, uint32_t epoch,
                                unsigned char hdr[CONTENT_HEADER_SIZE])
{
    memset(hdr, 0, CONTENT_HEADER_SIZE);
    memcpy(hdr, HDR_MAGIC, HDR_MAGIC_SIZE);
    put_le(hdr + HDR_OFF_VERSION, CONTENT_FORMAT_VERSION, 2);
    hdr[HDR_OFF_CIPHER] = (unsigned char)f->cipher;
    hdr[HDR_OFF_BSHIFT] = CONTENT_BLOCK_SHIFT;
    put_le(hdr + HDR_OFF_FLAGS, f->flags, 4);
    memcpy(hdr + HDR_OFF_FILE_ID, f->id, CONTENT_FILE_ID_SIZE);
    put_le(hdr + HDR_OFF_GENERATION, f->generation, 8);
    put_le(hdr + HDR_OFF_PLAIN_SIZE, 0, 8);
    put_le(hdr + HDR_OFF_EPOCH, epoch, 4);
}

/*
 * Format 2: derive the file's data key and MAC key from the vault's file-key root and its ID.
 * OUT: keys (2 * CONTENT_KEY_SIZE bytes; the caller wipes them).
 */
static void v2_derive(const unsigned char *root, const unsigned char id[CONTENT_FILE_ID_SIZE],
                      unsigned char keys[2 * CONTENT_KEY_SIZE])
{
    crypto_generichash_blake2b_salt_personal(keys, 2 * CONTENT_KEY_SIZE, NULL, 0, root,
                                             CONTENT_KEY_SIZE, id,
                                             (const unsigned char *)V2_PERSONAL);
}

/* Format 2: encode f's header, tagged with `mac_key`. */
static void v2_encode(const struct content_file *f, const unsigned char *mac_key,
                      unsigned char hdr[CONTENT_HEADER_SIZE])
{
    memset(hdr, 0, CONTENT_HEADER_SIZE);
    memcpy(hdr, V2_MAGIC, V2_MAGIC_SIZE);
    hdr[V2_OFF_CIPHER] = (unsigned char)f->cipher;
    hdr[V2_OFF_FLAGS] = (unsigned char)f->flags;
    memcpy(hdr + V2_OFF_FILE_ID, f->id, CONTENT_FILE_ID_SIZE);
    crypto_generichash(hdr + V2_OFF_TAG, V2_TAG_SIZE, hdr, V2_OFF_TAG, mac_key, CONTENT_KEY_SIZE);
}

static int v2_reseal(const struct master_key *mk, const struct content_file *f,
                     unsigned char hdr[CONTENT_HEADER_SIZE])
{
    unsigned char keys[2 * CONTENT_KEY_SIZE];

    if (mk->file_root == NULL)
        return -CONTENT_EINVAL;
    v2_derive(mk->file_root, f->id, keys);
    v2_encode(f, keys + CONTENT_KEY_SIZE, hdr);
    sodium_memzero(keys, sizeof(keys));
    return 0;
}

int content_header_reseal(const struct master_key *mk, const struct content_file *f,
                          unsigned char hdr[CONTENT_HEADER_SIZE])
{
    unsigned long long clen;

    if (f->format == 2)
        return v2_reseal(mk, f, hdr);
    header_encode_clear(f, mk->epoch, hdr);
    randombytes_buf(hdr + HDR_OFF_NONCE, HDR_WRAP_NONCE_SIZE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(hdr + HDR_OFF_WRAPPED, &clen, f->key,
                                               CONTENT_KEY_SIZE, hdr, HDR_AD_SIZE, NULL,
                                               hdr + HDR_OFF_NONCE, mk->bytes);
    assert(clen == HDR_WRAPPED_SIZE);
    return 0;
}

/* Format 2: a new file with a random ID and its derived key. */
static int v2_new(const struct master_key *mk, unsigned layout,
                  unsigned char hdr[CONTENT_HEADER_SIZE], struct content_file **out)
{
    unsigned char id[CONTENT_FILE_ID_SIZE], keys[2 * CONTENT_KEY_SIZE];
    int rc;

    *out = NULL;
    if (mk->file_root == NULL)
        return -CONTENT_EINVAL;
    randombytes_buf(id, sizeof(id));
    v2_derive(mk->file_root, id, keys);
    rc = file_alloc(layout, keys, out);
    if (rc == 0) {
        memcpy((*out)->id, id, CONTENT_FILE_ID_SIZE);
        v2_encode(*out, keys + CONTENT_KEY_SIZE, hdr);
    }
    sodium_memzero(keys, sizeof(keys));
    return rc;
}

/* Format 2: check the header and derive the file's key. */
static int v2_open(const struct master_key *mk, unsigned layout,
                   const unsigned char hdr[CONTENT_HEADER_SIZE], struct content_file **out)
{
    unsigned char keys[2 * CONTENT_KEY_SIZE], tag[V2_TAG_SIZE];
    int rc;

    *out = NULL;
    if (memcmp(hdr, V2_MAGIC, V2_MAGIC_SIZE) != 0 ||
        hdr[V2_OFF_CIPHER] != CONTENT_LAYOUT_CIPHER(layout) ||
        (hdr[V2_OFF_FLAGS] & ~CONTENT_FLAGS_KNOWN) != 0 || hdr[V2_OFF_RESERVED] != 0 ||
        hdr[V2_OFF_RESERVED + 1] != 0 || mk->file_root == NULL)
        return -CONTENT_EBADMSG;
    v2_derive(mk->file_root, hdr + V2_OFF_FILE_ID, keys);
    crypto_generichash(tag, sizeof(tag), hdr, V2_OFF_TAG, keys + CONTENT_KEY_SIZE,
                       CONTENT_KEY_SIZE);
    if (sodium_memcmp(tag, hdr + V2_OFF_TAG, V2_TAG_SIZE) != 0) {
        sodium_memzero(keys, sizeof(keys));
        return -CONTENT_EBADMSG;
    }
    rc = file_alloc(layout, keys, out);
    sodium_memzero(keys, sizeof(keys));
    if (rc != 0)
        return rc;
    memcpy((*out)->id, hdr + V2_OFF_FILE_ID, CONTENT_FILE_ID_SIZE);
    (*out)->flags = hdr[V2_OFF_FLAGS];
    return 0;
}

int content_header_new(const struct master_key *mk, unsigned layout,
                       unsigned char hdr[CONTENT_HEADER_SIZE], struct content_file **out)
{
    unsigned char key[CONTENT_KEY_SIZE];
    int rc;

    if (layout & CONTENT_FORMAT2)
        return v2_new(mk, layout, hdr, out);
    randombytes_buf(key, sizeof(key));
    rc = file_alloc(layout, key, out);
    sodium_memzero(key, sizeof(key));
    if (rc != 0)
        return rc;
    randombytes_buf((*out)->id, CONTENT_FILE_ID_SIZE);
    (*out)->epoch = mk->epoch;
    return content_header_reseal(mk, *out, hdr);
}

int content_header_peek(const unsigned char hdr[CONTENT_HEADER_SIZE],
                        struct content_header_info *info)
{
    memset(info, 0, sizeof(*info));
    if (memcmp(hdr, HDR_MAGIC, HDR_MAGIC_SIZE) != 0)
        return -CONTENT_EBADMSG;
    info->version = (uint16_t)get_le(hdr + HDR_OFF_VERSION, 2);
    if (info->version != CONTENT_FORMAT_VERSION)
        return -CONTENT_EBADMSG;
    info->cipher = hdr[HDR_OFF_CIPHER];
    info->flags = (uint32_t)get_le(hdr + HDR_OFF_FLAGS, 4);
    memcpy(info->file_id, hdr + HDR_OFF_FILE_ID, CONTENT_FILE_ID_SIZE);
    info->generation = get_le(hdr + HDR_OFF_GENERATION, 8);
    info->key_epoch = (uint32_t)get_le(hdr + HDR_OFF_EPOCH, 4);
    return 0;
}

int content_header_open(const struct master_key *mk, unsigned layout,
                        const unsigned char hdr[CONTENT_HEADER_SIZE], struct content_file **out)
{
    struct content_header_info info;
    unsigned char key[CONTENT_KEY_SIZE];
    unsigned long long klen;
    int rc;

    *out = NULL;
    if (layout & CONTENT_FORMAT2)
        return v2_open(mk, layout, hdr, out);
    if (content_header_peek(hdr, &info) != 0 || info.cipher != layout ||
        hdr[HDR_OFF_BSHIFT] != CONTENT_BLOCK_SHIFT || (info.flags & ~CONTENT_FLAGS_KNOWN) != 0 ||
        info.key_epoch != mk->epoch)
        return -CONTENT_EBADMSG;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(key, &klen, NULL, hdr + HDR_OFF_WRAPPED,
                                                   HDR_WRAPPED_SIZE, hdr, HDR_AD_SIZE,
                                                   hdr + HDR_OFF_NONCE, mk->bytes) != 0) {
        sodium_memzero(key, sizeof(key));
        return -CONTENT_EBADMSG;
    }
    rc = file_alloc(layout, key, out);
    sodium_memzero(key, sizeof(key));
    if (rc != 0)
        return rc;
    memcpy((*out)->id, info.file_id, CONTENT_FILE_ID_SIZE);
    (*out)->flags = info.flags;
    (*out)->generation = info.generation;
    (*out)->epoch = info.key_epoch;
    return 0;
}

static void block_ad(const struct content_file *f, uint64_t blockno,
                     unsigned char ad[BLOCK_AD_SIZE])
{
    memcpy(ad, f->id, CONTENT_FILE_ID_SIZE);
    put_le(ad + CONTENT_FILE_ID_SIZE, blockno, 8);
}

int content_block_seal_with_nonce(const struct content_file *f, uint64_t blockno,
                                  const unsigned char *plain, size_t plain_len,
                                  const unsigned char *nonce, unsigned char *out)
{
    size_t nlen = content_nonce_size(f->cipher);
    unsigned char ad[BLOCK_AD_SIZE];
    unsigned long long clen;

    if (plain_len == 0 || plain_len > CONTENT_BLOCK_SIZE)
        return -CONTENT_EINVAL;
    block_ad(f, blockno, ad);
    memmove(out, nonce, nlen);
    if (f->cipher == CIPHER_AES256GCM)
        crypto_aead_aes256gcm_encrypt_afternm(out + nlen, &clen, plain, plain_len, ad,
                                              sizeof(ad), NULL, out, &f->aes);
    else
        crypto_aead_xchacha20poly1305_ietf_encrypt(out + nlen, &clen, plain, plain_len, ad,
                                                   sizeof(ad), NULL, out, f->key);
    return 0;
}

/*
 * Nonces come from a per-thread pool refilled from the system's CSPRNG, so that sealing a block
 * does not cost a getrandom() call.  Nonces are public; uniqueness is what matters, and 96 or 192
 * random bits give it (FORMAT.md has the bound).
 */
#define NONCE_POOL_SIZE 4096
static _Thread_local unsigned char nonce_pool[NONCE_POOL_SIZE];
static _Thread_local size_t nonce_pool_used = NONCE_POOL_SIZE;

/* A forked child inherits the forking thread's pool: empty it there, or parent and child would
 * seal with the same nonces.  (The child has only that one thread.) */
static void nonce_pool_forget(void)
{
    nonce_pool_used = NONCE_POOL_SIZE;
}

static void nonce_atfork_register(void)
{
    pthread_atfork(NULL, NULL, nonce_pool_forget);
}

static const unsigned char *nonce_take(size_t n)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    const unsigned char *p;

    pthread_once(&once, nonce_atfork_register);

    if (nonce_pool_used + n > NONCE_POOL_SIZE) {
        randombytes_buf(nonce_pool, NONCE_POOL_SIZE);
        nonce_pool_used = 0;
    }
    p = nonce_pool + nonce_pool_used;
    nonce_pool_used += n;
    return p;
}

int content_block_seal(const struct content_file *f, uint64_t blockno,
                       const unsigned char *plain, size_t plain_len, unsigned char *out)
{
    return content_block_seal_with_nonce(f, blockno, plain, plain_len,
                                         nonce_take(content_nonce_size(f->cipher)), out);
}

int content_block_open(const struct content_file *f, uint64_t blockno,
                       const unsigned char *sealed, size_t sealed_len, unsigned char *out)
{
    size_t nlen = content_nonce_size(f->cipher);
    size_t over = nlen + CONTENT_TAG_SIZE;
    unsigned char ad[BLOCK_AD_SIZE];
    unsigned long long mlen;
    int bad;

    if (sealed_len <= over || sealed_len > over + CONTENT_BLOCK_SIZE)
        return -CONTENT_EBADMSG;
    block_ad(f, blockno, ad);
    if (f->cipher == CIPHER_AES256GCM)
        bad = crypto_aead_aes256gcm_decrypt_afternm(out, &mlen, NULL, sealed + nlen,
                                                    sealed_len - nlen, ad, sizeof(ad), sealed,
                                                    &f->aes);
    else
        bad = crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, NULL, sealed + nlen,
                                                         sealed_len - nlen, ad, sizeof(ad),
                                                         sealed, f->key);
    if (bad != 0) {
        sodium_memzero(out, sealed_len - over);
        return -CONTENT_EBADMSG;
    }
    return (int)mlen;
}
