/* The peer table: plain data and events.  Knows neither avahi, DNS nor Lua.
 *
 * Instances (one service on one interface over one protocol) are merged into
 * peers keyed by (name, type, domain); a peer leaves when its last instance is
 * gone.  Every change is reported as one event, in order, through one
 * callback.  Time is passed in by the caller so tests can drive a clock.
 *
 * The verdict.  What consumers may see of a peer (events, snapshots, and
 * through them the policy, the API and the metrics) is decided by one
 * function of what the peer shows and the clock (lmd_peers_view in
 * verdict.c): with require_trusted, only peers whose announcement the
 * verifier trusts (and our own services); with hide_own, not our own
 * services, which only the network listing shows.  The verifier is asked
 * whenever what a peer shows changes (a join, an update, an instance
 * gone), when the clock reaches the time its last answer named (a
 * signature's or certificate's end: one registry deadline, no polling),
 * and for every peer by lmd_peers_rejudge (its settings changed: a trust
 * reload, a revocation, the wall clock set).  A peer that comes to be
 * seen joins, one that no longer may leaves as "untrusted".  A trusted
 * peer is never displaced by an untrusted record: such an update is
 * refused (and told to the judged callback), and counts as no sighting. */
#ifndef LMD_PEERS_H
#define LMD_PEERS_H

#include "base/error.h"
#include "base/instance.h"
#include "lmdisc.h"

typedef struct lmd_peers lmd_peers;

enum lmd_event_kind { LMD_EV_JOIN, LMD_EV_UPDATE, LMD_EV_LEAVE };

/* What counts as a change of a peer: the one definition.  Each kind of
 * change has a bit (LMD_CH_ID), a name (in events, logs, Lua and JSON) which
 * is also the peer field (as Lua and JSON name it) whose difference it
 * reports, and who finds it: the REGISTRY by comparing that field (diff() in
 * peers.c), or the POLICY (info() gave another info).  The Lua half reads it
 * as lmdisc.CHANGES (lmdisc.testing's simulated registry);
 * python/lmdisc/events.py keeps a copy that tests/unit/test_contract.lua
 * holds to it.  In this order. */
#define LMD_CHANGES(X)                                                                                         \
    X(HOST, host, REGISTRY)                                                                                    \
    X(PORT, port, REGISTRY)                                                                                    \
    X(TXT, txt, REGISTRY)                                                                                      \
    X(ADDRS, addresses, REGISTRY)                                                                              \
    X(INFO, info, POLICY)                                                                                      \
    X(SOURCES, sources, REGISTRY) /* seen through another set of sources (mDNS, DNS) */

enum {
#define LMD_CH_INDEX_(id, name, by) LMD_CH_##id##_INDEX,
    LMD_CHANGES(LMD_CH_INDEX_)
#undef LMD_CH_INDEX_
    LMD_CH_COUNT
};
/* What an update changed (bits). */
enum {
#define LMD_CH_BIT_(id, name, by) LMD_CH_##id = 1 << LMD_CH_##id##_INDEX,
    LMD_CHANGES(LMD_CH_BIT_)
#undef LMD_CH_BIT_
    LMD_CH_LAST = 1 << (LMD_CH_COUNT - 1),
};
/* "join", "update", "leave" */
const char *lmd_event_kind_name(int kind);
/* A change's name ("host", "addresses", ...), for logs and Lua; "?" for
 * anything but one LMD_CH_* bit. */
const char *lmd_change_name(unsigned bit);
/* Whether the policy finds that change (info), not the registry. */
bool lmd_change_by_policy(unsigned bit);

/* Leave reasons are strings so the policy layer can add its own
 * ("filtered", "unhealthy"). */
#define LMD_REASON_GOODBYE "goodbye"
#define LMD_REASON_EXPIRED "expired"

typedef void (*lmd_peers_event_cb)(void *ud, enum lmd_event_kind kind, const lmd_node_info *peer,
                                      const lmd_node_info *old, unsigned changes,
                                      const char *reason);
/* Asked when a peer has not been confirmed for ttl seconds: look it up
 * again; lmd_peers_seen() confirms it, and if nothing does
 * within the grace period it leaves as "expired".  Also asked for each
 * instance of a trusted peer whose goodbye is held (ifindex and proto 4/6
 * name it; both 0 for the whole peer). */
typedef void (*lmd_peers_confirm_cb)(void *ud, const lmd_node_info *peer, int ifindex, int proto);
/* What the verifier says about what a peer shows (trust { }). */
struct lmd_peers_verdict {
    int status;             /* 0: trusted; else why not (an lmd_trust_status) */
    char signer[17];        /* trusted: the host key's id, 16 hex digits */
    double until;           /* wall-clock seconds when the clock alone may change it; 0: never */
    bool newest;            /* trusted, and newer than any signature seen for its name: a
                             * peer of the same name but for case is judged again */
    char reason[256];       /* one line for the log */
};
/* Verifies a peer's announcement as the registry shows it at wall (epoch
 * seconds).  Asked every time what a peer shows changes, before anyone
 * sees it, so that LMD_NODE_TRUSTED always speaks for exactly the data
 * shown: data that changed is never shown as trusted on the strength of
 * an earlier verdict. */
typedef void (*lmd_peers_verify_cb)(void *ud, const lmd_node_info *peer, double wall, struct lmd_peers_verdict *out);
/* Told when a peer's verdict changes (refused false), and when an update
 * that would not be trusted was refused for a trusted peer (refused true:
 * peer is what stays shown, v the refused record's verdict). */
typedef void (*lmd_peers_judged_cb)(void *ud, const lmd_node_info *peer, const struct lmd_peers_verdict *v,
                                    bool refused);

struct lmd_peers_config {
    double ttl;             /* seconds; <= 0: never expire on our own */
    double confirm_grace;   /* seconds allowed for a confirmation (default 10) */
    bool include_self;      /* keep our own services (marked LMD_NODE_OWN) */
    double settle;          /* at most this many seconds to gather a new peer's
                             * instances into one join (it is reported as soon
                             * as an instance comes marked complete: nothing
                             * else pending, and a peer seen again has every
                             * instance it had when it left), and a change's
                             * follow-ups into one update; 0: none */
    double goodbye_hold;    /* a peer's goodbye over mDNS (for a peer consumers
                             * see) is held this long for the network to confirm it
                             * (the confirm callback asks); seen again
                             * meanwhile, it stays (a forged goodbye does
                             * nothing); 0: leave at once */
    bool require_trusted;   /* only peers the verifier trusts (and our own) may be seen */
    bool hide_own;          /* our own services are held but are not peers */
};

int lmd_peers_new(const struct lmd_peers_config *cfg, lmd_peers_event_cb ev, lmd_peers_confirm_cb confirm,
                  void *ud, lmd_peers **out, lmd_err *err);
void lmd_peers_free(lmd_peers *r);
void lmd_peers_set_verifier(lmd_peers *r, lmd_peers_verify_cb verify, lmd_peers_judged_cb judged);
/* New settings; what may be seen is decided again (events as they follow). */
void lmd_peers_configure(lmd_peers *r, const struct lmd_peers_config *cfg, double now);
/* Ask the verifier again about every peer (its fleet keys, revocation
 * list or clock changed): joins and leaves as the verdicts turn. */
void lmd_peers_rejudge(lmd_peers *r, double now, double wall);

/* A resolver reported the instance (first time, a change, or a confirmation).
 * now: monotonic seconds; wall: epoch seconds. */
int lmd_peers_seen(lmd_peers *r, const struct lmd_instance *in, double now, double wall);
/* Whether the table holds that instance (ifindex, proto 4/6) of a peer. */
bool lmd_peers_has_instance(const lmd_peers *r, const char *name, int ifindex, int proto);
/* The instance is gone; the peer leaves with reason if it was the last. */
int lmd_peers_gone(lmd_peers *r, const struct lmd_instance *in, const char *reason);
/* The same, with the time, so that a change it causes can be settled. */
int lmd_peers_gone_at(lmd_peers *r, const struct lmd_instance *in, const char *reason,
                                  double now);

/* Monotonic time of the next ttl deadline, or a negative value if none. */
double lmd_peers_next_deadline(const lmd_peers *r);
/* Act on every deadline that has passed at now (wall: epoch seconds, for
 * the verifier; lmd_peers_tick takes it from the last call that gave one). */
void lmd_peers_tick_at(lmd_peers *r, double now, double wall);
void lmd_peers_tick(lmd_peers *r, double now);

/* The policy's verdict on a peer: kept or not, and the info it computed
 * (NULL: the TXT "info").  Used by list_alive(kept_only) and the API. */
int lmd_peers_set_verdict(lmd_peers *r, const char *name, bool kept, const char *info, size_t info_len);
/* Kept by the policy, and seen at all. */
bool lmd_peers_kept(const lmd_peers *r, const char *name);
/* A trust verdict set by hand (no verifier: tests), as the verifier's
 * would be (status 0: trusted, by signer; else why not); shown as
 * LMD_NODE_TRUSTED and signer.  Returns the verdict it had before (-1:
 * none), or LMD_ENOTFOUND. */
int lmd_peers_set_trust(lmd_peers *r, const char *name, int status, const char *signer);
/* Health from peer checks: an unhealthy peer stays in the registry (it is
 * still on the network) but is not listed as alive. */
int lmd_peers_set_healthy(lmd_peers *r, const char *name, bool healthy);
bool lmd_peers_healthy(const lmd_peers *r, const char *name);

/* Snapshot of live peers (those the verdict lets be seen), sorted by name;
 * kept_only: only those the policy keeps, with their policy info.  Free
 * with lmd_node_list_free(). */
int lmd_peers_snapshot(const lmd_peers *r, bool kept_only, lmd_node_list *out);
/* Every service seen on the network, reported yet or still settling, our
 * own included, untrusted ones not under require_trusted: what a one-shot
 * discover would list. */
int lmd_peers_snapshot_network(const lmd_peers *r, lmd_node_list *out);
/* Any peer the table holds, seen or not (NULL: none by that name).  Built
 * when asked (the table holds its peers' instances, not their views): valid
 * until the next call of lmd_peers_get or lmd_peers_free; copy what must
 * live longer. */
const lmd_node_info *lmd_peers_get(lmd_peers *r, const char *name);
/* Whether the table holds a peer by that name (lmd_peers_get without its view). */
bool lmd_peers_has(const lmd_peers *r, const char *name);
size_t lmd_peers_count(const lmd_peers *r);
/* Visit every peer consumers see (in name order). */
void lmd_peers_foreach(const lmd_peers *r, void (*fn)(void *ud, const lmd_node_info *peer),
                          void *ud);

#endif
