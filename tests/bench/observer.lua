-- Bench observer policy: appends one line per event to $OUT with the agent's
-- wall clock (lmdisc.now()), so latencies can be computed against the
-- timestamps of the other tools (all lab hosts share the machine clock).
--   join NAME TIME / leave NAME REASON TIME / update NAME TIME
-- $REG_TTL (default 60) is registry { ttl }; $CHECKS turns on checks { tcp = true }.
registry { ttl = tonumber(os.getenv("REG_TTL") or "60") }
-- $CHECKS set: probe every peer over TCP (default interval, timeout, failures)
if os.getenv("CHECKS") then checks { tcp = true } end

local OUT = assert(os.getenv("OUT"), "set OUT")

local function put(fmt, ...)
  local f = assert(io.open(OUT, "a"))
  f:write(string.format(fmt, ...))
  f:close()
end

function on_join(peer) put("join %s %.6f\n", peer.name, lmdisc.now()) end
function on_update(peer, old, changes) put("update %s %.6f\n", peer.name, lmdisc.now()) end
function on_leave(peer, reason) put("leave %s %s %.6f\n", peer.name, reason, lmdisc.now()) end
