/* The table of contents of lmdisc.* (Knot Resolver's daemon/bindings/
 * pattern): one file per namespace, each exporting one open function with a
 * static luaL_Reg, and the functions here that assemble them into what
 * each kind of VM sees. */
#ifndef LMD_LUA_NAMESPACES_H
#define LMD_LUA_NAMESPACES_H

#include "lua/host.h"
#include "lua/vm.h"

#include <lauxlib.h>
#include <lua.h>

/* The state the agent's namespaces work with, one per policy VM. */
struct lmd_lua_ctx {
    lmd_vm *vm;
    struct lmd_policy_host host;
    struct lmd_timers *timers;       /* ns_timer.c */
    struct lmd_children *children;   /* ns_spawn.c */
    /* run a user callback (registry ref fn_ref, nargs arguments on the
     * stack) the way hooks run: guarded, counted, failures logged */
    void (*call)(struct lmd_lua_ctx *ctx, const char *what, int fn_ref, int nargs);
    void *call_ud;
};

/* ---- assembling -------------------------------------------------------- */

/* The module of a stock lua5.4 (require "lmdisc"), also package.loaded
 * .lmdisc in the agent's VM, where only the mantle can reach it. */
int lmd_lua_open_module(lua_State *L);
/* lua_CFunction: package.loaded.lmdisc = that module (call it protected). */
int lmd_lua_require_module(lua_State *L);
/* A fresh `lmdisc` table for one policy: the pure functions, log, and the
 * agent's functions.  A plain table: no metatable, no internals. */
void lmd_lua_push_policy_api(lua_State *L, struct lmd_lua_ctx *ctx);
/* What the mantle gets besides that table: {guard =, in_guard =, stopped =, peers_all =, log =}. */
void lmd_lua_push_internals(lua_State *L, struct lmd_lua_ctx *ctx);
/* A metatable name with methods (and __index = itself), for full userdata. */
void lmd_lua_new_class(lua_State *L, const char *name, const luaL_Reg *methods);

/* ---- the namespaces ---------------------------------------------------- */

int lmd_lua_open_core(lua_State *L);                       /* ns_core.c: pure functions, constants */
/* ns_contract.c: what C and the mantle share (limits, rules), into the table on top */
void lmd_lua_open_contract(lua_State *L);
int lmd_lua_open_log(lua_State *L);                        /* ns_log.c: lmdisc.log */
void lmd_lua_open_net(lua_State *L);                       /* ns_net.c: discover_nodes, announce_self, REGISTRY */
int lmd_lua_open_registry(lua_State *L);                   /* ns_registry.c: registry_new (tests) */
void lmd_lua_open_agent(lua_State *L, struct lmd_lua_ctx *ctx);  /* ns_agent.c: peers, self, set_txt, now */
void lmd_lua_open_timer(lua_State *L, struct lmd_lua_ctx *ctx);  /* ns_timer.c: timer, every */
void lmd_lua_open_spawn(lua_State *L, struct lmd_lua_ctx *ctx);  /* ns_spawn.c: spawn */
/* ns_agent.c: every live peer before the policy's verdicts, for the mantle */
void lmd_lua_push_peers_all(lua_State *L, struct lmd_lua_ctx *ctx);

/* per-VM state of the timer and spawn namespaces */
void lmd_lua_timers_free(struct lmd_lua_ctx *ctx);
int lmd_lua_spawn_init(struct lmd_lua_ctx *ctx, lmd_err *err);     /* watch SIGCHLD on the host's loop */
void lmd_lua_spawn_free(struct lmd_lua_ctx *ctx);
/* A reload: the old VM's children are reaped by the new one (their on_exit
 * callbacks die with the old VM). */
void lmd_lua_spawn_adopt(struct lmd_lua_ctx *ctx, struct lmd_lua_ctx *from);

#endif
