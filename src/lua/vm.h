/* The Lua VM that runs an operator's configuration: state, memory cap,
 * deadline, and the one way into Lua.
 *
 * From Lua's lua.c: every call into Lua goes through lmd_vm_docall (pcall
 * with a traceback message handler).  From Redis' script_lua.c: a count hook
 * with a monotonic deadline stops user code that runs too long, and a custom
 * lua_Alloc caps the VM's memory.  The cap and the deadline apply to user
 * code, not to the mantle or to C handing data to Lua (lmd_vm_lift). */
#ifndef LMD_LUA_VM_H
#define LMD_LUA_VM_H

#include "base/error.h"

#include <lua.h>
#include <stddef.h>

typedef struct lmd_vm lmd_vm;

/* A new state with the standard libraries.  memory_mb 0: no cap. */
int lmd_vm_new(double deadline, double memory_mb, lmd_vm **out, lmd_err *err);
void lmd_vm_free(lmd_vm *vm);
lua_State *lmd_vm_state(const lmd_vm *vm);
lmd_vm *lmd_vm_of(lua_State *L);
/* Limits for user code from now on.  A cap below what the VM already holds
 * is raised to leave 1 MiB of room. */
void lmd_vm_set_limits(lmd_vm *vm, double deadline, double memory_mb);
size_t lmd_vm_memory(const lmd_vm *vm);

/* pcall with a traceback handler: the only way C enters Lua. */
int lmd_vm_docall(lua_State *L, int narg, int nres);

/* While C pushes data it owns into the VM (a memory error there would leak
 * the C copy, or abort where no pcall is around), the cap is lifted;
 * lmd_vm_guard puts it back around every call into user code.  So a policy
 * that filled its VM fails in its own hooks, and events still flow. */
void lmd_vm_lift(lmd_vm *vm);
void lmd_vm_unlift(lmd_vm *vm);

/* guard(fn, ...) -> true, results... | false, message: a lua_CFunction
 * that runs user code with the deadline armed and the cap in force.  Nested
 * guards keep the outer deadline.  The mantle runs every hook through it. */
int lmd_vm_guard(lua_State *L);
/* in_guard() -> whether user code is running (a guard is armed): the
 * sandbox bounds C-side work (pattern matching) only then. */
int lmd_vm_in_guard(lua_State *L);
/* What a call stopped at its deadline fails with: the one wording of the
 * C guard (whether the stop unwound the call or the call swallowed it and
 * returned) and of lmdisc.policy's guard for a stock lua5.4
 * (lmdisc.deadline_message). */
#define LMD_VM_DEADLINE_MSG_MAX 160
void lmd_vm_deadline_message(char *buf, size_t len, double deadline);
/* stopped() -> whether the running call passed its deadline.  An xpcall
 * message handler runs inside the hook that raised the stop, where Lua
 * calls no hook: the sandbox skips the policy's handler then. */
int lmd_vm_is_stopped(lua_State *L);

#endif
