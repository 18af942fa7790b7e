/* The C -> mantle contract: the only Lua functions C calls, all in
 * lua/lmdisc/runner.lua (see there for arguments and results).  They are
 * looked up once per VM; a missing one is an error at start, not a crash
 * later. */
#ifndef LMD_POLICY_MANTLE_H
#define LMD_POLICY_MANTLE_H

#include "base/error.h"

#include <lua.h>

enum lmd_mantle_fn {
    LMD_MANTLE_DEFAULTS,     /* () -> settings of an empty configuration */
    LMD_MANTLE_LOAD,         /* (path, api, internals) -> P, nil, warnings | nil, err */
    LMD_MANTLE_SETTINGS,     /* (P) -> settings */
    LMD_MANTLE_PEER_EVENT,   /* (P, kind, peer, old, changes, reason) -> verdict */
    LMD_MANTLE_VERDICTS,     /* (P) -> { name = { keep =, info = } } */
    LMD_MANTLE_ADOPT,        /* (newP, old verdicts, peers) -> { verdict + name } */
    LMD_MANTLE_CALL,         /* (P, what, fn, ...) */
    LMD_MANTLE_HOOKS,        /* (P) -> { names } */
    LMD_MANTLE_STATS,        /* (P) -> { hook_runs, hook_errors, hook_time } */
    LMD_MANTLE_WARNINGS,     /* (P) -> text */
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
