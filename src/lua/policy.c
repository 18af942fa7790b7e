/* The agent's policy (see policy.h): a VM (vm.c), the lmdisc.* namespaces a
 * policy sees (namespaces.c), and the mantle reached through runner.lua's
 * entry points (mantle.c).  Knot Resolver's way: callbacks are registry
 * refs, unref'd when their C object dies. */
#include "lua/policy.h"
#include "base/log.h"
#include "base/util.h"
#include "lua/mantle.h"
#include "lua/marshal.h"
#include "lua/namespaces.h"
#include "lua/settings.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>

struct lmd_policy {
    lmd_vm *vm;
    struct lmd_lua_ctx ctx;
    struct lmd_mantle mantle;
    int P_ref;             /* the running lmdisc.policy object */
    char *warnings;
};

/* Call what is on the stack (an entry point and nargs arguments) with the
 * cap lifted: the mantle is not user code (vm.h). */
static int mcall(lmd_policy *p, int nargs, int nres)
{
    lmd_vm_lift(p->vm);
    int rc = lmd_vm_docall(lmd_vm_state(p->vm), nargs, nres);
    lmd_vm_unlift(p->vm);
    return rc;
}

/* runner.call(P, what, fn, args...): timers and spawn callbacks */
static void call_user(struct lmd_lua_ctx *ctx, const char *what, int fn_ref, int nargs)
{
    lmd_policy *p = ctx->call_ud;
    lua_State *L = lmd_vm_state(p->vm);
    int first = lua_gettop(L) - nargs + 1; /* the arguments are on top */
    lmd_vm_lift(p->vm);
    lmd_mantle_push(L, &p->mantle, LMD_MANTLE_CALL);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->P_ref);
    lua_pushstring(L, what);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
    if (nargs) /* args, call, P, what, fn -> call, P, what, fn, args */
        lua_rotate(L, first, -nargs);
    lmd_vm_unlift(p->vm);
    if (mcall(p, 3 + nargs, 0) != LUA_OK) {
        lmd_error("policy: %s: %s", what, lua_tostring(L, -1));
        lua_pop(L, 1);
    }
}

/* build_api(ctx) -> api, internals; run under pcall: it allocates */
static int build_api(lua_State *L)
{
    struct lmd_lua_ctx *ctx = lua_touserdata(L, 1);
    lmd_lua_push_policy_api(L, ctx);
    lmd_lua_push_internals(L, ctx);
    return 2;
}

/* runner.load(path, api, internals): leaves P on the stack. */
static int load_policy(lmd_policy *p, const char *path, lmd_err *err)
{
    lua_State *L = lmd_vm_state(p->vm);
    lmd_mantle_push(L, &p->mantle, LMD_MANTLE_LOAD);
    lua_pushstring(L, path);
    lua_pushcfunction(L, build_api);
    lua_pushlightuserdata(L, &p->ctx);
    if (mcall(p, 1, 2) != LUA_OK) {
        lmd_err_set(err, LMD_ENOMEM, "cannot set up the policy's environment: %s", lua_tostring(L, -1));
        lua_pop(L, 3);
        return LMD_ENOMEM;
    }
    if (mcall(p, 3, 3) != LUA_OK) {
        lmd_err_set(err, LMD_ELUA, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return LMD_ELUA;
    }
    /* P, err, warnings */
    if (lua_isnil(L, -3)) {
        lmd_err_set(err, LMD_ELUA, "%s", lua_isstring(L, -2) ? lua_tostring(L, -2) : "cannot load the configuration");
        lua_pop(L, 3);
        return LMD_ELUA;
    }
    lua_pop(L, 2);
    return 0;
}

/* runner.settings(P) of the P on top, into c */
static int read_settings(lmd_policy *p, struct lmd_config *c, lmd_err *err)
{
    lua_State *L = lmd_vm_state(p->vm);
    lmd_mantle_push(L, &p->mantle, LMD_MANTLE_SETTINGS);
    lua_pushvalue(L, -2);
    if (mcall(p, 1, 1) != LUA_OK) {
        lmd_err_set(err, LMD_ELUA, "internal error reading the settings: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return LMD_ELUA;
    }
    int rc = lmd_lua_read_settings(L, -1, c, err);
    lua_pop(L, 1);
    return rc;
}

/* runner.<fn>(P) for the running P, leaving one result on the stack. */
static int ask(lmd_policy *p, enum lmd_mantle_fn fn)
{
    lua_State *L = lmd_vm_state(p->vm);
    lmd_mantle_push(L, &p->mantle, fn);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->P_ref);
    return mcall(p, 1, 1);
}

static void take_warnings(lmd_policy *p)
{
    lua_State *L = lmd_vm_state(p->vm);
    free(p->warnings);
    p->warnings = NULL;
    if (ask(p, LMD_MANTLE_WARNINGS) == LUA_OK)
        p->warnings = lmd_strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
}

static void apply_limits(lmd_policy *p, const struct lmd_config *c)
{
    lmd_vm_set_limits(p->vm, c->policy.deadline, c->policy.memory_mb);
}

/* package.loaded.lmdisc (the mantle's config.lua reads constants from it),
 * the entry points, and the schema's limits until a file says otherwise */
static int setup_vm(lmd_policy *p, lmd_err *err)
{
    lua_State *L = lmd_vm_state(p->vm);
    lmd_mantle_preload(L);
    lua_pushcfunction(L, lmd_lua_require_module);
    if (mcall(p, 0, 0) != LUA_OK) {
        lmd_err_set(err, LMD_ENOMEM, "cannot open the lmdisc module: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return LMD_ENOMEM;
    }
    int rc = lmd_mantle_open(L, &p->mantle, err);
    if (rc)
        return rc;
    lmd_mantle_push(L, &p->mantle, LMD_MANTLE_DEFAULTS);
    if (mcall(p, 0, 1) != LUA_OK) {
        lmd_err_set(err, LMD_ELUA, "internal error: no default settings: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return LMD_ELUA;
    }
    struct lmd_config d;
    rc = lmd_lua_read_settings(L, -1, &d, err);
    lua_pop(L, 1);
    if (rc == 0)
        apply_limits(p, &d);
    lmd_config_clear(&d);
    return rc;
}

int lmd_policy_new(const char *path, const struct lmd_policy_host *host, struct lmd_config *cfg,
                   lmd_policy **out, lmd_err *err)
{
    lmd_policy *p = *out = calloc(1, sizeof *p);
    if (!p)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    p->P_ref = LUA_NOREF;
    p->ctx.host = *host;
    p->ctx.call = call_user;
    p->ctx.call_ud = p;
    int rc = lmd_vm_new(0, 0, &p->vm, err);
    if (rc == 0) {
        p->ctx.vm = p->vm;
        rc = setup_vm(p, err);
    }
    if (rc == 0)
        rc = lmd_lua_spawn_init(&p->ctx, err);
    if (rc == 0)
        rc = load_policy(p, path, err);
    if (rc == 0 && (rc = read_settings(p, cfg, err)) != 0)
        lua_pop(lmd_vm_state(p->vm), 1);
    if (rc) {
        lmd_policy_free(p);
        *out = NULL;
        return rc;
    }
    p->P_ref = luaL_ref(lmd_vm_state(p->vm), LUA_REGISTRYINDEX);
    apply_limits(p, cfg);
    take_warnings(p);
    return 0;
}

void lmd_policy_free(lmd_policy *p)
{
    if (!p)
        return;
    if (p->vm) {
        lmd_lua_timers_free(&p->ctx);
        lmd_lua_spawn_free(&p->ctx);
        lmd_vm_free(p->vm);
    }
    free(p->warnings);
    free(p);
}

static int kind_from(const char *s)
{
    if (!s)
        return -1;
    return !strcmp(s, "join") ? LMD_EV_JOIN : !strcmp(s, "update") ? LMD_EV_UPDATE
                                            : !strcmp(s, "leave")  ? LMD_EV_LEAVE : -1;
}

/* A verdict table {emitted =, keep =, info =, changes =} into out;
 * changes: what to report when the policy gave no list of its own. */
static void read_verdict(lua_State *L, int idx, unsigned changes, struct lmd_verdict *out)
{
    idx = lua_absindex(L, idx);
    lua_getfield(L, idx, "emitted");
    out->emitted = kind_from(lua_tostring(L, -1));
    lua_getfield(L, idx, "keep");
    out->keep = lua_toboolean(L, -1);
    lua_getfield(L, idx, "info");
    out->info = lua_isstring(L, -1) ? lmd_strdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 3);
    out->changes = changes;
    if (lua_getfield(L, idx, "changes") == LUA_TTABLE) { /* "info" only if info() changed */
        out->changes = 0;
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            const char *c = lua_tostring(L, -1);
            for (unsigned bit = 1; c && bit <= LMD_CH_INFO; bit <<= 1)
                if (!strcmp(c, lmd_change_name(bit)))
                    out->changes |= bit;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

void lmd_verdict_clear(struct lmd_verdict *v)
{
    free(v->info);
    v->info = NULL;
}

int lmd_policy_event(lmd_policy *p, enum lmd_event_kind kind, const lmd_node_info *peer,
                     const lmd_node_info *old, unsigned changes, const char *reason,
                     struct lmd_verdict *out)
{
    lua_State *L = lmd_vm_state(p->vm);
    *out = (struct lmd_verdict){.emitted = -1, .changes = changes};
    int top = lua_gettop(L);
    lmd_vm_lift(p->vm); /* the pushes are outside docall's protection */
    lmd_mantle_push(L, &p->mantle, LMD_MANTLE_PEER_EVENT);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->P_ref);
    lmd_lua_push_event(L, kind, peer, old, changes, reason);
    lmd_vm_unlift(p->vm);
    if (mcall(p, 6, 1) != LUA_OK) {
        char e[128];
        lmd_error("policy: %s event for \"%s\" failed: %s", lmd_event_kind_name(kind),
                  lmd_escape_str(peer->name, e, sizeof e), lua_tostring(L, -1));
        lua_settop(L, top);
        /* keep what we had: a join is not kept, an update stays kept */
        out->keep = kind == LMD_EV_UPDATE;
        return LMD_ELUA;
    }
    read_verdict(L, -1, changes, out);
    lua_settop(L, top);
    return 0;
}

/* A refused reload: the new file's timers go, the generation stays. */
static int refuse(lmd_policy *p, int top, unsigned old_gen, int rc)
{
    lua_settop(lmd_vm_state(p->vm), top);
    lmd_lua_timers_drop(&p->ctx, p->ctx.gen);
    p->ctx.gen = old_gen;
    return rc;
}

static void pass_verdicts(lua_State *L, const lmd_node_list *peers, lmd_policy_verdict_fn fn, void *ud)
{
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        struct lmd_verdict vd;
        read_verdict(L, -1, 0, &vd);
        lua_getfield(L, -1, "name");
        const char *name = lua_tostring(L, -1);
        for (size_t j = 0; name && fn && j < peers->n; j++)
            if (!strcmp(peers->nodes[j].name, name))
                fn(ud, &peers->nodes[j], &vd);
        lmd_verdict_clear(&vd);
        lua_pop(L, 2);
    }
}

int lmd_policy_reload(lmd_policy *p, const char *path, const lmd_node_list *peers, struct lmd_config *cfg,
                      lmd_policy_verdict_fn fn, void *ud, lmd_err *err)
{
    lua_State *L = lmd_vm_state(p->vm);
    int top = lua_gettop(L);
    /* Timers the new file creates while loading belong to the new
     * generation: dropped if the file is refused, kept if it takes over. */
    unsigned old_gen = p->ctx.gen++;
    /* loading runs at the old limits: a broken file cannot take more */
    int rc = load_policy(p, path, err);
    if (rc)
        return refuse(p, top, old_gen, rc);
    struct lmd_config c;
    if ((rc = read_settings(p, &c, err)) != 0)
        return refuse(p, top, old_gen, rc);
    int newP = lua_gettop(L);
    lmd_vm_lift(p->vm);
    lmd_mantle_push(L, &p->mantle, LMD_MANTLE_ADOPT);
    lua_pushvalue(L, newP);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->P_ref);
    lmd_lua_push_node_list(L, peers);
    lmd_vm_unlift(p->vm);
    if (mcall(p, 3, 1) != LUA_OK) {
        lmd_err_set(err, LMD_ELUA, "%s: taking over from the running policy failed: %s", path, lua_tostring(L, -1));
        lmd_config_clear(&c);
        return refuse(p, top, old_gen, LMD_ELUA);
    }
    /* the new policy owns the peers now; the old one's timers go with it */
    lmd_lua_timers_drop(&p->ctx, old_gen);
    pass_verdicts(L, peers, fn, ud);
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, p->P_ref);
    p->P_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* pops newP */
    lua_settop(L, top);
    apply_limits(p, &c);
    take_warnings(p);
    *cfg = c;
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}

static double field_num(lua_State *L, int idx, const char *k)
{
    lua_getfield(L, idx, k);
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

void lmd_policy_stats(lmd_policy *p, struct lmd_policy_stats *out)
{
    lua_State *L = lmd_vm_state(p->vm);
    memset(out, 0, sizeof *out);
    out->memory = lmd_vm_memory(p->vm);
    if (ask(p, LMD_MANTLE_STATS) == LUA_OK && lua_istable(L, -1)) {
        out->hook_runs = field_num(L, -1, "hook_runs");
        out->hook_errors = field_num(L, -1, "hook_errors");
        out->hook_time = field_num(L, -1, "hook_time");
    }
    lua_pop(L, 1);
}

void lmd_policy_hooks(lmd_policy *p, char *buf, size_t len)
{
    lua_State *L = lmd_vm_state(p->vm);
    buf[0] = '\0';
    if (ask(p, LMD_MANTLE_HOOKS) == LUA_OK && lua_istable(L, -1)) {
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            size_t used = strlen(buf);
            snprintf(buf + used, len - used, "%s%s", i > 1 ? ", " : "", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

const char *lmd_policy_warnings(lmd_policy *p) { return p->warnings ? p->warnings : ""; }
