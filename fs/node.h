/*
 * node: one entry per backing inode that has open handles.
 *
 * Every open handle of the same backing file (through any name or hard link) shares one node:
 * its decrypted header (crypto state, in guarded memory), its plaintext size, and a read-write
 * lock that orders content reads (shared) against writes and truncates (exclusive), so that
 * processes using one file at once see consistent data.  Nodes are reference-counted and leave
 * the table, keys wiped, when the last handle closes.
 */
#ifndef CUSTODY_NODE_H
#define CUSTODY_NODE_H

#include "crypto/content.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

struct node {
    dev_t dev;
    ino_t ino;
    unsigned refs;              /* protected by the table lock */
    struct node *next;          /* hash chain, table lock */
    pthread_rwlock_t lock;      /* content lock; the fields below need it */
    int loaded;                 /* header read (cf may still be NULL for an empty file) */
    struct content_file *cf;    /* NULL while the backing file is empty (no header yet) */
    uint64_t size;              /* plaintext size */
    uint64_t blksize;           /* allocation unit of the backing filesystem (st_blksize) */
};

/* The vault-wide state nodes need.  Set once by node_table_init(). */
struct node_table_conf {
    const struct master_key *mk;
    unsigned cipher;            /* the vault's layout: cipher and file format (content.h) */
    int reserve_new;            /* reserve a growing file's new space (fallocate) before writing
                                   it: the backing filesystem may report a full disk only at
                                   writeback (backing_full_at_write() is false) */
};

/* node_table_init: prepare the table.  Returns 0 or -ENOMEM. */
int node_table_init(const struct node_table_conf *conf);

/* node_table_destroy: drop every node (at unmount). */
void node_table_destroy(void);

/*
 * node_get: the node of the backing file open as `fd`, loading its header on first use.  A file
 * whose backing size is 0 gets a header written when `writable`.  OUT: *out, with one reference
 * (node_put()).  Returns 0, -EIO for a header that fails authentication or a backing size no
 * valid file has, or another negative errno.
 */
int node_get(int fd, int writable, struct node **out);

/*
 * node_ensure_header: give a file that has none (an empty backing file) a fresh header.  Caller
 * holds n->lock exclusively.  Returns 0 or a negative errno.
 */
int node_ensure_header(struct node *n, int fd);

/* node_put: drop a reference.  Accepts NULL. */
void node_put(struct node *n);

/* node_conf: the configuration given to node_table_init(). */
const struct node_table_conf *node_conf(void);

#endif
