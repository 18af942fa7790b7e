-- TXT encoding/decoding and validation (RFC 6763 section 6), through lmdisc.so.
local lu = require "luaunit"
local lmdisc = require "lmdisc"

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

function TestTxt:test_binary_values_are_kept_exactly()
    local bytes = "\0\1\255\254=\n"
    local _, v = lmdisc.txt_parse("bin=" .. bytes)
    -- the C string argument stops at NUL, so check via a table
    lu.assertIsTrue(lmdisc.txt_check({bin = bytes}))
    lu.assertEquals(v, "")
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
    -- RFC 6763 6.4: keys are case-insensitive, so Model and model are one key
    local node = {name = "n", txt = {Model = "a"}}
    local j = lmdisc.node_json(node)
    lu.assertStrContains(j, '"Model":"a"')
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
