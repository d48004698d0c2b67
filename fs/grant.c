#include "grant.h"

#include "fs/backing.h"

#include <acl/libacl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/acl.h>
#include <sys/stat.h>
#include <unistd.h>

struct walk {
    gid_t gid;
    int perms, flags;
    grant_report_fn report;
    void *arg;
    char *err;
    size_t errlen;
};

static void text_of(acl_t acl, char *buf, size_t len)
{
    char *t = acl != NULL ? acl_to_any_text(acl, NULL, ',', TEXT_ABBREVIATE) : NULL;

    snprintf(buf, len, "%s", t != NULL && t[0] != '\0' ? t : "-");
    acl_free(t);
}

/* The entry for group gid in acl, created when `create`.  NULL when absent or on error. */
static acl_entry_t group_entry(acl_t *acl, gid_t gid, int create)
{
    acl_entry_t e;
    acl_tag_t tag;
    int rc;

    for (rc = acl_get_entry(*acl, ACL_FIRST_ENTRY, &e); rc == 1;
         rc = acl_get_entry(*acl, ACL_NEXT_ENTRY, &e)) {
        void *q;
        if (acl_get_tag_type(e, &tag) != 0 || tag != ACL_GROUP)
            continue;
        q = acl_get_qualifier(e);
        if (q != NULL && *(gid_t *)q == gid) {
            acl_free(q);
            return e;
        }
        acl_free(q);
    }
    if (!create || acl_create_entry(acl, &e) != 0 || acl_set_tag_type(e, ACL_GROUP) != 0 ||
        acl_set_qualifier(e, &gid) != 0)
        return NULL;
    return e;
}

static int set_perms(acl_entry_t e, int perms)
{
    acl_permset_t ps;

    if (acl_get_permset(e, &ps) != 0 || acl_clear_perms(ps) != 0)
        return -1;
    if (((perms & 4) && acl_add_perm(ps, ACL_READ) != 0) ||
        ((perms & 2) && acl_add_perm(ps, ACL_WRITE) != 0) ||
        ((perms & 1) && acl_add_perm(ps, ACL_EXECUTE) != 0))
        return -1;
    return acl_set_permset(e, ps);
}

/* A default ACL to start from: the directory's own access entries. */
static acl_t default_base(const char *proc)
{
    acl_t d = acl_get_file(proc, ACL_TYPE_DEFAULT);

    if (d != NULL && acl_entries(d) > 0)
        return d;
    acl_free(d);
    return acl_get_file(proc, ACL_TYPE_ACCESS);
}

/* Apply the change to one ACL of the object open as fd. */
static int change_one(struct walk *w, int fd, const char *path, acl_type_t type, int perms)
{
    char proc[64], before[1024], after[1024];
    acl_t acl;
    acl_entry_t e;
    int rc = 0;

    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    acl = type == ACL_TYPE_DEFAULT ? default_base(proc) : acl_get_file(proc, type);
    if (acl == NULL)
        return -errno;
    if (type == ACL_TYPE_DEFAULT) {
        acl_t cur = acl_get_file(proc, ACL_TYPE_DEFAULT);
        text_of(cur != NULL && acl_entries(cur) > 0 ? cur : NULL, before, sizeof(before));
        acl_free(cur);
    } else {
        text_of(acl, before, sizeof(before));
    }
    e = group_entry(&acl, w->gid, perms >= 0);
    if (e == NULL && perms >= 0) {
        rc = -errno;
    } else if (e != NULL) {
        if (perms >= 0 ? set_perms(e, perms) : acl_delete_entry(acl, e)) {
            rc = -errno;
        } else if (acl_calc_mask(&acl) != 0 || acl_set_file(proc, type, acl) != 0) {
            rc = -errno;
        } else {
            text_of(acl, after, sizeof(after));
            if (strcmp(before, after) != 0 && w->report != NULL)
                rc = w->report(path, type == ACL_TYPE_DEFAULT ? "default" : "access", before,
                               after, w->arg);
        }
    }
    acl_free(acl);
    if (rc < 0)
        snprintf(w->err, w->errlen, "cannot change the ACL of %s: %s", path, strerror(-rc));
    return rc;
}

static int change(struct walk *w, int fd, const char *path, const struct stat *st)
{
    int perms = w->perms;
    int rc;

    if (perms >= 0 && S_ISDIR(st->st_mode) && (perms & 4))
        perms |= 1; /* a readable directory is searchable */
    rc = change_one(w, fd, path, ACL_TYPE_ACCESS, perms);
    if (rc == 0 && S_ISDIR(st->st_mode) && ((w->flags & GRANT_DEFAULT) || w->perms < 0))
        rc = change_one(w, fd, path, ACL_TYPE_DEFAULT, perms);
    return rc;
}

static int is_skipped(const char *path, const char *name)
{
    return strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
           strncmp(name, ".fuse_hidden", 12) == 0 ||
           (strcmp(path, "/") == 0 && backing_is_hidden(name));
}

/* Change fd (a directory) and, recursively, everything below it. */
static int walk_dir(struct walk *w, int fd, const char *path)
{
    int dup_fd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct dirent *de;
    DIR *d;
    int rc = 0;

    if (dup_fd < 0 || (d = fdopendir(dup_fd)) == NULL) {
        if (dup_fd >= 0)
            close(dup_fd);
        snprintf(w->err, w->errlen, "cannot list %s: %s", path, strerror(errno));
        return -errno;
    }
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char child[PATH_MAX];
        struct stat st;
        int cfd;
        if (is_skipped(path, de->d_name))
            continue;
        if (snprintf(child, sizeof(child), "%s%s%s", path, strcmp(path, "/") ? "/" : "",
                     de->d_name) >= (int)sizeof(child))
            continue;
        cfd = openat(fd, de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0)
            continue; /* gone meanwhile */
        if (fstat(cfd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
            rc = change(w, cfd, child, &st);
            if (rc == 0 && S_ISDIR(st.st_mode))
                rc = walk_dir(w, cfd, child);
        }
        close(cfd);
    }
    closedir(d);
    return rc;
}

static int fstat_is_root(int root_fd, const struct stat *st)
{
    struct stat r;

    return fstat(root_fd, &r) == 0 && r.st_dev == st->st_dev && r.st_ino == st->st_ino;
}

int grant_set(int root_fd, const char *path, gid_t gid, int perms, int flags,
              grant_report_fn report, void *arg, char *err, size_t errlen)
{
    struct walk w = {gid, perms, flags, report, arg, err, errlen};
    char norm[PATH_MAX];
    struct stat st;
    int fd, rc;

    snprintf(norm, sizeof(norm), "/%s", path + strspn(path, "/"));
    if (strlen(norm) > 1 && norm[strlen(norm) - 1] == '/')
        norm[strlen(norm) - 1] = '\0';
    fd = backing_open(root_fd, norm, O_PATH | O_NOFOLLOW, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s (give a path inside the vault, relative to its root)", path,
                 strerror(-fd));
        return fd;
    }
    if (fstat(fd, &st) != 0 || (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))) {
        close(fd);
        snprintf(err, errlen, "%s is not a file or directory", path);
        return -EINVAL;
    }
    if (strcmp(norm, "/") == 0 || fstat_is_root(root_fd, &st)) {
        close(fd);
        snprintf(err, errlen, "the vault's root keeps no ACL: grant on the datasets in it");
        return -EINVAL;
    }
    rc = change(&w, fd, norm, &st);
    if (rc == 0 && S_ISDIR(st.st_mode) && (flags & GRANT_RECURSIVE))
        rc = walk_dir(&w, fd, norm);
    close(fd);
    return rc;
}
