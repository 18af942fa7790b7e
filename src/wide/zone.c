/* Wide-area browsing's copy of the domain (issue 10): what the last zone
 * transfer said, kept so that the next one can be an IXFR (only what
 * changed since our serial) and the services read from it again.
 *
 * Only what browsing needs is kept, compactly (lmd_dns_rr is 2 KiB a
 * record): PTR records at TYPE.DOMAIN, SRV and TXT records under it, and
 * every A and AAAA (SRV targets may be anywhere in the zone).  A diff
 * deletes records by value (owner, type and data, as RFC 1995 lists them)
 * and adds the new ones; a deletion of something we do not hold means our
 * copy is not the server's: the copy is dropped and the next read is a
 * whole transfer. */
#include "wide/browse.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

static bool wanted(const char *type_zone, const lmd_dns_rr *r)
{
    switch (r->type) {
    case LMD_DNS_T_PTR:
        return !strcasecmp(r->owner, type_zone) && lmd_dns_instance_name(r->target, type_zone);
    case LMD_DNS_T_SRV:
    case LMD_DNS_T_TXT: /* exactly INSTANCE.TYPE.ZONE: not a name below another instance */
        return lmd_dns_instance_name(r->owner, type_zone);
    case LMD_DNS_T_A:
    case LMD_DNS_T_AAAA:
        return true;
    default:
        return false;
    }
}

static void zrec_free(struct zrec *z)
{
    free(z->owner);
    free(z->target);
    lmd_txt_free(&z->txt);
}

static bool same(const struct zrec *z, const lmd_dns_rr *r)
{
    if (z->type != r->type || strcasecmp(z->owner, r->owner))
        return false;
    switch (r->type) {
    case LMD_DNS_T_PTR:
        return !strcasecmp(z->target, r->target);
    case LMD_DNS_T_SRV:
        return z->port == r->port && !strcasecmp(z->target, r->target);
    case LMD_DNS_T_TXT:
        return lmd_txt_equal(&z->txt, &r->txt);
    default:
        return !strcmp(z->addr, r->addr);
    }
}

static int add(struct wzone *zn, const lmd_dns_rr *r)
{
    if (zn->n >= MAX_ZONE_RECORDS)
        return -1;
    if (zn->n == zn->cap) {
        size_t cap = zn->cap ? 2 * zn->cap : 64;
        struct zrec *more = realloc(zn->r, cap * sizeof *more);
        if (!more)
            return -1;
        zn->r = more;
        zn->cap = cap;
    }
    struct zrec *z = &zn->r[zn->n];
    *z = (struct zrec){.type = (uint16_t)r->type, .port = r->port, .owner = strdup(r->owner),
                       .target = r->target[0] ? strdup(r->target) : NULL};
    snprintf(z->owner_label, sizeof z->owner_label, "%s", r->owner_label);
    snprintf(z->label, sizeof z->label, "%s", r->label);
    snprintf(z->addr, sizeof z->addr, "%.45s", r->addr);
    if (!z->owner || (r->target[0] && !z->target) || (r->type == LMD_DNS_T_TXT && lmd_txt_copy(&z->txt, &r->txt))) {
        zrec_free(z);
        return -1;
    }
    zn->n++;
    return 0;
}

void lmd_wb_zone_clear(struct wzone *zn)
{
    for (size_t i = 0; i < zn->n; i++)
        zrec_free(&zn->r[i]);
    free(zn->r);
    *zn = (struct wzone){0};
}

int lmd_wb_zone_take(struct wzone *zn, const char *type_zone, const lmd_dns_xfr *x)
{
    if (x->kind == LMD_DNS_XFR_FULL) {
        lmd_wb_zone_clear(zn);
        for (size_t i = 0; i < x->n_rrs; i++)
            if (wanted(type_zone, &x->rrs[i]) && add(zn, &x->rrs[i]) != 0) {
                lmd_wb_zone_clear(zn);
                return -1;
            }
    } else if (x->kind == LMD_DNS_XFR_DIFF) {
        if (!zn->have)
            return -1;
        for (size_t d = 0; d < x->n_diffs; d++) {
            const lmd_dns_xfr_diff *df = &x->diffs[d];
            for (size_t i = 0; i < df->n_deleted; i++) {
                const lmd_dns_rr *r = &df->deleted[i];
                if (!wanted(type_zone, r))
                    continue;
                size_t k = 0;
                while (k < zn->n && !same(&zn->r[k], r))
                    k++;
                if (k == zn->n) { /* not the server's zone any more */
                    lmd_wb_zone_clear(zn);
                    return -1;
                }
                zrec_free(&zn->r[k]);
                zn->r[k] = zn->r[--zn->n];
            }
            for (size_t i = 0; i < df->n_added; i++)
                if (wanted(type_zone, &df->added[i]) && add(zn, &df->added[i]) != 0) {
                    lmd_wb_zone_clear(zn);
                    return -1;
                }
        }
    } else if (!zn->have) { /* up to date with a copy we do not have */
        return -1;
    }
    zn->have = true;
    zn->serial = x->serial;
    return 0;
}

static int host_cmp(const void *x, const void *y)
{
    const struct found *a = *(const struct found *const *)x, *b = *(const struct found *const *)y;
    return strcasecmp(a->host, b->host);
}

/* The services of our type in the copy (PTR, then SRV and TXT by name,
 * then A and AAAA by host: sorted, so a large domain costs n log n). */
int lmd_wb_zone_services(const struct wzone *zn, struct found **out, size_t *n_out)
{
    size_t k = 0, n = 0;
    for (size_t i = 0; i < zn->n; i++)
        n += zn->r[i].type == LMD_DNS_T_PTR;
    struct found *f = calloc(n ? n : 1, sizeof *f);
    struct found **by_host = calloc(n ? n : 1, sizeof *by_host);
    if (!f || !by_host) {
        free(f);
        free(by_host);
        return -1;
    }
    for (size_t i = 0; i < zn->n && k < MAX_INSTANCES; i++)
        if (zn->r[i].type == LMD_DNS_T_PTR)
            snprintf(f[k++].name, sizeof f->name, "%s", zn->r[i].label);
    lmd_wb_sort(f, &k);
    for (size_t i = 0; i < zn->n; i++) {
        const struct zrec *r = &zn->r[i];
        if (r->type != LMD_DNS_T_SRV && r->type != LMD_DNS_T_TXT)
            continue;
        struct found *x = (struct found *)lmd_wb_find(f, k, r->owner_label);
        if (x && r->type == LMD_DNS_T_SRV && !x->srv && r->target) {
            x->srv = true;
            x->port = r->port;
            snprintf(x->host, sizeof x->host, "%s", r->target);
        } else if (x && r->type == LMD_DNS_T_TXT && !x->txt_ok) {
            lmd_txt_free(&x->full);
            if (lmd_txt_copy(&x->full, &r->txt) == 0) {
                lmd_wb_take_txt(x);
                x->txt_ok = true;
            }
        }
    }
    size_t nh = 0;
    for (size_t j = 0; j < k; j++)
        if (f[j].srv)
            by_host[nh++] = &f[j];
    qsort(by_host, nh, sizeof *by_host, host_cmp);
    for (size_t i = 0; i < zn->n; i++) {
        const struct zrec *r = &zn->r[i];
        if (r->type != LMD_DNS_T_A && r->type != LMD_DNS_T_AAAA)
            continue;
        struct found key = {0}, *kp = &key;
        snprintf(key.host, sizeof key.host, "%s", r->owner);
        struct found **hit = nh ? bsearch(&kp, by_host, nh, sizeof *by_host, host_cmp) : NULL;
        if (!hit)
            continue;
        size_t lo = (size_t)(hit - by_host), hi = lo;
        while (lo > 0 && !strcasecmp(by_host[lo - 1]->host, r->owner))
            lo--;
        while (hi + 1 < nh && !strcasecmp(by_host[hi + 1]->host, r->owner))
            hi++;
        for (size_t j = lo; j <= hi; j++) {
            /* of several addresses the same one every time: the copy's
             * order moves with every change */
            char *slot = r->type == LMD_DNS_T_A ? by_host[j]->a4 : by_host[j]->a6;
            if (!slot[0] || strcmp(r->addr, slot) < 0)
                snprintf(slot, sizeof by_host[j]->a4, "%s", r->addr);
        }
    }
    free(by_host);
    *out = f;
    *n_out = k;
    return 0;
}
