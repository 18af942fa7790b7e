/* Sharded DNS-SD domains (see dns.h): which names are shards, and which
 * shard a publisher writes in. */
#include "dns/dns.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

bool lmd_dns_shard_of(const char *name, const char *domain, char *label, size_t len)
{
    size_t n = strlen(name), d = strlen(domain);
    while (n && name[n - 1] == '.')
        n--;
    while (d && domain[d - 1] == '.')
        d--;
    if (n <= d + 1 || name[n - d - 1] != '.' || strncasecmp(name + n - d, domain, d) != 0)
        return false;
    size_t l = n - d - 1;
    if (l > 63 || l + 1 > len)
        return false;
    for (size_t i = 0; i < l; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '_')
            return false;
    memcpy(label, name, l);
    label[l] = '\0';
    return true;
}

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)tolower((unsigned char)s[i]);
        h *= 1099511628211ull;
    }
    return h;
}

long lmd_dns_shard_pick(const char *host, const char (*labels)[64], size_t n)
{
    size_t hl = strcspn(host, ".");
    long best = -1;
    uint64_t top = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t h = fnv(14695981039346656037ull, host, hl);
        h = fnv(h, "/", 1);
        h = fnv(h, labels[i], strlen(labels[i]));
        /* FNV's last bytes reach only its low bits: mixed (murmur3's
         * finalizer), or the scores of s3 and s4 would go together */
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53ull;
        h ^= h >> 33;
        /* equal scores (never in practice): the lower label, so that the
         * order listed does not matter */
        if (best < 0 || h > top || (h == top && strcasecmp(labels[i], labels[best]) < 0)) {
            best = (long)i;
            top = h;
        }
    }
    return best;
}

bool lmd_dns_type_zone(const char *type, const char *shard, const char *domain, char *out, size_t len)
{
    size_t d = strlen(domain);
    if (d && domain[d - 1] == '.')
        d--;
    int w = shard && shard[0] ? snprintf(out, len, "%s.%s.%.*s", type, shard, (int)d, domain)
                              : snprintf(out, len, "%s.%.*s", type, (int)d, domain);
    return w > 0 && (size_t)w < len;
}
