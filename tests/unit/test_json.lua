-- JSON output of awkward names and TXT values: always valid JSON, always
-- UTF-8, exact bytes recoverable from txt_base64.
local lu = require "luaunit"
local lmdisc = require "lmdisc"
local cjson = require "cjson"

local function b64decode(s)
    local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    s = s:gsub("=", "")
    local bits = s:gsub(".", function(c)
        local v = alphabet:find(c, 1, true) - 1
        local r = ""
        for i = 5, 0, -1 do r = r .. ((v >> i) & 1) end
        return r
    end)
    return (bits:gsub("%d%d%d?%d?%d?%d?%d?%d?", function(byte)
        if #byte ~= 8 then return "" end
        return string.char(tonumber(byte, 2))
    end))
end

-- every string in a decoded document must be valid UTF-8
local function assert_all_utf8(v, path)
    if type(v) == "string" then
        lu.assertNotNil(utf8.len(v), "invalid UTF-8 at " .. path)
    elseif type(v) == "table" then
        for k, x in pairs(v) do
            assert_all_utf8(k, path .. "/key")
            assert_all_utf8(x, path .. "/" .. tostring(k))
        end
    end
end

local function roundtrip(node)
    local text = lmdisc.node_json(node)
    local ok, doc = pcall(cjson.decode, text)
    lu.assertTrue(ok, "not valid JSON: " .. text)
    assert_all_utf8(doc, "")
    return doc, text
end

TestJson = {}

function TestJson:test_plain_node()
    local doc = roundtrip{name = "h1:8000", type = "_lmserv._tcp", domain = "local", host = "h1.local",
                          port = 8000, info = "gemma-2b-it Q4_0", addresses = {"10.77.0.1", "fd77::1"},
                          txt = {info = "gemma-2b-it Q4_0", model = "gemma"}}
    lu.assertEquals(doc.name, "h1:8000")
    lu.assertEquals(doc.port, 8000)
    lu.assertEquals(doc.info, "gemma-2b-it Q4_0")
    lu.assertEquals(doc.addresses[1].address, "10.77.0.1")
    lu.assertEquals(doc.addresses[1].family, 4)
    lu.assertEquals(doc.addresses[2].family, 6)
    lu.assertEquals(doc.txt.model, "gemma")
    lu.assertIsNil(doc.txt_base64)
end

function TestJson:test_quotes_backslashes_and_control_characters()
    local name = 'say "hi"\\ \n\t\r\0\27[31m red'
    local doc, text = roundtrip{name = name, port = 1, txt = {q = 'a"b\\c\1'}}
    -- NUL ends a C string: the name is cut there, everything before survives exactly
    lu.assertEquals(doc.name, 'say "hi"\\ \n\t\r')
    lu.assertEquals(doc.txt.q, 'a"b\\c\1')
    lu.assertNotStrContains(text, "\n\t")
    lu.assertNotStrContains(text, "\27")
end

function TestJson:test_non_utf8_txt_value_is_replaced_and_given_exactly_in_base64()
    local raw = "ok\255\254\192\128end\0tail"
    local doc = roundtrip{name = "n", port = 1, txt = {bin = raw, fine = "caf\195\169"}}
    lu.assertEquals(doc.txt.fine, "café")
    lu.assertStrContains(doc.txt.bin, "\239\191\189") -- U+FFFD
    lu.assertStrContains(doc.txt.bin, "ok")
    lu.assertNotNil(doc.txt_base64)
    lu.assertEquals(b64decode(doc.txt_base64.bin), raw)
    lu.assertIsNil(doc.txt_base64.fine)
end

function TestJson:test_non_utf8_name_is_valid_json()
    local doc = roundtrip{name = "bad\255name\237\160\128", host = "x\200.local", port = 1}
    lu.assertStrContains(doc.name, "bad")
    lu.assertStrContains(doc.name, "name")
    lu.assertStrContains(doc.host, "\239\191\189")
end

function TestJson:test_bare_key_is_true_and_empty_value_is_empty_string()
    local doc = roundtrip{name = "n", port = 1, txt = {gpu = true, empty = ""}}
    lu.assertIsTrue(doc.txt.gpu)
    lu.assertEquals(doc.txt.empty, "")
end

function TestJson:test_missing_info_is_null()
    local _, text = roundtrip{name = "n", port = 1}
    lu.assertStrContains(text, '"info":null')
end

-- Every character class that changes what a terminal shows without showing
-- itself comes out visible, byte by byte, and quotes cannot end a quoted name.
function TestJson:test_escape_invisible_and_control_characters()
    local cases = {
        { "a\194\155[2Jb", "a\\u{009b}[2Jb" },      -- C1 CSI, UTF-8 encoded
        { "a\194\157]0;x", "a\\u{009d}]0;x" },       -- C1 OSC
        { "x\226\128\174lave", "x\\u{202e}lave" },   -- right-to-left override
        { "x\226\129\166y", "x\\u{2066}y" },        -- left-to-right isolate
        { "z\226\128\139w", "z\\u{200b}w" },        -- zero-width space
        { "z\226\128\141w", "z\\u{200d}w" },        -- zero-width joiner
        { "\239\187\191bom", "\\u{feff}bom" },       -- byte order mark / zero-width no-break space
        { "l\226\128\168s", "l\\u{2028}s" },         -- line separator
        { "t\243\160\128\129g", "t\\u{e0001}g" },  -- language tag
        { 'say "hi"', 'say \\"hi\\"' },             -- quotes
        { "del\127", "del\\x7f" },
        { "nul\0x", "nul\\x00x" },
        { "ok \195\169 \228\184\173", "ok \195\169 \228\184\173" }, -- visible UTF-8 passes
    }
    for _, c in ipairs(cases) do
        lu.assertEquals(lmdisc.escape(c[1]), c[2], c[1])
    end
end

-- A NUL in TXT info truncates nothing: every byte reaches Lua, the JSON
-- (U+FFFD there, exact in txt_base64) and the escaped text.
function TestJson:test_info_with_a_nul_keeps_every_byte()
    local r = lmdisc.registry_new({}, nil)
    r:seen({name = "a:1", host = "a.local", port = 1, address = "10.0.0.1", txt = {info = "a\0b\27c"}}, 1)
    local p = r:get("a:1")
    lu.assertEquals(p.info, "a\0b\27c")
    lu.assertEquals(lmdisc.escape(p.info), "a\\x00b\\x1bc")
    local doc = cjson.decode(lmdisc.node_json(p))
    lu.assertEquals(doc.info, "a\239\191\189b\27c")
    lu.assertEquals(doc.txt_base64.info, "YQBiG2M=")
    r:close()
end

-- A table's __len is not its length for the C side: a policy's node with
-- sources and addresses claiming 2^62 entries is read raw, at once (a loop
-- in C is out of reach of the VM's instruction limit).
function TestJson:test_a_lying_len_does_not_make_a_loop_in_c()
    local huge = { __len = function() return 1 << 62 end }
    local node = { name = "a:1", host = "a.local", port = 1,
                   addresses = setmetatable({ "10.0.0.1" }, huge),
                   sources = setmetatable({ "mdns", "dns", "dns" }, huge) }
    local doc = cjson.decode(lmdisc.node_json(node)) -- (a loop of 2^62 would not return)
    lu.assertEquals(#doc.addresses, 1)
    lu.assertEquals(doc.sources, { "mdns", "dns" })
end

function TestJson:test_escape_for_terminals()
    lu.assertEquals(lmdisc.escape("a\nb\27[2J\255c\\"), "a\\nb\\x1b[2J\\xffc\\\\")
    lu.assertEquals(lmdisc.escape("café"), "café")
end

function TestJson:test_lookalike_and_invisible_names_are_distinguishable_in_json()
    -- "paypal" with a Cyrillic a, with a right-to-left override, with a zero-width space
    local latin = roundtrip{name = "paypal", port = 1}
    local _, cyr = roundtrip{name = "p\208\176ypal", port = 1}
    local _, rlo = roundtrip{name = "pay\226\128\174lap", port = 1}
    local doc, zw = roundtrip{name = "pay\226\128\139pal", port = 1, info = "caf\195\169"}
    lu.assertEquals(latin.name, "paypal")
    lu.assertStrContains(cyr, "p\\u0430ypal")
    lu.assertStrContains(rlo, "pay\\u202Elap")
    lu.assertStrContains(zw, "pay\\u200Bpal")
    for _, text in ipairs{cyr, rlo, zw} do
        lu.assertNil(text:find("[\128-\255]"), "raw non-ASCII byte in " .. text)
    end
    -- decoders still get the exact strings
    lu.assertEquals(doc.name, "pay\226\128\139pal")
    lu.assertEquals(doc.info, "caf\195\169")
end

os.exit(lu.LuaUnit.run())
