/* Loop helpers (see loop.h). */
#include "base/loop.h"
#include "base/util.h"
#include "lmdisc.h"

#include <event2/event.h>
#include <math.h>
#include <unistd.h>

struct timeval lmd_tv(double secs)
{
    if (!(secs > 0)) /* negative or NaN */
        secs = 0;
    if (secs > 1e9)
        secs = 1e9;
    time_t whole = (time_t)secs;
    return (struct timeval){.tv_sec = whole, .tv_usec = (suseconds_t)((secs - (double)whole) * 1e6)};
}

int lmd_timer_in(struct event *ev, double secs)
{
    struct timeval tv = lmd_tv(secs);
    return event_add(ev, &tv) == 0 ? 0 : LMD_ENOMEM;
}

int lmd_timer_at(struct event *ev, double mono)
{
    if (mono < 0)
        return event_del(ev) == 0 ? 0 : LMD_EINVAL;
    return lmd_timer_in(ev, mono - lmd_now_mono());
}

_Static_assert(_Generic((event_callback_fn)0, void (*)(int, short, void *): 1, default: 0),
               "lmd_soon's callback is libevent's event_callback_fn");

struct event *lmd_soon(struct event_base *base, void (*cb)(int fd, short what, void *arg), void *arg)
{
    struct event *ev = evtimer_new(base, cb, arg);
    static const struct timeval now = {0, 0};
    if (ev && evtimer_add(ev, &now) != 0) {
        event_free(ev);
        ev = NULL;
    }
    return ev;
}

void lmd_event_free(struct event *ev)
{
    if (ev)
        event_free(ev);
}

double lmd_backoff(unsigned fails, double first, double max)
{
    double d = first * ldexp(1.0, (int)(fails > 30 ? 30 : (fails ? fails - 1 : 0)));
    return d < max ? d : max;
}

static void stop_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lmd_loop_thread *t = arg;
    if (t->on_stop)
        t->on_stop(t->ud);
    event_base_loopbreak(t->base);
}

static void *run(void *arg)
{
    struct lmd_loop_thread *t = arg;
    event_base_dispatch(t->base);
    return NULL;
}

int lmd_loop_thread_init(struct lmd_loop_thread *t, void (*on_stop)(void *ud), void *ud)
{
    *t = (struct lmd_loop_thread){.wake = {-1, -1}, .on_stop = on_stop, .ud = ud};
    if (pipe(t->wake) != 0 || !(t->base = event_base_new()) ||
        !(t->stop = event_new(t->base, t->wake[0], EV_READ, stop_fire, t)) || event_add(t->stop, NULL) != 0) {
        lmd_loop_thread_free(t);
        return LMD_ENOMEM;
    }
    return 0;
}

int lmd_loop_thread_start(struct lmd_loop_thread *t)
{
    if (pthread_create(&t->thread, NULL, run, t) != 0)
        return LMD_ENOMEM;
    t->running = true;
    return 0;
}

void lmd_loop_thread_stop(struct lmd_loop_thread *t)
{
    char c = 1;
    /* a failed write leaves a loop we cannot reach: joining would hang */
    if (t->running && write(t->wake[1], &c, 1) == 1)
        pthread_join(t->thread, NULL);
    t->running = false;
}

void lmd_loop_thread_free(struct lmd_loop_thread *t)
{
    lmd_loop_thread_stop(t);
    if (t->stop)
        event_free(t->stop);
    if (t->base)
        event_base_free(t->base);
    for (int i = 0; i < 2; i++)
        if (t->wake[i] >= 0)
            close(t->wake[i]);
    *t = (struct lmd_loop_thread){.wake = {-1, -1}};
}
