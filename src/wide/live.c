/* Wide-area liveness (issue 10): which services of the domain stopped
 * being refreshed, and removing their records.  See wide_browse.c's head
 * for the scheme (lmd-live, the observer's own clock, compare-and-delete). */
#include "wide/browse.h"
#include "base/log.h"
#include "base/txt.h"
#include "base/loop.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* f->full's lmd-live into f->live and f->lease; f->txt = the rest. */
void lmd_wb_take_txt(struct lmd_wfound *f)
{
    lmd_txt_free(&f->txt);
    f->live[0] = '\0';
    f->lease = 0;
    if (lmd_txt_copy(&f->txt, &f->full) != 0)
        return;
    const lmd_txt_item *it = lmd_txt_get(&f->full, LMD_DNS_LIVE_KEY);
    if (it && it->has_value && it->value_len < sizeof f->live) {
        unsigned seq = 0, lease = 0;
        char end;
        snprintf(f->live, sizeof f->live, "%s", (const char *)it->value);
        if (sscanf(f->live, "%8x/%u%c", &seq, &lease, &end) == 2 && lease > 0)
            f->lease = lease < 10 ? 10 : lease > 86400 ? 86400 : lease;
    }
    (void)lmd_txt_remove(&f->txt, LMD_DNS_LIVE_KEY);
}

/* No agent publishes a TXT past LMD_TXT_RECORD_MAX (what one mDNS packet
 * carries; publish.c writes the same TXT as mDNS), but DNS carries up to
 * 64 KiB in an RRset: one that big was written by hand or by a hostile
 * host's key (only the instance's own key may write it).  Its instance is
 * skipped, as an SRV that cannot be followed is, rather than handed to the
 * registry, the API and the policy. */
bool lmd_wb_txt_refused(lmd_wide_browse *b, const struct lmd_wfound *f)
{
    size_t n = lmd_txt_wire_size(&f->txt);
    if (n <= LMD_TXT_RECORD_MAX)
        return false;
    b->skipped++;
    if (strcmp(b->said_txt, f->name)) {
        char e[160];
        lmd_warn("wide-area browse: \"%s\" in %s skipped: its TXT is %zu bytes, more than the %d an agent publishes",
                 lmd_escape_str(f->name, e, sizeof e), b->wd->cfg->wide_area.domain, n, LMD_TXT_RECORD_MAX);
        snprintf(b->said_txt, sizeof b->said_txt, "%s", f->name);
    }
    return true;
}

/* When f, unchanged since changed_at, has stopped being refreshed.  Its
 * publisher refreshes every 0.45 to 0.55 lease, and we see each refresh
 * within our poll (and a transfer's time): with a poll that is long for the
 * lease, the gap between two refreshes we see is longer than the lease,
 * and a live peer must not expire in it.  Always within lease + poll. */
static double deadline(const lmd_wide_browse *b, const struct lmd_wfound *f)
{
    double seen_gap = 0.55 * f->lease + b->wd->cfg->wide_area.poll + 2;
    return f->changed_at + (seen_gap > f->lease ? seen_gap : f->lease);
}

void lmd_wb_arm_expiry(lmd_wide_browse *b)
{
    double first = -1;
    for (size_t i = 0; i < b->n_view; i++) {
        const struct lmd_wfound *f = b->view[i];
        if (f->srv && f->lease && !f->expired && (first < 0 || deadline(b, f) < first))
            first = deadline(b, f);
    }
    if (first < 0) {
        event_del(b->expiry);
        return;
    }
    double in = first - lmd_now_mono();
    if (lmd_timer_in(b->expiry, in > 0 ? in : 0) != 0)
        lmd_error("wide-area browse: cannot arm the expiry timer (out of memory)");
}

/* Sweeps: a whole rack expiring at once must not take a socket each, nor
 * an unreachable server lose them.  At most MAX_SWEEPS_IN_FLIGHT are sent
 * at a time, the rest wait; one that found no server (or a SERVFAIL) is
 * tried again (SWEEP_TRIES in all, 5 s doubling), which is safe because
 * the prerequisite is the stale TXT: a refresh meanwhile makes it NXRRSET.
 * At most MAX_SWEEPS wait; beyond, the records stay (counted failed). */
#define MAX_SWEEPS_IN_FLIGHT 8
#define MAX_SWEEPS 4096
#define SWEEP_TRIES 4

static void forget_sweep(lmd_wide_browse *b, struct lmd_wsweep *sw)
{
    for (size_t i = 0; i < b->n_sweeps; i++)
        if (b->sweeps[i] == sw) {
            b->sweeps[i] = b->sweeps[--b->n_sweeps];
            break;
        }
    lmd_dns_req_cancel(sw->req);
    lmd_txt_free(&sw->full);
    free(sw);
}

static void pump(lmd_wide_browse *b);
static struct lmd_wsweep *new_sweep(lmd_wide_browse *b, const char *name);

void lmd_wb_pump(lmd_wide_browse *b)
{
    pump(b);
}

static void on_swept(const lmd_dns_result *res, void *arg)
{
    struct lmd_wsweep *sw = arg;
    lmd_wide_browse *b = sw->b;
    sw->req = NULL;
    char e[160];
    lmd_escape_str(sw->name, e, sizeof e);
    bool again = false;
    /* no grant: REFUSED, NOTAUTH, BADKEY (unsigned by nature: final all the same) */
    bool refused = res->rcode == 5 || res->rcode == 9 || res->tsig_error == 17;
    if (res->rc == 0 && sw->live && sw->then_browse) {
        /* the liveness record was still the stale one: no refresh came
         * since; now the browse records (whose TXT does not change at a
         * refresh: the liveness record was the test) */
        struct lmd_wsweep *next = new_sweep(b, sw->name);
        if (next) {
            next->full = sw->full;
            memset(&sw->full, 0, sizeof sw->full);
            memcpy(next->shard, sw->shard, sizeof next->shard);
        }
        b->swept[0]++;
        lmd_debug("wide-area browse: removed the stale liveness record of \"%s\"; now its records", e);
    } else if (res->rc == 0) {
        b->swept[0]++;
        lmd_info("wide-area browse: removed the stale %s of \"%s\" from %s%s", sw->live ? "liveness record" : "records",
                 e, b->wd->cfg->wide_area.domain, sw->tries > 1 ? " (server back)" : "");
    } else if ((res->rcode == 8 || res->rcode == 3) && res->verified) {
        /* NXRRSET, NXDOMAIN signed by the server: the prerequisite failed
         * (an unsigned one may be forged: tried again below) */
        b->swept[1]++;
        lmd_info("wide-area browse: the records of \"%s\" changed or went before they could be removed (%s): "
                 "kept", e, res->text);
    } else if ((res->rcode < 0 || res->rcode == 2 || (!res->verified && !refused)) && sw->tries < SWEEP_TRIES) {
        /* no answer, SERVFAIL, or an answer not signed by the server */
        double wait = lmd_backoff(sw->tries, 5, 60);
        sw->not_before = lmd_now_mono() + wait;
        again = true;
        lmd_warn("wide-area browse: could not remove the stale %s of \"%s\" from %s: %s; trying again in %g s",
                 sw->live ? "liveness record" : "records", e, b->wd->cfg->wide_area.domain, res->text, wait);
    } else {
        b->swept[2]++;
        lmd_warn("wide-area browse: could not remove the stale %s of \"%s\" from %s: %s%s",
                 sw->live ? "liveness record" : "records", e,
                 b->wd->cfg->wide_area.domain, res->text,
                 refused
                     ? " (the sweep key needs a grant to delete PTR, SRV and TXT under the service type and A, "
                       "AAAA in the domain: examples/wide-area/README.md)"
                     : sw->tries >= SWEEP_TRIES ? " (the last try; they stay)" : "");
    }
    if (!again)
        forget_sweep(b, sw);
    pump(b);
}

/* Send one; false (and counted failed) when it cannot be sent. */
static bool send_sweep(lmd_wide_browse *b, struct lmd_wsweep *sw)
{
    lmd_wide *wd = b->wd;
    /* PTR, SRV and TXT only: the SRV target's addresses are left alone.
     * The target is whatever the stale record names (another host's name,
     * a name outside the zone), and nothing proves it was the publisher's:
     * a sweeper with its broad grant must not delete it.  Addresses no SRV
     * points at are not read by any browser; the host replaces them when
     * it publishes again. */
    lmd_dns_service svc = {.zone = wd->cfg->wide_area.domain, .instance = sw->name,
                           .type = lmd_wide_type(wd->cfg), .shard = sw->shard,
                           .host = NULL, .txt = &sw->full};
    lmd_dns_msg *m = NULL;
    lmd_err err = {0};
    sw->tries++;
    char lz[1100];
    const char *d = wd->cfg->wide_area.domain;
    size_t dl = strlen(d);
    snprintf(lz, sizeof lz, "%s.%.*s", LMD_DNS_LIVE_LABEL, (int)(dl && d[dl - 1] == '.' ? dl - 1 : dl), d);
    if ((sw->live ? lmd_dns_live_build(lz, sw->name, sw->host, NULL, sw->stale, 0, b->sweep_key, &m, &err)
                  : lmd_dns_sweep_build(&svc, b->sweep_key, &m, &err)) != 0 ||
        lmd_dns_send(wd->base, wd->server, 0, m, b->sweep_key, LMD_WB_QUERY_TIMEOUT, on_swept, sw, &sw->req,
                     &err) != 0) {
        b->swept[2]++;
        char e[160];
        lmd_warn("wide-area browse: cannot remove the stale records of \"%s\": %s",
                 lmd_escape_str(sw->name, e, sizeof e), lmd_err_text(&err));
        return false;
    }
    return true;
}

/* Send what waits and may go, while there is room; arm the timer for the
 * next one that waits to try again. */
static void pump(lmd_wide_browse *b)
{
    double now = lmd_now_mono(), next = -1;
    size_t busy = 0;
    for (size_t i = 0; i < b->n_sweeps; i++)
        busy += b->sweeps[i]->req != NULL;
    for (size_t i = 0; i < b->n_sweeps;) {
        struct lmd_wsweep *sw = b->sweeps[i];
        if (sw->req) {
            i++;
        } else if (sw->not_before > now) {
            if (next < 0 || sw->not_before < next)
                next = sw->not_before;
            i++;
        } else if (busy < MAX_SWEEPS_IN_FLIGHT) {
            if (send_sweep(b, sw)) {
                busy++;
                i++;
            } else {
                forget_sweep(b, sw); /* moves the last one to i */
            }
        } else {
            i++; /* waits for room: pumped again when a sweep ends */
        }
    }
    if (next < 0)
        event_del(b->sweep_timer);
    else if (lmd_timer_in(b->sweep_timer, next - now) != 0)
        lmd_error("wide-area browse: cannot arm the sweep timer (out of memory)");
}

static void on_sweep_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

static struct lmd_wsweep *new_sweep(lmd_wide_browse *b, const char *name)
{
    if (b->n_sweeps >= MAX_SWEEPS) {
        b->swept[2]++;
        lmd_warn("wide-area browse: %d removals of stale records wait already: those of \"%s\" stay", MAX_SWEEPS,
                 name);
        return NULL;
    }
    struct lmd_wsweep *sw = calloc(1, sizeof *sw);
    struct lmd_wsweep **more = sw ? realloc(b->sweeps, (b->n_sweeps + 1) * sizeof *more) : NULL;
    if (more)
        b->sweeps = more;
    if (!more) {
        free(sw);
        b->swept[2]++;
        lmd_error("wide-area browse: out of memory: the stale records of \"%s\" stay", name);
        return NULL;
    }
    sw->b = b;
    snprintf(sw->name, sizeof sw->name, "%s", name);
    b->sweeps[b->n_sweeps++] = sw;
    return sw;
}

void lmd_wb_sweep_live(lmd_wide_browse *b, const char *name, const char *host, const char *stale,
                       const struct lmd_wfound *then)
{
    struct lmd_wsweep *sw = new_sweep(b, name);
    if (!sw)
        return;
    sw->live = true;
    if (then && lmd_txt_copy(&sw->full, &then->full) == 0) {
        sw->then_browse = true;
        memcpy(sw->shard, then->shard, sizeof sw->shard);
    }
    snprintf(sw->host, sizeof sw->host, "%s", host);
    snprintf(sw->stale, sizeof sw->stale, "%s", stale);
}

void lmd_wb_sweep(lmd_wide_browse *b, const struct lmd_wfound *f)
{
    struct lmd_wsweep *sw = new_sweep(b, f->name);
    if (sw)
        memcpy(sw->shard, f->shard, sizeof sw->shard);
    if (sw && lmd_txt_copy(&sw->full, &f->full) != 0) {
        b->swept[2]++;
        forget_sweep(b, sw);
        lmd_error("wide-area browse: out of memory: the stale records of \"%s\" stay", f->name);
    }
}

/* Instances whose lease ran out since they last changed: they leave. */
static void on_expiry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_wide_browse *b = arg;
    lmd_wide *wd = b->wd;
    double now = lmd_now_mono();
    for (size_t i = 0; i < b->n_view; i++) {
        struct lmd_wfound *f = b->view[i];
        if (!f->srv || !f->lease || f->expired || deadline(b, f) > now + 0.001)
            continue;
        f->expired = true;
        b->expired++;
        char e[160];
        lmd_info("wide-area browse: \"%s\" expired: its records in %s were not refreshed for %u s (its lease)%s",
                 lmd_escape_str(f->name, e, sizeof e), wd->cfg->wide_area.domain, f->lease,
                 b->sweep_key ? "; removing them" : "");
        for (int proto = 4; proto <= 6; proto += 2) {
            if (!(proto == 4 ? f->a4[0] : f->a6[0]))
                continue;
            lmd_addr addr;
            struct lmd_instance in;
            lmd_wb_instance(b, f, proto, &addr, &in);
            (void)lmd_peers_gone_at(wd->reg, &in, LMD_REASON_EXPIRED, now);
        }
        if (b->sweep_key)
            lmd_wb_sweep(b, f);
    }
    if (b->sweep_key)
        pump(b);
    lmd_wide_registry_changed(wd);
    lmd_wb_arm_expiry(b);
}


int lmd_wb_live_start(lmd_wide_browse *b, lmd_err *err)
{
    lmd_wide *wd = b->wd;
    if (!(b->expiry = evtimer_new(wd->base, on_expiry, b)) || !(b->sweep_timer = evtimer_new(wd->base, on_sweep_timer, b))) {
        lmd_wb_live_free(b);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    if (wd->cfg->wide_area.sweep_key) {
        lmd_err kerr = {0};
        int rc = lmd_dns_key_load(wd->cfg->wide_area.sweep_key, &b->sweep_key, &kerr);
        if (rc) {
            lmd_wb_live_free(b);
            return lmd_err_set(err, rc, "wide_area.sweep_key: %s", lmd_err_text(&kerr));
        }
    }
    return 0;
}

void lmd_wb_live_free(lmd_wide_browse *b)
{
    while (b->n_sweeps)
        forget_sweep(b, b->sweeps[0]);
    free(b->sweeps);
    b->sweeps = NULL;
    b->n_sweeps = 0;
    lmd_dns_key_free(b->sweep_key);
    b->sweep_key = NULL;
    if (b->expiry)
        event_free(b->expiry);
    b->expiry = NULL;
    if (b->sweep_timer)
        event_free(b->sweep_timer);
    b->sweep_timer = NULL;
}
