/* src/dns/zone.c: a reader's copy of a DNS-SD domain, kept across zone
 * transfers so that the next one can be an IXFR, and the services read
 * from it (no network: the transfers are built here as the reader of
 * xfr.c hands them over). */
#include "base/util.h"
#include "dns/dns.h"

#include <stdlib.h>
#include <string.h>

#include "../check.h"

#define TZ "_lmserv._tcp.sd.test"

static lmd_dns_rr ptr(const char *inst)
{
    lmd_dns_rr r = {.type = LMD_DNS_T_PTR};
    snprintf(r.owner, sizeof r.owner, TZ);
    snprintf(r.owner_label, sizeof r.owner_label, "_lmserv");
    snprintf(r.label, sizeof r.label, "%s", inst);
    snprintf(r.target, sizeof r.target, "%s." TZ, inst);
    return r;
}

static lmd_dns_rr srv(const char *inst, const char *host, uint16_t port)
{
    lmd_dns_rr r = {.type = LMD_DNS_T_SRV, .port = port};
    snprintf(r.owner, sizeof r.owner, "%s." TZ, inst);
    snprintf(r.owner_label, sizeof r.owner_label, "%s", inst);
    snprintf(r.target, sizeof r.target, "%s", host);
    return r;
}

static lmd_dns_rr txt(const char *inst, const char *model)
{
    lmd_dns_rr r = {.type = LMD_DNS_T_TXT};
    snprintf(r.owner, sizeof r.owner, "%s." TZ, inst);
    snprintf(r.owner_label, sizeof r.owner_label, "%s", inst);
    CHECK(lmd_txt_set(&r.txt, "model", model, strlen(model), true, NULL, 0) == 0, "txt");
    return r;
}

static lmd_dns_rr addr(const char *host, const char *a)
{
    lmd_dns_rr r = {.type = strchr(a, ':') ? LMD_DNS_T_AAAA : LMD_DNS_T_A};
    snprintf(r.owner, sizeof r.owner, "%s", host);
    snprintf(r.addr, sizeof r.addr, "%s", a);
    return r;
}

static void rrs_clear(lmd_dns_rr *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        lmd_txt_free(&r[i].txt);
}

/* the services now in the copy, as "name host:port model addrs;..." */
static void services(const lmd_dns_zone *zn, char *out, size_t len)
{
    lmd_dns_found *f = NULL;
    size_t n = 0;
    *out = '\0';
    CHECK(lmd_dns_zone_services(zn, &f, &n) == 0, "services");
    for (size_t i = 0; i < n; i++) {
        const lmd_txt_item *m = lmd_txt_get(&f[i].txt, "model");
        size_t o = strlen(out);
        snprintf(out + o, len - o, "%s %s:%u %s", f[i].name, f[i].srv ? f[i].host : "-", f[i].port,
                 m ? (const char *)m->value : "-");
        for (size_t j = 0; j < f[i].n_addrs; j++) {
            o = strlen(out);
            snprintf(out + o, len - o, " %s", f[i].addrs[j]);
        }
        o = strlen(out);
        snprintf(out + o, len - o, ";");
    }
    lmd_dns_found_free(f, n);
}

int main(void)
{
    lmd_dns_zone zn = {0};
    char got[2048];

    /* a whole zone (AXFR): PTRs, SRV, TXT, addresses; records not of our
     * type's services (another type's PTR, a SRV below another name) are
     * not kept */
    lmd_dns_rr full[] = {ptr("b"), ptr("a"), srv("a", "a.sd.test", 8001), txt("a", "gemma"),
                         srv("b", "b.sd.test", 8002), addr("a.sd.test", "10.0.0.9"), addr("a.sd.test", "10.0.0.1"),
                         addr("a.sd.test", "2001:db8::1"), addr("b.sd.test", "10.0.0.2")};
    lmd_dns_rr other = ptr("x");
    snprintf(other.owner, sizeof other.owner, "_http._tcp.sd.test");
    lmd_dns_rr all[LMD_ARRAY_LEN(full) + 1];
    memcpy(all, full, sizeof full);
    all[LMD_ARRAY_LEN(full)] = other;
    lmd_dns_xfr x = {.kind = LMD_DNS_XFR_FULL, .serial = 10, .rrs = all, .n_rrs = LMD_ARRAY_LEN(all)};
    CHECK(lmd_dns_zone_take(&zn, TZ, &x) == 0, "AXFR taken");
    CHECK(zn.have && zn.serial == 10, "the copy is at serial 10 (have %d serial %u)", zn.have, zn.serial);
    CHECK(zn.n == LMD_ARRAY_LEN(full) - 2, "%zu records kept of %zu (no PTR: the services are the SRV owners)",
          zn.n, LMD_ARRAY_LEN(all));
    services(&zn, got, sizeof got);
    /* sorted by name; the lowest address of each family, whatever the order */
    CHECK(!strcmp(got, "a a.sd.test:8001 gemma 10.0.0.1 2001:db8::1;b b.sd.test:8002 - 10.0.0.2;"), "got %s", got);

    /* an IXFR: b's TXT added, a's SRV moved to another port */
    lmd_dns_rr del1[] = {srv("a", "a.sd.test", 8001)};
    lmd_dns_rr add1[] = {srv("a", "a.sd.test", 9001), txt("b", "llama")};
    lmd_dns_xfr_diff d1 = {.from = 10, .to = 11, .deleted = del1, .n_deleted = 1, .added = add1, .n_added = 2};
    lmd_dns_xfr x1 = {.kind = LMD_DNS_XFR_DIFF, .serial = 11, .diffs = &d1, .n_diffs = 1};
    CHECK(lmd_dns_zone_take(&zn, TZ, &x1) == 0, "IXFR taken");
    services(&zn, got, sizeof got);
    CHECK(!strcmp(got, "a a.sd.test:9001 gemma 10.0.0.1 2001:db8::1;b b.sd.test:8002 llama 10.0.0.2;"), "got %s", got);
    CHECK(zn.serial == 11, "serial %u", zn.serial);

    /* a diff deleting a whole service (PTR, SRV, TXT), in two steps */
    lmd_dns_rr del2[] = {ptr("b"), srv("b", "b.sd.test", 8002)};
    lmd_dns_rr del3[] = {txt("b", "llama"), addr("b.sd.test", "10.0.0.2")};
    lmd_dns_xfr_diff d23[] = {{.from = 11, .to = 12, .deleted = del2, .n_deleted = 2},
                              {.from = 12, .to = 13, .deleted = del3, .n_deleted = 2}};
    lmd_dns_xfr x2 = {.kind = LMD_DNS_XFR_DIFF, .serial = 13, .diffs = d23, .n_diffs = 2};
    CHECK(lmd_dns_zone_take(&zn, TZ, &x2) == 0, "two-step IXFR taken");
    services(&zn, got, sizeof got);
    CHECK(!strcmp(got, "a a.sd.test:9001 gemma 10.0.0.1 2001:db8::1;"), "got %s", got);

    /* up to date: nothing changes */
    lmd_dns_xfr up = {.kind = LMD_DNS_XFR_UPTODATE, .serial = 13};
    CHECK(lmd_dns_zone_take(&zn, TZ, &up) == 0 && zn.have && zn.serial == 13, "up to date keeps the copy");

    /* out of order: a diff that deletes what the copy does not hold means
     * the copy is not the server's: it is dropped (read whole next time) */
    lmd_dns_rr del4[] = {srv("zz", "zz.sd.test", 1)};
    lmd_dns_xfr_diff d4 = {.from = 13, .to = 14, .deleted = del4, .n_deleted = 1};
    lmd_dns_xfr x4 = {.kind = LMD_DNS_XFR_DIFF, .serial = 14, .diffs = &d4, .n_diffs = 1};
    CHECK(lmd_dns_zone_take(&zn, TZ, &x4) < 0, "a diff that does not fit the copy is refused");
    CHECK(!zn.have && zn.n == 0, "and the copy is gone (have %d, %zu records)", zn.have, zn.n);

    /* without a copy, neither a diff nor "up to date" can be taken */
    CHECK(lmd_dns_zone_take(&zn, TZ, &x1) < 0 && !zn.have, "a diff without a copy: read whole");
    CHECK(lmd_dns_zone_take(&zn, TZ, &up) < 0 && !zn.have, "up to date without a copy: read whole");

    /* reset: a new whole transfer replaces everything */
    lmd_dns_rr one[] = {ptr("c"), srv("c", "c.sd.test", 7000)};
    lmd_dns_xfr x5 = {.kind = LMD_DNS_XFR_FULL, .serial = 20, .rrs = one, .n_rrs = 2};
    CHECK(lmd_dns_zone_take(&zn, TZ, &x5) == 0, "AXFR after the reset");
    services(&zn, got, sizeof got);
    CHECK(!strcmp(got, "c c.sd.test:7000 -;"), "got %s", got);

    /* the PTR RRset is every host's to write (no server grants a key only
     * its own PTR data): a service is its SRV, whatever the PTRs say.  c's
     * PTR deleted by another host's key, more PTRs than a reader lists
     * added (named to sort before c): c stays, the others are no service */
    size_t nflood = LMD_DNS_MAX_INSTANCES + 10;
    lmd_dns_rr *flood = calloc(nflood + 1, sizeof *flood);
    CHECK(flood != NULL, "memory");
    for (size_t i = 0; i < nflood; i++) {
        char inst[16];
        snprintf(inst, sizeof inst, "a%05zu", i);
        flood[i] = ptr(inst);
    }
    lmd_dns_rr delc[] = {ptr("c")};
    lmd_dns_xfr_diff d6 = {.from = 20, .to = 21, .deleted = delc, .n_deleted = 1, .added = flood, .n_added = nflood};
    lmd_dns_xfr x6 = {.kind = LMD_DNS_XFR_DIFF, .serial = 21, .diffs = &d6, .n_diffs = 1};
    CHECK(lmd_dns_zone_take(&zn, TZ, &x6) == 0, "IXFR: c's PTR deleted, a PTR flood added");
    services(&zn, got, sizeof got);
    CHECK(!strcmp(got, "c c.sd.test:7000 -;"), "c stays, the flood is no service: got %.200s", got);
    CHECK(zn.n == 1, "the PTRs are not kept (%zu records)", zn.n);
    free(flood);

    lmd_dns_zone_clear(&zn);
    CHECK(!zn.have && zn.n == 0 && zn.r == NULL, "cleared");

    rrs_clear(full, LMD_ARRAY_LEN(full));
    rrs_clear(add1, LMD_ARRAY_LEN(add1));
    rrs_clear(del3, LMD_ARRAY_LEN(del3));
    printf("%d checks, %d failed\n", checks, failures);
    return failures != 0;
}
