/* lmdisc.log: debug/info/warn/error(fmt, ...) into the agent's log. */
#include "lua/namespaces.h"
#include "base/log.h"

#include <lauxlib.h>

static int do_log(lua_State *L, enum lmd_log_level lvl)
{
    int n = lua_gettop(L);
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "format");
    lua_remove(L, -2);
    lua_insert(L, 1);
    lua_call(L, n, 1);
    lmd_log(lvl, "%s", lua_tostring(L, -1));
    return 0;
}
static int l_log_debug(lua_State *L) { return do_log(L, LMD_LOG_DEBUG); }
static int l_log_info(lua_State *L) { return do_log(L, LMD_LOG_INFO); }
static int l_log_warn(lua_State *L) { return do_log(L, LMD_LOG_WARN); }
static int l_log_error(lua_State *L) { return do_log(L, LMD_LOG_ERROR); }

int lmd_lua_open_log(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"debug", l_log_debug}, {"info", l_log_info}, {"warn", l_log_warn},
        {"error", l_log_error}, {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}
