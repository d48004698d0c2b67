/*
 * custodyfs: the daemon.  Parses the command line, unlocks the vault, mounts, and serves FUSE
 * requests until unmounted.  Everything that can fail for a user's reason fails here, before
 * the mount exists, with one line on standard error and exit status 1.
 */
#include "fs/fslog.h"
#include "fs/keysrc.h"
#include "fs/node.h"
#include "fs/ops.h"
#include "fs/vault.h"
#include "crypto/secmem.h"

#include <fuse_lowlevel.h>

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

struct options {
    const char *backing;
    const char *mountpoint;
    const char *keyfile;
    const char *passfile;
    int help;
    int version;
    int extra_args;
};

#define OPT(t, f) {t, offsetof(struct options, f), 1}
static const struct fuse_opt option_spec[] = {
    {"--keyfile %s", offsetof(struct options, keyfile), 0},
    {"--keyfile=%s", offsetof(struct options, keyfile), 0},
    {"keyfile=%s", offsetof(struct options, keyfile), 0},
    {"--passphrase-file %s", offsetof(struct options, passfile), 0},
    {"--passphrase-file=%s", offsetof(struct options, passfile), 0},
    {"passphrase_file=%s", offsetof(struct options, passfile), 0},
    OPT("--help", help), OPT("-h", help), OPT("--version", version), OPT("-V", version),
    FUSE_OPT_END,
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: custodyfs BACKING MOUNTPOINT [--keyfile FILE | --passphrase-file FILE]\n"
            "                 [-f] [-d] [-s] [-o OPTIONS]\n"
            "\n"
            "Mount the encrypted, access-controlled vault in BACKING (made with 'custodyctl\n"
            "init') on MOUNTPOINT.  Without a key option the passphrase is asked on the terminal.\n"
            "\n"
            "  --keyfile FILE           unlock with a 32-byte key file (-o keyfile=FILE)\n"
            "  --passphrase-file FILE   read the passphrase from FILE's first line, '-' for\n"
            "                           standard input (-o passphrase_file=FILE)\n"
            "  -f                       stay in the foreground\n"
            "  -d                       debug: foreground, print every FUSE request\n"
            "  -s                       serve requests in one thread\n"
            "  -o OPTIONS               FUSE mount options (allow_other and default_permissions\n"
            "                           are always on)\n"
            "  -h, --help               show this help\n"
            "  -V, --version            show the version\n"
            "\n"
            "Unmount with: fusermount3 -u MOUNTPOINT\n");
}

static int collect(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    struct options *o = data;

    (void)outargs;
    if (key != FUSE_OPT_KEY_NONOPT)
        return 1;
    if (o->backing == NULL)
        o->backing = arg;
    else if (o->mountpoint == NULL)
        o->mountpoint = arg;
    else
        o->extra_args = 1;
    return 0;
}

static int fail(const char *fmt, const char *a, const char *b)
{
    fputs("custodyfs: ", stderr);
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return 1;
}

/* Parse the command line.  Returns -1 to go on, else the exit status. */
static int parse_args(struct fuse_args *args, struct options *o)
{
    if (fuse_opt_parse(args, o, option_spec, collect) != 0)
        return fail("%s%s: see custodyfs --help", "invalid arguments", "");
    if (o->help) {
        usage(stdout);
        return 0;
    }
    if (o->version) {
        printf("custodyfs %s (libfuse %s)\n", CUSTODY_VERSION, fuse_pkgversion());
        return 0;
    }
    if (o->backing == NULL || o->mountpoint == NULL || o->extra_args) {
        usage(stderr);
        return 1;
    }
    if (o->keyfile != NULL && o->passfile != NULL)
        return fail("%s%s", "give either --keyfile or --passphrase-file, not both", "");
    return -1;
}

static int check_mountpoint(const char *mp)
{
    struct stat st;

    if (stat(mp, &st) != 0)
        return fail("mountpoint %s does not exist: create it with 'mkdir -p %s'", mp, mp);
    if (!S_ISDIR(st.st_mode))
        return fail("mountpoint %s is not a directory%s", mp, "");
    return 0;
}

/* No core dumps, no ptrace by others: the process holds keys. */
static void protect_process(void)
{
    struct rlimit none = {0, 0};

    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* "fsname=BACKING" with the commas and backslashes of BACKING escaped for -o. */
static int fsname_option(const char *backing, char *buf, size_t len)
{
    size_t j = (size_t)snprintf(buf, len, "fsname=");

    for (const char *p = backing; *p != '\0'; p++) {
        if (j + 3 > len)
            return -1;
        if (*p == ',' || *p == '\\')
            buf[j++] = '\\';
        buf[j++] = *p;
    }
    buf[j] = '\0';
    return 0;
}

static int add_mount_options(struct fuse_args *args, const char *backing)
{
    char fsname[2 * PATH_MAX + 16];

    if (fsname_option(backing, fsname, sizeof(fsname)) != 0)
        return -1;
    if (fuse_opt_add_arg(args, "-oallow_other,default_permissions,subtype=custodyfs") != 0 ||
        fuse_opt_add_arg(args, "-o") != 0 || fuse_opt_add_arg(args, fsname) != 0)
        return -1;
    return 0;
}

/* Mount and serve until unmounted.  Returns the exit status. */
static int serve(struct fuse_args *args, struct vault *v, const char *mountpoint)
{
    struct fuse_cmdline_opts cl;
    struct fs_state st = {.root_fd = v->root_fd, .backing = v->backing};
    struct node_table_conf nc = {.mk = v->mk, .cipher = v->cfg.cipher};
    struct fuse_loop_config *lc = NULL;
    struct fuse *fuse;
    char pid[32];
    int rc = 1;

    if (fuse_opt_add_arg(args, mountpoint) != 0 || fuse_parse_cmdline(args, &cl) != 0)
        return fail("%s%s: see custodyfs --help", "invalid FUSE options", "");
    node_table_init(&nc);
    fuse = fuse_new(args, &custody_ops, sizeof(custody_ops), &st);
    if (fuse == NULL)
        goto out_opts; /* libfuse said why */
    if (fuse_mount(fuse, cl.mountpoint) != 0)
        goto out_destroy;
    if (fuse_daemonize(cl.foreground) != 0 || fuse_set_signal_handlers(fuse_get_session(fuse)))
        goto out_unmount;
    fslog_init(cl.foreground);
    snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(v->lock_fd, 0) == 0 && pwrite(v->lock_fd, pid, strlen(pid), 0) < 0)
        fslog(LOG_WARNING, "cannot record the daemon's pid in the vault lock");
    fslog(LOG_INFO, "mounted %s on %s", v->backing, cl.mountpoint);
    if (cl.singlethread) {
        rc = fuse_loop(fuse) != 0;
    } else {
        lc = fuse_loop_cfg_create();
        fuse_loop_cfg_set_clone_fd(lc, cl.clone_fd);
        fuse_loop_cfg_set_max_threads(lc, cl.max_threads);
        fuse_loop_cfg_set_idle_threads(lc, cl.max_idle_threads);
        rc = fuse_loop_mt(fuse, lc) != 0;
        fuse_loop_cfg_destroy(lc);
    }
    fslog(LOG_INFO, "unmounted %s", cl.mountpoint);
    fuse_remove_signal_handlers(fuse_get_session(fuse));
out_unmount:
    fuse_unmount(fuse);
out_destroy:
    fuse_destroy(fuse);
out_opts:
    free(cl.mountpoint);
    return rc;
}

int main(int argc, char **argv)
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct options o = {0};
    struct key_source src;
    struct vault *v = NULL;
    char err[512];
    int rc;

    rc = parse_args(&args, &o);
    if (rc >= 0)
        goto out;
    rc = 1;
    protect_process();
    umask(0); /* modes come from the caller, already masked by the kernel */
    if (secmem_init() != 0) {
        fail("%s%s", "cannot initialise libsodium", "");
        goto out;
    }
    if (check_mountpoint(o.mountpoint) != 0)
        goto out;
    src.kind = o.keyfile != NULL ? SLOT_KEYFILE : SLOT_PASSPHRASE;
    src.path = o.keyfile != NULL ? o.keyfile : o.passfile;
    if (vault_open(o.backing, &src, &v, err, sizeof(err)) != 0 ||
        vault_lock(v, err, sizeof(err)) != 0) {
        fail("%s%s", err, "");
        goto out;
    }
    if (add_mount_options(&args, v->backing) != 0) {
        fail("%s%s", "out of memory", "");
        goto out;
    }
    rc = serve(&args, v, o.mountpoint);
out:
    vault_close(v);
    fuse_opt_free_args(&args);
    return rc;
}
