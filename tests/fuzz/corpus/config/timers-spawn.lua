local h = lmdisc.every(1, function() end)
lmdisc.timer(0.1, function() h:cancel() end)
print(lmdisc.spawn({"true"}, { on_exit = function(code) end }))
lmdisc.set_txt { model = "x", old = false }
print(lmdisc.self().state, #lmdisc.peers(), lmdisc.now())
