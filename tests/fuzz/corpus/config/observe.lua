registry { ttl = 5 }
checks { tcp = true }
