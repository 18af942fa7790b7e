/* The agent's passive mDNS listener (src/dns/mdns_wire.c), opened while
 * its avahi path is behind (src/mdns/behind.c): a peer whose records are
 * on the wire joins from them, through the same lmd_peers_seen() as an
 * avahi resolver's answer (policy, trust), instead of waiting for a
 * swamped avahi-daemon.  DESIGN.md, "avahi is the .local source". */
#include "agent/internal.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "dns/mdnsw.h"

#include <event2/event.h>

/* The listener closes once nothing has awaited avahi for WIRE_QUIET
 * seconds and it holds no instance avahi has not confirmed (those expire by
 * their TTL, at most LMD_MWIRE_TTL_MAX).  5 s, not 30: an agent's own cold
 * start opens it too (its 50 instances await avahi's resolvers for a
 * second), and with 30 s the bench's second agent, idle 10-15 s after its
 * start, was still listening through its idle window (68 wake-ups a minute,
 * tests/bench/run --only wake); closed, it opens again 0.2 s after an
 * instance awaits avahi. */
#define WIRE_QUIET 5.0
#define WIRE_LOOK 2.0

static void wire_close(lmd_agent *a)
{
    if (!a->wire)
        return;
    lmd_mwire_stats st;
    lmd_mwire_stats_get(a->wire, &st);
    a->counts.wire_dropped += st.dropped;
    a->counts.wire_refused += st.hops_refused;
    lmd_mwire_free(a->wire);
    a->wire = NULL;
    lmd_event_free(a->wire_timer);
    a->wire_timer = NULL;
    lmd_info("mDNS listener closed: avahi-daemon has caught up (%u instance(s) read from the wire, %u joined "
             "from it)", st.found, a->wire_joins_now);
    lmd_mem_trim(); /* its table (up to LMD_MWIRE_MAX instances) back to the system */
}

/* A held instance (listed from the wire, not confirmed by avahi yet) is
 * seen again: the registry's liveness counts the listener's sighting, so
 * a peer a swamped avahi-daemon has not confirmed within the registry's
 * ttl does not leave "expired" and join again when avahi answers.  Only
 * what the registry still lists: nothing dropped is joined again. */
static void on_held(void *ud, const struct lmd_instance *in)
{
    lmd_agent *a = ud;
    if (lmd_peers_has_instance(a->reg, in->name, in->ifindex, in->proto))
        (void)lmd_peers_seen(a->reg, in, lmd_now_mono(), lmd_now_wall());
}

static void on_look(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_agent *a = arg;
    double now = lmd_now_mono();
    if (a->browse && lmd_browse_behind(a->browse, LMD_BROWSE_BEHIND_AGE))
        a->wire_busy = now;
    lmd_mwire_each_held(a->wire, on_held, a);
    lmd_agent_rearm(a);
    lmd_mwire_stats st;
    lmd_mwire_stats_get(a->wire, &st);
    if (now - a->wire_busy >= WIRE_QUIET && !st.held) {
        wire_close(a);
        return;
    }
    (void)lmd_timer_in(a->wire_timer, WIRE_LOOK);
}

static void on_found(void *ud, const struct lmd_instance *in)
{
    lmd_agent *a = ud;
    /* ours (its own or a registered one) is avahi's to say (LMD_NODE_OWN);
     * one the registry holds already (avahi answered first) is avahi's */
    if ((a->m && lmd_mdns_publishes(a->m, in->name, in->type)) ||
        lmd_peers_has_instance(a->reg, in->name, in->ifindex, in->proto)) {
        lmd_mwire_confirm(a->wire, in->ifindex, in->proto, in->name);
        return;
    }
    bool known = lmd_peers_has(a->reg, in->name);
    char e[160];
    lmd_debug("from the wire: \"%s\" on %s/IPv%d at %s:%u (%s)", lmd_escape_str(in->name, e, sizeof e), in->ifname,
              in->proto, in->addr->addr, in->port, known ? "another instance" : "new");
    if (lmd_peers_seen(a->reg, in, lmd_now_mono(), lmd_now_wall()) != 0) {
        lmd_mwire_confirm(a->wire, in->ifindex, in->proto, in->name); /* out of memory: avahi's then */
        return;
    }
    a->counts.wire_instances++;
    if (!known && lmd_peers_has(a->reg, in->name)) {
        a->counts.wire_joins++;
        a->wire_joins_now++;
    }
    lmd_agent_rearm(a);
}

static void on_gone(void *ud, const struct lmd_instance *in, bool goodbye)
{
    lmd_agent *a = ud;
    a->counts.wire_gone++;
    (void)lmd_peers_gone_at(a->reg, in, goodbye ? LMD_REASON_GOODBYE : LMD_REASON_EXPIRED, lmd_now_mono());
    lmd_agent_rearm(a);
}

static const struct lmd_mwire_callbacks wire_cb = {on_found, on_gone};

void lmd_agent_wire_behind(void *ud)
{
    lmd_agent *a = ud;
    a->wire_busy = lmd_now_mono();
    if (a->wire || a->wire_failed)
        return;
    lmd_err err = {0};
    if (!(a->wire_timer = evtimer_new(a->base, on_look, a)) ||
        lmd_mwire_new(a->base, a->cfg.announce.type ? a->cfg.announce.type : LMD_DEFAULT_TYPE, &wire_cb, a, &a->wire, &err) != 0) {
        lmd_warn("avahi-daemon is behind, and the agent cannot read the answers itself: %s; peers join as "
                 "avahi resolves them", err.msg[0] ? err.msg : "out of memory");
        lmd_event_free(a->wire_timer);
        a->wire_timer = NULL;
        a->wire_failed = true; /* not tried again: avahi alone, as before */
        return;
    }
    a->wire_joins_now = 0;
    a->counts.wire_opens++;
    (void)lmd_timer_in(a->wire_timer, WIRE_LOOK);
    lmd_info("avahi-daemon is behind (instances await their first resolver answer): mDNS listener open");
}

void lmd_agent_wire_confirm(lmd_agent *a, const struct lmd_instance *in)
{
    if (a->wire)
        lmd_mwire_confirm(a->wire, in->ifindex, in->proto, in->name);
}

void lmd_agent_wire_free(lmd_agent *a)
{
    if (a->wire)
        wire_close(a);
}

void lmd_agent_wire_metrics(const lmd_agent *a, struct lmd_metrics *out)
{
    out->wire_open = a->wire != NULL;
    if (a->wire) {
        lmd_mwire_stats st;
        lmd_mwire_stats_get(a->wire, &st);
        out->wire_dropped += st.dropped;
        out->wire_refused += st.hops_refused;
        out->wire_held = st.held;
    }
}
