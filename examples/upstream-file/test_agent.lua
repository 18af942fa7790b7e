-- Tests for examples/upstream-file/agent.lua; run from anywhere:
--   lua5.4 examples/upstream-file/test_agent.lua -v
local lu = require "luaunit"
local testing = require "lmdisc.testing"

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local AGENT = testing.policy_path(HERE .. "/agent.lua")

local function read(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function servers(path)
  local out = {}
  for line in (read(path) or ""):gmatch("[^\n]+") do
    if line:match("^server ") then out[#out + 1] = line:match("^(server [^;]*;)") end
  end
  return out
end

local function count_argv0(sim, what)
  local n = 0
  for _, s in ipairs(sim.spawned) do if s.argv[1] == what then n = n + 1 end end
  return n
end

TestUpstream = {}

function TestUpstream:setUp()
  self.file = os.tmpname()
  os.remove(self.file)
  self.sim = testing.load(AGENT)
  self.sim.env.UPSTREAM.file = self.file
end

function TestUpstream:tearDown()
  os.remove(self.file)
  os.remove(self.file .. ".lmdisc-tmp")
end

-- Play the processes the policy spawned, oldest first: `mv` really
-- renames (so the file can be checked), nginx just exits with `code`.
function TestUpstream:run_spawned(code)
  local sim = self.sim
  local i = 1
  while sim.spawned[i] do
    local s = sim.spawned[i]
    if not s.exited then
      if s.argv[1] == "mv" then
        assert(os.rename(s.argv[3], s.argv[4]))
        sim:exit(i, 0)
      else
        sim:exit(i, code or 0)
      end
    end
    i = i + 1
  end
end

-- Let the debounce timer fire, then run what it spawned.
function TestUpstream:settle(code)
  self.sim:advance(self.sim.env.UPSTREAM.debounce)
  self:run_spawned(code)
end

function TestUpstream:test_start_writes_a_valid_empty_upstream()
  self:settle()
  lu.assertEquals(servers(self.file), { "server 127.0.0.1:1 down;" })
  lu.assertEquals(count_argv0(self.sim, "nginx"), 1)
end

function TestUpstream:test_burst_of_joins_causes_one_reload()
  local sim = self.sim
  for i = 1, 20 do
    sim:join { name = ("n%02d:8000"):format(i), addresses = { "10.0.0." .. i } }
  end
  lu.assertEquals(#sim.spawned, 0) -- nothing before the debounce expires
  sim:advance(0.5)
  lu.assertEquals(#sim.spawned, 0)
  self:settle()
  lu.assertEquals(count_argv0(sim, "mv"), 1)
  lu.assertEquals(count_argv0(sim, "nginx"), 1)
  lu.assertEquals(sim.spawned[2].argv, { "nginx", "-s", "reload" })
  local lines = servers(self.file)
  lu.assertEquals(#lines, 20)
  lu.assertEquals(lines[1], "server 10.0.0.1:8000;")
  lu.assertEquals(lines[20], "server 10.0.0.20:8000;")
  -- quiet network: no further work
  sim:advance(60)
  lu.assertEquals(#sim.spawned, 2)
end

-- Under the Debian service a systemd path unit reloads nginx (reload = false):
-- the file is still written and installed, nothing else is spawned, and the
-- next change is written as usual.
function TestUpstream:test_reload_false_installs_the_file_only()
  local sim = self.sim
  sim.env.UPSTREAM.reload = false
  self:settle()
  lu.assertEquals(servers(self.file), { "server 127.0.0.1:1 down;" })
  sim:join { name = "a:8000", addresses = { "10.0.0.1" } }
  self:settle()
  lu.assertEquals(servers(self.file), { "server 10.0.0.1:8000;" })
  lu.assertEquals(count_argv0(sim, "mv"), 2)
  lu.assertEquals(#sim.spawned, 2)
end

function TestUpstream:test_the_default_file_is_one_the_debian_service_may_write()
  local fresh = testing.load(AGENT)
  lu.assertStrMatches(fresh.env.UPSTREAM.file, "^/var/lib/lmdisc/[^/]+$")
end

function TestUpstream:test_the_file_is_installed_with_mv_from_the_same_directory()
  local sim = self.sim
  sim:advance(1)
  local mv = sim.spawned[1]
  lu.assertEquals(mv.argv, { "mv", "-f", self.file .. ".lmdisc-tmp", self.file })
  lu.assertNil(read(self.file)) -- not touched before mv runs
  lu.assertEquals(count_argv0(sim, "nginx"), 0) -- nginx waits for mv
end

function TestUpstream:test_address_choice()
  local sim = self.sim
  sim:join { name = "a:8000", addresses = { "fd77::1", "10.77.0.1" } }
  sim:join { name = "b:8001", addresses = { "fe80::1", "fd77::2" } }
  sim:join { name = "c:8002", addresses = { "fe80::3" } }
  sim:join { name = "d:8003" }
  self:settle()
  lu.assertEquals(servers(self.file), { "server 10.77.0.1:8000;", "server [fd77::2]:8001;" })
  lu.assertEquals(#sim:messages("warn"), 2)
end

function TestUpstream:test_leave_and_update_rewrite_the_file()
  local sim = self.sim
  sim:join { name = "a:8000", addresses = { "10.0.0.1" } }
  sim:join { name = "b:8000", addresses = { "10.0.0.2" } }
  self:settle()
  sim:leave("a:8000")
  sim:update("b:8000", { port = 9000 })
  self:settle()
  lu.assertEquals(servers(self.file), { "server 10.0.0.2:9000;" })
  lu.assertEquals(count_argv0(sim, "nginx"), 2)
end

function TestUpstream:test_no_reload_when_nothing_changed()
  local sim = self.sim
  self:settle()
  sim:join { name = "a:8000", addresses = { "10.0.0.1" } }
  sim:leave("a:8000")
  self:settle()
  lu.assertEquals(count_argv0(sim, "mv"), 1)
  -- TXT changes do not show in the file either
  sim:join { name = "b:8000", addresses = { "10.0.0.2" } }
  self:settle()
  sim:update("b:8000", { txt = { load = "0.5" } })
  self:settle()
  lu.assertEquals(count_argv0(sim, "nginx"), 2)
end

function TestUpstream:test_changes_while_busy_wait_for_the_running_reload()
  local sim = self.sim
  sim:advance(1) -- first mv spawned, not finished
  sim:join { name = "a:8000", addresses = { "10.0.0.1" } }
  sim:advance(5)
  lu.assertEquals(#sim.spawned, 1) -- nothing written under the running mv
  self:run_spawned()               -- mv and nginx finish
  lu.assertEquals(#sim.spawned, 2)
  self:settle()
  lu.assertEquals(servers(self.file), { "server 10.0.0.1:8000;" })
  lu.assertEquals(count_argv0(sim, "nginx"), 2)
end

function TestUpstream:test_failed_reload_is_logged_and_next_change_still_works()
  local sim = self.sim
  self:settle(1)
  lu.assertStrContains(sim:messages("error")[1], "nginx -s reload exited with code 1")
  sim:join { name = "a:8000", addresses = { "10.0.0.1" } }
  self:settle()
  lu.assertEquals(count_argv0(sim, "nginx"), 2)
end

function TestUpstream:test_spawn_failure_is_logged()
  local sim = self.sim
  sim.spawn_error = "fork failed"
  sim:advance(1)
  lu.assertStrContains(sim:messages("error")[1], "cannot run mv: fork failed")
  sim.spawn_error = nil
  sim:join { name = "a:8000", addresses = { "10.0.0.1" } }
  self:settle()
  lu.assertEquals(servers(self.file), { "server 10.0.0.1:8000;" })
end

function TestUpstream:test_hostile_name_cannot_inject_config()
  local sim = self.sim
  sim:join { name = "x\nserver 6.6.6.6:1;", port = 8000, addresses = { "10.0.0.1" } }
  self:settle()
  lu.assertEquals(servers(self.file), { "server 10.0.0.1:8000;" })
end

function TestUpstream:test_no_hook_errors()
  self:settle()
  lu.assertEquals(self.sim.policy.stats.hook_errors, 0)
end

os.exit(lu.LuaUnit.run())
