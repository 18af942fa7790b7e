-- A migration's mixed fleet: a python-zeroconf publisher that announces one
-- IPv4 address only (IPVersion.All, as the old lmserv module did: its A
-- record goes out over IPv4 and IPv6, no AAAA anywhere) beside lmdisc
-- publishers.  Asking its IPv6 instance for an AAAA only left that instance
-- pending until avahi's resolver timeout (5 s): every discovery without an
-- agent took 5 s and said it was incomplete at the default timeout, and an
-- agent's first scan was not complete until then.  Both kinds of publisher
-- must be discovered and joined as fast as lmdisc ones.
local lu = require "luaunit"
local cjson = require "cjson"

local S = require("suite").new(3)
local q, BIN = S.q, S.BIN
local SRC = os.getenv("LMDISC_SRC") or "."
local ZC = SRC .. "/tests/lab/tools/zc_publish.py"
local RECORDER = SRC .. "/tests/lab/policies/recorder.lua"

-- Avahi's ALL_FOR_NOW comes about 1 s after a browser starts, and the
-- resolvers of what answered follow within milliseconds; the broken path
-- took avahi's resolver timeout, 5 s.  2.5 s leaves room for a loaded
-- machine and stays far from 5.
local FAST = 2.5

local function now()
    local f = assert(io.open("/proc/uptime"))
    local t = f:read("n")
    f:close()
    return t
end

local function zc_publish(host, name, port, info)
    local p = S:bg(host, ("exec /usr/bin/python3 %s %s %d %s %s"):format(q(ZC), q(name), port,
        q(S.lab:ip(host, 4)), q(info)))
    S:await(p, "^registered ", 20)
    return p
end

local function discover(host, extra)
    local ok, out, code = S.lab:exec(host, q(BIN) .. " discover --json --timeout 10 " .. (extra or "") .. " 2>/dev/null")
    lu.assertEquals(code, 0, out)
    local okj, doc = pcall(cjson.decode, out)
    lu.assertTrue(okj, "discover --json printed invalid JSON: " .. out)
    local by_name = {}
    for _, n in ipairs(doc.nodes) do by_name[n.name] = n end
    return doc, by_name
end

TestZeroconfMixed = {}

function TestZeroconfMixed:tearDown() S:stop_all() end

function TestZeroconfMixed:test_ipv4_only_zeroconf_publisher_is_discovered_and_joined_at_once()
    local zc, lm = S:uniq("zc"), S:uniq("lm")
    zc_publish("h1", zc, 8001, "old module")
    S:announce("h2", 8002, lm)

    -- agentless discovery: complete, both found, as fast as with lmdisc
    -- publishers alone; three runs (each a fresh avahi client and browser)
    for run = 1, 3 do
        local doc, nodes = discover("h3", "--no-agent")
        local ctx = ("run %d: %s"):format(run, cjson.encode(doc))
        lu.assertEquals(doc.source, "network", ctx)
        lu.assertTrue(doc.complete, ctx)
        lu.assertTrue(doc.elapsed < FAST, ctx)
        local z, l = nodes[zc], nodes[lm]
        lu.assertNotNil(z, ctx)
        lu.assertNotNil(l, ctx)
        lu.assertEquals(z.port, 8001, ctx)
        lu.assertEquals(z.info, "old module", ctx)
        -- its one address, once (both instances carry it)
        lu.assertEquals(#z.addresses, 1, ctx)
        lu.assertEquals(z.addresses[1].address, S.lab:ip("h1", 4), ctx)
        lu.assertEquals(z.addresses[1].family, 4, ctx)
        -- the lmdisc publisher keeps both families (the IPv6 instance
        -- still gives the IPv6 address)
        local fam = {}
        for _, a in ipairs(l.addresses) do fam[a.family] = a.address end
        lu.assertEquals(fam[4], S.lab:ip("h2", 4), ctx)
        lu.assertEquals(fam[6], S.lab:ip("h2", 6), ctx)
    end

    -- an agent started among them: both joined, and its first scan complete
    -- (the agent's /v1/services "complete"), as fast (the agent's start itself, 'agent started', included: 1 s more)
    local rec = S:path("h3.rec")
    local t0 = now()
    local a = S:agent("h3", nil, {path = RECORDER, env = {RECORD_FILE = rec, LOGLEVEL = "DEBUG"}})
    local jz = S.fields(S:await(rec, "^join|" .. zc .. "|", 10))
    S:await(rec, "^join|" .. lm .. "|", 10)
    lu.assertStrContains(jz[7], S.lab:ip("h1", 4))
    S:await(a, "initial scan done: 2 service", 10)
    local dt = now() - t0
    lu.assertTrue(dt < FAST + 1, ("agent's first scan complete %.2f s after its start\n%s"):format(dt,
        S.tail(a:output())))
    local doc = discover("h3")
    lu.assertEquals(doc.source, "agent", cjson.encode(doc))
    lu.assertTrue(doc.complete, cjson.encode(doc))
    -- one join each, no update after (no second join of a late instance)
    lu.assertEquals(#S.lines(rec, "join|" .. zc .. "|"), 1, S.read(rec))
    lu.assertEquals(#S.lines(rec, "update|" .. zc .. "|"), 0, S.read(rec))
end

os.exit(lu.LuaUnit.run())
