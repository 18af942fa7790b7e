-- Tests for examples/restartable/agent.lua; run from anywhere:
--   lua5.4 examples/restartable/test_agent.lua -v
local lu = require "luaunit"
local testing = require "lmdisc.testing"

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local AGENT = testing.policy_path(HERE .. "/agent.lua")

local function peer(name, model)
  return { name = name, addresses = { "10.0.0.1" }, txt = { model = model } }
end

TestRestartable = {}

function TestRestartable:test_hooks_count_peers_by_model()
  local sim = testing.load(AGENT)
  sim:join(peer("a:8000", "gemma"))
  sim:join(peer("b:8000", "gemma"))
  sim:join(peer("c:8000", "llama"))
  sim:leave("b:8000")
  lu.assertEquals(sim.env.by_model, { gemma = 1, llama = 1 })
  sim:advance(60)
  lu.assertStrContains(table.concat(sim:messages("info"), "\n"), "peers by model: gemma=1 llama=1")
end

-- A restart, as the agent does it: a fresh policy (this file loaded again:
-- empty globals), then on_start with the peers it keeps.
function TestRestartable:test_on_start_rebuilds_the_counts_after_a_restart()
  local before = testing.load(AGENT)
  before:join(peer("a:8000", "gemma"))
  before:join(peer("c:8000", "llama"))
  local after = testing.load(AGENT)
  lu.assertEquals(after.env.by_model, {})
  after.env.on_start(before:peers(), "restart")
  lu.assertEquals(after.env.by_model, { gemma = 1, llama = 1 })
  lu.assertStrContains(table.concat(after:messages("info"), "\n"), "policy restart: 2 peer(s) taken over")
  -- the timer made by the top-level code is there again
  after:advance(60)
  lu.assertStrContains(table.concat(after:messages("info"), "\n"), "peers by model: gemma=1 llama=1")
end

os.exit(lu.LuaUnit.run())
