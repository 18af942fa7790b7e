/* Registry events through the policy, and what the policy emits out to
 * the log, the metrics, the checks and the API's watchers. */
#include "agent/internal.h"
#include "base/log.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- mdns -> registry ------------------------------------------------- */

/* ---- registry -> policy -> out ------------------------------------------ */

void lmd_agent_set_verdict(lmd_agent *a, const char *name, bool keep, const char *info, size_t info_len)
{
    /* LMD_ENOTFOUND cannot happen here: every caller holds the peer */
    if (lmd_peers_set_verdict(a->reg, name, keep, info, info_len) == LMD_ENOMEM) {
        char e[160];
        lmd_error("out of memory: the policy's info for \"%s\" is not kept", lmd_escape_str(name, e, sizeof e));
    }
}

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

static void log_event(const lmd_node_info *peer, int kind, unsigned changes, const char *reason,
                      const char *info, size_t info_len)
{
    char name[160], host[160], inf[160];
    lmd_escape_str(peer->name, name, sizeof name);
    switch (kind) {
    case LMD_EV_JOIN:
        lmd_info("join \"%s\" at %s:%u (%s)", name, lmd_escape_str(peer->host, host, sizeof host),
                 peer->port, info ? lmd_escape(info, info_len, inf, sizeof inf) : "-");
        break;
    case LMD_EV_UPDATE: {
        char ch[96] = "";
        for (unsigned bit = 1; bit <= LMD_CH_LAST; bit <<= 1)
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

void lmd_agent_on_reg_event(void *ud, enum lmd_event_kind kind, const lmd_node_info *peer,
                            const lmd_node_info *old, unsigned changes, const char *reason)
{
    lmd_agent *a = ud;
    /* the registry reports only what may be seen (lmd_peers_view): our
     * own service with include_self, trusted peers under trust { require },
     * a peer that stops being trusted as a leave "untrusted" */
    if (kind != LMD_EV_JOIN && !lmd_peers_healthy(a->reg, peer->name) && a->checks) {
        /* the policy already saw it leave as unhealthy: keep checking where
         * it is now, or stop when it is gone from the network */
        if (kind == LMD_EV_UPDATE)
            lmd_checks_watch(a->checks, peer);
        else
            lmd_checks_forget(a->checks, peer->name);
        return;
    }
    if (kind != LMD_EV_LEAVE && (peer->flags & LMD_NODE_CONFLICT) && !(old && (old->flags & LMD_NODE_CONFLICT))) {
        char e[160], h[160];
        lmd_warn("\"%s\" is answered for by more than one host or port; showing %s:%u, the newest, with only its "
                 "own addresses (a stale or forged record; signed announcements tell them apart)",
                 lmd_escape_str(peer->name, e, sizeof e), lmd_escape_str(peer->host, h, sizeof h), peer->port);
    }
    /* the verdict comes later (lmd_agent_on_verdict): the worker runs the
     * hooks while the loop goes on */
    int tag = kind != LMD_EV_JOIN && lmd_peers_kept(a->reg, peer->name) ? LMD_TAG_KEPT : 0;
    if (lmd_worker_post(a->pol, kind, peer, old, changes, reason, tag) != 0) {
        char e[160];
        lmd_error("out of memory: the %s of \"%s\" does not reach the policy; it gets the fallback verdict",
                  lmd_event_kind_name(kind), lmd_escape_str(peer->name, e, sizeof e));
        lmd_agent_on_verdict(a, kind, peer, reason, tag, NULL);
    }
}

/* What a peer gets when the policy could not judge it (its worker died
 * with the event in flight, or is suspended): a new peer is kept with its
 * TXT info (the verdict of a configuration without filter or info), a
 * known one keeps the verdict it had, a leave is told if the peer was
 * kept.  Its hooks did not run, and will not. */
static void fallback(lmd_agent *a, int kind, const lmd_node_info *peer, int tag, struct lmd_verdict *v)
{
    *v = (struct lmd_verdict){.emitted = -1};
    if (kind == LMD_EV_JOIN) {
        v->keep = true;
        v->emitted = LMD_EV_JOIN;
        v->info = peer->info ? lmd_strndup(peer->info, peer->info_len ? peer->info_len : strlen(peer->info)) : NULL;
        v->info_len = v->info ? (peer->info_len ? peer->info_len : strlen(peer->info)) : 0;
    } else if (kind == LMD_EV_UPDATE) {
        v->keep = lmd_peers_kept(a->reg, peer->name);
        v->emitted = v->keep ? LMD_EV_UPDATE : -1;
    } else if (tag & LMD_TAG_KEPT) {
        v->emitted = LMD_EV_LEAVE;
    }
}

void lmd_agent_on_verdict(void *ud, int kind, const lmd_node_info *peer, const char *reason, int tag,
                          const struct lmd_verdict *given)
{
    lmd_agent *a = ud;
    struct lmd_verdict fb, v;
    if (!given) {
        fallback(a, kind, peer, tag, &fb);
        v = fb;
    } else {
        v = *given;
    }
    if (lmd_log_get_level() <= LMD_LOG_DEBUG) {
        char name[160], inf[160];
        lmd_debug("policy: %s \"%s\": %s%s, info %s", lmd_event_kind_name(kind),
                  lmd_escape_str(peer->name, name, sizeof name), v.keep ? "kept" : "not kept",
                  given ? "" : " (fallback)", v.info ? lmd_escape(v.info, v.info_len, inf, sizeof inf) : "-");
    }
    /* an update's fallback keeps the registry's verdict as it is */
    bool present = lmd_peers_has(a->reg, peer->name);
    if (kind != LMD_EV_LEAVE && present && (given || kind == LMD_EV_JOIN))
        lmd_agent_set_verdict(a, peer->name, v.keep, v.info, v.info_len);
    /* a join or update judged after the peer left: its leave is on the way
     * (or told already), nothing to tell now */
    if (v.emitted >= 0 && (kind == LMD_EV_LEAVE || present))
        lmd_agent_emit(a, peer, v.emitted, v.changes,
                       v.emitted == LMD_EV_LEAVE && kind != LMD_EV_LEAVE ? "filtered" : reason, v.info, v.info_len);
    if ((tag & LMD_TAG_LIVENESS) && kind == LMD_EV_JOIN && !v.keep && a->checks)
        lmd_checks_forget(a->checks, peer->name);
    if (!given)
        lmd_verdict_clear(&fb);
    if (a->reload_ready)
        lmd_agent_reload_step(a);
}

/* Every peer the policy may see (as lmd_agent_host_peers_all), with the
 * verdict the registry holds for it: what a restarted worker, or a
 * reload's new one, takes over. */
int lmd_agent_takeover(void *ud, lmd_node_list *peers, struct lmd_old_verdict **old)
{
    lmd_agent *a = ud;
    *old = NULL;
    lmd_node_list kept = {0};
    int rc = lmd_agent_host_peers_all(a, peers);
    if (rc == 0)
        rc = lmd_peers_snapshot(a->reg, true, &kept);
    if (rc == 0 && peers->n && !(*old = calloc(peers->n, sizeof **old)))
        rc = LMD_ENOMEM;
    for (size_t i = 0; rc == 0 && i < peers->n; i++) {
        for (size_t j = 0; j < kept.n; j++)
            if (!strcmp(kept.nodes[j].name, peers->nodes[i].name)) {
                (*old)[i].keep = true;
                /* the info shown is the policy's: carried on the peer itself */
                free(peers->nodes[i].info);
                peers->nodes[i].info = kept.nodes[j].info;
                peers->nodes[i].info_len = kept.nodes[j].info_len;
                kept.nodes[j].info = NULL;
                (*old)[i].info = peers->nodes[i].info;
                (*old)[i].info_len = peers->nodes[i].info_len;
                break;
            }
    }
    lmd_node_list_free(&kept);
    if (rc) {
        lmd_node_list_free(peers);
        free(*old);
        *old = NULL;
    }
    return rc;
}

static void on_adopted(void *ud, const char *name, const struct lmd_verdict *v);
static void on_state(void *ud, enum lmd_worker_state st);

struct lmd_worker_host lmd_agent_worker_host(lmd_agent *a)
{
    return (struct lmd_worker_host){
        .ud = a,
        .q = {.ud = a, .peers_all = lmd_agent_host_peers_all, .self = lmd_agent_host_self,
              .services = lmd_agent_host_services, .set_txt = lmd_agent_host_set_txt},
        .verdict = lmd_agent_on_verdict,
        .takeover = lmd_agent_takeover,
        .adopted = on_adopted,
        .state = on_state,
    };
}

void lmd_agent_emit(lmd_agent *a, const lmd_node_info *peer, int kind, unsigned changes, const char *reason,
                    const char *info, size_t info_len)
{
    if (lmd_agent_reload_untold(a, peer->name, kind))
        return;
    if (info && !info_len)
        info_len = strlen(info);
    log_event(peer, kind, changes, reason, info, info_len);
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
        shown.info = lmd_strndup(info, info_len);
        shown.info_len = info_len;
    }
    lmd_api_event(a->api, kind, &shown, changes, kind == LMD_EV_LEAVE ? reason : NULL);
    lmd_node_info_clear(&shown);
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
    lmd_agent_wire_confirm(a, in); /* avahi holds it now (if the wire did) */
    if (lmd_peers_seen(a->reg, in, lmd_now_mono(), lmd_now_wall()) != 0)
        lmd_warn("out of memory: an instance was dropped; it is taken up when avahi reports it again");
    lmd_agent_rearm(a);
}

static void on_removed(void *ud, const struct lmd_instance *in, enum lmd_gone why)
{
    lmd_agent *a = ud;
    if (lmd_log_get_level() <= LMD_LOG_DEBUG) {
        char name[160];
        lmd_debug("gone \"%s\" on %s/IPv%d (%s)", lmd_escape_str(in->name, name, sizeof name), in->ifname,
                  in->proto, why == LMD_GONE_GOODBYE ? "goodbye" : "expired");
    }
    lmd_agent_wire_confirm(a, in); /* avahi is the authority for leaves */
    /* LMD_ENOTFOUND: an instance never taken up (see on_resolved) */
    (void)lmd_peers_gone_at(a->reg, in, why == LMD_GONE_GOODBYE ? LMD_REASON_GOODBYE : LMD_REASON_EXPIRED,
                            lmd_now_mono());
    lmd_agent_rearm(a);
}

static void on_settled(void *ud)
{
    lmd_agent *a = ud;
    if (!a->settled_once)
        lmd_info("initial scan done: %zu service(s) on the network", lmd_peers_count(a->reg));
    else
        lmd_info("back in sync with avahi-daemon after a reconnect: %zu service(s) on the network",
                 lmd_peers_count(a->reg));
    a->settled_once = true;
}

/* ---- what the policy may ask ------------------------------------------ */

int lmd_agent_host_peers(void *ud, lmd_node_list *out)
{
    lmd_agent *a = ud;
    if (!a->reg) {
        out->n = 0;
        out->nodes = NULL;
        return 0;
    }
    return lmd_peers_snapshot(a->reg, true, out); /* what may be seen, kept */
}

int lmd_agent_host_peers_all(void *ud, lmd_node_list *out)
{
    lmd_agent *a = ud;
    out->n = 0;
    out->nodes = NULL;
    if (!a->reg)
        return 0;
    int rc = lmd_peers_snapshot(a->reg, false, out); /* what may be seen */
    /* unhealthy peers are not live */
    size_t k = 0;
    for (size_t i = 0; rc == 0 && i < out->n; i++) {
        if (lmd_peers_healthy(a->reg, out->nodes[i].name))
            out->nodes[k++] = out->nodes[i];
        else
            lmd_node_info_clear(&out->nodes[i]);
    }
    out->n = k;
    return rc;
}


const struct lmd_browse_callbacks lmd_agent_browse_callbacks = {on_resolved, on_removed, on_settled,
                                                                lmd_agent_wire_behind};

/* A takeover's verdict (reload or restart) for the peer called name. */
static void on_adopted(void *ud, const char *name, const struct lmd_verdict *v)
{
    lmd_agent *a = ud;
    const lmd_node_info *n = lmd_peers_get(a->reg, name);
    lmd_node_info peer;
    if (!n || lmd_node_info_copy(&peer, n) != 0)
        return;
    if (a->reload_told) {
        lmd_agent_reload_verdict(a->reload_told, &peer, v);
    } else {
        lmd_agent_set_verdict(a, name, v->keep, v->info, v->info_len);
        if (v->emitted >= 0)
            lmd_agent_emit(a, &peer, v->emitted, v->changes, v->emitted == LMD_EV_LEAVE ? "filtered" : NULL,
                           v->info, v->info_len);
    }
    lmd_node_info_clear(&peer);
}

static void on_state(void *ud, enum lmd_worker_state st)
{
    lmd_agent *a = ud;
    struct lmd_worker_status ws;
    lmd_worker_status(a->pol, &ws);
    if (st == LMD_WORKER_RUNNING)
        lmd_info("policy: state running (%u restart(s) so far)", ws.restarts);
    else
        lmd_warn("policy: state %s (%u restart(s); last error: %s)", lmd_worker_state_name(st), ws.restarts,
                 *ws.last_error ? ws.last_error : "none");
}
