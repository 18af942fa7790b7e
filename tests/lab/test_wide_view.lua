-- A browsing agent's view of a domain read by changes (issue 20): an IXFR
-- makes it read again only the services the diff touched, and a whole
-- read after a fallback (the transfer failed, the copy is dropped, the
-- next read is an AXFR) is compared with the view, so that in either case
-- the policy sees exactly what changed.  Against the lab's real named and
-- knotd, an observer (h2, across the router) with hooks recording every
-- join, update and leave:
--   - 200 services written in one update (wide_load.py fill): 200 joins
--     (by changes on Knot; BIND answers that IXFR AXFR-style, as big as
--     the zone);
--   - one more service: one join, nothing for the 200 (read by changes);
--   - one TXT changed, one host's address changed: one update each;
--   - one service deleted: one leave;
--   - transfers cut (TCP to port 53 prohibited on h2) while a TXT
--     changes: the read fails, the copy is dropped; once they pass, the
--     AXFR is compared with the view: one update, nothing else.
local lu = require "luaunit"
local Lab = require "lab"
local S = require "suite"
local W = require "wide"

local q = Lab.shquote
local BIN = S.BIN
local LOAD = assert(os.getenv("LMDISC_SRC"), "set LMDISC_SRC to the source tree") .. "/tests/bench/wide_load.py"

local HOOKS = [[
local function rec(...) local f = io.open(%q, "a"); f:write(table.concat({...}, "|"), "\n"); f:close() end
function on_join(peer) rec("join", peer.name, peer.txt.model or "") end
function on_update(peer, old, changes) rec("update", peer.name, table.concat(changes, ",")) end
function on_leave(peer, reason) rec("leave", peer.name, reason) end
]]

local N = 200

local function make_class(kind)
    local T = {}
    local lab, tmp, zone, server
    local H = W.helpers(S, function() return lab end, kind)
    local procs = {}

    S.class_lab(T, 3, { subnets = 2, dns = kind }, procs, function(l, t)
        lab, tmp = l, t
        zone, server = lab:dns().zone, lab:dns().server4
    end)

    local function nsupdate(lines)
        local f = tmp .. "/u.nsupdate"
        S.write(f, ("server %s\nzone %s\n%s\nsend\n"):format(server, zone, table.concat(lines, "\n")))
        local _, out, code = lab:exec("h3", "timeout 30 nsupdate -t 10 -k " .. q(lab:key("admin")) .. " " .. q(f))
        lu.assertEquals(code, 0, out)
    end

    -- the hooks' lines, counted by kind, and the lines themselves
    local function events(rec)
        local n, lines = { join = 0, update = 0, leave = 0 }, {}
        for line in S.read(rec):gmatch("[^\n]+") do
            local k = line:match("^(%a+)|")
            n[k] = (n[k] or 0) + 1
            lines[#lines + 1] = line
        end
        return n, lines
    end

    -- until the hooks recorded `total` lines (at most timeout s)
    local function await_events(rec, total, timeout)
        local deadline = Lab.now() + (timeout or 20)
        local _, lines = events(rec)
        while #lines < total and Lab.now() < deadline do
            Lab.sleep(0.2)
            _, lines = events(rec)
        end
        lu.assertTrue(#lines >= total, ("%d events recorded, %d awaited:\n%s"):format(#lines, total,
            S.tail(S.read(rec), 2000)))
    end

    local function view_reads(host, sock)
        local m = H.metrics(host, sock)
        return H.metric(m, 'lmdisc_dns_view_reads_total{read="changes"}') or -1,
            H.metric(m, 'lmdisc_dns_view_reads_total{read="whole"}') or -1
    end

    -- what happened since the `before` lines: exactly `want` (a list of patterns), nothing else
    local function exactly(rec, before, want)
        local _, lines = events(rec)
        local new = { table.unpack(lines, before + 1) }
        lu.assertEquals(#new, #want, "events: " .. table.concat(new, "; "))
        for i, pat in ipairs(want) do
            lu.assertNotNil(new[i]:match(pat), "event " .. i .. " is not " .. pat .. ": " .. table.concat(new, "; "))
        end
        return #lines
    end

    function T:test_a_change_reports_only_the_services_it_touched_and_a_whole_read_nothing_more()
        local rec, sock, cfg = tmp .. "/rec.txt", tmp .. "/h2.sock", tmp .. "/h2.lua"
        S.write(rec, "")
        S.write(cfg, ([[
wide_area { domain = %q, server = %q, key = %q, poll = 0.5 }
api { socket = %q }
log { level = "debug" }
mdns { enabled = false }
%s
]]):format(zone, server, lab:key("h2"), sock, HOOKS:format(rec)))
        local p = lab:bg("h2", "exec " .. q(BIN) .. " agent -c " .. q(cfg))
        procs[#procs + 1] = p
        lu.assertNotNil(lab:wait_log(p, "agent started", 10), p:output())
        H.await_polls("h2", sock, 2, 15)

        -- 200 services in one update message: 200 joins
        local _, out, code = lab:exec("h3", ("timeout 120 /usr/bin/python3 %s --server %s --zone %s --key %s "
            .. "--state %s fill %d --shards 0"):format(q(LOAD), server, zone, q(lab:key("admin")),
            q(tmp .. "/load.json"), N))
        lu.assertEquals(code, 0, out)
        await_events(rec, N, 30)
        H.await_polls("h2", sock, 2, 15)
        local n = events(rec)
        lu.assertEquals(n, { join = N, update = 0, leave = 0 })
        local seen = N
        local changes0, whole0 = view_reads("h2", sock)
        H.note("%d services joined; view reads by changes %d, whole %d", N, changes0, whole0)
        -- (BIND answers this IXFR whole, AXFR-style: the diff is the whole zone)

        -- one more: one join, nothing about the others
        local tz = "_lmserv._tcp." .. zone
        nsupdate({ ("update add %s. 60 PTR extra.%s."):format(tz, tz),
                   ("update add extra.%s. 60 SRV 0 0 9100 xh.%s."):format(tz, zone),
                   ("update add extra.%s. 60 TXT \"model=x1\""):format(tz),
                   ("update add xh.%s. 60 A 10.77.200.1"):format(zone) })
        await_events(rec, seen + 1)
        H.await_polls("h2", sock, 3, 15)
        seen = exactly(rec, seen, { "^join|extra|x1$" })
        local changes1, whole1 = view_reads("h2", sock)
        lu.assertTrue(changes1 > changes0, "read by changes")
        lu.assertEquals(whole1, whole0, "no whole read")

        -- a TXT changed, an address changed: one update each
        nsupdate({ ("update delete lg00007.%s. TXT"):format(tz),
                   ("update add lg00007.%s. 60 TXT \"model=m7b\""):format(tz) })
        await_events(rec, seen + 1)
        nsupdate({ ("update delete lgh00009.%s. A"):format(zone),
                   ("update add lgh00009.%s. 60 A 10.77.201.9"):format(zone) })
        await_events(rec, seen + 2)
        H.await_polls("h2", sock, 3, 15)
        seen = exactly(rec, seen, { "^update|lg00007|", "^update|lg00009|" })

        -- a service deleted: one leave
        nsupdate({ ("update delete %s. PTR lg00011.%s."):format(tz, tz), ("update delete lg00011.%s."):format(tz) })
        await_events(rec, seen + 1)
        H.await_polls("h2", sock, 3, 15)
        seen = exactly(rec, seen, { "^leave|lg00011|goodbye$" })
        local changes2, whole2 = view_reads("h2", sock)
        lu.assertEquals(whole2, whole0, "still no whole read")

        -- transfers cut: a change read while they cannot pass fails and the
        -- copy is dropped; the AXFR once they pass reports that change alone
        local _, failed0 = H.polls("h2", sock)
        failed0 = H.metric(failed0, 'lmdisc_dns_polls_total{result="failed"}') or 0
        local ok, rout = lab:exec("h2", "ip rule add ipproto tcp dport 53 prohibit pref 100")
        lu.assertTrue(ok, "ip rule: " .. rout)
        local cut_ok, cut_err = pcall(function()
            nsupdate({ ("update delete lg00013.%s. TXT"):format(tz),
                       ("update add lg00013.%s. 60 TXT \"model=m13b\""):format(tz) })
            local deadline = Lab.now() + 15
            local failed = failed0
            repeat
                Lab.sleep(0.2)
                failed = H.metric(H.metrics("h2", sock), 'lmdisc_dns_polls_total{result="failed"}') or 0
            until failed > failed0 or Lab.now() > deadline
            lu.assertTrue(failed > failed0, "a read failed while transfers were cut")
        end)
        lab:exec("h2", "ip rule del ipproto tcp dport 53 prohibit pref 100")
        if not cut_ok then error(cut_err, 0) end
        await_events(rec, seen + 1)
        H.await_polls("h2", sock, 3, 15)
        exactly(rec, seen, { "^update|lg00013|" })
        local changes3, whole3 = view_reads("h2", sock)
        H.note("view reads by changes %d -> %d, whole %d -> %d", changes2, changes3, whole2, whole3)
        lu.assertTrue(whole3 > whole2, "the read after the cut was whole (AXFR)")
        lu.assertEquals(H.metric(H.metrics("h2", sock), "lmdisc_dns_services"), N)
        lu.assertStrContains(p:output(), "AXFR to serial")
        p:signal("TERM")
        lu.assertEquals(p:wait(10), 0, p:output():sub(-2000))
    end

    return T
end

TestWideViewNamed = make_class("named")
TestWideViewKnot = make_class("knot")

os.exit(lu.LuaUnit.run())
