-- The second team's attacks on the registry's views built on demand
-- (src/registry/views.c): what the API shows is always consistent with the
-- registry and with the network.  h1 runs the agent under test and an
-- event-stream client that replays the events into a model
-- (tests/lab/tools/event_replay.py); h2 runs an agent whose services come
-- and go, change TXT, in bursts through its API (tests/lab/churn.lua):
-- the network's model.
local lu = require "luaunit"
local cjson = require "cjson"
local churn = require "churn"

local S = require("suite").new(2)
local REPLAY = os.getenv("LMDISC_SRC") .. "/tests/lab/tools/event_replay.py"
local q, read = S.q, S.read

local function await(p, pattern, timeout, nth) return S:await(p, pattern, timeout, nth) end

TestAttackViews = {}

function TestAttackViews:tearDown() S:stop_all() end

local function peers(sock)
    local _, out = S.lab:exec("h1", "curl -s --max-time 5 --unix-socket " .. q(sock) .. " http://lmdisc/v1/peers")
    local ok, doc = pcall(cjson.decode, out)
    lu.assertTrue(ok, out)
    return doc, out
end

--- The churn on h2 (count operations on nnames names, opts as churn.ops),
-- run in slices of `slice` operations with a /v1/peers request on h1
-- between them; then h1's listing must come to the network's model (names,
-- each with its last TXT v and its port), and the events' replay must
-- agree with the listing.
-- The agent on h1 runs a policy that keeps a model of its own from its
-- hooks (join, update, leave) and compares it, twice a second, with
-- lmdisc.peers() (the registry's kept peers, read during the changes).
local POLICY = [[
local model = {}
local function key(p) return ("%s|%s|%s"):format(p.name, tostring(p.port), tostring(p.txt and p.txt.v)) end
function on_join(peer) model[peer.name] = key(peer); lmdisc.peers() end
function on_update(peer) model[peer.name] = key(peer); lmdisc.peers() end
function on_leave(peer) model[peer.name] = nil end
lmdisc.every(0.5, function()
    local have, n, diff = {}, 0, {}
    for _, p in ipairs(lmdisc.peers()) do have[p.name] = key(p); n = n + 1 end
    for k, v in pairs(model) do if have[k] ~= v then diff[#diff + 1] = k .. ":" .. v .. "~" .. tostring(have[k]) end end
    for k, v in pairs(have) do if model[k] == nil then diff[#diff + 1] = k .. ":nil~" .. v end end
    lmdisc.log.info("views: %d peers, %d differ %s", n, #diff, table.concat(diff, " "))
end)
]]

local function churn_and_check(nnames, count, slice, opts)
    local sock1, sock2 = S:path("h1.sock"), S:path("h2.sock")
    local a1 = S:agent("h1", ("api { socket = %q }\n"):format(sock1) .. POLICY)
    local a2 = S:agent("h2", ("api { socket = %q }\n"):format(sock2))
    await(a1, "initial scan done", 10)
    await(a2, "initial scan done", 10)
    local stop, report = S:path("replay.stop"), S:path("replay.json")
    local replay = S:bg("h1", ("exec python3 %s %s %s 240 %s"):format(q(REPLAY), q(sock1), q(stop), q(report)))
    local tag = S:uniq("v")
    local ops, model, ports = churn.ops(q, sock2, tag, nnames, count, 11, opts)
    for from = 1, #ops, slice do
        local script = S:path("ops.sh")
        S.write(script, table.concat(ops, "\n", from, math.min(#ops, from + slice - 1)) .. "\n")
        local ok, out = S.lab:exec("h2", "sh " .. q(script))
        lu.assertTrue(ok, out)
        for code, what in out:gmatch("(%d+) ([^\n]*)") do
            lu.assertTrue(code:match("^2") ~= nil, ("%s: %s\n%s"):format(what, code, out))
        end
        peers(sock1) -- a view asked for in the middle of it all
    end
    local want = {}
    for n, v in pairs(model) do want[#want + 1] = ("%s v=%s port=%d"):format(n, v, ports[n]) end
    table.sort(want)
    local got, raw
    for _ = 1, 60 do
        local doc
        doc, raw = peers(sock1)
        got = {}
        for _, p in ipairs(doc) do
            if p.name:sub(1, #tag) == tag then
                got[#got + 1] = ("%s v=%s port=%d"):format(p.name, tostring(p.txt and p.txt.v), p.port)
            end
        end
        table.sort(got)
        if table.concat(got, "\n") == table.concat(want, "\n") then break end
        S.lab.sleep(0.5)
    end
    lu.assertEquals(got, want, raw:sub(1, 4000) .. "\n" .. S.tail(a1:output(), 4000))
    -- the policy's model and lmdisc.peers() agree on the network's (its
    -- line comes every 0.5 s: the second one after the listing settled)
    local _, before = a1:output():gsub("views: %d+ peers, 0 differ", "")
    local agreed = S.lab:wait_log(a1, "views: %d+ peers, 0 differ", 5, before + 2)
    lu.assertNotNil(agreed, "the policy's model and lmdisc.peers() differ:\n" .. S.tail(a1:output(), 5000))
    S.write(stop, "")
    await(replay, "^replay%-done", 60)
    local r = cjson.decode(read(report))
    lu.assertEquals(r.errors, {}, S.tail(a1:output(), 3000))
    lu.assertTrue(r.events > 0, "no event came")
    for _, n in ipairs(r.peers) do
        if n:sub(1, #tag) == tag then lu.assertNotNil(model[n], n .. " listed, not on the network") end
    end
    return a1, r
end

-- 10 names, 300 operations in slices of 20 (a listing asked for between
-- slices): the joins, updates and leaves replayed from the stream are what
-- /v1/peers lists, and that is what the network holds.
function TestAttackViews:test_a_churn_of_peers_keeps_events_listing_and_network_in_step()
    churn_and_check(10, 300, 20)
end

-- The same with TXT records near the 1,300-byte bound (each change rewrites
-- most of it): the views built from the stored wire TXT are the peers'.
function TestAttackViews:test_a_churn_with_huge_txt_records_keeps_events_listing_and_network_in_step()
    churn_and_check(5, 80, 10, {
        txt = function(k)
            local parts = {}
            for i = 1, 9 do parts[#parts + 1] = ('"k%d": "%s"'):format(i, (string.char(97 + (k + i) % 26)):rep(120)) end
            return ", " .. table.concat(parts, ", ")
        end,
    })
end

os.exit(lu.LuaUnit.run())
