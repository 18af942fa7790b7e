"""lmserv.discovery.mdns is lmdisc.mdns (the same module object: its constants are lmdisc's)."""

import sys

import lmdisc.mdns

sys.modules[__name__] = lmdisc.mdns
