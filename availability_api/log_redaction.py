"""Keeps what clients send in query strings out of the server's logs.

Keys travel in the ``X-API-Key`` header, which uvicorn never logs, but a client may
put one in a query string by mistake (``?api_key=...``), and uvicorn logs query
strings: in its access log, and in the ASGI scope it dumps at ``--log-level trace``.
These filters replace every query value with ``***`` in both.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

ACCESS_LOGGER = "uvicorn.access"
ASGI_TRACE_LOGGER = "uvicorn.asgi"
REDACTED = "***"

_QUERY_VALUE = re.compile(r"=[^&]*")


def redact_query(target: str) -> str:
    """``/p?channel=web&api_key=s3cret`` → ``/p?channel=***&api_key=***``."""
    path, question, query = target.partition("?")
    return path + question + _QUERY_VALUE.sub("=" + REDACTED, query) if question else target


class _RedactAccessLog(logging.Filter):
    # uvicorn logs: '%s - "%s %s HTTP/%s" %d' % (client, method, path_with_query, version, status)
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > 2 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


class _RedactAsgiTrace(logging.Filter):
    # uvicorn's trace logs a copy of the scope; its headers are already elided, its query is not
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, Mapping) and a.get("query_string") for a in args):
            record.args = tuple(
                {**a, "query_string": REDACTED.encode()} if isinstance(a, Mapping) and a.get("query_string") else a
                for a in args
            )
        return True


def install() -> None:
    """Adds the filters to uvicorn's loggers, once per process (the app factory may run again)."""
    for name, kind in ((ACCESS_LOGGER, _RedactAccessLog), (ASGI_TRACE_LOGGER, _RedactAsgiTrace)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())
