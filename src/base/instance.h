/* One service as seen on one interface over one protocol: what the browse
 * layer hands to the registry, which merges instances into peers. */
#ifndef LMD_INSTANCE_H
#define LMD_INSTANCE_H

#include "lmdisc.h"

struct lmd_instance {
    int ifindex;
    const char *ifname;
    int proto;              /* 4 or 6: the protocol the records came over */
    const char *name, *type, *domain;
    /* Valid for a resolved instance only: */
    const char *host;
    uint16_t port;
    const lmd_addr *addr;
    const lmd_txt *txt;
    unsigned flags;         /* LMD_NODE_LOCAL / LMD_NODE_OWN */
    /* No other instance of this name that the source has reported is still
     * being resolved: the registry reports a new peer at once rather than
     * waiting its settle window for more (mDNS sets it; a source that does
     * not know leaves it false). */
    bool complete;
};

#endif
