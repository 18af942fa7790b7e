-- Example /etc/lmdisc/agent.lua: announce this server and keep a registry of
-- the peers that serve the same model.  See lmdisc.conf(5).
local MODEL = "gemma-2b-it"

announce { port = 8000, info = MODEL .. " Q4_0", txt = { model = MODEL, quant = "Q4_0" } }
registry { ttl = 60 }

function filter(peer)
  return peer.txt.model == MODEL
end

function on_join(peer)
  lmdisc.log.info("peer %s joined at %s:%d (%s)", peer.name, peer.host, peer.port, peer.info or "-")
end

function on_leave(peer, reason)
  lmdisc.log.info("peer %s left (%s)", peer.name, reason)
end
