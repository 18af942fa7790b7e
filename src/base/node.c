/* lmd_node_info, the original NodeInfo: copy, clear, lists. */
#include "base/node.h"
#include "base/util.h"
#include "lmdisc.h"

#include <stdlib.h>

void lmd_node_info_clear(lmd_node_info *n)
{
    if (!n)
        return;
    free(n->name);
    free(n->type);
    free(n->domain);
    free(n->host);
    free(n->info);
    free(n->addrs);
    free(n->rivals);
    lmd_txt_free(&n->txt);
    memset(n, 0, sizeof *n);
}

int lmd_node_info_copy(lmd_node_info *dst, const lmd_node_info *src)
{
    memset(dst, 0, sizeof *dst);
    dst->port = src->port;
    dst->flags = src->flags;
    memcpy(dst->signer, src->signer, sizeof dst->signer);
    dst->first_seen = src->first_seen;
    dst->last_seen = src->last_seen;
    dst->name = lmd_strdup(src->name);
    dst->type = lmd_strdup(src->type);
    dst->domain = lmd_strdup(src->domain);
    dst->host = lmd_strdup(src->host);
    dst->info_len = src->info ? (src->info_len ? src->info_len : strlen(src->info)) : 0;
    dst->info = src->info ? lmd_strndup(src->info, dst->info_len) : NULL;
    if (src->n_addrs) {
        dst->addrs = lmd_memdup(src->addrs, src->n_addrs * sizeof *src->addrs);
        dst->n_addrs = dst->addrs ? src->n_addrs : 0;
    }
    if (src->n_rivals) {
        dst->rivals = lmd_memdup(src->rivals, src->n_rivals * sizeof *src->rivals);
        dst->n_rivals = dst->rivals ? src->n_rivals : 0;
    }
    int rc = lmd_txt_copy(&dst->txt, &src->txt);
    if (rc || (src->name && !dst->name) || (src->type && !dst->type) ||
        (src->domain && !dst->domain) || (src->host && !dst->host) || (src->info && !dst->info) ||
        (src->n_addrs && !dst->addrs) || (src->n_rivals && !dst->rivals)) {
        lmd_node_info_clear(dst);
        return LMD_ENOMEM;
    }
    return 0;
}

void lmd_node_list_free(lmd_node_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        lmd_node_info_clear(&l->nodes[i]);
    free(l->nodes);
    l->nodes = NULL;
    l->n = 0;
}

bool lmd_node_routable(const lmd_node_info *n)
{
    const lmd_txt_item *st = lmd_txt_get(&n->txt, "status");
    if (!st || !st->has_value)
        return true;
    return !((st->value_len == 8 && !memcmp(st->value, "draining", 8)) ||
             (st->value_len == 4 && !memcmp(st->value, "down", 4)));
}
