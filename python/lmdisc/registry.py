"""``REGISTRY``: who is alive now, as the old ``lmserv.discovery.registry``.

With an agent on the host, every :meth:`_Registry.list_alive` call asks it
(``GET /v1/peers``: cheap, answered from memory, always fresh: a peer that
leaves is gone on its goodbye). Without one, a daemon thread rescans with
``lmdisc discover`` every ``_REFRESH_INTERVAL_S`` seconds (30) and a peer not
seen for ``_DEFAULT_TTL_S`` seconds (60) is dropped, like the old module. Both
constants are read each time they are used, so they can be overridden any time
(``lmdisc.registry._REFRESH_INTERVAL_S = 10``). The thread starts on first use,
not at import.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from . import _agent, _proc
from . import mdns as _mdns
from ._agent import NoAgent
from ._log import log
from .errors import LmdiscError
from .node import Node, NodeInfo, dedup

__all__ = ["REGISTRY", "_DEFAULT_TTL_S", "_REFRESH_INTERVAL_S"]

#: Seconds a node is considered alive without being seen again (without an agent).
_DEFAULT_TTL_S = 60
#: How often the background thread rescans the LAN (without an agent).
_REFRESH_INTERVAL_S = 30
#: The timeout of each background scan, as the old module's discover_nodes(timeout=2).
_SCAN_TIMEOUT_S = 2


class _Registry:
    """Thread-safe view of the live peers. Use the module's ``REGISTRY``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: "OrderedDict[object, tuple[Node, float]]" = OrderedDict()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._first_scan = threading.Event()
        self.scans = 0

    # ---- the old API --------------------------------------------------

    def list_alive(self) -> list[NodeInfo]:
        """The live peers as ``NodeInfo(host, port, info)``, deduplicated, in
        the order they were first seen (see :meth:`nodes`)."""
        return dedup(n.node_info() for n in self.nodes())

    def upsert(self, node: Node | NodeInfo, ttl: float | None = None) -> None:
        """Add or refresh a peer in the local cache (used without an agent),
        alive for ``ttl`` seconds (``_DEFAULT_TTL_S``)."""
        if isinstance(node, NodeInfo):
            node, key = Node.from_node_info(node), node
        else:
            key = (node.name, node.type, node.domain)
        expires = time.monotonic() + (_DEFAULT_TTL_S if ttl is None else ttl)
        with self._lock:
            self._nodes[key] = (node, expires)  # a known key keeps its place: first-seen order

    def purge(self) -> None:
        """Drop the cached peers whose TTL has passed."""
        now = time.monotonic()
        with self._lock:
            for k in [k for k, (_, exp) in self._nodes.items() if exp <= now]:
                log.debug("registry: %r expired", self._nodes[k][0].name)
                del self._nodes[k]

    # ---- new ------------------------------------------------------------

    def nodes(self) -> list[Node]:
        """The live peers with every field (:class:`~lmdisc.Node`).

        With an agent: its ``GET /v1/peers``, the peers its policy keeps
        (this host's own services included, ``self``/``local`` set). Without
        one: the background rescans' cache; the first call starts the thread
        and waits for its first scan (a few seconds at most). Raises
        :class:`~lmdisc.LmdiscUnavailable` with neither an agent nor the binary.
        """
        try:
            doc = _agent.request("GET", "/v1/peers")[2]
        except NoAgent as e:
            self._ensure_thread(e)
            self._first_scan.wait(_SCAN_TIMEOUT_S + 10)
            self.purge()
            with self._lock:
                return [n for n, _ in self._nodes.values()]
        if not isinstance(doc, list):
            raise LmdiscError("the lmdisc agent answered GET /v1/peers with something that is not a list")
        return [Node.from_json(p) for p in doc if isinstance(p, dict)]

    def close(self) -> None:
        """Stop the background rescans (they start again on next use) and clear the cache."""
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(_SCAN_TIMEOUT_S + 15)
        with self._lock:
            self._thread = None
            self._nodes.clear()
        self._first_scan.clear()

    # ---- the background thread (no agent) -----------------------------

    def _ensure_thread(self, no_agent: NoAgent) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
        if _proc.find_binary() is None:
            raise _proc.unavailable(no_agent)
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop = threading.Event()
            self._first_scan.clear()
            self._thread = threading.Thread(target=self._run, args=(self._stop,), name="lmdisc-registry",
                                            daemon=True)
            self._thread.start()
        log.info("no lmdisc agent at %s: rescanning with lmdisc discover every %g s", no_agent.path,
                 _REFRESH_INTERVAL_S)

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                found = _mdns.discover(_SCAN_TIMEOUT_S)
                for n in found:
                    self.upsert(n)
                self.purge()
                self.scans += 1
                log.debug("registry: rescan found %d service(s)", len(found))
            except LmdiscError as e:
                log.warning("registry rescan failed: %s", e)
            except Exception:  # never let the thread die
                log.exception("registry rescan failed")
            finally:
                self._first_scan.set()
            stop.wait(_REFRESH_INTERVAL_S)


#: The live peers. ``REGISTRY.list_alive()`` -> ``list[NodeInfo]``; ``REGISTRY.nodes()`` -> ``list[Node]``.
REGISTRY = _Registry()
