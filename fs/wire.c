/*
 * wire: FUSE device I/O that adds FUSE_HANDLE_KILLPRIV_V2 to the INIT reply (see wire.h).
 *
 * The INIT request is the first the kernel sends on a new connection, and it is answered before
 * any other.  read() notes its unique id when the kernel offers the flag; writev() of the reply
 * with that id sets the flag in a copy of the reply.  read() also notes the opcode and node of
 * every request, per thread, for wire_attr_changed(); that and one load are all a request costs.
 */
#define FUSE_USE_VERSION 314
#include "wire.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static _Atomic uint64_t init_unique;  /* the INIT that offered the flag; 0: none pending */
static _Atomic int init_done;          /* the INIT reply has been written */
static _Atomic int killpriv_v2;        /* ... and it took the flag */
static struct fuse_session *session;

/* The request this thread serves: libfuse's loops read a request and serve it on one thread. */
static _Thread_local uint32_t req_opcode;
static _Thread_local uint64_t req_nodeid;

static ssize_t wire_read(int fd, void *buf, size_t len, void *userdata)
{
    ssize_t n = read(fd, buf, len);
    const struct fuse_in_header *in = buf;
    const struct fuse_init_in *arg = (const void *)(in + 1);

    (void)userdata;
    if (n < (ssize_t)sizeof(*in))
        return n;
    req_opcode = in->opcode;
    req_nodeid = in->nodeid;
    if (atomic_load_explicit(&init_done, memory_order_relaxed))
        return n;
    if (in->opcode == FUSE_INIT &&
        (size_t)n >= sizeof(*in) + offsetof(struct fuse_init_in, flags) + sizeof(arg->flags) &&
        (arg->flags & FUSE_HANDLE_KILLPRIV_V2))
        atomic_store(&init_unique, in->unique);
    return n;
}

static ssize_t wire_writev(int fd, struct iovec *iov, int count, void *userdata)
{
    const struct fuse_out_header *out = iov[0].iov_base;
    struct fuse_init_out reply;
    struct iovec patched[2];
    uint64_t unique;

    (void)userdata;
    if (atomic_load_explicit(&init_done, memory_order_relaxed) ||
        (unique = atomic_load(&init_unique)) == 0 || out->unique != unique)
        return writev(fd, iov, count);
    atomic_store(&init_done, 1);
    if (count != 2 || out->error != 0 || iov[1].iov_len > sizeof(reply) ||
        iov[1].iov_len < offsetof(struct fuse_init_out, flags) + sizeof(reply.flags))
        return writev(fd, iov, count);
    memcpy(&reply, iov[1].iov_base, iov[1].iov_len);
    reply.flags |= FUSE_HANDLE_KILLPRIV_V2;
    patched[0] = iov[0];
    patched[1] = (struct iovec){.iov_base = &reply, .iov_len = iov[1].iov_len};
    ssize_t n = writev(fd, patched, 2);
    if (n >= 0)
        atomic_store(&killpriv_v2, 1);
    return n;
}

int wire_attach(struct fuse_session *se)
{
    static const struct fuse_custom_io io = {.read = wire_read, .writev = wire_writev};

    session = se;
    return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}

int wire_attr_changed(void)
{
    if (session == NULL || (req_opcode != FUSE_WRITE && req_opcode != FUSE_OPEN))
        return -EINVAL;
    /* offset -1: attributes only; the page cache stays (the write in progress holds its pages) */
    return fuse_lowlevel_notify_inval_inode(session, req_nodeid, -1, 0);
}

int wire_killpriv_v2(void)
{
    return atomic_load(&killpriv_v2);
}
