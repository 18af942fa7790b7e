/* Small helpers for libevent loops: timers from seconds, backoff, and a loop
 * on a thread of its own (what the public announce_self and REGISTRY run on). */
#ifndef LMD_LOOP_H
#define LMD_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/time.h>

struct event;
struct event_base;

/* Seconds (negative counts as 0) as a relative timeval. */
struct timeval lmd_tv(double secs);
/* (Re)arm a timer to fire in secs. */
int lmd_timer_in(struct event *ev, double secs);
/* Arm a timer for a monotonic time (lmd_now_mono()); mono < 0 disarms it. */
int lmd_timer_at(struct event *ev, double mono);
/* A timer that fires once, at the loop's next turn: what runs "from the
 * loop, never from inside this call".  NULL when libevent fails.  (cb is
 * libevent's event_callback_fn: evutil_socket_t is an int here.) */
struct event *lmd_soon(struct event_base *base, void (*cb)(int fd, short what, void *arg), void *arg);
/* event_free that takes NULL (as free does). */
void lmd_event_free(struct event *ev);
/* Exponential backoff: first * 2^(fails - 1), at most max (fails >= 1). */
double lmd_backoff(unsigned fails, double first, double max);

/* A libevent loop on a thread it owns, stopped through a wake pipe.  on_stop
 * runs on the loop's thread before the loop ends (to send goodbyes...). */
struct lmd_loop_thread {
    struct event_base *base;
    pthread_t thread;
    struct event *stop;
    int wake[2];
    bool running;
    void (*on_stop)(void *ud);
    void *ud;
};

int lmd_loop_thread_init(struct lmd_loop_thread *t, void (*on_stop)(void *ud), void *ud);
int lmd_loop_thread_start(struct lmd_loop_thread *t);
/* Stop the loop (if it runs) and join its thread; the base stays, so that
 * what lives on it can be freed next. */
void lmd_loop_thread_stop(struct lmd_loop_thread *t);
/* Free what init made (after stop). */
void lmd_loop_thread_free(struct lmd_loop_thread *t);

#endif
