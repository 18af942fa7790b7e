-- The seed's Python server stays discoverable whatever its host's agent does.
--
-- h1 runs an agent (default socket) and the seed's "Typical Usage" snippet,
-- verbatim: its `lmserv.discovery` imports reach lmdisc through the
-- migration shim python/examples/lmserv/. After the snippet the process
-- asks REGISTRY.list_alive() twice a second (the application's own use of
-- it) until SIGTERM. h2 watches with avahi-browse (no lmdisc there) whose
-- lines are time-stamped, announces a peer for the registry to list, and
-- scans with `lmdisc discover`.
--
-- The agent is restarted, then stopped for good: the server must stay
-- discoverable from h2 throughout, except for at most 2 s around each
-- change; it falls back to its `lmdisc announce` child while the agent is
-- gone and moves back to the agent within a second of the agent starting;
-- list_alive() never raises.
local lu = require "luaunit"
local cjson = require "cjson"
local Lab = require "lab"

local S = require("suite").new(2)
local q, BIN, read, write = S.q, S.BIN, S.read, S.write
local SRC = os.getenv("LMDISC_SRC") or "."
-- Debian's interpreter (the product's target; a version manager's shim would
-- stand between the harness and the process it signals)
local PY = "python3"
do
    local f = io.open("/usr/bin/python3")
    if f then f:close(); PY = "/usr/bin/python3" end
end
local PYTHONPATH = SRC .. "/python/examples:" .. SRC .. "/python"
local NAME = "h1:8000" -- the snippet's default instance name on h1
local BROWSED = "h1\\0588000" -- as avahi-browse -p writes it
local LIMIT = 2.0      -- seconds a change may hide the server from h2

-- The original README's section 5, verbatim between the markers. Before it
-- only the signal mask a server waiting for SIGTERM sets; after it, the
-- FastAPI server's place: list_alive() twice a second until SIGTERM (at most
-- 5 minutes), one line per change of what it returns or per exception.
local SNIPPET = [[
import signal
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})

# ---- the seed's snippet, verbatim ----
# server.py (snippet)

from lmserv.discovery import announce_self
from lmserv.discovery.registry import REGISTRY

# 1. Start your FastAPI server on PORT
PORT = 8000
...

# 2. Broadcast yourself once the port is bound
announce_self(PORT, info="gemma-2b-it Q4_0")

# 3. Anywhere in your app: ask who else is alive
for node in REGISTRY.list_alive():
    print(f"Found peer @ http://{node.host}:{node.port}  ({node.info})")
# ---- end of the snippet ----

print("SNIPPET READY", flush=True)
last, calls, errors = None, 0, 0
for _ in range(600):
    if signal.sigtimedwait({signal.SIGTERM, signal.SIGINT}, 0.5) is not None:
        break
    calls += 1
    try:
        now = sorted(f"{n.host}:{n.port}" for n in REGISTRY.list_alive())
    except Exception as e:
        errors += 1
        print(f"LIST ERROR {e!r}", flush=True)
        continue
    if now != last:
        print(f"LIST {' '.join(now) or '-'}", flush=True)
        last = now
print(f"LISTED calls={calls} errors={errors} last={' '.join(last or []) or '-'}", flush=True)
]]

-- Runs a command and prints its output lines prefixed with the time of
-- /proc/uptime (CLOCK_BOOTTIME, the clock Lab.now() reads); TERM ends both.
local STAMP = [[
import signal, subprocess, sys, time
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
signal.signal(signal.SIGTERM, lambda *a: (p.terminate(), sys.exit(0)))
for line in p.stdout:
    print("%.3f %s" % (time.clock_gettime(time.CLOCK_BOOTTIME), line.decode("utf-8", "replace").rstrip()), flush=True)
]]

local snippet_file, stamp_file

local suite_setup = setupSuite
function setupSuite()
    suite_setup()
    snippet_file, stamp_file = S.tmp .. "/server.py", S.tmp .. "/stamp.py"
    write(snippet_file, SNIPPET)
    write(stamp_file, STAMP)
end

local function await(p, pattern, timeout, nth) return S:await(p, pattern, timeout, nth) end

--- The agent's own timestamp of the first line of p's log containing text
--- (seconds since midnight UTC), or nil.
local function log_time(p, text)
    for l in p:output():gmatch("[^\n]+") do
        if l:find(text, 1, true) then
            local h, m, sec = l:match("^%d+%-%d+%-%d+T(%d+):(%d+):([%d%.]+)Z")
            if h then return tonumber(h) * 3600 + tonumber(m) * 60 + tonumber(sec) end
        end
    end
end

local function children(pid)
    local kids = {}
    local _, out = Lab.sh("cat /proc/" .. pid .. "/task/*/children")
    for k in out:gmatch("%d+") do kids[#kids + 1] = tonumber(k) end
    return kids
end

--- The command lines of pid's `lmdisc announce` children.
local function announcers(pid)
    local out = {}
    for _, k in ipairs(children(pid)) do
        local cmdline = read("/proc/" .. k .. "/cmdline"):gsub("%z", " ")
        if cmdline:find(" announce ", 1, true) then out[#out + 1] = cmdline end
    end
    return out
end

local function agent() return S:agent("h1", "registry { ttl = 60 }\n") end

--- Stop an agent with SIGTERM and wait for its exit.
local function stop(p)
    lu.assertTrue(p:signal("TERM"))
    lu.assertEquals(p:wait(10), 0, p:output())
end

--- h2 finds NAME with `lmdisc discover --json` (a network scan: no agent on
--- h2), on port 8000 with the snippet's info.
local function discovered_from_h2(when)
    local ok, out = S.lab:exec("h2", q(BIN) .. " discover --json --timeout 5")
    lu.assertTrue(ok, out)
    local doc = cjson.decode(out)
    for _, n in ipairs(doc.nodes) do
        if n.name == NAME then
            lu.assertEquals(n.port, 8000, out)
            lu.assertEquals(n.info, "gemma-2b-it Q4_0", out)
            lu.assertEquals(n.host, "h1.local", out)
            return
        end
    end
    lu.fail(("%s: h2 does not discover %s:\n%s"):format(when, NAME, out))
end

--- The stretches of time in which h2's avahi-browse listed no instance of
--- NAME (on any interface and protocol) after it first listed one, up to
--- time `till`: a list of {from, to}.
local function absences(browse, till)
    local present, seen, out, since = {}, false, {}, nil
    for t, line in browse:output():gmatch("([%d%.]+) ([^\n]*)") do
        t = tonumber(t)
        if t > till then break end
        local f = {}
        for field in (line .. ";"):gmatch("(.-);") do f[#f + 1] = field end
        if (f[1] == "+" or f[1] == "-") and f[4] == BROWSED then
            local key = f[2] .. ";" .. f[3]
            local before = next(present) ~= nil
            present[key] = f[1] == "+" or nil
            local after = next(present) ~= nil
            if after then seen = true end
            if seen and before and not after then since = t end
            if seen and not before and after and since then
                out[#out + 1] = {since, t}
                since = nil
            end
        end
    end
    if since then out[#out + 1] = {since, till} end
    return out, seen
end

TestPythonFailover = {}

function TestPythonFailover:tearDown() S:stop_all() end

function TestPythonFailover:test_the_seed_snippet_stays_discoverable_while_the_agent_restarts_and_stops()
    local browse = S:bg("h2", ("exec %s -u %s avahi-browse -p -k _lmserv._tcp"):format(PY, q(stamp_file)))
    local peer = S:announce("h2", 9000, "peer") -- for the registry to list
    local a1 = agent()
    local py = S:bg("h1", ("exec env PYTHONPATH=%s LMDISC_BIN=%s LOGLEVEL=INFO %s -u %s"):format(
        q(PYTHONPATH), q(BIN), PY, q(snippet_file)))
    await(py, "^SNIPPET READY", 20)
    await(a1, 'registered service "' .. NAME .. '"', 10)
    await(py, "announced through the lmdisc agent", 10)
    lu.assertEquals(#children(py.pid), 0, "a child next to a running agent: " .. py:output())
    await(browse, "^[%d.]+ %+;[^;]*;[^;]*;" .. BROWSED .. ";", 15)
    await(py, "^LIST " .. S.lab:ip("h2") .. ":9000$", 15)
    discovered_from_h2("with the agent")
    local changes = {}

    -- 1. the agent restarts at once (systemctl restart), 2. it restarts after
    -- an outage long enough for the package's child to take over
    local a2
    for round, outage in ipairs({"none", "until the child announces"}) do
        changes[#changes + 1] = Lab.now()
        stop(a1)
        await(py, "lost the lmdisc agent", 5, round)
        if outage ~= "none" then
            await(py, "announced by an lmdisc announce child", 10)
            discovered_from_h2("while the agent is away")
        end
        changes[#changes + 1] = Lab.now()
        a2 = agent()
        await(a2, 'registered service "' .. NAME .. '"', 5)
        local started = log_time(a2, "agent started")
        local registered = log_time(a2, 'registered service "' .. NAME .. '"')
        lu.assertNotNil(started, a2:output())
        print(("    restart %d (outage: %s): registered with the new agent %.3f s after it started"):format(
            round, outage, registered - started))
        lu.assertTrue(registered - started < 1.0,
            ("registered %.2f s after the agent started (at most 1 s)"):format(registered - started))
        await(py, "is registered with it again", 5, round)
        await(a2, 'announced registered service "' .. NAME .. '"', 10)
        await(py, "announced through the lmdisc agent", 10, round + 1)
        lu.assertEquals(#announcers(py.pid), 0, "the child outlived the agent's return: " .. py:output())
        discovered_from_h2("after the agent restarted")
        a1 = a2
    end

    -- 2. the agent stops for good: the package's own child announces
    changes[#changes + 1] = Lab.now()
    stop(a2)
    await(py, "announced by an lmdisc announce child", 10, 2)
    local kids = announcers(py.pid) -- (the registry's rescans run `lmdisc discover` children too)
    lu.assertEquals(#kids, 1, "lmdisc announce children of the server: " .. table.concat(kids, " | "))
    lu.assertStrContains(kids[1], " announce 8000 gemma-2b-it Q4_0 --ttl 30")
    discovered_from_h2("with the agent stopped")
    discovered_from_h2("still, a scan later")

    -- the server stops: what h2 saw until then is the record
    local till = Lab.now()
    lu.assertTrue(py:signal("TERM"))
    lu.assertEquals(py:wait(10), 0, py:output())
    -- list_alive() never raised, and lists the peer at the end (from its rescans)
    local listed = py:output():match("LISTED ([^\n]*)")
    lu.assertNotNil(listed, py:output())
    print("    list_alive(): " .. listed .. "; what it returned: "
        .. table.concat(S.lines(py.log, "LIST "), ", "))
    lu.assertNotStrContains(py:output(), "LIST ERROR")
    lu.assertStrContains(listed, " errors=0 last=" .. S.lab:ip("h2") .. ":9000")

    local gaps, seen = absences(browse, till)
    lu.assertTrue(seen, browse:output())
    local desc = {}
    for _, g in ipairs(gaps) do desc[#desc + 1] = ("%.3f s from %.3f"):format(g[2] - g[1], g[1]) end
    local when = {}
    for i, c in ipairs(changes) do when[i] = ("%.3f"):format(c) end
    print("    h2 lost sight of the server: " .. (#gaps > 0 and table.concat(desc, ", ") or "never")
        .. "; changes at " .. table.concat(when, ", "))
    lu.assertTrue(#gaps <= #changes, "more absences than changes: " .. table.concat(desc, ", ") .. "\n" .. browse:output())
    for _, g in ipairs(gaps) do
        lu.assertTrue(g[2] - g[1] <= LIMIT, ("h2 did not see %s for %.2f s (at most %g s): %s\n%s"):format(
            NAME, g[2] - g[1], LIMIT, table.concat(desc, ", "), browse:output()))
        local near = false
        for _, c in ipairs(changes) do near = near or (g[1] >= c - 0.2 and g[1] <= c + LIMIT) end
        lu.assertTrue(near, ("an absence at %.3f is near no change (%s)"):format(g[1], table.concat(changes, ", ")))
    end
    peer:signal("TERM")
end

os.exit(lu.LuaUnit.run())
