-- Fleet trust from the command line (no network): `lmdisc keygen` and
-- `lmdisc certify`, and every way a key or certificate is refused, each
-- with its one line.  Signing and verifying announcements are covered by
-- tests/unit/trust/test_sign.c.
local lu = require "luaunit"
local B = require "bin"

local function sh_out(cmd)
    local f = assert(io.popen(cmd))
    local s = f:read("a")
    f:close()
    return s
end

local function read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("a")
    f:close()
    return s
end

local function write(path, text, mode)
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    if mode then os.execute("chmod " .. mode .. " " .. B.sh(path)) end
end

local function mode(path) return sh_out("stat -c %a " .. B.sh(path)):gsub("%s+$", "") end
local function exists(path) return os.execute("test -e " .. B.sh(path) .. " -o -L " .. B.sh(path)) == true end

-- Run lmdisc with arguments, each quoted.
local function run(...)
    local args = {}
    for i, a in ipairs({...}) do args[i] = B.sh(a) end
    return B.run(table.concat(args, " "))
end

local function assert_fails(expect, ...)
    local code, out = run(...)
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, expect)
    -- one line, naming what was wrong
    lu.assertEquals(select(2, out:gsub("\n", "")), 2, out) -- the line and rc=
    return out
end

local function assert_usage(expect, ...)
    local code, out = run(...)
    lu.assertEquals(code, 2, out)
    lu.assertStrContains(out, expect)
    lu.assertStrContains(out, "--help")
    return out
end

local DIR

-- A fleet key, a host key and a certificate, fresh for each test.
local function setup()
    DIR = sh_out("mktemp -d /tmp/lmd-trust-XXXXXX"):gsub("%s+$", "")
    for _, name in ipairs({"fleet", "host"}) do
        local code, out = run("keygen", DIR .. "/" .. name)
        lu.assertEquals(code, 0, out)
    end
end

local function teardown()
    if DIR and DIR:match("^/tmp/lmd%-trust%-") then os.execute("rm -rf " .. B.sh(DIR)) end
end

local function p(name) return DIR .. "/" .. name end

TestKeygen = { setUp = setup, tearDown = teardown }

function TestKeygen:test_creates_a_private_key_and_a_public_key()
    lu.assertEquals(mode(p("host.key")), "600")
    lu.assertEquals(mode(p("host.pub")), "644")
    lu.assertStrMatches(read(p("host.key")), "lmdisc%-ed25519%-secret%-v1 [A-Za-z0-9+/]+=*\n")
    lu.assertStrMatches(read(p("host.pub")), "lmdisc%-ed25519%-public%-v1 [A-Za-z0-9+/]+=*\n")
    local code, out = run("keygen", p("new"))
    lu.assertEquals(code, 0, out)
    lu.assertStrMatches(out, ".*new%.pub: public key, id %x+\n.*")
    lu.assertNotEquals(read(p("new.key")), read(p("host.key")))
end

function TestKeygen:test_modes_do_not_depend_on_the_umask()
    local code, out = B.run("keygen " .. B.sh(p("u")), "umask 000;")
    lu.assertEquals(code, 0, out)
    lu.assertEquals(mode(p("u.key")), "600")
    lu.assertEquals(mode(p("u.pub")), "644")
end

function TestKeygen:test_refuses_to_overwrite()
    local before = read(p("host.key"))
    assert_fails("host.key already exists", "keygen", p("host"))
    lu.assertEquals(read(p("host.key")), before)
    -- a stray .pub alone is enough, and no .key is left behind
    write(p("half.pub"), "x\n")
    assert_fails("half.pub already exists", "keygen", p("half"))
    lu.assertFalse(exists(p("half.key")))
end

function TestKeygen:test_does_not_follow_a_symlink()
    os.execute("ln -s " .. B.sh(p("elsewhere")) .. " " .. B.sh(p("link.key")))
    assert_fails("link.key already exists", "keygen", p("link"))
    lu.assertFalse(exists(p("elsewhere")))
end

function TestKeygen:test_usage()
    assert_usage("missing PREFIX", "keygen")
    assert_usage("without .key or .pub", "keygen", p("x.key"))
    assert_usage("one too many", "keygen", p("a"), p("b"))
    assert_usage("unknown option '--frob'", "keygen", "--frob")
    local code, out = run("keygen", "--help")
    lu.assertEquals(code, 0)
    lu.assertStrContains(out, "Usage: lmdisc keygen PREFIX")
    assert_fails("cannot create", "keygen", p("no/such/dir/k"))
end

TestCertify = { setUp = setup, tearDown = teardown }

local function certify(...)
    local code, out = run("certify", "--fleet-key", p("fleet.key"), "--name", "host*", ...)
    lu.assertEquals(code, 0, out)
    return out
end

local function certify_revoke(list, ...)
    local code, out = run("certify", "--revoke", list, "--fleet-key", p("fleet.key"), ...)
    lu.assertEquals(code, 0, out)
    return out
end

local function check(cert, ...)
    local args = {"certify", "--check"}
    for _, pub in ipairs({...}) do
        args[#args + 1] = "--fleet-pub"
        args[#args + 1] = pub
    end
    args[#args + 1] = cert
    return run(table.unpack(args))
end

function TestCertify:test_produces_a_certificate()
    local out = certify(p("host.pub"))
    lu.assertStrContains(out, "host.cert: host key ")
    lu.assertStrContains(out, "certified by fleet key ")
    local text = read(p("host.cert"))
    local compact = text:match("^lmdisc%-cert%-v2 ([A-Za-z0-9+/]+)\n$")
    lu.assertNotNil(compact, text)
    lu.assertEquals(#compact, 170) -- what lmd-cert carries in TXT: 127 bytes with one 5-byte name
    lu.assertEquals(mode(p("host.cert")), "644")
    local code, chk = check(p("host.cert"), p("fleet.pub"))
    lu.assertEquals(code, 0, chk)
    lu.assertStrContains(chk, "valid: host key")
    -- the ids printed are the keys' ids
    lu.assertStrContains(chk, out:match("fleet key (%x+)"))
end

function TestCertify:test_validity_period()
    local out = certify("--not-before", "2000000000", "--days", "10", "--out", p("h.cert"), p("host.pub"))
    lu.assertStrContains(out, "from 2033-05-18 03:33:20 UTC until 2033-05-28 03:33:20 UTC")
    local code, chk = check(p("h.cert"), p("fleet.pub"))
    lu.assertEquals(code, 1, chk)
    lu.assertStrContains(chk, "certificate not yet valid")
    code, chk = run("certify", "--check", "--at", "2000000000", "--fleet-pub", p("fleet.pub"), p("h.cert"))
    lu.assertEquals(code, 0, chk)
    code, chk = run("certify", "--check", "--at", "2000864000", "--fleet-pub", p("fleet.pub"), p("h.cert"))
    lu.assertEquals(code, 1, chk)
    lu.assertStrContains(chk, "certificate expired")
end

function TestCertify:test_renewal_replaces_the_certificate()
    certify("--days", "1", p("host.pub"))
    local first = read(p("host.cert"))
    certify("--days", "2", p("host.pub"))
    lu.assertNotEquals(read(p("host.cert")), first)
    local leftovers = sh_out("ls " .. B.sh(DIR) .. " | grep -c 'cert[.]'; true"):gsub("%s+$", "")
    lu.assertEquals(leftovers, "0")
end

function TestCertify:test_a_tampered_certificate_is_refused()
    certify(p("host.pub"))
    local text = read(p("host.cert"))
    -- one character of the host key (characters 16.. are the base64)
    local i = #"lmdisc-cert-v2 " + 11
    local c = text:sub(i, i)
    local tampered = text:sub(1, i - 1) .. (c == "A" and "B" or "A") .. text:sub(i + 1)
    write(p("t.cert"), tampered)
    local code, out = check(p("t.cert"), p("fleet.pub"))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "t.cert: bad certificate")
    -- a byte of the validity period
    i = #"lmdisc-cert-v2 " + 45
    c = text:sub(i, i)
    write(p("t.cert"), text:sub(1, i - 1) .. (c == "A" and "B" or "A") .. text:sub(i + 1))
    code, out = check(p("t.cert"), p("fleet.pub"))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "bad certificate")
    write(p("t.cert"), text:sub(1, 30) .. "*" .. text:sub(32))
    assert_fails("t.cert: the certificate is not valid base64", "certify", "--check", "--fleet-pub", p("fleet.pub"),
                 p("t.cert"))
    write(p("t.cert"), text:sub(1, 59) .. "\n") -- 44 characters
    assert_fails("t.cert: the certificate is 33 bytes", "certify", "--check", "--fleet-pub", p("fleet.pub"),
                 p("t.cert"))
end

function TestCertify:test_another_fleet_key_is_an_unknown_fleet()
    run("keygen", p("rogue"))
    local code, out = run("certify", "--fleet-key", p("rogue.key"), "--name", "*", p("host.pub"))
    lu.assertEquals(code, 0, out)
    code, out = check(p("host.cert"), p("fleet.pub"))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "unknown fleet")
    -- while fleet keys are rotated, agents trust both
    code, out = check(p("host.cert"), p("fleet.pub"), p("rogue.pub"))
    lu.assertEquals(code, 0, out)
end

function TestCertify:test_an_expired_certificate_is_refused()
    local now = os.time()
    local code, out = run("certify", "--fleet-key", p("fleet.key"), "--name", "*", "--not-before",
                          tostring(now - 10 * 86400), "--days", "2", p("host.pub"))
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "warning: this certificate ended")
    code, out = check(p("host.cert"), p("fleet.pub"))
    lu.assertEquals(code, 1, out)
    lu.assertStrContains(out, "host.cert: certificate expired")
end

function TestCertify:test_a_secret_key_others_can_read_is_refused()
    os.execute("chmod 644 " .. B.sh(p("fleet.key")))
    local out = assert_fails("fleet.key: mode 0644", "certify", "--fleet-key", p("fleet.key"), "-N", "x",
                             p("host.pub"))
    lu.assertStrContains(out, "chmod 600 " .. p("fleet.key"))
    lu.assertFalse(exists(p("host.cert")))
    -- its group may read it (root:lmdisc 0640), not change it
    os.execute("chmod 660 " .. B.sh(p("fleet.key")))
    assert_fails("mode 0660 lets its group change", "certify", "--fleet-key", p("fleet.key"), "-N", "x", p("host.pub"))
    lu.assertFalse(exists(p("host.cert")))
end

function TestCertify:test_wrong_type_lines_are_refused()
    -- the public key where the secret one goes, and the other way round
    assert_fails("fleet.pub: wrong type line: this is a public key", "certify", "-N", "x", "--fleet-key",
                 p("fleet.pub"), p("host.pub"))
    local out = assert_fails("host.key: wrong type line: this is a secret key", "certify", "-N", "x", "--fleet-key",
                             p("fleet.key"), p("host.key"))
    lu.assertNotStrContains(out, read(p("host.key")):match(" (%S+)"))   -- never quotes a secret
    assert_fails("host.pub: wrong type line: this is a public key", "certify", "--check", "--fleet-pub",
                 p("fleet.pub"), p("host.pub"))
    -- an unknown type line, a bad base64, a wrong length
    write(p("bad.key"), "ssh-ed25519 AAAA\n", "600")
    assert_fails("bad.key: wrong type line", "certify", "-N", "x", "--fleet-key", p("bad.key"), p("host.pub"))
    write(p("bad.key"), "lmdisc-ed25519-secret-v1 not base64!\n", "600")
    assert_fails("bad.key: the secret key is not valid base64", "certify", "-N", "x", "--fleet-key", p("bad.key"),
                 p("host.pub"))
    write(p("bad.key"), "lmdisc-ed25519-secret-v1 YWJj\n", "600")
    assert_fails("bad.key: the secret key is 3 bytes", "certify", "-N", "x", "--fleet-key", p("bad.key"),
                 p("host.pub"))
    write(p("bad.pub"), "lmdisc-ed25519-public-v1 YWJj\n")
    assert_fails("bad.pub: the public key is 3 bytes", "certify", "-N", "x", "--fleet-key", p("fleet.key"),
                 p("bad.pub"))
    assert_fails("nothing.pub: cannot open", "certify", "-N", "x", "--fleet-key", p("fleet.key"),
                 p("nothing.pub"))
end

function TestCertify:test_usage()
    assert_usage("missing --fleet-key", "certify", p("host.pub"))
    assert_usage("missing --name PATTERN", "certify", "--fleet-key", p("fleet.key"), p("host.pub"))
    assert_usage("missing HOST.pub", "certify", "--fleet-key", p("fleet.key"), "-N", "x")
    assert_usage("one too many", "certify", "--fleet-key", p("fleet.key"), "-N", "x", p("host.pub"), p("x.pub"))
    assert_usage("control character", "certify", "--fleet-key", p("fleet.key"), "-N", "a\tb", p("host.pub"))
    assert_usage("an empty name", "certify", "--fleet-key", p("fleet.key"), "-N", "", p("host.pub"))
    assert_usage("one --serial", "certify", "--fleet-key", p("fleet.key"), "-N", "x", "-s", "1", "-s", "2",
                 p("host.pub"))
    assert_usage("is not a serial", "certify", "--fleet-key", p("fleet.key"), "-N", "x", "-s", "xyz", p("host.pub"))
    assert_usage("--check and --revoke", "certify", "--check", "--revoke", p("r"), p("host.cert"))
    assert_usage("--revoke takes", "certify", "--revoke", p("r"), "--fleet-key", p("fleet.key"), "-N", "x")
    for _, d in ipairs({"0", "3651", "x", "-1", ""}) do
        assert_usage("is not a number of days from 1 to 3650", "certify", "--fleet-key", p("fleet.key"), "--days",
                     d, p("host.pub"))
    end
    assert_usage("is not a Unix time", "certify", "--fleet-key", p("fleet.key"), "--not-before", "yesterday",
                 p("host.pub"))
    assert_usage("32-bit", "certify", "--fleet-key", p("fleet.key"), "-N", "x", "--not-before", "4294000000",
                 p("host.pub"))
    assert_usage("--check needs --fleet-pub", "certify", "--check", p("host.cert"))
    assert_usage("--check takes --fleet-pub", "certify", "--check", "--fleet-key", p("fleet.key"), p("host.cert"))
    assert_usage("go with --check", "certify", "--fleet-key", p("fleet.key"), "--fleet-pub", p("fleet.pub"),
                 p("host.pub"))
    assert_usage("needs a value", "certify", "--days")
    local code, out = run("certify", "--help")
    lu.assertEquals(code, 0)
    lu.assertStrContains(out, "Usage: lmdisc certify --fleet-key")
    lu.assertStrContains(out, "revocation")
    code, out = run("--help")
    lu.assertStrContains(out, "keygen PREFIX")
    lu.assertStrContains(out, "certify --fleet-key")
end

-- Names: what a certificate lets its host announce, shown by --check;
-- a version 1 certificate (no names) is refused with what to do.
function TestCertify:test_names_and_serial_are_certified_and_shown()
    local out = certify("--name", "gpu1-*", "--name", "gpu1", "--serial", "00000000000000ab", p("host.pub"))
    lu.assertStrContains(out, "serial 00000000000000ab, for 'host*', 'gpu1-*', 'gpu1'")
    local code, chk = check(p("host.cert"), p("fleet.pub"))
    lu.assertEquals(code, 0, chk)
    lu.assertStrContains(chk, "serial 00000000000000ab; names 'host*', 'gpu1-*', 'gpu1'")
    -- a random serial unless given: two certificates, two serials
    local s1 = certify(p("host.pub")):match("serial (%x+)")
    local s2 = certify(p("host.pub")):match("serial (%x+)")
    lu.assertEquals(#s1, 16)
    lu.assertNotEquals(s1, s2)
    -- too many names for the TXT item
    local names = {}
    for i = 1, 7 do names[#names + 1] = "-N"; names[#names + 1] = ("name-%04d"):format(i) end
    names[#names + 1] = p("host.pub")
    local code2, out2 = run("certify", "--fleet-key", p("fleet.key"), table.unpack(names))
    lu.assertEquals(code2, 1, out2)
    lu.assertStrContains(out2, "at most 63 fit")
end

function TestCertify:test_a_version_1_certificate_is_refused_with_what_to_do()
    write(p("old.cert"), "lmdisc-cert-v1 " .. ("A"):rep(150) .. "\n")
    local out = assert_fails("old.cert: a version 1 certificate names no instance", "certify", "--check",
                             "--fleet-pub", p("fleet.pub"), p("old.cert"))
    lu.assertStrContains(out, "--name")
end

-- The revocation list: made and extended with the fleet key, each time
-- issued later; an altered one, or one signed by another key, is refused.
function TestCertify:test_revocation_lists()
    run("keygen", p("h2"))
    certify("--out", p("h2.cert"), p("h2.pub"))
    local out = certify_revoke(p("revoked"), p("host.pub"))
    lu.assertStrContains(out, "1 host key(s) and 0 certificate serial(s) revoked (1 and 0 new)")
    local text = read(p("revoked"))
    lu.assertStrMatches(text, "lmdisc%-revoked%-v1\nfleet %x+\nissued %d+\nkey [A-Za-z0-9+/=]+\nsig [A-Za-z0-9+/=]+\n")
    local issued1 = tonumber(text:match("issued (%d+)"))
    out = certify_revoke(p("revoked"), "--serial", "0123456789abcdef", p("h2.cert"))
    lu.assertStrContains(out, "1 host key(s) and 2 certificate serial(s) revoked (0 and 2 new)")
    text = read(p("revoked"))
    lu.assertTrue(tonumber(text:match("issued (%d+)")) > issued1, text)
    lu.assertStrContains(text, "serial 0123456789abcdef\n")
    -- altered: one serial digit
    write(p("revoked"), (text:gsub("serial 0123456789abcdef", "serial 0123456789abcdee")))
    assert_fails("revoked: the signature of fleet key", "certify", "--revoke", p("revoked"), "--fleet-key",
                 p("fleet.key"), p("h2.pub"))
    -- another fleet's key cannot extend it
    write(p("revoked"), text)
    run("keygen", p("rogue"))
    assert_fails("which is not one of the 1 trusted", "certify", "--revoke", p("revoked"), "--fleet-key",
                 p("rogue.key"), p("h2.pub"))
    assert_fails("neither a host's .pub nor a .cert", "certify", "--revoke", p("revoked"), "--fleet-key",
                 p("fleet.key"), p("fleet.key"))
end

os.exit(lu.LuaUnit.run())
