#include "access.h"

#include "fs/backing.h"

#include <acl/libacl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/acl.h>
#include <sys/xattr.h>
#include <unistd.h>

static gid_t admin_gid = (gid_t)-1;
static dev_t root_dev;
static ino_t root_ino;

#define ROOT_XATTR "trusted.custodyfs.root"

void access_set_root(int root_fd)
{
    struct stat st;

    if (fstat(root_fd, &st) == 0) {
        root_dev = st.st_dev;
        root_ino = st.st_ino;
    }
}

int access_is_root(const struct stat *st)
{
    return st->st_ino == root_ino && st->st_dev == root_dev;
}

int access_root_stat(int root_fd, struct stat *st)
{
    char buf[64];
    unsigned mode;
    long long uid, gid;
    ssize_t n;

    if (fstat(root_fd, st) != 0)
        return -errno;
    n = fgetxattr(root_fd, ROOT_XATTR, buf, sizeof(buf) - 1);
    if (n <= 0)
        return 0; /* never changed: the backing directory's own */
    buf[n] = '\0';
    if (sscanf(buf, "%o %lld %lld", &mode, &uid, &gid) == 3) {
        st->st_mode = (st->st_mode & S_IFMT) | (mode & 07777);
        st->st_uid = (uid_t)uid;
        st->st_gid = (gid_t)gid;
    }
    return 0;
}

int access_root_set(int root_fd, uid_t uid, gid_t gid, mode_t mode)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "%o %lld %lld", (unsigned)(mode & 07777), (long long)uid,
                     (long long)gid);

    return fsetxattr(root_fd, ROOT_XATTR, buf, (size_t)n, 0) == 0 ? 0 : -errno;
}

void access_set_admin_group(gid_t gid)
{
    admin_gid = gid;
}

int cred_in_group(const struct cred *c, gid_t g)
{
    if (c->gid == g)
        return 1;
    for (int i = 0; i < c->ngroups; i++)
        if (c->groups[i] == g)
            return 1;
    return 0;
}

void cred_set(struct cred *c, uid_t uid, gid_t gid, const gid_t *groups, int ngroups)
{
    c->uid = uid;
    c->gid = gid;
    c->ngroups = ngroups < 0 ? 0 : ngroups > ACCESS_MAX_GROUPS ? ACCESS_MAX_GROUPS : ngroups;
    memcpy(c->groups, groups, (size_t)c->ngroups * sizeof(gid_t));
    c->admin = uid == 0 || (admin_gid != (gid_t)-1 && cred_in_group(c, admin_gid));
}

static void say(char *why, size_t len, const char *fmt, long id)
{
    if (why != NULL && len > 0)
        snprintf(why, len, fmt, id);
}

static int perm_bits(acl_entry_t e)
{
    acl_permset_t ps;
    int bits = 0;

    if (acl_get_permset(e, &ps) != 0)
        return 0;
    if (acl_get_perm(ps, ACL_READ) == 1)
        bits |= ACCESS_R;
    if (acl_get_perm(ps, ACL_WRITE) == 1)
        bits |= ACCESS_W;
    if (acl_get_perm(ps, ACL_EXECUTE) == 1)
        bits |= ACCESS_X;
    return bits;
}

/* The entries that matter to one caller, gathered in one pass over the ACL. */
struct acl_view {
    int owner, other, mask;          /* bits; mask -1: none */
    int user;                        /* bits of the named-user entry for the caller, -1: none */
    int group_match, group_grant;    /* some group entry matched; one granted all of want */
    long group_id;                   /* the granting group */
};

static void view_entry(acl_entry_t e, const struct cred *c, const struct stat *st, int want,
                       struct acl_view *v)
{
    acl_tag_t tag;
    void *q;
    int bits = perm_bits(e);

    if (acl_get_tag_type(e, &tag) != 0)
        return;
    switch (tag) {
    case ACL_USER_OBJ: v->owner = bits; break;
    case ACL_OTHER: v->other = bits; break;
    case ACL_MASK: v->mask = bits; break;
    case ACL_USER:
        q = acl_get_qualifier(e);
        if (q != NULL && *(uid_t *)q == c->uid)
            v->user = bits;
        acl_free(q);
        break;
    case ACL_GROUP_OBJ:
    case ACL_GROUP: {
        gid_t g = st->st_gid;
        if (tag == ACL_GROUP) {
            q = acl_get_qualifier(e);
            g = q != NULL ? *(gid_t *)q : (gid_t)-1;
            acl_free(q);
        }
        if (cred_in_group(c, g)) {
            v->group_match = 1;
            if ((bits & want) == want && !v->group_grant) {
                v->group_grant = bits;
                v->group_id = (long)g;
            }
        }
        break;
    }
    default: break;
    }
}

/* Decide from the view.  Masked entries: named users and all groups. */
static int decide(const struct acl_view *v, int want, const struct cred *c,
                  const struct stat *st, char *why, size_t len)
{
    int mask = v->mask >= 0 ? v->mask : 7;

    if (c->uid == st->st_uid) {
        say(why, len, "owner", 0);
        return (v->owner & want) == want ? 0 : -EACCES;
    }
    if (v->user >= 0) {
        int ok = (v->user & mask & want) == want;
        say(why, len, !ok && (v->user & want) == want ? "mask" : "user:%ld", (long)c->uid);
        return ok ? 0 : -EACCES;
    }
    if (v->group_match) {
        if (v->group_grant && (v->group_grant & mask & want) == want) {
            say(why, len, "group:%ld", v->group_id);
            return 0;
        }
        say(why, len, v->group_grant ? "mask" : "group", 0);
        return -EACCES;
    }
    say(why, len, "other", 0);
    return (v->other & want) == want ? 0 : -EACCES;
}

int access_check(const struct cred *c, int fd, const struct stat *st, int want, char *why,
                 size_t whylen)
{
    struct acl_view v = {.owner = 0, .other = 0, .mask = -1, .user = -1};
    char proc[64];
    acl_entry_t e;
    acl_t acl;
    int rc;

    if (c->uid == 0) {
        say(why, whylen, "root", 0);
        if ((want & ACCESS_X) && !S_ISDIR(st->st_mode) && !(st->st_mode & 0111))
            return -EACCES;
        return 0;
    }
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    acl = S_ISLNK(st->st_mode) || access_is_root(st) ? NULL : acl_get_file(proc, ACL_TYPE_ACCESS);
    if (acl == NULL) {
        /* no ACL support here: the mode bits are the whole story */
        v.owner = (st->st_mode >> 6) & 7;
        v.mask = -1;
        v.group_match = cred_in_group(c, st->st_gid);
        v.group_grant = (int)((st->st_mode >> 3) & 7);
        if (!v.group_match || (v.group_grant & want) != want)
            v.group_grant = 0;
        v.group_id = (long)st->st_gid;
        v.other = st->st_mode & 7;
    } else {
        for (rc = acl_get_entry(acl, ACL_FIRST_ENTRY, &e); rc == 1;
             rc = acl_get_entry(acl, ACL_NEXT_ENTRY, &e))
            view_entry(e, c, st, want, &v);
        acl_free(acl);
    }
    return decide(&v, want, c, st, why, whylen);
}

int access_owner_or_admin(const struct cred *c, const struct stat *st)
{
    return c->admin || c->uid == st->st_uid ? 0 : -EPERM;
}

int access_sticky(const struct cred *c, const struct stat *dir, const struct stat *st)
{
    if (!(dir->st_mode & S_ISVTX) || c->admin || c->uid == st->st_uid || c->uid == dir->st_uid)
        return 0;
    return -EPERM;
}

/* Check search permission on directory fd. */
static int may_search(const struct cred *c, int fd)
{
    struct stat st;

    if (fstat(fd, &st) != 0)
        return -errno;
    if (access_is_root(&st) && access_root_stat(fd, &st) != 0)
        return -EIO;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    return access_check(c, fd, &st, ACCESS_X, NULL, 0);
}

int access_parent(const struct cred *c, int root_fd, const char *path, const char **name)
{
    char comp[NAME_MAX + 1];
    const char *p = path, *slash;
    int fd = root_fd, next, rc;

    if (c->uid == 0)
        return backing_parent(root_fd, path, name);
    rc = backing_parent(root_fd, path, name); /* the hidden-directory and syntax checks */
    if (rc < 0)
        return rc;
    backing_put(root_fd, rc);
    while (*p == '/')
        p++;
    if ((rc = may_search(c, root_fd)) != 0)
        return rc;
    while ((slash = strchr(p, '/')) != NULL) {
        size_t n = (size_t)(slash - p);
        if (n > NAME_MAX) {
            backing_put(root_fd, fd);
            return -ENAMETOOLONG;
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        next = openat(fd, comp, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
        rc = next < 0 ? -errno : may_search(c, next);
        backing_put(root_fd, fd);
        if (rc != 0) {
            if (next >= 0)
                close(next);
            return rc == -ELOOP ? -ENOTDIR : rc;
        }
        fd = next;
        for (p = slash + 1; *p == '/'; p++)
            ;
    }
    *name = *p != '\0' ? p : ".";
    return fd;
}
