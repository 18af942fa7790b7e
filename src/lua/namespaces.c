/* The table of contents of lmdisc.* (see namespaces.h): which namespaces
 * each kind of VM gets. */
#include "lua/namespaces.h"

#include <lauxlib.h>

void lmd_lua_new_class(lua_State *L, const char *name, const luaL_Reg *methods)
{
    if (luaL_newmetatable(L, name)) {
        luaL_setfuncs(L, methods, 0);
        lua_pushvalue(L, -1);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

int lmd_lua_open_module(lua_State *L)
{
    lmd_lua_open_core(L);
    lmd_lua_open_contract(L);
    lmd_lua_open_log(L);
    lua_setfield(L, -2, "log");
    lmd_lua_open_registry(L);
    lua_setfield(L, -2, "registry_new");
    lmd_lua_open_net(L);
    return 1;
}

int lmd_lua_require_module(lua_State *L)
{
    luaL_requiref(L, "lmdisc", lmd_lua_open_module, 0);
    return 0;
}

void lmd_lua_push_policy_api(lua_State *L, struct lmd_lua_ctx *ctx)
{
    lmd_lua_open_core(L);
    lmd_lua_open_log(L);
    lua_setfield(L, -2, "log");
    lmd_lua_open_agent(L, ctx);
    lmd_lua_open_timer(L, ctx);
    lmd_lua_open_spawn(L, ctx);
}

void lmd_lua_push_internals(lua_State *L, struct lmd_lua_ctx *ctx)
{
    static const luaL_Reg vm[] = {
        {"guard", lmd_vm_guard}, {"in_guard", lmd_vm_in_guard}, {"stopped", lmd_vm_is_stopped}, {NULL, NULL}};
    lua_createtable(L, 0, 5);
    luaL_setfuncs(L, vm, 0);
    lmd_lua_push_peers_all(L, ctx);
    lua_setfield(L, -2, "peers_all");
    lmd_lua_open_log(L); /* the mantle's own: a policy cannot silence it */
    lua_setfield(L, -2, "log");
}
