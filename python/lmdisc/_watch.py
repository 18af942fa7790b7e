"""Waiting for the agent's socket to come (back): inotify through ctypes.

An announcement that fell back to its own ``lmdisc announce`` child, the
registry's rescans and ``watch()`` must move back to the agent as soon as it
listens again. Instead of retrying on a timer they wait here: a
:class:`SocketWatch` watches the directory of the socket (or, while that
directory does not exist, the nearest existing parent: systemd removes
``/run/lmdisc`` when the agent stops) for the socket's name being created,
deleted, renamed or having its mode changed, and wakes the waiting thread.

The agent binds, chmods and only then listens: a connect right after the
event can still be refused. :func:`connect_soon` tries a few times over about
0.6 s after an event, which is bounded and happens only after an event.

Where inotify is not available (not Linux, no libc, no more watches) the
watch wakes every ``POLL_S`` seconds instead, and says so in the log once.
"""

from __future__ import annotations

import ctypes
import os
import select
import struct
import sys
import threading
import time
from typing import Callable, TypeVar

from ._log import log

__all__ = ["SocketWatch", "connect_soon", "POLL_S"]

#: Without inotify: how often a waiting thread looks again.
POLL_S = 1.0
#: After an event, the delays between connection attempts: 0.62 s in all.
#: Current agents rename their socket into place already listening, so the
#: first attempt connects; the retries are for agents before that change,
#: whose socket existed a moment before they listened on it.
RETRY_DELAYS_S = (0.0, 0.01, 0.02, 0.04, 0.08, 0.16, 0.31)

_IN_ATTRIB = 0x00000004
_IN_MOVED_FROM = 0x00000040
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_DELETE = 0x00000200
_IN_DELETE_SELF = 0x00000400
_IN_MOVE_SELF = 0x00000800
_IN_Q_OVERFLOW = 0x00004000
_IN_IGNORED = 0x00008000
_IN_ONLYDIR = 0x01000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = getattr(os, "O_CLOEXEC", 0o2000000)
_MASK = (_IN_ATTRIB | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE | _IN_DELETE_SELF
         | _IN_MOVE_SELF | _IN_ONLYDIR)
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name


class _Inotify:
    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.init1 = libc.inotify_init1
        self.init1.argtypes = [ctypes.c_int]
        self.init1.restype = ctypes.c_int
        self.add_watch = libc.inotify_add_watch
        self.add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.add_watch.restype = ctypes.c_int
        self.rm_watch = libc.inotify_rm_watch
        self.rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        self.rm_watch.restype = ctypes.c_int


def _load() -> _Inotify | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return _Inotify()
    except (OSError, AttributeError):
        return None


_inotify = _load()
_poll_warned = threading.Event()


class SocketWatch:
    """Wakes a thread when something happens to the path of the agent's socket.

    ``wait(timeout)`` returns True after an event on the socket's name (or on
    a missing directory of its path), or after :meth:`wake` (from any
    thread); False when ``timeout`` passed first. Events that happened
    between two waits are not lost. Create the watch *before* finding the
    agent absent, so that an agent starting in between is seen.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._rfd, self._wfd = os.pipe()  # wake(): one byte
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        self._fd = -1
        self._watches: dict[int, str] = {}  # watch descriptor -> the name it waits for
        self._closed = False
        self._waiting = 0
        self._lock = threading.Lock()
        if _inotify is not None:
            fd = _inotify.init1(_IN_NONBLOCK | _IN_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                self._arm()
            else:
                self._no_inotify(os.strerror(ctypes.get_errno()))
        else:
            self._no_inotify("not available on this system")

    @property
    def polling(self) -> bool:
        """True when inotify could not be used and waits end every ``POLL_S`` seconds."""
        return not self._watches

    def _no_inotify(self, why: str) -> None:
        if not _poll_warned.is_set():
            _poll_warned.set()
            log.info("cannot watch %s with inotify (%s): looking for the lmdisc agent every %g s", self.path,
                     why, POLL_S)

    def _arm(self) -> None:
        """Watch the socket's directory (or its nearest existing parent) for
        the next name on the path, and that directory's parent for the
        directory's own name: a directory removed while something still holds
        it open reports no IN_DELETE_SELF until it is released, but its parent
        reports the IN_DELETE at once."""
        if self._fd < 0 or _inotify is None:
            return
        d, name = os.path.split(self.path)
        while d != os.path.dirname(d) and not os.path.isdir(d):
            d, name = os.path.split(d)
        targets = [(d, name)]
        parent, dname = os.path.split(d)
        if dname:
            targets.append((parent, dname))
        watches: dict[int, str] = {}
        for i, (path, nm) in enumerate(targets):
            wd = _inotify.add_watch(self._fd, os.fsencode(path), _MASK)
            if wd < 0:
                if i == 0:
                    err = ctypes.get_errno()
                    self._set_watches({})
                    self._no_inotify(f"{path}: {os.strerror(err)}")
                    return
                continue
            watches[wd] = nm
        self._set_watches(watches)

    def _set_watches(self, watches: dict[int, str]) -> None:
        for wd in set(self._watches) - set(watches):
            _inotify.rm_watch(self._fd, wd)  # type: ignore[union-attr]
        self._watches = watches

    def _read_events(self) -> bool:
        """Drain the inotify queue; True if an event concerns the path."""
        hit = False
        while True:
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            except InterruptedError:  # pragma: no cover
                continue
            if not buf:
                break
            off = 0
            while off + _EVENT.size <= len(buf):
                wd, mask, _cookie, n = _EVENT.unpack_from(buf, off)
                name = os.fsdecode(buf[off + _EVENT.size:off + _EVENT.size + n].rstrip(b"\0"))
                off += _EVENT.size + n
                if mask & _IN_Q_OVERFLOW:
                    hit = True
                elif wd in self._watches:
                    if mask & _IN_IGNORED:
                        del self._watches[wd]  # removed by the kernel: its directory is gone
                        hit = True
                    elif mask & (_IN_DELETE_SELF | _IN_MOVE_SELF) or name == self._watches[wd]:
                        hit = True
        if hit:
            self._arm()
        return hit

    def _drain_wake(self) -> bool:
        woken = False
        try:
            while os.read(self._rfd, 512):
                woken = True
        except BlockingIOError:
            pass
        return woken

    def wake(self) -> None:
        """End a :meth:`wait` in another thread (or the next one)."""
        try:
            os.write(self._wfd, b"!")
        except OSError:
            pass  # already woken (the pipe is full) or closed

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for an event on the socket's path or a :meth:`wake`, at most
        ``timeout`` seconds (for ever if None). Without inotify it also returns
        True every ``POLL_S`` seconds, so that the caller looks again."""
        with self._lock:
            if self._closed:
                return True
            if self._fd >= 0 and not self._watches:
                self._arm()  # watches had run out before
            polling = self.polling
            fds = [self._rfd] + ([self._fd] if self._fd >= 0 else [])
            self._waiting += 1
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                tick = left if not polling else (POLL_S if left is None else min(left, POLL_S))
                try:
                    ready, _, _ = select.select(fds, [], [], tick)
                except (OSError, ValueError):  # pragma: no cover - closed under us
                    return True
                with self._lock:
                    if self._closed:
                        return True
                    hit = self._drain_wake() if self._rfd in ready else False
                    if self._fd >= 0 and self._fd in ready and self._read_events():
                        hit = True
                if hit:
                    return True
                if not ready:  # select's timeout
                    if deadline is not None and time.monotonic() >= deadline:
                        return False
                    if polling:
                        return True
        finally:
            with self._lock:
                self._waiting -= 1
                if self._closed and not self._waiting:
                    self._close_fds()

    def close(self) -> None:
        """Release the watch; a thread waiting on it returns True."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.wake()
            if not self._waiting:  # else the waiter closes them when it returns
                self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self._fd, self._rfd, self._wfd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fd = self._rfd = self._wfd = -1
        self._watches = {}

    def __enter__(self) -> "SocketWatch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


T = TypeVar("T")


def connect_soon(attempt: Callable[[], T | None], stop: Callable[[], bool] | None = None,
                 tries: int | None = None) -> T | None:
    """``attempt()`` until it returns something, at most ``tries`` times
    (``len(RETRY_DELAYS_S)``: over about 0.6 s, for the moment between the
    agent binding its socket and listening on it); None if it never did or
    ``stop()`` became true first."""
    for delay in RETRY_DELAYS_S[:tries]:
        if delay:
            time.sleep(delay)  # bounded: only after an event, 0.6 s in all
        if stop is not None and stop():
            return None
        got = attempt()
        if got is not None:
            return got
    return None
