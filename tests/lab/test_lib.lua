-- liblmdisc as programs use it (lmd-lib-probe, tests/abi/probe.c), on lab
-- hosts: an object that only announces starts no resolver pool (one thread
-- fewer), browsing starts it, and lmd_discover_nodes takes its upper bound
-- from the argument or else from opts.timeout.
local lu = require "luaunit"

local S = require("suite").new(2)
local q, BIN = S.q, S.BIN
local BUILD = assert(os.getenv("LMDISC_BUILD"), "set LMDISC_BUILD to the build directory")
local PROBE = BUILD .. "/lmd-lib-probe"
-- A type nobody announces, new at each call: avahi says ALL_FOR_NOW about a
-- second after the first query of a type (sooner if another browse asked
-- lately), so each call waits the full second for the network's answer.
local nobody_seq = 0
local function nobody()
    nobody_seq = nobody_seq + 1
    return ("_lmdnb%d._tcp"):format(nobody_seq)
end

-- The threads of a process (its /proc/PID/task): count, and their names.
local function threads(pid)
    local names = {}
    local f = assert(io.popen("cat /proc/" .. pid .. "/task/*/comm 2>/dev/null"))
    for l in f:lines() do names[#names + 1] = l end
    f:close()
    table.sort(names)
    return names
end

local function has(list, x)
    for _, v in ipairs(list) do if v == x then return true end end
    return false
end

-- lmd-lib-probe discover on host: rc, complete, elapsed, {name = true}
local function discover(host, arg, opt, type_, later)
    local cmd = ("%s discover %s %s %s %s"):format(q(PROBE), arg, opt, q(type_ or "_lmserv._tcp"), later or "")
    local _, out = S.lab:exec(host, cmd .. " 2>&1")
    for _, marker in ipairs({"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"}) do
        lu.assertNil(out:find(marker, 1, true), out)
    end
    local rc, complete, n, elapsed = out:match("rc=(%-?%d+) complete=(%d) nodes=(%d+) elapsed=([%d.]+)")
    lu.assertNotNil(rc, out)
    local names = {}
    for name in out:gmatch("\nnode ([^\n]+)") do names[name] = true end
    return tonumber(rc), complete == "1", tonumber(elapsed), names, tonumber(n)
end

-- Discover from host until name shows up (announcements take a moment to
-- be established); at most tries rounds of a 3 s discovery.
local function await_seen(host, name, later)
    for _ = 1, 5 do
        local rc, _, _, names = discover(host, 3, 0, nil, later)
        lu.assertEquals(rc, 0)
        if names[name] then return end
    end
    lu.fail(name .. " was not discovered from " .. host)
end

TestLib = {}

function TestLib:tearDown() S:stop_all() end

function TestLib:test_announce_only_starts_no_resolver_pool()
    -- `lmdisc announce`: the main thread and the publishing thread (avahi's
    -- blocking calls off the loop), no resolver pool (it was main + pool)
    local name = S:uniq("cli")
    local p = S:announce("h1", 8300, name)
    await_seen("h2", name)
    local t = threads(p.pid)
    lu.assertFalse(has(t, "lmd-resolvers"), table.concat(t, ","))
    lu.assertTrue(has(t, "lmd-publisher"), table.concat(t, ","))
    lu.assertEquals(#t, 2, "threads of lmdisc announce: " .. table.concat(t, ","))

    -- lmd_announce_self: the caller's thread and the announcement's loop
    name = S:uniq("lib")
    local a = S:bg("h1", q(PROBE) .. " announce 8301 " .. q(name))
    S:await(a, "^started")
    await_seen("h2", name, "later") -- opts of a later layout (a zero field more) are taken too
    t = threads(a.pid)
    lu.assertFalse(has(t, "lmd-resolvers"), table.concat(t, ","))
    lu.assertEquals(#t, 3, "threads of lmd_announce_self (caller, loop, publishing): " .. table.concat(t, ","))
end

function TestLib:test_browsing_starts_the_resolver_pool()
    local r = S:bg("h2", q(PROBE) .. " registry")
    S:await(r, "^started")
    local t = threads(r.pid)
    lu.assertTrue(has(t, "lmd-resolvers"), table.concat(t, ","))
    lu.assertEquals(#t, 3, "caller, loop, resolver pool: " .. table.concat(t, ","))
end

-- A bound of 0.1 s ends the call before the network has answered (complete
-- false): the answers to the scan's own query are due 0.2 s after it went
-- out (RFC 6762 section 6), on an empty network too.
function TestLib:test_discover_bound_argument_else_option()
    local rc, complete, elapsed = discover("h1", 0, 0.1, nobody())
    lu.assertEquals(rc, 0)
    lu.assertFalse(complete, "opts.timeout 0.1 s bounds the call when the argument is 0")
    lu.assertTrue(elapsed < 0.9, "took " .. elapsed .. " s with opts.timeout 0.1")

    rc, complete, elapsed = discover("h1", 0.1, 30, nobody())
    lu.assertEquals(rc, 0)
    lu.assertFalse(complete, "the argument 0.1 s wins over opts.timeout 30")
    lu.assertTrue(elapsed < 0.9, "took " .. elapsed .. " s with the argument 0.1")

    rc, complete, elapsed = discover("h1", 30, 0.2, nobody())
    lu.assertEquals(rc, 0)
    lu.assertTrue(complete, "the argument 30 s wins over opts.timeout 0.2")
    lu.assertTrue(elapsed < 5, "took " .. elapsed .. " s")

    rc, complete, elapsed = discover("h1", 0, 0, nobody())
    lu.assertEquals(rc, 0)
    lu.assertTrue(complete, "neither given: 5 s, and the network answers sooner")
    lu.assertTrue(elapsed < 5, "took " .. elapsed .. " s")
end

os.exit(lu.LuaUnit.run())
