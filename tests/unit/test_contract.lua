-- The contract between C and the Lua half (lua/lmdisc/): what both need is
-- written once, in C, and the Lua side, the Python package and the schema
-- are held to it.  Each check is also shown to fail on a disagreement.
local lu = require "luaunit"
local util = require "util"
local sh = util.sh
local read = util.read
local lines_of = util.lines_of
local lmdisc = require "lmdisc"
local config = require "lmdisc.config"
local policy = require "lmdisc.policy"
local sandbox = require "lmdisc.sandbox"
local testing = require "lmdisc.testing"
local SRC = assert(os.getenv("LMDISC_SRC"), "set LMDISC_SRC to the source tree")




--- text in a new temporary .lua file; its path
local function lua_file(text)
    local path = os.tmpname() .. ".lua"
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    return path
end

local function deep_copy(t)
    if type(t) ~= "table" then return t end
    local c = {}
    for k, v in pairs(t) do c[k] = deep_copy(v) end
    return c
end

---------------------------------------------------------------------------
-- The schema and the C field list (lmd_cfg_fields)

-- Which schema types each C kind can read (src/policy/settings.c): only
-- values in its range; a UINT takes the nearest whole number of a number
-- (announce.ttl: whole seconds on the wire), a PORT only integers.
local FITS = {
    str = function(f) return f.type == "string" end,
    num = function(f) return f.type == "number" or f.type == "integer" end,
    bool = function(f) return f.type == "boolean" end,
    uint = function(f)
        return (f.type == "integer" or f.type == "number") and f.min ~= nil and f.min >= 0
            and (f.max or math.huge) <= 0xffffffff
    end,
    port = function(f) return f.type == "integer" and f.min ~= nil and f.min >= 0 and (f.max or math.huge) <= 65535 end,
}

--- Problems between the schema's sections and C's fields, as sentences;
-- settings_c: the text of src/policy/settings.c (where "derived" fields are
-- read by hand).
local function contract_problems(sections, c_fields, settings_c)
    local out = {}
    local by_section = {}
    for _, s in ipairs(sections) do
        by_section[s.name] = {}
        for _, f in ipairs(s.fields) do by_section[s.name][f.name] = f end
    end
    local read_by_c = {}
    for _, cf in ipairs(c_fields) do
        local key = cf.section .. "." .. cf.name
        read_by_c[key] = true
        local f = by_section[cf.section] and by_section[cf.section][cf.name]
        if not f then
            out[#out + 1] = key .. ": C reads it (" .. cf.kind .. "), the schema has no such field"
        elseif f.c ~= nil then
            out[#out + 1] = key .. ": C reads it through its field list, the schema says c = " .. tostring(f.c)
        elseif not FITS[cf.kind](f) then
            out[#out + 1] = ("%s: C reads a %s, the schema gives %s"):format(key, cf.kind, config.expect(f))
        end
    end
    for _, s in ipairs(sections) do
        for _, f in ipairs(s.fields) do
            local key = s.name .. "." .. f.name
            if f.c == "derived" then
                local by_hand = settings_c:find('lua_getfield(L, idx, "' .. s.name .. '")', 1, true)
                    and settings_c:find('lua_getfield(L, -1, "' .. f.name .. '")', 1, true)
                local as_list = settings_c:find('read_strs(L, idx, "' .. s.name .. '", "' .. f.name .. '"', 1, true)
                if f.type ~= "table" or not (by_hand or as_list) then
                    out[#out + 1] = key .. ": marked derived, but src/policy/settings.c does not read it"
                end
            elseif f.c == nil and not read_by_c[key] then
                out[#out + 1] = key .. ": C does not read it; add it to lmd_cfg_fields or mark it c = false"
            elseif f.c ~= nil and f.c ~= false and f.c ~= "derived" then
                out[#out + 1] = key .. ": c must be nil, \"derived\" or false, got " .. tostring(f.c)
            end
        end
    end
    return out
end

TestSchemaAndCFields = {}

function TestSchemaAndCFields:test_they_agree()
    local fields = lmdisc.config_fields()
    lu.assertTrue(#fields >= 30, "C lists only " .. #fields .. " fields")
    lu.assertEquals(contract_problems(config.sections, fields, read("src/policy/settings.c")), {})
end

function TestSchemaAndCFields:test_every_disagreement_is_found()
    local settings_c = read("src/policy/settings.c")
    -- the problems once edit_schema(find, sections) and edit_fields(fields)
    -- have changed copies of the two sides
    local function problems(edit_schema, edit_fields)
        local sections, fields = deep_copy(config.sections), lmdisc.config_fields()
        local function find(sec, name) -- field, its section, its index
            for _, s in ipairs(sections) do
                for i, f in ipairs(s.fields) do
                    if s.name == sec and f.name == name then return f, s, i end
                end
            end
        end
        if edit_schema then edit_schema(find, sections) end
        if edit_fields then edit_fields(fields) end
        return table.concat(contract_problems(sections, fields, settings_c), "\n")
    end
    -- a field C reads is missing from the schema
    lu.assertStrContains(problems(function(find)
        local _, s, i = find("registry", "include_self")
        table.remove(s.fields, i)
    end), "registry.include_self: C reads it (bool), the schema has no such field")
    -- types that do not fit
    lu.assertStrContains(problems(function(find) find("registry", "ttl").type = "string" end),
        "registry.ttl: C reads a num")
    lu.assertStrContains(problems(function(find) find("announce", "ttl").type = "string" end),
        "announce.ttl: C reads a uint")
    lu.assertStrContains(problems(function(find) find("announce", "ttl").max = nil end),
        "announce.ttl: C reads a uint")
    lu.assertStrContains(problems(function(find) find("health", "tcp").type = "number" end),
        "health.tcp: C reads a port")
    lu.assertStrContains(problems(function(find) find("api", "socket_mode").min = -1 end),
        "api.socket_mode: C reads a uint")
    lu.assertStrContains(problems(function(find) find("health", "tcp").max = 70000 end),
        "health.tcp: C reads a port")
    lu.assertStrContains(problems(nil, function(fields) fields[1].kind = "bool" end),
        "announce.port: C reads a bool")
    -- a schema field C never reads, unless marked as the mantle's alone
    lu.assertStrContains(problems(function(find, sections)
        table.insert(sections[1].fields, { name = "colour", type = "string" })
    end), "announce.colour: C does not read it")
    lu.assertEquals(problems(function(find, sections)
        table.insert(sections[1].fields, { name = "colour", type = "string", c = false })
    end), "")
    lu.assertStrContains(problems(nil, function(fields)
        for i, f in ipairs(fields) do
            if f.section == "mdns" then table.remove(fields, i) break end
        end
    end), "mdns.enabled: C does not read it")
    -- derived fields must be read by hand, and only those
    lu.assertStrContains(problems(function(find, sections)
        table.insert(sections[1].fields, { name = "extra", type = "table", c = "derived" })
    end), "announce.extra: marked derived, but src/policy/settings.c does not read it")
    lu.assertStrContains(problems(function(find) find("log", "level").c = "derived" end),
        "log.level: C reads it through its field list")
end

---------------------------------------------------------------------------
-- Limits: exported from C, never copied

TestLimits = {}

function TestLimits:test_the_lua_half_uses_the_limits_c_exports()
    lu.assertEquals(lmdisc.MAX_TIMERS, 10000)
    lu.assertEquals(testing.MAX_TIMERS, lmdisc.MAX_TIMERS)
    lu.assertEquals(lmdisc.FILE_MAX, 4 * 1024 * 1024)
    lu.assertEquals(config.section.api.field.socket.max_len, lmdisc.SOCKET_PATH_MAX)
    lu.assertEquals(lmdisc.SOCKET_PATH_MAX, 107)
    -- `lmdisc announce --ttl` takes the same bound (tests/unit/test_cli.lua)
    lu.assertEquals(config.section.announce.field.ttl.max, lmdisc.RECORD_TTL_MAX)
    lu.assertEquals(lmdisc.RECORD_TTL_MAX, 4500)
    lu.assertEquals(lmdisc.TXT_RESERVED, "lmd-")
end

-- The schema is the only source of defaults; the library, which has no
-- schema, takes the same ttl (base/limits.h), and this holds them together.
function TestLimits:test_the_librarys_default_ttl_is_the_schemas()
    lu.assertEquals(config.defaults().registry.ttl, lmdisc.REGISTRY_TTL)
    lu.assertStrContains(config.section.announce.field.ttl.doc,
        ("half the registry's ttl (%d s)"):format(lmdisc.REGISTRY_TTL // 2))
end

-- What a policy may read whole: the same bound with and without the C module.
function TestLimits:test_file_cap_is_the_same_with_and_without_the_c_module()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(("x"):rep(lmdisc.FILE_MAX))
    f:close()
    for _, api in ipairs { lmdisc, {} } do
        local s = sandbox.fs(api).read_file(path)
        lu.assertEquals(s and #s, lmdisc.FILE_MAX)
    end
    f = assert(io.open(path, "a"))
    f:write("x")
    f:close()
    for _, api in ipairs { lmdisc, {} } do
        local s, err = sandbox.fs(api).read_file(path)
        lu.assertNil(s)
        lu.assertStrContains(err, "larger than")
    end
    os.remove(path)
end

-- lmdisc.timer and lmdisc.every refuse the same seconds in the simulation as
-- in the agent's VM (`lmdisc check` builds it), with the same words.
function TestLimits:test_timer_bounds_are_the_agents_in_the_simulation()
    local BIN = os.getenv("LMDISC_BIN")
    if not BIN then lu.skip("LMDISC_BIN is not set") end
    local path = lua_file("")
    local sim = testing.load(path)
    os.remove(path)
    local cases = {
        { "timer", lmdisc.TIMER_MAX + 1, "seconds must be from 0 to one year" },
        { "every", lmdisc.EVERY_MIN / 2, "every() needs at least 0.01 s" },
    }
    for _, c in ipairs(cases) do
        local fname, seconds, words = c[1], c[2], c[3]
        local ok, err = pcall(sim.api[fname], seconds, function() end)
        lu.assertFalse(ok)
        lu.assertStrContains(err, ("bad argument #1 to '%s' (%s)"):format(fname, words))
        local p = lua_file(("lmdisc.%s(%.17g, function() end)\n"):format(fname, seconds))
        local out = table.concat(lines_of(sh(BIN) .. " check " .. sh(p) .. " 2>&1"), "\n")
        os.remove(p)
        lu.assertStrContains(out, ("bad argument #1 to '%s' (%s)"):format(fname, words))
        -- and just inside the bound both take it
        ok = pcall(sim.api[fname], fname == "timer" and lmdisc.TIMER_MAX or lmdisc.EVERY_MIN, function() end)
        lu.assertTrue(ok)
    end
end

-- The values themselves appear nowhere in lua/: a copy would drift.
function TestLimits:test_no_copy_of_a_limit_in_the_lua_half()
    local copies = {}
    for _, rel in ipairs(lines_of("cd " .. sh(SRC) .. " && ls lua/lmdisc/*.lua")) do
        local text = read(rel)
        for _, pat in ipairs { "10000", "4 %* 1024 %* 1024", "4194304", "4 << 20", "max_len = 107", "31536000" } do
            if text:find(pat) then copies[#copies + 1] = rel .. ": " .. pat end
        end
    end
    lu.assertEquals(copies, {})
end

---------------------------------------------------------------------------
-- What counts as a change of a peer (LMD_CHANGES in src/registry/peers.h)

TestChanges = {}

function TestChanges:test_c_lists_them_in_order_with_who_finds_each()
    lu.assertEquals({ table.unpack(lmdisc.CHANGES) }, { "host", "port", "txt", "addresses", "info", "sources" })
    for _, c in ipairs(lmdisc.CHANGES) do
        lu.assertEquals(lmdisc.CHANGES[c], c == "info" and "policy" or "registry", c)
    end
end

-- One peer, then the same peer with only the field of that change different:
-- the C registry, lmdisc.testing and Python each report exactly that change.
local BASE = { host = "a.local", port = 8000, txt = { model = "m" }, address = "10.0.0.1" }
local CHANGED = { host = "b.local", port = 9000, txt = { model = "n" }, address = "10.0.0.2" }

function TestChanges:test_the_c_registry_reports_each_change_by_its_field()
    local checked = 0
    for _, c in ipairs(lmdisc.CHANGES) do
        local key = c == "addresses" and "address" or c
        if BASE[key] ~= nil then
            local got
            local r = lmdisc.registry_new({ ttl = 60 }, function(kind, _, _, changes)
                if kind == "update" then got = changes end
            end)
            local inst = { name = "a:8000", proto = 4, complete = true }
            for k, v in pairs(BASE) do inst[k] = v end
            r:seen(inst, 1)
            inst[key] = CHANGED[key]
            r:seen(inst, 2)
            lu.assertEquals(got, { c })
            checked = checked + 1
        end
    end
    lu.assertEquals(checked, 4) -- host, port, txt, addresses (sources: not settable here)
end

function TestChanges:test_the_simulation_reports_what_the_registry_reports()
    local fields = { host = "b.local", port = 9000, txt = { model = "n" }, addresses = { "10.0.0.2" },
        sources = { "mdns", "dns" } }
    local path = lua_file("function on_update(p, old, changes) last = changes end\n")
    for _, c in ipairs(lmdisc.CHANGES) do
        if lmdisc.CHANGES[c] == "registry" then
            local sim = testing.load(path)
            sim:join { name = "a:8000", host = "a.local", txt = { model = "m" }, addresses = { "10.0.0.1" } }
            sim:update("a:8000", { [c] = fields[c] })
            lu.assertEquals(sim.env.last, { c }, c)
        end
    end
    -- and nothing else counts: another interface for the same address is no change
    local sim = testing.load(path)
    sim:join { name = "a:8000", addresses = { "10.0.0.1" } }
    lu.assertNil(sim:update("a:8000", { interfaces = { "eth1" } }))
    os.remove(path)
end

-- python/lmdisc/events.py keeps a copy (Python cannot read C): it must list
-- the same changes in the same order, and report each by its field.
local PY = [[
import json, sys
from lmdisc import events
from lmdisc.node import Node
base = {"name": "a:8000", "host": "a.local", "port": 8000, "txt": {"model": "m"}, "info": "m",
        "addresses": [{"address": "10.0.0.1", "family": 4, "interface": "eth0"}], "sources": ["mdns"]}
other = {"host": "b.local", "port": 9000, "txt": {"model": "n"}, "info": "n",
         "addresses": [{"address": "10.0.0.2", "family": 4, "interface": "eth0"}], "sources": ["dns"]}
args = sys.argv[1:]
if args[0] == "--drop":  # a copy that drifted: one change fewer
    events._CHANGES = tuple(c for c in events._CHANGES if c != args[1])
    args = args[2:]
out = {"list": list(events._CHANGES), "each": {}}
for c in args:
    new = dict(base, **{c: other[c]})
    out["each"][c] = list(events._changes(Node.from_json(base), Node.from_json(new)))
print(json.dumps(out))
]]

local function python_changes(names, drop)
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(PY)
    f:close()
    local cmd = "PYTHONPATH=" .. sh(SRC .. "/python") .. " PYTHONDONTWRITEBYTECODE=1 python3 " .. sh(script)
    if drop then cmd = cmd .. " --drop " .. sh(drop) end
    for _, n in ipairs(names) do cmd = cmd .. " " .. sh(n) end
    local out = table.concat(lines_of(cmd .. " 2>&1"), "\n")
    os.remove(script)
    return out
end

-- the list and the per-change answers out of Python's JSON, without a JSON library
local function parse_python(out)
    local list = {}
    for n in (out:match('"list": %[(.-)%]') or ""):gmatch('"([^"]+)"') do list[#list + 1] = n end
    local each = {}
    for k, v in (out:match('"each": {(.*)}') or ""):gmatch('"([^"]+)": %[(.-)%]') do
        each[k] = {}
        for n in v:gmatch('"([^"]+)"') do each[k][#each[k] + 1] = n end
    end
    return list, each
end

function TestChanges:test_the_python_copy_is_the_c_list()
    local names = { table.unpack(lmdisc.CHANGES) }
    local out = python_changes(names)
    local list, each = parse_python(out)
    lu.assertEquals(list, names, out)
    for _, c in ipairs(names) do lu.assertEquals(each[c], { c }, out) end
end

function TestChanges:test_a_python_copy_that_drifted_is_caught()
    -- what the check above sees if Python's copy had lost "sources"
    local names = { table.unpack(lmdisc.CHANGES) }
    local out = python_changes(names, "sources")
    local list, each = parse_python(out)
    lu.assertEquals(#list, #names - 1, out)
    lu.assertNotEquals(list, names)
    lu.assertEquals(each.sources, {}, out)
    lu.assertEquals(each.host, { "host" }, out)
end

---------------------------------------------------------------------------
-- The "routable" rule (base/node.c): one function, C's

TestRoutable = {}

function TestRoutable:test_one_rule_for_the_agent_and_the_simulation()
    lu.assertTrue(lmdisc.routable { txt = {} })
    lu.assertTrue(lmdisc.routable {})
    lu.assertTrue(lmdisc.routable { txt = { status = "up" } })
    lu.assertFalse(lmdisc.routable { txt = { status = "draining" } })
    lu.assertFalse(lmdisc.routable { txt = { status = "down" } })
    lu.assertTrue(lmdisc.routable { txt = { status = true } })
    local path = lua_file("")
    local sim = testing.load(path)
    os.remove(path)
    for i, status in ipairs { "up", "draining", "down", true } do
        local name = "p" .. i .. ":1"
        sim:join { name = name, txt = { status = status } }
        for _, p in ipairs(sim:peers()) do
            if p.name == name then lu.assertEquals(p.routable, lmdisc.routable(p), name) end
        end
    end
    -- what the agent's marshalling computes for a C node is the same rule
    local r = lmdisc.registry_new({ ttl = 60 })
    r:seen({ name = "d:1", port = 1, proto = 4, address = "10.0.0.1", txt = { status = "draining" },
        complete = true }, 1)
    lu.assertFalse(r:get("d:1").routable)
    lu.assertEquals(r:get("d:1").routable, lmdisc.routable(r:get("d:1")))
end

---------------------------------------------------------------------------
-- One deadline message, whichever guard stops the call

TestDeadline = {}

function TestDeadline:test_the_lua_guard_words_it_as_the_c_guard()
    local guard = policy.deadline_guard(0.05)
    local ok, err = guard(function() while true do end end)
    lu.assertFalse(ok)
    lu.assertStrContains(err, lmdisc.deadline_message(0.05))
    lu.assertStrContains(lmdisc.deadline_message(0.25), "exceeded its deadline of 0.25 s and was stopped")
end

-- The C guard, through `lmdisc check` (the agent's VM): a call stopped in
-- its tracks and one that swallowed the stop and returned read the same.
function TestDeadline:test_the_c_guard_says_it_the_same_way_both_times()
    local BIN = os.getenv("LMDISC_BIN")
    if not BIN then lu.skip("LMDISC_BIN is not set") end
    local d = config.defaults().policy.deadline
    local cases = {
        loop = "while true do end\n",
        swallowed = "local co = coroutine.create(function() while true do end end)\n"
            .. "assert(not coroutine.resume(co))\n",
    }
    for what, body in pairs(cases) do
        local path = lua_file(body)
        local out = table.concat(lines_of(sh(BIN) .. " check " .. sh(path) .. " 2>&1"), "\n")
        os.remove(path)
        lu.assertStrContains(out, lmdisc.deadline_message(d), false, what)
    end
end

---------------------------------------------------------------------------
-- The C -> mantle entry points: the list in src/policy/mantle.h
-- (LMD_MANTLE_FNS) is lua/lmdisc/runner.lua's functions, and no C but
-- mantle.c names one.

local function mantle_names(mantle_h)
    local names = {}
    for n in mantle_h:gmatch("\n%s*X%([%u_]+, ([%w_]+)%)") do names[#names + 1] = n end
    table.sort(names)
    return names
end

local function runner_functions(runner_lua)
    local fns = {}
    for n in runner_lua:gmatch("\nfunction R%.([%w_]+)%(") do fns[#fns + 1] = n end
    table.sort(fns)
    return fns
end

--- C files (path -> text) that reach into lmdisc.runner by themselves: they
-- name the module, or take one of its functions out of a table by name.
local function stray_calls(files, names)
    local out = {}
    for rel, text in pairs(files) do
        if rel ~= "src/policy/mantle.c" then
            if text:find('"lmdisc.runner"', 1, true) then out[#out + 1] = rel .. ": lmdisc.runner" end
            for _, n in ipairs(names) do
                if text:find('lua_getfield%(L, [^,]+, "' .. n .. '"%)') then out[#out + 1] = rel .. ": " .. n end
            end
        end
    end
    table.sort(out)
    return out
end

TestEntryPoints = {}

function TestEntryPoints:test_the_list_is_runners_functions()
    local names = mantle_names(read("src/policy/mantle.h"))
    lu.assertTrue(#names >= 10, "parsed only " .. #names .. " entry points")
    lu.assertEquals(names, runner_functions(read("lua/lmdisc/runner.lua")))
    -- and the runner module has exactly those
    local runner = require "lmdisc.runner"
    local have = {}
    for k, v in pairs(runner) do if type(v) == "function" then have[#have + 1] = k end end
    table.sort(have)
    lu.assertEquals(have, names)
end

function TestEntryPoints:test_c_calls_only_the_listed_ones_through_the_mantle()
    local files = {}
    for _, rel in ipairs(lines_of("cd " .. sh(SRC) .. " && find src -name '*.c'")) do files[rel] = read(rel) end
    local names = mantle_names(read("src/policy/mantle.h"))
    lu.assertEquals(stray_calls(files, names), {})
end

function TestEntryPoints:test_a_stray_call_is_caught()
    -- testrun.c as it was: it required the runner and took test_count by name
    local old = 'lua_getglobal(L, "require");\nlua_pushliteral(L, "lmdisc.runner");\n'
        .. 'lua_getfield(L, -1, "test_count");\n'
    lu.assertEquals(stray_calls({ ["src/policy/testrun.c"] = old, ["src/policy/mantle.c"] = old },
        { "test_count", "load" }), { "src/policy/testrun.c: lmdisc.runner", "src/policy/testrun.c: test_count" })
    -- a runner function missing from the list (or listed and gone)
    lu.assertNotEquals(mantle_names("\n    X(LOAD, load) /* ... */"),
        runner_functions("\nfunction R.load(p)\nend\nfunction R.test_count()\nend\n"))
end

os.exit(lu.LuaUnit.run())
