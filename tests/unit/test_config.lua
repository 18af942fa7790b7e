-- Unit tests for lmdisc.config (directives, defaults, validation messages),
-- driven through lmdisc.policy.load as `lmdisc check` uses it.
local lu = require "luaunit"
local config = require "lmdisc.config"
local policy = require "lmdisc.policy"
local lmdisc = require "lmdisc"

local function quiet_api()
  local logs = {}
  local api = { escape = lmdisc.escape, log = {}, logs = logs }
  for _, l in ipairs { "debug", "info", "warn", "error" } do
    api.log[l] = function(fmt, ...) logs[#logs + 1] = { level = l, message = fmt:format(...) } end
  end
  return api
end

-- Load configuration text as if it were the file "cfg.lua".
local function load(src, opts)
  opts = opts or {}
  opts.source = src
  opts.api = opts.api or quiet_api()
  return policy.load("cfg.lua", opts)
end

local function settings(src, overrides)
  local P, err = load(src, { overrides = overrides })
  lu.assertNil(err)
  return P.settings
end

local function load_error(src, opts)
  local P, err = load(src, opts)
  lu.assertNil(P, "configuration loaded although it should not")
  lu.assertIsString(err)
  return err
end

---------------------------------------------------------------------------
TestConfigDefaults = {}

function TestConfigDefaults:test_empty_configuration()
  local s = settings("")
  lu.assertNil(s.announce)
  lu.assertNil(s.health)
  lu.assertNil(s.checks)
  lu.assertEquals(s.registry, { ttl = 60, include_self = false })
  lu.assertEquals(s.policy, { deadline = 0.25, memory_mb = 32 })
  lu.assertEquals(s.api, { socket = "/run/lmdisc/agent.sock", socket_mode = 432, allow_remote = false })
  lu.assertEquals(s.log, { level = "info" })
  lu.assertEquals(config.defaults(), s)
end

function TestConfigDefaults:test_announce()
  local s = settings("announce { port = 8000 }")
  lu.assertEquals(s.announce, { port = 8000, type = "_lmserv._tcp", txt = {} })
end

function TestConfigDefaults:test_announce_all_fields()
  local s = settings([[announce { port = 8000, info = "gemma Q4", name = "box", type = "_llm._tcp",
    txt = { model = "gemma", n = 3, flag = true }, ttl = 30 }]])
  lu.assertEquals(s.announce, { port = 8000, info = "gemma Q4", name = "box", type = "_llm._tcp",
    txt = { model = "gemma", n = "3", flag = true }, ttl = 30 })
end

function TestConfigDefaults:test_registry_policy_api_log()
  local s = settings([[
registry { ttl = 5, include_self = true }
policy { deadline = 1, memory_mb = 64 }
api { socket = "/tmp/x.sock", socket_mode = 384, listen = "127.0.0.1:7380", allow_remote = true }
log { level = "debug" }
]])
  lu.assertEquals(s.registry, { ttl = 5, include_self = true })
  lu.assertEquals(s.policy, { deadline = 1, memory_mb = 64 })
  lu.assertEquals(s.api, { socket = "/tmp/x.sock", socket_mode = 384, listen = "127.0.0.1:7380", allow_remote = true })
  lu.assertEquals(s.log, { level = "debug" })
end

function TestConfigDefaults:test_health()
  local s = settings('announce { port = 8000 } health { tcp = 8000 }')
  lu.assertEquals(s.health, { tcp = 8000, interval = 2, timeout = 1, failures = 3, on_fail = "withdraw" })
  s = settings('announce { port = 8000 } health { http = "http://127.0.0.1:8000/health", on_fail = "status" }')
  lu.assertEquals(s.health.http, "http://127.0.0.1:8000/health")
  lu.assertEquals(s.health.on_fail, "status")
end

function TestConfigDefaults:test_checks()
  local s = settings("checks { tcp = true }")
  lu.assertEquals(s.checks, { tcp = true, interval = 1, timeout = 1, failures = 2, concurrency = 8 })
  s = settings('checks { http = "/health", concurrency = 2 }')
  lu.assertEquals(s.checks.http, "/health")
  lu.assertEquals(s.checks.concurrency, 2)
end

function TestConfigDefaults:test_integral_floats_become_integers()
  local s = settings("announce { port = 8e3 }")
  lu.assertEquals(math.type(s.announce.port), "integer")
end

function TestConfigDefaults:test_defaults_are_not_shared()
  local a = settings("announce { port = 1 }")
  a.announce.txt.x = "y"
  lu.assertEquals(settings("announce { port = 1 }").announce.txt, {})
end

function TestConfigDefaults:test_overrides()
  local s = settings("registry { ttl = 5 }", { registry = { include_self = true }, announce = { port = 9000 } })
  lu.assertEquals(s.registry, { ttl = 5, include_self = true })
  lu.assertEquals(s.announce.port, 9000)
  local err = load_error("", { overrides = { registry = { ttl = -1 } } })
  lu.assertEquals(err, "settings override: registry.ttl must be a number > 0 and <= 9000, got number -1")
  err = load_error("", { overrides = { registy = {} } })
  lu.assertStrContains(err, "unknown section 'registy' (did you mean 'registry'?)")
end

function TestConfigDefaults:test_every_field_is_documented()
  for _, sec in ipairs(config.sections) do
    lu.assertIsString(sec.doc, sec.name)
    for _, f in ipairs(sec.fields) do
      lu.assertIsString(f.doc, sec.name .. "." .. f.name)
      lu.assertNil(f.doc:find("\n"), "doc of " .. sec.name .. "." .. f.name .. " is one line")
      lu.assertStrContains(config.reference(), "| " .. f.name .. " |")
    end
  end
end

---------------------------------------------------------------------------
TestConfigErrors = {}

function TestConfigErrors:test_unknown_key_with_suggestion()
  lu.assertEquals(load_error("announce { prot = 8000 }"),
    "cfg.lua:1: announce: unknown key 'prot' (did you mean 'port'?)")
  lu.assertEquals(load_error("\n\nregistry { tll = 5 }"),
    "cfg.lua:3: registry: unknown key 'tll' (did you mean 'ttl'?)")
end

function TestConfigErrors:test_unknown_key_without_suggestion()
  lu.assertEquals(load_error("log { colour = true }"),
    "cfg.lua:1: log: unknown key 'colour' (known keys: level)")
end

function TestConfigErrors:test_wrong_types()
  lu.assertEquals(load_error('announce { port = "80" }'),
    'cfg.lua:1: announce.port must be an integer from 1 to 65535, got string "80"')
  lu.assertEquals(load_error("announce { port = 70000 }"),
    "cfg.lua:1: announce.port must be an integer from 1 to 65535, got number 70000")
  lu.assertEquals(load_error("announce { port = 80.5 }"),
    "cfg.lua:1: announce.port must be an integer from 1 to 65535, got number 80.5")
  lu.assertEquals(load_error("registry { ttl = 0 }"),
    "cfg.lua:1: registry.ttl must be a number > 0 and <= 9000, got number 0")
  lu.assertEquals(load_error('registry { include_self = "yes" }'),
    'cfg.lua:1: registry.include_self must be a boolean (true or false), got string "yes"')
  lu.assertEquals(load_error("policy { deadline = 11 }"),
    "cfg.lua:1: policy.deadline must be a number > 0 and <= 10, got number 11")
  lu.assertEquals(load_error("policy { memory_mb = 0.5 }"),
    "cfg.lua:1: policy.memory_mb must be a number from 1 to 65536, got number 0.5")
  lu.assertEquals(load_error("api { socket_mode = 1000 }"),
    "cfg.lua:1: api.socket_mode must be an integer from 0 to 511 (file mode, e.g. 432 = 0660), got number 1000")
  lu.assertEquals(load_error("announce { port = 1, txt = 'x' }"),
    'cfg.lua:1: announce.txt must be a table { key = "value" | number | true }, got string "x"')
end

function TestConfigErrors:test_enum_suggests()
  lu.assertEquals(load_error('log { level = "warn" }'),
    'cfg.lua:1: log.level must be one of "debug", "info", "warning", "error", got string "warn" (did you mean "warning"?)')
end

function TestConfigErrors:test_announce_checks()
  lu.assertEquals(load_error("announce { info = 'x' }"),
    "cfg.lua:1: announce.port is missing: give an integer from 1 to 65535, e.g. announce { port = 8000 }")
  lu.assertStrContains(load_error("announce { port = 1, txt = { ['a=b'] = 'x' } }"),
    "cfg.lua:1: announce.txt: TXT key may not contain '='")
  lu.assertStrContains(load_error("announce { port = 1, txt = { a = string.rep('x', 300) } }"),
    "at most 255 bytes")
  lu.assertStrContains(load_error("announce { port = 1, txt = { info = 'x' } }"),
    "the TXT key 'info' is set with info = ..., not inside txt")
  -- lmd-* keys are the agent's own (signatures, liveness), in any case
  lu.assertEquals(load_error("announce { port = 1,\n  txt = { model = 'm', ['lmd-sig'] = 'forged' } }"),
    "cfg.lua:1: announce.txt: the TXT key 'lmd-sig' is reserved: keys beginning with 'lmd-' are lmdisc's own "
    .. "(signatures, liveness); choose another name")
  lu.assertStrContains(load_error("announce { port = 1, txt = { ['LMD-Live'] = true } }"),
    "cfg.lua:1: announce.txt: the TXT key 'LMD-Live' is reserved")
  lu.assertEquals(settings("announce { port = 1, txt = { lmdx = 'y', ['lmd'] = 'z' } }").announce.txt,
    { lmdx = "y", lmd = "z" })
  lu.assertEquals(load_error("announce { port = 1, ttl = 4501 }"),
    "cfg.lua:1: announce.ttl must be a number from 1 to 4500, got number 4501")
  lu.assertStrContains(load_error("announce { port = 1, type = 'lmserv' }"),
    "cfg.lua:1: announce.type: service type 'lmserv' is invalid")
  lu.assertStrContains(load_error("announce { port = 1, name = '' }"), "announce.name must be a string of 1 to 63 bytes")
  lu.assertStrContains(load_error(("announce { port = 1, name = '%s' }"):format(("n"):rep(64))),
    "announce.name must be a string of 1 to 63 bytes")
  lu.assertStrContains(load_error("announce { port = 1, info = string.rep('x', 260) }"), "announce.info: ")
  lu.assertEquals(load_error("announce { port = 1, ttl = 0.5 }"),
    "cfg.lua:1: announce.ttl must be a number from 1 to 4500, got number 0.5")
end

function TestConfigErrors:test_health_and_checks()
  lu.assertEquals(load_error("announce { port = 1 } health { }"),
    'cfg.lua:1: health needs one of http = "http://127.0.0.1:8000/health" or tcp = 8000, '
      .. 'e.g. health { http = "http://127.0.0.1:8000/health" }')
  lu.assertEquals(load_error('announce { port = 1 } health { tcp = 1, http = "http://x/" }'),
    "cfg.lua:1: health give either http or tcp, not both")
  lu.assertStrContains(load_error('announce { port = 1 } health { http = "https://x/" }'), "https is not supported")
  lu.assertEquals(load_error('announce { port = 1 } health { http = "localhost:8000" }'),
    'cfg.lua:1: health.http must be a URL like "http://127.0.0.1:8000/health", got "localhost:8000"')
  lu.assertStrContains(load_error("health { tcp = 8000 }"),
    "cfg.lua:1: health checks our own announced service, but there is no announce")
  lu.assertStrContains(load_error('announce { port = 1 } health { tcp = 1, on_fail = "withdrew" }'),
    '(did you mean "withdraw"?)')
  lu.assertStrContains(load_error("checks { }"), "checks needs one of http")
  lu.assertStrContains(load_error("checks { tcp = false }"), "checks needs one of http")
  lu.assertStrContains(load_error('checks { http = "health" }'),
    "checks.http must be an HTTP path starting with '/'")
  lu.assertStrContains(load_error('api { listen = "7380" }'), 'api.listen must be "host:port"')
  lu.assertNotNil(load('api { listen = "[::1]:7380" }'))
end

function TestConfigDefaults:test_wide_area_and_mdns()
  local s = settings("")
  lu.assertNil(s.wide_area)
  lu.assertEquals(s.mdns, { enabled = true })
  s = settings('wide_area { domain = "sd.lab", server = "10.77.53.53", key = "/k" } mdns { enabled = false }')
  lu.assertEquals(s.wide_area, { domain = "sd.lab", server = "10.77.53.53", key = "/k", lease = 900, poll = 10 })
  lu.assertEquals(s.mdns, { enabled = false })
  s = settings('wide_area { domain = "sd.lab.", server = "fd77:0:0:53::53", key = "/k", lease = 60, poll = 1, host = "h1" }')
  lu.assertEquals(s.wide_area.host, "h1")
  -- poll in fractions of a second (issue 20: sub-second joins from a secondary)
  s = settings('wide_area { domain = "sd.lab", key = "/k", poll = 0.5 }')
  lu.assertEquals(s.wide_area.poll, 0.5)
  -- read: secondaries to read from, nearest first
  s = settings('wide_area { domain = "sd.lab", key = "/k", read = { "10.1.0.53", "fd77::53" } }')
  lu.assertEquals(s.wide_area.read, { "10.1.0.53", "fd77::53" })
end

function TestConfigErrors:test_wide_area_read()
  lu.assertStrContains(load_error('wide_area { domain = "sd.lab", key = "/k", read = { "ns1.sd.lab" } }'),
    "wide_area.read")
  lu.assertStrContains(load_error('wide_area { domain = "sd.lab", key = "/k", read = { "ns1.sd.lab" } }'),
    "not a host name")
  lu.assertStrContains(load_error('wide_area { domain = "sd.lab", key = "/k", read = {} }'),
    "at least one server address")
  lu.assertStrContains(load_error('wide_area { domain = "sd.lab", key = "/k", read = "10.1.0.53" }'), "wide_area.read")
end

function TestConfigErrors:test_wide_area()
  lu.assertEquals(load_error('wide_area { server = "10.0.0.53", key = "/k" }'),
    'cfg.lua:1: wide_area.domain is missing: give a DNS domain string like "sd.example.org", '
      .. 'e.g. wide_area { domain = "sd.example.org" }')
  -- no server: the SOA MNAME of the domain's zone, found when the agent starts
  lu.assertEquals(settings('wide_area { domain = "sd.lab", key = "/k" }').wide_area,
    { domain = "sd.lab", key = "/k", lease = 900, poll = 10 })
  lu.assertStrContains(load_error('wide_area { domain = "sd.lab", server = "10.0.0.53" }'),
    "wide_area.key is missing")
  lu.assertStrContains(load_error('wide_area { domain = "sd..lab", server = "10.0.0.53", key = "/k" }'),
    'wide_area.domain must be a DNS domain like "sd.example.org", got "sd..lab"')
  lu.assertStrContains(load_error('wide_area { domain = "local", server = "10.0.0.53", key = "/k" }'),
    "wide_area.domain must not be .local")
  lu.assertStrContains(load_error('wide_area { domain = "sd.lab", server = "ns1.lab", key = "/k" }'),
    'wide_area.server must be an IPv4 or IPv6 address like "10.0.0.53" (not a host name')
  lu.assertStrContains(load_error('wide_area { domain = "sd.lab", server = "10.0.0.300", key = "/k" }'),
    "wide_area.server must be an IPv4 or IPv6 address")
  lu.assertEquals(load_error('wide_area { domain = "sd.lab", server = "10.0.0.53", key = "/k", lease = 5 }'),
    "cfg.lua:1: wide_area.lease must be an integer from 10 to 86400, got number 5")
  lu.assertStrContains(load_error('wide_area { domain = "sd.lab", server = "10.0.0.53", key = "/k", pol = 5 }'),
    "wide_area: unknown key 'pol' (did you mean 'poll'?)")
  lu.assertStrContains(load_error('wide_area { domain = "sd.lab", server = "10.0.0.53", key = "/k", host = "a.b" }'),
    "wide_area.host must be one DNS label")
  lu.assertStrContains(load_error('mdns { enabled = "no" }'), "mdns.enabled must be a boolean (true or false)")
  lu.assertStrContains(load_error('announce { port = 1 } mdns { enabled = false }'),
    "mdns { enabled = false } with announce { } but no wide_area { }")
end

function TestConfigErrors:test_twice()
  lu.assertEquals(load_error("registry { ttl = 5 }\nlog { }\nregistry { ttl = 6 }"),
    "cfg.lua:3: registry given twice (first at cfg.lua:1); merge them into one registry { ... }")
end

function TestConfigErrors:test_directive_misuse()
  lu.assertEquals(load_error("announce(8000)"),
    "cfg.lua:1: announce takes a table, e.g. announce { port = 8000, info = \"gemma-2b-it Q4_0\", "
      .. "txt = { model = \"gemma-2b-it\" } }, got number 8000")
  lu.assertStrContains(load_error("registry { 60 }"),
    "cfg.lua:1: registry: unexpected value number 60 at position 1; write fields as name = value")
  lu.assertStrContains(load_error("anounce { port = 1 }"),
    "cfg.lua:1: unknown directive 'anounce' (did you mean 'announce'?)")
end

function TestConfigErrors:test_directive_inside_a_hook_raises_later()
  local P = assert(load("function on_join() registry { ttl = 1 } end"))
  local ok, err = pcall(P.env.registry, { ttl = 1 })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "can only be used at the top level of the configuration file")
end

function TestConfigErrors:test_syntax_error_has_file_and_line()
  lu.assertEquals(load_error("registry { ttl = 5 }\nannounce {\n  port = 8000\n"),
    "cfg.lua:4: '}' expected (to close '{' at line 2) near <eof>")
  lu.assertStrContains(load_error("x = = 1"), "cfg.lua:1:")
end

function TestConfigErrors:test_shebang_line_is_skipped_but_counted()
  lu.assertEquals(load_error("#!/usr/bin/lmdisc agent -c\nannounce { prot = 1 }"),
    "cfg.lua:2: announce: unknown key 'prot' (did you mean 'port'?)")
end

function TestConfigErrors:test_runtime_error_has_file_and_line_and_no_traceback()
  lu.assertEquals(load_error("local t\n\nlocal x = t.field"),
    "cfg.lua:3: attempt to index a nil value (local 't')")
  lu.assertEquals(load_error("log { }\nerror('custom failure')"), "cfg.lua:2: custom failure")
  -- an error without position still gets the configuration's line
  lu.assertEquals(load_error("log { }\n\nerror('no position', 0)"), "cfg.lua:3: no position")
end

function TestConfigErrors:test_real_file_path_in_messages()
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write("log { }\nannounce { port = 'x' }\n")
  f:close()
  local P, err = policy.load(path, { api = quiet_api() })
  os.remove(path)
  lu.assertNil(P)
  lu.assertEquals(err, path .. ":2: announce.port must be an integer from 1 to 65535, got string \"x\"")
  P, err = policy.load("/nonexistent/agent.lua", { api = quiet_api() })
  lu.assertNil(P)
  lu.assertStrContains(err, "cannot read configuration: /nonexistent/agent.lua")
end

---------------------------------------------------------------------------
TestConfigHooks = {}

function TestConfigHooks:test_hook_that_is_not_a_function()
  lu.assertEquals(load_error("filter = true"),
    "cfg.lua: filter must be a function, got boolean true (define it as: function filter(peer) ... end)")
  lu.assertStrContains(load_error('info = "gemma"'), "use announce { info = ... }")
  lu.assertStrContains(load_error("on_leave = {}"), "cfg.lua: on_leave must be a function, got table")
end

function TestConfigHooks:test_misspelt_hooks_warn()
  local P, err, warnings = load([[
function on_joined(peer) end
function fliter(peer) return true end
function Info(peer) end
function on_something() end
function helper() end
local function on_local() end
function on_leave(peer) end
]])
  lu.assertNil(err)
  lu.assertNotNil(P)
  lu.assertEquals(P.warnings, warnings)
  lu.assertEquals(#warnings, 4)
  -- sorted by name: Info, fliter, on_joined, on_something
  lu.assertStrContains(warnings[1], "cfg.lua:3: function 'Info' is not a hook lmdisc calls, did you mean 'info'?")
  lu.assertStrContains(warnings[2], "cfg.lua:2: function 'fliter' is not a hook lmdisc calls, did you mean 'filter'?")
  lu.assertStrContains(warnings[3], "cfg.lua:1: function 'on_joined' is not a hook lmdisc calls, did you mean 'on_join'?")
  lu.assertStrContains(warnings[4], "cfg.lua:4: function 'on_something' is not a hook lmdisc calls (hooks: filter,")
  lu.assertEquals(P:hooks(), { "on_leave" })
end

function TestConfigHooks:test_no_warnings_for_a_clean_file()
  local _, _, warnings = load("function filter(p) return true end\nfunction best_peer() end\nfunction init() end")
  lu.assertEquals(warnings, {})
end

---------------------------------------------------------------------------
TestConfigHelpers = {}

function TestConfigHelpers:test_suggest()
  lu.assertEquals(config.suggest("prot", { "port", "info" }), "port")
  lu.assertEquals(config.suggest("warn", { "debug", "warning" }), "warning")
  lu.assertEquals(config.suggest("FILTER", { "filter" }), "filter")
  lu.assertNil(config.suggest("zzzz", { "port" }))
  lu.assertEquals(config.distance("prot", "port"), 1)
  lu.assertEquals(config.distance("", "abc"), 3)
end

os.exit(lu.LuaUnit.run())
