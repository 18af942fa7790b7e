-- An agent that publishes its service in the site's DNS as well as on the
-- local link, so that peers beyond the router find it (wide-area DNS-SD,
-- RFC 6763 over unicast DNS; examples/wide-area/README.md says what the DNS
-- server needs).  What the zone then holds, read by any DNS-SD browser:
--
--   _lmserv._tcp.sd.example.org.        PTR  gpu1._lmserv._tcp.sd.example.org.
--   gpu1._lmserv._tcp.sd.example.org.   SRV  0 0 8000 gpu1.sd.example.org.
--   gpu1._lmserv._tcp.sd.example.org.   TXT  "info=gemma-2b-it Q4_0" "model=gemma-2b-it" "lmd-live=5f3a09c2/900"
--   gpu1.sd.example.org.                A / AAAA  this host's routable addresses
--
-- The instance name is the host's name here: the server grants each host's
-- key HOST._lmserv._tcp.DOMAIN, so announce.name must be what the grant says.
announce { port = 8000, name = "gpu1", info = "gemma-2b-it Q4_0", txt = { model = "gemma-2b-it" } }

wide_area {
  domain = "sd.example.org",          -- a zone on the server (or a name inside one)
  server = "10.0.0.53",               -- the zone's primary: updates go there (an address, not a name)
  key    = "/etc/lmdisc/host.tsig",   -- tsig-keygen gpu1-key > host.tsig; chown root:lmdisc; chmod 640
  lease  = 900,                       -- refreshed every ~450 s (lmd-live=SEQ/LEASE, SEQ new each time);
                                      -- peers drop it as expired 900 s after its last refresh
  -- sweep_key = "/etc/lmdisc/sweeper.tsig",  -- on a few hosts: remove expired services' records
  -- host = "gpu1",                   -- the SRV target's label; default: the short host name
  -- read = { "10.1.0.53", "10.2.0.53" },  -- a site's secondaries, this subnet's first: reads go there
  -- notify = 5300,                   -- take NOTIFY signed by this host's key on UDP 5300 (the
                                      -- server's also-notify { ADDR port 5300 key gpu1-key; })
  -- also_notify = { "10.1.0.53", "10.2.0.53" },  -- NOTIFY the secondaries after each change of ours
                                      -- (behind a Knot primary, whose own NOTIFY comes 1 s late;
                                      -- they need allow-notify { key gpu1-key; } / a notify acl)
}

-- Servers on this host that register through the agent's API (Python:
-- announce_self(8001, info, name="gpu1-llama")) are published in the domain
-- too, each under its own name: grant the host's key each such name
-- (bind/named.conf.local, knot/knot.conf).  Their state in the zone is in
-- GET /v1/self ("dns": {"state": "published"}).
api { socket = "/run/lmdisc/agent.sock" }

-- Networks without multicast (cloud VPCs, client-isolated Wi-Fi): DNS alone.
-- mdns { enabled = false }

-- Failed updates are logged and counted (lmdisc_dns_updates_total{result})
-- and retried; the local-link side never waits for the DNS server.
health { http = "http://127.0.0.1:8000/health", on_fail = "status" }   -- status=down reaches the zone too
