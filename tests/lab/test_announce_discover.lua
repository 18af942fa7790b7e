-- lmdisc announce / lmdisc discover against real avahi-daemons on lab hosts,
-- and interop both ways with the avahi tools.
local lu = require "luaunit"
local cjson = require "cjson"

local S = require("suite").new(3)
local q, BIN = S.q, S.BIN

-- Start `lmdisc announce ARGS...` on host and wait until avahi established it.
local function announce(host, ...)
    local args = {}
    for i, a in ipairs({...}) do args[i] = q(a) end
    local p = S:bg(host, q(BIN) .. " announce " .. table.concat(args, " "))
    local line, err = S.lab:wait_log(p, "^announced ", 15)
    lu.assertNotNil(line, "announce did not establish: " .. tostring(err) .. "\n" .. p:output())
    return p, line:match('^announced "(.*)"')
end

local function discover(host, ...)
    local args = {}
    for i, a in ipairs({...}) do args[i] = q(a) end
    local ok, out, code = S.lab:exec(host, q(BIN) .. " discover " .. table.concat(args, " ") .. " 2>/dev/null")
    return out, code
end

local function discover_json(host, ...)
    local out, code = discover(host, "--json", ...)
    lu.assertEquals(code, 0, out)
    local ok, doc = pcall(cjson.decode, out)
    lu.assertTrue(ok, "discover --json printed invalid JSON: " .. out)
    local by_name = {}
    for _, n in ipairs(doc.nodes) do by_name[n.name] = n end
    return doc, by_name
end

local function stop(p)
    p:signal("TERM")
    return p:wait(10)
end


TestAnnounceDiscover = {}

function TestAnnounceDiscover:tearDown() S:stop_all() end

function TestAnnounceDiscover:test_announce_seen_by_discover_in_text_and_json()
    announce("h1", "8000", "gemma-2b-it Q4_0", "--txt", "model=gemma-2b-it", "--txt", "gpu")
    local doc, nodes = discover_json("h2", "--timeout", "10")
    lu.assertTrue(doc.complete)
    local n = nodes["h1:8000"]
    lu.assertNotNil(n, "h1:8000 not found in " .. cjson.encode(doc))
    lu.assertEquals(n.host, "h1.local")
    lu.assertEquals(n.port, 8000)
    lu.assertEquals(n.info, "gemma-2b-it Q4_0")
    lu.assertEquals(n.txt.model, "gemma-2b-it")
    lu.assertEquals(n.txt.gpu, true)
    -- one node, both address families, merged
    local fam = {}
    for _, a in ipairs(n.addresses) do fam[a.family] = a.address end
    lu.assertEquals(fam[4], S.lab:ip("h1", 4))
    lu.assertEquals(fam[6], S.lab:ip("h1", 6))

    local text = discover("h3", "--timeout", "10")
    local line = text:match("[^\n]*h1:8000[^\n]*")
    lu.assertNotNil(line, text)
    lu.assertStrContains(line, "h1.local:8000")
    lu.assertStrContains(line, S.lab:ip("h1", 4))
    lu.assertStrContains(line, "gemma-2b-it Q4_0")
    local _, count = text:gsub("h1:8000", "")
    lu.assertEquals(count, 1, "one line per service:\n" .. text)
end

function TestAnnounceDiscover:test_discover_returns_when_the_network_answered_not_at_timeout()
    -- nobody announces this type: the answer is an empty list, long before 20 s
    local doc = discover_json("h2", "--timeout", "20", "--type", "_lmdnobody._tcp")
    local elapsed = doc.elapsed
    lu.assertEquals(#doc.nodes, 0)
    lu.assertTrue(doc.complete)
    lu.assertTrue(elapsed < 5, "discover took " .. elapsed .. " s with a 20 s timeout")
end

function TestAnnounceDiscover:test_discover_sees_avahi_publish_service()
    local p = S:bg("h1", "avahi-publish-service -s 'from avahi' _lmserv._tcp 7000 info=published-by-avahi k=v")
    lu.assertNotNil(S.lab:wait_log(p, "Established under name", 15), p:output())
    local _, nodes = discover_json("h2", "--timeout", "10")
    local n = nodes["from avahi"]
    lu.assertNotNil(n)
    lu.assertEquals(n.port, 7000)
    lu.assertEquals(n.info, "published-by-avahi")
    lu.assertEquals(n.txt.k, "v")
end

function TestAnnounceDiscover:test_avahi_browse_sees_lmdisc_announce()
    announce("h1", "8100", "seen by avahi-browse", "--name", "lmdisc for avahi", "--txt", "model=m")
    local ok, out = S.lab:exec("h2", "timeout 15 avahi-browse -r -p -t _lmserv._tcp")
    lu.assertTrue(ok, out)
    local found
    for line in out:gmatch("[^\n]+") do
        -- =;eth0;IPv4;name;type;domain;host;address;port;txt
        local f = {}
        for field in (line .. ";"):gmatch("(.-);") do f[#f + 1] = field end
        if f[1] == "=" and f[4] == "lmdisc\\032for\\032avahi" then found = f end
    end
    lu.assertNotNil(found, out)
    lu.assertEquals(found[7], "h1.local")
    lu.assertEquals(found[9], "8100")
    lu.assertStrContains(found[10], '"info=seen by avahi-browse"')
    lu.assertStrContains(found[10], '"model=m"')
end

function TestAnnounceDiscover:test_same_name_on_two_hosts_both_visible_under_distinct_names()
    local _, n1 = announce("h1", "8200", "one", "--name", "twin")
    local p2 = S:bg("h2", q(BIN) .. " announce 8200 two --name twin")
    local line = S.lab:wait_log(p2, "^announced ", 20)
    lu.assertNotNil(line, p2:output())
    local n2 = line:match('^announced "(.*)"')
    lu.assertNotEquals(n1, n2)
    lu.assertStrContains(p2:output() .. n1, "#2") -- one of them took avahi's alternative name
    local _, nodes = discover_json("h3", "--timeout", "10")
    lu.assertNotNil(nodes[n1], n1)
    lu.assertNotNil(nodes[n2], n2)
    lu.assertNotEquals(nodes[n1].info, nodes[n2].info)
end

function TestAnnounceDiscover:test_twenty_services_all_found()
    for i = 1, 20 do
        local host = "h" .. (i % 2 + 1)
        announce(host, tostring(9000 + i), "svc " .. i, "--name", "svc-" .. i)
    end
    local doc, nodes = discover_json("h3", "--timeout", "15")
    lu.assertTrue(doc.complete)
    for i = 1, 20 do
        local n = nodes["svc-" .. i]
        lu.assertNotNil(n, "svc-" .. i .. " missing")
        lu.assertEquals(n.port, 9000 + i)
        lu.assertEquals(n.info, "svc " .. i)
    end
end

function TestAnnounceDiscover:test_sigterm_exits_0_and_the_service_disappears()
    local p = announce("h1", "8300", "short-lived", "--name", "leaving")
    local _, nodes = discover_json("h2", "--timeout", "10")
    lu.assertNotNil(nodes["leaving"])
    lu.assertEquals(stop(p), 0)
    -- the goodbye reaches h2 at once and avahi keeps the record one more
    -- second (RFC 6762 10.1): a scan (0.3 s now) within that second still
    -- lists it from the cache. Scan again until it is gone, at most 3 s and
    -- ten scans; past that second it must never be listed.
    local t0, after = os.time(), nil
    for _ = 1, 10 do
        _, after = discover_json("h2", "--timeout", "10")
        if not after["leaving"] or os.time() - t0 > 3 then break end
    end
    lu.assertNil(after["leaving"], "still listed 3 s after SIGTERM")
end

function TestAnnounceDiscover:test_awkward_names_and_values_survive_the_network()
    local name = 'we "quote"\\ and ünïcode'
    announce("h1", "8400", "tab\there", "--name", name, "--txt", "bin=\1\2\127")
    local _, nodes = discover_json("h2", "--timeout", "10")
    local n = nodes[name]
    lu.assertNotNil(n, "not found by exact name")
    lu.assertEquals(n.info, "tab\there")
    lu.assertEquals(n.txt.bin, "\1\2\127")
    local text = discover("h2", "--timeout", "10")
    lu.assertStrContains(text, "tab\\there") -- escaped, not a raw tab
    lu.assertNotStrContains(text, "\1")
end

function TestAnnounceDiscover:test_announce_waits_for_avahi_daemon()
    S.lab:avahi_stop("h3")
    local p = S:bg("h3", q(BIN) .. " announce 8500 patient --name patient")
    lu.assertNotNil(S.lab:wait_log(p, "not running; waiting", 10), p:output())
    S.lab:avahi_start("h3")
    lu.assertNotNil(S.lab:wait_log(p, "^announced ", 15), p:output())
    local _, count = p:output():gsub("waiting", "")
    lu.assertEquals(count, 1, "says so once:\n" .. p:output())
    local _, nodes = discover_json("h1", "--timeout", "10")
    lu.assertNotNil(nodes["patient"])
end

function TestAnnounceDiscover:test_discover_without_daemon_fails_clearly()
    S.lab:avahi_stop("h3")
    local ok, out, code = S.lab:exec("h3", q(BIN) .. " discover --timeout 5")
    S.lab:avahi_start("h3")
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "avahi-daemon is not running")
end

-- The Lua module in a stock lua5.4 (and the C API under it): announce_self,
-- discover_nodes, and the background REGISTRY, named as in the Python module.
local function lua_cmd(script)
    local preload = os.getenv("LMD_PRELOAD")
    -- lua5.4 is not instrumented: no leak check of it, the exit code stays
    local env = preload and ("LD_PRELOAD=" .. q(preload) .. " " .. require("sanitizer").asan_env("detect_leaks=0")) or ""
    return env .. "LUA_CPATH=" .. q((os.getenv("LMDISC_BUILD") or ".") .. "/lua/?.so;;") ..
           " lua5.4 -e " .. q(script)
end

function TestAnnounceDiscover:test_lua_module_announce_self_discover_nodes_and_registry()
    local reg = S:bg("h3", lua_cmd([[
local lmdisc = require "lmdisc"
local seen
for _ = 1, 150 do
  for _, p in ipairs(lmdisc.REGISTRY:list_alive()) do
    if p.name == "from-lua" and not seen then seen = true; print("REG join " .. p.host .. " " .. p.info); io.stdout:flush() end
  end
  local still = false
  for _, p in ipairs(lmdisc.REGISTRY:list_alive()) do still = still or p.name == "from-lua" end
  if seen and not still then print("REG leave"); io.stdout:flush(); break end
  os.execute("sleep 0.1")
end
]]))
    local ann = S:bg("h1", lua_cmd([[
local lmdisc = require "lmdisc"
local a = assert(lmdisc.announce_self(8600, "info from lua", { name = "from-lua", txt = { k = "v" } }))
print("ANNOUNCED " .. a:name()); io.stdout:flush()
os.execute("sleep 30")
]]))
    lu.assertNotNil(S.lab:wait_log(ann, "ANNOUNCED from%-lua", 10), ann:output())
    -- announce_self returns before avahi has probed the name; h3's registry
    -- seeing it proves it is on the network, and then a scan must find it
    lu.assertNotNil(S.lab:wait_log(reg, "REG join h1.local info from lua", 15), reg:output())
    local _, out = S.lab:exec("h2", lua_cmd([[
local lmdisc = require "lmdisc"
local nodes, complete = lmdisc.discover_nodes(10)
for _, n in ipairs(nodes) do
  if n.name == "from-lua" then print("FOUND", n.host, n.port, n.info, n.txt.k, #n.addresses, complete) end
end
]]))
    lu.assertStrContains(out, "FOUND	h1.local	8600	info from lua	v	2	true")
    ann:signal("TERM") -- the process dies; avahi withdraws what its client published
    lu.assertNotNil(S.lab:wait_log(reg, "REG leave", 15), reg:output())
end

os.exit(lu.LuaUnit.run())
