"""``REGISTRY``: who is alive now, as the old ``lmserv.discovery.registry``.

With an agent on the host, every :meth:`_Registry.list_alive` call asks it
(``GET /v1/peers``: cheap, answered from memory, always fresh: a peer that
leaves is gone on its goodbye). Without one, a daemon thread rescans with
``lmdisc discover`` every ``_REFRESH_INTERVAL_S`` seconds (30) and a peer not
seen for ``_DEFAULT_TTL_S`` seconds (60) is dropped, like the old module. Both
constants are read each time they are used, so they can be overridden any time
(``lmdisc.registry._REFRESH_INTERVAL_S = 10``). The thread starts on first use,
not at import, and stops as soon as the agent answers again (it watches the
agent's socket).

It never raises because the agent restarts or stops: once the agent has
answered, ``list_alive()`` returns what the rescans find, or, without the
``lmdisc`` binary, the agent's last answer (each peer dropped
``_DEFAULT_TTL_S`` seconds after the agent last listed it). It raises
:class:`~lmdisc.LmdiscUnavailable` only when no agent ever answered and there
is no binary either (nothing is installed or started), and
:class:`~lmdisc.AgentError` when the agent refuses the request (HTTP 4xx).

This host's own services are never listed, with or without an agent: the
registry is "who else is alive". With an agent those are what it marks
``self`` (announced through it) or ``local`` (published on this host by
anything else); without one, what ``lmdisc discover`` marks ``local``.
:func:`lmdisc.discover` lists them.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict

from . import _agent, _proc, _watch
from ._agent import NoAgent
from ._log import log
from .errors import AgentError, LmdiscError
from .node import Node, NodeInfo, dedup

__all__ = ["REGISTRY", "_DEFAULT_TTL_S", "_REFRESH_INTERVAL_S"]

#: Seconds a node is considered alive without being seen again (without an agent).
_DEFAULT_TTL_S = 60
#: How often the background thread rescans the LAN (without an agent).
_REFRESH_INTERVAL_S = 30
#: The timeout of each background scan, as the old module's discover_nodes(timeout=2).
_SCAN_TIMEOUT_S = 2


def _own(n: Node) -> bool:
    """This host's own service: announced by its agent or published on this host."""
    return n.self or n.local


class _Registry:
    """Thread-safe view of the live peers. Use the module's ``REGISTRY``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: "OrderedDict[object, tuple[Node, float]]" = OrderedDict()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._watch: _watch.SocketWatch | None = None
        self._first_scan = threading.Event()
        self._agent_seen = False  # an agent answered once: its outages are no reason to raise
        self.scans = 0

    # ---- the old API --------------------------------------------------

    def list_alive(self) -> list[NodeInfo]:
        """The live peers as ``NodeInfo(host, port, info)``, deduplicated, in
        the order they were first seen (see :meth:`nodes`)."""
        return dedup(n.node_info() for n in self.nodes())

    def upsert(self, node: Node | NodeInfo, ttl: float | None = None) -> None:
        """Add or refresh a peer in the local cache (used without an agent),
        alive for ``ttl`` seconds (``_DEFAULT_TTL_S``)."""
        key: object
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
        """The live peers with every field (:class:`~lmdisc.Node`), this host's
        own services left out.

        With an agent: its ``GET /v1/peers``, the peers its policy keeps.
        Without one (or while it restarts): the background rescans' cache; the
        first call of a process that never reached an agent starts the thread
        and waits for its first scan (a few seconds at most); later calls, and
        every call after the agent answered once, return at once. Raises
        :class:`~lmdisc.LmdiscUnavailable` only if no agent ever answered and
        there is no ``lmdisc`` binary.
        """
        try:
            peers = self._ask_agent()
        except NoAgent as e:
            return self._without_agent(e)
        except LmdiscError as e:  # the agent restarts under us (reset, timeout, 5xx)
            if isinstance(e, AgentError) and e.status < 500 and e.status != 429:
                raise
            log.info("registry: the lmdisc agent did not answer (%s); using what is known", e)
            return self._without_agent(None, e)
        return peers

    def close(self) -> None:
        """Stop the background rescans (they start again on next use) and clear the cache."""
        self._stop_thread(wait=True)
        with self._lock:
            self._nodes.clear()
            self._agent_seen = False
        self._first_scan.clear()

    # ---- the agent --------------------------------------------------------

    def _ask_agent(self) -> list[Node]:
        doc = _agent.request("GET", "/v1/peers")[2]
        if not isinstance(doc, list):
            raise LmdiscError("the lmdisc agent answered GET /v1/peers with something that is not a list")
        peers = [n for n in (Node.from_json(p) for p in doc if isinstance(p, dict)) if not _own(n)]
        # the agent's answer is the truth now: it replaces the cache (kept for its outages)
        expires = time.monotonic() + _DEFAULT_TTL_S
        with self._lock:
            self._nodes = OrderedDict(((n.name, n.type, n.domain), (n, expires)) for n in peers)
            self._agent_seen = True
        self._stop_thread(wait=False)
        return peers

    def _cached(self) -> list[Node]:
        self.purge()
        with self._lock:
            return [n for n, _ in self._nodes.values()]

    def _without_agent(self, no_agent: NoAgent | None, error: LmdiscError | None = None) -> list[Node]:
        with self._lock:
            seen = self._agent_seen
        if not self._ensure_thread():
            if not seen:
                if error is not None:
                    raise error
                raise _proc.unavailable(no_agent)
            return self._cached()  # the agent's last answer, expiring
        if not seen:
            self._first_scan.wait(_SCAN_TIMEOUT_S + 10)
        return self._cached()

    # ---- the background thread (no agent) -----------------------------

    def _ensure_thread(self) -> bool:
        """Start the rescanning thread if it does not run; False without a binary."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and not self._stop.is_set():
                return True
        if _proc.find_binary() is None:
            return False
        watch = _watch.SocketWatch(_agent.socket_path())  # armed before the first look at the agent
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and not self._stop.is_set():
                watch.close()
                return True
            self._stop = threading.Event()
            self._watch = watch
            self._first_scan.clear()
            self._thread = threading.Thread(target=self._run, args=(self._stop, watch), name="lmdisc-registry",
                                            daemon=True)
            self._thread.start()
        log.info("no lmdisc agent at %s: rescanning with lmdisc discover every %g s until it is back",
                 _agent.socket_path(), _REFRESH_INTERVAL_S)
        return True

    def _stop_thread(self, wait: bool) -> None:
        with self._lock:
            t, w = self._thread, self._watch
            if t is None:
                return
            self._stop.set()
            if not wait:
                self._thread = None
                self._watch = None
        if w is not None:
            w.wake()
        if wait:
            if t is not threading.current_thread():
                t.join(_SCAN_TIMEOUT_S + 15)
            with self._lock:
                if self._thread is t:
                    self._thread = None
                    self._watch = None
        log.debug("registry: the lmdisc agent answers; rescans stopped")

    def _agent_back(self, stop: threading.Event, tries: int | None) -> bool:
        """Whether the agent answers /v1/peers now (``tries`` tries over 0.6 s
        at most: its socket exists a moment before it listens)."""
        path = _agent.socket_path()

        def attempt() -> bool | None:
            try:
                self._ask_agent()
                return True
            except (LmdiscError, NoAgent):
                return None

        def give_up() -> bool:
            return stop.is_set() or not os.path.exists(path)

        return bool(_watch.connect_soon(attempt, give_up, tries=tries))

    def _run(self, stop: threading.Event, watch: _watch.SocketWatch) -> None:
        try:
            self._rescan(stop, watch)
        finally:
            watch.close()

    def _rescan(self, stop: threading.Event, watch: _watch.SocketWatch) -> None:
        next_scan = time.monotonic()
        first = True
        while not stop.is_set():
            if time.monotonic() >= next_scan:
                if not first and self._agent_back(stop, tries=1):
                    log.info("the lmdisc agent answers again: registry rescans stopped")
                    return
                first = False
                self._scan_once()
                next_scan = time.monotonic() + _REFRESH_INTERVAL_S
            # until the next scan, unless the agent's socket changes first
            event = watch.wait(max(0.0, next_scan - time.monotonic()))
            if event and self._agent_back(stop, tries=1 if watch.polling else None):
                log.info("the lmdisc agent answers again: registry rescans stopped")
                return

    def _scan_once(self) -> None:
        try:
            binary = _proc.find_binary()
            if binary is None:
                raise LmdiscError("the lmdisc binary is gone")
            doc = _proc.run_discover(binary, _SCAN_TIMEOUT_S)
            found = [Node.from_json(n) for n in doc.get("nodes") or () if isinstance(n, dict)]
            mine = [n for n in found if _own(n)]
            for n in found:
                if not _own(n):
                    self.upsert(n)
            self.purge()
            self.scans += 1
            log.debug("registry: rescan found %d service(s), %d of them this host's", len(found), len(mine))
        except LmdiscError as e:
            log.warning("registry rescan failed: %s", e)
        except Exception:  # never let the thread die
            log.exception("registry rescan failed")
        finally:
            self._first_scan.set()


#: The live peers. ``REGISTRY.list_alive()`` -> ``list[NodeInfo]``; ``REGISTRY.nodes()`` -> ``list[Node]``.
REGISTRY = _Registry()
