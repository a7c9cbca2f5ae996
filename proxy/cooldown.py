"""Which members may be called now: cooldowns per (responder, model, key) and retired models.

Times are on an injected monotonic clock, so tests move time without sleeping. A cooling key
is skipped with no round trip; once its time is up the next request goes through as the probe.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

KeyRef = tuple[str, str, int]  # (responder, model, key index); never the key itself


@dataclass(frozen=True, slots=True)
class ModelState:
    state: str  # ready | cooling | retired
    cooldown_s: float


@dataclass(slots=True)
class Cooldowns:
    clock: Callable[[], float] = time.monotonic
    until: dict[KeyRef, float] = field(default_factory=dict)
    retired: set[tuple[str, str]] = field(default_factory=set)

    def cool(self, ref: KeyRef, seconds: float) -> float:
        """Rest ``ref`` for ``seconds``; a cooldown only ever grows. Returns the time left."""
        end = max(self.until.get(ref, 0.0), self.clock() + max(0.0, seconds))
        self.until[ref] = end
        return end - self.clock()

    def remaining(self, ref: KeyRef) -> float:
        end = self.until.get(ref)
        if end is None:
            return 0.0
        left = end - self.clock()
        if left <= 0:
            del self.until[ref]
            return 0.0
        return left

    def retire(self, responder: str, model: str) -> bool:
        """Mark a model gone (it answered 404); True the first time."""
        if (responder, model) in self.retired:
            return False
        self.retired.add((responder, model))
        return True

    def is_retired(self, responder: str, model: str) -> bool:
        return (responder, model) in self.retired

    def state(self, responder: str, model: str, keys: int) -> ModelState:
        """A model cools only while every one of its keys cools."""
        if self.is_retired(responder, model):
            return ModelState("retired", 0.0)
        left = [self.remaining((responder, model, k)) for k in range(keys)]
        if left and all(x > 0 for x in left):
            return ModelState("cooling", round(min(left), 1))
        return ModelState("ready", 0.0)

    def soonest(self, refs: Iterable[KeyRef]) -> float | None:
        """Seconds until the first of ``refs`` that cools is free again (None if none cools)."""
        left = [x for x in (self.remaining(r) for r in refs) if x > 0]
        return min(left) if left else None
