/*
 * keysrc: where the secret that unlocks a vault comes from, and reading it.
 *
 * A vault is unlocked by a 32-byte key file or by a passphrase read from a file, from standard
 * input ("-"), or typed at the terminal with echo off.  Secrets are read straight into guarded
 * memory (crypto/secmem.h), never into argv, the environment or a log.
 */
#ifndef CUSTODY_KEYSRC_H
#define CUSTODY_KEYSRC_H

#include "crypto/vaultcfg.h"

#include <stddef.h>

#define KEYSRC_MAX_PASSPHRASE 1024

struct key_source {
    enum slot_kind kind;   /* SLOT_KEYFILE or SLOT_PASSPHRASE */
    const char *path;      /* key or passphrase file; "-" is stdin; NULL: ask on the terminal */
};

struct secret {
    unsigned char *bytes;  /* guarded memory, owned */
    size_t len;
};

/*
 * keysrc_read: read the secret from `src`.  A key file must hold exactly 32 bytes (or 64 hex
 * digits and an optional newline).  A passphrase is the first line of its file, without the line
 * end; on the terminal it is asked for once, or twice and compared when `confirm` is set.  OUT:
 * *out (release with secret_free()).  Returns 0, or -1 with a one-line reason in err[errlen]
 * that says what to do.
 */
int keysrc_read(const struct key_source *src, int confirm, struct secret *out, char *err,
                size_t errlen);

/* secret_free: wipe and release.  Accepts a zeroed struct. */
void secret_free(struct secret *s);

#endif
