-- src/dns/ against the lab's real DNS servers (named, knotd): one signed
-- RFC 2136 update per service, sent without blocking on a libevent loop
-- (tests/lab/tools/dns_update.c: lmd-dns-update), read back with dig from
-- the other subnet.  h1 is in subnet 1, h2 in subnet 2.  Zone transfers
-- (AXFR, IXFR) read to their end over several messages with
-- tests/lab/tools/dns_xfr.c (lmd-dns-xfr).
local lu = require "luaunit"
local Lab = require "lab"
local S = require "suite"

local q = Lab.shquote
local TOOL = assert(os.getenv("LMD_DNS_UPDATE"), "set LMD_DNS_UPDATE to the lmd-dns-update binary")
local XFR = assert(os.getenv("LMD_DNS_XFR"), "set LMD_DNS_XFR to the lmd-dns-xfr binary")
local SRC = os.getenv("LMDISC_SRC") or "."

local function make_class(kind)
    local T = {}
    local lab, tmp, zone, server

    S.class_lab(T, 2, { subnets = 2, dns = kind }, {}, function(l, t)
        lab, tmp = l, t
        zone, server = lab:dns().zone, lab:dns().server4
    end)

    -- lmd-dns-update on host: exit code, the parsed result line, output
    local function update(host, key, args)
        local cmd = ("timeout 30 %s %s %s %s %s %s %s"):format(q(TOOL), args.server or server, q(key), zone, args.instance or host,
            (args.host or host) .. "." .. zone, args.port or 8000)
        for _, a in ipairs(args.extra or {}) do cmd = cmd .. " " .. q(a) end
        local _, out, code = lab:exec(host, cmd)
        local res = {}
        local line = out:match("(rc=[^\n]*)")
        if line then
            for k, v in line:gmatch("(%w+)=(%S+)") do res[k] = v end
            res.text = line:match("text=(.*)$")
        end
        return code, res, out
    end

    local function dig(host, args)
        local ok, out, code = lab:exec(host, ("timeout 30 dig +time=2 +tries=2 @%s %s"):format(server, args))
        if not ok then error(("dig %s failed (%s): %s"):format(args, code, out), 2) end
        return out
    end

    local function own(n, port, more)
        local h = "h" .. n
        local extra = { "--addr", lab:ip(h, 4), "--addr", lab:ip(h, 6), "--txt", "model=gemma", "--txt", "port=" .. port }
        for _, a in ipairs(more or {}) do extra[#extra + 1] = a end
        return { port = port, extra = extra }
    end

    function T:test_publish_is_read_from_the_other_subnet_and_replaces()
        local code, res, out = update("h1", lab:key("h1"), own(1, 8001))
        lu.assertEquals(code, 0, out)
        lu.assertEquals(res.rcode, "NOERROR", out)
        lu.assertEquals(res.tcp, "0", out)       -- small: UDP
        lu.assertStrContains(dig("h2", "_lmserv._tcp." .. zone .. " PTR +short"), "h1._lmserv._tcp." .. zone .. ".")
        lu.assertEquals(dig("h2", "h1._lmserv._tcp." .. zone .. " SRV +short"), "0 0 8001 h1." .. zone .. ".\n")
        lu.assertEquals(dig("h2", "h1._lmserv._tcp." .. zone .. " TXT +short"), '"model=gemma" "port=8001"\n')
        lu.assertEquals(dig("h2", "h1." .. zone .. " A +short"), "10.77.1.1\n")
        lu.assertEquals(dig("h2", "h1." .. zone .. " AAAA +short"), "fd77:0:0:1::1\n")
        -- again with another port and one address: the old records are gone
        code, res, out = update("h1", lab:key("h1"), { port = 8002, extra = { "--addr", "10.77.1.1" } })
        lu.assertEquals(code, 0, out)
        lu.assertEquals(dig("h2", "h1._lmserv._tcp." .. zone .. " SRV +short"), "0 0 8002 h1." .. zone .. ".\n")
        lu.assertEquals(dig("h2", "h1._lmserv._tcp." .. zone .. " TXT +short"), '""\n')
        lu.assertEquals(dig("h2", "h1." .. zone .. " AAAA +short"), "")
        local ptrs = dig("h2", "_lmserv._tcp." .. zone .. " PTR +short")
        lu.assertEquals(select(2, ptrs:gsub("h1%._lmserv", "")), 1, ptrs)
    end

    function T:test_a_big_update_goes_over_tcp()
        local more = {}
        for i = 1, 6 do more[#more + 1] = "--txt"; more[#more + 1] = ("k%d=%s"):format(i, ("v"):rep(120)) end
        local code, res, out = update("h1", lab:key("h1"), own(1, 8003, more))
        lu.assertEquals(code, 0, out)
        lu.assertEquals(res.tcp, "1", out)
        local txt = dig("h2", "+tcp h1._lmserv._tcp." .. zone .. " TXT +short")
        lu.assertStrContains(txt, '"k6=' .. ("v"):rep(120) .. '"')
    end

    function T:test_another_hosts_key_is_refused_and_changes_nothing()
        lu.assertEquals((update("h1", lab:key("h1"), own(1, 8004))), 0)
        local code, res, out = update("h2", lab:key("h2"), { instance = "h1", host = "h1", port = 9999,
            extra = { "--addr", "10.77.2.2" } })
        lu.assertEquals(code, 1, out)
        if kind == "named" then
            lu.assertEquals(res.rcode, "REFUSED", out)
        else
            lu.assertEquals(res.rcode, "NOTAUTH", out)
            lu.assertEquals(res.tsig, "BADKEY", out)
        end
        lu.assertStrContains(res.text, server)
        lu.assertEquals(dig("h2", "h1._lmserv._tcp." .. zone .. " SRV +short"), "0 0 8004 h1." .. zone .. ".\n")
        lu.assertEquals(dig("h2", "h1." .. zone .. " A +short"), "10.77.1.1\n")
    end

    function T:test_a_wrong_secret_is_badsig()
        local f = assert(io.open(lab:key("h1")))
        local text = f:read("a")
        f:close()
        local forged = tmp .. "/forged.key"
        f = assert(io.open(forged, "w"))
        f:write((text:gsub('secret "[^"]+"', 'secret "' .. ("QUFB"):rep(11) .. '"')))
        f:close()
        os.execute("chmod 600 " .. q(forged))
        local code, res, out = update("h1", forged, own(1, 8005))
        lu.assertEquals(code, 1, out)
        lu.assertEquals(res.rcode, "NOTAUTH", out)
        lu.assertEquals(res.tsig, "BADSIG", out)
        lu.assertNotEquals(dig("h2", "h1._lmserv._tcp." .. zone .. " SRV +short"), "0 0 8005 h1." .. zone .. ".\n")
    end

    function T:test_key_file_must_be_0600()
        local loose = tmp .. "/loose.key"
        os.execute(("cp %s %s && chmod 644 %s"):format(q(lab:key("h1")), q(loose), q(loose)))
        local code, _, out = update("h1", loose, own(1, 8006))
        lu.assertEquals(code, 2, out)
        -- 0600, or 0640 for the service's group (issue 21): never readable by others
        lu.assertStrContains(out, "mode 0644 lets users outside its owner and group read or change this TSIG key")
        lu.assertStrContains(out, "(chmod 600 " .. loose .. ")")
    end

    function T:test_withdraw_removes_the_records()
        lu.assertEquals((update("h1", lab:key("h1"), own(1, 8007))), 0)
        lu.assertEquals(dig("h2", "h1._lmserv._tcp." .. zone .. " SRV +short"), "0 0 8007 h1." .. zone .. ".\n")
        local code, res, out = update("h1", lab:key("h1"), { extra = { "--withdraw" } })
        lu.assertEquals(code, 0, out)
        lu.assertEquals(res.rcode, "NOERROR", out)
        lu.assertStrContains(dig("h2", "h1._lmserv._tcp." .. zone .. " SRV"), "status: NXDOMAIN")
        lu.assertStrContains(dig("h2", "h1." .. zone .. " A"), "status: NXDOMAIN")
        lu.assertNotStrContains(dig("h2", "_lmserv._tcp." .. zone .. " PTR +short"), "h1._lmserv")
    end

    function T:test_server_down_fails_within_the_timeout()
        lab:dns_stop()
        local ok, err = pcall(function()
            local t0 = Lab.now()
            local code, res, out = update("h1", lab:key("h1"), own(1, 8008, { "--timeout", "2" }))
            local took = Lab.now() - t0
            lu.assertEquals(code, 1, out)
            lu.assertEquals(res.rcode, "none", out)
            -- refused port (ICMP) or silence: either way an error, bounded
            lu.assertNotNil(res.text:find("connection refused", 1, true) or res.text:find("no answer", 1, true), out)
            lu.assertTrue(took < 3.5, ("took %.1f s"):format(took))
        end)
        lab:dns_start()
        if not ok then error(err, 0) end
        local code, _, out = update("h1", lab:key("h1"), own(1, 8009))
        lu.assertEquals(code, 0, out)
    end

    function T:test_a_truncated_answer_is_retried_over_tcp()
        -- on h2, a stand-in that answers UDP truncated and relays TCP to
        -- the real server: the update must end up applied, over TCP
        local relay = lab:bg("h2", "exec python3 " .. q(SRC .. "/tests/lab/tools/tc_relay.py") .. " " ..
            lab:ip("h2", 4) .. " " .. server)
        local ok, err = lab:wait_log(relay, "^ready", 10)
        lu.assertNotNil(ok, tostring(err) .. "\n" .. relay:output())
        local args = own(1, 8011)
        args.server = lab:ip("h2", 4)
        local code, res, out = update("h1", lab:key("h1"), args)
        relay:signal("TERM")
        relay:wait(5)
        lu.assertEquals(code, 0, out .. "\n--- relay:\n" .. relay:output())
        lu.assertEquals(res.tcp, "1", out)
        lu.assertStrContains(relay:output(), "udp: answered truncated")
        lu.assertStrContains(relay:output(), "tcp: relayed")
        lu.assertEquals(dig("h2", "h1._lmserv._tcp." .. zone .. " SRV +short"), "0 0 8011 h1." .. zone .. ".\n")
    end

    function T:test_publish_to_the_servers_ipv6_address()
        local args = own(1, 8012)
        args.server = lab:dns().server6
        local code, res, out = update("h1", lab:key("h1"), args)
        lu.assertEquals(code, 0, out)
        lu.assertStrContains(res.text, "applied by " .. lab:dns().server6 .. " (UDP)")
        lu.assertEquals(dig("h2", "h1._lmserv._tcp." .. zone .. " SRV +short"), "0 0 8012 h1." .. zone .. ".\n")
        -- and over TCP (big)
        local more = {}
        for i = 1, 5 do more[#more + 1] = "--txt"; more[#more + 1] = ("k%d=%s"):format(i, ("w"):rep(120)) end
        args = own(1, 8013, more)
        args.server = lab:dns().server6
        code, res, out = update("h1", lab:key("h1"), args)
        lu.assertEquals(code, 0, out)
        lu.assertEquals(res.tcp, "1", out)
        lu.assertEquals(dig("h2", "h1._lmserv._tcp." .. zone .. " SRV +short"), "0 0 8013 h1." .. zone .. ".\n")
    end

    function T:test_silence_is_retried_then_times_out()
        -- an address on subnet 2 that no host has: the router's ARP fails,
        -- nothing answers; UDP is sent again after 1 s, the whole exchange
        -- ends at the timeout
        local args = own(1, 8010, { "--timeout", "2" })
        args.server = "10.77.2.200"
        local t0 = Lab.now()
        local code, res, out = update("h1", lab:key("h1"), args)
        local took = Lab.now() - t0
        lu.assertEquals(code, 1, out)
        lu.assertEquals(res.rc, "-5", out)                       -- LMD_ETIMEDOUT
        lu.assertStrContains(res.text, "no answer from 10.77.2.200 within 2 s (UDP)")
        lu.assertTrue(took >= 1.9 and took < 3.5, ("took %.1f s"):format(took))
    end

    -- ---- zone transfers (lmd-dns-xfr) ----------------------------------

    local NSVC = 500

    -- lmd-dns-xfr on h1: exit code, the result line's fields, the record
    -- lines, the output
    local function xfr(key, extra, srv)
        local cmd = ("timeout 60 %s %s %s %s"):format(q(XFR), srv or server, q(key), zone)
        for _, a in ipairs(extra or {}) do cmd = cmd .. " " .. q(a) end
        local _, out, code = lab:exec("h1", cmd)
        local res, lines = {}, {}
        local line = out:match("(rc=[^\n]*)")
        if line then
            for k, v in line:gmatch("(%w+)=(%S+)") do res[k] = v end
            res.text = line:match("text=(.*)$")
        end
        for l in out:gmatch("[^\n]+") do
            if l:match("^rr ") or l:match("^diff ") or l:match("^del ") or l:match("^add ") then lines[#lines + 1] = l end
        end
        return code, res, lines, out
    end

    -- nsupdate with the admin key on h1 (lines: "update ..." / "send")
    local function nsupdate(lines)
        local f = tmp .. "/nsupdate.txt"
        local h = assert(io.open(f, "w"))
        h:write("server " .. server .. "\nzone " .. zone .. "\n" .. table.concat(lines, "\n") .. "\nsend\n")
        h:close()
        local ok, out = lab:exec("h1", ("timeout 60 nsupdate -k %s %s"):format(q(lab:key("admin")), q(f)))
        if not ok then error("nsupdate failed: " .. out, 2) end
    end

    -- NSVC services sN (PTR, SRV, TXT, A each), once per class
    local populated = false
    local function populate()
        if populated then return end
        local lines = {}
        for i = 1, NSVC do
            local inst = ("s%d._lmserv._tcp.%s."):format(i, zone)
            lines[#lines + 1] = ("update add _lmserv._tcp.%s. 60 IN PTR %s"):format(zone, inst)
            lines[#lines + 1] = ("update add %s 60 IN SRV 0 0 %d s%d.%s."):format(inst, 8000 + i, i, zone)
            lines[#lines + 1] = ('update add %s 60 IN TXT "model=gemma" "port=%d" "n=%d"'):format(inst, 8000 + i, i)
            lines[#lines + 1] = ("update add s%d.%s. 60 IN A 10.77.100.%d"):format(i, zone, i % 250 + 1)
            if i % 50 == 0 and i < NSVC then lines[#lines + 1] = "send" end
        end
        nsupdate(lines)
        populated = true
    end

    -- the services sN read from a whole zone's record lines
    local function services(lines)
        local ptr, srv, txt, a = {}, {}, {}, {}
        for _, l in ipairs(lines) do
            local n = l:match("^rr PTR _lmserv%._tcp%.%S+ s(%d+)%._lmserv")
            if n then ptr[n] = true end
            local m, port = l:match("^rr SRV s(%d+)%._lmserv%._tcp%.%S+ (%d+) ")
            if m then srv[m] = tonumber(port) end
            m = l:match("^rr TXT s(%d+)%._lmserv%._tcp%.%S+ model=gemma port=%d+ n=%d+$")
            if m then txt[m] = true end
            m = l:match("^rr A s(%d+)%.%S+ 10%.77%.100%.%d+$")
            if m then a[m] = true end
        end
        local full = 0
        for i = 1, NSVC do
            local k = tostring(i)
            if ptr[k] and srv[k] and txt[k] and a[k] then full = full + 1 end
        end
        return full, srv
    end

    function T:test_transfer_500_services_axfr_then_ixfr()
        populate()
        local code, res, lines, out = xfr(lab:key("admin"))
        lu.assertEquals(code, 0, out:sub(1, 2000))
        lu.assertEquals(res.kind, "full", out:sub(1, 2000))
        lu.assertTrue(tonumber(res.messages) > 1, "one message only: " .. res.text)
        local full, srv = services(lines)
        lu.assertEquals(full, NSVC, res.text)
        lu.assertEquals(srv["7"], 8007)
        lu.assertStrContains(res.text, "AXFR of " .. zone .. " from " .. server .. ": the whole zone, serial " .. res.serial)
        local old = tonumber(res.serial)

        -- one change: s7's SRV moves to port 9999
        nsupdate({ ("update delete s7._lmserv._tcp.%s. SRV"):format(zone),
                   ("update add s7._lmserv._tcp.%s. 60 IN SRV 0 0 9999 s7.%s."):format(zone, zone) })
        code, res, lines, out = xfr(lab:key("admin"), { "--ixfr", tostring(old) })
        lu.assertEquals(code, 0, out)
        lu.assertEquals(res.kind, "diff", out)
        lu.assertEquals(tonumber(res.serial), old + 1, out)
        lu.assertEquals(lines, {
            ("diff %d %d"):format(old, old + 1),
            ("del SRV s7._lmserv._tcp.%s 8007 s7.%s"):format(zone, zone),
            ("add SRV s7._lmserv._tcp.%s 9999 s7.%s"):format(zone, zone),
        }, out)

        -- from the current serial: up to date
        code, res, lines, out = xfr(lab:key("admin"), { "--ixfr", tostring(old + 1) })
        lu.assertEquals(code, 0, out)
        lu.assertEquals(res.kind, "uptodate", out)
        lu.assertEquals(tonumber(res.serial), old + 1, out)
        lu.assertEquals(#lines, 0, out)
        lu.assertStrContains(res.text, "up to date (serial " .. (old + 1) .. ")")

        -- and the whole zone again, over IPv6, with the change in it
        code, res, lines, out = xfr(lab:key("admin"), nil, lab:dns().server6)
        lu.assertEquals(code, 0, out:sub(1, 2000))
        full, srv = services(lines)
        lu.assertEquals(full, NSVC)
        lu.assertEquals(srv["7"], 9999)
    end

    function T:test_a_transfer_with_a_wrong_key_is_refused()
        local f = assert(io.open(lab:key("admin")))
        local text = f:read("a")
        f:close()
        local forged = tmp .. "/forged-admin.key"
        f = assert(io.open(forged, "w"))
        f:write((text:gsub('secret "[^"]+"', 'secret "' .. ("QUFB"):rep(11) .. '"')))
        f:close()
        os.execute("chmod 600 " .. q(forged))
        local code, res, lines, out = xfr(forged)
        lu.assertEquals(code, 1, out)
        lu.assertEquals(res.kind, "none", out)
        lu.assertEquals(#lines, 0, out)
        -- the server's NOTAUTH / BADSIG comes unsigned (it cannot sign with a
        -- secret it does not share), so it is what a forger could send:
        -- said, but not believed (no rcode reported, marked forged)
        lu.assertEquals(res.rcode, "NOERROR", out)
        lu.assertEquals(res.tsig, "none", out)
        lu.assertEquals(res.forged, "1", out)
        lu.assertStrContains(res.text, "AXFR of " .. zone .. " from " .. server ..
            ": message 1: NOTAUTH, TSIG error BADSIG without a valid signature by key admin-key: not trusted")
        -- unsigned: refused by the server's ACL
        code, res, _, out = xfr(lab:key("admin"), { "--unsigned" })
        lu.assertEquals(code, 1, out)
        lu.assertNotEquals(res.rcode, "NOERROR", out)
        lu.assertStrContains(res.text, "from " .. server .. ": message 1: ")
    end

    -- a stand-in on h2 relays the first message of the real answer, then
    -- fails by mode: each ends the transfer with an error naming it
    local function broken(mode, extra)
        populate()
        local relay = lab:bg("h2", "exec python3 " .. q(SRC .. "/tests/lab/tools/xfr_cut.py") .. " " ..
            lab:ip("h2", 4) .. " " .. server .. " " .. mode)
        local ok, err = lab:wait_log(relay, "^ready", 10)
        lu.assertNotNil(ok, tostring(err) .. "\n" .. relay:output())
        local t0 = Lab.now()
        local code, res, lines, out = xfr(lab:key("admin"), extra, lab:ip("h2", 4))
        local took = Lab.now() - t0
        relay:signal("TERM")
        relay:wait(5)
        lu.assertEquals(code, 1, out .. "\n--- relay:\n" .. relay:output())
        lu.assertEquals(res.kind, "none", out)
        lu.assertEquals(#lines, 0, out)
        lu.assertEquals(res.messages, (mode == "garbage" or mode == "unsigned") and "2" or "1", out)
        lu.assertStrContains(res.text, "AXFR of " .. zone .. " from " .. lab:ip("h2", 4) .. ": ")
        return res.text, took
    end

    function T:test_a_server_that_stops_mid_transfer()
        local text = broken("cut")
        lu.assertStrContains(text, "the server closed the connection mid-transfer, after 1 complete messages")
    end

    function T:test_a_server_that_goes_silent_mid_transfer()
        local text, took = broken("stall", { "--timeout", "2" })
        lu.assertStrContains(text, "no complete answer within 2 s (1 messages read)")
        lu.assertTrue(took >= 1.9 and took < 4, ("took %.1f s"):format(took))
    end

    function T:test_a_server_that_sends_garbage_mid_transfer()
        local text = broken("garbage")
        lu.assertStrContains(text, "message 2: does not parse as DNS")
    end

    function T:test_an_unsigned_later_message_is_not_trusted()
        local text = broken("unsigned")
        lu.assertStrContains(text, "message 2: not signed (key admin-key): not trusted")
    end

    return T
end

TestWideDnsNamed = make_class("named")
TestWideDnsKnot = make_class("knot")

os.exit(lu.LuaUnit.run())
