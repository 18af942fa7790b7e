/* When a one-shot browser has settled (lmd_browse_settle_early), and the
 * gate of a scan with a source of its own (lmd_browse_set_gate); see
 * mdns.h. */
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "mdns/browse.h"

#include <event2/event.h>

/* lmd_browse_settle_early's rule (see mdns.h).  The query goes out about
 * 0.1 s after the browser starts (avahi defers it to gather others);
 * answers come 20-120 ms after it reached a responder.  With more cached
 * instances than the query's known answers fit in one packet (about 1,400
 * bytes: some 15 PTRs), avahi sends it truncated, and responders wait
 * 400-500 ms.  Then nothing new for EARLY_QUIET. */
#define EARLY_WINDOW 0.25
#define EARLY_WINDOW_TC 0.65
#define EARLY_KNOWN_FIT 15
#define EARLY_QUIET 0.05
void lmd_browse_early_arm(struct lmd_browse *b)
{
    if (!b->early || b->early_done || !b->quiet || !b->sb)
        return;
    /* with a gate, the other source waits for the answers: avahi's cache
     * given out (CACHE_EXHAUSTED) is enough; what avahi reports later,
     * while the other source waits, is held and resolved if need be */
    if (b->gate) {
        if (b->exhausted)
            (void)lmd_timer_in(b->quiet, 0);
        return;
    }
    double window = b->cached > EARLY_KNOWN_FIT ? EARLY_WINDOW_TC : EARLY_WINDOW;
    double due = b->t0 + window, q = b->last_new + EARLY_QUIET, now = lmd_now_mono();
    if (q > due)
        due = q;
    (void)lmd_timer_in(b->quiet, due > now ? due - now : 0); /* out of memory: ALL_FOR_NOW still ends it */
}

static void early_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lmd_browse *b = arg;
    b->early_done = true;
    lmd_debug("browse %s: answered by %.3f s (last new at %.3f s, %u cached)", b->type, lmd_now_mono() - b->t0,
              b->last_new - b->t0, b->cached);
    lmd_browse_check_settled(b);
}

void lmd_browse_settle_early(lmd_browse *b)
{
    if (b->early || !(b->quiet = evtimer_new(b->m->base, early_fire, b)))
        return;
    b->early = true;
    lmd_browse_early_arm(b);
}


void lmd_browse_set_gate(lmd_browse *b, lmd_browse_gate_cb gate, void *ud)
{
    b->gate = gate;
    b->gate_ud = ud;
}

bool lmd_browse_gated(struct inst *in)
{
    struct lmd_browse *b = in->b;
    in->held = false;
    if (!b->gate || in->skipped)
        return in->skipped;
    enum lmd_browse_verdict v = b->gate(b->gate_ud, in->ifindex, in->proto == AVAHI_PROTO_INET6 ? 6 : 4, in->name);
    in->held = v == LMD_BROWSE_HOLD && !b->released;
    in->skipped = v == LMD_BROWSE_SKIP;
    in->aside = v == LMD_BROWSE_ASIDE;
    if (in->held)
        b->settled = false; /* settled again once it is resolved or skipped */
    return in->held || in->skipped;
}

bool lmd_browse_aside_pending(const lmd_browse *b)
{
    for (const struct inst *in = b->insts; in; in = in->next)
        if (in->aside && in->pending)
            return true;
    return false;
}

void lmd_browse_release(lmd_browse *b)
{
    b->released = true;
    unsigned resolved = 0, skipped = 0;
    for (struct inst *in = b->insts; in; in = in->next) {
        if (!in->held)
            continue;
        if (!lmd_browse_gated(in)) {
            lmd_browse_inst_resolve(in);
            b->settled = false; /* settled again once it is resolved */
            resolved++;
        } else
            skipped++;
    }
    lmd_debug("browse %s: released at %.3f s: %u to resolve, %u whole from the other source", b->type,
              lmd_now_mono() - b->t0, resolved, skipped);
    lmd_browse_check_settled(b);
}
