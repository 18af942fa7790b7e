-- The fleet page the agent serves at / (src/api/fleet.html, compiled in):
-- as served on the TCP listener and the Unix socket (one self-contained
-- page, read-only), and live in a real browser: headless Chromium from
-- Debian driven by Selenium (tests/lab/tools/fleet_browser.py) inside lab
-- host h1, never in this machine's own network namespace.
--
-- h1 runs the agent (api.listen on its loopback) and the browser; h2 and h3
-- announce peers with `lmdisc announce`.  The screenshots are kept in the
-- build directory: fleet-page-before.png, fleet-page.png.
local lu = require "luaunit"
local cjson = require "cjson"
local Lab = require "lab"

local S = require("suite").new(3)
local q, BIN = S.q, S.BIN
local SRC = os.getenv("LMDISC_SRC") or "."
local BUILD = os.getenv("LMDISC_BUILD") or "."
local TCP = "127.0.0.1:7790"
local SOCK = "/run/lmdisc/fleet.sock"

local function await(p, pattern, timeout) return S:await(p, pattern, timeout) end

local function agent()
    return S:agent("h1", ('registry { ttl = 60 }\napi { socket = %q, listen = %q }\n'):format(SOCK, TCP))
end

--- `lmdisc announce` on host, waited until established.
local function announce(host, port, name, info, txt)
    local args = {}
    for k, v in pairs(txt or {}) do args[#args + 1] = "--txt " .. q(k .. "=" .. v) end
    table.sort(args)
    local p = S:bg(host, ("%s announce %d %s --name %s %s"):format(q(BIN), port, q(info), q(name),
        table.concat(args, " ")))
    await(p, "^announced", 15)
    return p
end

--- One request with curl on h1: status line, headers (lower-case names) and body.
local function curl(args)
    local ok, out = S.lab:exec("h1", "curl -sS -i --max-time 5 " .. args)
    lu.assertTrue(ok, args .. ": " .. out)
    local head, body = out:match("^(.-)\r\n\r\n(.*)$")
    lu.assertNotNil(head, out)
    local h = {}
    for k, v in head:gmatch("\n([^:\r\n]+):%s*([^\r\n]*)") do h[k:lower()] = v end
    return tonumber(head:match("^HTTP/%S+ (%d+)")), h, body
end

local function file_text(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("a")
    f:close()
    return s
end

TestFleet = {}

function TestFleet:tearDown() S:stop_all() end

-- 1. GET / on either listener: the page itself, byte for byte; nothing it
-- loads comes from elsewhere; only GET and HEAD.
function TestFleet:test_1_the_page_is_served_self_contained_and_read_only()
    agent()
    local page = file_text(SRC .. "/src/api/fleet.html")
    local status, h, body = curl("http://" .. TCP .. "/")
    lu.assertEquals(status, 200, body)
    lu.assertEquals(h["content-type"], "text/html; charset=utf-8")
    lu.assertEquals(body, page)
    lu.assertStrContains(h["content-security-policy"], "default-src 'none'")
    lu.assertStrContains(h["content-security-policy"], "connect-src 'self'")
    lu.assertStrContains(h["content-security-policy"], "frame-ancestors 'none'")
    -- no external asset: no URL with a scheme, no src= or <link>, no @import
    lu.assertNil(body:find("%a+://"), "a URL in the page")
    lu.assertNil(body:find("%ssrc%s*="), "an element loaded from elsewhere")
    lu.assertNil(body:find("<link", 1, true))
    lu.assertNil(body:find("@import", 1, true))
    -- and what its script asks for: GETs of the API, an event stream
    for call in body:gmatch("fetch%(([^,%)]+)") do
        lu.assertStrMatches(call, '"/v1/[%w]+"')
    end
    lu.assertStrContains(body, 'new EventSource("/v1/events")')
    lu.assertNil(body:find("method", 1, true), "the page sets a request method")
    status, h, body = curl("--unix-socket " .. SOCK .. " http://lmdisc/")
    lu.assertEquals(status, 200)
    lu.assertEquals(body, page)
    status = curl("-X POST http://" .. TCP .. "/")
    lu.assertEquals(status, 405)
    status, h = curl("-I http://" .. TCP .. "/")
    lu.assertEquals(status, 200)
    lu.assertEquals(h["content-type"], "text/html; charset=utf-8")
end

-- 2. In Chromium: the peers before, a join and a leave as they happen (no
-- reload), the model and status filters; the page asks only its own origin,
-- only with GET.
function TestFleet:test_2_the_page_follows_joins_and_leaves_in_a_browser()
    for _, p in ipairs({"/usr/bin/chromium", "/usr/bin/chromedriver"}) do
        if not os.execute("test -x " .. q(p)) then
            lu.skip(p .. " is missing: install the Debian packages chromium, chromium-driver and python3-selenium")
        end
    end
    if not os.execute("/usr/bin/python3 -c 'import selenium' 2>/dev/null") then
        lu.skip("python3-selenium is missing: install the Debian packages chromium, chromium-driver and python3-selenium")
    end
    local a1 = agent()
    -- named as the agent names its own service, HOST:PORT
    local alpha, beta, gamma = "h2:9001", "h3:9002", "h2:9003"
    announce("h2", 9001, alpha, "gemma-2b-it Q4_0", {model = "gemma-2b-it", quant = "Q4_0"})
    announce("h3", 9002, beta, "llama-3-8b Q8_0", {model = "llama-3-8b", status = "draining"})
    await(a1, 'join "' .. alpha .. '"', 15)
    await(a1, 'join "' .. beta .. '"', 15)
    os.remove(BUILD .. "/fleet-page.png")
    local b = S:bg("h1", ("exec /usr/bin/python3 %s %s %s %s %s"):format(q(SRC .. "/tests/lab/tools/fleet_browser.py"),
        q("http://" .. TCP .. "/"), q(BUILD), q(alpha .. "," .. beta), q(gamma)))
    local function step(word, timeout)
        local line = await(b, "^" .. word:gsub("%-", "%%-") .. "%f[%s\0]", timeout or 40)
        local doc = line:match("^%S+ (.*)$")
        return doc and cjson.decode(doc) or nil
    end
    local function by_name(rows)
        local out = {}
        for _, r in ipairs(rows) do out[r.name] = r end
        return out
    end

    local initial = step("INITIAL", 90) -- Chromium's first start
    local rows = by_name(initial.rows)
    lu.assertEquals(initial.title, "lmdisc fleet")
    lu.assertEquals(#initial.rows, 2, cjson.encode(initial))
    local ip2, ip3 = S.lab:ip("h2"), S.lab:ip("h3")
    lu.assertEquals(rows[alpha].address, ip2 .. ":9001")
    lu.assertStrContains(rows[alpha].model, "gemma-2b-it")
    lu.assertStrContains(rows[alpha].model, "gemma-2b-it Q4_0")
    lu.assertEquals(rows[alpha].health, "up")
    lu.assertEquals(rows[alpha].trust, "unsigned")
    lu.assertEquals(rows[alpha].sources, "mdns")
    lu.assertStrMatches(rows[alpha].age, "%d+s")
    lu.assertEquals(rows[beta].address, ip3 .. ":9002")
    lu.assertEquals(rows[beta].health, "draining")
    lu.assertEquals(rows[beta].pill, "draining")
    lu.assertEquals(initial.cards, {["n-peers"] = "2", ["n-up"] = "1", ["n-out"] = "1", ["n-untrusted"] = "0"})
    lu.assertStrContains(initial.agent, "avahi running")

    local f = step("FILTERS")
    lu.assertEquals(f.models, {"", "gemma-2b-it", "llama-3-8b"})
    lu.assertEquals(f["model=gemma-2b-it"], {alpha})
    lu.assertEquals(f["model=llama-3-8b"], {beta})
    lu.assertEquals(f["status=up"], {alpha})
    lu.assertEquals(f["status=draining"], {beta})
    lu.assertEquals(f["status=down"], {})
    lu.assertEquals(f.shown, "2 shown")

    step("READY-JOIN")
    local t0 = Lab.now()
    local g = announce("h2", 9003, gamma, "llama-3-8b Q4_K_M", {model = "llama-3-8b"})
    local joined = step("JOINED")
    print(("    the browser showed %s %.3f s after its announce started"):format(gamma, Lab.now() - t0))
    rows = by_name(joined.rows)
    lu.assertEquals(#joined.rows, 3, cjson.encode(joined))
    lu.assertEquals(rows[gamma].address, ip2 .. ":9003")
    lu.assertStrContains(rows[gamma].model, "llama-3-8b Q4_K_M")
    lu.assertEquals(rows[gamma].health, "up")
    lu.assertEquals(joined.marker, "loaded once", "the page was reloaded")
    lu.assertStrContains(joined.events, "join")
    lu.assertStrContains(joined.events, gamma)

    step("READY-LEAVE")
    t0 = Lab.now()
    g:signal("TERM") -- a goodbye
    local left = step("LEFT")
    print(("    the browser dropped %s %.3f s after its announce was stopped"):format(gamma, Lab.now() - t0))
    rows = by_name(left.rows)
    lu.assertNil(rows[gamma], cjson.encode(left))
    lu.assertNotNil(rows[alpha])
    lu.assertNotNil(rows[beta])
    lu.assertEquals(left.marker, "loaded once", "the page was reloaded")
    lu.assertStrContains(left.events, "leave")

    -- read-only, and nothing from anywhere else
    local requests = step("REQUESTS")
    lu.assertTrue(#requests >= 3, cjson.encode(requests))
    local seen = {}
    for _, r in ipairs(requests) do
        lu.assertEquals(r.method, "GET", cjson.encode(r))
        lu.assertEquals(r.url:sub(1, #("http://" .. TCP .. "/")), "http://" .. TCP .. "/", cjson.encode(r))
        seen[(r.url:gsub("^http://[^/]+", ""))] = true
    end
    lu.assertTrue(seen["/"] and seen["/v1/events"] and seen["/v1/self"], cjson.encode(requests))
    step("DONE")
    lu.assertEquals(b:wait(30), 0, S.tail(b:output()))
    -- the screenshot, kept in the build directory
    local png = file_text(BUILD .. "/fleet-page.png")
    lu.assertEquals(png:sub(1, 8), "\137PNG\r\n\26\n")
    lu.assertTrue(#png > 20000, "a screenshot of " .. #png .. " bytes")
    print("    screenshot: " .. BUILD .. "/fleet-page.png")
end

os.exit(lu.LuaUnit.run())
