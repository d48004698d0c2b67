#include "identity.h"

#include "audit/audit.h"

#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROC_CACHE 256
#define USER_CACHE 64

/* What /proc says about one process; dirfd >= 0 when the entry is in use. */
struct proc_entry {
    int dirfd;                  /* O_PATH of /proc/PID */
    pid_t pid;
    uid_t uid;                  /* as the request that loaded it */
    gid_t gid;
    int64_t loaded_ms;          /* CLOCK_MONOTONIC */
    int64_t ppid, pstart;
    char process[32];
    char exe[IDENTITY_EXE_MAX];
    int ngroups;
    gid_t groups[IDENTITY_MAX_GROUPS];
};

struct user_entry {
    int64_t uid;
    char name[64];
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct proc_entry procs[PROC_CACHE];
static int procs_ready;
static struct user_entry users[USER_CACHE];

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read the file `name` of the /proc/PID directory dirfd (or a path, with AT_FDCWD) into buf.
 * Returns its length or -1. */
static ssize_t read_proc(int dirfd, const char *name, char *buf, size_t len)
{
    ssize_t n;
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -1;
    n = read(fd, buf, len - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return n;
}

/*
 * stat: "pid (comm) state ppid ... starttime(22nd field) ...".  comm may hold spaces and
 * parentheses: parse from the last ')'.  Returns 0 or -1.
 */
static int read_stat(int dirfd, struct proc_entry *e)
{
    char buf[1024], *open_paren, *close_paren, *p;
    long long pp = 0;
    unsigned long long st = 0;

    if (read_proc(dirfd, "stat", buf, sizeof(buf)) < 0)
        return -1;
    open_paren = strchr(buf, '(');
    close_paren = strrchr(buf, ')');
    if (open_paren == NULL || close_paren == NULL || close_paren < open_paren)
        return -1;
    snprintf(e->process, sizeof(e->process), "%.*s", (int)(close_paren - open_paren - 1),
             open_paren + 1);
    /* fields after comm: 3 state, 4 ppid, ... 22 starttime */
    p = close_paren + 2;
    if (sscanf(p, "%*c %lld %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
                  "%*d %llu", &pp, &st) != 2)
        return -1;
    e->ppid = pp;
    e->pstart = (int64_t)st;
    return 0;
}

/* Supplementary groups from the "Groups:" line of status. */
static void read_groups(int dirfd, struct proc_entry *e)
{
    char buf[8192], *p;

    e->ngroups = 0;
    if (read_proc(dirfd, "status", buf, sizeof(buf)) < 0)
        return;
    p = strstr(buf, "\nGroups:");
    if (p == NULL)
        return;
    p += sizeof("\nGroups:") - 1;
    while (e->ngroups < IDENTITY_MAX_GROUPS) {
        char *end;
        unsigned long g = strtoul(p, &end, 10);
        if (end == p)
            break;
        e->groups[e->ngroups++] = (gid_t)g;
        p = end;
    }
}

static void read_exe(int dirfd, char *exe, size_t len)
{
    ssize_t n = readlinkat(dirfd, "exe", exe, len - 1);

    exe[n > 0 ? n : 0] = '\0';
}

static void lookup_user(uid_t uid, char *name, size_t len)
{
    struct user_entry *e = &users[(uint64_t)uid % USER_CACHE];
    struct passwd pw, *res = NULL;
    char buf[1024];

    pthread_mutex_lock(&cache_lock);
    if (e->uid == (int64_t)uid && e->name[0] != '\0') {
        snprintf(name, len, "%s", e->name);
        pthread_mutex_unlock(&cache_lock);
        return;
    }
    pthread_mutex_unlock(&cache_lock);
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
        snprintf(name, len, "%s", pw.pw_name);
    else
        snprintf(name, len, "%lld", (long long)uid);
    pthread_mutex_lock(&cache_lock);
    e->uid = uid;
    snprintf(e->name, sizeof(e->name), "%s", name);
    pthread_mutex_unlock(&cache_lock);
}

/* Is the cached entry still the process that sent this request?  Called with cache_lock held. */
static int entry_valid(const struct proc_entry *e, uid_t uid, gid_t gid, pid_t pid)
{
    char exe[IDENTITY_EXE_MAX];
    ssize_t n;

    if (e->dirfd < 0 || e->pid != pid || e->uid != uid || e->gid != gid ||
        now_ms() - e->loaded_ms >= IDENTITY_REFRESH_MS)
        return 0;
    /* Fails once the process is gone; shows another file after an exec. */
    n = readlinkat(e->dirfd, "exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return 0;
    exe[n] = '\0';
    return strcmp(exe, e->exe) == 0;
}

/* Fill e from /proc for pid.  Returns 0, or -1 when the process is gone. */
static int entry_load(struct proc_entry *e, uid_t uid, gid_t gid, pid_t pid)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%d", (int)pid);
    e->dirfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (e->dirfd < 0)
        return -1;
    if (read_stat(e->dirfd, e) != 0) {
        close(e->dirfd);
        e->dirfd = -1;
        return -1;
    }
    e->pid = pid;
    e->uid = uid;
    e->gid = gid;
    read_exe(e->dirfd, e->exe, sizeof(e->exe));
    read_groups(e->dirfd, e);
    e->loaded_ms = now_ms();
    return 0;
}

static void copy_out(const struct proc_entry *e, struct caller *c, gid_t *groups, int *ngroups)
{
    if (c != NULL) {
        c->ppid = e->ppid;
        c->pstart = e->pstart;
        memcpy(c->process, e->process, sizeof(c->process));
        memcpy(c->exe, e->exe, sizeof(c->exe));
    }
    if (groups != NULL) {
        memcpy(groups, e->groups, (size_t)e->ngroups * sizeof(gid_t));
        *ngroups = e->ngroups;
    }
}

static void init_procs(void)
{
    if (procs_ready)
        return;
    for (int i = 0; i < PROC_CACHE; i++)
        procs[i].dirfd = -1;
    procs_ready = 1;
}

void caller_lookup(uid_t uid, gid_t gid, pid_t pid, struct caller *c, gid_t *groups,
                   int *ngroups)
{
    struct proc_entry *slot = &procs[(unsigned)pid % PROC_CACHE];
    struct proc_entry *fresh;

    if (c != NULL) {
        memset(c, 0, sizeof(*c));
        c->uid = uid;
        c->gid = gid;
        c->pid = pid;
        c->ppid = c->pstart = AUDIT_NONE;
        lookup_user(uid, c->user, sizeof(c->user));
    }
    if (groups != NULL)
        *ngroups = 0;
    if (pid <= 0) {
        if (c != NULL)
            snprintf(c->process, sizeof(c->process), "kernel");
        return;
    }
    pthread_mutex_lock(&cache_lock);
    init_procs();
    if (entry_valid(slot, uid, gid, pid)) {
        copy_out(slot, c, groups, ngroups);
        pthread_mutex_unlock(&cache_lock);
        return;
    }
    pthread_mutex_unlock(&cache_lock);

    fresh = malloc(sizeof(*fresh));
    if (fresh == NULL || entry_load(fresh, uid, gid, pid) != 0) {
        if (c != NULL)
            snprintf(c->process, sizeof(c->process), "(exited)");
        free(fresh);
        return;
    }
    copy_out(fresh, c, groups, ngroups);
    pthread_mutex_lock(&cache_lock);
    if (slot->dirfd >= 0)
        close(slot->dirfd);
    *slot = *fresh;
    pthread_mutex_unlock(&cache_lock);
    free(fresh);
}

void caller_identify(uid_t uid, gid_t gid, pid_t pid, struct caller *c)
{
    caller_lookup(uid, gid, pid, c, NULL, NULL);
}

int caller_capable(pid_t pid, uid_t uid, int cap)
{
    char status[40], buf[8192], *p = NULL;
    unsigned long long eff;

    snprintf(status, sizeof(status), "/proc/%ld/status", (long)pid);
    if (pid > 0 && read_proc(AT_FDCWD, status, buf, sizeof(buf)) > 0)
        p = strstr(buf, "\nCapEff:");
    if (p == NULL || sscanf(p + sizeof("\nCapEff:") - 1, "%llx", &eff) != 1)
        return uid == 0;
    return cap >= 0 && cap < 64 && ((eff >> cap) & 1);
}

void identity_flush(void)
{
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; procs_ready && i < PROC_CACHE; i++) {
        if (procs[i].dirfd >= 0)
            close(procs[i].dirfd);
        procs[i].dirfd = -1;
    }
    pthread_mutex_unlock(&cache_lock);
}
