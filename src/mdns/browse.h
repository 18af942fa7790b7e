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
    struct inst *next, *prev; /* b->insts (instidx.c links them) */
    struct inst *hnext;       /* the same name bucket (instidx.c) */
    uint64_t ix_rid, ix_fam;  /* the ids indexed for it (lmd_inst_rids) */
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
    double asked;   /* when its resolver was last asked for (behind.c) */
    bool answered;  /* a resolver answered for it once (behind.c: a retry after
                     * a failure, records expiring, is not avahi being behind) */
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

/* A resolver id and its instance (instidx.c) */
struct lmd_rid_slot {
    uint64_t rid; /* 0: free */
    struct inst *in;
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
    /* the index of insts (instidx.c): by name, by resolver id */
    struct inst **names;
    size_t n_names, n_insts;
    struct lmd_rid_slot *rids;
    size_t n_rids, used_rids;
    bool rid_oom;
    bool all_for_now;
    bool settled;
    /* lmd_browse_settle_early: the browser's start, the last instance
     * reported, how many avahi had in its cache, the timer */
    bool early, early_done, exhausted;
    double t0, last_new;
    unsigned cached;
    struct event *quiet;
    struct event *behind_t; /* behind.c: only while an instance awaits */
    struct lmd_browse_callbacks cb;
    void *ud;
    /* lmd_browse_set_gate */
    lmd_browse_gate_cb gate;
    void *gate_ud;
    bool released;
};

/* instidx.c: the instances of a browser by interface, protocol and name,
 * and by resolver id.  link: into b->insts and the index (0 or
 * LMD_ENOMEM: not linked); unlink: out of both (unlinked: nothing);
 * rids: after in->rid or in->rid_fam changed (every path that changes
 * them calls it before the next pool message); by_rid: the instance with
 * that resolver id, or NULL. */
int lmd_inst_link(struct lmd_browse *b, struct inst *in);
void lmd_inst_unlink(struct lmd_browse *b, struct inst *in);
struct inst *lmd_inst_find(struct lmd_browse *b, AvahiIfIndex ifindex, AvahiProtocol proto, const char *name);
bool lmd_inst_sibling_pending(const struct inst *in);
void lmd_inst_rids(struct inst *in);
struct inst *lmd_inst_by_rid(lmd_mdns *m, uint64_t rid);
void lmd_inst_index_free(struct lmd_browse *b);

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
/* (behind.c) An instance was just asked for: look at it in a while. */
void lmd_browse_behind_arm(struct lmd_browse *b);

#endif
