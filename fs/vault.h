/*
 * vault: a vault on disk.  BACKING/ holds the encrypted files; BACKING/.custody/ holds `config`
 * (crypto/vaultcfg.h) and `lock`, and later the audit database.
 *
 * Shared by the daemon and custodyctl.  Errors come back as -1 with one line in err[errlen] that
 * says what went wrong and what to do; nothing on disk changes on any error path.
 */
#ifndef CUSTODY_VAULT_H
#define CUSTODY_VAULT_H

#include "crypto/content.h"
#include "crypto/vaultcfg.h"
#include "fs/keysrc.h"

#include <stddef.h>
#include <stdint.h>

#define VAULT_DIR ".custody"
#define VAULT_CONFIG "config"
#define VAULT_LOCK "lock"

struct vault {
    char *backing;              /* absolute path of the backing directory (owned) */
    int root_fd;                /* the backing directory, O_DIRECTORY */
    int custody_fd;             /* BACKING/.custody, O_DIRECTORY */
    int lock_fd;                /* BACKING/.custody/lock while locked, else -1 */
    struct vault_config cfg;
    struct master_key *mk;      /* NULL until unlocked */
};

/*
 * vault_create: make a vault in `backing` (created mode 0700 if missing; an existing directory
 * must be empty and must not be a vault), with one key slot for the secret from `src`.
 * opslimit/memlimit: Argon2id costs for a passphrase slot.  admin_gid: the admin role's group,
 * or -1 for root only.  file_format: 2 (40-byte file headers, keys derived from a file-key
 * root) or 1 (128-byte headers that each wrap their file's key).  Returns 0 or -1.
 */
int vault_create(const char *backing, const struct key_source *src, unsigned long long opslimit,
                 size_t memlimit, int64_t admin_gid, unsigned file_format, char *err,
                 size_t errlen);

/*
 * vault_open: open the vault in `backing` and read its configuration.  When `src` is not NULL,
 * also read the secret and unlock the master key (and, in file format 2, the file-key root).  OUT: *out (vault_close()).  Returns 0 or -1.
 */
int vault_open(const char *backing, const struct key_source *src, struct vault **out, char *err,
               size_t errlen);

/*
 * vault_lock: take the vault's exclusive lock (one daemon per vault).  The lock is held by the
 * open file description, so it survives fork().  Returns 0, or -1 when another process holds it.
 */
int vault_lock(struct vault *v, char *err, size_t errlen);

/* vault_close: wipe the master key, close descriptors, free.  Accepts NULL. */
void vault_close(struct vault *v);

#endif
