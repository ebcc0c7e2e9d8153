/* error.c - formatted error messages (src/error.h). */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *csasn__errf(const char *fmt, ...)
{
    static _Thread_local char msg[512];
    /* Format into a temporary first so that an argument may be a previous
     * message living in msg itself (wrapping an error with context). */
    char tmp[sizeof msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(msg, tmp, sizeof msg);
    return msg;
}
