/* Which shard of a sharded domain this agent publishes in (issue 20; see
 * src/dns/dns.h, "sharded domains").  Before its first update the
 * publisher asks the domain's browse list, b._dns-sd._udp.DOMAIN PTR,
 * signed with its key (only an answer the key signed is believed); the
 * shards listed there (names one label below the domain) are where the
 * domain's services go, and lmd_dns_shard_pick names this host's.  No
 * shard listed (or only the domain itself): the domain, as before.  The
 * list is read when publishing starts (agent start, a reload that
 * changes wide_area { }); records already written stay where they are
 * until then.  Until it is read nothing is published; a failure is tried
 * again (1 s doubling to 30 s). */
#include "wide/publish.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARD_RETRY_MAX 30.0

static void ask(lmd_wide_set *w);

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ask(arg);
}

static void retry(lmd_wide_set *w, const char *why)
{
    w->shard_fails++;
    double again = lmd_backoff(w->shard_fails, 1.0, SHARD_RETRY_MAX);
    if (w->shard_fails == 1)
        lmd_warn("wide-area: cannot read the browse domains of %s from %s (%s): nothing is published there until "
                 "they are read; trying again in %g s", w->domain, w->server, why, again);
    if (!w->shard_timer)
        w->shard_timer = evtimer_new(w->wd->base, on_retry, w);
    if (!w->shard_timer || lmd_timer_in(w->shard_timer, again) != 0)
        lmd_error("wide-area: cannot arm a timer (out of memory): %s stays unpublished", w->domain);
}

static void known(lmd_wide_set *w, const char (*labels)[64], size_t n)
{
    long k = lmd_dns_shard_pick(w->host, labels, n);
    snprintf(w->shard, sizeof w->shard, "%s", k >= 0 ? labels[k] : "");
    w->shard_known = true;
    if (k >= 0)
        lmd_info("wide-area: %s lists %zu shards (%s): this host publishes in %s.%s", w->domain, n,
                 LMD_DNS_BROWSE_LIST, w->shard, w->domain);
    else if (w->shard_fails)
        lmd_info("wide-area: the browse domains of %s read: publishing there", w->domain);
    if (w->wd->set == w)
        lmd_wide_sync(w->wd);
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
        lmd_warn("wide-area: %s refuses to tell this key the browse domains of %s (%s): publishing in the domain "
                 "itself (a sharded domain needs its agents' keys allowed to query it)", w->server, w->domain,
                 res->text);
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
    if (lmd_dns_send(w->wd->base, w->server, 0, m, w->key, LMD_WP_UPDATE_TIMEOUT, on_answer, w, &w->shard_req,
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
