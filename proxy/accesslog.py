"""The access log: one DEBUG line a request, with ``?key=`` redacted.

Off unless the ``l104.access`` logger is enabled for DEBUG, so the hot path logs nothing.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from proxy.exchange import EXCHANGE

# A key's name after any separator (``?``, ``&``, ``;``, ``+``, a space, a quote: a raw request
# line may use any of them), then ``=`` or ``:``; the value runs to the next separator.
_KEY = re.compile(
    r"((?:^|[^a-z0-9_-])(?:admin[_-]?|api[_-]?|x-goog-api-|upload[_-]?)?(?:key|token)\s*[=:]\s*)"
    r"[^&;+\s'\"\\,]*",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(bearer\s+)[^\s'\"\\,]+", re.IGNORECASE)
_GOOGLE_KEY = re.compile(r"AIza[0-9A-Za-z_-]{35}")


def redact(text: str) -> str:
    """``text`` (a query string, a raw request line) with every key's value replaced:
    ``a=1&key=secret`` -> ``a=1&key=[redacted]``, whatever the separator (``;key=``, ``+key=``),
    percent-encoded names (``%6Bey=``), ``admin_key``, ``upload_token``, ``Bearer`` tokens and
    anything shaped like a Google API key."""
    if "%" in text:
        text = unquote_plus(text)
    text = _KEY.sub(r"\1[redacted]", text)
    return _GOOGLE_KEY.sub("[redacted]", _BEARER.sub(r"\1[redacted]", text))


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
        # SECURITY: the message quotes the raw request, which may hold a key.
        record.msg = f"malformed request refused: {type(exc).__name__}: {redact(exc.message)}"
        record.args, record.exc_info, record.exc_text = (), None, None
        return True


def quiet_bad_requests() -> None:
    """Install :class:`QuietBadRequests` on aiohttp's server logger (once)."""
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, QuietBadRequests) for f in server.filters):
        server.addFilter(QuietBadRequests())
