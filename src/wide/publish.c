/* Wide-area DNS-SD, the publishing side (issue 10): the configured service
 * and the services registered through the API, each as PTR, SRV, TXT and
 * this host's routable A/AAAA in wide_area.domain, one atomic TSIG-signed
 * RFC 2136 update at a time per service (src/dns/).
 *
 *   - Every update replaces what the zone holds for the service's names (a
 *     crashed earlier run's records included): the same update publishes,
 *     changes the TXT and refreshes.  Every publication writes the host's
 *     addresses (the same ones); a withdraw deletes them only when no other
 *     service of ours is to stay in the zone.
 *   - Refreshed at about half the lease (jittered +-10%), so the records
 *     never grow older than the lease; the lease goes out as the RFC 9664
 *     option too (neither BIND nor Knot honours it yet).  A refresh writes
 *     the same records (the zone and its serial do not change: browsers
 *     transfer nothing); its evidence is the liveness record in
 *     _live.DOMAIN, written first (livepub.c), which sweepers follow.
 *   - A failure is one log line and a count by result; the update is tried
 *     again with backoff (1 s doubling to a minute, at most a quarter of the
 *     lease), whatever the error: a grant or a clock can be fixed while we
 *     run.  Nothing here touches the mDNS side.
 *   - A clean stop withdraws everything, bounded (lmd_wide_stop); a
 *     reload that moves to another domain or name withdraws what the new
 *     configuration no longer publishes (lmd_wide_reload).
 *
 * What is published is what mDNS announces: the TXT, the name asked for
 * (announce.name or HOST:PORT, a registered service's NAME; never avahi's
 * "NAME #2", which is mDNS's own collision); with trust { }, signed for the
 * domain and HOST.DOMAIN (and signed again with the mDNS side, at half the
 * signature's validity).  A registered service's name needs a grant of its
 * own for the host's key (examples/wide-area/); without one the update is
 * refused, said at each try (backoff to a minute) with the missing grant,
 * and the service stays on mDNS. */
#include "wide/publish.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lmd_wpub *lmd_wp_config(const lmd_wide_set *w)
{
    return w->pubs && !w->pubs->registered ? w->pubs : NULL;
}

static uint16_t pub_port(const struct lmd_wpub *p)
{
    return p->registered ? p->port : p->w->wd->cfg->announce.port;
}

static const lmd_txt *pub_txt(const struct lmd_wpub *p)
{
    const lmd_wide *wd = p->w->wd;
    return p->registered ? &p->txt : wd->host.self_txt(wd->host.ud);
}

/* Whether the service is to be in the zone now: as for mDNS (announce { }
 * given, healthy or status mode, not drained; a registered one until it is
 * withdrawn). */
bool lmd_wp_wanted(const struct lmd_wpub *p)
{
    const lmd_wide *wd = p->w->wd;
    if (p->w->stopping || p->gone || wd->host.drained(wd->host.ud))
        return false;
    return p->registered || wd->host.self_wanted(wd->host.ud);
}

/* Whether another of our services keeps the host's addresses in the zone. */
static bool others_hold_host(const struct lmd_wpub *p)
{
    for (const struct lmd_wpub *q = p->w->pubs; q; q = q->next)
        if (q != p && (lmd_wp_wanted(q) || (q->req && q->req_mode == LMD_DNS_PUBLISH)))
            return true;
    return false;
}

/* What an update would publish, as one string (to tell a change). */
static char *content_key(const struct lmd_wpub *p, char addrs[][64], size_t n)
{
    const lmd_txt *t = pub_txt(p);
    size_t len = strlen(p->name) + 64 + n * 64;
    for (size_t i = 0; i < t->n; i++)
        len += strlen(t->items[i].key) + t->items[i].value_len + 4;
    char *s = malloc(len), *o = s;
    if (!s)
        return NULL;
    o += sprintf(o, "%s|%u|%u|", p->name, pub_port(p), lmd_config_record_ttl(p->w->wd->cfg));
    for (size_t i = 0; i < t->n; i++) {
        const lmd_txt_item *it = &t->items[i];
        o += sprintf(o, "%s%s", it->key, it->has_value ? "=" : "");
        memcpy(o, it->value, it->has_value ? it->value_len : 0);
        o += it->has_value ? it->value_len : 0;
        *o++ = '\x1f';
    }
    for (size_t i = 0; i < n; i++)
        o += sprintf(o, "|%s", addrs[i]);
    *o = '\0';
    return s;
}

static void on_done(const lmd_dns_result *res, void *arg);

static void arm(struct lmd_wpub *p, double secs)
{
    if (lmd_timer_in(p->timer, secs) != 0)
        lmd_error("wide-area: cannot arm the refresh timer (out of memory)");
}

void lmd_wp_free(struct lmd_wpub *p)
{
    lmd_dns_req_cancel(p->req);
    if (p->timer)
        event_free(p->timer);
    lmd_txt_free(&p->txt);
    free(p->sent);
    free(p->req_content);
    free(p);
}

void lmd_wp_unlink(struct lmd_wpub *p)
{
    for (struct lmd_wpub **pp = &p->w->pubs; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            return;
        }
}

static double retry_in(const struct lmd_wpub *p)
{
    double again = lmd_backoff(p->fails, LMD_WP_RETRY_FIRST, LMD_WP_RETRY_MAX);
    return again > p->w->lease / 4.0 ? p->w->lease / 4.0 : again;
}

/* Send one update: publish what the service is now, or withdraw it (with
 * the host's addresses when with_host). */
void lmd_wp_send(struct lmd_wpub *p, int mode, bool with_host)
{
    lmd_wide_set *w = p->w;
    lmd_wide *wd = w->wd;
    char addrs[LMD_WP_MAX_ADDRS][64];
    size_t n = mode == LMD_DNS_PUBLISH ? lmd_dns_routable_addrs(addrs, LMD_WP_MAX_ADDRS) : 0;
    const char *ap[LMD_WP_MAX_ADDRS];
    for (size_t i = 0; i < n; i++)
        ap[i] = addrs[i];
    unsigned ttl = lmd_config_record_ttl(wd->cfg);
    if (ttl == 0 || ttl > w->lease)
        ttl = w->lease;
    /* the records are the same at every refresh (no serial change, nothing
     * for browsers to transfer); the refresh's evidence goes to the
     * liveness zone once the server applied it (livepub.c) */
    lmd_txt txt = {0};
    char why[320] = "out of memory", e[160];
    /* with trust { }: signed for this domain and host (the mDNS one names
     * NAME.local) */
    if (mode == LMD_DNS_PUBLISH &&
        wd->host.sign_txt(wd->host.ud, p->name, pub_port(p), pub_txt(p), w->domain, w->host, &txt, why, sizeof why) != 0) {
        lmd_txt_free(&txt);
        w->counts[LMD_WIDE_ERROR]++;
        snprintf(p->why, sizeof p->why, "cannot build the update: %s", why);
        lmd_error("wide-area: cannot build the update for \"%s\" (%s); trying again in %g s",
                  lmd_escape(p->name, strlen(p->name), e, sizeof e), why, LMD_WP_RETRY_MAX);
        arm(p, LMD_WP_RETRY_MAX);
        return;
    }
    if (mode == LMD_DNS_PUBLISH)
        memcpy(p->at, w->shard, sizeof p->at);
    lmd_dns_service svc = {.zone = w->domain, .instance = p->name, .type = w->type, .shard = p->at,
                           .host = mode == LMD_DNS_PUBLISH || with_host ? w->host : NULL, .port = pub_port(p),
                           .txt = &txt, .addrs = ap, .n_addrs = n, .ttl = ttl, .lease = w->lease};
    lmd_dns_msg *msg = NULL;
    lmd_err err = {0};
    free(p->req_content);
    p->req_content = mode == LMD_DNS_PUBLISH ? content_key(p, addrs, n) : NULL;
    size_t bytes = 0;
    int built = lmd_dns_update_build(&svc, mode, w->key, &msg, &err);
    lmd_txt_free(&txt);
    if (built != 0 || !lmd_dns_msg_wire(msg, &bytes) ||
        lmd_dns_send(wd->base, w->server, 0, msg, w->key, LMD_WP_UPDATE_TIMEOUT, on_done, p, &p->req, &err) != 0) {
        w->counts[LMD_WIDE_ERROR]++;
        p->fails++;
        double again = lmd_backoff(p->fails, LMD_WP_RETRY_FIRST, LMD_WP_RETRY_MAX);
        snprintf(p->why, sizeof p->why, "cannot build the update: %s", lmd_err_text(&err));
        lmd_error("wide-area: cannot build the update for \"%s\": %s; trying again in %g s",
                  lmd_escape(p->name, strlen(p->name), e, sizeof e), lmd_err_text(&err), again);
        if (!w->stopping)
            arm(p, again);
        return;
    }
    if (mode == LMD_DNS_WITHDRAW)
        lmd_wp_live(p, false);
    if (mode == LMD_DNS_PUBLISH && n == 0)
        lmd_warn("wide-area: this host has no routable address: %s is published without A/AAAA records", w->host);
    p->req_bytes = bytes;
    p->req_mode = mode;
    p->req_host = mode == LMD_DNS_WITHDRAW && svc.host;
    p->req_started = lmd_now_mono();
}

/* Publish or withdraw as the agent's state says; force: send even when
 * the zone already holds it (a refresh, a retry). */
static size_t in_flight(const lmd_wide_set *w)
{
    size_t n = 0;
    for (const struct lmd_wpub *p = w->pubs; p; p = p->next)
        n += p->req != NULL;
    return n;
}

/* Send, or queue behind the updates in flight (at most LMD_WP_MAX_IN_FLIGHT: a
 * local client registering and withdrawing in a loop costs the server
 * that many updates at a time, and the agent that many sockets). */
static void send_or_queue(struct lmd_wpub *p, int mode, bool with_host, bool force)
{
    lmd_wide_set *w = p->w;
    if (in_flight(w) >= LMD_WP_MAX_IN_FLIGHT) {
        if (!p->queued)
            p->queued = ++w->queue_seq;
        p->queued_force |= force;
        return;
    }
    lmd_wp_send(p, mode, with_host);
}

void lmd_wp_sync(struct lmd_wpub *p, bool force)
{
    if (p->w->stopping)
        return;
    if (p->req) {
        p->pending = true;
        p->pending_force |= force; /* a re-signing is not a content change */
        return;
    }
    if (p->queued) { /* its turn comes (dequeue) */
        if (p->gone && !p->published && !p->queued_force && !force) {
            lmd_wp_unlink(p); /* withdrawn before its publish went out: never in the zone */
            lmd_wp_free(p);
            return;
        }
        p->queued_force |= force;
        return;
    }
    if (lmd_wp_wanted(p)) {
        if (!p->w->shard_known)
            return; /* published once the domain's shards are read (shardpub.c) */
        if (p->moving) { /* out of the old shard first (done_one publishes in the new one) */
            send_or_queue(p, LMD_DNS_WITHDRAW, false, true);
            return;
        }
        char addrs[LMD_WP_MAX_ADDRS][64];
        char *now = content_key(p, addrs, lmd_dns_routable_addrs(addrs, LMD_WP_MAX_ADDRS));
        bool same = now && p->published && p->sent && !strcmp(now, p->sent);
        free(now);
        if (!same || force)
            send_or_queue(p, LMD_DNS_PUBLISH, true, force);
    } else if (p->published || force) {
        send_or_queue(p, LMD_DNS_WITHDRAW, !others_hold_host(p), force);
    } else if (p->gone) {
        lmd_wp_unlink(p); /* never in the zone */
        lmd_wp_free(p);
    }
}

/* Start the oldest queued updates while there is room. */
static void dequeue(lmd_wide_set *w)
{
    while (!w->stopping && in_flight(w) < LMD_WP_MAX_IN_FLIGHT) {
        struct lmd_wpub *first = NULL;
        for (struct lmd_wpub *p = w->pubs; p; p = p->next)
            if (p->queued && (!first || p->queued < first->queued))
                first = p;
        if (!first)
            return;
        bool force = first->queued_force;
        first->queued = 0;
        first->queued_force = false;
        lmd_wp_sync(first, force); /* sends, or finds nothing to do (or frees first) */
    }
}

void lmd_wide_sync(lmd_wide *wd)
{
    if (!wd || !wd->set)
        return;
    for (struct lmd_wpub *p = wd->set->pubs, *next; p; p = next) {
        next = p->next; /* sync_pub may free p */
        lmd_wp_sync(p, false);
    }
}

void lmd_wide_resign(lmd_wide *wd)
{
    if (!wd || !wd->set)
        return;
    for (struct lmd_wpub *p = wd->set->pubs, *next; p; p = next) {
        next = p->next;
        if (p->published && lmd_wp_wanted(p))
            lmd_wp_sync(p, true);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lmd_wpub *p = arg;
    /* a refresh: the liveness record first, then the (same) records, so
     * that a sweeper whose compare-and-delete of the liveness record came
     * first finds the records written again after its delete of them,
     * and one that came later finds the new liveness record (sweep.c) */
    if (p->published && lmd_wp_wanted(p) && !p->req)
        lmd_wp_live(p, true);
    /* a retry of a withdraw is forced only while something may be there */
    lmd_wp_sync(p, lmd_wp_wanted(p) || p->published || p->fails > 0);
}

static int classify(const lmd_dns_result *res)
{
    if (res->rc == 0)
        return LMD_WIDE_OK;
    switch (res->tsig_error) {
    case 16: return LMD_WIDE_BADSIG;
    case 17: return LMD_WIDE_BADKEY;
    case 18: return LMD_WIDE_BADTIME;
    default: break;
    }
    if (res->rcode < 0)
        return LMD_WIDE_UNREACHABLE;
    if (res->rcode == 5 || res->rcode == 9) /* REFUSED, NOTAUTH */
        return LMD_WIDE_REFUSED;
    return LMD_WIDE_ERROR;
}

/* One line on why an update failed and what fixes it (src/dns/host.c
 * words it, as for lmdisc announce --domain); kept for /v1/self. */
static void log_failure(struct lmd_wpub *p, int result, const lmd_dns_result *res, double again)
{
    const lmd_wide_set *w = p->w;
    if (result == LMD_WIDE_UNREACHABLE) {
        snprintf(p->why, sizeof p->why, "DNS server %s unreachable (%s)", w->server, res->text);
        lmd_warn("wide-area: %s; trying again in %g s (mDNS unaffected)", p->why, again);
        return;
    }
    lmd_dns_service svc = {.zone = w->domain, .instance = p->name, .type = w->type, .host = w->host, .shard = p->at};
    char why[1024];
    lmd_dns_update_explain(res, &svc, lmd_dns_key_name(w->key), w->wd->cfg->wide_area.key, why, sizeof why);
    snprintf(p->why, sizeof p->why, "%s", why);
    lmd_error("wide-area: %s; trying again in %g s", why, again);
}


static void done_one(struct lmd_wpub *p, const lmd_dns_result *res);

static void on_done(const lmd_dns_result *res, void *arg)
{
    struct lmd_wpub *p = arg;
    lmd_wide_set *w = p->w;
    p->req = NULL;
    if (w->stopping) {
        done_one(p, res);
        lmd_wp_retired_check(w); /* may free w */
        return;
    }
    done_one(p, res); /* may free p */
    dequeue(w);
}

static void done_one(struct lmd_wpub *p, const lmd_dns_result *res)
{
    lmd_wide_set *w = p->w;
    lmd_wide *wd = w->wd;
    int result = classify(res);
    w->counts[result]++;
    double took = lmd_now_mono() - p->req_started;
    char e[160];
    lmd_escape(p->name, strlen(p->name), e, sizeof e);
    if (w->stopping) {
        if (result == LMD_WIDE_OK)
            lmd_info("wide-area: withdrew \"%s\" from %s in %.0f ms", e, w->domain, took * 1000);
        else
            lmd_warn("wide-area: could not withdraw \"%s\" from %s (%s): its records stay until removed", e, w->domain,
                     res->text);
        p->published = result != LMD_WIDE_OK;
        if (result == LMD_WIDE_OK)
            lmd_wt_changed(w); /* the leave, to the secondaries at once (tell.c) */
        return;
    }
    if (result != LMD_WIDE_OK) {
        p->fails++;
        double again = retry_in(p);
        if (p->gone && p->fails >= LMD_WP_GONE_TRIES) {
            lmd_warn("wide-area: could not withdraw \"%s\" from %s after %u tries (%s): readers expire its records "
                     "a lease after its last refresh",
                     e, w->domain, p->fails, res->text);
            lmd_wp_unlink(p);
            lmd_wp_free(p);
            return;
        }
        log_failure(p, result, res, again);
        arm(p, again);
        return;
    }
    bool recovered = p->fails > 0;
    p->fails = 0;
    p->why[0] = '\0';
    w->last_seconds = took;
    w->last_bytes = (double)p->req_bytes;
    bool first = !p->published;
    bool changed = !p->published || !p->sent || !p->req_content || strcmp(p->sent, p->req_content) != 0;
    free(p->sent);
    p->sent = p->req_mode == LMD_DNS_PUBLISH ? p->req_content : NULL;
    if (p->req_mode != LMD_DNS_PUBLISH)
        free(p->req_content);
    p->req_content = NULL;
    p->published = p->req_mode == LMD_DNS_PUBLISH;
    /* a join, a change, a leave (not a refresh: the zone is the same):
     * the secondaries of wide_area.also_notify are told at once (tell.c) */
    if (changed || !p->published)
        lmd_wt_changed(w);
    if (p->published) {
        lmd_log(changed || recovered ? LMD_LOG_INFO : LMD_LOG_DEBUG,
                "wide-area: %s \"%s\" in %s as %s (%.1f ms, %zu bytes, %s%s)", changed ? "published" : "refreshed", e,
                w->domain, w->host, took * 1000, p->req_bytes, res->tcp ? "TCP" : "UDP",
                recovered ? "; server back" : "");
        /* refresh at half the lease, jittered +-10% */
        arm(p, w->lease / 2.0 * (0.9 + 0.2 * ((double)arc4random() / UINT32_MAX)));
        if (changed || recovered)
            lmd_wp_live(p, true); /* a refresh sent it before (on_timer) */
        if (first && p->registered)
            wd->host.published(wd->host.ud, p->name);
    } else {
        lmd_info("wide-area: withdrew \"%s\" from %s%s%s (%.1f ms)%s", e, p->at[0] ? p->at : "", p->at[0] ? "." : "",
                 w->domain, took * 1000, p->moving ? ": moving to the shard the domain's list gives now" : "");
        event_del(p->timer);
        if (p->moving) {
            p->moving = false;
            p->pending = true; /* published in the new shard below */
        }
        /* it deleted the host's addresses: a service published (or
         * registered) while it was under way lost them; write them again */
        for (struct lmd_wpub *q = w->pubs; q && p->req_host; q = q->next)
            if (q != p && lmd_wp_wanted(q) && (q->published || q->req))
                lmd_wp_sync(q, true);
        if (p->gone) {
            lmd_wp_unlink(p);
            lmd_wp_free(p);
            return;
        }
    }
    if (p->pending) {
        bool force = p->pending_force;
        p->pending = p->pending_force = false;
        lmd_wp_sync(p, force);
    }
}

struct lmd_wpub *lmd_wp_new(lmd_wide_set *w, const char *name)
{
    struct lmd_wpub *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->w = w;
    p->seq = arc4random();
    snprintf(p->name, sizeof p->name, "%s", name);
    if (!(p->timer = evtimer_new(w->wd->base, on_timer, p))) {
        free(p);
        return NULL;
    }
    return p;
}
