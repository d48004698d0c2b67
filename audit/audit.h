/*
 * audit: the hash-chained, signed, fail-closed audit log (a SQLite database).
 *
 * Every record carries a gapless sequence number and the BLAKE2b-256 hash of the previous
 * record's hash and an unambiguous encoding of all its own fields (audit/FORMAT in record.c);
 * the first record is chained to a genesis value bound to the vault's ID.  At least every
 * AUDIT_HEAD_EVERY records, every AUDIT_HEAD_SECONDS while records arrive, and at close, the
 * writer signs the chain head (sequence, hash, time) with the vault's Ed25519 key and stores it
 * in the `heads` table.  An edited, deleted, inserted, reordered or truncated record is then
 * detected by audit_verify(), which needs only the public key.
 *
 * The writer is one thread that takes every record queued since its last commit into one
 * SQLite transaction (group commit, WAL).  audit_append() returns once its record is safe from
 * the process being killed: written to the spool (audit/spool.c: one pwrite to a preallocated
 * file beside the database, which the next audit_open commits if this process dies first), or,
 * without a spool, committed.  audit_submit() queues a record without waiting (coalesced reads
 * and writes; spooled too when there is a spool).  Spooled records are committed in batches:
 * the writer lets them gather for up to 20 ms (or 256 records), so that records arriving one at
 * a time share a transaction; audit_sync() and unspooled records commit at once.  When a commit fails (disk full, read-only,
 * locked), the records stay queued, the log turns unhealthy (audit_healthy() false), nothing
 * more is spooled, and the writer retries; when a commit succeeds again it first records the
 * outage itself ("audit-gap": how long, how many operations were refused).  Records are never
 * dropped while the process lives; spool entries and commits survive the process being killed
 * (page cache; WAL, synchronous=NORMAL); audit_sync() makes everything committed durable on
 * disk too.
 *
 * This module never sees a FUSE request: callers describe the operation in a struct
 * audit_record.  Only this module includes sqlite3.h.
 */
#ifndef CUSTODY_AUDIT_H
#define CUSTODY_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#define AUDIT_ID_SIZE 16
#define AUDIT_HASH_SIZE 32
#define AUDIT_PK_SIZE 32
#define AUDIT_SK_SIZE 64
#define AUDIT_SIG_SIZE 64
#define AUDIT_HEAD_EVERY 1000
#define AUDIT_HEAD_SECONDS 5
#define AUDIT_FLUSH_SECONDS 1
#define AUDIT_DB_NAME "audit.db"

/* "No value" for the optional integer fields of a record. */
#define AUDIT_NONE INT64_MIN

/*
 * One record.  Strings are NUL-terminated, may be NULL (no value), and are copied by
 * audit_append()/audit_submit(): the caller keeps ownership.  Integers are AUDIT_NONE when they
 * do not apply.  seq, time_ns (when 0) and hash are filled in by the log.
 */
struct audit_record {
    int64_t seq;
    int64_t time_ns;            /* UTC nanoseconds since the epoch; 0: now */
    int64_t uid, gid, pid, ppid;
    int64_t pstart;             /* process start, in clock ticks since boot (/proc/PID/stat) */
    const char *user;
    const char *process;        /* comm */
    const char *exe;            /* executable path */
    const char *op;             /* "open", "read", ... (never NULL) */
    const char *path;           /* relative to the mount root, starting with '/' */
    const char *path2;          /* rename, link, symlink: the second path */
    const char *file_id;        /* 32 hex digits */
    const char *result;         /* "ok" or an errno name (never NULL) */
    int64_t bytes;              /* read/write: bytes moved */
    const char *ranges;         /* read/write: "start-end,..." half-open byte ranges */
    const char *detail;         /* free text: open mode, old and new values, options */
    unsigned char hash[AUDIT_HASH_SIZE];
};

struct audit_log;

/* Where the log lives and what binds it. */
struct audit_config {
    const char *db_path;
    unsigned char vault_id[AUDIT_ID_SIZE];
    const unsigned char *sign_sk;   /* Ed25519 secret key, guarded memory (NULL: no signing) */
    int spool;                      /* 1: acknowledge records once spooled (see audit_append) */
};

/*
 * audit_open: open (creating if missing) the log and start its writer.  An existing log must
 * belong to the same vault and its tail since the last signed head must verify; what a killed
 * writer left in the spool is committed (with an "audit-recovery" record) and the head is then
 * signed at once, so a log left by a killed daemon continues the same chain.  With cfg->spool,
 * the spool is used when this process can lock it.  OUT: *out.
 * Returns 0, or -1 with one line in err[errlen].
 */
int audit_open(const struct audit_config *cfg, struct audit_log **out, char *err, size_t errlen);

/*
 * audit_append: queue `rec` and wait until it is spooled or committed.  Returns 0, or -EIO when
 * the log is unhealthy or the commit failed (the record stays queued and is committed on
 * recovery).
 * OUT: rec->seq, rec->hash are not filled in (the record is copied).
 */
int audit_append(struct audit_log *log, const struct audit_record *rec);

/* audit_submit: queue `rec` without waiting.  Returns 0, or -ENOMEM. */
int audit_submit(struct audit_log *log, const struct audit_record *rec);

/*
 * audit_sync: wait until everything queued so far is committed, then make the log durable
 * (fdatasync).  Returns 0 or -EIO.
 */
int audit_sync(struct audit_log *log);

/* audit_healthy: false while commits fail; operations should then fail with EIO. */
int audit_healthy(struct audit_log *log);

/* audit_refused: count an operation refused because the log was unhealthy (for audit-gap). */
void audit_refused(struct audit_log *log);

/*
 * audit_close: commit what is queued (retrying for up to `grace_seconds` while unhealthy),
 * sign the head, stop the writer and close.  Returns 0, or -1 when records could not be
 * committed (reported on standard error: spooled ones are committed by the next audit_open,
 * the others are lost with the process).  Accepts NULL.
 */
int audit_close(struct audit_log *log, int grace_seconds);

/* audit_now_ns: the current UTC time in nanoseconds. */
int64_t audit_now_ns(void);

/* audit_errno_name: "EACCES" for EACCES, "ok" for 0, "E<number>" when unknown. */
const char *audit_errno_name(int err);

/* ---- reading the log (custodyctl) ---- */

/* A signed head. */
struct audit_head {
    unsigned char vault_id[AUDIT_ID_SIZE];
    int64_t seq;
    unsigned char hash[AUDIT_HASH_SIZE];
    int64_t time_ns;
    unsigned char pk[AUDIT_PK_SIZE];
    unsigned char sig[AUDIT_SIG_SIZE];
};

/* Line form of a head: "custodyfs-head 1 VAULTID SEQ HASH TIME PUBKEY SIG". */
#define AUDIT_HEAD_LINE_MAX 400
int audit_head_format(const struct audit_head *h, char *buf, size_t len);
/* Returns 0, or -1 when the line is not a head. */
int audit_head_parse(const char *line, struct audit_head *h);
/* audit_head_check_sig: 1 when h->sig is h->pk's signature of the head. */
int audit_head_check_sig(const struct audit_head *h);

/*
 * audit_settle: wait, up to timeout_ms, until the records a running writer has acknowledged (in
 * its spool) are committed to the log at db_path, so that a query run right after an operation
 * sees it.  Returns 0 (settled, or nothing to wait for) or -ETIMEDOUT (a writer that is not
 * committing, or a spool left by one that was killed: the next audit_open commits it).
 */
int audit_settle(const char *db_path, int timeout_ms);

/*
 * audit_latest_head: the newest signed head of the log at db_path.  `pk` is the vault's public
 * key (recorded in the head).  Returns 1 and fills *h, 0 when the log has no head, -1 on error
 * (err says why).
 */
int audit_latest_head(const char *db_path, const unsigned char pk[AUDIT_PK_SIZE],
                      struct audit_head *h, char *err, size_t errlen);

/* Progress callback for verify: records checked so far, and the total. */
typedef void (*audit_progress_fn)(int64_t done, int64_t total, void *arg);

struct audit_verify_result {
    int64_t records;            /* records checked */
    int64_t heads;              /* signed heads checked */
    int64_t unsigned_tail;      /* records after the last signed head */
    int64_t bad_seq;            /* first bad record (0: none) */
    char why[256];              /* what is wrong, one line; or a note when all holds */
};

/*
 * audit_verify: check every link of the chain, gapless sequence numbers, the genesis binding to
 * vault_id, every signed head (signature under pk, and that it matches its record), an unsigned
 * tail only as long as a running or killed writer can leave, and, when `anchor` is not NULL,
 * that the log still contains that head.  Returns 0 when all holds, 1 when the log is bad (see
 * res->bad_seq, res->why), -1 when the log cannot be read (res->why).
 */
int audit_verify(const char *db_path, const unsigned char vault_id[AUDIT_ID_SIZE],
                 const unsigned char pk[AUDIT_PK_SIZE], const struct audit_head *anchor,
                 audit_progress_fn progress, void *arg, struct audit_verify_result *res);

/* Iterate over records, oldest first: fn returns 0 to go on. */
typedef int (*audit_record_fn)(const struct audit_record *rec, void *arg);
/* Returns 0, or -1 with err set. */
int audit_foreach(const char *db_path, audit_record_fn fn, void *arg, char *err, size_t errlen);

#endif
