#include "trail.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RANGES 16
#define RANGES_TEXT (MAX_RANGES * 42 + 1)

struct range {
    uint64_t start, end;      /* half-open */
};

struct io_count {
    uint64_t bytes;
    unsigned n;
    struct range r[MAX_RANGES];
};

struct tally {
    struct tally *prev, *next;   /* list of live tallies, list_lock */
    pthread_mutex_t lock;
    struct caller who;
    char *path;
    char file_id[2 * CONTENT_FILE_ID_SIZE + 1];
    int has_id;
    struct io_count io[2];       /* 0 read, 1 write */
};

static struct audit_log *trail_log;

/*
 * A benchmark-only build (make bench: -DCUSTODY_BENCH_NOAUDIT) measures what auditing costs by
 * building and then dropping every record.  The shipped daemon has no such switch.
 */
#ifdef CUSTODY_BENCH_NOAUDIT
static int log_append(const struct audit_record *r) { (void)r; return 0; }
static int log_submit(const struct audit_record *r) { (void)r; return 0; }
#else
static int log_append(const struct audit_record *r) { return audit_append(trail_log, r); }
static int log_submit(const struct audit_record *r) { return audit_submit(trail_log, r); }
#endif
static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t list_cond = PTHREAD_COND_INITIALIZER;
static struct tally *live;
static pthread_t flusher;
static int flusher_running, flusher_stop;

static void fill_record(struct audit_record *r, const struct caller *c, const char *op,
                        const char *path, const char *file_id, int err, const char *detail)
{
    memset(r, 0, sizeof(*r));
    r->uid = c->uid;
    r->gid = c->gid;
    r->pid = c->pid;
    r->ppid = c->ppid;
    r->pstart = c->pstart;
    r->user = c->user;
    r->process = c->process;
    r->exe = c->exe[0] != '\0' ? c->exe : NULL;
    r->op = op;
    r->path = path;
    r->file_id = file_id;
    r->result = audit_errno_name(-err);
    r->bytes = AUDIT_NONE;
    r->detail = detail;
}

static const char *id_hex(const unsigned char *id, char *buf, size_t len)
{
    if (id == NULL)
        return NULL;
    sodium_bin2hex(buf, len, id, CONTENT_FILE_ID_SIZE);
    return buf;
}

int trail_ready(void)
{
    if (audit_healthy(trail_log))
        return 0;
    audit_refused(trail_log);
    return -EIO;
}

int trail_record(const struct caller *c, const char *op, const char *path, const char *path2,
                 const unsigned char *file_id, int err, const char *detail)
{
    char id[2 * CONTENT_FILE_ID_SIZE + 1];
    struct audit_record r;

    fill_record(&r, c, op, path, id_hex(file_id, id, sizeof(id)), err, detail);
    r.path2 = path2;
    return log_append(&r) == 0 ? err : -EIO;
}

void trail_event(const struct caller *c, const char *op, const char *path,
                 const unsigned char *file_id, int err, const char *detail)
{
    char id[2 * CONTENT_FILE_ID_SIZE + 1];
    struct audit_record r;

    fill_record(&r, c, op, path, id_hex(file_id, id, sizeof(id)), err, detail);
    log_submit(&r);
}

int trail_sync(void)
{
    return audit_sync(trail_log);
}

/* ---- tallies ---- */

/* Add [s, e) to the set, merging overlaps; past MAX_RANGES, close the smallest gap. */
static void range_add(struct io_count *io, uint64_t s, uint64_t e)
{
    unsigned i, j, best;

    for (i = 0; i < io->n; i++) {
        if (s <= io->r[i].end && e >= io->r[i].start) { /* overlaps or touches: absorb */
            s = s < io->r[i].start ? s : io->r[i].start;
            e = e > io->r[i].end ? e : io->r[i].end;
            io->r[i] = io->r[--io->n];
            i = (unsigned)-1; /* rescan: the grown range may touch others */
        }
    }
    io->r[io->n].start = s;
    io->r[io->n].end = e;
    io->n++;
    for (i = 1; i < io->n; i++) /* insertion sort: a handful of ranges */
        for (j = i; j > 0 && io->r[j - 1].start > io->r[j].start; j--) {
            struct range t = io->r[j];
            io->r[j] = io->r[j - 1];
            io->r[j - 1] = t;
        }
    if (io->n < MAX_RANGES)
        return;
    best = 0;
    for (i = 1; i + 1 < io->n; i++)
        if (io->r[i + 1].start - io->r[i].end < io->r[best + 1].start - io->r[best].end)
            best = i;
    io->r[best].end = io->r[best + 1].end;
    for (i = best + 1; i + 1 < io->n; i++)
        io->r[i] = io->r[i + 1];
    io->n--;
}

static void ranges_text(const struct io_count *io, char *buf, size_t len)
{
    size_t pos = 0;

    buf[0] = '\0';
    for (unsigned i = 0; i < io->n && pos < len; i++)
        pos += (size_t)snprintf(buf + pos, len - pos, "%s%" PRIu64 "-%" PRIu64, i ? "," : "",
                                io->r[i].start, io->r[i].end);
}

struct tally *tally_new(const struct caller *c, const char *path, const unsigned char *file_id)
{
    struct tally *t = calloc(1, sizeof(*t));

    if (t == NULL || (t->path = strdup(path != NULL ? path : "")) == NULL) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    t->who = *c;
    if (file_id != NULL) {
        id_hex(file_id, t->file_id, sizeof(t->file_id));
        t->has_id = 1;
    }
    pthread_mutex_lock(&list_lock);
    t->next = live;
    if (live != NULL)
        live->prev = t;
    live = t;
    pthread_mutex_unlock(&list_lock);
    return t;
}

void tally_add(struct tally *t, int is_write, uint64_t off, uint64_t len)
{
    struct io_count *io = &t->io[is_write ? 1 : 0];

    if (len == 0)
        return;
    pthread_mutex_lock(&t->lock);
    io->bytes += len;
    range_add(io, off, off + len);
    pthread_mutex_unlock(&t->lock);
}

int tally_flush(struct tally *t, int wait)
{
    static const char *const ops[2] = {"read", "write"};
    char ranges[RANGES_TEXT];
    struct audit_record r;
    int rc = 0;

    pthread_mutex_lock(&t->lock);
    for (int k = 0; k < 2; k++) {
        struct io_count *io = &t->io[k];
        if (io->bytes == 0)
            continue;
        fill_record(&r, &t->who, ops[k], t->path, t->has_id ? t->file_id : NULL, 0, NULL);
        r.bytes = (int64_t)io->bytes;
        ranges_text(io, ranges, sizeof(ranges));
        r.ranges = ranges;
        if ((wait ? log_append(&r) : log_submit(&r)) != 0)
            rc = -EIO;
        memset(io, 0, sizeof(*io));
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

void tally_free(struct tally *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&list_lock);
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        live = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&list_lock);
    tally_flush(t, 0);
    pthread_mutex_destroy(&t->lock);
    free(t->path);
    free(t);
}

/* ---- the flusher ---- */

static void *flusher_main(void *arg)
{
    struct timespec ts;

    (void)arg;
    pthread_mutex_lock(&list_lock);
    while (!flusher_stop) {
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += AUDIT_FLUSH_SECONDS;
        pthread_cond_timedwait(&list_cond, &list_lock, &ts);
        for (struct tally *t = live; t != NULL; t = t->next)
            tally_flush(t, 0);
    }
    for (struct tally *t = live; t != NULL; t = t->next)
        tally_flush(t, 0);
    pthread_mutex_unlock(&list_lock);
    return NULL;
}

int trail_start(struct audit_log *log)
{
    trail_log = log;
    flusher_stop = 0;
    if (pthread_create(&flusher, NULL, flusher_main, NULL) != 0)
        return -1;
    flusher_running = 1;
    return 0;
}

void trail_stop(void)
{
    if (!flusher_running)
        return;
    pthread_mutex_lock(&list_lock);
    flusher_stop = 1;
    pthread_cond_signal(&list_cond);
    pthread_mutex_unlock(&list_lock);
    pthread_join(flusher, NULL);
    flusher_running = 0;
}
