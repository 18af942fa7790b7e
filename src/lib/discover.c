/* One-shot discovery: the original discover_nodes(timeout), but returning
 * as soon as the network has answered instead of always waiting.
 *
 * Two sources at once: our own mDNS query (src/dns, lmd_mdnsq: the
 * responders' answers carry every record an instance needs, and an
 * instance whole from them is taken as it is) and avahi's browser, whose
 * instances are resolved through avahi-daemon only when our query did not
 * bring them whole over either protocol (a resolver per instance is what
 * costs: ~10 s for 500).
 * Until our query is quiet avahi's instances are held (the same answers
 * reach both, in either order).  One our query did not bring whole is then
 * both asked for by name by our query (lmd_mdnsq_want, awaited to the
 * query's bound) and resolved by avahi aside: whichever comes first; the
 * scan waits for avahi's resolver only if our query's bound passed
 * without it.  Done when both have settled.
 *
 * A service our query brought whole over one protocol only is complete:
 * avahi's instance over the other is resolved aside (settled does not wait
 * for it; from avahi's cache it answers in milliseconds, and its address
 * is merged), and the scan waits for such resolvers ASIDE_GRACE at most:
 * a responder silent over one protocol costs no more. */
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "dns/mdnsq.h"
#include "lib/abi.h"
#include "lmdisc.h"
#include "mdns/mdns.h"
#include "registry/peers.h"

#include <event2/event.h>
#include <string.h>

#define ASIDE_GRACE 0.1
#include <strings.h>

struct disc {
    struct event_base *base;
    lmd_peers *reg;
    lmd_mdns *m;
    lmd_browse *b;
    const char *domain; /* as asked: "local" if not given */
    lmd_mdnsq *q;  /* our own query, NULL without (no libldns, no socket, not .local) */
    struct event *grace; /* ASIDE_GRACE, armed once both have settled */
    int err;
    bool wire_quiet, wire_settled, settled, graced;
    bool missing; /* our query settled at its bound with instances not whole: avahi's are awaited */
};

static void maybe_done(struct disc *d)
{
    if (d->settled || !d->b || !lmd_browse_settled(d->b) || (d->q && !d->wire_settled))
        return;
    if (!d->graced && lmd_browse_aside_pending(d->b)) {
        if (d->missing)
            return; /* completeness: on_resolved looks again, the timeout bounds it */
        if (d->grace && !evtimer_pending(d->grace, NULL))
            (void)lmd_timer_in(d->grace, ASIDE_GRACE); /* cannot: the timeout ends it */
        return;
    }
    d->settled = true;
    event_base_loopbreak(d->base);
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct disc *d = arg;
    d->graced = true;
    maybe_done(d);
}

static void seen(struct disc *d, const struct lmd_instance *in)
{
    /* avahi's browser reports a PTR at TYPE.local naming an instance in
     * another domain (TYPE.example), and resolves it: not what was asked */
    size_t n = strlen(d->domain) - (d->domain[0] && d->domain[strlen(d->domain) - 1] == '.');
    if (in->domain && (strncasecmp(in->domain, d->domain, n) || (in->domain[n] && strcmp(in->domain + n, "."))))
        return;
    if (lmd_peers_seen(d->reg, in, lmd_now_mono(), lmd_now_wall()) != 0)
        d->err = LMD_ENOMEM;
    maybe_done(d); /* an instance resolved aside may have been the last */
}

static void on_resolved(void *ud, const struct lmd_instance *in)
{
    struct disc *d = ud;
    if (d->q && in->name) /* avahi resolved it: our query awaits it no more */
        lmd_mdnsq_cover(d->q, in->ifindex, in->proto, in->name);
    seen(d, in);
}

static void on_removed(void *ud, const struct lmd_instance *in, enum lmd_gone why)
{
    struct disc *d = ud;
    /* LMD_ENOTFOUND: gone before it was resolved, nothing to drop */
    (void)lmd_peers_gone(d->reg, in, why == LMD_GONE_GOODBYE ? LMD_REASON_GOODBYE : LMD_REASON_EXPIRED);
}

static void on_settled(void *ud)
{
    struct disc *d = ud;
    maybe_done(d);
}

static void on_wire_found(void *ud, const struct lmd_instance *in) { seen(ud, in); }

static void on_wire_gone(void *ud, const struct lmd_instance *in) { on_removed(ud, in, LMD_GONE_GOODBYE); }

static void on_wire_quiet(void *ud)
{
    struct disc *d = ud;
    d->wire_quiet = true;
    if (d->b)
        lmd_browse_release(d->b); /* what our query did not bring whole: avahi resolves it too (gate) */
}

static void on_wire_settled(void *ud)
{
    struct disc *d = ud;
    d->wire_settled = true;
    if (!d->wire_quiet)
        on_wire_quiet(d);
    lmd_mdnsq_stats st;
    lmd_mdnsq_stats_get(d->q, &st);
    d->missing = st.expected > 0; /* at the bound: avahi's resolvers are awaited for them (maybe_done) */
    maybe_done(d);
}

static enum lmd_browse_verdict gate(void *ud, int ifindex, int proto, const char *name)
{
    struct disc *d = ud;
    if (!d->q)
        return LMD_BROWSE_RESOLVE;
    if (lmd_mdnsq_found(d->q, ifindex, proto, name))
        return LMD_BROWSE_SKIP;
    if (!d->wire_quiet) {
        lmd_mdnsq_want(d->q, ifindex, proto, name); /* awaited by our query */
        return LMD_BROWSE_HOLD;
    }
    /* whole from the wire over the other protocol: the peer is complete;
     * avahi's cache may hold this one too (merged if it answers within
     * ASIDE_GRACE), but its resolver must not hold the scan: it would wait
     * for the same silent responder (10 s with 500) */
    if (lmd_mdnsq_whole(d->q, ifindex, name))
        return LMD_BROWSE_ASIDE;
    /* whole over neither: our query asks for it by name and awaits it to
     * its bound, and avahi resolves it too (from its cache in
     * milliseconds when it has the records: a warm scan); whichever is
     * first.  A responder late over both protocols answers our ask in a
     * fraction of a second, where avahi-daemon's resolvers took up to 10 s
     * under load: the scan does not wait for them unless our query's
     * bound passes without it (maybe_done) */
    if (!d->wire_settled) {
        lmd_mdnsq_want(d->q, ifindex, proto, name);
        return LMD_BROWSE_ASIDE;
    }
    lmd_mdnsq_cover(d->q, ifindex, proto, name); /* avahi resolves it: our query waits no more for it */
    return LMD_BROWSE_RESOLVE;
}

/* Our own query, when it can be: a .local scan, libldns there, a socket. */
static void wire_start(struct disc *d, const lmd_discover_opts *o)
{
    if (o->domain && *o->domain && strcmp(o->domain, "local") && strcmp(o->domain, "local."))
        return;
    lmd_mdnsq_callbacks qc = {on_wire_found, on_wire_gone, on_wire_quiet, on_wire_settled};
    lmd_err e = {0};
    if (lmd_mdnsq_new(d->base, o->type ? o->type : LMD_DEFAULT_TYPE, &qc, d, &d->q, &e) != 0)
        lmd_debug("one-shot scan through avahi alone: %s", lmd_err_text(&e));
}

static void wire_note(const struct disc *d, double t0)
{
    if (!d->q)
        return;
    lmd_mdnsq_stats st;
    lmd_mdnsq_stats_get(d->q, &st);
    lmd_debug("own mDNS query: %u socket(s), %u packets, %u records (%u skipped, %u packets refused), %u whole, "
              "%u not whole, %u dropped, %u awaited, %u queries again, %u wanted by avahi's browser, %u asks by name; "
              "last new at %.3f s, settled %s, ended at %.3f s",
              st.sockets, st.packets, st.records, st.skipped, st.refused, st.found, st.incomplete, st.dropped, st.expected, st.requeries,
              st.wanted, st.asks,
              st.last_new - t0, d->wire_settled ? "yes" : "no", lmd_now_mono() - t0);
}

static void on_state(void *ud, enum lmd_mdns_state st)
{
    struct disc *d = ud;
    if (st == LMD_MDNS_WAITING || st == LMD_MDNS_LOST || st == LMD_MDNS_FAILED) {
        d->err = st == LMD_MDNS_FAILED ? LMD_EAVAHI : LMD_ENODAEMON;
        event_base_loopbreak(d->base);
    }
}

/* The one upper bound: the argument when > 0, else the option when > 0,
 * else 5 seconds (NaN counts as not given). */
static double discover_bound(double timeout, const lmd_discover_opts *o)
{
    if (timeout > 0)
        return timeout;
    return o->timeout > 0 ? o->timeout : 5;
}

int lmd_discover_nodes(double timeout, lmd_discover_opts *opts, lmd_node_list *out)
{
    out->n = 0;
    out->nodes = NULL;
    lmd_discover_opts o;
    if (lmd_lib_opts_read(&o, sizeof o, LMD_LIB_DISCOVER_OPTS_FIRST, opts) != 0)
        return LMD_EINVAL;
    timeout = discover_bound(timeout, &o);
    /* a hard bound, from here: connecting and starting the browser are
     * blocking calls to the daemon, seconds each when a flood swamps it */
    double deadline = lmd_now_mono() + timeout;
    if (o.type && !lmd_service_type_valid(o.type, NULL, 0))
        return LMD_EINVAL;
    struct disc d = {0};
    struct lmd_peers_config rc = {.ttl = 0, .include_self = true};
    struct lmd_browse_callbacks cb = {on_resolved, on_removed, on_settled};
    double t0 = lmd_now_mono();
    int err = LMD_ENOMEM;
    if (!(d.base = event_base_new()) || !(d.grace = evtimer_new(d.base, on_grace, &d)) ||
        (err = lmd_peers_new(&rc, NULL, NULL, NULL, &d.reg, NULL)) != 0)
        goto out;
    d.domain = o.domain && *o.domain ? o.domain : "local";
    wire_start(&d, &o); /* first: the query goes out before the calls to the daemon */
    if ((err = lmd_mdns_new(d.base, on_state, &d, &d.m, NULL)) != 0)
        goto out;
    if (lmd_mdns_state(d.m) != LMD_MDNS_RUNNING) {
        /* A one-shot scan does not wait for a daemon that is not there. */
        err = lmd_mdns_state(d.m) == LMD_MDNS_FAILED ? LMD_EAVAHI : LMD_ENODAEMON;
        goto out;
    }
    err = lmd_browse_new(d.m, o.type, o.domain, &cb, &d, &d.b, NULL);
    if (err)
        goto out;
    lmd_browse_set_gate(d.b, gate, &d);
    /* done when the network has answered, not at avahi's ~1 s timer */
    lmd_browse_settle_early(d.b);
    if (d.wire_quiet)
        lmd_browse_release(d.b);
    struct timeval tv = lmd_tv(deadline - lmd_now_mono());
    /* the timeout is only the upper bound; on_settled ends the loop sooner */
    err = LMD_ENOMEM;
    if (event_base_loopexit(d.base, &tv) != 0)
        goto out;
    event_base_dispatch(d.base);
    if (d.err) {
        err = d.err;
        goto out;
    }
    if (opts) /* complete is in the first layout: every caller's struct has it */
        opts->complete = d.settled;
    err = lmd_peers_snapshot(d.reg, false, out);
out:
    /* the browser goes with the lmd_mdns: with its client, without a call
     * to the daemon per resolver (bounded: see lmd_mdns_free) */
    wire_note(&d, t0);
    if (!d.m)
        lmd_browse_free(d.b);
    lmd_mdns_free(d.m);
    lmd_mdnsq_free(d.q);
    lmd_peers_free(d.reg);
    lmd_event_free(d.grace);
    if (d.base)
        event_base_free(d.base);
    return err;
}
