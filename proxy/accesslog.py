"""The access log: one DEBUG line a request, with ``?key=`` redacted.

Off unless the ``l104.access`` logger is enabled for DEBUG, so the hot path logs nothing.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from proxy.exchange import EXCHANGE

_KEY = re.compile(r"((?:^|[?&])(?:admin_)?key=)[^&]*", re.IGNORECASE)


def redact(query: str) -> str:
    """``a=1&key=secret`` -> ``a=1&key=[redacted]`` (``admin_key`` too)."""
    return _KEY.sub(r"\1[redacted]", query)


class AccessLogger(AbstractAccessLogger):
    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        query = request.query_string
        target = request.path + ("?" + redact(query) if query else "")
        exchange = request.get(EXCHANGE)
        client = exchange.client if exchange is not None else "-"
        self.logger.debug(
            "%s %s %d %.1fms client=%s",
            request.method,
            target,
            response.status,
            time * 1000,
            client,
        )


class QuietBadRequests(logging.Filter):
    """A malformed HTTP request (a bad version, an over-long URL, a header without a colon,
    ``Content-Length: -1``) is the client's fault and already answered 400: one DEBUG line,
    never an ERROR with a traceback, so bad traffic cannot flood the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        logger = logging.getLogger(record.name)
        if not logger.isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.msg = f"malformed request refused: {type(exc).__name__}: {exc.message}"
        record.args, record.exc_info, record.exc_text = (), None, None
        return True


def quiet_bad_requests() -> None:
    """Install :class:`QuietBadRequests` on aiohttp's server logger (once)."""
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, QuietBadRequests) for f in server.filters):
        server.addFilter(QuietBadRequests())
