/* Browsing with one resolver kept open per instance (lmd_browse, see
 * mdns.h).  An open resolver is how avahi reports TXT and address changes. */
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "mdns/internal.h"

#include <avahi-common/error.h>
#include <event2/event.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>

struct inst {
    struct inst *next;
    struct lmd_browse *b;
    AvahiIfIndex ifindex;
    AvahiProtocol proto;
    char *name, *type, *domain;
    AvahiServiceResolver *r;
    struct event *retry;
    unsigned fails;
    bool pending;   /* resolver started, no answer yet */
    bool resolved;  /* the owner has been told about it */
    bool stale;     /* known before a reconnect, not seen again yet */
    bool listed;    /* the browser reports it (not only a lookup's answer) */
};

/* lmd_browse_lookup: one query for a service the browser no longer lists */
struct lookup {
    struct lookup *next;
    struct lmd_browse *b;
    AvahiServiceResolver *r;
};

struct lmd_browse {
    struct lmd_browse *next;
    struct lookup *lookups;
    lmd_mdns *m;
    char *type, *domain;
    AvahiServiceBrowser *sb;
    struct inst *insts;
    bool all_for_now;
    bool settled;
    struct lmd_browse_callbacks cb;
    void *ud;
};

static void inst_resolve(struct inst *in);
static void lookup_free(struct lookup *l);
static void retry_later(struct inst *in);

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

static void check_settled(struct lmd_browse *b)
{
    if (b->settled || !b->all_for_now)
        return;
    for (struct inst *in = b->insts; in; in = in->next)
        if (in->pending)
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
    for (struct inst *in = b->insts; in; in = in->next)
        if (in->ifindex == ifindex && in->proto == proto && strcmp(in->name, name) == 0)
            return in;
    return NULL;
}

static void inst_free(struct lmd_browse *b, struct inst *in)
{
    for (struct inst **pp = &b->insts; *pp; pp = &(*pp)->next)
        if (*pp == in) {
            *pp = in->next;
            break;
        }
    if (in->r)
        avahi_service_resolver_free(in->r);
    if (in->retry)
        event_free(in->retry);
    free(in->name);
    free(in->type);
    free(in->domain);
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

static void resolver_cb(AvahiServiceResolver *r, AvahiIfIndex ifindex, AvahiProtocol proto,
                        AvahiResolverEvent event, const char *name, const char *type,
                        const char *domain, const char *host, const AvahiAddress *addr,
                        uint16_t port, AvahiStringList *txt, AvahiLookupResultFlags flags, void *ud)
{
    (void)proto;
    (void)type;
    (void)domain;
    struct inst *in = ud;
    struct lmd_browse *b = in->b;
    in->r = r;
    in->pending = false;
    switch (event) {
    case AVAHI_RESOLVER_FOUND: {
        char ifname[IF_NAMESIZE];
        struct lmd_instance li;
        lmd_addr a;
        lmd_txt t = {0};
        fill_instance(&li, in, ifname);
        format_addr(&a, addr, ifindex, ifname);
        lmd_mdns_txt_from_avahi(&t, txt, name);
        li.host = host;
        li.port = port;
        li.addr = &a;
        li.txt = &t;
        li.flags = ((flags & AVAHI_LOOKUP_RESULT_LOCAL) ? LMD_NODE_LOCAL : 0) |
                   ((flags & AVAHI_LOOKUP_RESULT_OUR_OWN) ? LMD_NODE_OWN : 0);
        in->fails = 0;
        in->resolved = true;
        if (b->cb.resolved)
            b->cb.resolved(b->ud, &li);
        lmd_txt_free(&t);
        break;
    }
    case AVAHI_RESOLVER_FAILURE: {
        char e[256];
        lmd_debug("resolving '%s' on interface %d failed: %s", lmd_escape_str(name, e, sizeof e),
                  ifindex, avahi_strerror(avahi_client_errno(avahi_service_resolver_get_client(r))));
        avahi_service_resolver_free(r);
        in->r = NULL;
        report_removed(b, in, LMD_GONE_EXPIRED);
        if (!in->listed) {
            /* known from a lookup only: no browser REMOVE will ever end it */
            inst_free(b, in);
            break;
        }
        /* The browser still lists it: try again later, in case it was a
         * passing failure. */
        retry_later(in);
        break;
    }
    }
    check_settled(b);
}

/* Resolve again later, backing off from 4 s to 256 s. */
static void retry_later(struct inst *in)
{
    in->fails++;
    if (in->retry && lmd_timer_in(in->retry, lmd_backoff(in->fails, 4, 256)) != 0)
        lmd_warn("out of memory: '%s' is resolved again when avahi next reports it", in->name);
}

static void resolve_retry_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    inst_resolve(arg);
}

static void inst_resolve(struct inst *in)
{
    lmd_mdns *m = in->b->m;
    if (!m->client || m->state != LMD_MDNS_RUNNING)
        return;
    if (in->r)
        avahi_service_resolver_free(in->r);
    in->r = NULL;
    in->pending = true;
    /* aprotocol = the protocol the instance came over, so the IPv4 instance
     * yields the IPv4 address and the IPv6 one the IPv6 address. */
    AvahiServiceResolver *r = avahi_service_resolver_new(m->client, in->ifindex, in->proto, in->name,
                                                         in->type, in->domain, in->proto, 0,
                                                         resolver_cb, in);
    if (!r && in->pending) {
        /* e.g. avahi-daemon's objects-per-client-max (1024 by default: about
         * 500 dual-stack peers); try again later, backing off */
        char e[256];
        lmd_warn("cannot resolve '%s': %s; trying again later", lmd_escape_str(in->name, e, sizeof e),
                 avahi_strerror(avahi_client_errno(m->client)));
        in->pending = false;
        retry_later(in);
    } else if (r) {
        in->r = r;
    }
}

/* An instance the network reports (browser NEW, or a lookup's answer):
 * known or added, and resolved unless a resolver is open. */
static void inst_seen(struct lmd_browse *b, AvahiIfIndex ifindex, AvahiProtocol proto, const char *name,
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
        in->type = lmd_strdup(type);
        in->domain = lmd_strdup(domain);
        in->retry = evtimer_new(b->m->base, resolve_retry_fire, in);
        if (!in->name || !in->type || !in->domain || !in->retry) {
            inst_free(b, in); /* not linked yet */
            return;
        }
        in->next = b->insts;
        b->insts = in;
    }
    in->stale = false;
    in->listed = in->listed || listed;
    in->fails = 0;
    if (!in->r)
        inst_resolve(in);
}

static void browser_cb(AvahiServiceBrowser *sb, AvahiIfIndex ifindex, AvahiProtocol proto,
                       AvahiBrowserEvent event, const char *name, const char *type,
                       const char *domain, AvahiLookupResultFlags flags, void *ud)
{
    (void)flags;
    struct lmd_browse *b = ud;
    b->sb = sb;
    switch (event) {
    case AVAHI_BROWSER_NEW:
        inst_seen(b, ifindex, proto, name, type, domain, true);
        break;
    case AVAHI_BROWSER_REMOVE: {
        struct inst *in = inst_find(b, ifindex, proto, name);
        if (!in)
            break;
        report_removed(b, in, LMD_GONE_GOODBYE);
        inst_free(b, in);
        break;
    }
    case AVAHI_BROWSER_ALL_FOR_NOW:
        b->all_for_now = true;
        break;
    case AVAHI_BROWSER_CACHE_EXHAUSTED:
        break;
    case AVAHI_BROWSER_FAILURE:
        /* DISCONNECTED is handled by the client callback. */
        if (avahi_client_errno(avahi_service_browser_get_client(sb)) != AVAHI_ERR_DISCONNECTED)
            lmd_error("browsing failed: %s",
                      avahi_strerror(avahi_client_errno(avahi_service_browser_get_client(sb))));
        break;
    }
    check_settled(b);
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
}

int lmd_browse_new(lmd_mdns *m, const char *type, const char *domain, const struct lmd_browse_callbacks *cb,
                   void *ud, lmd_browse **out, lmd_err *err)
{
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
            inst_resolve(in);
            n++;
        }
    return n ? 0 : LMD_ENOTFOUND;
}

void lmd_browse_free(lmd_browse *b)
{
    if (!b)
        return;
    for (struct lmd_browse **pp = &b->m->browses; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    while (b->insts)
        inst_free(b, b->insts);
    while (b->lookups)
        lookup_free(b->lookups);
    if (b->sb)
        avahi_service_browser_free(b->sb);
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
        while (b->lookups) { /* their resolvers go with the client */
            struct lookup *l = b->lookups;
            b->lookups = l->next;
            free(l);
        }
        b->sb = NULL;
        b->all_for_now = false;
        b->settled = false;
        for (struct inst *in = b->insts; in; in = in->next) {
            in->r = NULL;
            in->pending = false;
            in->stale = true;
            if (in->retry)
                event_del(in->retry);
        }
    }
}

static void lookup_free(struct lookup *l)
{
    for (struct lookup **pp = &l->b->lookups; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    if (l->r)
        avahi_service_resolver_free(l->r);
    free(l);
}

static void lookup_cb(AvahiServiceResolver *r, AvahiIfIndex ifindex, AvahiProtocol proto, AvahiResolverEvent event,
                      const char *name, const char *type, const char *domain, const char *host,
                      const AvahiAddress *addr, uint16_t port, AvahiStringList *txt, AvahiLookupResultFlags flags,
                      void *ud)
{
    (void)host;
    (void)addr;
    (void)port;
    (void)txt;
    (void)flags;
    struct lookup *l = ud;
    struct lmd_browse *b = l->b;
    l->r = r;
    switch (event) {
    case AVAHI_RESOLVER_FOUND:
        /* it answered: an instance again, resolved the usual way (until the
         * browser lists it again, a failure to resolve ends it) */
        inst_seen(b, ifindex, proto, name, type, domain, false);
        break;
    case AVAHI_RESOLVER_FAILURE:
        /* gone indeed: the caller's grace ends it */
        lmd_debug("looking up \"%s\" again: %s", name ? name : "?",
                  avahi_strerror(avahi_client_errno(avahi_service_resolver_get_client(r))));
        break;
    }
    lookup_free(l);
}

int lmd_browse_lookup(lmd_browse *b, const char *name, int ifindex, int proto)
{
    lmd_mdns *m = b->m;
    if (!m->client || m->state != LMD_MDNS_RUNNING)
        return LMD_ENODAEMON;
    struct lookup *l = calloc(1, sizeof *l);
    if (!l)
        return LMD_ENOMEM;
    l->b = b;
    l->next = b->lookups;
    b->lookups = l;
    AvahiProtocol p = proto == 4 ? AVAHI_PROTO_INET : proto == 6 ? AVAHI_PROTO_INET6 : AVAHI_PROTO_UNSPEC;
    AvahiServiceResolver *r = avahi_service_resolver_new(m->client, ifindex > 0 ? ifindex : AVAHI_IF_UNSPEC, p, name,
                                                         b->type, b->domain, p, 0, lookup_cb, l);
    if (!r) {
        /* the callback may have run (and freed l) inside _new() */
        for (struct lookup *x = b->lookups; x; x = x->next)
            if (x == l) {
                lookup_free(l);
                break;
            }
        return LMD_EAVAHI;
    }
    return 0;
}
