/* Whether the browser's avahi path is behind (see mdns.h: lmd_browse_behind
 * and the behind callback): an instance the browser reported that still
 * awaits its first resolver answer, or room in the pool, after
 * LMD_BROWSE_BEHIND_AGE.  A timer runs only while such an instance exists:
 * none on an idle agent. */
#include "base/loop.h"
#include "base/util.h"
#include "mdns/browse.h"

#include <event2/event.h>

static bool awaiting(const struct inst *in)
{
    return !in->answered && (in->pending || in->waiting);
}

unsigned lmd_browse_behind(const lmd_browse *b, double age)
{
    double now = lmd_now_mono();
    unsigned n = 0;
    for (const struct inst *in = b->insts; in; in = in->next)
        n += awaiting(in) && now - in->asked >= age;
    return n;
}

static void behind_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lmd_browse *b = arg;
    double now = lmd_now_mono(), oldest = now;
    bool any = false;
    for (const struct inst *in = b->insts; in; in = in->next)
        if (awaiting(in)) {
            any = true;
            if (in->asked < oldest)
                oldest = in->asked;
        }
    if (!any)
        return;
    if (now - oldest >= LMD_BROWSE_BEHIND_AGE) {
        if (b->cb.behind)
            b->cb.behind(b->ud); /* (the owner polls lmd_browse_behind from now on) */
        return;
    }
    (void)lmd_timer_in(b->behind_t, oldest + LMD_BROWSE_BEHIND_AGE - now);
}

void lmd_browse_behind_arm(struct lmd_browse *b)
{
    if (!b->cb.behind)
        return;
    if (!b->behind_t && !(b->behind_t = evtimer_new(b->m->base, behind_fire, b)))
        return; /* out of memory: no listener, avahi alone */
    if (!evtimer_pending(b->behind_t, NULL))
        (void)lmd_timer_in(b->behind_t, LMD_BROWSE_BEHIND_AGE);
}
