-- Policy-worker benchmark (tests/bench/worker): trivial.lua's hooks, and a
-- join of "wedge:8000" loops inside a C function (string.find) to time a
-- worker's stop and restart.
registry { ttl = 60 }
local joins, leaves = 0, 0
function filter(peer) return peer.txt.model ~= "banned" end
function info(peer) return (peer.txt.model or "?") .. " " .. (peer.txt.quant or "") end
function on_join(peer)
  joins = joins + 1
  if peer.name == "wedge:8000" then return ("a"):rep(300):find("a*a*a*a*a*a*b") end
end
function on_leave(peer, reason) leaves = leaves + 1 end
