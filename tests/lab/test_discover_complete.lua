-- Cold one-shot discovery returns when the network has answered (the
-- answers to its first query are due, nothing new for a quiet period,
-- every instance resolved: lmd_browse_settle_early), not at avahi's ~1 s
-- ALL_FOR_NOW timer.  Speed must never buy a missing peer: all of 50
-- services, found by every run, with a cold cache (the scanning host's
-- avahi-daemon restarted right before) and a warm one (the query then
-- carries known answers: more than fit one packet, so responders wait
-- 400-500 ms, RFC 6762 section 7.2).  The speed itself is a bench row
-- (tests/bench: one-shot, 50 services).  Whole means its port and an
-- address: a service whole over one protocol is not awaited over the other
-- (its other address is merged if it comes while the scan runs; how many
-- came with both is printed).
local lu = require "luaunit"
local cjson = require "cjson"

local S = require("suite").new(3)
local q, BIN = S.q, S.BIN
local SRC = os.getenv("LMDISC_SRC") or "."
local BULK = SRC .. "/tests/bench/avahi_dbus.py"
local RUNS = 5

local function bulk(host, count, prefix, port)
    local p = S:bg(host, ("cd %s && exec /usr/bin/python3 avahi_dbus.py bulk --count %d --prefix %s --port-base %d")
        :format(q(SRC .. "/tests/bench"), count, q(prefix), port))
    S:await(p, "^established ", 60)
    return p
end

local function scan(host)
    local ok, out, code = S.lab:exec(host, q(BIN) .. " discover --json --no-agent --timeout 10 2>/dev/null")
    lu.assertEquals(code, 0, out)
    local okj, doc = pcall(cjson.decode, out)
    lu.assertTrue(okj, "invalid JSON: " .. out)
    return doc
end

TestDiscoverComplete = {}

function TestDiscoverComplete:tearDown()
    S:stop_all()
    S.lab:exec("h1", "tc qdisc del dev eth0 clsact 2>/dev/null; ip link del lmdsink 2>/dev/null; true")
end

function TestDiscoverComplete:test_every_one_of_50_services_cold_and_warm()
    assert(io.open(BULK), "missing " .. BULK):close()
    local a, b = S:uniq("ca"), S:uniq("cb")
    bulk("h1", 25, a, 9000)
    bulk("h2", 25, b, 9100)
    local want = {}
    for i = 1, 25 do
        want[("%s-%04d"):format(a, i)] = 9000 + i - 1
        want[("%s-%04d"):format(b, i)] = 9100 + i - 1
    end
    local times = {}
    for _, mode in ipairs({"cold", "warm"}) do
        for run = 1, RUNS do
            if mode == "cold" then S.lab:avahi_restart("h3") end
            local doc = scan("h3")
            local got, missing = {}, {}
            for _, n in ipairs(doc.nodes) do got[n.name] = n end
            local both = 0
            for name, port in pairs(want) do
                local n = got[name]
                if not n or n.port ~= port or #n.addresses < 1 then missing[#missing + 1] = name end
                if n and #n.addresses == 2 then both = both + 1 end
            end
            table.sort(missing)
            local ctx = ("%s run %d (%.3f s): %d of 50 whole, missing or partial: %s"):format(mode, run,
                doc.elapsed, 50 - #missing, table.concat(missing, " "))
            lu.assertTrue(doc.complete, ctx)
            lu.assertEquals(#missing, 0, ctx)
            times[#times + 1] = ("%s %.3f (%d with both addresses)"):format(mode, doc.elapsed, both)
        end
    end
    print("\nelapsed: " .. table.concat(times, ", "))
end

-- A responder silent over one protocol (under load one has been seen not to
-- answer over IPv6 for seconds, to the query, its re-queries and avahi's
-- resolvers alike): h1's 25 services are whole over IPv4 and listed with
-- their IPv4 address, never awaited over IPv6 nor handed to avahi's
-- resolvers.  h1's IPv6 packets go to a veth whose peer is down (tc
-- redirect: this kernel has no drop action); h2's 25 come over both.
-- Before, a scan awaited the other protocol up to its 2 s bound (2.03 s
-- here), and one of four 500-service bench runs took 10.5 s through
-- avahi's resolvers; now it ends as when all answer (0.25-0.35 s quiet);
-- the bound is generous, for load, and below the old 2 s.
function TestDiscoverComplete:test_a_responder_silent_over_ipv6()
    local a, b = S:uniq("v4only"), S:uniq("dual")
    bulk("h1", 25, a, 9200)
    bulk("h2", 25, b, 9300)
    S.lab:check("h1", "ip link add lmdsink type veth peer name lmdsink1 && ip link set lmdsink up"
        .. " && tc qdisc add dev eth0 clsact"
        .. " && tc filter add dev eth0 egress protocol ipv6 u32 match u32 0 0 action mirred egress redirect dev lmdsink")
    local v6 = S.lab:ip("h1", 6)
    local ok = S.lab:exec("h2", "ping -6 -c 1 -W 1 " .. v6 .. " >/dev/null")
    lu.assertFalse(ok, "h1 still answers over IPv6")
    local want = {}
    for i = 1, 25 do
        want[("%s-%04d"):format(a, i)] = 9200 + i - 1
        want[("%s-%04d"):format(b, i)] = 9300 + i - 1
    end
    local times = {}
    for run = 1, RUNS do
        S.lab:avahi_restart("h3")
        local doc = scan("h3")
        local got, missing = {}, {}
        for _, n in ipairs(doc.nodes) do got[n.name] = n end
        for name, port in pairs(want) do
            local n = got[name]
            if not n or n.port ~= port or #n.addresses < 1 then missing[#missing + 1] = name end
            if n and name:sub(1, #a) == a then
                for _, ad in ipairs(n.addresses) do
                    lu.assertEquals(ad.family, 4, "h1 has no IPv6 on the wire: " .. cjson.encode(n))
                end
            end
        end
        table.sort(missing)
        local ctx = ("run %d (%.3f s): %d of 50 whole, missing or partial: %s"):format(run, doc.elapsed,
            50 - #missing, table.concat(missing, " "))
        lu.assertTrue(doc.complete, ctx)
        lu.assertEquals(#missing, 0, ctx)
        lu.assertTrue(doc.elapsed < 1.5, ctx)
        times[#times + 1] = ("%.3f"):format(doc.elapsed)
    end
    print("\nelapsed, h1 silent over IPv6: " .. table.concat(times, ", "))
end

-- A responder whose first answers are lost (tests/lab/lossy_responder.py on
-- h1, no avahi-daemon answering for it): its PTR answers carry no
-- additional records, and a question naming one of its 25 instances (SRV,
-- TXT or ANY) goes unanswered the first two times it is asked over a
-- protocol.  Both sources know the instances by their PTRs at once; none
-- is whole from the answers.  Before, they went to avahi's resolvers at
-- the quiet point, whose queries are repeated after 1 s, then 2 s more:
-- answered at the third, 3.3 s or more into the scan.  Now the scan also
-- asks for them by name itself (mdns_ask.c: at the quiet point, then every
-- 0.5 s, three times at most) and does not wait for avahi's resolvers:
-- answered at the third ask, about 1.3 s in.  So: every one whole, asked
-- for (at least three asks), well under the old time.
function TestDiscoverComplete:test_a_responder_whose_first_answers_are_lost()
    local RESP = SRC .. "/tests/lab/lossy_responder.py"
    assert(io.open(RESP), "missing " .. RESP):close()
    local a = S:uniq("lossy")
    local want = {}
    for i = 1, 25 do want[("%s-%04d"):format(a, i)] = 9400 + i - 1 end
    local times = {}
    for run = 1, 3 do
        local r = S:bg("h1", ("/usr/bin/python3 %s %s 25 9400 %s %s 2 30"):format(q(RESP), q(a),
            S.lab:ip("h1", 4), S.lab:ip("h1", 6)))
        S:await(r, "^ready", 30)
        S.lab:avahi_restart("h3")
        local log = S:path("lossy.log")
        local ok, out, code = S.lab:exec("h3", ("LOGLEVEL=debug %s discover --json --no-agent --timeout 10 2>%s")
            :format(q(BIN), q(log)))
        lu.assertEquals(code, 0, out)
        local okj, doc = pcall(cjson.decode, out)
        lu.assertTrue(okj, "invalid JSON: " .. out)
        local notes = {}
        for _, l in ipairs(S.lines(log)) do
            if l:find("own mDNS query", 1, true) or l:find("released at", 1, true) then notes[#notes + 1] = l end
        end
        local got, missing = {}, {}
        for _, n in ipairs(doc.nodes) do got[n.name] = n end
        for name, port in pairs(want) do
            local n = got[name]
            if not n or n.port ~= port or #n.addresses < 1 then missing[#missing + 1] = name end
        end
        table.sort(missing)
        local ctx = ("run %d (%.3f s): %d of 25 whole, missing or partial: %s\n%s"):format(run, doc.elapsed,
            25 - #missing, table.concat(missing, " "), table.concat(notes, "\n"))
        lu.assertTrue(doc.complete, ctx)
        lu.assertEquals(#missing, 0, ctx)
        local asks = table.concat(notes, "\n"):match("(%d+) asks by name")
        lu.assertTrue(tonumber(asks or 0) >= 3, "asked by name " .. tostring(asks) .. " times: " .. ctx)
        -- the old path: 3.3 s or more; ours about 1.3-1.6 s; the bound leaves room for load
        lu.assertTrue(doc.elapsed < 2.5, ctx)
        times[#times + 1] = ("%.3f"):format(doc.elapsed)
        S:stop_all()
    end
    print("\nelapsed, first two answers to each named question lost: " .. table.concat(times, ", "))
end

-- The scan reads the answers to its own query: what a host on the LAN sends
-- while it waits is believed only inside what was asked (tests/lab/attacks.py
-- outside: an instance in another domain, one two labels deep, another
-- type's).  None of them is listed (avahi's browser reports the first, in
-- domain "example", and resolves it: dropped too); the real service is,
-- whole; the scan ends complete, well inside its timeout.  (The packets also
-- carry PREFIX-ghost, whose SRV target is outside .local: our query's reader
-- refuses it, but avahi resolves it from its cache, as avahi-browse lists
-- it; it is no more than any forged service named inside the type, which
-- is what trust is for.)
function TestDiscoverComplete:test_what_is_outside_the_query_is_not_believed()
    local ATTACKS = SRC .. "/tests/lab/attacks.py"
    local real = S:uniq("real")
    S:announce("h1", 8444, real)
    local pre = S:uniq("out")
    local a = S:bg("h2", ("/usr/bin/python3 %s outside %s 40 0.05 %s %s"):format(q(ATTACKS), q(pre),
        S.lab:ip("h2", 4), S.lab:ip("h2", 6)))
    S.lab:avahi_restart("h3")
    local doc = scan("h3")
    S:await(a, "^outside ", 30)
    local names = {}
    for _, n in ipairs(doc.nodes) do
        names[#names + 1] = n.name
        for _, bad in ipairs({"-evil", "-a", "-b", "-x"}) do
            lu.assertNotEquals(n.name, pre .. bad, "listed from outside the query: " .. cjson.encode(n))
        end
        lu.assertEquals(n.domain, "local", cjson.encode(n))
    end
    local found
    for _, n in ipairs(doc.nodes) do if n.name == real then found = n end end
    lu.assertNotNil(found, "the real service is missing: " .. table.concat(names, " "))
    lu.assertEquals(found.port, 8444)
    lu.assertEquals(#found.addresses, 2, cjson.encode(found))
    lu.assertTrue(doc.complete)
    lu.assertTrue(doc.elapsed < 5, "took " .. doc.elapsed .. " s")
end

-- With no multicast interface (eth0's multicast off) the scan's own query
-- has no socket: it says why and runs through avahi alone, which has no
-- interface either: nothing found, and no crash (this path read the socket
-- set after freeing it: the sanitizer pass would stop here)
function TestDiscoverComplete:test_without_a_multicast_interface_the_scan_says_why()
    S.lab:check("h3", "ip link set dev eth0 multicast off")
    local ok, out, code = pcall(function()
        return select(2, S.lab:exec("h3", "LOGLEVEL=DEBUG " .. q(BIN) .. " discover --json --no-agent --timeout 2 2>&1"))
    end)
    S.lab:check("h3", "ip link set dev eth0 multicast on")
    S.lab:avahi_restart("h3")
    lu.assertTrue(ok, tostring(out))
    lu.assertStrContains(out, "one-shot scan through avahi alone: no mDNS socket could be opened "
        .. "(0 IPv4, 0 IPv6 multicast interfaces): none")
    lu.assertStrContains(out, '"nodes": []')
end

os.exit(lu.LuaUnit.run())
