/* The entry points of lua/lmdisc/runner.lua (see mantle.h). */
#include "policy/mantle.h"
#include "policy/embedded.h"
#include "lua/vm.h"

#include <lauxlib.h>
#include <stdio.h>

static const char *const names[LMD_MANTLE_N] = {
#define NAME_(id, name) [LMD_MANTLE_##id] = #name,
    LMD_MANTLE_FNS(NAME_)
#undef NAME_
};

static int embedded_loader(lua_State *L)
{
    const struct lmd_embedded *e = lua_touserdata(L, lua_upvalueindex(1));
    char chunk[160];
    snprintf(chunk, sizeof chunk, "@[lmdisc]/%s", e->file);
    if (luaL_loadbufferx(L, e->source, e->len, chunk, "t") != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, e->module);
    lua_call(L, 1, 1);
    return 1;
}

void lmd_mantle_preload(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (const struct lmd_embedded *e = lmd_embedded_lua; e->module; e++) {
        lua_pushlightuserdata(L, (void *)e);
        lua_pushcclosure(L, embedded_loader, 1);
        lua_setfield(L, -2, e->module);
    }
    lua_pop(L, 1);
}

int lmd_mantle_open(lua_State *L, struct lmd_mantle *m, lmd_err *err)
{
    for (int i = 0; i < LMD_MANTLE_N; i++)
        m->fn[i] = LUA_NOREF;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "lmdisc.runner");
    if (lmd_vm_docall(L, 1, 1) != LUA_OK) {
        lmd_err_set(err, LMD_ELUA, "internal error loading the policy runtime: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return LMD_ELUA;
    }
    for (int i = 0; i < LMD_MANTLE_N; i++) {
        if (lua_getfield(L, -1, names[i]) != LUA_TFUNCTION) {
            lua_pop(L, 2);
            return lmd_err_set(err, LMD_ELUA, "internal error: lmdisc.runner has no function '%s'", names[i]);
        }
        m->fn[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_pop(L, 1);
    return 0;
}

void lmd_mantle_push(lua_State *L, const struct lmd_mantle *m, enum lmd_mantle_fn f)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, m->fn[f]);
}
