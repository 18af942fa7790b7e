-- A sharded wide-area domain (issue 20): past about 2,000 services of a
-- type one PTR RRset no longer fits a DNS message, so a domain lists
-- shards among its browse domains (b._dns-sd._udp.DOMAIN PTR sN.DOMAIN,
-- RFC 6763 section 11) and each host publishes in the one its name hashes
-- to.  Against the lab's real named and knotd (grants for s0..s3, see
-- tests/lab/lab):
--   - no shard listed: records at the domain, as before;
--   - shards listed: two hosts in different shards, both found by a
--     browsing agent across the router (zone transfer) and by `discover`
--     (queries: the browse list, then each shard), each where the hash
--     puts it; a service in a shard the domain does not list is not read;
--     a clean leave and a crash (swept in its shard) are seen;
--   - a host's own key pointing its SRV at "." and outside the domain: a
--     read by queries skips and counts them, the rest stands.
-- Routed lab: h1 and h3 in subnet 1, h2 in subnet 2, the DNS host behind
-- the router.
local lu = require "luaunit"
local Lab = require "lab"
local S = require "suite"
local W = require "wide"

local q = Lab.shquote
local BIN = S.BIN

local HOOKS = [[
local function rec(...) local f = io.open(%q, "a"); f:write(table.concat({...}, "|"), "\n"); f:close() end
function on_join(peer) rec("join", peer.name, peer.port, peer.txt.model or "") end
function on_leave(peer, reason) rec("leave", peer.name, reason) end
]]

-- lmd_dns_shard_pick (src/dns/shard.c), as an operator's script would
-- compute it: the highest fmix64(FNV-1a-64("host/shard"))
local function score(host, shard)
    local h = -3750763034362895579 -- 14695981039346656037
    for c in (host:lower() .. "/" .. shard:lower()):gmatch(".") do
        h = (h ~ c:byte()) * 1099511628211
    end
    h = h ~ (h >> 33)
    h = h * -49064778989728563 -- 0xff51afd7ed558ccd
    h = h ~ (h >> 33)
    h = h * -4265267296055464877 -- 0xc4ceb9fe1a85ec53
    return h ~ (h >> 33)
end

local function pick(host, shards)
    local best, top
    for _, s in ipairs(shards) do
        local v = score(host, s)
        if not best or math.ult(top, v) then best, top = s, v end
    end
    return best
end

local function make_class(kind)
    local T = {}
    local lab, tmp, zone, server
    local H = W.helpers(S, function() return lab end, kind)
    local await = H.await
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
wide_area { domain = %q, server = %q, key = %q, lease = %d, poll = 1 %s }
api { socket = %q }
log { level = "debug" }
mdns { enabled = false }
%s
]]):format(opts.observe and "" or ('announce { port = %d, name = %q, txt = { model = "gemma" } }')
            :format(opts.port or 8000, host), zone, server, lab:key(host), opts.lease or 60,
            opts.sweep and (", sweep_key = %q"):format(lab:key("sweeper")) or "", sock, opts.policy or ""))
        local p = lab:bg(host, "exec " .. q(BIN) .. " agent -c " .. q(cfg))
        procs[#procs + 1] = p
        lu.assertNotNil(lab:wait_log(p, "agent started", 10), p:output())
        return p, sock
    end

    local function dig(args)
        local ok, out, code = lab:exec("h2", ("timeout 30 dig +time=2 +tries=2 @%s %s"):format(server, args))
        if not ok then error(("dig %s failed (%s): %s"):format(args, code, out), 2) end
        return out
    end

    local function nsupdate(lines)
        local f = path("u.nsupdate")
        S.write(f, ("server %s\nzone %s\n%s\nsend\n"):format(server, zone, table.concat(lines, "\n")))
        local _, out, code = lab:exec("h3", "timeout 30 nsupdate -t 10 -k " .. q(lab:key("admin")) .. " " .. q(f))
        lu.assertEquals(code, 0, out)
    end

    local ALL = { "s0", "s1", "s2", "s3" }

    -- shards for which h1 and h3 land in different ones (the first such
    -- list among all four, then pairs), listed in the zone with the admin
    -- key; removed at the end of the test
    local function list_shards()
        local lists = { ALL }
        for i = 1, 4 do for j = i + 1, 4 do lists[#lists + 1] = { ALL[i], ALL[j] } end end
        for _, l in ipairs(lists) do
            if pick("h1", l) ~= pick("h3", l) then
                local add = {}
                for _, s in ipairs(l) do
                    add[#add + 1] = ("update add b._dns-sd._udp.%s. 60 PTR %s.%s."):format(zone, s, zone)
                end
                nsupdate(add)
                return l
            end
        end
        error("no shard list separates h1 and h3")
    end

    local function unlist(l)
        local del = {}
        for _, s in ipairs(l) do
            del[#del + 1] = ("update delete b._dns-sd._udp.%s. PTR %s.%s."):format(zone, s, zone)
        end
        nsupdate(del)
    end

    local function with_shards(f)
        local l = list_shards()
        local ok, err = pcall(f, l)
        unlist(l)
        if not ok then error(err, 0) end
    end

    function T:test_no_shard_listed_the_records_are_at_the_domain()
        local p1 = agent("h1", { port = 8201 })
        await(p1, "wide%-area: published \"h1\"")
        lu.assertNotStrContains(p1:output(), "shards")
        lu.assertStrContains(dig("_lmserv._tcp." .. zone .. " PTR +short"), "h1._lmserv._tcp." .. zone .. ".")
        for _, s in ipairs(ALL) do
            lu.assertEquals(dig(("_lmserv._tcp.%s.%s PTR +short"):format(s, zone)), "")
        end
    end

    function T:test_hosts_in_different_shards_are_all_found_and_their_leaves_seen()
        with_shards(function(l)
            local s1, s3 = pick("h1", l), pick("h3", l)
            local rec = path("rec.txt")
            local p2, sock2 = agent("h2", { observe = true, policy = HOOKS:format(rec) })
            local p1 = agent("h1", { port = 8211 })
            local p3 = agent("h3", { port = 8213 })
            -- each says where the hash puts it, and is there (not at the domain)
            await(p1, ("this host publishes in %s%%.%s"):format(s1, zone:gsub("%.", "%%.")))
            await(p3, ("this host publishes in %s%%.%s"):format(s3, zone:gsub("%.", "%%.")))
            await(p1, "wide%-area: published \"h1\"")
            await(p3, "wide%-area: published \"h3\"")
            lu.assertStrContains(dig(("_lmserv._tcp.%s.%s PTR +short"):format(s1, zone)),
                ("h1._lmserv._tcp.%s.%s."):format(s1, zone))
            lu.assertStrContains(dig(("_lmserv._tcp.%s.%s PTR +short"):format(s3, zone)),
                ("h3._lmserv._tcp.%s.%s."):format(s3, zone))
            lu.assertStrContains(dig(("h3._lmserv._tcp.%s.%s SRV +short"):format(s3, zone)), "8213 h3." .. zone .. ".")
            lu.assertEquals(dig("_lmserv._tcp." .. zone .. " PTR +short"), "")
            -- a service written by hand in a shard the domain does not list
            local s9 = ("_lmserv._tcp.s9.%s."):format(zone)
            nsupdate({ ("update add %s 60 PTR lost.%s"):format(s9, s9),
                       ("update add lost.%s 60 SRV 0 0 9 h1.%s."):format(s9, zone) })
            -- the browsing agent across the router reads both shards (one transfer)
            await(rec, "^join|h1|8211|gemma", 15)
            await(rec, "^join|h3|8213|gemma", 15)
            -- discover reads by queries: the browse list, then each shard
            local _, out, code = lab:exec("h2", ("timeout 30 %s discover --domain %s --server %s --key %s --json 2>&1")
                :format(q(BIN), zone, server, q(lab:key("h2"))))
            lu.assertEquals(code, 0, out)
            lu.assertStrContains(out, '"h1"')
            lu.assertStrContains(out, '"h3"')
            lu.assertNotStrContains(out, '"lost"')
            lu.assertNotStrContains(S.read(rec), "join|lost|")
            -- a clean leave from a shard
            p3:signal("TERM")
            lu.assertEquals(p3:wait(10), 0, p3:output())
            await(rec, "^leave|h3|goodbye", 10)
            lu.assertEquals(dig(("_lmserv._tcp.%s.%s PTR +short"):format(s3, zone)), "")
            p1:signal("TERM")
            p1:wait(10)
            await(rec, "^leave|h1|goodbye", 10)
            nsupdate({ ("update delete %s PTR lost.%s"):format(s9, s9), ("update delete lost.%s"):format(s9) })
            p2:signal("TERM")
        end)
    end

    -- shards listed while an agent runs: it reads the list again every half
    -- lease, withdraws from the domain and publishes in its shard; a
    -- browsing agent keeps seeing it
    function T:test_shards_listed_later_the_agent_moves_within_half_a_lease()
        local rec = path("rec.txt")
        agent("h2", { observe = true, policy = HOOKS:format(rec) })
        local p1 = agent("h1", { port = 8241, lease = 10 })
        await(p1, "wide%-area: published \"h1\"")
        await(rec, "^join|h1|8241", 15)
        lu.assertStrContains(dig("_lmserv._tcp." .. zone .. " PTR +short"), "h1._lmserv._tcp." .. zone .. ".")
        with_shards(function(l)
            local s1 = pick("h1", l)
            await(p1, ("this host's services move to %s%%.%s"):format(s1, zone:gsub("%.", "%%.")), 10)
            await(p1, "moving to the shard the domain's list gives now", 10)
            await(p1, "wide%-area: published \"h1\"", 10, 2)
            lu.assertStrContains(dig(("_lmserv._tcp.%s.%s PTR +short"):format(s1, zone)),
                ("h1._lmserv._tcp.%s.%s."):format(s1, zone))
            lu.assertEquals(dig("_lmserv._tcp." .. zone .. " PTR +short"), "")
            -- the browser holds it again (it may have seen it leave and come back)
            local function last_h1()
                local last = ""
                for line in S.read(rec):gmatch("[^\n]+") do
                    if line:find("|h1|", 1, true) then last = line end
                end
                return last
            end
            local deadline = Lab.now() + 10
            while not last_h1():match("^join|h1|8241") and Lab.now() < deadline do Lab.sleep(0.2) end
            lu.assertStrContains(last_h1(), "join|h1|8241", S.read(rec))
            p1:signal("TERM")
            lu.assertEquals(p1:wait(10), 0, p1:output())
            lu.assertEquals(dig(("_lmserv._tcp.%s.%s PTR +short"):format(s1, zone)), "")
        end)
    end

    -- `lmdisc announce --domain` publishes where an agent of the host would
    function T:test_announce_on_the_command_line_publishes_in_the_hosts_shard()
        with_shards(function(l)
            local s3 = pick("h3", l)
            local p = lab:bg("h3", ("exec %s announce 8251 'cli' --name h3 --domain %s --server %s --key %s")
                :format(q(BIN), zone, server, q(lab:key("h3"))))
            procs[#procs + 1] = p
            await(p, "^published \"h3\"", 15)
            lu.assertStrContains(dig(("h3._lmserv._tcp.%s.%s SRV +short"):format(s3, zone)), "8251 h3." .. zone .. ".")
            p:signal("TERM")
            lu.assertEquals(p:wait(10), 0, p:output())
            lu.assertEquals(dig(("_lmserv._tcp.%s.%s PTR +short"):format(s3, zone)), "")
        end)
    end

    -- a crashed host in a shard: the sweeper removes its records there
    function T:test_a_crashed_host_is_swept_from_its_shard()
        with_shards(function(l)
            local s1 = pick("h1", l)
            local rec = path("rec.txt")
            local p2 = agent("h2", { observe = true, sweep = true, policy = HOOKS:format(rec) })
            local p1 = agent("h1", { port = 8221, lease = 10 })
            await(rec, "^join|h1|8221", 15)
            p1:signal("KILL")
            p1:wait(5)
            await(p2, "wide%-area sweeper: \"h1\" on h1 was not refreshed for 10 s", 20)
            await(rec, "^leave|h1|", 10)
            await(p2, "wide%-area browse: removed the stale records of \"h1\"", 10)
            lu.assertEquals(dig(("h1._lmserv._tcp.%s.%s SRV +short"):format(s1, zone)), "")
            lu.assertEquals(dig(("_lmserv._tcp.%s.%s PTR +short"):format(s1, zone)), "")
        end)
    end

    -- a host's own key (its grants allow it) points its SRV at "." and a
    -- service it registers at a host outside the domain: a read by queries
    -- skips both, counts them, and the rest of the walk stands
    function T:test_a_hosts_own_bad_srv_is_skipped_by_a_read_by_queries()
        with_shards(function(l)
            local s3 = pick("h3", l)
            local p1 = agent("h1", { port = 8231 })
            await(p1, "wide%-area: published \"h1\"")
            local f = path("bad.nsupdate")
            local tz = ("_lmserv._tcp.%s.%s."):format(s3, zone)
            S.write(f, ([[
server %s
zone %s
update add %s 60 PTR h3.%s
update add h3.%s 60 SRV 0 0 1 .
update add %s 60 PTR h3-svc.%s
update add h3-svc.%s 60 SRV 0 0 1 host.elsewhere.example.
send
]]):format(server, zone, tz, tz, tz, tz, tz, tz))
            local _, out, code = lab:exec("h3", "timeout 30 nsupdate -t 10 -k " .. q(lab:key("h3")) .. " " .. q(f))
            lu.assertEquals(code, 0, out)
            local _, dout, dcode = lab:exec("h2", ("timeout 30 %s discover --domain %s --server %s --key %s --json 2>&1")
                :format(q(BIN), zone, server, q(lab:key("h2"))))
            lu.assertEquals(dcode, 0, dout)
            lu.assertStrContains(dout, '"h1"')
            lu.assertNotStrContains(dout, '"h3"')
            lu.assertNotStrContains(dout, '"h3-svc"')
            lu.assertStrContains(dout, "2 services skipped")
            -- per type: Knot's grants name types, a delete of every type at a name is refused
            S.write(f, ("server %s\nzone %s\nupdate delete %s PTR h3.%s\nupdate delete h3.%s SRV\n"
                .. "update delete %s PTR h3-svc.%s\nupdate delete h3-svc.%s SRV\nsend\n"):format(server, zone, tz, tz, tz,
                    tz, tz, tz))
            _, out, code = lab:exec("h3", "timeout 30 nsupdate -t 10 -k " .. q(lab:key("h3")) .. " " .. q(f))
            lu.assertEquals(code, 0, out)
        end)
    end

    return T
end

TestWideShardsNamed = make_class("named")
TestWideShardsKnot = make_class("knot")

os.exit(lu.LuaUnit.run())
