-- Cold one-shot discovery of 500 services (issue 22): every one found, with
-- its port and an address, every run; how many came with both addresses is
-- printed (under heavy load a responder has been seen not to answer over
-- one protocol for seconds, to our query, its re-queries and avahi's
-- resolvers alike: the peer is there, with the other family's address).  Five hosts publish 100 each; h1
-- scans with a cold cache (its avahi-daemon restarted right before).  Through
-- avahi alone this took 11 s (one resolver per instance, re-querying for
-- records it had); the scan now reads the answers to its own query and has
-- avahi resolve only what they did not bring whole.  A run that fell back to
-- avahi's resolvers is still complete, only slower: the speed is a bench row
-- (tests/bench: one-shot, 500 services); here a run must end well inside
-- --timeout with complete true.
local lu = require "luaunit"
local cjson = require "cjson"

local S = require("suite").new(6)
local q, BIN = S.q, S.BIN
local SRC = os.getenv("LMDISC_SRC") or "."
local RUNS = 3
local PER_HOST = 100

local function bulk(host, count, prefix, port)
    local p = S:bg(host, ("cd %s && exec /usr/bin/python3 avahi_dbus.py bulk --count %d --prefix %s --port-base %d")
        :format(q(SRC .. "/tests/bench"), count, q(prefix), port))
    S:await(p, "^established ", 120)
    return p
end

-- The scan's JSON, and what its debug log says of its own query and of
-- avahi's part (for the message of a failure).
local function scan(host, timeout)
    local log = S:path("scan.log")
    local ok, out, code = S.lab:exec(host, ("LOGLEVEL=debug %s discover --json --no-agent --timeout %d 2>%s")
        :format(q(BIN), timeout, q(log)))
    lu.assertEquals(code, 0, out)
    local okj, doc = pcall(cjson.decode, out)
    lu.assertTrue(okj, "invalid JSON: " .. out)
    local notes = {}
    for _, l in ipairs(S.lines(log)) do
        if l:find("own mDNS query", 1, true) or l:find("released at", 1, true) then
            notes[#notes + 1] = l:gsub("^.-debug: ", "")
        end
    end
    return doc, table.concat(notes, "; ")
end

TestDiscoverMany = {}

function TestDiscoverMany:tearDown() S:stop_all() end

function TestDiscoverMany:test_every_one_of_500_services_cold()
    local want = {}
    for h = 2, 6 do
        local prefix = S:uniq("m" .. h)
        bulk("h" .. h, PER_HOST, prefix, h * 1000)
        for i = 1, PER_HOST do want[("%s-%04d"):format(prefix, i)] = h * 1000 + i - 1 end
    end
    local times = {}
    for run = 1, RUNS do
        S.lab:avahi_restart("h1")
        local doc, notes = scan("h1", 20)
        local got, missing, both = {}, {}, 0
        for _, n in ipairs(doc.nodes) do got[n.name] = n end
        for name, port in pairs(want) do
            local n = got[name]
            if not n then
                missing[#missing + 1] = name
            elseif n.port ~= port or #n.addresses < 1 then
                missing[#missing + 1] = ("%s (port %s, %d addresses)"):format(name, n.port, #n.addresses)
            end
            if n and #n.addresses == 2 then both = both + 1 end
        end
        table.sort(missing)
        local ctx = ("run %d (%.3f s): %d of 500 whole, missing or partial: %s [%s]"):format(run, doc.elapsed,
            500 - #missing, table.concat(missing, " ", 1, math.min(#missing, 20)), notes)
        lu.assertTrue(doc.complete, ctx)
        lu.assertEquals(#missing, 0, ctx)
        lu.assertEquals(#doc.nodes, 500, ctx)
        times[#times + 1] = ("%.3f s (%d with both addresses)"):format(doc.elapsed, both)
        print(("\nrun %d: %s"):format(run, notes))
    end
    print("\nelapsed (500 cold): " .. table.concat(times, ", "))
end

os.exit(lu.LuaUnit.run())
