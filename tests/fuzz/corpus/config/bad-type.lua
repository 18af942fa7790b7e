announce { port = 80, type = "_lmserv._sctp", name = ("n"):rep(64) }
