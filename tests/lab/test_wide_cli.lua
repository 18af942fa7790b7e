-- `lmdisc announce --domain` and `lmdisc discover --domain` (issue 10, the
-- command line; src/cmd/cmd_dns.c, src/dns/walk.c, src/dns/server.c) against
-- the lab's real DNS servers, named and knotd: a routed lab, h1 and h3 in
-- subnet 1, h2 in subnet 2, the DNS host behind the router.  Every host's
-- /etc/resolv.conf names the lab's DNS host (tests/lab/lab), so the server
-- default (the SOA MNAME, ns.sd.lab) is found inside the lab.
local lu = require "luaunit"
local cjson = require "cjson"
local Lab = require "lab"
local S = require "suite"

local q = Lab.shquote
local BIN = S.BIN

local function make_class(kind)
    local T = {}
    local lab, tmp, zone, server
    local procs, seq = {}, 0

    S.class_lab(T, 3, { subnets = 2, dns = kind }, procs, function(l, t)
        lab, tmp = l, t
        zone, server = lab:dns().zone, lab:dns().server4
    end)

    local function note(fmt, ...) io.stderr:write(("[%s] "):format(kind) .. fmt:format(...) .. "\n") end

    local function dig(host, args)
        local ok, out, code = lab:exec(host, ("timeout 30 dig +time=2 +tries=2 @%s %s"):format(server, args))
        if not ok then error(("dig %s failed (%s): %s"):format(args, code, out), 2) end
        return out
    end

    -- (lab:exec itself fails the test on a sanitizer report; this names
    -- the command's output in the message)
    local function no_sanitizer(out)
        lu.assertNil(require("sanitizer").report(out), out)
    end

    -- `lmdisc announce PORT INFO --domain` on host in the background
    local function announce(host, args, global)
        local p = lab:bg(host, ("exec %s %s announce %s"):format(q(BIN), global or "", args), "announce")
        procs[#procs + 1] = p
        return p
    end

    local function await(p, pattern, timeout)
        local line, err = lab:wait_log(p, pattern, timeout or 15)
        if not line then lu.fail(tostring(err) .. "\n--- " .. p.log .. ":\n" .. S.tail(p:output())) end
        return line
    end

    -- `lmdisc discover --domain ZONE ...` on host: output, exit code, seconds
    local function discover(host, args)
        local t0 = Lab.now()
        local _, out, code = lab:exec(host, ("timeout 30 %s discover --domain %s %s"):format(q(BIN), zone, args or ""))
        no_sanitizer(out)
        return out, code, Lab.now() - t0
    end

    local function discover_json(host, args)
        local out, code, took = discover(host, "--json " .. (args or ""))
        lu.assertEquals(code, 0, out)
        local ok, doc = pcall(cjson.decode, out)
        lu.assertTrue(ok, "discover --json printed invalid JSON: " .. out)
        return doc, took
    end

    local function node(doc, name)
        for _, n in ipairs(doc.nodes) do if n.name == name then return n end end
    end

    function T:test_announce_on_h1_discover_on_h2_and_sigterm_withdraws()
        local p = announce("h1", ("8000 'gemma 2b' --name h1 --txt model=gemma --txt gpu --domain %s --key %s "
            .. "--server %s --lease 120"):format(zone, q(lab:key("h1")), server))
        local line = await(p, "^published \"h1\"")
        lu.assertStrContains(line, "in " .. zone .. " as h1." .. zone .. " (server " .. server)
        -- RFC 6763 records as dig reads them from the other subnet
        lu.assertEquals(dig("h2", "h1._lmserv._tcp." .. zone .. " SRV +short"), "0 0 8000 h1." .. zone .. ".\n")
        lu.assertStrContains(dig("h2", "h1._lmserv._tcp." .. zone .. " TXT +short"), '"info=gemma 2b"')

        -- discover --domain on h2 (another subnet): the NodeInfo fields, at once
        local doc, took = discover_json("h2", "--server " .. server .. " --timeout 10")
        note("discover --domain --json answered in %.3f s (elapsed %.3f s)", took, doc.elapsed)
        lu.assertTrue(took < 3, ("took %.2f s: it must not wait for the timeout"):format(took))
        lu.assertTrue(doc.elapsed < 2, tostring(doc.elapsed))
        lu.assertEquals(doc.source, "dns")
        lu.assertEquals(doc.domain, zone)
        lu.assertEquals(doc.type, "_lmserv._tcp")
        lu.assertTrue(doc.complete)
        local n = node(doc, "h1")
        lu.assertNotNil(n, cjson.encode(doc))
        lu.assertEquals(n.host, "h1." .. zone)
        lu.assertEquals(n.port, 8000)
        lu.assertEquals(n.info, "gemma 2b")
        lu.assertEquals(n.domain, zone)
        lu.assertEquals(n.txt.model, "gemma")
        lu.assertEquals(n.txt.gpu, true)
        lu.assertEquals(n.addresses[1], { address = "10.77.1.1", family = 4, interface = "dns" })
        lu.assertEquals(n.addresses[2].address, "fd77:0:0:1::1")
        -- the table, as discover prints for mDNS
        local out, code = discover("h2", "--server " .. server)
        lu.assertEquals(code, 0, out)
        lu.assertStrMatches(out, "NAME%s+HOST:PORT%s+ADDRESSES%s+INFO\n.*")
        lu.assertStrContains(out, "h1." .. zone .. ":8000")
        lu.assertStrContains(out, "10.77.1.1,fd77:0:0:1::1")
        lu.assertStrContains(out, "gemma 2b")

        -- SIGTERM: withdrawn within 2 s, exit 0
        local t0 = Lab.now()
        p:signal("TERM")
        lu.assertEquals(p:wait(5), 0, p:output())
        local stop = Lab.now() - t0
        note("SIGTERM to exit with the withdraw: %.2f s", stop)
        lu.assertTrue(stop < 2, ("took %.2f s"):format(stop))
        lu.assertStrContains(p:output(), 'withdrew "h1" from ' .. zone)
        out, code = discover("h2", "--server " .. server)
        lu.assertEquals(code, 0, out)
        lu.assertStrContains(out, "no _lmserv._tcp services found in " .. zone)
        lu.assertStrContains(dig("h2", "h1._lmserv._tcp." .. zone .. " SRV"), "status: NXDOMAIN")
        lu.assertStrContains(dig("h2", "h1." .. zone .. " A"), "status: NXDOMAIN")
        lu.assertNotStrContains(dig("h2", "_lmserv._tcp." .. zone .. " PTR +short"), "h1._lmserv")
    end

    function T:test_another_hosts_key_is_refused_with_a_clear_message_and_exit_1()
        local t0 = Lab.now()
        local p = announce("h2", ("8000 --name h2 --domain %s --key %s --server %s"):format(zone, q(lab:key("h3")),
            server))
        lu.assertEquals(p:wait(15), 1, p:output())
        local out = p:output()
        note("refused in %.2f s: %s", Lab.now() - t0, out:gsub("\n$", ""))
        lu.assertStrContains(out, "lmdisc announce: update of h2._lmserv._tcp." .. zone .. " refused")
        lu.assertStrContains(out, "h3-key")
        lu.assertStrContains(out, "h2._lmserv._tcp." .. zone .. " SRV TXT")
        lu.assertStrContains(out, "h2." .. zone .. " A AAAA")
        if kind == "named" then
            lu.assertStrContains(out, "REFUSED")
            lu.assertStrContains(out, "no grant")
        else
            lu.assertStrContains(out, "BADKEY")
        end
        lu.assertEquals(select(2, out:gsub("\n", "")), 1, "one line: " .. out)
        lu.assertStrContains(dig("h2", "h2._lmserv._tcp." .. zone .. " SRV"), "status: NXDOMAIN")
    end

    function T:test_unreachable_server_fails_the_first_publish()
        local p = announce("h1", ("8000 --name h1 --domain %s --key %s --server 10.77.2.99"):format(zone,
            q(lab:key("h1"))))
        lu.assertEquals(p:wait(15), 1, p:output())
        lu.assertStrContains(p:output(), "lmdisc announce: DNS server unreachable: no answer from 10.77.2.99")
        local out, code = discover("h2", "--server 10.77.2.99 --timeout 2")
        lu.assertEquals(code, 1, out)
        lu.assertStrContains(out, "no answer from 10.77.2.99")
    end

    function T:test_without_server_the_soa_mname_is_used()
        -- the lab's resolv.conf names the DNS host; the zone's SOA names ns.sd.lab
        lu.assertStrContains(lab:check("h1", "cat /etc/resolv.conf"), "nameserver " .. server)
        local p = announce("h1", ("9001 'no server given' --name h1 --domain %s --key %s")
            :format(zone, q(lab:key("h1"))), "--log-level DEBUG")
        local line = await(p, "^published \"h1\"")
        lu.assertStrContains(line, "(server " .. server .. ",")
        lu.assertStrContains(p:output(), zone .. "'s primary server: ns." .. zone .. " (" .. server .. ")")
        local doc = discover_json("h2", "--timeout 10")
        local n = node(doc, "h1")
        lu.assertNotNil(n, cjson.encode(doc))
        lu.assertEquals(n.port, 9001)
        lu.assertEquals(n.info, "no server given")
        p:signal("TERM")
        lu.assertEquals(p:wait(5), 0, p:output())
        -- a domain without a SOA anywhere above it in the lab's DNS: said, exit 1
        local _, out, code = lab:exec("h2", ("timeout 30 %s discover --domain nowhere.invalid --timeout 5"):format(q(BIN)))
        lu.assertEquals(code, 1, out)
        lu.assertStrContains(out, "cannot find the DNS server of nowhere.invalid")
        lu.assertStrContains(out, "give --server ADDR")
    end

    function T:test_a_service_added_by_hand_with_nsupdate_is_listed()
        seq = seq + 1
        local file = ("%s/%d.nsupdate"):format(tmp, seq)
        local recs = {
            "update add _lmserv._tcp." .. zone .. ". 60 PTR byhand._lmserv._tcp." .. zone .. ".",
            "update add byhand._lmserv._tcp." .. zone .. ". 60 SRV 0 0 9100 box." .. zone .. ".",
            "update add byhand._lmserv._tcp." .. zone .. '. 60 TXT "info=added by hand" "model=llama"',
            "update add box." .. zone .. ". 60 A 10.77.2.77",
        }
        S.write(file, ("server %s\nzone %s\n%s\nsend\n"):format(server, zone, table.concat(recs, "\n")))
        local ok, out = lab:exec("h3", ("timeout 30 nsupdate -t 10 -k %s %s"):format(q(lab:key("admin")), q(file)))
        lu.assertTrue(ok, out)
        local doc = discover_json("h1", "--server " .. server)
        local n = node(doc, "byhand")
        lu.assertNotNil(n, cjson.encode(doc))
        lu.assertEquals(n.host, "box." .. zone)
        lu.assertEquals(n.port, 9100)
        lu.assertEquals(n.info, "added by hand")
        lu.assertEquals(n.txt.model, "llama")
        lu.assertEquals(#n.addresses, 1)
        lu.assertEquals(n.addresses[1].address, "10.77.2.77")
        -- signed queries (--key) read the same
        doc = discover_json("h1", "--server " .. server .. " --key " .. q(lab:key("h1")))
        lu.assertNotNil(node(doc, "byhand"), cjson.encode(doc))
        -- and it goes away
        S.write(file, ("server %s\nzone %s\nupdate delete _lmserv._tcp.%s. PTR byhand._lmserv._tcp.%s.\n"
            .. "update delete byhand._lmserv._tcp.%s.\nupdate delete box.%s.\nsend\n"):format(server, zone, zone, zone,
            zone, zone))
        ok, out = lab:exec("h3", ("timeout 30 nsupdate -t 10 -k %s %s"):format(q(lab:key("admin")), q(file)))
        lu.assertTrue(ok, out)
        doc = discover_json("h1", "--server " .. server)
        lu.assertNil(node(doc, "byhand"), cjson.encode(doc))
    end

    -- a domain of 300 services read by a process allowed 100 descriptors:
    -- the walk's 1,200 queries go at most 64 at a time, so it answers
    -- (sending them all at once ran out of descriptors)
    function T:test_a_large_domain_is_read_64_queries_at_a_time()
        local lines = {}
        local function send()
            seq = seq + 1
            local f = ("%s/%d.nsupdate"):format(tmp, seq)
            S.write(f, ("server %s\nzone %s\n%s\nsend\n"):format(server, zone, table.concat(lines, "\n")))
            local ok, out = lab:exec("h3", ("timeout 60 nsupdate -t 20 -k %s %s"):format(q(lab:key("admin")), q(f)))
            lu.assertTrue(ok, out)
            lines = {}
        end
        for k = 1, 300 do
            local inst = ("big%03d._lmserv._tcp.%s."):format(k, zone)
            lines[#lines + 1] = ("update add _lmserv._tcp.%s. 60 PTR %s"):format(zone, inst)
            lines[#lines + 1] = ("update add %s 60 SRV 0 0 %d big%03d.%s."):format(inst, 9000 + k, k, zone)
            lines[#lines + 1] = ("update add %s 60 TXT \"model=m%d\""):format(inst, k)
            lines[#lines + 1] = ("update add big%03d.%s. 60 A 10.77.9.%d"):format(k, zone, k % 250 + 1)
            if #lines >= 400 then send() end
        end
        if #lines > 0 then send() end
        local t0 = Lab.now()
        local _, out, code = lab:exec("h1", ("ulimit -n 100 && timeout 30 %s discover --domain %s --server %s --json")
            :format(q(BIN), zone, server))
        local took = Lab.now() - t0
        no_sanitizer(out)
        lu.assertEquals(code, 0, out)
        local ok, doc = pcall(cjson.decode, out)
        lu.assertTrue(ok, out)
        local n = 0
        for _, nd in ipairs(doc.nodes) do if nd.name:match("^big%d+$") then n = n + 1 end end
        lu.assertEquals(n, 300)
        local b = node(doc, "big123")
        lu.assertEquals(b.port, 9123)
        lu.assertEquals(b.txt.model, "m123")
        lu.assertEquals(b.addresses[1].address, "10.77.9.124")
        note("discover --domain read 300 services (1,201 queries, 64 at a time, 100 descriptors) in %.2f s", took)
        -- gone again: the other tests expect an empty domain
        for k = 1, 300 do
            local inst = ("big%03d._lmserv._tcp.%s."):format(k, zone)
            lines[#lines + 1] = ("update delete _lmserv._tcp.%s. PTR %s"):format(zone, inst)
            lines[#lines + 1] = ("update delete %s"):format(inst)
            lines[#lines + 1] = ("update delete big%03d.%s."):format(k, zone)
            if #lines >= 400 then send() end
        end
        if #lines > 0 then send() end
        out = discover("h1", "--server " .. server)
        lu.assertStrContains(out, "no _lmserv._tcp services found in " .. zone)
    end

    function T:test_agent_without_wide_area_server_uses_the_soa_mname()
        seq = seq + 1
        local cfg = ("%s/%d-agent.lua"):format(tmp, seq)
        S.write(cfg, ([[
announce { port = 8300, name = "h3", info = "agent, no server" }
wide_area { domain = %q, key = %q, lease = 60, poll = 1 }
mdns { enabled = false }
api { socket = %q }
]]):format(zone, lab:key("h3"), ("%s/%d-agent.sock"):format(tmp, seq)))
        local p = lab:bg("h3", "exec " .. q(BIN) .. " agent -c " .. q(cfg), "agent")
        procs[#procs + 1] = p
        local line = await(p, "wide%-area: " .. zone:gsub("%.", "%%.") .. "'s server is ")
        lu.assertStrContains(line, server .. ", the primary (SOA MNAME ns." .. zone .. ") of its zone")
        await(p, "wide%-area: published \"h3\"")
        local doc = discover_json("h2")
        local n = node(doc, "h3")
        lu.assertNotNil(n, cjson.encode(doc))
        lu.assertEquals(n.port, 8300)
        lu.assertEquals(n.info, "agent, no server")
        -- SIGHUP with the same file keeps the server found, and publishing
        p:signal("HUP")
        await(p, "reloaded")
        lu.assertEquals(select(2, p:output():gsub("asking the resolvers", "")), 1, p:output())
        p:signal("TERM")
        lu.assertEquals(p:wait(5), 0, p:output())
        lu.assertStrContains(p:output(), 'wide-area: withdrew "h3" from ' .. zone)
        lu.assertNil(node(discover_json("h2"), "h3"))
    end

    return T
end

TestWideCliNamed = make_class("named")
TestWideCliKnot = make_class("knot")

os.exit(lu.LuaUnit.run())
