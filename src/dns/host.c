/* Naming what a host publishes in DNS (see dns.h): its routable
 * addresses, its short host name, labels as DNS writes them, and what a
 * failed update means.  The same rules as the agent's src/wide/publish.c, for
 * `lmdisc announce --domain` and whatever else publishes. */
#include "dns/internal.h"

#include "base/names.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

size_t lmd_dns_routable_addrs(char out[][64], size_t max)
{
    struct ifaddrs *ifa = NULL;
    size_t n = 0;
    if (getifaddrs(&ifa) != 0)
        return 0;
    for (int fam = 0; fam < 2; fam++) { /* IPv4 first */
        for (struct ifaddrs *i = ifa; i && n < max; i = i->ifa_next) {
            if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
                continue;
            if (fam == 0 && i->ifa_addr->sa_family == AF_INET) {
                const struct in_addr *in = &((const struct sockaddr_in *)i->ifa_addr)->sin_addr;
                uint32_t h = ntohl(in->s_addr);
                if ((h >> 24) == 127 || (h >> 16) == 0xa9fe) /* loopback, 169.254/16 */
                    continue;
                inet_ntop(AF_INET, in, out[n++], 64);
            } else if (fam == 1 && i->ifa_addr->sa_family == AF_INET6) {
                const struct in6_addr *in6 = &((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
                if (IN6_IS_ADDR_LINKLOCAL(in6) || IN6_IS_ADDR_LOOPBACK(in6) || IN6_IS_ADDR_V4MAPPED(in6))
                    continue;
                inet_ntop(AF_INET6, in6, out[n++], 64);
            }
        }
    }
    freeifaddrs(ifa);
    return n;
}

int lmd_dns_short_host(char *buf, size_t len)
{
    char h[256];
    int rc = lmd_short_hostname(h, sizeof h); /* the fallback is no name to publish: refused */
    if (rc == 0 && (strlen(h) > 63 || strlen(h) >= len))
        rc = LMD_EINVAL;
    for (const char *p = h; rc == 0 && *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-'))
            rc = LMD_EINVAL;
    if (rc == 0)
        snprintf(buf, len, "%s", h);
    return rc;
}

void lmd_dns_label_text(const char *label, char *out, size_t len)
{
    size_t o = 0;
    if (!len)
        return;
    for (const unsigned char *p = (const unsigned char *)label; *p && o + 5 < len; p++) {
        if (*p == '.' || *p == '\\')
            o += (size_t)snprintf(out + o, len - o, "\\%c", *p);
        else if (*p <= ' ' || *p >= 127)
            o += (size_t)snprintf(out + o, len - o, "\\%03u", *p);
        else
            out[o++] = (char)*p;
    }
    out[o] = '\0';
}

void lmd_dns_update_explain(const lmd_dns_result *res, const lmd_dns_service *svc, const char *key_name,
                            const char *key_path, char *out, size_t len)
{
    char inst[4 * 64 + 1];
    lmd_dns_label_text(svc->instance ? svc->instance : "", inst, sizeof inst);
    const char *type = svc->type, *zone = svc->zone, *host = svc->host;
    if (res->tsig_error == 18)
        snprintf(out, len, "update of %s.%s.%s refused (%s): this host's clock and the server's differ by more than "
                 "the TSIG window (300 s): fix the clock (NTP)", inst, type, zone, res->text);
    else if (res->tsig_error == 16)
        snprintf(out, len, "update of %s.%s.%s refused (%s): the secret of key %s (%s) is not the one the server "
                 "has: wrong key file?", inst, type, zone, res->text, key_name, key_path ? key_path : "");
    else if (res->tsig_error == 17)
        snprintf(out, len, "update of %s.%s.%s refused (%s): the server does not know key %s, or (Knot) the key has "
                 "no grant for these names (%s.%s PTR, %s.%s.%s SRV TXT, %s A AAAA)", inst, type, zone, res->text,
                 key_name, type, zone, inst, type, zone, host);
    else if (res->rcode < 0)
        snprintf(out, len, "DNS server unreachable: %s", res->text);
    else if (res->rcode == 5 || res->rcode == 9) /* REFUSED, NOTAUTH */
        snprintf(out, len, "update of %s.%s.%s refused (%s): key %s has no grant for these names; the zone's "
                 "update-policy must let it change %s.%s PTR, %s.%s.%s SRV TXT and %s A AAAA "
                 "(examples/wide-area/README.md)", inst, type, zone, res->text, key_name, type, zone, inst, type,
                 zone, host);
    else
        snprintf(out, len, "update of %s.%s.%s failed: %s", inst, type, zone, res->text);
}

bool lmd_dns_instance_name(const char *name, const char *type_zone)
{
    size_t nl = strlen(name), tl = strlen(type_zone);
    if (nl <= tl + 1 || name[nl - tl - 1] != '.' || strcasecmp(name + nl - tl, type_zone))
        return false;
    /* the part before .TYPE.ZONE is one label: no unescaped dot, no NUL,
     * and the dot before TYPE.ZONE not escaped ("x\\._lmserv" is one label
     * "x._lmserv" under _tcp.ZONE, not an instance) */
    size_t end = nl - tl - 1, i = 0;
    while (i < end) {
        if (name[i] == '.')
            return false;
        if (name[i] == '\\') {
            if (!strncmp(name + i + 1, "000", 3))
                return false;
            i += name[i + 1] >= '0' && name[i + 1] <= '9' ? 4 : 2;
        } else {
            i++;
        }
    }
    return i == end;
}
