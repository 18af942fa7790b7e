/* A peer's instances as the table holds them (internal.h): filled from a
 * resolver's answer in one allocation each, compared with a new answer,
 * found by place; the strings every peer shares, held once. */
#include "registry/internal.h"
#include "base/txt.h"
#include "base/util.h"

#include <stdio.h>
#include <stdlib.h>

const char *lmd_peers_intern(lmd_peers *r, const char *d)
{
    for (size_t i = 0; i < r->n_strs; i++)
        if (!strcmp(r->strs[i], d))
            return r->strs[i];
    if (r->n_strs == r->cap_strs) {
        size_t cap = r->cap_strs ? 2 * r->cap_strs : 8;
        char **ns = realloc(r->strs, cap * sizeof *ns);
        if (!ns)
            return NULL;
        r->strs = ns;
        r->cap_strs = cap;
    }
    char *c = lmd_strdup(d);
    if (c)
        r->strs[r->n_strs++] = c;
    return c;
}

/* Whether the TXT record in holds is the one ri holds (as wire bytes). */
static bool txt_same(const struct lmd_rinst *ri, const lmd_txt *txt)
{
    size_t at = 0;
    const unsigned char *w = lmd_ri_txt(ri);
    for (size_t i = 0; txt && i < txt->n; i++) {
        const lmd_txt_item *it = &txt->items[i];
        size_t kl = strlen(it->key), n = kl + (it->has_value ? 1 + it->value_len : 0);
        if (at + 1 + n > ri->txt_len || w[at] != n || memcmp(w + at + 1, it->key, kl) != 0)
            return false;
        if (it->has_value && (w[at + 1 + kl] != '=' ||
                              (it->value_len && memcmp(w + at + 2 + kl, it->value, it->value_len) != 0)))
            return false;
        at += 1 + n;
    }
    return at == ri->txt_len;
}

/* Whether a resolver's answer in says what ri already holds: a refresh,
 * nothing to merge, copy or verify again. */
bool lmd_rinst_same(lmd_peers *r, const struct lmd_rinst *ri, const struct lmd_instance *in)
{
    const char *addr = in->addr ? in->addr->addr : "", *aif = in->addr ? in->addr->ifname : "";
    return ri->port == in->port && ri->flags == in->flags && ri->proto == in->proto &&
           ri->addr_family == (in->addr ? in->addr->family : 0) &&
           ri->addr_ifindex == (in->addr ? in->addr->ifindex : 0) && !strcmp(ri->ifname, in->ifname ? in->ifname : "") &&
           lmd_streq(lmd_ri_host(ri), in->host) && !strncmp(lmd_ri_addr(ri), addr, sizeof in->addr->addr) &&
           !strncmp(lmd_ri_aif(ri), aif, sizeof in->addr->ifname) &&
           ri->domain == lmd_peers_intern(r, in->domain ? in->domain : "") && txt_same(ri, in->txt);
}

int lmd_rinst_fill(lmd_peers *r, struct lmd_rinst *ri, const struct lmd_instance *in, unsigned long seq)
{
    const char *domain = lmd_peers_intern(r, in->domain ? in->domain : ""),
               *ifname = lmd_peers_intern(r, in->ifname ? in->ifname : "");
    if (!domain || !ifname)
        return LMD_ENOMEM;
    /* one allocation: host NUL, address NUL, its interface NUL, the TXT
     * record's wire bytes (each item at most LMD_TXT_ITEM_MAX: one length
     * byte) */
    const char *addr = in->addr ? in->addr->addr : "", *aif = in->addr ? in->addr->ifname : "";
    size_t lh = in->host ? strlen(in->host) + 1 : 0, la = strnlen(addr, sizeof in->addr->addr) + 1,
           li = strnlen(aif, sizeof in->addr->ifname) + 1, lt = in->txt ? lmd_txt_wire_size(in->txt) : 0;
    if (lh > UINT16_MAX || lt > UINT32_MAX)
        return LMD_EINVAL; /* cannot be: a DNS name, a TXT record */
    char *data = malloc(lh + la + li + lt);
    if (!data)
        return LMD_ENOMEM;
    char *at = data;
    if (lh) {
        memcpy(at, in->host, lh);
        at += lh;
    }
    memcpy(at, addr, la - 1);
    at[la - 1] = '\0';
    at += la;
    memcpy(at, aif, li - 1);
    at[li - 1] = '\0';
    at += li;
    unsigned char *t = (unsigned char *)at;
    for (size_t i = 0; in->txt && i < in->txt->n; i++) {
        const lmd_txt_item *it = &in->txt->items[i];
        size_t kl = strlen(it->key), n = kl + (it->has_value ? 1 + it->value_len : 0);
        *t++ = (unsigned char)n;
        memcpy(t, it->key, kl);
        t += kl;
        if (it->has_value) {
            *t++ = '=';
            if (it->value_len)
                memcpy(t, it->value, it->value_len);
            t += it->value_len;
        }
    }
    free(ri->data);
    ri->data = data;
    ri->has_host = lh != 0;
    ri->o_addr = (uint16_t)lh;
    ri->o_aif = (uint16_t)(lh + la);
    ri->o_txt = (uint16_t)(lh + la + li);
    ri->txt_len = (uint32_t)lt;
    ri->addr_family = (uint8_t)(in->addr ? in->addr->family : 0);
    ri->addr_ifindex = in->addr ? in->addr->ifindex : 0;
    ri->ifindex = in->ifindex;
    ri->ifname = ifname;
    ri->proto = (uint8_t)in->proto;
    ri->domain = domain;
    ri->port = in->port;
    ri->flags = in->flags;
    ri->seq = seq;
    ri->held_until = -1; /* seen: a goodbye held for it was not its own */
    return 0;
}

struct lmd_rinst *lmd_rinst_find(struct lmd_peer *p, const struct lmd_instance *in)
{
    for (size_t i = 0; i < p->n_insts; i++)
        if (p->insts[i].ifindex == in->ifindex && p->insts[i].proto == in->proto)
            return &p->insts[i];
    return NULL;
}


bool lmd_peers_has_instance(const lmd_peers *r, const char *name, int ifindex, int proto)
{
    bool found;
    size_t at = lmd_peers_find(r, name, &found);
    if (!found)
        return false;
    const struct lmd_peer *p = r->peers[at];
    for (size_t i = 0; i < p->n_insts; i++)
        if (p->insts[i].ifindex == ifindex && p->insts[i].proto == proto)
            return true;
    return false;
}
