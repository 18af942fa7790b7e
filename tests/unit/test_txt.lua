-- TXT encoding/decoding and validation (RFC 6763 section 6), through lmdisc.so.
local lu = require "luaunit"
local lmdisc = require "lmdisc"
local cjson = require "cjson"

TestTxt = {}

function TestTxt:test_parse_key_value()
    local k, v = lmdisc.txt_parse("model=gemma-2b-it")
    lu.assertEquals(k, "model")
    lu.assertEquals(v, "gemma-2b-it")
end

function TestTxt:test_value_may_contain_equals_and_be_empty()
    local k, v = lmdisc.txt_parse("expr=a=b=c")
    lu.assertEquals({k, v}, {"expr", "a=b=c"})
    k, v = lmdisc.txt_parse("empty=")
    lu.assertEquals({k, v}, {"empty", ""})
end

function TestTxt:test_bare_key_is_a_flag()
    local k, v = lmdisc.txt_parse("gpu")
    lu.assertEquals(k, "gpu")
    lu.assertIsTrue(v)
end

function TestTxt:test_empty_key_rejected_with_hint()
    local ok, err = lmdisc.txt_parse("=value")
    lu.assertNil(ok)
    lu.assertStrContains(err, "key is empty")
end

function TestTxt:test_non_ascii_key_rejected()
    local ok, err = lmdisc.txt_parse("mod\195\169l=x")
    lu.assertNil(ok)
    lu.assertStrContains(err, "printable ASCII")
    ok, err = lmdisc.txt_parse("a\nb=x")
    lu.assertNil(ok)
    lu.assertStrContains(err, "0x0a")
end

function TestTxt:test_item_limit_is_255_bytes_exactly()
    -- "k=" + 253 bytes = 255: allowed; one more byte: refused
    lu.assertEquals(select(2, lmdisc.txt_parse("k=" .. string.rep("v", 253))), string.rep("v", 253))
    local ok, err = lmdisc.txt_parse("k=" .. string.rep("v", 254))
    lu.assertNil(ok)
    lu.assertStrContains(err, "256 bytes")
    lu.assertStrContains(err, "at most 255")
end

-- base64 (RFC 4648) back to bytes, for txt_base64
local function unbase64(s)
    local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    local bits, out = s:gsub("=", ""):gsub(".", function(c)
        local i = alphabet:find(c, 1, true) - 1
        local b = ""
        for k = 5, 0, -1 do b = b .. ((i >> k) & 1) end
        return b
    end), {}
    for i = 1, #bits - 7, 8 do out[#out + 1] = string.char(tonumber(bits:sub(i, i + 7), 2)) end
    return table.concat(out)
end

function TestTxt:test_binary_values_are_kept_exactly()
    -- NUL, bytes that are not UTF-8, '=' and a newline: the record (a table:
    -- Lua strings hold any byte) is valid, and the node's JSON gives every
    -- byte back through txt_base64
    local bytes = "\0\1\255\254=\n"
    lu.assertIsTrue(lmdisc.txt_check({bin = bytes}))
    local doc = cjson.decode(lmdisc.node_json({name = "n", txt = {bin = bytes, text = "plain"}}))
    lu.assertEquals(unbase64(doc.txt_base64.bin), bytes)
    lu.assertEquals(#unbase64(doc.txt_base64.bin), 6)
    lu.assertEquals(doc.txt.text, "plain")
end

function TestTxt:test_parse_takes_a_c_string_that_ends_at_nul()
    -- txt_parse reads "key=value" as a C string: a NUL ends it (binary
    -- values go through tables, above)
    local k, v = lmdisc.txt_parse("bin=ab\0cd")
    lu.assertEquals({k, v}, {"bin", "ab"})
end

function TestTxt:test_check_table()
    lu.assertIsTrue(lmdisc.txt_check({model = "x", load = 0.5, gpu = true}))
    local ok, err = lmdisc.txt_check({["bad=key"] = "x"})
    lu.assertNil(ok)
    lu.assertStrContains(err, "'='")
    ok, err = lmdisc.txt_check({k = {}})
    lu.assertNil(ok)
    lu.assertStrContains(err, "must be a string, number or true")
    ok, err = lmdisc.txt_check({[1] = "x"})
    lu.assertNil(ok)
    lu.assertStrContains(err, "keys must be strings")
end

function TestTxt:test_keys_compare_case_insensitively()
    -- RFC 6763 6.4: keys are case-insensitive, so Model and model are one
    -- key: a record given both holds one of them, once
    local node = {name = "n", txt = {Model = "a", model = "b", other = "c"}}
    local doc = cjson.decode(lmdisc.node_json(node))
    local keys = {}
    for k, v in pairs(doc.txt) do keys[#keys + 1] = k:lower() .. "=" .. v end
    table.sort(keys)
    lu.assertEquals(#keys, 2, lmdisc.node_json(node))
    lu.assertEquals(keys[2], "other=c")
    lu.assertStrMatches(keys[1], "model=[ab]")
    -- and a record with only Model= says Model
    lu.assertEquals(cjson.decode(lmdisc.node_json({name = "n", txt = {Model = "a"}})).txt, {Model = "a"})
end

-- lmd-* keys are lmdisc's own (signatures, liveness): announce_self (the
-- C library's lmd_announce_self, and this module's) refuses them, in any
-- case, before it touches avahi.  Run with a D-Bus address that leads
-- nowhere, so that even a build that does not refuse announces nothing.
function TestTxt:test_announce_self_refuses_reserved_keys()
    for _, key in ipairs { "lmd-live", "LMD-SIG", "Lmd-cert", "lmd-" } do
        local script = ("local l = require 'lmdisc'; local a, err = l.announce_self(9000, 'x', {name = 'reserved', "
            .. "txt = {[%q] = '1'}}); io.write(tostring(a), '|', tostring(err)); if a then a:withdraw() end"):format(key)
        local f = io.popen("env DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/lmdisc-unit-test timeout 10 lua5.4 -e '"
            .. script:gsub("'", "'\\''") .. "' 2>&1")
        local out = f:read("a")
        f:close()
        lu.assertStrContains(out, ("nil|the TXT key '%s' is reserved: keys beginning with 'lmd-' are lmdisc's own"):format(
            key), false, key)
    end
end

function TestTxt:test_service_type_validation()
    lu.assertIsTrue(lmdisc.service_type_check("_lmserv._tcp"))
    lu.assertIsTrue(lmdisc.service_type_check("_http._udp"))
    for _, bad in ipairs({"lmserv._tcp", "_lmserv", "_lmserv._sctp", "_toolongservicename1._tcp",
                          "_-bad._tcp", "_a--b._tcp", "_123._tcp", "_a b._tcp", ""}) do
        local ok, err = lmdisc.service_type_check(bad)
        lu.assertNil(ok, bad)
        lu.assertStrContains(err, "_name._tcp", false, bad)
    end
end

os.exit(lu.LuaUnit.run())
