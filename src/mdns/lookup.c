/* One-shot lookups of a service the browser no longer lists
 * (lmd_browse_lookup, see mdns.h): an answer makes it an instance again. */
#include "base/log.h"
#include "base/util.h"
#include "mdns/browse.h"
#include "mdns/internal.h"

#include <stdlib.h>

void lmd_browse_lookup_free(struct lookup *l)
{
    LMD_LIST_UNLINK(&l->b->lookups, l);
    if (l->rid && !l->b->m->closing)
        lmd_pool_cancel(l->b->m->pool, l->rid);
    free(l);
}

void lmd_browse_lookup_msg(struct lookup *l, const struct lmd_pool_msg *msg)
{
    struct lmd_browse *b = l->b;
    l->rid = 0; /* a one-shot resolver: the pool has closed it */
    switch (msg->kind) {
    case LMD_POOL_FOUND:
        /* it answered: an instance again, resolved the usual way (until the
         * browser lists it again, a failure to resolve ends it) */
        lmd_browse_inst_seen(b, msg->ifindex, msg->proto, msg->name, b->type, b->domain ? b->domain : "local", false);
        break;
    case LMD_POOL_FAILED:
    case LMD_POOL_FULL:
    case LMD_POOL_ROOM:
    case LMD_POOL_LOST:
        /* gone indeed (or no room to ask): the caller's grace ends it */
        lmd_debug("looking up a service again: %s", msg->text ? msg->text : "no answer");
        break;
    }
    lmd_browse_lookup_free(l);
}

int lmd_browse_lookup(lmd_browse *b, const char *name, int ifindex, int proto)
{
    lmd_mdns *m = b->m;
    if (!m->client || m->state != LMD_MDNS_RUNNING)
        return LMD_ENODAEMON;
    struct lookup *l = calloc(1, sizeof *l);
    if (!l)
        return LMD_ENOMEM;
    l->b = b;
    l->rid = ++m->seq;
    AvahiProtocol p = proto == 4 ? AVAHI_PROTO_INET : proto == 6 ? AVAHI_PROTO_INET6 : AVAHI_PROTO_UNSPEC;
    if (lmd_pool_resolve(m->pool, l->rid, ifindex > 0 ? ifindex : AVAHI_IF_UNSPEC, p, AVAHI_PROTO_UNSPEC, name,
                         b->type, b->domain, true) != 0) {
        free(l);
        return LMD_ENOMEM;
    }
    l->next = b->lookups;
    b->lookups = l;
    return 0;
}
