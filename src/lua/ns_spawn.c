/* lmdisc.spawn(argv, {env =, stdin =, on_exit = fn(code, signal)}): run a
 * program without ever blocking the agent.  stdin goes into the pipe's
 * buffer at once; exits are noticed through SIGCHLD on the loop, and only
 * the children spawned here are reaped. */
#include "lua/namespaces.h"
#include "base/log.h"
#include "lua/marshal.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_CHILDREN 64
#define SPAWN_STDIN_MAX 65536 /* fits a pipe's buffer: written without blocking */

struct pchild {
    struct pchild *next;
    pid_t pid;
    int fn_ref;
};

struct lmd_children {
    struct pchild *list;
    unsigned n;
    struct event *sigchld;
};

static void exited(struct lmd_lua_ctx *ctx, struct pchild *c, int st)
{
    if (c->fn_ref != LUA_NOREF) {
        lua_State *L = lmd_vm_state(ctx->vm);
        lmd_vm_lift(ctx->vm); /* no pcall around these pushes */
        lua_pushinteger(L, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        if (WIFSIGNALED(st))
            lua_pushstring(L, sigabbrev_np(WTERMSIG(st)) ? sigabbrev_np(WTERMSIG(st)) : "?");
        else
            lua_pushnil(L);
        lmd_vm_unlift(ctx->vm);
        ctx->call(ctx, "spawn on_exit", c->fn_ref, 2);
        luaL_unref(L, LUA_REGISTRYINDEX, c->fn_ref);
    }
    free(c);
}

/* SIGCHLD: reap our own children, and only them (waitpid(-1) would take
 * the exit status of processes other parts of the program wait for). */
static void reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct lmd_lua_ctx *ctx = arg;
    struct lmd_children *ch = ctx->children;
    for (struct pchild **pp = &ch->list; *pp;) {
        struct pchild *c = *pp;
        int st;
        if (waitpid(c->pid, &st, WNOHANG) != c->pid) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        ch->n--;
        exited(ctx, c, st); /* may spawn: new children go in front of the list */
    }
}

/* environ with opts.env laid over it; the strings made here are listed in
 * *owned so the caller can free them. */
static char **build_env(lua_State *L, int opts, char ***owned, size_t *nowned)
{
    size_t n = 0, extra = 0;
    while (environ[n])
        n++;
    *owned = NULL;
    *nowned = 0;
    bool has = opts && lua_getfield(L, opts, "env") == LUA_TTABLE;
    if (has) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            extra++;
            lua_pop(L, 1);
        }
    }
    char **env = calloc(n + extra + 1, sizeof *env);
    *owned = calloc(extra + 1, sizeof **owned);
    if (!env || !*owned) {
        free(env);
        free(*owned);
        *owned = NULL;
        if (opts)
            lua_pop(L, 1);
        return NULL;
    }
    size_t k = 0;
    for (; k < n; k++)
        env[k] = environ[k];
    if (has) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            int kt = lua_type(L, -2), vt = lua_type(L, -1);
            if (kt == LUA_TSTRING && (vt == LUA_TSTRING || vt == LUA_TNUMBER)) {
                const char *key = lua_tostring(L, -2);
                size_t klen = strlen(key);
                lua_pushvalue(L, -1);
                const char *val = lua_tostring(L, -1);
                char *kv = malloc(klen + strlen(val) + 2);
                lua_pop(L, 1);
                if (kv) {
                    sprintf(kv, "%s=%s", key, val);
                    (*owned)[(*nowned)++] = kv;
                    size_t j = 0; /* replace an inherited variable of that name */
                    while (j < k && !(strncmp(env[j], key, klen) == 0 && env[j][klen] == '='))
                        j++;
                    env[j] = kv;
                    if (j == k)
                        k++;
                }
            }
            lua_pop(L, 1);
        }
    }
    if (opts)
        lua_pop(L, 1);
    env[k] = NULL;
    return env;
}

/* spawn(argv, {env = {K = "v"}, stdin = "text", on_exit = function(code, signal) end})
 * -> pid | nil, err.  Never blocks: stdin is written into the pipe's buffer
 * at once, the exit is noticed through SIGCHLD on the loop. */
static int l_spawn(lua_State *L)
{
    struct lmd_lua_ctx *ctx = lua_touserdata(L, lua_upvalueindex(1));
    struct lmd_children *ch = ctx->children;
    luaL_checktype(L, 1, LUA_TTABLE);
    int opts = lua_istable(L, 2) ? 2 : 0;
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer argc = luaL_len(L, 1);
    luaL_argcheck(L, argc >= 1 && argc < 256, 1, "argv must be a list of 1 to 255 strings");
    for (lua_Integer i = 1; i <= argc; i++) {
        luaL_argcheck(L, lua_rawgeti(L, 1, i) == LUA_TSTRING, 1, "argv must hold only strings");
        lua_pop(L, 1);
    }
    size_t in_len = 0;
    const char *in = NULL;
    int fn_ref = LUA_NOREF;
    if (opts) {
        lua_getfield(L, opts, "stdin");
        in = lua_isnil(L, -1) ? NULL : luaL_checklstring(L, -1, &in_len);
        luaL_argcheck(L, in_len <= SPAWN_STDIN_MAX, 2, "stdin is limited to 64 KiB (write a file instead)");
        lua_getfield(L, opts, "on_exit");
        if (!lua_isnil(L, -1)) {
            luaL_argcheck(L, lua_isfunction(L, -1), 2, "on_exit must be a function");
            lua_pushvalue(L, -1);
            fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        }
        lua_pop(L, 1);
    }
    if (!ctx->host.base) {
        luaL_unref(L, LUA_REGISTRYINDEX, fn_ref);
        return lmd_lua_fail(L, "processes are not started while checking a configuration");
    }
    if (ch->n >= MAX_CHILDREN) {
        luaL_unref(L, LUA_REGISTRYINDEX, fn_ref);
        luaL_pushfail(L);
        lua_pushfstring(L, "%d processes are still running; wait for some to exit", MAX_CHILDREN);
        return 2;
    }
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    char **owned = NULL;
    size_t nowned = 0;
    char **env = build_env(L, opts, &owned, &nowned);
    lua_rawgeti(L, 1, 1);
    const char *prog = lua_tostring(L, -1); /* anchored by the argv table */
    lua_pop(L, 1);
    struct pchild *c = calloc(1, sizeof *c);
    int fds[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    int err = (!argv || !env || !c) ? ENOMEM : 0;
    for (lua_Integer i = 1; !err && i <= argc; i++) {
        lua_rawgeti(L, 1, i);
        argv[i - 1] = (char *)lua_tostring(L, -1); /* anchored by the argv table */
        lua_pop(L, 1);
    }
    if (!err && pipe2(fds, O_CLOEXEC) != 0)
        err = errno;
    if (!err) {
        posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
        sigset_t none, dflt;
        sigemptyset(&none);
        sigemptyset(&dflt);
        for (int s = 1; s < NSIG; s++)
            if (s != SIGKILL && s != SIGSTOP)
                sigaddset(&dflt, s);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &dflt);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
        err = posix_spawnp(&c->pid, argv[0], &fa, &attr, argv, env);
    }
    if (!err) {
        /* the pipe's buffer (64 KiB) takes all of stdin without blocking */
        fcntl(fds[1], F_SETFL, O_NONBLOCK);
        if (in_len && write(fds[1], in, in_len) != (ssize_t)in_len)
            lmd_warn("spawn %s: could not pass all of stdin", argv[0]);
    }
    if (fds[0] >= 0)
        close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free(argv);
    free(env);
    for (size_t i = 0; i < nowned; i++)
        free(owned[i]);
    free(owned);
    if (err) {
        free(c);
        luaL_unref(L, LUA_REGISTRYINDEX, fn_ref);
        luaL_pushfail(L);
        lua_pushfstring(L, "cannot start '%s': %s", prog, strerror(err));
        return 2;
    }
    c->fn_ref = fn_ref;
    c->next = ch->list;
    ch->list = c;
    ch->n++;
    lua_pushinteger(L, c->pid);
    return 1;
}


void lmd_lua_open_spawn(lua_State *L, struct lmd_lua_ctx *ctx)
{
    lua_pushlightuserdata(L, ctx);
    lua_pushcclosure(L, l_spawn, 1);
    lua_setfield(L, -2, "spawn");
}

int lmd_lua_spawn_init(struct lmd_lua_ctx *ctx, lmd_err *err)
{
    if (!(ctx->children = calloc(1, sizeof *ctx->children)))
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    if (ctx->host.base) {
        ctx->children->sigchld = evsignal_new(ctx->host.base, SIGCHLD, reap, ctx);
        if (!ctx->children->sigchld || evsignal_add(ctx->children->sigchld, NULL) != 0)
            return lmd_err_set(err, LMD_ENOMEM, "cannot watch child processes");
    }
    return 0;
}

void lmd_lua_spawn_adopt(struct lmd_lua_ctx *ctx, struct lmd_lua_ctx *from)
{
    struct lmd_children *ch = ctx->children, *old = from->children;
    if (!ch || !old)
        return;
    while (old->list) {
        struct pchild *c = old->list;
        old->list = c->next;
        old->n--;
        c->fn_ref = LUA_NOREF; /* its callback lived in the old VM */
        c->next = ch->list;
        ch->list = c;
        ch->n++;
    }
}

void lmd_lua_spawn_free(struct lmd_lua_ctx *ctx)
{
    struct lmd_children *ch = ctx->children;
    if (!ch)
        return;
    while (ch->list) {
        struct pchild *c = ch->list;
        ch->list = c->next;
        free(c); /* still running: left to finish on their own */
    }
    if (ch->sigchld)
        event_free(ch->sigchld);
    free(ch);
    ctx->children = NULL;
}
