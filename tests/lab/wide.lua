-- Helpers shared by the wide-area lab suites (test_wide_*.lua).  Each
-- suite makes one class per DNS server (make_class(kind)); a class's lab
-- exists once its setUpClass ran, so the helpers ask for it when called.
local lu = require "luaunit"
local Lab = require "lab"

local W = {}

-- a Lua pattern matching s literally
function W.esc(s) return (s:gsub("[%[%]%(%)%.%%%+%-%*%?%^%${}]", "%%%0")) end

-- the lines of a hooks record (rec("join", name, ...)) about peer NAME
function W.only(S, file, name)
    local t = {}
    for line in S.read(file):gmatch("[^\n]+") do
        if line:find("^%a+|" .. W.esc(name) .. "|") then t[#t + 1] = line .. "\n" end
    end
    return table.concat(t)
end

--- The helpers of one class: get_lab() returns its lab, kind its server.
function W.helpers(S, get_lab, kind)
    local H = {}

    -- a line of p's log matching pattern (the nth), or the test fails with the log
    function H.await(p, pattern, timeout, nth)
        local line, err = get_lab():wait_log(p, pattern, timeout or 15, nth)
        if not line then
            lu.fail(tostring(err) .. "\n--- " .. (type(p) == "table" and p.log .. ":\n" .. S.tail(p:output())
                or p .. ":\n" .. S.read(p)))
        end
        return line
    end

    -- the agent's /metrics (the agent behind sock on host)
    function H.metrics(host, sock)
        local _, out = get_lab():exec(host, "curl -s --max-time 5 --unix-socket " .. S.q(sock) .. " http://agent/metrics")
        return out
    end

    -- one sample of a /metrics text, by its full name and labels
    function H.metric(text, line)
        return tonumber(("\n" .. text):match("\n" .. W.esc(line) .. " (%S+)"))
    end

    -- the checks of the domain the agent behind sock has made (any result)
    function H.polls(host, sock)
        local m = H.metrics(host, sock)
        local n = 0
        for v in m:gmatch('\nlmdisc_dns_polls_total{result="[^"]*"} (%S+)') do n = n + tonumber(v) end
        return n, m
    end

    -- wait until that agent has checked the domain k more times: positive
    -- evidence that what a poll would have brought has come (no sleep
    -- standing in for it; each poll ends a read attempt); at most timeout s
    function H.await_polls(host, sock, k, timeout)
        local n0 = H.polls(host, sock)
        local deadline = Lab.now() + (timeout or 15)
        local n, m = n0, ""
        repeat
            Lab.sleep(0.2)
            n, m = H.polls(host, sock)
        until n >= n0 + k or Lab.now() > deadline
        lu.assertTrue(n >= n0 + k, ("%d more polls, %d awaited:\n%s"):format(n - n0, k, m))
        return m
    end

    -- a measurement for the log, tagged with the server
    function H.note(fmt, ...) io.stderr:write(("[%s] "):format(kind) .. fmt:format(...) .. "\n") end

    return H
end

return W
