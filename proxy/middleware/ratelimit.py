"""Per-client limits: ``requests_per_minute`` and ``tokens_per_minute``.

Tokens are estimated before the call (about four bytes of request a token) and settled against
the answer's ``usageMetadata`` afterwards. A client over either limit gets 429 with the exact
``Retry-After``; other clients are not touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from aiohttp import web

from proxy.config import Client
from proxy.errors import ClientRateLimited
from proxy.exchange import Exchange, exchange_of
from proxy.metrics import Counters
from proxy.middleware import Handler, Middleware, is_upload_piece
from proxy.routing.pacing import client_window
from proxy.routing.window import Entry, SlidingWindow
from proxy.shared.windows import LaneLimits, Windows


class _ClientLimits:
    __slots__ = ("requests", "tokens")

    def __init__(
        self, client: Client, clock: Callable[[], float], before: _ClientLimits | None = None
    ) -> None:
        requests = before.requests if before is not None else None
        tokens = before.tokens if before is not None else None
        self.requests: SlidingWindow | None = _window(client.requests_per_minute, clock, requests)
        self.tokens: SlidingWindow | None = _window(client.tokens_per_minute, clock, tokens)


def _window(
    limit: int, clock: Callable[[], float], before: SlidingWindow | None
) -> SlidingWindow | None:
    """A client's window; after a reload, the window it had, with the new limit: what the
    client sent this minute still counts."""
    if limit <= 0 or before is None:
        return client_window(limit, clock)
    before.limit = limit
    return before


def estimate_tokens(request: web.Request) -> int:
    if request.path.startswith("/upload/"):
        return 1  # a file's bytes are tokens only when a request uses the file
    return max(1, math.ceil((request.content_length or 0) / 4))


def refuse(
    counters: Counters, exchange: Exchange, limit: str, message: str, wait: float
) -> ClientRateLimited:
    """Count a refusal (in total, per client, and on the request) and make its 429."""
    exchange.rate_limited = limit
    counters.rate_limited_total += 1
    counters.rate_limited_by_client[exchange.client] += 1
    return ClientRateLimited(message, retry_after_s=wait)


def reject(counters: Counters, exchange: Exchange, wait: float, what: str) -> ClientRateLimited:
    message = f"Client '{exchange.client}' is over its {what} limit. Retry in {math.ceil(wait)}s."
    return refuse(counters, exchange, what, message, wait)


class ClientRateLimit(Middleware):
    def __init__(
        self,
        clients: tuple[Client, ...],
        counters: Counters,
        clock: Callable[[], float],
        before: ClientRateLimit | None = None,
        windows: Windows | None = None,
    ) -> None:
        """``before``: the layer of the config this one replaces (its windows carry over).
        ``windows``: the fleet's (``store.shared``); while Redis is away, the local ones."""
        self.counters = counters
        self.windows = windows
        self.clients = {c.name: c for c in clients}
        old = before.limits if before is not None else {}
        self.limits: dict[str, _ClientLimits] = {
            c.name: _ClientLimits(c, clock, old.get(c.name)) for c in clients
        }

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        exchange = exchange_of(request)
        limits = self.limits.get(exchange.client)
        if limits is None or is_upload_piece(request):
            # A piece is a file's bytes, not a request: it takes slots as its client's
            # (admission), but no request or token of the client's rate.
            return await handler(request)
        tokens = limits.tokens
        if limits.requests is None and tokens is None:
            return await handler(request)  # a client with no limit: nothing to count
        if self.windows is not None and self.windows.link.up:
            shared = await self._shared(request, handler, exchange, self.windows)
            if shared is not None:
                return shared
        # Judged in a plain call: the usual request needs no coroutine of its own for it.
        entry = self._local(request, exchange, limits)
        if entry is None:
            return await handler(request)
        try:
            return await handler(request)
        finally:
            if tokens is not None:
                tokens.settle(entry, exchange.total_tokens or exchange.input_tokens)

    def _local(
        self, request: web.Request, exchange: Exchange, limits: _ClientLimits
    ) -> Entry | None:
        """Count the request in the client's windows (raises its 429 if it does not fit);
        the tokens' entry, to settle once the answer is known."""
        tokens = limits.tokens
        estimate = estimate_tokens(request)
        if tokens is not None:
            wait = tokens.wait_for(estimate)
            if wait > 0:
                raise reject(self.counters, exchange, wait, "tokens-per-minute")
        # The tokens fit (nothing was awaited since): the request is counted if it fits too.
        if limits.requests is not None:
            wait = limits.requests.count_if_room(1)
            if wait > 0:
                raise reject(self.counters, exchange, wait, "requests-per-minute")
        return None if tokens is None else tokens.admit(estimate)

    async def _shared(
        self,
        request: web.Request,
        handler: Handler,
        exchange: Exchange,
        windows: Windows,
    ) -> web.StreamResponse | None:
        """The same limits, held across every replica (one round trip); None when Redis went
        away just now, and the request is to be judged locally."""
        client = self.clients[exchange.client]
        estimate = estimate_tokens(request)
        limits = LaneLimits(rpm=client.requests_per_minute, tpm=client.tokens_per_minute)
        taken = await windows.take(f"c:{client.name}", limits, estimate)
        if taken is None:
            return None
        wait, why, slot = taken
        if slot is None:
            what = "requests-per-minute" if why == "rpm" else "tokens-per-minute"
            raise reject(self.counters, exchange, wait, what)
        try:
            return await handler(request)
        finally:
            if client.tokens_per_minute:
                used = exchange.total_tokens or exchange.input_tokens
                if used > 0:
                    windows.settle(slot, used - estimate)
