-- Argument parsing: every misuse gets one clear line, a --help hint and a
-- non-zero exit, before anything touches the network.
local lu = require "luaunit"
local San = require "sanitizer"
local BIN = assert(os.getenv("LMDISC_BIN"), "set LMDISC_BIN to the lmdisc binary")

local function sh(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function run(...)
    local args = {}
    for i, a in ipairs({...}) do args[i] = sh(a) end
    local out = os.tmpname()
    local cmd = string.format("%s %s >%s 2>&1", sh(BIN), table.concat(args, " "), out)
    local _, _, code = os.execute(cmd)
    local f = assert(io.open(out))
    local text = f:read("a")
    f:close()
    os.remove(out)
    San.check("lmdisc " .. table.concat(args, " "), text, code, 2)
    return code, text
end

local function assert_usage(expect, ...)
    local code, text = run(...)
    lu.assertEquals(code, 2, text)
    lu.assertStrContains(text, expect)
    lu.assertStrContains(text, "--help")
    return text
end

TestCli = {}

function TestCli:test_version_and_help()
    local code, text = run("--version")
    lu.assertEquals(code, 0)
    lu.assertStrMatches(text, "lmdisc %d+%.%d+%.%d+\n")
    code, text = run("--help")
    lu.assertEquals(code, 0)
    lu.assertStrContains(text, "announce")
    lu.assertStrContains(text, "discover")
    for _, cmd in ipairs({"announce", "discover"}) do
        code, text = run(cmd, "--help")
        lu.assertEquals(code, 0)
        lu.assertStrContains(text, "Usage: lmdisc " .. cmd)
    end
end

function TestCli:test_missing_and_unknown_command()
    assert_usage("missing COMMAND")
    assert_usage("unknown command 'frobnicate'", "frobnicate")
    assert_usage("unknown option '--frob'", "--frob")
end

function TestCli:test_bad_ports()
    for _, p in ipairs({"0", "65536", "80x", "", "abc", "99999999999999999999"}) do
        assert_usage("is not a number from 1 to 65535", "announce", p)
    end
    assert_usage("unknown option '-1'", "announce", "-1")
    assert_usage("missing PORT", "announce")
    assert_usage("too many arguments", "announce", "80", "info", "extra")
end

function TestCli:test_announce_options()
    assert_usage("unknown option '--bogus'", "announce", "80", "--bogus")
    assert_usage("must end in ._tcp or ._udp", "announce", "80", "--type", "_lmserv._sctp")
    assert_usage("is invalid", "announce", "80", "--type", "lmserv")
    assert_usage("at most 255 bytes", "announce", "80", "--txt", "k=" .. string.rep("x", 300))
    assert_usage("key is empty", "announce", "80", "--txt", "=v")
    assert_usage("give info as the INFO argument", "announce", "80", "--txt", "info=x")
    assert_usage("--name must be 1 to 63 bytes", "announce", "80", "--name", string.rep("n", 64))
    assert_usage("at most 255 bytes", "announce", "80", string.rep("i", 260))
    -- the configuration's bounds (announce { ttl }: lmdisc.RECORD_TTL_MAX)
    -- and its reserved keys; a bad option after them keeps a binary that
    -- accepts them from announcing anything
    for _, t in ipairs({"4501", "86400", "0", "1.5"}) do
        assert_usage("--ttl '" .. t .. "' must be a whole number of seconds from 1 to 4500", "announce", "80",
            "--ttl", t, "--bogus")
    end
    assert_usage("unknown option '--bogus'", "announce", "80", "--ttl", "4500", "--bogus")
    for _, k in ipairs({"lmd-x=1", "lmd-sig=AAAA", "LMD-Live=1/60", "lmd-flag"}) do
        local text = assert_usage("--txt " .. k .. ": the TXT key '" .. k:match("^[^=]+") .. "' is reserved",
            "announce", "80", "--txt", k, "--bogus")
        lu.assertStrContains(text, "keys beginning with 'lmd-' are lmdisc's own")
    end
    assert_usage("unknown option '--bogus'", "announce", "80", "--txt", "lmdx=1", "--bogus")
end

function TestCli:test_discover_options()
    for _, t in ipairs({"0", "-3", "abc", "1e9", "nan"}) do
        assert_usage("is not a number of seconds", "discover", "--timeout", t)
    end
    assert_usage("unexpected argument 'now'", "discover", "now")
    assert_usage("is invalid", "discover", "--type", "nope")
end

function TestCli:test_log_level()
    assert_usage("--log-level needs one of", "--log-level", "loud", "discover")
    local code, text = require("bin").sh_run("LOGLEVEL=chatty " .. sh(BIN) .. " --version")
    lu.assertStrContains(text, "LOGLEVEL='chatty' is not one of")
    lu.assertEquals(code, 2, text)
end

-- wide-area DNS-SD options: every misuse stops before anything is sent (no
-- test here may reach the network: none gets past the checks)
local function keyfile(mode)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write('key "h1-key" {\n\talgorithm hmac-sha256;\n\tsecret "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";\n};\n')
    f:close()
    os.execute(("chmod %s %s"):format(mode, sh(path)))
    return path
end

function TestCli:test_discover_domain_options()
    assert_usage("option '--domain' needs a value", "discover", "--domain")
    assert_usage("option '--server' needs a value", "discover", "--domain", "sd.example.org", "--server")
    assert_usage("option '--key' needs a value", "discover", "--domain", "sd.example.org", "--key")
    for _, d in ipairs({"", "a..b", "-x y", "sd.example.org..", ("l"):rep(64) .. ".org", "semi;colon"}) do
        assert_usage("is not a DNS domain", "discover", "--domain", d)
    end
    assert_usage("--server 'ns.example.org' is not an IPv4 or IPv6 address", "discover", "--domain",
        "sd.example.org", "--server", "ns.example.org")
    assert_usage("--server is for DNS: give --domain DOMAIN too", "discover", "--server", "10.0.0.53")
    assert_usage("--key is for DNS: give --domain DOMAIN too", "discover", "--key", "/nonexistent")
    local k = keyfile("644")
    local text = assert_usage("mode 0644 lets users outside its owner and group read", "discover", "--domain", "sd.example.org", "--server",
        "192.0.2.1", "--key", k)
    lu.assertStrContains(text, "--key " .. k)
    os.remove(k)
    assert_usage("--key /nonexistent", "discover", "--domain", "sd.example.org", "--server", "192.0.2.1",
        "--key", "/nonexistent")
    local code, help = run("discover", "--help")
    lu.assertEquals(code, 0)
    lu.assertStrContains(help, "--domain DOMAIN")
    lu.assertStrContains(help, "SOA MNAME")
end

function TestCli:test_announce_domain_options()
    assert_usage("option '--domain' needs a value", "announce", "80", "--domain")
    assert_usage("--domain needs --key FILE", "announce", "80", "--domain", "sd.example.org")
    assert_usage("is not a DNS domain", "announce", "80", "--domain", "bad domain", "--key", "/k")
    assert_usage("--key is for DNS: give --domain DOMAIN too", "announce", "80", "--key", "/k")
    assert_usage("--lease is for DNS", "announce", "80", "--lease", "600")
    assert_usage("--host is for DNS", "announce", "80", "--host", "h1")
    assert_usage("--server is for DNS", "announce", "80", "--server", "10.0.0.53")
    for _, l in ipairs({"59", "86401", "1.5", "x", "0"}) do
        assert_usage("--lease '" .. l .. "' must be a whole number of seconds from 60 to 86400", "announce", "80",
            "--domain", "sd.example.org", "--key", "/k", "--lease", l)
    end
    assert_usage("--host 'a.b' must be one DNS label", "announce", "80", "--domain", "sd.example.org", "--key",
        "/k", "--host", "a.b")
    assert_usage("is not an IPv4 or IPv6 address", "announce", "80", "--domain", "sd.example.org", "--key", "/k",
        "--server", "999.1.1.1")
    -- others may not read a TSIG key, its group may not change it (0640
    -- with the service's group is fine: root:lmdisc, as bind's rndc.key)
    for _, mode in ipairs({"644", "604", "660"}) do
        local k = keyfile(mode)
        assert_usage(("mode 0%s lets"):format(mode), "announce", "80", "--domain",
            "sd.example.org", "--key", k, "--server", "192.0.2.1")
        assert_usage(("(chmod 600 %s)"):format(k), "announce", "80", "--domain",
            "sd.example.org", "--key", k, "--server", "192.0.2.1")
        os.remove(k)
    end
    local k = keyfile("600")
    local f = assert(io.open(k, "w"))
    f:write("not a key\n")
    f:close()
    assert_usage("only a key statement may be in a TSIG key file", "announce", "80", "--domain", "sd.example.org",
        "--key", k, "--server", "192.0.2.1")
    os.remove(k)
    local code, help = run("announce", "--help")
    lu.assertEquals(code, 0)
    lu.assertStrContains(help, "--domain DOMAIN")
    lu.assertStrContains(help, "--key FILE")
end

-- drain: --cancel takes no --grace; neither needs anything else
function TestCli:test_drain_options()
    assert_usage("--cancel takes no --grace", "drain", "--cancel", "--grace", "3")
    assert_usage("--grace 'x' is not a number of seconds", "drain", "--grace", "x")
    assert_usage("unexpected argument 'now'", "drain", "--cancel", "now")
    local code, help = run("drain", "--help")
    lu.assertEquals(code, 0)
    lu.assertStrContains(help, "--cancel")
end

os.exit(lu.LuaUnit.run())
