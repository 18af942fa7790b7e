/* The Lua half of lmdisc (lua/lmdisc/, the mantle), compiled into the
 * binary by embed_lua.cmake. */
#ifndef LMD_POLICY_EMBEDDED_H
#define LMD_POLICY_EMBEDDED_H

#include <stddef.h>

struct lmd_embedded {
    const char *module;   /* e.g. "lmdisc.policy" */
    const char *file;     /* e.g. "lmdisc/policy.lua" */
    const char *source;
    size_t len;
};

extern const struct lmd_embedded lmd_embedded_lua[];

#endif
