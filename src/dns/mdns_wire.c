/* The passive mDNS listener (lmd_mwire, see mdnsw.h): instances of one
 * type assembled from what arrives, each checked record by record as the
 * one-shot scan checks them (mdns_parse.c), in a bounded table. */
#include "dns/internal.h"
#include "dns/mdnsq.h"
#include "dns/mdnsw.h"
#include "dns/mdns_sock.h"
#include "base/instance.h"
#include "base/loop.h"
#include "base/txt.h"
#include "base/util.h"

#include <event2/event.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define NBUCKETS 1024
#define TOUCHED 64
#define TICK 2.0 /* s between looks at the deadlines, while anything is kept */

struct mw_inst {
    struct mw_inst *next;
    int ifindex, proto;
    char name[64];
    bool ptr, srv, txt_ok, reported, held, local;
    char *host;
    uint16_t port;
    char src[64]; /* the source of the datagram that carried the SRV */
    lmd_txt txt;
    double until;            /* when the first of its records runs out */
    double t_ptr, t_srv, t_txt; /* each record's TTL (capped), from when it came */
};

struct mw_host {
    struct mw_host *next;
    int ifindex, proto;
    char *name;
    char a[64], aaaa[64];
    double until;
};

struct lmd_mwire {
    struct lmd_mwire_callbacks cb;
    void *ud;
    char *type;
    lmd_dns_mscope *scope;
    lmd_msock *socks;
    struct event *timer;
    struct mw_inst *inst[NBUCKETS];
    struct mw_host *host[NBUCKETS];
    unsigned n_inst, n_host, seed;
    lmd_mwire_stats st;
    /* the datagram being read */
    int ifindex, proto;
    bool local;
    const char *src;
    double now;
    struct mw_inst *touched[TOUCHED]; /* instances whose records it carried */
    unsigned n_touched;
    bool overflow; /* more than TOUCHED: look at every one */
};

static unsigned hash(const lmd_mwire *w, const char *s, int ifindex, int proto)
{
    unsigned h = (2166136261u ^ w->seed) ^ (unsigned)ifindex * 31u ^ (unsigned)proto;
    for (; *s; s++)
        h = (h ^ (unsigned char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s)) * 16777619u;
    h ^= h >> 15;
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    return h % NBUCKETS;
}

static struct mw_inst **inst_slot(lmd_mwire *w, int ifindex, int proto, const char *name)
{
    struct mw_inst **p = &w->inst[hash(w, name, ifindex, proto)];
    for (; *p; p = &(*p)->next)
        if ((*p)->ifindex == ifindex && (*p)->proto == proto && !strcasecmp((*p)->name, name))
            break;
    return p;
}

static struct mw_host *host_get(lmd_mwire *w, const char *name, bool make)
{
    unsigned h = hash(w, name, w->ifindex, w->proto);
    for (struct mw_host *x = w->host[h]; x; x = x->next)
        if (x->ifindex == w->ifindex && x->proto == w->proto && !strcasecmp(x->name, name))
            return x;
    if (!make)
        return NULL;
    if (w->n_host >= LMD_MWIRE_MAX) {
        w->st.dropped++;
        return NULL;
    }
    struct mw_host *x = calloc(1, sizeof *x);
    if (!x || !(x->name = lmd_strdup(name))) {
        free(x);
        return NULL;
    }
    x->ifindex = w->ifindex;
    x->proto = w->proto;
    x->next = w->host[h];
    w->host[h] = x;
    w->n_host++;
    return x;
}

static double ttl_until(double now, uint32_t ttl)
{
    return now + (ttl > LMD_MWIRE_TTL_MAX ? LMD_MWIRE_TTL_MAX : ttl);
}

static void fill(lmd_mwire *w, const struct mw_inst *i, struct lmd_instance *li, lmd_addr *a, char *ifname)
{
    memset(li, 0, sizeof *li);
    if (!if_indextoname((unsigned)i->ifindex, ifname))
        snprintf(ifname, IF_NAMESIZE, "if%d", i->ifindex);
    li->ifindex = i->ifindex;
    li->ifname = ifname;
    li->proto = i->proto;
    li->name = i->name;
    li->type = w->type;
    li->domain = "local";
    li->host = i->host;
    li->port = i->port;
    li->txt = &i->txt;
    /* LOCAL (this host's records) only from an IPv4 source of ours, as the
     * one-shot scan (mdns_sock.c); never OWN: that is avahi's to say */
    li->flags = i->local ? LMD_NODE_LOCAL : 0;
    /* not complete: the registry waits its settle window for the other
     * family's instance (the wire brings each family on its own), so a join
     * is one event with its addresses, as with avahi's answers */
    li->complete = false;
    li->addr = a;
    a->ifindex = i->ifindex;
    snprintf(a->ifname, sizeof a->ifname, "%s", ifname);
}

static void inst_free(struct mw_inst *i)
{
    free(i->host);
    lmd_txt_free(&i->txt);
    free(i);
}

/* Unlink *p and free it, telling gone if it was held. */
static void inst_drop(lmd_mwire *w, struct mw_inst **p, bool tell, bool goodbye)
{
    struct mw_inst *i = *p;
    *p = i->next;
    w->n_inst--;
    for (unsigned k = 0; k < w->n_touched; k++)
        if (w->touched[k] == i)
            w->touched[k] = NULL;
    if (i->held) {
        w->st.held--;
        if (tell && w->cb.gone) {
            char ifname[IF_NAMESIZE];
            struct lmd_instance li;
            lmd_addr a = {0};
            fill(w, i, &li, &a, ifname);
            w->cb.gone(w->ud, &li, goodbye);
        }
    }
    inst_free(i);
}

/* An instance as the callbacks see it: its address is the target's of the
 * instance's family if the wire carried it, else the SRV datagram's
 * source.  False when it has no address yet. */
static bool build(lmd_mwire *w, const struct mw_inst *i, struct lmd_instance *li, lmd_addr *a, char *ifname)
{
    const struct mw_host *x = NULL;
    int si = w->ifindex, sp = w->proto;
    w->ifindex = i->ifindex;
    w->proto = i->proto;
    x = host_get(w, i->host, false);
    w->ifindex = si;
    w->proto = sp;
    const char *addr = x ? (i->proto == 4 ? x->a : x->aaaa) : NULL;
    if (!addr || !addr[0])
        addr = i->src;
    if (!addr[0])
        return false;
    memset(a, 0, sizeof *a);
    fill(w, i, li, a, ifname);
    a->family = strchr(addr, ':') ? 6 : 4;
    int n = a->family == 6 && !strncasecmp(addr, "fe8", 3) ? snprintf(a->addr, sizeof a->addr, "%s%%%s", addr, ifname)
                                                            : snprintf(a->addr, sizeof a->addr, "%s", addr);
    return n >= 0 && (size_t)n < sizeof a->addr;
}

/* Whole: PTR, SRV, TXT and an address. */
static void try_report(lmd_mwire *w, struct mw_inst *i)
{
    if (i->reported || !i->ptr || !i->srv || !i->txt_ok || !i->host)
        return;
    char ifname[IF_NAMESIZE];
    struct lmd_instance li;
    lmd_addr a;
    if (!build(w, i, &li, &a, ifname))
        return;
    i->reported = i->held = true;
    w->st.found++;
    w->st.held++;
    if (w->cb.found)
        w->cb.found(w->ud, &li);
}

void lmd_mwire_each_held(lmd_mwire *w, void (*fn)(void *ud, const struct lmd_instance *in), void *ud)
{
    for (unsigned b = 0; b < NBUCKETS; b++)
        for (struct mw_inst *i = w->inst[b], *n; i; i = n) {
            n = i->next; /* (fn must not confirm, forget nor free any) */
            char ifname[IF_NAMESIZE];
            struct lmd_instance li;
            lmd_addr a;
            if (i->held && build(w, i, &li, &a, ifname))
                fn(ud, &li);
        }
}

static void on_rr(const lmd_dns_rr *rr, void *arg)
{
    lmd_mwire *w = arg;
    w->st.records++;
    bool bye = rr->ttl == 0; /* RFC 6762 section 10.1 */
    if (rr->type == LMD_DNS_T_A || rr->type == LMD_DNS_T_AAAA) {
        struct mw_host *x = host_get(w, rr->owner, !bye);
        char *slot = !x ? NULL : rr->type == LMD_DNS_T_A ? x->a : x->aaaa;
        if (slot && bye && !strcmp(slot, rr->addr))
            slot[0] = '\0';
        else if (slot && !bye) {
            /* the newest wins, as the cache-flush bit says (RFC 6762
             * section 10.2): a forged record planted first does not
             * outlive the host's own answer, nor is it kept by it */
            snprintf(slot, 64, "%s", rr->addr);
            x->until = ttl_until(w->now, rr->ttl);
        }
        return;
    }
    const char *label = rr->type == LMD_DNS_T_PTR ? rr->label : rr->owner_label;
    struct mw_inst **p = inst_slot(w, w->ifindex, w->proto, label), *i = *p;
    if (bye) {
        if (i && rr->type == LMD_DNS_T_PTR)
            inst_drop(w, p, true, true);
        return;
    }
    if (!i) {
        if (w->n_inst >= LMD_MWIRE_MAX) {
            w->st.dropped++;
            return;
        }
        if (!(i = calloc(1, sizeof *i)))
            return;
        i->ifindex = w->ifindex;
        i->proto = w->proto;
        snprintf(i->name, sizeof i->name, "%s", label);
        i->t_ptr = i->t_srv = i->t_txt = ttl_until(w->now, LMD_MWIRE_TTL_MAX);
        *p = i;
        w->n_inst++;
    }
    /* it lives while every record of it does (a cache's rule) */
    double *t = rr->type == LMD_DNS_T_PTR ? &i->t_ptr : rr->type == LMD_DNS_T_SRV ? &i->t_srv : &i->t_txt;
    *t = ttl_until(w->now, rr->ttl);
    i->until = i->t_ptr < i->t_srv ? i->t_ptr : i->t_srv;
    if (i->t_txt < i->until)
        i->until = i->t_txt;
    if (i->reported)
        return; /* held as reported: avahi's answer says what changed */
    i->local = i->local || w->local;
    unsigned k = 0;
    while (k < w->n_touched && w->touched[k] != i)
        k++;
    if (k == w->n_touched) {
        if (k < TOUCHED)
            w->touched[w->n_touched++] = i;
        else
            w->overflow = true;
    }
    switch (rr->type) {
    case LMD_DNS_T_PTR:
        i->ptr = true;
        break;
    case LMD_DNS_T_SRV: {
        char *h = lmd_strdup(rr->target);
        if (!h)
            return;
        free(i->host);
        i->host = h;
        i->port = rr->port;
        i->srv = true;
        snprintf(i->src, sizeof i->src, "%s", w->src ? w->src : "");
        break;
    }
    case LMD_DNS_T_TXT:
        lmd_txt_free(&i->txt);
        i->txt_ok = lmd_txt_copy(&i->txt, &rr->txt) == 0;
        break;
    default:
        return;
    }
}

/* After a datagram: report what it made whole, looking only at the
 * instances whose records it carried (an address record alone completes
 * nothing: an instance is whole with its SRV datagram's source). */
static void report_touched(lmd_mwire *w)
{
    if (w->overflow) {
        for (unsigned h = 0; h < NBUCKETS; h++)
            for (struct mw_inst *i = w->inst[h], *n; i; i = n) {
                n = i->next; /* (found may confirm it: freed) */
                try_report(w, i);
            }
    } else {
        for (unsigned k = 0; k < w->n_touched; k++)
            if (w->touched[k]) /* (NULL: dropped meanwhile, inst_drop) */
                try_report(w, w->touched[k]);
    }
    w->n_touched = 0;
    w->overflow = false;
}

void lmd_mwire_feed(lmd_mwire *w, const uint8_t *wire, size_t len, int ifindex, int proto, bool local,
                    const char *src, double now)
{
    w->st.packets++;
    w->ifindex = ifindex;
    w->proto = proto;
    w->local = local;
    w->src = src;
    w->now = now;
    w->n_touched = 0;
    w->overflow = false;
    if (lmd_dns_mdns_parse(w->scope, wire, len, on_rr, w, &w->st.skipped, NULL) != 0) {
        w->st.refused++; /* queries (ours looped back, others'), garbage */
        return;
    }
    report_touched(w);
    w->src = NULL;
}

static void on_packet(const uint8_t *wire, size_t len, int ifindex, int proto, bool local, const char *src,
                      void *arg)
{
    lmd_mwire_feed(arg, wire, len, ifindex, proto, local, src, lmd_now_mono());
}

void lmd_mwire_tick(lmd_mwire *w, double now)
{
    for (unsigned h = 0; h < NBUCKETS; h++) {
        for (struct mw_inst **p = &w->inst[h]; *p;) {
            if ((*p)->until <= now)
                inst_drop(w, p, true, false); /* unlinks: p now holds the next */
            else
                p = &(*p)->next;
        }
        for (struct mw_host **p = &w->host[h]; *p;) {
            struct mw_host *x = *p;
            if (x->until > now) {
                p = &x->next;
                continue;
            }
            *p = x->next;
            w->n_host--;
            free(x->name);
            free(x);
        }
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_mwire *w = arg;
    lmd_mwire_tick(w, lmd_now_mono());
    (void)lmd_timer_in(w->timer, TICK); /* out of memory: the caller's close ends it */
}

void lmd_mwire_confirm(lmd_mwire *w, int ifindex, int proto, const char *name)
{
    struct mw_inst **p = inst_slot(w, ifindex, proto, name);
    if (*p)
        inst_drop(w, p, false, false);
}

void lmd_mwire_forget(lmd_mwire *w, int ifindex, int proto, const char *name)
{
    lmd_mwire_confirm(w, ifindex, proto, name);
}

int lmd_mwire_new(struct event_base *base, const char *type, const struct lmd_mwire_callbacks *cb, void *ud,
                  lmd_mwire **out, lmd_err *err)
{
    *out = NULL;
    char why[256];
    if (!lmd_ldns_available(why, sizeof why))
        return lmd_err_set(err, LMD_EUNAVAIL, "no libldns (%s)", why);
    lmd_mwire *w = calloc(1, sizeof *w);
    if (!w)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    if (getrandom(&w->seed, sizeof w->seed, GRND_NONBLOCK) != (ssize_t)sizeof w->seed)
        w->seed = (unsigned)(lmd_now_mono() * 1e9) ^ (unsigned)(uintptr_t)w;
    if (cb)
        w->cb = *cb;
    w->ud = ud;
    int rc;
    if (!(w->type = lmd_strdup(type)) || (base && !(w->timer = evtimer_new(base, on_timer, w)))) {
        rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = lmd_dns_mscope_new(type, "local", &w->scope, err)) != 0)
        goto fail;
    if (base) {
        if ((rc = lmd_msock_open(base, on_packet, w, &w->socks, err)) != 0)
            goto fail;
        w->st.sockets = lmd_msock_count(w->socks);
        if (lmd_timer_in(w->timer, TICK) != 0) {
            rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
            goto fail;
        }
    }
    *out = w;
    return 0;
fail:
    lmd_mwire_free(w);
    return rc;
}

void lmd_mwire_stats_get(const lmd_mwire *w, lmd_mwire_stats *st)
{
    *st = w->st;
    st->entries = w->n_inst + w->n_host;
    if (w->socks) {
        st->dropped += lmd_msock_dropped(w->socks);
        st->hops_refused = lmd_msock_hops_refused(w->socks);
    }
}

void lmd_mwire_free(lmd_mwire *w)
{
    if (!w)
        return;
    lmd_msock_close(w->socks);
    lmd_event_free(w->timer);
    for (unsigned h = 0; h < NBUCKETS; h++) {
        for (struct mw_inst *i = w->inst[h], *n; i; i = n) {
            n = i->next;
            inst_free(i);
        }
        for (struct mw_host *x = w->host[h], *n; x; x = n) {
            n = x->next;
            free(x->name);
            free(x);
        }
    }
    lmd_dns_mscope_free(w->scope);
    free(w->type);
    free(w);
}
