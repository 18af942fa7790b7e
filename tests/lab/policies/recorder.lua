-- Lab policy: record every hook call as one line in $RECORD_FILE:
--   kind|name|host|port|info|txt(sorted k=v;)|extra
-- Optional: $KEEP_MODEL keeps only peers whose TXT model equals it;
-- $MY_MODEL is announced as $MY_NAME (default <host>:<port>) on $MY_PORT
-- (default 8000).
local FILE = assert(os.getenv("RECORD_FILE"), "set RECORD_FILE")
local KEEP = os.getenv("KEEP_MODEL")
local PORT = math.tointeger(tonumber(os.getenv("MY_PORT") or "8000"))
local MODEL = os.getenv("MY_MODEL")
local NAME = os.getenv("MY_NAME")

if MODEL then
  announce { port = PORT, name = NAME, info = MODEL .. " Q4_0", txt = { model = MODEL } }
end
registry { ttl = 60 }

local function txt(peer)
  local keys = {}
  for k in pairs(peer.txt) do keys[#keys + 1] = k end
  table.sort(keys)
  for i, k in ipairs(keys) do keys[i] = k .. "=" .. tostring(peer.txt[k]) end
  return table.concat(keys, ";")
end

local function record(kind, peer, extra)
  local f = assert(io.open(FILE, "a"))
  f:write(table.concat({kind, peer.name, peer.host or "", tostring(peer.port), peer.info or "",
                        txt(peer), extra or ""}, "|"), "\n")
  f:close()
end

if KEEP then
  function filter(peer) return peer.txt.model == KEEP end
end

function info(peer) return "model:" .. tostring(peer.txt.model) end

function on_join(peer)
  local n = 0
  for _, p in ipairs(lmdisc.peers()) do if p.name == peer.name then n = n + 1 end end
  record("join", peer, "listed=" .. n .. ";addrs=" .. table.concat(peer.addresses, ","))
end
function on_update(peer, old, changes) record("update", peer, table.concat(changes, ",") .. ";old=" .. (old.info or "")) end
function on_leave(peer, reason) record("leave", peer, reason) end
