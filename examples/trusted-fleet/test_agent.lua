-- Tests for examples/trusted-fleet/agent.lua (the agent does the signing and
-- verifying; the suite checks what the policy does with what it is given):
--   lmdisc test examples/trusted-fleet/agent.lua examples/trusted-fleet/test_agent.lua
local lu = require "luaunit"
local testing = require "lmdisc.testing"

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local AGENT = testing.policy_path(HERE .. "/agent.lua")

TestTrustedFleet = {}

function TestTrustedFleet:test_joins_name_the_signer_and_untrusted_leaves_warn()
  local sim = testing.load(AGENT)
  lu.assertTrue(sim.settings.trust.require)
  lu.assertEquals(sim.settings.trust.fleet, { "/etc/lmdisc/fleet.pub" })
  lu.assertEquals(sim.settings.trust.revoked, "/etc/lmdisc/revoked")
  sim:join { name = "a:8000", txt = { model = "gemma-2b-it" }, trusted = true, signer = "0123456789abcdef" }
  lu.assertStrContains(table.concat(sim:messages("info"), "\n"), "host key 0123456789abcdef")
  sim:leave("a:8000", "untrusted")
  lu.assertStrContains(table.concat(sim:messages("warn"), "\n"), "a:8000 stopped being trusted")
end

os.exit(lu.LuaUnit.run())
