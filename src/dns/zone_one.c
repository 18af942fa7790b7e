/* A reader's copy of a domain (zone.c), read a service at a time: what a
 * diff touched (the SRV and TXT owners, the hosts whose addresses
 * changed), and one service derived again from the copy by its index
 * (a few hash lookups), exactly as lmd_dns_zone_services derives it from
 * a walk over the whole copy.  With 10,000 services a change read by IXFR
 * then costs the reader what the change holds, not what the domain holds
 * (the whole walk was 15 to 30 ms at every poll that found a change). */
#include "dns/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void lmd_dns_touched_clear(lmd_dns_touched *t)
{
    free(t->names);
    free(t->hosts);
    *t = (lmd_dns_touched){0};
}

/* room for one more in a list of cap, n; false: none (then t->all) */
static bool room(void **list, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? 2 * *cap : 16;
    void *more = realloc(*list, c * size);
    if (!more)
        return false;
    *list = more;
    *cap = c;
    return true;
}

/* A service's records come together in a diff (its SRV, TXT, PTR, A):
 * the last few entries are looked at so that each comes once or twice,
 * not four times; the reader sorts out the rest. */
#define RECENT 8

void lmd_dns_zone_touch(lmd_dns_touched *t, const char *type_zone, const lmd_dns_rr *r)
{
    (void)type_zone;
    if (!t || t->all)
        return;
    if (t->n_names + t->n_hosts >= LMD_DNS_TOUCHED_MAX) {
        t->all = true;
        return;
    }
    if (r->type == LMD_DNS_T_SRV || r->type == LMD_DNS_T_TXT) {
        const char *up = lmd_dns_zone_parent(r->owner);
        size_t len = up ? (size_t)(up - 1 - r->owner) : 0;
        if (!up || len >= sizeof t->names->text) {
            t->all = true;
            return;
        }
        for (size_t i = t->n_names, k = 0; i-- > 0 && k < RECENT; k++)
            if (!strcmp(t->names[i].name, r->owner_label))
                return;
        if (!room((void **)&t->names, &t->cap_names, t->n_names, sizeof *t->names)) {
            t->all = true;
            return;
        }
        struct lmd_dns_touch *n = &t->names[t->n_names++];
        snprintf(n->name, sizeof n->name, "%s", r->owner_label);
        memcpy(n->text, r->owner, len);
        n->text[len] = '\0';
    } else if (r->type == LMD_DNS_T_A || r->type == LMD_DNS_T_AAAA) {
        for (size_t i = t->n_hosts, k = 0; i-- > 0 && k < RECENT; k++)
            if (!strcasecmp(t->hosts[i], r->owner))
                return;
        if (!room((void **)&t->hosts, &t->cap_hosts, t->n_hosts, sizeof *t->hosts)) {
            t->all = true;
            return;
        }
        snprintf(t->hosts[t->n_hosts++], sizeof *t->hosts, "%s", r->owner);
    } else {
        t->all = true; /* the browse list (b._dns-sd._udp PTR): which shards are read */
    }
}

/* Of the records of type at owner (any case) whose first label is name
 * (raw; NULL: any), with a target (SRV, when target), the one a reader
 * takes (lmd_dns_zone_better, as lmd_dns_zone_services); -1: none */
static long first_at(const lmd_dns_zone *zn, int type, const char *owner, const char *name, bool target)
{
    if (!zn->heads)
        return -1;
    long best = -1;
    for (uint32_t at = zn->heads[lmd_dns_zone_hash(type, owner) & (zn->n_heads - 1)]; at; at = zn->r[at - 1].next) {
        const struct lmd_dns_zrec *z = &zn->r[at - 1];
        if (z->type != type || strcasecmp(z->owner, owner) || (name && strcmp(z->owner_label, name)) ||
            (target && !z->target))
            continue;
        if (best < 0 || ((type == LMD_DNS_T_SRV || type == LMD_DNS_T_TXT) && lmd_dns_zone_better(z, &zn->r[best])))
            best = (long)at - 1;
    }
    return best;
}

void lmd_dns_zone_addrs(const lmd_dns_zone *zn, const char *host, char a4[46], char a6[46])
{
    a4[0] = a6[0] = '\0';
    if (!zn->heads)
        return;
    for (int v6 = 0; v6 < 2; v6++) {
        int type = v6 ? LMD_DNS_T_AAAA : LMD_DNS_T_A;
        char *slot = v6 ? a6 : a4;
        for (uint32_t at = zn->heads[lmd_dns_zone_hash(type, host) & (zn->n_heads - 1)]; at; at = zn->r[at - 1].next) {
            const struct lmd_dns_zrec *z = &zn->r[at - 1];
            if (z->type == type && !strcasecmp(z->owner, host) && (!slot[0] || strcmp(z->addr, slot) < 0))
                snprintf(slot, 46, "%s", z->addr);
        }
    }
}

int lmd_dns_zone_service(const lmd_dns_zone *zn, const char *name, const char *text, lmd_dns_found *out)
{
    memset(out, 0, sizeof *out);
    const char *tz = zn->type_zone, *dom = lmd_dns_zone_domain(tz);
    int tl = (int)(dom - tz); /* "TYPE." */
    if (!zn->heads || tl == 0 || zn->live)
        return 0;
    char owner[1400], best[1400] = "", shard[64], label[64], best_shard[64] = "";
    bool found = false;
    /* DOMAIN itself: listed always, and first of the places by name */
    snprintf(owner, sizeof owner, "%s.%s", text, tz);
    if (first_at(zn, LMD_DNS_T_SRV, owner, name, false) >= 0) {
        found = true;
        snprintf(best, sizeof best, "%s", owner);
    } else {
        /* the shards the domain lists (b._dns-sd._udp PTR SHARD.DOMAIN) */
        char list[1100];
        snprintf(list, sizeof list, "%s.%s", LMD_DNS_BROWSE_LIST, dom);
        size_t n_shards = 0;
        for (uint32_t at = zn->heads[lmd_dns_zone_hash(LMD_DNS_T_PTR, list) & (zn->n_heads - 1)];
             at && n_shards < LMD_DNS_MAX_SHARDS; at = zn->r[at - 1].next) {
            const struct lmd_dns_zrec *z = &zn->r[at - 1];
            if (z->type != LMD_DNS_T_PTR || !lmd_dns_zone_list_name(z->owner, tz) || !z->target ||
                !lmd_dns_shard_of(z->target, dom, label, sizeof label))
                continue;
            n_shards++;
            snprintf(owner, sizeof owner, "%s.%.*s%s.%s", text, tl, tz, label, dom);
            long k = first_at(zn, LMD_DNS_T_SRV, owner, name, false);
            const char *up = k >= 0 ? lmd_dns_zone_parent(zn->r[k].owner) : NULL;
            if (!up || !lmd_dns_zone_browse_name(up, tz, shard))
                continue;
            if (!found || strcmp(shard, best_shard) < 0) { /* of several shards, the first by name */
                found = true;
                snprintf(best, sizeof best, "%s", zn->r[k].owner);
                memcpy(best_shard, shard, sizeof shard);
            }
        }
    }
    if (!found)
        return 0;
    snprintf(out->name, sizeof out->name, "%s", name);
    memcpy(out->shard, best_shard, sizeof best_shard);
    long k = first_at(zn, LMD_DNS_T_SRV, best, name, true);
    if (k >= 0) {
        out->srv = true;
        out->port = zn->r[k].port;
        snprintf(out->host, sizeof out->host, "%s", zn->r[k].target);
    }
    k = first_at(zn, LMD_DNS_T_TXT, best, name, false);
    if (k >= 0) {
        if (lmd_txt_copy(&out->txt, &zn->r[k].txt) != 0)
            return LMD_ENOMEM;
        out->txt_ok = true;
    }
    if (out->srv) {
        char a4[46], a6[46];
        lmd_dns_zone_addrs(zn, out->host, a4, a6);
        if (a4[0])
            snprintf(out->addrs[out->n_addrs++], sizeof out->addrs[0], "%s", a4);
        if (a6[0])
            snprintf(out->addrs[out->n_addrs++], sizeof out->addrs[0], "%s", a6);
    }
    return 1;
}
