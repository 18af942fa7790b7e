-- The routed lab that wide-area DNS-SD is tested in, against both DNS
-- servers (named, knotd): subnets joined by a router that forwards unicast
-- but not mDNS, and a DNS host whose zone sd.lab. takes RFC 2136 updates
-- signed with per-host TSIG keys that may change only their host's names
-- (tests/lab/README.md, "Routed labs").  Hosts: h1 and h3 in subnet 1
-- (A), h2 in subnet 2 (B).
local lu = require "luaunit"
local Lab = require "lab"

local q = Lab.shquote

local function write(file, text)
    local f = assert(io.open(file, "w"))
    f:write(text)
    f:close()
end

-- Refusal rcodes: BIND answers REFUSED; Knot answers NOTAUTH (with TSIG
-- error BADKEY when a valid key has no matching ACL rule).
local REFUSED = { named = "REFUSED", knot = "NOTAUTH" }

local function make_class(kind)
    local T = {}
    local lab, tmp, seq, zone, server

    function T.setupClass()
        lab = Lab.up(3, { subnets = 2, dns = kind })
        tmp = os.tmpname()
        os.remove(tmp)
        os.execute("mkdir -p " .. q(tmp))
        seq = 0
        zone, server = lab:dns().zone, lab:dns().server4
    end

    function T.teardownClass()
        if lab then lab:down() end
        if tmp then os.execute("rm -rf " .. q(tmp)) end
    end

    local function fail_log(msg)
        local f = io.open(lab:dns().log)
        local log = f and f:read("a") or ""
        if f then f:close() end
        return msg .. "\n--- " .. kind .. " log (end):\n" .. log:sub(-2000)
    end

    -- nsupdate on host with keyfile (nil: unsigned) and update lines;
    -- returns ok, output.  Bounded: -t (whole update), timeout(1).
    local function nsupdate(host, keyfile, lines, tcp)
        seq = seq + 1
        local file = ("%s/%d.nsupdate"):format(tmp, seq)
        write(file, ("server %s\nzone %s\n%s\nsend\n"):format(server, zone, table.concat(lines, "\n")))
        local ok, out = lab:exec(host, ("timeout 30 nsupdate -t 10 %s %s %s"):format(
            tcp and "-v" or "", keyfile and ("-k " .. q(keyfile)) or "", q(file)))
        return ok, out
    end

    -- dig on host; extra: more dig arguments; returns output (raises on
    -- a dig failure other than the DNS answer itself)
    local function dig(host, extra)
        local ok, out, code = lab:exec(host, ("timeout 30 dig +time=2 +tries=2 @%s %s"):format(server, extra))
        if not ok then error(("dig %s on %s failed (%s): %s"):format(extra, host, code, out), 2) end
        return out
    end

    local function serial(host)
        return tonumber(dig(host, zone .. " SOA +short"):match("^%S+ %S+ (%d+)"))
    end

    -- The records host hN writes for itself: its instance, SRV target and
    -- addresses (deleting what an earlier run left, as lmdisc will).
    local function own_records(n, port, ip4, ip6)
        local inst = ("h%d._lmserv._tcp.%s."):format(n, zone)
        local target = ("h%d.%s."):format(n, zone)
        return {
            ("update delete _lmserv._tcp.%s. PTR %s"):format(zone, inst),
            ("update delete %s SRV"):format(inst),
            ("update delete %s TXT"):format(inst),
            ("update delete %s A"):format(target),
            ("update delete %s AAAA"):format(target),
            ("update add _lmserv._tcp.%s. 60 PTR %s"):format(zone, inst),
            ("update add %s 60 SRV 0 0 %d %s"):format(inst, port, target),
            ("update add %s 60 TXT \"info=gemma Q4_0\" \"model=gemma\" \"port=%d\""):format(inst, port),
            ("update add %s 60 A %s"):format(target, ip4),
            ("update add %s 60 AAAA %s"):format(target, ip6),
        }
    end

    local function publish(n, port)
        local h = "h" .. n
        local ok, out = nsupdate(h, lab:key(h), own_records(n, port, lab:ip(h, 4), lab:ip(h, 6)))
        lu.assertTrue(ok, fail_log(h .. "'s signed update of its own names failed: " .. out))
    end

    function T:test_unicast_crosses_the_router()
        lu.assertEquals(lab:subnet("h1"), 1)
        lu.assertEquals(lab:subnet("h3"), 1)
        lu.assertEquals(lab:subnet("h2"), 2)
        -- one hop: TTL 63 across the router, 64 on the link
        local out = lab:check("h1", "ping -c 1 -W 2 " .. lab:ip("h2", 4))
        lu.assertStrContains(out, "ttl=63")
        out = lab:check("h1", "ping -6 -c 1 -W 2 " .. lab:ip("h2", 6))
        lu.assertStrContains(out, "ttl=63")
        out = lab:check("h1", "ping -c 1 -W 2 " .. lab:ip("h3", 4))
        lu.assertStrContains(out, "ttl=64")
        -- and the DNS host is reachable from both subnets
        lu.assertStrContains(dig("h2", zone .. " SOA +short"), "ns." .. zone .. ".")
        lu.assertStrContains(dig("h1", zone .. " SOA +short"), "ns." .. zone .. ".")
    end

    function T:test_mdns_stays_on_its_link()
        seq = seq + 1
        local name = ("wide_%s_%d"):format(kind, seq)
        local local_name = name .. "_b"
        local p1 = lab:bg("h1", "avahi-publish-service -s " .. name .. " _lmserv._tcp 8000")
        local p2 = lab:bg("h2", "avahi-publish-service -s " .. local_name .. " _lmserv._tcp 8001")
        for _, p in ipairs({ p1, p2 }) do
            local ok, err = lab:wait_log(p, "Established under name", 15)
            lu.assertNotNil(ok, err)
        end
        -- browse until the control shows up (at most 5 browses of about 1 s)
        local browse = "timeout 15 avahi-browse -t -r -p _lmserv._tcp"
        local function seen(host, inst, from)
            return ("\n=;eth0;IPv[46];%s;_lmserv%%._tcp;local;%s%%.local;[^;]+;%d;"):format(inst, from,
                from == "h1" and 8000 or 8001)
        end
        local function browse_until(host, pattern)
            local out
            for _ = 1, 5 do
                out = "\n" .. lab:check(host, browse)
                if out:find(pattern) then break end
            end
            return out
        end
        -- same link (h3) sees h1's service; h2 sees the one on its own link,
        -- and in those same browses never h1's
        local same = browse_until("h3", seen("h3", name, "h1"))
        local other = browse_until("h2", seen("h2", local_name, "h2"))
        for _, p in ipairs({ p1, p2 }) do p:signal("TERM"); p:wait(5) end
        lu.assertNotNil(same:find(seen("h3", name, "h1")), same)
        lu.assertNotNil(other:find(seen("h2", local_name, "h2")), other)
        lu.assertNotStrContains(other, name .. ";")
        lu.assertNotStrContains(same, local_name)
    end

    function T:test_owner_update_is_read_from_the_other_subnet()
        publish(1, 8001)
        local ptr = dig("h2", "_lmserv._tcp." .. zone .. " PTR +short")
        lu.assertStrContains(ptr, "h1._lmserv._tcp." .. zone .. ".")
        lu.assertEquals(dig("h2", "h1._lmserv._tcp." .. zone .. " SRV +short"), "0 0 8001 h1." .. zone .. ".\n")
        lu.assertEquals(dig("h2", "h1._lmserv._tcp." .. zone .. " TXT +short"),
            '"info=gemma Q4_0" "model=gemma" "port=8001"\n')
        lu.assertEquals(dig("h2", "h1." .. zone .. " A +short"), "10.77.1.1\n")
        lu.assertEquals(dig("h2", "h1." .. zone .. " AAAA +short"), "fd77:0:0:1::1\n")
        -- replacing: a second update leaves exactly one SRV (the new one)
        publish(1, 8002)
        lu.assertEquals(dig("h2", "h1._lmserv._tcp." .. zone .. " SRV +short"), "0 0 8002 h1." .. zone .. ".\n")
    end

    function T:test_a_key_may_not_change_another_hosts_names()
        publish(1, 8003)
        -- h2's key works for h2's own names...
        publish(2, 8004)
        lu.assertStrContains(dig("h1", "h2._lmserv._tcp." .. zone .. " SRV +short"), " 8004 h2.")
        -- ...but not for h1's: each of these is refused on its own
        local k2 = lab:key("h2")
        local attempts = {
            { ("update delete h1._lmserv._tcp.%s. SRV"):format(zone),
              ("update add h1._lmserv._tcp.%s. 60 SRV 0 0 9999 h2.%s."):format(zone, zone) },
            { ("update add h1._lmserv._tcp.%s. 60 TXT \"model=evil\""):format(zone) },
            { ("update delete h1.%s. A"):format(zone), ("update add h1.%s. 60 A 10.77.2.2"):format(zone) },
            -- h2's own PTR is fine, but not in the same message as h1's SRV
            { ("update add _lmserv._tcp.%s. 60 PTR h2._lmserv._tcp.%s."):format(zone, zone),
              ("update add h1._lmserv._tcp.%s. 60 SRV 0 0 9999 h2.%s."):format(zone, zone) },
        }
        for _, lines in ipairs(attempts) do
            local ok, out = nsupdate("h2", k2, lines)
            lu.assertFalse(ok, "h2's key changed: " .. table.concat(lines, "; "))
            lu.assertStrContains(out, "update failed: " .. REFUSED[kind])
        end
        lu.assertEquals(dig("h2", "h1._lmserv._tcp." .. zone .. " SRV +short"), "0 0 8003 h1." .. zone .. ".\n")
        lu.assertEquals(dig("h2", "h1._lmserv._tcp." .. zone .. " TXT +short"),
            '"info=gemma Q4_0" "model=gemma" "port=8003"\n')
        lu.assertEquals(dig("h2", "h1." .. zone .. " A +short"), "10.77.1.1\n")
    end

    -- BIND grants types per name; a Knot ACL rule lists names and types
    -- separately (and every record of an update must match one rule), so
    -- there a host may write any granted type at any of its own names.
    function T:test_types_are_granted_per_name_only_by_bind()
        local ok, out = nsupdate("h2", lab:key("h2"), { ("update add h2.%s. 60 TXT \"x=1\""):format(zone) })
        if kind == "named" then
            lu.assertFalse(ok, "a TXT at h2." .. zone .. " was accepted")
            lu.assertStrContains(out, "update failed: REFUSED")
            lu.assertEquals(dig("h1", "h2." .. zone .. " TXT +short"), "")
        else
            lu.assertTrue(ok, out)
            lu.assertEquals(dig("h1", "h2." .. zone .. " TXT +short"), '"x=1"\n')
            ok, out = nsupdate("h2", lab:key("h2"), { ("update delete h2.%s. TXT"):format(zone) })
            lu.assertTrue(ok, out)
        end
        -- a type granted nowhere is refused by both
        ok, out = nsupdate("h2", lab:key("h2"), { ("update add h2.%s. 60 MX 10 h2.%s."):format(zone, zone) })
        lu.assertFalse(ok, "an MX was accepted")
        lu.assertStrContains(out, "update failed: " .. REFUSED[kind])
    end

    function T:test_unsigned_update_is_refused()
        -- start from no records for h3 (another test may have written them)
        local inst = ("h3._lmserv._tcp.%s."):format(zone)
        local ok, out = nsupdate("h3", lab:key("h3"), {
            ("update delete _lmserv._tcp.%s. PTR %s"):format(zone, inst),
            ("update delete %s SRV"):format(inst), ("update delete %s TXT"):format(inst),
            ("update delete h3.%s. A"):format(zone), ("update delete h3.%s. AAAA"):format(zone) })
        lu.assertTrue(ok, fail_log(out))
        ok, out = nsupdate("h3", nil, own_records(3, 8005, lab:ip("h3", 4), lab:ip("h3", 6)))
        lu.assertFalse(ok, "an unsigned update was accepted")
        lu.assertStrContains(out, "update failed: " .. REFUSED[kind])
        lu.assertEquals(dig("h1", "h3._lmserv._tcp." .. zone .. " SRV +short"), "")
        lu.assertStrContains(dig("h1", "h3._lmserv._tcp." .. zone .. " SRV"), "status: NXDOMAIN")
        -- the same update signed with h3's key is accepted
        publish(3, 8005)
        lu.assertEquals(dig("h1", "h3._lmserv._tcp." .. zone .. " SRV +short"), "0 0 8005 h3." .. zone .. ".\n")
    end

    function T:test_key_files_are_bind_syntax_and_0600()
        for _, name in ipairs({ "h1", "h2", "h3", "admin" }) do
            local path = lab:key(name)
            local _, mode = Lab.sh("stat -c %a " .. q(path))
            lu.assertEquals(mode, "600\n", path)
            local f = assert(io.open(path))
            local text = f:read("a")
            f:close()
            lu.assertStrMatches(text, 'key "' .. name .. '%-key" {\n\talgorithm hmac%-sha256;\n\tsecret "[%w+/]+=*";\n};\n')
        end
    end

    function T:test_transfers_need_a_key()
        publish(1, 8006)
        local before = serial("h2")
        publish(3, 8007)
        local after = serial("h2")
        lu.assertTrue(after > before, ("serial %s -> %s"):format(before, after))
        local k2 = lab:key("h2")
        -- AXFR: the whole zone, signed, from the other subnet
        local axfr = dig("h2", ("-k %s %s AXFR +nocmd +nostats"):format(q(k2), zone))
        lu.assertNotStrContains(axfr, "Transfer failed")
        lu.assertStrContains(axfr, "h1._lmserv._tcp." .. zone .. ".")
        lu.assertStrMatches(axfr, ".*\nh3%._lmserv%._tcp%.sd%.lab%.%s+60%s+IN%s+SRV%s+0 0 8007 h3%.sd%.lab%.\n.*")
        lu.assertStrMatches(axfr, ".*%s+NS%s+ns%.sd%.lab%.\n.*")
        lu.assertStrContains(axfr, "h2-key.")                   -- the TSIG record
        lu.assertStrMatches(axfr, ".*TSIG%s+hmac%-sha256%. %d+ 300 32 %S+ %d+ NOERROR 0.*")
        -- IXFR from the previous serial: only the difference (the old SOA
        -- and h3's records, no NS, nothing of h1's)
        local ixfr = dig("h2", ("-k %s %s IXFR=%d +nocmd +nostats"):format(q(k2), zone, before))
        lu.assertNotStrContains(ixfr, "Transfer failed")
        lu.assertStrMatches(ixfr, (".*SOA%%s+ns%%.sd%%.lab%%. hostmaster%%.sd%%.lab%%. %d .*"):format(before))
        lu.assertStrContains(ixfr, "0 0 8007 h3." .. zone .. ".")
        lu.assertNotStrContains(ixfr, "\tNS\t")
        lu.assertNotStrContains(ixfr, "h1._lmserv")
        -- without a key: refused, both kinds
        for _, t in ipairs({ "AXFR", ("IXFR=%d"):format(before) }) do
            local out = dig("h2", ("%s %s +nocmd +nostats"):format(zone, t))
            lu.assertStrContains(out, "Transfer failed", t .. " without a key")
            lu.assertNotStrContains(out, "h1._lmserv", t .. " without a key")
        end
    end

    function T:test_more_than_500_ptrs_fit_in_one_rrset()
        -- an operator's (admin) key; one update over TCP; BIND's default
        -- max-records-per-type (100) would refuse it
        local lines = {}
        for i = 1, 520 do
            lines[#lines + 1] = ("update add _lmserv._tcp.%s. 60 PTR bulk-%03d._lmserv._tcp.%s."):format(zone, i, zone)
        end
        local ok, out = nsupdate("h1", lab:key("admin"), lines, true)
        lu.assertTrue(ok, fail_log("bulk update failed: " .. out))
        local ptrs = dig("h2", "+tcp _lmserv._tcp." .. zone .. " PTR +short")
        local n = select(2, ptrs:gsub("bulk%-%d+%._lmserv", ""))
        lu.assertEquals(n, 520)
        -- and they are gone again with one delete (the admin key may)
        local del = {}
        for i = 1, 520 do
            del[#del + 1] = ("update delete _lmserv._tcp.%s. PTR bulk-%03d._lmserv._tcp.%s."):format(zone, i, zone)
        end
        ok, out = nsupdate("h1", lab:key("admin"), del, true)
        lu.assertTrue(ok, fail_log("bulk delete failed: " .. out))
        lu.assertNotStrContains(dig("h2", "+tcp _lmserv._tcp." .. zone .. " PTR +short"), "bulk-")
    end

    return T
end

TestWideNamed = make_class("named")
TestWideKnot = make_class("knot")

os.exit(lu.LuaUnit.run())
