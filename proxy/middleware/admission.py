"""Global admission: ``limits.requests_per_second`` and ``limits.max_concurrent``.

Over the rate, or still without a slot after a bounded wait (``limits.queue_timeout_s``), a
request gets 429 with ``Retry-After``: the proxy is the busy party, and the client may retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from proxy.config import Limits
from proxy.errors import ClientRateLimited, SharedStateUnavailable
from proxy.exchange import exchange_of
from proxy.metrics import Counters
from proxy.middleware import Handler, Middleware, is_open
from proxy.middleware.ratelimit import refuse
from proxy.routing.window import SlidingWindow


class GlobalAdmission(Middleware):
    def __init__(self, limits: Limits, counters: Counters, clock: Callable[[], float]) -> None:
        self.counters = counters
        self.limits = limits
        self.rate = (
            SlidingWindow(limits.requests_per_second, 1.0, clock)
            if limits.requests_per_second > 0
            else None
        )
        self.slots = asyncio.Semaphore(limits.max_concurrent) if limits.max_concurrent else None
        self.queue_timeout_s = limits.queue_timeout_s

    def _reject(self, request: web.Request, why: str, wait: float) -> ClientRateLimited:
        message = f"The proxy is over its {why} limit. Retry shortly."
        return refuse(self.counters, exchange_of(request), why, message, wait)

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_open(request):
            return await handler(request)
        if self.rate is not None:
            wait = self.rate.count_if_room(1)
            if wait > 0:
                raise self._reject(request, "requests-per-second", wait)
        if self.slots is None:
            return await handler(request)
        if self.slots.locked():
            try:
                await asyncio.wait_for(self.slots.acquire(), self.queue_timeout_s)
            except TimeoutError:
                raise self._reject(request, "concurrency", 1.0) from None
        else:
            await self.slots.acquire()
        try:
            return await handler(request)
        finally:
            self.slots.release()


class SharedGate(Middleware):
    """With ``store.shared_fail: closed``: while Redis cannot be reached, requests get 503
    (the proxy's own pages stay open, so ``/health`` says why)."""

    def __init__(self, refusing: Callable[[], bool]) -> None:
        self.refusing = refusing

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.refusing() and not is_open(request):
            raise SharedStateUnavailable(
                "The proxy's shared state (Redis) cannot be reached, and store.shared_fail is "
                "closed. Retry shortly.",
                retry_after_s=1.0,
            )
        return await handler(request)
