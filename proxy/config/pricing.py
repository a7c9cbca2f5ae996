"""``pricing:``: prices per model (USD per million tokens) over the table shipped with the proxy.

```yaml
pricing:
  gemini-2.5-flash: {input: 0.30, output: 2.50, cached_input: 0.03, audio_input: 1.00, batch: 0.5}
  gemini-2.5-pro: {input: 1.25, output: 10, cached_input: 0.125, tier_tokens: 200000,
                   above: {input: 2.50, output: 15, cached_input: 0.25}}
```
"""

from __future__ import annotations

from typing import Any

from proxy.billing.prices import Price, price_of
from proxy.reader import Reader

RATES = ("input", "output", "cached_input", "audio_input")


def _rates(r: Reader, required: bool) -> dict[str, Any]:
    """The rates given; with ``required``, ``input`` and ``output`` must be among them."""
    out: dict[str, Any] = {}
    for key in RATES:
        needed = required and key in ("input", "output")
        if r.has(key) or needed:
            out[key] = r.number(key, 0.0, high=1_000_000, required=needed)
    return out


def read_pricing(r: Reader) -> dict[str, Price]:
    """Each model's price; every mistake recorded with its line, key and value."""
    out: dict[str, Price] = {}
    for model in r.data:
        sub = r.section(str(model))
        entry = _rates(sub, required=True)
        if sub.has("tier_tokens"):
            entry["tier_tokens"] = sub.whole("tier_tokens", 0, low=1)
        if sub.has("batch"):
            entry["batch"] = sub.number("batch", 1.0, high=1.0)
        if sub.has("above"):
            above = sub.section("above")
            entry["above"] = _rates(above, required=False)
            above.finish()
        sub.finish()
        out[str(model)] = price_of(entry)
    r.finish()
    return out
