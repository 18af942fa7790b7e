/* Browsing with one resolver kept open per instance (lmd_browse, see
 * mdns.h).  An open resolver is how avahi reports TXT and address changes.
 * Resolvers live in the pool (pool.c, its own thread and avahi clients);
 * when the pool is full, instances wait and are resolved oldest first as
 * room frees. */
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "mdns/browse.h"
#include "mdns/internal.h"

#include <avahi-common/error.h>
#include <event2/event.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>


static void retry_later(struct inst *in);
static void resolve_retry_fire(evutil_socket_t fd, short what, void *arg);
static void set_waiting(struct inst *in, bool waiting);

static void fill_instance(struct lmd_instance *out, const struct inst *in, char *ifname)
{
    memset(out, 0, sizeof *out);
    out->ifindex = in->ifindex;
    if (!if_indextoname((unsigned)in->ifindex, ifname))
        snprintf(ifname, IF_NAMESIZE, "if%d", in->ifindex);
    out->ifname = ifname;
    out->proto = in->proto == AVAHI_PROTO_INET6 ? 6 : 4;
    out->name = in->name;
    out->type = in->type;
    out->domain = in->domain;
}

/* Tell the owner an instance it knew is gone. */
static void report_removed(struct lmd_browse *b, struct inst *in, enum lmd_gone why)
{
    if (!in->resolved || !b->cb.removed)
        return;
    in->resolved = false;
    char ifname[IF_NAMESIZE];
    struct lmd_instance li;
    fill_instance(&li, in, ifname);
    b->cb.removed(b->ud, &li, why);
}

static void inst_free(struct lmd_browse *b, struct inst *in);

void lmd_browse_check_settled(struct lmd_browse *b)
{
    if (b->settled || !(b->all_for_now || b->early_done))
        return;
    for (struct inst *in = b->insts; in; in = in->next)
        if ((in->pending && !in->aside) || in->held)
            return;
    b->settled = true;
    /* Instances known before a reconnect that the daemon did not report
     * again are gone. */
    for (struct inst *in = b->insts, *next; in; in = next) {
        next = in->next;
        if (in->stale) {
            report_removed(b, in, LMD_GONE_EXPIRED);
            inst_free(b, in);
        }
    }
    if (b->cb.settled)
        b->cb.settled(b->ud);
}

static struct inst *inst_find(struct lmd_browse *b, AvahiIfIndex ifindex, AvahiProtocol proto,
                              const char *name)
{
    return lmd_inst_find(b, ifindex, proto, name);
}

static void inst_free(struct lmd_browse *b, struct inst *in)
{
    lmd_inst_unlink(b, in);
    if (in->rid && !b->m->closing)
        lmd_pool_cancel(b->m->pool, in->rid);
    if (in->rid_fam && !b->m->closing)
        lmd_pool_cancel(b->m->pool, in->rid_fam);
    set_waiting(in, false);
    lmd_event_free(in->retry);
    free(in->name);
    free(in->type != b->type ? in->type : NULL); /* (shared: see lmd_browse_inst_seen) */
    free(in->domain != LMD_LOCAL ? in->domain : NULL);
    free(in->host);
    free(in);
}

static void format_addr(lmd_addr *a, const AvahiAddress *addr, AvahiIfIndex ifindex, const char *ifname)
{
    memset(a, 0, sizeof *a);
    avahi_address_snprint(a->addr, sizeof a->addr, addr);
    a->family = addr->proto == AVAHI_PROTO_INET6 ? 6 : 4;
    a->ifindex = ifindex;
    snprintf(a->ifname, sizeof a->ifname, "%s", ifname);
    if (a->family == 6 && addr->data.ipv6.address[0] == 0xfe &&
        (addr->data.ipv6.address[1] & 0xc0) == 0x80) {
        size_t n = strlen(a->addr);
        snprintf(a->addr + n, sizeof a->addr - n, "%%%s", ifname);
    }
}

/* Whether another instance of the same service that the browser has
 * reported (the IPv6 one of an IPv4 one, another interface's) is still
 * being resolved: the registry then waits for it, so that a dual-stack
 * peer joins once, with both addresses, and joins the moment the last one
 * is resolved rather than after a fixed window. */
static bool sibling_pending(const struct inst *in)
{
    return lmd_inst_sibling_pending(in);
}

/* A message about the resolver that follows an instance's own family: its
 * answer takes over from the any-family one (an address update); no answer
 * (a publisher with no address of that family) changes nothing. */
static bool fam_msg(struct inst *in, const struct lmd_pool_msg *msg)
{
    lmd_mdns *m = in->b->m;
    if (msg->rid != in->rid_fam)
        return false;
    if (msg->kind != LMD_POOL_FOUND) {
        in->rid_fam = 0; /* FAILED (none), FULL: the any-family one stays */
        return true;
    }
    if (in->rid)
        lmd_pool_cancel(m->pool, in->rid);
    in->rid = in->rid_fam;
    in->rid_fam = 0;
    return false; /* handled as the instance's resolver's answer */
}

/* A message of the pool's about the instance's resolver: whether it
 * freed the instance. */
static bool inst_msg(struct inst *in, const struct lmd_pool_msg *msg)
{
    struct lmd_browse *b = in->b;
    if (fam_msg(in, msg))
        return false;
    in->pending = false;
    switch (msg->kind) {
    case LMD_POOL_FOUND: {
        if (in->host && strcmp(in->host, msg->host) != 0) {
            /* The SRV target changed under an open resolver: avahi 0.8
             * keeps the old target's address (resolve-service.c clears it
             * only when that address record goes), so this answer pairs
             * the new host and port with the old host's address, for as
             * long as the old host lives: a forged SRV made such chimeras.
             * A fresh resolver looks the new target's address up. */
            char e[256];
            lmd_debug("'%s' moved to another host: resolving it afresh", lmd_escape_str(in->name, e, sizeof e));
            lmd_browse_inst_resolve(in);
            break;
        }
        if (!in->host && !(in->host = lmd_strdup(msg->host))) {
            lmd_pool_cancel(b->m->pool, in->rid); /* out of memory: tried again */
            in->rid = 0;
            retry_later(in);
            break;
        }
        char ifname[IF_NAMESIZE];
        struct lmd_instance li;
        lmd_addr a;
        lmd_txt t = {0};
        fill_instance(&li, in, ifname);
        format_addr(&a, &msg->addr, msg->ifindex, ifname);
        lmd_mdns_txt_from_avahi(&t, msg->txt, msg->name);
        li.host = msg->host;
        li.port = msg->port;
        li.addr = &a;
        li.txt = &t;
        /* our own: what this answer says (its records are this host's:
         * LOCAL) under a name we publish now.  Not what the browser said
         * when the name first appeared: a PTR is the same record whoever
         * sends it, so a forger of our name that won the conflict (we were
         * renamed) kept the browser's first LOCAL, and was listed as our
         * own from its own host (lab_attack_publish). */
        li.flags = ((msg->flags & AVAHI_LOOKUP_RESULT_LOCAL) ? LMD_NODE_LOCAL : 0) |
                   (lmd_mdns_is_own(b->m, msg->flags, in->name, in->type) ? LMD_NODE_OWN : 0);
        li.complete = !sibling_pending(in);
        if (msg->addr.proto != in->proto && !in->rid_fam && msg->rid == in->rid) {
            /* an answer with the other family's address (a publisher that
             * sends its A records over IPv6 too: python-zeroconf, Apple):
             * shown now, and the instance's own family's address, if it
             * has one, follows as an update */
            in->rid_fam = ++b->m->seq;
            if (lmd_pool_resolve(b->m->pool, in->rid_fam, in->ifindex, in->proto, in->proto, in->name, in->type,
                                 in->domain, false) != 0)
                in->rid_fam = 0;
        }
        in->fails = 0;
        in->resolved = in->answered = true;
        set_waiting(in, false);
        if (b->cb.resolved)
            b->cb.resolved(b->ud, &li);
        lmd_txt_free(&t);
        break;
    }
    case LMD_POOL_FULL:
        in->rid = 0;
        set_waiting(in, true);
        break;
    case LMD_POOL_ROOM:
    case LMD_POOL_LOST:
        break;
    case LMD_POOL_FAILED: {
        char e[256];
        lmd_debug("resolving '%s' on interface %d failed: %s", lmd_escape_str(in->name, e, sizeof e),
                  in->ifindex, msg->text ? msg->text : "out of memory");
        in->rid = 0;
        if (in->rid_fam)
            lmd_pool_cancel(b->m->pool, in->rid_fam);
        in->rid_fam = 0;
        set_waiting(in, false);
        report_removed(b, in, LMD_GONE_EXPIRED);
        if (!in->listed) {
            /* known from a lookup only: no browser REMOVE will ever end it */
            inst_free(b, in);
            return true;
        }
        /* The browser still lists it: try again later, in case it was a
         * passing failure. */
        retry_later(in);
        break;
    }
    }
    return false;
}

/* Resolve again later, backing off from 2 s to 64 s (a full pool is not
 * such a failure: see set_waiting). */
static void retry_later(struct inst *in)
{
    in->fails++;
    if (!in->retry) /* made when first needed: most instances never fail */
        in->retry = evtimer_new(in->b->m->base, resolve_retry_fire, in);
    if (!in->retry || lmd_timer_in(in->retry, lmd_backoff(in->fails, 2, 64)) != 0)
        lmd_warn("out of memory: '%s' is resolved again when avahi next reports it", in->name);
}

/* Waiting for room in the pool: counted (lmd_mdns_unresolved), told once a
 * minute, and asked again when a resolver is released, or every 2 s. */
static void set_waiting(struct inst *in, bool waiting)
{
    lmd_mdns *m = in->b->m;
    if (in->waiting == waiting)
        return;
    in->waiting = waiting;
    if (!waiting) {
        m->waiting--;
        if (!m->waiting && m->told_full) {
            lmd_info("every service on the network is followed again");
            m->told_full = 0;
        }
        return;
    }
    m->waiting++;
    double now = lmd_now_mono();
    if (!m->told_full || now - m->told_full >= 60) {
        unsigned clients, open = lmd_pool_open(m->pool, &clients);
        lmd_warn("avahi-daemon refuses to follow more services: %u not followed yet (%u followed over %u "
                 "client(s)); they are taken up as room frees; a flood of services on the network?",
                 m->waiting, open, clients);
        m->told_full = now;
    }
    if (!evtimer_pending(m->kick, NULL))
        lmd_timer_in(m->kick, 2);
}

static void resolve_retry_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_browse_inst_resolve(arg);
}

/* Resolve (again), through the pool: its answer comes as a message. */
void lmd_browse_inst_resolve(struct inst *in)
{
    lmd_mdns *m = in->b->m;
    if (!m->client || m->state != LMD_MDNS_RUNNING)
        return;
    if (in->rid)
        lmd_pool_cancel(m->pool, in->rid);
    if (in->rid_fam)
        lmd_pool_cancel(m->pool, in->rid_fam);
    in->rid_fam = 0;
    free(in->host); /* a fresh resolver's first answer is whole */
    in->host = NULL;
    in->rid = ++m->seq; /* waiting, if it was, until it is answered */
    in->pending = true;
    in->asked = lmd_now_mono();
    lmd_browse_behind_arm(in->b);
    /* IPv6 instance: any family (an IPv4-only python-zeroconf publisher
     * left an AAAA-only one pending for 5 s; an A answer is followed up for
     * the AAAA, inst_msg).  IPv4 instance: the A only (avahi sends AAAA over
     * IPv4 too: any family made dual-stack peers join IPv6-only at times). */
    AvahiProtocol aproto = in->proto == AVAHI_PROTO_INET6 ? AVAHI_PROTO_UNSPEC : in->proto;
    if (lmd_pool_resolve(m->pool, in->rid, in->ifindex, in->proto, aproto, in->name, in->type,
                         in->domain, false) != 0) {
        in->rid = 0;
        in->pending = false;
        retry_later(in);
    }
    lmd_inst_rids(in);
}

static struct inst *inst_by_rid(lmd_mdns *m, uint64_t rid)
{
    return lmd_inst_by_rid(m, rid);
}

void lmd_mdns_pool_msg(lmd_mdns *m, const struct lmd_pool_msg *msg)
{
    if (msg->gen != m->pool_gen)
        return; /* from before a reconnect */
    switch (msg->kind) {
    case LMD_POOL_ROOM:
        lmd_mdns_browses_kick(m);
        return;
    case LMD_POOL_LOST:
        if (m->state == LMD_MDNS_RUNNING)
            lmd_mdns_lost(m, msg->text ? msg->text : "?");
        return;
    case LMD_POOL_FOUND:
    case LMD_POOL_FAILED:
    case LMD_POOL_FULL:
        break;
    }
    struct inst *in = inst_by_rid(m, msg->rid);
    if (in) {
        struct lmd_browse *b = in->b;
        if (!inst_msg(in, msg))
            lmd_inst_rids(in);
        lmd_browse_check_settled(b);
        return;
    }
    for (struct lmd_browse *b = m->browses; b; b = b->next)
        for (struct lookup *l = b->lookups; l; l = l->next)
            if (l->rid == msg->rid) {
                lmd_browse_lookup_msg(l, msg);
                return;
            }
    /* cancelled meanwhile: nothing to do */
}

static int by_seq(const void *x, const void *y)
{
    const struct inst *a = *(struct inst *const *)x, *b = *(struct inst *const *)y;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Room in the pool, or the 2 s tick: ask again for the oldest waiting
 * instances (a few at a time: what does not fit comes back FULL). */
#define KICK_BATCH 32
void lmd_mdns_browses_kick(lmd_mdns *m)
{
    if (!m->waiting || m->state != LMD_MDNS_RUNNING)
        return;
    struct inst **w = calloc(m->waiting, sizeof *w);
    size_t n = 0;
    for (struct lmd_browse *b = m->browses; w && b; b = b->next)
        for (struct inst *in = b->insts; in && n < m->waiting; in = in->next)
            if (in->waiting && !in->pending)
                w[n++] = in;
    if (w) {
        qsort(w, n, sizeof *w, by_seq);
        for (size_t i = 0; i < n && i < KICK_BATCH; i++)
            lmd_browse_inst_resolve(w[i]);
        free(w);
    }
    if (m->waiting && !evtimer_pending(m->kick, NULL))
        lmd_timer_in(m->kick, 2);
}

/* An instance the network reports (browser NEW, or a lookup's answer):
 * known or added, and resolved unless a resolver is open. */
void lmd_browse_inst_seen(struct lmd_browse *b, AvahiIfIndex ifindex, AvahiProtocol proto, const char *name,
                          const char *type, const char *domain, bool listed)
{
    struct inst *in = inst_find(b, ifindex, proto, name);
    if (!in) {
        in = calloc(1, sizeof *in);
        if (!in)
            return;
        in->b = b;
        in->ifindex = ifindex;
        in->proto = proto;
        in->name = lmd_strdup(name);
        in->type = !strcmp(type, b->type) ? b->type : lmd_strdup(type); /* held once, by the browser */
        in->domain = !strcmp(domain, LMD_LOCAL) ? (char *)LMD_LOCAL : lmd_strdup(domain);
        in->seq = ++b->m->seq;
        if (!in->name || !in->type || !in->domain) {
            inst_free(b, in); /* not linked yet */
            return;
        }
        if (lmd_inst_link(b, in) != 0) {
            inst_free(b, in);
            return;
        }
    }
    in->stale = false;
    in->listed = in->listed || listed;
    in->fails = 0;
    if (!in->rid && !in->waiting && !lmd_browse_gated(in))
        lmd_browse_inst_resolve(in);
}

static void browser_cb(AvahiServiceBrowser *sb, AvahiIfIndex ifindex, AvahiProtocol proto,
                       AvahiBrowserEvent event, const char *name, const char *type,
                       const char *domain, AvahiLookupResultFlags flags, void *ud)
{
    struct lmd_browse *b = ud;
    b->sb = sb;
    switch (event) {
    case AVAHI_BROWSER_NEW: {
        (void)flags; /* our own is told by each resolver's answer (resolved) */
        lmd_browse_inst_seen(b, ifindex, proto, name, type, domain, true);
        b->last_new = lmd_now_mono();
        lmd_browse_early_arm(b);
        break;
    }
    case AVAHI_BROWSER_REMOVE: {
        struct inst *in = inst_find(b, ifindex, proto, name);
        if (!in)
            break;
        if (!in->resolved && b->cb.behind && b->cb.removed) { /* the owner's wire listener may hold it */
            char ifname[IF_NAMESIZE];
            struct lmd_instance li;
            fill_instance(&li, in, ifname);
            b->cb.removed(b->ud, &li, LMD_GONE_GOODBYE);
        }
        report_removed(b, in, LMD_GONE_GOODBYE);
        inst_free(b, in);
        break;
    }
    case AVAHI_BROWSER_ALL_FOR_NOW:
        b->all_for_now = true;
        break;
    case AVAHI_BROWSER_CACHE_EXHAUSTED:
        b->exhausted = true;
        for (struct inst *in = b->insts; in; in = in->next)
            b->cached += in->listed;
        lmd_debug("browse %s: %u cached at %.3f s", b->type, b->cached, lmd_now_mono() - b->t0);
        lmd_browse_early_arm(b);
        break;
    case AVAHI_BROWSER_FAILURE:
        /* DISCONNECTED is handled by the client callback. */
        if (avahi_client_errno(avahi_service_browser_get_client(sb)) != AVAHI_ERR_DISCONNECTED)
            lmd_error("browsing failed: %s",
                      avahi_strerror(avahi_client_errno(avahi_service_browser_get_client(sb))));
        break;
    }
    lmd_browse_check_settled(b);
}

static void browse_start(struct lmd_browse *b)
{
    lmd_mdns *m = b->m;
    if (b->sb || !m->client || m->state != LMD_MDNS_RUNNING)
        return;
    AvahiServiceBrowser *sb = avahi_service_browser_new(m->client, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC,
                                                        b->type, b->domain, 0, browser_cb, b);
    if (!sb) {
        lmd_error("cannot browse for %s: %s", b->type, avahi_strerror(avahi_client_errno(m->client)));
        return;
    }
    b->sb = sb;
    b->t0 = b->last_new = lmd_now_mono();
    lmd_browse_early_arm(b);
}

int lmd_browse_new(lmd_mdns *m, const char *type, const char *domain, const struct lmd_browse_callbacks *cb,
                   void *ud, lmd_browse **out, lmd_err *err)
{
    *out = NULL;
    /* the first browser starts the resolver pool */
    if (lmd_mdns_pool(m) != 0)
        return lmd_err_set(err, LMD_ENOMEM, "cannot start the resolver pool: out of memory");
    struct lmd_browse *b = *out = calloc(1, sizeof *b);
    if (!b)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    b->m = m;
    b->type = lmd_strdup(type ? type : LMD_DEFAULT_TYPE);
    b->domain = domain ? lmd_strdup(domain) : NULL;
    if (!b->type || (domain && !b->domain)) {
        free(b->type);
        free(b->domain);
        free(b);
        *out = NULL;
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    if (cb)
        b->cb = *cb;
    b->ud = ud;
    b->next = m->browses;
    m->browses = b;
    browse_start(b);
    return 0;
}

bool lmd_browse_settled(const lmd_browse *b) { return b->settled; }

int lmd_browse_reconfirm(lmd_browse *b, const char *name)
{
    int n = 0;
    for (struct inst *in = b->insts; in; in = in->next)
        if (strcmp(in->name, name) == 0) {
            lmd_browse_inst_resolve(in);
            n++;
        }
    return n ? 0 : LMD_ENOTFOUND;
}

void lmd_browse_free(lmd_browse *b)
{
    if (!b)
        return;
    LMD_LIST_UNLINK(&b->m->browses, b);
    while (b->insts)
        inst_free(b, b->insts);
    while (b->lookups)
        lmd_browse_lookup_free(b->lookups);
    lmd_inst_index_free(b);
    if (b->sb && !b->m->closing)
        avahi_service_browser_free(b->sb);
    lmd_event_free(b->quiet);
    lmd_event_free(b->behind_t);
    free(b->type);
    free(b->domain);
    free(b);
}

void lmd_mdns_browses_start(lmd_mdns *m)
{
    for (struct lmd_browse *b = m->browses; b; b = b->next)
        browse_start(b);
}

/* What browsers knew stays, marked stale, so that instances that come back
 * after a reconnect are not reported as gone and new again. */
void lmd_mdns_browses_forget(lmd_mdns *m)
{
    for (struct lmd_browse *b = m->browses; b; b = b->next) {
        while (b->lookups) { /* their resolvers go with the pool's reset */
            struct lookup *l = b->lookups;
            b->lookups = l->next;
            free(l);
        }
        b->sb = NULL;
        b->all_for_now = false;
        b->settled = false;
        b->early_done = b->exhausted = false;
        b->cached = 0;
        for (struct inst *in = b->insts; in; in = in->next) {
            in->rid = in->rid_fam = 0; /* the pool is reset */
            lmd_inst_rids(in);
            set_waiting(in, false); /* the browser reports it again */
            in->pending = in->held = false;
            in->stale = true;
            if (in->retry)
                event_del(in->retry);
        }
    }
}

