-- `lmdisc check` and `lmdisc test`: what an operator sees for good and bad
-- configurations and suites, with the binary, no network.
local lu = require "luaunit"
local B = require "bin"
local sh, run, file = B.sh, B.run, B.file

TestCheck = {}

function TestCheck:test_good_config()
    local p = file('announce { port = 8000, info = "gemma" }\nfunction filter(peer) return true end\n')
    local code, out = run("check " .. sh(p))
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "OK; announces port 8000")
    lu.assertStrContains(out, "hooks: filter")
    os.remove(p)
end

-- In the agent's own VM (lmdisc check builds it exactly as the agent does):
-- the `lmdisc` table is a plain table of the public functions, and nothing
-- reachable from the policy leads to the agent's internals.
function TestCheck:test_policy_reaches_no_internals_of_the_agent()
    local p = file([[
local found = {}
if getmetatable(lmdisc) ~= nil then found[#found + 1] = "getmetatable(lmdisc)" end
for _, k in ipairs { "_guard", "guard", "_peers_all", "peers_all", "registry_new", "runner" } do
  if lmdisc[k] ~= nil then found[#found + 1] = "lmdisc." .. k end
end
for k, v in pairs(lmdisc) do
  if type(v) == "table" and getmetatable(v) ~= nil then found[#found + 1] = "getmetatable(lmdisc." .. k .. ")" end
  if type(v) ~= "function" and type(v) ~= "table" and type(v) ~= "string" and type(v) ~= "number" then
    found[#found + 1] = "lmdisc." .. k
  end
end
if package ~= nil or debug.getregistry or debug.getmetatable or debug.sethook then found[#found + 1] = "debug/package" end
-- require gives the policy's own table, never the agent's module
if require("lmdisc") ~= lmdisc then found[#found + 1] = "require 'lmdisc'" end
assert(#found == 0, "reachable: " .. table.concat(found, ", "))
-- changing what it can reach changes only its own table
lmdisc.log.error = function() end
lmdisc.timer = nil
-- and the deadline still holds for this very chunk
while true do end
]])
    local code, out = run("check " .. sh(p))
    lu.assertEquals(code, 1, out)
    lu.assertNotStrContains(out, "reachable:")
    lu.assertStrContains(out, "exceeded its deadline")
    os.remove(p)
end

function TestCheck:test_syntax_error_with_file_and_line()
    local p = file('announce { port = 8000 }\n\nfunction filter(peer)\n  return peer.txt.model ==\nend\n')
    local code, out = run("check " .. sh(p))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, p .. ":5:")
    os.remove(p)
end

-- lmd-* TXT keys are the agent's own (signatures, liveness): refused with
-- the line of the announce { } that sets one
function TestCheck:test_reserved_txt_key_with_file_and_line()
    local p = file('registry { ttl = 60 }\n\nannounce { port = 8000, txt = { ["lmd-cert"] = "x" } }\n')
    local code, out = run("check " .. sh(p))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, p .. ":3: announce.txt: the TXT key 'lmd-cert' is reserved")
    os.remove(p)
end

function TestCheck:test_unknown_key_and_wrong_type()
    local p = file('registry { ttl = 60 }\nannounce { prot = 8000 }\n')
    local code, out = run("check " .. sh(p))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, p .. ":2:")
    lu.assertStrContains(out, "unknown key 'prot'")
    lu.assertStrContains(out, "did you mean 'port'")
    p = file('announce { port = "80" }\n')
    code, out = run("check " .. sh(p))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "announce.port")
    os.remove(p)
end

function TestCheck:test_runtime_error_and_infinite_loop_at_load()
    local p = file('local x = nil\nx.y = 1\n')
    local code, out = run("check " .. sh(p))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, p .. ":2:")
    p = file('while true do end\n')
    code, out = run("check " .. sh(p))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "deadline")
end

function TestCheck:test_memory_cap_stops_a_runaway_script()
    -- 1 MiB a step: the 32 MB cap is hit in a few dozen steps, long before
    -- the deadline could be
    local p = file('local t = {}\nfor i = 1, 1000 do t[i] = ("x"):rep(1 << 20) .. i end\n')
    local code, out = run("check " .. sh(p))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "not enough memory")
    os.remove(p)
end

function TestCheck:test_missing_file_and_usage()
    local code, out = run("check /nonexistent/agent.lua")
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "/nonexistent/agent.lua")
    code, out = run("check")
    lu.assertEquals(code, 2, out)
    lu.assertStrContains(out, "missing CONFIG.lua")
    code, out = run("agent")
    lu.assertEquals(code, 2, out)
    lu.assertStrContains(out, "missing -c CONFIG.lua")
end

function TestCheck:test_lmdisc_test_passes_and_fails()
    local policy = file('function filter(peer) return peer.txt.model == "m" end\n')
    local good = file([[
local lu = require "luaunit"
local testing = require "lmdisc.testing"
function test_filter()
  local sim = testing.load()
  sim:join { name = "a:1", txt = { model = "m" } }
  sim:join { name = "b:1", txt = { model = "x" } }
  lu.assertEquals(#sim:peers(), 1)
end
os.exit(lu.LuaUnit.run())
]])
    local bad = file([[
local lu = require "luaunit"
local testing = require "lmdisc.testing"
function test_wrong()
  local sim = testing.load()
  sim:join { name = "b:1", txt = { model = "x" } }
  lu.assertEquals(#sim:peers(), 1)
end
os.exit(lu.LuaUnit.run())
]])
    local code, out = run("test " .. sh(policy) .. " " .. sh(good))
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "1 success,")
    code, out = run("test " .. sh(policy) .. " " .. sh(good) .. " " .. sh(bad))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "1 success,") -- the first suite ran to its end
    lu.assertStrContains(out, "1 failure")
    code, out = run("test " .. sh(policy))
    lu.assertEquals(code, 2, out)
end

-- ---- the agent's start checks ---------------------------------------------
-- `lmdisc check` runs every check the agent makes at start that needs no
-- network, with the FILE:LINE of the directive that asked for it, and the
-- agent refuses the same configurations with the same lines (before it
-- starts anything: these configurations have neither mDNS nor a DNS server
-- it could reach).

TestStartChecks = {}

local dir
local function path(name) return dir .. "/" .. name end
local function write(name, text)
    local f = assert(io.open(path(name), "w"))
    f:write(text)
    f:close()
    os.execute("chmod 644 " .. sh(path(name)))
    return path(name)
end
-- (the sanitizer build's preloaded runtime is not for chown and friends)
local function ok(cmd) lu.assertTrue(os.execute("env -u LD_PRELOAD sh -c " .. sh(cmd)), cmd) end
local function is_root()
    local f = io.popen("id -u")
    local u = f:read("l")
    f:close()
    return u == "0"
end

function TestStartChecks:setUp()
    local f = io.popen("mktemp -d")
    dir = f:read("l")
    f:close()
    ok("chmod 755 " .. sh(dir)) -- the user of --user nobody reads the configuration here
    local code, out = run("keygen " .. sh(path("fleet")))
    lu.assertEquals(code, 0, out)
    code, out = run("keygen " .. sh(path("host")))
    lu.assertEquals(code, 0, out)
    code, out = run("keygen " .. sh(path("other")))
    lu.assertEquals(code, 0, out)
    code, out = run(("certify --fleet-key %s --name '*' --days 30 %s"):format(sh(path("fleet.key")), sh(path("host.pub"))))
    lu.assertEquals(code, 0, out)
    write("tsig.key", 'key "h1-key" {\n\talgorithm hmac-sha256;\n\tsecret "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";\n};\n')
    ok("chmod 600 " .. sh(path("tsig.key")))
end

function TestStartChecks:tearDown()
    if dir and dir:find("^/tmp/") then os.execute("rm -rf " .. sh(dir)) end
end

-- line 4 is the trust directive
local function trust_config(key, cert)
    return write("trust.lua", ('-- signed\nmdns { enabled = false }\napi { socket = %q }\ntrust {\n'
        .. '  key = %q,\n  cert = %q,\n  fleet = { %q },\n}\n'):format(path("agent.sock"), key, cert or path("host.cert"),
        path("fleet.pub")))
end

function TestStartChecks:test_trust_files_as_the_agent_reads_them()
    local cfg = trust_config(path("host.key"))
    local code, out = run("check " .. sh(cfg))
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "OK; observes only")
    -- the service's group may read it: root:lmdisc 0640
    ok("chmod 640 " .. sh(path("host.key")))
    code, out = run("check " .. sh(cfg))
    lu.assertEquals(code, 0, out)
    -- every user may read it: refused at the trust { } line, by check and by the agent
    ok("chmod 644 " .. sh(path("host.key")))
    code, out = run("check " .. sh(cfg))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, cfg .. ":4: trust.key: " .. path("host.key") .. ": mode 0644 lets")
    lu.assertStrContains(out, "chown root:lmdisc")
    lu.assertStrContains(out, "1 problem: the agent would not start with it")
    lu.assertNotStrContains(out, "OK")
    local acode, aout = run("agent -c " .. sh(cfg), "timeout 10")
    lu.assertEquals(acode, 1, aout)
    lu.assertStrContains(aout, "cannot start: " .. cfg .. ":4: trust.key: " .. path("host.key") .. ": mode 0644 lets")
    ok("chmod 600 " .. sh(path("host.key")))
    -- a missing key, another host's certificate, a missing fleet key
    code, out = run("check " .. sh(trust_config(path("gone.key"))))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, ":4: trust.key: " .. path("gone.key") .. ": cannot open")
    code, out = run("check " .. sh(trust_config(path("other.key"))))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, ":4: trust: " .. path("host.cert") .. " is not a certificate for the key in "
        .. path("other.key"))
    code, out = run("check " .. sh(trust_config(path("host.key"), path("gone.cert"))))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, ":4: trust.cert: " .. path("gone.cert"))
    os.remove(path("fleet.pub"))
    code, out = run("check " .. sh(trust_config(path("host.key"))))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, ":4: trust.fleet: ")
end

-- line 3 is the wide_area directive; check sends nothing (the server is TEST-NET)
local function wide_config(key, sweep)
    return write("wide.lua", ('mdns { enabled = false }\napi { socket = %q }\nwide_area { domain = "sd.example.org", '
        .. 'server = "192.0.2.1", host = "h1",\n  key = %q%s }\n'):format(path("agent.sock"), key,
        sweep and (", sweep_key = %q"):format(sweep) or ""))
end

function TestStartChecks:test_wide_area_keys()
    local cfg = wide_config(path("tsig.key"))
    local code, out = run("check " .. sh(cfg))
    lu.assertEquals(code, 0, out)
    ok("chmod 640 " .. sh(path("tsig.key")))
    code, out = run("check " .. sh(cfg))
    lu.assertEquals(code, 0, out)
    ok("chmod 644 " .. sh(path("tsig.key")))
    code, out = run("check " .. sh(cfg))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, cfg .. ":3: wide_area.key: " .. path("tsig.key") .. ": mode 0644 lets")
    ok("chmod 600 " .. sh(path("tsig.key")))
    code, out = run("check " .. sh(wide_config(path("gone.tsig"))))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, ":3: wide_area.key: " .. path("gone.tsig") .. ": cannot open")
    local sweep = write("sweep.key", 'key "sweeper" { algorithm hmac-sha256; secret "c2VjcmV0"; };\n')
    code, out = run("check " .. sh(wide_config(path("tsig.key"), sweep)))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, ":3: wide_area.sweep_key: " .. sweep .. ": mode 0644 lets")
    write("sweep.key", "not a key\n")
    ok("chmod 600 " .. sh(sweep))
    code, out = run("check " .. sh(wide_config(path("tsig.key"), sweep)))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "wide_area.sweep_key: " .. sweep .. ":1: only a key statement")
end

function TestStartChecks:test_api_listen_and_socket_rules()
    local cfg = write("api.lua", ('registry { ttl = 30 }\n\napi { socket = %q, listen = "0.0.0.0:7717" }\n')
        :format(path("agent.sock")))
    local code, out = run("check " .. sh(cfg))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, cfg .. ":3: api.listen '0.0.0.0:7717' is not a loopback address")
    lu.assertStrContains(out, "allow_remote = true")
    local acode, aout = run("agent -c " .. sh(cfg), "timeout 10")
    lu.assertEquals(acode, 1, aout)
    lu.assertStrContains(aout, "cannot start: " .. cfg .. ":3: api.listen '0.0.0.0:7717' is not a loopback")
    cfg = write("api.lua", ('api { socket = %q, listen = "0.0.0.0:7717", allow_remote = true }\n')
        :format(path("agent.sock")))
    code, out = run("check " .. sh(cfg))
    lu.assertEquals(code, 0, out)
    -- something else where the socket goes; a socket under a file
    write("taken", "x")
    code, out = run("check " .. sh(write("api.lua", ('api { socket = %q }\n'):format(path("taken")))))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, ":1: api.socket " .. path("taken") .. " exists and is not a socket")
    code, out = run("check " .. sh(write("api.lua", ('api { socket = %q }\n'):format(path("taken/x.sock")))))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, path("taken") .. " is not a directory")
end

-- As the service user (--user): what it may read and where it may listen.
function TestStartChecks:test_as_the_service_user()
    if not is_root() then
        lu.skip("--user needs root: run the unit suites as root to check it")
    end
    local code, out = run("check --user no-such-user-lmd " .. sh(trust_config(path("host.key"))))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "no user 'no-such-user-lmd'")
    -- root's 0600 key: nobody cannot read it
    ok("chown root:root " .. sh(path("host.key")))
    local cfg = trust_config(path("host.key"))
    ok("chown nobody " .. sh(dir)) -- where its socket goes
    code, out = run("check --user nobody " .. sh(cfg))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, cfg .. ":4: trust.key: " .. path("host.key") .. ": cannot open: Permission denied")
    lu.assertStrContains(out, "(as user nobody")
    -- root:nogroup 0640, nobody's own group: it may
    ok("chgrp nogroup " .. sh(path("host.key")) .. " && chmod 640 " .. sh(path("host.key")))
    code, out = run("check --user nobody " .. sh(cfg))
    lu.assertEquals(code, 0, out)
    -- and as nobody it may not create a socket in a directory of root's
    ok("mkdir -m 755 " .. sh(path("run")))
    cfg = write("sock.lua", ('api { socket = %q }\n'):format(path("run/agent.sock")))
    code, out = run("check --user nobody " .. sh(cfg))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, cfg .. ":1: api.socket " .. path("run/agent.sock") .. ": this user (uid ")
    lu.assertStrContains(out, "may not create it in " .. path("run"))
    code, out = run("check " .. sh(cfg)) -- root may
    lu.assertEquals(code, 0, out)
end

os.exit(lu.LuaUnit.run())
