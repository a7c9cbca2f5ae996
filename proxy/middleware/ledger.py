"""One ledger row per request, queued off the hot path once the answer is out."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from proxy.exchange import Exchange, exchange_of
from proxy.middleware import Handler, Middleware, is_open
from proxy.store.db import LEDGER_INSERT
from proxy.store.writer import Writer
from proxy.telemetry.prom import Prom


def _ms(seconds: float) -> float:
    """``seconds`` in milliseconds to the µs: ``round(x, 3)`` formats the number as text and
    reads it back (about 1,500 instructions), rounding to a whole number of µs does not."""
    return round(seconds * 1_000_000) / 1000


# What a row adds for an exchange: the project that answered, the cost to the client and at
# the price list (see :class:`proxy.billing.charge.Billing`).
Billed = Callable[[Exchange], tuple[str, float | None, float | None]]


def _unpriced(exchange: Exchange) -> tuple[str, float | None, float | None]:
    return "", None, None


class Ledger(Middleware):
    def __init__(
        self,
        writer: Writer,
        billed: Billed = _unpriced,
        prom: Prom | None = None,
        wall: Callable[[], float] | None = None,
    ) -> None:
        self.writer = writer
        self.billed = billed
        self.prom = prom
        self.wall = wall  # a test's made clock for the rows' times (None: the real one)

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_open(request):
            return await handler(request)
        exchange = exchange_of(request)
        if self.wall is not None:
            exchange.wall = self.wall()
        status = 499  # unless the handler says otherwise: the client went away
        try:
            response = await handler(request)
            # What the exchange says wins: a stream that broke after its 200 went out, or a
            # Live session (whose response is the 101 upgrade), end with their own status.
            status = exchange.status or response.status
            return response
        finally:
            ttfb = exchange.first_byte_s
            project, cost, listed = self.billed(exchange)
            if cost and self.prom is not None:
                self.prom.child(self.prom.cost, exchange.served, exchange.client).inc(cost)
            self.writer.put(
                LEDGER_INSERT,
                (
                    exchange.wall,
                    exchange.client,
                    exchange.requested,
                    exchange.served,
                    exchange.attempts,
                    status,
                    exchange.input_tokens,
                    exchange.output_tokens,
                    _ms(time.perf_counter() - exchange.started),
                    None if ttfb is None else _ms(ttfb),
                    exchange.trace_id,
                    exchange.cached_tokens,
                    exchange.thoughts_tokens,
                    exchange.tool_use_tokens,
                    exchange.audio_tokens,
                    exchange.key_index,
                    project,
                    cost,
                    listed,
                ),
            )
