/* Publishing one service (lmd_pub, see mdns.h): an entry group per
 * service; collisions re-add under avahi_alternative_service_name; with a
 * TTL of our own the records are added raw.
 *
 * Before a name is probed (what avahi's cache knows of it), and while it
 * is, a record browser watches the network for its SRV record from another
 * host: a name already taken is given up for the alternative one at once,
 * by us, the newcomer.  Probing alone let the
 * established service lose it: our own browsing asks for the services of
 * our type with their records as known answers, and avahi-daemon on the
 * established host then suppresses its answers to our probes for 700 ms
 * (distributed duplicate suppression, avahi-core/response-sched.c), the
 * probes go unanswered, we announce, and the established host, now in
 * conflict, probes again, loses to us and renames itself (lab: 4 of 4
 * trials with an agent as the newcomer).
 *
 * All of it runs on the publishing thread (publisher.h), with that
 * thread's client: what the loop should hear goes back as messages. */
#include "base/txt.h"
#include "base/util.h"
#include "mdns/publisher.h"

#include <avahi-common/alternative.h>
#include <avahi-common/domain.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-common/timeval.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

struct lmd_ppub {
    struct lmd_ppub *next;
    lmd_publisher *t;
    uint64_t id; /* the loop's lmd_pub */
    AvahiEntryGroup *group;
    char *name, *type, *domain;
    uint16_t port;
    unsigned ttl;
    lmd_txt txt;
    bool established;
    bool txt_dirty;
    unsigned renames;
    AvahiRecordBrowser *watch; /* the name's SRV records, until established */
    AvahiTimeout *commit_by;   /* the bound on waiting for the watch's first answer */
    bool committed;            /* the records are out (probing or established) */
};

/* p's event to the loop (lmd_pub_cb's there) */
static void tell(struct lmd_ppub *p, enum lmd_pub_event ev, const char *detail)
{
    lmd_publisher_say(p->t, LMD_PMSG_EVENT, p->id, ev, p->name, detail);
}

/* not established any more: the loop's lmd_pub_established() follows */
static void down(struct lmd_ppub *p)
{
    if (p->established)
        lmd_publisher_say(p->t, LMD_PMSG_DOWN, p->id, LMD_PUB_FAILED, p->name, NULL);
    p->established = false;
}

static void pub_add(struct lmd_ppub *p, AvahiEntryGroup *g);
static void pub_start(struct lmd_ppub *p);
static void watch_stop(struct lmd_ppub *p);
static void txt_apply(struct lmd_ppub *p);

static int add_txt_record(struct lmd_ppub *p, AvahiEntryGroup *g, const char *full, AvahiPublishFlags extra)
{
    uint8_t rd[9000];
    int n = lmd_mdns_txt_wire(&p->txt, rd, sizeof rd);
    if (n < 0)
        return AVAHI_ERR_INVALID_RECORD;
    return avahi_entry_group_add_record(g, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, AVAHI_PUBLISH_UNIQUE | extra,
                                        full, AVAHI_DNS_CLASS_IN, AVAHI_DNS_TYPE_TXT, p->ttl, rd, (size_t)n);
}

static int full_names(struct lmd_ppub *p, char *full, char *type_full, char *enum_name)
{
    AvahiClient *c = p->t->client;
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
static int add_raw_service(struct lmd_ppub *p, AvahiEntryGroup *g)
{
    char full[AVAHI_DOMAIN_NAME_MAX], type_full[AVAHI_DOMAIN_NAME_MAX], enum_name[AVAHI_DOMAIN_NAME_MAX];
    const char *host = avahi_client_get_host_name_fqdn(p->t->client);
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
    if ((n = lmd_mdns_name_wire(host, rd + 6, sizeof rd - 6)) < 0)
        return AVAHI_ERR_INVALID_HOST_NAME;
    rc = avahi_entry_group_add_record(g, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, AVAHI_PUBLISH_UNIQUE, full,
                                      AVAHI_DNS_CLASS_IN, AVAHI_DNS_TYPE_SRV, p->ttl, rd, (size_t)n + 6);
    if (rc < 0)
        return rc;
    if ((rc = add_txt_record(p, g, full, 0)) < 0)
        return rc;
    if ((n = lmd_mdns_name_wire(full, rd, sizeof rd)) < 0)
        return AVAHI_ERR_INVALID_SERVICE_NAME;
    rc = avahi_entry_group_add_record(g, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, 0, type_full, AVAHI_DNS_CLASS_IN,
                                      AVAHI_DNS_TYPE_PTR, p->ttl, rd, (size_t)n);
    if (rc < 0)
        return rc;
    if ((n = lmd_mdns_name_wire(type_full, rd, sizeof rd)) < 0)
        return AVAHI_ERR_INVALID_SERVICE_TYPE;
    return avahi_entry_group_add_record(g, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, 0, enum_name,
                                        AVAHI_DNS_CLASS_IN, AVAHI_DNS_TYPE_PTR, p->ttl, rd, (size_t)n);
}

static void pub_rename(struct lmd_ppub *p)
{
    char *alt = avahi_alternative_service_name(p->name);
    if (!alt)
        return;
    char eold[256], enew[256];
    lmd_publisher_log(p->t, LMD_LOG_WARN, "service name '%s' is taken on the network; publishing as '%s'",
             lmd_escape_str(p->name, eold, sizeof eold), lmd_escape_str(alt, enew, sizeof enew));
    free(p->name);
    p->name = lmd_strdup(alt);
    avahi_free(alt);
    p->renames++;
    tell(p, LMD_PUB_RENAMED, NULL);
}

static void group_cb(AvahiEntryGroup *g, AvahiEntryGroupState state, void *ud)
{
    struct lmd_ppub *p = ud;
    p->group = g;
    switch (state) {
    case AVAHI_ENTRY_GROUP_ESTABLISHED:
        p->established = true;
        watch_stop(p); /* ours now: avahi defends it */
        if (p->txt_dirty) /* a TXT change made while probing; failures are logged there */
            txt_apply(p);
        tell(p, LMD_PUB_ESTABLISHED, NULL);
        break;
    case AVAHI_ENTRY_GROUP_COLLISION:
        down(p);
        pub_rename(p);
        avahi_entry_group_reset(g);
        pub_add(p, g);
        break;
    case AVAHI_ENTRY_GROUP_FAILURE: {
        const char *msg = avahi_strerror(avahi_client_errno(avahi_entry_group_get_client(g)));
        lmd_publisher_log(p->t, LMD_LOG_ERROR, "publishing failed: %s", msg);
        down(p);
        tell(p, LMD_PUB_FAILED, msg);
        break;
    }
    case AVAHI_ENTRY_GROUP_UNCOMMITED:
    case AVAHI_ENTRY_GROUP_REGISTERING:
        break;
    }
}

/* ---- the name's SRV records, before and while we probe for it ---------- */

static void commit_by_stop(struct lmd_ppub *p)
{
    if (p->commit_by)
        p->t->poll.api.timeout_free(p->commit_by);
    p->commit_by = NULL;
}

static void watch_stop(struct lmd_ppub *p)
{
    if (p->watch)
        avahi_record_browser_free(p->watch);
    p->watch = NULL;
    commit_by_stop(p);
}

/* Whether an SRV rdata names this host (any port; DNS names compare
 * without regard to ASCII case).  Such a record that is not a local entry
 * is an earlier announcement of this host's still in the cache (a goodbye
 * keeps it a second: a restarted agent sees its previous self), or ours
 * echoed back: not another host's claim on the name. */
static bool srv_is_this_host(const struct lmd_ppub *p, const uint8_t *rd, size_t len)
{
    const char *host = avahi_client_get_host_name_fqdn(p->t->client);
    uint8_t mine[AVAHI_DOMAIN_NAME_MAX + 8];
    int n = host ? lmd_mdns_name_wire(host, mine, sizeof mine) : -1;
    if (n < 0 || len != (size_t)n + 6)
        return false;
    for (int i = 0; i < n; i++)
        if (tolower(rd[6 + i]) != tolower(mine[i]))
            return false;
    return true;
}

static void pub_commit(struct lmd_ppub *p, AvahiEntryGroup *g);

static void pub_failed(struct lmd_ppub *p, int rc)
{
    char e[256];
    lmd_publisher_log(p->t, LMD_LOG_ERROR, "cannot publish '%s': %s", lmd_escape_str(p->name, e, sizeof e),
                      avahi_strerror(rc));
    tell(p, LMD_PUB_FAILED, avahi_strerror(rc));
}

static void watch_cb(AvahiRecordBrowser *b, AvahiIfIndex ifindex, AvahiProtocol proto, AvahiBrowserEvent ev,
                     const char *name, uint16_t clazz, uint16_t type, const void *rdata, size_t size,
                     AvahiLookupResultFlags flags, void *ud)
{
    (void)ifindex;
    (void)proto;
    (void)name;
    (void)clazz;
    (void)type;
    struct lmd_ppub *p = ud;
    /* (avahi-client dispatches a browser's events from the loop, never
     * from inside avahi_record_browser_new(): b is p->watch) */
    if (p->watch != b || !p->group)
        return;
    switch (ev) {
    case AVAHI_BROWSER_NEW: {
        /* another host's record of this name: taken; this host's are
         * not (a local clash fails the add; see srv_is_this_host) */
        if (p->established || (flags & (AVAHI_LOOKUP_RESULT_LOCAL | AVAHI_LOOKUP_RESULT_OUR_OWN)) || size < 7 ||
            srv_is_this_host(p, rdata, size))
            break;
        char e[256];
        lmd_publisher_log(p->t, LMD_LOG_DEBUG, "'%s' is announced by another host already: not probing for it",
                          lmd_escape_str(p->name, e, sizeof e));
        p->watch = NULL; /* freed below, once pub_add has started the new name's */
        avahi_entry_group_reset(p->group);
        pub_rename(p);
        pub_add(p, p->group);
        avahi_record_browser_free(b);
        break;
    }
    case AVAHI_BROWSER_CACHE_EXHAUSTED:
    case AVAHI_BROWSER_ALL_FOR_NOW:
    case AVAHI_BROWSER_FAILURE:
        /* what the cache knows of the name is in: probe for it now (a
         * record the network answers later still renames us while we
         * probe) */
        if (!p->committed)
            pub_commit(p, p->group);
        break;
    case AVAHI_BROWSER_REMOVE:
        break;
    }
}

/* The watch's first answer (ALL_FOR_NOW) comes about a second after it
 * starts; a daemon busy with a flood may deliver it much later, and the
 * announcement must not wait for it: probing (which still renames us on a
 * conflict) starts at this bound whatever the watch has said. */
#define LMD_PUB_WATCH_WAIT_MS 1500

static void commit_by_fire(AvahiTimeout *t, void *ud)
{
    (void)t;
    struct lmd_ppub *p = ud;
    p->t->poll.api.timeout_free(p->commit_by);
    p->commit_by = NULL;
    if (!p->committed && p->group)
        pub_commit(p, p->group);
}

/* Watch the name's SRV records; false if avahi would not. */
static bool watch_start(struct lmd_ppub *p)
{
    watch_stop(p);
    char full[AVAHI_DOMAIN_NAME_MAX], type_full[AVAHI_DOMAIN_NAME_MAX], enum_name[AVAHI_DOMAIN_NAME_MAX];
    if (full_names(p, full, type_full, enum_name) != 0)
        return false;
    p->watch = avahi_record_browser_new(p->t->client, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, full, AVAHI_DNS_CLASS_IN,
                                        AVAHI_DNS_TYPE_SRV, 0, watch_cb, p);
    if (!p->watch)
        return false;
    struct timeval tv;
    avahi_elapse_time(&tv, LMD_PUB_WATCH_WAIT_MS, 0);
    p->commit_by = p->t->poll.api.timeout_new(&p->t->poll.api, &tv, commit_by_fire, p);
    return true; /* without the bound (out of memory), the watch's answer commits */
}

static void pub_commit(struct lmd_ppub *p, AvahiEntryGroup *g)
{
    commit_by_stop(p);
    p->committed = true;
    int rc = avahi_entry_group_commit(g);
    if (rc < 0) {
        pub_failed(p, rc);
    }
}

/* Add our records under p->name, then commit them (probe) once the cache
 * has said whether another host announces that name (watch_cb); without
 * a watcher, at once. */
static void pub_add(struct lmd_ppub *p, AvahiEntryGroup *g)
{
    AvahiStringList *l = lmd_mdns_txt_to_avahi(&p->txt);
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
    p->committed = false;
    if (rc < 0) {
        pub_failed(p, rc);
        return;
    }
    if (!watch_start(p))
        pub_commit(p, g);
}

static void pub_start(struct lmd_ppub *p)
{
    lmd_publisher *t = p->t;
    if (!t->running || !t->client)
        return;
    if (!p->group) {
        AvahiEntryGroup *g = avahi_entry_group_new(t->client, group_cb, p);
        if (!g) {
            int rc = avahi_client_errno(t->client);
            lmd_publisher_log(t, LMD_LOG_ERROR, "cannot create avahi entry group: %s", avahi_strerror(rc));
            tell(p, LMD_PUB_FAILED, avahi_strerror(rc));
            return;
        }
        p->group = g;
    }
    if (avahi_entry_group_is_empty(p->group))
        pub_add(p, p->group);
}

struct lmd_ppub *lmd_ppub_new(lmd_publisher *t, uint64_t id, char *name, char *type, char *domain, uint16_t port,
                              unsigned ttl, lmd_txt *txt)
{
    struct lmd_ppub *p = calloc(1, sizeof *p);
    if (!p) {
        lmd_publisher_say(t, LMD_PMSG_EVENT, id, LMD_PUB_FAILED, name, "out of memory");
        free(name);
        free(type);
        free(domain);
        lmd_txt_free(txt);
        *txt = (lmd_txt){0};
        return NULL;
    }
    p->t = t;
    p->id = id;
    p->name = name;
    p->type = type;
    p->domain = domain;
    p->port = port;
    p->ttl = ttl;
    p->txt = *txt;
    *txt = (lmd_txt){0};
    p->next = t->pubs;
    t->pubs = p;
    pub_start(p);
    return p;
}

struct lmd_ppub *lmd_ppub_find(lmd_publisher *t, uint64_t id)
{
    for (struct lmd_ppub *p = t->pubs; p; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

/* p->txt out: with avahi's TXT update once the group is established
 * (updating while probing can be taken as a conflict), without
 * re-registering; before that, when it is (group_cb). */
static void txt_apply(struct lmd_ppub *p)
{
    p->txt_dirty = true;
    if (!p->established || !p->group)
        return;
    int rc;
    if (p->ttl) {
        char full[AVAHI_DOMAIN_NAME_MAX], type_full[AVAHI_DOMAIN_NAME_MAX], enum_name[AVAHI_DOMAIN_NAME_MAX];
        rc = full_names(p, full, type_full, enum_name);
        if (rc == 0)
            rc = add_txt_record(p, p->group, full, AVAHI_PUBLISH_UPDATE);
    } else {
        AvahiStringList *l = lmd_mdns_txt_to_avahi(&p->txt);
        rc = avahi_entry_group_update_service_txt_strlst(p->group, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, 0,
                                                         p->name, p->type, p->domain, l);
        avahi_string_list_free(l);
    }
    if (rc < 0) {
        lmd_publisher_log(p->t, LMD_LOG_ERROR, "cannot update TXT record: %s", avahi_strerror(rc));
        return;
    }
    p->txt_dirty = false;
}

void lmd_ppub_set_txt(struct lmd_ppub *p, lmd_txt *txt)
{
    lmd_txt_free(&p->txt);
    p->txt = *txt;
    *txt = (lmd_txt){0};
    txt_apply(p);
}

void lmd_ppub_free(struct lmd_ppub *p, bool client_going)
{
    if (!p)
        return;
    LMD_LIST_UNLINK(&p->t->pubs, p);
    if (client_going) {
        commit_by_stop(p); /* the rest goes with the client */
    } else {
        watch_stop(p);
        if (p->group)
            avahi_entry_group_free(p->group); /* the daemon sends goodbyes */
    }
    free(p->name);
    free(p->type);
    free(p->domain);
    lmd_txt_free(&p->txt);
    free(p);
}

void lmd_ppubs_start(lmd_publisher *t)
{
    for (struct lmd_ppub *p = t->pubs; p; p = p->next)
        pub_start(p);
}

void lmd_ppubs_reset(lmd_publisher *t)
{
    for (struct lmd_ppub *p = t->pubs; p; p = p->next) {
        if (p->group)
            avahi_entry_group_reset(p->group);
        watch_stop(p);
        down(p);
    }
}

void lmd_ppubs_forget(lmd_publisher *t)
{
    for (struct lmd_ppub *p = t->pubs; p; p = p->next) {
        p->group = NULL;
        p->watch = NULL;   /* freed with the client */
        commit_by_stop(p); /* the thread loop's, not the client's */
        down(p);
    }
}
