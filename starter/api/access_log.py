"""Tokens never in a log line: the access log without the signed links' query strings.

The billing pages (``/billing/card``, ``/billing/reactivate``) and ``/unsubscribe`` are
authenticated by a signed token in the link's query string (the link in the email). An
access log line with that query string would hand a working link to anyone who reads the
logs, so for those paths the query is replaced by ``[redacted]``. The filter sits on
uvicorn's ``uvicorn.access`` logger (installed by ``create_app``), so every handler of it,
uvicorn's own included, only ever sees the redacted line.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "[redacted]"
# the paths whose query strings carry a signed token
TOKEN_PATHS = ("/billing/", "/unsubscribe")


def redact(target: str) -> str:
    """``target`` (a request's path and query) with the query hidden on the token paths."""
    path, sep, _query = target.partition("?")
    if sep and unquote(path).lower().startswith(TOKEN_PATHS):
        return f"{path}?{REDACTED}"
    return target


class RedactTokens(logging.Filter):
    """Rewrites an access log record's request target (uvicorn logs ``client, method,
    path?query, version, status``); any other string argument is checked the same way."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install(logger_name: str = ACCESS_LOGGER) -> None:
    """Put the filter on the access logger once (idempotent)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())
