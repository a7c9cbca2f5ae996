"""Adaptive upstream pacing: never burn a 429 we could have predicted.

Per (responder, model, project) the pacer learns how many requests a minute the upstream allows:

- a 429 whose ``QuotaFailure`` carries ``quotaValue`` (a per-minute quota) sets the pace to it;
- a 429 without one takes what was sent in the last minute as the pace the first time, halves
  it on a 429 again, and every success adds back ``1/pace``, so a full minute of successes adds
  one request a minute (AIMD).

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


class Seconds:
    """Calls in the last minute, counted per second in a ring of 60: constant memory and one
    add a call, whatever the rate. Enough for AIMD, which needs only how many were sent."""

    __slots__ = ("counts", "seconds")

    def __init__(self) -> None:
        self.seconds = [-1] * 60  # which whole second each slot counts
        self.counts = [0] * 60

    def add(self, now: float, amount: int = 1) -> None:
        second = int(now)
        slot = second % 60
        if self.seconds[slot] != second:
            self.seconds[slot], self.counts[slot] = second, 0
        self.counts[slot] += amount

    def total(self, now: float) -> int:
        edge = int(now) - int(WINDOW_S)
        return sum(c for s, c in zip(self.seconds, self.counts, strict=True) if s > edge)

    def stamps(self, now: float, last: int) -> deque[float]:
        """The newest ``last`` calls as times: each at the end of its second, so a wait
        reckoned from them is never early."""
        edge = int(now) - int(WINDOW_S)
        slots = sorted((s, c) for s, c in zip(self.seconds, self.counts, strict=True) if s > edge)
        out: deque[float] = deque(maxlen=last)
        for second, count in slots:
            out.extend([min(float(second + 1), now)] * min(count, last))
        return deque(out)


@dataclass(slots=True)
class _Lane:
    # Exact send times while a pace is learned (it is small: the upstream's quota); before
    # that, only a count per second.
    sent: deque[float] = field(default_factory=deque)
    recent: Seconds = field(default_factory=Seconds)
    pace: float | None = None  # learned requests per window; None: not limited
    source: str = ""

    def learn(self, pace: float, source: str, now: float) -> None:
        if self.pace is None:  # from counting to exact times: the last minute's calls count
            self.sent = self.recent.stamps(now, max(1, math.ceil(pace)))
        self.pace, self.source = pace, source


class Pacer:
    def __init__(self, clock: Callable[[], float] = time.monotonic, enabled: bool = True) -> None:
        self.clock = clock
        self.enabled = enabled
        self.lanes: dict[KeyRef, _Lane] = {}
        # Told of every pace learned here (ref, pace, source): the shared state passes it on.
        self.watcher: Callable[[KeyRef, float, str], None] | None = None

    def _sent(self, lane: _Lane) -> int:
        now = self.clock()
        if lane.pace is None:
            return lane.recent.total(now)
        edge = now - WINDOW_S
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

    def window_frees(self, ref: KeyRef) -> float | None:
        """Seconds until the oldest call sent on ``ref`` in the last minute leaves the minute
        (when a per-minute quota that refused the next call has room again, if this proxy is
        all that spends it); None when none was sent."""
        lane = self.lanes.get(ref)
        if not self.enabled or lane is None:
            return None
        now = self.clock()
        if lane.pace is None:
            stamps = lane.recent.stamps(now, 1 << 30)
            oldest = stamps[0] if stamps else None
        else:
            self._sent(lane)
            oldest = lane.sent[0] if lane.sent else None
        return None if oldest is None else max(0.0, oldest + WINDOW_S - now)

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
        if lane.pace is None:
            lane.recent.add(now)
        else:
            lane.sent.append(now)
        return now

    def refused(self, ref: KeyRef, stamp: float) -> None:
        """The call stamped ``stamp`` got a 429: the upstream did not count it against the
        quota, so neither does the pace (else the pace would wait for a slot never taken)."""
        lane = self.lanes.get(ref)
        if lane is None:
            return
        if lane.pace is None:
            if self.clock() - stamp < WINDOW_S:
                lane.recent.add(stamp, -1)
            return
        with contextlib.suppress(ValueError):
            lane.sent.remove(stamp)

    def limited(self, ref: KeyRef, quota_value: int | None, *, observed: bool = False) -> None:
        """Learn from a per-minute 429. With ``observed`` (the first 429 in a row that names
        no quota), what fit in the last minute is taken as the quota it ran into; a 429 again
        halves it (AIMD)."""
        if not self.enabled:
            return
        lane = self.lanes.setdefault(ref, _Lane())
        if quota_value:
            lane.learn(float(quota_value), "quota", self.clock())
            self._tell(ref, lane)
            return
        seen = self._sent(lane)
        if lane.pace is None and seen < AIMD_MIN_SEEN:
            # Too few calls to learn from: halving one call a minute would shut the key for a
            # minute whatever the cooldown says. The cooldown and its probe decide instead.
            return
        current = max(1, seen) if lane.pace is None else min(lane.pace, max(1, seen))
        lane.learn(max(1.0, current if observed else current / 2), "aimd", self.clock())
        self._tell(ref, lane)

    def _tell(self, ref: KeyRef, lane: _Lane) -> None:
        if self.watcher is not None and lane.pace is not None:
            self.watcher(ref, lane.pace, lane.source)

    def learned_elsewhere(self, ref: KeyRef, pace: float, source: str) -> None:
        """Another replica learned this pace: take it, unless this one knows a lower one."""
        if not self.enabled:
            return
        lane = self.lanes.setdefault(ref, _Lane())
        if lane.pace is None or pace < lane.pace or source == "quota":
            lane.learn(pace, source, self.clock())

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
