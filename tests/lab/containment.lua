-- What the policy-worker suites (test_worker.lua, test_worker_attacks.lua)
-- assert around every wedge or attack on h1: h3 (an agent following the
-- events, and avahi-browse) never sees h1's service leave, and h1's API
-- answers every 50 ms probe with 200 within the bound.
local lu = require "luaunit"
local cjson = require "cjson"

local M = {}

local function lit(s) return (s:gsub("%p", "%%%0")) end
M.lit = lit

-- GET path from the agent behind sock on host h1: decoded JSON, and its size
function M.get(S, sock, path)
    local ok, out = S.lab:exec("h1", "curl -s --max-time 3 --unix-socket " .. S.q(sock) .. " http://lmdisc" .. path)
    lu.assertTrue(ok, "GET " .. path .. ": " .. out)
    return cjson.decode(out), #out
end

-- h3's agent (its events streamed by `lmdisc watch`) and avahi-browse
function M.observers(S)
    local sock3 = S:path("h3.sock")
    S:agent("h3", ("registry { ttl = 60 }\napi { socket = %q }\n"):format(sock3))
    local watch = S:bg("h3", "exec " .. S.q(S.BIN) .. " watch --json --socket " .. S.q(sock3))
    S:await(watch, '"type":"snapshot"', 10)
    local browse = S:bg("h3", "exec avahi-browse -p -k _lmserv._tcp")
    return {watch = watch, browse = browse}
end

-- both saw name join
function M.seen(S, obs, name)
    S:await(obs.watch, '"type":"join".*"name":"' .. lit(name) .. '"', 15)
    S:await(obs.browse, "^%+;.*;" .. lit(name) .. ";", 15)
end

-- neither ever saw name leave
function M.never_left(obs, name)
    lu.assertNil(obs.watch:output():find('"type":"leave"[^\n]*"name":"' .. lit(name) .. '"'), obs.watch:output())
    lu.assertNil(obs.browse:output():find("\n%-;[^\n]*;" .. lit(name) .. ";"), obs.browse:output())
end

-- /v1/health and /v1/peers on h1, every 50 ms, for seconds
function M.probe(S, sock, seconds)
    local p = S:bg("h1", ([[
end=$(( $(date +%%s) + %d ))
while [ $(date +%%s) -lt $end ]; do
  for p in health peers; do
    curl -s -o /dev/null -w "PROBE $p %%{http_code} %%{time_total} %%{size_download}\n" --max-time 2 --unix-socket %s http://lmdisc/v1/$p
  done
  sleep 0.05
done
echo PROBE done]]):format(seconds, S.q(sock)))
    S:await(p, "^PROBE health", 5)
    return p
end

-- after the probe ended: every answer 200, at least 20, each under bound
-- seconds; the count, the slowest and the largest answer
function M.probed(S, p, seconds, bound)
    S:await(p, "^PROBE done", seconds + 10)
    local n, worst, biggest = 0, 0, 0
    for code, t, size in p:output():gmatch("PROBE %a+ (%d+) ([%d.]+) (%d+)") do
        n = n + 1
        lu.assertEquals(code, "200", p:output())
        worst = math.max(worst, tonumber(t))
        biggest = math.max(biggest, tonumber(size))
    end
    lu.assertTrue(n >= 20, "only " .. n .. " probes:\n" .. p:output())
    lu.assertTrue(worst < bound, ("an API request took %.3f s (bound %.3f s)"):format(worst, bound))
    return n, worst, biggest
end

return M
