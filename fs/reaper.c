#include "reaper.h"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

static void *reaper_main(void *arg);

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER, idle = PTHREAD_COND_INITIALIZER;
static pthread_t thread;
static int running, stopping, closing;   /* closing: the thread is closing one right now */
static int fds[REAPER_MAX_FDS];
static uint64_t sizes[REAPER_MAX_FDS];
static unsigned n, cap;
static uint64_t bytes_pending;

/* Start the thread, and size the queue to leave the process most of its descriptors. */
static void start_locked(void)
{
    struct rlimit rl;

    cap = REAPER_MAX_FDS;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur / 4 < cap)
        cap = (unsigned)(rl.rlim_cur / 4);
    if (pthread_create(&thread, NULL, reaper_main, NULL) == 0)
        running = 1;
}

static void *reaper_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (n == 0 && !stopping)
            pthread_cond_wait(&work, &mu);
        if (n == 0)
            break;
        int fd = fds[--n];
        uint64_t b = sizes[n];
        closing = 1;
        pthread_mutex_unlock(&mu);
        close(fd);
        pthread_mutex_lock(&mu);
        closing = 0;
        bytes_pending -= b;
        if (n == 0)
            pthread_cond_broadcast(&idle);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

void reaper_put(int fd, uint64_t bytes)
{
    pthread_mutex_lock(&mu);
    if (!running && !stopping)
        start_locked();
    if (running && !stopping && n < cap && bytes <= REAPER_MAX_BYTES - bytes_pending) {
        fds[n] = fd;
        sizes[n++] = bytes;
        bytes_pending += bytes;
        pthread_cond_signal(&work);
        fd = -1;
    }
    pthread_mutex_unlock(&mu);
    if (fd >= 0)
        close(fd);
}

int reaper_drain(void)
{
    int any;

    pthread_mutex_lock(&mu);
    any = n > 0 || closing;
    while (n > 0 || closing)
        pthread_cond_wait(&idle, &mu);
    pthread_mutex_unlock(&mu);
    return any;
}

void reaper_stop(void)
{
    int join;

    pthread_mutex_lock(&mu);
    stopping = 1;
    join = running;
    running = 0;
    pthread_cond_signal(&work);
    pthread_mutex_unlock(&mu);
    if (join)
        pthread_join(thread, NULL);
}
