/* What the files of src/mdns/ share: the client connection, and the calls
 * client.c makes into the publishers and browsers it owns.  Only avahi
 * headers here, and only files of this folder include it. */
#ifndef LMD_MDNS_INTERNAL_H
#define LMD_MDNS_INTERNAL_H

#include "mdns/mdns.h"
#include "mdns/poll.h"

#include <avahi-client/client.h>
#include <avahi-client/lookup.h>
#include <avahi-client/publish.h>

/* The resolver pool (pool.c): at most LMD_MDNS_RESOLVER_CLIENTS clients x
 * objects-per-client-max (1,024 by default) resolvers, more services than
 * avahi-daemon caches, on a thread of its own. */
#define LMD_MDNS_RESOLVER_CLIENTS 32

typedef struct lmd_pool lmd_pool;

enum lmd_pool_kind {
    LMD_POOL_FOUND,   /* a resolver's answer (the first, or a change) */
    LMD_POOL_FAILED,  /* it ended (text: why); not open any more */
    LMD_POOL_FULL,    /* the pool is full: nothing opened; wait for ROOM */
    LMD_POOL_ROOM,    /* a resolver was released after a FULL */
    LMD_POOL_LOST,    /* a pool client lost avahi-daemon (text: why) */
};

/* What the pool thread tells the loop (copies; next must come first). */
struct lmd_pool_msg {
    struct lmd_pool_msg *next;
    enum lmd_pool_kind kind;
    uint64_t rid, gen;
    AvahiIfIndex ifindex;
    AvahiProtocol proto;
    char *name, *host, *text;
    AvahiAddress addr;
    uint16_t port;
    AvahiStringList *txt;
    AvahiLookupResultFlags flags;
};

/* A pool whose messages carry gen until the next reset; starts its thread. */
int lmd_pool_new(lmd_mdns *m, uint64_t gen, lmd_pool **out);
void lmd_pool_free(lmd_pool *p);
/* Open a resolver for the request id rid (unique, never 0); its answers
 * come back as messages with that rid.  proto: the instance's (the
 * protocol it came over); aproto: the address family asked for
 * (AVAHI_PROTO_UNSPEC: any).  once: close it after the first. */
int lmd_pool_resolve(lmd_pool *p, uint64_t rid, AvahiIfIndex ifindex, AvahiProtocol proto, AvahiProtocol aproto,
                     const char *name, const char *type, const char *domain, bool once);
void lmd_pool_cancel(lmd_pool *p, uint64_t rid);
/* Close everything (a new avahi connection); later messages carry gen. */
void lmd_pool_reset(lmd_pool *p, uint64_t gen);
/* Resolvers open, and over how many clients (any thread). */
unsigned lmd_pool_open(const lmd_pool *p, unsigned *clients);
void lmd_pool_msg_free(struct lmd_pool_msg *msg);

struct lmd_mdns {
    struct event_base *base;
    lmd_avahi_poll poll;
    AvahiClient *client;
    enum lmd_mdns_state state;
    lmd_mdns_state_cb cb;
    void *ud;
    struct lmd_pub *pubs;         /* the loop's side (publisher.c) */
    struct lmd_publisher *publisher; /* NULL until the first lmd_pub_new */
    struct lmd_browse *browses;
    struct event *rebuild;
    struct event *retry;     /* no system bus: try to connect again later */
    unsigned retries;
    unsigned reconnects;
    bool told_waiting;
    lmd_pool *pool;           /* NULL until the first browser (lmd_mdns_pool) */
    uint64_t pool_gen;
    unsigned waiting;         /* instances waiting for room (browse.c) */
    double told_full;         /* when that was last logged (0: not now) */
    uint64_t seq;             /* instances' order of arrival */
    struct event *kick;       /* room again, or time to try: resolve them */
    bool closing;             /* lmd_mdns_free: avahi objects go with their
                               * clients, no call to the daemon for each */
};

/* Start the resolver pool (its thread, its clients) if not yet done: only
 * browsing needs it (client.c). */
int lmd_mdns_pool(lmd_mdns *m);
/* A message of the pool's, on the loop (browse.c). */
void lmd_mdns_pool_msg(lmd_mdns *m, const struct lmd_pool_msg *msg);
/* A connection to the daemon broke: rebuild everything (client.c). */
void lmd_mdns_lost(lmd_mdns *m, const char *why);
/* Resolve instances that wait for room (browse.c). */
void lmd_mdns_browses_kick(lmd_mdns *m);

/* the client is running: (re)start every browser (publishers have a
 * client of their own, on their own thread: publisher.h) */
void lmd_mdns_browses_start(lmd_mdns *m);
/* the client and every avahi object it made are about to be freed; what
 * browsers knew stays, marked stale */
void lmd_mdns_browses_forget(lmd_mdns *m);
/* (publisher.c) */
void lmd_publisher_free(struct lmd_publisher *t);
/* Whether a resolved instance (the answer's flags, its name and type) is
 * one of the services m publishes now: LOCAL, and of a name and type m
 * publishes.  (avahi
 * sets OUR_OWN only for the services of the browser's own client, found
 * the same way; ours are published by the publishing thread's client.) */
bool lmd_mdns_is_own(const lmd_mdns *m, AvahiLookupResultFlags flags, const char *name, const char *type);

/* TXT between lmd_txt and avahi's string lists and wire format (records.c) */
AvahiStringList *lmd_mdns_txt_to_avahi(const lmd_txt *t);
void lmd_mdns_txt_from_avahi(lmd_txt *t, AvahiStringList *l, const char *who);
/* An escaped domain name ("a\\.b._lmserv._tcp.local") in DNS wire format;
 * bytes written, or LMD_EINVAL (not a name, or past cap).  The same for a
 * TXT record. */
int lmd_mdns_name_wire(const char *escaped, uint8_t *out, size_t cap);
int lmd_mdns_txt_wire(const lmd_txt *t, uint8_t *out, size_t cap);

#endif
