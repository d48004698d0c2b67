#include "backing.h"

#include "fs/vault.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RESOLVE_SAFE (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | \
                      RESOLVE_NO_XDEV)

static int openat2_safe(int dirfd, const char *path, int flags, mode_t mode)
{
    struct open_how how = {
        .flags = (unsigned long long)(flags | O_CLOEXEC),
        .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
        .resolve = RESOLVE_SAFE,
    };
    long fd;

    do
        fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    while (fd < 0 && errno == EAGAIN);
    return fd < 0 ? -errno : (int)fd;
}

int backing_full_at_write(int fd)
{
    static const unsigned long local[] = {EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, BTRFS_SUPER_MAGIC,
                                          F2FS_SUPER_MAGIC, TMPFS_MAGIC};
    struct statfs sf;

    if (fstatfs(fd, &sf) != 0)
        return 0;
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
        if ((unsigned long)sf.f_type == local[i])
            return 1;
    return 0;
}

int backing_is_hidden(const char *name)
{
    return strcmp(name, VAULT_DIR) == 0;
}

/*
 * Paths from the kernel never hold "." or ".." components; anything else that does (a path given
 * to custodyctl) could step onto the backing root or .custody and is refused.
 */
static int has_dot_component(const char *rel)
{
    for (const char *p = rel; *p != '\0';) {
        size_t n = strcspn(p, "/");
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return 1;
        p += n;
        while (*p == '/')
            p++;
    }
    return 0;
}

/* Is the first component of rel (no leading '/') hidden? */
static int first_is_hidden(const char *rel)
{
    size_t n = strcspn(rel, "/");

    return n == sizeof(VAULT_DIR) - 1 && memcmp(rel, VAULT_DIR, n) == 0;
}

int backing_parent(int root_fd, const char *path, const char **name)
{
    char dir[PATH_MAX];
    const char *rel = path, *slash;
    size_t len;

    while (*rel == '/')
        rel++;
    if (*rel == '\0') {
        *name = ".";
        return root_fd;
    }
    if (first_is_hidden(rel) || has_dot_component(rel))
        return -ENOENT;
    slash = strrchr(rel, '/');
    if (slash == NULL) {
        *name = rel;
        return root_fd;
    }
    *name = slash + 1;
    len = (size_t)(slash - rel);
    if (len >= sizeof(dir))
        return -ENAMETOOLONG;
    memcpy(dir, rel, len);
    dir[len] = '\0';
    return openat2_safe(root_fd, dir, O_PATH | O_DIRECTORY, 0);
}

void backing_put(int root_fd, int fd)
{
    if (fd >= 0 && fd != root_fd)
        close(fd);
}

int backing_open(int root_fd, const char *path, int flags, mode_t mode)
{
    const char *rel = path;

    while (*rel == '/')
        rel++;
    if (*rel == '\0')
        rel = ".";
    else if (first_is_hidden(rel) || has_dot_component(rel))
        return -ENOENT;
    return openat2_safe(root_fd, rel, flags, mode);
}

int backing_pread_least(int fd, void *buf, size_t len, size_t need, uint64_t off)
{
    size_t got = 0;

    while (got < need) {
        ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -EIO;
        got += (size_t)r;
    }
    return 0;
}

int backing_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    return backing_pread_least(fd, buf, len, len, off);
}

int backing_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
    size_t put = 0;

    while (put < len) {
        ssize_t r = pwrite(fd, (const char *)buf + put, len - put, (off_t)(off + put));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        put += (size_t)r;
    }
    return 0;
}
