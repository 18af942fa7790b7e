--- lmdisc.sandbox: the global environment a policy runs in.
--
--   local env = require("lmdisc.sandbox").env(api)
--
-- The sandbox is about keeping the agent alive and predictable, not about
-- security against a hostile operator (who could edit the unit file anyway):
-- a policy must not exit or fork the agent behind its back, block the event
-- loop on a child process, load bytecode, or change the tables the agent's
-- own Lua code relies on.  Everything it gets is therefore either a copy or
-- a wrapper, and every refusal says what to use instead.

local lmdisc = require "lmdisc"

local M = {}

-- The string library's pattern functions as Lua made them: the mantle's own
-- matching (tracebacks, file names) must not be refused by the bound that
-- harden_strings() puts on the shared library for policies.
M.raw = { find = string.find, match = string.match, gmatch = string.gmatch, gsub = string.gsub }

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- A stand-in that raises where the policy called it (level 2), so the
-- message carries the policy's FILE:LINE.
local function unavailable(name, advice)
  local msg = name .. " is not available in lmdisc policies; " .. advice
  return function() error(msg, 2) end
end

local function make_os()
  local o = {}
  for _, k in ipairs { "clock", "date", "time", "difftime", "getenv" } do o[k] = os[k] end
  o.exit = unavailable("os.exit", "the agent keeps running (use lmdisc.spawn to run programs)")
  o.execute = unavailable("os.execute",
    "it would block the agent until the command ends (use lmdisc.spawn(argv, {on_exit = function(code) ... end}))")
  o.remove = unavailable("os.remove", 'use lmdisc.spawn{"rm", "-f", path} to remove files')
  o.rename = unavailable("os.rename", 'use lmdisc.spawn{"mv", "-f", from, to} to rename files')
  o.tmpname = unavailable("os.tmpname", "write to a path of your own with io.open")
  o.setlocale = unavailable("os.setlocale", "the locale belongs to the whole agent process")
  return o
end

-- Files: only regular ones.  Opening a FIFO or a device would block the
-- agent's loop in C, where no deadline reaches (fs.open refuses them without
-- blocking; in a stock lua5.4 without the C module, io.open it is).
local function make_io(fs)
  local i = { open = fs.open, type = io.type }
  -- io.lines() and io.read() without a file would read the agent's stdin.
  i.lines = function(filename, ...)
    if type(filename) ~= "string" then
      error("bad argument #1 to 'lines' (file name expected: lmdisc policies cannot read stdin)", 2)
    end
    local f, err = fs.open(filename, "r")
    if not f then error(err, 2) end
    -- the file is the to-be-closed value of the generic for, as io.lines does
    return f:lines(...), nil, nil, f
  end
  -- Always stdout: the policy has no io.output to redirect it with.
  i.write = function(...) return io.stdout:write(...) end
  i.popen = unavailable("io.popen",
    "it would block the agent while the program runs (use lmdisc.spawn(argv, {stdin = text, on_exit = function(code) ... end}))")
  i.read = unavailable("io.read", "policies cannot read the agent's stdin (use io.open(path):read(...))")
  return i
end

local GC_OPTIONS = { count = true, collect = true, step = true }

local function collectgarbage_(opt, ...)
  opt = opt or "collect"
  if not GC_OPTIONS[opt] then
    error(("collectgarbage(%q) is not available in lmdisc policies; the agent tunes its own collector "
      .. "(allowed: \"count\", \"collect\", \"step\")"):format(tostring(opt)), 2)
  end
  return collectgarbage(opt, ...)
end

-- Only text chunks: bytecode can crash the VM, which is the agent.
local function text_mode(mode, fname)
  if mode == nil or mode == "t" or mode == "bt" or mode == "tb" then return "t" end
  return nil, fname .. ": only text chunks (mode \"t\") can be loaded in lmdisc policies, got mode "
    .. string.format("%q", tostring(mode))
end

local function make_loaders(env, fs)
  -- a chunk from a regular file of bounded size (fs.read_file)
  local function loadfile_t(filename, cenv)
    local src, err = fs.read_file(filename)
    if not src then return nil, err end
    if src:sub(1, 1) == "#" then src = src:gsub("^[^\n]*", "", 1) end
    return load(src, "@" .. filename, "t", cenv)
  end
  local function load_(chunk, chunkname, mode, cenv)
    local m, err = text_mode(mode, "load")
    if not m then return nil, err end
    return load(chunk, chunkname, m, cenv or env)
  end
  local function loadfile_(filename, mode, cenv)
    if type(filename) ~= "string" then
      error("bad argument #1 to 'loadfile' (file name expected: lmdisc policies cannot read stdin)", 2)
    end
    local m, err = text_mode(mode, "loadfile")
    if not m then return nil, err end
    return loadfile_t(filename, cenv or env)
  end
  local function dofile_(filename)
    if type(filename) ~= "string" then
      error("bad argument #1 to 'dofile' (file name expected: lmdisc policies cannot read stdin)", 2)
    end
    local f, err = loadfile_t(filename, env)
    if not f then error(err, 2) end
    return f()
  end
  return load_, loadfile_, dofile_, loadfile_t
end

-- require for pure-Lua modules only: C modules could do anything to the
-- process and cannot be stopped by the deadline.  Modules share the
-- policy's environment, like a plain `require` shares _G.
local function make_require(env, loaded, loadfile_t)
  return function(name)
    if type(name) ~= "string" then
      error("bad argument #1 to 'require' (string expected, got " .. type(name) .. ")", 2)
    end
    local v = loaded[name]
    if v ~= nil then return v end
    local path, err = package.searchpath(name, package.path)
    if not path then
      error(("module '%s' not found (lmdisc policies can require pure-Lua modules on package.path only):%s")
        :format(name, err), 2)
    end
    local chunk, lerr = loadfile_t(path, env)
    if not chunk then error(lerr, 2) end
    local r = chunk(name, path)
    if r ~= nil then loaded[name] = r end
    if loaded[name] == nil then loaded[name] = true end
    return loaded[name], path
  end
end

---------------------------------------------------------------------------
-- Work that runs in C, where the deadline cannot stop it

-- A Lua pattern's repetitions ('*', '+', '-' outside sets and escapes): each
-- one can multiply the backtracking work by the subject's length.
local function repetitions(p)
  local n, i, len = 0, 1, #p
  local byte = string.byte
  while i <= len do
    local c = byte(p, i)
    if c == 37 then -- %x
      i = i + 2
    elseif c == 91 then -- [set]
      i = i + 1
      if byte(p, i) == 94 then i = i + 1 end
      if byte(p, i) == 93 then i = i + 1 end
      while i <= len and byte(p, i) ~= 93 do
        if byte(p, i) == 37 then i = i + 1 end
        i = i + 1
      end
      i = i + 1
    else
      if c == 42 or c == 43 or c == 45 then n = n + 1 end
      i = i + 1
    end
  end
  return n
end

-- Steps a match may take, for the bound below: per start position the
-- subject's length for each of the first two repetitions and a doubling for
-- every further one (what turns backtracking exponential), times the start
-- positions tried; the pattern's length when it has no repetition.  It
-- refuses the exponential and the long quadratic cases; a pathological
-- polynomial one that slips through is the loop watchdog's.
M.PATTERN_STEPS_MAX = 1e9
local function pattern_steps(s, p, anchored_only)
  local q = repetitions(p)
  local n = math.max(#s, 2)
  -- anchored_only: true (always anchored), false (never: gmatch), nil (by '^')
  local starts = (anchored_only or (anchored_only == nil and p:sub(1, 1) == "^")) and 0 or 1
  local per_start = q == 0 and math.max(#p, 1) or n ^ math.min(q, 2) * 2 ^ math.max(q - 2, 0)
  return per_start * n ^ starts, q
end

--- Whether policy code is running now (set by policy.load from its guard):
-- the library is shared with the mantle and test suites, which are trusted.
M.in_user_code = function() return false end

local function bounded(name, fn, subject_arg, pattern_arg, plain_arg, anchored_only)
  return function(...)
    if not M.in_user_code() then return fn(...) end
    local s, p = select(subject_arg, ...), select(pattern_arg, ...)
    local plain = plain_arg and select(plain_arg, ...)
    if type(s) == "number" then s = tostring(s) end
    if type(p) == "number" then p = tostring(p) end
    if not plain and type(s) == "string" and type(p) == "string" then
      local steps, q = pattern_steps(s, p, anchored_only)
      if steps > M.PATTERN_STEPS_MAX then
        error(("string.%s: a pattern with %d repetition(s) on a %d-byte subject could take ~%.2g steps "
          .. "in C, where no deadline can stop it (at most %.0e): match smaller pieces (e.g. line by "
          .. "line with io.lines), anchor the pattern with '^', or use fewer '*', '+', '-'"):format(
          name, q, #s, steps, M.PATTERN_STEPS_MAX), 2)
      end
    end
    return fn(...)
  end
end

-- The string library is shared by the whole VM (s:find(...) reaches it
-- through the string metatable), so it is bounded in place, once per VM.
function M.harden_strings()
  if rawget(string, "_lmdisc_bounded") then return end
  string.find = bounded("find", string.find, 1, 2, 4)
  string.match = bounded("match", string.match, 1, 2)
  string.gmatch = bounded("gmatch", string.gmatch, 1, 2, nil, false)
  string.gsub = bounded("gsub", string.gsub, 1, 2)
  rawset(string, "_lmdisc_bounded", true)
end

-- Finalizers would run whenever the collector gets to them: outside any
-- hook, so outside its deadline, and at the agent's exit.
-- Metatables the policy set itself: the only ones getmetatable hands out
-- (the agent's and the C objects' are shared: a __gc or a method added to
-- one would reach objects the policy never made, and run outside it).
local user_mts = setmetatable({}, { __mode = "k" })

local function setmetatable_(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("setmetatable: __gc (finalizers) is not available in lmdisc policies: a finalizer runs at an "
      .. "unpredictable moment, outside any hook and its deadline; close things explicitly, or with a "
      .. "to-be-closed variable (local x <close> = ...)", 2)
  end
  if type(mt) == "table" then user_mts[mt] = true end
  return setmetatable(t, mt)
end

-- Loops inside C functions that allocate nothing see neither the deadline
-- (no Lua instruction runs) nor the memory cap.
local function bounded_string(s)
  s = copy(s)
  local rep = s.rep
  s.rep = function(str, n, sep)
    if type(str) == "string" and (sep == nil or sep == "") and str == "" then
      -- any count of nothing is nothing; string.rep("", huge) would spin
      -- (rep still checks n: a count that is not a number fails as before)
      return rep(str, math.min(tonumber(n) or n, 1), sep)
    end
    return rep(str, n, sep)
  end
  return s
end
local MOVE_MAX = 1 << 24
local function bounded_table(t)
  t = copy(t)
  local move = t.move
  t.move = function(a1, f, e, tpos, a2)
    if math.type(f) == "integer" and math.type(e) == "integer" and e >= f and e - f >= MOVE_MAX then
      error(("table.move: %d elements are more than a policy may move at once (%d)"):format(e - f + 1, MOVE_MAX), 2)
    end
    return move(a1, f, e, tpos, a2)
  end
  return t
end

--- Whether the running call passed its deadline (set by policy.load).
M.stopped = function() return false end

-- A message handler runs inside the hook that raised a deadline stop, where
-- Lua calls no hook: a handler that loops would never be stopped.  Once the
-- call is stopped, the policy's handler is skipped and the stop passes on.
local function xpcall_(f, handler, ...)
  if type(handler) ~= "function" then return xpcall(f, handler, ...) end
  return xpcall(f, function(...)
    if M.stopped() then return ... end
    return handler(...)
  end, ...)
end

local FILE_MAX = lmdisc.FILE_MAX -- the agent's (base/limits.h)

--- What policies may open: regular files only, read whole at most FILE_MAX
-- bytes.  Uses the C module's open_file/read_file where there is one.
function M.fs(api)
  local open, read = api and api.open_file, api and api.read_file
  return {
    open = open or io.open,
    read_file = read and function(path) return read(path, FILE_MAX) end or function(path)
      local f, err = io.open(path, "r")
      if not f then return nil, err end
      local s = f:read(FILE_MAX + 1)
      f:close()
      if s and #s > FILE_MAX then return nil, path .. ": larger than " .. FILE_MAX .. " bytes" end
      return s or ""
    end,
  }
end

--- A fresh environment table for one policy chunk; `api` becomes `lmdisc`.
function M.env(api)
  assert(type(api) == "table", "sandbox.env(api): api must be a table")
  M.harden_strings()
  local fs = M.fs(api)
  local env = {}
  for _, k in ipairs { "assert", "error", "ipairs", "next", "pairs", "pcall", "select",
    "tonumber", "tostring", "type", "rawequal", "rawget", "rawset", "rawlen" } do
    env[k] = _G[k]
  end
  env.setmetatable = setmetatable_
  env.xpcall = xpcall_
  env._VERSION = _VERSION
  env._G = env
  env.string = bounded_string(string)
  env.table = bounded_table(table)
  env.math = copy(math)
  env.utf8 = copy(utf8)
  env.coroutine = copy(coroutine)
  env.os = make_os()
  env.io = make_io(fs)
  env.debug = { traceback = debug.traceback }
  env.collectgarbage = collectgarbage_
  env.lmdisc = api
  local loadfile_t
  env.load, env.loadfile, env.dofile, loadfile_t = make_loaders(env, fs)

  -- The string metatable is shared by the whole VM: hand out a stand-in so
  -- that getmetatable("").__index.format = ... cannot reach the agent's.
  local string_mt = { __index = env.string }
  env.getmetatable = function(v)
    if type(v) == "string" then return string_mt end
    local mt = getmetatable(v)
    if type(mt) == "table" and not user_mts[mt] then return nil end
    return mt
  end

  env.print = function(...)
    local n = select("#", ...)
    local parts = {}
    for i = 1, n do parts[i] = tostring((select(i, ...))) end
    return api.log.info("%s", table.concat(parts, "\t"))
  end

  local loaded = {
    _G = env, lmdisc = api, string = env.string, table = env.table, math = env.math,
    utf8 = env.utf8, coroutine = env.coroutine, os = env.os, io = env.io, debug = env.debug,
  }
  env.require = make_require(env, loaded, loadfile_t)
  return env
end

return M
