announce { port = 8000, info = "gemma-2b-it Q4_0", name = "h1:8000", type = "_lmserv._tcp",
  txt = { model = "gemma-2b-it", quant = "Q4_0", n = 4, flag = true }, ttl = 30 }
registry { ttl = 60, include_self = true }
policy { deadline = 0.5, memory_mb = 16 }
api { socket = "/run/lmdisc/agent.sock", socket_mode = tonumber("660", 8), listen = "[::1]:7380", allow_remote = false }
health { http = "http://127.0.0.1:8000/health", interval = 2, timeout = 1, failures = 3, on_fail = "status" }
checks { http = "/health", interval = 1, timeout = 1, failures = 2, concurrency = 8 }
log { level = "debug" }
function filter(peer) return peer.txt.model == "gemma-2b-it" end
function info(peer) return peer.txt.model .. " " .. (peer.txt.quant or "") end
function on_join(peer) lmdisc.log.info("joined %s", peer.name) end
function on_update(peer, old, changes) end
function on_leave(peer, reason) end
