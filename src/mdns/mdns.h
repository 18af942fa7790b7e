/* The only window onto avahi (src/mdns/: client.c, publish.c, browse.c,
 * records.c, poll.c).  Everything behind it speaks avahi-client over D-Bus to a real avahi-daemon; nothing in front of it sees an avahi type.
 *
 * lmd_mdns owns the client connection.  It is created with
 * AVAHI_CLIENT_NO_FAIL, so it waits for a daemon that is not (yet) there, and
 * when the daemon goes away it rebuilds the client and every publisher and
 * browser made from it, by itself.  Browsers keep what they knew across such
 * an outage and only report instances that did not come back. */
#ifndef LMD_MDNS_H
#define LMD_MDNS_H

#include "base/error.h"
#include "base/instance.h"
#include "lmdisc.h"

struct event_base;

enum lmd_mdns_state {
    LMD_MDNS_WAITING,    /* no avahi-daemon (yet); waiting for it */
    LMD_MDNS_RUNNING,    /* connected, daemon running */
    LMD_MDNS_LOST,       /* daemon went away; rebuilding */
    LMD_MDNS_FAILED,     /* unrecoverable (details logged) */
};

typedef struct lmd_mdns lmd_mdns;
typedef void (*lmd_mdns_state_cb)(void *ud, enum lmd_mdns_state st);

int lmd_mdns_new(struct event_base *base, lmd_mdns_state_cb cb, void *ud, lmd_mdns **out, lmd_err *err);
void lmd_mdns_free(lmd_mdns *m);
/* m's owner is ending: browsers it frees from now on (lmd_browse_free)
 * make no call to avahi-daemon and their resolvers none either; they go
 * with the client in lmd_mdns_free(), which must follow without the loop
 * running in between.  (Each such call waits for the daemon's reply: a
 * daemon stopped or swamped held an agent's stop 25 s per browser.) */
void lmd_mdns_closing(lmd_mdns *m);
enum lmd_mdns_state lmd_mdns_state(const lmd_mdns *m);
/* Times the connection to avahi-daemon was rebuilt. */
unsigned lmd_mdns_reconnects(const lmd_mdns *m);
/* Service instances the network reports that are not followed (resolved)
 * because avahi-daemon refuses more resolvers: the registry is incomplete
 * while it is not 0.  resolvers: those open. */
unsigned lmd_mdns_unresolved(const lmd_mdns *m, unsigned *resolvers);
/* Whether name (of type) is one this agent publishes now (its own, or a
 * registered one), under the name avahi has it. */
bool lmd_mdns_publishes(const lmd_mdns *m, const char *name, const char *type);
/* This host's mDNS host name as avahi has it (e.g. "h1.local"), or NULL. */
const char *lmd_mdns_host_fqdn(lmd_mdns *m);

/* ---- Publishing one service ------------------------------------------ */

typedef struct lmd_pub lmd_pub;

struct lmd_pub_config {
    const char *name;       /* instance name (required) */
    const char *type;       /* NULL: LMD_DEFAULT_TYPE */
    const char *domain;     /* NULL: avahi's default (local) */
    uint16_t port;
    const lmd_txt *txt;
    /* Record TTL in seconds.  0: avahi's defaults (SRV 120 s, PTR/TXT
     * 75 min), published with avahi_entry_group_add_service.  Otherwise the
     * PTR, SRV and TXT records are published raw with this TTL, so every
     * mDNS cache on the LAN drops them about ttl seconds after this host
     * vanishes without a goodbye. */
    unsigned ttl;
};

enum lmd_pub_event {
    LMD_PUB_ESTABLISHED,    /* name is on the network */
    LMD_PUB_RENAMED,        /* collision: now published as lmd_pub_name() */
    LMD_PUB_FAILED,         /* avahi refused (message in detail) */
};
typedef void (*lmd_pub_cb)(void *ud, enum lmd_pub_event ev, const char *name, const char *detail);

int lmd_pub_new(lmd_mdns *m, const struct lmd_pub_config *cfg, lmd_pub_cb cb, void *ud, lmd_pub **out,
                lmd_err *err);
/* Replace the TXT record.  Sent with avahi's TXT update once the group is
 * established (updating while probing can be taken as a conflict), without
 * re-registering; before that it is kept and applied then. */
int lmd_pub_set_txt(lmd_pub *p, const lmd_txt *txt);
const char *lmd_pub_name(const lmd_pub *p);
bool lmd_pub_established(const lmd_pub *p);
/* Withdraw (avahi sends goodbyes) and free. */
void lmd_pub_free(lmd_pub *p);

/* ---- Browsing, with one resolver kept open per instance --------------- */

typedef struct lmd_browse lmd_browse;

enum lmd_gone { LMD_GONE_GOODBYE, LMD_GONE_EXPIRED };

struct lmd_browse_callbacks {
    /* first resolution, and every change avahi reports afterwards */
    void (*resolved)(void *ud, const struct lmd_instance *in);
    void (*removed)(void *ud, const struct lmd_instance *in, enum lmd_gone why);
    /* the network has answered: ALL_FOR_NOW seen (or lmd_browse_settle_early's
     * rule met) and no resolver pending.
     * Called again after each reconnect. */
    void (*settled)(void *ud);
    /* (may be NULL) an instance the browser reported has awaited its first
     * resolver answer (or room in the pool) LMD_BROWSE_BEHIND_AGE: avahi-
     * daemon is behind (a flood).  Told once each time it is seen; from
     * then on the owner asks lmd_browse_behind. */
    void (*behind)(void *ud);
};
#define LMD_BROWSE_BEHIND_AGE 0.2

/* The first browser of an lmd_mdns starts its resolver pool (pool.c: a
 * thread and avahi clients of its own), kept until lmd_mdns_free(); an
 * lmd_mdns that only publishes has neither. */
int lmd_browse_new(lmd_mdns *m, const char *type, const char *domain, const struct lmd_browse_callbacks *cb,
                   void *ud, lmd_browse **out, lmd_err *err);
bool lmd_browse_settled(const lmd_browse *b);
/* Instances the browser reported that have awaited their first resolver
 * answer (or room in the pool) at least age seconds. */
unsigned lmd_browse_behind(const lmd_browse *b, double age);
/* A one-shot scan's rule for settled (call right after lmd_browse_new):
 * not avahi's ALL_FOR_NOW, a fixed ~1 s timer, but what arrives: settled
 * once the answers to the browser's first query are due (avahi sends it
 * about 0.1 s after the browser starts, and responders delay shared
 * answers by 20-120 ms, RFC 6762 section 6, or 400-500 ms when the query's
 * known answers did not fit one packet), nothing new came for a short
 * quiet period, and every instance is resolved (browse.c).  The agent
 * keeps ALL_FOR_NOW: its scan never ends anyway. */
void lmd_browse_settle_early(lmd_browse *b);
/* A one-shot scan with a source of its own beside avahi (lmd_discover_nodes:
 * its own mDNS query, src/dns).  gate(ud, ifindex, proto 4/6, name) is
 * asked about each instance the browser reports before a resolver is
 * opened for it: RESOLVE now; HOLD, not yet (until lmd_browse_release; the
 * browser is not settled while any is held); SKIP, the other source has it
 * whole: never resolved nor reported here (avahi-daemon's resolvers are
 * what costs: ~10 s for 500 instances, though the records are cached);
 * ASIDE, resolve it but settled does not wait for it (the other source has
 * the service whole over the other protocol: what avahi's cache holds of
 * this one is a bonus, lmd_browse_aside_pending).
 * With a gate the settle-early rule waits for no answer window of its own
 * (the other source waited for the answers to its query): avahi's cache
 * given out, nothing new for a quiet period (settle.c). */
enum lmd_browse_verdict { LMD_BROWSE_RESOLVE, LMD_BROWSE_HOLD, LMD_BROWSE_SKIP, LMD_BROWSE_ASIDE };
typedef enum lmd_browse_verdict (*lmd_browse_gate_cb)(void *ud, int ifindex, int proto, const char *name);
void lmd_browse_set_gate(lmd_browse *b, lmd_browse_gate_cb gate, void *ud);
/* Ask the gate again about every held instance, HOLD now meaning RESOLVE
 * (for later ones too). */
void lmd_browse_release(lmd_browse *b);
/* Whether an instance the gate set ASIDE is still being resolved. */
bool lmd_browse_aside_pending(const lmd_browse *b);
/* Look the instances of one service up again; resolvers that answer confirm
 * it (resolved is called even when nothing changed), the others end in
 * removed(EXPIRED).  Used by the registry's ttl. */
int lmd_browse_reconfirm(lmd_browse *b, const char *name);
/* Ask the network once more for a service the browser no longer lists
 * (to confirm a goodbye): if it answers, its instances come back through
 * resolved().  ifindex and proto (4/6) name one instance; 0: any. */
int lmd_browse_lookup(lmd_browse *b, const char *name, int ifindex, int proto);
void lmd_browse_free(lmd_browse *b);

#endif
