-- Tests for examples/registered-servers/agent.lua; run from anywhere:
--   lmdisc test examples/registered-servers/agent.lua examples/registered-servers/test_agent.lua
local lu = require "luaunit"
local testing = require "lmdisc.testing"

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local AGENT = testing.policy_path(HERE .. "/agent.lua")

TestRegistered = {}

function TestRegistered:setUp()
  self.sim = testing.load(AGENT)
  self.file = os.tmpname()
  self.sim.env.ROUTABLE_FILE = self.file
end

function TestRegistered:tearDown()
  os.remove(self.file)
  os.remove(self.file .. ".tmp")
end

local function names(list)
  local out = {}
  for _, p in ipairs(list) do out[#out + 1] = p.name end
  table.sort(out)
  return out
end

function TestRegistered:test_draining_and_down_peers_are_not_routable()
  local sim = self.sim
  sim:join { name = "a:8000", txt = { info = "gemma" } }
  sim:join { name = "b:8000", txt = { info = "gemma", status = "up" } }
  sim:join { name = "c:8000", txt = { info = "gemma", status = "down" } }
  lu.assertEquals(names(sim:peers()), { "a:8000", "b:8000", "c:8000" })
  lu.assertEquals(names(sim:peers { routable = true }), { "a:8000", "b:8000" })
  sim:update("a:8000", { txt = { info = "gemma", status = "draining" } })
  lu.assertEquals(names(sim:peers { routable = true }), { "b:8000" })
  local said = table.concat(sim:messages("info"), "\n")
  lu.assertStrContains(said, "a:8000 is draining: no new work goes there")
  -- still listed until it leaves
  lu.assertEquals(#sim:peers(), 3)
  sim:leave("a:8000")
  lu.assertEquals(names(sim:peers()), { "b:8000", "c:8000" })
end

function TestRegistered:test_the_file_is_rewritten_on_every_change()
  local sim = self.sim
  sim:join { name = "a:8000", txt = { info = "gemma" } }
  sim:update("a:8000", { txt = { info = "gemma", status = "draining" } })
  -- each rewrite ends with one mv of the new file into place
  local mvs = 0
  for _, s in ipairs(sim.spawned) do
    if s.argv[1] == "mv" then mvs = mvs + 1 end
  end
  lu.assertEquals(mvs, 2)
  -- what the last rewrite wrote: nothing routable is left
  local f = assert(io.open(self.file .. ".tmp"))
  lu.assertEquals(f:read("a"), "")
  f:close()
end

os.exit(lu.LuaUnit.run())
