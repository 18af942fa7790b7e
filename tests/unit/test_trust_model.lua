-- The trust model, as a property: a reference model of the verdict, written
-- from the table in docs/guide/trust.md ("The trust model"), and the
-- agent's verdict code (the registry and the verifier as the agent wires
-- them, with real keys and signatures: tests/unit/trust/model_driver.c)
-- are fed the same random sequences of signed, unsigned, replayed, expired,
-- revoked, renamed and tampered records, fleet changes, the clock moving
-- and the wall clock set ahead or back under a monotonic clock that does
-- not move (the agent's clock watch: every peer judged again); after every
-- step the events and what each name shows must agree.
--
--   lua5.4 tests/unit/test_trust_model.lua          (CI: 2,000 sequences)
--   LMD_TRUST_MODEL_RUNS=200000 LMD_TRUST_MODEL_SEED=7 lua5.4 tests/unit/test_trust_model.lua
--                                                    (a campaign; any seed)
local lu = require "luaunit"

local DRIVER = (os.getenv("LMDISC_BUILD") or "build") .. "/test_trust_model_driver"
local RUNS = tonumber(os.getenv("LMD_TRUST_MODEL_RUNS") or "2000")
local SEED = tonumber(os.getenv("LMD_TRUST_MODEL_SEED") or tostring(os.time()))
local STEPS = 14

local T0 = 1700000000
local MAX_AHEAD, SKEW = 86400, 300 -- the table: "at most 24 h ahead (+ 5 min of clock skew)"

-- The fixture both sides are given: fleet keys, and host keys certified
-- by one of them for a period and some names.
local HOSTS = {
    [0] = { fleet = 0, nb = T0 - 1000, na = T0 + 100000, names = { "a1" } },
    [1] = { fleet = 0, nb = T0 + 3000, na = T0 + 60000, names = { "b", "b-*" } },
    [2] = { fleet = 1, nb = T0 - 1000, na = T0 + 20000, names = { "*" } },
    [3] = { fleet = 0, nb = T0 - 1000, na = T0 + 8000, names = { "?1*" } },
}
local NAMES = { "a1", "a1 #2", "a1 #02", "A1", "a1x", "b", "b-1", "b #3", "bb", "z1", "b1" }

-- ---- The model (docs/guide/trust.md, "The trust model") -------------------

local function glob(p, s)
    -- '*' any run, '?' one character (ASCII here), letters in any case
    local pat = "^" .. p:lower():gsub("[%^%$%(%)%%%.%[%]%+%-]", "%%%0"):gsub("%*", ".*"):gsub("%?", ".") .. "$"
    return s:lower():match(pat) ~= nil
end

-- "names": a pattern matches it, or it is BASE #N (N without a leading
-- zero, as avahi renames) and one matches BASE
local function covers(names, name)
    local base = name:match("^(.+) #[1-9]%d*$")
    for _, p in ipairs(names) do
        if glob(p, name) or (base and glob(p, base)) then return true end
    end
    return false
end

local Model = {}
Model.__index = Model

-- Names travel with '_' for ' ' (the driver reads words).
local function esc(name) return (name:gsub(" ", "_")) end

function Model.new(t, mask)
    return setmetatable({ t = t, mask = mask, revoked = {}, newest = {}, peers = {} }, Model)
end

-- The verdict, in the table's order: the first row that fails names it.
-- A trusted one is noted as the newest for its signer and name when it is.
function Model:verdict(r)
    local t = self.t
    if not r.host then return "unsigned" end
    local h = HOSTS[r.host]
    if self.mask & (1 << h.fleet) == 0 then return "unknown fleet" end
    if t < h.nb then return "certificate not yet valid" end
    if t >= h.na then return "certificate expired" end
    if self.revoked[r.host] then return "revoked" end
    if not covers(h.names, r.name) then return "name not covered" end
    if r.expiry <= t then return "signature expired" end
    if r.expiry > t + MAX_AHEAD + SKEW then return "signature expires too far ahead" end
    if r.tampered then return "bad signature" end
    local key = r.host .. "\n" .. r.name:lower()
    local n = self.newest[key]
    if n and r.issued < n.issued and t < n.expiry then return "superseded" end
    if r.badaddr then return "address not signed" end
    if not n or r.issued > n.issued or n.expiry <= t then self.newest[key] = { issued = r.issued, expiry = r.expiry } end
    return "trusted"
end

local function same(a, b)
    return a.host == b.host and a.issued == b.issued and a.expiry == b.expiry and a.v == b.v and
        a.tampered == b.tampered and a.badaddr == b.badaddr
end

local function sorted(peers)
    local names = {}
    for name in pairs(peers) do names[#names + 1] = name end
    table.sort(names)
    return names
end

-- Seen with require: trusted and nothing else; a peer that comes to be
-- trusted joins, one that no longer is leaves as "untrusted".
function Model:show(p, out)
    local vis = p.status == "trusted"
    if vis and not p.shown then out[#out + 1] = "E join " .. esc(p.rec.name)
    elseif not vis and p.shown then out[#out + 1] = "E leave " .. esc(p.rec.name) .. " untrusted" end
    p.shown = vis
end

function Model:judge_all(out)
    for _, name in ipairs(sorted(self.peers)) do
        local p = self.peers[name]
        p.status = self:verdict(p.rec)
        self:show(p, out)
    end
end

-- A record reported for its name.  Never shown instead of a trusted one
-- unless trusted itself ("a trusted record is never displaced by an
-- untrusted one"); the same record again changes nothing.  Then every
-- verdict is what it is now: a newer signature for a name makes an older
-- one shown under that name in another case superseded.
function Model:rec(r, out)
    self:rec1(r, out)
    self:judge_all(out)
end

function Model:rec1(r, out)
    local p = self.peers[r.name]
    if p and same(p.rec, r) then return end
    local was_trusted = p and p.status == "trusted"
    local v = self:verdict(r)
    if was_trusted and v ~= "trusted" then return end
    if not p then
        p = { shown = false }
        self.peers[r.name] = p
    end
    p.rec, p.status = r, v
    local was_shown = p.shown
    self:show(p, out)
    if was_shown and p.shown then out[#out + 1] = "E update " .. esc(r.name) end
end

function Model:gone(name, out)
    local p = self.peers[name]
    if not p then return end
    if p.shown then out[#out + 1] = "E leave " .. esc(name) .. " goodbye" end
    self.peers[name] = nil
end

function Model:state()
    local parts = { "S" }
    for _, name in ipairs(sorted(self.peers)) do
        local p = self.peers[name]
        parts[#parts + 1] = ("%s=%s,%s,%d"):format(esc(name), p.status, p.rec.v .. (p.rec.tampered and "x" or ""),
            p.shown and 1 or 0)
    end
    return table.concat(parts, " ")
end

-- ---- Random sequences ------------------------------------------------------

local function pick(t) return t[math.random(#t)] end

-- One sequence: the driver's script and what the model expects of it.
local function sequence(script, expect)
    local m = Model.new(T0 + math.random(0, 5000), math.random(0, 3))
    script[#script + 1] = ("reset %d %d"):format(m.t, m.mask)
    expect[#expect + 1] = "S"
    local history = {}
    for _ = 1, STEPS do
        local out, x = {}, math.random()
        if x < 0.50 or (x < 0.55 and #history == 0) then
            local host = math.random() < 0.85 and math.random(0, 3) or nil
            local issued = m.t * 1000 + math.random(-400000, 2000)
            local r = { name = pick(NAMES), host = host, issued = issued,
                        expiry = issued // 1000 + pick { 20, 100, 700, 3000, 90000 }, v = tostring(math.random(3)),
                        tampered = host ~= nil and math.random() < 0.07, badaddr = math.random() < 0.07 }
            history[#history + 1] = r
            script[#script + 1] = ("rec %s %s %d %d %s %s"):format(esc(r.name), host or "-", r.issued,
                r.expiry, r.v, (r.tampered and "t" or "") .. (r.badaddr and "a" or "") .. "-")
            m:rec(r, out)
        elseif x < 0.55 then -- a record seen before, replayed byte for byte
            local r = pick(history)
            script[#script + 1] = ("rec %s %s %d %d %s %s"):format(esc(r.name), r.host or "-", r.issued,
                r.expiry, r.v, (r.tampered and "t" or "") .. (r.badaddr and "a" or "") .. "-")
            m:rec(r, out)
        elseif x < 0.72 then
            m.t = m.t + pick { 1, 15, 60, 400, 2500, 9000 }
            script[#script + 1] = ("clock %d"):format(m.t)
            m:judge_all(out)
        elseif x < 0.77 then -- the wall clock set (NTP, an operator): ahead or back
            local d = pick { -90000, -9000, -2500, -400, -15, 15, 400, 2500, 9000, 90000 }
            m.t = m.t + d
            script[#script + 1] = ("step %d"):format(d)
            m:judge_all(out)
        elseif x < 0.85 then
            local name = pick(NAMES)
            script[#script + 1] = "gone " .. esc(name)
            m:gone(name, out)
        elseif x < 0.95 then
            m.mask = math.random(0, 3)
            script[#script + 1] = ("trust %d"):format(m.mask)
            m:judge_all(out)
        else
            local h = math.random(0, 3)
            m.revoked[h] = true
            script[#script + 1] = ("revoke %d"):format(h)
            m:judge_all(out)
        end
        for _, l in ipairs(out) do expect[#expect + 1] = l end
        expect[#expect + 1] = m:state()
    end
end

local function run_driver(script)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(("fleet 0\nfleet 1\n"))
    for i = 0, #HOSTS do
        local h = HOSTS[i]
        f:write(("host %d %d %d %d %s\n"):format(i, h.fleet, h.nb, h.na, table.concat(h.names, " ")))
    end
    f:write(table.concat(script, "\n"), "\n")
    f:close()
    local p = assert(io.popen(DRIVER .. " < " .. path .. " 2>/dev/null"))
    local lines = {}
    for l in p:lines() do lines[#lines + 1] = l end
    local ok = p:close()
    os.remove(path)
    return lines, ok
end

TestTrustModel = {}

function TestTrustModel:test_the_model_and_the_agent_agree_on_every_step()
    math.randomseed(SEED)
    local script, expect, starts = {}, {}, {}
    for i = 1, RUNS do
        starts[#expect + 1] = { i = i, line = #script + 1 }
        sequence(script, expect)
    end
    local got, ok = run_driver(script)
    lu.assertTrue(ok, "the driver failed")
    -- positive evidence the sequences exercise what they claim to
    local seen = {}
    for _, l in ipairs(expect) do for word in l:gmatch("=([%a ]+),") do seen[word] = true end end
    for _, want in ipairs { "trusted", "unsigned", "unknown fleet", "certificate not yet valid", "certificate expired",
                            "revoked", "name not covered", "signature expired", "signature expires too far ahead",
                            "bad signature", "superseded", "address not signed" } do
        lu.assertTrue(seen[want], "no step ever judged '" .. want .. "': the generator misses a case")
    end
    for n = 1, math.max(#expect, #got) do
        if got[n] ~= expect[n] then
            local s = 1
            for k in pairs(starts) do if k <= n and k > s then s = k end end
            local from = starts[s]
            local ctx = {}
            for j = from.line, math.min(from.line + STEPS, #script) do ctx[#ctx + 1] = script[j] end
            lu.fail(("sequence %d (seed %d) disagrees at output line %d:\n  model: %s\n  agent: %s\nsequence:\n%s")
                :format(from.i, SEED, n, tostring(expect[n]), tostring(got[n]), table.concat(ctx, "\n")))
        end
    end
    print(("# %d sequences of %d steps (seed %d): %d lines agree"):format(RUNS, STEPS, SEED, #expect))
end

-- Fixed sequences, each a case the random ones reach rarely: the same
-- script to both sides, the model's expectations computed as above.
local function agree(lines)
    local m, script, expect = nil, {}, {}
    for _, l in ipairs(lines) do
        local out, w = {}, {}
        for x in l:gmatch("%S+") do w[#w + 1] = x end
        script[#script + 1] = l
        if w[1] == "reset" then
            m = Model.new(tonumber(w[2]), tonumber(w[3]))
        elseif w[1] == "rec" then
            local host = w[3] ~= "-" and tonumber(w[3]) or nil
            m:rec({ name = w[2]:gsub("_", " "), host = host, issued = tonumber(w[4]), expiry = tonumber(w[5]),
                    v = w[6], tampered = w[7]:find("t") ~= nil, badaddr = w[7]:find("a") ~= nil }, out)
        elseif w[1] == "clock" then
            m.t = tonumber(w[2])
            m:judge_all(out)
        elseif w[1] == "step" then
            m.t = m.t + tonumber(w[2])
            m:judge_all(out)
        elseif w[1] == "gone" then
            m:gone(w[2]:gsub("_", " "), out)
        end
        for _, x in ipairs(out) do expect[#expect + 1] = x end
        expect[#expect + 1] = m:state()
    end
    local got, ok = run_driver(script)
    lu.assertTrue(ok, "the driver failed")
    lu.assertEquals(table.concat(got, "\n"), table.concat(expect, "\n"), table.concat(script, "\n"))
    return got
end

-- The wall clock set back: a newer signature that had expired is valid
-- again, so the older state it superseded stays superseded (the row: "no
-- newer signature ... that is still valid"), even when the newer one was
-- no longer shown when the clock was set (its peer said goodbye) and the
-- agent saw other names meanwhile.
function TestTrustModel:test_a_clock_set_back_never_revives_an_older_state()
    local got = agree {
        ("reset %d 3"):format(T0),
        ("rec a1 0 %d %d 1 -"):format(T0 * 1000, T0 + 3000),          -- the older state, kept by an attacker
        ("rec a1 0 %d %d 2 -"):format((T0 + 10) * 1000, T0 + 100),    -- the newer one
        ("clock %d"):format(T0 + 200),                                -- it expires: a1 leaves
        "gone a1",
        ("rec z1 2 %d %d 1 -"):format((T0 + 200) * 1000, T0 + 3000),   -- another name seen meanwhile
        "step -150",                                                  -- the wall clock set back: T0 + 51
        ("rec a1 0 %d %d 1 -"):format(T0 * 1000, T0 + 3000),          -- the older state replayed
    }
    lu.assertStrContains(got[#got], "a1=superseded,1,0")
end

os.exit(lu.LuaUnit.run())
