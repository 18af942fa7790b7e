announce { port = 80, txt = { info = "x", [""] = "y", k = ("v"):rep(300) } }
