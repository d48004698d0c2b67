/*
 * iobench: the file I/O loops of the benchmark, in C so that the driver's interpreter does not
 * cap the figures.  Each subcommand prints one JSON object on standard output.
 *
 *   iobench write FILE BYTES CHUNK         sequential write() of CHUNK bytes, fsync, close
 *   iobench read FILE CHUNK                sequential read() to the end, close
 *   iobench randread FILE SECONDS PROCS    random aligned 4 KiB pread()s, PROCS processes
 *
 * Written data is random-looking (a random pool, with each chunk stamped by its index), so
 * that nothing on the way can compress or deduplicate it.  Times are wall-clock, from before
 * open() to after close().
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POOL_SIZE (4u << 20)
#define BLOCK 4096

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int die(const char *what, const char *path)
{
    fprintf(stderr, "iobench: %s %s: %s\n", what, path, strerror(errno));
    return 1;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static unsigned char *random_pool(uint64_t seed)
{
    unsigned char *p = malloc(POOL_SIZE);
    uint64_t s = seed | 1;

    if (p == NULL)
        return NULL;
    for (size_t i = 0; i < POOL_SIZE; i += 8) {
        uint64_t v = xorshift(&s);
        memcpy(p + i, &v, 8);
    }
    return p;
}

static long long parse_num(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v <= 0) {
        fprintf(stderr, "iobench: not a positive number: %s\n", s);
        exit(2);
    }
    return v;
}

static int cmd_write(const char *path, long long total, long long chunk)
{
    unsigned char *pool = random_pool((uint64_t)total ^ 0x9e3779b97f4a7c15ull);
    unsigned char *buf = malloc((size_t)chunk);
    long long done = 0, n = 0;
    double t0, t1;
    int fd;

    if (pool == NULL || buf == NULL || chunk > (long long)POOL_SIZE / 2)
        return fprintf(stderr, "iobench: chunk too large or out of memory\n"), 1;
    t0 = now();
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return die("open", path);
    while (done < total) {
        size_t len = (size_t)(total - done < chunk ? total - done : chunk);
        size_t off = (size_t)((uint64_t)n * 7919u * 64u % (POOL_SIZE / 2));
        memcpy(buf, pool + off, len);
        memcpy(buf, &n, len < sizeof(n) ? len : sizeof(n));
        ssize_t w = write(fd, buf, len);
        if (w != (ssize_t)len)
            return die("write", path);
        done += w;
        n++;
    }
    if (fsync(fd) != 0)
        return die("fsync", path);
    if (close(fd) != 0)
        return die("close", path);
    t1 = now();
    printf("{\"bytes\": %lld, \"writes\": %lld, \"seconds\": %.6f}\n", done, n, t1 - t0);
    free(pool);
    free(buf);
    return 0;
}

static int cmd_read(const char *path, long long chunk)
{
    unsigned char *buf = malloc((size_t)chunk);
    long long done = 0;
    double t0, t1;
    ssize_t r;
    int fd;

    if (buf == NULL)
        return 1;
    t0 = now();
    fd = open(path, O_RDONLY);
    if (fd < 0)
        return die("open", path);
    while ((r = read(fd, buf, (size_t)chunk)) > 0)
        done += r;
    if (r < 0)
        return die("read", path);
    close(fd);
    t1 = now();
    printf("{\"bytes\": %lld, \"seconds\": %.6f}\n", done, t1 - t0);
    free(buf);
    return 0;
}

/* One reader: random aligned blocks until `deadline`; returns the count, or -1. */
static long long reader(const char *path, double deadline, uint64_t seed)
{
    unsigned char *buf = aligned_alloc(BLOCK, BLOCK);
    uint64_t s = seed | 1;
    long long ops = 0;
    struct stat st;
    int fd = open(path, O_RDONLY);

    if (fd < 0 || buf == NULL || fstat(fd, &st) != 0 || st.st_size < BLOCK)
        return -1;
    uint64_t blocks = (uint64_t)st.st_size / BLOCK;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            off_t off = (off_t)(xorshift(&s) % blocks) * BLOCK;
            if (pread(fd, buf, BLOCK, off) != BLOCK)
                return -1;
        }
        ops += 64;
        if (now() >= deadline)
            break;
    }
    close(fd);
    free(buf);
    return ops;
}

static int cmd_randread(const char *path, double seconds, int procs)
{
    long long *counts = mmap(NULL, sizeof(long long) * (size_t)procs, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    long long total = 0;
    double t0, t1, deadline;
    int failed = 0;

    if (counts == MAP_FAILED)
        return 1;
    t0 = now();
    deadline = t0 + seconds;
    for (int p = 0; p < procs; p++) {
        pid_t pid = fork();
        if (pid < 0)
            return die("fork", path);
        if (pid == 0) {
            uint64_t seed = 0x2545f4914f6cdd1dull * (uint64_t)(p + 1) ^ (uint64_t)getpid();
            counts[p] = reader(path, deadline, seed);
            _exit(counts[p] < 0 ? 1 : 0);
        }
    }
    for (int p = 0; p < procs; p++) {
        int status;
        if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed = 1;
    }
    t1 = now();
    if (failed) {
        fprintf(stderr, "iobench: a reader of %s failed\n", path);
        return 1;
    }
    printf("{\"procs\": %d, \"ops\": [", procs);
    for (int p = 0; p < procs; p++) {
        total += counts[p];
        printf("%s%lld", p ? ", " : "", counts[p]);
    }
    printf("], \"total\": %lld, \"seconds\": %.6f}\n", total, t1 - t0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "write") == 0)
        return cmd_write(argv[2], parse_num(argv[3]), parse_num(argv[4]));
    if (argc == 4 && strcmp(argv[1], "read") == 0)
        return cmd_read(argv[2], parse_num(argv[3]));
    if (argc == 5 && strcmp(argv[1], "randread") == 0)
        return cmd_randread(argv[2], (double)parse_num(argv[3]), (int)parse_num(argv[4]));
    fprintf(stderr, "usage: iobench write FILE BYTES CHUNK | read FILE CHUNK |"
                    " randread FILE SECONDS PROCS\n");
    return 2;
}
