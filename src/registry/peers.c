/* The peer table (see peers.h).  Peers live in an array sorted by
 * name; a LAN has hundreds of peers at most and changes are rare, so binary
 * search and memmove are plenty and keep snapshots in a stable order. */
#include "registry/internal.h"
#include "base/txt.h"
#include "base/util.h"

#include <math.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>

static void settle_one(lmd_peers *r, struct lmd_peer *p);

const char *lmd_event_kind_name(int kind)
{
    return kind == LMD_EV_JOIN ? "join" : kind == LMD_EV_UPDATE ? "update" : "leave";
}

static const struct {
    const char *name;
    bool by_policy;
} change_defs[LMD_CH_COUNT] = {
#define LMD_CH_DEF_(id, name, by) [LMD_CH_##id##_INDEX] = {#name, LMD_CH_BY_##by##_},
#define LMD_CH_BY_REGISTRY_ false
#define LMD_CH_BY_POLICY_ true
    LMD_CHANGES(LMD_CH_DEF_)
#undef LMD_CH_DEF_
#undef LMD_CH_BY_REGISTRY_
#undef LMD_CH_BY_POLICY_
};

static int change_index(unsigned bit)
{
    for (int i = 0; i < LMD_CH_COUNT; i++)
        if (bit == 1u << i)
            return i;
    return -1;
}

const char *lmd_change_name(unsigned bit)
{
    int i = change_index(bit);
    return i < 0 ? "?" : change_defs[i].name;
}

bool lmd_change_by_policy(unsigned bit)
{
    int i = change_index(bit);
    return i >= 0 && change_defs[i].by_policy;
}

int lmd_peers_new(const struct lmd_peers_config *cfg, lmd_peers_event_cb ev, lmd_peers_confirm_cb confirm,
                  void *ud, lmd_peers **out, lmd_err *err)
{
    lmd_peers *r = *out = calloc(1, sizeof *r);
    if (!r)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    r->ev = ev;
    r->confirm = confirm;
    r->ud = ud;
    lmd_peers_configure(r, cfg, 0);
    return 0;
}

static void peer_free(struct lmd_peer *p)
{
    for (size_t i = 0; i < p->n_insts; i++)
        free(p->insts[i].data);
    free(p->insts);
    free(p->pinfo);
    free(p->prefer_host);
    if (p->pend_old) {
        lmd_node_info_clear(p->pend_old);
        free(p->pend_old);
    }
    free(p->name);
    free(p);
}

void lmd_peers_free(lmd_peers *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        peer_free(r->peers[i]);
    free(r->peers);
    lmd_rejoin_free(r);
    for (size_t i = 0; i < r->n_strs; i++)
        free(r->strs[i]);
    free(r->strs);
    if (r->has_got)
        lmd_node_info_clear(&r->got);
    free(r);
}

void lmd_peers_configure(lmd_peers *r, const struct lmd_peers_config *cfg, double now)
{
    struct lmd_peers_config was = r->cfg;
    if (cfg)
        r->cfg = *cfg;
    if (r->cfg.confirm_grace <= 0)
        r->cfg.confirm_grace = 10;
    if (was.ttl != r->cfg.ttl)
        for (size_t i = 0; i < r->n; i++) {
            r->peers[i]->confirming = false;
            r->peers[i]->deadline = r->cfg.ttl > 0 ? now + r->cfg.ttl : -1;
        }
    if (was.require_trusted != r->cfg.require_trusted || was.hide_own != r->cfg.hide_own)
        for (size_t i = 0; i < r->n; i++) /* what may be seen changed: joins and leaves */
            lmd_peers_report(r, r->peers[i], NULL, now);
}

/* Note who speaks for p after its instances changed, and judge what it
 * shows when that is new to the verifier (anything shown changed since
 * before, or never judged): one verification per distinct record, not per
 * resolver answer. */
static int remerge(lmd_peers *r, struct lmd_peer *p, const lmd_node_info *before, double now, double wall)
{
    lmd_peers_merge(p);
    if (!r->verify)
        return 0;
    lmd_node_info cur;
    int rc = lmd_peers_build(p, &cur);
    if (rc)
        return rc;
    struct lmd_peers_verdict v;
    unsigned ch = before ? lmd_peers_diff(before, &cur) : 0;
    if ((p->trust < 0 || !before || (ch && !lmd_peers_fewer_addrs(p, before, &cur, ch, now))) &&
        lmd_peers_ask(r, p, &cur, wall, &v))
        lmd_peers_take(r, p, &v, now, wall);
    lmd_node_info_clear(&cur);
    return 0;
}

unsigned lmd_peers_diff(const lmd_node_info *a, const lmd_node_info *b)
{
    unsigned ch = 0;
    if (!lmd_streq(a->host, b->host))
        ch |= LMD_CH_HOST;
    if (a->port != b->port)
        ch |= LMD_CH_PORT;
    if (!lmd_txt_equal(&a->txt, &b->txt))
        ch |= LMD_CH_TXT;
    if ((a->flags ^ b->flags) & (LMD_NODE_MDNS | LMD_NODE_DNS))
        ch |= LMD_CH_SOURCES;
    if (a->n_addrs != b->n_addrs)
        ch |= LMD_CH_ADDRS;
    else
        for (size_t i = 0; i < a->n_addrs; i++)
            if (strcmp(a->addrs[i].addr, b->addrs[i].addr) != 0)
                ch |= LMD_CH_ADDRS;
    return ch;
}

static void touch(lmd_peers *r, struct lmd_peer *p, double now, double wall)
{
    p->last_seen = wall;
    p->confirming = false;
    /* whole seconds: peers seen within the same second share one wake-up */
    p->deadline = r->cfg.ttl > 0 ? ceil(now + r->cfg.ttl) : -1;
}

static int join(lmd_peers *r, const struct lmd_instance *in, double now, double wall, size_t at)
{
    r->wall_offset = wall - now;
    r->last_now = now;
    struct lmd_peer *p = calloc(1, sizeof *p);
    if (!p)
        return LMD_ENOMEM;
    p->kept = true;
    p->trust = -1;
    p->insts = calloc(1, sizeof *p->insts);
    p->name = lmd_strdup(in->name);
    p->type = lmd_peers_intern(r, in->type);
    p->domain = lmd_peers_intern(r, in->domain);
    p->trust_until = p->trust_due = -1;
    p->first_seen = p->last_seen = wall;
    if (!p->insts || !p->name || !p->type || !p->domain || lmd_rinst_fill(r, &p->insts[0], in, ++r->seq) != 0 ||
        (p->n_insts = 1, remerge(r, p, NULL, now, wall) != 0)) {
        peer_free(p);
        return LMD_ENOMEM;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct lmd_peer **np = realloc(r->peers, cap * sizeof *np);
        if (!np) {
            peer_free(p);
            return LMD_ENOMEM;
        }
        r->peers = np;
        r->cap = cap;
    }
    memmove(&r->peers[at + 1], &r->peers[at], (r->n - at) * sizeof *r->peers);
    r->peers[at] = p;
    r->n++;
    touch(r, p, now, wall);
    p->hold = -1;
    lmd_rejoin_recall(r, p);
    lmd_rejoin_note(p, in->ifindex, in->proto);
    if (r->cfg.settle > 0 && (!in->complete || lmd_rejoin_expecting(p))) {
        /* wait for the other instances (IPv6, other interfaces) the source
         * is still resolving, or that a peer seen again had, so that a
         * join is one event: until the last is resolved (lmd_peers_seen),
         * at most the settle window */
        p->hold = now + r->cfg.settle;
        return 0;
    }
    p->joined = true;
    lmd_peers_report(r, p, NULL, now);
    return 0;
}

/* A change to a shown peer: report it now, or settle it with the changes
 * that follow within the window.  Takes old. */
void lmd_peers_changed(lmd_peers *r, struct lmd_peer *p, const lmd_node_info *cur, lmd_node_info *old,
                       double now)
{
    if (!p->shown) {
        lmd_node_info_clear(old);
        return;
    }
    if (r->cfg.settle > 0) {
        if (p->pend_old) {
            lmd_node_info_clear(old);
            return;
        }
        p->pend_old = malloc(sizeof *p->pend_old);
        if (p->pend_old) {
            *p->pend_old = *old;
            p->hold = now + r->cfg.settle;
            return;
        }
    }
    unsigned ch = lmd_peers_diff(old, cur);
    if (ch && r->ev)
        r->ev(r->ud, LMD_EV_UPDATE, cur, old, ch, NULL);
    lmd_node_info_clear(old);
}

/* Whether p shows a trusted verdict the clock has not ended at now. */
static bool trusted_now(const lmd_peers *r, const struct lmd_peer *p, double now)
{
    return r->verify && p->trust == 0 && (p->trust_until < 0 || p->trust_until > now);
}

int lmd_peers_seen(lmd_peers *r, const struct lmd_instance *in, double now, double wall)
{
    if (!in->name || !in->type || !in->domain)
        return LMD_EINVAL;
    if ((in->flags & LMD_NODE_OWN) && !r->cfg.include_self)
        return 0;
    bool found;
    size_t at = lmd_peers_find(r, in->name, &found);
    if (!found)
        return join(r, in, now, wall, at);
    struct lmd_peer *p = r->peers[at];
    r->wall_offset = wall - now;
    r->last_now = now;
    struct lmd_rinst *ri = lmd_rinst_find(p, in), kept = {0};
    bool same = ri && lmd_rinst_same(r, ri, in);
    const struct lmd_rinst *speaker = same ? lmd_peers_speaker(p) : NULL;
    if (same && (ri == speaker || lmd_peers_alike(ri, speaker)) && !(r->verify && p->trust < 0)) {
        /* a refresh of what speaks for the peer (or of an instance that
         * would show the same: the IPv6 one of an IPv4 one, in turns):
         * nothing it shows changes, nothing to build, copy or verify; a
         * goodbye held for the instance was not its own */
        ri->seq = ++r->seq;
        ri->held_until = -1;
        touch(r, p, now, wall);
        if (!p->joined && p->hold >= 0 && in->complete && !lmd_rejoin_expecting(p))
            settle_one(r, p);
        return 0;
    }
    lmd_node_info old, cur;
    if (lmd_peers_build(p, &old) != 0)
        return LMD_ENOMEM;
    bool was_trusted = trusted_now(r, p, now);
    bool added = !ri;
    if (added) {
        struct lmd_rinst *ni = realloc(p->insts, (p->n_insts + 1) * sizeof *ni);
        if (!ni) {
            lmd_node_info_clear(&old);
            return LMD_ENOMEM;
        }
        p->insts = ni;
        ri = &p->insts[p->n_insts++];
        memset(ri, 0, sizeof *ri);
    } else {
        /* what it held, should the new record be refused */
        kept = *ri;
        if (!same)
            ri->data = NULL;
    }
    int rc = 0;
    if (same) { /* the same record, newer: it may speak now */
        ri->seq = ++r->seq;
        ri->held_until = -1;
    } else {
        rc = lmd_rinst_fill(r, ri, in, ++r->seq);
    }
    if (rc == 0) {
        lmd_peers_merge(p);
        rc = lmd_peers_build(p, &cur);
    }
    unsigned ch = rc == 0 ? lmd_peers_diff(&old, &cur) : 0;
    struct lmd_peers_verdict v = {0};
    bool asked = rc == 0 && (p->trust < 0 || ch) && lmd_peers_ask(r, p, &cur, wall, &v);
    if (rc == 0)
        lmd_node_info_clear(&cur);
    if (rc || (asked && was_trusted && v.status != 0)) {
        /* a trusted peer is never displaced by an untrusted record (a
         * forgery, a replayed older state, an unsigned address): the
         * instance keeps what it held, and this is no sighting */
        if (!same)
            free(ri->data);
        if (added)
            p->n_insts--;
        else
            *ri = kept;
        lmd_peers_merge(p); /* what showed, shown again (trusted: its verdict stands) */
        if (rc == 0 && r->judged)
            r->judged(r->ud, &old, &v, true);
        lmd_node_info_clear(&old);
        return rc;
    }
    if (added)
        lmd_rejoin_note(p, in->ifindex, in->proto);
    else if (!same)
        free(kept.data);
    if (asked)
        lmd_peers_take(r, p, &v, now, wall);
    touch(r, p, now, wall);
    if (!ch && !asked)
        lmd_node_info_clear(&old); /* nothing shown changed: only a turn of what may be seen */
    lmd_peers_report(r, p, ch || asked ? &old : NULL, now);
    /* a new peer's last pending instance: its join, now, with them all */
    if (!p->joined && p->hold >= 0 && in->complete && !lmd_rejoin_expecting(p))
        settle_one(r, p);
    return 0;
}

static int drop_instance(lmd_peers *r, size_t at, struct lmd_rinst *ri, const char *reason, double now);

/* The view to tell consumers of p with: built, or when out of memory its
 * name alone (*owned false: not to be cleared). */
static void view_for_event(const struct lmd_peer *p, lmd_node_info *out, bool *owned)
{
    *owned = lmd_peers_build(p, out) == 0;
    if (!*owned)
        lmd_peers_build_min(p, out);
}

static void leave(lmd_peers *r, size_t at, const char *reason)
{
    struct lmd_peer *p = r->peers[at];
    /* reported while still listed (get/healthy answer for it); a peer that
     * was never shown leaves without a word; pending changes die with it */
    if (p->shown && r->ev) {
        lmd_node_info view;
        bool owned;
        view_for_event(p, &view, &owned);
        r->ev(r->ud, LMD_EV_LEAVE, &view, NULL, 0, reason);
        if (owned)
            lmd_node_info_clear(&view);
    }
    lmd_rejoin_remember(r, p);
    bool found;
    at = lmd_peers_find(r, p->name, &found); /* the callback may have moved things */
    if (found && r->peers[at] == p) {
        memmove(&r->peers[at], &r->peers[at + 1], (r->n - at - 1) * sizeof *r->peers);
        r->n--;
    }
    peer_free(p);
}

/* Ask the confirm callback about p (ifindex, proto: 0 for the whole peer). */
static void ask_confirm(lmd_peers *r, struct lmd_peer *p, int ifindex, int proto)
{
    if (!r->confirm)
        return;
    lmd_node_info view;
    bool owned;
    view_for_event(p, &view, &owned);
    r->confirm(r->ud, &view, ifindex, proto);
    if (owned)
        lmd_node_info_clear(&view);
}

int lmd_peers_gone(lmd_peers *r, const struct lmd_instance *in, const char *reason)
{
    return lmd_peers_gone_at(r, in, reason, -1);
}

int lmd_peers_gone_at(lmd_peers *r, const struct lmd_instance *in, const char *reason,
                                  double now)
{
    bool found;
    size_t at = lmd_peers_find(r, in->name, &found);
    if (!found)
        return LMD_ENOTFOUND;
    struct lmd_peer *p = r->peers[at];
    struct lmd_rinst *ri = lmd_rinst_find(p, in);
    if (!ri)
        return LMD_ENOTFOUND;
    /* a goodbye over DNS is a deletion in a zone whose reads are
     * TSIG-verified (src/wide/): only a key holder can make it */
    bool over_dns = ri->ifindex == 0 && !strcmp(ri->ifname, "dns");
    if (r->cfg.goodbye_hold > 0 && p->shown && now >= 0 && !over_dns && lmd_streq(reason, LMD_REASON_GOODBYE)) {
        /* a goodbye anyone on the link could have forged, for a peer
         * consumers see: ask, and wait */
        if (ri->held_until >= 0)
            return 0;
        /* each instance asked for on its own interface and protocol: one
         * lookup for the name answers on one of them only, and may come
         * back before the browser has reported the others gone */
        ri->held_until = now + r->cfg.goodbye_hold;
        ask_confirm(r, p, ri->ifindex, ri->proto);
        return 0;
    }
    return drop_instance(r, at, ri, reason, now);
}

/* The instance is gone: the peer leaves with it if it was the last. */
static int drop_instance(lmd_peers *r, size_t at, struct lmd_rinst *ri, const char *reason, double now)
{
    struct lmd_peer *p = r->peers[at];
    if (p->n_insts == 1) {
        leave(r, at, reason);
        return 0;
    }
    lmd_node_info old;
    if (lmd_peers_build(p, &old) != 0)
        return LMD_ENOMEM;
    free(ri->data);
    *ri = p->insts[--p->n_insts];
    double t = now < 0 ? r->last_now : now;
    int rc = remerge(r, p, &old, t, t + r->wall_offset);
    if (rc) {
        lmd_node_info_clear(&old);
        return rc;
    }
    if (now < 0) { /* no clock given: report at once */
        double settle = r->cfg.settle;
        r->cfg.settle = 0;
        lmd_peers_report(r, p, &old, 0);
        r->cfg.settle = settle;
    } else {
        lmd_peers_report(r, p, &old, now);
    }
    return 0;
}

double lmd_peers_next_deadline(const lmd_peers *r)
{
    double next = -1;
    for (size_t i = 0; i < r->n; i++) {
        double d = r->peers[i]->deadline, h = r->peers[i]->hold, t = r->peers[i]->trust_due;
        if (d >= 0 && (next < 0 || d < next))
            next = d;
        if (t >= 0 && (next < 0 || t < next))
            next = t;
        if (h >= 0 && (next < 0 || h < next))
            next = h;
        for (size_t k = 0; k < r->peers[i]->n_insts; k++) {
            double g = r->peers[i]->insts[k].held_until;
            if (g >= 0 && (next < 0 || g < next))
                next = g;
        }
    }
    return next;
}

/* End of a settle window: the join, or the changes, as one event. */
static void settle_one(lmd_peers *r, struct lmd_peer *p)
{
    p->hold = -1;
    if (!p->joined) {
        p->joined = true;
        lmd_peers_report(r, p, NULL, -1);
        return;
    }
    lmd_node_info *old = p->pend_old;
    p->pend_old = NULL;
    if (!old)
        return;
    lmd_node_info cur;
    if (lmd_peers_build(p, &cur) == 0) { /* out of memory: the next change tells it */
        unsigned ch = lmd_peers_diff(old, &cur);
        if (ch && r->ev)
            r->ev(r->ud, LMD_EV_UPDATE, &cur, old, ch, NULL);
        lmd_node_info_clear(&cur);
    }
    lmd_node_info_clear(old);
    free(old);
}

void lmd_peers_tick(lmd_peers *r, double now)
{
    lmd_peers_tick_at(r, now, now + r->wall_offset);
}

#define TICK_MAX 128

void lmd_peers_tick_at(lmd_peers *r, double now, double wall)
{
    r->wall_offset = wall - now;
    r->last_now = now;
    /* Callbacks may add and remove peers: collect names first.  At most
     * TICK_MAX a call: a burst (a thousand joins from the wire, settling in
     * the same 50 ms) is reported over several loop turns, the rest still
     * due (lmd_peers_next_deadline: now), so the API is answered between. */
    char **due = NULL;
    size_t n = 0;
    for (size_t i = 0; i < r->n && n < TICK_MAX; i++) {
        struct lmd_peer *p = r->peers[i];
        bool held = p->hold >= 0 && p->hold <= now;
        bool gone = p->trust_due >= 0 && p->trust_due <= now; /* its verdict, due again */
        for (size_t k = 0; k < p->n_insts; k++)
            gone = gone || (p->insts[k].held_until >= 0 && p->insts[k].held_until <= now);
        if (!held && !gone && (p->deadline < 0 || p->deadline > now))
            continue;
        char **nd = realloc(due, (n + 1) * sizeof *nd);
        if (!nd)
            break;
        due = nd;
        if (!(due[n] = lmd_strdup(p->name)))
            break;
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        bool found;
        size_t at = lmd_peers_find(r, due[i], &found);
        if (found && r->peers[at]->trust_due >= 0 && r->peers[at]->trust_due <= now) {
            /* what it shows has not changed; the clock has */
            struct lmd_peer *p = r->peers[at];
            struct lmd_peers_verdict v;
            p->trust_due = -1;
            if (lmd_peers_ask(r, p, NULL, wall, &v))
                lmd_peers_take(r, p, &v, now, wall);
            lmd_peers_report(r, p, NULL, now);
            at = lmd_peers_find(r, due[i], &found);
        }
        if (found && r->peers[at]->hold >= 0 && r->peers[at]->hold <= now)
            settle_one(r, r->peers[at]);
        at = lmd_peers_find(r, due[i], &found);
        /* held goodbyes nobody answered for: gone indeed */
        for (size_t k = 0; found && k < r->peers[at]->n_insts;) {
            struct lmd_rinst *ri = &r->peers[at]->insts[k];
            if (ri->held_until < 0 || ri->held_until > now) {
                k++;
                continue;
            }
            bool last = r->peers[at]->n_insts == 1;
            if (drop_instance(r, at, ri, LMD_REASON_GOODBYE, now) != 0) {
                /* out of memory: not dropped; tried again in a second,
                 * not in a loop here */
                ri->held_until = now + 1;
                k++;
                continue;
            }
            if (last) {
                found = false;
                break;
            }
            /* the events may have moved the peers */
            at = lmd_peers_find(r, due[i], &found);
            k = 0;
        }
        if (!found) {
            free(due[i]);
            continue;
        }
        if (found && r->peers[at]->deadline >= 0 && r->peers[at]->deadline <= now) {
            struct lmd_peer *p = r->peers[at];
            if (p->confirming || !r->confirm) {
                leave(r, at, LMD_REASON_EXPIRED);
            } else {
                p->confirming = true;
                p->deadline = now + r->cfg.confirm_grace;
                ask_confirm(r, p, 0, 0);
            }
        }
        free(due[i]);
    }
    free(due);
}
