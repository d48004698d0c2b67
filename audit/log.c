/*
 * The audit writer: one thread, one SQLite connection, group commits.
 *
 * Callers queue copies of their records (struct qrec) and, for audit_append(), wait for the
 * commit that holds them.  Sequence numbers and hashes are assigned only inside a transaction
 * that then commits; a failed commit rolls back and puts the whole batch back at the front of
 * the queue, so nothing is lost and nothing is numbered twice.
 */
#include "audit/record_int.h"
#include "audit/spool_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <syslog.h>
#include <unistd.h>

#define RETRY_MS 200
/*
 * Spooled records are safe already, so the writer lets them gather before it commits: records
 * that arrive one at a time (an open here, a read there) then share a transaction instead of
 * paying one each.  It commits once LINGER_RECORDS are queued, LINGER_MS after the oldest
 * arrived, or at once when a record is not spooled, a sync is wanted, or the spool fills.
 */
#define LINGER_MS 20
#define LINGER_RECORDS 256
#define NS_PER_S 1000000000LL

struct qrec {
    struct qrec *next;
    uint64_t ticket;
    int64_t sseq;              /* spool sequence number, 0: not spooled */
    struct audit_record rec;   /* strings point into `strings` below */
    char strings[];
};

struct audit_log {
    sqlite3 *db;
    sqlite3_stmt *ins_rec, *ins_head, *begin, *commit, *rollback, *tail, *max_head, *set_sseq;
    struct spool *spool;                     /* NULL: every record is committed before it is
                                                acknowledged */
    char *db_path;
    unsigned char vault_id[AUDIT_ID_SIZE];
    unsigned char *sk;                       /* guarded copy, or NULL */
    unsigned char pk[AUDIT_PK_SIZE];

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    struct qrec *qhead, **qtail;
    unsigned qlen, qloose;                   /* queued; of which not spooled */
    int64_t qfirst_ns;                       /* when the oldest queued record arrived */
    uint64_t next_ticket, committed, failed; /* tickets: committed/failed up to */
    uint64_t sync_wanted, synced;            /* tickets */
    int stop, healthy, grace_seconds;
    int committing;                          /* a round is under way (writer or a caller) */
    int64_t unhealthy_since;
    uint64_t refused, commits;
    char fail_reason[128];

    /* writer-only chain state */
    int64_t next_seq, last_head_seq, last_head_mono;
    unsigned char prev[AUDIT_HASH_SIZE];
};

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* ---- copying records ---- */

static size_t slen(const char *s)
{
    return s != NULL ? strlen(s) + 1 : 0;
}

static const char *scopy(char **p, const char *s)
{
    char *d = *p;

    if (s == NULL)
        return NULL;
    memcpy(d, s, strlen(s) + 1);
    *p += strlen(s) + 1;
    return d;
}

static struct qrec *qrec_new(const struct audit_record *r)
{
    size_t n = slen(r->user) + slen(r->process) + slen(r->exe) + slen(r->op) + slen(r->path) +
               slen(r->path2) + slen(r->file_id) + slen(r->result) + slen(r->ranges) +
               slen(r->detail);
    struct qrec *q = malloc(sizeof(*q) + n);
    char *p;

    if (q == NULL)
        return NULL;
    q->next = NULL;
    q->sseq = 0;
    q->rec = *r;
    p = q->strings;
    q->rec.user = scopy(&p, r->user);
    q->rec.process = scopy(&p, r->process);
    q->rec.exe = scopy(&p, r->exe);
    q->rec.op = scopy(&p, r->op);
    q->rec.path = scopy(&p, r->path);
    q->rec.path2 = scopy(&p, r->path2);
    q->rec.file_id = scopy(&p, r->file_id);
    q->rec.result = scopy(&p, r->result);
    q->rec.ranges = scopy(&p, r->ranges);
    q->rec.detail = scopy(&p, r->detail);
    if (q->rec.time_ns == 0)
        q->rec.time_ns = audit_now_ns();
    return q;
}

static void qlist_free(struct qrec *q)
{
    while (q != NULL) {
        struct qrec *next = q->next;
        free(q);
        q = next;
    }
}

/*
 * Queue a record; caller holds mu.  When `wake`, wakes the writer if it may be idle (the queue
 * was empty), or if the record should not wait for others.  Returns its ticket.
 */
static uint64_t enqueue_locked(struct audit_log *log, struct qrec *q, int wake)
{
    q->ticket = ++log->next_ticket;
    if (log->qhead == NULL)
        log->qfirst_ns = mono_ns();
    *log->qtail = q;
    log->qtail = &q->next;
    log->qlen++;
    if (q->sseq == 0)
        log->qloose++;
    if (wake && (log->qlen == 1 || q->sseq == 0 || log->qlen >= LINGER_RECORDS))
        pthread_cond_signal(&log->work);
    return q->ticket;
}

/* Take the whole queue; caller holds mu. */
static struct qrec *take_queue(struct audit_log *log)
{
    struct qrec *batch = log->qhead;

    log->qhead = NULL;
    log->qtail = &log->qhead;
    log->qlen = 0;
    log->qloose = 0;
    return batch;
}

/* How long the writer may still let the queue gather, in ns (0: commit now).  Holds mu. */
static int64_t linger_ns(struct audit_log *log)
{
    int64_t left;

    if (log->qhead == NULL || log->qloose > 0 || log->qlen >= LINGER_RECORDS || log->stop ||
        !log->healthy || log->sync_wanted > log->synced || log->spool == NULL ||
        spool_used(log->spool) > SPOOL_SIZE / 4)
        return 0;
    left = log->qfirst_ns + LINGER_MS * 1000000LL - mono_ns();
    return left > 0 ? left : 0;
}

/* ---- SQL ---- */

static void bind_int(sqlite3_stmt *st, int i, int64_t v)
{
    if (v == AUDIT_NONE)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, v);
}

static void bind_str(sqlite3_stmt *st, int i, const char *s)
{
    if (s == NULL)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static int step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int insert_record(struct audit_log *log, const struct audit_record *r)
{
    sqlite3_stmt *st = log->ins_rec;

    sqlite3_bind_int64(st, 1, r->seq);
    sqlite3_bind_int64(st, 2, r->time_ns);
    bind_int(st, 3, r->uid);
    bind_str(st, 4, r->user);
    bind_int(st, 5, r->gid);
    bind_int(st, 6, r->pid);
    bind_int(st, 7, r->ppid);
    bind_int(st, 8, r->pstart);
    bind_str(st, 9, r->process);
    bind_str(st, 10, r->exe);
    bind_str(st, 11, r->op);
    bind_str(st, 12, r->path);
    bind_str(st, 13, r->path2);
    bind_str(st, 14, r->file_id);
    bind_str(st, 15, r->result);
    bind_int(st, 16, r->bytes);
    bind_str(st, 17, r->ranges);
    bind_str(st, 18, r->detail);
    sqlite3_bind_blob(st, 19, r->hash, AUDIT_HASH_SIZE, SQLITE_STATIC);
    return step_reset(st);
}

/* Sign the chain head (the last numbered record) and insert it.  No key: nothing to do. */
static int insert_head(struct audit_log *log)
{
    unsigned char msg[AUDIT_HEAD_MSG_SIZE];
    struct audit_head h;
    int rc;

    if (log->sk == NULL || log->next_seq <= 1 || log->last_head_seq >= log->next_seq - 1)
        return SQLITE_OK;
    memcpy(h.vault_id, log->vault_id, AUDIT_ID_SIZE);
    h.seq = log->next_seq - 1;
    memcpy(h.hash, log->prev, AUDIT_HASH_SIZE);
    h.time_ns = audit_now_ns();
    audit_head_message(&h, msg);
    crypto_sign_detached(h.sig, NULL, msg, sizeof(msg), log->sk);
    sqlite3_bind_int64(log->ins_head, 1, h.seq);
    sqlite3_bind_blob(log->ins_head, 2, h.hash, AUDIT_HASH_SIZE, SQLITE_STATIC);
    sqlite3_bind_int64(log->ins_head, 3, h.time_ns);
    sqlite3_bind_blob(log->ins_head, 4, h.sig, AUDIT_SIG_SIZE, SQLITE_STATIC);
    rc = step_reset(log->ins_head);
    if (rc == SQLITE_OK)
        log->last_head_seq = h.seq;
    return rc;
}

/* Number, hash and insert one record; sign a head every AUDIT_HEAD_EVERY records. */
static int write_one(struct audit_log *log, struct audit_record *r)
{
    int rc;

    r->seq = log->next_seq;
    audit_record_hash(log->prev, r, r->hash);
    rc = insert_record(log, r);
    if (rc != SQLITE_OK)
        return rc;
    log->next_seq++;
    memcpy(log->prev, r->hash, AUDIT_HASH_SIZE);
    if (log->next_seq - 1 - log->last_head_seq >= AUDIT_HEAD_EVERY)
        rc = insert_head(log);
    return rc;
}

/* The record of an outage, written first when commits work again. */
static int write_gap(struct audit_log *log, int64_t since, uint64_t refused, const char *reason)
{
    char detail[256];
    struct audit_record r = {
        .uid = (int64_t)getuid(), .gid = (int64_t)getgid(), .pid = (int64_t)getpid(),
        .ppid = AUDIT_NONE, .pstart = AUDIT_NONE, .bytes = AUDIT_NONE,
        .op = "audit-gap", .result = "ok", .process = "custodyfs", .detail = detail,
        .time_ns = audit_now_ns(),
    };

    snprintf(detail, sizeof(detail),
             "the audit database could not be written for %.3f s (%s); %" PRIu64
             " operations were refused",
             (double)(audit_now_ns() - since) / 1e9, reason, refused);
    return write_one(log, &r);
}

static int head_due(struct audit_log *log);

/*
 * Inside a write transaction: take in what another writer (custodyctl grant, revoke) appended
 * since our last commit.  Our last record must still be there, unchanged; what follows it must
 * chain on.  Returns an SQLite code (SQLITE_CORRUPT when the log was altered under us).
 */
static int adopt_tail(struct audit_log *log)
{
    unsigned char h[AUDIT_HASH_SIZE];
    struct audit_record r;
    int64_t expect = log->next_seq > 1 ? log->next_seq - 1 : 1;
    int rc = SQLITE_OK, first = 1;

    sqlite3_bind_int64(log->tail, 1, expect);
    while (rc == SQLITE_OK && sqlite3_step(log->tail) == SQLITE_ROW) {
        if (!audit_row_to_record(log->tail, &r) || r.seq != expect) {
            rc = SQLITE_CORRUPT;
        } else if (first && log->next_seq > 1) {
            if (memcmp(r.hash, log->prev, AUDIT_HASH_SIZE) != 0)
                rc = SQLITE_CORRUPT;
        } else {
            audit_record_hash(log->prev, &r, h);
            if (memcmp(h, r.hash, AUDIT_HASH_SIZE) != 0)
                rc = SQLITE_CORRUPT;
            memcpy(log->prev, h, AUDIT_HASH_SIZE);
            log->next_seq = r.seq + 1;
        }
        first = 0;
        expect++;
    }
    sqlite3_reset(log->tail);
    if (rc == SQLITE_OK && sqlite3_step(log->max_head) == SQLITE_ROW &&
        sqlite3_column_type(log->max_head, 0) != SQLITE_NULL &&
        sqlite3_column_int64(log->max_head, 0) > log->last_head_seq)
        log->last_head_seq = sqlite3_column_int64(log->max_head, 0);
    sqlite3_reset(log->max_head);
    return rc;
}

/*
 * One transaction: the outage record if recovering, the batch, a head when due.  Returns an
 * SQLite code; on failure the chain state is as before.
 */
static int commit_batch(struct audit_log *log, struct qrec *batch, int recovering, int64_t since,
                        uint64_t *refused, const char *reason, int force_head)
{
    int64_t seq0 = log->next_seq, head0 = log->last_head_seq, max_sseq = 0;
    unsigned char prev0[AUDIT_HASH_SIZE];
    int rc;

    memcpy(prev0, log->prev, sizeof(prev0));
    rc = step_reset(log->begin);
    if (rc == SQLITE_OK)
        rc = adopt_tail(log);
    if (rc == SQLITE_OK && recovering) {
        /* counted now that the database is ours: refusals up to here belong to this outage */
        pthread_mutex_lock(&log->mu);
        *refused = log->refused;
        pthread_mutex_unlock(&log->mu);
        rc = write_gap(log, since, *refused, reason);
    }
    for (struct qrec *q = batch; q != NULL && rc == SQLITE_OK; q = q->next) {
        rc = write_one(log, &q->rec);
        if (q->sseq > max_sseq)
            max_sseq = q->sseq;
    }
    if (rc == SQLITE_OK && max_sseq > 0) { /* these spool entries are done with */
        sqlite3_bind_int64(log->set_sseq, 1, max_sseq);
        rc = step_reset(log->set_sseq);
    }
    if (rc == SQLITE_OK && (force_head || head_due(log)))
        rc = insert_head(log);
    if (rc == SQLITE_OK)
        rc = step_reset(log->commit);
    if (rc != SQLITE_OK) {
        step_reset(log->rollback);
        log->next_seq = seq0;
        log->last_head_seq = head0;
        memcpy(log->prev, prev0, sizeof(prev0));
    }
    return rc;
}

/* Make what is committed durable: the WAL holds it.  Returns 0 or -1. */
static int sync_wal(struct audit_log *log)
{
    char path[4096];
    int fd, rc;

    snprintf(path, sizeof(path), "%s-wal", log->db_path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1; /* no WAL: everything is in the database file */
    rc = fdatasync(fd);
    close(fd);
    return rc == 0 ? 0 : -1;
}

/* ---- the writer thread ---- */

static void writer_round(struct audit_log *log);

/*
 * Run one round as its leader; called and returning with mu held.  Rounds never overlap: the
 * SQLite connection and the chain state belong to whoever holds `committing`.
 */
static void lead_round(struct audit_log *log)
{
    log->committing = 1;
    writer_round(log);
    log->committing = 0;
    pthread_cond_broadcast(&log->done);
}

static void wait_ns(struct audit_log *log, int64_t ns)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ns / NS_PER_S;
    ts.tv_nsec += ns % NS_PER_S;
    if (ts.tv_nsec >= NS_PER_S) {
        ts.tv_sec++;
        ts.tv_nsec -= NS_PER_S;
    }
    pthread_cond_timedwait(&log->work, &log->mu, &ts);
}

/* Is a time-based head due?  (Unsigned records, and AUDIT_HEAD_SECONDS since the last.) */
static int head_due(struct audit_log *log)
{
    return log->sk != NULL && log->last_head_seq < log->next_seq - 1 &&
           mono_ns() - log->last_head_mono >= AUDIT_HEAD_SECONDS * NS_PER_S;
}

/* Does the chain have records no head signs yet? */
static int unsigned_records(struct audit_log *log)
{
    return log->sk != NULL && log->last_head_seq < log->next_seq - 1;
}

/* Put a failed batch back in front of whatever arrived meanwhile.  Caller holds mu. */
static void requeue_front(struct audit_log *log, struct qrec *batch)
{
    struct qrec **end = &batch;

    if (batch == NULL)
        return;
    while (*end != NULL) {
        log->qlen++;
        log->qloose += (*end)->sseq == 0;
        end = &(*end)->next;
    }
    log->qfirst_ns = mono_ns();
    *end = log->qhead;
    if (log->qhead == NULL)
        log->qtail = end;
    log->qhead = batch;
}

static void mark_unhealthy(struct audit_log *log, int rc)
{
    if (!log->healthy)
        return;
    log->healthy = 0;
    log->unhealthy_since = audit_now_ns();
    snprintf(log->fail_reason, sizeof(log->fail_reason), "%s", sqlite3_errstr(rc));
    fprintf(stderr, "custodyfs: audit log: cannot commit (%s): refusing operations until it "
                    "can\n", log->fail_reason);
    syslog(LOG_ERR, "audit log: cannot commit (%s): refusing operations until it can",
           log->fail_reason);
}

/* One round of the writer; called and returning with mu held. */
static void writer_round(struct audit_log *log)
{
    struct qrec *batch = log->qhead;
    uint64_t last = log->next_ticket, refused = 0, want_sync = log->sync_wanted;
    int recovering = !log->healthy, due = head_due(log) || log->stop, rc;
    int64_t since = log->unhealthy_since;
    char reason[128];

    memcpy(reason, log->fail_reason, sizeof(reason));
    take_queue(log);
    pthread_mutex_unlock(&log->mu);
    rc = commit_batch(log, batch, recovering, since, &refused, reason, due);
    if (rc == SQLITE_OK && log->last_head_seq == log->next_seq - 1)
        log->last_head_mono = mono_ns();
    if (rc == SQLITE_OK && want_sync > log->synced && sync_wal(log) != 0)
        rc = SQLITE_IOERR_FSYNC;
    pthread_mutex_lock(&log->mu);
    if (rc == SQLITE_IOERR_FSYNC) {
        /* committed, not durable: the records stay committed; the sync waiters fail */
        qlist_free(batch);
        log->committed = last;
        log->failed = last;
        mark_unhealthy(log, rc);
    } else if (rc == SQLITE_OK) {
        qlist_free(batch);
        log->commits++;
        log->committed = last;
        log->failed = 0; /* what failed before is committed now: syncs may succeed again */
        if (log->spool != NULL && log->qhead == NULL)
            spool_rewind(log->spool); /* every spooled record is committed */
        if (want_sync > log->synced)
            log->synced = want_sync;
        log->healthy = 1;
        log->refused -= refused;
    } else {
        requeue_front(log, batch);
        log->failed = last;
        mark_unhealthy(log, rc);
    }
    pthread_cond_broadcast(&log->done);
}

static void *writer_main(void *arg)
{
    struct audit_log *log = arg;
    int64_t deadline = 0;

    pthread_mutex_lock(&log->mu);
    for (;;) {
        if (log->stop) {
            if (deadline == 0)
                deadline = mono_ns() + (int64_t)log->grace_seconds * NS_PER_S;
            if ((log->qhead == NULL && log->healthy && !unsigned_records(log)) ||
                mono_ns() > deadline)
                break;
        }
        if (log->committing) { /* a caller is committing: wait for it */
            pthread_cond_wait(&log->done, &log->mu);
            continue;
        }
        int64_t linger = linger_ns(log);
        if (linger > 0) {
            wait_ns(log, linger);
            continue;
        }
        if (log->qhead != NULL || !log->healthy || log->sync_wanted > log->synced ||
            head_due(log) || log->stop)
            lead_round(log);
        if (!log->healthy)
            wait_ns(log, RETRY_MS * 1000000LL);
        else if (log->qhead == NULL && !log->stop && log->sync_wanted <= log->synced)
            wait_ns(log, (unsigned_records(log) ? 100 : 1000) * 1000000LL);
    }
    pthread_mutex_unlock(&log->mu);
    return NULL;
}

/* ---- public ---- */

/*
 * Wait until ticket t is committed or has failed.  When no round is under way the caller runs
 * one itself (for everything queued so far): a lone caller then commits without two thread
 * switches, and callers arriving meanwhile share the next round (group commit).
 */
static int wait_ticket(struct audit_log *log, uint64_t t)
{
    while (log->committed < t && log->failed < t) {
        if (!log->committing && log->healthy && log->qhead != NULL)
            lead_round(log);
        else
            pthread_cond_wait(&log->done, &log->mu);
    }
    return log->committed >= t ? 0 : -EIO;
}

/* Write q to the spool, when there is one and commits work.  Caller holds mu.  1 when done. */
static int spooled(struct audit_log *log, struct qrec *q)
{
    if (log->spool == NULL || !log->healthy)
        return 0;
    q->sseq = spool_append(log->spool, &q->rec);
    return q->sseq > 0;
}

int audit_append(struct audit_log *log, const struct audit_record *rec)
{
    struct qrec *q = qrec_new(rec);
    int rc = 0;

    if (q == NULL)
        return -EIO;
    pthread_mutex_lock(&log->mu);
    if (spooled(log, q))
        enqueue_locked(log, q, 1); /* safe from a crash now; the writer commits it */
    else
        rc = wait_ticket(log, enqueue_locked(log, q, 0));
    pthread_mutex_unlock(&log->mu);
    return rc;
}

int audit_submit(struct audit_log *log, const struct audit_record *rec)
{
    struct qrec *q = qrec_new(rec);

    if (q == NULL)
        return -ENOMEM;
    pthread_mutex_lock(&log->mu);
    spooled(log, q);
    enqueue_locked(log, q, 1);
    pthread_mutex_unlock(&log->mu);
    return 0;
}

int audit_sync(struct audit_log *log)
{
    uint64_t t;
    int rc;

    pthread_mutex_lock(&log->mu);
    t = log->next_ticket;
    if (log->sync_wanted < t)
        log->sync_wanted = t;
    pthread_cond_signal(&log->work);
    while (log->synced < t && log->failed < t)
        pthread_cond_wait(&log->done, &log->mu);
    rc = log->synced >= t ? 0 : -EIO;
    pthread_mutex_unlock(&log->mu);
    return rc;
}

int audit_healthy(struct audit_log *log)
{
    int h;

    pthread_mutex_lock(&log->mu);
    h = log->healthy;
    pthread_mutex_unlock(&log->mu);
    return h;
}

uint64_t audit_log_commits(struct audit_log *log)
{
    uint64_t n;

    pthread_mutex_lock(&log->mu);
    n = log->commits;
    pthread_mutex_unlock(&log->mu);
    return n;
}

void audit_refused(struct audit_log *log)
{
    pthread_mutex_lock(&log->mu);
    log->refused++;
    pthread_mutex_unlock(&log->mu);
}

/* ---- opening and closing ---- */

static int exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK)
        snprintf(err, errlen, "%s", msg != NULL ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return rc;
}

/* Bind the log to the vault, or check that it is bound to this vault. */
static int check_meta(struct audit_log *log, char *err, size_t errlen)
{
    char id[2 * AUDIT_ID_SIZE + 1], sql[256];
    sqlite3_stmt *st = NULL;
    int rc, ok = -1;

    sodium_bin2hex(id, sizeof(id), log->vault_id, AUDIT_ID_SIZE);
    snprintf(sql, sizeof(sql),
             "INSERT OR IGNORE INTO meta VALUES('format','" AUDIT_SCHEMA_VERSION "');"
             "INSERT OR IGNORE INTO meta VALUES('vault_id','%s');", id);
    if (exec_sql(log->db, sql, err, errlen) != SQLITE_OK)
        return -1;
    rc = sqlite3_prepare_v2(log->db, "SELECT value FROM meta WHERE key='vault_id'", -1, &st,
                            NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        strcmp((const char *)sqlite3_column_text(st, 0), id) == 0)
        ok = 0;
    else
        snprintf(err, errlen, "the audit log %s belongs to another vault", log->db_path);
    sqlite3_finalize(st);
    return ok;
}

/* The newest head: OUT seq (0 if none) and hash; checks its signature. */
static int load_last_head(struct audit_log *log, int64_t *seq, unsigned char *hash, char *err,
                          size_t errlen)
{
    sqlite3_stmt *st = NULL;
    struct audit_head h;
    int rc = sqlite3_prepare_v2(log->db, "SELECT seq, hash, time_ns, signature FROM heads "
                                         "ORDER BY seq DESC LIMIT 1", -1, &st, NULL);

    *seq = 0;
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&h, 0, sizeof(h));
        memcpy(h.vault_id, log->vault_id, AUDIT_ID_SIZE);
        memcpy(h.pk, log->pk, AUDIT_PK_SIZE);
        h.seq = sqlite3_column_int64(st, 0);
        h.time_ns = sqlite3_column_int64(st, 2);
        if (sqlite3_column_bytes(st, 1) == AUDIT_HASH_SIZE &&
            sqlite3_column_bytes(st, 3) == AUDIT_SIG_SIZE) {
            memcpy(h.hash, sqlite3_column_blob(st, 1), AUDIT_HASH_SIZE);
            memcpy(h.sig, sqlite3_column_blob(st, 3), AUDIT_SIG_SIZE);
        }
        if (log->sk != NULL && !audit_head_check_sig(&h)) {
            snprintf(err, errlen, "the last signed head of the audit log (record %" PRId64
                                  ") has a bad signature: run 'custodyctl verify'", h.seq);
            rc = SQLITE_CORRUPT;
        } else {
            *seq = h.seq;
            memcpy(hash, h.hash, AUDIT_HASH_SIZE);
            rc = SQLITE_DONE;
        }
    }
    if (rc != SQLITE_DONE && err[0] == '\0')
        snprintf(err, errlen, "cannot read the audit log: %s", sqlite3_errmsg(log->db));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Check the chain from the last head to the end, and set next_seq/prev to continue it. */
static int recover_tail(struct audit_log *log, char *err, size_t errlen)
{
    unsigned char head_hash[AUDIT_HASH_SIZE];
    struct audit_record r;
    unsigned char h[AUDIT_HASH_SIZE];
    sqlite3_stmt *st = NULL;
    int64_t head_seq, expect;
    int rc, tail_unmount = 0;

    err[0] = '\0';
    if (load_last_head(log, &head_seq, head_hash, err, errlen) != 0)
        return -1;
    log->last_head_seq = head_seq;
    audit_genesis(log->vault_id, log->prev);
    expect = head_seq >= 2 ? head_seq - 1 : 1; /* from the record before the head, or the start */
    rc = sqlite3_prepare_v2(log->db, "SELECT " AUDIT_COLUMNS " FROM records WHERE seq >= ? "
                                     "ORDER BY seq", -1, &st, NULL);
    sqlite3_bind_int64(st, 1, expect);
    while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        if (!audit_row_to_record(st, &r)) {
            snprintf(err, errlen, "record %" PRId64 " of the audit log is stored in altered form: run "
                                  "'custodyctl verify' and keep the log as evidence", r.seq);
            rc = SQLITE_CORRUPT;
            break;
        }
        if (r.seq == expect && head_seq >= 2 && expect == head_seq - 1) {
            memcpy(log->prev, r.hash, AUDIT_HASH_SIZE); /* vouched for by the head's hash */
        } else {
            audit_record_hash(log->prev, &r, h);
            if (r.seq != expect || memcmp(h, r.hash, AUDIT_HASH_SIZE) != 0 ||
                (r.seq == head_seq && memcmp(h, head_hash, AUDIT_HASH_SIZE) != 0)) {
                snprintf(err, errlen, "the audit log fails verification at record %" PRId64
                                      ": run 'custodyctl verify' and keep the log as evidence",
                         expect);
                rc = SQLITE_CORRUPT;
                break;
            }
            memcpy(log->prev, h, AUDIT_HASH_SIZE);
            if (r.seq > head_seq && strcmp(r.op != NULL ? r.op : "", "unmount") == 0)
                tail_unmount = 1;
        }
        expect++;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK && log->sk != NULL && expect - 1 > head_seq &&
        (head_seq == 0 || expect - 1 - head_seq >= AUDIT_HEAD_EVERY || tail_unmount)) {
        snprintf(err, errlen, "records %" PRId64 " to %" PRId64 " of the audit log are not "
                              "covered by a signed head, more than a stopped daemon leaves: run "
                              "'custodyctl verify' and keep the log as evidence",
                 head_seq + 1, expect - 1);
        rc = SQLITE_CORRUPT;
    }
    if (rc == SQLITE_OK && expect <= head_seq) {
        snprintf(err, errlen, "the audit log ends before its last signed head (record %" PRId64
                              "): run 'custodyctl verify'", head_seq);
        rc = SQLITE_CORRUPT;
    }
    log->next_seq = expect;
    return rc == SQLITE_OK ? 0 : -1;
}

static int prepare_all(struct audit_log *log)
{
    static const char ins[] = "INSERT INTO records(" AUDIT_COLUMNS ") VALUES(?,?,?,?,?,?,?,?,?,?,"
                              "?,?,?,?,?,?,?,?,?)";
    sqlite3 *db = log->db;

    return sqlite3_prepare_v2(db, ins, -1, &log->ins_rec, NULL) != SQLITE_OK ||
           sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO heads VALUES(?,?,?,?)", -1, &log->ins_head,
                              NULL) != SQLITE_OK ||
           sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &log->begin, NULL) != SQLITE_OK ||
           sqlite3_prepare_v2(db, "COMMIT", -1, &log->commit, NULL) != SQLITE_OK ||
           sqlite3_prepare_v2(db, "ROLLBACK", -1, &log->rollback, NULL) != SQLITE_OK ||
           sqlite3_prepare_v2(db, "SELECT " AUDIT_COLUMNS " FROM records WHERE seq >= ? ORDER BY seq",
                              -1, &log->tail, NULL) != SQLITE_OK ||
           sqlite3_prepare_v2(db, "SELECT max(seq) FROM heads", -1, &log->max_head, NULL) !=
               SQLITE_OK ||
           sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta(key, value) VALUES('spool_seq', "
                                  "CAST(? AS TEXT))", -1, &log->set_sseq, NULL) != SQLITE_OK;
}

static void log_free(struct audit_log *log)
{
    sqlite3_finalize(log->ins_rec);
    sqlite3_finalize(log->ins_head);
    sqlite3_finalize(log->begin);
    sqlite3_finalize(log->commit);
    sqlite3_finalize(log->rollback);
    sqlite3_finalize(log->tail);
    sqlite3_finalize(log->max_head);
    sqlite3_finalize(log->set_sseq);
    sqlite3_close(log->db);
    spool_close(log->spool);
    sodium_free(log->sk);
    qlist_free(log->qhead);
    pthread_mutex_destroy(&log->mu);
    pthread_cond_destroy(&log->work);
    pthread_cond_destroy(&log->done);
    free(log->db_path);
    free(log);
}

static int open_db(struct audit_log *log, char *err, size_t errlen)
{
    int rc, fd = open(log->db_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

    /* the log and its WAL are for root alone: SQLite gives the WAL the database's mode */
    if (fd < 0 && errno != EROFS && errno != EACCES) {
        snprintf(err, errlen, "cannot open the audit log %s: %s", log->db_path, strerror(errno));
        return -1;
    }
    if (fd >= 0)
        close(fd);
    /* The connection is used by one round leader at a time (`committing`, under mu): SQLite's
     * own mutex on every call would only add cost. */
    rc = sqlite3_open_v2(log->db_path, &log->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);

    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open the audit log %s: %s", log->db_path,
                 log->db != NULL ? sqlite3_errmsg(log->db) : sqlite3_errstr(rc));
        return -1;
    }
    sqlite3_busy_timeout(log->db, 1000);
    if (exec_sql(log->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", err,
                 errlen) != SQLITE_OK ||
        exec_sql(log->db, audit_schema_sql, err, errlen) != SQLITE_OK) {
        char why[200];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "cannot set up the audit log %s: %s", log->db_path, why);
        return -1;
    }
    return check_meta(log, err, errlen);
}

static int requeue_spooled(const struct audit_record *r, int64_t sseq, void *arg)
{
    struct audit_log *log = arg;
    struct qrec *q = qrec_new(r);

    if (q == NULL)
        return -1;
    q->sseq = sseq;
    enqueue_locked(log, q, 0);
    return 0;
}

/* The highest spool sequence number the database holds as committed (0: none). */
static int64_t committed_sseq(struct audit_log *log)
{
    sqlite3_stmt *st = NULL;
    int64_t v = 0;

    if (sqlite3_prepare_v2(log->db, "SELECT CAST(value AS INTEGER) FROM meta WHERE "
                                    "key='spool_seq'", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/*
 * Use a spool when this process can have one, and queue what it holds beyond the last commit
 * (records a killed writer had acknowledged), with a record saying so.  A log without a spool
 * still works: every record is then committed before it is acknowledged.  Returns 0, or -1 with
 * err set when recovered records cannot be queued.
 */
static int open_spool(struct audit_log *log, char *err, size_t errlen)
{
    char why[256], detail[200];
    int damaged = 0, n;

    log->spool = spool_open(log->db_path, log->sk, why, sizeof(why));
    if (log->spool == NULL)
        return 0;
    n = spool_replay(log->spool, committed_sseq(log), requeue_spooled, log, &damaged);
    if (n < 0) {
        snprintf(err, errlen, "out of memory reading the audit spool of %s", log->db_path);
        return -1;
    }
    if (n > 0 || damaged) {
        struct audit_record r = {
            .uid = (int64_t)getuid(), .gid = (int64_t)getgid(), .pid = (int64_t)getpid(),
            .ppid = AUDIT_NONE, .pstart = AUDIT_NONE, .bytes = AUDIT_NONE,
            .op = "audit-recovery", .result = "ok", .process = "custodyfs", .detail = detail,
        };
        struct qrec *q;
        snprintf(detail, sizeof(detail), "%d records acknowledged by a writer that stopped "
                                         "before committing them were committed from its "
                                         "spool%s", n,
                 damaged ? "; the spool ended at a torn or altered entry" : "");
        if ((q = qrec_new(&r)) == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        enqueue_locked(log, q, 0);
    }
    return 0;
}

int audit_open(const struct audit_config *cfg, struct audit_log **out, char *err, size_t errlen)
{
    struct audit_log *log = calloc(1, sizeof(*log));
    uint64_t no_refusals = 0;

    *out = NULL;
    if (log == NULL || (log->db_path = strdup(cfg->db_path)) == NULL) {
        free(log);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&log->mu, NULL);
    pthread_cond_init(&log->work, NULL);
    pthread_cond_init(&log->done, NULL);
    log->qtail = &log->qhead;
    log->healthy = 1;
    memcpy(log->vault_id, cfg->vault_id, AUDIT_ID_SIZE);
    if (cfg->sign_sk != NULL) {
        log->sk = sodium_malloc(AUDIT_SK_SIZE);
        if (log->sk == NULL)
            goto fail_mem;
        memcpy(log->sk, cfg->sign_sk, AUDIT_SK_SIZE);
        crypto_sign_ed25519_sk_to_pk(log->pk, log->sk);
    }
    if (open_db(log, err, errlen) != 0 || recover_tail(log, err, errlen) != 0)
        goto fail;
    if (prepare_all(log) != 0) {
        snprintf(err, errlen, "cannot prepare the audit log: %s", sqlite3_errmsg(log->db));
        goto fail;
    }
    if (cfg->spool && open_spool(log, err, errlen) != 0)
        goto fail;
    /* Commit what the spool held, and sign what a killed daemon left unsigned, so that the
     * chain goes on from a signed head. */
    if (commit_batch(log, log->qhead, 0, 0, &no_refusals, "", 1) != SQLITE_OK) {
        snprintf(err, errlen, "cannot write the audit log %s: %s", log->db_path,
                 sqlite3_errmsg(log->db));
        goto fail;
    }
    qlist_free(take_queue(log));
    if (log->spool != NULL)
        spool_rewind(log->spool);
    log->last_head_mono = 0; /* the first records are signed at once */
    if (pthread_create(&log->thread, NULL, writer_main, log) != 0)
        goto fail_mem;
    *out = log;
    return 0;
fail_mem:
    snprintf(err, errlen, "out of memory");
fail:
    log_free(log);
    return -1;
}

int audit_close(struct audit_log *log, int grace_seconds)
{
    int lost;

    if (log == NULL)
        return 0;
    pthread_mutex_lock(&log->mu);
    log->stop = 1;
    log->grace_seconds = grace_seconds;
    pthread_cond_signal(&log->work);
    pthread_mutex_unlock(&log->mu);
    pthread_join(log->thread, NULL);
    lost = log->qhead != NULL;
    if (lost) {
        int spooled_only = 1;
        for (struct qrec *q = log->qhead; q != NULL; q = q->next)
            spooled_only &= q->sseq > 0;
        fprintf(stderr, "custodyfs: audit log: records could not be committed before exit%s\n",
                spooled_only ? "; they stay in the spool and the next open of the log commits "
                               "them" : "");
    }
    log_free(log);
    return lost ? -1 : 0;
}
