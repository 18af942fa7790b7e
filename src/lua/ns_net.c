/* lmdisc.* for programs of their own (a stock lua5.4 with lmdisc.so):
 * discover_nodes, announce_self, start_registry and REGISTRY, the original
 * module's names.  Not in the agent's policies, which must not block the
 * loop or announce a second time. */
#include "lua/namespaces.h"
#include "base/limits.h"
#include "base/txt.h"
#include "base/util.h"
#include "lua/marshal.h"

#include <lauxlib.h>
#include <stdlib.h>

#define ANNOUNCEMENT_MT "lmdisc.announcement"
#define LIVE_REGISTRY_MT "lmdisc.live_registry"

/* lmdisc.discover_nodes([timeout [, type]]) -> list of nodes, complete | nil, err */
static int l_discover_nodes(lua_State *L)
{
    double timeout = luaL_optnumber(L, 1, 5);
    const char *type = luaL_optstring(L, 2, LMD_DEFAULT_TYPE);
    luaL_argcheck(L, timeout > 0, 1, "timeout must be positive");
    char err[320];
    if (!lmd_service_type_valid(type, err, sizeof err))
        return luaL_argerror(L, 2, err);
    lmd_discover_opts o = {.type = type};
    lmd_node_list l;
    int rc = lmd_discover_nodes(timeout, &o, &l);
    if (rc)
        return lmd_lua_fail(L, lmd_strerror(rc));
    lmd_lua_push_node_list(L, &l);
    lmd_node_list_free(&l);
    lua_pushboolean(L, o.complete);
    return 2;
}

typedef struct {
    lmd_announcement *a;
} announcement_ud;

/* lmdisc.announce_self(port [, info [, {name=, type=, txt={}}]]) -> announcement | nil, err */
static int l_announce_self(lua_State *L)
{
    lua_Integer port = luaL_checkinteger(L, 1);
    const char *info = luaL_optstring(L, 2, NULL);
    luaL_argcheck(L, port >= 1 && port <= 65535, 1, "port must be 1-65535");
    lmd_txt txt = {0};
    char *name = NULL, *type = NULL;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        name = lmd_lua_opt_field_str(L, 3, "name");
        type = lmd_lua_opt_field_str(L, 3, "type");
        lua_getfield(L, 3, "txt");
        if (lua_istable(L, -1) && lmd_lua_to_txt(L, -1, &txt) != 0) {
            free(name);
            free(type);
            lmd_txt_free(&txt);
            return lua_error(L);
        }
        lua_pop(L, 1);
    }
    char err[320];
    if (type && !lmd_service_type_valid(type, err, sizeof err)) {
        free(name);
        free(type);
        lmd_txt_free(&txt);
        return luaL_error(L, "%s", err);
    }
    const char *reserved = lmd_txt_reserved_key(&txt);
    if (reserved) { /* nil and why, as the library's LMD_ETXT would say less */
        lmd_err e = {0};
        lmd_txt_reserved_error(reserved, &e);
        free(name);
        free(type);
        lmd_txt_free(&txt);
        return lmd_lua_fail(L, lmd_err_text(&e));
    }
    announcement_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->a = NULL;
    luaL_setmetatable(L, ANNOUNCEMENT_MT);
    lmd_announce_opts o = {.name = name, .type = type, .txt = &txt};
    int rc = lmd_announce_self((uint16_t)port, info, &o, &u->a);
    free(name);
    free(type);
    lmd_txt_free(&txt);
    if (rc)
        return lmd_lua_fail(L, lmd_strerror(rc));
    return 1;
}

static announcement_ud *check_announcement(lua_State *L)
{
    announcement_ud *u = luaL_checkudata(L, 1, ANNOUNCEMENT_MT);
    if (!u->a)
        luaL_error(L, "announcement already withdrawn");
    return u;
}

static int l_announcement_name(lua_State *L)
{
    announcement_ud *u = check_announcement(L);
    char buf[256];
    lmd_announce_name(u->a, buf, sizeof buf);
    lua_pushstring(L, buf);
    return 1;
}

static int l_announcement_withdraw(lua_State *L)
{
    announcement_ud *u = luaL_checkudata(L, 1, ANNOUNCEMENT_MT);
    lmd_announce_withdraw(u->a);
    u->a = NULL;
    return 0;
}

static int l_announcement_tostring(lua_State *L)
{
    announcement_ud *u = luaL_checkudata(L, 1, ANNOUNCEMENT_MT);
    if (!u->a) {
        lua_pushliteral(L, "lmdisc.announcement (withdrawn)");
    } else {
        char buf[256];
        lmd_announce_name(u->a, buf, sizeof buf);
        lua_pushfstring(L, "lmdisc.announcement (%s)", buf);
    }
    return 1;
}

/* lmdisc.start_registry([type [, ttl]]) -> registry | nil, err
 * A registry kept live by a background thread, as the original REGISTRY;
 * reg:list_alive() -> list of peers; reg:stop(). */
typedef struct {
    lmd_registry *r;
} live_ud;

static int l_start_registry(lua_State *L)
{
    const char *type = luaL_optstring(L, 1, LMD_DEFAULT_TYPE);
    double ttl = luaL_optnumber(L, 2, LMD_REGISTRY_TTL);
    char err[320];
    if (!lmd_service_type_valid(type, err, sizeof err))
        return luaL_argerror(L, 1, err);
    live_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->r = NULL;
    luaL_setmetatable(L, LIVE_REGISTRY_MT);
    int rc = lmd_registry_start(type, ttl, &u->r);
    if (rc)
        return lmd_lua_fail(L, lmd_strerror(rc));
    return 1;
}

static int l_live_list_alive(lua_State *L)
{
    live_ud *u = luaL_checkudata(L, 1, LIVE_REGISTRY_MT);
    if (!u->r)
        return luaL_error(L, "registry already stopped");
    lmd_node_list l;
    if (lmd_registry_list_alive(u->r, &l) != 0)
        return luaL_error(L, "out of memory");
    lmd_lua_push_node_list(L, &l);
    lmd_node_list_free(&l);
    return 1;
}

/* reg:stop(), also __gc and __close: once */
static int l_live_stop(lua_State *L)
{
    live_ud *u = luaL_checkudata(L, 1, LIVE_REGISTRY_MT);
    lmd_registry *r = u->r;
    u->r = NULL;
    lmd_registry_stop(r);
    return 0;
}

/* lmdisc.REGISTRY in a stock lua5.4: started on first use, like importing
 * the original module's registry */
static int l_module_index(lua_State *L)
{
    if (lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "REGISTRY") != 0)
        return 0;
    lua_pushcfunction(L, l_start_registry);
    lua_call(L, 0, 2);
    if (lua_isnil(L, -2))
        return luaL_error(L, "lmdisc.REGISTRY: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, 1, "REGISTRY");
    return 1;
}

void lmd_lua_open_net(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"discover_nodes", l_discover_nodes}, {"announce_self", l_announce_self},
        {"start_registry", l_start_registry}, {NULL, NULL},
    };
    static const luaL_Reg live[] = {
        {"list_alive", l_live_list_alive}, {"stop", l_live_stop}, {"__gc", l_live_stop},
        {"__close", l_live_stop}, {NULL, NULL},
    };
    static const luaL_Reg ann[] = {
        {"name", l_announcement_name},
        {"withdraw", l_announcement_withdraw},
        {"__gc", l_announcement_withdraw},
        {"__close", l_announcement_withdraw},
        {"__tostring", l_announcement_tostring},
        {NULL, NULL},
    };
    lmd_lua_new_class(L, LIVE_REGISTRY_MT, live);
    lmd_lua_new_class(L, ANNOUNCEMENT_MT, ann);
    luaL_setfuncs(L, fns, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_module_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
}
