/* Command-line helpers shared by the subcommands.  Usage errors exit 2 with
 * one line saying what was wrong and how to fix it; runtime failures exit 1. */
#include "cmd/cmd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

bool lmd_domain_valid(const char *d)
{
    size_t n = d ? strlen(d) : 0;
    if (n && d[n - 1] == '.')
        n--;
    if (n == 0 || n > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = d[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                   c == '_') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0;
}

bool lmd_ip_valid(const char *s)
{
    unsigned char bin[16];
    return s && (inet_pton(AF_INET, s, bin) == 1 || inet_pton(AF_INET6, s, bin) == 1);
}

int lmd_parse_dns_option(const char *cmd, int opt, const char *arg, const char **domain, const char **server,
                         const char **key)
{
    if (opt == 'd' && !lmd_domain_valid(arg))
        return lmd_usage_error(cmd, "--domain '%.80s' is not a DNS domain (like sd.example.org)", arg);
    if (opt == 's' && !lmd_ip_valid(arg))
        return lmd_usage_error(cmd, "--server '%.80s' is not an IPv4 or IPv6 address", arg);
    if (opt == 'k' && !*arg)
        return lmd_usage_error(cmd, "--key needs a file name");
    *(opt == 'd' ? domain : opt == 's' ? server : key) = arg;
    return 0;
}

int lmd_missing_value(const char *cmd, int argc, char **argv)
{
    const char *opt = optind - 1 < argc && optind >= 1 ? argv[optind - 1] : "?";
    return lmd_usage_error(cmd, "option '%s' needs a value", opt);
}
