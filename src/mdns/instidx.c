/* Finding a browser's instances without walking them all (browse.h):
 * by interface, protocol and name (every browser NEW and REMOVE), the
 * siblings of a name (every resolver answer: is another one pending?), and
 * by the pool's resolver id (every pool message).  A flood of 1,000
 * services is 2,000 instances: a walk per message was the agent's hottest
 * code of its own. */
#include "base/util.h"
#include "mdns/browse.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a: names are short */
static size_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static size_t rid_home(const struct lmd_browse *b, uint64_t rid)
{
    return (size_t)((rid * 0x9E3779B97F4A7C15ull) >> 32) & (b->n_rids - 1);
}

/* ---- by name ---------------------------------------------------------------- */

static void names_put(struct lmd_browse *b, struct inst *in)
{
    size_t k = name_hash(in->name) & (b->n_names - 1);
    in->hnext = b->names[k];
    b->names[k] = in;
}

/* Buckets for n instances (a power of two, at least n): 0 or LMD_ENOMEM,
 * when the old ones stay (longer chains, still right). */
static int names_fit(struct lmd_browse *b, size_t n)
{
    if (b->n_names >= n && b->n_names)
        return 0;
    size_t nb = b->n_names ? b->n_names : 16;
    while (nb < n)
        nb *= 2;
    struct inst **t = calloc(nb, sizeof *t);
    if (!t)
        return b->n_names ? 0 : LMD_ENOMEM;
    free(b->names);
    b->names = t;
    b->n_names = nb;
    for (struct inst *in = b->insts; in; in = in->next)
        names_put(b, in);
    return 0;
}

int lmd_inst_link(struct lmd_browse *b, struct inst *in)
{
    if (names_fit(b, b->n_insts + 1) != 0)
        return LMD_ENOMEM;
    in->prev = NULL;
    in->next = b->insts;
    if (b->insts)
        b->insts->prev = in;
    b->insts = in;
    b->n_insts++;
    names_put(b, in);
    return 0;
}

struct inst *lmd_inst_find(struct lmd_browse *b, AvahiIfIndex ifindex, AvahiProtocol proto, const char *name)
{
    if (!b->n_names)
        return NULL;
    for (struct inst *in = b->names[name_hash(name) & (b->n_names - 1)]; in; in = in->hnext)
        if (in->ifindex == ifindex && in->proto == proto && strcmp(in->name, name) == 0)
            return in;
    return NULL;
}

bool lmd_inst_sibling_pending(const struct inst *in)
{
    const struct lmd_browse *b = in->b;
    for (const struct inst *x = b->names[name_hash(in->name) & (b->n_names - 1)]; x; x = x->hnext)
        if (x != in && x->pending && !strcmp(x->name, in->name))
            return true;
    return false;
}

/* ---- by resolver id ------------------------------------------------------- */

static void rid_del(struct lmd_browse *b, uint64_t rid)
{
    if (!rid || !b->n_rids)
        return;
    size_t mask = b->n_rids - 1, s = rid_home(b, rid);
    while (b->rids[s].rid && b->rids[s].rid != rid)
        s = (s + 1) & mask;
    if (!b->rids[s].rid)
        return;
    b->rids[s].rid = 0;
    b->used_rids--;
    /* linear probing without tombstones: the entries after it move back
     * unless their home lies cyclically in (s, j] */
    for (size_t j = (s + 1) & mask; b->rids[j].rid; j = (j + 1) & mask) {
        size_t home = rid_home(b, b->rids[j].rid);
        if ((j > s && (home <= s || home > j)) || (j < s && home <= s && home > j)) {
            b->rids[s] = b->rids[j];
            b->rids[j].rid = 0;
            s = j;
        }
    }
}

static void rid_put(struct lmd_browse *b, uint64_t rid, struct inst *in)
{
    size_t mask = b->n_rids - 1, s = rid_home(b, rid);
    while (b->rids[s].rid && b->rids[s].rid != rid)
        s = (s + 1) & mask;
    if (!b->rids[s].rid)
        b->used_rids++;
    b->rids[s].rid = rid;
    b->rids[s].in = in;
}

/* Room for n ids at most half full: 0 or LMD_ENOMEM. */
static int rids_fit(struct lmd_browse *b, size_t n)
{
    if (b->n_rids >= 2 * n && b->n_rids)
        return 0;
    size_t old_n = b->n_rids, ns = old_n ? old_n : 32;
    while (ns < 2 * n)
        ns *= 2;
    struct lmd_rid_slot *old = b->rids, *t = calloc(ns, sizeof *t);
    if (!t)
        return LMD_ENOMEM;
    b->rids = t;
    b->n_rids = ns;
    b->used_rids = 0;
    for (size_t i = 0; i < old_n; i++)
        if (old[i].rid)
            rid_put(b, old[i].rid, old[i].in);
    free(old);
    return 0;
}

void lmd_inst_rids(struct inst *in)
{
    struct lmd_browse *b = in->b;
    if (in->ix_rid == in->rid && in->ix_fam == in->rid_fam)
        return;
    rid_del(b, in->ix_rid);
    rid_del(b, in->ix_fam);
    in->ix_rid = in->ix_fam = 0;
    if (rids_fit(b, b->used_rids + 2) != 0) {
        b->rid_oom = true; /* not indexed: found by the walk from now on (lmd_inst_by_rid) */
        return;
    }
    if (in->rid)
        rid_put(b, in->ix_rid = in->rid, in);
    if (in->rid_fam)
        rid_put(b, in->ix_fam = in->rid_fam, in);
}

static struct inst *by_rid_walk(lmd_mdns *m, uint64_t rid)
{
    for (struct lmd_browse *b = m->browses; b; b = b->next)
        for (struct inst *in = b->insts; in; in = in->next)
            if (in->rid == rid || (rid && in->rid_fam == rid))
                return in;
    return NULL;
}

static struct inst *by_rid(lmd_mdns *m, uint64_t rid)
{
    for (struct lmd_browse *b = m->browses; b; b = b->next) {
        if (b->rid_oom)
            return by_rid_walk(m, rid); /* an instance left out of the index: the walk, as before it */
        if (!b->n_rids)
            continue;
        size_t mask = b->n_rids - 1;
        for (size_t s = rid_home(b, rid); b->rids[s].rid; s = (s + 1) & mask)
            if (b->rids[s].rid == rid)
                return b->rids[s].in;
    }
    return NULL;
}

struct inst *lmd_inst_by_rid(lmd_mdns *m, uint64_t rid)
{
    if (!rid)
        return by_rid_walk(m, rid);
    struct inst *in = by_rid(m, rid);
#ifndef NDEBUG
    /* every change of an instance's ids is followed by lmd_inst_rids: a
     * path that forgot it shows here, in the debug builds the tests run */
    if (in != by_rid_walk(m, rid))
        abort();
#endif
    return in;
}

void lmd_inst_unlink(struct lmd_browse *b, struct inst *in)
{
    rid_del(b, in->ix_rid);
    rid_del(b, in->ix_fam);
    in->ix_rid = in->ix_fam = 0;
    if (in->prev || b->insts == in) { /* linked */
        if (in->prev)
            in->prev->next = in->next;
        else
            b->insts = in->next;
        if (in->next)
            in->next->prev = in->prev;
        b->n_insts--;
        struct inst **pp = &b->names[name_hash(in->name) & (b->n_names - 1)];
        while (*pp && *pp != in)
            pp = &(*pp)->hnext;
        if (*pp)
            *pp = in->hnext;
    }
    in->prev = in->next = in->hnext = NULL;
}

void lmd_inst_index_free(struct lmd_browse *b)
{
    free(b->names);
    free(b->rids);
    b->names = NULL;
    b->rids = NULL;
    b->n_names = b->n_rids = b->used_rids = 0;
}
