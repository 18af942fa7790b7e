-- The policy worker (issue 18): policies that loop inside one of Lua's C
-- functions, from on_join when a peer of a given name (announced from h2)
-- joins the agent on h1.  No in-VM guard can stop these; the worker's CPU
-- limit (or the core's SIGKILL) does.  For each: the agent on h1 keeps its
-- PID; h3 (an agent watching, and avahi-browse) never sees h1's service
-- leave; /v1/health and /v1/peers answer within 100 ms throughout; the
-- worker is restarted (on_start runs), the next ordinary join reaches the
-- restarted policy, and /v1/health reports the restart.
local lu = require "luaunit"
local cjson = require "cjson"
local Lab = require "lab"

local S = require("suite").new(3)
local q, BIN, write = S.q, S.BIN, S.write
local tail = S.tail
local function lit(s) return (s:gsub("%p", "%%%0")) end
local function await(p, pattern, timeout, nth) return S:await(p, pattern, timeout, nth) end

local POLICY = [[
policy { deadline = 0.25, memory_mb = 256 }
announce { port = 8400, name = os.getenv("NAME") }
api { socket = os.getenv("API_SOCKET") }
local WEDGE, PEER = os.getenv("WEDGE"), os.getenv("WEDGE_PEER")
local wedges = {}
-- the five of issue 18
function wedges.pattern() return ("a"):rep(300):find("a*a*a*a*a*a*b") end
function wedges.len_insert()
  local t = setmetatable({}, { __len = function() return 1 << 40 end })
  table.insert(t, 1, "x")
end
function wedges.move() table.move({}, 1, 2^40, 2) end
function wedges.rep_metatable() local s = ""; return s:rep(math.maxinteger) end
function wedges.plain_find()
  local s, p = ("a"):rep(1 << 22), ("a"):rep(1 << 17) .. "b"
  return s:find(p, 1, true)
end
-- found here: %b is quadratic and not estimated, '?' backtracks
-- exponentially, table.remove shifts by a __len the policy chose
function wedges.balance() return ("("):rep(1 << 17):find("%b()") end
function wedges.optional() return ("a"):rep(40):find(("a?"):rep(40) .. ("a"):rep(40) .. "$") end
function wedges.len_remove()
  local t = setmetatable({}, { __len = function() return 1 << 40 end })
  table.remove(t, 1)
end
assert(wedges[WEDGE], "unknown wedge " .. tostring(WEDGE))
local started = 0
function on_start(peers, why)
  started = started + 1
  lmdisc.log.info("ON_START %s with %d peer(s)", why, #peers)
end
function on_join(peer)
  lmdisc.log.info("JOINED %s (starts %d)", peer.name, started)
  if peer.name ~= PEER then return end
  lmdisc.log.info("WEDGE %s starts", WEDGE)
  wedges[WEDGE]()
  lmdisc.log.info("WEDGE %s returned", WEDGE)
end
]]

TestWorker = {}

function TestWorker:tearDown() S:stop_all() end

local C = require "containment"
local function get(sock, path) return (C.get(S, sock, path)) end

local function contained(kind)
    local name1, peer, after = S:uniq("steady"), S:uniq("wedge-" .. kind), S:uniq("after-" .. kind)
    local sock1 = S:path("h1.sock")
    local obs = C.observers(S)
    local cfg = S:path("worker.lua")
    write(cfg, POLICY)
    local p1 = S:agent("h1", nil, {path = cfg, env = {WEDGE = kind, WEDGE_PEER = peer, API_SOCKET = sock1,
                                                        NAME = name1}})
    C.seen(S, obs, name1)

    local probe = C.probe(S, sock1, 12)
    local t0 = Lab.now()
    S:announce("h2", 9000, peer)
    await(p1, "WEDGE " .. lit(kind) .. " starts", 15)
    local err = await(p1, "policy: .*ran past its CPU limit", 10)
    await(p1, "policy: state running", 10)
    await(p1, "ON_START restart with", 5)
    local t_back = Lab.now() - t0
    lu.assertNil(p1:output():find("WEDGE " .. kind .. " returned", 1, true))
    -- the line it was stopped on: the wedge's own
    lu.assertStrContains(err, "worker.lua:")
    lu.assertTrue(p1:running(), "the agent died:\n" .. tail(p1:output()))
    local _, starts = p1:output():gsub("agent started", "")
    lu.assertEquals(starts, 1)

    -- the next ordinary event reaches the restarted policy (on_start ran once)
    S:announce("h2", 9001, after)
    await(p1, "JOINED " .. lit(after) .. " %(starts 1%)", 15)

    -- health reports the restart; the wedge's peer kept its fallback verdict
    local h = get(sock1, "/v1/health")
    lu.assertEquals(h.policy.state, "running")
    lu.assertEquals(h.policy.restarts, 1)
    lu.assertStrContains(h.policy.last_error, "ran past its CPU limit")
    local names = {}
    for _, n in ipairs(get(sock1, "/v1/peers")) do names[n.name] = true end
    lu.assertTrue(names[peer] and names[after], "peers: " .. cjson.encode(names))

    -- the API answered in time throughout; h3 never saw h1 leave
    local n, worst = C.probed(S, probe, 12, 0.1)
    C.never_left(obs, name1)
    lu.assertNil(p1:output():find("watchdog", 1, true))
    print(("    %s: back %.2f s after the join, %d API requests, slowest %.1f ms"):format(kind, t_back, n,
        worst * 1000))
end

function TestWorker:test_pattern_with_six_stars() contained("pattern") end
function TestWorker:test_table_insert_with_a_huge_len() contained("len_insert") end
function TestWorker:test_table_move_with_a_float_range() contained("move") end
function TestWorker:test_rep_through_the_string_metatable() contained("rep_metatable") end
function TestWorker:test_plain_find_of_a_long_needle() contained("plain_find") end
function TestWorker:test_balanced_match_is_quadratic() contained("balance") end
function TestWorker:test_optional_items_backtrack_exponentially() contained("optional") end
function TestWorker:test_table_remove_with_a_huge_len() contained("len_remove") end

-- A policy that keeps dying: after three deaths within a minute it is
-- suspended, peers get the fallback verdict, health says so.
function TestWorker:test_a_policy_that_keeps_dying_is_suspended()
    local sock1 = S:path("h1.sock")
    local cfg = S:path("dying.lua")
    write(cfg, ([[
policy { deadline = 0.25 }
api { socket = %q }
function on_join(peer)
  if peer.name:match("^die") then return ("a"):rep(300):find("a*a*a*a*a*a*b") end
end
]]):format(sock1))
    local p1 = S:agent("h1", nil, {path = cfg})
    for i = 1, 3 do
        S:announce("h2", 9100 + i, S:uniq("die" .. i))
        await(p1, "ran past its CPU limit.*gets the fallback verdict", 10, i)
    end
    await(p1, "policy: state suspended", 10)
    local h = get(sock1, "/v1/health")
    lu.assertEquals(h.policy.state, "suspended")
    lu.assertEquals(h.policy.restarts, 3)
    -- a peer joining meanwhile is kept with the fallback verdict
    local late = S:uniq("late")
    S:announce("h2", 9200, late)
    await(p1, 'join "' .. lit(late) .. '"', 15)
    local ok, metrics, code = S.lab:exec("h1", "curl -sS --max-time 5 --unix-socket " .. q(sock1) .. " http://lmdisc/metrics")
    lu.assertTrue(ok, ("GET /metrics (exit %s): %s\n%s"):format(code, metrics, tail(p1:output())))
    lu.assertStrContains(metrics, "lmdisc_policy_state 2")
    lu.assertStrContains(metrics, "lmdisc_policy_restarts_total 3")
    lu.assertTrue(p1:running())
end

-- A reload whose configuration wedges while loading: the running policy
-- stays, with the line the new file was stopped on in the log.
function TestWorker:test_a_reload_that_wedges_keeps_the_running_policy()
    local sock1 = S:path("h1.sock")
    local cfg = S:path("reload.lua")
    local base = ("api { socket = %q }\nfunction on_join(p) lmdisc.log.info('GEN %%s joined %%s', GEN, p.name) end\n")
        :format(sock1)
    write(cfg, "GEN = 1\n" .. base)
    local p1 = S:agent("h1", nil, {path = cfg})
    write(cfg, "GEN = 2\n" .. base .. "local r = ('a'):rep(300):find('a*a*a*a*a*a*b')\n")
    p1:signal("HUP")
    local line = await(p1, "reload failed; the running policy stays in force", 20)
    lu.assertStrContains(line, "reload.lua:4")
    local who = S:uniq("after-reload")
    S:announce("h2", 9300, who)
    await(p1, "GEN 1 joined " .. lit(who), 15)
    lu.assertTrue(p1:running())
    lu.assertEquals(get(sock1, "/v1/health").policy.restarts, 0)
end

os.exit(lu.LuaUnit.run())
