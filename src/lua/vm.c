/* The VM (see vm.h). */
#include "lua/vm.h"
#include "base/util.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

struct lmd_vm {
    lua_State *L;
    size_t used, limit;    /* bytes; limit 0: none */
    unsigned lifted;       /* > 0: C is handing data to Lua */
    double deadline;       /* seconds per user call */
    double deadline_at;    /* monotonic; 0: no user call running */
    bool stopped;          /* the running call passed its deadline: stop everything until it unwinds */
};

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    lmd_vm *vm = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        vm->used -= old;
        free(ptr);
        return NULL;
    }
    if (nsize > old && vm->limit && !vm->lifted && vm->used + (nsize - old) > vm->limit)
        return NULL; /* Lua raises "not enough memory" in the script */
    void *np = realloc(ptr, nsize);
    if (np)
        vm->used = vm->used - old + nsize;
    return np;
}

#define HOOK_COUNT 1000 /* instructions between clock reads while user code runs */

/* Redis' escalation, made airtight: once the deadline has passed, the hook
 * fires on every instruction of every thread it reaches and raises each
 * time, so neither a pcall, an xpcall message handler nor a coroutine
 * boundary can swallow the stop: each frame that catches it is stopped at
 * its next instruction, until the guard has unwound. */
static void deadline_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lmd_vm *vm = lmd_vm_of(L);
    if (!vm->stopped && vm->deadline_at > 0 && lmd_now_mono() > vm->deadline_at)
        vm->stopped = true;
    if (!vm->stopped) {
        if (lua_gethookcount(L) != HOOK_COUNT) /* a thread escalated by an earlier stop */
            lua_sethook(L, deadline_hook, LUA_MASKCOUNT, HOOK_COUNT);
        return;
    }
    lua_sethook(L, deadline_hook, LUA_MASKCOUNT, 1);
    char msg[LMD_VM_DEADLINE_MSG_MAX];
    lmd_vm_deadline_message(msg, sizeof msg, vm->deadline);
    luaL_error(L, "%s", msg);
}

void lmd_vm_deadline_message(char *buf, size_t len, double deadline)
{
    /* snprintf: lua_pushfstring knows no %g */
    snprintf(buf, len, "exceeded its deadline of %g s and was stopped (raise policy { deadline = ... } if it "
                       "needs longer)", deadline);
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

int lmd_vm_docall(lua_State *L, int narg, int nres)
{
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msgh);
    lua_insert(L, base);
    int status = lua_pcall(L, narg, nres, base);
    lua_remove(L, base);
    return status;
}

int lmd_vm_guard(lua_State *L)
{
    lmd_vm *vm = lmd_vm_of(L);
    luaL_checktype(L, 1, LUA_TFUNCTION);
    double saved = vm->deadline_at;
    unsigned lifted = vm->lifted;
    vm->lifted = 0;
    if (saved == 0) {
        vm->deadline_at = lmd_now_mono() + vm->deadline;
        vm->stopped = false;
        lua_sethook(L, deadline_hook, LUA_MASKCOUNT, HOOK_COUNT);
    }
    int status = lmd_vm_docall(L, lua_gettop(L) - 1, LUA_MULTRET);
    bool stopped = vm->stopped;
    if (saved == 0) {
        vm->deadline_at = 0;
        vm->stopped = false;
        lua_sethook(L, NULL, 0, 0);
    }
    vm->lifted = lifted;
    if (stopped && status == LUA_OK) {
        /* it swallowed the stop (a coroutine's resume returns it as a value)
         * and returned: still a failure, with the same message */
        char msg[LMD_VM_DEADLINE_MSG_MAX];
        lmd_vm_deadline_message(msg, sizeof msg, vm->deadline);
        lua_settop(L, 0);
        lua_pushstring(L, msg);
        status = LUA_ERRRUN;
    }
    int nres = lua_gettop(L);
    lua_pushboolean(L, status == LUA_OK);
    lua_insert(L, 1);
    return nres + 1;
}

int lmd_vm_is_stopped(lua_State *L)
{
    lua_pushboolean(L, lmd_vm_of(L)->stopped);
    return 1;
}

int lmd_vm_in_guard(lua_State *L)
{
    lua_pushboolean(L, lmd_vm_of(L)->deadline_at > 0);
    return 1;
}

void lmd_vm_lift(lmd_vm *vm) { vm->lifted++; }
void lmd_vm_unlift(lmd_vm *vm) { vm->lifted--; }

/* ---- life -------------------------------------------------------------- */

int lmd_vm_new(double deadline, double memory_mb, lmd_vm **out, lmd_err *err)
{
    lmd_vm *vm = *out = calloc(1, sizeof *vm);
    if (!vm)
        return lmd_err_set(err, LMD_ENOMEM, "out of memory");
    vm->lifted = 1; /* the standard libraries are not user code */
    if (!(vm->L = lua_newstate(capped_alloc, vm))) {
        free(vm);
        *out = NULL;
        return lmd_err_set(err, LMD_ENOMEM, "cannot create a Lua state (out of memory)");
    }
    *(lmd_vm **)lua_getextraspace(vm->L) = vm;
    luaL_openlibs(vm->L);
    vm->lifted = 0;
    lmd_vm_set_limits(vm, deadline, memory_mb);
    return 0;
}

void lmd_vm_free(lmd_vm *vm)
{
    if (!vm)
        return;
    if (vm->L)
        lua_close(vm->L);
    free(vm);
}

lua_State *lmd_vm_state(const lmd_vm *vm) { return vm->L; }
lmd_vm *lmd_vm_of(lua_State *L) { return *(lmd_vm **)lua_getextraspace(L); }
size_t lmd_vm_memory(const lmd_vm *vm) { return vm->used; }

void lmd_vm_set_limits(lmd_vm *vm, double deadline, double memory_mb)
{
    vm->deadline = deadline;
    vm->limit = memory_mb > 0 ? (size_t)(memory_mb * 1048576.0) : 0;
    if (vm->limit && vm->limit < vm->used + (1u << 20))
        vm->limit = vm->used + (1u << 20);
}
