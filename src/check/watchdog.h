/* The last line of defence: a thread that notices when the agent's loop
 * stops turning (C code that does not return, a blocking call: what no
 * guard in the VM can stop) and ends the process, so that avahi-daemon drops
 * its announcements (goodbyes) and its supervisor restarts it.
 *
 * Healthy means: the loop completed an iteration since the last look, or its
 * thread is blocked waiting for events.  While it waits the watchdog thread
 * sleeps too (no timer, no wake-up): it times only a loop that is running
 * callbacks.  Under systemd (WatchdogSec=), the same thread sends
 * WATCHDOG=1 while the loop is healthy, as often as systemd asks. */
#ifndef LMD_WATCHDOG_H
#define LMD_WATCHDOG_H

#include "base/error.h"

typedef struct lmd_watchdog lmd_watchdog;

/* Watch the calling thread's loop (libevent's, waiting in epoll_wait);
 * bound: seconds without progress. */
int lmd_watchdog_start(double bound, lmd_watchdog **out, lmd_err *err);
/* One loop iteration done (cheap: an atomic increment). */
void lmd_watchdog_beat(lmd_watchdog *w);
void lmd_watchdog_stop(lmd_watchdog *w);

/* systemd's notification socket, if any: READY=1, STOPPING=1 ... */
void lmd_notify(const char *state);

#endif
