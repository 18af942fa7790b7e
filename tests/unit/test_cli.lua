-- Argument parsing: every misuse gets one clear line, a --help hint and a
-- non-zero exit, before anything touches the network.
local lu = require "luaunit"
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
    local f = io.popen("LOGLEVEL=chatty " .. sh(BIN) .. " --version 2>&1; echo \"rc=$?\"")
    local text = f:read("a")
    f:close()
    lu.assertStrContains(text, "LOGLEVEL='chatty' is not one of")
    lu.assertStrContains(text, "rc=2")
end

os.exit(lu.LuaUnit.run())
