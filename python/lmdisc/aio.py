"""The asyncio API, beside the blocking one (as python-zeroconf has ``AsyncZeroconf``).

Standard library only; nothing here blocks the event loop::

    import asyncio
    from lmdisc import aio

    async def main():
        async with aio.announce(8000, info="gemma-2b-it Q4_0") as a:   # withdrawn on exit
            await a.wait_established(5)
            for node in await aio.discover():                         # list[Node]
                print(node.name, node.node_info())
            async for ev in aio.watch():                              # join / update / leave
                print(ev.kind, ev.node.name)

    asyncio.run(main())

The seed's names work too: ``await aio.announce_self(8000, info)``,
``await aio.discover_nodes()``, ``await aio.list_alive()``.

Everything behaves as its blocking counterpart (with an agent, without one,
falling back and coming back, errors): the requests run in worker threads
(``asyncio.to_thread``), and what waits for a long time (an announcement's
state, the event stream) is handed to the loop by lmdisc's own threads
(``loop.call_soon_threadsafe``), so waiting is cancellable and costs no
thread.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Generator

from . import events as _events
from . import mdns as _mdns
from . import registry as _registry
from .events import Event, EventStream
from .mdns import Announcement
from .node import Node, NodeInfo

__all__ = ["announce", "announce_self", "AsyncAnnouncement", "discover", "discover_nodes", "list_alive", "nodes",
           "watch", "AsyncEventStream", "set_txt", "drain"]

_END = object()


class AsyncAnnouncement:
    """What :func:`announce` returns: ``async with`` it (withdrawn on exit) or
    ``await`` it (then :meth:`withdraw` it yourself, or let the process exit).

    The attributes of :class:`~lmdisc.Announcement` (``name``, ``state``,
    ``mode``, ``reason``, ``port``, ``info``, ``txt``, ``active``) are read
    through; ``announcement`` is the blocking object itself.
    """

    def __init__(self, port: int, info: str = "", *, name: str | None = None, txt: dict | None = None) -> None:
        self._args = (port, info)
        self._kw: dict[str, Any] = {"name": name, "txt": txt}
        self._ann: Announcement | None = None
        self._lock: asyncio.Lock | None = None

    async def _start(self) -> "AsyncAnnouncement":
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._ann is None:
                self._ann = await asyncio.to_thread(_mdns.announce_self, *self._args, **self._kw)
        return self

    def __await__(self) -> Generator[Any, None, "AsyncAnnouncement"]:
        return self._start().__await__()

    async def __aenter__(self) -> "AsyncAnnouncement":
        return await self._start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.withdraw()

    @property
    def announcement(self) -> Announcement:
        """The blocking :class:`~lmdisc.Announcement` (after ``await`` / ``async with``)."""
        if self._ann is None:
            raise RuntimeError("await announce(...) or use it with async with first")
        return self._ann

    def __getattr__(self, attr: str) -> Any:
        if attr in ("name", "requested_name", "state", "mode", "reason", "port", "info", "txt", "active"):
            return getattr(self.announcement, attr)
        raise AttributeError(attr)

    def __repr__(self) -> str:
        return f"<lmdisc.aio.AsyncAnnouncement {self._ann!r}>"

    async def wait_state(self, *states: str, timeout: float | None = None) -> bool:
        """Wait until ``state`` is one of ``states``; False if ``timeout`` seconds passed first."""
        ann = self.announcement
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def listener(_: Announcement) -> None:  # in lmdisc's threads
            try:
                loop.call_soon_threadsafe(changed.set)
            except RuntimeError:  # the loop is closed
                pass

        ann._add_listener(listener)
        try:
            deadline = None if timeout is None else loop.time() + timeout
            while True:
                changed.clear()  # before looking: a change from now on sets it again
                if ann.state in states:
                    return True
                left = None if deadline is None else deadline - loop.time()
                if left is not None and left <= 0:
                    return False
                try:
                    await asyncio.wait_for(changed.wait(), left)
                except asyncio.TimeoutError:
                    return ann.state in states
        finally:
            ann._remove_listener(listener)

    async def wait_established(self, timeout: float | None = None) -> bool:
        """True once the name is established on the network; False on timeout
        or if it was withdrawn or failed first."""
        await self.wait_state("established", "withdrawn", "failed", timeout=timeout)
        return self.announcement.state == "established"

    async def set_txt(self, txt: dict | None = None, /, **kv: Any) -> dict:
        """:meth:`lmdisc.Announcement.set_txt`."""
        return await asyncio.to_thread(self.announcement.set_txt, txt, **kv)

    async def withdraw(self, timeout: float = 5.0) -> None:
        """:meth:`lmdisc.Announcement.withdraw` (idempotent)."""
        if self._ann is not None:
            await asyncio.to_thread(self._ann.withdraw, timeout)


def announce(port: int, info: str = "", *, name: str | None = None, txt: dict | None = None) -> AsyncAnnouncement:
    """Announce this server: ``async with announce(8000, "gemma") as a:`` (withdrawn
    when the block ends) or ``a = await announce(8000, "gemma")``. The same
    rules and errors as :func:`lmdisc.announce_self` (a second call for the same
    port and name gives the same announcement; the errors are raised by the
    ``await`` / ``async with``)."""
    return AsyncAnnouncement(port, info, name=name, txt=txt)


async def announce_self(port: int, info: str = "", *, name: str | None = None,
                        txt: dict | None = None) -> AsyncAnnouncement:
    """The seed's name: ``await announce_self(8000, info="gemma-2b-it Q4_0")``."""
    return await AsyncAnnouncement(port, info, name=name, txt=txt)


async def discover(timeout: float = 5) -> list[Node]:
    """:func:`lmdisc.discover`: every ``_lmserv._tcp`` service, with every field."""
    return await asyncio.to_thread(_mdns.discover, timeout)


async def discover_nodes(timeout: int = 5) -> list[NodeInfo]:
    """:func:`lmdisc.discover_nodes`: the old one-shot scan, ``list[NodeInfo]``."""
    return await asyncio.to_thread(_mdns.discover_nodes, timeout)


async def list_alive() -> list[NodeInfo]:
    """``REGISTRY.list_alive()``: the live peers (never raised for a restarting agent)."""
    return await asyncio.to_thread(_registry.REGISTRY.list_alive)


async def nodes() -> list[Node]:
    """``REGISTRY.nodes()``: the live peers with every field."""
    return await asyncio.to_thread(_registry.REGISTRY.nodes)


async def set_txt(txt: dict | None = None, /, **kv: Any) -> dict:
    """:func:`lmdisc.set_txt` on the default announcement."""
    return await asyncio.to_thread(_mdns.set_txt, txt, **kv)


async def drain(grace: float | None = None) -> dict:
    """:func:`lmdisc.drain`."""
    return await asyncio.to_thread(_mdns.drain, grace)


class AsyncEventStream:
    """What :func:`watch` returns: ``async for ev in watch(): ...``, or
    ``async with watch() as events: async for ev in events: ...`` (closed
    when the block ends). :meth:`aclose` ends the iteration, also one
    waiting in another task. ``peers``, ``index`` and ``epoch`` are those of
    :class:`lmdisc.EventStream`. Connecting happens at the first
    ``__anext__`` (or ``async with``), which raises
    :class:`~lmdisc.LmdiscUnavailable` without an agent."""

    def __init__(self, since: "int | Event | None" = None, *, epoch: str | None = None,
                 snapshot: bool = True) -> None:
        self._args = (since, epoch, snapshot)
        self._stream: EventStream | None = None
        self._queue: asyncio.Queue | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._lock: asyncio.Lock | None = None

    async def _open(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._queue is not None or self._closed:
                return
            since, epoch, snapshot = self._args
            stream = await asyncio.to_thread(_events.watch, since, epoch=epoch, snapshot=snapshot)
            loop = asyncio.get_running_loop()
            self._stream, self._queue = stream, asyncio.Queue()
            self._thread = threading.Thread(target=self._pump, args=(stream, loop, self._queue),
                                            name="lmdisc-aio-watch", daemon=True)
            self._thread.start()
            if self._closed:  # aclose() came while connecting
                stream.close()

    def _pump(self, stream: EventStream, loop: asyncio.AbstractEventLoop, q: asyncio.Queue) -> None:
        def put(item: object) -> None:
            try:
                loop.call_soon_threadsafe(q.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening
                stream.close()

        try:
            for ev in stream:
                put(ev)
        except BaseException as e:  # handed to the iterating task
            self._error = e
        finally:
            put(_END)

    def __aiter__(self) -> "AsyncEventStream":
        return self

    async def __anext__(self) -> Event:
        if self._closed and self._queue is None:
            raise StopAsyncIteration
        await self._open()
        assert self._queue is not None
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # every later __anext__ ends too
            if self._error is not None:
                err, self._error = self._error, None
                raise err
            raise StopAsyncIteration
        return item  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Stop watching and close the connection (idempotent)."""
        self._closed = True
        stream, t = self._stream, self._thread
        if stream is not None:
            stream.close()
        if t is not None and t is not threading.current_thread():
            await asyncio.to_thread(t.join, 5)

    async def __aenter__(self) -> "AsyncEventStream":
        await self._open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __del__(self) -> None:
        stream = self._stream
        if stream is not None:
            stream.close()

    @property
    def peers(self) -> dict[str, Node]:
        return dict(self._stream.peers) if self._stream is not None else {}

    @property
    def index(self) -> int | None:
        return self._stream.index if self._stream is not None else None

    @property
    def epoch(self) -> str | None:
        return self._stream.epoch if self._stream is not None else None


def watch(since: "int | Event | None" = None, *, epoch: str | None = None, snapshot: bool = True) -> AsyncEventStream:
    """:func:`lmdisc.watch` for asyncio: ``async for ev in watch(): ...``."""
    return AsyncEventStream(since, epoch=epoch, snapshot=snapshot)
