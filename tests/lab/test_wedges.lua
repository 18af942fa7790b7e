-- Policies that try to wedge the agent, on lab hosts. Each wedge runs in
-- on_join of an agent on h1 when a peer of a given name (announced from h2
-- with `lmdisc announce`) joins: the hook is stopped or refused with the
-- right message, the API keeps answering, and SIGTERM still ends the agent
-- with 0 within a second. A stall in C that the sandbox lets through stops
-- the policy worker at its CPU limit; it is restarted and the agent stays
-- on the network (tests/lab/test_worker.lua has eight such stalls). The TXT record bound (1300 bytes)
-- is checked on the wire: exactly 1300 bytes with a 63-byte name resolve
-- over IPv4 and IPv6, 1301 are refused.
local lu = require "luaunit"
local cjson = require "cjson"
local Lab = require "lab"

local S = require("suite").new(3)
local q, BIN, write, read = S.q, S.BIN, S.write, S.read

-- a literal string as a Lua pattern
local function lit(s) return (s:gsub("%p", "%%%0")) end

local tail = S.tail
local function await(p, pattern, timeout, nth) return S:await(p, pattern, timeout, nth) end

-- The policy: on_join runs the wedge $WEDGE when the peer $WEDGE_PEER joins
-- (other peers, e.g. the goodbyes of earlier tests, are ignored).
local WEDGE_POLICY = [[
policy { deadline = tonumber(os.getenv("DEADLINE")) }
api { socket = os.getenv("API_SOCKET") }
local WEDGE, PEER, FIFO = os.getenv("WEDGE"), os.getenv("WEDGE_PEER"), os.getenv("WEDGE_FIFO")
local wedges = {}
function wedges.pcall_loop()
  while true do pcall(function() while true do end end) end
end
function wedges.xpcall_looping_handler()
  -- the stop is raised in the deadline hook: Lua runs the handler there with hooks off
  xpcall(function() while true do end end, function(m) while true do end end)
end
function wedges.xpcall_error_then_looping_handler()
  -- a plain error: the handler that loops runs before the deadline
  while true do xpcall(error, function(m) while true do end end, "plain") end
end
function wedges.coroutine_loop()
  -- each resume returns the stop as a value, and the loop goes on
  while true do coroutine.resume(coroutine.create(function() while true do end end)) end
end
function wedges.coroutine_swallows_and_returns()
  local ok = coroutine.resume(coroutine.create(function() while true do end end))
  return ok
end
function wedges.exponential_pattern()
  return ("a"):rep(40):find(("a*"):rep(60) .. "b")
end
function wedges.fifo_open()
  local f = assert(io.open(FIFO, "r"))
  f:read("a")
end
function wedges.timers()
  for i = 1, 20000 do lmdisc.timer(3600, function() end) end
end
function wedges.finalizer()
  setmetatable({}, { __gc = function() while true do end end })
end
assert(wedges[WEDGE], "unknown wedge")
function on_join(peer)
  if peer.name ~= PEER then return end
  lmdisc.log.info("WEDGE %s starts", WEDGE)
  wedges[WEDGE]()
  lmdisc.log.info("WEDGE %s returned", WEDGE)
end
]]

TestWedges = {}

function TestWedges:tearDown() S:stop_all() end

-- Start the wedging agent on h1, announce its trigger from h2, wait for the
-- hook's failure line; then the API answers and SIGTERM ends it with 0 in 1 s.
local function wedge(kind, expect, opts)
    opts = opts or {}
    local peer = S:uniq("wedge-" .. kind)
    local sock = S:path("agent.sock")
    local cfg = S:path("wedge.lua")
    write(cfg, WEDGE_POLICY)
    local p1 = S:agent("h1", nil, {path = cfg, env = {WEDGE = kind, WEDGE_PEER = peer, API_SOCKET = sock,
                                                        DEADLINE = opts.deadline or "0.25",
                                                        WEDGE_FIFO = opts.fifo or ""}})
    S:announce("h2", 9000, peer)
    await(p1, "WEDGE " .. lit(kind) .. " starts")
    local line = await(p1, "policy: on_join failed for peer " .. lit(peer) .. ": ", 15)
    for _, e in ipairs(expect) do lu.assertStrContains(line, e) end
    if not opts.returns then
        lu.assertNil(p1:output():find("WEDGE " .. kind .. " returned", 1, true), "the wedge returned:\n" .. tail(p1:output()))
    end
    lu.assertTrue(p1:running(), "the agent died:\n" .. tail(p1:output()))

    -- the API still answers, and has the peer (a failed hook does not drop it)
    local t0 = Lab.now()
    local ok, out, code = S.lab:exec("h1", "LMDISC_SOCKET=" .. q(sock) .. " timeout 5 " .. q(BIN) ..
                                           " peers --json 2>/dev/null")
    local dt = Lab.now() - t0
    lu.assertTrue(ok, ("lmdisc peers failed (%s): %s"):format(code, out))
    local okj, peers = pcall(cjson.decode, out)
    lu.assertTrue(okj, "not JSON: " .. out)
    local names = {}
    for _, n in ipairs(peers) do names[n.name] = true end
    lu.assertTrue(names[peer], "the peer is listed: " .. out)
    lu.assertTrue(dt < 5, ("lmdisc peers took %.2f s"):format(dt))
    local okh, health = S.lab:exec("h1", "curl -s --max-time 3 --unix-socket " .. q(sock) .. " http://lmdisc/v1/health")
    lu.assertTrue(okh, "GET /v1/health: " .. health)
    lu.assertEquals(cjson.decode(health).status, "ok")

    -- SIGTERM: exit 0 within a second
    t0 = Lab.now()
    p1:signal("TERM")
    local rc, err = p1:wait(5)
    local took = Lab.now() - t0
    lu.assertEquals(rc, 0, "exit status after SIGTERM (" .. tostring(err) .. "):\n" .. tail(p1:output()))
    lu.assertTrue(took <= 1.0, ("exited %.2f s after SIGTERM"):format(took))
    print(("    %s: peers answered in %.2f s, exit 0 %.2f s after SIGTERM"):format(kind, dt, took))
    lu.assertNil(S.sanitizer_report(p1))
    return p1, line
end

local DEADLINE = "exceeded its deadline of 0.25 s and was stopped"

function TestWedges:test_pcall_in_a_loop_is_stopped()
    wedge("pcall_loop", {DEADLINE})
end

function TestWedges:test_xpcall_with_a_looping_handler_is_stopped()
    wedge("xpcall_looping_handler", {DEADLINE})
end

function TestWedges:test_xpcall_handler_that_loops_on_a_plain_error_is_stopped()
    wedge("xpcall_error_then_looping_handler", {DEADLINE})
end

function TestWedges:test_coroutine_that_swallows_the_stop_in_a_loop_is_stopped()
    wedge("coroutine_loop", {DEADLINE})
end

function TestWedges:test_coroutine_that_swallows_the_stop_and_returns_still_fails()
    -- it does return (the coroutine swallowed the stop), but the call still fails
    wedge("coroutine_swallows_and_returns", {DEADLINE, "(raise policy { deadline = ... } if it needs longer)"}, {returns = true})
end

function TestWedges:test_exponential_pattern_is_refused()
    wedge("exponential_pattern", {"string.find: a pattern with 60 repetition(s)", "no deadline can stop it"})
end

function TestWedges:test_fifo_open_is_refused_without_blocking()
    local fifo = S:path("fifo")
    lu.assertTrue(os.execute("mkfifo " .. q(fifo)))
    wedge("fifo_open", {fifo .. ": not a regular file"}, {fifo = fifo})
end

function TestWedges:test_twenty_thousand_timers_are_refused_past_ten_thousand()
    -- a deadline that 10000 timer creations cannot hit on a slow (sanitizer) build
    wedge("timers", {"too many timers: 10000 are pending"}, {deadline = "5"})
end

function TestWedges:test_finalizer_is_refused()
    wedge("finalizer", {"__gc (finalizers) is not available"})
end

-- A stall in C that the pattern bound lets through (6 repetitions, anchored:
-- ~4e8 estimated steps, really ~1e16): the deadline cannot stop it.  Before
-- issue 18 the loop watchdog ended the agent (exit 3) and h3 saw it leave,
-- every time the hook ran again; now the policy worker is stopped at its CPU
-- limit and restarted, and the agent, its loop and its announcement stay.
function TestWedges:test_a_stall_in_c_restarts_the_policy_worker_and_peers_never_see_the_agent_leave()
    local TIMEOUT = 2
    local name1, peer = S:uniq("stalled"), S:uniq("staller")
    local sock1, sock3 = S:path("h1.sock"), S:path("h3.sock")
    S:agent("h3", ("registry { ttl = 60 }\napi { socket = %q }\n"):format(sock3))
    local watch = S:bg("h3", "exec " .. q(BIN) .. " watch --json --socket " .. q(sock3))
    await(watch, '"type":"snapshot"', 10)
    local p1 = S:agent("h1", ([[
policy { deadline = 0.25 }
watchdog { timeout = %d }
announce { port = 8400, name = %q }
api { socket = %q }
function on_join(peer)
  if peer.name ~= %q then return end
  lmdisc.log.info("STALL starts")
  local r = ("a"):rep(5000):find("^a*a*a*a*a*a*b")
  lmdisc.log.info("STALL returned %%s", tostring(r))
end
]]):format(TIMEOUT, name1, sock1, peer))
    await(watch, '"type":"join".*"name":"' .. lit(name1) .. '"', 15)
    S:announce("h2", 9000, peer)
    await(p1, "STALL starts", 15)
    local t0 = Lab.now()
    local line = await(p1, "policy: .*ran past its CPU limit of 0.75 s", TIMEOUT + 5)
    lu.assertStrContains(line, ":8: the join event of")
    await(p1, "policy: state running", 5)
    local t_back = Lab.now() - t0
    -- what the watchdog would have taken, and more: the agent is still there
    local gone = S.lab:wait_log(watch, '"type":"leave".*"name":"' .. lit(name1) .. '"', TIMEOUT + 4)
    lu.assertNil(gone, "h3 saw the agent leave: " .. tostring(gone))
    lu.assertTrue(p1:running(), "the agent ended:\n" .. tail(p1:output()))
    lu.assertNil(p1:output():find("watchdog", 1, true), tail(p1:output()))
    lu.assertNil(p1:output():find("STALL returned", 1, true))
    local ok, out = S.lab:exec("h1", "curl -s --max-time 3 --unix-socket " .. q(sock1) .. " http://lmdisc/v1/health")
    lu.assertTrue(ok, out)
    local h = cjson.decode(out)
    lu.assertEquals(h.policy.restarts, 1)
    lu.assertEquals(h.policy.state, "running")
    print(("    stall in C: worker restarted %.2f s after the stall began; h3 saw no leave"):format(t_back))
end

-- TXT items as --txt arguments for `lmdisc announce`, with info = "i",
-- totalling `total` bytes of record (each item: length byte + key [+ '=' +
-- value]); returns the arguments and the expected txt table.
local function txt_of_size(total)
    local args, want = {}, {info = "i"}
    local left = total - (1 + #"info=i")
    local k = 0
    while left > 0 do
        k = k + 1
        local key = ("k%02d"):format(k)
        local item = math.min(left, 256) -- at most 255 bytes after the length byte
        local vlen = item - 1 - #key - 1
        if vlen < 0 then
            error("bad split")
        end
        local value = (string.char(96 + k)):rep(vlen)
        args[#args + 1] = "--txt " .. q(key .. "=" .. value)
        want[key] = value
        left = left - item
    end
    return table.concat(args, " "), want
end

-- a daemon slow to answer is not a wedge: with avahi-daemon stopped
-- (SIGSTOP), a registration's D-Bus calls wait for the reply on the
-- publishing thread, past the watchdog's 2 s, while the loop answers the
-- API; nothing fires, and once the daemon goes on the service is announced
-- (a busy daemon during a flood answered late the same way: on the loop,
-- the watchdog ended a healthy agent, and the API stalled)
function TestWedges:test_a_daemon_slow_to_answer_is_not_a_wedge()
    local sock1 = S:path("h1.sock")
    local p1 = S:agent("h1", ("watchdog { timeout = 2 }\napi { socket = %q }\n"):format(sock1))
    await(p1, "initial scan done", 10)
    S.lab:avahi_pause("h1")
    local name = S:uniq("late")
    local reg = S:bg("h1", ("exec curl -sS -N --max-time 60 --unix-socket %s -X PUT -H 'Content-Type: application/json' "
        .. "--data-binary '{\"port\": 8500}' http://lmdisc/v1/services/%s"):format(q(sock1), name))
    -- publishing runs on a thread of its own (src/mdns/publisher.c): the
    -- registration is taken at once and the loop goes on answering while
    -- the daemon does not (before, the loop waited in the D-Bus call)
    local taken = S.lab:wait_log(p1, 'registered service "' .. lit(name) .. '"', 3)
    local hok, hout = S.lab:exec("h1", ("curl -sS -o /dev/null -w '%%{http_code} %%{time_total}' --max-time 2 " ..
        "--unix-socket %s http://lmdisc/v1/health"):format(q(sock1)))
    -- the watchdog's bound twice over, the daemon still stopped
    local fired = S.lab:wait_log(p1, "watchdog", 5)
    S.lab:avahi_resume("h1")
    lu.assertNotNil(taken, "the registration waited for the stopped daemon:\n" .. tail(p1:output()))
    lu.assertTrue(hok and hout:match("^200 ") ~= nil, "/v1/health while the daemon is stopped: " .. tostring(hout))
    lu.assertNil(fired, tail(p1:output()))
    lu.assertTrue(p1:running(), "the agent ended:\n" .. tail(p1:output()))
    await(p1, 'announced registered service "' .. lit(name) .. '"', 30)
    await(reg, '"state":"established"', 10)
    lu.assertNil(p1:output():find("watchdog", 1, true), tail(p1:output()))
end

function TestWedges:test_txt_record_of_1300_bytes_resolves_over_ipv4_and_ipv6_and_1301_is_refused()
    local name = (S:uniq("txt63-") .. ("x"):rep(63)):sub(1, 63) -- unique, 63 bytes
    lu.assertEquals(#name, 63)
    local args, want = txt_of_size(1300)
    local size = 0
    for k, v in pairs(want) do size = size + 1 + #k + 1 + #v end
    lu.assertEquals(size, 1300)
    local p2 = S:bg("h2", ("exec %s announce 9300 i --name %s %s"):format(q(BIN), q(name), args))
    await(p2, "^announced", 15)
    local ok, out = S.lab:exec("h3", q(BIN) .. " discover --json --no-agent --timeout 5 2>/dev/null")
    lu.assertTrue(ok, out)
    local doc = cjson.decode(out)
    local node
    for _, n in ipairs(doc.nodes) do if n.name == name then node = n end end
    lu.assertNotNil(node, "not resolved: " .. out)
    lu.assertEquals(node.txt, want)
    lu.assertEquals(node.port, 9300)
    local fams = {}
    for _, a in ipairs(node.addresses) do fams[a.family] = a.address end
    lu.assertEquals(fams[4], S.lab:ip("h2", 4), out)
    lu.assertEquals(fams[6], S.lab:ip("h2", 6), out)
    lu.assertTrue(doc.complete, out)
    -- nothing in avahi's log about records it could not send
    local avahi_log = read(("%s/%s/h2.avahi.log"):format(os.getenv("LMD_LAB_STATE") or "/run/lmdisc-lab", S.lab.id))
    lu.assertStrContains(avahi_log, "Server startup complete") -- it is avahi's log
    lu.assertNil(avahi_log:find("too large", 1, true), tail(avahi_log))

    -- one byte more is refused, by the command and by a configuration
    local args1 = txt_of_size(1301)
    local ok1, out1, code1 = S.lab:exec("h2", ("timeout 10 %s announce 9301 i --name %s %s"):format(
        q(BIN), q(S:uniq("over")), args1))
    lu.assertFalse(ok1)
    lu.assertTrue(code1 == 1 or code1 == 2, ("exit %s: %s"):format(code1, out1))
    lu.assertStrContains(out1, "at most 1300 fit in one mDNS packet")
    local _, want1 = txt_of_size(1301)
    local items = {}
    for k, v in pairs(want1) do if k ~= "info" then items[#items + 1] = ("[%q] = %q"):format(k, v) end end
    local cfg = S:path("big.lua")
    write(cfg, ("announce { port = 9302, info = %q, txt = { %s } }\n"):format(want1.info, table.concat(items, ", ")))
    local okc, outc, codec = S.lab:exec("h2", ("timeout 10 %s check %s"):format(q(BIN), q(cfg)))
    lu.assertFalse(okc)
    lu.assertEquals(codec, 1, outc)
    lu.assertStrContains(outc, "at most 1300 fit in one mDNS packet")
    local okr, outr, coder = S.lab:exec("h2", ("timeout 10 %s agent -c %s"):format(q(BIN), q(cfg)))
    lu.assertFalse(okr)
    lu.assertEquals(coder, 1, outr)
    lu.assertStrContains(outr, "at most 1300 fit in one mDNS packet")
end

os.exit(lu.LuaUnit.run())
