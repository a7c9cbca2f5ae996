"""Middleware layers. Each is a small class whose ``__call__`` does one job; the order is in
:mod:`proxy.app`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# The proxy's own read-only pages: open to probes and dashboards, never limited.
OPEN_PATHS = frozenset(
    {
        "/",
        "/health",
        "/ready",
        "/metrics",
        "/metrics/prometheus",
        "/api/v6/status",
        "/api/v6/events",
        # It checks the client key, or the admin key, itself (either may read it).
        "/api/v6/usage",
        "/api/v6/budgets",
    }
)


def is_upload_piece(request: web.Request) -> bool:
    """A piece of a resumable upload: its upload id authorises it, as at Gemini, and its bytes
    are a file's, not a request's (no client key, no rate limit; the upload's start had both)."""
    return request.path.startswith("/upload/") and "upload_id" in request.query


def is_open(request: web.Request) -> bool:
    path = request.path
    return path in OPEN_PATHS or path.startswith("/static/")


class Middleware:
    """Base of the proxy's middleware classes (aiohttp's new-style protocol)."""

    __middleware_version__ = 1

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raise NotImplementedError
