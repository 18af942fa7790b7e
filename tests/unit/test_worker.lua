-- `lmdisc check` and `lmdisc test` run user code in a confined child with a
-- CPU-time limit (src/worker/child.c): each policy that loops inside one of
-- Lua's C functions (the eight of tests/lab/test_worker.lua) ends the
-- command within its timeout with exit 1 and one line naming FILE:LINE and
-- the limit; `lmdisc test` goes on with the next suite.  No network.
local lu = require "luaunit"
local B = require "bin"
local sh, run, file = B.sh, B.run, B.file

local WEDGES = {
    pattern = 'local r = ("a"):rep(300):find("a*a*a*a*a*a*b")',
    len_insert = 'local t = setmetatable({}, { __len = function() return 1 << 40 end }); table.insert(t, 1, "x")',
    move = 'table.move({}, 1, 2^40, 2)',
    rep_metatable = 'local s = ""; local r = s:rep(math.maxinteger)',
    plain_find = 'local s, p = ("a"):rep(1 << 22), ("a"):rep(1 << 17) .. "b"; local r = s:find(p, 1, true)',
    balance = 'local r = ("("):rep(1 << 17):find("%b()")',
    optional = 'local r = ("a"):rep(40):find(("a?"):rep(40) .. ("a"):rep(40) .. "$")',
    len_remove = 'local t = setmetatable({}, { __len = function() return 1 << 40 end }); table.remove(t, 1)',
}

local function now()
    local f = io.popen("date +%s.%N")
    local t = tonumber(f:read("a"))
    f:close()
    return t
end

local function names()
    local out = {}
    for k in pairs(WEDGES) do out[#out + 1] = k end
    table.sort(out)
    return out
end

TestWorkerLimits = {}

-- check --timeout 1: 1 s of CPU time, 3 s of wall clock, then the parent's
-- kill 2 s later at the latest
function TestWorkerLimits:test_check_returns_within_its_timeout_on_every_loop_in_c()
    for _, k in ipairs(names()) do
        local p = file("-- " .. k .. "\n" .. WEDGES[k] .. "\n")
        local t0 = now()
        local code, out = run("check --timeout 1 " .. sh(p))
        local dt = now() - t0
        os.remove(p)
        lu.assertEquals(code, 1, k .. ": " .. out)
        out = out:gsub("rc=%d+\n?$", ""):gsub("\n$", "")
        lu.assertNil(out:find("\n"), k .. ": more than one line: " .. out)
        -- 1 s of CPU time, or under a loaded machine 3 s of wall clock first
        lu.assertStrContains(out, p .. ":2: did not finish within its time limit of ", false)
        lu.assertNotNil(out:find("time limit of 1 s of CPU time", 1, true) or out:find("time limit of 3 s", 1, true), out)
        -- the command's own bounds: 3 s of wall clock in the child, the
        -- parent's SIGKILL 2 s later; 2 s more for starting the process (a
        -- sanitizer build on a loaded machine took 5.7 s in all once)
        lu.assertTrue(dt < 7, ("%s: check took %.2f s"):format(k, dt))
    end
end

-- each suite's policy loops in on_join; every suite fails within --timeout,
-- and the next one still runs
function TestWorkerLimits:test_test_fails_each_looping_suite_in_time_and_goes_on()
    local body = { "local W = os.getenv('W')\nlocal wedges = {}\n" }
    for _, k in ipairs(names()) do
        body[#body + 1] = ("wedges[%q] = function() %s end\n"):format(k, WEDGES[k])
    end
    body[#body + 1] = "function on_join(peer) wedges[peer.name]() end\n"
    local policy = file(table.concat(body))
    local suites, args = {}, {}
    for _, k in ipairs(names()) do
        local s = file(([[
local lu = require "luaunit"
local testing = require "lmdisc.testing"
TestWedge = {}
function TestWedge:test_join()
  local sim = testing.load()
  sim:join({ name = %q, port = 8000 })
end
os.exit(lu.LuaUnit.run())
]]):format(k))
        suites[#suites + 1] = s
        args[#args + 1] = sh(s)
    end
    local ok_suite = file([[
local lu = require "luaunit"
TestFine = {}
function TestFine:test_fine() lu.assertTrue(true) end
os.exit(lu.LuaUnit.run())
]])
    local t0 = now()
    local code, out = run("test --timeout 1 " .. sh(policy) .. " " .. table.concat(args, " ") .. " " .. sh(ok_suite))
    local dt = now() - t0
    os.remove(policy)
    os.remove(ok_suite)
    for _, s in ipairs(suites) do os.remove(s) end
    lu.assertEquals(code, 1, out)
    local _, stopped = out:gsub("did not finish within its time limit of 1 s", "")
    lu.assertEquals(stopped, #suites, out)
    lu.assertStrContains(out, "== " .. ok_suite)
    lu.assertStrContains(out, "Ran 1 tests")
    -- each suite at most 1 s of CPU, 1 s of wall clock + the parent's 2 s
    lu.assertTrue(dt < 3 * (#suites + 1), ("lmdisc test took %.2f s"):format(dt))
end

os.exit(lu.LuaUnit.run())
