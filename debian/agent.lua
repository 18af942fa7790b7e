-- /etc/lmdisc/agent.lua: the lmdisc agent's configuration (lmdisc.conf(5)).
--
-- As installed, the agent announces nothing of its own: it keeps a live
-- registry of the LMServ servers on the LAN (lmdisc peers, lmdisc watch,
-- GET /v1/peers on /run/lmdisc/agent.sock) and announces the servers of this
-- host that register themselves through its socket:
--
--   * Python servers: `from lmdisc import announce_self` (python3-lmdisc) and
--     announce_self(8000, "gemma-2b-it Q4_0"), as with the old module; the
--     server's user joins the group lmdisc (adduser USER lmdisc).
--   * anything else: PUT /v1/services/NAME on the socket (lmdisc-api(7)).
--
-- To announce a server this file describes instead, remove the "--" before
-- the announce line below and give its port and what it serves:
--
-- announce { port = 8000, info = "gemma-2b-it Q4_0", txt = { model = "gemma-2b-it", quant = "Q4_0" } }
--
-- then check the file as the service will read it, and make the agent
-- reread it (a broken file is refused; the running configuration stays):
--
--   lmdisc check --user lmdisc /etc/lmdisc/agent.lua
--   systemctl reload lmdisc
--
-- Key files (trust { key = ... }, wide_area { key = ... }) must be readable by
-- the agent's user and nobody else: chown root:lmdisc FILE; chmod 640 FILE.
-- Files a policy writes go under /var/lib/lmdisc or /run/lmdisc: the service
-- may write nowhere else (README.Debian).
-- More examples: /usr/share/doc/lmdisc/examples/.

registry { ttl = 60 }

-- A policy hook, to show the shape (see lmdisc.conf(5) for every hook):
function on_join(peer)
  lmdisc.log.info("peer %s joined at %s:%d (%s)", peer.name, peer.host, peer.port, peer.info or "-")
end
