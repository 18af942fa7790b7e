/* avahi-client behind the lmd_mdns interface (see mdns.h).
 *
 * Patterns taken from avahi's own clients: every callback switches over the
 * full state enum, callbacks may fire inside *_new() so they use the pointer
 * they are given, collisions re-add under avahi_alternative_service_name, and
 * AVAHI_ERR_DISCONNECTED rebuilds everything on a new AVAHI_CLIENT_NO_FAIL
 * client. */
#include "mdns.h"
#include "log.h"
#include "mdns_poll.h"
#include "txt.h"
#include "util.h"

#include <avahi-client/client.h>
#include <avahi-client/lookup.h>
#include <avahi-client/publish.h>
#include <avahi-common/alternative.h>
#include <avahi-common/domain.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
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
};

struct lmd_browse {
    struct lmd_browse *next;
    lmd_mdns *m;
    char *type, *domain;
    AvahiServiceBrowser *sb;
    struct inst *insts;
    bool all_for_now;
    bool settled;
    struct lmd_browse_callbacks cb;
    void *ud;
};

struct lmd_pub {
    struct lmd_pub *next;
    lmd_mdns *m;
    AvahiEntryGroup *group;
    char *name, *type, *domain;
    uint16_t port;
    unsigned ttl;
    lmd_txt txt;
    bool established;
    bool txt_dirty;
    unsigned renames;
    lmd_pub_cb cb;
    void *ud;
};

struct lmd_mdns {
    struct event_base *base;
    lmd_avahi_poll poll;
    AvahiClient *client;
    enum lmd_mdns_state state;
    lmd_mdns_state_cb cb;
    void *ud;
    struct lmd_pub *pubs;
    struct lmd_browse *browses;
    struct event *rebuild;
    struct event *retry;     /* no system bus: try to connect again later */
    unsigned retry_delay;
    unsigned reconnects;
    bool told_waiting;
};

static void client_cb(AvahiClient *c, AvahiClientState state, void *ud);
static void pub_start(struct lmd_pub *p);
static void browse_start(struct lmd_browse *b);
static void inst_resolve(struct inst *in);

static void set_state(lmd_mdns *m, enum lmd_mdns_state st)
{
    if (m->state == st)
        return;
    m->state = st;
    if (m->cb)
        m->cb(m->ud, st);
}

/* ---- client ---------------------------------------------------------- */

static int client_open(lmd_mdns *m)
{
    int error = 0;
    AvahiClient *c = avahi_client_new(&m->poll.api, AVAHI_CLIENT_NO_FAIL, client_cb, m, &error);
    if (c) {
        m->client = c;
        m->retry_delay = 0;
        return 0;
    }
    if (error != AVAHI_ERR_NO_DAEMON && error != AVAHI_ERR_DBUS_ERROR) {
        lmd_error("cannot create avahi client: %s", avahi_strerror(error));
        return LMD_EAVAHI;
    }
    /* NO_FAIL covers a missing avahi-daemon, not a missing system bus (as
     * early at boot): keep trying, backing off to 8 s. */
    if (!m->told_waiting) {
        lmd_warn("cannot reach avahi-daemon over the system D-Bus (%s); waiting for it",
                 avahi_strerror(error));
        m->told_waiting = true;
    }
    set_state(m, LMD_MDNS_WAITING);
    m->retry_delay = m->retry_delay ? (m->retry_delay < 8 ? m->retry_delay * 2 : 8) : 1;
    struct timeval tv = {.tv_sec = m->retry_delay, .tv_usec = 0};
    event_add(m->retry, &tv);
    return 0;
}

static void retry_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_mdns *m = arg;
    if (!m->client && client_open(m) != 0)
        set_state(m, LMD_MDNS_FAILED);
}

/* Forget every avahi object: avahi_client_free() frees them all with the
 * client.  What browsers knew stays, marked stale, so that instances that come
 * back are not reported as gone and new again. */
static void forget_objects(lmd_mdns *m)
{
    for (struct lmd_pub *p = m->pubs; p; p = p->next) {
        p->group = NULL;
        p->established = false;
    }
    for (struct lmd_browse *b = m->browses; b; b = b->next) {
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

static void rebuild_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_mdns *m = arg;
    forget_objects(m);
    if (m->client)
        avahi_client_free(m->client);
    m->client = NULL;
    m->reconnects++;
    if (client_open(m) != 0)
        set_state(m, LMD_MDNS_FAILED);
}

static void client_cb(AvahiClient *c, AvahiClientState state, void *ud)
{
    lmd_mdns *m = ud;
    m->client = c; /* may be called from inside avahi_client_new() */
    switch (state) {
    case AVAHI_CLIENT_S_RUNNING:
        m->told_waiting = false;
        set_state(m, LMD_MDNS_RUNNING);
        for (struct lmd_pub *p = m->pubs; p; p = p->next)
            pub_start(p);
        for (struct lmd_browse *b = m->browses; b; b = b->next)
            browse_start(b);
        break;
    case AVAHI_CLIENT_S_COLLISION:
    case AVAHI_CLIENT_S_REGISTERING:
        /* The host name is being (re)registered; our records go back on the
         * network once it is established (S_RUNNING). */
        for (struct lmd_pub *p = m->pubs; p; p = p->next) {
            if (p->group)
                avahi_entry_group_reset(p->group);
            p->established = false;
        }
        break;
    case AVAHI_CLIENT_CONNECTING:
        if (!m->told_waiting) {
            lmd_warn("avahi-daemon is not running; waiting for it to start");
            m->told_waiting = true;
        }
        set_state(m, LMD_MDNS_WAITING);
        break;
    case AVAHI_CLIENT_FAILURE:
        if (avahi_client_errno(c) == AVAHI_ERR_DISCONNECTED) {
            lmd_warn("lost the connection to avahi-daemon; reconnecting");
            set_state(m, LMD_MDNS_LOST);
            /* not from inside the client's own callback */
            event_active(m->rebuild, 0, 0);
        } else {
            lmd_error("avahi client failure: %s", avahi_strerror(avahi_client_errno(c)));
            set_state(m, LMD_MDNS_FAILED);
        }
        break;
    }
}

lmd_mdns *lmd_mdns_new(struct event_base *base, lmd_mdns_state_cb cb, void *ud, int *err)
{
    lmd_mdns *m = calloc(1, sizeof *m);
    if (!m) {
        *err = LMD_ENOMEM;
        return NULL;
    }
    m->base = base;
    m->cb = cb;
    m->ud = ud;
    m->state = LMD_MDNS_WAITING;
    lmd_avahi_poll_init(&m->poll, base);
    m->rebuild = event_new(base, -1, 0, rebuild_fire, m);
    m->retry = evtimer_new(base, retry_fire, m);
    if (!m->rebuild || !m->retry || (*err = client_open(m)) != 0) {
        if (m->rebuild)
            event_free(m->rebuild);
        if (m->retry)
            event_free(m->retry);
        free(m);
        if (!*err)
            *err = LMD_ENOMEM;
        return NULL;
    }
    *err = 0;
    return m;
}

void lmd_mdns_free(lmd_mdns *m)
{
    if (!m)
        return;
    while (m->pubs)
        lmd_pub_free(m->pubs);
    while (m->browses)
        lmd_browse_free(m->browses);
    if (m->client)
        avahi_client_free(m->client);
    event_free(m->rebuild);
    event_free(m->retry);
    free(m);
}

enum lmd_mdns_state lmd_mdns_state(const lmd_mdns *m) { return m->state; }
unsigned lmd_mdns_reconnects(const lmd_mdns *m) { return m->reconnects; }

const char *lmd_mdns_host_fqdn(lmd_mdns *m)
{
    return (m->client && m->state == LMD_MDNS_RUNNING) ? avahi_client_get_host_name_fqdn(m->client)
                                                       : NULL;
}

/* ---- TXT conversion -------------------------------------------------- */

static AvahiStringList *txt_to_avahi(const lmd_txt *t)
{
    AvahiStringList *l = NULL;
    /* avahi_string_list_add prepends: add backwards to keep our order. */
    for (size_t i = t ? t->n : 0; i-- > 0;) {
        const lmd_txt_item *it = &t->items[i];
        l = it->has_value ? avahi_string_list_add_pair_arbitrary(l, it->key, it->value, it->value_len)
                          : avahi_string_list_add(l, it->key);
    }
    return l;
}

static void txt_from_avahi(lmd_txt *t, AvahiStringList *l, const char *who)
{
    for (; l; l = avahi_string_list_get_next(l)) {
        char why[160];
        int rc = lmd_txt_add_wire_item(t, avahi_string_list_get_text(l),
                                       avahi_string_list_get_size(l), why, sizeof why);
        if (rc == LMD_ETXT) {
            char esc[128], ewho[128];
            lmd_debug("ignoring TXT item '%s' from %s: %s",
                      lmd_escape(avahi_string_list_get_text(l), avahi_string_list_get_size(l), esc,
                                 sizeof esc),
                      lmd_escape_str(who, ewho, sizeof ewho), why);
        }
    }
}

/* ---- publishing ------------------------------------------------------ */

static void pub_add(struct lmd_pub *p, AvahiEntryGroup *g);

/* ---- raw records, for a TTL of our choosing ---------------------------- */

/* An escaped domain name ("a\\.b._lmserv._tcp.local") in DNS wire format. */
static int name_wire(const char *escaped, uint8_t *out, size_t cap)
{
    size_t o = 0;
    const char *p = escaped;
    while (*p) {
        char label[AVAHI_LABEL_MAX];
        if (!avahi_unescape_label(&p, label, sizeof label))
            return -1;
        size_t n = strlen(label);
        if (n == 0)
            break;
        if (o + 1 + n + 1 > cap)
            return -1;
        out[o++] = (uint8_t)n;
        memcpy(out + o, label, n);
        o += n;
    }
    out[o++] = 0;
    return (int)o;
}

static int txt_wire(const lmd_txt *t, uint8_t *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; t && i < t->n; i++) {
        const lmd_txt_item *it = &t->items[i];
        size_t k = strlen(it->key), n = k + (it->has_value ? 1 + it->value_len : 0);
        if (n > 255 || o + 1 + n > cap)
            return -1;
        out[o++] = (uint8_t)n;
        memcpy(out + o, it->key, k);
        o += k;
        if (it->has_value) {
            out[o++] = '=';
            memcpy(out + o, it->value, it->value_len);
            o += it->value_len;
        }
    }
    if (o == 0) /* an empty TXT record is one empty string (RFC 6763 6.1) */
        out[o++] = 0;
    return (int)o;
}

static int add_txt_record(struct lmd_pub *p, AvahiEntryGroup *g, const char *full, AvahiPublishFlags extra)
{
    uint8_t rd[9000];
    int n = txt_wire(&p->txt, rd, sizeof rd);
    if (n < 0)
        return AVAHI_ERR_INVALID_RECORD;
    return avahi_entry_group_add_record(g, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, AVAHI_PUBLISH_UNIQUE | extra,
                                        full, AVAHI_DNS_CLASS_IN, AVAHI_DNS_TYPE_TXT, p->ttl, rd, (size_t)n);
}

static int full_names(struct lmd_pub *p, char *full, char *type_full, char *enum_name)
{
    AvahiClient *c = p->m->client;
    const char *domain = p->domain ? p->domain : avahi_client_get_domain_name(c);
    if (!domain)
        return AVAHI_ERR_INVALID_DOMAIN_NAME;
    int rc = avahi_service_name_join(full, AVAHI_DOMAIN_NAME_MAX, p->name, p->type, domain);
    if (rc < 0)
        return rc;
    snprintf(type_full, AVAHI_DOMAIN_NAME_MAX, "%s.%s", p->type, domain);
    snprintf(enum_name, AVAHI_DOMAIN_NAME_MAX, "_services._dns-sd._udp.%s", domain);
    return 0;
}

/* What avahi_entry_group_add_service does, with our TTL on every record:
 * the type enumeration PTR, the PTR to the instance (shared), and the
 * instance's SRV and TXT (unique: probed, so collisions are detected). */
static int add_raw_service(struct lmd_pub *p, AvahiEntryGroup *g)
{
    char full[AVAHI_DOMAIN_NAME_MAX], type_full[AVAHI_DOMAIN_NAME_MAX], enum_name[AVAHI_DOMAIN_NAME_MAX];
    const char *host = avahi_client_get_host_name_fqdn(p->m->client);
    int rc = full_names(p, full, type_full, enum_name);
    if (rc < 0)
        return rc;
    if (!host)
        return AVAHI_ERR_INVALID_HOST_NAME;
    uint8_t rd[AVAHI_DOMAIN_NAME_MAX + 8];
    int n;
    /* SRV first: it is the unique record whose collision renames us */
    rd[0] = rd[1] = rd[2] = rd[3] = 0; /* priority, weight */
    rd[4] = (uint8_t)(p->port >> 8);
    rd[5] = (uint8_t)(p->port & 0xff);
    if ((n = name_wire(host, rd + 6, sizeof rd - 6)) < 0)
        return AVAHI_ERR_INVALID_HOST_NAME;
    rc = avahi_entry_group_add_record(g, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, AVAHI_PUBLISH_UNIQUE, full,
                                      AVAHI_DNS_CLASS_IN, AVAHI_DNS_TYPE_SRV, p->ttl, rd, (size_t)n + 6);
    if (rc < 0)
        return rc;
    if ((rc = add_txt_record(p, g, full, 0)) < 0)
        return rc;
    if ((n = name_wire(full, rd, sizeof rd)) < 0)
        return AVAHI_ERR_INVALID_SERVICE_NAME;
    rc = avahi_entry_group_add_record(g, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, 0, type_full, AVAHI_DNS_CLASS_IN,
                                      AVAHI_DNS_TYPE_PTR, p->ttl, rd, (size_t)n);
    if (rc < 0)
        return rc;
    if ((n = name_wire(type_full, rd, sizeof rd)) < 0)
        return AVAHI_ERR_INVALID_SERVICE_TYPE;
    return avahi_entry_group_add_record(g, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, 0, enum_name,
                                        AVAHI_DNS_CLASS_IN, AVAHI_DNS_TYPE_PTR, p->ttl, rd, (size_t)n);
}

static void pub_rename(struct lmd_pub *p)
{
    char *alt = avahi_alternative_service_name(p->name);
    if (!alt)
        return;
    char eold[256], enew[256];
    lmd_warn("service name '%s' is taken on the network; publishing as '%s'",
             lmd_escape_str(p->name, eold, sizeof eold), lmd_escape_str(alt, enew, sizeof enew));
    free(p->name);
    p->name = lmd_strdup(alt);
    avahi_free(alt);
    p->renames++;
    if (p->cb)
        p->cb(p->ud, LMD_PUB_RENAMED, p->name, NULL);
}

static void group_cb(AvahiEntryGroup *g, AvahiEntryGroupState state, void *ud)
{
    struct lmd_pub *p = ud;
    p->group = g;
    switch (state) {
    case AVAHI_ENTRY_GROUP_ESTABLISHED:
        p->established = true;
        if (p->txt_dirty)
            lmd_pub_set_txt(p, NULL);
        if (p->cb)
            p->cb(p->ud, LMD_PUB_ESTABLISHED, p->name, NULL);
        break;
    case AVAHI_ENTRY_GROUP_COLLISION:
        p->established = false;
        pub_rename(p);
        avahi_entry_group_reset(g);
        pub_add(p, g);
        break;
    case AVAHI_ENTRY_GROUP_FAILURE: {
        const char *msg = avahi_strerror(avahi_client_errno(avahi_entry_group_get_client(g)));
        lmd_error("publishing failed: %s", msg);
        p->established = false;
        if (p->cb)
            p->cb(p->ud, LMD_PUB_FAILED, p->name, msg);
        break;
    }
    case AVAHI_ENTRY_GROUP_UNCOMMITED:
    case AVAHI_ENTRY_GROUP_REGISTERING:
        break;
    }
}

static void pub_add(struct lmd_pub *p, AvahiEntryGroup *g)
{
    AvahiStringList *l = txt_to_avahi(&p->txt);
    int rc;
    /* A local collision (another service on this host has the name) is
     * reported here rather than through the group state. */
    for (int tries = 0; tries < 100; tries++) {
        if (p->ttl)
            rc = add_raw_service(p, g);
        else
            rc = avahi_entry_group_add_service_strlst(g, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, 0, p->name,
                                                      p->type, p->domain, NULL, p->port, l);
        if (rc != AVAHI_ERR_COLLISION)
            break;
        avahi_entry_group_reset(g); /* a raw set may be half added */
        pub_rename(p);
    }
    avahi_string_list_free(l);
    p->txt_dirty = false;
    if (rc == 0)
        rc = avahi_entry_group_commit(g);
    if (rc < 0) {
        char e[256];
        lmd_error("cannot publish '%s': %s", lmd_escape_str(p->name, e, sizeof e),
                  avahi_strerror(rc));
        if (p->cb)
            p->cb(p->ud, LMD_PUB_FAILED, p->name, avahi_strerror(rc));
    }
}

static void pub_start(struct lmd_pub *p)
{
    lmd_mdns *m = p->m;
    if (m->state != LMD_MDNS_RUNNING || !m->client)
        return;
    if (!p->group) {
        AvahiEntryGroup *g = avahi_entry_group_new(m->client, group_cb, p);
        if (!g) {
            lmd_error("cannot create avahi entry group: %s",
                      avahi_strerror(avahi_client_errno(m->client)));
            return;
        }
        p->group = g;
    }
    if (avahi_entry_group_is_empty(p->group))
        pub_add(p, p->group);
}

lmd_pub *lmd_pub_new(lmd_mdns *m, const struct lmd_pub_config *cfg, lmd_pub_cb cb, void *ud,
                     int *err)
{
    struct lmd_pub *p = calloc(1, sizeof *p);
    *err = LMD_ENOMEM;
    if (!p)
        return NULL;
    p->m = m;
    p->cb = cb;
    p->ud = ud;
    p->port = cfg->port;
    p->ttl = cfg->ttl;
    p->name = lmd_strdup(cfg->name);
    p->type = lmd_strdup(cfg->type ? cfg->type : LMD_DEFAULT_TYPE);
    p->domain = cfg->domain ? lmd_strdup(cfg->domain) : NULL;
    if (!p->name || !p->type || (cfg->domain && !p->domain) ||
        (cfg->txt && lmd_txt_copy(&p->txt, cfg->txt) != 0)) {
        free(p->name);
        free(p->type);
        free(p->domain);
        free(p);
        return NULL;
    }
    p->next = m->pubs;
    m->pubs = p;
    *err = 0;
    pub_start(p);
    return p;
}

int lmd_pub_set_txt(lmd_pub *p, const lmd_txt *txt)
{
    if (txt) {
        lmd_txt copy;
        if (lmd_txt_copy(&copy, txt) != 0)
            return LMD_ENOMEM;
        lmd_txt_free(&p->txt);
        p->txt = copy;
    }
    p->txt_dirty = true;
    if (!p->established || !p->group)
        return 0; /* applied when the group is established */
    int rc;
    if (p->ttl) {
        char full[AVAHI_DOMAIN_NAME_MAX], type_full[AVAHI_DOMAIN_NAME_MAX], enum_name[AVAHI_DOMAIN_NAME_MAX];
        rc = full_names(p, full, type_full, enum_name);
        if (rc == 0)
            rc = add_txt_record(p, p->group, full, AVAHI_PUBLISH_UPDATE);
    } else {
        AvahiStringList *l = txt_to_avahi(&p->txt);
        rc = avahi_entry_group_update_service_txt_strlst(p->group, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, 0,
                                                         p->name, p->type, p->domain, l);
        avahi_string_list_free(l);
    }
    if (rc < 0) {
        lmd_error("cannot update TXT record: %s", avahi_strerror(rc));
        return LMD_EAVAHI;
    }
    p->txt_dirty = false;
    return 0;
}

const char *lmd_pub_name(const lmd_pub *p) { return p->name; }
bool lmd_pub_established(const lmd_pub *p) { return p->established; }

void lmd_pub_free(lmd_pub *p)
{
    if (!p)
        return;
    for (struct lmd_pub **pp = &p->m->pubs; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    if (p->group)
        avahi_entry_group_free(p->group); /* the daemon sends goodbyes */
    free(p->name);
    free(p->type);
    free(p->domain);
    lmd_txt_free(&p->txt);
    free(p);
}

/* ---- browsing -------------------------------------------------------- */

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
    for (struct inst **pp = &b->insts; *pp;) {
        struct inst *in = *pp;
        if (!in->stale) {
            pp = &in->next;
            continue;
        }
        *pp = in->next;
        if (in->resolved && b->cb.removed) {
            char ifname[IF_NAMESIZE];
            struct lmd_instance li;
            fill_instance(&li, in, ifname);
            b->cb.removed(b->ud, &li, LMD_GONE_EXPIRED);
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
        txt_from_avahi(&t, txt, name);
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
        if (in->resolved && b->cb.removed) {
            char ifname[IF_NAMESIZE];
            struct lmd_instance li;
            fill_instance(&li, in, ifname);
            in->resolved = false;
            b->cb.removed(b->ud, &li, LMD_GONE_EXPIRED);
        }
        /* The browser still lists it: try again later, backing off, in case
         * it was a passing failure. */
        in->fails++;
        if (in->retry) {
            int shift = in->fails < 7 ? (int)in->fails : 7;
            struct timeval tv = {.tv_sec = 2 << shift, .tv_usec = 0}; /* 4 s .. 256 s */
            event_add(in->retry, &tv);
        }
        break;
    }
    }
    check_settled(b);
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
        in->fails++;
        if (in->retry) {
            int shift = in->fails < 7 ? (int)in->fails : 7;
            struct timeval tv = {.tv_sec = 2 << shift, .tv_usec = 0};
            event_add(in->retry, &tv);
        }
    } else if (r) {
        in->r = r;
    }
}

static void browser_cb(AvahiServiceBrowser *sb, AvahiIfIndex ifindex, AvahiProtocol proto,
                       AvahiBrowserEvent event, const char *name, const char *type,
                       const char *domain, AvahiLookupResultFlags flags, void *ud)
{
    (void)flags;
    struct lmd_browse *b = ud;
    b->sb = sb;
    switch (event) {
    case AVAHI_BROWSER_NEW: {
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
                free(in->name);
                free(in->type);
                free(in->domain);
                if (in->retry)
                    event_free(in->retry);
                free(in);
                return;
            }
            in->next = b->insts;
            b->insts = in;
        }
        in->stale = false;
        in->fails = 0;
        if (!in->r)
            inst_resolve(in);
        break;
    }
    case AVAHI_BROWSER_REMOVE: {
        struct inst *in = inst_find(b, ifindex, proto, name);
        if (!in)
            break;
        if (in->resolved && b->cb.removed) {
            char ifname[IF_NAMESIZE];
            struct lmd_instance li;
            fill_instance(&li, in, ifname);
            b->cb.removed(b->ud, &li, LMD_GONE_GOODBYE);
        }
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

lmd_browse *lmd_browse_new(lmd_mdns *m, const char *type, const char *domain,
                           const struct lmd_browse_callbacks *cb, void *ud, int *err)
{
    struct lmd_browse *b = calloc(1, sizeof *b);
    *err = LMD_ENOMEM;
    if (!b)
        return NULL;
    b->m = m;
    b->type = lmd_strdup(type ? type : LMD_DEFAULT_TYPE);
    b->domain = domain ? lmd_strdup(domain) : NULL;
    if (!b->type || (domain && !b->domain)) {
        free(b->type);
        free(b->domain);
        free(b);
        return NULL;
    }
    if (cb)
        b->cb = *cb;
    b->ud = ud;
    b->next = m->browses;
    m->browses = b;
    *err = 0;
    browse_start(b);
    return b;
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
    if (b->sb)
        avahi_service_browser_free(b->sb);
    free(b->type);
    free(b->domain);
    free(b);
}
