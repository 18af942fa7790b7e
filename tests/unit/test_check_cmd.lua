-- `lmdisc check` and `lmdisc test`: what an operator sees for good and bad
-- configurations and suites, with the binary, no network.
local lu = require "luaunit"
local B = require "bin"
local sh, run, file = B.sh, B.run, B.file

TestCheck = {}

function TestCheck:test_good_config()
    local p = file('announce { port = 8000, info = "gemma" }\nfunction filter(peer) return true end\n')
    local code, out = run("check " .. sh(p))
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "OK; announces port 8000")
    lu.assertStrContains(out, "hooks: filter")
    os.remove(p)
end

-- In the agent's own VM (lmdisc check builds it exactly as the agent does):
-- the `lmdisc` table is a plain table of the public functions, and nothing
-- reachable from the policy leads to the agent's internals.
function TestCheck:test_policy_reaches_no_internals_of_the_agent()
    local p = file([[
local found = {}
if getmetatable(lmdisc) ~= nil then found[#found + 1] = "getmetatable(lmdisc)" end
for _, k in ipairs { "_guard", "guard", "_peers_all", "peers_all", "registry_new", "runner" } do
  if lmdisc[k] ~= nil then found[#found + 1] = "lmdisc." .. k end
end
for k, v in pairs(lmdisc) do
  if type(v) == "table" and getmetatable(v) ~= nil then found[#found + 1] = "getmetatable(lmdisc." .. k .. ")" end
  if type(v) ~= "function" and type(v) ~= "table" and type(v) ~= "string" and type(v) ~= "number" then
    found[#found + 1] = "lmdisc." .. k
  end
end
if package ~= nil or debug.getregistry or debug.getmetatable or debug.sethook then found[#found + 1] = "debug/package" end
-- require gives the policy's own table, never the agent's module
if require("lmdisc") ~= lmdisc then found[#found + 1] = "require 'lmdisc'" end
assert(#found == 0, "reachable: " .. table.concat(found, ", "))
-- changing what it can reach changes only its own table
lmdisc.log.error = function() end
lmdisc.timer = nil
-- and the deadline still holds for this very chunk
while true do end
]])
    local code, out = run("check " .. sh(p))
    lu.assertEquals(code, 1, out)
    lu.assertNotStrContains(out, "reachable:")
    lu.assertStrContains(out, "exceeded its deadline")
    os.remove(p)
end

function TestCheck:test_syntax_error_with_file_and_line()
    local p = file('announce { port = 8000 }\n\nfunction filter(peer)\n  return peer.txt.model ==\nend\n')
    local code, out = run("check " .. sh(p))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, p .. ":5:")
    os.remove(p)
end

-- lmd-* TXT keys are the agent's own (signatures, liveness): refused with
-- the line of the announce { } that sets one
function TestCheck:test_reserved_txt_key_with_file_and_line()
    local p = file('registry { ttl = 60 }\n\nannounce { port = 8000, txt = { ["lmd-cert"] = "x" } }\n')
    local code, out = run("check " .. sh(p))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, p .. ":3: announce.txt: the TXT key 'lmd-cert' is reserved")
    os.remove(p)
end

function TestCheck:test_unknown_key_and_wrong_type()
    local p = file('registry { ttl = 60 }\nannounce { prot = 8000 }\n')
    local code, out = run("check " .. sh(p))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, p .. ":2:")
    lu.assertStrContains(out, "unknown key 'prot'")
    lu.assertStrContains(out, "did you mean 'port'")
    p = file('announce { port = "80" }\n')
    code, out = run("check " .. sh(p))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "announce.port")
    os.remove(p)
end

function TestCheck:test_runtime_error_and_infinite_loop_at_load()
    local p = file('local x = nil\nx.y = 1\n')
    local code, out = run("check " .. sh(p))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, p .. ":2:")
    p = file('while true do end\n')
    code, out = run("check " .. sh(p))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "deadline")
end

function TestCheck:test_memory_cap_stops_a_runaway_script()
    -- 1 MiB a step: the 32 MB cap is hit in a few dozen steps, long before
    -- the deadline could be
    local p = file('local t = {}\nfor i = 1, 1000 do t[i] = ("x"):rep(1 << 20) .. i end\n')
    local code, out = run("check " .. sh(p))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "not enough memory")
    os.remove(p)
end

function TestCheck:test_missing_file_and_usage()
    local code, out = run("check /nonexistent/agent.lua")
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "/nonexistent/agent.lua")
    code, out = run("check")
    lu.assertEquals(code, 2, out)
    lu.assertStrContains(out, "missing CONFIG.lua")
    code, out = run("agent")
    lu.assertEquals(code, 2, out)
    lu.assertStrContains(out, "missing -c CONFIG.lua")
end

function TestCheck:test_lmdisc_test_passes_and_fails()
    local policy = file('function filter(peer) return peer.txt.model == "m" end\n')
    local good = file([[
local lu = require "luaunit"
local testing = require "lmdisc.testing"
function test_filter()
  local sim = testing.load()
  sim:join { name = "a:1", txt = { model = "m" } }
  sim:join { name = "b:1", txt = { model = "x" } }
  lu.assertEquals(#sim:peers(), 1)
end
os.exit(lu.LuaUnit.run())
]])
    local bad = file([[
local lu = require "luaunit"
local testing = require "lmdisc.testing"
function test_wrong()
  local sim = testing.load()
  sim:join { name = "b:1", txt = { model = "x" } }
  lu.assertEquals(#sim:peers(), 1)
end
os.exit(lu.LuaUnit.run())
]])
    local code, out = run("test " .. sh(policy) .. " " .. sh(good))
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "1 success,")
    code, out = run("test " .. sh(policy) .. " " .. sh(good) .. " " .. sh(bad))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "1 success,") -- the first suite ran to its end
    lu.assertStrContains(out, "1 failure")
    code, out = run("test " .. sh(policy))
    lu.assertEquals(code, 2, out)
end

os.exit(lu.LuaUnit.run())
