#include "vault.h"

#include "crypto/secmem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Is directory fd empty?  Returns 1, 0, or -1 (errno set). */
static int dir_is_empty(int fd)
{
    int dup_fd = dup(fd);
    DIR *d;
    struct dirent *e;
    int empty = 1;

    if (dup_fd < 0)
        return -1;
    d = fdopendir(dup_fd);
    if (d == NULL) {
        close(dup_fd);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            empty = 0;
            break;
        }
    }
    closedir(d);
    return empty;
}

/* Write `len` bytes to dirfd/name through a temporary file, fsync, rename, fsync the dir. */
static int write_file_atomic(int dirfd, const char *name, const char *data, size_t len,
                             char *err, size_t errlen)
{
    char tmp[64];
    int fd, e = 0;
    size_t off = 0;

    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    while (off < len && e == 0) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno != EINTR)
            e = errno;
        else if (n > 0)
            off += (size_t)n;
    }
    if (e == 0 && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && e == 0)
        e = errno;
    if (e == 0 && renameat(dirfd, tmp, dirfd, name) != 0)
        e = errno;
    if (e == 0)
        fsync(dirfd);
    if (e != 0) {
        unlinkat(dirfd, tmp, 0);
        snprintf(err, errlen, "cannot write the vault configuration: %s", strerror(e));
        return -1;
    }
    return 0;
}

/* Open (creating when missing) the backing directory for vault_create. */
static int create_open_backing(const char *backing, int *created, char *err, size_t errlen)
{
    int fd;

    *created = 0;
    if (mkdir(backing, 0700) == 0)
        *created = 1;
    else if (errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", backing, strerror(errno));
        return -1;
    }
    fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        snprintf(err, errlen, "%s is not a directory: give a new or empty directory", backing);
    return fd;
}

/* Build the configuration with one slot; OUT: text.  Returns its length or -1. */
static int build_config(const struct key_source *src, unsigned long long opslimit,
                        size_t memlimit, int64_t admin_gid, unsigned file_format, char *text,
                        size_t textlen, char *err, size_t errlen)
{
    struct vault_config cfg;
    struct master_key *mk = NULL;
    struct secret sec;
    int n = -1;

    if (keysrc_read(src, 1, &sec, err, errlen) != 0)
        return -1;
    if (vaultcfg_create(&cfg, content_cipher_default(), &mk) != 0 ||
        (file_format == 2 && vaultcfg_use_file_key(&cfg, mk) != 0) ||
        vaultcfg_add_slot(&cfg, mk, src->kind, sec.bytes, sec.len, opslimit, memlimit) != 0)
        snprintf(err, errlen, "out of memory deriving the key (Argon2id needs %zu MiB)",
                 memlimit >> 20);
    else if ((cfg.admin_gid = admin_gid), (n = vaultcfg_format(&cfg, text, textlen)) < 0)
        snprintf(err, errlen, "internal error: configuration too large");
    secret_free(&sec);
    master_key_free(mk);
    return n;
}

int vault_create(const char *backing, const struct key_source *src, unsigned long long opslimit,
                 size_t memlimit, int64_t admin_gid, unsigned file_format, char *err,
                 size_t errlen)
{
    char text[VAULTCFG_MAX_TEXT];
    int created, cfd = -1, n, rc = -1;
    int fd = create_open_backing(backing, &created, err, errlen);

    if (fd < 0)
        return -1;
    if (faccessat(fd, VAULT_DIR "/" VAULT_CONFIG, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
        snprintf(err, errlen, "%s is already a vault; nothing was changed", backing);
        goto out;
    }
    if (dir_is_empty(fd) != 1) {
        snprintf(err, errlen, "%s is not empty: create the vault in a new or empty directory, "
                              "mount it, and copy the data in through the mount", backing);
        goto out;
    }
    n = build_config(src, opslimit, memlimit, admin_gid, file_format, text, sizeof(text), err,
                     errlen);
    if (n < 0)
        goto out;
    if (mkdirat(fd, VAULT_DIR, 0700) != 0 ||
        (cfd = openat(fd, VAULT_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
        snprintf(err, errlen, "cannot create %s/%s: %s", backing, VAULT_DIR, strerror(errno));
        goto out;
    }
    if (write_file_atomic(cfd, VAULT_CONFIG, text, (size_t)n, err, errlen) != 0)
        goto out;
    if (fchmod(fd, 0700) != 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "cannot secure %s: %s", backing, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (rc != 0 && cfd >= 0)
        unlinkat(fd, VAULT_DIR, AT_REMOVEDIR);
    if (cfd >= 0)
        close(cfd);
    if (rc != 0 && created)
        rmdir(backing);
    close(fd);
    return rc;
}

/* Read .custody/config into text; returns its length or -1. */
static ssize_t read_config(struct vault *v, char *text, size_t cap, char *err, size_t errlen)
{
    ssize_t n;
    int fd = openat(v->custody_fd, VAULT_CONFIG, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0) {
        snprintf(err, errlen, "%s has no vault configuration (%s/%s/%s: %s): create one with "
                              "'custodyctl init' or restore the file from a backup",
                 v->backing, v->backing, VAULT_DIR, VAULT_CONFIG, strerror(errno));
        return -1;
    }
    n = read(fd, text, cap);
    close(fd);
    if (n < 0)
        snprintf(err, errlen, "cannot read the vault configuration: %s", strerror(errno));
    return n;
}

static int open_dirs(struct vault *v, char *err, size_t errlen)
{
    v->root_fd = open(v->backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (v->root_fd < 0) {
        snprintf(err, errlen, "cannot open the backing directory %s: %s", v->backing,
                 strerror(errno));
        return -1;
    }
    v->custody_fd = openat(v->root_fd, VAULT_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC |
                                                      O_NOFOLLOW);
    if (v->custody_fd < 0) {
        snprintf(err, errlen, "%s is not a custodyfs vault (no %s/): create one with "
                              "'custodyctl init %s'", v->backing, VAULT_DIR, v->backing);
        return -1;
    }
    return 0;
}

static int unlock(struct vault *v, const struct key_source *src, char *err, size_t errlen)
{
    struct secret sec;
    int rc;

    if (keysrc_read(src, 0, &sec, err, errlen) != 0)
        return -1;
    rc = vaultcfg_unlock(&v->cfg, src->kind, sec.bytes, sec.len, &v->mk);
    secret_free(&sec);
    if (rc == 0 && (rc = vaultcfg_open_file_key(&v->cfg, v->mk)) == -VAULTCFG_ECORRUPT) {
        snprintf(err, errlen, "the file key in %s/%s/%s does not open: the configuration is "
                              "corrupt; restore it from a backup", v->backing, VAULT_DIR,
                 VAULT_CONFIG);
        return -1;
    }
    if (rc == -VAULTCFG_EWRONGKEY)
        snprintf(err, errlen, "wrong %s for the vault in %s; nothing was changed",
                 src->kind == SLOT_KEYFILE ? "key file" : "passphrase", v->backing);
    else if (rc != 0)
        snprintf(err, errlen, "out of memory deriving the key (Argon2id); free memory or "
                              "raise 'ulimit -l'");
    return rc == 0 ? 0 : -1;
}

int vault_open(const char *backing, const struct key_source *src, struct vault **out, char *err,
               size_t errlen)
{
    char text[VAULTCFG_MAX_TEXT + 1], why[160];
    struct vault *v = calloc(1, sizeof(*v));
    ssize_t n;

    *out = NULL;
    if (v == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    v->root_fd = v->custody_fd = v->lock_fd = -1;
    v->backing = realpath(backing, NULL);
    if (v->backing == NULL) {
        snprintf(err, errlen, "backing directory %s: %s", backing, strerror(errno));
        goto fail;
    }
    if (open_dirs(v, err, errlen) != 0)
        goto fail;
    n = read_config(v, text, sizeof(text), err, errlen);
    if (n < 0)
        goto fail;
    if (vaultcfg_parse(text, (size_t)n, &v->cfg, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "the vault configuration %s/%s/%s is corrupt (%s): restore it "
                              "from a backup", v->backing, VAULT_DIR, VAULT_CONFIG, why);
        goto fail;
    }
    if (v->cfg.cipher == CIPHER_AES256GCM && !content_cipher_aes_available()) {
        snprintf(err, errlen, "the vault in %s uses AES-256-GCM, which this CPU cannot run in "
                              "hardware: mount it on a machine with AES-NI", v->backing);
        goto fail;
    }
    if (src != NULL && unlock(v, src, err, errlen) != 0)
        goto fail;
    *out = v;
    return 0;
fail:
    vault_close(v);
    return -1;
}

int vault_lock(struct vault *v, char *err, size_t errlen)
{
    char pid[32];
    int n;

    v->lock_fd = openat(v->custody_fd, VAULT_LOCK, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
                        0600);
    if (v->lock_fd < 0) {
        snprintf(err, errlen, "cannot open the vault lock: %s", strerror(errno));
        return -1;
    }
    if (flock(v->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        n = (int)pread(v->lock_fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        snprintf(err, errlen, "%s is already mounted by another custodyfs (pid %s): unmount it "
                              "first with fusermount3 -u", v->backing, pid[0] ? pid : "?");
        close(v->lock_fd);
        v->lock_fd = -1;
        return -1;
    }
    return 0;
}

void vault_close(struct vault *v)
{
    if (v == NULL)
        return;
    master_key_free(v->mk);
    if (v->lock_fd >= 0)
        close(v->lock_fd);
    if (v->custody_fd >= 0)
        close(v->custody_fd);
    if (v->root_fd >= 0)
        close(v->root_fd);
    free(v->backing);
    free(v);
}
