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

local M = {}

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

local function make_io()
  local i = { open = io.open, type = io.type }
  -- io.lines() and io.read() without a file would read the agent's stdin.
  i.lines = function(filename, ...)
    if type(filename) ~= "string" then
      error("bad argument #1 to 'lines' (file name expected: lmdisc policies cannot read stdin)", 2)
    end
    return io.lines(filename, ...)
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

local function make_loaders(env)
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
    return loadfile(filename, m, cenv or env)
  end
  local function dofile_(filename)
    if type(filename) ~= "string" then
      error("bad argument #1 to 'dofile' (file name expected: lmdisc policies cannot read stdin)", 2)
    end
    local f, err = loadfile(filename, "t", env)
    if not f then error(err, 2) end
    return f()
  end
  return load_, loadfile_, dofile_
end

-- require for pure-Lua modules only: C modules could do anything to the
-- process and cannot be stopped by the deadline.  Modules share the
-- policy's environment, like a plain `require` shares _G.
local function make_require(env, loaded)
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
    local chunk, lerr = loadfile(path, "t", env)
    if not chunk then error(lerr, 2) end
    local r = chunk(name, path)
    if r ~= nil then loaded[name] = r end
    if loaded[name] == nil then loaded[name] = true end
    return loaded[name], path
  end
end

--- A fresh environment table for one policy chunk; `api` becomes `lmdisc`.
function M.env(api)
  assert(type(api) == "table", "sandbox.env(api): api must be a table")
  local env = {}
  for _, k in ipairs { "assert", "error", "ipairs", "next", "pairs", "pcall", "xpcall", "select",
    "tonumber", "tostring", "type", "rawequal", "rawget", "rawset", "rawlen", "setmetatable" } do
    env[k] = _G[k]
  end
  env._VERSION = _VERSION
  env._G = env
  env.string = copy(string)
  env.table = copy(table)
  env.math = copy(math)
  env.utf8 = copy(utf8)
  env.coroutine = copy(coroutine)
  env.os = make_os()
  env.io = make_io()
  env.debug = { traceback = debug.traceback }
  env.collectgarbage = collectgarbage_
  env.lmdisc = api
  env.load, env.loadfile, env.dofile = make_loaders(env)

  -- The string metatable is shared by the whole VM: hand out a stand-in so
  -- that getmetatable("").__index.format = ... cannot reach the agent's.
  local string_mt = { __index = env.string }
  env.getmetatable = function(v)
    if type(v) == "string" then return string_mt end
    return getmetatable(v)
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
  env.require = make_require(env, loaded)
  return env
end

return M
