/*
 * fslog: the daemon's diagnostics.  Lines go to syslog (facility daemon, ident "custodyfs") and,
 * while the daemon runs in the foreground, to standard error too.  Never pass a key or plaintext.
 */
#ifndef CUSTODY_FSLOG_H
#define CUSTODY_FSLOG_H

#include <syslog.h>

void fslog_init(int foreground);
void fslog(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
