--- lmdisc.testing: run a policy against simulated peers, without a network.
--
--   local testing = require "lmdisc.testing"
--   local sim = testing.load("agent.lua")
--   sim:join{ name = "a:8000", addresses = {"10.0.0.1"}, txt = { model = "gemma-2b-it" } }
--   sim:advance(30)
--   assert(#sim:peers() == 1)
--
-- The simulation plays the part of the C registry and of the agent's
-- `lmdisc` functions; the policy itself runs through lmdisc.policy exactly
-- as in the agent.  Time is simulated: nothing happens between calls, and
-- timers fire only inside sim:advance().

local lmdisc = require "lmdisc"
local policy = require "lmdisc.policy"
local config = require "lmdisc.config"
-- The agent's VM controls (guard, limits), present when `lmdisc test` runs
-- the suite; a stock lua5.4 uses a Lua guard instead.
local cvm = (function()
  local ok, m = pcall(require, "lmdisc.vm")
  return ok and type(m) == "table" and m or nil
end)()

local M = {}

--- Start of the simulated clock (seconds since the epoch, like the agent's
-- lmdisc.now()), so os.date() on it gives a plausible date.
M.EPOCH = 1700000000
--- Service name lmdisc.self() reports when announce has no name.
M.HOSTNAME = "lmdisc-sim"
--- Policy used by testing.load() without a path; `lmdisc test` sets it.
M.default_policy = nil

local PEER_FIELDS = {
  name = true, type = true, domain = true, host = true, port = true, info = true, addresses = true,
  interfaces = true, txt = true, ["local"] = true, self = true, first_seen = true, last_seen = true,
  -- what the agent decides and the policy reads: a test states them
  trusted = true, signer = true, conflict = true,
  sources = true, -- {"mdns"} unless given: {"dns"}, {"mdns", "dns"}
}

local deep_copy = config.deep_copy

local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not deep_equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- Misuse of an lmdisc function raises at the caller, worded like
-- luaL_argerror so the C agent and the simulation read the same.
local function argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

local function is_list_of_strings(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  if n == 0 or n ~= #t then return false end
  for i = 1, n do if type(t[i]) ~= "string" then return false end end
  return true
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end

---------------------------------------------------------------------------
-- the simulation

local Sim = {}
Sim.__index = Sim

local Handle = {}
Handle.__index = Handle

--- Stop the timer; true if it was still pending.
function Handle:cancel()
  local sim, t = self._sim, self._timer
  for i, x in ipairs(sim._timers) do
    if x == t then
      table.remove(sim._timers, i)
      return true
    end
  end
  return false
end

function Handle:__tostring()
  return ("lmdisc.timer (%s %g s)"):format(self._timer.every and "every" or "after", self._timer.every or self._timer.delay)
end

--- Timers a policy may have pending at once: the agent's limit (base/limits.h).
M.MAX_TIMERS = lmdisc.MAX_TIMERS

function Sim:_add_timer(delay, every, fn)
  if #self._timers >= M.MAX_TIMERS then
    error(("too many timers: %d are pending; cancel some, or use one every() for recurring work"):format(
      M.MAX_TIMERS), 3)
  end
  self._seq = self._seq + 1
  local t = { due = self.clock + delay, delay = delay, every = every, fn = fn, seq = self._seq, gen = self._gen }
  self._timers[#self._timers + 1] = t
  return setmetatable({ _sim = self, _timer = t }, Handle)
end

-- Announced TXT: announce.txt, then info, then set_txt's changes.
function Sim:_compute_txt()
  local a = self.settings and self.settings.announce
  if not a then return nil end
  local t = deep_copy(a.txt or {})
  if a.info then t.info = a.info end
  for k, v in pairs(self._txt_changes) do
    if v == false then t[k] = nil else t[k] = v end
  end
  return t
end

function Sim:_log(level, fmt, ...)
  local ok, msg = pcall(string.format, fmt, ...)
  if not ok then error("lmdisc.log." .. level .. ": " .. msg, 3) end
  self.logs[#self.logs + 1] = { level = level, message = msg }
  if self.verbose then io.stderr:write(("[sim %s] %s\n"):format(level, msg)) end
end

-- The `lmdisc` table the policy sees.  Same names and behaviour as the
-- agent's (src/lua/ns_agent.c), with the network and the clock simulated.
local function make_api(sim)
  local api = {}
  -- The C module's pure functions, not its network ones: a test must
  -- never reach avahi.
  for _, k in ipairs { "txt_check", "txt_parse", "service_type_check", "node_json", "escape", "version",
    "SERVICE_TYPE", "API_SOCKET", "MEMORY_MB", "open_file", "read_file" } do
    api[k] = lmdisc[k]
  end
  for _, k in ipairs { "discover_nodes", "announce_self", "registry_new" } do
    api[k] = function()
      error(k .. " is not available in a policy (the agent does the discovery and announcing; "
        .. "use lmdisc.peers() and announce { })", 2)
    end
  end
  api.log = {}
  for _, level in ipairs { "debug", "info", "warn", "error" } do
    api.log[level] = function(fmt, ...) sim:_log(level, fmt, ...) end
  end

  api.now = function() return sim.clock end
  api.peers = function(opts) return sim:peers(opts) end
  api.REGISTRY = { list_alive = function() return sim:peers() end }

  -- timer and every, within the agent's bounds (lmdisc.TIMER_MAX, lmdisc.EVERY_MIN);
  -- called as a tail call, so that argerror's level is still the policy's
  local function add_timer(fname, seconds, fn, every)
    if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 or (every and seconds == 0) then
      argerror(1, fname, ("seconds must be a number %s 0, got %s"):format(every and ">" or ">=",
        config.describe(seconds)))
    end
    if seconds > lmdisc.TIMER_MAX then argerror(1, fname, "seconds must be from 0 to one year") end
    if every and seconds < lmdisc.EVERY_MIN then
      argerror(1, fname, ("every() needs at least %g s"):format(lmdisc.EVERY_MIN))
    end
    if type(fn) ~= "function" then argerror(2, fname, "function expected, got " .. type(fn)) end
    return sim:_add_timer(seconds, every and seconds or nil, fn)
  end
  api.timer = function(seconds, fn) return add_timer("timer", seconds, fn, false) end
  api.every = function(seconds, fn) return add_timer("every", seconds, fn, true) end

  api.spawn = function(argv, opts)
    if not is_list_of_strings(argv) then
      argerror(1, "spawn", "non-empty list of strings expected, e.g. {\"nginx\", \"-s\", \"reload\"}, got "
        .. config.describe(argv))
    end
    if opts ~= nil and type(opts) ~= "table" then argerror(2, "spawn", "table expected, got " .. type(opts)) end
    opts = opts or {}
    for k, v in pairs(opts) do
      if k == "env" then
        if type(v) ~= "table" then argerror(2, "spawn", "env must be a table {NAME = \"value\"}") end
        for ek, ev in pairs(v) do
          if type(ek) ~= "string" or type(ev) ~= "string" then
            argerror(2, "spawn", "env must map names to strings, got " .. config.describe(ek) .. " = " .. config.describe(ev))
          end
        end
      elseif k == "stdin" then
        if type(v) ~= "string" then argerror(2, "spawn", "stdin must be a string, got " .. config.describe(v)) end
      elseif k == "on_exit" then
        if type(v) ~= "function" then argerror(2, "spawn", "on_exit must be a function, got " .. type(v)) end
      else
        local s = config.suggest(tostring(k), { "env", "stdin", "on_exit" })
        argerror(2, "spawn", ("unknown option '%s'%s"):format(tostring(k), s and (", did you mean '" .. s .. "'?") or ""))
      end
    end
    if sim.spawn_error then return nil, sim.spawn_error end
    local rec = { argv = deep_copy(argv), env = deep_copy(opts.env), stdin = opts.stdin, on_exit = opts.on_exit,
      time = sim.clock }
    sim.spawned[#sim.spawned + 1] = rec
    rec.pid = #sim.spawned
    return rec.pid
  end

  api.set_txt = function(changes)
    if type(changes) ~= "table" then argerror(1, "set_txt", "table expected, got " .. type(changes)) end
    if sim.settings and not sim.settings.announce then
      return nil, "set_txt: this agent announces nothing; add announce { port = ... } to the configuration"
    end
    local pending = deep_copy(sim._txt_changes)
    for k, v in pairs(changes) do
      if type(v) == "number" then v = tostring(v) end
      pending[k] = v
    end
    local full = deep_copy(sim.settings and sim.settings.announce and sim.settings.announce.txt or {})
    for k, v in pairs(pending) do
      if v == false then full[k] = nil else full[k] = v end
    end
    local ok, err = lmdisc.txt_check(full)
    if not ok then return nil, "set_txt: " .. err end
    -- lmd-* keys are the agent's own (src/agent/self.c refuses them too)
    err = config.reserved_txt_error(full)
    if err then return nil, "set_txt: " .. err end
    sim._txt_changes = pending
    sim.txt = sim:_compute_txt()
    return true
  end

  api.self = function() return sim:self() end
  return api
end

function Sim:_deadline()
  local p = self.policy
  if p then return p.settings.policy.deadline end
  return config.section.policy.field.deadline.default
end

-- Load (or reload) the policy file.  true | nil, err.
function Sim:_load(path)
  local saved_gen, saved_changes, saved_txt = self._gen, self._txt_changes, self.txt
  self._gen = self._gen + 1
  self._txt_changes = {}
  local P, err, warnings = policy.load(path, {
    api = self.api,
    guard = self._guard,
    in_guard = cvm and cvm.in_guard,
    stopped = cvm and cvm.stopped,
    overrides = self.overrides,
  })
  if not P then
    -- Undo what the broken file's top level did before it failed.
    local keep = {}
    for _, t in ipairs(self._timers) do if t.gen ~= self._gen then keep[#keep + 1] = t end end
    self._timers = keep
    self._gen, self._txt_changes, self.txt = saved_gen, saved_changes, saved_txt
    return nil, err
  end
  -- The old policy's timers die with it, as in the agent: their closures
  -- belong to a configuration that is no longer in force.
  local keep = {}
  for _, t in ipairs(self._timers) do if t.gen == self._gen then keep[#keep + 1] = t end end
  self._timers = keep
  local oldP = self.policy
  self.policy, self.settings, self.env, self.warnings, self.path = P, P.settings, P.env, warnings, path
  if cvm then cvm.set_limits(P.settings.policy.deadline, P.settings.policy.memory_mb) end
  self.txt = self:_compute_txt()
  return true, oldP
end

--- The policy a suite should test: the one `lmdisc test POLICY SUITE...`
-- names (testing.default_policy, or package.lmdisc_policy as the agent's
-- runner sets it), else $LMDISC_POLICY, else fallback.
function M.policy_path(fallback)
  local env = os.getenv("LMDISC_POLICY")
  return M.default_policy or rawget(package, "lmdisc_policy") or (env ~= "" and env) or fallback
end

--- A simulation running the policy at path.  overrides: settings applied over
-- the file's ({registry = {include_self = true}}).  Raises if it does not load.
function M.load(path, overrides)
  path = path or M.policy_path()
  if type(path) ~= "string" then
    error("lmdisc.testing.load(path): give the path of the policy file to test", 2)
  end
  local sim = setmetatable({
    clock = M.EPOCH,
    events = {},
    logs = {},
    spawned = {},
    txt = nil,
    overrides = overrides,
    verbose = os.getenv("LMDISC_TEST_VERBOSE") ~= nil,
    _timers = {},
    _seq = 0,
    _gen = 0,
    _txt_changes = {},
    _network = {}, -- name -> peer record as the network describes it
  }, Sim)
  if cvm then
    -- under `lmdisc test`: the agent's own guard, deadline and memory cap
    sim._guard = cvm.guard
    local d = config.defaults().policy
    cvm.set_limits(d.deadline, d.memory_mb)
  else
    sim._guard = policy.deadline_guard(function() return sim:_deadline() end)
  end
  sim.api = make_api(sim)
  local ok, err = sim:_load(path)
  if not ok then error(("lmdisc.testing: policy %s does not load:\n%s"):format(path, err), 2) end
  return sim
end

---------------------------------------------------------------------------
-- the network side

function Sim:_record_event(emitted, name, reason, changes, info)
  if not emitted then return end
  self.events[#self.events + 1] = { kind = emitted, name = name, reason = reason, changes = changes, info = info }
end

-- Give the policy a fresh copy each time, as the C side builds fresh tables:
-- what a hook does to its peer table must not leak into the "network".
-- routable as the agent computes it (its own rule, lmdisc.routable).
local routable = lmdisc.routable

function Sim:_feed(kind, rec, old, changes, reason)
  rec.routable = routable(rec)
  if old then old.routable = routable(old) end
  if rec.self and not self.settings.registry.include_self then return nil, false, nil end
  local emitted, keep, info, ch = self.policy:peer_event(kind, deep_copy(rec), deep_copy(old), changes, reason)
  local why = emitted == "leave" and (kind == "leave" and reason or "filtered") or nil
  self:_record_event(emitted, rec.name, why, emitted == "update" and ch or nil, info)
  return emitted, keep, info
end

local function normalize_txt(txt, fname)
  local t = {}
  for k, v in pairs(txt or {}) do
    if type(v) == "number" then v = tostring(v) end
    t[k] = v
  end
  local ok, err = lmdisc.txt_check(t)
  if not ok then error(fname .. ": invalid txt: " .. err, 3) end
  return t
end

local function check_fields(fields, fname)
  if type(fields) ~= "table" then error(fname .. ": expected a table of peer fields", 3) end
  for k in pairs(fields) do
    if not PEER_FIELDS[k] then
      local s = config.suggest(tostring(k), sorted_keys(PEER_FIELDS))
      error(("%s: unknown peer field '%s'%s"):format(fname, tostring(k), s and (" (did you mean '" .. s .. "'?)") or ""), 3)
    end
  end
end

--- A peer appears.  Missing fields get defaults: host from the name, port
-- from a ":PORT" suffix of the name, type, domain "local", interfaces
-- {"eth0"}, first/last seen now.  Returns emitted, keep, info.
function Sim:join(fields)
  check_fields(fields, "sim:join")
  local name = fields.name
  if type(name) ~= "string" or name == "" then error("sim:join: the peer needs a name", 2) end
  if self._network[name] then
    error(("sim:join: peer '%s' is already on the network; use sim:update or sim:leave first"):format(name), 2)
  end
  local rec = deep_copy(fields)
  rec.txt = normalize_txt(fields.txt, "sim:join")
  if type(fields.info) == "string" and rec.txt.info == nil then rec.txt.info = fields.info end
  rec.info = type(rec.txt.info) == "string" and rec.txt.info or nil
  rec.type = rec.type or lmdisc.SERVICE_TYPE
  rec.domain = rec.domain or "local"
  rec.host = rec.host or (name:match("^(.-):%d+$") or name) .. ".local"
  rec.port = rec.port or tonumber(name:match(":(%d+)$"))
  if not rec.port then error("sim:join: give a port (or a name like \"a:8000\")", 2) end
  rec.addresses = rec.addresses or {}
  rec.interfaces = rec.interfaces or { "eth0" }
  rec.sources = rec.sources or { "mdns" }
  if rec["local"] == nil then rec["local"] = false end
  if rec.self == nil then rec.self = false end
  rec.first_seen = rec.first_seen or self.clock
  rec.last_seen = rec.last_seen or self.clock
  self._network[name] = rec
  return self:_feed("join", rec)
end

--- A peer changes.  Fields replace the current ones, except txt, which is
-- merged key by key (false removes a key).  Returns emitted, keep, info.
function Sim:update(name, fields)
  local rec = self._network[name]
  if not rec then error(("sim:update: no peer named '%s' on the network"):format(tostring(name)), 2) end
  check_fields(fields, "sim:update")
  if fields.name ~= nil and fields.name ~= name then
    error("sim:update: a peer cannot be renamed; leave and join under the new name", 2)
  end
  local old = deep_copy(rec)
  for k, v in pairs(fields) do
    if k == "txt" then
      local t = deep_copy(rec.txt)
      for tk, tv in pairs(v) do
        if tv == false then t[tk] = nil else t[tk] = tv end
      end
      rec.txt = normalize_txt(t, "sim:update")
    elseif k ~= "info" then
      rec[k] = deep_copy(v)
    end
  end
  if fields.info ~= nil then rec.txt.info = fields.info or nil end
  rec.info = type(rec.txt.info) == "string" and rec.txt.info or nil
  rec.last_seen = self.clock
  -- what the agent's registry reports as changed (lmdisc.CHANGES: each
  -- change is the field of its name; info's is the policy's to find)
  local changes = {}
  for _, k in ipairs(lmdisc.CHANGES) do
    if lmdisc.CHANGES[k] == "registry" and not deep_equal(old[k], rec[k]) then changes[#changes + 1] = k end
  end
  return self:_feed("update", rec, old, changes)
end

--- A peer goes away (reason: "goodbye" by default, or "expired",
-- "unhealthy", ...).  Returns emitted, keep, info.
function Sim:leave(name, reason)
  local rec = self._network[name]
  if not rec then error(("sim:leave: no peer named '%s' on the network"):format(tostring(name)), 2) end
  self._network[name] = nil
  return self:_feed("leave", rec, nil, nil, reason or "goodbye")
end

--- Move the clock by seconds (>= 0), firing due timers in time order (ties:
-- creation order).  Timers a callback arms for a time within the step fire
-- in the same call.  advance(0) runs what is due now.
function Sim:advance(seconds)
  if type(seconds) ~= "number" or seconds < 0 then
    error("sim:advance(seconds): seconds must be a number >= 0, got " .. config.describe(seconds), 2)
  end
  local target = self.clock + seconds
  while true do
    local next_t
    for _, t in ipairs(self._timers) do
      if t.due <= target and (not next_t or t.due < next_t.due or (t.due == next_t.due and t.seq < next_t.seq)) then
        next_t = t
      end
    end
    if not next_t then break end
    if next_t.due > self.clock then self.clock = next_t.due end
    if next_t.every then
      self._seq = self._seq + 1
      next_t.due, next_t.seq = next_t.due + next_t.every, self._seq
    else
      for i, x in ipairs(self._timers) do
        if x == next_t then table.remove(self._timers, i) break end
      end
    end
    self.policy:call(next_t.every and "every" or "timer", next_t.fn)
  end
  self.clock = target
end

--- Number of timers (timer and every) still pending.
function Sim:pending_timers()
  return #self._timers
end

--- The spawned process i exits with code (default 0): runs its on_exit.
function Sim:exit(i, code)
  local rec = self.spawned[i]
  if not rec then error(("sim:exit: no spawned process #%s (%d spawned)"):format(tostring(i), #self.spawned), 2) end
  if rec.exited then error(("sim:exit: process #%d (%s) has already exited"):format(i, rec.argv[1]), 2) end
  rec.exited, rec.code = true, code or 0
  if rec.on_exit then return self.policy:call("on_exit", rec.on_exit, rec.code) end
  return true
end

--- The kept peers, with their computed info, sorted by name.
--- The kept peers; opts.routable: without those draining or down.
function Sim:peers(opts)
  local out = {}
  if not self.policy then return out end
  local routable_only = type(opts) == "table" and opts.routable
  for _, name in ipairs(sorted_keys(self._network)) do
    local keep, info = self.policy:verdict(name)
    local p = keep and deep_copy(self._network[name])
    if p then p.routable = routable(p) end
    if p and not (routable_only and not p.routable) then
      p.info = info
      out[#out + 1] = p
    end
  end
  return out
end

--- What lmdisc.self() returns: nil when the agent announces nothing.
function Sim:self()
  local a = self.settings and self.settings.announce
  if not a then return nil end
  local txt = deep_copy(self.txt or {})
  -- services: what servers registered through the agent's API (sim.services)
  return { name = a.name or M.HOSTNAME, type = a.type, port = a.port, txt = txt, info = txt.info,
           services = self.services and deep_copy(self.services) or nil }
end

--- SIGHUP: load path (default: the current file).  On error returns nil, err
-- and the old policy stays in force; on success the new one adopts the peers.
function Sim:reload(path)
  local ok, oldP = self:_load(path or self.path)
  if not ok then return nil, oldP end
  local peers = {}
  for _, name in ipairs(sorted_keys(self._network)) do
    local rec = self._network[name]
    if not rec.self or self.settings.registry.include_self then peers[#peers + 1] = deep_copy(rec) end
  end
  for _, r in ipairs(self.policy:adopt(oldP, peers)) do
    local why = r.kind == "leave" and "filtered" or nil
    self:_record_event(r.kind, r.peer.name, why, r.kind == "update" and { "info" } or nil, r.info)
  end
  return true
end

-- field of each entry of list whose key is want (of every entry if want is nil)
local function pick(list, key, want, field)
  local out = {}
  for _, e in ipairs(list) do
    if want == nil or e[key] == want then out[#out + 1] = e[field] end
  end
  return out
end

--- Events of one kind (or all), as a list of names: handy in assertions.
function Sim:event_names(kind)
  return pick(self.events, "kind", kind, "name")
end

--- Log messages (of one level, or all), as a list of strings.
function Sim:messages(level)
  return pick(self.logs, "level", level, "message")
end

M.Sim = Sim
return M
