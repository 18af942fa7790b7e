-- Hook-overhead case: like trivial.lua, and each hook also formats a log line
-- with lmdisc.log.info (what the examples do).
registry { ttl = 60 }
function filter(peer) return peer.txt.model ~= "banned" end
function info(peer) return (peer.txt.model or "?") .. " " .. (peer.txt.quant or "") end
function on_join(peer) lmdisc.log.info("joined %s at %s:%d (%s)", peer.name, peer.host, peer.port, peer.info or "") end
function on_leave(peer, reason) lmdisc.log.info("left %s (%s)", peer.name, reason) end
