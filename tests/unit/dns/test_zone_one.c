/* src/dns/zone_one.c: a reader's copy read a service at a time.  What a
 * diff touched (lmd_dns_zone_take_changes) and each touched service derived
 * again (lmd_dns_zone_service, lmd_dns_zone_addrs) must give exactly what
 * a walk over the whole copy gives (lmd_dns_zone_services): checked after
 * each of many random diffs over a sharded domain (services in the domain
 * and in shards, some in two places, shared hosts, several addresses, a
 * second TXT, SRV targets at "."), and a join among many touches one name. */
#include "base/util.h"
#include "dns/dns.h"

#include <stdlib.h>
#include <string.h>

#include "../check.h"

#define DOM "sd.test"
#define TYPE "_lmserv._tcp"
#define TZ TYPE "." DOM

static unsigned long seed = 12345;
static unsigned rnd(unsigned n)
{
    seed = seed * 6364136223846793005ul + 1442695040888963407ul;
    return (unsigned)((seed >> 33) % n);
}

#include "zone_view.h"

static lmd_dns_rr list(unsigned shard)
{
    lmd_dns_rr r = {.type = LMD_DNS_T_PTR};
    snprintf(r.owner, sizeof r.owner, "b._dns-sd._udp." DOM);
    snprintf(r.owner_label, sizeof r.owner_label, "b");
    snprintf(r.target, sizeof r.target, "s%u." DOM, shard);
    snprintf(r.label, sizeof r.label, "s%u", shard);
    return r;
}


/* the records the copy should hold now, to pick deletions from */
#define MAXR 4096
static lmd_dns_rr held[MAXR];
static size_t n_held;

static void hold(const lmd_dns_rr *r)
{
    if (n_held < MAXR)
        held[n_held++] = *r;
}

int main(void)
{
    lmd_dns_zone zn = {0};
    struct view *v = calloc(1, sizeof *v), *w = calloc(1, sizeof *w);
    CHECK(v && w, "memory");
    char inst[32];

    /* the start: s1 and s2 listed, 300 services, 120 hosts */
    lmd_dns_rr *all = calloc(MAXR, sizeof *all);
    size_t n = 0;
    all[n++] = list(1);
    all[n++] = list(2);
    for (unsigned i = 0; i < 300; i++) {
        snprintf(inst, sizeof inst, "i%03u", i);
        unsigned place = i % 3, host = 1 + i % 120;
        all[n++] = srv(inst, place, host, (uint16_t)(1000 + i));
        all[n++] = txt(inst, place, i);
        if (i % 50 == 7) /* the same name in a second place */
            all[n++] = srv(inst, place == 2 ? 1 : place + 1, host, (uint16_t)(2000 + i));
    }
    for (unsigned h = 1; h <= 120; h++) {
        all[n++] = addr(h, false, h);
        if (h % 3 == 0)
            all[n++] = addr(h, true, h);
        if (h % 10 == 0)
            all[n++] = addr(h, false, 900 + h); /* a second address */
    }
    lmd_dns_touched t = {0};
    lmd_dns_xfr x = {.kind = LMD_DNS_XFR_FULL, .serial = 1, .rrs = all, .n_rrs = n};
    CHECK(lmd_dns_zone_take_changes(&zn, TZ, &x, &t) == 0 && t.all, "a whole zone touches all");
    lmd_dns_touched_clear(&t);
    for (size_t i = 0; i < n; i++)
        hold(&all[i]);
    whole(&zn, v);
    CHECK(v->n == 300, "300 services (%zu)", v->n);

    /* one join among them: one name touched (and its host), one service
     * derived, the rest as they were */
    lmd_dns_rr join[] = {srv("new", 1, 500, 7777), txt("new", 1, 7), addr(500, false, 77)};
    lmd_dns_xfr_diff dj = {.from = 1, .to = 2, .added = join, .n_added = 3};
    lmd_dns_xfr xj = {.kind = LMD_DNS_XFR_DIFF, .serial = 2, .diffs = &dj, .n_diffs = 1};
    CHECK(lmd_dns_zone_take_changes(&zn, TZ, &xj, &t) == 0 && !t.all, "a join: by changes");
    CHECK(t.n_names == 1 && !strcmp(t.names[0].name, "new") && !strcmp(t.names[0].text, "new") && t.n_hosts == 1 &&
          !strcmp(t.hosts[0], "h500." DOM), "one name, one host touched (%zu, %zu)", t.n_names, t.n_hosts);
    *w = *v;
    CHECK(follow(&zn, &t, w) == 2, "the join read again (by name and by its host)");
    whole(&zn, v);
    CHECK(v->n == 301 && w->n == 301 && !memcmp(v->text, w->text, sizeof v->text), "the same as a whole read");
    lmd_dns_touched_clear(&t);
    for (size_t i = 0; i < 3; i++)
        hold(&join[i]);

    /* up to date touches nothing */
    lmd_dns_xfr up = {.kind = LMD_DNS_XFR_UPTODATE, .serial = 2};
    CHECK(lmd_dns_zone_take_changes(&zn, TZ, &up, &t) == 0 && !t.all && !t.n_names && !t.n_hosts, "up to date");

    /* many random diffs: each read by changes equals the whole read */
    unsigned next = 1000, serial = 2, rounds = 0, alls = 0;
    for (int round = 0; round < 400; round++) {
        lmd_dns_rr del[8], add[8];
        size_t nd = 0, na = 0;
        unsigned kinds = 1 + rnd(3);
        for (unsigned k = 0; k < kinds; k++) {
            unsigned what = rnd(100);
            if (what < 30 && n_held > 0 && nd < 8) { /* delete a held record (not the list) */
                size_t i = rnd((unsigned)n_held);
                if (held[i].type == LMD_DNS_T_PTR && rnd(4))
                    continue;
                del[nd++] = held[i];
                held[i] = held[--n_held];
            } else if (what < 50 && na < 7) { /* a join somewhere, maybe on a host of its own */
                snprintf(inst, sizeof inst, "j%u", next);
                unsigned host = rnd(2) ? 1 + rnd(120) : next, place = rnd(4);
                add[na++] = srv(inst, place, rnd(10) ? host : 0, (uint16_t)next);
                add[na++] = txt(inst, place, next);
                next++;
            } else if (what < 70 && na < 8) { /* an address more for a host */
                add[na++] = addr(1 + rnd(130), rnd(2), next++);
            } else if (what < 85 && na < 8) { /* a second TXT for a service */
                snprintf(inst, sizeof inst, "i%03u", rnd(300));
                add[na++] = txt(inst, rnd(3), next++);
            } else if (what < 92 && na < 8) { /* a second SRV place */
                snprintf(inst, sizeof inst, "i%03u", rnd(300));
                add[na++] = srv(inst, rnd(4), 1 + rnd(120), (uint16_t)next++);
            } else if (na < 8) { /* the shards listed: s3 in or out */
                bool listed = false;
                for (size_t i = 0; i < n_held && !listed; i++)
                    if (held[i].type == LMD_DNS_T_PTR && !strcmp(held[i].target, "s3." DOM)) {
                        del[nd < 8 ? nd++ : 7] = held[i];
                        held[i] = held[--n_held];
                        listed = true;
                    }
                if (!listed)
                    add[na++] = list(3);
            }
        }
        for (size_t i = 0; i < na; i++)
            hold(&add[i]);
        lmd_dns_xfr_diff d = {.from = serial, .to = serial + 1, .deleted = del, .n_deleted = nd, .added = add,
                              .n_added = na};
        lmd_dns_xfr xd = {.kind = LMD_DNS_XFR_DIFF, .serial = ++serial, .diffs = &d, .n_diffs = 1};
        whole(&zn, w); /* before */
        CHECK(lmd_dns_zone_take_changes(&zn, TZ, &xd, &t) == 0, "round %d taken", round);
        if (t.all) {
            alls++;
        } else {
            follow(&zn, &t, w);
            rounds++;
        }
        whole(&zn, v);
        if (!t.all) {
            bool same = v->n == w->n;
            for (size_t i = 0; same && i < v->n; i++)
                same = !strcmp(v->text[i], w->text[i]);
            CHECK(same, "round %d: read by changes = whole read (%zu / %zu services)", round, w->n, v->n);
            if (!same)
                for (size_t i = 0; i < v->n || i < w->n; i++)
                    if (i >= v->n || i >= w->n || strcmp(v->text[i], w->text[i]))
                        printf("  whole %s\n  chang %s\n", i < v->n ? v->text[i] : "-", i < w->n ? w->text[i] : "-");
        }
        lmd_dns_touched_clear(&t);
        for (size_t i = 0; i < nd; i++) /* out of held: its TXT items are no one's now (the copy has its own) */
            if (del[i].type == LMD_DNS_T_TXT)
                lmd_txt_free(&del[i].txt);
    }
    CHECK(rounds > 300 && alls > 5, "%u rounds by changes, %u whole (the shard list changed)", rounds, alls);

    /* more names than LMD_DNS_TOUCHED_MAX: all */
    {
        size_t big = LMD_DNS_TOUCHED_MAX + 10;
        lmd_dns_rr *many = calloc(big, sizeof *many);
        for (size_t i = 0; i < big; i++) {
            snprintf(inst, sizeof inst, "m%zu", i);
            many[i] = srv(inst, 0, 1, 1);
        }
        lmd_dns_xfr_diff dm = {.from = serial, .to = serial + 1, .added = many, .n_added = big};
        lmd_dns_xfr xm = {.kind = LMD_DNS_XFR_DIFF, .serial = serial + 1, .diffs = &dm, .n_diffs = 1};
        CHECK(lmd_dns_zone_take_changes(&zn, TZ, &xm, &t) == 0 && t.all, "a diff of %zu names: whole", big);
        lmd_dns_touched_clear(&t);
        free(many);
    }
    /* a diff that does not fit: refused, and all */
    lmd_dns_rr ghost[] = {srv("ghost", 0, 1, 1)};
    lmd_dns_xfr_diff dg = {.from = 1, .to = 2, .deleted = ghost, .n_deleted = 1};
    lmd_dns_xfr xg = {.kind = LMD_DNS_XFR_DIFF, .serial = 99999, .diffs = &dg, .n_diffs = 1};
    CHECK(lmd_dns_zone_take_changes(&zn, TZ, &xg, &t) < 0 && t.all && !zn.have, "a diff that does not fit: all");
    lmd_dns_touched_clear(&t);

    for (size_t i = 0; i < n_held; i++)
        if (held[i].type == LMD_DNS_T_TXT)
            lmd_txt_free(&held[i].txt);
    lmd_dns_zone_clear(&zn);
    free(all);
    free(v);
    free(w);
    printf("%d checks, %d failed\n", checks, failures);
    return failures != 0;
}
