/* wide_area.also_notify: after an update of ours that changed the domain
 * (a join, a TXT change, a leave; never a refresh, which changes nothing
 * there), NOTIFY (RFC 1996, signed with the host's key) each listed
 * secondary of the zone, so that it asks the primary for the change at
 * once.  The primary NOTIFYs them itself, but not always at once: Knot 3.2
 * schedules the NOTIFY of a dynamic update 1 s after it (no setting), and
 * readers on a secondary then see a join a second late.
 *
 * Bounded: one NOTIFY in flight per secondary, at most one every SPACING
 * seconds (a burst of changes is one NOTIFY, and one more after the last
 * answer: the last change is always told), each tried over UDP within
 * TIMEOUT (one retransmission) and never again after it; the answer is
 * believed only signed by the key (a forged REFUSED is dropped, counted
 * with the signed reads).  A secondary that refuses it (its allow-notify or
 * acl does not name the key) or does not answer costs nothing else: its
 * readers see the change when the primary's NOTIFY or its refresh comes.
 * Each outcome is counted (lmdisc_dns_notify_sent_total) and said once per
 * secondary and kind.  Nothing here waits: the publisher goes on. */
#include "wide/publish.h"

#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPACING 0.1      /* s between two NOTIFYs to one secondary (10 a second at most) */
#define TIMEOUT 2.0      /* s for its answer: UDP sent again once after 1 s */
#define STOP_TIMEOUT 1.0 /* while stopping: one datagram, the stop is not held longer */
#define MAX_TO 8         /* secondaries (the schema's bound on the list) */

struct lmd_wtell_to {
    lmd_wide_set *w;
    char addr[64];
    lmd_dns_req *req;     /* the NOTIFY in flight */
    bool pending;         /* a change since it went out: one more after it */
    double last;          /* when the last one went out (monotonic) */
    struct event *timer;  /* the next one, spaced */
    bool said[LMD_WT_RESULTS];
};

struct lmd_wtell {
    struct lmd_wtell_to to[MAX_TO];
    size_t n;
};

void lmd_wt_free(lmd_wide_set *w)
{
    struct lmd_wtell *t = w->tell;
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++) {
        lmd_dns_req_cancel(t->to[i].req);
        lmd_event_free(t->to[i].timer);
    }
    free(t);
    w->tell = NULL;
}

bool lmd_wt_busy(const lmd_wide_set *w)
{
    for (size_t i = 0; w->tell && i < w->tell->n; i++)
        if (w->tell->to[i].req || w->tell->to[i].pending)
            return true;
    return false;
}

static void count(struct lmd_wtell_to *to, int kind, const char *text)
{
    lmd_wide_set *w = to->w;
    w->tell_counts[kind]++;
    if (kind == LMD_WT_COALESCED)
        return;
    if (kind == LMD_WT_TAKEN) {
        if (!to->said[kind])
            lmd_info("wide-area: secondary %s takes our NOTIFYs for %s (signed by key %s)", to->addr, w->domain,
                     lmd_dns_key_name(w->key));
        else
            lmd_debug("wide-area: NOTIFY for %s taken by %s", w->domain, to->addr);
        to->said[kind] = true;
        return;
    }
    if (to->said[kind])
        return;
    to->said[kind] = true;
    if (kind == LMD_WT_REFUSED)
        lmd_warn("wide-area: secondary %s (wide_area.also_notify) did not take our NOTIFY for %s: %s; it must accept "
                 "NOTIFY signed by key %s (BIND: allow-notify { key %s; }; Knot: an acl with action notify and the "
                 "key); harmless, its readers see changes when the primary's NOTIFY comes (said once, counted in "
                 "lmdisc_dns_notify_sent_total)",
                 to->addr, w->domain, text, lmd_dns_key_name(w->key), lmd_dns_key_name(w->key));
    else
        lmd_warn("wide-area: NOTIFY for %s to secondary %s (wide_area.also_notify) %s: %s; not tried again "
                 "(said once, counted in lmdisc_dns_notify_sent_total)",
                 w->domain, to->addr, kind == LMD_WT_UNANSWERED ? "unanswered" : "failed", text);
}

static void on_done(const lmd_dns_result *res, void *arg);

static void send_one(struct lmd_wtell_to *to)
{
    lmd_wide_set *w = to->w;
    lmd_dns_msg *msg = NULL;
    lmd_err err = {0};
    to->pending = false;
    to->last = lmd_now_mono();
    if (lmd_dns_notify_build(w->domain, w->key, &msg, &err) != 0 ||
        lmd_dns_send(w->wd->base, to->addr, 0, msg, w->key, w->stopping ? STOP_TIMEOUT : TIMEOUT, on_done, to,
                     &to->req, &err) != 0) {
        count(to, LMD_WT_FAILED, lmd_err_text(&err));
        return;
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lmd_wtell_to *to = arg;
    if (!to->req && to->pending)
        send_one(to);
    if (!to->req && to->w->stopping)
        lmd_wp_retired_check(to->w); /* may free it */
}

/* the next one, SPACING after the last (from the loop, never from inside
 * the caller) */
static void arm_next(struct lmd_wtell_to *to)
{
    double in = to->last + SPACING - lmd_now_mono();
    if (!to->timer && !(to->timer = evtimer_new(to->w->wd->base, on_timer, to))) {
        to->pending = false;
        count(to, LMD_WT_FAILED, "cannot time the NOTIFY (out of memory)");
        return;
    }
    if (lmd_timer_in(to->timer, in > 0 ? in : 0) != 0) {
        to->pending = false;
        count(to, LMD_WT_FAILED, "cannot time the NOTIFY (out of memory)");
    }
}

static void on_done(const lmd_dns_result *res, void *arg)
{
    struct lmd_wtell_to *to = arg;
    lmd_wide_set *w = to->w;
    to->req = NULL;
    if (res->rc == 0)
        count(to, LMD_WT_TAKEN, res->text);
    else if (res->rcode >= 0 || res->dropped)
        /* signed: the secondary's own no; or answered unsigned (Knot
         * answers a key its acl does not allow NOTAUTH, BADKEY, unsigned):
         * not believed, but nothing is done on it either way */
        count(to, LMD_WT_REFUSED, res->text);
    else
        count(to, res->rc == LMD_ETIMEDOUT ? LMD_WT_UNANSWERED : LMD_WT_FAILED, res->text);
    if (to->pending)
        arm_next(to);
    else if (w->stopping)
        lmd_wp_retired_check(w); /* may free w */
}

/* The secondaries this set tells, copied from its configuration when it
 * starts: a reload makes a new set (set.c), and the retired one's last
 * withdrawals go to the secondaries of the domain it published in, not to
 * those of the new configuration's. */
int lmd_wt_start(lmd_wide_set *w, const struct lmd_config *cfg)
{
    if (!cfg->wide_ntell)
        return 0;
    struct lmd_wtell *t = calloc(1, sizeof *t);
    if (!t)
        return LMD_ENOMEM;
    for (size_t i = 0; i < cfg->wide_ntell && t->n < MAX_TO; i++) {
        bool dup = false;
        for (size_t j = 0; j < t->n && !dup; j++)
            dup = !strcmp(t->to[j].addr, cfg->wide_tell[i]);
        if (dup)
            continue;
        struct lmd_wtell_to *to = &t->to[t->n++];
        to->w = w;
        to->last = -SPACING;
        snprintf(to->addr, sizeof to->addr, "%s", cfg->wide_tell[i]);
    }
    w->tell = t;
    return 0;
}

void lmd_wt_changed(lmd_wide_set *w)
{
    struct lmd_wtell *t = w->tell;
    if (!t || !w->key)
        return;
    for (size_t i = 0; i < t->n; i++) {
        struct lmd_wtell_to *to = &t->to[i];
        if (to->req || to->pending) { /* told after the one in flight (or already waiting) */
            to->pending = true;
            count(to, LMD_WT_COALESCED, NULL);
        } else if (lmd_now_mono() - to->last < SPACING) {
            to->pending = true;
            count(to, LMD_WT_COALESCED, NULL);
            arm_next(to);
        } else {
            send_one(to);
        }
    }
}
