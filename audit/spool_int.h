/*
 * Private to audit/: the spool (spool.c), where a record is made crash-safe before it is
 * committed.  Not thread-safe: the log calls it under its mutex.
 */
#ifndef CUSTODY_AUDIT_SPOOL_INT_H
#define CUSTODY_AUDIT_SPOOL_INT_H

#include "audit/audit.h"

#include <stddef.h>
#include <stdint.h>

#define SPOOL_SIZE (16 << 20)

struct spool;

/*
 * spool_open: open (creating and preallocating SPOOL_SIZE bytes) DB_PATH-spool and lock it for
 * this process.  `sk` (Ed25519 secret key, or NULL) keys the entries' tags.  Returns the spool,
 * or NULL with err set when it cannot be used (another writer holds it, no space, read-only):
 * the log then commits every record before acknowledging it.
 */
struct spool *spool_open(const char *db_path, const unsigned char *sk, char *err, size_t errlen);

/* Called for each entry to recover; strings in r live until it returns.  Return 0 to go on. */
typedef int (*spool_entry_fn)(const struct audit_record *r, int64_t sseq, void *arg);

/*
 * spool_replay: call fn, in order, for every entry with a spool sequence number above `after`
 * (the highest the database holds as committed), then continue numbering after the highest
 * seen.  Must come before the first spool_append.  OUT: *damaged, when the run of entries ended
 * at one that fails its tag or does not decode (torn by a crash, or altered).  Returns the
 * number of entries passed to fn, or -1 (out of memory, or fn failed).
 */
int spool_replay(struct spool *s, int64_t after, spool_entry_fn fn, void *arg, int *damaged);

/*
 * spool_append: write r as the next entry.  Returns its spool sequence number (> 0), or 0 when
 * the spool is full or the write failed (the caller then waits for the commit instead).
 */
int64_t spool_append(struct spool *s, const struct audit_record *r);

/* spool_used: bytes written since the last rewind. */
uint64_t spool_used(const struct spool *s);

/* spool_rewind: every entry written is committed: start again at offset 0. */
void spool_rewind(struct spool *s);

/*
 * spool_last_written: the highest entry number of the run of entries from offset 0 of the spool
 * beside db_path, read without the key or the lock (by readers waiting for the writer's commit;
 * nothing is trusted from it but a number to wait for).  0 when there is no spool or no entry.
 */
int64_t spool_last_written(const char *db_path);

/* spool_close: close and unlock.  Accepts NULL. */
void spool_close(struct spool *s);

#endif
