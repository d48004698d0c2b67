/*
 * Unit tests for crypto/content.c: size arithmetic, block sealing, file headers, known-answer
 * vectors and tamper resistance, for both ciphers.
 *
 * Only crypto/ functions (and libsodium itself, as an independent reference) are used.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto/content.h"
#include "crypto/secmem.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define KiB 1024ULL
#define GiB (1024ULL * 1024 * 1024)
#define BS ((uint64_t)CONTENT_BLOCK_SIZE)

/* ---- helpers ---- */

static struct master_key *mk_new(uint32_t epoch)
{
    struct master_key *mk = calloc(1, sizeof(*mk));

    assert_non_null(mk);
    mk->bytes = secmem_alloc(CONTENT_KEY_SIZE);
    assert_non_null(mk->bytes);
    randombytes_buf(mk->bytes, CONTENT_KEY_SIZE);
    mk->epoch = epoch;
    return mk;
}

static void mk_free(struct master_key *mk)
{
    if (mk == NULL)
        return;
    secmem_free(mk->bytes);
    secmem_free(mk->file_root);
    free(mk);
}

/* A master key with a file-key root, for format 2. */
static struct master_key *mk_new_v2(void)
{
    struct master_key *mk = mk_new(1);

    mk->file_root = secmem_alloc(CONTENT_KEY_SIZE);
    assert_non_null(mk->file_root);
    randombytes_buf(mk->file_root, CONTENT_KEY_SIZE);
    return mk;
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

static void hex2bin_or_fail(const char *hex, unsigned char *out, size_t n)
{
    size_t bin_len = 0;

    assert_int_equal(strlen(hex), 2 * n);
    assert_int_equal(sodium_hex2bin(out, n, hex, strlen(hex), NULL, &bin_len, NULL), 0);
    assert_int_equal(bin_len, n);
}

/* Compare bytes with an expected hex string; print the actual value when they differ. */
static void assert_hex_equal(const unsigned char *got, size_t n, const char *want_hex,
                             const char *what)
{
    unsigned char *want = malloc(n ? n : 1);
    char *got_hex = malloc(2 * n + 1);

    assert_non_null(want);
    assert_non_null(got_hex);
    hex2bin_or_fail(want_hex, want, n);
    sodium_bin2hex(got_hex, 2 * n + 1, got, n);
    if (memcmp(got, want, n) != 0)
        print_error("%s:\n  got  %s\n  want %s\n", what, got_hex, want_hex);
    free(got_hex);
    assert_memory_equal(got, want, n);
    free(want);
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static struct content_file *random_file(unsigned cipher)
{
    unsigned char id[CONTENT_FILE_ID_SIZE], key[CONTENT_KEY_SIZE];
    struct content_file *f = NULL;

    randombytes_buf(id, sizeof(id));
    randombytes_buf(key, sizeof(key));
    assert_int_equal(content_file_new_with_key(cipher, id, key, &f), 0);
    assert_non_null(f);
    sodium_memzero(key, sizeof(key));
    return f;
}

static const uint64_t block_nos[] = {0, 1, 2, 255, 256, 1048575, 0xFFFFFFFFULL, 0x100000000ULL,
                                     0x0102030405060708ULL, UINT64_MAX};

/* Each test body takes the cipher; CIPHER_TEST() makes a cmocka test per cipher. */
#define CIPHER_TEST(fn)                                                                        \
    static void fn##_aes(void **state)                                                         \
    {                                                                                          \
        (void)state;                                                                           \
        if (!content_cipher_aes_available())                                                   \
            skip();                                                                            \
        fn(CIPHER_AES256GCM);                                                                  \
    }                                                                                          \
    static void fn##_xchacha(void **state)                                                     \
    {                                                                                          \
        (void)state;                                                                           \
        fn(CIPHER_XCHACHA20POLY1305);                                                          \
    }
#define BOTH(fn) cmocka_unit_test(fn##_aes), cmocka_unit_test(fn##_xchacha)

static int group_setup(void **state)
{
    (void)state;
    return secmem_init() == 0 ? 0 : -1;
}

static void expect_bad_header(const struct master_key *mk, unsigned cipher,
                              const unsigned char *hdr);

/* ---- names and constants ---- */

static void t_names(unsigned cipher)
{
    size_t nlen = cipher == CIPHER_AES256GCM ? 12 : 24;

    assert_int_equal(content_nonce_size(cipher), nlen);
    assert_int_equal(content_block_overhead(cipher), nlen + CONTENT_TAG_SIZE);
    assert_true(content_block_overhead(cipher) + CONTENT_BLOCK_SIZE <= CONTENT_MAX_SEALED_BLOCK);
    assert_non_null(content_cipher_name(cipher));
    assert_int_equal(content_cipher_from_name(content_cipher_name(cipher)), cipher);
    assert_string_equal(content_cipher_name(cipher),
                        cipher == CIPHER_AES256GCM ? "aes256gcm" : "xchacha20poly1305");
}
CIPHER_TEST(t_names)

static void test_unknown_cipher(void **state)
{
    unsigned char id[CONTENT_FILE_ID_SIZE] = {0}, key[CONTENT_KEY_SIZE] = {0};
    unsigned char hdr[CONTENT_HEADER_SIZE];
    struct content_file *f = (struct content_file *)1;
    struct master_key *mk = mk_new(1);

    (void)state;
    assert_null(content_cipher_name(0));
    assert_null(content_cipher_name(3));
    assert_int_equal(content_cipher_from_name("AES256GCM"), 0);
    assert_int_equal(content_cipher_from_name(""), 0);
    assert_int_equal(content_cipher_from_name("aes256gcm "), 0);
    assert_int_equal(content_nonce_size(0), 0);
    assert_int_equal(content_nonce_size(3), 0);
    assert_int_equal(content_file_new_with_key(3, id, key, &f), -CONTENT_EINVAL);
    assert_null(f);
    f = (struct content_file *)1;
    assert_int_equal(content_header_new(mk, 0, hdr, &f), -CONTENT_EINVAL);
    assert_null(f);
    assert_true(content_cipher_default() == CIPHER_AES256GCM ||
                content_cipher_default() == CIPHER_XCHACHA20POLY1305);
    if (!content_cipher_aes_available())
        assert_int_equal(content_cipher_default(), CIPHER_XCHACHA20POLY1305);
    content_file_free(NULL); /* accepted */
    mk_free(mk);
}

/* ---- size arithmetic ---- */

/* Independent model of the layout: header, then whole blocks, then a short last block. */
static uint64_t model_cipher_size(unsigned cipher, uint64_t p)
{
    uint64_t over = content_block_overhead(cipher);
    uint64_t full = p / BS, rest = p % BS;

    return CONTENT_HEADER_SIZE + full * (BS + over) + (rest ? rest + over : 0);
}

static void check_size_pair(unsigned cipher, uint64_t p)
{
    uint64_t c = content_cipher_size(cipher, p);
    int valid = -1;

    assert_int_equal(c, model_cipher_size(cipher, p));
    assert_int_equal(content_plain_size(cipher, c, &valid), p);
    assert_int_equal(valid, 1);
    /* The block holding the last byte starts at content_block_offset(), and the file ends at
     * that offset plus the last block's stored size. */
    if (p > 0) {
        uint64_t last = (p - 1) / BS;
        uint64_t in_last = p - last * BS;
        assert_int_equal(content_block_offset(cipher, last) + in_last +
                             content_block_overhead(cipher),
                         c);
    }
    /* Whole-block files end exactly where the next block would start. */
    if (p % BS == 0)
        assert_int_equal(content_block_offset(cipher, p / BS), c);
}

static void t_size_inverse(unsigned cipher)
{
    static const uint64_t sizes[] = {
        0, 1, 2, 15, 16, 17, 4095, 4096, 4097, 8191, 8192, 8193, 12288, 1000000,
        4 * GiB - 1, 4 * GiB, 4 * GiB + 1, 4 * GiB + 4096, 5 * GiB + 123,
        1ULL << 40, (1ULL << 40) + 1, (1ULL << 50) - 1, 1ULL << 52,
    };

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        check_size_pair(cipher, sizes[i]);
    for (uint64_t p = 0; p < 3 * BS + 2; p++)
        check_size_pair(cipher, p);
    for (int i = 0; i < 20000; i++) {
        uint64_t r;
        randombytes_buf(&r, sizeof(r));
        switch (i % 4) {
        case 0: r %= 64 * KiB; break;
        case 1: r %= 16 * GiB; break;
        case 2: r = 4 * GiB + (r % (1ULL << 36)); break; /* always over 4 GiB */
        default: r >>= 8; break;                         /* up to 2^56 */
        }
        check_size_pair(cipher, r);
    }
}
CIPHER_TEST(t_size_inverse)

static void t_size_invalid(unsigned cipher)
{
    uint64_t over = content_block_overhead(cipher);
    int valid;

    /* An empty backing file is an empty file (header not written yet). */
    valid = -1;
    assert_int_equal(content_plain_size(cipher, 0, &valid), 0);
    assert_int_equal(valid, 1);
    /* A cut header. */
    for (uint64_t c = 1; c < CONTENT_HEADER_SIZE; c++) {
        valid = -1;
        assert_int_equal(content_plain_size(cipher, c, &valid), 0);
        assert_int_equal(valid, 0);
    }
    /* A header alone is valid. */
    valid = -1;
    assert_int_equal(content_plain_size(cipher, CONTENT_HEADER_SIZE, &valid), 0);
    assert_int_equal(valid, 1);
    /* A last block of 1..overhead bytes (no plaintext) after k whole blocks. */
    static const uint64_t ks[] = {0, 1, 2, 7, 1000, 1048576, 1048577, (1ULL << 32) + 5};
    for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++) {
        uint64_t base = content_block_offset(cipher, ks[i]);
        for (uint64_t r = 1; r <= over; r++) {
            valid = -1;
            assert_int_equal(content_plain_size(cipher, base + r, &valid), ks[i] * BS);
            assert_int_equal(valid, 0);
        }
        valid = -1;
        assert_int_equal(content_plain_size(cipher, base + over + 1, &valid), ks[i] * BS + 1);
        assert_int_equal(valid, 1);
    }
    /* Exhaustive over the first blocks: a backing size is valid iff some plaintext size maps
     * onto it, and then content_plain_size() returns that plaintext size. */
    uint64_t limit = content_cipher_size(cipher, 3 * BS + 5);
    unsigned char *image = calloc(limit + 1, 1);
    assert_non_null(image);
    for (uint64_t p = 0; p <= 3 * BS + 5; p++)
        image[content_cipher_size(cipher, p)] = 1;
    image[0] = 1; /* the empty backing file */
    for (uint64_t c = 0; c <= limit; c++) {
        uint64_t p;
        valid = -1;
        p = content_plain_size(cipher, c, &valid);
        if (image[c]) {
            assert_int_equal(valid, 1);
            if (c != 0)
                assert_int_equal(content_cipher_size(cipher, p), c);
        } else {
            assert_int_equal(valid, 0);
            /* the plaintext of the whole blocks only */
            assert_int_equal(p % BS, 0);
            assert_true(c < CONTENT_HEADER_SIZE || content_block_offset(cipher, p / BS) < c);
            assert_true(c < CONTENT_HEADER_SIZE ||
                        c <= content_block_offset(cipher, p / BS) + over);
        }
    }
    free(image);
}
CIPHER_TEST(t_size_invalid)

static void t_block_offset(unsigned cipher)
{
    uint64_t stored = BS + content_block_overhead(cipher);

    assert_int_equal(content_block_offset(cipher, 0), CONTENT_HEADER_SIZE);
    for (size_t i = 0; i < sizeof(block_nos) / sizeof(block_nos[0]); i++) {
        uint64_t b = block_nos[i];
        if (b > (1ULL << 50))
            continue; /* the offset itself would not fit 64 bits */
        assert_int_equal(content_block_offset(cipher, b), CONTENT_HEADER_SIZE + b * stored);
        assert_int_equal(content_block_offset(cipher, b + 1) - content_block_offset(cipher, b),
                         stored);
        assert_int_equal(content_block_offset(cipher, b), content_cipher_size(cipher, b * BS));
    }
}
CIPHER_TEST(t_block_offset)

/* ---- block round trips ---- */

static void roundtrip_one(const struct content_file *f, uint64_t blockno, size_t len)
{
    unsigned cipher = content_file_cipher(f);
    size_t over = content_block_overhead(cipher);
    unsigned char plain[CONTENT_BLOCK_SIZE], back[CONTENT_BLOCK_SIZE + 64];
    unsigned char sealed[CONTENT_MAX_SEALED_BLOCK + 64];

    randombytes_buf(plain, len);
    memset(sealed, 0xEE, sizeof(sealed));
    assert_int_equal(content_block_seal(f, blockno, plain, len, sealed), 0);
    /* exactly plain + overhead bytes written */
    for (size_t i = len + over; i < sizeof(sealed); i++)
        assert_int_equal(sealed[i], 0xEE);
    memset(back, 0xEE, sizeof(back));
    assert_int_equal(content_block_open(f, blockno, sealed, len + over, back), (int)len);
    assert_memory_equal(back, plain, len);
    for (size_t i = len; i < sizeof(back); i++)
        assert_int_equal(back[i], 0xEE);
    /* the plaintext is not stored in the clear */
    if (len >= 16)
        assert_memory_not_equal(sealed + content_nonce_size(cipher), plain, len);
}

static void t_roundtrip(unsigned cipher)
{
    static const size_t sizes[] = {1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 1000,
                                   4094, 4095, 4096};
    struct content_file *f = random_file(cipher);

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        for (size_t j = 0; j < sizeof(block_nos) / sizeof(block_nos[0]); j++)
            roundtrip_one(f, block_nos[j], sizes[i]);
    for (int i = 0; i < 300; i++) {
        uint64_t b;
        randombytes_buf(&b, sizeof(b));
        roundtrip_one(f, b, 1 + randombytes_uniform(CONTENT_BLOCK_SIZE));
    }
    content_file_free(f);
}
CIPHER_TEST(t_roundtrip)

static void t_seal_bad_sizes(unsigned cipher)
{
    struct content_file *f = random_file(cipher);
    unsigned char plain[CONTENT_BLOCK_SIZE + 1] = {0};
    unsigned char out[CONTENT_MAX_SEALED_BLOCK + 64];
    unsigned char nonce[CONTENT_MAX_NONCE_SIZE] = {0};

    assert_int_equal(content_block_seal(f, 0, plain, 0, out), -CONTENT_EINVAL);
    assert_int_equal(content_block_seal(f, 0, plain, CONTENT_BLOCK_SIZE + 1, out),
                     -CONTENT_EINVAL);
    assert_int_equal(content_block_seal(f, 0, plain, SIZE_MAX, out), -CONTENT_EINVAL);
    assert_int_equal(content_block_seal_with_nonce(f, 0, plain, 0, nonce, out), -CONTENT_EINVAL);
    assert_int_equal(
        content_block_seal_with_nonce(f, 0, plain, CONTENT_BLOCK_SIZE + 1, nonce, out),
        -CONTENT_EINVAL);
    content_file_free(f);
}
CIPHER_TEST(t_seal_bad_sizes)

static int cmp_nonce24(const void *a, const void *b)
{
    return memcmp(a, b, CONTENT_MAX_NONCE_SIZE);
}

static void t_fresh_nonces(unsigned cipher)
{
    enum { N = 2000 };
    struct content_file *f = random_file(cipher);
    size_t nlen = content_nonce_size(cipher), over = content_block_overhead(cipher);
    unsigned char plain[100], a[100 + 40], b[100 + 40], back[100];
    unsigned char(*nonces)[CONTENT_MAX_NONCE_SIZE] = calloc(N, CONTENT_MAX_NONCE_SIZE);

    assert_non_null(nonces);
    randombytes_buf(plain, sizeof(plain));
    assert_int_equal(content_block_seal(f, 7, plain, sizeof(plain), a), 0);
    assert_int_equal(content_block_seal(f, 7, plain, sizeof(plain), b), 0);
    assert_memory_not_equal(a, b, nlen);                       /* nonces */
    assert_memory_not_equal(a + nlen, b + nlen, sizeof(plain)); /* ciphertexts */
    assert_memory_not_equal(a + nlen + sizeof(plain), b + nlen + sizeof(plain), 16); /* tags */
    assert_int_equal(content_block_open(f, 7, a, sizeof(plain) + over, back), sizeof(plain));
    assert_memory_equal(back, plain, sizeof(plain));
    assert_int_equal(content_block_open(f, 7, b, sizeof(plain) + over, back), sizeof(plain));
    assert_memory_equal(back, plain, sizeof(plain));
    /* Many seals (several refills of any nonce pool): every nonce distinct. */
    for (int i = 0; i < N; i++) {
        assert_int_equal(content_block_seal(f, 7, plain, 1, a), 0);
        memcpy(nonces[i], a, nlen);
    }
    qsort(nonces, N, CONTENT_MAX_NONCE_SIZE, cmp_nonce24);
    for (int i = 1; i < N; i++)
        assert_memory_not_equal(nonces[i - 1], nonces[i], nlen);
    free(nonces);
    content_file_free(f);
}
CIPHER_TEST(t_fresh_nonces)

/* Several threads sealing blocks of one file: every block opens, every nonce is distinct. */
#define MT_THREADS 4
#define MT_PER_THREAD 500
struct mt_arg {
    const struct content_file *f;
    unsigned char (*nonces)[CONTENT_MAX_NONCE_SIZE];
    int failures;
};

static void *mt_sealer(void *p)
{
    struct mt_arg *a = p;
    unsigned cipher = content_file_cipher(a->f);
    size_t nlen = content_nonce_size(cipher), over = content_block_overhead(cipher);
    unsigned char plain[64], sealed[64 + 40], back[64];

    for (int i = 0; i < MT_PER_THREAD; i++) {
        randombytes_buf(plain, sizeof(plain));
        if (content_block_seal(a->f, (uint64_t)i, plain, sizeof(plain), sealed) != 0 ||
            content_block_open(a->f, (uint64_t)i, sealed, sizeof(plain) + over, back) !=
                (int)sizeof(plain) ||
            memcmp(back, plain, sizeof(plain)) != 0)
            a->failures++;
        memcpy(a->nonces[i], sealed, nlen);
    }
    return NULL;
}

static void t_threads(unsigned cipher)
{
    struct content_file *f = random_file(cipher);
    unsigned char(*nonces)[CONTENT_MAX_NONCE_SIZE] =
        calloc(MT_THREADS * MT_PER_THREAD, CONTENT_MAX_NONCE_SIZE);
    struct mt_arg args[MT_THREADS];
    pthread_t th[MT_THREADS];
    size_t nlen = content_nonce_size(cipher);

    assert_non_null(nonces);
    for (int t = 0; t < MT_THREADS; t++) {
        args[t] = (struct mt_arg){f, nonces + t * MT_PER_THREAD, 0};
        assert_int_equal(pthread_create(&th[t], NULL, mt_sealer, &args[t]), 0);
    }
    for (int t = 0; t < MT_THREADS; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        assert_int_equal(args[t].failures, 0);
    }
    qsort(nonces, MT_THREADS * MT_PER_THREAD, CONTENT_MAX_NONCE_SIZE, cmp_nonce24);
    for (int i = 1; i < MT_THREADS * MT_PER_THREAD; i++)
        assert_memory_not_equal(nonces[i - 1], nonces[i], nlen);
    free(nonces);
    content_file_free(f);
}
CIPHER_TEST(t_threads)

/*
 * A process that forks after sealing must not hand the child the same nonces it goes on to
 * use itself: both would then seal different plaintexts under one (key, nonce) pair.  Here
 * parent and child each write their own data to block 1 of the same file after fork().
 */
static void t_fork_nonces(unsigned cipher)
{
    struct content_file *f = random_file(cipher);
    size_t nlen = content_nonce_size(cipher), over = content_block_overhead(cipher);
    unsigned char p_parent[32] = "written by the parent process..";
    unsigned char p_child[32] = "written by the child process...";
    unsigned char s_parent[32 + 40], s_child[32 + 40];
    int fds[2], status = -1, keystream_reused = 1;
    pid_t pid;

    /* Seal once first, as a daemon might before forking (e.g. while checking the vault). */
    assert_int_equal(content_block_seal(f, 0, p_parent, sizeof(p_parent), s_parent), 0);
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ssize_t w;
        close(fds[0]);
        if (content_block_seal(f, 1, p_child, sizeof(p_child), s_child) != 0)
            _exit(2);
        w = write(fds[1], s_child, sizeof(p_child) + over);
        _exit(w == (ssize_t)(sizeof(p_child) + over) ? 0 : 1);
    }
    close(fds[1]);
    assert_int_equal(content_block_seal(f, 1, p_parent, sizeof(p_parent), s_parent), 0);
    assert_int_equal(read(fds[0], s_child, sizeof(p_child) + over),
                     (ssize_t)(sizeof(p_child) + over));
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    content_file_free(f);
    if (memcmp(s_child, s_parent, nlen) == 0) {
        /* the consequence: c_parent ^ c_child == p_parent ^ p_child */
        for (size_t i = 0; i < sizeof(p_parent); i++)
            if ((s_parent[nlen + i] ^ s_child[nlen + i]) != (p_parent[i] ^ p_child[i]))
                keystream_reused = 0;
        print_error("parent and child sealed block 1 with the same nonce after fork() (the "
                    "thread-local nonce pool is duplicated by fork); keystream reused: %s\n",
                    keystream_reused ? "yes, c1 ^ c2 == p1 ^ p2" : "no");
    }
    assert_memory_not_equal(s_child, s_parent, nlen);
}
CIPHER_TEST(t_fork_nonces)

/* ---- headers ---- */

static void t_header_roundtrip(unsigned cipher)
{
    struct master_key *mk = mk_new(1);
    unsigned char hdr[CONTENT_HEADER_SIZE], hdr2[CONTENT_HEADER_SIZE];
    struct content_file *a = NULL, *b = NULL, *c = NULL;
    struct content_header_info info;
    unsigned char plain[CONTENT_BLOCK_SIZE], sealed[CONTENT_MAX_SEALED_BLOCK];
    unsigned char back[CONTENT_BLOCK_SIZE];
    size_t over = content_block_overhead(cipher);

    assert_int_equal(content_header_new(mk, cipher, hdr, &a), 0);
    assert_non_null(a);
    assert_int_equal(content_file_cipher(a), cipher);
    assert_int_equal(content_file_flags(a), 0);
    assert_false(all_zero(content_file_id(a), CONTENT_FILE_ID_SIZE));

    /* clear layout */
    assert_memory_equal(hdr, "CUSTDYF\0", 8);
    assert_int_equal(hdr[8], CONTENT_FORMAT_VERSION);
    assert_int_equal(hdr[9], 0);
    assert_int_equal(hdr[10], cipher);
    assert_int_equal(hdr[11], CONTENT_BLOCK_SHIFT);
    assert_memory_equal(hdr + 16, content_file_id(a), CONTENT_FILE_ID_SIZE);
    assert_true(all_zero(hdr + 32, 16)); /* generation, plaintext size */
    assert_int_equal(hdr[48], 1);        /* epoch, little-endian */
    assert_true(all_zero(hdr + 49, 7));

    /* peek */
    memset(&info, 0xAA, sizeof(info));
    assert_int_equal(content_header_peek(hdr, &info), 0);
    assert_int_equal(info.version, CONTENT_FORMAT_VERSION);
    assert_int_equal(info.cipher, cipher);
    assert_int_equal(info.flags, 0);
    assert_memory_equal(info.file_id, content_file_id(a), CONTENT_FILE_ID_SIZE);
    assert_int_equal(info.generation, 0);
    assert_int_equal(info.key_epoch, 1);

    /* open: same ID, flags, cipher, and the same data key */
    assert_int_equal(content_header_open(mk, cipher, hdr, &b), 0);
    assert_non_null(b);
    assert_memory_equal(content_file_id(b), content_file_id(a), CONTENT_FILE_ID_SIZE);
    assert_int_equal(content_file_flags(b), 0);
    assert_int_equal(content_file_cipher(b), cipher);
    for (size_t len = 1; len <= CONTENT_BLOCK_SIZE; len = len * 2 + 1) {
        randombytes_buf(plain, len);
        assert_int_equal(content_block_seal(a, len, plain, len, sealed), 0);
        assert_int_equal(content_block_open(b, len, sealed, len + over, back), (int)len);
        assert_memory_equal(back, plain, len);
        assert_int_equal(content_block_seal(b, len + 1, plain, len, sealed), 0);
        assert_int_equal(content_block_open(a, len + 1, sealed, len + over, back), (int)len);
        assert_memory_equal(back, plain, len);
    }

    /* a second new file differs */
    assert_int_equal(content_header_new(mk, cipher, hdr2, &c), 0);
    assert_memory_not_equal(content_file_id(a), content_file_id(c), CONTENT_FILE_ID_SIZE);
    assert_memory_not_equal(hdr + 56, hdr2 + 56, 72);

    content_file_free(a);
    content_file_free(b);
    content_file_free(c);
    mk_free(mk);
}
CIPHER_TEST(t_header_roundtrip)

static void t_header_reseal(unsigned cipher)
{
    struct master_key *mk = mk_new(1), *mk2 = mk_new(2);
    unsigned char hdr[CONTENT_HEADER_SIZE], hdr2[CONTENT_HEADER_SIZE], hdr3[CONTENT_HEADER_SIZE];
    struct content_file *a = NULL, *b = NULL, *c = NULL;
    struct content_header_info info;
    unsigned char plain[100], sealed[100 + 40], back[100];
    size_t over = content_block_overhead(cipher);

    assert_int_equal(content_header_new(mk, cipher, hdr, &a), 0);
    randombytes_buf(plain, sizeof(plain));
    assert_int_equal(content_block_seal(a, 3, plain, sizeof(plain), sealed), 0);

    content_file_set_flags(a, CONTENT_FLAG_SPARSE);
    assert_int_equal(content_file_flags(a), CONTENT_FLAG_SPARSE);
    assert_int_equal(content_header_reseal(mk, a, hdr2), 0);
    assert_memory_equal(hdr, hdr2, 12);                      /* magic .. block shift */
    assert_memory_equal(hdr + 16, hdr2 + 16, 40);            /* ID .. reserved */
    assert_memory_not_equal(hdr + 56, hdr2 + 56, 24);        /* fresh wrapping nonce */
    assert_int_equal(content_header_peek(hdr2, &info), 0);
    assert_int_equal(info.flags, CONTENT_FLAG_SPARSE);
    assert_int_equal(content_header_open(mk, cipher, hdr2, &b), 0);
    assert_int_equal(content_file_flags(b), CONTENT_FLAG_SPARSE);
    assert_memory_equal(content_file_id(b), content_file_id(a), CONTENT_FILE_ID_SIZE);
    assert_int_equal(content_block_open(b, 3, sealed, sizeof(plain) + over, back),
                     sizeof(plain));
    assert_memory_equal(back, plain, sizeof(plain));
    content_file_free(b);
    b = NULL;
    /* the old header still opens, with the old flags */
    assert_int_equal(content_header_open(mk, cipher, hdr, &b), 0);
    assert_int_equal(content_file_flags(b), 0);
    content_file_free(b);
    b = NULL;

    /* clearing the flag round-trips too */
    content_file_set_flags(a, 0);
    assert_int_equal(content_header_reseal(mk, a, hdr3), 0);
    assert_int_equal(content_header_open(mk, cipher, hdr3, &b), 0);
    assert_int_equal(content_file_flags(b), 0);
    content_file_free(b);
    b = NULL;

    /* reseal under a new master key (epoch 2): opens with it, not with the old one */
    content_file_set_flags(a, CONTENT_FLAG_SPARSE);
    assert_int_equal(content_header_reseal(mk2, a, hdr3), 0);
    assert_int_equal(content_header_peek(hdr3, &info), 0);
    assert_int_equal(info.key_epoch, 2);
    assert_int_equal(content_header_open(mk, cipher, hdr3, &b), -CONTENT_EBADMSG);
    assert_null(b);
    assert_int_equal(content_header_open(mk2, cipher, hdr3, &c), 0);
    assert_int_equal(content_file_flags(c), CONTENT_FLAG_SPARSE);
    assert_memory_equal(content_file_id(c), content_file_id(a), CONTENT_FILE_ID_SIZE);
    assert_int_equal(content_block_open(c, 3, sealed, sizeof(plain) + over, back),
                     sizeof(plain));
    assert_memory_equal(back, plain, sizeof(plain));

    content_file_free(a);
    content_file_free(c);
    mk_free(mk);
    mk_free(mk2);
}
CIPHER_TEST(t_header_reseal)

/*
 * The header format, checked against libsodium directly: unwrap a header made by
 * content_header_new() by hand (XChaCha20-Poly1305, AD = bytes 0..55, nonce = 56..79,
 * wrapped key = 80..127), and build a header by hand that content_header_open() accepts.
 */
static void t_header_independent(unsigned cipher)
{
    struct master_key *mk = mk_new(5);
    unsigned char hdr[CONTENT_HEADER_SIZE], key[CONTENT_KEY_SIZE];
    unsigned char id[CONTENT_FILE_ID_SIZE];
    unsigned long long klen = 0, clen = 0;
    struct content_file *a = NULL, *b = NULL;
    unsigned char plain[50], sealed[50 + 40], back[50];
    size_t over = content_block_overhead(cipher);

    assert_int_equal(content_header_new(mk, cipher, hdr, &a), 0);
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(key, &klen, NULL, hdr + 80, 48,
                                                                hdr, 56, hdr + 56, mk->bytes),
                     0);
    assert_int_equal(klen, CONTENT_KEY_SIZE);
    assert_int_equal(content_file_new_with_key(cipher, hdr + 16, key, &b), 0);
    randombytes_buf(plain, sizeof(plain));
    assert_int_equal(content_block_seal(a, 9, plain, sizeof(plain), sealed), 0);
    assert_int_equal(content_block_open(b, 9, sealed, sizeof(plain) + over, back),
                     sizeof(plain));
    assert_memory_equal(back, plain, sizeof(plain));
    content_file_free(a);
    content_file_free(b);
    a = b = NULL;

    /* a hand-made header */
    randombytes_buf(id, sizeof(id));
    randombytes_buf(key, sizeof(key));
    memset(hdr, 0, sizeof(hdr));
    memcpy(hdr, "CUSTDYF", 8);
    hdr[8] = 1;
    hdr[10] = (unsigned char)cipher;
    hdr[11] = 12;
    hdr[12] = CONTENT_FLAG_SPARSE;
    memcpy(hdr + 16, id, 16);
    hdr[48] = 5;
    randombytes_buf(hdr + 56, 24);
    crypto_aead_xchacha20poly1305_ietf_encrypt(hdr + 80, &clen, key, 32, hdr, 56, NULL, hdr + 56,
                                               mk->bytes);
    assert_int_equal(clen, 48);
    assert_int_equal(content_header_open(mk, cipher, hdr, &a), 0);
    assert_memory_equal(content_file_id(a), id, 16);
    assert_int_equal(content_file_flags(a), CONTENT_FLAG_SPARSE);
    assert_int_equal(content_file_new_with_key(cipher, id, key, &b), 0);
    assert_int_equal(content_block_seal(b, 0, plain, sizeof(plain), sealed), 0);
    assert_int_equal(content_block_open(a, 0, sealed, sizeof(plain) + over, back),
                     sizeof(plain));
    assert_memory_equal(back, plain, sizeof(plain));
    sodium_memzero(key, sizeof(key));
    content_file_free(a);
    content_file_free(b);
    mk_free(mk);
}
CIPHER_TEST(t_header_independent)

/* A correctly sealed header with chosen clear fields (the layout of crypto/content.c). */
static void make_header(const struct master_key *mk, unsigned cipher, unsigned version,
                        unsigned bshift, uint32_t flags, uint32_t epoch,
                        const unsigned char *id, const unsigned char *key,
                        unsigned char hdr[CONTENT_HEADER_SIZE])
{
    unsigned long long clen = 0;

    memset(hdr, 0, CONTENT_HEADER_SIZE);
    memcpy(hdr, "CUSTDYF", 8);
    hdr[8] = (unsigned char)version;
    hdr[9] = (unsigned char)(version >> 8);
    hdr[10] = (unsigned char)cipher;
    hdr[11] = (unsigned char)bshift;
    for (int i = 0; i < 4; i++) {
        hdr[12 + i] = (unsigned char)(flags >> (8 * i));
        hdr[48 + i] = (unsigned char)(epoch >> (8 * i));
    }
    memcpy(hdr + 16, id, 16);
    randombytes_buf(hdr + 56, 24);
    crypto_aead_xchacha20poly1305_ietf_encrypt(hdr + 80, &clen, key, 32, hdr, 56, NULL, hdr + 56,
                                               mk->bytes);
    assert_int_equal(clen, 48);
}

/* Headers whose tag is valid but whose clear fields are not acceptable are still rejected. */
static void t_header_authentic_but_invalid(unsigned cipher)
{
    unsigned other = cipher == CIPHER_AES256GCM ? CIPHER_XCHACHA20POLY1305 : CIPHER_AES256GCM;
    struct master_key *mk = mk_new(5);
    unsigned char hdr[CONTENT_HEADER_SIZE], id[16], key[32];
    struct content_file *f = NULL;

    randombytes_buf(id, sizeof(id));
    randombytes_buf(key, sizeof(key));
    make_header(mk, cipher, 1, 12, 0, 5, id, key, hdr);
    assert_int_equal(content_header_open(mk, cipher, hdr, &f), 0); /* the control */
    content_file_free(f);
    make_header(mk, cipher, 1, 13, 0, 5, id, key, hdr); /* another block size */
    expect_bad_header(mk, cipher, hdr);
    make_header(mk, cipher, 1, 0, 0, 5, id, key, hdr);
    expect_bad_header(mk, cipher, hdr);
    make_header(mk, cipher, 2, 12, 0, 5, id, key, hdr); /* another version */
    expect_bad_header(mk, cipher, hdr);
    make_header(mk, cipher, 0, 12, 0, 5, id, key, hdr);
    expect_bad_header(mk, cipher, hdr);
    make_header(mk, cipher, 1, 12, 0x2, 5, id, key, hdr); /* unknown flags */
    expect_bad_header(mk, cipher, hdr);
    make_header(mk, cipher, 1, 12, 0x80000001u, 5, id, key, hdr);
    expect_bad_header(mk, cipher, hdr);
    make_header(mk, other, 1, 12, 0, 5, id, key, hdr); /* the other cipher */
    expect_bad_header(mk, cipher, hdr);
    make_header(mk, 0, 1, 12, 0, 5, id, key, hdr);
    expect_bad_header(mk, cipher, hdr);
    make_header(mk, cipher, 1, 12, 0, 4, id, key, hdr); /* another epoch */
    expect_bad_header(mk, cipher, hdr);
    mk_free(mk);
}
CIPHER_TEST(t_header_authentic_but_invalid)

/* ---- known answers ---- */

/* Fixed inputs of the block-format vectors. */
static void kat_inputs(unsigned char id[16], unsigned char key[32], unsigned char nonce[24],
                       unsigned char plain[64])
{
    for (int i = 0; i < 16; i++)
        id[i] = (unsigned char)i;              /* 00 01 .. 0f */
    for (int i = 0; i < 32; i++)
        key[i] = (unsigned char)(0x80 + i);    /* 80 81 .. 9f */
    for (int i = 0; i < 24; i++)
        nonce[i] = (unsigned char)(0x40 + i);  /* 40 41 .. 57 */
    for (int i = 0; i < 64; i++)
        plain[i] = (unsigned char)(i * 7 + 3);
}
#define KAT_BLOCKNO 0x0102030405060708ULL
#define KAT_LEN 64

/*
 * Pinned sealed blocks (nonce | ciphertext | tag) of the 64-byte KAT plaintext as block
 * 0x0102030405060708, generated once by this code and cross-checked against libsodium below.
 * A change of the block format (AD, layout, nonce placement) breaks these.
 */
static const char kat_block_aes_hex[] =
    "404142434445464748494a4b"
    "dac0105e2cc3935e43b3982968f07e51031996b665d7500d99f90393a927ef57"
    "ce5fd34d6699b025ce81d4fdc2d502bf010be57a1952b44cd5dd6df740029566"
    "c74766c1ba7f1f4c61d6119b6bdf5b3d";
static const char kat_block_xchacha_hex[] =
    "404142434445464748494a4b4c4d4e4f5051525354555657"
    "f20662ec44d6d96ec0503e83a1f0f839413df3e68ad2014861084ccc859bd814"
    "e3d6e185d46b92692af1c87959ad1b16924bcb7cc34dd9f425760ef7dac82181"
    "bfc8c7f9802a1ec9ba64ecbae4001c1c";
/* BLAKE2b-256 of the sealed full block (4096 bytes of i*13+5) as block 5. */
static const char kat_full_aes_hash[] = 
    "1a11e53f6fe5353f5d9375a4b816dc1ea12cbc9722e544652a2ed21f21aa9d6d";
static const char kat_full_xchacha_hash[] = 
    "731579dae59437811df78257972e6d8202a46691d173f7ae7e28966d85cae5d9";

static void reference_seal(unsigned cipher, const unsigned char *id, uint64_t blockno,
                           const unsigned char *key, const unsigned char *nonce,
                           const unsigned char *plain, size_t len, unsigned char *out)
{
    unsigned char ad[24];
    size_t nlen = cipher == CIPHER_AES256GCM ? 12 : 24;
    unsigned long long clen = 0;

    memcpy(ad, id, 16);
    put_le64(ad + 16, blockno);
    memcpy(out, nonce, nlen);
    if (cipher == CIPHER_AES256GCM)
        assert_int_equal(crypto_aead_aes256gcm_encrypt(out + nlen, &clen, plain, len, ad, 24,
                                                       NULL, nonce, key),
                         0);
    else
        assert_int_equal(crypto_aead_xchacha20poly1305_ietf_encrypt(out + nlen, &clen, plain, len,
                                                                    ad, 24, NULL, nonce, key),
                         0);
    assert_int_equal(clen, len + 16);
}

static void expect_bad_block(const struct content_file *f, uint64_t blockno,
                             const unsigned char *sealed, size_t len);

static void t_kat_block(unsigned cipher)
{
    unsigned char id[16], key[32], nonce[24], plain[KAT_LEN];
    unsigned char sealed[KAT_LEN + 40], ref[KAT_LEN + 40], back[KAT_LEN];
    unsigned char full[CONTENT_BLOCK_SIZE], fsealed[CONTENT_MAX_SEALED_BLOCK];
    unsigned char fref[CONTENT_MAX_SEALED_BLOCK], fback[CONTENT_BLOCK_SIZE], hash[32];
    size_t over = content_block_overhead(cipher);
    struct content_file *f = NULL;

    kat_inputs(id, key, nonce, plain);
    assert_int_equal(content_file_new_with_key(cipher, id, key, &f), 0);
    assert_memory_equal(content_file_id(f), id, 16);
    assert_int_equal(content_file_cipher(f), cipher);

    /* (1) independent computation with libsodium */
    assert_int_equal(content_block_seal_with_nonce(f, KAT_BLOCKNO, plain, KAT_LEN, nonce, sealed),
                     0);
    reference_seal(cipher, id, KAT_BLOCKNO, key, nonce, plain, KAT_LEN, ref);
    assert_memory_equal(sealed, ref, KAT_LEN + over);
    /* the block index is little-endian in the AD: a big-endian one gives another tag */
    reference_seal(cipher, id, __builtin_bswap64(KAT_BLOCKNO), key, nonce, plain, KAT_LEN, ref);
    assert_memory_not_equal(sealed + over - 16 + KAT_LEN, ref + over - 16 + KAT_LEN, 16);

    /* (2) pinned bytes */
    assert_hex_equal(sealed, KAT_LEN + over,
                     cipher == CIPHER_AES256GCM ? kat_block_aes_hex : kat_block_xchacha_hex,
                     "pinned sealed block");
    assert_int_equal(content_block_open(f, KAT_BLOCKNO, sealed, KAT_LEN + over, back), KAT_LEN);
    assert_memory_equal(back, plain, KAT_LEN);

    /* a full block, block 5 */
    for (unsigned i = 0; i < CONTENT_BLOCK_SIZE; i++)
        full[i] = (unsigned char)(i * 13 + 5);
    assert_int_equal(content_block_seal_with_nonce(f, 5, full, CONTENT_BLOCK_SIZE, nonce,
                                                   fsealed),
                     0);
    reference_seal(cipher, id, 5, key, nonce, full, CONTENT_BLOCK_SIZE, fref);
    assert_memory_equal(fsealed, fref, CONTENT_BLOCK_SIZE + over);
    crypto_generichash(hash, sizeof(hash), fsealed, CONTENT_BLOCK_SIZE + over, NULL, 0);
    assert_hex_equal(hash, sizeof(hash),
                     cipher == CIPHER_AES256GCM ? kat_full_aes_hash : kat_full_xchacha_hash,
                     "BLAKE2b-256 of the pinned full block");
    assert_int_equal(content_block_open(f, 5, fsealed, CONTENT_BLOCK_SIZE + over, fback),
                     CONTENT_BLOCK_SIZE);
    assert_memory_equal(fback, full, CONTENT_BLOCK_SIZE);

    /* authentic blocks of impossible sizes are rejected: empty, and one byte over a block */
    {
        static unsigned char big[CONTENT_BLOCK_SIZE + 1], bigsealed[CONTENT_MAX_SEALED_BLOCK + 1];
        reference_seal(cipher, id, 5, key, nonce, big, 0, ref);
        expect_bad_block(f, 5, ref, over);
        memset(big, 0x33, sizeof(big));
        reference_seal(cipher, id, 5, key, nonce, big, sizeof(big), bigsealed);
        expect_bad_block(f, 5, bigsealed, sizeof(big) + over);
    }

    /* the nonce argument may alias the output (it is copied first) */
    memcpy(fsealed, nonce, 24);
    assert_int_equal(content_block_seal_with_nonce(f, KAT_BLOCKNO, plain, KAT_LEN, fsealed,
                                                   fsealed),
                     0);
    assert_memory_equal(fsealed, sealed, KAT_LEN + over);

    content_file_free(f);
}
CIPHER_TEST(t_kat_block)

/* The GCM specification (McGrew & Viega), test case 16: AES-256, 60-byte plaintext, AAD. */
static void test_kat_aes256gcm_spec(void **state)
{
    static const char k_hex[] =
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
    static const char iv_hex[] = "cafebabefacedbaddecaf888";
    static const char p_hex[] =
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
    static const char a_hex[] = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
    static const char c_hex[] =
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        "76fc6ece0f4e1768cddf8853bb2d551b"; /* tag */
    unsigned char k[32], iv[12], p[60], a[20], c[76], back[60];
    unsigned long long clen = 0, mlen = 0;

    (void)state;
    if (!content_cipher_aes_available())
        skip();
    hex2bin_or_fail(k_hex, k, sizeof(k));
    hex2bin_or_fail(iv_hex, iv, sizeof(iv));
    hex2bin_or_fail(p_hex, p, sizeof(p));
    hex2bin_or_fail(a_hex, a, sizeof(a));
    assert_int_equal(crypto_aead_aes256gcm_encrypt(c, &clen, p, sizeof(p), a, sizeof(a), NULL, iv,
                                                   k),
                     0);
    assert_int_equal(clen, sizeof(c));
    assert_hex_equal(c, sizeof(c), c_hex, "GCM spec test case 16");
    assert_int_equal(crypto_aead_aes256gcm_decrypt(back, &mlen, NULL, c, sizeof(c), a, sizeof(a),
                                                   iv, k),
                     0);
    assert_int_equal(mlen, sizeof(p));
    assert_memory_equal(back, p, sizeof(p));
}

/* draft-irtf-cfrg-xchacha-03, section A.3.1: XChaCha20-Poly1305 AEAD. */
static void test_kat_xchacha_draft(void **state)
{
    static const char pt[] = "Ladies and Gentlemen of the class of '99: If I could offer you "
                             "only one tip for the future, sunscreen would be it.";
    static const char aad_hex[] = "50515253c0c1c2c3c4c5c6c7";
    static const char k_hex[] =
        "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f";
    static const char iv_hex[] = "404142434445464748494a4b4c4d4e4f5051525354555657";
    static const char c_hex[] =
        "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
        "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
        "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
        "21f9664c97637da9768812f615c68b13b52e"
        "c0875924c1c7987947deafd8780acf49"; /* tag */
    unsigned char k[32], iv[24], aad[12], c[114 + 16], back[114];
    unsigned long long clen = 0, mlen = 0;

    (void)state;
    assert_int_equal(sizeof(pt) - 1, 114);
    hex2bin_or_fail(k_hex, k, sizeof(k));
    hex2bin_or_fail(iv_hex, iv, sizeof(iv));
    hex2bin_or_fail(aad_hex, aad, sizeof(aad));
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_encrypt(c, &clen,
                                                                (const unsigned char *)pt, 114,
                                                                aad, sizeof(aad), NULL, iv, k),
                     0);
    assert_int_equal(clen, sizeof(c));
    assert_hex_equal(c, sizeof(c), c_hex, "draft-irtf-cfrg-xchacha A.3.1");
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(back, &mlen, NULL, c, sizeof(c),
                                                                aad, sizeof(aad), iv, k),
                     0);
    assert_int_equal(mlen, 114);
    assert_memory_equal(back, pt, 114);
}

/* ---- tampering ---- */

/* Open must fail with -CONTENT_EBADMSG and leave the plaintext area zeroed. */
static void expect_bad_block(const struct content_file *f, uint64_t blockno,
                             const unsigned char *sealed, size_t len)
{
    static unsigned char out[CONTENT_BLOCK_SIZE + 64];
    size_t over = content_block_overhead(content_file_cipher(f));
    size_t plen = len > over ? len - over : 0;

    if (plen > CONTENT_BLOCK_SIZE)
        plen = 0; /* nothing may be written for an over-long block */
    memset(out, 0xA5, sizeof(out));
    assert_int_equal(content_block_open(f, blockno, sealed, len, out), -CONTENT_EBADMSG);
    assert_true(all_zero(out, plen));
}

static void t_tamper_bitflip(unsigned cipher)
{
    static const size_t sizes[] = {1, 17, CONTENT_BLOCK_SIZE};
    struct content_file *f = random_file(cipher);
    size_t over = content_block_overhead(cipher);
    unsigned char plain[CONTENT_BLOCK_SIZE], sealed[CONTENT_MAX_SEALED_BLOCK];
    unsigned char back[CONTENT_BLOCK_SIZE];

    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t len = sizes[s], slen = len + over;
        randombytes_buf(plain, len);
        assert_int_equal(content_block_seal(f, 42, plain, len, sealed), 0);
        for (size_t pos = 0; pos < slen; pos++) {
            unsigned bits[3] = {0, 7, (unsigned)(pos % 8)};
            int nbits = len < 64 ? 8 : 3; /* every bit of small blocks */
            for (int k = 0; k < nbits; k++) {
                unsigned bit = len < 64 ? (unsigned)k : bits[k];
                sealed[pos] ^= (unsigned char)(1u << bit);
                expect_bad_block(f, 42, sealed, slen);
                sealed[pos] ^= (unsigned char)(1u << bit);
            }
        }
        /* untouched, it still opens */
        assert_int_equal(content_block_open(f, 42, sealed, slen, back), (int)len);
        assert_memory_equal(back, plain, len);
    }
    content_file_free(f);
}
CIPHER_TEST(t_tamper_bitflip)

static void t_tamper_reorder(unsigned cipher)
{
    struct content_file *f = random_file(cipher);
    size_t over = content_block_overhead(cipher);
    unsigned char p0[CONTENT_BLOCK_SIZE], p1[CONTENT_BLOCK_SIZE];
    unsigned char s0[CONTENT_MAX_SEALED_BLOCK], s1[CONTENT_MAX_SEALED_BLOCK];
    unsigned char back[CONTENT_BLOCK_SIZE];
    size_t slen = CONTENT_BLOCK_SIZE + over;

    randombytes_buf(p0, sizeof(p0));
    randombytes_buf(p1, sizeof(p1));
    for (size_t j = 0; j < sizeof(block_nos) / sizeof(block_nos[0]); j++) {
        uint64_t b = block_nos[j];
        assert_int_equal(content_block_seal(f, b, p0, CONTENT_BLOCK_SIZE, s0), 0);
        /* every other index differing in any one bit of the 64-bit index */
        for (int bit = 0; bit < 64; bit++)
            expect_bad_block(f, b ^ (1ULL << bit), s0, slen);
        expect_bad_block(f, b + 1, s0, slen);
        expect_bad_block(f, b - 1, s0, slen);
        assert_int_equal(content_block_open(f, b, s0, slen, back), CONTENT_BLOCK_SIZE);
    }
    /* two neighbouring blocks swapped */
    assert_int_equal(content_block_seal(f, 0, p0, CONTENT_BLOCK_SIZE, s0), 0);
    assert_int_equal(content_block_seal(f, 1, p1, CONTENT_BLOCK_SIZE, s1), 0);
    expect_bad_block(f, 0, s1, slen);
    expect_bad_block(f, 1, s0, slen);
    /* a short last block moved to an earlier position */
    assert_int_equal(content_block_seal(f, 9, p1, 100, s1), 0);
    expect_bad_block(f, 8, s1, 100 + over);
    expect_bad_block(f, 0, s1, 100 + over);
    assert_int_equal(content_block_open(f, 9, s1, 100 + over, back), 100);
    content_file_free(f);
}
CIPHER_TEST(t_tamper_reorder)

static void t_tamper_other_file(unsigned cipher)
{
    struct master_key *mk = mk_new(1);
    unsigned char hdr_a[CONTENT_HEADER_SIZE], hdr_b[CONTENT_HEADER_SIZE];
    struct content_file *a = NULL, *b = NULL, *g = NULL, *h = NULL, *k = NULL;
    unsigned char plain[500], sealed[500 + 40];
    unsigned char id[CONTENT_FILE_ID_SIZE], key[CONTENT_KEY_SIZE];
    size_t over = content_block_overhead(cipher), slen = sizeof(plain) + over;

    assert_int_equal(content_header_new(mk, cipher, hdr_a, &a), 0);
    assert_int_equal(content_header_new(mk, cipher, hdr_b, &b), 0);
    randombytes_buf(plain, sizeof(plain));
    assert_int_equal(content_block_seal(a, 4, plain, sizeof(plain), sealed), 0);
    /* moved into another file of the same vault, same index */
    expect_bad_block(b, 4, sealed, slen);

    /* The AD binds the ID: same key with another ID fails, same ID with another key fails. */
    randombytes_buf(id, sizeof(id));
    randombytes_buf(key, sizeof(key));
    assert_int_equal(content_file_new_with_key(cipher, id, key, &g), 0);
    assert_int_equal(content_block_seal(g, 4, plain, sizeof(plain), sealed), 0);
    id[0] ^= 1;
    assert_int_equal(content_file_new_with_key(cipher, id, key, &h), 0);
    id[0] ^= 1;
    expect_bad_block(h, 4, sealed, slen);
    key[31] ^= 0x80;
    assert_int_equal(content_file_new_with_key(cipher, id, key, &k), 0);
    key[31] ^= 0x80;
    expect_bad_block(k, 4, sealed, slen);
    /* every single bit of the ID matters */
    for (int bit = 0; bit < 8 * CONTENT_FILE_ID_SIZE; bit++) {
        struct content_file *m = NULL;
        id[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        assert_int_equal(content_file_new_with_key(cipher, id, key, &m), 0);
        expect_bad_block(m, 4, sealed, slen);
        content_file_free(m);
        id[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    sodium_memzero(key, sizeof(key));
    content_file_free(g);
    content_file_free(h);
    content_file_free(k);
    content_file_free(a);
    content_file_free(b);
    mk_free(mk);
}
CIPHER_TEST(t_tamper_other_file)

static void t_tamper_length(unsigned cipher)
{
    static const size_t sizes[] = {1, 16, 100, CONTENT_BLOCK_SIZE - 1, CONTENT_BLOCK_SIZE};
    struct content_file *f = random_file(cipher);
    size_t over = content_block_overhead(cipher);
    unsigned char plain[CONTENT_BLOCK_SIZE];
    unsigned char sealed[CONTENT_MAX_SEALED_BLOCK + 64];

    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t len = sizes[s], slen = len + over;
        randombytes_buf(plain, len);
        assert_int_equal(content_block_seal(f, 1, plain, len, sealed), 0);
        /* every shorter length */
        for (size_t l = 0; l < slen; l++)
            expect_bad_block(f, 1, sealed, l);
        /* extended by 1..64 bytes of zeros or random bytes */
        for (size_t extra = 1; extra <= 64; extra++) {
            memset(sealed + slen, 0, extra);
            expect_bad_block(f, 1, sealed, slen + extra);
            randombytes_buf(sealed + slen, extra);
            expect_bad_block(f, 1, sealed, slen + extra);
        }
    }
    content_file_free(f);
}
CIPHER_TEST(t_tamper_length)

static void expect_bad_header(const struct master_key *mk, unsigned cipher,
                              const unsigned char *hdr)
{
    struct content_file *f = (struct content_file *)1;

    assert_int_equal(content_header_open(mk, cipher, hdr, &f), -CONTENT_EBADMSG);
    assert_null(f);
}

static void t_tamper_header(unsigned cipher)
{
    struct master_key *mk = mk_new(1);
    unsigned char hdr[CONTENT_HEADER_SIZE], bad[CONTENT_HEADER_SIZE];
    struct content_file *f = NULL;

    assert_int_equal(content_header_new(mk, cipher, hdr, &f), 0);
    content_file_free(f);
    /* every bit of every byte, including generation, plaintext size and reserved bytes */
    for (int pos = 0; pos < CONTENT_HEADER_SIZE; pos++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, hdr, sizeof(bad));
            bad[pos] ^= (unsigned char)(1u << bit);
            expect_bad_header(mk, cipher, bad);
        }
    /* a whole byte replaced by each other value in the clear part */
    for (int pos = 0; pos < 56; pos++)
        for (int v = 0; v < 256; v += 17) {
            if (hdr[pos] == v)
                continue;
            memcpy(bad, hdr, sizeof(bad));
            bad[pos] = (unsigned char)v;
            expect_bad_header(mk, cipher, bad);
        }
    /* and the original still opens */
    f = NULL;
    assert_int_equal(content_header_open(mk, cipher, hdr, &f), 0);
    content_file_free(f);
    mk_free(mk);
}
CIPHER_TEST(t_tamper_header)

static void t_header_wrong_keys(unsigned cipher)
{
    unsigned other = cipher == CIPHER_AES256GCM ? CIPHER_XCHACHA20POLY1305 : CIPHER_AES256GCM;
    struct master_key *mk = mk_new(1), *mk_other = mk_new(1), *mk_epoch = mk_new(2);
    unsigned char hdr[CONTENT_HEADER_SIZE];
    struct content_file *f = NULL;

    assert_int_equal(content_header_new(mk, cipher, hdr, &f), 0);
    content_file_free(f);
    /* another vault's master key */
    expect_bad_header(mk_other, cipher, hdr);
    /* the right key bytes with another epoch */
    memcpy(mk_epoch->bytes, mk->bytes, CONTENT_KEY_SIZE);
    expect_bad_header(mk_epoch, cipher, hdr);
    /* the other cipher, and unknown ones */
    expect_bad_header(mk, other, hdr);
    expect_bad_header(mk, 0, hdr);
    expect_bad_header(mk, 3, hdr);
    /* every single-bit change of the master key */
    for (int bit = 0; bit < 8 * CONTENT_KEY_SIZE; bit += 3) {
        mk->bytes[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        expect_bad_header(mk, cipher, hdr);
        mk->bytes[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    f = NULL;
    assert_int_equal(content_header_open(mk, cipher, hdr, &f), 0);
    content_file_free(f);
    mk_free(mk);
    mk_free(mk_other);
    mk_free(mk_epoch);
}
CIPHER_TEST(t_header_wrong_keys)

static void t_header_swapped(unsigned cipher)
{
    struct master_key *mk = mk_new(1);
    unsigned char hdr_a[CONTENT_HEADER_SIZE], hdr_b[CONTENT_HEADER_SIZE];
    unsigned char spliced[CONTENT_HEADER_SIZE];
    struct content_file *a = NULL, *b = NULL, *x = NULL;
    unsigned char plain[300], sealed[300 + 40];
    size_t over = content_block_overhead(cipher);

    assert_int_equal(content_header_new(mk, cipher, hdr_a, &a), 0);
    assert_int_equal(content_header_new(mk, cipher, hdr_b, &b), 0);
    randombytes_buf(plain, sizeof(plain));
    assert_int_equal(content_block_seal(a, 0, plain, sizeof(plain), sealed), 0);

    /* file A's data with file B's header copied over its own: B's ID and key, A's blocks fail */
    assert_int_equal(content_header_open(mk, cipher, hdr_b, &x), 0);
    assert_memory_not_equal(content_file_id(x), content_file_id(a), CONTENT_FILE_ID_SIZE);
    assert_memory_equal(content_file_id(x), content_file_id(b), CONTENT_FILE_ID_SIZE);
    expect_bad_block(x, 0, sealed, sizeof(plain) + over);
    content_file_free(x);

    /* B's header with A's file ID pasted in: the AD no longer matches */
    memcpy(spliced, hdr_b, sizeof(spliced));
    memcpy(spliced + 16, hdr_a + 16, 16);
    expect_bad_header(mk, cipher, spliced);
    /* A's clear part with B's wrapped key, and the other way round */
    memcpy(spliced, hdr_a, 56);
    memcpy(spliced + 56, hdr_b + 56, 72);
    expect_bad_header(mk, cipher, spliced);
    memcpy(spliced, hdr_b, 56);
    memcpy(spliced + 56, hdr_a + 56, 72);
    expect_bad_header(mk, cipher, spliced);

    content_file_free(a);
    content_file_free(b);
    mk_free(mk);
}
CIPHER_TEST(t_header_swapped)

static void t_header_magic_version(unsigned cipher)
{
    struct master_key *mk = mk_new(1);
    unsigned char hdr[CONTENT_HEADER_SIZE], bad[CONTENT_HEADER_SIZE];
    struct content_header_info info;
    struct content_file *f = NULL;

    assert_int_equal(content_header_new(mk, cipher, hdr, &f), 0);
    content_file_free(f);

    /* wrong magic */
    for (int pos = 0; pos < 8; pos++) {
        memcpy(bad, hdr, sizeof(bad));
        bad[pos] = (unsigned char)(bad[pos] + 1);
        assert_int_equal(content_header_peek(bad, &info), -CONTENT_EBADMSG);
        expect_bad_header(mk, cipher, bad);
    }
    memcpy(bad, hdr, sizeof(bad));
    memcpy(bad, "custdyf", 8);
    assert_int_equal(content_header_peek(bad, &info), -CONTENT_EBADMSG);
    expect_bad_header(mk, cipher, bad);
    /* wrong version: 0, 2, 0x100, 0xffff */
    static const uint16_t versions[] = {0, 2, 0x100, 0x101, 0xffff};
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        memcpy(bad, hdr, sizeof(bad));
        bad[8] = (unsigned char)versions[i];
        bad[9] = (unsigned char)(versions[i] >> 8);
        assert_int_equal(content_header_peek(bad, &info), -CONTENT_EBADMSG);
        expect_bad_header(mk, cipher, bad);
    }
    /* unknown flags and another block size are rejected */
    memcpy(bad, hdr, sizeof(bad));
    bad[12] |= 0x2;
    assert_int_equal(content_header_peek(bad, &info), 0);
    assert_int_equal(info.flags, 0x2);
    expect_bad_header(mk, cipher, bad);
    memcpy(bad, hdr, sizeof(bad));
    bad[15] |= 0x80;
    expect_bad_header(mk, cipher, bad);
    memcpy(bad, hdr, sizeof(bad));
    bad[11] = 13;
    expect_bad_header(mk, cipher, bad);
    /* all zeros, all ones, random */
    memset(bad, 0, sizeof(bad));
    assert_int_equal(content_header_peek(bad, &info), -CONTENT_EBADMSG);
    expect_bad_header(mk, cipher, bad);
    memset(bad, 0xff, sizeof(bad));
    expect_bad_header(mk, cipher, bad);
    for (int i = 0; i < 100; i++) {
        randombytes_buf(bad, sizeof(bad));
        if (i % 2)
            memcpy(bad, hdr, 16); /* valid-looking clear part */
        expect_bad_header(mk, cipher, bad);
    }
    mk_free(mk);
}
CIPHER_TEST(t_header_magic_version)

/* peek needs no key, and reads what it can from a header of another vault */
static void t_header_peek(unsigned cipher)
{
    struct master_key *mk = mk_new(0x01020304);
    unsigned char hdr[CONTENT_HEADER_SIZE];
    struct content_header_info info;
    struct content_file *f = NULL;

    assert_int_equal(content_header_new(mk, cipher, hdr, &f), 0);
    content_file_set_flags(f, CONTENT_FLAG_SPARSE);
    assert_int_equal(content_header_reseal(mk, f, hdr), 0);
    assert_memory_equal(hdr + 48, "\x04\x03\x02\x01", 4);
    mk_free(mk);
    memset(&info, 0x55, sizeof(info));
    assert_int_equal(content_header_peek(hdr, &info), 0);
    assert_int_equal(info.version, 1);
    assert_int_equal(info.cipher, cipher);
    assert_int_equal(info.flags, CONTENT_FLAG_SPARSE);
    assert_memory_equal(info.file_id, content_file_id(f), CONTENT_FILE_ID_SIZE);
    assert_int_equal(info.generation, 0);
    assert_int_equal(info.key_epoch, 0x01020304);
    /* generation decodes little-endian (reserved in version 1, but peek reports it) */
    for (int i = 0; i < 8; i++)
        hdr[32 + i] = (unsigned char)(0x11 * (i + 1));
    assert_int_equal(content_header_peek(hdr, &info), 0);
    assert_int_equal(info.generation, 0x8877665544332211ULL);
    content_file_free(f);
}
CIPHER_TEST(t_header_peek)

/* ---- format 2: 40-byte headers, keys derived from the file-key root ---- */

#define V2_HDR 40

/* Sizes: the header is 40 bytes, blocks follow as in format 1. */
static void t_v2_sizes(unsigned cipher)
{
    unsigned layout = cipher | CONTENT_FORMAT2;
    uint64_t over = content_block_overhead(cipher), stored = BS + over;
    static const uint64_t sizes[] = {0, 1, 4095, 4096, 4097, 100000, 1ULL << 30};
    int valid;

    assert_int_equal(content_header_size(layout), V2_HDR);
    assert_int_equal(content_header_size(cipher), CONTENT_HEADER_SIZE);
    assert_int_equal(content_block_overhead(layout), over);
    assert_int_equal(content_block_offset(layout, 0), V2_HDR);
    assert_int_equal(content_block_offset(layout, 3), V2_HDR + 3 * stored);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint64_t n = sizes[i], c = content_cipher_size(layout, n);
        if (n > 0)
            assert_int_equal(c, V2_HDR + n + ((n + BS - 1) / BS) * over);
        assert_int_equal(content_plain_size(layout, n == 0 ? 0 : c, &valid), n);
        assert_true(valid);
    }
    /* a cut header, or a header and a last block with no plaintext: invalid */
    for (uint64_t c = 1; c < V2_HDR; c++) {
        content_plain_size(layout, c, &valid);
        assert_false(valid);
    }
    for (uint64_t c = V2_HDR + 1; c <= V2_HDR + over; c++) {
        content_plain_size(layout, c, &valid);
        assert_false(valid);
    }
    content_plain_size(layout, V2_HDR, &valid);
    assert_true(valid);
}
CIPHER_TEST(t_v2_sizes)

/*
 * The header as FORMAT.md describes it, checked against libsodium directly: magic, cipher,
 * flags, reserved, ID; data key and MAC key = BLAKE2b-512(key = root, salt = ID,
 * personal = "custodyfs-file-2"); tag = BLAKE2b-128(key = MAC key, bytes 0..23); blocks sealed
 * under the derived data key with the file ID and index as associated data.
 */
static void t_v2_layout(unsigned cipher)
{
    unsigned layout = cipher | CONTENT_FORMAT2;
    struct master_key *mk = mk_new_v2();
    unsigned char hdr[CONTENT_HEADER_SIZE], keys[64], tag[16], ad[24];
    unsigned char plain[1000], sealed[CONTENT_MAX_SEALED_BLOCK], back[1000];
    size_t nlen = content_nonce_size(cipher);
    unsigned long long mlen;
    struct content_file *a = NULL, *b = NULL;
    int rc;

    memset(hdr, 0xEE, sizeof(hdr));
    assert_int_equal(content_header_new(mk, layout, hdr, &a), 0);
    assert_int_equal(content_file_cipher(a), cipher);
    assert_memory_equal(hdr, "CST2", 4);
    assert_int_equal(hdr[4], cipher);
    assert_int_equal(hdr[5], 0);
    assert_int_equal(hdr[6], 0);
    assert_int_equal(hdr[7], 0);
    assert_memory_equal(hdr + 8, content_file_id(a), CONTENT_FILE_ID_SIZE);
    assert_false(all_zero(hdr + 8, CONTENT_FILE_ID_SIZE));

    assert_int_equal(crypto_generichash_blake2b_salt_personal(
                         keys, sizeof(keys), NULL, 0, mk->file_root, CONTENT_KEY_SIZE, hdr + 8,
                         (const unsigned char *)"custodyfs-file-2"), 0);
    crypto_generichash(tag, sizeof(tag), hdr, 24, keys + 32, 32);
    assert_memory_equal(hdr + 24, tag, 16);

    randombytes_buf(plain, sizeof(plain));
    assert_int_equal(content_block_seal(a, 7, plain, sizeof(plain), sealed), 0);
    memcpy(ad, hdr + 8, 16);
    put_le64(ad + 16, 7);
    if (cipher == CIPHER_AES256GCM)
        rc = crypto_aead_aes256gcm_decrypt(back, &mlen, NULL, sealed + nlen,
                                           sizeof(plain) + CONTENT_TAG_SIZE, ad, sizeof(ad),
                                           sealed, keys);
    else
        rc = crypto_aead_xchacha20poly1305_ietf_decrypt(back, &mlen, NULL, sealed + nlen,
                                                        sizeof(plain) + CONTENT_TAG_SIZE, ad,
                                                        sizeof(ad), sealed, keys);
    assert_int_equal(rc, 0);
    assert_memory_equal(back, plain, sizeof(plain));

    /* open: same ID and key */
    assert_int_equal(content_header_open(mk, layout, hdr, &b), 0);
    assert_memory_equal(content_file_id(b), content_file_id(a), CONTENT_FILE_ID_SIZE);
    assert_int_equal(content_file_flags(b), 0);
    assert_int_equal(content_block_open(b, 7, sealed, sizeof(plain) + nlen + CONTENT_TAG_SIZE,
                                        back), (int)sizeof(plain));
    assert_memory_equal(back, plain, sizeof(plain));
    sodium_memzero(keys, sizeof(keys));
    content_file_free(a);
    content_file_free(b);
    mk_free(mk);
}
CIPHER_TEST(t_v2_layout)

/* Every bit of the 40 bytes is authenticated; the reseal after a flag change opens with it. */
static void t_v2_tamper_header(unsigned cipher)
{
    unsigned layout = cipher | CONTENT_FORMAT2;
    struct master_key *mk = mk_new_v2();
    unsigned char hdr[CONTENT_HEADER_SIZE], bad[CONTENT_HEADER_SIZE];
    struct content_file *f = NULL, *g = NULL;

    assert_int_equal(content_header_new(mk, layout, hdr, &f), 0);
    for (int i = 0; i < V2_HDR; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, hdr, sizeof(bad));
            bad[i] ^= (unsigned char)(1u << bit);
            expect_bad_header(mk, layout, bad);
        }
    }
    /* the sparse flag, set and resealed */
    content_file_set_flags(f, CONTENT_FLAG_SPARSE);
    assert_int_equal(content_header_reseal(mk, f, hdr), 0);
    assert_int_equal(hdr[5], CONTENT_FLAG_SPARSE);
    assert_int_equal(content_header_open(mk, layout, hdr, &g), 0);
    assert_int_equal(content_file_flags(g), CONTENT_FLAG_SPARSE);
    assert_memory_equal(content_file_id(g), content_file_id(f), CONTENT_FILE_ID_SIZE);
    content_file_free(g);
    /* ... and it cannot be set or cleared without the key */
    memcpy(bad, hdr, sizeof(bad));
    bad[5] = 0;
    expect_bad_header(mk, layout, bad);
    content_file_free(f);
    mk_free(mk);
}
CIPHER_TEST(t_v2_tamper_header)

/*
 * Wrong keys and wrong formats: another root, no root, another master key with the same root
 * (format 2 does not depend on it), a format-1 header read as format 2 and back, another cipher.
 */
static void t_v2_keys_and_formats(unsigned cipher)
{
    unsigned layout = cipher | CONTENT_FORMAT2;
    unsigned other = (cipher == CIPHER_AES256GCM ? CIPHER_XCHACHA20POLY1305 : CIPHER_AES256GCM);
    struct master_key *mk = mk_new_v2(), *mk2 = mk_new_v2(), *bare = mk_new(1);
    unsigned char hdr[CONTENT_HEADER_SIZE], hdr1[CONTENT_HEADER_SIZE];
    struct content_file *f = NULL, *g = NULL;

    assert_int_equal(content_header_new(mk, layout, hdr, &f), 0);
    expect_bad_header(mk2, layout, hdr);
    expect_bad_header(bare, layout, hdr);
    expect_bad_header(mk, cipher, hdr);
    expect_bad_header(mk, other | CONTENT_FORMAT2, hdr);
    assert_int_equal(content_header_new(bare, layout, hdr1, &g), -CONTENT_EINVAL);
    assert_null(g);
    /* the root alone decides: a new master key wrapping the same root opens the file */
    memcpy(mk2->file_root, mk->file_root, CONTENT_KEY_SIZE);
    assert_int_equal(content_header_open(mk2, layout, hdr, &g), 0);
    content_file_free(g);
    /* a format-1 header is not a format-2 one, and the other way round */
    assert_int_equal(content_header_new(mk, cipher, hdr1, &g), 0);
    content_file_free(g);
    expect_bad_header(mk, layout, hdr1);
    memcpy(hdr1, hdr, V2_HDR);
    memset(hdr1 + V2_HDR, 0, CONTENT_HEADER_SIZE - V2_HDR);
    expect_bad_header(mk, cipher, hdr1);
    content_file_free(f);
    mk_free(mk);
    mk_free(mk2);
    mk_free(bare);
}
CIPHER_TEST(t_v2_keys_and_formats)

/* Another file's header over a file: its blocks no longer open (the key follows the ID). */
static void t_v2_header_swapped(unsigned cipher)
{
    unsigned layout = cipher | CONTENT_FORMAT2;
    struct master_key *mk = mk_new_v2();
    unsigned char ha[CONTENT_HEADER_SIZE], hb[CONTENT_HEADER_SIZE];
    unsigned char plain[CONTENT_BLOCK_SIZE], sealed[CONTENT_MAX_SEALED_BLOCK];
    unsigned char back[CONTENT_BLOCK_SIZE];
    struct content_file *a = NULL, *b = NULL, *x = NULL;
    size_t len = CONTENT_BLOCK_SIZE + content_block_overhead(cipher);

    assert_int_equal(content_header_new(mk, layout, ha, &a), 0);
    assert_int_equal(content_header_new(mk, layout, hb, &b), 0);
    assert_memory_not_equal(content_file_id(a), content_file_id(b), CONTENT_FILE_ID_SIZE);
    randombytes_buf(plain, sizeof(plain));
    assert_int_equal(content_block_seal(a, 0, plain, sizeof(plain), sealed), 0);
    assert_int_equal(content_header_open(mk, layout, hb, &x), 0);
    assert_int_equal(content_block_open(x, 0, sealed, len, back), -CONTENT_EBADMSG);
    assert_true(all_zero(back, sizeof(back)));
    content_file_free(x);
    assert_int_equal(content_header_open(mk, layout, ha, &x), 0);
    assert_int_equal(content_block_open(x, 0, sealed, len, back), (int)sizeof(plain));
    content_file_free(x);
    content_file_free(a);
    content_file_free(b);
    mk_free(mk);
}
CIPHER_TEST(t_v2_header_swapped)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(t_names),
        cmocka_unit_test(test_unknown_cipher),
        BOTH(t_size_inverse),
        BOTH(t_size_invalid),
        BOTH(t_block_offset),
        BOTH(t_roundtrip),
        BOTH(t_seal_bad_sizes),
        BOTH(t_fresh_nonces),
        BOTH(t_threads),
        BOTH(t_fork_nonces),
        BOTH(t_header_roundtrip),
        BOTH(t_header_reseal),
        BOTH(t_header_independent),
        BOTH(t_header_authentic_but_invalid),
        BOTH(t_kat_block),
        cmocka_unit_test(test_kat_aes256gcm_spec),
        cmocka_unit_test(test_kat_xchacha_draft),
        BOTH(t_tamper_bitflip),
        BOTH(t_tamper_reorder),
        BOTH(t_tamper_other_file),
        BOTH(t_tamper_length),
        BOTH(t_tamper_header),
        BOTH(t_header_wrong_keys),
        BOTH(t_header_swapped),
        BOTH(t_header_magic_version),
        BOTH(t_header_peek),
        BOTH(t_v2_sizes),
        BOTH(t_v2_layout),
        BOTH(t_v2_tamper_header),
        BOTH(t_v2_keys_and_formats),
        BOTH(t_v2_header_swapped),
    };

    return cmocka_run_group_tests_name("content", tests, group_setup, NULL);
}
