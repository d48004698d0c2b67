/*
 * reaper: the last close of unlinked files, in the background.
 *
 * When the last name of a file goes and nothing holds it open, the backing filesystem frees its
 * inode and blocks inside unlinkat() itself (ext4: truncate, bitmaps, journal): 0.1 to 0.2 ms
 * for a small file, paid by the caller of every unlink.  An unlink through the mount instead
 * holds the file open across its unlinkat() and hands the descriptor here; a thread closes it a
 * moment later, so that `rm -r` does not wait for the freeing.
 *
 * At most REAPER_MAX_BYTES of space and REAPER_MAX_FDS descriptors (or a quarter of the
 * process's descriptor limit) wait at any time; past that reaper_put() closes at once.  reaper_drain() waits until everything handed over is
 * closed: statfs and writes that meet ENOSPC call it, so free space looks as it would without.
 * Thread-safe.  The thread starts with the first reaper_put() (after the daemon has forked).
 */
#ifndef CUSTODY_REAPER_H
#define CUSTODY_REAPER_H

#include <stdint.h>

#define REAPER_MAX_FDS 1024
#define REAPER_MAX_BYTES (64u << 20)

/*
 * reaper_put: take ownership of descriptor `fd`, whose file holds `bytes` of backing space, and
 * close it soon.  Closes it at once when the limits are reached or no thread can run.
 */
void reaper_put(int fd, uint64_t bytes);

/* reaper_drain: wait until every descriptor handed over is closed.  Returns 1 when any was. */
int reaper_drain(void);

/* reaper_stop: close everything pending and end the thread (at unmount).  Idempotent. */
void reaper_stop(void);

#endif
