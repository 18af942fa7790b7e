/* The peer table seen from outside (see peers.h): snapshots, lookups, and
 * the marks the agent sets on peers (verdict, health, trust). */
#include "registry/internal.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>

size_t lmd_peers_find(const lmd_peers *r, const char *name, bool *found)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(r->peers[mid]->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

struct lmd_peer *lmd_peers_lookup(const lmd_peers *r, const char *name)
{
    bool found;
    size_t i = lmd_peers_find(r, name, &found);
    return found ? r->peers[i] : NULL;
}

int lmd_peers_set_verdict(lmd_peers *r, const char *name, bool kept, const char *info, size_t info_len)
{
    struct lmd_peer *p = lmd_peers_lookup(r, name);
    if (!p)
        return LMD_ENOTFOUND;
    size_t len = info ? (info_len ? info_len : strlen(info)) : 0;
    char *copy = info ? lmd_strndup(info, len) : NULL;
    if (info && !copy)
        return LMD_ENOMEM;
    free(p->pinfo);
    p->pinfo = copy;
    p->pinfo_len = len;
    p->kept = kept;
    return 0;
}

bool lmd_peers_kept(const lmd_peers *r, const char *name)
{
    struct lmd_peer *p = lmd_peers_lookup(r, name);
    return p && p->shown && p->kept; /* a peer nobody may see is kept by nobody */
}

int lmd_peers_set_healthy(lmd_peers *r, const char *name, bool healthy)
{
    struct lmd_peer *p = lmd_peers_lookup(r, name);
    if (!p)
        return LMD_ENOTFOUND;
    p->unhealthy = !healthy;
    return 0;
}

bool lmd_peers_healthy(const lmd_peers *r, const char *name)
{
    struct lmd_peer *p = lmd_peers_lookup(r, name);
    return p && !p->unhealthy;
}

static int snapshot(const lmd_peers *r, bool kept_only, bool unreported, lmd_node_list *out);

int lmd_peers_snapshot(const lmd_peers *r, bool kept_only, lmd_node_list *out)
{
    return snapshot(r, kept_only, false, out);
}

int lmd_peers_snapshot_network(const lmd_peers *r, lmd_node_list *out)
{
    return snapshot(r, false, true, out);
}

static int snapshot(const lmd_peers *r, bool kept_only, bool unreported, lmd_node_list *out)
{
    out->n = 0;
    out->nodes = r->n ? calloc(r->n, sizeof *out->nodes) : NULL;
    if (r->n && !out->nodes)
        return LMD_ENOMEM;
    for (size_t i = 0; i < r->n; i++) {
        const struct lmd_peer *p = r->peers[i];
        /* the verdict: peers consumers were told of (lmd_peers_report),
         * or for the network listing, all but what it keeps out */
        if (unreported ? lmd_peers_view(r, p) == LMD_VIEW_NONE : !p->shown)
            continue;
        if (kept_only && (!p->kept || p->unhealthy))
            continue;
        lmd_node_info *n = &out->nodes[out->n];
        if (lmd_peers_build(p, n) != 0) {
            lmd_node_list_free(out);
            return LMD_ENOMEM;
        }
        out->n++;
        if (kept_only && p->pinfo) {
            char *info = lmd_strndup(p->pinfo, p->pinfo_len);
            if (!info) {
                lmd_node_list_free(out);
                return LMD_ENOMEM;
            }
            free(n->info);
            n->info = info;
            n->info_len = p->pinfo_len;
        }
    }
    return 0;
}

const lmd_node_info *lmd_peers_get(lmd_peers *r, const char *name)
{
    struct lmd_peer *p = lmd_peers_lookup(r, name);
    if (!p)
        return NULL;
    /* built when asked, held until the next call: an idle peer holds no
     * view of itself */
    if (r->has_got)
        lmd_node_info_clear(&r->got);
    r->has_got = lmd_peers_build(p, &r->got) == 0;
    if (!r->has_got)
        lmd_peers_build_min(p, &r->got); /* out of memory: its name at least (borrowed) */
    return &r->got;
}

bool lmd_peers_has(const lmd_peers *r, const char *name) { return lmd_peers_lookup(r, name) != NULL; }

size_t lmd_peers_count(const lmd_peers *r) { return r->n; }

void lmd_peers_foreach(const lmd_peers *r, void (*fn)(void *ud, const lmd_node_info *peer),
                          void *ud)
{
    for (size_t i = 0; i < r->n; i++) {
        lmd_node_info view;
        if (!r->peers[i]->shown || lmd_peers_build(r->peers[i], &view) != 0)
            continue;
        fn(ud, &view);
        lmd_node_info_clear(&view);
    }
}
