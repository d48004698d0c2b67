/*
 * custodyctl: the administrator's tool.  One cmd_<verb>() per subcommand, one dispatch table.
 * Exit status: 0 success, 1 failure (one line on standard error says what to do), 2 usage error.
 */
#include "audit/audit.h"
#include "crypto/content.h"
#include "crypto/secmem.h"
#include "crypto/vaultcfg.h"
#include "fs/access.h"
#include "fs/grant.h"
#include "fs/identity.h"
#include "fs/keysrc.h"
#include "fs/vault.h"

#include <acl/libacl.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <sys/acl.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>
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
static int cmd_head(int argc, char **argv);
static int cmd_verify(int argc, char **argv);
static int cmd_log(int argc, char **argv);
static int cmd_grant(int argc, char **argv);
static int cmd_revoke(int argc, char **argv);
static int cmd_access(int argc, char **argv);
static int cmd_review(int argc, char **argv);

static const struct command commands[] = {
    {"init", cmd_init,
     "init BACKING [--keyfile FILE | --passphrase-file FILE] [--admin-group GROUP]\n"
     "            [--file-format 1|2]\n"
     "        create a vault in the new or empty directory BACKING; members of GROUP may\n"
     "        change the ACLs, owners and modes of every file (default: root only);\n"
     "        file format 2 (the default) has 40-byte file headers, format 1 128-byte ones"},
    {"info", cmd_info, "info BACKING\n        show a vault's configuration (no key needed)"},
    {"head", cmd_head,
     "head BACKING [--audit-db PATH]\n"
     "        print the audit log's latest signed head on one line, to keep elsewhere"},
    {"verify", cmd_verify,
     "verify BACKING [--head FILE] [--audit-db PATH]\n"
     "        check every record, link and signature of the audit log (no key needed);\n"
     "        with --head, also that the log still holds that head: exit 0 when all holds,\n"
     "        1 at the first bad record, 2 on a usage error"},
    {"log", cmd_log,
     "log BACKING [--format table|json|csv] [--audit-db PATH]\n"
     "        list the audit records, oldest first"},
    {"grant", cmd_grant,
     "grant BACKING PATH GROUP r|rw|rwx [--recursive] [--default] [KEY] [--audit-db PATH]\n"
     "        give the role GROUP access to PATH (relative to the vault's root); --default:\n"
     "        what is created in a directory inherits it; recorded in the audit log"},
    {"revoke", cmd_revoke,
     "revoke BACKING PATH GROUP [--recursive] [KEY] [--audit-db PATH]\n"
     "        take the role GROUP's entries off PATH (and its default ACL); recorded"},
    {"access", cmd_access,
     "access BACKING USER PATH\n"
     "        may USER (name or uid) read, write, execute PATH, and which ACL entry decides"},
    {"review", cmd_review,
     "review BACKING [--format table|json|csv]\n"
     "        the access review: for each dataset directory, which groups and users (groups\n"
     "        expanded) hold which permission"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fprintf(out, "usage: custodyctl COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %s\n", commands[i].synopsis);
    fprintf(out, "\n  custodyctl --help | --version\n"
                 "\nKEY is --keyfile FILE or --passphrase-file FILE; without one the passphrase is\n"
                 "asked on the terminal; '--passphrase-file -' reads it from standard input.\n");
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
static int parse_key_args(int argc, char **argv, struct key_source *src, char **pos, int npos,
                          const char **admin_group, const char **file_format)
{
    static const struct option longopts[] = {
        {"keyfile", required_argument, NULL, 'k'},
        {"passphrase-file", required_argument, NULL, 'p'},
        {"admin-group", required_argument, NULL, 'g'},
        {"file-format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    int c, n = 0;

    src->kind = SLOT_PASSPHRASE;
    src->path = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        if (c == 'g' && admin_group != NULL) {
            *admin_group = optarg;
            continue;
        }
        if (c == 'g')
            return usage_error("--admin-group is for init");
        if (c == 'f' && file_format != NULL) {
            *file_format = optarg;
            continue;
        }
        if (c == 'f')
            return usage_error("--file-format is for init");
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

/* A group name or number; -1 when there is no such group. */
static int64_t group_id(const char *name)
{
    struct group *g;
    char *end;
    long v = strtol(name, &end, 10);

    if (*name != '\0' && *end == '\0' && v >= 0)
        return v;
    g = getgrnam(name);
    return g != NULL ? (int64_t)g->gr_gid : -1;
}

static int cmd_init(int argc, char **argv)
{
    const char *admin_group = NULL, *format = "2";
    struct key_source src;
    char *backing, err[512];
    int64_t admin_gid = -1;
    int rc = parse_key_args(argc, argv, &src, &backing, 1, &admin_group, &format);

    if (rc != 0)
        return rc;
    if (strcmp(format, "1") != 0 && strcmp(format, "2") != 0)
        return usage_error("--file-format must be 1 or 2");
    if (admin_group != NULL && (admin_gid = group_id(admin_group)) < 0) {
        fprintf(stderr, "custodyctl: no group '%s': create it first (groupadd) or give a "
                        "numeric gid\n", admin_group);
        return 1;
    }
    if (vault_create(backing, &src, VAULTCFG_DEFAULT_OPSLIMIT, VAULTCFG_DEFAULT_MEMLIMIT,
                     admin_gid, (unsigned)(format[0] - '0'), err, sizeof(err)) != 0)
        return failf(err);
    printf("created vault %s (cipher %s, file format %s); mount it with: custodyfs %s "
           "MOUNTPOINT %s\n", backing, content_cipher_name(content_cipher_default()), format,
           backing,
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
           "key-epoch   %u\nfile-format %u (%zu-byte file headers)\n",
           v->backing, id, v->cfg.format, content_cipher_name(v->cfg.cipher),
           v->cfg.block_size, (unsigned)v->cfg.key_epoch, v->cfg.file_format,
           content_header_size(vaultcfg_layout(&v->cfg)));
    if (v->cfg.admin_gid >= 0)
        printf("admin-group %lld\n", (long long)v->cfg.admin_gid);
    else
        printf("admin-group (root only)\n");
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

/* ---- the audit log ---- */

/* Options shared by the audit commands.  */
struct audit_args {
    const char *backing;
    const char *audit_db;
    const char *head_file;
    const char *format;
    char db_path[PATH_MAX];
    struct vault *v;
};

/* Parse BACKING and the options the command allows; open the vault (no key). */
static int audit_args_parse(int argc, char **argv, int allow_head, int allow_format,
                            struct audit_args *a)
{
    static const struct option longopts[] = {
        {"audit-db", required_argument, NULL, 'a'},
        {"head", required_argument, NULL, 'H'},
        {"format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    char err[512];
    int c, n;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'a')
            a->audit_db = optarg;
        else if (c == 'H' && allow_head)
            a->head_file = optarg;
        else if (c == 'f' && allow_format)
            a->format = optarg;
        else
            return usage_error(c == '?' ? "unknown option" : "option not valid here");
    }
    if (optind + 1 != argc)
        return usage_error(optind == argc ? "missing BACKING" : "too many arguments");
    a->backing = argv[optind];
    if (vault_open(a->backing, NULL, &a->v, err, sizeof(err)) != 0)
        return failf(err);
    n = a->audit_db != NULL
            ? snprintf(a->db_path, sizeof(a->db_path), "%s", a->audit_db)
            : snprintf(a->db_path, sizeof(a->db_path), "%s/%s/%s", a->v->backing, VAULT_DIR,
                       AUDIT_DB_NAME);
    if (n < 0 || (size_t)n >= sizeof(a->db_path)) {
        vault_close(a->v);
        return failf("the audit log path is too long");
    }
    /* a mounted vault commits records in batches: include those of operations already done */
    audit_settle(a->db_path, 1000);
    return 0;
}

static int cmd_head(int argc, char **argv)
{
    struct audit_args a = {0};
    struct audit_head h;
    char line[AUDIT_HEAD_LINE_MAX], err[512];
    int rc = audit_args_parse(argc, argv, 0, 0, &a);

    if (rc != 0)
        return rc;
    rc = audit_latest_head(a.db_path, a.v->cfg.sign_pk, &h, err, sizeof(err));
    if (rc > 0 && (memcmp(h.vault_id, a.v->cfg.vault_id, AUDIT_ID_SIZE) != 0 ||
                   !audit_head_check_sig(&h)))
        rc = -2;
    vault_close(a.v);
    if (rc == -2)
        return failf("the newest head of the audit log is not validly signed by this vault: "
                     "run 'custodyctl verify' and keep the log as evidence");
    if (rc < 0)
        return failf(err);
    if (rc == 0)
        return failf("the audit log has no signed head yet: mount the vault once");
    audit_head_format(&h, line, sizeof(line));
    printf("%s\n", line);
    return 0;
}

/* Progress bar on standard error, for a terminal only. */
static void progress_bar(int64_t done, int64_t total, void *arg)
{
    int width = 40, filled;

    (void)arg;
    if (total <= 0)
        return;
    filled = (int)(done * width / total);
    fprintf(stderr, "\rverifying [%.*s%*s] %3d%% %" PRId64 "/%" PRId64, filled,
            "########################################", width - filled, "",
            (int)(done * 100 / total), done, total);
    if (done >= total)
        fputc('\n', stderr);
}

static int read_head_file(const char *path, struct audit_head *h)
{
    char line[AUDIT_HEAD_LINE_MAX + 2];
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    int rc = -1;

    if (f == NULL)
        return -1;
    if (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        rc = audit_head_parse(line, h);
    }
    if (f != stdin)
        fclose(f);
    return rc;
}

static int cmd_verify(int argc, char **argv)
{
    struct audit_verify_result res;
    struct audit_args a = {0};
    struct audit_head anchor;
    int rc = audit_args_parse(argc, argv, 1, 0, &a);

    if (rc != 0)
        return rc;
    if (a.head_file != NULL && read_head_file(a.head_file, &anchor) != 0) {
        vault_close(a.v);
        fprintf(stderr, "custodyctl: %s does not hold a head line from 'custodyctl head'\n",
                a.head_file);
        return EXIT_USAGE;
    }
    rc = audit_verify(a.db_path, a.v->cfg.vault_id, a.v->cfg.sign_pk,
                      a.head_file != NULL ? &anchor : NULL, isatty(2) ? progress_bar : NULL,
                      NULL, &res);
    vault_close(a.v);
    if (rc < 0)
        return failf(res.why);
    if (rc > 0) {
        fprintf(stderr, "custodyctl: audit log FAILS verification at record %" PRId64 ": %s\n",
                res.bad_seq, res.why);
        return 1;
    }
    printf("audit log verified: %s", res.why);
    if (res.unsigned_tail > 0)
        printf("; the last %" PRId64 " records are not signed yet (the daemon is running, or "
               "was stopped without unmounting)", res.unsigned_tail);
    printf("\n");
    return 0;
}

/* RFC 3339 UTC with nanoseconds. */
static void format_time(int64_t ns, char *buf, size_t len)
{
    time_t secs = (time_t)(ns / 1000000000);
    struct tm tm;
    char base[32];

    gmtime_r(&secs, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%09" PRId64 "Z", base, ns % 1000000000);
}

/* Length of the valid UTF-8 sequence at p (1 to 4), or 0 when it is not one. */
static int utf8_len(const unsigned char *p)
{
    int n = p[0] < 0x80 ? 1 : (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 :
            (p[0] & 0xf8) == 0xf0 ? 4 : 0;

    if (n == 2 && p[0] < 0xc2)
        return 0; /* overlong */
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* A JSON string; a byte that is not UTF-8 (names need not be) is written as "\\udcNN", as
 * Python's surrogateescape does: valid JSON, and no UTF-8 text maps to it. */
static void json_str(const char *key, const char *s, int last)
{
    printf("\"%s\":", key);
    if (s == NULL) {
        printf("null");
    } else {
        putchar('"');
        for (const unsigned char *p = (const unsigned char *)s; *p;) {
            int n = utf8_len(p);
            if (*p == '"' || *p == '\\')
                printf("\\%c", *p);
            else if (*p < 0x20)
                printf("\\u%04x", *p);
            else if (n == 0)
                printf("\\udc%02x", *p); /* a lone surrogate: no UTF-8 name maps to it */
            else
                fwrite(p, 1, (size_t)n, stdout);
            p += n > 0 ? n : 1;
        }
        putchar('"');
    }
    if (!last)
        putchar(',');
}

static void json_int(const char *key, int64_t v)
{
    if (v == AUDIT_NONE)
        printf("\"%s\":null,", key);
    else
        printf("\"%s\":%" PRId64 ",", key, v);
}

/* "0-4096,8192-12288" as [[0,4096],[8192,12288]]. */
static void json_ranges(const char *r)
{
    unsigned long long s, e;
    int n, first = 1;

    printf("\"ranges\":");
    if (r == NULL) {
        printf("null,");
        return;
    }
    putchar('[');
    while (sscanf(r, "%llu-%llu%n", &s, &e, &n) == 2) {
        printf("%s[%llu,%llu]", first ? "" : ",", s, e);
        first = 0;
        r += n;
        if (*r == ',')
            r++;
    }
    printf("],");
}

static void csv_field(const char *s, int last)
{
    if (s != NULL && strpbrk(s, ",\"\n\r") != NULL) {
        putchar('"');
        for (const char *p = s; *p; p++) {
            if (*p == '"')
                putchar('"');
            putchar(*p);
        }
        putchar('"');
    } else if (s != NULL) {
        fputs(s, stdout);
    }
    putchar(last ? '\n' : ',');
}

static const char *int_text(int64_t v, char *buf, size_t len)
{
    if (v == AUDIT_NONE)
        return NULL;
    snprintf(buf, len, "%" PRId64, v);
    return buf;
}

enum log_format { FMT_TABLE, FMT_JSON, FMT_CSV };

static int print_record(const struct audit_record *r, void *arg)
{
    enum log_format fmt = *(enum log_format *)arg;
    char t[48], hash[2 * AUDIT_HASH_SIZE + 1], b[7][24];

    format_time(r->time_ns, t, sizeof(t));
    sodium_bin2hex(hash, sizeof(hash), r->hash, AUDIT_HASH_SIZE);
    if (fmt == FMT_JSON) {
        printf("{\"seq\":%" PRId64 ",", r->seq);
        json_str("time", t, 0);
        json_int("uid", r->uid);
        json_str("user", r->user, 0);
        json_int("gid", r->gid);
        json_int("pid", r->pid);
        json_int("ppid", r->ppid);
        json_int("pstart", r->pstart);
        json_str("process", r->process, 0);
        json_str("exe", r->exe, 0);
        json_str("op", r->op, 0);
        json_str("path", r->path, 0);
        json_str("path2", r->path2, 0);
        json_str("file_id", r->file_id, 0);
        json_str("result", r->result, 0);
        json_int("bytes", r->bytes);
        json_ranges(r->ranges);
        json_str("detail", r->detail, 0);
        json_str("hash", hash, 1);
        printf("}\n");
    } else if (fmt == FMT_CSV) {
        csv_field(int_text(r->seq, b[0], sizeof(b[0])), 0);
        csv_field(t, 0);
        csv_field(int_text(r->uid, b[1], sizeof(b[1])), 0);
        csv_field(r->user, 0);
        csv_field(int_text(r->gid, b[2], sizeof(b[2])), 0);
        csv_field(int_text(r->pid, b[3], sizeof(b[3])), 0);
        csv_field(int_text(r->ppid, b[4], sizeof(b[4])), 0);
        csv_field(int_text(r->pstart, b[5], sizeof(b[5])), 0);
        csv_field(r->process, 0);
        csv_field(r->exe, 0);
        csv_field(r->op, 0);
        csv_field(r->path, 0);
        csv_field(r->path2, 0);
        csv_field(r->file_id, 0);
        csv_field(r->result, 0);
        csv_field(int_text(r->bytes, b[6], sizeof(b[6])), 0);
        csv_field(r->ranges, 0);
        csv_field(r->detail, 0);
        csv_field(hash, 1);
    } else {
        printf("%-8" PRId64 " %.23sZ %-10s %-7" PRId64 " %-15s %-17s %-8s %s%s%s%s%s%s\n",
               r->seq, t, r->user != NULL ? r->user : "-", r->pid == AUDIT_NONE ? 0 : r->pid,
               r->process != NULL ? r->process : "-", r->op, r->result,
               r->path != NULL ? r->path : "", r->path2 != NULL ? " -> " : "",
               r->path2 != NULL ? r->path2 : "", r->bytes != AUDIT_NONE ? " " : "",
               r->bytes != AUDIT_NONE ? int_text(r->bytes, b[0], sizeof(b[0])) : "",
               r->bytes != AUDIT_NONE ? " bytes" : "");
    }
    return ferror(stdout) ? -1 : 0;
}

static int cmd_log(int argc, char **argv)
{
    struct audit_args a = {0};
    enum log_format fmt = FMT_TABLE;
    char err[512];
    int rc = audit_args_parse(argc, argv, 0, 1, &a);

    if (rc != 0)
        return rc;
    if (a.format != NULL && strcmp(a.format, "json") == 0)
        fmt = FMT_JSON;
    else if (a.format != NULL && strcmp(a.format, "csv") == 0)
        fmt = FMT_CSV;
    else if (a.format != NULL && strcmp(a.format, "table") != 0) {
        vault_close(a.v);
        return usage_error("--format takes table, json or csv");
    }
    if (fmt == FMT_CSV)
        printf("seq,time,uid,user,gid,pid,ppid,pstart,process,exe,op,path,path2,file_id,result,"
               "bytes,ranges,detail,hash\n");
    else if (fmt == FMT_TABLE)
        printf("%-8s %-24s %-10s %-7s %-15s %-17s %-8s %s\n", "SEQ", "TIME (UTC)", "USER", "PID",
               "PROCESS", "OP", "RESULT", "PATH");
    rc = audit_foreach(a.db_path, print_record, &fmt, err, sizeof(err));
    vault_close(a.v);
    if (rc != 0)
        return failf(err);
    return fflush(stdout) == 0 ? 0 : failf("cannot write the listing");
}

/* ---- access control ---- */

struct acl_args {
    const char *pos[4];
    int npos;
    int recursive, deflt;
    const char *format;
    const char *audit_db;
    struct key_source src;
};

/* Parse positionals (exactly `npos`) and the access-control options.  0 or usage status. */
static int acl_args_parse(int argc, char **argv, int npos, struct acl_args *a)
{
    static const struct option longopts[] = {
        {"recursive", no_argument, NULL, 'r'},
        {"default", no_argument, NULL, 'd'},
        {"format", required_argument, NULL, 'f'},
        {"audit-db", required_argument, NULL, 'a'},
        {"keyfile", required_argument, NULL, 'k'},
        {"passphrase-file", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    int c;

    a->src.kind = SLOT_PASSPHRASE;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'r': a->recursive = 1; break;
        case 'd': a->deflt = 1; break;
        case 'f': a->format = optarg; break;
        case 'a': a->audit_db = optarg; break;
        case 'k':
        case 'p':
            if (a->src.path != NULL)
                return usage_error("give either --keyfile or --passphrase-file, not both");
            a->src.kind = c == 'k' ? SLOT_KEYFILE : SLOT_PASSPHRASE;
            a->src.path = optarg;
            break;
        default: return EXIT_USAGE;
        }
    }
    for (; optind < argc; optind++) {
        if (a->npos == npos)
            return usage_error("too many arguments");
        a->pos[a->npos++] = argv[optind];
    }
    return a->npos == npos ? 0 : usage_error("missing argument");
}

/* "r", "rw", "rwx", any mix of r, w, x: the bits, or -1. */
static int parse_perms(const char *s)
{
    int bits = 0;

    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        int b = *s == 'r' ? 4 : *s == 'w' ? 2 : *s == 'x' ? 1 : 0;
        if (b == 0 || (bits & b))
            return -1;
        bits |= b;
    }
    return bits;
}

struct change_ctx {
    struct audit_log *log;
    struct caller who;
    const char *verb;
    int changed;
};

/* Record one ACL change the way a change through the mount is recorded. */
static int record_change(const char *path, const char *which, const char *before,
                         const char *after, void *arg)
{
    struct change_ctx *cx = arg;
    struct audit_record r = {0};
    char detail[2400];

    snprintf(detail, sizeof(detail), "name=system.posix_acl_%s old=%s new=%s (%s)", which, before,
             after, cx->verb);
    r.uid = cx->who.uid;
    r.gid = cx->who.gid;
    r.pid = cx->who.pid;
    r.ppid = cx->who.ppid;
    r.pstart = cx->who.pstart;
    r.user = cx->who.user;
    r.process = cx->who.process;
    r.exe = cx->who.exe[0] ? cx->who.exe : NULL;
    r.op = "setxattr";
    r.path = path;
    r.result = "ok";
    r.bytes = AUDIT_NONE;
    r.detail = detail;
    cx->changed++;
    return audit_append(cx->log, &r) == 0 ? 0 : -EIO;
}

/* Open the vault with its key and its audit log for writing. */
static int open_audited(struct acl_args *a, struct vault **v, struct audit_log **log)
{
    unsigned char *sk = NULL;
    struct audit_config cfg = {0};
    char err[512], path[PATH_MAX];
    int rc = 1;

    if (vault_open(a->pos[0], &a->src, v, err, sizeof(err)) != 0)
        return failf(err);
    sk = secmem_alloc(VAULTCFG_SIGN_SK_SIZE);
    if (sk == NULL || vaultcfg_signing_key(&(*v)->cfg, (*v)->mk, sk) != 0) {
        failf("the audit signing key does not open: the configuration is corrupt");
        goto out;
    }
    if (a->audit_db != NULL)
        snprintf(path, sizeof(path), "%s", a->audit_db);
    else
        snprintf(path, sizeof(path), "%s/%s/%s", (*v)->backing, VAULT_DIR, AUDIT_DB_NAME);
    cfg.db_path = path;
    memcpy(cfg.vault_id, (*v)->cfg.vault_id, AUDIT_ID_SIZE);
    cfg.sign_sk = sk;
    cfg.spool = 1; /* while the daemon runs it holds the spool, and records commit at once */
    if (audit_open(&cfg, log, err, sizeof(err)) != 0) {
        fprintf(stderr, "custodyctl: %s: nothing was changed\n", err);
        goto out;
    }
    rc = 0;
out:
    secmem_free(sk);
    if (rc != 0) {
        vault_close(*v);
        *v = NULL;
    }
    return rc;
}

static int change_acl(int argc, char **argv, int revoke)
{
    struct acl_args a = {0};
    struct change_ctx cx = {0};
    struct vault *v = NULL;
    char err[512], verb[256];
    int64_t gid;
    int perms = -1, rc = acl_args_parse(argc, argv, revoke ? 3 : 4, &a);

    if (rc != 0)
        return rc;
    if (!revoke && (perms = parse_perms(a.pos[3])) < 0)
        return usage_error("permissions are r, rw or rwx");
    if ((gid = group_id(a.pos[2])) < 0) {
        fprintf(stderr, "custodyctl: no group '%s': create it first (groupadd) or give a "
                        "numeric gid\n", a.pos[2]);
        return 1;
    }
    if (open_audited(&a, &v, &cx.log) != 0)
        return 1;
    caller_identify(getuid(), getgid(), getpid(), &cx.who);
    snprintf(verb, sizeof(verb), "custodyctl %s %s%s%s", revoke ? "revoke" : "grant", a.pos[2],
             revoke ? "" : " ", revoke ? "" : a.pos[3]);
    cx.verb = verb;
    rc = grant_set(v->root_fd, a.pos[1], (gid_t)gid, perms,
                   (a.recursive ? GRANT_RECURSIVE : 0) | (a.deflt ? GRANT_DEFAULT : 0),
                   record_change, &cx, err, sizeof(err));
    if (audit_close(cx.log, 10) != 0 && rc == 0)
        rc = -EIO;
    vault_close(v);
    if (rc != 0)
        return failf(rc == -EIO ? "the change could not be recorded in the audit log" : err);
    printf("%s: %d ACL%s changed\n", verb, cx.changed, cx.changed == 1 ? "" : "s");
    return 0;
}

static int cmd_grant(int argc, char **argv)
{
    return change_acl(argc, argv, 0);
}

static int cmd_revoke(int argc, char **argv)
{
    return change_acl(argc, argv, 1);
}

/* Credentials of a user from the user database (name or uid). */
static int user_cred(const char *who, struct cred *c, char *name, size_t len)
{
    struct passwd *pw = getpwnam(who);
    gid_t groups[ACCESS_MAX_GROUPS];
    int n = ACCESS_MAX_GROUPS;
    char *end;
    long uid;

    if (pw == NULL) {
        uid = strtol(who, &end, 10);
        if (*who == '\0' || *end != '\0' || uid < 0)
            return -1;
        pw = getpwuid((uid_t)uid);
        memset(c, 0, sizeof(*c));
        c->uid = (uid_t)uid;
        c->gid = pw != NULL ? pw->pw_gid : (gid_t)uid;
        snprintf(name, len, "%s", pw != NULL ? pw->pw_name : who);
    } else {
        memset(c, 0, sizeof(*c));
        c->uid = pw->pw_uid;
        c->gid = pw->pw_gid;
        snprintf(name, len, "%s", pw->pw_name);
    }
    if (pw != NULL && getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) >= 0) {
        memcpy(c->groups, groups, (size_t)n * sizeof(gid_t));
        c->ngroups = n;
    }
    return 0;
}

static const char *perm_word(int want)
{
    return want == ACCESS_R ? "read" : want == ACCESS_W ? "write" : "execute";
}

static int cmd_access(int argc, char **argv)
{
    struct acl_args a = {0};
    struct cred cr;
    struct stat st;
    struct vault *v = NULL;
    char err[512], name[64], why[64];
    const char *leaf;
    int rc = acl_args_parse(argc, argv, 3, &a), dfd, fd;

    if (rc != 0)
        return rc;
    if (user_cred(a.pos[1], &cr, name, sizeof(name)) != 0) {
        fprintf(stderr, "custodyctl: no user '%s'\n", a.pos[1]);
        return 1;
    }
    if (vault_open(a.pos[0], NULL, &v, err, sizeof(err)) != 0)
        return failf(err);
    access_set_root(v->root_fd);
    access_set_admin_group(v->cfg.admin_gid >= 0 ? (gid_t)v->cfg.admin_gid : (gid_t)-1);
    cr.admin = cr.uid == 0 || (v->cfg.admin_gid >= 0 && cred_in_group(&cr, (gid_t)v->cfg.admin_gid));
    printf("%s (uid %lld) on %s%s:\n", name, (long long)cr.uid, a.pos[2][0] == '/' ? "" : "/",
           a.pos[2]);
    dfd = access_parent(&cr, v->root_fd, a.pos[2], &leaf);
    if (dfd < 0) {
        printf("  cannot reach it: %s (search permission on a directory on the way)\n",
               strerror(-dfd));
        vault_close(v);
        return 0;
    }
    fd = openat(dfd, leaf, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (dfd != v->root_fd)
        close(dfd);
    if (fd < 0 || fstat(fd, &st) != 0) {
        vault_close(v);
        return failf("no such file or directory in the vault");
    }
    if (access_is_root(&st))
        access_root_stat(v->root_fd, &st);
    for (int want = ACCESS_R; want >= ACCESS_X; want >>= 1) {
        rc = access_check(&cr, fd, &st, want, why, sizeof(why));
        printf("  %-8s %-8s (decided by %s)\n", perm_word(want), rc == 0 ? "allowed" : "denied",
               why);
    }
    close(fd);
    vault_close(v);
    return 0;
}

/* ---- the access review ---- */

struct review {
    enum log_format fmt;
    const char *dataset;
};

static void perm_text(int bits, char out[4])
{
    out[0] = (bits & 4) ? 'r' : '-';
    out[1] = (bits & 2) ? 'w' : '-';
    out[2] = (bits & 1) ? 'x' : '-';
    out[3] = '\0';
}

static void review_row(const struct review *rv, const char *kind, const char *name, int bits,
                       const char *via)
{
    char p[4];

    perm_text(bits, p);
    if (rv->fmt == FMT_JSON) {
        putchar('{');
        json_str("dataset", rv->dataset, 0);
        json_str("kind", kind, 0);
        json_str("name", name, 0);
        json_str("permissions", p, 0);
        json_str("via", via, 1);
        printf("}\n");
    } else if (rv->fmt == FMT_CSV) {
        csv_field(rv->dataset, 0);
        csv_field(kind, 0);
        csv_field(name, 0);
        csv_field(p, 0);
        csv_field(via, 1);
    } else {
        printf("%-24s %-6s %-20s %-4s %s\n", rv->dataset, kind, name, p, via);
    }
}

static void user_name(uid_t uid, char *buf, size_t len)
{
    struct passwd *pw = getpwuid(uid);

    if (pw != NULL)
        snprintf(buf, len, "%s", pw->pw_name);
    else
        snprintf(buf, len, "%lld", (long long)uid);
}

static int in_list(char **list, const char *name)
{
    for (; list != NULL && *list != NULL; list++)
        if (strcmp(*list, name) == 0)
            return 1;
    return 0;
}

/* A group's row and one row per member (listed members and users whose primary group it is). */
static void review_group(const struct review *rv, gid_t gid, int bits, const char *how)
{
    struct group *g = getgrgid(gid);
    char gname[64], via[96];
    struct passwd *pw;

    snprintf(gname, sizeof(gname), "%s", g != NULL ? g->gr_name : "");
    if (gname[0] == '\0')
        snprintf(gname, sizeof(gname), "%lld", (long long)gid);
    review_row(rv, "group", gname, bits, how);
    snprintf(via, sizeof(via), "group %s", gname);
    if (g != NULL)
        for (char **m = g->gr_mem; *m != NULL; m++)
            review_row(rv, "user", *m, bits, via);
    setpwent();
    while ((pw = getpwent()) != NULL)
        if (pw->pw_gid == gid && (g == NULL || !in_list(g->gr_mem, pw->pw_name)))
            review_row(rv, "user", pw->pw_name, bits, via);
    endpwent();
}

static int entry_bits(acl_entry_t e)
{
    acl_permset_t ps;

    if (acl_get_permset(e, &ps) != 0)
        return 0;
    return (acl_get_perm(ps, ACL_READ) == 1 ? 4 : 0) | (acl_get_perm(ps, ACL_WRITE) == 1 ? 2 : 0) |
           (acl_get_perm(ps, ACL_EXECUTE) == 1 ? 1 : 0);
}

/* The rows of one dataset directory, open as fd. */
static void review_dataset(const struct review *rv, int fd, const struct stat *st)
{
    char proc[64], name[64];
    acl_entry_t e;
    acl_tag_t tag;
    int mask = 7, r;
    acl_t acl;

    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    acl = acl_get_file(proc, ACL_TYPE_ACCESS);
    if (acl == NULL)
        return;
    for (r = acl_get_entry(acl, ACL_FIRST_ENTRY, &e); r == 1;
         r = acl_get_entry(acl, ACL_NEXT_ENTRY, &e))
        if (acl_get_tag_type(e, &tag) == 0 && tag == ACL_MASK)
            mask = entry_bits(e);
    for (r = acl_get_entry(acl, ACL_FIRST_ENTRY, &e); r == 1;
         r = acl_get_entry(acl, ACL_NEXT_ENTRY, &e)) {
        void *q;
        if (acl_get_tag_type(e, &tag) != 0)
            continue;
        switch (tag) {
        case ACL_USER_OBJ:
            user_name(st->st_uid, name, sizeof(name));
            review_row(rv, "user", name, entry_bits(e), "owner");
            break;
        case ACL_USER:
            q = acl_get_qualifier(e);
            if (q != NULL)
                user_name(*(uid_t *)q, name, sizeof(name));
            acl_free(q);
            review_row(rv, "user", name, entry_bits(e) & mask, "named user");
            break;
        case ACL_GROUP_OBJ:
            review_group(rv, st->st_gid, entry_bits(e) & mask, "owning group");
            break;
        case ACL_GROUP:
            q = acl_get_qualifier(e);
            if (q != NULL)
                review_group(rv, *(gid_t *)q, entry_bits(e) & mask, "named group");
            acl_free(q);
            break;
        case ACL_OTHER:
            review_row(rv, "other", "everyone else", entry_bits(e), "other");
            break;
        default:
            break;
        }
    }
    acl_free(acl);
}

static int cmd_review(int argc, char **argv)
{
    struct acl_args a = {0};
    struct review rv = {FMT_TABLE, NULL};
    struct vault *v = NULL;
    struct dirent *de;
    char err[512], ds[PATH_MAX];
    int rc = acl_args_parse(argc, argv, 1, &a), dfd;
    DIR *d;

    if (rc != 0)
        return rc;
    if (a.format != NULL && strcmp(a.format, "json") == 0)
        rv.fmt = FMT_JSON;
    else if (a.format != NULL && strcmp(a.format, "csv") == 0)
        rv.fmt = FMT_CSV;
    else if (a.format != NULL && strcmp(a.format, "table") != 0)
        return usage_error("--format takes table, json or csv");
    if (vault_open(a.pos[0], NULL, &v, err, sizeof(err)) != 0)
        return failf(err);
    dfd = openat(v->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d == NULL) {
        vault_close(v);
        return failf("cannot list the vault");
    }
    if (rv.fmt == FMT_CSV)
        printf("dataset,kind,name,permissions,via\n");
    else if (rv.fmt == FMT_TABLE)
        printf("%-24s %-6s %-20s %-4s %s\n", "DATASET", "KIND", "NAME", "PERM", "VIA");
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        int fd;
        if (de->d_name[0] == '.' &&
            (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
             strcmp(de->d_name, VAULT_DIR) == 0 || strncmp(de->d_name, ".fuse_hidden", 12) == 0))
            continue;
        fd = openat(v->root_fd, de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
            snprintf(ds, sizeof(ds), "/%s", de->d_name);
            rv.dataset = ds;
            review_dataset(&rv, fd, &st);
        }
        close(fd);
    }
    closedir(d);
    vault_close(v);
    return fflush(stdout) == 0 ? 0 : failf("cannot write the review");
}
