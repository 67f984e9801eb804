/* tap.h: TAP output for the check programs that run against the stack's
 * real services (imap_check, smtp_check). */
#ifndef MEMDS_TAP_H
#define MEMDS_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int ntest, nfail;

static void ok(int cond, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void ok(int cond, const char *fmt, ...)
{
    va_list ap;

    printf("%s %d - ", cond ? "ok" : "not ok", ++ntest);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (!cond) {
        nfail++;
    }
}

#endif /* MEMDS_TAP_H */
