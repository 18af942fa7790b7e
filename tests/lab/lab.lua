--- lab.lua - Lua 5.4 wrapper around tests/lab/lab for luaunit suites.
--
--   local Lab = require "lab"
--   local lab = Lab.up(3)                 -- hosts h1..h3, unique lab id
--   local wan = Lab.up(3, {subnets = 2, dns = "named"})  -- routed, DNS host
--   local ok, out, code = lab:exec("h1", "hostname")
--   local p = lab:bg("h1", "avahi-publish-service -s x _lmserv._tcp 8000")
--   assert(lab:wait_log(p, "Established under name", 10))
--   p:signal("INT"); p:wait(5)
--   lab:down()
--
-- Suites must always tear down: call lab:down() in teardownSuite /
-- teardownClass (it is idempotent), or use Lab.with(n, function(lab) ... end)
-- which calls down even when the body errors.  As a last resort, run
-- `tests/lab/lab down-all` (as root).
--
-- The script is found next to this file, or via env LMD_LAB_SCRIPT.
-- Logs of lab:bg() go to a per-lab directory under /tmp (lab.logdir), which
-- down() removes unless LMD_LAB_KEEP_LOGS=1.

local San = require "sanitizer"

local Lab = {}
Lab.__index = Lab

local Proc = {}
Proc.__index = Proc

--- Quote one string for /bin/sh.
function Lab.shquote(s)
  s = tostring(s)
  if s:match("^[%w%%%+,%./:=@_%-]+$") then return s end
  return "'" .. s:gsub("'", "'\\''") .. "'"
end
local q = Lab.shquote

local function script_path()
  local env = os.getenv("LMD_LAB_SCRIPT")
  if env and env ~= "" then return env end
  local src = debug.getinfo(1, "S").source
  local dir = src:sub(1, 1) == "@" and src:sub(2):match("^(.*)/[^/]*$") or "."
  if dir:sub(1, 1) ~= "/" then
    local pwd = os.getenv("PWD")
    if pwd and pwd ~= "" then dir = pwd .. "/" .. dir end
  end
  return dir .. "/lab"
end
Lab.script = script_path()

-- Run a shell command; return ok, combined output, exit code.
local function sh(cmd)
  -- a sanitizer build's runtimes (LD_PRELOAD, for lua5.4) must not reach
  -- the shell tools: they report their own leaks and some of them hang
  local f = assert(io.popen("unset LD_PRELOAD; " .. cmd .. " 2>&1", "r"))
  local out = f:read("a")
  local ok, how, code = f:close()
  if how == "signal" then code = 128 + code end
  return ok == true, out, code
end
Lab.sh = sh

-- Run the lab script with the given (unquoted) arguments.  LD_PRELOAD (e.g.
-- the sanitizer runtimes of an instrumented build) is dropped: it must not
-- leak into bash, ip, dbus-daemon, avahi-daemon.  Host commands that need it
-- say so themselves: lab:exec(h, "LD_PRELOAD=$LMD_PRELOAD lua5.4 ...").
local function run(...)
  local parts = { "env -u LD_PRELOAD", q(Lab.script) }
  for _, a in ipairs({ ... }) do parts[#parts + 1] = q(a) end
  return sh(table.concat(parts, " "))
end
Lab.run = run

local function sleep(s) os.execute("sleep " .. string.format("%.3f", s)) end
Lab.sleep = sleep

-- Wall clock in seconds (monotonic: /proc/uptime).
local function now()
  local f = io.open("/proc/uptime", "r")
  if not f then return os.time() end
  local t = f:read("n")
  f:close()
  return t
end
Lab.now = now

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function base36(n, width)
  local digits, s = "0123456789abcdefghijklmnopqrstuvwxyz", ""
  for _ = 1, width do
    local d = n % 36
    s = digits:sub(d + 1, d + 1) .. s
    n = n // 36
  end
  return s
end

local function my_pid()
  local s = read_file("/proc/self/stat") or ""
  return tonumber(s:match("^(%d+)")) or 0
end

-- Suites' labs start with $LMD_LAB_PREFIX (CTest gives each build directory
-- its own, so `lab down-all PREFIX` after a run touches only its labs).
local PREFIX = os.getenv("LMD_LAB_PREFIX") or "t"
assert(PREFIX:match("^[a-z0-9]+$") and #PREFIX <= 4, "LMD_LAB_PREFIX: 1-4 of [a-z0-9]")

local function new_id()
  local rest = 8 - #PREFIX
  return PREFIX .. base36(my_pid(), rest - 3) .. base36(math.random(0, 36 ^ 3 - 1), 3)
end

--- Create a lab with hosts h1..hN.  id: [a-z0-9]{1,8}, default unique.
--- opts (also as the second argument): subnets = S (a routed lab: hN in
--- subnet ((N-1) mod S)+1, joined by router host "r"), dns = "named" or
--- "knot" (DNS host "dns" serving sd.lab., one TSIG key per host),
--- secondaries = true (host "secK" in each subnet K, 10.77.K.53, serving
--- both zones as a secondary of the other kind, fed by NOTIFY + IXFR;
--- each takes NOTIFYs for sd.lab signed by host keys, those listed in
--- refuse_host_notify = "secK[,secL]" excepted).
function Lab.up(n, id, opts)
  assert(math.type(n) == "integer" and n >= 1, "Lab.up: host count must be a positive integer")
  if type(id) == "table" then id, opts = nil, id end
  opts = opts or {}
  local extra = {}
  if opts.subnets then extra[#extra + 1] = "--subnets"; extra[#extra + 1] = tostring(opts.subnets) end
  if opts.dns then extra[#extra + 1] = "--dns"; extra[#extra + 1] = opts.dns end
  if opts.secondaries then extra[#extra + 1] = "--secondaries" end
  if opts.notify_port then extra[#extra + 1] = "--notify-port"; extra[#extra + 1] = tostring(opts.notify_port) end
  if opts.refuse_host_notify then extra[#extra + 1] = "--refuse-host-notify"; extra[#extra + 1] = opts.refuse_host_notify end
  local tries = id and 1 or 5
  local ok, out
  for _ = 1, tries do
    local lid = id or new_id()
    local t0 = now()
    ok, out = run("up", lid, tostring(n), table.unpack(extra))
    if ok then
      local ok2, dir = sh("mktemp -d " .. q("/tmp/lmdisc-lab-" .. lid .. ".XXXXXX"))
      if not ok2 then run("down", lid); error("Lab.up: mktemp failed: " .. dir) end
      local self = setmetatable({
        id = lid, n = n, logdir = dir:gsub("%s+$", ""), up_time = now() - t0,
        hosts = {}, procs = {}, nlog = 0, subnets = opts.subnets, dns_kind = opts.dns,
      }, Lab)
      for i = 1, n do self.hosts[i] = "h" .. i end
      return self
    end
    if id or not out:find("already exists", 1, true) then break end
  end
  error("Lab.up(" .. n .. "): " .. out, 2)
end

--- Run fn(lab) with a fresh lab; always tears it down.  Returns fn's results.
--- id_or_opts: a lab id, or the options of Lab.up.
function Lab.with(n, fn, id_or_opts)
  local lab = Lab.up(n, id_or_opts)
  local res = table.pack(xpcall(fn, debug.traceback, lab))
  if not res[1] then
    io.stderr:write("lab " .. lab.id .. ": test failed, logs kept in " .. lab.logdir .. "\n")
    lab.keep_logs = true
  end
  lab:down()
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

--- Run cmd (a bash command string) on host: ok, output (stdout+stderr), exit code.
--- Raises when the output holds a sanitizer report or the command exited
--- with the sanitizers' exit code (tests/lab/sanitizer.lua), whatever the
--- test expected of it.
function Lab:exec(host, cmd)
  local ok, out, code = run("exec", self.id, host, "bash", "-c", cmd)
  San.check(("%s: `%s`"):format(host, cmd), out, code, 2)
  return ok, out, code
end

--- Like exec but raises on failure; returns the output.
function Lab:check(host, cmd)
  local ok, out, code = self:exec(host, cmd)
  if not ok then error(("%s: `%s` failed (%s): %s"):format(host, cmd, code, out), 2) end
  return out
end

--- Start cmd (bash command string) on host in the background.  Returns a process
--- object: .pid, .log, :signal(sig), :wait(timeout) -> code|nil, :output().
function Lab:bg(host, cmd, name)
  self.nlog = self.nlog + 1
  local log = ("%s/%02d-%s-%s.log"):format(self.logdir, self.nlog, host,
    (name or cmd:match("^%s*([%w%-_%.]+)") or "cmd"):gsub("[^%w%-_%.]", "_"))
  -- bash -c execs a simple command (also the last one of a ; or && list) in
  -- place, so .pid is the command itself; not so with redirections or
  -- pipelines: then write "exec cmd" yourself if signals must reach it.
  local ok, out = run("bg", self.id, host, log, "bash", "-c", cmd)
  if not ok then error(("%s: bg `%s` failed: %s"):format(host, cmd, out), 2) end
  local pid = tonumber(out:match("(%d+)%s*$"))
  assert(pid, "bg: no pid in output: " .. out)
  local wpid = tonumber(((read_file(log .. ".pid") or ""):match("^%d+%s+(%d+)")))
  local p = setmetatable({ pid = pid, wrapper = wpid, log = log, host = host, cmd = cmd, lab = self }, Proc)
  self.procs[#self.procs + 1] = p
  return p
end

--- Exit status once it exited, else nil.  (Set by the lab wrapper in LOG.rc.)
function Proc:status()
  local s = read_file(self.log .. ".rc")
  return s and tonumber(s:match("%d+")) or nil
end

local function pid_alive(pid)
  local st = pid and read_file("/proc/" .. pid .. "/stat")
  return st ~= nil and st:match("%) (%a)") ~= "Z"
end

function Proc:running()
  if self:status() then return false end
  return pid_alive(self.pid)
end

--- Send a signal (name like "TERM"/"INT" or number) if it is still running.
function Proc:signal(sig)
  sig = sig or "TERM"
  if not self:running() then return false end
  return os.execute(("kill -%s %d 2>/dev/null"):format(q(sig), self.pid)) == true
end

--- Wait up to timeout_s (default 10) for the exit: exit code, or nil, message.
function Proc:wait(timeout_s)
  timeout_s = timeout_s or 10
  local step, deadline = 0.02, now() + timeout_s
  for _ = 1, math.ceil(timeout_s / step) + 1 do
    local st = self:status()
    if st then return st end
    if not pid_alive(self.pid) and not pid_alive(self.wrapper) then
      -- the wrapper writes the status before it exits; if it is gone without
      -- one, both were killed (crash/down)
      st = self:status()
      if st then return st end
      return nil, "process " .. self.pid .. " vanished without exit status"
    end
    if now() >= deadline then break end
    sleep(step)
  end
  return nil, ("timeout after %gs waiting for pid %d (%s) to exit"):format(timeout_s, self.pid, self.cmd)
end

function Proc:output() return read_file(self.log) or "" end

--- A message when the process printed a sanitizer report or exited with the
--- sanitizers' exit code, else nil (it may still be running).
function Proc:sanitizer_problem()
  return San.problem(("%s: `%s` (log %s)"):format(self.host, self.cmd, self.log), self:output(), self:status())
end

--- Block until a line matching the Lua pattern appears in the log of proc
--- (or file path).  Returns the line, or nil, message after timeout_s.
--- Event driven: follows the file with `tail -F`, bounded by `timeout`.
function Lab:wait_log(p, pattern, timeout_s, nth)
  local path = type(p) == "table" and p.log or p
  timeout_s = timeout_s or 10
  nth = nth or 1
  local f = assert(io.popen(("echo $$; exec timeout %g tail -n +1 -F %s 2>/dev/null")
    :format(timeout_s, q(path)), "r"))
  local pid = f:read("l")
  local found, nlines, seen = nil, 0, 0
  for line in f:lines() do
    nlines = nlines + 1
    if line:find(pattern) then
      seen = seen + 1
      if seen >= nth then found = line; break end
    end
  end
  if found then os.execute("kill -TERM " .. tonumber(pid) .. " 2>/dev/null") end
  f:close()
  if found then return found end
  return nil, ("timeout after %gs waiting for match #%d of /%s/ in %s (%d lines, %d matches)"):format(
    timeout_s, nth, pattern, path, nlines, seen)
end

--- Host address: fam 4 (default) or 6.
function Lab:ip(host, fam)
  local ok, out = run("ip", self.id, host, tostring(fam or 4))
  if not ok then error(out, 2) end
  return (out:gsub("%s+$", ""))
end

--- Subnet number of host hN (0 in a flat lab).
function Lab:subnet(host)
  local ok, out = run("subnet", self.id, host)
  if not ok then error(out, 2) end
  return tonumber(out:match("%d+"))
end

--- Facts of the DNS host (a routed lab started with dns): kind ("named" or
--- "knot"), zone ("sd.lab"), server4, server6, dir, keys (directory), log;
--- with secondaries: secondaries ("sec1,sec2"), secK_kind, secK_subnet,
--- secK_4, secK_6, secK_log.
function Lab:dns()
  if self.dns_info then return self.dns_info end
  local ok, out = run("dns", self.id)
  if not ok then error(out, 2) end
  local t = {}
  for k, v in out:gmatch("([%w_]+)=([^\n]*)") do t[k] = v end
  self.dns_info = t
  return t
end

--- Path of a TSIG key file (BIND syntax, 0600): "h1".."hN", "sweeper" or "admin".
function Lab:key(name)
  return self:dns().keys .. "/" .. name .. ".key"
end

--- The secondaries of a lab started with secondaries = true, in subnet
--- order: { name = "sec1", kind = "knot", subnet = 1, ip4 = ..., ip6 = ..., log = ... }.
function Lab:secondaries()
  local d, t = self:dns(), {}
  for name in (d.secondaries or ""):gmatch("[^,]+") do
    t[#t + 1] = { name = name, kind = d[name .. "_kind"], subnet = tonumber(d[name .. "_subnet"]),
                  ip4 = d[name .. "_4"], ip6 = d[name .. "_6"], log = d[name .. "_log"] }
  end
  return t
end

-- server: "dns" (the primary, the default) or a secondary "secK"
local function lab_verb(verb)
  return function(self, server)
    local ok, out = run(verb, self.id, server or "dns")
    if not ok then error(("lab %s %s %s: %s"):format(verb, self.id, server or "dns", out), 2) end
    return true
  end
end
Lab.dns_stop = lab_verb("dns-stop")    -- the zone and its journal are kept
Lab.dns_start = lab_verb("dns-start")  -- returns when the zone(s) are served
Lab.dns_pause = lab_verb("dns-pause")  -- silent, not refusing (SIGSTOP)
Lab.dns_resume = lab_verb("dns-resume")

local function action(verb)
  return function(self, host)
    local ok, out = run(verb, self.id, host)
    if not ok then error(("lab %s %s %s: %s"):format(verb, self.id, host, out), 2) end
    return true
  end
end
Lab.cut = action("cut")
Lab.heal = action("heal")
Lab.crash = action("crash")
Lab.boot = action("boot")
Lab.avahi_stop = action("avahi-stop")
Lab.avahi_start = action("avahi-start")
Lab.avahi_restart = action("avahi-restart")
Lab.avahi_pause = action("avahi-pause")   -- SIGSTOP: D-Bus calls to it wait
Lab.avahi_resume = action("avahi-resume")

--- Namespace names of this lab (that currently exist).
function Lab:namespaces()
  local _, out = sh("ip netns list")
  local t = {}
  for name in out:gmatch("(%S+)[^\n]*\n?") do
    if name:find("^lmd%-" .. self.id .. "%-") then t[#t + 1] = name end
  end
  return t
end

--- Tear the lab down (idempotent).  Returns ok, output.
function Lab:down()
  if self.is_down then return true, "" end
  local ok, out = run("down", self.id)
  if ok then
    self.is_down = true
    if not self.keep_logs and os.getenv("LMD_LAB_KEEP_LOGS") ~= "1" and self.logdir:find("^/tmp/lmdisc%-lab%-") then
      os.execute("rm -rf " .. q(self.logdir))
    end
  end
  return ok, out
end

Lab.__close = function(self) self:down() end
Lab.__gc = function(self) if not self.is_down then pcall(Lab.down, self) end end

return Lab
