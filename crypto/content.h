/*
 * content: the on-disk format of one encrypted file (crypto/FORMAT.md has the full layout).
 *
 * A backing file is an authenticated header (128 bytes in format 1, 40 in format 2) followed by
 * blocks.  Block i holds plaintext
 * bytes [i * CONTENT_BLOCK_SIZE, (i + 1) * CONTENT_BLOCK_SIZE) sealed as
 *     nonce | ciphertext | tag
 * with the vault's AEAD (AES-256-GCM or XChaCha20-Poly1305), the file's own data key, a fresh
 * random nonce on every write, and associated data binding the file ID and the block index.  Only
 * the last block may be short.  The plaintext size follows from the backing size alone.
 *
 * A format-1 header carries magic, version, cipher, flags, the random file ID, and the file's data
 * key wrapped (XChaCha20-Poly1305) by the vault's master key with every other header byte as
 * associated data.  A format-2 header carries magic, cipher, flags and the file ID; the data key
 * and a MAC key are derived (keyed BLAKE2b) from the vault's file-key root and the file ID, and
 * a 16-byte tag under that MAC key covers the rest.  Either way a header that opens is authentic
 * as a whole and its key is bound to its file ID.
 *
 * This module sees bytes and keys, never paths or file descriptors.  Functions that open sealed
 * data check the tag before any plaintext is written out, and zero their output on failure.
 */
#ifndef CUSTODY_CONTENT_H
#define CUSTODY_CONTENT_H

#include <stddef.h>
#include <stdint.h>

#define CONTENT_HEADER_SIZE 128      /* format 1; the largest header: buffers are this size */
#define CONTENT_HEADER_V2_SIZE 40    /* format 2 */
#define CONTENT_BLOCK_SHIFT 12
#define CONTENT_BLOCK_SIZE (1u << CONTENT_BLOCK_SHIFT)
#define CONTENT_FILE_ID_SIZE 16
#define CONTENT_KEY_SIZE 32
#define CONTENT_TAG_SIZE 16
#define CONTENT_MAX_NONCE_SIZE 24
/* Largest sealed block: the XChaCha20-Poly1305 nonce, a full block, the tag. */
#define CONTENT_MAX_SEALED_BLOCK (CONTENT_MAX_NONCE_SIZE + CONTENT_BLOCK_SIZE + CONTENT_TAG_SIZE)
#define CONTENT_FORMAT_VERSION 1

/*
 * A vault's layout: its cipher (enum content_cipher), or'ed with CONTENT_FORMAT2 when its files
 * have format-2 headers (40 bytes: the file's key is derived from the vault's file-key root and
 * the file ID instead of being wrapped in the header).  Fixed for the life of the vault.  Every
 * function below taking `layout` accepts a bare cipher as format 1.
 */
#define CONTENT_FORMAT2 0x100u
#define CONTENT_LAYOUT_CIPHER(layout) ((layout) & 0xffu)

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
    uint32_t epoch;         /* which master key this is; recorded in each format-1 header */
    unsigned char *file_root; /* format 2: the vault's file-key root (CONTENT_KEY_SIZE bytes from
                                 secmem_alloc()), unwrapped by vaultcfg; NULL in format 1 */
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
/* Header bytes of a file in this layout: CONTENT_HEADER_SIZE or CONTENT_HEADER_V2_SIZE. */
size_t content_header_size(unsigned layout);

/* Backing-file offset where block `blockno` starts. */
uint64_t content_block_offset(unsigned layout, uint64_t blockno);
/* Backing-file size of a file with `plain_size` bytes of plaintext. */
uint64_t content_cipher_size(unsigned layout, uint64_t plain_size);
/*
 * Plaintext size of a backing file of `cipher_size` bytes.  A size that no valid file has (a cut
 * header, or a last block shorter than its overhead) sets *valid to 0 and returns the plaintext
 * size of the whole blocks only.  An empty backing file is an empty plaintext file (a file whose
 * header was not yet written).
 */
uint64_t content_plain_size(unsigned layout, uint64_t cipher_size, int *valid);

/*
 * content_header_new: make a fresh file in `layout`: random file ID, flags 0, generation 0; in
 * format 1 a random data key sealed under `mk`, in format 2 the key derived from mk->file_root
 * and the ID.  OUT: hdr (content_header_size(layout) bytes to write at offset 0; the buffer is
 * CONTENT_HEADER_SIZE), *out (caller frees with content_file_free()).  Returns 0,
 * -CONTENT_ENOMEM or -CONTENT_EINVAL (unknown cipher; format 2 without a file-key root).
 */
int content_header_new(const struct master_key *mk, unsigned layout,
                       unsigned char hdr[CONTENT_HEADER_SIZE], struct content_file **out);

/*
 * content_header_open: authenticate and decode a header read from disk
 * (content_header_size(layout) bytes).  A header of another format or naming another cipher
 * than `layout` is rejected.  OUT: *out (caller frees).  Returns 0, or -CONTENT_EBADMSG (wrong
 * magic, version, cipher, unknown flags, or failed authentication: the header was altered,
 * belongs to another vault, or a wrong master key), or -CONTENT_ENOMEM.
 */
int content_header_open(const struct master_key *mk, unsigned layout,
                        const unsigned char hdr[CONTENT_HEADER_SIZE], struct content_file **out);

/*
 * content_header_reseal: re-encode the header of `f` (after a flag change, or under a new master
 * key) with a fresh wrapping nonce (format 1) or a new tag (format 2).  OUT: hdr (as many bytes
 * as f's format has).  Returns 0 or -CONTENT_EINVAL.
 */
int content_header_reseal(const struct master_key *mk, const struct content_file *f,
                          unsigned char hdr[CONTENT_HEADER_SIZE]);

/*
 * content_header_peek: decode a format-1 header's clear fields without any key (for tools and
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
