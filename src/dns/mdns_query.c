/* Our own one-shot mDNS browse (lmd_mdnsq, see dns.h): one QM query, the
 * answers read as they come, an instance reported as soon as its PTR,
 * SRV, TXT and an address of its family are in (per interface and
 * protocol, as avahi reports them), settled once the answers are due and
 * nothing new came for a quiet period. */
#include "dns/internal.h"
#include "dns/mdnsq.h"
#include "dns/mdns_sock.h"
#include "base/instance.h"
#include "base/loop.h"
#include "base/util.h"

#include <event2/event.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

/* RFC 6762 section 6: a shared answer (our PTR) comes 20-120 ms after the
 * query reached the responder; ours carries no known answers, so no
 * responder waits the 400-500 ms of a truncated query.  Then nothing new
 * for QUIET: new is a record of a service whole over neither protocol yet
 * (the other protocol's records of a whole one are merged, and are no
 * news: a responder's late answers over one protocol, trickling in for
 * seconds under load, kept 500-service scans open to 2-3 s).
 *
 * A responder answers over IPv4 and over IPv6 separately (avahi-daemon's
 * response schedulers are per interface and protocol), and one of them may
 * come late or not at all: 500 services from 5 hosts on 2 cores at load
 * 8-12, one host's 100 instances over one protocol only in 1 run of 12,
 * 92 of 1,000 instances 0.1 s after the rest in another.  An instance
 * whole over one protocol is a complete peer, with that family's address:
 * the other family's is merged if it comes while the scan runs, and never
 * awaited (awaiting it, then handing it to avahi's resolvers, which wait
 * for the same silent responder, made one 500-service scan in four take
 * 10.5 s instead of 0.67).  What is awaited is an instance known (its PTR
 * came) and whole over neither protocol.  A responder does not multicast
 * a record again within a second (section 6: a scan right after a
 * service's announcements, or right after another scan, gets no answer
 * for it), so while any is awaited the query is sent again at REQUERY[]
 * after the first (what was answered before is not answered again within
 * the second, what was not is), up to EXPECT_MAX after it; then avahi
 * resolves what is still missing. */
#define WINDOW 0.2
#define QUIET 0.15
#define EXPECT_MAX 2.0
static const double REQUERY[] = {0.6, 1.3};
#define QUIET_MAX 0.5
#define NBUCKETS 1024

/* Intrusive doubly linked lists (an entry out of its list has a NULL
 * back pointer): an instance leaves its chain, the list of all, its host's
 * waiters and the touched list in O(1). */
#define DL_PUSH(head, x, nx, px)                                                                                       \
    do {                                                                                                               \
        (x)->nx = *(head);                                                                                             \
        if ((x)->nx)                                                                                                   \
            (x)->nx->px = &(x)->nx;                                                                                    \
        *(head) = (x);                                                                                                 \
        (x)->px = (head);                                                                                              \
    } while (0)
#define DL_UNLINK(x, nx, px)                                                                                           \
    do {                                                                                                               \
        if ((x)->px) {                                                                                                 \
            *(x)->px = (x)->nx;                                                                                        \
            if ((x)->nx)                                                                                               \
                (x)->nx->px = (x)->px;                                                                                 \
            (x)->nx = NULL;                                                                                            \
            (x)->px = NULL;                                                                                            \
        }                                                                                                              \
    } while (0)

struct mq_host;

struct mq_inst {
    struct mq_inst *next, **pnext; /* the bucket's chain */
    struct mq_inst *all, **pall;   /* every instance */
    struct mq_inst *wnext, **pwnext; /* its host's waiters: not reported, SRV in */
    struct mq_inst *tnext, **ptnext; /* touched by the datagram being read */
    struct mq_host *hx;              /* the SRV target's entry (same interface and protocol) */
    int ifindex, proto;
    char name[64];
    bool ptr, srv, txt_ok, reported, local;
    bool covered; /* the other source resolves it (lmd_mdnsq_cover): not awaited */
    char *host;
    uint16_t port;
    lmd_txt txt;
};

struct mq_host {
    struct mq_host *next;
    struct mq_inst *waiters; /* instances not reported whose SRV names it: looked at again on an address */
    int ifindex, proto;
    char *name;
    char a[64], aaaa[64];
};

struct lmd_mdnsq {
    struct event_base *base;
    lmd_mdnsq_callbacks cb;
    void *ud;
    char *type;
    lmd_dns_mscope *scope;
    lmd_msock *socks;
    struct event *timer;
    struct mq_inst *inst[NBUCKETS], *all;
    struct mq_inst *touched; /* to look at once the datagram is read: O(changed), not O(instances) */
    struct mq_host *host[NBUCKETS];
    unsigned n_inst, n_host;
    lmd_mdnsq_stats st;
    double gap_max; /* the longest silence between new answers so far */
    unsigned seed;  /* of the tables' hash (random) */
    uint8_t *query; /* as sent */
    size_t query_len;
    size_t requeries;
    bool settled, answered, quiet;
    /* the packet being read */
    int ifindex, proto;
    bool local, changed;
    bool fresh; /* it brought a record of a service whole over neither protocol yet */
};

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

static struct mq_inst *inst_at(lmd_mdnsq *q, int ifindex, int proto, const char *name)
{
    int si = q->ifindex, sp = q->proto;
    q->ifindex = ifindex;
    q->proto = proto;
    struct mq_inst *i = inst_get(q, name, false);
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
        const struct mq_inst *o = inst_at(q, i->ifindex, i->proto == 4 ? 6 : 4, i->name);
        q->fresh = !(o && o->reported);
    }
}

static void report_one(lmd_mdnsq *q, struct mq_inst *i)
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
        report_one(q, i);
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

static void arm(lmd_mdnsq *q)
{
    if (!q->timer)
        return; /* offline */
    double wait = 2 * q->gap_max < QUIET ? QUIET : 2 * q->gap_max > QUIET_MAX ? QUIET_MAX : 2 * q->gap_max;
    double due = q->st.sent + WINDOW, quiet = q->st.last_new + wait, now = lmd_now_mono();
    if (quiet > due)
        due = quiet;
    (void)lmd_timer_in(q->timer, due > now ? due - now : 0); /* out of memory: the caller's bound ends it */
}

static void on_packet(const uint8_t *wire, size_t len, int ifindex, int proto, bool local, const char *src,
                      void *arg)
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
        if (q->answered && now - q->st.last_new > q->gap_max)
            q->gap_max = now - q->st.last_new;
        q->answered = true;
        q->st.last_new = now;
    }
    report_touched(q);
    if (!q->settled && q->fresh)
        arm(q);
}

/* TYPE.local PTR, QM, ID 0 (RFC 6762 section 18.1), in wire format. */
static int query_wire(const char *name, uint8_t **wire, size_t *len)
{
    ldns_rdf *d = ldns_dname_new_frm_str(name);
    ldns_pkt *p = d ? ldns_pkt_query_new(d, LDNS_RR_TYPE_PTR, LDNS_RR_CLASS_IN, 0) : NULL; /* takes d */
    if (!p)
        return d ? LMD_ENOMEM : LMD_EINVAL;
    ldns_pkt_set_id(p, 0);
    int rc = ldns_pkt2wire(wire, p, len) == LDNS_STATUS_OK ? 0 : LMD_ENOMEM;
    ldns_pkt_free(p);
    return rc;
}

/* Instances known and whole over neither protocol, that no other source
 * covers (above). */
static unsigned expected(lmd_mdnsq *q)
{
    unsigned n = 0;
    for (struct mq_inst *i = q->all; i; i = i->all) {
        if (i->reported || i->covered || !i->ptr)
            continue;
        /* an IPv6 one with an A only is whole once settled */
        if (i->srv && i->txt_ok && i->hx && i->hx->a[0])
            continue;
        const struct mq_inst *o = inst_at(q, i->ifindex, i->proto == 4 ? 6 : 4, i->name);
        n += !(o && (o->reported || o->covered));
    }
    return n;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_mdnsq *q = arg;
    double now = lmd_now_mono(), bound = q->st.sent + EXPECT_MAX;
    if (!q->quiet) {
        q->quiet = true;
        if (q->cb.quiet)
            q->cb.quiet(q->ud); /* may cover some (lmd_mdnsq_cover) */
    }
    unsigned n = expected(q);
    q->st.expected = n;
    if (n && now < bound) {
        double next = bound;
        for (size_t k = 0; k < sizeof REQUERY / sizeof REQUERY[0]; k++) {
            double at = q->st.sent + REQUERY[k];
            if (q->requeries == k && now >= at) {
                q->requeries++;
                q->st.requeries += lmd_msock_send(q->socks, q->query, q->query_len) > 0;
            } else if (q->requeries <= k && at < next)
                next = at;
        }
        if (now + QUIET < next)
            next = now + QUIET;
        (void)lmd_timer_in(q->timer, next - now); /* or sooner: arm() */
        return;
    }
    lmd_mdnsq_settle_now(q); /* (IPv6 instances with an A only are whole now) */
}

int lmd_mdnsq_new(struct event_base *base, const char *type, const lmd_mdnsq_callbacks *cb, void *ud,
                  lmd_mdnsq **out, lmd_err *err)
{
    *out = NULL;
    char why[256];
    if (!lmd_ldns_available(why, sizeof why))
        return lmd_err_set(err, LMD_EUNAVAIL, "no libldns (%s)", why);
    lmd_mdnsq *q = calloc(1, sizeof *q);
    if (!q)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    q->base = base;
    if (getrandom(&q->seed, sizeof q->seed, GRND_NONBLOCK) != (ssize_t)sizeof q->seed)
        q->seed = (unsigned)(lmd_now_mono() * 1e9) ^ (unsigned)(uintptr_t)q;
    if (cb)
        q->cb = *cb;
    q->ud = ud;
    int rc = LMD_ENOMEM;
    char name[300];
    if (!(q->type = lmd_strdup(type)) || (base && !(q->timer = evtimer_new(base, on_timer, q)))) {
        rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(name, sizeof name, "%s.local", type);
    if ((rc = lmd_dns_mscope_new(type, "local", &q->scope, err)) != 0)
        goto fail;
    if ((rc = query_wire(name, &q->query, &q->query_len)) != 0) {
        lmd_err_set(err, rc, "cannot write the query for %s", name);
        goto fail;
    }
    if (!base) { /* offline: lmd_mdnsq_feed */
        *out = q;
        return 0;
    }
    if ((rc = lmd_msock_open(base, on_packet, q, &q->socks, err)) != 0)
        goto fail;
    q->st.sockets = lmd_msock_count(q->socks);
    q->st.sent = q->st.last_new = lmd_now_mono();
    if (!lmd_msock_send(q->socks, q->query, q->query_len)) {
        rc = lmd_err_set(err, LMD_EIO, "the mDNS query could not be sent on any interface");
        goto fail;
    }
    arm(q);
    *out = q;
    return 0;
fail:
    lmd_mdnsq_free(q);
    return rc;
}

void lmd_mdnsq_feed(lmd_mdnsq *q, const uint8_t *wire, size_t len, int ifindex, int proto, bool local)
{
    on_packet(wire, len, ifindex, proto, local, NULL, q);
}

void lmd_mdnsq_cover(lmd_mdnsq *q, int ifindex, int proto, const char *name)
{
    int si = q->ifindex, sp = q->proto;
    q->ifindex = ifindex;
    q->proto = proto;
    struct mq_inst *i = strlen(name) < sizeof i->name ? inst_get(q, name, true) : NULL;
    q->ifindex = si;
    q->proto = sp;
    if (!i || i->covered || i->reported)
        return;
    i->covered = true;
    if (q->quiet && !q->settled && q->timer)
        (void)lmd_timer_in(q->timer, 0); /* look again at what is awaited */
}

void lmd_mdnsq_settle_now(lmd_mdnsq *q)
{
    q->settled = true;
    /* once: an IPv6 instance with an A only is whole now */
    for (struct mq_inst *i = q->all; i; i = i->all)
        report_one(q, i);
    if (q->cb.settled)
        q->cb.settled(q->ud);
}

bool lmd_mdnsq_found(const lmd_mdnsq *q, int ifindex, int proto, const char *name)
{
    const struct mq_inst *i = inst_at((lmd_mdnsq *)q, ifindex, proto, name);
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
    free(q->query);
    free(q->type);
    free(q);
}
