--- lmdisc.policy: loading a configuration file and running its hooks.
--
-- The agent (src/policy/policy.c, through lmdisc.runner) and the test harness (lmdisc.testing) both go
-- through this module, so a policy behaves the same under `lmdisc test` as
-- in production.  What differs is injected: `opts.api` (the `lmdisc` table
-- the script sees), `opts.guard` (how user code is run and stopped), and in
-- the agent `opts.peers_all` and `opts.log` (the mantle's own, out of the
-- script's reach).  The C side calls in only through lmdisc.runner.
--
--   local P, err, warnings = policy.load(path, { api = ..., guard = ..., peers_all = ..., log = ... })
--   local emitted, keep, info, changes = P:peer_event(kind, peer, old, changes, reason)

local lmdisc = require "lmdisc"
local sandbox = require "lmdisc.sandbox"
local config = require "lmdisc.config"
local gsub, match, gmatch, find = sandbox.raw.gsub, sandbox.raw.match, sandbox.raw.gmatch, sandbox.raw.find

local M = {}

-- The longest info() the agent keeps for a peer (the core refuses longer:
-- src/policy/policy.h LMD_POLICY_INFO_MAX): it is held for every peer and
-- served on /v1/peers, so megabytes per peer would cost the agent itself.
M.INFO_MAX = 65536

M.HOOKS = { "filter", "info", "on_join", "on_update", "on_leave", "on_start" }
local IS_HOOK = {}
for _, h in ipairs(M.HOOKS) do IS_HOOK[h] = true end
local ON_HOOKS = { "on_join", "on_update", "on_leave", "on_start" }

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local deep_copy = config.deep_copy

---------------------------------------------------------------------------
-- guards

-- Message handler: the traceback of the user code only; the frames below
-- the guard's xpcall are the agent's or the harness's, noise in a policy log.
local function traceback(msg)
  if type(msg) ~= "string" and not (getmetatable(msg) or {}).__tostring then
    msg = ("(error object is a %s value)"):format(type(msg))
  end
  local tb = debug.traceback(tostring(msg), 2)
  tb = gsub(tb, "\n%s*%[C%]: in function 'xpcall'.*$", "")
  return (gsub(tb, "\n%s*[^\n]*: in hook '%?'", "")) -- the deadline hook itself
end
M.traceback = traceback

--- The default guard: no deadline, errors come back with a traceback.
function M.default_guard(fn, ...)
  return xpcall(fn, traceback, ...)
end

--- A guard that stops user code after `limit` seconds of CPU time, for a
-- stock lua5.4 (the agent has its own, in C).  limit: number, or function
-- returning the number at each call (so it can follow the loaded settings).
-- Once the deadline has passed the hook raises at every instruction, so a
-- pcall inside the policy cannot swallow the stop.  Coroutines the policy
-- creates are not covered: debug.sethook is per coroutine.
local lua_guards = 0 -- deadline_guard calls running (the sandbox's in_user_code)
local lua_stopped = false -- a deadline_guard call passed its deadline (the sandbox's stopped)

function M.deadline_guard(limit)
  local guard
  guard = function(fn, ...)
    local secs = type(limit) == "function" and limit() or limit
    local stop = os.clock() + secs
    local msg = lmdisc.deadline_message(secs) -- worded as the agent's guard words it
    local prev_hook, prev_mask, prev_count = debug.gethook()
    local function hook()
      -- Never in the guard's own frame: it must get to restore the hook.
      if os.clock() > stop and debug.getinfo(2, "f").func ~= guard then
        lua_stopped = true
        -- From now on fire at every instruction: the frame that pcall'ed
        -- the stopped code is stopped at its next instruction, and so on
        -- outwards, so `while true do pcall(f) end` cannot keep running.
        debug.sethook(hook, "", 1)
        error(msg, 2)
      end
    end
    debug.sethook(hook, "", 1000)
    lua_guards = lua_guards + 1
    local r = table.pack(xpcall(fn, traceback, ...))
    lua_guards = lua_guards - 1
    if lua_guards == 0 then lua_stopped = false end
    if prev_hook then debug.sethook(prev_hook, prev_mask, prev_count) else debug.sethook() end
    return table.unpack(r, 1, r.n)
  end
  return guard
end

---------------------------------------------------------------------------
-- the policy object

local Policy = {}
Policy.__index = Policy

local function fallback_log(level)
  return function(fmt, ...)
    io.stderr:write(("lmdisc %s: %s\n"):format(level, fmt:format(...)))
  end
end

local function new_stats()
  return { hook_runs = 0, hook_errors = 0, hook_time = 0, by_hook = {} }
end

-- Peer names come from the network: escape them before they reach a log.
function Policy:_escape(s)
  s = tostring(s)
  local esc = self._escape_fn
  if type(esc) == "function" then
    local ok, r = pcall(esc, s)
    if ok then return r end
  end
  return (("%q"):format(s))
end

function Policy:_log_error(fmt, ...)
  local log = self._log.error
  if type(log) ~= "function" then log = fallback_log("error") end
  local ok = pcall(log, fmt, ...)
  if not ok then fallback_log("error")(fmt, ...) end
end

-- Run user code through the guard, with stats and logging.  Never raises.
function Policy:_run(name, peer_name, fn, ...)
  local t0 = os.clock()
  local r = table.pack(self._guard(fn, ...))
  local dt = os.clock() - t0
  local st = self.stats
  local by = st.by_hook[name]
  if not by then
    by = { runs = 0, errors = 0, time = 0 }
    st.by_hook[name] = by
  end
  st.hook_runs, by.runs = st.hook_runs + 1, by.runs + 1
  st.hook_time, by.time = st.hook_time + dt, by.time + dt
  if not r[1] then
    st.hook_errors, by.errors = st.hook_errors + 1, by.errors + 1
    local msg = tostring(r[2])
    if peer_name ~= nil then
      self:_log_error("policy: %s failed for peer %s: %s", name, self:_escape(peer_name), msg)
    else
      self:_log_error("policy: %s failed: %s", name, msg)
    end
    return false, msg
  end
  return table.unpack(r, 1, r.n)
end

--- Run any user function (timer callback, spawn on_exit, ...) like a hook.
-- Returns true, results... | false, message.
function Policy:call(name, fn, ...)
  assert(type(name) == "string", "P:call(name, fn, ...): name must be a string")
  if type(fn) ~= "function" then
    return false, ("P:call: %s is a %s, not a function"):format(name, type(fn))
  end
  return self:_run(name, nil, fn, ...)
end

function Policy:_hook(name, peer_name, ...)
  local fn = self._hooks[name]
  if fn then self:_run(name, peer_name, fn, ...) end
end

local function txt_info(peer)
  local t = type(peer.txt) == "table" and peer.txt.info
  if type(t) == "string" then return t end
  if type(peer.info) == "string" then return peer.info end
  return nil
end

-- The policy's verdict on a peer: keep, info, info_warned.  prev is the
-- previous state of that peer (nil for a new one).
function Policy:_judge(peer, prev)
  local keep = true
  local filter = self._hooks.filter
  if filter then
    local ok, res = self:_run("filter", peer.name, filter, peer)
    if ok then
      keep = res and true or false
    else
      -- A broken filter must not make the registry flap: keep what we had.
      keep = prev ~= nil and prev.keep or false
    end
  end
  local info = txt_info(peer)
  local warned = prev ~= nil and prev.info_warned or false
  -- Only for kept peers: info() is written for the peers filter() accepts
  -- and may well fail on the others.
  local info_fn = self._hooks.info
  if keep and info_fn then
    local ok, res = self:_run("info", peer.name, info_fn, peer)
    if ok then
      if res == nil or (type(res) == "string" and #res <= M.INFO_MAX) then
        info = res
      elseif type(res) == "string" then
        if not warned then
          warned = true
          self:_log_error("policy: info(peer) returned %d bytes for peer %s, more than the limit of %d; "
            .. "using the TXT info instead (reported once per peer)", #res, self:_escape(peer.name), M.INFO_MAX)
        end
      elseif not warned then
        warned = true
        self:_log_error("policy: info(peer) must return a string or nil, got %s for peer %s; "
          .. "using the TXT info instead (reported once per peer)", config.describe(res), self:_escape(peer.name))
      end
    end
  end
  return keep, info, warned
end

local function with_info(changes, info_changed)
  local ch = {}
  local has = false
  for i, c in ipairs(changes or {}) do
    ch[i] = c
    has = has or c == "info"
  end
  if info_changed and not has then ch[#ch + 1] = "info" end
  return ch
end

--- Feed one registry event.  Returns emitted ("join" | "update" | "leave" |
-- nil), keep, info, and for "update" the changes passed to on_update.
function Policy:peer_event(kind, peer, old, changes, reason)
  if type(peer) ~= "table" or peer.name == nil then
    error("peer_event: peer must be a table with a name", 2)
  end
  local name = peer.name
  local prev = self._peers[name]
  local was = prev ~= nil and prev.keep
  local prev_info = prev and prev.info

  if kind == "leave" then
    self._peers[name] = nil
    if was then
      peer.info = prev_info
      self:_hook("on_leave", name, peer, reason or "unknown")
      return "leave", false, prev_info
    end
    return nil, false, txt_info(peer)
  elseif kind ~= "join" and kind ~= "update" then
    error(("peer_event: kind must be \"join\", \"update\" or \"leave\", got %s"):format(config.describe(kind)), 2)
  end

  local keep, info, warned = self:_judge(peer, prev)
  -- State first, hooks second: lmdisc.peers() inside a hook already shows
  -- the peer that joined and no longer shows the one that left.
  self._peers[name] = { keep = keep, info = info, info_warned = warned }
  if old then old.info = prev_info end

  if keep and not was then
    peer.info = info
    self:_hook("on_join", name, peer)
    return "join", true, info
  elseif keep then
    peer.info = info
    local ch = with_info(changes, info ~= prev_info)
    if #ch > 0 then
      self:_hook("on_update", name, peer, old, ch)
      return "update", true, info, ch
    end
    return nil, true, info
  elseif was then
    peer.info = prev_info
    self:_hook("on_leave", name, peer, "filtered")
    return "leave", false, info
  end
  peer.info = info
  return nil, false, info
end

--- Take over from oldP after a reload.  peers: the current peer tables.
-- Returns { {kind = emitted | nil, peer = peer, keep = bool, info = s}, ... }.
function Policy:adopt(oldP, peers)
  local out = {}
  for i, peer in ipairs(peers or {}) do
    local name = peer.name
    local was, old_info = false, nil
    if oldP then was, old_info = oldP:verdict(name) end
    local keep, info, warned = self:_judge(peer, { keep = was, info = old_info })
    self._peers[name] = { keep = keep, info = info, info_warned = warned }
    local kind
    if keep and not was then
      peer.info = info
      self:_hook("on_join", name, peer)
      kind = "join"
    elseif was and not keep then
      peer.info = old_info
      self:_hook("on_leave", name, peer, "filtered")
      kind = "leave"
    elseif keep and info ~= old_info then
      -- A new info() is a change of what this peer is called: say so.
      local old = deep_copy(peer)
      old.info = old_info
      peer.info = info
      self:_hook("on_update", name, peer, old, { "info" })
      kind = "update"
    else
      peer.info = info
    end
    out[i] = { kind = kind, peer = peer, keep = keep, info = info }
  end
  return out
end

--- on_start(peers, why): the agent restarted the policy's worker (its
-- globals and timers are gone; peers are the ones it keeps).
function Policy:start(peers, why)
  self:_hook("on_start", nil, peers, why)
end

--- Whether the peer is currently kept.
function Policy:kept(name)
  local st = self._peers[name]
  return st ~= nil and st.keep or false
end

--- keep, info as last computed for the peer (false, nil if unknown).
function Policy:verdict(name)
  local st = self._peers[name]
  if not st then return false, nil end
  return st.keep, st.info
end

--- Names of the hooks the policy defines, in M.HOOKS order.
function Policy:hooks()
  local out = {}
  for _, h in ipairs(M.HOOKS) do
    if self._hooks[h] then out[#out + 1] = h end
  end
  return out
end

---------------------------------------------------------------------------
-- loading

-- The configuration: a regular file of at most 4 MiB (reading /dev/zero or
-- a FIFO must not take the agent down), read before any user code runs.
local function read_file(path, api)
  local s, err = sandbox.fs(api).read_file(path)
  if not s then return nil, "cannot read configuration: " .. tostring(err) end
  return s
end

-- Globals that look like a hook with a typo.  Returns a list of warnings.
local function hook_warnings(env, before, file)
  local out = {}
  local names = {}
  for k, v in next, env do -- raw: a __pairs the policy left would run unguarded
    if type(k) == "string" and type(v) == "function" and before[k] ~= v and not IS_HOOK[k] then
      names[#names + 1] = k
    end
  end
  table.sort(names)
  for _, k in ipairs(names) do
    local guess
    if k:lower():match("^on_") then
      guess = config.suggest(k, ON_HOOKS, 3) or false
    else
      guess = config.suggest(k, { "filter" }, 2) or config.suggest(k, { "info" }, 1)
      if not guess and IS_HOOK[k:lower()] then guess = k:lower() end
    end
    if guess ~= nil then
      local d = debug.getinfo(env[k], "S")
      local at = d and d.linedefined and d.linedefined > 0 and (file .. ":" .. d.linedefined) or file
      out[#out + 1] = ("%s: function '%s' is not a hook lmdisc calls%s (hooks: %s)"):format(at, k,
        guess and (", did you mean '" .. guess .. "'?") or "", table.concat(M.HOOKS, ", "))
    end
  end
  return out
end

local function check_hooks(env, file)
  for _, h in ipairs(M.HOOKS) do
    local v = rawget(env, h)
    if v ~= nil and type(v) ~= "function" then
      local hint = ""
      if h == "info" and type(v) == "string" then
        hint = "; to announce an info string, use announce { info = ... }"
      end
      return nil, ("%s: %s must be a function, got %s (define it as: function %s(peer) ... end)%s"):format(
        file, h, config.describe(v), h, hint)
    end
  end
  return true
end

-- An error from the top-level chunk, without the traceback, and with the
-- configuration's FILE:LINE in front when the message lacks it.
local function clean_load_error(msg, file)
  msg = tostring(msg)
  local head = match(msg, "^(.-)\nstack traceback:") or msg
  if find(head, file, 1, true) then return head end
  -- The traceback also lists modules' main chunks and, under a stock lua,
  -- the caller's: take the line whose source is this file (short_src may
  -- have abbreviated a long path to "...tail").
  local line
  -- [ \t]*, not %s*: %s also takes newlines, and a message of many of
  -- them made this quadratic (it runs outside the policy's deadline)
  for src, l in gmatch(msg, "\n[ \t]*([^\n]-):(%d+): in main chunk") do
    local tail = gsub(src, "^%.%.%.", "")
    if tail ~= "" and file:sub(-#tail) == tail then
      line = l
      break
    end
  end
  if line then return ("%s:%s: %s"):format(file, line, head) end
  return file .. ": " .. head
end

-- While the top-level chunk runs, reading an undefined global that is close
-- to a directive name is almost surely a typo ("anounce { ... }").
-- Globals portable scripts probe for (`arg or {}`, `unpack or table.unpack`):
-- absent in a policy, but never a typo for a directive.
local PROBED = { arg = true, unpack = true, loadstring = true, setfenv = true, getfenv = true,
  module = true, bit32 = true, jit = true, package = true, warn = true }

local function typo_catcher(collector)
  return {
    __index = function(_, k)
      local s = not PROBED[k] and config.suggest(k, config.directive_names)
      if s then
        local msg = ("%s: unknown directive '%s' (did you mean '%s'?)"):format(config.where(2), tostring(k), s)
        collector.err = collector.err or msg
        error(msg, 0)
      end
      return nil
    end,
  }
end

--- Load a configuration.  Returns P, nil, warnings | nil, err.
-- opts: api (table exposed as `lmdisc`; default: the C module), guard
-- (default M.default_guard), peers_all (the agent's every live peer, before
-- verdicts), log (the logger for hook failures; default: api.log as it is
-- now), source (text to use instead of reading path), overrides
-- ({section = {field = value}} applied over the file's settings).
function M.load(path, opts)
  opts = opts or {}
  assert(type(path) == "string", "policy.load(path, opts): path must be a string")
  local api = opts.api
  if api == nil then
    local ok, mod = pcall(require, "lmdisc")
    api = ok and mod or { log = {} }
  end
  local guard = opts.guard or M.default_guard
  sandbox.in_user_code = opts.in_guard or function() return lua_guards > 0 end
  sandbox.stopped = opts.stopped or function() return lua_stopped end
  -- Taken now: what the script later does to its `lmdisc` table can neither
  -- silence the logging of its failures nor change how names are escaped.
  local log = copy(opts.log or (type(api.log) == "table" and api.log) or {})
  local escape_fn = api.escape

  local source = opts.source
  if source == nil then
    local err
    source, err = read_file(path, api)
    if not source then return nil, err end
  end
  -- A UTF-8 byte order mark, as some editors write it (stock lua5.4 skips it too).
  if source:sub(1, 3) == "\239\187\191" then source = source:sub(4) end
  -- Like lua.c: a first line starting with '#' (a shebang) is skipped, but
  -- kept as an empty line so line numbers stay true.
  if source:sub(1, 1) == "#" then source = gsub(source, "^[^\n]*", "", 1) end

  -- In the agent, lmdisc.peers() is the network's live peers (C) seen
  -- through this policy's own verdicts, so that inside a hook it already
  -- agrees with the event being handled (and, on reload, with the new policy).
  local this = {}
  if opts.peers_all then
    local peers_all = opts.peers_all
    -- peers{ routable = true }: without those draining or down
    local function peers(opts)
      local routable_only = type(opts) == "table" and opts.routable
      local out = {}
      for _, peer in ipairs(peers_all()) do
        local st = this.P and this.P._peers[peer.name]
        if st and st.keep and not (routable_only and peer.routable == false) then
          peer.info = st.info
          out[#out + 1] = peer
        end
      end
      return out
    end
    api = copy(api)
    api.peers = peers
    api.REGISTRY = { list_alive = function() return peers() end }
  end
  local env = sandbox.env(api)
  local collector = config.new_collector("@" .. path)
  collector:install(env)
  local before = copy(env)

  local chunk, serr = load(source, "@" .. path, "t", env)
  if not chunk then return nil, serr end

  local mt = typo_catcher(collector)
  setmetatable(env, mt)
  local r = table.pack(guard(chunk))
  if getmetatable(env) == mt then setmetatable(env, nil) end
  collector:close()
  if not r[1] then return nil, collector.err or clean_load_error(r[2], path) end

  local settings, ferr = collector:finish(opts.overrides)
  if not settings then return nil, ferr end
  local ok, herr = check_hooks(env, path)
  if not ok then return nil, herr end

  -- Looked up at each call, so a hook (re)defined later, by the policy or
  -- by a test through sim.env, is the one that runs.
  local hooks = setmetatable({}, { __index = function(_, k)
    local v = IS_HOOK[k] and rawget(env, k)
    return type(v) == "function" and v or nil
  end })
  local warnings = hook_warnings(env, before, path)

  local P = setmetatable({
    path = path,
    settings = settings,
    at = collector.at, -- section name -> "FILE:LINE" of its directive
    stats = new_stats(),
    env = env,
    warnings = warnings,
    _log = log,
    _escape_fn = escape_fn,
    _guard = guard,
    _hooks = hooks,
    _peers = {}, -- name -> { keep =, info =, info_warned = }
  }, Policy)
  this.P = P
  return P, nil, warnings
end

M.Policy = Policy
return M
