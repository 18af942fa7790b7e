-- The house rules of src/ (README, "Layout"), checked on every run so that
-- they stay true: one foreign API per place, files a reader can hold in
-- mind, no include cycles, and a library whose exports are its header.
local lu = require "luaunit"
local SRC = assert(os.getenv("LMDISC_SRC"), "set LMDISC_SRC to the source tree")
local BUILD = assert(os.getenv("LMDISC_BUILD"), "set LMDISC_BUILD to the build directory")

local function sh(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function lines_of(cmd)
    local f = assert(io.popen(cmd))
    local out = {}
    for l in f:lines() do out[#out + 1] = l end
    f:close()
    return out
end

local FILES = lines_of("cd " .. sh(SRC) .. " && find src -name '*.[ch]' | sort")

local function read(rel)
    local f = assert(io.open(SRC .. "/" .. rel))
    local s = f:read("a")
    f:close()
    return s
end

TestLayout = {}

function TestLayout:test_there_are_sources()
    lu.assertTrue(#FILES > 30, "found only " .. #FILES .. " files under src/")
end

function TestLayout:test_no_c_file_over_600_lines()
    local big = {}
    for _, f in ipairs(FILES) do
        local n = select(2, read(f):gsub("\n", ""))
        if n > 620 then big[#big + 1] = f .. " (" .. n .. " lines)" end
    end
    lu.assertEquals(big, {}, "split these files by job")
end

-- Each foreign API has one home.
local HOMES = {
    { pattern = "#include <avahi-", where = "^src/mdns/", what = "avahi headers" },
    { pattern = "#include <lua.h>", where = "^src/lua/", also = "^src/policy/", what = "lua.h" },
    { pattern = "#include <lauxlib.h>", where = "^src/lua/", also = "^src/policy/", what = "lauxlib.h" },
    { pattern = "#include <lualib.h>", where = "^src/lua/", also = "^src/policy/", what = "lualib.h" },
    { pattern = "#include <curl/", where = "^src/cmd/client%.c$", what = "libcurl" },
    { pattern = "#include <systemd/", where = "^src/check/watchdog%.c$", what = "libsystemd" },
    { pattern = "#include <sodium", where = "^src/trust/", what = "libsodium" },
    { pattern = "#include <ldns", where = "^src/dns/", what = "libldns" },
    { pattern = "#include <event2/http.h>", where = { "^src/api/", "^src/check/" }, what = "evhttp (API and checks only)" },
}

function TestLayout:test_each_foreign_api_has_one_home()
    local wrong = {}
    for _, f in ipairs(FILES) do
        local text = read(f)
        for _, h in ipairs(HOMES) do
            local wheres = type(h.where) == "table" and h.where or { h.where, h.also }
            local home = false
            for _, w in ipairs(wheres) do home = home or f:find(w) ~= nil end
            for _, allowed in ipairs(h.files or {}) do home = home or f == allowed end
            if text:find(h.pattern, 1, true) and not home then
                wrong[#wrong + 1] = f .. " includes " .. h.what
            end
        end
    end
    lu.assertEquals(wrong, {})
end

function TestLayout:test_no_include_cycles()
    local edges = {}
    for _, f in ipairs(FILES) do
        if f:match("%.h$") then
            local key = f:gsub("^src/", "")
            edges[key] = {}
            for inc in read(f):gmatch('#include "([^"]+)"') do
                edges[key][#edges[key] + 1] = inc
            end
        end
    end
    local state, cycle = {}, nil
    local function visit(h, path)
        if state[h] == "done" or not edges[h] then return end
        if state[h] == "open" then
            cycle = table.concat(path, " -> ") .. " -> " .. h
            return
        end
        state[h] = "open"
        path[#path + 1] = h
        for _, n in ipairs(edges[h]) do
            if not cycle then visit(n, path) end
        end
        path[#path] = nil
        state[h] = "done"
    end
    for h in pairs(edges) do
        if not cycle then visit(h, {}) end
    end
    lu.assertNil(cycle)
end

-- liblmdisc.so exports exactly what include/lmdisc.h declares: its ABI is
-- the header, not whatever the code happens to be.
function TestLayout:test_library_exports_exactly_the_public_header()
    local declared = {}
    for name in read("include/lmdisc.h"):gmatch("LMD_API [^;]-[%s%*](lmd_[%w_]+)%(") do
        declared[#declared + 1] = name
    end
    table.sort(declared)
    local lib = BUILD .. "/liblmdisc.so"
    local exported = lines_of("nm -D --defined-only " .. sh(lib) ..
        " | awk '$2 ~ /^[TWDBR]$/ {print $3}' | grep -v '^_' | sort")
    lu.assertTrue(#declared >= 20, "parsed only " .. #declared .. " declarations")
    lu.assertEquals(exported, declared)
end

function TestLayout:test_library_has_a_soname()
    local out = table.concat(lines_of("objdump -p " .. sh(BUILD .. "/liblmdisc.so") .. " | grep SONAME"), "\n")
    lu.assertStrContains(out, "liblmdisc.so.0")
end

os.exit(lu.LuaUnit.run())
