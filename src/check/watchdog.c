/* The loop watchdog (see watchdog.h).
 *
 * Zero wake-ups while idle: the loop's thread says when it enters and
 * leaves its wait for events, and the watchdog thread sleeps (a futex
 * wait without timeout) for as long as the loop waits; it times only a
 * loop that is running callbacks.  libevent 2.1 has no hook around its
 * wait (2.2's evwatch), so the wait is seen by defining epoll_wait here:
 * the agent's executable interposes libc's for every library in the
 * process, and the wrapper marks the wait on the watched thread only
 * (thread-local) and passes every call on to the next definition
 * (dlsym(RTLD_NEXT): libc's, or a sanitizer's interceptor); poll() is
 * seen the same way, for waits on a daemon's answer (below).  Not part of
 * liblmdisc: src/check is linked into the executable only.
 *
 * Under systemd with WatchdogSec=, the thread also wakes every half of it
 * to send WATCHDOG=1 while the loop is healthy: those wake-ups are
 * systemd's asking. */
#include "check/watchdog.h"
#include "base/log.h"
#include "base/util.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#define EXIT_WEDGED 3
/* the time a turn of the loop may spend waiting in poll() on top of the
 * bound: one D-Bus call (25 s) and some */
#define POLL_GRACE 30.0

struct lmd_watchdog {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* signalled to stop */
    atomic_bool stop;
    atomic_ulong iterations;
    _Atomic uint32_t waiting;  /* the loop's thread is in epoll_wait (a futex word) */
    atomic_bool sleeping;      /* the watchdog sleeps until it leaves it */
    _Atomic uint64_t polled_ns;  /* time the loop's thread spent in poll() (finite), all told */
    _Atomic uint64_t poll_since; /* CLOCK_MONOTONIC ns: in such a poll() since; 0: not */
    double bound, interval;
    bool systemd;              /* send WATCHDOG=1 */
};

/* the watchdog of the calling thread's loop, if it is watched */
static _Thread_local lmd_watchdog *watched;

void lmd_notify(const char *state)
{
    /* 0 (no NOTIFY_SOCKET) or negative (the manager went away): nothing to do */
    (void)sd_notify(0, state);
}

static long futex(_Atomic uint32_t *word, int op, uint32_t val)
{
    return syscall(SYS_futex, (uint32_t *)word, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
}

/* The watched thread waits: the watchdog may sleep until it is back. */
static void wait_begin(lmd_watchdog *w) { atomic_store(&w->waiting, 1); }

static void wait_end(lmd_watchdog *w)
{
    atomic_store(&w->waiting, 0); /* seq_cst: ordered before the load below */
    if (atomic_load(&w->sleeping)) {
        atomic_store(&w->sleeping, false);
        (void)futex(&w->waiting, FUTEX_WAKE, 1);
    }
}

static void *next_of(_Atomic(void *) *slot, const char *name)
{
    void *next = atomic_load_explicit(slot, memory_order_acquire);
    if (!next) {
        next = dlsym(RTLD_NEXT, name);
        if (next)
            atomic_store_explicit(slot, next, memory_order_release);
    }
    return next;
}

typedef int (*epoll_wait_fn)(int, struct epoll_event *, int, int);
static _Atomic(void *) next_epoll_wait;

__attribute__((visibility("default"))) int epoll_wait(int epfd, struct epoll_event *events, int maxevents,
                                                  int timeout)
{
    epoll_wait_fn next = (epoll_wait_fn)next_of(&next_epoll_wait, "epoll_wait");
    if (!next) {
        errno = ENOSYS;
        return -1;
    }
    lmd_watchdog *w = watched;
    if (!w || timeout == 0)
        return next(epfd, events, maxevents, timeout);
    wait_begin(w);
    int rc = next(epfd, events, maxevents, timeout);
    int saved = errno;
    /* a signal (EINTR) too: libevent 2.1 then runs the turn's timers and
     * callbacks before it waits again, and those are timed */
    wait_end(w);
    errno = saved;
    return rc;
}

/* A blocking call into a daemon (avahi-client's D-Bus method calls wait in
 * libdbus's poll() for the reply, up to D-Bus's own 25 s timeout) is a
 * bounded wait for someone else, not a wedge: a daemon busy with a flood
 * answered the agent's call after more than the watchdog's bound, and the
 * watchdog ended a healthy agent (lab_hostile).  Time in a poll() with a
 * finite timeout is not counted against the bound, up to POLL_GRACE per
 * turn of the loop: a callback that makes call after call (each poll
 * returning, and the next one waiting again) is still a wedge once they
 * add up past it.  A poll without a timeout stays timed. */
typedef int (*poll_fn)(struct pollfd *, nfds_t, int);
static _Atomic(void *) next_poll;

__attribute__((visibility("default"))) int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    poll_fn next = (poll_fn)next_of(&next_poll, "poll");
    if (!next) {
        errno = ENOSYS;
        return -1;
    }
    lmd_watchdog *w = watched;
    if (!w || timeout <= 0)
        return next(fds, nfds, timeout);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    atomic_store(&w->poll_since, (uint64_t)t0.tv_sec * 1000000000u + (uint64_t)t0.tv_nsec);
    int rc = next(fds, nfds, timeout);
    int saved = errno;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    atomic_fetch_add(&w->polled_ns, (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)t1.tv_nsec -
                                        (uint64_t)t0.tv_nsec);
    atomic_store(&w->poll_since, 0);
    errno = saved;
    return rc;
}

static void *run(void *arg)
{
    lmd_watchdog *w = arg;
    unsigned long seen = atomic_load(&w->iterations);
    double progress = lmd_now_mono();
    uint64_t polled_mark = atomic_load(&w->polled_ns);
    while (!atomic_load(&w->stop)) {
        if (!w->systemd && atomic_load(&w->waiting)) {
            /* idle: sleep until the loop leaves its wait (the store of
             * sleeping is ordered before the futex's check of waiting, and
             * the loop's store of waiting before its check of sleeping: one
             * of the two sees the other) */
            atomic_store(&w->sleeping, true);
            (void)futex(&w->waiting, FUTEX_WAIT, 1);
            atomic_store(&w->sleeping, false);
            seen = atomic_load(&w->iterations);
            progress = lmd_now_mono();
            polled_mark = atomic_load(&w->polled_ns);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        double t = (double)until.tv_sec + (double)until.tv_nsec / 1e9 + w->interval;
        until.tv_sec = (time_t)t;
        until.tv_nsec = (long)((t - (double)until.tv_sec) * 1e9);
        pthread_mutex_lock(&w->mu);
        if (!atomic_load(&w->stop))
            pthread_cond_timedwait(&w->cv, &w->mu, &until);
        pthread_mutex_unlock(&w->mu);
        if (atomic_load(&w->stop))
            break;
        unsigned long now_it = atomic_load(&w->iterations);
        double now = lmd_now_mono();
        uint64_t polled_now = atomic_load(&w->polled_ns), since = atomic_load(&w->poll_since);
        if (now_it != seen || atomic_load(&w->waiting)) {
            seen = now_it;
            progress = now;
            polled_mark = polled_now;
        }
        /* this turn's waits in poll(), the one under way included */
        double polled = (double)(polled_now - polled_mark) / 1e9 + (since ? now - (double)since / 1e9 : 0);
        if (polled > POLL_GRACE)
            polled = POLL_GRACE;
        if (now - progress - polled > w->bound) {
            lmd_error("watchdog: the event loop has not turned for %.1f s (stuck in a policy call or in C "
                      "that does not return); exiting so that avahi-daemon withdraws this host's "
                      "announcements and the supervisor restarts the agent", now - progress);
            _exit(EXIT_WEDGED);
        }
        if (w->systemd && now - progress - polled <= w->interval * 2)
            lmd_notify("WATCHDOG=1");
    }
    return NULL;
}

int lmd_watchdog_start(double bound, lmd_watchdog **out, lmd_err *err)
{
    lmd_watchdog *w = *out = calloc(1, sizeof *w);
    if (!w)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    w->bound = bound;
    w->interval = bound / 4;
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        w->systemd = true;
        if ((double)usec / 2e6 < w->interval)
            w->interval = (double)usec / 2e6;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* waits immune to clock changes */
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        *out = NULL;
        return lmd_err_set(err, LMD_ENOMEM, "cannot start the watchdog thread");
    }
    (void)pthread_setname_np(w->thread, "lmd-watchdog");
    watched = w; /* the calling thread's loop */
    return 0;
}

void lmd_watchdog_beat(lmd_watchdog *w)
{
    if (w)
        atomic_fetch_add_explicit(&w->iterations, 1, memory_order_relaxed);
}

void lmd_watchdog_stop(lmd_watchdog *w)
{
    if (!w)
        return;
    if (watched == w)
        watched = NULL;
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->stop, true);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    atomic_store(&w->waiting, 0);
    (void)futex(&w->waiting, FUTEX_WAKE, INT_MAX);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
