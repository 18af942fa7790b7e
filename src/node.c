/* lmd_node_info (the original NodeInfo), error strings, name helpers. */
#include "lmdisc.h"
#include "util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const char *lmd_strerror(int err)
{
    switch (err) {
    case LMD_OK: return "success";
    case LMD_EINVAL: return "invalid argument";
    case LMD_ENOMEM: return "out of memory";
    case LMD_EAVAHI: return "avahi reported an error";
    case LMD_ENODAEMON: return "avahi-daemon is not running";
    case LMD_ETIMEDOUT: return "timed out";
    case LMD_ETXT: return "invalid TXT data";
    case LMD_ECOLLISION: return "name collision";
    case LMD_EIO: return "input/output error";
    case LMD_ELUA: return "error in Lua script";
    case LMD_ENOTFOUND: return "not found";
    }
    return "unknown error";
}

void lmd_node_info_clear(lmd_node_info *n)
{
    if (!n)
        return;
    free(n->name);
    free(n->type);
    free(n->domain);
    free(n->host);
    free(n->info);
    free(n->addrs);
    lmd_txt_free(&n->txt);
    memset(n, 0, sizeof *n);
}

int lmd_node_info_copy(lmd_node_info *dst, const lmd_node_info *src)
{
    memset(dst, 0, sizeof *dst);
    dst->port = src->port;
    dst->flags = src->flags;
    dst->first_seen = src->first_seen;
    dst->last_seen = src->last_seen;
    dst->name = lmd_strdup(src->name);
    dst->type = lmd_strdup(src->type);
    dst->domain = lmd_strdup(src->domain);
    dst->host = lmd_strdup(src->host);
    dst->info = lmd_strdup(src->info);
    if (src->n_addrs) {
        dst->addrs = lmd_memdup(src->addrs, src->n_addrs * sizeof *src->addrs);
        dst->n_addrs = dst->addrs ? src->n_addrs : 0;
    }
    int rc = lmd_txt_copy(&dst->txt, &src->txt);
    if (rc || (src->name && !dst->name) || (src->type && !dst->type) ||
        (src->domain && !dst->domain) || (src->host && !dst->host) || (src->info && !dst->info) ||
        (src->n_addrs && !dst->addrs)) {
        lmd_node_info_clear(dst);
        return LMD_ENOMEM;
    }
    return 0;
}

void lmd_node_list_free(lmd_node_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        lmd_node_info_clear(&l->nodes[i]);
    free(l->nodes);
    l->nodes = NULL;
    l->n = 0;
}

static bool bad(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool bad(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return false;
}

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

int lmd_default_name(uint16_t port, char *buf, size_t len)
{
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "lmserv");
    host[sizeof host - 1] = '\0';
    char *dot = strchr(host, '.');
    if (dot)
        *dot = '\0';
    /* DNS labels are at most 63 bytes; keep the port visible. */
    int w = snprintf(buf, len, "%.*s:%u", 56, host, (unsigned)port);
    return (w < 0 || (size_t)w >= len) ? LMD_EINVAL : 0;
}
