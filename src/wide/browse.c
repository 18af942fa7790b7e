/* Wide-area DNS-SD, the browsing side (issue 10): the domain's services of
 * our type fed into the registry as a second source next to mDNS.
 *
 * Every wide_area.poll seconds one SOA query; when the serial changed (or
 * the last read failed), the domain is read again: by zone transfer where
 * the domain is a zone apex and the server allows it (TSIG-signed with
 * wide_area.key, over TCP, every message verified; IXFR from the serial of
 * the copy kept in wide_zone.c, so that only what changed crosses the
 * network; AXFR the first time, or when the copy was lost), else by a walk
 * with plain queries: PTR of TYPE.DOMAIN, then SRV and TXT of each
 * instance, then A and AAAA of each SRV target.  A transfer refused or not
 * signed by our key is said once, and queries are used from then on.  A complete walk is compared with the last:
 * instances seen are reported (lmd_peers_seen: join or update), those gone
 * leave ("goodbye").  A failed walk changes nothing (no leave storm while
 * the server is away; the next poll walks again).
 *
 * An instance from DNS is registry instance (ifindex 0, ifname "dns",
 * proto 4 for its first A, 6 for its first AAAA): a peer also seen over
 * mDNS is one peer with both, and leaves when the last is gone.
 *
 * Liveness: every update an agent sends carries "lmd-live=SEQ/LEASE" in the
 * TXT (wide.c), SEQ new each time, so a refresh changes the zone (its
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
 * (wide_live.c). */
#include "wide/browse.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"
#include "dns/dns.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>


static void free_found(struct found *f, size_t n)
{
    for (size_t i = 0; f && i < n; i++) {
        lmd_txt_free(&f[i].txt);
        lmd_txt_free(&f[i].full);
    }
    free(f);
}

static void on_answer(const lmd_dns_result *res, void *arg);

/* Send one query now; at most MAX_INFLIGHT at once (each is a socket):
 * SRV, TXT, A and AAAA of instance idx wait in b->later beyond that. */
static void send_query(lmd_agent_wbrowse *b, const char *label, const char *name, int type, size_t idx);

static void ask(lmd_agent_wbrowse *b, const char *label, const char *name, int type, size_t idx)
{
    bool per_instance = type == LMD_DNS_T_SRV || type == LMD_DNS_T_TXT || type == LMD_DNS_T_A ||
                        type == LMD_DNS_T_AAAA;
    if (!per_instance || b->n_qs < MAX_INFLIGHT) {
        send_query(b, label, name, type, idx);
        return;
    }
    if (b->n_later == b->cap_later) {
        size_t cap = b->cap_later ? 2 * b->cap_later : 64;
        struct later *more = realloc(b->later, cap * sizeof *more);
        if (!more) {
            b->failed = true;
            return;
        }
        b->later = more;
        b->cap_later = cap;
    }
    b->later[b->n_later++] = (struct later){.type = type, .idx = idx};
}

/* The next waiting queries, as answers make room. */
static void ask_later(lmd_agent_wbrowse *b)
{
    if (b->failed)
        b->n_later = 0; /* the walk is lost anyway: end it */
    while (b->n_later && b->n_qs < MAX_INFLIGHT) {
        struct later l = b->later[--b->n_later];
        if (l.idx >= b->n_cur)
            continue;
        const struct found *f = &b->cur[l.idx];
        if (l.type == LMD_DNS_T_SRV || l.type == LMD_DNS_T_TXT)
            send_query(b, f->name, b->type_zone, l.type, l.idx);
        else
            send_query(b, NULL, f->host, l.type, l.idx);
    }
}

static bool walking(const lmd_agent_wbrowse *b)
{
    return b->n_qs || b->n_later || b->xreq;
}

static void send_query(lmd_agent_wbrowse *b, const char *label, const char *name, int type, size_t idx)
{
    lmd_agent *a = b->a;
    struct q *q = calloc(1, sizeof *q);
    lmd_dns_msg *m = NULL;
    lmd_err err = {0};
    if (q && b->n_qs == b->cap_qs) {
        size_t cap = b->cap_qs ? 2 * b->cap_qs : 16;
        struct q **qs = realloc(b->qs, cap * sizeof *qs);
        if (qs) {
            b->qs = qs;
            b->cap_qs = cap;
        }
    }
    if (!q || b->n_qs == b->cap_qs) {
        free(q);
        b->failed = true;
        return;
    }
    *q = (struct q){.b = b, .type = type, .idx = idx};
    const lmd_dns_key *key = NULL;
    int rc = lmd_dns_query_build(label, name, type, &m, &err);
    size_t len = 0;
    if (rc == 0) {
        (void)lmd_dns_msg_wire(m, &len);
        b->sent++;
        b->bytes_out += (double)len;
    }
    if (rc != 0 ||
        lmd_dns_send(a->base, a->cfg.wide_area.server, 0, m, key, QUERY_TIMEOUT, on_answer, q, &q->req, &err) != 0) {
        lmd_debug("wide-area browse: cannot ask for %s: %s", name, lmd_err_text(&err));
        free(q);
        b->failed = true;
        return;
    }
    b->qs[b->n_qs++] = q;
}

static void forget(lmd_agent_wbrowse *b, struct q *q)
{
    for (size_t i = 0; i < b->n_qs; i++)
        if (b->qs[i] == q) {
            b->qs[i] = b->qs[--b->n_qs];
            break;
        }
    free(q);
}

static int by_name(const void *x, const void *y)
{
    return strcmp(((const struct found *)x)->name, ((const struct found *)y)->name);
}

const struct found *lmd_wb_find(const struct found *f, size_t n, const char *name)
{
    struct found key;
    snprintf(key.name, sizeof key.name, "%s", name);
    return n ? bsearch(&key, f, n, sizeof *f, by_name) : NULL;
}

void lmd_wb_sort(struct found *f, size_t *n)
{
    if (*n < 2)
        return;
    qsort(f, *n, sizeof *f, by_name);
    size_t k = 1;
    for (size_t i = 1; i < *n; i++) {
        if (!strcmp(f[i].name, f[k - 1].name)) {
            lmd_txt_free(&f[i].txt);
            lmd_txt_free(&f[i].full);
            continue;
        }
        if (k != i)
            f[k] = f[i];
        k++;
    }
    *n = k;
}

/* The registry instance of f over proto (4, 6), its address addr. */
void lmd_wb_instance(const lmd_agent_wbrowse *b, const struct found *f, int proto, lmd_addr *addr,
                     struct lmd_instance *in)
{
    const lmd_agent *a = b->a;
    memset(addr, 0, sizeof *addr);
    snprintf(addr->addr, sizeof addr->addr, "%s", proto == 4 ? f->a4 : f->a6);
    addr->family = proto;
    snprintf(addr->ifname, sizeof addr->ifname, "dns");
    *in = (struct lmd_instance){.ifindex = 0, .ifname = "dns", .proto = proto, .name = f->name,
                                .type = a->cfg.announce.type ? a->cfg.announce.type : LMD_DEFAULT_TYPE,
                                .domain = a->cfg.wide_area.domain, .host = f->host, .port = f->port, .addr = addr,
                                .txt = &f->txt,
                                .flags = lmd_agent_wide_owns(a, f->name) ? LMD_NODE_LOCAL | LMD_NODE_OWN : 0};
}

/* A complete walk: report what is new or changed, and what is gone. */
static void report(lmd_agent_wbrowse *b)
{
    lmd_agent *a = b->a;
    double now = lmd_now_mono(), wall = lmd_now_wall();
    lmd_wb_carry(b);
    for (size_t i = 0; i < b->n_prev; i++) {
        const struct found *p = &b->prev[i], *c = lmd_wb_find(b->cur, b->n_cur, p->name);
        if (p->expired)
            continue; /* left already */
        for (int proto = 4; proto <= 6; proto += 2) {
            bool had = proto == 4 ? p->a4[0] : p->a6[0];
            bool has = c && c->srv && (proto == 4 ? c->a4[0] : c->a6[0]);
            if (had && !has) {
                lmd_addr addr;
                struct lmd_instance in;
                lmd_wb_instance(b, p, proto, &addr, &in);
                (void)lmd_peers_gone_at(a->reg, &in, LMD_REASON_GOODBYE, now);
            }
        }
    }
    for (size_t i = 0; i < b->n_cur; i++) {
        const struct found *c = &b->cur[i], *p = lmd_wb_find(b->prev, b->n_prev, c->name);
        if (!c->srv || c->expired)
            continue;
        /* only what changed: a walk after someone else's update must not
         * make this source the peer's newest (its host would flip between
         * NAME.local and NAME.DOMAIN for a peer also seen over mDNS); a
         * refresh (lmd-live alone changed) is not a change to report */
        bool same = p && p->srv && !p->expired && p->port == c->port && !strcmp(p->host, c->host) &&
                    lmd_txt_equal(&p->txt, &c->txt);
        for (int proto = 4; proto <= 6; proto += 2) {
            const char *now_addr = proto == 4 ? c->a4 : c->a6, *was = p ? (proto == 4 ? p->a4 : p->a6) : "";
            if (!now_addr[0] || (same && !strcmp(now_addr, was)))
                continue;
            lmd_addr addr;
            struct lmd_instance in;
            lmd_wb_instance(b, c, proto, &addr, &in);
            /* both addresses come in this loop: a new peer joins with both,
             * at once (no settle window) */
            in.complete = !(proto == 4 && c->a6[0]);
            if (lmd_peers_seen(a->reg, &in, now, wall) != 0)
                lmd_error("out of memory: \"%s\" from %s not recorded", c->name, a->cfg.wide_area.domain);
        }
    }
    lmd_agent_rearm(a);
    free_found(b->prev, b->n_prev);
    b->prev = b->cur;
    b->n_prev = b->n_cur;
    b->cur = NULL;
    b->n_cur = 0;
    lmd_wb_arm_expiry(b);
}

static void walk_done(lmd_agent_wbrowse *b)
{
    b->polls[b->failed ? 2 : 1]++;
    if (b->failed) {
        if (!b->logged_down)
            lmd_warn("wide-area browse: reading %s from %s failed; keeping the peers known from it and trying "
                     "again every %g s", b->type_zone, b->a->cfg.wide_area.server, b->a->cfg.wide_area.poll);
        b->logged_down = true;
        b->have_serial = false; /* walk again next time */
        free_found(b->cur, b->n_cur);
        b->cur = NULL;
        b->n_cur = 0;
    } else {
        if (b->logged_down)
            lmd_info("wide-area browse: reading %s again", b->type_zone);
        b->logged_down = false;
        b->walked = true;
        report(b);
    }
    if (lmd_timer_in(b->timer, b->a->cfg.wide_area.poll) != 0)
        lmd_error("wide-area browse: cannot arm the poll timer (out of memory)");
}

static void on_ptr(lmd_agent_wbrowse *b, const lmd_dns_rr *rrs, size_t n)
{
    struct found *f = calloc(n ? n : 1, sizeof *f);
    if (!f) {
        b->failed = true;
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n && k < MAX_INSTANCES; i++) {
        /* only INSTANCE.TYPE.ZONE (each instance once: lmd_wb_sort) */
        if (!lmd_dns_instance_name(rrs[i].target, b->type_zone))
            continue;
        snprintf(f[k].name, sizeof f[k].name, "%s", rrs[i].label);
        k++;
    }
    lmd_wb_sort(f, &k);
    b->cur = f;
    b->n_cur = k;
    for (size_t i = 0; i < k; i++) {
        ask(b, f[i].name, b->type_zone, LMD_DNS_T_SRV, i);
        ask(b, f[i].name, b->type_zone, LMD_DNS_T_TXT, i);
    }
}

/* Why a transfer cannot be used; the walk with queries instead, from now on. */
static void to_queries(lmd_agent_wbrowse *b, const char *why)
{
    lmd_warn("wide-area browse: no transfer of %s from %s (%s): reading it with queries from now on",
             b->a->cfg.wide_area.domain, b->a->cfg.wide_area.server, why);
    b->queries = true;
    b->failed = false;
    ask(b, NULL, b->type_zone, LMD_DNS_T_PTR, 0);
}

static void on_transfer(const lmd_dns_xfr_result *res, void *arg)
{
    lmd_agent_wbrowse *b = arg;
    const char *domain = b->a->cfg.wide_area.domain;
    b->xreq = NULL;
    b->bytes_in += (double)res->bytes;
    lmd_dns_xfr *x = res->xfr;
    if (res->rc == 0 && x) {
        bool ixfr = b->zone.have;
        if (lmd_wb_zone_take(&b->zone, b->type_zone, x) != 0) {
            /* a diff that does not fit our copy (or no memory): whole next
             * time (a zone past the copy's size is past a transfer's too:
             * then read by queries) */
            lmd_warn("wide-area browse: the changes to %s from %s did not fit this agent's copy of it: reading it "
                     "whole next time", domain, b->a->cfg.wide_area.server);
            b->failed = true;
        } else if (lmd_wb_zone_services(&b->zone, &b->cur, &b->n_cur) != 0) {
            b->failed = true;
        } else {
            size_t changes = 0;
            for (size_t i = 0; i < x->n_diffs; i++)
                changes += x->diffs[i].n_deleted + x->diffs[i].n_added;
            lmd_debug("wide-area browse: %s transferred (%s to serial %u: %s, %zu messages, %zu bytes, %zu "
                      "records; %zu services)", domain, ixfr ? "IXFR" : "AXFR", (unsigned)x->serial,
                      x->kind == LMD_DNS_XFR_DIFF ? "changes" : x->kind == LMD_DNS_XFR_FULL ? "whole zone" : "up to date",
                      x->messages, x->bytes, x->kind == LMD_DNS_XFR_DIFF ? changes : x->n_rrs, b->n_cur);
        }
        lmd_dns_xfr_free(x);
    } else if (res->rcode == 5 || res->rcode == 9 || res->tsig_error == 16 || res->tsig_error == 17 ||
               res->too_big) {
        /* the server will not transfer it to this key: REFUSED, NOTAUTH,
         * BADSIG, BADKEY; or it is past what a transfer may be (reading it
         * whole at every change would be worse).  A SERVFAIL while it
         * loads, BADTIME, a failed IXFR are tried again, whole. */
        lmd_wb_zone_clear(&b->zone);
        to_queries(b, res->text);
    } else {
        /* unreachable, cut off, garbage: the next poll tries again, whole */
        lmd_debug("wide-area browse: %s", res->text);
        lmd_wb_zone_clear(&b->zone);
        b->failed = true;
    }
    ask_later(b);
    if (!walking(b))
        walk_done(b);
}

static void transfer(lmd_agent_wbrowse *b)
{
    lmd_agent *a = b->a;
    lmd_dns_msg *m = NULL;
    lmd_err err = {0};
    size_t len = 0;
    const lmd_dns_key *key = lmd_agent_wide_key(a);
    if (lmd_dns_xfr_build(a->cfg.wide_area.domain, key, b->zone.serial, b->zone.have, &m, &err) != 0 ||
        !lmd_dns_msg_wire(m, &len) ||
        (b->sent++, b->bytes_out += (double)len,
         lmd_dns_xfr_send(a->base, a->cfg.wide_area.server, 0, m, key, XFR_TIMEOUT, on_transfer, b, &b->xreq, &err)) !=
            0) {
        lmd_debug("wide-area browse: cannot ask for %s: %s", a->cfg.wide_area.domain, lmd_err_text(&err));
        b->failed = true;
    }
}

static void on_answer(const lmd_dns_result *res, void *arg)
{
    struct q *q = arg;
    lmd_agent_wbrowse *b = q->b;
    int type = q->type;
    size_t idx = q->idx;
    forget(b, q);
    b->bytes_in += (double)res->answer_len;
    lmd_dns_rr *rrs = NULL;
    size_t n = 0;
    lmd_err err = {0};
    if (res->rc != 0 || !res->answer || lmd_dns_answer_parse(res->answer, res->answer_len, type, &rrs, &n, &err) != 0) {
        lmd_debug("wide-area browse: %s", res->rc ? res->text : lmd_err_text(&err));
        b->failed = true;
    } else if (type == LMD_DNS_T_SOA) {
        bool same = n == 1 && b->have_serial && rrs[0].serial == b->serial && b->walked;
        b->have_serial = n == 1;
        b->serial = n == 1 ? rrs[0].serial : 0;
        if (same) {
            b->polls[0]++;
            lmd_dns_rrs_free(rrs, n);
            if (lmd_timer_in(b->timer, b->a->cfg.wide_area.poll) != 0)
                lmd_error("wide-area browse: cannot arm the poll timer (out of memory)");
            return;
        }
        b->failed = false;
        /* a zone apex (n == 1) whose server transfers it: IXFR from the
         * copy's serial, or the whole zone (AXFR), over TCP */
        if (n == 1 && !b->queries && lmd_agent_wide_key(b->a))
            transfer(b);
        else
            ask(b, NULL, b->type_zone, LMD_DNS_T_PTR, 0);
    } else if (type == LMD_DNS_T_PTR && !b->cur) {
        on_ptr(b, rrs, n);
    } else if (idx < b->n_cur) {
        struct found *f = &b->cur[idx];
        if (type == LMD_DNS_T_SRV && n >= 1) {
            f->srv = true;
            f->port = rrs[0].port;
            snprintf(f->host, sizeof f->host, "%s", rrs[0].target);
            ask(b, NULL, f->host, LMD_DNS_T_A, idx);
            ask(b, NULL, f->host, LMD_DNS_T_AAAA, idx);
        } else if (type == LMD_DNS_T_TXT && n >= 1) {
            lmd_txt_free(&f->full);
            f->full = rrs[0].txt;
            rrs[0].txt = (lmd_txt){0};
            lmd_wb_take_txt(f);
            f->txt_ok = true;
        } else if ((type == LMD_DNS_T_A || type == LMD_DNS_T_AAAA) && n >= 1) {
            /* of several, the same one every time (servers rotate them) */
            size_t lo = 0;
            for (size_t i = 1; i < n; i++)
                if (strcmp(rrs[i].addr, rrs[lo].addr) < 0)
                    lo = i;
            char *slot = type == LMD_DNS_T_A ? f->a4 : f->a6;
            snprintf(slot, sizeof f->a4, "%s", rrs[lo].addr);
        }
    }
    lmd_dns_rrs_free(rrs, n);
    ask_later(b);
    if (!walking(b))
        walk_done(b);
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_agent_wbrowse *b = arg;
    if (walking(b))
        return; /* a walk still going (bounded by its queries' and transfer's timeouts) */
    b->failed = false;
    ask(b, NULL, b->a->cfg.wide_area.domain, LMD_DNS_T_SOA, 0);
    ask_later(b);
    if (!walking(b))
        walk_done(b);
}

int lmd_agent_wbrowse_start(lmd_agent *a, lmd_err *err)
{
    if (!a->cfg.wide_area.given)
        return 0;
    lmd_agent_wbrowse *b = calloc(1, sizeof *b);
    if (!b || !(b->timer = evtimer_new(a->base, on_poll, b))) {
        free(b);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    b->a = a;
    int rc = lmd_wb_live_start(b, err);
    if (rc) {
        event_free(b->timer);
        free(b);
        return rc;
    }
    const char *d = a->cfg.wide_area.domain;
    size_t dl = strlen(d);
    snprintf(b->type_zone, sizeof b->type_zone, "%s.%.*s", a->cfg.announce.type ? a->cfg.announce.type : LMD_DEFAULT_TYPE,
             (int)(dl && d[dl - 1] == '.' ? dl - 1 : dl), d);
    a->wbrowse = b;
    lmd_info("wide-area browse: reading %s from %s every %g s; %s", b->type_zone, a->cfg.wide_area.server,
             a->cfg.wide_area.poll,
             b->sweep_key ? "removing the records of services whose lease ran out (sweep key)"
                          : "records of services whose lease ran out stay in the zone (no wide_area.sweep_key)");
    if (lmd_timer_in(b->timer, 0) != 0)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    return 0;
}

void lmd_agent_wbrowse_free(lmd_agent *a)
{
    lmd_agent_wbrowse *b = a->wbrowse;
    if (!b)
        return;
    for (size_t i = 0; i < b->n_qs; i++) {
        lmd_dns_req_cancel(b->qs[i]->req);
        free(b->qs[i]);
    }
    lmd_dns_xfr_cancel(b->xreq);
    lmd_wb_zone_clear(&b->zone);
    free(b->qs);
    free(b->later);
    lmd_wb_live_free(b);
    event_free(b->timer);
    free_found(b->cur, b->n_cur);
    free_found(b->prev, b->n_prev);
    free(b);
    a->wbrowse = NULL;
}

void lmd_agent_wbrowse_metrics(const lmd_agent *a, struct lmd_metrics *out)
{
    const lmd_agent_wbrowse *b = a->wbrowse;
    if (!b)
        return;
    memcpy(out->dns_polls, b->polls, sizeof b->polls);
    memcpy(out->dns_sweeps, b->swept, sizeof b->swept);
    out->dns_expired = b->expired;
    out->dns_queries = b->sent;
    out->dns_bytes_out = b->bytes_out;
    out->dns_bytes_in = b->bytes_in;
    size_t live = 0;
    for (size_t i = 0; i < b->n_prev; i++)
        live += b->prev[i].srv && !b->prev[i].expired;
    out->dns_services = (double)live;
}
