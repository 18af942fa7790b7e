/* A reader's copy of a DNS-SD domain (see dns.h): what the last zone
 * transfer said, kept so that the next one can be an IXFR (only what
 * changed since our serial) and the services read from it again, as the
 * same lmd_dns_found a walk with queries gives.
 *
 * Only what browsing needs is kept, compactly (lmd_dns_rr is 2 KiB a
 * record): SRV and TXT records at INSTANCE.TYPE.DOMAIN, and every A and
 * AAAA (SRV targets may be anywhere in the zone).  The services are the
 * SRV owners, not the PTR records at TYPE.DOMAIN: that RRset is shared by
 * every host of the domain (neither BIND nor Knot can grant a key only its
 * own PTR data), so with PTRs any host's key could hide another host's
 * services, by deleting their PTRs or by adding more PTRs than a reader
 * lists (LMD_DNS_MAX_INSTANCES).  An instance's SRV and TXT are granted to
 * its own host's key, and its publisher writes and withdraws them in the
 * same update as its PTR (src/dns/update.c).  A diff
 * deletes records by value (owner, type and data, as RFC 1995 lists them)
 * and adds the new ones; a deletion of something we do not hold means our
 * copy is not the server's: the copy is dropped and the next read is a
 * whole transfer. */
#include "dns/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>

/* INSTANCE.HOST.ZONE, INSTANCE one label of any bytes, HOST one plain label */
static bool live_name(const char *name, const char *zone)
{
    size_t n = strlen(name), z = strlen(zone);
    if (n <= z + 1 || name[n - z - 1] != '.' || strcasecmp(name + n - z, zone) != 0)
        return false;
    size_t end = n - z - 1, dots = 0; /* the labels above the zone, in text: the instance's dots are escaped */
    for (size_t i = 0; i < end; i++) {
        if (name[i] == '\\') {
            i += isdigit((unsigned char)name[i + 1]) ? 3 : 1;
            continue;
        }
        dots += name[i] == '.';
    }
    return dots == 1;
}

/* The part of name after its first label (escapes read: an instance's
 * dots are escaped in text) */
const char *lmd_dns_zone_parent(const char *name)
{
    for (const char *p = name; *p; p++) {
        if (*p == '\\') {
            if (!p[1])
                return NULL;
            p += isdigit((unsigned char)p[1]) && p[2] && p[3] ? 3 : 1;
            continue;
        }
        if (*p == '.')
            return p + 1;
    }
    return NULL;
}

/* type_zone "TYPE.DOMAIN" (TYPE two labels, "_lmserv._tcp"): its domain */
const char *lmd_dns_zone_domain(const char *type_zone)
{
    const char *d = strchr(type_zone, '.');
    d = d ? strchr(d + 1, '.') : NULL;
    return d ? d + 1 : "";
}

/* name is TYPE.DOMAIN (shard "") or TYPE.SHARD.DOMAIN */
bool lmd_dns_zone_browse_name(const char *name, const char *type_zone, char shard[64])
{
    shard[0] = '\0';
    if (!strcasecmp(name, type_zone))
        return true;
    size_t t = (size_t)(lmd_dns_zone_domain(type_zone) - type_zone); /* "TYPE." */
    if (t == 0 || strncasecmp(name, type_zone, t) != 0)
        return false;
    return lmd_dns_shard_of(name + t, lmd_dns_zone_domain(type_zone), shard, 64);
}

/* b._dns-sd._udp.DOMAIN */
bool lmd_dns_zone_list_name(const char *name, const char *type_zone)
{
    size_t l = strlen(LMD_DNS_BROWSE_LIST);
    return !strncasecmp(name, LMD_DNS_BROWSE_LIST, l) && name[l] == '.' &&
           !strcasecmp(name + l + 1, lmd_dns_zone_domain(type_zone));
}

static bool wanted(const lmd_dns_zone *zn, const char *type_zone, const lmd_dns_rr *r)
{
    if (zn->live)
        return r->type == LMD_DNS_T_TXT && live_name(r->owner, type_zone);
    char shard[64];
    const char *up;
    switch (r->type) {
    case LMD_DNS_T_PTR: /* only the shards the domain lists: services are SRV owners */
        return lmd_dns_zone_list_name(r->owner, type_zone);
    case LMD_DNS_T_SRV:
    case LMD_DNS_T_TXT: /* exactly INSTANCE.TYPE.[SHARD.]ZONE: not a name below another instance */
        up = lmd_dns_zone_parent(r->owner);
        return up && lmd_dns_zone_browse_name(up, type_zone, shard) && lmd_dns_instance_name(r->owner, up);
    case LMD_DNS_T_A:
    case LMD_DNS_T_AAAA:
        return true;
    default:
        return false;
    }
}

static void zrec_free(struct lmd_dns_zrec *z)
{
    free(z->owner);
    free(z->target);
    lmd_txt_free(&z->txt);
}

static bool same(const struct lmd_dns_zrec *z, const lmd_dns_rr *r)
{
    if (z->type != r->type || strcasecmp(z->owner, r->owner))
        return false;
    switch (r->type) {
    case LMD_DNS_T_PTR: /* a target "." is kept as NULL */
        return !strcasecmp(z->target ? z->target : "", r->target);
    case LMD_DNS_T_SRV:
        return z->port == r->port && !strcasecmp(z->target ? z->target : "", r->target);
    case LMD_DNS_T_TXT:
        return lmd_txt_equal(&z->txt, &r->txt);
    default:
        return !strcmp(z->addr, r->addr);
    }
}

/* Of two TXT records at one owner, which one a reader takes: an order on
 * their content, so that the choice is the same whatever order the copy
 * holds them in (a diff moves records around: "the first one held" would
 * flip a service between its TXTs at someone else's change). */
static int txt_cmp(const lmd_txt *a, const lmd_txt *b)
{
    if (a->n != b->n)
        return a->n < b->n ? -1 : 1;
    for (size_t i = 0; i < a->n; i++) {
        const lmd_txt_item *x = &a->items[i], *y = &b->items[i];
        int c = strcmp(x->key, y->key);
        if (c)
            return c;
        if (x->has_value != y->has_value)
            return x->has_value ? 1 : -1;
        if (x->value_len != y->value_len)
            return x->value_len < y->value_len ? -1 : 1;
        if (x->value_len && (c = memcmp(x->value, y->value, x->value_len)) != 0)
            return c;
    }
    return 0;
}

bool lmd_dns_zone_better(const struct lmd_dns_zrec *a, const struct lmd_dns_zrec *b)
{
    if (a->type == LMD_DNS_T_TXT)
        return txt_cmp(&a->txt, &b->txt) < 0;
    /* SRV (with a target): the lowest target, then port */
    int c = strcasecmp(a->target ? a->target : "", b->target ? b->target : "");
    return c < 0 || (c == 0 && a->port < b->port);
}

/* ---- the index: a hash chain per (type, owner), so that a diff's delete
 * does not scan the copy (10,000 services are 40,000 records) ---- */

uint32_t lmd_dns_zone_hash(int type, const char *owner)
{
    uint32_t h = 2166136261u ^ (uint32_t)type;
    for (const char *p = owner; *p; p++)
        h = (h ^ (uint8_t)tolower((unsigned char)*p)) * 16777619u;
    return h;
}

static void link_rec(lmd_dns_zone *zn, size_t i)
{
    uint32_t *head = &zn->heads[lmd_dns_zone_hash(zn->r[i].type, zn->r[i].owner) & (zn->n_heads - 1)];
    zn->r[i].next = *head;
    *head = (uint32_t)i + 1;
}

/* the chain link that points at record i */
static uint32_t *link_to(lmd_dns_zone *zn, size_t i)
{
    uint32_t *at = &zn->heads[lmd_dns_zone_hash(zn->r[i].type, zn->r[i].owner) & (zn->n_heads - 1)];
    while (*at && *at != i + 1)
        at = &zn->r[*at - 1].next;
    return at;
}

/* room for n records in the index (a power of two, at least n) */
static int index_grow(lmd_dns_zone *zn, size_t n)
{
    if (zn->n_heads >= n && zn->heads)
        return 0;
    size_t nh = zn->n_heads ? zn->n_heads : 256;
    while (nh < n)
        nh *= 2;
    uint32_t *h = calloc(nh, sizeof *h);
    if (!h)
        return LMD_ENOMEM;
    free(zn->heads);
    zn->heads = h;
    zn->n_heads = nh;
    for (size_t i = 0; i < zn->n; i++)
        link_rec(zn, i);
    return 0;
}

/* drop record k: out of its chain, the last record moved into its place */
static void drop(lmd_dns_zone *zn, size_t k)
{
    uint32_t *at = link_to(zn, k);
    *at = zn->r[k].next;
    zrec_free(&zn->r[k]);
    size_t last = --zn->n;
    if (k != last) {
        uint32_t *to_last = link_to(zn, last);
        zn->r[k] = zn->r[last];
        *to_last = (uint32_t)k + 1;
    }
}

static long find(const lmd_dns_zone *zn, const lmd_dns_rr *r)
{
    if (!zn->heads)
        return -1;
    for (uint32_t at = zn->heads[lmd_dns_zone_hash(r->type, r->owner) & (zn->n_heads - 1)]; at; at = zn->r[at - 1].next)
        if (same(&zn->r[at - 1], r))
            return (long)at - 1;
    return -1;
}

static int add(lmd_dns_zone *zn, const lmd_dns_rr *r)
{
    if (zn->n >= LMD_DNS_XFR_MAX_RRS)
        return LMD_ENOMEM;
    if (zn->n == zn->cap) {
        size_t cap = zn->cap ? 2 * zn->cap : 64;
        struct lmd_dns_zrec *more = realloc(zn->r, cap * sizeof *more);
        if (!more)
            return LMD_ENOMEM;
        zn->r = more;
        zn->cap = cap;
    }
    struct lmd_dns_zrec *z = &zn->r[zn->n];
    *z = (struct lmd_dns_zrec){.type = (uint16_t)r->type, .port = r->port, .owner = strdup(r->owner),
                       .target = r->target[0] ? strdup(r->target) : NULL};
    snprintf(z->owner_label, sizeof z->owner_label, "%s", r->owner_label);
    snprintf(z->label, sizeof z->label, "%s", r->label);
    snprintf(z->addr, sizeof z->addr, "%.45s", r->addr);
    if (!z->owner || (r->target[0] && !z->target) || (r->type == LMD_DNS_T_TXT && lmd_txt_copy(&z->txt, &r->txt))) {
        zrec_free(z);
        return LMD_ENOMEM;
    }
    if (index_grow(zn, zn->n + 1) != 0) { /* links the records before this one */
        zrec_free(z);
        return LMD_ENOMEM;
    }
    zn->n++;
    link_rec(zn, zn->n - 1);
    return 0;
}

void lmd_dns_zone_clear(lmd_dns_zone *zn)
{
    for (size_t i = 0; i < zn->n; i++)
        zrec_free(&zn->r[i]);
    free(zn->r);
    free(zn->heads);
    bool live = zn->live; /* what it copies stays */
    char tz[sizeof zn->type_zone];
    memcpy(tz, zn->type_zone, sizeof tz);
    *zn = (lmd_dns_zone){.live = live};
    memcpy(zn->type_zone, tz, sizeof tz);
}

int lmd_dns_zone_take(lmd_dns_zone *zn, const char *type_zone, const lmd_dns_xfr *x)
{
    return lmd_dns_zone_take_changes(zn, type_zone, x, NULL);
}

int lmd_dns_zone_take_changes(lmd_dns_zone *zn, const char *type_zone, const lmd_dns_xfr *x, lmd_dns_touched *t)
{
    snprintf(zn->type_zone, sizeof zn->type_zone, "%s", type_zone);
    if (t && x->kind != LMD_DNS_XFR_UPTODATE)
        t->all = t->all || x->kind == LMD_DNS_XFR_FULL || !zn->have;
    if (x->kind == LMD_DNS_XFR_FULL) {
        lmd_dns_zone_clear(zn);
        for (size_t i = 0; i < x->n_rrs; i++)
            if (wanted(zn, type_zone, &x->rrs[i]) && add(zn, &x->rrs[i]) != 0) {
                lmd_dns_zone_clear(zn);
                return LMD_EIO;
            }
    } else if (x->kind == LMD_DNS_XFR_DIFF) {
        if (!zn->have)
            return LMD_EIO;
        for (size_t d = 0; d < x->n_diffs; d++) {
            const lmd_dns_xfr_diff *df = &x->diffs[d];
            for (size_t i = 0; i < df->n_deleted; i++) {
                const lmd_dns_rr *r = &df->deleted[i];
                if (!wanted(zn, type_zone, r))
                    continue;
                long k = find(zn, r);
                if (k < 0) { /* not the server's zone any more */
                    lmd_dns_zone_clear(zn);
                    if (t)
                        t->all = true;
                    return LMD_EIO;
                }
                lmd_dns_zone_touch(t, type_zone, r);
                if (t && strcmp(zn->r[k].owner, r->owner)) {
                    /* deleted by a name in other case ("c" for the "C"
                     * held, as the server's diff may write it): the name
                     * the copy's readers know is touched too */
                    lmd_dns_rr held = {.type = zn->r[k].type};
                    snprintf(held.owner, sizeof held.owner, "%s", zn->r[k].owner);
                    snprintf(held.owner_label, sizeof held.owner_label, "%s", zn->r[k].owner_label);
                    lmd_dns_zone_touch(t, type_zone, &held);
                }
                drop(zn, (size_t)k);
            }
            for (size_t i = 0; i < df->n_added; i++) {
                if (!wanted(zn, type_zone, &df->added[i]))
                    continue;
                lmd_dns_zone_touch(t, type_zone, &df->added[i]);
                if (add(zn, &df->added[i]) != 0) {
                    lmd_dns_zone_clear(zn);
                    if (t)
                        t->all = true;
                    return LMD_EIO;
                }
            }
        }
    } else if (!zn->have) { /* up to date with a copy we do not have */
        return LMD_EIO;
    }
    zn->have = true;
    zn->serial = x->serial;
    return 0;
}

/* bsearch: a name against a found one */
static int name_cmp(const void *key, const void *y)
{
    return strcmp(key, ((const lmd_dns_found *)y)->name);
}

struct ptr_ref {
    const char *name;   /* the zone copy's */
    char shard[64];
};

static int ref_cmp(const void *x, const void *y)
{
    const struct ptr_ref *a = x, *b = y;
    int c = strcmp(a->name, b->name);
    return c ? c : strcmp(a->shard, b->shard);
}

static int host_cmp(const void *x, const void *y)
{
    const lmd_dns_found *a = *(const lmd_dns_found *const *)x, *b = *(const lmd_dns_found *const *)y;
    return strcasecmp(a->host, b->host);
}

void lmd_dns_found_free(lmd_dns_found *f, size_t n)
{
    for (size_t i = 0; f && i < n; i++)
        lmd_txt_free(&f[i].txt);
    free(f);
}

/* The lowest address of a family, kept in a4 or a6 (of several the same
 * one every time: the copy's order moves with every change). */
struct pick {
    char a4[46], a6[46];
    size_t srv, txt;      /* the records taken */
    bool has_srv, has_txt;
};

/* The services of our type in the copy (the SRV owners, then SRV and TXT
 * by name, then A and AAAA by host: sorted, so a large domain costs
 * n log n). */
int lmd_dns_zone_services(const lmd_dns_zone *zn, lmd_dns_found **out, size_t *n_out)
{
    size_t k = 0, n = 0, n_shards = 0;
    const char *tz = zn->type_zone;
    char (*shards)[64] = calloc(LMD_DNS_MAX_SHARDS, sizeof *shards), label[64];
    for (size_t i = 0; i < zn->n; i++)
        n += zn->r[i].type == LMD_DNS_T_SRV;
    lmd_dns_found *f = calloc(n ? n : 1, sizeof *f);
    lmd_dns_found **by_host = calloc(n ? n : 1, sizeof *by_host);
    struct pick *picks = calloc(n ? n : 1, sizeof *picks);
    if (!f || !by_host || !picks || !shards) {
        free(f);
        free(by_host);
        free(picks);
        free(shards);
        return LMD_ENOMEM;
    }
    /* the shards the domain lists (b._dns-sd._udp PTR SHARD.DOMAIN) */
    for (size_t i = 0; i < zn->n && n_shards < LMD_DNS_MAX_SHARDS; i++)
        if (zn->r[i].type == LMD_DNS_T_PTR && lmd_dns_zone_list_name(zn->r[i].owner, tz) && zn->r[i].target &&
            lmd_dns_shard_of(zn->r[i].target, lmd_dns_zone_domain(tz), label, sizeof label))
            memcpy(shards[n_shards++], label, sizeof label);
    /* the names first, small (sorting lmd_dns_found itself would move
     * 1.7 KB a service: 17 MB at 10,000); the services: the SRV owners
     * at TYPE.DOMAIN and TYPE.SHARD.DOMAIN */
    struct ptr_ref *refs = calloc(n ? n : 1, sizeof *refs);
    if (!refs) {
        free(f);
        free(by_host);
        free(picks);
        free(shards);
        return LMD_ENOMEM;
    }
    size_t nr = 0;
    for (size_t i = 0; i < zn->n && nr < LMD_DNS_MAX_INSTANCES; i++) {
        const struct lmd_dns_zrec *r = &zn->r[i];
        const char *up = r->type == LMD_DNS_T_SRV ? lmd_dns_zone_parent(r->owner) : NULL;
        if (!up || !lmd_dns_zone_browse_name(up, tz, label))
            continue;
        bool listed = !label[0];
        for (size_t j = 0; j < n_shards && !listed; j++)
            listed = !strcasecmp(shards[j], label);
        if (!listed)
            continue; /* a shard the domain does not list (any more): not read */
        refs[nr].name = r->owner_label;
        memcpy(refs[nr++].shard, label, strlen(label) + 1);
    }
    free(shards);
    /* by name, each once (of one name in several places, the first) */
    qsort(refs, nr, sizeof *refs, ref_cmp);
    for (size_t i = 0; i < nr; i++) {
        if (k && !strcmp(refs[i].name, f[k - 1].name))
            continue;
        memcpy(f[k].name, refs[i].name, strlen(refs[i].name) + 1);  /* both 64 bytes at most */
        memcpy(f[k++].shard, refs[i].shard, strlen(refs[i].shard) + 1);
    }
    free(refs);
    for (size_t i = 0; i < zn->n; i++) {
        const struct lmd_dns_zrec *r = &zn->r[i];
        if (r->type != LMD_DNS_T_SRV && r->type != LMD_DNS_T_TXT)
            continue;
        lmd_dns_found *x = k ? bsearch(r->owner_label, f, k, sizeof *f, name_cmp) : NULL;
        const char *up = x ? lmd_dns_zone_parent(r->owner) : NULL;
        if (!up || !lmd_dns_zone_browse_name(up, tz, label) || strcasecmp(label, x->shard) != 0)
            continue; /* the same name in another shard */
        /* of several SRV (with a target) or TXT, the same one whatever
         * the copy's order (lmd_dns_zone_better) */
        struct pick *p = &picks[x - f];
        if (r->type == LMD_DNS_T_SRV && r->target && (!p->has_srv || lmd_dns_zone_better(r, &zn->r[p->srv]))) {
            p->srv = i;
            p->has_srv = true;
        } else if (r->type == LMD_DNS_T_TXT && (!p->has_txt || lmd_dns_zone_better(r, &zn->r[p->txt]))) {
            p->txt = i;
            p->has_txt = true;
        }
    }
    for (size_t j = 0; j < k; j++) {
        const struct pick *p = &picks[j];
        if (p->has_srv) {
            f[j].srv = true;
            f[j].port = zn->r[p->srv].port;
            snprintf(f[j].host, sizeof f[j].host, "%s", zn->r[p->srv].target);
        }
        if (p->has_txt && lmd_txt_copy(&f[j].txt, &zn->r[p->txt].txt) == 0)
            f[j].txt_ok = true;
    }
    size_t nh = 0;
    for (size_t j = 0; j < k; j++)
        if (f[j].srv)
            by_host[nh++] = &f[j];
    qsort(by_host, nh, sizeof *by_host, host_cmp);
    for (size_t i = 0; i < zn->n; i++) {
        const struct lmd_dns_zrec *r = &zn->r[i];
        if (r->type != LMD_DNS_T_A && r->type != LMD_DNS_T_AAAA)
            continue;
        lmd_dns_found key = {0}, *kp = &key;
        snprintf(key.host, sizeof key.host, "%s", r->owner);
        lmd_dns_found **hit = nh ? bsearch(&kp, by_host, nh, sizeof *by_host, host_cmp) : NULL;
        if (!hit)
            continue;
        size_t lo = (size_t)(hit - by_host), hi = lo;
        while (lo > 0 && !strcasecmp(by_host[lo - 1]->host, r->owner))
            lo--;
        while (hi + 1 < nh && !strcasecmp(by_host[hi + 1]->host, r->owner))
            hi++;
        for (size_t j = lo; j <= hi; j++) {
            struct pick *p = &picks[by_host[j] - f];
            char *slot = r->type == LMD_DNS_T_A ? p->a4 : p->a6;
            if (!slot[0] || strcmp(r->addr, slot) < 0)
                snprintf(slot, sizeof p->a4, "%s", r->addr);
        }
    }
    for (size_t j = 0; j < k; j++) {
        if (picks[j].a4[0])
            snprintf(f[j].addrs[f[j].n_addrs++], sizeof f->addrs[0], "%s", picks[j].a4);
        if (picks[j].a6[0])
            snprintf(f[j].addrs[f[j].n_addrs++], sizeof f->addrs[0], "%s", picks[j].a6);
    }
    free(picks);
    free(by_host);
    *out = f;
    *n_out = k;
    return 0;
}
