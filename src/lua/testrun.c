/* `lmdisc test POLICY SUITE...`: luaunit suites in a VM like the agent's,
 * with lmdisc.testing defaulting to POLICY. */
#include "lua/mantle.h"
#include "lua/namespaces.h"
#include "lua/policy.h"
#include "lua/vm.h"

#include <lauxlib.h>
#include <stdio.h>

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
        lmd_vm *vm;
        lmd_err err;
        if (lmd_vm_new(5, 0, &vm, &err) != 0) { /* the suite itself is not capped */
            fprintf(stderr, "lmdisc test: %s\n", lmd_err_text(&err));
            return 1;
        }
        lua_State *L = lmd_vm_state(vm);
        lmd_mantle_preload(L);
        lua_pushcfunction(L, lmd_lua_require_module); /* package.loaded.lmdisc, as in the agent */
        if (lmd_vm_docall(L, 0, 0) != LUA_OK) {
            fprintf(stderr, "lmdisc test: %s\n", lua_tostring(L, -1));
            lmd_vm_free(vm);
            return 1;
        }
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
            status = lmd_vm_docall(L, 0, 0);
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
        lmd_vm_free(vm);
        if (code > worst)
            worst = code;
    }
    return worst ? 1 : 0;
}
