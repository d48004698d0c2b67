/*
 * libFuzzer target: the content header and block decoder (crypto/content.c).
 *
 *   [0][cipher id][128 header bytes]            content_header_peek, content_header_open under
 *                                                FUZZ_MASTER_KEY with the fuzzer's cipher id
 *   [1][cipher selector][blockno LE64][sealed]  content_block_open of a sealed block of any length
 *                                                with FUZZ_FILE_KEY/FUZZ_FILE_ID (bit 0 of the
 *                                                selector: AES-256-GCM or XChaCha20-Poly1305)
 *   [2][cipher id][size LE64][size LE64]        content_plain_size / content_cipher_size
 *   [3][cipher id][40 header bytes]             content_header_open of a format-2 header under
 *                                                FUZZ_FILE_ROOT
 *
 * Invariants (abort on violation):
 *   - peek succeeds exactly when magic and version are right, and decodes the bytes as laid out
 *     in crypto/FORMAT.md;
 *   - an open header is one that passes every clear check (cipher, block shift, flags, epoch),
 *     and yields the ID, flags and cipher of the bytes; a failed open returns no file; resealing
 *     an opened header reproduces its clear part and opens again;
 *   - a block open that succeeds returns input length minus overhead, 1..4096, and sealing that
 *     plaintext with the same nonce reproduces the input; the block does not open under another
 *     block number;
 *   - a block open that fails zeroes exactly the plaintext-sized output (sealed_len - overhead)
 *     when that length is a possible block, and writes nothing otherwise (the output buffers are
 *     exactly sized heap buffers, so ASan reports any write past them);
 *   - a format-2 header opens only with magic CST2, the asked cipher, known flags and zero
 *     reserved bytes; resealing it reproduces its 40 bytes; it opens under no other root and
 *     not as format 1;
 *   - plain/cipher size: valid sizes map back and forth exactly, invalid ones round down to whole
 *     blocks, plain_size is monotonic, block offsets agree with cipher sizes.
 */
#include "tests/fuzz/fuzz_common.h"

#include "crypto/content.h"
#include "crypto/secmem.h"

#include <sodium.h>

#define POISON 0xa5

static struct master_key mk, other_mk;
static struct content_file *files[3];      /* by cipher id: FUZZ_FILE_KEY, FUZZ_FILE_ID */
static struct content_file *other_files[3]; /* same key, another ID */
static int have_aes;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    unsigned char other_id[CONTENT_FILE_ID_SIZE];

    (void)argc;
    (void)argv;
    if (secmem_init() != 0)
        abort();
    have_aes = content_cipher_aes_available();
    mk.bytes = secmem_alloc(CONTENT_KEY_SIZE);
    other_mk.bytes = secmem_alloc(CONTENT_KEY_SIZE);
    if (mk.bytes == NULL || other_mk.bytes == NULL)
        abort();
    memcpy(mk.bytes, FUZZ_MASTER_KEY, CONTENT_KEY_SIZE);
    mk.epoch = FUZZ_MASTER_EPOCH;
    mk.file_root = secmem_alloc(CONTENT_KEY_SIZE);
    other_mk.file_root = secmem_alloc(CONTENT_KEY_SIZE);
    if (mk.file_root == NULL || other_mk.file_root == NULL)
        abort();
    memcpy(mk.file_root, FUZZ_FILE_ROOT, CONTENT_KEY_SIZE);
    memcpy(other_mk.file_root, FUZZ_FILE_ROOT, CONTENT_KEY_SIZE);
    other_mk.file_root[31] ^= 1;
    memcpy(other_mk.bytes, FUZZ_MASTER_KEY, CONTENT_KEY_SIZE);
    other_mk.bytes[0] ^= 1;
    other_mk.epoch = FUZZ_MASTER_EPOCH;
    memcpy(other_id, FUZZ_FILE_ID, sizeof(other_id));
    other_id[15] ^= 1;
    for (unsigned c = CIPHER_AES256GCM; c <= CIPHER_XCHACHA20POLY1305; c++) {
        if (c == CIPHER_AES256GCM && !have_aes)
            continue;
        if (content_file_new_with_key(c, FUZZ_FILE_ID, FUZZ_FILE_KEY, &files[c]) != 0 ||
            content_file_new_with_key(c, other_id, FUZZ_FILE_KEY, &other_files[c]) != 0)
            abort();
    }
    return 0;
}

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;

    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int valid_cipher(unsigned c)
{
    return c == CIPHER_XCHACHA20POLY1305 || (c == CIPHER_AES256GCM && have_aes);
}

/* A sealed block of f must open to `plain` (plen bytes) and only at blockno. */
static void check_block_roundtrip(const struct content_file *f, uint64_t blockno,
                                  const unsigned char *plain, size_t plen)
{
    size_t over = content_block_overhead(content_file_cipher(f));
    unsigned char *sealed = malloc(plen + over), *out = malloc(plen);
    int rc;

    FUZZ_CHECK(sealed != NULL && out != NULL, "out of memory");
    rc = content_block_seal(f, blockno, plain, plen, sealed);
    FUZZ_CHECK(rc == 0, "content_block_seal of %zu bytes returned %d", plen, rc);
    rc = content_block_open(f, blockno, sealed, plen + over, out);
    FUZZ_CHECK(rc == (int)plen && memcmp(out, plain, plen) == 0,
               "a block sealed by content_block_seal does not open (rc %d, len %zu)", rc, plen);
    rc = content_block_open(f, blockno + 1, sealed, plen + over, out);
    FUZZ_CHECK(rc == -CONTENT_EBADMSG, "a block opened at another block number (rc %d)", rc);
    free(sealed);
    free(out);
}

static void fuzz_header(struct fuzz_reader *r)
{
    unsigned cipher = fr_u8(r);
    unsigned char *hdr = malloc(CONTENT_HEADER_SIZE), again[CONTENT_HEADER_SIZE];
    struct content_header_info info;
    struct content_file *f = (struct content_file *)&mk; /* any non-NULL: open must reset it */
    int magic_ok, rc, prc;

    FUZZ_CHECK(hdr != NULL, "out of memory");
    fr_bytes(r, hdr, CONTENT_HEADER_SIZE);

    /* peek */
    prc = content_header_peek(hdr, &info);
    magic_ok = memcmp(hdr, "CUSTDYF", 8) == 0 && le(hdr + 8, 2) == CONTENT_FORMAT_VERSION;
    FUZZ_CHECK(prc == 0 || prc == -CONTENT_EBADMSG, "content_header_peek returned %d", prc);
    FUZZ_CHECK((prc == 0) == magic_ok, "peek returned %d for magic/version ok=%d", prc, magic_ok);
    if (prc == 0) {
        FUZZ_CHECK(info.version == CONTENT_FORMAT_VERSION && info.cipher == hdr[10] &&
                       info.flags == le(hdr + 12, 4) &&
                       memcmp(info.file_id, hdr + 16, CONTENT_FILE_ID_SIZE) == 0 &&
                       info.generation == le(hdr + 32, 8) && info.key_epoch == le(hdr + 48, 4),
                   "peek decoded fields that differ from the header bytes");
    }

    /* open, with the fuzzer's cipher id */
    rc = content_header_open(&mk, cipher, hdr, &f);
    FUZZ_CHECK(rc == 0 || rc == -CONTENT_EBADMSG || rc == -CONTENT_ENOMEM || rc == -CONTENT_EINVAL,
               "content_header_open returned %d", rc);
    FUZZ_CHECK(rc == 0 || f == NULL, "a failed content_header_open (%d) returned a file", rc);
    if (rc == 0) {
        FUZZ_CHECK(f != NULL, "content_header_open succeeded without a file");
        FUZZ_CHECK(prc == 0 && info.cipher == cipher && hdr[11] == CONTENT_BLOCK_SHIFT &&
                       (info.flags & ~CONTENT_FLAGS_KNOWN) == 0 && info.key_epoch == mk.epoch,
                   "a header opened that fails a clear check (cipher %u/%u, shift %u, flags %#x, "
                   "epoch %u)", info.cipher, cipher, hdr[11], info.flags, info.key_epoch);
        FUZZ_CHECK(valid_cipher(cipher), "a header opened with unknown cipher %u", cipher);
        FUZZ_CHECK(memcmp(content_file_id(f), hdr + 16, CONTENT_FILE_ID_SIZE) == 0 &&
                       content_file_flags(f) == info.flags && content_file_cipher(f) == cipher,
                   "the opened file's ID, flags or cipher differ from its header");
        /* every reserved byte is authenticated: an authentic header has them as written */
        FUZZ_CHECK(le(hdr + 40, 8) == 0 && le(hdr + 52, 4) == 0,
                   "an authentic header with non-zero reserved fields");
        /* reseal: same clear part, opens again */
        rc = content_header_reseal(&mk, f, again);
        FUZZ_CHECK(rc == 0, "content_header_reseal returned %d", rc);
        FUZZ_CHECK(memcmp(again, hdr, 56) == 0, "reseal changed the clear part of the header");
        {
            struct content_file *g = NULL;
            rc = content_header_open(&mk, cipher, again, &g);
            FUZZ_CHECK(rc == 0 && g != NULL &&
                           memcmp(content_file_id(g), content_file_id(f), CONTENT_FILE_ID_SIZE) == 0,
                       "a resealed header does not open (%d)", rc);
            content_file_free(g);
            /* the other cipher, or another master key: must not open */
            rc = content_header_open(&mk, cipher ^ 3u, hdr, &g);
            FUZZ_CHECK(rc != 0 && g == NULL, "a header opened under the other cipher");
            rc = content_header_open(&other_mk, cipher, hdr, &g);
            FUZZ_CHECK(rc != 0 && g == NULL, "a header opened under another master key");
        }
        /* the data key works */
        {
            static const unsigned char plain[33] = "custodyfs fuzz block round trip";
            check_block_roundtrip(f, 7, plain, sizeof(plain));
        }
        content_file_free(f);
    }
    free(hdr);
}

static void fuzz_header2(struct fuzz_reader *r)
{
    unsigned cipher = fr_u8(r), layout = cipher | CONTENT_FORMAT2;
    unsigned char *hdr = malloc(CONTENT_HEADER_SIZE), again[CONTENT_HEADER_SIZE];
    struct content_file *f = (struct content_file *)&mk, *g = NULL;
    int rc;

    FUZZ_CHECK(hdr != NULL, "out of memory");
    memset(hdr, POISON, CONTENT_HEADER_SIZE);
    fr_bytes(r, hdr, CONTENT_HEADER_V2_SIZE);
    rc = content_header_open(&mk, layout, hdr, &f);
    FUZZ_CHECK(rc == 0 || rc == -CONTENT_EBADMSG || rc == -CONTENT_ENOMEM || rc == -CONTENT_EINVAL,
               "content_header_open (format 2) returned %d", rc);
    FUZZ_CHECK(rc == 0 || f == NULL, "a failed format-2 open (%d) returned a file", rc);
    if (rc == 0) {
        FUZZ_CHECK(memcmp(hdr, "CST2", 4) == 0 && hdr[4] == cipher && valid_cipher(cipher) &&
                       (hdr[5] & ~CONTENT_FLAGS_KNOWN) == 0 && hdr[6] == 0 && hdr[7] == 0,
                   "a format-2 header opened that fails a clear check");
        FUZZ_CHECK(memcmp(content_file_id(f), hdr + 8, CONTENT_FILE_ID_SIZE) == 0 &&
                       content_file_flags(f) == hdr[5] && content_file_cipher(f) == cipher,
                   "the opened file's ID, flags or cipher differ from its format-2 header");
        rc = content_header_reseal(&mk, f, again);
        FUZZ_CHECK(rc == 0 && memcmp(again, hdr, CONTENT_HEADER_V2_SIZE) == 0,
                   "resealing a format-2 header changed it (%d)", rc);
        rc = content_header_open(&other_mk, layout, hdr, &g);
        FUZZ_CHECK(rc != 0 && g == NULL, "a format-2 header opened under another root");
        rc = content_header_open(&mk, cipher, hdr, &g);
        FUZZ_CHECK(rc != 0 && g == NULL, "a format-2 header opened as format 1");
        {
            static const unsigned char plain[33] = "custodyfs fuzz block round trip";
            check_block_roundtrip(f, 3, plain, sizeof(plain));
        }
        content_file_free(f);
    }
    free(hdr);
}

static void fuzz_block(struct fuzz_reader *r)
{
    unsigned sel = fr_u8(r);
    unsigned cipher = (sel & 1) && have_aes ? CIPHER_AES256GCM : CIPHER_XCHACHA20POLY1305;
    uint64_t blockno = fr_u64(r);
    size_t len = r->n, over = content_block_overhead(cipher), plen, cap;
    const struct content_file *f = files[cipher];
    unsigned char *sealed = malloc(len ? len : 1), *out;
    int in_range = len > over && len <= over + CONTENT_BLOCK_SIZE, rc;

    FUZZ_CHECK(sealed != NULL, "out of memory");
    fr_bytes(r, sealed, len);
    plen = in_range ? len - over : 0;
    /* the output: exactly the plaintext length for a possible block; otherwise a whole block,
     * the most any caller provides (a write past it is an ASan report) */
    cap = in_range ? plen : CONTENT_BLOCK_SIZE;
    out = malloc(cap);
    FUZZ_CHECK(out != NULL, "out of memory");
    memset(out, POISON, cap);

    rc = content_block_open(f, blockno, sealed, len, out);
    if (rc >= 0) {
        FUZZ_CHECK(in_range && (size_t)rc == plen && rc >= 1 && rc <= (int)CONTENT_BLOCK_SIZE,
                   "content_block_open returned %d for %zu sealed bytes (overhead %zu)", rc, len,
                   over);
        /* sealing the plaintext with the block's own nonce gives the block back */
        {
            unsigned char *again = malloc(len);
            FUZZ_CHECK(again != NULL, "out of memory");
            FUZZ_CHECK(content_block_seal_with_nonce(f, blockno, out, plen, sealed, again) == 0 &&
                           memcmp(again, sealed, len) == 0,
                       "re-sealing an opened block with its nonce does not reproduce it");
            free(again);
        }
        /* bound to the block number and the file ID */
        {
            unsigned char *o2 = malloc(plen);
            FUZZ_CHECK(o2 != NULL, "out of memory");
            FUZZ_CHECK(content_block_open(f, blockno ^ 1, sealed, len, o2) == -CONTENT_EBADMSG,
                       "a block opened at another block number");
            FUZZ_CHECK(content_block_open(other_files[cipher], blockno, sealed, len, o2) ==
                           -CONTENT_EBADMSG,
                       "a block opened under another file ID");
            free(o2);
        }
    } else {
        FUZZ_CHECK(rc == -CONTENT_EBADMSG, "content_block_open returned %d", rc);
        for (size_t i = 0; i < cap; i++) {
            unsigned char want = in_range ? 0 : POISON;
            FUZZ_CHECK(out[i] == want,
                       "failed open of %zu sealed bytes (%s) left output byte %zu = %#x, "
                       "expected %#x", len, in_range ? "possible block" : "impossible length", i,
                       out[i], want);
        }
    }
    free(out);
    free(sealed);
}

static void fuzz_sizes(struct fuzz_reader *r)
{
    unsigned cipher = fr_u8(r);
    uint64_t c = fr_u64(r), p = fr_u64(r), p0, p1, c2, over;
    int valid, valid1;

    /* names: known ids round-trip, unknown ones have none */
    {
        const char *name = content_cipher_name(cipher);
        if (cipher == CIPHER_AES256GCM || cipher == CIPHER_XCHACHA20POLY1305)
            FUZZ_CHECK(name != NULL && content_cipher_from_name(name) == cipher &&
                           content_nonce_size(cipher) != 0,
                       "cipher %u: name or nonce size", cipher);
        else
            FUZZ_CHECK(name == NULL && content_nonce_size(cipher) == 0,
                       "unknown cipher %u has a name or a nonce size", cipher);
    }
    p0 = content_plain_size(cipher, c, &valid); /* any cipher id: must not crash */
    (void)content_cipher_size(cipher, p & INT64_MAX);
    (void)content_block_offset(cipher, p);
    if (cipher != CIPHER_AES256GCM && cipher != CIPHER_XCHACHA20POLY1305) {
        cipher = (cipher & 1) ? CIPHER_AES256GCM : CIPHER_XCHACHA20POLY1305;
        p0 = content_plain_size(cipher, c, &valid);
    }
    over = content_block_overhead(cipher);

    /* cipher size -> plain size -> cipher size */
    FUZZ_CHECK(valid == 0 || valid == 1, "valid flag %d", valid);
    if (c == 0)
        FUZZ_CHECK(p0 == 0 && valid, "an empty backing file is not an empty plaintext file");
    else if (valid)
        FUZZ_CHECK(content_cipher_size(cipher, p0) == c,
                   "cipher %u: backing size %llu is valid with plaintext %llu, which maps back to "
                   "%llu", cipher, (unsigned long long)c, (unsigned long long)p0,
                   (unsigned long long)content_cipher_size(cipher, p0));
    else {
        FUZZ_CHECK(p0 % CONTENT_BLOCK_SIZE == 0, "an invalid size does not round to whole blocks");
        FUZZ_CHECK(c < CONTENT_HEADER_SIZE || content_cipher_size(cipher, p0) < c,
                   "invalid backing size %llu not larger than that of its whole blocks",
                   (unsigned long long)c);
        if (c >= CONTENT_HEADER_SIZE) {
            uint64_t rest = (c - CONTENT_HEADER_SIZE) % (CONTENT_BLOCK_SIZE + over);
            FUZZ_CHECK(rest != 0 && rest <= over, "backing size %llu flagged invalid",
                       (unsigned long long)c);
        }
    }
    if (c < UINT64_MAX) {
        p1 = content_plain_size(cipher, c + 1, &valid1);
        FUZZ_CHECK(p1 >= p0, "content_plain_size is not monotonic at %llu",
                   (unsigned long long)c);
    }

    /* plain size -> cipher size -> plain size (plaintext sizes are off_t: <= INT64_MAX) */
    p &= INT64_MAX;
    c2 = content_cipher_size(cipher, p);
    FUZZ_CHECK(c2 >= CONTENT_HEADER_SIZE + p, "cipher size %llu smaller than plaintext %llu",
               (unsigned long long)c2, (unsigned long long)p);
    p1 = content_plain_size(cipher, c2, &valid1);
    FUZZ_CHECK(valid1 && p1 == p, "cipher %u: plaintext %llu -> backing %llu -> plaintext %llu "
               "(valid %d)", cipher, (unsigned long long)p, (unsigned long long)c2,
               (unsigned long long)p1, valid1);
    if (p > 0) {
        uint64_t last = (p - 1) >> CONTENT_BLOCK_SHIFT;
        FUZZ_CHECK(content_block_offset(cipher, last) + ((p - 1) & (CONTENT_BLOCK_SIZE - 1)) + 1 +
                           over == c2,
                   "the last block's offset does not agree with the cipher size of %llu",
                   (unsigned long long)p);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_reader r = {data, size};

    if (size == 0)
        return 0;
    switch (fr_u8(&r) % FUZZ_CONTENT_MODES) {
    case FUZZ_CONTENT_HEADER: fuzz_header(&r); break;
    case FUZZ_CONTENT_BLOCK: fuzz_block(&r); break;
    case FUZZ_CONTENT_HEADER2: fuzz_header2(&r); break;
    default: fuzz_sizes(&r); break;
    }
    return 0;
}
