"""Global admission: ``limits.requests_per_second``, ``limits.max_concurrent``, and one
client's share of the slots (``limits.max_concurrent_per_client``), so that one client (a client
key, or a peer address when the proxy has no clients) cannot hold every slot. The default share
(a quarter) applies where there are clients to share with: two or more in ``clients``. With one
client, or none (a loopback proxy, where every local process is one peer), a share would only
cap the one user; a share set in the config applies as set.

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
    def __init__(
        self, limits: Limits, counters: Counters, clock: Callable[[], float], clients: int = 2
    ) -> None:
        self.counters = counters
        self.limits = limits
        self.clients = clients
        self.rate = (
            SlidingWindow(limits.requests_per_second, 1.0, clock)
            if limits.requests_per_second > 0
            else None
        )
        self.slots = asyncio.Semaphore(limits.max_concurrent) if limits.max_concurrent else None
        self.queue_timeout_s = limits.queue_timeout_s
        shared = limits.max_concurrent_per_client >= 0 or clients >= 2
        self.per_client = limits.per_client_slots if shared else 0
        self.held: dict[str, int] = {}  # slots held (or waited for) by each client

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
        if not self.per_client:  # no share to keep: nothing to count a request
            return await self._in_slot(request, handler)
        exchange = exchange_of(request)
        who = exchange.client
        if who == "anonymous":
            who = request.remote or ""
        held = self.held.get(who, 0)
        if held >= self.per_client:
            message = "This client holds its share of the proxy's slots. Retry shortly."
            raise refuse(self.counters, exchange, "client concurrency", message, 1.0)
        self.held[who] = held + 1
        try:
            return await self._in_slot(request, handler)
        finally:
            if self.held[who] == 1:
                del self.held[who]
            else:
                self.held[who] -= 1

    async def _in_slot(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        assert self.slots is not None
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
