-- Signed announcements on lab hosts: agents of one fleet admit each other
-- and keep out the unsigned, another fleet's, and a copied announcement
-- (bad signature); with require = false the others are listed as not
-- trusted; several fleet keys at once (rotation).
local lu = require "luaunit"
local cjson = require "cjson"

local S = require("suite").new(3)
local q, BIN, read, write = S.q, S.BIN, S.read, S.write

local keys -- directory with the fleet and host keys, made once

local function run(cmd)
    local f = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
    local out = f:read("a")
    f:close()
    local code = tonumber(out:match("rc=(%d+)\n?$"))
    require("sanitizer").check(cmd, out, code, 2)
    return code, out
end

local function make_keys()
    keys = S:path("keys")
    assert(os.execute("mkdir -p " .. q(keys)))
    for _, k in ipairs { "fleetA", "fleetB", "h1", "h2", "h3" } do
        local code, out = run(q(BIN) .. " keygen " .. q(keys .. "/" .. k))
        assert(code == 0, out)
    end
    for host, fleet in pairs { h1 = "fleetA", h2 = "fleetA", h3 = "fleetB" } do
        local code, out = run(("%s certify --fleet-key %s --name '*' --days 2 %s"):format(q(BIN), q(keys .. "/" .. fleet .. ".key"),
            q(keys .. "/" .. host .. ".pub")))
        assert(code == 0, out)
    end
end

local function trust(host, fleets, require_)
    local list = {}
    for i, f in ipairs(fleets) do list[i] = ("%q"):format(keys .. "/" .. f .. ".pub") end
    return ("trust { key = %q, cert = %q, fleet = { %s }, require = %s }\n"):format(keys .. "/" .. host .. ".key",
        keys .. "/" .. host .. ".cert", table.concat(list, ", "), tostring(require_ ~= false))
end

local function api(host, sock, path)
    local _, out = S.lab:exec(host, "curl -s --max-time 5 --unix-socket " .. q(sock) .. " http://lmdisc" .. path)
    return out
end

local function peers(host, sock)
    local ok, doc = pcall(cjson.decode, api(host, sock, "/v1/peers"))
    lu.assertTrue(ok)
    local by = {}
    for _, p in ipairs(doc) do by[p.name] = p end
    return by
end

local function await(p, pattern, timeout, nth) return S:await(p, pattern, timeout, nth) end

TestTrust = {}

function TestTrust:setUp()
    if not keys then make_keys() end
end

function TestTrust:tearDown() S:stop_all() end

function TestTrust:test_one_fleet_admits_its_own_and_keeps_out_the_rest()
    local n2, n3, nu, ncopy = S:uniq("signed2"), S:uniq("other3"), S:uniq("unsigned"), S:uniq("copied")
    local rec, sock = S:path("h1.rec"), S:path("h1.sock")
    -- h2: fleet A; h3: fleet B; an unsigned announcement on h3
    S:agent("h2", trust("h2", { "fleetA" }) .. ("announce { port = 8002, name = %q, info = \"two\" }\n"):format(n2))
    S:agent("h3", trust("h3", { "fleetB" }) .. ("announce { port = 8003, name = %q, info = \"three\" }\n"):format(n3))
    S:announce("h3", 8004, nu)
    local a1 = S:agent("h1", trust("h1", { "fleetA" }) .. ("api { socket = %q }\n"):format(sock) ..
        read(os.getenv("LMDISC_SRC") .. "/tests/lab/policies/recorder.lua"),
        { env = { RECORD_FILE = rec } })
    await(a1, "join \"" .. n2 .. "\"")
    await(a1, "peer \"" .. n3 .. "\" is not trusted %(unknown fleet")
    await(a1, "peer \"" .. nu .. "\" is not trusted %(unsigned")
    -- a copy of h2's signed TXT under another name, from h3: the name is signed
    local p2 = peers("h1", sock)[n2]
    lu.assertNotNil(p2)
    lu.assertTrue(p2.trusted)
    lu.assertEquals(#p2.signer, 16)
    local txt = {}
    for k, v in pairs(p2.txt) do txt[#txt + 1] = q(k .. "=" .. tostring(v)) end
    S:bg("h3", "avahi-publish -s " .. q(ncopy) .. " _lmserv._tcp 8002 " .. table.concat(txt, " "))
    await(a1, "peer \"" .. ncopy .. "\" is not trusted %(bad signature")
    -- kept out: no hook ran for them, /v1/peers and /v1/services list only h2
    local by = peers("h1", sock)
    lu.assertNotNil(by[n2])
    lu.assertNil(by[n3])
    lu.assertNil(by[nu])
    lu.assertNil(by[ncopy])
    local hooks = read(rec)
    lu.assertStrContains(hooks, "join|" .. n2 .. "|")
    lu.assertNil(hooks:find(n3, 1, true), hooks)
    lu.assertNil(hooks:find(nu, 1, true), hooks)
    lu.assertNil(hooks:find(ncopy, 1, true), hooks)
    local services = cjson.decode(api("h1", sock, "/v1/services"))
    for _, n in ipairs(services.nodes) do
        lu.assertTrue(n.trusted or n.self, n.name .. " listed by /v1/services")
    end
    local metrics = api("h1", sock, "/metrics")
    lu.assertStrContains(metrics, 'lmdisc_untrusted_total{reason="unknown fleet"} 1')
    lu.assertStrContains(metrics, 'lmdisc_untrusted_total{reason="unsigned"} 1')
    lu.assertStrContains(metrics, 'lmdisc_untrusted_total{reason="bad signature"} 1')
end

function TestTrust:test_require_false_lists_them_as_not_trusted_and_two_fleets_admit_both()
    local n2, n3 = S:uniq("signed2"), S:uniq("other3")
    local sock, sock2 = S:path("h1.sock"), S:path("h1b.sock")
    S:agent("h2", trust("h2", { "fleetA" }) .. ("announce { port = 8002, name = %q }\n"):format(n2))
    S:agent("h3", trust("h3", { "fleetB" }) .. ("announce { port = 8003, name = %q }\n"):format(n3))
    local a1 = S:agent("h1", trust("h1", { "fleetA" }, false) .. ("api { socket = %q }\n"):format(sock))
    local b1 = S:agent("h1", trust("h1", { "fleetA", "fleetB" }) .. ("api { socket = %q }\n"):format(sock2))
    await(a1, "join \"" .. n3 .. "\"")
    await(a1, "join \"" .. n2 .. "\"")
    local by = peers("h1", sock)
    lu.assertTrue(by[n2].trusted)
    lu.assertFalse(by[n3].trusted)
    lu.assertEquals(by[n3].signer, cjson.null)
    -- key rotation: both fleets trusted at once
    await(b1, "join \"" .. n3 .. "\"")
    await(b1, "join \"" .. n2 .. "\"")
    local by2 = peers("h1", sock2)
    lu.assertTrue(by2[n2].trusted)
    lu.assertTrue(by2[n3].trusted)
end

-- Goodbyes (TTL 0) that h3 forges for h2's service, the way an attacker on
-- the LAN would (scapy, inside the lab only): h1 asks the network again, h2
-- answers, and h1 reports no leave and no rejoin.
local FORGE = [[
import sys, time
from scapy.all import Ether, IP, IPv6, UDP, DNS, DNSRR, sendp, conf, get_if_hwaddr
conf.verb = 0
name, count, src4, src6 = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
mac = get_if_hwaddr("eth0")
ptr = DNSRR(rrname="_lmserv._tcp.local.", type="PTR", ttl=0, rdata=name + "._lmserv._tcp.local.")
for i in range(count):
    dns = DNS(id=0, qr=1, aa=1, qd=None, an=ptr)
    sendp(Ether(src=mac, dst="01:00:5e:00:00:fb") / IP(src=src4, dst="224.0.0.251", ttl=255) /
          UDP(sport=5353, dport=5353) / dns, iface="eth0")
    sendp(Ether(src=mac, dst="33:33:00:00:00:fb") / IPv6(src=src6, dst="ff02::fb", hlim=255) /
          UDP(sport=5353, dport=5353) / dns, iface="eth0")
    time.sleep(0.05)
print("forged", count)
]]

function TestTrust:test_forged_goodbyes_do_not_make_a_trusted_peer_leave()
    local n2 = S:uniq("victim2")
    local rec, sock = S:path("h1.rec"), S:path("h1.sock")
    S:agent("h2", trust("h2", { "fleetA" }) .. ("announce { port = 8002, name = %q }\n"):format(n2))
    -- the mark (recorder.lua): proof on the agent's own clock that the
    -- hold is over, 2.5 s after the last forged goodbye at the latest
    local flag = S:path("hold.flag")
    local a1 = S:agent("h1", trust("h1", { "fleetA" }) .. ("api { socket = %q }\n"):format(sock) ..
        read(os.getenv("LMDISC_SRC") .. "/tests/lab/policies/recorder.lua"),
        { env = { RECORD_FILE = rec, LOGLEVEL = "DEBUG", MARK_FLAG = flag, MARK_AFTER = "2.5" } })
    await(a1, "join \"" .. n2 .. "\"")
    local script = S:path("forge.py")
    write(script, FORGE)
    -- h2's own announcements of its first seconds can refresh h1's cache
    -- inside a goodbye's second (RFC 6762 10.1): forge until avahi on h1
    -- takes them (its browser reports the removal), a few bursts at most
    local taken
    for _ = 1, 4 do
        local ok, out, code = S.lab:exec("h3", "/usr/bin/python3 " .. q(script) .. " " .. q(n2) .. " 20 " ..
            S.lab:ip("h3", 4) .. " " .. S.lab:ip("h3", 6) .. " 2>/dev/null")
        lu.assertEquals(code, 0, out)
        lu.assertStrContains(out, "forged 20")
        taken = S.lab:wait_log(a1, "goodbye from trusted \"" .. n2 .. "\"", 3)
        if taken then break end
    end
    lu.assertNotNil(taken, "avahi on h1 never took the forged goodbyes:\n" .. a1:output())
    -- ... and the hold (2 s, LMD_GOODBYE_HOLD) passes with h2 answering: no
    -- leave, no second join.  The last burst has been sent (exec returned),
    -- so every hold it started ends within 2 s; the agent marks 2.5 s after
    -- this flag on its own clock, after the registry's tick that would have
    -- dropped the peer (timers run in deadline order), and a leave hook
    -- writes to the same file before the mark.
    write(flag, "go")
    await(rec, "^mark|", 15)
    local hooks = read(rec)
    lu.assertNil(hooks:find("leave|" .. n2, 1, true), hooks .. "\n" .. a1:output())
    lu.assertNil(hooks:find("update|" .. n2, 1, true), hooks) -- not even an address flap
    local joins = select(2, hooks:gsub("join|" .. n2:gsub("%p", "%%%0") .. "|", ""))
    lu.assertEquals(joins, 1, hooks)
    lu.assertNotNil(peers("h1", sock)[n2])
end

function TestTrust:test_a_bad_key_file_stops_the_agent_with_a_clear_message()
    local bad = S:path("bad.key")
    write(bad, "lmdisc-ed25519-secret-v1 AAAA\n")
    os.execute("chmod 600 " .. q(bad))
    local cfg = S:path("bad.lua")
    write(cfg, ("trust { key = %q, cert = %q, fleet = { %q } }\n"):format(bad, keys .. "/h1.cert", keys .. "/fleetA.pub"))
    local ok, out, code = S.lab:exec("h1", q(BIN) .. " agent -c " .. q(cfg))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, bad)
end

os.exit(lu.LuaUnit.run())
