"""The ``lmdisc`` logger, honoring ``$LOGLEVEL`` like the old module.

The package logs through ``logging.getLogger("lmdisc")`` and configures nothing
unless ``LOGLEVEL`` is set (DEBUG, INFO, WARNING, ERROR). Then the logger gets
that level, and while the application has configured no logging of its own
(the root logger has no handler), lmdisc's records are printed on stderr, so
``LOGLEVEL=DEBUG python server.py`` shows announce and discovery activity as it
did with the old module. Once the application configures logging, records go
through its handlers only.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("lmdisc")


class _FallbackHandler(logging.StreamHandler):
    """stderr output for lmdisc's records, only while the root logger has no handler."""

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        super().emit(record)


def _configure() -> None:
    value = os.environ.get("LOGLEVEL", "").strip().upper()
    if not value:
        return
    if value == "WARN":
        value = "WARNING"
    level = logging.getLevelName(value)
    if not isinstance(level, int):
        log.warning("LOGLEVEL=%r is not a logging level (DEBUG, INFO, WARNING, ERROR); ignored", value)
        return
    log.setLevel(level)
    if not any(isinstance(h, _FallbackHandler) for h in log.handlers):
        handler = _FallbackHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        log.addHandler(handler)


_configure()
