-- Tests for examples/only-model/agent.lua; run from anywhere:
--   lua5.4 examples/only-model/test_agent.lua -v
local lu = require "luaunit"
local testing = require "lmdisc.testing"

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local AGENT = testing.policy_path(HERE .. "/agent.lua")

local function gemma(name, extra)
  local p = { name = name, port = 8000, addresses = { "10.0.0." .. #name },
    txt = { model = "gemma-2b-it", quant = "Q4_0" } }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

local function has_message(sim, pattern)
  for _, m in ipairs(sim:messages()) do
    if m:find(pattern) then return true end
  end
  return false
end

TestOnlyModel = {}

function TestOnlyModel:setUp()
  self.sim = testing.load(AGENT)
end

function TestOnlyModel:test_announces_model_and_quant()
  lu.assertEquals(self.sim.txt, { model = "gemma-2b-it", quant = "Q4_0", info = "gemma-2b-it Q4_0" })
  lu.assertEquals(self.sim:self().port, 8000)
  lu.assertEquals(self.sim.warnings, {})
end

function TestOnlyModel:test_keeps_only_the_model()
  local sim = self.sim
  sim:join(gemma("a:8000"))
  sim:join { name = "b:8000", addresses = { "10.0.0.2" }, txt = { model = "llama-3-8b" } }
  sim:join { name = "c:8000", addresses = { "10.0.0.3" } } -- says nothing about its model
  local peers = sim:peers()
  lu.assertEquals(#peers, 1)
  lu.assertEquals(peers[1].name, "a:8000")
  lu.assertEquals(peers[1].info, "gemma-2b-it Q4_0")
  lu.assertEquals(sim:event_names("join"), { "a:8000" })
end

function TestOnlyModel:test_info_without_quant_has_no_trailing_space()
  local sim = self.sim
  sim:join { name = "a:8000", txt = { model = "gemma-2b-it" } }
  lu.assertEquals(sim:peers()[1].info, "gemma-2b-it")
end

function TestOnlyModel:test_joins_and_leaves_are_logged()
  local sim = self.sim
  sim:join(gemma("a:8000"))
  lu.assertTrue(has_message(sim, "^joined a:8000 %(gemma%-2b%-it Q4_0%) at 10%.0%.0%.6:8000$"))
  sim:leave("a:8000", "expired")
  lu.assertTrue(has_message(sim, "^left a:8000 %(gemma%-2b%-it Q4_0%): expired$"))
  lu.assertEquals(sim.events[2], { kind = "leave", name = "a:8000", reason = "expired", info = "gemma-2b-it Q4_0" })
end

function TestOnlyModel:test_switching_model_leaves_as_filtered_and_back_joins()
  local sim = self.sim
  sim:join(gemma("a:8000"))
  sim:update("a:8000", { txt = { model = "llama-3-8b" } })
  lu.assertEquals(sim:peers(), {})
  lu.assertEquals(sim.events[2].kind, "leave")
  lu.assertEquals(sim.events[2].reason, "filtered")
  lu.assertTrue(has_message(sim, "^left a:8000 .*: filtered$"))
  sim:update("a:8000", { txt = { model = "gemma-2b-it" } })
  lu.assertEquals(sim:event_names(), { "a:8000", "a:8000", "a:8000" })
  lu.assertEquals(sim.events[3].kind, "join")
end

function TestOnlyModel:test_quant_change_is_an_info_update()
  local sim = self.sim
  sim:join(gemma("a:8000"))
  sim:update("a:8000", { txt = { quant = "Q8_0" } })
  local e = sim.events[2]
  lu.assertEquals(e.kind, "update")
  lu.assertEquals(e.changes, { "txt", "info" })
  lu.assertEquals(e.info, "gemma-2b-it Q8_0")
  lu.assertTrue(has_message(sim, "^a:8000 is now gemma%-2b%-it Q8_0 %(was gemma%-2b%-it Q4_0%)$"))
end

function TestOnlyModel:test_hostile_names_are_escaped_in_logs()
  local sim = self.sim
  sim:join(gemma("evil\n:8000"))
  lu.assertTrue(has_message(sim, "^joined evil\\n:8000 "))
end

function TestOnlyModel:test_no_hook_errors()
  local sim = self.sim
  sim:join(gemma("a:8000"))
  sim:join { name = "b:8000", txt = { model = "x" } }
  sim:update("a:8000", { addresses = { "10.0.0.9" } })
  sim:leave("a:8000")
  lu.assertEquals(sim.policy.stats.hook_errors, 0)
  lu.assertEquals(sim:messages("error"), {})
end

os.exit(lu.LuaUnit.run())
