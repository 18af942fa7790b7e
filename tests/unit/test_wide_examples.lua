-- examples/wide-area/: the BIND and Knot configurations (zone, liveness
-- zone, grants) are accepted by the servers' own checkers, named-checkconf
-- -z (which loads the zone files too) and knotc conf-check.  Nothing is
-- served: the checkers only read files.  Skipped where a checker is not
-- installed.
local lu = require "luaunit"

local SRC = os.getenv("LMDISC_SRC") or "."
local EX = SRC .. "/examples/wide-area"

local function sh(cmd)
    local p = io.popen(cmd .. " 2>&1")
    local out = p:read("a")
    local ok, _, code = p:close()
    return ok, out, code
end

local function have(tool) return (sh("command -v " .. tool)) end

local function read(path)
    local f = assert(io.open(path))
    local s = f:read("a")
    f:close()
    return s
end

local function write(path, s)
    local f = assert(io.open(path, "w"))
    f:write(s)
    f:close()
end

local tmp
local function keys()
    for _, k in ipairs({ "admin", "gpu1", "gpu2", "sweeper", "xfr" }) do
        assert(sh(("tsig-keygen -a hmac-sha256 %s-key > %s/keys/%s.key"):format(k, tmp, k)))
    end
end

local function setup()
    tmp = os.tmpname()
    os.remove(tmp)
    assert(sh("mkdir -p " .. tmp .. "/keys " .. tmp .. "/zones"))
    for _, z in ipairs({ "sd.example.org.zone", "_live.sd.example.org.zone" }) do
        write(tmp .. "/zones/" .. z, read(EX .. "/" .. z))
    end
end

TestWideExamples = {}
function TestWideExamples:setUp() setup() end
function TestWideExamples:tearDown() if tmp then sh("rm -rf " .. tmp) end end

function TestWideExamples:test_bind_configuration_and_zones_load()
    if not have("named-checkconf") or not have("tsig-keygen") then lu.skip("no named-checkconf / tsig-keygen") end
    keys()
    local conf = read(EX .. "/bind/named.conf.local")
        :gsub("/etc/bind/keys/", tmp .. "/keys/"):gsub("/var/lib/bind/", tmp .. "/zones/")
    write(tmp .. "/named.conf", ('options { directory "%s"; };\n'):format(tmp) .. conf)
    local ok, out = sh("named-checkconf -z " .. tmp .. "/named.conf")
    lu.assertTrue(ok, out)
    lu.assertStrContains(out, "zone sd.example.org/IN: loaded serial 1")
    lu.assertStrContains(out, "zone _live.sd.example.org/IN: loaded serial 1")
end

-- the site's secondaries (examples/wide-area/bind/named.conf.secondary,
-- knot/knot-secondary.conf): each is checked as its server would read it
function TestWideExamples:test_bind_secondary_configuration_is_accepted()
    if not have("named-checkconf") or not have("tsig-keygen") then lu.skip("no named-checkconf / tsig-keygen") end
    keys()
    local conf = read(EX .. "/bind/named.conf.secondary")
        :gsub("/etc/bind/keys/", tmp .. "/keys/"):gsub("/var/cache/bind/", tmp .. "/zones/")
    write(tmp .. "/named.conf", ('options { directory "%s"; };\n'):format(tmp) .. conf)
    local ok, out = sh("named-checkconf -z " .. tmp .. "/named.conf")
    lu.assertTrue(ok, out)
    -- the primary and its key are what the file says
    lu.assertStrContains(conf, "primaries { 10.0.0.53 key xfr-key; }")
    -- and the primary's file NOTIFYs the secondaries with the same key
    lu.assertStrContains(read(EX .. "/bind/named.conf.local"), "also-notify { 10.1.0.53 key xfr-key;")
    -- the agents' own NOTIFYs (wide_area.also_notify) are taken by their keys
    lu.assertStrContains(conf, "allow-notify { key gpu1-key; key gpu2-key; };")
end

function TestWideExamples:test_knot_secondary_configuration_is_accepted()
    if not have("knotc") then lu.skip("no knotc") end
    local secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="
    local conf = read(EX .. "/knot/knot-secondary.conf"):gsub('secret: "[^"]*"', "secret: " .. secret)
        :gsub("/var/lib/knot/", tmp .. "/zones/")
    conf = ("server:\n    rundir: %q\ndatabase:\n    storage: %q\n"):format(tmp, tmp) .. conf
    write(tmp .. "/knot.conf", conf)
    local ok, out = sh("knotc -c " .. tmp .. "/knot.conf conf-check")
    lu.assertTrue(ok, out)
    lu.assertStrContains(out, "Configuration is valid")
    lu.assertStrContains(read(EX .. "/knot/knot.conf"), "notify: [ secondary-1, secondary-2 ]")
    -- the agents' own NOTIFYs (wide_area.also_notify) are taken by their keys
    lu.assertStrContains(conf, "acl: [ notify-from-primary, notify-from-agents, transfer ]")
end

function TestWideExamples:test_knot_configuration_is_accepted()
    if not have("knotc") then lu.skip("no knotc") end
    local secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="
    local conf = read(EX .. "/knot/knot.conf"):gsub('secret: "[^"]*"', "secret: " .. secret)
        :gsub("/var/lib/knot/", tmp .. "/zones/")
    conf = ("server:\n    rundir: %q\ndatabase:\n    storage: %q\n"):format(tmp, tmp) .. conf
    write(tmp .. "/knot.conf", conf)
    local ok, out = sh("knotc -c " .. tmp .. "/knot.conf conf-check")
    lu.assertTrue(ok, out)
    lu.assertStrContains(out, "Configuration is valid")
end

os.exit(lu.LuaUnit.run())
