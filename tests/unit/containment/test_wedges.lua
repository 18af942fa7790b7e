-- Run by `lmdisc test wedges.lua test_wedges.lua` (the agent's guard,
-- deadline and memory cap): every trick is stopped and reported, none hangs
-- the run, and the harness stays usable after each.
local lu = require "luaunit"
local testing = require "lmdisc.testing"

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local POLICY = testing.policy_path(HERE .. "/wedges.lua")

local function run(trick)
  local sim = testing.load(POLICY)
  local t0 = os.clock()
  sim:join { name = trick, port = 8000, addresses = { "10.0.0.1" } }
  local errors = table.concat(sim:messages("error"), "\n")
  return sim, errors, os.clock() - t0
end

TestWedges = {}

local function stopped_by_deadline(trick)
  local sim, errors, took = run(trick)
  lu.assertStrContains(errors, "on_join failed for peer " .. trick)
  lu.assertStrContains(errors, "exceeded its deadline of 0.2 s")
  lu.assertEquals(#sim:messages("info"), 0, "the hook did not run to its end")
  lu.assertTrue(took < 2, ("took %.2f s"):format(took))
  -- the harness (and, in the agent, the loop) goes on: the next join works
  sim:join { name = "plain", port = 8000, addresses = { "10.0.0.2" } }
  lu.assertStrContains(table.concat(sim:messages("info"), "\n"), "survived plain")
end

function TestWedges:test_loop() stopped_by_deadline("loop") end
function TestWedges:test_pcall_loop() stopped_by_deadline("pcall_loop") end
function TestWedges:test_xpcall_handler() stopped_by_deadline("xpcall_handler") end
function TestWedges:test_coroutine_loop() stopped_by_deadline("coroutine_loop") end

function TestWedges:test_a_swallowed_stop_still_fails_the_hook()
  local _, errors = run("coroutine")
  lu.assertStrContains(errors, "exceeded its deadline")
  lu.assertStrContains(errors, "exceeded its deadline of 0.2 s and was stopped")
end

local function refused(trick, what)
  local sim, errors, took = run(trick)
  lu.assertStrContains(errors, "on_join failed for peer " .. trick)
  lu.assertStrContains(errors, what)
  lu.assertTrue(took < 1, ("took %.2f s"):format(took))
  return sim
end

function TestWedges:test_exponential_pattern_is_refused()
  refused("pattern", "string.find: a pattern with 60 repetition(s) on a 3000-byte subject")
  refused("pattern_method", "string.match: a pattern with 60 repetition(s)")
end

function TestWedges:test_quadratic_pattern_on_a_long_subject_is_refused()
  refused("pattern_long", "on a 1000000-byte subject")
end

function TestWedges:test_finalizers_are_refused()
  refused("finalizer", "__gc (finalizers) is not available")
end

function TestWedges:test_fifos_are_refused_without_blocking()
  lu.assertNotNil(os.getenv("WEDGE_FIFO"), "run with WEDGE_FIFO=<a fifo>")
  refused("fifo", "not a regular file")
  refused("fifo_lines", "not a regular file")
  refused("fifo_dofile", "not a regular file")
end

function TestWedges:test_memory_cap()
  refused("memory", "not enough memory")
end

function TestWedges:test_timer_limit()
  refused("timers", "too many timers: 10000 are pending")
end

os.exit(lu.LuaUnit.run())
