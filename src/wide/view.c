/* Wide-area browsing: the agent's view of the domain (the services read,
 * sorted by name, each its own allocation) and what changes in it goes
 * to the registry: a join or an update for a service new or changed, a
 * leave ("goodbye") for one gone, nothing for the rest.
 *
 * A read comes in one of two ways.  Whole (a walk with queries, a whole
 * zone transfer, a change to the shards the domain lists, a copy the view
 * fell behind): every service read is compared with the view's (a merge of
 * two sorted lists).  By changes (an IXFR, the usual read): the copy
 * (src/dns/zone.c) says which names and hosts the diff touched, and only
 * those services are derived again from it (lmd_dns_zone_service: a few
 * hash lookups each) and compared; the rest of the view is not looked at.
 * Either way the same comparison decides what is reported (judge), so a
 * whole read after a fallback reports only what changed, as the changes
 * would have. */
#include "wide/browse.h"
#include "base/log.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void lmd_wb_found_free(struct lmd_wfound *f, size_t n)
{
    for (size_t i = 0; f && i < n; i++) {
        lmd_txt_free(&f[i].txt);
        lmd_txt_free(&f[i].full);
    }
    free(f);
}

static void one_free(struct lmd_wfound *f)
{
    lmd_wb_found_free(f, f ? 1 : 0);
}

void lmd_wb_view_free(lmd_wide_browse *b)
{
    for (size_t i = 0; i < b->n_view; i++)
        one_free(b->view[i]);
    free(b->view);
    b->view = NULL;
    b->n_view = b->cap_view = 0;
}

/* the first place in the view whose name is not below name */
static size_t place(const lmd_wide_browse *b, const char *name)
{
    size_t lo = 0, hi = b->n_view;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(b->view[mid]->name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct lmd_wfound *lmd_wb_find(const lmd_wide_browse *b, const char *name)
{
    size_t i = place(b, name);
    return i < b->n_view && !strcmp(b->view[i]->name, name) ? b->view[i] : NULL;
}

static int by_name(const void *x, const void *y)
{
    return strcmp(((const struct lmd_wfound *)x)->name, ((const struct lmd_wfound *)y)->name);
}

void lmd_wb_sort(struct lmd_wfound *f, size_t *n)
{
    if (*n < 2)
        return;
    bool sorted = true; /* a zone copy's services come sorted and each once: nothing to move */
    for (size_t i = 1; i < *n && sorted; i++)
        sorted = strcmp(f[i - 1].name, f[i].name) < 0;
    if (sorted)
        return;
    qsort(f, *n, sizeof *f, by_name);
    size_t k = 1;
    for (size_t i = 1; i < *n; i++) {
        if (!strcmp(f[i].name, f[k - 1].name)) {
            lmd_txt_free(&f[i].txt);
            lmd_txt_free(&f[i].full);
            continue;
        }
        if (k != i)
            f[k] = f[i];
        k++;
    }
    *n = k;
}

void lmd_wb_instance(const lmd_wide_browse *b, const struct lmd_wfound *f, int proto, lmd_addr *addr,
                     struct lmd_instance *in)
{
    const lmd_wide *wd = b->wd;
    memset(addr, 0, sizeof *addr);
    snprintf(addr->addr, sizeof addr->addr, "%s", proto == 4 ? f->a4 : f->a6);
    addr->family = proto;
    snprintf(addr->ifname, sizeof addr->ifname, "dns");
    *in = (struct lmd_instance){.ifindex = 0, .ifname = "dns", .proto = proto, .name = f->name,
                                .type = lmd_wide_type(wd->cfg),
                                .domain = wd->cfg->wide_area.domain, .host = f->host, .port = f->port, .addr = addr,
                                .txt = &f->txt,
                                .flags = lmd_wide_owns(wd, f->name) ? LMD_NODE_LOCAL | LMD_NODE_OWN : 0};
}

/* Of several addresses of a family, the same one every time (servers
 * rotate them): the lowest. */
static void lowest(char slot[64], const lmd_dns_found *f, bool v4)
{
    slot[0] = '\0';
    for (size_t i = 0; i < f->n_addrs; i++)
        if ((strchr(f->addrs[i], ':') == NULL) == v4 && (!slot[0] || strcmp(f->addrs[i], slot) < 0))
            snprintf(slot, 64, "%s", f->addrs[i]);
}

/* w as the view holds it, into c (zeroed): 1, or 0 when it is skipped (a
 * TXT too big: counted and said; c left empty), or LMD_ENOMEM */
static int take_one(lmd_wide_browse *b, const lmd_dns_found *w, struct lmd_wfound *c)
{
    /* the same sizes (name 64, shard 64, host 1025): plain copies */
    memcpy(c->name, w->name, strlen(w->name) + 1);
    memcpy(c->shard, w->shard, strlen(w->shard) + 1);
    memcpy(c->host, w->host, strlen(w->host) + 1);
    c->port = w->port;
    c->srv = w->srv;
    lowest(c->a4, w, true);
    lowest(c->a6, w, false);
    if (!w->txt_ok)
        return 1;
    int rc = lmd_txt_copy(&c->full, &w->txt) != 0 ? LMD_ENOMEM : 1;
    lmd_wb_take_txt(c);
    c->txt_ok = true;
    if (rc == 1 && lmd_wb_txt_refused(b, c)) /* skipped, counted and said */
        rc = 0;
    if (rc != 1) {
        lmd_txt_free(&c->txt);
        lmd_txt_free(&c->full);
        memset(c, 0, sizeof *c);
    }
    return rc;
}

int lmd_wb_take_found(lmd_wide_browse *b, const lmd_dns_found *in, size_t n)
{
    struct lmd_wfound *f = calloc(n ? n : 1, sizeof *f);
    if (!f)
        return LMD_ENOMEM;
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        int r = take_one(b, &in[i], &f[k]);
        if (r < 0)
            rc = r;
        k += r == 1;
    }
    lmd_wb_sort(f, &k);
    lmd_wb_found_free(b->cur, b->n_cur);
    b->cur = f;
    b->n_cur = k;
    return rc;
}

/* One service: p as the view had it (NULL: none), c as read now (NULL:
 * gone).  c's liveness clock is carried from p; what changed is reported. */
static void judge(lmd_wide_browse *b, const struct lmd_wfound *p, struct lmd_wfound *c, double now, double wall)
{
    lmd_wide *wd = b->wd;
    if (c) {
        /* liveness: unchanged since the last read keeps its clock (and its
         * expiry); anything the publisher writes on a refresh that changed
         * (not the addresses: of several, which one a reader shows is not
         * the publisher's doing) starts it */
        bool same = p && p->srv == c->srv && p->port == c->port && !strcasecmp(p->host, c->host) &&
                    !strcmp(p->live, c->live) && lmd_txt_equal(&p->full, &c->full);
        c->changed_at = same ? p->changed_at : now;
        c->expired = same && p->expired;
    }
    if (p && !p->expired) { /* else it left already */
        for (int proto = 4; proto <= 6; proto += 2) {
            bool had = proto == 4 ? p->a4[0] : p->a6[0];
            bool has = c && c->srv && (proto == 4 ? c->a4[0] : c->a6[0]);
            if (had && !has) {
                lmd_addr addr;
                struct lmd_instance in;
                lmd_wb_instance(b, p, proto, &addr, &in);
                (void)lmd_peers_gone_at(wd->reg, &in, LMD_REASON_GOODBYE, now);
            }
        }
    }
    if (!c || !c->srv || c->expired)
        return;
    /* only what changed: a read after someone else's update must not make
     * this source the peer's newest (its host would flip between
     * NAME.local and NAME.DOMAIN for a peer also seen over mDNS); a refresh
     * (lmd-live alone changed) is not a change to report */
    bool same = p && p->srv && !p->expired && p->port == c->port && !strcmp(p->host, c->host) &&
                lmd_txt_equal(&p->txt, &c->txt);
    for (int proto = 4; proto <= 6; proto += 2) {
        const char *now_addr = proto == 4 ? c->a4 : c->a6, *was = p ? (proto == 4 ? p->a4 : p->a6) : "";
        if (!now_addr[0] || (same && !strcmp(now_addr, was)))
            continue;
        lmd_addr addr;
        struct lmd_instance in;
        lmd_wb_instance(b, c, proto, &addr, &in);
        /* both addresses come in this loop: a new peer joins with both, at
         * once (no settle window) */
        in.complete = !(proto == 4 && c->a6[0]);
        if (lmd_peers_seen(wd->reg, &in, now, wall) != 0)
            lmd_error("out of memory: \"%s\" from %s not recorded", c->name, wd->cfg->wide_area.domain);
    }
}

/* Whole: b->cur (sorted, each once) merged with the view. */
static int whole(lmd_wide_browse *b, double now, double wall)
{
    /* every allocation first, so that nothing is reported from a read
     * that cannot be taken in */
    size_t fresh = 0;
    for (size_t i = 0, j = 0; j < b->n_cur; j++) {
        while (i < b->n_view && strcmp(b->view[i]->name, b->cur[j].name) < 0)
            i++;
        fresh += !(i < b->n_view && !strcmp(b->view[i]->name, b->cur[j].name));
    }
    struct lmd_wfound **nv = malloc((b->n_view + fresh + 1) * sizeof *nv), **pool = calloc(fresh + 1, sizeof *pool);
    bool ok = nv && pool;
    for (size_t k = 0; ok && k < fresh; k++)
        ok = (pool[k] = malloc(sizeof **pool)) != NULL;
    if (!ok) {
        for (size_t k = 0; pool && k < fresh; k++)
            free(pool[k]);
        free(pool);
        free(nv);
        return LMD_ENOMEM;
    }
    size_t i = 0, j = 0, k = 0, used = 0;
    while (i < b->n_view || j < b->n_cur) {
        struct lmd_wfound *p = i < b->n_view ? b->view[i] : NULL, *c = j < b->n_cur ? &b->cur[j] : NULL;
        int cmp = !p ? 1 : !c ? -1 : strcmp(p->name, c->name);
        if (cmp < 0) {
            judge(b, p, NULL, now, wall);
            one_free(p);
            i++;
            continue;
        }
        if (cmp > 0)
            p = NULL;
        else
            i++;
        judge(b, p, c, now, wall);
        struct lmd_wfound *into = p ? p : pool[used++];
        if (p) {
            lmd_txt_free(&p->txt);
            lmd_txt_free(&p->full);
        }
        *into = *c;
        memset(c, 0, sizeof *c); /* its TXTs are into's now */
        nv[k++] = into;
        j++;
    }
    free(pool);
    free(b->view);
    b->view = nv;
    b->n_view = k;
    b->cap_view = k;
    lmd_wb_found_free(b->cur, b->n_cur);
    b->cur = NULL;
    b->n_cur = 0;
    b->view_reads[1]++;
    return 0;
}

/* room for one more in the view */
static int view_room(lmd_wide_browse *b)
{
    if (b->n_view < b->cap_view)
        return 0;
    size_t cap = b->cap_view ? 2 * b->cap_view : 64;
    struct lmd_wfound **more = realloc(b->view, cap * sizeof *more);
    if (!more)
        return LMD_ENOMEM;
    b->view = more;
    b->cap_view = cap;
    return 0;
}

/* The service name as read now (c, taken over; NULL: none) into the view. */
static int put(lmd_wide_browse *b, const char *name, struct lmd_wfound *c, double now, double wall)
{
    size_t i = place(b, name);
    struct lmd_wfound *p = i < b->n_view && !strcmp(b->view[i]->name, name) ? b->view[i] : NULL;
    if (!p && c && (b->n_view >= LMD_DNS_MAX_INSTANCES || view_room(b) != 0)) {
        one_free(c); /* past what a reader follows (a whole read lists no more either), or no memory */
        return b->n_view >= LMD_DNS_MAX_INSTANCES ? 0 : LMD_ENOMEM;
    }
    if (!p && !c)
        return 0;
    judge(b, p, c, now, wall);
    if (p && c) {
        b->view[i] = c;
    } else if (p) {
        memmove(&b->view[i], &b->view[i + 1], (b->n_view - i - 1) * sizeof *b->view);
        b->n_view--;
    } else {
        memmove(&b->view[i + 1], &b->view[i], (b->n_view - i) * sizeof *b->view);
        b->view[i] = c;
        b->n_view++;
    }
    one_free(p);
    return 0;
}

static int touch_cmp(const void *x, const void *y)
{
    return strcmp(((const struct lmd_dns_touch *)x)->name, ((const struct lmd_dns_touch *)y)->name);
}

static int host_cmp(const void *x, const void *y)
{
    return strcasecmp(x, y);
}

/* By changes: the services b->touched names, and those whose SRV target
 * is a host it names, derived again from the copy. */
static int changes(lmd_wide_browse *b, double now, double wall)
{
    lmd_dns_touched *t = &b->touched;
    if (t->n_names)
        qsort(t->names, t->n_names, sizeof *t->names, touch_cmp);
    for (size_t i = 0; i < t->n_names; i++) {
        if (i && !strcmp(t->names[i].name, t->names[i - 1].name))
            continue;
        lmd_dns_found f;
        int rc = lmd_dns_zone_service(&b->zone, t->names[i].name, t->names[i].text, &f);
        struct lmd_wfound *c = NULL;
        if (rc == 1) {
            c = calloc(1, sizeof *c);
            rc = c ? take_one(b, &f, c) : LMD_ENOMEM;
            if (rc != 1) {
                free(c);
                c = NULL;
            }
        }
        lmd_txt_free(&f.txt);
        if (rc < 0 || put(b, t->names[i].name, c, now, wall) != 0)
            return LMD_ENOMEM;
    }
    /* a host's addresses changed alone: its services with the new ones
     * (each its own copy: the registry's instance is compared with the
     * view's old one) */
    if (t->n_hosts)
        qsort(t->hosts, t->n_hosts, sizeof *t->hosts, host_cmp);
    for (size_t h = 0; h < t->n_hosts; h++) {
        if (h && !strcasecmp(t->hosts[h], t->hosts[h - 1]))
            continue;
        char a4[46], a6[46];
        lmd_dns_zone_addrs(&b->zone, t->hosts[h], a4, a6);
        for (size_t i = 0; i < b->n_view; i++) {
            struct lmd_wfound *p = b->view[i];
            if (!p->srv || strcasecmp(p->host, t->hosts[h]) || (!strcmp(p->a4, a4) && !strcmp(p->a6, a6)))
                continue;
            struct lmd_wfound *c = malloc(sizeof *c);
            if (!c)
                return LMD_ENOMEM;
            *c = *p;
            memset(&c->txt, 0, sizeof c->txt);
            memset(&c->full, 0, sizeof c->full);
            if (lmd_txt_copy(&c->txt, &p->txt) != 0 || lmd_txt_copy(&c->full, &p->full) != 0) {
                one_free(c);
                return LMD_ENOMEM;
            }
            snprintf(c->a4, sizeof c->a4, "%s", a4);
            snprintf(c->a6, sizeof c->a6, "%s", a6);
            judge(b, p, c, now, wall);
            b->view[i] = c;
            one_free(p);
        }
    }
    b->view_reads[0]++;
    return 0;
}

void lmd_wb_report(lmd_wide_browse *b)
{
    double now = lmd_now_mono(), wall = lmd_now_wall();
    int rc = b->by_changes ? changes(b, now, wall) : whole(b, now, wall);
    b->by_changes = false;
    lmd_dns_touched_clear(&b->touched);
    lmd_wb_found_free(b->cur, b->n_cur);
    b->cur = NULL;
    b->n_cur = 0;
    if (rc != 0) {
        lmd_error("wide-area browse: out of memory: reading %s whole at the next poll",
                  b->wd->cfg->wide_area.domain);
        b->view_behind = true;
        b->have_serial = false; /* so that the next poll reads, whatever the serial */
    } else {
        b->view_behind = false;
    }
    lmd_wide_registry_changed(b->wd);
    lmd_wb_arm_expiry(b);
}
