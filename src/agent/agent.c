/* `lmdisc agent` (see agent.h): wiring, signals, reload, and what the API
 * may ask.  The events themselves are in events.c, what we announce in
 * self.c, checks in liveness.c. */
#include "agent/internal.h"
#include "check/watchdog.h"
#include "base/log.h"
#include "base/loop.h"
#include "base/util.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- registry timer: armed only while a deadline exists ---------------- */

static void rearm_now(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_agent *a = arg;
    if (lmd_timer_at(a->reg_timer, lmd_peers_next_deadline(a->reg)) != 0)
        lmd_warn("cannot arm the registry timer (out of memory); the next event re-arms it");
}

/* Once per loop turn, after the turn's events: the next deadline is a scan
 * of every peer, and a flood's resolver answers come 64 a turn. */
void lmd_agent_rearm(lmd_agent *a)
{
    if (a->rearm_ev)
        event_active(a->rearm_ev, EV_TIMEOUT, 0);
    else
        rearm_now(-1, 0, a);
}

static void reg_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_agent *a = arg;
    lmd_peers_tick_at(a->reg, lmd_now_mono(), lmd_now_wall());
    lmd_agent_rearm(a);
}

/* The registry's settings: no ttl of its own (see start()), our own
 * service held (listed by /v1/services) but a peer only with include_self,
 * goodbyes held for confirmation, and with trust { require } only trusted
 * peers seen. */
struct lmd_peers_config lmd_agent_peers_config(const lmd_agent *a)
{
    return (struct lmd_peers_config){.ttl = 0, .include_self = true, .settle = LMD_SETTLE,
                                     .goodbye_hold = LMD_GOODBYE_HOLD,
                                     .require_trusted = a->cfg.trust.given && a->cfg.trust.require,
                                     .hide_own = !a->cfg.registry.include_self};
}

/* A peer said goodbye: ask the network whether it is really gone (the
 * registry holds its leave meanwhile). */
static void on_confirm(void *ud, const lmd_node_info *peer, int ifindex, int proto)
{
    lmd_agent *a = ud;
    char e[160];
    int rc = a->browse ? lmd_browse_lookup(a->browse, peer->name, ifindex, proto) : LMD_ENODAEMON;
    lmd_debug("goodbye from %s\"%s\"%s: asking the network again%s", peer->flags & LMD_NODE_TRUSTED ? "trusted " : "",
              lmd_escape_str(peer->name, e, sizeof e),
              proto == 6 ? " on IPv6" : proto == 4 ? " on IPv4" : "",
              rc ? " (cannot: its leave comes after the hold)" : "");
}

/* ---- what the API may ask ------------------------------------------------ */

static void api_metrics(void *ud, struct lmd_metrics *out)
{
    lmd_agent *a = ud;
    *out = a->counts;
    lmd_node_list l;
    if (lmd_peers_snapshot(a->reg, true, &l) == 0) {
        out->peers_alive = (double)l.n;
        lmd_node_list_free(&l);
    }
    out->services_seen = (double)lmd_peers_count(a->reg);
    struct lmd_policy_stats ps;
    lmd_worker_stats(a->pol, &ps);
    struct lmd_worker_status ws;
    lmd_worker_status(a->pol, &ws);
    out->policy_state = (double)ws.state;
    out->policy_restarts = ws.restarts;
    out->policy_dropped = (double)ws.dropped;
    out->policy_state_name = lmd_worker_state_name(ws.state);
    out->policy_last_error = ws.last_error;
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
    if (a->m) {
        unsigned open;
        out->instances_unresolved = lmd_mdns_unresolved(a->m, &open);
        out->resolvers_open = open;
    }
    out->trust = a->trust != NULL;
    out->services_registered = (double)lmd_agent_services_count(a);
    out->mdns_enabled = a->cfg.mdns.enabled;
    lmd_agent_wire_metrics(a, out);
    lmd_wide_metrics(a->wide, out);
}

static int api_services(void *ud, lmd_node_list *out, bool *settled)
{
    lmd_agent *a = ud;
    /* complete: the first scan is done and nothing is left unresolved */
    *settled = a->settled_once && !(a->m && lmd_mdns_unresolved(a->m, NULL));
    return lmd_peers_snapshot_network(a->reg, out);
}

/* ---- reload ------------------------------------------------------------ */

/* A reload's emitted joins and updates wait until trust { } as reloaded
 * has judged every peer: one the new settings keep out (a fleet key taken
 * out of the list) is never told.  (Its new policy's hooks ran already:
 * lmd_policy_reload reads the settings and adopts the peers in one call.) */
struct reload_told {
    lmd_agent *a;
    size_t n;
    struct told {
        lmd_node_info peer;
        int kind;
        char *info;
        size_t info_len;
    } *ev;
};

void lmd_agent_reload_verdict(struct reload_told *t, const lmd_node_info *peer, const struct lmd_verdict *v)
{
    lmd_agent_set_verdict(t->a, peer->name, v->keep, v->info, v->info_len);
    if (v->emitted == LMD_EV_LEAVE)
        lmd_agent_emit(t->a, peer, v->emitted, 0, "filtered", v->info, v->info_len);
    if (v->emitted < 0 || v->emitted == LMD_EV_LEAVE)
        return;
    struct told *ev = realloc(t->ev, (t->n + 1) * sizeof *ev);
    if (ev)
        t->ev = ev;
    if (!ev || lmd_node_info_copy(&ev[t->n].peer, peer) != 0) {
        lmd_error("reload: out of memory: the %s of \"%s\" is not told", lmd_event_kind_name(v->emitted), peer->name);
        return;
    }
    ev[t->n].kind = v->emitted;
    ev[t->n].info_len = v->info ? (v->info_len ? v->info_len : strlen(v->info)) : 0;
    ev[t->n].info = v->info ? lmd_strndup(v->info, ev[t->n].info_len) : NULL;
    t->n++;
}

bool lmd_agent_reload_untold(lmd_agent *a, const char *name, int kind)
{
    struct reload_told *t = a->reload_told;
    if (!t || kind != LMD_EV_LEAVE)
        return false;
    for (size_t i = 0; i < t->n; i++)
        if (t->ev[i].kind == LMD_EV_JOIN && t->ev[i].peer.name && !strcmp(t->ev[i].peer.name, name)) {
            t->ev[i].kind = LMD_EV_LEAVE; /* neither told: its join never was */
            return true;
        }
    return false;
}

static void reload_tell(struct reload_told *t)
{
    t->a->reload_told = NULL;
    for (size_t i = 0; i < t->n; i++) {
        struct told *ev = &t->ev[i];
        if (ev->kind != LMD_EV_LEAVE && lmd_peers_kept(t->a->reg, ev->peer.name)) /* seen, kept: as judged now */
            lmd_agent_emit(t->a, &ev->peer, ev->kind, 0, NULL, ev->info, ev->info_len);
        else
            lmd_debug("reload: the %s of \"%s\" is not told: the new settings keep it out",
                      ev->kind == LMD_EV_LEAVE ? "join" : lmd_event_kind_name(ev->kind), ev->peer.name);
        lmd_node_info_clear(&ev->peer);
        free(ev->info);
    }
    free(t->ev);
}

/* A reload, in steps that never wait: a new worker loads the file (the
 * running one goes on meanwhile); once it loaded, the new trust { } is
 * applied first (a fleet key taken out drops its peers, whose leaves go to
 * the running policy), then, when the running worker has nothing queued or
 * in flight, the new one takes the peers over, the settings are swapped,
 * and the events held meanwhile go to the new worker.  If the new file does
 * not load, or its takeover fails, the running policy stays. */
struct reload_ctx {
    lmd_agent *a;
    struct reload_told told;
};

static void free_worker_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_worker_free(arg);
}

/* not inside its own callbacks: on the next turn of the loop */
static void free_worker_later(lmd_agent *a, lmd_worker *w)
{
    struct timeval zero = {0, 0};
    if (w && event_base_once(a->base, -1, EV_TIMEOUT, free_worker_cb, w, &zero) != 0)
        lmd_worker_free(w);
}

static void reload_abandon(lmd_agent *a, const char *why)
{
    lmd_error("reload failed; the running policy stays in force: %s", why);
    free_worker_later(a, a->pol_next);
    a->pol_next = NULL;
    a->reload_ready = false;
    lmd_config_clear(&a->reload_cfg);
    lmd_worker_hold(a->pol, false);
}

static void reload_finish(lmd_agent *a, struct reload_told *told)
{
    struct lmd_config nc = a->reload_cfg;
    a->reload_cfg = (struct lmd_config){.log_level = -1};
    if (nc.log_level >= 0 && !lmd_log_level_explicit())
        lmd_log_set_level((enum lmd_log_level)nc.log_level);
    /* a->cfg stays where it is (components keep pointers to it) */
    struct lmd_config old = a->cfg;
    a->cfg = nc;
    for (size_t i = 0; i < lmd_agent_ncomponents; i++) {
        const struct lmd_agent_component *c = &lmd_agent_components[i];
        lmd_err ce = {0};
        if (c->reload && c->reload(a, &old, &ce) != 0)
            lmd_error("reload: %s: %s", c->name, lmd_err_text(&ce));
    }
    for (const char *const *sec = lmd_agent_restart_sections; *sec; sec++)
        if (!lmd_config_section_equal(&old, &a->cfg, *sec, NULL))
            lmd_warn("reload: %s { } changed: it takes effect when the agent restarts", *sec);
    /* registry { include_self } may have changed what is a peer */
    struct lmd_peers_config pc = lmd_agent_peers_config(a);
    lmd_peers_configure(a->reg, &pc, lmd_now_mono());
    reload_tell(told);
    lmd_config_clear(&old);
    lmd_agent_rearm(a);
    lmd_info("reloaded %s", a->path);
}

static void reload_adopted(void *ud, int rc)
{
    struct reload_ctx *rc_ = ud;
    lmd_agent *a = rc_->a;
    if (rc) {
        reload_tell(&rc_->told);
        reload_abandon(a, "the new policy's takeover of the peers failed");
        free(rc_);
        return;
    }
    /* the new worker is the policy: the events held meanwhile are its */
    lmd_worker *old = a->pol;
    a->pol = a->pol_next;
    a->pol_next = NULL;
    a->reload_ready = false;
    lmd_worker_hold(a->pol, true);
    lmd_worker_take_queue(a->pol, old); /* old stays held: nothing more reaches it */
    free_worker_later(a, old);
    reload_finish(a, &rc_->told);
    free(rc_);
    lmd_worker_hold(a->pol, false);
}

void lmd_agent_reload_step(lmd_agent *a)
{
    if (!a->reload_ready || !a->pol_next || !lmd_worker_idle(a->pol))
        return;
    a->reload_ready = false;
    /* what the policy may see, as on every other path (lmd_agent_takeover):
     * not our own service (without include_self), nothing untrusted under
     * require, nothing it saw leave as unhealthy; with the verdicts the
     * running policy gave */
    lmd_node_list all;
    struct lmd_old_verdict *old;
    struct reload_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx || lmd_agent_takeover(a, &all, &old) != 0) {
        free(ctx);
        reload_abandon(a, "out of memory");
        return;
    }
    ctx->a = a;
    ctx->told.a = a;
    a->reload_told = &ctx->told;
    lmd_worker_hold(a->pol, true);
    int rc = lmd_worker_adopt(a->pol_next, "reload", &all, old, reload_adopted, ctx);
    lmd_node_list_free(&all);
    free(old);
    if (rc) {
        reload_tell(&ctx->told);
        free(ctx);
        reload_abandon(a, "cannot hand the peers to the new policy worker");
    }
}

static void reload_loaded(void *ud, int rc, struct lmd_config *cfg, const char *msg)
{
    lmd_agent *a = ud;
    if (rc) {
        reload_abandon(a, msg);
        return;
    }
    a->reload_cfg = *cfg;
    /* the new trust { } before the new policy sees anyone: a peer whose
     * fleet key was taken out leaves now (told to the running policy), and
     * the new policy's hooks never run for it */
    if (a->cfg.trust.given && cfg->trust.given) {
        lmd_err te = {0};
        if (lmd_agent_trust_reload(a, cfg, &te) != 0)
            lmd_error("reload: %s; the keys in force stay", lmd_err_text(&te));
    }
    a->reload_ready = true;
    lmd_agent_reload_step(a);
}

static void reload(lmd_agent *a)
{
    if (a->pol_next) {
        lmd_warn("SIGHUP: a reload is already under way; this one is ignored");
        return;
    }
    /* the trust files as they are now, before the new policy is handed
     * anyone: a fleet key or revocation changed under the same paths
     * drops its peers first (their leaves go to the running policy) */
    lmd_err te = {0};
    if (lmd_agent_trust_reload(a, &a->cfg, &te) != 0)
        lmd_error("reload: %s; the keys in force stay", lmd_err_text(&te));
    struct lmd_worker_host h = lmd_agent_worker_host(a);
    lmd_err err = {0};
    if (lmd_worker_new(a->base, a->path, &h, &a->pol_next, &err) != 0 ||
        lmd_worker_load(a->pol_next, reload_loaded, a) != 0) {
        reload_abandon(a, err.msg[0] ? lmd_err_text(&err) : "cannot start a policy worker");
        return;
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    lmd_agent *a = arg;
    if (sig == SIGHUP && a->exiting) {
        lmd_info("SIGHUP while exiting: not reloading");
        return;
    }
    if (sig == SIGHUP) {
        lmd_info("SIGHUP: reloading %s", a->path);
        reload(a);
        return;
    }
    lmd_info("%s: withdrawing and exiting", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    lmd_notify("STOPPING=1");
    event_base_loopbreak(a->base);
}

/* ---- life -------------------------------------------------------------- */

static void agent_free(lmd_agent *a)
{
    /* Registered services say goodbye before the API socket goes: a client
     * that falls back to announcing itself when the socket disappears must
     * not race our own announcement of its name (avahi would rename one). */
    lmd_agent_services_free(a);
    lmd_api_free(a->api);
    /* the browser (freed before mdns { }) goes with the avahi client, not
     * with a call that waits for a daemon that may not answer */
    lmd_mdns_closing(a->m);
    for (size_t i = lmd_agent_ncomponents; i-- > 0;)
        lmd_agent_components[i].free(a);
    lmd_worker_free(a->pol_next);
    lmd_worker_free(a->pol);
    lmd_config_clear(&a->reload_cfg);
    lmd_peers_free(a->reg);
    struct event *evs[] = {a->sig_int, a->sig_term, a->sig_hup, a->reg_timer, a->rearm_ev};
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

static int watch_signals(lmd_agent *a)
{
    if (!(a->sig_int = evsignal_new(a->base, SIGINT, on_signal, a)) ||
        !(a->sig_term = evsignal_new(a->base, SIGTERM, on_signal, a)) ||
        !(a->sig_hup = evsignal_new(a->base, SIGHUP, on_signal, a)) || evsignal_add(a->sig_int, NULL) ||
        evsignal_add(a->sig_term, NULL) || evsignal_add(a->sig_hup, NULL))
        return LMD_ENOMEM;
    return 0;
}

/* Everything between the configuration and the API: registry, signals,
 * avahi, checks, the announcement and the browser. */
static int start(lmd_agent *a, lmd_err *err)
{
    /* No re-confirm timers in the agent (ttl 0 here): avahi's own cache
     * maintenance is the network's confirmation.  It re-queries records at
     * 80-95% of their TTL and removes them (browser REMOVE, resolver
     * failure -> "expired") when nobody answers; the agents publish theirs
     * with half the registry's ttl (self.c), so a silent peer is gone within
     * ttl.  Re-resolving on a timer was answered from that same cache: it
     * confirmed nothing and woke the agent ~6 times a minute per peer
     * (tests/bench/results.md). */
    struct lmd_peers_config rc = lmd_agent_peers_config(a);
    int e = lmd_txt_copy(&a->txt, &a->cfg.announce_txt);
    if (e == 0)
        e = lmd_peers_new(&rc, lmd_agent_on_reg_event, on_confirm, a, &a->reg, err);
    if (e == 0 && (!(a->reg_timer = evtimer_new(a->base, reg_tick, a)) ||
                   !(a->rearm_ev = event_new(a->base, -1, 0, rearm_now, a))))
        e = LMD_ENOMEM;
    if (e == 0)
        e = watch_signals(a);
    for (size_t i = 0; e == 0 && i < lmd_agent_ncomponents; i++)
        if (lmd_agent_components[i].start)
            e = lmd_agent_components[i].start(a, err);
    if (e && err && !err->msg[0])
        lmd_err_set(err, e, "%s", lmd_strerror(e));
    return e;
}

/* The loop, one iteration at a time so that the watchdog sees each; an
 * idle loop blocks in epoll_wait and is woken by nothing of ours. */
static int run_loop(lmd_agent *a)
{
    /* a hook may run up to policy.deadline: the bound leaves it room */
    double bound = a->cfg.watchdog.timeout;
    if (bound < 2 * a->cfg.policy.deadline + 1)
        bound = 2 * a->cfg.policy.deadline + 1;
    lmd_watchdog *wd;
    lmd_err err = {0};
    if (lmd_watchdog_start(bound, &wd, &err) != 0) {
        lmd_error("%s", lmd_err_text(&err));
        return 1;
    }
    lmd_notify("READY=1");
    while (!event_base_got_break(a->base)) {
        if (event_base_loop(a->base, EVLOOP_ONCE) != 0)
            break; /* nothing left to wait for (1) or a libevent error (-1) */
        lmd_watchdog_beat(wd);
    }
    lmd_watchdog_stop(wd);
    return 0;
}

static void where_of(void *wud, const char *section, char *buf, size_t len)
{
    lmd_worker_where(wud, section, buf, len);
}

static void report_start(void *ud, const char *line)
{
    (void)ud;
    fprintf(stderr, "lmdisc agent: cannot start: %s\n", line);
}

int lmd_agent_run(const char *path, bool log_level_given)
{
    lmd_mem_tune(); /* before the first thread */
    lmd_agent *a = calloc(1, sizeof *a);
    if (!a || !(a->path = lmd_strdup(path)) || !(a->base = event_base_new())) {
        fprintf(stderr, "lmdisc agent: out of memory\n");
        if (a)
            agent_free(a);
        return 1;
    }
    a->cfg.log_level = -1;
    signal(SIGPIPE, SIG_IGN);
    a->reload_cfg.log_level = -1;
    struct lmd_worker_host host = lmd_agent_worker_host(a);
    lmd_err err = {0};
    /* the configuration's top-level code runs in the worker, under its
     * limits: a wedge there ends the start with the line it was on */
    if (lmd_worker_new(a->base, path, &host, &a->pol, &err) != 0 ||
        lmd_worker_load_wait(a->pol, &a->cfg, &err) != 0) {
        fprintf(stderr, "lmdisc agent: %s\n", lmd_err_text(&err));
        agent_free(a);
        return 1;
    }
    if (!log_level_given && a->cfg.log_level >= 0)
        lmd_log_set_level((enum lmd_log_level)a->cfg.log_level);
    const char *w = lmd_worker_warnings(a->pol);
    if (*w)
        lmd_warn("%s", w);
    if (lmd_agent_preflight(&a->cfg, where_of, a->pol, report_start, NULL) != 0) {
        agent_free(a);
        return 1;
    }
    if (start(a, &err) != 0) {
        fprintf(stderr, "lmdisc agent: cannot start: %s\n", lmd_err_text(&err));
        agent_free(a);
        return 1;
    }
    struct lmd_api_config ac = {.socket = a->cfg.api.socket, .socket_mode = a->cfg.api.socket_mode,
                                .listen = a->cfg.api.listen, .allow_remote = a->cfg.api.allow_remote};
    struct lmd_api_source as = {.ud = a, .reg = &lmd_agent_registry, .peers = lmd_agent_host_peers, .self = lmd_agent_api_self,
                                .metrics = api_metrics, .services = api_services, .type = a->cfg.announce.type};
    if (ac.socket && !*ac.socket)
        ac.socket = NULL; /* api { socket = "" }: no Unix socket */
    if (lmd_api_new(a->base, &ac, &as, &a->api, &err) != 0) {
        fprintf(stderr, "lmdisc agent: %s\n", lmd_err_text(&err));
        agent_free(a);
        return 1;
    }
    const char *hooks = lmd_worker_hooks(a->pol);
    struct lmd_worker_status ws;
    lmd_worker_status(a->pol, &ws);
    lmd_info("agent started with %s (hooks: %s; ttl %g s; policy worker pid %d)", path, *hooks ? hooks : "none",
             a->cfg.registry.ttl, ws.pid);
    int rc = run_loop(a);
    /* the withdraw turns the loop again: a SIGHUP then must not reload
     * (and free what the withdraw uses) */
    a->exiting = true;
    lmd_wide_stop(a->wide, LMD_WIDE_STOP_BOUND);
    agent_free(a);
    return rc;
}
