-- Attacks on the agent's passive mDNS listener (src/dns/mdns_wire.c, opened
-- by src/agent/wire.c while avahi-daemon is behind) and on the browse
-- instance index behind it (src/mdns/instidx.c; a Debug build checks the
-- index against a walk and aborts on a mismatch).  h1: the agent under
-- test; h2: a real peer; h3: the attacker (tests/lab/attacks.py), whose
-- flood of 1,000 forged services keeps h1's avahi-daemon behind, so that
-- the listener is open while the attack runs.
local lu = require "luaunit"
local cjson = require "cjson"

local S = require("suite").new(3)
local q, BIN = S.q, S.BIN
local ATTACKS = os.getenv("LMDISC_SRC") .. "/tests/lab/attacks.py"

local function now() return S.lab.now() end

local function metrics(sock)
    local _, out = S.lab:exec("h1", "curl -s --max-time 5 --unix-socket " .. q(sock) .. " http://lmdisc/metrics")
    local m = {}
    for k, v in out:gmatch("\n(lmdisc_[%w_]+) ([%d.e+-]+)") do m[k] = tonumber(v) end
    return m, out
end

local function peers(sock)
    local _, out = S.lab:exec("h1", "curl -s --max-time 5 --unix-socket " .. q(sock) .. " http://lmdisc/v1/peers")
    local ok, doc = pcall(cjson.decode, out)
    lu.assertTrue(ok, out)
    local by = {}
    for _, p in ipairs(doc.peers or doc) do by[p.name] = p end
    return by, out
end

local function until_(timeout, cond)
    local t0 = now()
    repeat
        local v = cond()
        if v then return v end
        S.lab.sleep(0.2)
    until now() - t0 > timeout
    return cond()
end

local function attack(args) return S:bg("h3", "/usr/bin/python3 " .. q(ATTACKS) .. " " .. args) end

local function flood(prefix)
    local p = attack(("flood %s 1000 120 %s %s"):format(prefix, S.lab:ip("h3", 4), S.lab:ip("h3", 6)))
    S:await(p, "^flood 1000", 60)
end

local function count(text, pat)
    local n = 0
    for _ in text:gmatch(pat) do n = n + 1 end
    return n
end

local function esc(s) return (s:gsub("%p", "%%%0")) end

local function trust_cfg(keys, h)
    return ("trust { key = %q, cert = %q, fleet = { %q }, require = true }\n"):format(
        keys .. "/" .. h .. ".key", keys .. "/" .. h .. ".cert", keys .. "/fleet.pub")
end

TestAttackWire = {}

function TestAttackWire:tearDown() S:stop_all() end

-- An address planted for a real peer's host (h2.local at h3's addresses,
-- cache-flush set) before the host's avahi-daemon announces its own: the
-- peer joins from the wire at its own addresses, never the planted ones.
-- (The listener kept the first address it saw for a host, whatever came
-- after: the forger's, planted first, outlived the host's own answer.)
function TestAttackWire:test_planted_address_does_not_outlive_the_hosts_own()
    local sock, n2 = S:path("h1.sock"), S:uniq("real")
    local keys = S:fleet_keys { "h1", "h2" }
    local a1 = S:agent("h1", trust_cfg(keys, "h1") .. ("api { socket = %q }\n"):format(sock),
        { env = { LOGLEVEL = "DEBUG" } })
    flood(S:uniq("fake"))
    S:await(a1, "mDNS listener open", 30)
    local p = attack(("plant h2.local. %s %s 3 0.1 %s %s"):format(S.lab:ip("h3", 4), S.lab:ip("h3", 6),
        S.lab:ip("h3", 4), S.lab:ip("h3", 6)))
    S:await(p, "^plant 3", 30)
    -- h2's avahi-daemon (re)starts: it announces its host's addresses
    S.lab:avahi_restart("h2")
    local snapshots = S:watch_peers("h1", sock, 100)
    local p2 = S:agent("h2", trust_cfg(keys, "h2") .. ("announce { port = 8002, name = %q }\n"):format(n2))
    S:await(p2, 'announced "' .. esc(n2) .. '"', 60)
    S:await(a1, 'join "' .. esc(n2) .. '"', 30)
    local snaps = snapshots()
    -- it did join from the wire (not from avahi's answer, which comes late)
    local line = S:await(a1, 'from the wire: "' .. esc(n2) .. '"', 5)
    print("\n" .. line)
    lu.assertNil(line:find(" at " .. esc(S.lab:ip("h3", 4)) .. ":"), "joined from the wire at the planted address")
    lu.assertNil(line:find(" at " .. esc(S.lab:ip("h3", 6)) .. ":"), "joined from the wire at the planted address")
    local evil = { [S.lab:ip("h3", 4)] = true, [S.lab:ip("h3", 6)] = true }
    local listed = 0
    for _, snap in ipairs(snaps) do
        for _, peer in ipairs(snap.doc.peers or snap.doc) do
            if peer.name == n2 then
                listed = listed + 1
                for _, a in ipairs(peer.addresses) do
                    lu.assertNil(evil[a.address:gsub("%%.*", "")],
                        ("%s listed at the planted address %s:\n%s"):format(n2, a.address, snap.line))
                end
            end
        end
    end
    lu.assertTrue(listed > 0, "never listed while watched")
end

-- A real peer avahi holds, forged while the listener is open: a whole
-- instance of its name (another port, h3's addresses) and goodbyes (PTR
-- TTL 0).  The listener takes neither (the instance is avahi's: confirmed
-- at once, nothing held, no gone from the wire).  What avahi-daemon itself
-- does with the same packets (it honours a goodbye from anyone on the link,
-- RFC 6762 section 10.1) is printed, not asserted: avahi's rules.
function TestAttackWire:test_forged_records_for_an_avahi_peer_are_not_taken_from_the_wire()
    local sock, n2 = S:path("h1.sock"), S:uniq("victim")
    local a1 = S:agent("h1", ("api { socket = %q }\n"):format(sock), { env = { LOGLEVEL = "DEBUG" } })
    local p2 = S:announce("h2", 8002, n2)
    S:await(a1, 'join "' .. esc(n2) .. '"', 30)
    flood(S:uniq("fake"))
    S:await(a1, "mDNS listener open", 30)
    local before, mark = metrics(sock), #a1:output()
    local src4, src6 = S.lab:ip("h3", 4), S.lab:ip("h3", 6)
    local c = attack(("chimera %s evilhost.local. 9999 EVIL 10 0.1 %s %s"):format(q(n2), src4, src6))
    S:await(c, "^chimera 10", 30)
    local g = attack(("goodbye %s 10 %s %s"):format(q(n2), src4, src6))
    S:await(g, "^goodbye 10", 30)
    -- a control sent the same way after them is read from the wire: the
    -- listener was open and reading all along
    local ok = S:uniq("control")
    local k = attack(("chimera %s %s 7000 ok 3 0.1 %s %s"):format(q(ok), ok .. "-h.local.", src4, src6))
    S:await(k, "^chimera 3", 30)
    S:await(a1, 'from the wire: "' .. esc(ok) .. '"', 10)
    -- (the first join may have come from the wire: avahi was behind for a
    -- moment when the agent started; only what came after the mark counts)
    local out = a1:output():sub(mark + 1)
    lu.assertEquals(count(out, 'from the wire: "' .. esc(n2) .. '"'), 0, S.tail(out))
    local after = metrics(sock)
    lu.assertEquals(after.lmdisc_wire_gone_total or 0, before.lmdisc_wire_gone_total or 0,
        "a leave from the wire: " .. cjson.encode(after))
    local left = out:find('leave "' .. esc(n2) .. '"') ~= nil
    print(("\navahi-daemon with the forged goodbyes: %s"):format(left and "the peer left (avahi's answer)"
        or "the peer stayed"))
    p2:signal("TERM")
    p2:wait(10)
end

-- Malformed datagrams while the listener is open (compression loops, a
-- count of 65,535 over one record, a name over 255 bytes, records past the
-- datagram's end): the agent goes on; sound services at the limits (a TXT
-- of exactly 1,300 bytes, a 63-byte instance label) are read from the wire.
function TestAttackWire:test_hostile_datagrams()
    local sock, pre = S:path("h1.sock"), S:uniq("hx")
    local a1 = S:agent("h1", ("api { socket = %q }\n"):format(sock), { env = { LOGLEVEL = "DEBUG" } })
    flood(S:uniq("fake"))
    S:await(a1, "mDNS listener open", 30)
    local h = attack(("hostile %s %s %s"):format(pre, S.lab:ip("h3", 4), S.lab:ip("h3", 6)))
    S:await(h, "^hostile 6", 30)
    S:await(a1, 'from the wire: "' .. esc(pre) .. '%-cap"', 10)
    local long = (pre .. "-long" .. ("l"):rep(63)):sub(1, 63)
    S:await(a1, 'from the wire: "' .. esc(long) .. '"', 10)
    local by = until_(10, function()
        local b = peers(sock)
        return b[pre .. "-cap"] ~= nil and b[long] ~= nil
    end)
    lu.assertTrue(by, "not listed: " .. pre .. "-cap and " .. long)
    lu.assertTrue(a1:running(), S.tail(a1:output()))
    lu.assertEquals(metrics(sock).lmdisc_wire_listener_open, 1)
end

-- The instance index under churn while the listener is open: h1's
-- avahi-daemon restarted (every browser and resolver gone and made
-- again), the agent's configuration reloaded (SIGHUP), a peer renamed
-- (REMOVE then NEW of another name, and the old name back).  The Debug
-- build checks the index against a walk on every change (an abort ends
-- the agent); the peer ends listed once, under its last name.
function TestAttackWire:test_index_under_restart_reload_rename()
    local sock, n2 = S:path("h1.sock"), S:uniq("churn")
    local cfg = S:path("h1.lua")
    S.write(cfg, ("api { socket = %q }\n"):format(sock))
    local a1 = S:agent("h1", nil, { path = cfg })
    local p2 = S:announce("h2", 8002, n2)
    S:await(a1, 'join "' .. esc(n2) .. '"', 30)
    flood(S:uniq("fake"))
    S:await(a1, "mDNS listener open", 30)
    S.lab:avahi_restart("h1")
    a1:signal("HUP")
    p2:signal("TERM")
    p2:wait(10)
    local n3 = S:uniq("renamed")
    local p3 = S:announce("h2", 8002, n3)
    p3:signal("TERM")
    p3:wait(10)
    p2 = S:announce("h2", 8002, n2)
    local listed = until_(90, function()
        local b = peers(sock)
        return b[n2] and not b[n3]
    end)
    lu.assertTrue(a1:running(), S.tail(a1:output()))
    lu.assertTrue(listed, S.tail(select(2, peers(sock))) .. "\n" .. S.tail(a1:output()))
    lu.assertEquals(count(a1:output(), "Assertion"), 0, S.tail(a1:output()))
    p2:signal("TERM")
    p2:wait(10)
end

os.exit(lu.LuaUnit.run())
