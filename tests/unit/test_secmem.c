/*
 * Unit tests for crypto/secmem.c: guarded buffers and the slab of key slots.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "crypto/secmem.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static int group_setup(void **state)
{
    (void)state;
    return secmem_init() == 0 ? 0 : -1;
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;

    return x < y ? -1 : x > y;
}

static void test_init_twice(void **state)
{
    (void)state;
    assert_int_equal(secmem_init(), 0);
    assert_int_equal(secmem_init(), 0);
}

static void test_alloc(void **state)
{
    static const size_t sizes[] = {1, 15, 16, 17, 32, 100, 1024, 4095, 4096, 4097, 65536};

    (void)state;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *p = secmem_alloc(sizes[i]);
        assert_non_null(p);
        assert_true(all_zero(p, sizes[i]));
        memset(p, 0x5A, sizes[i]); /* the whole buffer is writable */
        assert_int_equal(p[sizes[i] - 1], 0x5A);
        secmem_free(p);
    }
    /* freshly allocated again: zero */
    for (int i = 0; i < 50; i++) {
        unsigned char *p = secmem_alloc(64);
        assert_non_null(p);
        assert_true(all_zero(p, 64));
        memset(p, 0xFF, 64);
        secmem_free(p);
    }
}

static void test_null_safe(void **state)
{
    (void)state;
    secmem_free(NULL);
    secmem_slot_put(NULL);
    secmem_slot_put(NULL);
}

#define MANY 300 /* more than the slots of several chunks */

static void test_slots_zeroed_aligned_distinct(void **state)
{
    unsigned char **s = calloc(MANY, sizeof(*s));

    (void)state;
    assert_non_null(s);
    for (int i = 0; i < MANY; i++) {
        s[i] = secmem_slot_get();
        assert_non_null(s[i]);
        assert_int_equal((uintptr_t)s[i] % 16, 0);
        assert_true(all_zero(s[i], SECMEM_SLOT_SIZE));
        memset(s[i], (unsigned char)(i % 251 + 1), SECMEM_SLOT_SIZE);
    }
    /* every slot still holds its own pattern: none overlaps another */
    for (int i = 0; i < MANY; i++)
        for (size_t j = 0; j < SECMEM_SLOT_SIZE; j++)
            assert_int_equal(s[i][j], (unsigned char)(i % 251 + 1));
    /* distinct addresses at least a slot apart */
    unsigned char **sorted = malloc(MANY * sizeof(*sorted));
    assert_non_null(sorted);
    memcpy(sorted, s, MANY * sizeof(*sorted));
    qsort(sorted, MANY, sizeof(*sorted), cmp_ptr);
    for (int i = 1; i < MANY; i++)
        assert_true((uintptr_t)sorted[i] - (uintptr_t)sorted[i - 1] >= SECMEM_SLOT_SIZE);
    free(sorted);
    /* give them back dirty; every slot handed out again is zero */
    for (int i = 0; i < MANY; i++)
        secmem_slot_put(s[i]);
    for (int i = 0; i < MANY; i++) {
        s[i] = secmem_slot_get();
        assert_non_null(s[i]);
        assert_int_equal((uintptr_t)s[i] % 16, 0);
        assert_true(all_zero(s[i], SECMEM_SLOT_SIZE));
    }
    for (int i = 0; i < MANY; i++)
        secmem_slot_put(s[i]);
    free(s);
}

static void test_slot_reuse_is_zeroed(void **state)
{
    (void)state;
    for (int i = 0; i < 1000; i++) {
        unsigned char *p = secmem_slot_get();
        assert_non_null(p);
        assert_true(all_zero(p, SECMEM_SLOT_SIZE));
        memset(p, 0xA5, SECMEM_SLOT_SIZE);
        secmem_slot_put(p);
    }
    /* interleaved get/put of several slots */
    unsigned char *a = secmem_slot_get(), *b = secmem_slot_get();
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    memset(a, 1, SECMEM_SLOT_SIZE);
    memset(b, 2, SECMEM_SLOT_SIZE);
    secmem_slot_put(a);
    unsigned char *c = secmem_slot_get();
    assert_non_null(c);
    assert_ptr_not_equal(c, b);
    assert_true(all_zero(c, SECMEM_SLOT_SIZE));
    for (size_t j = 0; j < SECMEM_SLOT_SIZE; j++)
        assert_int_equal(b[j], 2);
    secmem_slot_put(b);
    secmem_slot_put(c);
}

/*
 * Threads: each repeatedly takes a few slots, checks they are zero, stamps them with its own
 * pattern, checks the stamps after a while, and gives them back.  A registry of slots in use
 * catches one slot handed out twice at once.  cmocka is not thread-safe: threads count errors.
 */
#define THREADS 8
#define ITERS 4000
#define HOLD 4
#define REG_SIZE 8192 /* open-addressing table of slots in use */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static void *reg[REG_SIZE];
static atomic_int errors_double, errors_dirty, errors_align, errors_stomp, errors_null;

static size_t reg_hash(void *p)
{
    return ((uintptr_t)p / SECMEM_SLOT_SIZE * 2654435761u) % REG_SIZE;
}

/* Returns 0, or -1 when the slot is already registered (handed out twice). */
static int reg_add(void *p)
{
    int rc = 0;

    pthread_mutex_lock(&reg_lock);
    size_t h = reg_hash(p);
    for (size_t i = 0; i < REG_SIZE; i++, h = (h + 1) % REG_SIZE) {
        if (reg[h] == p) {
            rc = -1;
            break;
        }
        if (reg[h] == NULL) {
            reg[h] = p;
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

static void reg_del(void *p)
{
    pthread_mutex_lock(&reg_lock);
    size_t h = reg_hash(p);
    for (size_t i = 0; i < REG_SIZE; i++, h = (h + 1) % REG_SIZE)
        if (reg[h] == p) {
            /* remove and re-insert the rest of the cluster */
            reg[h] = NULL;
            for (size_t k = (h + 1) % REG_SIZE; reg[k] != NULL; k = (k + 1) % REG_SIZE) {
                void *q = reg[k];
                size_t g = reg_hash(q);
                reg[k] = NULL;
                while (reg[g] != NULL)
                    g = (g + 1) % REG_SIZE;
                reg[g] = q;
            }
            break;
        }
    pthread_mutex_unlock(&reg_lock);
}

static void *worker(void *arg)
{
    unsigned tid = (unsigned)(uintptr_t)arg;
    unsigned char *held[HOLD] = {0};

    for (int it = 0; it < ITERS; it++) {
        int k = it % HOLD;
        if (held[k] != NULL) {
            unsigned char stamp = (unsigned char)(tid * 31 + (unsigned)(it - HOLD) * 7 + 1);
            for (size_t j = 0; j < SECMEM_SLOT_SIZE; j += 61)
                if (held[k][j] != stamp) {
                    atomic_fetch_add(&errors_stomp, 1);
                    break;
                }
            reg_del(held[k]);
            secmem_slot_put(held[k]);
            held[k] = NULL;
        }
        unsigned char *p = secmem_slot_get();
        if (p == NULL) {
            atomic_fetch_add(&errors_null, 1);
            continue;
        }
        if (reg_add(p) != 0)
            atomic_fetch_add(&errors_double, 1);
        if ((uintptr_t)p % 16 != 0)
            atomic_fetch_add(&errors_align, 1);
        if (!all_zero(p, SECMEM_SLOT_SIZE))
            atomic_fetch_add(&errors_dirty, 1);
        memset(p, (unsigned char)(tid * 31 + (unsigned)it * 7 + 1), SECMEM_SLOT_SIZE);
        held[k] = p;
    }
    for (int k = 0; k < HOLD; k++)
        if (held[k] != NULL) {
            reg_del(held[k]);
            secmem_slot_put(held[k]);
        }
    return NULL;
}

static void test_threads(void **state)
{
    pthread_t th[THREADS];

    (void)state;
    for (unsigned t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, worker, (void *)(uintptr_t)t), 0);
    for (unsigned t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    assert_int_equal(atomic_load(&errors_null), 0);
    assert_int_equal(atomic_load(&errors_double), 0);
    assert_int_equal(atomic_load(&errors_align), 0);
    assert_int_equal(atomic_load(&errors_dirty), 0);
    assert_int_equal(atomic_load(&errors_stomp), 0);
    for (size_t i = 0; i < REG_SIZE; i++)
        assert_null(reg[i]);
}

/*
 * Tight get/put loops from several threads, with an ownership mark in each slot: a slot handed
 * to two threads at once shows as a mark that is not the holder's own.
 */
#define TIGHT_ITERS 100000
static atomic_int errors_tight;

static void *tight_worker(void *arg)
{
    uintptr_t me = (uintptr_t)arg + 1;

    for (int it = 0; it < TIGHT_ITERS; it++) {
        unsigned char *p = secmem_slot_get();
        if (p == NULL) {
            atomic_fetch_add(&errors_tight, 1);
            continue;
        }
        _Atomic uintptr_t *mark = (_Atomic uintptr_t *)(p + 512);
        if (atomic_exchange(mark, me) != 0)
            atomic_fetch_add(&errors_tight, 1);
        if (((const unsigned char *)p)[SECMEM_SLOT_SIZE - 1] != 0)
            atomic_fetch_add(&errors_tight, 1);
        if (atomic_exchange(mark, 0) != me)
            atomic_fetch_add(&errors_tight, 1);
        secmem_slot_put(p);
    }
    return NULL;
}

static void test_threads_tight(void **state)
{
    pthread_t th[THREADS];

    (void)state;
    for (unsigned t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, tight_worker, (void *)(uintptr_t)t), 0);
    for (unsigned t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    assert_int_equal(atomic_load(&errors_tight), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_twice),
        cmocka_unit_test(test_alloc),
        cmocka_unit_test(test_null_safe),
        cmocka_unit_test(test_slots_zeroed_aligned_distinct),
        cmocka_unit_test(test_slot_reuse_is_zeroed),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_threads_tight),
    };

    return cmocka_run_group_tests_name("secmem", tests, group_setup, NULL);
}
