/*
 * vaultcfg: the vault configuration (BACKING/.custody/config) and its key slots.
 *
 * The configuration is a small text file, one "name value..." line each (FORMAT.md has the
 * grammar), ending in a BLAKE2b-256 checksum line that tells accidental corruption apart from a
 * wrong key.  It names the format version, the vault's random ID, the block cipher, and holds one
 * or more key slots.  Each slot wraps the same random 256-bit master key with XChaCha20-Poly1305
 * under a key derived from a passphrase (Argon2id) or a 32-byte key file (BLAKE2b), with every
 * vault-wide field and the slot's own parameters as associated data: changing the cipher, the
 * vault ID or a KDF parameter makes every slot fail to open.
 *
 * This module parses and produces bytes; reading and writing the file is the caller's business.
 * Secrets passed in are only read; derived keys are wiped before returning.
 */
#ifndef CUSTODY_VAULTCFG_H
#define CUSTODY_VAULTCFG_H

#include "content.h"

#include <stddef.h>
#include <stdint.h>

#define VAULTCFG_FORMAT 1
#define VAULTCFG_ID_SIZE 16
#define VAULTCFG_SALT_SIZE 16
#define VAULTCFG_WRAPPED_SIZE (24 + CONTENT_KEY_SIZE + 16) /* nonce | key | tag */
#define VAULTCFG_MAX_SLOTS 8
#define VAULTCFG_MAX_TEXT 16384
#define VAULTCFG_KEYFILE_SIZE 32
#define VAULTCFG_SIGN_PK_SIZE 32
#define VAULTCFG_SIGN_SK_SIZE 64
#define VAULTCFG_SIGN_WRAPPED_SIZE (24 + VAULTCFG_SIGN_SK_SIZE + 16)

enum slot_kind {
    SLOT_PASSPHRASE = 1,
    SLOT_KEYFILE = 2,
};

struct key_slot {
    enum slot_kind kind;
    unsigned long long opslimit;     /* Argon2id, passphrase slots only */
    size_t memlimit;                 /* bytes, passphrase slots only */
    unsigned char salt[VAULTCFG_SALT_SIZE];
    unsigned char wrapped[VAULTCFG_WRAPPED_SIZE];
};

struct vault_config {
    unsigned format;
    unsigned char vault_id[VAULTCFG_ID_SIZE];
    unsigned cipher;                 /* enum content_cipher */
    unsigned block_size;             /* CONTENT_BLOCK_SIZE */
    uint32_t key_epoch;              /* epoch of the current master key */
    unsigned nslots;
    struct key_slot slots[VAULTCFG_MAX_SLOTS];
    /* The audit log's Ed25519 key: public half in the clear, secret half wrapped by the master
     * key (XChaCha20-Poly1305, associated data: domain, vault ID, public key). */
    unsigned char sign_pk[VAULTCFG_SIGN_PK_SIZE];
    unsigned char sign_wrapped[VAULTCFG_SIGN_WRAPPED_SIZE];
    /* The admin role: members may change ACLs, owners and modes of any file.  -1: root only. */
    int64_t admin_gid;
    /* The files' format: 1 (each header wraps its file's key) or 2 (keys derived from the file-key
     * root, wrapped here by the master key: XChaCha20-Poly1305, associated data: domain, vault
     * ID, cipher).  Format 2 when the configuration has a "file-key" line. */
    unsigned file_format;
    unsigned char file_key_wrapped[VAULTCFG_WRAPPED_SIZE];
};

/* Argon2id costs for a new passphrase slot (libsodium's "moderate": 3 passes, 256 MiB). */
#define VAULTCFG_DEFAULT_OPSLIMIT 3ULL
#define VAULTCFG_DEFAULT_MEMLIMIT (256u * 1024 * 1024)

/* Errors (negative). */
#define VAULTCFG_ECORRUPT 1   /* the text is not a valid configuration; errbuf says why */
#define VAULTCFG_EWRONGKEY 2  /* no slot of that kind opens with that secret */
#define VAULTCFG_ENOMEM 3     /* out of guarded memory, or Argon2id could not get its memory */
#define VAULTCFG_EFULL 4      /* every key slot is taken */
#define VAULTCFG_ERANGE 5     /* the output buffer is too small */

/*
 * vaultcfg_parse: parse and check `len` bytes of configuration text.  OUT: *cfg.  Returns 0, or
 * -VAULTCFG_ECORRUPT with a one-line reason (no newline) in err[errlen].  Never reads past len;
 * any byte sequence is safe to pass.
 */
int vaultcfg_parse(const char *text, size_t len, struct vault_config *cfg, char *err,
                   size_t errlen);

/*
 * vaultcfg_format: produce the configuration text, checksum line included, NUL-terminated.
 * Returns its length, or -VAULTCFG_ERANGE when buflen is too small (VAULTCFG_MAX_TEXT always
 * suffices).
 */
int vaultcfg_format(const struct vault_config *cfg, char *buf, size_t buflen);

/*
 * vaultcfg_create: a new configuration with a random vault ID, `cipher`, no slots, a new
 * random master key, and a new audit signing key wrapped by it.  OUT: *cfg, *mk (free with master_key_free()).  Returns 0 or
 * -VAULTCFG_ENOMEM.
 */
int vaultcfg_create(struct vault_config *cfg, unsigned cipher, struct master_key **mk);

/*
 * vaultcfg_use_file_key: turn a configuration fresh from vaultcfg_create() to file format 2:
 * make a random file-key root, wrap it under mk, and keep it in mk->file_root.  Returns 0 or
 * -VAULTCFG_ENOMEM.
 */
int vaultcfg_use_file_key(struct vault_config *cfg, struct master_key *mk);

/*
 * vaultcfg_open_file_key: for a format-2 configuration, unwrap the file-key root into
 * mk->file_root (guarded memory, freed with mk).  Does nothing for format 1.  Returns 0,
 * -VAULTCFG_ECORRUPT when it does not open under mk, or -VAULTCFG_ENOMEM.
 */
int vaultcfg_open_file_key(const struct vault_config *cfg, struct master_key *mk);

/* The layout (crypto/content.h) of the vault's files: its cipher and file format. */
unsigned vaultcfg_layout(const struct vault_config *cfg);

/*
 * vaultcfg_signing_key: unwrap the audit signing key.  OUT: sk (VAULTCFG_SIGN_SK_SIZE bytes of
 * guarded memory the caller provides).  Returns 0, or -VAULTCFG_ECORRUPT when it does not open
 * under mk or does not match sign_pk.
 */
int vaultcfg_signing_key(const struct vault_config *cfg, const struct master_key *mk,
                         unsigned char *sk);

/*
 * vaultcfg_add_slot: wrap `mk` into a new slot unlocked by `secret` (a passphrase of secret_len
 * bytes, or the VAULTCFG_KEYFILE_SIZE bytes of a key file).  opslimit/memlimit are Argon2id's
 * costs (ignored for key files).  Returns 0, -VAULTCFG_EFULL or -VAULTCFG_ENOMEM.
 */
int vaultcfg_add_slot(struct vault_config *cfg, const struct master_key *mk, enum slot_kind kind,
                      const unsigned char *secret, size_t secret_len,
                      unsigned long long opslimit, size_t memlimit);

/*
 * vaultcfg_unlock: try every slot of `kind` with `secret`.  OUT: *mk on success (caller frees
 * with master_key_free()).  Returns 0, -VAULTCFG_EWRONGKEY or -VAULTCFG_ENOMEM.
 */
int vaultcfg_unlock(const struct vault_config *cfg, enum slot_kind kind,
                    const unsigned char *secret, size_t secret_len, struct master_key **mk);

/* master_key_free: wipe and release.  Accepts NULL. */
void master_key_free(struct master_key *mk);

#endif
