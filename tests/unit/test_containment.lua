-- Policies that try to wedge the agent, run by `lmdisc test` under the
-- agent's own guard, deadline and memory cap (tests/unit/containment/), and
-- what `lmdisc test` says about suites that fail in other ways.  No network.
local lu = require "luaunit"
local B = require "bin"
local sh, run, file = B.sh, B.run, B.file
local SRC = os.getenv("LMDISC_SRC") or "."
local DIR = SRC .. "/tests/unit/containment"

local fifo

function setupSuite()
    fifo = os.tmpname()
    os.remove(fifo)
    assert(os.execute("mkfifo " .. sh(fifo)))
end

function teardownSuite()
    if fifo then os.remove(fifo) end
end

TestContainment = {}

function TestContainment:test_every_wedge_is_contained_under_the_agents_guard()
    local t0 = os.time()
    local code, out = run("test " .. sh(DIR .. "/wedges.lua") .. " " .. sh(DIR .. "/test_wedges.lua"),
        "WEDGE_FIFO=" .. sh(fifo))
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "OK")
    lu.assertTrue(os.time() - t0 < 60, out)
end

local function suite_fails(suite, env, says)
    local code, out = run("test " .. sh(DIR .. "/wedges.lua") .. " " .. sh(DIR .. "/" .. suite), env)
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, says)
end

function TestContainment:test_os_exit_with_a_failure_code_fails()
    suite_fails("exit_suite.lua", nil, "ended with os.exit(-1): failed")
end

function TestContainment:test_a_suite_that_ran_no_test_fails()
    suite_fails("empty_suite.lua", nil, "ran no test")
end

function TestContainment:test_a_suite_that_never_returns_is_ended()
    local t0 = os.time()
    suite_fails("endless_suite.lua", "LMDISC_TEST_TIMEOUT=1", "did not finish within its time limit of 1 s")
    lu.assertTrue(os.time() - t0 <= 5)
    local code, out = run("test --timeout 2 " .. sh(DIR .. "/wedges.lua") .. " " .. sh(DIR .. "/endless_suite.lua"))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "did not finish within its time limit of 2 s")
    code, out = run("test --timeout x " .. sh(DIR .. "/wedges.lua") .. " " .. sh(DIR .. "/endless_suite.lua"))
    lu.assertEquals(code, 2, out)
    lu.assertStrContains(out, "--timeout needs a number of seconds")
end

-- Ways around the deadline and the memory cap that run outside any Lua
-- instruction: a finalizer slipped into a shared metatable, C loops that
-- allocate nothing, a __pairs or an error message the mantle would walk.
function TestContainment:test_loops_in_c_and_shared_metatables_cannot_wedge_loading()
    local cases = {
        { 'getmetatable(io.open("' .. DIR .. '/wedges.lua")).__gc = function() while true do end end',
          1, "attempt to index a nil value" },
        { 'local t = lmdisc.timer(100, function() end); getmetatable(t).close = nil', 1, "attempt to index a nil value" },
        { 'local x = string.rep("", math.maxinteger); assert(x == "")', 0, "OK" },
        { 'table.move({}, 1, math.maxinteger - 2, 2)', 1, "more than a policy may move at once" },
        -- a 200,000-line message: cut to a bounded report that still names the file and line
        { 'error(("\\n"):rep(200000), 0)', 1, ".lua:1: \n\n\n", 1100 },
        { 'setmetatable(_G, { __pairs = function() while true do end end })', 0, "OK" },
    }
    for _, c in ipairs(cases) do
        local p = file(c[1])
        local t0 = os.time()
        local code, out = run("check " .. sh(p), "timeout 20")
        os.remove(p)
        lu.assertEquals(code, c[2], c[1] .. "\n" .. out:sub(1, 400))
        lu.assertStrContains(out, c[3])
        if c[4] then lu.assertTrue(#out <= c[4], ("%s: %d bytes of output"):format(c[1], #out)) end
        lu.assertTrue(os.time() - t0 <= 5, c[1])
    end
    -- a metatable the policy set itself is still its own
    local p = file('local mt = {}; local t = setmetatable({}, mt); assert(getmetatable(t) == mt)')
    local code, out = run("check " .. sh(p), "timeout 20")
    os.remove(p)
    lu.assertEquals(code, 0, out)
end

-- Bounds a file can pass the schema with but the service cannot carry.

local function check_refuses(text, says)
    local p = file(text)
    local code, out = run("check " .. sh(p))
    os.remove(p)
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, says)
end

function TestContainment:test_values_the_publishing_path_cannot_carry_are_refused()
    check_refuses("registry { ttl = 1e10 }", "registry.ttl must be a number > 0 and <= 9000")
    check_refuses("announce { port = 1, ttl = 1e308 }", "announce.ttl must be a number from 1 to 4500")
    check_refuses("policy { memory_mb = 1e308 }", "policy.memory_mb must be a number from 1 to 65536")
    check_refuses("policy { deadline = 11 }", "policy.deadline")
    check_refuses("checks { tcp = true, concurrency = 100000 }", "checks.concurrency")
    check_refuses(("announce { port = 1, txt = { a = %q, b = %q, c = %q, d = %q, e = %q, f = %q } }"):format(
        ("x"):rep(250), ("x"):rep(250), ("x"):rep(250), ("x"):rep(250), ("x"):rep(250), ("x"):rep(250)),
        "at most 1300 fit in one mDNS packet")
    check_refuses(("announce { port = 1, info = %q, txt = { a = %q, b = %q, c = %q, d = %q, e = %q } }"):format(
        ("x"):rep(200), ("x"):rep(250), ("x"):rep(250), ("x"):rep(250), ("x"):rep(250), ("x"):rep(200)),
        "info and txt together")
end

function TestContainment:test_configuration_files_are_read_safely()
    local code, out = run("check /dev/zero")
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "not a regular file")
    code, out = run("check " .. sh(fifo))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "not a regular file")
    local big = file(("-- x\n"):rep(1100000))
    code, out = run("check " .. sh(big))
    os.remove(big)
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "larger than 4194304 bytes")
    -- a UTF-8 byte order mark, as editors write it, is fine
    local bom = file("\239\187\191registry { ttl = 30 }\n")
    code, out = run("check " .. sh(bom))
    os.remove(bom)
    lu.assertEquals(code, 0, out)
end

os.exit(lu.LuaUnit.run())
