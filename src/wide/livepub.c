/* A publisher's liveness records (issue 20): each applied publication of
 * a service (its first, a change, every refresh at half the lease) is
 * followed by one update of the liveness zone, _live.DOMAIN, that writes
 * INSTANCE.HOST._live.DOMAIN TXT "lmd-live=SEQ/LEASE", SEQ new each time;
 * a withdraw deletes it.  The browse records themselves stay
 * byte-identical across refreshes, so the browse zone's serial moves only
 * for real changes and browsing agents transfer nothing for a refresh;
 * sweepers (wide_area.sweep_key, sweep.c) follow the liveness zone and
 * remove a service whose record stopped changing for its lease.
 *
 * The grant for HOST._live.DOMAIN goes with the host's existing key
 * (examples/wide-area/): no new setting.  A liveness update that fails is
 * said once per publisher (a site whose server has no liveness zone yet:
 * the service is published all the same, sweepers never remove it) and
 * tried again at the next refresh.  Requests are the set's: a service
 * withdrawn and freed does not wait for its liveness delete. */
#include "wide/publish.h"
#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIVE_IN_FLIGHT 64

struct lmd_wlreq {
    lmd_wide_set *w;
    lmd_dns_req *req;
    char name[128];
    bool del;
};

static void forget(lmd_wide_set *w, struct lmd_wlreq *r)
{
    for (size_t i = 0; i < w->n_lreqs; i++)
        if (w->lreqs[i] == r) {
            w->lreqs[i] = w->lreqs[--w->n_lreqs];
            break;
        }
    lmd_dns_req_cancel(r->req);
    free(r);
}

void lmd_wp_live_free_all(lmd_wide_set *w)
{
    while (w->n_lreqs)
        forget(w, w->lreqs[0]);
    free(w->lreqs);
    w->lreqs = NULL;
}

static void on_live(const lmd_dns_result *res, void *arg)
{
    struct lmd_wlreq *r = arg;
    lmd_wide_set *w = r->w;
    r->req = NULL;
    char e[160];
    lmd_escape(r->name, strlen(r->name), e, sizeof e);
    if (res->rc == 0) {
        w->live_counts[0]++;
        if (w->live_failing)
            lmd_info("wide-area: liveness records in %s written again", w->live_zone);
        w->live_failing = false;
        lmd_debug("wide-area: liveness of \"%s\" %s in %s", e, r->del ? "deleted" : "written", w->live_zone);
    } else {
        w->live_counts[1]++;
        if (!w->live_failing)
            lmd_warn("wide-area: the liveness record of \"%s\" in %s was not %s (%s): sweepers cannot tell it is "
                     "alive and never remove it; the zone %s with a grant for key %s to change TXT under %s.%s is "
                     "needed (examples/wide-area/README.md); tried again at the next refresh",
                     e, w->live_zone, r->del ? "deleted" : "written", res->text, w->live_zone,
                     lmd_dns_key_name(w->key), w->host_label, w->live_zone);
        w->live_failing = true;
    }
    forget(w, r);
}

void lmd_wp_live(struct lmd_wpub *p, bool alive)
{
    lmd_wide_set *w = p->w;
    if (w->n_lreqs >= MAX_LIVE_IN_FLIGHT) {
        w->live_counts[1]++;
        return; /* the next refresh writes it */
    }
    char value[32];
    snprintf(value, sizeof value, "%08x/%u", ++p->seq, w->lease);
    unsigned ttl = lmd_config_record_ttl(w->wd->cfg);
    if (ttl == 0 || ttl > w->lease)
        ttl = w->lease;
    struct lmd_wlreq *r = calloc(1, sizeof *r);
    struct lmd_wlreq **more = r ? realloc(w->lreqs, (w->n_lreqs + 1) * sizeof *more) : NULL;
    lmd_dns_msg *m = NULL;
    lmd_err err = {0};
    if (more)
        w->lreqs = more;
    if (!more || lmd_dns_live_build(w->live_zone, p->name, w->host_label, alive ? value : NULL, NULL, ttl, w->key,
                                    &m, &err) != 0) {
        free(r);
        w->live_counts[1]++;
        lmd_debug("wide-area: no liveness update for \"%s\": %s", p->name, more ? lmd_err_text(&err) : "out of memory");
        return;
    }
    r->w = w;
    r->del = !alive;
    snprintf(r->name, sizeof r->name, "%s", p->name);
    w->lreqs[w->n_lreqs++] = r;
    if (lmd_dns_send(w->wd->base, w->server, 0, m, w->key, LMD_WP_UPDATE_TIMEOUT, on_live, r, &r->req, &err) != 0) {
        w->live_counts[1]++;
        forget(w, r);
    }
}
