-- The shell completions (completions/lmdisc.bash, completions/_lmdisc)
-- offer every subcommand and every option of each, as the code defines
-- them: the dispatch table of main.c and the getopt tables of src/cmd/
-- (the approach of test_docs.lua), plus the options parsed by hand
-- (strcmp with "--..."). bash's is run (COMP_WORDS, COMPREPLY); zsh's is
-- read (one _lmdisc_COMMAND function per command), and parsed by zsh -n
-- when zsh is there. Both are installed by CMake and by the package.
local lu = require "luaunit"
local util = require "util"
local sh = util.sh
local read = util.read
local lines_of = util.lines_of
local SRC = assert(os.getenv("LMDISC_SRC"), "set LMDISC_SRC to the source tree")
local BUILD = assert(os.getenv("LMDISC_BUILD"), "set LMDISC_BUILD to the build directory")

local function run(cmd)
    local f = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
    local out = f:read("a")
    f:close()
    return tonumber(out:match("rc=(%d+)\n?$")), out
end

-- {command = {"--long", "-s", ...}} from the code; "" holds the global options
local function options_from_code()
    local commands, opts = {}, {}
    for name in read("src/cmd/main.c"):gmatch('{%s*"([%w%-]+)"%s*,%s*lmd_cmd_[%w_]+%s*}') do
        commands[#commands + 1] = name
        opts[name] = {}
    end
    local shared = {} -- a file's table used by other commands (client.c: peers, watch)
    for _, f in ipairs(lines_of("cd " .. sh(SRC) .. " && ls src/cmd/*.c")) do
        local text = read(f)
        local owners = {}
        local own = f:match("^src/cmd/cmd_([%w]+)%.c$")
        if own and opts[own] then owners = { own } end
        if f == "src/cmd/client.c" then
            for _, g in ipairs(lines_of("cd " .. sh(SRC) .. " && grep -l 'lmd_client_parse(' src/cmd/cmd_*.c")) do
                owners[#owners + 1] = g:match("cmd_([%w]+)%.c$")
            end
            shared = owners
        end
        if f == "src/cmd/main.c" then owners = { "" }; opts[""] = {} end
        local found = {}
        -- getopt tables: {"name", required_argument, NULL, 'n'}, short only if in the optstring
        local optstring = text:match('getopt_long%([^,]+,[^,]+,%s*"([^"]*)"') or ""
        for long, short in text:gmatch('{%s*"([%w%-]+)"%s*,%s*[%a_]+_argument%s*,%s*NULL%s*,%s*\'(.)\'%s*}') do
            found[#found + 1] = "--" .. long
            if optstring:find(short, 1, true) then found[#found + 1] = "-" .. short end
        end
        -- parsed by hand: strcmp(x, "--name"), strncmp(x, "--log-level", 11)
        for long in text:gmatch('strn?cmp%([^,]+,%s*"(%-%-[%w%-]+)"') do found[#found + 1] = long end
        for short in text:gmatch('strcmp%([^,]+,%s*"(%-%a)"%)') do found[#found + 1] = short end
        for _, o in ipairs(owners) do
            for _, x in ipairs(found) do opts[o][x] = true end
        end
    end
    lu.assertTrue(#commands >= 10, "found only " .. #commands .. " commands")
    lu.assertTrue(#shared >= 2, "client.c's options: used by " .. #shared .. " commands")
    return commands, opts
end

--- What bash's completion offers for the words (the last one is completed).
local function bash_complete(words)
    local q = {}
    for i, w in ipairs(words) do q[i] = sh(w) end
    local script = ("source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _lmdisc; printf '%%s\\n' \"${COMPREPLY[@]}\"")
        :format(sh(SRC .. "/completions/lmdisc.bash"), table.concat(q, " "), #words - 1)
    local code, out = run("bash --norc --noprofile -c " .. sh(script))
    lu.assertEquals(code, 0, out)
    local got = {}
    for l in out:gmatch("[^\n]+") do if not l:find("^rc=") then got[l] = true end end
    return got
end

local function sorted_keys(t)
    local out = {}
    for k in pairs(t) do out[#out + 1] = k end
    table.sort(out)
    return out
end

TestCompletions = {}

function TestCompletions:test_bash_offers_every_command_and_option()
    local commands, opts = options_from_code()
    local got = bash_complete({ "lmdisc", "" })
    for _, c in ipairs(commands) do lu.assertTrue(got[c], "lmdisc <TAB> lacks " .. c) end
    local missing = {}
    for _, o in ipairs(sorted_keys(opts[""])) do
        if not bash_complete({ "lmdisc", "-" })[o] then missing[#missing + 1] = "lmdisc " .. o end
    end
    for _, c in ipairs(commands) do
        local offered = bash_complete({ "lmdisc", c, "-" })
        for _, o in ipairs(sorted_keys(opts[c])) do
            if not offered[o] then missing[#missing + 1] = "lmdisc " .. c .. " " .. o end
        end
        -- and after a global option
        offered = bash_complete({ "lmdisc", "--log-level", "DEBUG", c, "--" })
        for _, o in ipairs(sorted_keys(opts[c])) do
            if o:find("^%-%-") and not offered[o] then missing[#missing + 1] = "lmdisc --log-level DEBUG " .. c .. " " .. o end
        end
    end
    lu.assertEquals(missing, {}, "options the bash completion does not offer")
end

function TestCompletions:test_bash_completes_values()
    lu.assertEquals(sorted_keys(bash_complete({ "lmdisc", "--log-level", "" })), { "DEBUG", "ERROR", "INFO", "WARNING" })
    lu.assertEquals(sorted_keys(bash_complete({ "lmdisc", "dr" })), { "drain" })
    lu.assertTrue(bash_complete({ "lmdisc", "check", "--user", "ro" }).root)
    lu.assertEquals(sorted_keys(bash_complete({ "lmdisc", "discover", "--type", "" })), { "_lmserv._tcp" })
    lu.assertEquals(sorted_keys(bash_complete({ "lmdisc", "drain", "--grace", "" })), {})
    -- files where a file goes
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. sh(dir) .. " && touch " .. sh(dir .. "/agent.lua")))
    lu.assertTrue(bash_complete({ "lmdisc", "agent", "-c", dir .. "/ag" })[dir .. "/agent.lua"])
    lu.assertTrue(bash_complete({ "lmdisc", "check", dir .. "/ag" })[dir .. "/agent.lua"])
    lu.assertTrue(bash_complete({ "lmdisc", "--log-level", "INFO", "test", dir .. "/" })[dir .. "/agent.lua"])
    os.execute("rm -rf " .. sh(dir))
end

-- zsh: the _lmdisc_COMMAND function of each command names each option
function TestCompletions:test_zsh_names_every_command_and_option()
    local commands, opts = options_from_code()
    local text = read("completions/_lmdisc")
    lu.assertStrMatches(text, "^#compdef lmdisc\n.*")
    local main = text:match("\n_lmdisc%(%) {\n(.-)\n}\n")
    lu.assertNotNil(main, "no _lmdisc function")
    local missing = {}
    for _, o in ipairs(sorted_keys(opts[""])) do
        local flag = o:gsub("%-", "%%-")
        if not (main:find("'" .. flag .. "%[") or main:find("[{,]" .. flag .. "[,}]")) then
            missing[#missing + 1] = "lmdisc " .. o
        end
    end
    for _, c in ipairs(commands) do
        lu.assertStrContains(main, "'" .. c .. ":", false, "the command list lacks " .. c)
        local body = text:match("\n_lmdisc_" .. c .. "%(%) {\n(.-)\n}\n")
        if not body then
            missing[#missing + 1] = "_lmdisc_" .. c .. "()"
        else
            for _, o in ipairs(sorted_keys(opts[c])) do
                local flag = o:gsub("%-", "%%-")
                -- '--opt[...]', or {-o,--opt}'[...]'
                if not (body:find("'" .. flag .. "%[") or body:find("[{,]" .. flag .. "[,}]")) then
                    missing[#missing + 1] = "lmdisc " .. c .. " " .. o
                end
            end
        end
    end
    lu.assertEquals(missing, {}, "what the zsh completion does not name")
    if run("command -v zsh") == 0 then
        local code, out = run("zsh -n " .. sh(SRC .. "/completions/_lmdisc"))
        lu.assertEquals(code, 0, out)
    end
end

function TestCompletions:test_cmake_and_the_package_install_them()
    local dir = os.tmpname()
    os.remove(dir)
    local code, out = run(("cmake --install %s --prefix %s"):format(sh(BUILD), sh(dir)))
    lu.assertEquals(code, 0, out)
    lu.assertEquals(read(dir .. "/share/bash-completion/completions/lmdisc"), read("completions/lmdisc.bash"))
    lu.assertEquals(read(dir .. "/share/zsh/vendor-completions/_lmdisc"), read("completions/_lmdisc"))
    os.execute("rm -rf " .. sh(dir))
    local install = read("debian/lmdisc.install")
    lu.assertStrContains(install, "usr/share/bash-completion/completions/lmdisc\n")
    lu.assertStrContains(install, "usr/share/zsh/vendor-completions/_lmdisc\n")
end

os.exit(lu.LuaUnit.run())
