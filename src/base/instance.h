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
};

#endif
