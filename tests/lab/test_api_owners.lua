-- Who may do what through the agent's API, on a lab host, with clients run
-- as other uids (setpriv) against a socket every uid may open:
--   * a registration belongs to the uid that made it: another uid's PATCH,
--     DELETE and pass are 403 with a message; root and the agent's own
--     user may (the agent runs as a uid of its own here, so both are tried);
--   * draining the host is for root and the agent's user only (403);
--   * instance names compare without ASCII case, as DNS and mDNS do: "GPU1"
--     beside a configured or registered "gpu1" is 409;
--   * TXT keys beginning with lmd- (the agent's own: lmd-sig, lmd-cert,
--     lmd-live) are refused from clients (400 naming the key) and from a
--     policy's set_txt.
--   * registrations are shared: 16 per uid, 48 for users together; root
--     and the agent's user keep the rest (429 with a message).
local lu = require "luaunit"
local cjson = require "cjson"

local S = require("suite").new(2)
local q, BIN, write = S.q, S.BIN, S.write

local AGENT_UID = 4500          -- the agent's own user (as User=lmdisc would be)
local OWNER, OTHER = 4242, 4343 -- two local users
local DIR = "/run/lmdisc-owners" -- h1's own /run (a tmpfs per lab host)
local SOCK = DIR .. "/api.sock"

local suite_setup = setupSuite
function setupSuite()
    suite_setup()
    os.execute("chmod 755 " .. q(S.tmp)) -- configurations the agent's uid reads
end

local function await(p, pattern, timeout, nth) return S:await(p, pattern, timeout, nth) end

--- The agent on h1 serving SOCK to every uid (mode 0666), run as uid (nil:
--- root); extra: more configuration; registry: the registry { } fields.
local function agent(uid, extra, registry)
    local cfg = S:path("agent.lua")
    write(cfg, ("registry { %s }\napi { socket = %q, socket_mode = 438 }\n%s"):format(registry or "ttl = 60", SOCK,
        extra or ""))
    os.execute("chmod 644 " .. q(cfg))
    local ok, out = S.lab:exec("h1", ("rm -rf %s && mkdir -m 755 %s && chown %d %s"):format(q(DIR), q(DIR),
        uid or 0, q(DIR)))
    lu.assertTrue(ok, out)
    local pre = uid and ("setpriv --reuid=%d --regid=%d --clear-groups "):format(uid, uid) or ""
    local p = S:bg("h1", "exec " .. pre .. q(BIN) .. " agent -c " .. q(cfg))
    await(p, "agent started", 10)
    return p
end

--- One request to the agent as uid (nil: root): status, decoded body, raw body.
local function call(uid, method, path, body)
    local pre = uid and ("setpriv --reuid=%d --regid=%d --clear-groups "):format(uid, uid) or ""
    local data = body and ("-H 'Content-Type: application/json' --data-binary %s "):format(q(cjson.encode(body))) or ""
    local cmd = ("%scurl -s --max-time 5 --unix-socket %s -X %s -w '\\n%%{http_code}' %s%s"):format(pre, q(SOCK),
        method, data, q("http://lmdisc" .. path))
    local _, out = S.lab:exec("h1", cmd)
    local raw, code = out:match("^(.-)\n?(%d+)$")
    local ok, doc = pcall(cjson.decode, raw or "")
    return tonumber(code), ok and doc or nil, (uid or 0) .. " " .. method .. " " .. path .. " -> " .. out
end

--- Assert a refusal: status, and a JSON error containing message.
local function refused(status, message, code, doc, what)
    lu.assertEquals(code, status, what)
    lu.assertEquals(type(doc) == "table" and type(doc.error), "string", what)
    lu.assertStrContains(doc.error, message, false, what)
end

local function services()
    local code, doc, what = call(nil, "GET", "/v1/self")
    lu.assertEquals(code, 200, what)
    local by = {}
    for _, s in ipairs(doc.services or {}) do by[s.name] = s end
    return by, what
end

TestApiOwners = {}

function TestApiOwners:tearDown() S:stop_all() end

function TestApiOwners:test_another_uid_gets_403_for_patch_delete_pass_and_drain()
    local a = agent(AGENT_UID)
    local name = S:uniq("owned")
    local code, doc, what = call(OWNER, "PUT", "/v1/services/" .. name .. "?ttl=60", {port = 9001, txt = {load = "1"}})
    lu.assertEquals(code, 201, what)
    lu.assertEquals(doc.uid, OWNER, what)
    lu.assertEquals(services()[name].uid, OWNER)

    -- another user: refused, and nothing changed
    local who = ('"%s" was registered by uid %d: only that user, root and the agent\'s user may'):format(name, OWNER)
    refused(403, who .. " change it (you are uid " .. OTHER .. ")",
        call(OTHER, "PATCH", "/v1/services/" .. name, {txt = {load = "9"}}))
    refused(403, who .. " withdraw it", call(OTHER, "DELETE", "/v1/services/" .. name))
    refused(403, who .. " pass it", call(OTHER, "PUT", "/v1/services/" .. name .. "/pass"))
    -- the same registration by another spelling is still the owner's
    refused(403, who .. " withdraw it", call(OTHER, "DELETE", "/v1/services/" .. name:upper()))
    local mine, body = services()
    lu.assertNotNil(mine[name], body)
    lu.assertEquals(mine[name].txt.load, "1", body)
    refused(403, ("draining this host is for root and the agent's user (uid %d); uid %d may not"):format(
        AGENT_UID, OTHER), call(OTHER, "POST", "/v1/self/drain", {grace = 1}))
    refused(403, "draining this host is for root", call(OWNER, "POST", "/v1/self/drain", {grace = 1}))
    local _, self = call(nil, "GET", "/v1/self")
    lu.assertEquals(self.state, "observing", cjson.encode(self))
    lu.assertNil(a:output():find("drain:", 1, true), a:output())

    -- the owner, the agent's user and root may
    code, doc, what = call(OWNER, "PATCH", "/v1/services/" .. name, {txt = {load = "2"}})
    lu.assertEquals(code, 200, what)
    lu.assertEquals(doc.txt.load, "2", what)
    code, _, what = call(OWNER, "PUT", "/v1/services/" .. name .. "/pass")
    lu.assertEquals(code, 200, what)
    code, doc, what = call(AGENT_UID, "PATCH", "/v1/services/" .. name, {txt = {load = "3"}})
    lu.assertEquals(code, 200, what)
    code, doc, what = call(nil, "PATCH", "/v1/services/" .. name, {txt = {load = "4"}})
    lu.assertEquals(code, 200, what)
    lu.assertEquals(doc.txt.load, "4", what)
    code, _, what = call(nil, "DELETE", "/v1/services/" .. name)
    lu.assertEquals(code, 200, what)

    -- a registration bound to its connection is its uid's too
    local bound = S:uniq("bound")
    local s = S:bg("h1", ("exec setpriv --reuid=%d --regid=%d --clear-groups curl -sS -N --max-time 60 "
        .. "--unix-socket %s -X PUT -H 'Content-Type: application/json' --data-binary '{\"port\": 9002}' "
        .. "http://lmdisc/v1/services/%s"):format(OWNER, OWNER, q(SOCK), bound))
    -- (taken: announced as soon as avahi-daemon lets this uid in, which the
    -- lab's system bus may not; ownership does not wait for it)
    await(a, 'registered service "' .. bound .. '"', 10)
    refused(403, ('"%s" was registered by uid %d'):format(bound, OWNER), call(OTHER, "DELETE", "/v1/services/" .. bound))
    lu.assertTrue(s:running(), s:output())
    code, _, what = call(OWNER, "DELETE", "/v1/services/" .. bound)
    lu.assertEquals(code, 200, what)
    lu.assertEquals(s:wait(5), 0, s:output())
    lu.assertStrContains(s:output(), '"state":"withdrawn"')

    -- the agent's user drains
    code, doc, what = call(AGENT_UID, "POST", "/v1/self/drain", {grace = 1})
    lu.assertEquals(code, 202, what)
    lu.assertEquals(doc.state, "draining", what)
    await(a, "drain: announcing status=draining", 5)
    lu.assertTrue(a:running(), a:output())
end

function TestApiOwners:test_root_drains_an_agent_of_another_user()
    local a = agent(AGENT_UID)
    local code, doc, what = call(nil, "POST", "/v1/self/drain", {grace = 1})
    lu.assertEquals(code, 202, what)
    lu.assertEquals(doc.state, "draining", what)
    await(a, "drain: announcing status=draining", 5)
end

function TestApiOwners:test_a_case_variant_of_a_taken_name_is_409()
    local conf = S:uniq("gpu")
    local a = agent(nil, ("announce { port = 8100, name = %q }\n"):format(conf), "ttl = 60, include_self = true")
    await(a, 'announced "' .. conf .. '"', 15)
    local TAKEN = "is already announced by this agent"
    refused(409, TAKEN, call(OWNER, "PUT", "/v1/services/" .. conf:upper() .. "?ttl=30", {port = 9100}))
    -- registered ones, in either direction, connection-bound or with a ttl
    local reg = S:uniq("Svc-A")
    local code, _, what = call(OWNER, "PUT", "/v1/services/" .. reg .. "?ttl=30", {port = 9101})
    lu.assertEquals(code, 201, what)
    for _, variant in ipairs({reg:lower(), reg:upper(), reg}) do
        refused(409, TAKEN, call(OTHER, "PUT", "/v1/services/" .. variant .. "?ttl=30", {port = 9102}))
        refused(409, TAKEN, call(OWNER, "PUT", "/v1/services/" .. variant .. "?ttl=30", {port = 9102}))
    end
    local curl = ("exec setpriv --reuid=%d --regid=%d --clear-groups curl -sS -N --max-time 30 --unix-socket %s "
        .. "-X PUT -H 'Content-Type: application/json' --data-binary '{\"port\": 9103}' http://lmdisc/v1/services/%s")
    local s = S:bg("h1", curl:format(OTHER, OTHER, q(SOCK), reg:lower()))
    lu.assertEquals(s:wait(10), 0, s:output())
    lu.assertStrContains(s:output(), TAKEN)
    -- one service under its one name, found by any spelling
    local mine = services()
    lu.assertNotNil(mine[reg])
    lu.assertNil(mine[reg:lower()])
    code, _, what = call(OWNER, "PATCH", "/v1/services/" .. reg:lower(), {txt = {k = "v"}})
    lu.assertEquals(code, 200, what)
    -- and peers by any spelling
    await(a, 'join "' .. conf .. '"', 15)
    local doc
    code, doc, what = call(OTHER, "GET", "/v1/peers/" .. conf:upper())
    lu.assertEquals(code, 200, what)
    lu.assertEquals(doc.name, conf, what)
    code, _, what = call(OWNER, "DELETE", "/v1/services/" .. reg:upper())
    lu.assertEquals(code, 200, what)
    lu.assertNil(services()[reg])
end

function TestApiOwners:test_reserved_txt_keys_are_refused_with_a_message()
    local flag = S:path("set")
    local a = agent(nil, [[
announce { port = 8200, name = "reserved-self" }
local tried = false
lmdisc.every(0.2, function()
  local f = not tried and io.open(]] .. ("%q"):format(flag) .. [[)
  if not f then return end
  f:close(); tried = true
  for _, key in ipairs { "lmd-live", "LMD-Sig", "lmd-anything" } do
    local ok, err = lmdisc.set_txt { [key] = "1", load = "2" }
    lmdisc.log.info("SET_TXT %s %s %s", key, tostring(ok), tostring(err))
  end
  local ok, err = lmdisc.set_txt { lmdx = "1" }
  lmdisc.log.info("SET_TXT lmdx %s %s", tostring(ok), tostring(err))
end)
]])
    local RESERVED = "is reserved: keys beginning with 'lmd-' are lmdisc's own (signatures, liveness); choose another name"
    for _, key in ipairs({"lmd-sig", "lmd-cert", "lmd-live", "LMD-Live", "lmd-"}) do
        refused(400, ("the TXT key '%s' %s"):format(key, RESERVED),
            call(OWNER, "PUT", "/v1/services/" .. S:uniq("forged") .. "?ttl=30", {port = 9200, txt = {[key] = "x"}}))
    end
    local name = S:uniq("plain")
    local code, _, what = call(OWNER, "PUT", "/v1/services/" .. name .. "?ttl=30", {port = 9201, txt = {lmdx = "1"}})
    lu.assertEquals(code, 201, what)
    refused(400, "the TXT key 'lmd-live' " .. RESERVED,
        call(OWNER, "PATCH", "/v1/services/" .. name, {txt = {["lmd-live"] = "1/60", load = "3"}}))
    refused(400, "the TXT key 'lmd-flag' " .. RESERVED,
        call(OWNER, "PATCH", "/v1/services/" .. name, {txt = {["lmd-flag"] = true}}))
    local mine, body = services()
    lu.assertEquals(mine[name].txt, {lmdx = "1"}, body) -- nothing half-applied

    -- a policy's set_txt: nil and the message, nothing applied
    await(a, 'announced "reserved%-self"', 15)
    write(flag, "1")
    for _, key in ipairs({"lmd-live", "LMD-Sig", "lmd-anything"}) do
        local k = (key:gsub("%-", "%%-"))
        await(a, ("SET_TXT %s nil the TXT key '%s' is reserved"):format(k, k), 10)
    end
    await(a, "SET_TXT lmdx true nil", 5)
    local _, self = call(nil, "GET", "/v1/self")
    lu.assertEquals(self.txt, {lmdx = "1"}, cjson.encode(self))
end

-- Registrations that hold no connection (?ttl) are bounded per uid too:
-- one uid that registers as many as it can (64 were the whole agent's)
-- leaves room for every other user, the agent's own included.
function TestApiOwners:test_one_uids_registrations_leave_room_for_other_uids()
    local a = agent(AGENT_UID)
    local base = S:uniq("hog")
    local _, out = S.lab:exec("h1", ("for i in $(seq 64); do setpriv --reuid=%d --regid=%d --clear-groups curl -s "
        .. "--max-time 5 --unix-socket %s -X PUT -H 'Content-Type: application/json' --data-binary "
        .. "\"{\\\"port\\\": $((9300 + i))}\" -w ' %%{http_code}\\n' http://lmdisc/v1/services/%s_$i?ttl=120; done")
        :format(OTHER, OTHER, q(SOCK), base))
    local created, limited = 0, 0
    for code in out:gmatch(" (%d%d%d)\n") do
        if code == "201" then created = created + 1 elseif code == "429" then limited = limited + 1 end
    end
    lu.assertEquals(created, 16, out)
    lu.assertEquals(limited, 48, out)
    lu.assertStrContains(out, ("uid %d has 16 registered services, the most one user may; withdraw some first"):format(
        OTHER))
    -- the others are not refused
    for _, uid in ipairs({OWNER, AGENT_UID}) do
        local code, doc, what = call(uid, "PUT", "/v1/services/" .. S:uniq("room") .. "?ttl=60", {port = 9400})
        lu.assertEquals(code, 201, what)
        lu.assertEquals(doc.uid, uid, what)
    end
    -- a withdrawn one frees its owner's place
    lu.assertEquals((call(OTHER, "DELETE", "/v1/services/" .. base .. "_1")), 200)
    local code, _, what = call(OTHER, "PUT", "/v1/services/" .. base .. "_x?ttl=60", {port = 9401})
    lu.assertEquals(code, 201, what)
    -- users together (OTHER 16, OWNER 1 so far) hold at most 48: the rest
    -- stays for root and the agent's user
    local function fill(uid, n)
        local _, o = S.lab:exec("h1", ("for i in $(seq %d); do setpriv --reuid=%d --regid=%d --clear-groups curl -s "
            .. "--max-time 5 --unix-socket %s -X PUT -H 'Content-Type: application/json' --data-binary "
            .. "'{\"port\": 9500}' -w ' %%{http_code}\n' http://lmdisc/v1/services/%s_%d_$i?ttl=120; done")
            :format(n, uid, uid, q(SOCK), base, uid))
        return select(2, o:gsub(" 201\n", "")), o
    end
    lu.assertEquals(fill(4601, 16), 16)
    local n, o = fill(4602, 16)
    lu.assertEquals(n, 15, o)
    lu.assertStrContains(o, "users other than root and the agent's own hold 48 registered services, the most they "
        .. "may together; withdraw some first")
    code, _, what = call(AGENT_UID, "PUT", "/v1/services/" .. S:uniq("admin") .. "?ttl=60", {port = 9402})
    lu.assertEquals(code, 201, what)
    lu.assertTrue(a:running(), a:output())
end

os.exit(lu.LuaUnit.run())
