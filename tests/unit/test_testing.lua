-- Unit tests for lmdisc.testing, the policy test harness itself.
local lu = require "luaunit"
local testing = require "lmdisc.testing"

local files = {}

-- Write a policy to a temporary file; removed in tearDown.
local function policy_file(src)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(src)
  f:close()
  files[#files + 1] = path
  return path
end

local function sim_of(src, overrides)
  return testing.load(policy_file(src), overrides)
end

local function cleanup()
  for _, p in ipairs(files) do os.remove(p) end
  files = {}
end

---------------------------------------------------------------------------
TestSimClock = { tearDown = cleanup }

function TestSimClock:test_clock_starts_at_epoch_and_now_follows_it()
  local sim = sim_of("function now_seen() return lmdisc.now() end")
  lu.assertEquals(sim.clock, testing.EPOCH)
  sim:advance(12.5)
  lu.assertEquals(sim.env.now_seen(), testing.EPOCH + 12.5)
end

function TestSimClock:test_timers_fire_in_time_order_at_their_due_time()
  local sim = sim_of([[
fired = {}
local function mark(tag) return function() fired[#fired + 1] = tag .. "@" .. (lmdisc.now() - START) end end
START = lmdisc.now()
lmdisc.timer(5, mark("A"))
lmdisc.timer(2, mark("B"))
lmdisc.timer(5, mark("C")) -- same time as A: creation order
lmdisc.timer(20, mark("late"))
]])
  sim:advance(1)
  lu.assertEquals(sim.env.fired, {})
  sim:advance(9)
  lu.assertEquals(sim.env.fired, { "B@2", "A@5", "C@5" })
  lu.assertEquals(sim.clock, testing.EPOCH + 10)
  lu.assertEquals(sim:pending_timers(), 1)
  sim:advance(10)
  lu.assertEquals(sim.env.fired[4], "late@20")
  lu.assertEquals(sim:pending_timers(), 0)
end

function TestSimClock:test_timer_zero_fires_on_advance_zero()
  local sim = sim_of("n = 0\nlmdisc.timer(0, function() n = n + 1 end)")
  lu.assertEquals(sim.env.n, 0) -- nothing runs between calls
  sim:advance(0)
  lu.assertEquals(sim.env.n, 1)
end

function TestSimClock:test_timers_armed_by_callbacks_fire_within_the_same_advance()
  local sim = sim_of([[
fired = {}
lmdisc.timer(1, function()
  fired[#fired + 1] = "first"
  lmdisc.timer(2, function() fired[#fired + 1] = "second@" .. (lmdisc.now() - START) end)
end)
START = lmdisc.now()
]])
  sim:advance(10)
  lu.assertEquals(sim.env.fired, { "first", "second@3" })
end

function TestSimClock:test_every_repeats_and_interleaves_with_timers()
  local sim = sim_of([[
fired = {}
local t0 = lmdisc.now()
lmdisc.every(3, function() fired[#fired + 1] = "e" .. (lmdisc.now() - t0) end)
lmdisc.timer(4, function() fired[#fired + 1] = "t4" end)
]])
  sim:advance(10)
  lu.assertEquals(sim.env.fired, { "e3", "t4", "e6", "e9" })
  sim:advance(2)
  lu.assertEquals(sim.env.fired[5], "e12")
  lu.assertEquals(sim.policy.stats.by_hook.every.runs, 4)
  lu.assertEquals(sim.policy.stats.by_hook.timer.runs, 1)
end

function TestSimClock:test_cancel()
  local sim = sim_of([[
fired = {}
h1 = lmdisc.timer(5, function() fired[#fired + 1] = "t" end)
local n = 0
local h2
h2 = lmdisc.every(1, function()
  n = n + 1
  fired[#fired + 1] = "e" .. n
  if n == 3 then h2:cancel() end
end)
]])
  lu.assertTrue(sim.env.h1:cancel())
  lu.assertFalse(sim.env.h1:cancel()) -- already cancelled
  sim:advance(10)
  lu.assertEquals(sim.env.fired, { "e1", "e2", "e3" })
  lu.assertEquals(sim:pending_timers(), 0)
end

function TestSimClock:test_timer_argument_errors()
  local sim = sim_of("")
  lu.assertErrorMsgContains("bad argument #1 to 'timer' (seconds must be a number >= 0, got string \"x\")",
    sim.api.timer, "x", function() end)
  lu.assertErrorMsgContains("bad argument #2 to 'timer' (function expected, got nil)", sim.api.timer, 1)
  lu.assertErrorMsgContains("bad argument #1 to 'every' (seconds must be a number > 0, got number 0)",
    sim.api.every, 0, function() end)
  lu.assertErrorMsgContains("seconds must be a number >= 0", sim.advance, sim, -1)
end

function TestSimClock:test_erroring_timer_is_logged_and_others_still_run()
  local sim = sim_of([[
ran = false
lmdisc.timer(1, function() error("tick failed") end)
lmdisc.timer(2, function() ran = true end)
]])
  sim:advance(5)
  lu.assertTrue(sim.env.ran)
  lu.assertEquals(sim.policy.stats.by_hook.timer.errors, 1)
  lu.assertStrContains(sim:messages("error")[1], "policy: timer failed: ")
  lu.assertStrContains(sim:messages("error")[1], "tick failed")
end

function TestSimClock:test_endless_callback_is_stopped_by_the_deadline()
  local sim = sim_of("lmdisc.timer(1, function() while true do end end)", { policy = { deadline = 0.05 } })
  sim:advance(1)
  lu.assertStrContains(sim:messages("error")[1], "exceeded its deadline of 0.05 s")
end

---------------------------------------------------------------------------
TestSimSpawn = { tearDown = cleanup }

function TestSimSpawn:test_spawn_records_and_exit_runs_on_exit()
  local sim = sim_of([[
codes = {}
function go()
  return lmdisc.spawn({"echo", "hi"}, { env = { A = "1" }, stdin = "text",
    on_exit = function(code) codes[#codes + 1] = code end })
end
]])
  local pid = sim.env.go()
  lu.assertEquals(pid, 1)
  local s = sim.spawned[1]
  lu.assertEquals(s.argv, { "echo", "hi" })
  lu.assertEquals(s.env, { A = "1" })
  lu.assertEquals(s.stdin, "text")
  lu.assertEquals(s.time, testing.EPOCH)
  lu.assertEquals(sim.env.go(), 2)
  sim:exit(2, 3)
  sim:exit(1)
  lu.assertEquals(sim.env.codes, { 3, 0 })
  lu.assertEquals(sim.policy.stats.by_hook.on_exit.runs, 2)
  lu.assertErrorMsgContains("has already exited", sim.exit, sim, 1, 0)
  lu.assertErrorMsgContains("no spawned process #9", sim.exit, sim, 9, 0)
end

function TestSimSpawn:test_spawn_without_on_exit()
  local sim = sim_of("")
  lu.assertEquals(sim.api.spawn { "true" }, 1)
  lu.assertTrue(sim:exit(1, 0))
end

function TestSimSpawn:test_spawn_argument_errors()
  local sim = sim_of("")
  local spawn = sim.api.spawn
  lu.assertErrorMsgContains("bad argument #1 to 'spawn' (non-empty list of strings expected", spawn, {})
  lu.assertErrorMsgContains("bad argument #1 to 'spawn'", spawn, "ls -l")
  lu.assertErrorMsgContains("bad argument #1 to 'spawn'", spawn, { "ls", 1 })
  lu.assertErrorMsgContains("bad argument #1 to 'spawn'", spawn, { "ls", x = "y" })
  lu.assertErrorMsgContains("bad argument #2 to 'spawn' (unknown option 'onexit', did you mean 'on_exit'?)",
    spawn, { "ls" }, { onexit = print })
  lu.assertErrorMsgContains("bad argument #2 to 'spawn' (env must map names to strings",
    spawn, { "ls" }, { env = { A = 1 } })
  lu.assertErrorMsgContains("stdin must be a string", spawn, { "ls" }, { stdin = 5 })
  lu.assertEquals(#sim.spawned, 0)
end

function TestSimSpawn:test_spawn_failure_returns_nil_err()
  local sim = sim_of("")
  sim.spawn_error = "No such file or directory"
  lu.assertEquals({ sim.api.spawn { "nope" } }, { nil, "No such file or directory" })
  lu.assertEquals(#sim.spawned, 0)
end

---------------------------------------------------------------------------
TestSimTxt = { tearDown = cleanup }

local ANNOUNCE = 'announce { port = 8000, info = "m q", txt = { model = "m", quant = "q" } }\n'

function TestSimTxt:test_initial_txt_and_self()
  local sim = sim_of(ANNOUNCE)
  lu.assertEquals(sim.txt, { model = "m", quant = "q", info = "m q" })
  lu.assertEquals(sim:self(), { name = testing.HOSTNAME, type = "_lmserv._tcp", port = 8000,
    txt = { model = "m", quant = "q", info = "m q" }, info = "m q" })
  lu.assertEquals(sim.api.self(), sim:self())
end

function TestSimTxt:test_set_txt_adds_changes_and_removes()
  local sim = sim_of(ANNOUNCE)
  lu.assertTrue(sim.api.set_txt { load = "0.5", n = 3, flag = true })
  lu.assertTrue(sim.api.set_txt { quant = false })
  lu.assertEquals(sim.txt, { model = "m", info = "m q", load = "0.5", n = "3", flag = true })
  lu.assertTrue(sim.api.set_txt { info = "new info" })
  lu.assertEquals(sim:self().info, "new info")
end

function TestSimTxt:test_set_txt_validation()
  local sim = sim_of(ANNOUNCE)
  local before = sim.txt
  local ok, err = sim.api.set_txt { ["a=b"] = "x" }
  lu.assertNil(ok)
  lu.assertStrContains(err, "set_txt: TXT key may not contain '='")
  ok, err = sim.api.set_txt { big = string.rep("x", 300) }
  lu.assertNil(ok)
  lu.assertStrContains(err, "at most 255 bytes")
  ok, err = sim.api.set_txt { t = {} }
  lu.assertNil(ok)
  lu.assertStrContains(err, "must be a string, number or true")
  -- lmd-* keys are the agent's own, in any case; with other keys, none is applied
  ok, err = sim.api.set_txt { load = "1", ["lmd-live"] = "1/60" }
  lu.assertNil(ok)
  lu.assertStrContains(err, "set_txt: the TXT key 'lmd-live' is reserved: keys beginning with 'lmd-' are lmdisc's own")
  ok, err = sim.api.set_txt { ["Lmd-Sig"] = "x" }
  lu.assertNil(ok)
  lu.assertStrContains(err, "the TXT key 'Lmd-Sig' is reserved")
  lu.assertEquals(sim.txt, before) -- nothing half-applied
  lu.assertErrorMsgContains("bad argument #1 to 'set_txt' (table expected, got string)", sim.api.set_txt, "k=v")
end

function TestSimTxt:test_set_txt_without_announce()
  local sim = sim_of("")
  lu.assertNil(sim.txt)
  lu.assertNil(sim:self())
  local ok, err = sim.api.set_txt { load = "1" }
  lu.assertNil(ok)
  lu.assertStrContains(err, "this agent announces nothing")
end

---------------------------------------------------------------------------
TestSimPeers = { tearDown = cleanup }

function TestSimPeers:test_join_fills_defaults()
  local sim = sim_of("function on_join(p) seen = p end")
  sim:advance(3)
  sim:join { name = "a:8000", addresses = { "10.0.0.1" }, txt = { model = "m", n = 2 } }
  local p = sim.env.seen
  lu.assertEquals(p.name, "a:8000")
  lu.assertEquals(p.host, "a.local")
  lu.assertEquals(p.port, 8000)
  lu.assertEquals(p.type, "_lmserv._tcp")
  lu.assertEquals(p.domain, "local")
  lu.assertEquals(p.interfaces, { "eth0" })
  lu.assertEquals(p.txt, { model = "m", n = "2" })
  lu.assertEquals(p.first_seen, testing.EPOCH + 3)
  lu.assertEquals(p.last_seen, testing.EPOCH + 3)
  lu.assertFalse(p["local"])
  lu.assertFalse(p.self)
  lu.assertEquals(p.sources, { "mdns" })
  lu.assertErrorMsgContains("already on the network", sim.join, sim, { name = "a:8000" })
  lu.assertErrorMsgContains("give a port", sim.join, sim, { name = "noport" })
  lu.assertErrorMsgContains("unknown peer field 'adresses' (did you mean 'addresses'?)",
    sim.join, sim, { name = "b:1", adresses = {} })
  lu.assertErrorMsgContains("invalid txt", sim.join, sim, { name = "c:1", txt = { ["="] = "x" } })
end

function TestSimPeers:test_peers_are_the_kept_ones_sorted_with_computed_info()
  local sim = sim_of([[
function filter(p) return p.txt.keep == "yes" end
function info(p) return "I:" .. p.name end
function on_join(p) during_join = #lmdisc.peers() end
function on_leave(p) during_leave = #lmdisc.REGISTRY:list_alive() end
]])
  sim:join { name = "c:1", txt = { keep = "yes" } }
  sim:join { name = "a:1", txt = { keep = "yes" } }
  sim:join { name = "b:1", txt = { keep = "no" } }
  local peers = sim:peers()
  lu.assertEquals(#peers, 2)
  lu.assertEquals({ peers[1].name, peers[1].info, peers[2].name }, { "a:1", "I:a:1", "c:1" })
  lu.assertEquals(sim.api.peers(), peers)
  lu.assertEquals(sim.api.REGISTRY:list_alive(), peers)
  lu.assertEquals(sim.env.during_join, 2) -- includes the joining peer
  sim:leave("a:1")
  lu.assertEquals(sim.env.during_leave, 1) -- excludes the leaving peer
  -- what the policy gets is a copy
  sim.api.peers()[1].txt.keep = "mutated"
  lu.assertEquals(sim:peers()[1].txt.keep, "yes")
end

function TestSimPeers:test_sources_are_stated_and_their_change_is_an_update()
  local sim = sim_of([[function on_update(p, old, changes) last = { changes = changes, old = old, new = p } end]])
  sim:join { name = "a:1", addresses = { "10.0.0.1" } }
  sim:update("a:1", { sources = { "mdns", "dns" }, addresses = { "10.0.0.1", "192.0.2.1" } })
  lu.assertEquals(sim.env.last.changes, { "addresses", "sources" })
  lu.assertEquals(sim.env.last.old.sources, { "mdns" })
  lu.assertEquals(sim:peers()[1].sources, { "mdns", "dns" })
end

function TestSimPeers:test_update_merges_and_computes_changes()
  local sim = sim_of([[function on_update(p, old, changes) last = { changes = changes, old = old, new = p } end]])
  sim:join { name = "a:1", addresses = { "10.0.0.1" }, txt = { x = "1", y = "2" } }
  sim:advance(5)
  sim:update("a:1", { txt = { x = "9", y = false, z = true } })
  local last = sim.env.last
  lu.assertEquals(last.changes, { "txt" })
  lu.assertEquals(last.new.txt, { x = "9", z = true })
  lu.assertEquals(last.old.txt, { x = "1", y = "2" })
  lu.assertEquals(last.new.last_seen, testing.EPOCH + 5)
  sim:update("a:1", { addresses = { "10.0.0.1", "fd00::1" }, port = 2, host = "b.local" })
  lu.assertEquals(sim.env.last.changes, { "host", "port", "addresses" })
  lu.assertEquals(sim.events[#sim.events], { kind = "update", name = "a:1", changes = { "host", "port", "addresses" } })
  lu.assertErrorMsgContains("no peer named 'zz'", sim.update, sim, "zz", {})
  lu.assertErrorMsgContains("cannot be renamed", sim.update, sim, "a:1", { name = "b:1" })
end

function TestSimPeers:test_info_field_is_the_txt_info()
  local sim = sim_of("")
  sim:join { name = "a:1", info = "hello" }
  lu.assertEquals(sim:peers()[1].txt.info, "hello")
  lu.assertEquals(sim:peers()[1].info, "hello")
  sim:update("a:1", { info = "bye" })
  lu.assertEquals(sim.events[2].changes, { "txt", "info" })
  lu.assertEquals(sim:peers()[1].info, "bye")
end

function TestSimPeers:test_events_and_leave_reasons()
  local sim = sim_of("function filter(p) return p.txt.ok ~= 'no' end")
  sim:join { name = "a:1" }
  sim:join { name = "b:1" }
  sim:update("a:1", { txt = { ok = "no" } })
  sim:leave("a:1")
  sim:leave("b:1", "expired")
  lu.assertEquals(sim.events, {
    { kind = "join", name = "a:1" },
    { kind = "join", name = "b:1" },
    { kind = "leave", name = "a:1", reason = "filtered" },
    { kind = "leave", name = "b:1", reason = "expired" },
  })
  lu.assertEquals(sim:event_names("join"), { "a:1", "b:1" })
  lu.assertErrorMsgContains("no peer named 'a:1'", sim.leave, sim, "a:1")
end

function TestSimPeers:test_self_peer_needs_include_self()
  local src = "function on_join(p) joined = (joined or 0) + 1 end"
  local sim = sim_of(src)
  sim:join { name = "me:1", self = true }
  lu.assertEquals(sim:peers(), {})
  lu.assertNil(sim.env.joined)
  sim = sim_of(src, { registry = { include_self = true } })
  sim:join { name = "me:1", self = true }
  lu.assertEquals(sim.env.joined, 1)
  lu.assertTrue(sim:peers()[1].self)
end

function TestSimPeers:test_hook_errors_do_not_stop_the_simulation()
  local sim = sim_of("function on_join(p) error('broken') end")
  lu.assertEquals((sim:join { name = "a:1" }), "join")
  lu.assertEquals(sim.policy.stats.hook_errors, 1)
  lu.assertEquals(#sim:peers(), 1)
end

---------------------------------------------------------------------------
TestSimLoad = { tearDown = cleanup }

function TestSimLoad:test_broken_policy_raises_clearly()
  local path = policy_file("announce { prot = 1 }")
  local ok, err = pcall(testing.load, path)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "lmdisc.testing: policy " .. path .. " does not load:\n" .. path
    .. ":1: announce: unknown key 'prot' (did you mean 'port'?)")
  lu.assertErrorMsgContains("give the path of the policy file", testing.load)
end

function TestSimLoad:test_logs_and_print()
  local sim = sim_of("lmdisc.log.warn('w %d', 1)\nprint('p', 2)\nlmdisc.log.debug('d')")
  lu.assertEquals(sim.logs, { { level = "warn", message = "w 1" }, { level = "info", message = "p\t2" },
    { level = "debug", message = "d" } })
  lu.assertEquals(sim:messages("warn"), { "w 1" })
  lu.assertErrorMsgContains("lmdisc.log.info: bad argument #2 to ", sim.api.log.info, "%d", "x")
end

function TestSimLoad:test_warnings_are_exposed()
  local sim = sim_of("function on_joined() end")
  lu.assertStrContains(sim.warnings[1], "did you mean 'on_join'?")
end

function TestSimLoad:test_network_functions_are_refused()
  local sim = sim_of("")
  lu.assertErrorMsgContains("discover_nodes is not available in a policy", sim.api.discover_nodes, 1)
  lu.assertErrorMsgContains("announce_self is not available in a policy", sim.api.announce_self, 8000)
  lu.assertIsFunction(sim.api.escape)
  lu.assertEquals(sim.api.SERVICE_TYPE, "_lmserv._tcp")
end

function TestSimLoad:test_policy_path()
  lu.assertEquals(testing.policy_path("x.lua"), package.lmdisc_policy or os.getenv("LMDISC_POLICY") or "x.lua")
  testing.default_policy = "given.lua"
  lu.assertEquals(testing.policy_path("x.lua"), "given.lua")
  testing.default_policy = nil
end

---------------------------------------------------------------------------
TestSimReload = { tearDown = cleanup }

local V1 = [[
announce { port = 8000, txt = { v = "1" } }
function filter(p) return p.txt.model ~= "x" end
function on_join(p) lmdisc.log.info("v1 join %s", p.name) end
function on_leave(p, reason) lmdisc.log.info("v1 leave %s %s", p.name, reason) end
ticks = 0
lmdisc.every(1, function() lmdisc.log.info("v1 tick") end)
]]

local V2 = [[
announce { port = 8000, txt = { v = "2" } }
function filter(p) return p.txt.model ~= "y" end
function on_join(p) lmdisc.log.info("v2 join %s", p.name) end
function on_leave(p, reason) lmdisc.log.info("v2 leave %s %s", p.name, reason) end
lmdisc.every(1, function() lmdisc.log.info("v2 tick") end)
]]

local function count(sim, msg)
  local n = 0
  for _, m in ipairs(sim:messages()) do if m == msg then n = n + 1 end end
  return n
end

function TestSimReload:test_broken_file_keeps_the_old_policy()
  local path = policy_file(V1)
  local sim = testing.load(path)
  sim.api.set_txt { extra = "kept" }
  local f = assert(io.open(path, "w"))
  f:write("lmdisc.every(1, function() lmdisc.log.info('broken tick') end)\nannounce { port = 'no' }\n")
  f:close()
  local ok, err = sim:reload()
  lu.assertNil(ok)
  lu.assertStrContains(err, path .. ":2: announce.port must be an integer")
  -- still v1: hooks, timers, TXT
  sim:join { name = "a:1", txt = { model = "x" } }
  sim:join { name = "b:1", txt = { model = "y" } }
  lu.assertEquals(sim:event_names("join"), { "b:1" })
  sim:advance(2)
  lu.assertEquals(count(sim, "v1 tick"), 2)
  lu.assertEquals(count(sim, "broken tick"), 0) -- the broken file's timer was dropped
  lu.assertEquals(sim.txt, { v = "1", extra = "kept" })
  lu.assertEquals(sim.path, path)
end

function TestSimReload:test_reload_adopts_peers_with_the_new_hooks()
  local sim = testing.load(policy_file(V1))
  sim:join { name = "a:1", txt = { model = "x" } } -- v1 drops x
  sim:join { name = "b:1", txt = { model = "y" } } -- v2 drops y
  sim:join { name = "c:1", txt = { model = "z" } } -- both keep z
  sim.api.set_txt { extra = "gone after reload" }
  local ok = sim:reload(policy_file(V2))
  lu.assertTrue(ok)
  lu.assertEquals(count(sim, "v2 join a:1"), 1)
  lu.assertEquals(count(sim, "v2 leave b:1 filtered"), 1)
  lu.assertEquals(count(sim, "v2 join c:1"), 0)
  lu.assertEquals(sim.events[#sim.events - 1], { kind = "join", name = "a:1" })
  lu.assertEquals(sim.events[#sim.events], { kind = "leave", name = "b:1", reason = "filtered" })
  lu.assertEquals(#sim:peers(), 2)
  -- old timers are gone, new ones run; TXT follows the new announce
  sim:advance(3)
  lu.assertEquals(count(sim, "v1 tick"), 0)
  lu.assertEquals(count(sim, "v2 tick"), 3)
  lu.assertEquals(sim.txt, { v = "2" })
  -- and the new policy handles later events
  sim:leave("c:1")
  lu.assertEquals(count(sim, "v2 leave c:1 goodbye"), 1)
end

os.exit(lu.LuaUnit.run())
