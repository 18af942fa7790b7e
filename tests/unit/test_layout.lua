-- The house rules of src/ (README, "Layout"), checked on every run so that
-- they stay true: a folder is a job, and jobs call each other one way only
-- (no call cycle between folders); no folder grows past about a fifth of
-- src/; files a reader can hold in mind; one foreign API per place; no
-- include cycles; a library whose exports are its header.
local lu = require "luaunit"
local util = require "util"
local sh = util.sh
local read = util.read
local lines_of = util.lines_of
local SRC = assert(os.getenv("LMDISC_SRC"), "set LMDISC_SRC to the source tree")
local BUILD = assert(os.getenv("LMDISC_BUILD"), "set LMDISC_BUILD to the build directory")


local FILES = lines_of("cd " .. sh(SRC) .. " && find src -name '*.[ch]' | sort")


local function nlines(rel) return select(2, read(rel):gsub("\n", "")) end
local function folder_of(rel) return rel:match("^src/([^/]+)/") end

TestLayout = {}

function TestLayout:test_there_are_sources()
    lu.assertTrue(#FILES > 30, "found only " .. #FILES .. " files under src/")
end

-- ---- no call cycle between folders ------------------------------------

-- A folder is a job: its files may call into the folders below it, and
-- those call back only through callbacks (function pointers), never by
-- name.  The calls are read from the build's object files (the linker's
-- view, not the text): a file of folder X whose object needs a function
-- an object of folder Y defines is an edge X -> Y; X -> Y with a path back
-- from Y to X is a cycle.  src/cmd is included (nothing calls it).

-- A cycle being untangled, by its folders in order joined by "<->", and
-- why it may stay for now.  Delete the line when it is gone.
local KNOWN_CYCLES = {
}

-- The functions each object defines and needs, by source path.
local function objects()
    local list = lines_of("find " .. sh(BUILD .. "/CMakeFiles") .. " -path '*.dir/src/*.c.o' | sort")
    local objs = {}
    for _, o in ipairs(list) do
        local rel = o:match("%.dir/(src/.+)%.o$")
        -- an object whose source has gone (moved, deleted) is a leftover
        local src = rel and io.open(SRC .. "/" .. rel)
        if src then src:close() end
        if src and not objs[rel] then
            local defs, uses = {}, {}
            for _, l in ipairs(lines_of("nm --defined-only " .. sh(o))) do
                local sym = l:match("^%x+ [TWi] (%S+)$")
                if sym then defs[#defs + 1] = sym end
            end
            for _, l in ipairs(lines_of("nm -u " .. sh(o))) do
                local sym = l:match("^%s+[Uw] (%S+)$")
                if sym then uses[#uses + 1] = sym end
            end
            objs[rel] = { defs = defs, uses = uses }
        end
    end
    return objs
end

-- edges[X][Y] = { "agent/self.c calls lmd_wide_publish (wide/publish.c)", ... }
local function folder_edges(objs)
    local where = {}
    for rel, o in pairs(objs) do
        for _, s in ipairs(o.defs) do where[s] = rel end
    end
    local edges = {}
    for rel, o in pairs(objs) do
        local x = folder_of(rel)
        for _, s in ipairs(o.uses) do
            local def = where[s]
            local y = def and folder_of(def)
            if y and y ~= x then
                edges[x] = edges[x] or {}
                edges[x][y] = edges[x][y] or {}
                local calls = edges[x][y]
                calls[#calls + 1] = rel:gsub("^src/", "") .. " calls " .. s .. " (" .. def:gsub("^src/", "") .. ")"
            end
        end
    end
    for _, ys in pairs(edges) do
        for _, calls in pairs(ys) do table.sort(calls) end
    end
    return edges
end

-- The cycles of a folder graph: its strongly connected components of more
-- than one folder (Tarjan), each as { key = "a<->b<->c", calls = {...} }
-- with every call between two of its folders.  Pure: tested below on a
-- graph made up for it.
local function folder_cycles(edges)
    local index, low, on, stack, n, comps = {}, {}, {}, {}, 0, {}
    local nodes = {}
    for x, ys in pairs(edges) do
        nodes[x] = true
        for y in pairs(ys) do nodes[y] = true end
    end
    local order = {}
    for x in pairs(nodes) do order[#order + 1] = x end
    table.sort(order)
    local function connect(v)
        n = n + 1
        index[v], low[v] = n, n
        stack[#stack + 1], on[v] = v, true
        local ys = {}
        for y in pairs(edges[v] or {}) do ys[#ys + 1] = y end
        table.sort(ys)
        for _, w in ipairs(ys) do
            if not index[w] then
                connect(w)
                low[v] = math.min(low[v], low[w])
            elseif on[w] then
                low[v] = math.min(low[v], index[w])
            end
        end
        if low[v] == index[v] then
            local comp = {}
            repeat
                local w = table.remove(stack)
                on[w] = nil
                comp[#comp + 1] = w
            until w == v
            if #comp > 1 then comps[#comps + 1] = comp end
        end
    end
    for _, v in ipairs(order) do
        if not index[v] then connect(v) end
    end
    local cycles = {}
    for _, comp in ipairs(comps) do
        table.sort(comp)
        local in_comp, calls = {}, {}
        for _, f in ipairs(comp) do in_comp[f] = true end
        for _, x in ipairs(comp) do
            local ys = {}
            for y in pairs(edges[x] or {}) do
                if in_comp[y] then ys[#ys + 1] = y end
            end
            table.sort(ys)
            for _, y in ipairs(ys) do
                local list = edges[x][y]
                calls[#calls + 1] = ("%s -> %s: %s%s"):format(x, y, table.concat(list, ", ", 1, math.min(#list, 8)),
                    #list > 8 and (" (+%d more)"):format(#list - 8) or "")
            end
        end
        cycles[#cycles + 1] = { key = table.concat(comp, "<->"), calls = calls }
    end
    table.sort(cycles, function(a, b) return a.key < b.key end)
    return cycles
end

local OBJS = nil
local function objs()
    OBJS = OBJS or objects()
    return OBJS
end

function TestLayout:test_every_source_has_an_object_file()
    -- the call graph below is only as complete as the build
    local missing = {}
    for _, f in ipairs(FILES) do
        if f:match("%.c$") and not objs()[f] then missing[#missing + 1] = f end
    end
    lu.assertEquals(missing, {}, "no object file under " .. BUILD .. "/CMakeFiles: build first")
end

function TestLayout:test_no_call_cycle_between_folders()
    local edges = folder_edges(objs())
    -- what every folder does: the graph was read
    lu.assertNotNil(edges.dns and edges.dns.base, "no call from src/dns to src/base found: nm read nothing?")
    local wrong = {}
    for _, c in ipairs(folder_cycles(edges)) do
        if not KNOWN_CYCLES[c.key] then
            wrong[#wrong + 1] = "call cycle " .. c.key .. ":\n    " .. table.concat(c.calls, "\n    ")
        end
    end
    lu.assertEquals(wrong, {}, "a folder calls one above it by name: pass a callback instead")
end

function TestLayout:test_the_cycle_finder_finds_cycles()
    local function e(list) return { list } end
    local edges = {
        cmd = { agent = e("cmd/main.c calls a") },
        agent = { wide = e("agent/x.c calls w"), base = e("agent/x.c calls b") },
        wide = { dns = e("wide/y.c calls d") },
        dns = { agent = e("dns/z.c calls back") , base = e("dns/z.c calls b") },
        mdns = { base = e("mdns/p.c calls b") },
    }
    local c = folder_cycles(edges)
    lu.assertEquals(#c, 1)
    lu.assertEquals(c[1].key, "agent<->dns<->wide")
    lu.assertEquals(c[1].calls, { "agent -> wide: agent/x.c calls w", "dns -> agent: dns/z.c calls back",
        "wide -> dns: wide/y.c calls d" })
    edges.base = { mdns = e("base/u.c calls m") }
    c = folder_cycles(edges)
    lu.assertEquals(#c, 2)
    lu.assertEquals(c[2].key, "base<->mdns")
    lu.assertEquals(folder_cycles({ a = { b = e("x") }, b = { c = e("y") } }), {})
end

function TestLayout:test_known_cycles_are_still_cycles()
    -- an allowance outliving its cycle would let it come back unseen
    local live = {}
    for _, c in ipairs(folder_cycles(folder_edges(objs()))) do live[c.key] = true end
    for key, why in pairs(KNOWN_CYCLES) do
        lu.assertTrue(live[key], "KNOWN_CYCLES[\"" .. key .. "\"] (" .. why .. "): that cycle is gone; delete the line")
    end
end

-- ---- sizes -------------------------------------------------------------

-- No folder of src/ holds more than about a fifth of its C (lines of .c
-- and .h files): a bigger one is more than one job.
local FOLDER_SHARE_MAX = 0.22

function TestLayout:test_no_folder_holds_over_a_fifth_of_src()
    local per, total = {}, 0
    for _, f in ipairs(FILES) do
        local n = nlines(f)
        local d = folder_of(f) or "."
        per[d] = (per[d] or 0) + n
        total = total + n
    end
    local big = {}
    for d, n in pairs(per) do
        if n > FOLDER_SHARE_MAX * total then
            big[#big + 1] = ("src/%s: %d of %d lines (%.1f %%)"):format(d, n, total, 100 * n / total)
        end
    end
    table.sort(big)
    lu.assertEquals(big, {}, ("over %d %% of src/: split the folder by job"):format(FOLDER_SHARE_MAX * 100))
end

-- Files under about 600 lines are the norm; a longer one must be named
-- here with the reason it is one piece.
local FILE_LINES_MAX = 600
local LONG_FILES = {
    -- ["src/x/y.c"] = "why it cannot be split by job",
}

function TestLayout:test_files_stay_under_600_lines()
    local big = {}
    for _, f in ipairs(FILES) do
        local n = nlines(f)
        if n > FILE_LINES_MAX and not LONG_FILES[f] then big[#big + 1] = f .. " (" .. n .. " lines)" end
    end
    lu.assertEquals(big, {}, "split these files by job (or name one in LONG_FILES with the reason)")
    for f in pairs(LONG_FILES) do
        lu.assertTrue(nlines(f) > FILE_LINES_MAX, f .. " is short again: drop it from LONG_FILES")
    end
end

-- ---- foreign APIs and headers -----------------------------------------

-- Each foreign API has one home.
local HOMES = {
    { pattern = "#include <avahi-", where = "^src/mdns/", what = "avahi headers" },
    { pattern = "#include <lua.h>", where = { "^src/lua/", "^src/policy/" }, what = "lua.h" },
    { pattern = "#include <lauxlib.h>", where = { "^src/lua/", "^src/policy/" }, what = "lauxlib.h" },
    { pattern = "#include <lualib.h>", where = { "^src/lua/", "^src/policy/" }, what = "lualib.h" },
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
            local wheres = type(h.where) == "table" and h.where or { h.where }
            local home = false
            for _, w in ipairs(wheres) do home = home or f:find(w) ~= nil end
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
