-- Hook overhead: feed $BENCH_EVENTS/2 simulated joins then as many leaves
-- through the policy given to `lmdisc test`, and print the CPU time taken:
--   BENCH events=N cpu=SECONDS peers_max=K
-- Run by tests/bench/run with hooks/empty.lua, trivial.lua and logging.lua;
-- the difference to empty.lua is the cost of the hooks themselves.
local lu = require "luaunit"
local testing = require "lmdisc.testing"
local N = math.tointeger(tonumber(os.getenv("BENCH_EVENTS") or "10000") // 2)

function test_events()
  local sim = testing.load()
  local t0 = os.clock()
  for i = 1, N do
    sim:join { name = "p" .. i .. ":8000", addresses = { "10.0." .. (i // 250) .. "." .. (i % 250) },
               txt = { model = "gemma-2b-it", quant = "Q4_0" } }
  end
  local kept = #sim:peers()
  for i = 1, N do sim:leave("p" .. i .. ":8000") end
  local cpu = os.clock() - t0
  lu.assertEquals(kept, N)
  io.stderr:write(string.format("BENCH events=%d cpu=%.6f peers_max=%d\n", 2 * N, cpu, kept))
end

os.exit(lu.LuaUnit.run())
