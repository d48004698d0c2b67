/*
 * custodyctl: the administrator's tool.  One cmd_<verb>() per subcommand, one dispatch table.
 * Exit status: 0 success, 1 failure (one line on standard error says what to do), 2 usage error.
 */
#include "crypto/content.h"
#include "crypto/secmem.h"
#include "crypto/vaultcfg.h"
#include "fs/keysrc.h"
#include "fs/vault.h"

#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *synopsis;
};

static int cmd_init(int argc, char **argv);
static int cmd_info(int argc, char **argv);

static const struct command commands[] = {
    {"init", cmd_init,
     "init BACKING [--keyfile FILE | --passphrase-file FILE]\n"
     "        create a vault in the new or empty directory BACKING"},
    {"info", cmd_info, "info BACKING\n        show a vault's configuration (no key needed)"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fprintf(out, "usage: custodyctl COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %s\n", commands[i].synopsis);
    fprintf(out, "\n  custodyctl --help | --version\n"
                 "\nWithout a key option the passphrase is asked on the terminal; "
                 "'--passphrase-file -'\nreads it from standard input.\n");
}

static int failf(const char *what)
{
    fprintf(stderr, "custodyctl: %s\n", what);
    return 1;
}

static int usage_error(const char *what)
{
    fprintf(stderr, "custodyctl: %s (see custodyctl --help)\n", what);
    return EXIT_USAGE;
}

/*
 * Parse "--keyfile FILE | --passphrase-file FILE" and exactly `npos` positional arguments.
 * Returns 0, or the usage exit status.
 */
static int parse_key_args(int argc, char **argv, struct key_source *src, char **pos, int npos)
{
    static const struct option longopts[] = {
        {"keyfile", required_argument, NULL, 'k'},
        {"passphrase-file", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    int c, n = 0;

    src->kind = SLOT_PASSPHRASE;
    src->path = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        if (src->path != NULL)
            return usage_error("give either --keyfile or --passphrase-file, not both");
        src->kind = c == 'k' ? SLOT_KEYFILE : SLOT_PASSPHRASE;
        src->path = optarg;
    }
    for (; optind < argc; optind++) {
        if (n == npos)
            return usage_error("too many arguments");
        pos[n++] = argv[optind];
    }
    if (n != npos)
        return usage_error("missing argument");
    return 0;
}

static int cmd_init(int argc, char **argv)
{
    struct key_source src;
    char *backing, err[512];
    int rc = parse_key_args(argc, argv, &src, &backing, 1);

    if (rc != 0)
        return rc;
    if (vault_create(backing, &src, VAULTCFG_DEFAULT_OPSLIMIT, VAULTCFG_DEFAULT_MEMLIMIT, err,
                     sizeof(err)) != 0)
        return failf(err);
    printf("created vault %s (cipher %s); mount it with: custodyfs %s MOUNTPOINT %s\n", backing,
           content_cipher_name(content_cipher_default()), backing,
           src.kind == SLOT_KEYFILE ? "--keyfile FILE" : "");
    return 0;
}

static int cmd_info(int argc, char **argv)
{
    char id[2 * VAULTCFG_ID_SIZE + 1], err[512];
    struct vault *v;

    if (argc != 2)
        return usage_error("usage: custodyctl info BACKING");
    if (vault_open(argv[1], NULL, &v, err, sizeof(err)) != 0)
        return failf(err);
    sodium_bin2hex(id, sizeof(id), v->cfg.vault_id, sizeof(v->cfg.vault_id));
    printf("vault       %s\nvault-id    %s\nformat      %u\ncipher      %s\nblock-size  %u\n"
           "key-epoch   %u\n",
           v->backing, id, v->cfg.format, content_cipher_name(v->cfg.cipher),
           v->cfg.block_size, (unsigned)v->cfg.key_epoch);
    for (unsigned i = 0; i < v->cfg.nslots; i++) {
        const struct key_slot *s = &v->cfg.slots[i];
        if (s->kind == SLOT_PASSPHRASE)
            printf("slot %u      passphrase (Argon2id, %llu passes, %zu MiB)\n", i, s->opslimit,
                   s->memlimit >> 20);
        else
            printf("slot %u      key file\n", i);
    }
    vault_close(v);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("custodyctl %s\n", CUSTODY_VERSION);
        return 0;
    }
    if (secmem_init() != 0)
        return failf("cannot initialise libsodium");
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "custodyctl: unknown command '%s' (see custodyctl --help)\n", argv[1]);
    return EXIT_USAGE;
}
