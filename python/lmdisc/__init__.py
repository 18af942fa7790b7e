"""lmdisc: find LMServ language-model servers on the LAN, and be found.

A drop-in replacement for the python-zeroconf module ``lmserv.discovery``::

    from lmdisc import announce_self          # was: from lmserv.discovery import announce_self
    from lmdisc.registry import REGISTRY      # was: from lmserv.discovery.registry import REGISTRY

    announce_self(8000, info="gemma-2b-it Q4_0")
    for node in REGISTRY.list_alive():
        print(f"Found peer @ http://{node.host}:{node.port}  ({node.info})")

Standard library only. With an lmdisc agent on the host it talks HTTP/JSON to
the agent's Unix socket (``$LMDISC_SOCKET``, else ``/run/lmdisc/agent.sock``);
without one it runs the ``lmdisc`` binary (``$LMDISC_BIN``, else ``lmdisc`` on
``PATH``); with neither it raises :class:`LmdiscUnavailable`, whose message says
what to install or start. An announcement outlives the agent's restarts and
stops (an ``lmdisc announce`` child takes over until the agent's socket is
back), and ``REGISTRY.list_alive()`` keeps answering meanwhile.

asyncio: :mod:`lmdisc.aio` (``async with aio.announce(...)``, ``await
aio.discover()``, ``async for ev in aio.watch()``).

Old names: :func:`announce_self`, :func:`discover_nodes`, :class:`NodeInfo`,
:data:`REGISTRY` (``REGISTRY.list_alive()``). New: :func:`discover` and
``REGISTRY.nodes()`` (:class:`Node` with every field), :class:`Announcement`
(``set_txt``, ``withdraw``, ``wait_established``), :func:`set_txt`,
:func:`drain` and :func:`watch` (join / update / leave events). Logging goes
to the ``lmdisc`` logger; ``$LOGLEVEL`` is honoured as by the old module.
"""

from ._agent import socket_path
from .errors import AgentError, LmdiscError, LmdiscUnavailable
from .events import Event, EventStream, watch
from .mdns import Announcement, announce_self, default_name, discover, discover_nodes, drain, set_txt
from .node import Address, Node, NodeInfo
from .registry import REGISTRY

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name == "aio":  # the asyncio API, imported on first use (it imports asyncio)
        import importlib

        return importlib.import_module(".aio", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "announce_self", "discover_nodes", "NodeInfo", "REGISTRY",
    "discover", "Node", "Address", "Announcement", "set_txt", "drain", "watch", "Event", "EventStream",
    "LmdiscError", "LmdiscUnavailable", "AgentError", "socket_path", "default_name",
]
