"""``watch()``: the agent's join / update / leave events as an iterator that
survives lost connections."""

from __future__ import annotations

import collections
import http.client
import json
import os
import random
import socket
import threading
from typing import Any, Iterator, NamedTuple
from urllib.parse import quote

from . import _agent, _watch
from ._agent import NoAgent
from ._log import log
from .errors import AgentError, LmdiscError, LmdiscUnavailable
from .node import Node

__all__ = ["watch", "Event", "EventStream"]

#: First delay before reconnecting (doubles up to _RETRY_MAX_S; reset once a stream delivers).
_RETRY_INITIAL_S = 0.2
_RETRY_MAX_S = 30.0


class Event(NamedTuple):
    """One change of the live peers.

    ``kind`` is ``"join"``, ``"update"`` or ``"leave"``; ``node`` the peer
    (:class:`~lmdisc.Node`; for a leave, as it was last seen); ``changes`` what
    changed in an update (``"host"``, ``"port"``, ``"txt"``, ``"addresses"``,
    ``"info"``, ``"sources"``); ``reason`` why a peer left (``"goodbye"``, ``"expired"``,
    ``"filtered"``, ``"unhealthy"``, ...), or ``"snapshot"`` for the joins that
    report the peers already alive when watching starts, or ``"reset"`` for
    the events that reconcile after the agent restarted (its event history
    was lost); ``index`` and ``epoch`` identify the event, to resume later with
    ``watch(since=event)``; ``time`` is the agent's Unix time of the event.
    """

    kind: str
    node: Node
    changes: tuple[str, ...]
    reason: str | None
    index: int | None
    epoch: str | None = None
    time: float | None = None


#: What counts as a change of a peer, in the agent's order; each change is
#: named after the Node field whose difference it is. A copy of the agent's
#: one definition (LMD_CHANGES in src/registry/peers.h, lmdisc.CHANGES in
#: Lua): tests/unit/test_contract.lua holds this copy and _changes to it.
_CHANGES = ("host", "port", "txt", "addresses", "info", "sources")


def _same(change: str, old: Node, new: Node) -> bool:
    if change == "txt":  # with the exact bytes of the values that are not UTF-8
        return old.txt == new.txt and old.txt_base64 == new.txt_base64
    if change == "addresses":  # in whatever order the agent lists them
        return sorted(old.addresses) == sorted(new.addresses)
    return getattr(old, change) == getattr(new, change)


def _changes(old: Node, new: Node) -> tuple[str, ...]:
    return tuple(c for c in _CHANGES if not _same(c, old, new))


class EventStream:
    """The iterator :func:`watch` returns. Iterate it for :class:`Event` objects;
    ``close()`` it (or use ``with``) to stop; ``close()`` may be called from
    another thread and ends a blocked iteration. Dropping the last reference
    closes it too, so ``for ev in watch(): ... break`` leaves nothing open.

    ``peers`` is the current picture (name -> :class:`~lmdisc.Node`) the events
    have built; ``index`` and ``epoch`` the position in the agent's event log.
    """

    def __init__(self, since: int | None = None, epoch: str | None = None, snapshot: bool = True) -> None:
        self.index = since
        self.epoch = epoch
        self.peers: dict[str, Node] = {}
        self._snapshot = snapshot
        self._user_since = since is not None
        self._first = True           # no snapshot received yet
        self._pending: collections.deque[Event] = collections.deque()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._conn: _agent.UnixHTTPConnection | None = None
        self._resp: http.client.HTTPResponse | None = None
        self._delay = _RETRY_INITIAL_S
        self._wait_next = 0.0        # seconds to wait before the next connection attempt
        self._outage_logged = False
        self._sockwatch: _watch.SocketWatch | None = None
        try:
            self._connect()
        except NoAgent as e:
            raise LmdiscUnavailable(
                f"watch() needs the lmdisc agent and there is none at {e.path} ({e.reason}): install the "
                "lmdisc package (apt install ./lmdisc_*.deb) and start it (systemctl start lmdisc), "
                "or set LMDISC_SOCKET") from None

    # ---- iteration ------------------------------------------------------

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        while True:
            if self._pending:
                return self._pending.popleft()
            if self._closed.is_set():
                self._drop()
                self._close_sockwatch()
                raise StopIteration
            if self._resp is None:
                if self._wait_next > 0 and self._closed.wait(self._wait_next):
                    continue
                try:
                    self._connect()
                except NoAgent as e:
                    if not self._outage_logged:
                        log.warning("watch: no lmdisc agent at %s (%s); waiting for it", e.path, e.reason)
                        self._outage_logged = True
                    self._await_agent()
                except LmdiscError as e:
                    log.warning("watch: %s; trying again", e)
                    self._backoff()
                continue
            line = self._readline()
            if line is None:
                self._drop()
                if not self._closed.is_set():
                    log.info("watch: the event stream ended; resuming after event %s", self.index)
                    self._backoff()
                continue
            self._handle(line)

    def close(self) -> None:
        """Stop watching: ends the iteration (also one blocked in another thread) and closes the connection."""
        self._closed.set()
        w = self._sockwatch
        if w is not None:
            w.wake()
        with self._lock:
            conn = self._conn
        if conn is not None and conn.raw_sock is not None:
            try:
                conn.raw_sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
        self._drop()
        self._close_sockwatch()

    def __del__(self) -> None:
        try:
            self.close()
            self._drop()
            self._close_sockwatch()
        except Exception:
            pass

    # ---- connection -----------------------------------------------------

    def _await_agent(self) -> None:
        """After a failed connection: wait until the agent's socket comes back
        (inotify on its directory; :meth:`close` ends the wait), then try to
        connect a few times over 0.6 s (it listens a moment after the socket
        appears). At most ``_RETRY_MAX_S`` without an event, as a safety net."""
        self._wait_next = 0.0
        w = self._sockwatch
        if w is None:
            self._sockwatch = _watch.SocketWatch(_agent.socket_path())
            if self._closed.is_set():
                self._sockwatch.wake()
            return  # armed now: the next attempt at once sees a socket that came meanwhile
        if not w.wait(_RETRY_MAX_S) or self._closed.is_set():
            return
        path = _agent.socket_path()

        def attempt() -> bool | None:
            try:
                self._connect()
            except NoAgent:
                return None
            return True

        def give_up() -> bool:
            return self._closed.is_set() or not os.path.exists(path)

        _watch.connect_soon(attempt, give_up, tries=1 if w.polling else None)

    def _close_sockwatch(self) -> None:
        w, self._sockwatch = self._sockwatch, None
        if w is not None:
            w.close()

    def _backoff(self) -> None:
        self._wait_next = self._delay * random.uniform(0.8, 1.2)
        self._delay = min(self._delay * 2, _RETRY_MAX_S)

    def _path(self) -> str:
        if self.index is None:
            return "/v1/events"
        path = f"/v1/events?since={int(self.index)}"
        if self.epoch:
            path += "&epoch=" + quote(str(self.epoch), safe="")
        return path

    def _connect(self) -> None:
        """One attempt; sets _resp on success, schedules the next attempt otherwise."""
        self._wait_next = 0.0
        conn = _agent.connect()
        path = self._path()
        try:
            conn.request("GET", path, headers={"Accept": "application/x-ndjson"})
            resp = conn.getresponse()
            if resp.status != 200:
                raw = resp.read()
                conn.close()
                msg = _agent.error_message(raw, resp.reason)
                if resp.status == 429 or resp.status >= 500:
                    retry_after = resp.getheader("Retry-After")
                    log.warning("watch: the agent answered %d (%s); trying again", resp.status, msg)
                    self._backoff()
                    if retry_after and retry_after.strip().isdigit():
                        self._wait_next = max(self._wait_next, min(float(retry_after), _RETRY_MAX_S))
                    return
                raise AgentError(resp.status, msg, "GET", path)
            if conn.raw_sock is not None:
                conn.raw_sock.settimeout(None)  # quiet while nothing happens
            _agent.hold(conn)
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise LmdiscError(f"GET {path} failed: {e!r}") from None
        with self._lock:
            self._conn, self._resp = conn, resp
        if self._closed.is_set():  # closed while connecting
            self._drop()
            return
        if self._outage_logged:
            log.info("watch: connected to the lmdisc agent again")
            self._outage_logged = False
        self._close_sockwatch()
        log.debug("watch: GET %s", path)

    def _drop(self) -> None:
        with self._lock:
            conn, self._conn, self._resp = self._conn, None, None
        if conn is not None:
            conn.abort()

    def _readline(self) -> bytes | None:
        resp = self._resp
        while True:
            try:
                line = resp.readline() if resp is not None else b""
            except Exception as e:  # IncompleteRead, reset, closed by close()
                log.debug("watch: stream ended: %r", e)
                return None
            if not line:
                return None
            if line.strip():
                return line

    # ---- events ---------------------------------------------------------

    def _handle(self, line: bytes) -> None:
        try:
            doc = json.loads(line)
        except ValueError:
            log.warning("watch: ignoring a line that is not JSON: %r", line[:100])
            return
        if not isinstance(doc, dict):
            return
        self._delay = _RETRY_INITIAL_S  # the stream delivers: reconnect quickly next time
        epoch = doc.get("epoch")
        index = doc.get("index")
        kind = doc.get("type")
        if kind == "snapshot":
            self._on_snapshot(doc)
        elif kind in ("join", "update", "leave") and isinstance(doc.get("peer"), dict):
            if (isinstance(index, int) and self.index is not None and index <= self.index
                    and (epoch is None or epoch == self.epoch)):
                return  # already seen (a resume that overlapped)
            node = Node.from_json(doc["peer"])
            if kind == "leave":
                self.peers.pop(node.name, None)
            else:
                self.peers[node.name] = node
            t = doc.get("time")
            self._pending.append(Event(kind, node, tuple(str(c) for c in doc.get("changes") or ()),
                                       doc.get("reason"), index if isinstance(index, int) else None,
                                       epoch if isinstance(epoch, str) else self.epoch,
                                       float(t) if isinstance(t, (int, float)) else None))
        else:
            log.debug("watch: ignoring %r", doc)
            return
        if isinstance(index, int):
            self.index = index
        if isinstance(epoch, str):
            self.epoch = epoch

    def _on_snapshot(self, doc: dict) -> None:
        index = doc.get("index") if isinstance(doc.get("index"), int) else None
        epoch = doc.get("epoch") if isinstance(doc.get("epoch"), str) else self.epoch
        now = {}
        for p in doc.get("peers") or ():
            if isinstance(p, dict):
                n = Node.from_json(p)
                now[n.name] = n
        if self._first and not self._user_since:
            if self._snapshot:
                for n in now.values():
                    self._pending.append(Event("join", n, (), "snapshot", index, epoch))
        else:
            # the agent could not resume (it restarted, or we fell too far behind):
            # reconcile what we had with what is there now
            if doc.get("reset"):
                log.info("watch: the agent's event history was reset; reconciling %d known peer(s)",
                         len(self.peers))
            for name, old in self.peers.items():
                if name not in now:
                    self._pending.append(Event("leave", old, (), "reset", index, epoch))
            for name, n in now.items():
                old = self.peers.get(name)
                if old is None:
                    self._pending.append(Event("join", n, (), "reset", index, epoch))
                else:
                    ch = _changes(old, n)
                    if ch:
                        self._pending.append(Event("update", n, ch, "reset", index, epoch))
        self._first = False
        self.peers = now


def watch(since: "int | Event | None" = None, *, epoch: str | None = None, snapshot: bool = True) -> EventStream:
    """Follow the agent's join / update / leave events (``GET /v1/events``).

    Returns an :class:`EventStream`, an iterator of :class:`Event`::

        for ev in lmdisc.watch():
            print(ev.kind, ev.node.name, ev.changes, ev.reason)

    It starts with one ``join`` (reason ``"snapshot"``) per peer already alive
    (``snapshot=False`` skips them), then yields events as they happen. If the
    connection is lost it reconnects with ``?since=INDEX&epoch=EPOCH`` and
    yields only what it missed; if the agent restarted meanwhile it yields the
    leaves, joins and updates (reason ``"reset"``) that turn what it had into
    what is there now. While the agent is gone (stopped, restarting) it
    waits for the agent's socket to come back (inotify on its directory) and
    reconnects within a second of it; a dropped stream and ``429 Too Many
    Requests`` answers are retried with exponential backoff (0.2 s doubling
    to 30 s), never in a busy loop. ``since`` (an index, or an Event to resume after, with its
    epoch) starts after that event instead of with a snapshot.

    Needs the agent: raises :class:`~lmdisc.LmdiscUnavailable` if there is
    none when it starts (later outages are waited out).
    """
    if isinstance(since, Event):
        since, epoch = since.index, epoch or since.epoch
    if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
        raise ValueError(f"since must be an event index (an int >= 0) or an Event, not {since!r}")
    return EventStream(since, epoch, snapshot)
