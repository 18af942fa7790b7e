announce { port = "8000" }
registry { ttl = -1 }
