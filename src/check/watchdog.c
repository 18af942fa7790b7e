/* The loop watchdog (see watchdog.h). */
#include "check/watchdog.h"
#include "base/log.h"
#include "base/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#define EXIT_WEDGED 3

struct lmd_watchdog {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* signalled to stop */
    bool stop;
    atomic_ulong iterations;
    pid_t tid;             /* the loop's thread */
    double bound, interval;
    bool systemd;          /* send WATCHDOG=1 */
};

void lmd_notify(const char *state)
{
    /* 0 (no NOTIFY_SOCKET) or negative (the manager went away): nothing to do */
    (void)sd_notify(0, state);
}

/* Is the loop's thread blocked in epoll_wait, i.e. idle? */
static bool idle(pid_t tid)
{
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool in_wait = false;
    if (fgets(buf, sizeof buf, f)) {
        long nr = strtol(buf, NULL, 10);
        in_wait = strncmp(buf, "running", 7) != 0 && (nr == SYS_epoll_wait || nr == SYS_epoll_pwait
#ifdef SYS_epoll_pwait2
                                                       || nr == SYS_epoll_pwait2
#endif
                                                       );
    }
    fclose(f);
    return in_wait;
}

static void *run(void *arg)
{
    lmd_watchdog *w = arg;
    unsigned long seen = atomic_load(&w->iterations);
    double progress = lmd_now_mono();
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        double t = (double)until.tv_sec + (double)until.tv_nsec / 1e9 + w->interval;
        until.tv_sec = (time_t)t;
        until.tv_nsec = (long)((t - (double)until.tv_sec) * 1e9);
        pthread_cond_timedwait(&w->cv, &w->mu, &until);
        if (w->stop)
            break;
        unsigned long now_it = atomic_load(&w->iterations);
        double now = lmd_now_mono();
        if (now_it != seen || idle(w->tid)) {
            seen = now_it;
            progress = now;
        }
        if (now - progress > w->bound) {
            lmd_error("watchdog: the event loop has not turned for %.1f s (stuck in a policy call or in C "
                      "that does not return); exiting so that avahi-daemon withdraws this host's "
                      "announcements and the supervisor restarts the agent", now - progress);
            _exit(EXIT_WEDGED);
        }
        if (w->systemd && now - progress <= w->interval * 2)
            lmd_notify("WATCHDOG=1");
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int lmd_watchdog_start(double bound, lmd_watchdog **out, lmd_err *err)
{
    lmd_watchdog *w = *out = calloc(1, sizeof *w);
    if (!w)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    w->tid = (pid_t)syscall(SYS_gettid);
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
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
