/*
 * custodyfs: the daemon.  Parses the command line, unlocks the vault, mounts, and serves FUSE
 * requests until unmounted.  Everything that can fail for a user's reason fails here, before
 * the mount exists, with one line on standard error and exit status 1.
 */
#include "audit/audit.h"
#include "fs/access.h"
#include "fs/backing.h"
#include "fs/fslog.h"
#include "fs/identity.h"
#include "fs/trail.h"
#include "fs/keysrc.h"
#include "fs/node.h"
#include "fs/ops.h"
#include "fs/vault.h"
#include "fs/wire.h"
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
    const char *audit_db;
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
    {"--audit-db %s", offsetof(struct options, audit_db), 0},
    {"--audit-db=%s", offsetof(struct options, audit_db), 0},
    {"audit_db=%s", offsetof(struct options, audit_db), 0},
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
            "  --audit-db PATH          keep the audit log in PATH instead of\n"
            "                           BACKING/.custody/audit.db (-o audit_db=PATH)\n"
            "  -f                       stay in the foreground\n"
            "  -d                       debug: foreground, print every FUSE request\n"
            "  -s                       serve requests in one thread\n"
            "  -o OPTIONS               FUSE mount options (allow_other is always on; custodyfs\n"
            "                           checks permissions itself, with POSIX ACLs)\n"
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
    if (fuse_opt_add_arg(args, "-oallow_other,subtype=custodyfs") != 0 ||
        fuse_opt_add_arg(args, "-o") != 0 || fuse_opt_add_arg(args, fsname) != 0)
        return -1;
    return 0;
}

/* The audit log's settings: where it lives, and the vault's signing key. */
struct audit_setup {
    struct audit_config cfg;
    char path[PATH_MAX];
    struct caller starter;      /* who started the daemon (before it detached) */
    char options[1024];
};

/* Record "mount" or "unmount".  Returns 0 or -EIO. */
static int record_lifecycle(const struct audit_setup *a, const char *op, const char *mountpoint,
                            const char *backing)
{
    char detail[2048];

    snprintf(detail, sizeof(detail), "custodyfs %s; backing %s; mountpoint %s; options %s",
             CUSTODY_VERSION, backing, mountpoint, a->options);
    return trail_record(&a->starter, op, NULL, NULL, NULL, 0, detail);
}

/* Serve requests until unmounted.  Returns the exit status. */
static int run_loop(struct fuse *fuse, const struct fuse_cmdline_opts *cl)
{
    struct fuse_loop_config *lc;
    int rc;

    if (cl->singlethread)
        return fuse_loop(fuse) != 0;
    lc = fuse_loop_cfg_create();
    if (lc == NULL)
        return 1;
    fuse_loop_cfg_set_clone_fd(lc, cl->clone_fd);
    if (cl->max_threads > 0 && cl->max_threads <= 100000) /* else libfuse's default */
        fuse_loop_cfg_set_max_threads(lc, cl->max_threads);
    /* -1 (UINT_MAX), no limit, is libfuse's own default: handing it back only makes libfuse
     * print a warning on every mount */
    if (cl->max_idle_threads <= 100000)
        fuse_loop_cfg_set_idle_threads(lc, cl->max_idle_threads);
    rc = fuse_loop_mt(fuse, lc) != 0;
    fuse_loop_cfg_destroy(lc);
    return rc;
}

/* After the daemon detached: open the audit log for good, record the mount, serve. */
static int serve_audited(struct fuse *fuse, const struct fuse_cmdline_opts *cl, struct vault *v,
                         struct audit_setup *a)
{
    struct audit_log *log = NULL;
    char err[512];
    int rc;

    if (audit_open(&a->cfg, &log, err, sizeof(err)) != 0) {
        fslog(LOG_ERR, "%s", err);
        return 1;
    }
    if (trail_start(log) != 0 || record_lifecycle(a, "mount", cl->mountpoint, v->backing) != 0) {
        fslog(LOG_ERR, "cannot record the mount in the audit log: not serving");
        trail_stop();
        audit_close(log, 0);
        return 1;
    }
    fslog(LOG_INFO, "mounted %s on %s", v->backing, cl->mountpoint);
    rc = run_loop(fuse, cl);
    trail_stop();
    if (record_lifecycle(a, "unmount", cl->mountpoint, v->backing) != 0)
        fslog(LOG_ERR, "cannot record the unmount in the audit log");
    if (audit_close(log, 10) != 0)
        rc = 1;
    fslog(LOG_INFO, "unmounted %s", cl->mountpoint);
    return rc;
}

/*
 * Read-ahead for the new mount.  The kernel offers FUSE its default read-ahead (128 KiB) and
 * libfuse cannot ask for more, so a sequential read arrives in 128 KiB requests, each a round trip
 * through the daemon.  One request can carry 1 MiB (max_write), and the mount's read-ahead, like a
 * disk's, is a setting of its backing device info in sysfs: set it there, once the kernel has
 * taken the INIT reply (which sets it to the negotiated value).  4 MiB keeps about four 1 MiB
 * requests in flight: large reads go past the backing page cache (contentio.h), so this is the
 * only read-ahead the disk sees (1 GiB cold: 0.67-0.72 s against 1.06-1.11 s with 1 MiB and
 * 0.79-0.80 s with 8 MiB).  The mount is found in /proc/self/mountinfo (a stat of the mount point
 * would wait for this very daemon).  Returns 0, or -1 when it could not be set (reads then work
 * as before).
 */
#define READ_AHEAD_KB 4096

static void unescape_mount_path(char *s)
{
    char *out = s;

    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

static int tune_read_ahead(const char *mountpoint)
{
    char line[8192], dev[32] = "", path[PATH_MAX + 64];
    FILE *f = fopen("/proc/self/mountinfo", "re");
    int fd, ok;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        char mdev[32], mpath[PATH_MAX], *sep = strstr(line, " - ");
        if (sep == NULL || strncmp(sep + 3, "fuse", 4) != 0 ||
            sscanf(line, "%*s %*s %31s %*s %4095s", mdev, mpath) != 2)
            continue;
        unescape_mount_path(mpath);
        if (strcmp(mpath, mountpoint) == 0)
            snprintf(dev, sizeof(dev), "%s", mdev); /* the last one is the newest */
    }
    fclose(f);
    if (dev[0] == '\0')
        return -1;
    snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ok = dprintf(fd, "%d\n", READ_AHEAD_KB) > 0;
    close(fd);
    return ok ? 0 : -1;
}

static const char *tuned_mountpoint;

static void on_connected(void)
{
    if (tune_read_ahead(tuned_mountpoint) != 0)
        fslog(LOG_INFO, "cannot set the mount's read-ahead: sequential reads use 128 KiB requests");
    if (!wire_killpriv_v2())
        fslog(LOG_WARNING, "the kernel does not leave set-user-ID clearing to the daemon "
                           "(FUSE_HANDLE_KILLPRIV_V2, Linux 5.11): a write to a set-user-ID file "
                           "by a user who may not chmod it fails");
}

/* Mount and serve until unmounted.  Returns the exit status. */
static int serve(struct fuse_args *args, struct vault *v, const char *mountpoint,
                 struct audit_setup *a)
{
    struct fuse_cmdline_opts cl;
    struct fs_state st = {.root_fd = v->root_fd, .backing = v->backing};
    struct node_table_conf nc = {.mk = v->mk, .cipher = vaultcfg_layout(&v->cfg),
                                 .reserve_new = !backing_full_at_write(v->root_fd)};
    struct fuse *fuse;
    char pid[32];
    int rc = 1;

    if (fuse_opt_add_arg(args, mountpoint) != 0 || fuse_parse_cmdline(args, &cl) != 0)
        return fail("%s%s: see custodyfs --help", "invalid FUSE options", "");
    tuned_mountpoint = cl.mountpoint;
    st.connected = on_connected;
    node_table_init(&nc);
    access_set_admin_group(v->cfg.admin_gid >= 0 ? (gid_t)v->cfg.admin_gid : (gid_t)-1);
    access_set_root(v->root_fd);
    fuse = fuse_new(args, &custody_ops, sizeof(custody_ops), &st);
    if (fuse == NULL)
        goto out_opts; /* libfuse said why */
    if (fuse_mount(fuse, cl.mountpoint) != 0)
        goto out_destroy;
    if (wire_attach(fuse_get_session(fuse)) != 0)
        goto out_unmount;
    if (fuse_daemonize(cl.foreground) != 0 || fuse_set_signal_handlers(fuse_get_session(fuse)))
        goto out_unmount;
    fslog_init(cl.foreground);
    snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(v->lock_fd, 0) != 0 || pwrite(v->lock_fd, pid, strlen(pid), 0) < 0)
        fslog(LOG_WARNING, "cannot record the daemon's pid in the vault lock");
    rc = serve_audited(fuse, &cl, v, a);
    fuse_remove_signal_handlers(fuse_get_session(fuse));
out_unmount:
    fuse_unmount(fuse);
out_destroy:
    fuse_destroy(fuse);
out_opts:
    free(cl.mountpoint);
    return rc;
}

/*
 * Prepare the audit log before mounting: unwrap the signing key, and open the log once to check
 * that it belongs to this vault, verifies at its tail and can be written (the daemon detaches
 * after mounting, so this is the last moment to tell the user).  Returns 0 or 1.
 */
static int audit_prepare(struct vault *v, const struct options *o, const struct fuse_args *args,
                         struct audit_setup *a)
{
    unsigned char *sk = secmem_alloc(VAULTCFG_SIGN_SK_SIZE);
    struct audit_log *log = NULL;
    char err[512];
    size_t pos = 0;
    int n;

    if (sk == NULL)
        return fail("%s%s", "out of locked memory (raise 'ulimit -l')", "");
    if (vaultcfg_signing_key(&v->cfg, v->mk, sk) != 0) {
        secmem_free(sk);
        return fail("the audit signing key in %s/.custody/config does not open: the "
                    "configuration is corrupt%s", v->backing, "");
    }
    n = o->audit_db != NULL ? snprintf(a->path, sizeof(a->path), "%s", o->audit_db)
                            : snprintf(a->path, sizeof(a->path), "%s/%s/%s", v->backing,
                                       VAULT_DIR, AUDIT_DB_NAME);
    if (n < 0 || (size_t)n >= sizeof(a->path)) {
        secmem_free(sk);
        return fail("%s%s", "the audit log path is too long", "");
    }
    a->cfg.db_path = a->path;
    memcpy(a->cfg.vault_id, v->cfg.vault_id, AUDIT_ID_SIZE);
    a->cfg.sign_sk = sk;
    a->cfg.spool = 1;
    for (int i = 1; i < args->argc && pos < sizeof(a->options) - 1; i++) {
        n = snprintf(a->options + pos, sizeof(a->options) - pos, "%s%s", pos ? " " : "",
                     args->argv[i]);
        pos += n > 0 ? (size_t)n : 0;
    }
    caller_identify(getuid(), getgid(), getpid(), &a->starter);
    if (audit_open(&a->cfg, &log, err, sizeof(err)) != 0)
        return fail("%s: the vault stays unmounted until its audit log can be written%s", err,
                    "");
    audit_close(log, 0);
    return 0;
}

int main(int argc, char **argv)
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct options o = {0};
    struct key_source src;
    struct audit_setup audit = {0};
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
    if (audit_prepare(v, &o, &args, &audit) != 0)
        goto out;
    rc = serve(&args, v, o.mountpoint, &audit);
out:
    secmem_free((void *)audit.cfg.sign_sk);
    vault_close(v);
    free((void *)o.keyfile); /* fuse_opt_parse made copies */
    free((void *)o.passfile);
    free((void *)o.audit_db);
    fuse_opt_free_args(&args);
    return rc;
}
