--- Scaffolding shared by the lab suites: one lab per suite (booted in
-- setupSuite, torn down in teardownSuite even when tests fail), a scratch
-- directory, processes started by a test and stopped after it, unique
-- instance names, small file helpers.
--
--   local S = require("suite").new(3)       -- defines setupSuite/teardownSuite
--   function TestX:tearDown() S:stop_all() end
--   local p = S:bg("h1", cmd)               -- stopped (TERM) after the test
--   local a = S:agent("h2", config_text)    -- lmdisc agent, waits until started
local lu = require "luaunit"
local cjson = require "cjson"
local Lab = require "lab"

local S = {}
S.__index = S

S.BIN = assert(os.getenv("LMDISC_BIN"), "set LMDISC_BIN to the lmdisc binary")
S.q = Lab.shquote

function S.write(file, text)
    local f = assert(io.open(file, "w"))
    f:write(text)
    f:close()
end

-- Policy text that calls set_txt(TXT) once FLAG exists (polled every
-- 0.2 s): a test changes the TXT after it has seen the join, where a timer
-- could fire before the first announcement and fold the change into it.
-- TXT is a Lua table constructor, e.g. '{ load = "2" }'.
function S.set_txt_when(flag, txt)
    return ([[
local done = false
lmdisc.every(0.2, function()
  local f = not done and io.open(%q)
  if f then f:close(); done = true; assert(lmdisc.set_txt(%s)) end
end)
]]):format(flag, txt)
end

function S.read(file)
    local f = io.open(file)
    if not f then return "" end
    local s = f:read("a")
    f:close()
    return s
end

--- A luaunit class's lab (the wide-area suites: one class per DNS server):
-- installs T.setupClass (Lab.up(hosts, opts), a scratch directory, then
-- ready(lab, tmp) so the class can keep them in upvalues), T.teardownClass
-- and T:tearDown (every process in procs stopped, TERM then KILL at class
-- end; a sanitizer report fails the test).  procs: the class's table of
-- started processes, emptied in place.
function S.class_lab(T, hosts, opts, procs, ready)
    local lab, tmp
    function T.setupClass()
        lab = Lab.up(hosts, opts)
        tmp = os.tmpname()
        os.remove(tmp)
        os.execute("mkdir -p " .. S.q(tmp))
        ready(lab, tmp)
    end
    function T.teardownClass()
        for _, p in ipairs(procs) do
            if p:running() then p:signal("KILL"); p:wait(5) end
        end
        if lab then lab:down() end
        if tmp then os.execute("rm -rf " .. S.q(tmp)) end
    end
    function T.tearDown()
        for i = #procs, 1, -1 do
            local p = procs[i]
            if p:running() then p:signal("TERM"); p:wait(10) end
            procs[i] = nil
        end
        S.assert_no_sanitizer_report(lab)
    end
end

--- opts: those of Lab.up (subnets, dns) for a routed lab.
function S.new(hosts, opts)
    local self = setmetatable({procs = {}, seq = 0}, S)
    function _G.setupSuite()
        self.lab = Lab.up(hosts, opts)
        self.tmp = os.tmpname()
        os.remove(self.tmp)
        os.execute("mkdir -p " .. S.q(self.tmp))
    end
    function _G.teardownSuite()
        self:stop_all()
        if self.lab then self.lab:down() end
        if self.tmp then os.execute("rm -rf " .. S.q(self.tmp)) end
    end
    return self
end

-- Instance names unique per test: avahi keeps a goodbye'd record for a
-- second (RFC 6762 10.1), so the next test must not reuse the last one's.
function S:uniq(name)
    self.seq = self.seq + 1
    return ("%s_%d"):format(name, self.seq)
end

function S:path(name)
    self.seq = self.seq + 1
    return ("%s/%d-%s"):format(self.tmp, self.seq, name)
end

function S:bg(host, cmd)
    local p = self.lab:bg(host, cmd)
    self.procs[#self.procs + 1] = p
    return p
end

--- The sanitizer report in a process's output (or its exit with the
-- sanitizers' code, tests/lab/sanitizer.lua), as a message; nil if none.
function S.sanitizer_report(p)
    return p:sanitizer_problem()
end

--- Fail the test when any process started in lab so far (by S:bg,
-- S:agent, or lab:bg directly, stopped or still running) printed a
-- sanitizer report or exited with the sanitizers' code.  Each process is
-- reported once.
function S.assert_no_sanitizer_report(lab)
    local bad = {}
    for _, p in ipairs(lab and lab.procs or {}) do
        if not p.sanitizer_reported then
            local m = p:sanitizer_problem()
            if m then
                p.sanitizer_reported = true
                bad[#bad + 1] = m
            end
        end
    end
    lu.assertEquals(#bad, 0, "sanitizer report:\n" .. table.concat(bad, "\n----\n"))
end

--- The end of a long text (a log in a failure message).
function S.tail(s, n)
    n = n or 4000
    return #s > n and ("..." .. s:sub(-n)) or s
end

--- Wait for the nth (default first) line matching pattern in a process's
-- log (or a file), at most timeout seconds (default 15); the line, or the
-- test fails with the end of that log.
function S:await(p, pattern, timeout, nth)
    local line, err = self.lab:wait_log(p, pattern, timeout or 15, nth)
    if not line then
        local path = type(p) == "table" and p.log or p
        local text = type(p) == "table" and p:output() or S.read(p)
        lu.fail(tostring(err) .. "\n--- " .. path .. ":\n" .. S.tail(text))
    end
    return line
end

--- Run a command on this machine (not in a lab host): its exit code and
-- output (stderr included).
function S.run(cmd)
    local f = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
    local out = f:read("a")
    f:close()
    return tonumber(out:match("rc=(%d+)\n?$")), out
end

--- A fleet key and a key for each host, each host certified by the fleet
-- for any name ('*', 2 days), in a directory of the suite's: its path
-- (DIR/fleet.pub, DIR/HOST.key, DIR/HOST.cert).
function S:fleet_keys(hosts)
    local dir = self:path("keys")
    assert(os.execute("mkdir -p " .. S.q(dir)))
    for _, k in ipairs { "fleet", table.unpack(hosts) } do
        local code, out = S.run(S.q(S.BIN) .. " keygen " .. S.q(dir .. "/" .. k))
        assert(code == 0, out)
    end
    for _, host in ipairs(hosts) do
        local code, out = S.run(("%s certify --fleet-key %s --name '*' --days 2 %s"):format(S.q(S.BIN),
            S.q(dir .. "/fleet.key"), S.q(dir .. "/" .. host .. ".pub")))
        assert(code == 0, out)
    end
    return dir
end

--- /v1/peers of the agent at sock on host every 0.2 s, count times, while
-- something else happens.  The returned function waits for the last one
-- and returns every snapshot as {line = raw text, doc = decoded} (a line
-- that is not JSON fails the test), and the raw text for messages.
function S:watch_peers(host, sock, count)
    local snaps = self:path("snaps")
    local w = self:bg(host, ("for i in $(seq 1 %d); do curl -s --max-time 2 --unix-socket %s http://lmdisc/v1/peers; " ..
        "echo; sleep 0.2; done > %s; echo watch-done"):format(count, S.q(sock), S.q(snaps)))
    return function()
        self:await(w, "^watch%-done", 30 + count * 0.2)
        local all = {}
        for line in S.read(snaps):gmatch("[^\n]+") do
            local ok, doc = pcall(cjson.decode, line)
            lu.assertTrue(ok, line)
            all[#all + 1] = { line = line, doc = doc }
        end
        return all, S.read(snaps)
    end
end

--- The fields of a "a|b|c" record line.
function S.fields(line)
    local f = {}
    for x in (line .. "|"):gmatch("(.-)|") do f[#f + 1] = x end
    return f
end

--- The lines of a file, those starting with prefix if given.
function S.lines(file, prefix)
    local out = {}
    for l in S.read(file):gmatch("[^\n]+") do
        if not prefix or l:sub(1, #prefix) == prefix then out[#out + 1] = l end
    end
    return out
end

--- Stop what the test started (TERM, then wait), newest first: clients
-- before the agents they talk to (an agent stopped under its clients is a
-- test of its own); a process of the lab that printed a sanitizer report
-- fails the test (the lmdisc binary is instrumented in a sanitizer build,
-- and its output goes to these logs), also one the test started with
-- lab:bg itself.
function S:stop_all()
    for i = #self.procs, 1, -1 do
        local p = self.procs[i]
        if p:running() then
            p:signal("TERM")
            p:wait(10)
        end
    end
    self.procs = {}
    S.assert_no_sanitizer_report(self.lab)
end

--- Start `lmdisc agent` on host with a configuration given as text (or a
-- path with opts.path) and environment opts.env; waits until it started.
function S:agent(host, text, opts)
    opts = opts or {}
    local cfg = opts.path
    if not cfg then
        cfg = self:path("agent.lua")
        S.write(cfg, text)
    end
    local env = {}
    for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. S.q(v) end
    table.sort(env)
    local p = self:bg(host, "env " .. table.concat(env, " ") .. " " .. S.q(S.BIN) .. " agent -c " .. S.q(cfg))
    lu.assertNotNil(self.lab:wait_log(p, "agent started", 10), p:output())
    return p
end

--- `lmdisc announce PORT x --name NAME [args]` on host, waited until established.
function S:announce(host, port, name, args)
    local p = self:bg(host, ("%s announce %d x --name %s %s"):format(S.q(S.BIN), port, S.q(name), args or ""))
    lu.assertNotNil(self.lab:wait_log(p, "^announced", 15), p:output())
    return p
end

return S
