"""Which members may be called now: cooldowns per (responder, model, project) and retired
models. A project is the Google project of one or more keys: quotas are per project and model.

Times are on an injected monotonic clock, so tests move time without sleeping. A cooling key
is skipped with no round trip. Once its time is up, a key whose quota is known (a learned or
declared pace gates it) takes requests again at once, as many as its pace allows. A key whose
quota is unknown is *half-open*: the next request goes through as the probe, and the others
wait for the probe's answer (:meth:`Cooldowns.admit` hands them an event to wait on; a 429
cools the key again, anything else opens it). A probe that never reports frees the slot after
``PROBE_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# (responder, model, project index): where a quota lives; never a key itself.
KeyRef = tuple[str, str, int]
PROBE_TIMEOUT_S = 30.0


@dataclass(slots=True)
class Cooldowns:
    clock: Callable[[], float] = time.monotonic
    until: dict[KeyRef, float] = field(default_factory=dict)
    retired: set[tuple[str, str]] = field(default_factory=set)
    probes: dict[KeyRef, float] = field(default_factory=dict)  # ref -> when its probe began
    answers: dict[KeyRef, asyncio.Event] = field(default_factory=dict)  # a probe's, awaited
    # Keys the upstream called invalid: (responder, key index) -> until when they are left out.
    disabled: dict[tuple[str, int], float] = field(default_factory=dict)
    # Told of every cooldown set (ref, seconds left), e.g. to save it across a restart.
    listener: Callable[[KeyRef, float], None] | None = None
    # Told of every change made here (not of those applied from other replicas): the shared
    # state passes them on. ("cool", ref, left), ("probe_done", ref, 0), ("disable",
    # (responder, key), seconds), ("retire", (responder, model), 0).
    watcher: Callable[[str, tuple[object, ...], float], None] | None = None

    def cool(self, ref: KeyRef, seconds: float) -> float:
        """Rest ``ref`` for ``seconds``; a cooldown only ever grows. Returns the time left."""
        self._end_probe(ref)
        end = max(self.until.get(ref, 0.0), self.clock() + max(0.0, seconds))
        self.until[ref] = end
        left = end - self.clock()
        if self.listener is not None:
            self.listener(ref, left)
        if self.watcher is not None:
            self.watcher("cool", ref, left)
        return left

    def cooled_elsewhere(self, ref: KeyRef, left: float) -> None:
        """Another replica cooled ``ref`` (it only ever grows); a probe out here is over."""
        self._end_probe(ref)
        end = self.clock() + left
        if end > self.until.get(ref, 0.0):
            self.until[ref] = end
            if self.listener is not None:
                self.listener(ref, left)

    def probed_elsewhere(self, ref: KeyRef) -> None:
        """Another replica's probe on ``ref`` was answered (not with a 429): it is open."""
        self.until.pop(ref, None)
        self._end_probe(ref)

    def admit(self, ref: KeyRef, *, gated: bool) -> float | asyncio.Event:
        """May a request use ``ref`` now? ``0.0``: yes (maybe as the probe); seconds: it rests;
        an event: a probe is out, wait for it (then ask again). ``gated=False`` (the key's
        quota is known, so its pace gates it) lets everyone through once the time is up."""
        if not gated:
            end = self.until.get(ref)
            if end is None:
                return 0.0
            left = end - self.clock()
            if left > 0:
                return left
            del self.until[ref]
            return 0.0
        left = self.remaining(ref)
        if left > 0 and ref in self.probes:
            event = self.answers.get(ref)
            if event is None:
                event = self.answers[ref] = asyncio.Event()
            return event
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
        if self.probes and ref in self.probes:
            self._end_probe(ref)
            if self.watcher is not None:
                self.watcher("probe_done", ref, 0.0)

    def _end_probe(self, ref: KeyRef) -> None:
        self.probes.pop(ref, None)
        event = self.answers.pop(ref, None)
        if event is not None:
            event.set()  # whoever waits on the probe asks again

    def disable(self, responder: str, key: int, seconds: float) -> bool:
        """Leave a key out for ``seconds`` (on every model); True if it was not out already."""
        fresh = self.disabled_for(responder, key) <= 0
        self.disabled[(responder, key)] = self.clock() + seconds
        if self.watcher is not None:
            self.watcher("disable", (responder, key), seconds)
        return fresh

    def disabled_for(self, responder: str, key: int) -> float:
        """Seconds the key is still left out (0: it is in use)."""
        if not self.disabled:
            return 0.0
        end = self.disabled.get((responder, key))
        if end is None:
            return 0.0
        left = end - self.clock()
        if left <= 0:
            del self.disabled[(responder, key)]  # its time is up: tried again
            return 0.0
        return left

    def retire(self, responder: str, model: str) -> bool:
        """Mark a model gone (it answered 404); True the first time."""
        if (responder, model) in self.retired:
            return False
        self.retired.add((responder, model))
        if self.watcher is not None:
            self.watcher("retire", (responder, model), 0.0)
        return True

    def is_retired(self, responder: str, model: str) -> bool:
        return (responder, model) in self.retired
