/* Internal helpers on nodes beyond the public lmd_node_info API. */
#ifndef LMD_NODE_H
#define LMD_NODE_H

#include "lmdisc.h"

/* Whether new work may be sent to this peer: not while it announces TXT
 * status=draining (about to go away) or status=down (failing its health
 * check). */
bool lmd_node_routable(const lmd_node_info *n);

#endif
