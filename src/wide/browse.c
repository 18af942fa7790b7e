/* Wide-area DNS-SD, the browsing side (issue 10): the domain's services of
 * our type fed into the registry as a second source next to mDNS.
 *
 * Every wide_area.poll seconds one SOA query; when the serial changed (or
 * the last read failed), the domain is read again: by zone transfer where
 * the domain is a zone apex and the server allows it (TSIG-signed with
 * wide_area.key, over TCP, every message verified; IXFR from the serial of
 * the copy kept in src/dns/zone.c, so that only what changed crosses the
 * network; AXFR the first time, or when the copy was lost), else by a walk
 * with queries: PTR of TYPE.DOMAIN, then SRV and TXT of each instance,
 * then A and AAAA of each SRV target.  Every read is signed with
 * wide_area.key (SOA polls, queries, transfers) and every answer must be
 * signed by it before any field of it is believed, its rcode included:
 * an answer the key did not sign is dropped and counted
 * (lmdisc_dns_unsigned_total), never a reason to change anything (whoever
 * answers in the server's place cannot add, hide or freeze a peer).  A
 * transfer the server refuses under the key's signature (REFUSED, NOTAUTH)
 * or too big is said once, and signed queries are used from then on.  A
 * walk skips an instance it cannot follow (an SRV at "." or outside the
 * domain; lmdisc_dns_skipped_total), the rest stands.  Which server reads
 * go to, and that they never go back in time: reader.c.  What a read
 * found goes into the agent's view (view.c): by an IXFR only the services
 * its changes touched, else every service compared; instances new or
 * changed are reported (lmd_peers_seen: join or update), those gone leave
 * ("goodbye").  A failed read changes nothing (no leave storm while the
 * server is away; the next poll reads again).
 *
 * An instance from DNS is registry instance (ifindex 0, ifname "dns",
 * proto 4 for its first A, 6 for its first AAAA): a peer also seen over
 * mDNS is one peer with both, and leaves when the last is gone.
 *
 * Liveness: every update an agent sends carries "lmd-live=SEQ/LEASE" in the
 * TXT (publish.c), SEQ new each time, so a refresh changes the zone (its
 * serial) and the instance.  An instance whose TXT has not changed for
 * LEASE seconds on this agent's monotonic clock since it was first seen
 * changing (or first seen at all) leaves with reason "expired": its
 * publisher stopped refreshing (crashed, cut off).  No clock is shared with
 * anyone.  Records without lmd-live (written by hand) never expire.  An
 * expired instance stays out until its records change.  With
 * wide_area.sweep_key, the agent then removes the stale records with a
 * compare-and-delete update: only if the TXT is still exactly the stale one
 * (an RFC 2136 prerequisite), so a refresh that got there first is kept.
 * The lmd-live item is stripped before the registry sees the TXT
 * (live.c). */
#include "wide/browse.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "dns/dns.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static bool walking(const lmd_wide_browse *b)
{
    return b->soa || b->walk || b->xreq;
}

/* Reads moved off the nearest server a while ago: back to it (it may be
 * back; if not, the next failure moves on again). */
#define READ_RETURN_AFTER 60.0

static void walk_done(lmd_wide_browse *b)
{
    b->polls[b->failed ? 2 : 1]++;
    if (b->failed)
        lmd_wb_read_failover(b);
    else if (b->read_idx && lmd_now_mono() - b->read_since > READ_RETURN_AFTER && b->read_idx <= b->wd->cfg->wide_nread) {
        b->read_idx = 0;
        lmd_info("wide-area browse: reading %s from %s again", b->wd->cfg->wide_area.domain, lmd_wb_reader(b));
    }
    if (b->failed) {
        if (!b->logged_down)
            lmd_warn("wide-area browse: reading %s from %s failed; keeping the peers known from it and trying "
                     "again every %g s", b->type_zone, lmd_wb_reader(b), b->wd->cfg->wide_area.poll);
        b->logged_down = true;
        b->have_serial = false; /* walk again next time */
        lmd_wb_found_free(b->cur, b->n_cur);
        b->cur = NULL;
        b->n_cur = 0;
        b->by_changes = false;
        lmd_dns_touched_clear(&b->touched);
    } else {
        if (b->logged_down)
            lmd_info("wide-area browse: reading %s again", b->type_zone);
        b->logged_down = false;
        b->walked = true;
        if (b->have_serial)
            lmd_wb_serial_read(b, b->serial);
        lmd_wb_report(b);
    }
    if (lmd_timer_in(b->timer, lmd_wb_next_poll(b)) != 0)
        lmd_error("wide-area browse: cannot arm the poll timer (out of memory)");
}

/* n answers dropped: not signed by our key (forged, or the server does
 * not know the key); said once, counted always, never acted on */
static void dropped(lmd_wide_browse *b, double n, const char *text)
{
    if (n <= 0)
        return;
    b->dropped += n;
    if (!b->said_dropped)
        lmd_warn("wide-area browse: an answer about %s not signed by key %s was dropped (%s); answers without "
                 "a valid signature are never believed (a forgery, or a server that does not know the key)",
                 b->wd->cfg->wide_area.domain, lmd_dns_key_name(lmd_wide_key(b->wd)), text);
    b->said_dropped = true;
}

static void on_walked(const lmd_dns_walk_result *res, void *arg)
{
    lmd_wide_browse *b = arg;
    b->walk = NULL;
    b->sent += (double)res->queries;
    b->bytes_out += res->bytes_out;
    b->bytes_in += res->bytes_in;
    b->skipped += (double)res->skipped;
    dropped(b, (double)res->dropped, res->rc ? res->text : "a query's answer");
    if (res->rc != 0 || lmd_wb_take_found(b, res->found, res->n) != 0) {
        lmd_debug("wide-area browse: %s", res->rc ? res->text : "out of memory");
        b->failed = true;
    }
    walk_done(b);
}

/* The domain read with queries (src/dns/walk.c). */
static void read_by_queries(lmd_wide_browse *b)
{
    lmd_wide *wd = b->wd;
    lmd_err err = {0};
    if (lmd_dns_walk_start(wd->base, lmd_wb_reader(b), wd->cfg->wide_area.domain, lmd_wide_type(wd->cfg), lmd_wide_key(wd),
                           LMD_WB_XFR_TIMEOUT, on_walked, b, &b->walk, &err) != 0) {
        lmd_debug("wide-area browse: cannot read %s: %s", b->type_zone, lmd_err_text(&err));
        b->failed = true;
    }
}

/* Why a transfer cannot be used; the walk with queries instead, from now on. */
static void to_queries(lmd_wide_browse *b, const char *why)
{
    lmd_warn("wide-area browse: no transfer of %s from %s (%s): reading it with queries from now on",
             b->wd->cfg->wide_area.domain, lmd_wb_reader(b), why);
    b->queries = true;
    b->failed = false;
    read_by_queries(b);
}

static void on_transfer(const lmd_dns_xfr_result *res, void *arg)
{
    lmd_wide_browse *b = arg;
    const char *domain = b->wd->cfg->wide_area.domain;
    b->xreq = NULL;
    b->bytes_in += (double)res->bytes;
    lmd_dns_xfr *x = res->xfr;
    lmd_dns_found *found = NULL;
    size_t n_found = 0;
    if (res->rc == 0 && x) {
        bool ixfr = b->zone.have;
        if (!lmd_wb_serial_fresh(b, x->serial)) {
            /* said and counted; the next server at the next poll */
        } else if (lmd_dns_zone_take_changes(&b->zone, b->type_zone, x, &b->touched) != 0) {
            /* a diff that does not fit our copy (or no memory): whole next
             * time (a zone past the copy's size is past a transfer's too:
             * then read by queries) */
            lmd_warn("wide-area browse: the changes to %s from %s did not fit this agent's copy of it: reading it "
                     "whole next time", domain, lmd_wb_reader(b));
            b->failed = true;
        } else if (!b->touched.all && !b->view_behind) {
            b->by_changes = true; /* only what the changes touched (view.c) */
        } else if (lmd_dns_zone_services(&b->zone, &found, &n_found) != 0 ||
                   lmd_wb_take_found(b, found, n_found) != 0) {
            b->view_behind = true; /* the copy moved on without it */
            b->failed = true;
        }
        if (!b->failed) {
            lmd_wb_serial_read(b, x->serial);
            size_t changes = 0;
            for (size_t i = 0; i < x->n_diffs; i++)
                changes += x->diffs[i].n_deleted + x->diffs[i].n_added;
            lmd_debug("wide-area browse: %s transferred (%s to serial %u: %s, %zu messages, %zu bytes, %zu "
                      "records; %zu %s)", domain, ixfr ? "IXFR" : "AXFR", (unsigned)x->serial,
                      x->kind == LMD_DNS_XFR_DIFF ? "changes" : x->kind == LMD_DNS_XFR_FULL ? "whole zone" : "up to date",
                      x->messages, x->bytes, x->kind == LMD_DNS_XFR_DIFF ? changes : x->n_rrs,
                      b->by_changes ? b->touched.n_names + b->touched.n_hosts : b->n_cur,
                      b->by_changes ? "names touched" : "services, whole");
        }
        lmd_dns_xfr_free(x);
        lmd_dns_found_free(found, n_found);
    } else if (res->forged) {
        /* not signed by our key: believed in nothing, the mode neither */
        dropped(b, 1, res->text);
        lmd_dns_zone_clear(&b->zone);
        b->failed = true;
    } else if (res->rcode == 5 || res->rcode == 9 || res->too_big) {
        /* the server, under our key's signature, will not transfer it to
         * this key: REFUSED, NOTAUTH; or it is past what a transfer may be
         * (reading it whole at every change would be worse): signed
         * queries.  A SERVFAIL while it loads, a failed IXFR are tried
         * again, whole. */
        lmd_dns_zone_clear(&b->zone);
        to_queries(b, res->text);
    } else {
        /* unreachable, cut off, garbage: the next poll tries again, whole */
        lmd_debug("wide-area browse: %s", res->text);
        lmd_dns_zone_clear(&b->zone);
        b->failed = true;
    }
    if (!walking(b))
        walk_done(b);
}

/* m goes out: counted (metrics); false when it cannot be put on the wire */
static bool counted(lmd_wide_browse *b, const lmd_dns_msg *m)
{
    size_t len = 0;
    if (!lmd_dns_msg_wire(m, &len))
        return false;
    b->sent++;
    b->bytes_out += (double)len;
    return true;
}

static void cannot_ask(lmd_wide_browse *b, const lmd_err *err)
{
    lmd_debug("wide-area browse: cannot ask for %s: %s", b->wd->cfg->wide_area.domain, lmd_err_text(err));
    b->failed = true;
}

static void transfer(lmd_wide_browse *b)
{
    lmd_wide *wd = b->wd;
    lmd_dns_msg *m = NULL;
    lmd_err err = {0};
    const lmd_dns_key *key = lmd_wide_key(wd);
    if (lmd_dns_xfr_build(wd->cfg->wide_area.domain, key, b->zone.serial, b->zone.have, &m, &err) != 0 ||
        !counted(b, m) ||
        lmd_dns_xfr_send(wd->base, lmd_wb_reader(b), 0, m, key, LMD_WB_XFR_TIMEOUT, on_transfer, b, &b->xreq, &err) != 0)
        cannot_ask(b, &err);
}

static void on_soa(const lmd_dns_result *res, void *arg)
{
    lmd_wide_browse *b = arg;
    b->soa = NULL;
    b->bytes_in += (double)res->answer_len;
    dropped(b, res->dropped, res->rc ? res->text : "a SOA answer; the signed one came after it");
    lmd_dns_rr *rrs = NULL;
    size_t n = 0;
    lmd_err err = {0};
    if (res->rc != 0 || !res->answer ||
        lmd_dns_answer_parse(res->answer, res->answer_len, LMD_DNS_T_SOA, &rrs, &n, &err) != 0) {
        lmd_debug("wide-area browse: %s", res->rc ? res->text : lmd_err_text(&err));
        b->failed = true;
    } else if (n == 1 && !lmd_wb_serial_fresh(b, rrs[0].serial)) {
        /* a stale copy: b->failed, the next server at the next poll */
    } else {
        bool same = n == 1 && b->have_serial && rrs[0].serial == b->serial && b->walked;
        b->have_serial = n == 1;
        b->serial = n == 1 ? rrs[0].serial : 0;
        if (same) {
            b->polls[0]++;
            lmd_dns_rrs_free(rrs, n);
            if (lmd_timer_in(b->timer, lmd_wb_next_poll(b)) != 0)
                lmd_error("wide-area browse: cannot arm the poll timer (out of memory)");
            return;
        }
        b->failed = false;
        /* a zone apex (n == 1) whose server transfers it: IXFR from the
         * copy's serial, or the whole zone (AXFR), over TCP */
        if (n == 1 && !b->queries && lmd_wide_key(b->wd))
            transfer(b);
        else
            read_by_queries(b);
    }
    lmd_dns_rrs_free(rrs, n);
    if (!walking(b))
        walk_done(b);
}

/* One SOA query: has the domain changed? */
static void ask_soa(lmd_wide_browse *b)
{
    lmd_wide *wd = b->wd;
    lmd_dns_msg *m = NULL;
    lmd_err err = {0};
    const lmd_dns_key *key = lmd_wide_key(wd);
    if (lmd_dns_query_build(NULL, wd->cfg->wide_area.domain, LMD_DNS_T_SOA, &m, &err) != 0 ||
        (key && lmd_dns_query_sign(m, key, &err) != 0)) {
        lmd_dns_msg_free(m);
        cannot_ask(b, &err);
    } else if (!counted(b, m) ||
               lmd_dns_send(wd->base, lmd_wb_reader(b), 0, m, key, LMD_WB_QUERY_TIMEOUT, on_soa, b, &b->soa, &err) != 0) {
        cannot_ask(b, &err); /* m is lmd_dns_send's, also on failure */
    }
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_wide_browse *b = arg;
    lmd_ws_poll(b); /* the liveness zone, for a sweeper (sweep.c) */
    if (walking(b))
        return; /* a walk still going (bounded by its queries' and transfer's timeouts) */
    b->failed = false;
    ask_soa(b);
    if (!walking(b))
        walk_done(b);
}

int lmd_wide_browse_start(lmd_wide *wd, lmd_err *err)
{
    if (!wd->cfg->wide_area.given)
        return 0;
    lmd_wide_browse *b = calloc(1, sizeof *b);
    if (!b || !(b->timer = evtimer_new(wd->base, on_poll, b))) {
        free(b);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    b->wd = wd;
    int rc = lmd_wn_start(b, err); /* first: a NOTIFY port in use leaves nothing else to undo */
    if (rc == 0 && (rc = lmd_wb_live_start(b, err)) == 0 && (rc = lmd_ws_start(b, err)) != 0)
        lmd_wb_live_free(b);
    if (rc) {
        lmd_wn_free(b);
        event_free(b->timer);
        free(b);
        return rc;
    }
    const char *d = wd->cfg->wide_area.domain;
    size_t dl = strlen(d);
    snprintf(b->type_zone, sizeof b->type_zone, "%s.%.*s", lmd_wide_type(wd->cfg),
             (int)(dl && d[dl - 1] == '.' ? dl - 1 : dl), d);
    wd->browse = b;
    lmd_info("wide-area browse: reading %s from %s every %g s%s%s%s; %s", b->type_zone, lmd_wb_reader(b),
             wd->cfg->wide_area.poll, wd->cfg->wide_nread ? " (wide_area.read; updates go to " : "",
             wd->cfg->wide_nread ? wd->server : "", wd->cfg->wide_nread ? ")" : "",
             b->sweep_key ? "sweeping: removing the records of services whose liveness record ran out (sweep key)"
                          : "crashed hosts' records are removed by the domain's sweepers (no wide_area.sweep_key here)");
    if (lmd_timer_in(b->timer, 0) != 0)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    return 0;
}

void lmd_wide_browse_free(lmd_wide *wd)
{
    lmd_wide_browse *b = wd->browse;
    if (!b)
        return;
    lmd_dns_req_cancel(b->soa);
    lmd_dns_walk_cancel(b->walk);
    lmd_dns_xfr_cancel(b->xreq);
    lmd_dns_zone_clear(&b->zone);
    lmd_wn_free(b);
    lmd_ws_free(b);
    lmd_wb_live_free(b);
    event_free(b->timer);
    lmd_wb_found_free(b->cur, b->n_cur);
    lmd_wb_view_free(b);
    lmd_dns_touched_clear(&b->touched);
    free(b);
    wd->browse = NULL;
}

void lmd_wide_browse_metrics(const lmd_wide *wd, struct lmd_metrics *out)
{
    const lmd_wide_browse *b = wd->browse;
    if (!b)
        return;
    memcpy(out->dns_polls, b->polls, sizeof b->polls);
    memcpy(out->dns_sweeps, b->swept, sizeof b->swept);
    out->dns_expired = b->expired;
    out->dns_queries = b->sent;
    out->dns_bytes_out = b->bytes_out;
    out->dns_bytes_in = b->bytes_in;
    out->dns_unsigned = b->dropped;
    out->dns_skipped = b->skipped;
    out->dns_stale = b->stale;
    out->dns_read_server = lmd_wb_reader(b);
    lmd_wn_metrics(b, out);
    lmd_ws_metrics(b, out);
    memcpy(out->dns_view_reads, b->view_reads, sizeof b->view_reads);
    size_t live = 0;
    for (size_t i = 0; i < b->n_view; i++)
        live += b->view[i]->srv && !b->view[i]->expired;
    out->dns_services = (double)live;
}
