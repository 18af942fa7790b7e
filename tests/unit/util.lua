-- Helpers the unit suites share: quoting for the shell, reading files,
-- running commands. A path that is not absolute is read from the source tree
-- (LMDISC_SRC).
local M = {}

function M.sh(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function path_of(p)
    if p:sub(1, 1) == "/" then return p end
    return assert(os.getenv("LMDISC_SRC"), "set LMDISC_SRC to the source tree") .. "/" .. p
end

function M.read(p)
    local f = assert(io.open(path_of(p), "rb"))
    local s = f:read("a")
    f:close()
    return s
end

-- every line a command prints on stdout
function M.lines_of(cmd)
    local f = assert(io.popen(cmd))
    local out = {}
    for l in f:lines() do out[#out + 1] = l end
    f:close()
    return out
end

-- exit code and everything the command printed (stdout and stderr)
function M.run(cmd)
    local f = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
    local out = f:read("a")
    f:close()
    local code = tonumber(out:match("rc=(%d+)\n?$"))
    return code, (out:gsub("rc=%d+\n?$", ""))
end

return M
