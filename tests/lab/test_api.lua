-- The agent's local API on a lab host: /v1/peers is exactly what the policy
-- keeps, /v1/events delivers join/update/leave in order and resumes from an
-- index, /metrics parses and moves, bad requests get 4xx and the agent
-- keeps serving; `lmdisc peers` and `lmdisc watch` on top of it.
local lu = require "luaunit"
local cjson = require "cjson"

local S = require("suite").new(3)
local q, BIN, write = S.q, S.BIN, S.write
local SOCK = "/run/lmdisc/agent.sock"
local agent1 -- the agent under test, up for the whole suite

-- stdout only: a stream read with --max-time ends in curl's timeout message
local function curl(args)
    local ok, out, code = S.lab:exec("h1", "curl -s --max-time 5 --unix-socket " .. SOCK .. " " .. args ..
                                         " 2>/dev/null")
    return out, code
end

local function get_json(path)
    local out = curl("-f http://lmdisc" .. path)
    local ok, doc = pcall(cjson.decode, out)
    lu.assertTrue(ok, path .. " is not JSON: " .. out)
    return doc
end

local function bg(host, cmd) return S:bg(host, cmd) end

local function announce(host, name, model, port)
    return S:announce(host, port or 8000, name, "--txt model=" .. model)
end

-- An update that only moved addresses: IPv4 and IPv6 answers more than the
-- 50 ms settle window apart on a loaded machine. Not what a test is about.
local function address_only(ev)
    return ev.type == "update" and #ev.changes == 1 and ev.changes[1] == "addresses"
end

local function metrics()
    local out = curl("-f http://lmdisc/metrics")
    local m = {}
    for line in out:gmatch("[^\n]+") do
        if not line:match("^#") then
            local name, value = line:match("^(.-) (%S+)$") -- label values may hold spaces
            lu.assertNotNil(name, "unparsable metrics line: " .. line)
            m[name] = tonumber(value)
            lu.assertNotNil(m[name], line)
        end
    end
    return m
end

local suite_setup, suite_teardown = setupSuite, teardownSuite

function setupSuite()
    suite_setup()
    local cfg = S.tmp .. "/observer.lua"
    write(cfg, [[
registry { ttl = 60 }
function filter(peer)
  local keep = peer.txt.model ~= "hidden"
  lmdisc.log.info("FILTER %s %s", peer.name, tostring(keep))
  return keep
end
function info(peer) return "model " .. tostring(peer.txt.model) end
]])
    agent1 = S.lab:bg("h1", q(BIN) .. " agent -c " .. q(cfg))
    assert(S.lab:wait_log(agent1, "agent started", 10), agent1:output())
end

function teardownSuite()
    if agent1 then agent1:signal("TERM"); agent1:wait(10) end
    suite_teardown()
end

TestApiLast = {}

-- Runs after TestApi (alphabetical): watchers that come and go leave nothing
-- behind, and the agent exits 0 with a clean log (a sanitizer build reports
-- leaks and errors there)
function TestApiLast:test_agent_exits_cleanly_after_watchers_left()
    for i = 1, 3 do
        local w = S:bg("h1", q(BIN) .. " watch")
        lu.assertNotNil(S.lab:wait_log(w, "snapshot", 10), w:output())
        w:signal("INT")
        lu.assertEquals(w:wait(10), 0, "watch exits 0 when interrupted")
    end
    curl("--max-time 1 http://lmdisc/v1/events >/dev/null")
    S:stop_all()
    agent1:signal("TERM")
    lu.assertEquals(agent1:wait(20), 0, agent1:output())
    lu.assertNil(S.sanitizer_report(agent1))
    agent1 = nil
end

TestApi = {}

function TestApi:tearDown() S:stop_all() end

function TestApi:test_peers_are_exactly_what_the_policy_keeps()
    announce("h2", "api-kept", "gemma")
    announce("h3", "api-hidden", "hidden")
    lu.assertNotNil(S.lab:wait_log(agent1, 'join "api%-kept"', 10), agent1:output())
    lu.assertNotNil(S.lab:wait_log(agent1, "initial scan done", 10))
    -- the filter has seen api-hidden (and said no) before it is looked for
    lu.assertNotNil(S.lab:wait_log(agent1, "FILTER api%-hidden false", 10), agent1:output())
    local peers = get_json("/v1/peers")
    local names = {}
    for _, p in ipairs(peers) do names[p.name] = p end
    lu.assertNotNil(names["api-kept"], cjson.encode(peers))
    lu.assertNil(names["api-hidden"], "the filter drops it")
    lu.assertEquals(names["api-kept"].info, "model gemma") -- the policy's info
    lu.assertEquals(names["api-kept"].port, 8000)
    local one = get_json("/v1/peers/api-kept")
    lu.assertEquals(one.host, "h2.local")
    local out = curl("-w '\\n%{http_code}' http://lmdisc/v1/peers/api-hidden")
    lu.assertStrContains(out, "404")
    lu.assertStrContains(out, '"error"')
    -- the CLI on top
    local ok, text = S.lab:exec("h1", q(BIN) .. " peers")
    lu.assertTrue(ok, text)
    lu.assertStrContains(text, "api-kept")
    lu.assertStrContains(text, S.lab:ip("h2", 4) .. ":8000")
    lu.assertStrContains(text, "model gemma")
    lu.assertNotStrContains(text, "api-hidden")
    local _, js = S.lab:exec("h1", q(BIN) .. " peers --json")
    lu.assertEquals(#cjson.decode(js), #peers)
end

function TestApi:test_events_in_order_and_resume_from_an_index()
    local log = S.tmp .. "/events.ndjson"
    local w = bg("h1", "curl -sSN --unix-socket " .. SOCK .. " http://lmdisc/v1/events > " .. q(log))
    lu.assertNotNil(S.lab:wait_log(log, '"type":"snapshot"', 10))
    local cfg = S.tmp .. "/changer.lua"
    local go = S:path("go")
    write(cfg, 'announce { port = 8100, name = "api-changer", txt = { model = "gemma", load = "1" } }\n' ..
        S.set_txt_when(go, '{ load = "2" }'))
    local changer = bg("h2", q(BIN) .. " agent -c " .. q(cfg))
    lu.assertNotNil(S.lab:wait_log(log, '"type":"join".*api%-changer', 15), io.open(log):read("a"))
    write(go, "go")
    -- the TXT update itself (an address arriving late is an update too)
    lu.assertNotNil(S.lab:wait_log(log, '"type":"update".*api%-changer.*"load":"2"', 15), io.open(log):read("a"))
    changer:signal("TERM")
    lu.assertEquals(changer:wait(10), 0)
    lu.assertNotNil(S.lab:wait_log(log, '"type":"leave".*api%-changer', 15))
    local seen, last = {}, nil
    for line in io.lines(log) do
        local ev = cjson.decode(line)
        if ev.type == "snapshot" then
            last = ev.index
        elseif ev.peer.name == "api-changer" and not address_only(ev) then
            seen[#seen + 1] = ev.type
            lu.assertEquals(ev.index, last + 1, "indexes increase by one")
        end
        if ev.type ~= "snapshot" then last = ev.index end
    end
    lu.assertEquals(seen, {"join", "update", "leave"})

    -- a client that reconnects with its last index gets only what it missed
    local before = get_json("/v1/health") and last
    announce("h3", "api-missed", "gemma", 8200)
    lu.assertNotNil(S.lab:wait_log(agent1, 'join "api%-missed"', 10))
    local _, epoch_hdr = curl("-D - -o /dev/null http://lmdisc/v1/peers")
    local missed = curl(("--max-time 2 'http://lmdisc/v1/events?since=%d'"):format(before))
    local got = {}
    for line in missed:gmatch("[^\n]+") do
        local ev = cjson.decode(line)
        if not address_only(ev) then got[#got + 1] = ev end
    end
    lu.assertEquals(#got, 1, missed)
    lu.assertEquals(got[1].type, "join")
    lu.assertEquals(got[1].peer.name, "api-missed")
    lu.assertEquals(got[1].index, before + 1)
    -- an index from another run of the agent (other epoch) gets a fresh snapshot
    local other = curl(("--max-time 2 'http://lmdisc/v1/events?since=%d&epoch=elsewhere'"):format(before))
    local first = cjson.decode(other:match("[^\n]+"))
    lu.assertEquals(first.type, "snapshot")
    lu.assertTrue(first.reset)
    w:signal("TERM")
end

function TestApi:test_server_sent_events()
    local out = curl("--max-time 2 -H 'Accept: text/event-stream' http://lmdisc/v1/events")
    lu.assertStrMatches(out, "id: [%w]+:%d+\nevent: snapshot\ndata: {.*}\n\n.*")
end

function TestApi:test_metrics_parse_and_move()
    local m0 = metrics()
    lu.assertNotNil(m0["lmdisc_peers_alive"])
    lu.assertEquals(m0["lmdisc_avahi_up"], 1)
    local p = announce("h2", "api-metric", "gemma", 8300)
    lu.assertNotNil(S.lab:wait_log(agent1, 'join "api%-metric"', 10))
    p:signal("TERM")
    p:wait(10)
    lu.assertNotNil(S.lab:wait_log(agent1, 'leave "api%-metric"', 10))
    local m1 = metrics()
    lu.assertEquals(m1["lmdisc_joins_total"], m0["lmdisc_joins_total"] + 1)
    -- >=: the goodbye of a peer the previous test stopped may land after m0
    lu.assertTrue(m1['lmdisc_leaves_total{reason="goodbye"}'] >= m0['lmdisc_leaves_total{reason="goodbye"}'] + 1)
    lu.assertTrue(m1["lmdisc_hook_runs_total"] >= m0["lmdisc_hook_runs_total"] + 2)
    lu.assertTrue(m1["lmdisc_api_requests_total"] > m0["lmdisc_api_requests_total"])
    lu.assertTrue(m1["lmdisc_lua_memory_bytes"] > 0)
end

function TestApi:test_bad_requests_get_4xx_and_the_agent_keeps_serving()
    local function code(args)
        local out = curl("-o /dev/null -w '%{http_code}' " .. args)
        return tonumber(out:match("%d+$"))
    end
    lu.assertEquals(code("-X POST http://lmdisc/v1/peers"), 405)
    lu.assertEquals(code("-X DELETE http://lmdisc/v1/peers/x"), 405)
    lu.assertEquals(code("http://lmdisc/nope"), 404)
    lu.assertEquals(code("'http://lmdisc/v1/events?since=-4'"), 400)
    lu.assertEquals(code("'http://lmdisc/v1/events?since=abc'"), 400)
    local big = string.rep("a", 20000)
    lu.assertTrue(code("-H 'X-Big: " .. big .. "' http://lmdisc/v1/health") >= 400)
    local body = curl("-X POST http://lmdisc/v1/peers")
    lu.assertStrContains(cjson.decode(body).error, "only GET is supported here")
    -- garbage on the wire, and a client that connects and says nothing
    S.lab:exec("h1", "printf 'NOT HTTP AT ALL\\r\\n\\r\\n' | timeout 3 socat - UNIX-CONNECT:" .. SOCK ..
             " >/dev/null 2>&1 || true")
    local idle = bg("h1", "exec 3<>/dev/null; timeout 30 socat -u UNIX-CONNECT:" .. SOCK .. " - ")
    lu.assertEquals(code("http://lmdisc/v1/health"), 200) -- others are served meanwhile
    local peers = curl("-w '\\n%{http_code}' http://lmdisc/v1/peers")
    lu.assertStrMatches(peers, "%[.*%]\n*200", nil, nil, peers) -- a JSON array, in full
    lu.assertTrue(agent1:running())
end

function TestApi:test_cli_without_agent_says_so()
    local ok, out, code = S.lab:exec("h3", q(BIN) .. " peers")
    lu.assertEquals(code, 1)
    lu.assertStrContains(out, "no lmdisc agent is running here")
    ok, out, code = S.lab:exec("h3", q(BIN) .. " watch --socket /tmp/nowhere.sock")
    lu.assertEquals(code, 1)
    lu.assertStrContains(out, "/tmp/nowhere.sock")
end

function TestApi:test_second_agent_on_the_same_socket_is_refused()
    local cfg = S.tmp .. "/plain.lua"
    write(cfg, "registry { ttl = 60 }\n")
    local ok, out, code = S.lab:exec("h1", "timeout 10 " .. q(BIN) .. " agent -c " .. q(cfg))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "another agent is already serving " .. SOCK)
    lu.assertTrue(agent1:running())
end

os.exit(lu.LuaUnit.run())
