/*
 * audit_bench: throughput of the audit module alone (make bench, workload 7).
 *
 *   audit_bench --db PATH [options]                     a new log with a random vault ID and key
 *   audit_bench --vault BACKING --keyfile KEY [options] the log of a real (unmounted) vault,
 *                                                       BACKING/.custody/audit.db, so that
 *                                                       `custodyctl verify BACKING` can check it
 * options:
 *   --threads T      writer threads feeding the log (default 2)
 *   --append N       N records with audit_append(), which waits for each commit
 *   --submit N       then N records with audit_submit(), then one audit_sync()
 *   --verify         then time audit_verify() over the whole log
 *
 * Prints one JSON object: records per second for each phase.  The records look like those the
 * daemon writes for an open of a training sample.
 */
#include "audit/audit.h"
#include "crypto/secmem.h"
#include "crypto/vaultcfg.h"
#include "fs/keysrc.h"
#include "fs/vault.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct feeder {
    struct audit_log *log;
    int index;
    int64_t first, count;
    int submit;
    int rc;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *feed(void *arg)
{
    struct feeder *f = arg;
    char path[96], file_id[33];
    struct audit_record r;

    for (int64_t i = f->first; i < f->first + f->count; i++) {
        int64_t shard = i / 1000 % 100000, sample = i % 100000;
        uint64_t h = (uint64_t)i * 0x9e3779b97f4a7c15ull;

        snprintf(path, sizeof(path), "/data/shard-%05" PRId64 "/sample-%" PRId64 ".bin", shard,
                 sample);
        snprintf(file_id, sizeof(file_id), "%016" PRIx64 "%016" PRIx64, h,
                 h ^ (uint64_t)0xa5a5a5a5a5a5);
        memset(&r, 0, sizeof(r));
        r.uid = 1000 + f->index;
        r.gid = 1000;
        r.pid = 40000 + f->index;
        r.ppid = 39999;
        r.pstart = 123456;
        r.user = f->index == 0 ? "alice" : "bob";
        r.process = "python3";
        r.exe = "/usr/bin/python3.11";
        r.op = "open";
        r.path = path;
        r.path2 = NULL;
        r.file_id = file_id;
        r.result = "ok";
        r.bytes = AUDIT_NONE;
        r.ranges = NULL;
        r.detail = "r";
        int rc = f->submit ? audit_submit(f->log, &r) : audit_append(f->log, &r);
        if (rc != 0) {
            f->rc = rc;
            return NULL;
        }
    }
    f->rc = 0;
    return NULL;
}

/* Feed `n` records from `threads` threads; returns the seconds taken, or -1. */
static double phase(struct audit_log *log, int threads, int64_t n, int64_t *next, int submit)
{
    pthread_t tid[64];
    struct feeder f[64];
    double t0 = now();
    int failed = 0;

    for (int t = 0; t < threads; t++) {
        int64_t share = n / threads + (t < n % threads ? 1 : 0);
        f[t] = (struct feeder){.log = log, .index = t, .first = *next, .count = share,
                               .submit = submit, .rc = -1};
        *next += share;
        if (pthread_create(&tid[t], NULL, feed, &f[t]) != 0)
            return -1;
    }
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        failed |= f[t].rc != 0;
    }
    if (submit && audit_sync(log) != 0)
        failed = 1;
    return failed ? -1 : now() - t0;
}

static int usage(void)
{
    fprintf(stderr, "usage: audit_bench (--db PATH | --vault BACKING --keyfile KEY) [--threads T]"
                    " [--append N] [--submit N] [--verify]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *db = NULL, *backing = NULL, *keyfile = NULL;
    long threads = 2;
    int64_t n_append = 0, n_submit = 0, next = 1;
    int do_verify = 0, rc = 1;
    unsigned char vault_id[AUDIT_ID_SIZE], pk[AUDIT_PK_SIZE];
    unsigned char *sk;
    struct vault *v = NULL;
    struct audit_log *log = NULL;
    struct audit_config cfg = {0};
    char err[512], dbpath[PATH_MAX];
    double t_append = 0, t_submit = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--verify") == 0) {
            do_verify = 1;
            continue;
        }
        if (val == NULL)
            return usage();
        i++;
        if (strcmp(a, "--db") == 0)
            db = val;
        else if (strcmp(a, "--vault") == 0)
            backing = val;
        else if (strcmp(a, "--keyfile") == 0)
            keyfile = val;
        else if (strcmp(a, "--threads") == 0)
            threads = strtol(val, NULL, 10);
        else if (strcmp(a, "--append") == 0)
            n_append = strtoll(val, NULL, 10);
        else if (strcmp(a, "--submit") == 0)
            n_submit = strtoll(val, NULL, 10);
        else
            return usage();
    }
    if ((db == NULL) == (backing == NULL) || (backing != NULL && keyfile == NULL) ||
        threads < 1 || threads > 64 || n_append < 0 || n_submit < 0)
        return usage();
    if (secmem_init() != 0)
        return fprintf(stderr, "audit_bench: libsodium does not initialise\n"), 1;
    sk = secmem_alloc(AUDIT_SK_SIZE);
    if (sk == NULL)
        return fprintf(stderr, "audit_bench: out of locked memory\n"), 1;

    if (backing != NULL) {
        struct key_source src = {.kind = SLOT_KEYFILE, .path = keyfile};
        if (vault_open(backing, &src, &v, err, sizeof(err)) != 0) {
            fprintf(stderr, "audit_bench: %s\n", err);
            goto out;
        }
        if (vaultcfg_signing_key(&v->cfg, v->mk, sk) != 0) {
            fprintf(stderr, "audit_bench: the vault's signing key does not open\n");
            goto out;
        }
        memcpy(vault_id, v->cfg.vault_id, AUDIT_ID_SIZE);
        memcpy(pk, v->cfg.sign_pk, AUDIT_PK_SIZE);
        snprintf(dbpath, sizeof(dbpath), "%s/%s/%s", v->backing, VAULT_DIR, AUDIT_DB_NAME);
    } else {
        randombytes_buf(vault_id, sizeof(vault_id));
        crypto_sign_keypair(pk, sk);
        snprintf(dbpath, sizeof(dbpath), "%s", db);
    }

    cfg.db_path = dbpath;
    memcpy(cfg.vault_id, vault_id, AUDIT_ID_SIZE);
    cfg.sign_sk = sk;
    if (audit_open(&cfg, &log, err, sizeof(err)) != 0) {
        fprintf(stderr, "audit_bench: %s\n", err);
        goto out;
    }
    if (n_append > 0 && (t_append = phase(log, (int)threads, n_append, &next, 0)) < 0) {
        fprintf(stderr, "audit_bench: audit_append failed\n");
        goto out;
    }
    if (n_submit > 0 && (t_submit = phase(log, (int)threads, n_submit, &next, 1)) < 0) {
        fprintf(stderr, "audit_bench: audit_submit or audit_sync failed\n");
        goto out;
    }
    rc = audit_close(log, 5) == 0 ? 0 : 1;
    log = NULL;
    if (rc != 0) {
        fprintf(stderr, "audit_bench: audit_close failed\n");
        goto out;
    }

    printf("{\"threads\": %ld", threads);
    if (n_append > 0)
        printf(", \"append\": {\"records\": %" PRId64 ", \"seconds\": %.6f, \"rps\": %.1f}",
               n_append, t_append, (double)n_append / t_append);
    if (n_submit > 0)
        printf(", \"submit\": {\"records\": %" PRId64 ", \"seconds\": %.6f, \"rps\": %.1f}",
               n_submit, t_submit, (double)n_submit / t_submit);
    if (do_verify) {
        struct audit_verify_result res;
        double t0 = now();
        int vrc = audit_verify(dbpath, vault_id, pk, NULL, NULL, NULL, &res);
        double t = now() - t0;
        printf(", \"verify\": {\"rc\": %d, \"records\": %" PRId64 ", \"heads\": %" PRId64
               ", \"seconds\": %.6f, \"rps\": %.1f}",
               vrc, res.records, res.heads, t, t > 0 ? (double)res.records / t : 0.0);
        if (vrc != 0) {
            fprintf(stderr, "audit_bench: audit_verify: %s\n", res.why);
            rc = 1;
        }
    }
    printf("}\n");
out:
    if (log != NULL)
        audit_close(log, 5);
    secmem_free(sk);
    vault_close(v);
    return rc;
}
