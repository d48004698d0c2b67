/*
 * libFuzzer target: the vault configuration parser (crypto/vaultcfg.c).
 *
 * The input is configuration text.  Each input is parsed twice: as it is, and with its checksum
 * line replaced by the right one (the checksum would otherwise stop nearly every mutation before
 * the line parser: the text up to the last line that starts with "checksum ", or all of it, gets
 * a newline if it lacks one and then a correct "checksum" line).
 *
 * Invariants (abort on violation):
 *   - the result is 0 or -VAULTCFG_ECORRUPT;
 *   - on failure the error is a non-empty, NUL-terminated, one-line string within errlen; with a
 *     small error buffer (exactly sized heap buffer) the message is truncated, still terminated,
 *     and nothing is written past it;
 *   - on success the configuration is sane (format 1, a known cipher, block size 4096,
 *     1..8 slots of known kinds with KDF costs in range), vaultcfg_format() of it parses again to
 *     an identical struct, and formatting that gives the same text (a fixed point);
 *   - vaultcfg_format() into a buffer one byte too small, or a fuzzer-chosen smaller size, returns
 *     -VAULTCFG_ERANGE and writes nothing past the buffer.
 */
#include "tests/fuzz/fuzz_common.h"

#include "crypto/secmem.h"
#include "crypto/vaultcfg.h"

#include <sodium.h>

#define ERRLEN 256

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (secmem_init() != 0)
        abort();
    return 0;
}

static void check_err(const char *err, size_t errlen, const char *what)
{
    size_t n = strnlen(err, errlen);

    FUZZ_CHECK(n < errlen, "%s: the error message is not NUL-terminated within %zu bytes", what,
               errlen);
    FUZZ_CHECK(errlen < 2 || n > 0, "%s: empty error message", what);
    FUZZ_CHECK(strchr(err, '\n') == NULL, "%s: the error message holds a newline: '%s'", what,
               err);
}

static void check_sane(const struct vault_config *c)
{
    FUZZ_CHECK(c->format == VAULTCFG_FORMAT, "format %u", c->format);
    FUZZ_CHECK(content_cipher_name(c->cipher) != NULL, "cipher %u", c->cipher);
    FUZZ_CHECK(c->block_size == CONTENT_BLOCK_SIZE, "block size %u", c->block_size);
    FUZZ_CHECK(c->nslots >= 1 && c->nslots <= VAULTCFG_MAX_SLOTS, "%u slots", c->nslots);
    FUZZ_CHECK(c->admin_gid >= -1 && c->admin_gid < (int64_t)UINT32_MAX, "admin gid %lld",
               (long long)c->admin_gid);
    for (unsigned i = 0; i < c->nslots; i++) {
        const struct key_slot *s = &c->slots[i];
        if (s->kind == SLOT_KEYFILE)
            FUZZ_CHECK(s->opslimit == 0 && s->memlimit == 0, "key file slot %u has KDF costs", i);
        else
            FUZZ_CHECK(s->kind == SLOT_PASSPHRASE && s->opslimit >= crypto_pwhash_OPSLIMIT_MIN &&
                           s->opslimit <= crypto_pwhash_OPSLIMIT_MAX &&
                           s->memlimit >= crypto_pwhash_MEMLIMIT_MIN &&
                           s->memlimit <= crypto_pwhash_MEMLIMIT_MAX,
                       "slot %u: kind %d, opslimit %llu, memlimit %zu", i, (int)s->kind,
                       s->opslimit, s->memlimit);
    }
    for (unsigned i = c->nslots; i < VAULTCFG_MAX_SLOTS; i++) {
        static const struct key_slot zero;
        FUZZ_CHECK(memcmp(&c->slots[i], &zero, sizeof(zero)) == 0, "unused slot %u not zeroed",
                   i);
    }
}

static void check_same(const struct vault_config *a, const struct vault_config *b)
{
    FUZZ_CHECK(a->format == b->format && a->cipher == b->cipher &&
                   a->block_size == b->block_size && a->key_epoch == b->key_epoch &&
                   a->nslots == b->nslots && a->admin_gid == b->admin_gid,
               "round trip changed a scalar field (format %u/%u cipher %u/%u bs %u/%u epoch %u/%u "
               "slots %u/%u admin %lld/%lld)", a->format, b->format, a->cipher, b->cipher,
               a->block_size, b->block_size, a->key_epoch, b->key_epoch, a->nslots, b->nslots,
               (long long)a->admin_gid, (long long)b->admin_gid);
    FUZZ_CHECK(memcmp(a->vault_id, b->vault_id, sizeof(a->vault_id)) == 0, "vault-id changed");
    FUZZ_CHECK(memcmp(a->sign_pk, b->sign_pk, sizeof(a->sign_pk)) == 0 &&
                   memcmp(a->sign_wrapped, b->sign_wrapped, sizeof(a->sign_wrapped)) == 0,
               "signing-key changed");
    for (unsigned i = 0; i < a->nslots; i++) {
        const struct key_slot *x = &a->slots[i], *y = &b->slots[i];
        FUZZ_CHECK(x->kind == y->kind && x->opslimit == y->opslimit &&
                       x->memlimit == y->memlimit && memcmp(x->salt, y->salt, sizeof(x->salt)) == 0 &&
                       memcmp(x->wrapped, y->wrapped, sizeof(x->wrapped)) == 0,
                   "round trip changed slot %u", i);
    }
    /* parse starts from a zeroed struct: the whole struct, padding included, is the same */
    FUZZ_CHECK(memcmp(a, b, sizeof(*a)) == 0, "round trip changed the struct's bytes");
}

/* Parse `text` and check every invariant.  small_err: an error-buffer size to try too. */
static void parse_and_check(const char *text, size_t len, size_t small_err, size_t small_fmt)
{
    static struct vault_config cfg, cfg2;
    static char buf[VAULTCFG_MAX_TEXT], buf2[VAULTCFG_MAX_TEXT];
    char err[ERRLEN];
    int rc, n, n2;

    memset(err, 'X', sizeof(err));
    rc = vaultcfg_parse(text, len, &cfg, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == -VAULTCFG_ECORRUPT, "vaultcfg_parse returned %d", rc);
    if (rc != 0) {
        check_err(err, sizeof(err), "vaultcfg_parse");
        /* the same with a tiny, exactly sized error buffer */
        {
            char *e = malloc(small_err ? small_err : 1);
            FUZZ_CHECK(e != NULL, "out of memory");
            memset(e, 'X', small_err ? small_err : 1);
            rc = vaultcfg_parse(text, len, &cfg, e, small_err);
            FUZZ_CHECK(rc == -VAULTCFG_ECORRUPT, "a second parse gave %d", rc);
            if (small_err > 0) {
                check_err(e, small_err, "vaultcfg_parse (small buffer)");
                FUZZ_CHECK(strncmp(e, err, small_err - 1) == 0,
                           "the truncated message differs from the full one");
            } else {
                FUZZ_CHECK(e[0] == 'X', "errlen 0 but the error buffer was written");
            }
            free(e);
        }
        return;
    }
    check_sane(&cfg);
    n = vaultcfg_format(&cfg, buf, sizeof(buf));
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof(buf) && buf[n] == '\0' && strlen(buf) == (size_t)n,
               "vaultcfg_format of a parsed configuration returned %d", n);
    rc = vaultcfg_parse(buf, (size_t)n, &cfg2, err, sizeof(err));
    FUZZ_CHECK(rc == 0, "the formatted configuration does not parse: %s\n%s", err, buf);
    check_same(&cfg, &cfg2);
    n2 = vaultcfg_format(&cfg2, buf2, sizeof(buf2));
    FUZZ_CHECK(n2 == n && memcmp(buf, buf2, (size_t)n) == 0, "format is not a fixed point");

    /* too small output buffers: exactly n bytes (no room for the NUL), and a smaller size */
    {
        size_t sizes[2] = {(size_t)n, small_fmt % ((size_t)n + 1)};
        for (int i = 0; i < 2; i++) {
            char *b = malloc(sizes[i] ? sizes[i] : 1);
            FUZZ_CHECK(b != NULL, "out of memory");
            rc = vaultcfg_format(&cfg, b, sizes[i]);
            FUZZ_CHECK(rc == -VAULTCFG_ERANGE, "vaultcfg_format into %zu bytes (needs %d) returned "
                       "%d", sizes[i], n + 1, rc);
            free(b);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char prefix[] = "checksum ";
    size_t small_err = size ? (size_t)data[0] % 48 : 7;
    size_t small_fmt = size > 1 ? (size_t)data[1] * 131 + data[size - 1] : 0;
    size_t body = size;
    char *text;

    /* as it is, in an exactly sized buffer: the parser must never read past len */
    text = malloc(size ? size : 1);
    FUZZ_CHECK(text != NULL, "out of memory");
    memcpy(text, data, size);
    parse_and_check(text, size, small_err, small_fmt);
    free(text);

    /* with a correct checksum line */
    if (size > VAULTCFG_MAX_TEXT)
        return 0;
    {
        /* drop a final line that starts with "checksum " */
        size_t end = size;
        if (end > 0 && data[end - 1] == '\n')
            end--;
        size_t start = end;
        while (start > 0 && data[start - 1] != '\n')
            start--;
        if (end - start >= sizeof(prefix) - 1 &&
            memcmp(data + start, prefix, sizeof(prefix) - 1) == 0)
            body = start;
    }
    {
        size_t nl = body > 0 && data[body - 1] != '\n';
        size_t len = body + nl + sizeof(prefix) - 1 + 64 + 1;
        unsigned char sum[32];
        char hex[65];

        text = malloc(len);
        FUZZ_CHECK(text != NULL, "out of memory");
        memcpy(text, data, body);
        if (nl)
            text[body] = '\n';
        crypto_generichash(sum, sizeof(sum), (const unsigned char *)text, body + nl, NULL, 0);
        sodium_bin2hex(hex, sizeof(hex), sum, sizeof(sum));
        memcpy(text + body + nl, prefix, sizeof(prefix) - 1);
        memcpy(text + body + nl + sizeof(prefix) - 1, hex, 64);
        text[len - 1] = '\n';
        parse_and_check(text, len, small_err, small_fmt);
        free(text);
    }
    return 0;
}
