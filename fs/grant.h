/*
 * grant: change who may use a dataset, by POSIX ACL entries for roles (groups), without a mount.
 * Used by `custodyctl grant` and `custodyctl revoke`; custodyfs enforces the result
 * (fs/access.h).
 *
 * Paths are relative to the vault's root and resolved beneath it without following links;
 * nothing under .custody is reachable.  On directories, read access includes search (as
 * setfacl's "X"), so that a role granted "r" on a dataset can read the files in it.
 */
#ifndef CUSTODY_GRANT_H
#define CUSTODY_GRANT_H

#include <sys/types.h>

#define GRANT_RECURSIVE 1   /* the whole tree below the path too */
#define GRANT_DEFAULT 2     /* directories also get a default ACL entry: new files inherit it */

/* Called for each object changed: its path (relative, with a leading '/'), which ACL
 * ("access" or "default"), and the ACL before and after in short text form ("-": none). */
typedef int (*grant_report_fn)(const char *path, const char *which, const char *before,
                               const char *after, void *arg);

/*
 * grant_set: give group `gid` the permissions `perms` (ACL_READ|ACL_WRITE|ACL_EXECUTE bits:
 * 4, 2, 1) on `path`.  With perms < 0, remove the group's entries instead (revoke).  Calls
 * `report` after each change.  Returns 0, or a negative errno (err says which path failed).
 */
int grant_set(int root_fd, const char *path, gid_t gid, int perms, int flags,
              grant_report_fn report, void *arg, char *err, size_t errlen);

#endif
