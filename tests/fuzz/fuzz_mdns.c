/* mDNS answers to the one-shot scan's own query (src/dns/mdns_parse.c and
 * mdns_query.c): the input is a sequence of datagrams fed to an offline
 * lmd_mdnsq browsing _lmserv._tcp.local, as from the sockets.
 *
 *   per datagram: byte 0   bit 0: IPv6 (else IPv4), bit 1: from this host,
 *                          bits 2-3: interface index - 1, bit 4: not a
 *                          datagram but a name avahi's browser reports
 *                          (lmd_mdnsq_want; bit 5: and has resolved,
 *                          lmd_mdnsq_cover), any bytes, cut at 79
 *                 bytes 1-2 length (big-endian), then the datagram (a short
 *                 last one is given as it is)
 *
 * Then the answers are settled (lmd_mdnsq_settle_now).
 *
 * Checks: every record the parser believes is in scope (PTR at
 * _lmserv._tcp.local naming one label under it; SRV and TXT one label under
 * it; A and AAAA in local with an address of their family); every instance
 * reported is whole (a name of 1-63 bytes, the type and domain asked, a
 * host in local, an address of the instance's family or, over IPv6, an
 * IPv4 one), reported once per interface and protocol, and a goodbye only
 * for one reported; the counts add up. */
#include "base/instance.h"
#include "dns/mdnsq.h"
#include "fuzz.h"

#include <arpa/inet.h>
#include <strings.h>

FUZZ_INIT_SILENCED()

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n > t && !strcasecmp(s + n - t, tail) && s[n - t - 1] == '.';
}

static void on_rr(const lmd_dns_rr *rr, void *arg)
{
    (void)arg;
    switch (rr->type) {
    case LMD_DNS_T_PTR:
        FUZZ_CHECK(!strcasecmp(rr->owner, "_lmserv._tcp.local"));
        FUZZ_CHECK(rr->label[0] && strlen(rr->label) <= 63);
        break;
    case LMD_DNS_T_SRV:
        FUZZ_CHECK(ends_with(rr->target, "local") || !strcasecmp(rr->target, "local"));
        /* fall through */
    case LMD_DNS_T_TXT:
        FUZZ_CHECK(ends_with(rr->owner, "_lmserv._tcp.local"));
        FUZZ_CHECK(rr->owner_label[0] && strlen(rr->owner_label) <= 63);
        break;
    case LMD_DNS_T_A:
    case LMD_DNS_T_AAAA: {
        unsigned char b[16];
        FUZZ_CHECK(ends_with(rr->owner, "local"));
        FUZZ_CHECK(inet_pton(rr->type == LMD_DNS_T_A ? AF_INET : AF_INET6, rr->addr, b) == 1);
        break;
    }
    default:
        FUZZ_CHECK(!"a record of a type the scan does not ask for");
    }
}

struct seen {
    char key[80];
};
static struct seen reported[LMD_MDNSQ_MAX];
static size_t n_reported;
static long live;

static void key_of(const struct lmd_instance *in, char *key, size_t len)
{
    snprintf(key, len, "%d/%d/%s", in->ifindex, in->proto, in->name);
}

static void on_found(void *ud, const struct lmd_instance *in)
{
    (void)ud;
    FUZZ_CHECK(in->name && in->name[0] && strlen(in->name) <= 63);
    FUZZ_CHECK(!strcmp(in->type, "_lmserv._tcp") && !strcmp(in->domain, "local"));
    FUZZ_CHECK(in->host && (ends_with(in->host, "local") || !strcasecmp(in->host, "local")));
    FUZZ_CHECK(in->txt && in->addr && (in->proto == 4 || in->proto == 6));
    FUZZ_CHECK(in->addr->family == in->proto || (in->proto == 6 && in->addr->family == 4));
    char a[64];
    snprintf(a, sizeof a, "%s", in->addr->addr);
    char *pct = strchr(a, '%');
    if (pct)
        *pct = '\0';
    unsigned char b[16];
    FUZZ_CHECK(inet_pton(in->addr->family == 4 ? AF_INET : AF_INET6, a, b) == 1);
    char key[80];
    key_of(in, key, sizeof key);
    for (size_t i = 0; i < n_reported; i++)
        FUZZ_CHECK(strcmp(reported[i].key, key) != 0); /* once (a goodbye removes it from the list) */
    if (n_reported < LMD_MDNSQ_MAX)
        snprintf(reported[n_reported++].key, sizeof reported[0].key, "%s", key);
    live++;
}

static void on_gone(void *ud, const struct lmd_instance *in)
{
    (void)ud;
    char key[80];
    key_of(in, key, sizeof key);
    bool was = false;
    for (size_t i = 0; i < n_reported; i++)
        if (!strcmp(reported[i].key, key)) {
            reported[i] = reported[--n_reported];
            was = true;
            break;
        }
    FUZZ_CHECK(was);
    live--;
}

static void on_settled(void *ud) { *(bool *)ud = true; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lmd_dns_mscope *scope;
    if (!scope)
        FUZZ_CHECK(lmd_dns_mscope_new("_lmserv._tcp", "local", &scope, NULL) == 0);
    n_reported = 0;
    live = 0;
    bool settled = false;
    lmd_mdnsq_callbacks cb = {on_found, on_gone, NULL, on_settled};
    lmd_mdnsq *q = NULL;
    FUZZ_CHECK(lmd_mdnsq_new(NULL, "_lmserv._tcp", &cb, &settled, &q, NULL) == 0);
    size_t off = 0;
    while (off + 3 <= size) {
        uint8_t h = data[off];
        size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
        off += 3;
        if (len > size - off)
            len = size - off;
        if (h & 0x10) {
            char name[80];
            size_t n = len < sizeof name - 1 ? len : sizeof name - 1;
            memcpy(name, data + off, n);
            name[n] = '\0';
            lmd_mdnsq_want(q, 1 + ((h >> 2) & 3), (h & 1) ? 6 : 4, name);
            if (h & 0x20)
                lmd_mdnsq_cover(q, 1 + ((h >> 2) & 3), (h & 1) ? 6 : 4, name);
            off += len;
            continue;
        }
        unsigned skipped = 0;
        (void)lmd_dns_mdns_parse(scope, data + off, len, on_rr, NULL, &skipped, NULL);
        lmd_mdnsq_feed(q, data + off, len, 1 + ((h >> 2) & 3), (h & 1) ? 6 : 4, (h & 2) != 0);
        off += len;
    }
    lmd_mdnsq_settle_now(q);
    FUZZ_CHECK(settled);
    lmd_mdnsq_stats st;
    lmd_mdnsq_stats_get(q, &st);
    FUZZ_CHECK((long)st.found == live);
    for (size_t i = 0; i < n_reported; i++) {
        int ifindex = 0, proto = 0, used = 0;
        FUZZ_CHECK(sscanf(reported[i].key, "%d/%d/%n", &ifindex, &proto, &used) == 2);
        FUZZ_CHECK(lmd_mdnsq_found(q, ifindex, proto, reported[i].key + used));
    }
    lmd_mdnsq_free(q);
    return 0;
}
