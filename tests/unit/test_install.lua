-- `cmake --install` into a temporary prefix: every piece lands where users
-- look for it, and a C program builds against the installed header and
-- library through pkg-config and runs.  No network.
local lu = require "luaunit"
local San = require "sanitizer"
local BUILD = assert(os.getenv("LMDISC_BUILD"), "set LMDISC_BUILD to the build directory")

local function sh(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
-- (a sanitizer report in the output, or the sanitizers' exit code, fails
-- the test: tests/lab/sanitizer.lua)
local function run(cmd)
    local f = io.popen("unset LD_PRELOAD; " .. cmd .. " 2>&1; echo \"rc=$?\"")
    local out = f:read("a")
    f:close()
    local code = tonumber(out:match("rc=(%d+)\n?$"))
    San.check(cmd, out, code, 2)
    return code, out
end

local prefix
-- a sanitizer build installs an instrumented library: link and load it so
local PRELOAD = os.getenv("LMD_PRELOAD")
local SAN_CFLAGS = PRELOAD and "-fsanitize=address,undefined" or ""
-- (lua5.4 is not instrumented: no leak check of it; the exit code stays)
local SAN_ENV = PRELOAD and ("LD_PRELOAD=" .. PRELOAD .. " " .. San.asan_env("detect_leaks=0")) or ""

function setupSuite()
    prefix = os.tmpname()
    os.remove(prefix)
    local code, out = run("cmake --install " .. sh(BUILD) .. " --prefix " .. sh(prefix))
    assert(code == 0, out)
end

function teardownSuite()
    if prefix then os.execute("rm -rf " .. sh(prefix)) end
end

local function exists(rel)
    local f = io.open(prefix .. "/" .. rel)
    if f then f:close() end
    return f ~= nil
end

local function libdir()
    local _, out = run("ls -d " .. sh(prefix) .. "/lib*/pkgconfig " .. sh(prefix) .. "/lib/*/pkgconfig")
    local pc = out:match("([^\n]*/pkgconfig)\n")
    lu.assertNotNil(pc, out)
    return pc:match("^(.*)/pkgconfig$")
end

TestInstall = {}

function TestInstall:test_files_are_where_users_look()
    for _, f in ipairs({"bin/lmdisc", "include/lmdisc.h", "share/lua/5.4/lmdisc/policy.lua",
                        "share/lua/5.4/lmdisc/testing.lua", "share/man/man1/lmdisc.1",
                        "share/man/man5/lmdisc.conf.5", "share/man/man5/lmdisc-config.5",
                        "share/man/man7/lmdisc-api.7", "share/doc/lmdisc/examples/agent.lua",
                        "share/doc/lmdisc/examples/lmdisc.service"}) do
        lu.assertTrue(exists(f), f .. " is not installed")
    end
    local lib = libdir()
    lu.assertTrue(exists(lib:sub(#prefix + 2) .. "/liblmdisc.so"))
    lu.assertTrue(exists(lib:sub(#prefix + 2) .. "/lua/5.4/lmdisc.so"))
    local code, out = run(sh(prefix .. "/bin/lmdisc") .. " --version")
    lu.assertEquals(code, 0, out)
end

function TestInstall:test_the_example_configuration_checks()
    local code, out = run(sh(prefix .. "/bin/lmdisc") .. " check " .. sh(prefix .. "/share/doc/lmdisc/examples/agent.lua"))
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "OK")
end

function TestInstall:test_c_program_builds_with_pkg_config_and_runs()
    local lib = libdir()
    local src = prefix .. "/try.c"
    local f = assert(io.open(src, "w"))
    f:write([[
#include <lmdisc.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    lmd_txt t = {0};
    char err[256];
    if (lmd_txt_set(&t, "model", "gemma", 5, true, err, sizeof err) != 0) return 1;
    if (lmd_txt_parse_arg(&t, "=bad", err, sizeof err) != LMD_ETXT) return 2;
    if (!lmd_service_type_valid(LMD_DEFAULT_TYPE, err, sizeof err)) return 3;
    const lmd_txt_item *it = lmd_txt_get(&t, "MODEL");
    printf("%s %s %s\n", LMD_VERSION, it ? (const char *)it->value : "?", lmd_strerror(LMD_ENODAEMON));
    lmd_txt_free(&t);
    return 0;
}
]])
    f:close()
    local env = "PKG_CONFIG_PATH=" .. sh(lib .. "/pkgconfig")
    local code, out = run(env .. " pkg-config --cflags --libs lmdisc")
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "-llmdisc")
    code, out = run(("cc %s -o %s %s $(%s pkg-config --cflags --libs lmdisc)"):format(
        SAN_CFLAGS, sh(prefix .. "/try"), sh(src), env))
    lu.assertEquals(code, 0, out)
    code, out = run("LD_LIBRARY_PATH=" .. sh(lib) .. " " .. sh(prefix .. "/try"))
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "gemma")
    lu.assertStrContains(out, "avahi-daemon is not running")
end

function TestInstall:test_stock_lua_finds_the_installed_modules()
    local lib = libdir()
    local code, out = run((SAN_ENV .. "LUA_PATH=%s LUA_CPATH=%s lua5.4 -e %s"):format(
        sh(prefix .. "/share/lua/5.4/?.lua;;"), sh(lib .. "/lua/5.4/?.so;;"),
        sh('local l = require "lmdisc"; local t = require "lmdisc.testing"; print(l.version, type(t.load))')))
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "function")
end

os.exit(lu.LuaUnit.run())
