/* What consumers may see of a peer (peers.h, "The verdict"): the one
 * function that decides it, the verifier's answers it is made of, and the
 * events that follow when it turns. */
#include "registry/internal.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REASON_UNTRUSTED "untrusted"

enum lmd_view lmd_peers_view(const lmd_peers *r, const struct lmd_peer *p)
{
    unsigned f = lmd_peers_flags(p);
    if (r->cfg.require_trusted && !(f & (LMD_NODE_TRUSTED | LMD_NODE_OWN)))
        return LMD_VIEW_NONE;
    if ((f & LMD_NODE_OWN) && r->cfg.hide_own)
        return LMD_VIEW_NETWORK;
    return LMD_VIEW_PEER;
}

void lmd_peers_set_verifier(lmd_peers *r, lmd_peers_verify_cb verify, lmd_peers_judged_cb judged)
{
    if (verify != r->verify)
        for (size_t i = 0; i < r->n; i++) {
            /* another verifier (or none): no verdict stands */
            struct lmd_peer *p = r->peers[i];
            p->trust = -1;
            p->trust_until = p->trust_due = -1;
            p->signer[0] = '\0';
        }
    r->verify = verify;
    r->judged = judged;
}

bool lmd_peers_fewer_addrs(const struct lmd_peer *p, const lmd_node_info *before, const lmd_node_info *cur,
                           unsigned ch, double now)
{
    if (p->trust != 0 || (p->trust_until >= 0 && p->trust_until <= now) || ch != LMD_CH_ADDRS ||
        !lmd_streq(before->type, cur->type) || !lmd_streq(before->domain, cur->domain))
        return false;
    for (size_t i = 0; i < cur->n_addrs; i++) {
        size_t k = 0;
        while (k < before->n_addrs && strcmp(cur->addrs[i].addr, before->addrs[k].addr) != 0)
            k++;
        if (k == before->n_addrs)
            return false; /* an address new to the verifier */
    }
    return true;
}

bool lmd_peers_ask(lmd_peers *r, struct lmd_peer *p, const lmd_node_info *view, double wall,
                   struct lmd_peers_verdict *v)
{
    if (!r->verify)
        return false;
    lmd_node_info built;
    if (!view && lmd_peers_build(p, &built) != 0)
        return false; /* out of memory: judged when it next changes, or at its deadline */
    memset(v, 0, sizeof *v);
    r->verify(r->ud, view ? view : &built, wall, v);
    if (!view)
        lmd_node_info_clear(&built);
    return true;
}

/* A trusted verdict: the host, port and source that speak now are the
 * ones the merge prefers from now on (merge.c). */
static void prefer_speaker(struct lmd_peer *p)
{
    const struct lmd_rinst *s = lmd_peers_speaker(p);
    char *h = s && lmd_ri_host(s) ? lmd_strdup(lmd_ri_host(s)) : NULL;
    if (!h)
        return; /* out of memory: the last preferred stays */
    free(p->prefer_host);
    p->prefer_host = h;
    p->prefer_port = s->port;
    p->prefer_dns = p->speaker_dns;
}

void lmd_peers_take(lmd_peers *r, struct lmd_peer *p, const struct lmd_peers_verdict *v, double now, double wall)
{
    int before = p->trust;
    p->trust = v->status;
    /* the clock alone may turn it then: judged again at that deadline
     * (never sooner than a millisecond: a deadline met with a clock a
     * hair behind must not spin) */
    double in = v->until - wall;
    p->trust_until = p->trust_due = v->until > 0 ? now + (in > 0.001 ? in : 0.001) : -1;
    snprintf(p->signer, sizeof p->signer, "%s", v->status == 0 ? v->signer : "");
    if (v->status == 0)
        prefer_speaker(p);
    /* a newer signature than a peer of the same name but for case shows
     * (the verifier keeps the newest per name, as DNS compares names):
     * that one is judged again, at once (the next tick, after this peer's
     * events) */
    for (size_t i = 0; v->newest && i < r->n; i++) {
        struct lmd_peer *q = r->peers[i];
        if (q != p && q->trust >= 0 && !strcasecmp(q->name, p->name) &&
            (q->trust_due < 0 || q->trust_due > now))
            q->trust_due = now;
    }
    lmd_node_info view;
    if (v->status != before && r->judged && lmd_peers_build(p, &view) == 0) {
        r->judged(r->ud, &view, v, false);
        lmd_node_info_clear(&view);
    }
}

int lmd_peers_set_trust(lmd_peers *r, const char *name, int status, const char *signer)
{
    struct lmd_peer *p = lmd_peers_lookup(r, name);
    if (!p)
        return LMD_ENOTFOUND;
    int before = p->trust;
    p->trust = status;
    p->trust_until = p->trust_due = -1;
    const struct lmd_rinst *s = lmd_peers_speaker(p);
    if (status == 0 && s && lmd_ri_host(s))
        prefer_speaker(p);
    snprintf(p->signer, sizeof p->signer, "%s", status == 0 && signer ? signer : "");
    return before;
}

void lmd_peers_report(lmd_peers *r, struct lmd_peer *p, lmd_node_info *old, double now)
{
    bool seen = p->joined && lmd_peers_view(r, p) == LMD_VIEW_PEER;
    if (seen != p->shown) {
        /* a join speaks for everything before it; a leave ends it all */
        if (old)
            lmd_node_info_clear(old);
        if (p->pend_old) {
            lmd_node_info_clear(p->pend_old);
            free(p->pend_old);
            p->pend_old = NULL;
        }
        p->shown = seen;
        if (r->ev) {
            lmd_node_info view;
            bool owned = lmd_peers_build(p, &view) == 0;
            if (!owned)
                lmd_peers_build_min(p, &view); /* out of memory: its name at least */
            r->ev(r->ud, seen ? LMD_EV_JOIN : LMD_EV_LEAVE, &view, NULL, 0, seen ? NULL : REASON_UNTRUSTED);
            if (owned)
                lmd_node_info_clear(&view);
        }
        return;
    }
    if (!old)
        return;
    lmd_node_info cur;
    if (seen && lmd_peers_build(p, &cur) == 0) {
        if (lmd_peers_diff(old, &cur))
            lmd_peers_changed(r, p, &cur, old, now);
        else
            lmd_node_info_clear(old);
        lmd_node_info_clear(&cur);
        return;
    }
    lmd_node_info_clear(old);
}

void lmd_peers_rejudge(lmd_peers *r, double now, double wall)
{
    r->wall_offset = wall - now;
    /* callbacks may add and remove peers: by name, one at a time */
    char **names = r->n ? calloc(r->n, sizeof *names) : NULL;
    size_t n = 0;
    for (size_t i = 0; names && i < r->n; i++)
        if ((names[n] = lmd_strdup(r->peers[i]->name)))
            n++;
    for (size_t i = 0; i < n; i++) {
        struct lmd_peer *p = lmd_peers_lookup(r, names[i]);
        struct lmd_peers_verdict v;
        if (p && lmd_peers_ask(r, p, NULL, wall, &v))
            lmd_peers_take(r, p, &v, now, wall);
        if (p)
            lmd_peers_report(r, p, NULL, now);
        free(names[i]);
    }
    free(names);
}
