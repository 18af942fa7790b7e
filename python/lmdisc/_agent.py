"""HTTP/1.1 to the lmdisc agent's Unix socket, with the standard library only."""

from __future__ import annotations

import errno
import http.client
import json
import os
import socket
import threading
import weakref
from typing import Any

from ._log import log
from .errors import AgentError, LmdiscError

DEFAULT_SOCKET = "/run/lmdisc/agent.sock"
#: seconds to connect and get an answer for ordinary requests (the agent answers from memory)
REQUEST_TIMEOUT_S = 5.0

_NO_AGENT_ERRNOS = {errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR}


def socket_path() -> str:
    """The agent's API socket: ``$LMDISC_SOCKET``, else ``/run/lmdisc/agent.sock``."""
    return os.environ.get("LMDISC_SOCKET") or DEFAULT_SOCKET


class NoAgent(Exception):
    """Internal: no agent to talk to at ``path`` (missing socket, refused, or not allowed)."""

    def __init__(self, path: str, reason: str, denied: bool = False):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.denied = denied


class UnixHTTPConnection(http.client.HTTPConnection):
    """An ``http.client.HTTPConnection`` whose ``connect()`` opens an AF_UNIX socket.

    ``raw_sock`` keeps the socket even after http.client hands it to a
    response, so another thread can ``shutdown()`` it to end a stream.
    """

    def __init__(self, path: str, timeout: float | None = REQUEST_TIMEOUT_S):
        super().__init__("lmdisc", timeout=timeout)
        self.unix_path = path
        self.raw_sock: socket.socket | None = None

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(self.timeout)
            s.connect(self.unix_path)
        except BaseException:
            s.close()
            raise
        self.sock = self.raw_sock = s

    def abort(self) -> None:
        """Shut the socket down (wakes a thread blocked reading it) and close it."""
        s = self.raw_sock
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self.close()
        except Exception:  # pragma: no cover - close() of a broken connection
            pass


_denied_warned = threading.Event()

# Connections held open for a long time (registrations, event streams). A child
# made by os.fork() must not keep them open: the agent would not see them close
# when this process dies, and the announcement would outlive it.
_held: "weakref.WeakSet[UnixHTTPConnection]" = weakref.WeakSet()


def hold(conn: UnixHTTPConnection) -> None:
    """Mark ``conn`` as long-lived: a forked child closes its copy at once."""
    _held.add(conn)


def _after_fork_in_child() -> None:
    for conn in list(_held):
        s = conn.raw_sock
        if s is not None:
            try:
                os.close(s.detach())
            except OSError:
                pass
    _held.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def connect(timeout: float | None = REQUEST_TIMEOUT_S) -> UnixHTTPConnection:
    """A connected UnixHTTPConnection to the agent, or ``NoAgent``."""
    path = socket_path()
    conn = UnixHTTPConnection(path, timeout)
    try:
        conn.connect()
    except PermissionError as e:
        if not _denied_warned.is_set():
            _denied_warned.set()
            log.warning("the lmdisc agent's socket %s refuses this user (%s): add the user to the "
                        "socket's group or set LMDISC_SOCKET; using the lmdisc binary instead", path, e.strerror)
        raise NoAgent(path, "permission denied", denied=True) from None
    except OSError as e:
        if e.errno in _NO_AGENT_ERRNOS or isinstance(e, (FileNotFoundError, ConnectionRefusedError)):
            raise NoAgent(path, e.strerror or str(e)) from None
        raise LmdiscError(f"cannot connect to the lmdisc agent at {path}: {e}") from None
    return conn


def error_message(raw: bytes, reason: str) -> str:
    """The ``error`` text of an agent's error body, else the body, else the HTTP reason."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            return doc["error"]
    except ValueError:
        pass
    return text[:300] or reason or "error"


def encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def request(method: str, path: str, body: Any = None, *,
            timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, dict, Any]:
    """One request to the agent; returns ``(status, headers, parsed JSON or None)``.

    Raises ``NoAgent`` if there is no agent, :class:`AgentError` for a 4xx/5xx
    answer, :class:`LmdiscError` if the agent does not answer properly. A GET is
    tried twice if the connection drops before the answer.
    """
    data = encode(body) if body is not None else None
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    attempts = 2 if method == "GET" else 1
    where = socket_path()
    for attempt in range(attempts):
        conn = connect(timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            status, hdrs, reason = resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.reason
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
            if attempt + 1 < attempts:
                log.debug("%s %s: the agent closed the connection (%s); trying again", method, path, e)
                continue
            raise LmdiscError(f"the lmdisc agent at {where} closed the connection during {method} {path}") from None
        except socket.timeout:
            raise LmdiscError(f"the lmdisc agent at {where} did not answer {method} {path} "
                              f"within {timeout:g} s") from None
        except (OSError, http.client.HTTPException) as e:
            raise LmdiscError(f"{method} {path} to the lmdisc agent at {where} failed: {e!r}") from None
        finally:
            conn.close()
        log.debug("%s %s -> %d", method, path, status)
        if status >= 400:
            raise AgentError(status, error_message(raw, reason), method, path)
        doc = None
        if raw.strip():
            try:
                doc = json.loads(raw)
            except ValueError:
                raise LmdiscError(f"the lmdisc agent answered {method} {path} with something that is "
                                  f"not JSON: {raw[:100]!r}") from None
        return status, hdrs, doc
    raise AssertionError("unreachable")  # pragma: no cover
