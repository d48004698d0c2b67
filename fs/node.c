#include "node.h"

#include "fs/backing.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define TABLE_BUCKETS 4096u

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct node *table[TABLE_BUCKETS];
static struct node_table_conf conf;

int node_table_init(const struct node_table_conf *c)
{
    conf = *c;
    return 0;
}

const struct node_table_conf *node_conf(void)
{
    return &conf;
}

static unsigned bucket(dev_t dev, ino_t ino)
{
    uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev;

    return (unsigned)(h >> 40) % TABLE_BUCKETS;
}

static void node_free(struct node *n)
{
    content_file_free(n->cf);
    pthread_rwlock_destroy(&n->lock);
    free(n);
}

void node_table_destroy(void)
{
    pthread_mutex_lock(&table_lock);
    for (unsigned i = 0; i < TABLE_BUCKETS; i++) {
        while (table[i] != NULL) {
            struct node *n = table[i];
            table[i] = n->next;
            node_free(n);
        }
    }
    pthread_mutex_unlock(&table_lock);
}

/* Find or insert the node for (dev, ino), with a reference.  Returns NULL when out of memory. */
static struct node *table_ref(dev_t dev, ino_t ino)
{
    unsigned b = bucket(dev, ino);
    struct node *n;

    pthread_mutex_lock(&table_lock);
    for (n = table[b]; n != NULL; n = n->next)
        if (n->dev == dev && n->ino == ino)
            break;
    if (n == NULL && (n = calloc(1, sizeof(*n))) != NULL) {
        n->dev = dev;
        n->ino = ino;
        pthread_rwlock_init(&n->lock, NULL);
        n->next = table[b];
        table[b] = n;
    }
    if (n != NULL)
        n->refs++;
    pthread_mutex_unlock(&table_lock);
    return n;
}

void node_put(struct node *n)
{
    struct node **p;

    if (n == NULL)
        return;
    pthread_mutex_lock(&table_lock);
    if (--n->refs > 0) {
        pthread_mutex_unlock(&table_lock);
        return;
    }
    for (p = &table[bucket(n->dev, n->ino)]; *p != n; p = &(*p)->next)
        ;
    *p = n->next;
    pthread_mutex_unlock(&table_lock);
    node_free(n);
}

int node_ensure_header(struct node *n, int fd)
{
    unsigned char hdr[CONTENT_HEADER_SIZE];
    int rc;

    if (n->cf != NULL)
        return 0;
    if (content_header_new(conf.mk, conf.cipher, hdr, &n->cf) != 0)
        return -ENOMEM;
    rc = backing_pwrite_full(fd, hdr, content_header_size(conf.cipher), 0);
    if (rc != 0) {
        content_file_free(n->cf);
        n->cf = NULL;
    }
    return rc;
}

/* Read and authenticate the header.  Caller holds n->lock exclusively. */
static int header_load(struct node *n, int fd, int writable)
{
    unsigned char hdr[CONTENT_HEADER_SIZE];
    struct stat st;
    int valid, rc;

    if (fstat(fd, &st) != 0)
        return -errno;
    n->size = content_plain_size(conf.cipher, (uint64_t)st.st_size, &valid);
    if (!valid)
        return -EIO;
    if (st.st_size == 0)
        return writable ? node_ensure_header(n, fd) : 0;
    rc = backing_pread_full(fd, hdr, content_header_size(conf.cipher), 0);
    if (rc != 0)
        return rc;
    rc = content_header_open(conf.mk, conf.cipher, hdr, &n->cf);
    if (rc == -CONTENT_ENOMEM)
        return -ENOMEM;
    return rc == 0 ? 0 : -EIO;
}

int node_get(int fd, int writable, struct node **out)
{
    struct stat st;
    struct node *n;
    int rc = 0;

    *out = NULL;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL; /* content lives in regular files only */
    n = table_ref(st.st_dev, st.st_ino);
    if (n == NULL)
        return -ENOMEM;
    pthread_rwlock_wrlock(&n->lock);
    if (!n->loaded) {
        n->blksize = st.st_blksize > 0 ? (uint64_t)st.st_blksize : 512;
        rc = header_load(n, fd, writable);
        n->loaded = rc == 0;
    } else if (writable) {
        rc = node_ensure_header(n, fd);
    }
    pthread_rwlock_unlock(&n->lock);
    if (rc != 0) {
        node_put(n);
        return rc;
    }
    *out = n;
    return 0;
}
