-- The documentation keeps up with the code: every setting of the schema is
-- in the generated lmdisc.conf(5), every API route the C code serves or asks
-- for is in lmdisc-api(7), every subcommand and long option is in
-- lmdisc(1); README.md stays short, its example policy passes its suite,
-- and every relative link of README.md and docs/ leads somewhere (and
-- README.md links every page of docs/).  No network.
local lu = require "luaunit"
local util = require "util"
local sh = util.sh
local read = util.read
local lines_of = util.lines_of
local SRC = assert(os.getenv("LMDISC_SRC"), "set LMDISC_SRC to the source tree")
local BUILD = assert(os.getenv("LMDISC_BUILD"), "set LMDISC_BUILD to the build directory")

local function exists(path)
    local f = io.open(path, "rb")
    if f then
        f:close()
        return true
    end
    return os.execute("test -e " .. sh(path)) == true
end

-- roff source as plain text: \- is -, font changes and zero-width escapes go
local function roff_text(s)
    return (s:gsub("\\%-", "-"):gsub("\\f%(..", ""):gsub("\\f%[[^%]]*%]", ""):gsub("\\f.", ""):gsub("\\&", "")
        :gsub("\\%(aq", "'"):gsub("\\e", "\\"))
end

local C_FILES = lines_of("cd " .. sh(SRC) .. " && find src -name '*.c' | sort")

TestDocs = {}

function TestDocs:test_there_is_code_to_check()
    lu.assertTrue(#C_FILES > 30, "found only " .. #C_FILES .. " C files under src/")
end

-- ---- lmdisc.conf(5) -------------------------------------------------------

-- The generated page, cut at its .SH headings: {heading = text, body = text}
local function conf_sections()
    local page = read(BUILD .. "/man/lmdisc.conf.5")
    local out, cur = {}, nil
    for line in page:gmatch("[^\n]*") do
        local h = line:match("^%.SH%s+(.*)$")
        if h then
            cur = { heading = roff_text(h):gsub('^"', ""):gsub('"$', ""), lines = {} }
            out[#out + 1] = cur
        elseif cur then
            cur.lines[#cur.lines + 1] = line
        end
    end
    return out
end

function TestDocs:test_every_schema_setting_is_in_lmdisc_conf_5()
    local config = require "lmdisc.config"
    lu.assertTrue(#config.sections >= 10, "the schema has only " .. #config.sections .. " sections")
    local sections = conf_sections()
    local missing = {}
    for _, sec in ipairs(config.sections) do
        local found
        for _, s in ipairs(sections) do
            local h = s.heading:lower()
            if h:find("^" .. sec.name:lower():gsub("%p", "%%%0") .. "%f[^%w_]") then found = s end
        end
        if not found then
            missing[#missing + 1] = sec.name .. " { } (no .SH heading)"
        else
            -- a field is a .TP entry whose tag starts with the field's name in bold
            local fields = {}
            for i = 1, #found.lines - 1 do
                if found.lines[i]:match("^%.TP") then
                    local name = found.lines[i + 1]:match("^\\fB([%w_]+)\\fR")
                    if name then fields[name] = true end
                end
            end
            for _, f in ipairs(sec.fields) do
                if not fields[f.name] then missing[#missing + 1] = sec.name .. "." .. f.name end
            end
        end
    end
    lu.assertEquals(missing, {}, "settings of lua/lmdisc/config.lua missing from " .. BUILD .. "/man/lmdisc.conf.5")
end

function TestDocs:test_lmdisc_config_5_is_the_same_page()
    lu.assertEquals(read(BUILD .. "/man/lmdisc-config.5"), read(BUILD .. "/man/lmdisc.conf.5"))
end

-- ---- lmdisc-api(7) ----------------------------------------------------------

-- Every string literal of src/ that is an API path ("/v1/...", "/metrics"),
-- without its query string or printf conversions.
local function api_paths()
    local paths, seen = {}, {}
    for _, f in ipairs(C_FILES) do
        for lit in read(SRC .. "/" .. f):gmatch('"(/[^"\n]*)"') do
            if lit:find("^/v1/") or lit == "/metrics" then
                local p = lit:gsub("[?%%].*$", "")
                if not seen[p] then
                    seen[p] = true
                    paths[#paths + 1] = { path = p, file = f }
                end
            end
        end
    end
    table.sort(paths, function(a, b) return a.path < b.path end)
    return paths
end

function TestDocs:test_every_api_route_is_in_lmdisc_api_7()
    local paths = api_paths()
    lu.assertTrue(#paths >= 8, "found only " .. #paths .. " API paths in src/")
    local page = roff_text(read(BUILD .. "/man/lmdisc-api.7"))
    local missing = {}
    for _, p in ipairs(paths) do
        -- the path itself, not a longer one (/v1/health is not /v1/healthz);
        -- a path ending in / is a prefix (/v1/peers/NAME)
        local pat = p.path:gsub("%p", "%%%0") .. (p.path:sub(-1) == "/" and "" or "%f[^%w_%-/]")
        if not page:find(pat) then missing[#missing + 1] = p.path .. " (" .. p.file .. ")" end
    end
    lu.assertEquals(missing, {}, "API paths of src/ missing from lmdisc-api(7)")
end

-- ---- lmdisc(1) --------------------------------------------------------------

local function man1() return roff_text(read(BUILD .. "/man/lmdisc.1")) end

function TestDocs:test_every_subcommand_is_in_lmdisc_1()
    -- the dispatch table: {"agent", lmd_cmd_agent}, ...
    local commands = {}
    for _, f in ipairs(C_FILES) do
        for name in read(SRC .. "/" .. f):gmatch('{%s*"([%w%-]+)"%s*,%s*lmd_cmd_[%w_]+%s*}') do
            commands[#commands + 1] = name
        end
    end
    lu.assertTrue(#commands >= 10, "found only " .. #commands .. " subcommands in src/")
    local page = man1()
    local missing = {}
    for _, c in ipairs(commands) do
        -- each has a subsection of its own: .SS lmdisc NAME ...
        if not page:find("\n%.SS%s+lmdisc%s+" .. c:gsub("%-", "%%-") .. "%f[^%w%-]") then
            missing[#missing + 1] = c
        end
    end
    lu.assertEquals(missing, {}, "subcommands without a .SS section in lmdisc(1)")
end

function TestDocs:test_every_long_option_is_in_lmdisc_1()
    -- getopt_long tables: {"name", required_argument, NULL, 'n'}
    local options, seen = {}, {}
    for _, f in ipairs(C_FILES) do
        for name in read(SRC .. "/" .. f):gmatch('{%s*"([%w%-]+)"%s*,%s*[%a_]+_argument%s*,') do
            if not seen[name] then
                seen[name] = true
                options[#options + 1] = name
            end
        end
    end
    lu.assertTrue(#options >= 20, "found only " .. #options .. " long options in src/")
    local page = man1()
    local missing = {}
    for _, o in ipairs(options) do
        if not page:find("%-%-" .. o:gsub("%-", "%%-") .. "%f[^%w%-]") then missing[#missing + 1] = "--" .. o end
    end
    lu.assertEquals(missing, {}, "long options missing from lmdisc(1)")
end

-- ---- README.md and docs/ ----------------------------------------------------

function TestDocs:test_readme_is_short()
    local n = select(2, read(SRC .. "/README.md"):gsub("\n", ""))
    lu.assertTrue(n <= 250, "README.md has " .. n .. " lines: move detail into docs/ (at most 250)")
end

-- The README's one complete example, a policy and its suite, is one that
-- `lmdisc check` and `lmdisc test` accept.
function TestDocs:test_readme_example_checks_and_its_suite_passes()
    local B = require "bin"
    local section = read(SRC .. "/README.md"):match("\n## An example[^\n]*\n(.-)\n## ")
    lu.assertNotNil(section, "README.md has no section \"## An example\"")
    local blocks = {}
    for code in section:gmatch("```lua\n(.-)```") do blocks[#blocks + 1] = code end
    lu.assertTrue(#blocks >= 2, "the example needs a policy and its suite (two lua blocks)")
    local policy, suite = B.file(blocks[1]), B.file(blocks[2])
    local code, out = B.run("check " .. B.sh(policy))
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "OK")
    local tcode, tout = B.run("test " .. B.sh(policy) .. " " .. B.sh(suite))
    for _, f in ipairs { policy, suite } do
        os.remove(f)
        os.remove((f:gsub("%.lua$", ""))) -- os.tmpname's own file
    end
    lu.assertEquals(tcode, 0, tout)
    lu.assertStrContains(tout, "OK")
end

local MARKDOWN = { "README.md" }
for _, f in ipairs(lines_of("cd " .. sh(SRC) .. " && find docs -name '*.md' | sort")) do
    MARKDOWN[#MARKDOWN + 1] = f
end

-- GitHub's anchor of a heading: lower case, punctuation dropped, spaces to -
local function slug(heading)
    return (heading:lower():gsub("[^%w%s_%-]", ""):gsub("%s", "-"))
end

local function anchors(text)
    local a = {}
    for h in text:gmatch("\n#+%s+([^\n]+)") do a[slug(h)] = true end
    for h in ("\n" .. text):gmatch("^#+%s+([^\n]+)") do a[slug(h)] = true end
    return a
end

-- Markdown text without its code (fenced blocks and `spans`), where links
-- are not links.
local function prose(text)
    return (text:gsub("\n```.-\n```", "\n"):gsub("``.-``", ""):gsub("`[^`\n]*`", ""))
end

-- Every [text](target) of a file, with the target as written.
local function links(text)
    local out = {}
    for target in prose(text):gmatch("%]%(([^)%s]+)[^)]*%)") do out[#out + 1] = target end
    for target in prose(text):gmatch("\n%[[^%]]+%]:%s*(%S+)") do out[#out + 1] = target end
    return out
end

local function dir_of(rel) return rel:match("^(.*)/[^/]*$") or "." end

-- "a/b/../c" -> "a/c"
local function normalize(path)
    local parts = {}
    for p in path:gmatch("[^/]+") do
        if p == ".." then
            if #parts == 0 or parts[#parts] == ".." then parts[#parts + 1] = ".." else parts[#parts] = nil end
        elseif p ~= "." then
            parts[#parts + 1] = p
        end
    end
    return table.concat(parts, "/")
end

-- The relative links of every Markdown file as {from, target, path, anchor}.
local function relative_links()
    local out = {}
    for _, md in ipairs(MARKDOWN) do
        for _, target in ipairs(links(read(SRC .. "/" .. md))) do
            if not target:find("^%a[%w+.%-]*:") then -- http:, mailto: ...
                local path, anchor = target:match("^([^#]*)#?(.*)$")
                path = path:gsub("%?.*$", "")
                local resolved
                if path == "" then
                    resolved = md
                elseif path:sub(1, 1) == "/" then
                    resolved = normalize(path)
                else
                    resolved = normalize(dir_of(md) .. "/" .. path)
                end
                out[#out + 1] = { from = md, target = target, path = resolved, anchor = anchor }
            end
        end
    end
    return out
end

function TestDocs:test_relative_links_lead_somewhere()
    local all = relative_links()
    lu.assertTrue(#all > 40, "found only " .. #all .. " relative links")
    local broken = {}
    for _, l in ipairs(all) do
        if l.path:find("^%.%.") or not exists(SRC .. "/" .. l.path) then
            broken[#broken + 1] = l.from .. ": " .. l.target
        elseif l.anchor ~= "" and l.path:find("%.md$") and not anchors(read(SRC .. "/" .. l.path))[l.anchor] then
            broken[#broken + 1] = l.from .. ": " .. l.target .. " (no such heading)"
        end
    end
    lu.assertEquals(broken, {}, "links to files or headings that do not exist")
end

function TestDocs:test_readme_links_every_page_of_docs()
    local linked = {}
    for _, l in ipairs(relative_links()) do
        if l.from == "README.md" then linked[l.path] = true end
    end
    local unlinked = {}
    for _, md in ipairs(MARKDOWN) do
        if md ~= "README.md" and not linked[md] then unlinked[#unlinked + 1] = md end
    end
    lu.assertEquals(unlinked, {}, "pages of docs/ that README.md does not link to")
end

os.exit(lu.LuaUnit.run())
