-- The second team's attacks on the publishing thread's guarantees (issue:
-- publishing off the loop; own services recognised by name + type + LOCAL).
-- h1 runs the agent under test; h2 a real peer; h3 a hostile host that
-- sends raw mDNS (tests/lab/attacks.py, only inside the lab).
local lu = require "luaunit"
local cjson = require "cjson"
local churn = require "churn"

local S = require("suite").new(3)
local ATTACKS = os.getenv("LMDISC_SRC") .. "/tests/lab/attacks.py"
local q, BIN, read = S.q, S.BIN, S.read
local SANITIZED = (os.getenv("LMD_PRELOAD") or "") ~= ""

local function await(p, pattern, timeout, nth) return S:await(p, pattern, timeout, nth) end

local keys -- one fleet; h1 and h2 certified by it for any name

local function trust(host)
    return ("trust { key = %q, cert = %q, fleet = { %q }, require = true }\n"):format(keys .. "/" .. host .. ".key",
        keys .. "/" .. host .. ".cert", keys .. "/fleet.pub")
end

local function api(sock, path)
    local _, out = S.lab:exec("h1", "curl -s --max-time 5 --unix-socket " .. q(sock) .. " http://lmdisc" .. path)
    return out
end

TestAttackPublish = {}

function TestAttackPublish:setUp() keys = keys or S:fleet_keys { "h1", "h2" } end
function TestAttackPublish:tearDown() S:stop_all() end

-- A forger (h3) announces the agent's own service name, from its own host
-- and port, over and over.  "Own" is name + type + LOCAL: while h1's
-- avahi-daemon still holds our records, the forged PTR is the same record
-- as ours (LOCAL); taken for our own, the forger would be exempt from
-- trust { require } (our own counts as trusted) and listed as self.  The
-- forged instance (port 9999, info=EVIL, at evilhost) is never listed;
-- our own service is listed as self, at the end, under whatever name
-- avahi left it.
local function forged_own(srv_host, with_trust)
    local sock, me = S:path("h1.sock"), S:uniq("me")
    local a1 = S:agent("h1", (with_trust and trust("h1") or "") .. ("announce { port = 8001, name = %q }\n"):format(me) ..
        ("api { socket = %q }\nregistry { include_self = true }\n"):format(sock), { env = { LOGLEVEL = "DEBUG" } })
    await(a1, 'join "' .. me .. '"')
    local snapshots = S:watch_peers("h1", sock, 60)
    local c = S:bg("h3", ("/usr/bin/python3 %s chimera %s %s 9999 EVIL 40 0.25 %s %s"):format(q(ATTACKS), q(me),
        srv_host, S.lab:ip("h3", 4), S.lab:ip("h3", 6)))
    await(c, "^chimera 40", 30)
    -- the attack landed: the forger won the conflict, and avahi renamed us
    await(a1, 'now announcing as "' .. me .. ' #2"', 10)
    local snaps = snapshots()
    lu.assertTrue(#snaps >= 40)
    for _, snap in ipairs(snaps) do
        for _, p in ipairs(snap.doc) do
            if p.name:sub(1, #me) ~= me then goto next end -- (another test's)
            if with_trust then
                lu.assertNotEquals(p.port, 9999, "the forger is listed:\n" .. snap.line .. "\n" ..
                    S.tail(a1:output(), 6000))
            end
            -- without trust it may be listed (nothing tells it from a
            -- peer), never as our own
            if p.port == 9999 or p.host == "evilhost.local" then
                lu.assertFalse(p.self, "the forger is listed as our own:\n" .. snap.line)
            end
            if with_trust then lu.assertNotEquals(p.info, "EVIL", snap.line) end
            ::next::
        end
    end
    -- our own, still listed as self with its port
    local found
    for _ = 1, 50 do
        local ok, doc = pcall(cjson.decode, api(sock, "/v1/peers"))
        if ok then
            for _, p in ipairs(doc) do
                if p.self and p.port == 8001 and p.name:sub(1, #me) == me then found = p end
            end
        end
        if found then break end
        S.lab.sleep(0.2)
    end
    lu.assertNotNil(found, api(sock, "/v1/peers") .. "\n" .. S.tail(a1:output(), 6000))
end

function TestAttackPublish:test_a_forger_of_our_own_name_is_never_taken_for_our_own()
    forged_own("evilhost.local.", true)
end

function TestAttackPublish:test_without_trust_a_forger_of_our_own_name_is_never_listed_as_our_own()
    forged_own("evilhost.local.", false)
end

-- A burst of registrations, TXT changes and withdrawals through the API
-- (no pause between calls), with avahi-daemon stopped (SIGSTOP) for the
-- middle third when `pause` is set: what the network holds at the end
-- (avahi-browse on h2) is exactly the model's (the names registered last,
-- each with its last TXT), and what the agent lists as its services too.
local function burst(pause)
    local sock = S:path("h1.sock")
    local a1 = S:agent("h1", ("api { socket = %q }\n"):format(sock))
    await(a1, "initial scan done", 10)
    local tag = S:uniq("b")
    local ops, model = churn.ops(q, sock, tag, 6, 150, 7)
    local function run_ops(from, to)
        local script = S:path("ops.sh")
        S.write(script, table.concat(ops, "\n", from, to) .. "\n")
        local ok, out = S.lab:exec("h1", "sh " .. q(script))
        lu.assertTrue(ok, out)
        for code, what in out:gmatch("(%d+) ([^\n]*)") do
            lu.assertTrue(code:match("^2") ~= nil, ("%s: %s\n%s"):format(what, code, out))
        end
    end
    if pause then
        run_ops(1, 50)
        S.lab:avahi_pause("h1")
        run_ops(51, 100)
        S.lab:avahi_resume("h1")
        run_ops(101, #ops)
    else
        run_ops(1, #ops)
    end
    local want = {}
    for n, v in pairs(model) do want[#want + 1] = n .. " v=" .. v end
    table.sort(want)
    local function seen()
        local _, out = S.lab:exec("h2", "timeout 10 avahi-browse -rptk _lmserv._tcp 2>/dev/null")
        local got = {}
        for name, txt in out:gmatch("\n?=;[^;]*;IPv4;([^;]*);_lmserv%._tcp;local;[^;]*;[^;]*;%d+;([^\n]*)") do
            if name:sub(1, #tag) == tag then got[#got + 1] = name .. " " .. txt:gsub('"', "") end
        end
        table.sort(got)
        return table.concat(got, "\n"), out
    end
    local wanted, got, raw = table.concat(want, "\n")
    for _ = 1, 30 do
        got, raw = seen()
        if got == wanted then break end
        S.lab.sleep(0.5)
    end
    lu.assertEquals(got, wanted, raw .. "\n" .. S.tail(a1:output(), 4000))
    -- and the agent lists the model's services, no more
    local _, self_out = S.lab:exec("h1", "curl -s --max-time 5 --unix-socket " .. q(sock) .. " http://lmdisc/v1/self")
    local doc = cjson.decode(self_out)
    local listed = {}
    for _, sv in ipairs(doc.services or {}) do
        if sv.name:sub(1, #tag) == tag then listed[#listed + 1] = sv.name end
    end
    table.sort(listed)
    local names_want = {}
    for n in pairs(model) do names_want[#names_want + 1] = n end
    table.sort(names_want)
    lu.assertEquals(listed, names_want, self_out)
    lu.assertNil(a1:output():find("watchdog", 1, true), S.tail(a1:output()))
end

function TestAttackPublish:test_a_burst_of_registrations_leaves_the_network_as_the_model()
    burst(false)
end

function TestAttackPublish:test_a_burst_with_the_daemon_stopped_midway_leaves_the_network_as_the_model()
    burst(true)
end

local function lit(s) return (s:gsub("%p", "%%%0")) end

local function browse_h2(tag)
    local _, out = S.lab:exec("h2", "timeout 10 avahi-browse -rptk _lmserv._tcp 2>/dev/null")
    local got = {}
    for name in out:gmatch("\n?=;[^;]*;IPv4;([^;]*);_lmserv") do
        if name:sub(1, #tag) == tag then got[name] = true end
    end
    return got, out
end

-- The agent is stopped while its publishing thread waits in a D-Bus call
-- to a stopped avahi-daemon (SIGSTOP), with requests queued behind it: a
-- registration, its TXT change, a reload (SIGHUP) that changes the
-- announcement's TXT.  SIGTERM ends it with 0 within its bound (the thread
-- is left to its call; nothing freed under it: the sanitizer build checks),
-- and once the daemon goes on, nothing of ours stays on the network.
function TestAttackPublish:test_a_stop_while_publishing_waits_on_a_stopped_daemon_ends_in_time()
    local sock, tag = S:path("h1.sock"), S:uniq("w")
    local cfg = S:path("agent.lua")
    local text = ("watchdog { timeout = 2 }\napi { socket = %q }\nannounce { port = 8001, name = %q, info = %%q }\n")
        :format(sock, tag .. "-me")
    S.write(cfg, text:format("one"))
    local a1 = S:agent("h1", nil, { path = cfg })
    await(a1, 'announced "' .. lit(tag) .. '%-me"', 10)
    lu.assertTrue(browse_h2(tag)[tag .. "-me"], "announced but not seen from h2")
    S.lab:avahi_pause("h1")
    local resumed = false
    local ok, err = pcall(function()
        local reg = S:bg("h1", ("exec curl -sS -N --max-time 60 --unix-socket %s -X PUT -H 'Content-Type: " ..
            "application/json' --data-binary '{\"port\": 8500}' http://lmdisc/v1/services/%s"):format(q(sock),
            tag .. "-reg"))
        await(a1, 'registered service "' .. lit(tag) .. '%-reg"', 5)
        local _, out = S.lab:exec("h1", ("curl -s -o /dev/null -w '%%{http_code}' --max-time 3 --unix-socket %s " ..
            "-X PATCH -H 'Content-Type: application/json' --data-binary '{\"txt\": {\"v\": \"2\"}}' " ..
            "http://lmdisc/v1/services/%s"):format(q(sock), tag .. "-reg"))
        lu.assertEquals(out, "200", "PATCH while the daemon is stopped")
        S.write(cfg, text:format("two"))
        a1:signal("HUP")
        await(a1, "reload", 5)
        local t0 = S.lab.now()
        a1:signal("TERM")
        local code, why = a1:wait(5)
        local took = S.lab.now() - t0
        lu.assertEquals(code, 0, tostring(why) .. "\n" .. S.tail(a1:output()))
        -- the publisher's wait (0.25 s) and the rest of the stop, with room
        -- for the sanitizer build and a loaded machine; the daemon's D-Bus
        -- timeout is 25 s
        lu.assertTrue(took < 3, ("the stop took %.2f s:\n%s"):format(took, S.tail(a1:output())))
        lu.assertNil(a1:output():find("watchdog", 1, true), S.tail(a1:output()))
        reg:wait(5)
    end)
    S.lab:avahi_resume("h1")
    resumed = true
    lu.assertTrue(ok, tostring(err))
    -- nothing of ours stays once the daemon goes on (the process is gone:
    -- its connections closed, the daemon withdraws what they held)
    local left, raw
    for _ = 1, 20 do
        left, raw = browse_h2(tag)
        if next(left) == nil then break end
        S.lab.sleep(0.5)
    end
    lu.assertNil(next(left), raw)
    lu.assertTrue(resumed)
end

-- avahi-daemon killed (SIGKILL, no goodbyes, no D-Bus replies) while
-- registrations and TXT changes are on their way, and started again: the
-- publishing thread makes a new client and every service is on the
-- network again with its last TXT.
function TestAttackPublish:test_a_daemon_killed_mid_publish_and_restarted_gets_every_service_back()
    local sock, tag = S:path("h1.sock"), S:uniq("k")
    local a1 = S:agent("h1", ("api { socket = %q }\n"):format(sock))
    await(a1, "initial scan done", 10)
    local state = os.getenv("LMD_LAB_STATE") or "/run/lmdisc-lab"
    local pidfile = ("%s/%s/h1.avahi.pid"):format(state, S.lab.id)
    local cmds = {}
    for i = 1, 5 do
        cmds[#cmds + 1] = ("curl -s -o /dev/null --max-time 10 --unix-socket %s -X PUT -H 'Content-Type: " ..
            "application/json' --data-binary '{\"port\": %d, \"txt\": {\"v\": \"1\"}}' " ..
            "'http://lmdisc/v1/services/%s-%d?ttl=300'"):format(q(sock), 8600 + i, tag, i)
    end
    for i = 1, 5 do
        cmds[#cmds + 1] = ("curl -s -o /dev/null --max-time 10 --unix-socket %s -X PATCH -H 'Content-Type: " ..
            "application/json' --data-binary '{\"txt\": {\"v\": \"2\"}}' http://lmdisc/v1/services/%s-%d"):format(
            q(sock), tag, i)
        if i == 2 then cmds[#cmds + 1] = "kill -KILL $(cat " .. q(pidfile) .. ")" end
    end
    local script = S:path("kill.sh")
    S.write(script, table.concat(cmds, "\n") .. "\n")
    local ok, out = S.lab:exec("h1", "sh " .. q(script))
    lu.assertTrue(ok, out)
    S.lab:avahi_start("h1")
    local want = {}
    for i = 1, 5 do want[#want + 1] = ("%s-%d v=2"):format(tag, i) end
    local got, raw
    for _ = 1, 40 do
        local _, o = S.lab:exec("h2", "timeout 10 avahi-browse -rptk _lmserv._tcp 2>/dev/null")
        raw = o
        local t = {}
        for name, txt in o:gmatch("\n?=;[^;]*;IPv4;([^;]*);_lmserv%._tcp;local;[^;]*;[^;]*;%d+;([^\n]*)") do
            if name:sub(1, #tag) == tag then t[#t + 1] = name .. " " .. txt:gsub('"', "") end
        end
        table.sort(t)
        got = t
        if table.concat(t, "\n") == table.concat(want, "\n") then break end
        S.lab.sleep(0.5)
    end
    lu.assertEquals(got, want, raw .. "\n" .. S.tail(a1:output(), 4000))
    lu.assertTrue(a1:running())
end

-- Memory over many registrations: 300 cycles (register, change the TXT,
-- withdraw) to warm up, then 1,500 more; the agent's resident memory grows
-- by less than 256 kB over those (requests queued for the publishing
-- thread faster than avahi-daemon takes them grew it by 700 kB),
-- and the daemon holds none of them at the end.
function TestAttackPublish:test_many_registrations_leave_no_memory_behind()
    local sock, tag = S:path("h1.sock"), S:uniq("m")
    local a1 = S:agent("h1", ("api { socket = %q }\n"):format(sock))
    await(a1, "initial scan done", 10)
    local tool = os.getenv("LMDISC_SRC") .. "/tests/lab/tools/reg_cycles.py"
    local function cycles(n)
        local ok, out = S.lab:exec("h1", ("timeout 300 python3 %s %s %s %d"):format(q(tool), q(sock), tag, n))
        lu.assertTrue(ok, out)
        lu.assertStrContains(out, ("cycles %d errors 0"):format(n))
    end
    local function rss()
        local st = read("/proc/" .. a1.pid .. "/status")
        return tonumber(st:match("VmRSS:%s*(%d+)"))
    end
    cycles(300)
    local before = rss()
    cycles(1500)
    local after = rss()
    print(("    resident memory over 1,500 registrations: %d -> %d kB"):format(before, after))
    -- (under ASan freed memory waits in its quarantine: the bound is the
    -- plain build's; LeakSanitizer checks the sanitizer build at exit)
    lu.assertTrue(SANITIZED or after - before < 256, ("resident memory grew by %d kB over 1,500 registrations (%d -> %d)"):format(
        after - before, before, after))
    local left
    for _ = 1, 20 do
        left = browse_h2(tag)
        if next(left) == nil then break end
        S.lab.sleep(0.5)
    end
    lu.assertNil(next(left), "still on the network")
    lu.assertTrue(a1:running())
end

-- Reloads (SIGHUP) in a burst while the announcement is being published,
-- each with another name and TXT: at the end the last name alone is on
-- the network, with the last TXT, and the agent lists it as its own (with
-- include_self); none of the names before it stays, on the network or in
-- /v1/peers.
function TestAttackPublish:test_reloads_in_a_burst_leave_only_the_last_announcement()
    local sock, tag = S:path("h1.sock"), S:uniq("r")
    local cfg = S:path("agent.lua")
    local function conf(i)
        S.write(cfg, ("api { socket = %q }\nregistry { include_self = true }\n" ..
            "announce { port = %d, name = %q, info = %q }\n"):format(sock, 8100 + i, ("%s-%d"):format(tag, i),
            "i" .. i))
    end
    conf(0)
    local a1 = S:agent("h1", nil, { path = cfg })
    for i = 1, 6 do
        conf(i)
        a1:signal("HUP")
        await(a1, "reloaded", 5, i)
    end
    local last = ("%s-6"):format(tag)
    local got, raw
    for _ = 1, 40 do
        local _, out = S.lab:exec("h2", "timeout 10 avahi-browse -rptk _lmserv._tcp 2>/dev/null")
        raw = out
        got = {}
        for name, port, txt in out:gmatch("\n?=;[^;]*;IPv4;([^;]*);_lmserv%._tcp;local;[^;]*;[^;]*;(%d+);([^\n]*)") do
            if name:sub(1, #tag) == tag then got[#got + 1] = ("%s %s %s"):format(name, port, txt) end
        end
        if #got == 1 and got[1]:find(last .. " 8106", 1, true) == 1 then break end
        S.lab.sleep(0.5)
    end
    lu.assertEquals(#got, 1, raw)
    lu.assertStrContains(got[1], last .. ' 8106 "info=i6"')
    local listed
    for _ = 1, 20 do
        local _, out = S.lab:exec("h1", "curl -s --max-time 5 --unix-socket " .. q(sock) .. " http://lmdisc/v1/peers")
        listed = {}
        for _, p in ipairs(cjson.decode(out)) do
            if p.name:sub(1, #tag) == tag then listed[#listed + 1] = ("%s %d %s"):format(p.name, p.port, tostring(p.self)) end
        end
        if #listed == 1 and listed[1] == last .. " 8106 true" then break end
        S.lab.sleep(0.5)
    end
    lu.assertEquals(listed, { last .. " 8106 true" })
end

os.exit(lu.LuaUnit.run())
