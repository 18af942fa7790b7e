-- The policy worker attacked (issue 18, second look): a policy is untrusted
-- code, and a careless or hostile author tries to take the agent off the
-- network by other means than a loop inside a C function: an info() string
-- of megabytes kept for every peer in the core, a flood of log lines or of
-- set_txt calls, spawned programs that ignore SIGTERM, a wedge in on_start
-- that comes back with every restart, a wedge in a timer callback.  For
-- each: the agent on h1 keeps its PID; h3 (an agent watching, and
-- avahi-browse) never sees h1's service leave; /v1/health and /v1/peers
-- answer within 100 ms throughout; what the attack ends in (the worker
-- restarted, suspended, or a bounded error) shows in the log and health.
local lu = require "luaunit"
local cjson = require "cjson"
local Lab = require "lab"

local S = require("suite").new(3)
local q, BIN, write = S.q, S.BIN, S.write
local tail = S.tail
local function lit(s) return (s:gsub("%p", "%%%0")) end
local function await(p, pattern, timeout, nth) return S:await(p, pattern, timeout, nth) end

local POLICY = [[
policy { deadline = tonumber(os.getenv("DEADLINE")) or 0.25, memory_mb = 256 }
announce { port = 8400, name = os.getenv("NAME") }
api { socket = os.getenv("API_SOCKET") }
local ATTACK, PEER = os.getenv("ATTACK"), os.getenv("ATTACK_PEER")
local function wedge() return ("a"):rep(300):find("a*a*a*a*a*a*b") end
local attacks = {}
-- 8 MiB of info for every peer once the attack peer came
local big = false
function attacks.huge_info() big = true end
function info(peer)
  if big then return ("i"):rep(8 << 20) end
end
-- as many 2 KiB log lines as the deadline lets through
function attacks.log_flood()
  local line = ("x"):rep(2000)
  while true do lmdisc.log.info("FLOOD %s", line) end
end
-- as many TXT updates as the deadline lets through
function attacks.txt_flood()
  local i = 0
  while true do i = i + 1; lmdisc.set_txt { n = tostring(i) } end
end
-- programs that ignore SIGTERM and would outlive the worker (each says
-- its PID in SPAWNED), then a wedge
function attacks.spawn_then_wedge()
  for _ = 1, 8 do
    lmdisc.spawn { "sh", "-c", "echo $$ >> " .. os.getenv("SPAWNED") .. "; trap '' TERM; exec sleep 20" }
  end
  wedge()
end
-- every restart wedges again in on_start
function attacks.start_wedge() wedge() end
-- every join after this one costs 1 s of CPU time (within the deadline)
local slow = false
function attacks.slow() slow = true end
-- a timer that sets itself again at once, for ever, each logging 2 KiB:
-- two BUSY frames to the core and a log line per turn of the worker's loop
local chained = 0
local function chain()
  chained = chained + 1
  if chained % 1000 == 0 then lmdisc.log.info("CHAIN %d", chained) end
  lmdisc.log.debug("%s", ("c"):rep(2000))
  lmdisc.timer(0, chain)
end
function attacks.timer_chain() lmdisc.timer(0, chain) end
-- forged frames: the socketpair through /proc or /dev/fd (a socket cannot
-- be opened by path), and the core's own descriptors
function attacks.forge()
  local junk = "\255\255\255\255\2\34\0\0" .. ("z"):rep(4096)
  local st = io.open("/proc/self/stat"):read("a")
  local paths = { "/proc/self/fd/3", "/dev/fd/3" }
  for fd = 3, 12 do paths[#paths + 1] = ("/proc/%s/fd/%d"):format(st:match("%) %a (%d+)"), fd) end
  for _, path in ipairs(paths) do
    local f, err = io.open(path, "wb")
    if f then f:write(junk); f:close() end
    lmdisc.log.info("FORGE %s: %s", path, f and "written" or tostring(err))
  end
end
-- a timer callback that wedges, once
function attacks.timer_wedge() lmdisc.timer(0, function() lmdisc.log.info("TIMER wedges"); wedge() end) end
assert(attacks[ATTACK], "unknown attack " .. tostring(ATTACK))
local started = 0
function on_start(peers, why)
  started = started + 1
  lmdisc.log.info("ON_START %s with %d peer(s)", why, #peers)
  if ATTACK == "start_wedge" then wedge() end
end
function on_join(peer)
  lmdisc.log.info("JOINED %s (starts %d)", peer.name, started)
  if slow then local t = os.clock() + 1; repeat until os.clock() > t end
  if peer.name ~= PEER then return end
  lmdisc.log.info("ATTACK %s starts", ATTACK)
  attacks[ATTACK]()
  lmdisc.log.info("ATTACK %s returned", ATTACK)
end
]]

TestWorkerAttacks = {}

function TestWorkerAttacks:tearDown() S:stop_all() end

local C = require "containment"
local function get(sock, path) return C.get(S, sock, path) end

-- Run one attack; then(ctx) checks what it ended in.  The common part:
-- PID kept, API in time, never seen leaving.
local function attack(kind, probe_s, then_, env)
    local name1, peer = S:uniq("steady"), S:uniq("attack-" .. kind)
    local sock1 = S:path("h1.sock")
    local obs = C.observers(S)
    local cfg = S:path("attack.lua")
    write(cfg, POLICY)
    local e = {ATTACK = kind, ATTACK_PEER = peer, API_SOCKET = sock1, NAME = name1}
    for k, v in pairs(env or {}) do e[k] = v end
    local p1 = S:agent("h1", nil, {path = cfg, env = e})
    C.seen(S, obs, name1)
    -- the agent's processes (the lab's shell, env's exec, the agent): the same at the end
    local ok, pid = S.lab:exec("h1", "pgrep -f " .. q("[a]gent -c " .. cfg) .. " | sort")
    lu.assertTrue(ok, pid)

    local probe = C.probe(S, sock1, probe_s)
    S:announce("h2", 9000, peer)
    await(p1, "ATTACK " .. lit(kind) .. " starts", 15)
    then_({p1 = p1, sock1 = sock1, peer = peer, announce = function(port, n) return S:announce("h2", port, n) end})

    lu.assertTrue(p1:running(), "the agent died:\n" .. tail(p1:output()))
    local _, starts = p1:output():gsub("agent started", "")
    lu.assertEquals(starts, 1)
    local ok2, pid2 = S.lab:exec("h1", "pgrep -f " .. q("[a]gent -c " .. cfg) .. " | sort")
    lu.assertTrue(ok2, pid2)
    lu.assertEquals(pid2, pid, "the agent's PID changed")

    local n, worst, biggest = C.probed(S, probe, probe_s, 0.1)
    lu.assertTrue(biggest < 256 * 1024, ("an API answer was %d bytes"):format(biggest))
    C.never_left(obs, name1)
    lu.assertNil(p1:output():find("watchdog", 1, true))
    print(("    %s: %d API requests, slowest %.1f ms, largest %d bytes"):format(kind, n, worst * 1000, biggest))
end

-- info() of 8 MiB for every peer: the core keeps no such thing (it would
-- hold megabytes per peer and serve them on /v1/peers); the peer gets its
-- TXT info and the log says why.
function TestWorkerAttacks:test_huge_info_is_refused()
    attack("huge_info", 10, function(c)
        await(c.p1, "ATTACK huge_info returned", 10)
        local more = S:uniq("more")
        c.announce(9001, more)
        await(c.p1, 'join "' .. lit(more) .. '"', 15)
        local t = Lab.now()
        local peers, size = get(c.sock1, "/v1/peers")
        t = Lab.now() - t
        lu.assertTrue(size < 64 * 1024, ("/v1/peers is %d bytes (%.3f s)"):format(size, t))
        await(c.p1, "info%(peer%) returned .* bytes", 15)
        local names = {}
        for _, p in ipairs(peers) do names[p.name] = true end
        lu.assertTrue(names[more], "the peer was not kept: " .. cjson.encode(names))
    end)
end

-- a flood of log lines: stopped by the deadline like any loop, FILE:LINE
function TestWorkerAttacks:test_log_flood_is_stopped_at_the_deadline()
    attack("log_flood", 6, function(c)
        await(c.p1, "on_join failed for peer .*attack%.lua:%d+: exceeded its deadline", 10)
        lu.assertEquals(get(c.sock1, "/v1/health").policy.state, "running")
    end)
end

-- a flood of set_txt: stopped by the deadline; the service stays announced
function TestWorkerAttacks:test_txt_flood_keeps_the_service()
    attack("txt_flood", 6, function(c)
        await(c.p1, "on_join failed for peer .*attack%.lua:%d+: exceeded its deadline", 10)
        local self = get(c.sock1, "/v1/self")
        lu.assertTrue(self.announcing)
    end)
end

-- spawned programs that ignore SIGTERM do not hold the restart up, and
-- end with the worker that started them (restarts do not pile them up)
function TestWorkerAttacks:test_spawned_programs_do_not_hold_the_restart()
    local spawned = S:path("spawned.pids")
    attack("spawn_then_wedge", 8, function(c)
        -- killed at its CPU limit, or at the wall-clock bound on a busy machine
        await(c.p1, "policy: state restarting", 10)
        await(c.p1, "ON_START restart with", 10)
        local h = get(c.sock1, "/v1/health")
        lu.assertEquals(h.policy.state, "running")
        lu.assertEquals(h.policy.restarts, 1)
        await(c.p1, "policy worker: 8 program%(s%) it had started ended with it", 5)
        local pids = {}
        for line in io.lines(spawned) do pids[#pids + 1] = line:match("^(%d+)$") end
        lu.assertEquals(#pids, 8, "the spawned programs said: " .. table.concat(pids, " "))
        -- killed and reaped by the core (every 50 ms): no process, not
        -- even a zombie, within 2 s
        local function alive()
            for _, pid in ipairs(pids) do
                local f = io.open("/proc/" .. pid .. "/stat")
                if f then
                    local st = f:read("a")
                    f:close()
                    return st
                end
            end
        end
        for _ = 1, 40 do
            if not alive() then break end
            Lab.sleep(0.05)
        end
        local st = alive()
        lu.assertNil(st, "a spawned program outlived its worker: " .. tostring(st))
    end, {SPAWNED = spawned})
end

-- on_start wedges at every restart: three deaths, then suspended
function TestWorkerAttacks:test_a_wedge_in_on_start_is_suspended()
    attack("start_wedge", 10, function(c)
        await(c.p1, "policy: state suspended", 20)
        local h = get(c.sock1, "/v1/health")
        lu.assertEquals(h.policy.state, "suspended")
        lu.assertEquals(h.policy.restarts, 3)
        local late = S:uniq("late")
        c.announce(9002, late)
        await(c.p1, 'join "' .. lit(late) .. '"', 15)
    end)
end

-- a policy slower than the network: 12 peers join at once, each costs the
-- policy 1 s; the core keeps at most 3 events waiting (the bound lowered
-- for the test, 4096 by default), the oldest get the fallback verdict, the
-- log and health say so, and every peer is served
function TestWorkerAttacks:test_a_slow_policy_does_not_grow_the_queue()
    attack("slow", 14, function(c)
        await(c.p1, "ATTACK slow returned", 10)
        local names = {}
        for i = 1, 12 do names[i] = S:uniq("slow") end
        local pub = S:bg("h2", ("for n in %s; do timeout 40 avahi-publish -s \"$n\" _lmserv._tcp 9500 & done; wait")
            :format(table.concat(names, " ")))
        local line = await(c.p1, "policy: 3 events wait for the policy worker", 20)
        lu.assertStrContains(line, "the oldest get the fallback verdict")
        await(c.p1, "policy: the events waiting for the policy worker are down to", 20)
        local h = get(c.sock1, "/v1/health")
        lu.assertTrue(h.policy.events_dropped > 0, cjson.encode(h))
        lu.assertEquals(h.policy.state, "running")
        -- every peer is served, whether the policy or the fallback judged it
        local deadline = Lab.now() + 15
        local missing
        repeat
            local seen = {}
            for _, p in ipairs(get(c.sock1, "/v1/peers")) do seen[p.name] = true end
            missing = nil
            for _, n in ipairs(names) do if not seen[n] then missing = n end end
        until not missing or Lab.now() > deadline or not S.lab:exec("h1", "sleep 0.2")
        lu.assertNil(missing, "a peer is not served")
        pub:signal("TERM")
    end, {DEADLINE = "2", LMDISC_POLICY_QUEUE_MAX = "3"})
end

-- a timer chain at full speed: the core keeps serving (the frames and the
-- log lines it causes are the worker's CPU time, not the core's loop)
function TestWorkerAttacks:test_a_timer_chain_does_not_starve_the_core()
    attack("timer_chain", 6, function(c)
        await(c.p1, "CHAIN 1000", 10)
        lu.assertEquals(get(c.sock1, "/v1/health").policy.state, "running")
    end)
end

-- the policy cannot write frames into the socketpair
function TestWorkerAttacks:test_frames_cannot_be_forged()
    attack("forge", 6, function(c)
        for _ = 1, 3 do await(c.p1, "FORGE ", 10) end
        lu.assertNil(c.p1:output():find("FORGE [^\n]*: written"), c.p1:output())
        local h = get(c.sock1, "/v1/health")
        lu.assertEquals(h.policy.restarts, 0)
    end)
end

-- a timer callback that wedges: the worker is stopped and restarted
function TestWorkerAttacks:test_a_wedge_in_a_timer_restarts_the_worker()
    attack("timer_wedge", 8, function(c)
        await(c.p1, "TIMER wedges", 10)
        await(c.p1, "policy: .*ran past its CPU limit", 10)
        await(c.p1, "ON_START restart with", 10)
        lu.assertEquals(get(c.sock1, "/v1/health").policy.restarts, 1)
    end)
end

-- a reload whose file loads but whose filter wedges while taking the peers
-- over: the running policy stays, and keeps judging; reloaded again at
-- once (a race with the kill), the agent still ends with one policy
function TestWorkerAttacks:test_a_reload_that_wedges_in_the_takeover_keeps_the_running_policy()
    local sock1 = S:path("h1.sock")
    local cfg = S:path("reload.lua")
    local base = ("api { socket = %q }\nfunction on_join(p) lmdisc.log.info('GEN %%s joined %%s', GEN, p.name) end\n")
        :format(sock1)
    write(cfg, "GEN = 1\n" .. base)
    local p1 = S:agent("h1", nil, {path = cfg})
    local first = S:uniq("first")
    S:announce("h2", 9600, first)
    await(p1, "GEN 1 joined " .. lit(first), 15)
    write(cfg, "GEN = 2\n" .. base .. "function filter(p) return ('a'):rep(300):find('a*a*a*a*a*a*b') end\n")
    p1:signal("HUP")
    p1:signal("HUP")
    local line = await(p1, "reload failed; the running policy stays in force", 20)
    lu.assertStrContains(line, "takeover")
    local who = S:uniq("after-reload")
    S:announce("h2", 9601, who)
    await(p1, "GEN 1 joined " .. lit(who), 15)
    lu.assertTrue(p1:running())
    local h = get(sock1, "/v1/health")
    lu.assertEquals(h.policy.state, "running")
    lu.assertEquals(h.policy.restarts, 0)
end

-- a reload ends the programs the replaced policy started; the new
-- policy's own programs run on
function TestWorkerAttacks:test_a_reload_ends_the_programs_of_the_policy_it_replaces()
    local pids = S:path("gen.pids")
    local cfg = S:path("gens.lua")
    local body = ("lmdisc.timer(0, function()\n" ..
        "  lmdisc.spawn { 'sh', '-c', 'echo %d $$ >> %s; exec sleep 30' }\n" ..
        "  lmdisc.log.info('GEN %d started')\nend)\n")
    write(cfg, body:format(1, pids, 1))
    local p1 = S:agent("h1", nil, {path = cfg})
    await(p1, "GEN 1 started", 15)
    write(cfg, body:format(2, pids, 2))
    p1:signal("HUP")
    await(p1, "GEN 2 started", 15)
    await(p1, "policy worker: 1 program%(s%) it had started ended with it", 5)
    local function state(gen)
        for line in io.lines(pids) do
            local g, pid = line:match("^(%d) (%d+)$")
            if tonumber(g) == gen then
                local f = io.open("/proc/" .. pid .. "/stat")
                local st = f and f:read("a")
                if f then f:close() end
                return pid, st
            end
        end
    end
    local pid1, st1
    for _ = 1, 40 do -- reaped within 50 ms of its death; 2 s at most
        pid1, st1 = state(1)
        if pid1 and not st1 then break end
        Lab.sleep(0.05)
    end
    lu.assertNotNil(pid1, "generation 1 spawned nothing")
    lu.assertNil(st1, "generation 1's program outlived the reload: " .. tostring(st1))
    local pid2, st2
    for _ = 1, 40 do
        pid2, st2 = state(2)
        if pid2 then break end
        Lab.sleep(0.05)
    end
    lu.assertNotNil(st2, "generation 2's program is not running: " .. tostring(pid2))
    lu.assertTrue(p1:running())
end

os.exit(lu.LuaUnit.run())
