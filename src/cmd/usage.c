/* Command-line helpers shared by the subcommands.  Usage errors exit 2 with
 * one line saying what was wrong and how to fix it; runtime failures exit 1. */
#include "cmd/cmd.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int lmd_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "lmdisc%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'lmdisc %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
    va_end(ap);
    return LMD_EXIT_USAGE;
}

int lmd_parse_port(const char *s, uint16_t *port)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > 65535)
        return LMD_EINVAL;
    *port = (uint16_t)v;
    return 0;
}

int lmd_parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v <= 0 || v > 86400)
        return LMD_EINVAL;
    *out = v;
    return 0;
}


void lmd_getopt_reset(void)
{
    opterr = 0;
    optind = 0; /* see cmd.h: 1 would leave glibc inside the last cluster */
}
