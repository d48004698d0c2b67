/*
 * identity: who is calling.  From the uid, gid and pid FUSE reports: the user name, the process
 * name, executable, parent pid, start time (so that a process stays identified when its pid is
 * reused) and supplementary groups.  Thread-safe.
 *
 * Reading /proc costs more than the rest of a request, so what it says is cached per pid
 * (thread id) together with a descriptor of the /proc/PID directory.  A cached entry is used
 * only while that descriptor still reaches a live process (a reused pid is another process:
 * the old descriptor no longer reaches it), the executable it shows is the cached one (an exec
 * is noticed at once), the request's uid and gid are the cached ones, and it is younger than
 * IDENTITY_REFRESH_MS: a change of the process name or of the supplementary groups of a
 * running process (setgroups, which needs CAP_SETGID) is seen within that time.  User names are
 * cached by uid.
 */
#ifndef CUSTODY_IDENTITY_H
#define CUSTODY_IDENTITY_H

#include <stdint.h>
#include <sys/types.h>

#define IDENTITY_EXE_MAX 512
#define IDENTITY_MAX_GROUPS 256
#define IDENTITY_REFRESH_MS 1000

struct caller {
    int64_t uid, gid, pid, ppid, pstart;
    char user[64];
    char process[32];
    char exe[IDENTITY_EXE_MAX];
};

/* caller_identify: fill *c for the process `pid` running as uid/gid.  A process that is gone
 * (or pid 0: the kernel itself) gets what can still be known. */
void caller_identify(uid_t uid, gid_t gid, pid_t pid, struct caller *c);

/*
 * caller_lookup: as caller_identify, and the process's supplementary groups, from one lookup.
 * c and groups may each be NULL.  OUT: groups[0..*ngroups) (at most IDENTITY_MAX_GROUPS; none
 * when the process is gone).
 */
void caller_lookup(uid_t uid, gid_t gid, pid_t pid, struct caller *c, gid_t *groups,
                   int *ngroups);

/*
 * caller_capable: does the process `pid` running as uid hold capability `cap` (CAP_*) in its
 * effective set now?  Read fresh from /proc/PID/status at every call (capabilities change
 * without an exec).  When the process is gone or pid is 0, root is taken as capable.
 * Returns 1 or 0.
 */
int caller_capable(pid_t pid, uid_t uid, int cap);

/* identity_flush: forget every cached process (closes the cached descriptors). */
void identity_flush(void);

#endif
