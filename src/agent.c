/* `lmdisc agent`: one process, one loop, data flowing one way:
 *
 *   avahi (mdns.c) --instances--> registry.c --events--> policy.c (Lua)
 *
 * SIGTERM/SIGINT withdraw the announcement and exit 0; SIGHUP reloads the
 * configuration, keeping the registry. */
#include "agent.h"
#include "api.h"
#include "health.h"
#include "json.h"
#include "cli.h"
#include "config.h"
#include "log.h"
#include "mdns.h"
#include "policy.h"
#include "registry.h"
#include "txt.h"
#include "util.h"

#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* IPv4 and IPv6 instances of a service resolve within milliseconds of each
 * other; 50 ms gathers them into one join at a small cost in latency. */
#define LMD_SETTLE 0.05

struct lmd_agent {
    char *path;
    struct event_base *base;
    struct lmd_config cfg;
    lmd_policy *pol;
    lmd_mdns *m;
    lmd_pub *pub;
    lmd_browse *browse;
    lmd_registry *reg;
    struct event *sig_int, *sig_term, *sig_hup, *reg_timer;
    lmd_api *api;
    lmd_health *health;     /* of the local server, if configured */
    lmd_checks *checks;     /* of kept peers, if configured */
    int self_state;         /* health: -1 unknown, 0 down, 1 up */
    struct lmd_metrics counts;  /* the counters; gauges are filled when asked */
    lmd_txt txt;            /* what we announce now */
    char name[128];         /* instance name we asked for */
    bool settled_once;
};

/* ---- registry timer: armed only while a deadline exists ---------------- */

static void rearm(lmd_agent *a)
{
    double next = lmd_registry_next_deadline(a->reg);
    if (next < 0) {
        evtimer_del(a->reg_timer);
        return;
    }
    double in = next - lmd_now_mono();
    if (in < 0)
        in = 0;
    struct timeval tv = {.tv_sec = (time_t)in, .tv_usec = (suseconds_t)((in - (double)(time_t)in) * 1e6)};
    evtimer_add(a->reg_timer, &tv);
}

static void reg_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_agent *a = arg;
    lmd_registry_tick(a->reg, lmd_now_mono());
    rearm(a);
}

/* ---- events ------------------------------------------------------------ */

static void count_event(lmd_agent *a, int kind, const char *reason)
{
    struct lmd_metrics *m = &a->counts;
    if (kind == LMD_EV_JOIN)
        m->joins++;
    else if (kind == LMD_EV_UPDATE)
        m->updates++;
    else if (lmd_streq(reason, LMD_REASON_GOODBYE))
        m->leaves_goodbye++;
    else if (lmd_streq(reason, LMD_REASON_EXPIRED))
        m->leaves_expired++;
    else if (lmd_streq(reason, "filtered"))
        m->leaves_filtered++;
    else if (lmd_streq(reason, "unhealthy"))
        m->leaves_unhealthy++;
    else
        m->leaves_other++;
}

/* An event the policy emitted: log, count, and tell API watchers (with the
 * policy's info, as /v1/peers shows it). */
static void emit(lmd_agent *a, const lmd_node_info *peer, int kind, unsigned changes, const char *reason,
                 const char *info);

static void log_event(const lmd_node_info *peer, int kind, unsigned changes, const char *reason,
                      const char *info)
{
    char name[160], host[160], inf[160];
    lmd_escape_str(peer->name, name, sizeof name);
    switch (kind) {
    case LMD_EV_JOIN:
        lmd_info("join \"%s\" at %s:%u (%s)", name, lmd_escape_str(peer->host, host, sizeof host),
                 peer->port, info ? lmd_escape_str(info, inf, sizeof inf) : "-");
        break;
    case LMD_EV_UPDATE: {
        char ch[96] = "";
        for (unsigned bit = 1; bit <= LMD_CH_INFO; bit <<= 1)
            if (changes & bit) {
                size_t used = strlen(ch);
                snprintf(ch + used, sizeof ch - used, "%s%s", used ? "," : "", lmd_change_name(bit));
            }
        lmd_info("update \"%s\" (%s)", name, ch);
        break;
    }
    case LMD_EV_LEAVE:
        lmd_info("leave \"%s\" (%s)", name, reason ? reason : "?");
        break;
    }
}

static void on_reg_event(void *ud, enum lmd_event_kind kind, const lmd_node_info *peer,
                         const lmd_node_info *old, unsigned changes, const char *reason)
{
    lmd_agent *a = ud;
    struct lmd_verdict v;
    if ((peer->flags & LMD_NODE_OWN) && !a->cfg.registry.include_self) {
        /* our own service: listed by /v1/services (as discover lists it),
         * never a peer */
        if (kind != LMD_EV_LEAVE)
            lmd_registry_set_verdict(a->reg, peer->name, false, NULL);
        return;
    }
    if (kind != LMD_EV_JOIN && !lmd_registry_healthy(a->reg, peer->name) && a->checks) {
        /* the policy already saw it leave as unhealthy: keep checking where
         * it is now, or stop when it is gone from the network */
        if (kind == LMD_EV_UPDATE)
            lmd_checks_watch(a->checks, peer);
        else
            lmd_checks_forget(a->checks, peer->name);
        return;
    }
    lmd_policy_event(a->pol, kind, peer, old, changes, reason, &v);
    if (lmd_log_get_level() <= LMD_LOG_DEBUG) {
        char name[160], inf[160];
        lmd_debug("policy: %s \"%s\": %s, info %s", lmd_event_kind_name(kind),
                  lmd_escape_str(peer->name, name, sizeof name), v.keep ? "kept" : "not kept",
                  v.info ? lmd_escape_str(v.info, inf, sizeof inf) : "-");
    }
    if (kind != LMD_EV_LEAVE)
        lmd_registry_set_verdict(a->reg, peer->name, v.keep, v.info);
    if (v.emitted >= 0)
        emit(a, peer, v.emitted, v.changes, v.emitted == LMD_EV_LEAVE && kind != LMD_EV_LEAVE ? "filtered" : reason,
             v.info);
    lmd_verdict_clear(&v);
}

static void emit(lmd_agent *a, const lmd_node_info *peer, int kind, unsigned changes, const char *reason,
                 const char *info)
{
    log_event(peer, kind, changes, reason, info);
    count_event(a, kind, reason);
    if (a->checks) {
        if (kind != LMD_EV_LEAVE)
            lmd_checks_watch(a->checks, peer);
        else if (!lmd_streq(reason, "unhealthy"))
            lmd_checks_forget(a->checks, peer->name);
    }
    if (!a->api)
        return;
    lmd_node_info shown;
    if (lmd_node_info_copy(&shown, peer) != 0)
        return;
    if (info) {
        free(shown.info);
        shown.info = lmd_strdup(info);
    }
    lmd_api_event(a->api, kind, &shown, changes, kind == LMD_EV_LEAVE ? reason : NULL);
    lmd_node_info_clear(&shown);
}

static void on_confirm(void *ud, const lmd_node_info *peer)
{
    lmd_agent *a = ud;
    if (!a->browse || lmd_browse_reconfirm(a->browse, peer->name) != 0) {
        /* nothing left to ask: the grace period ends it */
        char e[160];
        lmd_debug("cannot re-confirm \"%s\"", lmd_escape_str(peer->name, e, sizeof e));
    }
}

static void on_resolved(void *ud, const struct lmd_instance *in)
{
    lmd_agent *a = ud;
    if (lmd_log_get_level() <= LMD_LOG_DEBUG) {
        char name[160], host[160];
        lmd_debug("resolved \"%s\" on %s/IPv%d: %s:%u %s", lmd_escape_str(in->name, name, sizeof name),
                  in->ifname, in->proto, lmd_escape_str(in->host, host, sizeof host), in->port,
                  in->addr ? in->addr->addr : "-");
    }
    lmd_registry_instance_seen(a->reg, in, lmd_now_mono(), lmd_now_wall());
    rearm(a);
}

static void on_removed(void *ud, const struct lmd_instance *in, enum lmd_gone why)
{
    lmd_agent *a = ud;
    if (lmd_log_get_level() <= LMD_LOG_DEBUG) {
        char name[160];
        lmd_debug("gone \"%s\" on %s/IPv%d (%s)", lmd_escape_str(in->name, name, sizeof name), in->ifname,
                  in->proto, why == LMD_GONE_GOODBYE ? "goodbye" : "expired");
    }
    lmd_registry_instance_gone_at(a->reg, in, why == LMD_GONE_GOODBYE ? LMD_REASON_GOODBYE : LMD_REASON_EXPIRED,
                                  lmd_now_mono());
    rearm(a);
}

static void on_settled(void *ud)
{
    lmd_agent *a = ud;
    if (!a->settled_once)
        lmd_info("initial scan done: %zu service(s) on the network", lmd_registry_count(a->reg));
    else
        lmd_info("back in sync with avahi-daemon after a reconnect: %zu service(s) on the network",
                 lmd_registry_count(a->reg));
    a->settled_once = true;
}

static void on_mdns_state(void *ud, enum lmd_mdns_state st)
{
    (void)ud;
    if (st == LMD_MDNS_RUNNING)
        lmd_info("connected to avahi-daemon");
}

static void on_pub(void *ud, enum lmd_pub_event ev, const char *name, const char *detail)
{
    (void)ud;
    char e[160];
    switch (ev) {
    case LMD_PUB_ESTABLISHED:
        lmd_info("announced \"%s\"", lmd_escape_str(name, e, sizeof e));
        break;
    case LMD_PUB_RENAMED:
        lmd_warn("name collision: now announcing as \"%s\"", lmd_escape_str(name, e, sizeof e));
        break;
    case LMD_PUB_FAILED:
        lmd_error("announcing failed: %s", detail ? detail : "?");
        break;
    }
}

/* ---- what the policy may ask ------------------------------------------ */

static int host_peers(void *ud, lmd_node_list *out)
{
    lmd_agent *a = ud;
    if (!a->reg) {
        out->n = 0;
        out->nodes = NULL;
        return 0;
    }
    return lmd_registry_snapshot(a->reg, true, out);
}

static int host_peers_all(void *ud, lmd_node_list *out)
{
    lmd_agent *a = ud;
    out->n = 0;
    out->nodes = NULL;
    if (!a->reg)
        return 0;
    int rc = lmd_registry_snapshot(a->reg, false, out);
    /* unhealthy peers are not live, and we are not our own peer */
    size_t k = 0;
    for (size_t i = 0; rc == 0 && i < out->n; i++) {
        if (lmd_registry_healthy(a->reg, out->nodes[i].name) &&
            (a->cfg.registry.include_self || !(out->nodes[i].flags & LMD_NODE_OWN)))
            out->nodes[k++] = out->nodes[i];
        else
            lmd_node_info_clear(&out->nodes[i]);
    }
    out->n = k;
    return rc;
}

static int api_services(void *ud, lmd_node_list *out, bool *settled)
{
    lmd_agent *a = ud;
    *settled = a->settled_once;
    return lmd_registry_snapshot_network(a->reg, out);
}

static int host_self(void *ud, lmd_node_info *out, const char **state)
{
    lmd_agent *a = ud;
    memset(out, 0, sizeof *out);
    if (!a->cfg.announce.enabled)
        return LMD_ENOTFOUND;
    out->name = lmd_strdup(a->pub ? lmd_pub_name(a->pub) : a->name);
    out->type = lmd_strdup(a->cfg.announce.type ? a->cfg.announce.type : LMD_DEFAULT_TYPE);
    out->domain = lmd_strdup("local");
    out->host = lmd_strdup(a->m ? lmd_mdns_host_fqdn(a->m) : NULL);
    out->port = a->cfg.announce.port;
    const lmd_txt_item *it = lmd_txt_get(&a->txt, "info");
    out->info = it && it->has_value ? lmd_strndup(it->value, it->value_len) : NULL;
    out->flags = LMD_NODE_LOCAL | LMD_NODE_OWN;
    if (lmd_txt_copy(&out->txt, &a->txt) != 0 || !out->name) {
        lmd_node_info_clear(out);
        return LMD_ENOMEM;
    }
    *state = !a->m || lmd_mdns_state(a->m) != LMD_MDNS_RUNNING ? "waiting"
             : a->health && a->self_state == 0 && !a->cfg.health.status_mode ? "withdrawn (unhealthy)"
             : a->pub && lmd_pub_established(a->pub)            ? "established"
                                                                 : "registering";
    return 0;
}

static int host_set_txt(void *ud, const lmd_txt *txt, char *err, size_t errlen)
{
    lmd_agent *a = ud;
    if (lmd_txt_wire_size(txt) > LMD_TXT_RECORD_MAX) {
        snprintf(err, errlen, "the TXT record would be %zu bytes; keep it under %d", lmd_txt_wire_size(txt),
                 LMD_TXT_RECORD_MAX);
        return LMD_ETXT;
    }
    lmd_txt copy;
    if (lmd_txt_copy(&copy, txt) != 0)
        return LMD_ENOMEM;
    lmd_txt_free(&a->txt);
    a->txt = copy;
    return a->pub ? lmd_pub_set_txt(a->pub, &a->txt) : 0;
}

/* ---- what the API may ask ----------------------------------------------- */

static json_t *api_self(void *ud)
{
    lmd_agent *a = ud;
    lmd_node_info n;
    const char *state;
    if (host_self(a, &n, &state) != 0)
        return json_pack("{s:b,s:s}", "announcing", 0, "state", "observing");
    json_t *j = lmd_json_node(&n);
    lmd_node_info_clear(&n);
    if (j) {
        json_object_set_new(j, "announcing", json_true());
        json_object_set_new(j, "state", json_string(state));
    }
    return j;
}

static void api_metrics(void *ud, struct lmd_metrics *out)
{
    lmd_agent *a = ud;
    *out = a->counts;
    lmd_node_list l;
    if (lmd_registry_snapshot(a->reg, true, &l) == 0) {
        out->peers_alive = (double)l.n;
        lmd_node_list_free(&l);
    }
    out->services_seen = (double)lmd_registry_count(a->reg);
    struct lmd_policy_stats ps;
    lmd_policy_stats(a->pol, &ps);
    out->hook_runs = ps.hook_runs;
    out->hook_errors = ps.hook_errors;
    out->hook_seconds = ps.hook_time;
    out->lua_memory_bytes = (double)ps.memory;
    out->avahi_reconnects = a->m ? lmd_mdns_reconnects(a->m) : 0;
    if (a->checks) {
        lmd_checks_counts(a->checks, &out->checks_total, &out->checks_failed_total);
        out->checks_in_flight_peak = lmd_checks_peak(a->checks);
    }
    out->self_healthy = a->health ? (a->self_state < 0 ? 0 : a->self_state) : -1;
    out->avahi_running = a->m && lmd_mdns_state(a->m) == LMD_MDNS_RUNNING;
}

/* ---- announcing -------------------------------------------------------- */

static int start_announce(lmd_agent *a)
{
    if (!a->cfg.announce.enabled || !a->m || a->pub)
        return 0;
    /* with a health check, announce once its first answer is in (a dead
     * server is not announced; status= is right from the start) */
    if (a->health && (a->self_state < 0 || (a->self_state == 0 && !a->cfg.health.status_mode)))
        return 0;
    if (a->cfg.announce.name)
        snprintf(a->name, sizeof a->name, "%s", a->cfg.announce.name);
    else
        lmd_default_name(a->cfg.announce.port, a->name, sizeof a->name);
    /* Records live half the registry's ttl unless set (30 s by default):
     * every mDNS cache drops a host that vanished within that time, so a
     * peer is never kept longer than ttl without the network confirming it;
     * tests/bench/TTL.md measured 30 s as affordable on a 200-peer LAN. */
    unsigned ttl = a->cfg.announce.ttl ? a->cfg.announce.ttl
                   : a->cfg.registry.ttl >= 10 ? (unsigned)(a->cfg.registry.ttl / 2)
                   : a->cfg.registry.ttl >= 1 ? 5 : 0;
    struct lmd_pub_config pc = {.name = a->name, .type = a->cfg.announce.type, .port = a->cfg.announce.port,
                                .txt = &a->txt, .ttl = ttl};
    int err;
    a->pub = lmd_pub_new(a->m, &pc, on_pub, a, &err);
    return a->pub ? 0 : err;
}

static bool same_announce(const struct lmd_config *x, const struct lmd_config *y)
{
    return x->announce.enabled == y->announce.enabled && x->announce.port == y->announce.port &&
           x->announce.ttl == y->announce.ttl && x->registry.ttl == y->registry.ttl &&
           lmd_streq(x->announce.name, y->announce.name) && lmd_streq(x->announce.type, y->announce.type);
}

/* ---- health ------------------------------------------------------------ */

static void set_status_txt(lmd_agent *a, const char *status)
{
    lmd_txt t;
    if (lmd_txt_copy(&t, &a->txt) != 0)
        return;
    lmd_txt_set(&t, "status", status, strlen(status), true, NULL, 0);
    char err[160];
    host_set_txt(a, &t, err, sizeof err);
    lmd_txt_free(&t);
}

static void on_self_health(void *ud, bool up, const char *detail)
{
    lmd_agent *a = ud;
    a->self_state = up;
    if (a->cfg.health.status_mode) {
        lmd_log(up ? LMD_LOG_INFO : LMD_LOG_WARN, "local server %s (%s): announcing status=%s",
                up ? "is healthy" : "failed its health check", detail, up ? "up" : "down");
        set_status_txt(a, up ? "up" : "down");
        start_announce(a);
    } else if (up) {
        lmd_info("local server is healthy (%s): announcing", detail);
        start_announce(a);
    } else if (a->pub) {
        lmd_warn("local server failed %u health check(s) in a row (%s): withdrawing the announcement",
                 a->cfg.health.failures, detail);
        lmd_pub_free(a->pub); /* goodbye */
        a->pub = NULL;
    } else {
        lmd_warn("local server is not healthy (%s): not announcing until it passes", detail);
    }
}

static void on_peer_health(void *ud, const char *name, bool healthy, const char *detail)
{
    lmd_agent *a = ud;
    const lmd_node_info *n = lmd_registry_get(a->reg, name);
    lmd_node_info peer;
    if (!n || lmd_node_info_copy(&peer, n) != 0)
        return;
    char e[160];
    lmd_escape_str(name, e, sizeof e);
    lmd_registry_set_healthy(a->reg, name, healthy);
    struct lmd_verdict v;
    if (!healthy) {
        lmd_warn("peer \"%s\" failed %u check(s) in a row (%s)", e, a->cfg.checks.failures, detail);
        lmd_policy_event(a->pol, LMD_EV_LEAVE, &peer, NULL, 0, "unhealthy", &v);
        if (v.emitted >= 0)
            emit(a, &peer, LMD_EV_LEAVE, 0, "unhealthy", v.info);
    } else {
        lmd_info("peer \"%s\" passes its checks again (%s)", e, detail);
        lmd_policy_event(a->pol, LMD_EV_JOIN, &peer, NULL, 0, NULL, &v);
        lmd_registry_set_verdict(a->reg, name, v.keep, v.info);
        if (v.emitted >= 0)
            emit(a, &peer, v.emitted, 0, NULL, v.info);
        if (!v.keep)
            lmd_checks_forget(a->checks, name);
    }
    lmd_verdict_clear(&v);
    lmd_node_info_clear(&peer);
}

static void watch_kept(void *ud, const lmd_node_info *peer)
{
    lmd_agent *a = ud;
    if (lmd_registry_kept(a->reg, peer->name))
        lmd_checks_watch(a->checks, peer);
}

/* (Re)start the checks the configuration asks for. */
static int start_checks(lmd_agent *a, char *err, size_t errlen)
{
    const struct lmd_config *c = &a->cfg;
    if (c->checks.enabled && !a->checks) {
        struct lmd_checks_config cc = {.probe = {.tcp = c->checks.tcp, .path = c->checks.http,
                                                 .interval = c->checks.interval, .timeout = c->checks.timeout,
                                                 .failures = c->checks.failures},
                                       .concurrency = c->checks.concurrency};
        if (!(a->checks = lmd_checks_new(a->base, &cc, on_peer_health, a))) {
            snprintf(err, errlen, "out of memory");
            return LMD_ENOMEM;
        }
        lmd_registry_foreach(a->reg, watch_kept, a);
    }
    if (c->health.enabled && c->announce.enabled && !a->health) {
        struct lmd_probe_config pc = {.tcp = c->health.http == NULL, .interval = c->health.interval,
                                      .timeout = c->health.timeout, .failures = c->health.failures};
        char host[128] = "127.0.0.1", path[256] = "/";
        uint16_t port = c->health.tcp;
        if (c->health.http && lmd_parse_http_url(c->health.http, host, sizeof host, &port, path, sizeof path) != 0) {
            snprintf(err, errlen, "health.http '%s' is not an http://HOST:PORT/PATH URL", c->health.http);
            return LMD_EINVAL;
        }
        pc.path = path;
        int e;
        a->self_state = -1;
        if (!(a->health = lmd_health_new(a->base, &pc, host, port, on_self_health, a, &e))) {
            snprintf(err, errlen, "%s", lmd_strerror(e));
            return e;
        }
    }
    return 0;
}

static bool same_checks(const struct lmd_config *x, const struct lmd_config *y)
{
    return x->checks.enabled == y->checks.enabled && x->checks.tcp == y->checks.tcp &&
           lmd_streq(x->checks.http, y->checks.http) && x->checks.interval == y->checks.interval &&
           x->checks.timeout == y->checks.timeout && x->checks.failures == y->checks.failures &&
           x->checks.concurrency == y->checks.concurrency;
}

static bool same_health(const struct lmd_config *x, const struct lmd_config *y)
{
    return x->health.enabled == y->health.enabled && lmd_streq(x->health.http, y->health.http) &&
           x->health.tcp == y->health.tcp && x->health.interval == y->health.interval &&
           x->health.timeout == y->health.timeout && x->health.failures == y->health.failures &&
           x->health.status_mode == y->health.status_mode;
}

/* ---- reload ------------------------------------------------------------ */

static void reload_verdict(void *ud, const lmd_node_info *peer, const struct lmd_verdict *v)
{
    lmd_agent *a = ud;
    lmd_registry_set_verdict(a->reg, peer->name, v->keep, v->info);
    if (v->emitted >= 0)
        emit(a, peer, v->emitted, 0, "filtered", v->info);
}

static void reload(lmd_agent *a)
{
    lmd_node_list all;
    if (lmd_registry_snapshot(a->reg, false, &all) != 0)
        return;
    struct lmd_config nc;
    char err[1024];
    int rc = lmd_policy_reload(a->pol, a->path, &all, &nc, reload_verdict, a, err, sizeof err);
    lmd_node_list_free(&all);
    if (rc) {
        lmd_error("reload failed; the running policy stays in force: %s", err);
        return;
    }
    struct lmd_registry_config rc2 = {.ttl = 0,
                                      .include_self = true, .settle = LMD_SETTLE};
    lmd_registry_configure(a->reg, &rc2, lmd_now_mono());
    if (nc.log_level >= 0)
        lmd_log_set_level((enum lmd_log_level)nc.log_level);
    bool restart = !same_announce(&a->cfg, &nc);
    bool txt_changed = !lmd_txt_equal(&a->cfg.announce.txt, &nc.announce.txt);
    if (!same_checks(&a->cfg, &nc)) {
        lmd_checks_free(a->checks);
        a->checks = NULL;
    }
    if (!same_health(&a->cfg, &nc)) {
        lmd_health_free(a->health);
        a->health = NULL;
        a->self_state = -1;
        restart = true;
    }
    lmd_config_clear(&a->cfg);
    a->cfg = nc;
    if (restart || txt_changed) {
        lmd_txt_free(&a->txt);
        lmd_txt_copy(&a->txt, &a->cfg.announce.txt);
    }
    char err2[256];
    if (start_checks(a, err2, sizeof err2) != 0)
        lmd_error("reload: %s", err2);
    if (restart) {
        lmd_pub_free(a->pub);
        a->pub = NULL;
        start_announce(a);
    } else if (txt_changed && a->pub) {
        lmd_pub_set_txt(a->pub, &a->txt);
    }
    rearm(a);
    lmd_info("reloaded %s", a->path);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    lmd_agent *a = arg;
    if (sig == SIGHUP) {
        lmd_info("SIGHUP: reloading %s", a->path);
        reload(a);
        return;
    }
    lmd_info("%s: withdrawing and exiting", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    event_base_loopbreak(a->base);
}

/* ---- life -------------------------------------------------------------- */

static void agent_free(lmd_agent *a)
{
    lmd_api_free(a->api);
    lmd_health_free(a->health);
    lmd_checks_free(a->checks);
    lmd_pub_free(a->pub); /* goodbye */
    lmd_browse_free(a->browse);
    lmd_mdns_free(a->m);
    lmd_policy_free(a->pol);
    lmd_registry_free(a->reg);
    struct event *evs[] = {a->sig_int, a->sig_term, a->sig_hup, a->reg_timer};
    for (size_t i = 0; i < LMD_ARRAY_LEN(evs); i++)
        if (evs[i])
            event_free(evs[i]);
    if (a->base)
        event_base_free(a->base);
    lmd_txt_free(&a->txt);
    lmd_config_clear(&a->cfg);
    free(a->path);
    free(a);
}

int lmd_agent_run(const char *path, bool log_level_given)
{
    lmd_agent *a = calloc(1, sizeof *a);
    if (!a || !(a->path = lmd_strdup(path)) || !(a->base = event_base_new())) {
        fprintf(stderr, "lmdisc agent: out of memory\n");
        if (a)
            agent_free(a);
        return LMD_EXIT_FAIL;
    }
    signal(SIGPIPE, SIG_IGN);
    struct lmd_policy_host host = {.ud = a, .base = a->base, .peers = host_peers, .peers_all = host_peers_all,
                                   .self = host_self, .set_txt = host_set_txt};
    char err[1024] = "";
    int e = 0;
    if (!(a->pol = lmd_policy_new(path, &host, &a->cfg, err, sizeof err))) {
        fprintf(stderr, "lmdisc agent: %s\n", err);
        agent_free(a);
        return LMD_EXIT_FAIL;
    }
    if (!log_level_given && a->cfg.log_level >= 0)
        lmd_log_set_level((enum lmd_log_level)a->cfg.log_level);
    const char *w = lmd_policy_warnings(a->pol);
    if (*w)
        lmd_warn("%s", w);
    /* No re-confirm timers in the agent (ttl 0 here): avahi's own cache
     * maintenance is the network's confirmation.  It re-queries records at
     * 80-95% of their TTL and removes them (browser REMOVE, resolver
     * failure -> "expired") when nobody answers; the agents publish theirs
     * with half the registry's ttl (start_announce), so a silent peer is
     * gone within ttl.  Re-resolving on a timer was answered from that same
     * cache: it confirmed nothing and woke the agent ~6 times a minute per
     * peer (tests/bench/results.md). */
    struct lmd_registry_config rc = {.ttl = 0,
                                     .include_self = true, .settle = LMD_SETTLE};
    struct lmd_browse_callbacks bc = {on_resolved, on_removed, on_settled};
    if (lmd_txt_copy(&a->txt, &a->cfg.announce.txt) != 0 ||
        !(a->reg = lmd_registry_new(&rc, on_reg_event, on_confirm, a)) ||
        !(a->reg_timer = evtimer_new(a->base, reg_tick, a)) ||
        !(a->sig_int = evsignal_new(a->base, SIGINT, on_signal, a)) ||
        !(a->sig_term = evsignal_new(a->base, SIGTERM, on_signal, a)) ||
        !(a->sig_hup = evsignal_new(a->base, SIGHUP, on_signal, a)) || evsignal_add(a->sig_int, NULL) ||
        evsignal_add(a->sig_term, NULL) || evsignal_add(a->sig_hup, NULL) ||
        !(a->m = lmd_mdns_new(a->base, on_mdns_state, a, &e)) || start_checks(a, err, sizeof err) != 0 ||
        start_announce(a) != 0 ||
        !(a->browse = lmd_browse_new(a->m, a->cfg.announce.type, NULL, &bc, a, &e))) {
        fprintf(stderr, "lmdisc agent: cannot start: %s\n", *err ? err : lmd_strerror(e ? e : LMD_ENOMEM));
        agent_free(a);
        return LMD_EXIT_FAIL;
    }
    struct lmd_api_config ac = {.socket = a->cfg.api.socket ? a->cfg.api.socket : LMD_API_SOCKET,
                                .socket_mode = a->cfg.api.socket_mode, .listen = a->cfg.api.listen,
                                .allow_remote = a->cfg.api.allow_remote};
    struct lmd_api_source as = {.ud = a, .peers = host_peers, .self = api_self, .metrics = api_metrics,
                                .services = api_services,
                                .type = a->cfg.announce.type ? a->cfg.announce.type : LMD_DEFAULT_TYPE};
    if (!*ac.socket)
        ac.socket = NULL; /* api { socket = "" }: no Unix socket */
    if (!(a->api = lmd_api_new(a->base, &ac, &as, err, sizeof err))) {
        fprintf(stderr, "lmdisc agent: %s\n", err);
        agent_free(a);
        return LMD_EXIT_FAIL;
    }
    char hooks[256];
    lmd_policy_hooks(a->pol, hooks, sizeof hooks);
    lmd_info("agent started with %s (hooks: %s; ttl %g s)", path, *hooks ? hooks : "none", a->cfg.registry.ttl);
    event_base_dispatch(a->base);
    agent_free(a);
    return 0;
}

/* ---- command line ------------------------------------------------------ */

static const char agent_help[] =
    "Usage: lmdisc agent -c CONFIG.lua\n"
    "Run the agent: announce this server, keep browsing, hold a live registry of\n"
    "peers, and run the Lua policy in CONFIG on every join, update and leave.\n"
    "\n"
    "  -c, --config FILE   the configuration (Lua); see lmdisc-config(5)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Signals: TERM/INT withdraw the announcement and exit 0; HUP reloads CONFIG\n"
    "(a broken file leaves the running policy in force).\n";

int lmd_cmd_agent(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    const char *cfg = NULL;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cfg = optarg; break;
        case 'h': fputs(agent_help, stdout); return 0;
        default:
            return lmd_usage_error("agent", optopt == 'c' ? "-c needs a file" : "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc)
        return lmd_usage_error("agent", "unexpected argument '%s' (give the configuration with -c)", argv[optind]);
    if (!cfg)
        return lmd_usage_error("agent", "missing -c CONFIG.lua");
    return lmd_agent_run(cfg, lmd_log_level_explicit());
}

static int host_none_peers(void *ud, lmd_node_list *out)
{
    (void)ud;
    out->n = 0;
    out->nodes = NULL;
    return 0;
}

int lmd_cmd_check(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        puts("Usage: lmdisc check CONFIG.lua\n"
             "Load and validate a configuration without touching the network: syntax,\n"
             "unknown keys, wrong types, misspelt hooks.  Exit 0 if it is good.");
        return 0;
    }
    if (argc != 2)
        return lmd_usage_error("check", argc < 2 ? "missing CONFIG.lua" : "give one file to check");
    struct lmd_policy_host host = {.peers = host_none_peers};
    struct lmd_config cfg;
    char err[1024];
    lmd_policy *p = lmd_policy_new(argv[1], &host, &cfg, err, sizeof err);
    if (!p) {
        fprintf(stderr, "%s\n", err);
        return LMD_EXIT_FAIL;
    }
    const char *w = lmd_policy_warnings(p);
    if (*w)
        fprintf(stderr, "%s", w);
    char hooks[256];
    lmd_policy_hooks(p, hooks, sizeof hooks);
    printf("%s: OK", argv[1]);
    if (cfg.announce.enabled)
        printf("; announces port %u as %s", cfg.announce.port,
               cfg.announce.type ? cfg.announce.type : LMD_DEFAULT_TYPE);
    else
        printf("; observes only (no announce)");
    printf("; ttl %g s; hooks: %s\n", cfg.registry.ttl, *hooks ? hooks : "none");
    lmd_config_clear(&cfg);
    lmd_policy_free(p);
    return 0;
}

int lmd_cmd_test(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        puts("Usage: lmdisc test POLICY.lua SUITE.lua...\n"
             "Run luaunit suites against POLICY with simulated peers and a controllable\n"
             "clock (require \"lmdisc.testing\"; testing.load() loads POLICY).  No network.");
        return 0;
    }
    if (argc < 3)
        return lmd_usage_error("test", argc < 2 ? "missing POLICY.lua" : "missing SUITE.lua");
    return lmd_policy_run_tests(argv[1], argc - 2, argv + 2);
}
