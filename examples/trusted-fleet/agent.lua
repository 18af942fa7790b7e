-- An agent of a fleet whose members sign what they announce: peers that are
-- not signed by a host key the fleet certified never reach this policy
-- (require = true).  Set up once:
--
--   lmdisc keygen fleet                                   # keep fleet.key offline
--   lmdisc keygen /etc/lmdisc/host                        # on every host
--   chown root:lmdisc /etc/lmdisc/host.key; chmod 640 /etc/lmdisc/host.key   # the service's user reads it
--   lmdisc certify --fleet-key fleet.key --name "gpu1:*" /etc/lmdisc/host.pub   # -> host.cert
--          (the names this host may announce: the default name is HOST:PORT)
--   cp fleet.pub /etc/lmdisc/fleet.pub                    # on every host
--   lmdisc certify --revoke revoked --fleet-key fleet.key   # an empty revocation list;
--   cp revoked /etc/lmdisc/revoked                         # later: --revoke revoked stolen.pub
announce { port = 8000, info = "gemma-2b-it Q4_0", txt = { model = "gemma-2b-it" } }

trust {
  key = "/etc/lmdisc/host.key",
  cert = "/etc/lmdisc/host.cert",
  fleet = { "/etc/lmdisc/fleet.pub" },   -- add the next fleet key here before rotating to it
  revoked = "/etc/lmdisc/revoked",       -- watched: a revoked host's peers leave within a second
  require = true,
}

-- Which signer served what, for the operator's logs (signer: the host key's id).
function on_join(peer)
  lmdisc.log.info("trusted peer %s at %s:%d (host key %s)", peer.name, peer.host, peer.port, peer.signer or "?")
end

function on_leave(peer, reason)
  if reason == "untrusted" then
    lmdisc.log.warn("%s stopped being trusted (its signature lapsed, its key was revoked or its fleet dropped)",
      peer.name)
  end
end
