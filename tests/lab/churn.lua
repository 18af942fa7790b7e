-- A deterministic burst of registrations, TXT changes and withdrawals
-- through an agent's API (tests/lab/test_attack_*.lua), with its model:
-- what the network should hold once it has run.
local M = {}

--- ops: shell lines (each a curl printing "CODE METHOD NAME"), model:
-- {name = last TXT v}, ports: {name = its last registration's port}, for count operations on names tag-1..tag-nnames.
-- opts.ttl: the registrations' ttl (300); opts.txt(k): extra TXT fields as
-- JSON text to add to each registration and change (e.g. a huge TXT).
function M.ops(q, sock, tag, nnames, count, seed, opts)
    opts = opts or {}
    local extra = opts.txt or function() return "" end
    local names, model, ops, ports = {}, {}, {}, {}
    for i = 1, nnames do names[i] = ("%s-%d"):format(tag, i) end
    local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n + 1 end
    for k = 1, count do
        local n = names[rnd(#names)]
        local body, method, path
        if model[n] == nil then
            method, path = "PUT", ("/v1/services/%s?ttl=%d"):format(n, opts.ttl or 300)
            body = ('{"port": %d, "txt": {"v": "%d"%s}}'):format(9000 + k, k, extra(k))
            model[n] = tostring(k)
            ports[n] = 9000 + k
        elseif rnd(10) <= 7 then
            method, path, body = "PATCH", "/v1/services/" .. n, ('{"txt": {"v": "%d"%s}}'):format(k, extra(k))
            model[n] = tostring(k)
        else
            method, path = "DELETE", "/v1/services/" .. n
            model[n] = nil
        end
        ops[#ops + 1] = ("curl -s -o /dev/null -w '%%{http_code} %s %s\\n' --max-time 20 --unix-socket %s -X %s%s " ..
            "http://lmdisc%s"):format(method, n, q(sock), method, body and (" -H 'Content-Type: application/json' " ..
            "--data-binary " .. q(body)) or "", path)
    end
    return ops, model, ports
end

return M
