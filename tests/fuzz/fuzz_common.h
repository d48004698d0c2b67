/*
 * Shared by the libFuzzer targets in tests/fuzz/ and by gen_corpus.c: the fixed keys the targets
 * use (gen_corpus seals its seeds under the same keys, so that seeds open), the input layouts,
 * a byte reader, and FUZZ_CHECK, which reports a violated invariant and aborts (libFuzzer then
 * saves the input as a crash).
 *
 * Input layouts (the first byte selects a mode; see each target for the details):
 *   fuzz_content   0: header   [0][cipher id][128 header bytes]
 *                  1: block    [1][cipher selector][block number, LE64][sealed block...]
 *                  2: sizes    [2][cipher id][cipher size, LE64][plain size, LE64]
 *   fuzz_vaultcfg  the configuration text itself (no mode byte)
 *   fuzz_audit     0: head line [0][text...]
 *                  1: records   [1][prev hash (32)][record][mutation][record]
 *                  2: SQL row   [2][19 typed column values]
 */
#ifndef CUSTODY_FUZZ_COMMON_H
#define CUSTODY_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The master key every target opens headers with, and its epoch. */
static const unsigned char FUZZ_MASTER_KEY[32] = {
    0x6d, 0x61, 0x73, 0x74, 0x65, 0x72, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x66, 0x6f, 0x72, 0x2d, 0x66,
    0x75, 0x7a, 0x7a, 0x69, 0x6e, 0x67, 0x2d, 0x63, 0x75, 0x73, 0x74, 0x6f, 0x64, 0x79, 0x66, 0x73,
};
#define FUZZ_MASTER_EPOCH 1u

/* The data key and file ID of the file whose blocks fuzz_content opens. */
static const unsigned char FUZZ_FILE_KEY[32] = {
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0,
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
};
static const unsigned char FUZZ_FILE_ID[16] = {
    0xf1, 0x1e, 0x1d, 0x00, 0xc0, 0xff, 0xee, 0x42, 0x13, 0x37, 0xba, 0xbe, 0xca, 0xfe, 0xd0, 0x0d,
};

/* The file-key root of format-2 headers. */
static const unsigned char FUZZ_FILE_ROOT[32] = {
    0x52, 0x00, 0x07, 0x4b, 0x65, 0x79, 0x32, 0x10, 0x9a, 0x8b, 0x7c, 0x6d, 0x5e, 0x4f, 0x30, 0x21,
    0x12, 0x03, 0xf4, 0xe5, 0xd6, 0xc7, 0xb8, 0xa9, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70, 0x81,
};

/* fuzz_content modes and the offset of the sealed bytes in a block input. */
enum { FUZZ_CONTENT_HEADER = 0, FUZZ_CONTENT_BLOCK = 1, FUZZ_CONTENT_SIZES = 2,
       FUZZ_CONTENT_HEADER2 = 3, FUZZ_CONTENT_MODES = 4 };
#define FUZZ_BLOCK_PREFIX 10

/* fuzz_audit modes. */
enum { FUZZ_AUDIT_HEAD = 0, FUZZ_AUDIT_RECORDS = 1, FUZZ_AUDIT_SQLROW = 2, FUZZ_AUDIT_MODES = 3 };

/* Abort with a message naming the broken invariant. */
#define FUZZ_CHECK(cond, ...)                                                                   \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "\nINVARIANT VIOLATED at %s:%d: %s\n  ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fprintf(stderr, "\n");                                                              \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

/* Reads the fuzzer's bytes front to back; past the end it yields zeros. */
struct fuzz_reader {
    const uint8_t *p;
    size_t n;
};

static inline uint8_t fr_u8(struct fuzz_reader *r)
{
    uint8_t v = 0;

    if (r->n > 0) {
        v = r->p[0];
        r->p++;
        r->n--;
    }
    return v;
}

static inline uint64_t fr_u64(struct fuzz_reader *r)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v |= (uint64_t)fr_u8(r) << (8 * i);
    return v;
}

/* Copy up to n bytes out; returns how many were available. */
static inline size_t fr_bytes(struct fuzz_reader *r, void *out, size_t n)
{
    size_t k = n < r->n ? n : r->n;

    memcpy(out, r->p, k);
    memset((unsigned char *)out + k, 0, n - k);
    r->p += k;
    r->n -= k;
    return k;
}

static inline void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Knobs: CUSTODYFS_FUZZ_RELAX="name,name" turns off the named strict checks (see fuzz_audit.c). */
static inline int fuzz_relaxed(const char *name)
{
    const char *s = getenv("CUSTODYFS_FUZZ_RELAX");
    size_t n = strlen(name);

    while (s != NULL && *s != '\0') {
        if (strncmp(s, name, n) == 0 && (s[n] == '\0' || s[n] == ','))
            return 1;
        s = strchr(s, ',');
        if (s != NULL)
            s++;
    }
    return 0;
}

#endif
