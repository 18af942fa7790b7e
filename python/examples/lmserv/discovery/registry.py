"""lmserv.discovery.registry is lmdisc.registry (the same module object, so that
``lmserv.discovery.registry._DEFAULT_TTL_S = 120`` changes lmdisc's)."""

import sys

import lmdisc.registry

sys.modules[__name__] = lmdisc.registry
