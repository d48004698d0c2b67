/*
 * backing: safe access to names inside the backing directory.
 *
 * FUSE hands the daemon paths like "/a/b/c".  Every such path is resolved beneath the backing
 * directory's descriptor, never through a symbolic link, a magic link or a mount point
 * (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV), so that nothing planted in
 * the backing store can lead the daemon (running as root) outside it.  The final component is
 * then used with *at() calls that do not follow links.  BACKING/.custody is not part of the
 * tree: any path through it is ENOENT.
 *
 * All functions return 0 or a descriptor on success, or a negative errno.
 */
#ifndef CUSTODY_BACKING_H
#define CUSTODY_BACKING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * backing_parent: resolve the directory holding the last component of `path`.  OUT: *name, the
 * last component (points into `path`; "." for the root).  Returns a descriptor to give back with
 * backing_put(), or a negative errno (ENOENT for anything under .custody).
 */
int backing_parent(int root_fd, const char *path, const char **name);

/* backing_put: release a descriptor from backing_parent(); never closes root_fd itself. */
void backing_put(int root_fd, int fd);

/*
 * backing_open: open `path` with `flags` (O_CREAT allowed, with `mode`), never following a link
 * in any component.  Returns a descriptor (the caller closes it) or a negative errno.
 */
int backing_open(int root_fd, const char *path, int flags, mode_t mode);

/*
 * backing_pread_full / backing_pwrite_full: read or write exactly len bytes at off, retrying
 * short transfers and EINTR.  Return 0 or a negative errno; a read that meets the end of the
 * file first returns -EIO (the file is shorter than its size says: cut).
 */
int backing_pread_full(int fd, void *buf, size_t len, uint64_t off);
int backing_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/*
 * backing_pread_least: read up to len bytes at off, and at least `need` (<= len): the end of the
 * file may come between the two (a direct read asks for whole aligned units).  Returns 0, -EIO
 * when the file ends before `need`, or another negative errno.
 */
int backing_pread_least(int fd, void *buf, size_t len, size_t need, uint64_t off);

/*
 * backing_full_at_write: does the filesystem holding the open descriptor `fd` report a full disk
 * when data is written, rather than later at writeback?  True of the local filesystems that
 * allocate or reserve space as they take a write (ext2/3/4, XFS, btrfs, f2fs, tmpfs); false of
 * anything else, such as a network filesystem, whose space custodyfs then reserves with
 * fallocate before it writes.  Returns 1 or 0.
 */
int backing_full_at_write(int fd);

/* backing_is_hidden: true when `name`, a direct child of the root, must not be seen. */
int backing_is_hidden(const char *name);

#endif
