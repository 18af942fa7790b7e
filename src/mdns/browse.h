/* The browser's state, shared by browse.c and lookup.c (private to
 * src/mdns). */
#ifndef LMD_MDNS_BROWSE_H
#define LMD_MDNS_BROWSE_H

#include "mdns/internal.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

/* The domain of nearly every instance, held once (inst.domain points here) */
static const char LMD_LOCAL[] = "local";

struct inst {
    struct inst *next;
    struct lmd_browse *b;
    AvahiIfIndex ifindex;
    AvahiProtocol proto;
    char *name, *type, *domain;
    uint64_t rid;   /* the pool's resolver (requested or open), or 0 */
    uint64_t rid_fam; /* one for the instance's own family, after rid
                       * answered with the other's (see inst_resolve) */
    char *host;     /* the SRV target its resolver last reported */
    struct event *retry;
    unsigned fails;
    uint64_t seq;   /* order of arrival (waiting: oldest first) */
    bool waiting;   /* the pool was full: waits for room */
    bool pending;   /* resolver started, no answer yet */
    bool resolved;  /* the owner has been told about it */
    bool stale;     /* known before a reconnect, not seen again yet */
    bool listed;    /* the browser reports it (not only a lookup's answer) */
    bool held;      /* the gate said wait (lmd_browse_set_gate): not resolved yet,
                     * and the browser is not settled while it waits */
    bool skipped;   /* the gate said another source has it whole: never resolved */
    bool aside;     /* the gate said resolve it, without waiting for it to settle */
};

/* lmd_browse_lookup: one query for a service the browser no longer lists */
struct lookup {
    struct lookup *next;
    struct lmd_browse *b;
    uint64_t rid;
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
    /* lmd_browse_settle_early: the browser's start, the last instance
     * reported, how many avahi had in its cache, the timer */
    bool early, early_done, exhausted;
    double t0, last_new;
    unsigned cached;
    struct event *quiet;
    struct lmd_browse_callbacks cb;
    void *ud;
    /* lmd_browse_set_gate */
    lmd_browse_gate_cb gate;
    void *gate_ud;
    bool released;
};

/* An instance the network reports (browser NEW, or a lookup's answer):
 * known or added, and resolved unless a resolver is open. */
void lmd_browse_inst_seen(struct lmd_browse *b, AvahiIfIndex ifindex, AvahiProtocol proto, const char *name,
                          const char *type, const char *domain, bool listed);
void lmd_browse_lookup_free(struct lookup *l);
/* Resolve (again), through the pool (browse.c). */
void lmd_browse_inst_resolve(struct inst *in);
/* Settled when the rule's time has come and nothing is pending or held:
 * tells the owner (browse.c). */
void lmd_browse_check_settled(struct lmd_browse *b);
/* (settle.c) Arm lmd_browse_settle_early's timer for what arrived. */
void lmd_browse_early_arm(struct lmd_browse *b);
/* (settle.c) Whether the gate keeps a new instance from being resolved
 * now (held or skipped). */
bool lmd_browse_gated(struct inst *in);
void lmd_browse_lookup_msg(struct lookup *l, const struct lmd_pool_msg *msg);

#endif
