--- lmdisc.runner: every Lua function the C core calls, and nothing else.
--
-- C (src/policy/mantle.c) looks these up by name once per VM, as lsyncd's
-- core does with its runner; the list there (LMD_MANTLE_FNS in
-- src/policy/mantle.h) and this table are the whole C -> mantle contract,
-- for the agent and `lmdisc test` alike, and tests/unit/test_contract.lua
-- keeps them equal.  Results come back as tables with named fields, never
-- as positional values read by stack offset.

local policy = require "lmdisc.policy"
local config = require "lmdisc.config"

local R = {}

--- The settings of an empty configuration: what C runs with before a file
-- is loaded (the schema is the only source of defaults).
function R.defaults()
  return config.defaults()
end

--- load(path, api, internals) -> P, nil, warnings | nil, err
-- api: the `lmdisc` table the policy sees; internals: {guard =, peers_all =,
-- log =}, which only the mantle sees.
function R.load(path, api, internals)
  return policy.load(path, { api = api, guard = internals.guard, in_guard = internals.in_guard,
    stopped = internals.stopped, peers_all = internals.peers_all, log = internals.log,
    source = internals.source })
end

--- settings(P) -> the validated settings, defaults filled in
function R.settings(P)
  return P.settings
end

--- where(P, section) -> "FILE:LINE" of the directive that gave section, or
-- the file alone when the configuration leaves it out (the start checks,
-- in the agent and `lmdisc check`, say where a setting came from)
function R.where(P, section)
  return P.at and P.at[section] or P.path
end

--- peer_event(P, kind, peer, old, changes, reason) -> verdict
-- verdict: { emitted = "join" | "update" | "leave" | nil, keep = bool,
--            info = string | nil, changes = { ... } | nil }
function R.peer_event(P, kind, peer, old, changes, reason)
  local emitted, keep, info, ch = P:peer_event(kind, peer, old, changes, reason)
  return { emitted = emitted, keep = keep, info = info, changes = ch }
end

--- verdicts(P) -> { name = { keep =, info = } }: what a reload hands over
-- (the new policy runs in a VM of its own)
function R.verdicts(P)
  local out = {}
  for name, st in pairs(P._peers) do out[name] = { keep = st.keep, info = st.info } end
  return out
end

--- adopt(newP, old, peers) -> { verdict + name, ... } for a reload; old:
-- the running policy's verdicts as R.verdicts gave them
function R.adopt(newP, old, peers)
  local oldP = { verdict = function(_, name)
    local v = old[name]
    if v then return v.keep, v.info end
    return false, nil
  end }
  local out = {}
  for i, v in ipairs(newP:adopt(oldP, peers)) do
    out[i] = { emitted = v.kind, keep = v.keep, info = v.info, name = v.peer.name }
  end
  return out
end

--- start(P, peers, why): on_start(peers, why) after the policy worker was
-- restarted (why: "restart"), if the policy defines it; peers: the ones it
-- keeps now, with their info (a restart loses the policy's globals and
-- timers: on_start rebuilds them)
function R.start(P, peers, why)
  local kept = {}
  for _, peer in ipairs(peers or {}) do
    local st = P._peers[peer.name]
    if st and st.keep then
      peer.info = st.info
      kept[#kept + 1] = peer
    end
  end
  P:start(kept, why)
end

--- call(P, what, fn, ...): a user callback (timer, spawn on_exit), run like a hook
function R.call(P, what, fn, ...)
  P:call(what, fn, ...)
end

--- hooks(P) -> names of the hooks the policy defines
function R.hooks(P)
  return P:hooks()
end

--- stats(P) -> { hook_runs =, hook_errors =, hook_time = }
function R.stats(P)
  return P.stats
end

--- warnings(P) -> text, one warning per line, or ""
function R.warnings(P)
  local out = {}
  for _, w in ipairs(P.warnings or {}) do out[#out + 1] = w .. "\n" end
  return table.concat(out)
end

---------------------------------------------------------------------------
-- `lmdisc test` (src/policy/testrun.c)

local tests_run = 0

--- Count the tests luaunit runs, so that a suite that ran none fails.
function R.test_prepare()
  tests_run = 0
  local ok, lu = pcall(require, "luaunit")
  if not ok or type(lu) ~= "table" or type(lu.LuaUnit) ~= "table" then return end
  local endSuite = lu.LuaUnit.endSuite
  if type(endSuite) ~= "function" then return end
  lu.LuaUnit.endSuite = function(self, ...)
    local r = table.pack(endSuite(self, ...))
    if type(self.result) == "table" then tests_run = tests_run + (self.result.runCount or 0) end
    return table.unpack(r, 1, r.n)
  end
end

--- Tests luaunit ran since test_prepare().
function R.test_count()
  return tests_run
end

return R
