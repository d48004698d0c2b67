/*
 * trail: the filesystem's side of the audit log.  Builds audit records from a caller
 * (fs/identity.h) and an operation, and coalesces reads and writes per open handle into
 * tallies: bytes and merged offset ranges, submitted at release, at fsync, and at least once a
 * second while the handle stays open (a flusher thread).
 *
 * Fail-closed: trail_ready() says whether the log can take records; operations must not start
 * when it cannot.  trail_record() returns -EIO when the record of a completed operation could not
 * be committed (it stays queued in the log and is committed on recovery).
 */
#ifndef CUSTODY_TRAIL_H
#define CUSTODY_TRAIL_H

#include "audit/audit.h"
#include "crypto/content.h"
#include "fs/identity.h"

#include <stddef.h>
#include <stdint.h>

/* trail_start: use `log` and start the flusher.  Returns 0 or -1. */
int trail_start(struct audit_log *log);
/* trail_stop: submit every tally and stop the flusher (the log stays open). */
void trail_stop(void);

/* trail_ready: 0 when the log takes records, else -EIO (and the refusal is counted). */
int trail_ready(void);

/*
 * trail_record: record a completed operation and wait for its commit.  `err` is the operation's
 * result (0 or a negative errno); file_id may be NULL.  Returns `err` when recorded, else -EIO.
 */
int trail_record(const struct caller *c, const char *op, const char *path, const char *path2,
                 const unsigned char *file_id, int err, const char *detail);

/* trail_event: record without waiting (integrity failures). */
void trail_event(const struct caller *c, const char *op, const char *path,
                 const unsigned char *file_id, int err, const char *detail);

/* trail_sync: commit everything queued and make it durable.  Returns 0 or -EIO. */
int trail_sync(void);

struct tally;

/* tally_new: a tally for a handle opened by `c` on `path`.  NULL when out of memory. */
struct tally *tally_new(const struct caller *c, const char *path, const unsigned char *file_id);
/* tally_add: count a read (is_write 0) or write of len bytes at off. */
void tally_add(struct tally *t, int is_write, uint64_t off, uint64_t len);
/* tally_flush: submit pending records; wait for their commit when `wait`.  0 or -EIO. */
int tally_flush(struct tally *t, int wait);
/* tally_free: submit what is pending and release.  Accepts NULL. */
void tally_free(struct tally *t);

#endif
