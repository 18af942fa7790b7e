-- Demo policy: keep only peers that serve the same model as we do, and say
-- so when they come, change and go.  The model is read from the file the
-- local server keeps it in ($LMSERV_MODEL_FILE), so after the server switches
-- models, `kill -HUP` makes the agent announce the new one.
local function current_model()
  local path = os.getenv("LMSERV_MODEL_FILE")
  local f = path and io.open(path)
  if not f then return "gemma-2b-it" end
  local m = f:read("l")
  f:close()
  return m
end
local MODEL = current_model()

announce { port = 8000, info = MODEL .. " Q4_0", txt = { model = MODEL, quant = "Q4_0" } }
registry { ttl = 60 }

function filter(peer)
  return peer.txt.model == MODEL
end

function info(peer)
  return (peer.txt.model or "?") .. " " .. (peer.txt.quant or "")
end

local function names()
  local t = {}
  for _, p in ipairs(lmdisc.peers()) do t[#t + 1] = p.name end
  return #t > 0 and table.concat(t, ", ") or "nobody"
end

function on_join(peer)
  lmdisc.log.info("[policy] %s joined at %s:%d serving %s; my %s peers: %s",
                  peer.name, peer.addresses[1] or peer.host, peer.port, peer.info, MODEL, names())
end

function on_update(peer, old, changes)
  lmdisc.log.info("[policy] %s changed %s", peer.name, table.concat(changes, ","))
end

function on_leave(peer, reason)
  lmdisc.log.info("[policy] %s left (%s); my %s peers: %s", peer.name, reason, MODEL, names())
end
