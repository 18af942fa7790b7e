-- A second round of attacks on wide-area reads (issue 20), beyond what
-- test_wide_forged.lua tries (unsigned forgeries, a hijacked resolver, a bad
-- SRV): answers that are genuinely signed, and records written with a key
-- the server accepts.  Each asserts that the agent's view did not change
-- because of the attack, and that what it refused was said and counted.
--   - a man in the middle that replays genuine signed answers (the agent's
--     own to older queries: stale serials; other hosts' and the sweeper
--     key's, other questions; whole transfers signed for another request),
--     tests/lab/tools/rogue_dns.py replay;
--   - an unsigned "truncated" answer to a signed read (a reason to ask
--     again over TCP, if believed);
--   - a secondary cut off from its primary (it still answers, signed, at
--     an old serial) after reads failed over to it: no rollback of a leave;
--   - another host's key (its grants allow the shared PTR RRset) deleting
--     a peer's PTR and flooding the PTR RRset: the peer stays;
--   - a TXT bomb (40 strings of 200 bytes) from a host's own key;
--   - another host's key writing liveness records for a peer's instance
--     name under its own host: a live peer is not swept, a crashed one
--     not kept.
-- h1 and h3 in subnet 1 (sec1), h2 in subnet 2 (sec2); primary behind the
-- router; secondaries of the other server kind.
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

local esc = W.esc

local function only(file, name) return W.only(S, file, name) end

local function make_class(kind)
    local T = {}
    local lab, tmp, zone, primary, sec
    local H = W.helpers(S, function() return lab end, kind)
    local await, metrics, metric, polls, await_polls, note = H.await, H.metrics, H.metric, H.polls, H.await_polls, H.note
    local procs, seq = {}, 0

    S.class_lab(T, 3, { subnets = 2, dns = kind, secondaries = true }, procs, function(l, t)
        lab, tmp = l, t
        zone, primary = lab:dns().zone, lab:dns().server4
        sec = lab:secondaries()
    end)

    local function path(name)
        seq = seq + 1
        return ("%s/%d-%s"):format(tmp, seq, name)
    end

    -- opts: port (announce; observe = true: none), server, read (list),
    -- lease, poll, sweep_key, policy
    local function agent(host, opts)
        local sock, cfg = path(host .. ".sock"), path(host .. ".lua")
        local read = {}
        for _, a in ipairs(opts.read or {}) do read[#read + 1] = ("%q"):format(a) end
        S.write(cfg, ([[
%s
wide_area { domain = %q, server = %q, %s key = %q, lease = %d, poll = %g%s }
api { socket = %q }
log { level = "debug" }
mdns { enabled = false }
%s
]]):format(opts.observe and "" or ('announce { port = %d, name = %q, txt = { model = "gemma" } }')
            :format(opts.port or 8000, host), zone, opts.server or primary, #read > 0 and ("read = { %s },"):format(table.concat(read, ", ")) or "", lab:key(host),
            opts.lease or 60, opts.poll or 0.5, opts.sweep_key and (", sweep_key = %q"):format(opts.sweep_key) or "", sock,
            opts.policy or ""))
        local p = lab:bg(host, "exec " .. q(BIN) .. " agent -c " .. q(cfg))
        procs[#procs + 1] = p
        lu.assertNotNil(lab:wait_log(p, "agent started", 10), p:output())
        return p, sock
    end

    local function dig(host, args, key)
        local _, out = lab:exec(host, ("dig +norec +time=2 +tries=1 %s %s"):format(
            key and ("-k " .. q(lab:key(key))) or "", args))
        return out
    end

    local function serial(host, server)
        return tonumber(dig(host, ("+short @%s %s SOA"):format(server, zone), host):match("^%S+ %S+ (%d+)"))
    end

    local function until_true(what, timeout, fn)
        local deadline = Lab.now() + timeout
        repeat
            if fn() then return end
            Lab.sleep(0.05)
        until Lab.now() > deadline
        lu.fail(("%s: not within %g s"):format(what, timeout))
    end

    local function rogue(host, ...)
        local p = lab:bg(host, "exec /usr/bin/python3 " .. q(ROGUE) .. " " .. table.concat({ ... }, " "))
        procs[#procs + 1] = p
        local ok, err = lab:wait_log(p, "^ready", 20)
        lu.assertNotNil(ok, tostring(err) .. "\n" .. p:output())
        return p
    end

    local function nsupdate(host, key, body)
        local script = path("ns.update")
        S.write(script, ("server %s\nzone %s\n%s"):format(primary, zone, body))
        local _, out, code = lab:exec(host, "timeout 60 nsupdate -k " .. q(lab:key(key)) .. " " .. q(script) .. " 2>&1")
        return code, out
    end

    -- Genuine answers, replayed: each carries a valid TSIG, but for another
    -- request (an older query of the agent's own, with a stale serial; a
    -- query signed with h1's key or the sweeper key, for the other zone; a
    -- whole transfer signed for someone else).  The answer's MAC covers its
    -- request's MAC (RFC 8945 5.3): none may be believed.
    function T:test_replayed_genuine_signed_answers_change_nothing_and_are_counted()
        local h3 = lab:ip("h3", 4)
        local relay = rogue("h3", "replay", h3, primary)
        local rec, flag = path("rec.txt"), path("txt.flag")
        local p1 = agent("h1", { port = 8301, policy = S.set_txt_when(flag, '{ model = "gemma", load = "3" }') })
        await(p1, "wide%-area: published \"h1\"")
        -- h2 reads both zones (it sweeps) through the relay
        local p2, sock2 = agent("h2", { observe = true, server = h3, sweep_key = lab:key("sweeper"),
            policy = HOOKS:format(rec) })
        -- someone else's signed traffic through the relay: h1's key and the
        -- sweeper key, SOA of both zones and whole transfers (bounded)
        local loop = path("others.sh")
        S.write(loop, ([[
for i in $(seq 60); do
  dig +noedns +tries=1 +time=2 -k %s @%s %s SOA >/dev/null
  dig +noedns +tries=1 +time=2 -k %s @%s _live.%s SOA >/dev/null
  dig +noedns +tries=1 +time=3 -k %s @%s %s AXFR >/dev/null
  sleep 0.3
done
]]):format(q(lab:key("h1")), h3, zone, q(lab:key("sweeper")), h3, zone, q(lab:key("h1")), h3, zone))
        procs[#procs + 1] = lab:bg("h1", "exec bash " .. q(loop), "others")
        local ok, err = pcall(function()
            await(rec, "^join|h1|8301|gemma", 30)
            -- every kind of replay reached the agent at least once
            local function replayed(pattern)
                return function() return relay:output():find(pattern) ~= nil end
            end
            local z, from = esc(zone), " from " .. esc(lab:ip("h2", 4)) .. "\n"
            until_true("h1's answer replayed to h2", 40, replayed("replayed h1%-key%.?'s answer for [^\n]* to [^\n]*" .. from))
            until_true("the sweeper key's answer replayed to h2", 40,
                replayed("replayed sweeper%-key%.?'s answer for _live[^\n]*" .. from))
            until_true("h2's own older answer replayed", 40, replayed("replayed h2%-key%.?'s answer for " .. z
                .. "%.? SOA to " .. z .. "%.? SOA" .. from))
            -- a whole transfer, recorded for another request (h1's AXFR of the
            -- browse zone, or h2's own earlier one)
            until_true("a transfer replayed to h2", 60, replayed("replayed transfer %(%d+ messages, [^)]*%) to [^\n]*" .. from))
            -- the TXT change and the leave still come through
            S.write(flag, "")
            await(rec, "^update|h1|3", 30)
            p1:signal("TERM")
            lu.assertEquals(p1:wait(5), 0, p1:output())
            await(rec, "^leave|h1|goodbye", 30)
            -- each replay to h2 dropped and counted (the relay's count read
            -- first: one may still be on its way)
            local to_h2 = select(2, relay:output():gsub("replayed [^\n]*" .. from, ""))
            local m = metrics("h2", sock2)
            local dropped = metric(m, "lmdisc_dns_unsigned_total")
            note("%d genuine answers replayed to h2, %d dropped", to_h2, dropped)
            lu.assertTrue(to_h2 >= 4 and dropped >= to_h2 - 1, ("%d replayed to h2\n%s"):format(to_h2, m))
            lu.assertEquals(only(rec, "h1"), "join|h1|8301|gemma\nupdate|h1|3\nleave|h1|goodbye\n")
            lu.assertNotStrContains(p2:output(), "with queries")
        end)
        if not ok then
            error(tostring(err) .. "\n--- the relay:\n" .. S.tail(relay:output()) .. "\n--- h2:\n" .. S.tail(p2:output()), 0)
        end
    end

    -- A forged, unsigned "truncated" (TC) answer to a signed read must not
    -- move the read to TCP either: it is an answer like any other, believed
    -- only under the key's signature (the servers sign a truncated answer,
    -- RFC 8945 5.3).  The relay answers each UDP query first with an
    -- unsigned TC, then relays the real answer, and logs what comes over
    -- TCP: no SOA query may.
    function T:test_a_forged_truncated_answer_does_not_move_a_read_to_tcp()
        local h3 = lab:ip("h3", 4)
        local relay = rogue("h3", "tc", h3, primary)
        local rec, flag = path("rec.txt"), path("txt.flag")
        local p1 = agent("h1", { port = 8305, policy = S.set_txt_when(flag, '{ model = "gemma", load = "5" }') })
        await(p1, "wide%-area: published \"h1\"")
        local p2, sock2 = agent("h2", { observe = true, server = h3, policy = HOOKS:format(rec) })
        await(rec, "^join|h1|8305|gemma", 30)
        S.write(flag, "")
        await(rec, "^update|h1|5", 30)
        local m = await_polls("h2", sock2, 6, 30)
        local out = relay:output()
        local forged = select(2, out:gsub("forged TC for ", ""))
        note("%d forged TC answers, %d SOA queries over TCP", forged, select(2, out:gsub("tcp: [^\n]* SOA", "")))
        lu.assertTrue(forged >= 6, out)
        lu.assertNil(out:find("tcp: [^\n]* SOA"), "an SOA query came over TCP:\n" .. out)
        lu.assertTrue(metric(m, "lmdisc_dns_unsigned_total") >= forged - 1, m)
        lu.assertEquals(only(rec, "h1"), "join|h1|8305|gemma\nupdate|h1|5\n")
        p1:signal("TERM")
        lu.assertEquals(p1:wait(5), 0, p1:output())
        await(rec, "^leave|h1|goodbye", 30)
        lu.assertNotStrContains(p2:output(), "with queries")
    end

    -- A secondary that no longer hears from its primary still answers,
    -- signed, with the zone as it was.  Reads that fail over to it must not
    -- roll the view back to its older serial: a peer that left stays gone.
    function T:test_a_stale_secondary_cannot_roll_back_a_leave()
        local s2 = sec[2]
        local rec = path("rec.txt")
        local p1 = agent("h1", { port = 8302 })
        await(p1, "wide%-area: published \"h1\"")
        local p2, sock2 = agent("h2", { observe = true, read = { primary, s2.ip4 }, policy = HOOKS:format(rec) })
        await(rec, "^join|h1|8302|gemma", 20)
        until_true("sec2 at the primary's serial", 10, function() return serial("h2", s2.ip4) == serial("h2", primary) end)
        local cut = false
        local ok, err = pcall(function()
            -- sec2 cut off from the primary: no NOTIFY answered, no refresh
            lab:check(s2.name, "ip route add blackhole " .. primary .. "/32")
            lab:check(s2.name, "ip -6 route add blackhole " .. lab:dns().server6 .. "/128")
            cut = true
            p1:signal("TERM")
            lu.assertEquals(p1:wait(5), 0, p1:output())
            await(rec, "^leave|h1|goodbye", 20)
            local old, new = serial("h2", s2.ip4), serial("h2", primary)
            lu.assertTrue(old < new, "sec2 is behind the primary")
            lu.assertStrContains(dig("h2", ("+short @%s h1._lmserv._tcp.%s SRV"):format(s2.ip4, zone), "h2"), "8302",
                "sec2 still serves h1")
            -- the primary hangs: reads fail over to the stale secondary
            lab:dns_pause("dns")
            await(p2, "wide%-area browse: " .. esc(primary) .. " did not answer for " .. esc(zone) .. ": reading from "
                .. esc(s2.ip4) .. " now", 20)
            -- round the list twice (sec2, the primary, the primary again)
            local m = await_polls("h2", sock2, 6, 60)
            lu.assertEquals(only(rec, "h1"), "join|h1|8302|gemma\nleave|h1|goodbye\n", "no rollback")
            lu.assertEquals(metric(m, "lmdisc_dns_services"), 0, m)
            lu.assertTrue((metric(m, "lmdisc_dns_stale_total") or 0) >= 1, m)
            lu.assertStrContains(p2:output(), ("%s answered for %s with serial %d, older than %d read before"):format(
                s2.ip4, zone, old, new))
        end)
        lab:dns_resume("dns")
        if cut then
            lab:exec(s2.name, "ip route del blackhole " .. primary .. "/32")
            lab:exec(s2.name, "ip -6 route del blackhole " .. lab:dns().server6 .. "/128")
        end
        if not ok then error(err, 0) end
    end

    -- Any host's key may write the shared PTR RRset of the service type
    -- (neither BIND nor Knot grants by record data).  h3's key deletes
    -- h1's PTR, then adds 1,500 PTRs to instances that do not exist: a
    -- reader by transfer keeps h1 (its SRV, TXT and addresses are h1's
    -- key's alone) and lists none of the others.
    function T:test_another_hosts_key_cannot_hide_a_peer_through_the_ptr_rrset()
        local rec = path("rec.txt")
        local p1 = agent("h1", { port = 8303 })
        await(p1, "wide%-area: published \"h1\"")
        local p2, sock2 = agent("h2", { observe = true, policy = HOOKS:format(rec) })
        await(rec, "^join|h1|8303|gemma", 20)
        local tz = "_lmserv._tcp." .. zone
        -- the agent has read serial S (or a later one)
        local function read_serial(s)
            await(p2, "wide%-area browse: " .. esc(zone) .. " transferred %([IA]XFR to serial " .. s .. ":", 60)
            return await_polls("h2", sock2, 2, 30)
        end
        local code, out = nsupdate("h3", "h3", ("update delete %s PTR h1.%s\nsend\n"):format(tz, tz))
        lu.assertEquals(code, 0, "h3's key may delete h1's PTR: " .. out)
        lu.assertEquals(dig("h2", ("+short @%s %s PTR"):format(primary, tz), "h2"), "")
        local m = read_serial(serial("h2", primary))
        lu.assertEquals(only(rec, "h1"), "join|h1|8303|gemma\n", "h1 stays without its PTR")
        lu.assertEquals(metric(m, "lmdisc_dns_services"), 1, m)
        -- 1,500 PTRs to instances that do not exist, named to sort before
        -- h1 (more would not fit one 64 KiB message: the servers could no
        -- longer transfer the zone at all, docs/guide/wide-area.md)
        local body = {}
        for i = 1, 1500 do body[#body + 1] = ("update add %s 60 PTR a%05d.%s\n"):format(tz, i, tz) end
        local fcode, fout = nsupdate("h3", "h3", table.concat(body) .. "send\n")
        lu.assertEquals(fcode, 0, fout)
        m = read_serial(serial("h2", primary))
        lu.assertEquals(only(rec, "h1"), "join|h1|8303|gemma\n", "h1 stays under a PTR flood")
        lu.assertEquals(metric(m, "lmdisc_dns_services"), 1, m)
        lu.assertNotStrContains(S.read(rec), "|a0")
        -- then h1 leaves: seen
        p1:signal("TERM")
        lu.assertEquals(p1:wait(5), 0, p1:output())
        await(rec, "^leave|h1|goodbye", 20)
        local ccode, cout = nsupdate("h1", "admin", ("update delete %s PTR\nsend\n"):format(tz))
        lu.assertEquals(ccode, 0, cout)
    end

    -- A TXT bomb from a host's own key: its instance's TXT may be up to 64
    -- KiB in DNS, where no agent publishes more than 1,300 bytes (what one
    -- mDNS packet carries).  The instance is skipped, counted and said; the
    -- rest of the read stands, and a sane TXT later is read again.
    function T:test_a_txt_bomb_from_a_hosts_own_key_is_skipped_and_counted()
        local rec = path("rec.txt")
        local p1 = agent("h1", { port = 8306 })
        await(p1, "wide%-area: published \"h1\"")
        local p2, sock2 = agent("h2", { observe = true, policy = HOOKS:format(rec) })
        await(rec, "^join|h1|8306|gemma", 20)
        local tz, h3 = "_lmserv._tcp." .. zone, "h3." .. zone
        local strings = {}
        for i = 1, 40 do strings[#strings + 1] = ('"k%02d=%s"'):format(i, ("x"):rep(200)) end
        local code, out = nsupdate("h3", "h3", ([[
update add %s 60 PTR h3.%s
update add h3.%s 60 SRV 0 0 8307 %s.
update add h3.%s 60 TXT %s
update add %s 60 A %s
send
]]):format(tz, tz, tz, h3, tz, table.concat(strings, " "), h3, lab:ip("h3", 4)))
        lu.assertEquals(code, 0, out)
        await(p2, "wide%-area browse: \"h3\" in " .. esc(zone) .. " skipped: its TXT is %d+ bytes, more than the 1300 "
            .. "an agent publishes", 20)
        local m = await_polls("h2", sock2, 2, 20)
        lu.assertTrue(metric(m, "lmdisc_dns_skipped_total") >= 1, m)
        lu.assertEquals(metric(m, "lmdisc_dns_services"), 1, m)
        lu.assertEquals(S.read(rec), "join|h1|8306|gemma\n")
        -- a read by queries gets h3's TXT truncated over UDP (signed by the
        -- server: followed to TCP) and stands
        local _, dout, dcode = lab:exec("h2", ("timeout 30 %s discover --domain %s --server %s --key %s --json 2>&1")
            :format(q(BIN), zone, primary, q(lab:key("h2"))))
        lu.assertEquals(dcode, 0, dout)
        lu.assertStrContains(dout, '"h1"')
        lu.assertNotStrContains(dout, "not signed")
        -- a TXT of a sane size: h3 is read
        code, out = nsupdate("h3", "h3", ('update delete h3.%s TXT\nupdate add h3.%s 60 TXT "model=small"\nsend\n')
            :format(tz, tz))
        lu.assertEquals(code, 0, out)
        await(rec, "^join|h3|8307|small", 20)
        code, out = nsupdate("h3", "h3", ("update delete %s PTR h3.%s\nupdate delete h3.%s SRV\nupdate delete h3.%s TXT\n"
            .. "update delete %s A\nsend\n"):format(tz, tz, tz, tz, h3))
        lu.assertEquals(code, 0, out)
        await(rec, "^leave|h3|goodbye", 20)
    end

    -- The liveness zone: every host's key may write TXT anywhere below its
    -- own HOST._live.DOMAIN, so h3 may write a liveness record for an
    -- instance named "h1" (h1.h3._live): one that runs out at once (to get
    -- a live h1 swept) and one it keeps refreshing (to keep a crashed h1
    -- from being swept).  The sweeper binds a liveness record to the
    -- service whose SRV is on that HOST: h1 stays while it runs, and goes
    -- within its lease once it crashed; h3's record is removed alone.
    function T:test_another_hosts_liveness_records_neither_sweep_nor_keep_a_peer()
        local rec = path("rec.txt")
        local live = "_live." .. zone
        local p1 = agent("h1", { port = 8304, lease = 10 })
        await(p1, "wide%-area: published \"h1\"")
        local p2, sock2 = agent("h2", { observe = true, sweep_key = lab:key("sweeper"), policy = HOOKS:format(rec) })
        await(rec, "^join|h1|8304|gemma", 20)
        local function h3_live(value)
            local script = path("live.update")
            S.write(script, ("server %s\nzone %s\nupdate delete h1.h3.%s TXT\nupdate add h1.h3.%s 60 TXT \"lmd-live=%s\"\nsend\n")
                :format(primary, live, live, live, value))
            local _, out, code = lab:exec("h3", "timeout 20 nsupdate -k " .. q(lab:key("h3")) .. " " .. q(script) .. " 2>&1")
            lu.assertEquals(code, 0, out)
        end
        -- a record for "h1" under h3 that runs out in 10 s: swept alone
        h3_live("1/10")
        await(p2, "wide%-area sweeper: \"h1\" on h3 was not refreshed for 10 s %(its lease%): removing its liveness "
            .. "record %(no browse records left%)", 30)
        local m = await_polls("h2", sock2, 4, 30)
        lu.assertEquals(only(rec, "h1"), "join|h1|8304|gemma\n", "the live h1 stays")
        lu.assertEquals(metric(m, "lmdisc_dns_services"), 1, m)
        lu.assertNotStrContains(p2:output(), "\"h1\" on h1 was not refreshed")
        lu.assertStrContains(dig("h2", ("+short @%s h1._lmserv._tcp.%s SRV"):format(primary, zone), "h2"), "8304")
        -- h1 crashes; h3 refreshes its "h1" record every second: h1 is
        -- swept within its lease + the sweeper's poll + 2 s all the same
        local t0 = Lab.now()
        p1:signal("KILL")
        p1:wait(5)
        local seq, left
        repeat
            seq = (seq or 1) + 1
            h3_live(("%x/60"):format(seq))
            left = lab:wait_log(rec, "^leave|h1|goodbye", 1)
        until left or Lab.now() - t0 > 25
        lu.assertNotNil(left, "a crashed h1 kept alive by h3's record\n" .. S.tail(p2:output()))
        local took = Lab.now() - t0
        note("a crashed h1 (lease 10 s) left %.2f s after the SIGKILL, h3 refreshing a record for \"h1\"", took)
        lu.assertTrue(took <= 10 + 0.5 + 2 + 1, ("left %.2f s after the crash"):format(took))
        lu.assertStrContains(p2:output(), "\"h1\" on h1 was not refreshed for 10 s")
        local _, out = lab:exec("h3", "timeout 20 nsupdate -k " .. q(lab:key("h3")) .. " <<'EOF'\nserver " .. primary
            .. "\nzone " .. live .. "\nupdate delete h1.h3." .. live .. " TXT\nsend\nEOF")
        lu.assertNotNil(out)
    end

    return T
end

TestWideAttacksNamed = make_class("named")
TestWideAttacksKnot = make_class("knot")

os.exit(lu.LuaUnit.run())
