/* Our own one-shot mDNS browse (lmd_mdnsq, see dns.h): one QM query, the
 * answers read as they come, an instance reported as soon as its PTR,
 * SRV, TXT and an address of its family are in (per interface and
 * protocol, as avahi reports them), settled once the answers are due and
 * nothing new came for a quiet period. */
#include "dns/mdnsq_int.h"
#include "base/instance.h"
#include "base/loop.h"
#include "base/util.h"

#include <event2/event.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Keyed per query: with a fixed function a responder picks names that all
 * fall in one bucket, and each lookup walks a chain of up to LMD_MDNSQ_MAX
 * (8,192 hosts and 8,000 instances in one bucket: 0.86 s a datagram, 358
 * times the spread case; tests/attack/mdnsq_collide.c). */
static unsigned hash(const lmd_mdnsq *q, const char *s, int ifindex, int proto)
{
    unsigned h = (2166136261u ^ q->seed) ^ (unsigned)ifindex * 31u ^ (unsigned)proto;
    for (; *s; s++)
        h = (h ^ (unsigned char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s)) * 16777619u;
    h ^= h >> 15; /* the seed's bits into the low ones the bucket is taken from */
    h *= 0x2c1b3c6du;
    h ^= h >> 12;
    return h % NBUCKETS;
}

static struct mq_inst *inst_get(lmd_mdnsq *q, const char *name, bool make)
{
    unsigned h = hash(q, name, q->ifindex, q->proto);
    for (struct mq_inst *i = q->inst[h]; i; i = i->next)
        if (i->ifindex == q->ifindex && i->proto == q->proto && !strcasecmp(i->name, name))
            return i;
    if (!make)
        return NULL;
    if (q->n_inst >= LMD_MDNSQ_MAX) {
        q->st.dropped++;
        return NULL;
    }
    struct mq_inst *i = calloc(1, sizeof *i);
    if (!i)
        return NULL;
    i->ifindex = q->ifindex;
    i->proto = q->proto;
    snprintf(i->name, sizeof i->name, "%s", name);
    DL_PUSH(&q->inst[h], i, next, pnext);
    DL_PUSH(&q->all, i, all, pall);
    q->n_inst++;
    return i;
}

struct mq_inst *lmd_mq_inst_at(lmd_mdnsq *q, int ifindex, int proto, const char *name, bool make)
{
    if (strlen(name) >= sizeof((struct mq_inst *)0)->name)
        return NULL;
    int si = q->ifindex, sp = q->proto;
    q->ifindex = ifindex;
    q->proto = proto;
    struct mq_inst *i = inst_get(q, name, make);
    q->ifindex = si;
    q->proto = sp;
    return i;
}

static struct mq_host *host_get(lmd_mdnsq *q, int ifindex, int proto, const char *name, bool make)
{
    unsigned h = hash(q, name, ifindex, proto);
    for (struct mq_host *x = q->host[h]; x; x = x->next)
        if (x->ifindex == ifindex && x->proto == proto && !strcasecmp(x->name, name))
            return x;
    if (!make || q->n_host >= LMD_MDNSQ_MAX)
        return NULL;
    struct mq_host *x = calloc(1, sizeof *x);
    if (!x || !(x->name = lmd_strdup(name))) {
        free(x);
        return NULL;
    }
    x->ifindex = ifindex;
    x->proto = proto;
    x->next = q->host[h];
    q->host[h] = x;
    q->n_host++;
    return x;
}

/* The address an instance is reported with: its own family's (an IPv6
 * instance takes an A once settled, as avahi's any-family resolver does:
 * an IPv4-only publisher seen over IPv6). */
static const char *inst_addr(lmd_mdnsq *q, const struct mq_inst *i, int *family)
{
    if (!i->ptr || !i->srv || !i->txt_ok || !i->host)
        return NULL;
    const struct mq_host *x = i->hx;
    if (!x)
        return NULL;
    *family = i->proto;
    if (i->proto == 4)
        return x->a[0] ? x->a : NULL;
    if (x->aaaa[0])
        return x->aaaa;
    *family = 4;
    return q->settled && x->a[0] ? x->a : NULL;
}

static void fill(lmd_mdnsq *q, const struct mq_inst *i, struct lmd_instance *li, lmd_addr *a, char *ifname)
{
    memset(li, 0, sizeof *li);
    if (!if_indextoname((unsigned)i->ifindex, ifname))
        snprintf(ifname, IF_NAMESIZE, "if%d", i->ifindex);
    li->ifindex = i->ifindex;
    li->ifname = ifname;
    li->proto = i->proto;
    li->name = i->name;
    li->type = q->type;
    li->domain = "local";
    li->host = i->host;
    li->port = i->port;
    li->txt = &i->txt;
    li->flags = i->local ? LMD_NODE_LOCAL : 0;
    li->complete = true;
    li->addr = a;
    a->ifindex = i->ifindex;
    snprintf(a->ifname, sizeof a->ifname, "%s", ifname);
}

static void touch(lmd_mdnsq *q, struct mq_inst *i)
{
    if (i->reported)
        return;
    if (!i->ptnext)
        DL_PUSH(&q->touched, i, tnext, ptnext);
    if (!q->fresh) { /* the other protocol's records of a whole service are no news (above) */
        const struct mq_inst *o = lmd_mq_inst_at(q, i->ifindex, i->proto == 4 ? 6 : 4, i->name, false);
        q->fresh = !(o && o->reported);
    }
}

void lmd_mq_report(lmd_mdnsq *q, struct mq_inst *i)
{
    int family;
    const char *addr = i->reported ? NULL : inst_addr(q, i, &family);
    if (!addr)
        return;
    char ifname[IF_NAMESIZE];
    struct lmd_instance li;
    lmd_addr a = {0};
    fill(q, i, &li, &a, ifname);
    a.family = family;
    int n = family == 6 && !strncasecmp(addr, "fe8", 3) ? snprintf(a.addr, sizeof a.addr, "%s%%%s", addr, ifname)
                                                         : snprintf(a.addr, sizeof a.addr, "%s", addr);
    if (n < 0 || (size_t)n >= sizeof a.addr)
        return; /* never: inet_ntop's 45 bytes at most, '%' and an interface's 15 */
    i->reported = true;
    DL_UNLINK(i, wnext, pwnext); /* an address of its host changes nothing now */
    q->st.found++;
    if (q->cb.found)
        q->cb.found(q->ud, &li);
}

/* What the datagram touched (an instance's own record, or an address of
 * its host): each looked at once. */
static void report_touched(lmd_mdnsq *q)
{
    for (struct mq_inst *i; (i = q->touched);) {
        DL_UNLINK(i, tnext, ptnext);
        lmd_mq_report(q, i);
    }
}

static void inst_drop(lmd_mdnsq *q, struct mq_inst *i)
{
    DL_UNLINK(i, next, pnext);
    DL_UNLINK(i, all, pall);
    DL_UNLINK(i, wnext, pwnext);
    DL_UNLINK(i, tnext, ptnext);
    if (i->reported) {
        q->st.found--;
        if (q->cb.gone) {
            char ifname[IF_NAMESIZE];
            struct lmd_instance li;
            lmd_addr a = {0};
            fill(q, i, &li, &a, ifname);
            q->cb.gone(q->ud, &li);
        }
    }
    q->n_inst--;
    free(i->host);
    lmd_txt_free(&i->txt);
    free(i);
}

static void on_rr(const lmd_dns_rr *rr, void *arg)
{
    lmd_mdnsq *q = arg;
    q->st.records++;
    bool bye = rr->ttl == 0; /* RFC 6762 section 10.1: a goodbye */
    if (rr->type == LMD_DNS_T_A || rr->type == LMD_DNS_T_AAAA) {
        struct mq_host *x = host_get(q, q->ifindex, q->proto, rr->owner, !bye);
        char *slot = !x ? NULL : rr->type == LMD_DNS_T_A ? x->a : x->aaaa;
        if (slot && bye && !strcmp(slot, rr->addr))
            slot[0] = '\0';
        else if (slot && !bye && !slot[0]) { /* the first one stays (avahi's resolver reports one too) */
            snprintf(slot, 64, "%s", rr->addr);
            q->changed = true;
            for (struct mq_inst *w = x->waiters; w; w = w->wnext)
                touch(q, w);
        }
        return;
    }
    const char *label = rr->type == LMD_DNS_T_PTR ? rr->label : rr->owner_label;
    struct mq_inst *i = inst_get(q, label, !bye);
    if (!i)
        return;
    if (bye) {
        if (rr->type == LMD_DNS_T_PTR)
            inst_drop(q, i);
        else if (rr->type == LMD_DNS_T_SRV && !i->reported)
            i->srv = false;
        return;
    }
    i->local = i->local || q->local;
    switch (rr->type) {
    case LMD_DNS_T_PTR:
        if (!i->ptr) {
            q->changed = true;
            touch(q, i);
        }
        i->ptr = true;
        break;
    case LMD_DNS_T_SRV:
        if (i->reported)
            break; /* one coherent answer: what was reported stands (a one-shot) */
        if (!i->host || strcasecmp(i->host, rr->target) || i->port != rr->port) {
            char *h = lmd_strdup(rr->target);
            if (!h)
                break;
            free(i->host);
            i->host = h;
            i->port = rr->port;
            q->changed = true;
            touch(q, i);
            /* its host's addresses are looked at when they come */
            DL_UNLINK(i, wnext, pwnext);
            if ((i->hx = host_get(q, i->ifindex, i->proto, h, true)))
                DL_PUSH(&i->hx->waiters, i, wnext, pwnext);
        }
        if (!i->srv)
            touch(q, i);
        i->srv = true;
        break;
    case LMD_DNS_T_TXT:
        if (i->reported || i->txt_ok)
            break;
        if (lmd_txt_copy(&i->txt, &rr->txt) == 0) {
            i->txt_ok = true;
            q->changed = true;
            touch(q, i);
        }
        break;
    default:
        break;
    }
}

void lmd_mq_packet(const uint8_t *wire, size_t len, int ifindex, int proto, bool local, const char *src, void *arg)
{
    (void)src;
    lmd_mdnsq *q = arg;
    q->st.packets++;
    q->ifindex = ifindex;
    q->proto = proto;
    q->local = local;
    q->changed = q->fresh = false;
    if (lmd_dns_mdns_parse(q->scope, wire, len, on_rr, q, &q->st.skipped, NULL) != 0) {
        q->st.refused++; /* our own query looped back, other hosts' queries, garbage */
        return;
    }
    if (!q->changed)
        return;
    if (q->fresh) {
        double now = lmd_now_mono();
        /* the first answers' spread sets the quiet period; after it, what
         * comes answers our asks and repeats, at once (mdns_ask.c) */
        if (q->answered && !q->quiet && now - q->st.last_new > q->gap_max)
            q->gap_max = now - q->st.last_new;
        q->answered = true;
        q->st.last_new = now;
    }
    report_touched(q);
    if (!q->settled && q->fresh)
        lmd_mq_arm(q);
}

void lmd_mdnsq_feed(lmd_mdnsq *q, const uint8_t *wire, size_t len, int ifindex, int proto, bool local)
{
    lmd_mq_packet(wire, len, ifindex, proto, local, NULL, q);
}

void lmd_mdnsq_cover(lmd_mdnsq *q, int ifindex, int proto, const char *name)
{
    struct mq_inst *i = lmd_mq_inst_at(q, ifindex, proto, name, true);
    if (!i || i->covered || i->reported)
        return;
    i->covered = true;
    if (q->quiet && !q->settled && q->timer)
        (void)lmd_timer_in(q->timer, 0); /* look again at what is awaited */
}

bool lmd_mdnsq_found(const lmd_mdnsq *q, int ifindex, int proto, const char *name)
{
    const struct mq_inst *i = lmd_mq_inst_at((lmd_mdnsq *)q, ifindex, proto, name, false);
    return i && i->reported;
}

bool lmd_mdnsq_whole(const lmd_mdnsq *q, int ifindex, const char *name)
{
    return lmd_mdnsq_found(q, ifindex, 4, name) || lmd_mdnsq_found(q, ifindex, 6, name);
}

bool lmd_mdnsq_settled(const lmd_mdnsq *q) { return q->settled; }

void lmd_mdnsq_stats_get(const lmd_mdnsq *q, lmd_mdnsq_stats *st)
{
    *st = q->st;
    st->incomplete = q->n_inst - q->st.found;
    st->dropped += q->socks ? lmd_msock_dropped(q->socks) : 0;
}

void lmd_mdnsq_free(lmd_mdnsq *q)
{
    if (!q)
        return;
    lmd_msock_close(q->socks);
    lmd_event_free(q->timer);
    lmd_event_free(q->ask_timer);
    for (struct mq_inst *i = q->all, *n; i; i = n) {
        n = i->all;
        free(i->host);
        lmd_txt_free(&i->txt);
        free(i);
    }
    for (unsigned h = 0; h < NBUCKETS; h++)
        for (struct mq_host *x = q->host[h], *n; x; x = n) {
            n = x->next;
            free(x->name);
            free(x);
        }
    lmd_dns_mscope_free(q->scope);
    if (q->browse)
        ldns_rdf_deep_free(q->browse);
    free(q->query);
    free(q->type);
    free(q);
}
