-- Tests for examples/least-loaded/agent.lua; run from anywhere:
--   lua5.4 examples/least-loaded/test_agent.lua -v
local lu = require "luaunit"
local testing = require "lmdisc.testing"

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local AGENT = testing.policy_path(HERE .. "/agent.lua")

local function peer(name, load, model)
  return { name = name, addresses = { "10.0.0.1" }, txt = { model = model or "gemma-2b-it", load = load } }
end

TestLeastLoaded = {}

function TestLeastLoaded:setUp()
  self.sim = testing.load(AGENT)
  self.load = 0.42
  -- replace /proc/loadavg
  self.sim.env.read_loadavg = function() return self.load end
end

function TestLeastLoaded:best_messages()
  local out = {}
  for _, m in ipairs(self.sim:messages("info")) do
    if m:match("^best peer") or m:match("^no peer") then out[#out + 1] = m end
  end
  return out
end

function TestLeastLoaded:test_load_is_announced_at_start()
  local sim = self.sim
  lu.assertNil(sim.txt.load)
  sim:advance(0)
  lu.assertEquals(sim.txt, { model = "gemma-2b-it", info = "gemma-2b-it", load = "0.42" })
  lu.assertEquals(sim:self().txt.load, "0.42")
end

function TestLeastLoaded:test_load_is_updated_every_interval()
  local sim = self.sim
  sim:advance(0)
  self.load = 1.5
  sim:advance(9.9)
  lu.assertEquals(sim.txt.load, "0.42")
  sim:advance(0.1)
  lu.assertEquals(sim.txt.load, "1.50")
  self.load = 3
  sim:advance(10)
  lu.assertEquals(sim.txt.load, "3.00")
  lu.assertEquals(sim.policy.stats.by_hook.every.runs, 2)
end

function TestLeastLoaded:test_unreadable_load_keeps_the_last_value()
  local sim = self.sim
  sim:advance(0)
  self.load = nil
  sim:advance(10)
  lu.assertEquals(sim.txt.load, "0.42")
  lu.assertStrContains(sim:messages("warn")[1], "cannot read the load average")
end

function TestLeastLoaded:test_real_loadavg_reader_returns_a_number()
  local sim = testing.load(AGENT)
  local f = io.open("/proc/loadavg")
  if not f then lu.skip("no /proc/loadavg here") end
  f:close()
  lu.assertIsNumber(sim.env.read_loadavg())
end

function TestLeastLoaded:test_best_peer_is_lowest_load_ties_by_name()
  local sim = self.sim
  lu.assertNil(sim.env.best_peer())
  sim:join(peer("c:8000", "0.3"))
  sim:join(peer("a:8000", "0.9"))
  sim:join(peer("b:8000", "0.3"))
  sim:join(peer("z:8000", "0.1", "llama-3-8b")) -- other model: not kept
  lu.assertEquals(sim.env.best_peer().name, "b:8000")
end

function TestLeastLoaded:test_peers_without_load_come_last()
  local sim = self.sim
  sim:join(peer("a:8000", nil))
  lu.assertEquals(sim.env.best_peer().name, "a:8000") -- better than nothing
  sim:join(peer("b:8000", "7.5"))
  sim:join(peer("c:8000", "garbage"))
  lu.assertEquals(sim.env.best_peer().name, "b:8000")
end

function TestLeastLoaded:test_best_peer_changes_are_logged()
  local sim = self.sim
  sim:join(peer("a:8000", "0.9"))
  sim:join(peer("b:8000", "0.3"))
  sim:join(peer("c:8000", "0.3")) -- tie, b stays best: no message
  sim:update("b:8000", { txt = { load = "2.0" } })
  sim:update("a:8000", { txt = { load = "0.8" } }) -- c still best: no message
  sim:leave("c:8000")
  sim:update("a:8000", { txt = { model = "other" } }) -- filtered out
  lu.assertEquals(self:best_messages(), {
    "best peer is now a:8000 (load 0.9)",
    "best peer is now b:8000 (load 0.3)",
    "best peer is now c:8000 (load 0.3)",
    "best peer is now a:8000 (load 0.8)",
    "best peer is now b:8000 (load 2.0)",
  })
  sim:leave("b:8000", "expired")
  lu.assertEquals(self:best_messages()[6], "no peer serves gemma-2b-it any more")
end

function TestLeastLoaded:test_no_hook_errors_or_warnings()
  local sim = self.sim
  sim:join(peer("a:8000", "0.9"))
  sim:advance(60)
  lu.assertEquals(sim.warnings, {})
  lu.assertEquals(sim.policy.stats.hook_errors, 0)
end

os.exit(lu.LuaUnit.run())
