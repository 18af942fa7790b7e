/* lmdisc.registry_new(): the C peer table as a Lua object, so that its merge,
 * expiry and event order can be driven with simulated instances and a fake
 * clock from luaunit suites.
 *
 *   local r = lmdisc.registry_new({ttl = 60, include_self = false, confirm_grace = 10, settle = 0.05},
 *                                 function(kind, peer, old, changes, reason) end,
 *                                 function(peer) end)   -- confirm (optional)
 *   r:seen(instance, now [, wall])  r:gone(instance, reason [, now])  r:tick(now)
 *   r:next_deadline()  r:snapshot([kept_only])  r:set_verdict(name, kept, info)
 *   r:get(name)  r:count()
 *
 * An instance is {name=, type=, domain=, ifindex=, ifname=, proto=4|6, host=,
 * port=, address=, txt={}, ["local"]=, self=, complete=}. */
#include "lua/namespaces.h"
#include "base/json.h"
#include "base/util.h"
#include "lua/marshal.h"
#include "lua/vm.h"
#include "registry/peers.h"

#include <lauxlib.h>
#include <stdlib.h>

#define REGISTRY_MT "lmdisc.registry"

typedef struct {
    lmd_peers *r;
    lua_State *L;
    int ev_ref, confirm_ref;
    int err_ref;            /* first error raised by a callback, rethrown after */
} reg_ud;

static void call_back(reg_ud *u, int nargs)
{
    lua_State *L = u->L;
    if (lmd_vm_docall(L, nargs, 0) != LUA_OK) {
        if (u->err_ref == LUA_NOREF)
            u->err_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        else
            lua_pop(L, 1);
    }
}

static void on_event(void *ud, enum lmd_event_kind kind, const lmd_node_info *peer,
                     const lmd_node_info *old, unsigned changes, const char *reason)
{
    reg_ud *u = ud;
    lua_State *L = u->L;
    if (u->ev_ref == LUA_NOREF)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->ev_ref);
    lmd_lua_push_event(L, kind, peer, old, changes, reason);
    call_back(u, 5);
}

static void on_confirm(void *ud, const lmd_node_info *peer, int ifindex, int proto)
{
    reg_ud *u = ud;
    if (u->confirm_ref == LUA_NOREF)
        return;
    lua_rawgeti(u->L, LUA_REGISTRYINDEX, u->confirm_ref);
    lmd_lua_push_node(u->L, peer);
    lua_pushinteger(u->L, ifindex);
    lua_pushinteger(u->L, proto);
    call_back(u, 3);
}

static int rethrow(lua_State *L, reg_ud *u, int nresults)
{
    if (u->err_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, u->err_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, u->err_ref);
        u->err_ref = LUA_NOREF;
        return lua_error(L);
    }
    return nresults;
}

static reg_ud *check(lua_State *L)
{
    reg_ud *u = luaL_checkudata(L, 1, REGISTRY_MT);
    if (!u->r)
        luaL_error(L, "registry already closed");
    u->L = L;
    return u;
}

static void read_config(lua_State *L, int idx, struct lmd_peers_config *c)
{
    memset(c, 0, sizeof *c);
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "ttl");
    c->ttl = luaL_optnumber(L, -1, 0);
    lua_getfield(L, idx, "confirm_grace");
    c->confirm_grace = luaL_optnumber(L, -1, 0);
    lua_getfield(L, idx, "include_self");
    c->include_self = lua_toboolean(L, -1);
    lua_getfield(L, idx, "settle");
    c->settle = luaL_optnumber(L, -1, 0);
    lua_getfield(L, idx, "goodbye_hold");
    c->goodbye_hold = luaL_optnumber(L, -1, 0);
    lua_pop(L, 5);
}

static int l_registry_new(lua_State *L)
{
    struct lmd_peers_config c;
    read_config(L, 1, &c);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TFUNCTION);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TFUNCTION);
    reg_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    memset(u, 0, sizeof *u);
    u->ev_ref = u->confirm_ref = u->err_ref = LUA_NOREF;
    luaL_setmetatable(L, REGISTRY_MT);
    u->L = L;
    if (lmd_peers_new(&c, on_event, on_confirm, u, &u->r, NULL) != 0)
        return luaL_error(L, "out of memory");
    if (lua_isfunction(L, 2)) {
        lua_pushvalue(L, 2);
        u->ev_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    if (lua_isfunction(L, 3)) {
        lua_pushvalue(L, 3);
        u->confirm_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    return 1;
}

/* An instance argument and what it points into (free with inst_arg_free). */
struct inst_arg {
    struct lmd_instance in;
    lmd_addr a;
    lmd_txt t;
};

/* Fields of an instance table, kept alive on the Lua stack while used. */
static void read_instance(lua_State *L, int idx, struct inst_arg *x)
{
    struct lmd_instance *in = &x->in;
    lmd_addr *a = &x->a;
    lmd_txt *t = &x->t;
    memset(x, 0, sizeof *x);
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "name");
    in->name = luaL_checkstring(L, -1);
    lua_getfield(L, idx, "type");
    in->type = luaL_optstring(L, -1, LMD_DEFAULT_TYPE);
    lua_getfield(L, idx, "domain");
    in->domain = luaL_optstring(L, -1, "local");
    lua_getfield(L, idx, "ifname");
    in->ifname = luaL_optstring(L, -1, "eth0");
    lua_getfield(L, idx, "host");
    in->host = luaL_optstring(L, -1, NULL);
    lua_getfield(L, idx, "address");
    const char *addr = luaL_optstring(L, -1, NULL);
    lua_getfield(L, idx, "ifindex");
    in->ifindex = (int)luaL_optinteger(L, -1, 2);
    lua_getfield(L, idx, "proto");
    in->proto = (int)luaL_optinteger(L, -1, 4);
    lua_getfield(L, idx, "port");
    in->port = (uint16_t)luaL_optinteger(L, -1, 0);
    lua_getfield(L, idx, "local");
    in->flags |= lua_toboolean(L, -1) ? LMD_NODE_LOCAL : 0;
    lua_getfield(L, idx, "self");
    in->flags |= lua_toboolean(L, -1) ? LMD_NODE_OWN : 0;
    lua_getfield(L, idx, "complete");
    in->complete = lua_toboolean(L, -1);
    /* the values stay on the stack: a number given as a string field is
     * converted in its stack slot, and the pointers must outlive this */
    if (addr) {
        snprintf(a->addr, sizeof a->addr, "%s", addr);
        a->family = in->proto;
        a->ifindex = in->ifindex;
        snprintf(a->ifname, sizeof a->ifname, "%s", in->ifname);
        in->addr = a;
    }
    lua_getfield(L, idx, "txt");
    if (lua_istable(L, -1) && lmd_lua_to_txt(L, -1, t) != 0) {
        lmd_txt_free(t);
        lua_error(L);
    }
    lua_pop(L, 1);
    in->txt = t;
}

static int l_seen(lua_State *L)
{
    reg_ud *u = check(L);
    double now = luaL_checknumber(L, 3);
    double wall = luaL_optnumber(L, 4, now);
    struct inst_arg x;
    read_instance(L, 2, &x);
    int rc = lmd_peers_seen(u->r, &x.in, now, wall);
    lmd_txt_free(&x.t);
    if (rc)
        return luaL_error(L, "%s", lmd_strerror(rc));
    return rethrow(L, u, 0);
}

static int l_gone(lua_State *L)
{
    reg_ud *u = check(L);
    const char *reason = luaL_optstring(L, 3, LMD_REASON_GOODBYE);
    double now = luaL_optnumber(L, 4, -1);
    struct inst_arg x;
    read_instance(L, 2, &x);
    int rc = lmd_peers_gone_at(u->r, &x.in, reason, now);
    lmd_txt_free(&x.t);
    lua_pushboolean(L, rc == 0);
    return rethrow(L, u, 1);
}

static int l_tick(lua_State *L)
{
    reg_ud *u = check(L);
    lmd_peers_tick(u->r, luaL_checknumber(L, 2));
    return rethrow(L, u, 0);
}

static int l_next_deadline(lua_State *L)
{
    reg_ud *u = check(L);
    double d = lmd_peers_next_deadline(u->r);
    if (d < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, d);
    return 1;
}

static int l_snapshot(lua_State *L)
{
    reg_ud *u = check(L);
    lmd_node_list l;
    if (lmd_peers_snapshot(u->r, lua_toboolean(L, 2), &l) != 0)
        return luaL_error(L, "out of memory");
    lmd_lua_push_node_list(L, &l);
    lmd_node_list_free(&l);
    return 1;
}

static int l_set_verdict(lua_State *L)
{
    reg_ud *u = check(L);
    size_t len = 0;
    const char *info = luaL_optlstring(L, 4, NULL, &len);
    int rc = lmd_peers_set_verdict(u->r, luaL_checkstring(L, 2), lua_toboolean(L, 3), info, len);
    lua_pushboolean(L, rc == 0);
    return 1;
}

/* r:set_trust(name, status, signer) -> the verdict before (-1: none) */
static int l_set_trust(lua_State *L)
{
    reg_ud *u = check(L);
    int rc = lmd_peers_set_trust(u->r, luaL_checkstring(L, 2), (int)luaL_checkinteger(L, 3), luaL_optstring(L, 4, NULL));
    lua_pushinteger(L, rc);
    return 1;
}

static int l_get(lua_State *L)
{
    reg_ud *u = check(L);
    const lmd_node_info *n = lmd_peers_get(u->r, luaL_checkstring(L, 2));
    if (n)
        lmd_lua_push_node(L, n);
    else
        lua_pushnil(L);
    return 1;
}

/* r:get_json(name) -> the peer as the API's JSON writes it, or nil */
static int l_get_json(lua_State *L)
{
    reg_ud *u = check(L);
    const lmd_node_info *n = lmd_peers_get(u->r, luaL_checkstring(L, 2));
    json_t *j = n ? lmd_json_node(n) : NULL;
    char *s = j ? lmd_json_dump(j, false) : NULL;
    json_decref(j);
    if (n && !s)
        return luaL_error(L, "cannot encode the peer as JSON");
    if (s)
        lua_pushstring(L, s);
    else
        lua_pushnil(L);
    free(s);
    return 1;
}

static int l_count(lua_State *L)
{
    reg_ud *u = check(L);
    lua_pushinteger(L, (lua_Integer)lmd_peers_count(u->r));
    return 1;
}

static int l_close(lua_State *L)
{
    reg_ud *u = luaL_checkudata(L, 1, REGISTRY_MT);
    int refs[3] = {u->ev_ref, u->confirm_ref, u->err_ref};
    u->ev_ref = u->confirm_ref = u->err_ref = LUA_NOREF; /* no events while tearing down */
    lmd_peers_free(u->r);
    u->r = NULL;
    for (int i = 0; i < 3; i++)
        luaL_unref(L, LUA_REGISTRYINDEX, refs[i]);
    return 0;
}

int lmd_lua_open_registry(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"seen", l_seen},         {"gone", l_gone},       {"tick", l_tick},
        {"next_deadline", l_next_deadline}, {"snapshot", l_snapshot},
        {"set_verdict", l_set_verdict}, {"set_trust", l_set_trust}, {"get", l_get}, {"get_json", l_get_json},
        {"count", l_count},
        {"close", l_close},       {"__gc", l_close},      {"__close", l_close},
        {NULL, NULL},
    };
    lmd_lua_new_class(L, REGISTRY_MT, methods);
    lua_pushcfunction(L, l_registry_new);
    return 1;
}
