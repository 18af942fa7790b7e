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

/* in shard SHARD of sd.test */
static lmd_dns_rr sptr(const char *shard, const char *inst)
{
    lmd_dns_rr r = {.type = LMD_DNS_T_PTR};
    snprintf(r.owner, sizeof r.owner, "_lmserv._tcp.%s.sd.test", shard);
    snprintf(r.owner_label, sizeof r.owner_label, "_lmserv");
    snprintf(r.label, sizeof r.label, "%s", inst);
    snprintf(r.target, sizeof r.target, "%s._lmserv._tcp.%s.sd.test", inst, shard);
    return r;
}

static lmd_dns_rr ssrv(const char *shard, const char *inst, uint16_t port)
{
    lmd_dns_rr r = {.type = LMD_DNS_T_SRV, .port = port};
    snprintf(r.owner, sizeof r.owner, "%s._lmserv._tcp.%s.sd.test", inst, shard);
    snprintf(r.owner_label, sizeof r.owner_label, "%s", inst);
    snprintf(r.target, sizeof r.target, "%s.sd.test", inst);
    return r;
}

static lmd_dns_rr stxt(const char *shard, const char *inst, const char *model)
{
    lmd_dns_rr r = txt(inst, model);
    snprintf(r.owner, sizeof r.owner, "%s._lmserv._tcp.%s.sd.test", inst, shard);
    return r;
}

/* b._dns-sd._udp.sd.test PTR target */
static lmd_dns_rr list(const char *target)
{
    lmd_dns_rr r = {.type = LMD_DNS_T_PTR};
    snprintf(r.owner, sizeof r.owner, "b._dns-sd._udp.sd.test");
    snprintf(r.owner_label, sizeof r.owner_label, "b");
    snprintf(r.label, sizeof r.label, "%.63s", target);
    snprintf(r.target, sizeof r.target, "%s", target);
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

    /* a sharded domain (issue 20): the browse list names s0 and s1; each
     * shard's PTR set is read, the domain's own too; a shard not listed
     * (s9) is not; one name in two places counts once (the domain's) */
    lmd_dns_rr sh[] = {list("s0.sd.test"), list("s1.sd.test"), list("sd.test"), list("elsewhere.example"),
                       sptr("s0", "p"), ssrv("s0", "p", 7001), stxt("s0", "p", "m0"),
                       sptr("s1", "q"), ssrv("s1", "q", 7002), ssrv("s1", "c", 7999),
                       sptr("s9", "r"), ssrv("s9", "r", 7003),
                       sptr("s1", "c"), ptr("c"), srv("c", "c.sd.test", 7000)};
    lmd_dns_xfr x8 = {.kind = LMD_DNS_XFR_FULL, .serial = 30, .rrs = sh, .n_rrs = LMD_ARRAY_LEN(sh)};
    CHECK(lmd_dns_zone_take(&zn, TZ, &x8) == 0, "sharded AXFR taken");
    services(&zn, got, sizeof got);
    CHECK(!strcmp(got, "c c.sd.test:7000 -;p p.sd.test:7001 m0;q q.sd.test:7002 -;"), "got %s", got);
    lmd_dns_found *sf = NULL;
    size_t sn = 0;
    CHECK(lmd_dns_zone_services(&zn, &sf, &sn) == 0 && sn == 3 && !strcmp(sf[0].shard, "") &&
          !strcmp(sf[1].shard, "s0") && !strcmp(sf[2].shard, "s1"), "each where it was found");
    lmd_dns_found_free(sf, sn);
    /* an IXFR that lists s9: r is read from then on */
    lmd_dns_rr add7[] = {list("s9.sd.test")};
    lmd_dns_xfr_diff d7 = {.from = 30, .to = 31, .added = add7, .n_added = 1};
    lmd_dns_xfr x7 = {.kind = LMD_DNS_XFR_DIFF, .serial = 31, .diffs = &d7, .n_diffs = 1};
    CHECK(lmd_dns_zone_take(&zn, TZ, &x7) == 0, "IXFR listing s9");
    services(&zn, got, sizeof got);
    CHECK(!strcmp(got, "c c.sd.test:7000 -;p p.sd.test:7001 m0;q q.sd.test:7002 -;r r.sd.test:7003 -;"), "got %s", got);
    lmd_dns_zone_clear(&zn);

    /* many records (the index's chains and its growth): 3,000 services,
     * then a diff deleting every other one's PTR and SRV */
    {
        size_t nb = 3000;
        lmd_dns_rr *big = calloc(2 * nb, sizeof *big), *gone = calloc(nb, sizeof *gone);
        char nm[32];
        for (size_t i = 0; i < nb; i++) {
            snprintf(nm, sizeof nm, "n%zu", i);
            big[2 * i] = ptr(nm);
            big[2 * i + 1] = srv(nm, "h.sd.test", (uint16_t)(1000 + i));
        }
        size_t ng = 0;
        for (size_t i = 0; i < nb; i += 2) {
            gone[ng++] = big[2 * i];
            gone[ng++] = big[2 * i + 1];
        }
        lmd_dns_xfr xb = {.kind = LMD_DNS_XFR_FULL, .serial = 40, .rrs = big, .n_rrs = 2 * nb};
        CHECK(lmd_dns_zone_take(&zn, TZ, &xb) == 0, "3,000 services taken (%zu records kept)", zn.n);
        size_t kept = zn.n;
        lmd_dns_xfr_diff db = {.from = 40, .to = 41, .deleted = gone, .n_deleted = ng};
        lmd_dns_xfr xd = {.kind = LMD_DNS_XFR_DIFF, .serial = 41, .diffs = &db, .n_diffs = 1};
        CHECK(lmd_dns_zone_take(&zn, TZ, &xd) == 0 && zn.n == kept / 2, "half deleted by one diff (%zu records left)",
              zn.n);
        lmd_dns_found *bf = NULL;
        size_t bn = 0;
        CHECK(lmd_dns_zone_services(&zn, &bf, &bn) == 0 && bn == nb / 2, "%zu services left", bn);
        bool odd = true;
        for (size_t i = 0; i < bn; i++)
            odd = odd && bf[i].srv && (bf[i].port - 1000) % 2 == 1;
        CHECK(odd, "the ones left are the odd ones, each with its SRV");
        lmd_dns_found_free(bf, bn);
        CHECK(lmd_dns_zone_take(&zn, TZ, &xd) < 0 && !zn.have, "the same deletes again: not the server's copy");
        free(big);
        free(gone);
    }

    /* the shard a host picks: the same whatever the order, spread over
     * the shards, and adding one moves only the hosts it takes */
    const char four[4][64] = {"s0", "s1", "s2", "s3"}, rev[4][64] = {"s3", "s2", "s1", "s0"};
    const char five[5][64] = {"s0", "s1", "s2", "s3", "s4"};
    size_t per[4] = {0}, moved = 0, moved_elsewhere = 0;
    for (int i = 0; i < 4000; i++) {
        char host[32];
        snprintf(host, sizeof host, "h%d.sd.test", i);
        long a = lmd_dns_shard_pick(host, four, 4), b = lmd_dns_shard_pick(host, rev, 4);
        long c = lmd_dns_shard_pick(host, five, 5);
        CHECK(a >= 0 && b >= 0 && !strcmp(four[a], rev[b]), "%s: the same shard whatever the order", host);
        per[a]++;
        moved += strcmp(five[c], four[a]) != 0;
        moved_elsewhere += strcmp(five[c], four[a]) != 0 && strcmp(five[c], "s4") != 0;
    }
    for (int j = 0; j < 4; j++)
        CHECK(per[j] > 850 && per[j] < 1150, "shard %d holds %zu of 4000", j, per[j]);
    CHECK(moved > 600 && moved < 1000 && moved_elsewhere == 0, "a fifth shard took %zu hosts, %zu moved elsewhere",
          moved, moved_elsewhere);
    CHECK(lmd_dns_shard_pick("h1", four, 0) == -1, "no shards: -1");
    CHECK(lmd_dns_shard_pick("H7.x", four, 4) == lmd_dns_shard_pick("h7.y", four, 4), "the host's first label, any case");
    char label[64];
    CHECK(lmd_dns_shard_of("s0.sd.test.", "sd.test", label, sizeof label) && !strcmp(label, "s0"), "s0 is a shard");
    CHECK(!lmd_dns_shard_of("sd.test", "sd.test", label, sizeof label), "the domain is not its own shard");
    CHECK(!lmd_dns_shard_of("a.s0.sd.test", "sd.test", label, sizeof label), "two labels down is not a shard");
    CHECK(!lmd_dns_shard_of("s0.other.test", "sd.test", label, sizeof label), "another domain's is not");
    CHECK(!lmd_dns_shard_of("s\0320.sd.test", "sd.test", label, sizeof label), "an odd label is not");
    rrs_clear(sh, LMD_ARRAY_LEN(sh));

    rrs_clear(full, LMD_ARRAY_LEN(full));
    rrs_clear(add1, LMD_ARRAY_LEN(add1));
    rrs_clear(del3, LMD_ARRAY_LEN(del3));
    printf("%d checks, %d failed\n", checks, failures);
    return failures != 0;
}
