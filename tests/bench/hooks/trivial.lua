-- Hook-overhead case: a filter, an info function and join/leave hooks that
-- only count (what a small real policy does per event, without I/O).
registry { ttl = 60 }
local joins, leaves = 0, 0
function filter(peer) return peer.txt.model ~= "banned" end
function info(peer) return (peer.txt.model or "?") .. " " .. (peer.txt.quant or "") end
function on_join(peer) joins = joins + 1 end
function on_leave(peer, reason) leaves = leaves + 1 end
