-- The agent's wide-area publishing (issue 10, src/wide/publish.c) against the
-- lab's real DNS servers, named and knotd: a routed lab, h1 and h3 in subnet
-- 1, h2 in subnet 2, the DNS host behind the router.  What the agent writes
-- is read with dig from the other subnet, as any DNS-SD browser would.
local lu = require "luaunit"
local Lab = require "lab"
local S = require "suite"
local W = require "wide"

local q = Lab.shquote
local TOOL = assert(os.getenv("LMD_DNS_UPDATE"), "set LMD_DNS_UPDATE to the lmd-dns-update binary")
local BIN = S.BIN

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

    local function dig(host, args)
        local ok, out, code = lab:exec(host, ("timeout 30 dig +time=2 +tries=2 @%s %s"):format(server, args))
        if not ok then error(("dig %s failed (%s): %s"):format(args, code, out), 2) end
        return out
    end

    local function srv(name) return dig("h2", name .. "._lmserv._tcp." .. zone .. " SRV +short") end
    local function txt(name) return dig("h2", name .. "._lmserv._tcp." .. zone .. " TXT +short") end

    -- `lmdisc agent` on host: announce { name = NAME }, wide_area with KEY
    -- (default the host's own); returns the process, its API socket
    local function agent(host, opts)
        opts = opts or {}
        local sock = path(host .. ".sock")
        local cfg = path(host .. ".lua")
        S.write(cfg, ([[
%s
wide_area { domain = %q, server = %q, key = %q, lease = %d, poll = %g%s }
api { socket = %q }
log { level = "debug" }
%s
%s
]]):format(opts.observe and "" or ('announce { port = %d, name = %q, info = "gemma 2b", txt = { model = "gemma" } }')
            :format(opts.port or 8000, opts.name or host), zone, opts.server or server, opts.key or lab:key(host),
            opts.lease or 60, opts.poll or 10, opts.sweep_key and (", sweep_key = %q"):format(opts.sweep_key) or "", sock, opts.mdns == false and "mdns { enabled = false }" or "", opts.policy or ""))
        local p = lab:bg(host, "exec " .. q(BIN) .. " agent -c " .. q(cfg))
        procs[#procs + 1] = p
        lu.assertNotNil(lab:wait_log(p, "agent started", 10), p:output())
        return p, sock
    end

    -- the agent's own timestamp (s since midnight UTC) of the first line of
    -- p's log containing text
    local function log_time(p, text)
        for l in p:output():gmatch("[^\n]+") do
            if l:find(text, 1, true) then
                local h, m, sec = l:match("^%d+%-%d+%-%d+T(%d+):(%d+):([%d%.]+)Z")
                if h then return tonumber(h) * 3600 + tonumber(m) * 60 + tonumber(sec) end
            end
        end
        lu.fail("no line with " .. text .. " in " .. p.log .. ":\n" .. S.tail(p:output()))
    end

    -- fn() while the DNS server is stopped ("stop") or hung ("pause"); the
    -- server is back after it whatever fn did (then fn's error is raised)
    local function server_away(how, fn)
        if how == "pause" then lab:dns_pause() else lab:dns_stop() end
        local ok, err = pcall(fn)
        if how == "pause" then lab:dns_resume() else lab:dns_start() end
        if not ok then error(err, 0) end
    end

    function T:test_publishes_replaces_a_crashed_runs_records_and_withdraws_on_sigterm()
        -- what a crashed earlier run left: another port, address and TXT
        local _, out, code = lab:exec("h1", ("timeout 30 %s %s %s %s h1 h1.%s 9999 --addr 10.77.1.99 --txt stale=1")
            :format(q(TOOL), server, q(lab:key("h1")), zone, zone))
        lu.assertEquals(code, 0, out)
        lu.assertEquals(srv("h1"), "0 0 9999 h1." .. zone .. ".\n")

        local flag = path("txt.flag")
        local p, sock = agent("h1", { policy = S.set_txt_when(flag, '{ model = "gemma", load = "7" }') })
        local line = await(p, "wide%-area: published \"h1\"")
        note("first publish: %s", line:match("%((.-)%)$") or line)
        -- RFC 6763 as read from the other subnet: PTR -> SRV -> TXT, A/AAAA
        lu.assertEquals(dig("h2", "_lmserv._tcp." .. zone .. " PTR +short"), "h1._lmserv._tcp." .. zone .. ".\n")
        lu.assertEquals(srv("h1"), "0 0 8000 h1." .. zone .. ".\n")
        local t = txt("h1")
        lu.assertStrContains(t, '"info=gemma 2b"')
        lu.assertStrContains(t, '"model=gemma"')
        lu.assertNotStrContains(t, "stale")
        lu.assertEquals(dig("h2", "h1." .. zone .. " A +short"), "10.77.1.1\n")
        lu.assertEquals(dig("h2", "h1." .. zone .. " AAAA +short"), "fd77:0:0:1::1\n")
        local full = dig("h2", "h1._lmserv._tcp." .. zone .. " SRV")
        lu.assertStrContains(full, "status: NOERROR")
        lu.assertStrContains(full, "flags: qr aa") -- answered by the authority
        local m = metrics("h1", sock)
        lu.assertEquals(metric(m, 'lmdisc_dns_updates_total{result="ok"}'), 1, m)
        lu.assertEquals(metric(m, "lmdisc_dns_published"), 1, m)
        note("update: %g s, %g bytes", metric(m, "lmdisc_dns_update_seconds"), metric(m, "lmdisc_dns_update_bytes"))

        -- set_txt goes out as an update
        local t0 = Lab.now()
        S.write(flag, "")
        line = await(p, "wide%-area: published \"h1\"", 10, 2)
        note("TXT change reached the zone %.2f s after the flag (policy polls every 0.2 s): %s", Lab.now() - t0,
            line:match("%((.-)%)$") or line)
        lu.assertStrContains(txt("h1"), '"load=7"')
        lu.assertEquals(srv("h1"), "0 0 8000 h1." .. zone .. ".\n")

        -- SIGTERM: the records are gone, the agent too, within 2 s
        t0 = Lab.now()
        p:signal("TERM")
        lu.assertEquals(p:wait(5), 0, p:output())
        local took = Lab.now() - t0
        note("SIGTERM to exit with the withdraw: %.2f s", took)
        lu.assertTrue(took < 2, ("took %.2f s"):format(took))
        lu.assertStrContains(p:output(), 'wide-area: withdrew "h1" from ' .. zone)
        lu.assertStrContains(dig("h2", "h1._lmserv._tcp." .. zone .. " SRV"), "status: NXDOMAIN")
        lu.assertStrContains(dig("h2", "h1." .. zone .. " A"), "status: NXDOMAIN")
        lu.assertNotStrContains(dig("h2", "_lmserv._tcp." .. zone .. " PTR +short"), "h1._lmserv")
    end

    function T:test_another_hosts_key_is_refused_and_says_which_name_and_why()
        local p, sock = agent("h2", { key = lab:key("h3") })
        local line = await(p, "wide%-area: update of h2%._lmserv%._tcp%." .. zone:gsub("%.", "%%.") .. " refused")
        lu.assertStrContains(line, "h3-key")
        lu.assertStrContains(line, "no grant")
        lu.assertStrContains(line, "h2._lmserv._tcp." .. zone .. " SRV TXT")
        lu.assertStrContains(line, "h2." .. zone .. " A AAAA")
        if kind == "named" then lu.assertStrContains(line, "REFUSED") else lu.assertStrContains(line, "BADKEY") end
        lu.assertEquals(srv("h2"), "") -- nothing of h2's in the zone
        lu.assertStrContains(dig("h2", "h2._lmserv._tcp." .. zone .. " SRV"), "status: NXDOMAIN")
        -- counted, and the mDNS side announced all the same
        await(p, "^.*announced \"h2\"")
        local m = metrics("h2", sock)
        lu.assertTrue(metric(m, ('lmdisc_dns_updates_total{result="%s"}'):format(kind == "named" and "refused" or "badkey")) >= 1, m)
        lu.assertEquals(metric(m, "lmdisc_dns_published"), 0, m)
        lu.assertStrContains(m, 'lmdisc_service_announced{name="h2",port="8000",state="established",source="config"} 1')
        -- a clean stop with nothing in the zone is quick
        local t0 = Lab.now()
        p:signal("TERM")
        lu.assertEquals(p:wait(5), 0, p:output())
        lu.assertTrue(Lab.now() - t0 < 2)
    end

    function T:test_server_down_and_back_the_agent_retries_and_mdns_is_unaffected()
        local flag = path("txt.flag")
        local p, sock = agent("h1", { port = 8001, policy = S.set_txt_when(flag, '{ model = "gemma", load = "9" }') })
        await(p, "wide%-area: published \"h1\"")
        await(p, "announced \"h1\"") -- over mDNS too
        local t0
        server_away("stop", function()
            S.write(flag, "")
            local line = await(p, "wide%-area: DNS server " .. server:gsub("%.", "%%.") .. " unreachable", 15)
            lu.assertStrContains(line, "mDNS unaffected")
            -- h3, on h1's link, still sees h1 over mDNS, with the new TXT
            local out
            for _ = 1, 10 do
                out = select(2, lab:exec("h3", "timeout 10 avahi-browse -rpt _lmserv._tcp"))
                if out:find('"load=9"', 1, true) then break end
                Lab.sleep(0.5)
            end
            lu.assertStrContains(out, '"load=9"', out)
            local m = metrics("h1", sock)
            lu.assertTrue(metric(m, 'lmdisc_dns_updates_total{result="unreachable"}') >= 1, m)
            lu.assertStrContains(m, 'state="established",source="config"} 1')
            t0 = Lab.now()
        end)
        local line = await(p, "wide%-area: published \"h1\".*server back", 40)
        note("republished %.1f s after the server was started again: %s", Lab.now() - t0, line)
        lu.assertStrContains(txt("h1"), '"load=9"')
        lu.assertEquals(srv("h1"), "0 0 8001 h1." .. zone .. ".\n")
    end

    function T:test_sigterm_with_a_dead_server_is_bounded()
        local p = agent("h1", { port = 8002 })
        await(p, "wide%-area: published \"h1\"")
        lab:dns_stop()
        local t0 = Lab.now()
        p:signal("TERM")
        local code = p:wait(5)
        local took = Lab.now() - t0
        lab:dns_start()
        lu.assertEquals(code, 0, p:output())
        note("SIGTERM to exit with the server down: %.2f s", took)
        lu.assertTrue(took < 2, ("took %.2f s"):format(took))
        lu.assertStrContains(p:output(), "could not withdraw")
    end

    function T:test_a_silent_server_cannot_hold_shutdown()
        -- the server goes silent (SIGSTOP) once the agent published: the
        -- withdraw on SIGTERM times out, and the agent still exits within
        -- 2 s (with the server silent from the start the browse list is
        -- asked first and the publish goes out 3 s later, to the domain)
        local p = agent("h1", { port = 8004 })
        await(p, 'wide%-area: published "h1"')
        lab:dns_pause()
        local t0 = Lab.now()
        p:signal("TERM")
        local code = p:wait(5)
        local took = Lab.now() - t0
        lab:dns_resume()
        lu.assertEquals(code, 0, p:output())
        note("SIGTERM to exit with a silent server: %.2f s", took)
        lu.assertTrue(took < 2, ("took %.2f s"):format(took))
        lu.assertStrContains(p:output(), "no answer to the withdraw within 1.2 s")
    end

    function T:test_a_wrong_secret_says_badsig_and_wrong_key()
        local f = assert(io.open(lab:key("h1")))
        local text = f:read("a")
        f:close()
        local forged = path("forged.key")
        S.write(forged, (text:gsub('secret "[^"]+"', 'secret "' .. ("QUFB"):rep(11) .. '"')))
        os.execute("chmod 600 " .. q(forged))
        local p, sock = agent("h1", { port = 8005, key = forged })
        -- the publisher's first signed exchange is reading the browse list
        -- (which shards): the server's unsigned BADSIG is not believed, but
        -- the likely cause is said
        local line = await(p, "wide%-area: cannot read the browse domains of")
        lu.assertStrContains(line, "BADSIG")
        lu.assertStrContains(line, "the secret of key h1-key (" .. forged .. ") is not the one the server has")
        lu.assertTrue(metric(metrics("h1", sock), "lmdisc_dns_unsigned_total") >= 1)
        -- a key file of the wrong mode: the agent does not start, and says why
        os.execute("chmod 644 " .. q(forged))
        local cfg = path("loose.lua")
        S.write(cfg, ('announce { port = 8006, name = "h1" }\nwide_area { domain = %q, server = %q, key = %q }\n'
            .. 'api { socket = %q }\n'):format(zone, server, forged, path("loose.sock")))
        local ok, out = lab:exec("h1", "timeout 10 " .. q(BIN) .. " agent -c " .. q(cfg))
        lu.assertFalse(ok, out)
        lu.assertStrContains(out, "wide_area.key: ")
        lu.assertStrContains(out, "mode 0644 lets")
    end

    function T:test_refreshed_at_half_the_lease()
        -- the browse records stay byte-identical across refreshes (neither
        -- server bumps the browse zone's serial: browsers transfer nothing);
        -- the refresh's evidence is the liveness record in _live.ZONE
        local p = agent("h1", { port = 8007, lease = 20 })
        await(p, "wide%-area: published \"h1\"")
        local t0 = Lab.now()
        local live_name = "h1.h1._live." .. zone
        local function live_of()
            local deadline = Lab.now() + 5
            repeat
                local v = dig("h2", live_name .. " TXT +short"):match('"lmd%-live=(%x+/20)"')
                if v then return v end
                Lab.sleep(0.1)
            until Lab.now() > deadline
            lu.fail("no liveness record at " .. live_name .. ": " .. dig("h2", live_name .. " TXT"))
        end
        local serial = dig("h2", zone .. " SOA +short"):match("^%S+ %S+ (%d+)")
        local lserial = dig("h2", "_live." .. zone .. " SOA +short"):match("^%S+ %S+ (%d+)")
        local before = { srv("h1"), txt("h1"), dig("h2", "_lmserv._tcp." .. zone .. " PTR +short") }
        lu.assertNotStrContains(before[2], "lmd-live")
        local live = live_of()
        await(p, "wide%-area: refreshed \"h1\"", 20)
        local took = Lab.now() - t0
        local live2 = live_of()
        local deadline = Lab.now() + 5
        while live2 == live and Lab.now() < deadline do Lab.sleep(0.1); live2 = live_of() end
        local after = dig("h2", zone .. " SOA +short"):match("^%S+ %S+ (%d+)")
        local lafter = dig("h2", "_live." .. zone .. " SOA +short"):match("^%S+ %S+ (%d+)")
        note("refreshed %.1f s after the publish (lease 20 s); browse serial %s -> %s, liveness serial %s -> %s, "
            .. "lmd-live %s -> %s", took, serial, after, lserial, lafter, live, live2)
        lu.assertEquals(after, serial, "a refresh does not change the browse zone")
        lu.assertEquals({ srv("h1"), txt("h1"), dig("h2", "_lmserv._tcp." .. zone .. " PTR +short") }, before)
        lu.assertNotEquals(lafter, lserial)
        lu.assertNotEquals(live2, live)
        lu.assertTrue(took >= 8.5 and took <= 11.5, ("refreshed after %.1f s"):format(took))
        -- SIGTERM: the liveness record goes with the records
        p:signal("TERM")
        lu.assertEquals(p:wait(5), 0, p:output())
        deadline = Lab.now() + 5
        while dig("h2", live_name .. " TXT +short") ~= "" and Lab.now() < deadline do Lab.sleep(0.1) end
        lu.assertEquals(dig("h2", live_name .. " TXT +short"), "")
    end

    -- browsing: h2 (subnet 2) sees h1 (subnet 1) through the domain only,
    -- with the policy's hooks, and sees it leave after h1's SIGTERM
    local HOOKS = [[
local function rec(...) local f = io.open(%q, "a"); f:write(table.concat({...}, "|"), "\n"); f:close() end
function on_join(peer)
  local a = {}
  for _, x in ipairs(peer.addresses or {}) do a[#a + 1] = x.addr or tostring(x) end
  table.sort(a)
  rec("join", peer.name, peer.domain, peer.host or "", peer.port, peer.txt.model or "", table.concat(a, ","))
end
function on_update(peer) rec("update", peer.name, peer.txt.load or "") end
function on_leave(peer, reason) rec("leave", peer.name, reason) end
]]

    function T:test_browse_sees_the_other_subnet_through_dns()
        local rec = path("rec.txt")
        local flag = path("txt.flag")
        local p2 = agent("h2", { port = 8010, poll = 1, policy = HOOKS:format(rec) })
        local p1 = agent("h1", { port = 8011, poll = 1, policy = S.set_txt_when(flag, '{ model = "gemma", load = "5" }') })
        await(p1, "wide%-area: published \"h1\"")
        local line = await(rec, "^join|h1|")
        -- the agent logs an event after its hooks ran: wait for the line
        await(p2, 'join "h1"', 5)
        local join = log_time(p2, 'join "h1"') - log_time(p1, 'wide-area: published "h1"')
        note("h2 saw h1 join through DNS %.2f s after h1's update was applied (poll 1 s)", join)
        lu.assertTrue(join <= 1.5, ("join after %.2f s"):format(join))
        local f = S.fields(line)
        lu.assertEquals(f[3], zone, line)
        lu.assertEquals(f[4], "h1." .. zone, line)
        lu.assertEquals(f[5], "8011", line)
        lu.assertEquals(f[6], "gemma", line)
        lu.assertStrContains(f[7], "10.77.1.1", line)
        lu.assertStrContains(f[7], "fd77:0:0:1::1", line)
        -- never h2 itself, never over mDNS across the router
        lu.assertNotStrContains(S.read(rec), "join|h2|")
        -- a TXT change is an update
        S.write(flag, "")
        await(rec, "^update|h1|5")
        -- SIGTERM: the leave within poll + 0.5 s of the withdraw
        p1:signal("TERM")
        lu.assertEquals(p1:wait(5), 0, p1:output())
        await(rec, "^leave|h1|goodbye", 5)
        await(p2, 'leave "h1"', 5)
        local leave = log_time(p2, 'leave "h1"') - log_time(p1, 'wide-area: withdrew "h1"')
        note("h2 saw h1 leave %.2f s after h1's withdraw (poll 1 s)", leave)
        lu.assertTrue(leave <= 1.5, ("leave after %.2f s"):format(leave))
        lu.assertStrContains(p2:output(), "wide-area browse: reading _lmserv._tcp." .. zone)
        -- read by transfer (the lab's servers transfer to any host key)
        lu.assertStrContains(p2:output(), "wide-area browse: " .. zone .. " transferred (")
        lu.assertNotStrContains(p2:output(), "no transfer of")
    end

    function T:test_answers_not_signed_by_the_key_are_dropped_and_never_a_reason_to_read_otherwise()
        -- an observer whose key the server does not know (its secret
        -- forged): the server answers its signed SOA polls unsigned (BADSIG),
        -- exactly what a forger would send.  Nothing in them is believed:
        -- dropped, counted, said once; the agent never falls back to
        -- unsigned reads, so it learns nothing of h1 (and nothing false)
        local f = assert(io.open(lab:key("h2")))
        local text = f:read("a")
        f:close()
        local forged = path("forged.key")
        S.write(forged, (text:gsub('secret "[^"]+"', 'secret "' .. ("QUFB"):rep(11) .. '"')))
        os.execute("chmod 600 " .. q(forged))
        local rec = path("rec.txt")
        local p2, sock2 = agent("h2", { observe = true, key = forged, poll = 1, policy = HOOKS:format(rec) })
        local p1 = agent("h1", { port = 8018, poll = 1 })
        await(p1, "wide%-area: published \"h1\"")
        local line = await(p2, "wide%-area browse: an answer about " .. zone:gsub("%.", "%%.") .. " not signed by key")
        lu.assertStrContains(line, "never believed")
        await_polls("h2", sock2, 2, 20) -- two more checks, each waiting out its query's timeout
        local m = metrics("h2", sock2)
        lu.assertTrue(metric(m, "lmdisc_dns_unsigned_total") >= 2, m)
        lu.assertEquals(metric(m, 'lmdisc_dns_polls_total{result="read"}'), 0, m)
        lu.assertTrue(metric(m, 'lmdisc_dns_polls_total{result="failed"}') >= 2, m)
        lu.assertNotStrContains(S.read(rec) or "", "join|h1|")
        lu.assertEquals(select(2, p2:output():gsub("not signed by key", "")), 1, p2:output())
        lu.assertNotStrContains(p2:output(), "no transfer of")
        lu.assertNotStrContains(p2:output(), "with queries")
        lu.assertNotStrContains(p2:output(), "wide-area: publishing")
    end

    function T:test_a_peer_on_the_same_link_is_one_peer_from_both_sources()
        -- h3 shares h1's link: it sees h1 over mDNS and through DNS, and
        -- reports one join and one leave
        -- sources: {"mdns", "dns"} in the JSON and the policy's peer (at the
        -- join when both sources answered before it, else at an update), then
        -- {"mdns"} once h1's records are withdrawn from the domain
        local cjson = require "cjson"
        local rec, srcs = path("rec.txt"), path("sources.txt")
        local p3, sock3 = agent("h3", { port = 8012, poll = 1, policy = HOOKS:format(rec) .. ([[
local function sources(peer)
  if peer.name == "h1" then
    local f = io.open(%q, "a"); f:write(table.concat(peer.sources, ","), "\n"); f:close()
  end
end
local hooks_join, hooks_update = on_join, on_update
function on_join(peer) hooks_join(peer); sources(peer) end
function on_update(peer, old, changes) hooks_update(peer); sources(peer) end
]]):format(srcs) })
        local p1 = agent("h1", { port = 8013, poll = 1 })
        await(rec, "^join|h1|")
        await(p3, "resolved \"h1\"")                       -- mDNS
        await_polls("h3", sock3, 2)                         -- and two reads of the domain
        local joins = select(2, S.read(rec):gsub("join|h1|", ""))
        lu.assertEquals(joins, 1, S.read(rec))
        local function h1_json(want)
            local doc
            for _ = 1, 40 do
                local _, out = lab:exec("h3", "curl -s --max-time 5 --unix-socket " .. q(sock3) .. " http://agent/v1/peers/h1")
                local ok, d = pcall(cjson.decode, out)
                doc = ok and d or out
                if ok and type(d) == "table" and table.concat(d.sources or {}, ",") == want then break end
                Lab.sleep(0.25)
            end
            return doc
        end
        local doc = h1_json("mdns,dns")
        lu.assertEquals(doc.sources, { "mdns", "dns" }, cjson.encode(doc))
        lu.assertFalse(doc.conflict, cjson.encode(doc))
        lu.assertEquals(doc.host, "h1.local", "the nearer instance speaks")
        lu.assertNotEquals(doc.addresses[1].interface, "dns", "the nearest addresses first")
        lu.assertEquals(await(srcs, "^mdns,dns$"), "mdns,dns")
        -- the DNS side gone (withdrawn; h1 refreshes only at half its 60 s lease)
        local _, out, code = lab:exec("h1", ("timeout 30 %s %s %s %s h1 h1.%s 8013 --withdraw")
            :format(q(TOOL), server, q(lab:key("h1")), zone, zone))
        lu.assertEquals(code, 0, out)
        doc = h1_json("mdns")
        lu.assertEquals(doc.sources, { "mdns" }, type(doc) == "table" and cjson.encode(doc) or doc)
        lu.assertEquals(await(srcs, "^mdns$"), "mdns")
        lu.assertNotStrContains(S.read(rec), "leave|h1|")
        p1:signal("TERM")
        lu.assertEquals(p1:wait(5), 0, p1:output())
        await(rec, "^leave|h1|", 10)
        await_polls("h3", sock3, 2) -- a second leave (through DNS) would have come by now
        local text = S.read(rec)
        lu.assertEquals(select(2, text:gsub("leave|h1|", "")), 1, text)
        lu.assertEquals(select(2, text:gsub("join|h1|", "")), 1, text)
        lu.assertNotStrContains(text, "join|h3|")
    end

    function T:test_server_away_the_browser_keeps_its_peers()
        local rec = path("rec.txt")
        local p2, sock2 = agent("h2", { port = 8014, poll = 1, policy = HOOKS:format(rec) })
        agent("h1", { port = 8015, poll = 1 })
        await(rec, "^join|h1|")
        server_away("stop", function()
            await(p2, "wide%-area browse: reading .* failed; keeping the peers", 10)
            await_polls("h2", sock2, 2) -- two more failed reads, peers kept
        end)
        await(p2, "wide%-area browse: reading .* again", 15)
        await_polls("h2", sock2, 2)
        local m = metrics("h2", sock2)
        lu.assertTrue(metric(m, 'lmdisc_dns_polls_total{result="failed"}') >= 1, m)
        lu.assertTrue(metric(m, 'lmdisc_dns_polls_total{result="unchanged"}') >= 1, m)
        lu.assertEquals(metric(m, "lmdisc_dns_services"), 2, m) -- h1's and h2's own
        local text = S.read(rec)
        lu.assertEquals(select(2, text:gsub("join|h1|", "")), 1, text)
        lu.assertNotStrContains(text, "leave|h1|")
    end

    function T:test_health_status_reaches_the_zone()
        -- nothing listens on 8016 yet: status=down; then a listener: status=up
        local p = agent("h1", { port = 8016, policy =
            'health { tcp = 8016, on_fail = "status", interval = 0.2, failures = 1, timeout = 0.2 }' })
        await(p, "wide%-area: published \"h1\"")
        local t = txt("h1")
        lu.assertStrContains(t, '"status=down"')
        local l = lab:bg("h1", "exec python3 -c " .. q("import socket,time\ns=socket.socket()\n"
            .. "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',8016))\ns.listen(8)\n"
            .. "print('ready',flush=True)\nwhile True:\n  c,_=s.accept(); c.close()"))
        procs[#procs + 1] = l
        await(l, "^ready")
        await(p, "wide%-area: published \"h1\"", 10, 2)
        lu.assertStrContains(txt("h1"), '"status=up"')
    end

    -- liveness: a crashed publisher (SIGKILL, no withdraw) leaves with
    -- reason expired within lease + poll on the observer's own clock, and
    -- an observer with the sweeper key removes its stale records
    -- h2 watches the domain with the sweeper key; h1 (lease 10 s) has joined
    local function sweeper_watching_h1(port)
        local rec = path("rec.txt")
        local p2, sock2 = agent("h2", { observe = true, poll = 1, sweep_key = lab:key("sweeper"),
            policy = HOOKS:format(rec) })
        local p1 = agent("h1", { port = port, lease = 10, poll = 1 })
        await(rec, "^join|h1|")
        return p1, p2, sock2, rec
    end

    function T:test_a_crashed_peer_expires_within_lease_plus_poll_and_is_swept()
        -- a browser without the sweep key (h3) sees the crashed h1 leave
        -- once the sweeper (h2) removed its records: the sweeper follows the
        -- liveness zone, the browser only the browse zone
        local rec3 = path("rec3.txt")
        local p3, sock3 = agent("h3", { observe = true, poll = 1, mdns = false, policy = HOOKS:format(rec3) })
        local p1, p2, sock2, rec = sweeper_watching_h1(8020)
        await(rec3, "^join|h1|")
        Lab.sleep(2 + math.random() * 4)  -- anywhere between two refreshes
        local t0 = Lab.now()
        p1:signal("KILL")
        p1:wait(5)
        await(p2, "wide%-area sweeper: \"h1\" on h1 was not refreshed for 10 s", 16)
        await(rec3, "^leave|h1|goodbye", 16)
        local took = Lab.now() - t0
        note("crashed h1 (lease 10 s, poll 1 s) left a browser without the sweep key %.2f s after the SIGKILL", took)
        lu.assertTrue(took <= 10 + 1 + 2 + 1, ("left %.2f s after the crash"):format(took))
        lu.assertTrue(took >= 3, ("left %.2f s after the crash, before its lease could have run out"):format(took))
        await(rec, "^leave|h1|", 5)
        await(p2, "wide%-area browse: removed the stale records of \"h1\"", 5)
        lu.assertEquals(dig("h2", "h1.h1._live." .. zone .. " TXT +short"), "")
        local m3 = metrics("h3", sock3)
        lu.assertEquals(metric(m3, 'lmdisc_dns_sweeps_total{result="swept"}'), 0, m3)
        lu.assertNil(m3:match("lmdisc_dns_live_polls_total"), "a browser does not read the liveness zone")
        p3:signal("TERM")
        lu.assertEquals(srv("h1"), "")
        lu.assertEquals(txt("h1"), "")
        lu.assertNotStrContains(dig("h2", "_lmserv._tcp." .. zone .. " PTR +short"), "h1._lmserv")
        -- the SRV target's addresses are not the sweeper's to judge: they stay
        lu.assertEquals(dig("h2", "h1." .. zone .. " A +short"), "10.77.1.1\n")
        local m = metrics("h2", sock2)
        -- the liveness record, then the records
        lu.assertEquals(metric(m, 'lmdisc_dns_sweeps_total{result="swept"}'), 2, m)
        lu.assertEquals(metric(m, "lmdisc_dns_live_expired_total"), 1, m)
        lu.assertEquals(select(2, S.read(rec):gsub("leave|h1|", "")), 1, S.read(rec))
    end

    -- the server is down when the lease runs out: the peer leaves all the
    -- same (the observer's own clock), the sweep finds no server, and it is
    -- tried again until the server is back
    function T:test_a_sweep_that_finds_no_server_is_tried_again()
        local p1, p2, sock2, rec = sweeper_watching_h1(8022)
        p1:signal("KILL")
        p1:wait(5)
        server_away("stop", function()
            await(p2, "wide%-area sweeper: \"h1\" on h1 was not refreshed", 16)
            local line = await(p2, "could not remove the stale liveness record of \"h1\".*trying again in", 10)
            note("%s", line:match("could not.*"))
        end)
        await(p2, "wide%-area browse: removed the stale records of \"h1\" from ", 30)
        await(rec, "^leave|h1|goodbye", 10)
        lu.assertEquals(srv("h1"), "")
        local m = metrics("h2", sock2)
        lu.assertEquals(metric(m, 'lmdisc_dns_sweeps_total{result="swept"}'), 2, m)
        lu.assertEquals(metric(m, 'lmdisc_dns_sweeps_total{result="failed"}'), 0, m)
        lu.assertEquals(select(2, S.read(rec):gsub("leave|h1|", "")), 1, S.read(rec))
    end

    -- a whole rack expires at once while the server hangs (stops answering
    -- without refusing): at most 8 sweeps are in flight (sockets), the
    -- rest wait, those that timed out are tried again, and all are swept
    -- once the server answers again
    function T:test_a_rack_expiring_at_once_is_swept_8_at_a_time()
        local N = 24
        local cmds = {}
        for i = 1, N do
            cmds[#cmds + 1] = ("timeout 30 %s %s %s %s x%02d h1.%s %d --addr 10.77.1.1 --txt lmd-live=%08x/10")
                :format(q(TOOL), server, q(lab:key("admin")), zone, i, zone, 9000 + i, i)
        end
        local ok, out = lab:exec("h1", table.concat(cmds, " && "))
        lu.assertTrue(ok, out)
        local rec = path("rec.txt")
        local p2, sock2 = agent("h2", { observe = true, poll = 1, sweep_key = lab:key("sweeper"),
            policy = HOOKS:format(rec) })
        for i = 1, N do await(rec, ("^join|x%02d|"):format(i)) end
        local most = 0
        server_away("pause", function()
            await(rec, "^leave|x%d%d|expired", 16)
            -- sweeps time out after 3 s: sample while the first ones wait
            local t = Lab.now()
            while Lab.now() < t + 2.5 do
                local _, n = lab:exec("h2", "ss -Hanu dst " .. server .. " | wc -l")
                most = math.max(most, tonumber(n:match("%d+")) or 0)
                Lab.sleep(0.1)
            end
            await(p2, "could not remove the stale records of .*trying again in", 10)
        end)
        note("%d services expired at once, server hung: at most %d sockets to it (8 sweeps, the SOA polls of the "
            .. "zone and of its liveness zone)", N, most)
        lu.assertTrue(most >= 8 and most <= 10, ("%d sockets to the server"):format(most))
        -- swept, or "kept" (NXDOMAIN): the hung server, back, first ran the
        -- tries that had timed out (their answers went nowhere), so a later
        -- try found the records gone
        local m, done
        for _ = 1, 160 do
            m = metrics("h2", sock2)
            done = metric(m, 'lmdisc_dns_sweeps_total{result="swept"}') + metric(m, 'lmdisc_dns_sweeps_total{result="kept"}')
            if done == N then break end
            Lab.sleep(0.25)
        end
        lu.assertEquals(done, N, m)
        lu.assertEquals(metric(m, 'lmdisc_dns_sweeps_total{result="failed"}'), 0, m)
        lu.assertEquals(dig("h2", "_lmserv._tcp." .. zone .. " PTR +short"), "")
    end

    -- the sweeper's compare-and-delete of a liveness record is refused once
    -- a refresh changed it: the refresh is never lost, whoever wins the
    -- race; and the publisher's next refresh puts back what a sweep took
    function T:test_a_refresh_racing_the_sweep_survives()
        local p1 = agent("h1", { port = 8021, lease = 10 })
        await(p1, "wide%-area: published \"h1\"")
        local live_name = "h1.h1._live." .. zone
        local function live()
            local deadline = Lab.now() + 5
            repeat
                local v = dig("h2", live_name .. " TXT +short"):match('"lmd%-live=([^"]+)"')
                if v then return v end
                Lab.sleep(0.1)
            until Lab.now() > deadline
            lu.fail("no liveness record: " .. dig("h2", live_name .. " TXT"))
        end
        local function sweep(value)
            local script = path("sweep.nsupdate")
            S.write(script, ('server %s\nzone _live.%s\nprereq yxrrset %s TXT "lmd-live=%s"\nupdate delete %s TXT\nsend\n')
                :format(server, zone, live_name, value, live_name))
            local _, out, code = lab:exec("h2", "timeout 30 nsupdate -k " .. q(lab:key("sweeper")) .. " " .. q(script))
            return code, out
        end
        local stale = live()
        await(p1, "wide%-area: refreshed \"h1\"", 10)
        local deadline = Lab.now() + 5
        while live() == stale and Lab.now() < deadline do Lab.sleep(0.1) end
        local code, out = sweep(stale)
        lu.assertNotEquals(code, 0, out)
        lu.assertStrContains(out, "NXRRSET")
        lu.assertNotEquals(live(), stale)
        -- the same with the value the zone holds (h1 stopped: no refresh in between)
        p1:signal("STOP")
        local ok, err = pcall(function()
            code, out = sweep(live())
            lu.assertEquals(code, 0, out)
            lu.assertEquals(dig("h2", live_name .. " TXT +short"), "")
        end)
        p1:signal("CONT")
        if not ok then error(err, 0) end
        -- and h1's next refresh puts it back
        await(p1, "wide%-area: refreshed \"h1\"", 10, 2)
        lu.assertNotNil(live())
        lu.assertEquals(srv("h1"), "0 0 8021 h1." .. zone .. ".\n")
    end

    -- a host key (grants for its own names only) cannot sweep another's
    -- records: the sweep fails, says what grant is missing, the records stay
    function T:test_a_sweep_without_the_grant_is_refused_and_says_so()
        local rec = path("rec.txt")
        local p2, sock2 = agent("h2", { observe = true, poll = 1, sweep_key = lab:key("h2"), policy = HOOKS:format(rec) })
        local p1 = agent("h1", { port = 8022, lease = 10, poll = 1 })
        await(rec, "^join|h1|")
        p1:signal("KILL")
        p1:wait(5)
        local line = await(p2, "wide%-area browse: could not remove the stale liveness record of \"h1\"", 16)
        lu.assertStrContains(line, "grant")
        lu.assertEquals(srv("h1"), "0 0 8022 h1." .. zone .. ".\n")
        -- nothing removed, so nothing left: the records stay, and the peer
        -- with them (only a sweep makes a crashed peer leave)
        await_polls("h2", sock2, 2)
        lu.assertEquals(select(2, S.read(rec):gsub("join|h1|", "")), 1, S.read(rec))
        lu.assertNotStrContains(S.read(rec), "leave|h1|")
        -- h1's liveness record goes with the admin key (a later sweeper must not find it)
        local _, lout, lcode = lab:exec("h1", ("printf 'server %s\\nzone _live.%s\\nupdate delete h1.h1._live.%s TXT\\nsend\\n' | "
            .. "timeout 30 nsupdate -k %s"):format(server, zone, zone, q(lab:key("admin"))))
        lu.assertEquals(lcode, 0, lout)
        -- what the crash left goes with h1's own key (the next tests' h1 is new)
        local _, out = lab:exec("h1", ("%s %s %s %s h1 h1.%s 0 --withdraw"):format(q(TOOL), server, q(lab:key("h1")),
            zone, zone))
        lu.assertStrContains(out, "rc=0", out)
    end

    -- a fleet of 500 services (PTR set over BIND's default per-type limit of
    -- 100, a zone over one 64 KiB message): the agent reads it whole once
    -- (AXFR over several TCP messages), then only what changed (IXFR)
    function T:test_500_services_read_whole_once_then_only_changes()
        local function nsupdate(lines)
            local f = path("batch.nsu")
            S.write(f, ("server %s\nzone %s\n"):format(server, zone) .. table.concat(lines, "\n") .. "\nsend\n")
            local ok, out = lab:exec("h3", ("nsupdate -t 20 -k %s %s"):format(q(lab:key("admin")), q(f)))
            lu.assertTrue(ok, out)
        end
        local function svc(k, model, verb)
            local inst = ("f%03d._lmserv._tcp.%s."):format(k, zone)
            return {
                ("update %s _lmserv._tcp.%s. 60 PTR %s"):format(verb, zone, inst),
                ("update %s %s 60 SRV 0 0 %d f%03d.%s."):format(verb, inst, 9000 + k, k, zone),
                ("update %s %s 60 TXT \"model=%s\""):format(verb, inst, model),
                ("update %s f%03d.%s. 60 A 10.77.9.%d"):format(verb, k, zone, k % 250 + 1),
            }
        end
        local batch = {}
        for k = 1, 500 do
            for _, l in ipairs(svc(k, "m" .. k, "add")) do batch[#batch + 1] = l end
            if #batch >= 400 then nsupdate(batch); batch = {} end
        end
        local rec = path("rec.txt")
        local ok, err = pcall(function()
            local p2, sock2 = agent("h2", { observe = true, poll = 1, policy = HOOKS:format(rec) })
            local line = await(p2, "wide%-area browse: " .. zone:gsub("%.", "%%.") .. " transferred %(AXFR", 20)
            local msgs = tonumber(line:match("(%d+) messages"))
            note("500 services: %s", line:match("%((.*)%)"))
            lu.assertTrue(msgs > 1, line)
            lu.assertStrContains(line, "500 services")
            local m = metrics("h2", sock2)
            lu.assertEquals(metric(m, "lmdisc_dns_services"), 500, m)
            local joins = 0
            for _ = 1, 100 do
                joins = select(2, S.read(rec):gsub("join|f%d+|", ""))
                if joins >= 500 then break end
                Lab.sleep(0.1)
            end
            lu.assertEquals(joins, 500)
            local before = metric(m, 'lmdisc_dns_read_bytes_total{direction="received"}')
            -- one service changes its TXT: an IXFR of that change, one update event
            nsupdate({ ("update delete f007._lmserv._tcp.%s. TXT"):format(zone),
                ("update add f007._lmserv._tcp.%s. 60 TXT \"model=m7\" \"load=9\""):format(zone) })
            line = await(p2, "transferred %(IXFR", 10)
            note("one change: %s", line:match("%((.*)%)"))
            lu.assertStrContains(line, "changes, 1 messages")
            await(rec, "^update|f007|9", 5)
            m = metrics("h2", sock2)
            local cost = metric(m, 'lmdisc_dns_read_bytes_total{direction="received"}') - before
            note("bytes received for one change among 500 services: %d", cost)
            lu.assertTrue(cost < 2000, ("%d bytes for one change"):format(cost))
            lu.assertEquals(select(2, S.read(rec):gsub("update|", "")), 1, S.read(rec))
        end)
        -- the next tests' zone holds none of these
        batch = {}
        for k = 1, 500 do
            for _, l in ipairs(svc(k, "m" .. k, "delete")) do batch[#batch + 1] = l end
            if #batch >= 400 then nsupdate(batch); batch = {} end
        end
        nsupdate({ ("update delete f007._lmserv._tcp.%s. TXT"):format(zone) })
        if not ok then error(err, 0) end
    end

    -- trust { } over DNS: what h1 publishes in the domain is signed for the
    -- domain and its DNS host; h2 (another subnet, require = true) trusts
    -- it, and drops a service an admin wrote by hand (no signature)
    function T:test_signed_announcements_reach_the_other_subnet_and_forgeries_do_not()
        local keys = path("keys")
        os.execute("mkdir -p " .. q(keys))
        local function run(cmd)
            local ok, out = lab:exec("h1", cmd)
            lu.assertTrue(ok, out)
        end
        run(q(BIN) .. " keygen " .. q(keys .. "/fleet"))
        for _, h in ipairs { "h1", "h2" } do
            run(q(BIN) .. " keygen " .. q(keys .. "/" .. h))
            run(("%s certify --fleet-key %s --name '*' --days 1 %s"):format(q(BIN), q(keys .. "/fleet.key"),
                q(keys .. "/" .. h .. ".pub")))
        end
        local function trust(h)
            return ("trust { key = %q, cert = %q, fleet = { %q }, require = true }\n"):format(keys .. "/" .. h .. ".key",
                keys .. "/" .. h .. ".cert", keys .. "/fleet.pub")
        end
        local rec = path("rec.txt")
        local p2, sock2 = agent("h2", { observe = true, poll = 1, policy = trust("h2") .. HOOKS:format(rec) })
        local p1 = agent("h1", { port = 8023, poll = 1, policy = trust("h1") })
        await(p1, "wide%-area: published \"h1\"")
        lu.assertStrContains(txt("h1"), '"lmd-sig=')
        await(rec, "^join|h1|")
        local _, out = lab:exec("h2", "curl -s --max-time 5 --unix-socket " .. q(sock2) .. " http://agent/v1/peers/h1")
        lu.assertStrContains(out, '"trusted":true')
        lu.assertStrContains(out, '"sources":["dns"]')
        -- a hand-written service: plain DNS-SD, no signature: not a peer here
        local _, up = lab:exec("h3", ("%s %s %s %s forged forged.%s 9999 --txt model=evil --addr 10.77.1.3"):format(
            q(TOOL), server, q(lab:key("admin")), zone, zone))
        lu.assertStrContains(up, "rc=0", up)
        local ok, err = pcall(function()
            await(p2, "peer \"forged\" is not trusted .*: kept out", 10)
            await_polls("h2", sock2, 1) -- read again: still kept out
            lu.assertNotStrContains(S.read(rec), "join|forged|")
            local _, peers = lab:exec("h2", "curl -s --max-time 5 --unix-socket " .. q(sock2) .. " http://agent/v1/peers")
            lu.assertNotStrContains(peers, "forged")
        end)
        lab:exec("h3", ("%s %s %s %s forged forged.%s 9999 --withdraw"):format(q(TOOL), server, q(lab:key("admin")),
            zone, zone))
        if not ok then error(err, 0) end
    end

    -- each source verified in its own domain: a trusted peer seen over mDNS
    -- (signed for NAME.local) and DNS (signed for NAME.DOMAIN) stays, and
    -- stays trusted, when its mDNS side goes and DNS holds it
    function T:test_a_trusted_peer_leaving_mdns_stays_through_dns()
        local keys = path("keys")
        os.execute("mkdir -p " .. q(keys))
        local function run(cmd)
            local ok, out = lab:exec("h1", cmd)
            lu.assertTrue(ok, out)
        end
        run(q(BIN) .. " keygen " .. q(keys .. "/fleet"))
        for _, h in ipairs { "h1", "h3" } do
            run(q(BIN) .. " keygen " .. q(keys .. "/" .. h))
            run(("%s certify --fleet-key %s --name '*' --days 1 %s"):format(q(BIN), q(keys .. "/fleet.key"),
                q(keys .. "/" .. h .. ".pub")))
        end
        local function trust(h)
            return ("trust { key = %q, cert = %q, fleet = { %q }, require = true }\n"):format(keys .. "/" .. h .. ".key",
                keys .. "/" .. h .. ".cert", keys .. "/fleet.pub")
        end
        local rec = path("rec.txt")
        local p3, sock3 = agent("h3", { observe = true, poll = 1, policy = trust("h3") .. HOOKS:format(rec) })
        local p1 = agent("h1", { port = 8024, poll = 1, policy = trust("h1") })
        await(p1, "wide%-area: published \"h1\"")
        await(rec, "^join|h1|")
        local function h1(want)
            local out
            for _ = 1, 60 do
                _, out = lab:exec("h3", "curl -s --max-time 5 --unix-socket " .. q(sock3) .. " http://agent/v1/peers/h1")
                if out:find(want, 1, true) then return out end
                Lab.sleep(0.25)
            end
            return out
        end
        local out = h1('"sources":["mdns","dns"]')
        lu.assertStrContains(out, '"sources":["mdns","dns"]')
        lu.assertStrContains(out, '"trusted":true')
        -- h1's mDNS side goes (its avahi-daemon stops: goodbyes); DNS stays
        lab:avahi_stop("h1")
        local ok, err = pcall(function()
            out = h1('"sources":["dns"]')
            lu.assertStrContains(out, '"sources":["dns"]')
            lu.assertStrContains(out, '"trusted":true')
            await_polls("h3", sock3, 2)
            lu.assertNotStrContains(S.read(rec), "leave|h1|")
        end)
        lab:avahi_start("h1")
        if not ok then error(err, 0) end
    end

    function T:test_reload_sends_the_new_txt()
        local p = agent("h1", { port = 8017 })
        await(p, "wide%-area: published \"h1\"")
        local cfg = p.cmd:match("agent %-c '([^']+)'") or p.cmd:match("agent %-c (%S+)")
        local text = S.read(cfg):gsub('model = "gemma"', 'model = "llama"')
        S.write(cfg, text)
        p:signal("HUP")
        await(p, "reloaded")
        await(p, "wide%-area: published \"h1\"", 10, 2)
        lu.assertStrContains(txt("h1"), '"model=llama"')
    end

    function T:test_mdns_disabled_runs_without_avahi_and_publishes_in_dns_only()
        lab:avahi_stop("h3")
        local ok, err = pcall(function()
            local p, sock = agent("h3", { mdns = false })
            await(p, "wide%-area: published \"h3\"")
            lu.assertStrContains(p:output(), "mdns { enabled = false }: neither announcing nor browsing over mDNS")
            lu.assertEquals(srv("h3"), "0 0 8000 h3." .. zone .. ".\n")
            lu.assertEquals(dig("h2", "h3." .. zone .. " A +short"), "10.77.1.3\n")
            local m = metrics("h3", sock)
            lu.assertEquals(metric(m, "lmdisc_mdns_enabled"), 0, m)
            lu.assertEquals(metric(m, "lmdisc_avahi_up"), 0, m)
            -- the configured service counts as established: the zone holds it
            lu.assertStrContains(m, 'lmdisc_service_announced{name="h3",port="8000",state="established",source="config"} 1')
            local _, self = lab:exec("h3", "curl -s --max-time 5 --unix-socket " .. q(sock) .. " http://agent/v1/self")
            lu.assertStrContains(self, '"domain":"' .. zone .. '"')
            lu.assertStrContains(self, '"host":"h3.' .. zone .. '"')
            lu.assertNotStrContains(p:output(), "avahi")
            -- a registration is established in the zone (no mDNS to probe):
            -- its client's stream says so, and it goes with the connection
            local c = lab:bg("h3", "exec curl -sS -N --max-time 60 --unix-socket " .. q(sock) .. " -X PUT -H "
                .. "'Content-Type: application/json' --data-binary '{\"port\":9000,\"info\":\"dns only\"}' "
                .. "http://agent/v1/services/h3-svc")
            procs[#procs + 1] = c
            await(c, '"state":"established"')
            lu.assertEquals(srv("h3-svc"), "0 0 9000 h3." .. zone .. ".\n")
            lu.assertStrContains(txt("h3-svc"), '"info=dns only"')
            await(p, 'announced registered service "h3%-svc" in ' .. zone:gsub("%p", "%%%0"))
            c:signal("TERM")
            await(p, 'wide%-area: withdrew "h3%-svc"')
            lu.assertStrContains(dig("h2", "h3-svc._lmserv._tcp." .. zone .. " SRV"), "status: NXDOMAIN")
            lu.assertEquals(srv("h3"), "0 0 8000 h3." .. zone .. ".\n")
            lu.assertEquals(dig("h2", "h3." .. zone .. " A +short"), "10.77.1.3\n", "the host's address stays")
            p:signal("TERM")
            lu.assertEquals(p:wait(5), 0, p:output())
            lu.assertStrContains(dig("h2", "h3._lmserv._tcp." .. zone .. " SRV"), "status: NXDOMAIN")
        end)
        lab:avahi_start("h3")
        if not ok then error(err, 0) end
        -- with avahi running, an mDNS-less agent announces nothing on the
        -- link: h1's browses (each must succeed) see a control service that
        -- h3's avahi-daemon published after the agent started, and in those
        -- same browses never the agent's "h3" on port 8003
        local p = agent("h3", { mdns = false, port = 8003 })
        await(p, "wide%-area: published \"h3\"")
        local control = lab:bg("h3", "exec avahi-publish-service -s mdns-control _lmserv._tcp 8013")
        procs[#procs + 1] = control
        await(control, "Established under name")
        local out
        for _ = 1, 5 do -- about 1 s each, until the control shows
            out = "\n" .. lab:check("h1", "timeout 15 avahi-browse -rpt _lmserv._tcp")
            if out:find("\n=;eth0;IPv[46];mdns%-control;_lmserv%._tcp;local;h3%.local;[^;]+;8013;") then break end
        end
        lu.assertStrMatches(out, ".*\n=;eth0;IPv[46];mdns%-control;_lmserv%._tcp;local;h3%.local;[^;]+;8013;.*",
            nil, nil, "h1 never saw h3's control service:" .. out)
        lu.assertNil(out:find("\n[=+];[^;]*;IPv[46];h3;", 1), out)
        lu.assertNil(out:find(";8003;", 1, true), out)
    end

    -- a Python server registering through its agent (PUT /v1/services/NAME)
    -- is published in the domain too, under the name it registered, with
    -- the host's key: seen across the router, changed, withdrawn; a name the
    -- key has no grant for is refused there (said in the log and in
    -- /v1/self) and stays on mDNS
    function T:test_registered_services_reach_the_other_subnet_through_dns()
        local cjson = require "cjson"
        local rec = path("rec.txt")
        agent("h2", { observe = true, poll = 1, policy = HOOKS:format(rec) })
        local p1, sock1 = agent("h1", { port = 8040, poll = 1 })
        local function api(method, where, body)
            local _, out = lab:exec("h1", ("curl -sS --max-time 5 --unix-socket %s -X %s -H 'Content-Type: "
                .. "application/json'%s http://agent%s"):format(q(sock1), method,
                body and " --data-binary " .. q(cjson.encode(body)) or "", where))
            local ok, doc = pcall(cjson.decode, out)
            lu.assertTrue(ok, method .. " " .. where .. ": " .. out)
            return doc, out
        end
        local function self_service(name)
            for _, sv in ipairs(api("GET", "/v1/self").services or {}) do
                if sv.name == name then return sv end
            end
        end
        local doc, out = api("PUT", "/v1/services/h1-svc?ttl=60", { port = 9300, info = "registered",
            txt = { model = "llama" } })
        lu.assertEquals(doc.name, "h1-svc", out)
        local line = await(rec, "^join|h1%-svc|")
        lu.assertEquals(line, ("join|h1-svc|%s|h1.%s|9300|llama|10.77.1.1,fd77:0:0:1::1"):format(zone, zone))
        lu.assertEquals(srv("h1-svc"), "0 0 9300 h1." .. zone .. ".\n")
        lu.assertStrContains(txt("h1-svc"), '"info=registered"')
        local sv = self_service("h1-svc")
        lu.assertEquals(sv.dns, { domain = zone, state = "published" }, cjson.encode(sv))
        -- no grant for this name: refused in the zone, said once with the
        -- grant that is missing, announced over mDNS all the same
        doc, out = api("PUT", "/v1/services/other?ttl=60", { port = 9301 })
        lu.assertEquals(doc.name, "other", out)
        line = await(p1, "wide%-area: .*other%._lmserv")
        lu.assertStrContains(line, "grant")
        for _ = 1, 40 do
            sv = self_service("other")
            if sv and sv.dns and sv.dns.state == "failing" then break end
            Lab.sleep(0.25)
        end
        lu.assertEquals(sv.dns.state, "failing", cjson.encode(sv))
        lu.assertStrContains(sv.dns.error, "grant", cjson.encode(sv))
        local m = metrics("h1", sock1)
        lu.assertEquals(metric(m, "lmdisc_dns_services_published"), 2, m) -- h1 and h1-svc
        lu.assertEquals(metric(m, "lmdisc_dns_services_failing"), 1, m)   -- other
        await(p1, 'announced registered service "other"$') -- over mDNS: established
        local _, seen = lab:exec("h3", "timeout 10 avahi-browse -rpt _lmserv._tcp")
        lu.assertStrContains(seen, ";other;", seen)
        -- a TXT change is an update across the router
        api("PATCH", "/v1/services/h1-svc", { txt = { load = "7" } })
        await(rec, "^update|h1%-svc|7")
        -- withdrawn: gone from the zone and across the router; the host's
        -- own service and its address stay
        api("DELETE", "/v1/services/h1-svc")
        await(rec, "^leave|h1%-svc|")
        lu.assertStrContains(dig("h2", "h1-svc._lmserv._tcp." .. zone .. " SRV"), "status: NXDOMAIN")
        lu.assertEquals(srv("h1"), "0 0 8040 h1." .. zone .. ".\n")
        lu.assertEquals(dig("h2", "h1." .. zone .. " A +short"), "10.77.1.1\n")
        lu.assertNotStrContains(S.read(rec), "leave|h1|")
        -- SIGTERM withdraws everything, within the bound
        api("PUT", "/v1/services/h1-svc?ttl=60", { port = 9302 })
        await(rec, "^join|h1%-svc|", 15, 2)
        p1:signal("TERM")
        lu.assertEquals(p1:wait(5), 0, p1:output())
        lu.assertStrContains(dig("h2", "h1-svc._lmserv._tcp." .. zone .. " SRV"), "status: NXDOMAIN")
        lu.assertStrContains(dig("h2", "h1._lmserv._tcp." .. zone .. " SRV"), "status: NXDOMAIN")
        lu.assertEquals(dig("h2", "h1." .. zone .. " A +short"), "")
    end

    -- the real user: a Python server calls announce_self() next to its
    -- agent; a Python client in the other subnet finds it with
    -- discover_nodes() through its own agent; the server's exit withdraws it
    -- from the zone
    function T:test_a_python_server_registering_through_its_agent_is_found_across_the_router()
        local env = "PYTHONPATH=" .. q((os.getenv("LMDISC_SRC") or ".") .. "/python") .. " LMDISC_BIN=" .. q(BIN)
        local _, sock2 = agent("h2", { observe = true, poll = 1 })
        local _, sock1 = agent("h1", { port = 8045, poll = 1 })
        local server = path("server.py")
        S.write(server, [[
import signal, sys, threading
from lmdisc import announce_self
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
ann = announce_self(9310, info="llama-3-8b Q4_K_M", name="h1-svc")
print("established" if ann.wait_established(15) else "not established: " + ann.state, flush=True)
stop.wait(60)
]])
        local py = lab:bg("h1", "exec env " .. env .. " LMDISC_SOCKET=" .. q(sock1) .. " python3 " .. q(server))
        procs[#procs + 1] = py
        await(py, "established")
        local client = "env " .. env .. " LMDISC_SOCKET=" .. q(sock2) .. " python3 -c " .. q([[
import json
from lmdisc import discover_nodes
print(json.dumps(sorted([n.host, n.port, n.info] for n in discover_nodes(5) if n.port == 9310)))]])
        local found
        for _ = 1, 40 do
            local ok, out = lab:exec("h2", client)
            lu.assertTrue(ok, out)
            found = out
            if out:find("9310") then break end
            Lab.sleep(0.25)
        end
        lu.assertStrContains(found, '"llama-3-8b Q4_K_M"')
        lu.assertTrue((found:find('"10.77.1.1"', 1, true) or found:find('"fd77:0:0:1::1"', 1, true)) ~= nil, found)
        py:signal("TERM")
        lu.assertEquals(py:wait(10), 0, py:output())
        for _ = 1, 40 do
            found = select(2, lab:exec("h2", client))
            if not found:find("9310") then break end
            Lab.sleep(0.25)
        end
        lu.assertEquals(found, "[]\n")
        lu.assertStrContains(dig("h2", "h1-svc._lmserv._tcp." .. zone .. " SRV"), "status: NXDOMAIN")
    end

    -- an abusive local client: registrations in a loop while the server is
    -- silent cost at most 8 updates (sockets) at a time, not one each; a
    -- registration withdrawn before its turn is never sent; and against a
    -- real server, registering and withdrawing one name in a loop ends with
    -- the zone holding the last word
    function T:test_a_client_churning_registrations_neither_floods_nor_loses_the_last_word()
        local cjson = require "cjson"
        -- the agent's sockets to the DNS server (an avahi-less count: the
        -- agent's own mDNS resolvers come and go with the registrations)
        local function dns_sockets(dest)
            local _, out = lab:exec("h1", "ss -Hanu dst " .. dest .. " | wc -l")
            return tonumber(out:match("%d+"))
        end
        local function churn(host, sock, lines)
            local script = {}
            for _, l in ipairs(lines) do
                local method, where, body = l[1], l[2], l[3]
                script[#script + 1] = ("curl -sS -o /dev/null --max-time 5 --unix-socket %s -X %s -H "
                    .. "'Content-Type: application/json'%s http://agent%s"):format(q(sock), method,
                    body and " --data-binary " .. q(cjson.encode(body)) or "", where)
            end
            local ok, out = lab:exec(host, table.concat(script, " && "))
            lu.assertTrue(ok, out)
        end
        -- the server goes silent once the agent published: each update
        -- waits 5 s
        local p, sock = agent("h1", { port = 8043 })
        await(p, 'wide%-area: published "h1"')
        lab:dns_pause()
        local lines = {}
        for i = 1, 60 do lines[#lines + 1] = { "PUT", ("/v1/services/c%02d?ttl=60"):format(i), { port = 9400 + i } } end
        local t0 = Lab.now()
        churn("h1", sock, lines)
        local most = dns_sockets(server)
        note("60 registrations in %.1f s against a silent server: %d updates in flight", Lab.now() - t0, most)
        -- 8 updates, and the browser's SOA query, and the publisher's next
        -- ask for the browse list (its shards)
        lu.assertTrue(most >= 8 and most <= 8 + 2, ("%d sockets to the server"):format(most))
        lines = {}
        for i = 1, 60 do lines[#lines + 1] = { "DELETE", ("/v1/services/c%02d"):format(i) } end
        churn("h1", sock, lines)
        local _, self = lab:exec("h1", "curl -s --max-time 5 --unix-socket " .. q(sock) .. " http://agent/v1/self")
        lu.assertStrContains(self, '"services":[]')
        p:signal("TERM")
        local code = p:wait(5)
        lab:dns_resume()
        lu.assertEquals(code, 0, p:output())
        -- one name, registered and withdrawn 30 times, then registered:
        -- the zone ends with the last registration
        local p1, sock1 = agent("h1", { port = 8044, poll = 1 })
        await(p1, 'wide%-area: published "h1"')
        lines = {}
        for i = 1, 30 do
            lines[#lines + 1] = { "PUT", "/v1/services/h1-svc?ttl=60", { port = 9500 + i } }
            lines[#lines + 1] = { "DELETE", "/v1/services/h1-svc" }
        end
        lines[#lines + 1] = { "PUT", "/v1/services/h1-svc?ttl=60", { port = 9599 } }
        churn("h1", sock1, lines)
        local deadline = Lab.now() + 15
        while srv("h1-svc") ~= "0 0 9599 h1." .. zone .. ".\n" and Lab.now() < deadline do Lab.sleep(0.2) end
        lu.assertEquals(srv("h1-svc"), "0 0 9599 h1." .. zone .. ".\n", p1:output())
        Lab.sleep(1) -- nothing still under way takes it back out
        lu.assertEquals(srv("h1-svc"), "0 0 9599 h1." .. zone .. ".\n", p1:output())
        lu.assertEquals(srv("h1"), "0 0 8044 h1." .. zone .. ".\n")
        churn("h1", sock1, { { "DELETE", "/v1/services/h1-svc" } })
        deadline = Lab.now() + 10
        while not dig("h2", "h1-svc._lmserv._tcp." .. zone .. " SRV"):find("NXDOMAIN") and Lab.now() < deadline do
            Lab.sleep(0.2)
        end
        lu.assertStrContains(dig("h2", "h1-svc._lmserv._tcp." .. zone .. " SRV"), "status: NXDOMAIN")
    end

    -- a reload that renames the service withdraws the old name's records
    -- (they would otherwise stay until a lease ran out); one that only
    -- changes the lease keeps them (the next update replaces them)
    function T:test_a_reload_to_another_name_withdraws_the_old_records()
        local rec = path("rec.txt")
        agent("h2", { observe = true, poll = 1, policy = HOOKS:format(rec) })
        local p = agent("h1", { port = 8041, poll = 1 })
        await(rec, "^join|h1|")
        local cfg = p.cmd:match("agent %-c '([^']+)'") or p.cmd:match("agent %-c (%S+)")
        S.write(cfg, (S.read(cfg):gsub('name = "h1"', 'name = "h1-svc"')))
        p:signal("HUP")
        await(p, "reloaded")
        await(p, 'wide%-area: withdrew "h1" from')
        await(rec, "^join|h1%-svc|")
        await(rec, "^leave|h1|")
        lu.assertStrContains(dig("h2", "h1._lmserv._tcp." .. zone .. " SRV"), "status: NXDOMAIN")
        lu.assertEquals(srv("h1-svc"), "0 0 8041 h1." .. zone .. ".\n")
        lu.assertEquals(dig("h2", "h1." .. zone .. " A +short"), "10.77.1.1\n", "the host's address stays")
        lu.assertEquals(dig("h2", "_lmserv._tcp." .. zone .. " PTR +short"), "h1-svc._lmserv._tcp." .. zone .. ".\n")
        -- the lease only: nothing withdrawn
        S.write(cfg, (S.read(cfg):gsub("lease = 60", "lease = 40")))
        p:signal("HUP")
        await(p, "reloaded", 15, 2)
        await(p, 'wide%-area: published "h1%-svc"', 15, 2)
        lu.assertNotStrContains(p:output(), 'withdrew "h1-svc"')
        lu.assertEquals(srv("h1-svc"), "0 0 8041 h1." .. zone .. ".\n")
        lu.assertNotStrContains(S.read(rec), "leave|h1-svc|")
    end

    -- a host whose link carries no multicast (a cloud VPC, client-isolated
    -- Wi-Fi): with mdns { enabled = false } it still finds everyone,
    -- same subnet and other subnet alike, through the domain
    function T:test_a_host_without_multicast_finds_everyone_through_dns()
        local block = "ip rule add to 224.0.0.0/4 prohibit pref 50 && ip -6 rule add to ff02::fb/128 prohibit pref 50"
        local unblock = "ip rule del pref 50; ip -6 rule del pref 50"
        local send = "python3 -c " .. q("import socket\n"
            .. "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'x', ('224.0.0.251', 5353))")
        local before, bout = lab:exec("h3", send)
        lu.assertTrue(before, "sending to 224.0.0.251 failed before blocking it: " .. bout)
        local ok0, out0 = lab:exec("h3", block)
        lu.assertTrue(ok0, out0)
        local ok, err = pcall(function()
            -- multicast really is gone from h3
            local sent, out = lab:exec("h3", send)
            lu.assertFalse(sent, "h3 could still send to 224.0.0.251: " .. out)
            lu.assertStrContains(out, "PermissionError")
            local rec = path("rec.txt")
            local p3, sock3 = agent("h3", { observe = true, mdns = false, poll = 1, policy = HOOKS:format(rec) })
            -- h1 in DNS only: an mDNS announcement of it would stay in h3's
            -- avahi cache for a second after the test, into the next one
            agent("h1", { port = 8030, poll = 1, mdns = false })
            agent("h2", { port = 8031, poll = 1 })
            await(rec, "^join|h1|")
            await(rec, "^join|h2|")
            for _, h in ipairs { "h1", "h2" } do
                local _, doc = lab:exec("h3", "curl -s --max-time 5 --unix-socket " .. q(sock3) .. " http://agent/v1/peers/" .. h)
                lu.assertStrContains(doc, '"sources":["dns"]')
            end
            lu.assertNotStrContains(p3:output(), "avahi")
        end)
        lab:exec("h3", unblock)
        if not ok then error(err, 0) end
    end

    return T
end

TestWideAgentNamed = make_class("named")
TestWideAgentKnot = make_class("knot")

os.exit(lu.LuaUnit.run())
