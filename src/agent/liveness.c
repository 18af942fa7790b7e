/* Liveness: peer checks (a peer failing them leaves as "unhealthy") and
 * the local server's health check, started and restarted from the
 * configuration. */
#include "agent/internal.h"
#include "base/log.h"
#include "base/util.h"

#include <stdio.h>

static void on_peer_health(void *ud, const char *name, bool healthy, const char *detail)
{
    lmd_agent *a = ud;
    const lmd_node_info *n = lmd_peers_get(a->reg, name);
    lmd_node_info peer;
    if (!n || lmd_node_info_copy(&peer, n) != 0)
        return;
    char e[160];
    lmd_escape_str(name, e, sizeof e);
    (void)lmd_peers_set_healthy(a->reg, name, healthy); /* the peer is there: n above */
    /* through the policy like any event; the verdict comes back later
     * (lmd_agent_on_verdict) */
    int tag = LMD_TAG_LIVENESS | (lmd_peers_kept(a->reg, name) ? LMD_TAG_KEPT : 0);
    int rc;
    if (!healthy) {
        lmd_warn("peer \"%s\" failed %u check(s) in a row (%s)", e, a->cfg.checks.failures, detail);
        rc = lmd_worker_post(a->pol, LMD_EV_LEAVE, &peer, NULL, 0, "unhealthy", tag);
        if (rc)
            lmd_agent_on_verdict(a, LMD_EV_LEAVE, &peer, "unhealthy", tag, NULL);
    } else {
        lmd_info("peer \"%s\" passes its checks again (%s)", e, detail);
        rc = lmd_worker_post(a->pol, LMD_EV_JOIN, &peer, NULL, 0, NULL, tag);
        if (rc)
            lmd_agent_on_verdict(a, LMD_EV_JOIN, &peer, NULL, tag, NULL);
    }
    lmd_node_info_clear(&peer);
}

static void watch_kept(void *ud, const lmd_node_info *peer)
{
    lmd_agent *a = ud;
    if (lmd_peers_kept(a->reg, peer->name))
        lmd_checks_watch(a->checks, peer);
}

/* (Re)start the checks the configuration asks for. */
int lmd_agent_start_checks(lmd_agent *a, lmd_err *err)
{
    const struct lmd_config *c = &a->cfg;
    if (c->checks.given && !a->checks) {
        struct lmd_checks_config cc = {.probe = {.tcp = c->checks.tcp, .path = c->checks.http,
                                                 .interval = c->checks.interval, .timeout = c->checks.timeout,
                                                 .failures = c->checks.failures},
                                       .concurrency = c->checks.concurrency};
        int rc = lmd_checks_new(a->base, &cc, on_peer_health, a, &a->checks, err);
        if (rc)
            return rc;
        lmd_peers_foreach(a->reg, watch_kept, a);
    }
    if (c->health.given && c->announce.given && !a->health) {
        struct lmd_probe_config pc = {.tcp = c->health.http == NULL, .interval = c->health.interval,
                                      .timeout = c->health.timeout, .failures = c->health.failures};
        char host[128] = "127.0.0.1", path[256] = "/";
        uint16_t port = c->health.tcp;
        if (c->health.http && lmd_parse_http_url(c->health.http, host, sizeof host, &port, path, sizeof path) != 0) {
            return lmd_err_set(err, LMD_EINVAL, "health.http '%s' is not an http://HOST:PORT/PATH URL",
                               c->health.http);
        }
        pc.path = path;
        a->self_state = -1;
        return lmd_health_new(a->base, &pc, host, port, lmd_agent_on_self_health, a, &a->health, err);
    }
    return 0;
}

