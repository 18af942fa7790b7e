-- The version is set in one place, CMakeLists.txt's project(); everything
-- built carries it, and what cannot be built from it (debian/changelog,
-- Debian's own record; the Python package, copied as it is) must agree.
-- Bumping it: project(VERSION) in CMakeLists.txt, a debian/changelog entry
-- (dch -v X.Y.Z-1), python/lmdisc/__init__.py's __version__.  No network.
local lu = require "luaunit"
local util = require "util"
local sh = util.sh
local read = util.read
local SRC = assert(os.getenv("LMDISC_SRC"), "set LMDISC_SRC to the source tree")
local BUILD = assert(os.getenv("LMDISC_BUILD"), "set LMDISC_BUILD to the build directory")
local BIN = assert(os.getenv("LMDISC_BIN"), "set LMDISC_BIN to the lmdisc binary")

local function output(cmd)
    local f = assert(io.popen(cmd .. " 2>/dev/null"))
    local s = f:read("a")
    f:close()
    return s
end

local VERSION = read(SRC .. "/CMakeLists.txt"):match("\nproject%(lmdisc VERSION (%d+%.%d+%.%d+)[%s%)]")

TestVersion = {}

function TestVersion:test_cmake_has_the_version()
    lu.assertNotNil(VERSION, "no project(lmdisc VERSION X.Y.Z ...) in CMakeLists.txt")
end

function TestVersion:test_debian_changelog_agrees()
    -- "lmdisc (EPOCH:UPSTREAM-REVISION) ...": the newest entry comes first
    local full = read(SRC .. "/debian/changelog"):match("^lmdisc %(([^)]+)%)")
    lu.assertNotNil(full, "debian/changelog does not start with an lmdisc entry")
    local upstream = full:gsub("^%d+:", ""):gsub("%-[^-]*$", "")
    lu.assertEquals(upstream, VERSION,
        "debian/changelog's newest entry is " .. full .. ", CMakeLists.txt says " .. VERSION ..
        ": add a changelog entry (dch -v " .. VERSION .. "-1) or fix project()")
end

function TestVersion:test_python_package_agrees()
    local v = read(SRC .. "/python/lmdisc/__init__.py"):match('\n__version__ = "([^"]+)"')
    lu.assertEquals(v, VERSION, "python/lmdisc/__init__.py's __version__")
end

function TestVersion:test_the_public_header_carries_it()
    -- lmdisc.h includes the generated lmdisc_version.h (lmd_version(), the
    -- library's, is checked against it by unit_abi_opts)
    local h = read(BUILD .. "/include/lmdisc_version.h")
    lu.assertEquals(h:match('\n#define LMD_VERSION "([^"]*)"'), VERSION)
    local major, minor, patch = VERSION:match("^(%d+)%.(%d+)%.(%d+)$")
    lu.assertEquals(h:match("\n#define LMD_VERSION_MAJOR (%d+)\n"), major)
    lu.assertEquals(h:match("\n#define LMD_VERSION_MINOR (%d+)\n"), minor)
    lu.assertEquals(h:match("\n#define LMD_VERSION_PATCH (%d+)\n"), patch)
    lu.assertNil(read(SRC .. "/include/lmdisc.h"):find("#define LMD_VERSION", 1, true),
        "include/lmdisc.h types the version: it comes from lmdisc_version.h")
    lu.assertStrContains(read(SRC .. "/include/lmdisc.h"), '\n#include "lmdisc_version.h"\n')
end

function TestVersion:test_built_files_carry_it()
    lu.assertEquals(output(sh(BIN) .. " --version"):match("^lmdisc (%S+)\n"), VERSION)
    lu.assertStrContains(read(BUILD .. "/lmdisc.pc"), "\nVersion: " .. VERSION .. "\n")
    local pages = 0
    for page in output("find " .. sh(BUILD) .. " -path '*/man/*' -name '*.[1-8]' -type f"):gmatch("[^\n]+") do
        pages = pages + 1
        local th = read(page):match("\n?%.TH [^\n]*")
        lu.assertNotNil(th, page .. " has no .TH line")
        lu.assertStrContains(th, "lmdisc " .. VERSION, page)
    end
    lu.assertTrue(pages >= 2, "found " .. pages .. " man pages in the build tree")
end

os.exit(lu.LuaUnit.run())
