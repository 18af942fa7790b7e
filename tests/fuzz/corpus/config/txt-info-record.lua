local v = ("v"):rep(240)
announce { port = 8000, info = ("i"):rep(250), txt = { a = v, b = v, c = v, d = v, e = v } }
