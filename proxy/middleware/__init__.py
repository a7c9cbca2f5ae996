"""Middleware layers. Each is a small class whose ``__call__`` does one job; the order is in
:mod:`proxy.app`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Middleware:
    """Base of the proxy's middleware classes (aiohttp's new-style protocol)."""

    __middleware_version__ = 1

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raise NotImplementedError
