"""What a model's tokens cost: the price table shipped with the proxy (``prices.yaml``, dated),
under the config's ``pricing:``, and the cost of one answer from its usage.

The rules (each with a test worked by hand in ``tests/billing/``):

- uncached input = ``promptTokenCount`` - ``cachedContentTokenCount``, at the input price (its
  audio part at the audio price where the model has one);
- cached input at the cached price;
- ``thoughtsTokenCount`` and ``candidatesTokenCount`` at the output price;
- ``toolUsePromptTokenCount`` (search results and the like) at the input price;
- a prompt past the model's ``tier_tokens`` prices the whole request at its ``above`` prices;
- a batch's usage at the batch share of the price.

A model with no price costs nothing known: ``None``, and one warning a model, never a guess.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

log = logging.getLogger("l104.billing")
MILLION = 1_000_000.0


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None  # None: at the input price
    audio_input: float | None = None  # None: at the input price


@dataclass(frozen=True, slots=True)
class Price:
    base: Rates
    above: Rates | None = None  # past ``tier_tokens`` of prompt
    tier_tokens: int = 0
    batch: float = 1.0  # the share a batch pays


@dataclass(frozen=True, slots=True)
class Usage:
    """One answer's tokens, as ``usageMetadata`` counts them (``prompt`` includes ``cached``
    and ``audio``)."""

    prompt: int = 0
    output: int = 0
    cached: int = 0
    thoughts: int = 0
    tool_use: int = 0
    audio: int = 0


def cost(usage: Usage, price: Price, *, batch: bool = False) -> float:
    """What ``usage`` costs at ``price``, in USD."""
    rates = price.base
    if price.above is not None and price.tier_tokens and usage.prompt > price.tier_tokens:
        rates = price.above
    cached = min(max(usage.cached, 0), usage.prompt)
    audio = min(max(usage.audio, 0), usage.prompt - cached)
    text = usage.prompt - cached - audio
    audio_rate = rates.audio_input if rates.audio_input is not None else rates.input
    cached_rate = rates.cached_input if rates.cached_input is not None else rates.input
    total = (
        (text + usage.tool_use) * rates.input
        + audio * audio_rate
        + cached * cached_rate
        + (usage.output + usage.thoughts) * rates.output
    ) / MILLION
    return total * price.batch if batch else total


def _rates(data: dict[str, Any]) -> Rates:
    def rate(key: str) -> float | None:
        value = data.get(key)
        return None if value is None else float(value)

    return Rates(
        input=float(data.get("input", 0.0)),
        output=float(data.get("output", 0.0)),
        cached_input=rate("cached_input"),
        audio_input=rate("audio_input"),
    )


def price_of(data: dict[str, Any]) -> Price:
    """A model's entry of the table (or of ``pricing:``) as a :class:`Price`."""
    above = data.get("above")
    return Price(
        base=_rates(data),
        above=_rates(above) if isinstance(above, dict) else None,
        tier_tokens=int(data.get("tier_tokens", 0)),
        batch=float(data.get("batch", 1.0)),
    )


def shipped() -> tuple[str, dict[str, Price]]:
    """The table shipped with the proxy: the date it was taken, and its prices."""
    text = resources.files("proxy.billing").joinpath("prices.yaml").read_text()
    data = yaml.safe_load(text)
    return str(data["taken"]), {m: price_of(p) for m, p in data["models"].items()}


class PriceBook:
    """Prices by model; ``warned`` keeps the models already said to have none."""

    def __init__(self, prices: dict[str, Price]) -> None:
        self.prices = prices
        self.warned: set[str] = set()

    def of(self, model: str) -> Price | None:
        found = self.prices.get(model.removeprefix("models/"))
        if found is None and model and model not in self.warned:
            self.warned.add(model)
            log.warning("no price for model %s: its cost is left unknown (set pricing:)", model)
        return found
