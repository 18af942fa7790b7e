/* Wide-area DNS-SD, the publishing side (issue 10): the configured service
 * as PTR, SRV, TXT and this host's routable A/AAAA in wide_area.domain, one
 * atomic TSIG-signed RFC 2136 update at a time (src/dns/).
 *
 *   - Every update replaces what the zone holds for our names (a crashed
 *     earlier run's records included): the same update publishes, changes
 *     the TXT and refreshes.
 *   - Refreshed at about half the lease (jittered +-10%), so the records
 *     never grow older than the lease; the lease goes out as the RFC 9664
 *     option too (neither BIND nor Knot honours it yet).
 *   - A failure is one log line and a count by result; the update is tried
 *     again with backoff (1 s doubling to a minute, at most a quarter of the
 *     lease), whatever the error: a grant or a clock can be fixed while we
 *     run.  Nothing here touches the mDNS side.
 *   - A clean stop withdraws, bounded (lmd_agent_wide_stop).
 *
 * What is published is what mDNS announces: a->txt, the name asked for
 * (announce.name or HOST:PORT; never avahi's "NAME #2", which is mDNS's own
 * collision); with trust { }, signed for the domain and HOST.DOMAIN (and
 * signed again with the mDNS side, at half the signature's validity).
 * Services registered through the API are not published here. */
#include "agent/internal.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "dns/dns.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_ADDRS 8
#define RETRY_FIRST 1.0
#define RETRY_MAX 60.0
#define UPDATE_TIMEOUT 5.0

struct lmd_agent_wide {
    lmd_agent *a;
    lmd_dns_key *key;
    char host[256];         /* the SRV target: HOST.DOMAIN */
    char name[128];         /* the instance */
    lmd_dns_req *req;       /* the update in flight */
    int req_mode;
    double req_started;
    size_t req_bytes;
    bool pending;           /* something changed while an update was in flight */
    bool pending_force;     /* ... that must be sent even if the content is the same */
    struct event *timer;    /* refresh or retry */
    bool published;         /* the zone holds our records, as of the last answer */
    bool stopping, stop_done;
    char *sent;             /* what the zone holds (content key), NULL when withdrawn */
    char *req_content;      /* what the update in flight sends */
    unsigned fails;
    int last_result;        /* of the last update, to log a recovery */
    double counts[LMD_WIDE_RESULTS];
    double last_seconds;    /* the last applied update's round trip */
    double last_bytes;
    uint32_t seq;           /* of lmd-live: random start (a restart is a change too) */
};

/* Whether the configured service is to be in the zone now: as for mDNS
 * (announce { } given, healthy or status mode, not drained). */
static bool wanted(const lmd_agent *a)
{
    if (!a->cfg.announce.given || a->drained)
        return false;
    if (!a->health)
        return true;
    return a->self_state == 1 || (a->self_state == 0 && lmd_agent_status_mode(a));
}

/* What an update would publish, as one string (to tell a change). */
static char *content_key(const lmd_agent_wide *w, char addrs[][64], size_t n)
{
    const lmd_agent *a = w->a;
    size_t len = strlen(w->name) + 64 + n * 64;
    for (size_t i = 0; i < a->txt.n; i++)
        len += strlen(a->txt.items[i].key) + a->txt.items[i].value_len + 4;
    char *s = malloc(len), *p = s;
    if (!s)
        return NULL;
    p += sprintf(p, "%s|%u|%u|", w->name, a->cfg.announce.port, lmd_agent_record_ttl(a));
    for (size_t i = 0; i < a->txt.n; i++) {
        const lmd_txt_item *it = &a->txt.items[i];
        p += sprintf(p, "%s%s", it->key, it->has_value ? "=" : "");
        memcpy(p, it->value, it->has_value ? it->value_len : 0);
        p += it->has_value ? it->value_len : 0;
        *p++ = '\x1f';
    }
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "|%s", addrs[i]);
    *p = '\0';
    return s;
}

static void on_done(const lmd_dns_result *res, void *arg);

static void arm(lmd_agent_wide *w, double secs)
{
    if (lmd_timer_in(w->timer, secs) != 0)
        lmd_error("wide-area: cannot arm the refresh timer (out of memory)");
}

/* Send one update: publish what a holds now, or withdraw. */
static void send_update(lmd_agent_wide *w, int mode)
{
    lmd_agent *a = w->a;
    char addrs[MAX_ADDRS][64];
    size_t n = mode == LMD_DNS_PUBLISH ? lmd_dns_routable_addrs(addrs, MAX_ADDRS) : 0;
    const char *ap[MAX_ADDRS];
    for (size_t i = 0; i < n; i++)
        ap[i] = addrs[i];
    unsigned ttl = lmd_agent_record_ttl(a);
    if (ttl == 0 || ttl > a->cfg.wide_area.lease)
        ttl = a->cfg.wide_area.lease;
    /* every update carries lmd-live=SEQ/LEASE, SEQ new each time: observers
     * see a refresh as a change (serial and TXT), and expire the service
     * lease seconds after the last one they saw (wide_browse.c) */
    lmd_txt txt = {0};
    char live[32], why[320] = "out of memory";
    snprintf(live, sizeof live, "%08x/%u", ++w->seq, a->cfg.wide_area.lease);
    /* with trust { }: signed for this domain and host (the mDNS one names
     * NAME.local); lmd-live after signing: browsers strip it */
    if (mode == LMD_DNS_PUBLISH &&
        (lmd_agent_sign_txt_as(a, w->name, a->cfg.announce.port, &a->txt, a->cfg.wide_area.domain, w->host, &txt,
                               why, sizeof why) != 0 ||
         lmd_txt_set(&txt, LMD_DNS_LIVE_KEY, live, strlen(live), true, NULL, 0) != 0)) {
        lmd_txt_free(&txt);
        w->counts[LMD_WIDE_ERROR]++;
        lmd_error("wide-area: cannot build the update for \"%s\" (%s); trying again in %g s", w->name, why,
                  RETRY_MAX);
        arm(w, RETRY_MAX);
        return;
    }
    lmd_dns_service svc = {.zone = a->cfg.wide_area.domain, .instance = w->name,
                           .type = a->cfg.announce.type ? a->cfg.announce.type : LMD_DEFAULT_TYPE,
                           .host = w->host, .port = a->cfg.announce.port, .txt = &txt, .addrs = ap,
                           .n_addrs = n, .ttl = ttl, .lease = a->cfg.wide_area.lease};
    lmd_dns_msg *msg = NULL;
    lmd_err err = {0};
    free(w->req_content);
    w->req_content = mode == LMD_DNS_PUBLISH ? content_key(w, addrs, n) : NULL;
    size_t bytes = 0;
    int built = lmd_dns_update_build(&svc, mode, w->key, &msg, &err);
    lmd_txt_free(&txt);
    if (built != 0 || !lmd_dns_msg_wire(msg, &bytes) ||
        lmd_dns_send(a->base, a->cfg.wide_area.server, 0, msg, w->key, UPDATE_TIMEOUT, on_done, w, &w->req, &err) !=
            0) {
        w->counts[LMD_WIDE_ERROR]++;
        w->fails++;
        double again = lmd_backoff(w->fails, RETRY_FIRST, RETRY_MAX);
        lmd_error("wide-area: cannot build the update for \"%s\": %s; trying again in %g s", w->name,
                  lmd_err_text(&err), again);
        arm(w, again);
        return;
    }
    if (mode == LMD_DNS_PUBLISH && n == 0)
        lmd_warn("wide-area: this host has no routable address: %s is published without A/AAAA records", w->host);
    w->req_bytes = bytes;
    w->req_mode = mode;
    w->req_started = lmd_now_mono();
}

/* Publish or withdraw as the agent's state says; force: send even when
 * the zone already holds it (a refresh, a retry). */
static void sync_state(lmd_agent_wide *w, bool force)
{
    if (w->stopping)
        return;
    if (w->req) {
        w->pending = true;
        w->pending_force |= force; /* a re-signing is not a content change */
        return;
    }
    if (wanted(w->a)) {
        char addrs[MAX_ADDRS][64];
        char *now = content_key(w, addrs, lmd_dns_routable_addrs(addrs, MAX_ADDRS));
        bool same = now && w->published && w->sent && !strcmp(now, w->sent);
        free(now);
        if (!same || force)
            send_update(w, LMD_DNS_PUBLISH);
    } else if (w->published || force) {
        send_update(w, LMD_DNS_WITHDRAW);
    }
}

void lmd_agent_wide_sync(lmd_agent *a)
{
    if (a->wide)
        sync_state(a->wide, false);
}

void lmd_agent_wide_resign(lmd_agent *a)
{
    if (a->wide && a->trust && a->wide->published)
        sync_state(a->wide, true);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_agent_wide *w = arg;
    /* a retry of a withdraw is forced only while something may be there */
    sync_state(w, wanted(w->a) || w->published || w->fails > 0);
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
 * words it, as for lmdisc announce --domain). */
static void log_failure(lmd_agent_wide *w, int result, const lmd_dns_result *res, double again)
{
    const lmd_agent *a = w->a;
    if (result == LMD_WIDE_UNREACHABLE) {
        lmd_warn("wide-area: DNS server %s unreachable (%s); trying again in %g s (mDNS unaffected)",
                 a->cfg.wide_area.server, res->text, again);
        return;
    }
    lmd_dns_service svc = {.zone = a->cfg.wide_area.domain, .instance = w->name,
                           .type = a->cfg.announce.type ? a->cfg.announce.type : LMD_DEFAULT_TYPE, .host = w->host};
    char why[1024];
    lmd_dns_update_explain(res, &svc, lmd_dns_key_name(w->key), a->cfg.wide_area.key, why, sizeof why);
    lmd_error("wide-area: %s; trying again in %g s", why, again);
}

static void on_done(const lmd_dns_result *res, void *arg)
{
    lmd_agent_wide *w = arg;
    const lmd_agent *a = w->a;
    w->req = NULL;
    int result = classify(res);
    w->counts[result]++;
    double took = lmd_now_mono() - w->req_started;
    char e[160];
    if (w->stopping) {
        w->stop_done = true;
        if (result == LMD_WIDE_OK)
            lmd_info("wide-area: withdrew \"%s\" from %s in %.0f ms", lmd_escape_str(w->name, e, sizeof e),
                     a->cfg.wide_area.domain, took * 1000);
        else
            lmd_warn("wide-area: could not withdraw \"%s\" from %s (%s): its records stay until removed",
                     lmd_escape_str(w->name, e, sizeof e), a->cfg.wide_area.domain, res->text);
        return;
    }
    if (result != LMD_WIDE_OK) {
        w->fails++;
        double again = lmd_backoff(w->fails, RETRY_FIRST, RETRY_MAX);
        if (again > a->cfg.wide_area.lease / 4.0)
            again = a->cfg.wide_area.lease / 4.0;
        log_failure(w, result, res, again);
        w->last_result = result;
        arm(w, again);
        return;
    }
    bool recovered = w->fails > 0;
    w->fails = 0;
    w->last_result = LMD_WIDE_OK;
    w->last_seconds = took;
    w->last_bytes = (double)w->req_bytes;
    bool changed = !w->published || !w->sent || !w->req_content || strcmp(w->sent, w->req_content) != 0;
    free(w->sent);
    w->sent = w->req_mode == LMD_DNS_PUBLISH ? w->req_content : NULL;
    if (w->req_mode != LMD_DNS_PUBLISH)
        free(w->req_content);
    w->req_content = NULL;
    w->published = w->req_mode == LMD_DNS_PUBLISH;
    if (w->published) {
        lmd_log(changed || recovered ? LMD_LOG_INFO : LMD_LOG_DEBUG,
                "wide-area: %s \"%s\" in %s as %s (%.1f ms, %zu bytes, %s%s)",
                changed ? "published" : "refreshed", lmd_escape_str(w->name, e, sizeof e), a->cfg.wide_area.domain,
                w->host, took * 1000, w->req_bytes, res->tcp ? "TCP" : "UDP", recovered ? "; server back" : "");
        /* refresh at half the lease, jittered +-10% */
        double lease = a->cfg.wide_area.lease;
        arm(w, lease / 2 * (0.9 + 0.2 * ((double)arc4random() / UINT32_MAX)));
    } else {
        lmd_info("wide-area: withdrew \"%s\" from %s (%.1f ms)", lmd_escape_str(w->name, e, sizeof e),
                 a->cfg.wide_area.domain, took * 1000);
        event_del(w->timer);
    }
    if (w->pending) {
        bool force = w->pending_force;
        w->pending = w->pending_force = false;
        sync_state(w, force);
    }
}

int lmd_agent_wide_start(lmd_agent *a, lmd_err *err)
{
    if (!a->cfg.wide_area.given)
        return 0;
    lmd_agent_wide *w = calloc(1, sizeof *w);
    if (!w)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    w->a = a;
    w->seq = arc4random();
    lmd_err kerr = {0};
    int rc = lmd_dns_key_load(a->cfg.wide_area.key, &w->key, &kerr);
    if (rc)
        lmd_err_set(err, rc, "wide_area.key: %s", lmd_err_text(&kerr));
    char short_host[256] = "";
    if (rc == 0 && a->cfg.wide_area.host) {
        snprintf(short_host, sizeof short_host, "%s", a->cfg.wide_area.host);
    } else if (rc == 0) {
        if (lmd_dns_short_host(short_host, sizeof short_host) != 0)
            rc = lmd_err_set(err, LMD_EINVAL,
                             "wide_area: this machine's host name is not a DNS label; set wide_area { host = \"...\" }");
    }
    if (rc == 0) {
        const char *d = a->cfg.wide_area.domain;
        size_t dl = strlen(d);
        snprintf(w->host, sizeof w->host, "%s.%.*s", short_host, (int)(dl && d[dl - 1] == '.' ? dl - 1 : dl), d);
        if (a->cfg.announce.name)
            snprintf(w->name, sizeof w->name, "%s", a->cfg.announce.name);
        else if (a->cfg.announce.given)
            lmd_default_name(a->cfg.announce.port, w->name, sizeof w->name);
        if (!(w->timer = evtimer_new(a->base, on_timer, w)))
            rc = lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    if (rc) {
        lmd_dns_key_free(w->key);
        free(w);
        return rc;
    }
    a->wide = w;
    char e[160];
    if (!a->cfg.announce.given) {
        /* the key signs transfers; nothing is published */
        lmd_info("wide-area: no announce { }: nothing to publish in %s", a->cfg.wide_area.domain);
        return 0;
    }
    lmd_info("wide-area: publishing \"%s\" in %s through %s with key %s (lease %u s)",
             lmd_escape_str(w->name, e, sizeof e), a->cfg.wide_area.domain, a->cfg.wide_area.server,
             lmd_dns_key_name(w->key), a->cfg.wide_area.lease);
    sync_state(w, false);
    return 0;
}

static void stop_bound(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

void lmd_agent_wide_stop(lmd_agent *a, double bound)
{
    lmd_agent_wide *w = a->wide;
    if (!w || w->stopping)
        return;
    w->stopping = true;
    event_del(w->timer);
    bool maybe_there = w->published || (w->req && w->req_mode == LMD_DNS_PUBLISH) || w->fails > 0;
    lmd_dns_req_cancel(w->req);
    w->req = NULL;
    if (!maybe_there)
        return;
    /* withdraw, and turn the loop until the answer or the bound (the
     * guard's own flag: libevent's clock may fire it a hair before ours) */
    bool expired = false;
    struct event *guard = evtimer_new(a->base, stop_bound, &expired);
    if (!guard || lmd_timer_in(guard, bound) != 0) {
        lmd_warn("wide-area: cannot time the withdraw (out of memory): the records of \"%s\" stay in %s", w->name,
                 a->cfg.wide_area.domain);
        if (guard)
            event_free(guard);
        return;
    }
    send_update(w, LMD_DNS_WITHDRAW);
    while (w->req && !w->stop_done && !expired)
        if (event_base_loop(a->base, EVLOOP_ONCE) != 0)
            break;
    event_free(guard);
    if (w->req && !w->stop_done) {
        lmd_warn("wide-area: no answer to the withdraw within %g s: the records of \"%s\" stay in %s", bound, w->name,
                 a->cfg.wide_area.domain);
        lmd_dns_req_cancel(w->req);
        w->req = NULL;
    }
}

void lmd_agent_wide_free(lmd_agent *a)
{
    lmd_agent_wide *w = a->wide;
    if (!w)
        return;
    lmd_dns_req_cancel(w->req);
    if (w->timer)
        event_free(w->timer);
    lmd_dns_key_free(w->key);
    free(w->sent);
    free(w->req_content);
    free(w);
    a->wide = NULL;
}

void lmd_agent_wide_metrics(const lmd_agent *a, struct lmd_metrics *out)
{
    const lmd_agent_wide *w = a->wide;
    out->wide_area = a->cfg.wide_area.given;
    lmd_agent_wbrowse_metrics(a, out);
    if (!w)
        return;
    memcpy(out->dns_updates, w->counts, sizeof w->counts);
    out->dns_published = w->published;
    out->dns_update_seconds = w->last_seconds;
    out->dns_update_bytes = w->last_bytes;
}

const char *lmd_agent_wide_name(const lmd_agent *a)
{
    return a->wide && a->wide->name[0] ? a->wide->name : NULL;
}

bool lmd_agent_wide_published(const lmd_agent *a)
{
    return a->wide && a->wide->published;
}

const char *lmd_agent_wide_host(const lmd_agent *a)
{
    return a->wide ? a->wide->host : NULL;
}

const lmd_dns_key *lmd_agent_wide_key(const lmd_agent *a)
{
    return a->wide ? a->wide->key : NULL;
}
