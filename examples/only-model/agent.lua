-- lmdisc agent: announce our model server and keep only the peers that
-- serve the same model.
--
--   lmdisc check examples/only-model/agent.lua
--   lmdisc agent -c examples/only-model/agent.lua
--   lmdisc test examples/only-model/agent.lua examples/only-model/test_agent.lua

-- Settings: what we serve, and therefore which peers we care about.
local MODEL = "gemma-2b-it"
local QUANT = "Q4_0"
local PORT = 8000

announce {
  port = PORT,
  info = MODEL .. " " .. QUANT,
  txt = { model = MODEL, quant = QUANT },
}
registry { ttl = 60 }

function filter(peer)
  return peer.txt.model == MODEL
end

-- "info" of a peer is "model quant"; a peer that does not say its
-- quantisation is listed with the model alone, not with a trailing space.
function info(peer)
  local quant = peer.txt.quant
  if type(quant) == "string" and quant ~= "" then
    return peer.txt.model .. " " .. quant
  end
  return peer.txt.model
end

local function where(peer)
  return ("%s:%d"):format(peer.addresses[1] or peer.host, peer.port)
end

function on_join(peer)
  lmdisc.log.info("joined %s (%s) at %s", lmdisc.escape(peer.name), lmdisc.escape(peer.info or "?"), where(peer))
end

function on_update(peer, old, changes)
  if (old.info or "") ~= (peer.info or "") then
    lmdisc.log.info("%s is now %s (was %s)", lmdisc.escape(peer.name), lmdisc.escape(peer.info or "?"),
      lmdisc.escape(old.info or "?"))
  end
end

function on_leave(peer, reason)
  lmdisc.log.info("left %s (%s): %s", lmdisc.escape(peer.name), lmdisc.escape(peer.info or "?"), reason)
end
