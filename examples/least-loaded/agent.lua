-- lmdisc agent: announce our load average in TXT, and know which peer
-- serving the same model is the least loaded (best_peer()).
--
--   lmdisc agent -c examples/least-loaded/agent.lua

-- Settings
local MODEL = "gemma-2b-it"
local PORT = 8000
local LOAD_INTERVAL = 10 -- seconds between TXT load updates

announce { port = PORT, info = MODEL, txt = { model = MODEL } }
registry { ttl = 60 }

function filter(peer)
  return peer.txt.model == MODEL
end

-- The 1-minute load average, or nil.  A global function (not local) so
-- that a test can replace it: a suite cannot give us a fake /proc.
function read_loadavg()
  local f = io.open("/proc/loadavg", "r")
  if not f then return nil end
  local line = f:read("l")
  f:close()
  return tonumber(line and line:match("^(%S+)"))
end

local function publish_load()
  local load = read_loadavg()
  if not load then
    lmdisc.log.warn("cannot read the load average; TXT load left as it was")
    return
  end
  local ok, err = lmdisc.set_txt { load = ("%.2f"):format(load) }
  if not ok then lmdisc.log.error("cannot update TXT load: %s", err) end
end

-- Once as soon as the agent runs, then periodically.
lmdisc.timer(0, publish_load)
lmdisc.every(LOAD_INTERVAL, publish_load)

-- A peer that announces no (or a nonsensical) load is never preferred
-- over one that does.
local function load_of(peer)
  local l = tonumber(peer.txt.load)
  if l and l >= 0 and l < math.huge then return l end
  return math.huge
end

--- The kept peer with the lowest TXT load (ties: the smallest name), or nil.
function best_peer()
  local best, best_load
  for _, p in ipairs(lmdisc.peers()) do
    local l = load_of(p)
    if not best or l < best_load or (l == best_load and p.name < best.name) then
      best, best_load = p, l
    end
  end
  return best
end

local current -- name of the best peer last logged

local function note_best()
  local b = best_peer()
  local name = b and b.name
  if name == current then return end
  current = name
  if b then
    lmdisc.log.info("best peer is now %s (load %s)", lmdisc.escape(b.name), lmdisc.escape(tostring(b.txt.load or "unknown")))
  else
    lmdisc.log.info("no peer serves %s any more", MODEL)
  end
end

-- lmdisc.peers() already includes a joining peer and excludes a leaving
-- one while these run.
function on_join(peer) note_best() end
function on_update(peer, old, changes) note_best() end
function on_leave(peer, reason) note_best() end
