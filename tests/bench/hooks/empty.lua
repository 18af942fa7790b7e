-- Hook-overhead baseline: no hooks at all (lmdisc test runs the same
-- simulated joins and leaves through it as through trivial.lua / logging.lua).
registry { ttl = 60 }
