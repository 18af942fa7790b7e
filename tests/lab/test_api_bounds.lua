-- The local API's bounds, on a lab host, against clients that misbehave:
-- event-stream clients that never read are dropped past 1 MiB behind (the
-- agent's memory stays bounded) and resume with ?since=; slowloris clients
-- are closed after the 5 s request deadline while others are served at once;
-- a flood of connections against an agent with few descriptors neither
-- stops it nor floods its log; stream slots are capped per uid (16) and in
-- all (64), and `lmdisc watch` waits through 429 and connects once a slot
-- frees; one uid's (or one TCP address's) half-open connections are capped
-- from accept, so another's requests are served at once; every reply reaches
-- its client; errors have JSON bodies.
-- Client programs: api_clients.py (python3, run on the lab host).
local lu = require "luaunit"
local cjson = require "cjson"
local Lab = require "lab"

local S = require("suite").new(3)
local q, BIN, write, read = S.q, S.BIN, S.write, S.read
local SRC = os.getenv("LMDISC_SRC") or "."
-- a sanitizer build (ASan keeps freed memory in quarantine: RSS says little)
local SANITIZED = (os.getenv("LMD_PRELOAD") or "") ~= ""
local RSS_BOUND_MB = 40

local CLIENTS -- api_clients.py, copied where every uid can read it

local suite_setup = setupSuite
function setupSuite()
    suite_setup()
    os.execute("chmod 755 " .. q(S.tmp))
    CLIENTS = S.tmp .. "/api_clients.py"
    write(CLIENTS, read(SRC .. "/tests/lab/api_clients.py"))
    os.execute("chmod 644 " .. q(CLIENTS))
end

-- Debian's python3 (a per-user one, e.g. under /root, may not run as other uids)
local PY = "python3"
do
    local f = io.open("/usr/bin/python3")
    if f then f:close(); PY = "/usr/bin/python3" end
end
local function py(args) return "exec " .. PY .. " " .. q(CLIENTS) .. " " .. args end

local tail = S.tail
local function await(p, pattern, timeout, nth) return S:await(p, pattern, timeout, nth) end

-- curl on h1 against sock: stdout, exit code
local function curl(sock, args, max)
    local _, out, code = S.lab:exec("h1", ("curl -s --max-time %g --unix-socket %s %s 2>/dev/null"):format(
        max or 5, q(sock), args))
    return out, code
end

-- status, body, seconds of a GET (as curl measured it on the host)
local function get(sock, path, extra)
    local out = curl(sock, ("-w '\\n%%{http_code} %%{time_total}' %s %s"):format(extra or "",
        q("http://lmdisc" .. path)))
    local body, code, t = out:match("^(.-)\n?(%d+) ([%d.]+)$")
    return tonumber(code), body or out, tonumber(t)
end

local function metrics(sock, max)
    local out = curl(sock, "http://lmdisc/metrics", max)
    local m = {}
    for line in out:gmatch("[^\n]+") do
        local name, value = line:match("^([%w_]+) (%S+)$")
        if name then m[name] = tonumber(value) end
    end
    return m
end

local function size(file)
    local f = io.open(file)
    if not f then return 0 end
    local n = f:seek("end")
    f:close()
    return n
end

local function status_kb(pid, field)
    local s = read("/proc/" .. pid .. "/status")
    return tonumber(s:match(field .. ":%s+(%d+)"))
end

local function wait_until(what, timeout, fn)
    local deadline = Lab.now() + timeout
    for _ = 1, math.ceil(timeout / 0.1) + 1 do
        local r = fn()
        if r then return r end
        if Lab.now() >= deadline then break end
        Lab.sleep(0.1)
    end
    lu.fail("timed out after " .. timeout .. " s waiting for " .. what)
end

-- An agent on h1 serving a socket of its own. extra: more configuration;
-- opts.api: more api { } fields; opts.wrap: a shell prefix for the command.
-- Returns the process, the socket and the configuration file.
local function agent(extra, opts)
    local sock = S:path("api.sock")
    local cfg = S:path("agent.lua")
    write(cfg, ("api { socket = %q%s }\nregistry { ttl = 60 }\n%s"):format(sock, opts and opts.api or "", extra or ""))
    local p
    if opts and opts.wrap then
        p = S:bg("h1", opts.wrap .. " " .. q(BIN) .. " agent -c " .. q(cfg))
        await(p, "agent started", 10)
    else
        p = S:agent("h1", nil, {path = cfg})
    end
    return p, sock, cfg
end

-- JSON lines of a stream (an incomplete last line is left out)
local function decode_lines(text)
    local out = {}
    for l in text:gmatch("[^\n]+") do
        local ok, v = pcall(cjson.decode, l)
        if ok then out[#out + 1] = v end
    end
    return out
end

TestApiBounds = {}

function TestApiBounds:tearDown() S:stop_all() end

-- (a) 10 event streams that never read, while ten 5 KB peers are flipped in
-- and out by the policy (a reload changes the filter: 10 events a time).
function TestApiBounds:test_slow_stream_readers_are_dropped_and_resume_with_since()
    local N, PEERS, VOLUME = 10, 10, 6 * 1024 * 1024
    local flag = S:path("keep")
    write(flag, "1")
    local p, sock = agent(([[
local f = io.open(%q)
local keep = f ~= nil
if f then f:close() end
function filter(peer) return keep or not peer.name:find("^flood") end
]]):format(flag))
    -- peers with 1 KB of non-UTF-8 TXT each: ~5 KB of JSON per event
    local function blob(k)
        local t = {}
        for j = 1, 250 do t[j] = string.char(128 + (j * 13 + k * 7) % 128) end
        return table.concat(t)
    end
    local txt = {}
    for k = 1, 4 do txt[#txt + 1] = "--txt " .. q(("abcd"):sub(k, k) .. "=" .. blob(k)) end
    local ann = {}
    for i = 1, PEERS do
        ann[i] = S:bg(i % 2 == 1 and "h2" or "h3", ("exec %s announce %d x --name %s %s"):format(
            q(BIN), 9100 + i, q(S:uniq("flood")), table.concat(txt, " ")))
    end
    for i = 1, PEERS do await(ann[i], "^announced", 20) end
    await(p, 'join "flood_', 20, PEERS)

    local fast = S:path("fast.ndjson")
    local reader = S:bg("h1", "exec curl -sN --unix-socket " .. q(sock) .. " http://lmdisc/v1/events -o " .. q(fast))
    await(fast, '"type":"snapshot"', 10)
    local go, report = S:path("go"), S:path("slow.json")
    local slow = S:bg("h1", py(("slow-streams %s %d %s %s 150"):format(q(sock), N, q(go), q(report))))
    await(slow, "^READY " .. N, 20)

    -- flip the filter until every slow client was dropped and VOLUME bytes went out
    local hwm, reloads, m = 0, 0, {}
    local t_end = Lab.now() + 75
    for i = 1, 600 do
        if i % 2 == 1 then os.remove(flag) else write(flag, "1") end
        p:signal("HUP")
        await(p, "reloaded", 10, i)
        reloads = i
        if i % 10 == 0 then
            m = metrics(sock)
            hwm = math.max(hwm, status_kb(p.pid, "VmHWM") or 0)
            if (m.lmdisc_api_streams_dropped_total or 0) >= N and size(fast) >= VOLUME then break end
            if Lab.now() > t_end then break end
        end
    end
    m = metrics(sock)
    hwm = math.max(hwm, status_kb(p.pid, "VmHWM") or 0)
    local volume = size(fast)
    print(("    %d reloads, %.1f MB of events per client, %d dropped, VmHWM %.1f MB"):format(
        reloads, volume / 1048576, m.lmdisc_api_streams_dropped_total or -1, hwm / 1024))
    lu.assertTrue(volume >= VOLUME, ("only %d bytes of events in %d reloads"):format(volume, reloads))
    -- exactly the slow ones were dropped, not the one that reads
    lu.assertEquals(m.lmdisc_api_streams_dropped_total, N)
    if not SANITIZED then
        lu.assertTrue(hwm < RSS_BOUND_MB * 1024,
            ("the agent grew to %.1f MB (bound %d MB) with %d clients that do not read"):format(hwm / 1024, RSS_BOUND_MB, N))
    end

    -- the reader that keeps up has every event, in order, and is still connected
    local events = decode_lines(read(fast))
    lu.assertEquals(events[1].type, "snapshot")
    local current = math.tointeger(events[#events].index)
    for k = 2, #events do
        lu.assertEquals(events[k].index, events[1].index + k - 1, "the reading client lost events")
    end
    lu.assertTrue(reader:running(), "the reading client was disconnected")

    -- the dropped ones resume with since= and get what they missed
    write(go, ("%d"):format(current))
    lu.assertEquals(slow:wait(60), 0, slow:output())
    local r = cjson.decode(read(report))
    lu.assertEquals(#r.clients, N)
    local function fell(log)
        local t = {}
        for l in log:gmatch("[^\n]+") do if l:find("behind", 1, true) then t[#t + 1] = l end end
        return tail(table.concat(t, "\n"), 2000)
    end
    for i, c in ipairs(r.clients) do
        local what = ("client %d: %s\n--- agent log, lines about streams behind:\n%s"):format(
            i, cjson.encode(c), fell(p:output()))
        lu.assertEquals(c.status, 200, what)
        lu.assertTrue(c.eof, "not dropped: " .. what)
        lu.assertTrue(c.contiguous, what)
        lu.assertTrue(c.last < current, what)
        -- resumed: what it missed, in order, up to the current index; or a
        -- fresh snapshot (reset) of the current state
        lu.assertEquals(c.resume_status, 200, "the resumed stream got no answer: " .. what)
        if c.resume_first_type == "snapshot" then
            lu.assertTrue(c.resume_first_reset, what)
            lu.assertEquals(c.resume_first, current, what)
        else
            lu.assertEquals(c.resume_first, c.last + 1, what)
            lu.assertEquals(c.resume_last, current, what)
            lu.assertTrue(c.resume_contiguous, what)
        end
    end
    -- and none was dropped again for it
    lu.assertEquals(metrics(sock).lmdisc_api_streams_dropped_total, N, fell(p:output()))
    lu.assertTrue(p:running(), tail(p:output()))
end

-- (b) 200 connections sending a header byte a second
function TestApiBounds:test_slowloris_clients_are_closed_after_the_deadline_while_others_are_served()
    local N = 200
    local p, sock = agent()
    local report = S:path("loris.json")
    local loris = S:bg("h1", py(("slowloris %s %d 15 %s"):format(q(sock), N, q(report))))
    await(loris, "^CONNECTED " .. N, 15)
    local t0 = Lab.now()
    local peak, rounds, worst = 0, 0, 0
    local probe = ([[curl -s -o /dev/null -w 'health %%{http_code} %%{time_total}\n' --max-time 3 --unix-socket %s http://lmdisc/v1/health
t=$(date +%%s%%N); LMDISC_SOCKET=%s timeout 5 %s peers >/dev/null 2>&1; rc=$?
echo "peers $rc $(( ($(date +%%s%%N) - t) / 1000000 ))"
curl -s --max-time 3 --unix-socket %s http://lmdisc/metrics | grep '^lmdisc_api_connections ']]):format(
        q(sock), q(sock), q(BIN), q(sock))
    while rounds < 200 and Lab.now() - t0 < 12 do
        rounds = rounds + 1
        local _, out = S.lab:exec("h1", probe)
        local code, t = out:match("health (%d+) ([%d.]+)")
        lu.assertEquals(tonumber(code), 200, out)
        lu.assertTrue(tonumber(t) <= 1.0, "a health request took " .. t .. " s during the slowloris")
        local rc, ms = out:match("peers (%d+) (%d+)")
        lu.assertEquals(tonumber(rc), 0, out)
        lu.assertTrue(tonumber(ms) <= 1000, "lmdisc peers took " .. ms .. " ms during the slowloris")
        worst = math.max(worst, tonumber(t), tonumber(ms) / 1000)
        local open = tonumber(out:match("lmdisc_api_connections (%d+)"))
        lu.assertNotNil(open, out)
        peak = math.max(peak, open)
        if open <= 2 and Lab.now() - t0 > 4 then break end -- the slow ones are gone
    end
    lu.assertEquals(loris:wait(20), 0, loris:output())
    local r = cjson.decode(read(report))
    local first, last = math.huge, 0
    for i, c in ipairs(r.clients) do
        lu.assertNotNil(c.closed_at, ("connection %d was never closed: %s"):format(i, cjson.encode(c)))
        first, last = math.min(first, c.closed_at), math.max(last, c.closed_at)
    end
    print(("    %d probes, slowest %.3f s; %d slow connections (peak %d open) closed after %.2f-%.2f s"):format(
        rounds, worst, N, peak, first, last))
    lu.assertTrue(peak >= N, "the slow connections were not all open at once: peak " .. peak)
    -- 5 s to send a whole request: not much before, not long after
    lu.assertTrue(first >= 4.0, ("a slow connection was closed after %.2f s"):format(first))
    lu.assertTrue(last <= 7.5, ("a slow connection was closed only after %.2f s"):format(last))
    -- and the agent counts them closed (its count may lag a moment)
    wait_until("the slow connections to be counted closed", 3, function()
        local open = metrics(sock).lmdisc_api_connections
        return open and open <= 2
    end)
    lu.assertTrue(p:running(), tail(p:output()))
end

-- (c) 2000 connection attempts against an agent limited to 128 descriptors
function TestApiBounds:test_connection_flood_with_few_descriptors_keeps_serving_without_log_flood()
    local p, sock = agent(nil, {wrap = "ulimit -n 128 && exec"})
    lu.assertStrMatches(read("/proc/" .. p.pid .. "/limits"), ".*Max open files%s+128%s.*")
    local report = S:path("flood.json")
    local fl = S:bg("h1", py(("flood %s 2000 30 %s"):format(q(sock), q(report))))
    lu.assertEquals(fl:wait(40), 0, fl:output())
    local r = cjson.decode(read(report))
    lu.assertEquals(r.attempts, 2000, read(report))
    -- serving again at once (for a moment the listen backlog may still be
    -- full of the flood's closed connections: connect fails, EAGAIN), then
    -- each request within a second, and the connections it held released
    local t0 = Lab.now()
    wait_until("the agent to answer again after the flood", 10, function()
        return get(sock, "/v1/health", "--max-time 2") == 200
    end)
    local back = Lab.now() - t0
    lu.assertTrue(back <= 3, ("the agent answered again only %.2f s after the flood"):format(back))
    for i = 1, 5 do
        local code, body, t = get(sock, "/v1/health", "--max-time 3")
        lu.assertEquals(code, 200, body)
        lu.assertTrue(t <= 1.0, ("health request %d took %s s after the flood"):format(i, tostring(t)))
    end
    wait_until("the flood's connections to be released", 10, function()
        local open = metrics(sock).lmdisc_api_connections
        return open and open <= 2
    end)
    local ok, out = S.lab:exec("h1", "LMDISC_SOCKET=" .. q(sock) .. " timeout 5 " .. q(BIN) .. " peers --json")
    lu.assertTrue(ok, out)
    -- a few lines at most: no accept error per connection
    local log, noisy, cap = p:output(), 0, {}
    for line in log:gmatch("[^\n]+") do
        local l = line:lower()
        if l:find("accept") or l:find("connection") or l:find("descriptor") or l:find("open files") then
            noisy = noisy + 1
        end
        if line:find("connections are open, the most it serves at once", 1, true) then cap[#cap + 1] = line end
    end
    print(("    %d attempts (%d connected, %d found the backlog full, %d failed: %s), serving again after %.2f s, %d log lines about connections"):format(
        r.attempts, r.connected, r.backlog_full, r.failed, cjson.encode(r.errors), back, noisy))
    lu.assertTrue(noisy < 20, "the log is flooded:\n" .. tail(log))
    -- the cap (RLIMIT_NOFILE 128 - 64) engaged, and was said once
    lu.assertEquals(#cap, 1, tail(log))
    lu.assertStrContains(cap[1], "API: 64 connections are open")
    lu.assertTrue(p:running(), tail(log))
end

-- (d) 16 streams per uid, 64 in all; `lmdisc watch` waits through 429
function TestApiBounds:test_stream_slots_per_uid_and_in_all_and_watch_waits_for_a_free_one()
    local p, sock = agent(nil, {api = ", socket_mode = 438"}) -- 0666: other uids connect too
    local function hold(n, uid)
        local pre = uid and ("exec setpriv --reuid=%d --regid=%d --clear-groups %s "):format(uid, uid, PY)
            or ("exec %s "):format(PY)
        local h = S:bg("h1", pre .. q(CLIENTS) .. (" streams %s %d 100"):format(q(sock), n))
        return h
    end
    local function held(h, n)
        local line = await(h, "^HELD %d+", 20)
        lu.assertEquals(line, "HELD " .. n, h:output())
    end
    -- root takes its 16
    local a, b = hold(15), hold(1)
    held(a, 15)
    held(b, 1)
    local code, body = get(sock, "/v1/events", "--max-time 2")
    lu.assertEquals(code, 429, body)
    lu.assertStrContains(cjson.decode(body).error, "too many event streams are open for this user (16)")
    local w1 = S:bg("h1", "exec " .. q(BIN) .. " watch --json --socket " .. q(sock))
    await(w1, "no free event stream %(429%); waiting", 10)
    lu.assertTrue(w1:running(), "watch gave up: " .. w1:output())
    lu.assertNil(w1:output():find('"type":"snapshot"', 1, true))
    -- one frees: watch connects (it retries with a backoff of at most 5 s)
    b:signal("TERM")
    b:wait(5)
    local t0 = Lab.now()
    await(w1, '"type":"snapshot"', 10)
    local dt1 = Lab.now() - t0

    -- now all 64: root 15 (a) + 3 x 16 + 1 of other uids, after watch w1 left
    w1:signal("TERM")
    lu.assertEquals(w1:wait(5), 0)
    local others = {hold(16, 65001), hold(16, 65002), hold(16, 65003)}
    local last = hold(1, 65004)
    for _, h in ipairs(others) do held(h, 16) end
    held(last, 1)
    local extra = hold(1, 65005) -- a uid with none yet
    held(extra, 0)
    lu.assertStrContains(extra:output(), "STREAM 0 429")
    code, body = get(sock, "/v1/events", "--max-time 2")
    lu.assertEquals(code, 429, body)
    lu.assertStrContains(cjson.decode(body).error, "too many event streams are open; try again later")
    local w2 = S:bg("h1", "exec " .. q(BIN) .. " watch --json --socket " .. q(sock))
    await(w2, "no free event stream %(429%); waiting", 10)
    last:signal("TERM")
    last:wait(5)
    t0 = Lab.now()
    await(w2, '"type":"snapshot"', 10)
    local dt2 = Lab.now() - t0
    print(("    watch connected %.2f s / %.2f s after a slot freed"):format(dt1, dt2))
    lu.assertTrue(dt1 <= 7 and dt2 <= 7, ("watch took %.2f / %.2f s to take a free slot"):format(dt1, dt2))
    lu.assertTrue(w2:running(), w2:output())
    lu.assertTrue(p:running(), tail(p:output()))
end

-- (d1) A uid's share of event streams holds over loopback TCP too (the
-- kernel says whose the connection is): uid 4242's 64 streams over TCP
-- used to take every stream slot and leave uid 4343 429.
function TestApiBounds:test_a_uids_streams_over_loopback_tcp_count_against_its_share()
    local listen = "127.0.0.1:7746"
    local p, sock = agent(nil, {api = (", socket_mode = 438, listen = %q"):format(listen)})
    local h = S:bg("h1", ("exec setpriv --reuid=4242 --regid=4242 --clear-groups %s %s streams %s 64 60"):format(PY,
        q(CLIENTS), q("tcp:" .. listen)))
    local line = await(h, "^HELD %d+", 20)
    lu.assertEquals(line, "HELD 16", h:output())
    lu.assertStrContains(h:output(), "STREAM 16 429")
    local _, out = S.lab:exec("h1", ("setpriv --reuid=4343 --regid=4343 --clear-groups curl -s -o /dev/null "
        .. "--max-time 1 -w '%%{http_code}' --unix-socket %s http://lmdisc/v1/events"):format(q(sock)))
    lu.assertEquals(out, "200", "uid 4343's /v1/events beside uid 4242's streams over TCP")
    lu.assertTrue(p:running(), tail(p:output()))
end

-- (d2) Half-open connections count from accept: one uid's 1,000 connections
-- that never finish a request hold at most its share (128 of 256), and
-- another uid's /v1/health is answered within 100 ms meanwhile.  The same
-- per address over TCP.
local FLOODER, PROBER = 4242, 4343

-- 20 health requests on host, each timed by curl: {code, seconds} each.
local function probes(host, pre, url, extra)
    local _, out = S.lab:exec(host, ("for i in $(seq 20); do %s curl -s -o /dev/null --max-time 2 %s "
        .. "-w '%%{http_code} %%{time_total}\n' %s; done"):format(pre or "", extra or "", q(url)))
    local r = {}
    for code, t in out:gmatch("(%d+) ([%d.]+)") do r[#r + 1] = {tonumber(code), tonumber(t)} end
    lu.assertEquals(#r, 20, out)
    return r, out
end

local function as(uid) return ("setpriv --reuid=%d --regid=%d --clear-groups"):format(uid, uid) end

-- The flood on host, and once it is connected the probes: their results.
local function half_open_flood(host, pre, where, p, probe)
    local fl = S:bg(host, ("exec %s %s %s half-open %s 1000 15"):format(pre, PY, q(CLIENTS), q(where)))
    local open = await(fl, "^OPEN ", 15)
    local r, out = probe()
    -- every attempt was taken (the agent accepts, and closes what is over
    -- the share at once), and the flood held exactly its share meanwhile
    local why = ("%s\n--- probes:\n%s--- agent:\n%s"):format(fl:output(), out, tail(p:output()))
    lu.assertEquals(open, "OPEN connected=1000 of=1000", why)
    lu.assertNotNil(S.lab:wait_log(fl, "^ALIVE 128$", 3), why)
    lu.assertTrue(fl:running(), why)
    return r, out
end

local function assert_fast(r, out, what)
    local worst = 0
    for i, x in ipairs(r) do
        lu.assertEquals(x[1], 200, ("%s: request %d\n%s"):format(what, i, out))
        worst = math.max(worst, x[2])
    end
    lu.assertTrue(worst <= 0.1, ("%s: the slowest /v1/health took %.3f s\n%s"):format(what, worst, out))
    return worst
end

function TestApiBounds:test_one_uids_half_open_connections_leave_another_uids_health_fast()
    local p, sock = agent(nil, {api = ", socket_mode = 438"}) -- 0666: other uids connect too
    local r, out = half_open_flood("h1", as(FLOODER), sock, p, function()
        return probes("h1", as(PROBER), "http://lmdisc/v1/health", "--unix-socket " .. q(sock))
    end)
    local worst = assert_fast(r, out, "uid " .. PROBER .. " beside uid " .. FLOODER .. "'s 1,000 half-open connections")
    print(("    uid %d: 1,000 half-open connections, 128 held; uid %d's slowest of 20 /v1/health: %.1f ms"):format(
        FLOODER, PROBER, worst * 1000))
    lu.assertStrContains(p:output(), ("API: uid %d has 128 connections open, the most one client may"):format(FLOODER))
    -- the other 872 were closed at accept, and counted
    lu.assertEquals(metrics(sock).lmdisc_api_connections_refused_total, 1000 - 128)
    lu.assertTrue(p:running(), tail(p:output()))
end

function TestApiBounds:test_one_addresses_half_open_connections_leave_another_addresses_health_fast()
    local listen = S.lab:ip("h1", 4) .. ":7741"
    local p = agent(nil, {api = (", listen = %q, allow_remote = true"):format(listen)})
    local r, out = half_open_flood("h2", "", "tcp:" .. listen, p, function() -- from h2's address
        return probes("h1", nil, "http://" .. listen .. "/v1/health") -- (root on h1 over TCP: a client of its own)
    end)
    local worst = assert_fast(r, out, "h1 beside h2's 1,000 half-open TCP connections")
    print(("    h2: 1,000 half-open TCP connections, 128 held; h1's slowest of 20 /v1/health: %.1f ms"):format(
        worst * 1000))
    lu.assertStrContains(p:output(), ("API: %s has 128 connections open, the most one client may"):format(
        S.lab:ip("h2", 4)))
    lu.assertTrue(p:running(), tail(p:output()))
end

-- A remote host sending from many addresses gets a share per address, but
-- remote clients together hold at most 192 of the 256 slots: this host's
-- users (the socket, and TCP from this host, counted by uid) keep the rest.
function TestApiBounds:test_a_remote_host_with_many_addresses_leaves_this_hosts_users_room()
    local listen = S.lab:ip("h1", 4) .. ":7745"
    local p, sock = agent(nil, {api = (", socket_mode = 438, listen = %q, allow_remote = true"):format(listen)})
    local base = S.lab:ip("h2", 4):match("^(%d+%.%d+%.%d+%.)")
    local srcs = {}
    for i = 200, 203 do
        local a = base .. i
        local ok, o = S.lab:exec("h2", ("ip addr add %s/24 dev eth0"):format(a))
        lu.assertTrue(ok, o)
        srcs[#srcs + 1] = a
    end
    local fl = S:bg("h2", ("exec %s %s half-open %s 1000 15"):format(PY, q(CLIENTS),
        q("tcp:" .. listen .. "@" .. table.concat(srcs, ","))))
    await(fl, "^OPEN ", 15)
    local r, out = probes("h1", as(PROBER), "http://lmdisc/v1/health", "--unix-socket " .. q(sock))
    local r2, out2 = probes("h1", as(PROBER), "http://" .. listen .. "/v1/health")
    for i = 200, 203 do S.lab:exec("h2", ("ip addr del %s%d/24 dev eth0"):format(base, i)) end
    local why = ("%s\n--- probes:\n%s%s--- agent:\n%s"):format(fl:output(), out, out2, tail(p:output()))
    local w1 = assert_fast(r, why, "uid " .. PROBER .. " on the socket beside h2's 4 addresses")
    local w2 = assert_fast(r2, why, "uid " .. PROBER .. " over TCP from h1 beside h2's 4 addresses")
    print(("    h2 from 4 addresses: 1,000 half-open, 192 held; uid %d's slowest /v1/health: %.1f ms (socket), "
        .. "%.1f ms (TCP)"):format(PROBER, w1 * 1000, w2 * 1000))
    lu.assertNotNil(S.lab:wait_log(fl, "^ALIVE 192$", 3), why)
    lu.assertStrContains(p:output(), "API: remote clients have 192 connections open, the most they may together")
    lu.assertTrue(p:running(), tail(p:output()))
end

-- One uid is one client whatever way it connects: its half-open
-- connections on the Unix socket and over loopback TCP, from any of
-- 127.0.0.0/8's addresses, count against one share (128), so another
-- uid's /v1/health stays fast.  (Each 127.0.0.x counted as an address of
-- its own: 2 of them and the socket filled all 256 slots.)
local function socket_and_loopback(listen, target, extra)
    local p, sock = agent(nil, {api = (", socket_mode = 438, listen = %q%s"):format(listen, extra or "")})
    local srcs = {}
    for i = 2, 9 do srcs[#srcs + 1] = "127.0.0." .. i end
    local fl1 = S:bg("h1", ("exec %s %s %s half-open %s 1000 15"):format(as(FLOODER), PY, q(CLIENTS), q(sock)))
    await(fl1, "^OPEN ", 15)
    local fl2 = S:bg("h1", ("exec %s %s %s half-open %s 1000 15"):format(as(FLOODER), PY, q(CLIENTS),
        q("tcp:" .. target .. "@" .. table.concat(srcs, ","))))
    await(fl2, "^OPEN ", 15)
    local r, out = probes("h1", as(PROBER), "http://lmdisc/v1/health", "--unix-socket " .. q(sock))
    local why = ("%s\n--- tcp:\n%s\n--- probes:\n%s--- agent:\n%s"):format(fl1:output(), fl2:output(), out,
        tail(p:output()))
    local worst = assert_fast(r, why, "uid " .. PROBER .. " beside uid " .. FLOODER .. "'s connections on the socket "
        .. "and from 8 loopback addresses")
    print(("    uid %d: 1,000 half-open on the socket + 1,000 over loopback TCP; uid %d's slowest /v1/health: %.1f ms")
        :format(FLOODER, PROBER, worst * 1000))
    lu.assertNotNil(S.lab:wait_log(fl1, "^ALIVE 128$", 3), why)
    lu.assertNotNil(S.lab:wait_log(fl2, "^ALIVE 0$", 3), why)
    lu.assertStrContains(p:output(), ("API: uid %d has 128 connections open, the most one client may"):format(FLOODER))
    lu.assertTrue(p:running(), tail(p:output()))
end

function TestApiBounds:test_one_uids_connections_over_the_socket_and_loopback_tcp_share_one_share()
    socket_and_loopback("127.0.0.1:7743", "127.0.0.1:7743")
end

-- The same on a dual-stack listener ([::]), where IPv4 clients arrive as
-- IPv4-mapped IPv6 addresses.
function TestApiBounds:test_one_uids_connections_over_the_socket_and_a_dual_stack_listener_share_one_share()
    socket_and_loopback("[::]:7747", "127.0.0.1:7747", ", allow_remote = true")
end

-- (e) errors are JSON and say what was wrong
function TestApiBounds:test_error_bodies_are_json_and_say_what_was_wrong()
    local p, sock = agent()
    local function err(path, want_code, extra)
        local code, body = get(sock, path, extra)
        lu.assertEquals(code, want_code, path:sub(1, 80) .. ": " .. tostring(body))
        local ok, doc = pcall(cjson.decode, body)
        lu.assertTrue(ok, path:sub(1, 80) .. ": not JSON: " .. tostring(body))
        lu.assertEquals(type(doc.error), "string", body)
        return doc.error
    end
    lu.assertStrContains(err("/v1/peers/" .. ("n"):rep(10240), 414), "too long")
    lu.assertStrContains(err("/v1/peers/" .. ("n"):rep(2100), 414), "at most 2048")
    local since = "since must be an event index"
    lu.assertStrContains(err("/v1/events?since=abc", 400), since)
    lu.assertStrContains(err("/v1/events?since=" .. ("9"):rep(40), 400), since)
    lu.assertStrContains(err("/v1/events?since=18446744073709551616", 400), since) -- 2^64
    lu.assertStrContains(err("/v1/events?since=-1", 400), since)
    lu.assertStrContains(err("/v1/events", 400, "-H 'Last-Event-ID: x:abc'"), since)
    lu.assertStrContains(err("/v1/nope", 404), "unknown path")
    lu.assertStrContains(err("/v1/peers", 405, "-X POST"), "only GET")
    -- the largest index is still an index: a fresh snapshot, not an error
    local out = curl(sock, "--max-time 1 'http://lmdisc/v1/events?since=18446744073709551615'")
    local first = cjson.decode(out:match("[^\n]+"))
    lu.assertEquals(first.type, "snapshot")
    lu.assertTrue(first.reset)
    lu.assertTrue(p:running(), tail(p:output()))
end

-- Every reply reaches its client: keep-alive (curl's default), two requests
-- on one connection, HTTP/1.0 and Connection: close.
function TestApiBounds:test_every_reply_reaches_the_client()
    local p, sock = agent()
    for i = 1, 10 do
        local code, body, t = get(sock, "/v1/health", "--max-time 3")
        lu.assertEquals(code, 200, ("request %d: %s"):format(i, tostring(body)))
        lu.assertTrue(t <= 1.0, ("request %d took %.2f s"):format(i, t))
        lu.assertEquals(cjson.decode(body).status, "ok")
    end
    local out = curl(sock, "--max-time 3 http://lmdisc/v1/health http://lmdisc/v1/self")
    lu.assertStrContains(out, '"status":"ok"')
    lu.assertStrContains(out, '"announcing"')
    for _, how in ipairs({"-0", "-H 'Connection: close'"}) do
        local code, body = get(sock, "/v1/health", "--max-time 3 " .. how)
        lu.assertEquals(code, 200, how .. ": " .. tostring(body))
        lu.assertEquals(cjson.decode(body).status, "ok", how)
    end
    lu.assertTrue(p:running(), tail(p:output()))
end

-- SIGTERM while clients are connected (an event stream, `lmdisc watch`, a
-- connection that has sent nothing): exit 0 at once and cleanly (the
-- sanitizer build reports any use of freed connection state); watch keeps
-- waiting and picks up the next agent on the same socket with a fresh
-- snapshot (another epoch: reset).
function TestApiBounds:test_agent_exits_cleanly_under_its_clients_and_watch_reconnects()
    local p, sock, cfg = agent()
    local stream = S:bg("h1", "exec curl -sN --unix-socket " .. q(sock) .. " http://lmdisc/v1/events")
    await(stream, '"type":"snapshot"', 10)
    local w = S:bg("h1", "exec " .. q(BIN) .. " watch --json --socket " .. q(sock))
    await(w, '"type":"snapshot"', 10)
    local idle = S:bg("h1", "exec socat -u UNIX-CONNECT:" .. q(sock) .. " STDOUT")
    -- all three are accepted (and this request too); the count only
    -- informs: a reply that does not come must not hide this test's point
    local deadline = Lab.now() + 3
    repeat
        local open = metrics(sock, 1).lmdisc_api_connections
    until (open and open >= 4) or Lab.now() > deadline
    local epoch = cjson.decode(w:output():match("[^\n]+")).epoch
    local t0 = Lab.now()
    p:signal("TERM")
    local rc, err = p:wait(5)
    local took = Lab.now() - t0
    lu.assertNil(S.sanitizer_report(p), "the agent's exit with clients connected:\n" .. tail(p:output(), 6000))
    lu.assertEquals(rc, 0, "exit status after SIGTERM (" .. tostring(err) .. "):\n" .. tail(p:output()))
    lu.assertTrue(took <= 1.0, ("exited %.2f s after SIGTERM"):format(took))
    -- the clients see the end; watch keeps waiting
    lu.assertNotNil(stream:wait(5), "the event stream did not end")
    lu.assertNotNil(idle:wait(5), "the idle connection did not end")
    await(w, "reconnecting", 10)
    lu.assertTrue(w:running(), w:output())
    -- a new agent on the same socket: watch resumes there with a snapshot
    local p2 = S:agent("h1", nil, {path = cfg})
    local line = await(w, '"type":"snapshot".*"epoch":"', 10, 2)
    local snap = cjson.decode(line)
    lu.assertNotEquals(snap.epoch, epoch)
    lu.assertTrue(snap.reset, line)
    lu.assertTrue(p2:running())
end

os.exit(lu.LuaUnit.run())
