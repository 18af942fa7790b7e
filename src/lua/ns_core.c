/* lmdisc.*: the pure functions, usable everywhere (stock lua5.4, the
 * agent's policies, lmdisc test): TXT and service-type checks, JSON of a
 * node, escaping, constants. */
#include "lua/namespaces.h"
#include "base/config.h"
#include "base/json.h"
#include "base/log.h"
#include "base/util.h"
#include "lua/marshal.h"

#include <lauxlib.h>
#include <stdlib.h>

/* lmdisc.txt_parse("key=value") -> key, value|true | nil, err */
static int l_txt_parse(lua_State *L)
{
    const char *arg = luaL_checkstring(L, 1);
    lmd_txt t = {0};
    char err[320];
    if (lmd_txt_parse_arg(&t, arg, err, sizeof err) != 0) {
        lmd_txt_free(&t);
        return lmd_lua_fail(L, err);
    }
    lua_pushstring(L, t.items[0].key);
    if (t.items[0].has_value)
        lua_pushlstring(L, (const char *)t.items[0].value, t.items[0].value_len);
    else
        lua_pushboolean(L, 1);
    lmd_txt_free(&t);
    return 2;
}

/* lmdisc.txt_check({key = value, ...}) -> true | nil, err */
static int l_txt_check(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lmd_txt t = {0};
    int rc = lmd_lua_to_txt(L, 1, &t);
    lmd_txt_free(&t);
    if (rc) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* lmdisc.service_type_check(type) -> true | nil, err */
static int l_service_type_check(lua_State *L)
{
    char err[320];
    if (!lmd_service_type_valid(luaL_checkstring(L, 1), err, sizeof err))
        return lmd_lua_fail(L, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* lmdisc.node_json(node [, pretty]) -> JSON text, as `discover --json` writes nodes */
static int l_node_json(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lmd_node_info n;
    if (lmd_lua_to_node(L, 1, &n) != 0)
        return lua_error(L);
    json_t *j = lmd_json_node(&n);
    char *s = j ? lmd_json_dump(j, lua_toboolean(L, 2)) : NULL;
    json_decref(j);
    lmd_node_info_clear(&n);
    if (!s)
        return luaL_error(L, "cannot encode node as JSON");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

/* lmdisc.escape(bytes) -> text safe for a terminal or a log line */
static int l_escape(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    size_t cap = len * 4 + 4;
    char *out = malloc(cap);
    if (!out)
        return luaL_error(L, "out of memory");
    lmd_escape(s, len, out, cap);
    lua_pushstring(L, out);
    free(out);
    return 1;
}

int lmd_lua_open_core(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"txt_parse", l_txt_parse},
        {"txt_check", l_txt_check},
        {"service_type_check", l_service_type_check},
        {"node_json", l_node_json},
        {"escape", l_escape},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    lua_pushliteral(L, LMD_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushliteral(L, LMD_DEFAULT_TYPE);
    lua_setfield(L, -2, "SERVICE_TYPE");
    lua_pushliteral(L, LMD_API_SOCKET);
    lua_setfield(L, -2, "API_SOCKET");
    return 1;
}
