-- Second look at "a spawned program ends with the worker that started it"
-- (sattack): programs that the core's orphan scan misses or takes wrongly.
local lu = require "luaunit"
local Lab = require "lab"

local S = require("suite").new(3)
local write = S.write
local function await(p, pattern, timeout, nth) return S:await(p, pattern, timeout, nth) end

local function alive(pid)
    local f = io.open("/proc/" .. pid .. "/stat")
    if not f then return nil end
    local st = f:read("a")
    f:close()
    return st
end

local function pid_of(file, gen)
    for _ = 1, 40 do
        local fh = io.open(file)
        if fh then
            for line in fh:lines() do
                local g, pid = line:match("^(%d) (%d+)$")
                if tonumber(g) == gen then fh:close() return pid end
            end
            fh:close()
        end
        Lab.sleep(0.05)
    end
end

TestWorkerEscapes = {}
function TestWorkerEscapes:tearDown() S:stop_all() end

-- generation 1 spawns a program whose child (same process group) has a child
-- of its own, then exits: the middle process comes to the core (subreaper)
-- while the worker lives; at the reload only it is killed (not its group:
-- the group's leader is gone), and its own child is reparented to the core
-- after the one scan: it outlives the policy that started it.
function TestWorkerEscapes:test_a_grandchild_in_the_same_group_ends_with_the_reload()
    local pids, cfg = S:path("g.pids"), S:path("g.lua")
    local g1 = "lmdisc.timer(0, function()\n" ..
        "  lmdisc.spawn { 'sh', '-c', [[( sh -c \"echo 1 \\$\\$ >> " .. pids .. "; exec sleep 30\"; true ) & exit 0]] }\n" ..
        "  lmdisc.log.info('GEN 1 started')\nend)\n"
    local g2 = "lmdisc.timer(0, function() lmdisc.log.info('GEN 2 started') end)\n"
    write(cfg, g1)
    local p1 = S:agent("h1", nil, {path = cfg})
    await(p1, "GEN 1 started", 15)
    local pid = pid_of(pids, 1)
    lu.assertNotNil(pid, "generation 1 spawned nothing")
    write(cfg, g2)
    p1:signal("HUP")
    await(p1, "GEN 2 started", 15)
    local st
    for _ = 1, 40 do
        st = alive(pid)
        if not st then break end
        Lab.sleep(0.05)
    end
    lu.assertNil(st, "generation 1's grandchild outlived the reload: " .. tostring(st))
end

-- generation 2 starts a program in the background and returns (sh -c
-- 'sleep 30 &'): the program comes to the core while generation 2 lives;
-- when generation 1 ends, the core must not take it for generation 1's.
function TestWorkerEscapes:test_a_reload_does_not_end_the_new_policys_programs()
    local pids, cfg = S:path("n.pids"), S:path("n.lua")
    local g1 = "lmdisc.timer(0, function() lmdisc.log.info('GEN 1 started') end)\n"
    local g2 = ("lmdisc.spawn { 'sh', '-c', 'sleep 30 & echo 2 $! >> %s' }\n" ..
        "lmdisc.timer(0, function() lmdisc.log.info('GEN 2 started') end)\n"):format(pids)
    write(cfg, g1)
    local p1 = S:agent("h1", nil, {path = cfg})
    await(p1, "GEN 1 started", 15)
    write(cfg, g2)
    p1:signal("HUP")
    await(p1, "GEN 2 started", 15)
    local pid = pid_of(pids, 2)
    lu.assertNotNil(pid, "generation 2 spawned nothing")
    Lab.sleep(0.5) -- the old worker is freed on a later turn of the loop
    lu.assertNotNil(alive(pid), "generation 2's program was killed by generation 1's end: " ..
        S.tail(p1:output(), 1500))
    lu.assertTrue(p1:running())
end

-- the same program, and the agent stopped: the grandchild outlives the agent
function TestWorkerEscapes:test_a_grandchild_in_the_same_group_ends_with_the_agent()
    local pids, cfg = S:path("s.pids"), S:path("s.lua")
    write(cfg, "lmdisc.timer(0, function()\n" ..
        "  lmdisc.spawn { 'sh', '-c', [[( sh -c \"echo 1 \\$\\$ >> " .. pids .. "; exec sleep 30\"; true ) & exit 0]] }\n" ..
        "  lmdisc.log.info('GEN 1 started')\nend)\n")
    local p1 = S:agent("h1", nil, {path = cfg})
    await(p1, "GEN 1 started", 15)
    local pid = pid_of(pids, 1)
    lu.assertNotNil(pid, "the policy spawned nothing")
    p1:signal("TERM")
    lu.assertEquals(p1:wait(5), 0, S.tail(p1:output(), 1500))
    local st = alive(pid)
    if st then os.execute("kill -KILL " .. pid) end -- ours: the test's own leftover
    lu.assertNil(st, "the policy's grandchild outlived the agent: " .. tostring(st))
end

os.exit(lu.LuaUnit.run())
