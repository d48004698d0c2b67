#include "fslog.h"

#include <stdarg.h>
#include <stdio.h>

static int to_stderr = 1;

void fslog_init(int foreground)
{
    to_stderr = foreground;
    openlog("custodyfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void fslog(int priority, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (to_stderr) {
        va_list copy;
        va_copy(copy, ap);
        fputs("custodyfs: ", stderr);
        vfprintf(stderr, fmt, copy);
        fputc('\n', stderr);
        va_end(copy);
    }
    vsyslog(priority, fmt, ap);
    va_end(ap);
}
