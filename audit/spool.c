/*
 * The spool: a preallocated file next to the audit database where each record is written, with
 * one pwrite, before audit_append() returns.  A write to the page cache survives the process
 * being killed, so an acknowledged record is never lost with the daemon, while the SQLite commit
 * that numbers, chains and signs it happens on the writer thread a moment later, in a batch.
 *
 * Layout: entries back to back from offset 0, each
 *     u32 magic, u32 payload length, u64 spool sequence number, payload, 16-byte tag
 * padded to 8 bytes.  The tag is a keyed BLAKE2b-128 over the previous entry's tag, the header
 * and the payload, with a key derived from the vault's signing key, so a valid run of entries
 * can only be cut short, not edited, reordered or added to, by someone without the key.  The
 * database's meta table keeps the highest spool sequence number committed, in the same
 * transaction as the records: on recovery only entries above it are committed again.  When every
 * spooled record is committed the writer rewinds to offset 0; what is left beyond the new
 * entries no longer chains on and ends the scan.
 */
#include "audit/spool_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPOOL_MAGIC 0x31505343u   /* "CSP1" */
#define SPOOL_HDR 16
#define SPOOL_TAG 16
#define SPOOL_INTS 7
#define SPOOL_STRS 10
#define SPOOL_MAX_ENTRY (1u << 20)

struct spool {
    int fd;
    uint64_t pos;               /* where the next entry goes */
    int64_t last_sseq;          /* of the last entry written (or found) */
    unsigned char prev_tag[SPOOL_TAG];
    unsigned char key[crypto_generichash_KEYBYTES];
    unsigned char *buf;         /* encoding buffer, SPOOL_MAX_ENTRY */
    int stale;                  /* entries from an earlier writer are still at offset 0 */
};

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* ---- encoding ---- */

static const char **str_field(struct audit_record *r, int i)
{
    const char **f[SPOOL_STRS] = {&r->user, &r->process, &r->exe, &r->op, &r->path,
                                  &r->path2, &r->file_id, &r->result, &r->ranges, &r->detail};
    return f[i];
}

static int64_t *int_field(struct audit_record *r, int i)
{
    int64_t *f[SPOOL_INTS] = {&r->time_ns, &r->uid, &r->gid, &r->pid,
                              &r->ppid, &r->pstart, &r->bytes};
    return f[i];
}

/* Encode r into out (cap bytes).  Returns the length, or 0 when it does not fit. */
static size_t encode(const struct audit_record *rec, unsigned char *out, size_t cap)
{
    struct audit_record r = *rec;
    size_t pos = 0;

    for (int i = 0; i < SPOOL_INTS; i++) {
        if (pos + 8 > cap)
            return 0;
        memcpy(out + pos, int_field(&r, i), 8);
        pos += 8;
    }
    for (int i = 0; i < SPOOL_STRS; i++) {
        const char *s = *str_field(&r, i);
        uint32_t n = s != NULL ? (uint32_t)strlen(s) + 1 : 0; /* 0: NULL */
        if (pos + 4 + n > cap)
            return 0;
        memcpy(out + pos, &n, 4);
        pos += 4;
        if (n > 0) {
            memcpy(out + pos, s, n - 1);
            pos += n - 1;
        }
    }
    return pos;
}

/*
 * Decode a payload into r; strings are copied into `strings` (at least len bytes).  Returns 0,
 * or -1 when the payload is malformed.
 */
static int decode(const unsigned char *in, size_t len, struct audit_record *r, char *strings)
{
    size_t pos = 0;

    memset(r, 0, sizeof(*r));
    for (int i = 0; i < SPOOL_INTS; i++) {
        if (pos + 8 > len)
            return -1;
        memcpy(int_field(r, i), in + pos, 8);
        pos += 8;
    }
    for (int i = 0; i < SPOOL_STRS; i++) {
        uint32_t n;
        if (pos + 4 > len)
            return -1;
        memcpy(&n, in + pos, 4);
        pos += 4;
        if (n == 0) {
            *str_field(r, i) = NULL;
            continue;
        }
        if (n - 1 > len - pos || memchr(in + pos, '\0', n - 1) != NULL)
            return -1;
        memcpy(strings, in + pos, n - 1);
        strings[n - 1] = '\0';
        *str_field(r, i) = strings;
        strings += n;
        pos += n - 1;
    }
    return pos == len && r->op != NULL && r->result != NULL ? 0 : -1;
}

static void entry_tag(const struct spool *s, const unsigned char *prev, const unsigned char *hdr,
                      const unsigned char *payload, size_t len, unsigned char out[SPOOL_TAG])
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, s->key, sizeof(s->key), SPOOL_TAG);
    crypto_generichash_update(&st, prev, SPOOL_TAG);
    crypto_generichash_update(&st, hdr, SPOOL_HDR);
    crypto_generichash_update(&st, payload, len);
    crypto_generichash_final(&st, out, SPOOL_TAG);
}

/* ---- public (to audit/) ---- */

struct spool *spool_open(const char *db_path, const unsigned char *sk, char *err, size_t errlen)
{
    static const unsigned char context[] = "custodyfs audit spool v1";
    struct spool *s = calloc(1, sizeof(*s));
    char path[4096 + 16];
    struct stat st;

    if (s == NULL || (s->buf = malloc(SPOOL_MAX_ENTRY)) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->fd = -1;
    snprintf(path, sizeof(path), "%s-spool", db_path);
    s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (s->fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    /* One writer process: another (custodyctl while the daemon runs) commits synchronously. */
    if (flock(s->fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "%s is in use by another writer", path);
        goto fail;
    }
    if (fstat(s->fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        ((uint64_t)st.st_size < SPOOL_SIZE && posix_fallocate(s->fd, 0, SPOOL_SIZE) != 0)) {
        snprintf(err, errlen, "cannot reserve %d MiB for %s", SPOOL_SIZE >> 20, path);
        goto fail;
    }
    if (sk != NULL)
        crypto_generichash(s->key, sizeof(s->key), context, sizeof(context) - 1, sk,
                           AUDIT_SK_SIZE);
    else
        crypto_generichash(s->key, sizeof(s->key), context, sizeof(context) - 1, NULL, 0);
    return s;
fail:
    spool_close(s);
    return NULL;
}

int spool_replay(struct spool *s, int64_t after, spool_entry_fn fn, void *arg, int *damaged)
{
    unsigned char hdr[SPOOL_HDR], tag[SPOOL_TAG], want[SPOOL_TAG], prev[SPOOL_TAG] = {0};
    struct audit_record r;
    char *strings = malloc(SPOOL_MAX_ENTRY);
    uint64_t pos = 0;
    int64_t last = 0;
    int n = 0;

    *damaged = 0;
    if (strings == NULL)
        return -1;
    for (;;) {
        uint32_t magic, len;
        int64_t sseq;
        if (pos + SPOOL_HDR + SPOOL_TAG > SPOOL_SIZE ||
            pread(s->fd, hdr, SPOOL_HDR, (off_t)pos) != SPOOL_HDR)
            break;
        memcpy(&magic, hdr, 4);
        memcpy(&len, hdr + 4, 4);
        memcpy(&sseq, hdr + 8, 8);
        if (magic != SPOOL_MAGIC || len > SPOOL_MAX_ENTRY ||
            pos + SPOOL_HDR + len + SPOOL_TAG > SPOOL_SIZE || (last != 0 && sseq != last + 1) ||
            sseq <= 0)
            break;
        if (pread(s->fd, s->buf, len, (off_t)(pos + SPOOL_HDR)) != (ssize_t)len ||
            pread(s->fd, tag, SPOOL_TAG, (off_t)(pos + SPOOL_HDR + len)) != SPOOL_TAG)
            break;
        entry_tag(s, prev, hdr, s->buf, len, want);
        if (sodium_memcmp(tag, want, SPOOL_TAG) != 0) {
            *damaged = 1; /* torn by a crash mid-write, or altered: the run ends here */
            break;
        }
        if (decode(s->buf, len, &r, strings) != 0) {
            *damaged = 1;
            break;
        }
        if (sseq > after) {
            if (fn(&r, sseq, arg) != 0) {
                free(strings);
                return -1;
            }
            n++;
        }
        memcpy(prev, tag, SPOOL_TAG);
        last = sseq;
        pos += pad8(SPOOL_HDR + len + SPOOL_TAG);
    }
    free(strings);
    s->last_sseq = last > after ? last : after;
    s->stale = pos > 0 || *damaged; /* until spool_rewind() clears them */
    return n;
}

int64_t spool_append(struct spool *s, const struct audit_record *r)
{
    unsigned char *hdr = s->buf, *payload = s->buf + SPOOL_HDR, tag[SPOOL_TAG];
    size_t len = encode(r, payload, SPOOL_MAX_ENTRY - SPOOL_HDR - SPOOL_TAG), total;
    uint32_t magic = SPOOL_MAGIC, len32 = (uint32_t)len;
    int64_t sseq = s->last_sseq + 1;

    if (len == 0)
        return 0;
    total = pad8(SPOOL_HDR + len + SPOOL_TAG);
    if (s->pos + total > SPOOL_SIZE)
        return 0; /* full until the writer catches up and rewinds */
    memcpy(hdr, &magic, 4);
    memcpy(hdr + 4, &len32, 4);
    memcpy(hdr + 8, &sseq, 8);
    entry_tag(s, s->prev_tag, hdr, payload, len, tag);
    memcpy(payload + len, tag, SPOOL_TAG);
    memset(payload + len + SPOOL_TAG, 0, total - (SPOOL_HDR + len + SPOOL_TAG));
    if (pwrite(s->fd, s->buf, total, (off_t)s->pos) != (ssize_t)total)
        return 0;
    s->pos += total;
    s->last_sseq = sseq;
    memcpy(s->prev_tag, tag, SPOOL_TAG);
    return sseq;
}

uint64_t spool_used(const struct spool *s)
{
    return s->pos;
}

void spool_rewind(struct spool *s)
{
    static const unsigned char none[SPOOL_HDR];

    if (s->pos == 0 && !s->stale)
        return;
    /* No valid entry at offset 0 until the next one is written: a recovery then finds none of
     * the committed ones (nor a torn one among them) again. */
    if (pwrite(s->fd, none, sizeof(none), 0) != (ssize_t)sizeof(none))
        return; /* keep appending after them; the database says what is committed */
    s->pos = 0;
    s->stale = 0;
    memset(s->prev_tag, 0, SPOOL_TAG);
}

int64_t spool_last_written(const char *db_path)
{
    unsigned char hdr[SPOOL_HDR];
    char path[4096 + 16];
    uint64_t pos = 0;
    int64_t last = 0;
    int fd;

    snprintf(path, sizeof(path), "%s-spool", db_path);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0;
    while (pos + SPOOL_HDR + SPOOL_TAG <= SPOOL_SIZE &&
           pread(fd, hdr, SPOOL_HDR, (off_t)pos) == SPOOL_HDR) {
        uint32_t magic, len;
        int64_t sseq;
        memcpy(&magic, hdr, 4);
        memcpy(&len, hdr + 4, 4);
        memcpy(&sseq, hdr + 8, 8);
        if (magic != SPOOL_MAGIC || len > SPOOL_MAX_ENTRY || sseq <= 0 ||
            (last != 0 && sseq != last + 1))
            break;
        last = sseq;
        pos += pad8(SPOOL_HDR + len + SPOOL_TAG);
    }
    close(fd);
    return last;
}

void spool_close(struct spool *s)
{
    if (s == NULL)
        return;
    if (s->fd >= 0)
        close(s->fd); /* releases the lock */
    sodium_memzero(s->key, sizeof(s->key));
    free(s->buf);
    free(s);
}
