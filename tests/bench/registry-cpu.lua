-- CPU of the C registry per resolver answer (no lab): 500 peers through the
-- Lua binding, each an IPv4 join, its IPv6 address, 20 refreshes of each
-- instance in turns, a TXT change on both, then both instances gone.
-- Prints microseconds per answer for each phase (process CPU, os.clock),
-- the binding's conversion of each Lua table included.
--
--   LUA_PATH="lua/?.lua;;" LUA_CPATH="build/lua/?.so;;" lua5.4 tests/bench/registry-cpu.lua
local lmdisc = require "lmdisc"
local N, R = 500, 20
local r = lmdisc.registry_new({ttl = 60}, function() end, function() end)
local function inst(name, proto, txt)
  return {name = name, host = name .. ".local", port = 8000, proto = proto,
          address = proto == 4 and "10.0.0.1" or "fd00::1", txt = txt or {info = "gemma", model = "x"}}
end
local function name(i) return ("peer-%04d"):format(i) end
local t0 = os.clock()
for i = 1, N do
  r:seen(inst(name(i), 4), 1)
  r:seen(inst(name(i), 6), 1)
end
local t1 = os.clock()
for k = 1, R do
  for i = 1, N do
    r:seen(inst(name(i), 4), 2 + k)
    r:seen(inst(name(i), 6), 2 + k)
  end
end
local t2 = os.clock()
for i = 1, N do
  r:seen(inst(name(i), 4, {info = "llama", model = "x"}), 30)
  r:seen(inst(name(i), 6, {info = "llama", model = "x"}), 30)
end
local t3 = os.clock()
for i = 1, N do
  r:gone(inst(name(i), 6), "goodbye", 40)
  r:gone(inst(name(i), 4), "goodbye", 40)
end
local t4 = os.clock()
assert(r:count() == 0, "every peer should have left")
print(("join %.2f us/answer, refresh %.2f, TXT change %.2f, instance gone %.2f"):format(
  (t1 - t0) / (2 * N) * 1e6, (t2 - t1) / (2 * N * R) * 1e6, (t3 - t2) / (2 * N) * 1e6, (t4 - t3) / (2 * N) * 1e6))
