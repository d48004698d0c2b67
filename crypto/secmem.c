#include "secmem.h"

#include <pthread.h>
#include <sodium.h>
#include <stdint.h>

/* Slots per guarded chunk: 64 KiB chunks keep the mlock()ed total small for small workloads. */
#define SLOTS_PER_CHUNK 64

struct free_slot {
    struct free_slot *next;
};

static pthread_mutex_t slab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct free_slot *free_list;

int secmem_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

void *secmem_alloc(size_t len)
{
    void *p = sodium_malloc(len);

    if (p != NULL)
        sodium_memzero(p, len);
    return p;
}

void secmem_free(void *p)
{
    sodium_free(p); /* sodium_free wipes, and accepts NULL */
}

/* Carve a new chunk into slots and push them on the free list.  Caller holds slab_lock. */
static int slab_grow(void)
{
    unsigned char *chunk = sodium_malloc((size_t)SLOTS_PER_CHUNK * SECMEM_SLOT_SIZE);

    if (chunk == NULL)
        return -1;
    /* sodium_malloc aligns the end of the region to the guard page; the size is a multiple of
     * the page size here, so the start is page-aligned and every slot 16-byte aligned. */
    for (size_t i = 0; i < SLOTS_PER_CHUNK; i++) {
        struct free_slot *s = (struct free_slot *)(chunk + i * SECMEM_SLOT_SIZE);
        s->next = free_list;
        free_list = s;
    }
    return 0;
}

void *secmem_slot_get(void)
{
    struct free_slot *s = NULL;

    pthread_mutex_lock(&slab_lock);
    if (free_list != NULL || slab_grow() == 0) {
        s = free_list;
        free_list = s->next;
    }
    pthread_mutex_unlock(&slab_lock);
    if (s != NULL)
        sodium_memzero(s, SECMEM_SLOT_SIZE);
    return s;
}

void secmem_slot_put(void *slot)
{
    struct free_slot *s = slot;

    if (s == NULL)
        return;
    sodium_memzero(s, SECMEM_SLOT_SIZE);
    pthread_mutex_lock(&slab_lock);
    s->next = free_list;
    free_list = s;
    pthread_mutex_unlock(&slab_lock);
}
