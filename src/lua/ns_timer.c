/* lmdisc.timer(seconds, fn) and lmdisc.every(seconds, fn): callbacks on the
 * agent's loop, run like hooks (guarded, counted).  Each returns a handle
 * with :cancel().
 *
 * A timer is the handle itself (full userdata, liolib style), anchored in
 * the Lua registry while pending, so a script may drop the handle and the
 * timer still fires; libevent keeps the pending ones in its timer heap. */
#include "lua/namespaces.h"
#include "base/limits.h"
#include "base/loop.h"

#include <event2/event.h>
#include <lauxlib.h>
#include <stdlib.h>

#define TIMER_MT "lmdisc.timer"
#define STR_(x) #x
#define STR(x) STR_(x)

struct ptimer {
    struct ptimer *prev, *next; /* in the pending list */
    struct lmd_lua_ctx *ctx;
    struct event *ev;
    int fn_ref, self_ref;
    double interval;            /* > 0: every() */
    lua_Integer id;
    bool pending;
};

struct lmd_timers {
    struct ptimer *pending;
    unsigned n;
    lua_Integer next_id;
};

/* No longer pending: out of the list, the callback and the anchor let go. */
static void finish(struct ptimer *t)
{
    if (!t->pending)
        return;
    struct lmd_timers *ts = t->ctx->timers;
    lua_State *L = lmd_vm_state(t->ctx->vm);
    if (t->prev)
        t->prev->next = t->next;
    else
        ts->pending = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
    t->pending = false;
    ts->n--;
    if (t->ev) {
        event_free(t->ev);
        t->ev = NULL;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, t->fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
    t->fn_ref = t->self_ref = LUA_NOREF;
}

static void timer_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct ptimer *t = arg;
    struct lmd_lua_ctx *ctx = t->ctx;
    lua_State *L = lmd_vm_state(ctx->vm);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref); /* alive through the call, whatever it cancels */
    ctx->call(ctx, t->interval > 0 ? "every" : "timer", t->fn_ref, 0);
    if (t->interval <= 0)
        finish(t);
    lua_pop(L, 1);
}

static int add_timer(lua_State *L, bool repeat)
{
    struct lmd_lua_ctx *ctx = lua_touserdata(L, lua_upvalueindex(1));
    double s = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_argcheck(L, s >= 0 && s <= LMD_TIMER_MAX, 1, "seconds must be from 0 to one year");
    luaL_argcheck(L, !repeat || s >= LMD_EVERY_MIN, 1, "every() needs at least " STR(LMD_EVERY_MIN) " s");
    if (ctx->timers->n >= LMD_MAX_TIMERS) /* base/limits.h */
        return luaL_error(L, "too many timers: %d are pending; cancel some, or use one every() for "
                             "recurring work", LMD_MAX_TIMERS);
    struct ptimer *t = lua_newuserdatauv(L, sizeof *t, 0);
    *t = (struct ptimer){.ctx = ctx, .fn_ref = LUA_NOREF, .self_ref = LUA_NOREF, .interval = repeat ? s : 0,
                         .id = ++ctx->timers->next_id};
    luaL_setmetatable(L, TIMER_MT);
    if (ctx->host.base) { /* without a loop (lmdisc check) timers never run */
        t->ev = event_new(ctx->host.base, -1, repeat ? EV_PERSIST : 0, timer_fire, t);
        if (!t->ev || lmd_timer_in(t->ev, s) != 0)
            return luaL_error(L, "cannot create timer (out of memory)"); /* __gc frees ev */
    }
    lua_pushvalue(L, 2);
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -1);
    t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->pending = true;
    ctx->timers->n++;
    t->next = ctx->timers->pending;
    if (t->next)
        t->next->prev = t;
    ctx->timers->pending = t;
    return 1;
}

static int l_timer(lua_State *L) { return add_timer(L, false); }
static int l_every(lua_State *L) { return add_timer(L, true); }

static int l_cancel(lua_State *L)
{
    struct ptimer *t = luaL_checkudata(L, 1, TIMER_MT);
    bool was = t->pending;
    finish(t);
    lua_pushboolean(L, was);
    return 1;
}

static int l_tostring(lua_State *L)
{
    struct ptimer *t = luaL_checkudata(L, 1, TIMER_MT);
    lua_pushfstring(L, "lmdisc.timer (%d%s)", (int)t->id, t->pending ? "" : ", done");
    return 1;
}

/* Collected only when no longer pending (pending ones are anchored), or
 * when the VM closes. */
static int l_gc(lua_State *L)
{
    struct ptimer *t = luaL_checkudata(L, 1, TIMER_MT);
    if (t->ev)
        event_free(t->ev);
    t->ev = NULL;
    return 0;
}

void lmd_lua_open_timer(lua_State *L, struct lmd_lua_ctx *ctx)
{
    static const luaL_Reg fns[] = {{"timer", l_timer}, {"every", l_every}, {NULL, NULL}};
    static const luaL_Reg methods[] = {
        {"cancel", l_cancel}, {"__tostring", l_tostring}, {"__gc", l_gc}, {NULL, NULL}};
    if (!ctx->timers && !(ctx->timers = calloc(1, sizeof *ctx->timers)))
        luaL_error(L, "out of memory");
    lmd_lua_new_class(L, TIMER_MT, methods);
    lua_pushlightuserdata(L, ctx);
    luaL_setfuncs(L, fns, 1);
}

void lmd_lua_timers_free(struct lmd_lua_ctx *ctx)
{
    while (ctx->timers && ctx->timers->pending)
        finish(ctx->timers->pending);
    free(ctx->timers);
    ctx->timers = NULL;
}
