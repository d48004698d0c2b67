#include "keysrc.h"

#include "crypto/secmem.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

void secret_free(struct secret *s)
{
    secmem_free(s->bytes);
    s->bytes = NULL;
    s->len = 0;
}

/* Read up to `cap` bytes from fd into buf.  Returns the count, or -1 (errno set). */
static ssize_t read_all(int fd, unsigned char *buf, size_t cap)
{
    size_t got = 0;

    while (got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int open_source(const char *path, char *err, size_t errlen)
{
    int fd;

    if (strcmp(path, "-") == 0)
        return STDIN_FILENO;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return fd;
}

/* Key file: 32 raw bytes, or 64 hex digits with an optional trailing newline. */
static int read_keyfile(const char *path, struct secret *out, char *err, size_t errlen)
{
    unsigned char *raw = secmem_alloc(2 * VAULTCFG_KEYFILE_SIZE + 3);
    size_t bin_len = 0;
    ssize_t n;
    int fd;

    if (raw == NULL || (out->bytes = secmem_alloc(VAULTCFG_KEYFILE_SIZE)) == NULL) {
        snprintf(err, errlen, "out of locked memory (raise 'ulimit -l')");
        secmem_free(raw);
        return -1;
    }
    fd = open_source(path, err, errlen);
    if (fd < 0)
        goto fail_quiet;
    n = read_all(fd, raw, 2 * VAULTCFG_KEYFILE_SIZE + 3);
    if (fd != STDIN_FILENO)
        close(fd);
    if (n == VAULTCFG_KEYFILE_SIZE) {
        memcpy(out->bytes, raw, VAULTCFG_KEYFILE_SIZE);
    } else if ((n == 2 * VAULTCFG_KEYFILE_SIZE ||
                (n == 2 * VAULTCFG_KEYFILE_SIZE + 1 && raw[n - 1] == '\n')) &&
               sodium_hex2bin(out->bytes, VAULTCFG_KEYFILE_SIZE, (const char *)raw,
                              2 * VAULTCFG_KEYFILE_SIZE, NULL, &bin_len, NULL) == 0 &&
               bin_len == VAULTCFG_KEYFILE_SIZE) {
        /* hex key file */
    } else {
        snprintf(err, errlen,
                 "key file %s must hold exactly 32 bytes (make one with: "
                 "head -c 32 /dev/urandom > FILE)", path);
        goto fail_quiet;
    }
    secmem_free(raw);
    out->len = VAULTCFG_KEYFILE_SIZE;
    return 0;
fail_quiet:
    secmem_free(raw);
    secret_free(out);
    return -1;
}

/* Keep the first line of buf[0..n) (without \r\n).  Returns its length. */
static size_t first_line(unsigned char *buf, size_t n)
{
    unsigned char *nl = memchr(buf, '\n', n);
    size_t len = nl != NULL ? (size_t)(nl - buf) : n;

    if (len > 0 && buf[len - 1] == '\r')
        len--;
    sodium_memzero(buf + len, n - len);
    return len;
}

static int read_passfile(const char *path, struct secret *out, char *err, size_t errlen)
{
    ssize_t n;
    int fd = open_source(path, err, errlen);

    if (fd < 0)
        return -1;
    n = read_all(fd, out->bytes, KEYSRC_MAX_PASSPHRASE);
    if (fd != STDIN_FILENO)
        close(fd);
    if (n < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    out->len = first_line(out->bytes, (size_t)n);
    return 0;
}

/* Ask on the terminal with echo off.  Returns the length or -1. */
static ssize_t ask_tty(const char *prompt, unsigned char *buf, size_t cap, char *err,
                       size_t errlen)
{
    struct termios old, quiet;
    ssize_t n = -1;
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);

    if (fd < 0 || tcgetattr(fd, &old) != 0) {
        snprintf(err, errlen, "no terminal to ask for a passphrase: use --passphrase-file FILE "
                              "or --keyfile FILE");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    quiet.c_lflag |= ICANON;
    if (write(fd, prompt, strlen(prompt)) >= 0 && tcsetattr(fd, TCSAFLUSH, &quiet) == 0) {
        n = read(fd, buf, cap);
        tcsetattr(fd, TCSAFLUSH, &old);
        if (write(fd, "\n", 1) < 0) { /* cosmetic */ }
    }
    close(fd);
    if (n < 0)
        snprintf(err, errlen, "cannot read the passphrase from the terminal");
    else
        n = (ssize_t)first_line(buf, (size_t)n);
    return n;
}

static int read_passtty(int confirm, struct secret *out, char *err, size_t errlen)
{
    unsigned char *again;
    ssize_t n, m;
    int rc = -1;

    n = ask_tty("Passphrase: ", out->bytes, KEYSRC_MAX_PASSPHRASE, err, errlen);
    if (n < 0)
        return -1;
    out->len = (size_t)n;
    if (!confirm)
        return 0;
    again = secmem_alloc(KEYSRC_MAX_PASSPHRASE);
    if (again == NULL) {
        snprintf(err, errlen, "out of locked memory (raise 'ulimit -l')");
        return -1;
    }
    m = ask_tty("Passphrase (again): ", again, KEYSRC_MAX_PASSPHRASE, err, errlen);
    if (m >= 0 && ((size_t)m != out->len || sodium_memcmp(again, out->bytes, out->len) != 0))
        snprintf(err, errlen, "the passphrases do not match; nothing was changed");
    else if (m >= 0)
        rc = 0;
    secmem_free(again);
    return rc;
}

int keysrc_read(const struct key_source *src, int confirm, struct secret *out, char *err,
                size_t errlen)
{
    int rc;

    out->bytes = NULL;
    out->len = 0;
    if (src->kind == SLOT_KEYFILE)
        return read_keyfile(src->path, out, err, errlen);
    out->bytes = secmem_alloc(KEYSRC_MAX_PASSPHRASE);
    if (out->bytes == NULL) {
        snprintf(err, errlen, "out of locked memory (raise 'ulimit -l')");
        return -1;
    }
    rc = src->path != NULL ? read_passfile(src->path, out, err, errlen)
                           : read_passtty(confirm, out, err, errlen);
    if (rc == 0 && out->len == 0) {
        snprintf(err, errlen, "the passphrase is empty");
        rc = -1;
    }
    if (rc != 0)
        secret_free(out);
    return rc;
}
