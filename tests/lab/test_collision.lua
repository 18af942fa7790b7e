-- Name collisions across hosts: the newcomer is renamed, never the service
-- that was established first.  An agent that starts up browses as it
-- probes; its queries carry the established service's records as known
-- answers, and avahi-daemon on the established host then suppresses its
-- answers to the newcomer's probes for 700 ms; unanswered, the newcomer
-- announced, and the established service lost its name in the conflict
-- that followed (4 of 4 trials before src/mdns/publish.c watched the
-- name's SRV records while probing).
--
-- h1 announces NAME with `lmdisc announce`; on h2 an agent announces the
-- same name (from its configuration, or registered through its API).
local lu = require "luaunit"
local Lab = require "lab"

local S = require("suite").new(2)
local q, BIN = S.q, S.BIN
local SOCK = "/run/lmdisc/coll.sock"

TestCollision = {}

function TestCollision:tearDown() S:stop_all() end

--- The established service on h1, then the newcomer on h2 (start()),
--- three times: each time the newcomer gets "NAME #2", h1 keeps NAME.
local function trials(start)
    for i = 1, 3 do
        local name = S:uniq("taken")
        local est = S:bg("h1", ("exec %s announce 9001 established --name %s"):format(q(BIN), q(name)))
        S:await(est, "^announced", 15)
        local newcomer, agent = start(name)
        local pat = name:gsub("%p", "%%%0")
        local renamed = S:await(newcomer, ("is taken on the network; publishing as '%s #2'"):format(pat), 15)
        -- the newcomer established under the new name, and sees the old one as a peer at h1
        S:await(newcomer, ('announced[^\n]*"%s #2"'):format(pat), 15)
        S:await(agent, ('join "%s" at h1%%.local:9001'):format(pat), 15)
        lu.assertNotNil(renamed)
        -- and the established one kept its name all along
        lu.assertNil(est:output():find("now announcing as", 1, true), ("trial %d: the established service "
            .. "was renamed:\n%s\n--- the newcomer:\n%s"):format(i, est:output(), S.tail(agent:output())))
        lu.assertTrue(est:running(), est:output())
        S:stop_all()
    end
end

function TestCollision:test_an_agent_starting_with_a_taken_name_renames_itself()
    trials(function(name)
        local a = S:agent("h2", ("announce { port = 9002, name = %q }\nregistry { ttl = 60 }\n"):format(name))
        return a, a
    end)
end

function TestCollision:test_a_registration_of_a_taken_name_is_renamed()
    trials(function(name)
        local a = S:agent("h2", ("registry { ttl = 60 }\napi { socket = %q }\n"):format(SOCK))
        local s = S:bg("h2", ("exec curl -sS -N --max-time 60 --unix-socket %s -X PUT "
            .. "-H 'Content-Type: application/json' --data-binary '{\"port\": 9002}' http://lmdisc/v1/services/%s")
            :format(SOCK, name))
        return a, a, s
    end)
end

-- An agent restarted at once sees its previous self's records, still in
-- its avahi-daemon's cache for a second after the goodbye: they name this
-- host, so they are not another host's claim, and it keeps its name.
function TestCollision:test_an_agent_restarted_at_once_keeps_its_name()
    local name = S:uniq("restarted")
    local text = ("announce { port = 9003, name = %q }\nregistry { ttl = 60 }\n"):format(name)
    for port = 9003, 9005 do -- the same name, on another port each time
        local a = S:agent("h1", (text:gsub("9003", tostring(port))))
        local line = S:await(a, "announced", 15)
        lu.assertEquals(line:match('announced "(.*)"$'), name, a:output())
        a:signal("TERM")
        lu.assertEquals(a:wait(10), 0, a:output())
    end
end

os.exit(lu.LuaUnit.run())
