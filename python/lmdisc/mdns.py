"""Announcing and one-shot discovery: :func:`announce_self`, :func:`discover_nodes`,
:func:`discover`, :func:`set_txt`, :func:`drain` and :class:`Announcement`.

The module keeps the old ``lmserv.discovery.mdns`` names. With an lmdisc agent on
the host (its socket at ``$LMDISC_SOCKET``, else ``/run/lmdisc/agent.sock``) every
call goes to the agent; without one, to the ``lmdisc`` binary (``$LMDISC_BIN``,
else ``lmdisc`` on ``PATH``); with neither, :class:`~lmdisc.LmdiscUnavailable`.
An announcement moves between the two as the agent goes and comes back (see
:class:`Announcement`).
"""

from __future__ import annotations

import atexit
import collections
import http.client
import json
import os
import random
import re
import socket
import subprocess
import threading
import time
from typing import Any, Callable
from urllib.parse import quote

from . import _agent, _proc, _watch
from ._agent import NoAgent
from ._log import log
from .errors import AgentError, LmdiscError
from .node import Node, NodeInfo, dedup

__all__ = ["announce_self", "discover_nodes", "discover", "set_txt", "drain", "Announcement", "NodeInfo",
           "default_name"]

#: The service type, as the old module spelled it. lmdisc announces and browses
#: ``_lmserv._tcp`` (in the ``local`` domain); other types are set in the agent's configuration.
_SERVICE_TYPE = "_lmserv._tcp.local."
#: Backoffs (doubling up to _RETRY_MAX_S): before asking the agent again when it answered 409, 429
#: or 5xx or dropped a registration at once, and before starting again an lmdisc announce child that
#: exited by itself. An agent that goes away and comes back is not waited for: its socket is watched.
_RETRY_INITIAL_S = 0.5
_RETRY_MAX_S = 30.0
#: Without an agent, how long announce_self() waits for the `lmdisc announce` child to either
#: announce or refuse its arguments before returning.
_FALLBACK_SETTLE_S = 0.5
#: A registration the agent dropped sooner than this, before it was established, is not tried
#: again at once but after a backoff (_RETRY_INITIAL_S doubling to _RETRY_MAX_S; the child announces
#: meanwhile): an agent that accepts and drops registrations must not make a busy loop.
_SHORT_LIVED_S = 1.0
#: Without an agent, drain(grace=None) withdraws this process's announcements after this many seconds.
_DEFAULT_DRAIN_GRACE_S = 30.0
#: How often discover() asks the agent again while its answer is not complete yet.
_SETTLE_POLL_S = 0.1

_MISSING = object()


def _jitter(delay: float) -> float:
    return delay * random.uniform(0.8, 1.2)


def default_name(port: int) -> str:
    """The instance name lmdisc uses when none is given: ``<short hostname>:<port>``
    (the host name cut at its first dot and to 56 bytes, as the agent does)."""
    host = socket.gethostname().split(".", 1)[0] or "lmserv"
    host = host.encode("utf-8")[:56].decode("utf-8", "ignore")
    return f"{host}:{port}"


def _check_port(port: Any) -> int:
    if isinstance(port, str) and port.strip().isdigit():
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int, not {type(port).__name__}")
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not a number from 1 to 65535")
    return port


def _check_name(name: Any) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if not 1 <= len(name.encode("utf-8")) <= 63:
        raise ValueError(f"name {name!r} must be 1 to 63 bytes (a DNS label)")
    return name


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key or "=" in key or not key.isascii() or not key.isprintable():
        raise ValueError(f"TXT key {key!r} must be a non-empty printable ASCII string without '='")
    return key


def _txt_value(key: str, v: Any, removal: bool) -> str | bool | None:
    """A TXT value as the agent's JSON carries it: str, True (a bare key) or None (remove)."""
    if v is True:
        return True
    if v is None or v is False:
        if removal:
            return None
        raise ValueError(f"TXT {key}: {v!r} removes a key; it has no meaning in a new announcement")
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, (str, int, float)):
        return str(v)
    raise TypeError(f"TXT {key}: a value must be str, int, float or True, not {type(v).__name__}")


def _check_txt(txt: Any) -> dict:
    if txt is None:
        return {}
    if not isinstance(txt, dict):
        raise TypeError(f"txt must be a dict, not {type(txt).__name__}")
    out = {}
    for k, v in txt.items():
        _check_key(k)
        if k.lower() == "info":  # TXT keys are case-insensitive
            raise ValueError("give info as the info argument, not as txt={'info': ...}")
        if v is None or v is False:
            continue
        out[k] = _txt_value(k, v, removal=False)
    return out


class _Child:
    """One ``lmdisc announce`` child and the thread reading its output."""

    def __init__(self, proc: subprocess.Popen, ann: "Announcement") -> None:
        self.proc = proc
        self.tail: collections.deque = collections.deque(maxlen=3)
        self.rc: int | None = None
        self.done = threading.Event()
        self.restart = False  # set_txt() stopped it to start it again with the new TXT
        self.established = False
        self._ann = ann
        self.thread = threading.Thread(target=self._follow, name=f"lmdisc-announce-out-{proc.pid}", daemon=True)
        self.thread.start()

    def _follow(self) -> None:
        ann = self._ann
        try:
            for raw in self.proc.stdout:  # type: ignore[union-attr]
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                m = re.match(r'^announced "(.*)"$', line)
                if m:
                    ann._child_state(self, "established", m.group(1))
                    continue
                m = re.search(r'now announcing as "(.*)"$', line)
                if m:
                    ann._child_state(self, "renamed", m.group(1))
                    continue
                _proc.relay(line, "lmdisc announce")
                if line.strip():
                    self.tail.append(line)
        except (OSError, ValueError):  # pragma: no cover - the pipe closed under us
            pass
        finally:
            try:
                self.proc.stdout.close()  # type: ignore[union-attr]
            except OSError:  # pragma: no cover
                pass
            self.rc = self.proc.wait()
            self.done.set()
            ann._wake()

    def running(self) -> bool:
        return not self.done.is_set()

    def stop(self, timeout: float = 3.0) -> None:
        """SIGTERM (it withdraws, avahi sends goodbyes), SIGKILL if it lingers; waits for the reader."""
        _proc.terminate(self.proc, timeout)
        self.thread.join(timeout)


class Announcement:
    """One service announced by this process, for as long as the process lives.

    Made by :func:`announce_self`. It is announced whatever the agent does:

    - With an agent it holds the agent's registration connection
      (``PUT /v1/services/NAME``) open in a daemon thread: the agent withdraws
      the service the moment that connection closes, also when the process
      dies, however it dies.
    - When the agent goes away (stopped, restarting, crashed: its socket is
      gone or refuses connections) it announces at once with an ``lmdisc
      announce`` child instead (records with a TTL of half
      ``lmdisc.registry._DEFAULT_TTL_S``, as the agent publishes them). The
      child is bound to the process (SIGTERM to it when the process dies,
      even by SIGKILL; terminated at interpreter exit) and started again if
      it exits.
    - It watches the agent's socket (inotify on its directory) and moves
      back to the agent within a second of the socket reappearing: the child
      withdraws, then the service is registered with the agent again.

    Attributes: ``name`` (the name on the network; changes after a collision),
    ``requested_name``, ``port``, ``info``, ``txt`` (the TXT items besides
    ``info``), ``state`` (``"registering"``, ``"established"``, ``"renamed"``,
    ``"withdrawn"`` or ``"failed"``), ``reason`` (why it was withdrawn or
    failed) and ``mode`` (who announces it now: ``"agent"`` or
    ``"process"``; ``None`` while neither can, e.g. the agent is gone and
    there is no ``lmdisc`` binary to fall back to).

    Usable as a context manager: ``with announce_self(8000) as a: ...``
    withdraws on exit.
    """

    def __init__(self, port: int, info: str, name: str | None, txt: dict) -> None:
        self.port = port
        self.info = info
        self.requested_name = name or default_name(port)
        self.name = self.requested_name
        self.txt: dict = dict(txt)
        self.state = "new"
        self.reason: str | None = None
        self.mode: str | None = None
        self._explicit_name = name is not None
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: _agent.UnixHTTPConnection | None = None
        self._child: _Child | None = None
        self._watch: _watch.SocketWatch | None = None
        self._binary: str | None = None
        self._no_binary_warned = False
        self._n_established = 0
        self._announced_by: str | None = None  # the mode of the last "established" (logged on a change)
        self._listeners: list[Callable[["Announcement"], None]] = []
        self._pid = os.getpid()  # the owner: a forked child neither withdraws nor changes it

    def __repr__(self) -> str:
        return (f"<lmdisc.Announcement {self.name!r} port={self.port} info={self.info!r} "
                f"state={self.state} mode={self.mode}>")

    def __enter__(self) -> "Announcement":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.withdraw()

    @property
    def active(self) -> bool:
        """True until the announcement is withdrawn (by :meth:`withdraw` or by the agent) or failed."""
        return not self._closing.is_set() and self.state not in ("withdrawn", "failed")

    @property
    def _proc(self) -> subprocess.Popen | None:
        """The running ``lmdisc announce`` child, if one announces now."""
        c = self._child
        return c.proc if c is not None else None

    # ---- state ----------------------------------------------------------

    def _set(self, state: str, name: Any = None, reason: str | None = None, mode: Any = _MISSING) -> None:
        with self._cond:
            if self.state in ("withdrawn", "failed"):
                return
            if isinstance(name, str) and name:
                if name != self.name:
                    log.info("announcement %r is now named %r", self.name, name)
                self.name = name
            if mode is not _MISSING:
                self.mode = mode
            if state != self.state:
                log.debug("announcement %r: %s -> %s%s", self.name, self.state, state,
                          f" ({reason})" if reason else "")
            if state == "established" and (self.state != "established" or self._announced_by != self.mode):
                self._announced_by = self.mode
                log.info("%r is announced %s", self.name, "through the lmdisc agent" if self.mode == "agent"
                         else "by an lmdisc announce child" if self.mode == "process" else "")
            self.state = state
            if state == "established":
                self._n_established += 1
            if reason is not None:
                self.reason = reason
            self._cond.notify_all()
            listeners = list(self._listeners)
        for fn in listeners:
            try:
                fn(self)
            except Exception:  # pragma: no cover - a listener's bug must not stop the announcement
                log.exception("announcement listener")
        if state in ("withdrawn", "failed"):
            _forget(self)

    def _add_listener(self, fn: Callable[["Announcement"], None]) -> None:
        """Call ``fn(self)`` after every state change (from lmdisc's threads)."""
        with self._cond:
            self._listeners.append(fn)

    def _remove_listener(self, fn: Callable[["Announcement"], None]) -> None:
        with self._cond:
            if fn in self._listeners:
                self._listeners.remove(fn)

    def wait_state(self, *states: str, timeout: float | None = None) -> bool:
        """Wait until ``state`` is one of ``states``; False if ``timeout`` seconds passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: self.state in states, timeout)

    def wait_established(self, timeout: float | None = None) -> bool:
        """Wait until the name is established on the network (avahi finished
        probing). True once established; False on timeout or if the
        announcement was withdrawn or failed first."""
        with self._cond:
            self._cond.wait_for(lambda: self.state in ("established", "withdrawn", "failed"), timeout)
            return self.state == "established"

    def _wake(self) -> None:
        w = self._watch
        if w is not None:
            w.wake()

    # ---- with the agent ---------------------------------------------------

    def _path(self, name: str | None = None) -> str:
        return "/v1/services/" + quote(name or self.requested_name, safe="")

    def _body(self) -> dict:
        with self._cond:
            return {"port": self.port, "info": self.info, "txt": dict(self.txt)}

    def _register(self) -> tuple[_agent.UnixHTTPConnection, http.client.HTTPResponse]:
        """PUT /v1/services/NAME; the open connection and its 200 streaming response."""
        conn = _agent.connect()
        path = self._path()
        try:
            conn.request("PUT", path, body=_agent.encode(self._body()),
                         headers={"Content-Type": "application/json", "Accept": "application/x-ndjson"})
            resp = conn.getresponse()
            if resp.status != 200:
                raise AgentError(resp.status, _agent.error_message(resp.read(), resp.reason), "PUT", path)
            if conn.raw_sock is not None:
                conn.raw_sock.settimeout(None)  # the stream is quiet while nothing happens
            _agent.hold(conn)
        except AgentError:
            conn.close()
            raise
        except socket.timeout:
            conn.close()
            raise LmdiscError(f"the lmdisc agent at {conn.unix_path} did not answer PUT {path} "
                              f"within {_agent.REQUEST_TIMEOUT_S:g} s") from None
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise LmdiscError(f"PUT {path} to the lmdisc agent at {conn.unix_path} failed: {e!r}") from None
        log.debug("PUT %s -> 200 (registration stream)", path)
        return conn, resp

    def _read_states(self, resp: http.client.HTTPResponse) -> str:
        """Follow the registration stream until it ends: "withdrawn" or "eof"."""
        while True:
            try:
                line = resp.readline()
            except Exception as e:  # IncompleteRead, a socket shut down by withdraw(), ...
                log.debug("registration stream of %r ended: %r", self.name, e)
                return "eof"
            if not line:
                return "eof"
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                log.warning("ignoring a line of the registration stream that is not JSON: %r", line[:100])
                continue
            if not isinstance(msg, dict) or not isinstance(msg.get("state"), str):
                continue
            if msg["state"] in ("withdrawn", "failed"):  # final: no registering again
                reason = msg.get("reason") or f"{msg['state']} by the agent"
                log.info("the lmdisc agent withdrew %r: %s", self.name, reason)
                self._set(msg["state"], reason=str(reason))
                return "withdrawn"
            self._set(msg["state"], name=msg.get("name"))

    def _follow_agent(self, conn: _agent.UnixHTTPConnection, resp: http.client.HTTPResponse) -> str:
        with self._cond:
            if self._closing.is_set():
                conn.abort()
                return "closing"
            self._conn = conn
        self._set(self.state if self.state in ("established", "renamed") else "registering", mode="agent")
        outcome = self._read_states(resp)
        conn.abort()
        with self._cond:
            self._conn = None
        return outcome

    # ---- without an agent: an `lmdisc announce` child ---------------------

    def _argv(self) -> list[str]:
        from . import registry  # its TTL: the records live half of it, as the agent publishes them

        ttl = max(1, int(float(registry._DEFAULT_TTL_S) / 2))
        with self._cond:
            opts = ["--name", self.requested_name] if self._explicit_name else []
            for k, v in self.txt.items():
                opts += ["--txt", k if v is True else f"{k}={v}"]
            opts += ["--ttl", str(ttl)]
            binary, pos = self._binary or "lmdisc", [str(self.port), self.info]
        if self.info.startswith("-"):  # not an option: options first, then "--"
            return [binary, "announce", *opts, "--", *pos]
        return [binary, "announce", *pos, *opts]

    def _child_state(self, child: _Child, state: str, name: str) -> None:
        if state == "established":
            child.established = True
        if self._child is child:
            self._set(state, name=name)

    def _spawn(self, binary: str) -> _Child:
        """Start the child (LmdiscError if it cannot be run)."""
        self._binary = binary
        argv = self._argv()
        log.debug("running %s", " ".join(argv))
        proc = _proc.spawn_bound(argv)
        child = _Child(proc, self)
        with self._cond:
            closing = self._closing.is_set()
            if not closing:
                self._child = child
                self._cond.notify_all()
        if closing:
            child.stop()
            return child
        self._set("registering", mode="process")
        return child

    def _stop_child(self) -> None:
        """Stop the child (it withdraws the name); nothing announces until the next step."""
        with self._cond:
            child, self._child = self._child, None
            self._cond.notify_all()
        if child is not None:
            child.stop()
            if not self._closing.is_set():
                self._set("registering", mode=None)

    # ---- the supervisor: agent, else a child, back to the agent ----------

    def _ensure_watch(self) -> _watch.SocketWatch:
        if self._watch is None:
            self._watch = _watch.SocketWatch(_agent.socket_path())
            if self._closing.is_set():
                self._watch.wake()
        return self._watch

    def _try_agent(self) -> Any:
        """One registration attempt: (conn, resp); None if there is no agent
        (or it failed in a way worth trying again); "retry" when the agent
        asks to be asked later (429, 5xx); "taken" when another connection
        holds the name (409: it is announced, by someone else); "old" for an
        agent without the registration API; raises AgentError when it
        refuses for good."""
        try:
            return self._register()
        except NoAgent as e:
            log.debug("no lmdisc agent (%s)", e)
            return None
        except AgentError as e:
            if e.status == 409:  # another connection holds the name on this host's avahi: no child either
                log.warning("registering %r with the lmdisc agent: %s; trying again later", self.requested_name, e)
                return "taken"
            if e.status == 429 or e.status >= 500:
                log.warning("registering %r with the lmdisc agent: %s; trying again later", self.requested_name, e)
                return "retry"
            if e.status in (404, 405):
                log.warning("the lmdisc agent has no registration API (HTTP %d): %r stays announced by "
                            "lmdisc announce (upgrade the lmdisc package)", e.status, self.requested_name)
                return "old"
            raise
        except LmdiscError as e:
            log.warning("%s", e)
            return None

    def _agent_listens(self, watch: _watch.SocketWatch) -> bool:
        """Whether the agent accepts connections, tried a few times over 0.6 s
        while its socket exists (it is bound before the agent listens)."""
        path = _agent.socket_path()

        def probe() -> bool | None:
            try:
                _agent.connect(timeout=1.0).close()
                return True
            except (NoAgent, LmdiscError):
                return None

        def give_up() -> bool:
            return self._closing.is_set() or not os.path.exists(path)

        return bool(_watch.connect_soon(probe, give_up, tries=1 if watch.polling else None))

    def _run(self, conn: Any, resp: Any) -> None:
        try:
            self._supervise(conn, resp)
        except AgentError as e:
            log.error("the lmdisc agent refuses %r now: %s", self.requested_name, e.message)
            self._set("failed", reason=e.message)
        except Exception as e:  # pragma: no cover - a bug: say so, do not die silently
            log.exception("announcing %r", self.requested_name)
            self._set("failed", reason=repr(e))
        finally:
            self._stop_child()
            w, self._watch = self._watch, None
            if w is not None:
                w.close()

    def _supervise(self, conn: Any, resp: Any) -> None:
        delay = _RETRY_INITIAL_S       # before starting a child that exited by itself again
        agent_delay = _RETRY_INITIAL_S  # before asking an agent that said "later" again
        restart_at: float | None = None
        agent_at: float | None = None   # when to ask the agent again without an event
        while True:
            if self._closing.is_set():
                if conn is not None:
                    conn.abort()
                return
            if conn is not None:
                before, since = self._n_established, time.monotonic()
                outcome = self._follow_agent(conn, resp)
                conn = resp = None
                if self._closing.is_set() or outcome in ("withdrawn", "closing"):
                    return
                self._set("registering")
                self._ensure_watch()  # armed before the agent is found absent: no event is missed
                if self._n_established > before:
                    agent_delay = _RETRY_INITIAL_S
                    got = self._try_agent()  # it may only have dropped this connection
                elif time.monotonic() - since < _SHORT_LIVED_S:
                    # taken and dropped at once (an agent shutting down, or failing): not again at once
                    got = "retry"
                else:
                    got = self._try_agent()
                if isinstance(got, tuple):
                    log.info("registered %r with the lmdisc agent again", self.requested_name)
                    conn, resp = got
                    self._close_watch()
                    continue
                if got in ("retry", "taken"):
                    agent_at = time.monotonic() + _jitter(agent_delay)
                    agent_delay = min(agent_delay * 2, _RETRY_MAX_S)
                if got != "taken":
                    log.warning("lost the lmdisc agent at %s; announcing %r with lmdisc announce until it is back",
                                _agent.socket_path(), self.requested_name)
                    restart_at = time.monotonic()
                else:
                    self._set("registering", mode=None)

            # no agent: a child announces while we wait for the agent's socket
            watch = self._ensure_watch()
            child = self._child
            if child is not None and not child.running():
                with self._cond:
                    if self._child is child:
                        self._child = None
                if child.restart:
                    restart_at = time.monotonic()
                elif child.rc == 2:  # wrong use: starting it again would not help
                    detail = child.tail[-1] if child.tail else "exit status 2"
                    log.error("lmdisc announce refused to announce %r: %s", self.requested_name, detail)
                    self._set("failed", reason=f"lmdisc announce: {detail}")
                    return
                else:
                    if child.established:  # it had worked: a new failure starts the backoff again
                        delay = _RETRY_INITIAL_S
                    detail = child.tail[-1] if child.tail else f"exit status {child.rc}"
                    log.warning("lmdisc announce exited (%s); starting it again in %.1f s", detail, delay)
                    self._set("registering")
                    restart_at = time.monotonic() + _jitter(delay)
                    delay = min(delay * 2, _RETRY_MAX_S)
                child = None
            if child is None and restart_at is not None and time.monotonic() >= restart_at:
                restart_at = None
                binary = _proc.find_binary()
                if binary is None:
                    if not self._no_binary_warned:
                        self._no_binary_warned = True
                        log.warning("no lmdisc binary to announce %r with until the lmdisc agent is back "
                                    "(install the lmdisc package, or set LMDISC_BIN)", self.requested_name)
                    self._set("registering", mode=None)
                else:
                    try:
                        child = self._spawn(binary)
                    except LmdiscError as e:
                        log.error("%s", e)
                        self._set("failed", reason=str(e))
                        return
                    continue  # look at it at once (it may have failed already)
            deadlines = [t for t in (restart_at, agent_at) if t is not None]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            event = watch.wait(timeout)
            if self._closing.is_set():
                return
            due = agent_at is not None and time.monotonic() >= agent_at
            if due:
                agent_at = None  # asked once more now; from here on the socket's events tell
            if not event and not due:
                continue
            # the socket changed (or an agent asked us to come back later): is the agent there?
            if not self._agent_listens(watch):
                continue
            agent_at = None
            self._stop_child()  # first: the agent cannot announce the name while the child holds it
            got = self._try_agent()
            if isinstance(got, tuple):
                log.info("the lmdisc agent is back: %r is registered with it again", self.requested_name)
                conn, resp = got
                delay = _RETRY_INITIAL_S
                restart_at = None
                self._close_watch()  # not needed until the agent goes away again
                continue
            if got in ("retry", "taken"):
                agent_at = time.monotonic() + _jitter(agent_delay)
                agent_delay = min(agent_delay * 2, _RETRY_MAX_S)
            if got != "taken":
                restart_at = time.monotonic()  # the child is stopped: announce with a new one
            else:
                self._set("registering", mode=None)

    # ---- public -----------------------------------------------------------

    def _start(self) -> None:
        """The first attempt, in the caller's thread: errors are raised to it."""
        self._ensure_watch()
        try:
            conn, resp = self._register()
        except NoAgent as e:
            binary = _proc.find_binary()
            if binary is None:
                self._close_watch()
                raise _proc.unavailable(e) from None
            log.info("no lmdisc agent at %s (%s): announcing %r with %s announce", e.path, e.reason,
                     self.requested_name, binary)
            self._start_process(binary)
            return
        except AgentError as e:
            if e.status in (404, 405):
                binary = _proc.find_binary()
                if binary is None:
                    self._close_watch()
                    raise AgentError(e.status, f"{e.message} (this agent is older than the registration API: "
                                     "upgrade the lmdisc package)", e.method, e.path) from None
                log.warning("the lmdisc agent has no registration API (HTTP %d); announcing %r with %s announce",
                            e.status, self.requested_name, binary)
                self._start_process(binary)
                return
            self._close_watch()
            raise
        except BaseException:
            self._close_watch()
            raise
        self._close_watch()  # armed only while there is no agent
        self._set("registering", mode="agent")
        self._thread = threading.Thread(target=self._run, args=(conn, resp),
                                        name=f"lmdisc-announce-{self.port}", daemon=True)
        self._thread.start()

    def _close_watch(self) -> None:
        w, self._watch = self._watch, None
        if w is not None:
            w.close()

    def _start_process(self, binary: str) -> None:
        try:
            child = self._spawn(binary)
        except BaseException:
            self._close_watch()
            raise
        self._thread = threading.Thread(target=self._run, args=(None, None),
                                        name=f"lmdisc-announce-{self.port}", daemon=True)
        self._thread.start()
        with self._cond:
            self._cond.wait_for(lambda: self.state in ("established", "failed") or not child.running(),
                                _FALLBACK_SETTLE_S)
        if not child.running() and child.rc == 2:
            self.wait_state("failed", timeout=_FALLBACK_SETTLE_S)
        if self.state == "failed":
            raise LmdiscError(self.reason or "lmdisc announce failed")

    def withdraw(self, timeout: float = 5.0) -> None:
        """Stop announcing. With an agent, closes the registration connection
        (the agent withdraws the service at once, avahi sends goodbyes);
        without one, terminates the ``lmdisc announce`` child (it withdraws
        and exits). Idempotent; waits at most about ``timeout`` seconds.
        In a child made by ``os.fork()`` it does nothing: the announcement
        belongs to the process that made it."""
        if os.getpid() != self._pid:
            log.debug("not withdrawing %r: it belongs to process %d", self.name, self._pid)
            return
        with self._cond:
            if self._closing.is_set():
                return
            self._closing.set()
            conn, child = self._conn, self._child
            self._cond.notify_all()
        log.info("withdrawing %r", self.name)
        self._wake()
        if conn is not None and conn.raw_sock is not None:
            try:
                conn.raw_sock.shutdown(socket.SHUT_RDWR)  # the reading thread sees EOF and closes it
            except OSError:
                pass
        if child is not None:
            _proc.terminate(child.proc, timeout=min(timeout, 3.0))
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
        with self._cond:
            if self.state not in ("withdrawn", "failed"):
                self.state = "withdrawn"
                self.reason = "withdrawn by the caller"
            self._cond.notify_all()
            listeners = list(self._listeners)
        for fn in listeners:
            try:
                fn(self)
            except Exception:  # pragma: no cover
                log.exception("announcement listener")
        _forget(self)

    def _patch(self, body: dict) -> Any:
        try:
            return _agent.request("PATCH", self._path(self.requested_name), body)[2]
        except AgentError as e:
            if e.status == 404 and self.name != self.requested_name:
                return _agent.request("PATCH", self._path(self.name), body)[2]
            raise

    def set_txt(self, txt: dict | None = None, /, **kv: Any) -> dict:
        """Change TXT items in place: ``a.set_txt(load=3, old=None)`` or
        ``a.set_txt({"model-name": "gemma"})``.

        A value is a str (ints and floats are turned into str), ``True`` (a
        bare key) or ``None``/``False`` (remove the key). The key ``info``
        changes the announcement's info. With an agent this is one
        ``PATCH /v1/services/NAME`` (avahi updates the TXT record, no
        re-registration); if the agent is down at that moment the change is
        kept and announced when it re-registers. Without an agent the
        ``lmdisc announce`` child is started again with the new TXT (this
        returns once the new child runs).
        Returns the TXT now announced (as the agent reports it, if it does).
        """
        changes: dict = {}
        if txt:
            changes.update(txt)
        changes.update(kv)
        info = _MISSING
        for k in [k for k in changes if isinstance(k, str) and k.lower() == "info"]:
            info = changes.pop(k)
        if info is not _MISSING:
            info = "" if info is None else str(info)
        norm = {_check_key(k): _txt_value(k, v, removal=True) for k, v in changes.items()}
        if os.getpid() != self._pid:
            raise LmdiscError(f"announcement {self.name!r} belongs to process {self._pid}, not to this forked "
                              "child; announce from the child with announce_self() if it serves a port of its own")
        if not self.active:
            raise LmdiscError(f"announcement {self.name!r} is {self.state}; call announce_self() again")
        doc = None
        if self.mode == "agent" and (norm or info is not _MISSING):
            body: dict = {}
            if norm:
                body["txt"] = norm
            if info is not _MISSING:
                body["info"] = info
            try:
                doc = self._patch(body)
            except NoAgent:
                log.warning("the lmdisc agent is not reachable; the new TXT of %r will be announced when "
                            "it registers again", self.name)
        with self._cond:
            for k, v in norm.items():
                if v is None:
                    self.txt.pop(k, None)
                else:
                    self.txt[k] = v
            if info is not _MISSING:
                self.info = info
            child = self._child
            running = self.mode == "process" and child is not None and child.running()
            if running:
                child.restart = True  # the child's exit is ours: start it again at once
        if running:
            log.info("starting lmdisc announce again with the new TXT of %r", self.name)
            _proc.terminate(child.proc)
            with self._cond:  # return once the child with the new TXT runs
                self._cond.wait_for(lambda: self._child not in (None, child) or not self.active, 5.0)
        if isinstance(doc, dict) and isinstance(doc.get("txt"), dict):
            return dict(doc["txt"])
        with self._cond:
            return {"info": self.info, **self.txt}


# ---- the module's announcements ---------------------------------------------

_lock = threading.RLock()
_live: dict[tuple[int, str | None], Announcement] = {}
_default: Announcement | None = None


def _forget(ann: Announcement) -> None:
    global _default
    with _lock:
        for k, v in list(_live.items()):
            if v is ann:
                del _live[k]
        if _default is ann:
            _default = None


def _default_announcement() -> Announcement | None:
    with _lock:
        if _default is not None and _default.active:
            return _default
        return next((a for a in _live.values() if a.active), None)


def announce_self(port: int, info: str = "", *, name: str | None = None,
                  txt: dict | None = None) -> Announcement:
    """Announce this server (``_lmserv._tcp``, TXT ``info=INFO`` plus ``txt``) for
    as long as the process lives, and return its :class:`Announcement`.

    Call it once the HTTP server's port is bound. The default instance name is
    ``<hostname>:<port>``. Like the old module it only announces once: a second
    call with the same ``port`` and ``name`` returns the same Announcement
    (use :meth:`Announcement.set_txt` to change TXT); other ports or names are
    announced too, each on its own.

    With an agent the service is registered through it and stays while the
    registration connection is open; without one an ``lmdisc announce`` child
    does the announcing. It moves from one to the other as the agent goes
    away and comes back (see :class:`Announcement`).
    Returns without waiting for avahi to establish the name; use
    :meth:`Announcement.wait_established` to wait.

    Raises ``ValueError``/``TypeError`` for a bad port (1-65535), name (1-63
    bytes) or TXT, :class:`~lmdisc.AgentError` if the agent refuses (409: the
    name is registered by another connection; 400: TXT too large, ...),
    :class:`~lmdisc.LmdiscUnavailable` with neither an agent nor the binary.
    """
    global _default
    port = _check_port(port)
    name = _check_name(name)
    info = "" if info is None else str(info)
    txt = _check_txt(txt)
    key = (port, name)
    with _lock:
        ann = _live.get(key)
        if ann is not None and ann.active:
            if ann.info != info or ann.txt != txt:
                log.warning("%r is already announced; ignoring the new info/txt (use set_txt() to change it)",
                            ann.name)
            return ann
        ann = Announcement(port, info, name, txt)
        ann._start()
        _live[key] = ann
        if _default is None or not _default.active:
            _default = ann
        log.info("announcing %r on port %d (%s)", ann.name, port, ann.mode)
        return ann


def set_txt(txt: dict | None = None, /, **kv: Any) -> dict:
    """:meth:`Announcement.set_txt` on the announcement made by the first
    :func:`announce_self` call (the default announcement)."""
    ann = _default_announcement()
    if ann is None:
        raise LmdiscError("set_txt() changes what announce_self() announces: call announce_self() first")
    return ann.set_txt(txt, **kv)


def drain(grace: float | None = None) -> dict:
    """Drain this host: ``POST /v1/self/drain`` (body ``{"grace": grace}`` if
    given). The agent announces TXT ``status=draining`` on every service it
    announces, so peers stop sending new work, and withdraws them after the
    grace period (the agent's default if ``grace`` is None). Returns the
    agent's answer, ``{"state": "draining", "grace": S}``.

    Without an agent it does the same for this process's own announcements:
    ``status=draining`` at once, withdrawn after ``grace`` seconds
    (``_DEFAULT_DRAIN_GRACE_S``, 30, if None)."""
    if grace is not None and (isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0):
        raise ValueError(f"grace must be a number of seconds >= 0, not {grace!r}")
    body = None if grace is None else {"grace": grace}
    try:
        doc = _agent.request("POST", "/v1/self/drain", body)[2]
        log.info("the lmdisc agent is draining this host (%s)", doc)
        return doc if isinstance(doc, dict) else {"state": "draining", "grace": grace}
    except NoAgent as e:
        with _lock:
            anns = [a for a in _live.values() if a.active and a.mode == "process"]
        if not anns and _proc.find_binary() is None:
            raise _proc.unavailable(e) from None
        g = _DEFAULT_DRAIN_GRACE_S if grace is None else grace
        log.info("no lmdisc agent: draining %d announcement(s) of this process, withdrawn in %g s", len(anns), g)
        for a in anns:
            a.set_txt(status="draining")

        def finish() -> None:
            for a in anns:
                a.withdraw()

        timer = threading.Timer(g, finish)
        timer.daemon = True
        timer.start()
        return {"state": "draining", "grace": g}


def _check_timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0, not {timeout!r}")
    return timeout


def _agent_services(timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        doc = _agent.request("GET", "/v1/services")[2]
        if not isinstance(doc, dict) or not isinstance(doc.get("nodes", []), list):
            raise LmdiscError("the lmdisc agent answered GET /v1/services with an unexpected document")
        left = deadline - time.monotonic()
        if doc.get("complete", True) or left <= 0:
            return doc
        time.sleep(min(_SETTLE_POLL_S, left))


def discover(timeout: float = 5) -> list[Node]:
    """Every ``_lmserv._tcp`` service on the network now, as :class:`~lmdisc.Node`
    objects with every field, merged across interfaces and IPv4/IPv6.

    With an agent the agent answers from its registry (``GET /v1/services``)
    at once, asking again for up to ``timeout`` seconds while services are
    still settling; without one ``lmdisc discover --json --timeout T`` scans
    the network and returns as soon as it has answered (``timeout`` is only
    the upper bound). Raises :class:`~lmdisc.LmdiscUnavailable` with neither,
    :class:`~lmdisc.LmdiscError` if the scan fails (e.g. no avahi-daemon).
    """
    t = _check_timeout(timeout)
    try:
        doc = _agent_services(t)
        source = "agent"
    except NoAgent as e:
        binary = _proc.find_binary()
        if binary is None:
            raise _proc.unavailable(e) from None
        doc = _proc.run_discover(binary, t)
        source = str(doc.get("source") or "network")
    nodes = [Node.from_json(n) for n in doc.get("nodes") or () if isinstance(n, dict)]
    log.debug("discovered %d service(s) (source: %s, complete: %s)", len(nodes), source, doc.get("complete"))
    return nodes


def discover_nodes(timeout: int = 5) -> list[NodeInfo]:
    """The old module's one-shot scan: a deduplicated ``list[NodeInfo]`` of the
    peers on the network (see :func:`discover`; :class:`~lmdisc.NodeInfo` says
    which address ``host`` is). Unlike the old module it returns as soon as the
    network (or the agent) has answered instead of always waiting ``timeout``."""
    return dedup(n.node_info() for n in discover(timeout))


def _withdraw_all() -> None:
    with _lock:
        anns = list(_live.values())
    for a in anns:
        try:
            a.withdraw(timeout=3.0)
        except Exception:  # pragma: no cover - at exit, keep going
            log.exception("withdrawing %r", a.name)


def _after_fork_in_child() -> None:
    # a forked child owns none of its parent's announcements (its copies of the
    # registration sockets are closed by _agent); at its exit it must not
    # terminate the parent's `lmdisc announce` children
    global _lock, _live, _default
    _lock = threading.RLock()
    _live = {}
    _default = None


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_withdraw_all)
