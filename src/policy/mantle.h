/* The C -> mantle contract: the only Lua functions C calls, all in
 * lua/lmdisc/runner.lua (see there for arguments and results), the agent's
 * (policy.c) and `lmdisc test`'s (testrun.c).  They are looked up once per
 * VM; a missing one is an error at start, not a crash later.  Nothing else
 * in C names a function of the mantle (tests/unit/test_contract.lua). */
#ifndef LMD_POLICY_MANTLE_H
#define LMD_POLICY_MANTLE_H

#include "base/error.h"

#include <lua.h>

/* X(ID, name): LMD_MANTLE_ID calls runner.name */
#define LMD_MANTLE_FNS(X)                                                                                      \
    X(DEFAULTS, defaults)         /* () -> settings of an empty configuration */                               \
    X(LOAD, load)                 /* (path, api, internals) -> P, nil, warnings | nil, err */                  \
    X(SETTINGS, settings)         /* (P) -> settings */                                                        \
    X(WHERE, where)               /* (P, section) -> "FILE:LINE" of its directive, or the file */              \
    X(PEER_EVENT, peer_event)     /* (P, kind, peer, old, changes, reason) -> verdict */                       \
    X(VERDICTS, verdicts)         /* (P) -> { name = { keep =, info = } } */                                   \
    X(ADOPT, adopt)               /* (newP, old verdicts, peers) -> { verdict + name } */                      \
    X(CALL, call)                 /* (P, what, fn, ...) */                                                     \
    X(START, start)               /* (P, peers, why) : on_start after a worker restart */                      \
    X(HOOKS, hooks)               /* (P) -> { names } */                                                       \
    X(STATS, stats)               /* (P) -> { hook_runs, hook_errors, hook_time } */                           \
    X(WARNINGS, warnings)         /* (P) -> text */                                                            \
    X(TEST_PREPARE, test_prepare) /* () : count the tests luaunit runs from now on (lmdisc test) */            \
    X(TEST_COUNT, test_count)     /* () -> tests luaunit ran since test_prepare (lmdisc test) */

enum lmd_mantle_fn {
#define LMD_MANTLE_ENUM_(id, name) LMD_MANTLE_##id,
    LMD_MANTLE_FNS(LMD_MANTLE_ENUM_)
#undef LMD_MANTLE_ENUM_
    LMD_MANTLE_N
};

struct lmd_mantle {
    int fn[LMD_MANTLE_N];    /* registry refs */
};

/* The mantle compiled into the binary (lua/lmdisc/), as package.preload
 * entries: a running agent does not depend on files it could lose. */
void lmd_mantle_preload(lua_State *L);
/* require "lmdisc.runner" and take every entry point. */
int lmd_mantle_open(lua_State *L, struct lmd_mantle *m, lmd_err *err);
/* Push an entry point, ready for lmd_vm_docall. */
void lmd_mantle_push(lua_State *L, const struct lmd_mantle *m, enum lmd_mantle_fn f);

#endif
