-- lmdisc agent: keep an nginx upstream file listing the peers on the LAN,
-- and reload nginx when it changes.  This host only observes (no announce).
--
-- In nginx:
--   upstream lmserv { include /var/lib/lmdisc/upstream.conf; }
--   server { listen 80; location / { proxy_pass http://lmserv; } }
--
-- Under the Debian service (lmdisc.service: user lmdisc, a read-only file
-- system but /var/lib/lmdisc and /run/lmdisc, a private /tmp) the file goes
-- in /var/lib/lmdisc, where nginx can read it; the agent's user may not
-- signal nginx, so set reload = false there and let systemd reload nginx
-- when the file changes: copy lmdisc-nginx-reload.path and .service (next to
-- this file) to /etc/systemd/system and `systemctl enable --now
-- lmdisc-nginx-reload.path`.  An agent run as root can reload nginx itself.
--
-- Settings: a global table, so that a test (or a file that dofile()s this
-- one) can point them elsewhere after loading.
UPSTREAM = {
  file = "/var/lib/lmdisc/upstream.conf",
  -- the command that reloads nginx once the file is in place; false: none
  -- (a systemd path unit does it)
  reload = { "nginx", "-s", "reload" },
  -- Changes within this many seconds are written and reloaded together:
  -- twenty peers answering the first browse cause one reload, not twenty.
  debounce = 1,
}

registry { ttl = 60 }

-- Why a temporary file and `mv`, not io.open on the final path: opening the
-- final path for writing truncates it first, so nginx reloading (or
-- restarting, or `nginx -t`) at that moment would read an empty or half
-- written upstream.  rename(2) within one directory is atomic, so readers
-- see the old file or the new one.  os.rename is not available to policies,
-- hence `mv` through lmdisc.spawn, which does not block the agent; nginx is
-- reloaded from mv's on_exit, once the new file is in place.

-- Prefer IPv4 (simplest for nginx); IPv6 goes in brackets; link-local IPv6
-- is skipped because nginx cannot take its zone index.
local function server_address(peer)
  local v6
  for _, a in ipairs(peer.addresses or {}) do
    if a:match("^%d+%.%d+%.%d+%.%d+$") then
      return a
    elseif not v6 and a:match("^[%x:%.]+$") and not a:lower():match("^fe[89ab]%x:") then
      v6 = "[" .. a .. "]"
    end
  end
  return v6
end

local function render()
  local lines = { "# Written by lmdisc (examples/upstream-file/agent.lua); edits are overwritten." }
  local servers = 0
  for _, peer in ipairs(lmdisc.peers()) do
    local addr = server_address(peer)
    if addr then
      -- The name comes from the network: escaped, it cannot end the comment.
      lines[#lines + 1] = ("server %s:%d;  # %s"):format(addr, peer.port, lmdisc.escape(peer.name))
      servers = servers + 1
    else
      lmdisc.log.warn("upstream: %s has no address nginx can use, left out", lmdisc.escape(peer.name))
    end
  end
  if servers == 0 then
    -- nginx rejects an upstream block without servers; keep it valid.
    lines[#lines + 1] = "server 127.0.0.1:1 down;  # no peers right now"
  end
  return table.concat(lines, "\n") .. "\n", servers
end

local state = {
  timer = nil,    -- pending debounce timer
  busy = false,   -- an mv or a reload is running: do not write under it
  dirty = false,  -- something changed while busy
  written = nil,  -- text of the file as last installed
}

local schedule

local function done()
  state.busy = false
  if state.dirty then
    state.dirty = false
    schedule()
  end
end

local function reload_nginx()
  if not UPSTREAM.reload then return done() end
  local pid, err = lmdisc.spawn(UPSTREAM.reload, {
    on_exit = function(code)
      if code == 0 then
        lmdisc.log.info("upstream: nginx reloaded")
      else
        lmdisc.log.error("upstream: %s exited with code %d", table.concat(UPSTREAM.reload, " "), code)
      end
      done()
    end,
  })
  if not pid then
    lmdisc.log.error("upstream: cannot run %s: %s", UPSTREAM.reload[1], err)
    done()
  end
end

local function flush()
  state.timer = nil
  if state.busy then
    state.dirty = true
    return
  end
  local text, servers = render()
  if text == state.written then return end
  local tmp = UPSTREAM.file .. ".lmdisc-tmp"
  local f, err = io.open(tmp, "w")
  if not f then
    lmdisc.log.error("upstream: cannot write %s: %s", tmp, err)
    return
  end
  local ok, werr = f:write(text)
  local closed, cerr = f:close()
  if not ok or not closed then
    lmdisc.log.error("upstream: cannot write %s: %s", tmp, werr or cerr)
    return
  end
  state.busy = true
  local pid, serr = lmdisc.spawn({ "mv", "-f", tmp, UPSTREAM.file }, {
    on_exit = function(code)
      if code ~= 0 then
        lmdisc.log.error("upstream: mv to %s exited with code %d", UPSTREAM.file, code)
        return done()
      end
      state.written = text
      lmdisc.log.info("upstream: %s now lists %d server(s)", UPSTREAM.file, servers)
      reload_nginx()
    end,
  })
  if not pid then
    lmdisc.log.error("upstream: cannot run mv: %s", serr)
    done()
  end
end

schedule = function()
  -- A flush is already coming: this change rides along with it.
  if state.timer then return end
  state.timer = lmdisc.timer(UPSTREAM.debounce, flush)
end

function on_join(peer) schedule() end
function on_update(peer, old, changes) schedule() end
function on_leave(peer, reason) schedule() end

-- Also write once at start: the file may be left over from an earlier run.
schedule()
