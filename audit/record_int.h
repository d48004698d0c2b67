/* Private to audit/: record hashing, head signing, and the schema shared by writer and reader. */
#ifndef CUSTODY_AUDIT_RECORD_INT_H
#define CUSTODY_AUDIT_RECORD_INT_H

#include "audit/audit.h"

#include <sqlite3.h>

/* Column list, in hash order after seq and before hash. */
#define AUDIT_COLUMNS "seq, time_ns, uid, user, gid, pid, ppid, pstart, process, exe, op, " \
                      "path, path2, file_id, result, bytes, ranges, detail, hash"

/* The genesis value the first record chains to. */
void audit_genesis(const unsigned char vault_id[AUDIT_ID_SIZE], unsigned char out[AUDIT_HASH_SIZE]);

/* hash = BLAKE2b-256(prev || encoding of every field of rec but the hash). */
void audit_record_hash(const unsigned char prev[AUDIT_HASH_SIZE], const struct audit_record *rec,
                       unsigned char out[AUDIT_HASH_SIZE]);

/* The message a head signs. */
#define AUDIT_HEAD_MSG_SIZE (18 + AUDIT_ID_SIZE + 8 + AUDIT_HASH_SIZE + 8)
void audit_head_message(const struct audit_head *h, unsigned char msg[AUDIT_HEAD_MSG_SIZE]);

/*
 * Read one row of "SELECT " AUDIT_COLUMNS into rec (strings point into the statement).  Returns
 * 1 when the row is stored exactly as the writer stores it (integers as INTEGER, strings as TEXT
 * without NUL bytes, the hash as a 32-byte BLOB, NULL only where a field may be absent), else 0:
 * the hash covers the decoded values, so a row rewritten with other SQL types would decode to
 * the same record while answering queries differently.
 */
int audit_row_to_record(sqlite3_stmt *st, struct audit_record *rec);

/*
 * audit_verify() checks a log of at least this many records in two parts at once (verify.c).
 * Tests lower it to run every tamper case through the split.
 */
extern int64_t audit_verify_split_from;

/* Transactions the log's writer (or a caller leading a round) has committed (log.c; for tests). */
uint64_t audit_log_commits(struct audit_log *log);

/* Schema. */
extern const char audit_schema_sql[];
#define AUDIT_SCHEMA_VERSION "1"

#endif
