#!/usr/bin/env lua5.4
-- luaunit suite, label: lab
-- Proves the network-namespace lab with the real avahi tools.  Root only.
--   cd tests/lab && LUA_PATH='./?.lua;/usr/share/lua/5.4/?.lua;;' lua5.4 test_lab.lua -v
local lu = require "luaunit"
local Lab = require "lab"

local N = 3
local lab, up_err
local timings = {}
local pub1 -- avahi-publish-service on h1

local function shout(cmd) -- run in the *root* namespace (read-only queries only)
  local _, out = Lab.sh(cmd)
  return out
end

-- process identity: pid + start time (field 22 of /proc/PID/stat), so that a
-- recycled pid is not mistaken for a survivor
local function proc_start(pid)
  local f = io.open("/proc/" .. pid .. "/stat", "r")
  if not f then return nil end
  local st = f:read("a"); f:close()
  local rest = st:match("^.*%) (.*)$")
  if not rest then return nil end
  local fields = {}
  for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
  if fields[1] == "Z" or fields[1] == "X" then return nil end
  return fields[20]
end

-- still alive: same pid, same start time, not a zombie
local function alive(p) return proc_start(p.pid) == p.start end

local function ns_pids(name)
  local t = {}
  for pid in shout("ip netns pids " .. Lab.shquote(name) .. " 2>/dev/null"):gmatch("%d+") do
    local start = proc_start(pid)
    if start then t[#t + 1] = { pid = tonumber(pid), start = start } end
  end
  return t
end

local function root_netns()
  return (shout("readlink /proc/1/ns/net 2>/dev/null || readlink /proc/2/ns/net"):gsub("%s+$", ""))
end

-- parse `avahi-browse -p -r` output: resolved ("=") entries
local function unescape(s)
  return (s:gsub("\\(%d%d%d)", function(d) return string.char(tonumber(d)) end)
           :gsub("\\(.)", "%1"))
end
local function parse_browse(out)
  local res = {}
  for line in out:gmatch("[^\n]+") do
    local f = {}
    for field in (line .. ";"):gmatch("(.-);") do f[#f + 1] = field end
    if f[1] == "=" then
      res[#res + 1] = { iface = f[2], proto = f[3], name = unescape(f[4]), type = f[5],
        host = f[7], addr = f[8], port = tonumber(f[9]), txt = f[10] or "" }
    elseif f[1] == "+" then
      res[#res + 1] = { new = true, proto = f[3], name = unescape(f[4]), type = f[5] }
    end
  end
  return res
end

-- browse on host until an entry named `name` is resolved (bounded retries)
local function browse_until(host, name, tries)
  local out, entries
  for _ = 1, tries or 3 do
    local ok
    ok, out = lab:exec(host, "timeout 10 avahi-browse -r -p -t _lmserv._tcp")
    lu.assertTrue(ok, out)
    entries = parse_browse(out)
    for _, e in ipairs(entries) do
      if e.name == name and e.addr then return entries, out end
    end
  end
  return entries, out
end

local function no_avahi_in_root_netns()
  local root = root_netns()
  for pid in shout("pgrep -x avahi-daemon"):gmatch("%d+") do
    local ns = shout("readlink /proc/" .. pid .. "/ns/net 2>/dev/null"):gsub("%s+$", "")
    if ns ~= "" then lu.assertNotEquals(ns, root, "avahi-daemon " .. pid .. " in root netns!") end
  end
end

TestLab = {}

function TestLab.setupClass()
  local t0 = Lab.now()
  local ok, res = pcall(Lab.up, N)
  if ok then lab = res else up_err = res end
  timings.up = Lab.now() - t0
end

function TestLab.teardownClass()
  if lab then lab:down() end
end

-- global fallback (luaunit calls it at the end of the run)
function teardownSuite() -- luacheck: ignore
  if lab then lab:down() end
  io.stderr:write("\nlab timings (s):")
  for _, k in ipairs({ "up", "publish_established", "publish_to_browse", "crash",
                       "avahi_restart", "down" }) do
    if timings[k] then io.stderr:write((" %s=%.2f"):format(k, timings[k])) end
  end
  io.stderr:write("\n")
end

local function need_lab()
  if not lab then error("lab did not come up: " .. tostring(up_err), 2) end
  return lab
end

-- (a) hosts have their own hostname, addresses and network namespace
function TestLab:test_1_hosts()
  need_lab()
  local root = root_netns()
  lu.assertStrContains(root, "net:[")
  local seen = {}
  for i = 1, N do
    local h = "h" .. i
    lu.assertEquals(lab:check(h, "hostname"), h .. "\n")
    local ns = lab:check(h, "readlink /proc/self/ns/net"):gsub("%s+$", "")
    lu.assertNotEquals(ns, root)
    lu.assertNil(seen[ns], "two hosts share a netns")
    seen[ns] = h
    lu.assertEquals(lab:ip(h, 4), "10.77.0." .. i)
    lu.assertEquals(lab:ip(h, 6), "fd77::" .. i)
    local a4 = lab:check(h, "ip -4 -o addr show dev eth0")
    lu.assertStrContains(a4, "inet 10.77.0." .. i .. "/24")
    local a6 = lab:check(h, "ip -6 -o addr show dev eth0")
    lu.assertStrContains(a6, "inet6 fd77::" .. i .. "/64")
    lu.assertNotStrContains(a6, "tentative")
    local ok, out = lab:exec(h, "avahi-daemon -c")
    lu.assertTrue(ok, "avahi-daemon not running on " .. h .. ": " .. out)
  end
  -- exit codes and stdio pass through
  local ok, out, code = lab:exec("h2", "echo out; echo err >&2; exit 7")
  lu.assertFalse(ok)
  lu.assertEquals(code, 7)
  lu.assertStrContains(out, "out")
  lu.assertStrContains(out, "err")
  -- background process: pid, signal, exit status, output
  local p = lab:bg("h3", "echo started; sleep 30")
  lu.assertNotNil(lab:wait_log(p, "^started$", 5))
  lu.assertTrue(p:running())
  lu.assertTrue(p:signal("TERM"))
  lu.assertEquals(p:wait(5), 143)
  lu.assertStrContains(p:output(), "started")
  -- unreachable pattern times out (bounded) with a message
  local line, msg = lab:wait_log(p, "never%-appears", 0.5)
  lu.assertNil(line)
  lu.assertStrContains(msg, "timeout")
  no_avahi_in_root_netns()
end

-- (b) a service published on h1 is browsed and resolved on h2
function TestLab:test_2_publish_browse()
  need_lab()
  local t0 = Lab.now()
  pub1 = lab:bg("h1", 'avahi-publish-service -s "lab probe" _lmserv._tcp 8000 info=x')
  local line, err = lab:wait_log(pub1, "Established under name 'lab probe'", 10)
  lu.assertNotNil(line, err)
  timings.publish_established = Lab.now() - t0
  local entries, out = browse_until("h2", "lab probe", 3)
  timings.publish_to_browse = Lab.now() - t0
  -- Note: the proto column is the transport the service was found on; avahi-browse
  -- resolves addresses with AVAHI_PROTO_UNSPEC, so an "IPv4" line may carry the
  -- IPv6 address and vice versa.  Every address must be one of h1's.
  local h1addr = { [lab:ip("h1", 4)] = true, [lab:ip("h1", 6)] = true }
  local resolved = 0
  for _, e in ipairs(entries) do
    if e.name == "lab probe" and e.addr then
      resolved = resolved + 1
      lu.assertEquals(e.type, "_lmserv._tcp")
      lu.assertEquals(e.host, "h1.local")
      lu.assertTrue(h1addr[e.addr], "not h1's address: " .. e.addr)
      lu.assertEquals(e.port, 8000)
      lu.assertStrContains(e.txt, '"info=x"')
    end
  end
  lu.assertTrue(resolved >= 1, out)
  -- both address families of h1 resolve from h2
  lu.assertEquals(lab:check("h2", "timeout 5 avahi-resolve -4 -n h1.local"), "h1.local\t10.77.0.1\n")
  lu.assertEquals(lab:check("h2", "timeout 5 avahi-resolve -6 -n h1.local"), "h1.local\tfd77::1\n")
end

-- (c) crash h1: processes gone, namespace gone, no goodbye reached h2
function TestLab:test_3_crash()
  need_lab()
  local ns = "lmd-" .. lab.id .. "-h1"
  local pids = ns_pids(ns)
  lu.assertTrue(#pids >= 3, "expected anchor, dbus, avahi, publisher in " .. ns)
  if pub1 then lu.assertTrue(pub1:running()) end
  local t0 = Lab.now()
  lab:crash("h1")
  timings.crash = Lab.now() - t0
  for _, p in ipairs(pids) do lu.assertFalse(alive(p), "pid " .. p.pid .. " of h1 survived") end
  lu.assertNotStrContains(shout("ip netns list"), ns .. " ")
  lu.assertNotStrContains(shout("ip netns list") .. "\n", ns .. "\n")
  if pub1 then
    local code, msg = pub1:wait(1)
    lu.assertNil(code, "killed publisher has no exit status")
    lu.assertStrContains(msg, "vanished")
  end
  local ok, out = lab:exec("h1", "true")
  lu.assertFalse(ok)
  lu.assertStrContains(out, "not running")
  -- power cut, not shutdown: h2 still has h1's service in its cache
  ok, out = lab:exec("h2", "timeout 10 avahi-browse -p -t _lmserv._tcp")
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "lab\\032probe", "goodbye from crashed h1 reached h2?")
  -- the others are fine, the root namespace got no veth
  lu.assertEquals(lab:check("h2", "hostname"), "h2\n")
  lu.assertEquals(shout("ip -o link show type veth"), "")
end

-- (d) avahi-restart on h2: new daemon, fresh cache, browsing works again
function TestLab:test_4_avahi_restart()
  need_lab()
  local pub3 = lab:bg("h3", 'avahi-publish-service -s "lab probe 3" _lmserv._tcp 8003 info=y')
  lu.assertNotNil(lab:wait_log(pub3, "Established under name", 10))
  local before = lab:check("h2", "cat /run/avahi-daemon/pid")
  local t0 = Lab.now()
  lab:avahi_restart("h2")
  timings.avahi_restart = Lab.now() - t0
  local after = lab:check("h2", "cat /run/avahi-daemon/pid")
  lu.assertNotEquals(after, before)
  local entries, out = browse_until("h2", "lab probe 3", 3)
  local found3, found1 = false, false
  for _, e in ipairs(entries) do
    if e.name == "lab probe 3" and e.addr then
      found3 = true
      lu.assertTrue(e.addr == lab:ip("h3", 4) or e.addr == lab:ip("h3", 6), e.addr)
      lu.assertEquals(e.port, 8003)
      lu.assertStrContains(e.txt, "info=y")
    end
    if e.name == "lab probe" then found1 = true end
  end
  lu.assertTrue(found3, out)
  lu.assertFalse(found1, "restarted h2 still sees crashed h1's service:\n" .. out)
  lu.assertTrue(pub3:signal("INT"))
  lu.assertEquals(pub3:wait(5), 0)
  -- stop/start individually too
  lab:avahi_stop("h2")
  local ok = lab:exec("h2", "avahi-daemon -c")
  lu.assertFalse(ok, "avahi-daemon still running after avahi-stop")
  lab:avahi_start("h2")
  lu.assertTrue((lab:exec("h2", "avahi-daemon -c")))
end

-- (f) the guard refuses to run host commands in the root netns
function TestLab:test_5_guard()
  need_lab()
  local ok, out = Lab.run("_selftest-guard")
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "guard refused (root netns")
  lu.assertStrContains(out, "root network namespace")
  ok, out = Lab.run("_selftest-guard", lab.id, "h2")
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "guard refused (unexpected netns")
end

function TestLab:test_6_cli_errors()
  need_lab()
  local cases = {
    { { "frobnicate" }, "unknown command" },
    { { "exec", lab.id, "h9", "true" }, "unknown host 'h9'" },
    { { "exec", lab.id, "x1", "true" }, "unknown host 'x1'" },
    { { "exec", "nosuchl", "h1", "true" }, "no such lab" },
    { { "up", lab.id, "2" }, "already exists" },
    { { "up", "Bad_Id", "2" }, "bad lab id" },
    { { "up", "zz", "0" }, "bad host count" },
    { { "ip", lab.id, "h2", "5" }, "4 or 6" },
  }
  for _, c in ipairs(cases) do
    local ok, out = Lab.run(table.unpack(c[1]))
    lu.assertFalse(ok, table.concat(c[1], " "))
    lu.assertStrContains(out, c[2])
    lu.assertEquals(select(2, out:gsub("\n", "")), 1, "one-line error expected: " .. out)
  end
  local ok, out = Lab.run("--help")
  lu.assertTrue(ok)
  lu.assertStrContains(out, "down-all")
end

-- (e) down removes every namespace and process of the lab
function TestLab:test_9_down()
  need_lab()
  local names = lab:namespaces()
  lu.assertEquals(#names, N) -- sw + h2 + h3 (h1 crashed)
  local pids = {}
  for _, ns in ipairs(names) do
    for _, pid in ipairs(ns_pids(ns)) do pids[#pids + 1] = pid end
  end
  lu.assertTrue(#pids >= 4)
  local t0 = Lab.now()
  local ok, out = lab:down()
  timings.down = Lab.now() - t0
  lu.assertTrue(ok, out)
  lu.assertEquals(lab:namespaces(), {})
  for _, p in ipairs(pids) do lu.assertFalse(alive(p), "pid " .. p.pid .. " survived down") end
  lu.assertNil(io.open("/run/lmdisc-lab/" .. lab.id .. "/hosts"))
  lu.assertNotStrContains(select(2, Lab.run("list")), lab.id .. ":")
  -- idempotent
  ok, out = Lab.run("down", lab.id)
  lu.assertTrue(ok, out)
  no_avahi_in_root_netns()
end

os.exit(lu.LuaUnit.run())
