/*
 * wire: the daemon's reads and writes on the FUSE device, given to libfuse with
 * fuse_session_custom_io().
 *
 * Requests and replies pass unchanged but for one: the reply to the kernel's INIT also accepts
 * FUSE_HANDLE_KILLPRIV_V2 when the kernel offers it.  libfuse 3.14 does not know that flag.  With
 * it the kernel leaves the clearing of set-user-ID and set-group-ID bits on write, truncate and
 * chown to the daemon (which ops.c does, see kill_setid there), and in return stops asking the
 * daemon for security.capability before every write: one round trip per write() instead of two.
 *
 * wire_attach: install on the mounted session `se`, before it serves its first request.
 * Returns 0 or a negative errno (-ENOMEM).
 * wire_killpriv_v2: after INIT, whether the kernel took the flag (1) or not (0).
 *
 * wire_attr_changed: from the handler of a WRITE or OPEN request, on its own thread: tell the
 * kernel that the attributes of the file the request acts on changed (its mode, when the daemon
 * cleared set-user-ID), so that the next stat asks the daemon.  Replies to other requests that
 * change attributes carry the new ones.  Returns 0, or a negative errno (-EINVAL for another
 * request).
 */
#ifndef CUSTODY_WIRE_H
#define CUSTODY_WIRE_H

struct fuse_session;

int wire_attach(struct fuse_session *se);
int wire_killpriv_v2(void);
int wire_attr_changed(void);

#endif
