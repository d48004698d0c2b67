#include "identity.h"

#include "audit/audit.h"

#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROC_CACHE 256
#define USER_CACHE 64

struct proc_entry {
    int64_t pid, pstart, ppid;
    char process[32];
    char exe[IDENTITY_EXE_MAX];
};

struct user_entry {
    int64_t uid;
    char name[64];
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct proc_entry procs[PROC_CACHE];
static struct user_entry users[USER_CACHE];

/*
 * /proc/PID/stat: "pid (comm) state ppid ... starttime(22nd field) ...".  comm may hold spaces
 * and parentheses: parse from the last ')'.  Returns 0 or -1.
 */
static int read_stat(pid_t pid, char *comm, size_t commlen, int64_t *ppid, int64_t *start)
{
    char path[64], buf[1024], *open_paren, *close_paren, *p;
    long long pp = 0;
    unsigned long long st = 0;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    open_paren = strchr(buf, '(');
    close_paren = strrchr(buf, ')');
    if (open_paren == NULL || close_paren == NULL || close_paren < open_paren)
        return -1;
    snprintf(comm, commlen, "%.*s", (int)(close_paren - open_paren - 1), open_paren + 1);
    /* fields after comm: 3 state, 4 ppid, ... 22 starttime */
    p = close_paren + 2;
    if (sscanf(p, "%*c %lld %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
                  "%*d %llu", &pp, &st) != 2)
        return -1;
    *ppid = pp;
    *start = (int64_t)st;
    return 0;
}

static void read_exe(pid_t pid, char *exe, size_t len)
{
    char path[64];
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
    n = readlink(path, exe, len - 1);
    exe[n > 0 ? n : 0] = '\0';
}

static void lookup_user(struct caller *c)
{
    struct user_entry *e = &users[(uint64_t)c->uid % USER_CACHE];
    struct passwd pw, *res = NULL;
    char buf[1024];

    pthread_mutex_lock(&cache_lock);
    if (e->uid == c->uid && e->name[0] != '\0') {
        memcpy(c->user, e->name, sizeof(c->user));
        pthread_mutex_unlock(&cache_lock);
        return;
    }
    pthread_mutex_unlock(&cache_lock);
    if (getpwuid_r((uid_t)c->uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
        snprintf(c->user, sizeof(c->user), "%s", pw.pw_name);
    else
        snprintf(c->user, sizeof(c->user), "%lld", (long long)c->uid);
    pthread_mutex_lock(&cache_lock);
    e->uid = c->uid;
    memcpy(e->name, c->user, sizeof(e->name));
    pthread_mutex_unlock(&cache_lock);
}

void caller_identify(uid_t uid, gid_t gid, pid_t pid, struct caller *c)
{
    struct proc_entry *e = &procs[(unsigned)pid % PROC_CACHE];

    memset(c, 0, sizeof(*c));
    c->uid = uid;
    c->gid = gid;
    c->pid = pid;
    c->ppid = c->pstart = AUDIT_NONE;
    lookup_user(c);
    if (pid <= 0 || read_stat(pid, c->process, sizeof(c->process), &c->ppid, &c->pstart) != 0) {
        snprintf(c->process, sizeof(c->process), "%s", pid <= 0 ? "kernel" : "(exited)");
        return;
    }
    pthread_mutex_lock(&cache_lock);
    if (e->pid == pid && e->pstart == c->pstart) {
        memcpy(c->exe, e->exe, sizeof(c->exe));
        pthread_mutex_unlock(&cache_lock);
        return;
    }
    pthread_mutex_unlock(&cache_lock);
    read_exe(pid, c->exe, sizeof(c->exe));
    pthread_mutex_lock(&cache_lock);
    e->pid = pid;
    e->pstart = c->pstart;
    memcpy(e->exe, c->exe, sizeof(e->exe));
    pthread_mutex_unlock(&cache_lock);
}
