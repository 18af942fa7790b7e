/* The agent's policy (see policy.h): a VM (vm.c), the lmdisc.* namespaces a
 * policy sees (namespaces.c), and the mantle reached through runner.lua's
 * entry points (mantle.c).  Knot Resolver's way: callbacks are registry
 * refs, unref'd when their C object dies.  A reload builds a new VM and
 * swaps it in only if the new file loads. */
#include "policy/policy.h"
#include "base/log.h"
#include "base/util.h"
#include "policy/mantle.h"
#include "lua/marshal.h"
#include "lua/namespaces.h"
#include "policy/settings.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>

/* One loaded configuration with a VM of its own: nothing a policy did to
 * its VM (globals, the tables it could reach, timers) outlives it. */
struct rt {
    lmd_vm *vm;
    struct lmd_lua_ctx ctx;
    struct lmd_mantle mantle;
    int P_ref;             /* the lmdisc.policy object */
};

/* The VM whose user code may be running: what lmd_policy_running_at reads
 * from a signal handler. */
static lua_State *volatile current_L;

struct lmd_policy {
    struct rt *rt;         /* the configuration in force */
    char *warnings;
};

/* Call what is on the stack (an entry point and nargs arguments) with the
 * cap lifted: the mantle is not user code (vm.h). */
static int mcall(struct rt *r, int nargs, int nres)
{
    lmd_vm_lift(r->vm);
    int rc = lmd_vm_docall(lmd_vm_state(r->vm), nargs, nres);
    lmd_vm_unlift(r->vm);
    return rc;
}

/* runner.call(P, what, fn, args...): timers and spawn callbacks */
static void call_user(struct lmd_lua_ctx *ctx, const char *what, int fn_ref, int nargs)
{
    struct rt *r = ctx->call_ud;
    lua_State *L = lmd_vm_state(r->vm);
    int first = lua_gettop(L) - nargs + 1; /* the arguments are on top */
    lmd_vm_lift(r->vm);
    lmd_mantle_push(L, &r->mantle, LMD_MANTLE_CALL);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->P_ref);
    lua_pushstring(L, what);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
    if (nargs) /* args, call, P, what, fn -> call, P, what, fn, args */
        lua_rotate(L, first, -nargs);
    lmd_vm_unlift(r->vm);
    if (ctx->host.busy)
        ctx->host.busy(ctx->host.ud, 1);
    if (mcall(r, 3 + nargs, 0) != LUA_OK) {
        lmd_error("policy: %s: %s", what, lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    if (ctx->host.busy)
        ctx->host.busy(ctx->host.ud, 0);
}

/* build_api(ctx) -> api, internals; run under pcall: it allocates */
static int build_api(lua_State *L)
{
    struct lmd_lua_ctx *ctx = lua_touserdata(L, 1);
    lmd_lua_push_policy_api(L, ctx);
    lmd_lua_push_internals(L, ctx);
    return 2;
}

/* The entry point fn with P as its argument, one result on the stack. */
static int ask(struct rt *r, enum lmd_mantle_fn fn)
{
    lua_State *L = lmd_vm_state(r->vm);
    lmd_mantle_push(L, &r->mantle, fn);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->P_ref);
    return mcall(r, 1, 1);
}

static void rt_free(struct rt *r)
{
    if (!r)
        return;
    if (r->vm) {
        if (current_L == lmd_vm_state(r->vm))
            current_L = NULL;
        lmd_lua_timers_free(&r->ctx);
        lmd_lua_spawn_free(&r->ctx);
        lmd_vm_free(r->vm);
    }
    free(r);
}

/* package.loaded.lmdisc (the mantle's config.lua reads constants from it),
 * the entry points, and the schema's limits until the file says otherwise */
static int setup_vm(struct rt *r, lmd_err *err)
{
    lua_State *L = lmd_vm_state(r->vm);
    lmd_mantle_preload(L);
    lua_pushcfunction(L, lmd_lua_require_module);
    if (mcall(r, 0, 0) != LUA_OK) {
        lmd_err_set(err, LMD_ENOMEM, "cannot open the lmdisc module: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return LMD_ENOMEM;
    }
    int rc = lmd_mantle_open(L, &r->mantle, err);
    if (rc)
        return rc;
    lmd_mantle_push(L, &r->mantle, LMD_MANTLE_DEFAULTS);
    if (mcall(r, 0, 1) != LUA_OK) {
        lmd_err_set(err, LMD_ELUA, "internal error: no default settings: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return LMD_ELUA;
    }
    struct lmd_config d;
    rc = lmd_lua_read_settings(L, -1, &d, err);
    lua_pop(L, 1);
    if (rc == 0)
        lmd_vm_set_limits(r->vm, d.policy.deadline, d.policy.memory_mb);
    lmd_config_clear(&d);
    return rc;
}

/* runner.load(path, api, internals), then runner.settings(P) into cfg.
 * On success P is referenced in r->P_ref. */
static int load_file(struct rt *r, const char *path, const char *source, size_t source_len, struct lmd_config *cfg,
                     lmd_err *err)
{
    lua_State *L = lmd_vm_state(r->vm);
    lmd_mantle_push(L, &r->mantle, LMD_MANTLE_LOAD);
    lua_pushstring(L, path);
    lua_pushcfunction(L, build_api);
    lua_pushlightuserdata(L, &r->ctx);
    if (mcall(r, 1, 2) != LUA_OK) {
        lmd_err_set(err, LMD_ENOMEM, "cannot set up the policy's environment: %s", lua_tostring(L, -1));
        lua_pop(L, 3);
        return LMD_ENOMEM;
    }
    if (source) { /* the text that loaded before (a worker restart), not the file as it is now */
        lmd_vm_lift(r->vm);
        lua_pushlstring(L, source, source_len);
        lua_setfield(L, -2, "source");
        lmd_vm_unlift(r->vm);
    }
    if (mcall(r, 3, 3) != LUA_OK) {
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
    r->P_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (ask(r, LMD_MANTLE_SETTINGS) != LUA_OK) {
        lmd_err_set(err, LMD_ELUA, "internal error reading the settings: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return LMD_ELUA;
    }
    int rc = lmd_lua_read_settings(L, -1, cfg, err);
    lua_pop(L, 1);
    return rc;
}

/* A VM with path loaded, its limits the file's. */
static int rt_new(const char *path, const char *source, size_t source_len, const struct lmd_policy_host *host,
                  struct lmd_config *cfg, struct rt **out, lmd_err *err)
{
    struct rt *r = *out = calloc(1, sizeof *r);
    if (!r)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    r->P_ref = LUA_NOREF;
    r->ctx.host = *host;
    r->ctx.call = call_user;
    r->ctx.call_ud = r;
    int rc = lmd_vm_new(0, 0, &r->vm, err);
    if (rc == 0) {
        r->ctx.vm = r->vm;
        current_L = lmd_vm_state(r->vm); /* a stop while loading says where */
        rc = setup_vm(r, err);
    }
    if (rc == 0)
        rc = lmd_lua_spawn_init(&r->ctx, err);
    if (rc == 0)
        rc = load_file(r, path, source, source_len, cfg, err);
    if (rc) {
        rt_free(r);
        *out = NULL;
        return rc;
    }
    lmd_vm_set_limits(r->vm, cfg->policy.deadline, cfg->policy.memory_mb);
    return 0;
}

static void take_warnings(lmd_policy *p)
{
    lua_State *L = lmd_vm_state(p->rt->vm);
    free(p->warnings);
    p->warnings = NULL;
    if (ask(p->rt, LMD_MANTLE_WARNINGS) == LUA_OK)
        p->warnings = lmd_strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
}

int lmd_policy_new(const char *path, const struct lmd_policy_host *host, struct lmd_config *cfg,
                   lmd_policy **out, lmd_err *err)
{
    return lmd_policy_new_source(path, NULL, 0, host, cfg, out, err);
}

int lmd_policy_new_source(const char *path, const char *source, size_t source_len,
                          const struct lmd_policy_host *host, struct lmd_config *cfg, lmd_policy **out, lmd_err *err)
{
    lmd_policy *p = *out = calloc(1, sizeof *p);
    if (!p)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    int rc = rt_new(path, source, source_len, host, cfg, &p->rt, err);
    if (rc) {
        free(p);
        *out = NULL;
        return rc;
    }
    take_warnings(p);
    return 0;
}

void lmd_policy_free(lmd_policy *p)
{
    if (!p)
        return;
    rt_free(p->rt);
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
    size_t len = 0;
    const char *info = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    out->info = info ? lmd_strndup(info, len) : NULL;
    out->info_len = len;
    lua_pop(L, 3);
    out->changes = changes;
    if (lua_getfield(L, idx, "changes") == LUA_TTABLE) { /* "info" only if info() changed */
        out->changes = 0;
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            const char *c = lua_tostring(L, -1);
            for (unsigned bit = 1; c && bit <= LMD_CH_LAST; bit <<= 1)
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
    struct rt *r = p->rt;
    lua_State *L = lmd_vm_state(r->vm);
    *out = (struct lmd_verdict){.emitted = -1, .changes = changes};
    int top = lua_gettop(L);
    lmd_vm_lift(r->vm); /* the pushes are outside docall's protection */
    lmd_mantle_push(L, &r->mantle, LMD_MANTLE_PEER_EVENT);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->P_ref);
    lmd_lua_push_event(L, kind, peer, old, changes, reason);
    lmd_vm_unlift(r->vm);
    if (mcall(r, 6, 1) != LUA_OK) {
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

/* The old policy's verdicts {name = {keep =, info =}} copied from its VM
 * onto the new VM's stack (C strings in between: two VMs share nothing). */
static int push_old_verdicts(struct rt *old, struct rt *r)
{
    lua_State *O = lmd_vm_state(old->vm), *L = lmd_vm_state(r->vm);
    if (ask(old, LMD_MANTLE_VERDICTS) != LUA_OK || !lua_istable(O, -1)) {
        lmd_error("reload: the running policy's verdicts could not be read: %s", lua_tostring(O, -1));
        lua_pop(O, 1);
        lua_newtable(L);
        return 0;
    }
    lmd_vm_lift(r->vm);
    lua_newtable(L);
    lua_pushnil(O);
    while (lua_next(O, -2)) {
        if (lua_type(O, -2) == LUA_TSTRING && lua_istable(O, -1)) {
            lua_createtable(L, 0, 2);
            lua_getfield(O, -1, "keep");
            lua_pushboolean(L, lua_toboolean(O, -1));
            lua_setfield(L, -2, "keep");
            lua_getfield(O, -2, "info");
            if (lua_type(O, -1) == LUA_TSTRING) {
                size_t n;
                const char *s = lua_tolstring(O, -1, &n);
                lua_pushlstring(L, s, n);
                lua_setfield(L, -2, "info");
            }
            lua_pop(O, 2);
            lua_setfield(L, -2, lua_tostring(O, -2));
        }
        lua_pop(O, 1);
    }
    lua_pop(O, 1);
    lmd_vm_unlift(r->vm);
    return 0;
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
    struct rt *r;
    struct lmd_config c;
    /* a fresh VM: what the running policy did to its own stays there */
    int rc = rt_new(path, NULL, 0, &p->rt->ctx.host, &c, &r, err);
    if (rc)
        return rc;
    lua_State *L = lmd_vm_state(r->vm);
    lmd_vm_lift(r->vm);
    lmd_mantle_push(L, &r->mantle, LMD_MANTLE_ADOPT);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->P_ref);
    push_old_verdicts(p->rt, r);
    lmd_lua_push_node_list(L, peers);
    lmd_vm_unlift(r->vm);
    if (mcall(r, 3, 1) != LUA_OK) {
        lmd_err_set(err, LMD_ELUA, "%s: taking over from the running policy failed: %s", path, lua_tostring(L, -1));
        lmd_config_clear(&c);
        rt_free(r);
        return LMD_ELUA;
    }
    /* the new policy is in force: the old VM goes, its timers and
     * callbacks with it; its children are reaped by the new one */
    lmd_lua_spawn_adopt(&r->ctx, &p->rt->ctx);
    rt_free(p->rt);
    p->rt = r;
    pass_verdicts(L, peers, fn, ud);
    lua_pop(L, 1);
    take_warnings(p);
    *cfg = c;
    return 0;
}

int lmd_policy_adopt(lmd_policy *p, const lmd_node_list *peers, const struct lmd_old_verdict *old,
                     lmd_policy_verdict_fn fn, void *ud, lmd_err *err)
{
    struct rt *r = p->rt;
    lua_State *L = lmd_vm_state(r->vm);
    lmd_vm_lift(r->vm);
    lmd_mantle_push(L, &r->mantle, LMD_MANTLE_ADOPT);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->P_ref);
    lua_createtable(L, 0, (int)peers->n);
    for (size_t i = 0; i < peers->n; i++) {
        lua_createtable(L, 0, 2);
        lua_pushboolean(L, old[i].keep);
        lua_setfield(L, -2, "keep");
        if (old[i].info) {
            lua_pushlstring(L, old[i].info, old[i].info_len);
            lua_setfield(L, -2, "info");
        }
        lua_setfield(L, -2, peers->nodes[i].name);
    }
    lmd_lua_push_node_list(L, peers);
    lmd_vm_unlift(r->vm);
    if (mcall(r, 3, 1) != LUA_OK) {
        lmd_err_set(err, LMD_ELUA, "taking over the peers failed: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return LMD_ELUA;
    }
    pass_verdicts(L, peers, fn, ud);
    lua_pop(L, 1);
    return 0;
}

void lmd_policy_start(lmd_policy *p, const lmd_node_list *peers, const char *why)
{
    struct rt *r = p->rt;
    lua_State *L = lmd_vm_state(r->vm);
    lmd_vm_lift(r->vm);
    lmd_mantle_push(L, &r->mantle, LMD_MANTLE_START);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->P_ref);
    lmd_lua_push_node_list(L, peers);
    lua_pushstring(L, why);
    lmd_vm_unlift(r->vm);
    if (mcall(r, 3, 0) != LUA_OK) {
        lmd_error("policy: on_start: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
}

void lmd_policy_watch(lmd_policy *p) { current_L = p ? lmd_vm_state(p->rt->vm) : NULL; }
void lmd_policy_watch_lua(struct lua_State *L) { current_L = L; }

/* From a signal handler, while the main thread is stuck in a C function
 * called from Lua: the stack does not move, and "Sl" allocates nothing. */
void lmd_policy_running_at(char *buf, size_t len)
{
    lua_State *L = current_L;
    lua_Debug ar;
    buf[0] = '\0';
    for (int level = 0; L && level < 64 && lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0 || !strncmp(ar.short_src, "[lmdisc]", 8))
            continue;
        snprintf(buf, len, "%s:%d", ar.short_src, ar.currentline);
        return;
    }
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
    lua_State *L = lmd_vm_state(p->rt->vm);
    memset(out, 0, sizeof *out);
    out->memory = lmd_vm_memory(p->rt->vm);
    if (ask(p->rt, LMD_MANTLE_STATS) == LUA_OK && lua_istable(L, -1)) {
        out->hook_runs = field_num(L, -1, "hook_runs");
        out->hook_errors = field_num(L, -1, "hook_errors");
        out->hook_time = field_num(L, -1, "hook_time");
    }
    lua_pop(L, 1);
}

void lmd_policy_hooks(lmd_policy *p, char *buf, size_t len)
{
    lua_State *L = lmd_vm_state(p->rt->vm);
    buf[0] = '\0';
    if (ask(p->rt, LMD_MANTLE_HOOKS) == LUA_OK && lua_istable(L, -1)) {
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

void lmd_policy_where(lmd_policy *p, const char *section, char *buf, size_t len)
{
    struct rt *r = p->rt;
    lua_State *L = lmd_vm_state(r->vm);
    lmd_mantle_push(L, &r->mantle, LMD_MANTLE_WHERE);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->P_ref);
    lua_pushstring(L, section);
    const char *s = mcall(r, 2, 1) == LUA_OK && lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    snprintf(buf, len, "%s", s ? s : "?");
    lua_pop(L, 1);
}
