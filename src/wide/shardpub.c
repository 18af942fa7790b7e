/* Which shard of a sharded domain this agent publishes in (issue 20; see
 * src/dns/dns.h, "sharded domains").  Before its first update the
 * publisher asks the domain's browse list, b._dns-sd._udp.DOMAIN PTR,
 * signed with its key (only an answer the key signed is believed); the
 * shards listed there (names one label below the domain) are where the
 * domain's services go, and lmd_dns_shard_pick names this host's.  No
 * shard listed (or only the domain itself): the domain, as before.
 *
 * The list is read again every half lease (as often as the records are
 * refreshed): an operator who adds shards sees every agent in its place
 * within that, each one that moves withdrawing its records from the old
 * place first (browsers see it leave and join).  When the list cannot be
 * read (no answer in time, no answer signed by the key) the domain itself
 * is used meanwhile -- browsers always read it too, and the update's own
 * answer says what is wrong (a wrong secret, no grant) -- and the list is
 * asked again, 1 s doubling to 30 s, until it is read. */
#include "wide/publish.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARD_RETRY_MAX 30.0
#define SHARD_TIMEOUT 3.0

static void ask(lmd_wide_set *w);

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ask(arg);
}

static void again_in(lmd_wide_set *w, double s)
{
    if (!w->shard_timer)
        w->shard_timer = evtimer_new(w->wd->base, on_retry, w);
    if (!w->shard_timer || lmd_timer_in(w->shard_timer, s) != 0)
        lmd_error("wide-area: cannot arm a timer (out of memory): the shards of %s are not read again", w->domain);
}

/* this host's place is shard (label, "" the domain): services in the zone
 * elsewhere move */
static void place(lmd_wide_set *w, const char *shard)
{
    bool moved = w->shard_known && strcmp(w->shard, shard) != 0;
    snprintf(w->shard, sizeof w->shard, "%s", shard);
    w->shard_known = true;
    for (struct lmd_wpub *p = w->pubs; p; p = p->next)
        if ((p->published || p->req || p->fails) && strcmp(p->at, w->shard) != 0)
            p->moving = true;
    if (moved)
        lmd_info("wide-area: the shards of %s changed: this host's services move to %s%s%s", w->domain, w->shard,
                 w->shard[0] ? "." : "", w->domain);
    if (w->wd->set == w)
        lmd_wide_sync(w->wd);
}

static void retry(lmd_wide_set *w, const char *why)
{
    w->shard_fails++;
    double again = lmd_backoff(w->shard_fails, 1.0, SHARD_RETRY_MAX);
    if (w->shard_fails == 1)
        lmd_warn("wide-area: cannot read the browse domains of %s from %s (%s): publishing in %s%s%s meanwhile; "
                 "asking again in %g s", w->domain, w->server, why, w->shard_known ? w->shard : "",
                 w->shard_known && w->shard[0] ? "." : "", w->domain, again);
    if (!w->shard_known) {
        w->shard_provisional = true;
        place(w, "");
    }
    again_in(w, again);
}

static void known(lmd_wide_set *w, const char (*labels)[64], size_t n)
{
    long k = lmd_dns_shard_pick(w->host, labels, n);
    bool first = !w->shard_known || w->shard_provisional || w->shard_fails;
    if (first && k >= 0)
        lmd_info("wide-area: %s lists %zu shards (%s): this host publishes in %s.%s", w->domain, n,
                 LMD_DNS_BROWSE_LIST, labels[k], w->domain);
    else if (first && w->shard_fails)
        lmd_info("wide-area: the browse domains of %s read: no shards, publishing in the domain", w->domain);
    w->shard_fails = 0;
    w->shard_provisional = false;
    place(w, k >= 0 ? labels[k] : "");
    again_in(w, w->lease / 2.0);
}

static void on_answer(const lmd_dns_result *res, void *arg)
{
    lmd_wide_set *w = arg;
    w->shard_req = NULL;
    if (w->stopping)
        return;
    lmd_dns_rr *rrs = NULL;
    size_t n = 0;
    lmd_err err = {0};
    bool nx = res->rcode == 3 && res->verified && res->answer;
    if (res->rc == 0 && res->answer &&
        lmd_dns_answer_parse(res->answer, res->answer_len, LMD_DNS_T_PTR, &rrs, &n, &err) != 0) {
        retry(w, lmd_err_text(&err));
    } else if (res->rc != 0 && !nx && res->verified && (res->rcode == 5 || res->rcode == 9)) {
        /* the server will not answer this key's queries: no shards can
         * be known; the domain itself, as before */
        if (!w->shard_known || w->shard_fails == 0)
            lmd_warn("wide-area: %s refuses to tell this key the browse domains of %s (%s): publishing in the "
                     "domain itself (a sharded domain needs its agents' keys allowed to query it)", w->server,
                     w->domain, res->text);
        known(w, NULL, 0);
    } else if (res->rc != 0 && !nx) {
        /* the server's BADSIG comes unsigned (it could not sign with a
         * secret it does not have): not believed, but the likely cause is
         * said, as for updates */
        char why[1400];
        if (strstr(res->text, "BADSIG"))
            snprintf(why, sizeof why, "%s; if this persists, the secret of key %s (%s) is not the one the server "
                     "has: wrong key file?", res->text, lmd_dns_key_name(w->key), w->wd->cfg->wide_area.key);
        else if (strstr(res->text, "BADTIME"))
            snprintf(why, sizeof why, "%s; if this persists, this host's clock and the server's differ by more "
                     "than the TSIG window (300 s): fix the clock (NTP)", res->text);
        else
            snprintf(why, sizeof why, "%s", res->text);
        retry(w, why);
    } else {
        char (*labels)[64] = calloc(LMD_DNS_MAX_SHARDS, sizeof *labels);
        size_t k = 0;
        for (size_t i = 0; labels && i < n && k < LMD_DNS_MAX_SHARDS; i++)
            if (lmd_dns_shard_of(rrs[i].target, w->domain, labels[k], sizeof labels[k]))
                k++;
        if (labels)
            known(w, (const char (*)[64])labels, k);
        else
            retry(w, "out of memory");
        free(labels);
    }
    lmd_dns_rrs_free(rrs, n);
}

static void ask(lmd_wide_set *w)
{
    char list[1100];
    size_t dl = strlen(w->domain);
    snprintf(list, sizeof list, "%s.%.*s", LMD_DNS_BROWSE_LIST, (int)(dl && w->domain[dl - 1] == '.' ? dl - 1 : dl),
             w->domain);
    lmd_dns_msg *m = NULL;
    lmd_err err = {0};
    if (lmd_dns_query_build(NULL, list, LMD_DNS_T_PTR, &m, &err) != 0 || lmd_dns_query_sign(m, w->key, &err) != 0) {
        lmd_dns_msg_free(m);
        retry(w, lmd_err_text(&err));
        return;
    }
    if (lmd_dns_send(w->wd->base, w->server, 0, m, w->key, SHARD_TIMEOUT, on_answer, w, &w->shard_req,
                     &err) != 0)
        retry(w, lmd_err_text(&err));
}

void lmd_wp_shard_start(lmd_wide_set *w)
{
    w->shard_known = false;
    ask(w);
}

void lmd_wp_shard_free(lmd_wide_set *w)
{
    lmd_dns_req_cancel(w->shard_req);
    w->shard_req = NULL;
    if (w->shard_timer)
        event_free(w->shard_timer);
    w->shard_timer = NULL;
}
