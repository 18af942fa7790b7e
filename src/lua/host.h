/* What the lmdisc.* namespaces of a policy VM ask of their host (the
 * agent, or `lmdisc check`): the callbacks cross upward, so the bindings
 * know nothing of who runs them.  No Lua header here. */
#ifndef LMD_LUA_HOST_H
#define LMD_LUA_HOST_H

#include "lmdisc.h"

#include <stddef.h>

struct event_base;

/* Any callback may be NULL, and base NULL means timers and processes are
 * accepted but never run (as for `lmdisc check`). */
struct lmd_policy_host {
    void *ud;
    struct event_base *base;
    /* the peers the policy keeps, with their computed info */
    int (*peers)(void *ud, lmd_node_list *out);
    /* every live peer on the network, before the policy's verdict */
    int (*peers_all)(void *ud, lmd_node_list *out);
    /* what we announce: name, type, port, txt, info; state is a word such
     * as "established" */
    int (*self)(void *ud, lmd_node_info *out, const char **state);
    /* the services registered through the API (name, port, txt, info) */
    int (*services)(void *ud, lmd_node_list *out);
    /* replace the announced TXT (already validated) */
    int (*set_txt)(void *ud, const lmd_txt *txt, char *err, size_t errlen);
    /* on 1: a timer or spawn callback starts running user code, 0: it is
     * done (the policy worker tells the core, which bounds it like a hook) */
    void (*busy)(void *ud, int on);
};

#endif
