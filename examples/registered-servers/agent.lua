-- An agent next to Python servers that register themselves through its API
-- (server.py): it announces nothing of its own, and keeps a file listing
-- the peers new work may go to, leaving out those that are draining or down.
--
--   lmdisc agent -c examples/registered-servers/agent.lua
--   python3 examples/registered-servers/server.py 8000 "gemma-2b-it Q4_0"
registry { ttl = 60 }

-- (a global, so that a test can point it elsewhere)
ROUTABLE_FILE = os.getenv("ROUTABLE_FILE") or "/run/lmdisc/routable.txt"

-- one line per routable peer: name address:port info
local function write_routable()
  local lines = {}
  for _, p in ipairs(lmdisc.peers { routable = true }) do
    lines[#lines + 1] = ("%s %s:%d %s"):format(p.name, p.addresses[1] or p.host, p.port, p.info or "-")
  end
  table.sort(lines)
  local f, err = io.open(ROUTABLE_FILE .. ".tmp", "w")
  if not f then
    lmdisc.log.warn("cannot write %s: %s", ROUTABLE_FILE, err)
    return
  end
  f:write(table.concat(lines, "\n"), #lines > 0 and "\n" or "")
  f:close()
  lmdisc.spawn { "mv", "-f", ROUTABLE_FILE .. ".tmp", ROUTABLE_FILE }
end

function on_join(peer) write_routable() end
function on_leave(peer, reason) write_routable() end
function on_update(peer, old, changes)
  if old.routable and not peer.routable then
    lmdisc.log.info("%s is %s: no new work goes there", peer.name, peer.txt.status or "?")
  end
  write_routable()
end
