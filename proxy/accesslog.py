"""The access log: one DEBUG line a request, with ``?key=`` redacted.

Off unless the ``l104.access`` logger is enabled for DEBUG, so the hot path logs nothing.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from proxy.exchange import EXCHANGE

_KEY = re.compile(r"((?:^|[?&])key=)[^&]*", re.IGNORECASE)


def redact(query: str) -> str:
    """``a=1&key=secret`` -> ``a=1&key=[redacted]``."""
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
