/*
 * secmem: guarded memory for keys.
 *
 * Every key custodyfs handles lives in memory from libsodium's sodium_malloc(): locked into RAM
 * (never swapped), surrounded by guard pages, and wiped when released.  Per-file keys are many
 * and short-lived, so they come from a slab of fixed-size slots carved out of large guarded
 * chunks instead of one sodium_malloc() (and four system calls) each.
 *
 * Invariants: a slot is zeroed when it is handed out and again when it is given back.  The slab is
 * thread-safe.  Nothing here ever sees a path or a file descriptor.
 */
#ifndef CUSTODY_SECMEM_H
#define CUSTODY_SECMEM_H

#include <stddef.h>

/* Size of one slab slot: enough for an expanded AES-256-GCM state plus a raw key, 16-aligned. */
#define SECMEM_SLOT_SIZE 1024

/*
 * secmem_init: initialise libsodium.  Call once at start-up, before any other function of
 * crypto/.  Returns 0, or -1 when libsodium cannot initialise (no randomness source).
 */
int secmem_init(void);

/*
 * secmem_alloc: one zeroed guarded buffer of `len` bytes (sodium_malloc).  Returns NULL when out
 * of memory or when the locked-memory limit is reached.  Free with secmem_free().
 */
void *secmem_alloc(size_t len);

/* secmem_free: wipe and release a buffer from secmem_alloc().  Accepts NULL. */
void secmem_free(void *p);

/*
 * secmem_slot_get: one zeroed SECMEM_SLOT_SIZE-byte slot, 16-byte aligned, from the slab.
 * Returns NULL when out of memory.  Give it back with secmem_slot_put().
 */
void *secmem_slot_get(void);

/* secmem_slot_put: wipe a slot and return it to the slab.  Accepts NULL. */
void secmem_slot_put(void *slot);

#endif
