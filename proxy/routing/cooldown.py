"""Which members may be called now: cooldowns per (responder, model, key) and retired models.

Times are on an injected monotonic clock, so tests move time without sleeping. A cooling key
is skipped with no round trip. Once its time is up it is *half-open*: the next request goes
through as the probe, and the others keep skipping it until the probe has its answer (a 429
cools it again). A probe that never reports frees the slot after ``PROBE_TIMEOUT_S``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

KeyRef = tuple[str, str, int]  # (responder, model, key index); never the key itself
PROBE_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ModelState:
    state: str  # ready | cooling | retired
    cooldown_s: float


@dataclass(slots=True)
class Cooldowns:
    clock: Callable[[], float] = time.monotonic
    until: dict[KeyRef, float] = field(default_factory=dict)
    retired: set[tuple[str, str]] = field(default_factory=set)
    probes: dict[KeyRef, float] = field(default_factory=dict)  # ref -> when its probe began
    # Told of every cooldown set (ref, seconds left), e.g. to save it across a restart.
    listener: Callable[[KeyRef, float], None] | None = None

    def cool(self, ref: KeyRef, seconds: float) -> float:
        """Rest ``ref`` for ``seconds``; a cooldown only ever grows. Returns the time left."""
        self.probes.pop(ref, None)
        end = max(self.until.get(ref, 0.0), self.clock() + max(0.0, seconds))
        self.until[ref] = end
        left = end - self.clock()
        if self.listener is not None:
            self.listener(ref, left)
        return left

    def remaining(self, ref: KeyRef) -> float:
        """Seconds ``ref`` must still rest; 0 lets this caller through (maybe as the probe)."""
        if self.probes:
            began = self.probes.get(ref)
            if began is not None:
                if self.clock() - began < PROBE_TIMEOUT_S:
                    return 1.0  # a probe is out: wait for its answer
                del self.probes[ref]
        end = self.until.get(ref)
        if end is None:
            return 0.0
        left = end - self.clock()
        if left <= 0:
            del self.until[ref]
            self.probes[ref] = self.clock()  # this caller is the probe
            return 0.0
        return left

    def peek(self, ref: KeyRef) -> float:
        """Like :meth:`remaining`, but only looks: it never starts a probe."""
        began = self.probes.get(ref)
        if began is not None and self.clock() - began < PROBE_TIMEOUT_S:
            return 1.0
        return max(0.0, self.until.get(ref, 0.0) - self.clock())

    def answered(self, ref: KeyRef) -> None:
        """The call on ``ref`` is over, whatever its outcome: a probe frees its slot."""
        if self.probes:
            self.probes.pop(ref, None)

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
        left = [self.peek((responder, model, k)) for k in range(keys)]
        if left and all(x > 0 for x in left):
            return ModelState("cooling", round(min(left), 1))
        return ModelState("ready", 0.0)

    def soonest(self, refs: Iterable[KeyRef]) -> float | None:
        """Seconds until the first of ``refs`` that cools is free again (None if none cools)."""
        left = [x for x in (self.peek(r) for r in refs) if x > 0]
        return min(left) if left else None
