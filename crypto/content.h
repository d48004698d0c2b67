/*
 * content: the on-disk format of one encrypted file (crypto/FORMAT.md has the full layout).
 *
 * A backing file is a 128-byte authenticated header followed by blocks.  Block i holds plaintext
 * bytes [i * CONTENT_BLOCK_SIZE, (i + 1) * CONTENT_BLOCK_SIZE) sealed as
 *     nonce | ciphertext | tag
 * with the vault's AEAD (AES-256-GCM or XChaCha20-Poly1305), the file's own data key, a fresh
 * random nonce on every write, and associated data binding the file ID and the block index.  Only
 * the last block may be short.  The plaintext size follows from the backing size alone.
 *
 * The header carries magic, version, cipher, flags, the random file ID, and the file's data key
 * wrapped (XChaCha20-Poly1305) by the vault's master key with every other header byte as
 * associated data: a header that opens is authentic as a whole.
 *
 * This module sees bytes and keys, never paths or file descriptors.  Functions that open sealed
 * data check the tag before any plaintext is written out, and zero their output on failure.
 */
#ifndef CUSTODY_CONTENT_H
#define CUSTODY_CONTENT_H

#include <stddef.h>
#include <stdint.h>

#define CONTENT_HEADER_SIZE 128
#define CONTENT_BLOCK_SHIFT 12
#define CONTENT_BLOCK_SIZE (1u << CONTENT_BLOCK_SHIFT)
#define CONTENT_FILE_ID_SIZE 16
#define CONTENT_KEY_SIZE 32
#define CONTENT_TAG_SIZE 16
#define CONTENT_MAX_NONCE_SIZE 24
/* Largest sealed block: the XChaCha20-Poly1305 nonce, a full block, the tag. */
#define CONTENT_MAX_SEALED_BLOCK (CONTENT_MAX_NONCE_SIZE + CONTENT_BLOCK_SIZE + CONTENT_TAG_SIZE)
#define CONTENT_FORMAT_VERSION 1

/* Header flags (authenticated). */
#define CONTENT_FLAG_SPARSE 0x1u /* holes may exist: an all-zero stored block reads as zeros */
#define CONTENT_FLAGS_KNOWN CONTENT_FLAG_SPARSE

enum content_cipher {
    CIPHER_AES256GCM = 1,
    CIPHER_XCHACHA20POLY1305 = 2,
};

/* The vault's master key, in guarded memory.  Owned by whoever created it. */
struct master_key {
    unsigned char *bytes;   /* CONTENT_KEY_SIZE bytes from secmem_alloc() */
    uint32_t epoch;         /* which master key this is; recorded in each header */
};

/*
 * One open file's crypto state: its ID, flags and data key (with the expanded AES state), all in
 * one guarded slab slot.  Opaque; created by content_header_new() or content_header_open(),
 * released by content_file_free().
 */
struct content_file;

/* Header fields in the clear, as decoded. */
struct content_header_info {
    uint16_t version;
    uint8_t cipher;
    uint32_t flags;
    unsigned char file_id[CONTENT_FILE_ID_SIZE];
    uint64_t generation;
    uint32_t key_epoch;
};

/* Errors returned (as negative values) by the functions below. */
#define CONTENT_EBADMSG 74   /* authentication failed, or malformed header/block (EBADMSG) */
#define CONTENT_ENOMEM 12    /* out of guarded memory (ENOMEM) */
#define CONTENT_EINVAL 22    /* a caller passed impossible sizes (EINVAL) */

/* True when this CPU runs AES-256-GCM in hardware (libsodium's requirement for it). */
int content_cipher_aes_available(void);
/* The vault's default cipher on this machine: AES-256-GCM when available, else XChaCha20. */
enum content_cipher content_cipher_default(void);
/* "aes256gcm" / "xchacha20poly1305", or NULL for an unknown id. */
const char *content_cipher_name(unsigned cipher);
/* Inverse of content_cipher_name(); 0 when unknown. */
unsigned content_cipher_from_name(const char *name);
/* Nonce bytes per block for this cipher (12 or 24); 0 when unknown. */
size_t content_nonce_size(unsigned cipher);
/* Bytes a stored block adds to its plaintext: nonce + tag. */
size_t content_block_overhead(unsigned cipher);

/* Backing-file offset where block `blockno` starts. */
uint64_t content_block_offset(unsigned cipher, uint64_t blockno);
/* Backing-file size of a file with `plain_size` bytes of plaintext. */
uint64_t content_cipher_size(unsigned cipher, uint64_t plain_size);
/*
 * Plaintext size of a backing file of `cipher_size` bytes.  A size that no valid file has (a cut
 * header, or a last block shorter than its overhead) sets *valid to 0 and returns the plaintext
 * size of the whole blocks only.  An empty backing file is an empty plaintext file (a file whose
 * header was not yet written).
 */
uint64_t content_plain_size(unsigned cipher, uint64_t cipher_size, int *valid);

/*
 * content_header_new: make a fresh file: random file ID, random data key, flags 0, generation 0,
 * sealed under `mk`.  OUT: hdr (CONTENT_HEADER_SIZE bytes to write at offset 0), *out (caller
 * frees with content_file_free()).  Returns 0, -CONTENT_ENOMEM or -CONTENT_EINVAL (unknown cipher).
 */
int content_header_new(const struct master_key *mk, unsigned cipher,
                       unsigned char hdr[CONTENT_HEADER_SIZE], struct content_file **out);

/*
 * content_header_open: authenticate and decode a header read from disk.  `cipher` is the vault's
 * cipher; a header naming another is rejected.  OUT: *out (caller frees).  Returns 0, or
 * -CONTENT_EBADMSG (wrong magic, version, cipher, unknown flags, or failed authentication:
 * the header was altered, belongs to another vault, or a wrong master key), or -CONTENT_ENOMEM.
 */
int content_header_open(const struct master_key *mk, unsigned cipher,
                        const unsigned char hdr[CONTENT_HEADER_SIZE], struct content_file **out);

/*
 * content_header_reseal: re-encode the header of `f` (after a flag change, or under a new master
 * key) with a fresh wrapping nonce.  OUT: hdr.  Returns 0 or -CONTENT_EINVAL.
 */
int content_header_reseal(const struct master_key *mk, const struct content_file *f,
                          unsigned char hdr[CONTENT_HEADER_SIZE]);

/*
 * content_header_peek: decode the header's clear fields without any key (for tools and
 * diagnostics; nothing decoded here is trustworthy until content_header_open() succeeds).
 * Returns 0 or -CONTENT_EBADMSG when the magic or version is wrong.
 */
int content_header_peek(const unsigned char hdr[CONTENT_HEADER_SIZE],
                        struct content_header_info *info);

/* content_file_free: wipe and release.  Accepts NULL. */
void content_file_free(struct content_file *f);
/* The file's 16-byte random ID. */
const unsigned char *content_file_id(const struct content_file *f);
uint32_t content_file_flags(const struct content_file *f);
void content_file_set_flags(struct content_file *f, uint32_t flags);
unsigned content_file_cipher(const struct content_file *f);

/*
 * content_block_seal: encrypt `plain_len` (1..CONTENT_BLOCK_SIZE) bytes as block `blockno` of `f`
 * with a fresh random nonce.  OUT: out, exactly plain_len + content_block_overhead() bytes.
 * Returns 0 or -CONTENT_EINVAL.  Thread-safe: several threads may seal blocks of one file.
 */
int content_block_seal(const struct content_file *f, uint64_t blockno,
                       const unsigned char *plain, size_t plain_len, unsigned char *out);

/*
 * content_block_seal_with_nonce: as content_block_seal() with a given nonce.  Only for
 * known-answer tests: a nonce must never be reused with a key.
 */
int content_block_seal_with_nonce(const struct content_file *f, uint64_t blockno,
                                  const unsigned char *plain, size_t plain_len,
                                  const unsigned char *nonce, unsigned char *out);

/*
 * content_block_open: authenticate and decrypt stored block `blockno` of `f` (`sealed_len` bytes:
 * overhead + 1..CONTENT_BLOCK_SIZE).  OUT: out (sealed_len - overhead bytes).  Returns the
 * plaintext length, or -CONTENT_EBADMSG when the block is not authentic (altered, truncated,
 * moved from another position or another file); `out` is then zeroed.
 */
int content_block_open(const struct content_file *f, uint64_t blockno,
                       const unsigned char *sealed, size_t sealed_len, unsigned char *out);

/*
 * content_file_new_with_key: build a content_file from known parts (known-answer tests only).
 * Returns 0, -CONTENT_EINVAL or -CONTENT_ENOMEM.
 */
int content_file_new_with_key(unsigned cipher, const unsigned char id[CONTENT_FILE_ID_SIZE],
                              const unsigned char key[CONTENT_KEY_SIZE],
                              struct content_file **out);

#endif
