/* What C and the Lua half (lua/lmdisc/) must agree on, exported from C into
 * the lmdisc module so that it is written once (as SERVICE_TYPE is):
 *
 *   MAX_TIMERS, TIMER_MAX,
 *   EVERY_MIN, FILE_MAX        limits (base/limits.h)
 *   REGISTRY_TTL               the library's default ttl (the schema's, held to it by a test)
 *   RECORD_TTL_MAX             the longest TTL of our records (announce { ttl }, announce --ttl)
 *   TXT_RESERVED               the prefix of TXT keys that are lmdisc's own ("lmd-", base/txt.h)
 *   SOCKET_PATH_MAX            the longest path a Unix socket can have
 *   CHANGES                    what counts as a change of a peer (registry/peers.h):
 *                              {"host", ..., host = "registry", info = "policy", ...}
 *   routable(peer)             whether new work may go to the peer (base/node.h)
 *   deadline_message(seconds)  what a call stopped at its deadline fails with (vm.h)
 *   config_fields()            the settings C reads: {{section =, name =, kind =}, ...}
 *
 * In the module (a stock lua5.4's require "lmdisc", and package.loaded.lmdisc
 * in the agent's VM, where only the mantle reaches it), not in the table a
 * policy sees. */
#include "lua/namespaces.h"
#include "base/config.h"
#include "base/limits.h"
#include "base/node.h"
#include "base/txt.h"
#include "base/util.h"
#include "lua/marshal.h"
#include "registry/peers.h"

#include <lauxlib.h>
#include <sys/un.h>

/* lmdisc.routable(peer) -> boolean: peer as lmdisc.peers() gives it (its txt) */
static int l_routable(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lmd_node_info n = {0};
    if (lua_getfield(L, 1, "txt") == LUA_TTABLE && lmd_lua_to_txt(L, -1, &n.txt) != 0) {
        lmd_txt_free(&n.txt);
        return lua_error(L);
    }
    lua_pushboolean(L, lmd_node_routable(&n));
    lmd_txt_free(&n.txt);
    return 1;
}

/* lmdisc.deadline_message(seconds) -> text */
static int l_deadline_message(lua_State *L)
{
    char msg[LMD_VM_DEADLINE_MSG_MAX];
    lmd_vm_deadline_message(msg, sizeof msg, luaL_checknumber(L, 1));
    lua_pushstring(L, msg);
    return 1;
}

/* lmdisc.config_fields() -> {{section =, name =, kind = "str" | "num" |
 * "uint" | "port" | "bool"}, ...}: lmd_cfg_fields, in its order */
static int l_config_fields(lua_State *L)
{
    static const char *const kinds[] = {
        [LMD_CFG_STR] = "str", [LMD_CFG_NUM] = "num", [LMD_CFG_UINT] = "uint",
        [LMD_CFG_PORT] = "port", [LMD_CFG_BOOL] = "bool",
    };
    lua_createtable(L, (int)lmd_cfg_nfields, 0);
    for (size_t i = 0; i < lmd_cfg_nfields; i++) {
        const struct lmd_cfg_field *f = &lmd_cfg_fields[i];
        lua_createtable(L, 0, 3);
        lua_pushstring(L, f->section);
        lua_setfield(L, -2, "section");
        lua_pushstring(L, f->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, kinds[f->kind]);
        lua_setfield(L, -2, "kind");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static void push_changes(lua_State *L)
{
    lua_createtable(L, LMD_CH_COUNT, LMD_CH_COUNT);
    for (int i = 0; i < LMD_CH_COUNT; i++) {
        unsigned bit = 1u << i;
        lua_pushstring(L, lmd_change_name(bit));
        lua_rawseti(L, -2, i + 1);
        lua_pushstring(L, lmd_change_by_policy(bit) ? "policy" : "registry");
        lua_setfield(L, -2, lmd_change_name(bit));
    }
}

void lmd_lua_open_contract(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"routable", l_routable},
        {"deadline_message", l_deadline_message},
        {"config_fields", l_config_fields},
        {NULL, NULL},
    };
    static const struct {
        const char *name;
        lua_Integer value;
    } limits[] = {
        {"MAX_TIMERS", LMD_MAX_TIMERS},
        {"TIMER_MAX", LMD_TIMER_MAX},
        {"FILE_MAX", LMD_FILE_MAX},
        {"REGISTRY_TTL", LMD_REGISTRY_TTL},
        {"RECORD_TTL_MAX", LMD_RECORD_TTL_MAX},
        {"SOCKET_PATH_MAX", sizeof(((struct sockaddr_un *)0)->sun_path) - 1},
    };
    luaL_setfuncs(L, fns, 0);
    for (size_t i = 0; i < LMD_ARRAY_LEN(limits); i++) {
        lua_pushinteger(L, limits[i].value);
        lua_setfield(L, -2, limits[i].name);
    }
    lua_pushstring(L, LMD_TXT_RESERVED);
    lua_setfield(L, -2, "TXT_RESERVED");
    lua_pushnumber(L, LMD_EVERY_MIN);
    lua_setfield(L, -2, "EVERY_MIN");
    push_changes(L);
    lua_setfield(L, -2, "CHANGES");
}
