-- lmdisc agent: count the peers serving each model, and log the counts
-- every minute; rebuild the counts with on_start when the agent restarts
-- the policy's worker.
--
--   lmdisc check examples/restartable/agent.lua
--   lmdisc agent -c examples/restartable/agent.lua
--   lmdisc test examples/restartable/agent.lua examples/restartable/test_agent.lua
--
-- The policy runs in a worker process.  If a hook ever loops inside a C
-- function (a pattern that backtracks, say), the agent stops that worker
-- and starts a fresh one with this file: the top-level code runs again (so
-- the timer below is made again), the peers are taken over with their
-- verdicts, and on_start(peers, "restart") is called.  What the hooks had
-- built up in globals is gone: on_start builds it again from the peers.

registry { ttl = 60 }

-- model -> number of peers serving it: built by the hooks
by_model = {}

local function count(peer, delta)
  local m = peer.txt.model or "?"
  local n = (by_model[m] or 0) + delta
  by_model[m] = n > 0 and n or nil
end

function on_join(peer) count(peer, 1) end
function on_leave(peer, reason) count(peer, -1) end
function on_update(peer, old, changes) count(old, -1); count(peer, 1) end

-- peers: the ones the policy keeps, as lmdisc.peers() returns them
function on_start(peers, why)
  by_model = {}
  for _, peer in ipairs(peers) do count(peer, 1) end
  lmdisc.log.info("policy %s: %d peer(s) taken over", why, #peers)
end

function report()
  local models = {}
  for m, n in pairs(by_model) do models[#models + 1] = ("%s=%d"):format(m, n) end
  table.sort(models)
  lmdisc.log.info("peers by model: %s", #models > 0 and table.concat(models, " ") or "none")
end

lmdisc.every(60, report)
