"""The counters behind ``GET /metrics``: plain numbers on one object held by the app."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Counters:
    """Counts are keyed by the upstream model name (``gemini-2.5-flash-lite``)."""

    started: float = field(default_factory=time.monotonic)
    requests_total: int = 0
    rate_limited_total: int = 0
    model_rotations: int = 0  # moves from one member to the next (an attempt on each)
    model_skips: int = 0  # members passed by with no attempt (cooling, at their pace, retired)
    signature_repairs: Counter[str] = field(default_factory=Counter)
    model_usage: Counter[str] = field(default_factory=Counter)
    model_429_count: Counter[str] = field(default_factory=Counter)
    rate_limited_by_client: Counter[str] = field(default_factory=Counter)

    def persistent(self) -> dict[str, Any]:
        """The counts that outlive a restart (everything but the uptime)."""
        out = self.as_json()
        del out["uptime_s"]
        return out

    def restore(self, saved: dict[str, Any]) -> None:
        """Take counts saved by :meth:`persistent` (unknown or malformed names are ignored)."""
        for name in ("requests_total", "rate_limited_total", "model_rotations", "model_skips"):
            if isinstance(saved.get(name), int):
                setattr(self, name, saved[name])
        for name in (
            "model_usage",
            "model_429_count",
            "rate_limited_by_client",
            "signature_repairs",
        ):
            if isinstance(saved.get(name), dict):
                getattr(self, name).update(
                    {k: v for k, v in saved[name].items() if isinstance(v, int)}
                )

    def as_json(self) -> dict[str, Any]:
        return {
            "model_rotations": self.model_rotations,
            "model_skips": self.model_skips,
            "signature_repairs": dict(self.signature_repairs),
            "model_usage": dict(self.model_usage),
            "model_429_count": dict(self.model_429_count),
            "requests_total": self.requests_total,
            "rate_limited_total": self.rate_limited_total,
            "rate_limited_by_client": dict(self.rate_limited_by_client),
            "uptime_s": round(time.monotonic() - self.started, 3),
        }
