local t = {}
for i = 1, 1000 do t[i] = ("x"):rep(1 << 20) .. i end
