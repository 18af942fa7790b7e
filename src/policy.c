/* The agent's Lua VM (see policy.h).
 *
 * Taken from Lua's lua.c: one docall() with a traceback message handler
 * under lua_pcall for every entry into Lua.  From Redis' script_lua.c: a
 * count hook with a monotonic deadline stops a hook that runs too long, and
 * a custom lua_Alloc caps the VM's memory.  From Knot Resolver's bindings:
 * callbacks kept as registry refs and unref'd when their C object dies. */
#include "policy.h"
#include "embedded.h"
#include "log.h"
#include "lua_bind.h"
#include "util.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define TIMER_MT "lmdisc.timer"
#define MAX_CHILDREN 64
#define SPAWN_STDIN_MAX 65536 /* fits a pipe's buffer: written without blocking */

struct alloc {
    size_t used, limit;
    unsigned lifted;       /* > 0: C is handing data to Lua; see LIFT */
};

struct ptimer {
    struct ptimer *next;
    lmd_policy *p;
    lua_Integer id;
    struct event *ev;
    int fn_ref;
    double interval; /* > 0: every() */
    unsigned gen;
};

struct pchild {
    struct pchild *next;
    pid_t pid;
    int fn_ref;
};

struct lmd_policy {
    lua_State *L;
    struct alloc alloc;
    struct lmd_policy_host host;
    int P_ref;             /* the lmdisc.policy object */
    int api_ref;           /* the `lmdisc` table given to scripts */
    double deadline;       /* seconds per user call */
    double deadline_at;    /* monotonic; 0: no deadline running */
    unsigned gen;          /* bumped on each successful reload */
    struct ptimer *timers;
    lua_Integer next_timer_id;
    struct pchild *children;
    unsigned n_children;
    struct event *sigchld;
    char *warnings;
};

/* ---- allocation and deadline ----------------------------------------- */

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct alloc *a = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        a->used -= old;
        free(ptr);
        return NULL;
    }
    if (nsize > old && a->limit && !a->lifted && a->used + (nsize - old) > a->limit)
        return NULL; /* Lua raises "not enough memory" in the script */
    void *np = realloc(ptr, nsize);
    if (np)
        a->used = a->used - old + nsize;
    return np;
}

static lmd_policy *policy_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* The memory cap is for the operator's code: it is lifted while C pushes
 * data it owns into the VM (a memory error there would leak the C copy, or
 * abort where no pcall is around) and while the mantle dispatches an event,
 * and put back by l_guard around every call into user code.  So a policy
 * that filled its VM fails in its own hooks, and the events still flow. */
#define LIFT(p) ((p)->alloc.lifted++)
#define UNLIFT(p) ((p)->alloc.lifted--)

static void deadline_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lmd_policy *p = *(lmd_policy **)lua_getextraspace(L);
    if (p && p->deadline_at > 0 && lmd_now_mono() > p->deadline_at) {
        lua_sethook(L, deadline_hook, LUA_MASKCOUNT, 1000); /* keep firing until unwound */
        char msg[160]; /* lua_pushfstring knows no precision */
        snprintf(msg, sizeof msg,
                 "exceeded its deadline of %.3g s and was stopped (raise policy { deadline = ... } if it "
                 "needs longer)", p->deadline);
        luaL_error(L, "%s", msg);
    }
}

static int msgh(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Every call into Lua: pcall with a traceback handler. */
static int docall(lua_State *L, int narg, int nres)
{
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msgh);
    lua_insert(L, base);
    int status = lua_pcall(L, narg, nres, base);
    lua_remove(L, base);
    return status;
}

/* guard(fn, ...) -> true, results... | false, message
 * Runs user code with the deadline armed; the mantle calls every hook through
 * it.  Nested guards keep the outer deadline. */
static int l_guard(lua_State *L)
{
    lmd_policy *p = policy_of(L);
    luaL_checktype(L, 1, LUA_TFUNCTION);
    double saved = p->deadline_at;
    unsigned lifted = p->alloc.lifted; /* the cap is for user code, see LIFT */
    p->alloc.lifted = 0;
    if (saved == 0) {
        p->deadline_at = lmd_now_mono() + p->deadline;
        lua_sethook(L, deadline_hook, LUA_MASKCOUNT, 1000);
    }
    int base = lua_gettop(L);
    int status = docall(L, base - 1, LUA_MULTRET);
    if (saved == 0) {
        p->deadline_at = 0;
        lua_sethook(L, NULL, 0, 0);
    }
    p->alloc.lifted = lifted;
    int nres = lua_gettop(L);
    lua_pushboolean(L, status == LUA_OK);
    lua_insert(L, 1);
    return nres + 1;
}

/* ---- the agent's functions for scripts -------------------------------- */

/* A list of peers from the host into Lua (the cap lifted: see LIFT). */
static int push_peers(lua_State *L, int (*get)(void *ud, lmd_node_list *out))
{
    lmd_policy *p = policy_of(L);
    lmd_node_list l = {0};
    if (get && get(p->host.ud, &l) != 0)
        return luaL_error(L, "out of memory");
    LIFT(p);
    lmd_lua_push_node_list(L, &l);
    UNLIFT(p);
    lmd_node_list_free(&l);
    return 1;
}

static int l_peers(lua_State *L) { return push_peers(L, policy_of(L)->host.peers); }

/* _peers_all(): every live peer on the network (the mantle applies its own
 * verdicts on top, see lua/lmdisc/policy.lua) */
static int l_peers_all(lua_State *L) { return push_peers(L, policy_of(L)->host.peers_all); }

static int l_list_alive(lua_State *L)
{
    /* REGISTRY:list_alive(): ignore self */
    lua_settop(L, 0);
    return l_peers(L);
}

static int l_self(lua_State *L)
{
    lmd_policy *p = policy_of(L);
    lmd_node_info n = {0};
    const char *state = "none";
    LIFT(p);
    if (p->host.self && p->host.self(p->host.ud, &n, &state) == 0) {
        lmd_lua_push_node(L, &n);
        lmd_node_info_clear(&n);
    } else {
        lua_newtable(L);
    }
    lua_pushstring(L, state);
    lua_setfield(L, -2, "state");
    UNLIFT(p);
    return 1;
}

/* set_txt{key = "value" | number | true | false}: false removes the key. */
static int l_set_txt(lua_State *L)
{
    lmd_policy *p = policy_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lmd_node_info self = {0};
    const char *state;
    if (!p->host.self || !p->host.set_txt || p->host.self(p->host.ud, &self, &state) != 0) {
        luaL_pushfail(L);
        lua_pushliteral(L, "nothing is announced: add announce { port = ... } to the configuration");
        return 2;
    }
    lmd_txt t = self.txt;
    self.txt = (lmd_txt){0};
    lmd_node_info_clear(&self);
    char err[320] = "";
    int rc = 0;
    LIFT(p); /* t is ours until freed below: no memory error in between */
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            snprintf(err, sizeof err, "TXT keys must be strings");
            rc = LMD_ETXT;
        } else if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
            lmd_txt_remove(&t, lua_tostring(L, -2));
        } else if (lua_type(L, -1) == LUA_TBOOLEAN) {
            rc = lmd_txt_set(&t, lua_tostring(L, -2), NULL, 0, false, err, sizeof err);
        } else if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
            size_t len;
            lua_pushvalue(L, -1); /* tolstring on a copy: never convert a key in place */
            const char *v = lua_tolstring(L, -1, &len);
            rc = lmd_txt_set(&t, lua_tostring(L, -3), v, len, true, err, sizeof err);
            lua_pop(L, 1);
        } else {
            snprintf(err, sizeof err, "TXT value for '%.40s' must be a string, number, true or false",
                     lua_tostring(L, -2));
            rc = LMD_ETXT;
        }
        lua_pop(L, 1);
    }
    UNLIFT(p);
    if (rc == 0)
        rc = p->host.set_txt(p->host.ud, &t, err, sizeof err);
    lmd_txt_free(&t);
    if (rc) {
        luaL_pushfail(L);
        lua_pushstring(L, *err ? err : lmd_strerror(rc));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, lmd_now_wall());
    return 1;
}

/* timers */

static struct ptimer *timer_find(lmd_policy *p, lua_Integer id, struct ptimer ***link)
{
    for (struct ptimer **pp = &p->timers; *pp; pp = &(*pp)->next)
        if ((*pp)->id == id) {
            if (link)
                *link = pp;
            return *pp;
        }
    return NULL;
}

static void timer_free(lmd_policy *p, struct ptimer *t)
{
    struct ptimer **link;
    if (timer_find(p, t->id, &link))
        *link = t->next;
    if (t->ev)
        event_free(t->ev);
    luaL_unref(p->L, LUA_REGISTRYINDEX, t->fn_ref);
    free(t);
}

/* P:call(name, fn, ...) through the mantle, which counts and logs. */
static void call_user(lmd_policy *p, const char *what, int fn_ref, int nargs)
{
    lua_State *L = p->L;
    int first = lua_gettop(L) - nargs + 1; /* the arguments are on top */
    LIFT(p);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->P_ref);
    lua_getfield(L, -1, "call");
    lua_insert(L, -2);                /* call, P */
    lua_pushstring(L, what);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fn_ref);
    if (nargs)                        /* args, call, P, what, fn -> call, P, what, fn, args */
        lua_rotate(L, first, -nargs);
    int rc = docall(L, 3 + nargs, 0);
    UNLIFT(p);
    if (rc != LUA_OK) {
        lmd_error("policy: %s: %s", what, lua_tostring(L, -1));
        lua_pop(L, 1);
    }
}

static void drop_timers(lmd_policy *p, unsigned gen)
{
    for (struct ptimer *t = p->timers, *next; t; t = next) {
        next = t->next;
        if (t->gen == gen)
            timer_free(p, t);
    }
}

static void timer_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct ptimer *t = arg;
    lmd_policy *p = t->p;
    lua_Integer id = t->id;
    call_user(p, t->interval > 0 ? "every" : "timer", t->fn_ref, 0);
    /* the callback may have cancelled it */
    t = timer_find(p, id, NULL);
    if (t && t->interval <= 0)
        timer_free(p, t);
}

static int add_timer(lua_State *L, bool repeat)
{
    lmd_policy *p = policy_of(L);
    double s = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_argcheck(L, s >= 0 && s <= 31536000, 1, "seconds must be from 0 to one year");
    luaL_argcheck(L, !repeat || s >= 0.01, 1, "every() needs at least 0.01 s");
    struct ptimer *t = calloc(1, sizeof *t);
    if (!t)
        return luaL_error(L, "out of memory");
    t->p = p;
    t->id = ++p->next_timer_id;
    t->interval = repeat ? s : 0;
    t->gen = p->gen;
    lua_pushvalue(L, 2);
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->next = p->timers;
    p->timers = t;
    if (p->host.base) {
        t->ev = event_new(p->host.base, -1, repeat ? EV_PERSIST : 0, timer_fire, t);
        struct timeval tv = {.tv_sec = (time_t)s, .tv_usec = (suseconds_t)((s - (double)(time_t)s) * 1e6)};
        if (!t->ev || event_add(t->ev, &tv) != 0) {
            timer_free(p, t);
            return luaL_error(L, "cannot create timer");
        }
    }
    lua_Integer *h = lua_newuserdatauv(L, sizeof *h, 0);
    *h = t->id;
    luaL_setmetatable(L, TIMER_MT);
    return 1;
}

static int l_timer(lua_State *L) { return add_timer(L, false); }
static int l_every(lua_State *L) { return add_timer(L, true); }

static int l_timer_cancel(lua_State *L)
{
    lua_Integer *h = luaL_checkudata(L, 1, TIMER_MT);
    lmd_policy *p = policy_of(L);
    struct ptimer *t = timer_find(p, *h, NULL);
    if (t)
        timer_free(p, t);
    lua_pushboolean(L, t != NULL);
    return 1;
}

static int l_timer_tostring(lua_State *L)
{
    lua_Integer *h = luaL_checkudata(L, 1, TIMER_MT);
    lua_pushfstring(L, "lmdisc.timer (%d%s)", (int)*h,
                    timer_find(policy_of(L), *h, NULL) ? "" : ", done");
    return 1;
}

/* processes */

static void reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    lmd_policy *p = arg;
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (struct pchild **pp = &p->children; *pp; pp = &(*pp)->next) {
            struct pchild *c = *pp;
            if (c->pid != pid)
                continue;
            *pp = c->next;
            p->n_children--;
            if (c->fn_ref != LUA_NOREF) {
                LIFT(p); /* no pcall around these pushes */
                lua_pushinteger(p->L, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
                if (WIFSIGNALED(st))
                    lua_pushstring(p->L, sigabbrev_np(WTERMSIG(st)) ? sigabbrev_np(WTERMSIG(st)) : "?");
                else
                    lua_pushnil(p->L);
                UNLIFT(p);
                call_user(p, "spawn on_exit", c->fn_ref, 2);
                luaL_unref(p->L, LUA_REGISTRYINDEX, c->fn_ref);
            }
            free(c);
            break;
        }
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
    lmd_policy *p = policy_of(L);
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
    if (!p->host.base) {
        luaL_unref(L, LUA_REGISTRYINDEX, fn_ref);
        luaL_pushfail(L);
        lua_pushliteral(L, "processes are not started while checking a configuration");
        return 2;
    }
    if (p->n_children >= MAX_CHILDREN) {
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
    c->next = p->children;
    p->children = c;
    p->n_children++;
    lua_pushinteger(L, c->pid);
    return 1;
}

static int l_not_in_agent(lua_State *L)
{
    return luaL_error(L, "not available in the agent, where it would block the loop or announce a "
                         "second time: use lmdisc.peers() (the live registry) and announce { ... }");
}

/* Build the `lmdisc` table scripts see: the module plus the agent's
 * functions, each with the policy as upvalue. */
static void push_api(lmd_policy *p)
{
    lua_State *L = p->L;
    static const luaL_Reg agent_fns[] = {
        {"peers", l_peers}, {"self", l_self},   {"set_txt", l_set_txt}, {"timer", l_timer},
        {"every", l_every}, {"spawn", l_spawn}, {"now", l_now},         {"_guard", l_guard},
        {"_peers_all", l_peers_all},
        {NULL, NULL},
    };
    luaL_requiref(L, "lmdisc", luaopen_lmdisc, 0);
    lua_pushlightuserdata(L, p);
    luaL_setfuncs(L, agent_fns, 1);
    /* these block (discover) or run a second announcer (announce_self): in
     * the agent, lmdisc.peers() and announce{} do those jobs */
    lua_pushcfunction(L, l_not_in_agent);
    lua_setfield(L, -2, "discover_nodes");
    lua_pushcfunction(L, l_not_in_agent);
    lua_setfield(L, -2, "announce_self");
    lua_pushcfunction(L, l_not_in_agent);
    lua_setfield(L, -2, "start_registry");
    lua_newtable(L); /* REGISTRY, as the original module's */
    lua_pushlightuserdata(L, p);
    lua_pushcclosure(L, l_list_alive, 1);
    lua_setfield(L, -2, "list_alive");
    lua_setfield(L, -2, "REGISTRY");
    if (luaL_newmetatable(L, TIMER_MT)) {
        static const luaL_Reg tm[] = {{"cancel", l_timer_cancel}, {"__tostring", l_timer_tostring}, {NULL, NULL}};
        lua_pushlightuserdata(L, p);
        luaL_setfuncs(L, tm, 1);
        lua_pushvalue(L, -1);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

/* ---- VM -------------------------------------------------------------- */

static int embedded_loader(lua_State *L)
{
    const struct lmd_embedded *e = lua_touserdata(L, lua_upvalueindex(1));
    char chunk[160];
    snprintf(chunk, sizeof chunk, "@[lmdisc]/%s", e->file);
    if (luaL_loadbufferx(L, e->source, e->len, chunk, "t") != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, e->module);
    lua_call(L, 1, 1);
    return 1;
}

static void preload_embedded(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (const struct lmd_embedded *e = lmd_embedded_lua; e->module; e++) {
        lua_pushlightuserdata(L, (void *)e);
        lua_pushcclosure(L, embedded_loader, 1);
        lua_setfield(L, -2, e->module);
    }
    lua_pop(L, 1);
}

static lua_State *new_vm(lmd_policy *p)
{
    p->alloc.limit = 32u << 20;
    lua_State *L = lua_newstate(capped_alloc, &p->alloc);
    if (!L)
        return NULL;
    *(lmd_policy **)lua_getextraspace(L) = p;
    luaL_openlibs(L);
    preload_embedded(L);
    return L;
}

/* ---- settings -------------------------------------------------------- */

static char *field_str(lua_State *L, int idx, const char *k)
{
    lua_getfield(L, idx, k);
    char *s = lua_type(L, -1) == LUA_TSTRING ? lmd_strdup(lua_tostring(L, -1)) : NULL;
    lua_pop(L, 1);
    return s;
}

static double field_num(lua_State *L, int idx, const char *k, double dflt)
{
    lua_getfield(L, idx, k);
    double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}

static bool field_bool(lua_State *L, int idx, const char *k)
{
    lua_getfield(L, idx, k);
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

void lmd_config_clear(struct lmd_config *c)
{
    free(c->announce.name);
    free(c->announce.type);
    free(c->announce.info);
    lmd_txt_free(&c->announce.txt);
    free(c->api.socket);
    free(c->api.listen);
    free(c->health.http);
    free(c->checks.http);
    memset(c, 0, sizeof *c);
}

/* P.settings (validated by lua/lmdisc/config.lua) into the C struct. */
static int read_settings(lua_State *L, int P, struct lmd_config *c)
{
    memset(c, 0, sizeof *c);
    c->log_level = -1;
    lua_getfield(L, P, "settings");
    int s = lua_gettop(L);
    if (lua_getfield(L, s, "announce") == LUA_TTABLE) {
        int a = lua_gettop(L);
        c->announce.enabled = true;
        c->announce.port = (uint16_t)field_num(L, a, "port", 0);
        c->announce.name = field_str(L, a, "name");
        c->announce.type = field_str(L, a, "type");
        c->announce.info = field_str(L, a, "info");
        c->announce.ttl = (unsigned)field_num(L, a, "ttl", 0);
        if (lua_getfield(L, a, "txt") == LUA_TTABLE && lmd_lua_to_txt(L, -1, &c->announce.txt) != 0) {
            lmd_config_clear(c);
            return LMD_ETXT;
        }
        lua_pop(L, 1);
        if (c->announce.info)
            lmd_txt_set(&c->announce.txt, "info", c->announce.info, strlen(c->announce.info), true, NULL, 0);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, s, "registry") == LUA_TTABLE) {
        c->registry.ttl = field_num(L, -1, "ttl", 60);
        c->registry.include_self = field_bool(L, -1, "include_self");
    } else {
        c->registry.ttl = 60;
    }
    lua_pop(L, 1);
    c->policy.deadline = 0.25;
    c->policy.memory_mb = 32;
    if (lua_getfield(L, s, "policy") == LUA_TTABLE) {
        c->policy.deadline = field_num(L, -1, "deadline", 0.25);
        c->policy.memory_mb = field_num(L, -1, "memory_mb", 32);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, s, "api") == LUA_TTABLE) {
        c->api.socket = field_str(L, -1, "socket");
        c->api.socket_mode = (unsigned)field_num(L, -1, "socket_mode", 0660);
        c->api.listen = field_str(L, -1, "listen");
        c->api.allow_remote = field_bool(L, -1, "allow_remote");
    }
    lua_pop(L, 1);
    if (lua_getfield(L, s, "health") == LUA_TTABLE) {
        c->health.enabled = true;
        c->health.http = field_str(L, -1, "http");
        c->health.tcp = (uint16_t)field_num(L, -1, "tcp", 0);
        c->health.interval = field_num(L, -1, "interval", 2);
        c->health.timeout = field_num(L, -1, "timeout", 1);
        c->health.failures = (unsigned)field_num(L, -1, "failures", 3);
        char *mode = field_str(L, -1, "on_fail");
        c->health.status_mode = mode && !strcmp(mode, "status");
        free(mode);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, s, "checks") == LUA_TTABLE) {
        c->checks.enabled = true;
        c->checks.tcp = field_bool(L, -1, "tcp");
        c->checks.http = field_str(L, -1, "http");
        c->checks.interval = field_num(L, -1, "interval", 1);
        c->checks.timeout = field_num(L, -1, "timeout", 1);
        c->checks.failures = (unsigned)field_num(L, -1, "failures", 2);
        c->checks.concurrency = (unsigned)field_num(L, -1, "concurrency", 8);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, s, "log") == LUA_TTABLE) {
        char *lvl = field_str(L, -1, "level");
        c->log_level = lmd_log_parse_level(lvl);
        free(lvl);
    }
    lua_pop(L, 2);
    return 0;
}

/* policy.load(path, {api=, guard=}) -> P on the stack, or error message. */
static int load_policy(lmd_policy *p, const char *path, char *err, size_t errlen)
{
    lua_State *L = p->L;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "lmdisc.policy");
    LIFT(p);
    int rrc = docall(L, 1, 1);
    UNLIFT(p);
    if (rrc != LUA_OK) {
        snprintf(err, errlen, "internal error loading the policy runtime: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return LMD_ELUA;
    }
    lua_getfield(L, -1, "load");
    lua_remove(L, -2);
    lua_pushstring(L, path);
    lua_createtable(L, 0, 2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->api_ref);
    lua_setfield(L, -2, "api");
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->api_ref);
    lua_getfield(L, -1, "_guard");
    lua_remove(L, -2);
    lua_setfield(L, -2, "guard");
    LIFT(p);
    int rc = docall(L, 2, 3);
    UNLIFT(p);
    if (rc != LUA_OK) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return LMD_ELUA;
    }
    /* P, err, warnings */
    if (lua_isnil(L, -3)) {
        snprintf(err, errlen, "%s", lua_isstring(L, -2) ? lua_tostring(L, -2) : "cannot load the configuration");
        lua_pop(L, 3);
        return LMD_ELUA;
    }
    free(p->warnings);
    p->warnings = NULL;
    if (lua_istable(L, -1)) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        lua_Integer n = luaL_len(L, -2);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -2, i);
            luaL_addvalue(&b);
            luaL_addchar(&b, '\n');
        }
        luaL_pushresult(&b);
        p->warnings = lmd_strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    lua_pop(L, 2); /* leave P */
    return 0;
}

static void apply_limits(lmd_policy *p, const struct lmd_config *c)
{
    p->deadline = c->policy.deadline > 0 ? c->policy.deadline : 0.25;
    p->alloc.limit = (size_t)((c->policy.memory_mb > 0 ? c->policy.memory_mb : 32) * 1048576.0);
    /* what is already used may not fit a smaller cap; leave room to run */
    if (p->alloc.limit < p->alloc.used + (1u << 20))
        p->alloc.limit = p->alloc.used + (1u << 20);
}

lmd_policy *lmd_policy_new(const char *path, const struct lmd_policy_host *host,
                           struct lmd_config *cfg, char *err, size_t errlen)
{
    lmd_policy *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->host = *host;
    p->deadline = 0.25;
    p->P_ref = p->api_ref = LUA_NOREF;
    if (!(p->L = new_vm(p))) {
        snprintf(err, errlen, "cannot create a Lua state (out of memory)");
        free(p);
        return NULL;
    }
    push_api(p);
    p->api_ref = luaL_ref(p->L, LUA_REGISTRYINDEX);
    if (load_policy(p, path, err, errlen) != 0)
        goto fail;
    if (read_settings(p->L, lua_gettop(p->L), cfg) != 0) {
        snprintf(err, errlen, "%s: invalid announce.txt", path);
        goto fail;
    }
    p->P_ref = luaL_ref(p->L, LUA_REGISTRYINDEX);
    apply_limits(p, cfg);
    if (host->base) {
        p->sigchld = evsignal_new(host->base, SIGCHLD, reap, p);
        if (!p->sigchld || evsignal_add(p->sigchld, NULL) != 0) {
            snprintf(err, errlen, "cannot watch child processes");
            lmd_config_clear(cfg);
            goto fail;
        }
    }
    return p;
fail:
    lmd_policy_free(p);
    return NULL;
}

void lmd_policy_free(lmd_policy *p)
{
    if (!p)
        return;
    while (p->timers)
        timer_free(p, p->timers);
    while (p->children) {
        struct pchild *c = p->children;
        p->children = c->next;
        free(c); /* still running: left to finish on their own */
    }
    if (p->sigchld)
        event_free(p->sigchld);
    if (p->L)
        lua_close(p->L);
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

static void read_verdict(lua_State *L, int emitted_idx, struct lmd_verdict *out)
{
    out->emitted = kind_from(lua_tostring(L, emitted_idx));
    out->keep = lua_toboolean(L, emitted_idx + 1);
    out->info = lua_isstring(L, emitted_idx + 2) ? lmd_strdup(lua_tostring(L, emitted_idx + 2)) : NULL;
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
    lua_State *L = p->L;
    out->emitted = -1;
    out->keep = false;
    out->info = NULL;
    out->changes = changes;
    int top = lua_gettop(L);
    LIFT(p); /* the pushes are outside docall's protection */
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->P_ref);
    lua_getfield(L, -1, "peer_event");
    lua_insert(L, -2);
    lmd_lua_push_event(L, kind, peer, old, changes, reason);
    int rc = docall(L, 6, 4);
    UNLIFT(p);
    if (rc != LUA_OK) {
        char e[128];
        lmd_error("policy: %s event for %s failed: %s", lmd_event_kind_name(kind),
                  lmd_escape_str(peer->name, e, sizeof e), lua_tostring(L, -1));
        lua_settop(L, top);
        /* keep what we had: a join is not kept, an update stays kept */
        out->keep = kind == LMD_EV_UPDATE;
        return LMD_ELUA;
    }
    read_verdict(L, top + 1, out);
    out->changes = changes;
    if (lua_istable(L, top + 4)) { /* the policy's own list: "info" only if info() changed */
        out->changes = 0;
        lua_Integer n = luaL_len(L, top + 4);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, top + 4, i);
            const char *c = lua_tostring(L, -1);
            for (unsigned bit = 1; c && bit <= LMD_CH_INFO; bit <<= 1)
                if (!strcmp(c, lmd_change_name(bit)))
                    out->changes |= bit;
            lua_pop(L, 1);
        }
    }
    lua_settop(L, top);
    return 0;
}

int lmd_policy_reload(lmd_policy *p, const char *path, const lmd_node_list *peers,
                      struct lmd_config *cfg, lmd_policy_verdict_fn fn, void *ud, char *err,
                      size_t errlen)
{
    lua_State *L = p->L;
    int top = lua_gettop(L);
    /* Timers the new file creates while loading belong to the new
     * generation: dropped if the file is refused, kept if it takes over. */
    unsigned old_gen = p->gen++;
    /* loading runs at the old limits: a broken file cannot take more */
    if (load_policy(p, path, err, errlen) != 0) {
        lua_settop(L, top);
        drop_timers(p, p->gen);
        p->gen = old_gen;
        return LMD_ELUA;
    }
    struct lmd_config c;
    if (read_settings(L, lua_gettop(L), &c) != 0) {
        snprintf(err, errlen, "%s: invalid announce.txt", path);
        lua_settop(L, top);
        drop_timers(p, p->gen);
        p->gen = old_gen;
        return LMD_ELUA;
    }
    int newP = lua_gettop(L);
    LIFT(p);
    lua_getfield(L, newP, "adopt");
    lua_pushvalue(L, newP);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->P_ref);
    lmd_lua_push_node_list(L, peers);
    int arc = docall(L, 3, 1);
    UNLIFT(p);
    if (arc != LUA_OK) {
        snprintf(err, errlen, "%s: taking over from the running policy failed: %s", path, lua_tostring(L, -1));
        lmd_config_clear(&c);
        lua_settop(L, top);
        drop_timers(p, p->gen);
        p->gen = old_gen;
        return LMD_ELUA;
    }
    /* the new policy owns the peers now; the old one's timers go with it */
    drop_timers(p, old_gen);
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        int v = lua_gettop(L);
        lua_getfield(L, v, "kind");
        lua_getfield(L, v, "keep");
        lua_getfield(L, v, "info");
        struct lmd_verdict vd;
        read_verdict(L, v + 1, &vd);
        lua_getfield(L, v, "peer");
        lua_getfield(L, -1, "name");
        const char *name = lua_tostring(L, -1);
        for (size_t j = 0; name && j < peers->n; j++)
            if (!strcmp(peers->nodes[j].name, name) && fn)
                fn(ud, &peers->nodes[j], &vd);
        lmd_verdict_clear(&vd);
        lua_settop(L, v - 1);
    }
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, p->P_ref);
    p->P_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* pops newP */
    lua_settop(L, top);
    apply_limits(p, &c);
    *cfg = c;
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}

void lmd_policy_stats(lmd_policy *p, struct lmd_policy_stats *out)
{
    lua_State *L = p->L;
    memset(out, 0, sizeof *out);
    out->memory = p->alloc.used;
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->P_ref);
    if (lua_getfield(L, -1, "stats") == LUA_TTABLE) {
        out->hook_runs = field_num(L, -1, "hook_runs", 0);
        out->hook_errors = field_num(L, -1, "hook_errors", 0);
        out->hook_time = field_num(L, -1, "hook_time", 0);
    }
    lua_pop(L, 2);
}

void lmd_policy_hooks(lmd_policy *p, char *buf, size_t len)
{
    lua_State *L = p->L;
    int top = lua_gettop(L);
    buf[0] = '\0';
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->P_ref);
    lua_getfield(L, -1, "hooks");
    lua_insert(L, -2);
    if (docall(L, 1, 1) == LUA_OK && lua_istable(L, -1)) {
        lua_Integer n = luaL_len(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            size_t used = strlen(buf);
            snprintf(buf + used, len - used, "%s%s", i > 1 ? ", " : "", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_settop(L, top);
}

const char *lmd_policy_warnings(lmd_policy *p) { return p->warnings ? p->warnings : ""; }

/* ---- lmdisc test ------------------------------------------------------- */

static int l_test_exit(lua_State *L)
{
    /* luaunit suites end with os.exit(code): end this suite, not the runner */
    int code = lua_isboolean(L, 1) ? (lua_toboolean(L, 1) ? 0 : 1) : (int)luaL_optinteger(L, 1, 0);
    lua_pushinteger(L, code);
    lua_setfield(L, LUA_REGISTRYINDEX, "lmdisc.test_exit");
    return luaL_error(L, "lmdisc.test_exit");
}

int lmd_policy_run_tests(const char *policy_path, int nsuites, char **suites)
{
    int worst = 0;
    for (int i = 0; i < nsuites; i++) {
        lmd_policy p0 = {0};
        lmd_policy *p = &p0;
        p->deadline = 5;
        p->P_ref = p->api_ref = LUA_NOREF;
        lua_State *L = p->L = new_vm(p);
        if (!L) {
            fprintf(stderr, "lmdisc test: out of memory\n");
            return 1;
        }
        p->alloc.limit = 0; /* the suite itself is not capped */
        push_api(p); /* package.loaded.lmdisc, as in the agent */
        lua_pop(L, 1);
        /* lmdisc.testing loads this policy by default */
        lua_pushstring(L, policy_path);
        lua_setfield(L, LUA_REGISTRYINDEX, "lmdisc.test_policy");
        lua_getglobal(L, "os");
        lua_pushcfunction(L, l_test_exit);
        lua_setfield(L, -2, "exit");
        lua_pop(L, 1);
        lua_getglobal(L, "package");
        lua_pushstring(L, policy_path);
        lua_setfield(L, -2, "lmdisc_policy");
        lua_pop(L, 1);
        lua_createtable(L, 1, 1);
        lua_pushstring(L, suites[i]);
        lua_rawseti(L, -2, 0);
        lua_pushliteral(L, "-v");
        lua_rawseti(L, -2, 1);
        lua_setglobal(L, "arg");
        printf("== %s (policy %s)\n", suites[i], policy_path);
        fflush(stdout);
        int status = luaL_loadfilex(L, suites[i], "t");
        if (status == LUA_OK)
            status = docall(L, 0, 0);
        int code = 0;
        if (status != LUA_OK) {
            lua_getfield(L, LUA_REGISTRYINDEX, "lmdisc.test_exit");
            if (lua_isinteger(L, -1)) {
                code = (int)lua_tointeger(L, -1);
            } else {
                fprintf(stderr, "lmdisc test: %s\n", lua_tostring(L, -2));
                code = 1;
            }
        }
        fflush(stdout);
        lua_close(L);
        for (struct ptimer *t = p->timers, *n; t; t = n) {
            n = t->next;
            free(t);
        }
        if (code > worst)
            worst = code;
    }
    return worst ? 1 : 0;
}
