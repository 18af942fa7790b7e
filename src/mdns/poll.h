/* AvahiPoll on a libevent base: lets avahi-client run on the agent's one loop. */
#ifndef LMD_MDNS_POLL_H
#define LMD_MDNS_POLL_H

#include <avahi-common/watch.h>

struct event_base;

typedef struct lmd_avahi_poll {
    AvahiPoll api;
    struct event_base *base;
} lmd_avahi_poll;

void lmd_avahi_poll_init(lmd_avahi_poll *p, struct event_base *base);

#endif
