"""Client budgets: a request that would take a client past its ``budget`` is refused before it
goes anywhere; after it, what it really cost is added (a stream in flight is never cut).

The estimate is the request's size in tokens (a token for four bytes) at the highest input price
among the chains' members; the answer's own tokens are only known after it, so a budget can be
passed by what the last request it let through answered, never by more. The refusal is
Gemini's 429 ``RESOURCE_EXHAUSTED`` with a ``QuotaFailure`` naming the client's budget and
``Retry-After`` until the period resets.
"""

from __future__ import annotations

import math

from aiohttp import web

from proxy.billing.budgets import DAY, MONTH, Spending
from proxy.billing.charge import Billing
from proxy.config import Client
from proxy.errors import ClientRateLimited
from proxy.exchange import Exchange, exchange_of
from proxy.metrics import Counters
from proxy.middleware import Handler, Middleware, is_open
from proxy.middleware.ratelimit import refuse
from proxy.shared.spending import FleetSpending
from proxy.store.db import SPENT_ADD
from proxy.store.writer import Writer

MILLION = 1_000_000.0


class ClientBudgets(Middleware):
    def __init__(
        self,
        clients: tuple[Client, ...],
        spending: Spending,
        billing: Billing,
        top_input_price: float,
        counters: Counters,
        writer: Writer | None,
        fleet: FleetSpending | None = None,
    ) -> None:
        self.budgets = {c.name: c for c in clients if c.budget.any}
        self.spending = spending
        self.billing = billing
        self.top_input_price = top_input_price  # USD per million tokens
        self.counters = counters
        self.writer = writer
        self.fleet = fleet  # with store.shared: the fleet's spending, reserved atomically

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        exchange = exchange_of(request)
        client = self.budgets.get(exchange.client)
        if client is None or is_open(request):
            return await handler(request)
        tokens = max(1, (request.content_length or 0) // 4)
        usd = tokens * self.top_input_price / MILLION
        reserved = await self._check(client, exchange, usd, tokens)
        try:
            return await handler(request)
        finally:
            charged, _ = self.billing.charge(exchange)
            cost = charged or 0.0
            used = exchange.input_tokens + exchange.output_tokens + exchange.thoughts_tokens
            for row in self.spending.settle(client.name, cost, used):
                if self.writer is not None:
                    self.writer.put(SPENT_ADD, row)
            if reserved is not None and self.fleet is not None:
                self.fleet.settle(client.name, reserved, cost - usd, used - tokens)

    async def _check(
        self, client: Client, exchange: Exchange, usd: float, tokens: int
    ) -> tuple[str, str] | None:
        """Refuse a request that would pass a budget: the fleet's, reserving its estimate
        (then the periods reserved in are returned), or this replica's while Redis is away."""
        budget = client.budget
        if self.fleet is not None and self.fleet.link.up:
            periods = self.spending.periods()
            waits = self.spending.waits()
            lives = (int((waits[DAY] + 86_400) * 1000), int((waits[MONTH] + 86_400) * 1000))
            limits = (budget.usd_per_day, budget.usd_per_month, budget.tokens_per_day)
            answer = await self.fleet.reserve(client.name, periods, limits, usd, tokens, lives)
            if answer is True:
                return periods
            if isinstance(answer, tuple):
                name, spent = answer
                limit = float(getattr(budget, name))
                wait = waits[MONTH if name == "usd_per_month" else DAY]
                raise self._refuse(exchange, name, limit, spent, wait)
        refused = self.spending.refusal(client.name, budget, usd, tokens)
        if refused is not None:
            raise self._refuse(exchange, *refused)
        return None

    def _refuse(
        self, exchange: Exchange, budget: str, limit: float, spent: float, wait: float
    ) -> ClientRateLimited:
        client = exchange.client
        message = (
            f"Client '{client}' has spent {spent:g} of its {budget} budget ({limit:g}). "
            f"Retry in {math.ceil(wait)}s, when the period resets."
        )
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "subject": f"clients/{client}",
                        "description": f"budget {budget} of {limit:g} spent",
                        "quotaId": f"ClientBudget-{budget}",
                        "quotaValue": f"{limit:g}",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{math.ceil(wait)}s",
            },
        ]
        refusal = refuse(self.counters, exchange, budget, message, wait)  # counted as a limit's
        refusal.details = details
        return refusal
