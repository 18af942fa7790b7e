-- Lab policy: record every hook call as one line in $RECORD_FILE:
--   kind|name|host|port|info|txt(sorted k=v;)|extra
-- Optional: $KEEP_MODEL keeps only peers whose TXT model equals it (and
-- records each verdict as filter|...|true or false);
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
  -- each verdict is recorded too ("filter|...|true"/"false"): a test that
  -- asserts a filtered peer never reached a hook first waits for the
  -- filter to have seen it
  function filter(peer)
    local keep = peer.txt.model == KEEP
    record("filter", peer, tostring(keep))
    return keep
  end
end

-- $MARK_FLAG: once that file exists (looked for every 0.1 s), the line
-- "mark|$MARK_AFTER" is recorded $MARK_AFTER seconds later on the agent's
-- own clock.  The agent's timers run in deadline order, so a test that
-- sees the mark knows the agent's loop has got past every deadline of its
-- own that was due before it (a held goodbye's, say): what did not happen
-- by then did not happen.
local MARK_FLAG = os.getenv("MARK_FLAG")
if MARK_FLAG then
  local after = tonumber(os.getenv("MARK_AFTER") or "0")
  local armed = false
  lmdisc.every(0.1, function()
    local f = not armed and io.open(MARK_FLAG)
    if f then
      f:close()
      armed = true
      lmdisc.timer(after, function()
        local o = assert(io.open(FILE, "a"))
        o:write("mark|", tostring(after), "\n")
        o:close()
      end)
    end
  end)
end

function info(peer) return "model:" .. tostring(peer.txt.model) end

function on_join(peer)
  local n = 0
  for _, p in ipairs(lmdisc.peers()) do if p.name == peer.name then n = n + 1 end end
  record("join", peer, "listed=" .. n .. ";addrs=" .. table.concat(peer.addresses, ","))
end
function on_update(peer, old, changes) record("update", peer, table.concat(changes, ",") .. ";old=" .. (old.info or "")) end
function on_leave(peer, reason) record("leave", peer, reason) end
