/*
 * ops: the FUSE operations of custodyfs (high-level libfuse 3 API, paths relative to the mount).
 *
 * With fs/wire.h (its I/O on the FUSE device), the only FUSE-aware module.  Each operation
 * resolves its path beneath the backing directory (fs/backing.h), works on the backing file, and
 * for regular files goes through fs/contentio.h so that content is encrypted on the way down and
 * authenticated on the way up.  Operations return 0 (or a byte count) or a negative errno and
 * never end the daemon.
 */
#ifndef CUSTODY_OPS_H
#define CUSTODY_OPS_H

#define FUSE_USE_VERSION 314
#include <fuse.h>

/* What the operations need; passed as fuse_new()'s private data. */
struct fs_state {
    int root_fd;              /* the backing directory */
    const char *backing;      /* its absolute path, for messages */
    /* Called once, by the first lookup the kernel sends once the connection is set up
     * (after INIT, whose reply resets mount settings); NULL: none. */
    void (*connected)(void);
};

extern const struct fuse_operations custody_ops;

#endif
