-- attack3:
-- the one-shot scan's own mDNS path (src/dns/mdns_sock.c) marks an instance
-- "local" (LMD_NODE_LOCAL, "published on this host") when the datagram's
-- source address is one of this host's; avahi's path marks it local only
-- when this host's avahi-daemon publishes it (AVAHI_LOOKUP_RESULT_LOCAL).
-- A host on the LAN (h2) sends a service with h1's own IPv6 address as the
-- source (scapy, tests/lab/attacks.py chimera, only inside the lab): a
-- remote, forged service must not come out of `lmdisc discover` on h1 as
-- "local".
--   run: ctest -R lab_discover_spoof
local lu = require "luaunit"
local cjson = require "cjson"

local S = require("suite").new(2)
local q, BIN = S.q, S.BIN
local ATTACKS = os.getenv("LMDISC_SRC") .. "/tests/lab/attacks.py"

local function node_of(host, name)
    local _, out, code = S.lab:exec(host, q(BIN) .. " discover --json --no-agent --timeout 3 2>/dev/null")
    lu.assertEquals(code, 0, out)
    local ok, doc = pcall(cjson.decode, out)
    lu.assertTrue(ok, out)
    for _, n in ipairs(doc.nodes) do
        if n.name == name then return n, out end
    end
    return nil, out
end

-- scapy starts in a second or two and prints only when done: a scan is
-- repeated (each ~0.3-3 s) until it sees name, at most 20 s
local function seen(host, name)
    local t0, node, out = S.lab.now()
    repeat
        node, out = node_of(host, name)
    until node or S.lab.now() - t0 > 20
    return node, out
end

TestAttack3Local = {}

function TestAttack3Local:tearDown() S:stop_all() end

function TestAttack3Local:test_a_forged_source_address_does_not_make_a_service_local()
    local name = S:uniq("spoof")
    -- h2 answers as h1 over IPv6 (h1's address as the source), as itself over IPv4
    local c = S:bg("h2", ("exec /usr/bin/python3 %s chimera %s evilhost.local. 9999 EVIL 200 0.05 %s %s")
        :format(q(ATTACKS), q(name), S.lab:ip("h2", 4), S.lab:ip("h1", 6)))
    local node, out = seen("h1", name)
    lu.assertNotNil(node, "the forged service is seen at all: " .. out)
    lu.assertFalse(node["local"], "a service h2 sent with h1's address as its source is not local on h1: "
        .. cjson.encode(node))
    S:await(c, "^chimera 200", 30)
end

function TestAttack3Local:test_forged_over_ipv4_too_is_not_local()
    -- both sources h1's: the kernel drops the IPv4 one (a martian source)
    local name = S:uniq("spoof4")
    local c = S:bg("h2", ("exec /usr/bin/python3 %s chimera %s evilhost4.local. 9998 EVIL 200 0.05 %s %s")
        :format(q(ATTACKS), q(name), S.lab:ip("h1", 4), S.lab:ip("h1", 6)))
    local node, out = seen("h1", name)
    if node then
        lu.assertFalse(node["local"], "forged with h1's addresses, not local on h1: " .. cjson.encode(node))
    end
    print("\nforged with both of h1's addresses: " .. (node and "seen, not local" or "not seen at all"))
    S:await(c, "^chimera 200", 30)
end

function TestAttack3Local:test_a_service_published_on_this_host_is_local()
    local name = S:uniq("mine")
    local p = S:bg("h1", ("exec avahi-publish -s %s _lmserv._tcp 9997 info=mine"):format(q(name)))
    S:await(p, "Established", 10)
    local node, out = node_of("h1", name)
    lu.assertNotNil(node, out)
    lu.assertTrue(node["local"], cjson.encode(node))
    local other = node_of("h2", name)
    lu.assertNotNil(other)
    lu.assertFalse(other["local"], cjson.encode(other))
end

os.exit(lu.LuaUnit.run())
