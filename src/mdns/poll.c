/* AvahiPoll adapter for libevent.  Avahi ships glib and Qt adapters but Debian
 * has no libevent one, so this is the thin bridge: watches become persistent
 * fd events, timeouts one-shot timers.  Avahi gives timeouts as absolute
 * gettimeofday() times; libevent wants relative ones. */
#include "mdns/poll.h"
#include "base/log.h"
#include "base/loop.h"
#include "lmdisc.h"

#include <avahi-common/malloc.h>
#include <avahi-common/timeval.h>
#include <event2/event.h>
#include <stdlib.h>

struct AvahiWatch {
    struct event_base *base;
    int fd;
    struct event *ev;
    AvahiWatchEvent last;
    AvahiWatchCallback cb;
    void *ud;
};

struct AvahiTimeout {
    struct event *ev;
    AvahiTimeoutCallback cb;
    void *ud;
};

static short to_ev(AvahiWatchEvent e)
{
    return (short)(((e & AVAHI_WATCH_IN) ? EV_READ : 0) | ((e & AVAHI_WATCH_OUT) ? EV_WRITE : 0));
}

static void watch_fire(evutil_socket_t fd, short what, void *arg)
{
    AvahiWatch *w = arg;
    w->last = (AvahiWatchEvent)(((what & EV_READ) ? AVAHI_WATCH_IN : 0) |
                                ((what & EV_WRITE) ? AVAHI_WATCH_OUT : 0));
    /* the callback may free w */
    w->cb(w, fd, w->last, w->ud);
}

static void watch_free(AvahiWatch *w)
{
    lmd_event_free(w->ev);
    free(w);
}

/* (Re)make w's event: persistent, for what avahi wants to hear of. */
static int watch_arm(AvahiWatch *w, AvahiWatchEvent event)
{
    lmd_event_free(w->ev);
    w->ev = event_new(w->base, w->fd, (short)(to_ev(event) | EV_PERSIST), watch_fire, w);
    return w->ev && event_add(w->ev, NULL) == 0 ? 0 : LMD_ENOMEM;
}

static AvahiWatch *watch_new(const AvahiPoll *api, int fd, AvahiWatchEvent event,
                             AvahiWatchCallback cb, void *ud)
{
    const struct lmd_avahi_poll *p = api->userdata;
    AvahiWatch *w = calloc(1, sizeof *w);
    if (w)
        *w = (AvahiWatch){.base = p->base, .fd = fd, .cb = cb, .ud = ud};
    if (w && watch_arm(w, event) != 0) {
        watch_free(w);
        w = NULL;
    }
    return w;
}

static void watch_update(AvahiWatch *w, AvahiWatchEvent event)
{
    /* AvahiPoll's update has no way to fail: say so, the watch stays idle
     * (out of memory only) until avahi updates it again */
    if (watch_arm(w, event) != 0)
        lmd_error("cannot watch avahi's D-Bus connection (out of memory)");
}

static AvahiWatchEvent watch_get_events(AvahiWatch *w) { return w->last; }

static void timeout_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    AvahiTimeout *t = arg;
    t->cb(t, t->ud);
}

static void timeout_arm(AvahiTimeout *t, const struct timeval *tv)
{
    event_del(t->ev);
    if (!tv)
        return;
    AvahiUsec left = -avahi_age(tv);
    if (left < 0)
        left = 0;
    if (lmd_timer_in(t->ev, (double)left / 1e6) != 0) /* as in watch_update */
        lmd_error("cannot arm an avahi timeout (out of memory)");
}

static AvahiTimeout *timeout_new(const AvahiPoll *api, const struct timeval *tv,
                                 AvahiTimeoutCallback cb, void *ud)
{
    const struct lmd_avahi_poll *p = api->userdata;
    AvahiTimeout *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->cb = cb;
    t->ud = ud;
    t->ev = evtimer_new(p->base, timeout_fire, t);
    if (!t->ev) {
        free(t);
        return NULL;
    }
    timeout_arm(t, tv);
    return t;
}

static void timeout_update(AvahiTimeout *t, const struct timeval *tv) { timeout_arm(t, tv); }

static void timeout_free(AvahiTimeout *t)
{
    event_free(t->ev);
    free(t);
}

void lmd_avahi_poll_init(lmd_avahi_poll *p, struct event_base *base)
{
    p->base = base;
    p->api.userdata = p;
    p->api.watch_new = watch_new;
    p->api.watch_update = watch_update;
    p->api.watch_get_events = watch_get_events;
    p->api.watch_free = watch_free;
    p->api.timeout_new = timeout_new;
    p->api.timeout_update = timeout_update;
    p->api.timeout_free = timeout_free;
}
