-- The registration API on lab hosts: servers announce themselves through the
-- agent's Unix socket (PUT /v1/services/NAME while the connection stays open,
-- ?ttl=S with /pass, PATCH, DELETE), the Python package on top of it (the
-- original README's "Typical usage" snippet, and its `lmdisc announce`
-- fallback on a host without an agent), draining (`lmdisc drain`, routable),
-- and every refused input with its status and message.
--
-- h1 registers (an agent with api { socket } and, except in the drain test,
-- no announce {}), h2 observes with an agent whose policy records every hook
-- call, h3 has no agent (Python fallback) or announces a control service.
local lu = require "luaunit"
local cjson = require "cjson"
local Lab = require "lab"

local S = require("suite").new(3)
local q, BIN, read, write = S.q, S.BIN, S.read, S.write
local SRC = os.getenv("LMDISC_SRC") or "."
local PYTHONPATH = SRC .. "/python"
-- Debian's interpreter when there is one: a version manager's shim would be a
-- shell script between the harness and the Python process it must signal
local PY = "python3"
do
    local f = io.open("/usr/bin/python3")
    if f then f:close(); PY = "/usr/bin/python3" end
end
local SOCK = "/run/lmdisc/reg.sock"       -- h1's registering agent
local OBS_SOCK = "/run/lmdisc/agent.sock" -- h2's observer (the default: `lmdisc peers` finds it)
local TCP = "127.0.0.1:7731"

local OBSERVER, REQ, SNIPPET, FALLBACK -- files written in setupSuite

-- Observer policy: one line per hook call in $RECORD_FILE:
--   kind|name|host|port|info|txt (sorted k=v;)|routable|rN|extra
-- where rN counts the peer in lmdisc.peers{routable = true}. With $MY_PORT it
-- announces $MY_NAME there with info $MY_INFO.
local OBSERVER_TEXT = [[
local FILE = assert(os.getenv("RECORD_FILE"), "set RECORD_FILE")
local PORT = math.tointeger(tonumber(os.getenv("MY_PORT") or ""))
if PORT then
  announce { port = PORT, name = os.getenv("MY_NAME"), info = os.getenv("MY_INFO") }
end
registry { ttl = 60 }

local function txt(peer)
  local keys = {}
  for k in pairs(peer.txt) do keys[#keys + 1] = k end
  table.sort(keys)
  for i, k in ipairs(keys) do keys[i] = k .. "=" .. tostring(peer.txt[k]) end
  return table.concat(keys, ";")
end

local function record(kind, peer, extra)
  local r = 0
  for _, p in ipairs(lmdisc.peers{ routable = true }) do if p.name == peer.name then r = r + 1 end end
  local f = assert(io.open(FILE, "a"))
  f:write(table.concat({kind, peer.name, peer.host or "", tostring(peer.port), tostring(peer.info), txt(peer),
                        tostring(peer.routable), "r" .. r, extra or ""}, "|"), "\n")
  f:close()
end

function on_join(peer) record("join", peer) end
function on_update(peer, old, changes) record("update", peer, table.concat(changes, ",")) end
function on_leave(peer, reason) record("leave", peer, reason) end
]]

-- One HTTP request over the agent's Unix socket (or "tcp:HOST:PORT") with
-- http.client; prints {"status", "body", "ctype", "allow"} as one JSON line
-- (status 0 and "error" when no answer came within 5 s; a body that is still
-- streaming after 2 s is what came until then, with "error").
local REQ_TEXT = [[
import http.client, json, socket, sys
where, method, path = sys.argv[1:4]
body = sys.argv[4].encode() if len(sys.argv) > 4 else None

class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("lmdisc", timeout=5)
        self.unix_path = path
    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(self.unix_path)
        self.sock = s

if where.startswith("tcp:"):
    host, port = where[4:].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
else:
    conn = Unix(where)
try:
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body is not None else {})
    r = conn.getresponse()
except Exception as e:
    print(json.dumps({"status": 0, "body": "", "error": repr(e)}))
    sys.exit(0)
out = {"status": r.status, "ctype": r.getheader("Content-Type") or "", "allow": r.getheader("Allow") or ""}
if conn.sock is not None:
    conn.sock.settimeout(2)  # a registration stream does not end: what came in 2 s
data = []
try:
    while True:
        line = r.readline()
        if not line:
            break
        data.append(line)
except Exception as e:
    out["error"] = repr(e)
out["body"] = b"".join(data).decode("utf-8", "replace")
print(json.dumps(out))
]]

-- The original README's "Typical usage" (section 5), imports changed to
-- lmdisc; the elided FastAPI part is a bounded wait for SIGTERM/SIGINT.
local SNIPPET_TEXT = [[
import signal
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # waited for below

# server.py (snippet)

from lmdisc import announce_self
from lmdisc import REGISTRY

# 1. Start your FastAPI server on PORT
PORT = 8000
# ... (elided in the README: here the process only waits, below)

# 2. Broadcast yourself once the port is bound
announce_self(PORT, info="gemma-2b-it Q4_0")

# 3. Anywhere in your app: ask who else is alive
for node in REGISTRY.list_alive():
    print(f"Found peer @ http://{node.host}:{node.port}  ({node.info})")

print("SNIPPET READY", flush=True)
signal.sigtimedwait({signal.SIGTERM, signal.SIGINT}, 60)
]]

-- A server on a host without an agent; argv: NAME [block]. With "block" it
-- waits for SIGTERM/SIGINT with sigtimedwait, which needs them blocked first
-- (a common way for a server to wait for its stop signal).
local FALLBACK_TEXT = [[
import signal, sys, time
block = len(sys.argv) > 2 and sys.argv[2] == "block"
if block:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
import lmdisc

a = lmdisc.announce_self(8000, info="gemma-2b-it Q4_0", name=sys.argv[1])
a.wait_established(15)
print(f"MODE {a.mode} STATE {a.state} NAME {a.name}", flush=True)
if block:
    signal.sigtimedwait({signal.SIGTERM, signal.SIGINT}, 60)
else:
    time.sleep(60)
]]

local suite_setup = setupSuite

function setupSuite()
    suite_setup()
    OBSERVER, REQ = S.tmp .. "/observer.lua", S.tmp .. "/req.py"
    SNIPPET, FALLBACK = S.tmp .. "/server.py", S.tmp .. "/fallback.py"
    write(OBSERVER, OBSERVER_TEXT)
    write(REQ, REQ_TEXT)
    write(SNIPPET, SNIPPET_TEXT)
    write(FALLBACK, FALLBACK_TEXT)
end

-- ---- helpers --------------------------------------------------------------

local function await(p, pattern, timeout, nth) return S:await(p, pattern, timeout, nth) end
local lines, fields = S.lines, S.fields

--- The observer agent on h2 (optionally announcing env.MY_*); its record file.
local function observer(env)
    local rec = S:path("h2.rec")
    env = env or {}
    env.RECORD_FILE = rec
    local p = S:agent("h2", nil, {path = OBSERVER, env = env})
    return rec, p
end

--- The registering agent on h1: api { socket = SOCK } plus `extra` settings.
local function reg_agent(extra)
    return S:agent("h1", ("registry { ttl = 60 }\napi { socket = %q%s }\n%s"):format(SOCK,
        extra and extra.listen and (", listen = %q"):format(extra.listen) or "", extra and extra.text or ""))
end

--- One request on host; the decoded answer {status, body, ctype, allow, json}.
local function req(host, where, method, path, body)
    if type(body) == "table" then body = cjson.encode(body) end
    local cmd = ("%s %s %s %s %s%s"):format(PY, q(REQ), q(where), method, q(path), body and " " .. q(body) or "")
    local ok, out = S.lab:exec(host, cmd)
    lu.assertTrue(ok, cmd .. ": " .. out)
    local okj, r = pcall(cjson.decode, out)
    lu.assertTrue(okj and type(r) == "table", cmd .. ": " .. out)
    r.what = method .. " " .. path .. " -> " .. out
    if r.body ~= "" then
        local okj, doc = pcall(cjson.decode, r.body)
        r.json = okj and doc or nil
    end
    return r
end

local function reg(method, path, body) return req("h1", SOCK, method, path, body) end

--- Assert status and the JSON error message (exact, or a substring with plain = true).
local function refused(r, status, message, plain)
    lu.assertEquals(r.status, status, r.what)
    lu.assertStrContains(r.ctype, "application/json", r.what)
    lu.assertNotNil(r.json, "the error body is not JSON: " .. r.what)
    lu.assertEquals(type(r.json.error), "string", r.what)
    if plain then lu.assertStrContains(r.json.error, message, false, r.what)
    else lu.assertEquals(r.json.error, message, r.what) end
end

--- A registration held open by `curl -N` on h1 (stopped after the test),
--- waited until the agent says it is established.
local function stream(name, body)
    local p = S:bg("h1", ("exec curl -sS -N --max-time 90 --unix-socket %s -X PUT -H 'Content-Type: application/json' "
        .. "--data-binary %s http://lmdisc/v1/services/%s"):format(SOCK, q(cjson.encode(body)), name))
    await(p, '"state":"established"', 15)
    return p
end

local function stream_states(p)
    local out = {}
    for l in p:output():gmatch("[^\n]+") do
        local ok, doc = pcall(cjson.decode, l)
        if ok and type(doc) == "table" then out[#out + 1] = doc end
    end
    return out
end

--- The time (s since midnight, UTC) of the first line of p's log that
--- contains text, from the agent's own timestamp; nil if there is none.
local function log_time(p, text)
    for l in p:output():gmatch("[^\n]+") do
        if l:find(text, 1, true) then
            local h, m, sec = l:match("^%d+%-%d+%-%d+T(%d+):(%d+):([%d%.]+)Z")
            if h then return tonumber(h) * 3600 + tonumber(m) * 60 + tonumber(sec) end
        end
    end
end

local function pid_alive(pid)
    local st = read("/proc/" .. pid .. "/stat")
    return st ~= "" and st:match("%) (%a)") ~= "Z"
end

--- Child processes of pid (all its threads' children).
local function children(pid)
    local kids = {}
    local ok, out = Lab.sh("cat /proc/" .. pid .. "/task/*/children")
    for k in out:gmatch("%d+") do kids[#kids + 1] = tonumber(k) end
    return kids
end

local function python(host, script, env, args)
    local e = {"PYTHONPATH=" .. q(PYTHONPATH), "LMDISC_BIN=" .. q(BIN)}
    for k, v in pairs(env) do e[#e + 1] = k .. "=" .. q(v) end
    table.sort(e)
    return S:bg(host, ("exec env %s %s -u %s %s"):format(table.concat(e, " "), PY, q(script), args or ""))
end

--- Names the observer lists with `lmdisc peers --json` on h2: name -> node.
local function observed_peers()
    local ok, out = S.lab:exec("h2", q(BIN) .. " peers --json")
    lu.assertTrue(ok, "lmdisc peers --json on h2: " .. out)
    local okj, doc = pcall(cjson.decode, out)
    lu.assertTrue(okj, "lmdisc peers --json on h2 printed no JSON: " .. out)
    local by = {}
    for _, n in ipairs(doc) do by[n.name] = n end
    return by, out
end

local function self_services()
    local r = reg("GET", "/v1/self")
    lu.assertEquals(r.status, 200, r.what)
    local by = {}
    for _, s in ipairs(r.json.services or {}) do by[s.name] = s end
    return by, r.body
end

-- Children of a test's processes that may outlive them when a test fails
-- (the lmdisc announce child of a killed Python process): killed by pid.
local strays = {}

TestRegister = {}

function TestRegister:tearDown()
    for _, pid in ipairs(strays) do
        if pid_alive(pid) and read("/proc/" .. pid .. "/cmdline"):find("announce", 1, true) then
            os.execute("kill -KILL " .. math.tointeger(pid) .. " 2>/dev/null")
        end
    end
    strays = {}
    S:stop_all()
end

-- 1. The README snippet next to an agent: registered through the agent, seen
-- on h2 with its info and port, gone within 2 s of kill -9.
function TestRegister:test_1_readme_snippet_registers_through_the_agent_and_dies_with_its_process()
    local obs = S:uniq("obs")
    local rec = observer({MY_PORT = "8001", MY_NAME = obs, MY_INFO = "llama-3 Q8_0"})
    local a1 = reg_agent()
    await(a1, 'join "' .. obs .. '"', 15) -- so that the snippet's list_alive() has a peer to print
    local py = python("h1", SNIPPET, {LMDISC_SOCKET = SOCK})
    await(py, "^SNIPPET READY", 20)
    lu.assertStrContains(py:output(), ("Found peer @ http://%s:8001  (llama-3 Q8_0)\n"):format(S.lab:ip("h2")))
    -- through the agent, not the fallback child
    lu.assertStrContains(a1:output(), 'registered service "h1:8000" on port 8000 (while its client stays connected)')
    lu.assertEquals(#children(py.pid), 0, "the snippet started a child: " .. py:output())
    local j = fields(await(rec, "^join|h1:8000|", 15))
    lu.assertEquals(j[3], "h1.local")
    lu.assertEquals(j[4], "8000")
    lu.assertEquals(j[5], "gemma-2b-it Q4_0")
    lu.assertEquals(j[6], "info=gemma-2b-it Q4_0")
    lu.assertEquals(j[7], "true")

    local t0 = Lab.now()
    py:signal("KILL")
    local l = fields(await(rec, "^leave|h1:8000|", 5))
    local dt = Lab.now() - t0
    print(("    h2 saw h1:8000 leave %.3f s after kill -9 of the Python process"):format(dt))
    lu.assertEquals(l[9], "goodbye")
    -- avahi takes a goodbye a second after it arrives (RFC 6762 10.1) and
    -- h2 holds every goodbye 2 s more to ask the network (a forged one does
    -- nothing: docs/guide/liveness.md): 3.0 s measured, a margin for load
    lu.assertTrue(dt < 3.6, ("h2 saw the leave %.2f s after kill -9 (at most 3.6 s)"):format(dt))
    lu.assertStrContains(a1:output(), 'withdrawing registered service "h1:8000" (its client\'s connection closed)')
    lu.assertEquals(#lines(rec, "join|h1:8000|"), 1, read(rec))
end

-- 2. No agent on h3: the package announces with an `lmdisc announce` child,
-- which dies with the Python process (kill -9), and the service goes.
local function fallback_dies_with_its_process(mode)
    local rec = observer()
    local name = S:uniq("fallback")
    local py = python("h3", FALLBACK, {LMDISC_SOCKET = "/run/lmdisc/nothing-here.sock"}, q(name) .. " " .. mode)
    local line = await(py, "^MODE ", 20)
    lu.assertEquals(line, ("MODE process STATE established NAME %s"):format(name), py:output())
    local kids = children(py.pid)
    lu.assertEquals(#kids, 1, "children of the Python process: " .. table.concat(kids, ","))
    local child = kids[1]
    strays[#strays + 1] = child
    local cmdline = read("/proc/" .. child .. "/cmdline"):gsub("%z", " ")
    lu.assertStrContains(cmdline, " announce 8000 ")

    local j = fields(await(rec, "^join|" .. name .. "|", 15))
    lu.assertEquals(j[3], "h3.local")
    lu.assertEquals(j[4], "8000")
    lu.assertEquals(j[5], "gemma-2b-it Q4_0")
    local browse = "timeout 10 avahi-browse -rpt _lmserv._tcp"
    local ok, out = S.lab:exec("h2", browse)
    lu.assertTrue(ok, out)
    -- avahi-browse resolves each browsed instance to whichever of the
    -- host's addresses its cache holds first: the IPv4 line may carry the
    -- IPv6 address (seen in CI), so either of h3's addresses will do
    local prefix = ("=;eth0;IPv4;%s;_lmserv._tcp;local;h3.local;"):format(name)
    local found = false
    for _, addr in ipairs { S.lab:ip("h3", 4), S.lab:ip("h3", 6) } do
        found = found or out:find(prefix .. addr .. ";8000;", 1, true) ~= nil
    end
    lu.assertTrue(found, ("no %s<h3's address>;8000; in:\n%s"):format(prefix, out))
    lu.assertStrContains(out, '"info=gemma-2b-it Q4_0"')

    py:signal("KILL")
    local deadline = Lab.now() + 5
    while pid_alive(child) and Lab.now() < deadline do Lab.sleep(0.05) end
    local status = read("/proc/" .. child .. "/status")
    lu.assertFalse(pid_alive(child), "the lmdisc announce child outlived the Python process by 5 s:\n" ..
        (status:match("ShdPnd:[^\n]*\n") or "") .. (status:match("SigBlk:[^\n]*\n") or ""))
    local l = fields(await(rec, "^leave|" .. name .. "|", 10))
    lu.assertEquals(l[9], "goodbye") -- the child withdrew (SIGTERM from PR_SET_PDEATHSIG)
    ok, out = S.lab:exec("h2", browse)
    lu.assertNotStrContains(out, ";" .. name .. ";")
end

function TestRegister:test_2_python_without_an_agent_falls_back_to_a_child_bound_to_its_life()
    fallback_dies_with_its_process("sleep")
end

-- The same for a server that blocks SIGTERM/SIGINT to wait for them with
-- sigtimedwait: the child must not inherit a mask that keeps the death
-- signal from it.
function TestRegister:test_2b_fallback_child_dies_also_when_the_server_blocks_sigterm()
    fallback_dies_with_its_process("block")
end

-- 3. Two streams from one host are two peers elsewhere; closing one
-- withdraws exactly that one.
function TestRegister:test_3_two_registrations_from_one_host_are_two_peers()
    local rec = observer()
    reg_agent()
    local n1, n2 = S:uniq("two_a"), S:uniq("two_b")
    local s1 = stream(n1, {port = 9001, info = "first"})
    local s2 = stream(n2, {port = 9002, info = "second"})
    local j1 = fields(await(rec, "^join|" .. n1 .. "|", 15))
    local j2 = fields(await(rec, "^join|" .. n2 .. "|", 15))
    lu.assertEquals({j1[3], j1[4], j1[5]}, {"h1.local", "9001", "first"})
    lu.assertEquals({j2[3], j2[4], j2[5]}, {"h1.local", "9002", "second"})
    local peers, raw = observed_peers()
    lu.assertNotNil(peers[n1], raw)
    lu.assertNotNil(peers[n2], raw)
    lu.assertEquals(peers[n1].port, 9001)
    lu.assertEquals(peers[n2].port, 9002)
    local mine, body = self_services()
    lu.assertEquals(mine[n1] and mine[n1].state, "established", body)
    lu.assertEquals(mine[n2] and mine[n2].state, "established", body)
    lu.assertEquals(mine[n1].port, 9001)
    lu.assertEquals(mine[n2].port, 9002)
    -- one metrics series per service
    local m = reg("GET", "/metrics")
    lu.assertEquals(m.status, 200, m.what)
    for name, port in pairs({[n1] = 9001, [n2] = 9002}) do
        lu.assertStrContains(m.body, ('lmdisc_service_announced{name="%s",port="%d",state="established",'
            .. 'source="registered"} 1\n'):format(name, port), false, m.body)
    end
    lu.assertStrContains(m.body, "lmdisc_services_registered 2\n", false, m.body)
    for _, p in ipairs({s1, s2}) do
        local st = stream_states(p)
        lu.assertEquals(st[1].state, "registering", p:output())
        lu.assertEquals(st[#st].state, "established", p:output())
    end

    s1:signal("TERM") -- its connection closes: that one goes, the other stays
    lu.assertEquals(fields(await(rec, "^leave|" .. n1 .. "|", 10))[9], "goodbye")
    mine, body = self_services()
    lu.assertNil(mine[n1], body)
    lu.assertNotNil(mine[n2], body)
    lu.assertTrue(s2:running(), s2:output())
    lu.assertEquals(#lines(rec, "leave|" .. n2 .. "|"), 0, read(rec))
end

-- 3b. A name another program on h1 already announces through avahi-daemon:
-- the stream says "renamed" with avahi's alternative name (every line of it a
-- JSON document), which is what h2 sees and /v1/self reports; PATCH still
-- finds it by the name it was registered as.
local function renamed_on_collision(n)
    local rec = observer()
    reg_agent()
    S:announce("h1", 9500, n)
    await(rec, "^join|" .. n .. "|", 15)
    local s = stream(n, {port = 9501, info = "latecomer"})
    local alt = n .. " #2"
    for l in s:output():gmatch("[^\n]+") do
        local ok, doc = pcall(cjson.decode, l)
        lu.assertTrue(ok and type(doc) == "table", "a line of the stream is not JSON: " .. l)
    end
    local st = stream_states(s)
    lu.assertEquals(st[1], {state = "registering", name = n}, s:output())
    local renamed
    for _, x in ipairs(st) do if x.state == "renamed" then renamed = x end end
    lu.assertEquals(renamed, {state = "renamed", name = alt}, s:output())
    lu.assertEquals(st[#st], {state = "established", name = alt}, s:output())
    local j = fields(await(rec, "^join|" .. alt .. "|", 15))
    lu.assertEquals({j[3], j[4], j[5]}, {"h1.local", "9501", "latecomer"})
    local mine, body = self_services()
    lu.assertNotNil(mine[alt], body)
    lu.assertEquals(mine[alt].registered_as, n, body)
    local r = reg("PATCH", "/v1/services/" .. n, {txt = {load = "3"}}) -- by the name it was registered as
    lu.assertEquals(r.status, 200, r.what)
    lu.assertEquals(r.json.name, alt)
    await(rec, "^update|" .. alt .. "|.*load=3", 10)
    s:signal("TERM")
    lu.assertEquals(fields(await(rec, "^leave|" .. alt .. "|", 10))[9], "goodbye")
    lu.assertEquals(#lines(rec, "leave|" .. n .. "|"), 0, "the other program's service stays:\n" .. read(rec))
end

function TestRegister:test_3b_a_name_collision_is_renamed_on_the_stream()
    renamed_on_collision(S:uniq("taken"))
end

-- The same with a long name (59 bytes; 62 with " #2"): the stream's lines
-- are not cut short.
function TestRegister:test_3c_a_long_name_collision_is_renamed_on_the_stream()
    renamed_on_collision(S:uniq(("long"):rep(14)))
end

-- 4. PATCH changes the TXT live (on_update elsewhere); DELETE withdraws and
-- ends the stream.
function TestRegister:test_4_patch_is_an_update_elsewhere_and_delete_withdraws()
    local rec = observer()
    reg_agent()
    local n = S:uniq("patched")
    local s = stream(n, {port = 9101, info = "patch me", txt = {load = "1", old = "x"}})
    local j = fields(await(rec, "^join|" .. n .. "|", 15))
    lu.assertEquals(j[6], "info=patch me;load=1;old=x")

    local r = reg("PATCH", "/v1/services/" .. n, {txt = {load = "2", old = cjson.null, flag = true}, info = "patched"})
    lu.assertEquals(r.status, 200, r.what)
    lu.assertEquals(r.json.name, n)
    lu.assertEquals(r.json.txt, {info = "patched", load = "2", flag = true})
    local u = fields(await(rec, "^update|" .. n .. "|.*load=2", 15))
    lu.assertEquals(u[5], "patched")
    lu.assertEquals(u[6], "flag=true;info=patched;load=2")
    lu.assertStrContains(u[9], "txt")
    lu.assertEquals(#lines(rec, "leave|" .. n .. "|"), 0, "a TXT update is not a re-registration:\n" .. read(rec))

    r = reg("DELETE", "/v1/services/" .. n)
    lu.assertEquals(r.status, 200, r.what)
    lu.assertEquals(r.json, {name = n, state = "withdrawn"})
    lu.assertEquals(s:wait(5), 0, "the stream ends after DELETE:\n" .. s:output())
    local st = stream_states(s)
    lu.assertEquals(st[#st].state, "withdrawn", s:output())
    lu.assertEquals(fields(await(rec, "^leave|" .. n .. "|", 10))[9], "goodbye")
    refused(reg("DELETE", "/v1/services/" .. n), 404, ('no registered service named "%s"'):format(n))
end

-- 5. ?ttl=2: withdrawn about 2 s after the PUT without a pass; a pass every
-- second keeps it.
function TestRegister:test_5_ttl_registration_lives_only_while_passed()
    local rec = observer()
    local a1 = reg_agent()
    local gone = S:uniq("ttl_gone")
    local t0 = Lab.now()
    local r = reg("PUT", "/v1/services/" .. gone .. "?ttl=2", {port = 9201, info = "ttl"})
    lu.assertEquals(r.status, 201, r.what)
    lu.assertEquals(r.json.name, gone)
    lu.assertEquals(r.json.port, 9201)
    lu.assertEquals(r.json.ttl, 2)
    await(rec, "^join|" .. gone .. "|", 15)
    await(a1, 'withdrawing registered service "' .. gone .. '" %(its ttl passed without a pass%)', 8)
    lu.assertTrue(Lab.now() - t0 < 4, "the ttl=2 registration was withdrawn late")
    local ttl = log_time(a1, ('withdrawing registered service "%s"'):format(gone)) -
                log_time(a1, ('registered service "%s" on port 9201 (with a ttl)'):format(gone))
    print(("    ttl=2 without a pass: withdrawn %.3f s after it was registered (agent log)"):format(ttl))
    lu.assertTrue(ttl >= 1.8 and ttl < 2.5, ("withdrawn %.3f s after the PUT with ttl=2"):format(ttl))
    lu.assertEquals(fields(await(rec, "^leave|" .. gone .. "|", 5))[9], "goodbye")
    refused(reg("PUT", "/v1/services/" .. gone .. "/pass"), 404, ('no registered service named "%s"'):format(gone))

    local kept = S:uniq("ttl_kept")
    r = reg("PUT", "/v1/services/" .. kept .. "?ttl=2", {port = 9202, info = "ttl"})
    local start = Lab.now()
    lu.assertEquals(r.status, 201, r.what)
    for i = 1, 5 do -- five seconds of passes, one a second: more than twice the ttl
        Lab.sleep(math.max(0, start + i - Lab.now()))
        r = reg("PUT", "/v1/services/" .. kept .. "/pass")
        lu.assertEquals(r.status, 200, ("pass #%d, %.2f s after the PUT: %s"):format(i, Lab.now() - start, r.what))
        lu.assertEquals(r.json.name, kept)
    end
    await(rec, "^join|" .. kept .. "|", 1) -- it joined meanwhile
    lu.assertEquals(#lines(rec, "leave|" .. kept .. "|"), 0, read(rec))
    lu.assertNotNil(self_services()[kept])
    lu.assertNil(a1:output():find('withdrawing registered service "' .. kept .. '"', 1, true), a1:output())
    -- and when the passes stop, it goes
    await(a1, 'withdrawing registered service "' .. kept .. '" %(its ttl passed without a pass%)', 4)
    await(rec, "^leave|" .. kept .. "|", 5)
    -- a pass is for ttl registrations only
    local n = S:uniq("streamed")
    stream(n, {port = 9203})
    refused(reg("PUT", "/v1/services/" .. n .. "/pass"), 400,
        ('"%s" lives as long as its connection; it has no ttl to pass'):format(n))
end

-- 6. Drain: status=draining on the configured and the registered service,
-- not routable on h2 (JSON, Lua, ?routable=1), withdrawn after the grace.
function TestRegister:test_6_drain_marks_services_unroutable_then_withdraws_them()
    local rec = observer()
    local steady = S:uniq("steady")
    S:announce("h3", 9300, steady, "--txt model=control")
    local conf = S:uniq("configured")
    local a1 = reg_agent({text = ("announce { port = 8100, name = %q, info = \"configured\" }\n"):format(conf)})
    local regd = S:uniq("registered")
    local s = stream(regd, {port = 9301, info = "registered"})
    for _, n in ipairs({conf, regd, steady}) do
        local j = fields(await(rec, "^join|" .. n .. "|", 15))
        lu.assertEquals(j[7], "true")
        lu.assertEquals(j[8], "r1")
    end
    local m = reg("GET", "/metrics")
    lu.assertStrContains(m.body, ('lmdisc_service_announced{name="%s",port="8100",state="established",'
        .. 'source="config"} 1\n'):format(conf), false, m.body)
    lu.assertStrContains(m.body, ('lmdisc_service_announced{name="%s",port="9301",state="established",'
        .. 'source="registered"} 1\n'):format(regd), false, m.body)

    local t0 = Lab.now()
    local ok, out = S.lab:exec("h1", ("%s drain --grace 3 --socket %s"):format(q(BIN), SOCK))
    lu.assertTrue(ok, out)
    lu.assertStrContains(out, "draining")
    for _, n in ipairs({conf, regd}) do
        local u = fields(await(rec, "^update|" .. n .. "|.*status=draining", 10))
        lu.assertEquals(u[7], "false", "peer.routable in on_update")
        lu.assertEquals(u[8], "r0", "lmdisc.peers{routable = true} leaves it out")
    end
    local peers, raw = observed_peers()
    lu.assertEquals(peers[conf] and peers[conf].routable, false, raw)
    lu.assertEquals(peers[regd] and peers[regd].routable, false, raw)
    lu.assertEquals(peers[steady] and peers[steady].routable, true, raw)
    lu.assertEquals(peers[regd].txt.status, "draining")
    local r = req("h2", OBS_SOCK, "GET", "/v1/peers?routable=1")
    lu.assertEquals(r.status, 200, r.what)
    local names = {}
    for _, n in ipairs(r.json) do names[n.name] = true end
    lu.assertNil(names[conf], r.body)
    lu.assertNil(names[regd], r.body)
    lu.assertTrue(names[steady], r.body)
    -- no new registrations while draining
    refused(reg("PUT", "/v1/services/" .. S:uniq("late") .. "?ttl=5", {port = 9302}), 503,
        "this host is draining: it takes no new services")

    for _, n in ipairs({conf, regd}) do
        lu.assertEquals(fields(await(rec, "^leave|" .. n .. "|", 10))[9], "goodbye")
    end
    local dt = Lab.now() - t0
    local grace = log_time(a1, "drain: grace period over") - log_time(a1, "drain: announcing status=draining")
    print(("    drain --grace 3: withdrawn after %.3f s (agent log); h2 saw both leave %.3f s after the drain")
        :format(grace, dt))
    lu.assertTrue(grace >= 2.8 and grace < 3.5, ("the grace was %.3f s"):format(grace))
    lu.assertTrue(dt >= 2.9 and dt < 7, ("h2 saw them leave %.2f s after the drain with a 3 s grace"):format(dt))
    lu.assertEquals(s:wait(5), 0, s:output())
    local st = stream_states(s)
    lu.assertEquals(st[#st].state, "withdrawn", s:output())
    lu.assertEquals(st[#st].reason, "drained", s:output())
    lu.assertEquals(#lines(rec, "leave|" .. steady .. "|"), 0, read(rec))
end

-- 6b. A drain is undone with `lmdisc drain --cancel` (DELETE /v1/self/drain):
-- during its grace the services are routable again with the status they had
-- (no leave, and no withdrawal when the grace would have ended); after it,
-- the configured service is announced again and registrations are taken.
function TestRegister:test_6b_drain_cancel_during_and_after_the_grace()
    local rec = observer()
    local conf = S:uniq("configured")
    local a1 = reg_agent({text = ("announce { port = 8110, name = %q, txt = { status = \"warming\" } }\n"):format(conf)})
    local regd = S:uniq("registered")
    local s = stream(regd, {port = 9311, info = "registered"})
    for _, n in ipairs({conf, regd}) do await(rec, "^join|" .. n .. "|", 15) end
    local function drain(args)
        local ok, out = S.lab:exec("h1", ("%s drain %s --socket %s"):format(q(BIN), args, SOCK))
        lu.assertTrue(ok, out)
        return out
    end
    -- nothing to cancel: said, not an error
    lu.assertStrContains(drain("--cancel"), "not draining: nothing to cancel")

    -- during the grace: long enough that the cancel falls inside it on a
    -- busy machine (the updates awaited first took more than 3 s there)
    local GRACE = 8
    local t_drain = Lab.now()
    drain("--grace " .. GRACE)
    for _, n in ipairs({conf, regd}) do await(rec, "^update|" .. n .. "|.*status=draining", 10) end
    local t0 = Lab.now()
    lu.assertStrContains(drain("--cancel"), "drain cancelled: announcing again")
    local u = fields(await(rec, "^update|" .. conf .. "|.*status=warming", 10))
    lu.assertEquals(u[7], "true", "routable again")
    lu.assertEquals(u[8], "r1")
    -- the update that takes status= away (another update, an address or a
    -- re-check, may come between the drain's and this one)
    u = fields(await(rec, "^update|" .. regd .. "|[^|]*|[^|]*|[^|]*|info=registered|", 10))
    lu.assertEquals(u[6], "info=registered", "the registered one's status= is gone again")
    lu.assertEquals(u[7], "true")
    print(("    drain --cancel during the grace: h2 saw both routable again %.3f s later"):format(Lab.now() - t0))
    lu.assertEquals(reg("GET", "/v1/self").json.state, "established")
    lu.assertTrue(Lab.now() - t_drain < GRACE, "the cancel came after the grace; the test proves nothing")
    -- registrations are taken again; this one's ttl ends after the grace
    -- would have: by then nothing else was withdrawn
    local short = S:uniq("short")
    local r = reg("PUT", "/v1/services/" .. short .. "?ttl=" .. (GRACE + 1), {port = 9312})
    lu.assertEquals(r.status, 201, r.what)
    await(a1, 'withdrawing registered service "' .. short .. '" %(its ttl passed without a pass%)', GRACE + 8)
    lu.assertTrue(Lab.now() - t_drain > GRACE, "the ttl ended after the grace would have")
    lu.assertNil(a1:output():find("grace period over", 1, true), a1:output())
    lu.assertEquals(#lines(rec, "leave|" .. conf .. "|") + #lines(rec, "leave|" .. regd .. "|"), 0, read(rec))
    lu.assertTrue(s:running(), s:output())

    -- after the grace: withdrawn, then announced again
    drain("--grace 0.5")
    lu.assertEquals(fields(await(rec, "^leave|" .. conf .. "|", 10))[9], "goodbye")
    await(rec, "^leave|" .. regd .. "|", 10)
    lu.assertEquals(reg("GET", "/v1/self").json.state, "drained")
    t0 = Lab.now()
    lu.assertStrContains(drain("--cancel"), "drain cancelled: announcing again")
    local j = fields(await(rec, "^join|" .. conf .. "|", 15, 2))
    print(("    drain --cancel after the grace: h2 saw the configured service join again %.3f s later")
        :format(Lab.now() - t0))
    lu.assertEquals(j[6], "status=warming")
    lu.assertEquals(j[7], "true")
    r = reg("PUT", "/v1/services/" .. regd .. "?ttl=5", {port = 9311})
    lu.assertEquals(r.status, 201, r.what)
    await(rec, "^join|" .. regd .. "|", 15, 2)
    r = reg("DELETE", "/v1/self/drain")
    lu.assertEquals(r.status, 200, r.what)
    lu.assertEquals(r.json, {cancelled = false, state = "not draining"})
end

-- 7. Every refused input: status, JSON error message; the agent keeps serving.
function TestRegister:test_7_bad_registrations_are_refused_and_the_agent_keeps_serving()
    local a1 = reg_agent()
    local PORT = "port must be an integer from 1 to 65535"
    for _, body in ipairs({'{"port": 0}', '{"port": 65536}', '{"port": "8000"}', '{"port": 80.5}', '{"info": "x"}'}) do
        refused(reg("PUT", "/v1/services/badport", body), 400, PORT)
    end
    local long = ("n"):rep(64)
    refused(reg("PUT", "/v1/services/" .. long, {port = 8000}), 400, "the service name must be 1 to 63 bytes", true)
    local r = reg("PUT", "/v1/services/" .. long:sub(2) .. "?ttl=5", {port = 8000}) -- 63 bytes: fine
    lu.assertEquals(r.status, 201, r.what)
    lu.assertEquals(reg("DELETE", "/v1/services/" .. long:sub(2)).status, 200)
    local big = {}
    for i = 1, 6 do big["k" .. i] = ("v"):rep(250) end -- 6 items of 253 bytes: over 1300
    refused(reg("PUT", "/v1/services/bigtxt", {port = 8000, txt = big}), 400, "at most 1300 fit in one mDNS packet", true)
    refused(reg("PUT", "/v1/services/infotxt", {port = 8000, txt = {info = "x"}}), 400,
        'give info as "info", not inside "txt"')

    -- a name already registered, while the first stream is open
    local dup = S:uniq("dup")
    local s = stream(dup, {port = 9401})
    refused(reg("PUT", "/v1/services/" .. dup, {port = 9402}), 409, "is already announced by this agent", true)
    refused(reg("PUT", "/v1/services/" .. dup .. "?ttl=5", {port = 9402}), 409, "is already announced by this agent", true)
    s:signal("TERM") -- the name is free again once that connection closed
    await(a1, 'withdrawing registered service "' .. dup .. '" %(its client\'s connection closed%)', 5)
    r = reg("PUT", "/v1/services/" .. dup .. "?ttl=5", {port = 9402})
    lu.assertEquals(r.status, 201, r.what)
    lu.assertEquals(reg("DELETE", "/v1/services/" .. dup).status, 200)

    -- wrong methods
    r = reg("POST", "/v1/services/x", {port = 8000})
    refused(r, 405, "use PUT, PATCH or DELETE on /v1/services/NAME")
    lu.assertEquals(r.allow, "PUT, PATCH, DELETE")
    r = reg("PUT", "/v1/self/drain", {grace = 1})
    refused(r, 405, "use POST /v1/self/drain (DELETE cancels a drain)")
    lu.assertEquals(r.allow, "POST, DELETE")
    r = reg("DELETE", "/v1/services/x/pass")
    refused(r, 405, "use PUT /v1/services/NAME/pass")
    lu.assertEquals(r.allow, "PUT")

    -- still serving, and still registering
    lu.assertTrue(a1:running(), a1:output())
    r = reg("GET", "/v1/health")
    lu.assertEquals(r.status, 200, r.what)
    local ok_name = S:uniq("after")
    r = reg("PUT", "/v1/services/" .. ok_name .. "?ttl=5", {port = 9403})
    lu.assertEquals(r.status, 201, r.what)
    local mine, body = self_services()
    lu.assertNotNil(mine[ok_name], body)
end

-- 7b. The TCP listener serves reads, never registrations (403).
function TestRegister:test_7b_tcp_listener_refuses_registrations()
    local a1 = reg_agent({listen = TCP})
    local tcp = "tcp:" .. TCP
    local r = req("h1", tcp, "GET", "/v1/health")
    lu.assertEquals(r.status, 200, r.what)
    local FORBIDDEN = "registrations are taken on the agent's Unix socket only"
    refused(req("h1", tcp, "PUT", "/v1/services/overtcp", {port = 8000}), 403, FORBIDDEN)
    refused(req("h1", tcp, "PUT", "/v1/services/overtcp2?ttl=5", {port = 8000}), 403, FORBIDDEN)
    refused(req("h1", tcp, "POST", "/v1/self/drain", {grace = 1}), 403, FORBIDDEN)
    refused(req("h1", tcp, "DELETE", "/v1/self/drain"), 403, FORBIDDEN)
    lu.assertNil(a1:output():find('registered service "overtcp', 1, true), "registered over TCP:\n" .. a1:output())
    lu.assertEquals(reg("GET", "/v1/self").json.state, "observing", "drained over TCP")
end

-- 8. A GET on a registration path is a wrong method (405 with Allow), not an
-- unknown path: README "Other methods get 405, unknown paths 404".
function TestRegister:test_8_get_on_registration_paths_is_405()
    reg_agent()
    local r = reg("GET", "/v1/self/drain")
    refused(r, 405, "use POST /v1/self/drain (DELETE cancels a drain)")
    lu.assertEquals(r.allow, "POST, DELETE")
    r = reg("GET", "/v1/services/x")
    lu.assertEquals(r.status, 405, r.what)
    lu.assertStrContains(r.allow, "PUT", r.what)
end

-- 9. Registrations that hold no connection (?ttl) are bounded too: 64 at
-- once, then 429, and a withdrawn one frees its place.
function TestRegister:test_9_ttl_registrations_are_capped()
    local a1 = reg_agent()
    local base = S:uniq("many")
    for i = 1, 64 do
        local r = reg("PUT", ("/v1/services/%s_%d?ttl=120"):format(base, i), {port = 10000 + i})
        lu.assertEquals(r.status, 201, r.what)
    end
    local r = reg("PUT", "/v1/services/" .. base .. "_65?ttl=120", {port = 10065})
    refused(r, 429, "this agent announces 64 registered services already, the most it takes; withdraw some first")
    lu.assertEquals(reg("DELETE", "/v1/services/" .. base .. "_1").status, 200)
    r = reg("PUT", "/v1/services/" .. base .. "_65?ttl=120", {port = 10065})
    lu.assertEquals(r.status, 201, r.what)
    lu.assertTrue(a1:running(), a1:output())
end

os.exit(lu.LuaUnit.run())