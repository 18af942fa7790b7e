/* Peers that come back (a re-registered service, a restarted agent's): the
 * registry remembers which instances (interface and protocol) a peer had
 * when it left, and a new peer of that name waits for them as for those
 * still resolving (internal.h: lmd_rejoin_*).  Without it, its IPv4
 * instance could resolve, complete, a millisecond before avahi reported
 * its IPv6 one, and the join came with one address and the other as an
 * update 50 ms later.  Bounded: the last LMD_REJOIN_MEMORY names, the
 * first LMD_REJOIN_KEYS instances of each; waiting is bounded by settle. */
#include "registry/internal.h"
#include "base/util.h"

#include <stdlib.h>
#include <string.h>

static bool has_key(const struct lmd_inst_key *keys, size_t n, int ifindex, int proto)
{
    for (size_t i = 0; i < n; i++)
        if (keys[i].ifindex == ifindex && keys[i].proto == proto)
            return true;
    return false;
}

void lmd_rejoin_note(struct lmd_peer *p, int ifindex, int proto)
{
    if (p->n_had < LMD_REJOIN_KEYS && !has_key(p->had, p->n_had, ifindex, proto))
        p->had[p->n_had++] = (struct lmd_inst_key){ifindex, proto};
}

void lmd_rejoin_remember(lmd_peers *r, const struct lmd_peer *p)
{
    struct lmd_rejoin *slot = NULL;
    for (size_t i = 0; i < LMD_REJOIN_MEMORY && !slot; i++)
        if (r->gone[i].name && !strcmp(r->gone[i].name, p->name))
            slot = &r->gone[i];
    if (!slot) {
        slot = &r->gone[r->gone_next];
        r->gone_next = (r->gone_next + 1) % LMD_REJOIN_MEMORY;
        free(slot->name);
        if (!(slot->name = lmd_strdup(p->name))) /* out of memory: not remembered */
            return;
    }
    memcpy(slot->keys, p->had, p->n_had * sizeof *p->had);
    slot->n = p->n_had;
}

void lmd_rejoin_recall(lmd_peers *r, struct lmd_peer *p)
{
    for (size_t i = 0; i < LMD_REJOIN_MEMORY; i++) {
        struct lmd_rejoin *g = &r->gone[i];
        if (!g->name || strcmp(g->name, p->name) != 0)
            continue;
        for (size_t k = 0; k < g->n; k++)
            lmd_rejoin_note(p, g->keys[k].ifindex, g->keys[k].proto);
        free(g->name);
        g->name = NULL;
        return;
    }
}

bool lmd_rejoin_expecting(const struct lmd_peer *p)
{
    for (size_t k = 0; k < p->n_had; k++) {
        bool there = false;
        for (size_t i = 0; i < p->n_insts && !there; i++)
            there = p->insts[i].ifindex == p->had[k].ifindex && p->insts[i].proto == p->had[k].proto;
        if (!there)
            return true;
    }
    return false;
}

void lmd_rejoin_free(lmd_peers *r)
{
    for (size_t i = 0; i < LMD_REJOIN_MEMORY; i++) {
        free(r->gone[i].name);
        r->gone[i].name = NULL;
    }
}
