-- A policy that tries every way a careless or hostile script has wedged the
-- agent; each trick runs in on_join for a peer named after it.
registry { ttl = 60 }
policy { deadline = 0.2 }

local tricks = {}

tricks.loop = function() while true do end end
-- the stop must come again after every pcall that swallows it
tricks.pcall_loop = function() while true do pcall(function() while true do end end) end end
-- a message handler that loops
tricks.xpcall_handler = function() xpcall(function() while true do end end, function() while true do end end) end
-- a coroutine that swallows the stop and returns
tricks.coroutine = function()
  local co = coroutine.create(function() while true do end end)
  local ok = coroutine.resume(co)
  return ok
end
-- resuming new coroutines forever, each caught
tricks.coroutine_loop = function()
  while true do pcall(coroutine.resume, coroutine.create(function() while true do end end)) end
end
-- exponential backtracking in C, where no hook reaches
tricks.pattern = function() return ("a"):rep(3000):find(("a-"):rep(60) .. "b") end
tricks.pattern_method = function() local s = ("a"):rep(3000); return s:match(("a-"):rep(60) .. "b") end
-- quadratic on a long subject
tricks.pattern_long = function() return ("a"):rep(1000000):find(".-b") end
-- a finalizer that loops
tricks.finalizer = function() setmetatable({}, { __gc = function() while true do end end }) end
-- a FIFO: io.open would block the loop in open(2)
tricks.fifo = function() local f = assert(io.open(os.getenv("WEDGE_FIFO"), "r")); f:read("a") end
tricks.fifo_lines = function() for l in io.lines(os.getenv("WEDGE_FIFO")) do end end
tricks.fifo_dofile = function() dofile(os.getenv("WEDGE_FIFO")) end
-- memory: the cap holds for the hook's allocations
tricks.memory = function() local t = {} for i = 1, 1e6 do t[i] = ("x"):rep(1 << 20) .. i end end
-- timers past the limit
tricks.timers = function() for i = 1, 20000 do lmdisc.timer(3600, function() end) end end

function on_join(peer)
  local trick = tricks[peer.name]
  if trick then trick() end
  lmdisc.log.info("survived %s", peer.name)
end
