#include "ops.h"

#include "fs/backing.h"
#include "fs/contentio.h"
#include "fs/fslog.h"
#include "fs/node.h"
#include "fs/trail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

/* An open regular file. */
struct handle {
    int fd;
    int append;
    struct node *node;
    struct tally *tally;       /* reads and writes, for the audit log */
};

/* An open directory. */
struct dir_handle {
    DIR *dp;
    struct dirent *entry;
    off_t offset;
    int is_root;
};

#define XATTR_USER_PREFIX "user."

static struct fs_state *state(void)
{
    return fuse_get_context()->private_data;
}

static int root_fd(void)
{
    return state()->root_fd;
}

static struct handle *fh(const struct fuse_file_info *fi)
{
    return (struct handle *)(uintptr_t)fi->fh;
}

static int neg_errno(void)
{
    return -errno;
}

/* Who sent the current request. */
static void caller(struct caller *c)
{
    const struct fuse_context *ctx = fuse_get_context();

    caller_identify(ctx->uid, ctx->gid, ctx->pid, c);
}

/* Start an audited operation: identify the caller; -EIO when the log cannot take records. */
static int begin(struct caller *c)
{
    caller(c);
    return trail_ready();
}

static const unsigned char *node_file_id(struct node *n)
{
    return n != NULL && n->cf != NULL ? content_file_id(n->cf) : NULL;
}

/* Report an authentication failure: which file, which block. */
static void integrity_failure(const char *path, struct node *n, uint64_t block)
{
    char detail[64];
    struct caller c;

    caller(&c);
    if (block == CONTENTIO_HEADER_BLOCK)
        snprintf(detail, sizeof(detail), "header or size");
    else
        snprintf(detail, sizeof(detail), "block %llu", (unsigned long long)block);
    trail_event(&c, "integrity-failure", path, node_file_id(n), -EIO, detail);
    if (block == CONTENTIO_HEADER_BLOCK)
        fslog(LOG_ERR, "integrity failure: %s: header or size fails authentication",
              path != NULL ? path : "(deleted file)");
    else
        fslog(LOG_ERR, "integrity failure: %s: block %llu fails authentication",
              path != NULL ? path : "(deleted file)", (unsigned long long)block);
}

/* Plaintext size for a stat of a regular backing file. */
static void fix_size(struct stat *st, struct node *n)
{
    int valid;

    if (!S_ISREG(st->st_mode))
        return;
    if (n != NULL)
        st->st_size = (off_t)contentio_size(n);
    else
        st->st_size = (off_t)content_plain_size(node_conf()->cipher, (uint64_t)st->st_size,
                                                &valid);
}

/* ---- attributes ---- */

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    const char *name;
    int dfd, rc = 0;

    if (fi != NULL) { /* the kernel passes a handle for regular files only */
        if (fstat(fh(fi)->fd, st) != 0)
            return neg_errno();
        fix_size(st, fh(fi)->node);
        return 0;
    }
    dfd = backing_parent(root_fd(), path, &name);
    if (dfd < 0)
        return dfd;
    if (fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) != 0)
        rc = neg_errno();
    backing_put(root_fd(), dfd);
    if (rc == 0)
        fix_size(st, NULL);
    return rc;
}

/* Open the final component as O_PATH without following it.  Returns fd or -errno. */
static int open_path_nofollow(const char *path)
{
    const char *name;
    int fd, dfd = backing_parent(root_fd(), path, &name);

    if (dfd < 0)
        return dfd;
    fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        fd = neg_errno();
    backing_put(root_fd(), dfd);
    return fd;
}

static void proc_path(int fd, char *buf, size_t len)
{
    snprintf(buf, len, "/proc/self/fd/%d", fd);
}

static int do_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    char proc[64];
    struct stat st;
    int fd, rc = 0;

    if (fi != NULL)
        return fchmod(fh(fi)->fd, mode) == 0 ? 0 : neg_errno();
    fd = open_path_nofollow(path);
    if (fd < 0)
        return fd;
    proc_path(fd, proc, sizeof(proc));
    if (fstat(fd, &st) != 0)
        rc = neg_errno();
    else if (S_ISLNK(st.st_mode))
        rc = -EOPNOTSUPP; /* a link's mode means nothing; chmod follows links */
    else if (chmod(proc, mode) != 0)
        rc = neg_errno();
    close(fd);
    return rc;
}

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    char detail[32];
    struct caller c;
    int rc = begin(&c);

    if (rc != 0)
        return rc;
    rc = do_chmod(path, mode, fi);
    snprintf(detail, sizeof(detail), "mode=%04o", (unsigned)(mode & 07777));
    return trail_record(&c, "chmod", path, NULL, fi ? node_file_id(fh(fi)->node) : NULL, rc,
                        detail);
}

static int do_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    const char *name;
    int dfd, rc = 0;

    if (fi != NULL)
        return fchown(fh(fi)->fd, uid, gid) == 0 ? 0 : neg_errno();
    dfd = backing_parent(root_fd(), path, &name);
    if (dfd < 0)
        return dfd;
    if (fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
        rc = neg_errno();
    backing_put(root_fd(), dfd);
    return rc;
}

static int op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    char detail[64];
    struct caller c;
    int rc = begin(&c);

    if (rc != 0)
        return rc;
    rc = do_chown(path, uid, gid, fi);
    snprintf(detail, sizeof(detail), "owner=%lld:%lld", uid == (uid_t)-1 ? -1LL : (long long)uid,
             gid == (gid_t)-1 ? -1LL : (long long)gid);
    return trail_record(&c, "chown", path, NULL, fi ? node_file_id(fh(fi)->node) : NULL, rc,
                        detail);
}

static int do_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    const char *name;
    int dfd, rc = 0;

    if (fi != NULL)
        return futimens(fh(fi)->fd, tv) == 0 ? 0 : neg_errno();
    dfd = backing_parent(root_fd(), path, &name);
    if (dfd < 0)
        return dfd;
    if (utimensat(dfd, name, tv, AT_SYMLINK_NOFOLLOW) != 0)
        rc = neg_errno();
    backing_put(root_fd(), dfd);
    return rc;
}

static int op_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    struct caller c;
    int rc = begin(&c);

    if (rc != 0)
        return rc;
    rc = do_utimens(path, tv, fi);
    return trail_record(&c, "utimens", path, NULL, fi ? node_file_id(fh(fi)->node) : NULL, rc,
                        NULL);
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    uint64_t bad = CONTENTIO_HEADER_BLOCK;
    struct node *n = NULL;
    char detail[40];
    struct caller c;
    int fd = -1, rc = begin(&c);

    if (rc != 0)
        return rc;
    snprintf(detail, sizeof(detail), "size=%lld", (long long)size);
    if (size < 0) {
        rc = -EINVAL;
    } else if (fi != NULL) {
        n = fh(fi)->node;
        rc = contentio_truncate(n, fh(fi)->fd, (uint64_t)size, &bad);
    } else if ((fd = backing_open(root_fd(), path, O_RDWR | O_NOFOLLOW | O_NONBLOCK, 0)) < 0) {
        rc = fd;
    } else if ((rc = node_get(fd, 1, &n)) == 0) {
        rc = contentio_truncate(n, fd, (uint64_t)size, &bad);
    }
    if (rc == -EIO)
        integrity_failure(path, n, bad);
    rc = trail_record(&c, "truncate", path, NULL, node_file_id(n), rc, detail);
    if (fi == NULL) {
        node_put(n);
        if (fd >= 0)
            close(fd);
    }
    return rc;
}

/* ---- files ---- */

/* Flags for the backing descriptor: always readable (read-modify-write needs it). */
static int backing_flags(int flags)
{
    int keep = O_SYNC | O_DSYNC | O_NOATIME;

    return ((flags & O_ACCMODE) == O_RDONLY ? O_RDONLY : O_RDWR) | (flags & keep) |
           O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
}

static void handle_free(struct handle *h)
{
    tally_free(h->tally);
    node_put(h->node);
    close(h->fd);
    free(h);
}

/* What an open asks for, for its audit record. */
static void open_detail(int flags, char *buf, size_t len)
{
    int acc = flags & O_ACCMODE;

    snprintf(buf, len, "%s%s%s%s", acc == O_RDONLY ? "read" : acc == O_WRONLY ? "write" :
                                                                                "read-write",
             (flags & O_APPEND) ? ",append" : "", (flags & O_TRUNC) ? ",truncate" : "",
             (flags & O_CREAT) ? ",create" : "");
}

/*
 * Wrap an open backing descriptor into a handle and record the open; consumes fd on failure.
 * `op` is "open" or "create".
 */
static int handle_new(const struct caller *c, const char *op, const char *path, int fd,
                      int flags, struct fuse_file_info *fi)
{
    int writable = (flags & O_ACCMODE) != O_RDONLY;
    uint64_t bad = CONTENTIO_HEADER_BLOCK;
    struct handle *h = calloc(1, sizeof(*h));
    char detail[64];
    struct stat st;
    int rc;

    if (h == NULL) {
        close(fd);
        return -ENOMEM;
    }
    h->fd = fd;
    h->append = (flags & O_APPEND) != 0;
    rc = fstat(fd, &st) != 0 ? neg_errno() : S_ISREG(st.st_mode) ? 0 : -EINVAL;
    if (rc == 0)
        rc = node_get(fd, writable, &h->node);
    if (rc == 0 && writable && (flags & O_TRUNC))
        rc = contentio_truncate(h->node, fd, 0, &bad);
    if (rc == 0 && (h->tally = tally_new(c, path, node_file_id(h->node))) == NULL)
        rc = -ENOMEM;
    if (rc == -EIO)
        integrity_failure(path, h->node, bad);
    open_detail(flags, detail, sizeof(detail));
    rc = trail_record(c, op, path, NULL, node_file_id(h->node), rc, detail);
    if (rc != 0) {
        handle_free(h);
        return rc;
    }
    fi->fh = (uint64_t)(uintptr_t)h;
    /* Keep the page cache across opens: every change goes through this mount.  A file with
     * several names has several kernel inodes here, so it is re-read instead. */
    fi->keep_cache = st.st_nlink == 1;
    return 0;
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
    struct caller c;
    int fd, rc = begin(&c);

    if (rc != 0)
        return rc;
    fd = backing_open(root_fd(), path, backing_flags(fi->flags), 0);
    if (fd < 0) {
        char detail[64];
        open_detail(fi->flags, detail, sizeof(detail));
        return trail_record(&c, "open", path, NULL, NULL, fd, detail);
    }
    return handle_new(&c, "open", path, fd, fi->flags, fi);
}

/* Owner and group for something a caller creates in directory dfd. */
static void new_owner(int dfd, uid_t *uid, gid_t *gid)
{
    struct fuse_context *ctx = fuse_get_context();
    struct stat dst;

    *uid = ctx->uid;
    *gid = ctx->gid;
    if (fstat(dfd, &dst) == 0 && (dst.st_mode & S_ISGID))
        *gid = dst.st_gid; /* BSD group semantics of a set-group-ID directory */
}

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    const char *name;
    struct caller c;
    uid_t uid;
    gid_t gid;
    int fd, dfd = begin(&c);

    if (dfd != 0)
        return dfd;
    dfd = backing_parent(root_fd(), path, &name);
    if (dfd < 0)
        return trail_record(&c, "create", path, NULL, NULL, dfd, NULL);
    fd = openat(dfd, name, backing_flags(fi->flags) | O_RDWR | O_CREAT | O_EXCL, mode & 07777);
    if (fd >= 0) {
        new_owner(dfd, &uid, &gid);
        if (fchown(fd, uid, gid) != 0) {
            fd = neg_errno();
            unlinkat(dfd, name, 0);
        }
    } else if (errno == EEXIST && !(fi->flags & O_EXCL)) {
        fd = openat(dfd, name, backing_flags(fi->flags));
        fd = fd < 0 ? neg_errno() : fd;
    } else {
        fd = neg_errno();
    }
    backing_put(root_fd(), dfd);
    if (fd < 0)
        return trail_record(&c, "create", path, NULL, NULL, fd, NULL);
    return handle_new(&c, "create", path, fd, (fi->flags & ~O_ACCMODE) | O_RDWR, fi);
}

static int op_read(const char *path, char *buf, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
    uint64_t bad = CONTENTIO_HEADER_BLOCK;
    ssize_t n;

    if (off < 0)
        return -EINVAL;
    if (trail_ready() != 0)
        return -EIO;
    n = contentio_read(fh(fi)->node, fh(fi)->fd, buf, size, (uint64_t)off, &bad);
    if (n == -EIO)
        integrity_failure(path, fh(fi)->node, bad);
    if (n > 0)
        tally_add(fh(fi)->tally, 0, (uint64_t)off, (uint64_t)n);
    return (int)n;
}

static int op_write(const char *path, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    uint64_t bad = CONTENTIO_HEADER_BLOCK;
    ssize_t n;

    if (off < 0)
        return -EINVAL;
    if (trail_ready() != 0)
        return -EIO;
    n = contentio_write(fh(fi)->node, fh(fi)->fd, buf, size, (uint64_t)off, fh(fi)->append,
                        &bad);
    if (n == -EIO)
        integrity_failure(path, fh(fi)->node, bad);
    if (n > 0)
        tally_add(fh(fi)->tally, 1, (uint64_t)off, (uint64_t)n);
    return (int)n;
}

static int op_fallocate(const char *path, int mode, off_t off, off_t len,
                        struct fuse_file_info *fi)
{
    uint64_t bad = CONTENTIO_HEADER_BLOCK;
    int rc;

    struct caller c;
    char detail[64];

    if ((rc = begin(&c)) != 0)
        return rc;
    if (mode != 0)
        rc = -EOPNOTSUPP;
    else if (off < 0 || len <= 0)
        rc = -EINVAL;
    else
        rc = contentio_allocate(fh(fi)->node, fh(fi)->fd, (uint64_t)off, (uint64_t)len, &bad);
    if (rc == -EIO)
        integrity_failure(path, fh(fi)->node, bad);
    snprintf(detail, sizeof(detail), "mode=%d offset=%lld length=%lld", mode, (long long)off,
             (long long)len);
    return trail_record(&c, "fallocate", path, NULL, node_file_id(fh(fi)->node), rc, detail);
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    if ((datasync ? fdatasync(fh(fi)->fd) : fsync(fh(fi)->fd)) != 0)
        return neg_errno();
    /* what the file holds is durable: so is the record of how it got there */
    if (tally_flush(fh(fi)->tally, 1) != 0 || trail_sync() != 0)
        return -EIO;
    return 0;
}

static int op_flush(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    (void)fi;
    return 0; /* writes reach the backing file before they return */
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    handle_free(fh(fi));
    return 0;
}

/* ---- names ---- */

/* Run fn(dfd, name) on the parent of path, as audited operation `op`. */
static int at_parent(const char *op, const char *path, const char *path2, const char *detail,
                     int (*fn)(int dfd, const char *name, void *arg), void *arg)
{
    const char *name;
    struct caller c;
    int rc, dfd = begin(&c);

    if (dfd != 0)
        return dfd;
    dfd = backing_parent(root_fd(), path, &name);
    if (dfd < 0) {
        rc = dfd;
    } else {
        rc = fn(dfd, name, arg);
        backing_put(root_fd(), dfd);
    }
    return trail_record(&c, op, path, path2, NULL, rc, detail);
}

/* Give a new entry to the caller (never following a link). */
static int chown_new(int dfd, const char *name)
{
    uid_t uid;
    gid_t gid;

    new_owner(dfd, &uid, &gid);
    if (fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
        return neg_errno();
    return 0;
}

static int do_mkdir(int dfd, const char *name, void *arg)
{
    int rc;

    if (mkdirat(dfd, name, *(mode_t *)arg & 07777) != 0)
        return neg_errno();
    rc = chown_new(dfd, name);
    if (rc != 0)
        unlinkat(dfd, name, AT_REMOVEDIR);
    return rc;
}

static int op_mkdir(const char *path, mode_t mode)
{
    char detail[32];

    snprintf(detail, sizeof(detail), "mode=%04o", (unsigned)(mode & 07777));
    return at_parent("mkdir", path, NULL, detail, do_mkdir, &mode);
}

struct mknod_args {
    mode_t mode;
    dev_t rdev;
};

static int do_mknod(int dfd, const char *name, void *arg)
{
    struct mknod_args *a = arg;
    int rc;

    if (!S_ISREG(a->mode) && !S_ISFIFO(a->mode) && !S_ISSOCK(a->mode))
        return -EPERM; /* no device nodes in a vault */
    if (mknodat(dfd, name, a->mode, 0) != 0)
        return neg_errno();
    rc = chown_new(dfd, name);
    if (rc != 0)
        unlinkat(dfd, name, 0);
    return rc;
}

static int op_mknod(const char *path, mode_t mode, dev_t rdev)
{
    struct mknod_args a = {mode, rdev};
    char detail[48];

    snprintf(detail, sizeof(detail), "type=%s mode=%04o",
             S_ISREG(mode) ? "file" : S_ISFIFO(mode) ? "fifo" : S_ISSOCK(mode) ? "socket" :
             S_ISCHR(mode) ? "char-device" : S_ISBLK(mode) ? "block-device" : "other",
             (unsigned)(mode & 07777));
    return at_parent("mknod", path, NULL, detail, do_mknod, &a);
}

static int do_symlink(int dfd, const char *name, void *arg)
{
    int rc;

    if (symlinkat((const char *)arg, dfd, name) != 0)
        return neg_errno();
    rc = chown_new(dfd, name);
    if (rc != 0)
        unlinkat(dfd, name, 0);
    return rc;
}

static int op_symlink(const char *target, const char *path)
{
    return at_parent("symlink", path, target, NULL, do_symlink, (void *)target);
}

static int do_unlink(int dfd, const char *name, void *arg)
{
    return unlinkat(dfd, name, *(int *)arg) == 0 ? 0 : neg_errno();
}

/*
 * Unlinking a file that is still open: libfuse renames it to ".fuse_hiddenNNN" in the same
 * directory and unlinks that name at the last close, so that the open handles keep a path
 * (fstat, fchmod of an unlinked file work).  Such names are not listed, and the rename is what
 * the caller did: an unlink.
 */
#define HIDDEN_PREFIX ".fuse_hidden"

static int is_hidden_name(const char *path)
{
    const char *base = strrchr(path, '/');

    base = base != NULL ? base + 1 : path;
    return strncmp(base, HIDDEN_PREFIX, sizeof(HIDDEN_PREFIX) - 1) == 0;
}

static int op_unlink(const char *path)
{
    const char *name;
    int flags = 0, rc, dfd;

    if (!is_hidden_name(path))
        return at_parent("unlink", path, NULL, NULL, do_unlink, &flags);
    /* the last close of a file unlinked while open: recorded at its unlink */
    dfd = backing_parent(root_fd(), path, &name);
    if (dfd < 0)
        return dfd;
    rc = do_unlink(dfd, name, &flags);
    backing_put(root_fd(), dfd);
    return rc;
}

static int op_rmdir(const char *path)
{
    int flags = AT_REMOVEDIR;

    return at_parent("rmdir", path, NULL, NULL, do_unlink, &flags);
}

static int op_readlink(const char *path, char *buf, size_t size)
{
    const char *name;
    ssize_t n;
    int dfd;

    if (size == 0)
        return -EINVAL;
    dfd = backing_parent(root_fd(), path, &name);
    if (dfd < 0)
        return dfd;
    n = readlinkat(dfd, name, buf, size - 1);
    if (n < 0)
        n = neg_errno();
    backing_put(root_fd(), dfd);
    if (n < 0)
        return (int)n;
    buf[n] = '\0';
    return 0;
}

static int two_parents(const char *from, const char *to, unsigned flags,
                       int (*fn)(int, const char *, int, const char *, unsigned))
{
    const char *n1, *n2;
    int d1, d2, rc;

    d1 = backing_parent(root_fd(), from, &n1);
    if (d1 < 0)
        return d1;
    d2 = backing_parent(root_fd(), to, &n2);
    if (d2 < 0) {
        backing_put(root_fd(), d1);
        return d2;
    }
    rc = fn(d1, n1, d2, n2, flags);
    backing_put(root_fd(), d1);
    backing_put(root_fd(), d2);
    return rc;
}

/* Run fn on the parents of two paths (rename, link), as audited operation `op`. */
static int at_two_parents(const char *op, const char *from, const char *to, unsigned flags,
                          int (*fn)(int, const char *, int, const char *, unsigned))
{
    char detail[32];
    struct caller c;
    int rc = begin(&c);

    if (rc != 0)
        return rc;
    rc = two_parents(from, to, flags, fn);
    snprintf(detail, sizeof(detail), "%s", flags & RENAME_EXCHANGE ? "exchange" :
                                           flags & RENAME_NOREPLACE ? "noreplace" : "");
    return trail_record(&c, op, from, to, NULL, rc, detail[0] ? detail : NULL);
}

static int do_rename(int d1, const char *n1, int d2, const char *n2, unsigned flags)
{
    return renameat2(d1, n1, d2, n2, flags) == 0 ? 0 : neg_errno();
}

static int op_rename(const char *from, const char *to, unsigned int flags)
{
    struct caller c;
    int rc;

    if (!is_hidden_name(to) || flags != 0)
        return at_two_parents("rename", from, to, flags, do_rename);
    if ((rc = begin(&c)) != 0)
        return rc;
    rc = two_parents(from, to, 0, do_rename);
    return trail_record(&c, "unlink", from, NULL, NULL, rc, "still open: removed at last close");
}

static int do_link(int d1, const char *n1, int d2, const char *n2, unsigned flags)
{
    (void)flags;
    return linkat(d1, n1, d2, n2, 0) == 0 ? 0 : neg_errno();
}

static int op_link(const char *from, const char *to)
{
    int rc = at_two_parents("link", from, to, 0, do_link);

    /* Each name is a kernel inode of its own here: make the old name's link count fresh. */
    if (rc == 0)
        fuse_invalidate_path(fuse_get_context()->fuse, from);
    return rc;
}

/* ---- directories ---- */

static struct dir_handle *dh(const struct fuse_file_info *fi)
{
    return (struct dir_handle *)(uintptr_t)fi->fh;
}

static int op_opendir(const char *path, struct fuse_file_info *fi)
{
    struct dir_handle *d = calloc(1, sizeof(*d));
    int fd;

    if (d == NULL)
        return -ENOMEM;
    fd = backing_open(root_fd(), path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
    if (fd < 0) {
        free(d);
        return fd;
    }
    d->dp = fdopendir(fd);
    if (d->dp == NULL) {
        int e = errno;
        close(fd);
        free(d);
        return -e;
    }
    d->is_root = path[strspn(path, "/")] == '\0';
    fi->fh = (uint64_t)(uintptr_t)d;
    return 0;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    struct dir_handle *d = dh(fi);

    (void)path;
    (void)flags;
    if (offset != d->offset) {
        seekdir(d->dp, offset);
        d->entry = NULL;
        d->offset = offset;
    }
    for (;;) {
        struct stat st;
        if (d->entry == NULL) {
            errno = 0;
            d->entry = readdir(d->dp);
            if (d->entry == NULL)
                return errno != 0 ? -errno : 0;
        }
        if (!(d->is_root && backing_is_hidden(d->entry->d_name)) &&
            !is_hidden_name(d->entry->d_name)) {
            memset(&st, 0, sizeof(st));
            st.st_ino = d->entry->d_ino;
            st.st_mode = (mode_t)(d->entry->d_type << 12);
            if (filler(buf, d->entry->d_name, &st, d->entry->d_off, 0))
                return 0;
        }
        d->offset = d->entry->d_off;
        d->entry = NULL;
    }
}

static int op_releasedir(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    closedir(dh(fi)->dp);
    free(dh(fi));
    return 0;
}

static int op_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
    int fd = dirfd(dh(fi)->dp);

    (void)path;
    return (datasync ? fdatasync(fd) : fsync(fd)) == 0 ? 0 : neg_errno();
}

static int op_statfs(const char *path, struct statvfs *sv)
{
    (void)path;
    return fstatvfs(root_fd(), sv) == 0 ? 0 : neg_errno();
}

/* ---- extended attributes: the user.* namespace ---- */

static int is_user_xattr(const char *name)
{
    return strncmp(name, XATTR_USER_PREFIX, sizeof(XATTR_USER_PREFIX) - 1) == 0;
}

/*
 * Open the final component without following it and hand back a /proc path that reaches that
 * very inode.  Links have no user attributes: -ENODATA for them.
 */
static int xattr_target(const char *path, char *proc, size_t len)
{
    struct stat st;
    int fd = open_path_nofollow(path);

    if (fd < 0)
        return fd;
    if (fstat(fd, &st) != 0 || S_ISLNK(st.st_mode)) {
        close(fd);
        return S_ISLNK(st.st_mode) ? -ENODATA : -EIO;
    }
    proc_path(fd, proc, len);
    return fd;
}

static int do_setxattr(const char *path, const char *name, const char *value, size_t size,
                       int flags)
{
    char proc[64];
    int fd, rc = 0;

    if (!is_user_xattr(name))
        return -EOPNOTSUPP;
    fd = xattr_target(path, proc, sizeof(proc));
    if (fd < 0)
        return fd == -ENODATA ? -EPERM : fd;
    if (setxattr(proc, name, value, size, flags) != 0)
        rc = neg_errno();
    close(fd);
    return rc;
}

static int op_setxattr(const char *path, const char *name, const char *value, size_t size,
                       int flags)
{
    char detail[300];
    struct caller c;
    int rc = begin(&c);

    if (rc != 0)
        return rc;
    rc = do_setxattr(path, name, value, size, flags);
    snprintf(detail, sizeof(detail), "name=%s size=%zu", name, size);
    return trail_record(&c, "setxattr", path, NULL, NULL, rc, detail);
}

static int op_getxattr(const char *path, const char *name, char *value, size_t size)
{
    char proc[64];
    ssize_t n;
    int fd;

    if (!is_user_xattr(name))
        return -ENODATA;
    fd = xattr_target(path, proc, sizeof(proc));
    if (fd < 0)
        return fd;
    n = getxattr(proc, name, value, size);
    if (n < 0)
        n = neg_errno();
    close(fd);
    return (int)n;
}

/* Keep only user.* names in a listxattr buffer; returns the new length. */
static ssize_t filter_user_names(char *list, ssize_t len)
{
    ssize_t in = 0, out = 0;

    while (in < len) {
        size_t n = strnlen(list + in, (size_t)(len - in)) + 1;
        if (is_user_xattr(list + in)) {
            memmove(list + out, list + in, n);
            out += (ssize_t)n;
        }
        in += (ssize_t)n;
    }
    return out;
}

static int op_listxattr(const char *path, char *list, size_t size)
{
    char proc[64];
    char *all;
    ssize_t n;
    int fd = xattr_target(path, proc, sizeof(proc));

    if (fd == -ENODATA)
        return 0;
    if (fd < 0)
        return fd;
    n = listxattr(proc, NULL, 0);
    if (n < 0)
        n = neg_errno();
    all = n > 0 ? malloc((size_t)n) : NULL;
    if (n > 0 && all == NULL)
        n = -ENOMEM;
    else if (n > 0 && (n = listxattr(proc, all, (size_t)n)) < 0)
        n = neg_errno();
    close(fd);
    if (n > 0) {
        n = filter_user_names(all, n);
        if (size != 0 && (size_t)n > size)
            n = -ERANGE;
        else if (size != 0)
            memcpy(list, all, (size_t)n);
    }
    free(all);
    return (int)n;
}

static int do_removexattr(const char *path, const char *name)
{
    char proc[64];
    int fd, rc = 0;

    if (!is_user_xattr(name))
        return -EOPNOTSUPP;
    fd = xattr_target(path, proc, sizeof(proc));
    if (fd < 0)
        return fd == -ENODATA ? -EPERM : fd;
    if (removexattr(proc, name) != 0)
        rc = neg_errno();
    close(fd);
    return rc;
}

static int op_removexattr(const char *path, const char *name)
{
    char detail[300];
    struct caller c;
    int rc = begin(&c);

    if (rc != 0)
        return rc;
    rc = do_removexattr(path, name);
    snprintf(detail, sizeof(detail), "name=%s", name);
    return trail_record(&c, "removexattr", path, NULL, NULL, rc, detail);
}

/* ---- life cycle ---- */

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    cfg->use_ino = 1;          /* st_ino of the backing files: hard links show as such */
    cfg->nullpath_ok = 1;      /* operations on open files come by handle */
    cfg->hard_remove = 0;      /* an open file unlinked keeps a hidden name until closed */
    conn->max_write = 1u << 20;
    return fuse_get_context()->private_data;
}

static void op_destroy(void *data)
{
    (void)data;
    node_table_destroy();
}

const struct fuse_operations custody_ops = {
    .init = op_init,
    .destroy = op_destroy,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .chmod = op_chmod,
    .chown = op_chown,
    .truncate = op_truncate,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .statfs = op_statfs,
    .flush = op_flush,
    .release = op_release,
    .fsync = op_fsync,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .fsyncdir = op_fsyncdir,
    .create = op_create,
    .utimens = op_utimens,
    .fallocate = op_fallocate,
};
