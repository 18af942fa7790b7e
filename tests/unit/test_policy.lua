-- Unit tests for lmdisc.policy (peer_event semantics, hooks, guard, adopt)
-- and lmdisc.sandbox, without the simulation harness.
local lu = require "luaunit"
local policy = require "lmdisc.policy"
local lmdisc = require "lmdisc"

local function fake_api()
  local logs = {}
  local api = { escape = lmdisc.escape, txt_check = lmdisc.txt_check, log = {}, logs = logs }
  for _, l in ipairs { "debug", "info", "warn", "error" } do
    api.log[l] = function(fmt, ...) logs[#logs + 1] = { level = l, message = fmt:format(...) } end
  end
  return api
end

local function messages(api, level)
  local out = {}
  for _, l in ipairs(api.logs) do
    if level == nil or l.level == level then out[#out + 1] = l.message end
  end
  return out
end

-- A policy from text; `calls` (a global list in the policy) records hooks.
local function load(src, opts)
  opts = opts or {}
  opts.api = opts.api or fake_api()
  opts.source = "calls = {}\n" .. src
  local P, err, warnings = policy.load("pol.lua", opts)
  assert(P, err)
  return P, opts.api, warnings
end

local function calls(P) return P.env.calls end

local RECORD = [[
function on_join(peer) calls[#calls + 1] = {"join", peer.name, peer.info} end
function on_update(peer, old, changes)
  calls[#calls + 1] = {"update", peer.name, table.concat(changes, ","), peer.info, old and old.info}
end
function on_leave(peer, reason) calls[#calls + 1] = {"leave", peer.name, reason, peer.info} end
]]

local function peer(name, txt, extra)
  local p = { name = name, type = "_lmserv._tcp", domain = "local", host = name .. ".local", port = 8000,
    addresses = { "10.0.0.1" }, interfaces = { "eth0" }, txt = txt or {}, ["local"] = false, self = false }
  if p.txt.info then p.info = p.txt.info end
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

---------------------------------------------------------------------------
TestPolicyEvents = {}

function TestPolicyEvents:test_join_without_filter_keeps_and_uses_txt_info()
  local P = load(RECORD)
  local emitted, keep, info = P:peer_event("join", peer("a", { info = "hello" }))
  lu.assertEquals({ emitted, keep, info }, { "join", true, "hello" })
  lu.assertEquals(calls(P), { { "join", "a", "hello" } })
  lu.assertTrue(P:kept("a"))
  lu.assertFalse(P:kept("nobody"))
end

function TestPolicyEvents:test_filtered_out_join_is_silent()
  local P = load(RECORD .. "function filter(p) return p.txt.model == 'm' end")
  local emitted, keep = P:peer_event("join", peer("a", { model = "x" }))
  lu.assertNil(emitted)
  lu.assertFalse(keep)
  lu.assertEquals(calls(P), {})
end

function TestPolicyEvents:test_filter_result_is_truthiness()
  local P = load("function filter(p) return p.txt.n end")
  lu.assertTrue(select(2, P:peer_event("join", peer("a", { n = "0" }))))
  lu.assertFalse(select(2, P:peer_event("join", peer("b", {}))))
end

function TestPolicyEvents:test_update_with_changes()
  local P = load(RECORD)
  P:peer_event("join", peer("a", { info = "one" }))
  local old, new = peer("a", { info = "one" }), peer("a", { info = "one" }, { port = 9000 })
  local emitted, keep, info, changes = P:peer_event("update", new, old, { "port" })
  lu.assertEquals({ emitted, keep, info }, { "update", true, "one" })
  lu.assertEquals(changes, { "port" })
  lu.assertEquals(calls(P)[2], { "update", "a", "port", "one", "one" })
end

function TestPolicyEvents:test_update_without_changes_emits_nothing()
  local P = load(RECORD)
  P:peer_event("join", peer("a"))
  lu.assertNil((P:peer_event("update", peer("a"), peer("a"), {})))
  lu.assertEquals(#calls(P), 1)
end

function TestPolicyEvents:test_info_change_alone_is_an_update_with_info()
  local P = load(RECORD .. "function info(p) return 'v' .. (p.txt.v or '?') end")
  P:peer_event("join", peer("a", { v = "1" }))
  local emitted, _, info, changes = P:peer_event("update", peer("a", { v = "2" }), peer("a", { v = "1" }), { "txt" })
  lu.assertEquals(emitted, "update")
  lu.assertEquals(info, "v2")
  lu.assertEquals(changes, { "txt", "info" })
  lu.assertEquals(calls(P)[2], { "update", "a", "txt,info", "v2", "v1" })
  -- info changed with an empty changes list (e.g. info() depends on time)
  P.env.info = function() return "other" end
  emitted, _, _, changes = P:peer_event("update", peer("a", { v = "2" }), peer("a"), {})
  lu.assertEquals(emitted, "update")
  lu.assertEquals(changes, { "info" })
end

function TestPolicyEvents:test_filter_change_leaves_as_filtered_then_rejoins()
  local P = load(RECORD .. "function filter(p) return p.txt.model == 'm' end")
  P:peer_event("join", peer("a", { model = "m", info = "i" }))
  local emitted, keep = P:peer_event("update", peer("a", { model = "x" }), peer("a", { model = "m" }), { "txt" })
  lu.assertEquals({ emitted, keep }, { "leave", false })
  lu.assertEquals(calls(P)[2], { "leave", "a", "filtered", "i" }) -- info as it was while kept
  lu.assertFalse(P:kept("a"))
  -- the network's goodbye for a peer we no longer keep says nothing
  lu.assertNil((P:peer_event("leave", peer("a"), nil, nil, "goodbye")))
  -- and an update that makes a peer match is a join
  P:peer_event("join", peer("b", { model = "x" }))
  lu.assertEquals((P:peer_event("update", peer("b", { model = "m" }), peer("b"), { "txt" })), "join")
  lu.assertEquals(calls(P)[3], { "join", "b" })
end

function TestPolicyEvents:test_leave_of_kept_peer_and_forgetting()
  local P = load(RECORD .. "function info(p) return 'computed' end")
  P:peer_event("join", peer("a"))
  local emitted, keep, info = P:peer_event("leave", peer("a"), nil, nil, "expired")
  lu.assertEquals({ emitted, keep, info }, { "leave", false, "computed" })
  lu.assertEquals(calls(P)[2], { "leave", "a", "expired", "computed" })
  lu.assertFalse(P:kept("a"))
  lu.assertEquals({ P:verdict("a") }, { false })
  -- back again: a join, not an update
  lu.assertEquals((P:peer_event("join", peer("a"))), "join")
end

function TestPolicyEvents:test_update_of_unknown_peer_is_a_join()
  local P = load(RECORD)
  lu.assertEquals((P:peer_event("update", peer("a"), nil, { "txt" })), "join")
end

function TestPolicyEvents:test_hooks_see_computed_info_and_old_info()
  local P = load(RECORD .. "function info(p) return (p.txt.model or '') .. '!' end")
  local p = peer("a", { model = "m", info = "txt-info" })
  P:peer_event("join", p)
  lu.assertEquals(p.info, "m!")
  local old = peer("a", { model = "m", info = "txt-info" })
  P:peer_event("update", peer("a", { model = "n" }), old, { "txt" })
  lu.assertEquals(old.info, "m!")
end

function TestPolicyEvents:test_info_not_called_for_peers_that_are_not_kept()
  -- the classic info() fails on peers without a model: the filter keeps them out
  local P, api = load("function filter(p) return p.txt.model ~= nil end\n"
    .. "function info(p) return p.txt.model .. ' ' .. (p.txt.quant or '') end")
  local _, keep, info = P:peer_event("join", peer("a", { info = "plain" }))
  lu.assertFalse(keep)
  lu.assertEquals(info, "plain")
  lu.assertEquals(P.stats.hook_errors, 0)
  lu.assertEquals(messages(api, "error"), {})
end

function TestPolicyEvents:test_info_returning_nil_means_no_info()
  local P = load("function info(p) return nil end")
  lu.assertNil(select(3, P:peer_event("join", peer("a", { info = "txt" }))))
end

function TestPolicyEvents:test_unknown_kind_raises()
  local P = load("")
  lu.assertErrorMsgContains('kind must be "join", "update" or "leave", got string "gone"', P.peer_event, P, "gone", peer("a"))
end

---------------------------------------------------------------------------
TestPolicyErrors = {}

function TestPolicyErrors:test_erroring_filter_keeps_previous_verdict()
  local P, api = load(RECORD .. [[
broken = false
function filter(p) if broken then error("filter exploded") end return true end
]])
  P:peer_event("join", peer("a"))
  P.env.broken = true
  -- kept before: stays kept, no leave
  local emitted, keep = P:peer_event("update", peer("a", { x = "1" }), peer("a"), { "txt" })
  lu.assertEquals({ emitted, keep }, { "update", true })
  -- new peer: not kept
  emitted, keep = P:peer_event("join", peer("b"))
  lu.assertEquals({ emitted, keep }, { nil, false })
  lu.assertEquals(P.stats.hook_errors, 2)
  lu.assertEquals(P.stats.by_hook.filter.errors, 2)
  local errs = messages(api, "error")
  lu.assertEquals(#errs, 2)
  lu.assertStrContains(errs[1], "policy: filter failed for peer a: pol.lua:8: filter exploded")
  lu.assertStrContains(errs[1], "stack traceback:\n\t[C]: in function 'error'\n\tpol.lua:8: in function <pol.lua:8>")
  lu.assertNotStrContains(errs[1], "luaunit") -- only the policy's frames
end

function TestPolicyErrors:test_peer_names_are_escaped_in_error_logs()
  local P, api = load("function on_join(p) error('x') end")
  P:peer_event("join", peer("evil\n\27[31mname"))
  local msg = messages(api, "error")[1]
  lu.assertStrContains(msg, "for peer evil\\n\\x1b[31mname:")
end

function TestPolicyErrors:test_erroring_hook_is_counted_and_next_hook_runs()
  local P, api = load([[
function on_join(p) error("join hook broke") end
function on_update(p, old, changes) calls[#calls + 1] = "update ran" end
function on_leave(p) calls[#calls + 1] = "leave ran" end
]])
  lu.assertEquals((P:peer_event("join", peer("a"))), "join") -- the event still counts
  lu.assertTrue(P:kept("a"))
  P:peer_event("update", peer("a"), peer("a"), { "port" })
  P:peer_event("leave", peer("a"), nil, nil, "goodbye")
  lu.assertEquals(calls(P), { "update ran", "leave ran" })
  lu.assertEquals(P.stats.hook_runs, 3)
  lu.assertEquals(P.stats.hook_errors, 1)
  lu.assertEquals(P.stats.by_hook.on_join, { runs = 1, errors = 1, time = P.stats.by_hook.on_join.time })
  lu.assertEquals(P.stats.by_hook.on_update.errors, 0)
  lu.assertTrue(P.stats.hook_time >= 0)
  lu.assertStrContains(messages(api, "error")[1], "policy: on_join failed for peer a: pol.lua:2: join hook broke")
end

-- the core keeps info for every peer and serves it on /v1/peers: a policy
-- returning megabytes per peer gets the TXT info and one error per peer
function TestPolicyErrors:test_info_longer_than_the_limit_is_refused()
  local P, api = load("function info(p) return ('x'):rep(65537) end")
  local _, _, info = P:peer_event("join", peer("a", { info = "txt" }))
  lu.assertEquals(info, "txt")
  P:peer_event("update", peer("a", { info = "txt", x = "1" }), peer("a"), { "txt" })
  local errs = messages(api, "error")
  lu.assertEquals(#errs, 1)
  lu.assertStrContains(errs[1], "info(peer) returned 65537 bytes for peer a, more than the limit of 65536")
  local P2 = load("function info(p) return ('x'):rep(65536) end")
  local _, _, ok = P2:peer_event("join", peer("a", { info = "txt" }))
  lu.assertEquals(#ok, 65536)
end

function TestPolicyErrors:test_info_with_wrong_type_is_logged_once_per_peer()
  local P, api = load("function info(p) return 42 end")
  local _, _, info = P:peer_event("join", peer("a", { info = "txt" }))
  lu.assertEquals(info, "txt")
  P:peer_event("update", peer("a", { info = "txt", x = "1" }), peer("a"), { "txt" })
  P:peer_event("join", peer("b"))
  local errs = messages(api, "error")
  lu.assertEquals(#errs, 2)
  lu.assertStrContains(errs[1], "info(peer) must return a string or nil, got number 42 for peer a")
  lu.assertStrContains(errs[2], "for peer b")
end

function TestPolicyErrors:test_erroring_info_falls_back_to_txt_info()
  local P, api = load("function info(p) error('nope') end")
  lu.assertEquals(select(3, P:peer_event("join", peer("a", { info = "txt" }))), "txt")
  lu.assertStrContains(messages(api, "error")[1], "policy: info failed for peer a")
end

function TestPolicyErrors:test_call_runs_user_functions_like_hooks()
  local P, api = load("")
  lu.assertEquals({ P:call("timer", function(a, b) return a + b, "x" end, 1, 2) }, { true, 3, "x" })
  local ok, msg = P:call("on_exit", function() error("boom") end)
  lu.assertFalse(ok)
  lu.assertStrContains(msg, "boom")
  lu.assertStrContains(messages(api, "error")[1], "policy: on_exit failed: ")
  lu.assertEquals(P.stats.by_hook.timer.runs, 1)
  lu.assertEquals(P.stats.by_hook.on_exit.errors, 1)
  lu.assertFalse((P:call("x", "not a function")))
end

function TestPolicyErrors:test_hooks_list()
  local P = load("function on_leave() end function filter() end")
  lu.assertEquals(P:hooks(), { "filter", "on_leave" })
end

---------------------------------------------------------------------------
TestPolicyGuard = {}

local function counting_guard()
  local g = { n = 0 }
  g.fn = function(fn, ...)
    g.n = g.n + 1
    return xpcall(fn, debug.traceback, ...)
  end
  return g
end

function TestPolicyGuard:test_every_user_call_goes_through_the_guard()
  local g = counting_guard()
  local P = load(RECORD .. [[
function filter(p) return true end
function info(p) return "i" end
]], { guard = g.fn })
  lu.assertEquals(g.n, 1) -- the top-level chunk
  P:peer_event("join", peer("a"))
  lu.assertEquals(g.n, 4) -- filter, info, on_join
  P:peer_event("update", peer("a"), peer("a"), { "txt" })
  lu.assertEquals(g.n, 7) -- filter, info, on_update
  P:peer_event("leave", peer("a"), nil, nil, "goodbye")
  lu.assertEquals(g.n, 8) -- on_leave
  P:call("timer", function() end)
  lu.assertEquals(g.n, 9)
  local P2 = load("function filter() return false end\nfunction on_leave() end", { guard = g.fn })
  lu.assertEquals(g.n, 10)
  P2:adopt(P, { peer("b") })
  lu.assertEquals(g.n, 11) -- filter only: b was not kept before and is not now
end

function TestPolicyGuard:test_guard_refusal_counts_as_an_error()
  local P, api = load("function on_join() end", {
    guard = function(fn, ...)
      if fn == nil then return false, "no" end
      if debug.getinfo(fn, "S").linedefined > 0 then return false, "stopped: deadline" end
      return xpcall(fn, debug.traceback, ...)
    end,
  })
  P:peer_event("join", peer("a"))
  lu.assertEquals(P.stats.hook_errors, 1)
  lu.assertStrContains(messages(api, "error")[1], "on_join failed for peer a: stopped: deadline")
end

function TestPolicyGuard:test_load_runs_through_the_guard_and_reports_its_error()
  local P, err = policy.load("pol.lua", { source = "log { }", api = fake_api(),
    guard = function() return false, "stopped: policy code ran longer than its deadline" end })
  lu.assertNil(P)
  lu.assertStrContains(err, "pol.lua: stopped: policy code ran longer than its deadline")
end

function TestPolicyGuard:test_deadline_guard_stops_endless_hooks()
  local P, api = load([[
function on_join() while true do end end
function on_leave() while true do pcall(function() while true do end end) end end
]], { guard = policy.deadline_guard(0.05) })
  P:peer_event("join", peer("a"))
  P:peer_event("leave", peer("a"), nil, nil, "goodbye")
  lu.assertEquals(P.stats.hook_errors, 2)
  local errs = messages(api, "error")
  lu.assertStrContains(errs[1], "exceeded its deadline of 0.05 s")
  lu.assertStrContains(errs[2], "exceeded its deadline of 0.05 s")
  lu.assertNil(debug.gethook()) -- the hook is removed afterwards
end

function TestPolicyGuard:test_deadline_guard_stops_endless_load()
  local P, err = policy.load("pol.lua", { source = "log { }\nwhile true do end", api = fake_api(),
    guard = policy.deadline_guard(0.05) })
  lu.assertNil(P)
  lu.assertStrContains(err, "pol.lua:2: exceeded its deadline of 0.05 s")
end

---------------------------------------------------------------------------
-- The agent hands the mantle its internals (guard, peers_all, log) apart from
-- the `lmdisc` table the script sees: nothing the script does to what it can
-- reach changes how its hooks are run, stopped, or logged.
TestPolicyInternals = {}

function TestPolicyInternals:test_a_script_cannot_reach_or_replace_the_internals()
  local g = counting_guard()
  local internal_logs = {}
  local internal_log = {}
  for _, l in ipairs { "debug", "info", "warn", "error" } do
    internal_log[l] = function(fmt, ...) internal_logs[#internal_logs + 1] = fmt:format(...) end
  end
  local all = { peer("a"), peer("b") }
  local P, api = load(RECORD .. [[
reached = {}
local mt = getmetatable(lmdisc)
if mt then reached[#reached + 1] = "metatable" end
for _, k in ipairs { "_guard", "guard", "_peers_all", "peers_all", "registry_new" } do
  if lmdisc[k] ~= nil then reached[#reached + 1] = k end
end
-- what a hostile script would try with what it can reach
lmdisc.log.error = function() end
lmdisc.log = nil
lmdisc.escape = function() return "forged" end
lmdisc.peers = function() return {} end
function filter(p) if p.name == "b" then error("boom") end return true end
]], { guard = g.fn, log = internal_log, peers_all = function() return all end })
  lu.assertEquals(P.env.reached, {})
  local before = g.n
  P:peer_event("join", peer("a"))
  P:peer_event("join", peer("b\27[2J"))
  P:peer_event("join", peer("b"))
  lu.assertTrue(g.n > before, "hooks still run through the guard")
  -- the failure is logged through the mantle's own logger, names escaped by
  -- the escaper taken at load time
  lu.assertEquals(#internal_logs, 1, table.concat(internal_logs, "\n"))
  lu.assertStrContains(internal_logs[1], "filter failed for peer b: ")
  lu.assertStrContains(internal_logs[1], "boom")
  lu.assertEquals(messages(api, "error"), {})
  -- peers() inside the agent follows the policy's verdicts over peers_all,
  -- whatever the script assigned to its own table afterwards
  local peers = P.env.lmdisc.REGISTRY.list_alive()
  lu.assertEquals(#peers, 1)
  lu.assertEquals(peers[1].name, "a")
end

---------------------------------------------------------------------------
TestPolicyAdopt = {}

function TestPolicyAdopt:test_reload_moves_verdicts_to_the_new_policy()
  local old = load("function filter(p) return p.txt.model ~= 'z' end")
  local peers = { peer("a", { model = "m" }), peer("b", { model = "x" }), peer("c", { model = "z" }) }
  for _, p in ipairs(peers) do old:peer_event("join", p) end
  lu.assertEquals({ old:kept("a"), old:kept("b"), old:kept("c") }, { true, true, false })

  local new = load(RECORD .. "function filter(p) return p.txt.model ~= 'x' end")
  local fresh = { peer("a", { model = "m" }), peer("b", { model = "x" }), peer("c", { model = "z" }) }
  local out = new:adopt(old, fresh)
  lu.assertEquals(#out, 3)
  lu.assertEquals({ out[1].kind, out[1].keep, out[1].peer.name }, { nil, true, "a" })
  lu.assertEquals({ out[2].kind, out[2].keep }, { "leave", false })
  lu.assertEquals({ out[3].kind, out[3].keep }, { "join", true })
  lu.assertEquals(calls(new), { { "leave", "b", "filtered" }, { "join", "c" } })
  lu.assertEquals({ new:kept("a"), new:kept("b"), new:kept("c") }, { true, false, true })
  -- the new policy owns the state from now on
  lu.assertEquals((new:peer_event("leave", peer("c"), nil, nil, "goodbye")), "leave")
end

function TestPolicyAdopt:test_new_info_is_an_update()
  local old = load("")
  old:peer_event("join", peer("a", { info = "txt" }))
  local new = load(RECORD .. "function info(p) return 'new' end")
  local out = new:adopt(old, { peer("a", { info = "txt" }) })
  lu.assertEquals({ out[1].kind, out[1].info }, { "update", "new" })
  lu.assertEquals(calls(new), { { "update", "a", "info", "new", "txt" } })
end

function TestPolicyAdopt:test_erroring_new_filter_keeps_old_verdict()
  local old = load("")
  old:peer_event("join", peer("a"))
  local new = load("function filter(p) error('bad') end")
  local out = new:adopt(old, { peer("a"), peer("b") })
  lu.assertEquals({ out[1].kind, out[1].keep }, { nil, true })
  lu.assertEquals({ out[2].kind, out[2].keep }, { nil, false })
end

---------------------------------------------------------------------------
TestSandbox = {}

local function load_error(src)
  local P, err = policy.load("pol.lua", { source = src, api = fake_api() })
  lu.assertNil(P)
  return err
end

function TestSandbox:test_process_control_is_refused_with_advice()
  lu.assertStrContains(load_error("\nos.exit(1)"),
    "pol.lua:2: os.exit is not available in lmdisc policies; the agent keeps running (use lmdisc.spawn to run programs)")
  lu.assertStrContains(load_error("os.execute('true')"), "pol.lua:1: os.execute is not available in lmdisc policies")
  lu.assertStrContains(load_error("os.execute('true')"), "lmdisc.spawn(argv, {on_exit =")
  lu.assertStrContains(load_error("io.popen('ls')"), "pol.lua:1: io.popen is not available in lmdisc policies")
  lu.assertStrContains(load_error("io.popen('ls')"), "lmdisc.spawn")
  lu.assertStrContains(load_error("os.remove('/tmp/x')"), 'lmdisc.spawn{"rm", "-f", path}')
  lu.assertStrContains(load_error("os.rename('a', 'b')"), 'lmdisc.spawn{"mv", "-f", from, to}')
  lu.assertStrContains(load_error("collectgarbage('stop')"), "collectgarbage(\"stop\") is not available")
  lu.assertStrContains(load_error("io.read()"), "io.read is not available")
  lu.assertStrContains(load_error("io.lines()"), "cannot read stdin")
end

function TestSandbox:test_in_a_hook_the_refusal_is_logged_not_fatal()
  local P, api = load("function on_join(p) os.exit(3) end")
  lu.assertEquals((P:peer_event("join", peer("a"))), "join")
  lu.assertStrContains(messages(api, "error")[1], "os.exit is not available in lmdisc policies")
end

function TestSandbox:test_what_is_available()
  local P = load([[
ok = {
  clock = type(os.clock()), time = type(os.time()), date = type(os.date("%Y")), getenv = type(os.getenv("HOME")),
  gc = type(collectgarbage("count")), tb = type(debug.traceback("x")), sethook = debug.sethook,
  loadstr = load("return 1 + 1")(), ver = _VERSION, g = _G == _ENV, lm = lmdisc ~= nil and require("lmdisc") == lmdisc,
  str = require("string") == string, dofile = type(dofile), utf8 = utf8.char(72), co = type(coroutine.wrap),
}
]])
  local ok = P.env.ok
  lu.assertEquals(ok.clock, "number")
  lu.assertEquals(ok.date, "string")
  lu.assertEquals(ok.gc, "number")
  lu.assertEquals(ok.tb, "string")
  lu.assertNil(ok.sethook)
  lu.assertEquals(ok.loadstr, 2)
  lu.assertEquals(ok.ver, _VERSION)
  lu.assertTrue(ok.g)
  lu.assertTrue(ok.lm)
  lu.assertTrue(ok.str)
  lu.assertEquals(ok.utf8, "H")
end

function TestSandbox:test_string_table_is_a_copy()
  local real_upper, real_format = string.upper, string.format
  load([[
string.upper = nil
string.shout = function(s) return s .. "!" end
table.insert = nil
math.pi = 3
getmetatable("").__index.format = nil
getmetatable("").__index = nil
ok = ("x"):upper()
]])
  lu.assertIs(string.upper, real_upper)
  lu.assertIs(string.format, real_format)
  lu.assertNil(string.shout)
  lu.assertNotNil(table.insert)
  lu.assertAlmostEquals(math.pi, 3.14159, 0.001)
  lu.assertIs(getmetatable("").__index, string)
end

function TestSandbox:test_policy_globals_do_not_leak()
  load("leaky = 1\nfunction filter() end")
  lu.assertNil(rawget(_G, "leaky"))
  lu.assertNil(rawget(_G, "filter"))
end

function TestSandbox:test_binary_chunks_are_refused()
  local P = load([[
local bytes = string.dump(function() return 1 end)
r1, e1 = load(bytes)
r2, e2 = load("return 1", "x", "b")
r3 = load("return 5", "x", "bt")()
]])
  lu.assertNil(P.env.r1)
  lu.assertStrContains(P.env.e1, "attempt to load a binary chunk")
  lu.assertNil(P.env.r2)
  lu.assertStrContains(P.env.e2, "only text chunks")
  lu.assertEquals(P.env.r3, 5)
end

function TestSandbox:test_loaded_chunks_share_the_sandbox()
  local P = load([[
f = load("return os.exit")()
g = load("x_from_chunk = 1")
g()
]])
  lu.assertEquals(P.env.x_from_chunk, 1)
  lu.assertNotIs(P.env.f, os.exit)
end

function TestSandbox:test_require_pure_lua_modules_only()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local f = assert(io.open(dir .. "/lmd_test_mod.lua", "w"))
  f:write("local M = {} function M.hi() return 'hi ' .. lmdisc.version_tag end return M\n")
  f:close()
  local saved = package.path
  package.path = dir .. "/?.lua;" .. package.path
  local api = fake_api()
  api.version_tag = "v1"
  local P, err = policy.load("pol.lua", { api = api, source = [[
local m = require "lmd_test_mod"
greeting = m.hi()
same = require("lmd_test_mod") == m
ok_c, err_c = pcall(require, "lmdisc_no_such_module")
]] })
  package.path = saved
  os.remove(dir .. "/lmd_test_mod.lua")
  os.remove(dir)
  assert(P, err)
  lu.assertEquals(P.env.greeting, "hi v1")
  lu.assertTrue(P.env.same)
  lu.assertFalse(P.env.ok_c)
  lu.assertStrContains(P.env.err_c, "pure-Lua modules on package.path only")
end

function TestSandbox:test_print_goes_to_the_log()
  local _, api = load("print('a', 1, nil, true)")
  lu.assertEquals(messages(api, "info"), { "a\t1\tnil\ttrue" })
end

os.exit(lu.LuaUnit.run())
