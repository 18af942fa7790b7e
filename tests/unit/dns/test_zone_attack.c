/* Attacks on the incremental wide-area view (attack3): specific diff
 * sequences, each checked differentially: the view followed by changes
 * (lmd_dns_zone_take_changes + lmd_dns_zone_service, as src/wide/view.c
 * does) must equal a whole read of the copy (lmd_dns_zone_services).
 * Sequences: delete and re-add in one diff, SRV target moved, a host's
 * address changed without its SRV, TXT split and merged, names differing
 * only in case, a whole transfer in the middle. */
#include "base/util.h"
#include "dns/dns.h"

#include <stdlib.h>
#include <string.h>

#include "../check.h"

#define DOM "sd.test"
#define TYPE "_lmserv._tcp"
#define TZ TYPE "." DOM

#include "zone_view.h"



static lmd_dns_rr srv_on(const char *owner_inst, const char *label, unsigned host, uint16_t port)
{
    lmd_dns_rr r = {.type = LMD_DNS_T_SRV, .port = port};
    snprintf(r.owner, sizeof r.owner, "%s." TZ, owner_inst);
    snprintf(r.owner_label, sizeof r.owner_label, "%s", label);
    snprintf(r.target, sizeof r.target, "h%u." DOM, host);
    return r;
}
static lmd_dns_rr txt_kv(const char *owner_inst, const char *label, const char *k, const char *val)
{
    lmd_dns_rr r = {.type = LMD_DNS_T_TXT};
    snprintf(r.owner, sizeof r.owner, "%s." TZ, owner_inst);
    snprintf(r.owner_label, sizeof r.owner_label, "%s", label);
    CHECK(lmd_txt_set(&r.txt, k, val, strlen(val), true, NULL, 0) == 0, "txt");
    return r;
}
static lmd_dns_rr addr_owner(const char *owner, const char *a)
{
    lmd_dns_rr r = {.type = LMD_DNS_T_A};
    snprintf(r.owner, sizeof r.owner, "%s", owner);
    snprintf(r.addr, sizeof r.addr, "%s", a);
    return r;
}

static lmd_dns_zone zn;
static struct view *vw, *vc;
static unsigned serial = 1;

static void compare(const char *what)
{
    whole(&zn, vw);
    bool same = vw->n == vc->n;
    for (size_t i = 0; same && i < vw->n; i++)
        same = !strcmp(vw->text[i], vc->text[i]);
    CHECK(same, "%s: view by changes = whole read (%zu / %zu services)", what, vc->n, vw->n);
    if (!same)
        for (size_t i = 0; i < vw->n || i < vc->n; i++)
            fprintf(stderr, "  whole %s\n  chang %s\n", i < vw->n ? vw->text[i] : "-", i < vc->n ? vc->text[i] : "-");
}

static void diff(const char *what, lmd_dns_rr *del, size_t nd, lmd_dns_rr *add, size_t na)
{
    lmd_dns_touched t = {0};
    lmd_dns_xfr_diff d = {.from = serial, .to = serial + 1, .deleted = del, .n_deleted = nd, .added = add,
                          .n_added = na};
    lmd_dns_xfr x = {.kind = LMD_DNS_XFR_DIFF, .serial = ++serial, .diffs = &d, .n_diffs = 1};
    int rc = lmd_dns_zone_take_changes(&zn, TZ, &x, &t);
    CHECK(rc == 0, "%s: taken (%d)", what, rc);
    if (t.all)
        whole(&zn, vc);
    else
        follow(&zn, &t, vc);
    lmd_dns_touched_clear(&t);
    compare(what);
    for (size_t i = 0; i < nd; i++) /* the copy holds its own */
        lmd_txt_free(&del[i].txt);
    for (size_t i = 0; i < na; i++)
        lmd_txt_free(&add[i].txt);
}

static void full(const char *what, lmd_dns_rr *rrs, size_t n)
{
    lmd_dns_touched t = {0};
    lmd_dns_xfr x = {.kind = LMD_DNS_XFR_FULL, .serial = ++serial, .rrs = rrs, .n_rrs = n};
    CHECK(lmd_dns_zone_take_changes(&zn, TZ, &x, &t) == 0 && t.all, "%s: a whole transfer touches all", what);
    lmd_dns_touched_clear(&t);
    whole(&zn, vc);
    compare(what);
    for (size_t i = 0; i < n; i++)
        lmd_txt_free(&rrs[i].txt);
}

int main(void)
{
    vw = calloc(1, sizeof *vw);
    vc = calloc(1, sizeof *vc);
    CHECK(vw && vc, "memory");
    lmd_dns_rr base[] = {srv("a", 0, 1, 100), txt("a", 0, 1), srv("b", 0, 2, 200), txt("b", 0, 2),
                         addr(1, false, 1), addr(2, false, 2), addr(3, false, 3)};
    full("start", base, sizeof base / sizeof base[0]);
    CHECK(vc->n == 2, "two services (%zu)", vc->n);

    { /* deleted and re-added in one diff, another port */
        lmd_dns_rr d[] = {srv("a", 0, 1, 100), txt("a", 0, 1)}, a[] = {srv("a", 0, 1, 101), txt("a", 0, 9)};
        diff("a deleted and re-added in one diff", d, 2, a, 2);
    }
    { /* the SRV target moved to another host */
        lmd_dns_rr d[] = {srv("a", 0, 1, 101)}, a[] = {srv("a", 0, 3, 101)};
        diff("a's SRV target moved h1 -> h3", d, 1, a, 1);
    }
    { /* h3's address changed, its SRV untouched */
        lmd_dns_rr d[] = {addr(3, false, 3)}, a[] = {addr(3, false, 33)};
        diff("h3's A changed without its SRV", d, 1, a, 1);
    }
    { /* h3 loses its address; then gets one again */
        lmd_dns_rr d[] = {addr(3, false, 33)};
        diff("h3's A deleted", d, 1, NULL, 0);
        lmd_dns_rr a[] = {addr(3, true, 5)};
        diff("h3 gets an AAAA", NULL, 0, a, 1);
    }
    { /* TXT split into two records, then merged again */
        lmd_dns_rr d[] = {txt("b", 0, 2)}, a[] = {txt_kv("b", "b", "model", "m2"), txt_kv("b", "b", "x", "1")};
        diff("b's TXT split", d, 1, a, 2);
        lmd_dns_rr d2[] = {txt_kv("b", "b", "model", "m2"), txt_kv("b", "b", "x", "1")}, a2[] = {txt("b", 0, 7)};
        diff("b's TXT merged", d2, 2, a2, 1);
    }
    { /* names differing only in case: the SRV as "C", its TXT as "c" */
        lmd_dns_rr a[] = {srv_on("C", "C", 1, 300), txt_kv("c", "c", "model", "mc")};
        diff("C's SRV, c's TXT", NULL, 0, a, 2);
        /* the server's IXFR deletes the SRV with the owner written in lower case */
        lmd_dns_rr d[] = {srv_on("c", "c", 1, 300)};
        diff("c's SRV deleted (owner in lower case)", d, 1, NULL, 0);
        lmd_dns_rr a2[] = {srv_on("D", "D", 1, 400), srv_on("d", "d", 2, 401)};
        diff("D and d: one name, two SRVs", NULL, 0, a2, 2);
        lmd_dns_rr d2[] = {srv_on("D", "D", 1, 400)};
        diff("D's SRV deleted, d's stays", d2, 1, NULL, 0);
        lmd_dns_rr a3[] = {addr_owner("H2." DOM, "10.9.9.9")};
        diff("an address for H2 (upper case): host h2", NULL, 0, a3, 1);
    }
    { /* a whole transfer in the middle, then diffs again */
        lmd_dns_rr b2[] = {srv("a", 0, 2, 500), txt("a", 0, 5), srv("e", 0, 1, 600), addr(1, false, 1),
                           addr(2, false, 2)};
        full("AXFR mid-sequence", b2, sizeof b2 / sizeof b2[0]);
        lmd_dns_rr d[] = {srv("e", 0, 1, 600)}, a[] = {srv("e", 0, 2, 600), txt("e", 0, 6)};
        diff("after the AXFR: e moved and gets a TXT", d, 1, a, 2);
    }
    lmd_dns_zone_clear(&zn);
    free(vw);
    free(vc);
    printf("%d checks, %d failed\n", checks, failures);
    return failures != 0;
}
