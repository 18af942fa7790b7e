-- lmdisc agent on lab hosts: the Lua policy's filter, info and hooks get the
-- right peers and data (hooks write to a file, the test reads it), TXT
-- changes become on_update elsewhere, SIGTERM becomes on_leave elsewhere,
-- SIGHUP reload with good and broken scripts, hook safety, and an
-- avahi-daemon restart on the agent's own host.
local lu = require "luaunit"

local S = require("suite").new(3)
local q, BIN, read, write = S.q, S.BIN, S.read, S.write
local SRC = os.getenv("LMDISC_SRC") or "."
local RECORDER = SRC .. "/tests/lab/policies/recorder.lua"

local function uniq(name) return S:uniq(name) end
local function path(name) return S:path(name) end

local lines, fields = S.lines, S.fields

-- Start an agent on host from a configuration file, with env vars.
local function agent(host, config, env) return S:agent(host, nil, {path = config, env = env}) end

local function await(p, pattern, timeout, nth) return S:await(p, pattern, timeout, nth) end

TestAgent = {}

function TestAgent:tearDown() S:stop_all() end

function TestAgent:test_hooks_receive_the_right_peers_and_data()
    local rec1, rec2 = path("h1.rec"), path("h2.rec")
    local n2, n3 = uniq("a2"), uniq("a3")
    agent("h3", RECORDER, {RECORD_FILE = path("h3.rec"), MY_MODEL = "llama", MY_PORT = "8001", MY_NAME = n3})
    agent("h2", RECORDER, {RECORD_FILE = rec2, MY_MODEL = "gemma", MY_NAME = n2})
    local p1 = agent("h1", RECORDER, {RECORD_FILE = rec1, KEEP_MODEL = "gemma"})
    local join = fields(await(rec1, "^join|" .. n2 .. "|"))
    lu.assertEquals(join[3], "h2.local")
    lu.assertEquals(join[4], "8000")
    lu.assertEquals(join[5], "model:gemma")           -- what info() computed
    lu.assertEquals(join[6], "info=gemma Q4_0;model=gemma")
    -- one join with both address families (IPv4 and IPv6 merged), and
    -- lmdisc.peers() already lists the peer inside on_join
    lu.assertStrContains(join[7], "listed=1")
    lu.assertStrContains(join[7], S.lab:ip("h2", 4))
    lu.assertStrContains(join[7], S.lab:ip("h2", 6))
    -- h3 serves llama: filtered out, never joined (once the filter has
    -- seen it, and said no); h2 never sees itself
    lu.assertNotNil(S.lab:wait_log(p1, "initial scan done", 10))
    await(rec1, "^filter|" .. n3 .. "|.*|false$")
    lu.assertEquals(#lines(rec1, "join|" .. n3), 0, read(rec1))
    lu.assertEquals(#lines(rec1, "join|"), 1, read(rec1))
    await(rec2, "^join|" .. n3 .. "|")
    lu.assertEquals(#lines(rec2, "join|" .. n2), 0, "an agent is not its own peer:\n" .. read(rec2))
end

function TestAgent:test_txt_change_is_on_update_and_sigterm_is_on_leave_elsewhere()
    local rec1 = path("h1.rec")
    local cfg = path("bump.lua")
    local n2 = uniq("bumper")
    local go = path("go")
    write(cfg, ([[
announce { port = 8000, name = %q, info = "gemma Q4_0", txt = { model = "gemma", load = "0.1" } }
]]):format(n2) .. S.set_txt_when(go, '{ load = "0.9" }'))
    agent("h1", RECORDER, {RECORD_FILE = rec1})
    local p2 = agent("h2", cfg)
    local j = fields(await(rec1, "^join|" .. n2 .. "|"))
    lu.assertStrContains(j[6], "load=0.1")
    write(go, "go")
    local u = fields(await(rec1, "^update|" .. n2 .. "|.*load=0%.9"))
    lu.assertStrContains(u[6], "load=0.9")
    lu.assertStrContains(u[7], "txt")
    lu.assertEquals(#lines(rec1, "leave|" .. n2), 0, read(rec1))
    p2:signal("TERM")
    lu.assertEquals(p2:wait(10), 0, p2:output())
    local l = fields(await(rec1, "^leave|" .. n2 .. "|"))
    lu.assertEquals(l[7], "goodbye")
end

function TestAgent:test_sighup_reload_good_then_broken()
    local rec1 = path("h1.rec")
    local model = path("keep")
    local cfg = path("observer.lua")
    local good = ([[
local f = io.open(%q); local KEEP = f:read("l"); f:close()
registry { ttl = 60 }
function filter(peer) return peer.txt.model == KEEP end
function on_join(peer) local f = io.open(%q, "a"); f:write("join|", peer.name, "\n"); f:close() end
function on_leave(peer, reason) local f = io.open(%q, "a"); f:write("leave|", peer.name, "|", reason, "\n"); f:close() end
]]):format(model, rec1, rec1)
    write(model, "gemma\n")
    write(cfg, good)
    local n2, n3 = uniq("r2"), uniq("r3")
    local p1 = agent("h1", cfg)
    local p3 = agent("h3", RECORDER, {RECORD_FILE = path("x"), MY_MODEL = "llama", MY_NAME = n3})
    agent("h2", RECORDER, {RECORD_FILE = path("y"), MY_MODEL = "gemma", MY_NAME = n2})
    await(rec1, "^join|" .. n2)
    lu.assertNotNil(S.lab:wait_log(p1, "initial scan done", 10))

    -- a good new policy takes over without losing the registry: peers whose
    -- verdict changed get leave "filtered" / join
    write(model, "llama\n")
    p1:signal("HUP")
    await(rec1, "^leave|" .. n2 .. "|filtered")
    await(rec1, "^join|" .. n3)
    lu.assertNotNil(S.lab:wait_log(p1, "reloaded", 5))

    -- a broken one is refused with file:line, and the running policy stays
    write(cfg, good .. "\nfunction on_update(peer) end end -- syntax error\n")
    p1:signal("HUP")
    local err = S.lab:wait_log(p1, "reload failed", 10)
    lu.assertNotNil(err, p1:output())
    lu.assertStrContains(err, cfg .. ":7:")
    lu.assertTrue(p1:running())
    p3:signal("TERM")
    p3:wait(10)
    await(rec1, "^leave|" .. n3 .. "|goodbye") -- the old hooks still run
end

-- A reload hands the new policy only what it may see: never our own
-- service (without include_self), as on every other path.
function TestAgent:test_reload_never_joins_our_own_service()
    local rec1 = path("self-h1.rec")
    local cfg = path("self.lua")
    local me = uniq("me")
    write(cfg, ([[
announce { port = 8000, name = %q, info = "gemma Q4_0", txt = { model = "gemma" } }
function on_join(peer) local f = io.open(%q, "a"); f:write("join|", peer.name, "\n"); f:close() end
]]):format(me, rec1))
    local p1 = agent("h1", cfg)
    local n2, n3 = uniq("o2"), uniq("o3")
    agent("h2", RECORDER, {RECORD_FILE = path("y"), MY_MODEL = "gemma", MY_NAME = n2})
    await(rec1, "^join|" .. n2)
    lu.assertNotNil(S.lab:wait_log(p1, "initial scan done", 10))
    -- our own service is on the link, where the agent's browser sees it
    -- as it saw n2: the reload below could join it
    lu.assertNotNil(S.lab:wait_log(p1, 'announced "' .. me .. '"', 10), p1:output())
    p1:signal("HUP")
    lu.assertNotNil(S.lab:wait_log(p1, "reloaded", 5), p1:output())
    -- an ordinary event after the reload reaches the new policy ...
    agent("h3", RECORDER, {RECORD_FILE = path("z"), MY_MODEL = "gemma", MY_NAME = n3})
    await(rec1, "^join|" .. n3)
    -- ... and neither the reload nor anything since joined ourselves
    lu.assertEquals(#lines(rec1, "join|" .. me), 0, read(rec1))
end

function TestAgent:test_hook_errors_deadline_and_os_exit_do_not_stop_the_agent()
    local rec1 = path("h1.rec")
    local cfg = path("hostile.lua")
    write(cfg, ([[
policy { deadline = 0.2 }
function on_join(peer)
  if peer.txt.model == "loop" then while true do end end
  if peer.txt.model == "exit" then os.exit(3) end
  if peer.txt.model == "error" then error("boom in " .. peer.name) end
  local f = io.open(%q, "a"); f:write("join|", peer.name, "\n"); f:close()
end
]]):format(rec1))
    local p1 = agent("h1", cfg)
    local function announce(host, name, model)
        local p = S:bg(host, q(BIN) .. " announce 9000 x --name " .. q(name) .. " --txt model=" .. model)
        lu.assertNotNil(S.lab:wait_log(p, "^announced", 15), p:output())
    end
    announce("h2", uniq("looper"), "loop")
    lu.assertNotNil(S.lab:wait_log(p1, "exceeded its deadline", 10), p1:output())
    announce("h3", uniq("quitter"), "exit")
    lu.assertNotNil(S.lab:wait_log(p1, "os.exit is not available", 10), p1:output())
    announce("h2", uniq("thrower"), "error")
    local line = S.lab:wait_log(p1, "boom in thrower", 10)
    lu.assertNotNil(line, p1:output())
    announce("h3", uniq("fine"), "ok")
    await(rec1, "^join|fine")
    lu.assertTrue(p1:running(), "the agent died:\n" .. p1:output())
    lu.assertStrContains(p1:output(), "stack traceback")
end

function TestAgent:test_avahi_restart_on_the_agents_host()
    local rec1, rec2 = path("h1.rec"), path("h2.rec")
    local n1, n2 = uniq("s1"), uniq("s2")
    local p1 = agent("h1", RECORDER, {RECORD_FILE = rec1, MY_MODEL = "gemma", MY_NAME = n1})
    agent("h2", RECORDER, {RECORD_FILE = rec2, MY_MODEL = "gemma", MY_NAME = n2})
    await(rec1, "^join|" .. n2)
    await(rec2, "^join|" .. n1)
    S.lab:avahi_restart("h1")
    lu.assertNotNil(S.lab:wait_log(p1, "lost the connection to avahi%-daemon", 10), p1:output())
    -- the agent announces again through the new daemon (which probed the name on the network)
    lu.assertNotNil(S.lab:wait_log(p1, 'announced "' .. n1 .. '"', 20, 2), p1:output())
    lu.assertNotNil(S.lab:wait_log(p1, "back in sync with avahi%-daemon", 20), p1:output())
    -- h2: the old daemon's goodbye makes n1 leave one second later, and the new announcement
    -- (at least 1.5 s after the goodbye: host name, then service probing) brings it back. The new
    -- daemon announces the shared PTR record before it has probed the SRV/TXT, though; when that
    -- lands inside the goodbye's second (a race of a few ms, seen in CI) it refreshes h2's cache,
    -- the goodbye is overtaken and h2 rightly never loses n1. Both are correct mDNS.
    if #lines(rec2, "leave|" .. n1 .. "|") > 0 then
        lu.assertNotNil(S.lab:wait_log(rec2, "^join|" .. n1 .. "|", 15, 2), read(rec2))
    end
    lu.assertEquals(#lines(rec2, "join|" .. n1 .. "|"), #lines(rec2, "leave|" .. n1 .. "|") + 1, read(rec2))
    -- and h1 did not report its own peers as left and joined again
    lu.assertEquals(#lines(rec1, "leave|"), 0, read(rec1))
    lu.assertEquals(#lines(rec1, "join|" .. n2), 1, read(rec1))
end

function TestAgent:test_spawn_runs_programs_without_blocking_and_reports_exit()
    local out = path("spawned")
    local cfg = path("spawner.lua")
    write(cfg, ([[
function on_join(peer)
  local pid, err = lmdisc.spawn({"sh", "-c", "sleep 1; cat > \"$OUT\"; echo \"$PEER\" >> \"$OUT\"; exit 7"},
    { env = { OUT = %q, PEER = peer.name }, stdin = "stdin for " .. peer.name .. "\n",
      on_exit = function(code) lmdisc.log.info("SPAWN exit %%d for %%s", code, peer.name) end })
  assert(pid, err)
  lmdisc.log.info("SPAWN started %%d", pid)
  local bad, why = lmdisc.spawn({"/nonexistent/program"})
  lmdisc.log.info("SPAWN bad %%s", tostring(why))
end
]]):format(out))
    local p1 = agent("h1", cfg)
    local n2 = uniq("sp")
    local a = S:bg("h2", q(BIN) .. " announce 9200 x --name " .. n2)
    local started = S.lab:wait_log(p1, "SPAWN started", 15)
    lu.assertNotNil(started, p1:output())
    -- the agent goes on while the child sleeps: the next log line comes at once
    lu.assertNotNil(S.lab:wait_log(p1, "SPAWN bad cannot start '/nonexistent/program'", 5), p1:output())
    lu.assertNotNil(S.lab:wait_log(p1, "SPAWN exit 7 for " .. n2, 10), p1:output())
    lu.assertEquals(read(out), "stdin for " .. n2 .. "\n" .. n2 .. "\n")
end

function TestAgent:test_policy_at_its_memory_cap_does_not_take_the_agent_down()
    local cfg = path("hog.lua")
    write(cfg, [[
-- the memory cap, not the deadline, must be what stops the hog (a slow
-- sanitizer build under load once reached 0.25 s first)
policy { memory_mb = 4, deadline = 5 }
hog = {}
lmdisc.timer(0.1, function()
  for i = 1, 1e7 do hog[i] = ("x"):rep(100) .. i end
end)
function on_join(peer) lmdisc.log.info("HOOK join %s with %d peers", peer.name, #lmdisc.peers()) end
]])
    local p1 = agent("h1", cfg)
    lu.assertNotNil(S.lab:wait_log(p1, "not enough memory", 10), p1:output())
    local n = uniq("atcap")
    S:announce("h2", 9300, n)
    -- the peer is pushed into a VM at its cap: an error in the hook at worst
    lu.assertNotNil(S.lab:wait_log(p1, 'join "' .. n .. '"', 15), p1:output())
    lu.assertTrue(p1:running(), p1:output())
    p1:signal("TERM")
    lu.assertEquals(p1:wait(10), 0, p1:output())
end

function TestAgent:test_reload_keeps_the_new_timers_and_drops_a_refused_files()
    local cfg = path("ticker.lua")
    local function ticker(tag, tail)
        write(cfg, ('lmdisc.every(0.2, function() lmdisc.log.info("TICK %s") end)\n%s'):format(tag, tail or ""))
    end
    ticker("one")
    local p1 = agent("h1", cfg)
    lu.assertNotNil(S.lab:wait_log(p1, "TICK one", 5))
    ticker("two")
    p1:signal("HUP")
    lu.assertNotNil(S.lab:wait_log(p1, "reloaded", 5))
    lu.assertNotNil(S.lab:wait_log(p1, "TICK two", 5), "the new file's timer runs")
    ticker("three", 'error("refused at load")\n')
    p1:signal("HUP")
    lu.assertNotNil(S.lab:wait_log(p1, "reload failed", 5))
    -- five more ticks of "two" after the refusal, and never one of "three"
    local after = select(2, p1:output():gsub("TICK two", "")) + 5
    lu.assertNotNil(S.lab:wait_log(p1, "TICK two", 5, after), p1:output())
    local out = p1:output()
    lu.assertNil(out:find("TICK three", 1, true), "a refused file's timer ran")
    local tail = out:sub((select(2, out:find("reloaded", 1, true))))
    lu.assertNil(tail:find("TICK one", 1, true), "the old file's timer survived the reload")
end

function TestAgent:test_log_lines_escape_peer_data_and_follow_the_level()
    local cfg = path("plain.lua")
    -- an info line, then an error line, for each join: the error line shows
    -- the LOGLEVEL=ERROR agent ran the hook, and that the info line before
    -- it would have been written by then
    write(cfg, "registry { ttl = 60 }\nfunction on_join(peer) lmdisc.log.info('HOOK %s', peer.name); " ..
        "lmdisc.log.error('HOOKED %s', peer.name) end\n")
    local quiet = S:bg("h1", "LOGLEVEL=ERROR " .. q(BIN) .. " agent -c " .. q(cfg))
    local loud = S:bg("h3", q(BIN) .. " --log-level DEBUG agent -c " .. q(cfg))
    lu.assertNotNil(S.lab:wait_log(loud, "agent started", 10), loud:output())
    local evil = uniq("evil\n\27[2Jname")
    local p = S:bg("h2", q(BIN) .. " announce 9100 x --name " .. q(evil))
    lu.assertNotNil(S.lab:wait_log(p, "^announced", 15), p:output())
    local line = S.lab:wait_log(loud, "HOOK evil", 15)
    lu.assertNotNil(line, loud:output())
    lu.assertStrContains(line, "evil\\n\\x1b[2Jname") -- escaped, on one line
    local out = loud:output()
    lu.assertNil(out:find("\27", 1, true), "a raw escape reached the log")
    lu.assertStrContains(out, "lmdisc debug:")
    -- every line is one event with a timestamp
    for l in out:gmatch("[^\n]+") do lu.assertStrMatches(l, "%d%d%d%d%-%d%d%-%d%dT.*") end
    -- LOGLEVEL=ERROR: nothing below error, from an agent that is running
    -- and saw the peer
    await(quiet, "HOOKED evil", 15)
    lu.assertTrue(quiet:running(), quiet:output())
    lu.assertNil(quiet:output():find("info:", 1, true), quiet:output())
    lu.assertNil(quiet:output():find("HOOK evil", 1, true), quiet:output())
end

os.exit(lu.LuaUnit.run())
