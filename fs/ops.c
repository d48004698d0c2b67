#include "ops.h"

#include "fs/access.h"
#include "fs/backing.h"
#include "fs/contentio.h"
#include "fs/fslog.h"
#include "fs/node.h"
#include "fs/reaper.h"
#include "fs/trail.h"
#include "fs/wire.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <acl/libacl.h>
#include <linux/capability.h>
#include <sys/acl.h>

/* An open regular file. */
struct handle {
    int fd;
    _Atomic int direct_fd;     /* the same file with O_DIRECT, for large reads (DIRECT_*) */
    int append;
    struct node *node;
    struct tally *tally;       /* reads and writes, for the audit log */
    char *path;                /* as opened, for records of requests that come without one */
};

/* An open directory. */
struct dir_handle {
    DIR *dp;
    struct dirent *entry;
    off_t offset;
    int is_root;
    int may_search;            /* the opener may look entries up: listings may carry attributes */
};

#define XATTR_USER_PREFIX "user."
#define XATTR_ACL_ACCESS "system.posix_acl_access"
#define XATTR_ACL_DEFAULT "system.posix_acl_default"

static struct fs_state *state(void)
{
    return fuse_get_context()->private_data;
}

/* The first lookup after INIT runs the state's `connected` hook. */
static void once_connected(void)
{
    static atomic_int done;

    if (atomic_load_explicit(&done, memory_order_relaxed) == 0 &&
        atomic_exchange(&done, 1) == 0 && state()->connected != NULL)
        state()->connected();
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

_Static_assert(ACCESS_MAX_GROUPS == IDENTITY_MAX_GROUPS, "one group list size");

/* Who sent the current request. */
static void caller(struct caller *c)
{
    const struct fuse_context *ctx = fuse_get_context();

    caller_identify(ctx->uid, ctx->gid, ctx->pid, c);
}

/*
 * The credentials of the request this thread serves: every request runs start to end on one
 * thread, so they are loaded once at its start (load_cred() or begin()) and used by the checks
 * below.
 */
static _Thread_local struct cred req_cred;

/*
 * The path op_release just closed, for libfuse's own clean-up that follows on the same thread:
 * the unlink of that hidden name (a file unlinked while open, at its last close).  Any other
 * unlink of a hidden name is an ordinary, checked and recorded, unlink.
 */
static _Thread_local char released[PATH_MAX];

/* Load req_cred and, when c is not NULL, identify the caller (one identity lookup). */
static void load_request(struct caller *c)
{
    const struct fuse_context *ctx = fuse_get_context();
    gid_t groups[IDENTITY_MAX_GROUPS];
    int ngroups;

    released[0] = '\0';
    caller_lookup(ctx->uid, ctx->gid, ctx->pid, c, groups, &ngroups);
    cred_set(&req_cred, ctx->uid, ctx->gid, groups, ngroups);
}

static void load_cred(void)
{
    load_request(NULL);
}

/* Start an audited operation: identify the caller; -EIO when the log cannot take records. */
static int begin(struct caller *c)
{
    load_request(c);
    return trail_ready();
}

/* The parent directory of path, with search permission checked on the way. */
static int parent_of(const char *path, const char **name)
{
    return access_parent(&req_cred, root_fd(), path, name);
}

/* fstat, with the mount root's owner and mode as the mount shows them (fs/access.h). */
static int vstat(int fd, struct stat *st)
{
    if (fstat(fd, st) != 0)
        return -errno;
    return access_is_root(st) ? access_root_stat(fd, st) : 0;
}

/* May the caller do `want` to the directory open as dfd? */
static int check_dir(int dfd, int want)
{
    struct stat st;
    int rc;

    if (req_cred.uid == 0)
        return 0;
    if ((rc = vstat(dfd, &st)) != 0)
        return rc;
    return access_check(&req_cred, dfd, &st, want, NULL, 0);
}

/* Stat the entry `name` in dfd (not following links).  OUT: st. */
static int stat_entry(int dfd, const char *name, struct stat *st)
{
    if (fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) != 0)
        return -errno;
    return access_is_root(st) ? access_root_stat(root_fd(), st) : 0;
}

/* May the caller do `want` to the entry `name` of dfd? */
static int check_entry(int dfd, const char *name, int want)
{
    struct stat st;
    int fd, rc;

    if (req_cred.uid == 0 && !(want & ACCESS_X))
        return 0;
    fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    rc = vstat(fd, &st);
    if (rc == 0)
        rc = access_check(&req_cred, fd, &st, want, NULL, 0);
    close(fd);
    return rc;
}

/* May the caller do `want` to the object open as fd? */
static int check_fd(int fd, int want)
{
    struct stat st;
    int rc;

    if (req_cred.uid == 0 && !(want & ACCESS_X))
        return 0;
    if ((rc = vstat(fd, &st)) != 0)
        return rc;
    return access_check(&req_cred, fd, &st, want, NULL, 0);
}

/* Open path (never through a link) once search permission on the way is checked. */
static int open_checked(const char *path, int flags)
{
    const char *name;
    int fd, dfd;

    if (req_cred.uid == 0)
        return backing_open(root_fd(), path, flags, 0);
    dfd = parent_of(path, &name);
    if (dfd < 0)
        return dfd;
    fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        fd = -errno;
    backing_put(root_fd(), dfd);
    return fd;
}

/* A path that reaches the very inode open as fd (for calls that take no descriptor). */
static void proc_path(int fd, char *buf, size_t len)
{
    snprintf(buf, len, "/proc/self/fd/%d", fd);
}

/*
 * Reopen an O_PATH descriptor of a regular file with `flags` (through /proc, so it is the very
 * inode that was checked); anything else - a device or FIFO planted in the backing directory - is
 * never opened for I/O.  Consumes pfd.  Returns a descriptor or a negative errno.
 */
static int reopen_regular(int pfd, int flags)
{
    char proc[64];
    struct stat st;
    int fd;

    if (fstat(pfd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fd = S_ISDIR(st.st_mode) ? -EISDIR : S_ISLNK(st.st_mode) ? -ELOOP : -EINVAL;
        close(pfd);
        return fd;
    }
    proc_path(pfd, proc, sizeof(proc));
    fd = open(proc, (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CLOEXEC);
    if (fd < 0)
        fd = -errno;
    close(pfd);
    return fd;
}

/* Open the regular file at path for I/O once search permission on the way is checked. */
static int open_regular(const char *path, int flags)
{
    int pfd = open_checked(path, O_PATH | O_NOFOLLOW);

    return pfd < 0 ? pfd : reopen_regular(pfd, flags);
}

/* Access bits an open with these flags asks for. */
static int open_want(int flags)
{
    int acc = flags & O_ACCMODE, want = 0;

    if (acc == O_RDONLY || acc == O_RDWR)
        want |= ACCESS_R;
    if (acc == O_WRONLY || acc == O_RDWR || (flags & O_TRUNC))
        want |= ACCESS_W;
    return want;
}

static int is_hidden_name(const char *path);

/* The path to record: the request's, or (for requests by handle) the one it was opened as. */
static const char *rpath(const char *path, const struct fuse_file_info *fi)
{
    if (path != NULL || fi == NULL)
        return path;
    return ((const struct handle *)(uintptr_t)fi->fh)->path;
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

/*
 * A request that is not recorded when it succeeds (a lookup, reading an attribute) is recorded
 * when custodyfs denies it: every denial is on record.  Returns err, or -EIO when the record
 * cannot be written.
 */
static int record_denial(const char *op, const char *path, int err)
{
    struct caller c;

    caller(&c);
    if (trail_ready() != 0)
        return -EIO;
    return trail_record(&c, op, path, NULL, NULL, err, NULL);
}

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
    once_connected();
    load_cred();
    dfd = parent_of(path, &name);
    if (dfd < 0)
        return dfd == -EACCES ? record_denial("lookup", path, dfd) : dfd;
    rc = stat_entry(dfd, name, st);
    backing_put(root_fd(), dfd);
    if (rc == 0)
        fix_size(st, NULL);
    return rc;
}

/* Open the final component as O_PATH without following it.  Returns fd or -errno. */
static int open_path_nofollow(const char *path)
{
    return open_checked(path, O_PATH | O_NOFOLLOW);
}

static int do_chmod(const char *path, mode_t mode, struct fuse_file_info *fi, struct stat *old)
{
    struct stat st = {.st_mode = (mode_t)-1};
    char proc[64];
    int fd, rc = 0;

    fd = fi != NULL ? dup(fh(fi)->fd) : open_path_nofollow(path);
    if (fd < 0)
        return fi != NULL ? neg_errno() : fd;
    proc_path(fd, proc, sizeof(proc));
    if ((rc = vstat(fd, &st)) != 0)
        ;
    else if (S_ISLNK(st.st_mode))
        rc = -EOPNOTSUPP; /* a link's mode means nothing; chmod follows links */
    else if (access_is_root(&st))
        rc = access_owner_or_admin(&req_cred, &st) != 0
                 ? -EPERM : access_root_set(root_fd(), st.st_uid, st.st_gid, mode);
    else if ((rc = access_owner_or_admin(&req_cred, &st)) == 0) {
        /* as on Linux: set-group-ID only for members of the file's group */
        if (!req_cred.admin && !S_ISDIR(st.st_mode) && !cred_in_group(&req_cred, st.st_gid))
            mode &= ~(mode_t)S_ISGID;
        if (chmod(proc, mode) != 0)
            rc = neg_errno();
    }
    *old = st;
    close(fd);
    return rc;
}

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    struct stat old = {.st_mode = (mode_t)-1};
    char detail[48];
    struct caller c;
    int rc = begin(&c);

    if (rc != 0)
        return rc;
    rc = do_chmod(path, mode, fi, &old);
    if (old.st_mode != (mode_t)-1)
        snprintf(detail, sizeof(detail), "old=%04o new=%04o", (unsigned)(old.st_mode & 07777),
                 (unsigned)(mode & 07777));
    else
        snprintf(detail, sizeof(detail), "new=%04o", (unsigned)(mode & 07777));
    return trail_record(&c, "chmod", rpath(path, fi), NULL,
                        fi ? node_file_id(fh(fi)->node) : NULL, rc, detail);
}

/* POSIX: only an admin gives a file away; its owner may change its group to one of its own. */
static int may_chown(const struct stat *st, uid_t uid, gid_t gid)
{
    if (req_cred.admin)
        return 0;
    if (uid != (uid_t)-1 && uid != st->st_uid)
        return -EPERM;
    if (gid != (gid_t)-1 && gid != st->st_gid &&
        (req_cred.uid != st->st_uid || !cred_in_group(&req_cred, gid)))
        return -EPERM;
    if ((uid != (uid_t)-1 || gid != (gid_t)-1) && req_cred.uid != st->st_uid &&
        !(uid == st->st_uid && gid == (gid_t)-1) && !(gid == st->st_gid && uid == (uid_t)-1))
        return -EPERM;
    return 0;
}

static int do_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi,
                    struct stat *st)
{
    const char *name;
    int dfd, rc = 0;

    if (fi != NULL) {
        if (fstat(fh(fi)->fd, st) != 0)
            return neg_errno();
        if ((rc = may_chown(st, uid, gid)) != 0)
            return rc;
        return fchown(fh(fi)->fd, uid, gid) == 0 ? 0 : neg_errno();
    }
    dfd = parent_of(path, &name);
    if (dfd < 0)
        return dfd;
    rc = stat_entry(dfd, name, st);
    if (rc == 0)
        rc = may_chown(st, uid, gid);
    if (rc == 0 && access_is_root(st))
        rc = access_root_set(root_fd(), uid != (uid_t)-1 ? uid : st->st_uid,
                             gid != (gid_t)-1 ? gid : st->st_gid, st->st_mode);
    else if (rc == 0 && fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
        rc = neg_errno();
    backing_put(root_fd(), dfd);
    return rc;
}

static int op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    struct stat old = {.st_mode = (mode_t)-1};
    long long nu = uid == (uid_t)-1 ? -1LL : (long long)uid;
    long long ng = gid == (gid_t)-1 ? -1LL : (long long)gid;
    char detail[96];
    struct caller c;
    int rc = begin(&c);

    if (rc != 0)
        return rc;
    rc = do_chown(path, uid, gid, fi, &old);
    if (old.st_mode != (mode_t)-1)
        snprintf(detail, sizeof(detail), "old=%lld:%lld new=%lld:%lld", (long long)old.st_uid,
                 (long long)old.st_gid, nu < 0 ? (long long)old.st_uid : nu,
                 ng < 0 ? (long long)old.st_gid : ng);
    else
        snprintf(detail, sizeof(detail), "new=%lld:%lld", nu, ng);
    return trail_record(&c, "chown", rpath(path, fi), NULL,
                        fi ? node_file_id(fh(fi)->node) : NULL, rc, detail);
}

/* Setting both times to now takes write access; any other time takes ownership. */
static int may_utimens(struct fuse_file_info *fi, int dfd, const char *name,
                       const struct timespec tv[2])
{
    struct stat st;
    int rc, now = tv == NULL || (tv[0].tv_nsec == UTIME_NOW && tv[1].tv_nsec == UTIME_NOW);

    if (req_cred.admin)
        return 0;
    rc = fi != NULL ? (fstat(fh(fi)->fd, &st) == 0 ? 0 : -errno) : stat_entry(dfd, name, &st);
    if (rc != 0 || req_cred.uid == st.st_uid)
        return rc;
    if (!now)
        return -EPERM;
    if (fi != NULL)
        return access_check(&req_cred, fh(fi)->fd, &st, ACCESS_W, NULL, 0);
    return check_entry(dfd, name, ACCESS_W);
}

static int do_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    const char *name;
    int dfd, rc = 0;

    dfd = parent_of(path != NULL ? path : "/", &name);
    if (dfd < 0)
        return dfd;
    rc = may_utimens(fi, dfd, name, tv);
    if (rc == 0 && fi != NULL && futimens(fh(fi)->fd, tv) != 0)
        rc = neg_errno();
    else if (rc == 0 && fi == NULL && utimensat(dfd, name, tv, AT_SYMLINK_NOFOLLOW) != 0)
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
    return trail_record(&c, "utimens", rpath(path, fi), NULL, fi ? node_file_id(fh(fi)->node) : NULL, rc,
                        NULL);
}

/*
 * A write or a truncation clears the file's set-user-ID bit, and its set-group-ID bit when the
 * group may execute it (without that, the bit marks mandatory locking, not privilege), unless the
 * caller holds CAP_FSETID: what Linux does on a local filesystem.  The kernel leaves this to the
 * daemon (FUSE_HANDLE_KILLPRIV_V2, fs/wire.h).  Called before the change, with the backing
 * descriptor; `cause` names it.  A cleared bit is a permission change and goes on record.
 * Returns 0 or a negative errno.
 */
static int kill_setid(const char *path, int fd, struct node *n, const char *cause)
{
    const struct fuse_context *ctx = fuse_get_context();
    char detail[64];
    struct caller c;
    struct stat st;
    mode_t kill;
    int rc;

    if (fstat(fd, &st) != 0)
        return neg_errno();
    kill = st.st_mode & S_ISUID;
    if ((st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
        kill |= S_ISGID;
    if (kill == 0 || !S_ISREG(st.st_mode) || caller_capable(ctx->pid, ctx->uid, CAP_FSETID))
        return 0;
    caller(&c);
    rc = fchmod(fd, st.st_mode & 07777 & ~kill) == 0 ? 0 : neg_errno();
    if (rc == 0)
        wire_attr_changed(); /* a truncation's reply carries the new mode itself */
    snprintf(detail, sizeof(detail), "old=%04o new=%04o cause=%s", (unsigned)(st.st_mode & 07777),
             (unsigned)(st.st_mode & 07777 & ~kill), cause);
    return trail_record(&c, "chmod", path, NULL, node_file_id(n), rc, detail);
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
        if ((rc = kill_setid(rpath(path, fi), fh(fi)->fd, n, "truncate")) == 0)
            rc = contentio_truncate(n, fh(fi)->fd, (uint64_t)size, &bad);
    } else if ((fd = open_regular(path, O_RDWR | O_NONBLOCK)) < 0) {
        rc = fd;
    } else if ((rc = check_fd(fd, ACCESS_W)) == 0 && (rc = node_get(fd, 1, &n)) == 0 &&
               (rc = kill_setid(path, fd, n, "truncate")) == 0) {
        rc = contentio_truncate(n, fd, (uint64_t)size, &bad);
    }
    if (rc == -EIO)
        integrity_failure(rpath(path, fi), n, bad);
    rc = trail_record(&c, "truncate", rpath(path, fi), NULL, node_file_id(n), rc, detail);
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

/* direct_fd of a read-only handle before its first large read, and of any other handle. */
#define DIRECT_UNTRIED (-2)
#define DIRECT_NONE (-1)

static void handle_free(struct handle *h)
{
    int dfd = atomic_load(&h->direct_fd);

    if (dfd >= 0)
        close(dfd);
    tally_free(h->tally);
    free(h->path);
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
    /* Only read-only handles read past the page cache: a file open for writing is read back
     * in place (a database's pages), and a direct read would first flush what was just
     * written. */
    atomic_init(&h->direct_fd, writable ? DIRECT_NONE : DIRECT_UNTRIED);
    h->append = (flags & O_APPEND) != 0;
    h->path = strdup(path);
    rc = h->path == NULL ? -ENOMEM : fstat(fd, &st) != 0 ? neg_errno() : S_ISREG(st.st_mode) ? 0 : -EINVAL;
    if (rc == 0)
        rc = node_get(fd, writable, &h->node);
    if (rc == 0 && writable && (flags & O_TRUNC) &&
        (rc = kill_setid(path, fd, h->node, "truncate")) == 0)
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
    /* A read-only handle has nothing to flush at close(2): its read record goes to the log at
     * release, which the kernel sends right after without making close wait (one round trip
     * less per open; a loader opens every sample).  The open itself is already on record. */
    fi->noflush = !writable;
    return 0;
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
    struct caller c;
    int fd, rc = begin(&c);

    if (rc != 0)
        return rc;
    fd = open_regular(path, backing_flags(fi->flags));
    if (fd >= 0 && (rc = check_fd(fd, open_want(fi->flags))) != 0) {
        close(fd);
        fd = rc;
    }
    /* The kernel opens by a name it looked up; if that was a file since replaced and closed
     * everywhere (its hidden name is gone), ESTALE makes the kernel look the name up again and
     * open what is there now, as a local filesystem would. */
    if (fd == -ENOENT && is_hidden_name(path))
        fd = -ESTALE;
    if (fd < 0) {
        char detail[64];
        open_detail(fi->flags, detail, sizeof(detail));
        return trail_record(&c, "open", path, NULL, NULL, fd, detail);
    }
    return handle_new(&c, "open", path, fd, fi->flags, fi);
}

/*
 * The mode of something new in directory dfd.  The kernel leaves the caller's umask to us
 * (FUSE_CAP_DONT_MASK): as POSIX says, it applies unless the directory has a default ACL, whose
 * inheritance the backing filesystem then carries out.
 */
static mode_t new_mode(int dfd, mode_t mode)
{
    char proc[64];

    mode &= 07777;
    proc_path(dfd, proc, sizeof(proc));
    if (getxattr(proc, XATTR_ACL_DEFAULT, NULL, 0) > 0)
        return mode;
    return mode & ~(fuse_get_context()->umask & 0777);
}

/* Owner and group for something a caller creates in directory dfd. */
static void new_owner(int dfd, uid_t *uid, gid_t *gid)
{
    struct fuse_context *ctx = fuse_get_context();
    struct stat dst;

    *uid = ctx->uid;
    *gid = ctx->gid;
    if (vstat(dfd, &dst) == 0 && (dst.st_mode & S_ISGID))
        *gid = dst.st_gid; /* BSD group semantics of a set-group-ID directory */
}

/* Open an existing entry for an O_CREAT open; `denied` is the answer when it does not exist. */
static int open_existing(int dfd, const char *name, int flags, int denied)
{
    int rc, fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0)
        return errno == ENOENT && denied != 0 ? denied : -errno;
    fd = reopen_regular(fd, backing_flags((flags & ~O_ACCMODE) | O_RDWR));
    if (fd < 0)
        return fd;
    if ((rc = check_fd(fd, open_want(flags))) != 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* Create name in dfd for the caller (its owner, its group or the directory's). */
static int create_file(int dfd, const char *name, mode_t mode, int flags)
{
    uid_t uid;
    gid_t gid;
    int fd, rc;

    fd = openat(dfd, name, backing_flags(flags) | O_RDWR | O_CREAT | O_EXCL, new_mode(dfd, mode));
    if (fd < 0)
        return errno == EEXIST && !(flags & O_EXCL) ? open_existing(dfd, name, flags, 0)
                                                    : -errno;
    new_owner(dfd, &uid, &gid);
    if (fchown(fd, uid, gid) != 0) {
        rc = -errno;
        close(fd);
        unlinkat(dfd, name, 0);
        return rc;
    }
    return fd;
}

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    const char *name;
    struct caller c;
    int fd, rc, dfd = begin(&c);

    if (dfd != 0)
        return dfd;
    dfd = parent_of(path, &name);
    if (dfd < 0)
        return trail_record(&c, "create", path, NULL, NULL, dfd, NULL);
    rc = check_dir(dfd, ACCESS_W | ACCESS_X);
    fd = rc == 0 ? create_file(dfd, name, mode, fi->flags) : open_existing(dfd, name, fi->flags, rc);
    backing_put(root_fd(), dfd);
    if (fd < 0)
        return trail_record(&c, "create", path, NULL, NULL, fd, NULL);
    return handle_new(&c, "create", path, fd, (fi->flags & ~O_ACCMODE) | O_RDWR, fi);
}

/*
 * The handle's O_DIRECT descriptor for a read of `size` bytes (contentio.h says why), opened at
 * the first read large enough to use it; DIRECT_NONE when there is none.
 */
static int direct_fd(struct handle *h, size_t size)
{
    int dfd = atomic_load(&h->direct_fd), expect = DIRECT_UNTRIED;
    char proc[64];

    if (dfd != DIRECT_UNTRIED)
        return dfd;
    if (size < CONTENTIO_DIRECT_MIN)
        return DIRECT_NONE;
    proc_path(h->fd, proc, sizeof(proc));
    dfd = open(proc, O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (dfd < 0)
        dfd = DIRECT_NONE;
    if (!atomic_compare_exchange_strong(&h->direct_fd, &expect, dfd)) {
        if (dfd >= 0) /* another thread was first */
            close(dfd);
        return expect;
    }
    return dfd;
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
    n = contentio_read(fh(fi)->node, fh(fi)->fd, direct_fd(fh(fi), size), buf, size,
                       (uint64_t)off, &bad);
    if (n == -EIO)
        integrity_failure(rpath(path, fi), fh(fi)->node, bad);
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
    if ((n = kill_setid(rpath(path, fi), fh(fi)->fd, fh(fi)->node, "write")) != 0)
        return (int)n;
    n = contentio_write(fh(fi)->node, fh(fi)->fd, buf, size, (uint64_t)off, fh(fi)->append,
                        &bad);
    if (n == -ENOSPC && reaper_drain()) /* space of files just unlinked, freed now */
        n = contentio_write(fh(fi)->node, fh(fi)->fd, buf, size, (uint64_t)off, fh(fi)->append,
                            &bad);
    if (n == -EIO)
        integrity_failure(rpath(path, fi), fh(fi)->node, bad);
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
    if (rc == -ENOSPC && reaper_drain())
        rc = contentio_allocate(fh(fi)->node, fh(fi)->fd, (uint64_t)off, (uint64_t)len, &bad);
    if (rc == -EIO)
        integrity_failure(rpath(path, fi), fh(fi)->node, bad);
    snprintf(detail, sizeof(detail), "mode=%d offset=%lld length=%lld", mode, (long long)off,
             (long long)len);
    return trail_record(&c, "fallocate", rpath(path, fi), NULL, node_file_id(fh(fi)->node), rc, detail);
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

/*
 * close(2) of a handle that may write (read-only handles are opened with noflush): the data is
 * already in the backing file; log the handle's read and write records before close returns,
 * so that what a program has finished changing is on record.
 */
static int op_flush(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    return tally_flush(fh(fi)->tally, 1);
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
    handle_free(fh(fi));
    snprintf(released, sizeof(released), "%s", path != NULL ? path : "");
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
    dfd = parent_of(path, &name);
    if (dfd < 0) {
        rc = dfd;
    } else {
        rc = check_dir(dfd, ACCESS_W | ACCESS_X);
        if (rc == 0)
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

    if (mkdirat(dfd, name, new_mode(dfd, *(mode_t *)arg)) != 0)
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
    if (mknodat(dfd, name, (a->mode & S_IFMT) | new_mode(dfd, a->mode), 0) != 0)
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

/* The sticky-directory rule for removing or renaming `name` out of dfd. */
static int check_sticky(int dfd, const char *name)
{
    struct stat dir, st;
    int rc;

    if (req_cred.admin)
        return 0;
    if ((rc = vstat(dfd, &dir)) != 0)
        return rc;
    if (!(dir.st_mode & S_ISVTX))
        return 0;
    if ((rc = stat_entry(dfd, name, &st)) != 0)
        return rc;
    return access_sticky(&req_cred, &dir, &st);
}

/*
 * A file losing its last name is held open across the unlinkat(), and the reaper closes it: the
 * backing filesystem then frees its blocks outside this request (fs/reaper.h).
 */
static int do_unlink(int dfd, const char *name, void *arg)
{
    int flags = *(int *)arg, rc = check_sticky(dfd, name), fd = -1;
    struct stat st;

    if (rc != 0)
        return rc;
    if (flags == 0) {
        fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1)) {
            close(fd);
            fd = -1;
        }
    }
    rc = unlinkat(dfd, name, flags) == 0 ? 0 : neg_errno();
    if (fd >= 0)
        reaper_put(fd, (uint64_t)st.st_blocks * 512);
    return rc;
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

    if (!is_hidden_name(path) || strcmp(path, released) != 0)
        return at_parent("unlink", path, NULL, NULL, do_unlink, &flags);
    /* the last close of a file unlinked while open: recorded, and checked, at its unlink */
    released[0] = '\0';
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
    load_cred();
    dfd = parent_of(path, &name);
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

/*
 * Renaming takes write and search on both directories, the sticky rule for both names, and
 * write access to a directory that moves to another parent (its ".." changes).
 */
static int may_rename(int d1, const char *n1, int d2, const char *n2)
{
    struct stat st, dst;
    int rc = check_dir(d1, ACCESS_W | ACCESS_X);

    if (rc == 0)
        rc = check_sticky(d1, n1);
    if (rc == 0 && fstatat(d2, n2, &dst, AT_SYMLINK_NOFOLLOW) == 0)
        rc = check_sticky(d2, n2);
    if (rc == 0 && req_cred.uid != 0 && stat_entry(d1, n1, &st) == 0 && S_ISDIR(st.st_mode)) {
        struct stat a, b;
        if (fstat(d1, &a) == 0 && fstat(d2, &b) == 0 && (a.st_ino != b.st_ino ||
                                                         a.st_dev != b.st_dev))
            rc = check_entry(d1, n1, ACCESS_W);
    }
    return rc;
}

static int do_rename(int d1, const char *n1, int d2, const char *n2, unsigned flags);

static int two_parents(const char *from, const char *to, unsigned flags,
                       int (*fn)(int, const char *, int, const char *, unsigned))
{
    const char *n1, *n2;
    int d1, d2, rc;

    d1 = parent_of(from, &n1);
    if (d1 < 0)
        return d1;
    d2 = parent_of(to, &n2);
    if (d2 < 0) {
        backing_put(root_fd(), d1);
        return d2;
    }
    rc = check_dir(d2, ACCESS_W | ACCESS_X);
    if (rc == 0 && fn == do_rename)
        rc = may_rename(d1, n1, d2, n2);
    if (rc == 0)
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

/* Open a directory for listing; returns 0 or a negative errno. */
static int dir_open(const char *path, struct dir_handle *d)
{
    int rc, fd = open_checked(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK);

    if (fd < 0)
        return fd;
    if ((rc = check_fd(fd, ACCESS_R)) != 0) {
        close(fd);
        return rc;
    }
    d->dp = fdopendir(fd);
    if (d->dp == NULL) {
        rc = neg_errno();
        close(fd);
        return rc;
    }
    d->is_root = path[strspn(path, "/")] == '\0';
    d->may_search = check_fd(fd, ACCESS_X) == 0;
    return 0;
}

static int op_opendir(const char *path, struct fuse_file_info *fi)
{
    struct dir_handle *d;
    struct caller c;
    int rc = begin(&c);

    if (rc != 0)
        return rc;
    d = calloc(1, sizeof(*d));
    rc = d == NULL ? -ENOMEM : dir_open(path, d);
    rc = trail_record(&c, "readdir", path, NULL, NULL, rc, NULL);
    if (rc != 0) {
        if (d != NULL && d->dp != NULL)
            closedir(d->dp);
        free(d);
        return rc;
    }
    fi->fh = (uint64_t)(uintptr_t)d;
    return 0;
}

/*
 * Attributes of entry `name` for a listing that asks for them (readdirplus), which spares the
 * kernel a lookup of each entry: only when the opener may search the directory, as a lookup
 * would need, and never for "." and "..".  Returns 0 with *st filled, or -1: a plain entry.
 */
static int entry_attrs(const struct dir_handle *d, enum fuse_readdir_flags flags,
                       const char *name, struct stat *st)
{
    if (!(flags & FUSE_READDIR_PLUS) || !d->may_search || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return -1;
    if (stat_entry(dirfd(d->dp), name, st) != 0)
        return -1;
    fix_size(st, NULL);
    return 0;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    struct dir_handle *d = dh(fi);

    (void)path;
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
            if (entry_attrs(d, flags, d->entry->d_name, &st) == 0) {
                if (filler(buf, d->entry->d_name, &st, d->entry->d_off, FUSE_FILL_DIR_PLUS))
                    return 0;
            } else {
                memset(&st, 0, sizeof(st));
                st.st_ino = d->entry->d_ino;
                st.st_mode = (mode_t)(d->entry->d_type << 12);
                if (filler(buf, d->entry->d_name, &st, d->entry->d_off, 0))
                    return 0;
            }
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
    reaper_drain(); /* space of files just unlinked counts as free */
    return fstatvfs(root_fd(), sv) == 0 ? 0 : neg_errno();
}

/* ---- extended attributes: user.* and POSIX ACLs ---- */


enum xattr_kind { XATTR_OTHER, XATTR_USER, XATTR_ACL };

static enum xattr_kind xattr_kind(const char *name)
{
    if (strncmp(name, XATTR_USER_PREFIX, sizeof(XATTR_USER_PREFIX) - 1) == 0)
        return XATTR_USER;
    if (strcmp(name, XATTR_ACL_ACCESS) == 0 || strcmp(name, XATTR_ACL_DEFAULT) == 0)
        return XATTR_ACL;
    return XATTR_OTHER;
}

/*
 * Open the final component without following it and hand back a /proc path that reaches that
 * very inode.  Links have no attributes: -ENODATA for them.  OUT: st.
 */
static int xattr_target(const char *path, char *proc, size_t len, struct stat *st)
{
    int fd = open_path_nofollow(path);

    if (fd < 0)
        return fd;
    if (fstat(fd, st) != 0 || S_ISLNK(st->st_mode)) {
        close(fd);
        return S_ISLNK(st->st_mode) ? -ENODATA : -EIO;
    }
    proc_path(fd, proc, len);
    return fd;
}

/* May the caller change attribute `name` of the object fd/st? */
static int may_set_xattr(enum xattr_kind kind, int fd, const struct stat *st)
{
    if (access_is_root(st))
        return -EOPNOTSUPP; /* the mount root keeps no ACL: set them on the datasets in it */
    if (kind == XATTR_ACL)
        return access_owner_or_admin(&req_cred, st);
    if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
        return -EPERM;
    return access_check(&req_cred, fd, st, ACCESS_W, NULL, 0);
}

/* The ACL of proc path as text ("-" when none), for the audit record. */
static void acl_text(const char *proc, const char *name, char *buf, size_t len)
{
    acl_t acl = acl_get_file(proc, strcmp(name, XATTR_ACL_DEFAULT) == 0 ? ACL_TYPE_DEFAULT
                                                                        : ACL_TYPE_ACCESS);
    char *text = acl != NULL ? acl_to_any_text(acl, NULL, ',', TEXT_ABBREVIATE) : NULL;

    snprintf(buf, len, "%s", text != NULL && text[0] != '\0' ? text : "-");
    acl_free(text);
    acl_free(acl);
}

/* Set (value != NULL) or remove attribute `name`; OUT: detail for the audit record. */
static int change_xattr(const char *path, const char *name, const char *value, size_t size,
                        int flags, char *detail, size_t dlen)
{
    enum xattr_kind kind = xattr_kind(name);
    char proc[64], before[512] = "", after[512] = "";
    struct stat st;
    int fd, rc;

    snprintf(detail, dlen, "name=%s", name);
    if (kind == XATTR_OTHER)
        return -EOPNOTSUPP;
    fd = xattr_target(path, proc, sizeof(proc), &st);
    if (fd < 0)
        return fd == -ENODATA ? -EPERM : fd;
    rc = may_set_xattr(kind, fd, &st);
    if (rc == 0 && kind == XATTR_ACL)
        acl_text(proc, name, before, sizeof(before));
    if (rc == 0 && (value != NULL ? setxattr(proc, name, value, size, flags)
                                  : removexattr(proc, name)) != 0)
        rc = neg_errno();
    if (rc == 0 && kind == XATTR_ACL) {
        acl_text(proc, name, after, sizeof(after));
        snprintf(detail, dlen, "name=%s old=%s new=%s", name, before, after);
    } else if (value != NULL) {
        snprintf(detail, dlen, "name=%s size=%zu", name, size);
    }
    close(fd);
    return rc;
}

static int op_setxattr(const char *path, const char *name, const char *value, size_t size,
                       int flags)
{
    char detail[1200];
    struct caller c;
    int rc = begin(&c);

    if (rc != 0)
        return rc;
    rc = change_xattr(path, name, value, size, flags, detail, sizeof(detail));
    return trail_record(&c, "setxattr", path, NULL, NULL, rc, detail);
}

static int op_removexattr(const char *path, const char *name)
{
    char detail[1200];
    struct caller c;
    int rc = begin(&c);

    if (rc != 0)
        return rc;
    rc = change_xattr(path, name, NULL, 0, 0, detail, sizeof(detail));
    return trail_record(&c, "removexattr", path, NULL, NULL, rc, detail);
}

static int op_getxattr(const char *path, const char *name, char *value, size_t size)
{
    enum xattr_kind kind = xattr_kind(name);
    struct stat st;
    char proc[64];
    ssize_t n;
    int fd;

    if (kind == XATTR_OTHER)
        return -ENODATA;
    load_cred();
    fd = xattr_target(path, proc, sizeof(proc), &st);
    if (fd < 0)
        return fd == -EACCES ? record_denial("getxattr", path, fd) : fd;
    n = kind == XATTR_USER ? access_check(&req_cred, fd, &st, ACCESS_R, NULL, 0) : 0;
    if (n == 0 && (n = getxattr(proc, name, value, size)) < 0)
        n = neg_errno();
    close(fd);
    return n == -EACCES ? record_denial("getxattr", path, -EACCES) : (int)n;
}

/* Keep only the names custodyfs serves in a listxattr buffer; returns the new length. */
static ssize_t filter_names(char *list, ssize_t len)
{
    ssize_t in = 0, out = 0;

    while (in < len) {
        size_t n = strnlen(list + in, (size_t)(len - in)) + 1;
        if (xattr_kind(list + in) != XATTR_OTHER) {
            memmove(list + out, list + in, n);
            out += (ssize_t)n;
        }
        in += (ssize_t)n;
    }
    return out;
}

static int op_listxattr(const char *path, char *list, size_t size)
{
    struct stat st;
    char proc[64];
    char *all;
    ssize_t n;
    int fd;

    load_cred();
    fd = xattr_target(path, proc, sizeof(proc), &st);
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
        n = filter_names(all, n);
        if (size != 0 && (size_t)n > size)
            n = -ERANGE;
        else if (size != 0)
            memcpy(list, all, (size_t)n);
    }
    free(all);
    return (int)n;
}

/* access(2), and chdir: the kernel asks when it does not check by itself. */
static int op_access(const char *path, int mask)
{
    struct stat st;
    int fd, rc;

    load_cred();
    fd = open_path_nofollow(path);
    if (fd < 0)
        return fd;
    rc = fstat(fd, &st) != 0 ? neg_errno() : 0;
    if (rc == 0 && (mask & (R_OK | W_OK | X_OK)) != 0)
        rc = access_check(&req_cred, fd, &st,
                          ((mask & R_OK) ? ACCESS_R : 0) | ((mask & W_OK) ? ACCESS_W : 0) |
                              ((mask & X_OK) ? ACCESS_X : 0), NULL, 0);
    close(fd);
    return rc;
}

/*
 * No ioctl reaches the backing file (it would bypass the encryption and the audit).  The kernel
 * asks for every one (Python's open() asks whether each file is a terminal): answer as a plain
 * file does.
 */
static int op_ioctl(const char *path, unsigned int cmd, void *arg, struct fuse_file_info *fi,
                    unsigned int flags, void *data)
{
    (void)path;
    (void)cmd;
    (void)arg;
    (void)fi;
    (void)flags;
    (void)data;
    return -ENOTTY;
}

/* ---- life cycle ---- */

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    cfg->use_ino = 1;          /* st_ino of the backing files: hard links show as such */
    cfg->nullpath_ok = 1;      /* operations on open files come by handle */
    cfg->hard_remove = 0;      /* an open file unlinked keeps a hidden name until closed */
    /* Names change only through this mount, and the kernel forgets the ones it changes itself:
     * it may keep a name's lookup for 30 s (a training epoch later, no lookup per sample).
     * Attributes stay valid for 1 s, so a mode or ACL changed by custodyctl shows within it;
     * permissions are decided by the daemon at every open whatever the kernel caches. */
    cfg->entry_timeout = 30;
    conn->max_write = 1u << 20;
    if (conn->capable & FUSE_CAP_DONT_MASK)
        conn->want |= FUSE_CAP_DONT_MASK; /* the umask is applied in new_mode() */
    return fuse_get_context()->private_data;
}

static void op_destroy(void *data)
{
    (void)data;
    reaper_stop();
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
    .access = op_access,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .fsyncdir = op_fsyncdir,
    .create = op_create,
    .utimens = op_utimens,
    .fallocate = op_fallocate,
    .ioctl = op_ioctl,
};
