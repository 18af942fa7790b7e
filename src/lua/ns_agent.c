/* lmdisc.* in the agent: peers(), REGISTRY:list_alive(), self(), set_txt{},
 * now().  Each function has the policy's context as upvalue. */
#include "lua/namespaces.h"
#include "base/txt.h"
#include "base/util.h"
#include "lua/marshal.h"

#include <lauxlib.h>
#include <stdio.h>

static struct lmd_lua_ctx *ctx_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

/* A list of peers from the host into Lua (the cap lifted: see vm.h). */
static int push_peers(lua_State *L, int (*get)(void *ud, lmd_node_list *out))
{
    struct lmd_lua_ctx *ctx = ctx_of(L);
    lmd_node_list l = {0};
    if (get && get(ctx->host.ud, &l) != 0)
        return luaL_error(L, "out of memory");
    lmd_vm_lift(ctx->vm);
    lmd_lua_push_node_list(L, &l);
    lmd_vm_unlift(ctx->vm);
    lmd_node_list_free(&l);
    return 1;
}

static int l_peers(lua_State *L) { return push_peers(L, ctx_of(L)->host.peers); }

/* every live peer on the network: the mantle applies the policy's own
 * verdicts on top (lua/lmdisc/policy.lua), so that inside a hook peers()
 * already agrees with the event being handled */
static int l_peers_all(lua_State *L) { return push_peers(L, ctx_of(L)->host.peers_all); }

static int l_self(lua_State *L)
{
    struct lmd_lua_ctx *ctx = ctx_of(L);
    lmd_node_info n = {0};
    const char *state = "none";
    lmd_vm_lift(ctx->vm);
    if (ctx->host.self && ctx->host.self(ctx->host.ud, &n, &state) == 0) {
        lmd_lua_push_node(L, &n);
        lmd_node_info_clear(&n);
    } else {
        lua_newtable(L);
    }
    lua_pushstring(L, state);
    lua_setfield(L, -2, "state");
    lmd_node_list regs = {0};
    if (ctx->host.services && ctx->host.services(ctx->host.ud, &regs) == 0) {
        lmd_lua_push_node_list(L, &regs); /* services = { ... }: registered through the API */
        lua_setfield(L, -2, "services");
    }
    lmd_node_list_free(&regs);
    lmd_vm_unlift(ctx->vm);
    return 1;
}

/* One key of set_txt{} applied to t; 0 or LMD_ETXT with err filled. */
static int apply_txt_item(lua_State *L, lmd_txt *t, char *err, size_t errlen)
{
    int kt = lua_type(L, -2), vt = lua_type(L, -1);
    if (kt != LUA_TSTRING)
        return lmd_errbuf(err, errlen, LMD_ETXT, "TXT keys must be strings");
    const char *key = lua_tostring(L, -2);
    if (vt == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
        (void)lmd_txt_remove(t, key); /* LMD_ENOTFOUND: nothing to remove */
        return 0;
    }
    if (vt == LUA_TBOOLEAN)
        return lmd_txt_set(t, key, NULL, 0, false, err, errlen);
    if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
        return lmd_errbuf(err, errlen, LMD_ETXT, "TXT value for '%.40s' must be a string, number, true or false",
                          key);
    size_t len;
    lua_pushvalue(L, -1); /* tolstring on a copy: never convert a key in place */
    const char *v = lua_tolstring(L, -1, &len);
    int rc = lmd_txt_set(t, key, v, len, true, err, errlen);
    lua_pop(L, 1);
    return rc;
}

/* set_txt{key = "value" | number | true | false}: false removes the key. */
static int l_set_txt(lua_State *L)
{
    struct lmd_lua_ctx *ctx = ctx_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lmd_node_info self = {0};
    const char *state;
    if (!ctx->host.self || !ctx->host.set_txt || ctx->host.self(ctx->host.ud, &self, &state) != 0)
        return lmd_lua_fail(L, "nothing is announced: add announce { port = ... } to the configuration");
    lmd_txt t = self.txt;
    self.txt = (lmd_txt){0};
    lmd_node_info_clear(&self);
    char err[320] = "";
    int rc = 0;
    lmd_vm_lift(ctx->vm); /* t is ours until freed below: no memory error in between */
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, 1)) {
        rc = apply_txt_item(L, &t, err, sizeof err);
        lua_pop(L, 1);
    }
    if (rc)
        lua_pop(L, 1); /* the key lua_next left */
    lmd_vm_unlift(ctx->vm);
    if (rc == 0)
        rc = ctx->host.set_txt(ctx->host.ud, &t, err, sizeof err);
    lmd_txt_free(&t);
    if (rc)
        return lmd_lua_fail(L, *err ? err : lmd_strerror(rc));
    lua_pushboolean(L, 1);
    return 1;
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, lmd_now_wall());
    return 1;
}

static int l_not_in_agent(lua_State *L)
{
    return luaL_error(L, "not available in the agent, where it would block the loop or announce a "
                         "second time: use lmdisc.peers() (the live registry) and announce { ... }");
}

void lmd_lua_open_agent(lua_State *L, struct lmd_lua_ctx *ctx)
{
    static const luaL_Reg fns[] = {
        {"peers", l_peers}, {"self", l_self}, {"set_txt", l_set_txt}, {"now", l_now}, {NULL, NULL},
    };
    lua_pushlightuserdata(L, ctx);
    luaL_setfuncs(L, fns, 1);
    lua_newtable(L); /* REGISTRY, as the original module's */
    lua_pushlightuserdata(L, ctx);
    lua_pushcclosure(L, l_peers, 1); /* REGISTRY:list_alive(): the argument (self) is ignored */
    lua_setfield(L, -2, "list_alive");
    lua_setfield(L, -2, "REGISTRY");
    /* these block (discover) or run a second announcer (announce_self): in
     * the agent, lmdisc.peers() and announce{} do those jobs */
    static const char *const elsewhere[] = {"discover_nodes", "announce_self", "start_registry"};
    for (size_t i = 0; i < sizeof elsewhere / sizeof *elsewhere; i++) {
        lua_pushcfunction(L, l_not_in_agent);
        lua_setfield(L, -2, elsewhere[i]);
    }
}

void lmd_lua_push_peers_all(lua_State *L, struct lmd_lua_ctx *ctx)
{
    lua_pushlightuserdata(L, ctx);
    lua_pushcclosure(L, l_peers_all, 1);
}
