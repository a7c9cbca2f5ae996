"""The cost of one request's answer, as its ledger row records it."""

from __future__ import annotations

from collections.abc import Mapping

from proxy.billing.prices import PriceBook, Usage, cost
from proxy.exchange import Exchange
from proxy.responders.base import Responder


class Billing:
    """Prices, the responders (for their projects' names), and which of them are on a free
    tier (their answers cost 0)."""

    def __init__(
        self, prices: PriceBook, free: frozenset[str], responders: Mapping[str, Responder]
    ) -> None:
        self.prices = prices
        self.free = free
        self.responders = responders

    def row(self, exchange: Exchange) -> tuple[str, float | None, float | None]:
        """What a ledger row adds for ``exchange``: the project that answered, its cost to the
        client and at the price list."""
        charged, listed = self.charge(exchange)
        return project_of(self.responders, exchange), charged, listed

    def charge(self, exchange: Exchange) -> tuple[float | None, float | None]:
        """(what the answer costs the client, what it costs at the price list); None where
        the model has no price. Reckoned once an exchange."""
        if exchange.costs is None:
            exchange.costs = self._charge(exchange)
        return exchange.costs

    def _charge(self, exchange: Exchange) -> tuple[float | None, float | None]:
        tokens = exchange.input_tokens + exchange.output_tokens + exchange.tool_use_tokens
        model = exchange.served or exchange.response_model
        if not model:
            return None, None
        if not tokens:
            return 0.0, 0.0  # an error, a refusal: nothing counted, nothing to pay
        price = self.prices.of(model)
        if price is None:
            return None, None
        usage = Usage(
            prompt=exchange.input_tokens,
            output=exchange.output_tokens,
            cached=exchange.cached_tokens,
            thoughts=exchange.thoughts_tokens,
            tool_use=exchange.tool_use_tokens,
            audio=exchange.audio_tokens,
        )
        listed = cost(usage, price, batch=exchange.batch)
        return (0.0 if exchange.responder in self.free else listed), listed


def project_of(responders: Mapping[str, Responder], exchange: Exchange) -> str:
    """The name of the project whose key answered ("" when none did)."""
    responder = responders.get(exchange.responder)
    key = exchange.key_index
    if responder is None or not 0 <= key < len(responder.projects):
        return ""
    return responder.project_names[responder.projects[key]]
