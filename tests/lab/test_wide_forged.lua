-- Every wide-area read authenticated (issue 20): answers that the agent's
-- TSIG key did not sign never change its view, whatever they say, and each
-- is counted; one bad record does not break a read.  Against the lab's real
-- named and knotd, with whoever answers in the server's place played by
-- tests/lab/tools/rogue_dns.py (scapy) on a lab host:
--   - a man in the middle that answers every query first with a forgery
--     (every rcode unsigned, an empty SOA, a stale and a newer serial, a
--     PTR to a service that does not exist, an SRV at "."), then relays the
--     real answer, and answers every other transfer with an unsigned
--     REFUSED;
--   - a hijacked resolver that names itself as the zone's primary;
--   - an SRV at "." and one outside the domain, in a read by queries.
-- Routed lab: h1 and h3 in subnet 1, h2 in subnet 2, the DNS host behind
-- the router.
local lu = require "luaunit"
local Lab = require "lab"
local S = require "suite"
local W = require "wide"

local q = Lab.shquote
local BIN = S.BIN
local SRC = assert(os.getenv("LMDISC_SRC"), "set LMDISC_SRC")
local ROGUE = SRC .. "/tests/lab/tools/rogue_dns.py"

local HOOKS = [[
local function rec(...) local f = io.open(%q, "a"); f:write(table.concat({...}, "|"), "\n"); f:close() end
function on_join(peer) rec("join", peer.name, peer.port, peer.txt.model or "") end
function on_update(peer) rec("update", peer.name, peer.txt.load or "") end
function on_leave(peer, reason) rec("leave", peer.name, reason) end
]]

local function make_class(kind)
    local T = {}
    local lab, tmp, zone, server
    local H = W.helpers(S, function() return lab end, kind)
    local await, metrics, metric, polls, await_polls, note = H.await, H.metrics, H.metric, H.polls, H.await_polls, H.note
    local procs, seq = {}, 0

    S.class_lab(T, 3, { subnets = 2, dns = kind }, procs, function(l, t)
        lab, tmp = l, t
        zone, server = lab:dns().zone, lab:dns().server4
    end)

    local function path(name)
        seq = seq + 1
        return ("%s/%d-%s"):format(tmp, seq, name)
    end

    local function agent(host, opts)
        local sock, cfg = path(host .. ".sock"), path(host .. ".lua")
        S.write(cfg, ([[
%s
wide_area { domain = %q, %s %s key = %q, lease = 60, poll = %g }
api { socket = %q }
log { level = "debug" }
%s
%s
]]):format(opts.observe and "" or ('announce { port = %d, name = %q, txt = { model = "gemma" } }')
            :format(opts.port or 8000, host), zone, opts.server == false and "" or ("server = %q,"):format(opts.server or server),
            opts.extra or "",
            lab:key(host), opts.poll or 1, sock, opts.mdns == false and "mdns { enabled = false }" or "", opts.policy or ""))
        local p = lab:bg(host, "exec " .. q(BIN) .. " agent -c " .. q(cfg))
        procs[#procs + 1] = p
        lu.assertNotNil(lab:wait_log(p, "agent started", 10), p:output())
        return p, sock
    end

    local function rogue(host, ...)
        local p = lab:bg(host, "exec /usr/bin/python3 " .. q(ROGUE) .. " " .. table.concat({ ... }, " "))
        procs[#procs + 1] = p
        local ok, err = lab:wait_log(p, "^ready", 20)
        lu.assertNotNil(ok, tostring(err) .. "\n" .. p:output())
        return p
    end

    function T:test_forged_answers_before_the_real_ones_change_nothing_and_are_counted()
        local relay = rogue("h3", "relay", lab:ip("h3", 4), server)
        local rec = path("rec.txt")
        local flag = path("txt.flag")
        local p1 = agent("h1", { port = 8101, policy = S.set_txt_when(flag, '{ model = "gemma", load = "3" }') })
        await(p1, "wide%-area: published \"h1\"")
        -- h2 reads the domain through the man in the middle
        local p2, sock2 = agent("h2", { observe = true, server = lab:ip("h3", 4), policy = HOOKS:format(rec) })
        await(rec, "^join|h1|8101|gemma", 30)
        -- every kind of forgery in turn (14 kinds; a poll is one query when
        -- nothing changed): wait until each has been sent at least once
        local m = await_polls("h2", sock2, 16, 60)
        local out = relay:output()
        for _, k in ipairs({ "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET",
                             "NOTAUTH", "NOTZONE", "empty", "stale", "newer", "records" }) do
            lu.assertStrContains(out, "forged " .. k .. " for ", "the relay sent every kind")
        end
        lu.assertStrContains(out, "forged REFUSED over TCP", "a transfer was answered with a forged REFUSED")
        -- the TXT change still comes through (a stale serial froze nothing)
        S.write(flag, "")
        await(rec, "^update|h1|3", 30)
        -- the leave too
        p1:signal("TERM")
        lu.assertEquals(p1:wait(5), 0, p1:output())
        await(rec, "^leave|h1|goodbye", 30)
        m = metrics("h2", sock2)
        local dropped = metric(m, "lmdisc_dns_unsigned_total")
        note("%d forged answers dropped over %d polls", dropped, polls("h2", sock2))
        lu.assertTrue(dropped >= 16, m)
        -- one join, one update, one leave: nothing else, never the evil one
        lu.assertEquals(S.read(rec), "join|h1|8101|gemma\nupdate|h1|3\nleave|h1|goodbye\n")
        lu.assertNotStrContains(p2:output(), "with queries")
        lu.assertNotStrContains(p2:output(), "evil")
        lu.assertEquals(select(2, p2:output():gsub("not signed by key", "")), 1, "said once")
    end

    function T:test_a_hijacked_resolver_cannot_name_the_server()
        -- h2's resolv.conf names first a rogue resolver (on h3) that says h3
        -- is the zone's primary, then the lab's real server
        local h3 = lab:ip("h3", 4)
        rogue("h3", "resolver", h3, zone, "ns." .. zone, h3)
        local conf = path("resolv.conf")
        S.write(conf, ("nameserver %s\nnameserver %s\n"):format(h3, server))
        lab:check("h2", "mount --bind " .. q(conf) .. " /etc/resolv.conf")
        local ok, err = pcall(function()
            local p, sock = agent("h2", { port = 8102, server = false, mdns = false })
            local line = await(p, "wide%-area: " .. zone:gsub("%.", "%%.") .. "'s server is ", 30)
            lu.assertStrContains(line, server .. ", the primary")
            lu.assertNotStrContains(p:output(), "'s server is " .. h3)
            await(p, "wide%-area: published \"h2\"")
            local m = metrics("h2", sock)
            lu.assertNotNil(m:match("lmdisc_dns_published 1"), m)
        end)
        lab:exec("h2", "umount /etc/resolv.conf")
        if not ok then error(err, 0) end
        -- with only the rogue to ask: no server, said so
        local conf2 = path("resolv-rogue.conf")
        S.write(conf2, ("nameserver %s\n"):format(h3))
        lab:check("h2", "mount --bind " .. q(conf2) .. " /etc/resolv.conf")
        local _, out, code = lab:exec("h2", ("timeout 30 %s discover --domain %s --key %s --timeout 8 2>&1")
            :format(q(BIN), zone, q(lab:key("h2"))))
        lab:exec("h2", "umount /etc/resolv.conf")
        lu.assertEquals(code, 1, out)
        lu.assertStrContains(out, "proves it holds key")
        lu.assertStrContains(out, h3)
    end

    function T:test_a_bad_srv_is_skipped_and_the_rest_of_a_query_read_stands()
        local p1 = agent("h1", { port = 8103 })
        await(p1, "wide%-area: published \"h1\"")
        -- two services whose SRV cannot be followed, written with the admin key
        local script = path("bad.nsupdate")
        S.write(script, ([[
server %s
zone %s
update add _lmserv._tcp.%s 60 PTR dot._lmserv._tcp.%s
update add dot._lmserv._tcp.%s 60 SRV 0 0 1 .
update add dot._lmserv._tcp.%s 60 TXT "model=x"
update add _lmserv._tcp.%s 60 PTR away._lmserv._tcp.%s
update add away._lmserv._tcp.%s 60 SRV 0 0 1 host.elsewhere.example.
update add away._lmserv._tcp.%s 60 TXT "model=y"
send
]]):format(server, zone, zone, zone, zone, zone, zone, zone, zone, zone))
        local _, out, code = lab:exec("h1", "timeout 30 nsupdate -k " .. q(lab:key("admin")) .. " " .. q(script))
        lu.assertEquals(code, 0, out)
        -- discover reads by queries: h1 listed, the two skipped and said, exit 0
        local _, dout, dcode = lab:exec("h2", ("timeout 30 %s discover --domain %s --server %s --key %s --json 2>&1")
            :format(q(BIN), zone, server, q(lab:key("h2"))))
        lu.assertEquals(dcode, 0, dout)
        lu.assertStrContains(dout, '"h1"')
        lu.assertNotStrContains(dout, '"dot"')
        lu.assertNotStrContains(dout, '"away"')
        lu.assertStrContains(dout, "2 services skipped")
        local _, _, c2 = lab:exec("h1", "timeout 30 nsupdate -k " .. q(lab:key("admin")) .. " <<'EOF'\nserver " ..
            server .. "\nzone " .. zone .. "\nupdate delete dot._lmserv._tcp." .. zone .. "\nupdate delete away._lmserv._tcp."
            .. zone .. "\nupdate delete _lmserv._tcp." .. zone .. " PTR dot._lmserv._tcp." .. zone ..
            "\nupdate delete _lmserv._tcp." .. zone .. " PTR away._lmserv._tcp." .. zone .. "\nsend\nEOF")
        lu.assertEquals(c2, 0)
    end

    -- wide_area.read: reads go to the first server listed that answers,
    -- updates to the primary; a server that stops answering is passed over
    -- (here the first one listed is an address where nothing answers, the
    -- second the DNS host's IPv6 address: a stand-in for a secondary)
    function T:test_reads_fail_over_between_the_listed_servers_and_updates_go_to_the_primary()
        local rec = path("rec.txt")
        local cfg_read = ('read = { "10.77.2.99", %q },'):format(lab:dns().server6)
        local p2, sock2 = agent("h2", { observe = true, policy = HOOKS:format(rec), extra = cfg_read })
        local p1 = agent("h1", { port = 8104 })
        await(p1, "wide%-area: published \"h1\"")
        local line = await(p2, "wide%-area browse: 10%.77%.2%.99 did not answer for " .. zone:gsub("%.", "%%.")
            .. ": reading from ", 20)
        lu.assertStrContains(line, lab:dns().server6)
        await(rec, "^join|h1|8104|gemma", 20)
        lu.assertStrContains(p2:output(), "(wide_area.read; updates go to " .. server .. ")")
        -- and the leave, through the same server
        p1:signal("TERM")
        lu.assertEquals(p1:wait(5), 0, p1:output())
        await(rec, "^leave|h1|goodbye", 10)
        local m = metrics("h2", sock2)
        lu.assertTrue(metric(m, 'lmdisc_dns_polls_total{result="failed"}') >= 1, m)
    end

    return T
end

TestWideForgedNamed = make_class("named")
TestWideForgedKnot = make_class("knot")

os.exit(lu.LuaUnit.run())
