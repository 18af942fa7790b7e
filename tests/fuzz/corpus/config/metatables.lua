setmetatable(_G, { __index = function(t, k) return k end, __newindex = function() error("no") end })
function filter() end
