#include "contentio.h"

#include "fs/backing.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BS ((uint64_t)CONTENT_BLOCK_SIZE)
/* Gaps of at most this many blocks are filled with sealed zeros instead of left as holes, so
 * that ordinary files (a small truncate up, a write a little past the end) never become sparse. */
#define ZERO_FILL_MAX_BLOCKS 64

static size_t overhead(void)
{
    return content_block_overhead(node_conf()->cipher);
}

static size_t stored_size(void)
{
    return CONTENT_BLOCK_SIZE + overhead();
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/*
 * A per-thread buffer for the sealed bytes of one request (up to max_write plus overheads), kept
 * between requests: a fresh allocation of that size is mapped and faulted in anew each time,
 * which cost more than the decryption.  Aligned for direct reads.  It is freed when its thread
 * ends (libfuse ends idle threads beyond -o max_idle_threads).
 */
struct scratch {
    unsigned char *buf;
    size_t cap;
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_free(void *p)
{
    struct scratch *s = p;

    free(s->buf);
    free(s);
}

static void scratch_key_init(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0;
}

/* The thread's buffer, at least len bytes.  Returns NULL when out of memory. */
static unsigned char *scratch(size_t len)
{
    struct scratch *s;

    pthread_once(&scratch_once, scratch_key_init);
    if (!scratch_key_ok)
        return NULL;
    s = pthread_getspecific(scratch_key);
    if (s == NULL) {
        if ((s = calloc(1, sizeof(*s))) == NULL)
            return NULL;
        if (pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (len > s->cap) {
        void *p;
        if (posix_memalign(&p, CONTENTIO_DIRECT_ALIGN, len) != 0)
            return NULL;
        free(s->buf);
        s->buf = p;
        s->cap = len;
    }
    return s->buf;
}

/* Set once a direct read is refused (the backing filesystem has no O_DIRECT, or wants another
 * alignment): from then on every read goes through the page cache. */
static atomic_int direct_refused;

/*
 * The sealed bytes [start, end) of the backing file in the thread's scratch buffer.  A run of
 * CONTENTIO_DIRECT_MIN or more is read through dfd (O_DIRECT) when there is one, in whole
 * aligned units; anything else through fd.  Returns a pointer to byte `start`, or NULL with *rc
 * set.
 */
static const unsigned char *load_run(int fd, int dfd, uint64_t start, uint64_t end, int *rc)
{
    const uint64_t mask = CONTENTIO_DIRECT_ALIGN - 1;
    unsigned char *buf;

    if (dfd >= 0 && end - start >= CONTENTIO_DIRECT_MIN &&
        !atomic_load_explicit(&direct_refused, memory_order_relaxed)) {
        uint64_t from = start & ~mask, to = (end + mask) & ~mask;

        if ((buf = scratch((size_t)(to - from))) == NULL) {
            *rc = -ENOMEM;
            return NULL;
        }
        *rc = backing_pread_least(dfd, buf, (size_t)(to - from), (size_t)(end - from), from);
        if (*rc == 0)
            return buf + (start - from);
        if (*rc != -EINVAL)
            return NULL;
        atomic_store(&direct_refused, 1);
    }
    if ((buf = scratch((size_t)(end - start))) == NULL) {
        *rc = -ENOMEM;
        return NULL;
    }
    *rc = backing_pread_full(fd, buf, (size_t)(end - start), start);
    return *rc == 0 ? buf : NULL;
}

/* Plaintext bytes of block b in a file of `size` bytes (0 when past the end). */
static size_t block_len(uint64_t size, uint64_t b)
{
    uint64_t start = b * BS;

    return size > start ? (size_t)min_u64(BS, size - start) : 0;
}

static int all_zero(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

/*
 * Authenticate and decrypt one stored block of `plen` plaintext bytes into out.  In a sparse file
 * an all-zero stored block is a hole and reads as zeros.
 */
static int block_open(struct node *n, uint64_t b, const unsigned char *sealed, size_t plen,
                      unsigned char *out, uint64_t *bad_block)
{
    size_t slen = plen + overhead();

    if (content_block_open(n->cf, b, sealed, slen, out) >= 0)
        return 0;
    if ((content_file_flags(n->cf) & CONTENT_FLAG_SPARSE) && all_zero(sealed, slen)) {
        memset(out, 0, plen);
        return 0;
    }
    *bad_block = b;
    return -EIO;
}

/* Read and decrypt block b (plen bytes of plaintext) into out. */
static int block_load(struct node *n, int fd, uint64_t b, size_t plen, unsigned char *out,
                      uint64_t *bad_block)
{
    unsigned char sealed[CONTENT_MAX_SEALED_BLOCK];
    int rc = backing_pread_full(fd, sealed, plen + overhead(),
                        content_block_offset(node_conf()->cipher, b));

    if (rc == -EIO)
        *bad_block = b;
    return rc != 0 ? rc : block_open(n, b, sealed, plen, out, bad_block);
}

/* The end of the allocation unit holding backing offset `end` (end itself when on a boundary). */
static uint64_t unit_end(const struct node *n, uint64_t end)
{
    return end % n->blksize != 0 ? end + (n->blksize - end % n->blksize) : end;
}

/*
 * Write `len` bytes of sealed content at backing offset `off`, where the file may grow.  A full
 * disk must fail such a write before it changes anything: when a file grows, its last block is
 * rewritten in place, and a write cut short there would destroy acknowledged data.  So the part
 * that lands beyond the allocation unit holding the backing file's end (new space) is written
 * first, and only once it is stored is the part inside the units the file already has.  If the
 * new part fails, the backing file is cut back to the size it had.  A local filesystem
 * allocates new space when the write is made (delayed allocation reserves it then), and at
 * writeback all of a small file at once, in one extent: one disk read when cold.  Any other
 * (a network filesystem may find the disk full only at writeback) has the new space reserved
 * with fallocate first.
 */
static int store(struct node *n, int fd, const unsigned char *buf, size_t len, uint64_t off)
{
    uint64_t end = content_cipher_size(node_conf()->cipher, n->size);
    struct stat st;
    size_t head;
    int rc;

    if (off + len <= unit_end(n, end))
        return backing_pwrite_full(fd, buf, len, off); /* nothing new */
    /* where the backing file ends now: past a block just padded, short of a hole to come */
    if (fstat(fd, &st) != 0)
        return -errno;
    end = (uint64_t)st.st_size;
    head = off < unit_end(n, end) ? (size_t)min_u64(unit_end(n, end) - off, len) : 0;
    if (head < len) {
        if (node_conf()->reserve_new &&
            fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)(off + head), (off_t)(len - head)) != 0 &&
            errno != EOPNOTSUPP) /* a filesystem that cannot reserve: write anyway */
            return -errno;
        if ((rc = backing_pwrite_full(fd, buf + head, len - head, off + head)) != 0) {
            if (ftruncate(fd, (off_t)end) != 0) {
                /* nothing more can be done; the caller reports the write's own error */
            }
            return rc;
        }
    }
    return head > 0 ? backing_pwrite_full(fd, buf, head, off) : 0;
}

/* Seal plen bytes as block b and write it. */
static int block_store(struct node *n, int fd, uint64_t b, const unsigned char *plain,
                       size_t plen)
{
    unsigned char sealed[CONTENT_MAX_SEALED_BLOCK];

    content_block_seal(n->cf, b, plain, plen, sealed);
    return store(n, fd, sealed, plen + overhead(), content_block_offset(node_conf()->cipher, b));
}

/* Re-seal block b, now old_len bytes, as new_len bytes (zero-extended or cut). */
static int block_resize(struct node *n, int fd, uint64_t b, size_t old_len, size_t new_len,
                        uint64_t *bad_block)
{
    unsigned char plain[CONTENT_BLOCK_SIZE];
    int rc = block_load(n, fd, b, old_len, plain, bad_block);

    if (rc == 0) {
        if (new_len > old_len)
            memset(plain + old_len, 0, new_len - old_len);
        rc = block_store(n, fd, b, plain, new_len);
    }
    memset(plain, 0, sizeof(plain));
    return rc;
}

/* Set the sparse flag in the header (before the first hole is made). */
static int mark_sparse(struct node *n, int fd)
{
    unsigned char hdr[CONTENT_HEADER_SIZE];
    uint32_t flags = content_file_flags(n->cf);

    if (flags & CONTENT_FLAG_SPARSE)
        return 0;
    content_file_set_flags(n->cf, flags | CONTENT_FLAG_SPARSE);
    content_header_reseal(node_conf()->mk, n->cf, hdr);
    return backing_pwrite_full(fd, hdr, content_header_size(node_conf()->cipher), 0);
}

/* Write sealed zeros as blocks [from, to); the last one holds last_len bytes. */
static int zero_fill(struct node *n, int fd, uint64_t from, uint64_t to, size_t last_len)
{
    static const unsigned char zeros[CONTENT_BLOCK_SIZE];
    int rc = 0;

    for (uint64_t b = from; b < to && rc == 0; b++)
        rc = block_store(n, fd, b, zeros, b + 1 == to ? last_len : CONTENT_BLOCK_SIZE);
    return rc;
}

/*
 * Make blocks [from, to) of a growing file zeros, the last one last_len bytes long: sealed zeros
 * for a short gap, holes (and the sparse flag) for a long one.  Holes need the backing file to
 * reach `cipher_end`, which the caller's next write or ftruncate provides.
 */
static int fill_gap(struct node *n, int fd, uint64_t from, uint64_t to, size_t last_len)
{
    if (to <= from)
        return 0;
    if (to - from <= ZERO_FILL_MAX_BLOCKS)
        return zero_fill(n, fd, from, to, last_len);
    return mark_sparse(n, fd);
}

/* Grow the plaintext from n->size to `target` > n->size with zeros. */
static int grow(struct node *n, int fd, uint64_t target, uint64_t *bad_block)
{
    uint64_t size = n->size, pb = size / BS, tb = (target - 1) / BS;
    size_t pr = (size_t)(size % BS);
    int rc;

    if (pr != 0) {
        rc = block_resize(n, fd, pb, pr, block_len(target, pb), bad_block);
        if (rc != 0 || tb == pb)
            return rc;
        pb++;
    }
    rc = fill_gap(n, fd, pb, tb + 1, block_len(target, tb));
    if (rc == 0 && ftruncate(fd, (off_t)content_cipher_size(node_conf()->cipher, target)) != 0)
        rc = -errno;
    return rc;
}

/* Shrink the plaintext from n->size to `target` < n->size. */
static int shrink(struct node *n, int fd, uint64_t target, uint64_t *bad_block)
{
    uint64_t tb = target / BS;
    size_t tr = (size_t)(target % BS);
    int rc = 0;

    if (tr != 0)
        rc = block_resize(n, fd, tb, block_len(n->size, tb), tr, bad_block);
    if (rc == 0 && ftruncate(fd, (off_t)content_cipher_size(node_conf()->cipher, target)) != 0)
        rc = -errno;
    return rc;
}

/* Plaintext of block b after the write: either straight from buf or merged in `tmp`. */
static int merge_block(struct node *n, int fd, uint64_t b, const char *buf, uint64_t off,
                       size_t len, const unsigned char **plain, size_t *plen,
                       unsigned char *tmp, uint64_t *bad_block)
{
    uint64_t start = b * BS;
    size_t lo = (size_t)((off > start ? off : start) - start);
    size_t hi = (size_t)(min_u64(off + len, start + BS) - start);
    size_t old_len = block_len(n->size, b);
    int rc;

    *plen = hi > old_len ? hi : old_len;
    if (lo == 0 && hi >= old_len) {
        *plain = (const unsigned char *)buf + (start - off);
        return 0;
    }
    if (old_len > 0 && (rc = block_load(n, fd, b, old_len, tmp, bad_block)) != 0)
        return rc;
    if (lo > old_len)
        memset(tmp + old_len, 0, lo - old_len);
    memcpy(tmp + lo, buf + (start + lo - off), hi - lo);
    *plain = tmp;
    return 0;
}

/* Seal and write every block that [off, off + len) touches, in one pwrite. */
static int write_blocks(struct node *n, int fd, const char *buf, size_t len, uint64_t off,
                        uint64_t *bad_block)
{
    uint64_t first = off / BS, last = (off + len - 1) / BS;
    unsigned char tmp[CONTENT_BLOCK_SIZE];
    unsigned char *sealed = scratch((size_t)(last - first + 1) * stored_size());
    size_t pos = 0;
    int rc = sealed == NULL ? -ENOMEM : 0;

    for (uint64_t b = first; b <= last && rc == 0; b++) {
        const unsigned char *plain;
        size_t plen;
        rc = merge_block(n, fd, b, buf, off, len, &plain, &plen, tmp, bad_block);
        if (rc == 0) {
            content_block_seal(n->cf, b, plain, plen, sealed + pos);
            pos += plen + overhead();
        }
    }
    if (rc == 0) {
        rc = store(n, fd, sealed, pos, content_block_offset(node_conf()->cipher, first));
    }
    memset(tmp, 0, sizeof(tmp));
    return rc;
}

/* Before writing at off > n->size: pad the old last block and fill the gap up to off's block. */
static int prepare_gap(struct node *n, int fd, uint64_t off, uint64_t *bad_block)
{
    uint64_t size = n->size, pb = size / BS, first = off / BS;
    size_t pr = (size_t)(size % BS);
    int rc = 0;

    if (off <= size)
        return 0;
    if (pr != 0) {
        if (pb == first)
            return 0; /* the write's own merge zero-fills within this block */
        rc = block_resize(n, fd, pb, pr, CONTENT_BLOCK_SIZE, bad_block);
        pb++;
    }
    if (rc == 0)
        rc = fill_gap(n, fd, pb, first, CONTENT_BLOCK_SIZE);
    if (rc == 0)
        n->size = first * BS > size ? first * BS : size;
    return rc;
}

ssize_t contentio_write(struct node *n, int fd, const char *buf, size_t len, uint64_t off,
                        int append, uint64_t *bad_block)
{
    uint64_t old_size;
    int rc;

    if (len == 0)
        return 0;
    pthread_rwlock_wrlock(&n->lock);
    old_size = n->size;
    if (append)
        off = n->size;
    rc = node_ensure_header(n, fd);
    if (rc == 0)
        rc = prepare_gap(n, fd, off, bad_block);
    if (rc == 0)
        rc = write_blocks(n, fd, buf, len, off, bad_block);
    if (rc == 0 && off + len > n->size)
        n->size = off + len;
    if (rc != 0) {
        /* Leave no half-written tail behind: the file keeps its old size. */
        n->size = old_size;
        if (n->cf != NULL && ftruncate(fd, (off_t)content_cipher_size(node_conf()->cipher,
                                                                     old_size)) != 0) {
            /* nothing more can be done; the next read reports what is wrong */
        }
    }
    pthread_rwlock_unlock(&n->lock);
    return rc != 0 ? rc : (ssize_t)len;
}

/* Decrypt blocks [first, last] read as one run, copying [off, off + len) out. */
static int open_run(struct node *n, const unsigned char *run, uint64_t first, uint64_t last,
                    char *buf, size_t len, uint64_t off, uint64_t *bad_block)
{
    unsigned char tmp[CONTENT_BLOCK_SIZE];
    int rc = 0;

    for (uint64_t b = first; b <= last && rc == 0; b++) {
        const unsigned char *sealed = run + (b - first) * stored_size();
        uint64_t start = b * BS;
        size_t plen = block_len(n->size, b);
        size_t lo = (size_t)((off > start ? off : start) - start);
        size_t hi = (size_t)(min_u64(off + len, start + plen) - start);

        if (lo == 0 && hi == plen) {
            rc = block_open(n, b, sealed, plen, (unsigned char *)buf + (start - off), bad_block);
        } else {
            rc = block_open(n, b, sealed, plen, tmp, bad_block);
            if (rc == 0)
                memcpy(buf + (start + lo - off), tmp + lo, hi - lo);
        }
    }
    memset(tmp, 0, sizeof(tmp));
    return rc;
}

ssize_t contentio_read(struct node *n, int fd, int dfd, char *buf, size_t len, uint64_t off,
                       uint64_t *bad_block)
{
    unsigned cipher = node_conf()->cipher;
    uint64_t first, last, run_start, run_end;
    const unsigned char *run;
    int rc;

    pthread_rwlock_rdlock(&n->lock);
    if (off >= n->size || len == 0 || n->cf == NULL) {
        pthread_rwlock_unlock(&n->lock);
        return 0;
    }
    len = (size_t)min_u64(len, n->size - off);
    first = off / BS;
    last = (off + len - 1) / BS;
    run_start = content_block_offset(cipher, first);
    run_end = content_block_offset(cipher, last) + block_len(n->size, last) + overhead();
    run = load_run(fd, dfd, run_start, run_end, &rc);
    if (rc == -EIO)
        *bad_block = last;
    if (rc == 0)
        rc = open_run(n, run, first, last, buf, len, off, bad_block);
    pthread_rwlock_unlock(&n->lock);
    if (rc != 0)
        memset(buf, 0, len);
    return rc != 0 ? rc : (ssize_t)len;
}

int contentio_truncate(struct node *n, int fd, uint64_t size, uint64_t *bad_block)
{
    int rc = 0;

    pthread_rwlock_wrlock(&n->lock);
    if (size != n->size) {
        rc = node_ensure_header(n, fd);
        if (rc == 0)
            rc = size > n->size ? grow(n, fd, size, bad_block) : shrink(n, fd, size, bad_block);
        if (rc == 0)
            n->size = size;
    }
    pthread_rwlock_unlock(&n->lock);
    return rc;
}

int contentio_allocate(struct node *n, int fd, uint64_t off, uint64_t len, uint64_t *bad_block)
{
    unsigned cipher = node_conf()->cipher;
    uint64_t end = off + len, from, to;
    int rc = 0;

    pthread_rwlock_wrlock(&n->lock);
    rc = node_ensure_header(n, fd);
    /* allocate first: on a full disk nothing changes */
    from = content_block_offset(cipher, off / BS);
    to = content_cipher_size(cipher, end);
    if (rc == 0 && to > from &&
        fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)from, (off_t)(to - from)) != 0 &&
        errno != EOPNOTSUPP)
        rc = -errno;
    if (rc == 0 && end > n->size) {
        rc = grow(n, fd, end, bad_block);
        if (rc == 0)
            n->size = end;
    }
    pthread_rwlock_unlock(&n->lock);
    return rc;
}

uint64_t contentio_size(struct node *n)
{
    uint64_t s;

    pthread_rwlock_rdlock(&n->lock);
    s = n->size;
    pthread_rwlock_unlock(&n->lock);
    return s;
}
