"""Adaptive upstream pacing: never burn a 429 we could have predicted.

Per (responder, model, project) the pacer learns how many requests a minute the upstream allows:

- a 429 whose ``QuotaFailure`` carries ``quotaValue`` (a per-minute quota) sets the pace to it;
- a 429 without one halves the pace (from what was sent in the last minute), and every success
  adds back ``1/pace``, so a full minute of successes adds one request a minute (AIMD).

A member at its pace is skipped like a cooling one, before any round trip. Per-day quotas are the
cooldown's business, not the pacer's.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proxy.routing.cooldown import KeyRef
from proxy.routing.window import SlidingWindow

WINDOW_S = 60.0
AIMD_MIN_SEEN = 4


@dataclass(slots=True)
class _Lane:
    sent: deque[float] = field(default_factory=deque)  # send times in the last window
    pace: float | None = None  # learned requests per window; None: not limited
    source: str = ""


class Pacer:
    def __init__(self, clock: Callable[[], float] = time.monotonic, enabled: bool = True) -> None:
        self.clock = clock
        self.enabled = enabled
        self.lanes: dict[KeyRef, _Lane] = {}

    def _sent(self, lane: _Lane) -> int:
        edge = self.clock() - WINDOW_S
        while lane.sent and lane.sent[0] <= edge:
            lane.sent.popleft()
        return len(lane.sent)

    def wait_for(self, ref: KeyRef) -> float:
        """Seconds until ``ref`` may be called again at its learned pace (0: now)."""
        lane = self.lanes.get(ref)
        if not self.enabled or lane is None or lane.pace is None:
            return 0.0
        allowed = max(1, math.floor(lane.pace))
        if self._sent(lane) < allowed:
            return 0.0
        return lane.sent[-allowed] + WINDOW_S - self.clock()

    def knows(self, ref: KeyRef) -> bool:
        """Is the quota of ``ref`` known (from a 429's ``quotaValue``), so its pace gates it?"""
        lane = self.lanes.get(ref)
        return self.enabled and lane is not None and lane.source == "quota"

    def sent(self, ref: KeyRef) -> float:
        """Count a call sent on ``ref`` now; returns its stamp (for :meth:`refused`)."""
        now = self.clock()
        if not self.enabled:
            return now
        lane = self.lanes.get(ref)
        if lane is None:
            lane = self.lanes[ref] = _Lane()
        lane.sent.append(now)
        if lane.pace is None and len(lane.sent) > 4096:
            self._sent(lane)  # an unlimited lane only needs the last minute, for AIMD
        return now

    def refused(self, ref: KeyRef, stamp: float) -> None:
        """The call stamped ``stamp`` got a 429: the upstream did not count it against the
        quota, so neither does the pace (else the pace would wait for a slot never taken)."""
        lane = self.lanes.get(ref)
        if lane is not None:
            with contextlib.suppress(ValueError):
                lane.sent.remove(stamp)

    def limited(self, ref: KeyRef, quota_value: int | None) -> None:
        """Learn from a per-minute 429."""
        if not self.enabled:
            return
        lane = self.lanes.setdefault(ref, _Lane())
        if quota_value:
            lane.pace, lane.source = float(quota_value), "quota"
            return
        seen = self._sent(lane)
        if lane.pace is None and seen < AIMD_MIN_SEEN:
            # Too few calls to learn from: halving one call a minute would shut the key for a
            # minute whatever the cooldown says. The cooldown and its probe decide instead.
            return
        current = max(1, seen) if lane.pace is None else min(lane.pace, max(1, seen))
        lane.pace, lane.source = max(1.0, current / 2), "aimd"

    def succeeded(self, ref: KeyRef) -> None:
        lane = self.lanes.get(ref)
        if lane is not None and lane.source == "aimd" and lane.pace is not None:
            lane.pace += 1 / lane.pace

    def describe(self, refs: list[KeyRef]) -> dict[str, Any] | None:
        """The learned pace of a model over its keys, for ``/health``; None if none is learned."""
        paces = [(r, self.lanes[r]) for r in refs if r in self.lanes and self.lanes[r].pace]
        if not paces:
            return None
        return {
            "requests_per_minute": round(sum(lane.pace or 0 for _, lane in paces), 2),
            "sent_last_minute": sum(self._sent(lane) for _, lane in paces),
            "source": paces[0][1].source,
        }


def client_window(limit: int, clock: Callable[[], float]) -> SlidingWindow | None:
    """A per-minute window for a client limit; None when the limit is 0 (unlimited)."""
    return SlidingWindow(limit, WINDOW_S, clock) if limit > 0 else None
