/*
 * identity: who is calling.  From the uid, gid and pid FUSE reports, the user name, the process
 * name, executable, parent pid and start time (so that a process stays identified when its pid
 * is reused).  Process details come from /proc and are cached by (pid, start time); user names
 * are cached by uid.  Thread-safe.
 */
#ifndef CUSTODY_IDENTITY_H
#define CUSTODY_IDENTITY_H

#include <stdint.h>
#include <sys/types.h>

#define IDENTITY_EXE_MAX 512

struct caller {
    int64_t uid, gid, pid, ppid, pstart;
    char user[64];
    char process[32];
    char exe[IDENTITY_EXE_MAX];
};

/* caller_identify: fill *c for the process `pid` running as uid/gid.  A process that is gone
 * (or pid 0: the kernel itself) gets what can still be known. */
void caller_identify(uid_t uid, gid_t gid, pid_t pid, struct caller *c);

#endif
