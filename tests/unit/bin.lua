--- What the unit suites that run the lmdisc binary share (no network).
--
--   local B = require "bin"
--   local code, out = B.run("check " .. B.sh(path), "ENV=value")
--   local path = B.file("registry { ttl = 30 }")   -- a temporary .lua file
local San = require "sanitizer"
local B = {}

B.BIN = assert(os.getenv("LMDISC_BIN"), "set LMDISC_BIN to the lmdisc binary")

--- s quoted for the shell
function B.sh(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

--- Run `lmdisc ARGS` (args already quoted), env prefixed; exit code, output.
--- A sanitizer report in the output, or the sanitizers' exit code, fails
--- the test whatever it expected (tests/lab/sanitizer.lua).
function B.run(args, env)
    local f = io.popen((env or "") .. " " .. B.sh(B.BIN) .. " " .. args .. " 2>&1; echo \"rc=$?\"")
    local out = f:read("a")
    f:close()
    local code = tonumber(out:match("rc=(%d+)\n?$"))
    San.check("lmdisc " .. args, out, code, 2)
    return code, out
end

--- The same for any command line (already quoted): exit code, output.
function B.sh_run(cmd)
    local f = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
    local out = f:read("a")
    f:close()
    local code = tonumber(out:match("rc=(%d+)\n?$"))
    San.check(cmd, out, code, 2)
    return code, out
end

--- text in a new temporary file ending in .lua; its path
function B.file(text)
    local path = os.tmpname() .. ".lua"
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    return path
end

return B
