/* Sweeping by the liveness zone (issue 20), for agents with
 * wide_area.sweep_key.  Publishers write their refresh evidence into
 * _live.DOMAIN (livepub.c): INSTANCE.HOST._live.DOMAIN TXT
 * "lmd-live=SEQ/LEASE", SEQ new at each refresh.  A sweeper follows that
 * zone as browsing follows the browse zone: a signed SOA query at every
 * poll, and on a new serial a signed IXFR from the copy it keeps
 * (src/dns/zone.c, liveness mode), so a refresh costs it one small diff.
 * Each record's last change is timed on the sweeper's own monotonic clock;
 * one that has not changed for its lease (as the browse side did: always
 * within lease + poll, never inside the gap between two refreshes seen)
 * has a crashed or cut-off publisher: the sweeper deletes the liveness
 * record with a compare-and-delete (prerequisite: the stale value, so a
 * refresh that came first makes it NXRRSET and nothing is removed), and
 * once that went, the service's browse records with the existing
 * compare-and-delete (prerequisite: their TXT as read).  A publisher
 * refreshes in the other order (its liveness record, then its records,
 * livepub.c, publish.c), so a refresh racing a sweep either fails the
 * sweep or writes the records again after it; only a refresh whose two
 * updates both fit between the sweeper's two is lost, until the next one
 * (half a lease).  Browsers see a leave at their next poll.  A liveness record without browse records (withdrawn meanwhile, a
 * delete lost) is removed alone; browse records without a liveness record
 * (written by hand, an older publisher) are never swept here. */
#include "wide/browse.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct lrec {
    char name[64];        /* the instance */
    char host[64];        /* HOST */
    char value[32];       /* SEQ/LEASE */
    unsigned lease;
    double changed_at;    /* monotonic */
    bool swept;           /* expired and its removal queued */
};

struct lmd_wsweeper {
    lmd_wide_browse *b;
    char zone[1100];      /* _live.DOMAIN */
    lmd_dns_zone copy;
    lmd_dns_req *soa;
    lmd_dns_xfr_req *xreq;
    uint32_t serial;
    bool have_serial;
    struct lrec *r;
    size_t n;
    struct event *expiry;
    double polls[3];      /* unchanged, read, failed */
    double expired;
    bool said_down;
};

static int by_key(const void *x, const void *y)
{
    const struct lrec *a = x, *b = y;
    int c = strcmp(a->name, b->name);
    return c ? c : strcasecmp(a->host, b->host);
}

/* The HOST label of INSTANCE.HOST.ZONE in text (the instance's dots are
 * escaped, the host has none). */
static bool host_of(const char *owner, const char *zone, char *out, size_t len)
{
    size_t n = strlen(owner), z = strlen(zone);
    if (n <= z + 1)
        return false;
    size_t end = n - z - 1, start = end;
    while (start > 0 && owner[start - 1] != '.')
        start--;
    if (start == 0 || end - start >= len || (start >= 2 && owner[start - 2] == '\\'))
        return false;
    snprintf(out, len, "%.*s", (int)(end - start), owner + start);
    return true;
}

static double deadline(const struct lmd_wsweeper *s, const struct lrec *r)
{
    double seen_gap = 0.55 * r->lease + s->b->wd->cfg->wide_area.poll + 2;
    return r->changed_at + (seen_gap > r->lease ? seen_gap : r->lease);
}

static void arm_expiry(struct lmd_wsweeper *s)
{
    double first = -1;
    for (size_t i = 0; i < s->n; i++)
        if (!s->r[i].swept && s->r[i].lease && (first < 0 || deadline(s, &s->r[i]) < first))
            first = deadline(s, &s->r[i]);
    if (first < 0) {
        event_del(s->expiry);
        return;
    }
    double in = first - lmd_now_mono();
    if (lmd_timer_in(s->expiry, in > 0 ? in : 0) != 0)
        lmd_error("wide-area sweeper: cannot arm the expiry timer (out of memory)");
}

/* The copy's records as the table, each one's clock carried from the last
 * table while its value is the same. */
static void rebuild(struct lmd_wsweeper *s)
{
    struct lrec *t = calloc(s->copy.n ? s->copy.n : 1, sizeof *t);
    if (!t) {
        lmd_error("wide-area sweeper: out of memory");
        return;
    }
    double now = lmd_now_mono();
    size_t k = 0;
    for (size_t i = 0; i < s->copy.n; i++) {
        const struct lmd_dns_zrec *z = &s->copy.r[i];
        const lmd_txt_item *it = lmd_txt_get(&z->txt, LMD_DNS_LIVE_KEY);
        struct lrec *r = &t[k];
        memset(r, 0, sizeof *r);
        if (!it || !it->has_value || it->value_len >= sizeof r->value || !host_of(z->owner, s->zone, r->host, sizeof r->host))
            continue;
        snprintf(r->name, sizeof r->name, "%s", z->owner_label);
        memcpy(r->value, it->value, it->value_len);
        r->value[it->value_len] = '\0';
        unsigned seq = 0, lease = 0;
        char end;
        if (sscanf(r->value, "%8x/%u%c", &seq, &lease, &end) == 2 && lease > 0)
            r->lease = lease < 10 ? 10 : lease > 86400 ? 86400 : lease;
        const struct lrec *old = s->n ? bsearch(r, s->r, s->n, sizeof *r, by_key) : NULL;
        bool same = old && !strcmp(old->value, r->value);
        r->changed_at = same ? old->changed_at : now;
        r->swept = same && old->swept;
        k++;
    }
    qsort(t, k, sizeof *t, by_key);
    free(s->r);
    s->r = t;
    s->n = k;
    arm_expiry(s);
}

static void on_expiry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lmd_wsweeper *s = arg;
    lmd_wide_browse *b = s->b;
    const char *domain = b->wd->cfg->wide_area.domain;
    size_t dl = strlen(domain);
    if (dl && domain[dl - 1] == '.')
        dl--;
    double now = lmd_now_mono();
    for (size_t i = 0; i < s->n; i++) {
        struct lrec *r = &s->r[i];
        if (r->swept || !r->lease || deadline(s, r) > now + 0.001)
            continue;
        r->swept = true;
        s->expired++;
        /* the browse records of that instance on that host, as read */
        const struct lmd_wfound *f = lmd_wb_find(b, r->name);
        char want[1100];
        snprintf(want, sizeof want, "%s.%.*s", r->host, (int)dl, domain);
        bool browse = f && f->srv && !strcasecmp(f->host, want);
        char e[160];
        lmd_info("wide-area sweeper: \"%s\" on %s was not refreshed for %u s (its lease): removing its %s",
                 lmd_escape_str(r->name, e, sizeof e), r->host, r->lease,
                 browse ? "records" : "liveness record (no browse records left)");
        /* the liveness record first (its compare-and-delete fails if a
         * refresh came), then, if it went, the browse records */
        lmd_wb_sweep_live(b, r->name, r->host, r->value, browse ? f : NULL);
    }
    lmd_wb_pump(b);
    arm_expiry(s);
}

static void failed(struct lmd_wsweeper *s, const char *text)
{
    s->polls[2]++;
    s->have_serial = false;
    if (!s->said_down)
        lmd_warn("wide-area sweeper: reading the liveness zone %s failed (%s); trying again every %g s", s->zone, text,
                 s->b->wd->cfg->wide_area.poll);
    s->said_down = true;
}

static void on_transfer(const lmd_dns_xfr_result *res, void *arg)
{
    struct lmd_wsweeper *s = arg;
    s->xreq = NULL;
    s->b->bytes_in += (double)res->bytes;
    if (res->forged)
        s->b->dropped++;
    if (res->rc != 0 || !res->xfr || lmd_dns_zone_take(&s->copy, s->zone, res->xfr) != 0) {
        lmd_dns_zone_clear(&s->copy);
        failed(s, res->rc ? res->text : "the changes did not fit the copy");
    } else {
        s->polls[1]++;
        if (s->said_down)
            lmd_info("wide-area sweeper: reading the liveness zone %s again", s->zone);
        s->said_down = false;
        s->serial = res->xfr->serial;
        rebuild(s);
    }
    lmd_dns_xfr_free(res->xfr);
}

static void on_soa(const lmd_dns_result *res, void *arg)
{
    struct lmd_wsweeper *s = arg;
    lmd_wide_browse *b = s->b;
    lmd_wide *wd = b->wd;
    s->soa = NULL;
    b->bytes_in += (double)res->answer_len;
    b->dropped += res->dropped;
    lmd_dns_rr *rrs = NULL;
    size_t n = 0;
    lmd_err err = {0};
    if (res->rc != 0 || !res->answer ||
        lmd_dns_answer_parse(res->answer, res->answer_len, LMD_DNS_T_SOA, &rrs, &n, &err) != 0 || n != 1) {
        failed(s, res->rc ? res->text : n != 1 ? "no SOA: is it a zone (delegated, examples/wide-area)?" : lmd_err_text(&err));
        lmd_dns_rrs_free(rrs, n);
        return;
    }
    uint32_t serial = rrs[0].serial;
    lmd_dns_rrs_free(rrs, n);
    if (s->have_serial && s->copy.have && serial == s->serial) {
        s->polls[0]++;
        return;
    }
    s->have_serial = true;
    const lmd_dns_key *key = lmd_wide_key(wd);
    lmd_dns_msg *m = NULL;
    size_t len = 0;
    if (lmd_dns_xfr_build(s->zone, key, s->copy.serial, s->copy.have, &m, &err) != 0 || !lmd_dns_msg_wire(m, &len) ||
        (b->sent++, b->bytes_out += (double)len,
         lmd_dns_xfr_send(wd->base, lmd_wb_reader(b), 0, m, key, LMD_WB_XFR_TIMEOUT, on_transfer, s, &s->xreq, &err)) != 0)
        failed(s, lmd_err_text(&err));
}

void lmd_ws_poll(lmd_wide_browse *b)
{
    struct lmd_wsweeper *s = b->sweeper;
    if (!s || s->soa || s->xreq)
        return;
    lmd_wide *wd = b->wd;
    const lmd_dns_key *key = lmd_wide_key(wd);
    lmd_dns_msg *m = NULL;
    lmd_err err = {0};
    size_t len = 0;
    if (lmd_dns_query_build(NULL, s->zone, LMD_DNS_T_SOA, &m, &err) != 0 ||
        (key && lmd_dns_query_sign(m, key, &err) != 0)) {
        lmd_dns_msg_free(m);
        failed(s, lmd_err_text(&err));
        return;
    }
    (void)lmd_dns_msg_wire(m, &len);
    b->sent++;
    b->bytes_out += (double)len;
    if (lmd_dns_send(wd->base, lmd_wb_reader(b), 0, m, key, LMD_WB_QUERY_TIMEOUT, on_soa, s, &s->soa, &err) != 0)
        failed(s, lmd_err_text(&err));
}

int lmd_ws_start(lmd_wide_browse *b, lmd_err *err)
{
    if (!b->sweep_key || !lmd_wide_key(b->wd))
        return 0;
    struct lmd_wsweeper *s = calloc(1, sizeof *s);
    if (!s || !(s->expiry = evtimer_new(b->wd->base, on_expiry, s))) {
        free(s);
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    }
    s->b = b;
    s->copy.live = true;
    const char *d = b->wd->cfg->wide_area.domain;
    size_t dl = strlen(d);
    snprintf(s->zone, sizeof s->zone, "%s.%.*s", LMD_DNS_LIVE_LABEL, (int)(dl && d[dl - 1] == '.' ? dl - 1 : dl), d);
    b->sweeper = s;
    lmd_info("wide-area sweeper: following the liveness zone %s every %g s", s->zone, b->wd->cfg->wide_area.poll);
    return 0;
}

void lmd_ws_free(lmd_wide_browse *b)
{
    struct lmd_wsweeper *s = b->sweeper;
    if (!s)
        return;
    lmd_dns_req_cancel(s->soa);
    lmd_dns_xfr_cancel(s->xreq);
    lmd_dns_zone_clear(&s->copy);
    event_free(s->expiry);
    free(s->r);
    free(s);
    b->sweeper = NULL;
}

void lmd_ws_metrics(const lmd_wide_browse *b, struct lmd_metrics *out)
{
    const struct lmd_wsweeper *s = b->sweeper;
    if (!s)
        return;
    out->dns_sweeper = true;
    memcpy(out->dns_live_polls, s->polls, sizeof s->polls);
    out->dns_live_records = (double)s->n;
    out->dns_live_expired = s->expired;
}
