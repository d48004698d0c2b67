/*
 * access: custodyfs's own permission checks.  The daemon does not hand them to the kernel, so
 * that it sees, and records, every denial.
 *
 * A role is a POSIX group; permissions are POSIX.1e ACL entries on the backing files, read with
 * libacl (a file without an ACL has the three entries its mode bits give).  A caller's
 * credentials are its uid, gid and supplementary groups (fs/identity.h says where they come
 * from and how fresh they are).  The
 * decision follows POSIX.1e: the owner entry for the owner, else a named-user entry (under the
 * mask), else the owning-group and named-group entries the caller is in (under the mask: any
 * that grants all of the request), else other.  Root may read and write anything and search any
 * directory, and execute a file when some execute bit is set, as with CAP_DAC_OVERRIDE.
 *
 * Functions return 0 when allowed, -EACCES (or -EPERM where POSIX says so) when not, or another
 * negative errno when the object cannot be examined.
 */
#ifndef CUSTODY_ACCESS_H
#define CUSTODY_ACCESS_H

#include <sys/stat.h>
#include <sys/types.h>

#define ACCESS_R 4
#define ACCESS_W 2
#define ACCESS_X 1
#define ACCESS_MAX_GROUPS 256       /* = IDENTITY_MAX_GROUPS */

struct cred {
    uid_t uid;
    gid_t gid;
    int ngroups;
    gid_t groups[ACCESS_MAX_GROUPS];
    int admin;                 /* root, or a member of the vault's admin group */
};

/* access_set_admin_group: the vault's admin role ((gid_t)-1: root only).  Call once. */
void access_set_admin_group(gid_t gid);

/* cred_set: credentials of a caller running as uid/gid with supplementary groups[0..ngroups). */
void cred_set(struct cred *c, uid_t uid, gid_t gid, const gid_t *groups, int ngroups);

/* cred_in_group: is g the caller's gid or one of its supplementary groups? */
int cred_in_group(const struct cred *c, gid_t g);

/*
 * access_check: may c do `want` (ACCESS_* bits) to the object open as `fd` (O_PATH will do),
 * whose status is *st?  OUT: why, the entry that decided ("owner", "user:1001", "group:2000",
 * "mask", "other", "root"), when not NULL.
 */
int access_check(const struct cred *c, int fd, const struct stat *st, int want, char *why,
                 size_t whylen);

/*
 * access_parent: resolve the directory holding the last component of `path` beneath root_fd as
 * backing_parent() does, checking search permission on the root and every directory on the way.
 * OUT: *name.  Returns a descriptor for backing_put(), or a negative errno.
 */
int access_parent(const struct cred *c, int root_fd, const char *path, const char **name);

/* access_owner_or_admin: 0 when c owns st or is an admin, else -EPERM. */
int access_owner_or_admin(const struct cred *c, const struct stat *st);

/*
 * access_sticky: in a sticky directory `dir`, only the owner of the entry, the owner of the
 * directory or an admin may remove or rename the entry `st`.  Returns 0 or -EPERM.
 */
int access_sticky(const struct cred *c, const struct stat *dir, const struct stat *st);

/*
 * The mount root is the backing directory itself, which must stay 0700 and root's so that
 * nobody reaches the ciphertext, the keys or the audit log around the mount.  The owner, group
 * and mode the mount root shows (and is checked with) live in an extended attribute of the
 * backing directory instead; POSIX ACLs on the mount root are not supported.
 */

/* access_set_root: remember which directory is the root (call once, with the backing root). */
void access_set_root(int root_fd);
/* access_is_root: is st the backing root? */
int access_is_root(const struct stat *st);
/* access_root_stat: the root's status as the mount shows it.  Returns 0 or -errno. */
int access_root_stat(int root_fd, struct stat *st);
/* access_root_set: set the mount root's owner, group and permission bits.  0 or -errno. */
int access_root_set(int root_fd, uid_t uid, gid_t gid, mode_t mode);

#endif
