/* `lmdisc test POLICY SUITE...`: luaunit suites in a VM like the agent's,
 * with lmdisc.testing defaulting to POLICY.  Policies run under exactly the
 * agent's guard, deadline and memory cap (lmdisc.vm, which the harness
 * uses); each suite has a wall-clock limit; a suite fails on an error, on
 * os.exit with a failure code, on running no test, and on its time limit. */
#include "base/util.h"
#include "policy/mantle.h"
#include "lua/namespaces.h"
#include "policy/policy.h"
#include "lua/vm.h"

#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static int l_test_exit(lua_State *L)
{
    /* luaunit suites end with os.exit(code): end this suite, not the runner */
    int code = lua_isboolean(L, 1) ? (lua_toboolean(L, 1) ? 0 : 1) : (int)luaL_optinteger(L, 1, 0);
    lua_pushinteger(L, code);
    lua_setfield(L, LUA_REGISTRYINDEX, "lmdisc.test_exit");
    return luaL_error(L, "lmdisc.test_exit");
}

static int l_set_limits(lua_State *L)
{
    lmd_vm_set_limits(lmd_vm_of(L), luaL_checknumber(L, 1), luaL_checknumber(L, 2));
    return 0;
}

/* require "lmdisc.vm": the agent's guard and limits, for lmdisc.testing */
static int open_vm_module(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"guard", lmd_vm_guard},         {"in_guard", lmd_vm_in_guard},
        {"stopped", lmd_vm_is_stopped}, {"set_limits", l_set_limits}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}

/* package.loaded.lmdisc, lmdisc.vm, the mantle, os.exit, arg: the suite's
 * VM.  On error pushes a message. */
static int prepare(lua_State *L, struct lmd_mantle *m, const char *policy_path, const char *suite)
{
    lmd_mantle_preload(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, open_vm_module);
    lua_setfield(L, -2, "lmdisc.vm");
    lua_pop(L, 1);
    lua_pushcfunction(L, lmd_lua_require_module); /* package.loaded.lmdisc, as in the agent */
    if (lmd_vm_docall(L, 0, 0) != LUA_OK)
        return -1;
    lmd_err err = {0};
    if (lmd_mantle_open(L, m, &err) != 0) {
        lua_pushstring(L, lmd_err_text(&err));
        return -1;
    }
    lmd_mantle_push(L, m, LMD_MANTLE_TEST_PREPARE);
    if (lmd_vm_docall(L, 0, 0) != LUA_OK)
        return -1;
    /* lmdisc.testing loads this policy by default */
    lua_getglobal(L, "os");
    lua_pushcfunction(L, l_test_exit);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);
    lua_getglobal(L, "package");
    lua_pushstring(L, policy_path);
    lua_setfield(L, -2, "lmdisc_policy");
    lua_pop(L, 1);
    lua_createtable(L, 1, 1);
    lua_pushstring(L, suite);
    lua_rawseti(L, -2, 0);
    lua_pushliteral(L, "-v");
    lua_rawseti(L, -2, 1);
    lua_setglobal(L, "arg");
    return 0;
}

static lua_Integer tests_run(lua_State *L, const struct lmd_mantle *m)
{
    lmd_mantle_push(L, m, LMD_MANTLE_TEST_COUNT);
    lua_Integer n = lmd_vm_docall(L, 0, 1) == LUA_OK ? lua_tointeger(L, -1) : 0;
    lua_pop(L, 1);
    return n;
}

int lmd_policy_run_suite(const char *policy_path, const char *suite)
{
    lmd_vm *vm;
    lmd_err err = {0};
    if (lmd_vm_new(5, 0, &vm, &err) != 0) {
        fprintf(stderr, "lmdisc test: %s\n", lmd_err_text(&err));
        return 1;
    }
    lua_State *L = lmd_vm_state(vm);
    lmd_vm_lift(vm); /* the suite itself is not capped; the policy's calls are (the guard) */
    struct lmd_mantle m;
    if (prepare(L, &m, policy_path, suite) != 0) {
        fprintf(stderr, "lmdisc test: cannot set up the test VM: %s\n", lua_tostring(L, -1));
        lmd_vm_free(vm);
        return 1;
    }
    printf("== %s (policy %s)\n", suite, policy_path);
    fflush(stdout);
    lmd_policy_watch_lua(L); /* a stop says on which line */
    int status = luaL_loadfilex(L, suite, "t");
    if (status == LUA_OK)
        status = lmd_vm_docall(L, 0, 0);
    int code = 0;
    if (status != LUA_OK) {
        lua_getfield(L, LUA_REGISTRYINDEX, "lmdisc.test_exit");
        if (!lua_isinteger(L, -1)) {
            fprintf(stderr, "lmdisc test: %s\n", lua_tostring(L, -2));
            code = 1;
        } else if ((code = (int)lua_tointeger(L, -1)) != 0) {
            fprintf(stderr, "lmdisc test: %s ended with os.exit(%d): failed\n", suite, code);
        }
        lua_pop(L, 1);
    }
    if (code == 0 && tests_run(L, &m) == 0) {
        fprintf(stderr, "lmdisc test: %s ran no test (luaunit runs functions named test* in tables named "
                        "Test*; end the suite with os.exit(lu.LuaUnit.run()))\n", suite);
        code = 1;
    }
    fflush(stdout);
    lmd_vm_free(vm);
    return code != 0;
}
