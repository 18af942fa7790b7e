/* DNS-SD names: service types (RFC 6763, RFC 6335) and default instance
 * names; this machine's short host name (names.h). */
#include "base/names.h"
#include "base/error.h"
#include "lmdisc.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* false, with the reason in err */
#define bad(err, errlen, ...) (lmd_errbuf((err), (errlen), LMD_EINVAL, __VA_ARGS__), false)

/* RFC 6763 section 7 and RFC 6335 section 5.1: "_name._tcp" or "_name._udp",
 * name 1-15 letters, digits and hyphens, at least one letter, no hyphen at
 * either end or twice in a row. */
bool lmd_service_type_valid(const char *type, char *err, size_t errlen)
{
    static const char hint[] = "write it as _name._tcp or _name._udp, e.g. _lmserv._tcp";
    if (!type || !*type)
        return bad(err, errlen, "service type is empty; %s", hint);
    const char *dot = strchr(type, '.');
    if (type[0] != '_' || !dot)
        return bad(err, errlen, "service type '%.80s' is invalid; %s", type, hint);
    size_t n = (size_t)(dot - type - 1);
    const char *name = type + 1;
    if (n < 1 || n > 15)
        return bad(err, errlen, "service name in '%.80s' must be 1-15 characters; %s", type, hint);
    bool letter = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (isalpha(c))
            letter = true;
        else if (!(isdigit(c) || c == '-'))
            return bad(err, errlen,
                       "service name in '%.80s' may only hold letters, digits and '-'; %s", type,
                       hint);
    }
    if (!letter || name[0] == '-' || name[n - 1] == '-' || strstr(name, "--") != NULL)
        return bad(err, errlen, "service name in '%.80s' is not a valid RFC 6335 name; %s", type,
                   hint);
    if (strcmp(dot, "._tcp") != 0 && strcmp(dot, "._udp") != 0)
        return bad(err, errlen, "service type '%.80s' must end in ._tcp or ._udp; %s", type, hint);
    return true;
}

int lmd_short_hostname(char *buf, size_t len)
{
    char host[256] = "";
    int rc = 0;
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';
    host[strcspn(host, ".")] = '\0';
    if (!host[0]) {
        snprintf(host, sizeof host, "%s", LMD_HOST_FALLBACK);
        rc = LMD_ENOTFOUND;
    }
    int w = snprintf(buf, len, "%s", host);
    return w < 0 || (size_t)w >= len ? LMD_EINVAL : rc;
}

int lmd_default_name(uint16_t port, char *buf, size_t len)
{
    char host[256];
    lmd_short_hostname(host, sizeof host); /* the machine's, else the fallback */
    /* DNS labels are at most 63 bytes; keep the port visible. */
    int w = snprintf(buf, len, "%.*s:%u", 56, host, (unsigned)port);
    return (w < 0 || (size_t)w >= len) ? LMD_EINVAL : 0;
}
