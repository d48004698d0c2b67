/*
 * custodyctl: the administrator's tool.  One cmd_<verb>() per subcommand, one dispatch table.
 * Exit status: 0 success, 1 failure (one line on standard error says what to do), 2 usage error.
 */
#include "audit/audit.h"
#include "crypto/content.h"
#include "crypto/secmem.h"
#include "crypto/vaultcfg.h"
#include "fs/keysrc.h"
#include "fs/vault.h"

#include <getopt.h>
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

static const struct command commands[] = {
    {"init", cmd_init,
     "init BACKING [--keyfile FILE | --passphrase-file FILE] [--admin-group GROUP]\n"
     "        create a vault in the new or empty directory BACKING; members of GROUP may\n"
     "        change the ACLs, owners and modes of every file (default: root only)"},
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
static int parse_key_args(int argc, char **argv, struct key_source *src, char **pos, int npos,
                          const char **admin_group)
{
    static const struct option longopts[] = {
        {"keyfile", required_argument, NULL, 'k'},
        {"passphrase-file", required_argument, NULL, 'p'},
        {"admin-group", required_argument, NULL, 'g'},
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
    const char *admin_group = NULL;
    struct key_source src;
    char *backing, err[512];
    int64_t admin_gid = -1;
    int rc = parse_key_args(argc, argv, &src, &backing, 1, &admin_group);

    if (rc != 0)
        return rc;
    if (admin_group != NULL && (admin_gid = group_id(admin_group)) < 0) {
        fprintf(stderr, "custodyctl: no group '%s': create it first (groupadd) or give a "
                        "numeric gid\n", admin_group);
        return 1;
    }
    if (vault_create(backing, &src, VAULTCFG_DEFAULT_OPSLIMIT, VAULTCFG_DEFAULT_MEMLIMIT,
                     admin_gid, err, sizeof(err)) != 0)
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

/* A JSON string; bytes that are not UTF-8 (names need not be) are written as "\\xNN". */
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
                printf("\\\\x%02x", *p);
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
