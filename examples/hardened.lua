-- The agent's limits, spelled out (each is also the default or close to it).
-- `lmdisc check examples/hardened.lua` validates it; docs/guide/agent-and-policies.md,
-- "What a policy cannot do to the agent", says what each one stops.
announce { port = 8000, info = "gemma-2b-it Q4_0", txt = { model = "gemma-2b-it" } }
registry { ttl = 60 }            -- published records live 30 s: a host that lost power is gone that soon

policy {
  deadline = 0.25,               -- a hook, timer or callback past this is stopped (pcall cannot swallow it)
  memory_mb = 32,                -- the policy's Lua state; allocations past it fail in the policy
}

watchdog { timeout = 5 }         -- the loop not turning this long (C that does not return): exit 3,
                                 -- avahi withdraws our records, the supervisor restarts the agent

health { http = "http://127.0.0.1:8000/health", on_fail = "status" }   -- status=down: peers see routable = false

function filter(peer)
  -- patterns run in C, where no deadline reaches: anchored, on short strings
  return (peer.txt.model or ""):match("^gemma") ~= nil
end
