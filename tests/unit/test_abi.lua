-- The public C API's ABI (include/lmdisc.h, "ABI rules") against the
-- committed lists: liblmdisc.so exports what debian/liblmdisc0.symbols
-- lists (test_layout.lua checks those against the header), and the layout
-- of every public struct and the value of every constant are those of
-- tests/abi/layout-ARCH.txt.  A change to either is made on purpose, by
-- updating the list in the same commit.  No network.
local lu = require "luaunit"
local util = require "util"
local sh = util.sh
local read = util.read
local lines_of = util.lines_of
local SRC = assert(os.getenv("LMDISC_SRC"), "set LMDISC_SRC to the source tree")
local BUILD = assert(os.getenv("LMDISC_BUILD"), "set LMDISC_BUILD to the build directory")


-- debian/liblmdisc0.symbols: the soname line, then " name@Base version"
local function symbols_file()
    local text = read(SRC .. "/debian/liblmdisc0.symbols")
    local soname, package = text:match("^(%S+) (%S+) #MINVER#\n")
    local names = {}
    for name in text:gmatch("\n ([%w_]+)@Base %S+") do names[#names + 1] = name end
    table.sort(names)
    return soname, package, names
end

TestAbi = {}

function TestAbi:test_exports_are_the_committed_symbols()
    local _, _, listed = symbols_file()
    lu.assertTrue(#listed >= 20, "parsed only " .. #listed .. " symbols")
    local exported = lines_of("nm -D --defined-only " .. sh(BUILD .. "/liblmdisc.so") ..
        " | awk '$2 ~ /^[TWDBRVi]$/ {print $3}' | grep -v '^_' | sort")
    lu.assertEquals(exported, listed,
        "liblmdisc.so's exports differ from debian/liblmdisc0.symbols: a symbol is only ever added, " ..
        "listed there with the version that added it")
end

function TestAbi:test_soname_is_the_symbols_file_and_the_package()
    local soname, package = symbols_file()
    lu.assertNotNil(soname, "no soname line in debian/liblmdisc0.symbols")
    local out = table.concat(lines_of("objdump -p " .. sh(BUILD .. "/liblmdisc.so") .. " | grep SONAME"), "\n")
    lu.assertEquals(out:match("SONAME%s+(%S+)"), soname)
    local n = soname:match("^liblmdisc%.so%.(%d+)$")
    lu.assertNotNil(n, soname)
    lu.assertEquals(package, "liblmdisc" .. n)
    lu.assertStrContains(read(SRC .. "/debian/control"), "\nPackage: " .. package .. "\n")
    lu.assertStrContains(read(SRC .. "/CMakeLists.txt"), "set(LMD_SOVERSION " .. n .. ")")
end

local function arch()
    return lines_of("uname -m")[1]
end

function TestAbi:test_layout_is_the_committed_one()
    local committed_path = SRC .. "/tests/abi/layout-" .. arch() .. ".txt"
    local f = io.open(committed_path)
    lu.assertNotNil(f, "no committed layout for " .. arch() .. ": write " .. committed_path ..
        " from the output of " .. BUILD .. "/lmd-abi-layout, after checking it against another architecture's")
    local committed = f:read("a")
    f:close()
    local now = table.concat(lines_of(sh(BUILD .. "/lmd-abi-layout")), "\n") .. "\n"
    if now ~= committed then
        local tmp = os.tmpname()
        local w = assert(io.open(tmp, "w"))
        w:write(now)
        w:close()
        local diff = table.concat(lines_of("diff -u " .. sh(committed_path) .. " " .. sh(tmp)), "\n")
        os.remove(tmp)
        lu.fail("the public ABI changed (include/lmdisc.h, \"ABI rules\"); if on purpose, update " ..
            committed_path .. ":\n" .. diff)
    end
end

-- Every struct, field and constant of the header is in the layout, so that
-- nothing public escapes the comparison.
function TestAbi:test_layout_covers_the_whole_header()
    local header = read(SRC .. "/include/lmdisc.h"):gsub("/%*.-%*/", "")
    local layout = table.concat(lines_of(sh(BUILD .. "/lmd-abi-layout")), "\n") .. "\n"
    local missing, structs = {}, 0
    for name, body in header:gmatch("typedef struct ([%w_]+) (%b{})") do
        structs = structs + 1
        if not layout:find("\nstruct " .. name .. " ", 1, true) and not layout:find("^struct " .. name .. " ") then
            missing[#missing + 1] = "struct " .. name
        end
        for decl in body:sub(2, -2):gmatch("[^;]+") do
            local field = decl:match("([%w_]+)%s*%b[]%s*$") or decl:match("([%w_]+)%s*$")
            if field and not layout:find("field " .. name .. "." .. field .. " ", 1, true) then
                missing[#missing + 1] = name .. "." .. field
            end
        end
    end
    local consts = 0
    for c in header:gmatch("\n%s+(LMD_[%u_]+) =") do
        consts = consts + 1
        if not layout:find("const " .. c .. " ", 1, true) then missing[#missing + 1] = c end
    end
    for c in header:gmatch("#define (LMD_[%u_]+) ") do
        if c ~= "LMD_API" and c ~= "LMD_ABI_ASSERT" and not c:match("_OPTS_INIT$") and
            not layout:find(" " .. c .. " ", 1, true) then
            missing[#missing + 1] = c
        end
    end
    lu.assertTrue(structs >= 8, "parsed only " .. structs .. " structs")
    lu.assertTrue(consts >= 17, "parsed only " .. consts .. " constants")
    lu.assertEquals(missing, {}, "add these to tests/abi/layout.c")
end

os.exit(lu.LuaUnit.run())
