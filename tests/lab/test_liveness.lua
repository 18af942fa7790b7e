-- Liveness on lab hosts: the local server's health check withdraws and
-- restores the announcement; a host that dies without a goodbye leaves the
-- registry within seconds with peer checks, and within the record TTL
-- without; 50 peers joining at once are probed with bounded concurrency;
-- discover answers at once from a running agent.
local lu = require "luaunit"
local cjson = require "cjson"

local S = require("suite").new(3)
local q, BIN = S.q, S.BIN

local function now()
    local f = io.popen("date +%s.%N")
    local t = tonumber(f:read("l"))
    f:close()
    return t
end

-- a stand-in for the LM server: accepts TCP connections on port
-- on both families: a peer may join with the address of the instance that
-- resolved first (IPv6 or IPv4), and the check probes what the peer has
local function server(host, port)
    return S:bg(host, ("exec socat TCP6-LISTEN:%d,ipv6only=0,fork,reuseaddr,backlog=128 EXEC:true"):format(port))
end

local OBSERVER = [[
registry { ttl = 60 }
%s
function on_join(p) lmdisc.log.info("HOOK join %%s %%s", p.name, tostring(p.txt.status)) end
function on_update(p, old, ch) lmdisc.log.info("HOOK update %%s %%s", p.name, tostring(p.txt.status)) end
function on_leave(p, r) lmdisc.log.info("HOOK leave %%s %%s", p.name, r) end
]]

-- Wait for a line in p's log and return the wall time it was logged at
-- (the agent stamps every line; hosts share the machine's clock).
local function logged_at(p, pattern, timeout)
    local line, err = S.lab:wait_log(p, pattern, timeout or 15)
    lu.assertNotNil(line, tostring(err) .. "\n" .. p:output())
    local y, mo, d, h, mi, s = line:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):([%d.]+)Z")
    local t = os.time({year = y, month = mo, day = d, hour = h, min = mi, sec = 0, isdst = false})
    -- os.time takes local time; the log is UTC: correct by the offset
    local off = os.time(os.date("*t", 0)) - os.time(os.date("!*t", 0))
    return t + tonumber(s) + off, line
end

TestLiveness = {}

function TestLiveness:tearDown() S:stop_all() end

function TestLiveness:test_local_server_down_withdraws_up_reannounces()
    local name = S:uniq("srv")
    local srv = server("h1", 8000)
    S:agent("h1", ([[
announce { port = 8000, name = %q, info = "srv" }
health { tcp = 8000, interval = 0.5, failures = 2 }
]]):format(name))
    local obs = S:agent("h2", OBSERVER:format(""))
    logged_at(obs, "HOOK join " .. name)
    local t0 = now()
    srv:signal("TERM")
    local t1 = logged_at(obs, "HOOK leave " .. name .. " goodbye")
    -- 2 failed checks 0.5 s apart, then avahi's goodbye (1 s): about 2 s;
    -- the bound only tells it from the TTL (tests/bench measures it)
    lu.assertTrue(t1 - t0 < 6, ("withdrawn after %.2f s"):format(t1 - t0))
    server("h1", 8000)
    logged_at(obs, "HOOK join " .. name, 10) -- the second one
    lu.assertNotNil(S.lab:wait_log(obs, "HOOK join " .. name, 10, 2), obs:output())
end

function TestLiveness:test_a_check_tries_every_address_before_it_fails()
    -- the server listens on IPv6 only: the check's first choice (IPv4) is
    -- refused, the IPv6 address answers, and the peer stays healthy
    local name = S:uniq("six")
    S:bg("h3", "exec socat TCP6-LISTEN:8006,ipv6only=1,fork,reuseaddr EXEC:true")
    S:agent("h3", ('announce { port = 8006, name = %q }\n'):format(name))
    local obs = S:agent("h2", OBSERVER:format(
        "checks { tcp = true, interval = 0.3, timeout = 0.5, failures = 1 }"))
    logged_at(obs, "HOOK join " .. name)
    local function probes()
        local _, m = S.lab:exec("h2", "curl -s --max-time 5 --unix-socket /run/lmdisc/agent.sock http://x/metrics")
        return tonumber(m:match("\nlmdisc_checks_total (%S+)")) or 0, m
    end
    local n, m = 0, ""
    for _ = 1, 40 do -- 0.3 s apart: 5 rounds in about 1.5 s; 10 s at most
        n, m = probes()
        if n >= 10 then break end
        require("lab").sleep(0.25)
    end
    lu.assertTrue(n >= 10, "the peer was not probed 5 times: " .. m)
    lu.assertNil(obs:output():find("HOOK leave " .. name, 1, true), obs:output())
    lu.assertNil(obs:output():find("failed 1 check", 1, true), obs:output())
end

function TestLiveness:test_status_mode_keeps_announcing_with_status_down()
    local name = S:uniq("stat")
    local srv = server("h1", 8001)
    S:agent("h1", ([[
announce { port = 8001, name = %q }
health { tcp = 8001, interval = 0.5, failures = 2, on_fail = "status" }
]]):format(name))
    local obs = S:agent("h2", OBSERVER:format(""))
    lu.assertNotNil(S.lab:wait_log(obs, "HOOK join " .. name .. " up", 10), obs:output())
    srv:signal("TERM")
    lu.assertNotNil(S.lab:wait_log(obs, "HOOK update " .. name .. " down", 10), obs:output())
    server("h1", 8001)
    lu.assertNotNil(S.lab:wait_log(obs, "HOOK update " .. name .. " up", 10), obs:output())
    lu.assertNil(obs:output():find("HOOK leave " .. name, 1, true))
end

function TestLiveness:test_crash_detected_within_seconds_with_checks()
    local name = S:uniq("crash")
    server("h3", 8002)
    S:agent("h3", ('announce { port = 8002, name = %q }\n'):format(name))
    local obs = S:agent("h2", OBSERVER:format("checks { tcp = true }"))
    logged_at(obs, "HOOK join " .. name)
    local t0 = now()
    S.lab:crash("h3")
    local t1 = logged_at(obs, "HOOK leave " .. name .. " unhealthy", 15)
    -- default checks: 1 s interval, 1 s timeout, 2 failures: 2-4.2 s after
    -- the cut; the bound tells it from the 30 s TTL, tests/bench measures it
    lu.assertTrue(t1 - t0 < 8, ("crash noticed after %.2f s"):format(t1 - t0))
    S.lab:boot("h3")
end

function TestLiveness:test_crash_detected_within_ttl_without_checks()
    local name = S:uniq("ttl")
    S:agent("h3", ('announce { port = 8003, name = %q }\nregistry { ttl = 5 }\n'):format(name))
    local obs = S:agent("h2", OBSERVER:format(""))
    -- avahi-browse on the third host, which runs no lmdisc, drops it too
    local browse = S:bg("h1", "exec avahi-browse -p _lmserv._tcp")
    logged_at(obs, "HOOK join " .. name)
    lu.assertNotNil(S.lab:wait_log(browse, "^%+;.*;" .. name .. ";", 10))
    local t0 = now()
    S.lab:crash("h3")
    local t1 = logged_at(obs, "HOOK leave " .. name, 20)
    lu.assertTrue(t1 - t0 < 5 + 4, ("gone after %.2f s with a 5 s ttl"):format(t1 - t0))
    lu.assertNotNil(S.lab:wait_log(browse, "^%-;.*;" .. name .. ";", 5), browse:output())
    S.lab:boot("h3")
end

function TestLiveness:test_fifty_peers_joining_at_once_are_probed_with_bounded_concurrency()
    -- 50 services on h2 share one port with a server behind it: all healthy
    server("h2", 9000)
    local obs = S:agent("h1", OBSERVER:format(
        "checks { tcp = true, concurrency = 4, timeout = 0.5, interval = 1, failures = 1 }"))
    for i = 1, 50 do
        S:bg("h2", ("%s announce 9000 x --name %s"):format(q(BIN), S:uniq("b")))
    end
    lu.assertNotNil(S.lab:wait_log(obs, "HOOK join b_", 30, 50), obs:output())
    -- healthy, all of them: no check failed once every peer was probed
    local function checks_total()
        local _, m = S.lab:exec("h1", "curl -s --max-time 5 --unix-socket /run/lmdisc/agent.sock http://x/metrics")
        return tonumber(m:match("\nlmdisc_checks_total (%S+)")) or 0, m
    end
    local probed, m = 0, ""
    for _ = 1, 60 do -- a probe of a healthy peer takes milliseconds; 15 s at most
        probed, m = checks_total()
        if probed >= 50 then break end
        require("lab").sleep(0.25)
    end
    lu.assertTrue(probed >= 50, "not every peer was probed yet: " .. m)
    lu.assertNil(obs:output():find("peer \"b_[^\"]*\" failed 1 check"), obs:output())
    -- cut h2 off: every probe now hangs until its timeout, so only the cap
    -- on probes in flight keeps them from piling up; each peer's next probe
    -- fails, and with failures = 1 that is one line per peer
    S.lab:cut("h2")
    local ok, err = S.lab:wait_log(obs, "peer \"b_.*failed 1 check", 30, 50)
    local _, out = S.lab:exec("h1", "curl -s --unix-socket /run/lmdisc/agent.sock http://x/metrics")
    S.lab:heal("h2")
    lu.assertNotNil(ok, tostring(err) .. "\n" .. obs:output())
    local peak = tonumber(out:match("\nlmdisc_checks_in_flight_peak (%S+)"))
    local total = tonumber(out:match("\nlmdisc_checks_total (%S+)"))
    lu.assertNotNil(peak, out)
    -- the cap was reached (50 probes were due while 4 hung) and held
    lu.assertEquals(peak, 4, "probes in flight peaked at " .. peak)
    lu.assertTrue(total >= 50, "every peer was probed: " .. total)
end

function TestLiveness:test_discover_answers_at_once_from_a_running_agent()
    local name = S:uniq("disc")
    S:bg("h2", ("%s announce 8004 x --name %s"):format(q(BIN), name))
    local me = S:uniq("self")
    -- our own service enters the registry when its announcement comes back
    -- through the browser, a moment after 'announced'; with include_self
    -- the policy sees that join, and the test waits for it
    local a = S:agent("h1", ('announce { port = 8005, name = %q }\n'):format(me) ..
        'registry { include_self = true }\n' ..
        'function on_join(p) lmdisc.log.info("HOOK join %s", p.name) end\n')
    lu.assertNotNil(S.lab:wait_log(a, "initial scan done", 10))
    lu.assertNotNil(S.lab:wait_log(a, "HOOK join " .. me, 10), a:output())
    lu.assertNotNil(S.lab:wait_log(a, "HOOK join " .. name, 10), a:output())
    local _, out = S.lab:exec("h1", q(BIN) .. " discover --json")
    local doc = cjson.decode(out)
    local found, self = false, false
    for _, n in ipairs(doc.nodes) do
        found = found or n.name == name
        self = self or n.self
    end
    lu.assertEquals(doc.source, "agent")
    -- answered from the registry, not after a 1 s network scan (tests/bench
    -- measures the time: 16 ms for 50 services)
    lu.assertTrue(doc.elapsed < 0.5, "took " .. doc.elapsed .. " s")
    lu.assertTrue(found, out)
    lu.assertTrue(self, "our own service is listed too, as a network scan lists it")
    _, out = S.lab:exec("h1", q(BIN) .. " discover --json --no-agent")
    lu.assertEquals(cjson.decode(out).source, "network")
end

os.exit(lu.LuaUnit.run())
