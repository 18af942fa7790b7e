-- A hostile host on the LAN (h3) sends raw mDNS with scapy (tests/lab/attacks.py,
-- only ever inside the lab): a flood of forged services, and a chimera (a
-- forged instance of a real peer's name).  h1 runs the agent under test, h2
-- the real peer.
local lu = require "luaunit"
local cjson = require "cjson"

local S = require("suite").new(3)
local q, BIN, read, write = S.q, S.BIN, S.read, S.write
local ATTACKS = os.getenv("LMDISC_SRC") .. "/tests/lab/attacks.py"
-- the API bound holds in the plain build; the sanitizer build is checked for
-- memory errors under the same load, about three times slower.  0.2 s, not
-- 0.1 s, since the agent reads the wire while avahi is behind: the flood's
-- 1,000 services now join within a second or two instead of trickling in
-- over 30-40 s, and the slowest answer measured 0.114-0.131 s in 2 of 4
-- runs (0.07-0.10 s before; results-hostile.md "wirejoin"; issue 22 notes it)
local SANITIZED = (os.getenv("LMD_PRELOAD") or "") ~= ""
local API_BOUND = SANITIZED and 0.3 or 0.2

local function await(p, pattern, timeout, nth) return S:await(p, pattern, timeout, nth) end

local function api(sock, path)
    local _, out = S.lab:exec("h1", "curl -s --max-time 5 --unix-socket " .. q(sock) .. " http://lmdisc" .. path)
    return out
end

local function json(sock, path)
    local ok, doc = pcall(cjson.decode, api(sock, path))
    lu.assertTrue(ok, path)
    return doc
end

--- Poll cond() every 0.2 s for at most timeout s; its last value.
local function until_(timeout, cond)
    local t0 = S.lab.now()
    repeat
        local v = cond()
        if v then return v end
        S.lab.sleep(0.2)
    until S.lab.now() - t0 > timeout
    return cond()
end

--- Background: COUNT requests for PATH on h1, 0.1 s apart, each line
-- "seconds http-code"; stops by itself.
local function probe(sock, path, count)
    return S:bg("h1", ("for i in $(seq 1 %d); do curl -s -o /dev/null -w '%%{time_total} %%{http_code}\\n' " ..
        "--max-time 5 --unix-socket %s http://lmdisc%s; sleep 0.1; done; echo probe-done"):format(count, q(sock), path))
end

local function latencies(p)
    lu.assertNotNil(S.lab:wait_log(p, "^probe%-done", 60), p:output())
    local t = {}
    for secs, code in p:output():gmatch("([%d.]+) (%d+)\n") do
        lu.assertEquals(code, "200", p:output())
        t[#t + 1] = tonumber(secs)
    end
    table.sort(t)
    return t
end

local function attack(args)
    return S:bg("h3", "/usr/bin/python3 " .. q(ATTACKS) .. " " .. args)
end

local function flood(prefix, count, ttl)
    local p = attack(("flood %s %d %d %s %s"):format(prefix, count, ttl, S.lab:ip("h3", 4), S.lab:ip("h3", 6)))
    await(p, "^flood " .. count, 60)
    return p
end

TestHostile = {}

function TestHostile:tearDown() S:stop_all() end

local keys -- a fleet key, and host keys of h1 and h2 it certified (made once)
local function trust(h)
    if not keys then
        keys = S:path("keys")
        assert(os.execute("mkdir -p " .. q(keys)))
        for _, k in ipairs { "fleet", "h1", "h2" } do
            local _, out, code = S.lab:exec("h1", q(BIN) .. " keygen " .. q(keys .. "/" .. k))
            lu.assertEquals(code, 0, out)
        end
        for _, host in ipairs { "h1", "h2" } do
            local _, out, code = S.lab:exec("h1", ("%s certify --fleet-key %s --name '*' --days 1 %s"):format(q(BIN),
                q(keys .. "/fleet.key"), q(keys .. "/" .. host .. ".pub")))
            lu.assertEquals(code, 0, out)
        end
    end
    return ("trust { key = %q, cert = %q, fleet = { %q }, require = true }\n"):format(keys .. "/" .. h .. ".key",
        keys .. "/" .. h .. ".cert", keys .. "/fleet.pub")
end

-- 1,000 forged dual-stack services (2,000 instances; one avahi client holds
-- about 500): the agent follows them all, a real peer that joins in the
-- middle is admitted (within 30 s: the bench times it), and the API answers within 100 ms all along;
-- with trust, the same (the forged ones are followed and kept out).
local function flood_and_join(with_trust)
    local sock, n2, fake = S:path("h1.sock"), S:uniq("legit"), S:uniq("fake")
    local t1 = with_trust and trust("h1") or ""
    local a1 = S:agent("h1", t1 .. ("api { socket = %q }\n"):format(sock))
    local peers_probe = probe(sock, "/v1/peers", 60)
    local health_probe = probe(sock, "/v1/health", 60)
    flood(fake, 1000, 120)
    if with_trust then
        local a2 = S:agent("h2", trust("h2") .. ("announce { port = 8002, name = %q }\n"):format(n2))
        await(a2, 'announced "' .. n2 .. '"')
    else
        S:announce("h2", 8002, n2)
    end
    -- The bound asserts that the flood keeps no peer out, not how fast it
    -- gets in: the bench times that (tests/bench/hostile; issue 22's
    -- target of 1.0 s is not met yet: avahi-daemon, busy with the queries of
    -- the ~8,000 lookups that 2,000 open resolvers keep on the LAN, answers
    -- the next resolver's D-Bus call up to 13 s late, results-hostile.md).
    -- 5 s failed CI now and then; 30 s is still well inside the 90 s that
    -- following all 1,000 may take
    local t_join = require("lab").now()
    await(a1, 'join "' .. n2 .. '"', 30)
    print(("\nthe real peer joined %.2f s after its announcement was seen (flood of 1,000)"):format(
        require("lab").now() - t_join))
    -- every forged service is followed (the registry is whole, not truncated).
    -- Completeness, not speed, is asserted here (the real peer's join above
    -- and the bench time it): following 1,000 services took 30-40 s when
    -- another lab suite loaded both cores, so the bound is 90 s.
    local seen = until_(90, function()
        local m = api(sock, "/metrics")
        local n = tonumber(m:match("\nlmdisc_services_seen (%d+)"))
        return n and n >= 1001 and m
    end)
    lu.assertEquals(type(seen), "string", api(sock, "/metrics"))
    lu.assertStrContains(seen, "\nlmdisc_instances_unresolved 0\n")
    local health = json(sock, "/v1/health")
    lu.assertEquals(health.status, "ok")
    lu.assertEquals(health.unresolved, 0)
    lu.assertEquals(health.peers, with_trust and 1 or 1001)
    for _, p in ipairs { peers_probe, health_probe } do
        local t = latencies(p)
        lu.assertTrue(#t >= 50, p:output())
        lu.assertTrue(t[#t] < API_BOUND, ("slowest answer %.3f s (bound %.1f s):\n%s"):format(t[#t], API_BOUND,
            p:output()))
    end
    lu.assertNil(a1:output():find("refuses to follow", 1, true), S.tail(a1:output()))
    -- the forged records would live 120 s in the hosts' caches: fresh daemons
    S:stop_all()
    S.lab:avahi_restart("h1")
    S.lab:avahi_restart("h2")
end

function TestHostile:test_a_flood_keeps_no_peer_out_and_does_not_stall_the_api()
    flood_and_join(false)
end

function TestHostile:test_a_flood_keeps_no_trusted_peer_out_and_does_not_stall_the_api()
    flood_and_join(true)
end

-- A forged instance of a real peer's name (another host and port, TXT
-- info=EVIL, the attacker's addresses), 40 times: whatever the agent lists
-- under that name is one coherent instance, never the real host's
-- addresses with the forged port (or the forged host with the real ones).
function TestHostile:test_a_forged_instance_never_mixes_with_the_real_one()
    local sock, n2 = S:path("h1.sock"), S:uniq("victim")
    local a1 = S:agent("h1", ("api { socket = %q }\n"):format(sock))
    S:announce("h2", 8002, n2)
    await(a1, 'join "' .. n2 .. '"')
    local snapshots = S:watch_peers("h1", sock, 70)
    local c = attack(("chimera %s evilhost.local. 9999 EVIL 40 0.25 %s %s"):format(q(n2), S.lab:ip("h3", 4),
        S.lab:ip("h3", 6)))
    await(c, "^chimera 40", 30)
    local snaps, text = snapshots()
    local real = { [S.lab:ip("h2", 4)] = true, [S.lab:ip("h2", 6)] = true }
    local evil = { [S.lab:ip("h3", 4)] = true, [S.lab:ip("h3", 6)] = true }
    local seen_evil = false
    for _, snap in ipairs(snaps) do
        local line = snap.line
        for _, p in ipairs(snap.doc) do
            if p.name == n2 then
                local want = p.port == 9999 and evil or real
                lu.assertEquals(p.host, p.port == 9999 and "evilhost.local" or "h2.local", line)
                for _, a in ipairs(p.addresses) do
                    lu.assertTrue(want[a.address:gsub("%%.*", "")] ~= nil,
                        ("%s listed with port %d and address %s:\n%s"):format(n2, p.port, a.address, line))
                end
                seen_evil = seen_evil or p.port == 9999
            end
        end
    end
    lu.assertTrue(#snaps >= 50, text)
    -- the attack did land (without trust, nothing tells the forged instance
    -- from the real one: see test_trust.lua and the chimera with trust)
    lu.assertTrue(seen_evil, "the forged instance never showed:\n" .. S.tail(a1:output()))
end

-- With trust, the forged instance is never admitted, and the real service
-- (renamed by its avahi after the conflict) stays trusted, with its own
-- port and addresses.
function TestHostile:test_with_trust_a_forged_instance_is_never_admitted()
    local sock, n2 = S:path("h1.sock"), S:uniq("signed")
    S:agent("h2", trust("h2") .. ("announce { port = 8002, name = %q }\n"):format(n2))
    local a1 = S:agent("h1", trust("h1") .. ("api { socket = %q }\n"):format(sock), { env = { LOGLEVEL = "DEBUG" } })
    await(a1, 'join "' .. n2 .. '"')
    local snapshots = S:watch_peers("h1", sock, 70)
    local c = attack(("chimera %s evilhost.local. 9999 EVIL 40 0.25 %s %s"):format(q(n2), S.lab:ip("h3", 4),
        S.lab:ip("h3", 6)))
    await(c, "^chimera 40", 30)
    local snaps, text = snapshots()
    local real = { [S.lab:ip("h2", 4)] = true, [S.lab:ip("h2", 6)] = true }
    for _, snap in ipairs(snaps) do
        local line = snap.line
        for _, p in ipairs(snap.doc) do
            lu.assertTrue(p.trusted, line .. "\n" .. S.tail(a1:output(), 12000))
            lu.assertEquals(p.port, 8002, line)
            lu.assertEquals(p.host, "h2.local", line)
            lu.assertNotEquals(p.info, "EVIL", line)
            for _, a in ipairs(p.addresses) do
                lu.assertTrue(real[a.address:gsub("%%.*", "")] ~= nil, line)
            end
        end
    end
    lu.assertTrue(#snaps >= 50, text)
    -- the loop above had something to check: the real service, listed
    -- before the attack began (the watch starts first)
    lu.assertStrContains(snaps[1].line, '"name":"' .. n2 .. '"', false, snaps[1].line)
    -- the real service is listed, trusted, at the end (under its name, or
    -- the one its avahi chose after the conflict)
    local listed = until_(10, function()
        for _, p in ipairs(json(sock, "/v1/peers")) do
            if p.name:sub(1, #n2) == n2 and p.trusted and p.port == 8002 then return p end
        end
    end)
    lu.assertNotNil(listed, api(sock, "/v1/peers") .. "\n" .. S.tail(a1:output()))
    -- the forged one (TXT info=EVIL, no signature), logged and kept out
    await(a1, 'peer "' .. n2 .. '" is not trusted %(unsigned', 5)
end

-- h2's signed announcement, copied byte for byte (TXT with lmd-cert and
-- lmd-sig) and replayed by h3 under the same name from its own host and
-- addresses: the signature covers the SRV target and the addresses, so it
-- is refused, never listed, and the real peer stays trusted.
function TestHostile:test_with_trust_a_replayed_announcement_is_refused()
    local sock, n2 = S:path("h1.sock"), S:uniq("replayed")
    S:agent("h2", trust("h2") .. ("announce { port = 8002, name = %q, info = \"real\" }\n"):format(n2))
    local a1 = S:agent("h1", trust("h1") .. ("api { socket = %q }\n"):format(sock))
    await(a1, 'join "' .. n2 .. '"')
    local real = json(sock, "/v1/peers/" .. n2)
    lu.assertTrue(real.trusted)
    local txt = {}
    for k, v in pairs(real.txt) do txt[#txt + 1] = q(v == true and k or (k .. "=" .. v)) end
    lu.assertTrue(#txt >= 3) -- info, lmd-cert, lmd-sig
    local snapshots = S:watch_peers("h1", sock, 40)
    local r = attack(("replay %s evilhost.local. 8002 20 0.25 %s %s %s"):format(q(n2), S.lab:ip("h3", 4),
        S.lab:ip("h3", 6), table.concat(txt, " ")))
    await(r, "^replay 20", 30)
    local snaps, text = snapshots()
    -- the agent saw the replay, and refused it for the reason it must: the
    -- signature covers the SRV target and the addresses
    await(a1, 'peer "' .. n2 .. '" is not trusted %(bad signature', 5)
    local h2addr = { [S.lab:ip("h2", 4)] = true, [S.lab:ip("h2", 6)] = true }
    local function real_listed(doc)
        for _, p in ipairs(doc) do
            if p.name:sub(1, #n2) == n2 and p.trusted and p.host == "h2.local" and p.port == 8002 then return true end
        end
        return false
    end
    for _, snap in ipairs(snaps) do
        local line = snap.line
        for _, p in ipairs(snap.doc) do
            lu.assertTrue(p.trusted, line)
            lu.assertEquals(p.host, "h2.local", line)
            for _, a in ipairs(p.addresses) do lu.assertTrue(h2addr[a.address:gsub("%%.*", "")] ~= nil, line) end
        end
    end
    lu.assertTrue(#snaps >= 30, text)
    -- what the loop above checked was there: the real peer, before the
    -- replay began (the watch starts first) and again at the end (under its
    -- name, or the one its avahi chose after the conflict)
    lu.assertTrue(real_listed(snaps[1].doc), "the first snapshot lacks the real peer:\n" .. snaps[1].line)
    local back = until_(10, function() return real_listed(json(sock, "/v1/peers")) end)
    lu.assertTrue(back, api(sock, "/v1/peers") .. "\n" .. S.tail(a1:output()))
    local m = api(sock, "/metrics")
    lu.assertStrMatches(m, '.*\nlmdisc_untrusted_total{reason="bad signature"} [1-9]%d*\n.*', nil, nil, m)
end

-- h2's signed TXT with one value changed (info), replayed by h3 for h2's
-- own name, host and port: only the TXT differs from the real thing, and
-- the signature no longer verifies.
function TestHostile:test_with_trust_a_tampered_txt_is_refused()
    local sock, n2 = S:path("h1.sock"), S:uniq("tampered")
    S:agent("h2", trust("h2") .. ("announce { port = 8002, name = %q, info = \"real\" }\n"):format(n2))
    local a1 = S:agent("h1", trust("h1") .. ("api { socket = %q }\n"):format(sock))
    await(a1, 'join "' .. n2 .. '"')
    local real = json(sock, "/v1/peers/" .. n2)
    lu.assertTrue(real.trusted)
    local txt = {}
    for k, v in pairs(real.txt) do
        if k == "info" then v = "TAMPERED" end
        txt[#txt + 1] = q(v == true and k or (k .. "=" .. v))
    end
    local snapshots = S:watch_peers("h1", sock, 30)
    local r = attack(("tamper %s h2.local. 8002 10 0.3 %s %s %s"):format(q(n2), S.lab:ip("h3", 4), S.lab:ip("h3", 6),
        table.concat(txt, " ")))
    await(r, "^tamper 10", 30)
    local snaps, text = snapshots()
    await(a1, 'peer "' .. n2 .. '" is not trusted %(bad signature', 5)
    for _, snap in ipairs(snaps) do
        lu.assertNil(snap.line:find("TAMPERED", 1, true), snap.line)
    end
    lu.assertTrue(#snaps >= 20, text)
    -- the snapshots did list the real one (the watch starts before the attack)
    lu.assertStrContains(snaps[1].line, '"info":"real"', false, snaps[1].line)
    -- the real service is listed, trusted, with its own TXT (under its
    -- name, or the one its avahi chose after the conflict)
    local back = until_(10, function()
        for _, p in ipairs(json(sock, "/v1/peers")) do
            if p.name:sub(1, #n2) == n2 and p.trusted and p.txt.info == "real" then return p end
        end
    end)
    lu.assertEquals(type(back), "table", api(sock, "/v1/peers") .. S.tail(a1:output()))
end

-- avahi-daemon on h1 allows 16 objects per client here: the pool holds 32 x
-- 16 resolvers, fewer than the flood's 800 instances.  A truncated registry
-- says so (health, metric, complete = false, one warning), and once the
-- flood's records expire, a real peer that was waiting for room gets in
-- within seconds (no long back-off).
function TestHostile:test_a_full_pool_is_told_and_a_waiting_peer_gets_in_as_room_frees()
    -- the host's avahi-daemon reads its configuration from the host's own /run
    local conf = "/run/lab/avahi-daemon.conf"
    local function set_limit(line)
        local _, out, code = S.lab:exec("h1", ("sed -i '/^objects-per-client-max=/d; %s' %s"):format(
            line and ("s/^\\[server\\]$/[server]\\n" .. line .. "/") or "", conf))
        lu.assertEquals(code, 0, out)
        S.lab:avahi_restart("h1")
    end
    set_limit("objects-per-client-max=16")
    lu.assertStrContains(select(2, S.lab:exec("h1", "cat " .. conf)), "\nobjects-per-client-max=16\n")
    local ok, err = pcall(function()
        local sock, n2, fake = S:path("h1.sock"), S:uniq("waiting"), S:uniq("fake")
        local a1 = S:agent("h1", ("api { socket = %q }\n"):format(sock))
        -- the API all along: the flood taken in, then 800 instances gone at once
        local health_probe = probe(sock, "/v1/health", 300)
        flood(fake, 400, 20)
        local health = until_(20, function()
            local h = json(sock, "/v1/health")
            return h.unresolved > 0 and h
        end)
        lu.assertEquals(type(health), "table", api(sock, "/v1/health") .. api(sock, "/metrics") .. S.tail(a1:output()))
        lu.assertEquals(health.status, "degraded")
        local gauge = tonumber(api(sock, "/metrics"):match("\nlmdisc_instances_unresolved (%d+)\n"))
        lu.assertTrue(gauge > 0)
        lu.assertFalse(json(sock, "/v1/services").complete)
        S:announce("h2", 8002, n2)
        -- the flood's records expire (TTL 20 s) and make room
        local line = await(a1, 'join "' .. n2 .. '"', 40)
        await(a1, "every service on the network is followed again", 40)
        -- in at most 5 s after the first forged service expired (it may
        -- have found room earlier)
        local function stamp(l)
            local h, m, sec = l:match("T(%d+):(%d+):([%d.]+)Z")
            return tonumber(h) * 3600 + tonumber(m) * 60 + tonumber(sec)
        end
        local gone = await(a1, 'leave "' .. fake .. '%-')
        lu.assertTrue(stamp(line) - stamp(gone) <= 5, line .. "\n" .. gone)
        local h = json(sock, "/v1/health")
        lu.assertEquals(h.status, "ok")
        lu.assertEquals(h.unresolved, 0)
        local _, warned = a1:output():gsub("refuses to follow more services", "")
        lu.assertEquals(warned, 1, S.tail(a1:output()))
        local t = latencies(health_probe)
        lu.assertTrue(#t >= 200, health_probe:output())
        lu.assertTrue(t[#t] < API_BOUND, ("slowest answer %.3f s (bound %.1f s)"):format(t[#t], API_BOUND))
    end)
    set_limit(nil)
    if not ok then error(err, 0) end
end

os.exit(lu.LuaUnit.run())
