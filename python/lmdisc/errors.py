"""Exceptions raised by lmdisc.

Every error is a :class:`LmdiscError`, itself a :class:`RuntimeError`, so code
written for the old module that caught ``RuntimeError`` keeps working.
"""

from __future__ import annotations

__all__ = ["LmdiscError", "LmdiscUnavailable", "AgentError"]


class LmdiscError(RuntimeError):
    """Something lmdisc could not do; the message says what and how to fix it."""


class LmdiscUnavailable(LmdiscError):
    """Neither an lmdisc agent nor the ``lmdisc`` binary can be used.

    The message says what to install or start, e.g.::

        no lmdisc agent at /run/lmdisc/agent.sock and no lmdisc binary on PATH:
        install the lmdisc package (apt install ./lmdisc_*.deb) and start it
        (systemctl start lmdisc), or set LMDISC_SOCKET
    """


class AgentError(LmdiscError):
    """The agent answered a request with an error (HTTP 4xx/5xx).

    ``status`` is the HTTP status (409: the name is registered by another
    connection; 400: bad port, name over 63 bytes, TXT too large; ...),
    ``message`` the agent's ``{"error": ...}`` text, ``method`` and ``path``
    the request that failed.
    """

    def __init__(self, status: int, message: str, method: str | None = None, path: str | None = None) -> None:
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        where = f" ({method} {path})" if method and path else ""
        super().__init__(f"lmdisc agent: {message} [HTTP {status}{where}]")
