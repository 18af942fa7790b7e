"""lmserv.discovery, now lmdisc: the application's imports stay as they were.

Replace the old module's directory (lmserv/discovery/) with this one:
``from lmserv.discovery import announce_self, discover_nodes, NodeInfo`` and
``from lmserv.discovery.registry import REGISTRY`` then give lmdisc's objects.
"""

from lmdisc import REGISTRY, NodeInfo, announce_self, discover_nodes  # noqa: F401
from lmdisc import *  # noqa: F401,F403
