/*
 * contentio: plaintext reads, writes and truncates of an encrypted backing file.
 *
 * Translates plaintext offsets into blocks (crypto/content.h), reads and authenticates the
 * blocks a request touches, merges partial blocks (read-modify-write), seals with fresh nonces
 * and writes back in one pwrite per request.  Holes: extending a file past a whole block leaves
 * unwritten blocks in the backing file and marks the file sparse in its header; in a sparse file
 * an all-zero stored block reads as zeros.
 *
 * Every function takes the node's lock itself (shared for reads, exclusive otherwise) and returns
 * a byte count or 0 on success, or a negative errno.  -EIO means a block or header failed
 * authentication: *bad_block then names the block (UINT64_MAX: the header or the file's size).
 */
#ifndef CUSTODY_CONTENTIO_H
#define CUSTODY_CONTENTIO_H

#include "fs/node.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONTENTIO_HEADER_BLOCK UINT64_MAX

/*
 * Large reads (CONTENTIO_DIRECT_MIN bytes of backing file and more: sequential reads in the
 * kernel's read-ahead requests) may go through a second descriptor of the same backing file
 * opened with O_DIRECT.  The kernel keeps the plaintext this mount returns in its page cache; the
 * ciphertext read past the page cache is not held a second time, and lands straight in the
 * buffer it is decrypted from.  Reads are aligned to CONTENTIO_DIRECT_ALIGN.  A backing
 * filesystem that refuses them (EINVAL) is read through the page cache from then on.
 */
#define CONTENTIO_DIRECT_MIN ((uint64_t)256 << 10)
#define CONTENTIO_DIRECT_ALIGN 4096u

/*
 * contentio_read: read up to len bytes at off into buf.  dfd: the backing file opened with
 * O_DIRECT, or -1 (everything through fd).  Returns bytes read (0 at EOF).
 */
ssize_t contentio_read(struct node *n, int fd, int dfd, char *buf, size_t len, uint64_t off,
                       uint64_t *bad_block);

/*
 * contentio_write: write len bytes at off (append: at the end of the file, whatever off says).
 * Returns len, or a negative errno.
 */
ssize_t contentio_write(struct node *n, int fd, const char *buf, size_t len, uint64_t off,
                        int append, uint64_t *bad_block);

/* contentio_truncate: set the plaintext size.  Returns 0 or a negative errno. */
int contentio_truncate(struct node *n, int fd, uint64_t size, uint64_t *bad_block);

/*
 * contentio_allocate: fallocate mode 0: make [off, off + len) part of the file (growing it with
 * zeros) and reserve backing space for it.  Returns 0 or a negative errno.
 */
int contentio_allocate(struct node *n, int fd, uint64_t off, uint64_t len, uint64_t *bad_block);

/* contentio_size: the plaintext size (under the shared lock). */
uint64_t contentio_size(struct node *n);

#endif
